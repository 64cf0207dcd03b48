"""The ASGI specification's section headings, exactly as the spec spells them, and the one
form in which refserver cites them.

A citation is a document's prefix, a comma and a heading in double quotes::

    www spec 2.5, "Disconnect - receive event"

The prefix names the document, and for the two sub-specifications whose version a scope
advertises (``scope["asgi"]["spec_version"]``) the version refserver implements. A second
heading of the same document may follow: ``www spec 2.5, "Send - send event" and "Close -
send event"``. The headings come from asgiref's ``specs/asgi.rst``, ``specs/www.rst``,
``specs/lifespan.rst``, ``docs/extensions.rst`` and ``specs/tls.rst``, with the spec's
literal markup dropped (the spec writes ``Request - ``receive`` event``; a reader sees
"Request - receive event"). A heading that two sections share (the HTTP and WebSocket
"Disconnect - receive event") is listed once.

``tests/test_citations.py`` checks every citation in the code, the docs and the trace
against this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """One document of the spec: where it lives, how it is cited, its headings."""

    source: str  # the file in the asgiref repository
    prefix: str  # how a citation names it
    headings: tuple[str, ...]


ASGI = Document(
    source="specs/asgi.rst",
    prefix="asgi spec",
    headings=(
        "Abstract",
        "Rationale",
        "Overview",
        "Specification Details",
        "Connection Scope",
        "Events",
        "Applications",
        "Legacy Applications",
        "Protocol Specifications",
        "Middleware",
        "Error Handling",
        "Extensions",
        "Strings and Unicode",
        "Version History",
    ),
)

WWW = Document(
    source="specs/www.rst",
    prefix="www spec 2.5",
    headings=(
        "Spec Versions",
        "HTTP",
        "HTTP Connection Scope",
        "Request - receive event",
        "Response Start - send event",
        "Response Body - send event",
        "Disconnected Client - send exception",
        "Disconnect - receive event",
        "WebSocket",
        "Websocket Connection Scope",
        "Connect - receive event",
        "Accept - send event",
        "Receive - receive event",
        "Send - send event",
        "Close - send event",
        "WSGI Compatibility",
        "WSGI encoding differences",
        "Version History",
    ),
)

LIFESPAN = Document(
    source="specs/lifespan.rst",
    prefix="lifespan spec 2.0",
    headings=(
        "Scope",
        "Lifespan State",
        "Startup - receive event",
        "Startup Complete - send event",
        "Startup Failed - send event",
        "Shutdown - receive event",
        "Shutdown Complete - send event",
        "Shutdown Failed - send event",
        "Version History",
    ),
)

EXTENSIONS = Document(
    source="docs/extensions.rst",
    prefix="asgi extensions",
    headings=(
        "Websocket Denial Response",
        "HTTP/2 Server Push",
        "Zero Copy Send",
        "Path Send",
        "TLS",
        "Early Hints",
        "HTTP Trailers",
        "Debug",
    ),
)

TLS = Document(
    source="specs/tls.rst",
    prefix="tls extension",
    headings=(
        "The Base Protocol",
        "When to use this extension",
        "TLS Connection Scope",
        "Events",
        "Rationale (Informative)",
    ),
)

DOCUMENTS: tuple[Document, ...] = (ASGI, WWW, LIFESPAN, EXTENSIONS, TLS)
BY_PREFIX: dict[str, Document] = {d.prefix: d for d in DOCUMENTS}

_PREFIXES = "|".join(re.escape(d.prefix) for d in sorted(DOCUMENTS, key=lambda d: -len(d.prefix)))
# A citation in the one form, with any further headings of the same document.
CITATION = re.compile(rf'\b({_PREFIXES}), "([^"\n]+)"((?:,? and "[^"\n]+"|, "[^"\n]+")*)')
# Anything that looks like a citation of a spec document followed by a quoted heading, in any
# case and any quotes (``www, "..."``, ``www "..."``, ``TLS extension 0.2, "..."``,
# ``ASGI spec, '...'``); what CITATION does not also match is in another form.
LOOSE = re.compile(
    r"\b(?i:asgi|www|lifespan|tls|extensions?)\b(?i: spec| extensions?| extension)?"
    r"(?: \d+\.\d+)?,? \(?[\"'\u201c\u2018][A-Z]"
)
# A www or lifespan version other than the one implemented: a rule cited by the version that
# brought it is one rule with two citations ("since 2.4" says when it came).
OTHER_VERSION = re.compile(r"\b(www spec (?!2\.5\b)|lifespan spec (?!2\.0\b))(\d+\.\d+)")


def problems(text: str) -> list[str]:
    """Return every citation in ``text`` that is not in the one form or names no heading.

    A citation may wrap over lines, in prose or in a ``#`` comment.
    """
    text = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)
    found = []
    spans = []
    for match in CITATION.finditer(text):
        spans.append(match.span())
        prefix = match.group(1)
        for heading in (match.group(2), *re.findall(r'"([^"]+)"', match.group(3))):
            if heading not in BY_PREFIX[prefix].headings:
                found.append(f"{prefix} has no heading {heading!r}: {match.group(0)!r}")
    for match in OTHER_VERSION.finditer(text):
        found.append(f"a rule cited by the version that brought it (say 'since {match.group(2)}'): {match.group(0)!r}")
    for match in LOOSE.finditer(text):
        if not any(start <= match.start() < end for start, end in spans):
            found.append(f"not in the one form: {text[match.start() : match.end() + 40]!r}")
    return found


__all__ = [
    "ASGI",
    "BY_PREFIX",
    "CITATION",
    "DOCUMENTS",
    "EXTENSIONS",
    "LIFESPAN",
    "LOOSE",
    "OTHER_VERSION",
    "TLS",
    "WWW",
    "Document",
    "problems",
]
