"""Wire behaviour: message size, permessage-deflate (RFC 7692), closing the TCP connection when
the closing handshake completes, and close 1001 on shutdown. (Ping and pong are pinned without
sockets in tests/test_ws_machine.py; the keepalive timers in tests/test_ws_timers.py.)"""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from typing import Any

import anyio
import pytest

from refserver import Config
from refserver.config import MiB
from tests.support import (
    TIMEOUT,
    Recorder,
    Rejected,
    WSClient,
    big_frame,
    connect,
    frame,
    handshake_request,
    header,
    open_raw,
    read_exactly,
    read_until_eof,
    serving,
    serving_stoppable,
)

pytestmark = pytest.mark.anyio


def echo_app(rec: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        rec.add("accepted")
        while True:
            message = await receive()
            rec.add("event", message)
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})

    return app


# ---------------------------------------------------------------- defaults


def test_defaults() -> None:
    config = Config()
    assert config.ws_max_size_bytes == 16 * MiB == 16 * 1024 * 1024
    assert config.ws_ping_interval_s == 20.0
    assert config.ws_ping_timeout_s == 20.0
    assert config.ws_per_message_deflate is True


# ---------------------------------------------------------------- size limit


async def test_default_max_size_is_16_mib() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                rec.add("event", message)
                return
            rec.add("size", len(message["bytes"]))

    async with serving(app, ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await ws.send_raw(big_frame(0x2, b"\x07" * (16 * MiB)))
        assert await rec.wait_kind("size") == [16 * MiB]
        # One byte more, announced in a frame header: refused before it is read.
        await ws.send_raw(bytes([0x82, 0xFF]) + struct.pack("!Q", 16 * MiB + 1) + b"\x00" * 4)
        close = await ws.expect_close()
        await ws.aclose()
        await rec.wait_kind("event")
    assert (close.code, close.reason) == (1009, "message exceeds 16777216 bytes")
    assert rec.of("event") == [
        {"type": "websocket.disconnect", "code": 1009, "reason": "message exceeds 16777216 bytes"}
    ]


# ---------------------------------------------------------------- permessage-deflate


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    return d.decompress(data + b"\x00\x00\xff\xff")


async def test_deflate_negotiated_by_default_and_used_both_ways() -> None:
    rec = Recorder()
    text = "compress me " * 50
    ext = "permessage-deflate; client_max_window_bits"
    async with serving(echo_app(rec)) as server:
        stream, head, rest = await open_raw(server.port, [("Sec-WebSocket-Extensions", ext)])
        await stream.send(frame(0x1, deflate(text.encode()), rsv1=True))
        # The echo comes back compressed: FIN + RSV1 + text.
        data = await read_exactly(stream, rest, 2)
        assert data[0] == 0xC1
        length = data[1] & 0x7F
        assert length < 126
        data = await read_exactly(stream, data, 2 + length)
        assert inflate(data[2 : 2 + length]).decode() == text
        await stream.send(frame(0x8, b"\x03\xe8"))
        await read_until_eof(stream)
        await stream.aclose()
    assert b"\r\nsec-websocket-extensions: permessage-deflate; server_max_window_bits=12" in head
    assert rec.of("event")[0] == {"type": "websocket.receive", "text": text}


async def test_deflate_round_trip_with_the_wsproto_client() -> None:
    rec = Recorder()
    async with serving(echo_app(rec)) as server:
        ws = await WSClient.connect(server.port, deflate=True)
        messages: list[str | bytes] = ["a" * 1000, "héllo", "", b"\x00" * 5000, b""]
        for message in messages:
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)
            assert await ws.next_message() == message
        await ws.close()
        await ws.expect_close()
    assert header(ws.response, b"sec-websocket-extensions") == [b"permessage-deflate; server_max_window_bits=12"]


