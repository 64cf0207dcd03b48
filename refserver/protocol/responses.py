"""Building HTTP responses with h11: status lines with their reason phrase, and the
small complete responses the server itself sends (400, 403, 426, 431, 500, 503)."""

from __future__ import annotations

from http import HTTPStatus

import h11

from refserver.errors import ASGIProtocolError

Headers = list[tuple[bytes, bytes]]


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def reason_phrase(status: int) -> bytes:
    return _REASONS.get(status, b"")


def response_head(status: int, headers: Headers) -> h11.Response:
    return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))


def complete_response(
    conn: h11.Connection,
    status: int,
    body: bytes,
    *,
    headers: Headers | None = None,
    date: bytes | None = None,
    head_only: bool = False,
) -> bytes:
    """A whole response that closes the connection. Raises h11.LocalProtocolError if h11
    cannot send a response now."""
    all_headers = [
        *(headers or ()),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if date is not None:
        all_headers.append((b"date", date))
    out = conn.send(response_head(status, all_headers)) or b""
    if body and not head_only:
        out += conn.send(h11.Data(data=body)) or b""
    return out + (conn.send(h11.EndOfMessage()) or b"")


def check_sendable_head(status: int, headers: Headers, message_type: str, section: str) -> None:
    """asgi spec, "Error Handling": an event the server cannot send raises from the send()
    that carried it, leaving the state unchanged. h11 checks that header names are tokens,
    values have no CR/LF/NUL (RFC 9110 §5.1, §5.5) and a content-length is a number."""
    sendable_head(status, headers, message_type, section)


# Response heads h11 has built and validated, by (status, headers). An app answers most requests
# with the same few heads (its own header list, the Date of this second), and h11's validation
# of a head (a regular expression per name and value) is the costliest step of a small response;
# an h11 event is immutable, so one serves every response with that head.
_HEADS: dict[tuple[int, tuple[tuple[bytes, bytes], ...]], h11.Response] = {}
HEADS_KEPT = 64  # at most this many; then the cache starts again


def sendable_head(status: int, headers: Headers, message_type: str, section: str) -> h11.Response:
    """The response head, validated as :func:`check_sendable_head` does. ``headers`` are
    [name, value] byte pairs (the message's validator checked them); pairs equal by value
    make the same head, and tuples of them are kept for the next response."""
    key = (status, tuple(headers))
    try:
        head, keep = _HEADS.get(key), True
    except TypeError:  # [name, value] lists are not hashable: such heads are not kept
        head, keep = None, False
    if head is not None:
        return head
    try:
        head = response_head(status, headers)
    except h11.LocalProtocolError as exc:
        raise ASGIProtocolError(message_type, f"has headers that cannot be sent: {exc}", section) from None
    if keep:
        if len(_HEADS) >= HEADS_KEPT:
            _HEADS.clear()
        _HEADS[key] = head
    return head
