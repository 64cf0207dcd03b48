"""The kill-rate command's mutants (refserver/conformance/mutants): every source edit applies to
today's code exactly once, every mutant has a unique name and a bug it stands for, and one mutant
of each kind is caught by the scenario that should catch it (each run in a process of its own on
a scratch copy of the package; the working tree is never touched)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from refserver.conformance.mutants import boundary, own, run

PACKAGE = run.PACKAGE


@pytest.mark.parametrize("mutant", own.MUTANTS, ids=lambda m: m.name)
def test_each_source_edit_applies_once(mutant: own.SourceMutant) -> None:
    text = (PACKAGE / mutant.module).read_text(encoding="utf-8")
    assert text.count(mutant.old) == 1
    assert mutant.old != mutant.new


def test_at_least_forty_of_each_kind_with_unique_names() -> None:
    assert len(own.MUTANTS) >= 40 and len(boundary.MUTANTS) >= 40
    assert len(own.BY_NAME) == len(own.MUTANTS) and len(boundary.BY_NAME) == len(boundary.MUTANTS)
    assert all(m.bug for m in own.MUTANTS) and all(m.bug for m in boundary.MUTANTS)


def test_the_scratch_copy_is_edited_and_the_tree_is_not() -> None:
    mutant = own.BY_NAME["http.head-body-on-wire"]
    before = (PACKAGE / mutant.module).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        root = run._scratch_copy(Path(tmp), mutant)
        assert mutant.new in (root / "refserver" / mutant.module).read_text(encoding="utf-8")
    assert (PACKAGE / mutant.module).read_text(encoding="utf-8") == before


def test_a_mutant_that_does_not_apply_is_refused(tmp_path: Path) -> None:
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol" / "http.py").write_text("nothing to replace\n", encoding="utf-8")
    with pytest.raises(ValueError, match="occurs 0 times"):
        own.apply(tmp_path, own.BY_NAME["http.head-body-on-wire"])


def test_the_section_replaces_its_old_self() -> None:
    doc = "# T\n\n## Running it\n\nx\n\n## Targets\n\ny\n"
    first = run.splice_section(doc, "## How strong the harness is\n\nold\n")
    assert first.index("## How strong") < first.index("## Targets")
    second = run.splice_section(first, "## How strong the harness is\n\nnew\n")
    assert "old" not in second and second.count("## How strong") == 1


@pytest.mark.parametrize(
    ("kind", "name", "scenario"),
    [("own", "http.head-body-on-wire", "http.response.head"), ("boundary", "ws.1006-as-1000", "ws.loss.rst")],
)
def test_a_planted_bug_is_caught(kind: str, name: str, scenario: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = run._scratch_copy(Path(tmp), own.BY_NAME[name] if kind == "own" else None)
        result = run._spawn(kind, name, [scenario], 1, root)
    assert list(result["missed"]) == [scenario]  # type: ignore[call-overload]


def test_the_scenarios_added_for_survivors_exist_and_explanations_name_real_mutants() -> None:
    from refserver.conformance.catalogue import BY_ID

    known = {f"{k}:{n}" for k, n, _ in run.all_mutants("both", ())}
    assert set(run.ADDED_FOR) <= known and set(run.EXPLAINED) <= known
    assert all(scenario in BY_ID for scenario in run.ADDED_FOR.values())
