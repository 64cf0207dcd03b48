"""Every app in examples/ loads with the README's run command and does what its docstring says,
served by refserver.testing over real loopback sockets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from wsproto.events import CloseConnection

from examples.chat import ChatApp, Room
from examples.falcon_style import WebSocket, WebSocketDisconnected, ticker, websocket_app
from examples.lifespan_state import LifespanStateApp
from examples.page_reload import PageReloadApp
from refserver import ClientDisconnected
from refserver.loading import is_asgi3, load_app
from refserver.testing import serve
from tests.support import TIMEOUT, Recorder, Rejected, WSClient, header, http_request, refserver_errors

EXAMPLES = ["app", "echo", "chat", "page_reload", "denial", "lifespan_state", "falcon_style"]


class Lines:
    """A report callable for the examples that record what happened, line by line."""

    def __init__(self) -> None:
        self.recorder = Recorder()

    def __call__(self, line: str) -> None:
        self.recorder.add("line", line)

    async def wait(self, count: int) -> list[str]:
        return list(await self.recorder.wait_kind("line", count))


def test_every_example_is_listed_here() -> None:
    """A new example gets its tests in this module, starting with this list."""
    found = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
    assert found == sorted([*EXAMPLES, "__init__"])


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_loads_with_the_run_command(name: str) -> None:
    """`refserver examples.NAME:app` finds an ASGI 3 app (asgi spec, "Applications")."""
    app = load_app(f"examples.{name}:app")
    assert is_asgi3(app)


async def echo_once(port: int, path: str, text: str) -> None:
    client = await WSClient.connect(port, path)
    await client.send_text(text)
    assert await client.next_message() == text
    await client.close(1000)
    close = await client.expect_close()
    assert close.code == 1000
    await client.aclose()


@pytest.mark.anyio
class TestExampleApp:
    async def test_page_and_echo(self) -> None:
        from examples.app import app

        with anyio.fail_after(TIMEOUT):
            async with serve(app) as server:
                response, body = await http_request(server.port, "GET", "/")
                assert response.status_code == 200
                assert header(response, b"content-type") == [b"text/html; charset=utf-8"]
                assert b"new WebSocket(`ws://${location.host}/ws`)" in body
                await echo_once(server.port, "/ws", "hello")
                with pytest.raises(Rejected) as denied:
                    await WSClient.connect(server.port, "/elsewhere")
                assert denied.value.response.status_code == 403


@pytest.mark.anyio
class TestEcho:
    async def test_text_and_bytes_come_back_as_they_went(self) -> None:
        from examples.echo import app

        with anyio.fail_after(TIMEOUT):
            async with serve(app) as server:
                response, body = await http_request(server.port, "GET", "/")
                assert (response.status_code, body) == (200, b"Connect a WebSocket to this address to get an echo.\n")
                client = await WSClient.connect(server.port, "/")
                await client.send_text("héllo")
                assert await client.next_message() == "héllo"
                await client.send_bytes(b"\x00\xff")
                assert await client.next_message() == b"\x00\xff"
                await client.close(1000)
                assert (await client.expect_close()).code == 1000
                await client.aclose()


def chat_event(raw: str | bytes) -> dict[str, str]:
    assert isinstance(raw, str)
    decoded: dict[str, str] = json.loads(raw)
    return decoded


@pytest.mark.anyio
class TestChat:
    async def test_messages_reach_every_member_and_departures_are_announced(self) -> None:
        app = ChatApp()
        with anyio.fail_after(TIMEOUT):
            async with serve(app) as server:
                response, body = await http_request(server.port, "GET", "/")
                assert response.status_code == 200 and b"<title>refserver chat</title>" in body
                alice = await WSClient.connect(server.port, "/ws?name=alice")
                assert chat_event(await alice.next_message()) == {"system": "alice joined"}
                bob = await WSClient.connect(server.port, "/ws?name=bob")
                assert chat_event(await alice.next_message()) == {"system": "bob joined"}
                assert chat_event(await bob.next_message()) == {"system": "bob joined"}

                await alice.send_text("hi bob")
                for member in (alice, bob):
                    assert chat_event(await member.next_message()) == {"from": "alice", "text": "hi bob"}

                await bob.reset()  # a tab closed without a close frame
                assert chat_event(await alice.next_message()) == {"system": "bob left"}
                assert [name for name, _ in app.room.members.values()] == ["alice"]
                await alice.close(1001)
                assert (await alice.expect_close()).code == 1001
                await alice.aclose()

    async def test_a_broadcast_drops_a_member_whose_send_raises_oserror(self) -> None:
        """The member's connection ended before its own task removed it: send() raises
        (www spec 2.5, "Disconnected Client - send exception") and the room stops writing to
        it; the others still get the message."""
        room = Room()
        got: list[dict[str, Any]] = []

        async def gone(message: dict[str, Any]) -> None:
            raise ClientDisconnected("the WebSocket is closed", code=1006)

        async def present(message: dict[str, Any]) -> None:
            got.append(message)

        room.members = {1: ("gone", gone), 2: ("present", present)}
        await room.broadcast({"system": "hello"})
        assert list(room.members) == [2]
        assert got == [{"type": "websocket.send", "text": '{"system": "hello"}'}]


@pytest.mark.anyio
class TestPageReload:
    """www spec 2.5, "Disconnect - receive event" and "Disconnected Client - send exception"."""

    @pytest.mark.parametrize(("how", "code"), [("close 1001", 1001), ("reset", 1006)])
    async def test_the_disconnect_repeats_and_the_next_send_raises(
        self, how: str, code: int, caplog: pytest.LogCaptureFixture
    ) -> None:
        lines = Lines()
        with anyio.fail_after(TIMEOUT):
            async with serve(PageReloadApp(report=lines)) as server:
                client = await WSClient.connect(server.port, "/ws")
                await client.send_text("hello")
                assert await client.next_message() == "hello"
                if how == "reset":
                    await client.reset()
                else:
                    await client.close(1001)
                    assert (await client.expect_close()).code == 1001
                    await client.aclose()
                seen = await lines.wait(5)
        assert seen == [
            "socket 1: accepted",
            "socket 1: received 'hello'",
            f"socket 1: websocket.disconnect, code {code}, reason ''",
            "socket 1: receive() again: the same websocket.disconnect",
            f"socket 1: send() raised ClientDisconnected (an OSError): {seen[4].partition('OSError): ')[2]}",
        ]
        assert refserver_errors(caplog) == []


@pytest.mark.anyio
class TestDenial:
    """asgi extensions, "Websocket Denial Response"."""

    async def test_without_the_token_the_handshake_gets_the_apps_http_response(self) -> None:
        from examples.denial import app

        with anyio.fail_after(TIMEOUT):
            async with serve(app) as server:
                with pytest.raises(Rejected) as denied:
                    await WSClient.connect(server.port, "/ws")
                response = denied.value.response
                assert response.status_code == 401
                assert header(response, b"www-authenticate") == [b'Token realm="echo"']
                assert header(response, b"content-type") == [b"text/plain"]
                assert denied.value.body == b"a token is needed: /ws?token=...\n"
                await echo_once(server.port, "/ws?token=letmein", "let me in")


@pytest.mark.anyio
class TestLifespanState:
    """lifespan spec 2.0, "Lifespan State": a shallow copy of the state in every scope."""

    async def test_startup_objects_are_shared_and_shutdown_sees_them(self) -> None:
        lines = Lines()
        with anyio.fail_after(TIMEOUT):
            async with serve(LifespanStateApp(report=lines)) as server:
                assert server.state["greeting"] == "hello"
                for n in (1, 2):
                    response, body = await http_request(server.port, "GET", "/")
                    assert (response.status_code, body) == (200, f"hello, visitor {n}\n".encode())
                visits = server.state["visits"]
                assert visits.count == 2
                assert "note" not in server.state  # set in a request's copy only
                client = await WSClient.connect(server.port, "/")
                assert await client.next_message() == "2 visits so far"
                await client.close(1000)
                await client.expect_close()
                await client.aclose()
        assert visits.closed
        assert await lines.wait(2) == ["startup complete", "shutdown: 2 visits"]


@pytest.mark.anyio
class TestFalconStyle:
    """A send-only handler stops with the framework's exception, because send() on a closed
    connection raises an OSError (www spec 2.5, "Disconnected Client - send exception")."""

    @pytest.mark.parametrize(("how", "code"), [("close 1000", 1000), ("reset", 1006)])
    async def test_a_send_only_handler_learns_of_the_disconnect_from_send(self, how: str, code: int) -> None:
        lines = Lines()
        raised = Recorder()

        async def watched(ws: WebSocket) -> None:
            try:
                await ticker(0.01)(ws)
            except WebSocketDisconnected as exc:
                raised.add("exception", exc)
                raise

        with anyio.fail_after(TIMEOUT):
            async with serve(websocket_app(watched, report=lines)) as server:
                response, _ = await http_request(server.port, "GET", "/")
                assert response.status_code == 426
                client = await WSClient.connect(server.port, "/")
                assert [await client.next_message() for _ in range(3)] == ["tick 1", "tick 2", "tick 3"]
                if how == "reset":
                    await client.reset()
                else:
                    await client.close(1000)
                    close = await client.expect_close()
                    assert isinstance(close, CloseConnection) and close.code == 1000
                    await client.aclose()
                (exc,) = await raised.wait_kind("exception")
        assert exc.code == code
        assert isinstance(exc.__cause__, ClientDisconnected) and exc.__cause__.code == code
        assert await lines.wait(1) == [f"handler stopped: the client disconnected (code {code})"]
