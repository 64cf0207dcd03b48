"""websocket.disconnect: always, once, in order, with the RFC's code (RFC 6455 §7.1.5).

Every path by which a connection ends, the code and reason the app gets, that the peer gets a
close frame where one can still be sent, and that later ``receive()`` calls repeat the event.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from refserver import ClientDisconnected
from tests.support import (
    Recorder,
    Rejected,
    WSClient,
    close_frame,
    connect,
    frame,
    handshake_request,
    http_request,
    read_until_eof,
    refserver_errors,
    reset,
    serving,
    serving_stoppable,
)

pytestmark = pytest.mark.anyio


def listening_app(rec: Recorder, *, hold: anyio.Event | None = None, repeat: int = 1) -> Any:
    """Accepts, then records every event; after the disconnect calls receive() ``repeat`` more
    times and records a send attempt. With ``hold``, waits for it after accepting."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            rec.add("event", await receive())
            await send({"type": "websocket.accept"})
            rec.add("accepted")
            if hold is not None:
                await hold.wait()
            while True:
                message = await receive()
                rec.add("event", message)
                if message["type"] == "websocket.disconnect":
                    break
            for _ in range(repeat):
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


# ---------------------------------------------------------------- the peer closes


async def test_peer_close_code_and_reason() -> None:
    rec = Recorder()
    async with serving(listening_app(rec)) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.close(4001, "bye-ü")
        echo = await ws.expect_close()
        await ws.expect_eof()  # the closing handshake is complete: TCP closed at once
        events = await finished(rec)
    assert (echo.code, echo.reason) == (4001, "bye-ü")  # RFC 6455 §5.5.1: echo the code
    assert events == [CONNECT, disconnect(4001, "bye-ü")]
    error = rec.of("send error")[0]
    assert str(error) == "peer closed the connection with code 4001"
    assert error.code == 4001


