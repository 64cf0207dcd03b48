"""The frame codec (refserver/protocol/frames.py) against RFC 6455 §5 and against wsproto.

The codec drives wsproto's frame layer directly (docs/implementation.md#frames-through-wsproto), and adds the size
limit, message assembly and the close-code rules; wsproto's ``Connection`` is the oracle
here: any stream of frames, valid or not, cut anywhere, must give the same messages, pings,
pongs, close frame or failure code from both. The machine-level rules (when a failure is
delivered, what is written back) are in tests/test_ws_machine.py.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from refserver.protocol import frames
from refserver.protocol.frames import FrameCodec, frame_head

Outcome = list[tuple[str, Any]]


def unmask(data: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3: XOR with the 4-byte key, repeated (masking and unmasking alike)."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def raw_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = b"\x11\x22\x33\x44",
    length_form: int = 0,
) -> bytes:
    """A client frame built byte by byte; ``length_form`` 2 or 8 forces an extended length
    (possibly not the shortest, which RFC 6455 §5.2 forbids)."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    if length_form == 8 or (not length_form and n >= 1 << 16):
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    elif length_form == 2 or (not length_form and n >= 126):
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head.append(mask_bit | n)
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + unmask(payload, mask)


def codec_outcome(chunks: list[bytes], max_size: int = 1 << 40) -> Outcome:
    codec = FrameCodec(max_size)
    out: Outcome = []
    for chunk in chunks:
        for kind, payload in codec.feed(chunk):
            name = {
                frames.TEXT: "message",
                frames.BINARY: "message",
                frames.PING: "ping",
                frames.PONG: "pong",
                frames.CLOSE: "close",
                frames.FAIL: "fail",
            }[kind]
            out.append((name, payload[0] if kind == frames.FAIL else payload))
    return out


def wsproto_outcome(chunks: list[bytes]) -> Outcome:
    """What wsproto's own connection makes of the same bytes (messages joined)."""
    wire = Connection(ConnectionType.SERVER)
    out: Outcome = []
    parts: list[Any] = []
    for chunk in chunks:
        wire.receive_data(chunk)
        for event in wire.events():
            if isinstance(event, TextMessage | BytesMessage):
                parts.append(event.data)
                if event.message_finished:
                    joiner: Any = "" if isinstance(event, TextMessage) else b""
                    out.append(("message", joiner.join(parts)))
                    parts = []
            elif isinstance(event, Ping):
                out.append(("ping", bytes(event.payload)))
            elif isinstance(event, Pong):
                out.append(("pong", bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                if wire.state is ConnectionState.REMOTE_CLOSING:
                    out.append(("close", (int(event.code), event.reason or "")))
                else:
                    out.append(("fail", int(event.code)))
                return out
    return out


# ---------------------------------------------------------------- strategies

UTF8 = st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass").decode("utf-8", "ignore").encode())
PAYLOADS = st.one_of(
    st.binary(max_size=40),
    UTF8,
    st.binary(min_size=120, max_size=300),
    st.sampled_from([b"\xff", b"\xce\xba\xe1\xbd", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\xc0\xafb"]),
)
# 1014 is left out: wsproto alone rejects it (docs/decisions.md#malformed-offers); the machine tests pin it.
CLOSE_CODES = st.sampled_from([0, 999, 1000, 1001, 1003, 1004, 1005, 1006, 1011, 1015, 1016, 2999, 3000, 4999, 5000])


@st.composite
def one_frame(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["data", "data", "data", "control", "close", "odd"]))
    if kind == "close":
        code = draw(CLOSE_CODES)
        shape = draw(st.sampled_from(["empty", "one-byte", "code", "code+reason", "code+bad-reason"]))
        payload = {
            "empty": b"",
            "one-byte": b"\x03",
            "code": struct.pack("!H", code),
            "code+reason": struct.pack("!H", code) + "bye ☃".encode(),
            "code+bad-reason": struct.pack("!H", code) + b"\xff",
        }[shape]
        return raw_frame(0x8, payload)
    if kind == "control":
        opcode = draw(st.sampled_from([0x9, 0xA]))
        payload = draw(st.one_of(st.binary(max_size=125), st.binary(min_size=126, max_size=130)))
        return raw_frame(opcode, payload, fin=draw(st.booleans()) or draw(st.booleans()))
    if kind == "odd":
        opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x7, 0xB, 0xF, 0x9]))
        return raw_frame(
            opcode,
            draw(PAYLOADS),
            fin=draw(st.booleans()),
            rsv=draw(st.sampled_from([0, 1, 2, 4])),
            mask=draw(st.sampled_from([None, b"\x01\x02\x03\x04"])),
            length_form=draw(st.sampled_from([0, 2, 8])),
        )
    opcode = draw(st.sampled_from([0x0, 0x1, 0x2]))
    return raw_frame(opcode, draw(PAYLOADS), fin=draw(st.booleans()), mask=draw(st.binary(min_size=4, max_size=4)))


