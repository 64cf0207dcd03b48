"""Accepting connections: every connection waiting in the kernel's accept queue is taken each
time the listening socket is readable, so that busy connections do not starve new clients, and
once more at shutdown (docs/implementation.md#one-transport-seam)."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

import anyio

from refserver.logs import error_log
from refserver.runtime.tasks import AsyncioWakeup, on_asyncio

# accept() errors that concern one connection (it went away while queued): take the next.
_PER_CONNECTION_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
# accept() errors that concern the process (out of descriptors or memory): pause a little.
_PAUSE_AFTER_RESOURCE_ERROR_S = 0.1

# Called synchronously for each accepted socket: registers it and starts its task.
Handle = Callable[[socket.socket], None]


class Acceptor:
    """Accepts on one listening socket and hands each new socket to ``handle``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)

    async def serve(self, handle: Handle) -> None:
        """Accept until cancelled."""
        if on_asyncio():
            await self._serve_registered(handle)
            return
        while True:
            await anyio.wait_readable(self.sock)
            if self.accept_waiting(handle) < 0:
                await anyio.sleep(_PAUSE_AFTER_RESOURCE_ERROR_S)

    async def _serve_registered(self, handle: Handle) -> None:
        """Serve on asyncio, where the listening socket stays registered; its callback only wakes this task,
        which accepts: ``handle`` starts tasks through anyio, which knows the loop only in a task."""
        sock, loop = self.sock, asyncio.get_running_loop()
        readable = AsyncioWakeup(loop)
        loop.add_reader(sock, readable.fire)
        try:
            while True:
                await readable.wait()
                if self.accept_waiting(handle) < 0:
                    loop.remove_reader(sock)
                    await anyio.sleep(_PAUSE_AFTER_RESOURCE_ERROR_S)
                    loop.add_reader(sock, readable.fire)
        finally:
            loop.remove_reader(sock)

    def accept_waiting(self, handle: Handle) -> int:
        """Take every connection in the accept queue now; how many, or -1 if the process
        is out of a resource (file descriptors, memory)."""
        taken = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return taken
            except OSError as exc:
                if exc.errno in _PER_CONNECTION_ERRORS:
                    continue
                error_log.warning("Cannot accept a connection: %s", exc)
                return -1
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            handle(conn)
            taken += 1
