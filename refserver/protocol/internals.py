"""Every place where refserver relies on a dependency's private internals, and nothing else.

Each function names the internal it touches; ``tests/test_internals.py`` fails loudly,
naming the internal, when a new release of the dependency moves it.

- wsproto documents its ``Connection``; refserver drives the frame layer beneath it
  (``wsproto.frame_protocol``: ``FrameDecoder`` with its ``receive_bytes``,
  ``process_buffer`` and ``header``, and ``MessageDecoder.process_frame``) to skip the
  event objects and the generator ``Connection`` adds per frame: :func:`frame_decoder`,
  :func:`message_decoder`.

- anyio does not expose asyncio's ``transport.is_closing()``, which knows at once that a
  peer reset the connection (trio raises from the write itself): :func:`asyncio_is_closing`.
- anyio's ``TLSStream`` sends close_notify only by waiting for the peer's as well (``unwrap``);
  sending it alone needs the stream's outgoing TLS bytes (its private ``_write_bio``) and
  whether a write was cut short (its private ``_broken``): :func:`tls_outgoing`,
  :func:`tls_broken`.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from wsproto.extensions import Extension
from wsproto.frame_protocol import FrameDecoder, MessageDecoder


def frame_decoder(extensions: list[Extension]) -> FrameDecoder:
    """wsproto's server-side frame parser (RFC 6455 §5.2: client frames must be masked)."""
    decoder = FrameDecoder(client=False, extensions=extensions)
    if not (
        callable(getattr(decoder, "process_buffer", None))
        and callable(getattr(decoder, "receive_bytes", None))
        and hasattr(decoder, "header")
    ):
        raise RuntimeError("wsproto internals moved: FrameDecoder.process_buffer/receive_bytes/header")
    return decoder


def message_decoder() -> MessageDecoder:
    """wsproto's check of fragments' order and of UTF-8 across a message (RFC 6455 §5.4, §8.1)."""
    decoder = MessageDecoder()
    if not callable(getattr(decoder, "process_frame", None)):
        raise RuntimeError("wsproto internals moved: MessageDecoder.process_frame")
    return decoder


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
