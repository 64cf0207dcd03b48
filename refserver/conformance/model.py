"""The scenario data model: what a scenario is made of, and the builders used to write one.

Standard library only: the probe app imports this module inside whatever server is
being tested, so nothing here may depend on anyio, h11 or refserver's core.

A :class:`Scenario` has two scripts and a list of checks:

- the **client script** (:class:`Step` items built by the ``c_*`` functions): what the raw
  client does on the wire, including faults (RST, half-close, stop reading) and waits on
  events that the probe app reports ("the app has received the message");
- the **app script** (:class:`Step` items built by the ``a_*`` functions): what the probe
  app does with ``receive()`` and ``send()``, and how it ends;
- the **checks** (:class:`Check`): an observable computed from both traces, the values
  the spec allows (``fnmatch`` patterns), and refserver's own choice among them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Level(Enum):
    """How strongly the spec asks for the expected outcome."""

    MUST = "MUST"  # breaking it is a fail
    SHOULD = "SHOULD"  # breaking it deviates, whatever spec version the target claims
    MAY = "MAY"  # the spec allows it and nothing more: not doing it only differs from refserver
    UNSPECIFIED = "unspecified"  # the spec is silent; another value only differs from refserver's choice


@dataclass(frozen=True)
class Rule:
    """The sentence a level rests on: where it is (a spec section heading as the spec spells
    it, or an RFC section) and the words, quoted. For an unspecified level the sentence is the
    text that comes closest, and ``note`` says what it leaves open."""

    level: Level
    source: str
    sentence: str
    note: str = ""

    def cite(self) -> str:
        """One line: the level, the source and the quoted sentence."""
        note = f" ({self.note})" if self.note else ""
        return f'{self.level.value}: {self.source}: "{self.sentence}"{note}'


@dataclass(frozen=True)
class Step:
    """One step of a client or app script: an operation name and its arguments."""

    op: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.args.items() if v is not None)
        return f"{self.op}({shown})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Check:
    """One expectation about an observable of the run.

    ``allowed`` are ``fnmatch`` patterns over the observable's string value. ``choice``
    is the value refserver produces (marked in reports). ``since`` is the www spec version
    that made the rule: a target advertising an older version is not held to it (n/a),
    and a SHOULD check fails outright for a target that advertises ``since`` or later.
    ``by_version`` replaces ``allowed`` for targets advertising at least that version
    (first match wins, newest first).
    """

    observable: str
    allowed: tuple[str, ...]
    choice: str | None = None
    level: Level | None = None  # None: the scenario's level
    since: str | None = None
    label: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    by_version: tuple[tuple[str, tuple[str, ...]], ...] = ()
    show: bool = False  # put the observed value into the matrix cell
    rule: Rule | None = None  # the sentence this check's own level rests on (None: the scenario's)

    def allowed_for(self, version: tuple[int, int]) -> tuple[str, ...]:
        for minimum, patterns in self.by_version:
            if version >= parse_version(minimum):
                return patterns
        return self.allowed


@dataclass(frozen=True)
class ServerNeeds:
    """A scenario that needs a server of its own (not the shared one)."""

    lifespan: bool = False  # the probe runs this scenario's app script on the lifespan scope
    ping_interval_s: float | None = None  # ask for keepalive pings this often, where the target can
    shutdown: bool = False  # the client script sends SIGTERM to the server (c_shutdown_server)
    exits: bool = False  # the server is expected to exit by itself: wait for it (5 s), record "server_end"
    # Options a target may lack (see :data:`refserver.conformance.targets.OPTIONS`): a target
    # without ``uds`` or ``root_path`` is n/a for the scenario; one without a close timeout
    # option is run with its own default (the scenario's window allows for a 10 s default).
    uds: bool = False  # listen on a Unix socket (in a fresh directory) instead of TCP; the client uses it
    root_path: str | None = None  # the server's root_path setting
    ws_close_timeout_s: float | None = None  # how long to wait for the peer's close frame, where configurable
    # TLS: the server gets a certificate and key the runner makes for the run (with ``trustme``)
    # and the client speaks TLS to it; ``client_cert`` also makes the server require a client
    # certificate signed by the run's CA, and the client present one. A target without the
    # option is n/a for the scenario.
    tls: bool = False
    client_cert: bool = False

    def options(self) -> dict[str, str]:
        """The options asked for, by name, as text for the command line."""
        wanted: dict[str, str] = {}
        if self.tls or self.client_cert:
            wanted["tls"] = ""
        if self.client_cert:
            wanted["client_cert"] = ""
        if self.uds:
            wanted["uds"] = ""
        if self.root_path is not None:
            wanted["root_path"] = self.root_path
        if self.ws_close_timeout_s is not None:
            wanted["ws_close_timeout"] = f"{self.ws_close_timeout_s:g}"
        return wanted


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    lesson: str  # one sentence: what it teaches
    group: str  # the report groups rows by this (a spec section)
    refs: tuple[str, ...]  # spec sections and RFC clauses it rests on
    level: Level
    protocol: str  # "websocket", "http" or "lifespan"
    client: tuple[Step, ...]
    app: tuple[Step, ...]
    checks: tuple[Check, ...]
    peer_case: int | None = None  # the numbered scenario of tests/test_ws_peer_scenarios.py, if any
    extension: str | None = None  # n/a when the target does not advertise this scope extension
    server: ServerNeeds | None = None
    app_deadline_s: float = 4.0  # how long the runner waits for the app to end after the client script
    lifespan_app: tuple[Step, ...] = ()  # with ServerNeeds(lifespan=True): the script for the lifespan scope
    meta: bool = False  # judged from the other scenarios' results, not run
    rule: Rule | None = None  # the sentence the scenario's level rests on

    def rule_of(self, check: Check) -> Rule | None:
        """The sentence a check's level rests on: its own, else the scenario's."""
        return check.rule or self.rule

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "lesson": self.lesson,
            "group": self.group,
            "refs": list(self.refs),
            "level": self.level.value,
            "protocol": self.protocol,
            "peer_case": self.peer_case,
            "extension": self.extension,
            "client": [s.describe() for s in self.client],
            "app": [s.describe() for s in self.app],
            "lifespan_app": [s.describe() for s in self.lifespan_app],
            "checks": [
                {
                    "observable": c.observable,
                    "params": dict(c.params),
                    "label": c.label,
                    "allowed": list(c.allowed),
                    "by_version": [[v, list(p)] for v, p in c.by_version],
                    "refserver": c.choice,
                    "level": (c.level or self.level).value,
                    "since": c.since,
                    "rule": rule.cite() if (rule := self.rule_of(c)) else None,
                }
                for c in self.checks
            ],
        }


def parse_version(text: str | None) -> tuple[int, int]:
    """ "2.4" -> (2, 4); a missing spec_version means 2.0 (asgi spec, "Versioning")."""
    if not text:
        return (2, 0)
    try:
        major, _, minor = str(text).partition(".")
        return (int(major), int(minor or 0))
    except ValueError:
        return (2, 0)


# ---------------------------------------------------------------------------------------
# Client script builders. Every wait is bounded by ``timeout`` seconds.


def c_handshake(
    *,
    suffix: str = "",
    headers: tuple[tuple[str, str], ...] = (),
    key: str | None = "dGhlIHNhbXBsZSBub25jZQ==",
    version: str | None = "13",
    timeout: float = 3.0,
    after: bytes = b"",
    chop: int = 0,
    echo_close: bool = True,
    close_on_eof: bool = True,
) -> Step:
    """Send the opening handshake (RFC 6455 §4.1) to the scenario's path and wait for the
    response head. ``after`` is written in the same segment, right behind the request;
    ``chop`` writes everything in pieces of that many bytes. Like any RFC client, the
    client answers the server's close frame with its own (the same code) unless
    ``echo_close`` is false, in which case the script decides; and it closes its socket
    when the server closes TCP, unless ``close_on_eof`` is false (TCP held open)."""
    return Step(
        "handshake",
        {
            "suffix": suffix,
            "headers": headers,
            "key": key,
            "version": version,
            "timeout": timeout,
            "after": after,
            "chop": chop,
            "echo_close": echo_close,
            "close_on_eof": close_on_eof,
        },
    )


def c_request(
    method: str = "GET",
    *,
    suffix: str = "",
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes | None = None,
    chunked: tuple[bytes, ...] | None = None,
    end: bool = True,
    raw: bytes | None = None,
) -> Step:
    """Send one HTTP/1.1 request (``raw`` replaces everything after the request target's
    ``{path}`` placeholder is filled). ``end=False`` leaves the body unfinished."""
    return Step(
        "request",
        {
            "method": method,
            "suffix": suffix,
            "headers": headers,
            "body": body,
            "chunked": chunked,
            "end": end,
            "raw": raw,
        },
    )


def c_send_body(data: bytes) -> Step:
    return Step("send_raw", {"data": data})


def c_send_body_on_continue(data: bytes, timeout: float = 3.0) -> Step:
    """Wait for the server's first answer to an ``Expect: 100-continue`` request: if it is
    100 (Continue), send ``data`` (the content), as an RFC 9110 §10.1.1 client does; if it is
    the final response, send nothing."""
    return Step("body_on_continue", {"data": data, "timeout": timeout})


def c_text(text: str) -> Step:
    return Step("frame", {"opcode": 1, "payload": text.encode()})


def c_binary(data: bytes) -> Step:
    return Step("frame", {"opcode": 2, "payload": data})


def c_binary_sized(size: int) -> Step:
    """A binary frame of ``size`` bytes, made when the step runs (not stored in the catalogue)."""
    return Step("frame", {"opcode": 2, "size": size})


def c_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True) -> Step:
    """A frame built byte by byte (RFC 6455 §5.2); ``rsv`` is the 3 RSV bits as 0..7."""
    return Step("frame", {"opcode": opcode, "payload": payload, "fin": fin, "rsv": rsv, "masked": masked})


def c_ping(payload: bytes = b"hello") -> Step:
    return Step("frame", {"opcode": 9, "payload": payload})


def c_close(code: int | None = 1000, reason: str = "", *, raw_payload: bytes | None = None) -> Step:
    """A close frame: with a code and reason, empty (``code=None``), or an arbitrary payload."""
    return Step("close", {"code": code, "reason": reason, "raw_payload": raw_payload})


def c_raw(data: bytes) -> Step:
    return Step("send_raw", {"data": data})


def c_reset() -> Step:
    """Abort the TCP connection: SO_LINGER(1, 0) then close sends an RST."""
    return Step("reset")


def c_close_tcp() -> Step:
    """Close the client's socket (FIN in both directions: the client is done)."""
    return Step("close_tcp")


