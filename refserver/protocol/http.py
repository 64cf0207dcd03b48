"""One HTTP/1.1 connection, from the first byte to the close or the WebSocket hand-off, as
one sans-IO state machine that owns the ``h11.Connection``.

Covers www spec 2.5, "HTTP": "Request - receive event", "Response Start - send event",
"Response Body - send event", "Disconnect - receive event", and "Disconnected Client - send
exception" (``send()`` on a closed connection raises an OSError subclass); RFC 9112 for the wire.

The machine is its :class:`State` plus these data fields, and nothing else:

- ``conn``: the ``h11.Connection``: the wire's own state (h11's ``our_state`` and
  ``their_state``) and the received bytes it has not parsed yet.
- ``persistence``: whether the connection carries another request after this cycle
  (:class:`Persistence`); it only ever moves down that enum's list.
- ``body``: how far the request body of this cycle has come (:class:`Body`), and
  ``chunk``: the body bytes waiting for the app's ``receive()`` (in ``CHUNK_WAITS`` and
  ``LAST_CHUNK_WAITS``).
- ``start``: the response head of ``http.response.start``, held in ``START_HELD``, and
  ``has_length``: whether the app's headers include a content-length.
- ``trailers``: None, or (the start said ``trailers: True``) the trailer fields the app has
  sent so far; ``trailers_dropped``: why they will not be sent ("" if they will); and
  ``te_trailers``: whether the request carried ``TE: trailers`` (asgi extensions, "HTTP Trailers").
- ``method``, ``date``, ``status``: the request method, the Date header and the response
  status of this cycle; ``request`` and ``upgrade_headers``: the upgrade request and the
  headers its handshake is checked with (an absolute-form target's authority as the Host
  header: docs/decisions.md#absolute-form-host), in ``UPGRADING``.
- ``chunked``: the request body of this cycle is chunked (its chunk lines are checked,
  RFC 9112 §7.1.1).
- ``body_timer_s`` and ``body_received_bytes``: the request body's timer
  (docs/decisions.md#request-body-rate): the seconds it has run in this window when it last
  fired (0: not armed; the sum of the intervals it asked for, as the machine reads no clock),
  and the body bytes received in the window.
- ``client_gone_reason``: the text of the ``ClientDisconnected`` a ``send()`` raises once
  the client has left.
- ``_reading``: whether the runtime reads from the peer (kept by ``TableMachine``).

The rest is not state: the configuration (``settings``, ``over_limit`` and the Date source),
the effects' maker (``_new_effects``, which leaves the state changes out when
``Settings.traced`` is False), a cache of checked response heads
(``heads``, :class:`~refserver.protocol.speedups.CheckedHeads`) and a live view of h11's
buffer (``_unparsed``).

Every input (:class:`Input`) returns :class:`HTTPEffects`. Every h11 error becomes a status or
a quiet close here. The WebSocket upgrade hands over a :class:`WebSocketMachine` on the same
``h11.Connection``, which still holds the bytes that followed the handshake.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import h11

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.protocol import handshake, http_extensions, internals, request_checks, speedups
from refserver.protocol.effects import Effects, Note, Tcp
from refserver.protocol.responses import REASONS, complete_response
from refserver.protocol.speedups import CheckedHeads, FastEnum
from refserver.protocol.table import TableBuilder, TableMachine
from refserver.protocol.websocket import Timeouts, WebSocketMachine
from refserver.spec import messages, scopes, sections

Message = Mapping[str, Any]
Headers = list[tuple[bytes, bytes]]

_NO_BODY_STATUSES = (204, 304)
_END_OF_MESSAGE = h11.EndOfMessage()  # an h11 event is immutable: one ends every response
# With its reason phrase, as every other status line.
_CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=REASONS[100])
HEAD_TOO_LARGE = "request head larger than the limit (--h11-max-incomplete-event-size)"
REQUEST_LINE_TOO_LONG = "request line longer than the head limit (--h11-max-incomplete-event-size)"
_TOO_LARGE = {431: HEAD_TOO_LARGE, 414: REQUEST_LINE_TOO_LONG}  # h11's 431 says "Receive buffer too long"


def scope_http_version(version: bytes) -> str | None:
    """Give the scope's ``http_version`` for a request line's version, or None if refserver
    cannot serve it (www spec 2.5, "HTTP Connection Scope": "1.0", "1.1" or "2").

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
    AWAITING_TRAILERS = "the last body message was sent; the http.response.trailers promised by the start are owed"
    COMPLETE = "response complete; further messages are ignored; the app may still run"
    CLIENT_GONE = "the client left before the response completed; the app still runs"
    UPGRADING = "a WebSocket upgrade request: reading its body up to its end"
    UPGRADED = "handed over to the WebSocket machine"
    CLOSED = "the TCP connection is closed once the queued bytes are written"


# States in which the app returning is an unfinished response (the tuple orders the table's rows).
_PENDING = (State.AWAITING_START, State.START_HELD, State.SENDING_BODY, State.AWAITING_TRAILERS)
RESPONSE_PENDING = frozenset(_PENDING)
# States in which an app instance runs (a request/response cycle).
APP_STATES = RESPONSE_PENDING | {State.COMPLETE, State.CLIENT_GONE}
# States in which the response head is on the wire, and the response is not complete.
_HEAD_SENT = frozenset({State.SENDING_BODY, State.AWAITING_TRAILERS})
# States in which the machine reads a request head (or an upgrade request's body).
_HEAD_STATES = frozenset({State.IDLE, State.READING_HEAD, State.UPGRADING})


class Persistence(FastEnum):
    """Whether the connection carries another request after this cycle (RFC 9112 §9.3)."""

    KEEP_ALIVE = "the next request may follow, if h11 agrees (both sides of the cycle are done)"
    CLOSE = "this cycle is the last: the request or the response rules out another (RFC 9112 §6.1, §9.6)"
    SHUTDOWN = "this cycle is the last: the server is shutting down"
    CLIENT_GONE = "the client has left: nothing more is read"


_PERSISTENCE_ORDER = list(Persistence)


class Body(FastEnum):
    """How far the request body of this cycle has come (www spec 2.5, "Request - receive
    event"): at most one chunk waits for the app, so reading pauses until it takes it."""

    CONTINUE_OWED = "the client waits for 100 Continue before it sends the body"
    ARRIVING = "more of the body is to come; no chunk waits for the app"
    CHUNK_WAITS = "a chunk waits for the app's receive(); more is to come"
    LAST_CHUNK_WAITS = "the body's last chunk waits for the app's receive()"
    RECEIVED = "the app has received the whole body"


