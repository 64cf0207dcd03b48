"""docs/decisions.md#fairness: an app that calls send() in a loop, never waiting for anything else,
cannot starve the other connections: of the calls that can answer at once, every third yields
to the event loop."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.support import Recorder, WSClient, http_request, serving

pytestmark = pytest.mark.anyio

SENDS = 2_000  # 8 bytes each: far below any send buffer, so no send() ever waits for space


class TestSendSendEvent:
    async def test_a_send_loop_does_not_starve_other_connections(self) -> None:
        rec = Recorder()
        go = anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                rec.add("http started")
                await go.wait()
                await send({"type": "http.response.start", "status": 200})
                await send({"type": "http.response.body", "body": b"ok"})
                rec.add("order", "http done")
                return
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
            go.set()
            for _ in range(SENDS):
                await send({"type": "websocket.send", "bytes": b"12345678"})
            rec.add("order", "loop done")
            await receive()

        async with serving(app) as server, anyio.create_task_group() as tg:
            ws = await WSClient.connect(server.port)
            tg.start_soon(http_request, server.port)
            await rec.wait_kind("http started")
            await ws.send_text("start")
            await rec.wait_kind("order", 2)
            assert [await ws.next_message() for _ in range(SENDS)] == [b"12345678"] * SENDS
            await ws.close()
        assert rec.of("order") == ["http done", "loop done"]
