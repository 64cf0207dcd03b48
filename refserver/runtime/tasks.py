"""What a connection's tasks need of the event loop, made with the loop's own means: a task
group and a wake-up call (docs/implementation.md#one-transport-seam)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio

if TYPE_CHECKING:
    import trio


class Scope(Protocol):
    def cancel(self) -> None: ...


class TaskGroup(Protocol):
    """What refserver asks of a task group: start a task, cancel them all."""

    @property
    def cancel_scope(self) -> Scope: ...

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> object: ...


def on_asyncio() -> bool:
    """Tell whether the running event loop is asyncio's (else trio's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False  # trio
    return True


def open_task_group() -> AbstractAsyncContextManager[TaskGroup]:
    """Open a task group whose tasks carry no handle of their own (on trio, a nursery)."""
    if on_asyncio():
        return cast("AbstractAsyncContextManager[TaskGroup]", anyio.create_task_group())
    import trio  # only on trio, where it is installed

    return cast("AbstractAsyncContextManager[TaskGroup]", trio.open_nursery())


class AsyncioWakeup:
    """On asyncio: a bare future, made only when the waiter has to block."""

    __slots__ = ("_fired", "_future", "_loop")

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


class TrioWakeup:
    """On trio: the waiting task is parked and rescheduled by ``fire()``; a cancelled wait
    forgets it."""

    __slots__ = ("_fired", "_task")

    def __init__(self) -> None:
        global _trio
        self._fired = False
        self._task: trio.lowlevel.Task | None = None
        if _trio is None:
            import trio.lowlevel  # trio is optional: imported only when it runs

            _trio = trio.lowlevel

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
        return cast("trio.lowlevel.Abort", _trio.Abort.SUCCEEDED)


_trio: Any = None  # trio.lowlevel, once a TrioWakeup is made


def new_wakeup() -> AsyncioWakeup | TrioWakeup:
    """Make a wake-up call for a task of the running event loop: like an anyio.Event that re-arms
    itself after each wait. A ``fire()`` that comes while nobody waits is remembered, so the
    next ``wait()`` returns at once; callers re-check their condition after every wait."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return TrioWakeup()
    return AsyncioWakeup(loop)
