"""Loop-free tests of the HTTP/1.1 and lifespan machines: bytes and app messages in,
effects out, asserted exactly. Nothing here awaits."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refserver.errors import ASGIProtocolError
from refserver.protocol.effects import Tcp, Transition
from refserver.protocol.http import HEAD_TOO_LARGE, TABLE, HTTPEffects, HTTPMachine, Input, Settings, State
from refserver.protocol.lifespan import TABLE as LIFESPAN_TABLE
from refserver.protocol.lifespan import Cause, LifespanMachine
from refserver.protocol.lifespan import Input as LifespanInput
from refserver.protocol.lifespan import State as LifespanState
from refserver.protocol.websocket import State as WSState
from refserver.spec import sections

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
DISARMED = (Input.KEEP_ALIVE_TIMEOUT, math.inf)  # the timer, armed for never
START = {"type": "http.response.start", "status": 200}
HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def machine(**options: Any) -> HTTPMachine:
    return HTTPMachine(Settings(**options), date=lambda: DATE)


def wire(fx: HTTPEffects) -> bytes:
    return b"".join(fx.write)


def refusal(status: bytes, text: bytes) -> bytes:
    body = text + b"\n"
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\ndate: "
        + DATE
        + b"\r\n\r\n"
        + body
    )


def respond(m: HTTPMachine, body: bytes = b"ok") -> bytes:
    out = wire(m.app_send(START))
    return out + wire(m.app_send({"type": "http.response.body", "body": body}))


OK_RESPONSE = b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\ncontent-length: 2\r\n\r\nok"


class TestTheTable:
    """Every row names its spec section; a pair without a row is an error naming the state,
    the input and the input's section."""

    def test_every_row_has_a_section(self) -> None:
        assert all(row.section for row in TABLE.values())
        assert all(row.section for row in LIFESPAN_TABLE.values())

    def test_the_lifespan_table_is_complete(self) -> None:
        assert {(s, i) for s in LifespanState for i in LifespanInput} == set(LIFESPAN_TABLE)

    def test_a_missing_row_names_state_input_and_section(self) -> None:
        m = machine()
        m.receive_data(HANDSHAKE + b"\r\n")
        assert m.state is State.UPGRADED
        assert (State.UPGRADED, Input.BYTES) not in TABLE
        with pytest.raises(RuntimeError) as info:
            m.receive_data(b"more")
        assert str(info.value) == "the HTTP machine has no row for BYTES in UPGRADED (RFC 9112 §2.2)"


