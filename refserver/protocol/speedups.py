"""The speed tricks of the sans-I/O layer, and nothing else. The machines are written
plainly around them; each trick says what it saves, counted with ``python
benchmarks/instructions.py --valgrind`` on CPython 3.11 (a 32 B WebSocket echo costs about
177,000 instructions with all of them, an HTTP keep-alive request about 491,000)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum, EnumType
from functools import partial
from operator import attrgetter
from typing import Any, NoReturn, TypeVar

import h11

from refserver.protocol.responses import Headers, sendable_head
from refserver.spec import messages

T = TypeVar("T")


# The metaclass of an enum once it is made: EnumType without its ``__getattr__`` (Python 3.11's
# keeps it for member names that are not in the class's dict; every member is). A class whose
# metaclass has a ``__getattr__`` looks every attribute up through a Python-level call, so each
# ``State.X`` in a machine costs about 600 instructions more than a plain class attribute.
# EnumType's methods that call ``super()`` (making an enum, setting or deleting a class
# attribute) are left out: an enum made is not changed.
_MADE_ENUM_TYPE = type(
    "EnumType",
    (type,),
    {
        name: value
        for name, value in vars(EnumType).items()
        if name not in ("__getattr__", "__new__", "__setattr__", "__delattr__", "__dir__", "__dict__", "__weakref__")
    },
)


class _FastEnumType(EnumType):
    def __new__(metacls, *args: Any, **kwargs: Any) -> Any:
        cls = super().__new__(metacls, *args, **kwargs)
        if cls._member_names_:
            cls.__class__ = _MADE_ENUM_TYPE
        return cls


class FastEnum(Enum, metaclass=_FastEnumType):
    """An Enum hashed by identity (its members are singletons, so equality is unchanged).
    ``Enum.__hash__`` is a Python-level call, and every table look-up hashes a state and an
    input: this saves 13,900 instructions per echo and 16,600 per HTTP request. Once made, its
    class attributes are looked up as any class's (``_MADE_ENUM_TYPE``): 19,000 instructions per
    HTTP request (567,078 -> 548,114). The effects' ``Tcp`` and ``Timer`` and the WebSocket
    machine's ``Receiving`` too: 25,400 instructions per WebSocket connection (``--workload
    churn``: 1,158,779 -> 1,133,425)."""

    __hash__ = object.__hash__


class _EmptyList(list[Any]):
    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an effect's shared empty list was added to; use the Effects.add_* methods")

    append = extend = insert = __setitem__ = __delitem__ = __iadd__ = _refuse


class _EmptyDict(dict[Any, Any]):
    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an effect's shared empty dict was added to; use Effects.arm_timer")

    __setitem__ = update = setdefault = __ior__ = _refuse


# The defaults of Effects' list and dict fields, one of each shared by every Effects (on the
# class), so that ``blank`` makes an Effects without running Python code or allocating a list
# the input does not fill. They refuse to be added to (``Effects.add_*`` gives an effect a
# list of its own), so no effect can leak into another. With ``blank``: 7,200 instructions
# per echo and 7,000 per HTTP request, against an ``Effects.__init__`` making its own lists.
EMPTY_LIST: list[Any] = _EmptyList()
EMPTY_DICT: dict[Any, Any] = _EmptyDict()


def blank(cls: type[T]) -> Callable[[], T]:
    """Give a maker of ``cls()`` with every default: ``object.__new__``, as there is nothing to set."""
    return partial(object.__new__, cls)


def effects_makers(effects: type[T]) -> dict[bool, Callable[[], T]]:
    """Give the makers of an input's ``effects()`` (:func:`blank`), by whether anything reads
    the state changes (a trace). For a machine nobody traces, the effects are of a subclass
    whose ``add_transition`` records nothing. The record (a ``Transition`` with its states'
    names) and the runtime's pass over it cost 38,600 of 529,800 instructions per HTTP
    keep-alive request, and 19,300 of 1,116,600 per WebSocket connection (open, one echo, close:
    ``--workload churn``). Called once per effects class, at import."""

    def add_transition(self: object, old: Enum, new: Enum, section: str, why: str) -> None:
        """Record nothing: nothing reads the state changes."""

    untraced = type(f"Untraced{effects.__name__}", (effects,), {"add_transition": add_transition})
    return {True: blank(effects), False: blank(untraced)}


# The names of the effects an input set, as the keys of its effects' instance dict: an
# ``Effects`` holds its defaults on the class, so a field is in the dict only once an input set
# it (even to its default value, which is then applied). The runtime tests these keys instead of
# reading each field through the class, a look-up the interpreter cannot specialize: 2,800
# instructions per HTTP request (519,306 -> 516,538).
effects_set: Callable[[object], dict[str, Any]] = attrgetter("__dict__")


def message_type(message: object) -> str:
    """Give a message's type as :func:`messages.message_type` does, without its
    ``isinstance(message, Mapping)`` (an ABC check, which calls Python code) for a dict with a
    str ``type``: 1,600 instructions per echo."""
    if type(message) is dict:
        kind = message.get("type")
        if type(kind) is str:
            return kind
    return messages.message_type(message)


def validate_response_start(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """Validate an ``http.response.start`` as :func:`messages.validate` does, without its ABC checks
    (``Mapping``, ``Iterator``: Python-level calls) for the usual shape: a dict with an int
    status of 200-599, no trailers, and headers in a list or tuple of (bytes, bytes) pairs
    with lower-case names. Anything else goes to :func:`messages.validate`. With
    :func:`message_type` in the HTTP machine: 15,100 instructions per HTTP request
    (548,114 -> 533,013)."""
    if type(message) is dict:
        status = message.get("status")
        headers = message.get("headers", ())
        if (
            type(status) is int
            and 200 <= status <= 599
            and (type(headers) is list or type(headers) is tuple)
            and message.get("trailers", False) is False
        ):
            for item in headers:
                if (type(item) is not tuple and type(item) is not list) or len(item) != 2:
                    break
                name, value = item
                if type(name) is not bytes or type(value) is not bytes or name != name.lower() or name[:1] == b":":
                    break
            else:
                return message
    return messages.validate(message, "http.response.start")


def switching_protocols(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Make the 101 response exactly as h11 writes it, for headers the server made itself (no
    subprotocol, no app headers: nothing h11 would need to check). h11's
    ``InformationalResponse`` validates every header and its ``Connection.send`` runs its state
    machine, which nothing reads after the handshake: 76,800 instructions per WebSocket
    connection (1,235,559 -> 1,158,779)."""
    return b"HTTP/1.1 101 \r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"


class CheckedHeads:
    """The response heads one connection has built, by (status, headers), for its next
    responses (a cache: it holds no state of the connection;
    docs/implementation.md#checked-heads). h11's check of a head (a regular expression per
    name and value) is the costliest step of a small response: the cache saves 57,600 of
    567,900 instructions per HTTP keep-alive request."""

    KEPT = 16  # at most this many heads; then the cache starts again

    def __init__(self) -> None:
        self._heads: dict[tuple[int, tuple[tuple[bytes, bytes], ...]], h11.Response] = {}

    def head(self, status: int, headers: Headers, message_type: str, section: str) -> h11.Response:
        """Give the checked head, as :func:`sendable_head` does, built once per (status,
        headers) that can be a key.

        Raises:
            ASGIProtocolError: h11 refuses the head.
        """
        try:
            key = (status, tuple(headers))
            head = self._heads.get(key)
        except TypeError:  # [name, value] lists
            return sendable_head(status, headers, message_type, section)
        if head is None:
            head = sendable_head(status, headers, message_type, section)
            if len(self._heads) >= self.KEPT:
                self._heads.clear()
            self._heads[key] = head
        return head
