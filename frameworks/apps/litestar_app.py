"""Litestar: an HTTP route and two WebSocket routes."""

from litestar import Litestar, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect

from frameworks import seen


@get("/", media_type="text/plain")
async def hello() -> str:
    return "hello"


@websocket("/echo")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    try:
        while True:
            await socket.send_text(await socket.receive_text())
    except WebSocketDisconnect as exc:
        seen.raised(exc)


@websocket("/late")
async def late(socket: WebSocket) -> None:
    await socket.accept()
    await socket.receive_text()
    await seen.late_send(lambda: socket.send_text("late"))


app = Litestar(route_handlers=[hello, echo, late])
