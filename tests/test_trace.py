"""The trace: every ASGI message, state change and timer of a connection, with the rule
behind it. Rendering is tested without sockets; one real connection per backend checks
that the runtime emits a record at every step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from refserver.trace import TraceRecord, render_json, render_text
from tests.support import Recorder, WSClient, serving

RECORD = TraceRecord(
    time_s=12.5,
    conn="c7",
    scope="ws",
    kind="recv",
    state="CLOSED",
    section='www spec 2.5, "Disconnect - receive event"',
    detail="",
    message={"type": "websocket.disconnect", "code": 1006, "reason": ""},
)


class TestRendering:
    def test_a_received_message(self) -> None:
        assert render_text(RECORD) == (
            "c7 ws recv websocket.disconnect code=1006 reason='' [CLOSED] "
            '(www spec 2.5, "Disconnect - receive event")'
        )

    def test_a_state_change_names_both_states_and_the_rule(self) -> None:
        record = TraceRecord(1.0, "c7", "ws", "state", "CLOSED", "RFC 6455 §7.1.5", "no close frame", None, "OPEN")
        assert render_text(record) == "c7 ws state OPEN -> CLOSED (RFC 6455 §7.1.5: no close frame)"

    def test_payloads_are_sizes_unless_bodies_are_asked_for(self) -> None:
        record = TraceRecord(
            1.0, "c1", "ws", "send", "OPEN", "S", message={"type": "websocket.send", "bytes": b"\x00\x01\x02"}
        )
        assert render_text(record) == "c1 ws send websocket.send bytes=<3 bytes> [OPEN] (S)"
        assert render_text(record, bodies=True) == "c1 ws send websocket.send bytes=b'\\x00\\x01\\x02' [OPEN] (S)"
        text = TraceRecord(1.0, "c1", "ws", "send", "OPEN", "S", message={"type": "websocket.send", "text": "é"})
        assert render_text(text) == "c1 ws send websocket.send text=<2 bytes> [OPEN] (S)"

    def test_json_lines_carry_every_field(self) -> None:
        assert json.loads(render_json(RECORD)) == {
            "time_s": 12.5,
            "conn": "c7",
            "scope": "ws",
            "kind": "recv",
            "state": "CLOSED",
            "section": 'www spec 2.5, "Disconnect - receive event"',
            "detail": "",
            "message": {"type": "websocket.disconnect", "code": 1006, "reason": ""},
            "old_state": None,
        }


pytestmark_anyio = pytest.mark.anyio


async def echo_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": message["text"]})
    await receive()


@pytest.mark.anyio
async def test_every_step_of_a_websocket_connection_is_recorded() -> None:
    records: list[TraceRecord] = []
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await echo_once(scope, receive, send)
        rec.add("done")

    async with serving(app, trace_sinks=(records.append,)) as server:
        ws = await WSClient.connect(server.port)
        await ws.send_text("hi")
        assert await ws.next_message() == "hi"
        await ws.close(4001, "bye")
        await ws.expect_close()
        await rec.wait_kind("done")
    steps = [(r.kind, r.state, r.message["type"] if r.message else r.old_state) for r in records if r.scope == "ws"]
    assert steps == [
        ("recv", "CONNECTING", "websocket.connect"),
        ("send", "OPEN", "websocket.accept"),  # the bracket: the state after the step
        ("state", "OPEN", "CONNECTING"),
        ("recv", "OPEN", "websocket.receive"),
        ("send", "OPEN", "websocket.send"),
        ("state", "CLOSED", "OPEN"),
        ("recv", "CLOSED", "websocket.disconnect"),
    ]
    assert records[-1].message == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}
    assert {r.conn for r in records if r.scope == "ws"} == {"c1"}


@pytest.mark.anyio
async def test_a_timer_that_fires_is_recorded_with_the_state_it_changes() -> None:
    records: list[TraceRecord] = []
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000})
        rec.add("event", await receive())

    async with serving(app, trace_sinks=(records.append,), ws_close_timeout_s=0.2) as server:
        ws = await WSClient.connect(server.port)
        await rec.wait_kind("event")  # the client never answers the close frame
        await ws.aclose()
    kinds = [(r.kind, r.state, r.detail) for r in records if r.kind in ("timer", "state") and r.scope == "ws"]
    assert kinds == [
        ("state", "OPEN", "the app accepted; 101 sent"),
        ("state", "CLOSING", "the app sent websocket.close (code 4000)"),
        ("timer", "CLOSED", "close timeout: the peer's close frame or EOF is overdue"),
        ("state", "CLOSED", "close timeout: the peer did not finish the closing handshake"),
    ]
    assert [r.section for r in records if r.kind == "timer"] == ["RFC 6455 §7.1.1"]  # the row's rule
    assert rec.of("event") == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]


@pytest.mark.anyio
async def test_trace_file_in_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await echo_once(scope, receive, send)
        rec.add("done")

    async with serving(app, trace=True, trace_format="jsonl", trace_file=str(path)) as server:
        ws = await WSClient.connect(server.port)
        await ws.send_text("hi")
        await ws.next_message()
        await ws.close()
        await rec.wait_kind("done")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    ws_lines = [line for line in lines if line["scope"] == "ws"]
    assert ws_lines[0]["message"] == {"type": "websocket.connect"}
    assert {"type": "websocket.send", "text": "<2 bytes>"} in [line["message"] for line in ws_lines]
    times = [line["time_s"] for line in lines]
    assert times == sorted(times)
    with anyio.fail_after(1):
        pass
