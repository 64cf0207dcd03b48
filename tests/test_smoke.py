"""The example app answers over HTTP and WebSocket on both backends."""

from __future__ import annotations

import anyio
import pytest

from examples.app import app
from tests.support import WSClient, http_request, serving

pytestmark = pytest.mark.anyio


async def test_example_page() -> None:
    with anyio.fail_after(5):
        async with serving(app) as server:
            response, body = await http_request(server.port, "GET", "/")
    assert response.status_code == 200
    assert body.startswith(b"<!doctype html>")


async def test_example_websocket_echo() -> None:
    with anyio.fail_after(5):
        async with serving(app) as server:
            ws = await WSClient.connect(server.port, "/ws")
            await ws.send_text("héllo")
            assert await ws.next_message() == "héllo"
            await ws.send_bytes(b"\x00\xff")
            assert await ws.next_message() == b"\x00\xff"
            await ws.close(1000)
            close = await ws.expect_close()
            assert close.code == 1000
            await ws.expect_eof()
