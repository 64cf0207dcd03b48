"""What the app's ``send()`` sees when something happens while it waits for a slow peer.

The app sends one message larger than every socket buffer between it and the client, so its
``send()`` waits for buffer space (backpressure); then the event of the row happens. A ``send()``
whose message reaches the peer whole returns; one whose message cannot reach it whole raises
``ClientDisconnected`` with the connection's close code
(docs/decisions.md#blocked-send-delivered-returns). The rows are the table "What a blocked send() sees" in
docs/how-it-works.md; each runs on asyncio and on trio.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from wsproto.connection import ConnectionState

from refserver import ClientDisconnected
from tests.support import Recorder, WSClient, serving, serving_stoppable

pytestmark = pytest.mark.anyio

# Larger than the kernel's loopback buffers (send plus receive: a few MiB on Linux), so that the
# app's send() waits until the client reads.
BIG = 32 << 20
PAYLOAD = b"x" * BIG


def blocked_sender(rec: Recorder) -> Any:
    """An app that accepts, sends one BIG message and records what its send() did (``returned``,
    or the ClientDisconnected), then what receive() returns."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        rec.add("sending")
        try:
            await send({"type": "websocket.send", "bytes": PAYLOAD})
        except ClientDisconnected as exc:
            rec.add("send", (type(exc).__name__, exc.code))
        else:
            rec.add("send", "returned")
        rec.add("event", await receive())

    return app


async def wait_until_blocked(rec: Recorder) -> None:
    """Return once the app is inside send(), waiting for the client to read."""
    await rec.wait_kind("sending")
    await anyio.wait_all_tasks_blocked()
    assert rec.of("send") == [], "the message fit in the socket buffers: send() did not wait"


async def test_peer_close_frame_while_the_peer_reads_lets_send_return() -> None:
    """The message reaches the peer whole, then the close echo: send() returns, as it does
    when no close frame came (docs/decisions.md#blocked-send-delivered-returns)."""
    rec = Recorder()
    async with serving(blocked_sender(rec), ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await wait_until_blocked(rec)
        await ws.close(1000)
        assert await ws.next_message() == PAYLOAD
        echo = await ws.expect_close()
        await ws.expect_eof()
        await rec.wait_kind("event")
    assert echo.code == 1000
    assert rec.of("send") == ["returned"]
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


def sender_and_closer(rec: Recorder, close_now: anyio.Event) -> Any:
    """:func:`blocked_sender`, with a second task that sends ``websocket.close`` once
    ``close_now`` is set and records what that send() did (``close``)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def close() -> None:
            await close_now.wait()
            try:
                await send({"type": "websocket.close", "code": 1000})
            except ClientDisconnected as exc:
                rec.add("close", (type(exc).__name__, exc.code))
            else:
                rec.add("close", "returned")

        async with anyio.create_task_group() as tg:
            tg.start_soon(close)
            await blocked_sender(rec)(scope, receive, send)

    return app


SHORT_S = 0.3  # the close timeout, ping interval and ping timeout of the rows that wait for one


async def read_all(ws: WSClient, close_code: int) -> int:
    """Read the whole message, then the server's close frame (answered with ``close_code`` if
    the server began the closing handshake) and EOF; the close frame's code."""
    assert await ws.next_message() == PAYLOAD
    close = await ws.expect_close()
    if ws.wire.state is ConnectionState.REMOTE_CLOSING:
        await ws.close(close_code)
    await ws.expect_eof()
    return close.code


