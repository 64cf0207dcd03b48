"""Backpressure both ways: send() waits for a client that does not read; the server reads only
as fast as the app receives; one task may send while another waits in receive().

The read side runs over an in-memory pipe (tests/support.py, MemoryServer): what the server has
read is counted exactly there, and reads are certain to be separate. Over a socket neither holds
(asyncio reads in loop callbacks; the kernel may join writes), and those checks passed with the
read-ahead unbounded or zero. The send side needs the kernel's full send buffer and stays on
sockets."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from refserver import ClientDisconnected
from refserver.protocol.websocket import READ_AHEAD_BYTES
from tests.support import TIMEOUT, Recorder, WSClient, big_frame, close_frame, memory_server, serving

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
    """The server reads ahead at most READ_AHEAD_BYTES of complete messages beyond what the
    app has taken (docs/decisions.md#read-ahead-bytes), then stops reading until the app receives.

    Over an in-memory pipe (tests/support.py, MemoryServer) the bytes the server has read are
    counted exactly, and waiting until every task is blocked is exact on both backends. (Over
    a socket, asyncio's transport reads in loop callbacks that a task-level wait does not see,
    so a count taken there is a snapshot of a transfer still under way: it held even with the
    read-ahead unbounded.)"""
    size, total = 100_000, 16  # the budget holds two of these; the third crosses it
    wire = [big_frame(0x2, bytes([i]) * size) for i in range(total)]
    rec = Recorder()
    permits_in, permits = anyio.create_memory_object_stream[None](total + 1)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        async with permits:
            async for _ in permits:
                message = await receive()
                rec.add("got", message.get("bytes", b"")[:1] if message["type"] == "websocket.receive" else message)

    with anyio.fail_after(TIMEOUT):
        async with memory_server(app, ws_per_message_deflate=False) as server:
            ws = await server.open_ws()
            pipe = server.server_ends[0]
            before = pipe.taken  # the handshake
            await ws.send_raw(b"".join(wire) + close_frame(1000))  # all of it, at once
            held = []
            async with permits_in:
                for taken_by_app in range(total + 1):
                    await anyio.wait_all_tasks_blocked()
                    assert len(rec.of("got")) == taken_by_app
                    held.append(pipe.taken - before - sum(map(len, wire[:taken_by_app])))
                    await permits_in.send(None)  # the app takes one more
            await rec.wait_kind("got", total + 1)
            await ws.expect_close()
            await ws.expect_eof()
            await ws.aclose()
    # Before the app took anything, and after each message it took: read ahead, but no
    # further than the budget plus the one message that crossed it.
    for index, bytes_held in enumerate(held[: total - 2]):
        assert READ_AHEAD_BYTES < bytes_held <= READ_AHEAD_BYTES + len(wire[0]), (index, bytes_held)
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
    peer's code, and the disconnect carries it after the unread message is delivered.

    The close frame comes in a read of its own, after the server has read the message and the
    app has left it unread (an in-memory pipe makes the two reads certain; over a socket both
    frames may arrive in one read)."""
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

    with anyio.fail_after(TIMEOUT):
        async with memory_server(app) as server:
            ws = await server.open_ws()
            pipe = server.server_ends[0]
            await ws.send_text("first")
            await anyio.wait_all_tasks_blocked()
            read_before_close = pipe.taken
            await ws.close(1001)
            echo = await ws.expect_close()  # before the app has received anything
            await ws.expect_eof()
            assert rec.of("event") == []
            release.set()
            await rec.wait_kind("event", 2)
            await ws.aclose()
    assert pipe.taken > read_before_close  # the close frame was a read of its own
    assert echo.code == 1001
    error = rec.of("error")[0]
    assert type(error) is ClientDisconnected
    assert (str(error), error.code) == ("peer closed the connection with code 1001", 1001)
    assert rec.of("event") == [
        {"type": "websocket.receive", "text": "first"},
        {"type": "websocket.disconnect", "code": 1001, "reason": ""},
    ]
