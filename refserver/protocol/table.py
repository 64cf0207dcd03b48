"""The transition tables of the protocol machines: one :class:`Row` per (state, input),
giving exactly the states the input can lead to, the action, and the spec section behind it.

Each machine builds its table once, at import, with a :class:`TableBuilder`; building fails
at once if a (state, input) pair has two rows, or (for a complete table) none.
``docs/state-machines.md`` is generated from the tables (``refserver.statedocs``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

from refserver.protocol.effects import Effects

S = TypeVar("S", bound=Enum)
I = TypeVar("I", bound=Enum)  # noqa: E741 - matches the tables' one-letter names

Action = Callable[[Any, Any], None]


@dataclass(frozen=True, slots=True)
class Row(Generic[S, I]):
    state: S
    input: I
    next: tuple[S, ...]  # exactly the states this input can lead to from ``state`` (staying aside)
    action: Action  # a method of the machine, called with the input's argument
    section: str  # the spec section, RFC section or decision behind the row


class TableBuilder(Generic[S, I]):
    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: list[Row[S, I]] = []

    def add(self, states: Iterable[S], given: I, nxt: tuple[S, ...], action: Action, section: str) -> None:
        """Add one row for each of ``states``."""
        self.rows.extend(Row(state, given, nxt, action, section) for state in states)

    def build(self, complete: tuple[type[S], type[I]] | None = None) -> dict[tuple[S, I], Row[S, I]]:
        """Build the table; with ``complete=(States, Inputs)`` every pair must have a row."""
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


E = TypeVar("E", bound=Effects)


class TableMachine(Generic[S, I, E]):
    """The dispatch every protocol machine shares: an input finds the row of (state, input),
    the row's action runs and collects effects, and the input returns them.

    A row changes the state at most once, from its own state to one of the states it lists
    (:meth:`_enter` refuses anything else); every change goes to the effects'
    ``add_transition`` (which records it, unless nothing traces: ``speedups.effects_makers``). An
    action may hand an input it found inside its own (a frame inside the peer's bytes) to the
    row of the state it is in then (:meth:`_run`): that row's change is checked against that row.

    A machine sets ``rows`` (its table) once the table is built, and ``_new_effects`` (the
    maker of an input's effects); one that reads from a peer gives :meth:`_wants_read`, asked
    after every input."""

    name: ClassVar[str]
    rows: ClassVar[Mapping[tuple[Any, Any], Row[Any, Any]]]
    state: S
    _row: Row[S, I]
    _fx: E
    _reading: bool = True

    _new_effects: Callable[[], E]  # makes the next input's effects

    def _wants_read(self) -> bool | None:
        """Tell whether the runtime should read from the peer after this input (None: no peer)."""
        return None

    def _section_of(self, given: I) -> str:
        """Give the section of ``given``'s first row (the rows are added in the order of the states, so
        this is the rule of the input where it first can happen), for the text of a missing row."""
        return next((row.section for row in self.rows.values() if row.input is given), "")

    def section_for(self, given: I) -> str:
        """Return the rule of the row that ``given`` finds in the state the machine is in (for
        the trace line of a timer, recorded before the input is taken)."""
        row = self.rows.get((self.state, given))
        return row.section if row is not None else self._section_of(given)

    def _step(self, given: I, arg: Any) -> E:
        """Run the action of the row of (state, ``given``) with ``arg``; return the effects
        it collected (with the change of reading, if any), and start collecting the next
        input's."""
        self._row = row = self.rows.get((self.state, given)) or self._no_row(given)
        fx = self._fx
        try:
            row.action(self, arg)
        except BaseException:
            self._fx = self._new_effects()  # an error leaves no half-applied effects behind
            raise
        reading = self._wants_read()
        if reading is not None and reading is not self._reading:
            self._reading = fx.reading = reading
        self._fx = self._new_effects()
        return fx

    def _run(self, given: I, arg: Any) -> None:
        """Run the action of the row of (state, ``given``) with ``arg``, inside the row
        running now."""
        outer = self._row
        self._row = row = self.rows.get((self.state, given)) or self._no_row(given)
        try:
            row.action(self, arg)
        finally:
            self._row = outer

    def _no_row(self, given: I) -> NoReturn:
        """Raise RuntimeError: no row takes ``given`` in this state."""
        section = self._section_of(given)
        raise RuntimeError(
            f"the {self.name} machine has no row for {given.name} in {self.state.name}"
            + (f" ({section})" if section else "")
        )

    def _enter(self, new: S, why: str, section: str) -> S:
        """Change to ``new``, one of the states the current row lists, from the row's own
        state; record the change. Return the old state."""
        row, old = self._row, self.state
        if old is not row.state or new not in row.next:
            raise RuntimeError(
                f"{row.input.name} in {row.state.name} led from {old.name} to {new.name}, which its row does not list"
            )
        self.state = new
        self._fx.add_transition(old, new, section, why)
        return old
