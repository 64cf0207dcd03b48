"""The exception families of refserver, split by who is at fault.

::

    OSError
     └── ClientDisconnected      the peer is gone: raised from send() on a closed
                                 connection (www spec 2.5, "Disconnected Client - send exception")
    Exception
     └── RefserverError
          ├── ASGIProtocolError  the *app* sent a message the spec forbids in this
          │   (also RuntimeError) state or with this shape; raised from send()
          ├── AppLoadError       the MODULE:ATTR given to the server cannot be loaded
          └── LifespanFailure    lifespan startup or shutdown failed (lifespan spec 2.0)

A peer's bad bytes never surface as exceptions to the app: they become an HTTP status
or a WebSocket close code. refserver's own bugs are ordinary exceptions that escape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ClientDisconnected(OSError):
    """``send()`` was called on a connection that is closed or closing.

    www spec 2.5, "Disconnected Client - send exception" (since 2.4): "If send() is called on
    a closed connection the server should raise a server-specific subclass of OSError."
    refserver catches it if it escapes the app and never logs it as an error. ``code`` is
    the WebSocket close code that ended the connection, or ``None`` for HTTP.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RefserverError(Exception):
    """Base class of refserver's own (non-I/O) errors."""


@dataclass(frozen=True, slots=True)
class SafeReading:
    """The one way a message that breaks a rule can still be served (docs/decisions.md#app-violations)."""

    rule: str  # names the rule, the same for every breach of it (the warning is logged once per rule)
    taken: str  # what serving it this way does, e.g. "sent as b'content-type'"
    message: dict[str, Any]  # the message as served


# The hint a violation with a safe reading carries under ``--app-violations raise`` (the default).
WARN_HINT = "--app-violations warn would serve it"


class ASGIProtocolError(RefserverError, RuntimeError):
    """The application sent a message that breaks the ASGI spec.

    The text names the message type, what is wrong, the state the connection was in and
    the spec section, e.g. ``http.response.body sent before http.response.start (state:
    AWAITING_START; www spec 2.5, "Response Body - send event")``. A breach with a safe
    reading (``safe_reading``) is raised only under ``--app-violations raise`` (or, under warn,
    when serving its reading breaks the rule again); its text
    ends with a hint naming ``--app-violations warn`` and what it would do.
    """

    def __init__(self, message_type: str, problem: str, section: str, safe_reading: SafeReading | None = None) -> None:
        self.message_type = message_type
        self.problem = problem
        self.section = section
        self.safe_reading = safe_reading
        self.state: str | None = None
        super().__init__(self._render())

    def with_state(self, state: str) -> ASGIProtocolError:
        """Record the connection state in which the message arrived."""
        if self.state is None:
            self.state = state
            self.args = (self._render(),)
        return self

    def _render(self) -> str:
        where = f"state: {self.state}; " if self.state else ""
        text = f"{self.message_type} {self.problem} ({where}{self.section})"
        if self.safe_reading is not None:
            text += f"; {WARN_HINT} ({self.safe_reading.taken})"
        return text


class AppLoadError(RefserverError):
    """The application named as MODULE:ATTR could not be loaded."""


class LifespanFailure(RefserverError):
    """Lifespan startup or shutdown failed; the server must exit non-zero."""
