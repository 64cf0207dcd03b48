"""Run the Autobahn|Testsuite fuzzing client against an ASGI server.

Standard library only.  Starts the target server on a free loopback port,
runs ``wstest -m fuzzingclient`` against it, stops the server again and
summarises the report::

    python compliance/autobahn/run.py                 # quick set against refserver
    python compliance/autobahn/run.py --full          # all 517 cases
    python compliance/autobahn/run.py --cases '1.*,2.1' --exclude 1.1.8
    python compliance/autobahn/run.py --target-command \\
        'uvicorn echo_app:app --app-dir compliance/autobahn --ws wsproto \\
         --host {host} --port {port}'

Exit status: 0 when every requested case is OK (or INFORMATIONAL for one of
the cases where that is the only possible outcome), 1 when any case failed,
was NON-STRICT, UNIMPLEMENTED, had another outcome or is missing from the
report, 2 on a usage or setup error.  The last line printed is always
``autobahn: N passed, M failed`` once the suite has run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
DEFAULT_REPORT_DIR = HERE / "reports"
HOST = "127.0.0.1"

# Every case of Autobahn|Testsuite 25.10.1 (517 in all), as
# "<case id prefix>:<number of cases>"; ids are <prefix>.1 .. <prefix>.<n>.
_CASE_GROUPS = (
    "1.1:8 1.2:8 2:11 3:7 4.1:5 4.2:5 5:20 6.1:3 6.2:4 6.3:2 6.4:4 6.5:5 6.6:11 "
    "6.7:4 6.8:2 6.9:4 6.10:3 6.11:5 6.12:8 6.13:5 6.14:10 6.15:1 6.16:3 6.17:5 "
    "6.18:5 6.19:5 6.20:7 6.21:8 6.22:34 6.23:7 7.1:6 7.3:6 7.5:1 7.7:13 7.9:9 "
    "7.13:2 9.1:6 9.2:6 9.3:9 9.4:9 9.5:6 9.6:6 9.7:6 9.8:6 10.1:1 12.1:18 12.2:18 "
    "12.3:18 12.4:18 12.5:18 13.1:18 13.2:18 13.3:18 13.4:18 13.5:18 13.6:18 13.7:18"
)
ALL_CASES: tuple[str, ...] = tuple(
    f"{prefix}.{i}"
    for prefix, count in (group.split(":") for group in _CASE_GROUPS.split())
    for i in range(1, int(count) + 1)
)
assert len(ALL_CASES) == 517

# Quick set: everything except the permessage-deflate groups 12 and 13, of
# which only the first subgroup of each is kept.
QUICK_PATTERNS = [
    "1.*",
    "2.*",
    "3.*",
    "4.*",
    "5.*",
    "6.*",
    "7.*",
    "9.*",
    "10.*",
    "12.1.*",
    "13.1.*",
]
FULL_PATTERNS = ["*"]

# Cases whose only possible outcome is INFORMATIONAL (the suite just records
# what the server did).  INFORMATIONAL anywhere else counts as a failure.
ALLOWED_INFORMATIONAL = frozenset({"7.1.6", "7.13.1", "7.13.2"})

OUTCOMES = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED", "missing")

REFSERVER_URL_RE = re.compile(r"http://[^\s]+")
CASE_LINE_RE = re.compile(r"Running test case ID (\S+)")


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


def resolve_patterns(patterns: Iterable[str], *, strict: bool) -> list[str]:
    """Resolve case patterns exactly like wstest does (CaseSet.resolveCasePatternList).

    A pattern with ``*`` is a regex prefix match ('.' literal, '*' any);
    one without is an exact case id.  With ``strict`` an exact id that is
    not a known case is an error: wstest would wait forever for it.
    """
    known = set(ALL_CASES)
    result: list[str] = []
    for pattern in patterns:
        if "*" in pattern:
            regex = re.compile(re.escape(pattern).replace(r"\*", ".*"))
            result.extend(c for c in ALL_CASES if regex.match(c))
        elif pattern in known:
            result.append(pattern)
        elif strict:
            raise ValueError(f"unknown Autobahn case id {pattern!r}")
    return result


def split_list(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def log(message: str) -> None:
    print(f"run.py: {message}", flush=True)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_wstest(explicit: str | None) -> str | None:
    def usable(path: str) -> str | None:
        if os.sep in path:
            return path if os.path.isfile(path) and os.access(path, os.X_OK) else None
        return shutil.which(path)

    if explicit:
        return usable(explicit)
    home = os.environ.get("AUTOBAHN_HOME") or os.path.expanduser("~/.cache/refserver-autobahn")
    for candidate in (
        os.environ.get("AUTOBAHN_WSTEST"),
        os.path.join(home, "bin", "wstest"),
        "wstest",
    ):
        if candidate and (found := usable(candidate)):
            return found
    return None


class Server:
    """The target server, run as a child process in its own process group."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], report_dir: Path) -> None:
        self.argv = argv
        self.stderr_path = report_dir / "server.stderr.log"
        self.stdout_path = report_dir / "server.stdout.log"
        self._stderr: IO[bytes] = open(self.stderr_path, "wb")  # noqa: SIM115
        self._stdout_log: IO[str] = open(self.stdout_path, "w")  # noqa: SIM115
        self._first_url: str | None = None
        self._url_event = threading.Event()
        self.proc = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            if not self._stdout_log.closed:
                self._stdout_log.write(line)
                self._stdout_log.flush()
            if self._first_url is None:
                match = REFSERVER_URL_RE.search(line)
                if match:
                    self._first_url = match.group(0)
                    self._url_event.set()
        self._url_event.set()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_url(self, deadline: float) -> str | None:
        """Wait for the first ``http://...`` URL on the server's stdout."""
        while time.monotonic() < deadline:
            if self._url_event.wait(0.05):
                return self._first_url
        return None

    def wait_for_port(self, host: str, port: int, deadline: float) -> bool:
        """Poll until (host, port) accepts a TCP connection."""
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self, grace: float = 5.0) -> None:
        """Signal the process group we created (its id is our child's PID).

        SIGINT (graceful shutdown), then SIGTERM, then SIGKILL, waiting
        ``grace`` seconds after each; afterwards SIGKILL whatever is left of
        the group (e.g. worker processes of an external server).
        """
        if self.alive():
            for sig, wait in (
                (signal.SIGINT, grace),
                (signal.SIGTERM, grace),
                (signal.SIGKILL, grace),
            ):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(2)
        self._stderr.close()
        self._stdout_log.close()


