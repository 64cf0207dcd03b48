"""Loop-free tests of the sans-IO WebSocket machine (``refserver.protocol.websocket``).

No sockets, no event loop, no sleeps: a :class:`Driver` feeds inputs to one
:class:`WebSocketMachine` and keeps what the runtime would do with each
:class:`Effects` (the bytes written in order, the timers armed, the TCP action, the state
changes, the notes, the events for the app). Tests assert exact bytes, events, error
texts and codes. Each class pins one section of the ASGI spec ("www spec" is the HTTP and
WebSocket spec, "asgi extensions" the extensions page) or of RFC 6455 / RFC 7692; the
expectations come from those texts, not from the machine's ``TABLE``.

Also here: the handshake helpers the machine is built from (``validate_request``,
``accept_key``, ``negotiate_deflate``) and ``truncate_reason``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import h11
import pytest
import wsproto.events as wse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection as WireConnection
from wsproto.connection import ConnectionType

from refserver import ASGIProtocolError, ClientDisconnected
from refserver.protocol import handshake
from refserver.protocol.effects import Effects, Note, Tcp, Timer, Transition
from refserver.protocol.handshake import DeflateParams, Rejection, accept_key, negotiate_deflate, validate_request
from refserver.protocol.websocket import (
    DISCONNECT_REPEATS_BEFORE_WARNING,
    MAX_BYTES_BEFORE_ACCEPT,
    MAX_CLOSE_REASON_BYTES,
    READ_AHEAD_BYTES,
    TABLE,
    Input,
    State,
    Timeouts,
    WebSocketMachine,
    truncate_reason,
)
from refserver.spec import sections
from refserver.spec.scopes import parse_subprotocols
from tests.support import big_frame, close_frame, frame, handshake_request

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
HEAD_101 = (
    b"HTTP/1.1 101 \r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: " + ACCEPT + b"\r\n\r\n"
)
HTTP_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error"
)
HTTP_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 20\r\nconnection: close\r\n\r\nServer shutting down"
)
CONNECT = {"type": "websocket.connect"}
# The default Timeouts: close 10 s, ping interval 20 s, ping timeout 20 s.
CLOSE_S, PING_S, PONG_S = 10.0, 20.0, 20.0
WWW_WEBSOCKET = 'www spec 2.5, "WebSocket"'


def disconnect(code: int, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


def text(data: str) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": data}


def binary(data: bytes) -> dict[str, Any]:
    return {"type": "websocket.receive", "bytes": data}


def server_close(code: int, reason: str = "") -> bytes:
    """A server (unmasked) close frame, RFC 6455 §5.5.1."""
    payload = struct.pack("!H", code) + reason.encode()
    return bytes([0x88, len(payload)]) + payload


def server_frame(opcode: int, payload: bytes) -> bytes:
    """A short unmasked server frame (payload < 126 bytes)."""
    return bytes([0x80 | opcode, len(payload)]) + payload


def wrote(fx: Effects) -> bytes:
    """The bytes one input wrote (the machine may hand them over in several pieces)."""
    return b"".join(fx.write)


# ---------------------------------------------------------------- the sans-IO driver

# Where each timer may run (the machine's own doc: RFC 6455 §7.1.1 for CLOSE, the held
# failure for HOLD, keepalive only on an open connection).
TIMER_STATES = {
    Timer.CLOSE: {State.CLOSING, State.SHUTTING_DOWN, State.DRAINING},
    Timer.HOLD: {State.FAILING},
    Timer.PING: {State.OPEN},
    Timer.PONG: {State.OPEN},
}


class Driver:
    """Stands in for the runtime: feeds inputs to one machine and applies each Effects the
    way ``runtime/websocket.py`` does (cancel, then arm; the last TCP action wins), keeping
    a record of everything for the assertions."""

    def __init__(self, machine: WebSocketMachine) -> None:
        self.machine = machine
        self.written: list[bytes] = []  # every write, in order
        self._taken = 0  # how many writes out() has handed back
        self.armed: dict[Timer, float] = {}
        self.tcp: Tcp | None = None
        self.tcp_log: list[Tcp] = []
        self.reading = True
        self.transitions: list[Transition] = []
        self.notes: list[Note] = []
        self.events: list[Mapping[str, Any]] = []  # what receive() returned (or was handed)
        # An event handed to a receive() that waits (Effects.event of a non-RECEIVE input),
        # returned by the next receive() as the runtime does.
        self.handed: Mapping[str, Any] | None = None
        self.statuses: list[int] = []
        self.close_codes: list[int] = []
        self.errors: list[BaseException] = []  # Effects.error, raised into the app
        self.check_timers = True

    # -- applying

    def apply(self, fx: Effects) -> Effects:
        self.written.extend(fx.write)
        for timer in fx.cancel:
            self.armed.pop(timer, None)
        self.armed.update(fx.arm)
        if fx.reading is not None:
            assert fx.reading is not self.reading, "a reading change that changes nothing"
            self.reading = fx.reading
        if fx.tcp is not None:
            self.tcp = fx.tcp
            self.tcp_log.append(fx.tcp)
        for step in fx.transitions:
            previous = self.transitions[-1].new if self.transitions else State.CONNECTING.name
            assert step.old == previous, f"transition {step} does not start where the last one ended"
            self.transitions.append(step)
        if fx.transitions:
            assert fx.transitions[-1].new == self.machine.state.name
        self.notes.extend(fx.notes)
        if fx.event is not None:
            assert self.handed is None, "an event handed over while another one waits"
            self.events.append(fx.event)
            self.handed = fx.event
        if fx.status:
            self.statuses.append(fx.status)
        if fx.close_code is not None:
            self.close_codes.append(fx.close_code)
        if fx.error is not None:
            self.errors.append(fx.error)
        if self.check_timers:
            for timer in self.armed:
                assert self.machine.state in TIMER_STATES[timer], f"{timer.name} armed in {self.machine.state.name}"
        return fx

    # -- inputs

    def send(self, message: Mapping[str, Any]) -> Effects:
        return self.apply(self.machine.app_send(message))

    def receive(self) -> Mapping[str, Any] | None:
        if self.handed is None:
            self.apply(self.machine.app_receive())
        event, self.handed = self.handed, None
        return event

    def receive_fx(self) -> Effects:
        """receive() with nothing handed over yet: its whole Effects (the event taken)."""
        assert self.handed is None
        fx = self.apply(self.machine.app_receive())
        self.handed = None
        return fx

    def feed(self, data: bytes) -> Effects:
        return self.apply(self.machine.receive_data(data))

    def fire(self, timer: Timer, *, write_blocked: bool = False) -> Effects:
        """A timer the machine armed fires (the runtime drops it from its deadlines first)."""
        assert timer in self.armed, f"{timer.name} is not armed"
        del self.armed[timer]
        return self.apply(self.machine.timer_fired(timer, write_blocked=write_blocked))

    def fire_stray(self, timer: Timer) -> Effects:
        """A timer fires that is not armed (a deadline that raced with its cancellation)."""
        return self.apply(self.machine.timer_fired(timer))

    def lost(self, why: str = "") -> Effects:
        return self.apply(self.machine.peer_gone(why))

    def shutdown(self) -> Effects:
        return self.apply(self.machine.server_shutdown())

    def ended(self, *, raised: bool) -> Effects:
        return self.apply(self.machine.app_ended(raised=raised))

    # -- reading the record

    def out(self) -> bytes:
        """The bytes written since the last call."""
        data = b"".join(self.written[self._taken :])
        self._taken = len(self.written)
        return data

    def drain(self) -> list[Mapping[str, Any]]:
        """receive() until it would wait or returns the disconnect."""
        got: list[Mapping[str, Any]] = []
        while (event := self.receive()) is not None:
            got.append(event)
            if event["type"] == "websocket.disconnect":
                break
        return got

    def state(self) -> State:
        """The machine's state now (a method, so that mypy does not narrow it across inputs)."""
        return self.machine.state

    def path(self) -> list[tuple[str, str]]:
        return [(t.old, t.new) for t in self.transitions]


