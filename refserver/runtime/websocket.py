"""Drives one WebSocketMachine over a Transport (``runtime/transport.py``): the machine decides
everything, this module awaits (docs/how-it-works.md, "The runtime loop"). The app runs in the
connection's own task. Writes keep the machine's order; ``send()`` returns once its frame has
room in the socket's send buffer.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.logs import access_log, error_log
from refserver.protocol.effects import Effects, Tcp, Timer
from refserver.protocol.websocket import State, WebSocketMachine
from refserver.runtime.context import (
    SHUTDOWN_TIMEOUT_WHY,
    Pacer,
    ServerContext,
    log_cancelled,
    record_error,
    record_steps,
)
from refserver.runtime.tasks import new_wakeup
from refserver.runtime.transport import PeerGone, TimerHandle, Transport
from refserver.spec import sections
from refserver.trace import ConnectionTrace
from refserver.types import Scope

# How long the queued bytes (a 1011 close frame) may take when the peer is unresponsive.
_ABORT_FLUSH_S = 1.0


class WebSocketConnection:
    __slots__ = (
        "_app_wakeup",
        "_close_owed",
        "_closed",
        "_event",
        "_failure",
        "_in_closed",
        "_pace",
        "_timers",
        "client",
        "ctx",
        "machine",
        "scope",
        "trace",
        "transport",
    )

    def __init__(
        self,
        transport: Transport,
        machine: WebSocketMachine,
        scope: Scope,
        ctx: ServerContext,
        *,
        client: str,
        trace: ConnectionTrace | None = None,
    ) -> None:
        self.transport = transport
        self.machine = machine
        self.scope = scope
        self.ctx = ctx
        self.client = client
        self.trace = trace
        self._app_wakeup = new_wakeup()
        self._closed = new_wakeup()  # TCP's end is decided (_close_owed)
        self._timers: dict[Timer, TimerHandle] = {}  # the machine's armed timers
        self._close_owed: Tcp | None = None
        self._in_closed = False  # the machine has entered CLOSED (for the access log)
        # What the app's receive() returns next: an Effects.event, handed over by _apply.
        self._event: dict[str, Any] | None = None
        self._pace = Pacer()
        self._failure: Exception | None = None

    async def run(self) -> None:
        """Run the app in this task; then wait until the close handshake ends (a close frame, EOF
        or the close timer: the machine decides when TCP closes)."""
        transport = self.transport
        transport.push_to(self)
        try:
            await self._run_app()
            while self._close_owed is None:
                await self._closed.wait()
        finally:
            if self._close_owed is None:  # cancelled (server shutdown timed out)
                self._abort(self.machine.closed_reason or "connection closed")
            await transport.aclose()
        if self._failure is not None:
            raise self._failure

    # ------------------------------------------------------------------ the transport's calls

    def bytes_received(self, data: bytes) -> None:
        self._apply(self.machine.receive_data(data))

    def peer_left(self, why: str) -> None:
        if self._close_owed is None:
            self._apply(self.machine.peer_gone(why))

    def failed(self, exc: Exception) -> None:
        """Take an input's exception, raised inside a call from the transport: end the connection; run() raises it."""
        self._failure = exc
        if self._close_owed is None:
            self._abort("internal error")

    def _on_timer(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        try:
            section = self.machine.timer_section(timer)
            fx = self.machine.timer_fired(timer, write_blocked=self.transport.write_blocked)
            if self.trace is not None:  # the bracket shows the state after the step, as for a message
                self.trace.record("timer", self.machine.state.name, section, timer.value)
            self._apply(fx)
        except Exception as exc:
            self.failed(exc)

    def _cancel_timer(self, timer: Timer) -> None:
        handle = self._timers.pop(timer, None)
        if handle is not None:
            handle.cancel()

    def _end_tcp(self, tcp: Tcp) -> None:
        """Half-close or close TCP, after what is written (the close frame)."""
        transport = self.transport
        if tcp is Tcp.SEND_EOF:
            transport.half_close()  # RFC 6455 §7.1.1: after the close frame
            return
        self._close_owed = tcp
        if tcp is Tcp.CLOSE:
            limit = self.ctx.config.ws_close_timeout_s
        elif transport.write_blocked:
            limit = 0.0  # unresponsive peer, and a write is already stuck: do not wait
        else:
            limit = _ABORT_FLUSH_S
        transport.close_soon(self.machine.closed_reason or "connection closed", limit)
        self._ended()

    def _abort(self, reason: str) -> None:
        """Close TCP at once (whatever is queued is lost), and end as :meth:`_ended` does."""
        self._close_owed = Tcp.ABORT
        self.transport.abort(reason)
        self._ended()

    def _ended(self) -> None:
        """Stop the timers, and wake run() and the app: TCP's end is decided."""
        for timer in list(self._timers):
            self._cancel_timer(timer)
        self._closed.fire()
        self._app_wakeup.fire()

    # ------------------------------------------------------------------ effects

    def _apply(self, fx: Effects) -> None:
        """Make one input's effects take hold, in order; the only place that does."""
        if fx.notes or fx.transitions:
            record_steps(fx, self.machine.state.name, self.trace)
        # CLOSED is final, so the first input after which the machine is in it is the one that entered it.
        entered_closed = self.machine.state is State.CLOSED and not self._in_closed
        if entered_closed:
            self._in_closed = True
        if (fx.status or entered_closed) and self.ctx.config.access_log:
            self._access_log(fx.status, entered_closed)
        if fx.write:
            self.transport.write(fx.write)
        if fx.cancel:
            for timer in fx.cancel:
                self._cancel_timer(timer)
        if fx.arm and self._close_owed is None:
            now = self.transport.now()
            for timer, seconds in fx.arm.items():
                self._cancel_timer(timer)
                self._timers[timer] = self.transport.call_at(now + seconds, partial(self._on_timer, timer))
        if fx.reading is not None:
            self.transport.set_reading(fx.reading)
        if fx.tcp is not None:
            self._end_tcp(fx.tcp)
        if fx.event is not None:
            self._event = fx.event
        if fx.wake_app:
            self._app_wakeup.fire()

    def _access_log(self, status: int, entered_closed: bool) -> None:
        """Log the upgrade with its result (``status``: 101, 403, the denial status, 500, 503),
        and the end of an accepted connection (the 101 sent: no handshake left) with its close
        code; one input can do both (a close frame right behind the upgrade request)."""
        path = self.scope.get("path")
        if status:
            access_log.info('%s - "WebSocket %s" %d', self.client, path, status)
        if entered_closed and self.machine.handshake is None:
            access_log.info('%s - "WebSocket %s" closed (code %s)', self.client, path, self.machine.close_code)

    async def _flush_or_lose(self) -> BaseException | None:
        """Flush; a peer that is gone becomes the machine's PEER_GONE input, whose error is returned."""
        try:
            await self.transport.flush()
        except PeerGone as exc:
            gone = self.machine.peer_gone(str(exc))
            self._apply(gone)
            return gone.error
        return None

    # ------------------------------------------------------------------ the app

    async def _receive(self) -> MutableMapping[str, Any]:
        # Unless an input handed a message over, ask the machine, and wait until an input hands
        # one over (or changes what the machine answers).
        waited = False
        while self._event is None:
            self._apply(self.machine.app_receive())
            if self._event is None:
                waited = True
                await self._app_wakeup.wait()
        if waited:
            self._pace.waited()
        elif self._pace.due():
            await anyio.lowlevel.checkpoint()
        event, self._event = self._event, None
        if self.trace is not None:
            self.trace.record("recv", self.machine.state.name, sections.MESSAGES.get(event["type"], ""), message=event)
        return event  # a dict of its own (the machine never hands one out twice)

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        trace = self.trace
        try:
            fx = self.machine.app_send(message)
        except (ASGIProtocolError, ClientDisconnected) as exc:
            try:  # under --app-violations warn, a breach with a safe reading is served in it
                message, fx = self.ctx.violations.serve(exc, message, self.machine.app_send, trace)
            except (ASGIProtocolError, ClientDisconnected) as error:
                record_error(trace, self.machine.state.name, error, message, sections.WS_CLOSED_SEND)
                await anyio.lowlevel.checkpoint()
                raise error from None
        if trace is not None:
            trace.record(
                "send", self.machine.state.name, sections.MESSAGES.get(str(message.get("type")), ""), message=message
            )
        self._apply(fx)
        if fx.write and not self.transport.flushed:
            lost = await self._flush_or_lose()
            if lost is not None and fx.error is None:
                record_error(trace, self.machine.state.name, lost, message, sections.WS_CLOSED_SEND)
                raise lost from None
        if self._pace.due():
            await anyio.lowlevel.checkpoint()
        if fx.error is not None:
            record_error(trace, self.machine.state.name, fx.error, message, "")
            self.ctx.violations.report(fx.error)
            raise fx.error

    async def _run_app(self) -> None:
        raised = False
        try:
            await self.ctx.app(self.scope, self._receive, self._send)
        except ClientDisconnected:
            pass  # www spec 2.5, "Disconnected Client - send exception": not an error if it escapes
        except Exception:
            raised = True
            error_log.exception("Exception in ASGI application (websocket %s)", self.scope.get("path"))
        self._apply(self.machine.app_ended(raised=raised))
        await self._flush_or_lose()

    # ------------------------------------------------------------------ shutdown

    def shutdown_timed_out(self, ran: str) -> None:
        """Record that the server cancels the app, still running at the shutdown timeout
        (``ran``: how long the WebSocket was open); its close frame went out at shutdown."""
        if self.trace is not None:
            self.trace.record("timer", self.machine.state.name, sections.WS_DISCONNECT, SHUTDOWN_TIMEOUT_WHY)
        what = f"WebSocket {self.scope['path']} from {self.client} (open {ran}; close 1001 sent at shutdown)"
        log_cancelled(self.ctx, what)

    async def shutdown(self) -> None:
        """Close 1001 at once (docs/decisions.md#shutdown-1001); the app then has until the
        shutdown timeout to return."""
        self._apply(self.machine.server_shutdown())
        with anyio.move_on_after(self.ctx.config.ws_close_timeout_s):
            try:
                await self.transport.flush()
            except PeerGone as exc:
                # Not news once TCP's end is decided (as in peer_left): a forced exit aborts the
                # connection while this flush waits, and that abort is not the peer leaving.
                if self._close_owed is None:
                    self._apply(self.machine.peer_gone(str(exc)))
