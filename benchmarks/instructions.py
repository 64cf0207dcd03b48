"""What one HTTP keep-alive request or one WebSocket echo costs a server in machine
instructions, with no kernel.

    python benchmarks/instructions.py --repeat 12      # CPU µs per request, refserver and uvicorn, paired
    python benchmarks/instructions.py --valgrind       # machine instructions per request (valgrind)
    python benchmarks/instructions.py --valgrind --workload ws   # per 32 B WebSocket echo
    python benchmarks/instructions.py --valgrind --workload churn  # per WebSocket connection

One connection (or ``--connections N``), one GET or one 32 B binary message at a time (the
``http1`` and ``pingpong`` workloads of ``run.py``), served by the server's own asyncio protocol
over a transport that only pretends to be a socket: the next request or message is handed to the
server, in a later pass of the event loop, when the response or the echo is written. ``churn``
(the ``churn`` workload of ``run.py``) makes one connection per iteration instead: the handshake,
one 32 B echo, the client's close frame and the server's echo of it; the next connection starts
when the server closes the transport. Everything
the server does runs (parsing, framing, the app, the event loop's callbacks), nothing of the
kernel's does, and no client shares the CPU.

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
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.echo_app import HTTP_BODY, app
from refserver.rawclient import close_frame, frame, handshake_request, request_bytes

REQUEST = request_bytes("GET", "/", [("User-Agent", "refserver-bench")], host="bench")
HANDSHAKE = handshake_request("/echo", host="bench")
MESSAGE = frame(0x2, bytes(range(32)))  # the client's 32 B binary message
ECHO = b"\x82\x20" + bytes(range(32))  # the server's echo of it, unmasked
CLOSE = close_frame(1000)  # the client's close frame
CLOSE_ECHO = b"\x88\x02\x03\xe8"  # the server's echo of it, unmasked
SERVERS = ("refserver", "uvicorn")
WORKLOADS = ("http", "ws", "churn")


class PretendSocket(asyncio.Transport):
    """An asyncio transport that answers each complete response with the next request, or
    (``websocket``) the handshake's 101 and each echo with the next message."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, requests: int, done: asyncio.Future[None], websocket: bool
    ) -> None:
        super().__init__()
        self.loop, self.requests, self.done, self.websocket = loop, requests, done, websocket
        self.answered = 0
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if self.websocket:
            if data.startswith(b"HTTP/1.1 101"):
                self._next(MESSAGE)  # the first message; the handshake is not counted
                return
            if data != ECHO:
                raise RuntimeError(f"not the echo: {data[:40]!r}")
        elif not data.endswith(HTTP_BODY):
            return  # a response head written on its own (uvicorn)
        self.answered += 1
        if self.answered >= self.requests:
            if not self.done.done():
                self.done.set_result(None)
        else:
            self._next(MESSAGE if self.websocket else REQUEST)

    def _next(self, data: bytes) -> None:
        if isinstance(self.protocol, asyncio.Protocol):
            self.loop.call_soon(self.protocol.data_received, data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol  # uvicorn hands the connection to its WebSocket protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        if self.protocol is None:
            raise RuntimeError("no protocol")
        return self.protocol

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


class ChurnSocket(PretendSocket):
    """One connection of ``churn``: the handshake, one echo, the client's close frame; the
    server's close echo is the connection's answer, and its ``close()`` starts the next one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_closed: Any) -> None:
        super().__init__(loop, 1, loop.create_future(), websocket=True)
        self.on_closed = on_closed
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        if data.startswith(b"HTTP/1.1 101"):
            self._next(MESSAGE)
        elif data == ECHO:
            self._next(CLOSE)
        elif data != CLOSE_ECHO:
            raise RuntimeError(f"not the echo: {data[:40]!r}")

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            protocol = self.protocol
            if protocol is not None:
                self.loop.call_soon(protocol.connection_lost, None)
            self.loop.call_soon(self.on_closed)

    def abort(self) -> None:
        self.close()


async def _churn(new_protocol: Any, connections: int, loops: int, serve: Any = None) -> float:
    """CPU seconds for ``connections`` connections made one after another on each of ``loops``
    loops; ``new_protocol(transport)`` makes the server's protocol for a transport, and
    ``serve(protocol)``, if given, serves it once it is connected."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    left = [connections * loops]

    def open_one() -> None:
        transport = ChurnSocket(loop, closed)
        protocol = new_protocol(transport)
        transport.protocol = protocol
        protocol.connection_made(transport)
        if serve is not None:
            serve(protocol)
        transport._next(HANDSHAKE)  # once the server's connection task waits for it

    def closed() -> None:
        left[0] -= 1
        if left[0] <= 0:
            if not done.done():
                done.set_result(None)
        elif left[0] >= loops:
            open_one()

    started = time.process_time()
    for _ in range(loops):
        open_one()
    await done
    elapsed = time.process_time() - started
    for _ in range(3):  # let the last connections' tasks end
        await asyncio.sleep(0)
    return elapsed


async def refserver_churn(connections: int, loops: int) -> float:
    from refserver.config import Config
    from refserver.runtime.asyncio_transport import AsyncioTransport
    from refserver.runtime.context import ServerContext
    from refserver.runtime.http import HTTPConnection

    ctx = ServerContext(app, Config(access_log=False))
    tasks: set[asyncio.Task[None]] = set()

    def new_protocol(transport: ChurnSocket) -> AsyncioTransport:
        return AsyncioTransport(asyncio.get_running_loop())

    def serve(protocol: AsyncioTransport) -> None:
        task = asyncio.get_running_loop().create_task(HTTPConnection(protocol, ctx).run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return await _churn(new_protocol, connections, loops, serve)


async def uvicorn_churn(connections: int, loops: int) -> float:
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.server import ServerState

    config = uvicorn.Config(app, http="h11", ws="wsproto", lifespan="off", access_log=False, log_level="critical")
    config.load()
    state = ServerState()

    def new_protocol(transport: ChurnSocket) -> H11Protocol:
        return H11Protocol(config, state, {}, asyncio.get_running_loop())

    return await _churn(new_protocol, connections, loops)


async def _connect(
    protocol: asyncio.Protocol, requests: int, websocket: bool
) -> tuple[PretendSocket, asyncio.Future[None]]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    transport = PretendSocket(loop, requests, done, websocket)
    transport.protocol = protocol
    protocol.connection_made(transport)
    return transport, done


async def refserver_requests(requests: int, connections: int, websocket: bool) -> float:
    """CPU seconds refserver (asyncio) takes for ``requests`` requests on each of
    ``connections`` connections."""
    from refserver.config import Config
    from refserver.runtime.asyncio_transport import AsyncioTransport
    from refserver.runtime.context import ServerContext
    from refserver.runtime.http import HTTPConnection

    ctx = ServerContext(app, Config(access_log=False))
    protocols, waits, tasks = [], [], []
    for _ in range(connections):
        protocol = AsyncioTransport(asyncio.get_running_loop())
        _, done = await _connect(protocol, requests, websocket)
        tasks.append(asyncio.create_task(HTTPConnection(protocol, ctx).run()))
        protocols.append(protocol)
        waits.append(done)
    await asyncio.sleep(0)  # the connections' tasks wait for their first request
    started = time.process_time()
    for protocol in protocols:
        protocol.data_received(HANDSHAKE if websocket else REQUEST)
    await asyncio.gather(*waits)
    elapsed = time.process_time() - started
    for task in tasks:
        task.cancel()
    return elapsed


async def uvicorn_requests(requests: int, connections: int, websocket: bool) -> float:
    """The same for uvicorn's h11 protocol (``--http h11``, as ``run.py``'s baseline)."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.server import ServerState

    # (log_level: its app task is cancelled when the loop closes, which it would log as an error)
    config = uvicorn.Config(app, http="h11", ws="wsproto", lifespan="off", access_log=False, log_level="critical")
    config.load()
    state = ServerState()
    protocols, waits = [], []
    for _ in range(connections):
        protocol = H11Protocol(config, state, {}, asyncio.get_running_loop())
        _, done = await _connect(protocol, requests, websocket)
        protocols.append(protocol)
        waits.append(done)
    started = time.process_time()
    for protocol in protocols:
        protocol.data_received(HANDSHAKE if websocket else REQUEST)
    await asyncio.gather(*waits)
    return time.process_time() - started


def run_requests(server: str, requests: int, connections: int = 1, workload: str = "http") -> float:
    """CPU seconds for ``requests`` requests (or messages) on each of ``connections``
    connections; with the WebSocket handshake, which is not counted, for ``ws``."""
    if workload == "churn":  # ``requests`` connections on each of ``connections`` loops
        churn = refserver_churn if server == "refserver" else uvicorn_churn
        return asyncio.run(churn(requests, connections))
    serve = refserver_requests if server == "refserver" else uvicorn_requests
    return asyncio.run(serve(requests, connections, workload == "ws"))


def installed(server: str) -> bool:
    if server == "refserver":
        return True
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        return False
    return True


def _instructions(server: str, requests: int, connections: int, workload: str) -> int:
    """Machine instructions of a whole process serving ``requests`` requests (valgrind)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    argv += [sys.executable, str(Path(__file__).resolve()), "--one", server, "--requests", str(requests)]
    argv += ["--connections", str(connections), "--workload", workload]
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
    parser.add_argument("--workload", choices=WORKLOADS, default="http", help="http, ws or churn")
    parser.add_argument("--one", choices=SERVERS, help=argparse.SUPPRESS)  # one untimed run, for valgrind
    args = parser.parse_args(argv)
    if args.one:
        run_requests(args.one, args.requests, args.connections, args.workload)
        return
    servers = [server for server in SERVERS if installed(server)]
    if args.valgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("valgrind is not installed")
        requests = args.requests or 4000
        for server in servers:
            whole = _instructions(server, requests, args.connections, args.workload)
            quarter = _instructions(server, requests // 4, args.connections, args.workload)
            per_request = (whole - quarter) / (requests - requests // 4) / args.connections
            print(f"{server:10s} {per_request:10,.0f} instructions per {_unit(args.workload)}")
        return
    requests = args.requests or 20000 // args.connections
    timings: dict[str, list[float]] = {server: [] for server in servers}
    for _ in range(args.repeat):
        for server in servers:  # interleaved
            cpu_s = run_requests(server, requests, args.connections, args.workload)
            per_request_us = cpu_s / requests / args.connections * 1e6
            timings[server].append(per_request_us)
            print(f"{server:10s} {per_request_us:7.1f} µs of CPU per {_unit(args.workload)}")
    if "uvicorn" in timings and "refserver" in timings:
        # Each refserver run against the uvicorn run beside it: the figure that survives a busy machine.
        ratios = [u / r for r, u in zip(timings["refserver"], timings["uvicorn"], strict=True)]
        print(
            f"median {statistics.median(timings['refserver']):.1f} µs against uvicorn's "
            f"{statistics.median(timings['uvicorn']):.1f}: refserver {statistics.median(ratios):.2f}x "
            f"as fast per CPU-second (runs paired: {min(ratios):.2f}-{max(ratios):.2f}x)"
        )


def _unit(workload: str) -> str:
    return {"ws": "echo", "churn": "connection"}.get(workload, "request")


if __name__ == "__main__":
    main()
