"""Generate ``docs/state-machines.md`` from the machines' own tables.

``python -m refserver.statedocs`` prints it; ``--write`` writes the file; ``--check`` (run by
``.ci/run`` and ``tests/test_statedocs.py``) fails when the committed file is stale.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from refserver.protocol import http

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "state-machines.md"
_QUIET_ACTIONS = ("_nothing", "_discard")


@dataclass(frozen=True)
class Diagram:
    """One state diagram of a machine: the edges into ``targets`` (every edge when empty).

    ``groups`` name sets of states drawn as one box: an edge leaves the box when every
    state in it has that edge, for the same inputs."""

    title: str
    targets: frozenset[str] = frozenset()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Machine:
    title: str
    module: str
    intro: str
    states: type[Enum]
    inputs: type[Enum]
    rows: Sequence[Any]  # objects with .state, .input, .next, .action, .section
    diagrams: tuple[Diagram, ...] = (Diagram(""),)


def _names(*states: Enum) -> tuple[str, ...]:
    return tuple(state.name for state in states)


_H = http.State
_HEAD = (_H.IDLE, _H.READING_HEAD)
_PENDING = tuple(state for state in _H if state in http.RESPONSE_PENDING)
_HTTP_HEAD = ("AWAITING_HEAD", _names(*_HEAD))
_HTTP_PENDING = ("RESPONSE_PENDING", _names(*_PENDING))
# The HTTP machine has 27 arrows (pairs of states): one diagram for a request and its response, one for the
# upgrade, one for the ways a connection ends.
HTTP_DIAGRAMS = (
    Diagram(
        "A request and its response",
        frozenset(_names(*_HEAD, *_PENDING, _H.COMPLETE)),
    ),
    Diagram("The WebSocket upgrade", frozenset(_names(_H.UPGRADING, _H.UPGRADED)), (_HTTP_HEAD,)),
    Diagram("How a connection ends", frozenset(_names(_H.CLIENT_GONE, _H.CLOSED)), (_HTTP_HEAD, _HTTP_PENDING)),
)


def machines() -> list[Machine]:
    """Every protocol machine that has a transition table."""
    from refserver.protocol import lifespan, websocket

    return [
        Machine(
            "WebSocket",
            "refserver/protocol/websocket.py",
            "One WebSocket connection from the upgrade request to the end.",
            websocket.State,
            websocket.Input,
            list(websocket.TABLE.values()),
        ),
        Machine(
            "HTTP/1.1",
            "refserver/protocol/http.py",
            "One HTTP/1.1 connection and its request/response cycles.",
            http.State,
            http.Input,
            list(http.TABLE.values()),
            HTTP_DIAGRAMS,
        ),
        Machine(
            "Lifespan",
            "refserver/protocol/lifespan.py",
            "The lifespan scope: startup, serving, shutdown.",
            lifespan.State,
            lifespan.Input,
            list(lifespan.TABLE.values()),
        ),
    ]


def action_text(action: Any) -> str:
    """Give what a row's action does: the first paragraph of its docstring, whole (the
    action's name if it has none)."""
    doc = inspect.getdoc(action) or ""
    paragraph = doc.split("\n\n")[0]
    text = " ".join(paragraph.split())
    return text or getattr(action, "__name__", str(action)).strip("_").replace("_", " ")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ordered(machine: Machine) -> list[Any]:
    """Rows in the order of the state and input enums, whatever order the table was built in."""
    states = {state: i for i, state in enumerate(machine.states)}
    inputs = {given: i for i, given in enumerate(machine.inputs)}
    return sorted(machine.rows, key=lambda row: (states[row.state], inputs[row.input]))


def edges(machine: Machine) -> dict[tuple[str, str], list[str]]:
    """Every state change the table declares: (old, new) -> the inputs that make it."""
    order = {state: i for i, state in enumerate(machine.states)}
    found: dict[tuple[str, str], list[str]] = {}
    for row in _ordered(machine):
        for nxt in sorted(row.next, key=order.__getitem__):
            if nxt is not row.state:
                inputs = found.setdefault((row.state.name, nxt.name), [])
                if row.input.name not in inputs:
                    inputs.append(row.input.name)
    return found


