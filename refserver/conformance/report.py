"""Reports: the matrix as text or markdown, the stable JSON document, and ``--explain``.

JSON shape (``"format": "refserver-conformance/1"``)::

    {
      "format": "refserver-conformance/1",
      "generated": "2026-01-01T00:00:00+00:00",   # UTC, ISO 8601
      "refserver_version": "0.1.0",
      "duration_s": 12.3,
      "legend": {verdict: meaning},
      "targets": [{"name", "description", "installed", "version", "reason", "in_process",
                   "advertised": {"http": "2.3", "websocket": "2.4"},
                   "totals": {verdict: count}}],
      "scenarios": [Scenario.to_json()],            # id, title, lesson, group, refs, level, scripts, checks
      "cells": [{"target", "scenario", "verdict", "advertised_spec_version", "error", "duration_s",
                 "attempts", "command", "checks": [{"label", "observable", "value", "verdict", "level",
                                         "allowed", "refserver", "note", "show"}],
                 "trace": [{"t", "side", "ev", ...}]}]
    }

Keys are only ever added, never renamed or removed, within one format version.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import refserver
from refserver.conformance import JSON_FORMAT
from refserver.conformance import verdict as V
from refserver.conformance.catalogue import GROUP_ORDER, META_CLAIMS
from refserver.conformance.model import Scenario
from refserver.conformance.runner import TargetRun
from refserver.conformance.scenario_files import find as find_scenario
from refserver.conformance.targets import BY_NAME, OPTIONS, target_args

INTRO = """\
The harness runs one catalogue of scenarios against any ASGI server and looks at both sides:
the bytes on the wire (a raw client that writes every handshake, frame and fault itself) and
what the application was told (a probe app that reports every `receive()` result, every
`send()` and what it returned or raised, and how it ended, over a UDP side channel on
loopback). The client waits on the app's reports and the app on the client's gates, so
timing is decided by events, not by sleeps.

## Running it

```sh
python -m refserver.conformance                       # refserver + every installed peer, text matrix
python -m refserver.conformance --target uvicorn --target hypercorn --format markdown --out m.md
python -m refserver.conformance --scenario 'ws.close.*' --target daphne
python -m refserver.conformance --explain ws.close.code-reason --target hypercorn   # traces side by side
python -m refserver.conformance --list                # the catalogue
python -m refserver.conformance --format json --out report.json   # every cell with its traces
python -m refserver.conformance --from-json report.json --format markdown   # render it again, no new run
python -m refserver.conformance --diff hypercorn daphne   # the scenarios on which two targets differ
```

Peers are run with the interpreter given by `--python` (or `$REFSERVER_CONFORMANCE_PYTHON`);
install them with `pip install 'refserver[conformance]'` (the versions this matrix was made
with are pinned there). A peer that is not installed is reported as such. A target's
scenarios are taken, slowest first, by up to four lanes, each with a server of its own, and
`--jobs` lanes run at once across all targets (default: five per core). A server that exits or stops
answering is killed (by the PID the harness started), restarted, and the cell says `crash`
with the exit status; a fault of the harness itself says `error` and is reported apart. The
run always finishes.

## Testing your own server

```sh
python -m refserver.conformance --target-command 'mine=myserver {app} --host {host} --port {port}' --strict mine
```

The command may use these placeholders:

| placeholder | value |
|---|---|
PLACEHOLDER_ROWS

The harness puts refserver on the server's `PYTHONPATH` and the directory of `--python`
first on its `PATH`, so a server installed in that virtual environment is found without
activating it. One simple command (optionally with `NAME=value` assignments in front) is
exec'd by `sh`, so the PID the harness started is your server's and the SIGTERM of the
shutdown scenarios reaches it; a compound command (`cd dir && ...`, a pipeline) cannot be
exec'd, so its whole process group is signalled instead. Each cell records the exact command
line its server was started with (JSON `command`, `--explain`).

Some scenarios need the server started with an option: TLS with a certificate (`tls`, and
`client_cert` to require a client certificate), a Unix socket (`uds`), a root_path
(`root_path`), a WebSocket close timeout (`ws_close_timeout`), a request body's grace period
(`request_body_timeout`). Tell the harness how your
server takes each with `--target-option NAME:OPTION=ARGS`; the arguments go where the command
has `{options}` (else at its end), only for the scenarios that ask for the option, and may use
these placeholders (the harness makes the certificates for each run with trustme):

| placeholder | value |
|---|---|
OPTION_ROWS

```sh
python -m refserver.conformance --target-command 'mine=myserver {app} --port {port} {options}' \\
    --target-option 'mine:tls=--certfile {certfile} --keyfile {keyfile}' \\
    --target-option 'mine:client_cert=--ca-certs {ca_certs} --require-client-cert' \\
    --target-option 'mine:uds=--unix-socket {uds}' --target-option 'mine:root_path=--root-path {root_path}'
```

