"""The page-reload case: what an app is told when a browser reloads, leaves or closes a page.

Run it with ``refserver examples.page_reload:app``, open http://127.0.0.1:8000 and reload the
page a few times, then close the tab. For every WebSocket that ends, the terminal shows:

    socket 1: websocket.disconnect, code 1001, reason ''
    socket 1: receive() again: the same websocket.disconnect
    socket 1: send() raised ClientDisconnected (an OSError): ...

A browser leaving a page closes its WebSockets with 1001 ("going away"; RFC 6455 §7.4.1), or
drops the connection (the app then sees 1006). What the ASGI spec promises the app:

* www spec 2.5, "Disconnect - receive event": ``websocket.disconnect`` arrives with the code,
  and every later ``receive()`` returns it again (it never hangs);
* www spec 2.5, "Disconnected Client - send exception": ``send()`` on a closed connection
  raises an ``OSError`` subclass, so an app that only sends (a feed, a clock) learns that
  nobody is listening any more. refserver's is ``refserver.ClientDisconnected``; if it escapes
  the app, the server does not log it as an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>page reload</title></head>
<body><h1>Reload me</h1><p>Each load opens a WebSocket; watch the server's terminal.</p>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onopen = () => ws.send(`hello from ${performance.timeOrigin}`);
ws.onmessage = (e) => log(`echo: ${e.data}`);
ws.onclose = (e) => log(`closed: ${e.code}`);
</script></body></html>
"""


class PageReloadApp:
    """Serves the page on "/" and an echo socket on "/ws" that reports how it ends.
    ``report`` receives one line per step (print by default)."""

    def __init__(self, report: Callable[[str], None] = print) -> None:
        self.report = report
        self.numbers = itertools.count(1)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": PAGE})
        elif scope["type"] == "websocket":
            await self.socket(f"socket {next(self.numbers)}", receive, send)

    async def socket(self, name: str, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.report(f"{name}: accepted")
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                break
            self.report(f"{name}: received {event.get('text')!r}")
            try:
                await send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})
            except OSError as exc:
                # The browser's close frame may already be in: it came right behind this
                # message, and refserver reads ahead. receive() gives the disconnect next.
                self.report(f"{name}: the echo raised {type(exc).__name__}: {exc}")

        self.report(f"{name}: websocket.disconnect, code {event['code']}, reason {event.get('reason', '')!r}")
        again = await receive()
        same = "the same websocket.disconnect" if again == event else f"something else: {again!r}"
        self.report(f"{name}: receive() again: {same}")
        try:
            await send({"type": "websocket.send", "text": "is anyone there?"})
        except OSError as exc:
            self.report(f"{name}: send() raised {type(exc).__name__} (an OSError): {exc}")
        else:
            self.report(f"{name}: send() returned: the message went nowhere")


app = PageReloadApp()
