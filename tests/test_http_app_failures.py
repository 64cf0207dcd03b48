"""App failures (docs/decisions.md#after-complete-ignored, #http-app-ends-incomplete) and
validation of every app->server message (asgi spec, "Error Handling")."""

from __future__ import annotations

from typing import Any

import anyio
import h11
import pytest

import refserver
from tests.support import HTTPClient, Recorder, connect, http_request, read_until_eof, refserver_errors, serving

pytestmark = pytest.mark.anyio

START = {"type": "http.response.start", "status": 200}
BODY = {"type": "http.response.body", "body": b"ok"}
INTERNAL_ERROR_HEAD = [
    b"HTTP/1.1 500 Internal Server Error",
    b"content-type: text/plain; charset=utf-8",
    b"content-length: 22",
    b"connection: close",
]


async def raw_exchange(port: int, data: bytes) -> bytes:
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


def errors_of(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, type[BaseException] | None]]:
    return [(r.name, r.getMessage(), r.exc_info[0] if r.exc_info else None) for r in refserver_errors(caplog)]


# ---------------------------------------------------------------- app ends badly


async def test_return_without_response_is_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split_head(raw) == (INTERNAL_ERROR_HEAD, b"Internal Server Error\n")
    assert errors_of(caplog) == [
        (
            "refserver.error",
            "ASGI application returned without completing the response (GET /nothing, state AWAITING_START)",
            None,
        )
    ]


