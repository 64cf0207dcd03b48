"""One HTTP/1.1 connection, from the first byte to the close or the WebSocket hand-off, as
one sans-IO state machine that owns the ``h11.Connection``.

Covers www spec 2.5, "HTTP": "Request - receive event", "Response Start - send event",
"Response Body - send event", "Disconnect - receive event", and the 2.4 rule that
``send()`` on a closed connection raises an OSError subclass; RFC 9112 for the wire.

Every input returns :class:`HTTPEffects`; the runtime applies them. The inputs
(:class:`Input`) are the app's messages and its ``receive()`` calls, the app returning or
raising, the peer's bytes, the peer going away, the keep-alive and head timeouts, and
server shutdown. ``TABLE`` has one row per (state, input) that can happen: the states it
may lead to, the action and the spec section; a pair without a row is an error naming
the state, the input and the input's section.

What the machine hands the runtime: a request head to run an app instance for
(``HTTPEffects.request``), bytes to write (responses, rejections 400/431/505, ``100
Continue``), keep-alive (the keep-alive timer, ``Tcp.CLOSE``), and the WebSocket upgrade
(``HTTPEffects.upgrade``, a :class:`~refserver.protocol.websocket.WebSocketMachine` over
the same ``h11.Connection``, which still holds the bytes that followed the handshake).
Every h11 error becomes a status or a quiet close here; none reaches the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import h11

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.protocol import handshake, internals, request_checks
from refserver.protocol.effects import Effects, Note, Tcp, Transition
from refserver.protocol.responses import complete_response, reason_phrase, sendable_head
from refserver.protocol.speedups import FastEnum, blank
from refserver.protocol.table import TableBuilder, TableMachine
from refserver.protocol.websocket import Timeouts, WebSocketMachine
from refserver.spec import messages, scopes, sections

Message = Mapping[str, Any]
Headers = list[tuple[bytes, bytes]]

_NO_BODY_STATUSES = (204, 304)
_END_OF_MESSAGE = h11.EndOfMessage()  # immutable: one serves every response
HEAD_TOO_LARGE = "request head larger than the limit (--h11-max-incomplete-event-size)"
REQUEST_LINE_TOO_LONG = "request line longer than the head limit (--h11-max-incomplete-event-size)"


def disconnect_event() -> dict[str, Any]:
    """www spec 2.5, "Disconnect - receive event": a fresh dict on every call, so that an
    app writing into one changes nothing for any other."""
    return {"type": "http.disconnect"}


def scope_http_version(version: bytes) -> str | None:
    """The scope's ``http_version`` for a request line's version (www spec 2.5, "HTTP
    Connection Scope": "1.0", "1.1" or "2"), or None if refserver cannot serve it.

    RFC 9112 §2.3: a higher minor version of HTTP/1 is processed as HTTP/1.1; another
    major version is answered 505 (RFC 9110 §15.6.6).
    """
    if version in (b"1.0", b"1.1"):
        return version.decode("ascii")
    if version.startswith(b"1."):
        return "1.1"
    return None


class State(FastEnum):
    """The one state of an HTTP/1.1 connection."""

    IDLE = "waiting for the next request; the keep-alive timer runs"
    READING_HEAD = "part of a request head has arrived; the keep-alive timer bounds the head"
    AWAITING_START = "request head received, app running; no http.response.start yet"
    # www spec 2.5, "Response Start - send event": the server "need not flush" the start until the first
    # body message, so it is held; this lets a one-message body get a Content-Length.
    START_HELD = "http.response.start held until the first body message"
    SENDING_BODY = "status line and headers sent; body streaming"
    COMPLETE = "response complete; further messages are ignored; the app may still run"
    CLIENT_GONE = "the client left before the response completed; the app still runs"
    UPGRADING = "a WebSocket upgrade request: reading its body up to its end"
    UPGRADED = "handed over to the WebSocket machine"
    CLOSED = "the TCP connection is closed once the queued bytes are written"


# Python 3.11 looks an enum member up as a class attribute (``State.IDLE``) through the hook
# of EnumType.__getattr__, at ten times the cost of a module global; the per-request paths
# name their members through these.
_IDLE, _AWAITING_START, _START_HELD, _SENDING_BODY, _COMPLETE, _CLIENT_GONE, _CLOSED = (
    State.IDLE,
    State.AWAITING_START,
    State.START_HELD,
    State.SENDING_BODY,
    State.COMPLETE,
    State.CLIENT_GONE,
    State.CLOSED,
)
# States in which an app instance runs (a request/response cycle).
APP_STATES = frozenset({State.AWAITING_START, State.START_HELD, State.SENDING_BODY, State.COMPLETE, State.CLIENT_GONE})
# States in which the machine reads a request head (or an upgrade request's body).
_HEAD_STATES = frozenset({State.IDLE, State.READING_HEAD, State.UPGRADING})
# States in which the app returning is an unfinished response.
RESPONSE_PENDING = frozenset({State.AWAITING_START, State.START_HELD, State.SENDING_BODY})


class Input(FastEnum):
    # the app
    START = "http.response.start"
    BODY = "http.response.body"
    OTHER_MESSAGE = "a message of another type"
    RECEIVE = "receive() called"
    APP_RETURNED = "the app returned"
    APP_RAISED = "the app raised"
    # the peer
    BYTES = "bytes from the peer"
    PEER_GONE = "EOF, reset, or a failed write"
    # the keep-alive timer, by the state it fires in
    KEEP_ALIVE_TIMEOUT = "keep-alive timer fired while idle"
    HEAD_TIMEOUT = "keep-alive timer fired while a request head was arriving"
    BODY_TIMEOUT = "the timer fired while a request body was arriving (grace period, then minimum rate)"
    # the server
    SHUTDOWN = "server shutdown"
    SHUTDOWN_TIMEOUT = "the shutdown timeout expired with the app running; the server cancels it"


_APP_INPUTS = {"http.response.start": Input.START, "http.response.body": Input.BODY}
_BYTES, _RECEIVE, _APP_RETURNED, _APP_RAISED, _OTHER_MESSAGE = (  # as the State members above
    Input.BYTES,
    Input.RECEIVE,
    Input.APP_RETURNED,
    Input.APP_RAISED,
    Input.OTHER_MESSAGE,
)

_RFC_MESSAGE = "RFC 9112 §2.2"  # message parsing
_RFC_PERSISTENCE = "RFC 9112 §9.3"  # persistence (keep-alive)
_RFC_CLOSE = "RFC 9112 §9.6"  # tear-down
_RFC_UPGRADE = "RFC 6455 §4.2"
_RFC_OVERLOAD = "RFC 9110 §15.6.4"  # 503 Service Unavailable
_RFC_TIMEOUT = "RFC 9110 §15.5.9"  # 408 Request Timeout
# The section an input is judged by when no row covers it.
_INPUT_SECTIONS = {
    Input.START: sections.HTTP_RESPONSE_START,
    Input.BODY: sections.HTTP_RESPONSE_BODY,
    Input.OTHER_MESSAGE: sections.CORE_ERRORS,
    Input.RECEIVE: sections.HTTP_DISCONNECT,
    Input.APP_RETURNED: sections.HTTP_RESPONSE_BODY,
    Input.APP_RAISED: sections.CORE_ERRORS,
    Input.BYTES: _RFC_MESSAGE,
    Input.PEER_GONE: _RFC_CLOSE,
    Input.KEEP_ALIVE_TIMEOUT: _RFC_PERSISTENCE,
    Input.HEAD_TIMEOUT: _RFC_PERSISTENCE,
    Input.BODY_TIMEOUT: _RFC_TIMEOUT,
    Input.SHUTDOWN: _RFC_CLOSE,
    Input.SHUTDOWN_TIMEOUT: _RFC_OVERLOAD,
}


@dataclass(frozen=True, slots=True)
class Settings:
    """What the machine needs from the configuration."""

    max_head_bytes: int = 16384
    keep_alive_s: float = 5.0
    # A request body must keep arriving: after a grace period, at a minimum rate (0: no limit;
    # docs/decisions.md#request-body-rate).
    body_grace_s: float = 20.0
    body_min_rate_bytes_per_s: float = 500.0
    ws_max_size_bytes: int = 16 * 1024 * 1024
    ws_deflate: bool = True
    ws_timeouts: Timeouts = field(default_factory=Timeouts)


class RequestHead(NamedTuple):
    """A request the runtime runs an app instance for (www spec 2.5, "HTTP Connection Scope").
    (A named tuple: one is made per request, and a tuple is built faster than a frozen
    dataclass.)"""

    method: str
    target: bytes  # the raw request target
    http_version: str  # as the scope has it ("1.0" or "1.1")
    headers: Headers


@dataclass(frozen=True, slots=True)
class Upgrade:
    """The WebSocket hand-off: the machine for the rest of the connection, and the request."""

    machine: WebSocketMachine
    target: bytes
    http_version: str  # the request line's version, as the WebSocket scope has it
    headers: Headers


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the server answered itself (for the log)."""

    what: str  # "request" or "WebSocket handshake"
    reason: str
    status: int


class HTTPEffects(Effects):
    """:class:`Effects`, plus what only an HTTP connection asks for."""

    request: RequestHead | None = None  # run an app instance for this request
    upgrade: Upgrade | None = None  # hand the connection to this WebSocket machine
    keep_alive_s: float | None = None  # arm the keep-alive timer, seconds from now
    cancel_keep_alive: bool = False
    refused: Refusal | None = None  # the server answered (or dropped) a bad request itself
    ended_status: int = 0  # APP_* inputs: the status of the response of the request that ended


class HTTPMachine(TableMachine[State, Input, HTTPEffects]):
    """The sans-IO state of one HTTP/1.1 connection."""

    name = "HTTP"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        date: Callable[[], bytes],
        last_request: bool = False,
        over_limit: bool = False,
    ) -> None:
        """``last_request``: the server is shutting down and took this connection from the
        accept queue: its first request is served (with ``connection: close``), then it closes
        (docs/decisions.md#shutdown-serves-accept-queue).
        ``over_limit``: the server is at ``--limit-concurrency``: the first request (HTTP or a
        WebSocket handshake) is answered 503 before any app sees it, then it closes
        (docs/decisions.md#limit-concurrency)."""
        self.over_limit = over_limit
        # Whether state changes are recorded in the effects (``transitions``): only a trace
        # reads them, and the runtime turns this off when the connection is not traced.
        self.recording = True
        self.settings = settings or Settings()
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.settings.max_head_bytes)
        self._unparsed = internals.h11_unparsed(self.conn)  # live: what h11 holds unparsed
        self._date_source = date
        self.state = State.IDLE
        self.requests = 0  # request heads handed out so far
        self.shutting_down = last_request
        self.client_gone_reason: str | None = None
        self._eof_fed = False
        self._request: h11.Request | None = None
        # The bytes of the read that starts a request head, when h11 held nothing before it
        # (then they begin with the head, and the head checks need no copy of h11's buffer).
        self._head_source: bytes | None = None
        self._reading = True
        self._fx = HTTPEffects()
        self._row = TABLE[(State.IDLE, Input.BYTES)]
        self._upgrade_headers: Headers = []
        self._new_cycle()
        # The connection opened: the keep-alive timer bounds the wait for the first head.
        self._fx.keep_alive_s = self.settings.keep_alive_s

    def _new_cycle(self) -> None:
        """Forget the last request/response cycle."""
        self.method = b""
        self.date = b""
        self.status = 0  # set by http.response.start (or 500)
        self._held: h11.Response | None = None  # the head of http.response.start, until the first body
        self._held_has_length = False  # the app's headers include a content-length
        # receive side: at most one body chunk waits for the app (backpressure).
        self._pending_body: dict[str, Any] | None = None
        self.request_complete = False
        self._continue_owed = False
        self.must_close = False  # the connection cannot carry another request after this one
        # The request body's timer (docs/decisions.md#request-body-rate): the seconds it has run
        # in this window when it last fired (the sum of the intervals armed; the machine reads no
        # clock), and the body bytes received in the window.
        self._body_timer_s = 0.0
        self._body_received = 0
        self._chunked = False  # the request body is chunked (its chunk lines are checked)

    # ------------------------------------------------------------------ the contract

    def opened(self) -> HTTPEffects:
        """The effects of the connection opening (the keep-alive timer)."""
        return self._take()

    def app_send(self, message: Message) -> HTTPEffects:
        """The app's ``send(message)``. Raises the app's error (a misuse, a closed
        connection) without changing anything."""
        state = self.state
        try:
            kind = message.get("type") if type(message) is dict else None
            if type(kind) is not str:
                kind = messages.message_type(message)  # not a dict, or no str type: raises
            return self._step(_APP_INPUTS.get(kind, _OTHER_MESSAGE), message)
        except ASGIProtocolError as exc:
            raise exc.with_state(state.name) from None

    def app_receive(self) -> HTTPEffects:
        """The app's ``receive()``: ``event`` is what it returns now, or None when it has to
        wait for ``wake_app``."""
        return self._step(_RECEIVE, None)

    def app_ended(self, *, raised: bool) -> HTTPEffects:
        return self._step(_APP_RAISED if raised else _APP_RETURNED, None)

    def receive_data(self, data: bytes) -> HTTPEffects:
        """Bytes from the peer (never empty: EOF is :meth:`peer_gone`)."""
        return self._step(_BYTES, data)

    def peer_gone(self, why: str = "peer closed the connection") -> HTTPEffects:
        """EOF, a reset or a failed write."""
        return self._step(Input.PEER_GONE, why)

    def keep_alive_timeout(self) -> HTTPEffects:
        """The timer armed through ``keep_alive_s`` fired: the keep-alive timer, or, while an
        app runs, the request body's."""
        state = self.state
        if state in APP_STATES:
            return self._step(Input.BODY_TIMEOUT, None)
        reading = state is State.READING_HEAD or state is State.UPGRADING
        return self._step(Input.HEAD_TIMEOUT if reading else Input.KEEP_ALIVE_TIMEOUT, None)

    def timer_rule(self) -> tuple[str, str]:
        """The section and the name of the timer that :meth:`keep_alive_timeout` stands for now
        (for the trace)."""
        if self.state in APP_STATES:
            return _RFC_TIMEOUT, "request body timer (grace period, then minimum rate)"
        return _RFC_PERSISTENCE, "keep-alive timeout"

    def server_shutdown(self) -> HTTPEffects:
        return self._step(Input.SHUTDOWN, None)

    def shutdown_timeout(self) -> HTTPEffects:
        """The server's shutdown timeout expired while an app instance runs: the server is about
        to cancel it. ``ended_status`` is the status the client got (0: none)."""
        return self._step(Input.SHUTDOWN_TIMEOUT, None)

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry the next request (h11 decides the wire side)."""
        return (
            not self.must_close
            and not self.shutting_down
            and self.client_gone_reason is None
            and self.conn.our_state is h11.DONE
            and self.conn.their_state is h11.DONE
        )

    # ------------------------------------------------------------------ dispatch

    _new_effects = blank(HTTPEffects)

    def _section_of(self, given: Input) -> str:
        return _INPUT_SECTIONS[given]

    def _wants_read(self) -> bool:
        state = self.state
        if state in APP_STATES:  # (first: four of a request's five inputs come in these)
            if self.client_gone_reason is not None:
                return False
            if not self.request_complete:
                return self._pending_body is None  # backpressure: the app has the last chunk
            # Keep reading to notice a disconnect, until enough pipelined bytes are buffered.
            return len(self._unparsed) <= self.settings.max_head_bytes
        return state in _HEAD_STATES and not self._eof_fed

    def _go(self, new: State, why: str, section: str) -> None:
        """Change to ``new``, which the current row must list (``TableMachine._enter``, written
        out: a request makes five of these)."""
        old = self.state
        if new not in self._row.next:  # pragma: no cover - a bug in a row
            raise RuntimeError(f"{self._row.input.name} in {old.name} led to {new.name}, which its row does not list")
        self.state = new
        if self.recording:
            self._fx.add_transition(Transition(old.name, new.name, section, why))
        if new is _CLOSED:
            self._fx.tcp = Tcp.CLOSE
            self._fx.cancel_keep_alive = True
            self._fx.keep_alive_s = None

    def _write(self, data: bytes) -> None:
        if data:
            self._fx.add_write(data)

    # ------------------------------------------------------------------ request heads

    def _bytes_head(self, data: bytes) -> None:
        if not self._unparsed:
            self._head_source = data
        self.conn.receive_data(data)
        self._read_head()

    def _read_head(self) -> None:
        """Parse the next request head from what h11 holds."""
        conn = self.conn
        limit = self.settings.max_head_bytes
        buffered = len(self._unparsed)
        # The raw bytes that begin with the head (h11 drops them from its buffer as it parses).
        raw = self._head_source or bytes(self._unparsed[: limit + 1])
        self._head_source = None
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if status == 431 and request_checks.request_line_too_long(self._unparsed, limit):
                status = 414
            self._refuse(status, str(exc))
            return
        if event is h11.NEED_DATA:
            if self.state is State.IDLE and len(self._unparsed):
                self._go(State.READING_HEAD, "the first bytes of a request head arrived", _RFC_MESSAGE)
            return
        if not isinstance(event, h11.Request):
            # ConnectionClosed: the peer left between requests (RFC 9112 §9.6).
            self._go(State.CLOSED, "the peer closed the connection between requests", _RFC_CLOSE)
            return
        # h11 enforces the limit only on a head that is still incomplete; one that arrived
        # whole in a single read is held to the same limit here, so the answer does not
        # depend on how TCP split the bytes.
        head_bytes = buffered - len(self._unparsed)
        if head_bytes > limit:
            self._refuse(414 if request_checks.request_line_too_long(raw, limit) else 431, "")
            return
        version = "1.1" if event.http_version == b"1.1" else scope_http_version(event.http_version)
        if version is None:
            self._refuse(505, f"HTTP/{event.http_version.decode('ascii', 'replace')} is not supported")
            return
        if event.method == b"CONNECT":
            # RFC 9110 §9.3.6: CONNECT asks for a tunnel, which ASGI has no way to carry; 501 is
            # the answer for a method the server does not implement (§15.6.2; docs/decisions.md#connect-501).
            self._refuse(501, "CONNECT (a tunnel) is not supported")
            return
        if self.over_limit:
            self._fx.refused = Refusal("request", "the server is at its --limit-concurrency", 503)
            self._answer(503, b"Service Unavailable: too many connections\n")
            self._go(State.CLOSED, "over the concurrency limit: 503 sent", _RFC_OVERLOAD)
            return
        self._request = event
        headers = internals.h11_header_pairs(event.headers)
        has_upgrade = has_te = has_cl = has_expect = False
        length = b""
        for name, value in headers:
            if name == b"upgrade":
                has_upgrade = True
            elif name == b"transfer-encoding":
                has_te = True
            elif name == b"content-length":
                has_cl = True
                length = value
            elif name == b"expect":
                has_expect = True
        self._chunked = has_te
        if length or request_checks.suspect(raw, 0, head_bytes) is not None:
            defect = self._strict_head(raw, head_bytes, length)
            if defect is not None:
                self._refuse(400, defect)
                return
        if event.target[0] != 0x2F:  # not origin-form ("/...")
            try:
                authority = request_checks.absolute_form_authority(event.target)
            except ValueError as exc:
                self._refuse(400, str(exc))
                return
            if authority is not None:
                headers = request_checks.with_host(headers, authority)
        if has_upgrade and handshake.asks_for_websocket(headers):
            # The timer keeps running: the upgrade request's body (normally none) must arrive
            # within the same timeout as its head (docs/decisions.md#upgrade-body-timeout).
            self._go(State.UPGRADING, "a WebSocket upgrade request", _RFC_UPGRADE)
            if has_te and has_cl:
                # RFC 9112 §6.1: the body's framing is ambiguous, so it is not read; the
                # handshake is refused (docs/decisions.md#strict-request-framing).
                self._hand_over(headers)
            else:
                self._read_upgrade_body(headers)
            return
        fx = self._fx
        fx.cancel_keep_alive = True
        fx.keep_alive_s = None
        # The cycle's fields were reset when the last one ended (or the connection opened).
        self.requests += 1
        self.method = event.method
        self.date = self._date_source()
        self._continue_owed = has_expect and conn.they_are_waiting_for_100_continue
        if has_te and has_cl:
            # RFC 9112 §6.1: such a request may be an attempt at request smuggling; h11
            # frames it by Transfer-Encoding, and the server "MUST close the connection
            # after responding to such a request".
            self.must_close = True
        self._fx.request = RequestHead(event.method.decode("ascii"), event.target, version, headers)
        self._go(_AWAITING_START, "request head received; the app runs", sections.HTTP_RESPONSE_START)
        self._read_body()
        if not self.request_complete and self.client_gone_reason is None and self.settings.body_grace_s:
            # The body is still to come: its timer starts with the grace period.
            self._body_timer_s = fx.keep_alive_s = self.settings.body_grace_s

    def _strict_head(self, raw: bytes, head_bytes: int, length: bytes) -> str | None:
        """Why a head h11 accepted is refused (``request_checks``), or None: an obs-fold or a
        control byte in it, a Content-Length over 2**63 - 1 (docs/decisions.md#obs-fold,
        docs/decisions.md#strict-request-framing). A malformed chunk line is found as the body
        is read (docs/decisions.md#malformed-body-400)."""
        defect = request_checks.head_defect(raw, head_bytes)
        if defect is None and length:
            defect = request_checks.content_length_defect(length)
        return defect

    def _chunk_defect(self) -> str | None:
        """Why the chunk-size line h11 reads next is refused, or None (also when h11 is not
        about to read one, or its CRLF has not arrived)."""
        start = internals.h11_chunk_line_start(self.conn)
        if start is None:
            return None
        unparsed = self._unparsed
        end = unparsed.find(b"\r\n", start)
        if end == -1:
            return None
        return request_checks.chunk_line_defect(unparsed[start:end])

    def _next_body_event(self) -> Any:
        """h11's next event of a chunked request body; a chunk line h11 would accept but RFC
        9112 §7.1.1 does not is raised as h11 raises a bad chunk size."""
        defect = self._chunk_defect()
        if defect is not None:
            raise h11.RemoteProtocolError(defect, error_status_hint=400)
        return self.conn.next_event()

    def _refuse(self, status: int, reason: str) -> None:
        """Malformed request line or headers: 400; head over the limit: 431 (414 when the
        request line alone is); another major version: 505. The connection closes after the
        answer."""
        if status == 431:
            reason = HEAD_TOO_LARGE  # h11 says "Receive buffer too long"
        elif status == 414:
            reason = REQUEST_LINE_TOO_LONG
        self._fx.refused = Refusal("request", reason, status)
        self._answer(status, f"{reason}\n".encode())
        self._go(State.CLOSED, f"bad request (answered {status}): {reason}", _RFC_MESSAGE)

    def _answer(
        self,
        status: int,
        body: bytes,
        headers: Headers | None = None,
        *,
        date: bytes | None = None,
        head_only: bool = False,
    ) -> None:
        """A whole response of the server's own, if h11 can still send one."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            data = complete_response(
                self.conn, status, body, headers=headers, date=date or self._date_source(), head_only=head_only
            )
        except h11.LocalProtocolError:
            return
        self._write(data)

    def _eof_head(self, why: str) -> None:
        """The peer left before (or while) sending a head: h11 decides between a quiet
        close and "peer unexpectedly closed connection" (answered 400)."""
        self.client_gone_reason = why
        if not self._eof_fed:
            self._eof_fed = True
            self.conn.receive_data(b"")
        self._read_head()
        if self.state is not State.CLOSED:  # pragma: no cover - h11 always decides at EOF
            self._go(State.CLOSED, "the peer left", _RFC_CLOSE)

    def _idle_timeout(self, _: None) -> None:
        self._go(State.CLOSED, "keep-alive timeout: no request arrived", _RFC_PERSISTENCE)

    def _head_timeout(self, _: None) -> None:
        """Close quietly: the request head did not complete in time."""
        self._go(State.CLOSED, "keep-alive timeout: the request head did not complete in time", _RFC_PERSISTENCE)

    def _upgrade_body_timeout(self, _: None) -> None:
        """Close quietly: the upgrade request's body did not arrive in time (no app saw it)."""
        self._go(State.CLOSED, "keep-alive timeout: the upgrade request's body did not arrive in time", _RFC_UPGRADE)

    def _shutdown_idle(self, _: None) -> None:
        self.shutting_down = True
        self._go(State.CLOSED, "server shutdown: no request in flight", _RFC_CLOSE)

    # ------------------------------------------------------------------ the upgrade

    def _bytes_upgrade(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._read_upgrade_body()

    def _read_upgrade_body(self, headers: Headers | None = None) -> None:
        """RFC 6455 §4.2: read the upgrade request's (normally empty) body to its end, check
        the handshake, then hand the connection over."""
        if headers is not None:
            self._upgrade_headers = headers
        conn = self.conn
        while True:
            try:
                event = self._next_body_event() if self._chunked else conn.next_event()
            except h11.RemoteProtocolError as exc:
                # A malformed body (e.g. a bad chunk size) is a bad request like any other.
                self._refuse(exc.error_status_hint, str(exc))
                return
            if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                break
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.ConnectionClosed):  # pragma: no cover - EOF is PEER_GONE
                self._go(State.CLOSED, "the peer left during the upgrade request", _RFC_CLOSE)
                return
        self._hand_over(self._upgrade_headers)

    def _hand_over(self, headers: Headers) -> None:
        """Check the handshake, then hand the connection to a WebSocket machine."""
        conn = self.conn
        request = self._request
        if request is None:  # pragma: no cover - UPGRADING implies a request
            raise RuntimeError("UPGRADING without a request")
        checked = handshake.validate_request(request.method, request.http_version, headers)
        if isinstance(checked, handshake.Rejection):
            self._fx.refused = Refusal("WebSocket handshake", checked.reason, checked.status)
            self._answer(checked.status, checked.reason.encode() + b"\n", checked.headers)
            self._go(State.CLOSED, f"bad WebSocket handshake (answered {checked.status})", _RFC_UPGRADE)
            return
        settings = self.settings
        machine = WebSocketMachine(
            conn,
            key=checked,
            subprotocols=scopes.parse_subprotocols(headers),
            deflate=handshake.negotiate_deflate(headers) if settings.ws_deflate else None,
            max_size_bytes=settings.ws_max_size_bytes,
            timeouts=settings.ws_timeouts,
        )
        self._fx.cancel_keep_alive = True
        self._fx.keep_alive_s = None
        self._fx.upgrade = Upgrade(machine, request.target, request.http_version.decode("ascii"), headers)
        self._go(State.UPGRADED, "valid WebSocket handshake; handed to the WebSocket machine", _RFC_UPGRADE)

    def _gone_upgrading(self, why: str) -> None:
        self.client_gone_reason = why
        self._go(State.CLOSED, "the peer left during the upgrade request", _RFC_CLOSE)

    def _shutdown_upgrading(self, _: None) -> None:
        # The upgrade goes on; the WebSocket machine refuses it with 503 at once
        # (docs/decisions.md#shutdown-1001).
        self.shutting_down = True

    # ------------------------------------------------------------------ the request body

    def _bytes_body(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._read_body()

    def _read_body(self) -> None:
        """Hand the body to the app one chunk at a time ("Request - receive event"): all
        that h11 holds, joined, once the app has taken the last chunk."""
        if self.request_complete or self._pending_body is not None or self.client_gone_reason is not None:
            return
        chunks: list[bytes] = []
        while True:
            try:
                event = self._next_body_event() if self._chunked else self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self.state is State.AWAITING_START or self.state is State.START_HELD:
                    # Nothing of the response is on the wire yet: the bad framing is answered
                    # like a bad head (RFC 9112 §7.1: an invalid chunk size is a bad request;
                    # docs/decisions.md#malformed-body-400).
                    self.status = exc.error_status_hint
                    self._answer(self.status, f"malformed request body: {exc}\n".encode())
                self._lose_client(f"malformed request body: {exc}")
                return
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
                self._body_received += len(event.data)
                continue
            if isinstance(event, h11.EndOfMessage):
                self._pending_body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                self.request_complete = True
                self._fx.wake_app = True
                if self._body_timer_s:
                    self._fx.cancel_keep_alive = True  # the body's timer
                return
            if chunks:  # NEED_DATA with a chunk in hand: deliver it, then read on
                self._pending_body = {"type": "http.request", "body": b"".join(chunks), "more_body": True}
                self._fx.wake_app = True
            return

    def _body_timeout(self, _: None) -> None:
        """A request body too slow for its grace period and minimum rate is cut (408 if no response).

        Like Apache's mod_reqtimeout, the body may take the grace period, plus one second for
        every ``body_min_rate_bytes_per_s`` bytes that arrive; the timer then fires again at that
        later time. Too slow: 408 Request Timeout when nothing of the response was sent, else the
        connection is cut; the app gets http.disconnect
        (RFC 9110 §15.5.9: "the server did not receive a complete request message within the time
        that it was prepared to wait"; docs/decisions.md#request-body-rate)."""
        if self.request_complete or self.client_gone_reason is not None or not self._body_timer_s:
            return  # a timer that fired as the body completed
        settings = self.settings
        if self._pending_body is not None:
            # The app has not taken the last chunk, so the server is not reading: the client is
            # not to blame. A new window starts.
            self._body_timer_s = self._fx.keep_alive_s = settings.body_grace_s
            self._body_received = 0
            return
        allowed_s = settings.body_grace_s + self._body_received / settings.body_min_rate_bytes_per_s
        if allowed_s > self._body_timer_s:
            self._fx.keep_alive_s = allowed_s - self._body_timer_s
            self._body_timer_s = allowed_s
            return
        why = (
            f"request body too slow: {self._body_received} bytes in {allowed_s:g} s, under the minimum rate of "
            f"{settings.body_min_rate_bytes_per_s:g} bytes/s after the {settings.body_grace_s:g} s grace period"
        )
        if self.state is State.AWAITING_START or self.state is State.START_HELD:
            self._held = None
            self.status = 408
            self._fx.refused = Refusal("request", why, 408)
            self._answer(408, b"Request Timeout: the request body arrived too slowly\n")
        self._lose_client(why)

    def _lose_client(self, why: str) -> None:
        """The client is gone (or broke the body framing): "Disconnect - receive event"."""
        if self.client_gone_reason is None:
            self.client_gone_reason = why
        self.must_close = True
        self._fx.wake_app = True
        if self.state in RESPONSE_PENDING:
            self._go(State.CLIENT_GONE, f"the client is gone ({why})", sections.HTTP_DISCONNECT)

    def _gone_in_cycle(self, why: str) -> None:
        self._lose_client(why)

    def _buffer(self, data: bytes) -> None:
        """Bytes behind a complete request body (a pipelined request) wait in h11's
        buffer until the next cycle."""
        self.conn.receive_data(data)

    def _shutdown_cycle(self, _: None) -> None:
        # The response in flight may finish; then the connection closes.
        self.shutting_down = True

    # ------------------------------------------------------------------ receive()

    def _receive(self, _: None) -> None:
        fx = self._fx
        # www spec 2.5, "Disconnect - receive event": "Sent to the application if receive
        # is called after a response has been sent", on every such call; request body the
        # app left unread is not delivered after that (docs/decisions.md).
        if self.state is _COMPLETE:
            fx.event = disconnect_event()
            return
        if self._pending_body is not None:
            fx.event, self._pending_body = self._pending_body, None
            if not self.request_complete:
                self._read_body()  # the next chunk, if h11 holds one
            return
        # ... "or after the HTTP connection has been closed": body that fully arrived
        # before the connection was lost is still delivered first.
        if self.state is _CLIENT_GONE:
            fx.event = disconnect_event()
            return
        if self._continue_owed:
            # The first time the app waits for the body: 100 Continue if the client waits
            # for it (RFC 9110 §10.1.1; docs/decisions.md#expect-100-continue).
            self._continue_owed = False
            if self.state is State.AWAITING_START and self.conn.they_are_waiting_for_100_continue:
                # Same status-line shape as every other response: with its reason phrase.
                self._write(
                    self.conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=reason_phrase(100)))
                    or b""
                )

    # ------------------------------------------------------------------ app -> peer

    def _hold_start(self, message: Message) -> None:
        message = messages.validate(message, "http.response.start")
        if message.get("trailers", False):
            raise ASGIProtocolError(
                "http.response.start",
                "asks for trailers, but the http.response.trailers extension is not advertised",
                sections.HTTP_TRAILERS,
            )
        headers: Headers = []
        has_date = has_connection = has_length = False
        for name, value in message.get("headers", ()):
            if name == b"transfer-encoding":  # www spec 2.5: the server chooses framing
                continue
            if name == b"date":
                has_date = True
            elif name == b"connection":
                has_connection = True
            elif name == b"content-length":
                has_length = True
            headers.append((name, value))
        if not has_date:
            headers.append((b"date", self.date))
        if (self.must_close or self.shutting_down) and not has_connection:
            headers.append((b"connection", b"close"))  # tell the client this connection ends
        status = message["status"]
        # Built (and so checked by h11) now: a head that cannot be sent raises from this send().
        self._held = sendable_head(status, headers, "http.response.start", sections.HTTP_RESPONSE_START)
        self._held_has_length = has_length
        self.status = status
        self._go(_START_HELD, "http.response.start held until the first body message", sections.HTTP_RESPONSE_START)

    def _first_body(self, message: Message) -> None:
        messages.validate_http_response_body(message)
        body = bytes(message.get("body", b""))
        more = message.get("more_body", False)
        head = self._held
        if head is None:  # pragma: no cover - START_HELD implies a held head
            raise RuntimeError("START_HELD without a head")
        if not more and not self._held_has_length and self.status not in _NO_BODY_STATUSES:
            # The whole body is known: frame it with Content-Length (for HEAD too, where
            # it tells what a GET would have carried; RFC 9110 §9.3.2).
            head = internals.h11_response_with_header(head, b"content-length", str(len(body)).encode())
        data = self._h11_send(head, "http.response.start")
        self._held = None
        self._go(_SENDING_BODY, f"HTTP {self.status} status line and headers sent", sections.HTTP_RESPONSE_BODY)
        try:
            out = data + self._body_bytes(body, more)
        except ASGIProtocolError as exc:
            # h11 took the head but refuses the body (it contradicts the app's own
            # Content-Length): nothing is written, so a response that lies about its length
            # never reaches the wire; the app's send() raises once this is applied.
            self._fx.error = exc.with_state(self.state.name)
            return
        self._fx.add_write(out)  # never empty: it holds the head
        if not more:
            self._complete()

    def _next_body(self, message: Message) -> None:
        messages.validate_http_response_body(message)
        more = message.get("more_body", False)
        self._write(self._body_bytes(bytes(message.get("body", b"")), more))
        if not more:
            self._complete()

    def _body_bytes(self, body: bytes, more: bool) -> bytes:
        """The wire bytes of a body message (the two h11 sends of ``_h11_send``, written out)."""
        out = b""
        conn = self.conn
        try:
            # HEAD, 204 and 304 responses carry no body whatever the app sends (RFC 9110
            # §9.3.2, §15.3.5, §15.4.5); h11 frames them with length 0.
            if body and self.method != b"HEAD" and self.status not in _NO_BODY_STATUSES:
                out = conn.send(h11.Data(data=body)) or b""
            if not more:
                out += conn.send(_END_OF_MESSAGE) or b""
        except h11.LocalProtocolError as exc:
            self.must_close = True
            raise ASGIProtocolError(
                "http.response.body", f"cannot be sent: {exc}", sections.HTTP_RESPONSE_BODY
            ) from None
        return out

    def _complete(self) -> None:
        self._go(_COMPLETE, "the last body message was sent", sections.HTTP_RESPONSE_BODY)
        self._fx.wake_app = True  # a waiting receive() now returns http.disconnect

    def _h11_send(self, event: h11.Event, kind: str) -> bytes:
        try:
            return self.conn.send(event) or b""
        except h11.LocalProtocolError as exc:
            self.must_close = True
            section = sections.HTTP_RESPONSE_BODY if kind == "http.response.body" else sections.HTTP_RESPONSE_START
            raise ASGIProtocolError(kind, f"cannot be sent: {exc}", section) from None

    def _ignore(self, message: Message) -> None:
        # www spec 2.5, "Response Body - send event": after completion "any further messages on the
        # channel will be ignored" (docs/decisions.md#after-complete-ignored).
        self._fx.add_note(
            Note("ignored", f"{message.get('type')} after the response completed", sections.HTTP_RESPONSE_BODY)
        )

    def _closed_send(self, message: Message) -> None:
        # www spec 2.5, "Disconnected Client - send exception": send() on a closed connection raises an
        # OSError subclass.
        raise ClientDisconnected(self.client_gone_reason or "client disconnected")

    def _misuse(self, message: Message) -> None:
        raise _misuse(messages.message_type(message))

    # ------------------------------------------------------------------ the app ends

    def _ended_pending(self, _: None) -> None:
        """The app ended before its response completed. Nothing reached the wire (not
        started, or the start held): 500. Mid-body: the connection is closed, never
        reused (docs/decisions.md#http-app-ends-incomplete)."""
        self.must_close = True
        if self.state is State.SENDING_BODY:
            self._fx.ended_status = self.status
            self._go(State.CLOSED, "the app ended mid-body; the response cannot be completed", sections.CORE_ERRORS)
            return
        self.status = 500
        self._fx.ended_status = 500
        self._answer(500, b"Internal Server Error\n", date=self.date, head_only=self.method == b"HEAD")
        self._go(State.CLOSED, "the app ended without a response; 500 sent", sections.CORE_ERRORS)

    def _cancelled_pending(self, _: None) -> None:
        """The app is cancelled at the shutdown timeout before its response completed
        (docs/decisions.md#shutdown-timeout-503). Nothing reached the wire: 503 with connection: close (RFC 9110
        §15.6.4: the server cannot handle the request now). Mid-body: the connection is closed."""
        self.must_close = True
        if self.state is State.SENDING_BODY:
            self._fx.ended_status = self.status
            self._go(State.CLOSED, "cancelled at the shutdown timeout mid-body; the response is cut", _RFC_OVERLOAD)
            return
        self.status = 503
        self._fx.ended_status = 503
        self._answer(
            503,
            b"Service Unavailable: the server is shutting down\n",
            date=self.date,
            head_only=self.method == b"HEAD",
        )
        self._go(State.CLOSED, "cancelled at the shutdown timeout before a response; 503 sent", _RFC_OVERLOAD)

    def _cancelled_after(self, _: None) -> None:
        """The app is cancelled at the shutdown timeout after its response completed, or after
        the client left: the connection closes."""
        self._fx.ended_status = self.status
        self._go(State.CLOSED, "the app is cancelled at the shutdown timeout", _RFC_CLOSE)

    def _ended_gone(self, _: None) -> None:
        self._fx.ended_status = self.status
        self._go(State.CLOSED, "the app ended after the client left", sections.HTTP_DISCONNECT)

    def _ended_complete(self, _: None) -> None:
        self._fx.ended_status = self.status
        if not self.keep_alive:
            self._go(State.CLOSED, "response complete; the connection cannot be reused", _RFC_PERSISTENCE)
            return
        self.conn.start_next_cycle()
        self._new_cycle()
        self._go(_IDLE, "response complete; waiting for the next request", _RFC_PERSISTENCE)
        self._fx.cancel_keep_alive = False
        self._fx.keep_alive_s = self.settings.keep_alive_s
        if self._unparsed:
            self._read_head()  # a pipelined request is waiting already

    def _nothing(self, _: Any) -> None:
        """Nothing to do."""


def _misuse(kind: str) -> ASGIProtocolError:
    if kind == "http.response.body":
        return ASGIProtocolError(kind, "sent before http.response.start", sections.HTTP_RESPONSE_BODY)
    if kind == "http.response.start":
        return ASGIProtocolError(kind, "sent twice: the response has already started", sections.HTTP_RESPONSE_START)
    return ASGIProtocolError(kind, "is not a message an http connection accepts", sections.CORE_ERRORS)


# ---------------------------------------------------------------------- the table


M = HTTPMachine
S = State
I = Input  # noqa: E741 - the table reads better with one-letter names

_table: TableBuilder[State, Input] = TableBuilder("HTTP")
_rows = _table.add


_HEAD = (S.IDLE, S.READING_HEAD)
_AFTER_HEAD = (S.AWAITING_START, S.UPGRADING)  # a head may lead to a request or an upgrade
_NEXT_REQUEST = (S.READING_HEAD, *_AFTER_HEAD, S.CLIENT_GONE, S.UPGRADED, S.CLOSED)  # what parsing a head may lead to
_CYCLE = tuple(APP_STATES)
_NO_APP = (S.IDLE, S.READING_HEAD, S.UPGRADING, S.UPGRADED, S.CLOSED)

# -- the app's messages (an app runs only in the cycle states; the runtime makes sure)
_rows((S.AWAITING_START,), I.START, (S.START_HELD,), M._hold_start, sections.HTTP_RESPONSE_START)
_rows((S.AWAITING_START,), I.BODY, (), M._misuse, sections.HTTP_RESPONSE_BODY)
_rows((S.START_HELD,), I.START, (), M._misuse, sections.HTTP_RESPONSE_START)
_rows((S.START_HELD,), I.BODY, (S.SENDING_BODY, S.COMPLETE), M._first_body, sections.HTTP_RESPONSE_BODY)
_rows((S.SENDING_BODY,), I.START, (), M._misuse, sections.HTTP_RESPONSE_START)
_rows((S.SENDING_BODY,), I.BODY, (S.COMPLETE,), M._next_body, sections.HTTP_RESPONSE_BODY)
_rows(tuple(RESPONSE_PENDING), I.OTHER_MESSAGE, (), M._misuse, sections.CORE_ERRORS)
for _input in (I.START, I.BODY, I.OTHER_MESSAGE):
    _rows((S.COMPLETE,), _input, (), M._ignore, sections.HTTP_RESPONSE_BODY)
    _rows((S.CLIENT_GONE,), _input, (), M._closed_send, sections.WS_CLOSED_SEND)
# -- receive()
_rows(_CYCLE, I.RECEIVE, (), M._receive, sections.HTTP_DISCONNECT)
# -- the app ends
for _input in (I.APP_RETURNED, I.APP_RAISED):
    _rows(tuple(RESPONSE_PENDING), _input, (S.CLOSED,), M._ended_pending, sections.CORE_ERRORS)
    _rows((S.CLIENT_GONE,), _input, (S.CLOSED,), M._ended_gone, sections.HTTP_DISCONNECT)
    _rows((S.COMPLETE,), _input, (S.IDLE, S.CLOSED, *_NEXT_REQUEST), M._ended_complete, _RFC_PERSISTENCE)
# -- the peer's bytes
_rows(_HEAD, I.BYTES, _NEXT_REQUEST, M._bytes_head, _RFC_MESSAGE)
_rows((S.UPGRADING,), I.BYTES, (S.UPGRADED, S.CLOSED), M._bytes_upgrade, _RFC_UPGRADE)
_rows(tuple(RESPONSE_PENDING), I.BYTES, (S.CLIENT_GONE,), M._bytes_body, "RFC 9112 §6")
_rows((S.COMPLETE, S.CLIENT_GONE), I.BYTES, (), M._buffer, "RFC 9112 §9.3.2")
_rows((S.CLOSED,), I.BYTES, (), M._nothing, _RFC_CLOSE)
# -- the peer goes away
_rows(_HEAD, I.PEER_GONE, (S.CLOSED,), M._eof_head, _RFC_CLOSE)
_rows((S.UPGRADING,), I.PEER_GONE, (S.CLOSED,), M._gone_upgrading, _RFC_CLOSE)
_rows(_CYCLE, I.PEER_GONE, (S.CLIENT_GONE,), M._gone_in_cycle, sections.HTTP_DISCONNECT)
_rows((S.UPGRADED, S.CLOSED), I.PEER_GONE, (), M._nothing, _RFC_CLOSE)
# -- the keep-alive timer
_rows((S.IDLE,), I.KEEP_ALIVE_TIMEOUT, (S.CLOSED,), M._idle_timeout, _RFC_PERSISTENCE)
_rows((S.READING_HEAD,), I.HEAD_TIMEOUT, (S.CLOSED,), M._head_timeout, _RFC_PERSISTENCE)
_rows((S.UPGRADING,), I.HEAD_TIMEOUT, (S.CLOSED,), M._upgrade_body_timeout, _RFC_UPGRADE)
# -- the request body's timer (grace period, then minimum rate)
_rows(tuple(RESPONSE_PENDING), I.BODY_TIMEOUT, (S.CLIENT_GONE,), M._body_timeout, _RFC_TIMEOUT)
_rows((S.COMPLETE, S.CLIENT_GONE), I.BODY_TIMEOUT, (), M._body_timeout, _RFC_TIMEOUT)
# -- shutdown
_rows(_HEAD, I.SHUTDOWN, (S.CLOSED,), M._shutdown_idle, _RFC_CLOSE)
_rows((S.UPGRADING,), I.SHUTDOWN, (), M._shutdown_upgrading, sections.WS_DISCONNECT)
_rows(_CYCLE, I.SHUTDOWN, (), M._shutdown_cycle, _RFC_CLOSE)
_rows((S.UPGRADED, S.CLOSED), I.SHUTDOWN, (), M._nothing, _RFC_CLOSE)
# -- the shutdown timeout (only while an app instance runs: the server cancels it)
_rows(tuple(RESPONSE_PENDING), I.SHUTDOWN_TIMEOUT, (S.CLOSED,), M._cancelled_pending, _RFC_OVERLOAD)
_rows((S.COMPLETE, S.CLIENT_GONE), I.SHUTDOWN_TIMEOUT, (S.CLOSED,), M._cancelled_after, _RFC_CLOSE)

TABLE = _table.build()  # partial by design: no app inputs in states without an app
HTTPMachine.rows = TABLE
