"""The steps of a scenario's two scripts, one small frozen dataclass each.

A **client step** is what the raw client does on the wire (the runner has one handler per
class, in ``runner.CLIENT_HANDLERS``); an **app step** is what the probe app does with
``receive()`` and ``send()`` (one handler per class in ``probe.APP_HANDLERS``). Every wait is
bounded by its ``timeout`` in seconds. A few functions at the end build the steps written
most often (``text_frame("hi")``, ``accept()``, ``close_socket(4000)``).

Standard library only: the probe app imports this module inside the server under test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's sample Sec-WebSocket-Key


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class _Step:
    """What every step has: a name for reports, and a one-line description."""

    def describe(self) -> str:
        """The step as reports show it: its name and the fields that are not their default."""
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else dataclasses.MISSING
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            if value != default or default is dataclasses.MISSING:
                shown.append(f"{f.name}={_short(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"


class ClientStep(_Step):
    """A step of the client script."""


class AppStep(_Step):
    """A step of the app script (run by the probe app)."""


# ---------------------------------------------------------------------------------------
# Client steps: connections and requests


@dataclass(frozen=True)
class Connect(ClientStep):
    """Open a TCP connection without sending anything."""


@dataclass(frozen=True)
class Handshake(ClientStep):
    """Send the opening handshake (RFC 6455 §4.1) to the scenario's path and wait for the
    response head. ``after`` is written in the same segment, right behind the request;
    ``chop`` writes everything in pieces of that many bytes. Like any RFC client, the client
    answers the server's close frame with its own (the same code) unless ``echo_close`` is
    false, and closes its socket when the server closes TCP unless ``close_on_eof`` is false."""

    _: KW_ONLY
    suffix: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    key: str | None = SAMPLE_KEY
    version: str | None = "13"
    timeout: float = 3.0
    after: bytes = b""
    chop: int = 0
    echo_close: bool = True
    close_on_eof: bool = True


@dataclass(frozen=True)
class Request(ClientStep):
    """Send one HTTP/1.1 request. ``raw`` replaces the whole request (``{path}`` and ``{host}``
    in it are filled in); ``end=False`` leaves a chunked body unfinished."""

    method: str = "GET"
    _: KW_ONLY
    suffix: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    chunked: tuple[bytes, ...] | None = None
    end: bool = True
    raw: bytes | None = None


@dataclass(frozen=True)
class BodyOnContinue(ClientStep):
    """Wait for the server's first answer to an ``Expect: 100-continue`` request: after a 100
    (Continue), send ``data`` (the content), as an RFC 9110 §10.1.1 client does; after the
    final response, send nothing."""

    data: bytes
    timeout: float = 3.0


@dataclass(frozen=True)
class WriteBody(ClientStep):
    """Start writing ``total`` bytes of request content in ``chunk``-sized writes, in the
    background. The step returns once one write has not finished within ``stall_s`` (the
    server stopped reading: ``body_stalled``), once all is written (``body_written``), or after
    ``timeout``; the writing goes on after it returns."""

    total: int
    _: KW_ONLY
    chunk: int = 1 << 16
    stall_s: float = 1.0
    timeout: float = 10.0


@dataclass(frozen=True)
class Trickle(ClientStep):
    """On the connection in use, write one byte of request content, then wait ``every_s``
    for the server to end the connection; ``count`` times, or until it ends."""

    count: int
    every_s: float


@dataclass(frozen=True)
class PlainToTLS(ClientStep):
    """On a connection of its own, send ``data`` in plain text to the server's TLS port and
    record what comes back (``plain_answer``) until the server ends the connection or
    ``timeout`` passes."""

    data: bytes
    timeout: float = 3.0


@dataclass(frozen=True)
class SendRaw(ClientStep):
    """Write bytes as they are."""

    data: bytes


# ---------------------------------------------------------------------------------------
# Client steps: WebSocket frames


@dataclass(frozen=True)
class Frame(ClientStep):
    """A frame built byte by byte (RFC 6455 §5.2); ``rsv`` is the three RSV bits as 0..7.
    With ``size``, the payload is that many zero bytes, made when the step runs."""

    opcode: int
    payload: bytes = b""
    _: KW_ONLY
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    size: int | None = None


@dataclass(frozen=True)
class FrameIfNegotiated(ClientStep):
    """Send a frame only if the handshake response negotiated ``extension``; otherwise record
    ``unsupported`` (the cell is n/a)."""

    extension: str
    opcode: int
    payload: bytes
    rsv: int


@dataclass(frozen=True)
class Close(ClientStep):
    """A close frame: with a code and reason, empty (``code=None``), or an arbitrary payload."""

    code: int | None = 1000
    reason: str = ""
    _: KW_ONLY
    raw_payload: bytes | None = None


# ---------------------------------------------------------------------------------------
# Client steps: the TCP connection


@dataclass(frozen=True)
class Reset(ClientStep):
    """Abort the TCP connection: SO_LINGER(1, 0), then close, sends an RST."""


@dataclass(frozen=True)
class CloseTCP(ClientStep):
    """Close the client's socket (the client is done)."""


