"""One WebSocket connection from the upgrade request to the end (www spec 2.5 "WebSocket";
asgi extensions "WebSocket Denial Response"; RFC 6455 §5, §7).

Inputs: bytes from the peer, a message from the app, "peer gone", "app ended", "close
timeout", "server shutting down", "keepalive timed out". Outputs: bytes to write
(:meth:`WebSocketSession.data_to_send`), events for the app
(:meth:`WebSocketSession.next_app_event`), and :attr:`WebSocketSession.plan`, which tells
the runtime what to do with the TCP connection.

States (``WSState``) and what the app may send in each are in ``_TABLE``; a message that
is missing there is an app error naming the state, the message and the section. The
disconnect rules (docs/decisions.md A1, A2, A4, A9):

- exactly one ``websocket.disconnect`` is decided per connection, when the state becomes
  CLOSED, and every ``receive()`` after it returns the same event again;
- it comes after every message that fully arrived before the end;
- its code is the peer's (1005 for an empty close frame), 1006 for a loss without a
  close frame, or the code refserver sent when it failed the connection or shut down.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import h11
from wsproto.connection import Connection as WireConnection
from wsproto.connection import ConnectionState as WireState
from wsproto.connection import ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import (
    Message as WireMessage,
)
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, Frame, ParseFailed

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.protocol.extensions import MessageSizeLimit, PerMessageDeflate
from refserver.protocol.handshake import DeflateParams, accept_key
from refserver.protocol.responses import check_sendable_head, response_head
from refserver.spec import messages, sections

Message = Mapping[str, Any]

CONNECT_EVENT: dict[str, Any] = {"type": "websocket.connect"}
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 §5.5: control payload <= 125 bytes, 2 for the code
# Headers only the server may set on the 101 (RFC 6455 §4.2.2; docs/decisions.md A14).
_SERVER_ONLY_HEADERS = (b"upgrade", b"connection")
_WS_MESSAGES = frozenset(
    {
        "websocket.accept",
        "websocket.send",
        "websocket.close",
        "websocket.http.response.start",
        "websocket.http.response.body",
    }
)


class WSState(Enum):
    CONNECTING = "handshake received; waiting for the app's accept, close or denial"
    DENIAL_START_HELD = "denial response started; held until its first body message"
    DENIAL_BODY = "denial response headers sent; body streaming"
    OPEN = "handshake complete; messages flow both ways"
    CLOSING = "the app sent websocket.close; waiting for the peer's close frame"
    CLOSED = "the connection is over; websocket.disconnect is decided"


class Plan(Enum):
    """What the runtime does with the TCP connection next."""

    READ = "keep reading and feeding bytes in"
    HOLD = (
        "the peer broke the protocol: read nothing more, and fail the connection once the app "
        "has taken every earlier message and asks for the next"
    )
    AWAIT_CLOSE = "a close frame was sent: read until the peer's close, within the close timeout"
    DRAIN = "send FIN, discard input until EOF within the close timeout, then close"
    CLOSE = "close the TCP connection now"


def truncate_reason(reason: str) -> tuple[str, bool]:
    """The longest prefix of ``reason`` that fits a close frame without splitting a
    character (RFC 6455 §5.5, §5.5.1), and whether it had to be cut."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return reason, False
    return data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore"), True


def disconnect_event(code: int, reason: str) -> dict[str, Any]:
    """www spec 2.5, "Disconnect - receive event": code always present, reason (2.5)."""
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


_FAILURE_REASONS = {
    CloseReason.PROTOCOL_ERROR: "protocol error",
    CloseReason.INVALID_FRAME_PAYLOAD_DATA: "invalid UTF-8 or payload data",
    CloseReason.MESSAGE_TOO_BIG: "message too big",
}


