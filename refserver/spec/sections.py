"""The spec sections that refserver cites in its tables, errors and trace.

Each is a citation in the one form of :mod:`refserver.spec.headings`: the document, the
version refserver implements where a scope advertises one, and a heading exactly as the
spec spells it.
"""

from __future__ import annotations

CORE_ERRORS = 'asgi spec, "Error Handling"'
CORE_EVENTS = 'asgi spec, "Events"'
HTTP_REQUEST = 'www spec 2.5, "Request - receive event"'
HTTP_RESPONSE_START = 'www spec 2.5, "Response Start - send event"'
HTTP_RESPONSE_BODY = 'www spec 2.5, "Response Body - send event"'
HTTP_DISCONNECT = 'www spec 2.5, "Disconnect - receive event"'
HTTP_CLOSED_SEND = 'www spec 2.5, "Disconnected Client - send exception"'
HTTP_TRAILERS = 'asgi extensions, "HTTP Trailers"'
HTTP_EARLY_HINTS = 'asgi extensions, "Early Hints"'
HTTP_PATHSEND = 'asgi extensions, "Path Send"'
HTTP_ZEROCOPYSEND = 'asgi extensions, "Zero Copy Send"'
WS = 'www spec 2.5, "WebSocket"'
WS_CONNECT = 'www spec 2.5, "Connect - receive event"'
WS_ACCEPT = 'www spec 2.5, "Accept - send event"'
WS_SEND = 'www spec 2.5, "Send - send event"'
WS_CLOSE = 'www spec 2.5, "Close - send event"'
WS_RECEIVE = 'www spec 2.5, "Receive - receive event"'
WS_CLOSED_SEND = 'www spec 2.5, "Disconnected Client - send exception"'
WS_DISCONNECT = 'www spec 2.5, "Disconnect - receive event"'
WS_DENIAL = 'asgi extensions, "Websocket Denial Response"'
WS_RFC_CLOSE_CODES = "RFC 6455 §7.4"
LIFESPAN_SCOPE = 'lifespan spec 2.0, "Scope"'
LIFESPAN_STARTUP = 'lifespan spec 2.0, "Startup - receive event"'
LIFESPAN_STARTUP_COMPLETE = 'lifespan spec 2.0, "Startup Complete - send event"'
LIFESPAN_STARTUP_FAILED = 'lifespan spec 2.0, "Startup Failed - send event"'
LIFESPAN_SHUTDOWN = 'lifespan spec 2.0, "Shutdown - receive event"'
LIFESPAN_SHUTDOWN_COMPLETE = 'lifespan spec 2.0, "Shutdown Complete - send event"'
LIFESPAN_SHUTDOWN_FAILED = 'lifespan spec 2.0, "Shutdown Failed - send event"'

# The section of each lifespan message, by its type.
LIFESPAN_MESSAGES = {
    "lifespan.startup": LIFESPAN_STARTUP,
    "lifespan.startup.complete": LIFESPAN_STARTUP_COMPLETE,
    "lifespan.startup.failed": LIFESPAN_STARTUP_FAILED,
    "lifespan.shutdown": LIFESPAN_SHUTDOWN,
    "lifespan.shutdown.complete": LIFESPAN_SHUTDOWN_COMPLETE,
    "lifespan.shutdown.failed": LIFESPAN_SHUTDOWN_FAILED,
}

# The section of every ASGI message, by its type: what a "recv" or "send" line of the trace
# cites for it.
MESSAGES = {
    "http.request": HTTP_REQUEST,
    "http.disconnect": HTTP_DISCONNECT,
    "http.response.start": HTTP_RESPONSE_START,
    "http.response.body": HTTP_RESPONSE_BODY,
    "http.response.early_hint": HTTP_EARLY_HINTS,
    "http.response.trailers": HTTP_TRAILERS,
    "http.response.pathsend": HTTP_PATHSEND,
    "http.response.zerocopysend": HTTP_ZEROCOPYSEND,
    "websocket.connect": WS_CONNECT,
    "websocket.receive": WS_RECEIVE,
    "websocket.disconnect": WS_DISCONNECT,
    "websocket.accept": WS_ACCEPT,
    "websocket.send": WS_SEND,
    "websocket.close": WS_CLOSE,
    "websocket.http.response.start": WS_DENIAL,
    "websocket.http.response.body": WS_DENIAL,
    **LIFESPAN_MESSAGES,
}
