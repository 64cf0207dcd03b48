"""What an HTTP app's ``send()`` sees when something happens while it waits for a slow client
(the WebSocket table is tests/test_ws_blocked_send.py): a body whose bytes reach the client
whole returns; one that cannot reach it raises ``ClientDisconnected``. On asyncio and on trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from refserver import ClientDisconnected
from tests.support import Recorder, connect, read_until_eof, reset, serving_stoppable

pytestmark = pytest.mark.anyio

BIG = 32 << 20  # larger than the kernel's loopback buffers: send() waits until the client reads


def slow_client_app(rec: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % BIG)]})
        rec.add("sending")
        try:
            await send({"type": "http.response.body", "body": b"x" * BIG})
        except ClientDisconnected as exc:
            rec.add("send", str(exc))
        else:
            rec.add("send", "returned")
        rec.add("event", await receive())

    return app


@pytest.mark.parametrize("event", ["half-close, then read", "shutdown, then read", "reset"])
async def test_a_blocked_body_send(event: str) -> None:
    rec = Recorder()
    async with serving_stoppable(slow_client_app(rec)) as (server, stop):
        client = await connect(server.port)
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await rec.wait_kind("sending")
        await anyio.wait_all_tasks_blocked()
        assert rec.of("send") == [], "the body fit in the socket buffers: send() did not wait"
        if event == "reset":
            await reset(client)
        else:
            if event == "half-close, then read":
                await client.send_eof()
            else:
                stop.set()
            response = await read_until_eof(client, 1 << 30)
            assert response.endswith(b"\r\n\r\n" + b"x" * BIG)
        await rec.wait_kind("event")
    [sent] = rec.of("send")
    if event == "reset":
        # Which syscall meets the RST first (the write, or the read) is the kernel's choice.
        assert sent in ("connection reset by peer", "connection closed by peer (broken pipe)")
    else:
        assert sent == "returned"
    assert rec.of("event") == [{"type": "http.disconnect"}]
