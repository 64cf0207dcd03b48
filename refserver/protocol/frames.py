"""RFC 6455 §5 framing, server side: the client's frames parsed by wsproto, the server's built.

One :class:`FrameCodec` per connection (it parses from the accept on). :meth:`FrameCodec.feed` takes
the peer's bytes and returns what they completed, as ``(kind, payload)`` pairs:

- ``TEXT`` with a ``str`` / ``BINARY`` with ``bytes``: a whole data message, reassembled
  from its fragments (RFC 6455 §5.4) and, when permessage-deflate compressed it, inflated;
- ``PING`` / ``PONG`` with the payload (§5.5.2, §5.5.3);
- ``CLOSE`` with ``(code, reason)``; 1005 for an empty close frame (§7.1.5, §7.4.1);
- ``FAIL`` with ``(code, reason)``: the bytes break the protocol and the connection must fail
  (§7.1.7) with 1002, 1007 (bad UTF-8, §8.1) or 1009 (over the size limit, §10.4), and
  refserver's own reason (docs/decisions.md#own-close-reasons).

Nothing is returned after a ``CLOSE`` or a ``FAIL``: the parser has stopped.

wsproto's ``FrameDecoder`` and ``MessageDecoder`` are driven directly (docs/implementation.md#frames-through-wsproto);
refserver adds the size limit and the close code rules. The server's own frames are unmasked and whole.
"""

from __future__ import annotations

from typing import Any, cast

from wsproto.frame_protocol import CloseReason, Opcode, ParseFailed
from wsproto.frame_protocol import Frame as WireFrame

from refserver.protocol import internals
from refserver.protocol.extensions import PerMessageDeflate
from refserver.spec.messages import close_code_may_be_sent

# The opcodes (RFC 6455 §5.2), as plain ints: wsproto's ``Opcode`` is an IntEnum, equal to them.
CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA
FAIL = -1  # not an opcode: the bytes broke the protocol
_FAILURE_REASONS = {1007: "invalid UTF-8 or payload data", 1009: "message exceeds {} bytes"}

Frame = tuple[int, Any]


def frame_head(opcode: int, length: int, rsv1: bool = False) -> bytes:
    """Make the header of an unmasked, final server frame (RFC 6455 §5.2)."""
    first = (0xC0 if rsv1 else 0x80) | opcode
    if length < 126:
        return bytes((first, length))
    if length < 0x10000:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def close_payload(code: int, reason: str) -> bytes:
    """Make the close payload of RFC 6455 §5.5.1: the code (none for 1005), then the UTF-8 reason
    (the caller keeps it within 123 bytes)."""
    if code == 1005:
        return b""
    return code.to_bytes(2, "big") + reason.encode("utf-8")


def parse_close(payload: bytes) -> tuple[int, str]:
    """Parse a close frame's code and reason (RFC 6455 §5.5.1, §7.4); ParseFailed if malformed."""
    if not payload:
        return 1005, ""  # RFC 6455 §7.1.5: no status code
    if len(payload) == 1:
        raise ParseFailed("close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if not close_code_may_be_sent(code):
        raise ParseFailed(f"close frame with code {code}, which may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ParseFailed(
            "close frame with a reason that is not UTF-8", CloseReason.INVALID_FRAME_PAYLOAD_DATA
        ) from None
    return code, reason


class FrameCodec:
    """The frames of one server-side connection, both ways (sans-IO)."""

    __slots__ = ("_counted", "_frames", "_max_size", "_messages", "_parts", "_size", "deflate", "stopped")

    def __init__(self, max_size_bytes: int, deflate: PerMessageDeflate | None = None) -> None:
        self._max_size = max_size_bytes
        self.deflate = deflate  # permessage-deflate, when negotiated (RFC 7692)
        self.stopped = False  # a close frame or a failure ended parsing
        self._frames = internals.frame_decoder([deflate] if deflate is not None else [])
        self._messages = internals.message_decoder()
        self._counted: object = None  # the header of the data frame whose size was counted
        self._size = 0  # payload bytes of the uncompressed message so far (for the limit)
        self._parts: list[Any] = []  # the message being assembled

    # ------------------------------------------------------------------ inbound

    def feed(self, data: bytes) -> list[Frame]:
        """Return the frames and messages that ``data`` completes (see the module's docstring)."""
        out: list[Frame] = []
        if self.stopped:
            return out
        decoder = self._frames
        decoder.receive_bytes(data)
        try:
            while True:
                frame: WireFrame | None = decoder.process_buffer()
                header = decoder.header  # None once a frame is complete
                if header is not None and header is not self._counted and not header.opcode & 0x8:
                    # RFC 6455 §10.4: a data frame is counted once, at its header, before its payload is buffered.
                    self._counted = header
                    self._count(header.opcode, header.payload_len)
                if frame is None:
                    return out
                opcode = frame.opcode
                if opcode == CLOSE:
                    self.stopped = True
                    out.append((CLOSE, parse_close(cast(bytes, frame.payload))))  # the decoder gives bytes
                    return out
                if opcode in (PING, PONG):
                    out.append((PING if opcode == PING else PONG, frame.payload))
                else:
                    self._data(frame, out)
        except ParseFailed as exc:
            self.stopped = True
            self._parts = []
            code = int(exc.code)
            out.append((FAIL, (code, _FAILURE_REASONS.get(code, "protocol error").format(self._max_size))))
        return out

    def _count(self, opcode: Opcode, length: int) -> None:
        """Enforce the size limit (RFC 6455 §10.4) for an uncompressed message, frame by frame; a
        compressed one is counted as it is inflated (``PerMessageDeflate``)."""
        if opcode != CONTINUATION:  # a message's first frame (never a control frame: see the callers)
            self._size = 0
        deflate = self.deflate
        if deflate is not None and deflate.inbound_compressed:
            return
        size = self._size + length
        self._size = size
        if size > self._max_size:
            raise ParseFailed(f"message exceeds {self._max_size} bytes", CloseReason.MESSAGE_TOO_BIG)

    def _data(self, frame: WireFrame, out: list[Frame]) -> None:
        """Take a data frame, or part of one: RFC 6455 §5.4, fragments of one message in order,
        UTF-8 decoded as it arrives (§8.1), handed out when the message is complete."""
        if self._frames.header is None:  # the frame is complete
            if self._counted is None:  # it arrived at once: counted now
                self._count(frame.opcode, len(frame.payload))
            self._counted = None
        part = self._messages.process_frame(frame)
        if not part.message_finished:
            if part.payload:
                self._parts.append(part.payload)
            return
        payload: Any = part.payload
        if self._parts:
            self._parts.append(payload)
            payload = "".join(self._parts) if part.opcode == TEXT else b"".join(self._parts)
            self._parts = []
        out.append((TEXT if part.opcode == TEXT else BINARY, payload))

    # ------------------------------------------------------------------ outbound

    def data_frame(self, payload: bytes, text: bool) -> bytes:
        """Encode a whole message in one frame, compressed when permessage-deflate was agreed."""
        deflate = self.deflate
        if deflate is not None:
            payload = deflate.deflate(payload)
        return frame_head(TEXT if text else BINARY, len(payload), deflate is not None) + payload

    @staticmethod
    def control_frame(opcode: int, payload: bytes) -> bytes:
        return frame_head(opcode, len(payload)) + payload
