"""The pytest plugin: the ``pytest11`` entry point is inert until a project turns the fixtures
on (ini ``refserver_fixtures = true``, or ``-p refserver.pytest_fixtures``), and then the
fixtures serve the project's ``refserver_app``. Each case runs pytest in a fresh process on a
small generated project, as a user's project would."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

APP = """
from typing import Any

import pytest


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["name"] = "plugin"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": scope["state"]["name"].encode()})


@pytest.fixture
def refserver_app() -> Any:
    return app
"""

SYNC_TEST = """
import urllib.request


def test_sync(refserver_server_in_thread):
    assert refserver_server_in_thread.state == {"name": "plugin"}
    with urllib.request.urlopen(refserver_server_in_thread.http_url, timeout=5) as response:
        assert response.read() == b"plugin"
"""

ASYNC_TEST = """
import anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_async(refserver_server):
    stream = await anyio.connect_tcp(refserver_server.host, refserver_server.port)
    await stream.send(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    with anyio.fail_after(5):
        try:
            while True:
                data += await stream.receive()
        except anyio.EndOfStream:
            pass
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\\r\\n\\r\\nplugin")
"""

NO_APP_TEST = """
def test_forgot_the_app(refserver_server_in_thread):
    pass
"""


def run_pytest(project: Path, ini: str, *args: str) -> subprocess.CompletedProcess[str]:
    (project / "pytest.ini").write_text("[pytest]\n" + ini)  # makes project the rootdir
    # (hypothesis's plugin is unloaded only because it takes a second to import)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


class TestTheEntryPointIsInert:
    def test_without_opting_in_there_are_no_refserver_fixtures(self, tmp_path: Path) -> None:
        write(tmp_path / "test_it.py", APP + SYNC_TEST)
        done = run_pytest(tmp_path, "")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "fixture 'refserver_server_in_thread' not found" in done.stdout
        assert "1 error" in done.stdout
        # ... and says how to turn them on
        assert "refserver's pytest fixtures are off until the project turns them on: add refserver_fixtures = true" in (
            done.stdout
        )

    def test_other_missing_fixtures_get_no_hint(self, tmp_path: Path) -> None:
        write(tmp_path / "test_it.py", "def test_x(no_such_fixture):\n    pass\n")
        done = run_pytest(tmp_path, "")
        assert "fixture 'no_such_fixture' not found" in done.stdout
        assert "refserver" not in done.stdout


class TestOptingIn:
    def test_the_ini_setting_turns_the_fixtures_on(self, tmp_path: Path) -> None:
        write(tmp_path / "test_it.py", APP + SYNC_TEST + ASYNC_TEST)
        write(tmp_path / "test_no_app.py", NO_APP_TEST)
        done = run_pytest(tmp_path, "refserver_fixtures = true\n", "-rE")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "3 passed, 1 error" in done.stdout, done.stdout
        assert "define a fixture named refserver_app" in done.stdout

    @pytest.mark.parametrize("how", ["-p", "conftest"])
    def test_loading_the_fixtures_module_turns_them_on(self, tmp_path: Path, how: str) -> None:
        write(tmp_path / "test_it.py", APP + SYNC_TEST)
        args: list[str] = []
        if how == "-p":
            args = ["-p", "refserver.pytest_fixtures"]
        else:
            write(tmp_path / "conftest.py", 'pytest_plugins = ["refserver.pytest_fixtures"]\n')
        # the ini setting as well: the fixtures are registered once, whichever way came first
        done = run_pytest(tmp_path, "refserver_fixtures = true\n", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 passed" in done.stdout


ASYNCIO_TEST = """
import anyio


@pytest.mark.asyncio
async def test_under_pytest_asyncio(refserver_server):
    reader, writer = await asyncio.open_connection(refserver_server.host, refserver_server.port)
    writer.write(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\\r\\n\\r\\nplugin")
"""

WRONG_LOOP_TEST = """
@pytest.mark.asyncio(loop_scope="module")
async def test_on_a_module_loop(refserver_server):
    pass
"""

NO_PLUGIN_TEST = """
def test_sync_asks_for_the_async_fixture(refserver_server):
    pass
"""

ASYNCIO_INI = "refserver_fixtures = true\nasyncio_default_fixture_loop_scope = function\n"


class TestUnderPytestAsyncio:
    """FastAPI users commonly have pytest-asyncio: refserver_server works in its tests too."""

    def test_refserver_server_runs_on_the_pytest_asyncio_loop(self, tmp_path: Path) -> None:
        pytest.importorskip("pytest_asyncio", reason="pytest-asyncio is in the test extra: pip install '.[test]'")
        write(tmp_path / "test_it.py", "import asyncio\n" + APP + ASYNCIO_TEST + ASYNC_TEST)
        done = run_pytest(tmp_path, ASYNCIO_INI)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "3 passed" in done.stdout  # pytest-asyncio's test, and anyio's on asyncio and trio

    def test_a_loop_other_than_the_functions_is_refused_with_what_to_do(self, tmp_path: Path) -> None:
        pytest.importorskip("pytest_asyncio", reason="pytest-asyncio is in the test extra: pip install '.[test]'")
        write(tmp_path / "test_it.py", APP + WRONG_LOOP_TEST)
        done = run_pytest(tmp_path, ASYNCIO_INI)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "not on this test's module-scoped one: ask for refserver_server_in_thread instead" in done.stdout

    def test_without_an_async_plugin_the_failure_says_what_to_do(self, tmp_path: Path) -> None:
        write(tmp_path / "test_it.py", APP + NO_PLUGIN_TEST)
        done = run_pytest(tmp_path, "refserver_fixtures = true\n", "-p", "no:asyncio")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "mark it @pytest.mark.anyio" in done.stdout
        assert "for a synchronous test ask for refserver_server_in_thread" in done.stdout


VIOLATING_APP = """
from typing import Any

import pytest


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Mixed", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def refserver_app() -> Any:
    return app


@pytest.fixture
def refserver_options() -> dict[str, Any]:
    return {"lifespan": "off", "app_violations": "warn"}
"""

VIOLATING_TESTS = """
import urllib.request


def get(server):
    with urllib.request.urlopen(server.http_url, timeout=5) as response:
        assert response.status == 200


def test_as_the_ini_says(refserver_server_in_thread):
    get(refserver_server_in_thread)


@pytest.mark.refserver_fail_on_violations
def test_marked(refserver_server_in_thread):
    get(refserver_server_in_thread)


@pytest.mark.refserver_fail_on_violations(False)
def test_exempt(refserver_server_in_thread):
    get(refserver_server_in_thread)
"""

VIOLATION_LINE = (
    "  http.response.start has a header name b'X-Mixed' that is not lower-case; sent as b'x-mixed' "
    '(www spec 2.5, "Response Start - send event")'
)


class TestFailOnViolations:
    """A test fails when the app its refserver fixture served broke a spec rule: for every
    test with the ini setting ``refserver_fail_on_violations = true``, for one test with the
    marker; ``refserver_fail_on_violations(False)`` exempts one."""

    def test_the_marker_fails_one_test(self, tmp_path: Path) -> None:
        write(tmp_path / "test_it.py", VIOLATING_APP + VIOLATING_TESTS)
        done = run_pytest(tmp_path, "refserver_fixtures = true\n", "--strict-markers")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "1 failed, 2 passed" in done.stdout, done.stdout
        assert "FAILED test_it.py::test_marked" in done.stdout
        assert "the app broke 1 ASGI spec rule(s) while refserver_server_in_thread served it" in done.stdout
        assert VIOLATION_LINE in done.stdout

    def test_the_ini_setting_fails_every_test_not_exempt(self, tmp_path: Path) -> None:
        write(tmp_path / "test_it.py", VIOLATING_APP + VIOLATING_TESTS)
        done = run_pytest(tmp_path, "refserver_fixtures = true\nrefserver_fail_on_violations = true\n")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "2 failed, 1 passed" in done.stdout, done.stdout
        assert "FAILED test_it.py::test_as_the_ini_says" in done.stdout
        assert "FAILED test_it.py::test_marked" in done.stdout
