"""The transition tables of the protocol machines: one :class:`Row` per (state, input),
giving the states the input may lead to, the action, and the spec section behind it.

Each machine builds its table once, at import, with a :class:`TableBuilder`; building fails
at once if a (state, input) pair has two rows, or (for a complete table) none.
``docs/state-machines.md`` is generated from the tables (``refserver.statedocs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

S = TypeVar("S", bound=Enum)
I = TypeVar("I", bound=Enum)  # noqa: E741 - matches the tables' one-letter names

Action = Callable[[Any, Any], None]


@dataclass(frozen=True, slots=True)
class Row(Generic[S, I]):
    state: S
    input: I
    next: tuple[S, ...]  # the states this input may lead to (besides staying)
    action: Action  # a method of the machine, called with the input's argument
    section: str  # the spec section, RFC section or decision behind the row


class TableBuilder(Generic[S, I]):
    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[Row[S, I]] = []

    def add(self, states: Iterable[S], given: I, nxt: tuple[S, ...], action: Action, section: str) -> None:
        """One row for each of ``states``."""
        self.rows.extend(Row(state, given, nxt, action, section) for state in states)

    def build(self, complete: tuple[type[S], type[I]] | None = None) -> dict[tuple[S, I], Row[S, I]]:
        """The table; with ``complete=(States, Inputs)`` every pair must have a row."""
        table: dict[tuple[S, I], Row[S, I]] = {}
        for row in self.rows:
            key = (row.state, row.input)
            if key in table:
                raise RuntimeError(f"the {self.name} table has two rows for ({row.state.name}, {row.input.name})")
            table[key] = row
        if complete is not None:
            states, inputs = complete
            missing = [(s.name, i.name) for s in states for i in inputs if (s, i) not in table]
            if missing:
                raise RuntimeError(f"the {self.name} table has no row for {missing}")
        return table
