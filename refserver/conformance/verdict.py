"""From observed values to verdicts.

Per check:

- the rule is newer than the version the target advertises (``since``) -> ``n/a``;
- the value matches an allowed pattern -> ``pass``; for an unspecified check, a value
  other than refserver's choice -> ``differs`` (the value is shown);
- otherwise: MUST -> ``fail``; SHOULD -> ``deviates``; MAY and unspecified -> ``differs``.
  A target's version claim never raises a level: a SHOULD of a version the target advertises
  still deviates, and the broken claim is noted (``advertises ...``) for the meta scenario
  ``meta.spec-version-claims``, which counts it once.

Per cell (scenario x target): ``crash`` if the server under test died, never started or
stopped answering; ``error`` if the harness itself went wrong (reported apart: it says
nothing about the target); ``n/a`` if the scenario needs an extension the target does not
advertise; else the worst check. ``flaky`` when repeated runs of the cell disagree.

Values are made independent of the run: the per-run token in request paths is replaced by
``<token>``, so repeated runs compare what the server did, not which token it was given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from refserver.conformance.model import Check, Level, Scenario, parse_version
from refserver.conformance.observe import observe

PASS, FAIL, DEVIATES, DIFFERS, NA, CRASH, ERROR, FLAKY = (
    "pass",
    "fail",
    "deviates",
    "differs",
    "n/a",
    "crash",
    "error",
    "flaky",
)
VERDICTS = (PASS, FAIL, DEVIATES, DIFFERS, NA, CRASH, ERROR, FLAKY)
SEVERITY = {NA: 0, PASS: 1, DIFFERS: 2, DEVIATES: 3, FAIL: 4, CRASH: 5, FLAKY: 6, ERROR: 7}
# The verdicts that make ``--strict TARGET`` exit non-zero: the target broke a rule or went down.
STRICT_FAILURES = (FAIL, CRASH)

LEGEND = {
    PASS: "the target does what the spec (or, where it is silent, refserver) does",
    FAIL: "a MUST is broken",
    DEVIATES: "a SHOULD is not followed (a SHOULD of a version the target claims is also counted in "
    "meta.spec-version-claims)",
    DIFFERS: "the spec is silent, or only allows (MAY), and the target chose another value than refserver "
    "(the value is shown)",
    NA: "the target does not advertise the extension or spec version the scenario needs, or cannot be started "
    "with the option it needs (TLS, a Unix socket, a root_path: --target-option for your own server)",
    CRASH: "the server under test exited, never started, or stopped answering (reason and exit status shown)",
    ERROR: "the harness itself went wrong (reason shown); says nothing about the target",
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
    rule: str = ""  # the sentence the level rests on (Rule.cite())

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
            "show": self.show,
            "rule": self.rule,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, show: bool = False) -> CheckResult:
        """Read back what :meth:`to_json` wrote; ``show`` for a report written before "show" was."""
        return cls(
            data["label"],
            data["observable"],
            data["value"],
            data["verdict"],
            data["level"],
            tuple(data["allowed"]),
            data.get("refserver"),
            show=bool(data.get("show", show)),
            note=data.get("note", ""),
            rule=data.get("rule", ""),
        )


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
    command: str = ""  # the exact command line the cell's server was started with
    logged: str = "not-observed"  # did the server log at error level meanwhile ("none", "error: ...")

    @property
    def departing(self) -> list[CheckResult]:
        """The checks that are neither ``pass`` nor ``n/a``."""
        return [c for c in self.checks if c.verdict not in (PASS, NA)]

    @property
    def summary(self) -> str:
        """A short text for a matrix cell: the verdict, and the value when it matters (the
        value of the first check that is not a pass, else of the first check marked to show)."""
        if self.verdict in (ERROR, CRASH, NA):
            return self.verdict
        bad = [c.value for c in self.departing]
        shown = bad or [c.value for c in self.checks if c.show and c.verdict == PASS]
        skipped = [c.label for c in self.checks if c.verdict == NA]
        if skipped and not bad:
            # a check that could not be judged must not hide under a plain pass
            return f"{self.verdict} ({len(skipped)} n/a: {skipped[0][:20]})"
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
            "command": self.command,
            "logged": self.logged,
            "checks": [c.to_json() for c in self.checks],
        }
        if with_trace:
            data["trace"] = self.trace
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], scenario: Scenario | None = None) -> Cell:
        """Read back what :meth:`to_json` wrote; ``scenario`` (the catalogue's) says which
        checks to show in a report written before "show" was recorded."""
        known = scenario.checks if scenario is not None else []
        return cls(
            data["target"],
            data["scenario"],
            data["verdict"],
            [CheckResult.from_json(k, show=i < len(known) and known[i].show) for i, k in enumerate(data["checks"])],
            advertised=data.get("advertised_spec_version"),
            error=data.get("error"),
            duration_s=float(data.get("duration_s") or 0.0),
            trace=list(data.get("trace") or []),
            attempts=list(data.get("attempts") or []),
            command=str(data.get("command") or ""),
            logged=str(data.get("logged") or "not-observed"),
        )


def matches(value: str, pattern: str) -> bool:
    """``*`` and ``?`` are wildcards and everything else is literal (so JSON lists match as
    written); a pattern starting with ``re:`` is a regular expression."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], value, re.DOTALL) is not None
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def without_token(value: str, scenario_id: str) -> str:
    """``/ws.scope.basics/t17/x`` -> ``/ws.scope.basics/<token>/x``: the token differs from run
    to run, so a value that embeds it would make identical behaviour look different."""
    if scenario_id not in value:
        return value
    return re.sub(rf"(/{re.escape(scenario_id)}/)t\d+", r"\1<token>", value)


def brief(value: str) -> str:
    """A value as a matrix cell shows it."""
    if value == "":
        return '""'
    value = value.replace("websocket.disconnect:", "disconnect ").replace("websocket.", "")
    return re.sub(r"^b'/[^/]+/(t\d+|<token>)", "b'…", value)


def judge_check(check: Check, scenario: Scenario, records: list[dict[str, Any]], version: str | None) -> CheckResult:
    level = check.level or scenario.level
    label = check.label or check.observable
    rule = scenario.rule_of(check)
    cited = rule.cite() if rule else ""
    try:
        value = without_token(observe(check.observable, records, check.params), scenario.id)
    except Exception as exc:  # a harness problem, reported as such
        return CheckResult(
            label, check.observable, f"harness error: {exc!r}", ERROR, level.value, check.allowed, check.choice
        )
    advertised = parse_version(version)
    allowed = check.allowed_for(advertised)
    result = CheckResult(
        label, check.observable, value, PASS, level.value, allowed, check.choice, check.show, rule=cited
    )
    if check.since and advertised < parse_version(check.since):
        result.verdict = NA
        result.note = f"rule since {check.since}; the target advertises {version or '2.0 (nothing)'}"
        return result
    ok = any(matches(value, pattern) for pattern in allowed)
    if ok:
        if level in (Level.UNSPECIFIED, Level.MAY) and check.choice is not None and not matches(value, check.choice):
            result.verdict = DIFFERS
        return result
    if level in (Level.UNSPECIFIED, Level.MAY):
        result.verdict = DIFFERS
        return result
    result.verdict = FAIL if level is Level.MUST else DEVIATES
    # A rule that a spec version introduced, broken by a target advertising that version (or
    # later), is also a claim it does not keep: noted, so that the meta scenario (the advertised
    # spec_version is kept) counts it. The claim never raises the check's own level.
    if check.since and advertised >= parse_version(check.since):
        result.note = f"advertises {version}, which makes this a rule (since {check.since})"
    elif check.by_version and advertised >= parse_version(check.by_version[-1][0]):
        result.note = f"advertises {version}; the rule for that version is {list(allowed)}"
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
    if cell.verdict in (ERROR, CRASH):
        return [f"{cell.verdict}: {cell.error}"]
    for c in cell.checks:
        if c.verdict == NA:
            continue
        if c.choice is not None:
            if not matches(c.value, c.choice):
                missed.append(f"{c.label}: {c.value!r}, expected {c.choice!r}")
        elif c.verdict in (FAIL, DEVIATES, DIFFERS, CRASH, ERROR):
            missed.append(f"{c.label}: {c.value!r} ({c.verdict})")
    return missed