def render_diagram(machine: Machine, diagram: Diagram) -> Iterable[str]:
    """The mermaid lines of one diagram: its edges, with grouped states drawn as one box."""
    shown = {
        (old, new): inputs
        for (old, new), inputs in edges(machine).items()
        if not diagram.targets or new in diagram.targets
    }
    lines: list[str] = []
    boxes: list[str] = []
    for name, members in diagram.groups:
        targets = {new for (old, new) in shown if old in members}
        shared = [
            new
            for new in targets
            if all(shown.get((member, new)) == shown.get((members[0], new)) for member in members)
        ]
        if not shared:
            continue
        boxes.append(name)
        lines.append(f"    state {name} {{")
        lines.extend(f"        {member}" for member in members)
        lines.append("    }")
        for new in sorted(shared, key=[state.name for state in machine.states].index):
            inputs = shown[(members[0], new)]
            for member in members:
                del shown[(member, new)]
            shown[(name, new)] = inputs
    first = next(iter(machine.states)).name
    yield "```mermaid"
    yield "stateDiagram-v2"
    if not diagram.targets or first in diagram.targets or any(old == first for old, _ in shown):
        yield f"    [*] --> {first}"
    yield from lines
    order = [state.name for state in machine.states]
    position = {name: order.index(members[0]) - 0.5 for name, members in diagram.groups}

    def rank(edge: tuple[str, str]) -> tuple[float, int]:
        old, new = edge
        return (position[old] if old in position else order.index(old), order.index(new))

    for old, new in sorted(shown, key=rank):
        yield f"    {old} --> {new}: {', '.join(shown[(old, new)])}"
    yield "```"
    if boxes:
        yield ""
        for name, members in diagram.groups:
            if name in boxes:
                listed = ", ".join(f"`{member}`" for member in members)
                yield f"- `{name}` is {listed}: an arrow from it leaves each of them, on the same inputs."


def render_machine(machine: Machine) -> Iterable[str]:
    rows_in_order = _ordered(machine)
    order = {state: i for i, state in enumerate(machine.states)}
    yield f"## {machine.title}"
    yield ""
    yield f"{machine.intro} Source: `{machine.module}` (`TABLE`)."
    yield ""
    yield "| state | meaning |"
    yield "|---|---|"
    for state in machine.states:
        yield f"| `{state.name}` | {_cell(str(state.value))} |"
    yield ""
    yield "| input | meaning |"
    yield "|---|---|"
    for given in machine.inputs:
        yield f"| `{given.name}` | {_cell(str(given.value))} |"
    yield ""
    for diagram in machine.diagrams:
        if diagram.title:
            yield f"**{diagram.title}**"
            yield ""
        yield from render_diagram(machine, diagram)
        yield ""
    for state in machine.states:
        rows = [r for r in rows_in_order if r.state is state]
        yield f"### {state.name}"
        yield ""
        yield "| input | next state | what happens | rule |"
        yield "|---|---|---|---|"
        quiet: list[str] = []
        for row in rows:
            name = getattr(row.action, "__name__", "")
            if name in _QUIET_ACTIONS:
                quiet.append(row.input.name)
                continue
            nxt = ", ".join(f"`{n.name}`" for n in sorted(row.next, key=order.__getitem__) if n is not state)
            nxt = nxt or "(same)"
            yield f"| `{row.input.name}` | {nxt} | {_cell(action_text(row.action))} | {_cell(row.section)} |"
        yield ""
        if quiet:
            yield "No effect: " + ", ".join(f"`{q}`" for q in quiet) + "."
            yield ""


def render() -> str:
    lines = [
        "# State machines",
        "",
        "Generated by `python -m refserver.statedocs --write` from the transition tables in",
        "`refserver/protocol/`; `python -m refserver.statedocs --check` (and `tests/test_statedocs.py`)",
        "fails when this file is stale. Every (state, input) pair has exactly one row; the runtime",
        "applies the effects each row returns.",
        "",
    ]
    for machine in machines():
        lines.extend(render_machine(machine))
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refserver.statedocs", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"write {DOC_PATH.name} instead of printing it")
    action.add_argument(
        "--check", action="store_true", help=f"exit 1, saying so, if {DOC_PATH.name} is not what the tables give"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if DOC_PATH.read_text(encoding="utf-8") == text:
            return 0
        sys.stderr.write(f"{DOC_PATH} is stale: run python -m refserver.statedocs --write\n")
        return 1
    if args.write:
        DOC_PATH.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
