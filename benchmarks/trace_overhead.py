"""What the trace costs: a WebSocket echo through the whole runtime, in one process, with
the trace off, and on with a sink that drops every record.

    python benchmarks/trace_overhead.py [--messages 20000] [--repeat 5] [--backend asyncio]

With the trace off the runtime holds no ConnectionTrace; what is left of the trace on the
message path is one ``is not None`` test per receive() and send() and one per state change.
The report shows the per-message time off and on, and the cost of those tests measured
alone, as a share of a message.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from typing import Any

import anyio

from refserver.testing import serve
from refserver.trace import TraceRecord

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
PAYLOAD = b"x" * 16
FRAME = bytes([0x82, 0x80 | len(PAYLOAD)]) + b"\0\0\0\0" + PAYLOAD  # masked with a zero key
ECHO = bytes([0x82, len(PAYLOAD)]) + PAYLOAD


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "bytes": message["bytes"]})


def drop(record: TraceRecord) -> None:
    """A sink that keeps nothing: the cost of building and handing out records."""


async def run_once(messages: int, traced: bool) -> float:
    """Seconds per message for ``messages`` round trips on one connection."""
    options: dict[str, Any] = {"lifespan": "off", "access_log": False, "ws_per_message_deflate": False}
    if traced:
        options["trace_sinks"] = (drop,)
    async with serve(echo_app, **options) as server:
        stream = await anyio.connect_tcp(server.host, server.port)
        async with stream:
            await stream.send(HANDSHAKE)
            head = b""
            while b"\r\n\r\n" not in head:
                head += await stream.receive()
            start = time.perf_counter()
            for _ in range(messages):
                await stream.send(FRAME)
                got = b""
                while len(got) < len(ECHO):
                    got += await stream.receive()
            elapsed = time.perf_counter() - start
            await stream.send(b"\x88\x82\0\0\0\0\x03\xe8")
    return elapsed / messages


def check_cost() -> float:
    """Seconds for the ``trace is not None`` tests one echo makes with the trace off."""
    trace = None
    per_test = min(timeit.repeat("trace is not None", globals={"trace": trace}, number=1_000_000, repeat=5)) / 1e6
    return per_test * 3  # receive(), send(), and the apply of the send's effects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    off: list[float] = []
    on: list[float] = []
    for _ in range(args.repeat):  # interleaved, so drift in the machine's load hits both
        off.append(anyio.run(run_once, args.messages, False, backend=args.backend))
        on.append(anyio.run(run_once, args.messages, True, backend=args.backend))
    off_us, on_us = statistics.median(off) * 1e6, statistics.median(on) * 1e6
    checks_us = check_cost() * 1e6
    print(f"backend {args.backend}, {args.messages} round trips x {args.repeat}, medians:")
    print(f"  trace off: {off_us:7.2f} us per round trip (min {min(off) * 1e6:.2f}, max {max(off) * 1e6:.2f})")
    print(f"  trace on : {on_us:7.2f} us per round trip (records built, dropped by the sink)")
    print(f"  what is left of the trace when off: {checks_us * 1000:.0f} ns per round trip", end="")
    print(f" = {checks_us / off_us * 100:.3f}% of a round trip")


if __name__ == "__main__":
    main()
