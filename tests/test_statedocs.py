"""docs/state-machines.md is generated from the machines' tables and must not go stale."""

from __future__ import annotations

from refserver.statedocs import DOC_PATH, machines, render


def test_the_committed_state_machine_doc_is_current() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), "run: python -m refserver.statedocs --write"


def test_every_state_and_input_of_every_machine_is_documented() -> None:
    text = render()
    for machine in machines():
        for state in machine.states:
            assert f"### {state.name}\n" in text
        for given in machine.inputs:
            assert f"| `{given.name}` |" in text
