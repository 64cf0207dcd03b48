"""Task groups for connections that hold as little as the backend allows.

anyio's task group gives every task it starts a handle: a cancel scope, an event and a
wrapper coroutine, so that the task can be awaited or cancelled alone. refserver never
does either (a connection's tasks end together, with their group), and on trio those
objects were about a third of what an idle WebSocket connection held. On trio a
connection's tasks therefore go into a trio nursery, through trio's public API: anyio on
trio runs trio's own cancel scopes, so cancelling works across both alike. On asyncio
the group is anyio's.
"""

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
