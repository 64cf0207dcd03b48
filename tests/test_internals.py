"""refserver relies on a few private internals of its dependencies, all in
refserver/protocol/internals.py. These tests fail loudly, naming the internal, when a new
release moves one of them."""

from __future__ import annotations

import ssl

import anyio
import anyio.abc
import h11
import pytest
import trustme
from anyio.streams.tls import TLSStream
from hypothesis import given, settings
from hypothesis import strategies as st

from refserver.protocol import internals


class TestH11Internals:
    def test_the_unparsed_buffer_is_live_for_the_connections_life(self) -> None:
        conn = h11.Connection(h11.SERVER)
        unparsed = internals.h11_unparsed(conn)
        seen = []
        conn.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /next")
        seen.append(len(unparsed) == len(conn.trailing_data[0]) == 36)
        assert isinstance(conn.next_event(), h11.Request)
        assert conn.next_event() == h11.EndOfMessage()
        seen.append(len(unparsed) == len(conn.trailing_data[0]) == 9)
        conn.send(h11.Response(status_code=204, headers=[]))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()
        conn.receive_data(b" HTTP/1.1\r\nhost: x\r\n\r\n")
        assert isinstance(conn.next_event(), h11.Request)
        seen.append(len(unparsed) == len(conn.trailing_data[0]) == 0)
        conn.receive_data(b"more")
        seen.append(len(unparsed) == len(conn.trailing_data[0]) == 4)
        assert unparsed is internals.h11_unparsed(conn)
        assert seen == [True] * 4, "h11 no longer keeps Connection._receive_buffer._data for the connection's life"

    def test_the_chunk_line_start_follows_h11s_chunked_reader(self) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nab")
        assert isinstance(conn.next_event(), h11.Request)
        seen = [internals.h11_chunk_line_start(conn)]  # before the first chunk line: at 0
        assert isinstance(conn.next_event(), h11.Data)
        seen.append(internals.h11_chunk_line_start(conn))  # inside a chunk's data
        conn.receive_data(b"c")
        assert isinstance(conn.next_event(), h11.Data)
        seen.append(internals.h11_chunk_line_start(conn))  # after the data, before its CRLF
        conn.receive_data(b"\r")
        assert conn.next_event() is h11.NEED_DATA
        seen.append(internals.h11_chunk_line_start(conn))  # half the CRLF read
        conn.receive_data(b"\n0\r\n")
        assert conn.next_event() is h11.NEED_DATA
        seen.append(internals.h11_chunk_line_start(conn))  # in the trailer section
        assert seen == [0, None, 2, 1, None], "h11's ChunkedReader no longer keeps its position as it did"

    def test_header_pairs_are_the_headers_sequence(self) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-Two: a, b\r\n\r\n")
        request = conn.next_event()
        assert isinstance(request, h11.Request)
        pairs = internals.h11_header_pairs(request.headers)
        assert pairs == list(request.headers) == [(b"host", b"x"), (b"x-two", b"a, b")], "h11 moved Headers._full_items"

    def test_a_header_added_to_a_validated_response_goes_on_the_wire(self) -> None:
        head = h11.Response(status_code=200, headers=[(b"content-type", b"text/plain")], reason=b"OK")
        longer = internals.h11_response_with_header(head, b"content-length", b"2")
        assert (longer.status_code, longer.reason, longer.http_version) == (200, b"OK", b"1.1")
        assert list(longer.headers) == [(b"content-type", b"text/plain"), (b"content-length", b"2")]
        assert list(head.headers) == [(b"content-type", b"text/plain")], "the original is unchanged"
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        conn.next_event()
        conn.next_event()
        wire = conn.send(longer)
        assert wire == b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\n"
        assert conn.send(h11.Data(data=b"ok")) == b"ok", "h11 frames the body by the added Content-Length"
        assert conn.send(h11.EndOfMessage()) == b""

    @settings(max_examples=300, deadline=None)
    @given(
        request=st.sampled_from(
            [
                b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
                b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
                b"GET / HTTP/1.0\r\n\r\n",
                b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n",
            ]
        ),
        status=st.sampled_from([200, 204, 304, 404, 500]),
        headers=st.lists(
            st.sampled_from(
                [
                    (b"content-length", b"2"),
                    (b"transfer-encoding", b"chunked"),
                    (b"connection", b"close"),
                    (b"connection", b"keep-alive"),
                    (b"content-type", b"text/plain"),
                ]
            ),
            unique=True,
        ),
        body=st.sampled_from([b"", b"ok"]),
    )
    def test_a_response_head_is_sent_as_h11_sends_it(
        self, request: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        """h11_send skips h11's rebuild of a head where it would change nothing: the bytes, the
        states and the body's framing are those of h11's own send, whatever the head."""

        def send(via: object) -> list[object]:
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(request)
            conn.next_event()
            seen: list[object] = []
            for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
                try:
                    out = internals.h11_send(conn, event) if via else conn.send_with_data_passthrough(event)
                except h11.LocalProtocolError as exc:
                    seen.append(str(exc))
                else:
                    seen.append(b"".join(out or []))
                seen.append((conn.our_state, conn.their_state, conn.their_http_version))
            return seen

        assert send(internals) == send(None), "h11 moved Connection._cstate/_writer/_process_event"

    def test_a_head_h11_refuses_leaves_its_connection_as_h11_leaves_it(self) -> None:
        """A send h11 refuses goes through ``Connection._process_error``, as in h11's own send."""
        assert callable(getattr(h11.Connection, "_process_error", None)), "h11 moved Connection._process_error"
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        conn.next_event()
        with pytest.raises(h11.LocalProtocolError):
            internals.h11_send(conn, h11.Data(data=b"before the head"))
        assert conn.our_state is h11.ERROR

    def test_the_response_head_h11_keeps_alive_skips_its_rebuild(self) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        conn.next_event()
        rebuilt: list[h11.Response] = []
        rebuild = conn._clean_up_response_headers_for_sending

        def counted(event: h11.Response) -> h11.Response:
            rebuilt.append(event)
            return rebuild(event)

        conn._clean_up_response_headers_for_sending = counted  # type: ignore[method-assign,assignment]
        head = h11.Response(status_code=200, headers=[(b"content-length", b"2")])
        assert b"".join(internals.h11_send(conn, head)) == b"HTTP/1.1 200 \r\ncontent-length: 2\r\n\r\n"
        assert rebuilt == [], "the head was rebuilt: h11_send no longer skips it"
        assert conn.our_state is h11.SEND_BODY


def test_wsproto_decoders_beneath_connection_are_reachable() -> None:
    """refserver's WebSocket machine drives wsproto's FrameDecoder and MessageDecoder directly;
    a frame goes through them as through wsproto's Connection."""
    frames = internals.frame_decoder([])
    messages = internals.message_decoder()
    frames.receive_bytes(b"\x81\x82\x00\x00\x00\x00hi")  # a masked text frame, mask 0
    frame = frames.process_buffer()
    assert frame is not None and frame.payload == b"hi", "wsproto moved FrameDecoder.process_buffer"
    assert messages.process_frame(frame).payload == "hi", "wsproto moved MessageDecoder.process_frame"


@pytest.mark.anyio
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
            assert hasattr(secure, "_broken"), "anyio moved TLSStream._broken"
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
