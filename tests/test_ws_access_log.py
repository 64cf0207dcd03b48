"""WebSocket connections in the access log, as a uvicorn user expects: the upgrade with its
result (101, 403, a denial status, 500) and the end of an accepted connection with its code."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support import Recorder, Rejected, WSClient, close_frame, connect, handshake_request, read_until_eof, serving

pytestmark = pytest.mark.anyio


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "refserver.access"]
    return [line.split(" - ", 1)[1] for line in lines]


async def _close_after_the_handshake(port: int) -> int:
    ws = await WSClient.connect(port, path="/chat")
    await ws.close(4001)
    await ws.expect_close()
    return 4001


async def _close_behind_the_upgrade_request(port: int) -> int:
    # The accept takes the close frame that waited behind the handshake: one input sends the
    # 101 and ends the connection, and both lines are written.
    stream = await connect(port)
    await stream.send(handshake_request("/chat") + close_frame(1000))
    await read_until_eof(stream)
    await stream.aclose()
    return 1000


# With the trace on and off: the machines record their state changes only when traced.
@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("client", [_close_after_the_handshake, _close_behind_the_upgrade_request])
async def test_accepted_connection_logs_101_then_the_close_code(
    client: Callable[[int], Awaitable[int]], trace: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refserver.access")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        rec.add("event", await receive())

    async with serving(app, trace=trace) as server:
        code = await client(server.port)
        await rec.wait_kind("event")
    assert rec.items == [("event", {"type": "websocket.disconnect", "code": code, "reason": ""})]
    assert access_lines(caplog) == ['"WebSocket /chat" 101', f'"WebSocket /chat" closed (code {code})']


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        ([{"type": "websocket.close"}], 403),
        ([{"type": "websocket.http.response.start", "status": 418}, {"type": "websocket.http.response.body"}], 418),
        ([{"type": "websocket.accept", "subprotocol": "unoffered"}], 500),
    ],
)
@pytest.mark.parametrize("trace", [False, True])
async def test_refused_handshake_logs_its_status(
    answer: list[dict[str, Any]], status: int, trace: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refserver.access")
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            for message in answer:
                await send(message)
        except Exception as exc:  # the unoffered subprotocol raises ASGIProtocolError
            rec.add("raised", exc)
        rec.add("done")

    async with serving(app, trace=trace) as server:
        with pytest.raises(Rejected) as rejected:
            await WSClient.connect(server.port, path="/x")
        await rec.wait_kind("done")
    assert rejected.value.response.status_code == status
    assert access_lines(caplog) == [f'"WebSocket /x" {status}']
