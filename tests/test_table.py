"""The transition-table builder shared by the machines refuses a table with two rows for
one (state, input), and a table meant to be complete that lacks one."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest

from refserver.protocol.effects import Effects, Timer
from refserver.protocol.speedups import blank
from refserver.protocol.table import Row, TableBuilder, TableMachine


class St(Enum):
    A = "a"
    B = "b"


class In(Enum):
    X = "x"


def act(machine: Any, arg: Any) -> None:
    """Nothing."""


def test_one_row_per_state_and_the_row_keeps_what_it_was_given() -> None:
    table: TableBuilder[St, In] = TableBuilder("test")
    table.add((St.A, St.B), In.X, (St.B,), act, "RFC 0 §1")
    built = table.build(complete=(St, In))
    assert built[(St.A, In.X)] == Row(St.A, In.X, (St.B,), act, "RFC 0 §1")
    assert len(built) == 2


def test_two_rows_for_one_pair_are_refused() -> None:
    table: TableBuilder[St, In] = TableBuilder("test")
    table.add((St.A,), In.X, (), act, "")
    table.add((St.A,), In.X, (), act, "")
    with pytest.raises(RuntimeError, match=r"the test table has two rows for \(A, X\)"):
        table.build()


def test_a_complete_table_names_what_is_missing() -> None:
    table: TableBuilder[St, In] = TableBuilder("test")
    table.add((St.A,), In.X, (), act, "")
    assert len(table.build()) == 1  # partial is fine when not asked to be complete
    with pytest.raises(RuntimeError, match=r"the test table has no row for \[\('B', 'X'\)\]"):
        table.build(complete=(St, In))


class TwoSteps(TableMachine[St, In, Effects]):
    """X in A lists B and then tries a second change, from B, in the same row."""

    name = "two steps"

    def __init__(self) -> None:
        self.state = St.A
        self._fx = Effects()
        self._row = TWO_STEPS[(St.A, In.X)]

    def _new_effects(self) -> Effects:
        return Effects()

    def _twice(self, _: None) -> None:
        self._enter(St.B, "first", "")
        self._enter(St.A, "second", "")


_two: TableBuilder[St, In] = TableBuilder("two steps")
_two.add((St.A,), In.X, (St.B,), TwoSteps._twice, "")
_two.add((St.B,), In.X, (St.A,), TwoSteps._twice, "")
TWO_STEPS = _two.build(complete=(St, In))
TwoSteps.rows = TWO_STEPS


def test_a_row_changes_the_state_at_most_once_and_only_from_its_own_state() -> None:
    machine = TwoSteps()
    with pytest.raises(RuntimeError, match="X in A led from B to A, which its row does not list"):
        machine._step(In.X, None)
    assert machine._fx == Effects()  # the error left no half-collected effects behind


class TestEffects:
    """What every input returns: defaults shared by all effects, which nothing can add to."""

    def test_an_input_that_asks_for_nothing_equals_the_defaults(self) -> None:
        fx = blank(Effects)()
        assert fx == Effects() == Effects(write=[], arm={})
        assert (fx.write, fx.arm, fx.event, fx.tcp) == ([], {}, None, None)
        assert repr(Effects(wake_app=True)) == "Effects(wake_app=True)"

    def test_adding_gives_the_effect_a_list_of_its_own(self) -> None:
        first, second = Effects(), Effects()
        first.add_write(b"a")
        first.add_write(b"b")
        first.arm_timer(Timer.PING, 1.0)
        assert (first.write, first.arm) == ([b"a", b"b"], {Timer.PING: 1.0})
        assert (second.write, second.arm, Effects().write) == ([], {}, [])
        assert first != second

    def test_the_shared_defaults_refuse_to_be_added_to(self) -> None:
        fx = Effects()
        with pytest.raises(TypeError, match="shared empty list"):
            fx.write.append(b"leak")
        with pytest.raises(TypeError, match="shared empty dict"):
            fx.arm[Timer.PING] = 1.0
        assert Effects().write == [] and Effects().arm == {}

    def test_an_unknown_field_is_refused(self) -> None:
        with pytest.raises(TypeError, match="has no field 'writes'"):
            Effects(writes=[b"x"])
