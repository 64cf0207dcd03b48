"""Mutants at the ASGI boundary: server bugs planted between any server and the probe app.

Each mutant is a wrapper that changes what the app receives (the scope, what ``receive()``
returns, whether it returns) or what reaches the server (what the app passes to ``send()``,
what ``send()`` raises). It stands for one bug a server could have, and works on any server:
the server under test runs ``refserver.conformance.mutants.boundary:app`` instead of the probe
app, with the mutant's name in ``REFSERVER_MUTANT`` (no name: the probe app unchanged).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from refserver.conformance.probe import app as probe_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Wrap = Callable[[Scope, Receive, Send], tuple[Scope, Receive, Send]]

MUTANT_ENV = "REFSERVER_MUTANT"


@dataclass(frozen=True)
class BoundaryMutant:
    """One server bug at the boundary: its name, what a server with it does, and the wrapper."""

    name: str
    bug: str
    wrap: Wrap


MUTANTS: list[BoundaryMutant] = []


def mutant(name: str, bug: str) -> Callable[[Wrap], Wrap]:
    def register(wrap: Wrap) -> Wrap:
        MUTANTS.append(BoundaryMutant(name, bug, wrap))
        return wrap

    return register


# ---------------------------------------------------------------------- building blocks


def on_scope(kinds: tuple[str, ...], change: Callable[[Scope], None]) -> Wrap:
    """A wrapper that changes the scope of the given types (a shallow copy, changed)."""

    def wrap(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
        if scope.get("type") in kinds:
            scope = dict(scope)
            change(scope)
        return scope, receive, send

    return wrap


def on_receive(change: Callable[[Scope, Message], Message | None]) -> Wrap:
    """A wrapper whose ``receive()`` returns ``change(scope, message)``; None drops the message."""

    def wrap(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
        async def mutated() -> Message:
            while True:
                message = await receive()
                changed = change(scope, dict(message))
                if changed is not None:
                    return changed

        return scope, mutated, send

    return wrap


def on_send(change: Callable[[Scope, Message], Message | None]) -> Wrap:
    """A wrapper that passes ``change(scope, message)`` to the server; None drops the message."""

    def wrap(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
        async def mutated(message: Message) -> None:
            changed = change(scope, dict(message))
            if changed is not None:
                await send(changed)

        return scope, receive, mutated

    return wrap


async def _forever() -> Message:
    import anyio

    await anyio.sleep_forever()
    raise AssertionError("unreachable")


def _set(key: str, value: Callable[[Scope], Any]) -> Callable[[Scope], None]:
    def change(scope: Scope) -> None:
        scope[key] = value(scope)

    return change


def _drop(key: str) -> Callable[[Scope], None]:
    def change(scope: Scope) -> None:
        scope.pop(key, None)

    return change


HTTP_WS = ("http", "websocket")

# ---------------------------------------------------------------------- the scope

mutant("scope.raw-path-from-path", "raw_path rebuilt from the decoded path, not the bytes received")(
    on_scope(HTTP_WS, _set("raw_path", lambda s: str(s["path"]).encode("utf-8")))
)
mutant("scope.raw-path-with-query", "raw_path keeps the query string")(
    on_scope(
        HTTP_WS,
        _set("raw_path", lambda s: s["raw_path"] + (b"?" + s["query_string"] if s["query_string"] else b"")),
    )
)
mutant("scope.path-not-decoded", "path left percent-encoded (the raw target as text)")(
    on_scope(HTTP_WS, _set("path", lambda s: bytes(s["raw_path"] or b"").decode("latin-1") or s["path"]))
)
mutant("scope.path-decoded-latin1", "path's percent-decoded bytes decoded as Latin-1, not UTF-8")(
    on_scope(HTTP_WS, _set("path", lambda s: unquote_to_bytes(s["raw_path"] or b"").decode("latin-1") or s["path"]))
)
mutant("scope.query-decoded", "query_string percent-decoded")(
    on_scope(HTTP_WS, _set("query_string", lambda s: unquote_to_bytes(s["query_string"])))
)
mutant("scope.query-as-str", "query_string given as str, not bytes")(
    on_scope(HTTP_WS, _set("query_string", lambda s: bytes(s["query_string"]).decode("latin-1")))
)
mutant("scope.headers-title-case", "header names passed as received, not lower-cased")(
    on_scope(HTTP_WS, _set("headers", lambda s: [(bytes(n).title(), v) for n, v in s["headers"]]))
)
mutant("scope.headers-merged", "repeated headers joined into one, with a comma")(
    on_scope(
        HTTP_WS,
        _set(
            "headers",
            lambda s: list(
                {
                    bytes(n): b", ".join(bytes(v2) for n2, v2 in s["headers"] if bytes(n2) == bytes(n))
                    for n, _ in s["headers"]
                }.items()
            ),
        ),
    )
)
mutant("scope.headers-no-host", "the Host header left out of the scope's headers")(
    on_scope(HTTP_WS, _set("headers", lambda s: [(n, v) for n, v in s["headers"] if bytes(n).lower() != b"host"]))
)
mutant("scope.client-port-str", "client port given as a string")(
    on_scope(HTTP_WS, _set("client", lambda s: [s["client"][0], str(s["client"][1])] if s.get("client") else None))
)
mutant("scope.server-missing", "the server key left out")(on_scope(HTTP_WS, _drop("server")))
mutant("scope.method-lower", "method given in lower case")(
    on_scope(("http",), _set("method", lambda s: str(s["method"]).lower()))
)
mutant("scope.http-version-fixed", "http_version always 1.1, whatever the request line says")(
    on_scope(HTTP_WS, _set("http_version", lambda s: "1.1"))
)
mutant("scope.ws-scheme-http", "a WebSocket scope's scheme given as http")(
    on_scope(("websocket",), _set("scheme", lambda s: "http" if s.get("scheme") == "ws" else "https"))
)
mutant("scope.root-path-missing", "the configured root_path not passed on")(
    on_scope(HTTP_WS, _set("root_path", lambda s: ""))
)
mutant("scope.subprotocols-empty", "the offered subprotocols not parsed")(
    on_scope(("websocket",), _set("subprotocols", lambda s: []))
)
mutant("scope.subprotocols-unsplit", "Sec-WebSocket-Protocol not split on commas")(
    on_scope(
        ("websocket",), _set("subprotocols", lambda s: [", ".join(s["subprotocols"])] if s["subprotocols"] else [])
    )
)
mutant("scope.asgi-version-2", "asgi version 2.0 advertised for a 3.0 app")(
    on_scope(HTTP_WS, _set("asgi", lambda s: {**s["asgi"], "version": "2.0"}))
)
mutant("scope.www-spec-version-missing", "spec_version left out of the asgi dict")(
    on_scope(HTTP_WS, _set("asgi", lambda s: {k: v for k, v in s["asgi"].items() if k != "spec_version"}))
)
mutant("scope.lifespan-spec-version-2.5", "the lifespan scope claims the www spec version")(
    on_scope(("lifespan",), _set("asgi", lambda s: {**s["asgi"], "spec_version": "2.5"}))
)
# One state for every connection (a server that forgets the shallow copy).
_SHARED_STATE: dict[str, Any] = {}


@mutant("scope.state-not-copied", "every connection gets the lifespan state itself, not a shallow copy")
def _state_not_copied(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    if scope.get("type") in HTTP_WS and isinstance(scope.get("state"), dict):
        scope = dict(scope)
        _SHARED_STATE.update({k: v for k, v in scope["state"].items() if k not in _SHARED_STATE})
        scope["state"] = _SHARED_STATE
    return scope, receive, send


mutant("scope.state-missing", "the lifespan state not passed to connections")(on_scope(HTTP_WS, _drop("state")))
mutant("scope.extensions-missing", "no extensions key (the denial response cannot be used)")(
    on_scope(HTTP_WS, _drop("extensions"))
)
mutant("scope.tls-extension-on-plain", "the tls extension advertised on a plain-text connection")(
    on_scope(
        HTTP_WS,
        _set(
            "extensions",
            lambda s: {
                **(s.get("extensions") or {}),
                "tls": (s.get("extensions") or {}).get("tls", {"server_cert": None}),
            },
        ),
    )
)

# ---------------------------------------------------------------------- http: receive


def _http_body_last_byte_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "http.request" and not m.get("more_body") and m.get("body"):
        m["body"] = m["body"][:-1]
    return m


mutant("http.body-last-byte-dropped", "the request body's last byte lost")(on_receive(_http_body_last_byte_dropped))


def _http_chunk_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "http.request" and m.get("more_body"):
        return None
    return m


mutant("http.body-chunk-dropped", "request body chunks lost when more follow")(on_receive(_http_chunk_dropped))


def _http_disconnect_early(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    done = False

    async def mutated() -> Message:
        nonlocal done
        if done and scope.get("type") == "http":
            return {"type": "http.disconnect"}
        message = await receive()
        if message.get("type") == "http.request" and not message.get("more_body"):
            done = True
        return message

    return scope, mutated, send


mutant("http.disconnect-at-once", "http.disconnect returned as soon as the body is read, client still there")(
    _http_disconnect_early
)


def _hang_after(kind: str) -> Wrap:
    def wrap(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
        seen = False

        async def mutated() -> Message:
            nonlocal seen
            if seen:
                return await _forever()
            message = await receive()
            if message.get("type") == kind:
                seen = True
            return message

        return scope, mutated, send

    return wrap


mutant("http.receive-hangs-after-disconnect", "a receive() after http.disconnect hangs")(_hang_after("http.disconnect"))
mutant("ws.receive-hangs-after-disconnect", "a second receive() after websocket.disconnect hangs")(
    _hang_after("websocket.disconnect")
)


def _never(kind: str) -> Wrap:
    def wrap(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
        async def mutated() -> Message:
            message = await receive()
            if message.get("type") == kind:
                return await _forever()
            return message

        return scope, mutated, send

    return wrap


mutant("http.disconnect-never", "http.disconnect never delivered: receive() hangs when the client leaves")(
    _never("http.disconnect")
)
mutant("ws.disconnect-never", "websocket.disconnect never delivered: receive() hangs when the peer leaves")(
    _never("websocket.disconnect")
)

# ---------------------------------------------------------------------- send() raising


def _send_swallows(kind: str) -> Wrap:
    def wrap(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
        async def mutated(message: Message) -> None:
            if scope.get("type") != kind:
                await send(message)
                return
            try:
                await send(message)
            except OSError:
                pass

        return scope, receive, mutated

    return wrap


mutant("http.send-swallows-oserror", "send() on a closed HTTP connection returns quietly")(_send_swallows("http"))
mutant("ws.send-swallows-oserror", "send() on a closed WebSocket returns quietly")(_send_swallows("websocket"))


def _send_raises_runtime(kind: str) -> Wrap:
    def wrap(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
        async def mutated(message: Message) -> None:
            if scope.get("type") != kind:
                await send(message)
                return
            try:
                await send(message)
            except OSError as exc:
                raise RuntimeError(f"Unexpected ASGI message after close: {exc}") from None

        return scope, receive, mutated

    return wrap


mutant("http.send-raises-runtimeerror", "send() on a closed HTTP connection raises RuntimeError, not OSError")(
    _send_raises_runtime("http")
)
mutant("ws.send-raises-runtimeerror", "send() on a closed WebSocket raises RuntimeError, not OSError (www 2.4)")(
    _send_raises_runtime("websocket")
)

# ---------------------------------------------------------------------- http: send


def _status_200(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "http.response.start":
        m["status"] = 200
    return m


mutant("http.status-always-200", "the app's status replaced by 200")(on_send(_status_200))


def _headers_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "http.response.start":
        m["headers"] = []
    return m


mutant("http.response-headers-dropped", "the app's response headers not written")(on_send(_headers_dropped))


def _header_names_upper(scope: Scope, m: Message) -> Message | None:
    if m.get("type") in ("http.response.start", "websocket.accept"):
        m["headers"] = [(bytes(n).upper(), v) for n, v in m.get("headers", ())]
    return m


mutant("http.response-header-names-upper", "response header names sent upper-cased")(on_send(_header_names_upper))


def _only_last_chunk(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "http.response.body" and m.get("more_body"):
        m["body"] = b""
    return m


mutant("http.streamed-chunks-lost", "a streamed response's chunks lost, only the last written")(
    on_send(_only_last_chunk)
)


def _first_chunk_final(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "http.response.body":
        m["more_body"] = False
    return m


mutant("http.more-body-ignored", "more_body ignored: the first body message ends the response")(
    on_send(_first_chunk_final)
)


def _head_body_buffered(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    parts: list[bytes] = []

    async def mutated(message: Message) -> None:
        if message.get("type") == "http.response.body" and message.get("more_body"):
            parts.append(bytes(message.get("body", b"")))
            return
        if message.get("type") == "http.response.body" and parts:
            message = {**message, "body": b"".join(parts) + bytes(message.get("body", b""))}
            parts.clear()
        await send(message)

    return scope, receive, mutated


mutant("http.response-buffered", "a streamed response held back until its last chunk (no streaming)")(
    _head_body_buffered
)


def _pathsend_as_empty(scope: Scope, m: Message) -> Message | None:
    if m.get("type") in ("http.response.pathsend", "http.response.zerocopysend"):
        return {"type": "http.response.body", "body": b""}
    return m


mutant("http.pathsend-empty", "http.response.pathsend answered with an empty body")(on_send(_pathsend_as_empty))

# ---------------------------------------------------------------------- websocket: receive


def _ws_code(old: int, new: int) -> Callable[[Scope, Message], Message | None]:
    def change(scope: Scope, m: Message) -> Message | None:
        if m.get("type") == "websocket.disconnect" and m.get("code") == old:
            m["code"] = new
        return m

    return change


mutant("ws.1006-as-1000", "a lost connection (1006) reported as a normal close (1000)")(
    on_receive(_ws_code(1006, 1000))
)
mutant("ws.1005-as-1000", "an empty close frame (1005) reported as 1000")(on_receive(_ws_code(1005, 1000)))
mutant("ws.1001-as-1000", "a going-away close (1001) reported as 1000")(on_receive(_ws_code(1001, 1000)))
mutant("ws.1002-as-1006", "a protocol failure (1002) reported as an abnormal closure (1006)")(
    on_receive(_ws_code(1002, 1006))
)


def _ws_reason_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.disconnect":
        m["reason"] = ""
    return m


mutant("ws.disconnect-reason-dropped", "the peer's close reason not passed on (www 2.3)")(
    on_receive(_ws_reason_dropped)
)


def _ws_code_missing(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.disconnect":
        m.pop("code", None)
    return m


mutant("ws.disconnect-code-missing", "websocket.disconnect without its code")(on_receive(_ws_code_missing))


def _text_as_bytes(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.receive" and m.get("text") is not None:
        return {"type": "websocket.receive", "bytes": str(m["text"]).encode("utf-8")}
    return m


mutant("ws.text-as-bytes", "text messages delivered as bytes")(on_receive(_text_as_bytes))


def _bytes_as_text(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.receive" and m.get("bytes") is not None:
        return {"type": "websocket.receive", "text": bytes(m["bytes"]).decode("latin-1")}
    return m


mutant("ws.bytes-as-text", "binary messages delivered as text")(on_receive(_bytes_as_text))


def _both_keys(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.receive":
        m.setdefault("text", None)
        m.setdefault("bytes", None)
        if m["text"] is None:
            m["text"] = ""
    return m


mutant("ws.receive-both-keys", "a binary message also carries text='' (both keys set)")(on_receive(_both_keys))


def _reordered(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    held: list[Message] = []

    async def mutated() -> Message:
        if held:
            return held.pop()
        message = await receive()
        if message.get("type") != "websocket.receive":
            return message
        following = await receive()
        if following.get("type") == "websocket.receive":
            held.append(message)
            return following
        held.append(following)
        return message

    return scope, mutated, send


mutant("ws.messages-reordered", "two messages that arrive together delivered in reverse order")(_reordered)


def _first_message_dropped(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    dropped = False

    async def mutated() -> Message:
        nonlocal dropped
        message = await receive()
        if message.get("type") == "websocket.receive" and not dropped:
            dropped = True
            message = await receive()
        return message

    return scope, mutated, send


mutant("ws.first-message-lost", "the first message after the handshake lost")(_first_message_dropped)


def _connect_twice(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    calls = 0

    async def mutated() -> Message:
        nonlocal calls
        calls += 1
        if calls == 2 and scope.get("type") == "websocket":
            return {"type": "websocket.connect"}
        return await receive()

    return scope, mutated, send


mutant("ws.connect-twice", "websocket.connect delivered again on the next receive()")(_connect_twice)

# ---------------------------------------------------------------------- websocket: send


def _accept_subprotocol_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.accept":
        m.pop("subprotocol", None)
    return m


mutant("ws.accept-subprotocol-dropped", "the app's chosen subprotocol not sent in the 101")(
    on_send(_accept_subprotocol_dropped)
)


def _accept_headers_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.accept":
        m.pop("headers", None)
    return m


mutant("ws.accept-headers-dropped", "the app's accept headers not sent (www 2.1)")(on_send(_accept_headers_dropped))


def _close_code_1000(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.close":
        m["code"] = 1000
    return m


mutant("ws.close-code-1000", "the app's close code replaced by 1000")(on_send(_close_code_1000))


def _close_reason_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.close":
        m.pop("reason", None)
    return m


mutant("ws.close-reason-dropped", "the app's close reason not sent")(on_send(_close_reason_dropped))


def _send_text_as_bytes(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.send" and m.get("text") is not None:
        return {"type": "websocket.send", "bytes": str(m["text"]).encode("utf-8")}
    return m


mutant("ws.send-text-as-binary", "the app's text messages sent as binary frames")(on_send(_send_text_as_bytes))


def _denial_as_close(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "websocket.http.response.start":
        return {"type": "websocket.close", "code": 1000}
    if m.get("type") == "websocket.http.response.body":
        return None
    return m


mutant("ws.denial-as-403", "a denial response replaced by a plain refusal (403)")(on_send(_denial_as_close))

# ---------------------------------------------------------------------- lifespan


def _startup_failed_ignored(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "lifespan.startup.failed":
        return {"type": "lifespan.startup.complete"}
    return m


mutant("lifespan.startup-failed-ignored", "lifespan.startup.failed treated as complete: the server serves")(
    on_send(_startup_failed_ignored)
)


def _shutdown_not_awaited(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    if scope.get("type") != "lifespan":
        return scope, receive, send
    finished = False

    async def mutated_receive() -> Message:
        nonlocal finished
        message = await receive()
        if message.get("type") == "lifespan.shutdown" and not finished:
            # the "server" reports completion itself and stops waiting for the app
            finished = True
            await send({"type": "lifespan.shutdown.complete"})
        return message

    async def mutated_send(message: Message) -> None:
        if finished and str(message.get("type", "")).startswith("lifespan.shutdown"):
            return
        await send(message)

    return scope, mutated_receive, mutated_send


mutant("lifespan.shutdown-not-awaited", "shutdown goes on without waiting for the app's answer")(_shutdown_not_awaited)


def _shutdown_failed_ignored(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "lifespan.shutdown.failed":
        return {"type": "lifespan.shutdown.complete"}
    return m


mutant("lifespan.shutdown-failed-ignored", "lifespan.shutdown.failed treated as complete")(
    on_send(_shutdown_failed_ignored)
)


def _startup_message_dropped(scope: Scope, m: Message) -> Message | None:
    if m.get("type") == "lifespan.startup.failed":
        m.pop("message", None)
    return m


mutant("lifespan.failure-message-dropped", "the app's startup failure message not logged")(
    on_send(_startup_message_dropped)
)


BY_NAME = {m.name: m for m in MUTANTS}


def wrap_app(app: Callable[..., Awaitable[None]], name: str | None) -> Callable[..., Awaitable[None]]:
    """``app`` behind mutant ``name`` (None or empty: unchanged)."""
    if not name:
        return app
    chosen = BY_NAME[name]

    async def mutated(scope: Scope, receive: Receive, send: Send) -> None:
        scope, receive, send = chosen.wrap(scope, receive, send)
        await app(scope, receive, send)

    return mutated


app = wrap_app(probe_app, os.environ.get(MUTANT_ENV))
