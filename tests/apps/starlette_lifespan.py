"""A Starlette app with a lifespan (Starlette reports ``lifespan.shutdown.failed`` when its
lifespan task is cancelled after startup), a WebSocket that stays open and a request that never
ends: what a forced exit (a second SIGINT) meets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    print("lifespan: startup", flush=True)
    yield
    print("lifespan: shutdown", flush=True)


async def hang(request: Request) -> Response:
    print("hang: running", flush=True)
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    print("socket: open", flush=True)
    await anyio.sleep_forever()


app = Starlette(routes=[Route("/hang", hang), WebSocketRoute("/ws", socket)], lifespan=lifespan)
