"""The app ends (docs/decisions.md#app-end-close-codes): close 1000 after a return, 1011 after a raise, HTTP 500
before accept; the TCP connection is closed after the peer's answer or the close timeout, and no
socket outlives its app. (The close after accept, answered or not, with what is logged, is in
tests/test_ws_timers.py.)"""

from __future__ import annotations

import logging
import os
from typing import Any

import anyio
import h11
import pytest

from tests.support import (
    Recorder,
    Rejected,
    WSClient,
    connect,
    handshake_request,
    header,
    read_until_eof,
    refserver_errors,
    serving,
)

pytestmark = pytest.mark.anyio

CLOSE_TIMEOUT = 0.3


class Boom(Exception):
    pass


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in refserver_errors(caplog) if r.exc_info is not None]


def ending_app(rec: Recorder, *, accept: bool, raise_: bool, go: anyio.Event | None = None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("started")
        await receive()
        if accept:
            await send({"type": "websocket.accept"})
        if go is not None:
            await go.wait()
        rec.add("ending")
        if raise_:
            raise Boom("app failed")

    return app


async def test_app_returns_while_the_peer_sends_data_gets_close_1000() -> None:
    rec = Recorder()
    go = anyio.Event()
    async with serving(ending_app(rec, accept=True, raise_=False, go=go)) as server:
        ws = await WSClient.connect(server.port)
        await ws.send_text("unread")
        await ws.send_text("unread too")
        await anyio.wait_all_tasks_blocked()
        go.set()
        close = await ws.expect_close()
        await ws.close(1000)
        await ws.expect_eof()
    assert close.code == 1000


@pytest.mark.parametrize("raise_", [False, True], ids=["returns", "raises"])
async def test_app_ends_before_accept_answers_500(raise_: bool, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    async with serving(ending_app(rec, accept=False, raise_=raise_)) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        with anyio.fail_after(2):
            data = await read_until_eof(stream)
        await stream.aclose()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"\r\nconnection: close" in head
    assert body == b"Internal Server Error"
    records = tracebacks(caplog)
    assert refserver_errors(caplog) == records  # nothing else at error level
    if raise_:
        [record] = records
        assert record.exc_info is not None and record.exc_info[0] is Boom
    else:
        assert records == []


async def test_app_raises_during_a_held_denial_start_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-a", b"1")]})
        raise Boom("before the body")

    async with serving(app) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port)
    assert rejected.value.response.status_code == 500
    assert header(rejected.value.response, b"x-a") == []
    assert len(tracebacks(caplog)) == 1


async def test_app_raises_mid_denial_body_drops_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 401})
        await send({"type": "websocket.http.response.body", "body": b"part", "more_body": True})
        raise Boom("mid body")

    async with serving(app) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        with anyio.fail_after(2):
            data = await read_until_eof(stream)
        await stream.aclose()
    conn.receive_data(data)
    conn.receive_data(b"")
    events = []
    with pytest.raises(h11.RemoteProtocolError):  # the body never ended: truncated on purpose
        while True:
            event = conn.next_event()
            events.append(event)
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                break
    assert isinstance(events[0], h11.Response) and events[0].status_code == 401
    assert isinstance(events[1], h11.Data) and events[1].data == b"part"
    assert len(tracebacks(caplog)) == 1


def open_sockets() -> set[str]:
    """The sockets this process holds, by kernel identity ("socket:[inode]"), so that a socket
    closed meanwhile by an earlier test or a reused fd number cannot hide a new one."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_no_socket_is_left_open_after_its_app_ended() -> None:
    """Every way an app can end, with a peer that never answers or closes: once each app has
    ended and the close timeout has passed, the server holds no socket for it."""
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["path"]
        try:
            await receive()
            if kind == "/403":
                await send({"type": "websocket.close"})
                return
            if kind == "/500":
                return
            if kind == "/denial":
                await send({"type": "websocket.http.response.start", "status": 400})
                await send({"type": "websocket.http.response.body", "body": b"x"})
                return
            await send({"type": "websocket.accept"})
            if kind == "/raise":
                raise Boom("x")
            if kind == "/close":
                await send({"type": "websocket.close"})
        finally:
            rec.add("ended", kind)

    paths = ["/403", "/500", "/denial", "/return", "/raise", "/close"]
    async with serving(app, ws_close_timeout_s=CLOSE_TIMEOUT) as server:
        await anyio.wait_all_tasks_blocked()
        baseline = open_sockets()
        streams = []
        for path in paths:
            stream = await connect(server.port)
            await stream.send(handshake_request(path))
            streams.append(stream)
        await rec.wait_kind("ended", len(paths))
        # The server closes every one of them without the client's help (FIN after the
        # answer, or after the close timeout).
        with anyio.fail_after(CLOSE_TIMEOUT + 2):
            for stream in streams:
                await read_until_eof(stream)
        for stream in streams:
            await stream.aclose()
        await anyio.wait_all_tasks_blocked()
        assert open_sockets() - baseline == set()
