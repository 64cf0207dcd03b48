"""The one place where I/O errors become "peer gone".

Every read and write of a client connection goes through a :class:`Transport`. A read that
fails or hits EOF returns ``b""``; a write that fails raises :class:`PeerGone`. Callers
never see ``OSError``, ``anyio.BrokenResourceError`` or ``anyio.EndOfStream``.

Three kinds carry the bytes:

- :class:`AsyncioTransport`, on asyncio for plain TCP and unix sockets: an
  ``asyncio.Protocol`` of its own. Bytes that arrive wait in a small buffer until they are
  asked for (reading pauses only when it is full), and a write goes straight to the
  socket; nothing awaits unless a read finds nothing or the send buffer is full. anyio's
  own asyncio stream costs two epoll changes and a cancel scope per read and a loop pass
  per write, which was about half of the CPU per small message (benchmarks/README.md).
- :class:`SocketTransport`, on trio for plain TCP and unix sockets: the socket itself,
  waiting for readiness through anyio.
- :class:`StreamTransport`, over any anyio byte stream: TLS, in-memory streams.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import ClassVar, Protocol, Self, cast

import anyio
import anyio.abc
import anyio.lowlevel

from refserver.protocol.internals import asyncio_is_closing
from refserver.runtime.wakeup import AsyncioWakeup, Wakeup, new_wakeup

READ_SIZE_BYTES = 64 * 1024  # the most one receive() returns; also what may wait unread
# On asyncio, bytes a send() has handed over may still wait in asyncio's own buffer (below
# its high-water mark) when the connection closes: they get this long to reach the socket
# before a peer that does not read is cut off.
CLOSE_FLUSH_LIMIT_S = 5.0  # docs/decisions.md #60

Address = tuple[str, int] | tuple[str, None] | None


class PeerGone(Exception):
    """The peer can no longer be written to; ``str()`` says why."""


def describe(exc: BaseException) -> str:
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


class Receiver(Protocol):
    """A connection runtime that takes the peer's bytes as they arrive (from the event loop's
    callbacks, on a transport that :attr:`~Transport.pushes`), instead of reading them."""

    def bytes_received(self, data: bytes) -> None: ...

    def peer_left(self, why: str) -> None: ...

    def failed(self, exc: Exception) -> None: ...


class Transport:
    """A client connection's byte stream, with an outbox that keeps writes in the order the
    protocol machines produced them: one task writes at a time (:meth:`flush`), others wait
    until their bytes are written; no lock."""

    __slots__ = ("_flushing", "_outbox", "_queued", "_write_done", "_written", "gone")

    # True: the bytes can be pushed to a Receiver (push_to), writes never wait except for
    # buffer space (write_queued), and TCP can be half-closed and closed without awaiting.
    pushes: ClassVar[bool] = False

    def __init__(self) -> None:
        self.gone: str | None = None  # why the peer is gone, once it is
        self._outbox: list[bytes] = []
        self._queued = 0  # bytes queued in all
        self._written = 0  # bytes written in all
        self._flushing = False
        self._write_done: anyio.Event | None = None  # for every task waiting on a writer

    # ------------------------------------------------------------------ what subclasses do
    # A transport that does not push is read (receive) and written (send, send_eof); one
    # that pushes hands its bytes to a Receiver (push_to) and closes without awaiting
    # (half_close, close_soon).

    async def receive(self) -> bytes:
        """Bytes from the peer; ``b""`` once it closed or failed (see :attr:`gone`)."""
        raise NotImplementedError

    async def send(self, data: bytes) -> None:
        """Write ``data``; returns once it is in the socket's send buffer (or the
        transport's own, below its high-water mark). Raises PeerGone."""
        raise NotImplementedError

    def abort(self, reason: str) -> None:
        """Mark the peer gone and cut short a write that is waiting for buffer space."""
        raise NotImplementedError

    async def send_eof(self) -> None:
        """Half-close: send FIN, keep reading (RFC 6455 §7.1.1 lets the server close first)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    def addresses(self) -> tuple[Address, Address]:
        """``client`` and ``server`` for the scope."""
        raise NotImplementedError

    def new_wakeup(self) -> Wakeup:
        """A wake-up call suited to this transport's event loop."""
        return new_wakeup()

    def write_queued(self) -> None:
        """A transport that pushes writes the outbox now; others write it in :meth:`flush`."""

    def push_to(self, receiver: Receiver) -> None:
        """Hand every byte to ``receiver`` as it arrives (only where :attr:`pushes`)."""
        raise NotImplementedError

    def now(self) -> float:
        """The event loop's clock (deadlines are on it)."""
        return anyio.current_time()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run ``callback`` from the event loop at ``deadline`` (only where :attr:`pushes`)."""
        raise NotImplementedError

    def stop_pushing(self) -> None:
        """Buffer what arrives from now on, until the next :meth:`push_to`."""

    def half_close(self) -> None:
        """Send FIN once what is written has gone out (only where :attr:`pushes`)."""
        raise NotImplementedError

    def close_soon(self, reason: str, flush_limit_s: float) -> None:
        """Mark the peer gone and close TCP once what is written has gone out, within
        ``flush_limit_s`` (only where :attr:`pushes`)."""
        raise NotImplementedError

    def set_reading(self, on: bool) -> None:
        """A transport that pushes resumes or pauses reading from the socket; the others'
        readers stop asking instead."""

    # ------------------------------------------------------------------ the outbox

    def queue(self, chunks: list[bytes]) -> None:
        """Queue bytes to write, after everything queued before."""
        self._outbox.extend(chunks)
        self._queued += sum(map(len, chunks))

    @property
    def has_queued(self) -> bool:
        """Bytes wait in the outbox (not yet taken by a writer)."""
        return bool(self._outbox)

    @property
    def unwritten(self) -> bool:
        """Some queued bytes are not yet in the socket's send buffer."""
        return self._written < self._queued

    @property
    def flushed(self) -> bool:
        """:meth:`flush` would return at once, raising nothing: every byte queued so far is
        in the socket's send buffer and no write has to wait."""
        return self._written >= self._queued

    @property
    def flushing(self) -> bool:
        """A task is writing the outbox."""
        return self._flushing

    async def flush(self) -> None:
        """Return once every byte queued so far is in the socket's send buffer. One task
        writes at a time, in queue order; raises PeerGone if the peer is gone."""
        target = self._queued
        while self._written < target:
            if self.gone is not None:
                raise PeerGone(self.gone)
            if self._flushing:
                done = self._write_done
                if done is None:
                    done = self._write_done = anyio.Event()
                await done.wait()
                continue
            self._flushing = True
            try:
                while self._outbox:
                    out = self._outbox
                    data = out[0] if len(out) == 1 else b"".join(out)
                    self._outbox = []
                    await self.send(data)
                    self._written += len(data)
            finally:
                self._flushing = False
                done = self._write_done
                if done is not None:
                    self._write_done = None
                    done.set()


