"""docs/guide.md is generated from docs/guide.template.md by running conformance scenarios on
refserver, and must not go stale. The generator runs on asyncio only (a few seconds)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from refserver.conformance import guide
from refserver.conformance.guide import (
    COLLAPSED,
    DOC_PATH,
    MATRIX_PATH,
    TEMPLATE_PATH,
    GuideError,
    directives,
    read_matrix,
    render,
    render_matrix,
    render_trace,
)
from refserver.spec import headings
from refserver.trace import TraceRecord

CHAPTERS = (
    "The handshake and the scope",
    "Accept and subprotocols",
    "Denial",
    "Messages and fragmentation",
    "Every way a connection ends",
    "Closed sends and `OSError`",
    "Backpressure",
    "Shutdown",
    "HTTP disconnects",
    "Lifespan",
)


def test_the_committed_guide_is_current() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(), "run: python -m refserver.conformance.guide --write"


class TestTemplate:
    """What every chapter holds: a real trace, the spec, a decision, the matrix."""

    def test_every_chapter_is_there_in_order(self) -> None:
        headings = re.findall(r"^## \d+\. (.+)$", TEMPLATE_PATH.read_text(encoding="utf-8"), re.M)
        assert tuple(headings) == CHAPTERS

    def test_every_chapter_shows_a_trace_cites_a_decision_and_quotes_the_matrix(self) -> None:
        chapters = re.split(r"^## \d+\. ", TEMPLATE_PATH.read_text(encoding="utf-8"), flags=re.M)[1:]
        assert len(chapters) == len(CHAPTERS)
        for title, chapter in zip(CHAPTERS, chapters, strict=True):
            assert "{{trace " in chapter, title
            assert "{{matrix " in chapter, title
            assert re.search(r"decisions\.md#[a-z0-9-]+", chapter), title
            assert headings.CITATION.search(re.sub(r"\s+", " ", chapter)) or re.search(r"RFC \d+ §", chapter), title

    def test_every_traced_scenario_is_introduced_and_quoted(self) -> None:
        found = directives(TEMPLATE_PATH.read_text(encoding="utf-8"))
        kinds: dict[str, set[str]] = {}
        for _, directive in found:
            kinds.setdefault(directive.scenario_id, set()).add(directive.kind)
        assert kinds
        for scenario_id, seen in kinds.items():
            assert seen == {"scenario", "trace", "matrix"}, scenario_id

    def test_cited_decisions_exist(self) -> None:
        decisions = (DOC_PATH.parent / "decisions.md").read_text(encoding="utf-8")
        anchors = set(re.findall(r'^<a id="([a-z0-9-]+)"></a>$', decisions, re.M))
        template = re.sub(r"\s+", " ", TEMPLATE_PATH.read_text(encoding="utf-8"))
        cited = re.findall(r"decisions\.md#([a-z0-9-]+)((?:,? (?:and )?#[a-z0-9-]+)*)", template)
        flat = {slug for first, rest in cited for slug in (first, *re.findall(r"#([a-z0-9-]+)", rest))}
        assert len(flat) > 10
        assert flat <= anchors

    def test_an_unknown_option_is_refused(self) -> None:
        with pytest.raises(GuideError, match="unknown option"):
            directives("{{matrix ws.close.empty collapse}}\n")


class TestRendering:
    def test_a_run_of_identical_lines_is_collapsed_only_when_asked(self) -> None:
        send = TraceRecord(0.0, "c1", "ws", "send", "OPEN", "S", message={"type": "websocket.send", "bytes": b"x"})
        gone = TraceRecord(0.0, "c1", "ws", "state", "CLOSED", "R", "gone", None, "OPEN")
        records = [send, send, send, gone]
        assert render_trace(records, ("ws",), collapse=True).splitlines() == [
            "```text",
            "c1 ws send websocket.send bytes=<1 bytes> [OPEN] (S)",
            COLLAPSED,
            "c1 ws state OPEN -> CLOSED (R: gone)",
            "```",
        ]
        assert len(render_trace(records, ("ws",), collapse=False).splitlines()) == 6

    def test_a_trace_without_records_in_the_chosen_scopes_is_an_error(self) -> None:
        record = TraceRecord(0.0, "lifespan", "lifespan", "recv", "STARTING", "S", message={"type": "x"})
        with pytest.raises(GuideError):
            render_trace([record], ("ws",), collapse=False)

    def test_matrix_cells_are_quoted_from_the_conformance_doc(self) -> None:
        matrix = read_matrix(MATRIX_PATH.read_text(encoding="utf-8"))
        assert matrix.targets[:2] == ("refserver", "refserver-trio")
        assert matrix.rows["ws.close.empty"][:2] == ("SHOULD", "pass (1005)")
        table = render_matrix(matrix, "ws.close.empty")
        assert "| refserver | pass (1005) |" in table
        with pytest.raises(GuideError):
            render_matrix(matrix, "ws.no-such-scenario")


class TestCommand:
    def test_check_fails_on_a_stale_file_and_write_fixes_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        doc = tmp_path / "guide.md"
        doc.write_text("old\n", encoding="utf-8")
        monkeypatch.setattr(guide, "DOC_PATH", doc)
        monkeypatch.setattr(guide, "render", lambda: "new\n")
        assert guide.main(["--check"]) == 1
        assert "is stale" in capsys.readouterr().err
        assert guide.main(["--write"]) == 0
        assert doc.read_text(encoding="utf-8") == "new\n"
        assert guide.main(["--check"]) == 0


# ---------------------------------------------------------------- the prose against its traces

KINDS = ("recv", "send", "state", "error", "timer", "ignored", "warning")
SCOPES = ("ws", "http", "lifespan")
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4}
ORDINALS = {"first": 1, "second": 2, "third": 3}
# "No `ws` line", "The two `timer` lines", "The `error` line", "The first `error` line".
CLAIM = re.compile(r"\b(No|[Tt]he(?: (one|two|three|four|first|second|third))?) `(\w+)` (lines?)\b")
# An inline quote of a trace line: "`send websocket.accept [OPEN]`", "`state CONNECTING -> OPEN`".
QUOTE = re.compile(rf"`((?:{'|'.join(KINDS)}) [^`]+)`")
BRACKET = re.compile(r" \[([A-Z_]+)\] \(")
STATE_CHANGE = re.compile(r"^(\S+ \S+) state (\w+) -> (\w+) ")


READING = "Reading a trace line"  # explains the form of a line: its one example is no scenario


def passages(doc: str) -> list[tuple[str, list[str], str]]:
    """(chapter, the lines of the trace shown last, the prose after it) for each paragraph
    of the guide that follows a trace in its chapter."""
    found: list[tuple[str, list[str], str]] = []
    for chapter in re.split(r"^## ", doc, flags=re.M)[1:]:
        title = chapter.splitlines()[0]
        if title == READING:
            continue
        trace: list[str] = []
        for part in re.split(r"^(```text\n.*?^```)$", chapter, flags=re.M | re.S):
            if part.startswith("```text\n"):
                trace = [line for line in part.splitlines()[1:-1] if line != COLLAPSED]
            elif trace:
                found.extend((title, trace, paragraph) for paragraph in part.split("\n\n") if paragraph.strip())
    return found


def trace_blocks(doc: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"^```text\n(.*?)^```$", doc, re.M | re.S)]


def count(trace: list[str], word: str) -> int:
    """How many lines of ``trace`` are of the kind (``error``) or the scope (``ws``) ``word``."""
    assert word in KINDS or word in SCOPES, word
    field = 2 if word in KINDS else 1
    return sum(1 for line in trace if line.split(" ")[field : field + 1] == [word])


class TestProse:
    """What the guide says about its traces is what its traces show."""

    def test_the_guide_makes_claims_about_its_traces(self) -> None:
        doc = DOC_PATH.read_text(encoding="utf-8")
        claims = [m for _, _, prose in passages(doc) for m in CLAIM.finditer(prose)]
        quotes = [m for _, _, prose in passages(doc) for m in QUOTE.finditer(prose)]
        assert len(claims) >= 5
        assert len(quotes) >= 4

    def test_every_count_of_lines_is_the_count_in_the_trace_above(self) -> None:
        wrong = []
        for title, trace, prose in passages(DOC_PATH.read_text(encoding="utf-8")):
            for match in CLAIM.finditer(prose):
                lead, number, word, noun = match.groups()
                seen = count(trace, word)
                if lead == "No":
                    ok = seen == 0
                elif number in NUMBERS:
                    ok = seen == NUMBERS[number]
                elif number in ORDINALS:
                    ok = seen >= max(2, ORDINALS[number])  # "the first" implies a second
                else:
                    ok = seen == 1 if noun == "line" else seen >= 2
                if not ok:
                    wrong.append(f"{title}: {match.group(0)!r}, but the trace has {seen}")
        assert wrong == []

    def test_every_quoted_line_is_in_the_trace_above(self) -> None:
        wrong = []
        for title, trace, prose in passages(DOC_PATH.read_text(encoding="utf-8")):
            for match in QUOTE.finditer(re.sub(r"\s*\n", " ", prose)):
                if not any(f" {match.group(1)}" in line for line in trace):
                    wrong.append(f"{title}: {match.group(1)!r}")
        assert wrong == []

    def test_the_lines_the_reading_section_quotes_follow_each_other_in_a_trace(self) -> None:
        """ "the line `send websocket.accept [OPEN]` comes before `state CONNECTING -> OPEN`"."""
        doc = DOC_PATH.read_text(encoding="utf-8")
        reading = doc.split(f"## {READING}\n", 1)[1].split("\n## ", 1)[0]
        first, second = QUOTE.findall(re.sub(r"\s*\n", " ", reading))
        assert (first, second) == ("send websocket.accept [OPEN]", "state CONNECTING -> OPEN")
        pairs = [(a, b) for block in trace_blocks(doc) for a, b in itertools.pairwise(block)]
        assert any(f" {first} " in a and f" {second} " in b for a, b in pairs)

    def test_the_bracket_is_the_state_after_the_step(self) -> None:
        """A message, error or timer line shows the state after it: the state its own
        ``state`` lines (right after it, citing the same rule) lead to, or the state it found."""
        checked = 0
        for trace in trace_blocks(DOC_PATH.read_text(encoding="utf-8")):
            lines = [line for line in trace if line != COLLAPSED]
            current: dict[str, str] = {}
            for i, line in enumerate(lines):
                change = STATE_CHANGE.match(line)
                if change:
                    current[change.group(1)] = change.group(3)
                    continue
                bracket = BRACKET.search(line)
                if not bracket:
                    continue
                who = " ".join(line.split(" ")[:2])
                rule = line[bracket.end() :].split(":")[0].rstrip(")")
                after = current.get(who)
                for following in lines[i + 1 :]:
                    step = STATE_CHANGE.match(following)
                    if not step or step.group(1) != who or not following.split(" (", 1)[1].startswith(rule):
                        break
                    after = step.group(3)
                if after is not None:
                    assert bracket.group(1) == after, line
                    checked += 1
        assert checked > 50

    def test_lifespan_startup_comes_first_and_shutdown_after_the_last_connection(self) -> None:
        """Chapter 10: "startup completes before `c1` is served; on shutdown the idle HTTP
        connection is closed first, and only then does the app get `lifespan.shutdown`"."""
        chapter = next(trace for title, trace, _ in passages(DOC_PATH.read_text("utf-8")) if title == "10. Lifespan")
        started = chapter.index("lifespan lifespan state STARTING -> STARTED " + chapter[2].split(" STARTED ", 1)[1])
        served = [i for i, line in enumerate(chapter) if line.startswith("c1 ")]
        shutdown = next(i for i, line in enumerate(chapter) if " recv lifespan.shutdown " in line)
        assert started < served[0]
        assert "-> CLOSED" in chapter[served[-1]]
        assert served[-1] < shutdown
