"""A second SIGINT during the shutdown forces the exit (docs/decisions.md#forced-exit): what the app's
lifespan task sends while the server cancels it is not blamed on the app, and the exit says so
and is non-zero. The CLI as a process, on the test's backend."""

from __future__ import annotations

import logging
import signal

import anyio
import pytest

from refserver.runtime.lifespan import Lifespan
from refserver.trace import Tracer, TraceRecord
from refserver.types import Receive, Scope, Send
from tests.support import WSClient
from tests.test_cli import read_rest, refserver_cli

pytestmark = pytest.mark.anyio


async def test_a_second_sigint_is_a_forced_exit_that_blames_no_app(anyio_backend: str) -> None:
    args = ("tests.apps.starlette_lifespan:app", "--port", "0")
    async with refserver_cli(*args, backend=anyio_backend) as cli:
        assert await cli.stdout_line() == "lifespan: startup"
        await cli.wait_listening()
        ws = await WSClient.connect(cli.port, "/ws")
        assert await cli.stdout_line() == "socket: open"
        hang = await anyio.connect_tcp("127.0.0.1", cli.port)
        await hang.send(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await cli.stdout_line() == "hang: running"
        cli.process.send_signal(signal.SIGINT)
        await cli.stderr_until("Received SIGINT; shutting down")
        cli.process.send_signal(signal.SIGINT)
        with anyio.fail_after(5):
            code = await cli.process.wait()
        cli.stdout_lines += (await read_rest(cli.stdout)).decode().splitlines()
        cli.stderr_lines += (await read_rest(cli.stderr)).decode().splitlines()
        await ws.stream.aclose()
        await hang.aclose()
    stderr = "\n".join(cli.stderr_lines)
    assert code == 1, stderr
    assert "Exception in ASGI lifespan application" not in stderr
    assert "ASGIProtocolError" not in stderr and "Traceback" not in stderr
    assert cli.stderr_lines[-2:] == [
        "WARNING  refserver.error: Received SIGINT again; forcing shutdown",
        "ERROR    refserver.error: Forced exit: work still in flight was cut and lifespan shutdown did not run "
        "(exit status 1)",
    ]
    assert "lifespan: shutdown" not in cli.stdout_lines


async def test_what_the_lifespan_app_sends_while_cancelled_is_recorded_not_blamed(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same at the lowest layer: Starlette's way of answering a cancellation after startup
    (``lifespan.shutdown.failed`` before ``lifespan.shutdown``) is traced as ignored, and no
    error is logged."""
    records: list[TraceRecord] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        try:
            await receive()
        except BaseException:
            await send({"type": "lifespan.shutdown.failed", "message": "cancelled"})
            raise

    tracer = Tracer(sinks=[records.append], to_log=False)
    lifespan = Lifespan(app, "auto", {}, trace=tracer.connection("lifespan", "lifespan"))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await lifespan.startup(tg)
            tg.cancel_scope.cancel()  # what a forced exit does
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    ignored = [(r.kind, r.state, r.detail) for r in records if r.kind == "ignored"]
    assert ignored == [("ignored", "STARTED", "sent while the server was cancelling the lifespan app")]
