"""The one place where I/O errors become "peer gone".

Every read and write of a client connection goes through :class:`Transport`. A read that
fails or hits EOF returns ``b""``; a write that fails raises :class:`PeerGone`. Callers
never see ``OSError``, ``anyio.BrokenResourceError`` or ``anyio.EndOfStream``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import anyio
import anyio.abc

from refserver.protocol.internals import asyncio_is_closing

READ_SIZE_BYTES = 64 * 1024


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


class Transport:
    """A client connection's byte stream, with an outbox that keeps writes in the order the
    protocol machines produced them: one task writes at a time (:meth:`flush`), others wait
    until their bytes are written; no lock."""

    __slots__ = (
        "_flushing",
        "_is_closing",
        "_outbox",
        "_queued",
        "_send_scope",
        "_stream",
        "_write_done",
        "_written",
        "gone",
        "interrupted_write",
    )

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self.gone: str | None = None  # why the peer is gone, once it is
        self._send_scope: anyio.CancelScope | None = None
        # asyncio accepts a write to a connection the peer has reset and reports the error
        # later, through connection_lost; its transport knows at once that it is closing.
        # (trio raises from the write itself.)
        self._is_closing: Callable[[], bool] | None = asyncio_is_closing(stream)
        self.interrupted_write = False  # a write was cut short: the byte stream is torn
        self._outbox: list[bytes] = []
        self._queued = 0  # bytes queued in all
        self._written = 0  # bytes written in all
        self._flushing = False
        self._write_done: anyio.Event | None = None

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

    # ------------------------------------------------------------------ the stream

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
        """Write ``data``; returns once it is in the socket's send buffer."""
        if self.gone is not None:
            raise PeerGone(self.gone)
        scope = anyio.CancelScope()
        self._send_scope = scope
        try:
            with scope:
                await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.gone = self.gone or describe(exc)
            raise PeerGone(self.gone) from None
        except BaseException:
            # Cancelled from outside (e.g. a timeout around the write): part of ``data`` may
            # be on the wire, so the byte stream is torn: nothing more can be written.
            self.interrupted_write = True
            self.gone = self.gone or "a write was cut short"
            raise
        finally:
            self._send_scope = None
        if scope.cancelled_caught:
            self.interrupted_write = True
            self.gone = self.gone or "connection aborted"
            raise PeerGone(self.gone or "connection aborted")
        if self._is_closing is not None and self._is_closing():
            self.gone = self.gone or "the peer closed or reset the connection"
            raise PeerGone(self.gone)

    def abort(self, reason: str) -> None:
        """Mark the peer gone and cut short a write that is waiting for buffer space."""
        self.gone = self.gone or reason
        if self._send_scope is not None:
            self._send_scope.cancel()

    async def send_eof(self) -> None:
        """Half-close: send FIN, keep reading (RFC 6455 §7.1.1 lets the server close first)."""
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