def make_driver(
    extra: list[tuple[str, str]] | None = None,
    *,
    trailing: bytes = b"",
    deflate: bool = False,
    max_size: int = 1 << 20,
    timeouts: Timeouts | None = None,
) -> Driver:
    """A machine for a handshake parsed by h11 as the HTTP runtime does; ``trailing``
    arrives in the same read as the request."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(handshake_request("/", extra=extra or []) + trailing)
    request = conn.next_event()
    assert isinstance(request, h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    headers = list(request.headers)
    key = validate_request(request.method, request.http_version, headers)
    assert isinstance(key, bytes)
    machine = WebSocketMachine(
        conn,
        key=key,
        subprotocols=parse_subprotocols(headers),
        deflate=negotiate_deflate(headers) if deflate else None,
        max_size_bytes=max_size,
        timeouts=timeouts,
    )
    return Driver(machine)


def opened(**kwargs: Any) -> Driver:
    """Connected, accepted, the 101 taken."""
    driver = make_driver(**kwargs)
    assert driver.receive() == CONNECT
    driver.send({"type": "websocket.accept"})
    assert driver.out().startswith(b"HTTP/1.1 101 ")
    return driver


# ---------------------------------------------------------------- www spec 2.5: WebSocket


class TestConnectReceiveEvent:
    """www spec 2.5, "Connect - receive event": the first event, whatever happens next."""

    def test_connect_is_first_then_nothing_until_something_happens(self) -> None:
        driver = make_driver()
        assert driver.state() is State.CONNECTING
        assert driver.reading is True
        assert driver.tcp is None
        assert driver.receive() == CONNECT
        assert driver.receive() is None
        assert driver.out() == b""
        assert driver.armed == {}
        assert driver.events == [CONNECT]  # the second receive() waits

    def test_connect_is_still_first_after_a_refusal(self) -> None:
        driver = make_driver()
        driver.send({"type": "websocket.close"})
        assert driver.receive() == CONNECT
        assert driver.receive() == disconnect(1006)


class TestAcceptSendEvent:
    """www spec 2.5, "Accept - send event" (and RFC 6455 §4.2.2, the server's handshake)."""

    def test_accept_writes_the_exact_101(self) -> None:
        driver = make_driver()
        fx = driver.send({"type": "websocket.accept"})
        assert driver.out() == HEAD_101
        assert fx.status == 101
        assert fx.error is None
        assert driver.state() is State.OPEN
        assert driver.tcp is None
        assert driver.reading is True
        assert driver.armed == {Timer.PING: PING_S}
        assert driver.path() == [("CONNECTING", "OPEN")]
        assert driver.out() == b""

    def test_an_open_connection_keeps_no_h11_state(self) -> None:
        # What an idle WebSocket holds: the HTTP side ended with the 101.
        driver = make_driver()
        assert isinstance(driver.machine.handshake, h11.Connection)
        driver.send({"type": "websocket.accept"})
        assert driver.machine.handshake is None

    def test_accept_with_subprotocol_and_headers_keeps_order_and_duplicates(self) -> None:
        driver = make_driver([("Sec-WebSocket-Protocol", "a, b"), ("Sec-WebSocket-Protocol", "c")])
        assert driver.machine.offered_subprotocols == ["a", "b", "c"]
        driver.send(
            {
                "type": "websocket.accept",
                "subprotocol": "c",
                "headers": [(b"set-cookie", b"1"), (b"x", b"y"), (b"set-cookie", b"2")],
            }
        )
        assert driver.out() == (
            HEAD_101[:-2] + b"sec-websocket-protocol: c\r\nset-cookie: 1\r\nx: y\r\nset-cookie: 2\r\n\r\n"
        )

    @pytest.mark.parametrize("subprotocol", [None, "absent"], ids=["None", "no key"])
    def test_accept_without_subprotocol_sends_no_protocol_header(self, subprotocol: str | None) -> None:
        driver = make_driver([("Sec-WebSocket-Protocol", "chat")])
        message: dict[str, Any] = {"type": "websocket.accept"}
        if subprotocol is None:
            message["subprotocol"] = None
        driver.send(message)
        assert driver.out() == HEAD_101

    def test_bytes_behind_the_handshake_are_fed_at_accept(self) -> None:
        driver = make_driver(trailing=frame(0x1, b"early") + frame(0x1, b"par", fin=False))
        fx = driver.feed(frame(0x0, b"tial"))  # arrives before the accept: held by h11
        assert fx == Effects()
        assert list(driver.machine.inbox) == []
        assert driver.receive() == CONNECT
        driver.send({"type": "websocket.accept"})
        assert driver.out() == HEAD_101
        assert driver.receive() == text("early")
        assert driver.receive() == text("partial")
        assert driver.receive() is None

    def test_reading_pauses_past_the_pre_accept_budget_and_resumes_at_accept(self) -> None:
        driver = make_driver()
        payload = b"p" * (MAX_BYTES_BEFORE_ACCEPT - 8)  # 8 header bytes: 2, 2 for the length, 4 for the mask
        whole = big_frame(0x2, payload)
        assert len(whole) == MAX_BYTES_BEFORE_ACCEPT
        assert driver.feed(whole).reading is None  # exactly the budget: still reading
        tail = frame(0x1, b"after")
        assert driver.feed(tail[:1]).reading is False  # one byte more: paused
        assert driver.reading is False
        fx = driver.send({"type": "websocket.accept"})
        assert fx.reading is True  # the buffered bytes went to the frame parser
        assert driver.state() is State.OPEN
        assert driver.receive() == CONNECT
        assert driver.receive() == binary(payload)
        driver.feed(tail[1:])
        assert driver.receive() == text("after")
        assert driver.out() == HEAD_101

    @pytest.mark.parametrize(
        ("message", "error"),
        [
            (
                {"type": "websocket.accept", "subprotocol": "nope"},
                "websocket.accept chose subprotocol 'nope', which the client did not offer (offered: ['chat']; "
                "RFC 6455 §4.2.2); the handshake was answered with HTTP 500 "
                '(state: CONNECTING; www spec 2.5, "Accept - send event")',
            ),
            (
                {"type": "websocket.accept", "headers": [(b"sec-websocket-accept", b"x")]},
                "websocket.accept sets header 'sec-websocket-accept', which only the server may set; "
                'the handshake was answered with HTTP 500 (state: CONNECTING; www spec 2.5, "Accept - send event")',
            ),
            (
                {"type": "websocket.accept", "headers": [(b"connection", b"close")]},
                "websocket.accept sets header 'connection', which only the server may set; "
                'the handshake was answered with HTTP 500 (state: CONNECTING; www spec 2.5, "Accept - send event")',
            ),
            (
                {"type": "websocket.accept", "headers": [(b"upgrade", b"h2c")]},
                "websocket.accept sets header 'upgrade', which only the server may set; "
                'the handshake was answered with HTTP 500 (state: CONNECTING; www spec 2.5, "Accept - send event")',
            ),
        ],
    )
    def test_unacceptable_accept_answers_500_and_raises(self, message: dict[str, Any], error: str) -> None:
        driver = make_driver([("Sec-WebSocket-Protocol", "chat")])
        driver.receive()
        fx = driver.send(message)
        assert isinstance(fx.error, ASGIProtocolError)
        assert str(fx.error) == error
        assert wrote(fx) == HTTP_500
        assert fx.status == 500
        assert driver.errors == [fx.error]
        assert driver.statuses == [500]
        assert driver.state() is State.DRAINING
        assert driver.tcp is Tcp.SEND_EOF
        assert driver.armed == {Timer.CLOSE: CLOSE_S}
        assert driver.receive() == disconnect(1006)
        with pytest.raises(ClientDisconnected, match="answered with HTTP 500") as raised:
            driver.send({"type": "websocket.accept"})
        assert raised.value.code == 1006


class TestSendSendEvent:
    """www spec 2.5, "Send - send event": exactly one of bytes or text, framed per RFC 6455 §5.2."""

    @pytest.mark.parametrize(
        ("message", "wire"),
        [
            ({"type": "websocket.send", "text": "hi"}, b"\x81\x02hi"),
            ({"type": "websocket.send", "text": ""}, b"\x81\x00"),
            ({"type": "websocket.send", "bytes": b""}, b"\x82\x00"),
            ({"type": "websocket.send", "bytes": b"\x00"}, b"\x82\x01\x00"),
            ({"type": "websocket.send", "text": "é"}, b"\x81\x02\xc3\xa9"),
            ({"type": "websocket.send", "text": "héllo €"}, b"\x81\x0ah\xc3\xa9llo \xe2\x82\xac"),
            ({"type": "websocket.send", "bytes": bytearray(b"ba")}, b"\x82\x02ba"),
            ({"type": "websocket.send", "text": "t", "bytes": None}, b"\x81\x01t"),
            ({"type": "websocket.send", "text": None, "bytes": b"b"}, b"\x82\x01b"),
            ({"type": "websocket.send", "bytes": b"x" * 126}, b"\x82\x7e\x00\x7e" + b"x" * 126),
            (
                {"type": "websocket.send", "bytes": b"x" * 65536},
                b"\x82\x7f" + struct.pack("!Q", 65536) + b"x" * 65536,
            ),
        ],
    )
    def test_send_exact_frames(self, message: dict[str, Any], wire: bytes) -> None:
        driver = opened()
        fx = driver.send(message)
        assert wrote(fx) == wire
        assert fx.transitions == []
        assert driver.state() is State.OPEN


class TestReceiveReceiveEvent:
    """www spec 2.5, "Receive - receive event": each complete message, in order, text or bytes."""

    def test_received_messages_queue_and_wake_the_app(self) -> None:
        driver = opened()
        fx = driver.feed(frame(0x1, b"one") + frame(0x2, b"two"))
        assert fx.wake_app is True
        assert len(driver.machine.inbox) == 2
        assert driver.receive() == text("one")
        assert driver.receive() == binary(b"two")
        assert len(driver.machine.inbox) == 0
        assert driver.receive() is None

    def test_fragmented_messages_are_reassembled(self) -> None:
        euro = "€".encode()  # e2 82 ac
        emoji = "😀".encode()  # f0 9f 98 80
        frames = [
            # text "héllo" split inside the two-byte é
            frame(0x1, b"h\xc3", fin=False),
            frame(0x0, b"\xa9llo"),
            # a 4-byte character split over three frames, with a ping in between
            frame(0x1, emoji[:1], fin=False),
            frame(0x9, b"p"),
            frame(0x0, emoji[1:3], fin=False),
            frame(0x0, emoji[3:] + euro),
            # binary in three parts, one of them empty
            frame(0x2, b"\x00\x01", fin=False),
            frame(0x0, b"", fin=False),
            frame(0x0, b"\xff"),
            # a text message whose first fragment is empty
            frame(0x1, b"", fin=False),
            frame(0x0, b"end"),
        ]
        driver = opened()
        for data in frames:
            driver.feed(data)
        assert driver.out() == b"\x8a\x01p"  # the ping between fragments is answered
        assert driver.drain() == [text("héllo"), text("😀€"), binary(b"\x00\x01\xff"), text("end")]

    def test_received_types_are_exact(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"") + frame(0x2, b"") + frame(0x1, b"t") + frame(0x2, b"b"))
        events = driver.drain()
        assert events == [text(""), binary(b""), text("t"), binary(b"b")]
        assert [type(e.get("text", e.get("bytes"))) for e in events] == [str, bytes, str, bytes]

    def test_fragments_reassembled_across_receive_calls_and_utf8_splits(self) -> None:
        driver = opened()
        data = frame(0x1, "h€".encode()[:2], fin=False) + frame(0x9, b"!") + frame(0x0, "h€".encode()[2:] + b"!")
        for i in range(len(data)):  # one byte at a time
            driver.feed(data[i : i + 1])
        assert driver.out() == b"\x8a\x01!"
        assert driver.receive() == text("h€!")
        assert driver.receive() is None


