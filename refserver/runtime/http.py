"""Serves one HTTP/1.1 connection: requests in order, each with its own app instance,
until the peer leaves, keep-alive ends, or the request upgrades to a WebSocket.

Per request, the connection task pumps the request body to the app (one chunk at a
time) and then keeps reading only to notice a disconnect, while the app runs beside it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import anyio.abc
import h11

from refserver.errors import ClientDisconnected
from refserver.logs import access_log, error_log
from refserver.protocol import handshake
from refserver.protocol.http import HTTPCycle, ResponseState, scope_http_version
from refserver.protocol.responses import complete_response
from refserver.protocol.websocket import Timeouts, WebSocketMachine
from refserver.runtime.context import ServerContext
from refserver.runtime.transport import PeerGone, Transport
from refserver.runtime.wakeup import Wakeup
from refserver.runtime.websocket import WebSocketConnection
from refserver.spec import scopes

Address = tuple[str, int] | tuple[str, None] | None


def _addresses(stream: anyio.abc.ByteStream) -> tuple[Address, Address]:
    """``client`` and ``server`` scope values (www spec 2.5; 2.2 for unix sockets)."""
    try:
        local = stream.extra(anyio.abc.SocketAttribute.local_address)
        remote = stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return None, None
    server: Address
    client: Address
    if isinstance(local, str):
        server = (local, None)
    else:
        server = (str(local[0]), int(local[1]))
    if isinstance(remote, tuple) and len(remote) >= 2:
        client = (str(remote[0]), int(remote[1]))
    else:
        client = None
    return client, server


class HTTPConnection:
    def __init__(self, stream: anyio.abc.ByteStream, ctx: ServerContext) -> None:
        self.transport = Transport(stream)
        self.ctx = ctx
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=ctx.config.h11_max_incomplete_event_size_bytes)
        self.client, self.server = _addresses(stream)
        self.conn_id = ctx.new_connection_id()
        self._idle_scope: anyio.CancelScope | None = None
        self._websocket: WebSocketConnection | None = None
        self._closing = False
        self._app_wakeup = Wakeup()
        self._pump_wakeup = Wakeup()

    async def run(self) -> None:
        try:
            while not self._closing:
                request = await self._next_request()
                if request is None:
                    return
                if handshake.asks_for_websocket(list(request.headers)):
                    await self._upgrade(request)
                    return
                if not await self._serve_request(request) or self._closing:
                    return
                self.conn.start_next_cycle()
        finally:
            await self.transport.aclose()

    async def shutdown(self) -> None:
        """Stop after the response in flight; an idle connection closes at once."""
        self._closing = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        if self._websocket is not None:
            await self._websocket.shutdown()

    # ------------------------------------------------------------------ requests

    async def _next_request(self) -> h11.Request | None:
        """The next request's head, within the keep-alive timeout; None to close."""
        conn = self.conn
        limit = self.ctx.config.h11_max_incomplete_event_size_bytes
        with anyio.move_on_after(self.ctx.config.timeout_keep_alive_s) as scope:
            self._idle_scope = scope
            while True:
                buffered = len(conn.trailing_data[0])
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    await self._reject_bad_request(exc)
                    return None
                if event is h11.NEED_DATA:
                    data = await self.transport.receive()
                    conn.receive_data(data)  # b"" tells h11 about EOF
                    continue
                if isinstance(event, h11.Request):
                    self._idle_scope = None
                    # h11 enforces the limit only on a head that is still incomplete; one
                    # that arrived whole in a single read is held to the same limit here,
                    # so the answer does not depend on how TCP split the bytes.
                    if buffered - len(conn.trailing_data[0]) > limit:
                        await self._reject_bad_request(h11.RemoteProtocolError(_HEAD_TOO_LARGE, 431))
                        return None
                    if scope_http_version(event.http_version) is None:
                        version = event.http_version.decode("ascii", "replace")
                        await self._reject_bad_request(h11.RemoteProtocolError(f"HTTP/{version} is not supported", 505))
                        return None
                    return event
                return None  # ConnectionClosed, or PAUSED after a switch
        self._idle_scope = None  # keep-alive timeout or shutdown: close
        return None

    async def _reject_bad_request(self, exc: h11.RemoteProtocolError) -> None:
        """Malformed request line or headers: 400; headers over the limit: 431."""
        status = exc.error_status_hint
        if status == 431:
            exc = h11.RemoteProtocolError(_HEAD_TOO_LARGE, 431)  # h11 says "Receive buffer too long"
        error_log.info("Bad request from %s: %s (answered %d)", _peer(self.client), exc, status)
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"{exc}\n".encode()
        try:
            data = complete_response(self.conn, status, body, date=self.ctx.date())
        except h11.LocalProtocolError:
            return
        try:
            await self.transport.send(data)
        except PeerGone:
            pass

    async def _serve_request(self, request: h11.Request) -> bool:
        """Run one request/response cycle; True if the connection may be reused."""
        cycle = HTTPCycle(self.conn, request, date=self.ctx.date())
        target = scopes.split_target(request.target)
        scope = scopes.http_scope(
            method=request.method.decode("ascii"),
            http_version=scope_http_version(request.http_version) or "1.1",
            target=target,
            headers=list(request.headers),
            client=self.client,
            server=self.server,
            root_path=self.ctx.config.root_path,
            state=self.ctx.state,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._pump_request, cycle)
            await self._run_app(cycle, scope)
            tg.cancel_scope.cancel()
        if self.ctx.config.access_log and access_log.isEnabledFor(20):
            access_log.info(
                '%s - "%s %s HTTP/%s" %s',
                _peer(self.client),
                scope["method"],
                request.target.decode("latin-1"),
                scope["http_version"],
                cycle.status or "- (client gone before a response)",
            )
        return cycle.keep_alive and self.transport.gone is None

    async def _run_app(self, cycle: HTTPCycle, scope: dict[str, Any]) -> None:
        async def receive() -> MutableMapping[str, Any]:
            while True:
                event = cycle.next_receive_event()
                if event is not None:
                    self._pump_wakeup.fire()
                    return event
                owed = cycle.take_continue()
                if owed:
                    await self._write(cycle, owed)
                await self._app_wakeup.wait()

        async def send(message: MutableMapping[str, Any]) -> None:
            data = cycle.app_send(message)
            if data and not await self._write(cycle, data):
                raise ClientDisconnected(cycle.client_gone_reason or "client disconnected")
            if cycle.state is ResponseState.COMPLETE:
                self._app_wakeup.fire()

        try:
            await self.ctx.app(scope, receive, send)
        except ClientDisconnected:
            pass  # www spec 2.4: our own exception escaping the app is not an error
        except Exception:
            error_log.exception("Exception in ASGI application (%s %s)", scope["method"], scope["path"])
        else:
            if cycle.state is not ResponseState.COMPLETE and cycle.client_gone_reason is None:
                error_log.error(
                    "ASGI application returned without completing the response (%s %s, state %s)",
                    scope["method"],
                    scope["path"],
                    cycle.state.name,
                )
        data = cycle.app_ended()
        if data:
            await self._write(cycle, data)

    async def _write(self, cycle: HTTPCycle, data: bytes) -> bool:
        try:
            await self.transport.send(data)
        except PeerGone as exc:
            cycle.client_disconnected(str(exc))
            self._app_wakeup.fire()
            return False
        return True

    async def _pump_request(self, cycle: HTTPCycle) -> None:
        """Hand the body to the app one chunk at a time, then watch for a disconnect."""
        conn, transport = self.conn, self.transport
        pending: list[bytes] = []
        while True:
            if not cycle.request_complete and not cycle.wants_body:
                await self._pump_wakeup.wait()  # the app has not taken the last chunk
                continue
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                cycle.client_disconnected(f"malformed request body: {exc}")
                self._app_wakeup.fire()
                return
            if isinstance(event, h11.Data):
                pending.append(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                cycle.body_received(b"".join(pending), more_body=False)
                pending.clear()
                self._app_wakeup.fire()
                continue
            if pending:  # NEED_DATA with a chunk in hand: deliver it, then read on
                cycle.body_received(b"".join(pending), more_body=True)
                pending.clear()
                self._app_wakeup.fire()
                continue
            if (
                cycle.request_complete
                and len(conn.trailing_data[0]) > self.ctx.config.h11_max_incomplete_event_size_bytes
            ):
                await anyio.sleep_forever()  # enough pipelined bytes buffered: stop reading
            data = await transport.receive()
            if not data:
                cycle.client_disconnected(transport.gone or "client disconnected")
                self._app_wakeup.fire()
                return
            conn.receive_data(data)

    # ------------------------------------------------------------------ websocket

    async def _upgrade(self, request: h11.Request) -> None:
        """RFC 6455 §4.2: validate the upgrade request, then hand the connection over."""
        conn = self.conn
        while True:  # the request's (normally empty) body, up to its end
            event = conn.next_event()
            if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                break
            if event is h11.NEED_DATA:
                data = await self.transport.receive()
                if not data:
                    return
                conn.receive_data(data)
        headers = list(request.headers)
        checked = handshake.validate_request(request.method, request.http_version, headers)
        if isinstance(checked, handshake.Rejection):
            await self._reject_handshake(checked)
            return
        config = self.ctx.config
        machine = WebSocketMachine(
            conn,
            key=checked,
            subprotocols=scopes.parse_subprotocols(headers),
            deflate=handshake.negotiate_deflate(headers) if config.ws_per_message_deflate else None,
            max_size_bytes=config.ws_max_size_bytes,
            timeouts=Timeouts(config.ws_close_timeout_s, config.ws_ping_interval_s, config.ws_ping_timeout_s),
        )
        scope = scopes.websocket_scope(
            http_version=request.http_version.decode("ascii"),
            target=scopes.split_target(request.target),
            headers=headers,
            client=self.client,
            server=self.server,
            root_path=config.root_path,
            state=self.ctx.state,
            subprotocols=machine.offered_subprotocols,
        )
        self._websocket = WebSocketConnection(
            self.transport,
            machine,
            scope,
            self.ctx,
            client=_peer(self.client),
            trace=self.ctx.trace_for(self.conn_id, "ws"),
        )
        if self._closing:
            await self._websocket.shutdown()
        await self._websocket.run()

    async def _reject_handshake(self, rejection: handshake.Rejection) -> None:
        error_log.info(
            "Bad WebSocket handshake from %s: %s (answered %d)",
            _peer(self.client),
            rejection.reason,
            rejection.status,
        )
        try:
            data = complete_response(
                self.conn,
                rejection.status,
                rejection.reason.encode() + b"\n",
                headers=rejection.headers,
                date=self.ctx.date(),
            )
            await self.transport.send(data)
        except (h11.LocalProtocolError, PeerGone):
            return


_HEAD_TOO_LARGE = "request head larger than the limit (--h11-max-incomplete-event-size)"


def _peer(client: Address) -> str:
    return f"{client[0]}:{client[1]}" if client else "unix client"
