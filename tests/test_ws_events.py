"""The events an app exchanges with refserver over a WebSocket (www spec 2.5; extensions).

accept (refusals of a bad one), send (malformed and wrong-state messages), close (code, reason),
the 403 for a close before accept and the denial-response extension, and the websockets library
as an independent client. The exact bytes of accept, send and receive are pinned without
sockets in tests/test_ws_machine.py (TestAcceptSendEvent, TestSendSendEvent,
TestReceiveReceiveEvent).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import h11
import pytest

from refserver import ASGIProtocolError, ClientDisconnected
from tests.support import (
    TIMEOUT,
    Recorder,
    Rejected,
    WSClient,
    close_frame,
    connect,
    handshake_request,
    header,
    open_raw,
    read_exactly,
    read_until_eof,
    refserver_errors,
    serving,
)

pytestmark = pytest.mark.anyio

Script = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def scripted(rec: Recorder, script: Script) -> Any:
    """Run ``script`` as the app; record what it raised and when it ended."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await script(scope, receive, send)
        except BaseException as exc:
            rec.add("raised", exc)
            raise
        finally:
            rec.add("ended")

    return app


async def send_error(send: Any, message: dict[str, Any]) -> BaseException | None:
    try:
        await send(message)
    except Exception as exc:
        return exc
    return None


async def drain_disconnect(receive: Any, rec: Recorder) -> None:
    while True:
        message = await receive()
        rec.add("event", message)
        if message["type"] == "websocket.disconnect":
            return


# ---------------------------------------------------------------- accept


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat", "superchat"], "bogus"), ([], "chat"), (["chat"], "Chat"), (["chat"], "")],
)
async def test_unoffered_subprotocol_raises_and_answers_500(offered: list[str], chosen: str) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        rec.add("error", await send_error(send, {"type": "websocket.accept", "subprotocol": chosen}))
        rec.add("event", await receive())
        rec.add("then", await send_error(send, {"type": "websocket.send", "text": "x"}))

    extra = [("Sec-WebSocket-Protocol", ", ".join(offered))] if offered else []
    async with serving(scripted(rec, script)) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port, extra=extra)
        await rec.wait_kind("ended")
    assert rejected.value.response.status_code == 500
    assert rejected.value.body == b"Internal Server Error"
    error = rec.of("error")[0]
    assert type(error) is ASGIProtocolError
    assert f"chose subprotocol {chosen!r}, which the client did not offer" in str(error)
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    assert isinstance(rec.of("then")[0], ClientDisconnected)
    assert rec.of("raised") == []


@pytest.mark.parametrize(
    "name",
    [
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-x",
        b"upgrade",
        b"connection",
    ],
)
async def test_server_only_header_in_accept_raises_and_answers_500(name: bytes) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        message = {"type": "websocket.accept", "headers": [(b"x-fine", b"1"), (name, b"v")]}
        rec.add("error", await send_error(send, message))
        rec.add("event", await receive())

    async with serving(scripted(rec, script)) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port, extra=[("Sec-WebSocket-Protocol", "v")])
        await rec.wait_kind("ended")
    assert rejected.value.response.status_code == 500
    assert header(rejected.value.response, b"x-fine") == []
    error = rec.of("error")[0]
    assert type(error) is ASGIProtocolError
    assert f"sets header {name.decode()!r}, which only the server may set" in str(error)
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.accept", "subprotocol": b"chat"},
        {"type": "websocket.accept", "headers": [(b"X-Upper", b"1")]},
        {"type": "websocket.accept", "headers": [("x-str", "1")]},
        {"type": "websocket.accept", "headers": {b"x": b"1"}},
    ],
    ids=["subprotocol bytes", "upper-case header", "str header", "headers dict"],
)
async def test_malformed_accept_raises_and_leaves_the_handshake_pending(message: dict[str, Any]) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        rec.add("error", await send_error(send, message))
        await send({"type": "websocket.accept"})  # state unchanged: a good accept still works
        await send({"type": "websocket.send", "text": "ok"})
        await drain_disconnect(receive, rec)

    async with serving(scripted(rec, script)) as server:
        ws = await WSClient.connect(server.port, extra=[("Sec-WebSocket-Protocol", "chat")])
        assert await ws.next_message() == "ok"
        await ws.close()
        await ws.expect_close()
    assert type(rec.of("error")[0]) is ASGIProtocolError


# ---------------------------------------------------------------- send


