"""Running the server as a process: signals, the listening line, the exit status."""

from __future__ import annotations

import signal
import sys
from typing import Any, TextIO

import anyio
import anyio.abc

from refserver.config import Config
from refserver.errors import LifespanFailure
from refserver.logs import error_log
from refserver.runtime.server import Listening, serve


async def _watch_signals(stop: anyio.Event, force: anyio.CancelScope) -> None:
    """SIGINT/SIGTERM: graceful shutdown; a second one: stop at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if not stop.is_set():
                error_log.info("Received %s; shutting down (again to force)", signal.Signals(signum).name)
                stop.set()
            else:
                error_log.warning("Received %s again; forcing shutdown", signal.Signals(signum).name)
                force.cancel()
                return


async def _main(app: Any, config: Config, out: TextIO) -> int:
    stop = anyio.Event()
    exit_code = 0
    async with anyio.create_task_group() as tg:

        async def run_server(*, task_status: anyio.abc.TaskStatus[Listening]) -> None:
            nonlocal exit_code
            try:
                await serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
            except* LifespanFailure:
                # lifespan spec 2.0: startup.failed / shutdown.failed make the process exit
                # non-zero. except*: serve() may raise it inside an ExceptionGroup.
                exit_code = 1
            finally:
                tg.cancel_scope.cancel()

        tg.start_soon(_watch_signals, stop, tg.cancel_scope)
        try:
            listening = await tg.start(run_server)
        except RuntimeError:  # the server ended before it was listening (lifespan failure)
            return exit_code or 1
        print(f"refserver listening on {listening.url} (press CTRL+C to quit)", file=out, flush=True)
    return exit_code


def run_until_signalled(app: Any, config: Config, out: TextIO | None = None) -> int:
    """Serve until SIGINT/SIGTERM; return the process exit status."""
    return anyio.run(_main, app, config, out or sys.stdout, backend=config.backend)
