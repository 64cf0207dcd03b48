"""40 numbered scenarios where ASGI servers disagree (their WebSocket rows in
docs/conformance.md show the other servers), pinned to refserver's decided outcome (docs/decisions.md).

Every scenario runs a *probe* app: a per-test script drives ``receive()`` and ``send()``
through a :class:`Probe`, which records every event received and every send outcome
(returned, or the exception class, whether it is an ``OSError`` and its message). The
clients are the raw wsproto/h11 client of ``tests/support.py`` (byte-exact frames, RST,
half-close, never reading) and, for a few scenarios, the ``websockets`` library as an
independent second client (asyncio only).

Nothing sleeps: tests wait on recorded events, bounded by ``anyio.fail_after``; the timing
scenarios (5, 9, 12, 14) assert "within 1 s".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import pytest
import wsproto.events as wse
from wsproto.frame_protocol import Opcode

from refserver import ASGIProtocolError, ClientDisconnected
from refserver.runtime.server import Listening
from tests.support import (
    Recorder,
    Rejected,
    WSClient,
    big_frame,
    close_frame,
    frame,
    header,
    refserver_errors,
    serving,
    serving_stoppable,
)

pytestmark = pytest.mark.anyio

Event = dict[str, Any]
MiB = 1024 * 1024
DEADLINE = 10.0  # whole-test bound
WITHIN = 1.0  # "promptly" / "at once"

CONNECT: Event = {"type": "websocket.connect"}
ACCEPT: Event = {"type": "websocket.accept"}


def disconnect(code: int, reason: str = "") -> Event:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


def text(data: str) -> Event:
    return {"type": "websocket.send", "text": data}


# ---------------------------------------------------------------- the probe app


@dataclass(frozen=True)
class Outcome:
    """What one ``send()`` did."""

    message_type: str | None
    raised: type[BaseException] | None
    is_oserror: bool
    message: str

    @property
    def ok(self) -> bool:
        return self.raised is None


def assert_ok(outcome: Outcome) -> None:
    assert outcome.raised is None, outcome


def assert_client_disconnected(outcome: Outcome) -> None:
    """refserver.ClientDisconnected, an OSError subclass, with a message that says why."""
    assert outcome.raised is ClientDisconnected, outcome
    assert outcome.is_oserror, outcome
    assert outcome.message.strip(), outcome


def assert_protocol_error(outcome: Outcome) -> None:
    """refserver.ASGIProtocolError (an app bug, not an OSError), with a message."""
    assert outcome.raised is ASGIProtocolError, outcome
    assert not outcome.is_oserror, outcome
    assert outcome.message.strip(), outcome


class Probe:
    """One app instance: records everything it receives and every send outcome."""

    def __init__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.log = Recorder()

    # -- used by scripts

    async def receive(self) -> Event:
        self.log.add("receiving", len(self.log.of("recv")))
        event = await self._receive()
        self.log.add("recv", event)
        return dict(event)

    async def send(self, message: Any) -> Outcome:
        kind = message.get("type") if isinstance(message, dict) else None
        try:
            await self._send(message)
        except Exception as exc:
            outcome = Outcome(kind, type(exc), isinstance(exc, OSError), str(exc))
        else:
            outcome = Outcome(kind, None, False, "")
        self.log.add("send", outcome)
        return outcome

    async def receive_until_disconnect(self) -> Event:
        while True:
            event = await self.receive()
            if event["type"] == "websocket.disconnect":
                return event

    def mark(self, label: Any) -> None:
        self.log.add("mark", label)

    # -- used by tests

    @property
    def received(self) -> list[Event]:
        return self.log.of("recv")

    @property
    def sends(self) -> list[Outcome]:
        return self.log.of("send")

    async def wait_recv(self, count: int, timeout: float = DEADLINE) -> list[Event]:
        return await self.log.wait_kind("recv", count, timeout)

    async def wait_sends(self, count: int, timeout: float = DEADLINE) -> list[Outcome]:
        return await self.log.wait_kind("send", count, timeout)

    async def wait_receiving(self, count: int, timeout: float = DEADLINE) -> None:
        """Until the script has entered its ``count``-th ``receive()``."""
        await self.log.wait_kind("receiving", count, timeout)

    async def wait_mark(self, label: Any, timeout: float = DEADLINE) -> None:
        await self.log.wait_for(lambda r: label in r.of("mark"), timeout)

    async def wait_done(self, timeout: float = DEADLINE) -> None:
        await self.log.wait_kind("done", 1, timeout)


Script = Callable[[Probe], Awaitable[None]]


class ProbeHub:
    """The ASGI app: runs ``script`` for every WebSocket; probes are kept in order."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.instances = Recorder()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        assert scope["type"] == "websocket"
        probe = Probe(scope, receive, send)
        self.instances.add("probe", probe)
        try:
            await self.script(probe)
        finally:
            probe.log.add("done")

    async def probe(self, index: int = 0, timeout: float = DEADLINE) -> Probe:
        probe = (await self.instances.wait_kind("probe", index + 1, timeout))[index]
        assert isinstance(probe, Probe)
        return probe


OpenWS = Callable[..., Awaitable[WSClient]]


@pytest.fixture
async def open_ws() -> AsyncIterator[OpenWS]:
    """``WSClient.connect`` whose clients are all closed when the test ends."""
    opened: list[WSClient] = []

    async def open_(port: int, path: str = "/", **kwargs: Any) -> WSClient:
        ws = await WSClient.connect(port, path, **kwargs)
        opened.append(ws)
        return ws

    yield open_
    for ws in opened:
        await ws.aclose()


async def accept_and_receive(p: Probe) -> None:
    """The commonest script: read connect, accept, receive until the disconnect."""
    await p.receive()
    await p.send(ACCEPT)
    await p.receive_until_disconnect()


