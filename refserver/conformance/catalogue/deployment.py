"""Scenarios about how a server is deployed and what it does with bad or heavy input: a Unix
socket and a root_path (each needs the server started with an option: a target without it is
n/a), request heads the server must refuse, a request body the app does not read, and a
client that never answers the server's close frame. Standard library only."""

from __future__ import annotations

from refserver.conformance.catalogue.common import (
    CONNECT_ACCEPT,
    G_APP_CLOSE,
    G_HANDSHAKE,
    G_HTTP_FLOW,
    G_HTTP_SCOPE,
    HTTP_REQ,
    HTTP_SCOPE,
    MUST,
    SHOULD,
    UNSPEC,
    WS_DISC,
    WS_SCOPE,
    check,
    http,
    ws,
)
from refserver.conformance.model import (
    Scenario,
    ServerNeeds,
)
from refserver.conformance.steps import (
    CloseTCP,
    DrainBody,
    Handshake,
    Mark,
    OpenGate,
    Receive,
    Request,
    Respond,
    WaitApp,
    WaitClient,
    WaitClose,
    WaitEOF,
    WaitGate,
    WaitResponses,
    WriteBody,
    close_socket,
)

ROOT_PATH = "/mount"
# Beyond what the kernel's buffers and a bounded read-ahead hold for a server that stops
# reading (peers stall after 4 to 10 MiB) by more than four times.
BODY_BYTES = 64 << 20
BIG_FIELD = 64 << 10  # one header field line, four times h11's default limit for a whole head
DISCONNECT_ANY = "websocket.disconnect:*"


