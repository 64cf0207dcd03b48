"""What h11 lets through and a front-end-safe server refuses: checks over a request's raw bytes
and h11's events, each citing its RFC section. Pure functions; no I/O, no state.

A request that fails one is answered before any app sees it (400, or 414 for a request
line longer than the head limit) and the connection is closed (docs/decisions.md#obs-fold,
docs/decisions.md#strict-request-framing).

Cost: one regex search over each request head's raw bytes (docs/implementation.md#strict-head-scan).
"""

from __future__ import annotations

import re

# RFC 9112 §6.2 and §7.1 put no upper bound on a length; a body longer than 2**63 - 1 bytes cannot
# be counted by a 64-bit signed integer, so a front-end that counts that way frames it differently
# (docs/decisions.md#strict-request-framing).
MAX_BODY_BYTES = 2**63 - 1

# One pass over the raw head finds every byte that refuses it: a line starting with SP or HTAB
# (an obs-fold, RFC 9112 §5.2: an LF followed by one) or a control byte other than HTAB, CR and LF
# (RFC 9110 §5.5). h11 has already refused NUL, CR and LF inside a field value, and every control
# byte in the request line and in field names. (One character class first, so that the regex
# engine scans for it in C; the lookarounds then sort out the LFs.)
_SUSPECT = re.compile(rb"[\n\x01-\x08\x0b\x0c\x0e-\x1f\x7f](?:(?<=\n)[ \t]|(?<!\n))")

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # RFC 9110 §5.6.2
# RFC 9110 §5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF ...; §7.1.1:
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
# chunk-ext-val = token / quoted-string
_CHUNK_LINE = re.compile(
    rb"(?P<size>[0-9A-Fa-f]+)(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
# The chunk-size lines h11 itself accepts (its chunk_header); any other it refuses with its own
# message, so only these need a second look.
_H11_CHUNK_LINE = re.compile(rb"[0-9A-Fa-f]{1,20}(?:;[^\n]*)?[ \t]*")
# RFC 3986 §3.2: the authority of an absolute-form target, without userinfo (RFC 9110 §4.2.4).
_AUTHORITY = re.compile(rb"[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]+")
_PATH_START = re.compile(rb"[/?#]")  # RFC 3986 §3.2: what ends the authority


def accepted_head_defect(
    raw: bytes | bytearray, end: int, headers: list[tuple[bytes, bytes]], has_length: bool
) -> str | None:
    """Return why a request head h11 accepted is refused, or None: an obs-fold or a control
    byte in the raw head ``raw[:end]``, or a Content-Length over 2**63 - 1 (``has_length``:
    ``headers`` hold one; RFC 9112 §6.2). A malformed chunk line is found as the body is read
    (:func:`chunk_line_defect`).

    RFC 9112 §5.2: a server that receives an obs-fold "MUST either reject the message by
    sending a 400 (Bad Request) ... or replace each received obs-fold with one or more SP
    octets"; refserver rejects it. RFC 9110 §5.5: a recipient of a field value with a
    control byte other than HTAB may retain it; refserver rejects it.
    """
    found = _SUSPECT.search(raw, 0, end)
    if found is not None:
        if found.group()[0] == 0x0A:
            return "obs-fold (a header line starting with whitespace) is not accepted (RFC 9112 §5.2)"
        return f"control character {found.group()!r} in a header value (RFC 9110 §5.5)"
    if has_length:
        length = next(value for name, value in headers if name == b"content-length")
        if len(length) >= 19 and int(length) > MAX_BODY_BYTES:  # 18 digits are always below 2**63
            return "Content-Length larger than any body can be (over 2**63 - 1 bytes)"
    return None


def chunk_line_defect(line: bytes | bytearray) -> str | None:
    """Return why a chunk-size line (without its CRLF) is refused, or None.

    RFC 9112 §7.1.1 gives the grammar of chunk extensions (token or quoted-string values);
    anything else, a bare CR or a NUL included, is refused (a line h11 refuses itself is left
    to h11: None). A size over 2**63 - 1 is refused as no real body can have it.
    """
    match = _CHUNK_LINE.fullmatch(line)
    if match is None:
        if _H11_CHUNK_LINE.fullmatch(line) is None:
            return None  # h11 refuses it (illegal chunk header)
        return f"malformed chunk line: {bytes(line)!r} (RFC 9112 §7.1, §7.1.1)"
    size = match.group("size")
    if len(size) > 15 and int(size, 16) > MAX_BODY_BYTES:
        return "chunk size larger than any body can be (over 2**63 - 1 bytes)"
    return None


def request_line_too_long(raw: bytes | bytearray, limit: int) -> bool:
    """Tell whether a head over the size limit is so because of its request line alone: no line
    ends within the first ``limit`` bytes. RFC 9112 §3: "A server that receives a
    request-target longer than any URI it wishes to parse MUST respond with a 414 (URI Too
    Long) status code"."""
    return raw.find(b"\n", 0, limit) == -1


def with_target_host(target: bytes, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Give ``headers`` as the app sees them for ``target``: an absolute-form target's authority
    replaces every Host header, where the first one was (or first, if there was none;
    docs/decisions.md#absolute-form-host); another form leaves them unchanged.

    RFC 9112 §3.2.2: "When an origin server receives a request with an absolute-form of
    request-target, the origin server MUST ignore the received Host header field (if any)
    and instead use the host information of the request-target."

    Raises:
        ValueError: the target's authority is empty or carries userinfo (RFC 9110 §4.2.1,
            §4.2.4), or is not an authority at all.
    """
    scheme, sep, rest = target.partition(b"://")
    if not sep or not scheme or target[:1] == b"/":
        return headers
    authority = _PATH_START.split(rest, 1)[0]
    if not authority or b"@" in authority or _AUTHORITY.fullmatch(authority) is None:
        raise ValueError(f"absolute-form target without a valid host: {target!r} (RFC 9110 §4.2.1, §4.2.4)")
    at = next((i for i, (name, _) in enumerate(headers) if name == b"host"), 0)
    out = [field for field in headers if field[0] != b"host"]
    out.insert(at, (b"host", authority))
    return out
