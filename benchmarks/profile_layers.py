"""Where the time goes: own CPU time per layer, and event-loop callbacks per message.

    python benchmarks/profile_layers.py                       # refserver (asyncio), 50-connection echo
    python benchmarks/profile_layers.py --server uvicorn-wsproto
    python benchmarks/profile_layers.py --server refserver --workload pingpong --seconds 5
    python benchmarks/profile_layers.py --py-spy              # sampling instead of cProfile
    python benchmarks/profile_layers.py --workload http16     # the HTTP keep-alive path
    python benchmarks/profile_layers.py --memory 1000         # what 1,000 idle connections hold

A "message" is one round trip: a WebSocket message and its echo, or an HTTP request and its answer.

The server runs in a harness process (pinned to the server core) that serves
``benchmarks.echo_app:app`` in-process. The client (pinned to the other core) warms the
connections up, then sends SIGUSR1 to start the window and SIGUSR2 to end it. Within the window
the harness counts:

- event-loop callbacks run (asyncio ``Handle._run``; every task step is one) and loop iterations
  (``BaseEventLoop._run_once``, about one ``epoll_wait`` each), asyncio only;
- with cProfile, every function's own time. Own time is grouped by the module path of the
  function: asyncio, anyio, trio, wsproto, h11, refserver, uvicorn, the app, "socket" (the
  ``send``/``recv`` system calls), "epoll" (``epoll.poll``: the wait for readiness, idle time
  included), other. A C function called from Python (``bytes.join``, ``isinstance``...) is
  charged to the layer of its caller, shared out by the caller's own count of calls to it.

cProfile adds a fixed cost to every Python call, so layers that make many small calls (anyio,
asyncio) look heavier than they are; the per-message call counts are exact, though, and are
what a change should move. ``--py-spy`` samples the same window with py-spy (no per-call cost)
and groups the innermost Python frame of each sample the same way; it cannot tell socket time
from the asyncio code that called it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import clients, servers
from benchmarks.clients import LARGE, SMALL, Timing

HARNESS_SERVERS = ("refserver", "refserver-trio", "uvicorn-wsproto", "uvicorn", "hypercorn")


# --- the harness (server side) ----------------------------------------------------------------


class _Counters:
    def __init__(self) -> None:
        self.on = False
        self.callbacks = 0
        self.iterations = 0


def _install_counters(counters: _Counters) -> None:
    import asyncio.base_events
    import asyncio.events

    run = asyncio.events.Handle._run
    run_once = getattr(asyncio.base_events.BaseEventLoop, "_run_once")  # noqa: B009 - private, untyped

    def counted_run(self: asyncio.events.Handle) -> None:
        if counters.on:
            counters.callbacks += 1
        run(self)

    def counted_run_once(self: asyncio.base_events.BaseEventLoop) -> None:
        if counters.on:
            counters.iterations += 1
        run_once(self)

    asyncio.events.Handle._run = counted_run  # type: ignore[method-assign]
    setattr(asyncio.base_events.BaseEventLoop, "_run_once", counted_run_once)  # noqa: B010


def harness(server: str, port: int, out: str, mode: str) -> None:
    """Serve the echo app in this process; SIGUSR1 opens the window, SIGUSR2 closes it and writes
    ``out`` (JSON counters) and, by ``mode``, ``out + '.prof'`` (cProfile stats) or the Python
    allocations still alive that were made in the window (tracemalloc)."""
    import cProfile
    import tracemalloc

    from benchmarks.echo_app import app

    counters = _Counters()
    _install_counters(counters)
    profiler = cProfile.Profile() if mode == "cprofile" else None
    started = [0.0, 0.0]

    def window_start(signum: int, frame: object) -> None:
        started[0], started[1] = time.process_time(), time.perf_counter()
        counters.on = True
        if profiler is not None:
            profiler.enable()
        if mode == "memory":
            tracemalloc.start()
        Path(out + ".started").touch()

    def window_end(signum: int, frame: object) -> None:
        if profiler is not None:
            profiler.disable()
        counters.on = False
        cpu, wall = time.process_time() - started[0], time.perf_counter() - started[1]
        if profiler is not None:
            profiler.dump_stats(out + ".prof")
        data: dict[str, Any] = {
            "callbacks": counters.callbacks,
            "iterations": counters.iterations,
            "cpu_s": cpu,
            "wall_s": wall,
        }
        if mode == "memory":
            snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()
            data["allocations"] = [
                (stat.traceback[0].filename, stat.traceback[0].lineno, stat.size, stat.count)
                for stat in snapshot.statistics("lineno")
            ]
        Path(out + ".tmp").write_text(json.dumps(data))
        os.rename(out + ".tmp", out)

    signal.signal(signal.SIGUSR1, window_start)
    signal.signal(signal.SIGUSR2, window_end)
    host = servers.HOST
    if server.startswith("refserver"):
        import anyio

        import refserver

        config = refserver.Config(host=host, port=port, access_log=False, log_level="warning", lifespan="on")
        backend = "trio" if server == "refserver-trio" else "asyncio"
        anyio.run(lambda: refserver.serve(app, config), backend=backend)
    elif server.startswith("uvicorn"):
        import uvicorn

        ws = "wsproto" if server == "uvicorn-wsproto" else "auto"
        uv_config = uvicorn.Config(
            app, host=host, port=port, ws=ws, http="h11", loop="asyncio", lifespan="on", log_level="warning"
        )
        uv_config.access_log = False
        asyncio.run(uvicorn.Server(uv_config).serve())
    elif server == "hypercorn":
        import hypercorn.asyncio
        import hypercorn.config

        hc_config = hypercorn.config.Config()
        hc_config.bind = [f"{host}:{port}"]
        asyncio.run(hypercorn.asyncio.serve(app, hc_config))  # type: ignore[arg-type]
    else:
        raise SystemExit(f"unknown server {server}")


# --- the analysis -----------------------------------------------------------------------------

_PACKAGES = {  # installed package -> layer
    "anyio": "anyio",
    "sniffio": "anyio",
    "trio": "trio",
    "outcome": "trio",
    "wsproto": "wsproto",
    "h11": "h11",
    "websockets": "websockets",
    "uvicorn": "uvicorn",
    "hypercorn": "hypercorn",
    "refserver": "refserver",
}
_STDLIB = re.compile(r"/lib/python3\.\d+/")
_NOT_BUSY = ("epoll", "harness")  # the wait for readiness; the profiling harness's own counters


def _layer_of_path(path: str) -> str:
    if "site-packages/" in path:
        package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        return _PACKAGES.get(package, "other")
    if path.startswith(str(servers.REPO / "refserver")):
        return "refserver"  # an editable install
    if path.endswith("echo_app.py"):
        return "app"
    if path.endswith("profile_layers.py"):
        return "harness"
    stdlib = _STDLIB.search(path)
    if stdlib is not None and path[stdlib.end() :].startswith(("asyncio/", "selectors.py")):
        return "asyncio"  # the loop, and the selector wrapper it drives
    return "other"


def _layer_of_short_path(path: str) -> str:
    """py-spy names a file by its path below ``sys.path``: ``asyncio/events.py``, ``wsproto/...``."""
    if path.endswith("echo_app.py"):
        return "app"
    if path.endswith("profile_layers.py"):
        return "harness"
    head = path.split("/", 1)[0]
    if head in _PACKAGES:
        return _PACKAGES[head]
    if head in ("asyncio", "selectors.py"):
        return "asyncio"
    return "other"


_SOCKET_CALLS = ("'_socket.socket' objects", "<built-in method _socket.", "'socket' objects")


def _is_builtin(func: tuple[str, int, str]) -> bool:
    return func[0] == "~"


def _builtin_layer(name: str) -> str | None:
    if "select.epoll" in name:
        # poll is the wait for readiness (idle time included); register/unregister (epoll_ctl)
        # are system calls made for each wait on one socket, counted with the socket's.
        return "epoll" if "'poll'" in name else "socket"
    if any(s in name for s in _SOCKET_CALLS) and any(
        op in name for op in ("send", "recv", "accept", "shutdown", "close")
    ):
        return "socket"
    return None


def _caller_layer(func: tuple[str, int, str]) -> str:
    return _layer_of_path(func[0]) if not _is_builtin(func) else "other"


def analyse(prof_path: str, messages: int) -> dict[str, Any]:
    stats: Any = getattr(pstats.Stats(prof_path), "stats")  # noqa: B009 - {func: (cc, nc, tt, ct, callers)}
    own: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    syscalls: dict[str, int] = defaultdict(int)
    for func, (_cc, nc, tt, _ct, callers) in stats.items():
        if _is_builtin(func):
            fixed = _builtin_layer(func[2])
            if fixed is not None:
                own[fixed] += tt
                syscalls[_short_builtin(func[2])] += nc
                continue
            total_calls = sum(c[1] for c in callers.values()) or 1
            for caller, (_c_cc, c_nc, _c_tt, _c_ct) in callers.items():
                own[_caller_layer(caller)] += tt * c_nc / total_calls
            if not callers:
                own["other"] += tt
        else:
            layer = _layer_of_path(func[0])
            own[layer] += tt
            calls[layer] += nc
    busy = sum(v for k, v in own.items() if k not in _NOT_BUSY)
    top = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[: int(os.environ.get("TOP_N", "15"))]
    return {
        "own": dict(own),
        "calls": dict(calls),
        "busy_s": busy,
        "syscalls": dict(syscalls),
        "top": [(_func_name(f), v[1], v[2]) for f, v in top],
        "messages": messages,
    }


def _short_builtin(name: str) -> str:
    """``<method 'send' of '_socket.socket' objects>`` -> ``socket.send``."""
    found = re.fullmatch(r"<method '(\w+)' of '_?([\w.]+)' objects>", name)
    return f"{found.group(2)}.{found.group(1)}" if found else name


def _func_name(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name
    stdlib = _STDLIB.search(path)
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif stdlib is not None:
        path = path[stdlib.end() :]
    elif path.startswith(str(servers.REPO)):
        path = path[len(str(servers.REPO)) + 1 :]
    return f"{path}:{line}({name})"


def _pyspy_layers(raw_path: str) -> dict[str, int]:
    """Samples per layer of the innermost frame, from py-spy's raw (collapsed stack) output."""
    samples: dict[str, int] = defaultdict(int)
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.split(";")[-1]
        # a frame reads "function (path/to/file.py:line)"
        path = leaf[leaf.rfind("(") + 1 :].split(":", 1)[0] if "(" in leaf else leaf
        samples[_layer_of_short_path(path)] += int(count)
    return dict(samples)


