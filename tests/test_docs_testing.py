"""docs/testing.md: every Python block is a complete test module, run here with pytest in a
fresh process, as a reader would run it (with the page's pytest configuration:
``refserver_fixtures = true``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
# test functions x parameters in the blocks: hello (2 backends), fixtures (2 + 1),
# Starlette (2 backends), Falcon (asyncio). A block that stops being collected fails this.
EXPECTED_PASSED = 8


def test_the_doc_has_the_blocks_this_test_counts() -> None:
    blocks = BLOCK.findall(DOC.read_text())
    assert len(blocks) == 4
    assert "[tool.pytest.ini_options]\nrefserver_fixtures = true\n" in DOC.read_text()


def test_every_python_block_of_the_doc_passes(tmp_path: Path) -> None:
    for index, block in enumerate(BLOCK.findall(DOC.read_text())):
        (tmp_path / f"test_doc_block_{index}.py").write_text(block)
    (tmp_path / "pytest.ini").write_text("[pytest]\nrefserver_fixtures = true\n")
    done = subprocess.run(
        # (hypothesis's plugin is unloaded only because it takes a second to import)
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"^{EXPECTED_PASSED} passed in ", done.stdout, re.MULTILINE), done.stdout
