"""The kill-rate command (``python -m refserver.conformance.mutants``; see the package docstring)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from refserver.conformance.mutants import boundary, own

PACKAGE = Path(__file__).resolve().parent.parent.parent  # the refserver package
DOCS_PATH = PACKAGE.parent / "docs" / "conformance.md"
SECTION_TITLE = "## How strong the harness is"
COMMAND = "python -m refserver.conformance.mutants --write-docs"
MAX_PARALLEL = 2  # mutants run at once (each in a process of its own, with its servers)
RUN_TIMEOUT_S = 600.0
RESULTS_PATH = PACKAGE.parent / "docs" / "mutants.json"  # every outcome of the last runs, merged by mutant


@dataclass
class Outcome:
    kind: str
    name: str
    bug: str
    caught_by: list[str] = field(default_factory=list)  # the scenarios that caught it, confirmed
    problem: str = ""  # a fault of the command (a mutant that does not apply, a run that failed)

    @property
    def caught(self) -> bool:
        return bool(self.caught_by)


# ---------------------------------------------------------------------- one run, in its own process


def run_one(kind: str, name: str, patterns: Sequence[str], jobs: int) -> dict[str, object]:
    """Run the catalogue (or the scenarios matching ``patterns``) against refserver with the
    mutant in place (``own``: this process already imports the mutated copy; ``boundary``: the
    server runs the wrapper app). Returns {"missed": {scenario: [what]}}."""
    import anyio

    from refserver.conformance import cli, targets
    from refserver.conformance import verdict as V

    if kind == "boundary":
        os.environ[boundary.MUTANT_ENV] = name
        # The server under test runs the wrapper in front of the probe app: the one name the
        # targets module fills {app} with (this process runs one mutant and nothing else).
        targets.PROBE_APP = "refserver.conformance.mutants.boundary:app"
    scenarios = [s for s in cli.select_scenarios(patterns) if not s.meta]
    runs = cli.resolve_targets(["refserver"], [], sys.executable)
    report = anyio.run(lambda: cli.run_report(runs, scenarios, jobs=jobs), backend="asyncio")
    missed: dict[str, list[str]] = {}
    for cell in report.cells:
        items = V.self_expectation_missed(cell)
        if items:
            missed[cell.scenario] = items
    return {"missed": missed}


def _spawn(kind: str, name: str, patterns: Sequence[str], jobs: int, package_root: Path) -> dict[str, object]:
    """``run_one`` in a fresh interpreter whose ``refserver`` is the one under ``package_root``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(package_root)
    env.pop(boundary.MUTANT_ENV, None)
    argv = [sys.executable, "-m", "refserver.conformance.mutants", "--run-one", kind, name, "--jobs", str(jobs)]
    for p in patterns:
        argv += ["--scenario", p]
    done = subprocess.run(
        argv, cwd=package_root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the run exited {done.returncode}: {done.stderr.strip()[-600:]}")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def _scratch_copy(into: Path, mutant: own.SourceMutant | None, source: Path = PACKAGE) -> Path:
    """A copy of the package ``source`` under ``into`` (the mutant's edit made), and the directory
    to put on the path."""
    target = into / "refserver"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if mutant is not None:
        own.apply(target, mutant)
    return into


def judge(
    kind: str, name: str, bug: str, patterns: Sequence[str], jobs: int, baseline: set[str], source: Path
) -> Outcome:
    """Run one mutant, and the scenarios that caught it once more to confirm."""
    outcome = Outcome(kind, name, bug)
    with tempfile.TemporaryDirectory(prefix=f"mutant-{kind}-") as tmp:
        try:
            root = _scratch_copy(Path(tmp), own.BY_NAME[name] if kind == "own" else None, source)
            first = _spawn(kind, name, patterns, jobs, root)
            missed = sorted(set(first["missed"]) - baseline)  # type: ignore[call-overload]
            if missed:
                again = _spawn(kind, name, missed, jobs, root)
                outcome.caught_by = sorted(set(again["missed"]) & set(missed))  # type: ignore[call-overload]
        except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
            outcome.problem = str(exc)
    return outcome


# ---------------------------------------------------------------------- the report


def rate(outcomes: Sequence[Outcome], kind: str) -> tuple[int, int]:
    mine = [o for o in outcomes if o.kind == kind and not o.problem]
    return sum(o.caught for o in mine), len(mine)


def load_results(path: Path) -> dict[str, Outcome]:
    """The outcomes stored by ``--write-docs``, by ``kind:name`` (none if there is no file)."""
    if not path.exists():
        return {}
    return {f"{d['kind']}:{d['name']}": Outcome(**d) for d in json.loads(path.read_text(encoding="utf-8"))}


def render_section(
    outcomes: Sequence[Outcome], explained: dict[str, str], when: str, seconds: float, last_run: int = 0
) -> str:
    """The markdown section "How strong the harness is"."""
    lines = [SECTION_TITLE, ""]
    lines.append(
        "Server bugs planted one at a time, and how many the catalogue catches on its own, run against refserver "
        "alone. Two kinds: **own-code** mutants edit refserver's source (a scratch copy; one realistic edit each, "
        "in `refserver/conformance/mutants/own.py`), and **boundary** mutants put a wrapper between the server "
        "and the probe app that changes what the app receives or what reaches the server "
        "(`refserver/conformance/mutants/boundary.py`; they work on any server). A mutant is caught when "
        "refserver misses one of its own expectations in some scenario, twice in a row."
    )
    lines.append("")
    took = f"the last run, of {last_run} mutants, took {seconds:.0f} s; " if last_run else ""
    lines.append(
        f"Measured {when} ({took}every outcome is in `docs/mutants.json`); reproduce "
        f"with `{COMMAND}` (two mutants at a time, each in a process of its own; `--only NAME` reruns some)."
    )
    lines.append("")
    lines.append("| kind | caught | planted | kill rate |")
    lines.append("|---|---|---|---|")
    for kind, label in (("own", "own code"), ("boundary", "ASGI boundary")):
        caught, total = rate(outcomes, kind)
        pct = f"{100 * caught / total:.1f} %" if total else "n/a"
        lines.append(f"| {label} | {caught} | {total} | {pct} |")
    lines.append("")
    lines.append(FIRST_MEASUREMENT)
    lines.append("")
    rescued = [o for o in outcomes if o.caught and f"{o.kind}:{o.name}" in ADDED_FOR]
    if rescued:
        lines.append("Survivors of the first measurement, each caught since by the scenario added for it:")
        lines.append("")
        for o in rescued:
            lines.append(f"- `{o.kind}:{o.name}` ({o.bug}): `{ADDED_FOR[f'{o.kind}:{o.name}']}`")
        lines.append("")
    survivors = [o for o in outcomes if not o.caught and not o.problem]
    if survivors:
        lines.append("Survivors, and why no black-box scenario can see them:")
        lines.append("")
        for o in survivors:
            why = explained.get(f"{o.kind}:{o.name}", "not yet explained")
            lines.append(f"- `{o.kind}:{o.name}` ({o.bug}): {why}")
    else:
        lines.append("Every planted bug was caught.")
    broken = [o for o in outcomes if o.problem]
    if broken:
        lines.append("")
        lines.append("Not judged (the command could not run them):")
        lines.append("")
        for o in broken:
            lines.append(f"- `{o.kind}:{o.name}`: {o.problem[:200]}")
    lines.append("")
    return "\n".join(lines) + "\n"


# The first measurement, before scenarios were added for its survivors (which were then run again).
FIRST_MEASUREMENT = (
    "The first measurement, with the catalogue of 164 scenarios, caught 52 of 60 own-code mutants (86.7 %) and 61 "
    "of 64 boundary mutants (95.3 %); the survivors were run again with the scenarios added for them."
)

# Survivors of the first measurement (164 scenarios) and the scenario added to catch each.
ADDED_FOR: dict[str, str] = {
    "own:http.204-body-on-wire": "http.response.204-streamed",
    "own:http.no-content-length": "http.response.whole-body-length",
    "own:http.app-transfer-encoding-kept": "http.response.app-transfer-encoding-gzip",
    "own:http.no-date": "http.response.date",
    "own:http.connect-served": "http.request.connect",
    "own:http.shutdown-no-connection-close": "http.shutdown.in-flight",
    "own:scope.absolute-form-kept": "http.request.absolute-form",
    "own:scope.denial-extension-missing": "ws.scope.extensions",
    "boundary:scope.headers-no-host": "http.scope.host-header",
    "boundary:scope.www-spec-version-missing": "http.scope.spec-version",
}

# Survivors that no black-box scenario can see, and why (kind:name -> reason).
EXPLAINED: dict[str, str] = {
    "boundary:http.pathsend-empty": "equivalent on refserver: refserver does not advertise http.response.pathsend "
    "or http.response.zerocopysend, so the probe never sends them (their scenarios are n/a) and the wrapper has "
    "nothing to change; on a server that advertises them, http.ext.pathsend sees the empty body",
}


def splice_section(document: str, section: str) -> str:
    """``document`` with its "How strong the harness is" section replaced by ``section`` (or
    put before "## Targets")."""
    pattern = re.compile(re.escape(SECTION_TITLE) + r"\n.*?(?=^## )", re.S | re.M)
    if pattern.search(document):
        return pattern.sub(lambda _: section, document, count=1)
    anchor = document.find("\n## Targets")
    if anchor < 0:
        return document.rstrip("\n") + "\n\n" + section
    return document[: anchor + 1] + section + "\n" + document[anchor + 1 :]


def existing_section(document: str) -> str | None:
    """The "How strong the harness is" section of ``document``, if it has one."""
    match = re.search(re.escape(SECTION_TITLE) + r"\n.*?(?=^## )", document, re.S | re.M)
    return match.group(0) if match else None


# ---------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m refserver.conformance.mutants",
        description="Plant server bugs one at a time and report how many the conformance harness catches alone.",
    )
    p.add_argument("--kind", choices=("own", "boundary", "both"), default="both")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these mutants (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--scenario", action="append", default=[], metavar="PATTERN", help="run only these scenarios")
    p.add_argument("--parallel", type=int, default=MAX_PARALLEL, help=f"mutants at once (at most {MAX_PARALLEL})")
    p.add_argument("--jobs", type=int, default=3, metavar="N", help="lanes per run (servers at once per mutant)")
    p.add_argument(
        "--write-docs",
        action="store_true",
        help=f"merge the outcomes into {RESULTS_PATH.name} (a rerun of some mutants replaces theirs) and write the "
        f"section of {DOCS_PATH.name} from it",
    )
    p.add_argument(
        "--from-results",
        action="store_true",
        help=f"run nothing: write the section of {DOCS_PATH.name} from {RESULTS_PATH.name} as it stands",
    )
    p.add_argument("--run-one", nargs=2, metavar=("KIND", "NAME"), help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true")
    return p


def all_mutants(kind: str, only: Sequence[str]) -> list[tuple[str, str, str]]:
    chosen: list[tuple[str, str, str]] = []
    if kind in ("own", "both"):
        chosen += [("own", m.name, m.bug) for m in own.MUTANTS]
    if kind in ("boundary", "both"):
        chosen += [("boundary", m.name, m.bug) for m in boundary.MUTANTS]
    if only:
        chosen = [c for c in chosen if c[1] in only or f"{c[0]}:{c[1]}" in only]
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.run_one:
        kind, name = args.run_one
        print(json.dumps(run_one(kind, name if name != "-" else "", args.scenario, args.jobs)))
        return 0
    if args.from_results:
        kept = list(load_results(RESULTS_PATH).values())
        section = render_section(kept, EXPLAINED, time.strftime("%Y-%m-%d", time.gmtime()), 0.0)
        DOCS_PATH.write_text(splice_section(DOCS_PATH.read_text(encoding="utf-8"), section), encoding="utf-8")
        print(f"mutants: the section of {DOCS_PATH} written from {RESULTS_PATH}", file=sys.stderr)
        return 0
    chosen = all_mutants(args.kind, args.only)
    if args.list:
        for kind, name, bug in chosen:
            print(f"{kind:<9} {name:<40} {bug}")
        print(f"\n{len(chosen)} mutants")
        return 0
    if not chosen:
        print("mutants: nothing matches --only", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    started = time.monotonic()
    # One snapshot of the package for the whole run, so that edits made meanwhile change nothing.
    snapshot_dir = tempfile.TemporaryDirectory(prefix="mutant-source-")
    source = _scratch_copy(Path(snapshot_dir.name), None) / "refserver"
    # The unmutated server first: a scenario it misses (a slow machine) cannot catch anything.
    baseline: set[str] = set()
    for kind in sorted({c[0] for c in chosen}):
        with tempfile.TemporaryDirectory(prefix="mutant-baseline-") as tmp:
            root = _scratch_copy(Path(tmp), None, source)
            missed = _spawn(kind, "-", args.scenario, args.jobs, root)["missed"]
            baseline |= set(missed)  # type: ignore[call-overload]
    if baseline:
        say(f"mutants: the unmutated server misses {sorted(baseline)}; those scenarios catch nothing")
    parallel = max(1, min(args.parallel, MAX_PARALLEL))
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(judge, k, n, b, args.scenario, args.jobs, baseline, source) for k, n, b in chosen]
        for future in futures:
            o = future.result()
            outcomes.append(o)
            verdict = "caught by " + ", ".join(o.caught_by[:3]) if o.caught else o.problem or "SURVIVED"
            say(f"  {o.kind:<9} {o.name:<40} {verdict}")
    snapshot_dir.cleanup()
    seconds = time.monotonic() - started
    for kind in ("own", "boundary"):
        caught, total = rate(outcomes, kind)
        if total:
            print(f"{kind}: {caught}/{total} caught ({100 * caught / total:.1f} %)")
    for o in outcomes:
        if not o.caught:
            print(f"  survivor {o.kind}:{o.name}: {o.problem or EXPLAINED.get(f'{o.kind}:{o.name}', o.bug)}")
    if args.write_docs:
        merged = load_results(RESULTS_PATH)
        merged.update({f"{o.kind}:{o.name}": o for o in outcomes})
        known = {f"{k}:{n}" for k, n, _ in all_mutants("both", ())}
        kept = [o for key, o in merged.items() if key in known]
        RESULTS_PATH.write_text(
            json.dumps([o.__dict__ for o in kept], indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        when = time.strftime("%Y-%m-%d", time.gmtime())
        section = render_section(kept, EXPLAINED, when, seconds, len(outcomes))
        DOCS_PATH.write_text(splice_section(DOCS_PATH.read_text(encoding="utf-8"), section), encoding="utf-8")
        print(f"mutants: written to {RESULTS_PATH} and {DOCS_PATH}", file=sys.stderr)
    return 0
