"""The scripted run of one framework: ``python -m frameworks.script MODULE`` prints its results as JSON.

The app is served in this process by :func:`refserver.testing.serve` with ``app_violations="warn"``
and ``record=True``; the raw clients of tests/support.py drive it, one step after another, each
bounded. A step's results are what the client saw, what the app said it saw (:mod:`frameworks.seen`),
the ``websocket.disconnect`` messages refserver delivered, and the violations refserver recorded.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.abc

from frameworks import seen
from frameworks.doc import BY_MODULE, Framework
from refserver.testing import RunningServer, serve
from tests.support import Rejected, WSClient, http_request

TIMEOUT_S = 5.0
SHUTDOWN = ("shutdown", "WebSocket echo of 'hello', then the server shuts down (as on SIGTERM)")
SOCKETIO = "/socket.io/?EIO=4&transport="


class Talk:
    """How the client says a text message to a route: a frame of its own, or an Engine.IO event."""

    def __init__(self, framework: Framework) -> None:
        self.socketio = framework.socketio

    async def open(self, port: int, route: str) -> WSClient:
        if not self.socketio:
            return await WSClient.connect(port, "/" + route)
        client = await WSClient.connect(port, SOCKETIO + "websocket")
        opened = await client.next_message(TIMEOUT_S)  # Engine.IO "open" packet: 0{...}
        assert isinstance(opened, str) and opened.startswith("0"), opened
        await client.send_text("40")  # Socket.IO "connect" to the default namespace
        connected = await client.next_message(TIMEOUT_S)
        assert isinstance(connected, str) and connected.startswith("40"), connected
        return client

    async def say(self, client: WSClient, route: str, text: str) -> None:
        await client.send_text("42" + json.dumps([route, text]) if self.socketio else text)

    async def hear(self, client: WSClient) -> str:
        message = await client.next_message(TIMEOUT_S)
        if self.socketio and isinstance(message, str) and message.startswith("42"):
            return str(json.loads(message[2:])[1])
        return repr(message)[1:-1] if isinstance(message, str) else repr(message)


async def echo(talk: Talk, port: int) -> tuple[WSClient, str]:
    client = await talk.open(port, "echo")
    await talk.say(client, "echo", "hello")
    return client, f"echoed {await talk.hear(client)!r}"


async def closing(client: WSClient) -> str:
    close = await client.expect_close(TIMEOUT_S)
    await client.aclose()
    return f"the server closed with {close.code} {close.reason!r}"


async def step_http(server: RunningServer, talk: Talk, path: str) -> list[str]:
    response, _ = await http_request(server.port, "GET", path)
    return [f"HTTP {response.status_code}"]


async def step_close(server: RunningServer, talk: Talk) -> list[str]:
    client, said = await echo(talk, server.port)
    await client.close(4001, "bye")
    return [said, await closing(client)]


async def step_reset(server: RunningServer, talk: Talk) -> list[str]:
    client, said = await echo(talk, server.port)
    await client.reset()
    return [said, "reset (RST)"]


async def step_late(server: RunningServer, talk: Talk) -> list[str]:
    client = await talk.open(server.port, "late")
    await talk.say(client, "late", "hello")
    await client.close(1000)
    said = await closing(client)
    seen.open_gate()
    return [said]


def steps(framework: Framework) -> list[tuple[str, str, Callable[[RunningServer, Talk], Awaitable[list[str]]]]]:
    """(name, what the client does, how) for each step before the shutdown."""
    first = SOCKETIO + "polling" if framework.socketio else "/"

    async def http_first(server: RunningServer, talk: Talk) -> list[str]:
        return await step_http(server, talk, first)

    async def http_missing(server: RunningServer, talk: Talk) -> list[str]:
        return await step_http(server, talk, "/missing")

    return [
        ("http", f"GET {first}", http_first),
        ("http-404", "GET /missing", http_missing),
        ("close-4001", "WebSocket echo of 'hello', then the client closes with 4001 'bye'", step_close),
        ("reset", "WebSocket echo of 'hello', then the client resets the connection (RST)", step_reset),
        ("late-send", "the client closes with 1000 while the app waits; then the app sends", step_late),
    ]


def app_lines(step: str) -> Callable[[], bool]:
    if step.startswith("http"):
        return lambda: True
    # a WebSocket step is over when the app's call for it has returned or raised
    return lambda: bool(seen.finished)


def delivered(records: list[Any]) -> list[str]:
    return [
        f"code={r.message.get('code')!r} reason={r.message.get('reason', '')!r}"
        for r in records
        if r.kind == "recv" and r.message is not None and r.message.get("type") == "websocket.disconnect"
    ]


def raised_from_send(records: list[Any]) -> list[str]:
    """What refserver's ``send()`` raised to the app: its ``error`` trace records."""
    return [f"{r.message.get('type') if r.message else '?'}: {r.detail}" for r in records if r.kind == "error"]


