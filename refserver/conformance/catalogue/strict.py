"""Scenarios for request framing a front-end may read differently (request smuggling): obs-fold in
a framing header, chunk extensions outside their grammar, lengths of 2**64 and more, control bytes
in a header value, a WebSocket upgrade with both Content-Length and Transfer-Encoding, an over-long
request target, an absolute-form target, and a request body that trickles. Most send a second,
"smuggled" request behind the first: a server that serves it read the first one's framing in a way
another reader would not. Standard library only."""

from __future__ import annotations

from refserver.conformance.catalogue.common import (
    CONNECT_ACCEPT,
    G_HANDSHAKE,
    G_HTTP_FLOW,
    G_HTTP_SCOPE,
    HTTP_SCOPE,
    MUST,
    SHOULD,
    UNSPEC,
    check,
    check_elapsed,
    http,
    ws,
)
from refserver.conformance.model import Level, Scenario, ServerNeeds
from refserver.conformance.steps import (
    Connect,
    DrainBody,
    Mark,
    Receive,
    Request,
    Respond,
    Send,
    Trickle,
    WaitEOF,
    WaitResponses,
)

# The request behind the first one, on the same connection; its path is the scenario's own, so
# the probe app serves it, and a second status in client.statuses shows it was served.
SMUGGLED = b"GET {path}?smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n"
POST = b"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
NOT_101 = "re:(?!101$).*"  # any answer but a switch to WebSocket
STRICT = "docs/decisions.md#strict-request-framing"
# The app reads the body (it may get http.disconnect instead) and answers; a send() the server
# refuses because it already answered is caught.
DRAIN_AND_ANSWER = (
    DrainBody(),
    Send({"type": "http.response.start", "status": 200}, catch=True),
    Send({"type": "http.response.body", "body": b"ok"}, catch=True),
)

# A body that trickles: Content-Length 100, then one byte every TRICKLE_EVERY_S, TRICKLE_BYTES
# times (a 4 s window, ended early when the server ends the connection). refserver runs with a
# grace period of TRICKLE_GRACE_S (docs/decisions.md#request-body-rate): it ends halfway between
# two bytes, so no byte arrives as the timer fires (which would start a new window); a peer
# without such an option runs on its own default, and the cell shows whether it cuts in the window.
TRICKLE_EVERY_S = 0.5
TRICKLE_BYTES = 8
TRICKLE_GRACE_S = 1.25


def _smuggling(id: str, title: str, lesson: str, refs: tuple[str, ...], level: Level, data: bytes) -> Scenario:
    """``data`` then the smuggled request: refserver answers 400 and closes, so only one status."""
    return http(
        id=id,
        title=title,
        lesson=lesson,
        group=G_HTTP_FLOW,
        refs=refs,
        level=level,
        client=(Request("POST", raw=data + SMUGGLED), WaitResponses(1), WaitEOF(2.0)),
        app=DRAIN_AND_ANSWER,
        checks=(check("client.statuses", "400", choice="400", label="400, nothing behind it served", show=True),),
    )


