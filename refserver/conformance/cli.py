"""``python -m refserver.conformance``: run the catalogue against servers and report.

Exit status: 0 when refserver meets every one of its own expectations and every
``--strict`` target has no ``fail`` and no ``crash`` (and was installed); 1 otherwise; 2 for
a usage error; 3 when the only problem is a fault of the harness itself (``error`` cells),
which says nothing about the targets.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

from refserver.conformance import scenario_files
from refserver.conformance import verdict as V
from refserver.conformance.catalogue import SCENARIOS
from refserver.conformance.model import Scenario
from refserver.conformance.mutants import run as mutant_run
from refserver.conformance.report import (
    Report,
    Target,
    add_meta_cells,
    load_json,
    render_diff,
    render_explain,
    render_findings,
    render_json,
    render_junit,
    render_markdown,
    render_text,
)
from refserver.conformance.runner import LANES_PER_TARGET, Runner, TargetRun, default_jobs
from refserver.conformance.targets import (
    BUILTIN_TARGETS,
    BY_NAME,
    OPTION_PLACEHOLDERS,
    OPTIONS,
    PLACEHOLDERS,
    REFSERVER_TARGETS,
    TargetInfo,
    TargetSpec,
    custom_target,
    default_python,
    probe_target,
)

DOCS_PATH = Path(__file__).resolve().parent.parent.parent / "docs" / "conformance.md"
FINDINGS_PATH = DOCS_PATH.with_name("peer-findings.md")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m refserver.conformance",
        description="Run one catalogue of ASGI scenarios against refserver and other servers, look at both "
        "sides (the wire and what the app saw), and report where each server departs from the spec.",
        epilog="Test your own server: python -m refserver.conformance --target-command "
        "'mine=myserver {app} --port {port}' (the app is refserver.conformance.probe:app).",
    )
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME",
        help="a target to run (repeatable). Built-in: "
        + ", ".join(t.name for t in BUILTIN_TARGETS)
        + ". Default: refserver plus every built-in target that is installed",
    )
    p.add_argument(
        "--target-command",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="a server of your own (repeatable). COMMAND may use the placeholders "
        + "; ".join(f"{{{k}}}: {v}" for k, v in PLACEHOLDERS.items())
        + ". One simple command is exec'd by the shell, so SIGTERM reaches the server itself; a compound "
        "command (&&, a pipeline) gets its process group signalled",
    )
    p.add_argument(
        "--target-option",
        action="append",
        default=[],
        metavar="NAME:OPTION=ARGS",
        help="how to start --target-command NAME with an option some scenarios need (repeatable): OPTION is one of "
        + ", ".join(OPTIONS)
        + "; ARGS go where the command has {options} (else at its end), and may use "
        + "; ".join(f"{{{k}}}: {v}" for k, v in OPTION_PLACEHOLDERS.items())
        + ". Without it, the scenarios that need the option are n/a",
    )
    p.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only scenarios whose id matches (fnmatch, or a substring; repeatable)",
    )
    p.add_argument(
        "--scenarios",
        action="append",
        default=[],
        metavar="PATH",
        help="also run the scenarios of a file of your own, written against refserver.conformance.api "
        "(its SCENARIOS list; repeatable)",
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument(
        "--format",
        choices=("text", "markdown", "json", "junit", "findings"),
        default="text",
        help="report format; junit: one test case per scenario and target, for a server's own CI; findings: "
        "the peers' departures from a MUST or a claimed SHOULD, grouped by root cause (docs/peer-findings.md)",
    )
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="render a report written by --format json (as --format says) instead of running anything",
    )
    p.add_argument(
        "--diff",
        nargs=2,
        metavar=("A", "B"),
        help="compare two targets (any two; with --from-json, from that report): the scenarios whose "
        "verdict or observed values differ",
    )
    p.add_argument("--out", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument(
        "--explain",
        metavar="SCENARIO",
        help="run one scenario on --target and on refserver and show both traces side by side",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=default_jobs(),
        metavar="N",
        help="run up to N lanes at once, across targets; a target's scenarios are dealt out to up to "
        f"{LANES_PER_TARGET} lanes, each with a server of its own (default: 5 per core, here %(default)s)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run every cell N times; cells whose verdicts disagree are 'flaky' (default 1)",
    )
    p.add_argument(
        "--strict",
        action="append",
        default=[],
        metavar="TARGET",
        help="exit non-zero if TARGET fails or crashes in any scenario, or is not installed (repeatable)",
    )
    p.add_argument(
        "--python",
        default=default_python(),
        metavar="PATH",
        help="the interpreter that runs the built-in targets (default: this one, or $REFSERVER_CONFORMANCE_PYTHON)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run refserver targets inside this process (refserver's own backend must match)",
    )
    p.add_argument(
        "--docs",
        action="store_true",
        help=f"run every installed built-in target and write the markdown matrix to {DOCS_PATH.name} and the "
        f"peers' findings to {FINDINGS_PATH.name}",
    )
    p.add_argument("--no-traces", action="store_true", help="leave traces out of the JSON report")
    p.add_argument(
        "--json-out",
        metavar="FILE",
        help="also write the run as a JSON report to FILE (e.g. with --docs), to render or --diff it later",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def select_scenarios(patterns: Sequence[str], extra: Sequence[Scenario] = ()) -> list[Scenario]:
    """The catalogue's scenarios and ``extra`` (from --scenarios files) whose id matches."""
    if not patterns:
        return [*SCENARIOS, *extra]
    chosen = []
    for s in [*SCENARIOS, *extra]:
        if any(fnmatch.fnmatchcase(s.id, p) or p in s.id for p in patterns):
            chosen.append(s)
    return chosen


