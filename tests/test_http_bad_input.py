"""Bad client input: 400, 431, 505, slow or idle clients closed after the timeout; the
server never crashes and logs such a client at most once, below error level."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tests.support import (
    HTTPClient,
    Recorder,
    connect,
    http_request,
    read_until_eof,
    refserver_errors,
    reset,
    serving,
)

pytestmark = pytest.mark.anyio


async def ok_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"ok"})


async def raw_exchange(port: int, data: bytes, *, eof: bool = False) -> bytes:
    stream = await connect(port)
    try:
        await stream.send(data)
        if eof:
            await stream.send_eof()
        return await read_until_eof(stream)
    finally:
        await stream.aclose()


def split_head(raw: bytes) -> tuple[list[bytes], bytes]:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, raw
    return [line for line in head.split(b"\r\n") if not line.startswith(b"date: ")], rest


def refserver_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("refserver") and r.name != "refserver.access"]


def error_response(status: bytes, text: bytes) -> tuple[list[bytes], bytes]:
    body = text + b"\n"
    return (
        [
            b"HTTP/1.1 " + status,
            b"content-type: text/plain; charset=utf-8",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ],
        body,
    )


BAD_REQUESTS = [
    ("garbage request line", b"GARBAGE\r\n\r\n", b"400 Bad Request", b"illegal request line: bytearray(b'GARBAGE')"),
    (
        "TLS on a plain port",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        b"400 Bad Request",
        b"illegal request line",
    ),
    (
        "header without colon",
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
        b"400 Bad Request",
        b"illegal header line: bytearray(b'Host x')",
    ),
    ("missing Host", b"GET / HTTP/1.1\r\n\r\n", b"400 Bad Request", b"Missing mandatory Host: header"),
    (
        "conflicting Content-Length",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"400 Bad Request",
        b"conflicting Content-Length headers",
    ),
    (
        "non-ASCII target",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"400 Bad Request",
        b"illegal request line: bytearray(b'GET /\\xff HTTP/1.1')",
    ),
    (
        "HTTP/2.0 request line",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"505 HTTP Version Not Supported",
        b"HTTP/2.0 is not supported",
    ),
]


@pytest.mark.parametrize(("data", "status", "text"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
async def test_malformed_request_is_answered_and_closed(
    data: bytes, status: bytes, text: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("path", scope["path"])
        await ok_app(scope, receive, send)

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, data)
            response, body = await http_request(server.port, "GET", "/after")
    assert split_head(raw) == error_response(status, text)
    assert (response.status_code, body) == (200, b"ok")
    assert rec.of("path") == ["/after"]  # the bad request never reached the app
    [record] = refserver_records(caplog)
    assert record.levelno < logging.ERROR
    assert record.name == "refserver.error"
    assert record.getMessage().endswith(f"{text.decode('ascii', 'backslashreplace')} (answered {status[:3].decode()})")
    assert record.getMessage().startswith("Bad request from 127.0.0.1:")


async def test_higher_http_1_minor_version_is_served_as_1_1() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("version", scope["http_version"])
        await ok_app(scope, receive, send)

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, b"GET / HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rec.of("version") == ["1.1"]


TOO_LARGE = b"request head larger than the limit (--h11-max-incomplete-event-size)"


@pytest.mark.parametrize("whole", [True, False], ids=["head in one write", "incomplete head"])
async def test_headers_over_the_limit_get_431(whole: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2048 + (b"\r\n\r\n" if whole else b"")
    fits = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fits: " + b"a" * 900 + b"\r\n\r\n"
    with anyio.fail_after(5):
        async with serving(ok_app, h11_max_incomplete_event_size_bytes=1024) as server:
            raw = await raw_exchange(server.port, big)
            ok = await raw_exchange(server.port, fits)
    assert split_head(raw) == error_response(b"431 Request Header Fields Too Large", TOO_LARGE)
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\nok")
    [record] = refserver_records(caplog)
    assert record.levelno < logging.ERROR
    assert record.getMessage().endswith(f"{TOO_LARGE.decode()} (answered 431)")


async def test_never_finished_headers_are_closed_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    with anyio.fail_after(3):
        async with serving(ok_app, timeout_keep_alive_s=0.2) as server:
            start = anyio.current_time()  # before the server can have started its timer
            stream = await connect(server.port)
            try:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                raw = await read_until_eof(stream)
                elapsed = anyio.current_time() - start
            finally:
                await stream.aclose()
            response, _ = await http_request(server.port)
    assert raw == b""
    assert elapsed >= 0.19
    assert response.status_code == 200
    assert [r for r in refserver_records(caplog) if r.levelno >= logging.ERROR] == []
    assert len(refserver_records(caplog)) <= 1


async def test_idle_keep_alive_connection_is_closed_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    with anyio.fail_after(3):
        async with serving(ok_app, timeout_keep_alive_s=0.2) as server, HTTPClient.open(server.port) as client:
            for _ in range(2):  # each request restarts the idle timer
                start = anyio.current_time()  # the timer restarts after this response
                await client.send_request()
                response, body = await client.read_response()
                assert (response.status_code, body) == (200, b"ok")
            rest = await read_until_eof(client.stream)
            elapsed = anyio.current_time() - start
    assert rest == b""
    assert elapsed >= 0.19
    assert refserver_errors(caplog) == []
    assert len(refserver_records(caplog)) <= 1


async def test_keep_alive_timeout_does_not_cut_a_request_in_flight() -> None:
    gate = anyio.Event()
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            rec.add("waiting")
            await gate.wait()
        await ok_app(scope, receive, send)

    with anyio.fail_after(3):
        async with serving(app, timeout_keep_alive_s=0.2) as server, HTTPClient.open(server.port) as slow:
            await slow.send_request("GET", "/slow")
            await rec.wait_kind("waiting")
            # An idle connection opened now is closed by the timeout; only then is the slow
            # request answered, so it has been in flight for longer than the timeout.
            idle = await connect(server.port)
            try:
                assert await read_until_eof(idle) == b""
            finally:
                await idle.aclose()
            gate.set()
            response, body = await slow.read_response()
    assert (response.status_code, body) == (200, b"ok")


async def test_after_a_request_longer_than_the_timeout_the_idle_timer_runs_again() -> None:
    """RFC 9112 §9.3: the keep-alive timer is off while a request is served (it may fire
    meanwhile and find nothing to do) and bounds the idle time after the response."""
    gate = anyio.Event()
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("waiting")
        await gate.wait()
        await ok_app(scope, receive, send)

    with anyio.fail_after(3):
        async with serving(app, timeout_keep_alive_s=0.2) as server, HTTPClient.open(server.port) as slow:
            await slow.send_request()
            await rec.wait_kind("waiting")
            idle = await connect(server.port)  # closed by its own timer: the slow request outlived one
            try:
                assert await read_until_eof(idle) == b""
            finally:
                await idle.aclose()
            start = anyio.current_time()  # the timer restarts after this response
            gate.set()
            response, body = await slow.read_response()
            rest = await read_until_eof(slow.stream)
            elapsed = anyio.current_time() - start
    assert (response.status_code, body, rest) == (200, b"ok", b"")
    assert elapsed >= 0.19


async def test_client_gone_mid_headers_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    with anyio.fail_after(3):
        async with serving(ok_app) as server:
            raw = await raw_exchange(server.port, b"GET / HTTP/1.1\r\nHo", eof=True)
            response, _ = await http_request(server.port)
    assert raw == b""
    assert response.status_code == 200
    assert refserver_errors(caplog) == []


async def test_malformed_chunked_body_ends_the_request(caplog: pytest.LogCaptureFixture) -> None:
    """The request cannot complete: nothing of the response was sent, so the client gets 400
    (RFC 9112 §7.1); the app sees the body so far, then http.disconnect; the connection is
    closed."""
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] == "GET":
            await ok_app(scope, receive, send)
            return
        while True:
            event = await receive()
            rec.add("event", event)
            if event["type"] == "http.disconnect":
                break
        try:
            await ok_app(scope, receive, send)
        except OSError as exc:
            rec.add("raised", exc)

    with anyio.fail_after(3):
        async with serving(app) as server:
            stream = await connect(server.port)
            try:
                await stream.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
                await rec.wait_kind("event")
                await stream.send(b"ZZ\r\n")
                raw = await read_until_eof(stream)
            finally:
                await stream.aclose()
            response, _ = await http_request(server.port)
    assert rec.of("event") == [{"type": "http.request", "body": b"abc", "more_body": True}, {"type": "http.disconnect"}]
    [exc] = rec.of("raised")
    assert str(exc) == "malformed request body: illegal chunk header: bytearray(b'ZZ\\r\\n')"
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert raw.endswith(b"\r\n\r\nmalformed request body: illegal chunk header: bytearray(b'ZZ\\r\\n')\n")
    assert response.status_code == 200
    assert refserver_errors(caplog) == []


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n\r\n\r\n",
        b"\x00" * 100,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999999\r\n\r\n",
        b"GET / FTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["blank lines", "NULs", "negative length", "unknown coding", "huge length", "bad protocol"],
)
async def test_arbitrary_bad_bytes_never_crash_the_server(data: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    with anyio.fail_after(3):
        async with serving(ok_app, timeout_keep_alive_s=0.5) as server:
            raw = await raw_exchange(server.port, data, eof=True)
            response, _ = await http_request(server.port)
    assert raw == b"" or raw.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 501 "))
    assert response.status_code == 200
    assert refserver_errors(caplog) == []
    assert len(refserver_records(caplog)) <= 1


async def test_bad_clients_leak_no_socket_and_no_task() -> None:
    """After a run of bad clients the server shuts down at once (no connection task is
    left for the shutdown timeout to cut) and every socket it opened is closed."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.exists():
        pytest.skip("needs /proc/self/fd")
    inputs = [case[1] for case in BAD_REQUESTS] + [
        b"GET / HTTP/1.1\r\nHo",  # never finished
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",  # body never finished
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # idle keep-alive afterwards
    ]
    before = len(list(fd_dir.iterdir()))
    with anyio.fail_after(3):  # well under the shutdown timeout below
        async with serving(ok_app, shutdown_timeout_s=10.0) as server:
            streams = []
            for data in inputs:
                stream = await connect(server.port)
                await stream.send(data)
                streams.append(stream)
            for stream in streams[: len(BAD_REQUESTS)]:
                await read_until_eof(stream)
            response, _ = await http_request(server.port)
            assert response.status_code == 200
        # serving() returned: the server closed its side of every connection.
        for stream in streams:
            await read_until_eof(stream)
            await stream.aclose()
    assert len(list(fd_dir.iterdir())) == before


