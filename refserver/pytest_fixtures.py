"""pytest fixtures that serve your app with refserver (see :mod:`refserver.pytest_plugin` for
how to turn them on).

Tell the fixtures which app to serve by defining ``refserver_app`` (and, to change server
options, ``refserver_options``) in your conftest.py or test module::

    @pytest.fixture
    def refserver_app() -> Any:
        return my_asgi_app

    @pytest.fixture
    def refserver_options() -> dict[str, Any]:
        return {"lifespan": "on"}  # refserver.Config fields

    @pytest.mark.anyio
    async def test_home(refserver_server: RunningServer) -> None:
        ...  # refserver_server.http_url, .ws_url, .state

    def test_home_sync(refserver_server_in_thread: RunningServer) -> None:
        ...

``refserver_server`` is for async tests, under either plugin: anyio's (which anyio installs;
the test is marked ``@pytest.mark.anyio`` and runs on the ``anyio_backend`` it selects) or
pytest-asyncio's (``@pytest.mark.asyncio``, on the default function-scoped loop). The server
runs on the test's own event loop. ``refserver_server_in_thread`` is for synchronous tests (and
any other loop); its backend is ``refserver_options()["backend"]`` (default asyncio). Each test
gets its own server, started before and stopped (with lifespan shutdown, checked) after it.

A message the app sends that breaks a spec rule is kept in the server's ``violations``. A test
fails if there are any when it ends, once the project sets ``refserver_fail_on_violations = true``
in its pytest configuration, or for one test marked ``@pytest.mark.refserver_fail_on_violations``
(``refserver_fail_on_violations(False)`` exempts a test from the ini setting). With
``{"app_violations": "warn"}`` in ``refserver_options`` every breach with a safe reading is
served, so one run lists them all (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, cast

import pytest

from refserver.testing import RunningServer, serve, serve_in_thread

__all__ = ["refserver_app", "refserver_options", "refserver_server", "refserver_server_in_thread"]


@pytest.fixture
def refserver_app() -> Any:
    """The ASGI app the refserver fixtures serve; override it."""
    pytest.fail("refserver fixtures: define a fixture named refserver_app that returns the ASGI app to serve")


@pytest.fixture
def refserver_options() -> dict[str, Any]:
    """Options for the server (refserver.Config fields); override to change them."""
    return {}


def _serve_on_the_tests_loop(
    refserver_app: Any, refserver_options: dict[str, Any]
) -> contextlib.AbstractAsyncContextManager[RunningServer]:
    return serve(refserver_app, **{k: v for k, v in refserver_options.items() if k != "backend"})


async def _serve(refserver_app: Any, refserver_options: dict[str, Any]) -> AsyncIterator[RunningServer]:
    """anyio's plugin runs a fixture's setup and teardown in one task."""
    async with _serve_on_the_tests_loop(refserver_app, refserver_options) as server:
        yield server


async def _serve_in_a_task_of_its_own(
    refserver_app: Any, refserver_options: dict[str, Any]
) -> AsyncIterator[RunningServer]:
    """pytest-asyncio runs a fixture's setup and its teardown as two tasks, and serve() is a task
    group, which must be left in the task that entered it: serve from one task that lives from
    the setup to the teardown, on the test's loop."""
    import asyncio

    started: asyncio.Future[RunningServer] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def serve_until_stopped() -> None:
        async with _serve_on_the_tests_loop(refserver_app, refserver_options) as server:
            started.set_result(server)
            await stop.wait()

    task = asyncio.create_task(serve_until_stopped())
    either: list[asyncio.Future[Any]] = [started, task]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        task.result()  # the server did not start: raise why (e.g. LifespanFailure)
    try:
        yield started.result()
    finally:
        stop.set()
        await task  # shut down like on SIGTERM; a failed lifespan shutdown raises here


# One fixture for each plugin, which each run the async fixtures they know on the test's loop.
refserver_server_anyio = pytest.fixture(name="_refserver_server_anyio")(_serve)
try:
    _pytest_asyncio: Any = importlib.import_module("pytest_asyncio")
except ImportError:
    pass  # not installed: only anyio's plugin runs the async fixture
else:
    refserver_server_asyncio = _pytest_asyncio.fixture(name="_refserver_server_asyncio", loop_scope="function")(
        _serve_in_a_task_of_its_own
    )

FAIL_ON_VIOLATIONS = "refserver_fail_on_violations"  # the ini setting and the marker
SERVER_FIXTURES = ("refserver_server", "refserver_server_in_thread")


def _fails_on_violations(item: pytest.Item) -> bool:
    marker = item.get_closest_marker(FAIL_ON_VIOLATIONS)
    if marker is not None:
        return bool(marker.args[0]) if marker.args else True
    try:
        return bool(item.config.getini(FAIL_ON_VIOLATIONS))
    except ValueError:  # the entry point that declares it is unloaded (-p no:refserver)
        return False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail a test whose app broke a spec rule, when the project or the test asks for it."""
    result = yield
    if _fails_on_violations(item):
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        for name in SERVER_FIXTURES:
            server = funcargs.get(name)
            if isinstance(server, RunningServer) and server.violations:
                lines = "\n".join(f"  {violation}" for violation in server.violations)
                pytest.fail(
                    f"the app broke {len(server.violations)} ASGI spec rule(s) while {name} served it "
                    f"({FAIL_ON_VIOLATIONS}):\n{lines}",
                    pytrace=False,
                )
    return result


NO_PLUGIN = (
    "refserver_server runs the server on the test's event loop, so the test must be async and run by "
    "anyio's pytest plugin (mark it @pytest.mark.anyio) or pytest-asyncio's (@pytest.mark.asyncio); "
    "for a synchronous test ask for refserver_server_in_thread"
)


@pytest.fixture
def refserver_server(request: pytest.FixtureRequest) -> RunningServer:
    """refserver serving ``refserver_app`` on the test's event loop, for one async test run by
    anyio's pytest plugin or by pytest-asyncio."""
    if "anyio_backend" in request.fixturenames:
        return cast(RunningServer, request.getfixturevalue("_refserver_server_anyio"))
    marker = request.node.get_closest_marker("asyncio")
    if marker is not None and request.config.pluginmanager.has_plugin("asyncio"):
        loop_scope = marker.kwargs.get("loop_scope") or request.config.getini("asyncio_default_test_loop_scope")
        if loop_scope != "function":
            pytest.fail(
                f"refserver_server runs on a function-scoped event loop, not on this test's {loop_scope}-scoped "
                "one: ask for refserver_server_in_thread instead"
            )
        return cast(RunningServer, request.getfixturevalue("_refserver_server_asyncio"))
    pytest.fail(NO_PLUGIN)


@pytest.fixture
def refserver_server_in_thread(refserver_app: Any, refserver_options: dict[str, Any]) -> Iterator[RunningServer]:
    """refserver serving ``refserver_app`` in a background thread, for one synchronous test."""
    with serve_in_thread(refserver_app, **refserver_options) as server:
        yield server
