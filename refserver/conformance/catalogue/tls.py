"""TLS scenarios: https and wss on a server started with a certificate the runner makes for the run
(with ``trustme``), the scope's ``tls`` extension (judged where the target advertises it: n/a
otherwise), a client certificate, plain-text connections, a handshake that fails, and how a TLS
connection ends (close_notify). A target without a TLS option is n/a. Standard library only."""

from __future__ import annotations

from refserver.conformance.catalogue.common import (
    CONNECT_ACCEPT,
    G_TLS,
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
    Check,
    Scenario,
    ServerNeeds,
)
from refserver.conformance.steps import (
    Close,
    Echo,
    Handshake,
    PlainToTLS,
    Receive,
    Request,
    RequireExtension,
    Respond,
    WaitApp,
    WaitClose,
    WaitEOF,
    WaitMessages,
    WaitResponses,
    accept,
    close_socket,
    text_frame,
)

TLS_SCOPE = 'tls extension, "TLS Connection Scope"'
TLS_WHEN = 'tls extension, "When to use this extension"'
CLOSURE = "RFC 8446 §6.1"
CLIENT_SUBJECT = "CN=probe client,OU=client certificate,O=refserver conformance"
DISCONNECT_ANY = "websocket.disconnect:*"

TLS = ServerNeeds(tls=True)


def _advertised() -> Check:
    """The extension is optional: a server that does not provide it only differs."""
    return check(
        "app.extension",
        "yes",
        "no",
        choice="yes",
        name="tls",
        level=UNSPEC,
        label="tls extension advertised",
        show=True,
    )


def _close_notify() -> Check:
    return check(
        "client.tls_end", "close_notify", level=MUST, label="close_notify before the TCP close (RFC 8446 §6.1)"
    )


def _fields(*, client_cert: bool) -> tuple[Check, ...]:
    """The entries of the ``tls`` extension: the three mandatory ones (server_cert, tls_version,
    cipher_suite; None only where the server cannot know them) and the client certificate's."""
    if client_cert:
        chain = check(
            "app.tls",
            "[the client's certificate]",
            "[the client's certificate, *]",
            choice="[the client's certificate]",
            field="client_cert_chain",
            label="client_cert_chain (the client's first)",
            show=True,
        )
        name = check(
            "app.tls", CLIENT_SUBJECT, field="client_cert_name", label="client_cert_name (RFC 4514)", show=True
        )
    else:
        chain = check("app.tls", "[]", "<absent>", choice="[]", field="client_cert_chain", label="client_cert_chain")
        name = check("app.tls", "null", "<absent>", choice="null", field="client_cert_name", label="client_cert_name")
    return (
        check(
            "app.tls",
            "the server's certificate",
            "null",
            choice="the server's certificate",
            field="server_cert",
            label="server_cert",
            show=not client_cert,
        ),
        chain,
        name,
        check("app.tls", "null", "<absent>", choice="null", field="client_cert_error", label="client_cert_error"),
        check(
            "app.tls",
            "0x* (negotiated)",
            "null",
            choice="0x030? (negotiated)",
            field="tls_version",
            label="tls_version (the negotiated one)",
        ),
        check(
            "app.tls",
            "0x* (negotiated)",
            "null",
            choice="0x* (negotiated)",
            field="cipher_suite",
            label="cipher_suite (the negotiated one)",
        ),
    )


