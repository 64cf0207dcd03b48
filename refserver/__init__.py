"""refserver: a reference ASGI 3 server that does exactly what the ASGI spec says.

Public API: :func:`serve`, :func:`run`, :class:`Config`, :class:`ClientDisconnected`.
"""

# No `from __future__ import annotations` and only private names from typing: the package's
# namespace is its API (__all__) and its submodules, nothing else.
from typing import Any as _Any

from refserver.config import Config
from refserver.errors import (
    AppLoadError,
    ASGIProtocolError,
    ClientDisconnected,
    LifespanFailure,
    RefserverError,
)

__version__ = "0.1.0"


def run(app: _Any, **options: _Any) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, like the command line. ``options`` are
    :class:`Config` fields. Raises SystemExit with a non-zero status if lifespan fails, and
    OSError (its ``filename`` is the address) if the server cannot listen."""
    from refserver.runtime.main import run_until_signalled

    status = run_until_signalled(app, Config.from_options(**options))
    if status:
        raise SystemExit(status)


async def serve(app: _Any, config: Config | None = None, **kwargs: _Any) -> None:
    """Serve inside an anyio task group; see :func:`refserver.runtime.server.serve`."""
    from refserver.runtime.server import serve as _serve

    await _serve(app, config, **kwargs)


__all__ = [
    "ASGIProtocolError",
    "AppLoadError",
    "ClientDisconnected",
    "Config",
    "LifespanFailure",
    "RefserverError",
    "__version__",
    "run",
    "serve",
]
