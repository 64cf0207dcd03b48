"""The speed tricks of the sans-I/O layer, and nothing else: each says what it saves,
measured with ``benchmarks/instructions.py --valgrind`` (CPython 3.11) per 32 B WebSocket
echo and per HTTP keep-alive request. The machines are written plainly around them."""

from __future__ import annotations

from enum import Enum


class FastEnum(Enum):
    """An Enum hashed by identity (its members are singletons, so this is the same
    equality), for the states and inputs the tables are keyed by: ``Enum.__hash__`` is a
    Python-level call, made twice per table look-up."""

    __hash__ = object.__hash__