SCENARIOS: list[Scenario] = [
    # ------------------------------------------------------------------ https and wss
    http(
        id="tls.https.scheme",
        title="An HTTPS request with Connection: close",
        lesson="Over TLS the scope's scheme is https; the server ends the connection with close_notify, then TCP.",
        group=G_TLS,
        refs=(HTTP_SCOPE, TLS_WHEN, CLOSURE),
        level=MUST,
        client=(Request(headers=(("Connection", "close"),)), WaitResponses(1), WaitEOF(3.0)),
        app=(Receive(), Respond(200, b"over tls")),
        checks=(
            check("app.scope", "https", key="scheme", label="scheme", show=True),
            check("client.body", "over tls"),
            _close_notify(),
            _advertised(),
        ),
        server=TLS,
    ),
    http(
        id="tls.https.extension",
        title="The tls extension of an HTTPS request, where advertised",
        lesson="server_cert is the certificate the server sent, tls_version and cipher_suite are the negotiated ones "
        "as integers; without a client certificate the chain is empty and the name None.",
        group=G_TLS,
        refs=(TLS_SCOPE,),
        level=MUST,
        client=(Request(), WaitResponses(1)),
        app=(Receive(), RequireExtension("tls"), Respond()),
        checks=_fields(client_cert=False),
        extension="tls",
        server=TLS,
    ),
    ws(
        id="tls.wss.scheme",
        title="A WebSocket over TLS",
        lesson="Over TLS the WebSocket scope's scheme is wss.",
        group=G_TLS,
        refs=(WS_SCOPE, TLS_WHEN),
        level=MUST,
        client=(Handshake(), WaitApp("ended")),
        app=(*CONNECT_ACCEPT, close_socket()),
        checks=(
            check("app.scope", "wss", key="scheme", label="scheme", show=True),
            check("client.status", "101"),
            _advertised(),
        ),
        server=TLS,
    ),
    ws(
        id="tls.wss.extension",
        title="The tls extension of a WebSocket over TLS, where advertised",
        lesson="The WebSocket scope carries the same tls entries as an HTTPS request's.",
        group=G_TLS,
        refs=(TLS_SCOPE, WS_SCOPE),
        level=MUST,
        client=(Handshake(), WaitApp("ended")),
        app=(Receive(), RequireExtension("tls"), accept(), close_socket()),
        checks=_fields(client_cert=False),
        extension="tls",
        server=TLS,
    ),
    http(
        id="tls.client-cert",
        title="A client certificate, on a server that requires one, where the tls extension is advertised",
        lesson="client_cert_chain starts with the certificate the client sent, and client_cert_name is its subject "
        "in RFC 4514 form (last RDN first).",
        group=G_TLS,
        refs=(TLS_SCOPE, "RFC 4514 §2.1"),
        level=MUST,
        client=(Request(), WaitResponses(1)),
        app=(Receive(), RequireExtension("tls"), Respond()),
        checks=_fields(client_cert=True),
        extension="tls",
        server=ServerNeeds(tls=True, client_cert=True),
    ),
    # ------------------------------------------------------------------ plain text
    http(
        id="tls.plain.http",
        title="A plain-text HTTP request",
        lesson="A server must not provide the tls extension on a connection that is not over TLS.",
        group=G_TLS,
        refs=(TLS_WHEN,),
        level=MUST,
        client=(Request(), WaitResponses(1)),
        app=(Receive(), Respond()),
        checks=(
            check("app.extension", "no", "no (no extensions)", choice="no", name="tls", label="no tls extension"),
            check("app.scope", "http", "<absent>", choice="http", key="scheme", label="scheme"),
        ),
    ),
    ws(
        id="tls.plain.websocket",
        title="A plain-text WebSocket",
        lesson="No tls extension on a WebSocket that is not over TLS either.",
        group=G_TLS,
        refs=(TLS_WHEN,),
        level=MUST,
        client=(Handshake(), WaitApp("ended")),
        app=(*CONNECT_ACCEPT, close_socket()),
        checks=(
            check("app.extension", "no", "no (no extensions)", choice="no", name="tls", label="no tls extension"),
            check("app.scope", "ws", "<absent>", choice="ws", key="scheme", label="scheme"),
        ),
    ),
    # ------------------------------------------------------------------ a failed handshake
    http(
        id="tls.handshake.plain-http",
        title="Plain HTTP to the TLS port, then an HTTPS request",
        lesson="A handshake that fails is the client's: the server closes that connection and serves the next one; "
        "an error-level log line for it is refserver's call not to make (docs/decisions.md#tls-extension-contents).",
        group=G_TLS,
        refs=("RFC 8446 §6.2", "docs/decisions.md#tls-extension-contents"),
        level=MUST,
        client=(
            PlainToTLS(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=3.0),
            Request(),
            WaitResponses(1),
        ),
        app=(Receive(), Respond(200, b"still serving")),
        checks=(
            check(
                "client.plain_answer",
                "*eof",
                "*rst",
                choice="eof",
                label="the plain-text connection is closed (RFC 8446 §6.2)",
                show=True,
            ),
            check("client.status", "200", label="the next connection is served"),
            check("client.body", "still serving"),
            check(
                "server.log",
                "none",
                "not-observed",
                level=UNSPEC,
                label="no error-level log line for the failed handshake",
                show=True,
            ),
        ),
        server=TLS,
    ),
    # ------------------------------------------------------------------ closing over TLS
    ws(
        id="tls.wss.echo-close",
        title="wss: an echo, then the client closes",
        lesson="Over TLS as over TCP: the message comes back, the close frame is echoed, the app gets 1000; then the "
        "server sends close_notify and closes TCP.",
        group=G_TLS,
        refs=(WS_DISC, "RFC 6455 §5.5.1", "RFC 6455 §7.1.1", CLOSURE, "docs/decisions.md#tls-close-notify"),
        level=MUST,
        client=(
            Handshake(),
            WaitApp("sent:websocket.accept"),
            text_frame("over wss"),
            WaitMessages(1),
            Close(1000),
            WaitClose(),
            WaitEOF(3.0),
            WaitApp("ended"),
        ),
        app=(*CONNECT_ACCEPT, Echo(), Receive()),
        checks=(
            check("client.messages", '["text:over wss"]', label="the echo"),
            check("client.close", "1000", label="the close frame is echoed", show=True),
            check("app.step", "websocket.disconnect:1000", step=3, label="the app's disconnect"),
            check("client.end", "eof", level=SHOULD, label="the server closes TCP (RFC 6455 §7.1.1)"),
            _close_notify(),
        ),
        server=TLS,
    ),
    ws(
        id="tls.wss.app-close",
        title="wss: the app closes",
        lesson="The server's close frame, the client's answer, then close_notify and the TCP close.",
        group=G_TLS,
        refs=(WS_DISC, "RFC 6455 §7.1.1", CLOSURE, "docs/decisions.md#tls-close-notify"),
        level=MUST,
        client=(
            Handshake(),
            WaitApp("sent:websocket.accept"),
            WaitClose(),
            WaitEOF(3.0),
            WaitApp("ended"),
        ),
        app=(*CONNECT_ACCEPT, close_socket(1000), Receive()),
        checks=(
            check("client.close", "1000", label="the app's close frame"),
            check(
                "app.step",
                DISCONNECT_ANY,
                choice="websocket.disconnect:1000",
                step=3,
                label="the app's disconnect",
                show=True,
            ),
            check("client.end", "eof", level=SHOULD, label="the server closes TCP (RFC 6455 §7.1.1)"),
            _close_notify(),
        ),
        server=TLS,
    ),
]
