"""The app-violation policy (docs/decisions.md#app-violations): ``--app-violations raise``
(the default) raises every breach from ``send()``, with a hint when ``warn`` would serve it;
``warn`` serves a breach with exactly one safe reading in it, logs it once per rule for the
app, traces it, and hands every breach to the violation sinks (``server.violations``)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from refserver.errors import ASGIProtocolError
from refserver.spec import messages, sections
from refserver.testing import serve
from refserver.trace import TraceRecord
from refserver.violations import Policy, Violation
from tests.support import WSClient, connect, read_until_eof

RS = sections.HTTP_RESPONSE_START
MIXED = [(b"Content-Type", b"text/plain"), (b"X-Trace", b"1"), (b"x-ok", b"2")]
LOWERED = [(b"content-type", b"text/plain"), (b"x-trace", b"1"), (b"x-ok", b"2")]
HEADER_PROBLEM = "has a header name b'Content-Type' that is not lower-case"
HINT = "--app-violations warn would serve it (sent as b'content-type')"


# ---------------------------------------------------------------- which breaches have a safe reading


@pytest.mark.parametrize(
    "kind",
    ["http.response.start", "websocket.accept", "websocket.http.response.start"],
)
def test_a_mixed_case_header_name_has_one_safe_reading_every_name_lower_cased(kind: str) -> None:
    message = {"type": kind, "status": 200, "headers": iter(MIXED), "extra": 1}
    with pytest.raises(ASGIProtocolError) as info:
        messages.validate(message, kind)
    reading = info.value.safe_reading
    assert reading is not None
    assert reading.rule == messages.HEADER_NAME_CASE
    assert reading.taken == "sent as b'content-type'"
    assert reading.message == {"type": kind, "status": 200, "headers": LOWERED, "extra": 1}
    messages.validate(reading.message, kind)  # the reading is itself valid
    assert str(info.value).endswith(f"; {HINT}")


NO_SAFE_READING = [
    {"type": "http.response.start"},
    {"type": "http.response.start", "status": "200"},
    {"type": "http.response.start", "status": True},
    {"type": "http.response.start", "status": 99},
    {"type": "http.response.start", "status": 103},
    {"type": "http.response.start", "status": 200, "headers": {b"a": b"b"}},
    {"type": "http.response.start", "status": 200, "headers": [(b"a", b"b", b"c")]},
    {"type": "http.response.start", "status": 200, "headers": [("x-a", b"1")]},
    {"type": "http.response.start", "status": 200, "headers": [(b"x-a", "1")]},
    {"type": "http.response.start", "status": 200, "headers": [(b":status", b"200")]},
    {"type": "http.response.start", "status": 200, "trailers": 0},
    {"type": "http.response.body", "body": "text"},
    {"type": "http.response.body", "more_body": None},
    {"type": "websocket.accept", "subprotocol": b"chat"},
    {"type": "websocket.send", "bytes": b"a", "text": "a"},
    {"type": "websocket.send"},
    {"type": "websocket.send", "text": b"a"},
    {"type": "websocket.send", "bytes": "a"},
    {"type": "websocket.close", "code": "1000"},
    {"type": "websocket.close", "code": 1006},
    {"type": "websocket.close", "reason": b"bye"},
    {"type": "websocket.http.response.start", "status": 200, "headers": [(b":path", b"/")]},
    {"type": "websocket.http.response.body", "body": "x"},
    {"type": "lifespan.startup.failed", "message": b"x"},
]


@pytest.mark.parametrize("message", NO_SAFE_READING, ids=repr)
def test_every_other_breach_of_a_message_rule_has_no_safe_reading(message: dict[str, Any]) -> None:
    with pytest.raises(ASGIProtocolError) as info:
        messages.validate(message, message["type"])
    assert info.value.safe_reading is None
    assert "--app-violations" not in str(info.value)


# ---------------------------------------------------------------- the policy, without a server


class Sent:
    """A machine's app_send that refuses what ``messages.validate`` refuses."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: Any) -> str:
        messages.validate(message, message["type"])
        self.messages.append(dict(message))
        return "effects"


def breach(headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, Any], ASGIProtocolError]:
    message = {"type": "http.response.start", "status": 200, "headers": headers}
    try:
        messages.validate(message, "http.response.start")
    except ASGIProtocolError as exc:
        return message, exc.with_state("AWAITING_START")
    raise AssertionError("valid")


