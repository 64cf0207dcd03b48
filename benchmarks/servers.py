"""The servers under test: how to start each one, and what it costs, read from /proc.

Each repetition starts a fresh process (its own session, so its workers are one process group),
pinned to the server's core, on a free loopback port picked just before the start. Readiness is
one complete HTTP answer from the echo app, so a server whose master binds before its worker
loads the app (gunicorn, granian) is not measured early. The server's CPU time and memory are
those of the whole process tree (master and workers), from /proc/<pid>/stat and
/proc/<pid>/status.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
APP = "benchmarks.echo_app:app"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")

# Workload families a target can serve: "ws" (WebSocket echo), "http" (keep-alive GET),
# "raw" (bytes echoed with no framing: the raw TCP limit targets).
WS, HTTP, RAW = "ws", "http", "raw"


@dataclass(frozen=True)
class Target:
    """One server configuration. ``argv`` may use ``{python}``, ``{app}``, ``{host}`` and ``{port}``."""

    name: str
    description: str
    argv: tuple[str, ...]
    modules: tuple[str, ...]  # all must be importable for the target to run
    dist: str  # distribution whose version is reported
    serves: tuple[str, ...] = (WS, HTTP)
    pythonpath: str = ""  # searched before this checkout (an older refserver, for before/after)

    def missing(self) -> list[str]:
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def version(self) -> str:
        if self.dist == "refserver":
            return refserver_version() if not self.pythonpath else f"from {self.pythonpath}"
        if self.dist == "python":
            return f"Python {platform.python_version()}"
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"


_PY = ("{python}", "-m")
_REFSERVER = (*_PY, "refserver", "{app}", "--host", "{host}", "--port", "{port}")
_REFSERVER_OPTS = ("--no-access-log", "--log-level", "warning", "--lifespan", "on")
_UVICORN = (*_PY, "uvicorn", "{app}", "--host", "{host}", "--port", "{port}", "--log-level", "warning")
# uvloop and httptools would be picked up silently if installed: pin the pure-Python stack.
_UVICORN_OPTS = ("--no-access-log", "--loop", "asyncio", "--http", "h11", "--lifespan", "on")
_HYPERCORN = (*_PY, "hypercorn", "{app}", "--bind", "{host}:{port}", "--log-level", "warning", "--workers", "1")

BASELINE = "uvicorn-wsproto"


def refserver_at(checkout: str) -> Target:
    """refserver (asyncio) from another checkout (``git worktree add DIR REV``): the "before"
    of a change, measured in the same run as the "after"."""
    return Target(
        "refserver-at",
        f"refserver (asyncio) from {checkout}",
        (*_REFSERVER, *_REFSERVER_OPTS),
        ("refserver",),
        "refserver",
        pythonpath=checkout,
    )


TARGETS: tuple[Target, ...] = (
    Target(
        "uvicorn-wsproto",
        "uvicorn --ws wsproto --http h11 --loop asyncio (the baseline)",
        (*_UVICORN, *_UVICORN_OPTS, "--ws", "wsproto"),
        ("uvicorn", "wsproto"),
        "uvicorn",
    ),
    Target(
        "refserver",
        "refserver (asyncio)",
        (*_REFSERVER, *_REFSERVER_OPTS),
        ("refserver",),
        "refserver",
    ),
    Target(
        "refserver-trio",
        "refserver --backend trio",
        (*_REFSERVER, *_REFSERVER_OPTS, "--backend", "trio"),
        ("refserver", "trio"),
        "refserver",
    ),
    Target(
        "uvicorn",
        "uvicorn --http h11 --loop asyncio, default --ws (websockets-sansio)",
        (*_UVICORN, *_UVICORN_OPTS),
        ("uvicorn", "websockets"),
        "uvicorn",
    ),
    Target(
        "hypercorn",
        "hypercorn (asyncio worker)",
        (*_HYPERCORN, "--worker-class", "asyncio"),
        ("hypercorn",),
        "hypercorn",
    ),
    Target(
        "hypercorn-trio",
        "hypercorn -k trio",
        (*_HYPERCORN, "--worker-class", "trio"),
        ("hypercorn", "trio"),
        "hypercorn",
    ),
    Target(
        "granian",
        "granian --interface asgi (Rust I/O, 1 worker)",
        (
            *_PY,
            "granian",
            "--interface",
            "asgi",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
            "{app}",
        ),
        ("granian",),
        "granian",
    ),
    Target(
        "gunicorn",
        "gunicorn --worker-class asgi --asgi-loop asyncio (1 worker)",
        (
            *_PY,
            "gunicorn",
            "--worker-class",
            "asgi",
            "--asgi-loop",
            "asyncio",
            "--workers",
            "1",
            "--bind",
            "{host}:{port}",
            "--log-level",
            "warning",
            "{app}",
        ),
        ("gunicorn",),
        "gunicorn",
    ),
    # The limits: what the socket and the event loop cost with no HTTP and no WebSocket framing.
    Target(
        "tcp-asyncio",
        "limit: raw TCP echo, an asyncio Protocol (no framing)",
        (*_PY, "benchmarks.limits", "tcp-asyncio", "--host", "{host}", "--port", "{port}"),
        (),
        "python",
        serves=(RAW,),
    ),
    Target(
        "tcp-anyio",
        "limit: raw TCP echo, anyio streams on asyncio (no framing)",
        (*_PY, "benchmarks.limits", "tcp-anyio", "--host", "{host}", "--port", "{port}"),
        ("anyio",),
        "anyio",
        serves=(RAW,),
    ),
)

TARGETS_BY_NAME = {t.name: t for t in TARGETS}


def refserver_version() -> str:
    """The installed version, plus the commit of the work tree the benchmark runs from."""
    try:
        version = importlib.metadata.version("refserver")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version} ({commit})"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def cores() -> tuple[set[int], set[int]]:
    """(server cores, client cores): different cores where there are at least two."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return set(available), set(available)
    return {available[0]}, {available[1]}


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found.extend(int(p) for p in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    i = 0
    while i < len(pids):
        pids.extend(_children(pids[i]))
        i += 1
    return pids


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) * _TICK_S


