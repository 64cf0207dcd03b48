"""The runner: starts targets, runs each scenario's client script against them while the
probe app runs the app script, collects both sides into one trace, and judges it.

Timing is decided by events: the client waits on the probe's reports (``WaitApp``) and
the app waits on the client's gates (``WaitGate``). Every wait is bounded, every scenario has
an overall deadline, and a server that dies or stops answering is killed (by the PID we
started) and restarted; the cell then says ``crash`` with the reason (the exit status when
the process died), and the run goes on. A problem of the harness itself is ``error``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import socket
import ssl
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from refserver.conformance import verdict as V
from refserver.conformance.client import Connection, Trace, build_frame, preview
from refserver.conformance.model import Scenario
from refserver.conformance.observe import logged_errors
from refserver.conformance.probe import HEALTH_PATH
from refserver.conformance.steps import (
    BodyOnContinue,
    ClientStep,
    Close,
    CloseTCP,
    Connect,
    Frame,
    FrameIfNegotiated,
    HalfClose,
    Handshake,
    Mark,
    OpenGate,
    Pause,
    PlainToTLS,
    Request,
    Reset,
    ResumeReading,
    SendRaw,
    ShutdownServer,
    StopReading,
    Trickle,
    WaitApp,
    WaitClient,
    WaitClose,
    WaitEOF,
    WaitFrame,
    WaitMessages,
    WaitResponses,
    WriteBody,
)
from refserver.conformance.targets import (
    HOST,
    OPTIONS,
    InProcessServer,
    ProcessServer,
    TargetInfo,
    TLSFiles,
    make_tls_files,
)
from refserver.rawclient import handshake_request, request_bytes

SCENARIO_TIMEOUT_S = 40.0
REFSERVER_NAMES = ("refserver", "refserver-trio")
LANES_PER_TARGET = 4  # shared servers per target at most (each lane runs its scenarios one by one)
HEALTH_TIMEOUT_S = 3.0
HUB_RECEIVE_BUFFER = 4 << 20


class ReportHub:
    """The side channel: one UDP socket that receives every probe report of the run and
    sends gates back to the probe's sockets."""

    def __init__(self, sock: anyio.abc.UDPSocket) -> None:
        self.sock = sock
        address = sock.extra(anyio.abc.SocketAttribute.local_address)
        self.port = int(address[1]) if isinstance(address, tuple) else 0
        self.traces: dict[str, Trace] = {}
        self.instances: dict[str, dict[tuple[str, int], Any]] = {}
        self._count = 0
        self._sending = anyio.Lock()

    def new_token(self, trace: Trace) -> str:
        self._count += 1
        token = f"t{self._count}"
        self.traces[token] = trace
        self.traces[token + "~lifespan"] = trace
        self.instances[token] = {}
        return token

    def release(self, token: str) -> None:
        self.traces.pop(token, None)
        self.traces.pop(token + "~lifespan", None)
        self.instances.pop(token, None)

    async def serve(self) -> None:
        async for data, address in self.sock:
            try:
                record = json.loads(data)
            except ValueError:
                continue
            token = str(record.pop("token", ""))
            trace = self.traces.get(token)
            if trace is None:
                continue
            base = token.partition("~")[0]
            instances = self.instances.setdefault(base, {})
            if token.endswith("~lifespan"):
                instance: Any = "lifespan"
                instances.setdefault((address[0], address[1]), "lifespan")
            else:
                key = (address[0], address[1])
                if key not in instances:
                    instances[key] = sum(1 for v in instances.values() if v != "lifespan")
                instance = instances[key]
            record.pop("seq", None)
            t = record.pop("t", None)
            ev = record.pop("ev", "?")
            trace.add("app", ev, t=t, instance=instance, **record)

    async def open_gate(self, token: str, name: str) -> int:
        data = json.dumps({"gate": name}).encode()
        sent = 0
        for address in list(self.instances.get(token, {})):
            # lanes open gates at the same time; the socket takes one writer at a time
            async with self._sending:
                await self.sock.sendto(data, address[0], address[1])
            sent += 1
        return sent


def _matches_event(record: dict[str, Any], kind: str, detail: str) -> bool:
    ev = record["ev"]
    if kind == "received":
        return ev == "received" and (not detail or record.get("kind") == detail)
    if kind == "receive_done":
        return ev in ("received", "receive_timeout", "receive_raised")
    if kind == "sent":
        return ev in ("sent", "send_raised", "send_blocked") and (not detail or record.get("kind") == detail)
    if kind == "mark":
        return ev == "mark" and record.get("name") == detail
    return ev == kind and not detail