async def test_return_after_start_only_is_500_since_nothing_was_sent(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-lost", b"1")]})

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split_head(raw) == (INTERNAL_ERROR_HEAD, b"Internal Server Error\n")
    assert [m for _, m, _ in errors_of(caplog)] == [
        "ASGI application returned without completing the response (GET /, state START_HELD)"
    ]


async def test_head_500_has_no_body() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("boom")

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert split_head(raw) == (INTERNAL_ERROR_HEAD, b"")


async def test_return_mid_response_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("path", scope["path"])
        await send(START)
        await send({"type": "http.response.body", "body": b"part1", "more_body": True})

    with anyio.fail_after(5):
        async with serving(app) as server:
            # A second, pipelined request must not be served on the broken connection.
            raw = await raw_exchange(
                server.port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
            )
    lines, body = split_head(raw)
    assert lines == [b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked"]
    assert body == b"5\r\npart1\r\n"  # no terminating chunk: the client sees a truncated body
    assert rec.of("path") == ["/a"]
    assert [m for _, m, _ in errors_of(caplog)] == [
        "ASGI application returned without completing the response (GET /a, state SENDING_BODY)"
    ]


@pytest.mark.parametrize("sent", ["nothing", "start"])
async def test_raise_before_anything_reached_the_wire_is_500_logged_once(
    sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("path", scope["path"])
        if sent == "start":
            await send(START)
        raise ValueError("boom")

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(
                server.port, b"GET /r HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n"
            )
    # connection: close, and the pipelined request is never served.
    assert split_head(raw) == (INTERNAL_ERROR_HEAD, b"Internal Server Error\n")
    assert rec.of("path") == ["/r"]
    assert errors_of(caplog) == [("refserver.error", "Exception in ASGI application (GET /r)", ValueError)]
    [record] = refserver_errors(caplog)
    assert record.exc_info is not None and str(record.exc_info[1]) == "boom"


async def test_raise_mid_response_closes_the_connection_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        raise KeyError("late")

    with anyio.fail_after(5):
        async with serving(app) as server, HTTPClient.open(server.port) as client:
            await client.send_request()
            with pytest.raises(h11.RemoteProtocolError, match=r"incomplete chunked read"):
                await client.read_response()
    assert errors_of(caplog) == [("refserver.error", "Exception in ASGI application (GET /)", KeyError)]


async def test_server_survives_app_failures_and_keeps_serving() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/raise":
            raise RuntimeError("x")
        await send(START)
        await send(BODY)

    with anyio.fail_after(5):
        async with serving(app) as server:
            for _ in range(3):
                failed, _ = await http_request(server.port, "GET", "/raise")
                ok, body = await http_request(server.port, "GET", "/fine")
                assert (failed.status_code, ok.status_code, body) == (500, 200, b"ok")


# ---------------------------------------------------------------- invalid messages

RS = 'www spec 2.5, "Response Start - send event"'
RB = 'www spec 2.5, "Response Body - send event"'
EH = 'asgi spec, "Error Handling"'

# (messages sent first, the bad message, the exact error text)
INVALID: list[tuple[str, list[dict[str, Any]], Any, str]] = [
    (
        "body before start",
        [],
        {"type": "http.response.body", "body": b"x"},
        f"http.response.body sent before http.response.start (state: AWAITING_START; {RB})",
    ),
    (
        "start twice",
        [START],
        START,
        f"http.response.start sent twice: the response has already started (state: START_HELD; {RS})",
    ),
    (
        "start while streaming",
        [START, {"type": "http.response.body", "body": b"", "more_body": True}],
        START,
        f"http.response.start sent twice: the response has already started (state: SENDING_BODY; {RS})",
    ),
    (
        "unknown type",
        [],
        {"type": "http.response.foo"},
        f"http.response.foo is not a message an http connection accepts (state: AWAITING_START; {EH})",
    ),
    (
        "websocket message on http",
        [],
        {"type": "websocket.accept"},
        f"websocket.accept is not a message an http connection accepts (state: AWAITING_START; {EH})",
    ),
    (
        "not a dict",
        [],
        ["http.response.start"],
        "['http.response.start'] is a list, not a dict event (state: AWAITING_START; asgi spec, \"Events\")",
    ),
    (
        "no type",
        [],
        {"status": 200},
        "event {'status': 200} has no str 'type' key (state: AWAITING_START; asgi spec, \"Events\")",
    ),
    (
        "no status",
        [],
        {"type": "http.response.start"},
        f"http.response.start has no status (a required key) (state: AWAITING_START; {RS})",
    ),
    (
        "str status",
        [],
        {"type": "http.response.start", "status": "200"},
        f"http.response.start has status '200'; it must be an int (state: AWAITING_START; {RS})",
    ),
    (
        "bool status",
        [],
        {"type": "http.response.start", "status": True},
        f"http.response.start has status True; it must be an int (state: AWAITING_START; {RS})",
    ),
    (
        "status 600",
        [],
        {"type": "http.response.start", "status": 600},
        f"http.response.start has status 600; it must be in 100..599 (state: AWAITING_START; {RS})",
    ),
    (
        "status 99",
        [],
        {"type": "http.response.start", "status": 99},
        f"http.response.start has status 99; it must be in 100..599 (state: AWAITING_START; {RS})",
    ),
    (
        "informational status",
        [],
        {"type": "http.response.start", "status": 103},
        "http.response.start has status 103: an informational (1xx) status cannot be the final response "
        f"(RFC 9110 §15.2) (state: AWAITING_START; {RS})",
    ),
    (
        "headers a dict",
        [],
        {"type": "http.response.start", "status": 200, "headers": {b"a": b"b"}},
        "http.response.start has headers of type dict; it must be an iterable of [name, value] byte pairs "
        f"(state: AWAITING_START; {RS})",
    ),
    (
        "header not a pair",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b"a", b"b", b"c")]},
        "http.response.start has a header (b'a', b'b', b'c') that is not a [name, value] pair "
        f"(state: AWAITING_START; {RS})",
    ),
    (
        "str header name",
        [],
        {"type": "http.response.start", "status": 200, "headers": [("x-a", b"1")]},
        "http.response.start has a header ('x-a', b'1') whose name and value are not both bytes "
        f"(state: AWAITING_START; {RS})",
    ),
    (
        "str header value",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b"x-a", "1")]},
        "http.response.start has a header (b'x-a', '1') whose name and value are not both bytes "
        f"(state: AWAITING_START; {RS})",
    ),
    (
        "upper-case header name",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b"X-A", b"1")]},
        f"http.response.start has a header name b'X-A' that is not lower-case (state: AWAITING_START; {RS}); "
        "--app-violations warn would serve it (sent as b'x-a')",
    ),
    (
        "pseudo-header",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b":status", b"200")]},
        f"http.response.start has a pseudo-header b':status' (state: AWAITING_START; {RS})",
    ),
    (
        "header value with a newline",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1\r\nx-injected: 1")]},
        "http.response.start has headers that cannot be sent: Illegal header value b'1\\r\\nx-injected: 1' "
        f"(state: AWAITING_START; {RS})",
    ),
    (
        "header name not a token",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b"x a", b"1")]},
        "http.response.start has headers that cannot be sent: Illegal header name b'x a' "
        f"(state: AWAITING_START; {RS})",
    ),
    (
        "non-numeric content-length",
        [],
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"ten")]},
        f"http.response.start has headers that cannot be sent: bad Content-Length (state: AWAITING_START; {RS})",
    ),
    (
        "trailers not a bool",
        [],
        {"type": "http.response.start", "status": 200, "trailers": 0},
        f"http.response.start has trailers=0; it must be a bool (state: AWAITING_START; {RS})",
    ),
    (
        "str body",
        [START],
        {"type": "http.response.body", "body": "text"},
        f"http.response.body has body of type str; it must be bytes (state: START_HELD; {RB})",
    ),
    (
        "None body",
        [START, {"type": "http.response.body", "body": b"", "more_body": True}],
        {"type": "http.response.body", "body": None},
        f"http.response.body has body of type NoneType; it must be bytes (state: SENDING_BODY; {RB})",
    ),
    (
        "more_body not a bool",
        [START],
        {"type": "http.response.body", "body": b"", "more_body": 1},
        f"http.response.body has more_body=1; it must be a bool (state: START_HELD; {RB})",
    ),
]


