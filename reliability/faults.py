"""The fault matrix: each way a client can fail, in each state a connection can be in.

Faults: ``fin`` (the client shuts its sending side and reads no more), ``half_close`` (it shuts
its sending side and reads on), ``rst`` (SO_LINGER 0, then close), ``stop_reading`` (it neither
sends nor reads any more: a dead host) and ``stop_sending`` (it reads on but sends nothing: a
stalled peer that answers no ping). The states leave the client's bytes cut where they are:
mid-headers, mid-body, mid-frame.

States: ``headers_incomplete`` (mid-headers of an upgrade request), ``upgrade_body_incomplete``
(``Content-Length: 10``, three bytes sent), ``awaiting_accept`` (the app holds the handshake),
``open_idle``, ``mid_fragment`` (a first fragment, then half a frame header), ``blocked_send``
(the app is blocked in ``send()`` to a client that does not read), ``closing`` (the app sent
``websocket.close`` and the client has not answered) and ``shutdown`` (the server is stopping and
sent its close frame 1001).

Each cell checks: the app (when one was called) gets exactly one ``websocket.disconnect`` with
the right code, a later ``send()`` raises :class:`refserver.ClientDisconnected`, a later
``receive()`` repeats the disconnect; the server ends the TCP connection; nothing is logged at
ERROR level. The test suite runs each cell once on each backend
(tests/test_reliability_faults.py); on demand each cell is repeated and descriptors, tasks and
resident memory are counted before and after::

    python -m reliability.faults --repeat 1000 [--backend asyncio|trio] [--state S] [--fault F]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import wsproto.events as wse
from wsproto import ConnectionType
from wsproto.connection import Connection as WireConnection

from refserver import ClientDisconnected, Config
from refserver.rawclient import frame, handshake_request, reset
from refserver.runtime.server import Listening, serve

STATES = (
    "headers_incomplete",
    "upgrade_body_incomplete",
    "awaiting_accept",
    "open_idle",
    "mid_fragment",
    "blocked_send",
    "closing",
    "shutdown",
)
FAULTS = ("fin", "half_close", "rst", "stop_reading", "stop_sending")
STALLS = ("stop_reading", "stop_sending")
NO_APP = ("headers_incomplete", "upgrade_body_incomplete")
WAIT = 5.0  # bound on every wait

HANDSHAKE = handshake_request("/ws")


@dataclass
class Outcome:
    events: list[dict[str, Any]] = field(default_factory=list)  # what the app's receive() returned
    late_send: str = ""  # "raised", "returned", or "" when the app never got that far
    send_raised_while_blocked: bool = False
    accepted: bool = False
    client_bytes: bytes = b""  # what the client read after the state was reached (the first 64 KiB)
    client_eof: bool | None = None  # None: the client did not read
    errors: list[str] = field(default_factory=list)  # records at ERROR level or above
    close_codes: list[int] = field(default_factory=list)  # the server's close frames, from the start
    client_port: int = 0  # the fault client's own port: the app serves only that connection
    foreign: int = 0  # connections from elsewhere, refused (see run_cell)


@dataclass
class Expected:
    events: list[dict[str, Any]]
    late_send: str
    client_bytes: bytes | None  # None: not checked (the client did not read, or variable)
    close_codes: list[int] | None


def expected(state: str, fault: str) -> Expected:
    """What RFC 6455 and the www spec require in each cell; see docs/reliability.md."""
    connect = {"type": "websocket.connect"}
    if state in NO_APP:
        # No app was called: a request that never completed gets no response (RFC 9112 §9.6:
        # closed quietly, whether by the client or by the timeout for unfinished requests).
        return Expected([], "", b"" if fault in ("fin", "half_close", "stop_sending") else None, None)
    if state == "shutdown":
        # The 1001 was decided when the shutdown began (www spec 2.5, "Disconnect - receive
        # event"; RFC 6455 §7.4.1 1001 "going away"); what the client does after it changes nothing.
        gone = {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
        reads = fault in ("fin", "half_close", "stop_sending")
        return Expected([connect, gone], "raised", b"" if reads else None, [1001] if reads else None)
    lost = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    reads = fault in ("half_close", "stop_sending") or (fault == "fin" and state != "blocked_send")
    if fault == "stop_sending" and state in ("open_idle", "mid_fragment", "awaiting_accept"):
        codes: list[int] | None = [1011]  # the keepalive ping went unanswered (RFC 6455 §7.4.1 1011)
    elif fault == "stop_sending" and state == "closing":
        codes = [1000]  # the close timeout ends it: no second close frame
    elif (state == "blocked_send" and fault != "half_close") or not reads:
        # Blocked: a frame of the app's is half written when the ping timeout fires; the server
        # may end the TCP connection without a close frame (RFC 6455 §7.1.7 "SHOULD").
        codes = None
    elif state == "closing":
        codes = [1000]  # the app's close frame, unanswered; nothing more is owed
    else:
        codes = []  # the client's side closed without a close frame; nothing more is owed to it
    if state == "awaiting_accept" and fault not in STALLS:
        return Expected([connect, lost], "raised", b"", [])  # never accepted: no 101, nothing
    return Expected([connect, lost], "raised", None, codes if reads else None)


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


class _Notes:
    def __init__(self) -> None:
        self.kinds: list[str] = []
        self._changed = anyio.Event()

    def add(self, kind: str) -> None:
        self.kinds.append(kind)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait(self, kind: str, count: int = 1) -> None:
        with anyio.fail_after(WAIT):
            while self.kinds.count(kind) < count:
                await self._changed.wait()


def _options(state: str, fault: str) -> dict[str, Any]:
    stall = fault in STALLS
    return {
        "port": 0,
        "lifespan": "off",
        "access_log": False,
        "ws_per_message_deflate": False,
        "shutdown_timeout_s": 5.0,
        # The timeout for an unfinished head or upgrade body ends the stalled cells before the
        # handshake; after it, it only runs between the accept and reading the head, which the
        # client sent at once, and 0.1 s there could expire while a loaded machine keeps this
        # process off the CPU (the server would rightly drop a head it had not yet read).
        "timeout_keep_alive_s": 0.1 if stall and state in NO_APP else 5.0,
        "ws_ping_interval_s": 0.05 if stall else 0.0,
        "ws_ping_timeout_s": 0.1 if stall else 0.0,
        "ws_close_timeout_s": 0.1 if stall else 5.0,
    }


class _Reader:
    """What the client reads: the response head, then server frames parsed as they come (an app
    may stream far more than is worth keeping)."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.head_done = False
        self.wire = WireConnection(ConnectionType.CLIENT)
        self.close_codes: list[int] = []
        self.unparsable = False

    def feed(self, data: bytes) -> None:
        if not self.head_done:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.head_done = True
            head, _, data = bytes(self.head).partition(b"\r\n\r\n")
            self.head = bytearray(head + b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101 "):
                self.unparsable = True
        if self.unparsable or not data:
            return
        self.wire.receive_data(data)
        try:
            for event in self.wire.events():
                if isinstance(event, wse.CloseConnection):
                    self.close_codes.append(event.code)
        except Exception:
            self.close_codes.append(-1)
            self.unparsable = True


async def _read_to_eof(stream: anyio.abc.SocketStream, reader: _Reader, into: bytearray) -> bool:
    try:
        with anyio.fail_after(WAIT):
            while True:
                data = await stream.receive()
                reader.feed(data)
                if len(into) < 1 << 16:
                    into += data
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        return True
    except TimeoutError:
        return False


async def _read_until(stream: anyio.abc.SocketStream, reader: _Reader, done: Callable[[_Reader], bool]) -> None:
    with anyio.fail_after(WAIT):
        while not done(reader):
            reader.feed(await stream.receive())


def _has_close_frame(reader: _Reader) -> bool:
    return bool(reader.close_codes)


def _has_head(reader: _Reader) -> bool:
    return reader.head_done


async def run_cell(state: str, fault: str) -> Outcome:
    """Drive one connection into ``state``, inflict ``fault``, and report what happened."""
    outcome = Outcome()
    notes = _Notes()
    gate = anyio.Event()
    stop = anyio.Event()
    handler = _ErrorRecords()
    logger = logging.getLogger("refserver")
    logger.addHandler(handler)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope.get("client") or ("", 0))[1] != outcome.client_port:
            # Another process on this machine that picked a free port, then connected to it after
            # this server had taken it: refused, counted, and kept out of this cell's record.
            outcome.foreign += 1
            await _refuse(scope, receive, send)
            return
        outcome.events.append(await receive())
        notes.add("connect")
        if state == "awaiting_accept" and fault in STALLS:
            await gate.wait()  # accepted only once the client has stalled: the keepalive finds it
        if state != "awaiting_accept" or fault in STALLS:
            await send({"type": "websocket.accept"})
            outcome.accepted = True
        if state == "closing":
            await send({"type": "websocket.close", "code": 1000})
        notes.add("ready")
        if state == "blocked_send":
            try:
                while True:
                    await send({"type": "websocket.send", "bytes": b"\x00" * (1 << 18)})
                    notes.add("sent")
            except ClientDisconnected:
                outcome.send_raised_while_blocked = True
        while True:
            event = await receive()
            outcome.events.append(event)
            if event["type"] == "websocket.disconnect":
                break
        try:
            if outcome.accepted:
                await send({"type": "websocket.send", "text": "late"})
            else:
                await send({"type": "websocket.accept"})
            outcome.late_send = "returned"
        except ClientDisconnected:
            outcome.late_send = "raised"
        if await receive() != event:
            outcome.events.append({"type": "not repeated"})
        notes.add("ended")

    config = Config.from_options(**_options(state, fault))
    try:
        with anyio.fail_after(3 * WAIT):
            async with anyio.create_task_group() as tg:
                listening: Listening = await tg.start(partial(serve, app, config, shutdown_trigger=stop.wait))
                address = listening.addresses[0]
                assert isinstance(address, tuple)
                port = address[1]
                await _drive(port, state, fault, outcome, notes, gate, stop)
                stop.set()
    finally:
        logger.removeHandler(handler)
    outcome.errors = handler.lines
    return outcome


