"""The soak in short (reliability/soak.py runs it at 1,000 clients on demand): WebSocket clients
echo sequence-numbered messages while a tenth of them reset and reconnect and new connections
keep arriving. Every message on a connection that stayed open comes back once and in order; every
reset reaches the app as exactly one ``websocket.disconnect`` with code 1006 (www spec 2.5,
"Disconnect - receive event"; RFC 6455 §7.1.5: 1006 when the connection closed with no close
frame), every client close as exactly one with 1000; nothing is logged at error level; no
descriptor is left behind and the server stops at once afterwards (no connection task left)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import pytest

from reliability import apps
from reliability.soak import SoakOptions, run_soak
from tests.support import refserver_errors, serving

pytestmark = pytest.mark.anyio

FD_DIR = Path("/proc/self/fd")


class TestDisconnectReceiveEventUnderLoad:
    """www spec 2.5, "Disconnect - receive event", with many connections at once."""

    async def test_nothing_lost_every_reset_is_one_1006(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="refserver")
        if not FD_DIR.exists():
            pytest.skip("needs /proc/self/fd")
        stats = apps.reset_stats()
        options = SoakOptions(clients=20, duration_s=1.0, reset_fraction=0.2, messages_per_s=5.0, arrivals_per_s=10.0)

        async def app_stats() -> dict[str, Any]:
            return stats.as_json()

        fds_before = len(list(FD_DIR.iterdir()))
        with anyio.fail_after(30):
            async with serving(apps.echo, shutdown_timeout_s=10.0, access_log=False) as server:
                result = await run_soak(server.port, options, app_stats)
        # serving() returned well within its 10 s shutdown timeout: no connection was left open.
        fds_after = len(list(FD_DIR.iterdir()))
        assert result.problems == []
        assert result.handshake_failures == []
        assert len(result.reset_ids) >= 4  # each of the 4 resetting clients reset at least once
        assert len(result.closed_ids) >= 20 - 4  # the steady clients, plus the arrivals
        assert len(result.handshake_s) == len(result.reset_ids) + len(result.closed_ids)
        assert result.echoed == result.sent - result.lost_in_resets
        assert result.echoed > 0
        assert stats.messages >= result.echoed
        assert sorted(stats.codes) == sorted(result.reset_ids + result.closed_ids)
        assert stats.running == 0
        assert max(result.handshake_s) < 5.0  # generous: the 1 s p90 bound is for the on-demand run
        assert fds_after == fds_before
        assert refserver_errors(caplog) == []
