"""What a protocol machine asks the runtime to do: the one output type of every input.

The machines (``protocol.websocket``, ``protocol.http``, ``protocol.lifespan``) never
await, never touch a socket and never read the clock. Every input returns an
:class:`Effects`; the runtime applies it in one function, which is also where the trace
records every step, so nothing can change state without a record.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from functools import partial
from typing import Any, ClassVar, NamedTuple, NoReturn, TypeVar


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


class _Unfilled(list[Any]):
    """The empty list every list-valued effect starts as, one shared by all effects: an input
    that asks for nothing of a kind allocates nothing for it. It refuses to be added to
    (machines add through the ``add_*`` methods of :class:`Effects`, which give the effect a
    list of its own), so that no effect can ever leak into another."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an effect's shared empty list was added to; use Effects.add_* instead")

    append = extend = insert = __setitem__ = __delitem__ = __iadd__ = _refuse


class _UnfilledDict(dict[Any, Any]):
    """:class:`_Unfilled`, for the dict-valued effect (``arm``)."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an effect's shared empty dict was added to; use Effects.arm_timer instead")

    __setitem__ = update = setdefault = __ior__ = _refuse


UNFILLED: list[Any] = _Unfilled()
UNFILLED_DICT: dict[Any, Any] = _UnfilledDict()


class Effects:
    """Everything one input asks for, in the order the runtime applies it.

    Every input makes one, so the defaults live on the class and an input pays only for the
    effects it asks for (a dataclass would set every field of every one). ``Effects(...)``
    takes fields by name; two are equal when every field is."""

    _FIELDS: ClassVar[tuple[str, ...]]

    write: list[bytes] = UNFILLED  # bytes for the peer, in order
    # What receive() returns now: from a RECEIVE input, or from the input that completed the
    # message a waiting receive() is handed (docs/implementation.md#frames-through-wsproto).
    event: dict[str, Any] | None = None
    wake_app: bool = False  # a waiting receive() has something new
    reading: bool | None = None  # pause (False) or resume (True) reading; None: unchanged
    arm: dict[Timer, float] = UNFILLED_DICT  # timer -> seconds from now
    cancel: list[Timer] = UNFILLED
    tcp: Tcp | None = None
    transitions: list[Transition] = UNFILLED  # empty where nothing traces (HTTPMachine.recording)
    status: int = 0  # an HTTP status written in answer to a WebSocket handshake
    close_code: int | None = None  # the disconnect code, when it was decided by this input
    error: BaseException | None = None  # raise into the app after applying the rest
    notes: list[Note] = UNFILLED

    def __init__(self, **fields: Any) -> None:
        if fields:
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

    # -- adding to the list- and dict-valued effects

    def add_write(self, data: bytes) -> None:
        if self.write is UNFILLED:
            self.write = [data]
        else:
            self.write.append(data)

    def add_transition(self, step: Transition) -> None:
        self._append("transitions", step)

    def add_note(self, note: Note) -> None:
        self._append("notes", note)

    def add_cancel(self, timer: Timer) -> None:
        self._append("cancel", timer)

    def _append(self, name: str, item: object) -> None:
        """(``add_write``, for the list-valued effects that are rarely added to.)"""
        items = getattr(self, name)
        if items is UNFILLED:
            setattr(self, name, [item])
        else:
            items.append(item)

    def arm_timer(self, timer: Timer, seconds: float) -> None:
        if self.arm is UNFILLED_DICT:
            self.arm = {timer: seconds}
        else:
            self.arm[timer] = seconds


def _fields_of(cls: type) -> tuple[str, ...]:
    """The names of the effects a class and its bases declare, in declaration order."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name in vars(klass).get("__annotations__", {}):
            if not name.startswith("_"):
                names[name] = None
    return tuple(names)


Effects._FIELDS = _fields_of(Effects)


E = TypeVar("E", bound=Effects)


def blank(cls: type[E]) -> Callable[[], E]:
    """A maker of ``cls()`` with every default that runs no Python code (``object.__new__``:
    there is nothing to set), for the machines, which make one per input."""
    return partial(object.__new__, cls)
