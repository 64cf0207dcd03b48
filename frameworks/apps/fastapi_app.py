"""FastAPI: an HTTP route and two WebSocket routes."""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse

from frameworks import seen

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def hello() -> str:
    return "hello"


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect as exc:
        seen.raised(exc)


@app.websocket("/late")
async def late(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    await seen.late_send(lambda: websocket.send_text("late"))
