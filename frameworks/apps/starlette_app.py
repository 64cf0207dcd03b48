"""Starlette: an HTTP route and two WebSocket routes."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from frameworks import seen


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect as exc:
        seen.raised(exc)


async def late(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    await seen.late_send(lambda: websocket.send_text("late"))


app = Starlette(routes=[Route("/", hello), WebSocketRoute("/echo", echo), WebSocketRoute("/late", late)])
