"""websocket.disconnect: always, once, in order, with the RFC's code (RFC 6455 §7.1.5).

The rules (which code and reason for each way a connection ends, messages before the
disconnect, the repeated disconnect) are pinned without sockets in tests/test_ws_machine.py
(TestDisconnectReceiveEvent, TestRFC6455Section7_1_5CloseCode, TestRFC6455Section7_1_7FailTheConnection),
and the timeouts in tests/test_ws_timers.py. Here: what needs a kernel (the peer's FIN or RST,
after and before the accept), the size limit at the byte boundary, and an independent client.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from refserver import ClientDisconnected
from tests.support import (
    Recorder,
    WSClient,
    close_frame,
    connect,
    frame,
    handshake_request,
    reset,
    serving,
    serving_stoppable,
)

pytestmark = pytest.mark.anyio


def listening_app(rec: Recorder) -> Any:
    """Accepts, then records every event until the disconnect, receive() once more, and a
    send attempt."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            rec.add("event", await receive())
            await send({"type": "websocket.accept"})
            rec.add("accepted")
            while True:
                message = await receive()
                rec.add("event", message)
                if message["type"] == "websocket.disconnect":
                    break
            rec.add("again", await receive())
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except ClientDisconnected as exc:
                rec.add("send error", exc)
        finally:
            rec.add("ended")

    return app


def disconnect(code: int, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


CONNECT = {"type": "websocket.connect"}


async def finished(rec: Recorder) -> list[Any]:
    await rec.wait_kind("ended")
    return rec.of("event")


# ---------------------------------------------------------------- the peer goes without a close frame


async def test_fin_without_close_frame_is_1006() -> None:
    rec = Recorder()
    async with serving(listening_app(rec)) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.stream.send_eof()  # half-close: FIN, no close frame
        await ws.expect_eof()  # and the server closes its side
        events = await finished(rec)
    assert events == [CONNECT, disconnect(1006)]
    assert rec.of("again") == [disconnect(1006)]
    [error] = rec.of("send error")
    assert (str(error), error.code) == ("connection lost without a close frame (code 1006)", 1006)


async def test_rst_is_1006() -> None:
    rec = Recorder()
    async with serving(listening_app(rec)) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.reset()
        events = await finished(rec)
    assert events == [CONNECT, disconnect(1006)]
    assert rec.of("again") == [disconnect(1006)]
    [error] = rec.of("send error")
    assert (str(error), error.code) == ("connection lost without a close frame (code 1006)", 1006)


# ---------------------------------------------------------------- the size limit


async def test_message_of_exactly_max_size_is_delivered() -> None:
    rec = Recorder()
    async with serving(listening_app(rec), ws_max_size_bytes=1000) as server:
        ws = await WSClient.connect(server.port)
        await ws.send_raw(frame(0x2, b"y" * 600, fin=False) + frame(0x0, b"y" * 400))
        await ws.close(1000)
        await ws.expect_close()
        events = await finished(rec)
    assert events == [CONNECT, {"type": "websocket.receive", "bytes": b"y" * 1000}, disconnect(1000)]


# ---------------------------------------------------------------- the peer goes before accept


async def test_peer_gone_before_accept_gives_connect_then_1006() -> None:
    """The peer leaves while the app holds the handshake: receive() gives connect, then (before
    any accept) the disconnect 1006; accept then raises ClientDisconnected."""
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("event", await receive())
        rec.add("event", await receive())  # waits for the loss
        try:
            await send({"type": "websocket.accept"})
        except ClientDisconnected as exc:
            rec.add("accept error", exc)
        rec.add("event", await receive())
        rec.add("ended")

    async with serving(app) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        await rec.wait_kind("event")
        await stream.aclose()
        events = await finished(rec)
    error = rec.of("accept error")[0]
    assert type(error) is ClientDisconnected
    assert str(error) == "connection lost without a close frame (code 1006)"
    assert events == [CONNECT, disconnect(1006), disconnect(1006)]


# ---------------------------------------------------------------- connect comes first


async def test_connect_first_when_unread_then_messages_then_disconnect() -> None:
    """Scenario 39: the app accepts without reading websocket.connect."""
    rec = Recorder()
    hold = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        rec.add("accepted")
        await hold.wait()
        for _ in range(4):
            rec.add("event", await receive())
        rec.add("ended")

    async with serving(app) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        # One segment: the reader takes both before it stops for the unread message.
        await ws.send_raw(frame(0x1, b"hi") + close_frame(1000))
        await ws.expect_close()
        hold.set()
        events = await finished(rec)
    assert events == [CONNECT, {"type": "websocket.receive", "text": "hi"}, disconnect(1000), disconnect(1000)]


async def test_connect_first_when_the_peer_resets_before_accept() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("started")
        await rec.wait_for(lambda r: bool(r.of("reset")))
        for _ in range(3):
            rec.add("event", await receive())
        rec.add("ended")

    async with serving(app) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        await rec.wait_kind("started")
        await reset(stream)
        await anyio.wait_all_tasks_blocked()
        rec.add("reset")
        events = await finished(rec)
    assert events == [CONNECT, disconnect(1006), disconnect(1006)]


# ---------------------------------------------------------------- an independent client: websockets


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_websockets_client_pings_answered_then_shutdown_1001() -> None:
    """websockets, an independent client: its keepalive pings are answered (it would close with
    1011 otherwise), and a server shutdown reaches it as close 1001."""
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosedOK

    rec = Recorder()
    async with serving_stoppable(listening_app(rec)) as (server, stop):
        client = await ws_connect(f"ws://127.0.0.1:{server.port}/", proxy=None, ping_interval=0.02, ping_timeout=0.5)
        for _ in range(3):
            latency = await client.ping()
            with anyio.fail_after(1):
                await latency
        await client.send("still here")
        await rec.wait_kind("event", 2)
        stop.set()
        with pytest.raises(ConnectionClosedOK):
            await client.recv()
        await client.wait_closed()
        events = await finished(rec)
    assert (client.close_code, client.close_reason) == (1001, "server shutting down")
    assert events == [
        CONNECT,
        {"type": "websocket.receive", "text": "still here"},
        disconnect(1001, "server shutting down"),
    ]