async def _refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A connection that is not the fault client's: 503 for HTTP, 403 for a WebSocket."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close", "code": 1000})


async def _drive(
    port: int, state: str, fault: str, outcome: Outcome, notes: _Notes, gate: anyio.Event, stop: anyio.Event
) -> None:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    outcome.client_port = stream.extra(anyio.abc.SocketAttribute.local_port)
    try:
        reader = _Reader()
        if state == "headers_incomplete":
            await stream.send(HANDSHAKE[:60])
        elif state == "upgrade_body_incomplete":
            await stream.send(handshake_request("/ws", extra=[("Content-Length", "10")]) + b"abc")
        else:
            await stream.send(HANDSHAKE)
            await notes.wait("connect")
            if state != "awaiting_accept":
                await notes.wait("ready")
                if state != "blocked_send":
                    await _read_until(stream, reader, _has_head)
            if state == "mid_fragment":
                await stream.send(frame(0x1, b"ab", fin=False) + frame(0x0, b"cd")[:3])
            elif state == "blocked_send":
                await notes.wait("sent", 2)
            elif state == "closing":
                await _read_until(stream, reader, _has_close_frame)
            elif state == "shutdown":
                stop.set()
                await _read_until(stream, reader, _has_close_frame)
        # The server has taken in everything sent so far. A few checkpoints first: on asyncio a
        # task woken by its socket needs more than one loop iteration to run, and anyio's
        # wait_all_tasks_blocked polls every 0.1 s when it finds such a task.
        for _ in range(4):
            await anyio.lowlevel.checkpoint()
        await anyio.wait_all_tasks_blocked()
        reads = False
        if fault == "rst":
            await reset(stream)
        elif fault in ("fin", "half_close"):
            await stream.send_eof()
            reads = fault == "half_close" or state != "blocked_send"
        elif fault == "stop_sending":
            reads = True
        if state == "awaiting_accept" and fault in STALLS:
            gate.set()
        if reads:
            tail = bytearray()
            outcome.client_eof = await _read_to_eof(stream, reader, tail)
            outcome.client_bytes = bytes(tail)
        outcome.close_codes = reader.close_codes
        if state not in NO_APP:
            await notes.wait("ended")
    finally:
        await stream.aclose()