def resolve_targets(
    names: Sequence[str],
    commands: Sequence[str],
    python: str,
    in_process: bool = False,
    options: Sequence[str] = (),
) -> list[TargetRun]:
    specs: list[TargetSpec] = []
    for name in names:
        if name not in BY_NAME:
            raise ValueError(
                f"unknown target {name!r}; built-in targets: {', '.join(BY_NAME)} "
                "(or use --target-command NAME=COMMAND)"
            )
        specs.append(BY_NAME[name])
    customs = [custom_target(c, options) for c in commands]
    unclaimed = {o.partition(":")[0].strip() for o in options} - {c.name for c in customs}
    if unclaimed:
        raise ValueError(f"--target-option for {', '.join(sorted(unclaimed))}: no --target-command of that name")
    explicit = bool(names or customs)
    if not explicit:
        specs = list(BUILTIN_TARGETS)
    runs = []
    for spec in [*specs, *customs]:
        info = probe_target(spec, python if spec.name not in REFSERVER_TARGETS else sys.executable)
        if not explicit and not info.installed and spec.name not in REFSERVER_TARGETS:
            # reported as not installed, not run
            pass
        backend = None
        if in_process and spec.name in REFSERVER_TARGETS:
            backend = "trio" if spec.name == "refserver-trio" else "asyncio"
            info = TargetInfo(spec, info.installed, info.version, info.reason, in_process=True)
        runs.append(TargetRun(info, python if spec.name not in REFSERVER_TARGETS else sys.executable, backend))
    return runs