@dataclass(frozen=True)
class HalfClose(ClientStep):
    """Send FIN (shut down writing) and keep reading."""


@dataclass(frozen=True)
class StopReading(ClientStep):
    """Stop reading from the socket, so that the server's writes back up."""


@dataclass(frozen=True)
class ResumeReading(ClientStep):
    """Read from the socket again."""


# ---------------------------------------------------------------------------------------
# Client steps: waiting


@dataclass(frozen=True)
class WaitApp(ClientStep):
    """Wait until the probe has reported ``event`` ``count`` times. Events: ``hello``,
    ``received:<type>``, ``sent:<type>`` (send() returned or raised), ``mark:<name>``,
    ``ended``. A wait that times out is recorded, unless not ``required``."""

    event: str
    _: KW_ONLY
    count: int = 1
    timeout: float = 3.0
    required: bool = True


@dataclass(frozen=True)
class WaitClose(ClientStep):
    """Wait until the server's close frame arrives or the TCP connection ends."""

    timeout: float = 3.0
    _: KW_ONLY
    required: bool = False


@dataclass(frozen=True)
class WaitEOF(ClientStep):
    """Wait until the server ends the TCP connection."""

    timeout: float = 3.0


@dataclass(frozen=True)
class WaitMessages(ClientStep):
    """Wait until ``count`` data messages (or the close frame) have arrived."""

    count: int = 1
    timeout: float = 3.0


@dataclass(frozen=True)
class WaitFrame(ClientStep):
    """Wait until a frame with this opcode (or the end of the connection) arrives."""

    opcode: int
    timeout: float = 3.0


@dataclass(frozen=True)
class WaitResponses(ClientStep):
    """Wait until ``count`` complete HTTP responses (or the end of the connection)."""

    count: int = 1
    timeout: float = 3.0


@dataclass(frozen=True)
class WaitClient(ClientStep):
    """Wait until the client has recorded ``ev`` (``informational``, ``response``, ``eof``...)."""

    ev: str
    timeout: float = 3.0


# ---------------------------------------------------------------------------------------
# Client steps: the rest


@dataclass(frozen=True)
class OpenGate(ClientStep):
    """Let the app past its ``WaitGate(name)``."""

    name: str


@dataclass(frozen=True)
class Mark(ClientStep):
    """Record a point in the client's trace (timings are measured from marks)."""

    name: str


@dataclass(frozen=True)
class Pause(ClientStep):
    """Pause; only where time itself is the subject (keepalive, timeouts)."""

    seconds: float


@dataclass(frozen=True)
class ShutdownServer(ClientStep):
    """Ask the server to shut down gracefully (SIGTERM, or the in-process trigger)."""


# ---------------------------------------------------------------------------------------
# App steps


@dataclass(frozen=True)
class Receive(AppStep):
    """``await receive()``, reported with its result, or ``receive_timeout``. What it raises
    is reported and re-raised (the app ends with it), unless ``catch``: then the script goes
    on, as an app that catches the exception would."""

    timeout: float | None = 3.0
    _: KW_ONLY
    catch: bool = False


@dataclass(frozen=True)
class ReceiveUntil(AppStep):
    """Call ``receive()`` until it returns a message of type ``kind`` (or times out)."""

    kind: str
    timeout: float = 3.0


@dataclass(frozen=True)
class Send(AppStep):
    """``await send(message)``, reported as returned, raised (its class, OSError or not) or
    blocked (it did not return within ``timeout``). What it raises is reported and re-raised,
    unless ``catch``."""

    message: Mapping[str, Any]
    timeout: float | None = 3.0
    _: KW_ONLY
    catch: bool = False


