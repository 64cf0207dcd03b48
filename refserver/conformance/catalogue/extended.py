"""Scenarios for what the first catalogue left out: HTTP/1.0 and connection closing, bodies
that do not match their Content-Length, body-less statuses, the response extensions (judged
against what the server advertises in ``scope["extensions"]``: n/a when it does not), lifespan
state on WebSocket connections and a failed shutdown, and more of the WebSocket opening
handshake. Standard library only."""

from __future__ import annotations

import zlib

from refserver.conformance.catalogue.common import (
    CONNECT_ACCEPT,
    DENIAL,
    G_DATA,
    G_DENIAL,
    G_HANDSHAKE,
    G_HTTP_FLOW,
    G_HTTP_SCOPE,
    HTTP_BODY,
    HTTP_SCOPE,
    HTTP_START,
    MAY,
    MUST,
    SHOULD,
    UNSPEC,
    WS_RECEIVE,
    WS_SCOPE,
    ck,
    http,
    lifespan,
    ws,
)
from refserver.conformance.model import (
    Check,
    Scenario,
    ServerNeeds,
)
from refserver.conformance.steps import (
    AppMark,
    CloseTCP,
    DrainBody,
    FileResponse,
    FrameIfNegotiated,
    Handshake,
    Receive,
    Request,
    RequireExtension,
    Respond,
    Send,
    SetState,
    ShutdownServer,
    WaitApp,
    WaitClose,
    WaitEOF,
    WaitResponses,
)

NOT_101 = "re:(?!101$).*"  # any answer but a switch to WebSocket
ZEROCOPY = 'extensions "Zero Copy Send"'
PATHSEND = 'extensions "Path Send"'
EARLY_HINTS = 'extensions "Early Hints"'
TRAILERS = 'extensions "HTTP Trailers"'
LIFESPAN_STATE = 'lifespan "Lifespan State"'
LIFESPAN_SHUTDOWN_FAILED = 'lifespan "Shutdown Failed - send event"'


def deflated(text: str) -> bytes:
    """A permessage-deflate payload (RFC 7692 §7.2.1): raw DEFLATE, with the 0x00 0x00 0xff
    0xff that ends the sync flush removed."""
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4]


def _closes(label: str) -> Check:
    return ck("client.end", "eof", "rst", choice="eof", label=label)


STATE_LIFESPAN = (
    Receive(10.0),
    SetState("k", "v"),
    Send({"type": "lifespan.startup.complete"}),
    Receive(20.0),
    Send({"type": "lifespan.shutdown.complete"}),
)
START_OK = {"type": "http.response.start", "status": 200, "headers": [[b"content-type", b"text/plain"]]}

