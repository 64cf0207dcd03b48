"""The HTTP response extensions of the ASGI extensions document, as the HTTP machine sends
them on HTTP/1.1: what each adds to the wire, apart from the machine's rows.

- asgi extensions, "Early Hints": a ``103 Early Hints`` informational response (RFC 8297)
  with one ``Link`` header per entry of ``links``.
- asgi extensions, "HTTP Trailers": the trailer section after the last chunk (RFC 9112
  §7.1.2), sent only to a client that asked for it with ``TE: trailers`` (RFC 9110 §10.1.4).
- asgi extensions, "Path Send" and "Zero Copy Send": a file body (:class:`FileBody`), which
  the machine frames through h11 like any body and the runtime sends with
  ``Transport.send_file`` (``os.sendfile``, or bounded reads), never read whole into memory.

Every HTTP scope advertises the extensions implemented here (:data:`ADVERTISED`; the scope
writes them out as a literal, :func:`refserver.spec.scopes.http_scope`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import h11

from refserver.errors import ASGIProtocolError
from refserver.protocol.responses import REASONS
from refserver.spec import sections

# asgi spec, "Extensions": a server lists only what it implements, each with a dict of options.
ADVERTISED = (
    "http.response.early_hint",
    "http.response.trailers",
    "http.response.pathsend",
    "http.response.zerocopysend",
)

Headers = list[tuple[bytes, bytes]]
_PATHSEND, _ZEROCOPYSEND = "http.response.pathsend", "http.response.zerocopysend"


def _bad(kind: str, problem: str) -> ASGIProtocolError:
    return ASGIProtocolError(kind, problem, sections.MESSAGES[kind])


def early_hint(links: Iterable[bytes]) -> h11.InformationalResponse:
    """Build the 103 response of an ``http.response.early_hint`` message, checked by h11.

    Raises:
        ASGIProtocolError: a link is not a valid header value (RFC 9110 §5.5).
    """
    try:
        return h11.InformationalResponse(
            status_code=103, headers=[(b"link", link) for link in links], reason=REASONS[103]
        )
    except h11.LocalProtocolError as exc:
        raise _bad("http.response.early_hint", f"has a link that cannot be sent: {exc}") from None


def accepts_trailers(headers: Headers) -> bool:
    """Tell whether the request's ``TE`` fields list ``trailers`` (RFC 9110 §10.1.4: "The
    "trailers" keyword indicates that the sender will not discard trailer fields")."""
    for name, value in headers:
        if name == b"te" and any(item.strip().lower() == b"trailers" for item in value.split(b",")):
            return True
    return False


def trailers_dropped(*, te_trailers: bool, http_version: bytes | None, head_only: bool, has_length: bool) -> str:
    """Give why the trailers of this response cannot be sent, or "" if they can.

    Trailer fields travel only after the last chunk of a chunked body (RFC 9112 §7.1.2).
    """
    if not te_trailers:
        return "the request did not carry TE: trailers"
    if http_version != b"1.1":
        return "an HTTP/1.0 client gets no chunked body (RFC 9112 §7.1)"
    if head_only:
        return "the response has no body to end with a trailer section (RFC 9110 §6.5)"
    if has_length:
        return "the app's content-length frames the body, and only a chunked body carries trailers (RFC 9112 §7.1.2)"
    return ""


def check_trailers(fields: Headers) -> None:
    """Check that h11 can send the trailer fields, as it checks a response head's.

    Raises:
        ASGIProtocolError: a name is not a token, or a value has CR, LF or NUL (RFC 9110 §5.1, §5.5).
    """
    try:
        h11.EndOfMessage(headers=fields)
    except h11.LocalProtocolError as exc:
        raise _bad("http.response.trailers", f"has headers that cannot be sent: {exc}") from None


@dataclass(frozen=True, slots=True, eq=False)
class FileBody:
    """Part of a file, as a body: ``count`` bytes of ``fd`` from ``offset``. h11 frames it by
    its length (``len()``), passing the object itself through where the bytes go."""

    fd: int
    offset: int
    count: int
    owned: bool  # the server opened it (Path Send) and closes it; Zero Copy Send's is the app's

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        """Close the file if the server opened it."""
        if self.owned:
            os.close(self.fd)


class FileWrite(NamedTuple):
    """A file body for the runtime to send, and the framing bytes that follow it."""

    body: FileBody
    after: bytes


def open_path(message: Mapping[str, Any]) -> FileBody:
    """Open the file of an ``http.response.pathsend`` message, whole, as a body.

    asgi extensions, "Path Send": ``path`` is "The string representation of the absolute file
    path to be sent by the server".

    Raises:
        ASGIProtocolError: ``path`` is not an absolute path (a str), or the file cannot be
            opened and read (missing, unreadable, a directory).
    """
    path = message.get("path")
    if not isinstance(path, str):
        raise _bad(_PATHSEND, f"has path of type {type(path).__name__}; it must be a str")
    if not os.path.isabs(path):
        raise _bad(_PATHSEND, f"has path {path!r}, which is not absolute")
    try:
        fd = os.open(path, os.O_RDONLY)  # not inherited by child processes (PEP 446)
    except OSError as exc:
        raise _bad(_PATHSEND, f"names a file that cannot be opened: {exc.strerror} ({path!r})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _bad(_PATHSEND, f"names {path!r}, which is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return FileBody(fd, 0, info.st_size, owned=True)


def zerocopy_file(message: Mapping[str, Any]) -> FileBody:
    """Give the part of the app's file an ``http.response.zerocopysend`` message sends.

    asgi extensions, "Zero Copy Send": ``file`` has "an underlying OS file descriptor that can be
    used to call ``os.sendfile``"; ``offset``, if missing, is "the current position of ``file``";
    ``count``, if missing, means "the file will be read until its end".

    Raises:
        ASGIProtocolError: a key has the wrong type, or the file has no OS file descriptor.
    """
    try:
        fd = message.get("file").fileno()  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError) as exc:
        raise _bad(_ZEROCOPYSEND, f"has a file with no OS file descriptor ({exc})") from None
    if not isinstance(fd, int):
        raise _bad(_ZEROCOPYSEND, f"has a file whose fileno() is {fd!r}, not an int")
    offset, count, more = message.get("offset"), message.get("count"), message.get("more_body", False)
    for key, value in (("offset", offset), ("count", count)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise _bad(_ZEROCOPYSEND, f"has {key}={value!r}; it must be an int >= 0")
    if not isinstance(more, bool):
        raise _bad(_ZEROCOPYSEND, f"has more_body={more!r}; it must be a bool")
    try:
        if offset is None:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        if count is None:
            count = max(0, os.fstat(fd).st_size - offset)
    except OSError as exc:
        raise _bad(_ZEROCOPYSEND, f"has a file that cannot be read: {exc.strerror}") from None
    return FileBody(fd, offset, count, owned=False)