BAD_SENDS: dict[str, dict[str, Any]] = {
    "no payload keys": {"type": "websocket.send"},
    "both None": {"type": "websocket.send", "text": None, "bytes": None},
    "both set": {"type": "websocket.send", "text": "a", "bytes": b"b"},
    "both empty": {"type": "websocket.send", "text": "", "bytes": b""},
    "only bytes None": {"type": "websocket.send", "bytes": None},
    "text int": {"type": "websocket.send", "text": 123},
    "text bytes": {"type": "websocket.send", "text": b"x"},
    "bytes str": {"type": "websocket.send", "bytes": "str"},
    "bytes int": {"type": "websocket.send", "bytes": 5},
    "bytes memoryview": {"type": "websocket.send", "bytes": memoryview(b"m")},
    "lone surrogate": {"type": "websocket.send", "text": "\ud800"},
}


async def test_malformed_sends_raise_and_put_nothing_on_the_wire() -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for name, message in BAD_SENDS.items():
            rec.add("error", (name, await send_error(send, message)))
        await send({"type": "websocket.send", "text": "marker"})  # the connection is still open
        await drain_disconnect(receive, rec)

    async with serving(scripted(rec, script), ws_per_message_deflate=False) as server:
        stream, _, rest = await open_raw(server.port)
        # The first thing on the wire after the 101 is the marker: exactly one text frame.
        assert await read_exactly(stream, rest, 8) == b"\x81\x06marker"
        await stream.send(close_frame(1000))
        await rec.wait_kind("ended")
    errors = dict(rec.of("error"))
    assert list(errors) == list(BAD_SENDS)
    for name, error in errors.items():
        assert type(error) is ASGIProtocolError, name
        assert str(error).startswith("websocket.send "), name
        assert "state: OPEN" in str(error), name
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "websocket.send", "text": "x"}, "websocket.send sent before websocket.accept"),
        ({"type": "websocket.http.response.body", "body": b""}, "sent before websocket.http.response.start"),
        ({"type": "http.response.start", "status": 200}, "is not a message a websocket connection accepts"),
        ({"type": "websocket.bogus"}, "is not a message a websocket connection accepts"),
        ({"text": "no type"}, "has no str 'type' key"),
    ],
)
async def test_wrong_state_messages_before_accept_raise_runtime_errors(message: dict[str, Any], problem: str) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        rec.add("error", await send_error(send, message))
        await send({"type": "websocket.accept"})
        await drain_disconnect(receive, rec)

    async with serving(scripted(rec, script)) as server:
        ws = await WSClient.connect(server.port)
        await ws.close()
        await ws.expect_close()
        await rec.wait_kind("ended")
    error = rec.of("error")[0]
    assert isinstance(error, RuntimeError) and not isinstance(error, OSError)
    assert problem in str(error)


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"type": "websocket.accept"}, "sent twice: the connection is already accepted"),
        ({"type": "websocket.http.response.start", "status": 403}, "a denial response is only possible before"),
    ],
)
async def test_wrong_state_messages_after_accept_raise_runtime_errors(message: dict[str, Any], problem: str) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        rec.add("error", await send_error(send, message))
        await send({"type": "websocket.send", "text": "still open"})
        await drain_disconnect(receive, rec)

    async with serving(scripted(rec, script)) as server:
        ws = await WSClient.connect(server.port)
        assert await ws.next_message() == "still open"
        await ws.close()
        await ws.expect_close()
    error = rec.of("error")[0]
    assert type(error) is ASGIProtocolError
    assert problem in str(error)


# ---------------------------------------------------------------- close


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        ({"type": "websocket.close"}, 1000, ""),
        ({"type": "websocket.close", "code": None, "reason": None}, 1000, ""),
        ({"type": "websocket.close", "code": 4001, "reason": "bye-ü"}, 4001, "bye-ü"),
        ({"type": "websocket.close", "code": 1001}, 1001, ""),
        ({"type": "websocket.close", "code": 1011, "reason": "oops"}, 1011, "oops"),
    ],
)
async def test_close_sends_code_and_reason(message: dict[str, Any], code: int, reason: str) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send(message)
        rec.add("event", await receive())

    async with serving(scripted(rec, script)) as server:
        ws = await WSClient.connect(server.port)
        close = await ws.expect_close()
        await ws.send_raw(close_frame(close.code, close.reason or ""))
        await ws.expect_eof()
        await rec.wait_kind("ended")
    assert (close.code, close.reason) == (code, reason)
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": code, "reason": reason}]


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
)
async def test_every_legal_close_code_goes_on_the_wire(code: int) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code})

    async with serving(scripted(rec, script), ws_per_message_deflate=False) as server:
        stream, _, rest = await open_raw(server.port)
        data = await read_exactly(stream, rest, 4)
        await stream.aclose()
    assert data == b"\x88\x02" + code.to_bytes(2, "big")


