"""Drives one HTTPMachine over a Transport (``runtime/transport.py``): one app task per
request, until the peer leaves, keep-alive ends, or the request upgrades to a WebSocket.

The machine decides everything (it owns the h11 connection); this module awaits.
:meth:`HTTPConnection._apply` is the one place where effects take hold and where the trace
records every state change. The transport's calls (the peer's bytes, its leaving, the timer)
are inputs of the machine, applied at once; the connection's own task runs each request's
app instance, one after the other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.logs import access_log, error_log
from refserver.protocol.http import RESPONSE_PENDING, HTTPEffects, HTTPMachine, Input, RequestHead, State, Upgrade
from refserver.protocol.http_extensions import FileWrite
from refserver.protocol.speedups import effects_set
from refserver.runtime.context import (
    SHUTDOWN_TIMEOUT_WHY,
    Pacer,
    ServerContext,
    client_text,
    log_cancelled,
    record_error,
    record_steps,
)
from refserver.runtime.tasks import new_wakeup
from refserver.runtime.transport import FileEnded, PeerGone, TimerHandle, Transport
from refserver.runtime.websocket import WebSocketConnection
from refserver.spec import scopes, sections
from refserver.trace import ConnectionTrace


class HTTPConnection:
    __slots__ = (
        "_app_waiters",
        "_app_wakeup",
        "_close_owed",
        "_closing",
        "_deadline",
        "_failure",
        "_live",
        "_pace",
        "_request_wakeup",
        "_requests",
        "_since",
        "_state",
        "_timer",
        "_timer_at",
        "_timer_input",
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
        transport: Transport,
        ctx: ServerContext,
        *,
        last_request: bool = False,
        over_limit: bool = False,
        tls: Mapping[str, Any] | None = None,
    ) -> None:
        self.transport = transport
        self.ctx = ctx
        self.tls = tls  # the scope's TLS extension entry; None: plain text (http, ws)
        self.client, self.server = self.transport.addresses()
        self.peer = client_text(self.client, self.server)  # for the logs
        self.conn_id = ctx.new_connection_id()
        self.trace: ConnectionTrace | None = ctx.trace_for(self.conn_id, "http")
        self.machine = HTTPMachine(
            ctx.http_settings,
            date=ctx.date,
            last_request=last_request,
            over_limit=over_limit,
        )
        self._state = self.machine.state.name  # for the trace
        self._websocket: WebSocketConnection | None = None
        self._upgrade: Upgrade | None = None
        self._closing = False
        self._app_wakeup = new_wakeup()
        self._app_waiters = 0  # receive() calls blocked on _app_wakeup
        # The request whose app instance's receive() and send() are live, and since when that
        # instance runs (a WebSocket's: since its upgrade).
        self._live: RequestHead | None = None
        self._since = 0.0
        # The connection's one timer: its deadline, the input it gives (the effects that armed
        # it say), and the transport timer armed for it (at _timer_at).
        self._deadline = math.inf
        self._timer_input = Input.KEEP_ALIVE_TIMEOUT
        self._timer: TimerHandle | None = None
        self._timer_at = math.inf
        self._close_owed = False
        # Requests wait here for the connection's own task, which runs their app instances
        # (the machine reads the next request once the app instance before it has returned:
        # docs/decisions.md#one-instance-per-connection).
        self._requests: list[RequestHead] = []
        self._request_wakeup = new_wakeup()
        # One count for the connection's app instances, one after the other
        # (docs/decisions.md#fairness, docs/implementation.md#http-fairness-count): it starts
        # again when the connection's task waits for the next request.
        self._pace = Pacer()
        self._failure: Exception | None = None

    async def run(self) -> None:
        await self.transport.run(self._run)

    async def _run(self) -> None:
        try:
            self._apply(self.machine.opened())
            self.transport.push_to(self)
            await self._serve_requests()  # which ends once _done_reading() stopped the timer
            if self._failure is not None:
                raise self._failure
            if self._upgrade is not None:
                await self._run_websocket(self._upgrade)
        finally:
            self._cancel_timer()
            await self.transport.aclose()

    # ------------------------------------------------------------------ the transport's calls

    def bytes_received(self, data: bytes) -> None:
        self._apply(self.machine.receive_data(data))

    def peer_left(self, why: str) -> None:
        if not self._close_owed and self._upgrade is None:
            self._apply(self.machine.peer_gone(why))

    def failed(self, exc: Exception) -> None:
        """Take an input's exception, raised inside a call from the transport: end the connection; run() raises it."""
        self._failure = exc
        self._close_owed = True
        self.transport.abort("internal error")
        self._done_reading()
        self._app_wakeup.fire()

    def _on_timer(self) -> None:
        armed_for, self._timer, self._timer_at = self._timer_at, None, math.inf
        deadline = self._deadline
        if self._close_owed or self._upgrade is not None or deadline == math.inf:
            return  # no more input, or disarmed since (a request is being served)
        if armed_for < deadline:
            # The deadline moved on since this timer was armed: wait for the new one.
            self._timer_at = deadline
            self._timer = self.transport.call_at(deadline, self._on_timer)
            return
        self._deadline = math.inf
        machine, given = self.machine, self._timer_input
        body = given is Input.BODY_TIMEOUT
        try:
            if self.trace is not None:  # the rule of the row the timer is judged by
                name = "request body timer" if body else "keep-alive timeout"
                self.trace.record("timer", self._state, machine.section_for(given), name)
            self._apply(machine.body_timeout() if body else machine.keep_alive_timeout())
        except Exception as exc:
            self.failed(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf

    def _done_reading(self) -> None:
        """Take no more input for this machine: the connection closes (``_close_owed``) or upgrades."""
        self._cancel_timer()
        self._request_wakeup.fire()

    async def shutdown(self) -> None:
        """Stop after the response in flight; an idle connection closes at once."""
        self._closing = True
        if self._websocket is not None:
            await self._websocket.shutdown()
            return
        self._apply(self.machine.server_shutdown())

    async def shutdown_timed_out(self) -> None:
        """Record and answer this connection's app, still running at the shutdown timeout, which
        the server is about to cancel (docs/decisions.md#shutdown-timeout-503)."""
        ran = f"{self.transport.now() - self._since:.1f} s"
        head = self._live
        if self._websocket is not None:
            self._websocket.shutdown_timed_out(ran)
            return
        if head is None:
            return  # between requests
        if self.trace is not None:
            self.trace.record("timer", self._state, "RFC 9110 §15.6.4", SHUTDOWN_TIMEOUT_WHY)
        self._live = None  # from now on the app's receive() and send() are those of an ended app
        fx = self.machine.shutdown_timeout()
        self._apply(fx)
        status = fx.ended_status
        answer = "answered 503" if status == 503 else "its response cut" if status else "no response"
        log_cancelled(self.ctx, f"{head.method} {head.target.decode('latin-1')} from {self.peer} (ran {ran}; {answer})")
        self._log_access(head, status)
        await self._flush_or_lose()

    def _log_access(self, head: RequestHead, status: int) -> None:
        """Write the access line of a request; status 0: the client left before a response."""
        if self.ctx.config.access_log and access_log.isEnabledFor(logging.INFO):
            target, version = head.target.decode("latin-1"), head.http_version
            answer = status or "- (client gone before a response)"
            access_log.info('%s - "%s %s HTTP/%s" %s', self.peer, head.method, target, version, answer)

    # ------------------------------------------------------------------ effects

    def _apply(self, fx: HTTPEffects) -> dict[str, Any]:
        """Make one input's effects take hold, in order; the only place that does. Return the
        effects the input set, by name (``speedups.effects_set``)."""
        given = effects_set(fx)
        if "notes" in given or "transitions" in given:
            self._state = record_steps(fx, self._state, self.trace)
        if "refused" in given:
            refused = given["refused"]
            answer = f"answered {refused.status}" if self.transport.gone is None else "the client is gone; not answered"
            if refused.status == 503:
                error_log.warning("Refused a request from %s: %s (%s)", self.peer, refused.reason, answer)
            else:
                error_log.info("Bad %s from %s: %s (%s)", refused.what, self.peer, refused.reason, answer)
        if "write" in given:
            self.transport.write(fx.write)
        if "timer" in given:
            self._timer_input, seconds = given["timer"]
            self._deadline = deadline = self.transport.now() + seconds
            # A timer armed for an earlier deadline stays armed: when it fires it finds the
            # deadline gone (a request is being served) or later (it re-arms then), so a
            # request costs no cancel and no new timer.
            if deadline != math.inf and self._timer_at > deadline:
                self._cancel_timer()
                self._timer_at = deadline
                self._timer = self.transport.call_at(deadline, self._on_timer)
        if "reading" in given:
            self.transport.set_reading(given["reading"])
        if "request" in given:
            self._requests.append(given["request"])
            self._request_wakeup.fire()
        if "upgrade" in given or "tcp" in given:
            self._upgrade = fx.upgrade or self._upgrade
            self._close_owed = self._close_owed or fx.tcp is not None
            if fx.upgrade is not None:
                # What follows the handshake waits for the WebSocket runtime.
                self.transport.stop_pushing()
            self._done_reading()
        if "wake_app" in given and self._app_waiters:  # a receive() that has not blocked asks the machine first
            self._app_wakeup.fire()
        return given

    async def _send_file(self, file: FileWrite, message: Mapping[str, Any], trace: Any) -> None:
        """Send a file body the machine framed, then its framing, and close the file if the
        server opened it (Path Send). A peer gone raises ClientDisconnected; a file shorter than
        the body it promised cuts the connection and raises ASGIProtocolError."""
        kind = str(message.get("type"))
        try:
            await self.transport.send_file(file.body.fd, file.body.offset, file.body.count)
            if file.after:
                self.transport.write([file.after])
        except PeerGone as exc:
            self._apply(self.machine.peer_gone(str(exc)))
            raise self._client_gone(message, trace) from None
        except (FileEnded, OSError) as exc:
            # The framing promised bytes the file no longer has: the response cannot complete.
            self.transport.abort(f"file body failed: {exc}")
            self._apply(self.machine.peer_gone(f"the file body could not be sent ({exc})"))
            section = sections.HTTP_PATHSEND if kind == "http.response.pathsend" else sections.HTTP_ZEROCOPYSEND
            error = ASGIProtocolError(kind, f"could not be sent whole: {exc}; the connection is closed", section)
            record_error(trace, self._state, error, message, "")
            raise error from None
        finally:
            file.body.close()

    def _client_gone(self, message: Mapping[str, Any], trace: Any) -> ClientDisconnected:
        """Record and give the ClientDisconnected a send() raises once the client has left."""
        gone = ClientDisconnected(self.machine.client_gone_reason or "client disconnected")
        record_error(trace, self._state, gone, message, sections.HTTP_CLOSED_SEND)
        return gone

    async def _flush_or_lose(self) -> bool:
        """Flush; a peer that is gone becomes the machine's PEER_GONE input. False then."""
        try:
            await self.transport.flush()
        except PeerGone as exc:
            self._apply(self.machine.peer_gone(str(exc)))
            return False
        return True

    # ------------------------------------------------------------------ the requests

    async def _serve_requests(self) -> None:
        """Run each request's app instance in the connection's own task, until the reader is
        done (the connection closes or upgrades) and no request waits."""
        while True:
            if self._requests:
                await self._serve(self._requests.pop(0))
            elif self._close_owed or self._upgrade is not None:
                return  # no more input
            else:
                # No request waits: the next one can only come from a later pass of the event
                # loop, so this is a wait (docs/implementation.md#http-fairness-count).
                await self._request_wakeup.wait()
                self._pace.waited()

    # ------------------------------------------------------------------ one request

    async def _serve(self, head: RequestHead) -> None:
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
        self._live, self._since = head, self.transport.now()

        async def receive() -> MutableMapping[str, Any]:
            if head is not self._live:
                # A receive() of an app instance that has ended: its response is over.
                await anyio.lowlevel.checkpoint()
                return {"type": "http.disconnect"}
            waited = False
            while True:
                fx = machine.app_receive()
                # (a 100 Continue is written, without waiting)
                event: MutableMapping[str, Any] | None = self._apply(fx).get("event")
                if event is not None:
                    if waited:
                        pace.waited()
                    elif pace.due():
                        await anyio.lowlevel.checkpoint()
                    if trace is not None:
                        trace.record("recv", self._state, sections.MESSAGES.get(event["type"], ""), message=event)
                    return event  # a dict of its own (the machine never hands one out twice)
                waited = True
                self._app_waiters += 1
                try:
                    await self._app_wakeup.wait()
                finally:
                    self._app_waiters -= 1

        async def send(message: MutableMapping[str, Any]) -> None:
            if head is not self._live:
                # A send() of an app instance that has ended: ignored like any message
                # after the response completed (www spec 2.5, "Response Body - send event").
                if trace is not None:
                    trace.record("ignored", self._state, sections.HTTP_RESPONSE_BODY, "a message after the app ended")
                await anyio.lowlevel.checkpoint()
                return
            try:
                fx = machine.app_send(message)
            except (ASGIProtocolError, ClientDisconnected) as exc:
                try:  # under --app-violations warn, a breach with a safe reading is served in it
                    message, fx = self.ctx.violations.serve(exc, message, machine.app_send, trace)
                except (ASGIProtocolError, ClientDisconnected) as error:
                    record_error(trace, self._state, error, message, sections.HTTP_CLOSED_SEND)
                    await anyio.lowlevel.checkpoint()
                    raise error from None
            if trace is not None:
                trace.record(
                    "send", machine.state.name, sections.MESSAGES.get(str(message.get("type")), ""), message=message
                )
            given = self._apply(fx)
            if "file" in given:
                await self._send_file(given["file"], message, trace)
            if "write" in given and not self.transport.flushed and not await self._flush_or_lose():
                raise self._client_gone(message, trace)
            if machine.state is not State.START_HELD and pace.due():
                # http.response.start, held and written with the first body message, is not
                # counted: it comes once per app instance (docs/implementation.md#http-fairness-count).
                await anyio.lowlevel.checkpoint()
            if "error" in given:
                failure: BaseException = given["error"]
                record_error(trace, self._state, failure, message, "")
                self.ctx.violations.report(failure)
                raise failure

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
        if head is not self._live:
            return  # cancelled at the shutdown timeout: answered and recorded by shutdown_timed_out()
        self._live = None
        fx = machine.app_ended(raised=raised)
        if "write" in self._apply(fx):
            await self._flush_or_lose()
        self._log_access(head, fx.ended_status)

    # ------------------------------------------------------------------ websocket

    async def _run_websocket(self, upgrade: Upgrade) -> None:
        """Hand over to the WebSocket runtime (RFC 6455 §4.2): the machine checked the handshake."""
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
        self._since = self.transport.now()
        shutting_down = self._closing or self.machine.shutting_down
        # The HTTP machine (and its h11 connection) has handed over: a WebSocket that stays
        # open for hours does not keep it.
        del self.machine
        if shutting_down:
            await self._websocket.shutdown()
        await self._websocket.run()