def c_half_close() -> Step:
    """Send FIN (shutdown for writing) and keep reading."""
    return Step("half_close")


def c_stop_reading() -> Step:
    """Stop reading from the socket (the server's writes back up)."""
    return Step("stop_reading")


def c_resume_reading() -> Step:
    return Step("resume_reading")


def c_wait_app(event: str, *, count: int = 1, timeout: float = 3.0, required: bool = True) -> Step:
    """Wait until the probe has reported ``event`` ``count`` times. Events: ``hello``,
    ``received:<type>`` (receive() returned a message of that type), ``sent:<type>`` (send()
    of that type returned or raised), ``mark:<name>``, ``ended``."""
    return Step("wait_app", {"event": event, "count": count, "timeout": timeout, "required": required})


def c_wait_close(timeout: float = 3.0, *, required: bool = False) -> Step:
    """Wait until the server's close frame arrives or the TCP connection ends."""
    return Step("wait_close", {"timeout": timeout, "required": required})


def c_wait_eof(timeout: float = 3.0) -> Step:
    """Wait until the server ends the TCP connection."""
    return Step("wait_eof", {"timeout": timeout})


def c_wait_messages(count: int = 1, timeout: float = 3.0) -> Step:
    """Wait until ``count`` data messages (or pongs, or the close) have arrived."""
    return Step("wait_messages", {"count": count, "timeout": timeout})