def check(state: str, fault: str, outcome: Outcome) -> list[str]:
    """Every way ``outcome`` differs from what the cell requires."""
    want = expected(state, fault)
    problems = []
    if outcome.events != want.events:
        problems.append(f"app events {outcome.events}, expected {want.events}")
    if outcome.late_send != want.late_send:
        problems.append(f"late send {outcome.late_send!r}, expected {want.late_send!r}")
    if state == "blocked_send" and not outcome.send_raised_while_blocked:
        problems.append("the blocked send() did not raise ClientDisconnected")
    if outcome.client_eof is False:
        problems.append("the server never closed the connection")
    if want.client_bytes is not None and outcome.client_bytes != want.client_bytes:
        problems.append(f"client read {outcome.client_bytes[:80]!r}, expected {want.client_bytes!r}")
    if want.close_codes is not None and outcome.close_codes != want.close_codes:
        problems.append(f"close frames {outcome.close_codes}, expected {want.close_codes}")
    if outcome.errors:
        problems.append(f"logged at error level: {outcome.errors}")
    return problems


# ---------------------------------------------------------------- on demand: repeated


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _tasks() -> int:
    """Tasks alive in this event loop, the current one included."""
    if anyio.get_current_task() is None:  # pragma: no cover - always inside a loop here
        return 0
    try:
        import asyncio

        return len(asyncio.all_tasks())
    except RuntimeError:
        import trio

        def count(task: Any) -> int:
            return 1 + sum(count(child) for nursery in task.child_nurseries for child in nursery.child_tasks)

        return int(count(trio.lowlevel.current_root_task()))


