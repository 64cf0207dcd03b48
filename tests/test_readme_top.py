"""What a newcomer meets first: the README's first screen says what refserver is and for whom,
then the two commands (.ci/run runs the second verbatim); the "www spec" of the trace lines is
explained and linked where it first appears; the package's namespace is its API."""

from __future__ import annotations

import types
from pathlib import Path

import refserver

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCREEN_LINES = 30  # a first screen

RUN = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/refserver examples.app:app"
TEST = "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest"


def test_the_first_screen_says_what_refserver_is_and_for_whom_then_the_two_commands() -> None:
    screen = "\n".join(README.splitlines()[:SCREEN_LINES])
    before_commands = screen[: screen.index("```sh")]
    assert "refserver is a pure-Python ASGI server" in before_commands
    assert "It is for people" in before_commands
    assert f"```sh\n{RUN}\n```" in screen
    assert f"```sh\n{TEST}\n```" in screen
    assert screen.index(RUN) < screen.index(TEST)


def test_the_ci_script_runs_the_readmes_second_command_verbatim() -> None:
    assert TEST in (ROOT / ".ci" / "run").read_text()


def test_www_spec_is_explained_and_linked_before_its_first_use() -> None:
    for path in ("README.md", "docs/testing.md"):
        text = (ROOT / path).read_text(encoding="utf-8")
        first = text.index("www spec")
        explained = text[: text.index("\n\n", first)]  # up to the end of that paragraph
        assert "https://asgi.readthedocs.io/en/latest/specs/www.html" in explained, path


def test_the_package_namespace_is_its_api_and_its_submodules() -> None:
    public = {name for name in vars(refserver) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(refserver, name), types.ModuleType)}
    assert public - modules == set(refserver.__all__) - {"__version__"}
