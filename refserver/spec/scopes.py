"""Scope builders for the http and websocket connection scopes (www spec 2.5).

Every key of the spec's scope tables is filled, exactly typed. Builders take plain
values so that they can be tested without a socket or an h11 connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from refserver.spec.versions import HTTP_ASGI, WEBSOCKET_ASGI

Headers = list[tuple[bytes, bytes]]
Address = tuple[str, int] | tuple[str, None] | None
# A request target split the way the www spec wants it (www spec 2.5, "HTTP Connection Scope"):
# ``path`` percent-decoded and UTF-8-decoded, ``raw_path`` as received without the query string,
# and ``query_string`` (after "?", still percent-encoded).
Target = tuple[str, bytes, bytes]


def split_target(target: bytes) -> Target:
    """Split a request target (origin-form, absolute-form or ``*``) into the scope's ``path``,
    ``raw_path`` and ``query_string``."""
    if not target.startswith(b"/") and target != b"*" and b"://" in target:
        # absolute-form (RFC 9112 §3.2.2): keep only the path and query of the URL.
        parts = urlsplit(target)
        raw_path = parts.path or b"/"
        query = parts.query
    else:
        raw_path, _, query = target.partition(b"?")
    # www spec: "path ... with percent-encoded sequences and UTF-8 byte sequences decoded
    # into characters". Invalid UTF-8 is replaced, as every mainstream server does
    # (docs/decisions.md#undecodable-paths).
    path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("utf-8", "replace")
    return path, raw_path, query


def http_scope(
    *,
    method: str,
    http_version: str,
    target: Target,
    headers: Headers,
    client: Address,
    server: Address,
    root_path: str,
    state: dict[str, Any],
    scheme: str | None = None,
    tls: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """www spec 2.5, "HTTP Connection Scope". ``tls``: the connection's TLS extension
    entry, or None for a plain-text connection; ``scheme`` defaults to https or http."""
    # asgi spec, "Extensions": list only what is implemented: the HTTP response extensions
    # (refserver.protocol.http_extensions), each with its (empty) options, a fresh dict per scope.
    extensions: dict[str, Any] = {
        "http.response.early_hint": {},
        "http.response.trailers": {},
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
    }
    if tls is not None:
        _with_tls(extensions, tls)
    path, raw_path, query_string = target
    return {
        "type": "http",
        "asgi": dict(HTTP_ASGI),
        "http_version": http_version,
        "method": method,
        "scheme": scheme or ("http" if tls is None else "https"),
        # www spec 2.5, "WSGI Compatibility": "PATH_INFO can be derived by stripping root_path from
        # path", so path carries root_path; raw_path stays as received (docs/decisions.md#root-path-in-path).
        "path": root_path + path,
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        # www spec: a *shallow copy* of the lifespan state for every connection scope.
        "state": state.copy(),
        "extensions": extensions,
    }


def _with_tls(extensions: dict[str, Any], tls: Mapping[str, Any] | None) -> dict[str, Any]:
    """tls extension, "When to use this extension": present on TLS connections only
    ("For non-TLS connections, the ASGI server is forbidden from providing this extension").
    Each scope gets its own copy, so an app that changes it changes nothing else."""
    if tls is not None:
        entry = dict(tls)
        entry["client_cert_chain"] = list(entry.get("client_cert_chain", ()))
        extensions["tls"] = entry
    return extensions


def parse_subprotocols(headers: Headers) -> list[str]:
    """www spec 2.5 WebSocket scope ``subprotocols``: every Sec-WebSocket-Protocol header,
    in order, split on commas and trimmed (RFC 6455 §4.2.1 item 8, §11.3.4)."""
    protocols: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            for item in value.decode("latin-1").split(","):
                item = item.strip()
                if item:
                    protocols.append(item)
    return protocols


def websocket_scope(
    *,
    http_version: str,
    target: Target,
    headers: Headers,
    client: Address,
    server: Address,
    root_path: str,
    state: dict[str, Any],
    subprotocols: list[str],
    scheme: str | None = None,
    tls: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """www spec 2.5, "Websocket Connection Scope". ``tls`` and ``scheme`` as for
    :func:`http_scope` (wss or ws)."""
    path, raw_path, query_string = target
    return {
        "type": "websocket",
        "asgi": dict(WEBSOCKET_ASGI),
        "http_version": http_version,
        "scheme": scheme or ("ws" if tls is None else "wss"),
        # www spec 2.5, "WSGI Compatibility": "PATH_INFO can be derived by stripping root_path from
        # path", so path carries root_path; raw_path stays as received (docs/decisions.md#root-path-in-path).
        "path": root_path + path,
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "subprotocols": subprotocols,
        "state": state.copy(),
        # asgi extensions, "Websocket Denial Response": advertised because implemented.
        "extensions": _with_tls({"websocket.http.response": {}}, tls),
    }
