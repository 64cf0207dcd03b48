"""Bounded permessage-deflate (RFC 7692), driven by the frame codec (``protocol.frames``).

A compressed message fails the connection with 1009 as soon as inflating it would pass the
size limit: ``max_length`` keeps a compression bomb from ever inflating past it. (An
uncompressed message is checked at its frame header, by the codec itself.)
"""

from __future__ import annotations

import zlib

from refserver.protocol.handshake import DeflateParams

_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2: appended before inflating


class InflateError(Exception):
    """Compressed data that cannot be inflated (1007) or inflates past the limit (1009)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class PerMessageDeflate:
    """permessage-deflate (RFC 7692) with the parameters agreed in the handshake."""

    __slots__ = ("_deflater", "_inflated", "_inflater", "max_size_bytes", "params")

    def __init__(self, params: DeflateParams, max_size_bytes: int) -> None:
        self.params = params
        self.max_size_bytes = max_size_bytes
        self._inflater: zlib._Decompress | None = None
        self._deflater: zlib._Compress | None = None
        self._inflated = 0

    # RFC 7692 §6: RSV1 marks the first frame of a compressed message (the codec checks
    # that it is on no other frame).
    def begin_message(self) -> None:
        """A compressed message starts."""
        self._inflated = 0
        if self._inflater is None:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)

    def inflate(self, data: bytes) -> bytes:
        """Part of a compressed message's payload, inflated."""
        inflater = self._inflater
        if inflater is None:  # pragma: no cover - set by begin_message
            raise InflateError(1011, "no inflater")
        room = self.max_size_bytes - self._inflated
        try:
            out = inflater.decompress(data, room + 1)
        except zlib.error:
            raise InflateError(1007, "invalid compressed data") from None
        self._inflated += len(out)
        if self._inflated > self.max_size_bytes:
            raise InflateError(1009, f"message exceeds {self.max_size_bytes} bytes")
        return out

    def inflate_end(self) -> bytes:
        """The end of a compressed message (RFC 7692 §7.2.2: inflate the removed tail)."""
        out = self.inflate(_DEFLATE_TAIL)
        if self.params.client_no_context_takeover:
            self._inflater = None
        return out

    def deflate(self, data: bytes) -> bytes:
        """A whole message, compressed (RFC 7692 §7.2.1)."""
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
