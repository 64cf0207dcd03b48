"""refserver relies on a few private internals of its dependencies, all in
refserver/protocol/internals.py. These tests fail loudly, naming the internal, when a new
release moves one of them."""

from __future__ import annotations

import socket
import ssl

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSStream

from refserver.protocol import internals


@pytest.mark.anyio
async def test_asyncio_transport_is_closing_is_reachable(anyio_backend_name: str) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener:
        sock = listener.extra(anyio.abc.SocketAttribute.raw_socket)
        assert isinstance(sock, socket.socket)
        port = sock.getsockname()[1]
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            is_closing = internals.asyncio_is_closing(stream)
            if anyio_backend_name == "asyncio":
                assert is_closing is not None, "anyio moved its asyncio SocketStream._transport"
                assert is_closing() is False
            else:
                assert is_closing is None


async def test_anyio_tls_stream_outgoing_bytes_are_reachable(anyio_backend_name: str) -> None:
    """refserver's close_notify (runtime/tls.py) writes what the SSLObject put in anyio's
    TLSStream._write_bio, unless TLSStream._broken says a write was cut short."""
    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    found: list[tuple[object, bool]] = []
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def handle(stream: anyio.abc.SocketStream) -> None:
            secure = await TLSStream.wrap(stream, server_side=True, ssl_context=server_context)
            found.append((internals.tls_outgoing(secure), internals.tls_broken(secure)))
            await secure.aclose()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            with anyio.fail_after(5):
                client = await anyio.connect_tcp(
                    "127.0.0.1", port, ssl_context=client_context, tls_standard_compatible=False
                )
                async with client:
                    with pytest.raises(anyio.EndOfStream):
                        await client.receive()
            tg.cancel_scope.cancel()
    ((bio, broken),) = found
    assert isinstance(bio, ssl.MemoryBIO), "anyio moved TLSStream._write_bio"
    assert broken is False