@st.composite
def valid_message_frames(draw: st.DrawFn) -> bytes:
    """A whole message, maybe fragmented, maybe with pings in between."""
    is_text = draw(st.booleans())
    payload = draw(UTF8) if is_text else draw(st.binary(max_size=300))
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    out = b""
    for i, piece in enumerate(pieces):
        opcode = (0x1 if is_text else 0x2) if i == 0 else 0x0
        out += raw_frame(opcode, piece, fin=i == len(pieces) - 1, mask=draw(st.binary(min_size=4, max_size=4)))
        if draw(st.booleans()):
            out += raw_frame(0x9, draw(st.binary(max_size=10)))
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


class TestRFC6455Section5_2BaseFramingProtocol:
    """Any stream, valid or not, cut anywhere: the same outcome as wsproto's parser."""

    @settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(
        st.lists(st.one_of(one_frame(), valid_message_frames()), min_size=1, max_size=6),
        st.lists(st.integers(0, 10_000), max_size=5),
    )
    def test_same_outcome_as_wsproto(self, stream: list[bytes], points: list[int]) -> None:
        data = b"".join(stream)
        expected = wsproto_outcome([data])
        assert codec_outcome([data]) == expected
        assert codec_outcome(cut(data, points)) == expected
        assert codec_outcome([data[i : i + 1] for i in range(len(data))]) == expected

    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 300_000])
    def test_lengths_in_every_form(self, size: int) -> None:
        payload = os.urandom(size)
        data = raw_frame(0x2, payload, mask=os.urandom(4))
        assert codec_outcome([data]) == [("message", payload)]
        assert codec_outcome(cut(data, [1, 3, 9, 4000, 70_000])) == [("message", payload)]

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            (raw_frame(0x2, b"x", length_form=2), 1002),  # RFC 6455 §5.2: shortest length form
            (raw_frame(0x2, b"x" * 200, length_form=8), 1002),
            (raw_frame(0x2, b"x", mask=None), 1002),  # §5.3: client frames are masked
            (raw_frame(0x3, b""), 1002),  # reserved opcode
            (raw_frame(0x2, b"", rsv=4), 1002),  # RSV1 with no extension agreed
            (raw_frame(0x9, b"", fin=False), 1002),  # §5.5: control frames are not fragmented
            (raw_frame(0x0, b"x"), 1002),  # §5.4: a continuation with nothing to continue
            (raw_frame(0x1, b"a", fin=False) + raw_frame(0x2, b"b"), 1002),
            (raw_frame(0x1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007),  # §8.1
            (raw_frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),
            (raw_frame(0x8, struct.pack("!H", 1005)), 1002),  # §7.4.1: local-only code
        ],
    )
    def test_failures(self, data: bytes, code: int) -> None:
        assert codec_outcome([data])[-1] == ("fail", code)
        assert codec_outcome([data]) == wsproto_outcome([data])

    def test_64_bit_length_with_the_top_bit_set_fails_at_the_header(self) -> None:
        head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63)
        assert codec_outcome([head]) == [("fail", 1002)]

    @pytest.mark.parametrize("code", [1012, 1013, 1014])
    def test_registered_close_codes_are_accepted(self, code: int) -> None:
        # RFC 6455 §7.4.2 and the IANA registry (docs/decisions.md#malformed-offers).
        assert codec_outcome([raw_frame(0x8, struct.pack("!H", code) + b"later")]) == [("close", (code, "later"))]

    def test_nothing_after_the_close_frame(self) -> None:
        data = raw_frame(0x8, b"") + raw_frame(0x2, b"after") + b"\xff\xff"
        assert codec_outcome([data]) == [("close", (1005, ""))]


class TestRFC6455Section10_4SizeLimit:
    """The limit is checked at each data frame's header, before its payload is buffered."""

    def test_a_frame_over_the_limit_fails_at_its_header(self) -> None:
        codec = FrameCodec(100)
        head = raw_frame(0x2, b"x" * 101)[:8]
        assert codec.feed(head) == [(frames.FAIL, (1009, "message exceeds 100 bytes"))]

    def test_fragments_count_together(self) -> None:
        codec = FrameCodec(100)
        assert codec.feed(raw_frame(0x2, b"x" * 60, fin=False)) == []
        # The continuation's header (2 bytes and the masking key), no payload yet.
        assert codec.feed(raw_frame(0x0, b"x" * 41)[:6]) == [(frames.FAIL, (1009, "message exceeds 100 bytes"))]

    def test_exactly_the_limit_is_delivered(self) -> None:
        codec = FrameCodec(100)
        data = raw_frame(0x1, b"x" * 40, fin=False) + raw_frame(0x0, b"y" * 60)
        assert codec.feed(data) == [(frames.TEXT, "x" * 40 + "y" * 60)]


class TestRFC6455Section5_2ServerFrames:
    def test_server_frames_are_unmasked_with_the_shortest_length(self) -> None:
        assert frame_head(0x2, 125) == b"\x82\x7d"
        assert frame_head(0x2, 126) == b"\x82\x7e\x00\x7e"
        assert frame_head(0x1, 65536) == b"\x81\x7f" + struct.pack("!Q", 65536)
        assert frame_head(0x1, 3, rsv1=True) == b"\xc1\x03"
