"""A reusable wake-up call for one waiting task."""

from __future__ import annotations

import anyio


class Wakeup:
    """Like an anyio.Event that re-arms itself after each wait.

    A ``fire()`` that comes while nobody waits is remembered, so the next ``wait()``
    returns at once; callers re-check their condition after every wait.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def fire(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        event = self._event
        if not event.is_set():
            await event.wait()
        self._event = anyio.Event()
