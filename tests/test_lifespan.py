"""Lifespan (lifespan spec 2.0; docs/decisions.md#lifespan-unsupported, #lifespan-after-startup):
startup before the first connection is accepted, shutdown after the listeners stopped and connections closed,
failures, state, and the auto/on/off modes."""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import Any

import anyio
import pytest

import refserver
from refserver import Config, LifespanFailure
from refserver.runtime.server import Listening, serve
from tests.support import HTTPClient, Recorder, http_request, refserver_errors, serving

pytestmark = pytest.mark.anyio

LIFESPAN_SCOPE = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def refused(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


async def respond(send: Any, body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": body})


def lifespan_messages(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("refserver") and text in r.getMessage()]


async def test_startup_completes_before_the_first_connection_is_accepted() -> None:
    rec = Recorder()
    port = free_port()
    gate = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            rec.add("lifespan scope", dict(scope))
            rec.add("received", await receive())
            await gate.wait()
            await send({"type": "lifespan.startup.complete"})
            rec.add("received", await receive())
            await send({"type": "lifespan.shutdown.complete"})
            rec.add("shutdown done")
            return
        rec.add("http")
        await respond(send)

    stop = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            started: list[Listening] = []
            listening = anyio.Event()

            async def run() -> None:
                config = Config(port=port, lifespan="on")
                started.append(await tg.start(partial(serve, app, config, shutdown_trigger=stop.wait)))
                listening.set()

            tg.start_soon(run)
            await rec.wait_kind("received")
            assert await refused(port)  # not listening while startup is in progress
            assert started == []
            gate.set()
            await listening.wait()
            assert started[0].addresses == (("127.0.0.1", port),)
            response, body = await http_request(port)
            stop.set()
    assert (response.status_code, body) == (200, b"ok")
    assert rec.of("lifespan scope") == [LIFESPAN_SCOPE]
    assert rec.of("received") == [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    assert [k for k, _ in rec.items] == ["lifespan scope", "received", "http", "received", "shutdown done"]


async def test_shutdown_after_listeners_stopped_and_connections_closed() -> None:
    rec = Recorder()
    gate = anyio.Event()
    port = free_port()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            rec.add("shutdown", await refused(port))  # the listener is closed by now
            await send({"type": "lifespan.shutdown.complete"})
            return
        rec.add("in flight")
        await gate.wait()
        await respond(send, b"finished")
        rec.add("responded")

    stop = anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(partial(serve, app, Config(port=port, lifespan="on"), shutdown_trigger=stop.wait))
            async with HTTPClient.open(port) as client:
                await client.send_request("GET", "/slow")
                await rec.wait_kind("in flight")
                stop.set()  # graceful shutdown with a response in flight
                await anyio.wait_all_tasks_blocked()
                assert rec.of("shutdown") == []
                gate.set()
                response, body = await client.read_response()
    assert (response.status_code, body) == (200, b"finished")
    assert [k for k, _ in rec.items] == ["in flight", "responded", "shutdown"]
    assert rec.of("shutdown") == [True]


async def test_shutdown_timeout_cuts_unfinished_connections_before_lifespan_shutdown() -> None:
    rec = Recorder()
    never = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            rec.add("received", await receive())
            await send({"type": "lifespan.shutdown.complete"})
            return
        rec.add("in flight")
        try:
            await never.wait()
        finally:
            rec.add("cancelled")

    with anyio.fail_after(5):
        async with serving(app, lifespan="on", shutdown_timeout_s=0.2) as server:
            client = await anyio.connect_tcp("127.0.0.1", server.port)
            await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await rec.wait_kind("in flight")
        # serving() has returned: the server shut down.
        await client.aclose()
    assert [k for k, _ in rec.items] == ["in flight", "cancelled", "received"]
    assert rec.of("received") == [{"type": "lifespan.shutdown"}]


async def test_state_is_shallow_copied_into_every_scope() -> None:
    rec = Recorder()
    shared = {"connections": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            rec.add("lifespan state", scope["state"])
            await receive()
            scope["state"]["pool"] = shared
            scope["state"]["name"] = "db"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            rec.add("final lifespan state", dict(scope["state"]))
            await send({"type": "lifespan.shutdown.complete"})
            return
        rec.add("state", scope["state"])
        rec.add("keys", sorted(scope["state"]))
        scope["state"]["pool"]["connections"] += 1  # shallow: the same objects
        scope["state"]["per-request"] = True  # but the dict is a copy
        await respond(send)

    with anyio.fail_after(5):
        async with serving(app, lifespan="on") as server:
            await http_request(server.port)
            await http_request(server.port)
    [lifespan_state] = rec.of("lifespan state")
    first, second = rec.of("state")
    assert rec.of("keys") == [["name", "pool"], ["name", "pool"]]
    assert first is not second and first is not lifespan_state
    assert first["pool"] is shared and second["pool"] is shared
    assert shared == {"connections": 2}
    assert rec.of("final lifespan state") == [{"pool": shared, "name": "db"}]


async def test_startup_failed_fails_serve_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    port = free_port()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        rec.add("http")

    with anyio.fail_after(5), pytest.raises(LifespanFailure) as info:
        await refserver.serve(app, Config(port=port, lifespan="auto"))
    assert await refused(port)
    assert rec.of("http") == []
    assert [(r.name, r.levelno, r.getMessage()) for r in refserver_errors(caplog)] == [
        ("refserver.error", logging.ERROR, "Lifespan startup failed: no database")
    ]
    assert type(info.value) is LifespanFailure
    assert str(info.value) == "lifespan startup failed: no database"


async def test_shutdown_failed_fails_serve_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
            return
        await respond(send)

    with anyio.fail_after(5), pytest.raises(BaseException) as info:
        async with serving(app, lifespan="on") as server:
            response, _ = await http_request(server.port)
            assert response.status_code == 200
    assert [(r.name, r.getMessage()) for r in refserver_errors(caplog)] == [
        ("refserver.error", "Lifespan shutdown failed: flush failed")
    ]
    failure = unwrap(info.value)
    assert type(failure) is LifespanFailure
    assert str(failure) == "lifespan shutdown failed: flush failed"


def unwrap(exc: BaseException) -> BaseException:
    """The single exception inside (possibly nested) exception groups: serving() runs the
    server in a task group of its own, which wraps what serve() raised."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def test_serve_raises_lifespan_failure_itself() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "x"})

    with anyio.fail_after(5), pytest.raises(LifespanFailure, match=r"^lifespan startup failed: x$"):
        await refserver.serve(app, Config(port=0, lifespan="on"))


async def test_auto_app_raising_on_lifespan_is_unsupported_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("scope type", scope["type"])
        if scope["type"] != "http":
            raise ValueError(f"unknown scope type {scope['type']}")
        await respond(send)

    with anyio.fail_after(5):
        async with serving(app, lifespan="auto") as server:
            response, body = await http_request(server.port)
            response2, _ = await http_request(server.port)
    assert (response.status_code, body, response2.status_code) == (200, b"ok", 200)
    # The lifespan scope is sent once; no lifespan.shutdown is attempted afterwards.
    assert rec.of("scope type") == ["lifespan", "http", "http"]
    [record] = lifespan_messages(caplog, "lifespan")
    assert record.levelno < logging.ERROR
    assert record.getMessage() == (
        "ASGI 'lifespan' protocol appears unsupported by the app "
        "(it raised ValueError: unknown scope type lifespan); continuing without it"
    )
    assert refserver_errors(caplog) == []


async def test_auto_app_returning_without_startup_answer_is_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="refserver")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await respond(send)

    with anyio.fail_after(5):
        async with serving(app, lifespan="auto") as server:
            response, _ = await http_request(server.port)
    assert response.status_code == 200
    [record] = lifespan_messages(caplog, "lifespan")
    assert record.getMessage() == (
        "ASGI 'lifespan' protocol appears unsupported by the app "
        "(it returned without answering lifespan.startup); continuing without it"
    )
    assert refserver_errors(caplog) == []


async def test_on_app_raising_is_fatal(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("no lifespan here")

    with anyio.fail_after(5), pytest.raises(LifespanFailure) as info:
        await refserver.serve(app, Config(port=port, lifespan="on"))
    assert type(info.value) is LifespanFailure
    assert str(info.value) == "lifespan startup failed: it raised ValueError: no lifespan here"
    assert [r.getMessage() for r in refserver_errors(caplog)] == [
        "Lifespan startup failed (--lifespan on): it raised ValueError: no lifespan here"
    ]
    assert await refused(port)


async def test_off_sends_no_lifespan_scope() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("scope type", scope["type"])
        rec.add("state", scope["state"])
        await respond(send)

    with anyio.fail_after(5):
        async with serving(app, lifespan="off") as server:
            await http_request(server.port)
    assert rec.of("scope type") == ["http"]
    assert rec.of("state") == [{}]


async def test_app_raising_between_startup_and_shutdown_is_logged_once_and_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            raise RuntimeError("background task died")
        await respond(send)

    with anyio.fail_after(5), pytest.raises(BaseException) as info:
        async with serving(app, lifespan="on") as server:
            response, _ = await http_request(server.port)
            assert response.status_code == 200  # serving goes on
    [record] = refserver_errors(caplog)
    assert record.getMessage() == "Exception in ASGI lifespan application"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    failure = unwrap(info.value)
    assert (type(failure), str(failure)) == (
        LifespanFailure,
        "the lifespan app raised RuntimeError before lifespan.shutdown",
    )


async def test_app_returning_after_startup_complete_shuts_down_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    """docs/decisions.md#lifespan-after-startup: the app is gone; there is nothing to wait for at shutdown."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            return
        await respond(send)

    with anyio.fail_after(5):
        async with serving(app, lifespan="on") as server:
            response, _ = await http_request(server.port)
    assert response.status_code == 200
    assert refserver_errors(caplog) == []


async def test_app_raising_after_startup_is_logged_once_and_fails_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            rec.add("shutdown", await receive())
            raise RuntimeError("cleanup crashed")
        await respond(send)

    with anyio.fail_after(5), pytest.raises(BaseException) as info:
        async with serving(app, lifespan="on") as server:
            response, _ = await http_request(server.port)
    assert response.status_code == 200
    assert rec.of("shutdown") == [{"type": "lifespan.shutdown"}]
    [record] = refserver_errors(caplog)
    assert record.getMessage() == "Exception in ASGI lifespan application"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    failure = unwrap(info.value)
    assert type(failure) is LifespanFailure
    assert str(failure) == "the lifespan app raised RuntimeError during lifespan shutdown"


async def test_shutdown_not_answered_in_time_fails(caplog: pytest.LogCaptureFixture) -> None:
    never = anyio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await never.wait()
        await respond(send)

    with anyio.fail_after(5), pytest.raises(BaseException) as info:
        async with serving(app, lifespan="on", shutdown_timeout_s=0.1):
            pass
    failure = unwrap(info.value)
    assert (type(failure), str(failure)) == (LifespanFailure, "lifespan shutdown timed out")
    assert [r.getMessage() for r in refserver_errors(caplog)] == ["Lifespan shutdown did not complete within 0.1 s"]


async def test_lifespan_protocol_errors_raise_from_send() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            for bad in (
                {"type": "lifespan.shutdown.complete"},
                {"type": "http.response.start", "status": 200},
                {"type": "lifespan.startup.failed", "message": 3},
            ):
                try:
                    await send(bad)
                except Exception as exc:
                    rec.add("raised", exc)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await respond(send)

    with anyio.fail_after(5):
        async with serving(app, lifespan="on") as server:
            response, _ = await http_request(server.port)
    assert response.status_code == 200
    raised = rec.of("raised")
    assert [type(e) for e in raised] == [refserver.ASGIProtocolError] * 3
    assert [str(e) for e in raised] == [
        "lifespan.shutdown.complete is not expected now "
        '(state: STARTING; lifespan spec 2.0, "Shutdown - receive event")',
        'http.response.start is not expected now (state: STARTING; asgi spec, "Error Handling")',
        "lifespan.startup.failed has message 3; it must be a str "
        '(state: STARTING; lifespan spec 2.0, "Startup Failed - send event")',
    ]
