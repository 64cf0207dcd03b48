"""Shorthands shared by the catalogue modules (standard library only)."""

from __future__ import annotations

from typing import Any

from refserver.conformance.catalogue import rules
from refserver.conformance.model import Check, Level, Scenario, ServerNeeds
from refserver.conformance.steps import AppStep, ClientStep, Receive, accept

MUST, SHOULD, MAY, UNSPEC = Level.MUST, Level.SHOULD, Level.MAY, Level.UNSPECIFIED

# Spec references, as the reports cite them.
WWW = "www 2.5"
CORE_ERR = 'asgi spec, "Error Handling"'
WS_SCOPE = 'www spec 2.5, "Websocket Connection Scope"'
WS_CONNECT = 'www spec 2.5, "Connect - receive event"'
WS_ACCEPT = 'www spec 2.5, "Accept - send event"'
WS_RECEIVE = 'www spec 2.5, "Receive - receive event"'
WS_SEND = 'www spec 2.5, "Send - send event"'
WS_DISC = 'www spec 2.5, "Disconnect - receive event"'
WS_CLOSE = 'www spec 2.5, "Close - send event"'
WS_24 = 'www spec 2.5, "Disconnected Client - send exception"'
DENIAL = 'asgi extensions, "Websocket Denial Response"'
HTTP_SCOPE = 'www spec 2.5, "HTTP Connection Scope"'
HTTP_REQ = 'www spec 2.5, "Request - receive event"'
HTTP_START = 'www spec 2.5, "Response Start - send event"'
HTTP_BODY = 'www spec 2.5, "Response Body - send event"'
HTTP_DISC = 'www spec 2.5, "Disconnect - receive event" (HTTP)'
LIFESPAN = "lifespan spec 2.0"
LIFESPAN_STATE = 'lifespan spec 2.0, "Lifespan State"'
LIFESPAN_SHUTDOWN_FAILED = 'lifespan spec 2.0, "Shutdown Failed - send event"'
ZEROCOPY = 'asgi extensions, "Zero Copy Send"'
PATHSEND = 'asgi extensions, "Path Send"'
EARLY_HINTS = 'asgi extensions, "Early Hints"'
TRAILERS = 'asgi extensions, "HTTP Trailers"'

CONNECT_ACCEPT: tuple[AppStep, ...] = (Receive(), accept())

# Groups: the report's rows are grouped by spec section, in this order.
G_HANDSHAKE = "WebSocket: handshake and scope (www WebSocket scope; RFC 6455 §4)"
G_ACCEPT = "WebSocket: accept, subprotocols, headers (www Accept)"
G_DENIAL = "WebSocket: denial (www Close before accept; Denial Response extension)"
G_DATA = "WebSocket: data and framing (www Send/Receive; RFC 6455 §5)"
G_VALIDATE = "WebSocket: invalid app messages (asgi Error Handling)"
G_PEER_CLOSE = "WebSocket: the client or network closes (www Disconnect; RFC 6455 §7)"
G_APP_CLOSE = "WebSocket: the app closes (www Close; RFC 6455 §7.4)"
G_AFTER = "WebSocket: send/receive after the end (www 2.4)"
G_APP_END = "WebSocket: the app returns or raises (asgi Error Handling)"
G_LIMITS = "WebSocket: limits, keepalive, backpressure, shutdown"
G_HTTP_SCOPE = "HTTP: scope (www HTTP scope)"
G_HTTP_FLOW = "HTTP: request and response (www Request/Response)"
G_HTTP_DISC = "HTTP: disconnect and the end of the response (www 2.4)"
G_TLS = "TLS: https and wss (TLS extension; RFC 8446)"
G_LIFESPAN = "Lifespan (lifespan 2.0)"
G_META = "Spec version claims (www Spec Versions)"

GROUP_ORDER = (
    G_HANDSHAKE,
    G_ACCEPT,
    G_DENIAL,
    G_DATA,
    G_VALIDATE,
    G_PEER_CLOSE,
    G_APP_CLOSE,
    G_AFTER,
    G_APP_END,
    G_LIMITS,
    G_HTTP_SCOPE,
    G_HTTP_FLOW,
    G_HTTP_DISC,
    G_TLS,
    G_LIFESPAN,
    G_META,
)