async def run_report(
    targets: list[TargetRun],
    scenarios: list[Scenario],
    *,
    jobs: int | None = None,
    repeat: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Run ``scenarios`` against ``targets`` and build the report (the API the tests use)."""
    started = time.monotonic()
    runner = Runner(targets, jobs=jobs or default_jobs(), repeat=repeat, progress=progress)
    cells = await runner.run(scenarios)
    if any(s.meta for s in scenarios):
        add_meta_cells(cells, targets)
    return Report(scenarios, [Target.of(t) for t in targets], cells, duration_s=time.monotonic() - started)


def refserver_misses(report: Report) -> list[str]:
    missed = []
    for cell in report.cells:
        if cell.target in REFSERVER_TARGETS:
            for item in V.self_expectation_missed(cell):
                missed.append(f"{cell.target} / {cell.scenario}: {item}")
    return missed


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    extra: list[Scenario] = []
    for path in args.scenarios:
        try:
            extra += scenario_files.load(path)
        except (OSError, ValueError, SyntaxError) as exc:
            parser.error(f"--scenarios {path}: {exc}")
    scenarios = select_scenarios(args.scenario, extra)
    if args.list:
        if args.format == "json":
            print(json.dumps([s.to_json() for s in scenarios], indent=2, ensure_ascii=False))
        else:
            for s in scenarios:
                case = f" [test scenario {s.peer_case}]" if s.peer_case else ""
                print(f"{s.id:<46} {s.level.value:<11} {s.title}{case}")
            print(f"\n{len(scenarios)} scenarios")
        return 0
    if not scenarios:
        parser.error(f"no scenario matches {args.scenario}")
    if args.explain:
        return explain(args)
    if args.from_json:
        try:
            report = load_json(args.from_json)
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--from-json: {exc}")
        return finish(args, report, parser)
    if args.docs:
        args.format = "markdown"
        args.out = args.out or str(DOCS_PATH)
        args.target = args.target or [t.name for t in BUILTIN_TARGETS]
        args.no_traces = True
    if args.diff and not (args.target or args.target_command):
        args.target = [n for n in args.diff if n in BY_NAME]
    try:
        targets = resolve_targets(args.target, args.target_command, args.python, args.in_process, args.target_option)
    except ValueError as exc:
        parser.error(str(exc))
    for name in [*args.strict, *(args.diff or [])]:
        if name not in {t.name for t in targets}:
            parser.error(f"{name}: not among the targets")
    for t in targets:
        if not t.info.installed:
            print(f"conformance: {t.name}: not installed ({t.info.reason})", file=sys.stderr)
    scenarios, not_run = without_certificates(scenarios)
    if not_run:
        print(
            f"conformance: {_tls_scenarios(not_run)} not run: their certificates are made with trustme, "
            f"which is not installed; pip install '{TLS_EXTRA}' to run them",
            file=sys.stderr,
        )
        if not scenarios:
            return 1 if args.strict else 0
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    backend = "trio" if any(t.in_process_backend == "trio" for t in targets) else "asyncio"
    if args.in_process and {t.in_process_backend for t in targets} >= {"trio", "asyncio"}:
        parser.error("--in-process runs one backend at a time: pick refserver or refserver-trio")
    report = anyio.run(
        lambda: run_report(targets, scenarios, jobs=args.jobs, repeat=args.repeat, progress=progress), backend=backend
    )
    status = finish(args, report, parser)
    if not_run and args.strict:
        # --strict asks for every scenario: the ones not run are not a pass.
        print(f"conformance: --strict: {_tls_scenarios(not_run)} not run (pip install '{TLS_EXTRA}')", file=sys.stderr)
        return status or 1
    return status


TLS_EXTRA = "refserver[tls-scenarios]"


def _tls_scenarios(scenarios: list[Scenario]) -> str:
    return f"{len(scenarios)} TLS scenario{'' if len(scenarios) == 1 else 's'}"


def without_certificates(scenarios: list[Scenario]) -> tuple[list[Scenario], list[Scenario]]:
    """The scenarios that can run, and those that cannot: the TLS scenarios' certificates are
    made with trustme (the ``tls-scenarios`` extra), which a plain install lacks."""
    if importlib.util.find_spec("trustme") is not None:
        return scenarios, []
    needs = [s for s in scenarios if s.server is not None and "tls" in s.server.options()]
    return [s for s in scenarios if s not in needs], needs


def render(report: Report, fmt: str, *, traces: bool = True) -> str:
    if fmt == "json":
        return json.dumps(render_json(report, traces=traces), indent=1, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "junit":
        return render_junit(report)
    if fmt == "findings":
        return render_findings(report)
    return render_text(report)


def finish(args: argparse.Namespace, report: Report, parser: argparse.ArgumentParser) -> int:
    """Write the report (or the diff) and work out the exit status."""
    if args.diff:
        names = {t.name for t in report.targets}
        for name in args.diff:
            if name not in names:
                parser.error(f"--diff: no target {name!r} in the report")
        text = render_diff(report, args.diff[0], args.diff[1])
    else:
        text = render(report, args.format, traces=not args.no_traces)
    if args.docs and Path(args.out) == DOCS_PATH and DOCS_PATH.exists():
        # The kill rate is measured by another command (python -m refserver.conformance.mutants
        # --write-docs): keep its section as it stands.
        kept = mutant_run.existing_section(DOCS_PATH.read_text(encoding="utf-8"))
        if kept is not None:
            text = mutant_run.splice_section(text, kept)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"conformance: report written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.json_out:
        Path(args.json_out).write_text(render(report, "json", traces=not args.no_traces), encoding="utf-8")
        print(f"conformance: JSON report written to {args.json_out}", file=sys.stderr)
    if args.docs:
        FINDINGS_PATH.write_text(render_findings(report), encoding="utf-8")
        print(f"conformance: findings written to {FINDINGS_PATH}", file=sys.stderr)
    return exit_status(report, args.strict, check_refserver=not args.from_json)


def exit_status(report: Report, strict: Sequence[str], *, check_refserver: bool = True) -> int:
    status = 0
    missed = refserver_misses(report) if check_refserver else []
    if missed:
        status = 1
        print(f"conformance: refserver missed {len(missed)} of its own expectations:", file=sys.stderr)
        for line in missed[:40]:
            print(f"  {line}", file=sys.stderr)
    for name in strict:
        target = report.target(name)
        if target is None or not target.installed:
            status = 1
            reason = target.reason if target is not None else "not in the report"
            print(f"conformance: --strict {name}: not run ({reason})", file=sys.stderr)
            continue
        bad = [c for c in report.cells if c.target == name and c.verdict in V.STRICT_FAILURES]
        if bad:
            status = 1
            listed = ", ".join(f"{c.scenario} ({c.verdict})" for c in bad)
            print(f"conformance: --strict {name}: {len(bad)} failures: {listed}", file=sys.stderr)
    faults = [c for c in report.cells if c.verdict == V.ERROR]
    if faults:
        print(
            f"conformance: {len(faults)} cells hit a fault of the harness itself (not of the target):",
            file=sys.stderr,
        )
        for c in faults[:20]:
            print(f"  {c.target} / {c.scenario}: {c.error}", file=sys.stderr)
        if status == 0:
            status = 3
    return status


def explain(args: argparse.Namespace) -> int:
    scenario = scenario_files.find(args.explain)
    if scenario is None or scenario.meta:
        print(f"conformance: no scenario {args.explain!r} (see --list)", file=sys.stderr)
        return 2
    names = list(args.target) or ([] if args.target_command else ["refserver"])
    if len(names) + len(args.target_command) != 1:
        print("conformance: --explain needs exactly one --target (or --target-command)", file=sys.stderr)
        return 2
    try:
        targets = resolve_targets(names, args.target_command, args.python, args.in_process, args.target_option)
    except ValueError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    target = targets[0]
    if not target.info.installed:
        print(f"conformance: {target.name}: not installed ({target.info.reason})", file=sys.stderr)
        return 2
    runs = [target]
    if target.name != "refserver":
        runs.append(resolve_targets(["refserver"], [], args.python, args.in_process)[0])
    report = anyio.run(lambda: run_report(runs, [scenario], jobs=2), backend="asyncio")
    mine = report.cell(target.name, scenario.id)
    ref = report.cell("refserver", scenario.id)
    if mine is None:
        raise RuntimeError(f"no result for {scenario.id} on {target.name}")
    text = render_explain(scenario, mine, ref if ref is not mine else None)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