SCENARIOS: list[Scenario] = [
    http(
        id="http.strict.obs-fold-framing",
        title="Transfer-Encoding folded onto its value (obs-fold), then a second request",
        lesson="An obs-fold is rejected with 400 or unfolded before the value is used; a server that does neither "
        "frames the body differently from one that does, and serves the body's bytes as a request.",
        group=G_HTTP_FLOW,
        refs=("RFC 9112 §5.2", "docs/decisions.md#obs-fold"),
        level=MUST,
        client=(
            Request(
                "POST",
                raw=POST + b"Transfer-Encoding: \r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
            ),
            WaitResponses(1),
            WaitEOF(2.0),
        ),
        app=DRAIN_AND_ANSWER,
        checks=(check("client.statuses", "400", "200,200", choice="400", label="rejected, or unfolded", show=True),),
    ),
    http(
        id="http.strict.obs-fold-content-length",
        title="Content-Length folded onto its value (obs-fold), then a second request",
        lesson="A folded Content-Length is rejected with 400 or unfolded; read any other way, the body's bytes "
        "become the next request.",
        group=G_HTTP_FLOW,
        refs=("RFC 9112 §5.2", "docs/decisions.md#obs-fold"),
        level=MUST,
        client=(
            Request("POST", raw=POST + b"Content-Length:\r\n 5\r\n\r\nhello" + SMUGGLED),
            WaitResponses(1),
            WaitEOF(2.0),
        ),
        app=DRAIN_AND_ANSWER,
        checks=(check("client.statuses", "400", "200,200", choice="400", label="rejected, or unfolded", show=True),),
    ),
    _smuggling(
        "http.strict.chunk-extension-bare-cr",
        "A chunk extension with a bare CR (5;a\\rb), then a second request",
        "A bare CR is invalid; a chunk extension is a token with a token or quoted-string value, and a "
        "chunk line that is neither is a bad request.",
        ("RFC 9112 §2.2", "RFC 9112 §7.1.1", STRICT),
        SHOULD,
        CHUNKED + b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    ),
    _smuggling(
        "http.strict.chunk-extension-nul",
        "A chunk extension with a NUL value (5;a=\\x00), then a second request",
        "A chunk extension's value is a token or a quoted-string; a NUL is neither, and the chunk line is a "
        "bad request.",
        ("RFC 9112 §7.1.1", STRICT),
        SHOULD,
        CHUNKED + b"5;a=\x00\r\nhello\r\n0\r\n\r\n",
    ),
    http(
        id="http.strict.chunk-size-2-64",
        title="A chunk size of 2**64 + 5 (a 64-bit reader sees 5), then a second request",
        lesson="A chunk size must not overflow the reader; no real body is that long, and refusing it keeps a "
        "front-end that counts in 64 bits from reading a different body.",
        group=G_HTTP_FLOW,
        refs=("RFC 9112 §7.1", STRICT),
        level=MUST,
        client=(
            Request("POST", raw=CHUNKED + b"10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
            WaitResponses(1, timeout=2.0),
            WaitEOF(2.0),
        ),
        app=DRAIN_AND_ANSWER,
        checks=(
            check("client.statuses", "400", "413", "none:*", choice="400", label="the second request is never served"),
            check("client.statuses", "400", level=UNSPEC, label="status", show=True),
        ),
    ),
    http(
        id="http.strict.content-length-2-64",
        title="Content-Length: 18446744073709551621 (2**64 + 5; a 64-bit reader sees 5), then a second request",
        lesson="A Content-Length must not overflow the reader; no real body is that long, and refusing it keeps a "
        "front-end that counts in 64 bits from reading a different body.",
        group=G_HTTP_FLOW,
        refs=("RFC 9110 §8.6", "RFC 9112 §6.2", STRICT),
        level=MUST,
        client=(
            Request("POST", raw=POST + b"Content-Length: 18446744073709551621\r\n\r\nhello" + SMUGGLED),
            WaitResponses(1, timeout=2.0),
            WaitEOF(2.0),
        ),
        app=DRAIN_AND_ANSWER,
        checks=(
            check("client.statuses", "400", "413", "none:*", choice="400", label="the second request is never served"),
            check("client.statuses", "400", level=UNSPEC, label="status", show=True),
        ),
    ),
    http(
        id="http.strict.control-byte",
        title="A header value with a control byte (0x01)",
        lesson="Control bytes other than HTAB are invalid in a field value; a recipient may keep them, the "
        "reference rejects them as it does CR, LF and NUL.",
        group=G_HTTP_FLOW,
        refs=("RFC 9110 §5.5", STRICT),
        level=UNSPEC,
        client=(Request(raw=b"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-A: a\x01b\r\n\r\n"), WaitResponses(1)),
        app=(Receive(), Respond()),
        checks=(
            check("client.status", "400", "200", choice="400", label="status", show=True),
            check("app.called", "not-called", "called", choice="not-called", label="the app is not called"),
        ),
    ),
    ws(
        id="ws.handshake.cl-and-te",
        title="An opening handshake with both Content-Length and Transfer-Encoding",
        lesson="A request with both is an error the server must close the connection after; it cannot be switched "
        "to a WebSocket.",
        group=G_HANDSHAKE,
        refs=("RFC 9112 §6.1", "RFC 6455 §4.2.1", STRICT),
        level=MUST,
        client=(
            Request(
                raw=b"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            WaitResponses(1, timeout=2.0),
        ),
        app=CONNECT_ACCEPT,
        checks=(
            check("client.status", NOT_101, label="no switch to WebSocket"),
            check("client.status", "400", level=UNSPEC, label="status", show=True),
        ),
    ),
    http(
        id="http.strict.uri-too-long",
        title="A request target of 70,000 bytes",
        lesson="A server that will not parse a target that long answers 414 (URI Too Long), not 431 or silence.",
        group=G_HTTP_FLOW,
        refs=("RFC 9112 §3", "docs/decisions.md#uri-too-long-414"),
        level=MUST,
        client=(
            Request(raw=b"GET {path}?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            WaitResponses(1),
        ),
        app=(Receive(), Respond()),
        checks=(check("client.status", "414", "200", choice="414", label="414, or the request is served", show=True),),
    ),
    http(
        id="http.strict.absolute-form-host",
        title="An absolute-form target (http://evil.example/...) with Host: a",
        lesson="The origin server ignores the Host header and uses the target's authority; the app sees it as host.",
        group=G_HTTP_SCOPE,
        refs=("RFC 9112 §3.2.2", HTTP_SCOPE, "docs/decisions.md#absolute-form-host"),
        level=MUST,
        client=(Request(raw=b"GET http://evil.example{path} HTTP/1.1\r\nHost: {host}\r\n\r\n"), WaitResponses(1)),
        app=(Receive(), Respond()),
        checks=(check("app.header_values", '["evil.example"]', name="host", label="host is the target's", show=True),),
    ),
    http(
        id="http.strict.body-trickle",
        title=f"A body of Content-Length 100 that trickles, a byte every {TRICKLE_EVERY_S:g} s",
        lesson="A server may stop waiting for a body that comes too slowly; 408 (Request Timeout) says it did not "
        "get the whole request in the time it was prepared to wait. No RFC requires the cut.",
        group=G_HTTP_FLOW,
        refs=("RFC 9110 §15.5.9", "docs/decisions.md#request-body-rate"),
        level=UNSPEC,
        client=(
            Connect(),
            Mark("head"),  # before the head is written: the time measured is never less than the server's
            Request("POST", raw=POST + b"Content-Length: 100\r\n\r\n"),
            Trickle(TRICKLE_BYTES, TRICKLE_EVERY_S),
            Mark("window-ended"),
        ),
        app=(DrainBody(timeout=6.0), *DRAIN_AND_ANSWER[1:]),
        checks=(
            check("client.status", "408", label="status", show=True),
            check_elapsed(
                "client:mark:head",
                "client:response|client:eof|client:rst",
                "client:mark:window-ended",
                "1-2 s",
                label=f"cut after (within {TRICKLE_EVERY_S * TRICKLE_BYTES:g} s)",
                show=True,
            ),
        ),
        server=ServerNeeds(request_body_timeout_s=TRICKLE_GRACE_S),
    ),
]

__all__ = ["SCENARIOS"]
