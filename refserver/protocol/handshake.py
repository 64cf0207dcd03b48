"""The WebSocket opening handshake, server side (RFC 6455 §4.2, RFC 7692 §7), as pure functions."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

Headers = list[tuple[bytes, bytes]]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
SUPPORTED_VERSION = b"13"


def _tokens(headers: Headers, name: bytes) -> list[bytes]:
    """List the comma-separated tokens of every header called ``name``, lower-cased (RFC 9110 §5.6.1)."""
    out: list[bytes] = []
    for key, value in headers:
        if key == name:
            out.extend(t.strip().lower() for t in value.split(b",") if t.strip())
    return out


def _values(headers: Headers, name: bytes) -> list[bytes]:
    return [v for k, v in headers if k == name]


def asks_for_websocket(headers: Headers) -> bool:
    """Tell whether a request asks for a WebSocket, which it does when its Upgrade header names
    ``websocket``; every other request, other upgrades such as h2c included, is served as plain HTTP."""
    return b"websocket" in _tokens(headers, b"upgrade")


@dataclass(frozen=True, slots=True)
class Rejection:
    """An HTTP error answer to a bad handshake; no app instance is started."""

    status: int
    reason: str
    headers: Headers


def accept_key(key: bytes) -> bytes:
    """Compute Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2 item 5.4)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def validate_request(method: bytes, http_version: bytes, headers: Headers) -> Rejection | bytes:
    """Check the request (RFC 6455 §4.2.1): return the client's key, or the rejection to send."""

    def bad(reason: str, status: int = 400) -> Rejection:
        return Rejection(status, reason, [(b"sec-websocket-version", SUPPORTED_VERSION)])

    if method != b"GET":
        return bad(f"a WebSocket handshake must use GET, not {method.decode('latin-1')}")
    if http_version != b"1.1":
        return bad("a WebSocket handshake needs HTTP/1.1")
    if _values(headers, b"transfer-encoding") and _values(headers, b"content-length"):
        # RFC 9112 §6.1: such a request "ought to be handled as an error"; the server "MUST
        # close the connection after responding" (docs/decisions.md#strict-request-framing).
        return bad("a WebSocket handshake with both Content-Length and Transfer-Encoding")
    if len(_values(headers, b"host")) != 1:
        return bad("a WebSocket handshake needs exactly one Host header")
    if b"upgrade" not in _tokens(headers, b"connection"):
        return bad("the Connection header must contain the token 'upgrade'")
    keys = _values(headers, b"sec-websocket-key")
    if len(keys) != 1:
        return bad("a WebSocket handshake needs exactly one Sec-WebSocket-Key")
    key = keys[0].strip()
    try:
        decoded = base64.b64decode(key, validate=True)
    except ValueError:  # binascii.Error included
        decoded = b""
    if len(decoded) != 16:
        return bad("Sec-WebSocket-Key must be base64 of exactly 16 bytes")
    versions = _values(headers, b"sec-websocket-version")
    if not versions:
        return bad("the Sec-WebSocket-Version header is missing")
    if len(versions) != 1 or versions[0].strip() != SUPPORTED_VERSION:
        # RFC 6455 §4.2.2 item 4: the server "MUST abort the WebSocket handshake described in this section and
        # instead send an appropriate HTTP error code (such as 426 Upgrade Required) and a |Sec-WebSocket-Version|
        # header field indicating the version(s) the server is capable of understanding."
        return bad("unsupported WebSocket version; this server speaks 13", 426)
    return key


# ---------------------------------------------------------------- permessage-deflate


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The agreed permessage-deflate parameters (RFC 7692 §7.1)."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int
    response: bytes  # the Sec-WebSocket-Extensions value to send


# Our compressor's window unless the client asks for a smaller one (docs/decisions.md#permessage-deflate).
DEFAULT_SERVER_WINDOW_BITS = 12


def _parse_extension_list(headers: Headers) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Parse Sec-WebSocket-Extensions (RFC 6455 §9.1); a malformed header offers nothing."""
    offers: list[tuple[str, list[tuple[str, str | None]]]] = []
    for value in _values(headers, b"sec-websocket-extensions"):
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return []
        for item in text.split(","):
            if not item.strip():
                continue
            name, *raw_params = (p.strip() for p in item.split(";"))
            if not _is_token(name):
                return []
            params: list[tuple[str, str | None]] = []
            for raw in raw_params:
                key, eq, val = (part.strip() for part in raw.partition("="))
                if eq and len(val) >= 2 and val[0] == val[-1] == '"':
                    val = val[1:-1]
                if not _is_token(key) or (eq and not _is_token(val)):
                    return []
                params.append((key, val if eq else None))
            offers.append((name.lower(), params))
    return offers


def _is_token(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in text)


def _window_bits(value: str | None) -> int | None:
    if value is None or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


# What each permessage-deflate parameter may be (RFC 7692 §7.1), for an offer we can honour.
_PARAMETERS = {
    "server_no_context_takeover": lambda value: value is None,
    "client_no_context_takeover": lambda value: value is None,
    # zlib cannot build an 8-bit raw-deflate compressor.
    "server_max_window_bits": lambda value: (_window_bits(value) or 0) >= 9,
    # No value: the client merely supports it. A value limits the client's window, which we
    # inflate with the largest window whatever it is (and never echo: we do not limit it).
    "client_max_window_bits": lambda value: value is None or _window_bits(value) is not None,
}


def negotiate_deflate(headers: Headers) -> DeflateParams | None:
    """Accept the first permessage-deflate offer we can honour (RFC 7692 §5, §7.1;
    docs/decisions.md#permessage-deflate: any other offer leaves the connection uncompressed)."""
    for name, params in _parse_extension_list(headers):
        values = dict(params)
        if name != "permessage-deflate" or len(values) != len(params):
            continue
        if all(key in _PARAMETERS and _PARAMETERS[key](value) for key, value in params):
            window = min(
                _window_bits(values.get("server_max_window_bits")) or DEFAULT_SERVER_WINDOW_BITS,
                DEFAULT_SERVER_WINDOW_BITS,
            )
            server_nct = "server_no_context_takeover" in values
            client_nct = "client_no_context_takeover" in values
            agreed = [p for p in ("server_no_context_takeover", "client_no_context_takeover") if p in values]
            response = "; ".join(["permessage-deflate", *agreed, f"server_max_window_bits={window}"])
            return DeflateParams(server_nct, client_nct, window, response.encode())
    return None
