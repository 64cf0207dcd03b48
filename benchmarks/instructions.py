"""What one HTTP keep-alive request costs a server in machine instructions, with no kernel.

    python benchmarks/instructions.py                  # CPU µs per request, refserver and uvicorn
    python benchmarks/instructions.py --valgrind       # machine instructions per request (valgrind)

One connection, one GET at a time (the ``http1`` workload of ``run.py``), served by the server's
own asyncio protocol over a transport that only pretends to be a socket: the next request is
handed to the server, in a later pass of the event loop, when the last byte of the response is
written. Everything the server does for a request runs (parsing, the app, the event loop's
callbacks), nothing of the kernel's does, and no client shares the CPU.

Per-CPU timings on a shared machine move by 10-25 % from run to run. Machine instructions counted
by valgrind (``--tool=cachegrind --cache-sim=no``) do not: two runs agree within 0.2 %, which makes
them the figure to compare changes by. They are counted in two runs of different lengths, so that
start-up and imports cancel out: (instructions at N requests - at N/4) / (3N/4). They leave out
what instructions do not show (cache misses, the kernel's share), so a change still has to show in
``run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.echo_app import HTTP_BODY, app

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: refserver-bench\r\n\r\n"
SERVERS = ("refserver", "uvicorn")


class PretendSocket(asyncio.Transport):
    """An asyncio transport that answers each complete response with the next request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, requests: int, done: asyncio.Future[None]) -> None:
        super().__init__()
        self.loop, self.requests, self.done = loop, requests, done
        self.answered = 0
        self.protocol: asyncio.Protocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not bytes(data).endswith(HTTP_BODY):
            return  # a response head written on its own (uvicorn)
        self.answered += 1
        if self.answered >= self.requests:
            if not self.done.done():
                self.done.set_result(None)
        elif self.protocol is not None:
            self.loop.call_soon(self.protocol.data_received, REQUEST)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def _connect(protocol: asyncio.Protocol, requests: int) -> tuple[PretendSocket, asyncio.Future[None]]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    transport = PretendSocket(loop, requests, done)
    transport.protocol = protocol
    protocol.connection_made(transport)
    return transport, done


async def refserver_requests(requests: int, connections: int) -> float:
    """CPU seconds refserver (asyncio) takes for ``requests`` requests on each of
    ``connections`` connections."""
    from refserver.config import Config
    from refserver.runtime.context import ServerContext
    from refserver.runtime.http import HTTPConnection
    from refserver.runtime.transport import AsyncioTransport

    ctx = ServerContext(app, Config(access_log=False))
    protocols, waits, tasks = [], [], []
    for _ in range(connections):
        protocol = AsyncioTransport(asyncio.get_running_loop())
        _, done = await _connect(protocol, requests)
        tasks.append(asyncio.create_task(HTTPConnection(protocol, ctx).run()))
        protocols.append(protocol)
        waits.append(done)
    await asyncio.sleep(0)  # the connections' tasks wait for their first request
    started = time.process_time()
    for protocol in protocols:
        protocol.data_received(REQUEST)
    await asyncio.gather(*waits)
    elapsed = time.process_time() - started
    for task in tasks:
        task.cancel()
    return elapsed


async def uvicorn_requests(requests: int, connections: int) -> float:
    """The same for uvicorn's h11 protocol (``--http h11``, as ``run.py``'s baseline)."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.server import ServerState

    config = uvicorn.Config(app, http="h11", ws="wsproto", lifespan="off", access_log=False, log_level="warning")
    config.load()
    state = ServerState()
    protocols, waits = [], []
    for _ in range(connections):
        protocol = H11Protocol(config, state, {}, asyncio.get_running_loop())
        _, done = await _connect(protocol, requests)
        protocols.append(protocol)
        waits.append(done)
    started = time.process_time()
    for protocol in protocols:
        protocol.data_received(REQUEST)
    await asyncio.gather(*waits)
    return time.process_time() - started


def run_requests(server: str, requests: int, connections: int = 1) -> float:
    """CPU seconds for ``requests`` on each of ``connections`` connections."""
    serve = refserver_requests if server == "refserver" else uvicorn_requests
    return asyncio.run(serve(requests, connections))


def installed(server: str) -> bool:
    if server == "refserver":
        return True
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


def _instructions(server: str, requests: int, connections: int) -> int:
    """Machine instructions of a whole process serving ``requests`` requests (valgrind)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    argv += [sys.executable, str(Path(__file__).resolve()), "--one", server, "--requests", str(requests)]
    argv += ["--connections", str(connections)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
    found = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if found is None:
        raise RuntimeError(f"valgrind printed no instruction count:\n{out[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--valgrind", action="store_true", help="count machine instructions (needs valgrind)")
    parser.add_argument("--requests", type=int, default=0, help="per run (default 20,000; 4,000 with --valgrind)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per server (default 3)")
    parser.add_argument("--connections", type=int, default=1, help="each with one GET at a time (default 1)")
    parser.add_argument("--one", choices=SERVERS, help=argparse.SUPPRESS)  # one untimed run, for valgrind
    args = parser.parse_args(argv)
    if args.one:
        run_requests(args.one, args.requests, args.connections)
        return
    servers = [server for server in SERVERS if installed(server)]
    if args.valgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind is not installed")
        requests = args.requests or 4000
        for server in servers:
            whole = _instructions(server, requests, args.connections)
            quarter = _instructions(server, requests // 4, args.connections)
            per_request = (whole - quarter) / (requests - requests // 4) / args.connections
            print(f"{server:10s} {per_request:10,.0f} instructions per request")
        return
    requests = args.requests or 20000 // args.connections
    for _ in range(args.repeat):
        for server in servers:  # interleaved
            cpu_s = run_requests(server, requests, args.connections)
            print(f"{server:10s} {cpu_s / requests / args.connections * 1e6:7.1f} µs of CPU per request")


if __name__ == "__main__":
    main()