def run_wstest(
    wstest: str,
    spec_path: Path,
    report_dir: Path,
    expected: int,
    timeout: float,
    server: Server,
    verbose: bool,
) -> tuple[int | None, bool]:
    """Run the fuzzing client.  Returns (exit code or None on timeout, server_died)."""
    log_path = report_dir / "wstest.log"
    started = time.monotonic()
    state: dict[str, Any] = {"count": 0, "current": None}
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [wstest, "-m", "fuzzingclient", "-s", str(spec_path)],
            cwd=str(report_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def reader() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                log_file.write(line)
                log_file.flush()
                if verbose:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                match = CASE_LINE_RE.search(line)
                if match:
                    state["count"] += 1
                    state["current"] = match.group(1)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        server_died = False
        next_progress = started + 30
        code: int | None = None
        try:
            while True:
                try:
                    code = proc.wait(0.2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if not server_died and not server.alive():
                    server_died = True
                    status = server.proc.returncode
                    log(f"the server exited (status {status}) while wstest was running")
                if now - started > timeout:
                    log(f"wstest did not finish within {timeout:.0f}s; stopping it")
                    break
                if now >= next_progress and not verbose:
                    log(f"... {now - started:.0f}s, case {state['current']} ({state['count']}/{expected})")
                    next_progress = now + 30
        finally:
            if proc.poll() is None:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(proc.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        proc.wait(5)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            thread.join(5)
    elapsed = time.monotonic() - started
    log(f"wstest finished in {elapsed:.1f}s (exit status {code}); log: {log_path}")
    return code, server_died


def one_line(text: Any) -> str:
    return " ".join(str(text).split())


def summarise(report_dir: Path, agent: str, requested: list[str]) -> int:
    index_path = report_dir / "index.json"
    results: dict[str, dict[str, Any]] = {}
    if index_path.is_file():
        with open(index_path) as f:
            index = json.load(f)
        results = index.get(agent, {})
        if not results and index:
            # Agent names are taken verbatim, but be lenient.
            results = next(iter(index.values()))
    else:
        log(f"no report: {index_path} was not written")

    requested_set = set(requested)
    extra = sorted(set(results) - requested_set, key=case_key)
    counts: Counter[str] = Counter()
    problems: list[tuple[str, str, str]] = []  # (case, outcome, detail)
    close_notes: list[tuple[str, str]] = []
    missing: list[str] = []
    passed = failed = 0

    for case in requested:
        entry = results.get(case)
        if entry is None:
            counts["missing"] += 1
            failed += 1
            missing.append(case)
            continue
        behavior = str(entry.get("behavior", "?"))
        counts[behavior] += 1
        detail_json: dict[str, Any] = {}
        report_file = entry.get("reportfile")
        if report_file:
            try:
                with open(report_dir / report_file) as f:
                    detail_json = json.load(f)
            except (OSError, ValueError):
                detail_json = {}
        close_beh = entry.get("behaviorClose", detail_json.get("behaviorClose", "?"))
        remote_code = entry.get("remoteCloseCode")
        if behavior == "OK" or (behavior == "INFORMATIONAL" and case in ALLOWED_INFORMATIONAL):
            passed += 1
            if behavior == "INFORMATIONAL":
                detail = describe(detail_json, close_beh, remote_code)
                problems.append((case, "INFORMATIONAL (allowed)", detail))
            elif close_beh != "OK":
                close_notes.append((case, describe(detail_json, close_beh, remote_code)))
            continue
        failed += 1
        label = behavior if behavior != "INFORMATIONAL" else "INFORMATIONAL (not allowed here)"
        problems.append((case, label, describe(detail_json, close_beh, remote_code)))

    print()
    print(f"Autobahn|Testsuite results ({len(requested)} cases requested, agent {agent!r})")
    print(f"  {'outcome':<16}{'count':>6}")
    for outcome in OUTCOMES:
        print(f"  {outcome:<16}{counts.get(outcome, 0):>6}")
    for outcome in sorted(set(counts) - set(OUTCOMES)):
        print(f"  {outcome:<16}{counts[outcome]:>6}")
    if extra:
        print(f"  (index.json also has {len(extra)} cases that were not requested; ignored)")

    if problems:
        print()
        print("Cases that are not OK:")
        for case, label, detail in problems:
            print(f"  {case:<8} {label}")
            if detail:
                for line in detail.splitlines():
                    print(f"           {line}")
    if missing:
        print()
        print(f"Cases missing from index.json ({len(missing)}): {compress(missing)}")
    if close_notes:
        print()
        print("OK cases whose closing behaviour was not OK (not counted as failures):")
        for case, detail in close_notes:
            print(f"  {case:<8} " + detail.replace("\n", "\n           "))
    print()
    if (report_dir / "index.html").is_file() and index_path.is_file():
        print(f"report: {report_dir / 'index.html'}")
    print(f"autobahn: {passed} passed, {failed} failed")
    return 1 if failed else 0


def compress(cases: list[str]) -> str:
    """'6.1.1,6.1.2,6.1.3,6.2.1' -> '6.1.1-6.1.3, 6.2.1'."""
    runs: list[list[str]] = []
    for case in cases:
        if runs:
            last = runs[-1][-1]
            prefix, _, number = last.rpartition(".")
            c_prefix, _, c_number = case.rpartition(".")
            if prefix == c_prefix and int(c_number) == int(number) + 1:
                runs[-1].append(case)
                continue
        runs.append([case])
    return ", ".join(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def describe(detail: dict[str, Any], close_beh: Any, remote_code: Any) -> str:
    lines = []
    if detail.get("description"):
        description = re.sub(r"<[^>]*>", "", str(detail["description"]))
        lines.append(f"case: {limit(one_line(description), 200)}")
    if detail.get("result"):
        lines.append(f"result: {one_line(detail['result'])}")
    if detail.get("expected") is not None and detail.get("behavior") not in ("OK", None):
        lines.append(f"expected: {limit(one_line(json.dumps(detail['expected'])))}")
        lines.append(f"received: {limit(one_line(json.dumps(detail.get('received'))))}")
    close = f"close: {close_beh}"
    if detail.get("resultClose"):
        close += f" - {one_line(detail['resultClose'])}"
    lines.append(close)
    expected_close = detail.get("expectedClose")
    if isinstance(expected_close, dict):
        by = "client (wstest)" if expected_close.get("closedByMe") else "server"
        lines.append(
            f"expected close: by {by}, code in {expected_close.get('closeCode')}, "
            f"clean required: {expected_close.get('requireClean')}"
        )
    observed = []
    if "closedByMe" in detail:
        observed.append("by " + ("client (wstest)" if detail["closedByMe"] else "server"))
    if remote_code is None:
        remote_code = detail.get("remoteCloseCode")
    observed.append(f"remote code {remote_code}")
    if detail.get("remoteCloseReason"):
        observed.append(f"reason {detail['remoteCloseReason']!r}")
    if "wasClean" in detail:
        observed.append(f"clean: {detail['wasClean']}")
    if detail.get("wasNotCleanReason"):
        observed.append(f"({one_line(detail['wasNotCleanReason'])})")
    if "droppedByMe" in detail:
        observed.append(f"TCP dropped by {'client' if detail['droppedByMe'] else 'server'}")
    lines.append("observed close: " + ", ".join(observed))
    return "\n".join(lines)


def limit(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[: n - 4] + " ..."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run Autobahn|Testsuite (fuzzingclient) against refserver or another server.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--quick",
        action="store_true",
        help="all cases except groups 12 and 13, plus 12.1.* and 13.1.* (default)",
    )
    which.add_argument("--full", action="store_true", help="all 517 cases")
    which.add_argument(
        "--cases",
        action="append",
        metavar="PATTERNS",
        help="comma-separated case ids / patterns like '1.*,2.1' (repeatable)",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="PATTERNS",
        help="comma-separated case ids / patterns to leave out (repeatable)",
    )
    parser.add_argument(
        "--target-command",
        metavar="CMD",
        help="command starting the server under test; {host} and {port} are "
        "substituted (split with shlex, not run through a shell)",
    )
    parser.add_argument(
        "--server-args",
        default="",
        metavar="ARGS",
        help="extra arguments for the default refserver command, e.g. '--backend trio'",
    )
    parser.add_argument(
        "--agent",
        help="agent name in the report (default: refserver, or the target command's program name)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=DEFAULT_REPORT_DIR,
        help=f"where wstest writes its report and the logs go (default {DEFAULT_REPORT_DIR})",
    )
    parser.add_argument(
        "--wstest",
        help="wstest executable (default: $AUTOBAHN_WSTEST, $AUTOBAHN_HOME/bin/wstest, "
        "~/.cache/refserver-autobahn/bin/wstest, then PATH)",
    )
    parser.add_argument("--install", action="store_true", help="run install.sh first if wstest is not found")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds allowed for wstest (default 900, 1800 with --full)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        help="seconds allowed for the server to start listening (default 30)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show wstest's output")
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="run refserver and every installed peer (see --targets), one after the other, and print the table",
    )
    parser.add_argument(
        "--docs",
        action="store_true",
        help=f"like --matrix, and write the table to {DOCS_PATH.relative_to(REPO_ROOT)}",
    )
    parser.add_argument(
        "--targets",
        action="append",
        metavar="NAMES",
        help="comma-separated targets for --matrix (default: every one that is installed): " + ", ".join(TARGETS),
    )
    parser.add_argument(
        "--python",
        default=os.environ.get("REFSERVER_CONFORMANCE_PYTHON") or sys.executable,
        help="the interpreter that has the peers installed (default: this one, or $REFSERVER_CONFORMANCE_PYTHON)",
    )
    args = parser.parse_args(argv)

    # --- cases ------------------------------------------------------------------
    if args.cases:
        patterns, mode = split_list(args.cases), "custom"
    elif args.full:
        patterns, mode = FULL_PATTERNS, "full"
    else:
        patterns, mode = QUICK_PATTERNS, "quick"
    excludes = split_list(args.exclude)
    try:
        selected = set(resolve_patterns(patterns, strict=True))
    except ValueError as exc:
        log(str(exc))
        return 2
    selected -= set(resolve_patterns(excludes, strict=False))
    requested = sorted(selected, key=case_key)
    if not requested:
        # wstest hangs forever when no case matches, so never start it.
        log("no case matches the requested patterns")
        return 2
    timeout = args.timeout if args.timeout is not None else (1800.0 if mode == "full" else 900.0)

    # --- wstest -----------------------------------------------------------------
    wstest = find_wstest(args.wstest)
    if wstest is None and args.install and not args.wstest:
        log("wstest not found; running install.sh")
        out = subprocess.run(["bash", str(HERE / "install.sh")], check=False, stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            log("install.sh failed")
            return 2
        wstest = out.stdout.strip().splitlines()[-1]
    if wstest is None:
        log(
            "wstest not found: run `bash compliance/autobahn/install.sh` "
            "(or pass --install, --wstest PATH, or set AUTOBAHN_WSTEST)"
        )
        return 2

    if args.matrix or args.docs:
        return run_matrix(args, requested, excludes, mode, wstest, timeout)

    # --- server -----------------------------------------------------------------
    env = dict(os.environ)
    if args.target_command:
        port = free_port(HOST)
        try:
            server_argv = [part.format(host=HOST, port=port) for part in shlex.split(args.target_command)]
        except (KeyError, IndexError, ValueError) as exc:
            log(f"bad --target-command: {exc}")
            return 2
        agent = args.agent or os.path.basename(server_argv[0]) or "server"
        cwd = Path.cwd()
        wait_url = False
    else:
        port = 0
        server_argv = [
            sys.executable,
            "-m",
            "refserver",
            "echo_app:app",
            "--app-dir",
            str(HERE),
            "--host",
            HOST,
            "--port",
            "0",
            "--log-level",
            "warning",
            *shlex.split(args.server_args),
        ]
        agent = args.agent or "refserver"
        cwd = REPO_ROOT
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        wait_url = True
    agent = re.sub(r"[^A-Za-z0-9_.-]", "_", agent)
    report_dir = args.report_dir.resolve()
    outcome = run_target(
        agent,
        server_argv,
        cwd,
        env,
        port,
        wait_url,
        requested,
        excludes,
        mode,
        wstest,
        report_dir,
        timeout,
        args.startup_timeout,
        args.verbose,
        strict_exit=not args.target_command,
    )
    if outcome is None:
        return 2
    return summarise(report_dir, agent, requested)


def run_target(
    agent: str,
    server_argv: list[str],
    cwd: Path,
    env: dict[str, str],
    port: int,
    wait_url: bool,
    requested: list[str],
    excludes: list[str],
    mode: str,
    wstest: str,
    report_dir: Path,
    timeout: float,
    startup_timeout: float,
    verbose: bool,
    *,
    strict_exit: bool = True,
) -> bool | None:
    """Start one server, run wstest against it, stop it. None when the server did not
    start (a setup error); else whether the server died during the run."""
    report_dir.mkdir(parents=True, exist_ok=True)
    stale = report_dir / "index.json"
    if stale.exists():
        stale.unlink()
    log(f"{agent}: {len(requested)} cases ({mode}); wstest: {wstest}")
    log(f"{agent}: starting server: {shlex.join(server_argv)}")
    started = time.monotonic()
    try:
        server = Server(server_argv, cwd, env, report_dir)
    except OSError as exc:
        log(f"cannot start the server: {exc}")
        return None
    server_died = False
    try:
        deadline = started + startup_timeout
        host = HOST
        if not wait_url:
            ok = server.wait_for_port(HOST, port, deadline)
        else:
            url = server.wait_for_url(deadline)
            ok = False
            if url:
                match = re.match(r"http://(\[[^\]]+\]|[^:/]+):(\d+)", url)
                if match:
                    host, port, ok = match.group(1), int(match.group(2)), True
                else:
                    log(f"cannot parse the listening URL {url!r}")
        if not ok:
            if server.alive():
                log(f"the server did not start listening within {startup_timeout:.0f}s")
            else:
                log(f"the server exited with status {server.proc.returncode} before listening")
            server.stop()
            print_server_logs(server)
            return None
        ws_url = f"ws://{host}:{port}"
        log(f"server (pid {server.proc.pid}) listening on {ws_url} after {time.monotonic() - started:.1f}s")

        spec = {
            "outdir": str(report_dir),
            "servers": [{"agent": agent, "url": ws_url}],
            # The resolved, explicit case list: wstest then runs exactly the
            # cases counted above (exclusions are already applied).
            "cases": requested,
            "exclude-cases": excludes,
            "exclude-agent-cases": {},
        }
        spec_path = report_dir / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec, indent=2) + "\n")
        code, server_died = run_wstest(wstest, spec_path, report_dir, len(requested), timeout, server, verbose)
        if code not in (0, None):
            log(f"wstest exited with status {code}; tail of {report_dir / 'wstest.log'}:")
            print(tail(report_dir / "wstest.log"))
    finally:
        server.stop()
    if server_died or (server.proc.returncode not in (0, None, -signal.SIGINT, -signal.SIGTERM) and strict_exit):
        print_server_logs(server)
    return server_died


# ---------------------------------------------------------------------- every peer

DOCS_PATH = REPO_ROOT / "docs" / "compliance.md"

# The echo app under every server the conformance harness knows, with its default
# WebSocket settings. ``{python}`` is --python; the servers run in this directory, so
# ``echo_app:app`` imports. (name, distribution whose version is reported, argv)
TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "refserver": (
        "refserver",
        ("{python}", "-m", "refserver", "echo_app:app", "--port", "{port}", "--log-level", "warning"),
    ),
    "refserver-trio": (
        "refserver",
        (
            "{python}",
            "-m",
            "refserver",
            "echo_app:app",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "--backend",
            "trio",
        ),
    ),
    "uvicorn": (
        "uvicorn",
        ("{python}", "-m", "uvicorn", "echo_app:app", "--port", "{port}", "--ws", "websockets-sansio"),
    ),
    "uvicorn-wsproto": (
        "uvicorn",
        ("{python}", "-m", "uvicorn", "echo_app:app", "--port", "{port}", "--ws", "wsproto"),
    ),
    "uvicorn-websockets": (
        "uvicorn",
        ("{python}", "-m", "uvicorn", "echo_app:app", "--port", "{port}", "--ws", "websockets"),
    ),
    "hypercorn": ("hypercorn", ("{python}", "-m", "hypercorn", "--bind", "{host}:{port}", "echo_app:app")),
    "hypercorn-trio": (
        "hypercorn",
        ("{python}", "-m", "hypercorn", "--bind", "{host}:{port}", "--worker-class", "trio", "echo_app:app"),
    ),
    "daphne": ("daphne", ("{python}", "-m", "daphne", "-b", "{host}", "-p", "{port}", "echo_app:app")),
    "granian": (
        "granian",
        ("{python}", "-m", "granian", "--interface", "asgi", "--host", "{host}", "--port", "{port}", "echo_app:app"),
    ),
    "gunicorn": (
        "gunicorn",
        (
            "{python}",
            "-m",
            "gunicorn",
            "--worker-class",
            "asgi",
            "--workers",
            "1",
            "--bind",
            "{host}:{port}",
            "echo_app:app",
        ),
    ),
}
MODULES = {"refserver-trio": "refserver,trio", "hypercorn-trio": "hypercorn,trio", "uvicorn-wsproto": "uvicorn,wsproto"}