async def test_deflate_disabled_by_flag() -> None:
    rec = Recorder()
    ext = "permessage-deflate; client_max_window_bits"
    async with serving(echo_app(rec), ws_per_message_deflate=False) as server:
        stream, head, rest = await open_raw(server.port, [("Sec-WebSocket-Extensions", ext)])
        # Without the extension, RSV1 is a protocol error (RFC 6455 §5.2).
        await stream.send(frame(0x1, deflate(b"hi"), rsv1=True))
        data = await read_until_eof(stream)
        await stream.aclose()
    assert b"sec-websocket-extensions" not in head.lower()
    assert rest + data == b"\x88\x10\x03\xeaprotocol error"


@pytest.mark.parametrize(
    ("offers", "response"),
    [
        (["permessage-deflate"], "permessage-deflate; server_max_window_bits=12"),
        (["permessage-deflate; server_max_window_bits=10"], "permessage-deflate; server_max_window_bits=10"),
        (["permessage-deflate; server_max_window_bits=15"], "permessage-deflate; server_max_window_bits=12"),
        (
            ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
        ),
        (["permessage-deflate; client_max_window_bits=9"], "permessage-deflate; server_max_window_bits=12"),
        (
            ["permessage-deflate; foo, permessage-deflate; server_no_context_takeover"],
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
        ),
        (
            ["permessage-deflate; server_max_window_bits=8", "permessage-deflate; server_max_window_bits=9"],
            "permessage-deflate; server_max_window_bits=9",
        ),
        (['permessage-deflate; server_max_window_bits="11"'], "permessage-deflate; server_max_window_bits=11"),
    ],
)
async def test_first_acceptable_deflate_offer_wins(offers: list[str], response: str) -> None:
    rec = Recorder()
    extra = [("Sec-WebSocket-Extensions", o) for o in offers]
    async with serving(echo_app(rec)) as server:
        stream, head, rest = await open_raw(server.port, extra)
        # The agreed parameters work: compressed messages round-trip, twice (context kept or not).
        for text in ("first message " * 20, "second message " * 20):
            await stream.send(frame(0x1, deflate(text.encode()), rsv1=True))
            data = await read_exactly(stream, rest, 2)
            assert data[0] == 0xC1
            length = data[1] & 0x7F
            data = await read_exactly(stream, data, 2 + length)
            rest = data[2 + length :]
            # A fresh inflater for each message works when the server takes no context over.
            if "server_no_context_takeover" in response:
                assert inflate(data[2 : 2 + length]).decode() == text
        await stream.send(frame(0x8, b"\x03\xe8"))
        await read_until_eof(stream)
        await stream.aclose()
    assert header_line(head, b"sec-websocket-extensions") == [response.encode()]
    assert [e.get("text") for e in rec.of("event")[:2]] == ["first message " * 20, "second message " * 20]


def header_line(head: bytes, name: bytes) -> list[bytes]:
    out = []
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            out.append(value.strip())
    return out


async def test_compression_bomb_ends_in_1009_with_bounded_memory() -> None:
    rec = Recorder()
    # 64 MiB of zeros compress to about 64 KiB.
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = b"\x00" * MiB
    bomb = b"".join(c.compress(zeros) for _ in range(64)) + c.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(bomb) < 128 * 1024
    async with serving(echo_app(rec), ws_max_size_bytes=MiB) as server:
        ws = await WSClient.connect(server.port, deflate=True)
        await rec.wait_kind("accepted")
        tracemalloc.start()
        try:
            await ws.send_raw(frame(0x2, bomb, rsv1=True, mask=b"\x00\x00\x00\x00"))
            close = await ws.expect_close()
            await rec.wait_kind("event")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await ws.aclose()
    assert (close.code, close.reason) == (1009, f"message exceeds {MiB} bytes")
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1009, "reason": f"message exceeds {MiB} bytes"}]
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while inflating a 64 MiB bomb"


