"""Plain ASGI 3 echo application used as the Autobahn|Testsuite testee.

WebSocket: accepts every connection and sends each received message back
with the same type (text stays text, bytes stay bytes) until the client
disconnects.  HTTP: answers with a short plain-text body.  Lifespan events
are acknowledged.  No dependencies.

    python -m refserver echo_app:app --app-dir compliance/autobahn
    uvicorn echo_app:app --app-dir compliance/autobahn --ws wsproto
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HTTP_BODY = b"Autobahn echo app: connect with a WebSocket client.\n"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "websocket":
        await websocket_echo(receive, send)
    elif kind == "http":
        await http_answer(receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)
    else:  # pragma: no cover - unknown scope type
        raise RuntimeError(f"unsupported scope type {kind!r}")


async def websocket_echo(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        mtype = message["type"]
        if mtype == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif mtype == "websocket.receive":
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        elif mtype == "websocket.disconnect":
            return


async def http_answer(receive: Receive, send: Send) -> None:
    # Drain the request body so the server can reuse the connection.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(HTTP_BODY)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": HTTP_BODY})


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
