"""Drives one HTTPMachine over a Transport: the connection's reader, and one app task per
request, until the peer leaves, keep-alive ends, or the request upgrades to a WebSocket.

The machine decides everything (it owns the h11 connection; this module never imports
h11); this module awaits. :meth:`HTTPConnection._apply` is the one place where effects
take hold (queue bytes, start an app instance, wake the app, arm the keep-alive timer,
pause or resume reading, close TCP, hand over to the WebSocket runtime) and where the
trace records every state change.

- The reader is the connection's own task. It reads while the machine wants input (the
  request body one chunk at a time, then only to notice a disconnect) and runs the
  keep-alive timer: its cancel scope carries the deadline.
- Writes keep the order in which the machine produced the bytes: one writer at a time
  drains the outbox, others wait until their bytes are written.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, MutableMapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.logs import access_log, error_log
from refserver.protocol.http import RESPONSE_PENDING, HTTPEffects, HTTPMachine, RequestHead, State, Upgrade
from refserver.runtime.context import Pacer, ServerContext, record_steps
from refserver.runtime.tasks import open_task_group
from refserver.runtime.transport import Address, PeerGone, StreamTransport, Transport
from refserver.runtime.websocket import WebSocketConnection
from refserver.spec import scopes, sections
from refserver.trace import ConnectionTrace

START_HELD = State.START_HELD  # a module global: see refserver.protocol.http on enum members


class HTTPConnection:
    __slots__ = (
        "_app_waiters",
        "_app_wakeup",
        "_close_owed",
        "_closing",
        "_current",
        "_cycles",
        "_deadline",
        "_failure",
        "_live_cycle",
        "_pace",
        "_pushed",
        "_reader_done",
        "_reader_waiting",
        "_reader_wakeup",
        "_reading",
        "_request_wakeup",
        "_requests",
        "_scope",
        "_serving",
        "_state",
        "_timer",
        "_timer_at",
        "_upgrade",
        "_websocket",
        "client",
        "conn_id",
        "ctx",
        "machine",
        "peer",
        "server",
        "tls",
        "trace",
        "transport",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream | Transport,
        ctx: ServerContext,
        *,
        last_request: bool = False,
        over_limit: bool = False,
        tls: Mapping[str, Any] | None = None,
    ) -> None:
        self.transport = stream if isinstance(stream, Transport) else StreamTransport(stream)
        self.ctx = ctx
        self.tls = tls  # the scope's TLS extension entry; None: plain text (http, ws)
        self.machine = HTTPMachine(ctx.http_settings, date=ctx.date, last_request=last_request, over_limit=over_limit)
        self.client, self.server = self.transport.addresses()
        # For the logs: "host:port", "unix client", or a TCP client that reset at once.
        if self.client is not None:
            self.peer = _peer(self.client)
        elif self.server is not None and self.server[1] is None:
            self.peer = "unix client"
        else:
            self.peer = "a client that already left"
        self.conn_id = ctx.new_connection_id()
        self.trace: ConnectionTrace | None = ctx.trace_for(self.conn_id, "http")
        self.machine.recording = self.trace is not None  # state changes matter only to a trace
        self._state = self.machine.state.name  # for the trace
        self._websocket: WebSocketConnection | None = None
        self._upgrade: Upgrade | None = None
        self._closing = False
        self._app_wakeup = self.transport.new_wakeup()
        self._reader_wakeup = self.transport.new_wakeup()
        # The app instance whose receive() and send() are live (0: none).
        self._live_cycle = 0
        self._cycles = 0
        # The keep-alive deadline, the reader's scope and what is owed to TCP.
        self._deadline = math.inf
        self._scope: anyio.CancelScope | None = None
        self._reader_waiting = False
        self._reading = True
        self._close_owed = False
        # Requests wait here for the connection's own task, which runs their app instances
        # (the machine reads the next request once the app instance before it has returned:
        # docs/decisions.md#one-instance-per-connection).
        self._requests: list[tuple[RequestHead, int]] = []
        self._request_wakeup = self.transport.new_wakeup()
        self._serving = False
        self._reader_done = False
        # One count for the connection's app instances, one after the other (docs/decisions.md#fairness,
        # docs/implementation.md#http-fairness-count): it starts again when the connection's task
        # waits for the next request.
        self._pace = Pacer()
        # When the transport pushes (asyncio): no reader task; bytes, EOF and the keep-alive
        # timer arrive as event-loop callbacks, and effects on TCP take hold at once.
        self._pushed = self.transport.pushes
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # when _timer fires
        self._app_waiters = 0  # receive() calls blocked on _app_wakeup
        self._failure: Exception | None = None
        # What the connection's app instance serves, and since when (for the shutdown timeout's
        # record): a request head, or the WebSocket's path.
        self._current: tuple[RequestHead | str, float] | None = None

    async def run(self) -> None:
        try:
            if self._pushed:
                self._apply(self.machine.opened())
                self.transport.push_to(self)
                await self._serve_requests()
            else:
                await self._run_pulled()
            self._cancel_timer()
            if self._failure is not None:
                raise self._failure
            if self._upgrade is not None:
                await self._run_websocket(self._upgrade)
        finally:
            self._cancel_timer()
            await self.transport.aclose()

    async def _run_pulled(self) -> None:
        """The reader in a task of its own; returns (and lets go of the group) once the
        connection closes or upgrades."""
        async with open_task_group() as tg:
            self._apply(self.machine.opened())
            tg.start_soon(self._read_until_done)
            await self._serve_requests()

    # ------------------------------------------------------------------ pushed input

    def bytes_received(self, data: bytes) -> None:
        self._apply(self.machine.receive_data(data))

    def peer_left(self, why: str) -> None:
        if not self._close_owed and self._upgrade is None:
            self._apply(self.machine.peer_gone(why))

    def failed(self, exc: Exception) -> None:
        """An input raised inside an event-loop callback: end the connection; run() raises it."""
        self._failure = exc
        self._close_owed = True
        self.transport.abort("internal error")
        self._done_reading()
        self._app_wakeup.fire()

    def _on_keep_alive_timer(self) -> None:
        armed_for, self._timer, self._timer_at = self._timer_at, None, math.inf
        if self._close_owed or self._upgrade is not None:
            return
        deadline = self._deadline
        if deadline == math.inf:
            return  # disarmed since (a request is being served)
        if armed_for < deadline:
            # The deadline moved on since this timer was armed: wait for the new one.
            self._timer_at = deadline
            self._timer = self.transport.call_at(deadline, self._on_keep_alive_timer)
            return
        try:
            self._keep_alive_timeout()
        except Exception as exc:
            self.failed(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf

    def _done_reading(self) -> None:
        """No more input for this machine: the connection closes or upgrades."""
        self._cancel_timer()
        self._reader_done = True
        self._request_wakeup.fire()

    async def shutdown(self) -> None:
        """Stop after the response in flight; an idle connection closes at once."""
        self._closing = True
        if self._websocket is not None:
            await self._websocket.shutdown()
            return
        self._apply(self.machine.server_shutdown())

    async def shutdown_timed_out(self) -> None:
        """The shutdown timeout expired with this connection's app still running, and the server
        is about to cancel it (docs/decisions.md#shutdown-timeout-503): name it in a WARNING; a response that had
        not started is answered 503 with connection: close, then the connection closes (traced,
        access-logged), and the app's later messages are ignored. A WebSocket already got its
        1001. Nothing to do when no app instance runs."""
        current = self._current
        if current is None:
            return
        served, since = current
        ran = f"{anyio.current_time() - since:.1f} s"
        why = "shutdown timeout: the server cancels the app"
        websocket = self._websocket
        if websocket is not None:
            if websocket.trace is not None:
                websocket.trace.record("timer", websocket.machine.state.name, sections.WS_DISCONNECT, why)
            _cancelled(self.ctx, f"WebSocket {served} from {self.peer} (open {ran}; close 1001 sent at shutdown)")
            return
        if self._live_cycle == 0 or not isinstance(served, RequestHead):
            return  # between requests
        if self.trace is not None:
            self.trace.record("timer", self._state, "RFC 9110 §15.6.4", why)
        self._live_cycle = 0  # from now on the app's receive() and send() are those of an ended app
        fx = self.machine.shutdown_timeout()
        self._apply(fx)
        status = fx.ended_status
        path = served.target.decode("latin-1")
        answer = "answered 503" if status == 503 else "its response cut" if status else "no response"
        _cancelled(self.ctx, f"{served.method} {path} from {self.peer} (ran {ran}; {answer})")
        if self.ctx.config.access_log and access_log.isEnabledFor(20):
            access_log.info(
                '%s - "%s %s HTTP/%s" %s', self.peer, served.method, path, served.http_version, status or "-"
            )
        await self._flush_or_lose()

    # ------------------------------------------------------------------ effects

    def _apply(self, fx: HTTPEffects) -> None:
        """Make one input's effects take hold, in order; the only place that does."""
        if fx.notes or fx.transitions:  # (the machine records transitions only when traced)
            self._state = record_steps(fx, self._state, self.trace)
        if fx.refused is not None:
            refused = fx.refused
            answer = f"answered {refused.status}" if self.transport.gone is None else "the client is gone; not answered"
            if refused.status == 503:
                error_log.warning("Refused a request from %s: %s (%s)", self.peer, refused.reason, answer)
            else:
                error_log.info("Bad %s from %s: %s (%s)", refused.what, self.peer, refused.reason, answer)
        pushed = self._pushed
        if fx.write:
            self.transport.queue(fx.write)
            if pushed:
                self.transport.write_queued()
        if fx.cancel_keep_alive or fx.keep_alive_s is not None:
            self._deadline = math.inf if fx.keep_alive_s is None else self.transport.now() + fx.keep_alive_s
            if pushed:
                # A timer armed for an earlier deadline stays armed: when it fires it finds
                # the deadline gone (a request is being served) or later (it re-arms then), so
                # a request costs no cancel and no new timer.
                deadline = self._deadline
                if deadline != math.inf and self._timer_at > deadline:
                    self._cancel_timer()
                    self._timer_at = deadline
                    self._timer = self.transport.call_at(deadline, self._on_keep_alive_timer)
            elif self._scope is not None:
                self._scope.deadline = self._deadline
        if fx.reading is not None:
            self._reading = fx.reading
            if pushed:
                self.transport.set_reading(fx.reading)
            else:
                self._reader_wakeup.fire()
        if fx.request is not None:
            self._cycles += 1
            self._live_cycle = self._cycles
            self._requests.append((fx.request, self._cycles))
            self._request_wakeup.fire()
        if fx.upgrade is not None or fx.tcp is not None:
            self._upgrade = fx.upgrade or self._upgrade
            self._close_owed = self._close_owed or fx.tcp is not None
            if pushed:
                if fx.upgrade is not None:
                    # What follows the handshake waits for the WebSocket runtime.
                    self.transport.stop_pushing()
                self._done_reading()
            else:
                self._reader_wakeup.fire()
                if self._reader_waiting and self._scope is not None:
                    self._scope.cancel()  # the reader is blocked in a read: it has other work now
        if fx.wake_app and self._app_waiters:  # a receive() that has not blocked asks the machine first
            self._app_wakeup.fire()

    async def _flush_or_lose(self) -> bool:
        """Flush; a peer that is gone becomes the machine's PEER_GONE input. False then."""
        try:
            await self.transport.flush()
        except PeerGone as exc:
            self._apply(self.machine.peer_gone(str(exc)))
            return False
        return True

    # ------------------------------------------------------------------ the reader

    async def _serve_requests(self) -> None:
        """The connection's own task: run each request's app instance, until the reader is
        done (the connection closes or upgrades) and no request waits."""
        while True:
            if self._requests:
                head, cycle = self._requests.pop(0)
                self._serving = True
                try:
                    await self._serve(head, cycle)
                finally:
                    self._serving = False
            elif self._reader_done:
                return
            else:
                # No request waits: the next one can only come from a later pass of the event
                # loop, so this is a wait (docs/implementation.md#http-fairness-count).
                await self._request_wakeup.wait()
                self._pace.waited()

    async def _read_until_done(self) -> None:
        """Read until the connection closes or is handed to the WebSocket runtime."""
        try:
            await self._read_until_closed_or_upgraded()
        finally:
            self._reader_done = True
            self._request_wakeup.fire()

    async def _read_until_closed_or_upgraded(self) -> None:
        while not self._close_owed and self._upgrade is None:
            with anyio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                await self._read()
            self._scope = None
            self._reader_waiting = False
            if not self._close_owed and self._upgrade is None and anyio.current_time() >= self._deadline:
                self._keep_alive_timeout()
        # Before closing: what is queued (a rejection, the end of a response).
        await self._flush_or_lose()

    def _keep_alive_timeout(self) -> None:
        self._deadline = math.inf
        if self.trace is not None:
            self.trace.record("timer", self._state, *self.machine.timer_rule())
        self._apply(self.machine.keep_alive_timeout())

    async def _read(self) -> None:
        machine, transport = self.machine, self.transport
        while not self._close_owed and self._upgrade is None:
            self._reader_waiting = True
            if not self._reading:
                await self._reader_wakeup.wait()  # backpressure, or waiting for the app to end
                self._reader_waiting = False
                continue
            data = await transport.receive()
            self._reader_waiting = False
            if data:
                self._apply(machine.receive_data(data))
            else:
                self._apply(machine.peer_gone(transport.gone or "peer closed the connection"))
            if self.transport.has_queued and not self.transport.flushing:
                await self._flush_or_lose()

    # ------------------------------------------------------------------ one request

    async def _serve(self, head: RequestHead, cycle: int) -> None:
        """Run one app instance for one request; the machine takes it from there."""
        scope = scopes.http_scope(
            method=head.method,
            http_version=head.http_version,
            target=scopes.split_target(head.target),
            headers=head.headers,
            client=self.client,
            server=self.server,
            root_path=self.ctx.config.root_path,
            state=self.ctx.state,
            tls=self.tls,
        )
        machine, trace = self.machine, self.trace
        pace = self._pace  # docs/decisions.md#fairness, docs/implementation.md#http-fairness-count
        self._current = (head, anyio.current_time())

        async def receive() -> MutableMapping[str, Any]:
            if cycle != self._live_cycle:
                # A receive() of an app instance that has ended: its response is over.
                await anyio.lowlevel.checkpoint()
                return {"type": "http.disconnect"}
            waited = False
            while True:
                fx = machine.app_receive()
                self._apply(fx)
                if fx.write and self.transport.has_queued and not self.transport.flushing:
                    await self._flush_or_lose()  # 100 Continue
                    waited = True
                    if fx.event is None:
                        continue  # the body may have arrived meanwhile: ask the machine again
                event = fx.event
                if event is not None:
                    if waited:
                        pace.waited()
                    elif pace.due():
                        await anyio.lowlevel.checkpoint()
                    if trace is not None:
                        trace.record("recv", self._state, _RECEIVE_SECTIONS.get(event["type"], ""), message=event)
                    return event  # a dict of its own (the machine never hands one out twice)
                waited = True
                self._app_waiters += 1
                try:
                    await self._app_wakeup.wait()
                finally:
                    self._app_waiters -= 1

        async def send(message: MutableMapping[str, Any]) -> None:
            if cycle != self._live_cycle:
                # A send() of an app instance that has ended: ignored like any message
                # after the response completed (www spec 2.5, "Response Body - send event").
                if trace is not None:
                    trace.record("ignored", self._state, sections.HTTP_RESPONSE_BODY, "a message after the app ended")
                await anyio.lowlevel.checkpoint()
                return
            try:
                fx = machine.app_send(message)
            except (ASGIProtocolError, ClientDisconnected) as exc:
                if trace is not None:
                    trace.record(
                        "error",
                        self._state,
                        getattr(exc, "section", sections.WS_CLOSED_SEND),
                        str(exc),
                        message=message,
                    )
                await anyio.lowlevel.checkpoint()
                raise
            if trace is not None:
                trace.record(
                    "send", machine.state.name, _SEND_SECTIONS.get(str(message.get("type")), ""), message=message
                )
            self._apply(fx)
            if fx.write and not self.transport.flushed and not await self._flush_or_lose():
                gone = ClientDisconnected(machine.client_gone_reason or "client disconnected")
                if trace is not None:
                    trace.record("error", self._state, sections.WS_CLOSED_SEND, str(gone), message=message)
                raise gone
            if machine.state is not START_HELD and pace.due():
                # http.response.start, held and written with the first body message, is not
                # counted: it comes once per app instance (docs/implementation.md#http-fairness-count).
                await anyio.lowlevel.checkpoint()
            if fx.error is not None:
                if trace is not None:
                    trace.record("error", self._state, getattr(fx.error, "section", ""), str(fx.error), message=message)
                raise fx.error

        raised = False
        try:
            await self.ctx.app(scope, receive, send)
        except ClientDisconnected:
            # www spec 2.5, "Disconnected Client - send exception": our own exception escaping the app is not an error
            pass
        except Exception:
            raised = True
            error_log.exception("Exception in ASGI application (%s %s)", scope["method"], scope["path"])
        else:
            if machine.state in RESPONSE_PENDING:
                error_log.error(
                    "ASGI application returned without completing the response (%s %s, state %s)",
                    scope["method"],
                    scope["path"],
                    machine.state.name,
                )
        if self._live_cycle != cycle:
            return  # cancelled at the shutdown timeout: answered and recorded by shutdown_timed_out()
        self._live_cycle = 0
        self._current = None
        fx = machine.app_ended(raised=raised)
        status = fx.ended_status
        self._apply(fx)
        # The app's own sends flushed what they wrote; a pushing transport wrote the rest.
        if fx.write or (not self._pushed and self.transport.has_queued):
            await self._flush_or_lose()
        if self.ctx.config.access_log and access_log.isEnabledFor(20):
            access_log.info(
                '%s - "%s %s HTTP/%s" %s',
                self.peer,
                scope["method"],
                head.target.decode("latin-1"),
                scope["http_version"],
                status or "- (client gone before a response)",
            )

    # ------------------------------------------------------------------ websocket

    async def _run_websocket(self, upgrade: Upgrade) -> None:
        """RFC 6455 §4.2: the machine checked the handshake; the WebSocket runtime takes over."""
        config = self.ctx.config
        scope = scopes.websocket_scope(
            http_version=upgrade.http_version,
            target=scopes.split_target(upgrade.target),
            headers=upgrade.headers,
            client=self.client,
            server=self.server,
            root_path=config.root_path,
            state=self.ctx.state,
            subprotocols=upgrade.machine.offered_subprotocols,
            tls=self.tls,
        )
        self._websocket = WebSocketConnection(
            self.transport,
            upgrade.machine,
            scope,
            self.ctx,
            client=self.peer,
            trace=self.ctx.trace_for(self.conn_id, "ws"),
        )
        self._current = (scope["path"], anyio.current_time())
        shutting_down = self._closing or self.machine.shutting_down
        # The HTTP machine (and its h11 connection) has handed over: a WebSocket that stays
        # open for hours does not keep it.
        del self.machine
        self._requests.clear()
        if shutting_down:
            await self._websocket.shutdown()
        await self._websocket.run()


_RECEIVE_SECTIONS = {
    "http.request": sections.HTTP_REQUEST,
    "http.disconnect": sections.HTTP_DISCONNECT,
}
_SEND_SECTIONS = {
    "http.response.start": sections.HTTP_RESPONSE_START,
    "http.response.body": sections.HTTP_RESPONSE_BODY,
}


def _cancelled(ctx: ServerContext, what: str) -> None:
    error_log.warning("Cancelled at the shutdown timeout (%g s): %s", ctx.config.shutdown_timeout_s, what)


def _peer(client: Address) -> str:
    return f"{client[0]}:{client[1]}" if client else "unix client"
