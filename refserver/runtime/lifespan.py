"""Runs the app's lifespan scope beside the server (lifespan spec 2.0)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import anyio.abc

from refserver.config import LifespanMode
from refserver.errors import LifespanFailure
from refserver.logs import error_log
from refserver.protocol.lifespan import LifespanMachine, LifespanState
from refserver.runtime.context import ASGIApp
from refserver.runtime.wakeup import Wakeup
from refserver.spec.versions import LIFESPAN_ASGI


class Lifespan:
    def __init__(self, app: ASGIApp, mode: LifespanMode, state: dict[str, Any]) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.machine = LifespanMachine()
        self.running = False  # the app supports lifespan and its task is alive
        self._changed = Wakeup()
        self._shutdown_requested = Wakeup()
        self._app_ended = False
        self._app_error: BaseException | None = None
        self._startup_sent = False
        self._scope = anyio.CancelScope()

    async def startup(self, tg: anyio.abc.TaskGroup) -> None:
        """Send lifespan.startup and wait for the answer; raise LifespanFailure if the
        server must not start."""
        tg.start_soon(self._run_app)
        while self.machine.state is LifespanState.STARTING and not self._app_ended:
            await self._changed.wait()
        if self.machine.state is LifespanState.STARTED:
            self.running = True
            return
        if self.machine.state is LifespanState.STARTUP_FAILED:
            text = self.machine.failure_message or "(no message)"
            error_log.error("Lifespan startup failed: %s", text)
            self._scope.cancel()
            raise LifespanFailure(f"lifespan startup failed: {text}")
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
        error_log.info(
            "ASGI 'lifespan' protocol appears unsupported by the app (%s); continuing without it",
            why,
        )

    async def shutdown(self, timeout_s: float) -> None:
        """Send lifespan.shutdown and wait for the answer, at most ``timeout_s``."""
        if not self.running:
            return
        if self._app_ended:
            # The app ended after startup.complete, before lifespan.shutdown could be sent
            # (lifespan spec 2.0 is silent; digest A19). A return means it has nothing to
            # do at shutdown; an exception was logged when it happened, and means the
            # app's shutdown never ran.
            if self._app_error is not None:
                raise LifespanFailure(
                    f"the lifespan app raised {type(self._app_error).__name__} before lifespan.shutdown"
                )
            return
        self.machine.begin_shutdown()
        self._shutdown_requested.fire()
        with anyio.move_on_after(timeout_s) as timer:
            while self.machine.state is LifespanState.SHUTTING_DOWN and not self._app_ended:
                await self._changed.wait()
        self._scope.cancel()
        if timer.cancelled_caught:
            error_log.error("Lifespan shutdown did not complete within %.1f s", timeout_s)
            raise LifespanFailure("lifespan shutdown timed out")
        if self.machine.state is LifespanState.SHUTDOWN_FAILED:
            text = self.machine.failure_message or "(no message)"
            error_log.error("Lifespan shutdown failed: %s", text)
            raise LifespanFailure(f"lifespan shutdown failed: {text}")
        if self.machine.state is not LifespanState.DONE:
            if self._app_error is not None:  # logged by _run_app
                raise LifespanFailure(
                    f"the lifespan app raised {type(self._app_error).__name__} during lifespan shutdown"
                )
            error_log.error("The lifespan app returned without answering lifespan.shutdown")
            raise LifespanFailure("the lifespan app returned without answering lifespan.shutdown")

    async def _receive(self) -> MutableMapping[str, Any]:
        if not self._startup_sent:
            self._startup_sent = True
            return {"type": "lifespan.startup"}
        while self.machine.state is not LifespanState.SHUTTING_DOWN:
            await self._shutdown_requested.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        self.machine.app_send(message)
        self._changed.fire()

    async def _run_app(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(LIFESPAN_ASGI), "state": self.state}
        with self._scope:
            try:
                await self.app(scope, self._receive, self._send)
            except Exception as exc:
                self._app_error = exc
                if self.machine.state is not LifespanState.STARTING:
                    # Raising after startup completed is an app error (A19).
                    error_log.exception("Exception in ASGI lifespan application")
            finally:
                self._app_ended = True
                self._changed.fire()