def c_wait_frame(opcode: int, timeout: float = 3.0) -> Step:
    """Wait until a frame with this opcode (or the end of the connection) arrives."""
    return Step("wait_frame", {"opcode": opcode, "timeout": timeout})


def c_wait_responses(count: int = 1, timeout: float = 3.0) -> Step:
    """Wait until ``count`` complete HTTP responses (or the end of the connection)."""
    return Step("wait_responses", {"count": count, "timeout": timeout})


def c_wait_client(ev: str, timeout: float = 3.0) -> Step:
    """Wait until the client has recorded ``ev`` (e.g. ``informational``, ``response``, ``eof``)."""
    return Step("wait_client", {"ev": ev, "timeout": timeout})


def c_gate(name: str) -> Step:
    """Let the app past its ``a_gate(name)``."""
    return Step("gate", {"name": name})


def c_mark(name: str) -> Step:
    """Record a point in the client trace (timings are measured from marks)."""
    return Step("mark", {"name": name})


def c_pause(seconds: float) -> Step:
    """An explicit pause (used only where time itself is the subject: keepalive, timeouts)."""
    return Step("pause", {"seconds": seconds})


def c_shutdown_server() -> Step:
    """Ask the server to shut down gracefully (SIGTERM, or the in-process trigger)."""
    return Step("shutdown_server")


