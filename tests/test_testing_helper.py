"""refserver.testing: serve() and serve_in_thread() start a real server on a free loopback
port, expose its address and lifespan state, and stop it the way SIGTERM does, checking the
exit (lifespan spec 2.0, "Lifespan State" and the startup/shutdown messages)."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
import websockets.sync.client
from wsproto.events import CloseConnection

from refserver import LifespanFailure
from refserver.testing import serve, serve_in_thread
from tests.support import TIMEOUT, Recorder, WSClient, connect, http_request, read_until_eof

pytestmark = pytest.mark.anyio


class StatefulApp:
    """Lifespan puts a greeting and a shared list in the state; HTTP answers with the
    greeting and appends to the list; a WebSocket echoes. Everything is recorded."""

    def __init__(self, *, fail_startup: bool = False, fail_shutdown: bool = False) -> None:
        self.seen = Recorder()
        self.fail_startup = fail_startup
        self.fail_shutdown = fail_shutdown

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)
        elif scope["type"] == "http":
            scope["state"]["visits"].append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": scope["state"]["greeting"].encode()})
        else:
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    self.seen.add("ws disconnect", event)
                    return
                await send({"type": "websocket.send", "text": event["text"]})

    async def lifespan(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        if self.fail_startup:
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return
        scope["state"].update(greeting="hello from startup", visits=[])
        await send({"type": "lifespan.startup.complete"})
        self.seen.add("startup complete")
        assert (await receive())["type"] == "lifespan.shutdown"
        self.seen.add("shutdown", list(scope["state"]["visits"]))
        if self.fail_shutdown:
            await send({"type": "lifespan.shutdown.failed", "message": "could not flush"})
        else:
            await send({"type": "lifespan.shutdown.complete"})


class BlockError(Exception):
    pass


class TestServe:
    async def test_address_urls_and_a_real_request(self) -> None:
        app = StatefulApp()
        with anyio.fail_after(TIMEOUT):
            async with serve(app) as server:
                assert server.host == "127.0.0.1"
                assert server.port > 0
                assert server.address == ("127.0.0.1", server.port)
                assert server.http_url == f"http://127.0.0.1:{server.port}"
                assert server.ws_url == f"ws://127.0.0.1:{server.port}"
                response, body = await http_request(server.port, "GET", "/hello")
                assert (response.status_code, body) == (200, b"hello from startup")

    async def test_lifespan_state_is_exposed_and_shared_with_connections(self) -> None:
        app = StatefulApp()
        with anyio.fail_after(TIMEOUT):
            async with serve(app) as server:
                assert server.state["greeting"] == "hello from startup"
                await http_request(server.port, "GET", "/a")
                await http_request(server.port, "GET", "/b")
                # the connections' copies share the list object (a shallow copy)
                assert server.state["visits"] == ["/a", "/b"]
                assert app.seen.of("shutdown") == []
            assert app.seen.of("shutdown") == [["/a", "/b"]]

    async def test_leaving_the_block_closes_open_websockets_with_1001_then_runs_lifespan_shutdown(self) -> None:
        app = StatefulApp()
        closes: list[CloseConnection] = []

        async def answer_the_close(client: WSClient) -> None:
            close = await client.expect_close()
            closes.append(close)
            await client.close(close.code)  # the client completes the closing handshake
            await client.expect_eof()
            await client.aclose()

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                async with serve(app) as server:
                    client = await WSClient.connect(server.port, "/ws")
                    await client.send_text("ping")
                    assert await client.next_message() == "ping"
                    tg.start_soon(answer_the_close, client)
                # the block is left only once the server has stopped
                assert [kind for kind, _ in app.seen.items] == ["startup complete", "ws disconnect", "shutdown"]
                assert app.seen.of("ws disconnect") == [
                    {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
                ]
        assert [close.code for close in closes] == [1001]

    async def test_a_client_that_never_answers_the_close_delays_the_exit_by_shutdown_timeout_s_at_most(
        self,
    ) -> None:
        app = StatefulApp()
        with anyio.fail_after(TIMEOUT):
            async with serve(app, shutdown_timeout_s=0.2) as server:
                client = await WSClient.connect(server.port, "/ws")  # never reads again
            assert app.seen.of("ws disconnect") == [
                {"type": "websocket.disconnect", "code": 1001, "reason": "server shutting down"}
            ]
            assert app.seen.of("shutdown") == [[]]
            await client.aclose()

    async def test_failed_startup_raises_lifespan_failure_and_the_block_never_runs(self) -> None:
        entered = False
        with anyio.fail_after(TIMEOUT), pytest.raises(LifespanFailure, match="no database"):
            async with serve(StatefulApp(fail_startup=True)):
                entered = True
        assert not entered

    async def test_failed_shutdown_raises_lifespan_failure_on_exit(self) -> None:
        app = StatefulApp(fail_shutdown=True)
        with anyio.fail_after(TIMEOUT), pytest.raises(LifespanFailure, match="could not flush"):
            async with serve(app):
                pass
        assert app.seen.of("shutdown") == [[]]

    async def test_an_error_in_the_block_comes_out_as_itself_after_a_graceful_shutdown(self) -> None:
        app = StatefulApp()
        with anyio.fail_after(TIMEOUT), pytest.raises(BlockError):
            async with serve(app):
                raise BlockError
        assert app.seen.of("shutdown") == [[]]

    async def test_options_are_config_fields(self) -> None:
        with pytest.raises(TypeError, match="unknown option"):
            async with serve(StatefulApp(), ws_max_size=10):
                pass
        with pytest.raises(TypeError, match="caller's event loop"):
            async with serve(StatefulApp(), backend="trio"):
                pass
        with anyio.fail_after(TIMEOUT):
            async with serve(StatefulApp(), lifespan="off") as server:
                assert server.config.lifespan == "off"
                assert server.state == {}

    async def test_ipv6_loopback_urls_use_brackets(self) -> None:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError as exc:
            pytest.skip(f"no IPv6 loopback here: {exc}")
        with anyio.fail_after(TIMEOUT):
            async with serve(StatefulApp(), host="::1") as server:
                assert server.address == ("::1", server.port)
                assert server.http_url == f"http://[::1]:{server.port}"
                assert server.ws_url == f"ws://[::1]:{server.port}"
                stream = await connect(server.port, host="::1")
                await stream.send(b"GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
                reply = await read_until_eof(stream)
                await stream.aclose()
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\nhello from startup")

    async def test_a_unix_socket_has_no_tcp_address(self, tmp_path: Path) -> None:
        path = str(tmp_path / "refserver.sock")
        with anyio.fail_after(TIMEOUT):
            async with serve(StatefulApp(), uds=path) as server:
                assert server.listening.addresses == (path,)
                with pytest.raises(ValueError, match="unix socket"):
                    server.http_url  # noqa: B018


def test_serve_works_under_plain_asyncio_run() -> None:
    """No anyio test runner: an asyncio test (pytest-asyncio, unittest's IsolatedAsyncioTestCase)."""

    async def main() -> tuple[int, bytes]:
        async with serve(StatefulApp()) as server:
            response, body = await asyncio.wait_for(http_request(server.port, "GET", "/"), TIMEOUT)
            return response.status_code, body

    assert asyncio.run(main()) == (200, b"hello from startup")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
class TestServeInThread:
    """No event loop in the test: plain urllib and the websockets library's sync client."""

    def test_a_synchronous_test_talks_to_the_server(self, backend: str) -> None:
        app = StatefulApp()
        with serve_in_thread(app, backend=backend) as server:
            assert server.config.backend == backend
            with urllib.request.urlopen(server.http_url + "/sync", timeout=TIMEOUT) as response:
                assert (response.status, response.read()) == (200, b"hello from startup")
            with websockets.sync.client.connect(server.ws_url + "/ws", open_timeout=TIMEOUT) as ws:
                ws.send("over a thread")
                assert ws.recv(timeout=TIMEOUT) == "over a thread"
            assert server.state["visits"] == ["/sync"]
        assert app.seen.of("shutdown") == [["/sync"]]
        assert app.seen.of("ws disconnect") == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]

    def test_the_server_runs_in_another_thread(self, backend: str) -> None:
        threads: list[threading.Thread] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            threads.append(threading.current_thread())
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

        with (
            serve_in_thread(app, backend=backend, lifespan="off") as server,
            urllib.request.urlopen(server.http_url, timeout=TIMEOUT) as response,
        ):
            assert response.status == 204
        assert len(threads) == 1 and threads[0] is not threading.current_thread()

    def test_failed_startup_raises_lifespan_failure_in_the_callers_thread(self, backend: str) -> None:
        with (
            pytest.raises(LifespanFailure, match="no database"),
            serve_in_thread(StatefulApp(fail_startup=True), backend=backend),
        ):
            pass

    def test_an_error_in_the_block_comes_out_as_itself(self, backend: str) -> None:
        app = StatefulApp()
        with pytest.raises(BlockError), serve_in_thread(app, backend=backend):
            raise BlockError
        assert app.seen.of("shutdown") == [[]]


class TestRecord:
    """``record=True``: a framework's test can assert every ASGI message its app was told."""

    @pytest.mark.anyio
    async def test_records_what_the_app_received_and_sent(self) -> None:
        done = anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                return
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
            done.set()

        async with serve(app, record=True, lifespan="off") as server:
            ws = await WSClient.connect(server.port)
            await ws.close(4001, "bye")
            with anyio.fail_after(TIMEOUT):
                await done.wait()
            await ws.aclose()
        assert server.messages("recv", "ws") == [
            {"type": "websocket.connect"},
            {"type": "websocket.disconnect", "code": 4001, "reason": "bye"},
        ]
        assert server.messages("send", "ws") == [{"type": "websocket.accept"}]
        assert [r.state for r in server.records if r.kind == "state" and r.scope == "ws"] == ["OPEN", "CLOSED"]

    def test_without_record_nothing_is_kept(self) -> None:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

        with serve_in_thread(app, lifespan="off") as server:
            response = urllib.request.urlopen(server.http_url + "/", timeout=TIMEOUT)
            status = response.status
            response.close()
        assert status == 204
        assert server.records == []
