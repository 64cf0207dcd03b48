"""One HTTP/1.1 request/response cycle: ASGI messages in, h11 bytes out.

Covers www spec 2.5 "HTTP": "Request - receive event", "Response Start - send event",
"Response Body - send event", "Disconnect - receive event", and the 2.4 rule that
``send()`` on a closed connection raises an OSError subclass.

The response side is a state table keyed by (state, message type); a missing entry is
an app error naming the state, the message and the section. h11 owns the wire rules
(framing, keep-alive, header syntax); this module owns the ASGI rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import h11

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.protocol.responses import check_sendable_head, complete_response, reason_phrase, response_head
from refserver.spec import messages, sections

Message = Mapping[str, Any]

DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
_SERVER_OWNED_HEADERS = (b"transfer-encoding",)  # www spec 2.5: the server chooses framing
_NO_BODY_STATUSES = (204, 304)


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


class ResponseState(Enum):
    AWAITING_START = "no http.response.start yet"
    # www spec 2.5, "Response Start": the server "need not flush" the start until the first
    # body message, so it is held; this lets a one-message body get a Content-Length.
    START_HELD = "http.response.start held until the first body message"
    SENDING_BODY = "status line and headers sent; body streaming"
    COMPLETE = "response complete; further messages are ignored"


class HTTPCycle:
    """The ASGI side of one request on an h11 connection."""

    def __init__(self, conn: h11.Connection, request: h11.Request, *, date: bytes) -> None:
        self.conn = conn
        self.method = request.method
        self.date = date
        self.state = ResponseState.AWAITING_START
        self.status = 0  # set by http.response.start
        self._held_headers: list[tuple[bytes, bytes]] = []
        # receive side: at most one body chunk waits for the app (backpressure).
        self._pending_body: dict[str, Any] | None = None
        self.request_complete = False
        self.client_gone_reason: str | None = None
        self._continue_owed = conn.they_are_waiting_for_100_continue
        # Set when the connection cannot carry another request after this one.
        self.must_close = False
        names = [name for name, _ in request.headers]
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 §6.1: such a request may be an attempt at request smuggling; h11
            # frames it by Transfer-Encoding, and the server "MUST close the connection
            # after responding to such a request".
            self.must_close = True

    # ------------------------------------------------------------------ peer -> app

    @property
    def wants_body(self) -> bool:
        """True while the app has taken the last chunk and more body may follow."""
        return self._pending_body is None and not self.request_complete

    def body_received(self, data: bytes, *, more_body: bool) -> None:
        """A chunk of the request body arrived ("Request - receive event")."""
        self._pending_body = {"type": "http.request", "body": data, "more_body": more_body}
        if not more_body:
            self.request_complete = True

    def client_disconnected(self, reason: str) -> None:
        if self.client_gone_reason is None:
            self.client_gone_reason = reason
            self.must_close = True

    def take_continue(self) -> bytes:
        """The bytes of ``100 Continue`` the first time the app asks for the body, if the
        client is waiting for it (RFC 9110 §10.1.1; docs/decisions.md A21)."""
        if not self._continue_owed:
            return b""
        self._continue_owed = False
        if self.state is not ResponseState.AWAITING_START or self.client_gone_reason:
            return b""
        if not self.conn.they_are_waiting_for_100_continue:
            return b""
        # Same status-line shape as every other response: with its reason phrase.
        return self.conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=reason_phrase(100))) or b""

    def next_receive_event(self) -> dict[str, Any] | None:
        """What ``receive()`` returns now, or None when it has to wait."""
        # www spec 2.5, "Disconnect - receive event": "Sent to the application if receive
        # is called after a response has been sent", on every such call; request body the
        # app left unread is not delivered after that (docs/decisions.md).
        if self.state is ResponseState.COMPLETE:
            return DISCONNECT
        if self._pending_body is not None:
            event, self._pending_body = self._pending_body, None
            return event
        # ... "or after the HTTP connection has been closed": body that fully arrived
        # before the connection was lost is still delivered first.
        if self.client_gone_reason is not None:
            return DISCONNECT
        return None

    # ------------------------------------------------------------------ app -> peer

    def app_send(self, message: Message) -> bytes:
        """Apply one app message; return the bytes to write (maybe none)."""
        try:
            kind = messages.message_type(message)
        except ASGIProtocolError as exc:
            raise exc.with_state(self.state.name) from None
        if self.state is ResponseState.COMPLETE:
            # www spec 2.5, "Response Body": after completion "any further messages on
            # the channel will be ignored" (docs/decisions.md, "Messages after completion").
            return b""
        if self.client_gone_reason is not None:
            # www spec 2.4: send() on a closed connection raises an OSError subclass.
            raise ClientDisconnected(self.client_gone_reason)
        action = _TABLE.get((self.state, kind))
        try:
            if action is None:
                raise _misuse(kind)
            message = messages.validate(message, kind)
            return action(self, message)
        except ASGIProtocolError as exc:
            raise exc.with_state(self.state.name) from None

    def _hold_start(self, message: Message) -> bytes:
        if message.get("trailers", False):
            raise ASGIProtocolError(
                "http.response.start",
                "asks for trailers, but the http.response.trailers extension is not advertised",
                sections.HTTP_TRAILERS,
            )
        headers = [(n, v) for n, v in message.get("headers", ()) if n not in _SERVER_OWNED_HEADERS]
        check_sendable_head(message["status"], headers, "http.response.start", sections.HTTP_RESPONSE_START)
        self.status = message["status"]
        if not any(n == b"date" for n, _ in headers):
            headers.append((b"date", self.date))
        if self.must_close and not any(n == b"connection" for n, _ in headers):
            headers.append((b"connection", b"close"))  # tell the client this connection ends
        self._held_headers = headers
        self.state = ResponseState.START_HELD
        return b""

    def _first_body(self, message: Message) -> bytes:
        body = bytes(message.get("body", b""))
        more = message.get("more_body", False)
        headers = self._held_headers
        if not more and self.status not in _NO_BODY_STATUSES and not any(n == b"content-length" for n, _ in headers):
            # The whole body is known: frame it with Content-Length (for HEAD too, where
            # it tells what a GET would have carried; RFC 9110 §9.3.2).
            headers = [*headers, (b"content-length", str(len(body)).encode())]
        out = self._h11_send(response_head(self.status, headers), "http.response.start")
        self._held_headers = []
        self.state = ResponseState.SENDING_BODY
        return out + self._body(body, more)

    def _next_body(self, message: Message) -> bytes:
        return self._body(bytes(message.get("body", b"")), message.get("more_body", False))

    def _body(self, body: bytes, more: bool) -> bytes:
        out = b""
        # HEAD, 204 and 304 responses carry no body whatever the app sends (RFC 9110 §9.3.2,
        # §15.3.5, §15.4.5); h11 frames them with length 0.
        if body and self.method != b"HEAD" and self.status not in _NO_BODY_STATUSES:
            out = self._h11_send(h11.Data(data=body), "http.response.body")
        if not more:
            out += self._h11_send(h11.EndOfMessage(), "http.response.body")
            self.state = ResponseState.COMPLETE
        return out

    def _h11_send(self, event: h11.Event, kind: str) -> bytes:
        try:
            return self.conn.send(event) or b""
        except h11.LocalProtocolError as exc:
            self.must_close = True
            section = sections.HTTP_RESPONSE_BODY if kind == "http.response.body" else sections.HTTP_RESPONSE_START
            raise ASGIProtocolError(kind, f"cannot be sent: {exc}", section) from None

    # ------------------------------------------------------------------ app ended

    def app_ended(self) -> bytes:
        """The app returned or raised. Returns what to write; sets ``must_close``.

        Not started (or start held, so nothing reached the wire): 500. Mid-body: the
        connection is closed, never reused (docs/decisions.md A18).
        """
        if self.state is ResponseState.COMPLETE:
            return b""
        self.must_close = True
        if self.client_gone_reason is not None or self.state is ResponseState.SENDING_BODY:
            return b""
        self.status = 500
        self.state = ResponseState.COMPLETE
        return complete_response(
            self.conn,
            500,
            b"Internal Server Error\n",
            date=self.date,
            head_only=self.method == b"HEAD",
        )

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry the next request (h11 decides the wire side)."""
        return not self.must_close and self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE


Action = Callable[[HTTPCycle, Message], bytes]

# (state, message type) -> action. Anything missing is an app error (see _misuse);
# COMPLETE is handled before the table: every message is ignored there.
_TABLE: dict[tuple[ResponseState, str], Action] = {
    (ResponseState.AWAITING_START, "http.response.start"): HTTPCycle._hold_start,
    (ResponseState.START_HELD, "http.response.body"): HTTPCycle._first_body,
    (ResponseState.SENDING_BODY, "http.response.body"): HTTPCycle._next_body,
}


def _misuse(kind: str) -> ASGIProtocolError:
    if kind == "http.response.body":
        return ASGIProtocolError(kind, "sent before http.response.start", sections.HTTP_RESPONSE_BODY)
    if kind == "http.response.start":
        return ASGIProtocolError(kind, "sent twice: the response has already started", sections.HTTP_RESPONSE_START)
    return ASGIProtocolError(kind, "is not a message an http connection accepts", sections.CORE_ERRORS)