def test_warn_serves_the_reading_and_logs_once_per_rule(caplog: pytest.LogCaptureFixture) -> None:
    kept: list[Violation] = []
    policy, send = Policy("warn", [kept.append]), Sent()
    for _ in range(3):
        message, error = breach(MIXED)
        assert policy.serve(error, message, send, None) == ({**message, "headers": LOWERED}, "effects")
    assert send.messages == [{**message, "headers": LOWERED}] * 3
    warnings = [r for r in caplog.records if r.name == "refserver.error"]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [
        (
            logging.WARNING,
            f"http.response.start {HEADER_PROBLEM}; sent as b'content-type' ({RS}); "
            "later breaches of this rule are served alike without a warning",
        )
    ]
    assert (
        kept == [Violation("http.response.start", HEADER_PROBLEM, RS, "AWAITING_START", "sent as b'content-type'")] * 3
    )


def test_warn_still_raises_a_breach_without_a_safe_reading_found_in_the_reading() -> None:
    kept: list[Violation] = []
    policy, send = Policy("warn", [kept.append]), Sent()
    message, error = breach([(b"X-A", b"1"), (b":path", b"/")])
    with pytest.raises(ASGIProtocolError, match="has a pseudo-header b':path'") as info:
        policy.serve(error, message, send, None)
    assert info.value.safe_reading is None and send.messages == []
    assert [(v.problem, v.taken) for v in kept] == [
        ("has a header name b'X-A' that is not lower-case", "sent as b'x-a'"),
        ("has a pseudo-header b':path'", None),
    ]


def test_raise_raises_the_breach_with_the_hint_and_reports_it() -> None:
    kept: list[Violation] = []
    policy, send = Policy("raise", [kept.append]), Sent()
    message, error = breach(MIXED)
    with pytest.raises(ASGIProtocolError) as info:
        policy.serve(error, message, send, None)
    assert info.value is error and send.messages == []
    assert str(error) == f"http.response.start {HEADER_PROBLEM} (state: AWAITING_START; {RS}); {HINT}"
    assert kept == [Violation("http.response.start", HEADER_PROBLEM, RS, "AWAITING_START", None)]


def test_a_closed_connection_is_no_violation() -> None:
    kept: list[Violation] = []
    gone = ConnectionResetError("gone")
    with pytest.raises(ConnectionResetError):
        Policy("warn", [kept.append]).serve(gone, {"type": "http.response.body"}, Sent(), None)
    assert kept == []


def test_the_policy_is_raise_or_warn() -> None:
    with pytest.raises(ValueError, match=r"^app_violations must be raise or warn, not 'ignore'$"):
        Policy("ignore")  # type: ignore[arg-type]


# ---------------------------------------------------------------- served (both backends)


async def mixed_case_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.accept", "headers": [(b"X-Room", b"lobby")]})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200, "headers": MIXED})
    await send({"type": "http.response.body", "body": b"ok"})


async def get(port: int) -> bytes:
    stream = await connect(port)
    try:
        await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return await read_until_eof(stream)
    finally:
        await stream.aclose()


@pytest.mark.anyio
async def test_warn_serves_lower_case_names_on_the_wire_traces_keeps_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "refserver")
    with anyio.fail_after(5):
        async with serve(mixed_case_app, app_violations="warn", lifespan="off", record=True) as server:
            first, second = await get(server.port), await get(server.port)
    for raw in (first, second):
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"ok"
        assert b"\r\ncontent-type: text/plain\r\nx-trace: 1\r\nx-ok: 2\r\n" in head + b"\r\n"
    warnings = [
        r.getMessage() for r in caplog.records if r.name.startswith("refserver") and r.levelno >= logging.WARNING
    ]
    assert warnings == [
        f"http.response.start {HEADER_PROBLEM}; sent as b'content-type' ({RS}); "
        "later breaches of this rule are served alike without a warning"
    ]
    served = Violation("http.response.start", HEADER_PROBLEM, RS, "AWAITING_START", "sent as b'content-type'")
    assert server.violations == [served, served]
    traced = [r for r in server.records if r.kind == "violation"]
    assert [(r.scope, r.state, r.section, r.detail) for r in traced] == [
        ("http", "AWAITING_START", RS, f"{HEADER_PROBLEM}; sent as b'content-type'")
    ] * 2
    assert traced[0].message is not None and list(traced[0].message["headers"]) == MIXED
    sent = [m for m in server.messages("send", "http") if m["type"] == "http.response.start"]
    assert [m["headers"] for m in sent] == [LOWERED, LOWERED]