@pytest.mark.parametrize(("first", "bad", "text"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
async def test_invalid_message_raises_asgi_protocol_error(
    first: list[dict[str, Any]], bad: Any, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for message in first:
            await send(message)
        try:
            await send(bad)
        except BaseException as exc:
            rec.add("raised", exc)
        # The state is unchanged: the app can still finish its response.
        if not first:
            await send(START)
        await send({"type": "http.response.body", "body": b"recovered"})

    with anyio.fail_after(5):
        async with serving(app) as server, HTTPClient.open(server.port) as client:
            await client.send_request()
            response, body = await client.read_response()
            # and the connection is still good for the next request
            await client.send_request()
            again, _ = await client.read_response()
    raised = rec.of("raised")
    assert len(raised) == 2  # once per request
    for exc in raised:
        assert type(exc) is refserver.ASGIProtocolError
        assert not isinstance(exc, OSError)
        assert isinstance(exc, refserver.RefserverError)
        assert str(exc) == text
    assert (response.status_code, body, again.status_code) == (200, b"recovered", 200)
    assert refserver_errors(caplog) == []


async def test_body_longer_than_declared_content_length() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3")]})
        try:
            await send({"type": "http.response.body", "body": b"hello"})
        except BaseException as exc:
            rec.add("raised", exc)

    with anyio.fail_after(5):
        async with serving(app) as server:
            raw = await raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [exc] = rec.of("raised")
    assert type(exc) is refserver.ASGIProtocolError
    assert str(exc) == (
        f"http.response.body cannot be sent: Too much data for declared Content-Length (state: SENDING_BODY; {RB})"
    )
    assert b"HTTP/1.1 200" not in raw  # never a response that lies about its length


async def test_body_shorter_than_declared_content_length_closes_the_connection() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        try:
            await send({"type": "http.response.body", "body": b"678"})
        except BaseException as exc:
            rec.add("raised", exc)

    with anyio.fail_after(5):
        async with serving(app) as server, HTTPClient.open(server.port) as client:
            await client.send_request()
            with pytest.raises(h11.RemoteProtocolError, match=r"received 5 bytes, expected 10"):
                await client.read_response()
    [exc] = rec.of("raised")
    assert type(exc) is refserver.ASGIProtocolError
    assert str(exc) == (
        f"http.response.body cannot be sent: Too little data for declared Content-Length (state: SENDING_BODY; {RB})"
    )


async def test_unknown_extra_keys_are_allowed(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "x-future": [1, 2], "reason": "fine"})
        await send({"type": "http.response.body", "body": b"a", "more_body": True, "flush": True})
        await send({"type": "http.response.body", "body": b"b", "x-note": None})

    with anyio.fail_after(5):
        async with serving(app) as server:
            response, body = await http_request(server.port)
    assert (response.status_code, body) == (200, b"ab")
    assert refserver_errors(caplog) == []


async def test_headers_may_be_any_iterable_of_pairs() -> None:
    def pairs() -> Any:
        yield (b"x-gen", b"1")
        yield [b"x-list", b"2"]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers: Any = pairs() if scope["path"] == "/gen" else ((b"x-tuple", b"3"),)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    with anyio.fail_after(5):
        async with serving(app) as server:
            gen, _ = await http_request(server.port, "GET", "/gen")
            tup, _ = await http_request(server.port, "GET", "/tuple")
    assert [(n, v) for n, v in gen.headers if n.startswith(b"x-")] == [(b"x-gen", b"1"), (b"x-list", b"2")]
    assert [(n, v) for n, v in tup.headers if n.startswith(b"x-")] == [(b"x-tuple", b"3")]


async def test_messages_after_completion_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    """www spec 2.5, "Response Body - send event": after completion "any further messages on the
    channel will be ignored" (docs/decisions.md#after-complete-ignored: refserver takes the literal reading)."""
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"done"})
        for late in (
            {"type": "http.response.body", "body": b"late"},
            {"type": "http.response.body", "body": b"late", "more_body": True},
            {"type": "http.response.start", "status": 404},
        ):
            rec.add("returned", await send(late))

    with anyio.fail_after(5):
        async with serving(app) as server, HTTPClient.open(server.port) as client:
            await client.send_request("GET", "/1")
            first = await client.read_response()
            await client.send_request("GET", "/2")
            second = await client.read_response()
            await client.stream.send_eof()
            rest = await read_until_eof(client.stream)
    assert (first[0].status_code, first[1]) == (200, b"done")
    assert (second[0].status_code, second[1]) == (200, b"done")
    assert rest == b""  # nothing late reached the wire
    assert rec.of("returned") == [None] * 6
    assert refserver_errors(caplog) == []


