"""The seam between the connection drivers and the event loop: :class:`Transport`, what every
transport does alike; its subclasses move the bytes (docs/implementation.md#one-transport-seam).

I/O errors become "peer gone" here and nowhere else: a transport says why the peer left
(:func:`describe`) and a write that cannot be made raises :class:`PeerGone`. Callers never
see ``OSError``, ``anyio.BrokenResourceError`` or ``anyio.EndOfStream``.
"""

from __future__ import annotations

import errno
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import anyio

READ_SIZE_BYTES = 64 * 1024  # the most one read takes; also what may wait unread between receivers
FILE_CHUNK_BYTES = 256 * 1024  # the most of a file body read into memory at once (send_file)
CLOSE_FLUSH_LIMIT_S = 5.0  # what is written gets this long to go out at close (docs/decisions.md#close-flushes-for-5s)
IO_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)  # the peer is gone

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
    def cancel(self) -> None: ...


class Transport(ABC):
    """One client connection, as the drivers see it; each subclass moves the bytes its own way."""

    __slots__ = ("_lost", "_read_ended", "_receiver", "_refused", "gone")

    def __init__(self) -> None:
        self.gone: str | None = None  # why the peer is gone (or the connection closing), once it is
        self._receiver: Receiver | None = None
        self._read_ended: str | None = None  # the peer's EOF or a failed read: why
        self._refused = False  # bytes were given to write() once the peer was gone
        self._lost: str | None = None  # nothing more can be written: why

    def run(self, main: Callable[[], Awaitable[None]]) -> Awaitable[None]:
        """Run ``main`` (the driver) with whatever tasks the transport needs beside it. (Here
        ``main()`` itself: awaiting it directly spares every resumption of the driver a frame.)"""
        return main()

    @abstractmethod
    def addresses(self) -> tuple[Address, Address]:
        """Give ``client`` and ``server`` for the scope."""

    def now(self) -> float:
        """Read the event loop's clock (deadlines are on it)."""
        return anyio.current_time()

    @abstractmethod
    def call_at(self, deadline: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` at ``deadline``, as the peer's bytes are run: with no await."""

    # ------------------------------------------------------------------ reading

    def push_to(self, receiver: Receiver) -> None:
        """From now on hand every byte to ``receiver`` as it arrives, starting with what
        arrived since the last receiver, and tell it when the peer leaves."""
        self._receiver = receiver
        if self._read_ended is not None:
            self._peer_left(self._read_ended)
        else:
            self.set_reading(True)

    def stop_pushing(self) -> None:
        """Keep what arrives from now on for the next :meth:`push_to` (the WebSocket hand-over)."""
        self._receiver = None
        self.set_reading(False)

    @abstractmethod
    def set_reading(self, on: bool) -> None:
        """Resume or pause reading from the socket (backpressure)."""

    def data_received(self, data: bytes) -> None:
        """Hand the peer's bytes to the receiver (none: the connection is closing)."""
        receiver = self._receiver
        if receiver is not None:
            try:
                receiver.bytes_received(data)
            except Exception as exc:
                self._receiver_failed(exc)

    def _peer_left(self, why: str) -> None:
        """Tell the receiver the peer has left; nothing more is written to it."""
        self._read_ended = why
        receiver = self._receiver
        if receiver is not None:
            self.gone = self.gone or why
            try:
                receiver.peer_left(why)
            except Exception as exc:
                self._receiver_failed(exc)

    def _receiver_failed(self, exc: Exception) -> None:
        receiver = self._receiver
        self.abort("internal error")
        if receiver is not None:
            receiver.failed(exc)

    # ------------------------------------------------------------------ writing

    @abstractmethod
    def write(self, chunks: list[bytes]) -> None:
        """Write ``chunks`` after everything written before; never waits. Nothing is written
        once the peer is gone: then :meth:`flush` raises PeerGone."""

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        """Write ``count`` bytes of the file ``fd`` from ``offset`` after everything written
        before, and return once they are written as :meth:`flush` counts it. Here by bounded
        reads (docs/implementation.md#file-bodies). The file's position is not used; ``fd`` stays open.

        Raises:
            PeerGone: the peer is gone.
            FileEnded: the file has fewer than ``count`` bytes from ``offset``.
        """
        await self.flush()
        while count > 0:
            data = os.pread(fd, min(FILE_CHUNK_BYTES, count), offset)
            if not data:
                raise FileEnded(f"the file ended {count} bytes before the end of the body")
            self.write([data])
            offset += len(data)
            count -= len(data)
            await self.flush()

    @property
    @abstractmethod
    def flushed(self) -> bool:
        """Tell whether :meth:`flush` would return at once, raising nothing."""

    @property
    @abstractmethod
    def write_blocked(self) -> bool:
        """Tell whether written bytes wait for room in the socket's send buffer (the peer reads slowly)."""

    @abstractmethod
    async def flush(self) -> None:
        """Return once what was written has room: it is in the socket's send buffer, or in the
        transport's own below its high-water mark. Raises PeerGone if it cannot be written."""

    # ------------------------------------------------------------------ closing

    @abstractmethod
    def half_close(self) -> None:
        """Send FIN once what is written has gone out; keep reading (RFC 6455 §7.1.1)."""

    def close_soon(self, reason: str, flush_limit_s: float) -> None:
        """Mark the peer gone (``reason``) and close TCP once what is written has gone out,
        or after ``flush_limit_s`` (0: at once, dropping it)."""
        if flush_limit_s <= 0:
            self.abort(reason)
            return
        self.gone = self.gone or reason
        self._receiver = None
        if self._close():
            self.call_at(self.now() + flush_limit_s, partial(self.abort, reason))

    @abstractmethod
    def _close(self) -> bool:
        """Close TCP once what is written has gone out; whether bytes still wait."""

    @abstractmethod
    def abort(self, reason: str) -> None:
        """Mark the peer gone and close TCP at once, dropping what is not yet written."""

    async def aclose(self) -> None:
        """Close, letting what is written go out for up to CLOSE_FLUSH_LIMIT_S."""
        self.close_soon("connection closed by the server", CLOSE_FLUSH_LIMIT_S)


def describe(exc: BaseException) -> str:
    """Tell why the peer is gone, from the I/O error that says so."""
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
    """Give the ``client`` and ``server`` scope values (www spec 2.5; 2.2 for unix sockets) from a
    socket's local and remote addresses (None when unknown)."""
    if isinstance(local, str):
        return None, (local, None)  # a unix socket's client has no address
    if not isinstance(local, tuple):
        return None, None
    client = (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else None  # None: reset already
    return client, (str(local[0]), int(local[1]))


def socket_addresses(sock: socket.socket) -> tuple[Address, Address]:
    """Give the :func:`addresses` of a connected socket."""
    try:
        remote = sock.getpeername()
    except OSError:  # a TCP client that already reset
        remote = None
    return addresses(sock.getsockname(), remote)
