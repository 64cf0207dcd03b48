"""The harness's raw client and the trace both sides write into.

The client owns every byte: it writes handshakes, requests and frames built by hand
(masked or not, fragmented, with RSV bits, chopped into pieces), and it can reset the
connection (SO_LINGER(1, 0)), half-close it, or stop reading. A reader task parses what
the server sends (HTTP responses, then WebSocket frames) into the trace as it arrives.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc

from refserver.rawclient import apply_mask, frame, reset

# RFC 9112 §4: a response begins with its status line, ``HTTP-version SP status-code SP``.
# Anything before it is bytes the server wrote outside any response (a HEAD body, a body
# message sent after the response completed, bytes beyond the Content-Length).
STATUS_LINE = re.compile(rb"HTTP/[0-9]\.[0-9] [0-9]{3}[ \r]")


def preview(data: bytes, limit: int = 200) -> dict[str, Any]:
    return {"bytes": data[:limit].decode("latin-1"), "len": len(data)}


class Trace:
    """Every record of one run, client and app side, in arrival order, with times
    (``time.monotonic()``, the same clock as the probe's reports)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.start = time.monotonic()
        self._changed = anyio.Event()

    def add(self, side: str, ev: str, t: float | None = None, **fields: Any) -> dict[str, Any]:
        record = {
            "t": round((t if t is not None else time.monotonic()) - self.start, 4),
            "side": side,
            "ev": ev,
            **fields,
        }
        self.records.append(record)
        self._changed.set()
        self._changed = anyio.Event()
        return record

    def of(self, side: str, ev: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.records if r["side"] == side and (ev is None or r["ev"] == ev)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while not predicate():
                await self._changed.wait()
            return True
        return predicate()


def build_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """A frame as RFC 6455 §5.2 draws it, masked with a fresh key, as §5.3 asks of a client
    ("MUST pick a fresh masking key from the set of allowed 32-bit values")."""
    return frame(opcode, payload, fin=fin, rsv=rsv, mask=os.urandom(4) if masked else None)


# RFC 8446 §4.2.1 and RFC 5246 appendix E: the version numbers the TLS extension reports.
TLS_VERSIONS: Mapping[str, int] = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


CLOSE_NOTIFY_TIMEOUT_S = 1.0


class TLSClient(anyio.abc.ByteStream):
    """The client's side of TLS over a TCP stream, driven by hand (``ssl.SSLObject`` on memory
    BIOs) so that the harness sees how the server ends the session: :attr:`ended` is
    ``close_notify`` when the server sent that alert (RFC 8446 §6.1) before its TCP FIN, ``eof``
    when the TCP connection ended without it. Closing sends the client's own close_notify
    without waiting for the server's answer (RFC 8446 §6.1 does not ask the closer to wait)."""

    def __init__(self, raw: anyio.abc.SocketStream, context: ssl.SSLContext, hostname: str) -> None:
        self.raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=False, server_hostname=hostname)
        self.ended: str | None = None  # "close_notify" or "eof", once the server's side ended
        # The reader and the writers all produce TLS records: one of them at a time takes what
        # the SSLObject wrote and sends it, so records leave in the order they were made.
        self._sending = anyio.Lock()

    async def _flush(self) -> None:
        async with self._sending:
            data = self._outgoing.read()
            if data:
                await self.raw.send(data)

    async def _fill(self) -> None:
        """More bytes from the server into the incoming BIO (EOF marks it)."""
        try:
            data = await self.raw.receive(1 << 16)
        except anyio.EndOfStream:
            self._incoming.write_eof()
            return
        self._incoming.write(data)

    async def handshake(self) -> None:
        """Raises ``ssl.SSLError`` (an ``OSError``) when the handshake fails."""
        while True:
            try:
                self.ssl.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
                continue
            except ssl.SSLError:
                await self._flush_quietly()  # the alert that says why
                raise
            await self._flush()
            return

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    def negotiated(self) -> dict[str, Any]:
        """What the handshake agreed on: version and cipher suite as the TLS extension writes
        them (the cipher's IANA code from OpenSSL's table), and the certificate the server sent."""
        version = self.ssl.version()
        cipher = self.ssl.cipher()
        codes = {c["name"]: int(c["id"]) & 0xFFFF for c in self.ssl.context.get_ciphers()}
        der = self.ssl.getpeercert(binary_form=True)
        return {
            "version": TLS_VERSIONS.get(version or ""),
            "version_name": version,
            "cipher": cipher[0] if cipher else None,
            "cipher_suite": codes.get(cipher[0]) if cipher else None,
            "server_cert_sha256": hashlib.sha256(der).hexdigest() if der else None,
        }

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.ended is not None:
            raise anyio.EndOfStream
        while True:
            try:
                data = self.ssl.read(max_bytes)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
                continue
            except ssl.SSLZeroReturnError:  # the server's close_notify
                self.ended = "close_notify"
                raise anyio.EndOfStream from None
            except ssl.SSLError as exc:
                if isinstance(exc, ssl.SSLEOFError) or "UNEXPECTED_EOF" in str(exc):
                    self.ended = "eof"
                    raise anyio.EndOfStream from None
                raise anyio.BrokenResourceError(f"TLS: {exc}") from exc
            if not data:  # the server's close_notify (the ssl module reads it as b"")
                self.ended = "close_notify"
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        try:
            self.ssl.write(item)
        except ssl.SSLError as exc:
            raise anyio.BrokenResourceError(f"TLS: {exc}") from exc
        await self._flush()

    async def send_eof(self) -> None:
        """close_notify: TLS's own end of writing (RFC 8446 §6.1); TCP stays open."""
        try:
            self.ssl.unwrap()
        except ssl.SSLWantReadError:
            pass  # sent; the server's answer is read, if it comes, by receive()
        except ssl.SSLError as exc:
            raise anyio.BrokenResourceError(f"TLS: {exc}") from exc
        await self._flush()

    async def aclose(self) -> None:
        # close_notify, unless the socket is stuck behind a write the server does not read
        with anyio.move_on_after(CLOSE_NOTIFY_TIMEOUT_S):
            try:
                await self.send_eof()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass
        await self.raw.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self.raw.extra_attributes


class Connection:
    """One TCP connection of the client, with its reader task."""

    def __init__(self, stream: anyio.abc.ByteStream, trace: Trace) -> None:
        self.stream = stream
        self.trace = trace
        self.buffer = bytearray()
        self.websocket = False
        self.ended = False  # EOF or reset seen
        self.closed_locally = False
        self.methods: list[str] = []  # methods of requests sent, for HEAD bodies
        self.reading = anyio.Event()
        self.reading.set()
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self.responses = 0
        self.frames = 0
        self.echo_close = False  # answer the server's close frame (RFC 6455 §5.5.1)
        self._close_payload: bytes | None = None
        self.close_on_eof = False  # close our socket once the server has closed TCP
        self.close_sent = False
        self._writing = anyio.Lock()

    @classmethod
    async def open(
        cls,
        port: int,
        trace: Trace,
        host: str = "127.0.0.1",
        uds: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> Connection:
        """Connect to ``host:port``, or to the Unix socket ``uds`` when given; with ``tls``, do
        the TLS handshake (recorded as ``tls_handshake``, or ``tls_handshake_failed`` and the
        ``ssl.SSLError`` raised)."""
        if uds:
            # Wrapped as a plain socket stream, not anyio's UNIXSocketStream: on asyncio that one
            # polls the raw socket, and a read cancelled just as the socket turns readable makes
            # the event loop raise InvalidStateError from its reader callback.
            unix_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                unix_sock.setblocking(False)
                unix_sock.connect(uds)  # a unix socket connects at once, or fails
                unix_stream = await anyio.abc.SocketStream.from_socket(unix_sock)
            except BaseException:
                unix_sock.close()
                raise
            trace.add("client", "connected", uds=True)
            return cls(unix_stream, trace)
        stream = await anyio.connect_tcp(host, port)
        sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        trace.add("client", "connected", local_port=sock.getsockname()[1], tls=tls is not None)
        if tls is None:
            return cls(stream, trace)
        secure = TLSClient(stream, tls, host)
        try:
            await secure.handshake()
        except (OSError, anyio.BrokenResourceError) as exc:
            trace.add("client", "tls_handshake_failed", error=f"{type(exc).__name__}: {exc}")
            await stream.aclose()
            raise
        trace.add("client", "tls_handshake", **secure.negotiated())
        return cls(secure, trace)

    # ------------------------------------------------------------------ writing

    async def write(self, data: bytes, what: str, chop: int = 0) -> bool:
        if self.closed_locally:
            self.trace.add("client", "write_skipped", what=what)
            return False
        if self._writing.locked() and what == "close frame (echo)":
            self.trace.add("client", "write_skipped", what=what, why="a write is in progress")
            return False
        async with self._writing:
            return await self._write(data, what, chop)

    async def _write(self, data: bytes, what: str, chop: int) -> bool:
        try:
            if chop and len(data) > chop:
                for i in range(0, len(data), chop):
                    await self.stream.send(data[i : i + chop])
                    await anyio.sleep(0.001)  # separate segments: the subject of the scenario
            else:
                await self.stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.trace.add("client", "write_failed", what=what, error=type(exc).__name__)
            return False
        self.trace.add("client", "sent", what=what, len=len(data))
        return True

    async def reset(self) -> None:
        self.closed_locally = True
        # an abort: no close_notify first
        await reset(self.stream.raw if isinstance(self.stream, TLSClient) else self.stream)
        self.trace.add("client", "sent_rst")

    async def half_close(self) -> None:
        try:
            await self.stream.send_eof()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.trace.add("client", "write_failed", what="FIN", error=type(exc).__name__)
            return
        self.trace.add("client", "sent_fin")

    async def finish(self) -> None:
        """Close at the end of a script, as a client that is done would: a write already
        under way (the echo of a close frame that just came) is finished first."""
        if self._writing.locked():
            with anyio.move_on_after(1.0):
                async with self._writing:
                    pass
        await self.aclose()

    async def aclose(self) -> None:
        if not self.closed_locally:
            self.closed_locally = True
            await self.stream.aclose()

    # ------------------------------------------------------------------ reading

    async def read_forever(self) -> None:
        """The reader task: parse everything the server sends until the connection ends."""
        while True:
            await self.reading.wait()
            try:
                data = await self.stream.receive(1 << 16)
            except anyio.EndOfStream:
                self._end("eof")
                if self.websocket and self.close_on_eof and not self.closed_locally:
                    self.closed_locally = True
                    await self.stream.aclose()
                    self.trace.add("client", "closed_tcp_after_eof")
                return
            except anyio.ClosedResourceError:
                return
            except (anyio.BrokenResourceError, OSError) as exc:
                cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else exc
                if isinstance(cause, OSError) and cause.errno == errno.ECONNRESET:
                    self._end("rst")
                else:
                    self._end("rst", error=f"{type(cause).__name__}: {cause}")
                return
            self.buffer += data
            echo = self._parse()
            if echo is not None and self.echo_close and not self.close_sent and not self.closed_locally:
                self.close_sent = True
                await self.write(build_frame(8, echo), "close frame (echo)")

    def _end(self, how: str, **fields: Any) -> None:
        if self.buffer and not self.websocket:
            self._finish_close_delimited()
        if isinstance(self.stream, TLSClient):
            # how the server's TLS session ended: with its close_notify alert, or not at all
            fields["tls"] = self.stream.ended or "none"
        self.ended = True
        self.trace.add("client", how, **fields)

    def _parse(self) -> bytes | None:
        """Parse what is buffered; returns the payload of a close frame to echo, if one came."""
        echo = None
        while True:
            progressed = self._parse_frame() if self.websocket else self._parse_response()
            if self._close_payload is not None:
                echo, self._close_payload = self._close_payload[:2], None
            if not progressed:
                return echo

    def _skip_stray(self) -> bool:
        """Record and drop what comes before the next status line; False until a status
        line has arrived (what is left at the end of the connection is recorded by
        :meth:`_finish_close_delimited`)."""
        found = STATUS_LINE.search(self.buffer)
        if found is None:
            return False
        if found.start():
            self.trace.add("client", "stray", data=preview(bytes(self.buffer[: found.start()])))
            del self.buffer[: found.start()]
        return True

    def _parse_response(self) -> bool:
        if not self._skip_stray():
            return False
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            self.trace.add("client", "garbage", data=preview(bytes(self.buffer)))
            self.buffer.clear()
            return False
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append([name.strip().lower(), value.strip()])
        names = {n for n, _ in headers}
        if status == 101:
            del self.buffer[: end + 4]
            self.websocket = True
            self.responses += 1
            self.trace.add("client", "response", status=status, headers=headers, body=preview(b""))
            return True
        if 100 <= status < 200:
            del self.buffer[: end + 4]
            self.trace.add("client", "informational", status=status, headers=headers)
            return True
        method = self.methods[self.responses] if self.responses < len(self.methods) else "GET"
        body_start = end + 4
        trailers: list[list[str]] = []
        if method == "HEAD" or status in (204, 304):
            body = b""
            consumed = body_start
        elif "transfer-encoding" in names and any(
            v.lower().endswith("chunked") for n, v in headers if n == "transfer-encoding"
        ):
            chunked = _dechunk_with_trailers(bytes(self.buffer[body_start:]))
            if chunked is None:
                return False
            body, used, trailers = chunked
            consumed = body_start + used
        elif "content-length" in names:
            length = int(next(v for n, v in headers if n == "content-length") or 0)
            if len(self.buffer) - body_start < length:
                return False
            body = bytes(self.buffer[body_start : body_start + length])
            consumed = body_start + length
        else:
            return False  # close-delimited: finished at EOF
        del self.buffer[:consumed]
        self.responses += 1
        self.trace.add(
            "client",
            "response",
            status=status,
            headers=headers,
            body=preview(body),
            framing=_framing(names),
            trailers=trailers,
        )
        return True

    def _finish_close_delimited(self) -> None:
        if not STATUS_LINE.match(self.buffer):
            self.trace.add("client", "stray", data=preview(bytes(self.buffer)))
            self.buffer.clear()
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            self.trace.add("client", "partial", data=preview(bytes(self.buffer)))
            self.buffer.clear()
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            self.buffer.clear()
            return
        headers = [[n.strip().lower(), v.strip()] for n, _, v in (line.partition(":") for line in lines[1:])]
        names = {n for n, _ in headers}
        body = bytes(self.buffer[end + 4 :])
        if "content-length" in names or "transfer-encoding" in names:
            self.trace.add("client", "partial_response", status=status, headers=headers, body=preview(body))
        else:
            self.responses += 1
            self.trace.add(
                "client", "response", status=status, headers=headers, body=preview(body), framing="close-delimited"
            )
        self.buffer.clear()

    def _parse_frame(self) -> bool:
        buf = self.buffer
        if len(buf) < 2:
            return False
        b0, b1 = buf[0], buf[1]
        fin, rsv, opcode = bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return False
            n = struct.unpack("!H", buf[2:4])[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return False
            n = struct.unpack("!Q", buf[2:10])[0]
            pos = 10
        mask = b""
        if masked:
            if len(buf) < pos + 4:
                return False
            mask = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return False
        payload = bytes(buf[pos : pos + n])
        if masked:
            payload = apply_mask(payload, mask)
        del buf[: pos + n]
        self.frames += 1
        record: dict[str, Any] = {"opcode": opcode, "fin": fin, "rsv": rsv, "masked": masked, "len": n}
        if opcode == 8:
            if len(payload) >= 2:
                record["code"] = struct.unpack("!H", payload[:2])[0]
                record["reason"] = payload[2:].decode("utf-8", "replace")
            else:
                record["code"] = None
                record["reason"] = ""
            self.trace.add("client", "close_frame", **record)
            self._close_payload = payload
            return True
        if opcode in (9, 10):
            record["payload"] = preview(payload)
            self.trace.add("client", "ping" if opcode == 9 else "pong", **record)
            return True
        self.trace.add("client", "frame", **record)
        if opcode in (1, 2):
            self._fragments = [payload]
            self._fragment_opcode = opcode
        elif opcode == 0:
            self._fragments.append(payload)
        else:
            return True
        if fin:
            data = b"".join(self._fragments)
            self._fragments = []
            if self._fragment_opcode == 1:
                self.trace.add(
                    "client", "message", kind="text", text=data.decode("utf-8", "replace")[:400], len=len(data), rsv=rsv
                )
            else:
                self.trace.add("client", "message", kind="bytes", data=preview(data), len=len(data), rsv=rsv)
        return True


def _framing(names: set[str]) -> str:
    if "transfer-encoding" in names:
        return "chunked"
    if "content-length" in names:
        return "content-length"
    return "none"


def _dechunk_with_trailers(data: bytes) -> tuple[bytes, int, list[list[str]]] | None:
    """Parse a chunked body; None if incomplete. Returns (body, bytes consumed, trailer fields)."""
    pos = 0
    body = bytearray()
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size_text = data[pos:line_end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(body), len(data), []
        pos = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", pos - 2)
            if trailer_end < 0:
                return None
            fields = []
            for line in data[pos:trailer_end].decode("latin-1").split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    fields.append([name.strip().lower(), value.strip()])
            return bytes(body), trailer_end + 4, fields
        if len(data) < pos + size + 2:
            return None
        body += data[pos : pos + size]
        pos += size + 2