def target_version(python: str, name: str) -> str | None:
    """The installed version of the target's distribution for ``python``; None if missing."""
    dist = TARGETS[name][0]
    modules = MODULES.get(name, dist).split(",")
    code = (
        "import importlib.util, importlib.metadata, sys\n"
        f"if any(importlib.util.find_spec(m) is None for m in {modules!r}): sys.exit(1)\n"
        f"print(importlib.metadata.version({dist!r}))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or "unknown"


def collect(report_dir: Path, agent: str, requested: list[str]) -> Counter[str]:
    """Outcome counts of one target's report (``missing`` for cases absent from it)."""
    counts: Counter[str] = Counter()
    index_path = report_dir / "index.json"
    results: dict[str, Any] = {}
    if index_path.is_file():
        with open(index_path) as f:
            index = json.load(f)
        results = index.get(agent) or (next(iter(index.values())) if index else {})
    for case in requested:
        entry = results.get(case)
        counts["missing" if entry is None else str(entry.get("behavior", "?"))] += 1
    return counts


def not_ok(report_dir: Path, agent: str, requested: list[str]) -> list[tuple[str, str]]:
    index_path = report_dir / "index.json"
    if not index_path.is_file():
        return []
    with open(index_path) as f:
        index = json.load(f)
    results = index.get(agent) or (next(iter(index.values())) if index else {})
    out = []
    for case in requested:
        behavior = str((results.get(case) or {}).get("behavior", "missing"))
        if behavior != "OK" and not (behavior == "INFORMATIONAL" and case in ALLOWED_INFORMATIONAL):
            out.append((case, behavior))
    return out


def run_matrix(
    args: argparse.Namespace, requested: list[str], excludes: list[str], mode: str, wstest: str, timeout: float
) -> int:
    names = split_list(args.targets) or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        log(f"unknown target {unknown[0]!r}; known: {', '.join(TARGETS)}")
        return 2
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    for name in names:
        version = target_version(args.python, name)
        if version is None:
            log(f"{name}: not installed for {args.python}; skipped")
            rows.append({"name": name, "version": None})
            continue
        port = free_port(HOST)
        argv = [part.format(python=args.python, host=HOST, port=port) for part in TARGETS[name][1]]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PATH"] = os.pathsep.join(p for p in (os.path.dirname(args.python), env.get("PATH", "")) if p)
        report_dir = (args.report_dir / name).resolve()
        t0 = time.monotonic()
        died = run_target(
            name,
            argv,
            HERE,
            env,
            port,
            False,
            requested,
            excludes,
            mode,
            wstest,
            report_dir,
            timeout,
            args.startup_timeout,
            args.verbose,
            strict_exit=True,
        )
        counts = collect(report_dir, name, requested) if died is not None else Counter({"missing": len(requested)})
        rows.append(
            {
                "name": name,
                "version": version,
                "command": shlex.join(argv).replace(args.python, "python").replace(str(port), "PORT"),
                "counts": counts,
                "died": bool(died) or died is None,
                "not_ok": not_ok(report_dir, name, requested) if died is not None else [],
                "seconds": time.monotonic() - t0,
            }
        )
    elapsed = time.monotonic() - started
    text = render_matrix(rows, requested, mode, elapsed)
    print(text)
    if args.docs:
        DOCS_PATH.write_text(text, encoding="utf-8")
        log(f"wrote {DOCS_PATH}")
    ref = next((r for r in rows if r["name"] == "refserver" and r.get("version")), None)
    if ref is None:
        return 0
    bad = sum(ref["counts"][o] for o in ("NON-STRICT", "FAILED", "UNIMPLEMENTED", "missing"))
    return 1 if bad else 0


def render_matrix(rows: list[dict[str, Any]], requested: list[str], mode: str, elapsed: float) -> str:
    import datetime
    import platform

    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    cases = (
        "all 517 cases of groups 1-13 (compression included)"
        if mode == "full"
        else f"{len(requested)} cases ({mode} set)"
    )
    out = [
        "# Autobahn|Testsuite results",
        "",
        "Generated by `python compliance/autobahn/run.py --docs"
        + (" --full" if mode == "full" else "")
        + "`; do not edit by hand.",
        "",
        f"[Autobahn|Testsuite](https://github.com/crossbario/autobahn-testsuite) 25.10.1 (`wstest -m fuzzingclient`), "
        f"{cases}, against the ASGI echo app `compliance/autobahn/echo_app.py` on loopback, every server with its "
        f"default WebSocket settings. Measured {date} on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"in {elapsed / 60:.0f} min; every row is measured in this run.",
        "",
        "| server | version | " + " | ".join(OUTCOMES) + " | server died |",
        "|---|---|" + "---|" * (len(OUTCOMES) + 1),
    ]
    for row in rows:
        if row.get("version") is None:
            out.append(f"| {row['name']} | not installed |" + " |" * (len(OUTCOMES) + 1))
            continue
        counts = row["counts"]
        name = f"**{row['name']}**" if row["name"].startswith("refserver") else row["name"]
        out.append(
            f"| {name} | {row['version']} | "
            + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES)
            + f" | {'yes' if row['died'] else 'no'} |"
        )
    out += [
        "",
        "INFORMATIONAL is the only possible outcome of 7.1.6, 7.13.1 and 7.13.2 (the suite records what the server "
        "did); `missing` counts cases with no result (the server stopped answering, or died).",
        "",
        "NON-STRICT in 3.2-3.4, 4.1.3-4.2.5 and 5.15 means: the client sends a valid message and then a bad frame, "
        "and the server failed the connection before the valid message was echoed. refserver holds the failure "
        "until the app has taken every earlier message (docs/decisions.md#failing-the-connection), so the echo "
        "goes out first.",
        "",
        "## Cases that are not OK",
        "",
    ]
    for row in rows:
        if row.get("version") is None:
            continue
        cases = row["not_ok"]
        if not cases:
            out.append(f"- {row['name']}: none")
            continue
        by_outcome: dict[str, list[str]] = {}
        for case, behavior in cases:
            by_outcome.setdefault(behavior, []).append(case)
        listed = "; ".join(f"{b}: {compress(c)}" for b, c in sorted(by_outcome.items()))
        out.append(f"- {row['name']}: {listed}")
    out += ["", "## Command lines", ""]
    out += [f"- {row['name']}: `{row['command']}`" for row in rows if row.get("version")]
    out += [
        "",
        "## Reproducing",
        "",
        "```sh",
        "bash compliance/autobahn/install.sh                     # once; installs outside the repository",
        "python -m venv /tmp/peers && /tmp/peers/bin/pip install -e '.[conformance]'",
        "/tmp/peers/bin/python compliance/autobahn/run.py --docs            # the quick set, every target",
        "/tmp/peers/bin/python compliance/autobahn/run.py --docs --full     # all 517 cases, every target",
        "python compliance/autobahn/run.py --full --target-command \\",
        "  'uvicorn echo_app:app --app-dir compliance/autobahn --ws wsproto --host {host} --port {port}'",
        "```",
        "",
        "`run.py` exits non-zero when any case of refserver is FAILED, NON-STRICT, UNIMPLEMENTED or missing "
        "(INFORMATIONAL is allowed only for 7.1.6, 7.13.1 and 7.13.2); the peers' outcomes are reported, not judged.",
        "",
    ]
    return "\n".join(out)


def print_server_logs(server: Server) -> None:
    for path in (server.stderr_path, server.stdout_path):
        text = tail(path)
        if text:
            print(f"--- tail of {path} ---")
            print(text)
            print("---")


if __name__ == "__main__":
    sys.exit(main())
