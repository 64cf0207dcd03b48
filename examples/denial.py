"""Refusing a WebSocket with an HTTP response of the app's own (the denial response).

Run it with ``refserver examples.denial:app`` and open http://127.0.0.1:8000: the page opens
one WebSocket without a token, which is refused with 401 and a body, and one with the token,
which is accepted and echoes.

asgi extensions, "Websocket Denial Response": instead of accepting, an app may answer
the handshake with ``websocket.http.response.start`` and ``websocket.http.response.body``,
an ordinary HTTP response. A browser only sees a failed WebSocket (close code 1006; the status
shows in the developer tools), but any other client can read the status, headers and body.
Servers that do not offer the extension (it is listed in ``scope["extensions"]``) only allow
``websocket.close`` before accepting, which becomes a bare HTTP 403.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

TOKEN = "letmein"

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>denial</title></head>
<body><h1>A denied and an accepted WebSocket</h1><pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
function open(name, url) {
  const ws = new WebSocket(url);
  ws.onopen = () => { log(`${name}: open`); ws.send("hi"); };
  ws.onmessage = (e) => { log(`${name}: echo ${e.data}`); ws.close(1000); };
  ws.onerror = () => log(`${name}: error`);
  ws.onclose = (e) => log(`${name}: closed ${e.code}`);
}
open("without token", `ws://${location.host}/ws`);
open("with token", `ws://${location.host}/ws?token=letmein`);
</script></body></html>
"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": PAGE})
        return
    if scope["type"] != "websocket":
        return

    assert (await receive())["type"] == "websocket.connect"
    token = parse_qs(scope["query_string"].decode()).get("token", [""])[0]
    if token != TOKEN:
        if "websocket.http.response" in scope.get("extensions", {}):
            # The denial response: a status, headers and a body, like any HTTP response.
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b'Token realm="echo"')],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"a token is needed: /ws?token=...\n"})
        else:
            await send({"type": "websocket.close"})  # the server answers HTTP 403
        return

    await send({"type": "websocket.accept"})
    while (event := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})
