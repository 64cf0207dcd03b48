"""The transport whose bytes a reader and a writer task move, over a byte stream: the socket
itself on trio (:class:`SocketIO`), or an anyio byte stream (TLS, in-memory pipes) on either
backend (docs/implementation.md#one-transport-seam). The reader also runs the timers.
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.lowlevel

from refserver.runtime.tasks import TaskGroup, new_wakeup, open_task_group
from refserver.runtime.transport import (
    IO_ERRORS,
    READ_SIZE_BYTES,
    Address,
    PeerGone,
    Transport,
    describe,
    socket_addresses,
)


class TaskTransport(Transport):
    """The driver's transport over one byte stream."""

    __slots__ = (
        "_closed",
        "_closing",
        "_drained",
        "_eof_owed",
        "_io_closed",
        "_outbox",
        "_queued",
        "_reader_scope",
        "_reader_wakeup",
        "_reading",
        "_task_group",
        "_timers",
        "_write_scope",
        "_writer_running",
        "_written",
        "io",
    )

    def __init__(self, io: SocketIO | anyio.abc.ByteStream) -> None:
        super().__init__()
        self.io = io
        self._reading = True
        self._timers: list[_Timer] = []
        self._reader_scope: anyio.CancelScope | None = None
        self._reader_wakeup = new_wakeup()
        self._outbox: list[bytes] = []  # written by the driver, not yet by the writer
        self._queued = 0  # bytes given to write() in all, but refused ones
        self._written = 0  # bytes that left the transport's own hands in all
        self._write_scope: anyio.CancelScope | None = None  # while the writer writes; abort() cancels it
        self._writer_running = False
        self._task_group: TaskGroup | None = None  # where the writer starts
        self._drained: anyio.Event | None = None  # for tasks waiting on the writer
        self._eof_owed = False
        self._closing = False  # the socket closes once the outbox is written
        self._closed = False  # closing the socket has begun
        self._io_closed = False

    async def run(self, main: Callable[[], Awaitable[None]]) -> None:
        failure: Exception | None = None
        async with open_task_group() as tg:
            self._task_group = tg
            tg.start_soon(self._read)
            try:
                await main()
            except Exception as exc:
                failure = exc  # raised below, outside the task group's exception group
            finally:
                tg.cancel_scope.cancel()
                self.abort("connection closed")
                await self._close_io()
        if failure is not None:
            raise failure

    # ------------------------------------------------------------------ the reader task

    async def _read(self) -> None:
        io = self.io
        while True:
            # One cancel scope for many reads (docs/implementation.md#one-transport-seam); it
            # ends when the earliest timer is due.
            with anyio.CancelScope(deadline=min((t.deadline for t in self._timers), default=math.inf)) as scope:
                self._reader_scope = scope
                while True:
                    if self._receiver is None or not self._reading or self._read_ended is not None:
                        await self._reader_wakeup.wait()
                        continue
                    if self._lost is not None:  # a failed write: that failure is the news
                        self._peer_left(self._lost)
                        continue
                    try:
                        data = await io.receive(READ_SIZE_BYTES)
                    except anyio.EndOfStream:
                        self._peer_left(self._lost or "peer closed the connection")
                    except IO_ERRORS as exc:
                        self._peer_left(self._lost or describe(exc))
                    else:
                        self.data_received(data)
            self._reader_scope = None
            self._run_due_timers()

    def set_reading(self, on: bool) -> None:
        self._reading = on
        if on:
            self._reader_wakeup.fire()

    # ------------------------------------------------------------------ timers (run by the reader)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self._timers, deadline, callback)
        self._timers.append(timer)
        scope = self._reader_scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline
        return timer

    def _run_due_timers(self) -> None:
        now = anyio.current_time()
        for timer in [timer for timer in self._timers if timer.deadline <= now]:
            if timer in self._timers:  # not cancelled by an earlier one
                self._timers.remove(timer)
                try:
                    timer.callback()
                except Exception as exc:
                    self._receiver_failed(exc)

    # ------------------------------------------------------------------ the writer task

    def write(self, chunks: list[bytes]) -> None:
        data = b"".join(chunks)
        if self.gone is not None:  # (set whenever _lost is)
            self._refused = self._refused or bool(data)
            return
        size = len(data)
        self._queued += size
        io = self.io
        if not self._outbox and self._write_scope is None:
            if self._read_ended is not None:  # the peer has left: nothing more is written
                self._lose(self._read_ended)
                return
            if isinstance(io, SocketIO):  # (what the send buffer takes now, without the writer)
                try:
                    sent = _send(io.sock, data)
                except OSError as exc:
                    self._lose(describe(exc))
                    return
                self._written += sent
                if sent == size:
                    return
                data = data[sent:]
        self._outbox.append(data)
        self._start_writer()

    def _start_writer(self) -> None:
        if not self._writer_running and self._task_group is not None:
            self._writer_running = True
            self._task_group.start_soon(self._write)

    async def _write(self) -> None:
        """Write the outbox, then half-close or close as asked; end when nothing is left."""
        io = self.io
        try:
            while self._lost is None:
                if self._outbox:
                    if self._read_ended is not None:
                        self._lose(self._read_ended)
                        return
                    data = b"".join(self._outbox)
                    self._outbox = []
                    try:
                        with anyio.CancelScope() as self._write_scope:
                            await io.send(data)
                    except IO_ERRORS as exc:
                        self._lose(self._read_ended or describe(exc))
                        return
                    finally:
                        self._write_scope = None
                    if self._lost is not None:
                        return  # aborted: part of it may be on the wire; nothing more can follow
                    self._written += len(data)
                    self._wake_flushers()
                elif self._eof_owed and not self._closing:
                    self._eof_owed = False
                    if self._read_ended is None:
                        try:
                            await io.send_eof()
                        except IO_ERRORS as exc:
                            self._lose(describe(exc))
                else:
                    return
        finally:
            self._writer_running = False
            self._wake_flushers()
            if self._closing:
                await self._close_io()  # the socket closes once what was written has gone out

    def _lose(self, reason: str) -> None:
        """Stop the writer: nothing more is written."""
        self._lost = self._lost or reason
        self.gone = self.gone or reason
        self._wake_flushers()

    def _wake_flushers(self) -> None:
        event = self._drained
        if event is not None:
            self._drained = None
            event.set()

    async def _wait_for_writer(self) -> None:
        event = self._drained
        if event is None:
            event = self._drained = anyio.Event()
        await event.wait()

    @property
    def flushed(self) -> bool:
        return not self._refused and self._written >= self._queued

    @property
    def write_blocked(self) -> bool:
        return self._write_scope is not None  # (a write the socket took at once never reaches the writer)

    async def flush(self) -> None:
        target = self._queued
        if self._refused:
            raise PeerGone(self.gone or "connection closed")
        while self._written < target:
            if self._lost is not None:
                raise PeerGone(self.gone or self._lost)
            await self._wait_for_writer()

    # ------------------------------------------------------------------ closing

    def half_close(self) -> None:
        # (A TLS stream cannot: docs/decisions.md#tls-close-notify.)
        if self.gone is None and isinstance(self.io, SocketIO | anyio.abc.SocketStream):
            self._eof_owed = True
            self._start_writer()

    def _close(self) -> bool:
        if self._closing:
            return False
        self._closing = True
        self._start_writer()
        return bool(self._outbox) or self._write_scope is not None

    def abort(self, reason: str) -> None:
        self._receiver = None
        self._closing = True
        self._lose(reason)
        if self._write_scope is not None:
            self._write_scope.cancel()  # a write waiting for buffer space
        self._start_writer()  # which closes the socket

    async def aclose(self) -> None:
        await super().aclose()
        while not self._io_closed:
            await self._wait_for_writer()

    async def _close_io(self) -> None:
        if not self._closed:
            self._closed = True
            with anyio.CancelScope(shield=True), contextlib.suppress(*IO_ERRORS):
                await self.io.aclose()
            self._io_closed = True
            self._wake_flushers()

    def addresses(self) -> tuple[Address, Address]:
        io = self.io
        sock = io.sock if isinstance(io, SocketIO) else io.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if sock is None:  # an in-memory stream
            return None, None
        return socket_addresses(sock)


