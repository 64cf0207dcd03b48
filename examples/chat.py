"""A broadcast chat with a browser page.

Run it with ``refserver examples.chat:app``, open http://127.0.0.1:8000 in two tabs (or two
browsers), pick names and talk. Reload a tab: the room sees the old connection leave and the
new one join.

What it shows:

* every connection's ``send`` callable can be used from *another* connection's task: a
  broadcast is just a loop over the members' ``send``;
* ``send()`` on a connection that has ended raises an ``OSError`` (www spec 2.5, "Disconnected Client - send exception";
  refserver's ``ClientDisconnected``), so the broadcast drops that member instead of writing into nowhere;
* ``websocket.disconnect`` arrives whenever a member goes away, closed tab or lost network.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>refserver chat</title>
<style>
body{font-family:system-ui,sans-serif;max-width:36em;margin:2em auto;color:#222}
#log{border:1px solid #ccc;border-radius:4px;padding:.5em;height:14em;overflow-y:auto;margin:.5em 0}
#log div{padding:.1em 0} .system{color:#777;font-style:italic} .me{color:#05a}
form{display:flex;gap:.5em} #text{flex:1}
</style></head>
<body>
<h1>refserver chat</h1>
<p>Open this page in a second tab and talk to yourself. Status: <b id="status">connecting</b></p>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" placeholder="message"><button>Send</button></form>
<script>
const params = new URLSearchParams(location.search);
const name = params.get("name") || "guest-" + Math.floor(Math.random() * 1000);
const log = document.getElementById("log");
function show(text, kind) {
  const line = document.createElement("div");
  line.textContent = text;
  if (kind) line.className = kind;
  log.append(line);
  log.scrollTop = log.scrollHeight;
}
const ws = new WebSocket(`ws://${location.host}/ws?name=${encodeURIComponent(name)}`);
ws.onopen = () => { document.getElementById("status").textContent = `connected as ${name}`; };
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.system) show(m.system, "system"); else show(`${m.from}: ${m.text}`, m.from === name ? "me" : "");
};
ws.onclose = (e) => { document.getElementById("status").textContent = `closed (${e.code})`; };
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  if (input.value) ws.send(input.value);
  input.value = "";
};
</script>
</body></html>
"""


class Room:
    """Who is connected, by connection: their name and their ``send``."""

    def __init__(self) -> None:
        self.members: dict[int, tuple[str, Any]] = {}

    async def broadcast(self, message: dict[str, str]) -> None:
        text = json.dumps(message)
        # A copy: members may leave while we send. Sends go one after another, so a member
        # whose connection is slow slows the broadcast down (send() waits until the socket
        # takes the frame) instead of piling up messages in memory.
        for key, (_name, send) in list(self.members.items()):
            try:
                await send({"type": "websocket.send", "text": text})
            except OSError:
                # That member's connection has ended; its own task will see
                # websocket.disconnect and announce it. Stop writing to it.
                self.members.pop(key, None)


class ChatApp:
    def __init__(self) -> None:
        self.room = Room()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": PAGE})
        elif scope["type"] == "websocket":
            await self.member(scope, receive, send)

    async def member(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = parse_qs(scope["query_string"].decode()).get("name", ["guest"])[0][:30]
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        key = id(send)  # one send callable per connection
        self.room.members[key] = (name, send)
        await self.room.broadcast({"system": f"{name} joined"})
        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    break
                if event.get("text"):
                    await self.room.broadcast({"from": name, "text": event["text"][:500]})
        finally:
            self.room.members.pop(key, None)
        await self.room.broadcast({"system": f"{name} left"})


app = ChatApp()
