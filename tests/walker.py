"""Walk a table machine through every input in every situation it can reach, and compare
the state changes it makes with the ones its table declares.

A walk starts from a fresh machine and goes breadth first. A machine's *input generator*
names the inputs it can be given now (a label and a function applying the input to a
machine); its *key* says which situations count as the same (the state and the data that
decides what an input does). Every new situation is tried with every input its generator
offers, each on a fresh machine that replays the inputs that reached the situation (the
machines are deterministic). A state change is seen where it is made, in
``TableMachine._enter``, with the row that made it.

    result = walk(new_machine, inputs_of, key_of, max_depth=10, expected=(MyError,))
    assert result.errors == [] and result.complete
    assert result.undeclared == set() and result.untaken == set()
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from refserver.protocol.table import Row, TableMachine

M = TypeVar("M", bound=TableMachine[Any, Any, Any])

Edge = tuple[str, str, str]  # (state, input, next state), by name
Inputs = Callable[[M], Mapping[str, Callable[[M], object]]]


def declared_edges(rows: Iterable[Row[Any, Any]]) -> set[Edge]:
    """Every (state, input, next state) a table declares, staying put aside."""
    return {(row.state.name, row.input.name, new.name) for row in rows for new in row.next if new is not row.state}


@dataclass
class Walk(Generic[M]):
    declared: set[Edge]
    taken: set[Edge] = field(default_factory=set)
    situations: int = 0  # distinct keys reached
    inputs_applied: int = 0
    complete: bool = False  # every situation reached was tried with every input
    errors: list[str] = field(default_factory=list)  # unexpected exceptions, with the inputs that led to them

    @property
    def undeclared(self) -> set[Edge]:
        return self.taken - self.declared

    @property
    def untaken(self) -> set[Edge]:
        return self.declared - self.taken


@contextmanager
def recording(taken: set[Edge]) -> Iterator[None]:
    """Note every state change, with the row that made it, as it is made."""
    original = TableMachine._enter

    def enter(machine: Any, new: Any, why: str, section: str) -> Any:
        row = machine._row
        where = row.state.name if machine.state is row.state else f"{machine.state.name} in the row of {row.state.name}"
        taken.add((where, row.input.name, new.name))
        return original(machine, new, why, section)

    TableMachine._enter = enter  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        TableMachine._enter = original  # type: ignore[method-assign]


def walk(
    start: Callable[[], M],
    inputs: Inputs[M],
    key: Callable[[M], Hashable],
    *,
    rows: Iterable[Row[Any, Any]],
    max_depth: int,
    expected: tuple[type[BaseException], ...] = (),
) -> Walk[M]:
    """Walk every input in every situation reachable within ``max_depth`` inputs.
    Exceptions of the ``expected`` types (the app's misuse, for instance) are answers;
    any other is recorded in ``Walk.errors``."""
    result: Walk[M] = Walk(declared_edges(rows))

    def replay(path: tuple[str, ...]) -> M | None:
        machine = start()
        for i, label in enumerate(path):
            offered = inputs(machine)
            result.inputs_applied += 1
            try:
                offered[label](machine)
            except expected:
                pass
            except Exception as exc:
                if i == len(path) - 1:
                    result.errors.append(f"{' -> '.join(path)}: {type(exc).__name__}: {exc}")
                return None
        return machine

    with recording(result.taken):
        first = start()
        seen = {key(first)}
        frontier: list[tuple[tuple[str, ...], M]] = [((), first)]
        for _ in range(max_depth):
            following: list[tuple[tuple[str, ...], M]] = []
            for path, machine in frontier:
                for label in inputs(machine):
                    reached = replay((*path, label))
                    if reached is None:
                        continue
                    situation = key(reached)
                    if situation not in seen:
                        seen.add(situation)
                        following.append(((*path, label), reached))
            frontier = following
            if not frontier:
                result.complete = True
                break
        result.situations = len(seen)
    return result