async def test_compressed_message_within_the_limit_is_delivered() -> None:
    rec = Recorder()
    payload = b"\x00" * 1000
    async with serving(echo_app(rec), ws_max_size_bytes=1000) as server:
        ws = await WSClient.connect(server.port, deflate=True)
        await ws.send_raw(frame(0x2, deflate(payload), rsv1=True))
        assert await ws.next_message() == payload
        await ws.send_raw(frame(0x2, deflate(payload + b"\x00"), rsv1=True))
        close = await ws.expect_close()
        await ws.aclose()
    assert close.code == 1009


async def test_rsv1_on_a_continuation_is_a_protocol_error() -> None:
    rec = Recorder()
    async with serving(echo_app(rec)) as server:
        ws = await WSClient.connect(server.port, deflate=True)
        await ws.send_raw(frame(0x1, deflate(b"ab"), rsv1=True, fin=False) + frame(0x0, b"", rsv1=True))
        close = await ws.expect_close()
        await ws.aclose()
        await rec.wait_kind("event")
    assert close.code == 1002
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1002, "reason": "protocol error"}]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_websockets_library_client_negotiates_deflate_and_echoes() -> None:
    """websockets (asyncio only) as an independent client: handshake, deflate, echo, close."""
    from websockets.asyncio.client import connect as ws_connect
    from websockets.extensions.permessage_deflate import PerMessageDeflate

    rec = Recorder()
    async with serving(echo_app(rec)) as server:
        async with ws_connect(
            f"ws://127.0.0.1:{server.port}/", proxy=None, ping_interval=None, subprotocols=None
        ) as client:
            assert any(isinstance(e, PerMessageDeflate) for e in client.protocol.extensions)
            messages: list[str | bytes] = ["x" * 5000, "héllo", b"\x01\x02" * 3000]
            for message in messages:
                await client.send(message)
                assert await client.recv() == message
            await client.close(4001, "bye")
        assert client.close_code == 4001
        await rec.wait_for(lambda r: r.of("event")[-1]["type"] == "websocket.disconnect")
    assert rec.of("event")[-1] == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_websockets_library_client_without_compression() -> None:
    from websockets.asyncio.client import connect as ws_connect

    rec = Recorder()
    async with serving(echo_app(rec)) as server:
        client = await ws_connect(f"ws://127.0.0.1:{server.port}/", proxy=None, compression=None, ping_interval=None)
        assert client.protocol.extensions == []
        await client.send("plain")
        assert await client.recv() == "plain"
        await client.close()
        await rec.wait_for(
            lambda r: r.of("event")[-1:] == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]
        )
    assert header_line_of(client) is None


def header_line_of(client: Any) -> bytes | None:
    """The Sec-WebSocket-Extensions value of the 101 the websockets client received."""
    value = client.response.headers.get("Sec-WebSocket-Extensions")
    return None if value is None else value.encode()


# ---------------------------------------------------------------- the end of the closing handshake


async def test_peer_initiated_close_closes_tcp_at_once_while_the_app_runs() -> None:
    rec = Recorder()
    release = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await release.wait()  # does not call receive()
        rec.add("event", await receive())
        rec.add("event", await receive())
        rec.add("ended")

    async with serving(app, ws_close_timeout_s=5) as server:
        ws = await WSClient.connect(server.port)
        await ws.close(4000, "done")
        echo = await ws.expect_close()
        with anyio.fail_after(1):
            assert await ws.next_event() is None  # TCP closed, though the app is still running
        assert rec.of("ended") == []
        release.set()
        await rec.wait_kind("ended")
    assert (echo.code, echo.reason) == (4000, "done")
    assert rec.of("event") == [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 4000, "reason": "done"},
    ]


async def test_server_initiated_close_closes_tcp_on_the_answer_while_the_app_runs() -> None:
    rec = Recorder()
    release = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000})
        await release.wait()
        rec.add("ended")

    async with serving(app, ws_close_timeout_s=5) as server:
        ws = await WSClient.connect(server.port)
        assert (await ws.expect_close()).code == 4000
        await ws.close(4000)
        with anyio.fail_after(1):
            assert await ws.next_event() is None
        assert rec.of("ended") == []
        release.set()
        await rec.wait_kind("ended")


