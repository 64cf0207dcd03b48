"""docs/testing.md: every Python block is a complete test module, run here with pytest in a
fresh process, as a reader would run it (with the page's pytest configuration:
``refserver_fixtures = true``), once as the test extra installs it and once as a plain install
(no trio, no pytest-asyncio) would."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# test functions x parameters in the blocks, with the test extra installed: hello (anyio's
# plugin runs it on every backend installed: asyncio and trio), fixtures (2 + 1), pytest-asyncio
# (1), violations (2), Starlette (2 backends), Falcon (asyncio). A block that stops being
# collected fails this.
EVERY_TEST = 11
# On a plain install: pytest-asyncio's block and Starlette on trio are skipped.
PLAIN_INSTALL = (7, 2)
HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None


def test_the_doc_has_the_blocks_this_test_counts() -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) == 6
    assert "[tool.pytest.ini_options]\nrefserver_fixtures = true\n" in DOC.read_text()


def run_blocks(tmp_path: Path, ini: str, *args: str, env: dict[str, str] | None = None) -> str:
    for index, block in enumerate(BLOCK.findall(DOC.read_text())):
        (tmp_path / f"test_doc_block_{index}.py").write_text(block)
    (tmp_path / "pytest.ini").write_text("[pytest]\nrefserver_fixtures = true\n" + ini)
    done = subprocess.run(
        # (hypothesis's plugin is unloaded only because it takes a second to import)
        [
            *(sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:hypothesispytest"),
            *("-W", "error", *args),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_every_python_block_of_the_doc_passes(tmp_path: Path) -> None:
    if HAS_PYTEST_ASYNCIO:  # (pytest-asyncio asks for it; the page says so)
        out = run_blocks(tmp_path, "asyncio_default_fixture_loop_scope = function\n")
        assert re.search(rf"^{EVERY_TEST} passed in ", out, re.MULTILINE), out
    else:
        out = run_blocks(tmp_path, "")
        assert re.search(rf"^{EVERY_TEST - 1} passed, 1 skipped in ", out, re.MULTILINE), out


def test_the_blocks_run_on_a_plain_install(tmp_path: Path) -> None:
    """Without trio and pytest-asyncio (neither comes with refserver) nothing fails: the blocks
    that need them are skipped and say what to install."""
    missing = tmp_path / "not_installed"
    missing.mkdir()
    for name in ("trio", "pytest_asyncio"):
        (missing / f"{name}.py").write_text(f"raise ModuleNotFoundError('not installed', name={name!r})\n")
    path = os.pathsep.join([str(missing), *sys.path])
    project = tmp_path / "project"
    project.mkdir()
    out = run_blocks(project, "", "-p", "no:asyncio", env={**os.environ, "PYTHONPATH": path})
    passed, skipped = PLAIN_INSTALL
    assert re.search(rf"^{passed} passed, {skipped} skipped in ", out, re.MULTILINE), out
    assert "could not import 'trio'" in out
    assert "could not import 'pytest_asyncio'" in out
