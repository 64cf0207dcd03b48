"""A request body that trickles is cut like Apache's mod_reqtimeout cuts it: a grace period, then
a minimum rate; 408 when nothing of the response was sent (RFC 9110 §15.5.9;
docs/decisions.md#request-body-rate). The machine reads no clock: the timer's firings are inputs
here, and the intervals it asks for are its effects. One socket test on both backends."""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio
import pytest

import refserver
import refserver.cli
from refserver.errors import ClientDisconnected
from refserver.protocol.http import HTTPMachine, Input, Settings, State
from tests.support import Recorder, connect, read_until_eof, refserver_errors, serving

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
POST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
DISCONNECT = {"type": "http.disconnect"}
DISARMED = (Input.KEEP_ALIVE_TIMEOUT, math.inf)  # the timer, armed for never
REASON = "request body too slow: 10 bytes in 1.1 s, under the minimum rate of 100 bytes/s after the 1 s grace period"


def machine(grace_s: float = 1.0, rate: float = 100.0) -> HTTPMachine:
    return HTTPMachine(Settings(body_grace_s=grace_s, body_min_rate_bytes_per_s=rate), date=lambda: DATE)


def receiving(m: HTTPMachine, data: bytes) -> HTTPMachine:
    """``m`` after ``data`` arrived and the app took it."""
    m.receive_data(data)
    m.app_receive()
    return m


