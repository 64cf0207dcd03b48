"""The conformance harness: the catalogue's shape, the whole catalogue against refserver
(in-process, on asyncio and trio), and the known divergences of two peers.

The peer test runs when uvicorn and hypercorn are installed for the interpreter that runs the
peers ($REFSERVER_CONFORMANCE_PYTHON, else this one): ``pip install -e '.[conformance]'``.
Otherwise it is skipped with that message; the default suite installs nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from refserver.conformance.catalogue import BY_ID, SCENARIOS
from refserver.conformance.cli import refserver_misses, run_report
from refserver.conformance.model import Level
from refserver.conformance.observe import OBSERVABLES
from refserver.conformance.runner import TargetRun
from refserver.conformance.targets import BY_NAME, TargetInfo, default_python, probe_target
from refserver.conformance.verdict import DEVIATES, FAIL

pytestmark = pytest.mark.anyio


def test_the_published_matrix_says_what_the_catalogue_says() -> None:
    """docs/conformance.md is generated from peer runs, so a catalogue edit does not regenerate
    it: every scenario's title and lesson must still read there as the catalogue has them."""
    docs = (Path(__file__).resolve().parent.parent / "docs" / "conformance.md").read_text(encoding="utf-8")
    stale = [s.id for s in SCENARIOS if f"**{s.title}.** {s.lesson}" not in docs]
    assert stale == [], "update docs/conformance.md (and docs/peer-findings.md) for these lessons"


def test_catalogue_is_complete_and_readable() -> None:
    assert len(SCENARIOS) >= 80
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)
    cases = {s.peer_case for s in SCENARIOS if s.peer_case}
    missing = set(range(1, 41)) - cases
    assert cases == set(range(1, 41)), f"scenarios of tests/test_ws_peer_scenarios.py not in the catalogue: {missing}"
    for s in SCENARIOS:
        assert s.title and s.lesson.endswith("."), s.id
        assert s.refs and s.checks, s.id
        assert isinstance(s.level, Level)
        for check in s.checks:
            assert check.observable in OBSERVABLES or check.observable == "claims", (s.id, check.observable)
            assert check.allowed, (s.id, check.label)


async def test_whole_catalogue_against_refserver_in_process(anyio_backend: str) -> None:
    """Every scenario, on refserver in this process: refserver meets every expectation it
    marks as its own choice."""
    spec = BY_NAME["refserver-trio" if anyio_backend == "trio" else "refserver"]
    target = TargetRun(TargetInfo(spec, True, "in-process", in_process=True), sys.executable, anyio_backend)
    report = await run_report([target], list(SCENARIOS))
    assert len(report.cells) == len(SCENARIOS)
    missed = refserver_misses(report)
    assert not missed, "\n".join(missed)


# ---------------------------------------------------------------------- peers


PEERS = ("hypercorn", "uvicorn-websockets")


@pytest.fixture(scope="module")
def peer_python() -> str:
    python = default_python()
    missing = [info.reason for info in (probe_target(BY_NAME[name], python) for name in PEERS) if not info.installed]
    if missing:
        pytest.skip(
            "the peers are not installed (pip install -e '.[conformance]', or point $REFSERVER_CONFORMANCE_PYTHON "
            "at an interpreter that has them): " + "; ".join(missing)
        )
    return python


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_harness_finds_known_divergences(peer_python: str, anyio_backend: str) -> None:
    """Peers' departures in scenarios 3, 7 and 10 of tests/test_ws_peer_scenarios.py, found by the
    harness on its own."""
    targets = [TargetRun(probe_target(BY_NAME[name], peer_python), peer_python) for name in PEERS]
    scenarios = [BY_ID[i] for i in ("ws.close.code-reason", "ws.send.after-disconnect", "ws.receive.after-disconnect")]
    report = await run_report(targets, scenarios, jobs=2)

    def check(target: str, scenario: str, label: str) -> tuple[str, str, str | None]:
        cell = report.cell(target, scenario)
        assert cell is not None, (target, scenario)
        found = [c for c in cell.checks if c.label == label or c.observable == label]
        assert found, (target, scenario, [c.label for c in cell.checks], cell.error)
        return found[0].value, cell.verdict, cell.advertised

    # hypercorn reports 1006 for a client close with code 4001.
    value, verdict, _ = check("hypercorn", "ws.close.code-reason", "app.disconnect.code")
    assert (value, verdict) == ("1006", FAIL)
    # uvicorn --ws websockets raises RuntimeError on a send after the disconnect while advertising 2.4:
    # the SHOULD deviates (a claim never raises its level), and the broken claim is noted.
    value, verdict, advertised = check("uvicorn-websockets", "ws.send.after-disconnect", "send() after the disconnect")
    assert (value, verdict, advertised) == ("error:RuntimeError", DEVIATES, "2.4")
    cell = report.cell("uvicorn-websockets", "ws.send.after-disconnect")
    assert cell is not None and any(c.note.startswith("advertises 2.4") for c in cell.checks)
    # hypercorn's second receive() after a disconnect hangs.
    value, _, _ = check("hypercorn", "ws.receive.after-disconnect", "app.after_disconnect")
    assert value == "hangs"


class TestRFC8446Section6_1ClosureAlerts:
    """The TLS scenarios see a server that ends its TLS connections without close_notify (refserver
    with its alert switched off, in-process, over real loopback sockets)."""

    async def test_a_missing_close_notify_fails(self, anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
        from refserver.runtime.tls import ServerTLSStream

        async def silent(self: ServerTLSStream) -> None:
            return None

        monkeypatch.setattr(ServerTLSStream, "send_close_notify", silent)
        spec = BY_NAME["refserver-trio" if anyio_backend == "trio" else "refserver"]
        target = TargetRun(TargetInfo(spec, True, "in-process", in_process=True), sys.executable, anyio_backend)
        scenarios = ("tls.https.scheme", "tls.wss.app-close", "tls.wss.echo-close")
        report = await run_report([target], [BY_ID[i] for i in scenarios])
        label = "close_notify before the TCP close (RFC 8446 §6.1)"
        for scenario in scenarios:
            cell = report.cell(spec.name, scenario)
            assert cell is not None
            found = [c for c in cell.checks if c.label == label]
            assert [(c.value, c.verdict) for c in found] == [("no close_notify (eof)", FAIL)], scenario
            assert cell.verdict == FAIL, scenario