class TestReceiveHandedToTheWaitingReceive:
    """www spec 2.5, "Receive - receive event": a message that completes while the app waits
    in receive() answers that receive() (docs/implementation.md#frames-through-wsproto); the order is unchanged."""

    def test_the_first_message_answers_the_waiting_receive_the_rest_queue(self) -> None:
        driver = opened()
        assert driver.receive() is None  # the app waits
        fx = driver.feed(frame(0x1, b"one") + frame(0x2, b"two"))
        assert fx.event == text("one")
        assert fx.wake_app is True
        assert driver.machine.inbox == [binary(b"two")]
        assert driver.receive() == text("one")
        assert driver.receive() == binary(b"two")
        assert driver.receive() is None

    def test_a_handed_message_comes_before_the_disconnect(self) -> None:
        driver = opened()
        assert driver.receive() is None
        fx = driver.feed(frame(0x2, b"last") + close_frame(1000))
        assert fx.event == binary(b"last")
        assert driver.state() is State.CLOSED
        assert driver.drain() == [binary(b"last"), disconnect(1000)]

    def test_bad_data_behind_a_handed_message_is_held_until_the_app_asks_again(self) -> None:
        driver = opened()
        assert driver.receive() is None
        fx = driver.feed(frame(0x1, b"ok") + frame(0x1, b"\xff"))
        assert fx.event == text("ok")
        assert driver.state() is State.FAILING  # the app holds "ok" and may answer it (#26)
        assert driver.receive() == text("ok")
        assert driver.receive() == disconnect(1007, "invalid UTF-8 or payload data")

    def test_no_message_is_handed_when_the_app_is_not_waiting(self) -> None:
        driver = opened()
        fx = driver.feed(frame(0x1, b"queued"))
        assert fx.event is None
        assert driver.machine.inbox == [text("queued")]


class TestReadAhead:
    """www spec 2.5, "Receive - receive event" with backpressure: reading pauses once the
    complete messages the app has not taken exceed READ_AHEAD_BYTES, and resumes when it
    takes them; a close frame read behind unread messages still ends the connection
    (RFC 6455 §7.1.5) after they are delivered."""

    def test_reading_pauses_past_the_budget_and_resumes_when_the_app_takes_messages(self) -> None:
        driver = opened()
        at_budget = b"a" * READ_AHEAD_BYTES
        assert driver.feed(big_frame(0x2, at_budget)).reading is None  # exactly the budget: still reading
        assert driver.reading is True
        fx = driver.feed(frame(0x2, b"b"))
        assert fx.reading is False
        assert driver.reading is False
        assert driver.state() is State.OPEN
        assert driver.receive() == binary(at_budget)
        assert driver.reading is True
        assert driver.receive() == binary(b"b")
        assert driver.receive() is None
        assert driver.reading is True

    def test_text_counts_toward_the_budget(self) -> None:
        driver = opened()
        half = "t" * (READ_AHEAD_BYTES // 2)
        driver.feed(big_frame(0x1, half.encode()) + big_frame(0x1, half.encode()))
        assert driver.reading is True
        assert driver.feed(frame(0x1, b"x")).reading is False
        assert driver.receive() == text(half)
        assert driver.reading is True

    def test_the_budget_counts_text_in_utf8_bytes(self) -> None:
        driver = opened()
        wide = "é" * (READ_AHEAD_BYTES // 2 + 1)  # READ_AHEAD_BYTES + 2 bytes of UTF-8
        fx = driver.feed(big_frame(0x1, wide.encode()))
        assert fx.reading is False

    def test_close_frame_in_a_later_read_behind_unread_messages_is_seen(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"one") + frame(0x2, b"two"))
        assert driver.reading is True  # under the budget: the reader reads on
        fx = driver.feed(close_frame(4000, "gone"))
        assert wrote(fx) == server_close(4000, "gone")
        assert fx.tcp is Tcp.CLOSE
        assert driver.state() is State.CLOSED
        with pytest.raises(ClientDisconnected) as raised:
            driver.send({"type": "websocket.send", "text": "late"})
        assert raised.value.code == 4000
        assert str(raised.value) == "peer closed the connection with code 4000"
        assert driver.drain() == [text("one"), binary(b"two"), disconnect(4000, "gone")]

    def test_close_frame_behind_messages_past_the_budget_is_seen(self) -> None:
        driver = opened()
        chunk = b"m" * (READ_AHEAD_BYTES // 2)
        data = big_frame(0x2, chunk) + big_frame(0x2, chunk) + big_frame(0x2, chunk) + close_frame(4001, "bye")
        fx = driver.feed(data)
        assert wrote(fx) == server_close(4001, "bye")
        assert fx.reading is False
        assert driver.state() is State.CLOSED
        assert driver.tcp is Tcp.CLOSE
        with pytest.raises(ClientDisconnected) as raised:
            driver.send({"type": "websocket.send", "bytes": b"x"})
        assert raised.value.code == 4001
        assert driver.drain() == [binary(chunk), binary(chunk), binary(chunk), disconnect(4001, "bye")]
        assert driver.reading is False  # closed: nothing more to read


class TestCloseSendEvent:
    """www spec 2.5, "Close - send event": before the accept it refuses the handshake with
    HTTP 403; after it, a close frame with the code (1000 by default), and the disconnect
    waits for the peer's answer (RFC 6455 §7.1.2)."""

    def test_close_before_accept_is_403(self) -> None:
        driver = make_driver()
        fx = driver.send({"type": "websocket.close", "code": 4000, "reason": "not sent anywhere"})
        assert driver.out() == b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        assert fx.status == 403
        assert fx.close_code == 1006
        assert driver.state() is State.DRAINING
        assert driver.tcp is Tcp.SEND_EOF
        assert driver.receive() == CONNECT  # never read: still first
        assert driver.receive() == disconnect(1006)
        assert driver.receive() == disconnect(1006)
        assert driver.feed(frame(0x1, b"ignored")) == Effects()
        assert driver.out() == b""

    def test_app_close_waits_for_the_echo_and_drops_data_in_between(self) -> None:
        driver = opened()
        driver.send({"type": "websocket.close", "code": 4000, "reason": "done"})
        assert driver.out() == server_close(4000, "done")
        assert driver.state() is State.CLOSING
        assert driver.tcp is None
        assert driver.armed == {Timer.CLOSE: CLOSE_S}
        assert driver.receive() is None  # no disconnect until the peer answers
        with pytest.raises(ClientDisconnected, match=r"the app already sent websocket.close \(code 4000\)") as raised:
            driver.send({"type": "websocket.close"})
        assert raised.value.code == 4000
        fx = driver.feed(frame(0x1, b"dropped") + frame(0x9, b"p") + frame(0x2, b"dropped"))
        assert wrote(fx) == b""  # no pong after our close frame
        assert fx.notes == [Note("ignored", "a data message after the close frame was sent", "RFC 6455 §1.4")] * 2
        assert driver.receive() is None
        fx = driver.feed(close_frame(4002, "echo"))
        assert wrote(fx) == b""  # no close frame after ours (RFC 6455 §5.5.1)
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.CLOSE
        assert driver.armed == {}
        assert driver.receive() == disconnect(4002, "echo")
        assert driver.receive() == disconnect(4002, "echo")

    def test_long_close_reason_is_cut_with_a_notice(self) -> None:
        driver = opened()
        fx = driver.send({"type": "websocket.close", "code": 1000, "reason": "é" * 100})
        assert wrote(fx) == server_close(1000, "é" * 61)
        assert fx.notes == [
            Note(
                "warning",
                "websocket.close reason is longer than 123 UTF-8 bytes; it was cut to fit the close frame "
                "(RFC 6455 §5.5)",
                sections.WS_CLOSE,
            )
        ]

    @pytest.mark.parametrize(("raised", "code"), [(False, 1000), (True, 1011)])
    def test_app_end_after_accept_sends_close(self, raised: bool, code: int) -> None:
        driver = opened()
        fx = driver.ended(raised=raised)
        assert wrote(fx) == server_close(code)
        assert driver.state() is State.CLOSING
        assert driver.armed == {Timer.CLOSE: CLOSE_S}
        driver.feed(close_frame(code))
        assert driver.state() is State.CLOSED
        assert driver.tcp is Tcp.CLOSE

    @pytest.mark.parametrize("raised", [False, True])
    def test_app_end_before_accept_answers_500(self, raised: bool) -> None:
        driver = make_driver()
        fx = driver.ended(raised=raised)
        assert driver.out() == HTTP_500
        assert fx.status == 500
        assert driver.state() is State.DRAINING
        assert driver.tcp is Tcp.SEND_EOF

    def test_app_end_after_close_or_disconnect_sends_nothing(self) -> None:
        driver = opened()
        driver.feed(close_frame(1000))
        driver.out()
        assert driver.ended(raised=True) == Effects()
        assert driver.state() is State.CLOSED
        assert driver.tcp_log == [Tcp.CLOSE]

    def test_state_changes_are_reported(self) -> None:
        driver = make_driver()
        driver.send({"type": "websocket.accept"})
        driver.send({"type": "websocket.close"})
        driver.feed(close_frame(1000))
        assert driver.path() == [("CONNECTING", "OPEN"), ("OPEN", "CLOSING"), ("CLOSING", "CLOSED")]
        assert [t.section for t in driver.transitions] == [sections.WS_ACCEPT, sections.WS_CLOSE, "RFC 6455 §7.1.5"]


class TestWebSocketDenialResponse:
    """asgi extensions, "Websocket Denial Response": an HTTP response instead of the 101."""

    def test_denial_start_is_held_until_the_first_body(self) -> None:
        driver = make_driver()
        fx = driver.send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"x", b"1")]})
        assert wrote(fx) == b""
        assert driver.state() is State.DENIAL_START_HELD
        fx = driver.send({"type": "websocket.http.response.body", "body": b"ab", "more_body": True})
        assert driver.out() == (
            b"HTTP/1.1 401 Unauthorized\r\nx: 1\r\nconnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
        )
        assert fx.status == 401
        assert driver.state() is State.DENIAL_BODY
        assert driver.statuses == [401]
        fx = driver.send({"type": "websocket.http.response.body", "body": b"", "more_body": True})
        assert wrote(fx) == b""  # an empty part writes nothing (no premature 0-chunk)
        driver.send({"type": "websocket.http.response.body", "body": b"c"})
        assert driver.out() == b"1\r\nc\r\n0\r\n\r\n"
        assert driver.state() is State.DRAINING
        assert driver.tcp is Tcp.SEND_EOF
        assert driver.receive() == CONNECT
        assert driver.receive() == disconnect(1006)
        assert driver.receive() == disconnect(1006)

    def test_denial_in_one_body_uses_content_length(self) -> None:
        driver = make_driver()
        driver.send({"type": "websocket.http.response.start", "status": 404})
        driver.send({"type": "websocket.http.response.body", "body": b"nope"})
        assert driver.out() == b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope"

    def test_app_end_mid_denial_body_closes_tcp(self) -> None:
        driver = make_driver()
        driver.send({"type": "websocket.http.response.start", "status": 401})
        driver.send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
        driver.out()
        fx = driver.ended(raised=True)
        assert wrote(fx) == b""
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.CLOSE

    def test_shutdown_during_a_held_denial_start_answers_503(self) -> None:
        driver = make_driver()
        driver.send({"type": "websocket.http.response.start", "status": 401})
        driver.shutdown()
        assert driver.out() == HTTP_503
        assert driver.state() is State.DRAINING
        assert driver.tcp is Tcp.SEND_EOF
        with pytest.raises(ClientDisconnected, match=r"the server is shutting down \(HTTP 503\)"):
            driver.send({"type": "websocket.http.response.body", "body": b"late"})

    def test_shutdown_mid_denial_body_lets_the_app_finish(self) -> None:
        driver = make_driver()
        driver.send({"type": "websocket.http.response.start", "status": 401})
        driver.send({"type": "websocket.http.response.body", "body": b"a", "more_body": True})
        driver.out()
        assert driver.shutdown() == Effects()
        driver.send({"type": "websocket.http.response.body", "body": b"b"})
        assert driver.out() == b"1\r\nb\r\n0\r\n\r\n"


