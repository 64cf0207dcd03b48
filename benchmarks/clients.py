"""The client side of every workload.

WebSocket traffic goes through picows (a Cython client) when it is installed, else through a
lean client of our own (asyncio Protocol, frames masked once ahead of time). HTTP keep-alive and
the raw TCP limit use small asyncio Protocols. The loops are driven from the protocol callbacks
(an answer sends the next request at once), so the client spends as little as it can per
message; its CPU is measured in every window all the same, and reported.

A timed workload runs in three phases: warm-up, the measured window (count, server CPU, client
CPU and wall time read at both ends), then a drain in which every connection finishes the
message it has in flight. Nothing here sleeps to synchronise except the warm-up and the window
themselves; the drain and the handshakes wait on futures, each bounded.
"""

from __future__ import annotations

import asyncio
import base64
import os
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from refserver.rawclient import frame, handshake_request, request_bytes

try:
    import picows
except ImportError:  # pragma: no cover - the lean client is the fallback
    picows = None  # type: ignore[assignment]

HOST = "127.0.0.1"
SMALL = 32
LARGE = 1024 * 1024
STEP_TIMEOUT_S = 30.0


_use_picows = picows is not None


def use_lean_client() -> None:
    """Drive WebSockets with the lean asyncio client even though picows is installed."""
    global _use_picows
    _use_picows = False


def client_name() -> str:
    return "picows" if _use_picows else "lean asyncio client"


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Server(Protocol):
    port: int

    def cpu_seconds(self) -> float: ...

    def sleeps(self) -> int: ...

    def rss_bytes(self) -> int: ...


@dataclass
class Window:
    """What one measured window saw."""

    count: int  # completed round trips, connections or requests
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    latencies_ns: list[int] = field(default_factory=list)
    payload: int = 0  # bytes per round trip, where it matters
    server_sleeps: int = 0  # times the server waited for the kernel to wake it (voluntary context switches)


class Meter:
    """Shared by the connections of one workload: keeps them going, counts while measuring."""

    def __init__(self, keep_latencies: bool) -> None:
        self.running = False
        self.measuring = False
        self.count = 0
        self.keep_latencies = keep_latencies
        self.latencies: list[int] = []
        self.in_flight = 0
        self.drained: asyncio.Future[None] | None = None
        self.error: BaseException | None = None

    def completed(self, rtt_ns: int) -> bool:
        """One round trip is done; returns whether to start the next."""
        if self.measuring:
            self.count += 1
            if self.keep_latencies:
                self.latencies.append(rtt_ns)
        if self.running:
            return True
        self.stopped()
        return False

    def stopped(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def fail(self, error: BaseException) -> None:
        self.error = error
        if self.drained is not None and not self.drained.done():
            self.drained.set_exception(error)


class Channel(Protocol):
    def kick(self) -> None: ...

    async def close(self) -> None: ...


# --- WebSocket echo: picows ------------------------------------------------------------------

if picows is not None:

    class _PicowsEcho(picows.WSListener):
        def __init__(self, meter: Meter, payload: bytes) -> None:
            self.meter = meter
            self.payload = payload
            self.size = len(payload)
            self.received = 0
            self.sent_at = 0
            self.transport: picows.WSTransport | None = None
            self.answer: asyncio.Future[None] | None = None

        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            self.transport = transport

        def kick(self) -> None:
            assert self.transport is not None
            self.sent_at = time.perf_counter_ns()
            self.transport.send(picows.WSMsgType.BINARY, self.payload)

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            kind = frame.msg_type
            if kind is picows.WSMsgType.BINARY or kind is picows.WSMsgType.CONTINUATION:
                self.received += frame.payload_size
                if not frame.fin:
                    return
                if self.received != self.size:
                    self.meter.fail(RuntimeError(f"echo of {self.size} bytes came back as {self.received}"))
                    return
                self.received = 0
                if self.answer is not None:
                    self.answer.set_result(None)
                    self.answer = None
                    return
                now = time.perf_counter_ns()
                if self.meter.completed(now - self.sent_at):
                    self.sent_at = now
                    transport.send(picows.WSMsgType.BINARY, self.payload)
            elif kind is picows.WSMsgType.CLOSE:
                if not transport.is_close_frame_sent:
                    transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif kind is picows.WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())
            else:
                self.meter.fail(RuntimeError(f"unexpected frame {kind}"))

        async def echo_once(self) -> None:
            assert self.transport is not None
            self.answer = asyncio.get_running_loop().create_future()
            self.transport.send(picows.WSMsgType.BINARY, self.payload)
            await self.answer

        async def close(self) -> None:
            assert self.transport is not None
            if not self.transport.is_disconnected:
                self.transport.send_close(picows.WSCloseCode.OK)
            await self.transport.wait_disconnected()

    async def _picows_open(port: int, meter: Meter, payload: bytes) -> _PicowsEcho:
        _, listener = await picows.ws_connect(
            lambda: _PicowsEcho(meter, payload),
            f"ws://{HOST}:{port}/echo",
            max_frame_size=4 * LARGE,
            enable_auto_pong=False,
        )
        assert isinstance(listener, _PicowsEcho)
        return listener


