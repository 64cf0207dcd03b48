"""The lifespan protocol (lifespan spec 2.0) as one sans-IO state machine.

The server sends ``lifespan.startup`` before accepting connections and
``lifespan.shutdown`` after it stopped accepting and closed them; the app answers each
with ``.complete`` or ``.failed``. An app that raises before completing startup does not
support lifespan (lifespan spec 2.0, "Scope"): the machine enters ``UNSUPPORTED``, and
what the server does then depends on ``--lifespan`` (the runtime's call).

The machine is its :class:`State` plus these data fields, and nothing else:

- ``startup_delivered``: ``receive()`` has returned ``lifespan.startup`` (it does so once).
- ``cause``: why the machine is in ``UNSUPPORTED``, ``STARTUP_FAILED`` or ``SHUTDOWN_FAILED``
  (:class:`Cause`), and ``cause_state``: the state it was in when that happened.
- ``failure_message``: the ``message`` of the app's ``.failed`` event ("" otherwise).

Every input (:class:`Input`) returns :class:`~refserver.protocol.effects.Effects`; ``TABLE``
has one row for every (state, input).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from refserver.errors import ASGIProtocolError
from refserver.protocol.effects import Effects
from refserver.protocol.table import TableBuilder, TableMachine
from refserver.spec import messages, sections

_SCOPE = sections.LIFESPAN_SCOPE


class State(Enum):
    """The one state of the lifespan scope."""

    STARTING = "lifespan.startup sent; waiting for startup.complete or startup.failed"
    STARTED = "startup complete; serving"
    SHUTTING_DOWN = "lifespan.shutdown sent; waiting for shutdown.complete or shutdown.failed"
    DONE = "shutdown complete (or nothing left to do at shutdown)"
    UNSUPPORTED = "the app ended before completing startup: it does not support lifespan"
    STARTUP_FAILED = "the app sent lifespan.startup.failed"
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


class LifespanMachine(TableMachine[State, Input, Effects]):
    """The sans-IO state of the lifespan scope."""

    name = "lifespan"

    def __init__(self) -> None:
        self.state = State.STARTING
        self.startup_delivered = False
        self.cause: Cause | None = None
        self.cause_state: State | None = None
        self.failure_message = ""
        self._fx = Effects()
        self._row = TABLE[(State.STARTING, Input.RECEIVE)]

    # ------------------------------------------------------------------ the contract

    def app_send(self, message: Mapping[str, Any]) -> Effects:
        """Take the app's ``send(message)``.

        Raises:
            ASGIProtocolError: the message is malformed or not expected in this state; the
                state is unchanged.
        """
        kind = messages.message_type(message)
        try:
            return self._step(_APP_INPUTS.get(kind, Input.OTHER_MESSAGE), message)
        except ASGIProtocolError as exc:
            raise exc.with_state(self.state.name) from None

    def app_receive(self) -> Effects:
        """Take the app's ``receive()``. ``Effects.event`` is what it returns now; None means
        it waits for ``wake_app``."""
        return self._step(Input.RECEIVE, None)

    def app_ended(self, *, raised: bool) -> Effects:
        """Take the end of the app's lifespan call: it returned, or (``raised``) it raised."""
        return self._step(Input.APP_RAISED if raised else Input.APP_RETURNED, raised)

    def begin_shutdown(self) -> Effects:
        """Ask the app to shut down: the server has stopped serving."""
        return self._step(Input.SHUTDOWN_REQUESTED, None)

    def timed_out(self) -> Effects:
        """Give up on the app's answer to ``lifespan.shutdown``: the shutdown timeout passed."""
        return self._step(Input.TIMEOUT, None)

    # ------------------------------------------------------------------ dispatch

    _new_effects = Effects  # a few inputs per server: plain Effects, none of speedups' makers

    def _go(self, new: State, why: str, section: str) -> None:
        self._enter(new, why, section)
        self._fx.wake_app = True

    def _fail(self, new: State, cause: Cause, why: str, section: str) -> None:
        self.cause, self.cause_state = cause, self.state
        self._go(new, why, section)

    # ------------------------------------------------------------------ actions

    def _startup_complete(self, message: Mapping[str, Any]) -> None:
        """Enter STARTED: the server starts serving."""
        messages.validate(message, "lifespan.startup.complete")
        self._go(State.STARTED, "the app completed startup", sections.LIFESPAN_STARTUP_COMPLETE)

    def _startup_failed(self, message: Mapping[str, Any]) -> None:
        """Keep the app's message and enter STARTUP_FAILED. The server exits without serving."""
        message = messages.validate(message, "lifespan.startup.failed")
        self.failure_message = message.get("message") or ""
        self._fail(State.STARTUP_FAILED, Cause.MESSAGE, "the app sent startup.failed", sections.LIFESPAN_STARTUP_FAILED)

    def _shutdown_complete(self, message: Mapping[str, Any]) -> None:
        """Enter DONE: the app has cleaned up."""
        messages.validate(message, "lifespan.shutdown.complete")
        self._go(State.DONE, "the app completed shutdown", sections.LIFESPAN_SHUTDOWN_COMPLETE)

    def _shutdown_failed(self, message: Mapping[str, Any]) -> None:
        """Keep the app's message and enter SHUTDOWN_FAILED. The server exits with an error."""
        message = messages.validate(message, "lifespan.shutdown.failed")
        self.failure_message = message.get("message") or ""
        self._fail(
            State.SHUTDOWN_FAILED, Cause.MESSAGE, "the app sent shutdown.failed", sections.LIFESPAN_SHUTDOWN_FAILED
        )

    def _unexpected(self, message: Mapping[str, Any]) -> None:
        """Raise ASGIProtocolError: the message is not expected in this state."""
        raise ASGIProtocolError(messages.message_type(message), "is not expected now", self._row.section)

    def _receive(self, _: None) -> None:
        """Return lifespan.startup on the first call. Return lifespan.shutdown while shutting
        down. Otherwise make the app wait."""
        if not self.startup_delivered:
            self.startup_delivered = True
            self._fx.event = {"type": "lifespan.startup"}
        elif self.state is State.SHUTTING_DOWN:
            self._fx.event = {"type": "lifespan.shutdown"}

    def _ended_starting(self, raised: bool) -> None:
        """Enter UNSUPPORTED: the app ended before completing startup, so it does not support
        lifespan."""
        # lifespan spec 2.0, "Scope": an app that raises here does not support lifespan; one that
        # returns is taken alike (docs/decisions.md#lifespan-unsupported).
        cause = Cause.RAISED if raised else Cause.RETURNED
        self._fail(State.UNSUPPORTED, cause, f"{cause.value} before completing startup", _SCOPE)

    def _returned_serving(self, _: None) -> None:
        """Enter DONE: an app that returns while serving has nothing to do at shutdown."""
        # The app ended after startup.complete, before lifespan.shutdown could be sent
        # (lifespan spec 2.0 is silent; docs/decisions.md#lifespan-after-startup).
        self._go(State.DONE, "the app returned while serving: nothing to do at shutdown", _SCOPE)

    def _raised_serving(self, _: None) -> None:
        """Enter SHUTDOWN_FAILED: an app that raises while serving never runs its shutdown."""
        self._fail(State.SHUTDOWN_FAILED, Cause.RAISED, "the app raised while serving", _SCOPE)

    def _ended_shutting_down(self, raised: bool) -> None:
        """Enter SHUTDOWN_FAILED: the app returned or raised before completing shutdown."""
        cause = Cause.RAISED if raised else Cause.RETURNED
        self._fail(
            State.SHUTDOWN_FAILED, cause, f"{cause.value} before completing shutdown", sections.LIFESPAN_SHUTDOWN
        )

    def _begin_shutdown(self, _: None) -> None:
        """Enter SHUTTING_DOWN. The app's receive() returns lifespan.shutdown."""
        self._go(State.SHUTTING_DOWN, "the server asks for shutdown", sections.LIFESPAN_SHUTDOWN)

    def _timed_out(self, _: None) -> None:
        """Enter SHUTDOWN_FAILED: the app did not complete shutdown in time."""
        self._fail(
            State.SHUTDOWN_FAILED,
            Cause.TIMEOUT,
            "shutdown did not complete in time",
            sections.LIFESPAN_SHUTDOWN_COMPLETE,
        )

    def _nothing(self, _: Any) -> None:
        """Do nothing."""


