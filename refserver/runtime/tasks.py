"""Task groups for connections whose tasks carry no handle of their own: on trio a trio
nursery, on asyncio anyio's group (docs/implementation.md#one-transport-seam)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, cast

import anyio


class Scope(Protocol):
    def cancel(self) -> None: ...


class TaskGroup(Protocol):
    """What refserver asks of a task group: start a task, cancel them all."""

    @property
    def cancel_scope(self) -> Scope: ...

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> object: ...


def on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (else trio's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False  # trio
    return True


def open_task_group() -> AbstractAsyncContextManager[TaskGroup]:
    """A task group whose tasks carry no handle of their own (on trio, a nursery)."""
    if on_asyncio():
        return cast("AbstractAsyncContextManager[TaskGroup]", anyio.create_task_group())
    import trio  # only on trio, where it is installed

    return cast("AbstractAsyncContextManager[TaskGroup]", trio.open_nursery())