@dataclass(frozen=True)
class Echo(AppStep):
    """Receive one message and send the same data back."""


@dataclass(frozen=True)
class Respond(AppStep):
    """``http.response.start``, then one ``http.response.body``."""

    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(frozen=True)
class DrainBody(AppStep):
    """Receive ``http.request`` messages until ``more_body`` is false, and report the body.
    With ``quiet``, the messages are not reported one by one (a large body would be hundreds
    of reports), only the body and the number of chunks."""

    timeout: float = 3.0
    _: KW_ONLY
    quiet: bool = False


@dataclass(frozen=True)
class FileResponse(AppStep):
    """Answer 200 with ``content`` sent through ``http.response.pathsend`` (``kind="path"``)
    or ``http.response.zerocopysend`` (``kind="zerocopy"``); the probe writes the file first."""

    kind: str
    content: bytes


@dataclass(frozen=True)
class SendUntilBlocked(AppStep):
    """Send ``message`` again and again until one send() takes longer than ``block_s``
    (reported as blocked after so many bytes), or ``max_bytes`` or ``max_s`` is reached. With
    ``then_wait_s``, the slow send is reported as ``send_pending`` and awaited (up to that
    long), and its end is reported like any send."""

    message: Mapping[str, Any]
    _: KW_ONLY
    block_s: float = 0.5
    max_bytes: int = 64 << 20
    max_s: float = 6.0
    then_wait_s: float | None = None


@dataclass(frozen=True)
class Sleep(AppStep):
    """Sleep; only where time itself is the subject."""

    seconds: float


@dataclass(frozen=True)
class WaitGate(AppStep):
    """Wait until the client script opens the gate ``name``."""

    name: str
    timeout: float = 5.0


@dataclass(frozen=True)
class AppMark(AppStep):
    """Report a mark (the client can wait for it: ``WaitApp("mark:<name>")``)."""

    name: str


@dataclass(frozen=True)
class Return(AppStep):
    """Return from the app."""


@dataclass(frozen=True)
class Raise(AppStep):
    """Raise ``RuntimeError`` out of the app."""


@dataclass(frozen=True)
class RequireExtension(AppStep):
    """If ``scope["extensions"]`` lacks ``name``, report ``unsupported`` and end (the cell is n/a)."""

    name: str


@dataclass(frozen=True)
class SetState(AppStep):
    """``scope["state"][key] = value``: on the lifespan scope, what every connection gets a
    copy of; on a connection's scope, a change that must stay in that copy. Reported as
    ``state_unsupported`` when the scope has no state."""

    key: str
    value: Any


# ---------------------------------------------------------------------------------------
# The steps written most often


def text_frame(text: str) -> Frame:
    """A masked text frame (opcode 1)."""
    return Frame(1, text.encode())


def binary_frame(data: bytes) -> Frame:
    """A masked binary frame (opcode 2)."""
    return Frame(2, data)


def sized_binary_frame(size: int) -> Frame:
    """A binary frame of ``size`` zero bytes, made when the step runs (not stored)."""
    return Frame(2, size=size)


def ping_frame(payload: bytes = b"hello") -> Frame:
    """A ping (opcode 9)."""
    return Frame(9, payload)


def accept(subprotocol: str | None = None, headers: tuple[tuple[bytes, bytes], ...] | None = None) -> Send:
    """``websocket.accept``, with a subprotocol and headers if given."""
    message: dict[str, Any] = {"type": "websocket.accept"}
    if subprotocol is not None:
        message["subprotocol"] = subprotocol
    if headers is not None:
        message["headers"] = [list(h) for h in headers]
    return Send(message)


def close_socket(code: Any = None, reason: Any = None, timeout: float | None = 3.0, *, catch: bool = False) -> Send:
    """``websocket.close``, with a code and reason if given (of any type: the invalid ones
    are the subject of scenarios)."""
    message: dict[str, Any] = {"type": "websocket.close"}
    if code is not None:
        message["code"] = code
    if reason is not None:
        message["reason"] = reason
    return Send(message, timeout, catch=catch)


def send_text(text: str, *, catch: bool = False) -> Send:
    """``websocket.send`` with ``text``."""
    return Send({"type": "websocket.send", "text": text}, catch=catch)


def send_bytes(data: bytes) -> Send:
    """``websocket.send`` with ``bytes``."""
    return Send({"type": "websocket.send", "bytes": data})
