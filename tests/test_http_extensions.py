"""The HTTP response extensions over real loopback sockets, on both backends (asgi extensions,
"Early Hints", "HTTP Trailers", "Path Send", "Zero Copy Send"; docs/decisions.md#early-hints).
The machine's rows are pinned in tests/test_http_extensions_machine.py; here, what reaches
the client and the trace."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from refserver.errors import ASGIProtocolError
from refserver.testing import serve
from tests.support import TIMEOUT, connect, read_until_eof

pytestmark = pytest.mark.anyio

HINT = {"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload; as=style"]}


async def exchange(port: int, request: bytes) -> bytes:
    """Send one request and read to EOF."""
    stream = await connect(port)
    try:
        with anyio.fail_after(TIMEOUT):
            await stream.send(request)
            return await read_until_eof(stream)
    finally:
        await stream.aclose()


def without_date(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"date: "))


async def test_early_hints_are_written_before_the_head_and_ignored_after_it() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "http.response.early_hint" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200})
        await send(HINT)
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send(HINT)  # the head is on the wire: ignored
        await send({"type": "http.response.body", "body": b"b"})

    async with serve(app, record=True) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert without_date(raw) == (
        b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload; as=style\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n"
    )
    assert [m["type"] for m in server.messages("send")] == [
        "http.response.start",
        "http.response.early_hint",
        "http.response.body",
        "http.response.early_hint",
        "http.response.body",
    ]
    ignored = [r.detail for r in server.records if r.kind == "ignored"]
    assert ignored == ["http.response.early_hint after the response head was sent"]


async def test_trailers_reach_a_client_that_asked_for_them_and_are_traced() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"with trailers"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"42")], "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-more", b"1")]})

    async with serve(app, record=True) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n")
        plain = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert without_date(raw) == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"d\r\nwith trailers\r\n0\r\nx-checksum: 42\r\nx-more: 1\r\n\r\n"
    )
    assert plain.endswith(b"d\r\nwith trailers\r\n0\r\n\r\n")  # dropped: the request had no TE: trailers
    assert [m["type"] for m in server.messages("send")][-2:] == ["http.response.trailers", "http.response.trailers"]
    ignored = [r.detail for r in server.records if r.kind == "ignored"]
    assert ignored == ["the trailers: the request did not carry TE: trailers"]


async def test_pathsend_sends_the_file_as_the_body(tmp_path: Any) -> None:
    content = bytes(range(256)) * 4096  # 1 MiB: several bounded reads where sendfile is not used
    path = tmp_path / "big.bin"
    path.write_bytes(content)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.pathsend", "path": str(path)})

    async with serve(app, record=True) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-length: 1048576" in head.split(b"\r\n")
    assert body == content
    assert [m["type"] for m in server.messages("send")] == ["http.response.start", "http.response.pathsend"]


async def test_a_missing_pathsend_file_raises_from_send_and_the_app_can_answer(tmp_path: Any) -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        try:
            await send({"type": "http.response.pathsend", "path": str(tmp_path / "missing")})
        except Exception as exc:
            raised.append(exc)
        await send({"type": "http.response.body", "body": b"instead"})

    async with serve(app) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"\r\n\r\ninstead")
    [exc] = raised
    assert isinstance(exc, ASGIProtocolError) and "cannot be opened" in str(exc)


async def test_zerocopysend_mixes_with_body_and_leaves_the_file_open(tmp_path: Any) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")
    with open(path, "rb") as file:

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert "http.response.zerocopysend" in scope["extensions"]
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 2, "count": 3, "more_body": True})
            await send({"type": "http.response.body", "body": b"-", "more_body": True})
            await send({"type": "http.response.zerocopysend", "file": file, "offset": 7})

        async with serve(app, record=True) as server:
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert not file.closed and file.read() == b"0123456789"  # still the app's to close
    assert raw.endswith(b"\r\n\r\n3\r\n234\r\n1\r\n-\r\n3\r\n789\r\n0\r\n\r\n")
    assert [m["type"] for m in server.messages("send")][1:] == [
        "http.response.zerocopysend",
        "http.response.body",
        "http.response.zerocopysend",
    ]


async def test_a_file_shorter_than_its_count_cuts_the_connection_and_raises(tmp_path: Any) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"0123456789")
    raised: list[BaseException] = []
    with open(path, "rb") as file:

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200})
            try:
                await send({"type": "http.response.zerocopysend", "file": file, "offset": 0, "count": 100})
            except Exception as exc:
                raised.append(exc)

        async with serve(app) as server:
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-length: 100" in head.split(b"\r\n")
    assert body == b"0123456789"  # then the connection is cut: the client sees a short body
    [exc] = raised
    assert isinstance(exc, ASGIProtocolError) and "the file ended 90 bytes before the end of the body" in str(exc)


async def test_a_mixed_case_trailer_name_has_the_header_rules_safe_reading() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"ok"})
        await send({"type": "http.response.trailers", "headers": [(b"X-Checksum", b"42")]})

    async with serve(app, app_violations="warn") as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"2\r\nok\r\n0\r\nx-checksum: 42\r\n\r\n")
    [violation] = server.violations
    assert (violation.message_type, violation.taken, violation.section) == (
        "http.response.trailers",
        "sent as b'x-checksum'",
        'asgi extensions, "HTTP Trailers"',
    )