Without an option, the scenarios that need it are `n/a`. `--explain` takes the same
`--target-command` and `--target-option` flags, and every reproduce command the reports print
for your server (JUnit, findings) repeats them. A server that exits or never starts is `crash`,
with the reason (exit status, the end of its log) listed under the text matrix.

`--strict mine` exits 1 when `mine` fails a scenario, crashes or never starts; a fault of the
harness alone exits 3. `--format junit --out conformance.xml` writes one test case per
scenario, so your CI lists the scenarios your server fails (`fail` and `crash` are failures,
`n/a` is skipped, `deviates` and `differs` pass with the values in the output).

## Adding a scenario

A scenario is one call with keyword arguments: the built-in ones are in
`refserver/conformance/catalogue/`, one module per protocol (websocket, http, lifespan, tls,
deployment). To add scenarios of your own without touching the harness, write them in a file
against `refserver.conformance.api`, list them in `SCENARIOS`, and pass the file with
`--scenarios PATH` (repeatable): they run beside the catalogue on every target, are reported
the same way (their group is a section of its own), and work with `--scenario`, `--list` and
`--explain`. The client steps (what the raw client does on the wire) and the app steps (what
the probe app does) are the classes of `refserver/conformance/steps.py`; the observables a
check reads are those of `refserver/conformance/observe.py`. This example,
`refserver/conformance/example_scenarios.py`, is run by the test suite:

```python
EXAMPLE_SCENARIOS
```

```sh
python -m refserver.conformance --scenarios refserver/conformance/example_scenarios.py --scenario 'mine.*'
```

## Reading a cell

A cell is the verdict of one scenario on one target, judged against the `spec_version` the
target advertises: a rule newer than that version is `n/a`. A claim never raises a level: a
SHOULD of a version the target claims still `deviates`, and the broken claim is counted once, in
`meta.spec-version-claims`. Every check's level rests on one sentence of the spec or an RFC,
which `--explain` quotes. The value in parentheses is what the target did, where it matters.
The exit status is non-zero when refserver misses one of its own expectations (the values
marked `refserver:` below).

`--format json` writes the same run as one document (`"format": "refserver-conformance/1"`):
targets with versions and what they advertise, every scenario as data, and every cell with
its checks and both traces. Its shape is documented in `refserver/conformance/report.py`;
keys are only ever added within a format version."""


def intro() -> str:
    from refserver.conformance.targets import OPTION_PLACEHOLDERS, PLACEHOLDERS

    rows = "\n".join(f"| `{{{k}}}` | {_md(v)} |" for k, v in PLACEHOLDERS.items())
    options = "\n".join(f"| `{{{k}}}` | {_md(v)} |" for k, v in OPTION_PLACEHOLDERS.items())
    example = (Path(__file__).resolve().parent / "example_scenarios.py").read_text(encoding="utf-8").rstrip()
    return INTRO.replace("PLACEHOLDER_ROWS", rows).replace("OPTION_ROWS", options).replace("EXAMPLE_SCENARIOS", example)


# ---------------------------------------------------------------------- the model every renderer reads

ORDER = (V.PASS, V.FAIL, V.DEVIATES, V.DIFFERS, V.NA, V.CRASH, V.ERROR, V.FLAKY)


@dataclass(frozen=True)
class Target:
    """One target of a run, as the reports show it: from a live run (:meth:`of`) or read back
    from a JSON report (:meth:`from_json`), the same either way."""

    name: str
    description: str
    installed: bool
    version: str
    reason: str = ""  # why it is not installed
    in_process: bool = False
    select: str = ""  # the command-line arguments that select it again (for a reproduce command)
    advertised: Mapping[str, str] = field(default_factory=dict)  # spec_version by protocol
    restarts: int = 0

    @classmethod
    def of(cls, run: TargetRun) -> Target:
        info = run.info
        return cls(
            run.name,
            info.spec.description,
            info.installed,
            info.version,
            info.reason,
            run.in_process_backend is not None,
            target_args(info.spec),
            dict(run.advertised),
            run.restarts,
        )

    @property
    def advertises(self) -> str:
        """``"http 2.3, websocket 2.4"``; empty when it advertises nothing."""
        return advertises(self.advertised)

    def to_json(self, totals: dict[str, int]) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "installed": self.installed,
            "version": self.version,
            "reason": self.reason,
            "in_process": self.in_process,
            "select": self.select,
            "advertised": dict(self.advertised),
            "restarts": self.restarts,
            "totals": totals if self.installed else {},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        return cls(
            data["name"],
            data.get("description", data["name"]),
            bool(data["installed"]),
            str(data.get("version", "")),
            str(data.get("reason", "")),
            bool(data.get("in_process")),
            str(data.get("select") or f"--target {data['name']}"),
            dict(data.get("advertised") or {}),
            int(data.get("restarts") or 0),
        )


def advertises(advertised: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(advertised.items()))


@dataclass
class Report:
    """One run: its scenarios, its targets and a cell per scenario and target."""

    scenarios: list[Scenario]
    targets: list[Target]
    cells: list[V.Cell]
    duration_s: float = 0.0
    generated: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    )

    def target(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)

    def ran_targets(self) -> list[Target]:
        return [t for t in self.targets if t.installed]

    def cell(self, target: str, scenario: str) -> V.Cell | None:
        return next((c for c in self.cells if c.target == target and c.scenario == scenario), None)

    def cells_of(self, target: str) -> list[V.Cell]:
        return [c for c in self.cells if c.target == target]

    def cells_with(self, *verdicts: str) -> list[V.Cell]:
        return [c for c in self.cells if c.verdict in verdicts]

    def commands(self, target: str) -> list[str]:
        """The distinct command lines the target's servers were started with."""
        return list(dict.fromkeys(c.command for c in self.cells_of(target) if c.command))

    def totals(self, target: str) -> dict[str, int]:
        counts = dict.fromkeys(ORDER, 0)
        for c in self.cells_of(target):
            counts[c.verdict] = counts.get(c.verdict, 0) + 1
        return counts

    def groups(self) -> list[tuple[str, list[Scenario]]]:
        out = []
        for group in GROUP_ORDER:
            members = [s for s in self.scenarios if s.group == group]
            if members:
                out.append((group, members))
        # the groups of --scenarios files, in the order they first appear
        for group in dict.fromkeys(s.group for s in self.scenarios if s.group not in GROUP_ORDER):
            out.append((group, [s for s in self.scenarios if s.group == group]))
        return out

    def reproduce(self, cell: V.Cell) -> str:
        """The command that runs one cell again with both traces side by side."""
        target = self.target(cell.target)
        select = target.select if target is not None else f"--target {cell.target}"
        return f"python -m refserver.conformance --explain {cell.scenario} {select}"


