"""www spec 2.5, "Disconnect - receive event": after the disconnect every receive() returns it
again. An app that loops on receive() without looking for it (the bug behind "ASGI flow error"
reports) must not freeze the server: every receive() yields to the event loop, and refserver
warns once per connection, naming the rule."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from refserver.protocol.websocket import DISCONNECT_REPEATS_BEFORE_WARNING
from tests.support import Recorder, WSClient, http_request, serving

pytestmark = pytest.mark.anyio

LOOPS = 20_000


class TestDisconnectReceiveEvent:
    async def test_a_receive_loop_after_the_disconnect_does_not_starve_other_connections(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 200})
                await send({"type": "http.response.body", "body": b"ok"})
                return
            await receive()
            await send({"type": "websocket.accept"})
            first = await receive()
            rec.add("disconnect", first)
            for _ in range(LOOPS):  # the buggy app: never looks at the type
                event = await receive()
                assert event == first
            rec.add("order", "loop done")

        caplog.set_level(logging.WARNING, logger="refserver")
        async with serving(app) as server:
            ws = await WSClient.connect(server.port)
            await ws.close(1001)
            await rec.wait_kind("disconnect")
            response, body = await http_request(server.port)  # served while the app loops
            rec.add("order", "http done")
            await rec.wait_kind("order", 2, timeout=30)
        assert (response.status_code, body) == (200, b"ok")
        assert rec.of("order") == ["http done", "loop done"]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"the app called receive() {DISCONNECT_REPEATS_BEFORE_WARNING} times after websocket.disconnect; "
            "the connection is over, so the app should return when it receives websocket.disconnect "
            '(www spec 2.5, "Disconnect - receive event")'
        ]
