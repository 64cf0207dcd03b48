"""One WebSocket connection, from the upgrade request to the end, as one state machine.

Covers www spec 2.5, "WebSocket" (its events, and "Disconnected Client - send exception"), asgi
extensions, "Websocket Denial Response", and RFC 6455 §5 (framing), §7 (closing) and §5.5.2 (ping/pong).

Each :class:`Input` returns the effects its row of ``TABLE`` decides (``docs/state-machines.md``).
Exactly one ``websocket.disconnect`` is decided per connection; what ``receive()`` returns after
the end, and with which code, is in docs/how-it-works.md ("What does receive() return after the end?").

The machine is its ``state`` (:class:`State`) plus these data fields, and nothing else:

- ``receiving`` (:class:`Receiving`): the app's side of ``receive()``;
- ``handshake``: the h11 connection that parsed the upgrade request and answers it (None
  once the 101 is sent: the HTTP side is over); ``_early_bytes``: what the peer sent before;
- ``codec``: the frames both ways (parsing starts at the 101);
- ``inbox`` / ``_inbox_bytes``: complete messages the app has not taken, oldest first;
- ``_disconnect``: the one ``websocket.disconnect``, once decided; ``close_code`` and
  ``closed_reason``: what ``send()`` raises once the connection is closing;
- ``_failure``: the code and text of the failure FAILING holds;
- ``_denial_status`` / ``_denial_headers``: the app's denial response start;
- ``_ping_payload``: the keepalive ping whose pong is awaited (None: none is);
  ``_pings_sent``: the pings so far (the next one's payload);
- ``_disconnect_repeats``: ``receive()`` calls that returned the disconnect (to warn once);
- ``_reading``: whether the runtime reads from the peer (kept by ``TableMachine``).

The closing handshake needs no field of its own: our close frame can be written only in
OPEN and FAILING, and every state after them has sent it or never will; the peer's close
frame leads straight to CLOSED. Set once at the start and never changed: ``key``,
``offered_subprotocols``, ``deflate``, ``timeouts`` and the effects' maker (``_new_effects``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h11

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.protocol import frames, speedups
from refserver.protocol.effects import Effects, Note, Tcp, Timer
from refserver.protocol.extensions import PerMessageDeflate
from refserver.protocol.frames import FrameCodec, close_payload
from refserver.protocol.handshake import DeflateParams, accept_key
from refserver.protocol.responses import complete_response, response_head, sendable_head
from refserver.protocol.speedups import FastEnum
from refserver.protocol.table import TableBuilder, TableMachine
from refserver.spec import messages, sections

Message = Mapping[str, Any]

MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 §5.5: control payload <= 125 bytes, 2 for the code
# Bytes buffered before the app's accept (and during a denial) before reading pauses.
MAX_BYTES_BEFORE_ACCEPT = 64 * 1024
# Bytes of complete messages waiting for the app before reading pauses (docs/decisions.md#read-ahead-bytes).
READ_AHEAD_BYTES = 4 * 64 * 1024
# After this many receive() calls that returned the disconnect, warn once (docs/decisions.md#fairness).
DISCONNECT_REPEATS_BEFORE_WARNING = 100


class State(FastEnum):
    """Where a WebSocket connection is (the data fields at the top of this module hold the rest)."""

    CONNECTING = "handshake received; waiting for the app's accept, close or denial"
    DENIAL_START_HELD = "denial response started; held until its first body message"
    DENIAL_BODY = "denial response headers sent; body streaming"
    OPEN = "handshake complete; messages flow both ways"
    FAILING = (
        "the peer broke the protocol; read nothing more; fail the connection once the app "
        "has taken every earlier message and asks for the next (or the hold timer fires)"
    )
    CLOSING = "the app's close frame is sent; reading until the peer's close frame"
    SHUTTING_DOWN = "the server sent close 1001 (disconnect decided); reading until the peer's close frame"
    DRAINING = "disconnect decided; FIN sent; input discarded until EOF"
    CLOSED = "the TCP connection is closed"


# Before the 101 (h11 buffers what the peer sends).
_BEFORE_ACCEPT = frozenset({State.CONNECTING, State.DENIAL_START_HELD, State.DENIAL_BODY})
# The close timer runs (RFC 6455 §7.1.1); the peer is read until its close frame or EOF.
_CLOSING_STATES = frozenset({State.CLOSING, State.SHUTTING_DOWN, State.DRAINING})
# Nothing is read: the parser has stopped, or the connection is closed.
_NOT_READING = frozenset({State.FAILING, State.CLOSED})


class Receiving(FastEnum):
    """The app's side of ``receive()``."""

    CONNECT_DUE = "websocket.connect is still to be returned: it is always the first event"
    IDLE = "the app holds no message, and no receive() waits for one"
    HOLDING = "the app took a message and has not asked for the next yet"
    WAITING = "a receive() waits on an open connection and nothing is queued: the next message is handed to it"


_RFC_CLOSE = "RFC 6455 §7.1.1"
_RFC_FAIL = "RFC 6455 §7.1.7"
_RFC_LOST = "RFC 6455 §7.1.5"


