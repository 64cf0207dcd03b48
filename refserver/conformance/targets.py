"""Targets: the servers under test, how to start them, and how to stop them.

A target is started as a subprocess (its own session, so its workers are one process
group whose id is the PID we started) on a free loopback port, with the probe app as its
app and the side channel's address in the environment. Readiness is "the port accepts a
TCP connection". Stopping is SIGTERM, then SIGKILL to that process group after a grace
period. refserver can also run in-process (the tests do), through its public ``serve()``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc

import refserver
from refserver.conformance.probe import LIFESPAN_ENV, REPORT_ENV

PROBE_APP = "refserver.conformance.probe:app"
HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class TargetSpec:
    """How to run one server configuration. ``argv`` may use ``{python}``, ``{app}``,
    ``{host}`` and ``{port}``; ``ping_argv`` may use ``{interval}`` and ``{interval_int}``."""

    name: str
    description: str
    argv: tuple[str, ...]
    module: str | None = None  # modules (comma-separated) that ``python`` must import for the target to count
    dist: str | None = None  # distribution whose version is reported
    ping_argv: tuple[str, ...] = ()
    builtin: bool = True
    shell: bool = False  # a --target-command: run through the shell


_COMMON = ("{python}", "-m")
_UVICORN_PING = ("--ws-ping-interval", "{interval}", "--ws-ping-timeout", "{interval}")

BUILTIN_TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec(
        "refserver",
        "refserver (asyncio)",
        (
            *_COMMON,
            "refserver",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--no-access-log",
            "--log-level",
            "warning",
        ),
        "refserver",
        "refserver",
        ("--ws-ping-interval", "{interval}", "--ws-ping-timeout", "{interval}"),
    ),
    TargetSpec(
        "refserver-trio",
        "refserver (trio)",
        (
            *_COMMON,
            "refserver",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backend",
            "trio",
        ),
        "refserver,trio",
        "refserver",
        ("--ws-ping-interval", "{interval}", "--ws-ping-timeout", "{interval}"),
    ),
    TargetSpec(
        "uvicorn",
        "uvicorn --ws websockets-sansio (the default)",
        (
            *_COMMON,
            "uvicorn",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--ws",
            "websockets-sansio",
            "--log-level",
            "warning",
            "--no-access-log",
        ),
        "uvicorn",
        "uvicorn",
        _UVICORN_PING,
    ),
    TargetSpec(
        "uvicorn-wsproto",
        "uvicorn --ws wsproto",
        (
            *_COMMON,
            "uvicorn",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--ws",
            "wsproto",
            "--log-level",
            "warning",
            "--no-access-log",
        ),
        "uvicorn,wsproto",
        "uvicorn",
        _UVICORN_PING,
    ),
    TargetSpec(
        "uvicorn-websockets",
        "uvicorn --ws websockets (legacy)",
        (
            *_COMMON,
            "uvicorn",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--ws",
            "websockets",
            "--log-level",
            "warning",
            "--no-access-log",
        ),
        "uvicorn,websockets",
        "uvicorn",
        _UVICORN_PING,
    ),
    TargetSpec(
        "hypercorn",
        "hypercorn (asyncio)",
        (*_COMMON, "hypercorn", "{app}", "--bind", "{host}:{port}", "--log-level", "warning"),
        "hypercorn",
        "hypercorn",
        ("--websocket-ping-interval", "{interval_int}"),
    ),
    TargetSpec(
        "hypercorn-trio",
        "hypercorn -k trio",
        (*_COMMON, "hypercorn", "{app}", "--bind", "{host}:{port}", "--log-level", "warning", "--worker-class", "trio"),
        "hypercorn,trio",
        "hypercorn",
        ("--websocket-ping-interval", "{interval_int}"),
    ),
    TargetSpec(
        "daphne",
        "daphne",
        (*_COMMON, "daphne", "-b", "{host}", "-p", "{port}", "-v", "0", "{app}"),
        "daphne",
        "daphne",
        ("--ping-interval", "{interval_int}", "--ping-timeout", "{interval_int}"),
    ),
    TargetSpec(
        "granian",
        "granian --interface asgi",
        (
            *_COMMON,
            "granian",
            "--interface",
            "asgi",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "--no-access-log",
            "{app}",
        ),
        "granian",
        "granian",
    ),
)

BY_NAME = {t.name: t for t in BUILTIN_TARGETS}
REFSERVER_TARGETS = ("refserver", "refserver-trio")


def custom_target(text: str) -> TargetSpec:
    """``NAME=COMMAND`` with ``{app}``, ``{host}``, ``{port}`` (and ``{python}``) placeholders."""
    name, sep, command = text.partition("=")
    if not sep or not name.strip() or not command.strip():
        raise ValueError(f"--target-command wants NAME=COMMAND, not {text!r}")
    if "{port}" not in command:
        raise ValueError("--target-command: the command must contain {port} (and should contain {app})")
    return TargetSpec(name.strip(), f"custom: {command.strip()}", (command.strip(),), builtin=False, shell=True)


@dataclass
class TargetInfo:
    spec: TargetSpec
    installed: bool
    version: str
    reason: str = ""
    in_process: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "description": self.spec.description,
            "installed": self.installed,
            "version": self.version,
            "reason": self.reason,
            "in_process": self.in_process,
        }


def repo_root() -> str:
    """The directory that holds the ``refserver`` package (put on the peers' PYTHONPATH)."""
    return str(Path(refserver.__file__).resolve().parent.parent)


def probe_target(spec: TargetSpec, python: str) -> TargetInfo:
    """Is the target installed for ``python``, and which version?"""
    if spec.module is None or spec.shell:
        return TargetInfo(spec, True, "custom")
    code = (
        "import importlib.util, importlib.metadata, sys\n"
        f"mods = {[*spec.module.split(','), 'refserver']!r}\n"
        "missing = [m for m in mods if importlib.util.find_spec(m) is None]\n"
        "if missing: print('missing ' + ' '.join(missing)); sys.exit(1)\n"
        f"try: print(importlib.metadata.version({spec.dist!r}))\n"
        "except importlib.metadata.PackageNotFoundError: print('unknown')\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root(), env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return TargetInfo(spec, False, "", f"cannot run {python}: {exc}")
    out = done.stdout.strip()
    if done.returncode != 0:
        return TargetInfo(spec, False, "", f"not installed for {python} ({out or done.stderr.strip()[-200:]})")
    if spec.dist == "refserver":
        out = refserver.__version__
    return TargetInfo(spec, True, out)


class ServerHandle(Protocol):
    port: int
    exit_reason: str | None

    def alive(self) -> bool: ...

    async def shutdown(self) -> None: ...

    async def stop(self) -> None: ...

    def log_tail(self) -> str: ...


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def port_open(port: int, timeout: float = 0.5) -> bool:
    with anyio.move_on_after(timeout):
        try:
            stream = await anyio.connect_tcp(HOST, port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


@dataclass
class ProcessServer:
    """A target running as a subprocess that we started (and only ever signal by its PID)."""

    spec: TargetSpec
    python: str
    report_port: int
    lifespan: str | None = None
    ping_interval_s: float | None = None
    port: int = 0
    exit_reason: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: str = ""
    _log: Any = field(default=None, repr=False)

    def argv(self) -> list[str] | str:
        values = {"python": self.python, "app": PROBE_APP, "host": HOST, "port": str(self.port)}
        if self.spec.shell:
            command = self.spec.argv[0]
            for key, value in values.items():
                command = command.replace("{" + key + "}", shlex.quote(value))
            return command
        argv = [part.format(**values) for part in self.spec.argv]
        if self.ping_interval_s is not None and self.spec.ping_argv:
            extra = [
                p.format(interval=self.ping_interval_s, interval_int=max(1, round(self.ping_interval_s)))
                for p in self.spec.ping_argv
            ]
            # options go before the app argument for CLIs that take it last
            app_index = argv.index(PROBE_APP)
            argv[app_index:app_index] = extra
        return argv

    async def start(self) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env[REPORT_ENV] = f"{HOST}:{self.report_port}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root(), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop(LIFESPAN_ENV, None)
        if self.lifespan:
            env[LIFESPAN_ENV] = self.lifespan
        fd, self.log_path = tempfile.mkstemp(prefix=f"conformance-{self.spec.name}-", suffix=".log")
        self._log = os.fdopen(fd, "wb")
        argv = self.argv()
        self.proc = subprocess.Popen(
            argv,
            shell=isinstance(argv, str),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exit_reason = f"exited with status {self.proc.returncode} before listening"
                return
            if await port_open(self.port, 0.3):
                return
            await anyio.sleep(0.05)
        self.exit_reason = f"did not listen within {START_TIMEOUT_S:.0f} s"
        await self.stop()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def shutdown(self) -> None:
        """Graceful shutdown, as an operator would ask for it: SIGTERM to the server."""
        if self.alive() and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.proc is not None and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            await anyio.sleep(0.05)
        return None if self.proc is None else self.proc.poll()

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            if await self.wait_exit(3.0) is None:
                # The process group is the session we created for this PID.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await self.wait_exit(3.0)
        # workers that outlived their parent (same process group as the PID we started)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, limit: int = 1500) -> str:
        if not self.log_path:
            return ""
        try:
            data = Path(self.log_path).read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def cleanup(self) -> None:
        if self.log_path:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)


@dataclass
class InProcessServer:
    """refserver in the runner's own event loop, through its public API."""

    backend: str
    report_port: int
    task_group: anyio.abc.TaskGroup
    lifespan: str | None = None
    ping_interval_s: float | None = None
    # More Config fields for this server (e.g. ``trace_sinks``), over the ones set here.
    options: Mapping[str, Any] = field(default_factory=dict)
    port: int = 0
    exit_reason: str | None = None
    _stop: anyio.Event = field(default_factory=anyio.Event)
    _ended: anyio.Event = field(default_factory=anyio.Event)
    _killed: bool = False
    _scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    async def start(self) -> None:
        from refserver import Config
        from refserver.conformance.probe import make_app
        from refserver.errors import LifespanFailure
        from refserver.runtime.server import Listening, serve

        options: dict[str, Any] = {
            "port": 0,
            "backend": self.backend,
            "access_log": False,
            "lifespan": "auto",
            "shutdown_timeout_s": 3.0,
        }
        if self.ping_interval_s is not None:
            options["ws_ping_interval_s"] = self.ping_interval_s
            options["ws_ping_timeout_s"] = self.ping_interval_s
        config = Config.from_options(**{**options, **self.options})
        app = make_app(report_to=(HOST, self.report_port), lifespan=self.lifespan or "")
        listening = anyio.Event()

        def started(value: Listening) -> None:
            self.port = value.port
            listening.set()

        class _Status:
            def started(self, value: Listening) -> None:
                started(value)

        async def run() -> None:
            with self._scope:
                try:
                    await serve(app, config, shutdown_trigger=self._stop.wait, task_status=_Status())  # type: ignore[arg-type]
                    self.exit_reason = "exited with status 0"
                except LifespanFailure as exc:
                    self.exit_reason = f"exited with status 1 ({exc})"
                except Exception as exc:
                    self.exit_reason = f"crashed: {type(exc).__name__}: {exc}"
            if self._scope.cancelled_caught:
                self.exit_reason = "killed"
            self._ended.set()
            listening.set()

        self.task_group.start_soon(run)
        with anyio.move_on_after(START_TIMEOUT_S):
            await listening.wait()
        if not self.port and self.exit_reason is None:
            self.exit_reason = "did not listen"

    def alive(self) -> bool:
        return not self._ended.is_set()

    async def shutdown(self) -> None:
        self._stop.set()

    async def wait_exit(self, timeout: float) -> int | None:
        with anyio.move_on_after(timeout):
            await self._ended.wait()
        if not self._ended.is_set():
            return None
        return 0 if self.exit_reason == "exited with status 0" else 1

    async def stop(self) -> None:
        self._stop.set()
        with anyio.move_on_after(4.0):
            await self._ended.wait()
        if not self._ended.is_set():
            self._scope.cancel()
            await self._ended.wait()

    def log_tail(self) -> str:
        return ""

    def cleanup(self) -> None:
        pass


Factory = Callable[..., Any]


def default_python() -> str:
    return os.environ.get("REFSERVER_CONFORMANCE_PYTHON") or sys.executable