async def test_peer_empty_close_is_1005() -> None:
    rec = Recorder()
    async with serving(listening_app(rec), ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.send_raw(close_frame(None))
        data = b""
        with anyio.fail_after(5):
            while len(data) < 2:
                data += await ws.stream.receive()
        await ws.expect_eof()
        events = await finished(rec)
    assert data == b"\x88\x00"  # the echo is empty too: 1005 never goes on the wire
    assert events == [CONNECT, disconnect(1005)]


async def test_fin_without_close_frame_is_1006() -> None:
    rec = Recorder()
    async with serving(listening_app(rec)) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.stream.send_eof()  # half-close: FIN, no close frame
        await ws.expect_eof()  # and the server closes its side
        events = await finished(rec)
    assert events == [CONNECT, disconnect(1006)]
    assert "1006" in str(rec.of("send error")[0])


async def test_rst_is_1006() -> None:
    rec = Recorder()
    async with serving(listening_app(rec)) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.reset()
        events = await finished(rec)
    assert events == [CONNECT, disconnect(1006)]
    assert str(rec.of("send error")[0]) == "connection lost without a close frame (code 1006)"
    assert rec.of("send error")[0].code == 1006


# ---------------------------------------------------------------- the server fails the connection


FAILURES = {
    # 1009: a message over --ws-max-size, as one frame or fragmented
    "too big, one frame": ([frame(0x2, b"x" * 1001)], 1009, "message exceeds 1000 bytes"),
    "too big, fragments": (
        [frame(0x1, b"x" * 600, fin=False), frame(0x0, b"x" * 401)],
        1009,
        "message exceeds 1000 bytes",
    ),
    # 1007: invalid UTF-8
    "bad utf-8": ([frame(0x1, b"ok\xff")], 1007, "invalid UTF-8 or payload data"),
    "bad utf-8 across fragments": (
        [frame(0x1, b"\xc3", fin=False), frame(0x0, b"(")],
        1007,
        "invalid UTF-8 or payload data",
    ),
    "truncated utf-8 at the end": ([frame(0x1, b"\xe2\x82")], 1007, "invalid UTF-8 or payload data"),
    # 1002: protocol violations (RFC 6455 §5)
    "unmasked frame": ([frame(0x1, b"hi", mask=None)], 1002, "protocol error"),
    "rsv2 set": ([bytes([0xA1, 0x80]) + b"\x00\x00\x00\x00"], 1002, "protocol error"),
    "rsv1 without deflate": ([frame(0x1, b"hi", rsv1=True)], 1002, "protocol error"),
    "unknown opcode 3": ([frame(0x3, b"")], 1002, "protocol error"),
    "unknown opcode 0xB": ([frame(0xB, b"")], 1002, "protocol error"),
    "continuation with no message": ([frame(0x0, b"x")], 1002, "protocol error"),
    "new message inside a fragmented one": ([frame(0x1, b"a", fin=False), frame(0x1, b"b")], 1002, "protocol error"),
    "ping over 125 bytes": ([frame(0x9, b"p" * 126)], 1002, "protocol error"),
    "fragmented ping": ([frame(0x9, b"p", fin=False)], 1002, "protocol error"),
    "close with 1 byte": ([frame(0x8, b"\x03")], 1002, "protocol error"),
    "close code 1005": ([close_frame(1005)], 1002, "protocol error"),
    "close code 999": ([close_frame(999)], 1002, "protocol error"),
    "close code 2000": ([close_frame(2000)], 1002, "protocol error"),
}


@pytest.mark.parametrize("case", list(FAILURES))
async def test_failures_send_the_code_to_the_peer_and_deliver_it(case: str, caplog: pytest.LogCaptureFixture) -> None:
    frames, code, reason = FAILURES[case]
    rec = Recorder()
    async with serving(listening_app(rec), ws_max_size_bytes=1000, ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.send_raw(b"".join(frames))
        close = await ws.expect_close()
        await ws.expect_eof()  # FIN after the close frame (the server drains until our EOF)
        await ws.aclose()
        events = await finished(rec)
    assert (close.code, close.reason) == (code, reason)
    assert events == [CONNECT, disconnect(code, reason)]
    assert str(rec.of("send error")[0]) == f"connection failed with code {code} ({reason})"
    assert refserver_errors(caplog) == []


async def test_message_of_exactly_max_size_is_delivered() -> None:
    rec = Recorder()
    async with serving(listening_app(rec), ws_max_size_bytes=1000) as server:
        ws = await WSClient.connect(server.port)
        await ws.send_raw(frame(0x2, b"y" * 600, fin=False) + frame(0x0, b"y" * 400))
        await ws.close(1000)
        await ws.expect_close()
        events = await finished(rec)
    assert events == [CONNECT, {"type": "websocket.receive", "bytes": b"y" * 1000}, disconnect(1000)]


async def test_failure_after_delivered_messages_keeps_the_order() -> None:
    rec = Recorder()
    hold = anyio.Event()
    async with serving(listening_app(rec, hold=hold), ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.send_raw(frame(0x1, b"one") + frame(0x1, b"two") + frame(0x1, b"\xff"))
        # The failure waits until the app has taken "one" and "two" and asks for more.
        hold.set()
        close = await ws.expect_close()
        events = await finished(rec)
        await ws.aclose()
    assert close.code == 1007
    assert events == [
        CONNECT,
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.receive", "text": "two"},
        disconnect(1007, "invalid UTF-8 or payload data"),
    ]


# ---------------------------------------------------------------- shutdown


async def test_shutdown_is_1001_for_the_app_and_the_peer() -> None:
    rec = Recorder()
    async with serving_stoppable(listening_app(rec)) as (server, stop):
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        stop.set()
        close = await ws.expect_close()
        events = await finished(rec)  # the app learns at once, before the peer answers
        await ws.close(1001)
        await ws.expect_eof()
    assert (close.code, close.reason) == (1001, "server shutting down")
    assert events == [CONNECT, disconnect(1001, "server shutting down")]
    assert str(rec.of("send error")[0]) == "the server is shutting down (close code 1001)"


# ---------------------------------------------------------------- the app closes first


async def test_after_the_apps_close_the_disconnect_has_the_peers_code_and_data_is_dropped() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000, "reason": "app done"})
        rec.add("closed")
        for _ in range(3):
            rec.add("event", await receive())
        rec.add("ended")

    async with serving(app) as server:
        ws = await WSClient.connect(server.port)
        close = await ws.expect_close()
        await rec.wait_kind("closed")
        # The peer still sends data before it answers the close: dropped.
        await ws.send_raw(frame(0x1, b"late") + frame(0x2, b"late"))
        await ws.send_raw(close_frame(4002, "echo differs"))
        await ws.expect_eof()
        events = await finished(rec)
    assert (close.code, close.reason) == (4000, "app done")
    assert events == [CONNECT, disconnect(4002, "echo differs"), disconnect(4002, "echo differs")]


# ---------------------------------------------------------------- before accept


async def test_disconnect_after_403_is_1006() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.close"})
        for _ in range(3):
            rec.add("event", await receive())
        rec.add("ended")

    async with serving(app) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port)
        events = await finished(rec)
    assert rejected.value.response.status_code == 403
    assert events == [CONNECT, disconnect(1006), disconnect(1006)]