class Input(FastEnum):
    # the app
    ACCEPT = "websocket.accept"
    SEND = "websocket.send"
    CLOSE = "websocket.close"
    DENIAL_START = "websocket.http.response.start"
    DENIAL_BODY = "websocket.http.response.body"
    OTHER_MESSAGE = "a message of another type"
    RECEIVE = "receive() called"
    APP_RETURNED = "the app returned"
    APP_RAISED = "the app raised"
    # the peer
    BYTES = "bytes from the peer"
    MESSAGE = "a complete data message (text or binary)"
    PING = "a ping frame"
    PONG = "a pong frame"
    CLOSE_FRAME = "a close frame"
    BAD_DATA = "bytes that break RFC 6455 (parse failure, bad UTF-8, too big)"
    PEER_GONE = "EOF, reset, or a failed write"
    # timers
    CLOSE_TIMEOUT = "close timer fired"
    HOLD_TIMEOUT = "hold timer fired"
    PING_DUE = "ping timer fired"
    PONG_TIMEOUT = "pong timer fired"
    # the server
    SHUTDOWN = "server shutdown"


_APP_INPUTS = {i.value: i for i in (Input.ACCEPT, Input.SEND, Input.CLOSE, Input.DENIAL_START, Input.DENIAL_BODY)}
_TIMER_INPUTS = {
    Timer.CLOSE: Input.CLOSE_TIMEOUT,
    Timer.HOLD: Input.HOLD_TIMEOUT,
    Timer.PING: Input.PING_DUE,
    Timer.PONG: Input.PONG_TIMEOUT,
}


