"""Quart: an HTTP route and two WebSocket routes."""

import asyncio

from quart import Quart, websocket

from frameworks import seen

app = Quart(__name__)


@app.route("/")
async def hello() -> str:
    return "hello"


@app.websocket("/echo")
async def echo() -> None:
    try:
        while True:
            await websocket.send(await websocket.receive())
    except asyncio.CancelledError as exc:  # Quart cancels the handler on disconnect
        seen.raised(exc)
        raise


@app.websocket("/late")
async def late() -> None:
    await websocket.receive()
    await seen.late_send(lambda: websocket.send("late"))
