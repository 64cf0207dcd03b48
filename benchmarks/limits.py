"""The two limits a pure-Python server cannot beat, to read the servers' figures against.

- ``tcp-asyncio`` / ``tcp-anyio``: a raw TCP echo server (no HTTP, no WebSocket framing), as an
  asyncio Protocol and as anyio streams. The client runs the WebSocket workloads' pattern
  against it with bare bytes: what the socket and the event loop cost alone.
- ``sansio``: wsproto (and h11) with no sockets: one server-side echo (parse a masked client
  frame, build the answer frame) or one HTTP request/response cycle, repeated in a loop, per
  second of CPU. What the protocol libraries cost alone.

Run as ``python -m benchmarks.limits tcp-asyncio --port P`` (serves until SIGTERM) or
``python -m benchmarks.limits sansio --seconds S`` (prints one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable

import h11
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, Message

from refserver.rawclient import frame

SMALL = 32
LARGE = 1024 * 1024


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _serve_asyncio(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, host, port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


def _serve_anyio(host: str, port: int) -> None:
    import anyio
    import anyio.abc

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive(65536))
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return

    async def main() -> None:
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()
                    return

    anyio.run(main)


def _rate(step: Callable[[], None], seconds: float) -> float:
    """Calls of ``step`` per CPU second, over about ``seconds`` of CPU."""
    step()  # warm
    done = 0
    start = time.process_time()
    while True:
        for _ in range(16):
            step()
        done += 16
        used = time.process_time() - start
        if used >= seconds:
            return done / used


def _wsproto_echo(size: int) -> Callable[[], None]:
    conn = Connection(ConnectionType.SERVER)  # already open: the handshake is not what is measured
    message = frame(0x2, os.urandom(size))

    def step() -> None:
        conn.receive_data(message)
        for event in conn.events():
            if isinstance(event, BytesMessage) and event.message_finished:
                conn.send(Message(data=event.data))
            elif isinstance(event, BytesMessage):
                raise RuntimeError("wsproto split a whole frame")

    return step


def _h11_cycle() -> Callable[[], None]:
    conn = h11.Connection(h11.SERVER)
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"14")]

    def step() -> None:
        conn.receive_data(request)
        event = conn.next_event()
        if not isinstance(event, h11.Request):
            raise RuntimeError(f"unexpected {event!r}")
        if not isinstance(conn.next_event(), h11.EndOfMessage):
            raise RuntimeError("no end of message")
        conn.send(h11.Response(status_code=200, headers=headers))
        conn.send(h11.Data(data=b"Hello, world!\n"))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()

    return step


def sansio(seconds: float) -> dict[str, float]:
    return {
        "wsproto_small": _rate(_wsproto_echo(SMALL), seconds),
        "wsproto_large": _rate(_wsproto_echo(LARGE), seconds),
        "h11_get": _rate(_h11_cycle(), seconds),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.limits")
    p.add_argument("mode", choices=("tcp-asyncio", "tcp-anyio", "sansio"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per sans-IO measurement")
    args = p.parse_args(argv)
    if args.mode == "tcp-asyncio":
        asyncio.run(_serve_asyncio(args.host, args.port))
    elif args.mode == "tcp-anyio":
        _serve_anyio(args.host, args.port)
    else:
        json.dump(sansio(args.seconds), sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