class TestDisconnectReceiveEvent:
    """www spec 2.5, "Disconnect - receive event": one disconnect per connection, with the
    peer's code (1005 for none), 1006 for a loss, or the server's; every later receive()
    returns it again."""

    def test_every_receive_after_the_disconnect_returns_a_fresh_copy(self) -> None:
        driver = opened()
        driver.feed(close_frame(4001, "bye"))
        first = driver.receive()
        assert first == disconnect(4001, "bye")
        assert isinstance(first, dict)
        first["code"] = 1
        first["extra"] = True
        second = driver.receive()
        assert second == disconnect(4001, "bye")
        assert second is not first

    def test_connect_is_a_fresh_dict(self) -> None:
        one, two = make_driver(), make_driver()
        first = one.receive()
        assert isinstance(first, dict)
        first["type"] = "changed"
        assert two.receive() == CONNECT

    def test_messages_are_fresh_dicts(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"same") + frame(0x1, b"same"))
        first = driver.receive()
        assert isinstance(first, dict)
        first["text"] = "changed"
        assert driver.receive() == text("same")

    def test_receive_loop_after_the_disconnect_warns_exactly_once(self) -> None:
        driver = opened()
        driver.lost("reset")
        warnings: list[int] = []
        for call in range(1, 2 * DISCONNECT_REPEATS_BEFORE_WARNING + 1):
            fx = driver.receive_fx()
            assert fx.event == disconnect(1006)
            if fx.notes:
                warnings.append(call)
                assert fx.notes == [
                    Note(
                        "warning",
                        f"the app called receive() {DISCONNECT_REPEATS_BEFORE_WARNING} times after "
                        "websocket.disconnect; the connection is over, so the app should return when it "
                        "receives websocket.disconnect",
                        'www spec 2.5, "Disconnect - receive event"',
                    )
                ]
        assert warnings == [DISCONNECT_REPEATS_BEFORE_WARNING]
        assert len(driver.notes) == 1

    def test_shutdown_when_open_sends_1001_and_decides_1001(self) -> None:
        driver = opened()
        fx = driver.shutdown()
        assert driver.out() == server_close(1001, "server shutting down")
        assert fx.close_code == 1001
        assert driver.state() is State.SHUTTING_DOWN
        assert driver.tcp is None
        assert driver.armed == {Timer.CLOSE: CLOSE_S}
        assert driver.receive() == disconnect(1001, "server shutting down")
        fx = driver.feed(close_frame(1001))
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.CLOSE
        assert driver.out() == b""
        assert driver.receive() == disconnect(1001, "server shutting down")

    def test_shutdown_during_the_handshake_answers_503(self) -> None:
        driver = make_driver()
        fx = driver.shutdown()
        assert driver.out() == HTTP_503
        assert fx.status == 503
        assert driver.state() is State.DRAINING
        assert driver.tcp is Tcp.SEND_EOF
        assert driver.receive() == CONNECT
        assert driver.receive() == disconnect(1001, "server shutting down")

    def test_shutdown_after_the_app_closed_changes_nothing(self) -> None:
        driver = opened()
        driver.send({"type": "websocket.close"})
        driver.out()
        assert driver.shutdown() == Effects()
        assert driver.state() is State.CLOSING

    def test_connection_lost_is_1006_after_queued_messages(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"a") + frame(0x1, b"unfinished", fin=False))
        fx = driver.lost("reset by peer")
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.ABORT
        assert isinstance(fx.error, ClientDisconnected)
        assert str(fx.error) == "connection lost without a close frame (code 1006)"
        assert fx.error.code == 1006
        assert driver.receive() == text("a")
        for _ in range(3):
            assert driver.receive() == disconnect(1006)
        assert driver.out() == b""

    def test_complete_messages_come_before_the_disconnect_and_an_unfinished_one_is_dropped(self) -> None:
        """docs/decisions.md#messages-before-disconnect: every message that fully arrived is delivered, in order,
        before the disconnect; a fragmented message unfinished at the close is dropped."""
        driver = opened()
        fx = driver.feed(
            frame(0x1, b"one")
            + frame(0x2, b"two")
            + frame(0x1, b"thr", fin=False)
            + frame(0x9, b"")
            + frame(0x0, b"ee")
            + frame(0x1, b"unfini", fin=False)
            + close_frame(4001, "bye")
        )
        assert wrote(fx) == server_frame(0xA, b"") + server_close(4001, "bye")
        assert fx.tcp is Tcp.CLOSE  # closed while the app has read nothing yet
        assert driver.drain() == [text("one"), binary(b"two"), text("three"), disconnect(4001, "bye")]


def _peer_closed_unread() -> Driver:
    driver = opened()
    driver.feed(close_frame(1001, "going"))  # echoed; the app has not called receive()
    return driver


def _disconnect_received() -> Driver:
    driver = opened()
    driver.feed(close_frame(1000))
    assert driver.receive() == disconnect(1000)
    return driver


def _after_own_close() -> Driver:
    driver = opened()
    driver.send({"type": "websocket.close", "code": 4000})
    return driver


def _after_403() -> Driver:
    driver = make_driver()
    driver.send({"type": "websocket.close"})
    return driver


def _after_denial() -> Driver:
    driver = make_driver()
    driver.send({"type": "websocket.http.response.start", "status": 451})
    driver.send({"type": "websocket.http.response.body", "body": b"gone"})
    return driver


def _after_failure() -> Driver:
    driver = opened(max_size=10)
    driver.feed(frame(0x2, b"x" * 11))
    return driver


def _after_shutdown() -> Driver:
    driver = opened()
    driver.shutdown()
    return driver


def _after_loss() -> Driver:
    driver = opened()
    driver.lost("reset by peer")
    return driver


# Every message an app may send on a WebSocket; each raises once the connection is closing
# or closed, whatever the order.
WS_SENDS: list[dict[str, Any]] = [
    {"type": "websocket.send", "text": "x"},
    {"type": "websocket.send", "bytes": b"x"},
    {"type": "websocket.close"},
    {"type": "websocket.close", "code": 4000, "reason": "again"},
    {"type": "websocket.accept"},
]


class TestDisconnectedClientSendException:
    """www spec 2.5, "Disconnected Client - send exception": send() on a closed connection
    raises an OSError subclass (ClientDisconnected), here with the close code."""

    @pytest.mark.parametrize(
        ("build", "why", "code"),
        [
            pytest.param(_peer_closed_unread, "peer closed the connection with code 1001", 1001, id="peer-close"),
            pytest.param(_disconnect_received, "peer closed the connection with code 1000", 1000, id="disconnect-read"),
            pytest.param(_after_own_close, "the app already sent websocket.close (code 4000)", 4000, id="own-close"),
            pytest.param(_after_403, "the handshake was refused with HTTP 403", 1006, id="403"),
            pytest.param(
                _after_denial, "the handshake was answered with the app's HTTP 451 response", 1006, id="denial"
            ),
            pytest.param(
                _after_failure, "connection failed with code 1009 (message exceeds 10 bytes)", 1009, id="failure"
            ),
            pytest.param(_after_shutdown, "the server is shutting down (close code 1001)", 1001, id="shutdown"),
            pytest.param(_after_loss, "connection lost without a close frame (code 1006)", 1006, id="lost"),
        ],
    )
    def test_every_message_raises_saying_why(self, build: Callable[[], Driver], why: str, code: int) -> None:
        driver = build()
        driver.out()
        state = driver.state()
        for message in WS_SENDS:
            with pytest.raises(ClientDisconnected) as raised:
                driver.send(message)
            assert isinstance(raised.value, OSError)
            assert (str(raised.value), raised.value.code) == (why, code)
        assert driver.out() == b""  # nothing more goes on the wire
        assert driver.state() is state

    def test_send_after_the_peer_closed_raises_with_its_code(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"before") + close_frame(4001, "bye-ü") + frame(0x1, b"after"))
        with pytest.raises(ClientDisconnected) as raised:
            driver.send({"type": "websocket.send", "text": "x"})
        assert isinstance(raised.value, OSError)
        assert str(raised.value) == "peer closed the connection with code 4001"
        assert raised.value.code == 4001
        assert driver.out() == server_close(4001, "bye-ü")


# ---------------------------------------------------------------- RFC 6455


