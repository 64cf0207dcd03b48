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
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, TextMessage

from refserver.protocol import internals
from tests.support import close_frame, frame


def server_wire() -> Connection:
    wire = Connection(ConnectionType.SERVER)
    internals.accept_registered_close_codes(wire)
    return wire


class TestWsprotoInternals:
    def test_frame_protocol_with_process_close_is_where_it_was(self) -> None:
        proto = internals.wire_frame_protocol(Connection(ConnectionType.SERVER))
        assert callable(proto._process_close), "wsproto moved Connection._proto._process_close"

    @pytest.mark.parametrize("code", [1012, 1013, 1014])
    def test_registered_close_codes_from_the_peer_are_accepted(self, code: int) -> None:
        wire = server_wire()
        wire.receive_data(close_frame(code, "later"))
        events = list(wire.events())
        assert [(type(e), e.code, e.reason) for e in events if isinstance(e, CloseConnection)] == [
            (CloseConnection, code, "later")
        ]
        assert not internals.is_parse_failure(wire)

    def test_a_parse_failure_leaves_the_state_open(self) -> None:
        wire = server_wire()
        wire.receive_data(frame(0x1, b"\xff"))  # invalid UTF-8
        (event,) = [e for e in wire.events() if not isinstance(e, TextMessage)]
        assert isinstance(event, CloseConnection) and event.code == 1007
        assert internals.is_parse_failure(wire), "wsproto now changes state on a parse failure"

    def test_a_close_frame_changes_the_state(self) -> None:
        wire = server_wire()
        wire.receive_data(close_frame(1000))
        list(wire.events())
        assert not internals.is_parse_failure(wire)


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
