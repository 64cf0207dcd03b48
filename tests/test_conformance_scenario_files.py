"""Scenarios from a file of one's own (``--scenarios PATH``): the worked example of
docs/conformance.md runs on refserver beside the catalogue, and reads back from its report."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from refserver.conformance import scenario_files
from refserver.conformance import verdict as V
from refserver.conformance.cli import main, run_report, select_scenarios
from refserver.conformance.report import intro, load_json, render_text
from refserver.conformance.runner import TargetRun
from refserver.conformance.targets import BY_NAME, TargetInfo

EXAMPLE = Path(__file__).resolve().parent.parent / "refserver" / "conformance" / "example_scenarios.py"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "conformance.md"


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    scenario_files.forget()
    yield
    scenario_files.forget()


@pytest.mark.anyio
async def test_the_example_passes_on_refserver(anyio_backend: str) -> None:
    mine = scenario_files.load(EXAMPLE)
    assert [s.id for s in mine] == ["mine.http.query-string-raw", "mine.ws.fragments-in-order"]
    spec = BY_NAME["refserver-trio" if anyio_backend == "trio" else "refserver"]
    target = TargetRun(TargetInfo(spec, True, "in-process", in_process=True), sys.executable, anyio_backend)
    report = await run_report([target], mine)
    assert [(c.scenario, c.verdict) for c in report.cells] == [(s.id, V.PASS) for s in mine]
    assert "== My server's regressions" in render_text(report)


def test_selected_beside_the_catalogue() -> None:
    mine = scenario_files.load(EXAMPLE)
    assert [s.id for s in select_scenarios(["mine.*", "ws.close.echo"], mine)] == [
        "ws.close.echo",
        "mine.http.query-string-raw",
        "mine.ws.fragments-in-order",
    ]


def test_the_probe_finds_them_in_a_server_the_harness_started(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario_files.load(EXAMPLE)
    environment = scenario_files.environment()
    scenario_files.forget()  # a fresh process: only the environment says where the files are
    monkeypatch.setenv(scenario_files.ENV, environment[scenario_files.ENV])
    found = scenario_files.find("mine.ws.fragments-in-order")
    assert found is not None and found.group == "My server's regressions"


@pytest.mark.parametrize(
    ("text", "message"),
    [("X = 1\n", "define SCENARIOS"), ("from refserver.conformance.catalogue import SCENARIOS\n", "already taken")],
)
def test_bad_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        scenario_files.load(path)


def test_the_report_reads_back_with_the_file(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    argv = ["--scenarios", str(EXAMPLE), "--scenario", "mine.*", "--target", "refserver", "--in-process"]
    assert main([*argv, "--quiet", "--format", "json", "--out", str(out)]) == 0
    assert [c["scenario"] for c in json.loads(out.read_text())["cells"]] == [
        "mine.http.query-string-raw",
        "mine.ws.fragments-in-order",
    ]
    assert [c.verdict for c in load_json(out).cells] == [V.PASS, V.PASS]


def test_the_docs_show_the_example_as_it_is() -> None:
    example = EXAMPLE.read_text(encoding="utf-8").rstrip()
    assert example in intro()
    assert example in DOCS.read_text(encoding="utf-8"), "regenerate docs/conformance.md (see Regenerating)"
