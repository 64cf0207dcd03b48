"""Drives one WebSocketSession over a Transport: the app task, the reader, keepalive.

- The reader feeds peer bytes into the session and writes what it answers (pongs, the
  close echo). It stops reading while messages wait for the app (backpressure), and it
  closes the TCP connection as the session's ``plan`` says.
- ``send()`` returns once the frame is in the socket's send buffer; writes are ordered
  by a FIFO lock, taken after the frame is generated.
- Every state change wakes both the reader and a waiting ``receive()``.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import anyio

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.logs import error_log
from refserver.protocol.websocket import Plan, WebSocketSession, WSState
from refserver.runtime.context import Scope, ServerContext
from refserver.runtime.transport import PeerGone, Transport
from refserver.runtime.wakeup import Wakeup

# Bytes read ahead of the app's accept before the reader waits for it.
MAX_BYTES_BEFORE_ACCEPT = 64 * 1024


class WebSocketConnection:
    def __init__(self, transport: Transport, session: WebSocketSession, scope: Scope, ctx: ServerContext) -> None:
        self.transport = transport
        self.session = session
        self.scope = scope
        self.ctx = ctx
        self._app_wakeup = Wakeup()
        self._reader_wakeup = Wakeup()
        self._pong_wakeup = Wakeup()
        self._write_lock = anyio.Lock(fast_acquire=True)
        self._close_deadline = math.inf
        self._hold_deadline = math.inf  # how long a failure may wait for the app (Plan.HOLD)
        self._eof_sent = False
        self._keepalive_scope = anyio.CancelScope()
        # The reader's current socket read: re-armed with the close deadline, and cancelled
        # when the plan changes under it (e.g. the app sent a close while it was reading).
        self._read_scope: anyio.CancelScope | None = None
        self._read_plan = Plan.READ

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run_app)
            tg.start_soon(self._keepalive)
            await self._read_until_closed()
            self._keepalive_scope.cancel()

    # ------------------------------------------------------------------ shared

    def _changed(self) -> None:
        """The session changed: wake whoever may be waiting on it."""
        self._app_wakeup.fire()
        self._reader_wakeup.fire()
        plan = self.session.plan
        if plan is Plan.HOLD:
            if self._hold_deadline == math.inf:
                self._hold_deadline = anyio.current_time() + self.ctx.config.ws_close_timeout_s
        elif plan is not Plan.READ and self._close_deadline == math.inf:
            self._close_deadline = anyio.current_time() + self.ctx.config.ws_close_timeout_s
        if self._read_scope is not None and plan is not self._read_plan:
            self._read_scope.cancel()
        for notice in self.session.notices:
            error_log.warning(notice)
        self.session.notices.clear()

    async def _flush(self) -> bool:
        """Write what the session has queued; False if the peer is gone."""
        data = self.session.data_to_send()
        if not data:
            return True
        async with self._write_lock:
            try:
                await self.transport.send(data)
            except PeerGone:
                self.session.connection_lost()
                self._changed()
                return False
        return True

    # ------------------------------------------------------------------ the app

    async def _receive(self) -> MutableMapping[str, Any]:
        session = self.session
        while True:
            event = session.next_app_event()
            if event is not None:
                if session.has_data_to_send:
                    # Asking for more ended a held failure: its close frame goes out first.
                    self._changed()
                    await self._flush()
                elif not session.inbox:
                    self._reader_wakeup.fire()  # backlog drained: read on
                return event
            await self._app_wakeup.wait()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        session = self.session
        before = session.state
        try:
            session.app_send(message)
        except ASGIProtocolError:
            await self._flush()  # e.g. the HTTP 500 after an unacceptable accept
            self._changed()
            raise
        if not await self._flush():
            raise ClientDisconnected(session.closed_reason, session.close_code)
        if session.state is not before:
            self._changed()

    async def _run_app(self) -> None:
        raised = False
        try:
            await self.ctx.app(self.scope, self._receive, self._send)
        except ClientDisconnected:
            pass  # www spec 2.4: our own exception escaping the app is not an error
        except Exception:
            raised = True
            error_log.exception("Exception in ASGI application (websocket %s)", self.scope.get("path"))
        self.session.app_ended(raised=raised)
        self._changed()
        await self._flush()

    # ------------------------------------------------------------------ the reader

    async def _read_until_closed(self) -> None:
        session, transport = self.session, self.transport
        try:
            while True:
                plan = session.plan
                if plan is Plan.CLOSE:
                    break
                if plan is Plan.READ and (
                    session.backlogged or session.buffered_before_accept() > MAX_BYTES_BEFORE_ACCEPT
                ):
                    await self._reader_wakeup.wait()  # backpressure: the app has not caught up
                    continue
                if plan is Plan.HOLD:
                    # A failure waits for the app to take the messages before it; bounded
                    # by the close timeout.
                    with anyio.move_on_after(self._hold_deadline - anyio.current_time()):
                        await self._reader_wakeup.wait()
                    if session.plan is Plan.HOLD and anyio.current_time() >= self._hold_deadline:
                        session.hold_expired()
                        self._changed()
                        await self._flush()
                    continue
                if plan is Plan.DRAIN and not self._eof_sent:
                    self._eof_sent = True
                    await transport.send_eof()
                data = b""
                self._read_plan = plan
                with anyio.CancelScope(deadline=self._close_deadline) as self._read_scope:
                    data = await transport.receive()
                self._read_scope = None
                if not data:
                    if session.plan is not plan:
                        continue  # the plan changed while reading: look again
                    if anyio.current_time() >= self._close_deadline:
                        session.close_timeout_expired()
                    else:
                        session.connection_lost()
                    self._changed()
                    break
                session.receive_data(data)
                self._changed()  # wake the app for new messages before a write can block
                # The answer (a pong, the close echo) waits behind any write in progress; once
                # the connection is closing, --ws-close-timeout bounds that wait too, so a peer
                # that stopped reading cannot hold the connection and a blocked send() forever
                # (RFC 6455 §7.1.1: the server closes the TCP connection).
                with anyio.CancelScope(deadline=self._close_deadline) as flushing:
                    await self._flush()
                if flushing.cancelled_caught:
                    session.close_timeout_expired()
                    self._changed()
                    break
                if session.pong_payloads:
                    self._pong_wakeup.fire()
        finally:
            transport.abort(session.closed_reason or "connection closed")
            await transport.aclose()
            self._changed()

    # ------------------------------------------------------------------ keepalive

    async def _keepalive(self) -> None:
        """www spec 2.5, "WebSocket": the server should ping as necessary for liveness.
        Runs until the TCP connection is closed."""
        with self._keepalive_scope:
            await self._ping_until_dead()

    async def _ping_until_dead(self) -> None:
        interval = self.ctx.config.ws_ping_interval_s
        timeout = self.ctx.config.ws_ping_timeout_s
        if interval <= 0:
            return
        session = self.session
        count = 0
        while True:
            await anyio.sleep(interval)
            if session.state is WSState.CONNECTING:
                continue
            count += 1
            payload = count.to_bytes(4, "big")
            if not session.ping(payload):
                return
            if timeout <= 0:
                if not await self._flush():
                    return
                continue
            # The ping timeout runs from the moment the ping is queued: a peer that stopped
            # reading keeps the app's write (and so the ping) from going out, and must be
            # detected all the same.
            sent = False
            with anyio.move_on_after(timeout):
                if not await self._flush():
                    return
                sent = True
                while payload not in session.pong_payloads:
                    await self._pong_wakeup.wait()
                continue
            if sent and session.backlogged:
                continue  # we are not reading (backpressure): the pong may be unread
            session.keepalive_timed_out()
            self._changed()
            if not self.transport.writing and not self.transport.interrupted_write:
                with anyio.move_on_after(1.0):
                    await self._flush()
            self.transport.abort(session.closed_reason)
            return

    # ------------------------------------------------------------------ shutdown

    async def shutdown(self) -> None:
        """Close 1001 at once (docs/decisions.md A3); the app then has until the
        shutdown timeout to return."""
        self.session.server_shutdown()
        self._changed()
        with anyio.move_on_after(self.ctx.config.ws_close_timeout_s):
            await self._flush()
