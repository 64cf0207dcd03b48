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

``refserver_server`` is an async fixture for anyio's pytest plugin (which anyio installs): the
test is marked ``@pytest.mark.anyio`` and runs on the ``anyio_backend`` it selects; the server
runs on the same loop. ``refserver_server_in_thread`` is for synchronous tests; its backend is
``refserver_options()["backend"]`` (default asyncio). Each test gets its own server, started
before and stopped (with lifespan shutdown, checked) after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

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


@pytest.fixture
async def refserver_server(refserver_app: Any, refserver_options: dict[str, Any]) -> AsyncIterator[RunningServer]:
    """refserver serving ``refserver_app`` on the test's event loop, for one test."""
    options = {k: v for k, v in refserver_options.items() if k != "backend"}
    async with serve(refserver_app, **options) as server:
        yield server


@pytest.fixture
def refserver_server_in_thread(refserver_app: Any, refserver_options: dict[str, Any]) -> Iterator[RunningServer]:
    """refserver serving ``refserver_app`` in a background thread, for one synchronous test."""
    with serve_in_thread(refserver_app, **refserver_options) as server:
        yield server
