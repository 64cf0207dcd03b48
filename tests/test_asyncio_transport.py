"""refserver's asyncio Protocol (``runtime/asyncio_transport.py``, ``AsyncioTransport``): closing with
bytes still in asyncio's buffer (RFC 9293 §3.6: what was sent before the close is delivered)."""

from __future__ import annotations

import asyncio
import socket

import anyio
import pytest

from refserver.runtime.asyncio_transport import AsyncioTransport
from tests.support import TIMEOUT

pytestmark = pytest.mark.anyio

CHUNK = b"x" * (4 << 20)  # more than the kernel buffers take at once: some waits in asyncio's


class ObservedTransport(AsyncioTransport):
    """Says when asyncio's transport has ended."""

    __slots__ = ("lost",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.lost = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.lost.set()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
class TestRFC9293Section3_6Closing:
    async def test_what_is_buffered_goes_out_and_the_bound_then_does_nothing(self) -> None:
        server_sock, client_sock = socket.socketpair()
        with client_sock:
            transport = await ObservedTransport.over(server_sock)
            transport.write([CHUNK])
            transport.close_soon("closing", 60.0)  # the bound is armed: bytes are still buffered
            client_sock.setblocking(False)
            loop = asyncio.get_running_loop()
            received = 0
            with anyio.fail_after(TIMEOUT):
                while True:
                    data = await loop.sock_recv(client_sock, 1 << 20)
                    if not data:
                        break
                    received += len(data)
                await transport.lost.wait()  # connection_lost runs soon after the last byte
        assert received == len(CHUNK)
        # The bound fires later: asyncio's transport is gone by then, and must not be touched.
        transport.abort("the bound")
