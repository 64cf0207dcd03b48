"""The transport over a byte stream that tasks read and write: the socket itself on trio, and
any anyio byte stream (TLS, in-memory pipes) on either backend.

Two tasks beside the driver give it the interface of ``runtime/transport.py``, the one
asyncio's event loop gives for free:

- the reader reads while the driver wants bytes and hands them over; it also runs the
  timers (its cancel scope carries the earliest deadline);
- the writer writes what the driver wrote, in order, then half-closes or closes TCP when
  asked. It runs only while there is something to do: a write the socket takes at once is
  made by the driver's own call (trio), and an idle connection holds no writer task.

Below them, :class:`SocketIO` and :class:`StreamIO` read and write one socket or stream.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import anyio.abc
import anyio.lowlevel

from refserver.protocol.internals import asyncio_is_closing
from refserver.runtime.tasks import TaskGroup, open_task_group
from refserver.runtime.transport import (
    CLOSE_FLUSH_LIMIT_S,
    READ_SIZE_BYTES,
    Address,
    PeerGone,
    Receiver,
    addresses,
    describe,
    send_file_by_reads,
)
from refserver.runtime.wakeup import Wakeup, new_wakeup


class TaskTransport:
    """The driver's transport over one socket or stream, with a reader and a writer task."""

    __slots__ = (
        "_closed",
        "_closing",
        "_drained",
        "_eof_owed",
        "_io_closed",
        "_lost",
        "_outbox",
        "_queued",
        "_read_ended",
        "_reader_scope",
        "_reader_wakeup",
        "_reading",
        "_receiver",
        "_refused_from",
        "_task_group",
        "_timers",
        "_write_scope",
        "_writer_running",
        "_writing",
        "_written",
        "gone",
        "io",
    )

    def __init__(self, io: SocketIO | StreamIO) -> None:
        self.io = io
        self.gone: str | None = None
        self._receiver: Receiver | None = None
        self._reading = True
        self._read_ended: str | None = None  # EOF or a failed read: why
        self._timers: list[_Timer] = []
        self._reader_scope: anyio.CancelScope | None = None
        self._reader_wakeup = new_wakeup()
        self._outbox: list[bytes] = []  # written by the driver, not yet by the writer
        self._queued = 0  # bytes given to write() in all
        self._written = 0  # bytes in the socket's send buffer in all
        self._refused_from: int | None = None  # bytes from here on were refused (peer gone)
        self._writing = False
        self._write_scope: anyio.CancelScope | None = None  # around a write; abort() cancels it
        self._writer_running = False
        self._task_group: TaskGroup | None = None  # where the writer starts
        self._drained: anyio.Event | None = None  # for tasks waiting on the writer
        self._eof_owed = False
        self._closing = False  # the socket closes once the outbox is written
        self._lost: str | None = None  # the writer stopped: nothing more is written (why)
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
            # One cancel scope for many reads (a scope per read costs trio a fifth of a small
            # echo); it ends when the earliest timer is due.
            with anyio.CancelScope(deadline=self._next_deadline()) as scope:
                self._reader_scope = scope
                while True:
                    if self._receiver is None or not self._reading or self._read_ended is not None:
                        await self._reader_wakeup.wait()
                        continue
                    data = await io.receive()
                    if data:
                        self._deliver(data)
                    else:
                        # (A failed write closes the socket: that failure is the news.)
                        self._read_ended = self._lost or io.gone or "peer closed the connection"
                        self._tell_left()
            self._reader_scope = None
            self._run_due_timers()

    def _deliver(self, data: bytes) -> None:
        receiver = self._receiver
        if receiver is None:
            return  # the connection is closing (between two receivers nothing is read)
        try:
            receiver.bytes_received(data)
        except Exception as exc:
            self._receiver_failed(exc)

    def _tell_left(self) -> None:
        receiver, why = self._receiver, self._read_ended
        if receiver is None or why is None:
            return
        self.gone = self.gone or why  # nothing more is written to a peer that has left
        try:
            receiver.peer_left(why)
        except Exception as exc:
            self._receiver_failed(exc)

    def _receiver_failed(self, exc: Exception) -> None:
        receiver = self._receiver
        self.abort("internal error")
        if receiver is not None:
            receiver.failed(exc)

    def push_to(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._tell_left()
        self.set_reading(True)

    def stop_pushing(self) -> None:
        self._receiver = None

    def set_reading(self, on: bool) -> None:
        self._reading = on
        if on:
            self._reader_wakeup.fire()

    # ------------------------------------------------------------------ timers (run by the reader)

    def now(self) -> float:
        return anyio.current_time()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self._timers, deadline, callback)
        self._timers.append(timer)
        scope = self._reader_scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline
        return timer

    def _next_deadline(self) -> float:
        return min((timer.deadline for timer in self._timers), default=math.inf)

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
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        size = len(data)
        self._queued += size
        if self.gone is not None or self._lost is not None:
            if self._refused_from is None:
                self._refused_from = self._queued - size
            return
        if not self._outbox and not self._writing:
            try:
                sent = self.io.try_send(data)
            except PeerGone as exc:
                self._lose(str(exc))
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
                    out = self._outbox
                    data = out[0] if len(out) == 1 else b"".join(out)
                    self._outbox = []
                    self._writing = True
                    try:
                        with anyio.CancelScope() as self._write_scope:
                            await io.send(data)
                    except PeerGone as exc:
                        self._lose(str(exc))
                        return
                    finally:
                        self._writing = False
                        self._write_scope = None
                    if self._lost is not None:
                        return  # aborted: part of it may be on the wire; nothing more can follow
                    self._written += len(data)
                    self._wake_flushers()
                elif self._eof_owed and not self._closing:
                    self._eof_owed = False
                    await io.send_eof()  # RFC 6455 §7.1.1: after the close frame
                else:
                    return
        finally:
            self._writer_running = False
            self._wake_flushers()
            if self._closing:
                await self._close_io()  # the socket closes once what was written has gone out

    def _lose(self, reason: str) -> None:
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

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        # No sendfile under a task's stream (TLS, trio): bounded reads (docs/decisions.md#zerocopysend).
        await send_file_by_reads(self, fd, offset, count)

    @property
    def flushed(self) -> bool:
        return self._written >= self._queued

    @property
    def write_blocked(self) -> bool:
        return self._writing  # (a write the socket took at once never reaches the writer)

    async def flush(self) -> None:
        target = self._queued
        if self._refused_from is not None and target > self._refused_from:
            raise PeerGone(self.gone or "connection closed")
        while self._written < target:
            if self._lost is not None:
                raise PeerGone(self.gone or self._lost)
            await self._wait_for_writer()

    # ------------------------------------------------------------------ closing

    def half_close(self) -> None:
        if self.gone is None:
            self._eof_owed = True
            self._start_writer()

    def close_soon(self, reason: str, flush_limit_s: float) -> None:
        if flush_limit_s <= 0:
            self.abort(reason)
            return
        self.gone = self.gone or reason
        self._receiver = None
        if self._closing:
            return
        self._closing = True
        self._start_writer()
        if self._outbox or self._writing:
            self.call_at(self.now() + flush_limit_s, partial(self.abort, reason))

    def abort(self, reason: str) -> None:
        self.gone = self.gone or reason
        self._receiver = None
        self._closing = True
        self._lose(reason)
        if self._write_scope is not None:
            self._write_scope.cancel()  # a write waiting for buffer space
        self._start_writer()  # which closes the socket

    async def aclose(self) -> None:
        self.close_soon("connection closed by the server", CLOSE_FLUSH_LIMIT_S)
        while not self._io_closed:
            await self._wait_for_writer()

    async def _close_io(self) -> None:
        if not self._closed:
            self._closed = True
            with anyio.CancelScope(shield=True):
                await self.io.aclose()
            self._io_closed = True
            self._wake_flushers()

    # ------------------------------------------------------------------ the rest

    def addresses(self) -> tuple[Address, Address]:
        return self.io.addresses()

    def new_wakeup(self) -> Wakeup:
        return new_wakeup()