def c_write_body(total: int, *, chunk: int = 1 << 16, stall_s: float = 1.0, timeout: float = 10.0) -> Step:
    """Start writing ``total`` bytes of request content in ``chunk``-sized writes, in the
    background; the step returns once one write has not finished within ``stall_s`` (the
    server stopped reading: ``body_stalled``, with the bytes written before it), or once all
    is written (``body_written``), or after ``timeout``. The writing goes on after the step
    returns; ``c_wait_client("body_written")`` waits for its end."""
    return Step("write_body", {"total": total, "chunk": chunk, "stall_s": stall_s, "timeout": timeout})


def c_plain_to_tls(data: bytes, timeout: float = 3.0) -> Step:
    """On a connection of its own, send ``data`` in plain text to the server's TLS port (no
    handshake), and read what comes back until the server ends the connection or ``timeout``
    passes; recorded as ``plain_answer``. The script's other connections speak TLS."""
    return Step("plain_to_tls", {"data": data, "timeout": timeout})


def c_connect_only() -> Step:
    """Open a TCP connection without sending anything."""
    return Step("connect")


# ---------------------------------------------------------------------------------------
# App script builders (run by the probe app).


def a_receive(timeout: float | None = 3.0, *, catch: bool = False) -> Step:
    """``await receive()``; reported with its result, or ``receive_timeout``. What it raises
    is reported and re-raised (the app ends with it), unless ``catch``: then the script goes on,
    as an app that catches the exception would."""
    return Step("receive", {"timeout": timeout, "catch": catch})


def a_receive_until(kind: str, timeout: float = 3.0) -> Step:
    """Call ``receive()`` until it returns a message of type ``kind`` (or times out)."""
    return Step("receive_until", {"kind": kind, "timeout": timeout})