async def next_non_control(ws: WSClient, timeout: float = DEADLINE) -> Any:
    """The next wsproto event that is not a ping or pong."""
    while True:
        event = await ws.next_event(timeout)
        if not isinstance(event, wse.Ping | wse.Pong):
            return event


# ================================================================ 1-6: disconnect codes


async def test_scenario_01_network_loss_rst(open_ws: OpenWS) -> None:
    """Scenario 1: network loss, abortive (RST) while the app awaits receive().
    Pins: exactly one disconnect, code 1006 and reason "" (RFC 6455 §7.1.5, docs/decisions.md #16)."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            await ws.reset()
            await p.wait_done()
    assert p.received == [CONNECT, disconnect(1006, "")]


async def test_scenario_02_network_loss_fin(open_ws: OpenWS) -> None:
    """Scenario 2: network loss, graceful FIN (half-close) without a close frame.
    Pins: disconnect 1006 with reason "", and the server then closes the TCP connection."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            await ws.stream.send_eof()
            await p.wait_done()
            await ws.expect_eof()
            await ws.aclose()
    assert p.received == [CONNECT, disconnect(1006, "")]


async def test_scenario_03_client_close_code_and_reason(open_ws: OpenWS) -> None:
    """Scenario 3: the client closes with (4001, "bye-ü").
    Pins: disconnect {"code": 4001, "reason": "bye-ü"} delivered promptly (within 1 s)."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            await ws.close(4001, "bye-ü")
            received = await p.wait_recv(2, timeout=WITHIN)
            echo = await ws.expect_close()
            await ws.expect_eof()
            await p.wait_done()
    assert received == [CONNECT, disconnect(4001, "bye-ü")]
    assert echo.code == 4001


async def test_scenario_04_client_close_empty_payload(open_ws: OpenWS) -> None:
    """Scenario 4: the client sends a close frame with an empty payload.
    Pins: disconnect code 1005, reason "" (never None, never 1006); the echo is a close
    frame without a status (the client parses it as 1005)."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            await ws.send_raw(close_frame())
            echo = await ws.expect_close()
            await ws.expect_eof()
            await p.wait_done()
    assert p.received == [CONNECT, disconnect(1005, "")]
    assert echo.code == 1005


async def test_scenario_05_client_close_then_tcp_held_open(open_ws: OpenWS) -> None:
    """Scenario 5: a client close frame, then the client keeps TCP open (never closes it).
    Pins: the disconnect reaches the app within 1 s (not after a close timeout), and the
    server closes the TCP connection at once after echoing (RFC 6455 §7.1.1)."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            await ws.close(4001, "bye-ü")
            with anyio.fail_after(WITHIN):
                received = await p.wait_recv(2)
            with anyio.fail_after(WITHIN):
                echo = await ws.expect_close()
                await ws.expect_eof()
            await p.wait_done()
    assert received == [CONNECT, disconnect(4001, "bye-ü")]
    assert echo.code == 4001


async def test_scenario_06_close_echo_keeps_code(open_ws: OpenWS) -> None:
    """Scenario 6: close echo. The client closes with 4001.
    Pins: the server's answering close frame carries 4001 (not 1000)."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            await ws.close(4001, "bye-ü")
            echo = await ws.expect_close()
            await ws.expect_eof()
            await p.wait_done()
    assert echo.code == 4001
    assert p.received[-1] == disconnect(4001, "bye-ü")


# ================================================================ 7-12: closed sends, repeat receive


async def test_scenario_07_send_after_disconnect_observed(open_ws: OpenWS) -> None:
    """Scenario 7: send() after the app has received websocket.disconnect.
    Pins: spec_version 2.5 is advertised, so every send raises refserver.ClientDisconnected
    (an OSError subclass) promptly, with a message; websocket.close too."""

    async def script(p: Probe) -> None:
        await accept_and_receive(p)
        await p.send(text("too late"))
        await p.send({"type": "websocket.send", "bytes": b"too late"})
        await p.send({"type": "websocket.close", "code": 1000})

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            await ws.close(4001, "bye-ü")
            await p.wait_recv(2)
            with anyio.fail_after(WITHIN):
                sends = await p.wait_sends(4)
            await p.wait_done()
            await ws.expect_eof()
    assert p.scope["asgi"]["spec_version"] == "2.5"
    assert p.received == [CONNECT, disconnect(4001, "bye-ü")]
    assert_ok(sends[0])
    for outcome in sends[1:]:
        assert_client_disconnected(outcome)


async def test_scenario_08_send_after_rst_not_yet_observed(open_ws: OpenWS) -> None:
    """Scenario 8: send() after a client RST that the app has not yet observed by receive().
    Pins: ClientDisconnected promptly (within 1 s); the following receive() is disconnect 1006."""
    go = anyio.Event()

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        p.mark("accepted")
        await go.wait()
        await p.send(text("into the void"))
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_mark("accepted")
            await ws.reset()
            go.set()
            with anyio.fail_after(WITHIN):
                sends = await p.wait_sends(2)
            await p.wait_done()
    assert_ok(sends[0])
    assert_client_disconnected(sends[1])
    assert p.received == [CONNECT, disconnect(1006, "")]


async def test_scenario_09_send_after_close_frame_not_yet_observed(open_ws: OpenWS) -> None:
    """Scenario 9: send() after the client's close frame (already echoed by the server),
    disconnect not yet observed, client keeps TCP open.
    Pins: ClientDisconnected within 1 s (never blocks until a close timeout); the next
    receive() is the peer's disconnect (4001, "bye-ü")."""
    go = anyio.Event()

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        p.mark("accepted")
        await go.wait()
        await p.send(text("after your close"))
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_mark("accepted")
            await ws.close(4001, "bye-ü")
            echo = await ws.expect_close()  # the server has processed our close frame
            go.set()
            with anyio.fail_after(WITHIN):
                sends = await p.wait_sends(2)
            await p.wait_done()
    assert echo.code == 4001
    assert_ok(sends[0])
    assert_client_disconnected(sends[1])
    assert p.received == [CONNECT, disconnect(4001, "bye-ü")]


