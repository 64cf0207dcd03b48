"""The soak: N concurrent WebSocket clients send sequence-numbered messages that the echo app
(reliability.apps.echo) returns; a random tenth of them reset (RST) at random moments, sometimes
with messages in flight, and reconnect; new connections keep arriving throughout. Checked:

- every message on a connection that stayed open comes back exactly once and in order, and
  nothing comes after the close;
- every reset connection gives the app exactly one ``websocket.disconnect``, code 1006, and every
  connection closed by its client gives exactly one, code 1000; a later ``receive()`` repeats it;
- how long handshakes take (p50/p90/p99/max), and how many did not complete;
- (on demand, against a ``python -m refserver`` subprocess) nothing at ERROR level on its stderr,
  its descriptors before and after, and its memory at the start and after each round: resident,
  resident after ``malloc_trim``, traced, objects by type, pymalloc's arenas, glibc's figures (the
  echo app's ``GET /memory``); :func:`leak_check` judges the bytes in use.

On demand::

    python -m reliability.soak --clients 1000 --duration 60 [--rounds 3] [--backend asyncio|trio]
        [--tracemalloc] [--pythonmalloc malloc]

The test suite runs :func:`run_soak` in-process with a few dozen clients for a few seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from refserver.rawclient import WSClient, connect, read_until_eof, request_bytes

REPO = Path(__file__).resolve().parent.parent


@dataclass
class SoakOptions:
    clients: int = 40
    duration_s: float = 3.0
    reset_fraction: float = 0.1
    messages_per_s: float = 2.0  # per client
    arrivals_per_s: float = 10.0  # new short-lived connections, on top of the clients
    handshake_timeout_s: float = 30.0
    seed: int = 0


@dataclass
class SoakResult:
    handshake_s: list[float] = field(default_factory=list)
    later_handshake_s: list[float] = field(default_factory=list)  # after the initial ramp: reconnects, arrivals
    handshake_failures: list[str] = field(default_factory=list)
    sent: int = 0
    echoed: int = 0
    lost_in_resets: int = 0  # sent on a connection that was then reset, never echoed (allowed)
    problems: list[str] = field(default_factory=list)  # any of these is a failure
    reset_ids: list[str] = field(default_factory=list)
    closed_ids: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def percentile(self, p: float, later: bool = False) -> float:
        values = self.later_handshake_s if later else self.handshake_s
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def check_app(self, stats: dict[str, Any]) -> None:
        """Compare the app's record with what the clients did; add any mismatch to problems."""
        codes: dict[str, list[int]] = stats["codes"]
        for cid in self.reset_ids:
            if codes.get(cid) != [1006]:
                self.problems.append(f"{cid}: reset, app saw disconnect codes {codes.get(cid)}")
        for cid in self.closed_ids:
            if codes.get(cid) != [1000]:
                self.problems.append(f"{cid}: closed 1000, app saw disconnect codes {codes.get(cid)}")
        for cid, repeated in stats["repeated"].items():
            if not repeated:
                self.problems.append(f"{cid}: receive() after the disconnect did not repeat it")
        if stats["running"] != 0:
            self.problems.append(f"{stats['running']} app(s) still running after every client left")
        self.problems += stats["other_errors"]

    def summary(self) -> dict[str, Any]:
        return {
            "handshakes": len(self.handshake_s),
            "handshake_failures": len(self.handshake_failures),
            "handshake_p50_ms": round(self.percentile(50) * 1000, 1),
            "handshake_p90_ms": round(self.percentile(90) * 1000, 1),
            "handshake_p99_ms": round(self.percentile(99) * 1000, 1),
            "handshake_max_ms": round(max(self.handshake_s, default=0) * 1000, 1),
            "later_handshakes": len(self.later_handshake_s),
            "later_handshake_p50_ms": round(self.percentile(50, later=True) * 1000, 1),
            "later_handshake_p90_ms": round(self.percentile(90, later=True) * 1000, 1),
            "later_handshake_max_ms": round(max(self.later_handshake_s, default=0) * 1000, 1),
            "sent": self.sent,
            "echoed": self.echoed,
            "lost_in_resets": self.lost_in_resets,
            "resets": len(self.reset_ids),
            "closed_normally": len(self.closed_ids),
            "problems": len(self.problems),
            "elapsed_s": round(self.elapsed_s, 1),
        }


