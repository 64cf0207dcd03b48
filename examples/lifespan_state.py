"""Lifespan state shared with every connection.

Run it with ``refserver examples.lifespan_state:app`` and open http://127.0.0.1:8000 a few times.

lifespan spec 2.0, "Lifespan State": the server hands the lifespan scope an empty dict,
``scope["state"]``; what the app puts there during ``lifespan.startup`` reaches every later
HTTP and WebSocket scope as ``scope["state"]``, a *shallow copy*. So objects in it (a
connection pool, a counter) are shared by everyone, while assigning a key in one connection's
copy changes nothing for the others. Shutdown is where the app releases what startup made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Visits:
    """Stands in for a real resource (a database pool, a cache client)."""

    def __init__(self) -> None:
        self.count = 0
        self.closed = False

    def add(self) -> int:
        self.count += 1
        return self.count


class LifespanStateApp:
    def __init__(self, report: Callable[[str], None] = print) -> None:
        self.report = report

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
        elif scope["type"] == "http":
            visits: Visits = scope["state"]["visits"]  # the object startup created
            scope["state"]["note"] = "only in this request's copy"
            body = f"{scope['state']['greeting']}, visitor {visits.add()}\n".encode()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            visits = scope["state"]["visits"]
            await send({"type": "websocket.send", "text": f"{visits.count} visits so far"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

    async def lifespan(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        scope["state"]["greeting"] = "hello"
        scope["state"]["visits"] = Visits()
        await send({"type": "lifespan.startup.complete"})
        self.report("startup complete")

        assert (await receive())["type"] == "lifespan.shutdown"
        visits = scope["state"]["visits"]
        visits.closed = True
        self.report(f"shutdown: {visits.count} visits")
        await send({"type": "lifespan.shutdown.complete"})


app = LifespanStateApp()
