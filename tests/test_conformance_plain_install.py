"""``python -m refserver.conformance`` on a plain install (no trustme, which makes the TLS
scenarios' certificates): the TLS scenarios are not run, one line says how to get them, and the
exit status is 0 unless ``--strict`` asks for every scenario."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from refserver.conformance.cli import main

SCENARIOS = ["--scenario", "tls.https.scheme", "--scenario", "ws.handshake.accept-key"]
NOT_RUN = (
    "conformance: 1 TLS scenario not run: their certificates are made with trustme, which is not installed; "
    "pip install 'refserver[tls-scenarios]' to run them"
)


@pytest.fixture
def without_trustme(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import trustme`` raises ImportError and find_spec finds nothing, as on a plain install."""
    monkeypatch.setitem(sys.modules, "trustme", None)
    assert importlib.util.find_spec("trustme") is None


def test_tls_scenarios_are_not_run_with_one_line_and_status_0(
    without_trustme: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([*SCENARIOS, "--target", "refserver", "--in-process", "--quiet"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert NOT_RUN in err.splitlines()
    assert "ws.handshake.accept-key" in out
    assert "tls.https.scheme" not in out
    assert "error" not in err


def test_strict_makes_the_scenarios_not_run_a_failure(
    without_trustme: None, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([*SCENARIOS, "--target", "refserver", "--in-process", "--quiet", "--strict", "refserver"])
    err = capsys.readouterr().err
    assert status == 1
    assert NOT_RUN in err.splitlines()
    assert "conformance: --strict: 1 TLS scenario not run (pip install 'refserver[tls-scenarios]')" in err


def test_the_extra_is_declared_apart_from_the_pinned_peers() -> None:
    import tomllib
    from pathlib import Path

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert [d.split(">")[0].split("=")[0] for d in extras["tls-scenarios"]] == ["trustme"]