async def test_scenario_10_receive_repeats_disconnect(open_ws: OpenWS) -> None:
    """Scenario 10: receive() called 3 more times after the disconnect.
    Pins: each call returns the same event (same code and reason) at once, never hangs;
    after a RST (1006, "") and after a close frame (4001, "bye-ü")."""

    async def script(p: Probe) -> None:
        await accept_and_receive(p)
        for _ in range(3):
            await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p1 = await hub.probe(0)
            await p1.wait_receiving(2)
            await ws.reset()
            await p1.wait_recv(2)
            with anyio.fail_after(WITHIN):
                await p1.wait_recv(5)
            await p1.wait_done()

            ws = await open_ws(server.port)
            p2 = await hub.probe(1)
            await p2.wait_receiving(2)
            await ws.close(4001, "bye-ü")
            await p2.wait_recv(2)
            with anyio.fail_after(WITHIN):
                await p2.wait_recv(5)
            await p2.wait_done()
            await ws.expect_eof()
    assert p1.received == [CONNECT] + [disconnect(1006, "")] * 4
    assert p2.received == [CONNECT] + [disconnect(4001, "bye-ü")] * 4


async def test_scenario_11_receive_after_own_close(open_ws: OpenWS) -> None:
    """Scenario 11: receive() after the app's own close(4001, "r").
    Pins: the client gets close (4001, "r"); data the peer sends before its answer is
    dropped; the disconnect carries the code (and reason) the peer answers with (here
    4002, "echo"), and is repeated; a send() after the app's close raises ClientDisconnected."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        await p.send({"type": "websocket.close", "code": 4001, "reason": "r"})
        await p.send(text("after my close"))
        await p.receive()
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            close = await ws.expect_close()
            await ws.send_raw(frame(Opcode.TEXT, b"dropped"))
            await ws.send_raw(close_frame(4002, "echo"))
            await ws.expect_eof()
            await p.wait_done()
    assert (close.code, close.reason) == (4001, "r")
    sends = p.sends
    assert_ok(sends[0])
    assert_ok(sends[1])
    assert_client_disconnected(sends[2])
    assert p.received == [CONNECT, disconnect(4002, "echo"), disconnect(4002, "echo")]


async def test_scenario_12_send_close_returns_promptly(open_ws: OpenWS) -> None:
    """Scenario 12: send(websocket.close) while the client echoes but keeps TCP open.
    Pins: send(close) returns within 1 s; the app's disconnect is the echoed 1000 within
    1 s of the echo, and the server closes TCP at once (RFC 6455 §7.1.1)."""
    go = anyio.Event()

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        await go.wait()
        await p.send({"type": "websocket.close", "code": 1000})
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_sends(1)
            go.set()
            with anyio.fail_after(WITHIN):
                sends = await p.wait_sends(2)
            close = await ws.expect_close()
            await ws.close(1000)
            with anyio.fail_after(WITHIN):
                await p.wait_recv(2)
                await ws.expect_eof()
            await p.wait_done()
    assert_ok(sends[1])
    assert close.code == 1000
    assert p.received == [CONNECT, disconnect(1000, "")]


# ================================================================ 13-16: refusal, denial


async def test_scenario_13_close_before_accept(open_ws: OpenWS) -> None:
    """Scenario 13: websocket.close before accept.
    Pins: HTTP 403 (no upgrade), then the app's receive() is disconnect 1006 with reason "",
    and a later send() raises ClientDisconnected."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.close", "code": 4003, "reason": "no"})
        await p.receive()
        await p.send(ACCEPT)

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with pytest.raises(Rejected) as info:
                await open_ws(server.port)
            p = await hub.probe()
            await p.wait_done()
    assert info.value.response.status_code == 403
    assert header(info.value.response, b"sec-websocket-accept") == []
    assert_ok(p.sends[0])
    assert_client_disconnected(p.sends[1])
    assert p.received == [CONNECT, disconnect(1006, "")]


async def test_scenario_14_close_before_accept_then_app_blocks(open_ws: OpenWS) -> None:
    """Scenario 14: close before accept, then the app stays busy (it awaits an event the
    test holds, standing in for a 3 s sleep).
    Pins: the 403 reaches the client within 1 s while the app is still running; the app
    later gets disconnect 1006."""
    release = anyio.Event()

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.close"})
        await release.wait()
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with anyio.fail_after(WITHIN), pytest.raises(Rejected) as info:
                await open_ws(server.port)
            p = await hub.probe()
            assert p.log.of("done") == []  # the app is still running
            release.set()
            await p.wait_done()
    assert info.value.response.status_code == 403
    assert p.received == [CONNECT, disconnect(1006, "")]


DENIAL_HEADERS = [(b"x-custom", b"yes"), (b"www-authenticate", b"Basic"), (b"x-custom", b"again")]


