"""Backpressure both ways: send() waits for a client that does not read; the server reads only
as fast as the app receives; one task may send while another waits in receive()."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from refserver import ClientDisconnected
from tests.support import Recorder, WSClient, serving

pytestmark = pytest.mark.anyio

CHUNK = 1 << 20  # 1 MiB
# Loopback socket buffers hold a few MiB (Linux: tcp_wmem + tcp_rmem maxima, about 10 MiB);
# anything near the total sent would mean the server buffers in memory instead of waiting.
BOUND = 16


async def test_send_waits_while_the_client_does_not_read() -> None:
    rec = Recorder()
    total = 48

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        for i in range(total):
            rec.add("sending", i)
            await send({"type": "websocket.send", "bytes": bytes([i]) * CHUNK})
            rec.add("sent", i)
        await send({"type": "websocket.close"})
        rec.add("event", await receive())
        rec.add("event", await receive())

    async with serving(app, ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("sent", 2)
        await anyio.wait_all_tasks_blocked()
        stuck_at = len(rec.of("sent"))
        assert len(rec.of("sending")) == stuck_at + 1  # inside send(), waiting
        assert stuck_at < BOUND
        # Reading lets the app go on, in order, with nothing lost.
        for i in range(total):
            message = await ws.next_message()
            assert message == bytes([i]) * CHUNK
        close = await ws.expect_close()
        await ws.close(close.code)
        await rec.wait_kind("event", 2)
    assert close.code == 1000
    assert rec.of("event")[1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


async def test_incoming_messages_are_read_only_as_the_app_receives() -> None:
    rec = Recorder()
    release = anyio.Event()
    total = 48

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        for _ in range(total + 1):
            message = await receive()
            rec.add("got", message.get("bytes", b"")[:1] if message["type"] == "websocket.receive" else message)

    async with serving(app, ws_per_message_deflate=False, ws_max_size_bytes=2 * CHUNK) as server:
        ws = await WSClient.connect(server.port)

        async def client_sends() -> None:
            for i in range(total):
                await ws.send_bytes(bytes([i]) * CHUNK)
                rec.add("client sent", i)
            await ws.close(1000)

        async with anyio.create_task_group() as tg:
            tg.start_soon(client_sends)
            await rec.wait_kind("client sent")
            await anyio.wait_all_tasks_blocked()
            # The app has received nothing; the server stopped reading, so the client is stuck.
            assert rec.of("got") == []
            assert len(rec.of("client sent")) < BOUND
            release.set()
        await rec.wait_kind("got", total + 1)
    assert rec.of("got")[:total] == [bytes([i]) for i in range(total)]
    assert rec.of("got")[total] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


async def test_send_from_one_task_while_another_waits_in_receive() -> None:
    rec = Recorder()
    ticks = [anyio.Event() for _ in range(3)]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

        async def receiver() -> None:
            while True:
                rec.add("receiving")
                message = await receive()
                rec.add("event", message)
                if message["type"] == "websocket.disconnect":
                    return

        async def sender() -> None:
            for i, tick in enumerate(ticks):
                await tick.wait()
                await send({"type": "websocket.send", "text": f"tick {i}"})
                rec.add("sent", i)
            await rec.wait_for(lambda r: any(e["type"] == "websocket.disconnect" for e in r.of("event")))
            try:
                await send({"type": "websocket.send", "text": "late"})
            except ClientDisconnected as exc:
                rec.add("error", str(exc))

        async with anyio.create_task_group() as tg:
            tg.start_soon(receiver)
            tg.start_soon(sender)

    async with serving(app) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("receiving")
        for i, tick in enumerate(ticks):
            tick.set()  # the receiver is waiting in receive() all along
            assert await ws.next_message() == f"tick {i}"
            assert rec.of("event") == []
        await ws.send_text("hello")
        await rec.wait_kind("event")
        await ws.close(1000)
        await ws.expect_close()
        await rec.wait_kind("error")
    assert rec.of("event") == [
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]
    assert rec.of("error") == ["peer closed the connection with code 1000"]


async def test_sends_from_two_tasks_are_not_interleaved() -> None:
    """Concurrent sends of large messages come out as whole frames, each intact."""
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})

        async def sender(tag: int) -> None:
            for _ in range(5):
                await send({"type": "websocket.send", "bytes": bytes([tag]) * (CHUNK // 4)})

        async with anyio.create_task_group() as tg:
            for tag in (1, 2, 3):
                tg.start_soon(sender, tag)
        rec.add("done")
        await receive()
        await receive()

    async with serving(app, ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        messages = [await ws.next_message() for _ in range(15)]
        await rec.wait_kind("done")
        await ws.close()
        await ws.expect_close()
    for message in messages:
        assert isinstance(message, bytes)
        assert len(message) == CHUNK // 4 and len(set(message)) == 1
    assert sorted(m[0] for m in messages) == [1] * 5 + [2] * 5 + [3] * 5


async def test_a_close_frame_behind_an_unread_message_is_seen_at_once() -> None:
    """The server reads ahead (a bounded budget of bytes) while messages wait for the app, so a
    close frame behind an unread message is seen and echoed at once: send() raises with the
    peer's code, and the disconnect carries it after the unread message is delivered."""
    rec = Recorder()
    release = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except ClientDisconnected as exc:
            rec.add("error", exc)
        rec.add("event", await receive())
        rec.add("event", await receive())

    async with serving(app) as server:
        ws = await WSClient.connect(server.port)
        await ws.send_text("first")
        await ws.close(1001)
        echo = await ws.expect_close()  # before the app has received anything
        await ws.expect_eof()
        assert rec.of("event") == []
        release.set()
        await rec.wait_kind("event", 2)
    assert echo.code == 1001
    error = rec.of("error")[0]
    assert type(error) is ClientDisconnected
    assert (str(error), error.code) == ("peer closed the connection with code 1001", 1001)
    assert rec.of("event") == [
        {"type": "websocket.receive", "text": "first"},
        {"type": "websocket.disconnect", "code": 1001, "reason": ""},
    ]
