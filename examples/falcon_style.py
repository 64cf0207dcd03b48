"""A framework-style WebSocket wrapper that turns the OSError from send() into its own exception.

Run it with ``refserver examples.falcon_style:app`` and connect a WebSocket client to
ws://127.0.0.1:8000/: it sends a tick every half second. Disconnect, and the terminal shows
the handler stopping with ``WebSocketDisconnected``.

Frameworks give handlers one exception for "the client is gone" (Falcon's
``WebSocketDisconnected``, Starlette's ``WebSocketDisconnect``). A handler that only *sends*
never calls ``receive()``, so it cannot learn of the disconnect from ``websocket.disconnect``;
it depends on www spec 2.5, "Disconnected Client - send exception" (since 2.4): "If send()
is called on a closed connection the server should raise a server-specific subclass of
OSError." The framework catches ``OSError`` (not one
server's class) and raises its own. On a server that silently drops such sends, the same
handler would tick into nowhere until the process stops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio


class WebSocketDisconnected(Exception):
    """The framework's own "the client went away", with the close code if known."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the client disconnected (code {code})")
        self.code = code


class WebSocket:
    """What the framework gives a handler instead of ``receive`` and ``send``."""

    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send

    async def accept(self) -> None:
        assert (await self._receive())["type"] == "websocket.connect"
        await self._send({"type": "websocket.accept"})

    async def receive_text(self) -> str:
        event = await self._receive()
        if event["type"] == "websocket.disconnect":
            raise WebSocketDisconnected(event["code"])
        return str(event.get("text") or "")

    async def send_text(self, text: str) -> None:
        try:
            await self._send({"type": "websocket.send", "text": text})
        except OSError as exc:
            # refserver's ClientDisconnected carries the close code; another server's
            # OSError may not, and 1006 is "closed abnormally, no code known".
            raise WebSocketDisconnected(getattr(exc, "code", None) or 1006) from exc


Handler = Callable[[WebSocket], Awaitable[None]]


def websocket_app(handler: Handler, report: Callable[[str], None] = print) -> Any:
    """The framework's adapter: an ASGI app that runs ``handler`` for every WebSocket."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 426, "headers": [(b"upgrade", b"websocket")]})
                await send({"type": "http.response.body", "body": b"WebSocket only\n"})
            return
        try:
            await handler(WebSocket(receive, send))
        except WebSocketDisconnected as exc:
            # The normal way for a connection to end; not an error.
            report(f"handler stopped: {exc}")

    return app


def ticker(interval_s: float) -> Handler:
    async def tick(ws: WebSocket) -> None:
        # Only sends, never receives: send() is the one place the disconnect can show up.
        await ws.accept()
        for n in range(1, 1_000_000):
            await ws.send_text(f"tick {n}")
            await anyio.sleep(interval_s)

    return tick


app = websocket_app(ticker(0.5))