def test_a_violation_trace_record_reads_as_one_line() -> None:
    from refserver.trace import render_text

    record = TraceRecord(0.0, "c1", "http", "violation", "AWAITING_START", RS, "what; taken", {"type": "x"})
    assert render_text(record) == f"c1 http violation x [AWAITING_START] ({RS}: what; taken)"


@pytest.mark.anyio
async def test_raise_answers_500_and_the_error_carries_the_hint(caplog: pytest.LogCaptureFixture) -> None:
    with anyio.fail_after(5):
        async with serve(mixed_case_app, lifespan="off") as server:
            raw = await get(server.port)
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    [logged] = [r for r in caplog.records if r.name == "refserver.error" and r.exc_info]
    assert logged.exc_info is not None
    assert str(logged.exc_info[1]) == f"http.response.start {HEADER_PROBLEM} (state: AWAITING_START; {RS}); {HINT}"
    assert server.violations == [Violation("http.response.start", HEADER_PROBLEM, RS, "AWAITING_START", None)]


@pytest.mark.anyio
async def test_warn_serves_a_websocket_accept_with_its_header_names_lower_cased() -> None:
    with anyio.fail_after(5):
        async with serve(mixed_case_app, app_violations="warn", lifespan="off") as server:
            client = await WSClient.connect(server.port)
            await client.stream.aclose()
    assert (b"x-room", b"lobby") in client.response.headers
    assert server.violations == [
        Violation(
            "websocket.accept",
            "has a header name b'X-Room' that is not lower-case",
            sections.WS_ACCEPT,
            "CONNECTING",
            "sent as b'x-room'",
        )
    ]


@pytest.mark.anyio
async def test_a_breach_without_a_safe_reading_raises_under_warn_and_is_kept() -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"X-A", b"1"), (b":path", b"/")]})
        except ASGIProtocolError as exc:
            raised.append(exc)
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with anyio.fail_after(5):
        async with serve(app, app_violations="warn", lifespan="off") as server:
            raw = await get(server.port)
    assert raw.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert [str(e) for e in raised] == [
        f"http.response.start has a pseudo-header b':path' (state: AWAITING_START; {RS})"
    ]
    assert [(v.problem, v.taken) for v in server.violations] == [
        ("has a header name b'X-A' that is not lower-case", "sent as b'x-a'"),
        ("has a pseudo-header b':path'", None),
    ]


# ---------------------------------------------------------------- the command line


def test_the_command_line_sets_the_policy() -> None:
    from refserver.cli import parse_command_line

    assert parse_command_line(["tests.apps.basic:app"])[1].app_violations == "raise"
    assert parse_command_line(["tests.apps.basic:app", "--app-violations", "warn"])[1].app_violations == "warn"


def test_a_wrong_policy_is_one_line_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    from refserver.cli import parse_command_line

    with pytest.raises(SystemExit) as info:
        parse_command_line(["tests.apps.basic:app", "--app-violations", "ignore"])
    assert info.value.code == 2
    assert "--app-violations: expected raise or warn, not 'ignore'" in capsys.readouterr().err


def test_config_refuses_another_policy() -> None:
    from refserver import Config

    with pytest.raises(ValueError, match=r"^app_violations must be raise or warn, not 'ignore'$"):
        Config(app_violations="ignore")  # type: ignore[arg-type]


def test_a_reading_that_breaks_its_own_rule_again_raises_instead_of_looping() -> None:
    kept: list[Violation] = []
    message, error = breach(MIXED)

    def refuses_every_reading(message: Any) -> str:
        raise error  # as a machine that still finds the rule broken would

    with pytest.raises(ASGIProtocolError) as info:
        Policy("warn", [kept.append]).serve(error, message, refuses_every_reading, None)
    assert info.value is error
    assert [v.taken for v in kept] == ["sent as b'content-type'", None]