H = list[tuple[bytes, bytes]]
GOOD: H = [
    (b"host", b"x"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]
V13: H = [(b"sec-websocket-version", b"13")]


def without(name: bytes) -> H:
    return [(n, v) for n, v in GOOD if n != name]


def replaced(name: bytes, value: bytes) -> H:
    return [(n, value if n == name else v) for n, v in GOOD]


class TestRFC6455Section4_2_1ReadingTheClientHandshake:
    """RFC 6455 §4.2.1: what the server checks in the opening handshake (426 per §4.4)."""

    def test_validate_request_accepts_and_returns_the_key(self) -> None:
        assert validate_request(b"GET", b"1.1", GOOD) == KEY
        assert validate_request(b"GET", b"1.1", replaced(b"connection", b"keep-alive, upgrade")) == KEY
        assert (
            validate_request(
                b"GET",
                b"1.1",
                [*without(b"connection"), (b"connection", b"keep-alive"), (b"connection", b"Upgrade")],
            )
            == KEY
        )

    @pytest.mark.parametrize(
        ("method", "version", "headers", "expected"),
        [
            (b"POST", b"1.1", GOOD, Rejection(400, "a WebSocket handshake must use GET, not POST", V13)),
            (b"GET", b"1.0", GOOD, Rejection(400, "a WebSocket handshake needs HTTP/1.1", V13)),
            (
                b"GET",
                b"1.1",
                without(b"host"),
                Rejection(400, "a WebSocket handshake needs exactly one Host header", V13),
            ),
            (
                b"GET",
                b"1.1",
                [*GOOD, (b"host", b"y")],
                Rejection(400, "a WebSocket handshake needs exactly one Host header", V13),
            ),
            (
                b"GET",
                b"1.1",
                replaced(b"connection", b"keep-alive"),
                Rejection(400, "the Connection header must contain the token 'upgrade'", V13),
            ),
            (
                b"GET",
                b"1.1",
                without(b"sec-websocket-key"),
                Rejection(400, "a WebSocket handshake needs exactly one Sec-WebSocket-Key", V13),
            ),
            (
                b"GET",
                b"1.1",
                replaced(b"sec-websocket-key", b"c2hvcnQ="),
                Rejection(400, "Sec-WebSocket-Key must be base64 of exactly 16 bytes", V13),
            ),
            (
                b"GET",
                b"1.1",
                replaced(b"sec-websocket-key", b"not base64 at all!"),
                Rejection(400, "Sec-WebSocket-Key must be base64 of exactly 16 bytes", V13),
            ),
            (
                b"GET",
                b"1.1",
                without(b"sec-websocket-version"),
                Rejection(400, "the Sec-WebSocket-Version header is missing", V13),
            ),
            (
                b"GET",
                b"1.1",
                replaced(b"sec-websocket-version", b"8"),
                Rejection(426, "unsupported WebSocket version; this server speaks 13", V13),
            ),
            (
                b"GET",
                b"1.1",
                [*GOOD, (b"sec-websocket-version", b"13")],
                Rejection(426, "unsupported WebSocket version; this server speaks 13", V13),
            ),
        ],
    )
    def test_validate_request_rejections(self, method: bytes, version: bytes, headers: H, expected: Rejection) -> None:
        assert validate_request(method, version, headers) == expected

    def test_asks_for_websocket(self) -> None:
        assert handshake.asks_for_websocket([(b"upgrade", b"WebSocket")])
        assert handshake.asks_for_websocket([(b"upgrade", b"h2c, websocket")])
        assert not handshake.asks_for_websocket([(b"upgrade", b"h2c")])
        assert not handshake.asks_for_websocket([(b"connection", b"upgrade")])


class TestRFC6455Section4_2_2ServerHandshake:
    """RFC 6455 §4.2.2: Sec-WebSocket-Accept is base64(SHA-1(key + GUID)); the example in §1.3."""

    def test_accept_key_rfc_vector(self) -> None:
        assert accept_key(KEY) == ACCEPT


class TestRFC6455Section5_5ControlFrames:
    """RFC 6455 §5.5: control frames carry at most 125 bytes, so a close reason at most 123
    (§5.5.1), cut without splitting a UTF-8 character."""

    @pytest.mark.parametrize(
        ("reason", "expected", "cut"),
        [
            ("", "", False),
            ("a" * 123, "a" * 123, False),
            ("a" * 124, "a" * 123, True),
            ("é" * 62, "é" * 61, True),
            ("a" * 121 + "€", "a" * 121, True),
            ("a" * 120 + "€", "a" * 120 + "€", False),
            ("a" * 119 + "😀" + "b", "a" * 119 + "😀", True),
        ],
    )
    def test_truncate_reason_cases(self, reason: str, expected: str, cut: bool) -> None:
        assert truncate_reason(reason) == (expected, cut)

    @given(st.text())
    def test_truncate_reason_is_the_longest_fitting_prefix(self, reason: str) -> None:
        reason = reason.encode("utf-8", "ignore").decode("utf-8")  # drop lone surrogates
        out, cut = truncate_reason(reason)
        assert reason.startswith(out)
        assert len(out.encode()) <= MAX_CLOSE_REASON_BYTES
        assert cut == (out != reason)
        if cut:
            assert len(reason[: len(out) + 1].encode()) > MAX_CLOSE_REASON_BYTES


class TestRFC6455Section5_5_2Ping:
    """RFC 6455 §5.5.2: a Ping is answered with a Pong carrying the same payload."""

    @pytest.mark.parametrize("payload", [b"", b"x", b"abc", b"\x00\xff" * 10, b"p" * 125])
    def test_ping_is_answered_with_its_payload(self, payload: bytes) -> None:
        driver = opened()
        fx = driver.feed(frame(0x9, payload))
        assert wrote(fx) == bytes([0x8A, len(payload)]) + payload
        assert fx.arm == {}
        assert fx.cancel == []
        assert driver.receive() is None  # nothing for the app


class TestRFC6455Section5_5_3Pong:
    """RFC 6455 §5.5.3: an unsolicited Pong is allowed and needs no answer; a Pong that
    answers our keepalive ping (www spec 2.5, "WebSocket") ends the ping timeout."""

    def test_unsolicited_pong_changes_nothing(self) -> None:
        driver = opened()
        assert driver.feed(frame(0xA, b"\x00\x00\x00\x01")) == Effects()
        assert driver.feed(frame(0xA, b"unasked")) == Effects()
        assert driver.armed == {Timer.PING: PING_S}
        driver.feed(frame(0x1, b"after"))
        assert driver.receive() == text("after")  # the connection goes on

    def test_keepalive_ping_then_matching_pong(self) -> None:
        driver = opened()
        fx = driver.fire(Timer.PING)
        assert wrote(fx) == b"\x89\x04\x00\x00\x00\x01"
        assert fx.arm == {Timer.PONG: PONG_S}
        assert driver.armed == {Timer.PONG: PONG_S}
        assert driver.feed(frame(0xA, b"\x00\x00\x00\x02")) == Effects()  # not ours: ignored
        fx = driver.feed(frame(0xA, b"\x00\x00\x00\x01"))
        assert wrote(fx) == b""
        assert fx.cancel == [Timer.PONG]
        assert fx.arm == {Timer.PING: PING_S}
        assert driver.armed == {Timer.PING: PING_S}
        fx = driver.fire(Timer.PING)
        assert wrote(fx) == b"\x89\x04\x00\x00\x00\x02"
        assert driver.feed(frame(0xA, b"\x00\x00\x00\x01")) == Effects()  # the old payload no longer counts


class TestRFC6455Section7_1_1CloseTheConnection:
    """RFC 6455 §7.1.1: once the closing handshake is under way, the server closes TCP
    itself if the peer does not finish it within the close timeout."""

    def test_app_close_then_close_timeout_is_1006(self) -> None:
        driver = opened()
        driver.send({"type": "websocket.close"})
        driver.out()
        fx = driver.fire(Timer.CLOSE)
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.ABORT
        assert fx.close_code == 1006
        assert wrote(fx) == b""
        assert driver.armed == {}
        assert driver.receive() == disconnect(1006)

    def test_close_timeout_after_shutdown_keeps_1001(self) -> None:
        driver = opened()
        driver.shutdown()
        fx = driver.fire(Timer.CLOSE)
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.ABORT
        assert fx.close_code is None  # decided at the shutdown
        assert driver.receive() == disconnect(1001, "server shutting down")

    def test_close_timeout_while_draining_closes_tcp(self) -> None:
        driver = opened()
        driver.feed(frame(0x3))
        assert driver.state() is State.DRAINING
        assert driver.armed == {Timer.CLOSE: CLOSE_S}
        fx = driver.fire(Timer.CLOSE)
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.ABORT
        assert driver.tcp_log == [Tcp.SEND_EOF, Tcp.ABORT]
        assert driver.receive() == disconnect(1002, "protocol error")

    def test_eof_while_draining_closes_tcp(self) -> None:
        driver = make_driver()
        driver.send({"type": "websocket.close"})
        fx = driver.lost("EOF")
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.ABORT
        assert driver.armed == {}
        assert driver.receive() == CONNECT
        assert driver.receive() == disconnect(1006)


class TestRFC6455Section7_1_5CloseCode:
    """RFC 6455 §7.1.5 (with §5.5.1, the echo): the peer's close frame decides the code;
    none in it is 1005; no close frame at all is 1006."""

    def test_peer_close_is_echoed_and_decides_the_disconnect(self) -> None:
        driver = opened()
        fx = driver.feed(frame(0x1, b"before") + close_frame(4001, "bye-ü") + frame(0x1, b"after"))
        assert driver.out() == server_close(4001, "bye-ü")
        assert fx.close_code == 4001
        assert driver.state() is State.CLOSED
        assert fx.tcp is Tcp.CLOSE
        assert driver.receive() == text("before")
        for _ in range(3):
            assert driver.receive() == disconnect(4001, "bye-ü")
        with pytest.raises(ClientDisconnected) as raised:
            driver.send({"type": "websocket.send", "text": "x"})
        assert str(raised.value) == "peer closed the connection with code 4001"
        assert raised.value.code == 4001
        assert driver.out() == b""

    def test_empty_peer_close_is_1005_and_the_echo_is_empty(self) -> None:
        driver = opened()
        fx = driver.feed(close_frame(None))
        assert wrote(fx) == b"\x88\x00"  # 1005 never goes on the wire
        assert fx.tcp is Tcp.CLOSE
        assert driver.receive() == disconnect(1005)
        assert driver.receive() == disconnect(1005)


class TestRFC6455Section7_4CloseCodes:
    """RFC 6455 §7.4: every code an app may send is valid from the peer too, with the codes
    registered with IANA (1012-1014, §7.4.2); the others fail the connection (FAILURES)."""

    @pytest.mark.parametrize(
        "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
    )
    def test_iana_close_codes_from_the_peer_are_accepted(self, code: int) -> None:
        driver = opened()
        fx = driver.feed(close_frame(code, "r"))
        assert wrote(fx) == server_close(code, "r")
        assert driver.receive() == disconnect(code, "r")

    def test_bad_utf8_reason_with_an_iana_code_is_1007(self) -> None:
        driver = opened()
        fx = driver.feed(frame(0x8, struct.pack("!H", 1014) + b"\xff"))
        assert wrote(fx) == server_close(1007, "invalid UTF-8 or payload data")


# Bad bytes from the peer (max size 10): the close code and reason sent and delivered.
FAILURES: dict[str, tuple[bytes, int, str]] = {
    # 1009: a message over the size limit, as one frame or fragmented
    "too big, one frame": (frame(0x2, b"x" * 11), 1009, "message exceeds 10 bytes"),
    "too big, fragments": (frame(0x2, b"x" * 6, fin=False) + frame(0x0, b"x" * 5), 1009, "message exceeds 10 bytes"),
    # 1007: invalid UTF-8
    "bad utf-8": (frame(0x1, b"ok\xff"), 1007, "invalid UTF-8 or payload data"),
    "bad utf-8 across fragments": (
        frame(0x1, b"\xc3", fin=False) + frame(0x0, b"("),
        1007,
        "invalid UTF-8 or payload data",
    ),
    "truncated utf-8 at the end": (frame(0x1, b"\xe2\x82"), 1007, "invalid UTF-8 or payload data"),
    "bad utf-8 in a close reason": (frame(0x8, b"\x03\xe8\xff"), 1007, "invalid UTF-8 or payload data"),
    # 1002: protocol violations (RFC 6455 §5)
    "unmasked frame": (frame(0x1, b"hi", mask=None), 1002, "protocol error"),
    "rsv2 set": (bytes([0xA1, 0x80]) + b"\x00\x00\x00\x00", 1002, "protocol error"),
    "rsv1 without deflate": (frame(0x1, b"hi", rsv1=True), 1002, "protocol error"),
    "unknown opcode 3": (frame(0x3, b""), 1002, "protocol error"),
    "unknown opcode 0xB": (frame(0xB, b""), 1002, "protocol error"),
    "continuation with no message": (frame(0x0, b"x"), 1002, "protocol error"),
    "new message inside a fragmented one": (frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002, "protocol error"),
    "ping over 125 bytes": (frame(0x9, b"p" * 126), 1002, "protocol error"),
    "fragmented ping": (frame(0x9, b"p", fin=False), 1002, "protocol error"),
    "close with 1 byte": (frame(0x8, b"\x03"), 1002, "protocol error"),
    "close code 1005": (close_frame(1005), 1002, "protocol error"),
    "close code 1006": (close_frame(1006), 1002, "protocol error"),
    "close code 999": (close_frame(999), 1002, "protocol error"),
    "close code 2000": (close_frame(2000), 1002, "protocol error"),
}


class TestRFC6455Section7_1_7FailTheConnection:
    """RFC 6455 §7.1.7: bad bytes from the peer fail the connection: a close frame with the
    code (1002 protocol error, 1007 bad payload, 1009 too big), then FIN, discarding the
    rest. Messages that fully arrived before the bad bytes are delivered first; the failure
    waits (FAILING, at most the hold timer) until the app asks for more."""

    @pytest.mark.parametrize(("data", "code", "reason"), list(FAILURES.values()), ids=list(FAILURES))
    def test_failures_send_the_code_and_drain(self, data: bytes, code: int, reason: str) -> None:
        driver = opened(max_size=10)
        fx = driver.feed(data)
        assert driver.out() == server_close(code, reason)
        assert fx.close_code == code
        assert driver.state() is State.DRAINING
        assert driver.tcp is Tcp.SEND_EOF
        assert driver.armed == {Timer.CLOSE: CLOSE_S}
        assert driver.receive() == disconnect(code, reason)
        assert driver.feed(frame(0x9, b"ignored")) == Effects()
        assert driver.out() == b""
        with pytest.raises(ClientDisconnected) as raised:
            driver.send({"type": "websocket.send", "bytes": b""})
        assert (str(raised.value), raised.value.code) == (f"connection failed with code {code} ({reason})", code)
        assert [n for n in driver.notes if n.kind == "warning"] == []  # the peer's fault: nothing to log

    @pytest.mark.parametrize(
        ("bad", "code", "reason"),
        [
            (frame(0x1, b"\xff"), 1007, "invalid UTF-8 or payload data"),
            (bytes([0xA1, 0x80, 1, 2, 3, 4]), 1002, "protocol error"),  # RSV2 (Autobahn 3.2)
            (frame(0x5, b""), 1002, "protocol error"),  # reserved non-control opcode (Autobahn 4.1.3)
            (frame(0x0, b"x", fin=False), 1002, "protocol error"),  # continuation with no message (Autobahn 5.15)
        ],
        ids=["bad-utf8", "rsv2", "opcode-5", "orphan-continuation"],
    )
    def test_bad_data_behind_an_unread_message_is_held_until_the_app_asks(
        self, bad: bytes, code: int, reason: str
    ) -> None:
        """Autobahn's strict cases: the app's answer to a message that arrived ahead of bad
        bytes goes out before the close frame."""
        driver = opened()
        fx = driver.feed(frame(0x1, b"a") + bad + frame(0x1, b"never"))
        assert wrote(fx) == b""
        assert driver.state() is State.FAILING
        assert fx.reading is False  # the parser has stopped: read nothing more
        assert driver.armed == {Timer.HOLD: CLOSE_S}
        assert driver.receive() == text("a")
        fx = driver.send({"type": "websocket.send", "text": "answer"})  # the app may still answer it
        assert wrote(fx) == b"\x81\x06answer"
        fx = driver.receive_fx()
        assert wrote(fx) == server_close(code, reason)
        assert fx.event == disconnect(code, reason)
        assert driver.state() is State.DRAINING
        assert fx.tcp is Tcp.SEND_EOF
        assert driver.armed == {Timer.CLOSE: CLOSE_S}

    def test_hold_timer_fails_the_connection_and_messages_still_come_first(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"a") + frame(0x1, b"b") + frame(0x3))
        assert driver.state() is State.FAILING
        fx = driver.fire(Timer.HOLD)
        assert wrote(fx) == server_close(1002, "protocol error")
        assert fx.tcp is Tcp.SEND_EOF
        assert fx.close_code == 1002
        assert driver.state() is State.DRAINING
        assert driver.armed == {Timer.CLOSE: CLOSE_S}
        assert driver.drain() == [text("a"), text("b"), disconnect(1002, "protocol error")]

    def test_peer_gone_while_failing_keeps_the_failure_code(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"a") + frame(0x3))
        fx = driver.lost("EOF")
        assert wrote(fx) == b""
        assert fx.tcp is Tcp.ABORT
        assert driver.state() is State.CLOSED
        assert driver.drain() == [text("a"), disconnect(1002, "protocol error")]

    def test_app_close_while_failing_sends_its_frame_then_drains(self) -> None:
        driver = opened()
        driver.feed(frame(0x1, b"a") + frame(0x3))
        fx = driver.send({"type": "websocket.close", "code": 4000})
        assert wrote(fx) == server_close(4000)
        assert driver.state() is State.DRAINING
        assert fx.tcp is Tcp.SEND_EOF

    def test_deflate_session_inflates_deflates_and_holds_a_too_big_message(self) -> None:
        params = negotiate_deflate([(b"sec-websocket-extensions", b"permessage-deflate; server_no_context_takeover")])
        assert params == DeflateParams(
            True, False, 12, b"permessage-deflate; server_no_context_takeover; server_max_window_bits=12"
        )
        driver = make_driver(
            [("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover")],
            deflate=True,
            max_size=100,
        )
        driver.receive()
        driver.send({"type": "websocket.accept"})
        assert (
            b"\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover; "
            b"server_max_window_bits=12\r\n" in driver.out()
        )
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = (c.compress(b"a" * 100) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        driver.feed(frame(0x1, payload, rsv1=True))
        assert driver.receive() == text("a" * 100)
        for _ in range(2):  # no context takeover: each message decodes on its own
            driver.send({"type": "websocket.send", "text": "b" * 50})
            out = driver.out()
            assert out[0] == 0xC1
            assert zlib.decompressobj(-15).decompress(out[2:] + b"\x00\x00\xff\xff") == b"b" * 50
        fx = driver.feed(frame(0x1, (c.compress(b"a" * 101) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv1=True))
        # Held: the app took "a" * 100 and has not asked for more, so it may still answer it.
        assert wrote(fx) == b""
        assert driver.state() is State.FAILING
        assert driver.armed == {Timer.HOLD: CLOSE_S}
        assert driver.receive() == disconnect(1009, "message exceeds 100 bytes")
        assert driver.out() == server_close(1009, "message exceeds 100 bytes")


class TestRFC7692PerMessageDeflate:
    """RFC 7692 §7.1: negotiating permessage-deflate; refserver answers with the first
    offer it can honour, or declines."""

    @pytest.mark.parametrize(
        ("values", "response"),
        [
            ((), None),
            (("permessage-deflate",), b"permessage-deflate; server_max_window_bits=12"),
            (("permessage-deflate; client_max_window_bits",), b"permessage-deflate; server_max_window_bits=12"),
            (("permessage-deflate; server_max_window_bits=9",), b"permessage-deflate; server_max_window_bits=9"),
            (("permessage-deflate; server_max_window_bits=8",), None),
            (
                ("permessage-deflate; server_max_window_bits=8, permessage-deflate",),
                b"permessage-deflate; server_max_window_bits=12",
            ),
            (
                ("x-foo", "permessage-deflate; client_no_context_takeover"),
                b"permessage-deflate; client_no_context_takeover; server_max_window_bits=12",
            ),
            (("permessage-deflate; bar",), None),
            (("permessage-deflate; client_no_context_takeover; client_no_context_takeover",), None),
            (("permessage-deflate; client_max_window_bits=16",), None),
            (("permessage-deflate; server_max_window_bits=1 2",), None),
            (("permessage-deflate; =1",), None),
            (("permessage-dé",), None),
            # Declined: unknown, repeated or out-of-range parameters, other extensions, and
            # headers that break the RFC 6455 §9.1 grammar (declined, not failed).
            (("permessage-deflate; foo=1",), None),
            (("permessage-deflate; server_no_context_takeover; server_no_context_takeover",), None),
            (("permessage-deflate; client_max_window_bits; client_max_window_bits",), None),
            (("permessage-deflate; server_max_window_bits=16",), None),
            (("permessage-deflate; server_max_window_bits=010",), None),
            (("permessage-deflate; server_max_window_bits",), None),
            (("permessage-deflate; client_max_window_bits=7",), None),
            (("permessage-deflate; server_no_context_takeover=1",), None),
            (("x-webkit-deflate-frame",), None),
            (("permessage-deflate; foo, x-webkit-deflate-frame",), None),
            (("permessage-deflate, x y",), None),
            (("permessage-deflate; =10",), None),
            (("permessage-deflate; server_max_window_bits=1 0",), None),
        ],
    )
    def test_negotiate_deflate(self, values: tuple[str, ...], response: bytes | None) -> None:
        params = negotiate_deflate([(b"sec-websocket-extensions", v.encode()) for v in values])
        assert (params.response if params else None) == response


# ---------------------------------------------------------------- timers as inputs


class TestWebSocketKeepaliveTimers:
    """www spec 2.5, "WebSocket": the server pings as necessary for liveness. PING writes a
    ping and arms PONG; the matching pong cancels PONG and re-arms PING; PONG firing fails
    the connection with 1011 (the disconnect is 1006, RFC 6455 §7.1.5: no close frame was
    received) and aborts TCP. A pong may sit unread while reading is paused for
    backpressure: then PONG firing pings again in the next interval instead."""

    def test_keepalive_timeout_sends_1011_and_decides_1006(self) -> None:
        driver = opened()
        driver.fire(Timer.PING)
        driver.out()
        fx = driver.fire(Timer.PONG)
        assert wrote(fx) == server_close(1011, "keepalive ping timeout")
        assert fx.tcp is Tcp.ABORT
        assert fx.close_code == 1006
        assert driver.state() is State.CLOSED
        assert driver.armed == {}
        assert driver.transitions[-1].section == WWW_WEBSOCKET
        assert driver.receive() == disconnect(1006)
        with pytest.raises(ClientDisconnected, match=r"keepalive ping timed out \(code 1006\)"):
            driver.send({"type": "websocket.send", "text": "x"})

    def test_pong_overdue_while_reading_is_paused_pings_again_next_interval(self) -> None:
        driver = opened()
        driver.fire(Timer.PING)
        driver.out()
        driver.feed(big_frame(0x2, b"x" * (READ_AHEAD_BYTES + 1)))
        assert driver.reading is False
        fx = driver.fire(Timer.PONG)
        assert fx == Effects(arm={Timer.PING: PING_S})
        assert driver.state() is State.OPEN
        assert driver.armed == {Timer.PING: PING_S}
        fx = driver.fire(Timer.PING)
        assert wrote(fx) == b"\x89\x04\x00\x00\x00\x02"
        assert fx.arm == {Timer.PONG: PONG_S}

    def test_pong_overdue_while_paused_and_a_write_is_blocked_fails(self) -> None:
        driver = opened()
        driver.fire(Timer.PING)
        driver.feed(big_frame(0x2, b"x" * (READ_AHEAD_BYTES + 1)))
        fx = driver.fire(Timer.PONG, write_blocked=True)
        assert fx.tcp is Tcp.ABORT
        assert driver.state() is State.CLOSED
        assert driver.drain() == [binary(b"x" * (READ_AHEAD_BYTES + 1)), disconnect(1006)]

    def test_no_ping_when_not_open(self) -> None:
        driver = make_driver()
        assert driver.fire_stray(Timer.PING) == Effects()
        driver = opened()
        driver.send({"type": "websocket.close"})
        driver.out()
        assert driver.fire_stray(Timer.PING) == Effects()
        assert driver.out() == b""

    def test_ping_timeout_zero_rearms_the_interval_only(self) -> None:
        driver = opened(timeouts=Timeouts(close_s=3.0, ping_interval_s=5.0, ping_timeout_s=0.0))
        assert driver.armed == {Timer.PING: 5.0}
        fx = driver.fire(Timer.PING)
        assert wrote(fx) == b"\x89\x04\x00\x00\x00\x01"
        assert fx.arm == {Timer.PING: 5.0}

    def test_ping_interval_zero_arms_no_keepalive(self) -> None:
        driver = opened(timeouts=Timeouts(close_s=3.0, ping_interval_s=0.0, ping_timeout_s=5.0))
        assert driver.armed == {}
        driver.send({"type": "websocket.close"})
        assert driver.armed == {Timer.CLOSE: 3.0}

    def test_app_close_cancels_the_keepalive_timers(self) -> None:
        driver = opened()
        driver.fire(Timer.PING)
        fx = driver.send({"type": "websocket.close"})
        assert set(fx.cancel) >= {Timer.PING, Timer.PONG}
        assert driver.armed == {Timer.CLOSE: CLOSE_S}

    def test_late_pong_after_the_app_close_arms_no_keepalive(self) -> None:
        driver = opened()
        driver.fire(Timer.PING)
        driver.send({"type": "websocket.close"})
        driver.check_timers = False
        fx = driver.feed(frame(0xA, b"\x00\x00\x00\x01"))
        assert Timer.PING not in fx.arm
        assert driver.armed == {Timer.CLOSE: CLOSE_S}


def reach(state: State) -> Driver:
    """A driver in ``state``, by the most ordinary route."""
    return ROUTES[state][0][1]()


def _denial_held() -> Driver:
    driver = make_driver()
    driver.send({"type": "websocket.http.response.start", "status": 401})
    return driver


def _denial_body() -> Driver:
    driver = _denial_held()
    driver.send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
    return driver


def _failing() -> Driver:
    driver = opened()
    driver.feed(frame(0x1, b"a") + frame(0x3))
    return driver


def _closing() -> Driver:
    driver = opened()
    driver.send({"type": "websocket.close"})
    return driver


def _closing_app_returned() -> Driver:
    driver = opened()
    driver.ended(raised=False)
    return driver


def _shutting_down() -> Driver:
    driver = opened()
    driver.shutdown()
    return driver


def _draining_403() -> Driver:
    driver = make_driver()
    driver.send({"type": "websocket.close"})
    return driver


def _draining_failure() -> Driver:
    driver = opened()
    driver.feed(frame(0x3))
    return driver


def _draining_denied() -> Driver:
    driver = _denial_held()
    driver.send({"type": "websocket.http.response.body", "body": b"no"})
    return driver


def _closed_lost() -> Driver:
    driver = opened()
    driver.lost()
    return driver


def _closed_peer() -> Driver:
    driver = opened()
    driver.feed(close_frame(1000))
    return driver


def _closed_timeout() -> Driver:
    driver = _closing()
    driver.fire(Timer.CLOSE)
    return driver


ROUTES: dict[State, list[tuple[str, Callable[[], Driver]]]] = {
    State.CONNECTING: [("fresh", make_driver)],
    State.DENIAL_START_HELD: [("denial start", _denial_held)],
    State.DENIAL_BODY: [("denial body", _denial_body)],
    State.OPEN: [("accepted", opened)],
    State.FAILING: [("bad data behind a message", _failing)],
    State.CLOSING: [("app close", _closing), ("app returned", _closing_app_returned)],
    State.SHUTTING_DOWN: [("shutdown", _shutting_down)],
    State.DRAINING: [("403", _draining_403), ("failure", _draining_failure), ("denial done", _draining_denied)],
    State.CLOSED: [("lost", _closed_lost), ("peer close", _closed_peer), ("close timeout", _closed_timeout)],
}
ALL_ROUTES = [pytest.param(state, build, id=f"{state.name}-{name}") for state, r in ROUTES.items() for name, build in r]
STRAY_TIMERS = [
    pytest.param(state, build, timer, id=f"{timer.name}-{state.name}-{name}")
    for timer in Timer
    for state, r in ROUTES.items()
    if state not in TIMER_STATES[timer]
    for name, build in r
]


class TestTimersAsInputs:
    """Every timer is an input of its own (RFC 6455 §7.1.1 for CLOSE, §7.1.7 for HOLD, www
    spec 2.5, "WebSocket" for PING and PONG). A timer that fires in a state where it does
    not run (it raced with its cancellation) changes nothing."""

    @pytest.mark.parametrize(("state", "build", "timer"), STRAY_TIMERS)
    def test_a_timer_fired_where_it_does_not_run_does_nothing(
        self, state: State, build: Callable[[], Driver], timer: Timer
    ) -> None:
        driver = build()
        assert driver.state() is state
        assert timer not in driver.armed
        assert driver.fire_stray(timer) == Effects()
        assert driver.state() is state

    @pytest.mark.parametrize(("state", "build"), ALL_ROUTES)
    def test_the_timers_armed_in_each_state(self, state: State, build: Callable[[], Driver]) -> None:
        expected = {
            State.CONNECTING: {},
            State.DENIAL_START_HELD: {},
            State.DENIAL_BODY: {},
            State.OPEN: {Timer.PING: PING_S},
            State.FAILING: {Timer.HOLD: CLOSE_S},
            State.CLOSING: {Timer.CLOSE: CLOSE_S},
            State.SHUTTING_DOWN: {Timer.CLOSE: CLOSE_S},
            State.DRAINING: {Timer.CLOSE: CLOSE_S},
            State.CLOSED: {},
        }
        assert build().armed == expected[state]

    def test_close_timer_in_closing(self) -> None:
        driver = _closing()
        driver.out()
        fx = driver.fire(Timer.CLOSE)
        assert wrote(fx) == b""
        assert fx.tcp is Tcp.ABORT
        assert fx.close_code == 1006
        assert fx.wake_app is True
        assert fx.reading is False
        assert [(t.old, t.new, t.section) for t in fx.transitions] == [("CLOSING", "CLOSED", "RFC 6455 §7.1.1")]

    def test_hold_timer_in_failing(self) -> None:
        driver = _failing()
        fx = driver.fire(Timer.HOLD)
        assert wrote(fx) == server_close(1002, "protocol error")
        assert fx.tcp is Tcp.SEND_EOF
        assert fx.arm == {Timer.CLOSE: CLOSE_S}
        assert Timer.HOLD in fx.cancel
        assert fx.reading is True  # draining: read and discard until EOF
        assert [(t.old, t.new, t.section) for t in fx.transitions] == [("FAILING", "DRAINING", "RFC 6455 §7.1.7")]

    def test_ping_timer_in_open(self) -> None:
        driver = opened()
        fx = driver.fire(Timer.PING)
        assert fx == Effects(write=[b"\x89\x04\x00\x00\x00\x01"], arm={Timer.PONG: PONG_S})

    def test_pong_timer_in_open(self) -> None:
        driver = opened()
        driver.fire(Timer.PING)
        fx = driver.fire(Timer.PONG)
        assert wrote(fx) == server_close(1011, "keepalive ping timeout")
        assert fx.tcp is Tcp.ABORT
        assert fx.close_code == 1006
        assert [(t.old, t.new, t.section) for t in fx.transitions] == [("OPEN", "CLOSED", WWW_WEBSOCKET)]


# ---------------------------------------------------------------- the state table

ACCEPTED, MISUSE, CLOSED_SEND = "accepted", "ASGIProtocolError", "ClientDisconnected"
VALID: dict[str, dict[str, Any]] = {
    "websocket.accept": {"type": "websocket.accept"},
    "websocket.send": {"type": "websocket.send", "text": "x"},
    "websocket.close": {"type": "websocket.close"},
    "websocket.http.response.start": {"type": "websocket.http.response.start", "status": 401},
    "websocket.http.response.body": {"type": "websocket.http.response.body", "body": b"", "more_body": True},
    "http.response.start": {"type": "http.response.start", "status": 200},
    "websocket.bogus": {"type": "websocket.bogus"},
}
# Written out from the spec, not from TABLE:
# - www spec 2.5, "Accept - send event" / "Close - send event": before the handshake is
#   answered, accept or close (a close refuses it); "Send - send event" needs an accepted
#   connection; asgi extensions, "Websocket Denial Response": start, then body parts only,
#   and only before accepting; accept is sent once.
# - A connection that failed on bad data (FAILING) is still open for the app until it is
#   told: send and close are accepted.
# - www spec 2.5, "Disconnected Client - send exception": once closing or closed, every
#   websocket message raises the OSError subclass.
# - asgi spec, "Error Handling": a message type the protocol does not define is an error in
#   every state.
_BEFORE = {
    "websocket.accept": ACCEPTED,
    "websocket.close": ACCEPTED,
    "websocket.http.response.start": ACCEPTED,
    "websocket.send": MISUSE,
    "websocket.http.response.body": MISUSE,
}
_DENYING = {
    "websocket.accept": MISUSE,
    "websocket.close": MISUSE,
    "websocket.http.response.start": MISUSE,
    "websocket.send": MISUSE,
    "websocket.http.response.body": ACCEPTED,
}
_ACCEPTED = {
    "websocket.accept": MISUSE,
    "websocket.close": ACCEPTED,
    "websocket.http.response.start": MISUSE,
    "websocket.send": ACCEPTED,
    "websocket.http.response.body": MISUSE,
}
_ENDED = dict.fromkeys(_BEFORE, CLOSED_SEND)
_FOREIGN = {"http.response.start": MISUSE, "websocket.bogus": MISUSE}
SPEC_OUTCOMES: dict[State, dict[str, str]] = {
    State.CONNECTING: {**_BEFORE, **_FOREIGN},
    State.DENIAL_START_HELD: {**_DENYING, **_FOREIGN},
    State.DENIAL_BODY: {**_DENYING, **_FOREIGN},
    State.OPEN: {**_ACCEPTED, **_FOREIGN},
    State.FAILING: {**_ACCEPTED, **_FOREIGN},
    State.CLOSING: {**_ENDED, **_FOREIGN},
    State.SHUTTING_DOWN: {**_ENDED, **_FOREIGN},
    State.DRAINING: {**_ENDED, **_FOREIGN},
    State.CLOSED: {**_ENDED, **_FOREIGN},
}


class TestStateTable:
    """Every app message in every state, against expectations written from the spec (see
    SPEC_OUTCOMES); and TABLE answers every (State, Input)."""

    def test_spec_outcomes_cover_every_state_and_message(self) -> None:
        assert set(SPEC_OUTCOMES) == set(State)
        for outcomes in SPEC_OUTCOMES.values():
            assert set(outcomes) == set(VALID)

    def test_table_has_a_row_for_every_state_and_input(self) -> None:
        pairs = {(s, i) for s in State for i in Input}
        assert set(TABLE) == pairs
        for (state, kind), row in TABLE.items():
            assert (row.state, row.input) == (state, kind)
            assert row.section

    @pytest.mark.parametrize(("state", "build"), ALL_ROUTES)
    @pytest.mark.parametrize("kind", list(VALID))
    def test_every_state_and_message_type(self, state: State, build: Callable[[], Driver], kind: str) -> None:
        driver = build()
        assert driver.state() is state
        driver.out()
        before = len(driver.transitions)
        expected = SPEC_OUTCOMES[state][kind]
        if expected == ACCEPTED:
            fx = driver.send(VALID[kind])
            assert fx.error is None
        elif expected == CLOSED_SEND:
            with pytest.raises(ClientDisconnected) as closed:
                driver.send(VALID[kind])
            assert isinstance(closed.value, OSError)
            assert closed.value.code == driver.machine.close_code
            assert driver.state() is state
            assert driver.out() == b""
        else:
            with pytest.raises(ASGIProtocolError) as raised:
                driver.send(VALID[kind])
            assert f"state: {state.name}" in str(raised.value)
            assert str(raised.value).startswith(f"{kind} ")
            assert driver.state() is state  # misuse leaves the state as it was
            assert driver.out() == b""
            assert len(driver.transitions) == before


# ---------------------------------------------------------------- properties

CLOSE_CODES = st.one_of(
    st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]),
    st.integers(3000, 4999),
)
REASONS = st.text(max_size=30).map(lambda s: s.encode("utf-8", "ignore").decode("utf-8"))


