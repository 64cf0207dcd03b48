"""docs/decisions.md#fairness, docs/implementation.md#http-fairness-count: an HTTP connection
whose app instances never have to wait cannot starve the other connections. The count of calls
answered at once runs across the connection's app instances (pipelined requests), and starts
again only when the connection's task waits for the next request; http.response.start, once per
app instance, is not counted."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.support import TIMEOUT, HTTPClient, Recorder, connect, serving

pytestmark = pytest.mark.anyio

PIPELINED = 100  # 100 small GETs in one write: far below the head limit and any buffer
CHUNKS = 2_000


def pipelined_gets(count: int) -> bytes:
    return b"".join(b"GET /a%d HTTP/1.1\r\nhost: x\r\n\r\n" % i for i in range(count))


async def answer_b(rec: Recorder, go: anyio.Event, send: Any) -> None:
    """The other connection's request: it answers once the busy connection's app has started,
    and records when it is done."""
    rec.add("b started")
    await go.wait()
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"b"})
    rec.add("order", "b done")


class TestResponseBodySendEvent:
    async def test_pipelined_requests_do_not_starve_other_connections(self) -> None:
        rec = Recorder()
        go = anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"] == "/b":
                await answer_b(rec, go, send)
                return
            go.set()
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"a"})
            if scope["path"] == f"/a{PIPELINED - 1}":
                rec.add("order", "a done")

        async with serving(app, access_log=False) as server, HTTPClient.open(server.port) as b:
            await b.send_request("GET", "/b")
            await rec.wait_kind("b started")
            a = await connect(server.port)
            try:
                await a.send(pipelined_gets(PIPELINED))
                await rec.wait_kind("order", 2)
                response, body = await b.read_response()
                assert (response.status_code, body) == (200, b"b")
                received = b""
                with anyio.fail_after(TIMEOUT):
                    while received.count(b"HTTP/1.1 200 OK") < PIPELINED:
                        received += await a.receive()
            finally:
                await a.aclose()
        assert rec.of("order") == ["b done", "a done"]

    async def test_a_body_loop_does_not_starve_other_connections(self) -> None:
        rec = Recorder()
        go = anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["path"] == "/b":
                await answer_b(rec, go, send)
                return
            go.set()
            await send({"type": "http.response.start", "status": 200})
            for _ in range(CHUNKS):
                await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            rec.add("order", "a done")

        async with serving(app, access_log=False) as server, HTTPClient.open(server.port) as b:
            await b.send_request("GET", "/b")
            await rec.wait_kind("b started")
            async with HTTPClient.open(server.port) as a:
                await a.send_request("GET", "/a")
                await rec.wait_kind("order", 2)
                response, body = await a.read_response()
                assert (response.status_code, body) == (200, b"a" * CHUNKS)
            response, body = await b.read_response()
            assert (response.status_code, body) == (200, b"b")
        assert rec.of("order") == ["b done", "a done"]