ILLEGAL_CODES: list[Any] = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535, -1, "4000", True, 1000.0]


async def test_illegal_close_codes_raise_and_nothing_goes_on_the_wire() -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for code in ILLEGAL_CODES:
            rec.add("error", await send_error(send, {"type": "websocket.close", "code": code}))
        rec.add("error", await send_error(send, {"type": "websocket.close", "reason": b"bytes"}))
        await send({"type": "websocket.close", "code": 3000})
        rec.add("event", await receive())

    async with serving(scripted(rec, script), ws_per_message_deflate=False) as server:
        stream, _, rest = await open_raw(server.port)
        # The first frame is the legal close 3000.
        assert await read_exactly(stream, rest, 4) == b"\x88\x02\x0b\xb8"
        await stream.send(close_frame(3000))
        await rec.wait_kind("ended")
    errors = rec.of("error")
    assert len(errors) == len(ILLEGAL_CODES) + 1
    for code, error in zip(ILLEGAL_CODES, errors, strict=False):
        assert type(error) is ASGIProtocolError, code
        assert f"has code {code!r}" in str(error), code
    assert "has reason b'bytes'; it must be a str" in str(errors[-1])
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 3000, "reason": ""}]


@pytest.mark.parametrize(
    ("reason", "sent", "cut"),
    [
        ("a" * 123, "a" * 123, False),
        ("é" * 61 + "a", "é" * 61 + "a", False),  # 123 bytes exactly
        ("a" * 124, "a" * 123, True),
        ("é" * 100, "é" * 61, True),  # 200 bytes -> 122, the é at 122-123 would be split
        ("a" * 122 + "€", "a" * 122, True),  # € is 3 bytes: 125 -> 122
        ("a" * 120 + "😀x", "a" * 120, True),  # 😀 is 4 bytes: 120+4 = 124 > 123
        ("a" * 119 + "😀x", "a" * 119 + "😀", True),
    ],
)
async def test_long_close_reason_cut_at_a_character_boundary_with_one_warning(
    reason: str, sent: str, cut: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="refserver")
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000, "reason": reason})
        rec.add("event", await receive())

    async with serving(scripted(rec, script)) as server:
        ws = await WSClient.connect(server.port)
        close = await ws.expect_close()
        await ws.send_raw(close_frame(4000))
        await rec.wait_kind("ended")
    assert close.code == 4000
    assert close.reason == sent
    warnings = [r for r in caplog.records if r.name.startswith("refserver") and r.levelno == logging.WARNING]
    if cut:
        assert len(warnings) == 1
        assert "longer than 123 UTF-8 bytes" in warnings[0].getMessage()
    else:
        assert warnings == []
    assert refserver_errors(caplog) == []


# ---------------------------------------------------------------- close before accept: 403


async def test_close_before_accept_answers_403_at_once_while_the_app_runs() -> None:
    rec = Recorder()
    release = anyio.Event()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert await receive() == {"type": "websocket.connect"}
        await send({"type": "websocket.close", "code": 4003, "reason": "not here"})
        rec.add("closed")
        rec.add("event", await receive())
        rec.add("send", await send_error(send, {"type": "websocket.send", "text": "x"}))
        await release.wait()

    async with serving(scripted(rec, script)) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port)
        await rec.wait_kind("send")
        assert rec.of("ended") == []  # the 403 did not wait for the app
        release.set()
        await rec.wait_kind("ended")
    response = rejected.value.response
    assert response.status_code == 403
    assert rejected.value.body == b""
    assert header(response, b"content-length") == [b"0"]
    assert header(response, b"connection") == [b"close"]
    assert header(response, b"upgrade") == [] and header(response, b"sec-websocket-accept") == []
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    error = rec.of("send")[0]
    assert type(error) is ClientDisconnected
    assert str(error) == "the handshake was refused with HTTP 403"


async def test_close_before_accept_then_tcp_closed() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.close"})
        await anyio.sleep_forever()  # the app never returns; the connection still ends

    async with serving(app, shutdown_timeout_s=0.1) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        with anyio.fail_after(TIMEOUT):
            data = await read_until_eof(stream)
        await stream.aclose()
    assert data.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert data.endswith(b"\r\n\r\n")


# ---------------------------------------------------------------- the denial response extension


async def read_http_response(
    stream: Any, on_data: Callable[[bytes], Awaitable[None]] | None = None
) -> tuple[h11.Response, bytes, list[bytes]]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    conn.send(h11.EndOfMessage())
    response: h11.Response | None = None
    chunks: list[bytes] = []
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
                chunks.append(bytes(event.data))
                if on_data is not None:
                    await on_data(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r}")
    assert response is not None
    return response, b"".join(chunks), chunks


