"""The speed tricks of ``refserver/protocol/speedups.py`` answer exactly as the plain code
they stand in for."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import h11
import pytest

from refserver.errors import ASGIProtocolError
from refserver.protocol import speedups
from refserver.protocol.effects import Effects
from refserver.protocol.http import HTTPEffects, HTTPMachine, Settings, State
from refserver.spec import messages

START = {"type": "http.response.start", "status": 200}
STARTS: list[Any] = [
    START,
    {**START, "headers": [(b"content-type", b"text/plain")]},
    {**START, "headers": [[b"content-type", b"text/plain"]]},
    {**START, "headers": ((b"a", b"1"), (b"b", b"2"))},
    {**START, "headers": [(b"Content-Type", b"text/plain")]},  # upper case
    {**START, "headers": [(b":status", b"200")]},  # a pseudo-header
    {**START, "headers": [(b"a", "text")]},  # a str value
    {**START, "headers": [(b"a",)]},  # not a pair
    {**START, "headers": {b"a": b"1"}},  # a mapping
    {**START, "status": True},
    {**START, "status": 99},
    {**START, "status": 101},
    {**START, "status": 600},
    {**START, "trailers": True},
    {**START, "trailers": "yes"},
    {"type": "http.response.start"},  # no status
    MappingProxyType(START),  # a Mapping that is not a dict
]


def outcome(validate: Any, message: Mapping[str, Any]) -> Any:
    try:
        return dict(validate(message))
    except ASGIProtocolError as exc:
        return str(exc)


@pytest.mark.parametrize("message", STARTS)
def test_validate_response_start_answers_as_messages_validate(message: Any) -> None:
    plain = outcome(lambda m: messages.validate(m, "http.response.start"), message)
    assert outcome(speedups.validate_response_start, message) == plain


def test_headers_given_as_an_iterator_are_read_once_into_a_list() -> None:
    checked = speedups.validate_response_start({**START, "headers": iter([(b"a", b"1")])})
    assert checked["headers"] == [(b"a", b"1")]


@pytest.mark.parametrize("message", [{"type": "x"}, {"type": 1}, {}, MappingProxyType({"type": "y"}), ["type"]])
def test_message_type_answers_as_messages_message_type(message: Any) -> None:
    def outcome(find: Any) -> str:
        try:
            return str(find(message))
        except ASGIProtocolError as exc:
            return f"raised {exc}"

    assert outcome(speedups.message_type) == outcome(messages.message_type)


def test_a_made_fast_enum_is_still_an_enum() -> None:
    assert State.IDLE is State["IDLE"] is State(State.IDLE.value)
    assert next(iter(State)) is State.IDLE and len(State) == len(State.__members__)
    assert pickle.loads(pickle.dumps(State.IDLE)) is State.IDLE
    assert {State.IDLE: 1}[State.IDLE] == 1
    with pytest.raises(ValueError):
        State("no such state")


@pytest.mark.parametrize("extensions", [[], [(b"sec-websocket-extensions", b"permessage-deflate")]])
def test_switching_protocols_is_what_h11_writes(extensions: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]
    headers += extensions
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    connection.next_event()
    assert speedups.switching_protocols(headers) == connection.send(
        h11.InformationalResponse(status_code=101, headers=headers)
    )


_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
_CLOSE_1000 = bytes([0x88, 0x82, 0, 0, 0, 0]) + (1000).to_bytes(2, "big")  # masked with zeros


def _steps(traced: bool) -> list[Effects]:
    """A keep-alive request, then a WebSocket's whole life, on machines that trace or not."""
    http = HTTPMachine(Settings(traced=traced, ws_deflate=False), date=lambda: b"Mon, 07 Dec 2026 00:00:00 GMT")
    steps: list[Effects] = [
        http.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        http.app_receive(),
        http.app_send({"type": "http.response.start", "status": 200}),
        http.app_send({"type": "http.response.body", "body": b"hi"}),
        http.app_ended(raised=False),
        upgrade := http.receive_data(_UPGRADE),
    ]
    assert isinstance(upgrade, HTTPEffects) and upgrade.upgrade is not None
    ws = upgrade.upgrade.machine
    steps += [
        ws.app_receive(),
        ws.app_send({"type": "websocket.accept"}),
        ws.receive_data(_CLOSE_1000),
        ws.app_receive(),
        ws.app_ended(raised=False),
    ]
    return steps


def test_untraced_machines_give_the_same_effects_without_the_state_changes() -> None:
    traced = [{name: getattr(fx, name) for name in fx._FIELDS} for fx in _steps(True)]
    untraced = [{name: getattr(fx, name) for name in fx._FIELDS} for fx in _steps(False)]
    assert all(fx.pop("transitions") == [] for fx in untraced)
    changes = [fx.pop("transitions") for fx in traced]
    assert len(changes[0]) >= 1 and len(changes[7]) >= 1  # HTTP: a request head; WebSocket: the accept
    for fx in (*traced, *untraced):
        fx.pop("upgrade", None)  # holds the WebSocket machine itself
    assert untraced == traced
