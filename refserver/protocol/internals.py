"""Every place where refserver relies on a dependency's private internals, and nothing else.

Each function names the internal it touches; ``tests/test_internals.py`` fails loudly,
naming the internal, when a new release of the dependency moves it.

- wsproto reports a parse failure as a ``CloseConnection`` event *without* changing its
  connection state (a close frame from the peer moves it to REMOTE_CLOSING or CLOSED):
  :func:`is_parse_failure`.
- wsproto's close-frame parser (``FrameProtocol._process_close``) rejects the close codes
  1012-1014 that IANA registered after wsproto's ``CloseReason`` was written:
  :func:`accept_registered_close_codes`.
- anyio does not expose asyncio's ``transport.is_closing()``, which knows at once that a
  peer reset the connection (trio raises from the write itself): :func:`asyncio_is_closing`.
- anyio's ``TLSStream`` sends close_notify only by waiting for the peer's as well (``unwrap``);
  sending it alone needs the stream's outgoing TLS bytes (its private ``_write_bio``) and
  whether a write was cut short (its private ``_broken``): :func:`tls_outgoing`,
  :func:`tls_broken`.
- h11 tells how many received bytes it has not parsed yet only by copying them
  (``Connection.trailing_data``); its private ``_receive_buffer._data`` is the one bytearray
  that holds them, for the connection's life: :func:`h11_unparsed`.
- h11 validates a response's headers whenever a ``Response`` is built from a list; one header
  refserver adds to headers h11 already validated (the ``Content-Length`` it computes) goes on
  the validated ``Headers`` (its private ``_full_items``, and the constructor's ``_parsed``):
  :func:`h11_response_with_header`.
- h11's ``Headers`` is a ``Sequence`` whose items are made one Python call each; the
  (lower-case name, value) pairs are read straight from its private ``_full_items``:
  :func:`h11_header_pairs`.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Callable
from typing import Any

import h11
from h11._headers import Headers as H11Headers
from wsproto.connection import Connection as WireConnection
from wsproto.connection import ConnectionState as WireState
from wsproto.frame_protocol import CloseReason, Frame, ParseFailed

# Close codes registered with IANA (RFC 6455 §11.7) that wsproto's CloseReason lacks.
REGISTERED_CLOSE_CODES = frozenset({1012, 1013, 1014} - {int(reason) for reason in CloseReason})


def is_parse_failure(wire: WireConnection) -> bool:
    """True when the ``CloseConnection`` event just taken from ``wire`` is wsproto's report
    of a parse failure rather than a close frame from the peer (the state is still OPEN or
    LOCAL_CLOSING: a real close frame moves it to REMOTE_CLOSING or CLOSED)."""
    return wire.state is not WireState.REMOTE_CLOSING and wire.state is not WireState.CLOSED


def accept_registered_close_codes(wire: WireConnection) -> None:
    """Let ``wire`` accept a peer's close frame with 1012-1014 (RFC 6455 §7.4.2: codes
    registered with IANA may be used; refserver lets the app send them too)."""
    proto = wire_frame_protocol(wire)
    original: Callable[[Frame], Frame] = proto._process_close
    if not REGISTERED_CLOSE_CODES:
        return

    def process_close(frame: Frame) -> Frame:
        data = frame.payload
        if isinstance(data, bytes | bytearray) and len(data) >= 2:
            (code,) = struct.unpack("!H", data[:2])
            if code in REGISTERED_CLOSE_CODES:
                try:
                    reason = bytes(data[2:]).decode("utf-8")
                except UnicodeDecodeError as exc:  # RFC 6455 §8.1: fail with 1007
                    raise ParseFailed(
                        f"Error decoding CLOSE reason: {exc}", CloseReason.INVALID_FRAME_PAYLOAD_DATA
                    ) from None
                return Frame(frame.opcode, (code, reason), frame.frame_finished, frame.message_finished)
        return original(frame)

    setattr(proto, "_process_close", process_close)  # noqa: B010 - replaces a method on one instance


def wire_frame_protocol(wire: WireConnection) -> Any:
    """wsproto's ``Connection._proto``, the FrameProtocol behind a connection."""
    proto = getattr(wire, "_proto", None)
    if proto is None or not callable(getattr(proto, "_process_close", None)):
        raise RuntimeError("wsproto internals moved: Connection._proto._process_close is gone")
    return proto


def asyncio_is_closing(stream: object) -> Callable[[], bool] | None:
    """asyncio's ``transport.is_closing`` behind an anyio socket stream (its private
    ``_transport``), or None on trio and for streams without one."""
    transport = getattr(stream, "_transport", None)
    is_closing = getattr(transport, "is_closing", None)
    return is_closing if callable(is_closing) else None


def tls_outgoing(stream: object) -> ssl.MemoryBIO:
    """anyio's ``TLSStream._write_bio``: the TLS bytes its ``SSLObject`` produced and the
    stream has not yet written to the transport."""
    bio = getattr(stream, "_write_bio", None)
    if not isinstance(bio, ssl.MemoryBIO):
        raise RuntimeError("anyio internals moved: TLSStream._write_bio is gone")
    return bio


def tls_broken(stream: object) -> bool:
    """anyio's ``TLSStream._broken``: a write of TLS records was cut short, so nothing more
    can be sent (older anyio releases lack the flag: False)."""
    return bool(getattr(stream, "_broken", False))


def h11_unparsed(conn: h11.Connection) -> bytearray:
    """The received bytes h11 holds unparsed, live: the same bytearray for the connection's
    life, so its ``len()`` is always ``len(conn.trailing_data[0])``, without the copy
    (h11's private ``Connection._receive_buffer._data``)."""
    data = getattr(getattr(conn, "_receive_buffer", None), "_data", None)
    if not isinstance(data, bytearray):
        raise RuntimeError("h11 internals moved: Connection._receive_buffer._data is gone")
    return data


def h11_response_with_header(response: h11.Response, name: bytes, value: bytes) -> h11.Response:
    """``response`` with one more header, ``name`` (lower case, a token) and ``value`` (no
    CR, LF or NUL), which the caller vouches for: the headers h11 already validated are not
    validated again (h11's private ``Headers._full_items`` and ``Response(_parsed=True)``)."""
    items = response.headers._full_items
    if not isinstance(items, list):
        raise RuntimeError("h11 internals moved: Headers._full_items is gone")
    return h11.Response(
        headers=H11Headers([*items, (name, name, value)]),
        status_code=response.status_code,
        reason=response.reason,
        http_version=response.http_version,
        _parsed=True,
    )


def h11_header_pairs(headers: H11Headers) -> list[tuple[bytes, bytes]]:
    """``list(headers)`` for h11's ``Headers`` (names lower-case), read from its private
    ``_full_items`` (raw name, lower-case name, value)."""
    return [(name, value) for _, name, value in headers._full_items]
