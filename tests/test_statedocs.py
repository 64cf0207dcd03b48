"""docs/state-machines.md is generated from the machines' tables and must not go stale; its
cells say what happens in full sentences, and its diagrams show exactly the tables' edges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refserver import statedocs
from refserver.statedocs import Machine, edges, machines, render

# The machines whose rows these checks hold to full sentences and exact next states.
_SENTENCE_CHECKED = ("HTTP/1.1", "Lifespan")


def test_the_committed_state_machine_doc_is_current() -> None:
    assert statedocs.main(["--check"]) == 0, "run: python -m refserver.statedocs --write"


def test_every_state_and_input_of_every_machine_is_documented() -> None:
    text = render()
    for machine in machines():
        for state in machine.states:
            assert f"### {state.name}\n" in text
        for given in machine.inputs:
            assert f"| `{given.name}` |" in text


def _section(machine: Machine) -> str:
    """The part of the rendered doc about one machine."""
    text = render()
    start = text.index(f"## {machine.title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def is_full_sentence(text: str) -> bool:
    """One or more sentences in plain words: each starts with a capital letter and ends with a
    full stop, together they have a verb's worth of words (at least three), and no source
    markup (a docstring's ``literal`` or :meth:`role`) stands in for words."""
    sentences = re.split(r"(?<=\.) (?=[A-Z])", text)
    plain = not re.search(r"``|:(meth|class|func|attr):", text)
    return plain and len(text.split()) >= 3 and all(re.fullmatch(r"[A-Z].*[.]", sentence) for sentence in sentences)


@pytest.mark.parametrize(
    "cell",
    [
        "misuse",
        "gone in cycle",
        "ended complete",
        "Parse the request head. A whole head starts the app, a WebSocket upgrade or a",
        "Close quietly: no request arrived in time",
        "Echo the peer's close frame, then end as :meth:`_peer_closed` does.",
        "Hand the file to the runtime to send (``HTTPEffects.file``).",
    ],
)
def test_the_sentence_check_rejects_names_and_cut_sentences(cell: str) -> None:
    assert not is_full_sentence(cell)


@pytest.mark.parametrize("title", _SENTENCE_CHECKED)
def test_every_what_happens_cell_is_a_full_sentence(title: str) -> None:
    [machine] = [m for m in machines() if m.title == title]
    cells = []
    for line in _section(machine).splitlines():
        columns = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(columns) == 4 and columns[0].startswith("`"):  # | input | next | what happens | rule |
            cells.append(columns[2])
    assert cells
    assert [cell for cell in cells if not is_full_sentence(cell)] == []


def _diagram_edges(section: str) -> list[tuple[str, str, str]]:
    """Every (old, new, input) the section's diagrams show, a box's arrows expanded to its states."""
    shown: list[tuple[str, str, str]] = []
    for block in re.findall(r"```mermaid\n(.*?)```", section, re.S):
        boxes = {name: body.split() for name, body in re.findall(r"state (\w+) \{\n(.*?)\n\s*\}", block, re.S)}
        for old, new, inputs in re.findall(r"^\s*(\w+) --> (\w+): (.*)$", block, re.M):
            for state in boxes.get(old, [old]):
                shown.extend((state, new, given) for given in inputs.split(", "))
    return shown


@pytest.mark.parametrize("machine", machines(), ids=lambda m: m.title)
def test_the_diagrams_show_each_of_the_tables_edges_once(machine: Machine) -> None:
    declared = sorted((old, new, given) for (old, new), inputs in edges(machine).items() for given in inputs)
    # Straight from the rows, not through the renderer's own helper:
    from_rows = sorted(
        {(row.state.name, nxt.name, row.input.name) for row in machine.rows for nxt in row.next if nxt is not row.state}
    )
    assert declared == from_rows
    assert sorted(_diagram_edges(_section(machine))) == declared


@pytest.mark.parametrize("title", _SENTENCE_CHECKED)
def test_no_row_lists_the_state_it_is_in_as_a_next_state(title: str) -> None:
    [machine] = [m for m in machines() if m.title == title]
    assert [row for row in machine.rows if row.state in row.next] == []


def test_check_exits_1_on_a_stale_doc_and_0_on_a_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "state-machines.md"
    monkeypatch.setattr(statedocs, "DOC_PATH", doc)
    doc.write_text(render().replace("IDLE", "IDLE ", 1), encoding="utf-8")
    assert statedocs.main(["--check"]) == 1
    assert "is stale: run python -m refserver.statedocs --write" in capsys.readouterr().err
    assert statedocs.main(["--write"]) == 0
    assert statedocs.main(["--check"]) == 0