# The bodies of which more is to come, and no chunk waits for the app.
_BODY_ARRIVING = frozenset({Body.CONTINUE_OWED, Body.ARRIVING})
# The bodies of which a chunk waits for the app.
_BODY_WAITS = frozenset({Body.CHUNK_WAITS, Body.LAST_CHUNK_WAITS})


class Input(FastEnum):
    # the app
    START = "http.response.start"
    BODY = "http.response.body"
    EARLY_HINT = "http.response.early_hint"
    TRAILERS = "http.response.trailers"
    PATHSEND = "http.response.pathsend"
    ZEROCOPYSEND = "http.response.zerocopysend"
    OTHER_MESSAGE = "a message of another type"
    RECEIVE = "receive() called"
    APP_RETURNED = "the app returned"
    APP_RAISED = "the app raised"
    # the peer
    BYTES = "bytes from the peer"
    PEER_GONE = "EOF, reset, or a failed write"
    # the timers (one runs at a time: the keep-alive timer while no app runs, the body's while one does)
    KEEP_ALIVE_TIMEOUT = "the keep-alive timer fired"
    BODY_TIMEOUT = "the request body's timer fired (grace period, then minimum rate)"
    # the server
    SHUTDOWN = "server shutdown"
    SHUTDOWN_TIMEOUT = "the shutdown timeout expired with the app running; the server cancels it"


_DISARMED = (Input.KEEP_ALIVE_TIMEOUT, math.inf)  # the timer, armed for never
# The app's messages by type (the response extensions' in refserver.protocol.http_extensions).
_APP_INPUTS = {given.value: given for given in Input if given.value.startswith("http.response.")}
_MESSAGE_INPUTS = (*_APP_INPUTS.values(), Input.OTHER_MESSAGE)  # every input of an app's send()

_RFC_MESSAGE = "RFC 9112 §2.2"  # message parsing
_RFC_PERSISTENCE = "RFC 9112 §9.3"  # persistence (keep-alive)
_RFC_CLOSE = "RFC 9112 §9.6"  # tear-down
_RFC_UPGRADE = "RFC 6455 §4.2"
_RFC_UNAVAILABLE = "RFC 9110 §15.6.4"  # 503 Service Unavailable
_RFC_1XX = "RFC 9110 §15.2"  # informational responses
_RFC_TIMEOUT = "RFC 9110 §15.5.9"  # 408 Request Timeout
# Why a message is refused where its row calls it misuse, by (state, input), else by input; any
# other came before http.response.start (asgi extensions, "Path Send" and "Zero Copy Send": "sent at
# any time after the *Response Start* message"; "Early Hints": likewise, "but before the final
# *Response Body* message").
_MISUSE: dict[Any, str] = {
    Input.START: "sent twice: the response has already started",
    # asgi extensions, "HTTP Trailers": sent "after the last ``http.response.body`` message", and only
    # when the start set ``trailers`` to ``True``.
    Input.TRAILERS: "sent before the last http.response.body of a start with trailers: True",
    Input.OTHER_MESSAGE: "is not a message an http connection accepts",
    # asgi extensions, "Path Send": it "cannot be mixed with ``http.response.body``".
    (State.SENDING_BODY, Input.PATHSEND): "cannot be mixed with http.response.body: the body has begun",
}
for _body in (Input.BODY, Input.PATHSEND, Input.ZEROCOPYSEND):
    _MISUSE[State.AWAITING_TRAILERS, _body] = (
        "sent after the last body message of a start with trailers: True; http.response.trailers is owed"
    )
