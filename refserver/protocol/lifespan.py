"""The lifespan protocol (lifespan spec 2.0) as one sans-IO state machine.

The server sends ``lifespan.startup`` before accepting connections and
``lifespan.shutdown`` after it stopped accepting and closed them; the app answers each
with ``.complete`` or ``.failed``. An app that raises before completing startup does not
support lifespan (lifespan spec 2.0, "Scope"); what the server does then depends on
``--lifespan`` (the runtime's call).

Every input returns :class:`~refserver.protocol.effects.Effects`; the runtime applies them.
The inputs (:class:`Input`) are the app's messages and its ``receive()`` calls, the app
returning or raising, the server asking for shutdown, and the shutdown timeout. ``TABLE``
has one row for every (state, input): the states it may lead to, the action and the spec
section.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from refserver.errors import ASGIProtocolError
from refserver.protocol.effects import Effects
from refserver.protocol.table import Action, TableBuilder, TableMachine
from refserver.spec import messages, sections

_SCOPE = sections.LIFESPAN_SCOPE


class LifespanState(Enum):
    STARTING = "lifespan.startup sent; waiting for startup.complete or startup.failed"
    STARTED = "startup complete; serving"
    SHUTTING_DOWN = "lifespan.shutdown sent; waiting for shutdown.complete or shutdown.failed"
    DONE = "shutdown complete (or nothing left to do at shutdown)"
    STARTUP_FAILED = "startup did not complete: the app sent lifespan.startup.failed, returned or raised"
    SHUTDOWN_FAILED = "shutdown did not complete: the app sent lifespan.shutdown.failed, returned, raised or timed out"


class Input(Enum):
    STARTUP_COMPLETE = "lifespan.startup.complete"
    STARTUP_FAILED = "lifespan.startup.failed"
    SHUTDOWN_COMPLETE = "lifespan.shutdown.complete"
    SHUTDOWN_FAILED = "lifespan.shutdown.failed"
    OTHER_MESSAGE = "a message of another type"
    RECEIVE = "receive() called"
    APP_RETURNED = "the app returned"
    APP_RAISED = "the app raised"
    SHUTDOWN_REQUESTED = "the server stopped serving and asks for shutdown"
    TIMEOUT = "the shutdown timeout passed"


class Cause(Enum):
    """Why startup or shutdown did not complete."""

    MESSAGE = "the app sent .failed"
    RETURNED = "the app returned"
    RAISED = "the app raised"
    TIMEOUT = "the shutdown timeout passed"


_APP_INPUTS = {
    i.value: i for i in (Input.STARTUP_COMPLETE, Input.STARTUP_FAILED, Input.SHUTDOWN_COMPLETE, Input.SHUTDOWN_FAILED)
}


class LifespanMachine(TableMachine[LifespanState, Input, Effects]):
    name = "lifespan"

    def __init__(self) -> None:
        self.state = LifespanState.STARTING
        self.failure_message = ""  # the message of a .failed event
        self.cause: Cause | None = None  # why the state is STARTUP_FAILED or SHUTDOWN_FAILED
        self.cause_state: LifespanState | None = None  # the state the cause happened in
        self.app_has_ended = False
        self._startup_delivered = False
        self._fx = Effects()
        self._row = TABLE[(LifespanState.STARTING, Input.RECEIVE)]

    # ------------------------------------------------------------------ the contract

    def app_send(self, message: Mapping[str, Any]) -> Effects:
        """The app's ``send(message)``; raises ASGIProtocolError (state unchanged) for a
        message that is not expected now."""
        kind = messages.message_type(message)
        state = self.state
        try:
            return self._step(_APP_INPUTS.get(kind, Input.OTHER_MESSAGE), message)
        except ASGIProtocolError as exc:
            raise exc.with_state(state.name) from None

    def app_receive(self) -> Effects:
        """``Effects.event`` is what ``receive()`` returns now, or None: wait for ``wake_app``."""
        return self._step(Input.RECEIVE, None)

    def app_ended(self, *, raised: bool) -> Effects:
        return self._step(Input.APP_RAISED if raised else Input.APP_RETURNED, raised)

    def begin_shutdown(self) -> Effects:
        return self._step(Input.SHUTDOWN_REQUESTED, None)

    def timed_out(self) -> Effects:
        return self._step(Input.TIMEOUT, None)

    # ------------------------------------------------------------------ dispatch

    def _new_effects(self) -> Effects:
        return Effects()

    def _go(self, new: LifespanState, why: str, section: str) -> None:
        self._enter(new, why, section)
        self._fx.wake_app = True

    def _fail(self, new: LifespanState, cause: Cause, why: str, section: str) -> None:
        self.cause, self.cause_state = cause, self.state
        self._go(new, why, section)

    # ------------------------------------------------------------------ actions

    def _startup_complete(self, message: Mapping[str, Any]) -> None:
        messages.validate(message, "lifespan.startup.complete")
        self._go(LifespanState.STARTED, "the app completed startup", sections.LIFESPAN_STARTUP_COMPLETE)

    def _startup_failed(self, message: Mapping[str, Any]) -> None:
        message = messages.validate(message, "lifespan.startup.failed")
        self.failure_message = message.get("message") or ""
        self._fail(
            LifespanState.STARTUP_FAILED, Cause.MESSAGE, "the app sent startup.failed", sections.LIFESPAN_STARTUP_FAILED
        )

    def _shutdown_complete(self, message: Mapping[str, Any]) -> None:
        messages.validate(message, "lifespan.shutdown.complete")
        self._go(LifespanState.DONE, "the app completed shutdown", sections.LIFESPAN_SHUTDOWN_COMPLETE)

    def _shutdown_failed(self, message: Mapping[str, Any]) -> None:
        message = messages.validate(message, "lifespan.shutdown.failed")
        self.failure_message = message.get("message") or ""
        self._fail(
            LifespanState.SHUTDOWN_FAILED,
            Cause.MESSAGE,
            "the app sent shutdown.failed",
            sections.LIFESPAN_SHUTDOWN_FAILED,
        )

    def _unexpected(self, message: Mapping[str, Any]) -> None:
        kind = messages.message_type(message)
        if not kind.startswith("lifespan."):
            section = sections.CORE_ERRORS
        elif kind.startswith("lifespan.startup"):
            section = sections.LIFESPAN_STARTUP
        else:
            section = sections.LIFESPAN_SHUTDOWN
        raise ASGIProtocolError(kind, "is not expected now", section).with_state(self.state.name)

    def _receive(self, _: None) -> None:
        if not self._startup_delivered:
            self._startup_delivered = True
            self._fx.event = {"type": "lifespan.startup"}
        elif self.state is LifespanState.SHUTTING_DOWN:
            self._fx.event = {"type": "lifespan.shutdown"}

    def _ended_starting(self, raised: bool) -> None:
        # lifespan spec 2.0, "Scope": an app that raises here does not support lifespan.
        self.app_has_ended = True
        cause = Cause.RAISED if raised else Cause.RETURNED
        self._fail(LifespanState.STARTUP_FAILED, cause, f"{cause.value} before completing startup", _SCOPE)

    def _ended_started(self, raised: bool) -> None:
        # The app ended after startup.complete, before lifespan.shutdown could be sent
        # (lifespan spec 2.0 is silent; docs/decisions.md#lifespan-after-startup). A return means it has
        # nothing to do at shutdown; an exception means its shutdown never runs.
        self.app_has_ended = True
        if raised:
            self._fail(LifespanState.SHUTDOWN_FAILED, Cause.RAISED, "the app raised while serving", _SCOPE)
        else:
            self._go(LifespanState.DONE, "the app returned while serving: nothing to do at shutdown", _SCOPE)

    def _ended_shutting_down(self, raised: bool) -> None:
        self.app_has_ended = True
        cause = Cause.RAISED if raised else Cause.RETURNED
        self._fail(
            LifespanState.SHUTDOWN_FAILED,
            cause,
            f"{cause.value} before completing shutdown",
            sections.LIFESPAN_SHUTDOWN,
        )

    def _ended_after(self, _: bool) -> None:
        self.app_has_ended = True

    def _begin_shutdown(self, _: None) -> None:
        self._go(LifespanState.SHUTTING_DOWN, "the server asks for shutdown", sections.LIFESPAN_SHUTDOWN)

    def _timed_out(self, _: None) -> None:
        self._fail(
            LifespanState.SHUTDOWN_FAILED,
            Cause.TIMEOUT,
            "shutdown did not complete in time",
            sections.LIFESPAN_SHUTDOWN_COMPLETE,
        )

    def _nothing(self, _: Any) -> None:
        """Nothing to do."""


# ---------------------------------------------------------------------- the table


M = LifespanMachine
S = LifespanState
I = Input  # noqa: E741 - the table reads better with one-letter names

_ROWS: list[tuple[LifespanState, Input, tuple[LifespanState, ...], Action, str]] = [
    (S.STARTING, I.STARTUP_COMPLETE, (S.STARTED,), M._startup_complete, sections.LIFESPAN_STARTUP_COMPLETE),
    (S.STARTING, I.STARTUP_FAILED, (S.STARTUP_FAILED,), M._startup_failed, sections.LIFESPAN_STARTUP_FAILED),
    (S.SHUTTING_DOWN, I.SHUTDOWN_COMPLETE, (S.DONE,), M._shutdown_complete, sections.LIFESPAN_SHUTDOWN_COMPLETE),
    (S.SHUTTING_DOWN, I.SHUTDOWN_FAILED, (S.SHUTDOWN_FAILED,), M._shutdown_failed, sections.LIFESPAN_SHUTDOWN_FAILED),
    (S.STARTING, I.APP_RETURNED, (S.STARTUP_FAILED,), M._ended_starting, _SCOPE),
    (S.STARTED, I.APP_RETURNED, (S.DONE, S.SHUTDOWN_FAILED), M._ended_started, _SCOPE),
    (S.SHUTTING_DOWN, I.APP_RETURNED, (S.SHUTDOWN_FAILED,), M._ended_shutting_down, sections.LIFESPAN_SHUTDOWN),
    (S.STARTED, I.SHUTDOWN_REQUESTED, (S.SHUTTING_DOWN,), M._begin_shutdown, sections.LIFESPAN_SHUTDOWN),
    (S.SHUTTING_DOWN, I.TIMEOUT, (S.SHUTDOWN_FAILED,), M._timed_out, sections.LIFESPAN_SHUTDOWN_COMPLETE),
]
_ROWS += [(s, I.APP_RAISED, nxt, action, section) for s, i, nxt, action, section in _ROWS if i is I.APP_RETURNED]
_ROWS += [(s, I.RECEIVE, (), M._receive, _SCOPE) for s in S]
for _state in (S.DONE, S.STARTUP_FAILED, S.SHUTDOWN_FAILED):
    _ROWS += [(_state, _i, (), M._ended_after, _SCOPE) for _i in (I.APP_RETURNED, I.APP_RAISED)]
_ROWS += [
    (s, i, (), M._nothing, sections.LIFESPAN_SHUTDOWN)
    for s in S
    for i in (I.SHUTDOWN_REQUESTED, I.TIMEOUT)
    if not any(r[0] is s and r[1] is i for r in _ROWS)
]
_ROWS += [
    (s, i, (), M._unexpected, sections.CORE_ERRORS)
    for s in S
    for i in (*_APP_INPUTS.values(), I.OTHER_MESSAGE)
    if not any(r[0] is s and r[1] is i for r in _ROWS)
]

_table: TableBuilder[LifespanState, Input] = TableBuilder("lifespan")
for _state, _input, _next, _action, _section in _ROWS:
    _table.add((_state,), _input, _next, _action, _section)
TABLE = _table.build(complete=(LifespanState, Input))
LifespanMachine.rows = TABLE