# --- WebSocket echo: the lean fallback, and the raw TCP echo -----------------------------------


class _LeanEcho(asyncio.Protocol):
    """A WebSocket client with the frame masked once, or (``raw``) bare bytes echoed back."""

    def __init__(self, meter: Meter, payload: bytes, raw: bool) -> None:
        self.meter = meter
        self.raw = raw
        self.size = len(payload)
        self.frame = payload if raw else frame(0x2, payload)
        self.buffer = bytearray()
        self.expect = self.size if raw else len(_server_frame_head(self.size)) + self.size
        self.sent_at = 0
        self.transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answer: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.handshake = not raw

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        if self.raw:
            self.upgraded.set_result(None)
            return
        self.transport.write(handshake_request("/echo", key=base64.b64encode(os.urandom(16)).decode(), host=HOST))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.handshake:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(f"handshake refused: {bytes(self.buffer[:40])!r}"))
                return
            del self.buffer[: end + 4]
            self.handshake = False
            self.upgraded.set_result(None)
        if len(self.buffer) < self.expect:
            return
        if not self.raw and self.buffer[0] == 0x88:  # the server's close frame
            assert self.transport is not None
            self.transport.close()
            return
        if not self.raw and bytes(self.buffer[: self.expect - self.size]) != _server_frame_head(self.size):
            self.meter.fail(RuntimeError(f"unexpected frame head {bytes(self.buffer[:10])!r}"))
            return
        del self.buffer[: self.expect]
        if self.answer is not None:
            self.answer.set_result(None)
            self.answer = None
            return
        now = time.perf_counter_ns()
        if self.meter.completed(now - self.sent_at):
            self.sent_at = now
            assert self.transport is not None
            self.transport.write(self.frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def kick(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.frame)

    async def echo_once(self) -> None:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(self.frame)
        await self.answer

    async def close(self) -> None:
        assert self.transport is not None
        if self.raw:
            self.transport.close()
        else:
            self.transport.write(frame(0x8, b"\x03\xe8"))
        await self.closed


def _server_frame_head(size: int) -> bytes:
    if size < 126:
        return bytes([0x82, size])
    if size < 65536:
        return bytes([0x82, 126]) + size.to_bytes(2, "big")
    return bytes([0x82, 127]) + size.to_bytes(8, "big")


async def _lean_open(port: int, meter: Meter, payload: bytes, raw: bool) -> _LeanEcho:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: _LeanEcho(meter, payload, raw), HOST, port)
    await protocol.upgraded
    return protocol


class _Echoer(Channel, Protocol):
    async def echo_once(self) -> None: ...


async def open_echo(port: int, meter: Meter, payload: bytes, raw: bool = False) -> _Echoer:
    if raw:
        return await _lean_open(port, meter, payload, raw=True)
    if _use_picows:
        return await _picows_open(port, meter, payload)
    return await _lean_open(port, meter, payload, raw=False)


# --- HTTP/1.1 keep-alive GET ------------------------------------------------------------------

_REQUEST = request_bytes("GET", "/", [("User-Agent", "refserver-bench")], host="bench")


class _HttpGet(asyncio.Protocol):
    """One request at a time on a keep-alive connection. A server that ends the connection with
    ``Connection: close`` (hypercorn does after 1,000 requests) gets a new connection at once, as
    a browser would; the reconnection is part of the measured time."""

    def __init__(self, meter: Meter, port: int) -> None:
        self.meter = meter
        self.port = port
        self.buffer = bytearray()
        self.sent_at = 0
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.reconnects = 0
        self.reopening: asyncio.Task[None] | None = None
        self.waiting = False  # a request is out
        self.told_close = False  # the last answer said Connection: close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.closed = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        self.told_close = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            if not head.startswith(b"http/1.1 200"):
                self.meter.fail(RuntimeError(f"unexpected answer {head[:60]!r}"))
                return
            fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
            if b"content-length" not in fields:
                self.meter.fail(RuntimeError("answer without content-length"))
                return
            length = int(fields[b"content-length"])
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.waiting = False
            now = time.perf_counter_ns()
            again = self.meter.completed(now - self.sent_at)
            assert self.transport is not None
            if fields.get(b"connection", b"").strip() == b"close":
                self.told_close = True
                self.transport.close()
                if again:
                    self.reopening = asyncio.ensure_future(self._reopen())
                return
            if again:
                self.sent_at = now
                self.waiting = True
                self.transport.write(_REQUEST)

    async def _reopen(self) -> None:
        await self.closed
        self.reconnects += 1
        try:
            await asyncio.get_running_loop().create_connection(lambda: self, HOST, self.port)
        except OSError as error:
            self.meter.fail(error)
            return
        self.kick()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiting and not self.told_close:
            self.meter.fail(RuntimeError("the server closed a keep-alive connection with a request in flight"))

    def kick(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.waiting = True
        self.transport.write(_REQUEST)

    async def close(self) -> None:
        if self.reopening is not None:
            await self.reopening
        assert self.transport is not None
        self.transport.close()
        await self.closed


async def open_http(port: int, meter: Meter) -> _HttpGet:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: _HttpGet(meter, port), HOST, port)
    return protocol


