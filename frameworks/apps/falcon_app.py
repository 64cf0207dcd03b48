"""Falcon (``falcon.asgi``): a resource with ``on_get`` and two with ``on_websocket``."""

import falcon
import falcon.asgi

from frameworks import seen


class Hello:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "hello"


class Echo:
    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except falcon.WebSocketDisconnected as exc:
            seen.raised(exc)


class Late:
    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()
        await seen.late_send(lambda: ws.send_text("late"))


app = falcon.asgi.App()
app.add_route("/", Hello())
app.add_route("/echo", Echo())
app.add_route("/late", Late())
