"""The transport on asyncio, for plain TCP and unix sockets: an ``asyncio.Protocol`` of its own
(docs/implementation.md#one-transport-seam)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Self, cast

from refserver.runtime.transport import Address, FileEnded, PeerGone, Transport, addresses, describe


class AsyncioTransport(Transport, asyncio.Protocol):
    """A socket served by asyncio's own transport, with this class as its protocol."""

    __slots__ = ("_loop", "_transport", "_write_paused", "_write_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._transport: asyncio.Transport  # set by connection_made, before over() returns
        self._write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None

    @classmethod
    async def over(cls, sock: object) -> Self:
        """Make the transport over an accepted socket."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.connect_accepted_socket(lambda: cls(loop), sock)  # type: ignore[arg-type]
        return protocol

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream socket's transport (connect_accepted_socket) is an asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)

    # (data_received is the Transport's: between two receivers reading is paused.)

    def eof_received(self) -> bool:
        self._peer_left("peer closed the connection")
        return True  # keep the writing side open: the close echo may still go out

    def connection_lost(self, exc: Exception | None) -> None:
        # (Once asyncio's buffer is written or dropped: nothing more can be.)
        self._lost = describe(exc) if exc is not None else self._read_ended or "connection closed"
        _wake(self._write_waiter)
        self._peer_left(self._lost)
        self._receiver = None  # nothing comes after this

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        _wake(self._write_waiter)

    # ------------------------------------------------------------------ reading

    def set_reading(self, on: bool) -> None:
        # (asyncio's transport does nothing when asked twice, or once it is closing.)
        if on:
            self._transport.resume_reading()
        else:
            self._transport.pause_reading()

    # ------------------------------------------------------------------ writing

    def write(self, chunks: list[bytes]) -> None:
        data = b"".join(chunks)
        if self.gone is None:
            transport = self._transport
            if not transport.is_closing():  # (it is once the connection is lost)
                transport.write(data)
                # asyncio takes a write to a connection the peer has reset and reports the error
                # later (connection_lost); its transport knows at once that it is closing.
                if not transport.is_closing():
                    return
            self.gone = self._lost or "the peer closed or reset the connection"
        self._refused = self._refused or bool(data)

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        # asyncio's loop.sendfile: os.sendfile on a plain socket (its own fallback reads
        # otherwise); it waits for asyncio's write buffer to drain first.
        await self.flush()
        transport = self._transport
        if self.gone is not None or transport.is_closing():
            raise PeerGone(self.gone or self._lost or "connection closed")
        position = os.lseek(fd, 0, os.SEEK_CUR)  # loop.sendfile moves it; the file is the app's
        with os.fdopen(fd, "rb", closefd=False) as file:
            try:
                sent = await self._loop.sendfile(transport, file, offset, count)
            except (ConnectionError, RuntimeError) as exc:
                # RuntimeError: asyncio's "Connection is closed" for a transport closing meanwhile.
                self.gone = self.gone or describe(exc)
                raise PeerGone(self.gone) from exc
            finally:
                os.lseek(fd, position, os.SEEK_SET)
        if sent < count:
            raise FileEnded(f"the file ended {count - sent} bytes before the end of the body")

    @property
    def flushed(self) -> bool:
        # asyncio's buffer below its high-water mark means nothing to wait for.
        return not self._refused and not self._write_paused

    @property
    def write_blocked(self) -> bool:
        return self._write_paused

    async def flush(self) -> None:
        if self._refused:
            raise PeerGone(self.gone or "connection closed")
        while self._write_paused:
            # A connection that is closing still writes what asyncio holds: the bytes reach
            # the peer and this returns (docs/decisions.md#blocked-send-delivered-returns).
            # Only a lost connection (reset, or aborted: the bytes dropped) raises.
            if self._lost is not None:
                raise PeerGone(self.gone or self._lost)
            waiter = self._write_waiter
            if waiter is None or waiter.done():
                waiter = self._write_waiter = self._loop.create_future()
            # Shielded: other writers wait on the same future, and a cancelled one must not
            # cancel it for them. (A cancelled wait leaves the bytes to go out whole.)
            await asyncio.shield(waiter)

    # ------------------------------------------------------------------ closing

    def half_close(self) -> None:
        # (asyncio's transport does nothing once it is closing.)
        transport = self._transport
        if self.gone is None and transport.can_write_eof():
            transport.write_eof()

    def _close(self) -> bool:
        transport = self._transport
        if transport.is_closing():
            return False
        transport.close()
        return transport.get_write_buffer_size() > 0

    def abort(self, reason: str) -> None:
        self.gone = self.gone or reason
        self._receiver = None
        # (asyncio's transport must not be aborted after connection_lost.)
        if self._lost is None:
            self._transport.abort()
        _wake(self._write_waiter)

    # ------------------------------------------------------------------ the rest

    def addresses(self) -> tuple[Address, Address]:
        transport = self._transport
        return addresses(transport.get_extra_info("sockname"), transport.get_extra_info("peername"))

    def now(self) -> float:
        return self._loop.time()

    def call_at(self, deadline: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_at(deadline, callback)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