class _Run:
    def __init__(self, port: int, options: SoakOptions, prefix: str = "") -> None:
        self.prefix = prefix
        self.port = port
        self.options = options
        self.rng = random.Random(options.seed)
        self.result = SoakResult()
        self.next_id = 0
        self.deadline = 0.0

    def new_id(self, kind: str) -> str:
        self.next_id += 1
        return f"{self.prefix}{kind}{self.next_id}"

    async def open(self, cid: str, initial: bool = False) -> WSClient | None:
        start = time.monotonic()
        try:
            with anyio.fail_after(self.options.handshake_timeout_s):
                client = await WSClient.connect(self.port, f"/ws/{cid}", answer_pings=True)
        except (TimeoutError, OSError, anyio.EndOfStream, anyio.BrokenResourceError, Exception) as exc:
            self.result.handshake_failures.append(f"{cid}: {type(exc).__name__}: {exc}")
            return None
        self.result.handshake_s.append(time.monotonic() - start)
        if not initial:
            self.result.later_handshake_s.append(time.monotonic() - start)
        return client

    async def exchange(self, client: WSClient, cid: str, seq: int, count: int) -> int:
        """Send ``count`` numbered messages at once, then read their echoes in order."""
        texts = [f"{cid}:{seq + i}:" + "x" * self.rng.randrange(0, 200) for i in range(count)]
        for text in texts:
            await client.send_text(text)
        self.result.sent += count
        for text in texts:
            got = await client.receive_message(math.inf)
            if got != text:
                self.result.problems.append(f"{cid}: expected {text[:40]!r}, got {str(got)[:40]!r}")
                raise _Broken
            self.result.echoed += 1
        return seq + count

    async def pause(self) -> None:
        await anyio.sleep(self.rng.expovariate(self.options.messages_per_s))  # load shape, not synchronisation

    async def steady_client(self) -> None:
        """One connection kept for the whole run, closed with 1000 at the end."""
        cid = self.new_id("c")
        client = await self.open(cid, initial=True)
        if client is None:
            return
        seq = 0
        try:
            while time.monotonic() < self.deadline:
                seq = await self.exchange(client, cid, seq, self.rng.randint(1, 3))
                await self.pause()
            extra = await client.close_and_wait(1000)
        except _Broken:
            await client.reset()
            return
        except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            self.result.problems.append(f"{cid}: connection broke: {type(exc).__name__}: {exc}")
            return
        if extra:
            self.result.problems.append(f"{cid}: {len(extra)} message(s) after the close")
        self.result.closed_ids.append(cid)

    async def resetting_client(self) -> None:
        """Connections that end in an RST at a random moment, then reconnect; the last one
        still open at the deadline is closed with 1000. Each resetting client resets at least
        once, however late its first handshake ends (a loaded machine)."""
        initial = True
        has_reset = False
        while not has_reset or time.monotonic() < self.deadline:
            cid = self.new_id("r")
            client = await self.open(cid, initial)
            initial = False
            if client is None:
                return
            reset_at = time.monotonic() + self.rng.uniform(0.05, max(0.1, self.options.duration_s / 3))
            seq = 0
            try:
                while time.monotonic() < min(reset_at, self.deadline):
                    seq = await self.exchange(client, cid, seq, self.rng.randint(1, 3))
                    await self.pause()
                if has_reset and time.monotonic() >= self.deadline:
                    extra = await client.close_and_wait(1000)
                    if extra:
                        self.result.problems.append(f"{cid}: {len(extra)} message(s) after the close")
                    self.result.closed_ids.append(cid)
                    return
                if self.rng.random() < 0.5:  # reset with messages in flight
                    count = self.rng.randint(1, 5)
                    for i in range(count):
                        await client.send_text(f"{cid}:{seq + i}:in flight")
                    self.result.sent += count
                    self.result.lost_in_resets += count
                await client.reset()
            except _Broken:
                await client.reset()
                return
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
                self.result.problems.append(f"{cid}: connection broke: {type(exc).__name__}: {exc}")
                return
            self.result.reset_ids.append(cid)
            has_reset = True

    async def arrival(self) -> None:
        cid = self.new_id("a")
        client = await self.open(cid)
        if client is None:
            return
        try:
            await self.exchange(client, cid, 0, 2)
            extra = await client.close_and_wait(1000)
        except _Broken:
            await client.reset()
            return
        except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            self.result.problems.append(f"{cid}: connection broke: {type(exc).__name__}: {exc}")
            return
        if extra:
            self.result.problems.append(f"{cid}: {len(extra)} message(s) after the close")
        self.result.closed_ids.append(cid)

    async def arrivals(self, tg: anyio.abc.TaskGroup) -> None:
        if self.options.arrivals_per_s <= 0:
            return
        while time.monotonic() < self.deadline:
            tg.start_soon(self.arrival)
            await anyio.sleep(self.rng.expovariate(self.options.arrivals_per_s))

    async def run(self) -> SoakResult:
        start = time.monotonic()
        self.deadline = start + self.options.duration_s
        resetting = round(self.options.clients * self.options.reset_fraction)
        kinds = [True] * resetting + [False] * (self.options.clients - resetting)
        self.rng.shuffle(kinds)
        async with anyio.create_task_group() as tg:
            for resets in kinds:
                tg.start_soon(self.resetting_client if resets else self.steady_client)
            tg.start_soon(self.arrivals, tg)
        self.result.elapsed_s = time.monotonic() - start
        return self.result


