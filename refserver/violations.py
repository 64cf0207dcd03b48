"""The app-violation policy: what the server does with a message that breaks a spec rule.

``--app-violations raise`` (the default): ``send()`` raises :class:`ASGIProtocolError`, as the
asgi spec's "Error Handling" says. ``--app-violations warn``: a message whose breach has exactly
one safe reading (:class:`~refserver.errors.SafeReading`, decided in :mod:`refserver.spec.messages`)
is served in that reading, and the breach is logged at WARNING once per rule for the server's
app; a breach without one still raises (docs/decisions.md#app-violations).

Either way every breach in an HTTP or WebSocket ``send()`` is traced (a ``violation`` record
when served, an ``error`` record when raised) and handed to the server's violation sinks as a
:class:`Violation`, which is how :mod:`refserver.testing` keeps them (a lifespan breach fails
the startup or shutdown instead). The policy acts only where ``send()`` has already failed:
a valid message never reaches this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from refserver.config import AppViolations
from refserver.errors import ASGIProtocolError
from refserver.logs import error_log
from refserver.trace import ConnectionTrace

POLICIES: tuple[AppViolations, ...] = ("raise", "warn")

Message = Mapping[str, Any]
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Violation:
    """One message an app sent that breaks a spec rule."""

    message_type: str  # "http.response.start"
    problem: str  # "has a header name b'Content-Type' that is not lower-case"
    section: str  # the spec section of the rule
    state: str | None  # the connection's state when the message was sent
    taken: str | None  # the safe reading it was served in ("sent as b'content-type'"); None: send() raised

    def __str__(self) -> str:
        done = f"; {self.taken}" if self.taken is not None else ""
        return f"{self.message_type} {self.problem}{done} ({self.section})"

    @classmethod
    def of(cls, error: ASGIProtocolError, *, served: bool) -> Violation:
        reading = error.safe_reading
        taken = reading.taken if served and reading is not None else None
        return cls(error.message_type, error.problem, error.section, error.state, taken)


class Policy:
    """The app-violation policy of one server, and so of one app: it remembers which rules
    it has logged."""

    def __init__(self, mode: AppViolations = "raise", sinks: Iterable[Callable[[Violation], None]] = ()) -> None:
        if mode not in POLICIES:
            raise ValueError(f"app_violations must be raise or warn, not {mode!r}")
        self.mode = mode
        self.sinks = tuple(sinks)
        self._logged: set[tuple[str, str]] = set()

    def serve(
        self,
        error: BaseException,
        message: Message,
        send: Callable[[Message], E],
        trace: ConnectionTrace | None,
    ) -> tuple[dict[str, Any], E]:
        """Serve a message whose ``send`` raised ``error`` in its safe reading, under ``warn``;
        repeat for each further breach the reading shows. Return the message served and what
        ``send`` returned for it.

        Raises:
            BaseException: ``error`` (or the error of a further breach), when the policy is
                ``raise``, the breach has no safe reading, or ``error`` is not a breach (a
                closed connection); a breach is reported to the sinks first.
        """
        taken: set[str] = set()  # each rule's reading is taken once: a reading that breaks its own rule raises
        while True:
            if not isinstance(error, ASGIProtocolError):
                raise error
            reading = error.safe_reading
            if reading is None or self.mode == "raise" or reading.rule in taken:
                self.report(error)
                raise error
            taken.add(reading.rule)
            self._served(error, message, trace)
            message = reading.message
            try:
                return message, send(message)
            except (ASGIProtocolError, OSError) as again:
                error = again

    def report(self, error: BaseException) -> None:
        """Hand a breach that raises into the app to the sinks (any other error is no breach)."""
        if isinstance(error, ASGIProtocolError):
            for sink in self.sinks:
                sink(Violation.of(error, served=False))

    def _served(self, error: ASGIProtocolError, message: Message, trace: ConnectionTrace | None) -> None:
        reading = error.safe_reading
        if reading is None:  # pragma: no cover - serve() hands over only breaches with a reading
            raise RuntimeError(f"{error} has no safe reading to serve")
        violation = Violation.of(error, served=True)
        rule = (error.message_type, reading.rule)
        if rule not in self._logged:
            self._logged.add(rule)
            error_log.warning("%s; later breaches of this rule are served alike without a warning", violation)
        if trace is not None:
            detail = f"{error.problem}; {reading.taken}"
            trace.record("violation", error.state or "", error.section, detail, message=message)
        for sink in self.sinks:
            sink(violation)


__all__ = ["POLICIES", "AppViolations", "Policy", "Violation"]
