"""One validator per app->server message type.

asgi spec, "Error Handling": an event with an unknown type, missing required keys or
values of the wrong Python type makes ``send()`` raise; unknown *extra* keys must not.
Each validator checks the shape only; which messages are allowed in which state is
decided by the state tables in :mod:`refserver.protocol`.

A breach with exactly one safe reading raises an error that carries it
(:class:`~refserver.errors.SafeReading`); under ``--app-violations warn`` the runtime serves
the message in that reading (:mod:`refserver.violations`; docs/decisions.md#app-violations).
Only one rule has one: header names that are not lower-case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from refserver.errors import ASGIProtocolError, SafeReading
from refserver.spec import sections

Message = Mapping[str, Any]
Validator = Callable[[Message], object]


def _fail(message: Message, problem: str, section: str) -> NoReturn:
    raise ASGIProtocolError(str(message.get("type")), problem, section)


def _optional_bool(message: Message, key: str, section: str) -> None:
    value = message.get(key, False)
    if not isinstance(value, bool):
        _fail(message, f"has {key}={value!r}; it must be a bool", section)


def check_headers(message: Message, section: str, key: str = "headers") -> None:
    """Headers: an iterable of [name, value] byte pairs, names lower-case, no pseudo-headers."""
    headers = message.get(key, ())
    if isinstance(headers, str | bytes | bytearray | Mapping) or not hasattr(headers, "__iter__"):
        _fail(
            message,
            f"has {key} of type {type(headers).__name__}; it must be an iterable of [name, value] byte pairs",
            section,
        )
    for item in headers:
        try:
            name, value = item
        except (TypeError, ValueError):
            _fail(message, f"has a header {item!r} that is not a [name, value] pair", section)
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            _fail(message, f"has a header {item!r} whose name and value are not both bytes", section)
        if name != name.lower():
            _header_name_case(message, key, name, section)
        if name.startswith(b":"):
            _fail(message, f"has a pseudo-header {name!r}", section)


HEADER_NAME_CASE = "header names are lower-case"


def _header_name_case(message: Message, key: str, name: bytes, section: str) -> NoReturn:
    """www spec 2.5: "Header names must be lowercased." HTTP field names are case-insensitive
    (RFC 9110 §5.1), so the name lower-cased is the one safe reading."""
    lowered = []
    for item in message.get(key, ()):
        try:
            item_name, value = item
        except (TypeError, ValueError):
            lowered.append(item)  # not a pair: the check of the reading names it
            continue
        lowered.append((item_name.lower(), value) if isinstance(item_name, bytes) else item)
    reading = SafeReading(HEADER_NAME_CASE, f"sent as {name.lower()!r}", {**message, key: lowered})
    problem = f"has a header name {name!r} that is not lower-case"
    raise ASGIProtocolError(str(message.get("type")), problem, section, reading)


def _status(message: Message, section: str) -> None:
    if "status" not in message:
        _fail(message, "has no status (a required key)", section)
    status = message["status"]
    if not isinstance(status, int) or isinstance(status, bool):
        _fail(message, f"has status {status!r}; it must be an int", section)
    if not 100 <= status <= 599:
        _fail(message, f"has status {status}; it must be in 100..599", section)
    if status < 200:
        _fail(
            message,
            f"has status {status}: an informational (1xx) status cannot be the final response (RFC 9110 §15.2)",
            section,
        )


def validate_http_response_start(message: Message) -> None:
    """www spec 2.5, "Response Start - send event": status, headers, trailers."""
    section = sections.HTTP_RESPONSE_START
    _status(message, section)
    check_headers(message, section)
    _optional_bool(message, "trailers", section)


def response_body(message: Message, section: str = sections.HTTP_RESPONSE_BODY) -> tuple[bytes, bool]:
    """www spec 2.5, "Response Body - send event": check body and more_body, and return
    them (the body as bytes)."""
    body = message.get("body", b"")
    if not isinstance(body, (bytes, bytearray)):
        _fail(message, f"has body of type {type(body).__name__}; it must be bytes", section)
    more = message.get("more_body", False)
    if not isinstance(more, bool):
        _fail(message, f"has more_body={more!r}; it must be a bool", section)
    return bytes(body), more


def validate_http_response_early_hint(message: Message) -> None:
    """asgi extensions, "Early Hints": ``links``, an iterable of byte strings (link header
    field values, RFC 8288)."""
    section = sections.HTTP_EARLY_HINTS
    links: Any = message.get("links")
    if isinstance(links, str | bytes | bytearray | Mapping) or not hasattr(links, "__iter__"):
        _fail(message, f"has links of type {type(links).__name__}; it must be an iterable of byte strings", section)
    for link in links:
        if not isinstance(link, bytes):
            _fail(message, f"has a link {link!r} that is not a byte string", section)


def validate_http_response_trailers(message: Message) -> None:
    """asgi extensions, "HTTP Trailers": headers (as for a start), more_trailers."""
    check_headers(message, sections.HTTP_TRAILERS)
    _optional_bool(message, "more_trailers", sections.HTTP_TRAILERS)


def validate_websocket_accept(message: Message) -> None:
    """www spec 2.5, "Accept - send event": subprotocol, headers (2.1)."""
    section = sections.WS_ACCEPT
    subprotocol = message.get("subprotocol")
    if subprotocol is not None and not isinstance(subprotocol, str):
        _fail(message, f"has subprotocol {subprotocol!r}; it must be a str or None", section)
    check_headers(message, section)


def validate_websocket_send(message: Message) -> None:
    """www spec 2.5, "Send - send event": exactly one of bytes and text is not None."""
    section = sections.WS_SEND
    data = message.get("bytes")
    text = message.get("text")
    if data is not None and text is not None:
        _fail(message, "has both bytes and text; exactly one must be set", section)
    if data is None and text is None:
        _fail(message, "has neither bytes nor text; exactly one must be set", section)
    if text is not None and not isinstance(text, str):
        _fail(message, f"has text of type {type(text).__name__}; it must be a str", section)
    if data is not None and not isinstance(data, (bytes, bytearray)):
        _fail(message, f"has bytes of type {type(data).__name__}; it must be bytes", section)


# RFC 6455 §7.4.1/§7.4.2 and the IANA registry: the codes an endpoint may put on the wire.
# 1004 is reserved, 1005/1006/1015 are local-only, 1016-2999 are reserved for future RFCs.
def close_code_may_be_sent(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def validate_websocket_close(message: Message) -> None:
    """www spec 2.5, "Close - send event": code (default 1000), reason (2.3, default "")."""
    section = sections.WS_CLOSE
    code = message.get("code", 1000)
    if code is not None:
        if not isinstance(code, int) or isinstance(code, bool):
            _fail(message, f"has code {code!r}; it must be an int", section)
        if not close_code_may_be_sent(code):
            _fail(
                message,
                f"has code {code}, which may not be sent in a close frame "
                f"(allowed: 1000-1003, 1007-1014, 3000-4999; {sections.WS_RFC_CLOSE_CODES})",
                section,
            )
    reason = message.get("reason")
    if reason is not None and not isinstance(reason, str):
        _fail(message, f"has reason {reason!r}; it must be a str", section)


def validate_websocket_http_response_start(message: Message) -> None:
    """asgi extensions, "Websocket Denial Response": same keys as http.response.start."""
    section = sections.WS_DENIAL
    _status(message, section)
    check_headers(message, section)


def validate_websocket_http_response_body(message: Message) -> None:
    """asgi extensions, "Websocket Denial Response": same keys as http.response.body."""
    response_body(message, sections.WS_DENIAL)


def validate_lifespan_complete(message: Message) -> None:
    """lifespan spec 2.0: startup.complete / shutdown.complete carry no keys."""


def validate_lifespan_failed(message: Message) -> None:
    """lifespan spec 2.0: startup.failed / shutdown.failed carry ``message`` (str, default "")."""
    text = message.get("message", "")
    if text is not None and not isinstance(text, str):
        section = (
            sections.LIFESPAN_SHUTDOWN_FAILED
            if message.get("type") == "lifespan.shutdown.failed"
            else sections.LIFESPAN_STARTUP_FAILED
        )
        _fail(message, f"has message {text!r}; it must be a str", section)


VALIDATORS: dict[str, Validator] = {
    "http.response.start": validate_http_response_start,
    "http.response.body": response_body,
    "http.response.early_hint": validate_http_response_early_hint,
    "http.response.trailers": validate_http_response_trailers,
    "websocket.accept": validate_websocket_accept,
    "websocket.send": validate_websocket_send,
    "websocket.close": validate_websocket_close,
    "websocket.http.response.start": validate_websocket_http_response_start,
    "websocket.http.response.body": validate_websocket_http_response_body,
    "lifespan.startup.complete": validate_lifespan_complete,
    "lifespan.startup.failed": validate_lifespan_failed,
    "lifespan.shutdown.complete": validate_lifespan_complete,
    "lifespan.shutdown.failed": validate_lifespan_failed,
}


def message_type(message: object) -> str:
    """The ``type`` of an app message, or raise naming what was sent instead."""
    if not isinstance(message, Mapping):
        raise ASGIProtocolError(
            repr(message)[:60],
            f"is a {type(message).__name__}, not a dict event",
            sections.CORE_EVENTS,
        )
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ASGIProtocolError(f"event {dict(message)!r}"[:80], "has no str 'type' key", sections.CORE_EVENTS)
    return kind


def with_reiterable_headers(message: Message, key: str = "headers") -> Message:
    """www spec 2.5: ``headers`` is "an iterable of [name, value] two-item iterables". An
    iterator (a generator, say) can be read only once, so a message carrying one is
    copied with the headers in a list before it is validated and used."""
    headers = message.get(key)
    if isinstance(headers, Iterator):
        return {**message, key: list(headers)}
    return message


_CARRY_HEADERS = frozenset(
    {"http.response.start", "http.response.trailers", "websocket.accept", "websocket.http.response.start"}
)


def validate(message: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """Check the shape of a known message type and return the message to act on (headers
    given as an iterator are read once, into a list). Unknown types are the state
    table's job."""
    validator = VALIDATORS.get(kind)
    if validator is None:
        return message
    if kind in _CARRY_HEADERS:
        message = with_reiterable_headers(message)
    elif kind == "http.response.early_hint":
        message = with_reiterable_headers(message, "links")
    validator(message)
    return message