async def test_denial_response_streams_with_more_body() -> None:
    rec = Recorder()
    steps = [anyio.Event(), anyio.Event()]

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "websocket.http.response" in scope["extensions"]
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"a"), (b"x-why", b"b")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await steps[0].wait()
        await send({"type": "websocket.http.response.body", "body": b"pe", "more_body": True})
        await steps[1].wait()
        await send({"type": "websocket.http.response.body", "body": b"", "more_body": False})
        rec.add("event", await receive())
        rec.add("send", await send_error(send, {"type": "websocket.send", "text": "x"}))
        rec.add("body", await send_error(send, {"type": "websocket.http.response.body", "body": b"more"}))

    async def on_data(data: bytes) -> None:
        # Each part reaches the client before the app sends the next one.
        rec.add("client got", data)
        for step in steps:
            if not step.is_set():
                step.set()
                return

    async with serving(scripted(rec, script)) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        response, body, chunks = await read_http_response(stream, on_data)
        rest = await read_until_eof(stream)
        await stream.aclose()
        await rec.wait_kind("ended")
    assert response.status_code == 401
    assert list(response.headers) == [
        (b"content-type", b"text/plain"),
        (b"x-why", b"a"),
        (b"x-why", b"b"),
        (b"connection", b"close"),
        (b"transfer-encoding", b"chunked"),
    ]
    assert body == b"nope"
    assert chunks == [b"no", b"pe"]
    assert rest == b""
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]
    assert type(rec.of("send")[0]) is ClientDisconnected
    assert str(rec.of("send")[0]) == "the handshake was answered with the app's HTTP 401 response"
    assert type(rec.of("body")[0]) is ClientDisconnected


async def test_denial_response_in_one_body_has_content_length() -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 404, "headers": [(b"x-custom", b"1")]})
        await send({"type": "websocket.http.response.body", "body": b"not found"})
        rec.add("event", await receive())
        rec.add("event", await receive())

    async with serving(scripted(rec, script)) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port)
        await rec.wait_kind("ended")
    response = rejected.value.response
    assert response.status_code == 404
    assert list(response.headers) == [(b"x-custom", b"1"), (b"content-length", b"9"), (b"connection", b"close")]
    assert rejected.value.body == b"not found"
    # connect was never read: it comes first, then the disconnect (scenario 39).
    assert rec.of("event") == [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1006, "reason": ""},
    ]
    assert errors_free(rec)


def errors_free(rec: Recorder) -> bool:
    return rec.of("raised") == []


@pytest.mark.parametrize(
    ("second", "problem"),
    [
        ({"type": "websocket.http.response.start", "status": 401}, "sent twice: the denial response has already"),
        ({"type": "websocket.accept"}, "sent during a denial response"),
        ({"type": "websocket.send", "text": "x"}, "sent during a denial response"),
    ],
)
async def test_denial_start_then_wrong_message_raises(second: dict[str, Any], problem: str) -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 401})
        rec.add("error", await send_error(send, second))
        await send({"type": "websocket.http.response.body", "body": b"denied"})

    async with serving(scripted(rec, script)) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port)
        await rec.wait_kind("ended")
    assert rejected.value.response.status_code == 401
    assert rejected.value.body == b"denied"
    error = rec.of("error")[0]
    assert type(error) is ASGIProtocolError
    assert problem in str(error)


async def test_denial_body_beyond_its_content_length_raises_an_asgi_error() -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 400, "headers": [(b"content-length", b"2")]})
        await send({"type": "websocket.http.response.body", "body": b"ab", "more_body": True})
        rec.add("error", await send_error(send, {"type": "websocket.http.response.body", "body": b"cd"}))
        rec.add("event", await receive())
        rec.add("event", await receive())

    async with serving(scripted(rec, script)) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        with anyio.fail_after(TIMEOUT):
            data = await read_until_eof(stream)
        await stream.aclose()
        await rec.wait_kind("ended")
    assert data == b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nconnection: close\r\n\r\nab"
    error = rec.of("error")[0]
    assert type(error) is ASGIProtocolError
    assert str(error).startswith("websocket.http.response.body cannot be sent")
    assert rec.of("event") == [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1006, "reason": ""},
    ]
    assert rec.of("raised") == []


