"""Arbitrary bytes against a running refserver, over real sockets.

The HTTP path: whatever a client sends, followed by its FIN, must end in whole, well-formed
responses (200 from the app for what parses; 4xx/5xx for what does not) or a quiet close, within
a bound. The WebSocket path: after a good handshake, whatever the client sends, then its FIN,
must end with at most one close frame (the last frame) and exactly one ``websocket.disconnect``
for the app, repeated by a later ``receive()``. In both, nothing may be logged at ERROR level.

The test suite runs a few examples of each (tests/test_reliability_bad_input.py). On demand,
Hypothesis at higher effort against one server, reporting how many inputs it tried::

    python -m reliability.fuzz --examples 5000 [--backend asyncio|trio]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.abc
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType
from wsproto.connection import Connection as WireConnection

from refserver import Config
from refserver.rawclient import MASK, frame, handshake_request
from refserver.runtime.server import Listening, serve

WAIT = 5.0
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

# ---------------------------------------------------------------- inputs

_HEADERS = [
    b"Host: x",
    b"Content-Length: 3",
    b"Content-Length: 0",
    b"Content-Length: 3, 3",
    b"Content-Length: -1",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip",
    b"Transfer-Encoding:\r\n chunked",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Connection: Upgrade",
    b"Upgrade: websocket",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
    b"Expect: 100-continue",
    b"X-A: one\r\n two",
    b"X-B : c",
    b"X-C: \xff\x00",
]
_METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"CONNECT", b"G\x00T", b""]
_TARGETS = [b"/", b"/a?b=c", b"*", b"http://x/y", b"/%ff", b"/\xff", b"", b"/" + b"a" * 300]
_VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.9", b"FTP/1.1", b"HTTP/1", b""]
_BODIES = [b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"zz\r\n", b"3\r\nabc\r\n", b"\r\n", b"ab"]


@st.composite
def _request(draw: st.DrawFn, methods: tuple[bytes, ...] = tuple(_METHODS)) -> bytes:
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    line = b" ".join(
        [draw(st.sampled_from(methods)), draw(st.sampled_from(_TARGETS)), draw(st.sampled_from(_VERSIONS))]
    )
    headers = draw(st.lists(st.sampled_from(_HEADERS), max_size=6))
    return line + eol + b"".join(h + eol for h in headers) + eol + draw(st.sampled_from(_BODIES))


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "cut", "insert"]))
        if how == "flip":
            data[at] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def http_inputs() -> st.SearchStrategy[bytes]:
    """Request-shaped bytes (one or two requests, sometimes mutated), or raw bytes."""
    one = st.one_of(_request(), _mutated(_request()))
    return st.one_of(st.binary(max_size=300), one, st.builds(bytes.__add__, one, one))


def _masked(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True) -> bytes:
    return frame(opcode, payload, fin=fin, rsv=rsv, mask=MASK if mask else None)


_FRAME = st.builds(
    _masked,
    st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB]),
    st.one_of(
        st.binary(max_size=40), st.just("é".encode()), st.just(b"\x03\xe8bye"), st.binary(min_size=126, max_size=300)
    ),
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 4, 2, 1]),
    mask=st.sampled_from([True, True, True, False]),
)


def ws_inputs() -> st.SearchStrategy[bytes]:
    """Frames good and bad (any opcode, fragmented or not, RSV bits, unmasked), raw bytes,
    huge announced lengths, concatenated and sometimes mutated."""
    piece = st.one_of(
        _FRAME,
        st.binary(max_size=30),
        st.just(bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 40) + b"\x00" * 4),
    )
    joined = st.lists(piece, max_size=6).map(b"".join)
    return st.one_of(joined, _mutated(joined))


# ---------------------------------------------------------------- the HTTP path


def parse_responses(raw: bytes) -> tuple[list[int], str]:
    """The statuses of the responses in ``raw``, and what is wrong with it ("" if nothing)."""
    statuses: list[int] = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.1 (\d{3}) [^\r\n]*", head)
        if not sep or not match:
            return statuses, f"not a response head: {raw[:60]!r}"
        status = int(match.group(1))
        statuses.append(status)
        if status == 100:
            raw = rest
            continue
        length = re.search(rb"(?im)^content-length: (\d+)\r?$", head)
        if rest.startswith(b"HTTP/1.1 "):
            # A response to HEAD: no body, whatever Content-Length says (RFC 9110 §9.3.2);
            # the app's bodies never begin like a status line.
            raw = rest
        elif length:
            raw = rest[int(length.group(1)) :]
        elif re.search(rb"(?im)^transfer-encoding: chunked\r?$", head):
            while True:
                size_line, sep, rest = rest.partition(b"\r\n")
                if not sep:
                    return statuses, "chunked body cut"
                size = int(size_line.split(b";")[0], 16)
                rest = rest[size + 2 :]
                if size == 0:
                    break
            raw = rest
        else:
            raw = b""  # delimited by the close
    return statuses, ""


async def run_http_input(port: int, data: bytes) -> list[str]:
    """Send ``data`` then FIN; every problem with what came back."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    raw = bytearray()
    try:
        with anyio.move_on_after(WAIT) as scope:
            try:
                await stream.send(data) if data else None
                await stream.send_eof()
                while True:
                    raw += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
    finally:
        await stream.aclose()
    if scope.cancelled_caught:
        return [f"no end within {WAIT} s for {data[:80]!r}"]
    statuses, wrong = parse_responses(bytes(raw))
    problems = [f"{wrong} for {data[:80]!r}"] if wrong else []
    problems += [f"status {s} for {data[:80]!r}" for s in statuses if s not in (100, 200) and not 400 <= s < 600]
    return problems


