"""Mutants of refserver's own code: one small source edit each, named by the server bug it plants.

Each edit replaces a text that occurs exactly once in one module of the ``refserver`` package
(:func:`apply` checks it); the command applies one at a time to a scratch copy of the package,
never to the working tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceMutant:
    """One planted bug: its name, what a server with it does, and the edit (in ``module``,
    a path under the package, ``old`` becomes ``new``)."""

    name: str
    bug: str
    module: str
    old: str
    new: str


def apply(package: Path, mutant: SourceMutant) -> None:
    """Make the edit in the copy of the package at ``package``.

    Raises:
        ValueError: the text to replace does not occur exactly once."""
    path = package / mutant.module
    text = path.read_text(encoding="utf-8")
    found = text.count(mutant.old)
    if found != 1:
        raise ValueError(f"{mutant.name}: the text to replace occurs {found} times in {mutant.module}")
    path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")


_HTTP = "protocol/http.py"
_WS = "protocol/websocket.py"
_HS = "protocol/handshake.py"
_FRAMES = "protocol/frames.py"
_SCOPES = "spec/scopes.py"
_MESSAGES = "spec/messages.py"
_LIFESPAN = "protocol/lifespan.py"
_RT_LIFESPAN = "runtime/lifespan.py"
_VERSIONS = "spec/versions.py"

MUTANTS: tuple[SourceMutant, ...] = (
    # ------------------------------------------------------------------ HTTP responses
    SourceMutant(
        "http.head-body-on-wire",
        "a HEAD response carries the app's body on the wire",
        _HTTP,
        'if body and self.method != b"HEAD" and self.status not in _NO_BODY_STATUSES:',
        "if body and self.status not in _NO_BODY_STATUSES:",
    ),
    SourceMutant(
        "http.204-body-on-wire",
        "a 204 or 304 response carries the app's body",
        _HTTP,
        'if body and self.method != b"HEAD" and self.status not in _NO_BODY_STATUSES:',
        'if body and self.method != b"HEAD":',
    ),
    SourceMutant(
        "http.no-content-length",
        "a whole body is sent chunked instead of with Content-Length",
        _HTTP,
        "if not more and not self.has_length and self.status not in _NO_BODY_STATUSES and self.trailers is None:\n"
        "                # The whole body is known",
        "if False:\n                # The whole body is known",
    ),
    SourceMutant(
        "http.app-transfer-encoding-kept",
        "the app's Transfer-Encoding header is written as given",
        _HTTP,
        'if name == b"transfer-encoding":  # www spec 2.5: the server chooses framing\n                continue',
        'if name == b"transfer-encoding":  # www spec 2.5: the server chooses framing\n                pass',
    ),
    SourceMutant(
        "http.no-date",
        "no Date header on responses",
        _HTTP,
        '        if not has_date:\n            headers.append((b"date", self.date))',
        "        pass",
    ),
    SourceMutant(
        "http.after-complete-written",
        "a body message after the response completed is written raw to the wire",
        _HTTP,
        """        self._fx.add_note(Note("ignored", f"{message.get('type')} after the response completed", """
        """self._row.section))""",
        """        self._fx.add_write(bytes(message.get("body", b"")))""",
    ),
    SourceMutant(
        "http.start-twice-ignored",
        "a second http.response.start before the body is ignored instead of raising",
        _HTTP,
        "I.START, (), M._misuse, sections.HTTP_RESPONSE_START)",
        "I.START, (), M._nothing, sections.HTTP_RESPONSE_START)",
    ),
    SourceMutant(
        "http.app-ends-no-500",
        "an app that ends without a response leaves the client without an answer",
        _HTTP,
        "        self._answer(status, body)",
        "        pass",
    ),
    SourceMutant(
        "http.disconnect-not-repeated",
        "a receive() after the response completed hangs instead of returning http.disconnect",
        _HTTP,
        """        if self.state is State.COMPLETE:
            fx.event = {"type": "http.disconnect"}
            return""",
        """        if self.state is State.COMPLETE:
            return""",
    ),
    SourceMutant(
        "http.disconnect-after-gone-missing",
        "a receive() after the client left hangs instead of returning http.disconnect",
        _HTTP,
        """        if self.state is State.CLIENT_GONE:
            fx.event = {"type": "http.disconnect"}
            return""",
        """        if self.state is State.CLIENT_GONE:
            return""",
    ),
    SourceMutant(
        "http.body-chunk-lost",
        "a request body chunk that arrives before the rest is lost",
        _HTTP,
        'self.body, self.chunk = Body.CHUNK_WAITS, b"".join(chunks)',
        'self.body, self.chunk = Body.CHUNK_WAITS, b""',
    ),
    SourceMutant(
        "http.send-after-gone-quiet",
        "send() after the client left returns quietly",
        _HTTP,
        """        raise ClientDisconnected(self.client_gone_reason or "client disconnected")""",
        "        return None",
    ),
    SourceMutant(
        "http.no-100-continue",
        "Expect: 100-continue never answered: the client waits for its timeout",
        _HTTP,
        "            self.body = Body.CONTINUE_OWED\n",
        "            pass\n",
    ),
    SourceMutant(
        "http.te-cl-kept-alive",
        "a request with both Transfer-Encoding and Content-Length keeps the connection open",
        _HTTP,
        '        if b"transfer-encoding" in names and b"content-length" in names:\n',
        '        if b"transfer-encoding" in names and b"content-length" in names and False:\n',
    ),
    SourceMutant(
        "http.connect-served",
        "CONNECT is passed to the app instead of answered 501",
        _HTTP,
        'if event.method == b"CONNECT":',
        'if event.method == b"CONNECT-":',
    ),
    SourceMutant(
        "http.big-head-accepted",
        "a request head over the limit that arrives in one read is served",
        _HTTP,
        "        if head_bytes > limit:\n",
        "        if head_bytes > limit * 100:\n",
    ),
    SourceMutant(
        "http.http10-reported-as-11",
        "an HTTP/1.0 request reported as http_version 1.1",
        _HTTP,
        "version = scope_http_version(event.http_version)",
        'version = "1.1" if event.http_version == b"1.0" else scope_http_version(event.http_version)',
    ),
    SourceMutant(
        "http.shutdown-no-connection-close",
        "a response during shutdown does not say Connection: close",
        _HTTP,
        "if self.persistence is not Persistence.KEEP_ALIVE and not has_connection:",
        "if self.persistence not in (Persistence.KEEP_ALIVE, Persistence.SHUTDOWN) and not has_connection:",
    ),
    # ------------------------------------------------------------------ the scope
    SourceMutant(
        "scope.raw-path-decoded",
        "raw_path is the decoded path",
        _SCOPES,
        "    return path, raw_path, query",
        '    return path, path.encode("utf-8"), query',
    ),
    SourceMutant(
        "scope.path-not-decoded",
        "path is not percent-decoded",
        _SCOPES,
        'path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("utf-8", "replace")',
        'path = raw_path.decode("utf-8", "replace")',
    ),
    SourceMutant(
        "scope.query-decoded",
        "query_string is percent-decoded",
        _SCOPES,
        "    return path, raw_path, query",
        "    return path, raw_path, unquote_to_bytes(query)",
    ),
    SourceMutant(
        "scope.absolute-form-kept",
        "an absolute-form target's scheme and host are kept in path",
        _SCOPES,
        'if not target.startswith(b"/") and target != b"*" and b"://" in target:',
        "if False:",
    ),
    SourceMutant(
        "scope.state-not-copied",
        "connections share the lifespan state itself (no shallow copy)",
        _SCOPES,
        """        # www spec: a *shallow copy* of the lifespan state for every connection scope.
        "state": state.copy(),""",
        """        "state": state,""",
    ),
    SourceMutant(
        "scope.ws-scheme-http",
        "a WebSocket scope's scheme is http",
        _SCOPES,
        '"scheme": scheme or ("ws" if tls is None else "wss"),',
        '"scheme": scheme or ("http" if tls is None else "https"),',
    ),
    SourceMutant(
        "scope.subprotocols-unsplit",
        "Sec-WebSocket-Protocol values are not split on commas",
        _SCOPES,
        'for item in value.decode("latin-1").split(","):',
        'for item in [value.decode("latin-1")]:',
    ),
    SourceMutant(
        "scope.tls-extension-always",
        "the tls extension is advertised on plain-text connections",
        _SCOPES,
        "    if tls is not None:\n        _with_tls(extensions, tls)\n",
        '    _with_tls(extensions, tls or {"server_cert": None})\n',
    ),
    SourceMutant(
        "scope.denial-extension-missing",
        "the websocket.http.response extension is not advertised",
        _SCOPES,
        '"extensions": _with_tls({"websocket.http.response": {}}, tls),',
        '"extensions": _with_tls({}, tls),',
    ),
    SourceMutant(
        "scope.lifespan-version-2.5",
        "the lifespan scope claims spec_version 2.5",
        _VERSIONS,
        'LIFESPAN_SPEC_VERSION = "2.0"',
        'LIFESPAN_SPEC_VERSION = "2.5"',
    ),
    # ------------------------------------------------------------------ the handshake
    SourceMutant(
        "ws.accept-key-wrong-guid",
        "Sec-WebSocket-Accept computed with a mistyped GUID",
        _HS,
        '_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"',
        '_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B12"',
    ),
    SourceMutant(
        "ws.bad-version-400",
        "an unsupported Sec-WebSocket-Version answered 400 instead of 426",
        _HS,
        'this server speaks 13", 426)',
        'this server speaks 13", 400)',
    ),
    SourceMutant(
        "ws.key-length-unchecked",
        "a Sec-WebSocket-Key that is not 16 bytes is accepted",
        _HS,
        "    if len(decoded) != 16:",
        "    if len(decoded) < 1 and False:",
    ),
    SourceMutant(
        "ws.post-upgrade-accepted",
        "a WebSocket handshake with POST is accepted",
        _HS,
        '    if method != b"GET":',
        '    if method not in (b"GET", b"POST"):',
    ),
    SourceMutant(
        "ws.unoffered-subprotocol-sent",
        "a subprotocol the client did not offer is sent in the 101",
        _WS,
        "if subprotocol is not None and subprotocol not in self.offered_subprotocols:",
        "if subprotocol is not None and False:",
    ),
    SourceMutant(
        "ws.subprotocol-not-sent",
        "the app's chosen subprotocol is not sent in the 101",
        _WS,
        """        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))""",
        "",
    ),
    SourceMutant(
        "ws.accept-headers-dropped",
        "the app's accept headers are not sent",
        _WS,
        "        headers.extend(app_headers)\n",
        "",
    ),
    SourceMutant(
        "ws.trailing-bytes-lost",
        "frames sent right behind the handshake are lost",
        _WS,
        "        if trailing:\n            # Bytes the client sent right behind the handshake are not lost.",
        "        if trailing and False:\n            # Bytes the client sent right behind the handshake are not lost.",
    ),
    # ------------------------------------------------------------------ WebSocket close
    SourceMutant(
        "ws.lost-as-1000",
        "a connection lost without a close frame reported as 1000",
        _WS,
        'self._decide(1006, "", "connection lost without a close frame (code 1006)")',
        'self._decide(1000, "", "connection lost without a close frame (code 1006)")',
    ),
    SourceMutant(
        "ws.empty-close-as-1000",
        "an empty close frame reported as 1000, not 1005",
        _FRAMES,
        '        return 1005, ""  # RFC 6455 §7.1.5: no status code',
        '        return 1000, ""  # RFC 6455 §7.1.5: no status code',
    ),
    SourceMutant(
        "ws.close-not-echoed",
        "the peer's close frame is not answered",
        _WS,
        "        self._write_close(code, reason)\n        self._peer_closed(close)",
        "        pass\n        self._peer_closed(close)",
    ),
    SourceMutant(
        "ws.close-echoed-1000",
        "the peer's close frame answered with 1000 whatever its code",
        _WS,
        "        self._write_close(code, reason)\n        self._peer_closed(close)",
        "        self._write_close(1000, reason)\n        self._peer_closed(close)",
    ),
    SourceMutant(
        "ws.peer-reason-dropped",
        "the peer's close reason is not passed to the app",
        _WS,
        'self._decide(code, reason, f"peer closed the connection with code {code}")',
        'self._decide(code, "", f"peer closed the connection with code {code}")',
    ),
    SourceMutant(
        "ws.app-return-1011",
        "an app that returns while open closes with 1011",
        _WS,
        '(1000, "returned")',
        '(1011, "returned")',
    ),
    SourceMutant(
        "ws.app-raise-1000",
        "an app that raises while open closes with 1000",
        _WS,
        '(1011, "raised")',
        '(1000, "raised")',
    ),
    SourceMutant(
        "ws.close-default-1005",
        "websocket.close without a code closes with no status code",
        _WS,
        "        code = 1000 if code is None else code",
        "        code = 1005 if code is None else code",
    ),
    SourceMutant(
        "ws.close-reason-not-cut",
        "a close reason over 123 bytes is sent whole (a frame over 125 bytes)",
        _WS,
        "MAX_CLOSE_REASON_BYTES = 123",
        "MAX_CLOSE_REASON_BYTES = 1230",
    ),
    SourceMutant(
        "ws.reserved-close-code-accepted",
        "a close frame with a reserved code (1005, 1006, 1016-2999) is accepted",
        _MESSAGES,
        "    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999",
        "    return 1000 <= code <= 4999",
    ),
    SourceMutant(
        "ws.send-after-close-quiet",
        "send() on a closed WebSocket returns quietly",
        _WS,
        "        raise ClientDisconnected(self.closed_reason, self.close_code)\n\n    def _misuse",
        "        return None\n\n    def _misuse",
    ),
    SourceMutant(
        "ws.shutdown-1000",
        "server shutdown closes WebSockets with 1000, not 1001",
        _WS,
        "        self._write_close(1001, reason)",
        "        self._write_close(1000, reason)",
    ),
    SourceMutant(
        "ws.close-timeout-decides-1000",
        "a peer that never answers the close frame is reported as 1000",
        _WS,
        'self._decide(1006, "", "the peer did not answer the close frame in time (code 1006)")',
        'self._decide(1000, "", "the peer did not answer the close frame in time (code 1006)")',
    ),
    # ------------------------------------------------------------------ frames
    SourceMutant(
        "ws.every-failure-1002",
        "every bad frame fails the connection with 1002 (bad UTF-8 too, where 1007 is due)",
        _FRAMES,
        "            code = int(exc.code)\n",
        "            code = 1002\n",
    ),
    SourceMutant(
        "ws.ping-not-answered",
        "pings are not answered with a pong",
        _WS,
        "        self._write(FrameCodec.control_frame(frames.PONG, payload))",
        "        pass",
    ),
    SourceMutant(
        "ws.pong-empty",
        "a pong does not carry the ping's payload",
        _WS,
        "        self._write(FrameCodec.control_frame(frames.PONG, payload))",
        '        self._write(FrameCodec.control_frame(frames.PONG, b""))',
    ),
    SourceMutant(
        "ws.size-limit-off",
        "a message over the size limit is delivered (no 1009)",
        _FRAMES,
        "        if size > self._max_size:",
        "        if size > self._max_size * 1000:",
    ),
    SourceMutant(
        "ws.text-sent-binary",
        "the app's text messages go out as binary frames",
        _FRAMES,
        "        return frame_head(TEXT if text else BINARY, len(payload), deflate is not None) + payload",
        "        return frame_head(BINARY, len(payload), deflate is not None) + payload",
    ),
    SourceMutant(
        "ws.fragments-joined-wrong",
        "a fragmented message loses its first fragment",
        _FRAMES,
        "            if part.payload:\n                self._parts.append(part.payload)",
        "            if part.payload and self._parts:\n                self._parts.append(part.payload)",
    ),
    # ------------------------------------------------------------------ lifespan
    SourceMutant(
        "lifespan.startup-failed-serves",
        "lifespan.startup.failed is logged and the server serves anyway",
        _RT_LIFESPAN,
        """            error_log.error("Lifespan startup failed: %s", text)
            self._scope.cancel()
            raise LifespanFailure(f"lifespan startup failed: {text}")""",
        """            error_log.error("Lifespan startup failed: %s", text)
            return""",
    ),
    SourceMutant(
        "lifespan.shutdown-fixed-wait",
        "lifespan shutdown gives up after a fixed short wait, ignoring --shutdown-timeout",
        _RT_LIFESPAN,
        "            with anyio.move_on_after(timeout_s) as timer:",
        "            with anyio.move_on_after(min(timeout_s, 0.2)) as timer:",
    ),
    SourceMutant(
        "lifespan.shutdown-not-awaited",
        "the server does not wait for lifespan.shutdown.complete",
        _RT_LIFESPAN,
        "            with anyio.move_on_after(timeout_s) as timer:",
        "            with anyio.move_on_after(0) as timer:",
    ),
    SourceMutant(
        "lifespan.startup-message-lost",
        "the app's startup failure message is not logged",
        _LIFESPAN,
        '''        message = messages.validate(message, "lifespan.startup.failed")
        self.failure_message = message.get("message") or ""''',
        '''        message = messages.validate(message, "lifespan.startup.failed")
        self.failure_message = ""''',
    ),
    SourceMutant(
        "lifespan.raise-on-fails",
        "an app that raises at startup stops the server even in auto mode",
        _RT_LIFESPAN,
        '        if self.mode == "on":',
        '        if self.mode in ("on", "auto"):',
    ),
)

BY_NAME = {m.name: m for m in MUTANTS}