@dataclass(frozen=True)
class FindingCell:
    """One cell of a finding: the checks it breaks, or none when the server went down."""

    cell: V.Cell
    scenario: Scenario | None
    broken: list[V.CheckResult]

    @property
    def bad(self) -> list[tuple[str, str]]:
        """What the server did, as (label, value)."""
        if self.cell.verdict == V.CRASH:
            return [("server", _went_down(self.cell))]
        return [(k.label, k.value) for k in self.broken]


@dataclass
class Finding:
    """One root cause: the same server (``family``), the same observable (``kind``, or
    ``crash``) and the same wrong value, across scenarios and variants."""

    family: str
    kind: str
    value: str
    cells: list[FindingCell] = field(default_factory=list)


def _went_down(cell: V.Cell) -> str:
    return (cell.error or "").split("; log:")[0]


def _family(target: str) -> str:
    """``hypercorn-trio`` -> ``hypercorn``: the variants of one server share its bugs."""
    return target.split("-")[0]


def claim_broken(check: V.CheckResult) -> bool:
    """A check that failed or deviates on a rule of a spec version the target advertises."""
    return check.verdict in (V.FAIL, V.DEVIATES) and check.note.startswith("advertises")


def _broken(check: V.CheckResult) -> bool:
    """A MUST broken, or a SHOULD of a spec version the target advertises (a claim it does not keep)."""
    return check.verdict == V.FAIL or claim_broken(check)


def findings(report: Report) -> list[Finding]:
    """Every peer cell that breaks a MUST (``fail``), or a SHOULD of a spec version the peer
    advertises, or in which the peer went down (``crash``), grouped by root cause."""
    groups: dict[tuple[str, str, str], Finding] = {}
    for c in report.cells:
        if c.target.startswith("refserver") or c.scenario == META_CLAIMS.id:
            continue  # the meta scenario only sums up the others
        if c.verdict != V.CRASH and not any(_broken(k) for k in c.checks):
            continue
        broken = [k for k in c.checks if _broken(k)] if c.verdict != V.CRASH else []
        if c.verdict == V.CRASH:
            key = (_family(c.target), "crash", _went_down(c).replace(c.scenario, "SCENARIO"))
        else:
            key = (_family(c.target), broken[0].observable, broken[0].value)
        groups.setdefault(key, Finding(*key)).cells.append(FindingCell(c, find_scenario(c.scenario), broken))
    return sorted(groups.values(), key=lambda g: (g.family, -len(g.cells), g.kind, g.value))