async def test_escaping_protocol_error_is_an_app_error(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.body", "body": b"x"})

    with anyio.fail_after(5):
        async with serving(app) as server:
            response, body = await http_request(server.port)
    assert (response.status_code, body) == (500, b"Internal Server Error\n")
    assert errors_of(caplog) == [
        ("refserver.error", "Exception in ASGI application (GET /)", refserver.ASGIProtocolError)
    ]


async def test_send_and_receive_of_an_ended_app_instance_touch_nothing() -> None:
    """docs/decisions.md#ended-http-instance: a leaked send() is ignored and a leaked receive() says
    http.disconnect; the next request on the same connection is not affected."""
    rec = Recorder()
    leaked: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/first":
            leaked.extend((receive, send))
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode()})
        if scope["path"] == "/second":
            old_receive, old_send = leaked
            await old_send({"type": "http.response.start", "status": 500})
            await old_send({"type": "http.response.body", "body": b"from the first app"})
            rec.add("old receive", await old_receive())

    async with serving(app) as server, HTTPClient.open(server.port) as client:
        await client.send_request("GET", "/first")
        first = await client.read_response()
        await client.send_request("GET", "/second")
        second = await client.read_response()
        await rec.wait_kind("old receive")
        await client.send_request("GET", "/third")
        third = await client.read_response()
    assert [(r.status_code, body) for r, body in (first, second, third)] == [
        (200, b"/first"),
        (200, b"/second"),
        (200, b"/third"),
    ]
    assert rec.of("old receive") == [{"type": "http.disconnect"}]