# ---------------------------------------------------------------- the WebSocket path


@dataclass
class WsSeen:
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    repeated: dict[str, bool] = field(default_factory=dict)
    ended: dict[str, anyio.Event] = field(default_factory=dict)

    def ended_event(self, path: str) -> anyio.Event:
        return self.ended.setdefault(path, anyio.Event())


def ws_app() -> tuple[App, WsSeen]:
    """An app that accepts, reads until the disconnect, and records what it got per path."""
    seen = WsSeen()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await receive()
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        path = scope["path"]
        events = seen.events.setdefault(path, [])
        try:
            events.append(await receive())
            await send({"type": "websocket.accept"})
            while True:
                event = await receive()
                events.append(event)
                if event["type"] == "websocket.disconnect":
                    seen.repeated[path] = await receive() == event
                    return
        finally:
            seen.ended_event(path).set()

    return app, seen


_paths = itertools.count()


async def run_ws_input(port: int, data: bytes, seen: WsSeen, *, deflate: bool = False) -> list[str]:
    """Handshake, send ``data``, FIN; every problem with what came back and what the app got."""
    path = f"/fuzz/{next(_paths)}"
    extra = [("Sec-WebSocket-Extensions", "permessage-deflate")] if deflate else []
    request = handshake_request(path, extra=extra, host="x")
    stream = await anyio.connect_tcp("127.0.0.1", port)
    raw = bytearray()
    try:
        with anyio.move_on_after(WAIT) as scope:
            await stream.send(request)
            while b"\r\n\r\n" not in raw:
                raw += await stream.receive()
            try:
                if data:
                    await stream.send(data)
                await stream.send_eof()
                while True:
                    raw += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
        if not scope.cancelled_caught:
            with anyio.move_on_after(WAIT):
                await seen.ended_event(path).wait()
    finally:
        await stream.aclose()
    where = f"for {data[:80]!r}"
    if scope.cancelled_caught:
        return [f"no end within {WAIT} s {where}"]
    head, _, rest = bytes(raw).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101 "):
        return [f"handshake answered {head[:40]!r}"]
    problems = []
    wire = WireConnection(ConnectionType.CLIENT)
    wire.receive_data(rest)
    kinds: list[str] = []
    try:
        kinds = [type(e).__name__ for e in wire.events()]
    except Exception as exc:
        problems.append(f"server frames do not parse: {exc} {where}")
    if kinds.count("CloseConnection") > 1 or ("CloseConnection" in kinds and kinds[-1] != "CloseConnection"):
        problems.append(f"server frames {kinds} {where}")
    if any(k not in ("Ping", "Pong", "CloseConnection") for k in kinds):
        problems.append(f"unexpected server frames {kinds} {where}")
    events = seen.events.get(path, [])
    if not seen.ended_event(path).is_set():
        problems.append(f"the app did not end {where}")
    types = [e["type"] for e in events]
    if (
        types[:1] != ["websocket.connect"]
        or types.count("websocket.disconnect") != 1
        or types[-1:] != ["websocket.disconnect"]
    ):
        problems.append(f"app events {types} {where}")
    elif not seen.repeated.get(path):
        problems.append(f"the disconnect was not repeated {where}")
    return problems


# ---------------------------------------------------------------- on demand


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="per path")
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    errors = _Errors()
    logging.getLogger("refserver").addHandler(errors)
    app, seen = ws_app()
    tried = {"http": 0, "websocket": 0}
    problems: list[str] = []
    start = time.monotonic()
    with start_blocking_portal(args.backend) as portal:
        stop = portal.call(anyio.Event)
        config = Config.from_options(
            port=0,
            lifespan="off",
            access_log=False,
            timeout_keep_alive_s=1.0,
            ws_max_size_bytes=1024,
            ws_ping_interval_s=0,
        )
        future, listening = portal.start_task(partial(serve, app, config, shutdown_trigger=stop.wait))
        assert isinstance(listening, Listening)
        address = listening.addresses[0]
        assert isinstance(address, tuple)
        port = address[1]
        effort = settings(
            max_examples=args.examples,
            deadline=None,
            database=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
        )

        @effort
        @given(data=http_inputs())
        def http_property(data: bytes) -> None:
            tried["http"] += 1
            problems.extend(portal.call(run_http_input, port, data))

        @effort
        @given(data=ws_inputs(), deflate=st.booleans())
        def ws_property(data: bytes, deflate: bool) -> None:
            tried["websocket"] += 1
            problems.extend(portal.call(partial(run_ws_input, port, data, seen, deflate=deflate)))

        http_property()
        ws_property()
        portal.call(stop.set)
        future.result(timeout=30)
    figures = {
        "backend": args.backend,
        "inputs_tried": tried,
        "problems": len(problems),
        "problem_examples": problems[:10],
        "error_records": len(errors.lines),
        "error_examples": errors.lines[:5],
        "elapsed_s": round(time.monotonic() - start, 1),
    }
    print(json.dumps(figures, indent=2))
    return 1 if problems or errors.lines else 0


if __name__ == "__main__":
    sys.exit(main())
