"""The HTTP connection scope (www spec 2.5, "HTTP Connection Scope"):
every key present and exactly typed, one scope per request."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from refserver.protocol.http_extensions import ADVERTISED
from tests.support import HTTPClient, Recorder, http_request, serving

pytestmark = pytest.mark.anyio

SCOPE_KEYS = {
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
    "state",
    "extensions",
}


def scope_app(rec: Recorder) -> Any:
    """Records each scope, then answers 200 with the body it read."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("scope", scope)
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    return app


def local_port(client: HTTPClient) -> int:
    sock: socket.socket = client.stream.extra(anyio.abc.SocketAttribute.raw_socket)
    return int(sock.getsockname()[1])


async def test_every_key_exactly_typed() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(scope_app(rec)) as server, HTTPClient.open(server.port) as client:
            await client.send_request(
                "GET",
                "/caf%C3%A9/a%20b?x=1&y=%20z",
                headers=[("X-Dup", "First"), ("x-other", "v"), ("X-DUP", "Second Value")],
            )
            response, _ = await client.read_response()
            port = local_port(client)
    assert response.status_code == 200
    [scope] = rec.of("scope")
    assert set(scope) == SCOPE_KEYS
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/café/a b",
        "raw_path": b"/caf%C3%A9/a%20b",
        "query_string": b"x=1&y=%20z",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"x-dup", b"First"),
            (b"x-other", b"v"),
            (b"x-dup", b"Second Value"),
        ],
        "client": ("127.0.0.1", port),
        "server": ("127.0.0.1", server.port),
        "state": {},
        "extensions": {name: {} for name in ADVERTISED},
    }
    # Exact Python types, not just equal values.
    assert type(scope["path"]) is str
    assert type(scope["raw_path"]) is bytes
    assert type(scope["query_string"]) is bytes
    assert type(scope["root_path"]) is str
    assert type(scope["headers"]) is list
    assert all(type(n) is bytes and type(v) is bytes for n, v in scope["headers"])
    assert type(scope["client"][0]) is str and type(scope["client"][1]) is int
    assert type(scope["server"][0]) is str and type(scope["server"][1]) is int
    assert type(scope["state"]) is dict
    assert type(scope["extensions"]) is dict


async def test_raw_path_excludes_query_and_empty_query_is_empty_bytes() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(scope_app(rec)) as server:
            await http_request(server.port, "GET", "/plain")
            await http_request(server.port, "GET", "/q?")
            await http_request(server.port, "GET", "/%2F%3F?a=%3F")
    plain, empty_q, encoded = rec.of("scope")
    assert (plain["path"], plain["raw_path"], plain["query_string"]) == ("/plain", b"/plain", b"")
    assert (empty_q["path"], empty_q["raw_path"], empty_q["query_string"]) == ("/q", b"/q", b"")
    # Percent-encoded "/" and "?" are decoded in path, kept in raw_path.
    assert (encoded["path"], encoded["raw_path"], encoded["query_string"]) == ("//?", b"/%2F%3F", b"a=%3F")


async def test_methods_and_http_versions() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(scope_app(rec)) as server:
            response, body = await http_request(server.port, "POST", "/p", body=b"abc")
            assert (response.status_code, body) == (200, b"abc")
            await http_request(server.port, "DELETE", "/d")
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"GET /old HTTP/1.0\r\n\r\n")
                raw = b""
                while True:
                    try:
                        raw += await stream.receive()
                    except anyio.EndOfStream:
                        break
    post, delete, old = rec.of("scope")
    assert (post["method"], post["http_version"]) == ("POST", "1.1")
    assert (delete["method"], delete["http_version"]) == ("DELETE", "1.1")
    assert (old["method"], old["http_version"], old["headers"]) == ("GET", "1.0", [])
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_root_path_from_config() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(scope_app(rec), root_path="/mount") as server:
            await http_request(server.port, "GET", "/x")
    [scope] = rec.of("scope")
    # path starts with root_path (www spec 2.5, "WSGI Compatibility"); raw_path is the target as received.
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/mount", "/mount/x", b"/x")


async def test_undecodable_path_is_replaced_not_rejected() -> None:
    rec = Recorder()
    with anyio.fail_after(5):
        async with serving(scope_app(rec)) as server:
            response, _ = await http_request(server.port, "GET", "/bad%FF")
    assert response.status_code == 200
    [scope] = rec.of("scope")
    assert (scope["path"], scope["raw_path"]) == ("/bad\ufffd", b"/bad%FF")


async def test_each_keep_alive_request_gets_its_own_scope_and_state_copy() -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("scope", scope)
        rec.add("on_entry", (dict(scope["state"]), list(scope["headers"])))
        scope["state"]["mutated"] = True  # must not leak into the next request's scope
        scope["headers"].append((b"x-added", b"1"))
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with anyio.fail_after(5):
        async with serving(app) as server, HTTPClient.open(server.port) as client:
            for path in ("/one", "/two"):
                await client.send_request("GET", path)
                response, _ = await client.read_response()
                assert response.status_code == 204
    one, two = rec.of("scope")
    assert one is not two
    assert (one["path"], two["path"]) == ("/one", "/two")
    assert one["state"] is not two["state"]
    assert one["headers"] is not two["headers"]
    assert rec.of("on_entry") == [({}, [(b"host", b"127.0.0.1")])] * 2
    assert one["client"] == two["client"]


async def test_unix_socket_server_is_path_and_none() -> None:
    rec = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s.sock")
        with anyio.fail_after(5):
            async with serving(scope_app(rec), uds=path) as server:
                assert server.addresses == (path,)
                async with await anyio.connect_unix(path) as stream:
                    client = HTTPClient(stream)
                    await client.send_request("GET", "/u")
                    response, _ = await client.read_response()
        assert not Path(path).exists()
    assert response.status_code == 200
    [scope] = rec.of("scope")
    assert scope["server"] == (path, None)
    assert scope["client"] is None


class LegacyApp:
    """ASGI 2: LegacyApp(scope) is the instance, awaited with (receive, send)."""

    seen: list[dict[str, Any]] = []

    def __init__(self, scope: dict[str, Any]) -> None:
        if scope["type"] != "http":
            raise ValueError("http only")
        LegacyApp.seen.append(scope)

    async def __call__(self, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"asgi2 class"})


def legacy_function(scope: dict[str, Any]) -> Any:
    async def instance(receive: Any, send: Any) -> None:
        event = await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"asgi2 function:" + event["body"]})

    return instance


async def test_asgi2_apps_get_the_same_scope() -> None:
    LegacyApp.seen.clear()
    with anyio.fail_after(5):
        async with serving(LegacyApp, lifespan="auto") as server:
            response, body = await http_request(server.port, "GET", "/legacy?x=1")
        async with serving(legacy_function) as server:
            response2, body2 = await http_request(server.port, "POST", "/f", body=b"data")
    assert (response.status_code, body) == (200, b"asgi2 class")
    assert (response2.status_code, body2) == (200, b"asgi2 function:data")
    [scope] = LegacyApp.seen
    assert set(scope) == SCOPE_KEYS
    assert (scope["asgi"], scope["path"], scope["query_string"]) == (
        {"version": "3.0", "spec_version": "2.5"},
        "/legacy",
        b"x=1",
    )