SCENARIOS: list[Scenario] = [
    # ------------------------------------------------------------------ Unix socket
    http(
        id="http.scope.unix-socket",
        title="An HTTP request over a Unix socket",
        lesson="On a Unix socket the scope's server is [path, None] (or absent); the request is served as over TCP.",
        group=G_HTTP_SCOPE,
        refs=(HTTP_SCOPE,),
        level=MUST,
        client=(Request(), WaitResponses(1)),
        app=(Receive(), Respond(200, b"over a unix socket")),
        # The scope's server on a Unix socket: [path, None] (www spec 2.5, "HTTP Connection Scope": optional since 2.2),
        # or no server at all ("Optional; if missing defaults to None").
        checks=(
            check(
                "app.scope",
                '["<uds>",null]',
                "null",
                "<absent>",
                choice='["<uds>",null]',
                key="server",
                since="2.2",
                label="server ([path, None])",
                show=True,
            ),
            check("client.body", "over a unix socket"),
            check("app.scope", "*", choice="null", key="client", level=UNSPEC, label="client"),
        ),
        server=ServerNeeds(uds=True),
    ),
    ws(
        id="ws.scope.unix-socket",
        title="A WebSocket over a Unix socket",
        lesson="On a Unix socket the WebSocket scope's server is [path, None] (or absent) too.",
        group=G_HANDSHAKE,
        refs=(WS_SCOPE,),
        level=MUST,
        client=(Handshake(), WaitApp("ended")),
        app=(*CONNECT_ACCEPT, close_socket()),
        # The scope's server on a Unix socket: [path, None] (www spec 2.5, "HTTP Connection Scope": optional since 2.2),
        # or no server at all ("Optional; if missing defaults to None").
        checks=(
            check(
                "app.scope",
                '["<uds>",null]',
                "null",
                "<absent>",
                choice='["<uds>",null]',
                key="server",
                since="2.2",
                label="server ([path, None])",
                show=True,
            ),
            check("client.status", "101"),
        ),
        server=ServerNeeds(uds=True),
    ),
    # ------------------------------------------------------------------ root_path
    http(
        id="http.scope.root-path",
        title="A server started with a root_path",
        lesson="The scope's root_path is the configured one, and path starts with it: the www spec's WSGI section "
        "derives PATH_INFO by stripping root_path from path, so a server mounted at root_path puts it in front of "
        "the request target (docs/decisions.md#root-path-in-path).",
        group=G_HTTP_SCOPE,
        refs=(HTTP_SCOPE, 'www spec 2.5, "WSGI Compatibility"', "docs/decisions.md#root-path-in-path"),
        level=MUST,
        client=(Request(suffix="/x"), WaitResponses(1)),
        app=(Receive(), Respond()),
        checks=(
            check("app.scope", ROOT_PATH, key="root_path", label="root_path", show=True),
            check(
                "app.scope",
                f"{ROOT_PATH}/http.scope.root-path/<token>/x",
                key="path",
                level=MUST,
                label="path",
                show=True,
            ),
            check("client.status", "200"),
        ),
        server=ServerNeeds(root_path=ROOT_PATH),
    ),
    ws(
        id="ws.scope.root-path",
        title="A WebSocket on a server started with a root_path",
        lesson="The WebSocket scope's root_path is the configured one too, and path starts with it, as for HTTP "
        "(www, WSGI Compatibility).",
        group=G_HANDSHAKE,
        refs=(WS_SCOPE, 'www spec 2.5, "WSGI Compatibility"', "docs/decisions.md#root-path-in-path"),
        level=MUST,
        client=(Handshake(suffix="/x"), WaitApp("ended")),
        app=(*CONNECT_ACCEPT, close_socket()),
        checks=(
            check("app.scope", ROOT_PATH, key="root_path", label="root_path", show=True),
            check(
                "app.scope",
                f"{ROOT_PATH}/ws.scope.root-path/<token>/x",
                key="path",
                level=MUST,
                label="path",
            ),
            check("client.status", "101"),
        ),
        server=ServerNeeds(root_path=ROOT_PATH),
    ),
    # ------------------------------------------------------------------ bad request heads
    http(
        id="http.bad.head-too-large",
        title="A request head with a 64 KiB header field",
        lesson="A server that will not process a head that large answers with a 4xx (431 names the cause), not "
        "silence.",
        group=G_HTTP_FLOW,
        refs=("RFC 9110 §5.4", "RFC 6585 §5", "docs/decisions.md#bad-client-input"),
        level=MUST,
        client=(
            Request(raw=b"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Big: " + b"a" * BIG_FIELD + b"\r\n\r\n"),
            WaitResponses(1),
        ),
        app=(Receive(), Respond()),
        checks=(
            check("client.status", "4??", "200", choice="431", label="a 4xx, or the request is served"),
            check("client.status", "431", level=UNSPEC, label="status", show=True),
        ),
    ),
    http(
        id="http.bad.request-line",
        title="A request line with a space inside the request target",
        lesson="An invalid request line gets 400 (or a 301 to the encoded target), and the request is not processed.",
        group=G_HTTP_FLOW,
        refs=("RFC 9112 §3", "docs/decisions.md#bad-client-input"),
        level=SHOULD,
        client=(Request(raw=b"GET {path}/a b HTTP/1.1\r\nHost: {host}\r\n\r\n"), WaitResponses(1)),
        app=(Receive(), Respond()),
        checks=(
            check("client.status", "400", "301", choice="400", label="400 or 301", show=True),
            check("app.called", "not-called", label="the app is not called"),
        ),
    ),
    # ------------------------------------------------------------------ request body backpressure
    http(
        id="http.request.body-backpressure",
        title="A 64 MiB request body while the app does not call receive()",
        lesson="The body is streamed in chunks: a server that stops reading while the app does not read keeps memory "
        "bounded; once the app reads, all of it arrives.",
        group=G_HTTP_FLOW,
        refs=(HTTP_REQ,),
        level=MUST,
        client=(
            Request("POST", raw=b"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: %d\r\n\r\n" % BODY_BYTES),
            WaitApp("hello", required=False),
            WriteBody(BODY_BYTES, stall_s=1.0, timeout=12.0),
            # a server that reads the whole body before it calls the app calls it only now
            WaitApp("hello", timeout=12.0),
            OpenGate("read"),
            WaitClient("body_written", timeout=12.0),
            WaitResponses(1, timeout=5.0),
        ),
        app=(WaitGate("read", timeout=25.0), DrainBody(timeout=12.0, quiet=True), Respond()),
        checks=(
            check(
                "client.body_write",
                "stalled at ≤* MiB",
                "took all * MiB",
                choice="stalled at ≤* MiB",
                level=UNSPEC,
                label="while the app does not read",
                show=True,
            ),
            check("app.body_len", str(BODY_BYTES), label="the app gets the whole body"),
            check("client.status", "200"),
        ),
        app_deadline_s=6.0,
    ),
    # ------------------------------------------------------------------ a close never answered
    ws(
        id="ws.close.client-never-answers",
        title="The app closes; the client never answers the close frame and keeps TCP open",
        lesson="The server closes the TCP connection after a timeout; the app's disconnect then has no close frame "
        "behind it (1006).",
        group=G_APP_CLOSE,
        refs=("RFC 6455 §7.1.1", "RFC 6455 §7.1.5", WS_DISC, "docs/decisions.md#own-close-then-echo"),
        level=SHOULD,
        # The window is 22 s: the server's close timeout is 1 s where it can be set, and the
        # common default (10 s) is still less than half of it.
        client=(
            Handshake(echo_close=False, close_on_eof=False),
            WaitApp("sent:websocket.accept"),
            WaitClose(3.0),
            Mark("close-received"),
            WaitEOF(22.0),
            Mark("window-ended"),
            CloseTCP(),
            WaitApp("ended", timeout=6.0),
        ),
        app=(*CONNECT_ACCEPT, close_socket(1000), Receive(30.0, catch=True)),
        checks=(
            check("client.close", "1000", level=MUST, label="the app's close frame"),
            check(
                "client.end",
                "eof",
                "rst",
                choice="eof",
                until="window-ended",
                label="the server closes TCP (within 22 s)",
                show=True,
            ),
            check("app.step", DISCONNECT_ANY, step=3, level=MUST, label="the app gets a disconnect"),
            check(
                "app.step",
                DISCONNECT_ANY,
                choice="websocket.disconnect:1006",
                step=3,
                level=UNSPEC,
                label="the disconnect's code",
                show=True,
            ),
        ),
        server=ServerNeeds(ws_close_timeout_s=1.0),
        app_deadline_s=8.0,
    ),
]
