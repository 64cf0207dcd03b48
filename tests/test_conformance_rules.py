"""Grading traced to the sentence: every level of the catalogue rests on one quoted sentence,
one kind of check is judged at one level in every scenario, and ``--explain`` shows the
sentence. Over the catalogue as data and hand-made traces: no sockets, no servers.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from refserver.conformance import verdict as V
from refserver.conformance.catalogue import BY_ID, SCENARIOS, http_wire, lifespan_timing, scope_keys
from refserver.conformance.catalogue import rules as R
from refserver.conformance.catalogue.common import G_VALIDATE
from refserver.conformance.catalogue.grading import CHECK_RULES, SCENARIO_RULES, check_key
from refserver.conformance.model import Check, Rule, Scenario
from refserver.conformance.report import render_explain
from refserver.conformance.runner import TargetRun, judge
from refserver.conformance.targets import BY_NAME, TargetInfo

Record = dict[str, Any]
DOCUMENT = r"(asgi spec|www spec 2\.5|lifespan spec 2\.0|tls extension|asgi extensions)"
SOURCE = re.compile(rf'^({DOCUMENT}, "[^"]+"( \(HTTP\))?|RFC \d+ §[\d.]+)$')
ALL_CHECKS = [(s, c) for s in SCENARIOS for c in s.checks]


def rule_of(scenario: Scenario, check: Check) -> Rule:
    rule = scenario.rule_of(check)
    assert rule is not None, (scenario.id, check_key(check))
    return rule


class TestEveryLevelRestsOnASentence:
    @pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
    def test_scenario_level_is_its_rules(self, scenario: Scenario) -> None:
        assert scenario.rule is not None, f"{scenario.id}: name its rule in catalogue/grading.py SCENARIO_RULES"
        assert scenario.rule.level == scenario.level, scenario.id

    @pytest.mark.parametrize(("scenario", "check"), ALL_CHECKS, ids=lambda x: getattr(x, "id", "") or check_key(x))
    def test_check_level_is_its_rules(self, scenario: Scenario, check: Check) -> None:
        if check.level is not None:
            assert check.rule is not None, f"{scenario.id} / {check_key(check)}: its own level needs its own rule"
        assert rule_of(scenario, check).level == (check.level or scenario.level)

    def test_no_rule_names_a_check_that_is_gone(self) -> None:
        present = {(s.id, check_key(c)) for s, c in ALL_CHECKS}
        assert set(CHECK_RULES) <= present, set(CHECK_RULES) - present
        assert set(SCENARIO_RULES) == {s.id for s in SCENARIOS}

    def test_rules_cite_a_section_and_quote_a_sentence(self) -> None:
        for name, rule in [
            *vars(R).items(),
            *vars(http_wire).items(),
            *vars(lifespan_timing).items(),
            *vars(scope_keys).items(),
        ]:
            if isinstance(rule, Rule):
                assert SOURCE.match(rule.source), (name, rule.source)
                assert len(rule.sentence) > 20, name
                assert rule.cite().startswith(f"{rule.level.value}: {rule.source}: "), name


# One kind of check, one rule, wherever the catalogue judges it.
KINDS: list[tuple[str, Rule, set[tuple[str, str]]]] = [
    (
        "the code of a disconnect that follows the client's close frame",
        R.WS_DISCONNECT_CODE,
        {
            ("ws.close.code-reason", "app.disconnect.code"),
            ("ws.close.mid-message", "app.disconnect.code"),
            ("ws.data.order-before-close", "app.disconnect.code"),
            ("tls.wss.echo-close", "the app's disconnect"),
        },
    ),
    (
        "receive() after the server refused the handshake",
        R.WS_DISCONNECT_SENT,
        {("ws.deny.close-before-accept", "receive() afterwards"), ("ws.deny.receive-after", "receive() afterwards")},
    ),
]


class TestOneKindOneLevel:
    @pytest.mark.parametrize(("what", "rule", "checks"), KINDS, ids=[k[0] for k in KINDS])
    def test_named_kinds(self, what: str, rule: Rule, checks: set[tuple[str, str]]) -> None:
        found = {(s.id, check_key(c)): rule_of(s, c) for s, c in ALL_CHECKS if (s.id, check_key(c)) in checks}
        assert set(found) == checks
        assert all(r is rule for r in found.values()), found

    def test_failing_the_connection_is_one_rule(self) -> None:
        # RFC 6455 §7.1.7, except where §5.1 (unmasked frames) says MAY
        found = {
            s.id: rule_of(s, c)
            for s, c in ALL_CHECKS
            if c.label.startswith("close frame with") and "RFC 6455" in c.label
        }
        assert found.pop("ws.data.unmasked-frame") is R.UNMASKED_CLOSE_FRAME
        assert len(found) >= 8 and all(r is R.FAIL_CLOSE_FRAME for r in found.values())

    def test_invalid_app_messages_are_one_rule(self) -> None:
        invalid = [s for s in SCENARIOS if s.group == G_VALIDATE or s.id.startswith("http.send.")]
        assert len(invalid) >= 15 and all(s.rule is R.INVALID_EVENT for s in invalid)

    def test_every_pinned_disconnect_code_rests_on_a_disconnect_rule(self) -> None:
        allowed = {R.WS_DISCONNECT_CODE, R.WS_DISCONNECT_1005, R.WS_DISCONNECT_ABNORMAL, R.WS_LIMIT}
        allowed.add(R.WS_GRACEFUL_SHUTDOWN)
        for s, c in ALL_CHECKS:
            if c.observable == "app.disconnect.code" or any(
                re.search(r"websocket\.disconnect:\d{4}", p) for p in c.allowed
            ):
                assert rule_of(s, c) in allowed, (s.id, check_key(c))


def peer(version: str = "2.5") -> TargetRun:
    run = TargetRun(TargetInfo(BY_NAME["refserver"], True, "1.0"), sys.executable)
    run.info = TargetInfo(run.info.spec.__class__("peer", "peer", ("x",)), True, "1.0")
    run.advertised = {"http": version, "websocket": version}
    return run


def disconnect(code: int, step: int) -> Record:
    return {
        "t": 0.3,
        "side": "app",
        "ev": "received",
        "instance": 0,
        "step": step,
        "kind": "websocket.disconnect",
        "msg": {"type": "websocket.disconnect", "code": code},
    }


class TestWrongDisconnectCodeFailsAlike:
    """www spec 2.5, "Disconnect - receive event": ``code`` is "The WebSocket close code, as per the
    WebSocket spec." The client closed with a code; another code is a fail in every scenario."""

    @pytest.mark.parametrize(
        ("scenario", "step"),
        [("ws.close.code-reason", 2), ("ws.close.mid-message", 2), ("ws.data.order-before-close", 5)],
    )
    def test_1006_instead_of_the_clients_code(self, scenario: str, step: int) -> None:
        c = judge(peer(), BY_ID[scenario], [disconnect(1006, step)], None)
        code = [k for k in c.checks if k.observable == "app.disconnect.code"]
        assert [(k.value, k.verdict, k.level) for k in code] == [("1006", V.FAIL, "MUST")]
        assert "The WebSocket close code, as per the WebSocket spec." in code[0].rule


class TestExplainQuotesTheSentence:
    def test_each_check_shows_its_rule(self) -> None:
        scenario = BY_ID["ws.close.echo"]
        records = [{"t": 0.2, "side": "client", "ev": "close_frame", "len": 2, "code": 1000, "reason": ""}]
        c = judge(peer(), scenario, records, None)
        text = render_explain(scenario, c, None)
        assert 'rests on MUST: RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously' in text
        assert 'rests on unspecified: RFC 6455 §5.5.1: "(When sending a Close frame in response, the endpoint ' in text
        echoed = [k for k in c.checks if k.label == "the close code is echoed"]
        assert [(k.value, k.verdict) for k in echoed] == [("1000", V.DIFFERS)]
