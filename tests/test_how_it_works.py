"""docs/how-it-works.md says what the code does: every row of its "Who closes TCP?" table is
run on the machine it names and gives the `Effects.tcp` the row says, every `Effects` field it
lists exists, and every module it names is there."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from refserver.protocol.effects import Effects, Tcp, Timer
from refserver.protocol.http import HTTPEffects, HTTPMachine, Settings
from tests.support import close_frame, frame
from tests.test_ws_machine import Driver, opened

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "how-it-works.md").read_text(encoding="utf-8")
DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def table_rows(text: str) -> list[list[str]]:
    """The cells of a markdown table's body rows."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def _peer_close() -> Tcp | None:
    driver = opened()
    driver.feed(close_frame(1000))
    return driver.tcp


def _echo_of_app_close() -> Tcp | None:
    driver = opened()
    driver.send({"type": "websocket.close", "code": 1000})
    driver.feed(close_frame(1000))
    return driver.tcp


def _protocol_broken() -> Tcp | None:
    driver = opened()
    driver.feed(frame(0x1, b"\xff"))  # a text frame that is not UTF-8
    return driver.tcp


def _close_timeout() -> Tcp | None:
    driver = opened()
    driver.send({"type": "websocket.close", "code": 1000})
    driver.fire(Timer.CLOSE)
    return driver.tcp


def _ping_timeout() -> Tcp | None:
    driver = opened()
    driver.fire(Timer.PING)
    driver.fire(Timer.PONG)
    return driver.tcp


def _lost() -> Tcp | None:
    driver: Driver = opened()
    driver.lost("connection reset by peer")
    return driver.tcp


def _http(*inputs: Callable[[HTTPMachine], HTTPEffects]) -> Tcp | None:
    machine = HTTPMachine(Settings(), date=lambda: DATE)
    tcp = None
    for given in inputs:
        fx = given(machine)
        tcp = fx.tcp if fx.tcp is not None else tcp
    return tcp


def _http_cannot_carry_another() -> Tcp | None:
    return _http(
        lambda m: m.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        lambda m: m.app_send({"type": "http.response.start", "status": 200}),
        lambda m: m.app_send({"type": "http.response.body", "body": b"ok"}),
        lambda m: m.app_ended(raised=False),
    )


def _http_idle() -> Tcp | None:
    return _http(lambda m: m.keep_alive_timeout())


SCENARIOS: dict[str, Callable[[], Tcp | None]] = {
    "the peer's close frame arrives on an open WebSocket": _peer_close,
    "the peer's echo of the app's `websocket.close` arrives": _echo_of_app_close,
    "the peer breaks the protocol": _protocol_broken,
    "the close timeout expires": _close_timeout,
    "the keepalive ping times out": _ping_timeout,
    "the peer resets or half-closes without a close frame": _lost,
    "an HTTP response completes on a connection that cannot carry another request": _http_cannot_carry_another,
    "an HTTP connection stays idle past `--timeout-keep-alive`": _http_idle,
}
WHO_CLOSES = table_rows(section("Who closes TCP?"))


def scenario_for(when: str) -> Callable[[], Tcp | None]:
    [name] = [name for name in SCENARIOS if when.startswith(name)]
    return SCENARIOS[name]


def test_every_row_of_who_closes_tcp_has_its_scenario() -> None:
    assert len(WHO_CLOSES) == len(SCENARIOS)
    for when, *_ in WHO_CLOSES:
        scenario_for(when)


@pytest.mark.parametrize(("when", "tcp"), [(row[0], row[1]) for row in WHO_CLOSES])
def test_who_closes_tcp(when: str, tcp: str) -> None:
    assert scenario_for(when)() is Tcp[tcp.strip("`")]


def test_the_effects_fields_it_lists_exist() -> None:
    listed = {
        name for row in table_rows(section("The one contract: `Effects`")) for name in re.findall(r"`(\w+)`", row[0])
    }
    assert listed == set(Effects._FIELDS)
    extra = re.findall(r"`(\w+)`", section("The one contract: `Effects`").split("adds", 1)[1])
    assert set(extra) <= set(HTTPEffects._FIELDS) - set(Effects._FIELDS)
    assert set(extra) >= set(HTTPEffects._FIELDS) - set(Effects._FIELDS)


def test_the_modules_it_names_exist() -> None:
    layers = table_rows(section("Three layers"))
    for layer, what, _ in layers:
        folder = ROOT / layer.strip("`")
        for module in re.findall(r"`(\w+\.py)`", what):
            assert (folder / module).exists(), (layer, module)