# ---------------------------------------------------------------------- the table


M = LifespanMachine
S = State
I = Input  # noqa: E741 - the table reads better with one-letter names

_table: TableBuilder[State, Input] = TableBuilder("lifespan")
_rows = _table.add
_ENDED = (S.DONE, S.UNSUPPORTED, S.STARTUP_FAILED, S.SHUTDOWN_FAILED)  # the outcome is decided

# -- the app's messages: each is expected in one state, and an error in every other
_rows((S.STARTING,), I.STARTUP_COMPLETE, (S.STARTED,), M._startup_complete, sections.LIFESPAN_STARTUP_COMPLETE)
_rows((S.STARTING,), I.STARTUP_FAILED, (S.STARTUP_FAILED,), M._startup_failed, sections.LIFESPAN_STARTUP_FAILED)
_rows((S.SHUTTING_DOWN,), I.SHUTDOWN_COMPLETE, (S.DONE,), M._shutdown_complete, sections.LIFESPAN_SHUTDOWN_COMPLETE)
_rows(
    (S.SHUTTING_DOWN,), I.SHUTDOWN_FAILED, (S.SHUTDOWN_FAILED,), M._shutdown_failed, sections.LIFESPAN_SHUTDOWN_FAILED
)
_rows((s for s in S if s is not S.STARTING), I.STARTUP_COMPLETE, (), M._unexpected, sections.LIFESPAN_STARTUP)
_rows((s for s in S if s is not S.STARTING), I.STARTUP_FAILED, (), M._unexpected, sections.LIFESPAN_STARTUP)
_rows((s for s in S if s is not S.SHUTTING_DOWN), I.SHUTDOWN_COMPLETE, (), M._unexpected, sections.LIFESPAN_SHUTDOWN)
_rows((s for s in S if s is not S.SHUTTING_DOWN), I.SHUTDOWN_FAILED, (), M._unexpected, sections.LIFESPAN_SHUTDOWN)
_rows(S, I.OTHER_MESSAGE, (), M._unexpected, sections.CORE_ERRORS)
# -- receive()
_rows(S, I.RECEIVE, (), M._receive, _SCOPE)
# -- the app ends
_rows((S.STARTING,), I.APP_RETURNED, (S.UNSUPPORTED,), M._ended_starting, _SCOPE)
_rows((S.STARTING,), I.APP_RAISED, (S.UNSUPPORTED,), M._ended_starting, _SCOPE)
_rows((S.STARTED,), I.APP_RETURNED, (S.DONE,), M._returned_serving, _SCOPE)
_rows((S.STARTED,), I.APP_RAISED, (S.SHUTDOWN_FAILED,), M._raised_serving, _SCOPE)
_rows((S.SHUTTING_DOWN,), I.APP_RETURNED, (S.SHUTDOWN_FAILED,), M._ended_shutting_down, sections.LIFESPAN_SHUTDOWN)
_rows((S.SHUTTING_DOWN,), I.APP_RAISED, (S.SHUTDOWN_FAILED,), M._ended_shutting_down, sections.LIFESPAN_SHUTDOWN)
_rows(_ENDED, I.APP_RETURNED, (), M._nothing, _SCOPE)
_rows(_ENDED, I.APP_RAISED, (), M._nothing, _SCOPE)
# -- the server
_rows((S.STARTED,), I.SHUTDOWN_REQUESTED, (S.SHUTTING_DOWN,), M._begin_shutdown, sections.LIFESPAN_SHUTDOWN)
_rows((s for s in S if s is not S.STARTED), I.SHUTDOWN_REQUESTED, (), M._nothing, sections.LIFESPAN_SHUTDOWN)
_rows((S.SHUTTING_DOWN,), I.TIMEOUT, (S.SHUTDOWN_FAILED,), M._timed_out, sections.LIFESPAN_SHUTDOWN)
_rows((s for s in S if s is not S.SHUTTING_DOWN), I.TIMEOUT, (), M._nothing, sections.LIFESPAN_SHUTDOWN)

TABLE = _table.build(complete=(State, Input))
LifespanMachine.rows = TABLE
