"""The tables declare exactly the state changes the machines make: a walk over every input
in every reachable situation (``tests/walker.py``) takes every declared edge and no other.

Each machine plugs in its input generator (the inputs it can be given, with their
arguments) and its key (what makes two situations alike). The walker itself is checked
on a toy machine whose table is wrong both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from enum import Enum
from typing import Any

import h11

from refserver import ASGIProtocolError, ClientDisconnected
from refserver.protocol.effects import Effects, Timer
from refserver.protocol.handshake import validate_request
from refserver.protocol.table import TableBuilder, TableMachine
from refserver.protocol.websocket import TABLE, Timeouts, WebSocketMachine
from tests.support import close_frame, frame, handshake_request
from tests.walker import declared_edges, walk

# ---------------------------------------------------------------- WebSocket

WS = WebSocketMachine
WS_MESSAGES: dict[str, dict[str, Any]] = {
    "accept": {"type": "websocket.accept"},
    "accept with a subprotocol not offered": {"type": "websocket.accept", "subprotocol": "x"},
    "send": {"type": "websocket.send", "text": "hi"},
    "close": {"type": "websocket.close", "code": 1000},
    "denial start": {"type": "websocket.http.response.start", "status": 403},
    "denial start, content-length 1": {
        "type": "websocket.http.response.start",
        "status": 403,
        "headers": [(b"content-length", b"1")],
    },
    "denial body, more": {"type": "websocket.http.response.body", "body": b"x", "more_body": True},
    "denial body, last": {"type": "websocket.http.response.body", "body": b""},
    "another message type": {"type": "http.response.start", "status": 200},
}
PEER_BYTES: dict[str, Callable[[WS], bytes]] = {
    "peer message": lambda m: frame(0x1, b"a"),
    "peer ping": lambda m: frame(0x9, b"p"),
    # The pong that answers the outstanding ping, or an unsolicited one.
    "peer pong": lambda m: frame(0xA, m._ping_payload or b"u"),
    "peer close frame": lambda m: close_frame(1000),
    "peer bad bytes": lambda m: frame(0x3),  # a reserved opcode: 1002
}


def new_ws() -> WS:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(handshake_request("/"))
    request = conn.next_event()
    assert isinstance(request, h11.Request)
    assert isinstance(conn.next_event(), h11.EndOfMessage)
    key = validate_request(request.method, request.http_version, list(request.headers))
    assert isinstance(key, bytes)
    return WS(conn, key=key, subprotocols=[], deflate=None, max_size_bytes=1 << 20, timeouts=Timeouts())


def _send(message: dict[str, Any]) -> Callable[[WS], object]:
    return lambda m: m.app_send(message)


def _peer(make: Callable[[WS], bytes]) -> Callable[[WS], object]:
    return lambda m: m.receive_data(make(m))


def _timer(timer: Timer, *, write_blocked: bool = False) -> Callable[[WS], object]:
    return lambda m: m.timer_fired(timer, write_blocked=write_blocked)


WS_INPUTS: dict[str, Callable[[WS], object]] = {
    **{label: _send(message) for label, message in WS_MESSAGES.items()},
    "receive": lambda m: m.app_receive(),
    "app returned": lambda m: m.app_ended(raised=False),
    "app raised": lambda m: m.app_ended(raised=True),
    **{label: _peer(make) for label, make in PEER_BYTES.items()},
    "peer gone": lambda m: m.peer_gone("EOF"),
    **{f"{timer.name} timer": _timer(timer) for timer in Timer},
    "PONG timer, write blocked": _timer(Timer.PONG, write_blocked=True),
    "server shutdown": lambda m: m.server_shutdown(),
}


def ws_inputs(machine: WS) -> Mapping[str, Callable[[WS], object]]:
    """Every input, in every state: the table answers each (state, input)."""
    return WS_INPUTS


def ws_key(m: WS) -> Hashable:
    """What decides what the next input does: the state and the data fields (the queue by
    its length, up to two)."""
    return (
        m.state,
        m.receiving,
        m.handshake is None,
        min(len(m.inbox), 2),
        m._disconnect is not None,
        m._failure,
        tuple(m._denial_headers),
        m._ping_payload is not None,
        m._reading,
    )


def test_the_websocket_walk_takes_every_declared_edge_and_no_other() -> None:
    result = walk(
        new_ws, ws_inputs, ws_key, rows=TABLE.values(), max_depth=12, expected=(ASGIProtocolError, ClientDisconnected)
    )
    assert result.errors == []
    assert result.complete, "the walk stopped at max_depth with situations left to try"
    assert result.undeclared == set()
    assert result.untaken == set()
    # The counts, for the record: declared (= taken) edges, situations, inputs applied (shown by
    # pytest -n0 -s: the suite runs on workers, whose output pytest does not show).
    print(
        f"WebSocket walk: {len(result.declared)} edges declared, {len(result.taken)} taken, "
        f"{result.situations} situations, {result.inputs_applied} inputs applied"
    )


def test_no_websocket_row_lists_its_own_state() -> None:
    assert [row for row in TABLE.values() if row.state in row.next] == []


# ---------------------------------------------------------------- the walker itself


class Toy(Enum):
    A = "a"
    B = "b"
    C = "c"


class Go(Enum):
    STEP = "step"
    JUMP = "jump"


class ToyMachine(TableMachine[Toy, Go, Effects]):
    """A -> B on STEP; JUMP from B leads to C, though the table below says A."""

    name = "toy"

    def __init__(self) -> None:
        self.state = Toy.A
        self._fx = Effects()
        self._row = TOY_TABLE[(Toy.A, Go.STEP)]

    def _new_effects(self) -> Effects:
        return Effects()

    def _step_on(self, _: None) -> None:
        if self.state is Toy.A:
            self._enter(Toy.B, "step", "")

    def _jump(self, _: None) -> None:
        self._enter(Toy.C, "jump", "")


_toy: TableBuilder[Toy, Go] = TableBuilder("toy")
_toy.add((Toy.A,), Go.STEP, (Toy.B, Toy.C), ToyMachine._step_on, "")  # C is never reached by STEP
_toy.add((Toy.B, Toy.C), Go.STEP, (), ToyMachine._step_on, "")
_toy.add((Toy.A, Toy.C), Go.JUMP, (), ToyMachine._jump, "")  # A: jumps to C, undeclared
_toy.add((Toy.B,), Go.JUMP, (Toy.C,), ToyMachine._jump, "")
TOY_TABLE = _toy.build(complete=(Toy, Go))
ToyMachine.rows = TOY_TABLE
TOY_INPUTS: dict[str, Callable[[ToyMachine], object]] = {
    "step": lambda m: m._step(Go.STEP, None),
    "jump": lambda m: m._step(Go.JUMP, None),
}


def test_the_walker_reports_edges_never_taken_and_edges_not_declared() -> None:
    result = walk(ToyMachine, lambda m: TOY_INPUTS, lambda m: m.state, rows=TOY_TABLE.values(), max_depth=5)
    assert result.complete
    assert result.untaken == {("A", "STEP", "C")}
    # JUMP in A and in C makes a change no row lists: the machine refuses it (_enter), and the
    # walk records both the change and the refusal.
    assert result.undeclared == {("A", "JUMP", "C"), ("C", "JUMP", "C")}
    assert len(result.errors) == 2
    assert all("which its row does not list" in error for error in result.errors)
    assert declared_edges(TOY_TABLE.values()) == {("A", "STEP", "B"), ("A", "STEP", "C"), ("B", "JUMP", "C")}
