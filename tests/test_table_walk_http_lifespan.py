"""The HTTP and lifespan tables are exact: every state change a row declares is made by that
row, and no other is (``tests/walker.py``; an HTTP input can hand what it carries on to the row
of the state it entered, as a head hands the body behind it to the body's row). The lifespan
walk is exhaustive, the HTTP walk random (seeded, bounded); both check each input's effects
(:func:`_step`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.protocol import http, lifespan
from refserver.protocol.effects import Effects
from refserver.protocol.speedups import effects_set
from tests.walker import Edge, declared_edges, recording, walk

M = TypeVar("M", http.HTTPMachine, lifespan.LifespanMachine)
# The effects the HTTP runtime applies (runtime.http.HTTPConnection._apply).
_APPLIED = {"notes", "transitions", "refused", "write", "timer"}
_APPLIED |= {"reading", "request", "upgrade", "tcp", "wake_app", "event", "file", "error"}


def _step(machine: M, given: Enum, call: Callable[[M], Effects]) -> None:
    """Apply one input and check its effects: an app's error leaves the state, and what the
    machine asks to read, unchanged and cites its row's section; the recorded transitions lead
    from the state before to the state after, in steps."""
    before = machine.state
    try:
        fx: Effects | None = call(machine)
    except ASGIProtocolError as error:
        assert machine.state is before, (before, given, machine.state)
        # One citation per rule: the error cites its row's section.
        assert error.section == machine._row.section, (before, given, error.section)
        fx = None
    except ClientDisconnected:
        assert machine.state is before, (before, given, machine.state)
        fx = None
    after = machine.state
    if fx is None:
        # (After an input that returns, the machine has just read _wants_read() itself.)
        assert machine._wants_read() in (None, machine._reading), (before, given, after)
        return
    names = [before.name]
    for step in fx.transitions:
        assert step.old == names[-1], (before, given, fx.transitions)
        names.append(step.new)
    assert names[-1] == after.name, (before, given, fx.transitions)
    if isinstance(fx, http.HTTPEffects):
        # The runtime applies the effects an input set (speedups.effects_set): every one
        # that differs from its default; of those it applies, none set to its default.
        given_names = set(effects_set(fx))
        default = {name for name in fx._FIELDS if getattr(fx, name) == getattr(type(fx), name)}
        assert set(fx._FIELDS) - default <= given_names, (before, given, fx)
        assert not given_names & default & _APPLIED, (before, given, fx)


# ---------------------------------------------------------------------- lifespan

_L = lifespan.Input
_LIFESPAN_CALLS: dict[lifespan.Input, Callable[[lifespan.LifespanMachine], Effects]] = {
    _L.STARTUP_COMPLETE: lambda m: m.app_send({"type": "lifespan.startup.complete"}),
    _L.STARTUP_FAILED: lambda m: m.app_send({"type": "lifespan.startup.failed", "message": "no db"}),
    _L.SHUTDOWN_COMPLETE: lambda m: m.app_send({"type": "lifespan.shutdown.complete"}),
    _L.SHUTDOWN_FAILED: lambda m: m.app_send({"type": "lifespan.shutdown.failed"}),
    _L.OTHER_MESSAGE: lambda m: m.app_send({"type": "http.response.start", "status": 200}),
    _L.RECEIVE: lambda m: m.app_receive(),
    _L.APP_RETURNED: lambda m: m.app_ended(raised=False),
    _L.APP_RAISED: lambda m: m.app_ended(raised=True),
    _L.SHUTDOWN_REQUESTED: lambda m: m.begin_shutdown(),
    _L.TIMEOUT: lambda m: m.timed_out(),
}


def _lifespan_key(m: lifespan.LifespanMachine) -> tuple[Any, ...]:
    return (m.state, m.startup_delivered, m.cause, m.cause_state, m.failure_message)


def test_every_input_in_every_reachable_lifespan_state_takes_exactly_the_declared_edges() -> None:
    """Exhaustive: every input from every reachable (state, data fields), breadth first."""
    assert set(_LIFESPAN_CALLS) == set(lifespan.Input)
    inputs: dict[str, Callable[[lifespan.LifespanMachine], object]] = {
        given.name: lambda m, given=given, call=call: _step(m, given, call)  # type: ignore[misc]
        for given, call in _LIFESPAN_CALLS.items()
    }
    result = walk(lifespan.LifespanMachine, lambda m: inputs, _lifespan_key, rows=lifespan.TABLE.values(), max_depth=10)
    assert (result.errors, result.complete, result.undeclared, result.untaken) == ([], True, set(), set())
    # For the record (shown by pytest -n0 -s: the suite runs on workers, whose output pytest does not show).
    print(f"lifespan: {len(result.taken)} edges taken, {result.situations} reachable configurations")


# ---------------------------------------------------------------------- HTTP

_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"  # a request head without its end
_KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
_UPGRADE = b"Upgrade: websocket\r\nConnection: Upgrade\r\n" + _KEY
# What may follow _HEAD: each ends the head in its own way.
_HEAD_ENDS = [
    b"\r\n",  # a GET
    b"Connection: close\r\n\r\n",  # the connection's last request
    b"Content-Length: 5\r\n\r\nab",  # a body, part of it here
    b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",  # the client waits for 100 Continue
    b"Transfer-Encoding: chunked\r\n\r\n",  # a chunked body, none of it here
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",  # a chunked body, its first chunk here
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",  # a malformed chunk: the client counts as gone
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",  # a chunk, then a malformed one behind it
    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",  # RFC 9112 §6.1: close after it
    _UPGRADE + b"\r\n",  # a WebSocket upgrade
    _UPGRADE + b"Content-Length: 3\r\n\r\na",  # a WebSocket upgrade, its body still arriving
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",  # a handshake without its key: 400
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\n",  # the same, with a body
]
_BYTES = [
    _HEAD,
    *_HEAD_ENDS,
    *(_HEAD + end for end in _HEAD_ENDS),
    b"cde",  # the rest of the 5-byte body
    b"ok",  # the 2-byte body
    b"bc",  # the rest of the upgrade's 3-byte body
    b"3\r\nabc\r\n",  # a chunk
    b"0\r\n\r\n",  # the last chunk
    b"zz\r\n",  # a malformed chunk
    b"\x00 nonsense\r\n\r\n",  # 400
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",  # 505
    b"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n",  # 501
]
_STARTS: list[dict[str, Any]] = [  # (the usual messages more often than the rest)
    {"type": "http.response.start", "status": 200},
    {"type": "http.response.start", "status": 200},
    {"type": "http.response.start", "status": 200},
    {"type": "http.response.start", "status": 204},
    {"type": "http.response.start", "status": 200, "trailers": True},
    {"type": "http.response.start", "status": 200, "trailers": True},
    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]},
    {"type": "http.response.start", "status": 99},  # malformed
]
_BODIES: list[dict[str, Any]] = [
    {"type": "http.response.body", "body": b"ok"},
    {"type": "http.response.body", "body": b"ok"},
    {"type": "http.response.body", "body": b"ok"},
    {"type": "http.response.body", "body": b"ok", "more_body": True},
    {"type": "http.response.body", "body": b"", "more_body": False},
    {"type": "http.response.body", "body": "not bytes"},  # malformed
]

_HINTS: list[dict[str, Any]] = [
    {"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]},
    {"type": "http.response.early_hint", "links": b"not a list"},  # malformed
]

_TRAILERS: list[dict[str, Any]] = [
    {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]},
    {"type": "http.response.trailers", "headers": [], "more_trailers": True},
    {"type": "http.response.trailers", "headers": [(b"x a", b"1")]},  # malformed
]

# A file to send: this test's own source (an absolute path; a file object opened once).
_FILE = open(__file__, "rb")  # noqa: SIM115 - open for the whole run
_PATHSENDS: list[dict[str, Any]] = [
    {"type": "http.response.pathsend", "path": __file__},
    {"type": "http.response.pathsend", "path": "/no/such/file"},  # an app error
]
_ZEROCOPYSENDS: list[dict[str, Any]] = [
    {"type": "http.response.zerocopysend", "file": _FILE, "offset": 0, "count": 10},
    {"type": "http.response.zerocopysend", "file": _FILE, "offset": 0, "count": 10, "more_body": True},
    {"type": "http.response.zerocopysend", "file": _FILE, "count": -1},  # malformed
]


def _file_send(machine: http.HTTPMachine, message: dict[str, Any]) -> http.HTTPEffects:
    """Send a file message, and close what the runtime would have closed once it was sent."""
    fx = machine.app_send(message)
    if fx.file is not None:
        fx.file.body.close()
    return fx


def _some_bytes(machine: http.HTTPMachine, rng: random.Random) -> bytes:
    """Bytes from the peer: often the rest of a head that has begun, or a whole GET; after a
    complete response, a pipelined request (or the start of one)."""
    if machine.state is http.State.COMPLETE:
        return rng.choice([_HEAD, *(_HEAD + end for end in _HEAD_ENDS)])
    if machine.state is http.State.READING_HEAD and rng.random() < 0.7:
        return rng.choice(_HEAD_ENDS)
    return rng.choice(_BYTES) if rng.random() < 0.7 else _HEAD + b"\r\n"


_H = http.Input
# Each input, with how often it is chosen relative to the others: the app's messages often enough
# to finish responses, the inputs that end a connection seldom enough to reach the late states.
_HTTP_CALLS: dict[http.Input, tuple[float, Callable[[http.HTTPMachine, random.Random], http.HTTPEffects]]] = {
    _H.START: (4.0, lambda m, r: m.app_send(r.choice(_STARTS))),
    _H.BODY: (4.0, lambda m, r: m.app_send(r.choice(_BODIES))),
    _H.EARLY_HINT: (0.5, lambda m, r: m.app_send(r.choice(_HINTS))),
    _H.TRAILERS: (2.0, lambda m, r: m.app_send(r.choice(_TRAILERS))),
    _H.PATHSEND: (1.0, lambda m, r: _file_send(m, r.choice(_PATHSENDS))),
    _H.ZEROCOPYSEND: (2.0, lambda m, r: _file_send(m, r.choice(_ZEROCOPYSENDS))),
    _H.OTHER_MESSAGE: (0.5, lambda m, r: m.app_send({"type": "http.response.push"})),
    _H.RECEIVE: (1.0, lambda m, r: m.app_receive()),
    _H.APP_RETURNED: (1.0, lambda m, r: m.app_ended(raised=False)),
    _H.APP_RAISED: (1.0, lambda m, r: m.app_ended(raised=True)),
    _H.BYTES: (3.0, lambda m, r: m.receive_data(_some_bytes(m, r))),
    _H.PEER_GONE: (0.2, lambda m, r: m.peer_gone("reset")),
    _H.KEEP_ALIVE_TIMEOUT: (0.2, lambda m, r: m.keep_alive_timeout()),
    _H.BODY_TIMEOUT: (0.6, lambda m, r: m.body_timeout()),
    _H.SHUTDOWN: (0.2, lambda m, r: m.server_shutdown()),
    _H.SHUTDOWN_TIMEOUT: (0.1, lambda m, r: m.shutdown_timeout()),
}
_EPISODES = 12000
_STEPS = 16


def test_random_walks_over_the_http_machine_take_exactly_the_declared_edges() -> None:
    """Random inputs (the ones with a row in the state the machine is in), from a fresh
    connection each episode; the seed makes every run the same. Bytes arrive whenever the
    walk likes, even while the machine has asked the runtime to stop reading: the table
    covers every input the machine accepts."""
    assert set(_HTTP_CALLS) == set(http.Input)
    rng = random.Random(18)
    by_row: set[Edge] = set()  # each change with the row that made it
    with recording(by_row):
        _walk_http(rng)
    declared = declared_edges(http.TABLE.values())
    assert (sorted(by_row - declared), sorted(declared - by_row)) == ([], []), "undeclared, never taken by its row"
    # For the record (shown by pytest -n0 -s).
    print(f"HTTP: {len(by_row)} of {len(declared)} declared edges taken, each by its own row")


def _walk_http(rng: random.Random) -> None:
    for episode in range(_EPISODES):
        machine = http.HTTPMachine(
            http.Settings(max_head_bytes=1024),
            date=lambda: b"Sun, 06 Nov 1994 08:49:37 GMT",
            last_request=episode % 10 == 1,
            over_limit=episode % 10 == 2,
        )
        for _ in range(_STEPS):
            inputs = [given for given in http.Input if (machine.state, given) in http.TABLE]
            [given] = rng.choices(inputs, [_HTTP_CALLS[given][0] for given in inputs])
            _step(machine, given, lambda m, given=given: _HTTP_CALLS[given][1](m, rng))  # type: ignore[misc]