def add_meta_cells(cells: list[V.Cell], targets: Sequence[TargetRun]) -> None:
    """A target keeps the spec_version it advertises, judged from every other cell: a failed
    check (MUST or SHOULD) of a rule that a version up to the advertised one introduced."""
    for target in targets:
        if not target.info.installed:
            continue
        mine = [c for c in cells if c.target == target.name]
        if not mine:
            continue
        broken = [c.scenario for c in mine for check in c.checks if claim_broken(check)]
        value = "kept" if not broken else "broken: " + ", ".join(sorted(set(broken)))
        result = V.CheckResult(
            "claims kept",
            "claims",
            value,
            V.PASS if not broken else V.FAIL,
            "MUST",
            ("kept",),
            "kept",
            show=bool(broken),
            note=f"advertises {advertises(target.advertised) or 'nothing'}",
        )
        cells.append(
            V.Cell(target.name, META_CLAIMS.id, result.verdict, [result], advertised=target.advertised.get("websocket"))
        )


# ---------------------------------------------------------------------- JSON


def render_json(report: Report, *, traces: bool = True) -> dict[str, Any]:
    return {
        "format": JSON_FORMAT,
        "generated": report.generated,
        "refserver_version": refserver.__version__,
        "duration_s": round(report.duration_s, 2),
        "legend": V.LEGEND,
        "targets": [t.to_json(report.totals(t.name)) for t in report.targets],
        "scenarios": [s.to_json() for s in report.scenarios],
        "cells": [c.to_json(with_trace=traces) for c in report.cells],
    }