def check(
    observable: str,
    *allowed: str,
    choice: str | None = None,
    level: Level | None = None,
    since: str | None = None,
    label: str = "",
    show: bool = False,
    by_version: tuple[tuple[str, tuple[str, ...]], ...] = (),
    **params: Any,
) -> Check:
    """A check; ``choice`` defaults to the single allowed value."""
    if (
        choice is None
        and len(allowed) == 1
        and not any(ch in allowed[0] for ch in "*?")
        and not allowed[0].startswith("re:")
    ):
        choice = allowed[0]
    return Check(observable, tuple(allowed), choice, level, since, label, params, by_version, show)


def check_fail_close(*codes: str) -> Check:
    """The one rule for every scenario in which the server must *Fail the WebSocket
    Connection* (RFC 6455 §7.1.7): it SHOULD send a close frame with an appropriate status
    code (the first of ``codes`` is refserver's). No close frame at all, an empty one, or
    another code all miss that SHOULD alike: none of them ranks above the others."""
    return Check(
        "client.close",
        codes,
        codes[0],
        rules.FAIL_CLOSE_FRAME.level,
        None,
        f"close frame with {' or '.join(codes)} (RFC 6455 §7.1.7)",
        {},
        (),
        True,
        rules.FAIL_CLOSE_FRAME,
    )


def check_not_logged() -> Check:
    """www spec 2.5, "Disconnected Client - send exception": servers "must be prepared to catch the
    exception they raised" and should not log it as an error. The probe lets
    it escape; the server's output while the scenario ran is read for an error-level line or a
    traceback (``not-observed`` for refserver in-process, whose log is the runner's own)."""
    return Check(
        "server.log",
        ("none", "not-observed"),
        None,
        rules.NOT_LOGGED.level,
        "2.4",
        "the escaped OSError is not logged as an error",
        {},
        (),
        False,
        rules.NOT_LOGGED,
    )


def check_delay(
    frm: str, to: str, max_s: float, *, level: Level | None = None, label: str = "", show: bool = False
) -> Check:
    """The record ``to`` comes at most ``max_s`` seconds after ``frm`` (selectors as in
    :func:`refserver.conformance.observe.delay`)."""
    return Check("delay", ("prompt",), "prompt", level, None, label, {"from": frm, "to": to, "max_s": max_s}, (), show)


def check_elapsed(
    frm: str, to: str, until: str, *allowed: str, level: Level | None = None, label: str = "", show: bool = False
) -> Check:
    """The whole seconds from the record ``frm`` to the first of the records ``to``, up to the
    record ``until`` (see :func:`refserver.conformance.observe.elapsed`); the first allowed
    value is refserver's."""
    params = {"from": frm, "to": to, "until": until}
    return Check("elapsed", allowed, allowed[0], level, None, label, params, (), show)


def ws(
    *,
    id: str,
    title: str,
    lesson: str,
    group: str,
    refs: tuple[str, ...],
    level: Level,
    client: tuple[ClientStep, ...],
    app: tuple[AppStep, ...],
    checks: tuple[Check, ...],
    **kw: Any,
) -> Scenario:
    """A WebSocket scenario (the fields are :class:`Scenario`'s)."""
    return Scenario(id, title, lesson, group, refs, level, "websocket", client, app, checks, **kw)


def http(
    *,
    id: str,
    title: str,
    lesson: str,
    group: str,
    refs: tuple[str, ...],
    level: Level,
    client: tuple[ClientStep, ...],
    app: tuple[AppStep, ...],
    checks: tuple[Check, ...],
    **kw: Any,
) -> Scenario:
    """An HTTP scenario (the fields are :class:`Scenario`'s)."""
    return Scenario(id, title, lesson, group, refs, level, "http", client, app, checks, **kw)


def lifespan(
    *,
    id: str,
    title: str,
    lesson: str,
    refs: tuple[str, ...],
    level: Level,
    client: tuple[ClientStep, ...],
    app: tuple[AppStep, ...],
    checks: tuple[Check, ...],
    **kw: Any,
) -> Scenario:
    kw.setdefault("server", ServerNeeds(lifespan=True))
    return Scenario(id, title, lesson, G_LIFESPAN, refs, level, "lifespan", client, app, checks, **kw)


# send() after the connection is gone: 2.4 and later raise an OSError subclass; before
# 2.4 the core spec's "should be a no-op" applies.
AFTER_CLOSE = (("2.4", ("oserror:*",)),)
