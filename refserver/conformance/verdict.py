"""From observed values to verdicts.

Per check:

- the rule is newer than the version the target advertises (``since``) -> ``n/a``;
- the value matches an allowed pattern -> ``pass``; for an unspecified check, a value
  other than refserver's choice -> ``differs`` (the value is shown);
- otherwise: MUST -> ``fail``; SHOULD -> ``deviates``, or ``fail`` when the target
  advertises the version that made it a rule (a claim it does not keep); unspecified ->
  ``differs``.

Per cell (scenario x target): ``error`` if the run went wrong (crash, hang, harness
problem); ``n/a`` if the scenario needs an extension the target does not advertise; else
the worst check. ``flaky`` when repeated runs of the cell disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from refserver.conformance.model import Check, Level, Scenario, parse_version
from refserver.conformance.observe import observe

PASS, FAIL, DEVIATES, DIFFERS, NA, ERROR, FLAKY = "pass", "fail", "deviates", "differs", "n/a", "error", "flaky"
VERDICTS = (PASS, FAIL, DEVIATES, DIFFERS, NA, ERROR, FLAKY)
SEVERITY = {NA: 0, PASS: 1, DIFFERS: 2, DEVIATES: 3, FAIL: 4, FLAKY: 5, ERROR: 6}

LEGEND = {
    PASS: "the target does what the spec (or, where it is silent, refserver) does",
    FAIL: "a MUST is broken, or a SHOULD of a spec version the target advertises (a claim it does not keep)",
    DEVIATES: "a SHOULD is not followed (by a target that does not claim the version that made it a rule)",
    DIFFERS: "the spec is silent and the target chose another value than refserver (the value is shown)",
    NA: "the target does not advertise the extension or spec version the scenario needs",
    ERROR: "the run went wrong: server crashed, hung, did not start, or a harness problem (reason shown)",
    FLAKY: "repeated runs gave different verdicts",
}


@dataclass
class CheckResult:
    label: str
    observable: str
    value: str
    verdict: str
    level: str
    allowed: tuple[str, ...]
    choice: str | None
    show: bool = False
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "observable": self.observable,
            "value": self.value,
            "verdict": self.verdict,
            "level": self.level,
            "allowed": list(self.allowed),
            "refserver": self.choice,
            "note": self.note,
        }


@dataclass
class Cell:
    target: str
    scenario: str
    verdict: str
    checks: list[CheckResult] = field(default_factory=list)
    advertised: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    trace: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """A short text for a matrix cell: the verdict, and the value when it matters (the
        value of the first check that is not a pass, else of the first check marked to show)."""
        if self.verdict in (ERROR, NA):
            return self.verdict
        bad = [c.value for c in self.checks if c.verdict not in (PASS, NA)]
        shown = bad or [c.value for c in self.checks if c.show and c.verdict == PASS]
        if not shown:
            return self.verdict
        value = brief(shown[0])
        if len(value) > 28:
            value = value[:27] + "…"
        return f"{self.verdict} ({value})"

    def to_json(self, with_trace: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "target": self.target,
            "scenario": self.scenario,
            "verdict": self.verdict,
            "advertised_spec_version": self.advertised,
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "attempts": self.attempts,
            "checks": [c.to_json() for c in self.checks],
        }
        if with_trace:
            data["trace"] = self.trace
        return data


def matches(value: str, pattern: str) -> bool:
    """``*`` and ``?`` are wildcards and everything else is literal (so JSON lists match as
    written); a pattern starting with ``re:`` is a regular expression."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], value, re.DOTALL) is not None
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def brief(value: str) -> str:
    """A value as a matrix cell shows it."""
    if value == "":
        return '""'
    value = value.replace("websocket.disconnect:", "disconnect ").replace("websocket.", "")
    return re.sub(r"^b'/[^/]+/t\d+", "b'…", value)


def judge_check(check: Check, scenario: Scenario, records: list[dict[str, Any]], version: str | None) -> CheckResult:
    level = check.level or scenario.level
    label = check.label or check.observable
    try:
        value = observe(check.observable, records, check.params)
    except Exception as exc:  # a harness problem, reported as such
        return CheckResult(
            label, check.observable, f"harness error: {exc!r}", ERROR, level.value, check.allowed, check.choice
        )
    advertised = parse_version(version)
    allowed = check.allowed_for(advertised)
    result = CheckResult(label, check.observable, value, PASS, level.value, allowed, check.choice, check.show)
    if check.since and advertised < parse_version(check.since):
        result.verdict = NA
        result.note = f"rule since {check.since}; the target advertises {version or '2.0 (nothing)'}"
        return result
    ok = any(matches(value, pattern) for pattern in allowed)
    if ok:
        if level is Level.UNSPECIFIED and check.choice is not None and not matches(value, check.choice):
            result.verdict = DIFFERS
        return result
    if level is Level.MUST:
        result.verdict = FAIL
    elif level is Level.SHOULD:
        if check.since and advertised >= parse_version(check.since):
            result.verdict = FAIL
            result.note = f"advertises {version}, which makes this a rule (since {check.since})"
        elif check.by_version and advertised >= parse_version(check.by_version[-1][0]):
            result.verdict = FAIL
            result.note = f"advertises {version}; the rule for that version is {list(allowed)}"
        else:
            result.verdict = DEVIATES
    else:
        result.verdict = DIFFERS
    return result


def combine(verdicts: list[str]) -> str:
    """The worst of the verdicts; n/a only if every check is n/a."""
    if not verdicts:
        return PASS
    real = [v for v in verdicts if v != NA]
    if not real:
        return NA
    return max(real, key=lambda v: SEVERITY[v])


def self_expectation_missed(cell: Cell) -> list[str]:
    """For refserver's own cells: the checks whose value is not refserver's marked choice."""
    missed = []
    if cell.verdict == ERROR:
        return [f"error: {cell.error}"]
    for c in cell.checks:
        if c.verdict == NA:
            continue
        if c.choice is not None:
            if not matches(c.value, c.choice):
                missed.append(f"{c.label}: {c.value!r}, expected {c.choice!r}")
        elif c.verdict in (FAIL, DEVIATES, DIFFERS, ERROR):
            missed.append(f"{c.label}: {c.value!r} ({c.verdict})")
    return missed
