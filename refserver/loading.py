"""Finding the app named MODULE:ATTR, and running ASGI 2 apps as ASGI 3."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, cast

from refserver.errors import AppLoadError
from refserver.logs import error_log
from refserver.types import ASGIApp, Receive, Scope, Send


def is_asgi3(app: Any) -> bool:
    """asgi spec, "Legacy Applications": a 2.0 app is a plain callable taking only the
    scope and returning an awaitable instance; a 3.0 app is a coroutine callable."""
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.iscoroutinefunction(app):
        return True
    return inspect.iscoroutinefunction(type(app).__call__) if callable(app) else False


def as_asgi3(app: Any) -> ASGIApp:
    if is_asgi3(app):
        return cast(ASGIApp, app)
    legacy = cast(Callable[[Scope], Callable[[Receive, Send], Awaitable[None]]], app)

    async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
        instance = legacy(scope)
        await instance(receive, send)

    asgi3.__qualname__ = f"asgi3({getattr(app, '__qualname__', app)!s})"
    return asgi3


def _a(obj: Any) -> str:
    """``obj``'s type with its article: "an int", "a str"."""
    name = type(obj).__name__
    return f"an {name}" if name[0].lower() in "aeiou" else f"a {name}"


def _takes_no_arguments(obj: Any) -> bool:
    """Whether ``obj()`` binds (False when Python cannot tell its signature)."""
    try:
        inspect.signature(obj).bind()
    except (TypeError, ValueError):
        return False
    return True


def load_app(path: str, *, app_dir: str = ".", factory: bool = False) -> ASGIApp:
    module_name, sep, attrs = path.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f"the app must be given as MODULE:ATTR (for example main:app), not {path!r}")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise AppLoadError(
                f"cannot import module {module_name!r}: no module named {missing!r} (searched {directory} and sys.path)"
            ) from None
        raise
    obj: Any = module
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attrs!r}") from None
    if factory:
        if not callable(obj):
            raise AppLoadError(f"{path} is {_a(obj)}, not a callable app factory")
        if is_asgi3(obj) or not _takes_no_arguments(obj):
            # An app factory is called with no arguments; this is the app itself (or needs them).
            what = "an ASGI 3 app" if is_asgi3(obj) else "a callable that takes arguments"
            raise AppLoadError(f"{path} is {what}, not an app factory: run it without --factory")
        obj = obj()
    elif callable(obj) and not is_asgi3(obj) and _takes_no_arguments(obj):
        # asgi spec, "Legacy Applications": an ASGI 2 app takes the scope, so a callable taking
        # nothing cannot be one. It is an app factory given without --factory (as uvicorn does,
        # call it and say so, instead of answering every request with 500).
        error_log.warning("%s takes no arguments, so it is taken for an app factory and called; pass --factory", path)
        obj = obj()
    if not callable(obj):
        raise AppLoadError(f"{path} is {_a(obj)}, not a callable ASGI app")
    return as_asgi3(obj)
