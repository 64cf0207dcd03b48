"""Bad input over real sockets, on both backends: request smuggling shapes (RFC 9112 §5.1,
§5.2, §6.1, §6.3), slowloris on the request head, the upgrade body and WebSocket frames, and
Hypothesis properties: arbitrary bytes on the HTTP path end in a response or a quiet close, on
the WebSocket path in a close frame or a quiet close, never in a traceback or a hang.
(The sans-IO machines have their own properties in tests/test_ws_machine.py; compression bombs
and the 16 MiB limit are in tests/test_ws_wire.py.) The longer fuzz run is
``python -m reliability.fuzz``."""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import anyio.abc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability.fuzz import http_inputs, run_http_input, run_ws_input, ws_app, ws_inputs
from tests.support import (
    HTTPClient,
    Recorder,
    connect,
    frame,
    handshake_request,
    read_until_eof,
    refserver_errors,
    serving,
)

pytestmark = pytest.mark.anyio


SMUGGLED_TAIL = b"\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"


async def echo_request(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the path, the framing headers it saw and the body it read."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = [(k, v) for k, v in scope["headers"] if k in (b"x-a", b"transfer-encoding", b"content-length")]
    out = repr((scope["path"], seen, body)).encode()
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": out})


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes (the servers here close an idle
    connection after 0.05 s; the client does not half-close, which would end the request)."""
    stream = await connect(port)
    try:
        await stream.send(data)
        with anyio.fail_after(5):
            return await read_until_eof(stream)
    finally:
        await stream.aclose()


def responses(raw: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each response in ``raw`` (all framed by Content-Length here)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        match = re.search(rb"(?im)^content-length: (\d+)$", head)
        length = int(match.group(1)) if match else len(rest)
        out.append((status, rest[:length]))
        raw = rest[length:]
    return out


# ---------------------------------------------------------------- request smuggling


class TestRFC9112Section5_2ObsFold:
    """RFC 9112 §5.2: a server that receives an obs-fold "MUST either reject the message by
    sending a 400 (Bad Request) ... or replace each received obs-fold with one or more SP
    octets prior to interpreting the field value". refserver rejects it, in every header:
    a front-end that does not unfold would frame the body differently
    (docs/decisions.md#obs-fold)."""

    @pytest.mark.parametrize(
        "data",
        [
            b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\t5\r\n\r\nhello",
        ],
        ids=["any header", "transfer-encoding", "content-length"],
    )
    async def test_obs_fold_is_400_and_nothing_behind_it_is_served(self, data: bytes) -> None:
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            rec.add("path", scope["path"])
            await echo_request(scope, receive, send)

        async with serving(app) as server:
            raw = await exchange(server.port, data + b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
        text = b"obs-fold (a header line starting with whitespace) is not accepted (RFC 9112 \xc2\xa75.2)\n"
        assert responses(raw) == [(400, text)]
        assert rec.of("path") == []


class TestRFC9112Section6_3ContentLength:
    """RFC 9112 §6.3 (5): a Content-Length that is a list of identical values may be taken as
    that value (RFC 9110 §8.6); differing values or an invalid value are an unrecoverable
    error: 400, connection closed. RFC 9112 §5.1: whitespace before the colon is a 400."""

    async def test_identical_duplicate_content_length_frames_one_body(self) -> None:
        data = (
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        async with serving(echo_request) as server:
            raw = await exchange(server.port, data)
        assert responses(raw) == [(200, b"('/a', [(b'content-length', b'3')], b'abc')"), (200, b"('/b', [], b'')")]

    async def test_identical_content_length_list_is_that_length(self) -> None:
        async with serving(echo_request) as server:
            raw = await exchange(
                server.port, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc"
            )
        assert responses(raw) == [(200, b"('/a', [(b'content-length', b'3')], b'abc')")]

    @pytest.mark.parametrize(
        ("header", "text"),
        [
            (b"Content-Length: 3, 4", b"conflicting Content-Length headers\n"),
            (b"Content-Length: +3", b"bad Content-Length\n"),
            (b"Transfer-Encoding : chunked", b"illegal header line: bytearray(b'Transfer-Encoding : chunked')\n"),
        ],
        ids=["differing list", "plus sign", "space before colon"],
    )
    async def test_ambiguous_framing_is_400_and_the_rest_is_never_served(self, header: bytes, text: bytes) -> None:
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            rec.add("path", scope["path"])
            await echo_request(scope, receive, send)

        data = b"POST /a HTTP/1.1\r\nHost: x\r\n" + header + SMUGGLED_TAIL
        async with serving(app) as server:
            raw = await exchange(server.port, data)
        assert responses(raw) == [(400, text)]
        assert rec.of("path") == []

    @pytest.mark.parametrize(
        "headers",
        [b"Transfer-Encoding: chunked, chunked", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"],
        ids=["list", "two headers"],
    )
    async def test_transfer_encoding_other_than_one_chunked_is_501(self, headers: bytes) -> None:
        """RFC 9112 §6.1: a server that receives a transfer coding it does not understand
        SHOULD respond with 501; the connection is closed, so nothing behind it is served."""
        data = b"POST /a HTTP/1.1\r\nHost: x\r\n" + headers + SMUGGLED_TAIL
        async with serving(echo_request) as server:
            raw = await exchange(server.port, data)
        assert [status for status, _ in responses(raw)] == [501]


class TestRFC9110Section9_3_6Connect:
    """RFC 9110 §9.3.6: CONNECT asks for a tunnel; refserver has none, but an app that answers
    a CONNECT request (www spec 2.5, "Response Start - send event" and "Response Body - send
    event") with a status and a body has sent a valid response, and the client must get a
    whole response, the app's or a refusal by the server, and nothing be logged at error level.
    Found by ``python -m reliability.fuzz``."""

    @pytest.mark.parametrize("target", ["*", "example.com:443"])
    async def test_connect_request_gets_a_whole_response(self, target: str, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="refserver")

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"ok"})

        request = f"CONNECT {target} HTTP/1.1\r\nHost: example.com:443\r\n\r\n".encode()
        async with serving(app) as server:
            raw = await exchange(server.port, request)
        assert raw.startswith(b"HTTP/1.1 ")
        [(status, body)] = responses(raw)
        assert (status, body) == (501, b"CONNECT (a tunnel) is not supported\n")  # docs/decisions.md#connect-501
        assert refserver_errors(caplog) == []


# ---------------------------------------------------------------- slowloris


async def trickle_until_closed(stream: anyio.abc.SocketStream, data: bytes, every_s: float) -> tuple[int, bytes]:
    """Send ``data`` a byte at a time while reading; returns how many bytes had gone out when
    the server's EOF came (len(data) if the whole of it went out first), and what it sent."""
    sent = 0

    async def send_slowly() -> None:
        nonlocal sent
        for i in range(len(data)):
            try:
                await stream.send(data[i : i + 1])
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return
            sent = i + 1
            await anyio.sleep(every_s)  # the attack's pace, not a synchronisation

    async with anyio.create_task_group() as tg:
        tg.start_soon(send_slowly)
        got = await read_until_eof(stream)
        tg.cancel_scope.cancel()
    return sent, got


class TestSlowloris:
    """A client that keeps a connection busy by sending a byte now and then never holds it past
    its timeout: the request head and an upgrade request's body (RFC 9112 §9.5, the keep-alive
    timeout counts from the start of the request, not from the last byte), and WebSocket
    frames (RFC 6455 §5.5.2: no pong in time, whatever else arrives)."""

    async def test_head_trickled_byte_by_byte_is_cut_at_the_timeout(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="refserver")
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
        async with serving(echo_request, timeout_keep_alive_s=0.2) as server:
            stream = await connect(server.port)
            with anyio.fail_after(10):
                sent, got = await trickle_until_closed(stream, head, 0.02)
            await stream.aclose()
        assert got == b""
        assert sent < len(head)  # cut long before the head could complete (about 4.6 s)
        assert refserver_errors(caplog) == []

    async def test_upgrade_body_trickled_is_cut_at_the_timeout(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="refserver")
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            rec.add("scope", scope["type"])

        body = b"b" * 200
        request = handshake_request(extra=[("Content-Length", str(len(body)))])
        async with serving(app, timeout_keep_alive_s=0.2) as server:
            stream = await connect(server.port)
            await stream.send(request)
            with anyio.fail_after(10):
                sent, got = await trickle_until_closed(stream, body, 0.02)
            await stream.aclose()
        assert got == b""
        assert sent < len(body)
        assert rec.of("scope") == []
        assert refserver_errors(caplog) == []

    async def test_frame_trickled_without_pongs_is_cut_at_the_ping_timeout(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="refserver")
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            rec.add("event", await receive())

        message = frame(0x2, b"x" * 120)
        async with serving(app, ws_ping_interval_s=0.1, ws_ping_timeout_s=0.2) as server:
            stream = await connect(server.port)
            await stream.send(handshake_request())
            with anyio.fail_after(10):
                sent, got = await trickle_until_closed(stream, message, 0.02)
                await rec.wait_kind("event")
            await stream.aclose()
        assert got.startswith(b"HTTP/1.1 101 ")
        assert sent < len(message)  # about 2.5 s of trickling
        assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
        assert refserver_errors(caplog) == []


# ---------------------------------------------------------------- properties over sockets


async def keep_serving(port: int) -> None:
    async with HTTPClient.open(port) as client:
        await client.send_request("GET", "/")
        response, _ = await client.read_response()
    assert response.status_code == 200


class TestArbitraryBytesOverSockets:
    """Whatever bytes a client sends, then its FIN: the HTTP path answers with whole responses
    (a 4xx/5xx for anything malformed) or closes quietly; the WebSocket path, after a good
    handshake, ends with at most one close frame and exactly one disconnect to the app; never a
    record at error level, never a hang; the server keeps serving."""

    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,  # the same examples every run: the suite never flakes; reliability.fuzz explores
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=http_inputs())
    async def test_http_path(self, data: bytes, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="refserver")
        caplog.clear()
        async with serving(echo_request, timeout_keep_alive_s=1.0) as server:
            problems = await run_http_input(server.port, data)
            await keep_serving(server.port)
        assert problems == []
        assert refserver_errors(caplog) == []

    @settings(
        max_examples=15,
        deadline=None,
        derandomize=True,  # the same examples every run: the suite never flakes; reliability.fuzz explores
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=ws_inputs(), deflate=st.booleans())
    async def test_websocket_path(self, data: bytes, deflate: bool, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG, logger="refserver")
        caplog.clear()
        app, seen = ws_app()
        async with serving(app, ws_max_size_bytes=1024) as server:
            problems = await run_ws_input(server.port, data, seen, deflate=deflate)
            await keep_serving(server.port)
        assert problems == []
        assert refserver_errors(caplog) == []