def load_json(path: str | Path) -> Report:
    """A report written by ``--format json``, read back: it renders as text, markdown or
    JUnit and compares with ``--diff`` without running anything again. Scenarios are the
    catalogue's (by id); a scenario the catalogue no longer has is left out."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != JSON_FORMAT:
        raise ValueError(f"{path}: not a {JSON_FORMAT} report (format {data.get('format')!r})")
    scenarios = [found for s in data["scenarios"] if (found := find_scenario(s["id"])) is not None]
    targets = [Target.from_json(t) for t in data["targets"]]
    cells = [V.Cell.from_json(c, find_scenario(c["scenario"])) for c in data["cells"]]
    report = Report(scenarios, targets, cells, duration_s=float(data.get("duration_s") or 0.0))
    report.generated = str(data.get("generated") or report.generated)
    return report


# ---------------------------------------------------------------------- text and markdown


def _cell_text(report: Report, target: str, scenario: str, width: int = 30) -> str:
    cell = report.cell(target, scenario)
    if cell is None:
        return "-"
    text = cell.summary
    return text if len(text) <= width else text[: width - 1] + "…"


def _target_line(t: Target) -> str:
    if not t.installed:
        return f"{t.name}: not installed ({t.reason})"
    where = ", in-process" if t.in_process else ""
    restarts = f", restarted {t.restarts}x" if t.restarts else ""
    return f"{t.name}: {t.description} {t.version}{where}; advertises {t.advertises or '?'}{restarts}"


def render_text(report: Report) -> str:
    targets = report.ran_targets()
    names = [t.name for t in targets]
    lines = [
        f"refserver conformance: {len(report.scenarios)} scenarios x {len(names)} targets, "
        f"{report.generated}, {report.duration_s:.1f} s",
        "",
    ]
    lines += ["Targets:"] + [f"  {_target_line(t)}" for t in report.targets] + [""]
    id_width = max((len(s.id) for s in report.scenarios), default=10)
    col = 26
    for group, members in report.groups():
        lines.append(f"== {group}")
        lines.append(f"  {'scenario':<{id_width}} {'level':<11} " + " ".join(f"{n[:col]:<{col}}" for n in names))
        for s in members:
            cells = " ".join(f"{_cell_text(report, n, s.id, col):<{col}}" for n in names)
            lines.append(f"  {s.id:<{id_width}} {s.level.value:<11} {cells}")
        lines.append("")
    lines.append("Totals:")
    for n in names:
        totals = report.totals(n)
        lines.append(f"  {n:<20} " + "  ".join(f"{k} {totals[k]}" for k in ORDER if totals[k]))
    lines += ["", "Legend:"] + [f"  {k:<9} {v}" for k, v in V.LEGEND.items()]
    crashes = report.cells_with(V.CRASH)
    if crashes:
        lines += ["", "Crashes (the server exited, did not start, or stopped answering):"]
        lines += [f"  {c.target} / {c.scenario}: {_one_line(c.error or 'no reason recorded')}" for c in crashes]
    errors = report.cells_with(V.ERROR)
    if errors:
        lines += ["", "Errors:"] + [f"  {c.target} / {c.scenario}: {c.error}" for c in errors]
    lines.append("")
    lines.append("Details of one cell: python -m refserver.conformance --explain SCENARIO --target NAME")
    return "\n".join(lines) + "\n"


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, *, catalogue: bool = True) -> str:
    targets = report.ran_targets()
    names = [t.name for t in targets]
    out = [
        "# Conformance: refserver and other ASGI servers, scenario by scenario",
        "",
        f"Generated {report.generated} by `python -m refserver.conformance --docs` "
        f"(refserver {refserver.__version__}); {len(report.scenarios)} scenarios, "
        f"{report.duration_s:.0f} s. Do not edit by hand: see [Regenerating](#regenerating).",
        "",
        *intro().splitlines(),
        "",
        "## Targets",
        "",
        "| target | server | version | advertises | note |",
        "|---|---|---|---|---|",
    ]
    for t in report.targets:
        adv = t.advertises if t.installed else ""
        note = "" if t.installed else f"not installed: {t.reason}"
        if t.restarts:
            note = f"restarted {t.restarts} times during the run"
        out.append(f"| {t.name} | {_md(t.description)} | {t.version} | {adv} | {_md(note)} |")
    out += [
        "",
        "Every server was started with the command line below (the harness chose the port; a scenario "
        "that needs a server of its own, e.g. with keepalive pings, names its own in the JSON report):",
        "",
    ]
    for t in targets:
        for command in report.commands(t.name)[:1]:
            out.append(f"- {t.name}: `{_md(_portable(command))}`")
    out += _option_table(targets)
    out += ["", "## Totals", "", "| target | " + " | ".join(ORDER) + " |", "|---|" + "---|" * len(ORDER)]
    for n in names:
        totals = report.totals(n)
        out.append(f"| {n} | " + " | ".join(str(totals[k]) for k in ORDER) + " |")
    out += ["", "## Legend", ""] + [f"- **{k}**: {v}" for k, v in V.LEGEND.items()]
    out += [
        "",
        "A value in parentheses is what the target did, shown where it matters (the spec allows a choice, "
        "or the target departs from it).",
        "",
        "## Matrix",
        "",
    ]
    for group, members in report.groups():
        out += [
            f"### {group}",
            "",
            "| scenario | level | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for s in members:
            cells = " | ".join(_md(_cell_text(report, n, s.id, 40)) for n in names)
            out.append(f"| [`{s.id}`](#{_anchor(s.id)}) | {s.level.value} | {cells} |")
        out.append("")
    details = [c for c in report.cells if c.verdict not in (V.PASS, V.NA)]
    if details:
        out += ["## Departures", "", "Every cell that is not `pass` or `n/a`, with the values observed.", ""]
        for s in report.scenarios:
            mine = [c for c in details if c.scenario == s.id]
            if not mine:
                continue
            out.append(f"- **`{s.id}`**: {_md(s.title)}")
            for c in mine:
                if c.verdict in (V.ERROR, V.CRASH):
                    out.append(f"  - {c.target}: {c.verdict}: {_md(c.error or '')}")
                    continue
                parts = [
                    f"{_md(k.label)} = `{_md(k.value)}` ({k.verdict}{'; ' + _md(k.note) if k.note else ''})"
                    for k in c.departing
                ]
                out.append(f"  - {c.target}: **{c.verdict}**: " + "; ".join(parts))
        out.append("")
    logged = [c for c in report.cells if c.logged.startswith("error")]
    if logged:
        out += [
            "## Logged at error level",
            "",
            "Cells during which the server wrote an error-level line or a traceback (its first such line). Where "
            "the spec says the event must not be logged as an error, a check of the scenario judges it; elsewhere "
            "this is for information.",
            "",
        ]
        out += [f"- {c.target} / `{c.scenario}`: `{_md(c.logged.removeprefix('error: '))}`" for c in logged]
        out.append("")
    if catalogue:
        out += [
            "## Scenarios",
            "",
            "Each scenario as data: what the client and the app do, and what is expected. "
            "`refserver:` marks refserver's own choice where the spec allows several.",
            "",
        ]
        for group, members in report.groups():
            out += [f"### {group}", ""]
            for s in members:
                out.append(f"#### {s.id}")
                out.append("")
                out.append(f"**{_md(s.title)}.** {_md(s.lesson)}  ")
                refs = "; ".join(s.refs)
                pinned = f"scenario {s.peer_case} of tests/test_ws_peer_scenarios.py"
                case = f" Pinned for refserver by {pinned}." if s.peer_case else ""
                out.append(f"Level: {s.level.value}. Rests on: {_md(refs)}.{case}")
                out.append("")
                if s.client:
                    out.append("- client: " + " → ".join(f"`{_md(x.describe())}`" for x in s.client))
                if s.lifespan_app:
                    out.append("- lifespan app: " + " → ".join(f"`{_md(x.describe())}`" for x in s.lifespan_app))
                if s.app:
                    out.append("- app: " + " → ".join(f"`{_md(x.describe())}`" for x in s.app))
                for check in s.checks:
                    level = (check.level or s.level).value
                    allowed = ", ".join(f"`{_md(a)}`" for a in check.allowed)
                    extra = "".join(
                        f"; from {v}: " + ", ".join(f"`{_md(p)}`" for p in ps) for v, ps in check.by_version
                    )
                    since = f"; since {check.since}" if check.since else ""
                    choice = f"; refserver: `{_md(check.choice)}`" if check.choice else ""
                    out.append(
                        f"- expect {_md(check.label or check.observable)} ({level}{since}): {allowed}{extra}{choice}"
                    )
                out.append("")
    out += [
        "## Regenerating",
        "",
        "```sh",
        "python -m venv /tmp/peers && /tmp/peers/bin/pip install -e '.[conformance]'",
        "/tmp/peers/bin/python -m refserver.conformance --docs --json-out /tmp/conformance.json",
        "/tmp/peers/bin/python -m refserver.conformance --from-json /tmp/conformance.json --diff hypercorn daphne",
        "```",
        "",
        "`--docs` runs every built-in target that is installed and writes this file "
        "(`--format markdown --out docs/conformance.md`) and [docs/peer-findings.md](peer-findings.md) "
        "(`--format findings`); `--json-out` keeps the run, so it can be rendered or compared again without "
        "running anything. The `conformance` extra pins the peers' versions this matrix was made with.",
        "",
    ]
    return "\n".join(out)


def _portable(command: str) -> str:
    """A command line as the docs show it: the interpreter's path is ``python`` and the port
    the harness chose is ``PORT``."""
    command = re.sub(r"\S*/bin/python[0-9.]*", "python", command)
    return re.sub(r"(--port |--bind \S+:|-p |:)\d{4,5}\b", r"\1PORT", command)


def _anchor(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum() or ch in "-_ ").replace(" ", "-")


# ---------------------------------------------------------------------- --explain

_KEYS = ("kind", "status", "code", "reason", "opcode", "exc", "how", "name", "value", "what", "step")
_NOISE = ("closed_tcp", "closed_tcp_after_eof", "script_done_closed_tcp", "connected", "wait_timeout", "eof")


def signature(record: dict[str, Any]) -> str:
    """What a record says, without times, ports or lengths (for finding the first difference)."""
    parts = [record["side"], record["ev"]]
    parts += [f"{key}={record[key]}" for key in _KEYS if key in record and key != "what"]
    msg = record.get("msg")
    if isinstance(msg, dict):
        parts += [f"{k}={v}" for k, v in sorted(msg.items()) if k != "type"]
    return " ".join(parts)  # the advertised version is in the header above the traces


def first_difference(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> int | None:
    """Index (in ``left``) of the first record that differs from ``right``, comparing the
    client's records and the app's records each in their own order (their interleaving
    is timing, not behaviour)."""
    candidates = []
    for side in ("client", "app", "runner"):
        mine = [(i, r) for i, r in enumerate(left) if r["side"] == side and r["ev"] not in _NOISE]
        theirs = [r for r in right if r["side"] == side and r["ev"] not in _NOISE]
        for n, (i, record) in enumerate(mine):
            if n >= len(theirs) or signature(record) != signature(theirs[n]):
                candidates.append(i)
                break
        else:
            if len(theirs) > len(mine):
                candidates.append(len(left))
    return min(candidates) if candidates else None


def _line(record: dict[str, Any]) -> str:
    extra = [f"{key}={record[key]}" for key in _KEYS if key in record]
    msg = record.get("msg")
    if isinstance(msg, dict):
        brief = {k: v for k, v in msg.items() if k != "type"}
        if brief:
            extra.append(str(brief))
    if record["ev"] == "hello":
        asgi = (record.get("scope") or {}).get("asgi") or {}
        extra.append(f"spec_version={asgi.get('spec_version') if isinstance(asgi, dict) else asgi}")
    if "text" in record and record["ev"].endswith("_raised"):
        extra.append(repr(record["text"]))
    return f"{record['t']:6.3f} {record['side']:<6} {record['ev']} " + " ".join(extra)


def render_explain(scenario: Scenario, target_cell: V.Cell, ref_cell: V.Cell | None) -> str:
    out = [
        f"{scenario.id}: {scenario.title}",
        f"  {scenario.lesson}",
        f"  level {scenario.level.value}; rests on " + "; ".join(scenario.refs),
        "",
    ]
    out.append("client script:")
    out += [f"  {i}. {s.describe()}" for i, s in enumerate(scenario.client)]
    if scenario.lifespan_app:
        out.append("lifespan app script:")
        out += [f"  {i}. {s.describe()}" for i, s in enumerate(scenario.lifespan_app)]
    out.append("app script:")
    out += [f"  {i}. {s.describe()}" for i, s in enumerate(scenario.app)]
    out.append("")
    for cell in (target_cell, ref_cell):
        if cell is None:
            continue
        out.append(
            f"{cell.target}: {cell.verdict} (advertises {cell.advertised or '?'})"
            + (f" - {cell.error}" if cell.error else "")
        )
        if cell.command:
            out.append(f"  server: {cell.command}")
        for c in cell.checks:
            choice = f"; refserver: {c.choice}" if c.choice else ""
            note = f"; {c.note}" if c.note else ""
            out.append(
                f"  [{c.verdict:<8}] {c.label} ({c.level}): {c.value!r}; allowed {list(c.allowed)}{choice}{note}"
            )
            if c.rule:
                out.append(f"             rests on {c.rule}")
        out.append("")
    left = target_cell.trace
    right = ref_cell.trace if ref_cell is not None and ref_cell is not target_cell else []
    first_diff = first_difference(left, right) if right else None
    width = 70
    out.append(f"   {target_cell.target:<{width}} | {ref_cell.target if ref_cell and right else ''}")
    out.append("   " + "-" * width + "-+-" + "-" * width)
    for i in range(max(len(left), len(right))):
        a = _line(left[i]) if i < len(left) else ""
        b = _line(right[i]) if i < len(right) else ""
        mark = ">> " if i == first_diff else "   "
        out.append(f"{mark}{a[:width]:<{width}} | {b[:width]}")
    if first_diff is not None:
        out.append("")
        out.append(
            f">> marks the first difference (record {first_diff} of {target_cell.target}; the client's and "
            "the app's records are compared each in their own order)."
        )
    elif right:
        out.append("")
        out.append("The two traces have the same events.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------- JUnit


def render_junit(report: Report) -> str:
    """One ``<testsuite>`` per target and one ``<testcase>`` per scenario, so that a server's
    own CI lists the scenarios it fails: ``fail`` and ``crash`` are failures, a harness
    ``error`` is an error, ``n/a`` is skipped; ``deviates``, ``differs`` and ``flaky`` pass
    with the values in ``system-out``."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f"<testsuites name={quoteattr('refserver conformance')}>"]
    for t in report.ran_targets():
        mine = report.cells_of(t.name)
        totals = report.totals(t.name)
        failures = sum(totals[v] for v in V.STRICT_FAILURES)
        out.append(
            f'  <testsuite name={quoteattr(t.name)} tests="{len(mine)}" failures="{failures}" '
            f'errors="{totals[V.ERROR]}" skipped="{totals[V.NA]}" timestamp={quoteattr(report.generated)}>'
        )
        for c in mine:
            scenario = find_scenario(c.scenario)
            title = scenario.title if scenario is not None else c.scenario
            out.append(
                f"    <testcase classname={quoteattr(t.name)} name={quoteattr(c.scenario + ': ' + title)} "
                f'time="{c.duration_s:.3f}">'
            )
            detail = _cell_detail(report, c)
            if c.verdict in V.STRICT_FAILURES:
                out.append(f"      <failure message={quoteattr(c.summary)} type={quoteattr(c.verdict)}>")
                out.append(escape(detail))
                out.append("      </failure>")
            elif c.verdict == V.ERROR:
                out.append(f'      <error message={quoteattr(c.error or "harness error")} type="harness"/>')
            elif c.verdict == V.NA:
                out.append(f"      <skipped message={quoteattr(c.error or c.summary)}/>")
            elif c.verdict != V.PASS:
                out.append(f"      <system-out>{escape(c.summary + chr(10) + detail)}</system-out>")
            out.append("    </testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def _cell_detail(report: Report, c: V.Cell) -> str:
    lines = []
    if c.error:
        lines.append(c.error)
    for k in c.departing:
        note = f" ({k.note})" if k.note else ""
        lines.append(f"{k.label} [{k.level}]: {k.value!r}, allowed {list(k.allowed)}{note}")
    if c.command:
        lines.append(f"server: {c.command}")
    lines.append(f"reproduce: {report.reproduce(c)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- --diff


def _values(c: V.Cell | None) -> tuple[str, tuple[str, ...]]:
    if c is None:
        return ("-", ())
    return (c.verdict, tuple(f"{k.label}={k.value}" for k in c.checks))


def render_diff(report: Report, left: str, right: str) -> str:
    """The scenarios on which two targets differ, in verdict or in an observed value."""
    rows = []
    for s in report.scenarios:
        a, b = report.cell(left, s.id), report.cell(right, s.id)
        if _values(a) == _values(b):
            continue
        rows.append((s.id, a.summary if a else "-", b.summary if b else "-"))
    width = max([len(r[0]) for r in rows] + [8])
    out = [f"{'scenario':<{width}}  {left:<34} {right}", "-" * (width + 2 + 34 + 1 + len(right))]
    out += [f"{sid:<{width}}  {x:<34} {y}" for sid, x, y in rows]
    same = len(report.scenarios) - len(rows)
    out.append("")
    out.append(f"{len(rows)} scenarios differ, {same} are the same (verdict and every observed value).")
    out.append(f"One of them in detail: python -m refserver.conformance --explain SCENARIO --target {left}")
    return "\n".join(out) + "\n"


def _option_table(targets: list[Target]) -> list[str]:
    """Each built-in target's own flags for the options a scenario may ask for (a Unix socket, a
    root_path, TLS...); a target without one is n/a for the scenarios that need it."""
    # a report read back from JSON has the targets' names only: the built-in specs give their flags
    shown = [BY_NAME[t.name] for t in targets if t.name in BY_NAME]
    if not shown:
        return []
    out = [
        "",
        "The options a scenario may ask for, with each target's own flags (`—`: the target has none, and is "
        "`n/a` for the scenarios that need it; the harness makes the TLS certificates for each run with trustme):",
        "",
        "| option | " + " | ".join(t.name for t in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for name, what in OPTIONS.items():
        cells = []
        for t in shown:
            argv = t.option_argv(name)
            cell = "—" if argv is None else f"`{_md(' '.join(argv))}`" if argv else "(built in)"
            for option, dropped in t.replaces:
                if option == name:
                    cell += f", instead of `{_md(' '.join(dropped))}`"
            cells.append(cell)
        out.append(f"| {name}: {_md(what)} | " + " | ".join(cells) + " |")
    return out


# ---------------------------------------------------------------------- findings for upstream


def render_findings(report: Report) -> str:
    groups = findings(report)
    versions = {t.name: t.version for t in report.targets}
    out = [
        "# Findings for upstream: where peers break the ASGI spec or the RFCs",
        "",
        f"Generated {report.generated} by `python -m refserver.conformance --docs` from the run of "
        "[docs/conformance.md](conformance.md); do not edit by hand.",
        "",
        "Every cell in which a peer breaks a MUST, or a SHOULD of a spec version it advertises (a claim it does "
        "not keep), or in which the server under test exited or stopped answering. Cells with the same server, "
        "the same observed value and the same wrong value are one finding: one root cause. Each finding gives "
        "the rule (the scenario's lesson and the sections it rests on), what the server did, and the one command "
        "that reproduces it with both traces side by side.",
        "",
        f"{len(groups)} findings in {sum(len(g.cells) for g in groups)} cells.",
        "",
    ]
    family = None
    for number, g in enumerate(groups, 1):
        if g.family != family:
            family = g.family
            targets = sorted({e.cell.target for x in groups if x.family == family for e in x.cells})
            shown = ", ".join(f"{t} {versions.get(t, '')}".strip() for t in targets)
            out += [f"## {family}", "", f"Targets: {shown}.", ""]
        scenarios = sorted({e.cell.scenario for e in g.cells})
        if g.kind == "crash":
            title = f"the server went down: {g.value}"
        else:
            title = f"{g.cells[0].broken[0].label} = `{_md(g.value)}`"
        out.append(f"### {number}. {_md(title)}")
        out.append("")
        out.append(
            f"In {len(scenarios)} scenario{'s' if len(scenarios) > 1 else ''}: "
            + ", ".join(f"`{x}`" for x in scenarios)
            + "."
        )
        out.append("")
        seen: set[str] = set()
        for e in g.cells:
            s, c = e.scenario, e.cell
            if s is not None and s.id not in seen:
                seen.add(s.id)
                out.append(f"- **`{s.id}`** ({s.level.value}; {_md('; '.join(s.refs))}): {_md(s.lesson)}")
            expected = ""
            if e.broken:
                k = e.broken[0]
                note = f"; {k.note}" if k.note else ""
                expected = f" Expected {', '.join(f'`{_md(a)}`' for a in k.allowed)} ({k.level}{_md(note)})."
                if k.rule:
                    expected += f" Rests on {_md(k.rule)}."
            did = "; ".join(f"{_md(label)} = `{_md(value)}`" for label, value in e.bad)
            out.append(f"  - {c.target} (advertises {c.advertised or '?'}): {did}.{expected}")
            out.append(f"    Reproduce: `{report.reproduce(c)}`")
        out.append("")
    return "\n".join(out) + "\n"
