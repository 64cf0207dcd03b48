"""What the scope carries beyond its basic keys: what a server advertises in ``scope["extensions"]``
on a plain-text connection, for HTTP and WebSocket (never ``tls``; otherwise the extensions it
implements, which ones being its choice: refserver's is shown), and every request header, Host
included. Each scenario carries the rule its level rests on. Standard library only."""

from __future__ import annotations

import dataclasses

from refserver.conformance.catalogue import rules as R
from refserver.conformance.catalogue.common import (
    CONNECT_ACCEPT,
    G_HANDSHAKE,
    G_HTTP_SCOPE,
    MUST,
    UNSPEC,
    check,
    http,
    ws,
)
from refserver.conformance.model import Check, Rule, Scenario
from refserver.conformance.steps import Handshake, Receive, Request, Respond, WaitApp, WaitResponses, close_socket

EXTENSIONS_CHOSEN = Rule(
    UNSPEC,
    'asgi spec, "Extensions"',
    "named additions to a protocol specification that are optional but that, if provided by the server and "
    "understood by the application, can be used to get more functionality",
    "which extensions a server implements is its choice; it lists exactly those it implements",
)
SPEC_VERSION = Rule(
    UNSPEC,
    'www spec 2.5, "Spec Versions"',
    "Spec versions let you understand what the server you are using understands.",
    "the scope's spec_version is optional, 2.0 when missing; which version a server claims is its choice, and "
    "refserver claims the one it implements, 2.5",
)

# What refserver advertises on a plain-text HTTP scope: the four HTTP response extensions it
# implements (asgi extensions; docs/decisions.md#early-hints, #trailers, #pathsend, #zerocopysend).
HTTP_EXTENSIONS = (
    '["http.response.early_hint","http.response.pathsend","http.response.trailers","http.response.zerocopysend"]'
)
NO_TLS = 're:^(?!.*"tls").*$'


def ruled(rule: Rule, c: Check) -> Check:
    """``c`` with its own rule (and the rule's level)."""
    return dataclasses.replace(c, rule=rule, level=rule.level)


SCENARIOS: list[Scenario] = [
    http(
        id="http.scope.spec-version",
        title="The www spec version an HTTP scope claims",
        lesson="A server claims the version it implements; without a claim an app must assume 2.0 and forgo what "
        "came after.",
        group=G_HTTP_SCOPE,
        refs=('www spec 2.5, "HTTP Connection Scope"', 'www spec 2.5, "Spec Versions"'),
        level=UNSPEC,
        client=(Request(), WaitResponses(1)),
        app=(Receive(), Respond()),
        checks=(check("app.scope", "*", choice="2.5", key="asgi.spec_version", show=True),),
        rule=SPEC_VERSION,
    ),
    ws(
        id="ws.scope.spec-version",
        title="The www spec version a WebSocket scope claims",
        lesson="As for HTTP: the version the server implements, or 2.0 assumed.",
        group=G_HANDSHAKE,
        refs=('www spec 2.5, "Websocket Connection Scope"', 'www spec 2.5, "Spec Versions"'),
        level=UNSPEC,
        client=(Handshake(), WaitApp("ended")),
        app=(*CONNECT_ACCEPT, close_socket()),
        checks=(check("app.scope", "*", choice="2.5", key="asgi.spec_version", show=True),),
        rule=SPEC_VERSION,
    ),
    http(
        id="http.scope.host-header",
        title="The Host header reaches the scope",
        lesson="Every request header is in scope['headers'], Host too: an app builds its URLs from it.",
        group=G_HTTP_SCOPE,
        refs=('www spec 2.5, "HTTP Connection Scope"',),
        level=MUST,
        client=(
            Request(raw=b"GET {path} HTTP/1.1\r\nHost: example.test\r\nX-Other: 1\r\n\r\n"),
            WaitResponses(1),
        ),
        app=(Receive(), Respond()),
        checks=(
            check("app.header_values", '["example.test"]', name="host", label="host", show=True),
            check("app.header_values", '["1"]', name="x-other", label="x-other"),
        ),
        rule=R.HTTP_SCOPE_HEADERS,
    ),
    http(
        id="http.scope.extensions",
        title="The extensions an HTTP scope advertises on a plain-text connection",
        lesson="No tls entry without TLS; the rest is what the server implements.",
        group=G_HTTP_SCOPE,
        refs=('asgi spec, "Extensions"', 'tls extension, "When to use this extension"'),
        level=MUST,
        client=(Request(), WaitApp("ended")),
        app=(Receive(), Respond()),
        checks=(
            check("app.scope", NO_TLS, key="extensions", label="no tls extension"),
            ruled(
                EXTENSIONS_CHOSEN,
                check(
                    "app.scope",
                    "*",
                    choice=HTTP_EXTENSIONS,
                    key="extensions",
                    label="advertised",
                    show=True,
                ),
            ),
        ),
        rule=R.TLS_NOT_ON_PLAIN,
    ),
    ws(
        id="ws.scope.extensions",
        title="The extensions a WebSocket scope advertises on a plain-text connection",
        lesson="No tls entry without TLS; refserver advertises the denial response, which it implements.",
        group=G_HANDSHAKE,
        refs=('asgi spec, "Extensions"', 'asgi extensions, "Websocket Denial Response"'),
        level=MUST,
        client=(Handshake(), WaitApp("ended")),
        app=(*CONNECT_ACCEPT, close_socket()),
        checks=(
            check("app.scope", NO_TLS, key="extensions", label="no tls extension"),
            ruled(
                EXTENSIONS_CHOSEN,
                check(
                    "app.scope",
                    "*",
                    choice='["websocket.http.response"]',
                    key="extensions",
                    label="advertised",
                    show=True,
                ),
            ),
        ),
        rule=R.TLS_NOT_ON_PLAIN,
    ),
]
