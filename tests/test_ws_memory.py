"""Backpressure keeps memory bounded (docs/decisions.md#backpressure; scenario 38 of tests/test_ws_peer_scenarios.py).

The app sends 1 MiB messages to a client that never reads. ``send()`` must block once the
socket buffers are full instead of queueing frames, so the server's (in-process) Python
memory grows by a few MiB at most. Measured with tracemalloc: the peak of traced memory
during the run, minus what was traced before the connection opened.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import anyio
import pytest

from refserver import ClientDisconnected
from tests.support import Recorder, WSClient, serving

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
STALL_S = 1.0  # send() made no progress for this long: it is blocked
TOTAL_S = 3.0  # bound on the sending phase
MAX_GROWTH_BYTES = 8 * MiB


async def test_memory_bounded_when_client_never_reads() -> None:
    chunk = bytes(range(256)) * (MiB // 256)  # allocated before the baseline
    log = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        sent = 0
        progress = anyio.Event()
        start = anyio.current_time()

        async def watch() -> None:
            """Report once no send() has completed for STALL_S (a blocked send)."""
            while True:
                event = progress
                with anyio.move_on_after(STALL_S) as timer:
                    await event.wait()
                if timer.cancelled_caught:
                    log.add("blocked", sent)
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            while True:
                try:
                    await send({"type": "websocket.send", "bytes": chunk})
                except ClientDisconnected as exc:
                    log.add("send_raised", exc)
                    break
                sent += 1
                progress.set()
                progress = anyio.Event()
                if anyio.current_time() - start > TOTAL_S:
                    log.add("never blocked", sent)
                    break
            tg.cancel_scope.cancel()
        log.add("done", sent)

    tracemalloc.start()
    try:
        with anyio.fail_after(10):
            async with serving(app) as server:
                baseline, _ = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                ws = await WSClient.connect(server.port)  # and never read
                await log.wait_for(lambda r: bool(r.of("blocked") or r.of("never blocked")), timeout=TOTAL_S + 2)
                _, peak = tracemalloc.get_traced_memory()
                # the client vanishes: the send blocked on it must raise at once
                await ws.reset()
                with anyio.fail_after(1.0):
                    await log.wait_kind("done")
    finally:
        tracemalloc.stop()

    growth = peak - baseline
    assert log.of("never blocked") == [], "send() never blocked on a client that does not read"
    [sent_before_block] = log.of("blocked")
    assert sent_before_block >= 1
    assert growth < MAX_GROWTH_BYTES, f"memory grew by {growth / MiB:.1f} MiB after {sent_before_block} MiB sent"
    [exc] = log.of("send_raised")
    assert type(exc) is ClientDisconnected
    assert str(exc).strip()
