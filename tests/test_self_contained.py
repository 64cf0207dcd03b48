"""Nothing in the repository cites a document outside it.

Code, docs and tests cite the ASGI spec by its own section headings, RFCs by section, and
refserver's judgement calls by anchor, as ``docs/decisions.md#http-start-held``. Labels of notes that live outside
the repository (an ambiguity list's "A19", a peer survey's "(c) 21" or "(c21)", a digest,
a design note) and issue or pull-request numbers are not citations a reader can follow.
This test greps every tracked file for them and names each hit as file:line.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# (name, pattern) pairs; each pattern is one way the old outside references were written.
OLD_REFERENCES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # "A19", "digest A19", "decisions.md A1"; not a percent-escape such as "%C3%A9".
    ("ambiguity label", re.compile(r"(?<![%\w])A[0-9]{1,2}\b")),
    ("digest", re.compile(r"\bdigest\b(?!\s*\()", re.IGNORECASE)),
    ("peer survey", re.compile(r"peer-behaviour", re.IGNORECASE)),
    ("peer survey label", re.compile(r"\(c\)\s*[0-9]|\(c[0-9]{1,2}\)|\[c[0-9]{1,2}\]|section \(c\)")),
    ("issue number", re.compile(r"\b(issue|pr|pull request)s?\s*#?[0-9]+\b", re.IGNORECASE)),
    (
        "tracker number",
        re.compile(r"\b(asgiref|uvicorn|hypercorn|daphne|granian|wsproto|websockets|starlette)\s?#[0-9]+", re.I),
    ),
    ("outside file", re.compile(r"\.\./shared|\bshared/[\w-]+\.md|\bdesign\.md\b")),
)


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
    ).stdout.decode()
    return sorted(p for p in out.split("\0") if p)


def hits_in(path: str) -> list[str]:
    try:
        text = (ROOT / path).read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return []  # binary files, and tracked files deleted in the work tree
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, pattern in OLD_REFERENCES:
            m = pattern.search(line)
            if m:
                found.append(f"{path}:{number}: {name} {m.group(0)!r}: {line.strip()[:100]}")
    return found


def all_hits() -> dict[str, list[str]]:
    return {p: h for p in tracked_files() if p != THIS and (h := hits_in(p))}


def test_the_repository_has_files_to_check() -> None:
    files = tracked_files()
    assert {"README.md", "docs/decisions.md", "docs/conformance.md", "refserver/__init__.py"} <= set(files)


def test_no_reference_outside_the_repository() -> None:
    hits = [h for path, found in all_hits().items() for h in found]
    assert hits == [], "references to documents outside the repository:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "line",
    [
        "see docs/decisions.md A19",
        "(lifespan spec 2.0 is silent; digest A19)",
        "Rests on: RFC 6455 §7.4.1; asgi-spec-digest A20; peer-behaviour (c) 34.",
        "| [`ws.loss.rst`](#wslossrst) (c1) | MUST |",
        "The page-reload report (issue 3)",
        "pinned by asgiref#364",
        "The import direction of design.md",
        "scenarios of ../shared/peer-behaviour.md",
    ],
)
def test_each_old_form_is_caught(line: str) -> None:
    assert any(p.search(line) for _, p in OLD_REFERENCES), line


@pytest.mark.parametrize(
    "line",
    [
        'www spec 2.5, "Disconnect - receive event"',
        "docs/decisions.md#disconnect-repeats",
        'client=(c_request("GET", suffix="/caf%C3%A9?q=a%20b"), c_wait_responses(1)),',
        "return base64.b64encode(hashlib.sha1(key + _GUID).digest())",
        "customs = [custom_target(c) for c in commands]",
        "RFC 6455 §7.1.5",
    ],
)
def test_ordinary_text_is_not_caught(line: str) -> None:
    assert not any(p.search(line) for _, p in OLD_REFERENCES), line
