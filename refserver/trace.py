"""The trace: one record per ASGI message, state change, ignored message, error raised into
the app and timer fired, with the connection, the state and the rule behind the step.

The runtime emits records where it applies a machine's effects, so nothing changes state
without a record. Every record carries the state after its step, on every protocol: a message
that changes the state is recorded with the new state, then its ``state`` record names both.
With tracing off the runtime holds no :class:`ConnectionTrace` and does no work for it.
Records go to the ``refserver.trace`` logger (text), to a file (text or JSON lines) and to any
sinks (e.g. :mod:`refserver.testing` records them for tests).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TextIO

from refserver.logs import trace_log

TraceFormat = Literal["text", "jsonl"]
_PAYLOAD_KEYS = ("bytes", "text", "body")


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One step of one connection."""

    time_s: float  # monotonic clock
    conn: str  # "c7": the TCP connection (or "lifespan")
    scope: str  # "http", "ws" or "lifespan"
    kind: str  # "recv", "send", "state", "ignored", "error", "timer", "warning"
    state: str  # the state after the step
    section: str  # the spec section (or RFC section, or decision) behind the step
    detail: str = ""  # plain words: why the state changed, what was ignored, the error
    message: Mapping[str, Any] | None = None  # the ASGI message received or sent
    old_state: str | None = None  # for "state" records


def render_message(message: Mapping[str, Any], *, bodies: bool) -> str:
    """``websocket.receive text=<5 bytes>``: the type, then every other key."""
    parts = [str(message.get("type"))]
    for key, value in message.items():
        if key == "type":
            continue
        if key in _PAYLOAD_KEYS and value is not None and not bodies:
            size = len(value.encode()) if isinstance(value, str) else len(value)
            parts.append(f"{key}=<{size} bytes>")
        elif key == "headers" and not bodies:
            parts.append(f"headers=<{len(list(value))} headers>")
        else:
            parts.append(f"{key}={value!r}")
    return " ".join(parts)


def render_text(record: TraceRecord, *, bodies: bool = False) -> str:
    """``c7 ws state OPEN -> CLOSED (RFC 6455 §7.1.5: the peer's close frame (code 1001))``."""
    where = f"{record.conn} {record.scope} {record.kind}"
    if record.kind == "state":
        text = f"{where} {record.old_state} -> {record.state}"
    elif record.message is not None:
        text = f"{where} {render_message(record.message, bodies=bodies)} [{record.state}]"
    else:
        text = f"{where} [{record.state}]"
    rule = ": ".join(part for part in (record.section, record.detail) if part)
    return f"{text} ({rule})" if rule else text


def _jsonable(value: Any, bodies: bool) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.decode("latin-1") if bodies else f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, bodies) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, bodies) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def render_json(record: TraceRecord, *, bodies: bool = False) -> str:
    data = asdict(record)
    if record.message is not None:
        message = dict(record.message)
        if not bodies:
            for key in _PAYLOAD_KEYS:
                value = message.get(key)
                if value is not None:
                    size = len(value.encode()) if isinstance(value, str) else len(value)
                    message[key] = f"<{size} bytes>"
        data["message"] = _jsonable(message, bodies)
    return json.dumps(data, ensure_ascii=False)


class Tracer:
    """Where trace records go. One per server."""

    def __init__(
        self,
        *,
        bodies: bool = False,
        fmt: TraceFormat = "text",
        file: TextIO | None = None,
        to_log: bool = True,
        sinks: Iterable[Callable[[TraceRecord], None]] = (),
    ) -> None:
        self.bodies = bodies
        self.fmt = fmt
        self.file = file
        self.to_log = to_log
        self.sinks = list(sinks)

    def emit(self, record: TraceRecord) -> None:
        for sink in self.sinks:
            sink(record)
        if self.file is not None:
            line = (
                render_json(record, bodies=self.bodies)
                if self.fmt == "jsonl"
                else render_text(record, bodies=self.bodies)
            )
            self.file.write(line + "\n")
            self.file.flush()
        elif self.to_log and trace_log.isEnabledFor(logging.INFO):
            if self.fmt == "jsonl":
                trace_log.info("%s", render_json(record, bodies=self.bodies))
            else:
                trace_log.info("%s", render_text(record, bodies=self.bodies))

    def connection(self, conn: str, scope: str) -> ConnectionTrace:
        return ConnectionTrace(self, conn, scope)


class ConnectionTrace:
    """The trace of one connection (one scope on it)."""

    __slots__ = ("conn", "scope", "tracer")

    def __init__(self, tracer: Tracer, conn: str, scope: str) -> None:
        self.tracer = tracer
        self.conn = conn
        self.scope = scope

    def record(
        self,
        kind: str,
        state: str,
        section: str,
        detail: str = "",
        message: Mapping[str, Any] | None = None,
        old_state: str | None = None,
    ) -> None:
        self.tracer.emit(
            TraceRecord(time.monotonic(), self.conn, self.scope, kind, state, section, detail, message, old_state)
        )


__all__ = ["ConnectionTrace", "TraceFormat", "TraceRecord", "Tracer", "render_json", "render_text"]
