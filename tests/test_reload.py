"""``--reload`` (the optional extra ``refserver[reload]``, on watchfiles): the server runs in a
child process that is replaced, after a graceful shutdown, whenever a ``.py`` file under the
watched directories changes; SIGINT reaches the child once and the exit status is the child's.
Without watchfiles, one line says how to get it."""

from __future__ import annotations

import importlib.util
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import refserver.cli
from refserver.logs import trace_log
from tests.support import http_request
from tests.test_cli import refserver_cli

pytestmark = pytest.mark.anyio

APP = """
async def app(scope, receive, send):
    await send({{"type": "http.response.start", "status": 200}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
"""


async def get(port: int) -> bytes:
    with anyio.fail_after(5):
        _, body = await http_request(port, "GET", "/")
    return body


async def test_a_changed_file_restarts_the_server(anyio_backend: str, tmp_path: Path) -> None:
    pytest.importorskip("watchfiles", reason="--reload needs the reload extra: pip install '.[test]'")
    module = tmp_path / "reloadable.py"
    module.write_text(APP.format(version="one"))
    args = ("reloadable:app", "--reload", "--reload-dir", str(tmp_path), "--app-dir", str(tmp_path), "--port", "0")
    async with refserver_cli(*args, "--lifespan", "off", backend=anyio_backend) as cli:
        await cli.wait_listening()
        assert await get(cli.port) == b"one"

        await cli.stderr_until("for changes to .py files (--reload)")  # the watcher runs
        module.write_text(APP.format(version="two"))
        await cli.wait_listening()  # the new child's listening line
        assert await get(cli.port) == b"two"
        code = await cli.finish(signal.SIGINT)
    stderr = "\n".join(cli.stderr_lines)
    assert code == 0, stderr
    assert f"Watching {tmp_path.resolve()} for changes to .py files (--reload)" in stderr
    assert f"Reloading: {module.resolve()} changed" in stderr
    assert stderr.count("Received SIGTERM; shutting down") >= 1  # the replaced child shut down gracefully
    assert "Traceback" not in stderr


@pytest.fixture
def isolated_main(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """cli.main() in-process configures the "refserver" loggers: put them back."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in (logging.getLogger("refserver"), trace_log)]
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def without_watchfiles(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "watchfiles" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_without_watchfiles_one_line_says_how_to_get_it(
    without_watchfiles: None, capsys: pytest.CaptureFixture[str], isolated_main: None
) -> None:
    assert refserver.cli.main(["tests.apps.basic:app", "--reload"]) == 2
    assert capsys.readouterr() == (
        "",
        "refserver: error: --reload needs watchfiles, which is not installed; "
        "install it with: pip install 'refserver[reload]'\n",
    )


def test_reload_dir_needs_reload(capsys: pytest.CaptureFixture[str], isolated_main: None) -> None:
    assert refserver.cli.main(["tests.apps.basic:app", "--reload-dir", "."]) == 2
    assert capsys.readouterr().err == "refserver: error: --reload-dir needs --reload; see refserver --help\n"


def test_the_extra_is_optional_and_the_runtime_dependencies_stay_three() -> None:
    import tomllib

    with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert [d.split(">")[0] for d in project["dependencies"]] == ["h11", "wsproto", "anyio"]
    assert [d.split(">")[0] for d in project["optional-dependencies"]["reload"]] == ["watchfiles"]