async def test_disconnect_after_denial_is_1006() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("event", await receive())
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})
        rec.add("event", await receive())
        rec.add("event", await receive())
        rec.add("ended")

    async with serving(app) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port)
        events = await finished(rec)
    assert rejected.value.response.status_code == 401
    assert events == [CONNECT, disconnect(1006), disconnect(1006)]


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


# ---------------------------------------------------------------- order and repetition


async def test_messages_that_arrived_come_before_the_disconnect() -> None:
    rec = Recorder()
    hold = anyio.Event()
    async with serving(listening_app(rec, hold=hold), ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.send_raw(
            frame(0x1, b"one")
            + frame(0x2, b"two")
            + frame(0x1, b"thr", fin=False)
            + frame(0x9, b"")
            + frame(0x0, b"ee")
            + frame(0x1, b"unfini", fin=False)
            + close_frame(4001, "bye")
        )
        echo = await ws.expect_close()  # the server closes while the app has not read yet
        await ws.expect_eof()
        hold.set()
        events = await finished(rec)
    assert echo.code == 4001
    # The unfinished fragmented message is dropped (docs/decisions.md #18).
    assert events == [
        CONNECT,
        {"type": "websocket.receive", "text": "one"},
        {"type": "websocket.receive", "bytes": b"two"},
        {"type": "websocket.receive", "text": "three"},
        disconnect(4001, "bye"),
    ]


async def test_messages_before_a_fin_come_before_1006() -> None:
    rec = Recorder()
    hold = anyio.Event()
    async with serving(listening_app(rec, hold=hold)) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        for i in range(5):
            await ws.send_text(f"m{i}")
        await ws.stream.send_eof()
        await anyio.wait_all_tasks_blocked()
        hold.set()
        events = await finished(rec)
        await ws.aclose()
    assert events == [CONNECT, *({"type": "websocket.receive", "text": f"m{i}"} for i in range(5)), disconnect(1006)]


async def test_repeated_receive_returns_the_same_disconnect_at_once() -> None:
    rec = Recorder()
    async with serving(listening_app(rec, repeat=5)) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        await ws.close(4321, "r")
        await ws.expect_close()
        with anyio.fail_after(1):
            await finished(rec)
    assert rec.of("event")[-1] == disconnect(4321, "r")
    assert rec.of("again") == [disconnect(4321, "r")] * 5


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


# ---------------------------------------------------------------- the page-reload report


async def test_page_reload_drops_the_socket_without_a_close_frame(caplog: pytest.LogCaptureFixture) -> None:
    """A page on / and a socket on /ws; the client loads the page, opens the socket, exchanges a
    message, drops TCP without a close frame and connects again (a browser reloading a page)."""
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": b"<script>new WebSocket('/ws')</script>"})
            return
        n = len(rec.of("instance"))
        rec.add("instance", n)
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            rec.add(f"event {n}", message)
            if message["type"] == "websocket.disconnect":
                break
            await send({"type": "websocket.send", "text": "echo " + message["text"]})
        try:
            await send({"type": "websocket.send", "text": "after"})
        except ClientDisconnected as exc:
            rec.add(f"send error {n}", exc)
            raise  # escaping: must not be logged as an error

    async with serving(app) as server:
        response, _ = await http_request(server.port, "GET", "/")
        assert response.status_code == 200
        first = await WSClient.connect(server.port, "/ws")
        await first.send_text("one")
        assert await first.next_message() == "echo one"
        await first.reset()  # the reload: no close frame
        second = await WSClient.connect(server.port, "/ws")
        await second.send_text("two")
        assert await second.next_message() == "echo two"
        await rec.wait_kind("send error 0")
        await second.close()
        await second.expect_close()
        await rec.wait_kind("send error 1")
    assert rec.of("event 0") == [{"type": "websocket.receive", "text": "one"}, disconnect(1006)]
    assert isinstance(rec.of("send error 0")[0], ClientDisconnected)
    assert rec.of("event 1") == [{"type": "websocket.receive", "text": "two"}, disconnect(1000)]
    assert refserver_errors(caplog) == []


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
)
async def test_every_valid_close_code_from_the_peer_is_echoed_and_delivered(code: int) -> None:
    """The codes refserver lets an app send (RFC 6455 §7.4, IANA 1012-1014) are accepted from
    the peer too; codes it may not send fail the connection with 1002 (FAILURES above). Raw
    bytes: wsproto, the test client, itself rejects 1014."""
    rec = Recorder()
    async with serving(listening_app(rec), ws_per_message_deflate=False) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        await rec.wait_kind("accepted")
        await stream.send(close_frame(code, "why"))
        with anyio.fail_after(5):
            data = await read_until_eof(stream)
        await stream.aclose()
        events = await finished(rec)
    assert data.split(b"\r\n\r\n", 1)[1] == b"\x88\x05" + code.to_bytes(2, "big") + b"why"
    assert events == [CONNECT, disconnect(code, "why")]


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


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (bytes([0xA1, 0x80, 1, 2, 3, 4]), 1002),  # FIN + RSV2 + text, empty masked (Autobahn 3.2)
        (frame(0x5, b""), 1002),  # reserved non-control opcode (Autobahn 4.1.3)
        (frame(0x0, b"x", fin=False), 1002),  # continuation with no message (Autobahn 5.15)
        (frame(0x1, b"\xff"), 1007),  # invalid UTF-8
    ],
)
async def test_a_message_before_bad_bytes_is_answered_before_the_failure(bad: bytes, code: int) -> None:
    """Autobahn's strict cases: the echo of a valid message that arrived ahead of a bad frame
    goes out before the close frame; the app then gets the failure's code."""
    rec = Recorder()

    async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            rec.add("event", event)
            if event["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": event["text"]})

    with anyio.fail_after(5):
        async with serving(echo, ws_per_message_deflate=False) as server:
            ws = await WSClient.connect(server.port)
            await ws.send_raw(frame(0x1, b"Hello") + bad)
            assert await ws.next_message() == "Hello"
            close = await ws.expect_close()
            await rec.wait_kind("event", 2)
            await ws.aclose()
    assert close.code == code
    assert rec.of("event")[0] == {"type": "websocket.receive", "text": "Hello"}
    assert rec.of("event")[1]["code"] == code
