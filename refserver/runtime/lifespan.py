"""Runs the app's lifespan scope beside the server (lifespan spec 2.0).

The :class:`~refserver.protocol.lifespan.LifespanMachine` decides; this module awaits.
:meth:`Lifespan._apply` is the one place where its effects take hold (wake the app or the
server's wait) and where the trace records every state change.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from refserver.config import LifespanMode
from refserver.errors import ASGIProtocolError, LifespanFailure
from refserver.logs import error_log
from refserver.protocol.effects import Effects
from refserver.protocol.lifespan import Cause, LifespanMachine, State
from refserver.runtime.context import record_error, record_steps
from refserver.runtime.tasks import new_wakeup
from refserver.spec import sections
from refserver.spec.versions import LIFESPAN_ASGI
from refserver.trace import ConnectionTrace
from refserver.types import ASGIApp


class Lifespan:
    def __init__(
        self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any], trace: ConnectionTrace | None = None
    ) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.trace = trace
        self.machine = LifespanMachine()
        self.running = False  # the app supports lifespan and its task is alive
        self._changed = new_wakeup()  # for the server's wait
        self._app_wakeup = new_wakeup()  # for the app's receive()
        self._app_error: BaseException | None = None
        self._scope = anyio.CancelScope()

    def _apply(self, fx: Effects) -> None:
        """Make one input's effects take hold; the only place that does."""
        record_steps(fx, self.machine.state.name, self.trace)
        if fx.wake_app:
            self._app_wakeup.fire()
            self._changed.fire()

    async def startup(self, tg: anyio.abc.TaskGroup) -> None:
        """Send lifespan.startup and wait for the answer; raise LifespanFailure if the
        server must not start."""
        machine = self.machine
        tg.start_soon(self._run_app)
        while machine.state is State.STARTING:
            await self._changed.wait()
        if machine.state is State.STARTUP_FAILED:
            text = machine.failure_message or "(no message)"
            error_log.error("Lifespan startup failed: %s", text)
            self._scope.cancel()
            raise LifespanFailure(f"lifespan startup failed: {text}")
        if machine.state is not State.UNSUPPORTED:
            # Startup completed (the app may have ended since: shutdown() deals with that).
            self.running = True
            return
        # The app raised or returned before completing startup.
        why = (
            f"it raised {type(self._app_error).__name__}: {self._app_error}"
            if self._app_error is not None
            else "it returned without answering lifespan.startup"
        )
        if self.mode == "on":
            error_log.error("Lifespan startup failed (--lifespan on): %s", why)
            raise LifespanFailure(f"lifespan startup failed: {why}")
        # lifespan spec 2.0, "Scope": an app that raises does not support lifespan; the
        # server carries on without it.
        error_log.info("ASGI 'lifespan' protocol appears unsupported by the app (%s); continuing without it", why)

    async def shutdown(self, timeout_s: float) -> None:
        """Send lifespan.shutdown and wait for the answer, at most ``timeout_s``."""
        if not self.running:
            return
        machine = self.machine
        if machine.state is State.STARTED:
            self._apply(machine.begin_shutdown())
            with anyio.move_on_after(timeout_s) as timer:
                while self._shutting_down():
                    await self._changed.wait()
            if timer.cancelled_caught:
                self._record("timer", sections.LIFESPAN_SHUTDOWN_COMPLETE, "shutdown timeout")
                self._apply(machine.timed_out())
            self._scope.cancel()
        if machine.state is State.DONE:
            return
        cause, during = machine.cause, machine.cause_state
        if cause is Cause.TIMEOUT:
            error_log.error("Lifespan shutdown did not complete within %.1f s", timeout_s)
            raise LifespanFailure("lifespan shutdown timed out")
        if cause is Cause.MESSAGE:
            text = machine.failure_message or "(no message)"
            error_log.error("Lifespan shutdown failed: %s", text)
            raise LifespanFailure(f"lifespan shutdown failed: {text}")
        if cause is Cause.RAISED:  # logged by _run_app
            when = "before lifespan.shutdown" if during is State.STARTED else "during lifespan shutdown"
            raise LifespanFailure(f"the lifespan app raised {type(self._app_error).__name__} {when}")
        error_log.error("The lifespan app returned without answering lifespan.shutdown")
        raise LifespanFailure("the lifespan app returned without answering lifespan.shutdown")

    def _shutting_down(self) -> bool:  # (a call: mypy would keep machine.state narrowed to STARTED)
        return self.machine.state is State.SHUTTING_DOWN

    def _record(self, kind: str, section: str, detail: str = "", message: Mapping[str, Any] | None = None) -> None:
        if self.trace is not None:
            self.trace.record(kind, self.machine.state.name, section, detail, message)

    async def _receive(self) -> MutableMapping[str, Any]:
        while True:
            fx = self.machine.app_receive()
            self._apply(fx)
            if fx.event is not None:
                self._record("recv", sections.LIFESPAN_MESSAGES[str(fx.event["type"])], message=fx.event)
                return dict(fx.event)
            await self._app_wakeup.wait()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except anyio.get_cancelled_exc_class():
            # The server is cancelling the app: what it sends now is no app error (docs/decisions.md#forced-exit).
            why = "sent while the server was cancelling the lifespan app"
            self._record("ignored", sections.LIFESPAN_SHUTDOWN, why, message)
            raise
        try:
            fx = self.machine.app_send(message)
        except ASGIProtocolError as exc:
            record_error(self.trace, self.machine.state.name, exc, message, "")
            raise
        section = sections.LIFESPAN_MESSAGES.get(str(message.get("type")), sections.LIFESPAN_SCOPE)
        self._record("send", section, "", message)
        self._apply(fx)

    async def _run_app(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(LIFESPAN_ASGI), "state": self.state}
        raised = False
        with self._scope:
            try:
                await self.app(scope, self._receive, self._send)
            except Exception as exc:
                raised = True
                self._app_error = exc
                if self.machine.state is not State.STARTING:
                    # Raising after startup completed is an app error (docs/decisions.md#lifespan-after-startup).
                    error_log.exception("Exception in ASGI lifespan application")
            finally:
                self._apply(self.machine.app_ended(raised=raised))