@dataclass(slots=True, eq=False)
class _Timer:
    """What :meth:`TaskTransport.call_at` returns: cancelled by taking it off the list."""

    _timers: list[_Timer]
    deadline: float
    callback: Callable[[], None]

    def cancel(self) -> None:
        if self in self._timers:
            self._timers.remove(self)


# ---------------------------------------------------------------------- the socket itself


class SocketIO:
    """A TCP or unix socket read and written directly, with ``receive``, ``send``, ``send_eof``
    and ``aclose`` as an anyio byte stream has them (not the rest of one: no ``extra``). A
    read is a checkpoint as trio's own are: cancellable before the bytes are taken, never
    after. Errors are the socket's own (``OSError``) and anyio's (``EndOfStream``,
    ``ClosedResourceError``)."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock

    async def receive(self, max_bytes: int = READ_SIZE_BYTES) -> bytes:
        sock = self.sock
        await anyio.lowlevel.checkpoint_if_cancelled()
        data = _recv(sock, max_bytes)
        if data is not None:
            await anyio.lowlevel.cancel_shielded_checkpoint()
        while data is None:  # (not awaited inside an except: that would keep the error)
            await anyio.wait_readable(sock)
            data = _recv(sock, max_bytes)
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, data: bytes) -> None:
        """Write ``data``; returns once it is in the socket's send buffer."""
        sock = self.sock
        rest = memoryview(data)[_send(sock, data) :]
        while rest:  # the rest waits for room in the send buffer
            await anyio.wait_writable(sock)
            rest = rest[_send(sock, rest) :]

    async def send_eof(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    async def aclose(self) -> None:
        sock = self.sock
        if sock.fileno() >= 0:
            anyio.notify_closing(sock)  # a task still waiting on it gets ClosedResourceError
            sock.close()


def _recv(sock: socket.socket, max_bytes: int) -> bytes | None:
    """Return what the socket holds (``b""``: EOF), or None if nothing yet."""
    try:
        return sock.recv(max_bytes)
    except BlockingIOError:
        return None


def _send(sock: socket.socket, data: bytes | memoryview) -> int:
    """Return how much of ``data`` the send buffer took."""
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0
