"""Bounded permessage-deflate (RFC 7692), as an extension of wsproto's frame layer: inflating
stops at the size limit, with 1009 (docs/decisions.md#permessage-deflate)."""

from __future__ import annotations

import zlib

from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from refserver.protocol.handshake import DeflateParams

_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2: appended before inflating
_RSV1 = RsvBits(True, False, False)


class PerMessageDeflate(Extension):
    """permessage-deflate (RFC 7692) with the parameters agreed in the handshake."""

    name = "permessage-deflate"

    def __init__(self, params: DeflateParams, max_size_bytes: int) -> None:
        self.params = params
        self.max_size_bytes = max_size_bytes
        # Made at the first compressed message: an inflater holds 7.2 KiB (tracemalloc), and a
        # browser negotiates permessage-deflate on every connection, idle ones included.
        self._inflater: zlib._Decompress | None = None
        self._deflater: zlib._Compress | None = None
        self.inbound_compressed = False  # the message arriving is compressed
        self._frame_compressed = False  # the frame arriving is (part of) a compressed message
        self._inflated = 0

    def offer(self) -> bool:  # server side only: negotiation is in protocol.handshake
        return False

    # RFC 7692 §6: RSV1 marks the first frame of a compressed message.
    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if rsv.rsv1 and (opcode.iscontrol() or opcode is Opcode.CONTINUATION):
            return CloseReason.PROTOCOL_ERROR  # RFC 7692 §6.1: only on a first data frame
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self.inbound_compressed = rsv.rsv1
            self._inflated = 0
            if rsv.rsv1 and self._inflater is None:
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        # A control frame between the fragments of a compressed message is not compressed.
        self._frame_compressed = self.inbound_compressed and not opcode.iscontrol()
        return _RSV1

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        if self._inflater is None:  # pragma: no cover - set by frame_inbound_header
            return CloseReason.INTERNAL_ERROR
        room = self.max_size_bytes - self._inflated
        try:
            out = self._inflater.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_size_bytes:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_payload_data(self, proto: FrameDecoder | FrameProtocol, data: bytes) -> bytes | CloseReason:
        return self._inflate(data) if self._frame_compressed else data

    def frame_inbound_complete(self, proto: FrameDecoder | FrameProtocol, fin: bool) -> bytes | CloseReason | None:
        if not fin or not self._frame_compressed:
            return None
        out = self._inflate(_DEFLATE_TAIL)  # RFC 7692 §7.2.2: the removed tail
        if self.params.client_no_context_takeover:
            self._inflater = None
        return out

    def deflate(self, data: bytes) -> bytes:
        """Compress a whole message of the server's (RFC 7692 §7.2.1)."""
        if self._deflater is None:
            self._deflater = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self.params.server_max_window_bits, 5
            )
        out = self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(_DEFLATE_TAIL):
            out = out[:-4]  # RFC 7692 §7.2.1: drop the tail of the sync flush
        if self.params.server_no_context_takeover:
            self._deflater = None
        return out