class TestRequestReceiveEvent:
    """www spec 2.5, "Request - receive event": the body in order, one chunk at a time."""

    def test_head_and_body_in_one_read(self) -> None:
        m = machine()
        fx = m.receive_data(b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert fx.request is not None
        assert (fx.request.method, fx.request.target, fx.request.http_version) == ("POST", b"/p?q=1", "1.1")
        assert fx.request.headers == [(b"host", b"x"), (b"content-length", b"3")]
        assert (fx.timer, fx.wake_app, fx.write) == (DISARMED, True, [])
        assert fx.transitions == [
            Transition("IDLE", "AWAITING_START", sections.HTTP_RESPONSE_START, "request head received; the app runs")
        ]
        assert m.app_receive().event == {"type": "http.request", "body": b"abc", "more_body": False}

    def test_chunked_body_across_reads_with_backpressure(self) -> None:
        m = machine()
        m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
        fx = m.app_receive()
        assert (fx.event, fx.reading) == ({"type": "http.request", "body": b"ab", "more_body": True}, True)
        fx = m.receive_data(b"c\r\n2\r\nde\r\n")
        assert (fx.wake_app, fx.reading) == (True, False)  # a chunk waits for the app: stop reading
        fx = m.app_receive()
        assert (fx.event, fx.reading) == ({"type": "http.request", "body": b"cde", "more_body": True}, True)
        assert m.app_receive().event is None
        m.receive_data(b"0\r\n\r\n")
        assert m.app_receive().event == {"type": "http.request", "body": b"", "more_body": False}

    def test_malformed_chunk_is_answered_400_and_ends_the_request_as_a_disconnect(self) -> None:
        m = machine()
        fx = m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n")
        reason = b"malformed request body: illegal chunk header: bytearray(b'ZZ\\r\\n')"
        assert wire(fx) == refusal(b"400 Bad Request", reason)
        assert m.state is State.CLIENT_GONE
        assert m.client_gone_reason == reason.decode()
        assert m.app_receive().event == {"type": "http.disconnect"}
        fx = m.app_ended(raised=False)
        assert (wire(fx), fx.tcp, fx.ended_status, m.state) == (b"", Tcp.CLOSE, 400, State.CLOSED)

    def test_a_malformed_chunk_behind_a_waiting_chunk_ends_the_request_when_the_app_takes_it(self) -> None:
        m = machine()
        m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        fx = m.receive_data(b"ZZ\r\n")  # (reading was paused: the runtime need not deliver these)
        assert (m.state, fx.write) == (State.AWAITING_START, [])
        fx = m.app_receive()
        assert fx.event == {"type": "http.request", "body": b"abc", "more_body": True}
        assert wire(fx).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert [(t.old, t.new) for t in fx.transitions] == [("AWAITING_START", "CLIENT_GONE")]
        assert m.app_receive().event == {"type": "http.disconnect"}

    def test_malformed_chunk_after_the_response_started_is_a_disconnect_only(self) -> None:
        m = machine()
        m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        m.app_send(START)
        m.app_send({"type": "http.response.body", "body": b"a", "more_body": True})
        fx = m.receive_data(b"ZZ\r\n")
        assert wire(fx) == b""
        assert m.state is State.CLIENT_GONE


class TestDisconnectReceiveEvent:
    """www spec 2.5, "Disconnect - receive event": after the response, or once the client
    left, every receive() returns a new http.disconnect dict."""

    def test_every_disconnect_is_a_fresh_dict(self) -> None:
        m = machine()
        m.receive_data(GET)
        respond(m)
        first, second = m.app_receive().event, m.app_receive().event
        assert first == second == {"type": "http.disconnect"}
        assert first is not second


class TestResponseStartSendEvent:
    """www spec 2.5, "Response Start - send event": a head that was sent before is built once
    and kept, and a kept head changes neither what is written nor what is refused."""

    def answer(self, m: HTTPMachine, headers: Any) -> bytes:
        m.receive_data(GET)
        m.app_receive()
        out = wire(m.app_send({"type": "http.response.start", "status": 200, "headers": headers}))
        out += wire(m.app_send({"type": "http.response.body", "body": b"ok"}))
        m.app_ended(raised=False)
        return out

    def test_the_same_head_twice_writes_the_same_bytes(self) -> None:
        m = machine()
        expected = b"HTTP/1.1 200 OK\r\nx-kept: 1\r\ndate: " + DATE + b"\r\ncontent-length: 2\r\n\r\nok"
        # The second and third heads are equal by value (tuples, then lists) to the first.
        answers = [
            self.answer(m, headers) for headers in ([(b"x-kept", b"1")], [(b"x-kept", b"1")], [[b"x-kept", b"1"]])
        ]
        assert answers == [expected] * 3

    def test_a_bad_value_is_refused_after_a_good_one_was_kept(self) -> None:
        m = machine()
        self.answer(m, [(b"x-kept", b"1")])
        m.receive_data(GET)
        with pytest.raises(ASGIProtocolError, match="has headers that cannot be sent"):
            m.app_send({"type": "http.response.start", "status": 200, "headers": [(b"x-kept", b"1\r\nx: 2")]})
        assert m.state is State.AWAITING_START


class TestResponseBodySendEvent:
    """www spec 2.5, "Response Body - send event": messages after completion are ignored."""

    def test_late_messages_are_ignored_with_a_note(self) -> None:
        m = machine()
        m.receive_data(GET)
        assert respond(m) == OK_RESPONSE
        fx = m.app_send({"type": "http.response.body", "body": b"late"})
        assert (fx.write, [(n.kind, n.section) for n in fx.notes]) == ([], [("ignored", sections.HTTP_RESPONSE_BODY)])

    def test_a_body_contradicting_the_apps_content_length_writes_nothing(self) -> None:
        m = machine()
        m.receive_data(GET)
        m.app_send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
        fx = m.app_send({"type": "http.response.body", "body": b"hello"})
        assert fx.write == [] and m.state is State.SENDING_BODY
        assert isinstance(fx.error, ASGIProtocolError)
        assert str(fx.error) == (
            "http.response.body cannot be sent: Too much data for declared Content-Length "
            f"(state: SENDING_BODY; {sections.HTTP_RESPONSE_BODY})"
        )


class TestPersistence:
    """RFC 9112 §9.3: keep-alive, pipelining, and the keep-alive timer."""

    def test_pipelined_requests_are_served_in_order(self) -> None:
        m = machine(keep_alive_s=7.0)
        assert m.opened().timer == (Input.KEEP_ALIVE_TIMEOUT, 7.0)
        fx = m.receive_data(GET + b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        assert fx.request is not None and fx.request.target == b"/"
        assert respond(m) == OK_RESPONSE
        fx = m.app_ended(raised=False)
        assert fx.ended_status == 200
        assert fx.request is not None and fx.request.target == b"/second"
        assert [t.new for t in fx.transitions] == ["IDLE", "AWAITING_START"]
        assert fx.timer == DISARMED

    def test_idle_after_a_response_arms_the_timer_and_it_closes_quietly(self) -> None:
        m = machine(keep_alive_s=7.0)
        m.receive_data(GET)
        respond(m)
        fx = m.app_ended(raised=False)
        assert (m.state, fx.timer, fx.request) == (State.IDLE, (Input.KEEP_ALIVE_TIMEOUT, 7.0), None)
        fx = m.keep_alive_timeout()
        assert (fx.write, fx.tcp, m.state) == ([], Tcp.CLOSE, State.CLOSED)
        assert [t.section for t in fx.transitions] == ["RFC 9112 §9.3"]

    def test_head_timeout_closes_quietly(self) -> None:
        m = machine()
        fx = m.receive_data(b"GET / HT")
        assert [t.new for t in fx.transitions] == ["READING_HEAD"]
        fx = m.keep_alive_timeout()
        assert (fx.write, fx.tcp, [t.old for t in fx.transitions]) == ([], Tcp.CLOSE, ["READING_HEAD"])

    def test_pipelined_bytes_beyond_the_limit_pause_reading(self) -> None:
        m = machine(max_head_bytes=100)
        m.receive_data(GET)
        fx = m.receive_data(b"G" * 101)
        assert fx.reading is False and m.state is State.AWAITING_START

    def test_the_peer_leaving_between_requests_is_a_quiet_close(self) -> None:
        m = machine()
        fx = m.peer_gone()
        assert (fx.write, fx.tcp, m.state) == ([], Tcp.CLOSE, State.CLOSED)


class TestBadRequests:
    """RFC 9112 §2.2 / RFC 9110 §15.5.1: a bad head is answered by the server and closes
    the connection; the app never sees it."""

    @pytest.mark.parametrize(
        ("data", "status", "text"),
        [
            (b"GARBAGE\r\n\r\n", b"400 Bad Request", b"illegal request line: bytearray(b'GARBAGE')"),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"505 HTTP Version Not Supported", b"HTTP/2.0 is not supported"),
            (
                HANDSHAKE + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"400 Bad Request",
                b"illegal chunk header: bytearray(b'zz\\r\\n')",
            ),
        ],
        ids=["request line", "version", "upgrade body"],
    )
    def test_refused(self, data: bytes, status: bytes, text: bytes) -> None:
        m = machine()
        fx = m.receive_data(data)
        assert (wire(fx), fx.tcp, fx.request, fx.upgrade) == (refusal(status, text), Tcp.CLOSE, None, None)
        assert fx.refused is not None and (fx.refused.status, fx.refused.reason) == (int(status[:3]), text.decode())

    def test_a_whole_head_over_the_limit_is_431(self) -> None:
        m = machine(max_head_bytes=40)
        fx = m.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 40 + b"\r\n\r\n")
        assert wire(fx) == refusal(b"431 Request Header Fields Too Large", HEAD_TOO_LARGE.encode())

    def test_eof_in_the_middle_of_a_head_is_400(self) -> None:
        m = machine()
        m.receive_data(b"GET / HTTP/1.1\r\n")
        fx = m.peer_gone()
        assert wire(fx) == refusal(b"400 Bad Request", b"peer unexpectedly closed connection")


