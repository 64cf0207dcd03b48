"""The HTTP response extensions of the ASGI extensions document, as the HTTP machine sends
them on HTTP/1.1: what each adds to the wire, apart from the machine's rows.

- asgi extensions, "Early Hints": a ``103 Early Hints`` informational response (RFC 8297)
  with one ``Link`` header per entry of ``links``.
- asgi extensions, "HTTP Trailers": the trailer section after the last chunk (RFC 9112
  §7.1.2), sent only to a client that asked for it with ``TE: trailers`` (RFC 9110 §10.1.4).

Every HTTP scope advertises the extensions implemented here (:data:`ADVERTISED`; the scope
writes them out as a literal, :func:`refserver.spec.scopes.http_scope`).
"""

from __future__ import annotations

from collections.abc import Iterable

import h11

from refserver.errors import ASGIProtocolError
from refserver.protocol.responses import reason_phrase
from refserver.spec import sections

# asgi spec, "Extensions": a server lists only what it implements, each with a dict of options.
ADVERTISED = ("http.response.early_hint", "http.response.trailers")

Headers = list[tuple[bytes, bytes]]


def early_hint(links: Iterable[bytes]) -> h11.InformationalResponse:
    """Build the 103 response of an ``http.response.early_hint`` message, checked by h11.

    Raises:
        ASGIProtocolError: a link is not a valid header value (RFC 9110 §5.5).
    """
    try:
        return h11.InformationalResponse(
            status_code=103, headers=[(b"link", link) for link in links], reason=reason_phrase(103)
        )
    except h11.LocalProtocolError as exc:
        raise ASGIProtocolError(
            "http.response.early_hint", f"has a link that cannot be sent: {exc}", sections.HTTP_EARLY_HINTS
        ) from None


def accepts_trailers(headers: Headers) -> bool:
    """Tell whether the request's ``TE`` fields list ``trailers`` (RFC 9110 §10.1.4: "The
    "trailers" keyword indicates that the sender will not discard trailer fields")."""
    for name, value in headers:
        if name == b"te" and any(item.strip().lower() == b"trailers" for item in value.split(b",")):
            return True
    return False


def trailers_dropped(*, te_trailers: bool, http_version: bytes | None, head_only: bool, has_length: bool) -> str:
    """Give why the trailers of this response cannot be sent, or "" if they can.

    Trailer fields travel only after the last chunk of a chunked body (RFC 9112 §7.1.2).
    """
    if not te_trailers:
        return "the request did not carry TE: trailers"
    if http_version != b"1.1":
        return "an HTTP/1.0 client gets no chunked body (RFC 9112 §7.1)"
    if head_only:
        return "the response has no body to end with a trailer section (RFC 9110 §6.5)"
    if has_length:
        return "the app's content-length frames the body, and only a chunked body carries trailers (RFC 9112 §7.1.2)"
    return ""


def check_trailers(fields: Headers) -> None:
    """Check that h11 can send the trailer fields, as it checks a response head's.

    Raises:
        ASGIProtocolError: a name is not a token, or a value has CR, LF or NUL (RFC 9110 §5.1, §5.5).
    """
    if not fields:
        return
    try:
        h11.EndOfMessage(headers=fields)
    except h11.LocalProtocolError as exc:
        raise ASGIProtocolError(
            "http.response.trailers", f"has headers that cannot be sent: {exc}", sections.HTTP_TRAILERS
        ) from None
