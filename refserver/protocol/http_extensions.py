"""The HTTP response extensions of the ASGI extensions document, as the HTTP machine sends
them on HTTP/1.1: what each adds to the wire, apart from the machine's rows.

- asgi extensions, "Early Hints": a ``103 Early Hints`` informational response (RFC 8297)
  with one ``Link`` header per entry of ``links``.

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
ADVERTISED = ("http.response.early_hint",)


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
