"""Running the server as a process: signals, the listening line, the exit status."""

from __future__ import annotations

import signal
import sys
from typing import Any, TextIO

import anyio

from refserver.config import Config
from refserver.errors import LifespanFailure
from refserver.logs import error_log
from refserver.runtime.server import Listening, serve

FORCED_EXIT_STATUS = 1  # a second signal cut in-flight work: not a clean exit (docs/decisions.md#forced-exit)


class _Signals:
    """SIGINT/SIGTERM: graceful shutdown; a second one: stop at once (``forced``)."""

    def __init__(self, force: anyio.CancelScope) -> None:
        self.stop = anyio.Event()
        self.force = force
        self.forced = False

    async def watch(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if not self.stop.is_set():
                    error_log.info("Received %s; shutting down (again to force)", signal.Signals(signum).name)
                    self.stop.set()
                else:
                    error_log.warning("Received %s again; forcing shutdown", signal.Signals(signum).name)
                    self.forced = True
                    self.force.cancel()
                    return


class _Announce:
    """The ``task_status`` for :func:`serve` run in the main task: prints the listening line."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def started(self, value: Listening | None = None) -> None:
        if value is not None:
            print(f"refserver listening on {value.url} (press CTRL+C to quit)", file=self.out, flush=True)


async def _main(app: Any, config: Config, out: TextIO) -> int:
    # serve() runs in this task, not in a child started with tg.start(): an error raised
    # before it is listening then reaches this frame as itself, on every backend.
    exit_code = 0
    cannot_listen: OSError | None = None
    async with anyio.create_task_group() as tg:
        signals = _Signals(tg.cancel_scope)
        tg.start_soon(signals.watch)
        try:
            await serve(app, config, shutdown_trigger=signals.stop.wait, task_status=_Announce(out))
        except OSError as exc:  # serve() raises the bind error as itself
            cannot_listen = exc  # re-raised below, outside the task group, so not in a group
        except LifespanFailure:  # (serve() raises it as itself too)
            # lifespan spec 2.0: startup.failed / shutdown.failed make the process exit non-zero.
            exit_code = 1
        finally:
            tg.cancel_scope.cancel()
    if cannot_listen is not None:
        raise cannot_listen
    if signals.forced:
        error_log.error(
            "Forced exit: work still in flight was cut and lifespan shutdown did not run (exit status %d)",
            FORCED_EXIT_STATUS,
        )
        return FORCED_EXIT_STATUS
    return exit_code


def run_until_signalled(app: Any, config: Config, out: TextIO | None = None) -> int:
    """Serve until SIGINT/SIGTERM; return the process exit status. Raises OSError
    (``filename`` is the address) if the server cannot listen."""
    return anyio.run(_main, app, config, out or sys.stdout, backend=config.backend)