class TestUpgrade:
    """RFC 6455 §4.2: a valid handshake hands the h11 connection, with the bytes behind the
    handshake, to a WebSocket machine."""

    def test_hand_off_keeps_the_trailing_bytes(self) -> None:
        m = machine()
        fx = m.receive_data(HANDSHAKE + b"Sec-WebSocket-Protocol: chat\r\n\r\n\x81\x80")
        assert fx.upgrade is not None and fx.request is None
        assert (fx.upgrade.target, fx.upgrade.http_version, m.state) == (b"/chat", "1.1", State.UPGRADED)
        assert (fx.reading, fx.tcp, fx.write) == (False, None, [])
        ws = fx.upgrade.machine
        assert (ws.state, ws.offered_subprotocols) == (WSState.CONNECTING, ["chat"])
        assert ws.handshake is not None and ws.handshake.trailing_data == (b"\x81\x80", False)

    def test_a_bad_handshake_is_refused(self) -> None:
        m = machine()
        fx = m.receive_data(HANDSHAKE.replace(b"Version: 13", b"Version: 8") + b"\r\n")
        assert wire(fx).startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
        assert fx.refused is not None and fx.refused.what == "WebSocket handshake"
        assert (fx.tcp, m.state) == (Tcp.CLOSE, State.CLOSED)

    def test_an_upgrade_body_that_never_arrives_is_closed_by_the_head_timeout(self) -> None:
        m = machine()
        fx = m.receive_data(HANDSHAKE + b"Content-Length: 10\r\n\r\nabc")
        assert (m.state, fx.upgrade, fx.timer) == (State.UPGRADING, None, None)  # the timer runs on
        fx = m.keep_alive_timeout()
        assert (wire(fx), fx.tcp, fx.upgrade, m.state) == (b"", Tcp.CLOSE, None, State.CLOSED)

    def test_the_timer_stops_once_the_upgrade_body_is_complete(self) -> None:
        m = machine()
        m.receive_data(HANDSHAKE + b"Content-Length: 3\r\n\r\nab")
        fx = m.receive_data(b"c")
        assert fx.upgrade is not None and m.state is State.UPGRADED
        assert fx.timer == DISARMED