# --- the workloads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    window_s: float


async def _bounded(awaitable: Awaitable[object]) -> None:
    await asyncio.wait_for(awaitable, STEP_TIMEOUT_S)


async def _gather_bounded(awaitables: Sequence[Awaitable[object]]) -> None:
    await asyncio.wait_for(asyncio.gather(*awaitables), STEP_TIMEOUT_S)


async def _measure(
    server: Server,
    timing: Timing,
    meter: Meter,
    body: Callable[[], None],
    on_window: Callable[[bool], None] | None = None,
) -> Window:
    """Warm up, then measure one window; ``on_window(True/False)`` is called as it opens and closes."""
    loop = asyncio.get_running_loop()
    meter.drained = loop.create_future()
    meter.running = True
    body()
    await asyncio.sleep(timing.warmup_s)
    sleeps0 = server.sleeps()
    server0, client0, wall0 = server.cpu_seconds(), client_cpu_seconds(), time.perf_counter()
    meter.count = 0
    meter.measuring = True
    if on_window is not None:
        on_window(True)
    await asyncio.sleep(timing.window_s)
    meter.measuring = False
    if on_window is not None:
        on_window(False)
    server1, client1, wall1 = server.cpu_seconds(), client_cpu_seconds(), time.perf_counter()
    sleeps1 = server.sleeps()
    count = meter.count
    meter.running = False
    await _bounded(meter.drained)
    if meter.error is not None:
        raise meter.error
    return Window(
        count, wall1 - wall0, server1 - server0, client1 - client0, meter.latencies, server_sleeps=sleeps1 - sleeps0
    )


async def echo(
    server: Server,
    timing: Timing,
    connections: int,
    size: int,
    raw: bool = False,
    on_window: Callable[[bool], None] | None = None,
) -> Window:
    """``connections`` connections, each echoing one ``size``-byte binary message at a time."""
    meter = Meter(keep_latencies=True)
    payload = os.urandom(size)
    channels: list[_Echoer] = []
    for _ in range(connections):
        channels.append(await asyncio.wait_for(open_echo(server.port, meter, payload, raw), STEP_TIMEOUT_S))
    meter.in_flight = len(channels)

    def start() -> None:
        for channel in channels:
            channel.kick()

    window = await _measure(server, timing, meter, start, on_window)
    window.payload = size
    await _gather_bounded([c.close() for c in channels])
    return window


async def churn(
    server: Server, timing: Timing, concurrency: int, on_window: Callable[[bool], None] | None = None
) -> Window:
    """``concurrency`` loops of: open, handshake, echo one small message, close."""
    meter = Meter(keep_latencies=True)
    payload = os.urandom(SMALL)
    tasks: list[asyncio.Task[None]] = []

    async def loop() -> None:
        try:
            while True:
                started = time.perf_counter_ns()
                channel = await open_echo(server.port, meter, payload)
                await channel.echo_once()
                await channel.close()
                if not meter.completed(time.perf_counter_ns() - started):
                    return
        except Exception as error:  # reported through the meter
            meter.fail(error)

    def start() -> None:
        for _ in range(concurrency):
            tasks.append(asyncio.ensure_future(loop()))

    meter.in_flight = concurrency
    try:
        return await _measure(server, timing, meter, start, on_window)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def http_get(
    server: Server, timing: Timing, connections: int, on_window: Callable[[bool], None] | None = None
) -> Window:
    """``connections`` keep-alive connections, each with one GET in flight."""
    meter = Meter(keep_latencies=True)
    channels = [await asyncio.wait_for(open_http(server.port, meter), STEP_TIMEOUT_S) for _ in range(connections)]
    meter.in_flight = len(channels)

    def start() -> None:
        for channel in channels:
            channel.kick()

    window = await _measure(server, timing, meter, start, on_window)
    await _gather_bounded([c.close() for c in channels])
    return window


async def idle_memory(server: Server, connections: int, batch: int = 50) -> tuple[int, int]:
    """(RSS before, RSS with ``connections`` idle WebSocket connections open), in bytes.

    A few connections are opened, used and closed first, so that modules a server loads on the
    first WebSocket are in the "before" figure, not spread over the idle connections.
    """
    meter = Meter(keep_latencies=False)
    payload = os.urandom(SMALL)
    for _ in range(3):
        warm = [await open_echo(server.port, meter, payload) for _ in range(10)]
        await _gather_bounded([c.echo_once() for c in warm])
        await _gather_bounded([c.close() for c in warm])
    before = server.rss_bytes()
    channels: list[_Echoer] = []
    while len(channels) < connections:
        step = min(batch, connections - len(channels))
        opened = await asyncio.wait_for(
            asyncio.gather(*(open_echo(server.port, meter, payload) for _ in range(step))), STEP_TIMEOUT_S
        )
        channels.extend(opened)
    # Every handshake has been answered; one echo on the last connection makes sure the server
    # has also run the app up to its first receive() on the connections before it.
    await _bounded(channels[-1].echo_once())
    after = server.rss_bytes()
    await _gather_bounded([c.close() for c in channels])
    return before, after
