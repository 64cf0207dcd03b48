"""Request bodies and response framing (www spec 2.5, "Request - receive event",
"Response Start - send event" and "Response Body - send event";
docs/decisions.md#expect-100-continue, #http-start-held)."""

from __future__ import annotations

from typing import Any

import anyio
import h11
import pytest

from tests.support import HTTPClient, Recorder, connect, header, read_until_eof, serving

pytestmark = pytest.mark.anyio


def without_date(response: h11.Response) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in response.headers if n != b"date"]


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` (ending with a ``Connection: close`` request) and read to EOF."""
    stream = await connect(port)
    try:
        await stream.send(data)
        return await read_until_eof(stream)
    finally:
        await stream.aclose()


def split_head(raw: bytes) -> tuple[list[bytes], bytes]:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, raw
    return [line for line in head.split(b"\r\n") if not line.startswith(b"date: ")], rest


def reading_app(rec: Recorder, respond: bool = True) -> Any:
    """Records every request event, then answers with the body it read."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            event = await receive()
            rec.add("event", event)
            body += event.get("body", b"")
            if not event.get("more_body", False):
                break
        if respond:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": scope["path"].encode() + b":" + body})

    return app


# ---------------------------------------------------------------- request bodies


async def test_empty_body_is_one_http_request_event() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(reading_app(rec)) as server, HTTPClient.open(server.port) as client:
            await client.send_request("GET", "/e")
            response, body = await client.read_response()
    assert (response.status_code, body) == (200, b"/e:")
    assert rec.of("event") == [{"type": "http.request", "body": b"", "more_body": False}]


async def test_content_length_body_streams_with_more_body() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(reading_app(rec)) as server:
            stream = await connect(server.port)
            try:
                await stream.send(b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
                await rec.wait_kind("event", 1)
                await stream.send(b"def")
                await rec.wait_kind("event", 2)
                client = HTTPClient(stream)
                client.conn.send(
                    h11.Request(method="POST", target="/s", headers=[("host", "x"), ("content-length", "6")])
                )
                client.conn.send(h11.Data(data=b"abcdef"))
                client.conn.send(h11.EndOfMessage())
                response, body = await client.read_response()
            finally:
                await stream.aclose()
    assert rec.of("event") == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"def", "more_body": False},
    ]
    assert (response.status_code, body) == (200, b"/s:abcdef")


async def test_chunked_request_body_is_dechunked() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(reading_app(rec)) as server:
            stream = await connect(server.port)
            try:
                await stream.send(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
                await rec.wait_kind("event", 1)
                await stream.send(b"A\r\n0123456789\r\n")
                await rec.wait_kind("event", 2)
                await stream.send(b"0\r\n\r\n")
                await rec.wait_kind("event", 3)
                client = HTTPClient(stream)
                client.conn.send(
                    h11.Request(method="POST", target="/c", headers=[("host", "x"), ("transfer-encoding", "chunked")])
                )
                client.conn.send(h11.EndOfMessage())
                response, body = await client.read_response()
            finally:
                await stream.aclose()
    assert rec.of("event") == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"0123456789", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]
    assert (response.status_code, body) == (200, b"/c:abc0123456789")


async def test_whole_chunked_body_in_one_write_arrives_complete() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(reading_app(rec)) as server:
            raw = await raw_exchange(
                server.port,
                b"POST /w HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
            )
    assert b"".join(e["body"] for e in rec.of("event")) == b"abcde"
    assert rec.of("event")[-1]["more_body"] is False
    assert all(e["more_body"] for e in rec.of("event")[:-1])
    assert raw.endswith(b"\r\n\r\n/w:abcde")


async def test_large_body_arrives_whole_and_in_order() -> None:
    rec = Recorder()
    payload = bytes(range(256)) * 4096  # 1 MiB
    with anyio.fail_after(10):
        async with serving(reading_app(rec, respond=False)) as server, HTTPClient.open(server.port) as client:
            await client.send_request("PUT", "/big", body=payload)
            response, _ = await client.read_response()
    assert response.status_code == 500  # the app did not respond
    events = rec.of("event")
    assert b"".join(e["body"] for e in events) == payload
    assert [e["more_body"] for e in events] == [True] * (len(events) - 1) + [False]


# ---------------------------------------------------------------- keep-alive and pipelining


async def test_keep_alive_requests_share_one_connection() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(reading_app(rec)) as server, HTTPClient.open(server.port) as client:
            results = []
            for i in range(3):
                await client.send_request("POST", f"/k{i}", body=b"x" * i)
                response, body = await client.read_response()
                results.append((response.status_code, body))
    assert results == [(200, b"/k0:"), (200, b"/k1:x"), (200, b"/k2:xx")]


async def test_pipelined_requests_answered_in_order_each_with_own_scope() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("path", scope["path"])
        event = await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode() + b"=" + event["body"]})

    requests = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1"
        b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n33\r\n0\r\n\r\n"
        b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, requests)
    client = h11.Connection(h11.CLIENT)
    bodies = []
    for target in ("/a", "/b", "/c", "/d"):
        client.send(h11.Request(method="GET", target=target, headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        if target == "/a":
            client.receive_data(raw)
            client.receive_data(b"")
        response = client.next_event()
        assert isinstance(response, h11.Response) and response.status_code == 200
        data = client.next_event()
        assert isinstance(data, h11.Data)
        assert isinstance(client.next_event(), h11.EndOfMessage)
        bodies.append(data.data)
        if target != "/d":
            client.start_next_cycle()
    assert bodies == [b"/a=1", b"/b=", b"/c=33", b"/d="]
    assert rec.of("path") == ["/a", "/b", "/c", "/d"]


# ------------------------------------------------------ Expect: 100-continue (docs/decisions.md#expect-100-continue)


async def test_100_continue_sent_on_first_receive_only() -> None:
    rec = Recorder()
    gate = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await gate.wait()  # nothing may be sent before the app asks for the body
        rec.add("receiving")
        body = b""
        while True:
            event = await receive()
            rec.add("event", event)
            body += event["body"]
            if not event["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})

    with anyio.fail_after(5):
        async with serving(app) as server:
            stream = await connect(server.port)
            try:
                await stream.send(
                    b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                gate.set()
                received = b""
                while b"\r\n\r\n" not in received:
                    received += await stream.receive()
                assert received == b"HTTP/1.1 100 Continue\r\n\r\n"
                await stream.send(b"2\r\nab\r\n")
                await rec.wait_kind("event", 1)
                await stream.send(b"2\r\ncd\r\n")
                await rec.wait_kind("event", 2)
                await stream.send(b"0\r\n\r\n")
                await rec.wait_kind("event", 3)
                rest = b""
                while not rest.endswith(b"abcd"):
                    rest += await stream.receive()
            finally:
                await stream.aclose()
    lines, body = split_head(rest)
    assert lines == [b"HTTP/1.1 200 OK", b"content-length: 4"]
    assert body == b"abcd"
    assert b"100 Continue" not in rest


async def test_no_100_continue_when_app_answers_without_reading() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413})
        await send({"type": "http.response.body", "body": b"no"})

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(
                server.port, b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
    lines, body = split_head(raw)
    # The unread body makes the connection unusable, so it is closed after the response.
    assert lines[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert body == b"no"
    assert b"100" not in lines[0]
    assert b"Continue" not in raw


async def test_expect_with_body_already_sent_is_served() -> None:
    # RFC 9110 §10.1.1: the server MAY omit the 100 when it already has the content, so
    # whether one precedes the final response is not asserted.
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(reading_app(rec)) as server:
            raw = await raw_exchange(
                server.port,
                b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
                b"Content-Length: 2\r\n\r\nhi",
            )
    assert b"HTTP/1.1 200 OK\r\n" in raw
    assert raw.endswith(b"\r\n\r\n/x:hi")
    assert rec.of("event") == [{"type": "http.request", "body": b"hi", "more_body": False}]


# ---------------------------------------------------------------- response framing


def responding_app(*messages: dict[str, Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    return app


START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def test_single_body_gets_content_length() -> None:
    app = responding_app(START, {"type": "http.response.body", "body": b"hello"})
    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, GET_CLOSE)
    lines, body = split_head(raw)
    assert lines == [b"HTTP/1.1 200 OK", b"content-type: text/plain", b"content-length: 5", b"Connection: close"]
    assert body == b"hello"


async def test_streamed_body_is_chunked() -> None:
    app = responding_app(
        START,
        {"type": "http.response.body", "body": b"abc", "more_body": True},
        {"type": "http.response.body", "body": b"", "more_body": True},
        {"type": "http.response.body", "body": b"de", "more_body": True},
        {"type": "http.response.body"},
    )
    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, GET_CLOSE)
    lines, body = split_head(raw)
    assert lines == [
        b"HTTP/1.1 200 OK",
        b"content-type: text/plain",
        b"Transfer-Encoding: chunked",
        b"Connection: close",
    ]
    assert body == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"


async def test_app_content_length_is_kept_for_a_streamed_body() -> None:
    app = responding_app(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]},
        {"type": "http.response.body", "body": b"hel", "more_body": True},
        {"type": "http.response.body", "body": b"lo", "more_body": False},
    )
    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, GET_CLOSE)
    lines, body = split_head(raw)
    assert lines == [b"HTTP/1.1 200 OK", b"content-length: 5", b"Connection: close"]
    assert body == b"hello"


async def test_app_transfer_encoding_is_ignored() -> None:
    single = responding_app(
        {"type": "http.response.start", "status": 200, "headers": [(b"transfer-encoding", b"chunked")]},
        {"type": "http.response.body", "body": b"whole"},
    )
    streamed = responding_app(
        {"type": "http.response.start", "status": 200, "headers": [(b"transfer-encoding", b"gzip, chunked")]},
        {"type": "http.response.body", "body": b"ab", "more_body": True},
        {"type": "http.response.body", "body": b"c"},
    )
    with anyio.fail_after(5):
        async with serving(single) as server:
            raw_single = await raw_exchange(server.port, GET_CLOSE)
        async with serving(streamed) as server:
            raw_streamed = await raw_exchange(server.port, GET_CLOSE)
    assert split_head(raw_single) == ([b"HTTP/1.1 200 OK", b"content-length: 5", b"Connection: close"], b"whole")
    assert split_head(raw_streamed) == (
        [b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Connection: close"],
        b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
    )


async def test_http_1_0_streamed_body_is_close_delimited() -> None:
    app = responding_app(
        START,
        {"type": "http.response.body", "body": b"abc", "more_body": True},
        {"type": "http.response.body", "body": b"de"},
    )
    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
    lines, body = split_head(raw)
    assert lines == [b"HTTP/1.1 200 OK", b"content-type: text/plain", b"Connection: close"]
    assert body == b"abcde"


async def test_head_response_has_no_body() -> None:
    app = responding_app(START, {"type": "http.response.body", "body": b"hello"})
    streamed = responding_app(
        START,
        {"type": "http.response.body", "body": b"abc", "more_body": True},
        {"type": "http.response.body", "body": b"de"},
    )
    head_close = b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, head_close)
            # On a kept-alive connection the next response follows the HEAD head directly.
            both = await raw_exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + GET_CLOSE)
        async with serving(streamed) as server:
            raw_streamed = await raw_exchange(server.port, head_close)
    assert split_head(raw) == (
        [b"HTTP/1.1 200 OK", b"content-type: text/plain", b"content-length: 5", b"Connection: close"],
        b"",
    )
    first, rest = split_head(both)
    assert first == [b"HTTP/1.1 200 OK", b"content-type: text/plain", b"content-length: 5"]
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nhello")
    lines, body = split_head(raw_streamed)
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert body == b""


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_carry_no_body(status: int) -> None:
    app = responding_app(
        {"type": "http.response.start", "status": status},
        {"type": "http.response.body", "body": b"ignored"},
    )
    with anyio.fail_after(5):
        async with serving(app) as server, HTTPClient.open(server.port) as client:
            await client.send_request("GET", "/")
            response, body = await client.read_response()
            # The connection stays usable: no stray body bytes were written.
            await client.send_request("GET", "/")
            again, _ = await client.read_response()
    assert (response.status_code, body, header(response, b"content-length")) == (status, b"", [])
    assert again.status_code == status


async def test_response_headers_kept_in_order_with_duplicates() -> None:
    app = responding_app(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"set-cookie", b"a=1"), (b"x-y", b"Mixed Case"), (b"set-cookie", b"b=2")],
        },
        {"type": "http.response.body", "body": b""},
    )
    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, GET_CLOSE)
    lines, body = split_head(raw)
    assert lines == [
        b"HTTP/1.1 201 Created",
        b"set-cookie: a=1",
        b"x-y: Mixed Case",
        b"set-cookie: b=2",
        b"content-length: 0",
        b"Connection: close",
    ]
    assert body == b""


async def test_date_header_added_unless_app_sets_one() -> None:
    own = responding_app(
        {"type": "http.response.start", "status": 200, "headers": [(b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")]},
        {"type": "http.response.body"},
    )
    plain = responding_app({"type": "http.response.start", "status": 200}, {"type": "http.response.body"})
    with anyio.fail_after(5):
        async with serving(own) as server, HTTPClient.open(server.port) as client:
            await client.send_request()
            response, _ = await client.read_response()
        async with serving(plain) as server, HTTPClient.open(server.port) as client:
            await client.send_request()
            response2, _ = await client.read_response()
    assert header(response, b"date") == [b"Thu, 01 Jan 1970 00:00:00 GMT"]
    [date] = header(response2, b"date")
    assert date.endswith(b" GMT")
    assert without_date(response2) == [(b"content-length", b"0")]
