"""The server: lifespan startup, listeners, one task per connection, graceful shutdown.

Order (lifespan spec 2.0): startup completes before the first connection is accepted;
on shutdown the listeners stop, open connections are told (WebSockets get close 1001 at
once), in-flight work gets ``shutdown_timeout_s`` to finish, the rest is cancelled, and
only then is ``lifespan.shutdown`` sent.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from refserver.config import Config
from refserver.errors import LifespanFailure
from refserver.loading import as_asgi3
from refserver.logs import error_log
from refserver.runtime.asyncio_transport import AsyncioTransport
from refserver.runtime.context import ServerContext, client_text, netloc
from refserver.runtime.http import HTTPConnection
from refserver.runtime.lifespan import Lifespan
from refserver.runtime.listener import Acceptor
from refserver.runtime.task_transport import SocketIO, TaskTransport
from refserver.runtime.tasks import on_asyncio, open_task_group
from refserver.runtime.tls import HandshakeFailed, ServerTLS, TLSConfigError, handshake
from refserver.runtime.tls import extension as tls_extension
from refserver.runtime.tls import load as load_tls
from refserver.runtime.transport import Transport, socket_addresses
from refserver.trace import Tracer


@dataclass(frozen=True, slots=True)
class Listening:
    """What :func:`serve` reports through ``task_status.started()``."""

    addresses: tuple[tuple[str, int] | str, ...]  # (host, port) pairs, or unix socket paths
    # The lifespan state (lifespan spec 2.0, "Lifespan State"): the dict the app filled during
    # lifespan.startup; every connection's scope["state"] is a shallow copy of it.
    state: dict[str, Any] = field(default_factory=dict, compare=False)
    tls: bool = False  # connections are served over TLS (https, wss)

    @property
    def url(self) -> str:
        first = self.addresses[0]
        if isinstance(first, str):
            return f"unix:{first}"
        return f"{'https' if self.tls else 'http'}://{netloc(*first)}"

    @property
    def port(self) -> int:
        first = self.addresses[0]
        if isinstance(first, str):
            raise ValueError("the server listens on a unix socket, not a TCP port")
        return first[1]


async def _open_listener(config: Config) -> tuple[anyio.abc.Listener[Any], list[socket.socket]]:
    """Open the listener ``config`` asks for, and give its listening sockets."""
    if config.uds:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(config.uds).st_mode):
                os.unlink(config.uds)  # a stale socket file from an earlier run
        listener = await anyio.create_unix_listener(config.uds, backlog=config.backlog)
        return listener, [listener.extra(anyio.abc.SocketAttribute.raw_socket)]
    multi = await anyio.create_tcp_listener(
        local_host=config.host, local_port=config.port, reuse_port=False, backlog=config.backlog
    )
    return multi, [sub.extra(anyio.abc.SocketAttribute.raw_socket) for sub in multi.listeners]


def _bound(sock: socket.socket) -> tuple[str, int] | str:
    """Give a listening socket's address: (host, port), or a unix socket's path."""
    name = sock.getsockname()
    return name if isinstance(name, str) else (str(name[0]), int(name[1]))


@dataclass(slots=True, eq=False)
class _Accepted:
    """A connection taken from the accept queue whose handler has not started yet."""

    closing: bool = False

    async def shutdown(self) -> None:
        self.closing = True  # becomes the handler's last_request


async def _open_transport(
    conn: socket.socket, tls: ServerTLS | None, handshake_timeout_s: float
) -> tuple[Transport, dict[str, Any] | None] | None:
    """Make the transport for an accepted socket (docs/implementation.md#one-transport-seam) and
    the scope's ``tls`` extension entry; None if the client left first or failed the TLS
    handshake (logged at INFO: the client's failure, not the server's)."""
    try:
        if tls is None:
            transport = await AsyncioTransport.over(conn) if on_asyncio() else TaskTransport(SocketIO(conn))
            return transport, None
        stream_type = anyio.abc.UNIXSocketStream if conn.family == socket.AF_UNIX else anyio.abc.SocketStream
        raw = await stream_type.from_socket(conn)
    except (OSError, ValueError):  # reset before it was served: anyio finds it unconnected
        conn.close()
        return None
    try:
        secure = await handshake(raw, tls, handshake_timeout_s)
        return TaskTransport(secure), tls_extension(secure, tls)
    except HandshakeFailed as exc:
        error_log.info("TLS handshake with %s failed: %s", client_text(*socket_addresses(conn)), exc)
        with anyio.CancelScope(shield=True):
            await raw.aclose()
        return None


async def serve(
    app: Any,
    config: Config | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: anyio.abc.TaskStatus[Listening] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger()`` returns (or forever), then shut down
    gracefully. Reports the bound addresses with ``task_status.started(Listening)``.
    Raises :class:`~refserver.errors.LifespanFailure` if lifespan startup or shutdown fails,
    :class:`OSError` (with the address as its ``filename``) if the server cannot listen,
    and :class:`~refserver.runtime.tls.TLSConfigError` (a ``ValueError``), before lifespan
    startup, if the TLS options cannot make a server context; then ``task_status.started()``
    is never called.
    """
    config = config or Config()
    tls = load_tls(config)
    cannot_listen: OSError | None = None
    try:
        with _tracer(config) as tracer:
            ctx = ServerContext(as_asgi3(app), config, tracer)
            lifespan = Lifespan(ctx.app, config.lifespan, ctx.state, trace=ctx.trace_for("lifespan", "lifespan"))
            async with anyio.create_task_group() as root:
                if config.lifespan != "off":
                    await lifespan.startup(root)
                try:
                    listener, socks = await _open_listener(config)
                except OSError as exc:
                    # The app started; let it clean up before the bind error ends serve(). A failed
                    # shutdown is logged by Lifespan; the error to report is the bind error, naming
                    # the address: "[Errno 98] Address already in use: '127.0.0.1:8000'".
                    address = config.uds or netloc(config.host, config.port)
                    cannot_listen = OSError(exc.errno, exc.strerror or str(exc), address)
                    cannot_listen.__cause__ = exc
                    with contextlib.suppress(LifespanFailure):
                        await lifespan.shutdown(config.shutdown_timeout_s)
                else:
                    await _serve_connections(ctx, tls, listener, socks, shutdown_trigger, task_status)
                    await lifespan.shutdown(config.shutdown_timeout_s)
    except BaseExceptionGroup as group:
        # Task groups wrap errors; a lifespan failure is the one error serve() promises
        # to raise, so it comes out as itself.
        inner: BaseException = group
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if not isinstance(inner, LifespanFailure):
            raise
        raise inner from None
    if cannot_listen is not None:
        # Raised outside the task group, so it is not wrapped in an exception group.
        raise cannot_listen


@contextlib.contextmanager
def _tracer(config: Config) -> Iterator[Tracer | None]:
    """Give the server's tracer, or None when the trace is off (then it costs nothing)."""
    if not config.trace and not config.trace_sinks:
        yield None
        return
    path = config.trace_file
    with open(path, "a", encoding="utf-8") if path is not None else contextlib.nullcontext() as file:
        yield Tracer(
            bodies=config.trace_bodies,
            fmt=config.trace_format,
            file=file,
            to_log=config.trace,
            sinks=config.trace_sinks,
        )


async def _serve_connections(
    ctx: ServerContext,
    tls: ServerTLS | None,
    listener: anyio.abc.Listener[Any],
    socks: list[socket.socket],
    shutdown_trigger: Callable[[], Awaitable[object]] | None,
    task_status: anyio.abc.TaskStatus[Listening],
) -> None:
    config = ctx.config
    try:
        async with open_task_group() as connections:

            async def serve_connection(conn: socket.socket, pending: _Accepted) -> None:
                opened = await _open_transport(conn, tls, config.timeout_keep_alive_s)
                if opened is None:
                    ctx.remove(pending)
                    return
                transport, extension = opened
                # Taken from the queue during shutdown: its first request is served, then it closes.
                limit = config.limit_concurrency
                over_limit = limit is not None and len(ctx.handlers) > limit  # this one counted
                handler = HTTPConnection(
                    transport, ctx, last_request=pending.closing, over_limit=over_limit, tls=extension
                )
                ctx.handlers.add(handler)
                ctx.remove(pending)
                del pending  # not held for the life of the connection
                try:
                    await handler.run()
                except Exception:
                    error_log.exception("Internal error in refserver while serving a connection")
                finally:
                    ctx.remove(handler)

            def accept(conn: socket.socket) -> None:
                pending = _Accepted(closing=ctx.shutting_down)
                ctx.handlers.add(pending)  # at once, so that shutdown waits for it
                connections.start_soon(serve_connection, conn, pending)

            acceptors = [Acceptor(sock) for sock in socks]
            async with anyio.create_task_group() as accepting:
                for acceptor in acceptors:
                    accepting.start_soon(acceptor.serve, accept)
                task_status.started(Listening(tuple(map(_bound, socks)), state=ctx.state, tls=tls is not None))
                await (shutdown_trigger or anyio.sleep_forever)()
                accepting.cancel_scope.cancel()
            ctx.shutting_down = True
            open_connections = list(ctx.handlers)
            for acceptor in acceptors:
                # Clients already in the accept queue are served (their first request, with
                # connection: close), not reset: they are not told to shut down like the rest.
                acceptor.accept_waiting(accept)
            await listener.aclose()
            if ctx.handlers:
                for handler in open_connections:
                    connections.start_soon(handler.shutdown)
                with anyio.move_on_after(config.shutdown_timeout_s):
                    await ctx.all_closed.wait()
                await _record_cancelled(ctx)
            connections.cancel_scope.cancel()
    finally:
        if config.uds:
            with contextlib.suppress(OSError):
                os.unlink(config.uds)


CANCEL_ANSWER_TIMEOUT_S = 1.0  # the most writing the 503s may take (docs/decisions.md#shutdown-timeout-503)


async def _record_cancelled(ctx: ServerContext) -> None:
    """Before the server cancels what still runs at the shutdown timeout, let each connection
    whose app runs record it and answer what it can (docs/decisions.md#shutdown-timeout-503)."""
    with anyio.move_on_after(CANCEL_ANSWER_TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            for handler in list(ctx.handlers):
                if isinstance(handler, HTTPConnection):
                    tg.start_soon(handler.shutdown_timed_out)


__all__ = ["LifespanFailure", "Listening", "TLSConfigError", "serve"]
