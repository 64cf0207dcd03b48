"""Importable only through ``--app-dir tests/apps/appdir_target``."""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise ValueError("no lifespan")
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"from --app-dir"})


def create_app() -> Any:
    async def made(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"from --app-dir, made by a factory"})

    return made
