"""What every connection handler shares: the app, the config, the lifespan state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, Protocol, TypeVar, cast

import anyio

from refserver.config import Config
from refserver.logs import error_log
from refserver.protocol.effects import Effects
from refserver.runtime.wakeup import AsyncioWakeup
from refserver.trace import ConnectionTrace, Tracer
from refserver.types import ASGIApp, Scope

__all__ = ["CALLS_BETWEEN_YIELDS", "ASGIApp", "Handler", "Scope", "ServerContext", "record_steps"]

# docs/decisions.md #42: of an app's receive() and send() calls that can answer at once,
# every third lets the event loop run (one that has to wait resets the count).
CALLS_BETWEEN_YIELDS = 3


T = TypeVar("T")


class Handler(Protocol):
    async def shutdown(self) -> None: ...


class ServerContext:
    def __init__(self, app: ASGIApp, config: Config, tracer: Tracer | None = None) -> None:
        self.app = app
        self.config = config
        self.tracer = tracer  # None: tracing is off and costs nothing
        self._connections = 0
        self.state: dict[str, Any] = {}  # the lifespan state (lifespan spec 2.0, "state")
        self.handlers: set[Handler] = set()
        self.shutting_down = False
        self.all_closed = anyio.Event()
        self._date_second = -1
        self._date = b""
        self._cache: dict[Callable[[ServerContext], Any], Any] = {}
        self._calls: list[Callable[[], None]] = []
        self._calls_wakeup: AsyncioWakeup | None = None

    def cached(self, make: Callable[[ServerContext], T]) -> T:
        """``make(self)``, made once per server (``make`` derives it from the config)."""
        try:
            return cast(T, self._cache[make])
        except KeyError:
            value = self._cache[make] = make(self)
            return value

    def call_in_task(self, thunk: Callable[[], None]) -> None:
        """Run ``thunk`` soon in a task of the server's (:meth:`run_calls`): for an event-loop
        callback (asyncio's protocols, readiness callbacks) whose work needs anyio, which
        knows the running event loop only inside a task."""
        self._calls.append(thunk)
        if self._calls_wakeup is not None:
            self._calls_wakeup.fire()

    async def run_calls(self) -> None:
        """The task that runs what :meth:`call_in_task` queues (asyncio only)."""
        self._calls_wakeup = wakeup = AsyncioWakeup(asyncio.get_running_loop())
        while True:
            while self._calls:
                calls, self._calls = self._calls, []
                for thunk in calls:
                    try:
                        thunk()
                    except Exception:
                        error_log.exception("Internal error in refserver")
            await wakeup.wait()

    def date(self) -> bytes:
        """The Date header value (RFC 9110 §6.6.1), formatted once per second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date

    def new_connection_id(self) -> str:
        """``c1``, ``c2``, ...: names a TCP connection in the trace."""
        self._connections += 1
        return f"c{self._connections}"

    def trace_for(self, conn_id: str, scope: str) -> ConnectionTrace | None:
        """The trace of one scope on a connection, or None when tracing is off."""
        return None if self.tracer is None else self.tracer.connection(conn_id, scope)

    def add(self, handler: Handler) -> None:
        self.handlers.add(handler)

    def remove(self, handler: Handler) -> None:
        self.handlers.discard(handler)
        if self.shutting_down and not self.handlers:
            self.all_closed.set()


def record_steps(fx: Effects, state: str, trace: ConnectionTrace | None) -> str:
    """The state changes and notes of one input's effects: traced, warnings logged. Returns
    the state after them. Called first by every runtime's ``_apply``."""
    for step in fx.transitions:
        state = step.new
        if trace is not None:
            trace.record("state", step.new, step.section, step.why, old_state=step.old)
    for note in fx.notes:
        if note.kind == "warning":
            error_log.warning("%s (%s)", note.text, note.section)
        if trace is not None:
            trace.record(note.kind, state, note.section, note.text)
    return state
