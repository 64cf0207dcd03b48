"""The lifespan protocol (lifespan spec 2.0) as a state table.

The server sends ``lifespan.startup`` before accepting connections and
``lifespan.shutdown`` after it stopped accepting and closed them; the app answers each
with ``.complete`` or ``.failed``. An app that raises before completing startup does not
support lifespan (lifespan spec 2.0, "Scope"); what the server does then depends on
``--lifespan``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from refserver.errors import ASGIProtocolError
from refserver.spec import messages, sections


class LifespanState(Enum):
    STARTING = "lifespan.startup sent; waiting for startup.complete or startup.failed"
    STARTED = "startup complete; serving"
    SHUTTING_DOWN = "lifespan.shutdown sent; waiting for shutdown.complete or shutdown.failed"
    DONE = "shutdown complete"
    STARTUP_FAILED = "the app sent lifespan.startup.failed"
    SHUTDOWN_FAILED = "the app sent lifespan.shutdown.failed"


# (state, message type) -> next state
_TABLE: dict[tuple[LifespanState, str], LifespanState] = {
    (LifespanState.STARTING, "lifespan.startup.complete"): LifespanState.STARTED,
    (LifespanState.STARTING, "lifespan.startup.failed"): LifespanState.STARTUP_FAILED,
    (LifespanState.SHUTTING_DOWN, "lifespan.shutdown.complete"): LifespanState.DONE,
    (LifespanState.SHUTTING_DOWN, "lifespan.shutdown.failed"): LifespanState.SHUTDOWN_FAILED,
}


class LifespanMachine:
    def __init__(self) -> None:
        self.state = LifespanState.STARTING
        self.failure_message = ""

    def app_send(self, message: Mapping[str, Any]) -> LifespanState:
        kind = messages.message_type(message)
        next_state = _TABLE.get((self.state, kind))
        section = sections.LIFESPAN_STARTUP if kind.startswith("lifespan.startup") else sections.LIFESPAN_SHUTDOWN
        if next_state is None:
            if not kind.startswith("lifespan."):
                section = sections.CORE_ERRORS
            raise ASGIProtocolError(kind, "is not expected now", section).with_state(self.state.name)
        try:
            messages.validate(message, kind)
        except ASGIProtocolError as exc:
            raise exc.with_state(self.state.name) from None
        if kind.endswith(".failed"):
            self.failure_message = message.get("message") or ""
        self.state = next_state
        return next_state

    def begin_shutdown(self) -> None:
        if self.state is LifespanState.STARTED:
            self.state = LifespanState.SHUTTING_DOWN