async def test_request_with_both_transfer_encoding_and_content_length_closes_after_response() -> None:
    """RFC 9112 §6.1: framed by Transfer-Encoding, and the server "MUST close the
    connection after responding to such a request" (a request-smuggling guard): the
    pipelined request behind it is never served."""
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        event = await receive()
        rec.add("request", (scope["path"], event))
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(
                server.port,
                b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                b"3\r\nabc\r\n0\r\n\r\n"
                b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            )
    assert split_head(raw) == ([b"HTTP/1.1 200 OK", b"connection: close", b"content-length: 2"], b"ok")
    assert rec.of("request") == [("/a", {"type": "http.request", "body": b"abc", "more_body": False})]


class TestUpgradeRequestBody:
    """RFC 6455 §4.2.1 / RFC 9112 §7.1: a WebSocket upgrade request whose body framing is
    broken is a bad request like any other: 400, never an internal error."""

    async def test_malformed_chunked_body_of_an_upgrade_request_is_400(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="refserver")
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            rec.add("scope", scope["type"])
            if scope["type"] == "http":
                await ok_app(scope, receive, send)

        request = (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        with anyio.fail_after(5):
            async with serving(app) as server:
                raw = await raw_exchange(server.port, request)
                response, body = await http_request(server.port, "GET", "/after")
        assert split_head(raw) == error_response(b"400 Bad Request", b"illegal chunk header: bytearray(b'zz\\r\\n')")
        assert (response.status_code, body) == (200, b"ok")
        assert rec.of("scope") == ["http"]  # the bad upgrade never reached the app
        assert refserver_errors(caplog) == []
        [record] = refserver_records(caplog)
        assert record.getMessage().startswith("Bad request from 127.0.0.1:")
        assert record.getMessage().endswith("illegal chunk header: bytearray(b'zz\\r\\n') (answered 400)")


async def test_a_tcp_client_that_resets_mid_head_is_named_and_not_answered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="refserver")
    with anyio.fail_after(3):
        async with serving(ok_app) as server:
            stream = await connect(server.port)
            local = stream.extra(anyio.abc.SocketAttribute.local_address)
            assert isinstance(local, tuple)
            host, port = local[0], local[1]
            await stream.send(b"GET / HTT")
            await anyio.wait_all_tasks_blocked()
            await reset(stream)
            response, _ = await http_request(server.port)  # served after the reset was seen
    assert response.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "refserver.error" and "Bad request" in r.getMessage()]
    assert lines == [
        f"Bad request from {host}:{port}: peer unexpectedly closed connection (the client is gone; not answered)"
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["http10-then-crlf", "connection-close-then-pipelined"],
)
async def test_bytes_after_a_last_request_do_not_cost_its_response(data: bytes) -> None:
    """RFC 9112 §9.6: the response to the request that ends the connection is sent, then the
    connection closes (the stray bytes in the same read are not taken for the client leaving)."""

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        for _ in range(20):  # the server reads on meanwhile and meets the stray bytes
            await anyio.lowlevel.checkpoint()
        await ok_app(scope, receive, send)

    async with serving(slow_app) as server:
        with anyio.fail_after(3):
            raw = await raw_exchange(server.port, data)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.count(b"HTTP/1.1 ") == 1
