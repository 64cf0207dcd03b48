"""Drives one WebSocketMachine over a Transport: the app task and the reader.

The machine decides everything; this module awaits. :meth:`WebSocketConnection._apply`
is the one place where effects take hold (queue bytes, wake the app, arm and cancel
timers, pause or resume reading, half-close or close TCP) and where the trace records
every state change.

- The reader is the connection's own task. It reads while the machine wants input, and
  runs the timers: its one cancel scope carries the earliest deadline, and when that
  passes, the due timers are fed to the machine.
- Writes keep the order in which the machine produced the bytes: one writer at a time
  drains the outbox, others wait until their bytes are written. ``send()`` returns once
  its frame is in the socket's send buffer (backpressure).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import MutableMapping
from typing import Any

import anyio
import anyio.lowlevel

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.logs import access_log, error_log
from refserver.protocol.effects import Effects, Tcp, Timer
from refserver.protocol.websocket import State, WebSocketMachine
from refserver.runtime.context import Pacer, Scope, ServerContext, record_steps
from refserver.runtime.tasks import open_task_group
from refserver.runtime.transport import PeerGone, Transport
from refserver.spec import sections
from refserver.trace import ConnectionTrace

# The timers that end the connection: a write of the reader's own may be cut short by
# these (the connection is closing anyway), never by the ping interval.
_FATAL_TIMERS = (Timer.CLOSE, Timer.HOLD, Timer.PONG)
# How long the queued bytes (a 1011 close frame) may take when the peer is unresponsive.
_ABORT_FLUSH_S = 1.0


class WebSocketConnection:
    __slots__ = (
        "_accepted",
        "_app_wakeup",
        "_close_code",
        "_close_owed",
        "_closed",
        "_deadlines",
        "_eof_owed",
        "_eof_sent",
        "_event",
        "_failure",
        "_pace",
        "_pushed",
        "_reader_waiting",
        "_reader_wakeup",
        "_reader_writing",
        "_reading",
        "_scope",
        "_state",
        "_timer",
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
        self._state = machine.state.name  # for the trace and the access log
        self._app_wakeup = transport.new_wakeup()
        self._reader_wakeup = transport.new_wakeup()
        # Timers, the reader's scope and what is owed to TCP.
        self._deadlines: dict[Timer, float] = {}
        self._scope: anyio.CancelScope | None = None
        self._reader_waiting = False
        self._reader_writing = False
        self._reading = True
        self._eof_owed = False
        self._eof_sent = False
        self._close_owed: Tcp | None = None
        self._close_code: int | None = None
        self._accepted = False
        # What the app's receive() returns next, handed over by _apply (an input that
        # answered a receive(), or one that completed a message while a receive() waited).
        self._event: dict[str, Any] | None = None
        self._pace = Pacer()
        # When the transport pushes (asyncio): no reader task; bytes, EOF and timers arrive
        # as event-loop callbacks, and effects on TCP take hold at once.
        self._pushed = transport.pushes
        self._timer: asyncio.TimerHandle | None = None
        self._failure: Exception | None = None
        self._closed = transport.new_wakeup() if self._pushed else self._app_wakeup

    async def run(self) -> None:
        if self._pushed:
            await self._run_pushed()
            return
        async with open_task_group() as tg:
            tg.start_soon(self._run_app)
            await self._read_until_closed()

    async def _run_pushed(self) -> None:
        """The app runs in this task; then the close handshake ends (a close frame, EOF or
        the close timer: the machine decides when TCP closes)."""
        transport = self.transport
        transport.push_to(self)
        try:
            await self._run_app()
            while self._close_owed is None:
                await self._closed.wait()
        finally:
            self._cancel_timer()
            if self._close_owed is None:  # cancelled (server shutdown timed out)
                self._close_owed = Tcp.ABORT
                transport.close_soon(self.machine.closed_reason or "connection closed", 0)
            await transport.aclose()
        if self._failure is not None:
            raise self._failure

    # ------------------------------------------------------------------ pushed input

    def bytes_received(self, data: bytes) -> None:
        self._apply(self.machine.receive_data(data))

    def peer_left(self, why: str) -> None:
        if self._close_owed is None:
            self._apply(self.machine.peer_gone(why))

    def failed(self, exc: Exception) -> None:
        """An input raised inside an event-loop callback: end the connection; run() raises it."""
        self._failure = exc
        if self._close_owed is None:
            self._close_owed = Tcp.ABORT
            self.transport.abort("internal error")
        self._cancel_timer()
        self._closed.fire()
        self._app_wakeup.fire()

    def _on_timer(self) -> None:
        handle, self._timer = self._timer, None
        try:
            self._fire_due_timers(max(self.transport.now(), handle.when() if handle else 0.0))
            self._rearm()
        except Exception as exc:
            self.failed(exc)

    def _rearm(self) -> None:
        """One event-loop timer at the earliest deadline (push mode)."""
        deadline = self._next_deadline()
        handle = self._timer
        if handle is not None:
            if handle.when() == deadline:
                return
            handle.cancel()
            self._timer = None
        if deadline != math.inf and self._close_owed is None:
            self._timer = self.transport.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tcp_now(self, tcp: Tcp) -> None:
        """Push mode: half-close or close TCP now, after what is written (the close frame)."""
        transport = self.transport
        if tcp is Tcp.SEND_EOF:
            transport.half_close()  # RFC 6455 §7.1.1: after the close frame
            return
        self._close_owed = tcp
        if tcp is Tcp.CLOSE:
            limit = self.ctx.config.ws_close_timeout_s
        elif transport.flushing:
            limit = 0.0  # unresponsive peer, and a write is already stuck: do not wait
        else:
            limit = _ABORT_FLUSH_S
        transport.close_soon(self.machine.closed_reason or "connection closed", limit)
        self._cancel_timer()
        self._closed.fire()
        self._app_wakeup.fire()

    # ------------------------------------------------------------------ effects

    def _apply(self, fx: Effects) -> None:
        """Make one input's effects take hold, in order; the only place that does."""
        transitions = fx.transitions
        if fx.notes or (transitions and self.trace is not None):
            self._state = record_steps(fx, self._state, self.trace)
        elif transitions:
            self._state = transitions[-1].new  # nothing to record: only the state moves
        if fx.close_code is not None:
            self._close_code = fx.close_code
        # CLOSED is final, so a transition into it comes once.
        if (fx.status or (transitions and transitions[-1].new == "CLOSED")) and self.ctx.config.access_log:
            self._access_log(fx.status)
        if fx.write:
            self.transport.queue(fx.write)
            if self._pushed:
                self.transport.write_queued()
        if fx.cancel or fx.arm:
            for timer in fx.cancel:
                self._deadlines.pop(timer, None)
            if fx.arm:
                now = self.transport.now()
                for timer, seconds in fx.arm.items():
                    self._deadlines[timer] = now + seconds
            self._rescope()
        if fx.reading is not None:
            self._reading = fx.reading
            if self._pushed:
                self.transport.set_reading(fx.reading)
            else:
                self._reader_wakeup.fire()
        tcp = fx.tcp
        if tcp is not None:
            if self._pushed:
                self._tcp_now(tcp)
            else:
                if tcp is Tcp.SEND_EOF:
                    self._eof_owed = True
                else:
                    self._close_owed = tcp
                self._reader_wakeup.fire()
                if self._reader_waiting and self._scope is not None:
                    self._scope.cancel()  # the reader is blocked in a read: it has TCP work to do
        if fx.event is not None:
            self._event = fx.event
        if fx.wake_app:
            self._app_wakeup.fire()

    def _access_log(self, status: int) -> None:
        """The upgrade with its result (101, 403, the denial status, 500, 503), and the
        end of an accepted connection with its close code."""
        path = self.scope.get("path")
        if status:
            self._accepted = status == 101
            access_log.info('%s - "WebSocket %s" %d', self.client, path, status)
        elif self._accepted:
            access_log.info('%s - "WebSocket %s" closed (code %s)', self.client, path, self._close_code)

    def _next_deadline(self) -> float:
        deadlines = self._deadlines
        if not deadlines:
            return math.inf
        if self._reader_writing:
            return min((deadlines[t] for t in _FATAL_TIMERS if t in deadlines), default=math.inf)
        return min(deadlines.values())

    def _rescope(self) -> None:
        if self._pushed:
            self._rearm()
        elif self._scope is not None:
            self._scope.deadline = self._next_deadline()

    async def _flush_or_lose(self) -> None:
        """Flush; a peer that is gone becomes the machine's PEER_GONE input."""
        try:
            await self.transport.flush()
        except PeerGone as exc:
            self._apply(self.machine.peer_gone(str(exc)))

    # ------------------------------------------------------------------ the app

    async def _receive(self) -> MutableMapping[str, Any]:
        event = self._event
        if event is None:
            # No message was handed over yet: ask the machine, and wait until an input hands
            # one over (or changes what the machine answers).
            machine = self.machine
            waited = False
            while True:
                self._apply(machine.app_receive())
                if self.transport.has_queued and not self.transport.flushing:
                    # Asking for more ended a held failure: its close frame goes out first.
                    await self._flush_or_lose()
                event = self._event
                if event is not None:
                    break
                waited = True
                await self._app_wakeup.wait()
                event = self._event
                if event is not None:
                    break
            if waited:
                self._pace.waited()
            else:
                await self._pace.answered_at_once()
        else:
            await self._pace.answered_at_once()
        self._event = None
        if self.trace is not None:
            self.trace.record("recv", self._state, _RECEIVE_SECTIONS.get(event["type"], ""), message=event)
        return event  # a dict of its own (the machine never hands one out twice)

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        trace = self.trace
        try:
            fx = self.machine.app_send(message)
        except (ASGIProtocolError, ClientDisconnected) as exc:
            try:  # under --app-violations warn, a breach with a safe reading is served in it
                message, fx = self.ctx.violations.serve(exc, message, self.machine.app_send, trace)
            except (ASGIProtocolError, ClientDisconnected) as error:
                if trace is not None:
                    trace.record(
                        "error",
                        self._state,
                        getattr(error, "section", sections.WS_CLOSED_SEND),
                        str(error),
                        message=message,
                    )
                await anyio.lowlevel.checkpoint()
                raise error from None
        if trace is not None:
            trace.record(
                "send", self.machine.state.name, _SEND_SECTIONS.get(str(message.get("type")), ""), message=message
            )
        self._apply(fx)
        if fx.write and not self.transport.flushed:
            try:
                await self.transport.flush()
            except PeerGone as exc:
                gone = self.machine.peer_gone(str(exc))
                self._apply(gone)
                if fx.error is None and gone.error is not None:
                    if trace is not None:
                        trace.record("error", self._state, sections.WS_CLOSED_SEND, str(gone.error), message=message)
                    raise gone.error from None
        await self._pace.answered_at_once()
        if fx.error is not None:
            if trace is not None:
                trace.record("error", self._state, getattr(fx.error, "section", ""), str(fx.error), message=message)
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

    # ------------------------------------------------------------------ the reader

    async def _read_until_closed(self) -> None:
        try:
            while self._close_owed is None:
                with anyio.CancelScope(deadline=self._next_deadline()) as scope:
                    self._scope = scope
                    await self._read()
                self._scope = None
                self._reader_waiting = self._reader_writing = False
                if self._close_owed is None:
                    self._fire_due_timers(anyio.current_time())
                    await self._reader_flush()
            await self._final_flush()
        finally:
            self.transport.abort(self.machine.closed_reason or "connection closed")
            await self.transport.aclose()
            self._app_wakeup.fire()

    async def _read(self) -> None:
        machine, transport = self.machine, self.transport
        while self._close_owed is None:
            if self._eof_owed and not self._eof_sent:
                # RFC 6455 §7.1.1: after what is queued (the close frame), half-close.
                await self._flush_or_lose()
                self._eof_sent = True
                await transport.send_eof()
                continue
            self._reader_waiting = True
            if not self._reading:
                await self._reader_wakeup.wait()  # backpressure, or a held failure
                self._reader_waiting = False
                continue
            data = await transport.receive()
            self._reader_waiting = False
            if data:
                self._apply(machine.receive_data(data))
            else:
                self._apply(machine.peer_gone(transport.gone or "peer closed the connection"))
            await self._reader_flush()

    async def _reader_flush(self) -> None:
        """Write the reader's answers (a pong, the close echo) unless another task is
        writing: that one writes them after its own bytes, and the reader reads on."""
        if not self.transport.has_queued or self.transport.flushing:
            return
        self._reader_writing = True
        self._rescope()
        try:
            await self._flush_or_lose()
        finally:
            self._reader_writing = False
            self._rescope()

    def _fire_due_timers(self, now: float) -> None:
        for timer in [t for t, deadline in self._deadlines.items() if deadline <= now]:
            if timer not in self._deadlines:
                continue  # cancelled by an earlier timer's effects
            del self._deadlines[timer]
            if self.trace is not None:
                self.trace.record("timer", self._state, "", timer.value)
            self._apply(self.machine.timer_fired(timer, write_blocked=self.transport.flushing))

    async def _final_flush(self) -> None:
        """Before closing TCP: write what is queued (the close echo, a 1011), bounded."""
        if not self.transport.unwritten or self.transport.gone is not None:
            return
        if self._close_owed is Tcp.CLOSE:
            limit = self.ctx.config.ws_close_timeout_s
        elif self.transport.flushing:
            return  # unresponsive peer, and a write is already stuck: do not wait
        else:
            limit = _ABORT_FLUSH_S
        with anyio.move_on_after(limit):
            await self._flush_or_lose()

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self) -> None:
        """Close 1001 at once (docs/decisions.md#shutdown-1001); the app then has until the
        shutdown timeout to return."""
        self._apply(self.machine.server_shutdown())
        with anyio.move_on_after(self.ctx.config.ws_close_timeout_s):
            await self._flush_or_lose()


_RECEIVE_SECTIONS = {
    "websocket.connect": sections.WS_CONNECT,
    "websocket.receive": sections.WS_RECEIVE,
    "websocket.disconnect": sections.WS_DISCONNECT,
}
_SEND_SECTIONS = {
    "websocket.accept": sections.WS_ACCEPT,
    "websocket.send": sections.WS_SEND,
    "websocket.close": sections.WS_CLOSE,
    "websocket.http.response.start": sections.WS_DENIAL,
    "websocket.http.response.body": sections.WS_DENIAL,
}

__all__ = ["State", "WebSocketConnection"]
