"""Shutdown under load, the CLI as a process (reliability/shutdown.py runs it with more
connections on demand): SIGTERM while 100 WebSockets are being streamed to and 20 HTTP
requests are in flight or waiting to be accepted. Every message whose ``send()`` returned
reaches its client, in order, before the close frame 1001 (RFC 6455 §7.4.1, 1001 "going away");
every app gets ``websocket.disconnect`` with 1001 (www spec 2.5, "Disconnect - receive event");
every request is answered 200; the process exits 0 within ``--shutdown-timeout``; nothing is
logged at error level and there is no traceback."""

from __future__ import annotations

import pytest

from reliability.shutdown import shutdown_under_load

pytestmark = pytest.mark.anyio


class TestDisconnectReceiveEventOnShutdown:
    async def test_sigterm_under_load_loses_nothing(self, anyio_backend: str) -> None:
        result = await shutdown_under_load(anyio_backend, websockets=100, requests=20, shutdown_timeout_s=5.0)
        assert result.problems == []
        assert result.exit_code == 0
        assert result.messages_received >= 100  # every WebSocket got at least one message before the signal
