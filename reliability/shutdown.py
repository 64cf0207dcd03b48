"""Shutdown under load: ``python -m refserver`` with hundreds of open WebSockets, each being sent
numbered messages (reliability.apps.streamer), and HTTP requests in flight, gets SIGTERM.

Checked: every message whose ``send()`` returned reaches its client, in order and before the
close frame 1001 (www spec 2.5, "Disconnect - receive event"; RFC 6455 §7.4.1 1001 "going
away"); every app gets its disconnect, code 1001; every HTTP request sent before the signal is
answered 200; the process exits 0 within ``--shutdown-timeout``; nothing at ERROR level.

On demand::

    python -m reliability.shutdown --websockets 500 --requests 100 [--backend asyncio|trio]

The test suite runs :func:`shutdown_under_load` with modest numbers
(tests/test_reliability_shutdown.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from refserver.rawclient import WSClient, connect, read_until_eof, request_bytes

REPO = Path(__file__).resolve().parent.parent
WAIT = 20.0


@dataclass
class ShutdownResult:
    websockets: int = 0
    requests: int = 0
    exit_code: int | None = None
    exit_after_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    messages_received: int = 0
    stderr_errors: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "websockets": self.websockets,
            "requests": self.requests,
            "messages_received": self.messages_received,
            "exit_code": self.exit_code,
            "exit_after_s": round(self.exit_after_s, 2),
            "problems": len(self.problems),
            "problem_examples": self.problems[:10],
            "error_lines": self.stderr_errors[:5],
        }


class _Countdown:
    """Set once ``count`` different parties have each called ``mark`` with their own key: one
    wait for all of them (hundreds of sequential ``Event.wait()`` calls cost a pass of the
    event loop each, which a client busy with thousands of messages a second cannot spare)."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.done = anyio.Event()
        self._marked: set[str] = set()
        if count == 0:
            self.done.set()

    def mark(self, key: str) -> None:
        if key not in self._marked:
            self._marked.add(key)
            self.remaining -= 1
            if self.remaining == 0:
                self.done.set()


async def _collect(stream: anyio.abc.ByteReceiveStream, into: bytearray) -> None:
    try:
        while True:
            into += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


async def _watch(client: WSClient, cid: str, streaming: _Countdown, seen: dict[str, list[int]]) -> int | None:
    """Read numbered messages until the server's close frame; answer it; wait for EOF."""
    numbers = seen.setdefault(cid, [])
    while (message := await client.receive_message(math.inf)) is not None:
        numbers.append(int(str(message).rsplit(":", 1)[1]))
        streaming.mark(cid)
    close = client.closed_by_server
    if close is not None:
        try:
            await client.send_raw(client.wire.send(close.response()))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        await read_until_eof(client.stream)
    await client.aclose()
    return close.code if close is not None else None


async def _request(port: int, ms: int, sent: _Countdown, rid: str) -> bytes:
    stream = await connect(port)
    async with stream:
        await stream.send(request_bytes("GET", f"/slow?{ms}", [("Connection", "close")]))
        sent.mark(rid)
        return await read_until_eof(stream)


async def shutdown_under_load(
    backend: str,
    websockets: int,
    requests: int,
    shutdown_timeout_s: float = 5.0,
    request_ms: int = 300,
    pace_ms: int = 50,
) -> ShutdownResult:
    result = ShutdownResult(websockets=websockets, requests=requests)
    command = [sys.executable, "-m", "refserver", "reliability.apps:streamer", "--port", "0", "--backend", backend]
    command += ["--shutdown-timeout", str(shutdown_timeout_s), "--no-access-log", "--ws-ping-interval", "0"]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    process = await anyio.open_process(command, cwd=REPO, env=environment)
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = bytearray(), bytearray()
    seen: dict[str, list[int]] = {}
    codes: dict[str, int | None] = {}
    answers: list[bytes] = []
    try:
        with anyio.fail_after(3 * WAIT + shutdown_timeout_s):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_collect, process.stdout, stdout)
                tg.start_soon(_collect, process.stderr, stderr)
                while b"listening on" not in stdout:
                    await anyio.sleep(0.02)  # polling the child's output; bounded above
                port = int(re.search(rb"127\.0\.0\.1:(\d+)", bytes(stdout)).group(1))  # type: ignore[union-attr]
                streaming = _Countdown(websockets)
                async with anyio.create_task_group() as clients:

                    async def stream_to(cid: str) -> None:
                        client = await WSClient.connect(port, f"/ws/{cid}?pace={pace_ms}", answer_pings=True)
                        codes[cid] = await _watch(client, cid, streaming, seen)

                    with anyio.fail_after(WAIT):
                        for i in range(websockets):
                            clients.start_soon(stream_to, f"w{i}")
                        await streaming.done.wait()  # every WebSocket is streaming

                    async def ask(rid: str) -> None:
                        answers.append(await _request(port, request_ms, sent, rid))

                    sent = _Countdown(requests)
                    for i in range(requests):
                        clients.start_soon(ask, f"r{i}")
                    await sent.done.wait()  # every request is in flight or waiting in the accept queue
                    signalled = time.monotonic()
                    process.send_signal(signal.SIGTERM)
                result.exit_code = await process.wait()
                result.exit_after_s = time.monotonic() - signalled
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)  # the PID this function started
        with anyio.CancelScope(shield=True):
            await process.aclose()
    lines = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^ws (\S+) last_ok (-?\d+) code (\d+)$", stdout.decode(), re.M)
    }
    for i in range(websockets):
        cid = f"w{i}"
        numbers = seen.get(cid, [])
        result.messages_received += len(numbers)
        if numbers != list(range(len(numbers))):
            result.problems.append(f"{cid}: messages out of order or missing: {numbers[:10]}...")
        if codes.get(cid) != 1001:
            result.problems.append(f"{cid}: close frame {codes.get(cid)}, expected 1001")
        if cid not in lines:
            result.problems.append(f"{cid}: the app printed no disconnect")
            continue
        last_ok, code = lines[cid]
        if code != 1001:
            result.problems.append(f"{cid}: app disconnect code {code}, expected 1001")
        if len(numbers) != last_ok + 1:
            result.problems.append(f"{cid}: app's last returned send was {last_ok}, client got {len(numbers)} messages")
    for answer in answers:
        if not answer.startswith(b"HTTP/1.1 200 ") or not answer.endswith(f"slow {request_ms}".encode()):
            result.problems.append(f"request answered {answer[:60]!r}")
    if len(answers) != requests:
        result.problems.append(f"{requests - len(answers)} request(s) never returned")
    if result.exit_code != 0:
        result.problems.append(f"exit code {result.exit_code}")
    if result.exit_after_s >= shutdown_timeout_s:
        result.problems.append(f"exit {result.exit_after_s:.2f} s after the signal, timeout {shutdown_timeout_s} s")
    text = stderr.decode(errors="replace")
    result.stderr_errors = [line for line in text.splitlines() if line.startswith(("ERROR", "CRITICAL"))]
    result.problems += [f"stderr: {line}" for line in result.stderr_errors]
    if "Traceback" in text:
        result.problems.append("a traceback on stderr")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.shutdown", description=__doc__.split("\n\n")[0])
    parser.add_argument("--websockets", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--pace-ms", type=int, default=50, help="each app sends a message this often")
    args = parser.parse_args(argv)
    result = anyio.run(
        partial(shutdown_under_load, args.backend, args.websockets, args.requests, args.shutdown_timeout),
        backend=args.backend,
    )
    print(json.dumps({"backend": args.backend, **result.summary()}, indent=2))
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
