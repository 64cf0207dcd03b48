"""Every place where refserver relies on a dependency's private internals, and nothing else.

Each function names the internal it touches and what the public API lacks;
``tests/test_internals.py`` fails loudly, naming the internal, when a new release of the
dependency moves it.
"""

from __future__ import annotations

import ssl
from typing import Any

import h11
from h11._headers import Headers as H11Headers
from h11._readers import ChunkedReader
from wsproto.extensions import Extension
from wsproto.frame_protocol import FrameDecoder, MessageDecoder


def frame_decoder(extensions: list[Extension]) -> FrameDecoder:
    """Make wsproto's server-side frame parser (RFC 6455 §5.2: client frames must be masked), driven
    beneath the documented ``Connection`` to skip the event objects and the generator it adds per
    frame (``FrameDecoder``'s ``receive_bytes``, ``process_buffer`` and ``header``). Saves 2.7 µs
    a frame: ``FrameCodec.feed`` takes a 32 B masked frame in 9.5 µs, its size limit included,
    against 12.2 µs for ``Connection.receive_data`` and ``events()`` (``timeit``)."""
    decoder = FrameDecoder(client=False, extensions=extensions)
    if not (
        callable(getattr(decoder, "process_buffer", None))
        and callable(getattr(decoder, "receive_bytes", None))
        and hasattr(decoder, "header")
    ):
        raise RuntimeError("wsproto internals moved: FrameDecoder.process_buffer/receive_bytes/header")
    return decoder


def message_decoder() -> MessageDecoder:
    """Make wsproto's check of fragments' order and of UTF-8 across a message (RFC 6455 §5.4, §8.1):
    ``MessageDecoder.process_frame``, beneath ``Connection`` too."""
    decoder = MessageDecoder()
    if not callable(getattr(decoder, "process_frame", None)):
        raise RuntimeError("wsproto internals moved: MessageDecoder.process_frame")
    return decoder


def tls_outgoing(stream: object) -> ssl.MemoryBIO:
    """Give anyio's ``TLSStream._write_bio``: the TLS bytes its ``SSLObject`` produced and the
    stream has not yet written to the transport. ``TLSStream`` sends close_notify only by
    waiting for the peer's as well (``unwrap``); sending it alone needs these bytes."""
    bio = getattr(stream, "_write_bio", None)
    if not isinstance(bio, ssl.MemoryBIO):
        raise RuntimeError("anyio internals moved: TLSStream._write_bio is gone")
    return bio


def tls_broken(stream: object) -> bool:
    """Read anyio's ``TLSStream._broken``: a write of TLS records was cut short, so nothing more
    can be sent (older anyio releases lack the flag: False)."""
    return bool(getattr(stream, "_broken", False))


def h11_unparsed(conn: h11.Connection) -> bytearray:
    """Give the received bytes h11 holds unparsed, live: the same bytearray for the connection's
    life, so its ``len()`` is always ``len(conn.trailing_data[0])``, without the copy that
    ``trailing_data`` makes (h11's private ``Connection._receive_buffer._data``). Saves 31,100 of
    522,300 instructions per HTTP keep-alive request, against a ``trailing_data`` read wherever
    the machine looks at the buffer."""
    data = getattr(getattr(conn, "_receive_buffer", None), "_data", None)
    if not isinstance(data, bytearray):
        raise RuntimeError("h11 internals moved: Connection._receive_buffer._data is gone")
    return data


def h11_response_with_header(response: h11.Response, name: bytes, value: bytes) -> h11.Response:
    """Return ``response`` with one more header, ``name`` (lower case, a token) and ``value`` (no
    CR, LF or NUL), which the caller vouches for: the headers h11 already validated are not
    validated again (h11's private ``Headers._full_items`` and ``Response(_parsed=True)``).
    Saves 8.7 µs a head: 1.9 against 10.6 µs for a head of three headers (``timeit``), on every
    response whose body came in one message and whose app gave no Content-Length."""
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


def h11_send(conn: h11.Connection, event: h11.Event) -> list[Any]:
    """Send as h11's ``Connection.send_with_data_passthrough`` does, without its rebuild of a response head
    that the rebuild would not change (docs/implementation.md#head-sent-as-is): one framed by
    Content-Length, or of a 204 or 304, on a connection h11 keeps alive. Such a head goes through
    h11's private ``_cstate.keep_alive``, ``_writer``, ``_process_event`` and ``_process_error``,
    as in its send. Saves 20,700 of 507,500 instructions per HTTP keep-alive request.

    Raises:
        h11.LocalProtocolError: h11 cannot send the event now.
    """
    if type(event) is not h11.Response or conn.our_state is not h11.SEND_RESPONSE or not conn._cstate.keep_alive:
        return conn.send_with_data_passthrough(event) or []
    names = [name for _, name, _ in event.headers._full_items]
    if b"transfer-encoding" in names or (b"content-length" not in names and event.status_code not in (204, 304)):
        return conn.send_with_data_passthrough(event) or []
    writer = conn._writer
    try:
        conn._process_event(conn.our_role, event)
        out: list[Any] = []
        writer(event, out.append)  # type: ignore[misc]
    except BaseException:
        conn._process_error(conn.our_role)
        raise
    return out


def h11_header_pairs(headers: H11Headers) -> list[tuple[bytes, bytes]]:
    """Return ``list(headers)`` for h11's ``Headers`` (names lower-case), without the Python call per
    item its ``Sequence`` makes: read from its private ``_full_items`` (raw name, lower-case
    name, value). Saves 5,500 of 494,000 instructions per HTTP keep-alive request."""
    return [(name, value) for _, name, value in headers._full_items]


def h11_chunk_line_start(conn: h11.Connection) -> int | None:
    """Tell where in h11's unparsed bytes (:func:`h11_unparsed`) the chunk-size line h11 reads next
    starts (after the CRLF that ends the last chunk's data, if still unread), or None when h11's
    reader is not about to read one (not a chunked body, inside a chunk's data, or in the
    trailer section). h11 parses that line without checking its extensions (RFC 9112 §7.1.1)
    and keeps no record of it. h11's private ``Connection._reader``, a ``ChunkedReader`` with
    its ``_bytes_in_chunk``, ``_bytes_to_discard`` and ``_reading_trailer``."""
    reader = getattr(conn, "_reader", None)
    if type(reader) is not ChunkedReader:
        return None
    try:
        if reader._reading_trailer or reader._bytes_in_chunk:
            return None
        discard = reader._bytes_to_discard  # the CRLF after a chunk's data (bytes since h11 0.16)
        return len(discard) if isinstance(discard, bytes) else int(discard)
    except AttributeError:
        raise RuntimeError(
            "h11 internals moved: ChunkedReader._bytes_in_chunk/_bytes_to_discard/_reading_trailer"
        ) from None
