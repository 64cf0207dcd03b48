"""docs/guide.md is generated from docs/guide.template.md by running conformance scenarios on
refserver, and must not go stale. The generator runs on asyncio only (a few seconds)."""

from __future__ import annotations

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
    """What the issue asks of every chapter: a real trace, the spec, a decision, the matrix."""

    def test_every_chapter_is_there_in_order(self) -> None:
        headings = re.findall(r"^## \d+\. (.+)$", TEMPLATE_PATH.read_text(encoding="utf-8"), re.M)
        assert tuple(headings) == CHAPTERS

    def test_every_chapter_shows_a_trace_cites_a_decision_and_quotes_the_matrix(self) -> None:
        chapters = re.split(r"^## \d+\. ", TEMPLATE_PATH.read_text(encoding="utf-8"), flags=re.M)[1:]
        assert len(chapters) == len(CHAPTERS)
        for title, chapter in zip(CHAPTERS, chapters, strict=True):
            assert "{{trace " in chapter, title
            assert "{{matrix " in chapter, title
            assert re.search(r"decisions\.md #\d+", chapter), title
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
        numbers = set(re.findall(r"^### (\d+)\. ", decisions, re.M))
        cited = re.findall(r"decisions\.md #(\d+)((?:, #\d+)*)", TEMPLATE_PATH.read_text(encoding="utf-8"))
        flat = {n for first, rest in cited for n in (first, *re.findall(r"\d+", rest))}
        assert flat
        assert flat <= numbers

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
