"""send() on a closing or closed WebSocket raises refserver.ClientDisconnected (www spec 2.5,
"Disconnected Client - send exception").

Promptly, with a message that says why, in every situation; an app blocked in send() when the
peer vanishes gets it too; escaping the app it is logged at no error level and nothing more is
sent.

Each way a connection ends, with the reason and code every message raises with, is pinned
without sockets in tests/test_ws_machine.py (TestDisconnectedClientSendException); the close and
keepalive timeouts in tests/test_ws_timers.py. Here: what needs the kernel (a FIN, an RST, a
write blocked on a full socket buffer) and what the runtime logs.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
import wsproto.events as wse

from refserver import ClientDisconnected
from tests.support import (
    Recorder,
    WSClient,
    close_frame,
    refserver_errors,
    serving,
)

pytestmark = pytest.mark.anyio

WS_SENDS: list[dict[str, Any]] = [
    {"type": "websocket.send", "text": "x"},
    {"type": "websocket.send", "bytes": b"x"},
    {"type": "websocket.close"},
    {"type": "websocket.close", "code": 4000, "reason": "again"},
    {"type": "websocket.accept"},
]


async def every_send_raises(send: Any, rec: Recorder) -> None:
    """Each message of WS_SENDS raises ClientDisconnected, promptly."""
    with anyio.fail_after(1):
        for message in WS_SENDS:
            try:
                await send(message)
            except ClientDisconnected as exc:
                rec.add("error", exc)
            else:
                rec.add("no error", message)


def assert_all_raised(rec: Recorder, text: str, code: int | None) -> None:
    assert rec.of("no error") == []
    errors = rec.of("error")
    assert len(errors) == len(WS_SENDS)
    for error in errors:
        assert type(error) is ClientDisconnected
        assert isinstance(error, OSError)
        assert str(error) == text
        assert error.code == code


def app_then(rec: Recorder, go: anyio.Event, first: list[dict[str, Any]]) -> Any:
    """Sends ``first``, waits for ``go``, then tries every send."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for message in first:
            await send(message)
        rec.add("ready")
        await go.wait()
        await every_send_raises(send, rec)
        rec.add("ended")

    return app


ACCEPT: list[dict[str, Any]] = [{"type": "websocket.accept"}]


async def test_after_a_fin_before_receive() -> None:
    rec, go = Recorder(), anyio.Event()
    async with serving(app_then(rec, go, ACCEPT)) as server:
        ws = await WSClient.connect(server.port)
        await ws.stream.send_eof()
        await ws.expect_eof()  # the server saw the EOF and closed its side
        go.set()
        await rec.wait_kind("ended")
    assert_all_raised(rec, "connection lost without a close frame (code 1006)", 1006)


async def test_after_an_rst_before_receive() -> None:
    """Scenario 8 (docs/decisions.md#send-after-reset): the app has not called receive() since the peer
    reset the connection; its very first send() raises, on asyncio as on trio, and so does
    every later one; the next receive() is the disconnect 1006."""
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "before"})
        rec.add("ready")
        await rec.wait_for(lambda r: bool(r.of("reset")))
        with anyio.fail_after(1):
            try:
                await send({"type": "websocket.send", "text": "into the void"})
            except ClientDisconnected as exc:
                rec.add("first error", exc)
        await every_send_raises(send, rec)
        rec.add("event", await receive())
        rec.add("ended")

    async with serving(app) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("ready")
        await ws.reset()
        rec.add("reset")
        await rec.wait_kind("ended")
    [first] = rec.of("first error")
    assert type(first) is ClientDisconnected
    assert (str(first), first.code) == ("connection lost without a close frame (code 1006)", 1006)
    assert_all_raised(rec, "connection lost without a close frame (code 1006)", 1006)
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