async def repeat(states: list[str], faults: list[str], times: int) -> dict[str, Any]:
    """Run every chosen cell ``times`` times; count descriptors, tasks and memory around it."""
    await run_cell("open_idle", "fin")  # warm-up: imports, first-use allocations
    gc.collect()
    before = {"fds": _fds(), "tasks": _tasks(), "rss_kib": _rss_kib()}
    failures: dict[str, list[str]] = {}
    runs = foreign = 0
    start = time.monotonic()
    for state in states:
        for fault in faults:
            for _ in range(times):
                try:
                    outcome = await run_cell(state, fault)
                except Exception as exc:  # a bound expired (a wait of the cell's): this run failed
                    outcome = Outcome(errors=[f"the run raised {exc!r}"])
                    problems = [f"the run raised {exc!r}"]
                else:
                    problems = check(state, fault, outcome)
                runs += 1
                foreign += outcome.foreign
                if problems:
                    failures.setdefault(f"{state}/{fault}", []).append("; ".join(problems))
            failed = len(failures.get(f"{state}/{fault}", []))
            progress = f"{state}/{fault}: {times} runs, {failed} failed; fds {_fds()}, tasks {_tasks()}"
            print(f"{progress}, rss {_rss_kib()} KiB, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    gc.collect()
    after = {"fds": _fds(), "tasks": _tasks(), "rss_kib": _rss_kib()}
    return {
        "cells": len(states) * len(faults),
        "repetitions": times,
        "runs": runs,
        "failed_cells": {cell: {"count": len(p), "first": p[0]} for cell, p in failures.items()},
        "foreign_connections": foreign,
        "before": before,
        "after": after,
        "elapsed_s": round(time.monotonic() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=1000)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--state", action="append", choices=STATES)
    parser.add_argument("--fault", action="append", choices=FAULTS)
    args = parser.parse_args(argv)
    figures = anyio.run(
        repeat, args.state or list(STATES), args.fault or list(FAULTS), args.repeat, backend=args.backend
    )
    figures["backend"] = args.backend
    print(json.dumps(figures, indent=2))
    leaked = (
        figures["after"]["fds"] != figures["before"]["fds"] or figures["after"]["tasks"] != figures["before"]["tasks"]
    )
    return 1 if figures["failed_cells"] or leaked else 0


if __name__ == "__main__":
    sys.exit(main())
