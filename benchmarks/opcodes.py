"""How many bytecodes one HTTP keep-alive request, one 32 B WebSocket echo or one WebSocket
connection runs in a server, by layer and by function.

    python benchmarks/opcodes.py                       # refserver and uvicorn, per HTTP request
    python benchmarks/opcodes.py --workload ws --top 30

The workloads are ``instructions.py``'s (the server's own asyncio protocol over a pretend socket);
a ``sys.settrace`` tracer counts every bytecode the interpreter runs in the measured requests,
after a warm-up. Machine instructions (``instructions.py --valgrind``) count C work as well, at
its own pace; the bytecodes are the interpreter loop's share, which the two servers spend
differently (benchmarks/README.md, "HTTP on one connection: level instructions in the
interpreter loop"). The counts repeat from run to run within a few bytecodes per request (the
event loop's passes vary a little); the tracer makes the run slow, so it says nothing about time.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.instructions import SERVERS, WORKLOADS, installed, run_requests

# A function's layer: the first of these its file's path contains (else the file's name).
_LAYERS = ("refserver", "uvicorn", "h11", "wsproto", "asyncio", "anyio", "benchmarks")


def count(server: str, requests: int, workload: str) -> Counter[tuple[str, str]]:
    """Count the bytecodes of ``requests`` requests (echoes, connections), by (file, function)."""
    counts: Counter[tuple[str, str]] = Counter()

    def on_opcode(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            code = frame.f_code
            counts[code.co_filename, code.co_name] += 1
        return on_opcode

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return on_opcode

    run_requests(server, max(requests // 10, 50), 1, workload)  # warm-up: imports, caches
    sys.settrace(on_call)
    try:
        run_requests(server, requests, 1, workload)
    finally:
        sys.settrace(None)
    return counts


def layer_of(path: str) -> str:
    """Name the layer of a source file."""
    parts = Path(path).parts
    return next((layer for layer in _LAYERS if layer in parts), Path(path).name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=WORKLOADS, default="http", help="http, ws or churn")
    parser.add_argument("--requests", type=int, default=1000, help="measured requests (default 1,000)")
    parser.add_argument("--top", type=int, default=15, help="functions listed per server (default 15)")
    args = parser.parse_args(argv)
    unit = {"ws": "echo", "churn": "connection"}.get(args.workload, "request")
    for server in (s for s in SERVERS if installed(s)):
        counts = count(server, args.requests, args.workload)
        per = args.requests
        print(f"{server}: {sum(counts.values()) / per:,.0f} bytecodes per {unit}")
        layers: Counter[str] = Counter()
        for (path, _), n in counts.items():
            layers[layer_of(path)] += n
        for layer, n in layers.most_common(6):
            print(f"  {layer:<24} {n / per:9,.1f}")
        for (path, name), n in counts.most_common(args.top):
            print(f"  {n / per:9,.1f}  {layer_of(path)}: {Path(path).name}:{name}")


if __name__ == "__main__":
    main()