async def test_denial_body_short_of_its_content_length_raises_an_asgi_error() -> None:
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 400, "headers": [(b"content-length", b"10")]})
        await send({"type": "websocket.http.response.body", "body": b"ab", "more_body": True})
        rec.add("error", await send_error(send, {"type": "websocket.http.response.body", "body": b"cd"}))

    async with serving(scripted(rec, script)) as server:
        stream = await connect(server.port)
        await stream.send(handshake_request("/"))
        with anyio.fail_after(TIMEOUT):
            data = await read_until_eof(stream)
        await stream.aclose()
        await rec.wait_kind("ended")
    # The response cannot be completed: the connection ends short of the length (RFC 9112 §6.3).
    assert data == b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\nconnection: close\r\n\r\nabcd"
    error = rec.of("error")[0]
    assert type(error) is ASGIProtocolError
    assert str(error).startswith("websocket.http.response.body cannot be sent")


async def test_denial_start_with_unsendable_headers_raises_at_start() -> None:
    """Like http.response.start: the headers are checked when the start arrives, and the app may
    still answer properly."""
    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        bad = {"type": "websocket.http.response.start", "status": 401, "headers": [(b"x", b"a\r\nb")]}
        rec.add("error", await send_error(send, bad))
        await send({"type": "websocket.http.response.start", "status": 401})
        await send({"type": "websocket.http.response.body", "body": b"ok"})

    async with serving(scripted(rec, script)) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port)
        await rec.wait_kind("ended")
    error = rec.of("error")[0]
    assert type(error) is ASGIProtocolError
    assert "websocket.http.response.start has headers that cannot be sent" in str(error)
    assert "state: CONNECTING" in str(error)
    assert rejected.value.response.status_code == 401
    assert rejected.value.body == b"ok"


# ---------------------------------------------------------------- an independent client: websockets


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_websockets_client_sees_subprotocol_headers_and_the_apps_close() -> None:
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    rec = Recorder()

    async def script(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("subprotocols", scope["subprotocols"])
        await receive()
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": "superchat",
                "headers": [(b"x-custom", b"1"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
            }
        )
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"].upper()})
        await send({"type": "websocket.close", "code": 4003, "reason": "bye-ü"})
        rec.add("event", await receive())

    async with serving(scripted(rec, script)) as server:
        async with ws_connect(
            f"ws://127.0.0.1:{server.port}/",
            proxy=None,
            ping_interval=None,
            subprotocols=[Subprotocol("chat"), Subprotocol("superchat")],
        ) as client:
            assert client.subprotocol == "superchat"
            assert client.response is not None
            assert client.response.headers.get_all("x-custom") == ["1"]
            assert client.response.headers.get_all("set-cookie") == ["a=1", "b=2"]
            await client.send("hello")
            assert await client.recv() == "HELLO"
            with pytest.raises(ConnectionClosed):
                await client.recv()
        await rec.wait_kind("ended")
    assert (client.close_code, client.close_reason) == (4003, "bye-ü")
    assert rec.of("subprotocols") == [["chat", "superchat"]]
    # websockets echoes the code it received: that is the disconnect's code.
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 4003, "reason": "bye-ü"}]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_websockets_client_sees_403_and_the_denial_response() -> None:
    from websockets.asyncio.client import connect as ws_connect
    from websockets.exceptions import InvalidStatus

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/forbidden":
            await send({"type": "websocket.close"})
            return
        await send(
            {"type": "websocket.http.response.start", "status": 401, "headers": [(b"www-authenticate", b"Bearer")]}
        )
        await send({"type": "websocket.http.response.body", "body": b"log in", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b" first"})

    async with serving(app) as server:
        with pytest.raises(InvalidStatus) as forbidden:
            await ws_connect(f"ws://127.0.0.1:{server.port}/forbidden", proxy=None)
        with pytest.raises(InvalidStatus) as denied:
            await ws_connect(f"ws://127.0.0.1:{server.port}/denied", proxy=None)
    assert forbidden.value.response.status_code == 403
    assert denied.value.response.status_code == 401
    assert denied.value.response.headers["www-authenticate"] == "Bearer"
    assert denied.value.response.body == b"log in first"


async def test_accept_headers_given_as_a_generator_reach_the_101() -> None:
    """www spec 2.5: headers are any iterable of pairs; an iterator is read once, not lost."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        pairs = [(b"x-one", b"1"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        await send({"type": "websocket.accept", "headers": (pair for pair in pairs)})
        await receive()

    with anyio.fail_after(5):
        async with serving(app) as server:
            ws = await WSClient.connect(server.port)
            extra = [(n, v) for n, v in ws.response.headers if n in (b"x-one", b"set-cookie")]
            await ws.aclose()
    assert extra == [(b"x-one", b"1"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
