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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

from refserver.config import Config
from refserver.errors import LifespanFailure
from refserver.loading import as_asgi3
from refserver.logs import error_log
from refserver.runtime.context import ServerContext
from refserver.runtime.http import HTTPConnection
from refserver.runtime.lifespan import Lifespan


@dataclass(frozen=True, slots=True)
class Listening:
    """What :func:`serve` reports through ``task_status.started()``."""

    addresses: tuple[tuple[str, int] | str, ...]  # (host, port) pairs, or unix socket paths

    @property
    def url(self) -> str:
        first = self.addresses[0]
        if isinstance(first, str):
            return f"unix:{first}"
        host, port = first
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def port(self) -> int:
        first = self.addresses[0]
        if isinstance(first, str):
            raise ValueError("the server listens on a unix socket, not a TCP port")
        return first[1]


async def _open_listeners(config: Config) -> tuple[list[anyio.abc.Listener[Any]], Listening]:
    if config.uds:
        path = config.uds
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket file from an earlier run
        listener = await anyio.create_unix_listener(path)
        return [listener], Listening((path,))
    multi = await anyio.create_tcp_listener(local_host=config.host, local_port=config.port, reuse_port=False)
    addresses: list[tuple[str, int] | str] = []
    for sub in multi.listeners:
        sock: socket.socket = sub.extra(anyio.abc.SocketAttribute.raw_socket)
        host, port = sock.getsockname()[:2]
        addresses.append((str(host), int(port)))
    return [multi], Listening(tuple(addresses))


async def serve(
    app: Any,
    config: Config | None = None,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: anyio.abc.TaskStatus[Listening] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger()`` returns (or forever), then shut down
    gracefully. Reports the bound addresses with ``task_status.started(Listening)``.
    Raises :class:`~refserver.errors.LifespanFailure` if lifespan startup or shutdown fails.
    """
    try:
        await _serve(app, config or Config(), shutdown_trigger, task_status)
    except BaseExceptionGroup as group:
        # Task groups wrap errors; a lifespan failure is the one error serve() promises
        # to raise, so it comes out as itself.
        failure = _only(group, LifespanFailure)
        if failure is None:
            raise
        raise failure from None


def _only(group: BaseExceptionGroup[BaseException], kind: type[LifespanFailure]) -> LifespanFailure | None:
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner if isinstance(inner, kind) else None


async def _serve(
    app: Any,
    config: Config,
    shutdown_trigger: Callable[[], Awaitable[object]] | None,
    task_status: anyio.abc.TaskStatus[Listening],
) -> None:
    ctx = ServerContext(as_asgi3(app), config)
    lifespan = Lifespan(ctx.app, config.lifespan, ctx.state, trace=ctx.trace_for("lifespan", "lifespan"))
    async with anyio.create_task_group() as root:
        if config.lifespan != "off":
            await lifespan.startup(root)
        listeners, listening = await _open_listeners(config)
        try:
            async with anyio.create_task_group() as connections:

                async def handle(stream: anyio.abc.ByteStream) -> None:
                    handler = HTTPConnection(stream, ctx)
                    ctx.add(handler)
                    try:
                        await handler.run()
                    except Exception:
                        error_log.exception("Internal error in refserver while serving a connection")
                    finally:
                        ctx.remove(handler)

                async with anyio.create_task_group() as accepting:
                    for listener in listeners:
                        accepting.start_soon(listener.serve, handle, connections)
                    task_status.started(listening)
                    if shutdown_trigger is None:
                        await anyio.sleep_forever()
                    else:
                        await shutdown_trigger()
                    accepting.cancel_scope.cancel()
                for listener in listeners:
                    await listener.aclose()
                ctx.shutting_down = True
                if ctx.handlers:
                    for handler in list(ctx.handlers):
                        connections.start_soon(handler.shutdown)
                    with anyio.move_on_after(config.shutdown_timeout_s):
                        await ctx.all_closed.wait()
                connections.cancel_scope.cancel()
        finally:
            if config.uds:
                with contextlib.suppress(OSError):
                    os.unlink(config.uds)
        await lifespan.shutdown(config.shutdown_timeout_s)


__all__ = ["LifespanFailure", "Listening", "serve"]
