"""What a framework's app saw, in its own words: the apps write here, the script reads.

The app and the script run on one event loop in one process (:mod:`frameworks.script`), so this
module is shared state. Each app's WebSocket handlers end by calling :func:`ended`, with the
exception its framework raised or the code its framework handed over; ``/late`` sends through
:func:`late_send` once the script opens :data:`GATE` (after the client has closed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

lines: list[str] = []
escaped: list[str] = []  # what left the app: the framework did not handle it
finished: list[str] = []  # one line each time the app returns or raises
_changed: list[anyio.Event] = []
_gate: list[anyio.Event] = []


def reset() -> None:
    """Forget what was seen and close the gate (called by the script before each step)."""
    lines.clear()
    escaped.clear()
    finished.clear()
    _gate[:] = [anyio.Event()]


def ended(what: str) -> None:
    """Record how a handler ended."""
    lines.append(what)
    for event in _changed:
        event.set()
    _changed.clear()


def ended_app() -> None:
    """Record that the app's call for a WebSocket returned or raised."""
    finished.append("ended")
    for event in _changed:
        event.set()
    _changed.clear()


def describe(exc: BaseException) -> str:
    """Name ``exc`` by its class, with the close code and reason it carries, if any."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    fields = [f"{attr}={getattr(exc, attr)!r}" for attr in ("code", "reason", "detail") if hasattr(exc, attr)]
    return f"{name}({', '.join(fields)})" if fields else name


def raised(exc: BaseException) -> None:
    """Record that a handler ended with ``exc``."""
    ended(f"raised {describe(exc)}")


def closed(code: Any) -> None:
    """Record the close code a framework handed to the app's disconnect callback (without a reason)."""
    ended(f"told code={code!r}, no reason")


async def late_send(send: Callable[[], Awaitable[object]]) -> None:
    """Wait until the script opens the gate (the client has closed), then ``send()``."""
    try:
        await _gate[0].wait()
    except BaseException as exc:
        ended(f"raised {describe(exc)} before the late send")
        raise
    try:
        await send()
    except BaseException as exc:
        ended(f"the late send raised {describe(exc)}")
        raise
    ended("the late send returned")


def open_gate() -> None:
    _gate[0].set()


async def wait_changed() -> None:
    """Return once a handler records something."""
    event = anyio.Event()
    _changed.append(event)
    await event.wait()


def outermost(app: Any) -> Any:
    """``app``, recording any exception that leaves it (to the server)."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            escaped.append(describe(exc))
            raise
        finally:
            if scope["type"] == "websocket":
                ended_app()

    return wrapped
