"""python-socketio: an ``AsyncServer`` with an ``echo`` and a ``late`` event, as an ASGI app."""

import socketio

from frameworks import seen

sio = socketio.AsyncServer(async_mode="asgi")


@sio.on("echo")
async def echo(sid: str, data: str) -> None:
    await sio.emit("echo", data, to=sid)


@sio.on("late")
async def late(sid: str, data: str) -> None:
    await seen.late_send(lambda: sio.emit("late", data, to=sid))


@sio.on("disconnect")
async def disconnect(sid: str, reason: str) -> None:
    seen.ended(f"told reason={reason!r}")


app = socketio.ASGIApp(sio)
