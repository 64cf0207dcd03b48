"""The levels docs/decisions.md records for the harness's grading, pinned one by one over the
catalogue as data (docs/decisions.md#version-claim-never-raises, #may-differs, #descriptive-text-must,
#harness-levels, #root-path-in-path). No sockets, no servers."""

from __future__ import annotations

import pytest

from refserver.conformance.catalogue import BY_ID
from refserver.conformance.model import Level, Scenario


def level_of(scenario_id: str, label: str | None = None) -> Level:
    scenario: Scenario = BY_ID[scenario_id]
    if label is None:
        return scenario.level
    found = [c for c in scenario.checks if (c.label or c.observable) == label]
    assert len(found) == 1, [(c.label, c.observable) for c in scenario.checks]
    rule = scenario.rule_of(found[0])
    assert rule is not None
    return rule.level


@pytest.mark.parametrize(
    ("scenario", "label", "level"),
    [
        ("ws.close.echo", None, "MUST"),
        ("ws.data.unmasked-frame", "close frame with 1002 (RFC 6455 §5.1)", "MAY"),
        ("ws.close.code-reason", "app.disconnect.code", "MUST"),
        ("ws.close.mid-message", "app.disconnect.code", "MUST"),
        ("ws.data.order-before-close", "app.disconnect.code", "MUST"),
        ("ws.deny.close-before-accept", "receive() afterwards", "MUST"),
        ("ws.deny.receive-after", None, "MUST"),
        ("ws.app.return-after-accept", None, "SHOULD"),
        ("http.response.app-transfer-encoding", None, "MUST"),
        ("http.expect-continue", None, "MUST"),
        ("http.ext.pathsend", None, "SHOULD"),
        ("http.ext.zerocopysend", None, "SHOULD"),
        ("lifespan.scope", None, "MUST"),
        ("http.scope.root-path", "path", "MUST"),
        ("ws.scope.root-path", "path", "MUST"),
    ],
)
def test_recorded_level(scenario: str, label: str | None, level: str) -> None:
    assert level_of(scenario, label).value == level
