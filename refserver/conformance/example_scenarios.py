"""Two scenarios of a server's own, as a maintainer would add them for bugs that bit them:

    python -m refserver.conformance --scenarios example_scenarios.py --target-command 'mine=...'

Each is one call with keyword arguments: what the client does on the wire, what the app does,
and what must be true on both sides afterwards.
"""

from refserver.conformance.api import (
    CONNECT_ACCEPT,
    MUST,
    Frame,
    Handshake,
    Receive,
    Request,
    Respond,
    WaitApp,
    WaitClose,
    WaitResponses,
    check,
    close_socket,
    http,
    ws,
)

SCENARIOS = [
    http(
        id="mine.http.query-string-raw",
        title="A query string with + and %20",
        lesson="query_string is the bytes after '?' as sent: neither + nor %20 is decoded.",
        group="My server's regressions",
        refs=('www spec 2.5, "HTTP Connection Scope"',),
        level=MUST,
        client=(Request(suffix="?q=a+b%20c"), WaitResponses(1)),
        app=(Receive(), Respond(200, b"ok")),
        checks=(
            check("app.scope", "b'q=a+b%20c'", key="query_string", show=True),
            check("client.status", "200"),
        ),
    ),
    ws(
        id="mine.ws.fragments-in-order",
        title="A text message in three fragments",
        lesson="The app gets one message with the fragments joined in order.",
        group="My server's regressions",
        refs=("RFC 6455 §5.4",),
        level=MUST,
        client=(
            Handshake(),
            WaitApp("sent:websocket.accept"),
            Frame(1, b"a", fin=False),
            Frame(0, b"b", fin=False),
            Frame(0, b"c"),
            WaitClose(),
        ),
        app=(*CONNECT_ACCEPT, Receive(), close_socket()),
        checks=(check("app.messages", '["text:abc"]', show=True),),
    ),
]