class TestServerShutdown:
    def test_idle_closes_at_once(self) -> None:
        fx = machine().server_shutdown()
        assert (fx.write, fx.tcp, fx.timer) == ([], Tcp.CLOSE, DISARMED)

    def test_a_request_in_flight_finishes_then_closes(self) -> None:
        m = machine()
        m.receive_data(GET + GET)
        assert m.server_shutdown().tcp is None
        respond(m)
        fx = m.app_ended(raised=False)
        assert (fx.request, fx.tcp, m.state) == (None, Tcp.CLOSE, State.CLOSED)


# ---------------------------------------------------------------- any split of the bytes


def serve(chunks: list[bytes]) -> tuple[list[tuple[str, bytes, bytes]], bytes, State]:
    """Feed ``chunks`` then EOF to a machine serving an echo app; return the requests the
    app saw (method, target, whole body), the bytes written and the final state."""
    m = machine(max_head_bytes=1 << 16)
    seen: list[tuple[str, bytes, bytes]] = []
    out = bytearray()
    current: list[Any] = []  # [head, body so far] of the request in flight

    def run(fx: HTTPEffects) -> None:
        out.extend(wire(fx))
        if fx.request is not None:
            current[:] = [fx.request, bytearray()]
        while current:
            r = m.app_receive()
            out.extend(wire(r))
            event = r.event
            if event is None:
                return
            head, body = current
            if event["type"] == "http.disconnect":
                ended = m.app_ended(raised=False)
                current.clear()
                run(ended)
                return
            body += event["body"]
            if event["more_body"]:
                continue
            seen.append((head.method, head.target, bytes(body)))
            out.extend(respond(m, f"{head.method} ".encode() + head.target + b" " + bytes(body)))
            current.clear()
            run(m.app_ended(raised=False))

    run(m.opened())
    for chunk in chunks:
        if m.state in (State.CLOSED, State.UPGRADED):
            break
        if chunk:
            run(m.receive_data(chunk))
    if m.state not in (State.CLOSED, State.UPGRADED):
        run(m.peer_gone())
    return seen, bytes(out), m.state


def encode_request(method: str, target: str, body: bytes, chunked: bool, cuts: list[int]) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\n"
    if not chunked:
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    data = bytearray((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
    start = 0
    for cut in [*sorted(c % (len(body) + 1) for c in cuts), len(body)]:
        if cut > start:
            data += f"{cut - start:x}\r\n".encode() + body[start:cut] + b"\r\n"
            start = cut
    return bytes(data + b"0\r\n\r\n")


requests = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST", "PUT"]),
        st.sampled_from(["/", "/a", "/b?x=1"]),
        st.binary(max_size=40),
        st.booleans(),
        st.lists(st.integers(0, 40), max_size=3),
    ),
    min_size=1,
    max_size=4,
)


