"""The websocket connection scope (www spec 2.5, "Websocket Connection Scope"): every key, exactly typed."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tests.support import Recorder, WSClient, serving

pytestmark = pytest.mark.anyio


def scope_app(rec: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            scope["state"]["shared"] = {"x": 1}
            scope["state"]["counter"] = 7
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        rec.add("scope", scope)
        rec.add("state at start", dict(scope["state"]))
        # A shallow copy: rebinding a key here must not leak into the next scope.
        scope["state"]["counter"] = 99
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    return app


async def open_and_close(port: int, path: str, extra: list[tuple[str, str]]) -> WSClient:
    ws = await WSClient.connect(port, path, extra=extra)
    await ws.close(1000)
    await ws.expect_close()
    await ws.expect_eof()
    return ws


async def test_every_scope_key_exactly_typed() -> None:
    rec = Recorder()
    extra = [
        ("X-Dup", "1"),
        ("Sec-WebSocket-Protocol", "p1, p2"),
        ("X-Mixed-Case", "Keep The Case"),
        ("X-Dup", "2"),
        ("Sec-WebSocket-Protocol", " p3 "),
        ("Cookie", "a=b"),
    ]
    async with serving(scope_app(rec), root_path="/mount", lifespan="on") as server:
        ws = await open_and_close(server.port, "/a%20b/%E2%82%AC?x=1&y=%20", extra)
        local = ws.stream.extra(anyio.abc.SocketAttribute.local_address)
        scope = (await rec.wait_kind("scope"))[0]

    assert set(scope) == {
        "type",
        "asgi",
        "http_version",
        "scheme",
        "path",
        "raw_path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "subprotocols",
        "state",
        "extensions",
    }
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/mount/a b/€"  # root_path in front (docs/decisions.md#root-path-in-path)
    assert type(scope["path"]) is str
    assert scope["raw_path"] == b"/a%20b/%E2%82%AC"  # no query string (www spec 2.5, "Websocket Connection Scope")
    assert type(scope["raw_path"]) is bytes
    assert scope["query_string"] == b"x=1&y=%20"
    assert type(scope["query_string"]) is bytes
    assert scope["root_path"] == "/mount"
    # Every header, in order, duplicates kept, names lower-case, values untouched.
    assert [(bytes(n), bytes(v)) for n, v in scope["headers"]] == [
        (b"host", b"127.0.0.1"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"sec-websocket-version", b"13"),
        (b"x-dup", b"1"),
        (b"sec-websocket-protocol", b"p1, p2"),
        (b"x-mixed-case", b"Keep The Case"),
        (b"x-dup", b"2"),
        (b"sec-websocket-protocol", b"p3"),
        (b"cookie", b"a=b"),
    ]
    for name, value in scope["headers"]:
        assert type(name) is bytes and type(value) is bytes
    client = scope["client"]
    assert tuple(client) == (local[0], local[1])
    assert type(client[0]) is str and type(client[1]) is int
    assert tuple(scope["server"]) == ("127.0.0.1", server.port)
    assert type(scope["server"][0]) is str and type(scope["server"][1]) is int
    assert scope["subprotocols"] == ["p1", "p2", "p3"]
    assert all(type(p) is str for p in scope["subprotocols"])
    assert scope["state"] == {"shared": {"x": 1}, "counter": 99}
    assert scope["extensions"] == {"websocket.http.response": {}}


async def test_state_is_a_shallow_copy_per_scope() -> None:
    rec = Recorder()
    async with serving(scope_app(rec), lifespan="on") as server:
        await open_and_close(server.port, "/", [])
        await open_and_close(server.port, "/", [])
        first, second = await rec.wait_kind("scope", 2)
    # The first app's rebinding of "counter" did not reach the second scope...
    assert rec.of("state at start")[1]["counter"] == 7
    assert first["state"] is not second["state"]
    # ...but the values are shared, not copied deeply.
    assert first["state"]["shared"] is second["state"]["shared"]


async def test_state_is_an_empty_dict_without_lifespan() -> None:
    rec = Recorder()
    async with serving(scope_app(rec)) as server:
        await open_and_close(server.port, "/", [])
        scope = (await rec.wait_kind("scope"))[0]
    assert rec.of("state at start") == [{}]
    assert scope["root_path"] == ""
    assert scope["query_string"] == b""
    assert scope["raw_path"] == b"/"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], []),
        ([("Sec-WebSocket-Protocol", "chat")], ["chat"]),
        ([("Sec-WebSocket-Protocol", "chat,superchat")], ["chat", "superchat"]),
        ([("Sec-WebSocket-Protocol", " a ,b,, c ")], ["a", "b", "c"]),
        ([("Sec-WebSocket-Protocol", "b"), ("Sec-WebSocket-Protocol", "a, b")], ["b", "a", "b"]),
        ([("Sec-WebSocket-Protocol", "x"), ("X-Other", "y"), ("Sec-WebSocket-Protocol", "z")], ["x", "z"]),
    ],
)
async def test_subprotocols_from_every_header_in_order(headers: list[tuple[str, str]], expected: list[str]) -> None:
    rec = Recorder()
    async with serving(scope_app(rec)) as server:
        await open_and_close(server.port, "/", headers)
        scope = (await rec.wait_kind("scope"))[0]
    assert scope["subprotocols"] == expected


async def test_unix_socket_server_is_path_and_none() -> None:
    """www spec 2.5, "Websocket Connection Scope" (since 2.2):
    ``server`` is ``[path, None]`` on a unix socket; there is no client address."""
    import tempfile
    from pathlib import Path

    from tests.support import handshake_request, read_until_eof

    rec = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "ws.sock")
        async with serving(scope_app(rec), uds=path):
            stream = await anyio.connect_unix(path)
            await stream.send(handshake_request("/u") + b"\x88\x82\x00\x00\x00\x00\x03\xe8")
            with anyio.fail_after(5):
                data = await read_until_eof(stream)
            await stream.aclose()
            scope = (await rec.wait_kind("scope"))[0]
    assert data.startswith(b"HTTP/1.1 101 ")
    assert data.endswith(b"\x88\x02\x03\xe8")  # the close echo, then EOF
    assert scope["server"] == (path, None)
    assert scope["client"] is None
