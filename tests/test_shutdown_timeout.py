"""What is cancelled at the shutdown timeout is recorded and answered (docs/decisions.md#shutdown-timeout-503):
a request whose response had not started gets 503 with ``connection: close`` (RFC 9110
§15.6.4), one whose response had started is cut; each is named in a WARNING (client, method
and path or WebSocket path, how long it ran), traced and access-logged. A WebSocket still open
got its 1001 at the start of the shutdown, as before, and is named too."""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import pytest

from refserver.protocol.http import HTTPMachine, Settings, State
from refserver.testing import serve
from tests.support import WSClient, read_until_eof

pytestmark = pytest.mark.anyio

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


class TestTheMachine:
    def test_before_the_response_started_it_is_503_with_connection_close(self) -> None:
        m = HTTPMachine(Settings(), date=lambda: DATE)
        m.receive_data(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        assert m.state is State.AWAITING_START
        fx = m.shutdown_timeout()
        assert (m.state, fx.ended_status) == (State.CLOSED, 503)
        body = b"Service Unavailable: the server is shutting down\n"
        head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        length = b"content-length: " + str(len(body)).encode()
        assert b"".join(fx.write) == head + length + b"\r\nconnection: close\r\ndate: " + DATE + b"\r\n\r\n" + body
        assert [(t.old, t.new, t.section) for t in fx.transitions] == [("AWAITING_START", "CLOSED", "RFC 9110 §15.6.4")]

    def test_a_held_start_is_replaced_by_the_503(self) -> None:
        m = HTTPMachine(Settings(), date=lambda: DATE)
        m.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        m.app_send({"type": "http.response.start", "status": 200})
        assert m.state is State.START_HELD  # nothing written yet
        fx = m.shutdown_timeout()
        assert (m.state, fx.ended_status) == (State.CLOSED, 503)
        assert b"".join(fx.write).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")

    def test_mid_body_the_response_is_cut(self) -> None:
        m = HTTPMachine(Settings(), date=lambda: DATE)
        m.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        m.app_send({"type": "http.response.start", "status": 200})
        m.app_send({"type": "http.response.body", "body": b"part", "more_body": True})
        fx = m.shutdown_timeout()
        assert (m.state, fx.ended_status, fx.write) == (State.CLOSED, 200, [])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Never finishes: /hang never starts its response, /stream never ends it, and the
    WebSocket ignores its disconnect."""
    if scope["type"] == "lifespan":
        return  # unsupported
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
    elif scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
    running: Running = scope["state"]["running"]
    running.paths.add(scope["path"])
    if {"/hang", "/stream"} <= running.paths:
        running.both.set()
    await anyio.sleep_forever()


class Running:
    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.both = anyio.Event()  # /hang and /stream run


async def test_everything_cancelled_is_answered_and_recorded(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    running = Running()
    received: dict[str, bytes] = {}

    async def read(name: str, stream: Any) -> None:
        received[name] = await read_until_eof(stream)

    caplog.set_level(logging.INFO, logger="refserver")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as readers, serve(app, record=True, shutdown_timeout_s=0.3) as server:
            server.state["running"] = running  # (lifespan is unsupported: the app's state is this dict)
            hang = await anyio.connect_tcp(server.host, server.port)
            await hang.send(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            stream = await anyio.connect_tcp(server.host, server.port)
            await stream.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            ws = await WSClient.connect(server.port, "/ws")
            await running.both.wait()
            readers.start_soon(read, "hang", hang)
            readers.start_soon(read, "stream", stream)
            readers.start_soon(read, "ws", ws.stream)
            # leaving the block shuts the server down: the shutdown timeout expires, the rest is cancelled

    assert received["hang"].startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nconnection: close\r\n" in received["hang"]
    assert received["stream"].endswith(b"part\r\n")  # cut: no last chunk
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    patterns = [
        r"GET /hang from 127\.0\.0\.1:\d+ \(ran \d+\.\d s; answered 503\)",
        r"GET /stream from 127\.0\.0\.1:\d+ \(ran \d+\.\d s; its response cut\)",
        r"WebSocket /ws from 127\.0\.0\.1:\d+ \(open \d+\.\d s; close 1001 sent at shutdown\)",
    ]
    for pattern in patterns:
        expected = r"Cancelled at the shutdown timeout \(0\.3 s\): " + pattern
        assert sum(bool(re.fullmatch(expected, w)) for w in warnings) == 1, (pattern, warnings)
    access = [r.getMessage() for r in caplog.records if r.name == "refserver.access"]
    assert any(re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /hang HTTP/1\.1" 503', line) for line in access), access
    timers = [(r.scope, r.detail) for r in server.records if r.kind == "timer"]
    assert sorted(timers) == [
        ("http", "shutdown timeout: the server cancels the app"),
        ("http", "shutdown timeout: the server cancels the app"),
        ("ws", "shutdown timeout: the server cancels the app"),
    ]
    closed = [r.detail for r in server.records if r.kind == "state" and r.state == "CLOSED" and r.scope == "http"]
    assert "cancelled at the shutdown timeout before a response; 503 sent" in closed
    assert "cancelled at the shutdown timeout mid-body; the response is cut" in closed
