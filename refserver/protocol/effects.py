"""What a protocol machine asks the runtime to do: the one output type of every input.

The machines (``protocol.websocket``, ``protocol.http``, ``protocol.lifespan``) never
await, never touch a socket and never read the clock. Every input returns an
:class:`Effects`; the runtime applies it in one function, which is also where the trace
records every step, so nothing can change state without a record.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar, NamedTuple

from refserver.protocol.speedups import EMPTY_DICT, EMPTY_LIST, FastEnum


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
    """A state change, with the rule behind it."""

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


class Effects:
    """Everything one input asks for, in the order the runtime applies it.

    ``Effects(...)`` takes fields by name; two are equal when every field is. The defaults
    live on the class (the empty lists too: ``speedups.EMPTY_LIST``); the machines add to an
    effect through the ``add_*`` methods."""

    _FIELDS: ClassVar[tuple[str, ...]]

    write: list[bytes] = EMPTY_LIST  # bytes for the peer, in order
    # What receive() returns now: from a RECEIVE input, or from the input that completed the
    # message a waiting receive() is handed (docs/implementation.md#frames-through-wsproto).
    event: dict[str, Any] | None = None
    wake_app: bool = False  # a waiting receive() has something new
    reading: bool | None = None  # pause (False) or resume (True) reading; None: unchanged
    arm: dict[Timer, float] = EMPTY_DICT  # timer -> seconds from now
    cancel: list[Timer] = EMPTY_LIST
    tcp: Tcp | None = None
    transitions: list[Transition] = EMPTY_LIST  # left empty where nothing traces (speedups.effects_makers)
    status: int = 0  # an HTTP status written in answer to a WebSocket handshake
    close_code: int | None = None  # the disconnect code, when it was decided by this input
    error: BaseException | None = None  # raise into the app after applying the rest
    notes: list[Note] = EMPTY_LIST

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            if name not in self._FIELDS:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(self, name, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._FIELDS = _fields_of(cls)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Effects) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq

    def __repr__(self) -> str:
        given = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._FIELDS, self._values(), strict=True)
            if value != getattr(type(self), name)
        )
        return f"{type(self).__name__}({given})"

    # -- adding to the list- and dict-valued effects (the names the machines use)

    def add_write(self, data: bytes) -> None:
        if self.write is EMPTY_LIST:
            self.write = [data]
        else:
            self.write.append(data)

    def add_transition(self, old: Enum, new: Enum, section: str, why: str) -> None:
        """Record the change from state ``old`` to ``new``, with the rule behind it."""
        self._add("transitions", Transition(old.name, new.name, section, why))

    def add_note(self, note: Note) -> None:
        self._add("notes", note)

    def add_cancel(self, timer: Timer) -> None:
        self._add("cancel", timer)

    def _add(self, name: str, item: object) -> None:
        items = getattr(self, name)
        if items is EMPTY_LIST:
            setattr(self, name, [item])
        else:
            items.append(item)

    def arm_timer(self, timer: Timer, seconds: float) -> None:
        if self.arm is EMPTY_DICT:
            self.arm = {timer: seconds}
        else:
            self.arm[timer] = seconds


def _fields_of(cls: type) -> tuple[str, ...]:
    """List the names of the effects a class and its bases declare, in declaration order."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name in vars(klass).get("__annotations__", {}):
            if not name.startswith("_"):
                names[name] = None
    return tuple(names)


Effects._FIELDS = _fields_of(Effects)
