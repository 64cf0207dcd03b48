"""Apps for the reliability runs. Only the standard library and refserver's public API: they also
run in a ``python -m refserver`` subprocess.

``echo`` echoes every WebSocket message on ``/ws/<id>`` and records, per connection id, each
``websocket.disconnect`` code it received, whether a later ``receive()`` repeated it, and whether a
``send()`` raised :class:`refserver.ClientDisconnected`. ``GET /stats`` returns that record as
JSON; ``GET /`` answers ``ok``, and ``GET /slow`` answers after ``?ms`` milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anyio

from refserver import ClientDisconnected

Scope = dict[str, Any]


@dataclass
class EchoStats:
    """What the echo app saw, per connection id (the last path segment)."""

    codes: dict[str, list[int]] = field(default_factory=dict)
    repeated: dict[str, bool] = field(default_factory=dict)
    send_raised: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    running: int = 0
    other_errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "codes": self.codes,
            "repeated": self.repeated,
            "send_raised": self.send_raised,
            "messages": self.messages,
            "running": self.running,
            "other_errors": self.other_errors,
        }


STATS = EchoStats()


def reset_stats() -> EchoStats:
    global STATS
    STATS = EchoStats()
    return STATS


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(scope: Scope, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stats":
        body = json.dumps(STATS.as_json()).encode()
    elif scope["path"] == "/slow":
        query = scope["query_string"].decode()
        await anyio.sleep(int(query or "0") / 1000)  # the app's own work, not a test's synchronisation
        body = b"slow " + query.encode()
    else:
        body = b"ok"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


async def _websocket(scope: Scope, receive: Any, send: Any) -> None:
    cid = scope["path"].rsplit("/", 1)[-1]
    stats = STATS
    stats.running += 1
    try:
        connect = await receive()
        if connect["type"] != "websocket.connect":
            stats.other_errors.append(f"{cid}: first event {connect!r}")
            return
        try:
            await send({"type": "websocket.accept"})
        except ClientDisconnected:
            stats.send_raised[cid] = stats.send_raised.get(cid, 0) + 1
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                stats.codes.setdefault(cid, []).append(event["code"])
                stats.repeated[cid] = await receive() == event
                return
            stats.messages += 1
            reply = {"type": "websocket.send", "bytes": event.get("bytes"), "text": event.get("text")}
            try:
                await send(reply)
            except ClientDisconnected:
                stats.send_raised[cid] = stats.send_raised.get(cid, 0) + 1
    finally:
        stats.running -= 1


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _http(scope, receive, send)
    else:
        await _websocket(scope, receive, send)


async def streamer(scope: Scope, receive: Any, send: Any) -> None:
    """For shutdown under load: each WebSocket on ``/ws/<id>`` is sent ``<id>:<n>`` for
    n = 0, 1, ... every ``?pace=`` milliseconds (default 10) until ``send()`` raises; then the app prints one line,
    ``ws <id> last_ok <n> code <code>``: the last message whose ``send()`` returned and the
    disconnect code it got. HTTP is as in :func:`echo` (``/slow?ms`` for requests in flight)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":
        await _http(scope, receive, send)
        return
    cid = scope["path"].rsplit("/", 1)[-1]
    query = scope["query_string"].decode()
    pace_s = int(query.partition("pace=")[2] or "10") / 1000
    await receive()
    last_ok = -1
    try:
        await send({"type": "websocket.accept"})
        n = 0
        while True:
            await send({"type": "websocket.send", "text": f"{cid}:{n}"})
            last_ok = n
            n += 1
            await anyio.sleep(pace_s)  # the app's pace
    except ClientDisconnected:
        pass
    event = await receive()
    while event["type"] != "websocket.disconnect":
        event = await receive()
    print(f"ws {cid} last_ok {last_ok} code {event['code']}", flush=True)
