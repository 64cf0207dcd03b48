"""What every connection handler shares: the app, the config, the lifespan state."""

from __future__ import annotations

import functools
import time
from email.utils import formatdate
from typing import Any, Protocol

import anyio

from refserver.config import Config
from refserver.logs import error_log
from refserver.protocol.effects import Effects
from refserver.protocol.http import Settings
from refserver.protocol.websocket import Timeouts
from refserver.runtime.transport import Address
from refserver.trace import ConnectionTrace, Tracer
from refserver.types import ASGIApp
from refserver.violations import Policy

CALLS_BETWEEN_YIELDS = 3  # docs/decisions.md#fairness


class Pacer:
    """Lets the event loop run during an app's receive() and send() calls (docs/decisions.md#fairness):
    of the calls that can answer at once, every CALLS_BETWEEN_YIELDS-th yields; a call that had
    to wait starts the count again. So an app that loops on them cannot starve the other
    connections, and an echo pays for no extra pass of the loop."""

    __slots__ = ("_unyielded",)

    def __init__(self) -> None:
        self._unyielded = 0

    def waited(self) -> None:
        self._unyielded = 0

    def due(self) -> bool:
        """Count a call that answered at once; True when the caller must now let the event
        loop run (``await anyio.lowlevel.checkpoint()``)."""
        self._unyielded += 1
        if self._unyielded >= CALLS_BETWEEN_YIELDS:
            self._unyielded = 0
            return True
        return False


def netloc(host: str, port: int | None) -> str:
    """Give ``host:port``, an IPv6 host in brackets (RFC 3986 §3.2.2)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_text(client: Address, server: Address) -> str:
    """Name the client for the logs: ``host:port``, a unix socket's, or a TCP client that reset at once."""
    if client is not None:
        return netloc(*client)
    return "unix client" if server is not None and server[1] is None else "a client that already left"


class Handler(Protocol):
    async def shutdown(self) -> None: ...


class ServerContext:
    def __init__(self, app: ASGIApp, config: Config, tracer: Tracer | None = None) -> None:
        self.app = app
        self.config = config
        self.tracer = tracer  # None: tracing is off and costs nothing
        self.violations = Policy(config.app_violations, config.violation_sinks)  # the app's, for every connection
        self._connections = 0
        self.state: dict[str, Any] = {}  # the lifespan state (lifespan spec 2.0, "Lifespan State")
        self.handlers: set[Handler] = set()
        self.shutting_down = False
        self.all_closed = anyio.Event()
        self._date_second = -1
        self._date = b""

    @functools.cached_property
    def http_settings(self) -> Settings:
        """Give what an HTTP connection's machine needs of the config, made once per server."""
        config = self.config
        return Settings(
            max_head_bytes=config.h11_max_incomplete_event_size_bytes,
            keep_alive_s=config.timeout_keep_alive_s,
            body_grace_s=config.request_body_timeout_s,
            body_min_rate_bytes_per_s=config.request_body_min_rate_bytes_per_s,
            ws_max_size_bytes=config.ws_max_size_bytes,
            ws_deflate=config.ws_per_message_deflate,
            ws_timeouts=Timeouts(config.ws_close_timeout_s, config.ws_ping_interval_s, config.ws_ping_timeout_s),
            traced=self.tracer is not None,
        )

    def date(self) -> bytes:
        """Give the Date header value (RFC 9110 §6.6.1), formatted once per second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date

    def new_connection_id(self) -> str:
        """Give the next of ``c1``, ``c2``, ...: it names a TCP connection in the trace."""
        self._connections += 1
        return f"c{self._connections}"

    def trace_for(self, conn_id: str, scope: str) -> ConnectionTrace | None:
        """Give the trace of one scope on a connection, or None when tracing is off."""
        return None if self.tracer is None else self.tracer.connection(conn_id, scope)

    def remove(self, handler: Handler) -> None:
        self.handlers.discard(handler)
        if self.shutting_down and not self.handlers:
            self.all_closed.set()


def record_steps(fx: Effects, state: str, trace: ConnectionTrace | None) -> str:
    """Record the state changes and notes of one input's effects: traced, warnings logged. Returns
    the state after them. Called first by every runtime's ``_apply``."""
    for step in fx.transitions:
        state = step.new
        if trace is not None:
            trace.record("state", step.new, step.section, step.why, old_state=step.old)
    for note in fx.notes:
        if note.kind == "warning":
            error_log.warning("%s (%s)", note.text, note.section)
        if trace is not None:
            trace.record(note.kind, state, note.section, note.text)
    return state


def record_error(trace: ConnectionTrace | None, state: str, exc: BaseException, message: Any, section: str) -> None:
    """Trace what an app's ``send(message)`` raises, with the spec section the error names
    (``section`` when it names none)."""
    if trace is not None:
        trace.record("error", state, getattr(exc, "section", section), str(exc), message=message)


# The trace line of an app instance the server cancels at the shutdown timeout.
SHUTDOWN_TIMEOUT_WHY = "shutdown timeout: the server cancels the app"


def log_cancelled(ctx: ServerContext, what: str) -> None:
    """Log an app instance the server cancels at the shutdown timeout (``what``: which, and how it ended)."""
    error_log.warning("Cancelled at the shutdown timeout (%g s): %s", ctx.config.shutdown_timeout_s, what)