# What did not arrive in time, when the keep-alive timer fires in a state.
_TIMED_OUT = {
    State.IDLE: "no request arrived",
    State.READING_HEAD: "the request head did not complete in time",
    State.UPGRADING: "the upgrade request's body did not arrive in time",
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
    # Whether anything reads the state changes (a trace): when nothing does, the machines leave
    # them out of their effects (speedups.effects_makers).
    traced: bool = True


class RequestHead(NamedTuple):
    """A request the runtime runs an app instance for (www spec 2.5, "HTTP Connection Scope")."""

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
    # The connection's one timer (the keep-alive timer while no app runs, the request body's
    # while one does), armed anew: the input it gives and in how many seconds (math.inf: never).
    timer: tuple[Input, float] | None = None
    refused: Refusal | None = None  # the server answered (or dropped) a bad request itself
    ended_status: int = 0  # APP_* inputs: the status of the response of the request that ended
    file: http_extensions.FileWrite | None = None  # a file body to send after ``write``, then its framing


_MAKE_EFFECTS = speedups.effects_makers(HTTPEffects)  # by whether anything traces


class HTTPMachine(TableMachine[State, Input, HTTPEffects]):
    """The sans-IO state of one HTTP/1.1 connection."""

    name = "HTTP"
    request: h11.Request  # the upgrade request: set as the machine enters UPGRADING

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        date: Callable[[], bytes],
        last_request: bool = False,
        over_limit: bool = False,
    ) -> None:
        """Start a connection in ``IDLE``.
        ``last_request``: serve one request, then close (docs/decisions.md#shutdown-serves-accept-queue).
        ``over_limit``: answer the first request 503, then close (docs/decisions.md#limit-concurrency)."""
        self.settings = settings or Settings()
        self.over_limit = over_limit
        self._date_source = date
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.settings.max_head_bytes)
        self._unparsed = internals.h11_unparsed(self.conn)  # live: what h11 holds unparsed
        self.state = State.IDLE
        self.persistence = Persistence.SHUTDOWN if last_request else Persistence.KEEP_ALIVE
        self.client_gone_reason = ""
        self.upgrade_headers: Headers = []
        self.heads = CheckedHeads()
        self._new_cycle()
        self._new_effects = _MAKE_EFFECTS[self.settings.traced]
        self._fx = self._new_effects()
        self._row = TABLE[(State.IDLE, Input.BYTES)]

    def _new_cycle(self) -> None:
        """Forget the last request/response cycle."""
        self.method = b""
        self.date = b""
        self.status = 0  # set by http.response.start (or 500)
        self.start: h11.Response | None = None
        self.has_length = False
        self.body = Body.ARRIVING
        self.chunk = b""
        self.te_trailers = False
        self.trailers: Headers | None = None
        self.trailers_dropped = ""
        self.chunked = False
        self.body_timer_s = 0.0
        self.body_received_bytes = 0

    # ------------------------------------------------------------------ the contract

    def opened(self) -> HTTPEffects:
        """Give the effects of the connection opening: the keep-alive timer bounds the wait
        for the first head."""
        return HTTPEffects(timer=(Input.KEEP_ALIVE_TIMEOUT, self.settings.keep_alive_s))

    def app_send(self, message: Message) -> HTTPEffects:
        """Take the app's ``send(message)``.

        Raises:
            ASGIProtocolError: the message is malformed, not allowed in this state, or
                cannot be sent; the state is unchanged.
            ClientDisconnected: the client has left before the response completed.
            RuntimeError: no row takes this input in this state (the runtime called it out of turn).
        """
        state = self.state
        try:
            return self._step(_APP_INPUTS.get(speedups.message_type(message), Input.OTHER_MESSAGE), message)
        except ASGIProtocolError as exc:
            raise exc.with_state(state.name) from None

    def app_receive(self) -> HTTPEffects:
        """Take the app's ``receive()``. ``event`` is what it returns now; None means it
        waits for ``wake_app``.

        Raises:
            RuntimeError: no row takes this input in this state (the runtime called it out of turn).
        """
        return self._step(Input.RECEIVE, None)

    def app_ended(self, *, raised: bool) -> HTTPEffects:
        """Take the end of the app instance: it returned, or (``raised``) it raised.

        Raises:
            RuntimeError: no row takes this input in this state (the runtime called it out of turn).
        """
        return self._step(Input.APP_RAISED if raised else Input.APP_RETURNED, None)

    def receive_data(self, data: bytes) -> HTTPEffects:
        """Take bytes from the peer (never empty: EOF is :meth:`peer_gone`).

        Raises:
            RuntimeError: no row takes this input in this state (the runtime called it out of turn).
        """
        return self._step(Input.BYTES, data)

    def peer_gone(self, why: str = "peer closed the connection") -> HTTPEffects:
        """Take the end of the peer: EOF, a reset or a failed write."""
        return self._step(Input.PEER_GONE, why)

    def keep_alive_timeout(self) -> HTTPEffects:
        """Take the keep-alive timer firing.

        Raises:
            RuntimeError: no row takes this input in this state (the runtime called it out of turn).
        """
        return self._step(Input.KEEP_ALIVE_TIMEOUT, None)

    def body_timeout(self) -> HTTPEffects:
        """Take the request body's timer firing.

        Raises:
            RuntimeError: no row takes this input in this state (the runtime called it out of turn).
        """
        return self._step(Input.BODY_TIMEOUT, None)

    def server_shutdown(self) -> HTTPEffects:
        """Take server shutdown: the response in flight may finish, then the connection closes."""
        return self._step(Input.SHUTDOWN, None)

    def shutdown_timeout(self) -> HTTPEffects:
        """Take the shutdown timeout, expired while an app instance runs: the server cancels it.

        ``HTTPEffects.ended_status`` is the status the client got (0: none).

        Raises:
            RuntimeError: no row takes this input in this state (the runtime called it out of turn).
        """
        return self._step(Input.SHUTDOWN_TIMEOUT, None)

    @property
    def keep_alive(self) -> bool:
        """Tell whether the connection can carry the next request (h11 decides the wire side)."""
        return (
            self.persistence is Persistence.KEEP_ALIVE
            and self.conn.our_state is h11.DONE
            and self.conn.their_state is h11.DONE
        )

    @property
    def shutting_down(self) -> bool:
        """Tell whether the server is shutting down this connection."""
        return self.persistence is Persistence.SHUTDOWN

    # ------------------------------------------------------------------ dispatch

    def _wants_read(self) -> bool:
        state = self.state
        if state in _HEAD_STATES:
            return True
        if state not in APP_STATES or self.persistence is Persistence.CLIENT_GONE:
            return False
        body = self.body
        if body is Body.CHUNK_WAITS:
            return False  # backpressure: the app has not taken the last chunk
        # Once the body is in, keep reading to notice a disconnect, until enough pipelined bytes are buffered.
        return body in _BODY_ARRIVING or len(self._unparsed) <= self.settings.max_head_bytes

    def _close(self, why: str, section: str) -> None:
        """Change to ``CLOSED``: stop the keep-alive timer and close TCP once the queued
        bytes are written."""
        self._enter(State.CLOSED, why, section)
        self._fx.tcp = Tcp.CLOSE
        self._fx.timer = _DISARMED

    def _end_after(self, persistence: Persistence) -> None:
        """Move ``persistence`` down to ``persistence``, never back up."""
        self.persistence = max(self.persistence, persistence, key=_PERSISTENCE_ORDER.index)

    def _write(self, data: bytes) -> None:
        if data:
            self._fx.add_write(data)

    # ------------------------------------------------------------------ request heads

    def _read_head(self, data: bytes) -> None:
        """Parse the request head. A whole head starts the app, a WebSocket upgrade or a
        refusal; part of one waits for the rest."""
        source = b""  # the bytes the head begins with, if it begins in this read
        if data:
            if not self._unparsed:
                source = data
            self.conn.receive_data(data)
        conn = self.conn
        limit = self.settings.max_head_bytes
        buffered = len(self._unparsed)
        # The raw bytes that begin with the head (h11 drops them from its buffer as it parses).
        raw = source or bytes(self._unparsed[: limit + 1])
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
                self._enter(State.READING_HEAD, "the first bytes of a request head arrived", _RFC_MESSAGE)
            return
        if not isinstance(event, h11.Request):  # ConnectionClosed
            self._close("the peer closed the connection between requests", _RFC_CLOSE)
            return
        # h11 enforces the limit only on a head that is still incomplete; one that arrived
        # whole in a single read is held to the same limit here, so the answer does not
        # depend on how TCP split the bytes.
        head_bytes = buffered - len(self._unparsed)
        if head_bytes > limit:
            self._refuse(414 if request_checks.request_line_too_long(raw, limit) else 431, "")
            return
        version = scope_http_version(event.http_version)
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
            self._close("over the concurrency limit: 503 sent", _RFC_UNAVAILABLE)
            return
        headers = internals.h11_header_pairs(event.headers)
        names = dict(headers).keys()
        defect = request_checks.accepted_head_defect(raw, head_bytes, headers, b"content-length" in names)
        if defect is not None:
            self._refuse(400, defect)
            return
        if event.target[0] != 0x2F:  # not origin-form ("/..."): absolute-form gives the host
            try:
                headers = request_checks.with_target_host(event.target, headers)
            except ValueError as exc:
                self._refuse(400, str(exc))
                return
        self.chunked = b"transfer-encoding" in names
        if b"upgrade" in names and handshake.asks_for_websocket(headers):
            # The timer keeps running: the upgrade request's body (normally none) must arrive
            # within the same timeout as its head (docs/decisions.md#upgrade-body-timeout).
            self.request = event
            self.upgrade_headers = headers
            self._enter(State.UPGRADING, "a WebSocket upgrade request", _RFC_UPGRADE)
            self._run(Input.BYTES, b"")
            return
        self._fx.timer = _DISARMED
        # The cycle's fields were reset when the last one ended (or the connection opened).
        self.method = event.method
        self.date = self._date_source()
        self.te_trailers = b"te" in names and http_extensions.accepts_trailers(headers)
        if b"expect" in names and conn.they_are_waiting_for_100_continue:
            self.body = Body.CONTINUE_OWED
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 §6.1: such a request may be an attempt at request smuggling; h11
            # frames it by Transfer-Encoding, and the server "MUST close the connection
            # after responding to such a request".
            self._end_after(Persistence.CLOSE)
        self._fx.request = RequestHead(event.method.decode("ascii"), event.target, version, headers)
        if self.settings.body_grace_s and (self.chunked or b"content-length" in names):
            # A body is to come: its timer starts with the grace period (the body's row
            # disarms it if the body is already here).
            self.body_timer_s = self.settings.body_grace_s
            self._fx.timer = (Input.BODY_TIMEOUT, self.body_timer_s)
        self._enter(State.AWAITING_START, "request head received; the app runs", sections.HTTP_RESPONSE_START)
        self._run(Input.BYTES, b"")

    def _refuse(self, status: int, reason: str) -> None:
        """Answer a request the server cannot serve, then close: a malformed request line or
        headers get 400, a head over the limit 431 (414 when the request line alone is),
        another major version 505."""
        reason = _TOO_LARGE.get(status, reason)
        self._fx.refused = Refusal("request", reason, status)
        self._answer(status, f"{reason}\n".encode())
        self._close(f"bad request (answered {status}): {reason}", _RFC_MESSAGE)

    def _answer(self, status: int, body: bytes, headers: Headers | None = None) -> None:
        """Write a whole response of the server's own (without its body, to HEAD: RFC 9110
        §9.3.2). h11 can always send it: nothing of a response is on the wire yet."""
        head_only = self.method == b"HEAD"
        self._write(
            complete_response(self.conn, status, body, headers=headers, date=self._date_source(), head_only=head_only)
        )

    def _eof_head(self, _: str) -> None:
        """Close. A peer that left in the middle of a head is answered 400."""
        self.conn.receive_data(b"")
        self._read_head(b"")  # h11 decides between a quiet close and a 400

    def _keep_alive_timeout(self, _: None) -> None:
        """Close quietly: no request, no whole head, or no whole upgrade request arrived in time."""
        self._close(f"keep-alive timeout: {_TIMED_OUT[self.state]}", self._row.section)

    def _shutdown_idle(self, _: None) -> None:
        """Close at once: no request is in flight."""
        self._close("server shutdown: no request in flight", _RFC_CLOSE)

    # ------------------------------------------------------------------ the upgrade

    def _read_upgrade(self, data: bytes) -> None:
        """Read the upgrade request's (normally empty) body to its end, check the handshake,
        then hand the connection to the WebSocket machine (RFC 6455 §4.2). A request with
        both Content-Length and Transfer-Encoding is checked at once: its body's framing is
        ambiguous, so it is not read, and the handshake is refused (RFC 9112 §6.1;
        docs/decisions.md#strict-request-framing)."""
        conn = self.conn
        if data:
            conn.receive_data(data)
        headers = self.upgrade_headers
        ambiguous = self.chunked and any(name == b"content-length" for name, _ in headers)
        while not ambiguous:
            try:
                event = self._next_body_event()
            except h11.RemoteProtocolError as exc:
                # A malformed body (e.g. a bad chunk size) is a bad request like any other.
                self._refuse(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA:
                return
            if type(event) is not h11.Data:  # the body's end (EOF is PEER_GONE's: h11 never sees it here)
                break
        request = self.request
        checked = handshake.validate_request(request.method, request.http_version, headers)
        if isinstance(checked, handshake.Rejection):
            self._fx.refused = Refusal("WebSocket handshake", checked.reason, checked.status)
            self._answer(checked.status, checked.reason.encode() + b"\n", checked.headers)
            self._close(f"bad WebSocket handshake (answered {checked.status})", _RFC_UPGRADE)
            return
        settings = self.settings
        machine = WebSocketMachine(
            conn,
            key=checked,
            subprotocols=scopes.parse_subprotocols(headers),
            deflate=handshake.negotiate_deflate(headers) if settings.ws_deflate else None,
            max_size_bytes=settings.ws_max_size_bytes,
            timeouts=settings.ws_timeouts,
            traced=settings.traced,
        )
        self._fx.timer = _DISARMED
        self._fx.upgrade = Upgrade(machine, request.target, request.http_version.decode("ascii"), headers)
        self._enter(State.UPGRADED, "valid WebSocket handshake; handed to the WebSocket machine", _RFC_UPGRADE)

    def _gone_upgrading(self, _: str) -> None:
        """Close: the peer left before the upgrade request was complete."""
        self._close("the peer left during the upgrade request", _RFC_CLOSE)

    # ------------------------------------------------------------------ the request body

    def _read_body(self, data: bytes) -> None:
        """Read the request body, and hand it to the app one chunk at a time ("Request -
        receive event"): all that h11 holds, joined, once the app has taken the last chunk.
        A malformed body is answered 400 if nothing of the response is on the wire yet, and
        the client counts as gone."""
        if data:
            self.conn.receive_data(data)
        if self.body not in _BODY_ARRIVING or self.persistence is Persistence.CLIENT_GONE:
            return
        chunks: list[bytes] = []
        while True:
            try:
                event = self._next_body_event()
            except h11.RemoteProtocolError as exc:
                if self.state is State.AWAITING_START or self.state is State.START_HELD:
                    # Nothing of the response is on the wire yet: the bad framing is answered
                    # like a bad head (RFC 9112 §7.1: an invalid chunk size is a bad request;
                    # docs/decisions.md#malformed-body-400).
                    self.status = exc.error_status_hint
                    self._answer(self.status, f"malformed request body: {exc}\n".encode())
                self._lose_client(f"malformed request body: {exc}")
                return
            if type(event) is h11.Data:
                chunks.append(bytes(event.data))
                self.body_received_bytes += len(event.data)
                continue
            if type(event) is h11.EndOfMessage:
                self.body, self.chunk = Body.LAST_CHUNK_WAITS, b"".join(chunks)
                self._fx.wake_app = True
                if self.body_timer_s:  # the whole body is here: its timer stops
                    self.body_timer_s = 0.0
                    self._fx.timer = _DISARMED
                return
            if chunks:  # NEED_DATA with a chunk in hand: deliver it, then read on
                self.body, self.chunk = Body.CHUNK_WAITS, b"".join(chunks)
                self._fx.wake_app = True
            return

    def _next_body_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """Give h11's next event of the request body. Raise, as h11 raises a bad chunk size,
        for a chunk line h11 is about to read and would accept but RFC 9112 §7.1.1 does not
        (or of a size no body can have)."""
        start = internals.h11_chunk_line_start(self.conn) if self.chunked else None  # a chunk line is next
        if start is not None:
            end = self._unparsed.find(b"\r\n", start)
            defect = None if end == -1 else request_checks.chunk_line_defect(self._unparsed[start:end])
            if defect is not None:
                raise h11.RemoteProtocolError(defect, error_status_hint=400)
        return self.conn.next_event()

    def _body_timeout(self, _: None) -> None:
        """Cut a request body too slow for its grace period and minimum rate: 408 if nothing of
        the response was sent, else the connection is cut; the app gets http.disconnect (RFC 9110
        §15.5.9; docs/decisions.md#request-body-rate). In time: the timer fires again when the
        bytes that arrived allow."""
        if not self.body_timer_s or self.persistence is Persistence.CLIENT_GONE:
            return  # a timer that fired as the body completed (which stops it), or after the client left
        settings = self.settings
        if self.body is Body.CHUNK_WAITS or self.body is Body.CONTINUE_OWED:
            # The app has not taken the last chunk (so the server is not reading), or has not
            # yet asked for the body a client waiting for 100 Continue holds back: the client
            # is not to blame. A new window starts.
            self.body_timer_s = settings.body_grace_s
            self._fx.timer = (Input.BODY_TIMEOUT, self.body_timer_s)
            self.body_received_bytes = 0
            return
        allowed_s = settings.body_grace_s + self.body_received_bytes / settings.body_min_rate_bytes_per_s
        if allowed_s > self.body_timer_s:
            self._fx.timer = (Input.BODY_TIMEOUT, allowed_s - self.body_timer_s)
            self.body_timer_s = allowed_s
            return
        why = (
            f"request body too slow: {self.body_received_bytes} bytes in {allowed_s:g} s, under the minimum rate of "
            f"{settings.body_min_rate_bytes_per_s:g} bytes/s after the {settings.body_grace_s:g} s grace period"
        )
        self.body_timer_s = 0.0
        if self.state is State.AWAITING_START or self.state is State.START_HELD:
            self.status = 408
            self._fx.refused = Refusal("request", why, 408)
            self._answer(408, b"Request Timeout: the request body arrived too slowly\n")
        self._lose_client(why)

    def _lose_client(self, why: str) -> None:
        """Remember that the client is gone, and why (the first reason is kept), and wake the app
        ("Disconnect - receive event"): the connection carries no further request, and a
        response still unfinished is cut."""
        if self.persistence is not Persistence.CLIENT_GONE:
            self.persistence = Persistence.CLIENT_GONE
            self.client_gone_reason = why
        self._fx.wake_app = True
        if self.state in RESPONSE_PENDING:
            self._enter(State.CLIENT_GONE, f"the client is gone ({why})", sections.HTTP_DISCONNECT)

    def _buffer(self, data: bytes) -> None:
        """Keep the bytes in h11's buffer: they belong to the next request (pipelining)."""
        self.conn.receive_data(data)

    def _shutdown_cycle(self, _: None) -> None:
        """Let the response in flight finish, then close the connection."""
        self._end_after(Persistence.SHUTDOWN)

    def _shutdown_upgrading(self, _: None) -> None:
        """Let the upgrade go on: the WebSocket machine refuses it with 503 at once
        (docs/decisions.md#shutdown-1001)."""
        self._end_after(Persistence.SHUTDOWN)

    # ------------------------------------------------------------------ receive()

    def _receive(self, _: None) -> None:
        """Return the next body chunk, or http.disconnect once the response is complete or
        the client is gone. Otherwise make the app wait, asking for 100 Continue first if
        the client waits for it."""
        fx = self._fx
        # www spec 2.5, "Disconnect - receive event": "Sent to the application if receive
        # is called after a response has been sent", on every such call; request body the
        # app left unread is not delivered after that (docs/decisions.md).
        if self.state is State.COMPLETE:
            fx.event = {"type": "http.disconnect"}
            return
        body = self.body
        if body in _BODY_WAITS:
            more = body is Body.CHUNK_WAITS
            fx.event = {"type": "http.request", "body": self.chunk, "more_body": more}
            self.body, self.chunk = (Body.ARRIVING if more else Body.RECEIVED), b""
            if more:
                self._read_body(b"")  # the next chunk, if h11 holds one
            return
        # ... "or after the HTTP connection has been closed": body that fully arrived
        # before the connection was lost is still delivered first.
        if self.state is State.CLIENT_GONE:
            fx.event = {"type": "http.disconnect"}
            return
        if body is Body.CONTINUE_OWED:
            # The first time the app waits for the body: 100 Continue if the client waits
            # for it (RFC 9110 §10.1.1; docs/decisions.md#expect-100-continue).
            self.body = Body.ARRIVING
            if self.state is State.AWAITING_START and self.conn.they_are_waiting_for_100_continue:
                self._write(self.conn.send(_CONTINUE) or b"")

    # ------------------------------------------------------------------ app -> peer

    def _hold_start(self, message: Message) -> None:
        """Check the response head and hold it until the first body message."""
        message = speedups.validate_response_start(message)
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
        if self.persistence is not Persistence.KEEP_ALIVE and not has_connection:
            headers.append((b"connection", b"close"))  # tell the client this connection ends
        status = message["status"]
        # Built (and so checked by h11) now: a head that cannot be sent raises from this send().
        self.start = self.heads.head(status, headers, "http.response.start", sections.HTTP_RESPONSE_START)
        self.has_length = has_length
        self.status = status
        if message.get("trailers", False):
            self.trailers = []
            self.trailers_dropped = http_extensions.trailers_dropped(
                te_trailers=self.te_trailers,
                http_version=self.conn.their_http_version,
                head_only=self.method == b"HEAD" or status in _NO_BODY_STATUSES,
                has_length=has_length,
            )
        self._enter(
            State.START_HELD, "http.response.start held until the first body message", sections.HTTP_RESPONSE_START
        )

    def _body(self, message: Message) -> None:
        """Write the body chunk, the first after the held status line and headers (a body sent
        in one message gets a Content-Length). The last completes the response, or leaves the
        trailers owed."""
        body, more = messages.response_body(message)
        self._send_body("http.response.body", body, more)

    def _file(self, message: Message) -> None:
        """Frame a file body as a body message's bytes would be, and hand the file to the
        runtime to send: Path Send's whole file, or Zero Copy Send's part of the app's file."""
        # asgi extensions, "Zero Copy Send": "Except for the characteristics of zero-copy, it should
        # behave the same as ordinary ``http.response.body``"; "Path Send" likewise.
        kind = messages.message_type(message)
        if kind == "http.response.pathsend":
            file, more = http_extensions.open_path(message), False
        else:
            file, more = http_extensions.zerocopy_file(message), message.get("more_body", False)
        try:
            self._send_body(kind, file, more)
        except BaseException:
            file.close()
            raise
        if self._fx.file is None:
            file.close()  # nothing of it is sent (HEAD, 204, 304, no bytes, or an error)

    def _send_body(self, kind: str, body: bytes | http_extensions.FileBody, more: bool) -> None:
        """Send a body as :meth:`_body` says, a file's framing around ``HTTPEffects.file``. A
        body h11 refuses after a held head (it contradicts the app's Content-Length) is not
        written, nor is the head, so a response that lies about its length never reaches the
        wire; ``HTTPEffects.error`` carries the error, which the app's send() raises.

        Raises:
            ASGIProtocolError: h11 refuses a body message after the head is on the wire.
        """
        head = self.start
        held = head is not None
        out, after = b"", b""
        file: http_extensions.FileBody | None = None
        if head is not None:
            if not more and not self.has_length and self.status not in _NO_BODY_STATUSES and self.trailers is None:
                # The whole body is known: frame it with Content-Length (for HEAD too, where
                # it tells what a GET would have carried; RFC 9110 §9.3.2).
                head = internals.h11_response_with_header(head, b"content-length", str(len(body)).encode())
            out = b"".join(self._h11_send(head, "http.response.start"))
            self.start = None
        try:
            # HEAD, 204 and 304 responses carry no body whatever the app sends (RFC 9110
            # §9.3.2, §15.3.5, §15.4.5); h11 frames them with length 0.
            if body and self.method != b"HEAD" and self.status not in _NO_BODY_STATUSES:
                # h11 passes a file through where its bytes go, framed by its len() (h11's way to sendfile).
                pieces = self._h11_send(h11.Data(data=body), kind)  # type: ignore[arg-type]
                if isinstance(body, bytes):
                    out += b"".join(pieces)
                else:
                    at = pieces.index(body)
                    out += b"".join(pieces[:at])
                    after, file = b"".join(pieces[at + 1 :]), body
            if not more and self.trailers is None:  # with trailers, the end is the trailers message's
                after += b"".join(self._h11_send(_END_OF_MESSAGE, kind))
        except ASGIProtocolError as exc:
            if not held:
                raise
            self._head_sent()  # h11 took the head
            self._fx.error = exc.with_state(self.state.name)
            return
        if file is not None:
            self._fx.file = http_extensions.FileWrite(file, after)
            after = b""
        self._write(out + after)
        if more:
            if held:
                self._head_sent()
        elif self.trailers is not None:
            # asgi extensions, "HTTP Trailers": "after the last ``http.response.body`` message (``more_body``
            # being ``False``), the ASGI framework will send a ``http.response.trailers`` message".
            self._enter(
                State.AWAITING_TRAILERS, "the last body message was sent; the trailers are owed", sections.HTTP_TRAILERS
            )
        else:
            what = "body message" if kind == "http.response.body" else kind
            why = f"HTTP {self.status} response sent in one {what}" if held else "the last body message was sent"
            self._enter(State.COMPLETE, why, sections.HTTP_RESPONSE_BODY)
            self._fx.wake_app = True  # a waiting receive() now returns http.disconnect

    def _head_sent(self) -> None:
        self._enter(State.SENDING_BODY, f"HTTP {self.status} status line and headers sent", sections.HTTP_RESPONSE_BODY)

    def _h11_send(self, event: h11.Event, kind: str) -> list[Any]:
        """Give h11's bytes for the event, in pieces (a file body passes through as itself).

        Raises:
            ASGIProtocolError: h11 cannot send it; the connection closes after this cycle.
        """
        try:
            return internals.h11_send(self.conn, event)
        except h11.LocalProtocolError as exc:
            self._end_after(Persistence.CLOSE)
            raise ASGIProtocolError(kind, f"cannot be sent: {exc}", sections.MESSAGES[kind]) from None

    def _take_trailers(self, message: Message) -> None:
        """Collect the trailer fields. The last trailers message ends the response: with the
        trailer section if the client accepts it, with the last chunk alone otherwise."""
        message = messages.validate(message, "http.response.trailers")
        given = [(bytes(name), bytes(value)) for name, value in message.get("headers", ())]
        http_extensions.check_trailers(given)  # checked now: a field that cannot be sent raises from this send()
        self.trailers = collected = (self.trailers or []) + given
        if message.get("more_trailers", False):
            return
        if self.trailers_dropped:
            # asgi extensions, "HTTP Trailers": "The ASGI server will only send the trailing headers in case
            # the client has sent the ``TE: trailers`` header in the request." (docs/decisions.md#trailers)
            self._fx.add_note(Note("ignored", f"the trailers: {self.trailers_dropped}", sections.HTTP_TRAILERS))
            collected = []
        self._write(b"".join(self._h11_send(h11.EndOfMessage(headers=collected), "http.response.trailers")))
        self._enter(State.COMPLETE, "the trailers were sent; the response is complete", sections.HTTP_TRAILERS)
        self._fx.wake_app = True  # a waiting receive() now returns http.disconnect

    def _early_hint(self, message: Message) -> None:
        """Write a 103 Early Hints response with the links, ahead of the held head."""
        # asgi extensions, "Early Hints": the server "should then attempt to send an informational
        # response to the client with the provided links as ``Link`` headers".
        message = messages.validate(message, "http.response.early_hint")
        hint = http_extensions.early_hint(message["links"])
        if self.conn.their_http_version == b"1.0":
            # RFC 9110 §15.2: "A server MUST NOT send a 1xx response to an HTTP/1.0 client"
            # (docs/decisions.md#early-hints).
            self._fx.add_note(Note("ignored", "http.response.early_hint to an HTTP/1.0 client", _RFC_1XX))
            return
        self._write(b"".join(self._h11_send(hint, "http.response.early_hint")))

    def _late_early_hint(self, message: Message) -> None:
        """Ignore the hint: the final response's head is on the wire already."""
        messages.validate(message, "http.response.early_hint")
        # RFC 9110 §15.2: a 1xx response comes before the final response, never after its head.
        self._fx.add_note(
            Note("ignored", "http.response.early_hint after the response head was sent", sections.HTTP_EARLY_HINTS)
        )

    def _ignore(self, message: Message) -> None:
        """Ignore the message: the response is complete."""
        # www spec 2.5, "Response Body - send event": after completion "any further messages on the
        # channel will be ignored" (docs/decisions.md#after-complete-ignored).
        self._fx.add_note(Note("ignored", f"{message.get('type')} after the response completed", self._row.section))

    def _closed_send(self, message: Message) -> None:
        """Raise ClientDisconnected (an OSError): the client has left."""
        # www spec 2.5, "Disconnected Client - send exception": send() on a closed connection raises
        # an OSError subclass.
        raise ClientDisconnected(self.client_gone_reason or "client disconnected")

    def _misuse(self, message: Message) -> None:
        """Raise ASGIProtocolError: the message is not allowed in this state."""
        row = self._row
        problem = _MISUSE.get((row.state, row.input)) or _MISUSE.get(row.input, "sent before http.response.start")
        raise ASGIProtocolError(messages.message_type(message), problem, row.section)

    # ------------------------------------------------------------------ the app ends

    def _ended_pending(self, _: None) -> None:
        """Close: the app ended before its response completed. A response not yet on the wire
        becomes a 500; one cut off mid-body is never completed
        (docs/decisions.md#http-app-ends-incomplete)."""
        self._end_unfinished(500, b"Internal Server Error\n", "the app ended")

    def _cancelled_pending(self, _: None) -> None:
        """Close: the app is cancelled at the shutdown timeout before its response completed. A
        response not yet on the wire becomes a 503 (RFC 9110 §15.6.4, the server cannot handle
        the request now; docs/decisions.md#shutdown-timeout-503); one cut off mid-body is never
        completed."""
        self._end_unfinished(
            503, b"Service Unavailable: the server is shutting down\n", "cancelled at the shutdown timeout"
        )

    def _end_unfinished(self, status: int, body: bytes, ended: str) -> None:
        """Close, answering ``status`` with ``body`` if nothing of the response is on the wire;
        ``ended`` says what ended the app, for the trace."""
        self._end_after(Persistence.CLOSE)
        if self.state in _HEAD_SENT:
            self._fx.ended_status = self.status
            self._close(f"{ended} mid-body; the response is cut", self._row.section)
            return
        self.status = self._fx.ended_status = status
        self._answer(status, body)
        self._close(f"{ended} before a response; {status} sent", self._row.section)

    def _ended_gone(self, _: None) -> None:
        """Close: the app has ended, and the client left before."""
        self._fx.ended_status = self.status
        self._close("the app ended after the client left", self._row.section)

    def _cancelled_after(self, _: None) -> None:
        """Close: the app is cancelled at the shutdown timeout after its response completed, or
        after the client left."""
        self._fx.ended_status = self.status
        after = "the client left" if self.state is State.CLIENT_GONE else "the response completed"
        self._close(f"cancelled at the shutdown timeout after {after}", self._row.section)

    def _ended_complete(self, _: None) -> None:
        """Wait for the next request, and read it at once if it is already here. Close
        instead if the connection cannot carry another one."""
        self._fx.ended_status = self.status
        if not self.keep_alive:
            self._close("response complete; the connection cannot be reused", _RFC_PERSISTENCE)
            return
        self.conn.start_next_cycle()
        self._new_cycle()
        self._enter(State.IDLE, "response complete; waiting for the next request", _RFC_PERSISTENCE)
        self._fx.timer = (Input.KEEP_ALIVE_TIMEOUT, self.settings.keep_alive_s)
        if self._unparsed:
            self._run(Input.BYTES, b"")  # a pipelined request is waiting already

    def _nothing(self, _: Any) -> None:
        """Do nothing."""

    def _gone_already(self, _: Any) -> None:
        """Ignore it: the client has left, so nothing more is read, answered or kept for a next
        request."""


# ---------------------------------------------------------------------- the table


M = HTTPMachine
S = State
I = Input  # noqa: E741 - the table reads better with one-letter names

_table: TableBuilder[State, Input] = TableBuilder("HTTP")
_rows = _table.add

# A whole request head starts the app or the upgrade, or is refused; what follows it is the next row's.
_AFTER_HEAD = (S.AWAITING_START, S.UPGRADING, S.CLOSED)
# What the first body message may lead to (the head goes with it).
_FIRST_BODY_LEADS = (S.SENDING_BODY, S.COMPLETE, S.AWAITING_TRAILERS)

# -- the app's messages (an app runs only in the cycle states; the runtime makes sure)
for _input in (I.BODY, I.EARLY_HINT, I.PATHSEND, I.ZEROCOPYSEND):  # before http.response.start
    _rows((S.AWAITING_START,), _input, (), M._misuse, sections.MESSAGES[_input.value])
_rows((S.AWAITING_START,), I.START, (S.START_HELD,), M._hold_start, sections.HTTP_RESPONSE_START)
_rows((S.START_HELD, S.SENDING_BODY, S.AWAITING_TRAILERS), I.START, (), M._misuse, sections.HTTP_RESPONSE_START)
_rows((S.START_HELD,), I.BODY, _FIRST_BODY_LEADS, M._body, sections.HTTP_RESPONSE_BODY)
_rows((S.SENDING_BODY,), I.BODY, (S.COMPLETE, S.AWAITING_TRAILERS), M._body, sections.HTTP_RESPONSE_BODY)
_rows(_PENDING, I.OTHER_MESSAGE, (), M._misuse, sections.CORE_ERRORS)
# -- the response extensions (asgi extensions)
_rows((S.START_HELD,), I.EARLY_HINT, (), M._early_hint, sections.HTTP_EARLY_HINTS)
_rows((S.SENDING_BODY, S.AWAITING_TRAILERS), I.EARLY_HINT, (), M._late_early_hint, sections.HTTP_EARLY_HINTS)
_rows((S.AWAITING_START, S.START_HELD, S.SENDING_BODY), I.TRAILERS, (), M._misuse, sections.HTTP_TRAILERS)
_rows((S.AWAITING_TRAILERS,), I.TRAILERS, (S.COMPLETE,), M._take_trailers, sections.HTTP_TRAILERS)
_rows((S.START_HELD,), I.PATHSEND, _FIRST_BODY_LEADS, M._file, sections.HTTP_PATHSEND)
_rows((S.SENDING_BODY,), I.PATHSEND, (), M._misuse, sections.HTTP_PATHSEND)
_rows((S.START_HELD,), I.ZEROCOPYSEND, _FIRST_BODY_LEADS, M._file, sections.HTTP_ZEROCOPYSEND)
_rows((S.SENDING_BODY,), I.ZEROCOPYSEND, (S.COMPLETE, S.AWAITING_TRAILERS), M._file, sections.HTTP_ZEROCOPYSEND)
for _input in (I.BODY, I.PATHSEND, I.ZEROCOPYSEND):  # http.response.trailers is owed
    _rows((S.AWAITING_TRAILERS,), _input, (), M._misuse, sections.HTTP_TRAILERS)
for _input in _MESSAGE_INPUTS:
    _rows((S.COMPLETE,), _input, (), M._ignore, sections.HTTP_RESPONSE_BODY)
    _rows((S.CLIENT_GONE,), _input, (), M._closed_send, sections.HTTP_CLOSED_SEND)
# -- receive()
# Handing a chunk over reads on: the bytes behind it may break the body's framing.
_rows(_PENDING, I.RECEIVE, (S.CLIENT_GONE,), M._receive, sections.HTTP_DISCONNECT)
_rows((S.COMPLETE, S.CLIENT_GONE), I.RECEIVE, (), M._receive, sections.HTTP_DISCONNECT)
# -- the app ends
for _input in (I.APP_RETURNED, I.APP_RAISED):
    _rows(_PENDING, _input, (S.CLOSED,), M._ended_pending, sections.CORE_ERRORS)
    _rows((S.CLIENT_GONE,), _input, (S.CLOSED,), M._ended_gone, sections.HTTP_DISCONNECT)
    # The next request may be here already (pipelined): it is read at once.
    _rows((S.COMPLETE,), _input, (S.IDLE, S.CLOSED), M._ended_complete, _RFC_PERSISTENCE)
# -- the peer's bytes
_rows((S.IDLE,), I.BYTES, (S.READING_HEAD, *_AFTER_HEAD), M._read_head, _RFC_MESSAGE)
_rows((S.READING_HEAD,), I.BYTES, _AFTER_HEAD, M._read_head, _RFC_MESSAGE)
_rows((S.UPGRADING,), I.BYTES, (S.UPGRADED, S.CLOSED), M._read_upgrade, _RFC_UPGRADE)
_rows(_PENDING, I.BYTES, (S.CLIENT_GONE,), M._read_body, "RFC 9112 §6")
_rows((S.COMPLETE,), I.BYTES, (), M._buffer, "RFC 9112 §9.3.2")
_rows((S.CLIENT_GONE,), I.BYTES, (), M._gone_already, sections.HTTP_DISCONNECT)
_rows((S.CLOSED,), I.BYTES, (), M._nothing, _RFC_CLOSE)
# -- the peer goes away
_rows((S.IDLE, S.READING_HEAD), I.PEER_GONE, (S.CLOSED,), M._eof_head, _RFC_CLOSE)
_rows((S.UPGRADING,), I.PEER_GONE, (S.CLOSED,), M._gone_upgrading, _RFC_CLOSE)
_rows(_PENDING, I.PEER_GONE, (S.CLIENT_GONE,), M._lose_client, sections.HTTP_DISCONNECT)
_rows((S.COMPLETE, S.CLIENT_GONE), I.PEER_GONE, (), M._lose_client, sections.HTTP_DISCONNECT)
_rows((S.UPGRADED, S.CLOSED), I.PEER_GONE, (), M._nothing, _RFC_CLOSE)
# -- the keep-alive timer (armed only while no app runs)
_rows((S.IDLE, S.READING_HEAD), I.KEEP_ALIVE_TIMEOUT, (S.CLOSED,), M._keep_alive_timeout, _RFC_PERSISTENCE)
_rows((S.UPGRADING,), I.KEEP_ALIVE_TIMEOUT, (S.CLOSED,), M._keep_alive_timeout, _RFC_UPGRADE)
# -- the request body's timer (armed only while an app runs and its request body arrives)
_rows(_PENDING, I.BODY_TIMEOUT, (S.CLIENT_GONE,), M._body_timeout, _RFC_TIMEOUT)
_rows((S.COMPLETE,), I.BODY_TIMEOUT, (), M._body_timeout, _RFC_TIMEOUT)
_rows((S.CLIENT_GONE,), I.BODY_TIMEOUT, (), M._gone_already, sections.HTTP_DISCONNECT)
# -- shutdown
_rows((S.IDLE, S.READING_HEAD), I.SHUTDOWN, (S.CLOSED,), M._shutdown_idle, _RFC_CLOSE)
_rows((S.UPGRADING,), I.SHUTDOWN, (), M._shutdown_upgrading, _RFC_UNAVAILABLE)
_rows((*_PENDING, S.COMPLETE), I.SHUTDOWN, (), M._shutdown_cycle, _RFC_CLOSE)
_rows((S.CLIENT_GONE,), I.SHUTDOWN, (), M._gone_already, _RFC_CLOSE)
_rows((S.UPGRADED, S.CLOSED), I.SHUTDOWN, (), M._nothing, _RFC_CLOSE)
# -- the shutdown timeout (only while an app instance runs: the server cancels it)
_rows(_PENDING, I.SHUTDOWN_TIMEOUT, (S.CLOSED,), M._cancelled_pending, _RFC_UNAVAILABLE)
_rows((S.COMPLETE, S.CLIENT_GONE), I.SHUTDOWN_TIMEOUT, (S.CLOSED,), M._cancelled_after, _RFC_CLOSE)

TABLE = _table.build()  # partial by design: no app inputs in states without an app
HTTPMachine.rows = TABLE
