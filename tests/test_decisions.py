"""Every test that docs/decisions.md names exists, so a decision cannot outlive what pins it;
every decision and implementation note has one stable anchor, and every citation of one, in any
tracked file, names an anchor that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITED = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w:\[\].-]+))?`")
DOCS = ("decisions.md", "implementation.md")
ANCHOR = re.compile(r'^<a id="([a-z0-9]+(?:-[a-z0-9]+)*)"></a>\n### (?=\S)', re.M)
# "docs/decisions.md#shutdown-1001, #lost-connection-1006", "implementation.md#http-fairness-count"
CITATION = re.compile(r"\b(decisions|implementation)\.md#([a-z0-9-]+)((?:,? (?:and )?#[a-z0-9-]+)*)")
MORE = re.compile(r"#([a-z0-9-]+)")
# The numbered form these anchors replaced: "docs/decisions.md #N", "decision #N" (N a number).
BY_NUMBER = re.compile(r"\bdecisions?(?:\.md)?\s+#\d")
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()


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


def anchors(name: str) -> list[str]:
    return ANCHOR.findall((ROOT / "docs" / name).read_text(encoding="utf-8"))


def test_every_entry_has_one_anchor_and_no_number() -> None:
    for name in DOCS:
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        headings = re.findall(r"^### ", text, re.M)
        found = anchors(name)
        assert len(found) == len(headings) > 0, name
        assert not re.search(r"^### \d", text, re.M), name
    every = anchors("decisions.md") + anchors("implementation.md")
    assert len(every) == len(set(every))


def tracked_texts() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    paths = [p for p in out.decode().split("\0") if p.endswith((".py", ".md", ".txt", ".toml", ".json"))]
    return [p for p in paths if p != THIS and (ROOT / p).exists()]


def test_every_cited_anchor_exists_and_no_decision_is_cited_by_number() -> None:
    known = {name.removesuffix(".md"): set(anchors(name)) for name in DOCS}
    cited = 0
    wrong = []
    for path in tracked_texts():
        text = re.sub(r"\s*\n\s*(?:#\s*)?", " ", (ROOT / path).read_text(encoding="utf-8"))
        for match in CITATION.finditer(text):
            for slug in (match.group(2), *MORE.findall(match.group(3))):
                cited += 1
                if slug not in known[match.group(1)]:
                    wrong.append(f"{path}: {match.group(1)}.md#{slug}")
        wrong += [f"{path}: by number: {m.group(0)!r}" for m in BY_NUMBER.finditer(text)]
        if path.startswith("docs/") and path.removeprefix("docs/") in DOCS:
            here = path.removeprefix("docs/").removesuffix(".md")
            wrong += [f"{path}: by number: #{n}" for n in re.findall(r"(?<![\w/#&])#(\d+)\b", text)]
            for slug in re.findall(r"(?<![\w/#&\"])#([a-z][a-z0-9-]+)\b", text):
                cited += 1
                if slug not in known[here]:
                    wrong.append(f"{path}: #{slug}")
    assert cited > 150
    assert wrong == []