# ---------------------------------------------------------------- shutdown


async def test_shutdown_sends_1001_to_every_websocket_at_once_and_503_to_pending_handshakes() -> None:
    rec = Recorder()
    release = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/pending":
            rec.add("pending")
            await release.wait()
        else:
            await send({"type": "websocket.accept"})
            rec.add("accepted")
            await release.wait()  # not listening: the close frames must not wait for the app
        rec.add("event", (scope["path"], await receive()))

    async with serving_stoppable(app, shutdown_timeout_s=5) as (server, stop):
        clients = [await WSClient.connect(server.port, f"/ws{i}") for i in range(3)]
        await rec.wait_kind("accepted", 3)
        pending = await connect(server.port)
        await pending.send(handshake_request("/pending"))
        await rec.wait_kind("pending")
        stop.set()
        closes = [await ws.expect_close(timeout=1) for ws in clients]
        with anyio.fail_after(1):
            answer = await read_until_eof(pending)
        await pending.aclose()
        for ws in clients:
            await ws.close(1001)
            await ws.expect_eof(timeout=1)
        # New connections are refused now.
        with pytest.raises(OSError):
            await connect(server.port)
        release.set()
        await rec.wait_kind("event", 4)
    assert [(c.code, c.reason) for c in closes] == [(1001, "server shutting down")] * 3
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert answer.endswith(b"\r\n\r\nServer shutting down")
    shutdown = {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
    assert sorted(rec.of("event"), key=lambda e: e[0]) == [
        ("/pending", shutdown),
        ("/ws0", shutdown),
        ("/ws1", shutdown),
        ("/ws2", shutdown),
    ]


async def test_shutdown_timeout_bounds_only_the_wait_for_apps() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        try:
            await anyio.sleep_forever()  # never returns by itself
        finally:
            rec.add("cancelled")

    async with serving_stoppable(app, shutdown_timeout_s=0.5, ws_close_timeout_s=5) as (server, stop):
        ws = await WSClient.connect(server.port)
        stop.set()
        close = await ws.expect_close(timeout=1)
        assert rec.of("cancelled") == []  # the close frame did not wait for the shutdown timeout
        await rec.wait_kind("cancelled", timeout=2)
        await ws.expect_eof(timeout=1)
    assert close.code == 1001


async def test_shutdown_refuses_a_handshake_with_503_and_no_app_misbehaves() -> None:
    """After the 503 the app of a pending handshake cannot accept any more."""
    rec = Recorder()
    go = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        rec.add("pending")
        await go.wait()
        try:
            await send({"type": "websocket.accept"})
        except OSError as exc:
            rec.add("error", str(exc))

    async with serving_stoppable(app) as (server, stop):
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:

                async def client() -> None:
                    with pytest.raises(Rejected) as rejected:
                        await WSClient.connect(server.port)
                    rec.add("status", rejected.value.response.status_code)

                tg.start_soon(client)
                await rec.wait_kind("pending")
                stop.set()
                await rec.wait_kind("status")
                go.set()
                await rec.wait_kind("error")
    assert rec.of("status") == [503]
    assert rec.of("error") == ["the server is shutting down (HTTP 503)"]


async def test_deflate_inbound_fragments_and_context_takeover() -> None:
    """One compressor across messages (the client keeps its context, RFC 7692 §7.2.3.3), a
    compressed message split over fragments, and an empty compressed message."""
    rec = Recorder()
    c = zlib.compressobj(9, zlib.DEFLATED, -15)

    def compress(data: bytes) -> bytes:
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4]

    first = compress(b"repeated text " * 30)
    second = compress(b"repeated text " * 30)  # mostly back-references into the first
    third = compress("fragmenté".encode() * 40)
    async with serving(echo_app(rec)) as server:
        ws = await WSClient.connect(server.port, deflate=True)
        await ws.send_raw(frame(0x1, first, rsv1=True) + frame(0x1, second, rsv1=True))
        await ws.send_raw(
            frame(0x1, third[:5], rsv1=True, fin=False) + frame(0x0, third[5:9], fin=False) + frame(0x0, third[9:])
        )
        await ws.send_raw(frame(0x2, compress(b""), rsv1=True))
        await rec.wait_kind("event", 4)
        await ws.close()
        await ws.expect_close()
    assert len(second) < len(first) // 2
    assert rec.of("event")[:4] == [
        {"type": "websocket.receive", "text": "repeated text " * 30},
        {"type": "websocket.receive", "text": "repeated text " * 30},
        {"type": "websocket.receive", "text": "fragmenté" * 40},
        {"type": "websocket.receive", "bytes": b""},
    ]


