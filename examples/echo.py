"""The smallest WebSocket app: echo every message back.

Run it with ``refserver examples.echo:app`` and connect any WebSocket client to
ws://127.0.0.1:8000/ (for example ``python -m websockets ws://127.0.0.1:8000/``).
Plain ASGI 3, no framework: every message the server and the app exchange is visible here.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        # Not a WebSocket: say where to go. (An app may ignore the body of a GET.)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Connect a WebSocket to this address to get an echo.\n"})
        return
    if scope["type"] != "websocket":
        return  # lifespan: returning (or raising) tells the server this app does not use it

    # www spec 2.5, "Connect - receive event": the first event is websocket.connect; the
    # handshake waits until the app accepts (or denies) it.
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            # "Disconnect - receive event": the connection is gone, with the close code the
            # peer sent (or 1006 if it just vanished). Nothing more can be sent.
            return
        # websocket.receive carries exactly one of "text" and "bytes"; send it back the same way.
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})