async def test_blocked_send_gets_it_when_the_peer_resets() -> None:
    """The client never reads, so send() blocks; then it resets the connection."""
    rec = Recorder()
    chunk = b"\x00" * (1 << 20)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        try:
            while True:
                rec.add("sending")
                await send({"type": "websocket.send", "bytes": chunk})
                rec.add("sent")
        except ClientDisconnected as exc:
            rec.add("error", exc)
        rec.add("ended")

    async with serving(app, ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("sent", 2)
        await anyio.wait_all_tasks_blocked()  # the app is stuck in send()
        assert len(rec.of("sending")) == len(rec.of("sent")) + 1
        await ws.reset()
        with anyio.fail_after(2):
            await rec.wait_kind("ended")
    error = rec.of("error")[0]
    assert type(error) is ClientDisconnected
    assert str(error) == "connection lost without a close frame (code 1006)"


@pytest.mark.parametrize("how", ["close frame", "rst", "app close"])
async def test_escaping_client_disconnected_is_not_an_error(how: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("started")
        try:
            await send({"type": "websocket.accept"})
            if how == "app close":
                await send({"type": "websocket.close", "code": 4000})
            else:
                while (await receive())["type"] != "websocket.disconnect":
                    pass
            await send({"type": "websocket.send", "text": "escapes"})
        finally:
            rec.add("ended")

    async with serving(app) as server:
        ws = await WSClient.connect(server.port)
        if how == "close frame":
            await ws.close(1000)
            echo = await ws.expect_close()
            assert echo.code == 1000
            assert await ws.next_event() is None  # EOF; nothing was sent after the echo
        elif how == "rst":
            await ws.reset()
        else:
            close = await ws.expect_close()
            assert close.code == 4000
            await ws.send_raw(close_frame(4000))
            assert await ws.next_event() is None
        await rec.wait_kind("ended")
        # The server still works afterwards.
        ws2 = await WSClient.connect(server.port)
        if how == "app close":
            assert isinstance(await ws2.next_event(), wse.CloseConnection)
        await ws2.aclose()
    assert refserver_errors(caplog) == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_blocked_send_gets_it_when_the_peer_closes_without_reading() -> None:
    """The client stops reading, the app's send() blocks, then the client sends a close frame
    (and still does not read): within the close timeout the blocked send() raises, and the
    server closes the TCP connection instead of waiting on the full socket forever."""
    rec = Recorder()
    chunk = b"\x00" * (1 << 20)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                rec.add("sending")
                await send({"type": "websocket.send", "bytes": chunk})
                rec.add("sent")
        except ClientDisconnected as exc:
            rec.add("error", exc)
        rec.add("event", await receive())
        rec.add("ended")

    async with serving(app, ws_per_message_deflate=False, ws_close_timeout_s=0.3) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("sent", 2)
        await anyio.wait_all_tasks_blocked()
        assert len(rec.of("sending")) == len(rec.of("sent")) + 1
        await ws.send_raw(close_frame(4001, "stop"))
        await rec.wait_kind("ended", timeout=2)
        with anyio.fail_after(2):
            await ws.expect_eof()
    error = rec.of("error")[0]
    assert type(error) is ClientDisconnected
    assert str(error) == "peer closed the connection with code 4001"
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 4001, "reason": "stop"}]


@pytest.mark.parametrize("unread_message", [False, True])
async def test_blocked_send_gets_it_when_the_stalled_peer_misses_the_keepalive(unread_message: bool) -> None:
    """A peer that stops reading (a dead host: nothing is acknowledged any more) while the app
    streams: the keepalive ping cannot get through, the ping timeout expires, the blocked send()
    raises and the connection is closed. Also when the app never reads a message the peer sent
    (the reader is paused): a ping that could not even be written is a timeout all the same."""
    rec = Recorder()
    chunk = b"\x00" * (1 << 20)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                rec.add("sending")
                await send({"type": "websocket.send", "bytes": chunk})
                rec.add("sent")
        except ClientDisconnected as exc:
            rec.add("error", exc)
        rec.add("event", await receive())
        if unread_message:
            rec.add("event", await receive())
        rec.add("ended")

    async with serving(app, ws_per_message_deflate=False, ws_ping_interval_s=0.1, ws_ping_timeout_s=0.2) as server:
        ws = await WSClient.connect(server.port)
        if unread_message:
            await ws.send_text("never read by the app")
        await rec.wait_kind("sent", 2)
        await rec.wait_kind("ended", timeout=2)
        with anyio.fail_after(2):
            await ws.expect_eof()
    error = rec.of("error")[0]
    assert type(error) is ClientDisconnected
    assert str(error) == "keepalive ping timed out (code 1006)"
    before = [{"type": "websocket.receive", "text": "never read by the app"}] if unread_message else []
    assert rec.of("event") == [*before, {"type": "websocket.disconnect", "code": 1006, "reason": ""}]