def app_count(trace: Trace, event: str) -> int:
    """How many probe reports match ``event`` (see :class:`refserver.conformance.steps.WaitApp`)."""
    kind, _, detail = event.partition(":")
    return sum(1 for r in trace.records if r["side"] == "app" and _matches_event(r, kind, detail))


@dataclass
class TargetRun:
    """One target during a run: its info, its shared server, what it advertises."""

    info: TargetInfo
    python: str
    in_process_backend: str | None = None
    server: Any = None
    advertised: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    start_failures: int = 0  # consecutive; after 2 the target is given up for this run
    broken: str | None = None

    @property
    def name(self) -> str:
        return self.info.spec.name


def _exited(server: Any) -> str:
    describe = getattr(server, "describe_exit", None)
    how = describe() if callable(describe) else None
    return f"the server process {how or server.exit_reason or 'exited'}"


def default_jobs() -> int:
    """Lanes that run at once: five per core (a cell mostly waits on the network, on the
    server under test and on its deadlines), at least five."""
    return max(5, 5 * (os.cpu_count() or 1))


class Runner:
    def __init__(
        self,
        targets: Sequence[TargetRun],
        *,
        jobs: int = 1,
        repeat: int = 1,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.targets = list(targets)
        self.jobs = max(1, jobs)
        self.repeat = max(1, repeat)
        self.progress = progress or (lambda line: None)
        self.hub: ReportHub | None = None
        self.tg: anyio.abc.TaskGroup | None = None
        # The run's certificates, made when a scenario needs TLS (or why they could not be).
        self.tls: TLSFiles | None = None
        self.tls_problem: str | None = None

    # ------------------------------------------------------------------ servers

    def _new_server(
        self,
        target: TargetRun,
        lifespan: str | None = None,
        ping: float | None = None,
        options: dict[str, str] | None = None,
    ) -> Any:
        if self.hub is None or self.tg is None:
            raise RuntimeError("the runner is not started")
        if target.in_process_backend is not None:
            return InProcessServer(
                target.in_process_backend, self.hub.port, self.tg, lifespan, ping, options=options or {}, tls=self.tls
            )
        return ProcessServer(
            target.info.spec, target.python, self.hub.port, lifespan, ping, options=options or {}, tls=self.tls
        )

    async def _ensure_server(self, target: TargetRun) -> str | None:
        """Start (or restart) the shared server; the reason if it cannot be started."""
        if target.broken is not None:
            return target.broken
        if target.server is not None and target.server.alive():
            return None
        if target.server is not None:
            await target.server.stop()
            target.server.cleanup()
            target.restarts += 1
        target.server = self._new_server(target)
        await target.server.start()
        if target.server.exit_reason is not None:
            reason = str(target.server.exit_reason)
            tail = target.server.log_tail().strip()
            target.start_failures += 1
            if target.start_failures >= 2:
                target.broken = f"gave up: the server failed to start twice ({reason})"
            return reason + (f"; log: {tail[-400:]}" if tail else "")
        target.start_failures = 0
        if not target.advertised:
            await self._learn_versions(target)
        return None

    async def _learn_versions(self, target: TargetRun) -> None:
        """One HTTP request and one WebSocket, to read ``scope["asgi"]["spec_version"]``."""
        from refserver.conformance.catalogue import HELLO_HTTP, HELLO_WS

        for scenario in (HELLO_HTTP, HELLO_WS):
            cell = await self._run_once(target, scenario, health=False)
            scope = next((r.get("scope") for r in cell.trace if r["side"] == "app" and r["ev"] == "hello"), None)
            if isinstance(scope, dict) and isinstance(scope.get("asgi"), dict):
                target.advertised[scenario.protocol] = str(scope["asgi"].get("spec_version") or "2.0")
            else:
                target.advertised[scenario.protocol] = "2.0"

    async def _healthy(self, server: Any) -> str | None:
        """None if the server answers a plain request; else what happened to it. A process
        that died is reported with its exit status, never as "stopped answering"."""
        problem = await self._health_check(server)
        if problem is None:
            return None
        # A dying process may still hold its socket for a moment: give it a second to exit.
        with anyio.move_on_after(1.0):
            while server.alive():
                await anyio.sleep(0.05)
        return _exited(server) if not server.alive() else problem

    async def _health_check(self, server: Any) -> str | None:
        if not server.alive():
            return _exited(server)
        trace = Trace()
        with anyio.move_on_after(HEALTH_TIMEOUT_S):
            try:
                conn = await Connection.open(server.port, trace)
            except OSError as exc:
                return f"server stopped accepting connections ({exc})"
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(conn.read_forever)
                    conn.methods.append("GET")
                    await conn.write(request_bytes("GET", HEALTH_PATH, (("Connection", "close"),), host=HOST), "health")
                    await trace.wait_for(lambda: conn.responses > 0 or conn.ended, HEALTH_TIMEOUT_S)
                    tg.cancel_scope.cancel()
            finally:
                await conn.aclose()
            if conn.responses:
                return None
        return f"server stopped answering (no response to a health check within {HEALTH_TIMEOUT_S:.0f} s)"

    # ------------------------------------------------------------------ the run

    async def run(self, scenarios: Sequence[Scenario]) -> list[V.Cell]:
        """Every scenario on every installed target. Each target has a queue of its scenarios,
        the slow ones first (those with a server of their own, and long deadlines), and up to
        ``LANES_PER_TARGET`` lanes that take from it, each with a shared server of its own (so a
        server that dies takes only its own lane's cell with it); up to ``jobs`` lanes run at
        once, across all targets. The cells come back in catalogue order, target by target."""
        cells: list[V.Cell] = []
        runnable = [s for s in scenarios if not s.meta]
        slow_first = sorted(runnable, key=lambda s: (s.server is not None, s.app_deadline_s), reverse=True)
        if any(s.server is not None and "tls" in s.server.options() for s in runnable):
            try:
                self.tls = make_tls_files()
            except ImportError as exc:
                self.tls_problem = f"the harness makes its certificates with trustme, which is missing ({exc})"
        try:
            await self._run_lanes(runnable, slow_first, cells)
        finally:
            if self.tls is not None:
                self.tls.cleanup()
                self.tls = None
        order = {s.id: i for i, s in enumerate(runnable)}
        rank = {t.name: i for i, t in enumerate(self.targets)}
        cells.sort(key=lambda c: (rank.get(c.target, len(rank)), order.get(c.scenario, len(order))))
        return cells

    async def _run_lanes(self, runnable: list[Scenario], slow_first: list[Scenario], cells: list[V.Cell]) -> None:
        async with await anyio.create_udp_socket(local_host=HOST, local_port=0) as sock:
            # Room for bursts of reports while the runner is busy (the kernel caps it at rmem_max).
            raw = sock.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, HUB_RECEIVE_BUFFER)
            self.hub = ReportHub(sock)
            async with anyio.create_task_group() as hub_tg:
                hub_tg.start_soon(self.hub.serve)
                async with anyio.create_task_group() as servers:
                    self.tg = servers
                    limiter = anyio.CapacityLimiter(self.jobs)
                    installed = [t for t in self.targets if t.info.installed]
                    # refserver answers fastest: its lanes go last, so the slow peers start first
                    installed.sort(key=lambda t: t.name in REFSERVER_NAMES)
                    lanes = max(1, min(self.jobs, LANES_PER_TARGET, len(runnable)))
                    started = {t.name: time.monotonic() for t in installed}
                    pending = {t.name: lanes for t in installed}
                    queues = {t.name: collections.deque(slow_first) for t in installed}

                    async def one_lane(target: TargetRun, lane: TargetRun) -> None:
                        async with limiter:
                            cells.extend(await self._run_lane(lane, queues[target.name]))
                        target.restarts += lane.restarts
                        pending[target.name] -= 1
                        if not pending[target.name]:
                            took = time.monotonic() - started[target.name]
                            self.progress(f"{target.name}: {len(runnable)} scenarios in {took:.1f} s")

                    async with anyio.create_task_group() as work:
                        for _ in range(lanes):
                            for target in installed:
                                # a lane shares the target's info and what it advertises
                                lane = dataclasses.replace(target, server=None, restarts=0)
                                work.start_soon(one_lane, target, lane)
                    servers.cancel_scope.cancel()
                hub_tg.cancel_scope.cancel()

    async def _run_lane(self, target: TargetRun, queue: collections.deque[Scenario]) -> list[V.Cell]:
        cells = []
        try:
            while queue:
                scenario = queue.popleft()
                cell = await self.run_cell(target, scenario)
                cells.append(cell)
                self.progress(f"{target.name:<20} {scenario.id:<46} {cell.summary}")
        finally:
            if target.server is not None:
                await target.server.stop()
                target.server.cleanup()
                target.server = None
        return cells

    async def run_cell(self, target: TargetRun, scenario: Scenario) -> V.Cell:
        attempts = [await self._run_once(target, scenario) for _ in range(self.repeat)]
        cell = attempts[-1]
        signatures = {(a.verdict, tuple(c.value for c in a.checks)) for a in attempts}
        cell.attempts = [a.verdict for a in attempts]
        if len({a.verdict for a in attempts}) > 1:
            cell.verdict = V.FLAKY
        elif len(signatures) > 1 and cell.verdict not in (V.ERROR, V.CRASH):
            cell.attempts.append("values differ between runs")
        return cell

    async def _run_once(self, target: TargetRun, scenario: Scenario, health: bool = True) -> V.Cell:
        if self.hub is None:
            raise RuntimeError("the runner is not started")
        trace = Trace()
        token = self.hub.new_token(trace)
        started = time.monotonic()
        error: str | None = None  # the harness went wrong
        crash: str | None = None  # the server under test went down
        dedicated = scenario.server is not None
        server: Any
        missing = missing_options(target, scenario)
        if missing:
            self.hub.release(token)
            cell = V.Cell(target.name, scenario.id, V.NA, advertised=target.advertised.get(scenario.protocol))
            cell.error = "the target has no option for " + " or ".join(OPTIONS[name] for name in missing)
            return cell
        tls_wanted = scenario.server is not None and "tls" in scenario.server.options()
        if tls_wanted and self.tls is None:
            self.hub.release(token)
            cell = V.Cell(target.name, scenario.id, V.ERROR, advertised=target.advertised.get(scenario.protocol))
            cell.error = self.tls_problem or "the harness has no certificates for this run"
            return cell
        if self.tls is not None and tls_wanted:
            trace.add("runner", "tls_facts", value=self.tls.facts())
        if scenario.server is not None:
            lifespan = f"{scenario.id}/{token}~lifespan" if scenario.server.lifespan else None
            options = scenario.server.options()
            if target.in_process_backend is None:
                # an option the target lacks but can do without (a close or body timeout) is left out
                options = {k: v for k, v in options.items() if target.info.spec.option_argv(k) is not None}
            server = self._new_server(target, lifespan, scenario.server.ping_interval_s, options)
            await server.start()
            if server.uds:
                trace.add("runner", "uds", value=server.uds)
            if options:
                trace.add("runner", "options", value=options)
            trace.add("runner", "server_start", value="listening" if server.exit_reason is None else server.exit_reason)
            if server.exit_reason is not None and not scenario.server.lifespan:
                crash = f"the server did not start: {server.exit_reason}" + _log_excerpt(server)
        else:
            problem = await self._ensure_server(target)
            if problem is not None:
                crash = f"the server did not start: {problem}"
            server = target.server
        # a server of the scenario's own: all it wrote, startup included (a failed lifespan
        # startup is logged before the server would listen)
        log_from = (0 if dedicated else server.log_size()) if server is not None and crash is None else -1
        if dedicated and server is not None and server.log_size() < 0:
            log_from = -1
        if crash is None:
            with anyio.move_on_after(SCENARIO_TIMEOUT_S) as timer:
                try:
                    tls_context = None
                    if self.tls is not None and tls_wanted and scenario.server is not None:
                        tls_context = self.tls.client_context(with_certificate=scenario.server.client_cert)
                    await ClientScript(self.hub, trace, token, scenario, server, tls_context).run()
                except Exception as exc:  # a harness problem: reported in the cell
                    error = f"harness error: {describe_exception(exc)}"
            if timer.cancelled_caught:
                error = f"the scenario did not finish within {SCENARIO_TIMEOUT_S:.0f} s"
        if (
            dedicated
            and crash is None
            and server.exit_reason is not None
            and not any(r["side"] == "app" and r["ev"] == "hello" for r in trace.records)
        ):
            # a lifespan scenario's server may exit on purpose, but only after running the app
            crash = f"the server did not start: {server.exit_reason}" + _log_excerpt(server)
        if dedicated and scenario.server is not None and scenario.server.exits:
            # A server may bind its port before it runs the app's startup (gunicorn's master
            # does), so "it listened" does not mean "it keeps serving": wait for the exit.
            if server.exit_reason is not None:
                end = str(server.exit_reason)
            else:
                status = await server.wait_exit(5.0)
                end = "still running" if status is None else f"exited with status {status}"
            trace.add("runner", "server_end", value=end)
        if dedicated:
            if scenario.server is not None and scenario.server.shutdown:
                status = await server.wait_exit(6.0)
                trace.add("runner", "server_exit", value="still running" if status is None else f"status {status}")
            elif server.exit_reason is not None or not server.alive():
                trace.add("runner", "server_exit", value=server.exit_reason or "exited")
            else:
                trace.add("runner", "server_exit", value="still running")
            await server.stop()
            if log_from >= 0:
                output = server.log_since(log_from)
                trace.add("runner", "server_log", value=logged_errors(output))
                trace.add("runner", "server_output", value=output[-4000:])
                log_from = -1
            server.cleanup()
        elif health and error is None and crash is None:
            problem = await self._healthy(server)
            if problem is not None:
                crash = problem + _log_excerpt(server)
                trace.add("runner", "server_lost", value=problem)
                await server.stop()  # restarted before the next scenario
        if log_from >= 0:
            trace.add("runner", "server_log", value=logged_errors(server.log_since(log_from)))
        await anyio.sleep(0)
        self.hub.release(token)
        cell = judge(target, scenario, trace, error, crash)
        cell.duration_s = time.monotonic() - started
        cell.command = str(getattr(server, "command", "") or "") if server is not None else ""
        cell.logged = next((str(r["value"]) for r in trace.records if r["ev"] == "server_log"), "not-observed")
        return cell


