"""Names of the spec sections that refserver cites in its errors and comments."""

from __future__ import annotations

CORE_ERRORS = 'asgi spec, "Error Handling"'
CORE_EVENTS = 'asgi spec, "Events"'
HTTP_RESPONSE_START = 'www spec 2.5, "Response Start - send event"'
HTTP_RESPONSE_BODY = 'www spec 2.5, "Response Body - send event"'
HTTP_DISCONNECT = 'www spec 2.5, "Disconnect - receive event"'
HTTP_CLOSED_SEND = 'www spec 2.5, "Disconnected Client - send exception"'
HTTP_TRAILERS = 'asgi extensions, "HTTP Trailers"'
WS_CONNECT = 'www spec 2.5, "Connect - receive event"'
WS_ACCEPT = 'www spec 2.5, "Accept - send event"'
WS_SEND = 'www spec 2.5, "Send - send event"'
WS_CLOSE = 'www spec 2.5, "Close - send event"'
WS_RECEIVE = 'www spec 2.5, "Receive - receive event"'
WS_CLOSED_SEND = 'www spec 2.5, "Disconnected Client - send exception"'
WS_DISCONNECT = 'www spec 2.5, "Disconnect - receive event"'
WS_DENIAL = 'asgi extensions, "Websocket Denial Response"'
WS_RFC_CLOSE_CODES = "RFC 6455 §7.4"
LIFESPAN_STARTUP = 'lifespan spec 2.0, "Startup - send event"'
LIFESPAN_SHUTDOWN = 'lifespan spec 2.0, "Shutdown - send event"'