async def test_scenario_15_denial_response(open_ws: OpenWS) -> None:
    """Scenario 15: denial response (websocket.http.response.start 401 + custom headers,
    then one body message "nope").
    Pins: the extension is advertised; the client gets exactly the app's status, headers
    (order and duplicates kept) and body, with Content-Length, no Transfer-Encoding and no
    upgrade headers."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.http.response.start", "status": 401, "headers": DENIAL_HEADERS})
        await p.send({"type": "websocket.http.response.body", "body": b"nope"})

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with pytest.raises(Rejected) as info:
                await open_ws(server.port)
            p = await hub.probe()
            await p.wait_done()
    response, body = info.value.response, info.value.body
    assert p.scope["extensions"] == {"websocket.http.response": {}}
    assert_ok(p.sends[0])
    assert_ok(p.sends[1])
    assert response.status_code == 401
    assert body == b"nope"
    hop = (b"content-length", b"connection", b"date")
    assert [(n, v) for n, v in response.headers if n not in hop] == DENIAL_HEADERS
    assert header(response, b"content-length") == [b"4"]
    assert header(response, b"transfer-encoding") == []


async def test_scenario_16_receive_after_denial(open_ws: OpenWS) -> None:
    """Scenario 16: receive() after a denial response.
    Pins: disconnect 1006 with reason "", the same again on the next call, and send()
    raises ClientDisconnected."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await p.send({"type": "websocket.http.response.body", "body": b"nope"})
        await p.receive()
        await p.receive()
        await p.send({"type": "websocket.http.response.body", "body": b"more"})

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with pytest.raises(Rejected) as info:
                await open_ws(server.port)
            p = await hub.probe()
            await p.wait_done()
    assert info.value.response.status_code == 401
    assert p.received == [CONNECT, disconnect(1006, ""), disconnect(1006, "")]
    assert_client_disconnected(p.sends[2])


# ================================================================ 17-20: the app ends


async def test_scenario_17_app_returns_after_accept(open_ws: OpenWS) -> None:
    """Scenario 17: the app returns after accept without closing.
    Pins: close frame 1000 (never a bare TCP drop, never left open), then the TCP
    connection is closed after the client's answer."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            close = await ws.expect_close()
            await ws.close(1000)
            await ws.expect_eof()
    assert (close.code, close.reason) == (1000, "")


async def test_scenario_18_app_returns_before_accept(open_ws: OpenWS) -> None:
    """Scenario 18: the app returns before accept, sending nothing.
    Pins: HTTP 500."""

    async def script(p: Probe) -> None:
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with pytest.raises(Rejected) as info:
                await open_ws(server.port)
    assert info.value.response.status_code == 500


class Boom(Exception):
    pass


async def test_scenario_19_app_raises_before_accept(caplog: pytest.LogCaptureFixture, open_ws: OpenWS) -> None:
    """Scenario 19: the app raises before accept.
    Pins: HTTP 500 at once; the traceback is logged once."""

    async def script(p: Probe) -> None:
        await p.receive()
        raise Boom("before accept")

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with anyio.fail_after(WITHIN), pytest.raises(Rejected) as info:
                await open_ws(server.port)
    assert info.value.response.status_code == 500
    errors = refserver_errors(caplog)
    assert len(errors) == 1, errors
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is Boom


async def test_scenario_20_app_raises_after_accept(caplog: pytest.LogCaptureFixture, open_ws: OpenWS) -> None:
    """Scenario 20: the app raises after accept.
    Pins: close frame 1011 (at once), the traceback logged once, TCP closed after the answer."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        raise Boom("after accept")

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            with anyio.fail_after(WITHIN):
                close = await ws.expect_close()
            await ws.close(1011)
            await ws.expect_eof()
    assert close.code == 1011
    errors = refserver_errors(caplog)
    assert len(errors) == 1, errors
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is Boom


# ================================================================ 21-26: handshake, scope


async def test_scenario_21_subprotocol_list_parsing(open_ws: OpenWS) -> None:
    """Scenario 21: Sec-WebSocket-Protocol "p1, p2" plus a second header "p3".
    Pins: scope["subprotocols"] == ["p1", "p2", "p3"]; both headers stay in scope["headers"];
    the chosen p2 comes back in the 101."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.accept", "subprotocol": "p2"})
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(
                server.port, extra=[("Sec-WebSocket-Protocol", "p1, p2"), ("Sec-WebSocket-Protocol", "p3")]
            )
            p = await hub.probe()
            await ws.close(1000)
            await ws.expect_eof()
            await p.wait_done()
    assert list(p.scope["subprotocols"]) == ["p1", "p2", "p3"]
    assert [bytes(v) for n, v in p.scope["headers"] if bytes(n) == b"sec-websocket-protocol"] == [b"p1, p2", b"p3"]
    assert header(ws.response, b"sec-websocket-protocol") == [b"p2"]


async def test_scenario_22_subprotocol_not_offered(open_ws: OpenWS) -> None:
    """Scenario 22: the client offers chat and superchat; the app accepts "bogus".
    Pins: send(accept) raises refserver.ASGIProtocolError, the client gets HTTP 500 (no
    101), later sends raise ClientDisconnected and receive() is disconnect 1006."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.accept", "subprotocol": "bogus"})
        await p.send(text("x"))
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with pytest.raises(Rejected) as info:
                await open_ws(server.port, extra=[("Sec-WebSocket-Protocol", "chat, superchat")])
            p = await hub.probe()
            await p.wait_done()
    assert info.value.response.status_code == 500
    assert_protocol_error(p.sends[0])
    assert "bogus" in p.sends[0].message
    assert_client_disconnected(p.sends[1])
    assert p.received == [CONNECT, disconnect(1006, "")]