class _Broken(Exception):
    """A client saw a wrong echo (already recorded as a problem)."""


async def run_soak(
    port: int,
    options: SoakOptions,
    app_stats: Callable[[], Awaitable[dict[str, Any]]],
    settle_timeout_s: float = 10.0,
    prefix: str = "",
) -> SoakResult:
    """Drive the load against ``port``, then wait (bounded) until the app has finished every
    connection and compare its record with what the clients did."""
    result = await _Run(port, options, prefix).run()
    expected = len(result.reset_ids) + len(result.closed_ids)
    stats = await app_stats()

    def ours() -> int:
        return sum(len(c) for cid, c in stats["codes"].items() if cid.startswith(prefix))

    with anyio.move_on_after(settle_timeout_s):
        while stats["running"] or ours() < expected:
            await anyio.sleep(0.05)  # polling another process's record; bounded above
            stats = await app_stats()
    result.check_app(stats)
    return result


# ---------------------------------------------------------------- on demand, against the CLI


def process_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def process_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) if match else -1


async def http_get(port: int, target: str) -> bytes:
    stream = await connect(port)
    async with stream:
        await stream.send(request_bytes("GET", target, [("Connection", "close")]))
        data = await read_until_eof(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"GET {target}: {head[:80]!r}")
    return body


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(server: str, backend: str) -> tuple[list[str], int | None]:
    """The command line, and the port when it is chosen here (the other server, for comparison)."""
    if server == "refserver":
        command = [sys.executable, "-m", "refserver", "reliability.apps:echo", "--port", "0", "--backend", backend]
        return [*command, "--no-access-log", "--log-level", "info"], None
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "reliability.apps:echo", "--port", str(port), "--ws", "wsproto"]
    return [*command, "--no-access-log", "--log-level", "info", "--lifespan", "on"], port


