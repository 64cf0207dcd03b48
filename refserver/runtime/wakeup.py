"""A reusable wake-up call for one waiting task, made with the running event loop's own
parking (no event objects): :func:`new_wakeup`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import trio


class Wakeup:
    """Like an anyio.Event that re-arms itself after each wait.

    A ``fire()`` that comes while nobody waits is remembered, so the next ``wait()``
    returns at once; callers re-check their condition after every wait.
    """

    __slots__ = ("_fired",)

    def fire(self) -> None:
        raise NotImplementedError

    async def wait(self) -> None:
        raise NotImplementedError


class AsyncioWakeup(Wakeup):
    """On asyncio: a bare future, made only when the waiter has to block."""

    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._fired = False
        self._loop = loop
        self._future: asyncio.Future[None] | None = None

    def fire(self) -> None:
        self._fired = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self) -> None:
        if not self._fired:
            future = self._future = self._loop.create_future()
            try:
                await future
            finally:
                self._future = None
        self._fired = False


class TrioWakeup(Wakeup):
    """On trio: the waiting task is parked and rescheduled by ``fire()``; a cancelled wait
    forgets it."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._fired = False
        self._task: trio.lowlevel.Task | None = None
        if _trio is None:
            _load_trio()

    def fire(self) -> None:
        self._fired = True
        task = self._task
        if task is not None:
            self._task = None
            _trio.reschedule(task)

    async def wait(self) -> None:
        if not self._fired:
            self._task = _trio.current_task()
            await _trio.wait_task_rescheduled(self._abort)
        self._fired = False

    def _abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        self._task = None
        succeeded: trio.lowlevel.Abort = _trio.Abort.SUCCEEDED
        return succeeded


_trio: Any = None  # trio.lowlevel, once a TrioWakeup is made (trio is optional)


def _load_trio() -> None:
    global _trio
    import trio.lowlevel as lowlevel

    _trio = lowlevel


def new_wakeup() -> Wakeup:
    """A wake-up call for a task of the running event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return TrioWakeup()
    return AsyncioWakeup(loop)