@st.composite
def peer_stream(draw: st.DrawFn) -> tuple[bytes, list[dict[str, Any]], bytes]:
    """A valid client byte stream, the events it must give the app and the bytes it must
    make the server write (pongs and the close echo), in order."""
    data = bytearray()
    events: list[dict[str, Any]] = []
    answers = bytearray()
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "binary", "fragmented-text", "fragmented-binary", "ping"]))
        if kind == "ping":
            payload = draw(st.binary(max_size=20))
            data += frame(0x9, payload)
            answers += server_frame(0xA, payload)
            continue
        is_text = kind.endswith("text")
        value: str | bytes = draw(REASONS) if is_text else draw(st.binary(max_size=40))
        raw = value.encode() if isinstance(value, str) else value
        events.append(text(value) if isinstance(value, str) else binary(raw))
        if not kind.startswith("fragmented"):
            data += frame(0x1 if is_text else 0x2, raw)
            continue
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), min_size=1, max_size=3)))
        parts = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        for i, part in enumerate(parts):
            data += frame((0x1 if is_text else 0x2) if i == 0 else 0x0, part, fin=i == len(parts) - 1)
            if draw(st.booleans()):  # a control frame between fragments (RFC 6455 §5.4)
                data += frame(0x9, b"f")
                answers += server_frame(0xA, b"f")
    if draw(st.booleans()):
        if draw(st.booleans()):
            data += close_frame(None)
            answers += b"\x88\x00"
            events.append(disconnect(1005))
        else:
            code, reason = draw(CLOSE_CODES), draw(REASONS)
            data += close_frame(code, reason)
            answers += server_close(code, reason)
            events.append(disconnect(code, reason))
        data += draw(st.binary(max_size=10))  # after the close: discarded
    return bytes(data), events, bytes(answers)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if data[a:b]]


