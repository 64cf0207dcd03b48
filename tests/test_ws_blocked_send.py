"""What the app's ``send()`` sees when something happens while it waits for a slow peer.

The app sends one message larger than every socket buffer between it and the client, so its
``send()`` waits for buffer space (backpressure); then the event of the row happens. A ``send()``
whose message reaches the peer whole returns; one whose message cannot reach it whole raises
``ClientDisconnected`` with the connection's close code (docs/decisions.md, "A send() whose message
reaches the peer whole returns"). The rows are the table "What a blocked send() sees" in
docs/how-it-works.md; each runs on asyncio and on trio.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from refserver import ClientDisconnected
from tests.support import Recorder, WSClient, serving

pytestmark = pytest.mark.anyio

# Larger than the kernel's loopback buffers (send plus receive: a few MiB on Linux), so that the
# app's send() waits until the client reads.
BIG = 32 << 20
PAYLOAD = b"x" * BIG


def blocked_sender(rec: Recorder) -> Any:
    """An app that accepts, sends one BIG message and records what its send() did (``returned``,
    or the ClientDisconnected), then what receive() returns."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        rec.add("sending")
        try:
            await send({"type": "websocket.send", "bytes": PAYLOAD})
        except ClientDisconnected as exc:
            rec.add("send", (type(exc).__name__, exc.code))
        else:
            rec.add("send", "returned")
        rec.add("event", await receive())

    return app


async def wait_until_blocked(rec: Recorder) -> None:
    """Return once the app is inside send(), waiting for the client to read."""
    await rec.wait_kind("sending")
    await anyio.wait_all_tasks_blocked()
    assert rec.of("send") == [], "the message fit in the socket buffers: send() did not wait"


async def test_peer_close_frame_while_the_peer_reads_lets_send_return() -> None:
    """The message reaches the peer whole, then the close echo: send() returns, as it does
    when no close frame came (docs/decisions.md, "A send() whose message reaches the peer
    whole returns")."""
    rec = Recorder()
    async with serving(blocked_sender(rec), ws_per_message_deflate=False) as server:
        ws = await WSClient.connect(server.port)
        await wait_until_blocked(rec)
        await ws.close(1000)
        assert await ws.next_message() == PAYLOAD
        echo = await ws.expect_close()
        await ws.expect_eof()
        await rec.wait_kind("event")
    assert echo.code == 1000
    assert rec.of("send") == ["returned"]
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]