def truncate_reason(reason: str) -> tuple[str, bool]:
    """Give the longest prefix of ``reason`` that fits a close frame without splitting a
    character (RFC 6455 §5.5, §5.5.1), and whether it had to be cut."""
    data = reason.encode("utf-8")
    if len(data) <= MAX_CLOSE_REASON_BYTES:
        return reason, False
    return data[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore"), True


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The machine's timer durations, in seconds (0 disables the keepalive ones)."""

    close_s: float = 10.0
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0


_MAKE_EFFECTS = speedups.effects_makers(Effects)  # by whether anything traces


class WebSocketMachine(TableMachine[State, Input, Effects]):
    """The sans-IO state of one WebSocket connection."""

    name = "WebSocket"

    def __init__(
        self,
        handshake: h11.Connection,
        *,
        key: bytes,
        subprotocols: list[str],
        deflate: DeflateParams | None,
        max_size_bytes: int,
        timeouts: Timeouts | None = None,
        traced: bool = True,
    ) -> None:
        """Start a connection in ``CONNECTING``, the upgrade request parsed by ``handshake``.
        ``traced``: whether anything reads the state changes (when nothing does, the effects
        leave them out: speedups.effects_makers)."""
        self._new_effects = _MAKE_EFFECTS[traced]
        self.handshake: h11.Connection | None = handshake
        self.key = key
        self.offered_subprotocols = subprotocols
        self.deflate = deflate
        self.timeouts = timeouts or Timeouts()
        self.state = State.CONNECTING
        # The data fields (see the module's docstring), in its order.
        self.receiving = Receiving.CONNECT_DUE
        self._early_bytes = 0
        self.codec = FrameCodec(max_size_bytes, PerMessageDeflate(deflate, max_size_bytes) if deflate else None)
        self.inbox: list[dict[str, Any]] = []  # a list: an empty deque is ten times its size
        self._inbox_bytes = 0
        self._disconnect: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.closed_reason = ""
        self._failure: tuple[int, str] = (0, "")
        self._denial_status = 0
        self._denial_headers: list[tuple[bytes, bytes]] = []
        self._ping_payload: bytes | None = None
        self._pings_sent = 0
        self._disconnect_repeats = 0
        self._reading = True
        self._fx = self._new_effects()
        self._row = TABLE[(State.CONNECTING, Input.RECEIVE)]

    # ------------------------------------------------------------------ the contract

    def app_send(self, message: Message) -> Effects:
        """Take the app's ``send(message)``.

        An error that changes nothing else is raised here; one that comes with effects (an
        HTTP 500 for a bad accept) is ``Effects.error``, raised by the runtime after the rest.

        Raises:
            ClientDisconnected: the connection is closing or closed (an ``OSError``).
            ASGIProtocolError: the message is invalid, or not allowed in this state; it names
                the message, the state and the spec section.
        """
        kind = speedups.message_type(message)
        state = self.state
        try:
            return self._step(_APP_INPUTS.get(kind) or Input.OTHER_MESSAGE, message)
        except ASGIProtocolError as exc:
            raise exc.with_state(state.name) from None

    def app_receive(self) -> Effects:
        """Take the app's ``receive()``.

        ``Effects.event`` is what it returns now; None means it waits for ``Effects.wake_app``.
        """
        return self._step(Input.RECEIVE, None)

    def app_ended(self, *, raised: bool) -> Effects:
        """Take the app's return, or its exception (``raised``)."""
        return self._step(Input.APP_RAISED if raised else Input.APP_RETURNED, raised)

    def receive_data(self, data: bytes) -> Effects:
        """Take bytes from the peer. They are never empty: EOF is :meth:`peer_gone`."""
        return self._step(Input.BYTES, data)

    def peer_gone(self, why: str = "") -> Effects:
        """Take the peer's EOF, a reset or a failed write (``why`` says which).

        ``Effects.error`` is the ClientDisconnected for a ``send()`` whose write failed."""
        fx = self._step(Input.PEER_GONE, why)
        fx.error = ClientDisconnected(self.closed_reason, self.close_code)
        return fx

    def timer_fired(self, timer: Timer, *, write_blocked: bool = False) -> Effects:
        """Take a deadline armed through ``Effects.arm`` passing.

        ``write_blocked``: a write still waits for room in the socket's send buffer (the ping
        timeout reads it)."""
        return self._step(_TIMER_INPUTS[timer], write_blocked)

    def server_shutdown(self) -> Effects:
        """Take server shutdown: close 1001 on an open connection, 503 before the accept."""
        return self._step(Input.SHUTDOWN, None)

    def timer_section(self, timer: Timer) -> str:
        """Return the rule behind ``timer`` in the state the machine is in (for the trace)."""
        return self.section_for(_TIMER_INPUTS[timer])

    # ------------------------------------------------------------------ dispatch

    def _wants_read(self) -> bool:
        """Read unless in FAILING or CLOSED, while what waits for the app is within its budget."""
        state = self.state
        if state in _BEFORE_ACCEPT:
            return self._early_bytes <= MAX_BYTES_BEFORE_ACCEPT
        if state in _NOT_READING:
            return False
        # OPEN reads within the read-ahead budget; the closing states read up to the end.
        return self._inbox_bytes <= READ_AHEAD_BYTES or state in _CLOSING_STATES

    def _go(self, new: State, why: str, section: str, tcp: Tcp = Tcp.CLOSE) -> None:
        """Change state; arm and cancel the timers and close TCP as the new state needs."""
        old = self._enter(new, why, section)
        fx = self._fx
        fx.wake_app = True
        if new is State.CLOSED:
            self._cancel(*Timer)
            fx.tcp = tcp
            return
        if new in _CLOSING_STATES and old not in _CLOSING_STATES:
            self._cancel(Timer.HOLD, Timer.PING, Timer.PONG)
            fx.arm_timer(Timer.CLOSE, self.timeouts.close_s)
        if new is State.DRAINING:
            fx.tcp = Tcp.SEND_EOF

    def _cancel(self, *timers: Timer) -> None:
        fx = self._fx
        for timer in timers:
            fx.arm.pop(timer, None)
            if timer not in fx.cancel:
                fx.add_cancel(timer)

    def _decide(self, code: int, reason: str, why: str) -> None:
        """Decide the one websocket.disconnect of this connection, if not yet decided."""
        if self._disconnect is None:
            # www spec 2.5, "Disconnect - receive event": the code is always present.
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self.close_code = code
            self.closed_reason = why
            self._fx.close_code = code

    def _write(self, data: bytes | None) -> None:
        if data:
            self._fx.add_write(data)

    # ------------------------------------------------------------------ receive()

    def _receive(self, _: None) -> None:
        """Return the connect event first, then each queued message, then the disconnect (again on every call)."""
        fx = self._fx
        if self.receiving is Receiving.CONNECT_DUE:
            # www spec 2.5, "Connect - receive event": always the first event.
            self.receiving = Receiving.IDLE
            fx.event = {"type": "websocket.connect"}
            return
        if self.inbox:
            event = self.inbox.pop(0)
            self._inbox_bytes -= _size(event)
            self.receiving = Receiving.HOLDING
            fx.event = event
            return
        self.receiving = Receiving.WAITING if self.state is State.OPEN else Receiving.IDLE
        if self._disconnect is not None:
            # docs/decisions.md#disconnect-repeats: the disconnect again, on every later call; never hang.
            fx.event = dict(self._disconnect)
            self._disconnect_repeats += 1
            if self._disconnect_repeats == DISCONNECT_REPEATS_BEFORE_WARNING:
                text = (
                    f"the app called receive() {DISCONNECT_REPEATS_BEFORE_WARNING} times after websocket.disconnect; "
                    "the connection is over, so the app should return when it receives websocket.disconnect"
                )
                fx.add_note(Note("warning", text, sections.WS_DISCONNECT))

    def _receive_failing(self, _: None) -> None:
        """Return the connect event or the next queued message; once none is left, fail and return the disconnect."""
        if self.receiving is not Receiving.CONNECT_DUE and not self.inbox:
            self._fail_now()  # the app has every message that arrived before the bad bytes
        self._receive(None)

    # ------------------------------------------------------------------ CONNECTING

    def _accept(self, message: Message) -> None:
        """Send the 101 and start framing and the keepalive (or answer HTTP 500 and raise)."""
        message = messages.validate(message, "websocket.accept")
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.offered_subprotocols:
            offered = self.offered_subprotocols
            return self._accept_failed(
                f"chose subprotocol {subprotocol!r}, which the client did not offer (offered: {offered}; "
                "RFC 6455 §4.2.2); the handshake was answered with HTTP 500"
            )
        app_headers = list(message.get("headers", ()))
        for name, _ in app_headers:  # headers only the server may set (docs/decisions.md#accept-refusals)
            if name.startswith(b"sec-websocket-") or name in (b"upgrade", b"connection"):
                return self._accept_failed(
                    f"sets header {name.decode('latin-1')!r}, which only the server may set; "
                    "the handshake was answered with HTTP 500"
                )
        headers = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_key(self.key)),
        ]
        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))
        if self.deflate is not None:
            headers.append((b"sec-websocket-extensions", self.deflate.response))
        if subprotocol is None and not app_headers:
            data = speedups.switching_protocols(headers)
        else:
            headers.extend(app_headers)
            try:
                data = self._http().send(h11.InformationalResponse(status_code=101, headers=headers))
            except h11.LocalProtocolError as exc:
                return self._accept_failed(f"has headers h11 cannot send: {exc}")
        self._write(data)
        self._fx.status = 101
        trailing = self._http().trailing_data[0]
        self.handshake = None
        self._go(State.OPEN, "the app accepted; 101 sent", sections.WS_ACCEPT)
        if self.timeouts.ping_interval_s > 0:
            self._fx.arm_timer(Timer.PING, self.timeouts.ping_interval_s)
        if trailing:
            # Bytes the client sent right behind the handshake are not lost.
            self._run(Input.BYTES, trailing)

    def _accept_failed(self, text: str) -> None:
        """Answer HTTP 500, and raise the accept's fault into the app once it is sent."""
        self._answer_500()
        error = ASGIProtocolError("websocket.accept", text, sections.WS_ACCEPT)
        self._fx.error = error.with_state(State.CONNECTING.name)

    def _refuse(self, message: Message) -> None:
        """Answer the handshake with HTTP 403 and decide the disconnect as 1006."""
        messages.validate(message, "websocket.close")
        self._http_head(403, [], 0, False)
        self._write(self._http().send(h11.EndOfMessage()))
        self._decide(1006, "", "the handshake was refused with HTTP 403")
        self._go(State.DRAINING, "the app closed before accepting; HTTP 403 sent", sections.WS_CLOSE)

    def _deny_start(self, message: Message) -> None:
        """Check the denial response's start and hold it until its first body message."""
        message = messages.validate(message, "websocket.http.response.start")
        headers = list(message.get("headers", ()))
        sendable_head(message["status"], headers, "websocket.http.response.start", sections.WS_DENIAL)
        self._denial_status = message["status"]
        self._denial_headers = headers
        self._go(State.DENIAL_START_HELD, "denial started; held until its first body message", sections.WS_DENIAL)

    def _deny_first_body(self, message: Message) -> None:
        """Send the held denial head, then send this body part as DENIAL_BODY does."""
        validated = messages.validate(message, "websocket.http.response.body")
        body, more = bytes(validated.get("body", b"")), validated.get("more_body", False)
        self._http_head(self._denial_status, self._denial_headers, len(body), more)
        self._denial_headers = []
        self._go(State.DENIAL_BODY, f"denial response HTTP {self._denial_status} sent", sections.WS_DENIAL)
        self._run(Input.DENIAL_BODY, validated)

    def _deny_body(self, message: Message) -> None:
        """Send the body part; after the last one, end the connection."""
        message = messages.validate(message, "websocket.http.response.body")
        body, more = bytes(message.get("body", b"")), message.get("more_body", False)
        try:
            if body:
                self._write(self._http().send(h11.Data(data=body)))
            if not more:
                self._write(self._http().send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            # h11 refuses a body off the app's Content-Length (RFC 9112 §6.3): close, and raise from send().
            self._decide(1006, "", "the handshake response could not be sent")
            self._go(State.CLOSED, "the denial response could not be completed", sections.WS_DENIAL)
            error = ASGIProtocolError("websocket.http.response.body", f"cannot be sent: {exc}", sections.WS_DENIAL)
            self._fx.error = error.with_state(State.DENIAL_BODY.name)
            return
        if not more:
            self._decide(1006, "", f"the handshake was answered with the app's HTTP {self._denial_status} response")
            self._go(State.DRAINING, "denial response complete", sections.WS_DENIAL)

    def _http_head(self, status: int, headers: list[tuple[bytes, bytes]], length: int, more: bool) -> None:
        headers = [(n, v) for n, v in headers if n != b"transfer-encoding"]
        if not more and not any(n == b"content-length" for n, _ in headers):
            headers.append((b"content-length", str(length).encode()))
        if not any(n == b"connection" for n, _ in headers):
            headers.append((b"connection", b"close"))
        self._fx.status = status
        # h11 takes the head: its headers were checked at websocket.http.response.start (or are ours).
        self._write(self._http().send(response_head(status, headers)))

    def _answer_500(self, _: Any = None) -> None:
        """Answer the handshake with HTTP 500."""
        self._fx.status = 500
        self._write(complete_response(self._http(), 500, b"Internal Server Error"))
        self._decide(1006, "", "the handshake was answered with HTTP 500")
        self._go(State.DRAINING, "HTTP 500 sent in answer to the handshake", sections.WS_ACCEPT)

    def _app_ended_in_denial(self, _: bool) -> None:
        """Close TCP: the denial response cannot be completed."""
        self._decide(1006, "", "the app ended during its denial response")
        self._go(State.CLOSED, "the app ended during its denial response", sections.WS_DENIAL)

    def _shutdown_before_accept(self, _: None) -> None:
        """Answer the handshake with HTTP 503 and decide the disconnect as 1001."""
        # Nothing of the app's answer is on the wire yet (a denial start is held until its first body).
        self._fx.status = 503
        self._write(complete_response(self._http(), 503, b"Server shutting down"))
        self._decide(1001, "server shutting down", "the server is shutting down (HTTP 503)")
        self._go(State.DRAINING, "server shutdown before the accept; HTTP 503 sent", sections.WS_DISCONNECT)

    def _buffer_early(self, data: bytes) -> None:
        """Keep the bytes (h11 holds them) for the frame parser after the 101."""
        self._early_bytes += len(data)
        self._http().receive_data(data)

    # ------------------------------------------------------------------ OPEN (and FAILING)

    def _send_data(self, message: Message) -> None:
        """Write a text or binary frame."""
        message = messages.validate(message, "websocket.send")
        text = message.get("text")
        try:
            if text is not None:
                self._fx.add_write(self.codec.data_frame(text.encode("utf-8"), True))
            else:
                self._fx.add_write(self.codec.data_frame(bytes(message["bytes"]), False))
        except UnicodeEncodeError as exc:
            text = f"has text that is not encodable as UTF-8 ({exc.reason})"
            raise ASGIProtocolError("websocket.send", text, sections.WS_SEND) from None

    def _send_close(self, message: Message) -> None:
        """Write the app's close frame and wait for the peer's."""
        code, reason = self._close_frame_of(message)
        self._write_close(code, reason)
        self.closed_reason = f"the app already sent websocket.close (code {code})"
        self.close_code = code
        self._go(State.CLOSING, f"the app sent websocket.close (code {code})", sections.WS_CLOSE)

    def _close_failing(self, message: Message) -> None:
        """Write the app's close frame and fail the connection (the parser has stopped: no close frame comes back)."""
        self._write_close(*self._close_frame_of(message))
        self._drain_failed()

    def _close_frame_of(self, message: Message) -> tuple[int, str]:
        """Give the code and reason of the app's websocket.close (a note if the reason is cut)."""
        message = messages.validate(message, "websocket.close")
        code = message.get("code")
        code = 1000 if code is None else code
        reason, cut = truncate_reason(message.get("reason") or "")
        if cut:
            text = (
                f"websocket.close reason is longer than {MAX_CLOSE_REASON_BYTES} UTF-8 bytes; "
                "it was cut to fit the close frame (RFC 6455 §5.5)"
            )
            self._fx.add_note(Note("warning", text, sections.WS_CLOSE))
        return code, reason

    def _app_ended_open(self, raised: bool) -> None:
        """Write close 1000 (1011 if the app raised) and wait for the peer's close frame."""
        code, how = (1011, "raised") if raised else (1000, "returned")
        self._write_close(code, "")
        self.closed_reason = f"the app ended (close code {code})"
        self.close_code = code
        self._go(State.CLOSING, f"the app {how}; close {code} sent", sections.WS_CLOSE)

    def _write_close(self, code: int, reason: str) -> None:
        """Write our close frame (only OPEN and FAILING have not sent it). Nothing follows it:
        RFC 6455 §5.5.1, "The application MUST NOT send any more data frames after sending a
        Close frame"."""
        self._write(FrameCodec.control_frame(frames.CLOSE, close_payload(code, reason)))

    def _http(self) -> h11.Connection:
        """Give the h11 connection that answers the handshake (its rows run before the 101)."""
        if self.handshake is None:  # pragma: no cover - a bug in a row
            raise RuntimeError("the HTTP side of the WebSocket connection is over")
        return self.handshake

    def _parse(self, data: bytes) -> None:
        """Feed the frame codec, and hand each frame or message it completes to its own row."""
        for kind, payload in self.codec.feed(data):
            self._run(_FRAME_INPUTS[kind], payload)

    def _message(self, data: str | bytes) -> None:
        """Hand the message to a waiting receive(), or queue it (reading pauses past the read-ahead budget)."""
        fx = self._fx
        message = {"type": "websocket.receive", ("text" if isinstance(data, str) else "bytes"): data}
        if self.receiving is Receiving.WAITING:
            self.receiving = Receiving.HOLDING
            fx.event = message
        else:
            self.inbox.append(message)
            self._inbox_bytes += _size(message)
        fx.wake_app = True

    def _drop_message(self, data: str | bytes) -> None:
        """Drop the message: data after the app's close frame is not delivered."""
        self._fx.add_note(Note("ignored", "a data message after the close frame was sent", "RFC 6455 §1.4"))

    def _answer_ping(self, payload: bytes) -> None:
        """Write a pong with the ping's payload."""
        self._write(FrameCodec.control_frame(frames.PONG, payload))

    def _pong(self, payload: bytes) -> None:
        """Cancel the pong timer and arm the next ping, if the pong answers our ping."""
        if payload == self._ping_payload:  # only while our ping is awaited (not None): keepalive is on
            self._ping_payload = None
            self._cancel(Timer.PONG)
            self._fx.arm_timer(Timer.PING, self.timeouts.ping_interval_s)

    def _peer_close(self, close: tuple[int, str]) -> None:
        """Echo the peer's close frame, then decide the disconnect with the peer's code and reason,
        and close TCP: the closing handshake is complete."""
        code, reason = close
        self._write_close(code, reason)
        self._peer_closed(close)

    def _peer_closed(self, close: tuple[int, str]) -> None:
        """Decide the disconnect with the peer's code and reason, and close TCP: the closing
        handshake is complete (our close frame is out)."""
        code, reason = close
        self._decide(code, reason, f"peer closed the connection with code {code}")
        self._go(State.CLOSED, f"the peer's close frame (code {code})", "RFC 6455 §7.1.5")

    def _bad_data(self, failure: tuple[int, str]) -> None:
        """Fail the connection now, or hold the failure while earlier messages wait for the app."""
        self._failure = failure
        if self.inbox or self.receiving is Receiving.HOLDING:
            # The app may still answer what arrived before the bad bytes: the failure waits until it asks for more.
            why = f"bad data ({self._failure[1]}) behind messages the app has yet to take"
            self._go(State.FAILING, why, _RFC_FAIL)
            self._cancel(Timer.PING, Timer.PONG)
            self._fx.arm_timer(Timer.HOLD, self.timeouts.close_s)
        else:
            self._fail_now()

    def _bad_data_after_close(self, failure: tuple[int, str]) -> None:
        """Decide the failure's code, send FIN and drain: our close frame is already out."""
        self._failure = failure
        self._drain_failed()

    def _fail_now(self, _: Any = None) -> None:
        """Write the failure's close frame (1002, 1007, 1009), decide its code, send FIN and drain."""
        self._write_close(*self._failure)
        self._drain_failed()

    def _drain_failed(self, new: State = State.DRAINING, why: str = "") -> None:
        """Decide the failure's code, and send FIN and drain (or close TCP: ``new`` is CLOSED)."""
        code, text = self._failure
        decided = f"connection failed with code {code} ({text})"
        self._decide(code, text, decided)
        self._go(new, why or decided, _RFC_FAIL, Tcp.ABORT)

    def _ping_due(self, _: bool) -> None:
        """Write a keepalive ping and arm the pong timer."""
        self._pings_sent += 1
        payload = self._pings_sent.to_bytes(4, "big")
        self._write(FrameCodec.control_frame(frames.PING, payload))
        if self.timeouts.ping_timeout_s > 0:
            # From the moment the ping is queued (docs/decisions.md#close-and-ping-timeouts).
            self._ping_payload = payload
            self._fx.arm_timer(Timer.PONG, self.timeouts.ping_timeout_s)
        else:
            self._fx.arm_timer(Timer.PING, self.timeouts.ping_interval_s)

    def _pong_overdue(self, write_blocked: bool) -> None:
        """Write close 1011, decide 1006 and close TCP; while reading is paused, ping again later instead."""
        if not self._reading and not write_blocked:
            # The reader is paused (backpressure), so the pong may be sitting unread.
            self._ping_payload = None
            self._fx.arm_timer(Timer.PING, self.timeouts.ping_interval_s)
            return
        self._write_close(1011, "keepalive ping timeout")
        self._decide(1006, "", "keepalive ping timed out (code 1006)")
        self._go(State.CLOSED, "keepalive ping timed out; close 1011 sent", 'www spec 2.5, "WebSocket"', Tcp.ABORT)

    def _shutdown_open(self, _: None) -> None:
        """Write close 1001, decide 1001 and wait for the peer's close frame."""
        reason = "server shutting down"
        self._write_close(1001, reason)
        self._decide(1001, reason, "the server is shutting down (close code 1001)")
        self._go(State.SHUTTING_DOWN, "server shutdown; close 1001 sent", sections.WS_DISCONNECT)

    # ------------------------------------------------------------------ ending

    def _lost(self, _: Any) -> None:
        """Decide 1006 (no close frame) and close TCP."""
        self._decide(1006, "", "connection lost without a close frame (code 1006)")
        self._go(State.CLOSED, "the peer went away without a close frame", _RFC_LOST, Tcp.ABORT)

    def _lost_while_failing(self, _: Any) -> None:
        """Decide the held failure's code and close TCP: the peer broke the protocol and then left."""
        self._drain_failed(State.CLOSED, "the peer went away after bad data")

    def _close_overdue(self, _: bool) -> None:
        """Decide 1006 and close TCP: the peer did not finish the closing handshake in time."""
        self._decide(1006, "", "the peer did not answer the close frame in time (code 1006)")
        self._go(State.CLOSED, "close timeout: the peer did not finish the closing handshake", _RFC_CLOSE, Tcp.ABORT)

    def _tcp_gone(self, _: Any) -> None:
        """Close TCP; the disconnect is already decided."""
        self._go(State.CLOSED, "the TCP connection ended (EOF or close timeout)", _RFC_CLOSE, Tcp.ABORT)

    def _closed_send(self, message: Message) -> None:
        """Raise ClientDisconnected from send()."""
        raise ClientDisconnected(self.closed_reason, self.close_code)

    def _misuse(self, message: Message) -> None:
        """Raise ASGIProtocolError from send(), naming the message, the state and the section."""
        kind = messages.message_type(message)
        raise ASGIProtocolError(kind, _misuse_text(self.state, kind), self._row.section)

    def _nothing(self, _: Any) -> None:
        """Do nothing."""

    def _discard(self, _: Any) -> None:
        """Discard the bytes: the parser has stopped, or the connection is over."""


def _size(event: Mapping[str, Any]) -> int:
    """Give the payload's size in bytes (text is not encoded when it is ASCII, the common case)."""
    text = event.get("text")
    if text is None:
        return len(event["bytes"])
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _misuse_text(state: State, kind: str) -> str:
    """Say what is wrong with sending ``kind`` in ``state`` (the row gives the section)."""
    if kind not in _APP_INPUTS:
        return "is not a message a websocket connection accepts"
    if state is State.CONNECTING:
        if kind == "websocket.send":
            return "sent before websocket.accept"
        return "sent before websocket.http.response.start"
    if state is State.OPEN or state is State.FAILING:
        if kind == "websocket.accept":
            return "sent twice: the connection is already accepted"
        return "sent after websocket.accept: a denial response is only possible before accepting"
    if kind == "websocket.http.response.start":
        return "sent twice: the denial response has already started"
    return "sent during a denial response; only websocket.http.response.body may follow"


# ---------------------------------------------------------------------- the table

_FRAME_INPUTS = {
    frames.TEXT: Input.MESSAGE,
    frames.BINARY: Input.MESSAGE,
    frames.PING: Input.PING,
    frames.PONG: Input.PONG,
    frames.CLOSE: Input.CLOSE_FRAME,
    frames.FAIL: Input.BAD_DATA,
}

M = WebSocketMachine
S = State
I = Input  # noqa: E741 - the table reads better with one-letter names

_NO_FRAMES = "RFC 6455 §5: frames are parsed only after the 101 and before the end"
_DENYING = (S.DENIAL_START_HELD, S.DENIAL_BODY)
_AFTER_CLOSE = (S.CLOSING, S.SHUTTING_DOWN)  # our close frame is out; the parser runs
_NOT_PARSING = (*_BEFORE_ACCEPT, S.FAILING, S.DRAINING, S.CLOSED)
_ENDED = (*_CLOSING_STATES, S.CLOSED)

_table: TableBuilder[State, Input] = TableBuilder("WebSocket")
_rows = _table.add

# Each row lists exactly the states its input can lead to from its own state.
# -- the app's messages
_rows((S.CONNECTING,), I.ACCEPT, (S.OPEN, S.DRAINING), M._accept, sections.WS_ACCEPT)
# www spec 2.5, "Close - send event": "If this is sent before the socket is accepted, the server must
# close the connection with a HTTP 403 error code (Forbidden), and not complete the WebSocket handshake".
_rows((S.CONNECTING,), I.CLOSE, (S.DRAINING,), M._refuse, sections.WS_CLOSE)
_rows((S.CONNECTING,), I.DENIAL_START, (S.DENIAL_START_HELD,), M._deny_start, sections.WS_DENIAL)
_rows((S.CONNECTING,), I.SEND, (), M._misuse, sections.WS_SEND)
_rows((S.CONNECTING,), I.DENIAL_BODY, (), M._misuse, sections.WS_DENIAL)
_rows((S.DENIAL_START_HELD,), I.DENIAL_BODY, (S.DENIAL_BODY,), M._deny_first_body, sections.WS_DENIAL)
_rows((S.DENIAL_BODY,), I.DENIAL_BODY, (S.DRAINING, S.CLOSED), M._deny_body, sections.WS_DENIAL)
for _input in (I.ACCEPT, I.SEND, I.CLOSE, I.DENIAL_START):
    _rows(_DENYING, _input, (), M._misuse, sections.WS_DENIAL)
_rows((S.OPEN, S.FAILING), I.SEND, (), M._send_data, sections.WS_SEND)
# "If this is sent after the socket is accepted, the server must close the socket with the close code
# passed in the message (or 1000 if none is specified)."
_rows((S.OPEN,), I.CLOSE, (S.CLOSING,), M._send_close, sections.WS_CLOSE)
_rows((S.FAILING,), I.CLOSE, (S.DRAINING,), M._close_failing, sections.WS_CLOSE)
_rows((S.OPEN, S.FAILING), I.ACCEPT, (), M._misuse, sections.WS_ACCEPT)
_rows((S.OPEN, S.FAILING), I.DENIAL_START, (), M._misuse, sections.WS_DENIAL)
_rows((S.OPEN, S.FAILING), I.DENIAL_BODY, (), M._misuse, sections.WS_DENIAL)
# www spec 2.5, "Disconnected Client - send exception": "If send() is called on a closed connection the
# server should raise a server-specific subclass of OSError" (docs/decisions.md#send-after-own-close-raises).
for _input in (I.ACCEPT, I.SEND, I.CLOSE, I.DENIAL_START, I.DENIAL_BODY):
    _rows(_ENDED, _input, (), M._closed_send, sections.WS_CLOSED_SEND)
_rows(tuple(State), I.OTHER_MESSAGE, (), M._misuse, sections.CORE_ERRORS)
# -- receive()
_rows(tuple(s for s in State if s is not S.FAILING), I.RECEIVE, (), M._receive, sections.WS_DISCONNECT)
_rows((S.FAILING,), I.RECEIVE, (S.DRAINING,), M._receive_failing, _RFC_FAIL)
# -- the app ends (docs/decisions.md#app-end-close-codes)
for _input in (I.APP_RETURNED, I.APP_RAISED):
    _rows((S.CONNECTING, S.DENIAL_START_HELD), _input, (S.DRAINING,), M._answer_500, sections.WS_ACCEPT)
    _rows((S.DENIAL_BODY,), _input, (S.CLOSED,), M._app_ended_in_denial, sections.WS_DENIAL)
    _rows((S.FAILING,), _input, (S.DRAINING,), M._fail_now, _RFC_FAIL)
    _rows((S.OPEN,), _input, (S.CLOSING,), M._app_ended_open, sections.WS_CLOSE)
    _rows(_ENDED, _input, (), M._nothing, sections.WS_CLOSE)
# -- the peer's bytes, and the frames inside them
_rows(_BEFORE_ACCEPT, I.BYTES, (), M._buffer_early, "RFC 6455 §4.2.2")
_rows((S.OPEN, *_AFTER_CLOSE), I.BYTES, (), M._parse, "RFC 6455 §5.2")
_rows((S.FAILING, S.DRAINING, S.CLOSED), I.BYTES, (), M._discard, _RFC_FAIL)
_rows((S.OPEN,), I.MESSAGE, (), M._message, sections.WS_RECEIVE)
# RFC 6455 §1.4: "after receiving a control frame indicating the connection should be closed, a peer
# discards any further data received"; refserver drops data after its own close too
# (docs/decisions.md#own-close-then-echo).
_rows(_AFTER_CLOSE, I.MESSAGE, (), M._drop_message, "RFC 6455 §1.4")
# RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response, unless
# it already received a Close frame." After our close frame nothing is sent, a pong included
# (docs/decisions.md#no-pong-after-own-close).
_rows((S.OPEN,), I.PING, (), M._answer_ping, "RFC 6455 §5.5.2")
_rows(_AFTER_CLOSE, I.PING, (), M._nothing, "RFC 6455 §5.5.1")
_rows((S.OPEN,), I.PONG, (), M._pong, "RFC 6455 §5.5.3")
_rows(_AFTER_CLOSE, I.PONG, (), M._nothing, "RFC 6455 §5.5.3")
# RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close frame, the
# endpoint MUST send a Close frame in response." "After both sending and receiving a Close message, an
# endpoint considers the WebSocket connection closed and MUST close the underlying TCP connection."
_rows((S.OPEN,), I.CLOSE_FRAME, (S.CLOSED,), M._peer_close, _RFC_LOST)
_rows(_AFTER_CLOSE, I.CLOSE_FRAME, (S.CLOSED,), M._peer_closed, _RFC_LOST)
# RFC 6455 §7.1.7: "the endpoint SHOULD send a Close frame with an appropriate status code (Section 7.4)
# before proceeding to _Close the WebSocket Connection_" (docs/decisions.md#failing-the-connection).
_rows((S.OPEN,), I.BAD_DATA, (S.FAILING, S.DRAINING), M._bad_data, _RFC_FAIL)
_rows(_AFTER_CLOSE, I.BAD_DATA, (S.DRAINING,), M._bad_data_after_close, _RFC_FAIL)
for _input in (I.MESSAGE, I.PING, I.PONG, I.CLOSE_FRAME, I.BAD_DATA):
    _rows(_NOT_PARSING, _input, (), M._nothing, _NO_FRAMES)
# -- the peer goes away (RFC 6455 §7.1.5: no close frame received, the close code "is considered to be 1006";
# docs/decisions.md#lost-connection-1006)
_rows((*_BEFORE_ACCEPT, S.OPEN, S.CLOSING), I.PEER_GONE, (S.CLOSED,), M._lost, _RFC_LOST)
_rows((S.FAILING,), I.PEER_GONE, (S.CLOSED,), M._lost_while_failing, _RFC_FAIL)
_rows((S.SHUTTING_DOWN, S.DRAINING), I.PEER_GONE, (S.CLOSED,), M._tcp_gone, _RFC_CLOSE)
_rows((S.CLOSED,), I.PEER_GONE, (), M._nothing, _RFC_CLOSE)
# -- timers
_rows((S.CLOSING,), I.CLOSE_TIMEOUT, (S.CLOSED,), M._close_overdue, _RFC_CLOSE)
_rows((S.SHUTTING_DOWN, S.DRAINING), I.CLOSE_TIMEOUT, (S.CLOSED,), M._tcp_gone, _RFC_CLOSE)
_rows((S.FAILING,), I.HOLD_TIMEOUT, (S.DRAINING,), M._fail_now, _RFC_FAIL)
# www spec 2.5, "WebSocket": servers "should handle PING/PONG messages themselves, and send PING messages
# as necessary to ensure the connection is alive" (docs/decisions.md#keepalive-and-limits).
_rows((S.OPEN,), I.PING_DUE, (), M._ping_due, sections.WS)
_rows((S.OPEN,), I.PONG_TIMEOUT, (S.CLOSED,), M._pong_overdue, sections.WS)
for _input, _armed_in, _rule in (  # a timer that fired where it is not armed: nothing to do
    (I.CLOSE_TIMEOUT, _CLOSING_STATES, _RFC_CLOSE),
    (I.HOLD_TIMEOUT, {S.FAILING}, _RFC_FAIL),
    (I.PING_DUE, {S.OPEN}, sections.WS),
    (I.PONG_TIMEOUT, {S.OPEN}, sections.WS),
):
    _rows(tuple(s for s in State if s not in _armed_in), _input, (), M._nothing, _rule)
# -- shutdown (docs/decisions.md#shutdown-1001)
_rows((S.CONNECTING, S.DENIAL_START_HELD), I.SHUTDOWN, (S.DRAINING,), M._shutdown_before_accept, sections.WS_DISCONNECT)
_rows((S.OPEN,), I.SHUTDOWN, (S.SHUTTING_DOWN,), M._shutdown_open, sections.WS_DISCONNECT)
_rows((S.FAILING,), I.SHUTDOWN, (S.DRAINING,), M._fail_now, _RFC_FAIL)
_rows((S.DENIAL_BODY, *_ENDED), I.SHUTDOWN, (), M._nothing, sections.WS_DISCONNECT)

TABLE = _table.build(complete=(State, Input))
WebSocketMachine.rows = TABLE
