"""www spec 2.5, "Response Body - send event", and docs/decisions.md#one-instance-per-connection: once its response is
complete an app instance may go on (background work after the response). The next request on
the same keep-alive connection is read, and gets its own app instance, once that one has
returned; it is answered then, never lost."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from refserver.testing import serve
from tests.support import TIMEOUT, HTTPClient, Recorder, serving

pytestmark = pytest.mark.anyio


def _app(rec: Recorder, release: anyio.Event) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        rec.add(f"{scope['path']} started")
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": scope["path"][1:3].encode()})
        if scope["path"] == "/slow":
            await release.wait()  # background work after the response
            rec.add("/slow returned")

    return app


async def _two_requests(port: int, rec: Recorder, release: anyio.Event) -> list[tuple[int, bytes]]:
    async with HTTPClient.open(port) as client:
        await client.send_request("GET", "/slow", [], None)
        first = await client.read_response()
        await client.send_request("GET", "/fast", [], None)
        release.set()
        with anyio.fail_after(TIMEOUT):
            second = await client.read_response()
    return [(first[0].status_code, first[1]), (second[0].status_code, second[1])]


class TestResponseBodySendEvent:
    async def test_the_next_request_is_served_once_the_app_before_it_returned(self) -> None:
        rec = Recorder()
        release = anyio.Event()
        async with serving(_app(rec, release)) as server:
            answers = await _two_requests(server.port, rec, release)
        assert answers == [(200, b"sl"), (200, b"fa")]
        assert [kind for kind, _ in rec.items] == ["/slow started", "/slow returned", "/fast started"]


def test_the_same_under_plain_asyncio_run() -> None:
    """Without anyio's test runner: the connection's work that starts in event-loop callbacks
    (asyncio's protocol) never needs anyio outside a task."""

    async def main() -> list[tuple[int, bytes]]:
        rec = Recorder()
        release = anyio.Event()
        async with serve(_app(rec, release)) as server:
            return await asyncio.wait_for(_two_requests(server.port, rec, release), TIMEOUT)

    assert asyncio.run(main()) == [(200, b"sl"), (200, b"fa")]