def describe_exception(exc: BaseException) -> str:
    """``Class: text`` of what went wrong, with the exceptions inside a group and the place in
    the harness that raised each (a group alone says nothing)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_exception(inner) for inner in exc.exceptions)
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "conformance" in f.filename]
    places = [f"{os.path.basename(f.filename)}:{f.lineno}" for f in ours[-1:] + frames[-1:]]
    where = " -> ".join(dict.fromkeys(places))
    return f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")


# Options without which a scenario cannot be run (a target lacking one is n/a for it).
REQUIRED_OPTIONS = ("uds", "root_path", "tls", "client_cert")


def missing_options(target: TargetRun, scenario: Scenario) -> list[str]:
    """The options the scenario needs that the target cannot be started with (refserver in
    process has them all)."""
    if scenario.server is None or target.in_process_backend is not None:
        return []
    wanted = scenario.server.options()
    return [name for name in REQUIRED_OPTIONS if name in wanted and target.info.spec.option_argv(name) is None]


def _log_excerpt(server: Any) -> str:
    tail = str(server.log_tail()).strip()
    return f"; log: {tail[-300:]}" if tail else ""


def judge(
    target: TargetRun,
    scenario: Scenario,
    trace: Trace | list[dict[str, Any]],
    error: str | None,
    crash: str | None = None,
) -> V.Cell:
    """The cell of one run: ``crash`` (the server went down) wins over ``error`` (the harness
    went wrong), which wins over the checks. Pure: no sockets, no processes."""
    records = trace.records if isinstance(trace, Trace) else trace
    version = None
    for r in records:
        if r["side"] == "app" and r["ev"] == "hello" and r.get("instance") == 0:
            asgi = (r.get("scope") or {}).get("asgi")
            if isinstance(asgi, dict):
                version = str(asgi.get("spec_version") or "2.0")
            break
    if version is None:
        version = target.advertised.get(scenario.protocol)
    cell = V.Cell(target.name, scenario.id, V.PASS, advertised=version, trace=records)
    if crash is not None:
        cell.verdict = V.CRASH
        cell.error = crash
        return cell
    if error is not None:
        cell.verdict = V.ERROR
        cell.error = error
        return cell
    if scenario.extension == "lifespan" and not any(
        r["side"] == "app" and r["ev"] == "hello" and r.get("instance") == "lifespan" for r in records
    ):
        cell.verdict = V.NA
        cell.error = "the target never ran the lifespan scope"
        return cell
    if scenario.extension and any(r["side"] in ("app", "client") and r["ev"] == "unsupported" for r in records):
        cell.verdict = V.NA
        cell.error = f"the target does not advertise {scenario.extension}"
        return cell
    cell.checks = [V.judge_check(check, scenario, records, version) for check in scenario.checks]
    cell.verdict = V.combine([c.verdict for c in cell.checks])
    if cell.verdict == V.ERROR:
        cell.error = "; ".join(c.value for c in cell.checks if c.verdict == V.ERROR)
    return cell


class ClientScript:
    """Runs a scenario's client script against one server."""

    def __init__(
        self,
        hub: ReportHub,
        trace: Trace,
        token: str,
        scenario: Scenario,
        server: Any,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.hub = hub
        self.trace = trace
        self.token = token
        self.scenario = scenario
        self.server = server
        self.tls = tls  # the client's TLS context: every connection of the script speaks TLS
        self.conn: Connection | None = None
        self.conns: list[Connection] = []

    def path(self, suffix: str) -> str:
        return f"/{self.scenario.id}/{self.token}{suffix}"

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            for index, step in enumerate(self.scenario.client):
                await self.step(index, step)
            # The client is done, as a real one would be: it closes its sockets. Then the
            # app gets its deadline to end (what it does then is in its own reports).
            for conn in self.conns:
                if not conn.closed_locally:
                    await conn.finish()
                    self.trace.add("client", "script_done_closed_tcp")
            await self._wait_app_end()
            tg.cancel_scope.cancel()

    async def _wait_app_end(self) -> None:
        trace = self.trace

        # The lifespan instance lives as long as the server: wait for it only when the
        # scenario shuts the server down.
        shutdown = self.scenario.server is not None and self.scenario.server.shutdown

        def instances() -> tuple[set[Any], set[Any]]:
            said_hello = {
                r.get("instance")
                for r in trace.records
                if r["side"] == "app" and r["ev"] == "hello" and (shutdown or r.get("instance") != "lifespan")
            }
            ended = {r.get("instance") for r in trace.records if r["side"] == "app" and r["ev"] == "ended"}
            return said_hello, ended

        if not instances()[0]:
            await trace.wait_for(lambda: bool(instances()[0]), 0.2)
        if not instances()[0]:
            return
        ok = await trace.wait_for(lambda: instances()[0] <= instances()[1], self.scenario.app_deadline_s)
        if not ok:
            trace.add("runner", "app_not_ended", value=sorted(map(str, instances()[0] - instances()[1])))

    async def _connect(self) -> Connection:
        if self.conn is not None and not self.conn.ended and not self.conn.closed_locally:
            return self.conn
        conn = await Connection.open(self.server.port, self.trace, uds=getattr(self.server, "uds", None), tls=self.tls)
        self.conn = conn
        self.conns.append(conn)
        self.tg.start_soon(conn.read_forever)
        return conn

    async def _write_body(self, conn: Connection, total: int, chunk: int, stall_s: float) -> None:
        """Write ``total`` bytes of content; record the first write that takes longer than
        ``stall_s`` (``body_stalled``, with the bytes written before it) and the end."""
        data = b"\x00" * chunk
        written = 0
        current = [0.0]  # when the write in progress started; 0 when none is

        async def watch() -> None:
            while True:
                await anyio.sleep(stall_s / 10)
                if current[0] and time.monotonic() - current[0] > stall_s:
                    self.trace.add("client", "body_stalled", after_bytes=written, stall_s=stall_s)
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            while written < total:
                piece = data[: min(chunk, total - written)]
                current[0] = time.monotonic()
                try:
                    await conn.stream.send(piece)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                    self.trace.add("client", "body_write_failed", after_bytes=written, error=type(exc).__name__)
                    tg.cancel_scope.cancel()
                    return
                current[0] = 0.0
                written += len(piece)
            tg.cancel_scope.cancel()
        self.trace.add("client", "body_written", len=written)

    async def _plain_to_tls(self, data: bytes, timeout: float) -> None:
        """Plain text to the TLS port on a connection of its own; what came back, and how the
        connection ended (``eof``, ``rst``, or ``open`` after ``timeout``), as ``plain_answer``."""
        answer = bytearray()
        end = "open"
        try:
            stream = await anyio.connect_tcp(HOST, self.server.port)
        except OSError as exc:
            self.trace.add("client", "connect_failed", error=str(exc))
            return
        async with stream:
            self.trace.add("client", "connected", plain_to_tls=True)
            with anyio.move_on_after(timeout):
                try:
                    await stream.send(data)
                    self.trace.add("client", "sent", what="plain text to the TLS port", len=len(data))
                    while True:
                        answer += await stream.receive()
                except anyio.EndOfStream:
                    end = "eof"
                except (anyio.BrokenResourceError, OSError):
                    end = "rst"
        self.trace.add("client", "plain_answer", end=end, data=preview(bytes(answer)))

    def _ended(self) -> bool:
        return self.conn is None or self.conn.ended

    def _messages(self) -> int:
        return sum(1 for r in self.trace.records if r["side"] == "client" and r["ev"] in ("message", "close_frame"))

    def _responses(self) -> int:
        return 0 if self.conn is None else self.conn.responses

    async def _wait(self, what: str, predicate: Callable[[], bool], timeout: float, required: bool = True) -> bool:
        ok = await self.trace.wait_for(predicate, timeout)
        if not ok and required:
            self.trace.add("client", "wait_timeout", what=what, timeout=timeout)
        return ok

    async def step(self, index: int, step: ClientStep) -> None:
        """Run one step of the client script (its handler in :data:`CLIENT_HANDLERS`)."""
        handler = CLIENT_HANDLERS.get(type(step))
        if handler is None:  # pragma: no cover - a catalogue error
            raise ValueError(f"no handler for the client step {step!r}")
        await handler(self, step)

    # ------------------------------------------------------------------ one handler per step

    async def _do_connect(self, step: Connect) -> None:
        await self._connect()

    async def _do_handshake(self, step: Handshake) -> None:
        try:
            conn = await self._connect()
        except OSError as exc:
            self.trace.add("client", "connect_failed", error=str(exc))
            return
        conn.methods.append("GET")
        conn.echo_close = step.echo_close
        conn.close_on_eof = step.close_on_eof
        host = f"{HOST}:{self.server.port}"
        data = handshake_request(
            self.path(step.suffix), extra=step.headers, key=step.key, version=step.version, host=host
        )
        await conn.write(data + step.after, "handshake", chop=step.chop)
        await self._wait("handshake response", lambda: conn.responses > 0 or conn.ended, step.timeout)

    async def _do_request(self, step: Request) -> None:
        try:
            conn = await self._connect()
        except OSError as exc:
            self.trace.add("client", "connect_failed", error=str(exc))
            return
        conn.methods.append(step.method)
        host = f"{HOST}:{self.server.port}"
        if step.raw is not None:
            data = step.raw.replace(b"{path}", self.path(step.suffix).encode()).replace(b"{host}", host.encode())
        else:
            path = self.path(step.suffix)
            data = request_bytes(step.method, path, step.headers, step.body, step.chunked, step.end, host=host)
        await conn.write(data, f"{step.method} request")

    async def _do_body_on_continue(self, step: BodyOnContinue) -> None:
        current, trace = self.conn, self.trace
        if current is None:
            return
        await self._wait(
            "100 Continue or the response",
            lambda: current.responses > 0 or current.ended or bool(trace.of("client", "informational")),
            step.timeout,
            False,
        )
        if current.responses == 0 and not current.ended and trace.of("client", "informational"):
            await current.write(step.data, f"{len(step.data)} bytes of content after 100 Continue")

    async def _do_frame_if_negotiated(self, step: FrameIfNegotiated) -> None:
        response = next((r for r in self.trace.of("client", "response") if r.get("status") == 101), None)
        offered = ",".join(v for n, v in (response or {}).get("headers", []) if n == "sec-websocket-extensions")
        if response is None or step.extension not in offered:
            self.trace.add("client", "unsupported", extension=step.extension)
            return
        frame = build_frame(step.opcode, step.payload, rsv=step.rsv)
        await (await self._connect()).write(frame, f"frame opcode={step.opcode} rsv={step.rsv} (compressed)")

    async def _do_write_body(self, step: WriteBody) -> None:
        conn, trace = await self._connect(), self.trace
        self.tg.start_soon(self._write_body, conn, step.total, step.chunk, step.stall_s)
        await self._wait(
            "the body written, or a write stalled",
            lambda: (
                bool(trace.of("client", "body_stalled") or trace.of("client", "body_written"))
                or bool(trace.of("client", "body_write_failed"))
            ),
            step.timeout,
        )

    async def _do_trickle(self, step: Trickle) -> None:
        conn = self.conn
        if conn is None:
            return
        for _ in range(step.count):
            if conn.ended or not await conn.write(b"x", "1 byte of content"):
                return
            await self._wait("end of the TCP connection", lambda: conn.ended, step.every_s, False)

    async def _do_plain_to_tls(self, step: PlainToTLS) -> None:
        await self._plain_to_tls(step.data, step.timeout)

    async def _do_send_raw(self, step: SendRaw) -> None:
        await (await self._connect()).write(step.data, f"{len(step.data)} raw bytes")

    async def _do_frame(self, step: Frame) -> None:
        payload = step.payload if step.size is None else b"\x00" * step.size
        frame = build_frame(step.opcode, payload, fin=step.fin, rsv=step.rsv, masked=step.masked)
        await (await self._connect()).write(frame, f"frame opcode={step.opcode} len={len(payload)}")

    async def _do_close(self, step: Close) -> None:
        if step.raw_payload is not None:
            payload = step.raw_payload
        elif step.code is None:
            payload = b""
        else:
            payload = int(step.code).to_bytes(2, "big") + step.reason.encode("utf-8")
        conn = await self._connect()
        conn.close_sent = True
        await conn.write(build_frame(8, payload), f"close frame code={step.code}")

    async def _do_reset(self, step: Reset) -> None:
        if self.conn is not None:
            await self.conn.reset()

    async def _do_close_tcp(self, step: CloseTCP) -> None:
        if self.conn is not None:
            await self.conn.aclose()
            self.trace.add("client", "closed_tcp")

    async def _do_half_close(self, step: HalfClose) -> None:
        if self.conn is not None:
            await self.conn.half_close()

    async def _do_stop_reading(self, step: StopReading) -> None:
        if self.conn is not None:
            self.conn.reading = anyio.Event()
            self.trace.add("client", "stopped_reading")

    async def _do_resume_reading(self, step: ResumeReading) -> None:
        if self.conn is not None:
            self.conn.reading.set()
            self.trace.add("client", "resumed_reading")

    async def _do_wait_app(self, step: WaitApp) -> None:
        trace, event, count = self.trace, step.event, step.count
        await self._wait(f"app {event} x{count}", lambda: app_count(trace, event) >= count, step.timeout, step.required)

    async def _do_wait_close(self, step: WaitClose) -> None:
        if self.conn is not None:
            await self._wait(
                "close frame or end of connection",
                lambda: self._ended() or bool(self.trace.of("client", "close_frame")),
                step.timeout,
                step.required,
            )

    async def _do_wait_eof(self, step: WaitEOF) -> None:
        if self.conn is not None:
            await self._wait("end of the TCP connection", lambda: self._ended(), step.timeout, False)

    async def _do_wait_messages(self, step: WaitMessages) -> None:
        if self.conn is not None:
            count = step.count
            await self._wait(f"{count} messages", lambda: self._ended() or self._messages() >= count, step.timeout)

    async def _do_wait_frame(self, step: WaitFrame) -> None:
        name = {8: "close_frame", 9: "ping", 10: "pong"}.get(step.opcode, "frame")
        if self.conn is not None:
            await self._wait(
                f"frame {step.opcode}",
                lambda: self._ended() or bool(self.trace.of("client", name)),
                step.timeout,
                False,
            )

    async def _do_wait_responses(self, step: WaitResponses) -> None:
        if self.conn is not None:
            count = step.count
            await self._wait(f"{count} responses", lambda: self._ended() or self._responses() >= count, step.timeout)

    async def _do_wait_client(self, step: WaitClient) -> None:
        await self._wait(f"client {step.ev}", lambda: bool(self.trace.of("client", step.ev)), step.timeout, False)

    async def _do_open_gate(self, step: OpenGate) -> None:
        sent = await self.hub.open_gate(self.token, step.name)
        self.trace.add("client", "gate", name=step.name, instances=sent)

    async def _do_mark(self, step: Mark) -> None:
        self.trace.add("client", "mark", name=step.name)

    async def _do_pause(self, step: Pause) -> None:
        await anyio.sleep(step.seconds)

    async def _do_shutdown_server(self, step: ShutdownServer) -> None:
        self.trace.add("client", "mark", name="shutdown")
        await self.server.shutdown()


# Which handler runs each kind of client step.
CLIENT_HANDLERS: dict[type[ClientStep], Callable[[ClientScript, Any], Awaitable[None]]] = {
    Connect: ClientScript._do_connect,
    Handshake: ClientScript._do_handshake,
    Request: ClientScript._do_request,
    BodyOnContinue: ClientScript._do_body_on_continue,
    FrameIfNegotiated: ClientScript._do_frame_if_negotiated,
    WriteBody: ClientScript._do_write_body,
    Trickle: ClientScript._do_trickle,
    PlainToTLS: ClientScript._do_plain_to_tls,
    SendRaw: ClientScript._do_send_raw,
    Frame: ClientScript._do_frame,
    Close: ClientScript._do_close,
    Reset: ClientScript._do_reset,
    CloseTCP: ClientScript._do_close_tcp,
    HalfClose: ClientScript._do_half_close,
    StopReading: ClientScript._do_stop_reading,
    ResumeReading: ClientScript._do_resume_reading,
    WaitApp: ClientScript._do_wait_app,
    WaitClose: ClientScript._do_wait_close,
    WaitEOF: ClientScript._do_wait_eof,
    WaitMessages: ClientScript._do_wait_messages,
    WaitFrame: ClientScript._do_wait_frame,
    WaitResponses: ClientScript._do_wait_responses,
    WaitClient: ClientScript._do_wait_client,
    OpenGate: ClientScript._do_open_gate,
    Mark: ClientScript._do_mark,
    Pause: ClientScript._do_pause,
    ShutdownServer: ClientScript._do_shutdown_server,
}
