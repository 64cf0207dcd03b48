"""``refserver ... --reload``: serve the app in a child process and start a new one whenever a
Python file under the watched directories changes (the optional extra ``refserver[reload]``,
on watchfiles; the server itself never imports it).

This process never imports the app: it runs ``python -m refserver`` with the same options
minus ``--reload`` and ``--reload-dir``, in a session of its own so that a terminal's Ctrl-C
reaches only this process, which passes each SIGINT or SIGTERM on to the child once (a second
one forces the child's exit, as without ``--reload``). On a change the child gets SIGTERM and
shuts down gracefully (lifespan shutdown included) before the next one starts. A child that
exits by itself (an error in the app) is started again at the next change.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from refserver.logs import error_log

EXTRA = "refserver[reload]"
# watchfiles groups the changes of this many milliseconds into one reload (an editor saving
# several files, a git checkout).
DEBOUNCE_MS = 300
# The watcher yields (nothing) after this long without a change: the first yield says it watches.
WATCHING_MS = 200
# How long a child may take to stop after SIGTERM beyond its own --shutdown-timeout.
STOP_MARGIN_S = 5.0


def run_with_reload(arguments: Sequence[str], directories: Sequence[str], shutdown_timeout_s: float) -> int:
    """Run ``python -m refserver ARGUMENTS`` until SIGINT or SIGTERM, restarting it whenever a
    ``.py`` file under ``directories`` changes; return the last child's exit status.

    Raises:
        ModuleNotFoundError: watchfiles is not installed.
    """
    import watchfiles

    command = [sys.executable, "-m", "refserver", *arguments]
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        if child.poll() is None:
            child.send_signal(signum)  # once per signal: a second one forces the child's exit

    watched = [str(Path(d).resolve()) for d in directories]
    child = subprocess.Popen(command, start_new_session=True)
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    watching = False
    try:
        for changes in watchfiles.watch(
            *watched,
            watch_filter=watchfiles.PythonFilter(),
            debounce=DEBOUNCE_MS,
            stop_event=stop,
            rust_timeout=WATCHING_MS,
            yield_on_timeout=True,  # the first (empty) yield says the watcher runs
        ):
            if stop.is_set():
                break
            if not watching:
                watching = True
                error_log.info("Watching %s for changes to .py files (--reload)", ", ".join(watched))
            if not changes:
                continue
            changed = sorted(path for _, path in changes)
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            error_log.info("Reloading: %s changed%s", changed[0], more)
            _stop(child, shutdown_timeout_s)
            child = subprocess.Popen(command, start_new_session=True)
            if stop.is_set():  # a signal came while the old child stopped: pass it on
                child.send_signal(received[-1])
        return _wait(child, shutdown_timeout_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.kill()  # the PID this process started
            child.wait()


def _stop(child: subprocess.Popen[bytes], shutdown_timeout_s: float) -> None:
    """SIGTERM: the child shuts down gracefully; killed if it outlives its timeout."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    _wait(child, shutdown_timeout_s)


def _wait(child: subprocess.Popen[bytes], shutdown_timeout_s: float) -> int:
    try:
        return child.wait(timeout=shutdown_timeout_s + STOP_MARGIN_S)
    except subprocess.TimeoutExpired:
        error_log.error("The server did not stop within %.1f s; killing it", shutdown_timeout_s + STOP_MARGIN_S)
        child.kill()
        return child.wait()
