"""The WebSocket timers at runtime level, on a fake clock: the close timeout, the hold
timeout, the keepalive ping interval and the ping timeout.

The connection handler runs over in-memory streams (``tests/support.py``, MemoryServer) on
trio with ``trio.testing.MockClock(autojump_threshold=0)``: whenever every task waits, the
clock jumps to the next deadline. Nothing real ever waits, so each timer is checked to fire
at exactly its configured time (and a timer that never fires is waited for an hour in no
time). The durations are distinct, so a timer armed with another's duration shows.

The rules themselves are pinned without any runtime in tests/test_ws_machine.py
(TestTimersAsInputs, TestWebSocketKeepaliveTimers, TestRFC6455Section7_1_1CloseTheConnection);
what needs a kernel (a write blocked on a full socket buffer while a timer expires) stays in
tests/test_ws_closed_send.py.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import wsproto.events as wse
from trio.testing import MockClock

from refserver import ClientDisconnected
from tests.support import Recorder, WSClient, close_frame, frame, memory_server, refserver_errors

pytestmark = pytest.mark.anyio

CLOSE_S = 7.0  # ws_close_timeout_s; also the hold timeout
INTERVAL_S = 3.0  # ws_ping_interval_s
PONG_S = 5.0  # ws_ping_timeout_s
FOREVER = 3600.0  # virtual seconds: bounds every wait, far beyond any timer here

Event = dict[str, Any]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


class Boom(Exception):
    pass


def now() -> float:
    return anyio.current_time()


def disconnect(code: int, reason: str = "") -> Event:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


# Every message an app may send on an open WebSocket (www spec 2.5, "Disconnected Client -
# send exception": each raises once the connection is closed).
WS_SENDS: list[Event] = [
    {"type": "websocket.send", "text": "x"},
    {"type": "websocket.send", "bytes": b"x"},
    {"type": "websocket.close"},
    {"type": "websocket.close", "code": 4000, "reason": "again"},
    {"type": "websocket.accept"},
]


async def send_after_the_end(send: Any, rec: Recorder) -> None:
    """Try every message of WS_SENDS; record what each raised (or that it did not)."""
    for message in WS_SENDS:
        try:
            await send(message)
        except ClientDisconnected as exc:
            rec.add("send error", exc)
        else:
            rec.add("send error", None)


def assert_every_send_raised(rec: Recorder, text: str, code: int) -> None:
    errors = rec.of("send error")
    assert len(errors) == len(WS_SENDS)
    for error in errors:
        assert type(error) is ClientDisconnected
        assert (str(error), error.code) == (text, code)


def echo_app(rec: Recorder) -> Any:
    """Accepts, echoes every message, records each event with the time it arrived."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            rec.add("event", (message, now()))
            if message["type"] == "websocket.disconnect":
                break
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
        await send_after_the_end(send, rec)
        rec.add("ended")

    return app


async def eof_after(ws: WSClient, start: float) -> float:
    """Wait for the server to end the connection; how long after ``start`` it did."""
    await ws.expect_eof(FOREVER)
    return now() - start