class TestRFC6455Section5_2FramingAnySplit:
    """RFC 6455 §5.2 / §5.4: TCP may split frames anywhere; the app events and the bytes
    written depend only on the byte stream, not on how reads cut it (including bytes read
    with the handshake and bytes read before the accept)."""

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        stream=peer_stream(),
        with_handshake=st.integers(0, 1 << 16),
        before_accept=st.integers(0, 1 << 16),
        cuts=st.lists(st.integers(0, 1 << 16), max_size=8),
    )
    def test_any_split_gives_the_same_events_and_bytes(
        self,
        stream: tuple[bytes, list[dict[str, Any]], bytes],
        with_handshake: int,
        before_accept: int,
        cuts: list[int],
    ) -> None:
        data, events, answers = stream
        first = min(with_handshake % (len(data) + 1), len(data))
        rest = data[first:]
        early = min(before_accept % (len(rest) + 1), len(rest))
        driver = make_driver(trailing=data[:first])
        assert driver.receive() == CONNECT
        for chunk in _chunks(rest[:early], cuts):
            assert driver.feed(chunk).write == []
        driver.send({"type": "websocket.accept"})
        got: list[Mapping[str, Any]] = []
        for chunk in [*_chunks(rest[early:], [c - early for c in cuts]), b""]:
            if chunk:
                driver.feed(chunk)
            if not got or got[-1]["type"] != "websocket.disconnect":
                got += driver.drain()
        assert got == events
        assert driver.out() == HEAD_101 + answers
        closed = bool(events) and events[-1]["type"] == "websocket.disconnect"
        assert driver.state() is (State.CLOSED if closed else State.OPEN)


