"""The example app of the README: a page on ``/``, a WebSocket echo on ``/ws``.

Plain ASGI 3, no framework. Run it with ``refserver examples.app:app``.
"""

from __future__ import annotations

from typing import Any

PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>refserver</title>
<style>body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto}
#log{border:1px solid #ccc;padding:.5em;min-height:6em;white-space:pre-wrap}</style></head>
<body>
<h1>refserver is running</h1>
<p>This page is served by the example ASGI app. Below, a WebSocket to <code>/ws</code>
echoes what you send.</p>
<form id="form"><input id="text" value="hello" autocomplete="off">
<button>Send</button></form>
<div id="log"></div>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const ws = new WebSocket(`ws://${location.host}/ws`);
ws.onopen = () => { log("open"); ws.send("hello from the browser"); };
ws.onmessage = (e) => log("echo: " + e.data);
ws.onclose = (e) => log(`closed: code ${e.code} ${e.reason}`);
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  ws.send(document.getElementById("text").value);
};
</script>
</body></html>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        if scope["path"] == "/":
            body, status, kind = PAGE, 200, b"text/html; charset=utf-8"
        else:
            body, status, kind = b"Not Found\n", 404, b"text/plain; charset=utf-8"
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        if scope["path"] != "/ws":
            await send({"type": "websocket.close"})  # HTTP 403
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send(
                {
                    "type": "websocket.send",
                    "text": message.get("text"),
                    "bytes": message.get("bytes"),
                }
            )
