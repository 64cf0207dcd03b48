"""What a protocol machine asks the runtime to do: the one output type of every input.

The machines (``protocol.websocket``, ``protocol.http``, ``protocol.lifespan``) never
await, never touch a socket and never read the clock. Every input returns an
:class:`Effects`; the runtime applies it in one function, which is also where the trace
records every step, so nothing can change state without a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple


class FastEnum(Enum):
    """An Enum hashed by identity (members are singletons), so table look-ups keyed by its
    members cost a C-level hash instead of Enum's Python-level one."""

    __hash__ = object.__hash__


class Tcp(FastEnum):
    """What happens to the TCP connection."""

    SEND_EOF = "send FIN once what is queued is written, and keep reading until EOF"
    CLOSE = "write what is queued (within the close timeout), then close the TCP connection"
    ABORT = "the peer is unresponsive: close the TCP connection, writing what is queued only if the socket takes it"


class Timer(FastEnum):
    """The deadlines a machine can arm; each fires as an input of its own."""

    CLOSE = "close timeout: the peer's close frame or EOF is overdue"
    HOLD = "hold timeout: a failure waited long enough for the app"
    PING = "keepalive ping interval"
    PONG = "keepalive ping timeout: the pong is overdue"


class Transition(NamedTuple):
    """A state change, with the rule behind it. (A named tuple: one is made per change of
    state, and a tuple is built faster than a frozen dataclass.)"""

    old: str
    new: str
    section: str
    why: str


class Note(NamedTuple):
    """A step that changes no state but belongs in the trace (and maybe the log).

    ``kind``: "ignored" (a message the rules ignore), "warning" (logged at WARNING too),
    "timer" (a deadline fired).
    """

    kind: str
    text: str
    section: str = ""


@dataclass(slots=True)
class Effects:
    """Everything one input asks for, in the order the runtime applies it."""

    write: list[bytes] = field(default_factory=list)  # bytes for the peer, in order
    # What receive() returns now: from a RECEIVE input, or from the input that completed the
    # message a waiting receive() is handed (docs/decisions.md #61).
    event: dict[str, Any] | None = None
    wake_app: bool = False  # a waiting receive() has something new
    reading: bool | None = None  # pause (False) or resume (True) reading; None: unchanged
    arm: dict[Timer, float] = field(default_factory=dict)  # timer -> seconds from now
    cancel: list[Timer] = field(default_factory=list)
    tcp: Tcp | None = None
    transitions: list[Transition] = field(default_factory=list)
    status: int = 0  # an HTTP status written in answer to a WebSocket handshake
    close_code: int | None = None  # the disconnect code, when it was decided by this input
    error: BaseException | None = None  # raise into the app after applying the rest
    notes: list[Note] = field(default_factory=list)