def sleeps(pid: int) -> int:
    """How often the process (all its threads) gave up the CPU to wait: its voluntary context
    switches, each a sleep the kernel later woke it from."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def rss_bytes(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class ServerProcess:
    """A running server: start with :meth:`start`, measure, then :meth:`stop`."""

    def __init__(self, target: Target, pin: set[int] | None) -> None:
        self.target = target
        self.pin = pin
        self.port = free_port()
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        argv = [a.format(python=sys.executable, app=APP, host=HOST, port=self.port) for a in target.argv]
        env = dict(os.environ)
        paths = [target.pythonpath, str(REPO), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env.pop("PYTHONASYNCIODEBUG", None)
        pin_cores = pin

        def preexec() -> None:
            if pin_cores:
                os.sched_setaffinity(0, pin_cores)

        self.proc = subprocess.Popen(
            argv,
            cwd=target.pythonpath or REPO,  # `python -m` puts the working directory first
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, limit: int = 2000) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def wait_ready(self) -> None:
        """Until one complete HTTP answer (or, for a raw echo, one echo) comes back."""
        deadline = time.monotonic() + START_TIMEOUT_S
        probe = b"ping" if self.target.serves == (RAW,) else b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.target.name} not ready after {START_TIMEOUT_S} s:\n{self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=2.0) as sock:
                    sock.sendall(probe)
                    answer = sock.recv(4096)
                if answer.startswith(b"HTTP/1.1 200") or answer == probe:
                    return
            except OSError:
                pass
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in process_tree(self.pid))

    def sleeps(self) -> int:
        return sum(sleeps(p) for p in process_tree(self.pid))

    def rss_bytes(self) -> int:
        return sum(rss_bytes(p) for p in process_tree(self.pid))

    def stop(self) -> None:
        tree = process_tree(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)  # not reaped yet, so the group id is still ours
            self.proc.wait(STOP_TIMEOUT_S)
        # Workers the master left behind: only those still in the group we started.
        for pid in tree[1:]:
            if _process_group(pid) == self.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


def _process_group(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[2])  # field 5, pgrp
