"""Run every benchmark against every installed server, interleaved, and write a markdown report.

    python benchmarks/run.py                      # the full run (under 10 minutes on 2 cores)
    python benchmarks/run.py --quick --targets refserver
    python benchmarks/run.py --targets refserver,uvicorn-wsproto --workloads pingpong,echo50 --repeat 5

Order: for each repetition, for each workload, every target in turn (A B C, A B C, ...), each
time in a fresh server process. Server and client are pinned to different cores when there are
two. Every figure is also divided by the server's CPU time in the window, the figure that holds
on a machine shared with other work; the client's CPU is reported so one can see it is not the
bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import clients, servers
from benchmarks.clients import LARGE, SMALL, Timing, Window
from benchmarks.servers import BASELINE, HTTP, RAW, TARGETS, TARGETS_BY_NAME, WS, ServerProcess, Target, refserver_at

MIB = 1024 * 1024


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    families: tuple[str, ...]  # target families it runs on
    unit: str  # what one count is
    connections: int = 1
    latency: bool = True  # the report gives p50 and p99 of one round trip, request or connection


WORKLOADS: tuple[Workload, ...] = (
    Workload("pingpong", f"Ping-pong: 1 connection, one {SMALL} B binary message at a time", (WS, RAW), "round trips"),
    Workload("echo50", f"Echo, 50 connections, each one {SMALL} B message at a time", (WS, RAW), "messages", 50),
    Workload("echo1m", "1 MiB echo: 1 connection, one 1 MiB binary message at a time", (WS, RAW), "MiB", latency=False),
    Workload("churn", "Churn: open, handshake, 1 echo, close (8 loops at once)", (WS,), "connections", 8),
    Workload("churn16", "Churn: open, handshake, 1 echo, close (16 loops at once)", (WS,), "connections", 16),
    Workload("memory", "Memory per idle WebSocket connection", (WS,), "KiB", latency=False),
    Workload("http1", "HTTP/1.1 keep-alive GET, 1 connection", (HTTP,), "requests", 1),
    Workload("http16", "HTTP/1.1 keep-alive GET, 16 connections", (HTTP,), "requests", 16),
)
WORKLOADS_BY_NAME = {w.name: w for w in WORKLOADS}
_ONE = {"round trips": "round trip", "messages": "message", "connections": "connection", "requests": "request"}


@dataclass
class Sample:
    """One repetition of one workload on one target."""

    rate: float = 0.0  # units per wall second
    per_cpu: float = 0.0  # units per server CPU second
    server_cpu: float = 0.0  # fraction of one core, in the window
    client_cpu: float = 0.0
    p50_us: float | None = None
    p99_us: float | None = None
    sleeps_per_unit: float | None = None  # the server's sleeps (voluntary context switches) per unit
    kib_per_conn: float | None = None
    rss_before_mib: float | None = None
    rep: int = 0  # which repetition: samples of one repetition are compared pairwise


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (workload, target)
    errors: list[str] = field(default_factory=list)
    sansio: list[dict[str, float]] = field(default_factory=list)

    def add(self, workload: str, target: str, sample: Sample) -> None:
        self.samples.setdefault((workload, target), []).append(sample)


@dataclass(frozen=True)
class Settings:
    timing: Timing
    repeat: int
    idle_connections: int
    sansio_seconds: float
    server_cores: set[int]
    client_cores: set[int]


def _percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000.0


def _from_window(window: Window, workload: Workload) -> Sample:
    count = float(window.count)
    if workload.name == "echo1m":
        count = count * window.payload / MIB
    sample = Sample(
        rate=count / window.wall_s,
        per_cpu=count / window.server_cpu_s if window.server_cpu_s > 0 else float("nan"),
        server_cpu=window.server_cpu_s / window.wall_s,
        client_cpu=window.client_cpu_s / window.wall_s,
        sleeps_per_unit=window.server_sleeps / count if count else None,
    )
    if window.latencies_ns:
        sample.p50_us = _percentile(window.latencies_ns, 0.50)
        sample.p99_us = _percentile(window.latencies_ns, 0.99)
    return sample


async def _run_workload(workload: Workload, target: Target, server: ServerProcess, settings: Settings) -> Sample:
    timing = settings.timing
    raw = RAW in target.serves
    name = workload.name
    if name == "pingpong":
        return _from_window(await clients.echo(server, timing, 1, SMALL, raw), workload)
    if name == "echo50":
        return _from_window(await clients.echo(server, timing, 50, SMALL, raw), workload)
    if name == "echo1m":
        return _from_window(await clients.echo(server, timing, 1, LARGE, raw), workload)
    if name.startswith("churn"):
        return _from_window(await clients.churn(server, timing, workload.connections), workload)
    if name in ("http1", "http16"):
        return _from_window(await clients.http_get(server, timing, workload.connections), workload)
    if name == "memory":
        before, after = await clients.idle_memory(server, settings.idle_connections)
        return Sample(kib_per_conn=(after - before) / settings.idle_connections / 1024, rss_before_mib=before / MIB)
    raise ValueError(name)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def client_loop_name() -> str:
    return "uvloop" if _loop_factory() is not asyncio.new_event_loop else "asyncio"


def _run_client(coro: Coroutine[Any, Any, Sample]) -> Sample:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(coro)


def _sansio(settings: Settings) -> dict[str, float]:
    pin = settings.server_cores

    def preexec() -> None:
        os.sched_setaffinity(0, pin)

    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.limits", "sansio", "--seconds", str(settings.sansio_seconds)],
        cwd=servers.REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        preexec_fn=preexec,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run(targets: list[Target], workloads: list[Workload], settings: Settings, log: Callable[[str], None]) -> Results:
    results = Results()
    for rep in range(settings.repeat):
        # Every other repetition runs the targets in the reverse order, so that neither the first
        # nor the last place in a repetition favours one server.
        order = targets if rep % 2 == 0 else targets[::-1]
        for workload in workloads:
            for target in order:
                if not set(workload.families) & set(target.serves):
                    continue
                started = time.monotonic()
                server = ServerProcess(target, settings.server_cores)
                try:
                    server.wait_ready()
                    sample = _run_client(_run_workload(workload, target, server, settings))
                except Exception as error:
                    where = [f for f in traceback.extract_tb(error.__traceback__) if "benchmarks" in f.filename]
                    detail = "".join(traceback.format_exception_only(error)).strip()
                    if where:
                        detail += f" (at {Path(where[-1].filename).name}:{where[-1].lineno}, {where[-1].name})"
                    results.errors.append(f"rep {rep + 1}, {workload.name}, {target.name}: {detail}")
                    log(f"  {workload.name:9} {target.name:16} FAILED: {detail.splitlines()[0]}")
                    continue
                finally:
                    server.stop()
                sample.rep = rep
                results.add(workload.name, target.name, sample)
                log(f"  {workload.name:9} {target.name:16} {_one_line(sample)} ({time.monotonic() - started:.1f} s)")
        if settings.sansio_seconds > 0:
            results.sansio.append(_sansio(settings))
            log(f"  sans-IO limits: {results.sansio[-1]}")
    return results


def _one_line(sample: Sample) -> str:
    if sample.kib_per_conn is not None:
        return f"{sample.kib_per_conn:.1f} KiB/conn"
    text = f"{sample.rate:,.0f}/s, {sample.per_cpu:,.0f}/server-CPU-s, client CPU {sample.client_cpu:.0%}"
    if sample.p50_us is not None:
        text += f", p50 {sample.p50_us:.0f} us"
    if sample.sleeps_per_unit is not None:
        text += f", {sample.sleeps_per_unit:.2f} server sleeps each"
    return text


# --- the report -------------------------------------------------------------------------------


def _spread(values: list[float], digits: int = 0) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "n/a"
    return f"{value / base:.2f}x"


def _paired(samples: list[Sample], base: list[Sample] | None) -> str:
    """Per server CPU-second against the baseline, one ratio per repetition (the two servers ran
    side by side in it): median (min-max), and in how many repetitions the server was ahead.
    Pairing cancels what moves both servers together (load, frequency); a ratio of medians
    does not."""
    if not base or samples is base:
        return "n/a"
    by_rep = {s.rep: s.per_cpu for s in base}
    ratios = [s.per_cpu / by_rep[s.rep] for s in samples if by_rep.get(s.rep)]
    if not ratios:
        return "n/a"
    ahead = sum(r >= 1.0 for r in ratios)
    return f"{_spread(ratios, 2)}x, ahead in {ahead}/{len(ratios)}"


def _median(samples: list[Sample], pick: Callable[[Sample], float | None]) -> float | None:
    values = [v for v in (pick(s) for s in samples) if v is not None]
    return statistics.median(values) if values else None


def _digits(values: list[float]) -> int:
    return 1 if values and max(values) < 100 else 0


def _table(workload: Workload, targets: list[Target], results: Results) -> list[str]:
    rows = [t for t in targets if (workload.name, t.name) in results.samples]
    if not rows:
        return []
    base = results.samples.get((workload.name, BASELINE))
    lines = [f"### {workload.title}", ""]
    if workload.name == "memory":
        lines += [
            "| server | KiB per idle connection | vs baseline | RSS before (MiB) |",
            "|---|---|---|---|",
        ]
        base_kib = _median(base, lambda s: s.kib_per_conn) if base else None
        for t in rows:
            samples = results.samples[(workload.name, t.name)]
            kib = [s.kib_per_conn for s in samples if s.kib_per_conn is not None]
            rss = [s.rss_before_mib for s in samples if s.rss_before_mib is not None]
            lines.append(
                f"| {t.name} | {_spread(kib, 1)} | {_ratio(statistics.median(kib), base_kib)} | {_spread(rss, 1)} |"
            )
        return [*lines, ""]
    unit = workload.unit
    latency = workload.latency
    head = f"| server | {unit}/s | vs baseline | {unit} per server CPU-s | vs baseline | paired |"
    rule = "|---|---|---|---|---|---|"
    if latency:
        head += " p50 µs | p99 µs |"
        rule += "---|---|"
    head += f" server CPU | client CPU | server sleeps per {_ONE.get(unit, unit)} |"
    rule += "---|---|---|"
    lines += [head, rule]
    base_rate = _median(base, lambda s: s.rate) if base else None
    base_cpu = _median(base, lambda s: s.per_cpu) if base else None
    for t in rows:
        samples = results.samples[(workload.name, t.name)]
        rates = [s.rate for s in samples]
        per_cpu = [s.per_cpu for s in samples]
        name = f"*{t.name}*" if RAW in t.serves else t.name
        row = (
            f"| {name} | {_spread(rates, _digits(rates))} | {_ratio(statistics.median(rates), base_rate)} "
            f"| {_spread(per_cpu, _digits(per_cpu))} | {_ratio(statistics.median(per_cpu), base_cpu)} "
            f"| {_paired(samples, base)} |"
        )
        if latency:
            p50 = [s.p50_us for s in samples if s.p50_us is not None]
            p99 = [s.p99_us for s in samples if s.p99_us is not None]
            row += f" {_spread(p50) if p50 else 'n/a'} | {_spread(p99) if p99 else 'n/a'} |"
        server_cpu = statistics.median(s.server_cpu for s in samples)
        client_cpu = statistics.median(s.client_cpu for s in samples)
        sleeps = [s.sleeps_per_unit for s in samples if s.sleeps_per_unit is not None]
        row += f" {server_cpu:.0%} | {client_cpu:.0%} | {_spread(sleeps, 2) if sleeps else 'n/a'} |"
        lines.append(row)
    return [*lines, ""]


def _versions() -> list[str]:
    names = ["h11", "wsproto", "anyio", "trio", "websockets", "picows", "uvloop"]
    found = []
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{name} {importlib.metadata.version(name)}")
    return found


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def report(
    targets: list[Target],
    skipped: list[str],
    workloads: list[Workload],
    settings: Settings,
    results: Results,
    elapsed_s: float,
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t = settings.timing
    lines = [
        "## Results",
        "",
        f"- Date: {now}; the whole run took {elapsed_s / 60:.1f} min.",
        f"- Machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}).",
        f"- Pinning: server on core(s) {sorted(settings.server_cores)}, client on core(s) "
        f"{sorted(settings.client_cores)}.",
        f"- Client: {clients.client_name()} on {client_loop_name()}; raw TCP and HTTP through small asyncio "
        "Protocols on the same loop.",
        f"- {settings.repeat} repetition(s), interleaved, a fresh server process each; {t.warmup_s} s warm-up, "
        f"{t.window_s} s measured window; memory with {settings.idle_connections} idle connections. "
        'Cells: median (min-max); "vs baseline" is the ratio of medians to '
        f'`{BASELINE}`; "paired" is the ratio per server CPU-second within each repetition; '
        "a server sleep is a voluntary context switch (it waited, and the kernel woke it).",
        "- Servers: " + "; ".join(f"{x.name} = {x.description}, {x.version()}" for x in targets) + ".",
        "- Libraries: " + ", ".join(_versions()) + ".",
    ]
    lines += [f"- Skipped: {s}." for s in skipped]
    lines.append("")
    for workload in workloads:
        lines += _table(workload, targets, results)
    if results.sansio:
        lines += [
            "### Limits with no sockets (per CPU second, one core)",
            "",
            "| loop body | per CPU-s |",
            "|---|---|",
            f"| wsproto: parse one masked {SMALL} B frame, build the echo frame | "
            f"{_spread([r['wsproto_small'] for r in results.sansio])} |",
            f"| wsproto: the same with 1 MiB | {_spread([r['wsproto_large'] for r in results.sansio])} |",
            "| h11: parse one GET, build a 14-byte answer, start the next cycle | "
            f"{_spread([r['h11_get'] for r in results.sansio])} |",
            "",
        ]
    if results.errors:
        lines += ["### Failures", ""] + [f"- {e}" for e in results.errors] + [""]
    return "\n".join(lines)


def _raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(hard, max(soft, needed))
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one short repetition each (development, smoke test)")
    p.add_argument(
        "--targets", help="comma-separated; default: every installed one. Known: " + ", ".join(TARGETS_BY_NAME)
    )
    p.add_argument("--workloads", help="comma-separated; default: all. Known: " + ", ".join(WORKLOADS_BY_NAME))
    p.add_argument("--repeat", type=int, help="repetitions (default 3, --quick 1)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each window (default 0.25, --quick 0.1)")
    p.add_argument("--window", type=float, help="seconds measured per repetition (default 1.0, --quick 0.5)")
    p.add_argument("--idle-connections", type=int, help="for the memory workload (default 1000, --quick 200)")
    p.add_argument("--no-limits", action="store_true", help="leave out the sans-IO limits and raw TCP targets")
    p.add_argument("--lean-client", action="store_true", help="use the lean asyncio WebSocket client, not picows")
    p.add_argument("--out", default="benchmarks/report.md", help="markdown report (default benchmarks/report.md)")
    p.add_argument(
        "--refserver-at",
        metavar="DIR",
        help="also run refserver (asyncio) from this checkout, as target refserver-at: before/after in one run",
    )
    args = p.parse_args(argv)

    quick = args.quick
    if args.lean_client:
        clients.use_lean_client()
    if args.targets:
        unknown = [n for n in args.targets.split(",") if n not in TARGETS_BY_NAME]
        if unknown:
            p.error(f"unknown target(s): {', '.join(unknown)}")
        wanted = [TARGETS_BY_NAME[n] for n in args.targets.split(",")]
    else:
        wanted = [t for t in TARGETS if not (args.no_limits and RAW in t.serves)]
    if args.workloads:
        unknown = [n for n in args.workloads.split(",") if n not in WORKLOADS_BY_NAME]
        if unknown:
            p.error(f"unknown workload(s): {', '.join(unknown)}")
        workloads = [WORKLOADS_BY_NAME[n] for n in args.workloads.split(",")]
    else:
        workloads = list(WORKLOADS)
    if args.refserver_at:
        wanted.append(refserver_at(str(Path(args.refserver_at).resolve())))

    targets: list[Target] = []
    skipped: list[str] = []
    for target in wanted:
        missing = target.missing()
        if missing:
            skipped.append(f"{target.name} ({', '.join(missing)} not installed)")
        else:
            targets.append(target)
    server_cores, client_cores = servers.cores()
    settings = Settings(
        timing=Timing(
            warmup_s=args.warmup if args.warmup is not None else (0.1 if quick else 0.25),
            window_s=args.window if args.window is not None else (0.5 if quick else 1.0),
        ),
        repeat=args.repeat if args.repeat is not None else (1 if quick else 3),
        idle_connections=args.idle_connections if args.idle_connections is not None else (200 if quick else 1000),
        sansio_seconds=0.0 if args.no_limits else (0.2 if quick else 0.5),
        server_cores=server_cores,
        client_cores=client_cores,
    )
    _raise_nofile(4 * settings.idle_connections + 256)  # inherited by the servers too
    if server_cores != client_cores:
        os.sched_setaffinity(0, client_cores)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    for line in skipped:
        log(f"skipped: {line}")
    started = time.monotonic()
    results = run(targets, workloads, settings, log)
    text = report(targets, skipped, workloads, settings, results, time.monotonic() - started)
    out = Path(args.out)
    out.write_text(text + "\n")
    log(f"report written to {out}")
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