class _PulledTransport(Transport):
    """A transport that is read and written by tasks (no pushing): a write that waits for
    buffer space runs in a scope that :meth:`abort` cancels."""

    __slots__ = ("_send_scope",)

    def __init__(self) -> None:
        super().__init__()
        self._send_scope: anyio.CancelScope | None = None

    def abort(self, reason: str) -> None:
        self.gone = self.gone or reason
        if self._send_scope is not None:
            self._send_scope.cancel()

    async def _abortable_write(self, write: Callable[[], Awaitable[None]]) -> None:
        """Run ``write`` in a scope that :meth:`abort` cancels; an I/O error, an abort or a
        cut from outside leaves the transport gone."""
        scope = anyio.CancelScope()
        self._send_scope = scope
        try:
            with scope:
                await write()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = self.gone or describe(exc)
            raise PeerGone(self.gone) from None
        except BaseException:
            # Cancelled from outside (e.g. a timeout around the write): part of the bytes may
            # be on the wire, so the byte stream is torn: nothing more can be written. (Re-raised.)
            self.gone = self.gone or "a write was cut short"
            raise
        finally:
            self._send_scope = None
        if scope.cancelled_caught:
            self.gone = self.gone or "connection aborted"
            raise PeerGone(self.gone)


class StreamTransport(_PulledTransport):
    """Over an anyio byte stream."""

    __slots__ = ("_is_closing", "_stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        super().__init__()
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
        if self.gone is not None:
            raise PeerGone(self.gone)
        await self._abortable_write(partial(self._stream.send, data))
        if self._is_closing is not None and self._is_closing():
            self.gone = self.gone or "the peer closed or reset the connection"
            raise PeerGone(self.gone)

    async def send_eof(self) -> None:
        if self.gone is not None or not isinstance(self._stream, anyio.abc.SocketStream):
            return
        try:
            await self._stream.send_eof()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = describe(exc)

    async def aclose(self) -> None:
        self.abort("connection closed by the server")
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass


class SocketTransport(_PulledTransport):
    """A TCP or unix socket read and written directly, waiting for readiness through anyio:
    plain connections on trio. Neither anyio's socket stream nor trio's socket object is
    made for it (they were about a tenth of what an idle connection held), and a write
    that fits in the send buffer returns without a pass of the event loop, like asyncio's.
    A read is a checkpoint as trio's own are: cancellable before the bytes are taken, never
    after."""

    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
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

    async def send(self, data: bytes) -> None:
        if self.gone is not None:
            raise PeerGone(self.gone)
        sock = self._sock
        try:
            sent = _send(sock, data)
        except OSError as exc:
            self.gone = describe(exc)
            raise PeerGone(self.gone) from None
        if sent == len(data):
            return
        # The rest waits for room in the send buffer, in a scope that abort() cancels.
        rest = memoryview(data)[sent:]

        async def write_rest() -> None:
            nonlocal rest
            while rest:
                await anyio.wait_writable(sock)
                rest = rest[_send(sock, rest) :]

        await self._abortable_write(write_rest)

    async def send_eof(self) -> None:
        if self.gone is not None:
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.gone = describe(exc)

    async def aclose(self) -> None:
        self.abort("connection closed by the server")
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


class AsyncioTransport(Transport, asyncio.Protocol):
    """A socket served by asyncio's own transport, with this class as its protocol."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_drain_waiters",
        "_eof",
        "_loop",
        "_lost",
        "_read_paused",
        "_receiver",
        "_transport",
        "_write_paused",
        "_write_waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._chunks: list[bytes] = []  # received, not yet asked for (a list: usually empty)
        self._buffered = 0  # bytes received and not yet asked for
        self._eof = False  # the peer half-closed
        self._lost: str | None = None  # the connection ended (why), seen after the buffer
        self._read_paused = False
        self._write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._receiver: Receiver | None = None
        self._drain_waiters = 0  # tasks waiting in flush() for buffer space

    pushes = True

    @property
    def flushing(self) -> bool:
        return self._drain_waiters > 0

    @classmethod
    async def over(cls, sock: object) -> Self:
        """The transport over an accepted socket."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.connect_accepted_socket(lambda: cls(loop), sock)  # type: ignore[arg-type]
        return protocol

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream socket's transport (connect_accepted_socket) is an asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        receiver = self._receiver
        if receiver is not None:
            try:
                receiver.bytes_received(data)
            except Exception as exc:
                self._receiver_failed(exc)
            return
        # Between two receivers (the WebSocket hand-over): kept for the next one.
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= READ_SIZE_BYTES and not self._read_paused and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()  # the peer waits until a receiver takes them

    def eof_received(self) -> bool:
        self._eof = True
        receiver = self._receiver
        if receiver is not None:
            # As when a reader meets EOF: nothing more is written to a peer that has left.
            self.gone = self.gone or "peer closed the connection"
            try:
                receiver.peer_left("peer closed the connection")
            except Exception as exc:
                self._receiver_failed(exc)
        return True  # keep the writing side open: the close echo may still go out

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self._lost = describe(exc)
        elif self._eof:
            self._lost = "peer closed the connection"
        else:
            self._lost = "connection closed"
        _wake(self._write_waiter)
        receiver = self._receiver
        if receiver is not None:
            self._receiver = None  # nothing comes after this
            self.gone = self.gone or self._lost
            try:
                receiver.peer_left(self._lost)
            except Exception as exc:
                receiver.failed(exc)

    def _receiver_failed(self, exc: Exception) -> None:
        receiver = self._receiver
        self._receiver = None
        if self._transport is not None:
            self._transport.abort()
        if receiver is not None:
            receiver.failed(exc)

    # ------------------------------------------------------------------ pushing

    def push_to(self, receiver: Receiver) -> None:
        """From now on hand every byte to ``receiver`` as it arrives, starting with what is
        buffered, and tell it when the peer leaves."""
        self._receiver = receiver
        while self._chunks and self._receiver is receiver:
            chunk = self._chunks.pop(0)
            self._buffered -= len(chunk)
            try:
                receiver.bytes_received(chunk)
            except Exception as exc:
                self._receiver_failed(exc)
                return
        if self._receiver is not receiver:
            return
        if self._lost is not None or self._eof:
            self._receiver = None if self._lost is not None else receiver
            self.gone = self.gone or self._lost or "peer closed the connection"
            try:
                receiver.peer_left(self._lost or "peer closed the connection")
            except Exception as exc:
                self._receiver_failed(exc)
            return
        if self._read_paused:
            self.set_reading(True)

    def stop_pushing(self) -> None:
        """Buffer what arrives from now on, until the next :meth:`push_to`."""
        self._receiver = None

    def now(self) -> float:
        return self._loop.time()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_at(deadline, callback)

    def set_reading(self, on: bool) -> None:
        """Resume or pause reading from the socket (backpressure, RFC 6455 has none of its own)."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._read_paused is not on:
            return
        self._read_paused = not on
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def write_queued(self) -> None:
        """Hand the outbox to asyncio's transport now, in order (it never blocks: what the
        socket does not take waits in asyncio's buffer). Nothing is written once the peer is
        gone: then :meth:`flush` raises PeerGone."""
        if not self._outbox or self.gone is not None:
            return
        transport = self._transport
        if self._lost is not None or transport is None or transport.is_closing():
            self.gone = self._lost or "the peer closed or reset the connection"
            return
        out = self._outbox
        data = out[0] if len(out) == 1 else b"".join(out)
        self._outbox = []
        transport.write(data)
        if transport.is_closing():
            # asyncio takes a write to a connection the peer has reset and reports the error
            # later (connection_lost); its transport knows at once that it is closing.
            self.gone = self._lost or "the peer closed or reset the connection"
            return
        self._written += len(data)

    @property
    def flushed(self) -> bool:
        # write_queued() ran when the bytes were queued; asyncio's buffer below its
        # high-water mark means nothing to wait for.
        return self._written >= self._queued and not self._write_paused

    async def flush(self) -> None:
        """Write the outbox, then wait while asyncio's buffer is above its high-water mark
        (backpressure); raises PeerGone if the bytes cannot be written."""
        self.write_queued()
        if self._written < self._queued:
            raise PeerGone(self.gone or "connection closed")
        while self._write_paused:
            # A connection that is closing still writes what asyncio holds: the bytes reach
            # the peer and this returns, as it does on trio (docs/decisions.md #63). Only
            # a lost connection (reset, or aborted: the bytes dropped) raises.
            if self._lost is not None:
                raise PeerGone(self.gone or self._lost)
            waiter = self._write_waiter
            if waiter is None or waiter.done():
                waiter = self._write_waiter = self._loop.create_future()
            self._drain_waiters += 1
            try:
                # Shielded: other writers wait on the same future, and a cancelled one must
                # not cancel it for them.
                await asyncio.shield(waiter)
            except BaseException:
                self.gone = self.gone or "a write was cut short"
                raise
            finally:
                self._drain_waiters -= 1
        if self.gone is not None and self._written < self._queued:
            raise PeerGone(self.gone)

    def half_close(self) -> None:
        """Send FIN once what is written has gone out; keep reading (RFC 6455 §7.1.1)."""
        transport = self._transport
        if self.gone is None and transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()

    def close_soon(self, reason: str, flush_limit_s: float) -> None:
        """Mark the peer gone (``reason``) and close TCP once what is written has gone out,
        or after ``flush_limit_s`` (0: at once, dropping it)."""
        if flush_limit_s <= 0:
            self.abort(reason)
            return
        self.gone = self.gone or reason
        self._receiver = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():
            self._loop.call_later(flush_limit_s, self._abort_unless_lost)

    def _abort_unless_lost(self) -> None:
        """The bound of :meth:`close_soon`: drop what is left unless the connection has
        ended meanwhile (asyncio's transport must not be aborted after connection_lost)."""
        if self._lost is None and self._transport is not None:
            self._transport.abort()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        _wake(self._write_waiter)

    # ------------------------------------------------------------------ Transport

    def addresses(self) -> tuple[Address, Address]:
        transport = self._transport
        if transport is None:
            return None, None
        return addresses(transport.get_extra_info("sockname"), transport.get_extra_info("peername"))

    def new_wakeup(self) -> Wakeup:
        return AsyncioWakeup(self._loop)

    def abort(self, reason: str) -> None:
        """Mark the peer gone and close TCP at once, dropping what asyncio holds: a write
        waiting for buffer space raises PeerGone once the connection is lost."""
        self.gone = self.gone or reason
        self._receiver = None
        if self._lost is None and self._transport is not None:
            self._transport.abort()
        _wake(self._write_waiter)

    async def aclose(self) -> None:
        self.close_soon("connection closed by the server", CLOSE_FLUSH_LIMIT_S)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