class TestGraceThenMinimumRate:
    def test_the_timer_starts_with_the_grace_period_when_a_body_is_to_come(self) -> None:
        fx = machine().receive_data(POST + b"0123456789")
        assert fx.request is not None and fx.timer == (Input.BODY_TIMEOUT, 1.0)

    @pytest.mark.parametrize(
        ("data", "grace_s"),
        [(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1.0), (POST.replace(b"1000", b"3") + b"abc", 1.0), (POST, 0.0)],
        ids=["no body", "whole body with the head", "no limit"],
    )
    def test_no_timer_otherwise(self, data: bytes, grace_s: float) -> None:
        fx = machine(grace_s).receive_data(data)
        assert fx.request is not None and fx.timer == DISARMED

    def test_each_byte_buys_time_at_the_minimum_rate_then_408(self) -> None:
        m = receiving(machine(), POST + b"0123456789")
        fx = m.body_timeout()  # at 1 s: 10 bytes buy 0.1 s more
        assert fx.write == [] and fx.timer is not None
        assert fx.timer[0] is Input.BODY_TIMEOUT and fx.timer[1] == pytest.approx(0.1)
        fx = m.body_timeout()  # at 1.1 s: nothing more arrived
        assert b"".join(fx.write).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"connection: close\r\n" in b"".join(fx.write)
        assert fx.refused is not None and (fx.refused.status, fx.refused.reason) == (408, REASON)
        assert (m.state, fx.wake_app, m.app_receive().event) == (State.CLIENT_GONE, True, DISCONNECT)

    def test_a_body_that_keeps_the_rate_is_never_cut(self) -> None:
        m = receiving(machine(), POST + b"x" * 100)
        elapsed_s = 1.0  # the grace period
        for _ in range(8):
            fx = m.body_timeout()  # the 100 bytes that came since buy one more second
            assert fx.write == [] and fx.timer is not None
            assert fx.timer[0] is Input.BODY_TIMEOUT and fx.timer[1] == pytest.approx(1.0)
            elapsed_s += fx.timer[1]
            receiving(m, b"x" * 100)
        fx = m.receive_data(b"x" * 100)  # the last bytes: the body is complete
        assert fx.timer == DISARMED
        assert m.app_receive().event == {"type": "http.request", "body": b"x" * 100, "more_body": False}
        assert elapsed_s == pytest.approx(9.0)

    def test_nothing_at_all_after_the_grace_period_is_408(self) -> None:
        m = receiving(machine(), POST)
        fx = m.body_timeout()
        assert b"".join(fx.write).startswith(b"HTTP/1.1 408 ")

    def test_while_the_app_holds_a_chunk_the_client_is_not_judged(self) -> None:
        m = machine()
        m.receive_data(POST + b"0123456789")  # the app has not taken it: the server is not reading
        fx = m.body_timeout()
        assert (fx.write, fx.timer, m.state) == ([], (Input.BODY_TIMEOUT, 1.0), State.AWAITING_START)  # a new window

    def test_while_a_client_waits_for_100_continue_unasked_it_is_not_judged(self) -> None:
        m = machine()
        m.receive_data(POST.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n"))
        fx = m.body_timeout()  # the app has not called receive(): no 100 Continue was sent
        assert (fx.write, fx.timer, m.state) == ([], (Input.BODY_TIMEOUT, 1.0), State.AWAITING_START)  # a new window

    def test_a_held_response_start_is_dropped_for_the_408(self) -> None:
        m = receiving(machine(), POST)
        m.app_send({"type": "http.response.start", "status": 200})
        fx = m.body_timeout()
        assert b"".join(fx.write).startswith(b"HTTP/1.1 408 ")
        with pytest.raises(ClientDisconnected):
            m.app_send({"type": "http.response.body", "body": b"late"})

    def test_mid_response_the_connection_is_cut_without_a_status(self) -> None:
        m = receiving(machine(), POST)
        m.app_send({"type": "http.response.start", "status": 200})
        m.app_send({"type": "http.response.body", "body": b"part", "more_body": True})
        fx = m.body_timeout()
        assert (fx.write, fx.refused, m.state) == ([], None, State.CLIENT_GONE)
        assert m.app_receive().event == DISCONNECT
        with pytest.raises(ClientDisconnected):
            m.app_send({"type": "http.response.body", "body": b"more"})

    def test_after_a_complete_response_reading_stops_and_the_connection_is_not_reused(self) -> None:
        m = receiving(machine(), POST)
        m.app_send({"type": "http.response.start", "status": 200})
        m.app_send({"type": "http.response.body", "body": b"ok"})
        fx = m.body_timeout()
        assert (fx.write, fx.reading, m.state) == ([], False, State.COMPLETE)
        assert m.app_ended(raised=False).tcp is not None


class TestConfiguration:
    def test_command_line_options_set_the_config(self) -> None:
        args = refserver.cli.build_parser().parse_args(
            ["tests.apps.basic:app", "--request-body-timeout", "3", "--request-body-min-rate", "64"]
        )
        config = refserver.cli.config_from_args(args)
        assert (config.request_body_timeout_s, config.request_body_min_rate_bytes_per_s) == (3.0, 64.0)

    @pytest.mark.parametrize("rate", [0.0, -1.0, float("nan"), float("inf")])
    def test_a_rate_must_be_above_0(self, rate: float) -> None:
        with pytest.raises(ValueError, match=r"^request_body_min_rate_bytes_per_s must be a finite number above 0"):
            refserver.Config(request_body_min_rate_bytes_per_s=rate)


@pytest.mark.anyio
async def test_a_trickling_body_over_a_socket_gets_408(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            rec.add("message", message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return

    caplog.set_level(logging.INFO, logger="refserver")
    options = {"request_body_timeout_s": 0.2, "request_body_min_rate_bytes_per_s": 1000.0}
    async with serving(app, **options) as server:
        stream = await connect(server.port)
        try:
            await stream.send(POST + b"x")

            async def trickle() -> None:
                while True:
                    await anyio.sleep(0.05)  # the input under test: a byte every 50 ms
                    await stream.send(b"x")

            async with anyio.create_task_group() as tg:
                tg.start_soon(trickle)
                with anyio.fail_after(5):
                    raw = await read_until_eof(stream)
                tg.cancel_scope.cancel()
        finally:
            await stream.aclose()
    assert raw.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert rec.of("message")[-1] == "http.disconnect"
    assert [r.getMessage() for r in caplog.records if "too slow" in r.getMessage()] != []
    assert refserver_errors(caplog) == []