def violations(found: list[Any]) -> list[dict[str, Any]]:
    return [
        {"message_type": v.message_type, "problem": v.problem, "section": v.section, "taken": v.taken} for v in found
    ]


@dataclass(slots=True)
class Step:
    """One step under way: where the server's records stood when it began, and what the client saw."""

    server: RunningServer
    name: str
    does: str
    violations_from: int
    records_from: int
    client: list[str] = field(default_factory=list)

    @classmethod
    def begin(cls, server: RunningServer, name: str, does: str) -> Step:
        seen.reset()
        return cls(server, name, does, len(server.violations), len(server.records))

    async def act(self, how: Callable[[], Awaitable[list[str]]]) -> None:
        """Run the client's part, bounded; a failure is what the client saw."""
        try:
            with anyio.fail_after(TIMEOUT_S):
                self.client += await how()
        except Rejected as rejected:
            self.client.append(f"the handshake was answered HTTP {rejected.response.status_code}")
        except Exception as exc:
            self.client.append(f"the client failed: {seen.describe(exc)}")

    async def end(self) -> dict[str, Any]:
        """Wait (bounded) until the app is done with the step; return what each side saw."""
        said = await wait_for(app_lines(self.name))
        return {
            "step": self.name,
            "does": self.does,
            "client": self.client,
            "app": said,
            "delivered": delivered(self.server.records[self.records_from :]),
            "send_raised": raised_from_send(self.server.records[self.records_from :]),
            "escaped": list(seen.escaped),
            "violations": violations(self.server.violations[self.violations_from :]),
        }


async def run(framework: Framework) -> dict[str, Any]:
    """Serve the framework's app and run every step against it; return what was seen."""
    app = seen.outermost(importlib.import_module(f"frameworks.apps.{framework.module}").app)
    talk = Talk(framework)
    results: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:
        async with serve(app, app_violations="warn", record=True, shutdown_timeout_s=2) as server:
            for name, does, how in steps(framework):
                step = Step.begin(server, name, does)
                await step.act(partial(how, server, talk))
                results.append(await step.end())
            # The last step ends the block: the server shuts down with the WebSocket open, while
            # the client waits for the close frame and answers it.
            last = Step.begin(server, *SHUTDOWN)
            await last.act(partial(open_for_shutdown, tg, last.client, server, talk))
        results.append(await last.end())
    return {
        "framework": framework.name,
        "distribution": framework.distribution,
        "version": importlib.metadata.version(framework.distribution),
        "module": framework.module,
        "steps": results,
    }


async def open_for_shutdown(
    tg: anyio.abc.TaskGroup, seen_by_client: list[str], server: RunningServer, talk: Talk
) -> list[str]:
    client, said = await echo(talk, server.port)

    async def answer_close() -> None:
        try:
            with anyio.fail_after(TIMEOUT_S):
                event = await client.expect_close(TIMEOUT_S)
                seen_by_client.append(f"the server closed with {event.code} {event.reason!r}")
                await client.send_raw(client.wire.send(event.response()))
        except Exception as exc:
            seen_by_client.append(f"the client failed: {seen.describe(exc)}")

    tg.start_soon(answer_close)
    return [said]


async def wait_for(done: Callable[[], bool]) -> list[str]:
    with anyio.move_on_after(TIMEOUT_S):
        while not done():
            await seen.wait_changed()
    return list(seen.lines)


def main(argv: list[str]) -> None:
    [module] = argv
    print(json.dumps(anyio.run(run, BY_MODULE[module]), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
