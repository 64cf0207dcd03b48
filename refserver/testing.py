"""Run refserver inside your tests: a real server on a free loopback port, for one block.

::

    from refserver.testing import serve

    async def test_echo() -> None:               # under anyio's pytest plugin, or any asyncio/trio test
        async with serve(app) as server:
            ...  # connect to server.http_url / server.ws_url with any client

For tests that are not async, :func:`serve_in_thread` runs the same server on its own event
loop in a background thread::

    with serve_in_thread(app) as server:
        requests.get(server.http_url + "/")

Both start the app's lifespan (``lifespan="auto"`` as on the command line), wait until the
server is listening (no sleeping, no port guessing), and on leaving the block shut down the
way SIGTERM does: stop accepting, close open WebSockets with 1001, let in-flight work finish
within ``shutdown_timeout_s``, then run lifespan shutdown. The exit is checked: a failed
lifespan startup or shutdown raises :class:`refserver.LifespanFailure` from the ``with``
statement, and an exception raised inside the block comes out as itself after the shutdown.

Every message the app sends on a connection that breaks a spec rule is kept in ``server.violations`` (a
:class:`refserver.violations.Violation`: message type, problem, section, and the safe reading
it was served in, if any), whether ``send()`` raised it or, with ``app_violations="warn"``,
served it; so a framework's own suite can assert that it commits none::

    async with serve(app, app_violations="warn") as server:
        ...  # drive the app
    assert server.violations == []

A pytest plugin (``refserver.pytest_fixtures``) wraps these in fixtures; see its docstring.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread

from refserver.config import Config
from refserver.runtime.context import netloc
from refserver.runtime.server import Listening
from refserver.runtime.server import serve as _serve
from refserver.trace import TraceRecord
from refserver.violations import Violation

__all__ = ["RunningServer", "serve", "serve_in_thread"]

# What the helper changes from the server's defaults; everything else is Config's default,
# so that the app under test meets exactly the server it will meet in production.
TEST_DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 0}


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server started by :func:`serve` or :func:`serve_in_thread`, while it runs."""

    listening: Listening
    config: Config
    # With ``record=True``: every trace record of every connection, in order (what the app
    # received and sent, each state change, ignored message, error and timer; see
    # refserver.trace). Empty otherwise.
    records: list[TraceRecord] = field(default_factory=list)
    # Every app message that broke a spec rule, in order: raised from send(), or served in
    # its safe reading under ``app_violations="warn"`` (refserver.violations).
    violations: list[Violation] = field(default_factory=list)

    def messages(self, kind: str, scope: str | None = None) -> list[dict[str, Any]]:
        """With ``record=True``: the ASGI messages the apps received (``kind="recv"``) or sent
        (``kind="send"``), in order, optionally of one scope type (``"http"``, ``"ws"``)."""
        return [
            dict(r.message)
            for r in self.records
            if r.kind == kind and r.message is not None and (scope is None or r.scope == scope)
        ]

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)``."""
        first = self.listening.addresses[0]
        if isinstance(first, str):
            raise ValueError(f"the server listens on the unix socket {first!r}, not on TCP")
        return first

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash: append the path."""
        return f"http://{netloc(*self.address)}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``, without a trailing slash: append the path."""
        return f"ws://{netloc(*self.address)}"

    @property
    def state(self) -> dict[str, Any]:
        """The lifespan state (lifespan spec 2.0, "Lifespan State"): what the app put into
        ``scope["state"]`` during startup. Each connection's ``scope["state"]`` is a shallow
        copy of this dict, so objects in it are shared and rebinding a key is not."""
        return self.listening.state


@dataclass(frozen=True, slots=True)
class _Kept:
    """What the helper collects while the server runs."""

    records: list[TraceRecord] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)


def _config(options: dict[str, Any]) -> tuple[Config, _Kept]:
    # The one place where options become a Config. ``record=True`` is not a server setting:
    # it adds a trace sink that collects every record into the lists returned here. A
    # violation sink always collects the app's violations.
    kept = _Kept()
    options = dict(options)
    if options.pop("record", False):
        options["trace_sinks"] = (*options.get("trace_sinks", ()), kept.records.append)
    options["violation_sinks"] = (*options.get("violation_sinks", ()), kept.violations.append)
    return Config.from_options(**{**TEST_DEFAULTS, **options}), kept


@asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[RunningServer]:
    """Serve ``app`` on the caller's event loop for the duration of the ``async with`` block.

    ``options`` are :class:`refserver.Config` fields (``lifespan="on"``, ``ws_max_size_bytes=...``),
    and ``record=True``, which keeps every trace record in ``server.records`` (see
    :meth:`RunningServer.messages`) so that a test can assert what its app was told;
    ``app_violations="warn"`` serves a breach with a safe reading instead of raising it
    (every breach is kept in ``server.violations`` either way);
    ``host`` defaults to ``127.0.0.1`` and ``port`` to ``0`` (a free port). ``backend`` is not
    accepted: the server runs on the loop of the test that calls this.
    """
    if "backend" in options:
        raise TypeError("serve() runs on the caller's event loop; backend= is an option of serve_in_thread()")
    config, kept = _config(options)
    async with _running(app, config, kept) as server:
        yield server


@asynccontextmanager
async def _running(app: Any, config: Config, kept: _Kept) -> AsyncIterator[RunningServer]:
    stop = anyio.Event()
    stopped = anyio.Event()

    async def run_server(*, task_status: anyio.abc.TaskStatus[Listening]) -> None:
        try:
            await _serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
        finally:
            stopped.set()

    try:
        async with anyio.create_task_group() as tg:
            listening: Listening = await tg.start(run_server)
            try:
                yield RunningServer(listening, config, kept.records, kept.violations)
            finally:
                stop.set()
                # A graceful shutdown even when the block raised (unless it was cancelled:
                # then this wait is cancelled too, and so is the server).
                await stopped.wait()
    except BaseExceptionGroup as group:
        # The task group wraps both the server's LifespanFailure and the block's own
        # exception; a lone one comes out as itself.
        raise _lone(group) from None


def _lone(group: BaseExceptionGroup[BaseException]) -> BaseException:
    inner: BaseException = group
    while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
        inner = inner.exceptions[0]
    return inner


@contextmanager
def serve_in_thread(app: Any, **options: Any) -> Iterator[RunningServer]:
    """Like :func:`serve`, for synchronous tests: the server runs on its own event loop
    (``backend="asyncio"`` or ``"trio"``, default asyncio) in a background thread."""
    config, kept = _config(options)  # an unknown option fails here, in the caller's thread
    with (
        anyio.from_thread.start_blocking_portal(config.backend) as portal,
        portal.wrap_async_context_manager(_running(app, config, kept)) as server,
    ):
        yield server