ACCEPT_HEADERS = [(b"x-custom", b"1"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]


async def test_scenario_23_accept_headers(open_ws: OpenWS) -> None:
    """Scenario 23: accept with x-custom and two set-cookie headers.
    Pins: all three in the 101, in order, duplicates kept."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.accept", "headers": ACCEPT_HEADERS})
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await ws.close(1000)
            await ws.expect_eof()
            await p.wait_done()
    assert_ok(p.sends[0])
    assert [(n, v) for n, v in ws.response.headers if n in (b"x-custom", b"set-cookie")] == ACCEPT_HEADERS


async def test_scenario_24_scope_headers_fidelity(open_ws: OpenWS) -> None:
    """Scenario 24: duplicate X-Dup around another header, a mixed-case name, and a
    Sec-WebSocket-Protocol header.
    Pins: scope["headers"] is exactly the request's headers: order and duplicates kept,
    names lower-cased, values verbatim, sec-websocket-* included."""
    hub = ProbeHub(accept_and_receive)
    extra = [
        ("X-Dup", "1"),
        ("X-Other", "o"),
        ("X-Dup", "2"),
        ("X-MiXeD-Case", "VaLuE"),
        ("Sec-WebSocket-Protocol", "chat"),
    ]
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port, extra=extra)
            p = await hub.probe()
            await ws.close(1000)
            await ws.expect_eof()
            await p.wait_done()
    assert [(bytes(n), bytes(v)) for n, v in p.scope["headers"]] == [
        (b"host", b"127.0.0.1"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"sec-websocket-version", b"13"),
        (b"x-dup", b"1"),
        (b"x-other", b"o"),
        (b"x-dup", b"2"),
        (b"x-mixed-case", b"VaLuE"),
        (b"sec-websocket-protocol", b"chat"),
    ]


async def test_scenario_25_scope_address_types(open_ws: OpenWS) -> None:
    """Scenario 25: scope client and server addresses.
    Pins: client == ("127.0.0.1", the client's port) and server == ("127.0.0.1", the
    listening port), ports of type int."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            local_port = ws.stream.extra(anyio.abc.SocketAttribute.local_port)
            p = await hub.probe()
            await ws.close(1000)
            await ws.expect_eof()
            await p.wait_done()
    client, srv = p.scope["client"], p.scope["server"]
    assert tuple(client) == ("127.0.0.1", local_port)
    assert tuple(srv) == ("127.0.0.1", server.port)
    assert type(client[1]) is int
    assert type(srv[1]) is int


async def test_scenario_26_spec_version_honesty(open_ws: OpenWS) -> None:
    """Scenario 26: the advertised spec_version against the behaviour.
    Pins: asgi == {"version": "3.0", "spec_version": "2.5"}, and each version's feature
    holds: accept headers (2.1), close reason on the wire (2.3), send on a closed
    connection raises an OSError subclass (2.4), disconnect reason (2.5)."""

    async def script(p: Probe) -> None:
        await p.receive()
        if p.scope["path"] == "/close":
            await p.send(ACCEPT)
            await p.send({"type": "websocket.close", "code": 4000, "reason": "why"})
            await p.receive()
            return
        await p.send({"type": "websocket.accept", "headers": [(b"x-spec", b"2.1")]})
        await p.receive_until_disconnect()
        await p.send(text("gone"))

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p1 = await hub.probe(0)
            await p1.wait_receiving(2)
            await ws.close(4001, "bye-ü")
            await ws.expect_eof()
            await p1.wait_done()

            ws2 = await open_ws(server.port, "/close")
            close = await ws2.expect_close()
            await ws2.close(4000, "why")
            await ws2.expect_eof()
            p2 = await hub.probe(1)
            await p2.wait_done()
    assert p1.scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert header(ws.response, b"x-spec") == [b"2.1"]  # 2.1
    assert (close.code, close.reason) == (4000, "why")  # 2.3
    assert_client_disconnected(p1.sends[1])  # 2.4
    assert p1.received[-1] == disconnect(4001, "bye-ü")  # 2.5


# ================================================================ 27-33: app messages


async def test_scenario_27_both_bytes_and_text(open_ws: OpenWS) -> None:
    """Scenario 27: websocket.send with both bytes and text.
    Pins: send() raises ASGIProtocolError, nothing goes on the wire (the client's next
    message is the one sent after it), the connection stays usable."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        await p.send({"type": "websocket.send", "bytes": b"b", "text": "t"})
        await p.send(text("after"))
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            first = await ws.next_message()
            await ws.close(1000)
            await ws.expect_eof()
            p = await hub.probe()
            await p.wait_done()
    assert_protocol_error(p.sends[1])
    assert_ok(p.sends[2])
    assert first == "after"


MALFORMED: list[Event] = [
    {"type": "websocket.send"},
    {"type": "websocket.send", "bytes": None, "text": None},
    {"type": "websocket.send", "text": 123},
    {"type": "websocket.send", "bytes": "str"},
    {"type": "websocket.send", "bytes": None},
]


async def test_scenario_28_malformed_send_payloads(open_ws: OpenWS) -> None:
    """Scenario 28: malformed websocket.send: {}, both None, text 123, bytes "str",
    bytes None only.
    Pins: each raises ASGIProtocolError and puts nothing on the wire."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        for message in MALFORMED:
            await p.send(message)
        await p.send(text("after"))
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            first = await ws.next_message()
            await ws.close(1000)
            await ws.expect_eof()
            p = await hub.probe()
            await p.wait_done()
    sends = p.sends
    assert len(sends) == len(MALFORMED) + 2
    for outcome in sends[1:-1]:
        assert_protocol_error(outcome)
    assert_ok(sends[-1])
    assert first == "after"


async def test_scenario_29_empty_payloads(open_ws: OpenWS) -> None:
    """Scenario 29: text "" and bytes b"".
    Pins: an empty text frame and an empty binary frame, in that order."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        await p.send(text(""))
        await p.send({"type": "websocket.send", "bytes": b""})
        await p.send(text("end"))
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            got = [await ws.next_message() for _ in range(3)]
            await ws.close(1000)
            await ws.expect_eof()
            p = await hub.probe()
            await p.wait_done()
    assert got == ["", b"", "end"]
    assert [type(m) for m in got] == [str, bytes, str]


async def test_scenario_30_wrong_state_and_unknown_messages(open_ws: OpenWS) -> None:
    """Scenario 30: send before accept, accept twice, http.response.start after accept,
    websocket.http.response.start after accept, an unknown type.
    Pins: each raises ASGIProtocolError, the state is unchanged (accept still works, the
    connection stays usable) and nothing goes on the wire."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(text("early"))  # before accept
        await p.send(ACCEPT)
        await p.send(ACCEPT)  # twice
        await p.send({"type": "http.response.start", "status": 200, "headers": []})
        await p.send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await p.send({"type": "websocket.bogus", "text": "?"})
        await p.send(text("after"))
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            first = await ws.next_message()
            await ws.close(1000)
            await ws.expect_eof()
            p = await hub.probe()
            await p.wait_done()
    sends = p.sends
    assert_protocol_error(sends[0])
    assert_ok(sends[1])
    for outcome in sends[2:6]:
        assert_protocol_error(outcome)
    assert_ok(sends[6])
    assert first == "after"


async def test_scenario_31_close_codes_the_app_may_use(open_ws: OpenWS) -> None:
    """Scenario 31: close(1006), close("4000"), close(1001), close(1011).
    Pins: 1006 and "4000" raise ASGIProtocolError and send nothing; 1001 and 1011 go on
    the wire unchanged."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        if p.scope["path"] == "/1011":
            await p.send({"type": "websocket.close", "code": 1011})
        else:
            await p.send({"type": "websocket.close", "code": 1006})
            await p.send({"type": "websocket.close", "code": "4000"})
            await p.send({"type": "websocket.close", "code": 1001})
        await p.receive()

    hub = ProbeHub(script)
    closes = []
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            for index, path in enumerate(("/", "/1011")):
                ws = await open_ws(server.port, path)
                closes.append(await next_non_control(ws))
                await ws.close(closes[-1].code)
                await ws.expect_eof()
                await (await hub.probe(index)).wait_done()
            p1, p2 = await hub.probe(0), await hub.probe(1)
    assert [type(c) for c in closes] == [wse.CloseConnection, wse.CloseConnection]
    assert [c.code for c in closes] == [1001, 1011]
    assert_protocol_error(p1.sends[1])
    assert_protocol_error(p1.sends[2])
    assert_ok(p1.sends[3])
    assert_ok(p2.sends[1])
    assert p1.received == [CONNECT, disconnect(1001, "")]
    assert p2.received == [CONNECT, disconnect(1011, "")]


async def test_scenario_32_close_reason_over_123_bytes(caplog: pytest.LogCaptureFixture, open_ws: OpenWS) -> None:
    """Scenario 32: close with a 200-byte reason ("é" * 100).
    Pins: the reason is cut to the longest prefix of at most 123 UTF-8 bytes that does not
    split a character ("é" * 61, 122 bytes), send() does not raise, one warning is logged."""
    caplog.set_level(logging.WARNING, logger="refserver")

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        await p.send({"type": "websocket.close", "code": 4000, "reason": "é" * 100})
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            close = await ws.expect_close()
            await ws.close(4000)
            await ws.expect_eof()
            p = await hub.probe()
            await p.wait_done()
    assert_ok(p.sends[1])
    assert (close.code, close.reason) == (4000, "é" * 61)
    warnings = [r for r in caplog.records if r.name.startswith("refserver") and r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings


async def test_scenario_33_reasons_round_trip(open_ws: OpenWS) -> None:
    """Scenario 33: a client close reason reaches the app (2.5) and an app close reason
    reaches the client (2.3), non-ASCII both ways."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        if p.scope["path"] == "/app-closes":
            await p.send({"type": "websocket.close", "code": 4000, "reason": "app-ü"})
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p1 = await hub.probe(0)
            await ws.close(4001, "bye-ü")
            await ws.expect_eof()
            await p1.wait_done()

            ws2 = await open_ws(server.port, "/app-closes")
            close = await ws2.expect_close()
            await ws2.close(4000, "ok-ü")
            await ws2.expect_eof()
            p2 = await hub.probe(1)
            await p2.wait_done()
    assert p1.received == [CONNECT, disconnect(4001, "bye-ü")]
    assert (close.code, close.reason) == (4000, "app-ü")
    assert p2.received == [CONNECT, disconnect(4000, "ok-ü")]


# ================================================================ 34-40: the wire


async def test_scenario_34_oversized_message(open_ws: OpenWS) -> None:
    """Scenario 34: a 1.5 MB binary frame, then a 17 MB single frame, default ws_max_size
    (16 MiB).
    Pins: the 1.5 MB message is delivered intact; the 17 MB frame gets close 1009 to the
    client and disconnect 1009 to the app."""
    medium = bytes(range(256)) * (1_500_000 // 256)
    huge = b"\x00" * 17_000_000
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await ws.send_raw(big_frame(Opcode.BINARY, medium))
            await p.wait_recv(2)

            async def push() -> None:
                try:
                    await ws.send_raw(big_frame(Opcode.BINARY, huge))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass  # the server may stop reading: it failed the connection

            async with anyio.create_task_group() as tg:
                tg.start_soon(push)
                close = await ws.expect_close()
            await ws.aclose()
            await p.wait_done()
    received = p.received
    assert len(received) == 3
    assert received[0] == CONNECT
    assert received[1] == {"type": "websocket.receive", "bytes": medium}
    assert received[2]["type"] == "websocket.disconnect"
    assert received[2]["code"] == 1009
    assert isinstance(received[2]["reason"], str)
    assert close.code == 1009


async def test_scenario_35_invalid_utf8(open_ws: OpenWS) -> None:
    """Scenario 35: a text frame with invalid UTF-8.
    Pins: close 1007 to the client and disconnect 1007 to the app."""
    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await ws.send_raw(frame(Opcode.TEXT, b"ok \xff\xfe\xfd"))
            close = await ws.expect_close()
            await ws.aclose()
            await p.wait_done()
    assert close.code == 1007
    assert len(p.received) == 2
    assert p.received[1]["type"] == "websocket.disconnect"
    assert p.received[1]["code"] == 1007
    assert isinstance(p.received[1]["reason"], str)


async def test_scenario_37_graceful_shutdown(open_ws: OpenWS) -> None:
    """Scenario 37: graceful shutdown with an open WebSocket.
    Pins: the client gets close 1001 at once (within 1 s), the app gets disconnect 1001,
    and the TCP connection closes after the client's answer."""
    hub = ProbeHub(accept_and_receive)
    stop = anyio.Event()
    with anyio.fail_after(DEADLINE):
        async with serving_stoppable(hub, stop) as (server, _):
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.wait_receiving(2)
            stop.set()
            with anyio.fail_after(WITHIN):
                close = await ws.expect_close()
            with anyio.fail_after(WITHIN):
                received = await p.wait_recv(2)
            await ws.close(1001)
            await ws.expect_eof()
            await p.wait_done()
    assert close.code == 1001
    assert received[0] == CONNECT
    assert received[1]["type"] == "websocket.disconnect"
    assert received[1]["code"] == 1001
    assert isinstance(received[1]["reason"], str)


STALL_S = 0.5  # no send() completed for this long: it is blocked


async def test_scenario_38_backpressure(open_ws: OpenWS) -> None:
    """Scenario 38: a client that never reads; the app sends 1 MiB messages.
    Pins: send() blocks once the socket buffers are full (a bounded number of MiB is in
    flight), resumes when the client reads, and every message arrives intact, in order."""
    chunk = bytes(range(256)) * (MiB // 256)
    stop = anyio.Event()
    limit = 64  # a runaway bound: without backpressure the loop would go far past this

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        completed = 0
        progress = anyio.Event()

        async def watch() -> None:
            while True:
                event = progress
                with anyio.move_on_after(STALL_S) as timer:
                    await event.wait()
                if timer.cancelled_caught:
                    p.mark(("blocked", completed))
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            while not stop.is_set() and completed < limit:
                outcome = await p.send({"type": "websocket.send", "bytes": chunk})
                if not outcome.ok:
                    break
                completed += 1
                progress.set()
                progress = anyio.Event()
            tg.cancel_scope.cancel()
        p.mark(("sent", completed))
        await p.send({"type": "websocket.close", "code": 1000})
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            p = await hub.probe()
            await p.log.wait_for(lambda r: any(m[0] == "blocked" for m in r.of("mark") if isinstance(m, tuple)))
            blocked_at = next(m[1] for m in p.log.of("mark") if isinstance(m, tuple) and m[0] == "blocked")
            stop.set()
            got = 0
            parts = bytearray()
            while True:
                event = await next_non_control(ws)
                if isinstance(event, wse.CloseConnection):
                    break
                assert isinstance(event, wse.BytesMessage), event
                parts += event.data  # wsproto may hand a message over in parts
                if event.message_finished:
                    assert parts == chunk, f"message {got} corrupted"
                    parts.clear()
                    got += 1
            await ws.close(1000)
            await ws.expect_eof()
            await p.wait_done()
    sent = next(m[1] for m in p.log.of("mark") if isinstance(m, tuple) and m[0] == "sent")
    assert 1 <= blocked_at <= 16, blocked_at  # a few MiB of socket buffers, not the whole stream
    assert sent == blocked_at + 1  # the blocked send completed once the client read
    assert got == sent
    assert all(o.ok for o in p.sends)


async def test_scenario_39_receive_unread_connect_after_accept_and_close(open_ws: OpenWS) -> None:
    """Scenario 39: the app accepts and closes without calling receive(), then calls
    receive() twice.
    Pins: websocket.connect first, then the disconnect with the code the client echoed;
    the server keeps serving (a new connection works)."""

    async def script(p: Probe) -> None:
        if p.scope["path"] == "/echo":
            await p.receive()
            await p.send(ACCEPT)
            event = await p.receive()
            await p.send(text(event.get("text") or ""))
            await p.receive_until_disconnect()
            return
        await p.send(ACCEPT)
        await p.send({"type": "websocket.close", "code": 1000})
        await p.receive()
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port)
            close = await ws.expect_close()
            await ws.close(1000)
            await ws.expect_eof()
            p = await hub.probe()
            await p.wait_done()

            ws2 = await open_ws(server.port, "/echo")
            await ws2.send_text("still here")
            echoed = await ws2.next_message()
            await ws2.close(1000)
            await ws2.expect_eof()
            await (await hub.probe(1)).wait_done()
    assert close.code == 1000
    assert p.received == [CONNECT, disconnect(1000, "")]
    assert echoed == "still here"


async def test_scenario_40_permessage_deflate_offer(open_ws: OpenWS) -> None:
    """Scenario 40: the client offers "permessage-deflate; client_max_window_bits".
    Pins: accepted with exactly "permessage-deflate; server_max_window_bits=12", and
    compressed messages round-trip both ways."""

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        while True:
            event = await p.receive()
            if event["type"] == "websocket.disconnect":
                return
            await p.send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})

    hub = ProbeHub(script)
    payload = "compress me " * 2000
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            ws = await open_ws(server.port, deflate=True)
            await ws.send_text(payload)
            first_chunk = b""
            while len(first_chunk) < 2:  # look at the raw frame header
                first_chunk += await ws.stream.receive()
            ws.wire.receive_data(first_chunk)
            echoed = await ws.next_message()
            await ws.send_bytes(payload.encode())
            echoed_bytes = await ws.next_message()
            await ws.close(1000)
            await ws.expect_eof()
            p = await hub.probe()
            await p.wait_done()
    assert header(ws.response, b"sec-websocket-extensions") == [b"permessage-deflate; server_max_window_bits=12"]
    assert first_chunk[0] == 0x80 | 0x40 | Opcode.TEXT  # FIN, RSV1 (compressed), text
    assert first_chunk[1] & 0x7F < 126  # 24 kB of repetitive text compresses to < 126 bytes
    assert echoed == payload
    assert echoed_bytes == payload.encode()
    assert p.received[1] == {"type": "websocket.receive", "text": payload}


