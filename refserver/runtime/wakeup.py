"""A reusable wake-up call for one waiting task."""

from __future__ import annotations

import asyncio

import anyio


class Wakeup:
    """Like an anyio.Event that re-arms itself after each wait.

    A ``fire()`` that comes while nobody waits is remembered, so the next ``wait()``
    returns at once; callers re-check their condition after every wait. An event is
    allocated only when a waiter really has to block.
    """

    __slots__ = ("_event", "_fired")

    def __init__(self) -> None:
        self._fired = False
        self._event: anyio.Event | None = None

    def fire(self) -> None:
        self._fired = True
        event = self._event
        if event is not None:
            event.set()

    async def wait(self) -> None:
        if not self._fired:
            event = self._event = anyio.Event()
            try:
                await event.wait()
            finally:
                self._event = None
        self._fired = False


class AsyncioWakeup(Wakeup):
    """The same on asyncio, with a bare future: no event object, one callback to wake."""

    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
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