class TestRFC6455Section7_1_1CloseTheConnection:
    """RFC 6455 §7.1.1: after a close frame the server waits for the peer's, at most the
    close timeout, then closes TCP; the app's disconnect is then 1006 (RFC 6455 §7.1.5)."""

    async def test_an_unanswered_app_close_ends_at_the_close_timeout_with_1006(self) -> None:
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
            rec.add("event", (await receive(), now()))
            await send_after_the_end(send, rec)
            rec.add("ended")

        with anyio.fail_after(FOREVER):
            async with memory_server(app, ws_close_timeout_s=CLOSE_S) as server:
                ws = await server.open_ws()
                close = await ws.expect_close(FOREVER)
                start = now()
                closed_after = await eof_after(ws, start)  # never answered
                await rec.wait_kind("ended", timeout=FOREVER)
                await ws.aclose()
        assert (close.code, close.reason) == (4000, "bye")
        assert closed_after == pytest.approx(CLOSE_S)
        [(event, at)] = rec.of("event")
        assert event == disconnect(1006)
        assert at - start == pytest.approx(CLOSE_S)
        assert_every_send_raised(rec, "the peer did not answer the close frame in time (code 1006)", 1006)

    @pytest.mark.parametrize("raise_", [False, True], ids=["returns", "raises"])
    @pytest.mark.parametrize("answered", [False, True], ids=["unanswered", "answered"])
    async def test_after_the_app_ends_tcp_closes_on_the_answer_or_at_the_close_timeout(
        self, raise_: bool, answered: bool, caplog: pytest.LogCaptureFixture
    ) -> None:
        """docs/decisions.md#app-end-close-codes: close 1000 after a return, 1011 after a raise (its
        traceback logged once, nothing else at error level)."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            if raise_:
                raise Boom("the app failed")

        with anyio.fail_after(FOREVER):
            async with memory_server(app, ws_close_timeout_s=CLOSE_S) as server:
                ws = await server.open_ws()
                close = await ws.expect_close(FOREVER)
                start = now()
                if answered:
                    await ws.send_raw(close_frame(close.code))
                closed_after = await eof_after(ws, start)
                await ws.aclose()
        assert (close.code, close.reason) == ((1011, "") if raise_ else (1000, ""))
        assert closed_after == pytest.approx(0.0 if answered else CLOSE_S)
        errors = refserver_errors(caplog)
        if raise_:
            [record] = errors
            assert record.exc_info is not None and record.exc_info[0] is Boom
        else:
            assert errors == []

    async def test_an_unanswered_shutdown_close_ends_at_the_close_timeout_and_keeps_1001(self) -> None:
        rec = Recorder()
        with anyio.fail_after(FOREVER):
            async with memory_server(echo_app(rec), ws_close_timeout_s=CLOSE_S) as server:
                ws = await server.open_ws()
                start = now()
                await server.shutdown()
                close = await ws.expect_close(FOREVER)
                told_after = (await rec.wait_kind("event", timeout=FOREVER))[0][1] - start
                closed_after = await eof_after(ws, start)  # never answered
                await rec.wait_kind("ended", timeout=FOREVER)
                await ws.aclose()
        assert (close.code, close.reason) == (1001, "server shutting down")
        assert told_after == 0.0  # the app learns at once (docs/decisions.md#shutdown-1001)
        assert closed_after == pytest.approx(CLOSE_S)
        assert [event for event, _ in rec.of("event")] == [disconnect(1001, "server shutting down")]
        assert_every_send_raised(rec, "the server is shutting down (close code 1001)", 1001)

    async def test_a_close_behind_a_blocked_write_ends_at_the_close_timeout(self) -> None:
        """docs/decisions.md#close-and-ping-timeouts: one app task is blocked in send() to a peer that stopped
        reading; another sends websocket.close, which waits behind it. The close timeout runs
        from the close: when it expires, the blocked write is cut short, both send() calls
        raise and receive() gives 1006. (The pipe to the client holds two unread writes: a
        full send buffer, without a kernel.)"""
        rec = Recorder()
        chunk = b"\x00" * 1000

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})

            async def stream() -> None:
                try:
                    while True:
                        rec.add("sending")
                        await send({"type": "websocket.send", "bytes": chunk})
                        rec.add("sent")
                except ClientDisconnected as exc:
                    rec.add("stream error", (exc, now()))

            async with anyio.create_task_group() as tg:
                tg.start_soon(stream)
                await anyio.wait_all_tasks_blocked()
                rec.add("closing", now())
                try:
                    await send({"type": "websocket.close", "code": 4000})
                except ClientDisconnected as exc:
                    rec.add("close error", (exc, now()))
            rec.add("event", (await receive(), now()))

        with anyio.fail_after(FOREVER):
            async with memory_server(app, ws_close_timeout_s=CLOSE_S, ws_per_message_deflate=False) as server:
                ws = await server.open_ws(to_client=2)  # and reads nothing more until the end
                await rec.wait_kind("event", timeout=FOREVER)
                got = []
                while (event := await ws.next_event(FOREVER)) is not None:
                    got.append(event)
                await ws.aclose()
        assert len(rec.of("sent")) == 2  # the pipe took two; the third write waited
        assert len(rec.of("sending")) == 3
        [closing] = rec.of("closing")
        for kind in ("stream error", "close error"):
            [(error, at)] = rec.of(kind)
            assert type(error) is ClientDisconnected
            assert (str(error), error.code) == ("the peer did not answer the close frame in time (code 1006)", 1006)
            assert at - closing == pytest.approx(CLOSE_S)
        [(event, at)] = rec.of("event")
        assert event == disconnect(1006)
        assert at - closing == pytest.approx(CLOSE_S)
        # What the client finally reads: the two messages, then the end; the close frame never
        # got through the blocked pipe.
        assert [(type(e), e.data) for e in got] == [(wse.BytesMessage, chunk)] * 2


class TestRFC6455Section7_1_7FailTheConnection:
    """RFC 6455 §7.1.7 with docs/decisions.md#failing-the-connection: bad data behind messages the app has yet
    to take fails the connection when the app asks for more, or at the hold timeout (the
    close timeout) if it does not; the messages still come first."""

    async def test_a_held_failure_is_sent_at_the_hold_timeout_then_tcp_closes_at_the_close_timeout(self) -> None:
        rec = Recorder()
        go = anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await go.wait()  # busy: takes nothing for now
            for _ in range(2):
                rec.add("event", (await receive(), now()))
            rec.add("ended")

        with anyio.fail_after(FOREVER):
            async with memory_server(app, ws_close_timeout_s=CLOSE_S, ws_per_message_deflate=False) as server:
                ws = await server.open_ws()
                start = now()
                await ws.send_raw(frame(0x1, b"first") + frame(0x1, b"\xff"))
                close = await ws.expect_close(FOREVER)
                failed_after = now() - start
                closed_after = await eof_after(ws, start)  # the close frame is never answered
                go.set()
                await rec.wait_kind("ended", timeout=FOREVER)
                await ws.aclose()
        assert (close.code, close.reason) == (1007, "invalid UTF-8 or payload data")
        assert failed_after == pytest.approx(CLOSE_S)
        assert closed_after == pytest.approx(2 * CLOSE_S)
        assert [event for event, _ in rec.of("event")] == [
            {"type": "websocket.receive", "text": "first"},
            disconnect(1007, "invalid UTF-8 or payload data"),
        ]

    async def test_a_failure_is_sent_at_once_when_the_app_asks_before_the_hold_timeout(self) -> None:
        rec = Recorder()
        go = anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await go.wait()
            for _ in range(2):
                rec.add("event", (await receive(), now()))
            rec.add("ended")

        with anyio.fail_after(FOREVER):
            async with memory_server(app, ws_close_timeout_s=CLOSE_S, ws_per_message_deflate=False) as server:
                ws = await server.open_ws()
                await ws.send_raw(frame(0x1, b"first") + frame(0x1, b"\xff"))
                with anyio.move_on_after(CLOSE_S / 2):
                    await ws.next_event(FOREVER)
                    raise AssertionError("the failure was not held")
                go.set()
                start = now()
                close = await ws.expect_close(FOREVER)
                failed_after = now() - start
                await ws.send_raw(close_frame(1007))
                await ws.expect_eof(FOREVER)
                await rec.wait_kind("ended", timeout=FOREVER)
                await ws.aclose()
        assert close.code == 1007
        assert failed_after == 0.0
        assert [event for event, _ in rec.of("event")] == [
            {"type": "websocket.receive", "text": "first"},
            disconnect(1007, "invalid UTF-8 or payload data"),
        ]


class TestWebSocketKeepalive:
    """www spec 2.5, "WebSocket": the server pings as necessary for liveness. A ping every
    ws_ping_interval_s; no pong within ws_ping_timeout_s: close 1011 to the peer, 1006 to
    the app (docs/decisions.md#keepalive-and-limits, #close-and-ping-timeouts); 0 disables either."""

    async def test_pings_come_at_each_interval_and_an_answering_peer_stays_past_the_timeout(self) -> None:
        rec = Recorder()
        with anyio.fail_after(FOREVER):
            async with memory_server(echo_app(rec), ws_ping_interval_s=INTERVAL_S, ws_ping_timeout_s=PONG_S) as server:
                ws = await server.open_ws()
                start = now()
                pings: list[tuple[float, bytes]] = []
                for _ in range(6):  # 18 s: longer than the ping timeout, three times over
                    ping = await ws.next_event(FOREVER)
                    assert isinstance(ping, wse.Ping), ping
                    pings.append((now() - start, bytes(ping.payload)))
                    await ws.send_raw(frame(0xA, bytes(ping.payload)))
                await ws.send_text("still open")
                assert await ws.next_message(FOREVER) == "still open"
                await ws.close(1000)
                await ws.expect_close(FOREVER)
                await ws.expect_eof(FOREVER)
                await rec.wait_kind("ended", timeout=FOREVER)
        assert [at for at, _ in pings] == pytest.approx([INTERVAL_S * k for k in range(1, 7)])
        assert len({payload for _, payload in pings}) == 6  # a late pong is not mistaken for a new one
        assert [event for event, _ in rec.of("event")] == [
            {"type": "websocket.receive", "text": "still open"},
            disconnect(1000),
        ]

    async def test_an_unanswered_ping_closes_with_1011_at_the_ping_timeout_and_the_app_gets_1006(self) -> None:
        rec = Recorder()
        with anyio.fail_after(FOREVER):
            async with memory_server(
                echo_app(rec), ws_ping_interval_s=INTERVAL_S, ws_ping_timeout_s=PONG_S, ws_close_timeout_s=CLOSE_S
            ) as server:
                ws = await server.open_ws()
                start = now()
                ping = await ws.next_event(FOREVER)  # never answered
                pinged_after = now() - start
                close = await ws.expect_close(FOREVER)
                gave_up_after = now() - start
                closed_after = await eof_after(ws, start)  # at once: the server does not wait for an answer
                await rec.wait_kind("ended", timeout=FOREVER)
                await ws.aclose()
        assert isinstance(ping, wse.Ping)
        assert pinged_after == pytest.approx(INTERVAL_S)
        assert (close.code, close.reason) == (1011, "keepalive ping timeout")
        assert gave_up_after == pytest.approx(INTERVAL_S + PONG_S)
        assert closed_after == pytest.approx(INTERVAL_S + PONG_S)
        [(event, at)] = rec.of("event")
        assert event == disconnect(1006)
        assert at - start == pytest.approx(INTERVAL_S + PONG_S)
        assert_every_send_raised(rec, "keepalive ping timed out (code 1006)", 1006)

    async def test_ping_timeout_zero_pings_at_each_interval_and_never_gives_up(self) -> None:
        rec = Recorder()
        with anyio.fail_after(FOREVER):
            async with memory_server(echo_app(rec), ws_ping_interval_s=INTERVAL_S, ws_ping_timeout_s=0) as server:
                ws = await server.open_ws()
                start = now()
                times = []
                for _ in range(10):  # never answered
                    assert isinstance(await ws.next_event(FOREVER), wse.Ping)
                    times.append(now() - start)
                await ws.send_text("alive")
                assert await ws.next_message(FOREVER) == "alive"
                await ws.close(1000)
                await ws.expect_close(FOREVER)
                await ws.expect_eof(FOREVER)
                await rec.wait_kind("ended", timeout=FOREVER)
        assert times == pytest.approx([INTERVAL_S * k for k in range(1, 11)])
        assert [event for event, _ in rec.of("event")][-1] == disconnect(1000)

    async def test_ping_interval_zero_sends_no_ping_for_an_hour(self) -> None:
        rec = Recorder()
        hour = 3600.0
        with anyio.fail_after(2 * FOREVER):
            async with memory_server(echo_app(rec), ws_ping_interval_s=0, ws_ping_timeout_s=PONG_S) as server:
                ws = await server.open_ws()
                start = now()
                with anyio.move_on_after(hour) as waited:
                    event = await ws.next_event(2 * FOREVER)
                    raise AssertionError(f"unexpected {event!r}")
                looked_for = now() - start
                await ws.send_text("alive")
                assert await ws.next_message(FOREVER) == "alive"
                await ws.close(1000)
                await ws.expect_close(FOREVER)
                await ws.expect_eof(FOREVER)
                await rec.wait_kind("ended", timeout=FOREVER)
        assert waited.cancelled_caught
        assert looked_for == pytest.approx(hour)
        assert [event for event, _ in rec.of("event")] == [
            {"type": "websocket.receive", "text": "alive"},
            disconnect(1000),
        ]