# ================================================================ the websockets library as a second client

websockets_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def ws_url(server: Listening, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


@websockets_only
async def test_websockets_client_scenario_03_close_code_and_reason() -> None:
    """Scenario 3 with the websockets client: close(4001, "bye-ü") reaches the app exactly,
    promptly, and the server's close echoes 4001."""
    from websockets.asyncio.client import connect

    hub = ProbeHub(accept_and_receive)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            async with connect(ws_url(server), compression=None) as client:
                p = await hub.probe()
                await p.wait_receiving(2)
                await client.close(4001, "bye-ü")
            with anyio.fail_after(WITHIN):
                await p.wait_done()
    assert p.received == [CONNECT, disconnect(4001, "bye-ü")]
    assert client.protocol.close_rcvd is not None and client.protocol.close_rcvd.code == 4001


@websockets_only
async def test_websockets_client_scenario_15_denial_response() -> None:
    """Scenario 15 with the websockets client: the denial's status, headers and body arrive."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send({"type": "websocket.http.response.start", "status": 401, "headers": DENIAL_HEADERS})
        await p.send({"type": "websocket.http.response.body", "body": b"nope"})
        await p.receive()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(server)):
                    pass
            p = await hub.probe()
            await p.wait_done()
    response = info.value.response
    assert response.status_code == 401
    assert response.body == b"nope"
    assert response.headers.get_all("x-custom") == ["yes", "again"]
    assert response.headers["content-length"] == "4"
    assert p.received == [CONNECT, disconnect(1006, "")]


@websockets_only
async def test_websockets_client_scenarios_17_20_app_ends() -> None:
    """Scenarios 17 and 20 with the websockets client: an app that returns after accept
    closes with 1000 (ConnectionClosedOK); one that raises closes with 1011."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        if p.scope["path"] == "/raise":
            raise Boom("after accept")

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            async with connect(ws_url(server)) as client:
                with pytest.raises(ConnectionClosedOK) as ok:
                    await client.recv()
            async with connect(ws_url(server, "/raise")) as client:
                with pytest.raises(ConnectionClosedError) as err:
                    await client.recv()
    assert ok.value.rcvd is not None and ok.value.rcvd.code == 1000
    assert err.value.rcvd is not None and err.value.rcvd.code == 1011


@websockets_only
async def test_websockets_client_scenarios_21_22_subprotocols() -> None:
    """Scenarios 21 and 22 with the websockets client: the offered subprotocols are in the
    scope in order and the chosen one is negotiated; an unoffered one gives HTTP 500."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus
    from websockets.typing import Subprotocol

    async def script(p: Probe) -> None:
        await p.receive()
        choice = "bogus" if p.scope["path"] == "/bogus" else p.scope["subprotocols"][-1]
        await p.send({"type": "websocket.accept", "subprotocol": choice})
        await p.receive_until_disconnect()

    hub = ProbeHub(script)
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            async with connect(ws_url(server), subprotocols=[Subprotocol("chat"), Subprotocol("superchat")]) as client:
                chosen = client.subprotocol
            p = await hub.probe(0)
            await p.wait_done()
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(server, "/bogus"), subprotocols=[Subprotocol("chat")]):
                    pass
            p2 = await hub.probe(1)
            await p2.wait_done()
    assert list(p.scope["subprotocols"]) == ["chat", "superchat"]
    assert chosen == "superchat"
    assert p.received[-1] == disconnect(1000, "")
    assert info.value.response.status_code == 500
    assert_protocol_error(p2.sends[0])


@websockets_only
async def test_websockets_client_scenario_37_shutdown() -> None:
    """Scenario 37 with the websockets client: shutdown closes it with 1001 at once."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    hub = ProbeHub(accept_and_receive)
    stop = anyio.Event()
    with anyio.fail_after(DEADLINE):
        async with serving_stoppable(hub, stop) as (server, _):
            async with connect(ws_url(server)) as client:
                p = await hub.probe()
                await p.wait_receiving(2)
                stop.set()
                with anyio.fail_after(WITHIN), pytest.raises(ConnectionClosed) as info:
                    await client.recv()
            await p.wait_done()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    assert p.received[-1]["code"] == 1001


@websockets_only
async def test_websockets_client_scenario_40_permessage_deflate() -> None:
    """Scenario 40 with the websockets client (whose default offer is
    "permessage-deflate; client_max_window_bits"): negotiated as
    "permessage-deflate; server_max_window_bits=12", messages round-trip."""
    from websockets.asyncio.client import connect

    async def script(p: Probe) -> None:
        await p.receive()
        await p.send(ACCEPT)
        while True:
            event = await p.receive()
            if event["type"] == "websocket.disconnect":
                return
            await p.send({"type": "websocket.send", "text": event.get("text"), "bytes": event.get("bytes")})

    hub = ProbeHub(script)
    payload = "deflate me " * 5000
    with anyio.fail_after(DEADLINE):
        async with serving(hub) as server:
            async with connect(ws_url(server)) as client:
                assert client.request is not None and client.response is not None
                offered = client.request.headers["Sec-WebSocket-Extensions"]
                answered = client.response.headers["Sec-WebSocket-Extensions"]
                await client.send(payload)
                echoed = await client.recv()
                await client.send(payload.encode())
                echoed_bytes = await client.recv()
            p = await hub.probe()
            await p.wait_done()
    assert offered == "permessage-deflate; client_max_window_bits"
    assert answered == "permessage-deflate; server_max_window_bits=12"
    assert echoed == payload
    assert echoed_bytes == payload.encode()
