"""Loop-free tests of the sans-IO WebSocket layer: WebSocketSession, handshake.validate_request,
negotiate_deflate and truncate_reason. Bytes in, exact bytes and events out."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refserver import ASGIProtocolError, ClientDisconnected
from refserver.protocol import handshake
from refserver.protocol.handshake import DeflateParams, Rejection, accept_key, negotiate_deflate, validate_request
from refserver.protocol.websocket import (
    _TABLE,
    MAX_CLOSE_REASON_BYTES,
    Plan,
    WebSocketSession,
    WSState,
    truncate_reason,
)
from refserver.spec.scopes import parse_subprotocols
from tests.support import close_frame, frame, handshake_request

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
HEAD_101 = (
    b"HTTP/1.1 101 \r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: " + ACCEPT + b"\r\n\r\n"
)
CONNECT = {"type": "websocket.connect"}


def session_state(session: WebSocketSession) -> WSState:
    """The state now. Read through a call, because mypy keeps an earlier assert's narrowing
    of ``session.state`` across the ``app_send()`` that changes it."""
    return session.state


def make_session(
    extra: list[tuple[str, str]] | None = None, *, trailing: bytes = b"", deflate: bool = False, max_size: int = 1 << 20
) -> WebSocketSession:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(handshake_request("/", extra=extra or []) + trailing)
    request = conn.next_event()
    assert isinstance(request, h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    headers = list(request.headers)
    key = validate_request(request.method, request.http_version, headers)
    assert isinstance(key, bytes)
    return WebSocketSession(
        conn,
        key=key,
        subprotocols=parse_subprotocols(headers),
        deflate=negotiate_deflate(headers) if deflate else None,
        max_size_bytes=max_size,
    )


def opened(**kwargs: Any) -> WebSocketSession:
    session = make_session(**kwargs)
    assert session.next_app_event() == CONNECT
    session.app_send({"type": "websocket.accept"})
    session.data_to_send()
    return session


def disconnect(code: int, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


def server_close(code: int, reason: str = "") -> bytes:
    payload = struct.pack("!H", code) + reason.encode()
    return bytes([0x88, len(payload)]) + payload


# ---------------------------------------------------------------- handshake and accept


def test_connect_is_first_then_nothing_until_something_happens() -> None:
    session = make_session()
    assert session.state is WSState.CONNECTING
    assert session.plan is Plan.READ
    assert session.next_app_event() == CONNECT
    assert session.next_app_event() is None
    assert session.data_to_send() == b""


def test_accept_writes_the_exact_101() -> None:
    session = make_session()
    session.app_send({"type": "websocket.accept"})
    assert session.data_to_send() == HEAD_101
    assert session.state is WSState.OPEN
    assert session.plan is Plan.READ
    assert session.data_to_send() == b""


def test_accept_with_subprotocol_and_headers_keeps_order_and_duplicates() -> None:
    session = make_session([("Sec-WebSocket-Protocol", "a, b"), ("Sec-WebSocket-Protocol", "c")])
    assert session.offered_subprotocols == ["a", "b", "c"]
    session.app_send(
        {
            "type": "websocket.accept",
            "subprotocol": "c",
            "headers": [(b"set-cookie", b"1"), (b"x", b"y"), (b"set-cookie", b"2")],
        }
    )
    assert session.data_to_send() == (
        HEAD_101[:-2] + b"sec-websocket-protocol: c\r\nset-cookie: 1\r\nx: y\r\nset-cookie: 2\r\n\r\n"
    )


def test_accept_key_rfc_vector() -> None:
    assert accept_key(KEY) == ACCEPT


def test_bytes_behind_the_handshake_are_fed_at_accept() -> None:
    session = make_session(trailing=frame(0x1, b"early") + frame(0x1, b"par", fin=False))
    session.receive_data(frame(0x0, b"tial"))  # arrives before the accept: held by h11
    assert session.buffered_before_accept() == len(frame(0x1, b"early")) + len(frame(0x1, b"par", fin=False)) + len(
        frame(0x0, b"tial")
    )
    assert session.inbox == type(session.inbox)()
    session.next_app_event()
    session.app_send({"type": "websocket.accept"})
    assert session.data_to_send() == HEAD_101
    assert session.next_app_event() == {"type": "websocket.receive", "text": "early"}
    assert session.next_app_event() == {"type": "websocket.receive", "text": "partial"}
    assert session.buffered_before_accept() == 0


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "websocket.accept", "subprotocol": "nope"}, "chose subprotocol 'nope'"),
        (
            {"type": "websocket.accept", "headers": [(b"sec-websocket-accept", b"x")]},
            "sets header 'sec-websocket-accept'",
        ),
        ({"type": "websocket.accept", "headers": [(b"connection", b"close")]}, "sets header 'connection'"),
        ({"type": "websocket.accept", "headers": [(b"upgrade", b"h2c")]}, "sets header 'upgrade'"),
    ],
)
def test_unacceptable_accept_answers_500_and_raises(message: dict[str, Any], text: str) -> None:
    session = make_session([("Sec-WebSocket-Protocol", "chat")])
    session.next_app_event()
    with pytest.raises(ASGIProtocolError, match=text):
        session.app_send(message)
    assert session.data_to_send() == (
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 21\r\nconnection: close\r\n\r\nInternal Server Error"
    )
    assert session.state is WSState.CLOSED
    assert session.plan is Plan.DRAIN
    assert session.next_app_event() == disconnect(1006)
    with pytest.raises(ClientDisconnected, match="answered with HTTP 500"):
        session.app_send({"type": "websocket.accept"})


def test_close_before_accept_is_403() -> None:
    session = make_session()
    session.app_send({"type": "websocket.close", "code": 4000, "reason": "not sent anywhere"})
    assert session.data_to_send() == b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.DRAIN)
    assert session.next_app_event() == CONNECT  # never read: still first
    assert session.next_app_event() == disconnect(1006)
    assert session.next_app_event() == disconnect(1006)
    session.receive_data(frame(0x1, b"ignored"))
    assert session.data_to_send() == b""


def test_denial_start_is_held_until_the_first_body() -> None:
    session = make_session()
    session.app_send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"x", b"1")]})
    assert session.data_to_send() == b""
    assert session.state is WSState.DENIAL_START_HELD
    session.app_send({"type": "websocket.http.response.body", "body": b"ab", "more_body": True})
    assert session.data_to_send() == (
        b"HTTP/1.1 401 Unauthorized\r\nx: 1\r\nconnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
    )
    assert session_state(session) is WSState.DENIAL_BODY
    session.app_send({"type": "websocket.http.response.body", "body": b"", "more_body": True})
    assert session.data_to_send() == b""  # an empty part writes nothing (no premature 0-chunk)
    session.app_send({"type": "websocket.http.response.body", "body": b"c"})
    assert session.data_to_send() == b"1\r\nc\r\n0\r\n\r\n"
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.DRAIN)
    assert session.next_app_event() == CONNECT
    assert session.next_app_event() == disconnect(1006)


def test_denial_in_one_body_uses_content_length() -> None:
    session = make_session()
    session.app_send({"type": "websocket.http.response.start", "status": 404})
    session.app_send({"type": "websocket.http.response.body", "body": b"nope"})
    assert session.data_to_send() == (b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope")


# ---------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        ({"type": "websocket.send", "text": "hi"}, b"\x81\x02hi"),
        ({"type": "websocket.send", "text": ""}, b"\x81\x00"),
        ({"type": "websocket.send", "bytes": b""}, b"\x82\x00"),
        ({"type": "websocket.send", "bytes": b"\x00"}, b"\x82\x01\x00"),
        ({"type": "websocket.send", "text": "é"}, b"\x81\x02\xc3\xa9"),
        ({"type": "websocket.send", "bytes": b"x" * 126}, b"\x82\x7e\x00\x7e" + b"x" * 126),
        ({"type": "websocket.send", "bytes": b"x" * 65536}, b"\x82\x7f" + struct.pack("!Q", 65536) + b"x" * 65536),
    ],
)
def test_send_exact_frames(message: dict[str, Any], wire: bytes) -> None:
    session = opened()
    session.app_send(message)
    assert session.data_to_send() == wire


def test_received_messages_queue_and_mark_backlog() -> None:
    session = opened()
    session.receive_data(frame(0x1, b"one") + frame(0x2, b"two"))
    assert session.backlogged
    assert session.next_app_event() == {"type": "websocket.receive", "text": "one"}
    assert session.next_app_event() == {"type": "websocket.receive", "bytes": b"two"}
    assert not session.backlogged
    assert session.next_app_event() is None


def test_fragments_reassembled_across_receive_calls_and_utf8_splits() -> None:
    session = opened()
    data = frame(0x1, "h€".encode()[:2], fin=False) + frame(0x9, b"!") + frame(0x0, "h€".encode()[2:] + b"!")
    for i in range(len(data)):  # one byte at a time
        session.receive_data(data[i : i + 1])
    assert session.data_to_send() == b"\x8a\x01!"
    assert session.next_app_event() == {"type": "websocket.receive", "text": "h€!"}
    assert session.next_app_event() is None


def test_ping_pong_and_pong_payloads() -> None:
    session = opened()
    session.receive_data(frame(0x9, b"abc"))
    assert session.data_to_send() == b"\x8a\x03abc"
    session.receive_data(frame(0xA, b"\x00\x00\x00\x01"))
    assert session.data_to_send() == b""
    assert list(session.pong_payloads) == [b"\x00\x00\x00\x01"]
    assert session.ping(b"\x00\x00\x00\x02") is True
    assert session.data_to_send() == b"\x89\x04\x00\x00\x00\x02"


def test_ping_refused_when_not_open() -> None:
    session = make_session()
    assert session.ping(b"x") is False
    session = opened()
    session.app_send({"type": "websocket.close"})
    session.data_to_send()
    assert session.ping(b"x") is False
    assert session.data_to_send() == b""


# ---------------------------------------------------------------- closing


def test_peer_close_is_echoed_and_decides_the_disconnect() -> None:
    session = opened()
    session.receive_data(frame(0x1, b"before") + close_frame(4001, "bye-ü") + frame(0x1, b"after"))
    assert session.data_to_send() == server_close(4001, "bye-ü")
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.CLOSE)
    assert session.next_app_event() == {"type": "websocket.receive", "text": "before"}
    for _ in range(3):
        assert session.next_app_event() == disconnect(4001, "bye-ü")
    with pytest.raises(ClientDisconnected) as raised:
        session.app_send({"type": "websocket.send", "text": "x"})
    assert str(raised.value) == "peer closed the connection with code 4001"
    assert raised.value.code == 4001
    assert session.data_to_send() == b""


def test_empty_peer_close_is_1005_and_the_echo_is_empty() -> None:
    session = opened()
    session.receive_data(close_frame(None))
    assert session.data_to_send() == b"\x88\x00"
    assert session.next_app_event() == disconnect(1005)


def test_app_close_waits_for_the_echo_and_drops_data_in_between() -> None:
    session = opened()
    session.app_send({"type": "websocket.close", "code": 4000, "reason": "done"})
    assert session.data_to_send() == server_close(4000, "done")
    assert (session.state, session.plan) == (WSState.CLOSING, Plan.AWAIT_CLOSE)
    assert session.next_app_event() is None  # no disconnect until the peer answers
    with pytest.raises(ClientDisconnected, match=r"the app already sent websocket.close \(code 4000\)"):
        session.app_send({"type": "websocket.close"})
    session.receive_data(frame(0x1, b"dropped") + frame(0x9, b"p"))
    assert session.next_app_event() is None
    session.receive_data(close_frame(4002, "echo"))
    assert session.data_to_send() == b""  # no close frame after ours (RFC 6455 §5.5.1)
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.CLOSE)
    assert session.next_app_event() == disconnect(4002, "echo")


def test_app_close_then_close_timeout_is_1006() -> None:
    session = opened()
    session.app_send({"type": "websocket.close"})
    session.data_to_send()
    session.close_timeout_expired()
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.CLOSE)
    assert session.next_app_event() == disconnect(1006)


def test_connection_lost_is_1006_after_queued_messages() -> None:
    session = opened()
    session.receive_data(frame(0x1, b"a") + frame(0x1, b"unfinished", fin=False))
    session.connection_lost()
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.CLOSE)
    assert session.next_app_event() == {"type": "websocket.receive", "text": "a"}
    assert session.next_app_event() == disconnect(1006)
    assert session.data_to_send() == b""


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (frame(0x1, b"\xff"), 1007, "invalid UTF-8 or payload data"),
        (frame(0x2, b"x" * 11), 1009, "message exceeds 10 bytes"),
        (frame(0x2, b"x" * 6, fin=False) + frame(0x0, b"x" * 5), 1009, "message exceeds 10 bytes"),
        (frame(0x1, b"x", mask=None), 1002, "protocol error"),
        (frame(0x3), 1002, "protocol error"),
        (frame(0x0, b"x"), 1002, "protocol error"),
        (close_frame(1006), 1002, "protocol error"),
        (frame(0x8, b"\x03\xe8\xff"), 1007, "invalid UTF-8 or payload data"),  # bad UTF-8 in a close reason
    ],
)
def test_failures_send_the_code_and_drain(data: bytes, code: int, reason: str) -> None:
    session = opened(max_size=10)
    session.receive_data(data)
    assert session.data_to_send() == server_close(code, reason)
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.DRAIN)
    assert session.next_app_event() == disconnect(code, reason)
    session.receive_data(frame(0x9, b"ignored"))
    assert session.data_to_send() == b""
    with pytest.raises(ClientDisconnected, match=f"connection failed with code {code}"):
        session.app_send({"type": "websocket.send", "bytes": b""})


def test_keepalive_timeout_sends_1011_and_decides_1006() -> None:
    session = opened()
    session.keepalive_timed_out()
    assert session.data_to_send() == server_close(1011, "keepalive ping timeout")
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.CLOSE)
    assert session.next_app_event() == disconnect(1006)


def test_shutdown_when_open_sends_1001_and_decides_1001() -> None:
    session = opened()
    session.server_shutdown()
    assert session.data_to_send() == server_close(1001, "server shutting down")
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.AWAIT_CLOSE)
    assert session.next_app_event() == disconnect(1001, "server shutting down")
    session.receive_data(close_frame(1001))
    assert session.plan is Plan.CLOSE
    assert session.data_to_send() == b""
    assert session.next_app_event() == disconnect(1001, "server shutting down")


def test_shutdown_during_the_handshake_answers_503() -> None:
    session = make_session()
    session.server_shutdown()
    assert session.data_to_send() == (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 20\r\nconnection: close\r\n\r\nServer shutting down"
    )
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.DRAIN)
    assert session.next_app_event() == CONNECT
    assert session.next_app_event() == disconnect(1001, "server shutting down")


def test_shutdown_after_the_app_closed_changes_nothing() -> None:
    session = opened()
    session.app_send({"type": "websocket.close"})
    session.data_to_send()
    session.server_shutdown()
    assert session.data_to_send() == b""
    assert session.state is WSState.CLOSING


@pytest.mark.parametrize(("raised", "code"), [(False, 1000), (True, 1011)])
def test_app_end_after_accept_sends_close(raised: bool, code: int) -> None:
    session = opened()
    session.app_ended(raised=raised)
    assert session.data_to_send() == server_close(code)
    assert (session.state, session.plan) == (WSState.CLOSING, Plan.AWAIT_CLOSE)
    session.receive_data(close_frame(code))
    assert session.plan is Plan.CLOSE


@pytest.mark.parametrize("raised", [False, True])
def test_app_end_before_accept_answers_500(raised: bool) -> None:
    session = make_session()
    session.app_ended(raised=raised)
    assert session.data_to_send().startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert session.plan is Plan.DRAIN


def test_app_end_mid_denial_body_closes_tcp() -> None:
    session = make_session()
    session.app_send({"type": "websocket.http.response.start", "status": 401})
    session.app_send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
    session.data_to_send()
    session.app_ended(raised=True)
    assert session.data_to_send() == b""
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.CLOSE)


def test_app_end_after_close_or_disconnect_sends_nothing() -> None:
    session = opened()
    session.receive_data(close_frame(1000))
    session.data_to_send()
    session.app_ended(raised=True)
    assert session.data_to_send() == b""
    assert session.plan is Plan.CLOSE


def test_long_close_reason_is_cut_with_a_notice() -> None:
    session = opened()
    session.app_send({"type": "websocket.close", "code": 1000, "reason": "é" * 100})
    assert session.data_to_send() == server_close(1000, "é" * 61)
    assert len(session.notices) == 1
    assert "longer than 123 UTF-8 bytes" in session.notices[0]


def test_state_changes_are_reported() -> None:
    seen: list[tuple[WSState, WSState]] = []
    session = make_session()
    session.on_state_change = lambda old, new: seen.append((old, new))
    session.app_send({"type": "websocket.accept"})
    session.app_send({"type": "websocket.close"})
    session.receive_data(close_frame(1000))
    assert seen == [
        (WSState.CONNECTING, WSState.OPEN),
        (WSState.OPEN, WSState.CLOSING),
        (WSState.CLOSING, WSState.CLOSED),
    ]


# ---------------------------------------------------------------- the state table


ALL_TYPES = [
    "websocket.accept",
    "websocket.send",
    "websocket.close",
    "websocket.http.response.start",
    "websocket.http.response.body",
    "http.response.start",
    "websocket.bogus",
]
VALID: dict[str, dict[str, Any]] = {
    "websocket.accept": {"type": "websocket.accept"},
    "websocket.send": {"type": "websocket.send", "text": "x"},
    "websocket.close": {"type": "websocket.close"},
    "websocket.http.response.start": {"type": "websocket.http.response.start", "status": 401},
    "websocket.http.response.body": {"type": "websocket.http.response.body", "body": b"", "more_body": True},
    "http.response.start": {"type": "http.response.start", "status": 200},
    "websocket.bogus": {"type": "websocket.bogus"},
}


def session_in(state: WSState) -> WebSocketSession:
    session = make_session()
    if state is WSState.DENIAL_START_HELD:
        session.app_send(VALID["websocket.http.response.start"])
    elif state is WSState.DENIAL_BODY:
        session.app_send(VALID["websocket.http.response.start"])
        session.app_send(VALID["websocket.http.response.body"])
    elif state is WSState.OPEN:
        session.app_send(VALID["websocket.accept"])
    elif state is WSState.CLOSING:
        session.app_send(VALID["websocket.accept"])
        session.app_send(VALID["websocket.close"])
    elif state is WSState.CLOSED:
        session.app_send(VALID["websocket.accept"])
        session.connection_lost()
    assert session.state is state
    session.data_to_send()
    return session


@pytest.mark.parametrize("state", list(WSState))
@pytest.mark.parametrize("kind", ALL_TYPES)
def test_every_state_and_message_type(state: WSState, kind: str) -> None:
    session = session_in(state)
    message = VALID[kind]
    ws_message = kind.startswith("websocket.") and kind != "websocket.bogus"
    if state in (WSState.CLOSING, WSState.CLOSED) and ws_message:
        with pytest.raises(ClientDisconnected):
            session.app_send(message)
        assert session.state is state
    elif (state, kind) in _TABLE:
        session.app_send(message)
    else:
        with pytest.raises(ASGIProtocolError) as raised:
            session.app_send(message)
        assert f"state: {state.name}" in str(raised.value)
        assert session.state is state  # misuse leaves the state as it was
        assert session.data_to_send() == b""


# ---------------------------------------------------------------- truncate_reason


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
def test_truncate_reason_cases(reason: str, expected: str, cut: bool) -> None:
    assert truncate_reason(reason) == (expected, cut)


@given(st.text())
def test_truncate_reason_is_the_longest_fitting_prefix(reason: str) -> None:
    reason = reason.encode("utf-8", "ignore").decode("utf-8")  # drop lone surrogates
    out, cut = truncate_reason(reason)
    assert reason.startswith(out)
    assert len(out.encode()) <= MAX_CLOSE_REASON_BYTES
    assert cut == (out != reason)
    if cut:
        assert len(reason[: len(out) + 1].encode()) > MAX_CLOSE_REASON_BYTES


# ---------------------------------------------------------------- validate_request


H = list[tuple[bytes, bytes]]
GOOD: H = [
    (b"host", b"x"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]


def without(name: bytes) -> H:
    return [(n, v) for n, v in GOOD if n != name]


def replaced(name: bytes, value: bytes) -> H:
    return [(n, value if n == name else v) for n, v in GOOD]


def test_validate_request_accepts_and_returns_the_key() -> None:
    assert validate_request(b"GET", b"1.1", GOOD) == KEY
    assert validate_request(b"GET", b"1.1", replaced(b"connection", b"keep-alive, upgrade")) == KEY
    assert (
        validate_request(
            b"GET", b"1.1", [*without(b"connection"), (b"connection", b"keep-alive"), (b"connection", b"Upgrade")]
        )
        == KEY
    )


V13 = [(b"sec-websocket-version", b"13")]


@pytest.mark.parametrize(
    ("method", "version", "headers", "expected"),
    [
        (b"POST", b"1.1", GOOD, Rejection(400, "a WebSocket handshake must use GET, not POST", V13)),
        (b"GET", b"1.0", GOOD, Rejection(400, "a WebSocket handshake needs HTTP/1.1", V13)),
        (b"GET", b"1.1", without(b"host"), Rejection(400, "a WebSocket handshake needs exactly one Host header", V13)),
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
def test_validate_request_rejections(method: bytes, version: bytes, headers: H, expected: Rejection) -> None:
    assert validate_request(method, version, headers) == expected


def test_asks_for_websocket() -> None:
    assert handshake.asks_for_websocket([(b"upgrade", b"WebSocket")])
    assert handshake.asks_for_websocket([(b"upgrade", b"h2c, websocket")])
    assert not handshake.asks_for_websocket([(b"upgrade", b"h2c")])
    assert not handshake.asks_for_websocket([(b"connection", b"upgrade")])


# ---------------------------------------------------------------- negotiate_deflate


def offer(*values: str) -> H:
    return [(b"sec-websocket-extensions", v.encode()) for v in values]


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
    ],
)
def test_negotiate_deflate(values: tuple[str, ...], response: bytes | None) -> None:
    params = negotiate_deflate(offer(*values))
    assert (params.response if params else None) == response


def test_deflate_session_inflates_and_deflates() -> None:
    params = negotiate_deflate(offer("permessage-deflate; server_no_context_takeover"))
    assert params == DeflateParams(
        True, False, 12, b"permessage-deflate; server_no_context_takeover; server_max_window_bits=12"
    )
    session = make_session(
        [("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover")], deflate=True, max_size=100
    )
    session.next_app_event()
    session.app_send({"type": "websocket.accept"})
    assert (
        b"\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover; "
        b"server_max_window_bits=12\r\n" in session.data_to_send()
    )
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = (c.compress(b"a" * 100) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    session.receive_data(frame(0x1, payload, rsv1=True))
    assert session.next_app_event() == {"type": "websocket.receive", "text": "a" * 100}
    for _ in range(2):  # no context takeover: each message decodes on its own
        session.app_send({"type": "websocket.send", "text": "b" * 50})
        out = session.data_to_send()
        assert out[0] == 0xC1
        assert zlib.decompressobj(-15).decompress(out[2:] + b"\x00\x00\xff\xff") == b"b" * 50
    session.receive_data(frame(0x1, (c.compress(b"a" * 101) + c.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv1=True))
    # Held: the app took "a" * 100 and has not asked for more, so it may still answer it.
    assert session.data_to_send() == b""
    assert session.plan is Plan.HOLD
    assert session.next_app_event() == disconnect(1009, "message exceeds 100 bytes")
    assert session.data_to_send() == server_close(1009, "message exceeds 100 bytes")


@pytest.mark.parametrize("code", [1012, 1013, 1014])
def test_iana_close_codes_from_the_peer_are_accepted(code: int) -> None:
    session = opened()
    session.receive_data(close_frame(code, "r"))
    assert session.data_to_send() == server_close(code, "r")
    assert session.next_app_event() == disconnect(code, "r")


def test_bad_utf8_reason_with_an_iana_code_is_1007() -> None:
    session = opened()
    session.receive_data(frame(0x8, struct.pack("!H", 1014) + b"\xff"))
    assert session.data_to_send() == server_close(1007, "invalid UTF-8 or payload data")


def test_shutdown_during_a_held_denial_start_answers_503() -> None:
    session = make_session()
    session.app_send({"type": "websocket.http.response.start", "status": 401})
    session.server_shutdown()
    assert session.data_to_send().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert (session.state, session.plan) == (WSState.CLOSED, Plan.DRAIN)
    with pytest.raises(ClientDisconnected, match=r"the server is shutting down \(HTTP 503\)"):
        session.app_send({"type": "websocket.http.response.body", "body": b"late"})


def test_shutdown_mid_denial_body_lets_the_app_finish() -> None:
    session = make_session()
    session.app_send({"type": "websocket.http.response.start", "status": 401})
    session.app_send({"type": "websocket.http.response.body", "body": b"a", "more_body": True})
    session.data_to_send()
    session.server_shutdown()
    assert session.data_to_send() == b""
    session.app_send({"type": "websocket.http.response.body", "body": b"b"})
    assert session.data_to_send() == b"1\r\nb\r\n0\r\n\r\n"
