"""The one app every server under test serves.

Plain ASGI 3, no framework, no logging: a WebSocket echo (any path) and a fixed plain-text
answer to any HTTP request, with a Content-Length so that every server keeps the connection
alive and the client parses it the same way. Lifespan is answered so that no server logs a
complaint about it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HTTP_BODY = b"Hello, world!\n"
_HTTP_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(HTTP_BODY)).encode("ascii"))]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "websocket":
        await _websocket(receive, send)
    elif kind == "http":
        await _http(receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _websocket(receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


async def _http(receive: Receive, send: Send) -> None:
    while True:  # read the request body, if any, to its end
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": _HTTP_HEADERS})
    await send({"type": "http.response.body", "body": HTTP_BODY})
