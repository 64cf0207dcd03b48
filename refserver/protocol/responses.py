"""Building HTTP responses with h11: status lines with their reason phrase, the small
complete responses the server itself sends (a refusal, a 500, a 503)."""

from __future__ import annotations

from http import HTTPStatus

import h11

from refserver.errors import ASGIProtocolError

Headers = list[tuple[bytes, bytes]]

# The reason phrase of each status HTTP names (a status line of another has an empty one).
REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def response_head(status: int, headers: Headers) -> h11.Response:
    """Build the h11 response head, with its reason phrase.

    Raises:
        h11.LocalProtocolError: h11 refuses a header.
    """
    return h11.Response(status_code=status, headers=headers, reason=REASONS.get(status, b""))


def complete_response(
    conn: h11.Connection,
    status: int,
    body: bytes,
    *,
    headers: Headers | None = None,
    date: bytes | None = None,
    head_only: bool = False,
) -> bytes:
    """Give the bytes of a whole response of the server's own, which closes the connection.

    Raises:
        h11.LocalProtocolError: h11 cannot send a response now.
    """
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


def sendable_head(status: int, headers: Headers, message_type: str, section: str) -> h11.Response:
    """Build the response head, checked by h11 (asgi spec, "Error Handling": an event the
    server cannot send raises from the ``send()`` that carried it).

    h11 checks that header names are tokens, values have no CR/LF/NUL (RFC 9110 §5.1, §5.5)
    and a content-length is a number.

    Raises:
        ASGIProtocolError: h11 refuses the head.
    """
    try:
        return response_head(status, headers)
    except h11.LocalProtocolError as exc:
        raise ASGIProtocolError(message_type, f"has headers that cannot be sent: {exc}", section) from None
