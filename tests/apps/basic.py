"""Apps for the command-line tests. Only the standard library: they run in a subprocess.

``app`` answers every request with a JSON summary of its scope; ``/stream`` starts a
streamed response and finishes it once the whole request body has arrived, so a test
can hold a response in flight while it signals the server. Lifespan events are printed
to stdout, where the test reads them in order with the listening line.
"""

from __future__ import annotations

import json
from typing import Any


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            print("lifespan: startup", flush=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print("lifespan: shutdown", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


def _summary(scope: dict[str, Any], label: str) -> bytes:
    keys = ("type", "asgi", "http_version", "method", "path", "root_path", "server")
    return json.dumps({"app": label, **{k: scope[k] for k in keys}}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    if scope["path"] == "/stream":
        await send({"type": "http.response.body", "body": b"started;", "more_body": True})
        while True:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b"done"})
        return
    await send({"type": "http.response.body", "body": _summary(scope, "asgi3")})


def create_app() -> Any:
    """An app factory (--factory)."""

    async def made(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": _summary(scope, "factory")})

    return made


def create_nothing() -> int:
    return 42


not_callable = 42


class Legacy:
    """An ASGI 2 (double-callable) app: Legacy(scope) is the instance."""

    def __init__(self, scope: dict[str, Any]) -> None:
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope type {scope['type']}")
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": _summary(self.scope, "asgi2-class")})


def legacy_function(scope: dict[str, Any]) -> Any:
    """An ASGI 2 app written as a function returning the instance."""

    async def instance(receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": _summary(scope, "asgi2-function")})

    return instance


async def startup_fails(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
