"""Faults in every state (reliability/faults.py; repeated 1,000 times per cell on demand): a
client that sends FIN, half-closes, resets, stops reading or stops sending, while its request
head or upgrade body is incomplete, while the app holds the handshake, while the connection is
idle, mid-fragmented-message (cut mid-frame), while the app is blocked in ``send()``, during the
closing handshake, and during server shutdown.

The app gets exactly one ``websocket.disconnect`` with 1006 (RFC 6455 §7.1.5: no close frame was
received), or 1001 when the server's shutdown came first; a later ``send()`` raises
``ClientDisconnected`` (www spec 2.5, "Disconnected Client - send exception", since 2.4), a later
``receive()`` repeats the disconnect (www spec 2.5, "Disconnect - receive event"); a request
that never completed gets no response; the server ends every connection; nothing is logged at
error level. The exact expectation of each cell is ``reliability.faults.expected``."""

from __future__ import annotations

import pytest

from reliability.faults import FAULTS, STATES, check, expected, run_cell

pytestmark = pytest.mark.anyio


class TestDisconnectedClientSendException:
    """www spec 2.5, "Disconnected Client - send exception", and "Disconnect - receive event", for
    every fault in every connection state."""

    @pytest.mark.parametrize("fault", FAULTS)
    @pytest.mark.parametrize("state", STATES)
    async def test_fault_in_state(self, state: str, fault: str) -> None:
        outcome = await run_cell(state, fault)
        assert check(state, fault, outcome) == []
        want = expected(state, fault)
        assert outcome.events == want.events  # restated: the disconnect the app got, exactly
        assert outcome.errors == []


def test_every_cell_expects_a_disconnect_where_an_app_runs() -> None:
    """The expectation table itself: one disconnect per app, never a late send that returns."""
    for state in STATES:
        for fault in FAULTS:
            want = expected(state, fault)
            if state in ("headers_incomplete", "upgrade_body_incomplete"):
                assert want.events == []
                continue
            assert [e["type"] for e in want.events] == ["websocket.connect", "websocket.disconnect"]
            assert want.events[-1]["code"] == (1001 if state == "shutdown" else 1006)
            assert want.late_send == "raised"
