"""The opening handshake (RFC 6455 §4.2): validation, rejection statuses, routing, early bytes.

A request whose ``Upgrade`` names ``websocket`` is validated; a malformed one gets 400, a wrong
version 426 with ``Sec-WebSocket-Version: 13``, and no app instance is started for either. Every
other request goes to the ``http`` scope. Bytes sent right behind the handshake are not lost.
"""

from __future__ import annotations

import base64
from typing import Any

import anyio
import h11
import pytest
import wsproto.events as wse

from tests.support import (
    TIMEOUT,
    Recorder,
    WSClient,
    connect,
    frame,
    handshake_request,
    header,
    http_request,
    read_until_eof,
    serving,
)

pytestmark = pytest.mark.anyio

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def recording_app(rec: Recorder) -> Any:
    """Records every scope it is started for; answers http with 200 "http", echoes websockets."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("scope", scope)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"http " + scope["path"].encode()})
            return
        rec.add("event", await receive())
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            rec.add("event", message)
            if message["type"] == "websocket.disconnect":
                return

    return app


async def raw_response(port: int, request: bytes) -> tuple[h11.Response, bytes, bytes]:
    """Send raw request bytes; return the response, its body and anything after it up to EOF."""
    stream = await connect(port)
    try:
        await stream.send(request)
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        response: h11.Response | None = None
        body = bytearray()
        with anyio.fail_after(TIMEOUT):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        conn.receive_data(await stream.receive())
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        conn.receive_data(b"")
                    continue
                if isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise AssertionError(f"unexpected {event!r}")
            rest = conn.trailing_data[0] + await read_until_eof(stream)
        assert response is not None
        return response, bytes(body), rest
    finally:
        await stream.aclose()


def request_bytes(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


VALID = [
    "GET /chat HTTP/1.1",
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
]


def variant(
    *, replace: dict[str, str | None] | None = None, first: str | None = None, add: tuple[str, ...] = ()
) -> bytes:
    """VALID with some header lines replaced (None = removed) and/or another request line."""
    lines = [first or VALID[0]]
    for line in VALID[1:]:
        name = line.split(":", 1)[0]
        if replace and name in replace:
            if replace[name] is not None:
                lines.append(f"{name}: {replace[name]}")
            continue
        lines.append(line)
    lines += add
    return request_bytes(lines)


BAD_400 = {
    "post": variant(first="POST /chat HTTP/1.1", add=("Content-Length: 0",)),
    "put": variant(first="PUT /chat HTTP/1.1", add=("Content-Length: 0",)),
    "http/1.0": variant(first="GET /chat HTTP/1.0"),
    "no host": variant(replace={"Host": None}),
    "two hosts": variant(add=("Host: other",)),
    "no connection": variant(replace={"Connection": None}),
    "connection keep-alive only": variant(replace={"Connection": "keep-alive"}),
    "connection upgraded (not a token match)": variant(replace={"Connection": "upgraded"}),
    "no key": variant(replace={"Sec-WebSocket-Key": None}),
    "key of 15 bytes": variant(replace={"Sec-WebSocket-Key": base64.b64encode(b"x" * 15).decode()}),
    "key of 17 bytes": variant(replace={"Sec-WebSocket-Key": base64.b64encode(b"x" * 17).decode()}),
    "key not base64": variant(replace={"Sec-WebSocket-Key": "!!!!not-base64!!!!!!!!=="}),
    "key empty": variant(replace={"Sec-WebSocket-Key": ""}),
    "two keys": variant(add=(f"Sec-WebSocket-Key: {KEY}",)),
    "no version": variant(replace={"Sec-WebSocket-Version": None}),
}


@pytest.mark.parametrize("case", list(BAD_400))
async def test_malformed_handshake_gets_400_and_no_app(case: str) -> None:
    rec = Recorder()
    async with serving(recording_app(rec)) as server:
        response, body, rest = await raw_response(server.port, BAD_400[case])
        assert response.status_code == 400, body
        assert body  # says why
        assert header(response, b"connection") == [b"close"]
        assert rest == b""  # and the connection ends after it (EOF was read)
        # The app is started for the next connection, not for the rejected one.
        _, after = await http_request(server.port, "GET", "/after")
    assert after == b"http /after"
    assert [s["path"] for s in rec.of("scope")] == ["/after"]


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8"])
async def test_wrong_version_gets_426_naming_13_and_no_app(version: str) -> None:
    rec = Recorder()
    async with serving(recording_app(rec)) as server:
        response, body, rest = await raw_response(server.port, variant(replace={"Sec-WebSocket-Version": version}))
        _, after = await http_request(server.port, "GET", "/after")
    assert response.status_code == 426, body
    assert header(response, b"sec-websocket-version") == [b"13"]
    assert rest == b""
    assert after == b"http /after"
    assert [s["path"] for s in rec.of("scope")] == ["/after"]


async def test_missing_version_400_also_names_13() -> None:
    async with serving(recording_app(Recorder())) as server:
        response, _, _ = await raw_response(server.port, BAD_400["no version"])
    assert response.status_code == 400
    assert header(response, b"sec-websocket-version") == [b"13"]


@pytest.mark.parametrize(
    "lines",
    [
        # Connection is a case-insensitive comma-separated token list (RFC 9110 §7.6.1).
        {"Connection": "keep-alive, Upgrade"},
        {"Connection": "UPGRADE"},
        {"Upgrade": "WebSocket"},
        {"Sec-WebSocket-Version": " 13 "},
    ],
    ids=["connection list", "connection upper", "upgrade mixed case", "version padded"],
)
async def test_valid_variants_are_accepted(lines: dict[str, str | None]) -> None:
    rec = Recorder()
    async with serving(recording_app(rec)) as server:
        stream = await connect(server.port)
        try:
            await stream.send(variant(replace=lines))
            data = b""
            with anyio.fail_after(TIMEOUT):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
        finally:
            await stream.aclose()
    assert data.startswith(b"HTTP/1.1 101 ")
    # RFC 6455 §4.2.2 item 5.4, the RFC's own test vector.
    assert b"\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in data


@pytest.mark.parametrize(
    "extra",
    [
        [],
        [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"), ("HTTP2-Settings", "")],
        [("Connection", "Upgrade"), ("Sec-WebSocket-Key", KEY), ("Sec-WebSocket-Version", "13")],
    ],
    ids=["plain", "h2c upgrade", "websocket headers without Upgrade"],
)
async def test_other_requests_go_to_the_http_scope(extra: list[tuple[str, str]]) -> None:
    rec = Recorder()
    async with serving(recording_app(rec)) as server:
        response, body = await http_request(server.port, "GET", "/plain", headers=extra)
    assert response.status_code == 200
    assert body == b"http /plain"
    assert [s["type"] for s in rec.of("scope")] == ["http"]


async def test_bytes_right_behind_the_handshake_are_not_lost() -> None:
    """Two frames in the same segment as the handshake: both delivered, in order."""
    rec = Recorder()
    early = frame(0x1, b"first") + frame(0x2, b"\x00second")
    async with serving(recording_app(rec)) as server:
        ws = await WSClient.connect(server.port, "/", after_handshake=early)
        events = await rec.wait_kind("event", 3)
        await ws.close(1000)
        await ws.expect_close()
        await ws.aclose()
    assert events == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "first"},
        {"type": "websocket.receive", "bytes": b"\x00second"},
    ]


async def test_bytes_sent_before_the_app_accepts_are_kept() -> None:
    """A message (and a fragment of the next) arrive while the app has not accepted yet."""
    rec = Recorder()
    go = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("event", await receive())
        await go.wait()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            rec.add("event", message)
            if message["type"] == "websocket.disconnect":
                return

    async with serving(app) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        await rec.wait_kind("event", 1)  # the app holds the handshake
        await stream.send(frame(0x1, b"early"))
        await stream.send(frame(0x1, b"spl", fin=False))
        await anyio.wait_all_tasks_blocked()  # the server has read them
        go.set()
        data = b""
        with anyio.fail_after(TIMEOUT):
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
        assert data.startswith(b"HTTP/1.1 101 ")
        await stream.send(frame(0x0, b"it"))
        await stream.send(frame(0x8, b"\x03\xe8"))
        events = await rec.wait_kind("event", 4)
        await stream.aclose()
    assert events == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "early"},
        {"type": "websocket.receive", "text": "split"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]


async def test_handshake_accept_key_for_every_key() -> None:
    """Sec-WebSocket-Accept is computed from the client's key (RFC 6455 §4.2.2 item 5.4)."""
    import hashlib

    rec = Recorder()
    key = base64.b64encode(bytes(range(16))).decode()
    async with serving(recording_app(rec)) as server:
        stream = await connect(server.port)
        try:
            await stream.send(handshake_request("/", key=key))
            data = b""
            with anyio.fail_after(TIMEOUT):
                while b"\r\n\r\n" not in data:
                    data += await stream.receive()
        finally:
            await stream.aclose()
    expected = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    assert b"\r\nsec-websocket-accept: " + expected + b"\r\n" in data


async def test_handshake_response_headers_exact() -> None:
    rec = Recorder()
    async with serving(recording_app(rec), ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port, "/")
        await ws.close()
        assert isinstance(await ws.next_event(), wse.CloseConnection)
        await ws.aclose()
    assert ws.response.status_code == 101
    assert list(ws.response.headers) == [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]


async def test_upgrade_after_a_keep_alive_request_on_the_same_connection() -> None:
    rec = Recorder()
    async with serving(recording_app(rec)) as server:
        stream = await connect(server.port)
        await stream.send(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        with anyio.fail_after(TIMEOUT):
            while not data.endswith(b"http /first"):
                data += await stream.receive()
            await stream.send(handshake_request("/second") + frame(0x1, b"hi") + frame(0x8, b"\x03\xe8"))
            rest = await read_until_eof(stream)
        await stream.aclose()
        await rec.wait_kind("event", 3)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 101 ")
    assert rest.endswith(b"\x88\x02\x03\xe8")
    assert [(s["type"], s["path"]) for s in rec.of("scope")] == [("http", "/first"), ("websocket", "/second")]
    assert rec.of("event") == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]