class WebSocketSession:
    """The sans-IO state of one WebSocket connection."""

    def __init__(
        self,
        handshake: h11.Connection,
        *,
        key: bytes,
        subprotocols: list[str],
        deflate: DeflateParams | None,
        max_size_bytes: int,
    ) -> None:
        self.handshake = handshake
        self.key = key
        self.offered_subprotocols = subprotocols
        self.deflate = deflate
        self.max_size_bytes = max_size_bytes
        self.state = WSState.CONNECTING
        self.plan = Plan.READ
        self.wire: WireConnection | None = None
        self.inbox: deque[dict[str, Any]] = deque()
        self.disconnect: dict[str, Any] | None = None
        self.closed_reason = ""  # why send() raises ClientDisconnected, once closing
        self.close_code: int | None = None
        self.notices: list[str] = []  # warnings for the runtime to log
        self.on_state_change: Callable[[WSState, WSState], None] | None = None
        self._connect_delivered = False
        self._output: list[bytes] = []
        self._parts: list[Any] = []  # fragments of the message being reassembled
        self._denial_status = 0
        self._denial_headers: list[tuple[bytes, bytes]] = []
        self.pong_payloads: deque[bytes] = deque(maxlen=4)
        # A failure (1002/1007/1009) found behind messages the app may still answer.
        self._pending_failure: tuple[int, str] | None = None
        # True from handing the app a message until it asks for the next one: it may be
        # answering it.
        self._app_may_be_answering = False

    # ------------------------------------------------------------------ helpers

    def _set_state(self, state: WSState) -> None:
        old, self.state = self.state, state
        if self.on_state_change is not None and old is not state:
            self.on_state_change(old, state)

    def _write(self, data: bytes) -> None:
        if data:
            self._output.append(data)

    def data_to_send(self) -> bytes:
        """Bytes the runtime must write, in order; empties the outbox."""
        out = self._output
        if not out:
            return b""
        self._output = []
        return out[0] if len(out) == 1 else b"".join(out)

    def _close(self, code: int, reason: str, why: str, plan: Plan) -> None:
        """Decide the one websocket.disconnect of this connection (if not yet decided)."""
        if self.disconnect is None:
            self.disconnect = disconnect_event(code, reason)
            self.close_code = code
            self.closed_reason = why
        self.plan = plan
        self._set_state(WSState.CLOSED)

    # ------------------------------------------------------------------ app <- server

    def next_app_event(self) -> dict[str, Any] | None:
        """What ``receive()`` returns now, or None when it has to wait."""
        if not self._connect_delivered:
            # www spec 2.5, "Connect - receive event": always the first event.
            self._connect_delivered = True
            return CONNECT_EVENT
        if self.inbox:
            self._app_may_be_answering = True
            return self.inbox.popleft()
        self._app_may_be_answering = False
        if self._pending_failure is not None:
            # The app has every message that arrived before the bad bytes and asks for more:
            # now the connection fails (docs/decisions.md, "Failing the connection").
            self._fail_now()
        # docs/decisions.md A1: the disconnect again, on every later call; never hang.
        return self.disconnect

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._output)

    @property
    def backlogged(self) -> bool:
        """True while messages wait for the app: the runtime stops reading (backpressure)."""
        return bool(self.inbox)

    # ------------------------------------------------------------------ app -> server

    def app_send(self, message: Message) -> None:
        kind = messages.message_type(message)
        if self.state is WSState.CLOSING or self.state is WSState.CLOSED:
            if kind in _WS_MESSAGES:
                # www spec 2.4: send() on a closed (or closing) connection raises an
                # OSError subclass (docs/decisions.md A8).
                raise ClientDisconnected(self.closed_reason, self.close_code)
            raise _misuse(self.state, kind).with_state(self.state.name)
        action = _TABLE.get((self.state, kind))
        try:
            if action is None:
                raise _misuse(self.state, kind)
            action(self, messages.validate(message, kind))
        except ASGIProtocolError as exc:
            raise exc.with_state(self.state.name) from None

    # -- CONNECTING

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.offered_subprotocols:
            self._answer_500()
            raise ASGIProtocolError(
                "websocket.accept",
                f"chose subprotocol {subprotocol!r}, which the client did "
                f"not offer (offered: {self.offered_subprotocols}; RFC 6455 §4.2.2); the "
                "handshake was answered with HTTP 500",
                sections.WS_ACCEPT,
            )
        app_headers = list(message.get("headers", ()))
        for name, _ in app_headers:
            if name.startswith(b"sec-websocket-") or name in _SERVER_ONLY_HEADERS:
                self._answer_500()
                raise ASGIProtocolError(
                    "websocket.accept",
                    f"sets header {name.decode('latin-1')!r}, which only the "
                    "server may set; the handshake was answered with HTTP 500",
                    sections.WS_ACCEPT,
                )
        headers = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(self.key)),
        ]
        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))
        extensions: list[Extension] = [MessageSizeLimit(self.max_size_bytes)]
        if self.deflate is not None:
            headers.append((b"sec-websocket-extensions", self.deflate.response))
            extensions.append(PerMessageDeflate(self.deflate, self.max_size_bytes))
        headers.extend(app_headers)
        try:
            data = self.handshake.send(h11.InformationalResponse(status_code=101, headers=headers))
        except h11.LocalProtocolError as exc:
            self._answer_500()
            raise ASGIProtocolError(
                "websocket.accept", f"has headers h11 cannot send: {exc}", sections.WS_ACCEPT
            ) from None
        self._write(data or b"")
        trailing, _closed = self.handshake.trailing_data
        self.wire = WireConnection(ConnectionType.SERVER, extensions)
        _accept_registered_close_codes(self.wire)
        self._set_state(WSState.OPEN)
        if trailing:
            # Bytes the client sent right behind the handshake are not lost.
            self._feed(trailing)

    def _refuse(self, message: Message) -> None:
        # www spec 2.5, "Close - send event": close before accept -> HTTP 403, at once.
        self._http_response(403, [], b"", more=False)
        self._close(1006, "", "the handshake was refused with HTTP 403", Plan.DRAIN)

    def _deny_start(self, message: Message) -> None:
        headers = list(message.get("headers", ()))
        check_sendable_head(message["status"], headers, "websocket.http.response.start", sections.WS_DENIAL)
        self._denial_status = message["status"]
        self._denial_headers = headers
        self._set_state(WSState.DENIAL_START_HELD)

    def _deny_first_body(self, message: Message) -> None:
        self._set_state(WSState.DENIAL_BODY)
        body, more = bytes(message.get("body", b"")), message.get("more_body", False)
        self._http_response(self._denial_status, self._denial_headers, body, more)
        self._denial_headers = []
        if not more:
            self._denial_done()

    def _deny_next_body(self, message: Message) -> None:
        body, more = bytes(message.get("body", b"")), message.get("more_body", False)
        if body:
            self._send_http(h11.Data(data=body), "websocket.http.response.body")
        if not more:
            self._send_http(h11.EndOfMessage(), "websocket.http.response.body")
            self._denial_done()

    def _denial_done(self) -> None:
        self._close(
            1006,
            "",
            f"the handshake was answered with the app's HTTP {self._denial_status} response",
            Plan.DRAIN,
        )

    def _http_response(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, more: bool) -> None:
        headers = [(n, v) for n, v in headers if n != b"transfer-encoding"]
        if not more and not any(n == b"content-length" for n, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        if not any(n == b"connection" for n, _ in headers):
            headers.append((b"connection", b"close"))
        self._send_http(response_head(status, headers), "websocket.http.response.start")
        if body:
            self._send_http(h11.Data(data=body), "websocket.http.response.body")
        if not more:
            self._send_http(h11.EndOfMessage(), "websocket.http.response.body")

    def _send_http(self, event: h11.Event, kind: str) -> None:
        """One part of an HTTP answer to the handshake. A part h11 refuses (a body longer or
        shorter than the app's Content-Length, RFC 9112 §6.3) raises from the app's send();
        the response cannot be completed, so the connection is closed after what was sent."""
        try:
            self._write(self.handshake.send(event) or b"")
        except h11.LocalProtocolError as exc:
            self._close(1006, "", "the handshake response could not be sent", Plan.CLOSE)
            raise ASGIProtocolError(kind, f"cannot be sent: {exc}", sections.WS_DENIAL) from None

    def _answer_500(self) -> None:
        body = b"Internal Server Error"
        self._http_response(500, [(b"content-type", b"text/plain; charset=utf-8")], body, False)
        self._close(1006, "", "the handshake was answered with HTTP 500", Plan.DRAIN)

    # -- OPEN

    def _send_data(self, message: Message) -> None:
        wire = self.wire
        if wire is None:  # pragma: no cover - OPEN implies a wire connection
            raise RuntimeError("OPEN without a wire connection")
        text = message.get("text")
        try:
            if text is not None:
                self._write(wire.send(TextMessage(data=text)))
            else:
                self._write(wire.send(BytesMessage(data=bytes(message["bytes"]))))
        except UnicodeEncodeError as exc:
            raise ASGIProtocolError(
                "websocket.send",
                f"has text that is not encodable as UTF-8 ({exc.reason})",
                sections.WS_SEND,
            ) from None

    def _send_close(self, message: Message) -> None:
        code = message.get("code")
        code = 1000 if code is None else code
        reason, cut = truncate_reason(message.get("reason") or "")
        if cut:
            self.notices.append(
                f"websocket.close reason is longer than {MAX_CLOSE_REASON_BYTES} UTF-8 bytes; "
                "it was cut to fit the close frame (RFC 6455 §5.5)"
            )
        self._write_close(code, reason)
        self.closed_reason = f"the app already sent websocket.close (code {code})"
        self.close_code = code
        self.plan = Plan.AWAIT_CLOSE
        self._set_state(WSState.CLOSING)

    def _write_close(self, code: int, reason: str) -> None:
        if self.wire is not None and self.wire.state is WireState.OPEN:
            self._write(self.wire.send(CloseConnection(code=code, reason=reason)))

    # ------------------------------------------------------------------ peer -> server

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer (never empty: EOF is :meth:`connection_lost`)."""
        if self.plan is Plan.DRAIN or self.plan is Plan.CLOSE or self.plan is Plan.HOLD:
            return  # after a failure or an answer over HTTP: discard
        if self.wire is None:
            # Before the 101: h11 keeps them as trailing data for the wire parser.
            self.handshake.receive_data(data)
            return
        self._feed(data)

    def buffered_before_accept(self) -> int:
        return len(self.handshake.trailing_data[0]) if self.wire is None else 0

    def _feed(self, data: bytes) -> None:
        wire = self.wire
        if wire is None:  # pragma: no cover
            raise RuntimeError("no wire connection")
        wire.receive_data(data)
        for event in wire.events():
            if isinstance(event, WireMessage):
                self._on_message_part(event)
            elif isinstance(event, Ping):
                # RFC 6455 §5.5.2: answer with a Pong carrying the same payload.
                if wire.state is WireState.OPEN:
                    self._write(wire.send(event.response()))
            elif isinstance(event, Pong):
                self.pong_payloads.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                self._on_close_frame(wire, event)
                return

    def _on_message_part(self, event: WireMessage[Any]) -> None:
        # Fragments are reassembled; wsproto decodes UTF-8 incrementally, so a character
        # split across frames arrives whole and bad UTF-8 fails the connection at once.
        if not event.message_finished:
            self._parts.append(event.data)
            return
        if self._parts:
            self._parts.append(event.data)
            data: Any = ("" if isinstance(event, TextMessage) else b"").join(self._parts)
            self._parts = []
        else:
            data = event.data
        if self.state is not WSState.OPEN:
            return  # docs/decisions.md A9: data after the app's close is dropped
        if isinstance(event, TextMessage):
            self.inbox.append({"type": "websocket.receive", "text": data})
        else:
            self.inbox.append({"type": "websocket.receive", "bytes": bytes(data)})

    def _on_close_frame(self, wire: WireConnection, event: CloseConnection) -> None:
        self._parts = []
        code, reason = int(event.code), event.reason or ""
        if wire.state is WireState.REMOTE_CLOSING:
            # The peer began the closing handshake: echo its code (RFC 6455 §5.5.1) and,
            # the handshake being complete, close TCP at once (§7.1.1).
            self._write(wire.send(event.response()))
            self._close(code, reason, f"peer closed the connection with code {code}", Plan.CLOSE)
        elif wire.state is WireState.CLOSED:
            # The peer answered our close frame: handshake complete.
            self._close(code, reason, f"peer closed the connection with code {code}", Plan.CLOSE)
        else:
            # wsproto reports a parse failure as a close event without changing state:
            # fail the connection (RFC 6455 §7.1.7) with its code; wsproto's parser is
            # finished, so the rest of the input is discarded.
            text = _FAILURE_REASONS.get(CloseReason(code), "protocol error")
            if event.code == CloseReason.MESSAGE_TOO_BIG:
                text = f"message exceeds {self.max_size_bytes} bytes"
            self._pending_failure = (code, text)
            if self.state is WSState.OPEN and (self.inbox or self._app_may_be_answering):
                # Messages that fully arrived before the bad bytes are still delivered, and the
                # app may still answer them (Autobahn's strict cases 3.2-4.2.5, 5.15): the
                # failure waits until the app asks for more (see next_app_event), at most the
                # close timeout. With nothing to answer, it fails at once.
                self.plan = Plan.HOLD
            else:
                self._fail_now()

    def _fail_now(self) -> None:
        """Fail the connection (RFC 6455 §7.1.7) with the pending code: close frame, then
        FIN and discard the rest, since wsproto's parser has stopped."""
        if self._pending_failure is None:
            return
        code, text = self._pending_failure
        self._pending_failure = None
        self._write_close(code, text)
        self._close(code, text, f"connection failed with code {code} ({text})", Plan.DRAIN)

    def hold_expired(self) -> None:
        """The app did not catch up within the close timeout: fail the connection now."""
        self._fail_now()

    # ------------------------------------------------------------------ other inputs

    def connection_lost(self) -> None:
        """The TCP connection ended or failed (EOF, RST, read error)."""
        if self._pending_failure is not None:
            # The peer broke the protocol and then left: the failure is the cause.
            code, text = self._pending_failure
            self._pending_failure = None
            self._close(code, text, f"connection failed with code {code} ({text})", Plan.CLOSE)
            return
        # RFC 6455 §7.1.5: no close frame received -> 1006 (docs/decisions.md A2).
        self._close(1006, "", "connection lost without a close frame (code 1006)", Plan.CLOSE)

    def close_timeout_expired(self) -> None:
        """Our close frame was not answered within the close timeout."""
        self._close(1006, "", "the peer did not answer the close frame in time (code 1006)", Plan.CLOSE)

    def keepalive_timed_out(self) -> None:
        """No pong within the ping timeout: tell the peer (1011) and give up (1006)."""
        self._write_close(1011, "keepalive ping timeout")
        self._close(1006, "", "keepalive ping timed out (code 1006)", Plan.CLOSE)

    def ping(self, payload: bytes) -> bool:
        """Queue a keepalive ping; False when the connection is not open (or is about to
        fail: no pong could be read)."""
        if self.state is not WSState.OPEN or self.wire is None or self.plan is Plan.HOLD:
            return False
        if self.wire.state is not WireState.OPEN:
            return False
        self._write(self.wire.send(Ping(payload=payload)))
        return True

    def server_shutdown(self) -> None:
        """The server is going down (docs/decisions.md A3): close 1001 at once."""
        reason = "server shutting down"
        if self._pending_failure is not None:
            self._fail_now()  # the peer's protocol error came first
        elif self.state is WSState.OPEN:
            self._write_close(1001, reason)
            self._close(1001, reason, "the server is shutting down (close code 1001)", Plan.AWAIT_CLOSE)
        elif self.state is WSState.CONNECTING or self.state is WSState.DENIAL_START_HELD:
            # Nothing of the app's answer is on the wire yet (a denial start is held until
            # its first body), so the handshake is refused like any unanswered one.
            self._http_response(
                503,
                [(b"content-type", b"text/plain; charset=utf-8")],
                b"Server shutting down",
                False,
            )
            self._close(1001, reason, "the server is shutting down (HTTP 503)", Plan.DRAIN)

    def app_ended(self, *, raised: bool) -> None:
        """The app returned or raised (docs/decisions.md A5, A6, A7)."""
        if self._pending_failure is not None:
            self._fail_now()  # the peer's protocol error is the reason the connection ends
        elif self.state is WSState.CONNECTING or self.state is WSState.DENIAL_START_HELD:
            self._answer_500()
        elif self.state is WSState.DENIAL_BODY:
            self._close(1006, "", "the app ended during its denial response", Plan.CLOSE)
        elif self.state is WSState.OPEN:
            code = 1011 if raised else 1000
            self._write_close(code, "")
            self.closed_reason = f"the app ended (close code {code})"
            self.close_code = code
            self.plan = Plan.AWAIT_CLOSE
            self._set_state(WSState.CLOSING)


# Close codes registered with IANA (RFC 6455 §11.7) that wsproto's CloseReason lacks, so that
# its parser fails a peer's close frame carrying them with 1002. refserver lets the app send
# them (spec.messages.close_code_may_be_sent), so it accepts them from the peer as well.
_REGISTERED_CLOSE_CODES = frozenset({1012, 1013, 1014} - {int(reason) for reason in CloseReason})


def _accept_registered_close_codes(wire: WireConnection) -> None:
    proto = getattr(wire, "_proto", None)
    original = getattr(proto, "_process_close", None)
    if not _REGISTERED_CLOSE_CODES or original is None:
        return

    def process_close(frame: Frame) -> Frame:
        data = frame.payload
        if isinstance(data, bytes | bytearray) and len(data) >= 2:
            (code,) = struct.unpack("!H", data[:2])
            if code in _REGISTERED_CLOSE_CODES:
                try:
                    reason = bytes(data[2:]).decode("utf-8")
                except UnicodeDecodeError as exc:  # RFC 6455 §8.1: fail with 1007
                    raise ParseFailed(
                        f"Error decoding CLOSE reason: {exc}", CloseReason.INVALID_FRAME_PAYLOAD_DATA
                    ) from None
                return Frame(frame.opcode, (code, reason), frame.frame_finished, frame.message_finished)
        result: Frame = original(frame)
        return result

    setattr(proto, "_process_close", process_close)  # noqa: B010 - replaces a method on one instance


Action = Callable[[WebSocketSession, Message], None]

# (state, message type) -> action. Missing entries are app errors (see _misuse).
# CLOSING and CLOSED are handled before the table: every send raises ClientDisconnected.
_TABLE: dict[tuple[WSState, str], Action] = {
    (WSState.CONNECTING, "websocket.accept"): WebSocketSession._accept,
    (WSState.CONNECTING, "websocket.close"): WebSocketSession._refuse,
    (WSState.CONNECTING, "websocket.http.response.start"): WebSocketSession._deny_start,
    (WSState.DENIAL_START_HELD, "websocket.http.response.body"): WebSocketSession._deny_first_body,
    (WSState.DENIAL_BODY, "websocket.http.response.body"): WebSocketSession._deny_next_body,
    (WSState.OPEN, "websocket.send"): WebSocketSession._send_data,
    (WSState.OPEN, "websocket.close"): WebSocketSession._send_close,
}


def _misuse(state: WSState, kind: str) -> ASGIProtocolError:
    if kind not in _WS_MESSAGES:
        return ASGIProtocolError(kind, "is not a message a websocket connection accepts", sections.CORE_ERRORS)
    if state is WSState.CONNECTING:
        if kind == "websocket.send":
            return ASGIProtocolError(kind, "sent before websocket.accept", sections.WS_SEND)
        return ASGIProtocolError(kind, "sent before websocket.http.response.start", sections.WS_DENIAL)
    if state is WSState.OPEN:
        if kind == "websocket.accept":
            return ASGIProtocolError(kind, "sent twice: the connection is already accepted", sections.WS_ACCEPT)
        return ASGIProtocolError(
            kind,
            "sent after websocket.accept: a denial response is only possible before accepting",
            sections.WS_DENIAL,
        )
    if kind == "websocket.http.response.start":
        return ASGIProtocolError(kind, "sent twice: the denial response has already started", sections.WS_DENIAL)
    return ASGIProtocolError(
        kind,
        "sent during a denial response; only websocket.http.response.body may follow",
        sections.WS_DENIAL,
    )
