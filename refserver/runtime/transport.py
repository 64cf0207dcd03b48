"""The seam between the connection drivers and the event loop: :class:`Transport`.

The HTTP and WebSocket drivers (``runtime/http.py``, ``runtime/websocket.py``) are written
once, against this interface. The peer's bytes are pushed to them (:class:`Receiver`), as
they arrive; their writes never wait except for buffer space (:meth:`Transport.flush`); their
timers and TCP's half-close and close take effect without awaiting. Two implementations:

- ``runtime/asyncio_transport.py``: an ``asyncio.Protocol`` of its own, for plain TCP and
  unix sockets on asyncio. asyncio's event loop already works this way, so the seam costs
  nothing there (anyio's own asyncio stream costs two epoll changes and a cancel scope per
  read and a loop pass per write, about half of the CPU per small message).
- ``runtime/task_transport.py``: a reader task and a writer task over a byte stream read and
  written by tasks: the socket itself on trio, any anyio byte stream (TLS, in-memory pipes)
  on either backend.

This module is also the one place where I/O errors become "peer gone": a transport says why
the peer left (:func:`describe`) and a write that cannot be made raises :class:`PeerGone`.
Callers never see ``OSError``, ``anyio.BrokenResourceError`` or ``anyio.EndOfStream``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

from refserver.runtime.wakeup import Wakeup

READ_SIZE_BYTES = 64 * 1024  # the most one read takes; also what may wait unread between receivers
FILE_CHUNK_BYTES = 256 * 1024  # the most of a file body read into memory at once (send_file_by_reads)
# Bytes a send() has handed over may still wait in the transport's own buffer when the
# connection closes: they get this long to reach the socket before a peer that does not read
# is cut off.
CLOSE_FLUSH_LIMIT_S = 5.0  # docs/decisions.md#close-flushes-for-5s

Address = tuple[str, int] | tuple[str, None] | None


class PeerGone(Exception):
    """The peer can no longer be written to; ``str()`` says why."""


class FileEnded(Exception):
    """The file had fewer bytes than the response promised; ``str()`` says how many."""


class Receiver(Protocol):
    """A connection driver: what the transport tells it, as it happens."""

    def bytes_received(self, data: bytes) -> None: ...

    def peer_left(self, why: str) -> None: ...

    def failed(self, exc: Exception) -> None: ...


class TimerHandle(Protocol):
    def when(self) -> float: ...

    def cancel(self) -> None: ...


class Transport(Protocol):
    """One client connection, as the drivers see it."""

    gone: str | None  # why the peer is gone (or the connection closing), once it is

    async def run(self, main: Callable[[], Awaitable[None]]) -> None:
        """Run ``main`` (the driver) with whatever tasks the transport needs beside it."""

    def addresses(self) -> tuple[Address, Address]:
        """``client`` and ``server`` for the scope."""

    def new_wakeup(self) -> Wakeup:
        """A wake-up call suited to this transport's event loop."""

    def now(self) -> float:
        """The event loop's clock (deadlines are on it)."""

    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` at ``deadline``, as the peer's bytes are run: with no await."""

    def push_to(self, receiver: Receiver) -> None:
        """From now on hand every byte to ``receiver`` as it arrives, starting with what
        arrived since the last receiver, and tell it when the peer leaves."""

    def stop_pushing(self) -> None:
        """Keep what arrives from now on for the next :meth:`push_to` (the WebSocket hand-over)."""

    def set_reading(self, on: bool) -> None:
        """Resume or pause reading from the socket (backpressure)."""

    def write(self, chunks: list[bytes]) -> None:
        """Write ``chunks`` after everything written before; never waits. Nothing is written
        once the peer is gone: then :meth:`flush` raises PeerGone."""

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        """Write ``count`` bytes of the file ``fd`` from ``offset`` after everything written
        before, and return once they are written as :meth:`flush` counts it: with
        ``os.sendfile`` where the connection is a plain socket, by bounded reads otherwise
        (:func:`send_file_by_reads`). The file's own position is not used; ``fd`` stays open.
        Raises PeerGone if it cannot be written, FileEnded if the file is shorter."""

    @property
    def flushed(self) -> bool:
        """:meth:`flush` would return at once, raising nothing."""

    @property
    def write_blocked(self) -> bool:
        """Written bytes wait for room in the socket's send buffer (the peer reads slowly)."""

    async def flush(self) -> None:
        """Return once what was written has room: it is in the socket's send buffer, or in the
        transport's own below its high-water mark. Raises PeerGone if it cannot be written."""

    def half_close(self) -> None:
        """Send FIN once what is written has gone out; keep reading (RFC 6455 §7.1.1)."""

    def close_soon(self, reason: str, flush_limit_s: float) -> None:
        """Mark the peer gone (``reason``) and close TCP once what is written has gone out,
        or after ``flush_limit_s`` (0: at once, dropping it)."""

    def abort(self, reason: str) -> None:
        """Mark the peer gone and close TCP at once, dropping what is not yet written."""

    async def aclose(self) -> None:
        """Close, letting what is written go out for up to CLOSE_FLUSH_LIMIT_S."""


def describe(exc: BaseException) -> str:
    """Why the peer is gone, from the I/O error that says so."""
    cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(cause, ConnectionResetError) or getattr(cause, "errno", None) == errno.ECONNRESET:
        return "connection reset by peer"
    if isinstance(cause, BrokenPipeError):
        return "connection closed by peer (broken pipe)"
    if isinstance(exc, anyio.ClosedResourceError):
        return "connection closed"
    text = str(cause) or type(cause).__name__
    return f"connection lost ({text})"


def addresses(local: object, remote: object) -> tuple[Address, Address]:
    """``client`` and ``server`` scope values (www spec 2.5; 2.2 for unix sockets) from a
    socket's local and remote addresses (None when unknown)."""
    if local is None:
        return None, None
    server: Address
    client: Address
    if isinstance(local, str):
        server = (local, None)
    elif isinstance(local, tuple):
        server = (str(local[0]), int(local[1]))
    else:
        return None, None
    if isinstance(remote, tuple) and len(remote) >= 2:
        client = (str(remote[0]), int(remote[1]))
    else:
        client = None  # a unix socket's client, or a TCP client that already reset
    return client, server


async def send_file_by_reads(transport: Transport, fd: int, offset: int, count: int) -> None:
    """Send ``count`` bytes of ``fd`` from ``offset``, :data:`FILE_CHUNK_BYTES` at a time, each
    flushed before the next is read: memory stays bounded whatever the file's size.

    Raises:
        PeerGone: the peer is gone.
        FileEnded: the file has fewer than ``count`` bytes from ``offset``.
    """
    await transport.flush()
    while count > 0:
        data = os.pread(fd, min(FILE_CHUNK_BYTES, count), offset)
        if not data:
            raise FileEnded(f"the file ended {count} bytes before the end of the body")
        transport.write([data])
        offset += len(data)
        count -= len(data)
        await transport.flush()