class _Timer:
    """What :meth:`TaskTransport.call_at` returns: cancelled by taking it off the list."""

    __slots__ = ("_timers", "callback", "deadline")

    def __init__(self, timers: list[_Timer], deadline: float, callback: Callable[[], None]) -> None:
        self._timers = timers
        self.deadline = deadline
        self.callback = callback

    def when(self) -> float:
        return self.deadline

    def cancel(self) -> None:
        if self in self._timers:
            self._timers.remove(self)


# ---------------------------------------------------------------------- one socket or stream


class StreamIO:
    """Over an anyio byte stream."""

    __slots__ = ("_is_closing", "_stream", "gone")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.gone: str | None = None  # why the peer is gone, once it is
        self._stream = stream
        # asyncio accepts a write to a connection the peer has reset and reports the error
        # later, through connection_lost; its transport knows at once that it is closing.
        # (trio raises from the write itself.)
        self._is_closing: Callable[[], bool] | None = asyncio_is_closing(stream)

    def addresses(self) -> tuple[Address, Address]:
        stream = self._stream
        try:
            local = stream.extra(anyio.abc.SocketAttribute.local_address)
        except (anyio.TypedAttributeLookupError, OSError):
            return None, None
        try:
            remote = stream.extra(anyio.abc.SocketAttribute.remote_address)
        except (anyio.TypedAttributeLookupError, OSError):  # a TCP client already reset
            remote = None
        return addresses(local, remote)

    async def receive(self) -> bytes:
        """Bytes from the peer; ``b""`` once it closed or failed (see :attr:`gone`)."""
        if self.gone is not None:
            return b""
        try:
            return await self._stream.receive(READ_SIZE_BYTES)
        except anyio.EndOfStream:
            self.gone = "peer closed the connection"
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = describe(exc)
        return b""

    async def send(self, data: bytes) -> None:
        """Write ``data``; returns once it is in the socket's send buffer. Raises PeerGone."""
        if self.gone is not None:
            raise PeerGone(self.gone)
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = self.gone or describe(exc)
            raise PeerGone(self.gone) from None
        if self._is_closing is not None and self._is_closing():
            self.gone = self.gone or "the peer closed or reset the connection"
            raise PeerGone(self.gone)

    def try_send(self, data: bytes) -> int:
        """How much of ``data`` is written without waiting: none (a stream's writes await)."""
        if self.gone is not None:
            raise PeerGone(self.gone)
        return 0

    async def send_eof(self) -> None:
        """Half-close: send FIN, keep reading (a TLS stream cannot: docs/decisions.md#tls-close-notify)."""
        if self.gone is not None or not isinstance(self._stream, anyio.abc.SocketStream):
            return
        try:
            await self._stream.send_eof()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = describe(exc)

    async def aclose(self) -> None:
        self.gone = self.gone or "connection closed by the server"
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass


class SocketIO:
    """A TCP or unix socket read and written directly, waiting for readiness through anyio:
    plain connections on trio. Neither anyio's socket stream nor trio's socket object is
    made for it (they were about a tenth of what an idle connection held), and a write
    that fits in the send buffer returns without a pass of the event loop, like asyncio's.
    A read is a checkpoint as trio's own are: cancellable before the bytes are taken, never
    after."""

    __slots__ = ("_sock", "gone")

    def __init__(self, sock: socket.socket) -> None:
        self.gone: str | None = None  # why the peer is gone, once it is
        sock.setblocking(False)
        self._sock = sock

    def addresses(self) -> tuple[Address, Address]:
        sock = self._sock
        try:
            local = sock.getsockname()
        except OSError:
            return None, None
        try:
            remote = sock.getpeername()
        except OSError:  # a TCP client already reset
            remote = None
        return addresses(local, remote)

    async def receive(self) -> bytes:
        """Bytes from the peer; ``b""`` once it closed or failed (see :attr:`gone`)."""
        if self.gone is not None:
            return b""
        sock = self._sock
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
            data = _recv(sock)
            if data is not None:
                await anyio.lowlevel.cancel_shielded_checkpoint()
            while data is None:  # (not awaited inside an except: that would keep the error)
                await anyio.wait_readable(sock)
                data = _recv(sock)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = self.gone or describe(exc)
            return b""
        if not data:
            self.gone = "peer closed the connection"
        return data

    def try_send(self, data: bytes) -> int:
        """How much of ``data`` the send buffer takes now. Raises PeerGone."""
        if self.gone is not None:
            raise PeerGone(self.gone)
        try:
            return _send(self._sock, data)
        except OSError as exc:
            self.gone = describe(exc)
            raise PeerGone(self.gone) from None

    async def send(self, data: bytes) -> None:
        """Write ``data``; returns once it is in the socket's send buffer. Raises PeerGone."""
        sent = self.try_send(data)
        if sent == len(data):
            return
        sock = self._sock
        rest = memoryview(data)[sent:]
        try:
            while rest:  # the rest waits for room in the send buffer
                await anyio.wait_writable(sock)
                rest = rest[_send(sock, rest) :]
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = self.gone or describe(exc)
            raise PeerGone(self.gone) from None

    async def send_eof(self) -> None:
        """Half-close: send FIN, keep reading (RFC 6455 §7.1.1 lets the server close first)."""
        if self.gone is not None:
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.gone = describe(exc)

    async def aclose(self) -> None:
        self.gone = self.gone or "connection closed by the server"
        sock = self._sock
        if sock.fileno() >= 0:
            anyio.notify_closing(sock)  # a task still waiting on it gets ClosedResourceError
            sock.close()


def _recv(sock: socket.socket) -> bytes | None:
    """What the socket holds (``b""``: EOF), or None if nothing yet."""
    try:
        return sock.recv(READ_SIZE_BYTES)
    except BlockingIOError:
        return None


def _send(sock: socket.socket, data: bytes | memoryview) -> int:
    """How much of ``data`` the send buffer took."""
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0
