"""Disconnects and closed sends over HTTP (www spec 2.5, "Disconnect - receive event";
www spec 2.5, "Disconnected Client - send exception": a server-specific OSError subclass;
docs/decisions.md#http-send-after-disconnect, #http-disconnect-waits, #one-exception-class)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

import refserver
import refserver.errors
from tests.support import HTTPClient, Recorder, connect, http_request, refserver_errors, reset, serving

pytestmark = pytest.mark.anyio

DISCONNECT = {"type": "http.disconnect"}


def test_client_disconnected_is_a_top_level_oserror() -> None:
    assert refserver.ClientDisconnected is refserver.errors.ClientDisconnected
    assert issubclass(refserver.ClientDisconnected, OSError)
    assert not issubclass(refserver.ClientDisconnected, refserver.RefserverError)
    exc = refserver.ClientDisconnected("peer closed the connection")
    assert str(exc) == "peer closed the connection"
    assert exc.code is None


async def test_receive_after_response_complete_returns_disconnect_every_time() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("event", await receive())
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})
        for _ in range(3):
            rec.add("after", await receive())

    with anyio.fail_after(5):
        async with serving(app) as server:
            response, body = await http_request(server.port, "POST", "/", body=b"x")
            await rec.wait_kind("after", 3)
    assert (response.status_code, body) == (200, b"ok")
    assert rec.of("event") == [{"type": "http.request", "body": b"x", "more_body": False}]
    assert rec.of("after") == [DISCONNECT] * 3


async def test_unread_body_is_not_delivered_after_response_complete() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413})
        await send({"type": "http.response.body", "body": b"too big"})
        rec.add("after", await receive())
        rec.add("after", await receive())

    with anyio.fail_after(5):
        async with serving(app) as server, HTTPClient.open(server.port) as client:
            await client.send_request("POST", "/", body=b"0123456789")
            response, body = await client.read_response()
            await rec.wait_kind("after", 2)
    assert (response.status_code, body) == (413, b"too big")
    assert rec.of("after") == [DISCONNECT, DISCONNECT]


async def test_receive_before_response_waits_for_the_real_disconnect() -> None:
    """docs/decisions.md#http-disconnect-waits: with the body read and no response yet,
    receive() blocks until the client goes."""
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("event", await receive())
        rec.add("waiting")
        for _ in range(3):
            rec.add("after", await receive())

    with anyio.fail_after(5):
        async with serving(app) as server:
            client_cm = HTTPClient.open(server.port)
            client = await client_cm.__aenter__()
            try:
                await client.send_request("GET", "/")
                await rec.wait_kind("waiting")
                await anyio.wait_all_tasks_blocked()
                assert rec.of("after") == []  # still blocked: the client is there
            finally:
                await client_cm.__aexit__(None, None, None)
            await rec.wait_kind("after", 3)
    assert rec.of("event") == [{"type": "http.request", "body": b"", "more_body": False}]
    assert rec.of("after") == [DISCONNECT] * 3


async def test_partial_body_then_client_gone() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for _ in range(3):
            rec.add("event", await receive())

    with anyio.fail_after(5):
        async with serving(app) as server:
            stream = await connect(server.port)
            await stream.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcde")
            await rec.wait_kind("event", 1)
            await stream.aclose()
            await rec.wait_kind("event", 3)
    assert rec.of("event") == [{"type": "http.request", "body": b"abcde", "more_body": True}, DISCONNECT, DISCONNECT]


async def answer_ok(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"still serving"})


@pytest.mark.parametrize(
    ("how", "reason"), [("close", "peer closed the connection"), ("reset", "connection reset by peer")]
)
async def test_send_after_client_gone_raises_client_disconnected(
    how: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/ok":
            await answer_ok(send)
            return
        await receive()  # the (empty) body
        rec.add("after", await receive())  # blocks until the client is gone
        for message in (
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.start", "status": 200},  # again: raises again
        ):
            try:
                await send(message)
            except Exception as exc:
                rec.add("raised", exc)
        rec.add("after", await receive())
        rec.add("done")

    with anyio.fail_after(5):
        async with serving(app) as server:
            stream = await connect(server.port)
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.wait_all_tasks_blocked()
            if how == "reset":
                await reset(stream)
            else:
                await stream.aclose()
            await rec.wait_kind("done")
            # The server goes on serving other clients.
            response, body = await http_request(server.port, "GET", "/ok")
    assert (response.status_code, body) == (200, b"still serving")
    assert rec.of("after") == [DISCONNECT, DISCONNECT]
    raised = rec.of("raised")
    assert [type(e) for e in raised] == [refserver.ClientDisconnected] * 2
    assert all(isinstance(e, OSError) for e in raised)
    assert [str(e) for e in raised] == [reason] * 2
    assert [e.code for e in raised] == [None, None]
    # The app returned without a response, but the client was gone: nothing to blame.
    assert refserver_errors(caplog) == []


async def test_streaming_to_a_reset_client_raises_from_send(caplog: pytest.LogCaptureFixture) -> None:
    """The Starlette >= 2.4 path: a streaming response learns of the disconnect from send()."""
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        rec.add("started")
        chunk = b"x" * 65536
        try:
            while True:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except refserver.ClientDisconnected as exc:
            rec.add("raised", exc)
            raise

    with anyio.fail_after(5):
        async with serving(app) as server:
            stream = await connect(server.port)
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"first" not in received:
                received += await stream.receive()
            await rec.wait_kind("started")
            await reset(stream)
            [exc] = await rec.wait_kind("raised")
    assert type(exc) is refserver.ClientDisconnected
    # Which syscall meets the RST first (the write, or the read watching for a disconnect,
    # which then sees EOF) is the kernel's choice; each says what happened.
    assert str(exc) in (
        "connection reset by peer",
        "connection closed by peer (broken pipe)",
        "peer closed the connection",
        "the peer closed or reset the connection",  # asyncio: the transport dropped the write
    )
    assert refserver_errors(caplog) == []


async def test_client_disconnected_escaping_is_not_logged_as_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/ok":
            await answer_ok(send)
            return
        await receive()
        rec.add("after", await receive())
        await send({"type": "http.response.start", "status": 200})  # raises ClientDisconnected
        rec.add("not reached")

    with anyio.fail_after(5):
        async with serving(app) as server:
            stream = await connect(server.port)
            await stream.send(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.wait_all_tasks_blocked()
            await stream.aclose()
            await rec.wait_kind("after")
            response, body = await http_request(server.port, "GET", "/ok")
    assert (response.status_code, body) == (200, b"still serving")
    assert rec.of("not reached") == []
    assert refserver_errors(caplog) == []
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("refserver"))


class TestDisconnectReceiveEvent:
    """www spec 2.5, "Disconnect - receive event" (and "Request - receive event"): every
    receive() returns a dict of its own, and answers without starving other connections."""

    async def test_every_receive_returns_a_fresh_dict(self) -> None:
        rec = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            request = await receive()
            rec.add("request", dict(request))
            request["body"] = b"changed by the app"  # a middleware rewriting the event
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"ok"})
            first = await receive()
            rec.add("first", dict(first))
            first["type"] = "changed.by.the.app"
            first["extra"] = 1
            second = await receive()
            rec.add("second", dict(second))
            rec.add("distinct", first is not second)

        with anyio.fail_after(5):
            async with serving(app) as server:
                for _ in range(2):
                    response, body = await http_request(server.port, "POST", "/", body=b"x")
                    assert (response.status_code, body) == (200, b"ok")
                await rec.wait_kind("distinct", 2)
        assert rec.of("request") == [{"type": "http.request", "body": b"x", "more_body": False}] * 2
        assert rec.of("first") == [DISCONNECT, DISCONNECT]
        assert rec.of("second") == [DISCONNECT, DISCONNECT]
        assert rec.of("distinct") == [True, True]

    async def test_a_receive_loop_does_not_starve_other_connections(self) -> None:
        """An app that loops on receive() after http.disconnect (every call answers at
        once) still lets the server answer another request in the meantime."""
        rec = Recorder()
        answered = anyio.Event()
        limit = 200_000

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": scope["path"].encode()})
            if scope["path"] == "/other":
                rec.add("other answered")
                answered.set()
                return
            rec.add("spinning")
            for i in range(limit):
                event = await receive()
                assert event == DISCONNECT
                if answered.is_set():
                    rec.add("spin stopped", i)
                    return
            rec.add("spin stopped", limit)

        with anyio.fail_after(10):
            async with serving(app) as server, HTTPClient.open(server.port) as client:
                await client.send_request("GET", "/spin")
                response, body = await client.read_response()
                assert (response.status_code, body) == (200, b"/spin")
                other, other_body = await http_request(server.port, "GET", "/other")
                await rec.wait_kind("spin stopped")
        assert (other.status_code, other_body) == (200, b"/other")
        assert [kind for kind, _ in rec.items] == ["spinning", "other answered", "spin stopped"]
        [stopped_at] = rec.of("spin stopped")
        assert 0 < stopped_at < limit