def a_send(message: Mapping[str, Any], timeout: float | None = 3.0, *, catch: bool = False) -> Step:
    """``await send(message)``; reported as returned, raised (class, OSError or not) or
    blocked (did not return within ``timeout``). What it raises is reported and re-raised (the
    app ends with it), unless ``catch``: then the script goes on, as an app that catches it would."""
    return Step("send", {"message": dict(message), "timeout": timeout, "catch": catch})


def a_accept(subprotocol: str | None = None, headers: tuple[tuple[bytes, bytes], ...] | None = None) -> Step:
    message: dict[str, Any] = {"type": "websocket.accept"}
    if subprotocol is not None:
        message["subprotocol"] = subprotocol
    if headers is not None:
        message["headers"] = [list(h) for h in headers]
    return a_send(message)


def a_close(code: Any = None, reason: Any = None, timeout: float | None = 3.0, *, catch: bool = False) -> Step:
    message: dict[str, Any] = {"type": "websocket.close"}
    if code is not None:
        message["code"] = code
    if reason is not None:
        message["reason"] = reason
    return a_send(message, timeout, catch=catch)


def a_text(text: str, *, catch: bool = False) -> Step:
    return a_send({"type": "websocket.send", "text": text}, catch=catch)


def a_bytes(data: bytes) -> Step:
    return a_send({"type": "websocket.send", "bytes": data})


def a_echo() -> Step:
    """Receive one message and send the same data back."""
    return Step("echo")


def a_respond(status: int = 200, body: bytes = b"ok", headers: tuple[tuple[bytes, bytes], ...] = ()) -> Step:
    """http.response.start then one http.response.body."""
    return Step("respond", {"status": status, "body": body, "headers": headers})


def a_drain_body(timeout: float = 3.0, *, quiet: bool = False) -> Step:
    """Receive http.request messages until more_body is false; the body is reported. With
    ``quiet``, the http.request messages are not reported one by one (a large body would be
    hundreds of reports), only the body and the number of chunks."""
    return Step("drain_body", {"timeout": timeout, "quiet": quiet})


def a_sleep(seconds: float) -> Step:
    return Step("sleep", {"seconds": seconds})


def a_gate(name: str, timeout: float = 5.0) -> Step:
    """Wait until the client script opens the gate ``name``."""
    return Step("gate", {"name": name, "timeout": timeout})


def a_mark(name: str) -> Step:
    return Step("mark", {"name": name})


def a_return() -> Step:
    return Step("return")


def a_raise() -> Step:
    """Raise ``RuntimeError`` out of the app."""
    return Step("raise")


def a_require_extension(name: str) -> Step:
    """If ``scope["extensions"]`` lacks ``name``, report ``unsupported`` and close (the cell is n/a)."""
    return Step("require_extension", {"name": name})


def a_send_until_blocked(
    message: Mapping[str, Any],
    *,
    block_s: float = 0.5,
    max_bytes: int = 64 << 20,
    max_s: float = 6.0,
    then_wait_s: float | None = None,
) -> Step:
    """Send ``message`` repeatedly until one send() takes longer than ``block_s`` (reported
    as blocked after so many bytes), or ``max_bytes``/``max_s`` is reached. With
    ``then_wait_s``, the slow send is reported as ``send_pending`` and awaited on (up to
    that long), and its end is reported like any send."""
    return Step(
        "send_until_blocked",
        {
            "message": dict(message),
            "block_s": block_s,
            "max_bytes": max_bytes,
            "max_s": max_s,
            "then_wait_s": then_wait_s,
        },
    )


def a_set_state(key: str, value: Any) -> Step:
    """Lifespan: ``scope["state"][key] = value`` (reported as unsupported if there is no state)."""
    return Step("set_state", {"key": key, "value": value})


def a_mutate_state(key: str, value: Any) -> Step:
    """HTTP/WebSocket: change this connection's ``scope["state"]`` (it must be a copy)."""
    return Step("set_state", {"key": key, "value": value})


def a_receive_lifespan(timeout: float | None = 5.0) -> Step:
    return a_receive(timeout)
