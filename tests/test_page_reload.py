"""The page-reload scenario: a browser reloading a page drops its WebSocket without
a close frame and opens a new one at once.

Other servers lost the disconnect or raised ``RuntimeError: ASGI flow error`` from the old
instance's next ``send()``. With refserver the old instance gets ``websocket.disconnect``
1006 with reason "", its next ``send()`` raises ``refserver.ClientDisconnected`` (which,
escaping the app, is not logged), the new connection works, and nothing is logged at
error level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest

from refserver import ClientDisconnected
from tests.support import HTTPClient, Recorder, WSClient, header, refserver_errors, serving

pytestmark = pytest.mark.anyio

DEADLINE = 10.0
PAGE = b"""<!doctype html>
<title>echo</title>
<script>
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onopen = () => ws.send("hello");
ws.onmessage = (e) => document.body.append(e.data);
</script>
"""


class PageApp:
    """Serves PAGE on "/" and an echo socket on "/ws". Each socket instance records what
    it received and what its send() after the disconnect did, then lets the exception
    escape (as an app that does not catch it would)."""

    def __init__(self) -> None:
        self.sockets = Recorder()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket" and scope["path"] == "/ws":
            await self._socket(receive, send)

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        if scope["path"] == "/":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": PAGE})
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})

    async def _socket(self, receive: Any, send: Any) -> None:
        log = Recorder()
        self.sockets.add("socket", log)
        try:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            while True:
                event = await receive()
                log.add("recv", event)
                if event["type"] == "websocket.disconnect":
                    break
                await send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})
            try:
                await send({"type": "websocket.send", "text": "are you still there?"})
            except Exception as exc:
                log.add("send_after_disconnect", exc)
                raise  # refserver must swallow its own ClientDisconnected without logging
            log.add("send_after_disconnect", None)
        finally:
            log.add("done")

    async def socket(self, index: int) -> Recorder:
        sock = (await self.sockets.wait_kind("socket", index + 1))[index]
        assert isinstance(sock, Recorder)
        return sock


async def load_page(port: int) -> None:
    async with HTTPClient.open(port) as http:
        await http.send_request("GET", "/", headers=[("accept", "text/html")])
        response, body = await http.read_response()
    assert response.status_code == 200
    assert header(response, b"content-type") == [b"text/html; charset=utf-8"]
    assert body == PAGE


async def reload_scenario(caplog: pytest.LogCaptureFixture, drop: Callable[[WSClient], Awaitable[None]]) -> None:
    app = PageApp()
    with anyio.fail_after(DEADLINE):
        async with serving(app) as server:
            # first visit: the page, its socket, one message each way
            await load_page(server.port)
            first = await WSClient.connect(server.port, "/ws")
            await first.send_text("hello")
            assert await first.next_message() == "hello"

            # reload: the browser drops the TCP connection without a close frame ...
            await drop(first)
            # ... and loads the page and its socket again
            await load_page(server.port)
            second = await WSClient.connect(server.port, "/ws")
            await second.send_text("hello again")
            assert await second.next_message() == "hello again"

            old = await app.socket(0)
            await old.wait_kind("done")
            await second.close(1000)
            assert (await second.expect_close()).code == 1000
            await second.expect_eof()
            await second.aclose()
            new = await app.socket(1)
            await new.wait_kind("done")
            await first.aclose()

    assert old.of("recv") == [
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.disconnect", "code": 1006, "reason": ""},
    ]
    [exc] = old.of("send_after_disconnect")
    assert type(exc) is ClientDisconnected
    assert isinstance(exc, OSError)
    assert str(exc).strip()
    assert new.of("recv") == [
        {"type": "websocket.receive", "text": "hello again"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]
    assert refserver_errors(caplog) == []


async def test_browser_page_reload_delivers_1006_and_raises_on_send(caplog: pytest.LogCaptureFixture) -> None:
    """The reload drops the old socket with a TCP RST (SO_LINGER(1, 0)). (A FIN without a close
    frame gives the same 1006: tests/test_ws_disconnect.py::test_fin_without_close_frame_is_1006.)"""

    async def rst(ws: WSClient) -> None:
        await ws.reset()

    await reload_scenario(caplog, rst)
