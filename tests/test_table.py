"""The transition-table builder shared by the machines refuses a table with two rows for
one (state, input), and a table meant to be complete that lacks one."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest

from refserver.protocol.table import Row, TableBuilder


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