# --- the driver (client side) -----------------------------------------------------------------


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    return found


class _Harness:
    """The harness process, seen by the client code as a Server."""

    def __init__(self, server: str, mode: str, pin: set[int]) -> None:
        self.port = servers.free_port()
        self.dir = tempfile.mkdtemp(prefix="refserver-profile-")
        self.out = os.path.join(self.dir, "window.json")
        argv = [sys.executable, "-m", "benchmarks.profile_layers", "--harness", server, "--port", str(self.port)]
        argv += ["--out", self.out, "--mode", mode]

        def preexec() -> None:
            os.sched_setaffinity(0, pin)

        self.proc = subprocess.Popen(argv, cwd=servers.REPO, start_new_session=True, preexec_fn=preexec)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + servers.START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"harness exited with {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((servers.HOST, self.port), timeout=2.0) as sock,
            ):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                if sock.recv(4096).startswith(b"HTTP/1.1 200"):
                    return
            time.sleep(0.05)
        raise RuntimeError("harness not ready")

    def cpu_seconds(self) -> float:
        return servers.cpu_seconds(self.proc.pid)

    def sleeps(self) -> int:
        return servers.sleeps(self.proc.pid)

    def rss_bytes(self) -> int:
        return servers.rss_bytes(self.proc.pid)

    def window(self, opening: bool) -> None:
        self.proc.send_signal(signal.SIGUSR1 if opening else signal.SIGUSR2)

    async def window_opened(self) -> None:
        """Until the harness has run its window-start handler (bounded)."""
        deadline = time.monotonic() + 10.0
        while not os.path.exists(self.out + ".started"):
            if time.monotonic() > deadline:
                raise RuntimeError("the harness did not open the window")
            await asyncio.sleep(0.01)

    def result(self) -> dict[str, float]:
        deadline = time.monotonic() + 60.0
        while not os.path.exists(self.out):
            if time.monotonic() > deadline:
                raise RuntimeError("the harness wrote no result")
            time.sleep(0.05)
        data: dict[str, float] = json.loads(Path(self.out).read_text())
        return data

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(servers.STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(servers.STOP_TIMEOUT_S)


def _client(harness: _Harness, workload: str, timing: Timing, hook: Callable[[bool], None]) -> clients.Window:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        if workload.startswith("http"):
            return runner.run(clients.http_get(harness, timing, int(workload[4:]), on_window=hook))
        if workload == "churn":
            return runner.run(clients.churn(harness, timing, 8, on_window=hook))
        connections, size = {"pingpong": (1, SMALL), "echo50": (50, SMALL), "echo1m": (1, LARGE)}[workload]
        return runner.run(clients.echo(harness, timing, connections, size, on_window=hook))


def _print_report(
    server: str, workload: str, window: clients.Window, counted: dict[str, float], cprofile: bool
) -> None:
    messages = window.count
    print(f"server {server}, workload {workload}: {messages} messages in {window.wall_s:.2f} s")
    cost = "cProfile's cost included" if cprofile else "no in-process profiler"
    print(
        f"  harness CPU {counted['cpu_s']:.2f} s in a {counted['wall_s']:.2f} s window"
        f" ({counted['cpu_s'] / max(messages, 1) * 1e6:.1f} us of CPU per message, {cost})"
    )
    if not server.endswith("trio"):
        print(
            f"  event-loop callbacks per message: {counted['callbacks'] / max(messages, 1):.2f}; "
            f"loop iterations per message: {counted['iterations'] / max(messages, 1):.2f}"
        )


async def _open_idle(h: _Harness, connections: int) -> None:
    meter = clients.Meter(keep_latencies=False)
    payload = os.urandom(SMALL)
    for _ in range(3):  # as in run.py: lazily loaded modules are not counted per connection
        warm = [await clients.open_echo(h.port, meter, payload) for _ in range(10)]
        await asyncio.gather(*(c.echo_once() for c in warm))
        await asyncio.gather(*(c.close() for c in warm))
    h.window(True)
    await asyncio.wait_for(h.window_opened(), 10.0)
    channels: list[Any] = []
    while len(channels) < connections:
        step = min(50, connections - len(channels))
        channels += await asyncio.wait_for(
            asyncio.gather(*(clients.open_echo(h.port, meter, payload) for _ in range(step))), 30.0
        )
    await asyncio.wait_for(channels[-1].echo_once(), 30.0)
    h.window(False)
    await asyncio.to_thread(h.result)
    await asyncio.wait_for(asyncio.gather(*(c.close() for c in channels)), 60.0)


def _memory_main(server: str, connections: int, pin: set[int]) -> int:
    h = _Harness(server, mode="memory", pin=pin)
    try:
        h.wait_ready()
        asyncio.run(_open_idle(h, connections))
        result: dict[str, Any] = json.loads(Path(h.out).read_text())
    finally:
        h.stop()
        shutil.rmtree(h.dir, ignore_errors=True)
    layers: dict[str, int] = defaultdict(int)
    for path, _line, size, _count in result["allocations"]:
        layers[_layer_of_path(path)] += size
    total = sum(layers.values())
    print(
        f"server {server}: {connections} idle WebSocket connections hold {total / connections / 1024:.1f} KiB"
        " of Python allocations each (tracemalloc; RSS also counts the allocator's and the kernel's share)"
    )
    for layer in sorted(layers, key=lambda k: -layers[k]):
        if layers[layer] >= connections:  # at least 1 B per connection
            print(f"    {layer:11} {layers[layer] / connections:8.0f} B/conn")
    print("  top lines:")
    for path, line, size, count in result["allocations"][:20]:
        name = _func_name((path, line, ""))[:-2]
        print(f"    {size / connections:7.0f} B/conn {count / connections:5.1f} blocks/conn  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/profile_layers.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="refserver", choices=HARNESS_SERVERS)
    p.add_argument("--workload", default="echo50", choices=("pingpong", "echo50", "echo1m", "churn", "http1", "http16"))
    p.add_argument("--seconds", type=float, default=3.0, help="length of the profiled window")
    p.add_argument("--py-spy", action="store_true", help="sample with py-spy instead of cProfile")
    p.add_argument(
        "--memory",
        type=int,
        metavar="N",
        help="instead: open N idle WebSocket connections and show the Python memory they hold, by layer and line",
    )
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--harness", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="cprofile", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.harness:
        harness(args.harness, args.port, args.out, args.mode)
        return 0

    server_cores, client_cores = servers.cores()
    if server_cores != client_cores:
        os.sched_setaffinity(0, client_cores)
    if args.memory:
        return _memory_main(args.server, args.memory, server_cores)
    h = _Harness(args.server, mode="none" if args.py_spy else "cprofile", pin=server_cores)
    spy: subprocess.Popen[bytes] | None = None
    raw_path = os.path.join(h.dir, "pyspy.txt")

    def hook(opening: bool) -> None:
        nonlocal spy
        h.window(opening)
        if args.py_spy and opening:
            spy = subprocess.Popen(
                [
                    *(_py_spy(), "record", "--pid", str(h.proc.pid), "--format", "raw", "--output", raw_path),
                    *("--rate", "500", "--duration", str(int(args.seconds + 1)), "--nonblocking"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    try:
        h.wait_ready()
        window = _client(h, args.workload, Timing(warmup_s=1.0, window_s=args.seconds), hook)
        counted = h.result()
        if spy is not None:
            spy.wait(30)
    finally:
        h.stop()
    _print_report(args.server, args.workload, window, counted, not args.py_spy)
    messages = max(window.count, 1)
    figures: dict[str, Any] = {"server": args.server, "workload": args.workload, "messages": window.count, **counted}
    if args.py_spy:
        samples = _pyspy_layers(raw_path) if os.path.exists(raw_path) else {}
        total = sum(samples.values()) or 1
        print(f"  py-spy samples by the innermost Python frame ({total} in all; C calls count for their caller):")
        for layer in sorted(samples, key=lambda k: -samples[k]):
            print(f"    {layer:11} {samples[layer] / total:6.1%}")
        figures["pyspy_samples"] = samples
    else:
        result = analyse(h.out + ".prof", window.count)
        own, calls, busy = result["own"], result["calls"], result["busy_s"]
        print(f"  own time by layer (cProfile; {busy:.2f} s busy, epoll wait and harness excluded from the %):")
        print(f"    {'layer':11} {'% busy':>7} {'us/msg':>8} {'Python calls/msg':>18}")
        for layer in sorted(own, key=lambda k: -own[k]):
            if own[layer] == 0 and calls.get(layer, 0) == 0:
                continue
            share = "" if layer in _NOT_BUSY else f"{own[layer] / busy:7.1%}"
            print(
                f"    {layer:11} {share:>7} {own[layer] / messages * 1e6:8.1f} {calls.get(layer, 0) / messages:18.1f}"
            )
        print(
            "  system calls per message: " + ", ".join(f"{k} {v / messages:.2f}" for k, v in result["syscalls"].items())
        )
        print("  top functions by own time:")
        for name, ncalls, tt in result["top"]:
            print(f"    {tt / messages * 1e6:7.2f} us/msg {ncalls / messages:6.2f} calls/msg  {name}")
        figures.update(result)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    shutil.rmtree(h.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