SCENARIOS: list[Scenario] = [
    # ------------------------------------------------------------------ HTTP/1.0, closing
    http(
        "http.version.1-0",
        "An HTTP/1.0 request without keep-alive",
        "The scope says 1.0, and the server closes the connection after the response.",
        G_HTTP_SCOPE,
        (HTTP_SCOPE, "RFC 9112 §9.3"),
        MUST,
        client=(Request(raw=b"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"), WaitResponses(1), WaitEOF(3.0)),
        app=(Receive(), Respond(200, b"old")),
        checks=(
            ck("app.scope", "1.0", key="http_version", label="http_version", show=True),
            ck("client.status", "200"),
            ck("client.body", "old"),
            _closes("the connection is closed after the response"),
        ),
    ),
    http(
        "http.connection-close",
        "Connection: close on an HTTP/1.1 request",
        "A server that receives the close option closes the connection after its response.",
        G_HTTP_FLOW,
        ("RFC 9112 §9.6",),
        MUST,
        client=(Request(headers=(("Connection", "close"),)), WaitResponses(1), WaitEOF(3.0)),
        app=(Receive(), Respond()),
        checks=(ck("client.status", "200"), _closes("the connection is closed after the response")),
    ),
    http(
        "http.scope.non-utf8-path",
        "A percent escape that is not UTF-8 (%FF)",
        "raw_path keeps the bytes as sent; what path decodes to is not specified.",
        G_HTTP_SCOPE,
        (HTTP_SCOPE, "docs/decisions.md #9"),
        MUST,
        client=(Request(suffix="/a%FFb"), WaitResponses(1)),
        app=(Receive(), Respond()),
        checks=(
            ck(
                "app.scope",
                "b'/*/a%FFb'",
                "not-called",
                choice="b'/*/a%FFb'",
                key="raw_path",
                label="raw_path",
                show=True,
            ),
            ck("app.scope", "*", choice="*/a\ufffdb", key="path", level=UNSPEC, label="path", show=True),
            ck("client.status", "200", "400", choice="200", level=UNSPEC, label="status"),
        ),
    ),
    # ------------------------------------------------------------------ bodies and statuses
    http(
        "http.response.204",
        "A 204 response, twice on one connection",
        "A 204 has no content: no Content-Length, no Transfer-Encoding, and the connection stays in sync.",
        G_HTTP_FLOW,
        ("RFC 9110 §8.6", "RFC 9112 §6.1", "RFC 9110 §15.3.5"),
        MUST,
        client=(Request(), WaitResponses(1), Request(), WaitResponses(2)),
        app=(Receive(), Respond(204, b"")),
        checks=(
            ck("client.statuses", "204,204"),
            ck("client.has_headers", "none", names=["content-length", "transfer-encoding"]),
        ),
    ),
    http(
        "http.response.304",
        "A 304 response, twice on one connection",
        "A 304 has no content, and the connection stays in sync.",
        G_HTTP_FLOW,
        ("RFC 9110 §15.4.5", "RFC 9112 §6.3"),
        MUST,
        client=(Request(), WaitResponses(1), Request(), WaitResponses(2)),
        app=(Receive(), Respond(304, b"")),
        checks=(ck("client.statuses", "304,304"), ck("client.bodies", '["",""]')),
    ),
    http(
        "http.response.more-than-content-length",
        "The app sends more bytes than its Content-Length",
        "The client never gets more than the declared length as the response, nor the rest as another one.",
        G_HTTP_FLOW,
        (HTTP_BODY, "RFC 9112 §6.3"),
        MUST,
        client=(Request(), WaitResponses(1), Request(), WaitResponses(2, 2.0)),
        app=(
            Receive(),
            Send({"type": "http.response.start", "status": 200, "headers": [[b"content-length", b"5"]]}),
            Send({"type": "http.response.body", "body": b"0123456789"}, catch=True),
        ),
        checks=(
            ck("client.bodies", '["01234"]', '["01234","01234"]', "[]", choice="[]", show=True),
            ck("client.statuses", "200", "200,200", "none:*", choice="none:eof", label="no stray response"),
            ck("app.step", "*", choice="error:*", step=2, level=UNSPEC, label="the long body send()"),
        ),
    ),
    http(
        "http.response.fewer-than-content-length",
        "The app returns after fewer bytes than its Content-Length",
        "The response cannot be completed: the server closes the connection instead of leaving the client waiting.",
        G_HTTP_FLOW,
        (HTTP_BODY, "RFC 9110 §8.6", "RFC 9112 §6.3"),
        MUST,
        client=(Request(), WaitEOF(3.0)),
        app=(
            Receive(),
            Send({"type": "http.response.start", "status": 200, "headers": [[b"content-length", b"10"]]}),
            Send({"type": "http.response.body", "body": b"01234"}),
        ),
        checks=(_closes("the connection is closed"),),
    ),
    http(
        "http.request.cl-and-te",
        "A request with both Content-Length and Transfer-Encoding: chunked",
        "Transfer-Encoding wins (or the request is rejected), and the connection is closed after the response.",
        G_HTTP_FLOW,
        ("RFC 9112 §6.1", "RFC 9112 §6.3"),
        MUST,
        client=(
            Request(
                raw=b"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            ),
            WaitResponses(1),
            WaitEOF(3.0),
        ),
        app=(DrainBody(), Respond()),
        checks=(
            ck("app.body", "hello", "not-reached", choice="hello", label="the body is the chunked one", show=True),
            ck("client.status", "200", "400", choice="200", level=UNSPEC, label="status"),
            _closes("the connection is closed after the response"),
        ),
    ),
    # ------------------------------------------------------------------ response extensions
    http(
        "http.ext.pathsend",
        "http.response.pathsend, where advertised",
        "A server that advertises Path Send sends the file's content as the body.",
        G_HTTP_FLOW,
        (PATHSEND,),
        SHOULD,
        client=(Request(), WaitResponses(1)),
        app=(Receive(), RequireExtension("http.response.pathsend"), FileResponse("path", b"from a file")),
        checks=(ck("client.body", "from a file", show=True), ck("client.status", "200")),
        extension="http.response.pathsend",
    ),
    http(
        "http.ext.zerocopysend",
        "http.response.zerocopysend, where advertised",
        "A server that advertises Zero Copy Send sends the file's content as the body.",
        G_HTTP_FLOW,
        (ZEROCOPY,),
        SHOULD,
        client=(Request(), WaitResponses(1)),
        app=(
            Receive(),
            RequireExtension("http.response.zerocopysend"),
            FileResponse("zerocopy", b"zero copy"),
        ),
        checks=(ck("client.body", "zero copy", show=True), ck("client.status", "200")),
        extension="http.response.zerocopysend",
    ),
    http(
        "http.ext.early-hint",
        "http.response.early_hint, where advertised",
        "The hint is accepted (send() returns); the server may send a 103 or ignore it, and the response follows.",
        G_HTTP_FLOW,
        (EARLY_HINTS, HTTP_START),
        MUST,
        client=(Request(), WaitResponses(1)),
        app=(
            Receive(),
            RequireExtension("http.response.early_hint"),
            Send(START_OK),
            Send({"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload; as=style"]}, catch=True),
            Send({"type": "http.response.body", "body": b"after the hint"}),
        ),
        checks=(
            ck("client.body", "after the hint"),
            ck("app.step", "returned", step=3, level=SHOULD, label="send(early_hint) returns", show=True),
            ck("client.informational", "103", "none", choice="none", level=MAY, label="103 sent"),
        ),
        extension="http.response.early_hint",
    ),
    http(
        "http.ext.trailers",
        "http.response.trailers, where advertised, to a client that accepts them",
        "With trailers: True the response ends at the trailers message; the client gets the body and the trailer.",
        G_HTTP_FLOW,
        (TRAILERS,),
        MUST,
        client=(Request(headers=(("TE", "trailers"),)), WaitResponses(1)),
        app=(
            Receive(),
            RequireExtension("http.response.trailers"),
            Send({**START_OK, "trailers": True}),
            Send({"type": "http.response.body", "body": b"with trailers"}),
            Send({"type": "http.response.trailers", "headers": [[b"x-checksum", b"42"]], "more_trailers": False}),
        ),
        checks=(
            ck("client.body", "with trailers"),
            ck("client.trailer", '["42"]', name="x-checksum", level=SHOULD, show=True),
        ),
        extension="http.response.trailers",
    ),
    # ------------------------------------------------------------------ lifespan
    lifespan(
        "lifespan.state-websocket",
        "Lifespan state reaches the WebSocket scope",
        "What the app puts in the lifespan state is in every WebSocket connection's scope['state'] too.",
        (LIFESPAN_STATE, WS_SCOPE),
        MUST,
        client=(Handshake(), WaitApp("ended")),
        lifespan_app=STATE_LIFESPAN,
        app=(*CONNECT_ACCEPT, Send({"type": "websocket.close"})),
        checks=(ck("app.scope", "v", key="state.k", label="state from the lifespan", show=True),),
        extension="lifespan",
    ),
    lifespan(
        "lifespan.state-websocket-copy",
        "Each WebSocket connection gets a copy of the lifespan state",
        "One connection changing scope['state'] does not change what the next connection sees.",
        (LIFESPAN_STATE, WS_SCOPE),
        SHOULD,
        client=(
            Handshake(),
            WaitApp("ended"),
            CloseTCP(),
            Handshake(),
            WaitApp("ended", count=2),
        ),
        lifespan_app=STATE_LIFESPAN,
        app=(*CONNECT_ACCEPT, SetState("k", "changed"), Send({"type": "websocket.close"})),
        checks=(ck("app.scope", "v", key="state.k", instance=1, label="the next connection's state", show=True),),
        extension="lifespan",
    ),
    lifespan(
        "lifespan.shutdown.failed",
        "lifespan.shutdown.failed on shutdown",
        "The server should log the message and exit all the same; the status is its choice.",
        (LIFESPAN_SHUTDOWN_FAILED,),
        SHOULD,
        client=(Request(), WaitResponses(1), ShutdownServer(), WaitApp("mark:shutdown", timeout=5.0)),
        lifespan_app=(
            Receive(10.0),
            Send({"type": "lifespan.startup.complete"}),
            Receive(20.0),
            AppMark("shutdown"),
            Send({"type": "lifespan.shutdown.failed", "message": "could not flush"}, catch=True),
        ),
        app=(Receive(), Respond()),
        checks=(
            ck("app.step", "lifespan.shutdown", step=2, instance="lifespan", level=MUST, show=True),
            ck("runner", "status *", ev="server_exit", label="the server exits"),
            ck(
                "server.output",
                "yes",
                "not-observed",
                contains="could not flush",
                label="the message is logged or printed",
            ),
            ck(
                "runner",
                "status *",
                choice="status 1",
                ev="server_exit",
                level=UNSPEC,
                label="exit status",
                show=True,
            ),
        ),
        server=ServerNeeds(lifespan=True, shutdown=True),
        extension="lifespan",
    ),
    # ------------------------------------------------------------------ WebSocket handshake
    ws(
        "ws.handshake.no-upgrade",
        "A request with the WebSocket key and version but no Upgrade or Connection",
        "Without Upgrade: websocket it is no opening handshake: never a 101, and never a websocket scope.",
        G_HANDSHAKE,
        ("RFC 6455 §4.2.1", WS_SCOPE),
        MUST,
        client=(
            Request(
                headers=(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")),
            ),
            WaitResponses(1),
        ),
        app=(Receive(), Respond(200, b"plain http")),
        checks=(
            ck("client.status", NOT_101, label="no switch to WebSocket"),
            ck("app.scope", "http", "not-called", choice="http", key="type", label="scope type"),
            ck("client.status", "200", "400", "426", choice="200", level=UNSPEC, label="status", show=True),
        ),
    ),
    ws(
        "ws.handshake.post",
        "An opening handshake with POST",
        "The handshake must be a GET; any other method gets an HTTP error, not a 101.",
        G_HANDSHAKE,
        ("RFC 6455 §4.2.1",),
        MUST,
        client=(
            Request(
                "POST",
                headers=(
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ("Sec-WebSocket-Version", "13"),
                ),
                body=b"",
            ),
            WaitResponses(1),
        ),
        app=(Receive(), Respond(405, b"no")),
        checks=(
            ck("client.status", NOT_101, label="no switch to WebSocket"),
            ck("client.status", "400", "405", "426", "404", choice="400", level=UNSPEC, label="status", show=True),
        ),
    ),
    ws(
        "ws.handshake.bad-key-length",
        "A Sec-WebSocket-Key that decodes to 8 bytes",
        "The key must decode to 16 bytes; otherwise the server answers with an HTTP error, not a 101.",
        G_HANDSHAKE,
        ("RFC 6455 §4.2.1", "RFC 6455 §4.1"),
        MUST,
        client=(Handshake(key="AAAAAAAAAAA="), WaitResponses(1)),
        app=(*CONNECT_ACCEPT, Send({"type": "websocket.close"})),
        checks=(
            ck("client.status", NOT_101, label="no switch to WebSocket"),
            ck("client.status", "400", choice="400", level=UNSPEC, label="status", show=True),
        ),
    ),
    ws(
        "ws.deny.empty-body",
        "A denial response with an empty body",
        "A denial whose only body message is empty still ends the response: the client gets the status at once.",
        G_DENIAL,
        (DENIAL,),
        MUST,
        client=(Handshake(), WaitApp("ended"), WaitClose(1.0)),
        app=(
            Receive(),
            RequireExtension("websocket.http.response"),
            Send({"type": "websocket.http.response.start", "status": 403, "headers": []}),
            Send({"type": "websocket.http.response.body", "body": b""}),
        ),
        checks=(ck("client.status", "403"), ck("client.body", "")),
        extension="websocket.http.response",
    ),
    ws(
        "ws.data.compressed",
        "A compressed text frame after permessage-deflate was negotiated",
        "Where the server accepts permessage-deflate, a frame with RSV1 set is inflated and the app gets the text.",
        G_DATA,
        ("RFC 7692 §6", "RFC 7692 §7.2.1", WS_RECEIVE),
        MUST,
        client=(
            Handshake(headers=(("Sec-WebSocket-Extensions", "permessage-deflate"),)),
            WaitApp("sent:websocket.accept"),
            FrameIfNegotiated("permessage-deflate", 1, deflated("squeezed text"), 4),
            WaitApp("received:websocket.receive", required=False),
        ),
        app=(*CONNECT_ACCEPT, Receive(), Send({"type": "websocket.close"})),
        checks=(ck("app.messages", '["text:squeezed text"]', show=True),),
        extension="permessage-deflate",
    ),
]