@pytest.mark.parametrize(
    ("frames", "code", "reason"),
    [
        ([frame(0x9, b"", rsv1=True)], 1002, "protocol error"),
        ([frame(0x2, b"\xff\xff\xff\xff", rsv1=True)], 1007, "invalid UTF-8 or payload data"),
        ([frame(0x1, deflate(b"ok \xff"), rsv1=True)], 1007, "invalid UTF-8 or payload data"),
        ([frame(0x1, b"plain text")], None, None),  # an uncompressed message is fine too
    ],
    ids=["rsv1 on a ping", "corrupt deflate data", "bad utf-8 after inflating", "uncompressed"],
)
async def test_deflate_failures(frames: list[bytes], code: int | None, reason: str | None) -> None:
    rec = Recorder()
    async with serving(echo_app(rec)) as server:
        ws = await WSClient.connect(server.port, deflate=True)
        await ws.send_raw(b"".join(frames))
        if code is None:
            assert await ws.next_message() == "plain text"
            await ws.close()
        close = await ws.expect_close()
        await ws.aclose()
        await rec.wait_for(lambda r: r.of("event")[-1:] != [] and r.of("event")[-1]["type"] == "websocket.disconnect")
    if code is not None:
        assert (close.code, close.reason) == (code, reason)
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": code, "reason": reason}]


async def test_oversized_frame_in_flight_is_drained_so_the_close_frame_arrives() -> None:
    """The client writes a whole 16 MiB + 1 frame: refserver refuses it at the header, sends
    close 1009 and FIN, and reads the rest away, so the client can read the close frame instead
    of getting a reset (RFC 6455 §7.1.1: the server closes first)."""
    rec = Recorder()
    async with serving(echo_app(rec), ws_per_message_deflate=False, ws_close_timeout_s=5) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("accepted")
        async with anyio.create_task_group() as tg:
            tg.start_soon(ws.send_raw, big_frame(0x2, b"\x00" * (16 * MiB + 1)))
            close = await ws.expect_close()
            await ws.expect_eof()
        await ws.aclose()
        await rec.wait_kind("event")
    assert (close.code, close.reason) == (1009, "message exceeds 16777216 bytes")
    assert rec.of("event") == [
        {"type": "websocket.disconnect", "code": 1009, "reason": "message exceeds 16777216 bytes"}
    ]


async def test_shutdown_during_a_held_denial_start_answers_503() -> None:
    """Nothing of the app's denial reached the wire yet (its start is held until the first
    body), so the handshake is answered like any unanswered one: 503."""
    rec = Recorder()
    go = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 401})
        rec.add("started")
        await go.wait()
        try:
            await send({"type": "websocket.http.response.body", "body": b"late"})
        except OSError as exc:
            rec.add("error", str(exc))
        rec.add("event", await receive())
        rec.add("event", await receive())

    async with serving_stoppable(app) as (server, stop):
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        await rec.wait_kind("started")
        stop.set()
        with anyio.fail_after(2):
            answer = await read_until_eof(stream)
        await stream.aclose()
        go.set()
        await rec.wait_kind("event", 2)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert rec.of("error") == ["the server is shutting down (HTTP 503)"]
    shutdown = {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
    assert rec.of("event") == [{"type": "websocket.connect"}, shutdown]