class TestWhatABlockedSendSees:
    """One test per row of docs/how-it-works.md, "What a blocked send() sees"."""

    async def test_peer_close_frame_peer_not_reading(self) -> None:
        rec = Recorder()
        async with serving(blocked_sender(rec), ws_per_message_deflate=False, ws_close_timeout_s=SHORT_S) as server:
            ws = await WSClient.connect(server.port)
            await wait_until_blocked(rec)
            await ws.close(1000)
            await rec.wait_kind("event")  # after the close timeout; the client never reads
            await ws.aclose()
        assert rec.of("send") == [("ClientDisconnected", 1000)]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]

    async def test_reset(self) -> None:
        rec = Recorder()
        async with serving(blocked_sender(rec), ws_per_message_deflate=False) as server:
            ws = await WSClient.connect(server.port)
            await wait_until_blocked(rec)
            await ws.reset()
            await rec.wait_kind("event")
        assert rec.of("send") == [("ClientDisconnected", 1006)]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]

    async def test_fin(self) -> None:
        rec = Recorder()
        async with serving(blocked_sender(rec), ws_per_message_deflate=False) as server:
            ws = await WSClient.connect(server.port)
            await wait_until_blocked(rec)
            await ws.stream.send_eof()  # and reads nothing
            await rec.wait_kind("event")
            await ws.aclose()
        assert rec.of("send") == [("ClientDisconnected", 1006)]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]

    async def test_ping_timeout(self) -> None:
        rec = Recorder()
        options: dict[str, Any] = {"ws_ping_interval_s": SHORT_S, "ws_ping_timeout_s": SHORT_S}
        async with serving(blocked_sender(rec), ws_per_message_deflate=False, **options) as server:
            ws = await WSClient.connect(server.port)
            await rec.wait_kind("event")  # the client reads nothing, so no pong comes
            await ws.aclose()
        assert rec.of("send") == [("ClientDisconnected", 1006)]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]

    async def test_own_close_from_another_task_peer_reading(self) -> None:
        rec, close_now = Recorder(), anyio.Event()
        async with serving(sender_and_closer(rec, close_now), ws_per_message_deflate=False) as server:
            ws = await WSClient.connect(server.port)
            await wait_until_blocked(rec)
            close_now.set()
            await anyio.wait_all_tasks_blocked()
            assert rec.of("close") == []  # its close frame waits behind the message
            code = await read_all(ws, 1000)
            await rec.wait_kind("event")
        assert code == 1000
        assert rec.of("send") == ["returned"]
        assert rec.of("close") == ["returned"]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]

    async def test_own_close_then_close_timeout(self) -> None:
        """The app's close from another task, and the peer reads nothing until the close
        timeout: neither the message nor the close frame reaches it."""
        rec, close_now = Recorder(), anyio.Event()
        app = sender_and_closer(rec, close_now)
        async with serving(app, ws_per_message_deflate=False, ws_close_timeout_s=SHORT_S) as server:
            ws = await WSClient.connect(server.port)
            await wait_until_blocked(rec)
            close_now.set()
            await rec.wait_kind("event")
            await ws.aclose()
        assert rec.of("send") == [("ClientDisconnected", 1006)]
        assert rec.of("close") == [("ClientDisconnected", 1006)]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]

    async def test_server_shutdown_peer_reading(self) -> None:
        rec = Recorder()
        async with serving_stoppable(blocked_sender(rec), ws_per_message_deflate=False) as (server, stop):
            ws = await WSClient.connect(server.port)
            await wait_until_blocked(rec)
            stop.set()
            await anyio.wait_all_tasks_blocked()
            assert rec.of("send") == []  # close 1001 waits behind the message
            code = await read_all(ws, 1001)
            await rec.wait_kind("event")
        assert code == 1001
        assert rec.of("send") == ["returned"]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}]

    async def test_server_shutdown_peer_not_reading(self) -> None:
        rec = Recorder()
        app = blocked_sender(rec)
        options: dict[str, Any] = {"ws_per_message_deflate": False, "ws_close_timeout_s": SHORT_S}
        async with serving_stoppable(app, **options) as (server, stop):
            ws = await WSClient.connect(server.port)
            await wait_until_blocked(rec)
            stop.set()
            await rec.wait_kind("event")
            await ws.aclose()
        assert rec.of("send") == [("ClientDisconnected", 1001)]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}]

    async def test_the_app_cancels_its_own_send(self) -> None:
        """A timeout around send() ends the wait, not the message: it is written whole, and
        a later send() follows it."""
        rec, resume = Recorder(), anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            with anyio.CancelScope() as wait:
                rec.add("sending", wait)
                await send({"type": "websocket.send", "bytes": PAYLOAD})
            rec.add("send", "cancelled" if wait.cancelled_caught else "returned")
            await resume.wait()
            try:
                await send({"type": "websocket.send", "text": "after"})
            except ClientDisconnected as exc:
                rec.add("after", (type(exc).__name__, exc.code))
            else:
                rec.add("after", "returned")
            rec.add("event", await receive())

        async with serving(app, ws_per_message_deflate=False) as server:
            ws = await WSClient.connect(server.port)
            [wait] = await rec.wait_kind("sending")
            await anyio.wait_all_tasks_blocked()
            wait.cancel()
            await rec.wait_kind("send")
            resume.set()
            assert await ws.next_message() == PAYLOAD
            assert await ws.next_message() == "after"
            await ws.close(1000)
            await ws.expect_close()
            await rec.wait_kind("event")
        assert rec.of("send") == ["cancelled"]
        assert rec.of("after") == ["returned"]
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]
