"""Every test that docs/decisions.md names exists, so a decision cannot outlive what pins it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w:\[\].-]+))?`")


def test_every_cited_test_exists() -> None:
    text = (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8")
    missing = []
    for match in CITED.finditer(text):
        path, name = match.group(1), match.group(2)
        source = ROOT / path
        if not source.exists():
            missing.append(path)
            continue
        if name:
            last = name.split("::")[-1].split("[")[0]
            if not re.search(rf"\b(def|class) {re.escape(last)}\b", source.read_text(encoding="utf-8")):
                missing.append(f"{path}::{name}")
    assert missing == []


def test_decisions_are_numbered_in_order() -> None:
    text = (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8")
    numbers = [int(n) for n in re.findall(r"^### (\d+)\. ", text, re.M)]
    assert numbers == list(range(1, len(numbers) + 1))