class TestRFC6455Section7_1_7ArbitraryBytes:
    """RFC 6455 §7.1.7 as a property: whatever the peer sends after the accept, the machine
    never raises; what it writes parses as server frames, any close frame last; and the
    peer going away then yields exactly one disconnect, repeated."""

    @settings(max_examples=100, deadline=None)
    @given(
        pieces=st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.builds(frame, st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]), st.binary(max_size=30)),
                st.builds(lambda p: frame(0x1, p, fin=False), st.binary(max_size=10)),
            ),
            max_size=8,
        ),
        cuts=st.lists(st.integers(0, 400), max_size=6),
    )
    def test_arbitrary_bytes_never_raise(self, pieces: list[bytes], cuts: list[int]) -> None:
        driver = opened(max_size=64)
        for chunk in _chunks(b"".join(pieces), cuts):
            driver.feed(chunk)
        assert driver.state() in {State.OPEN, State.FAILING, State.DRAINING, State.CLOSED}
        client = WireConnection(ConnectionType.CLIENT)
        client.receive_data(driver.out())
        seen = list(client.events())
        closes = [i for i, e in enumerate(seen) if isinstance(e, wse.CloseConnection)]
        assert closes in ([], [len(seen) - 1])
        fx = driver.lost("EOF")
        assert wrote(fx) == b""
        assert driver.state() is State.CLOSED
        assert driver.tcp in {Tcp.CLOSE, Tcp.ABORT}
        got = driver.drain()
        assert got[-1]["type"] == "websocket.disconnect"
        assert all(e["type"] == "websocket.receive" for e in got[:-1])
        assert driver.receive() == got[-1]
        assert driver.close_codes == [got[-1]["code"]]  # decided exactly once