def split(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


class TestAnySplitOfTheBytes:
    """RFC 9112 §2.2: HTTP/1.1 is a byte stream; how TCP splits it changes nothing."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requests, st.lists(st.integers(min_value=0), max_size=12))
    def test_same_requests_and_same_response_bytes(self, reqs: list[Any], points: list[int]) -> None:
        data = b"".join(encode_request(*r) for r in reqs)
        whole = serve([data])
        assert whole[0] == [(method, target.encode(), body) for method, target, body, _, _ in reqs]
        assert whole[2] is State.CLOSED
        assert serve(split(data, points)) == whole
        assert serve([data[i : i + 1] for i in range(len(data))]) == whole

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=6), st.booleans())
    def test_arbitrary_bytes_end_in_a_4xx_or_a_quiet_close(self, junk: bytes, points: list[int], after: bool) -> None:
        data = GET + junk if after else junk
        seen, out, state = serve(split(data, points))
        assert state in (State.CLOSED, State.UPGRADED)
        responses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
        served = [b"200"] * len(seen)
        assert responses[: len(served)] == served
        # Beyond what was served: nothing (a quiet close), or one refusal from the server.
        assert responses[len(served) :] in ([], [b"400"], [b"431"], [b"501"], [b"505"])


# ---------------------------------------------------------------- lifespan


class TestLifespanStartupSendEvent:
    """lifespan spec 2.0, "Startup - receive event", "Startup Complete - send event" and "Scope"."""

    def test_receive_gives_startup_once_then_waits(self) -> None:
        m = LifespanMachine()
        first = m.app_receive()
        assert first.event == {"type": "lifespan.startup"}
        assert m.app_receive().event is None
        fx = m.app_send({"type": "lifespan.startup.complete"})
        assert (fx.wake_app, [t.new for t in fx.transitions]) == (True, ["STARTED"])

    @pytest.mark.parametrize(("raised", "cause"), [(True, Cause.RAISED), (False, Cause.RETURNED)])
    def test_an_app_ending_before_startup_completes(self, raised: bool, cause: Cause) -> None:
        m = LifespanMachine()
        fx = m.app_ended(raised=raised)
        assert (m.state, m.cause, m.cause_state) == (LifespanState.UNSUPPORTED, cause, LifespanState.STARTING)
        assert [t.section for t in fx.transitions] == ['lifespan spec 2.0, "Scope"']


class TestLifespanShutdownSendEvent:
    """lifespan spec 2.0, "Shutdown - receive event" and "Shutdown Complete - send event"."""

    def test_shutdown_event_after_the_request_and_every_event_fresh(self) -> None:
        m = LifespanMachine()
        m.app_receive()
        m.app_send({"type": "lifespan.startup.complete"})
        fx = m.begin_shutdown()
        assert (fx.wake_app, m.state) == (True, LifespanState.SHUTTING_DOWN)
        first, second = m.app_receive().event, m.app_receive().event
        assert first == second == {"type": "lifespan.shutdown"}
        assert first is not second

    def test_timeout(self) -> None:
        m = LifespanMachine()
        m.app_send({"type": "lifespan.startup.complete"})
        m.begin_shutdown()
        m.timed_out()
        assert (m.state, m.cause) == (LifespanState.SHUTDOWN_FAILED, Cause.TIMEOUT)
        m.app_ended(raised=False)  # cancelled afterwards: nothing changes
        assert m.state is LifespanState.SHUTDOWN_FAILED

    def test_raising_while_serving_fails_the_shutdown(self) -> None:
        m = LifespanMachine()
        m.app_send({"type": "lifespan.startup.complete"})
        m.app_ended(raised=True)
        assert (m.state, m.cause, m.cause_state) == (
            LifespanState.SHUTDOWN_FAILED,
            Cause.RAISED,
            LifespanState.STARTED,
        )
        assert m.begin_shutdown().transitions == []


class TestBytesAfterALastRequest:
    """RFC 9112 §9.6: after a request that ends the connection (HTTP/1.0 without keep-alive, or
    Connection: close), stray bytes in the same read must not cost the response."""

    @pytest.mark.parametrize(
        "request_bytes",
        [
            b"GET / HTTP/1.0\r\nHost: x\r\n\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ],
        ids=["http10-then-crlf", "connection-close-then-pipelined"],
    )
    def test_the_response_is_sent_then_the_connection_closes(self, request_bytes: bytes) -> None:
        m = machine()
        fx = m.receive_data(request_bytes)
        assert fx.request is not None and fx.tcp is None
        out = respond(m)
        assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nok")
        fx = m.app_ended(raised=False)
        assert (fx.tcp, m.state) == (Tcp.CLOSE, State.CLOSED)
