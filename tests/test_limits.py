"""Limits a user can set: --limit-concurrency answers 503 to connections beyond N, before any
app sees the request (HTTP, and the WebSocket handshake); --backlog sizes the accept queue."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from refserver import Config
from tests.support import HTTPClient, Recorder, Rejected, WSClient, http_request, serving

pytestmark = pytest.mark.anyio


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await receive()


class TestLimitConcurrency:
    async def test_connections_beyond_the_limit_get_503_and_no_app(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="refserver")
        rec = Recorder()

        async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
            rec.add("app", scope["type"])
            await app(scope, receive, send)

        async with serving(counting, limit_concurrency=1) as server:
            async with HTTPClient.open(server.port) as first:  # stays open (keep-alive)
                await first.send_request("GET", "/")
                response, body = await first.read_response()
                assert (response.status_code, body) == (200, b"ok")
                over, over_body = await http_request(server.port)
                with pytest.raises(Rejected) as rejected:
                    await WSClient.connect(server.port)
            await anyio.wait_all_tasks_blocked()  # the server has seen the first one go
            after, _ = await http_request(server.port)
        assert (over.status_code, over_body) == (503, b"Service Unavailable: too many connections\n")
        assert (b"connection", b"close") in list(over.headers)
        assert rejected.value.response.status_code == 503
        assert after.status_code == 200
        assert rec.of("app") == ["http", "http"]  # the refused ones reached no app
        refusals = [r for r in caplog.records if r.getMessage().startswith("Refused a request from")]
        assert [r.levelno for r in refusals] == [logging.WARNING, logging.WARNING]


def test_backlog_and_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="backlog must be positive"):
        Config(backlog=0)
    with pytest.raises(ValueError, match="limit_concurrency must be positive"):
        Config(limit_concurrency=0)