def memory_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of a ``GET /memory?trim=1`` report (reliability.apps.memory_report) that the
    soak reports, in KiB or counts."""
    pymalloc, before, after = report["pymalloc"], report["mallinfo"], report.get("mallinfo_after_trim", {})
    tracing = report["tracemalloc"]
    return {
        "rss_kib": report["rss_kib"],
        "rss_kib_after_trim": report.get("rss_kib_after_trim"),
        "traced_kib": report["traced_current"] // 1024 if tracing else None,
        "traced_peak_kib": report["traced_peak"] // 1024 if tracing else None,
        "gc_objects": report["gc_objects"],
        "pymalloc_arenas": pymalloc.get("arenas allocated current"),
        "pymalloc_arenas_highwater": pymalloc.get("arenas highwater mark"),
        "pymalloc_used_kib": pymalloc.get("bytes in allocated blocks", 0) // 1024,
        "malloc_used_kib": before.get("uordblks", 0) // 1024,
        "malloc_free_kept_kib": before.get("fordblks", 0) // 1024,
        "malloc_free_kept_kib_after_trim": after.get("fordblks", 0) // 1024,
        "malloc_mmapped_kib": before.get("hblkhd", 0) // 1024,
        "heap_in_use_kib": (
            pymalloc.get("bytes in allocated blocks", 0) + before.get("uordblks", 0) + before.get("hblkhd", 0)
        )
        // 1024,
    }


def grown_types(start: dict[str, int], now: dict[str, int], top: int = 8) -> dict[str, int]:
    """The object types the garbage collector tracks whose count grew most since ``start``."""
    growth = {name: count - start.get(name, 0) for name, count in now.items() if count > start.get(name, 0)}
    return dict(sorted(growth.items(), key=lambda item: -item[1])[:top])


LEAK_ROUND_OVER_ROUND = 0.01  # of the start's figure
LEAK_VS_START = 0.05  # of the start's figure, plus LEAK_PER_CLIENT_KIB per client
LEAK_PER_CLIENT_KIB = 2


def leak_check(memory: list[dict[str, Any]], clients: int) -> list[str]:
    """The soak's memory criterion (docs/reliability.md, "Where the memory goes"). The figure is
    the bytes the process has in use: traced by tracemalloc when it runs, else pymalloc's blocks
    in use plus glibc's bytes in use. Resident memory is not the figure: both allocators keep
    freed memory (pymalloc keeps every 1 MiB arena in which one block is still in use), so it
    stays near its high-water mark without any leak. A leak grows with the work done, so:

    - from the first round to the last (``--rounds 2`` or more) the figure may grow by at most
      ``LEAK_ROUND_OVER_ROUND`` of the start;
    - after any round it may exceed the start by ``LEAK_VS_START`` plus ``LEAK_PER_CLIENT_KIB``
      per client: the hash tables that held the peak's connections (sets of connections and of
      tasks, the selector's map) keep their size, as Python's sets and dicts never shrink.
    """
    figure = "traced_kib" if memory[0]["traced_kib"] is not None else "heap_in_use_kib"
    start = memory[0][figure]
    problems = []
    bound = start * (1 + LEAK_VS_START) + LEAK_PER_CLIENT_KIB * clients
    for number, figures in enumerate(memory[1:], 1):
        if figures[figure] > bound:
            problems.append(f"{figure} after round {number}: {figures[figure]}, start {start}, bound {bound:.0f}")
    if len(memory) > 2 and memory[-1][figure] - memory[1][figure] > start * LEAK_ROUND_OVER_ROUND:
        problems.append(f"{figure} grew from {memory[1][figure]} after round 1 to {memory[-1][figure]}")
    return problems


async def on_demand(
    options: SoakOptions,
    backend: str,
    server: str = "refserver",
    rounds: int = 1,
    trace_memory: bool = False,
    pythonmalloc: str = "",
) -> dict[str, Any]:
    command, chosen_port = server_command(server, backend)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    if trace_memory:
        environment["PYTHONTRACEMALLOC"] = "1"  # the server's tracemalloc, from its start
    if pythonmalloc:
        environment["PYTHONMALLOC"] = pythonmalloc  # "malloc": no pymalloc, every object from glibc
    process = await anyio.open_process(command, cwd=REPO, env=environment)
    assert process.stdout is not None and process.stderr is not None
    stderr = bytearray()

    async def collect(stream: anyio.abc.ByteReceiveStream, into: bytearray) -> None:
        try:
            while True:
                into += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    stdout = bytearray()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect, process.stdout, stdout)
            tg.start_soon(collect, process.stderr, stderr)
            with anyio.fail_after(20):
                while b"listening on" not in stdout and b"Application startup complete" not in stderr:
                    await anyio.sleep(0.05)  # polling the child's output; bounded above
            found = re.search(rb"127\.0\.0\.1:(\d+)", bytes(stdout))
            port = chosen_port or int(found.group(1))  # type: ignore[union-attr]
            await http_get(port, "/")
            # first-use allocations before "start"
            warm = await WSClient.connect(port, "/ws/warm-up", answer_pings=True)
            await warm.send_text("warm-up")
            await warm.receive_message(math.inf)
            await warm.close_and_wait(1000)
            with anyio.fail_after(10):
                while json.loads(await http_get(port, "/stats"))["running"]:
                    await anyio.sleep(0.05)  # polling the child's record; bounded above
            await http_get(port, "/stats/clear")
            fds_before, rss_before = process_fds(process.pid), process_rss_kib(process.pid)
            start_report = json.loads(await http_get(port, "/memory?trim=1"))
            memory = [memory_figures(start_report)]
            grown: list[dict[str, int]] = []
            traced_growth: list[list[str]] = []
            load_before = load_average()
            cpu_before, own_cpu_before = process_cpu_s(process.pid), time.process_time()

            async def stats() -> dict[str, Any]:
                result: dict[str, Any] = json.loads(await http_get(port, "/stats"))
                return result

            rss_after_round = []
            for i in range(rounds):
                result = await run_soak(port, options, stats, settle_timeout_s=30, prefix=f"{i}-")
                rss_after_round.append(process_rss_kib(process.pid))
                await http_get(port, "/stats/clear")  # the app's per-connection record, checked
                report = json.loads(await http_get(port, "/memory?trim=1"))
                memory.append(memory_figures(report))
                grown.append(grown_types(start_report["gc_counts"], report["gc_counts"]))
                traced_growth.append(report["traced_growth"])
                if i < rounds - 1 and (result.problems or result.handshake_failures):
                    break
            load_after = load_average()
            server_cpu_s = process_cpu_s(process.pid) - cpu_before
            driver_cpu_s = time.process_time() - own_cpu_before
            await http_get(port, "/")
            fds_after, rss_after = process_fds(process.pid), process_rss_kib(process.pid)
            process.send_signal(signal.SIGTERM)
            code: int | None = None
            with anyio.move_on_after(30):
                code = await process.wait()  # None: no exit within 30 s of SIGTERM
            tg.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)  # the PID this script started
        await process.aclose()
    errors = [line for line in stderr.decode(errors="replace").splitlines() if line.startswith(("ERROR", "CRITICAL"))]
    return {
        "server": server,
        "backend": backend,
        "rounds": rounds,
        "server_rss_kib_after_each_round": rss_after_round,
        "clients": options.clients,
        "duration_s": options.duration_s,
        **result.summary(),
        "problem_examples": result.problems[:10],
        "failure_examples": result.handshake_failures[:5],
        "error_lines": len(errors),
        "error_examples": errors[:5],
        "server_fds_before": fds_before,
        "server_fds_after": fds_after,
        "server_rss_kib_before": rss_before,
        "server_rss_kib_after": rss_after,
        "memory_at_start_and_after_each_round": memory,
        "object_types_grown_after_each_round": grown,
        "traced_lines_grown_after_each_round": traced_growth,
        "pythonmalloc": pythonmalloc or "default",
        "memory_leak": leak_check(memory, options.clients),
        "server_cpu_s": round(server_cpu_s, 1),
        "driver_cpu_s": round(driver_cpu_s, 1),
        "exit_code": code,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--messages-per-s", type=float, default=2.0, help="per client")
    parser.add_argument("--arrivals-per-s", type=float, default=20.0)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio", help="the server's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="soaks in a row against one server process")
    parser.add_argument(
        "--server", choices=["refserver", "uvicorn"], default="refserver", help="uvicorn --ws wsproto, to compare"
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="start the server with PYTHONTRACEMALLOC=1 (slower, more memory)"
    )
    parser.add_argument(
        "--pythonmalloc", choices=["malloc", "pymalloc"], default="", help="the server's PYTHONMALLOC (default: unset)"
    )
    args = parser.parse_args(argv)
    options = SoakOptions(
        clients=args.clients,
        duration_s=args.duration,
        messages_per_s=args.messages_per_s,
        arrivals_per_s=args.arrivals_per_s,
        seed=args.seed,
    )
    figures = anyio.run(on_demand, options, args.backend, args.server, args.rounds, args.tracemalloc, args.pythonmalloc)
    print(json.dumps(figures, indent=2))
    ok = not figures["problems"] and not figures["handshake_failures"] and not figures["error_lines"]
    ok = ok and not figures["memory_leak"]
    return 0 if ok and figures["exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
