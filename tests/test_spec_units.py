"""Loop-free unit tests of the spec layer and the sans-IO machines: message validators,
scope builders, one HTTPMachine request/response cycle, LifespanMachine, and ASGI 2
detection. Nothing here awaits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refserver.errors import ASGIProtocolError, ClientDisconnected
from refserver.loading import as_asgi3, is_asgi3
from refserver.protocol.effects import Tcp
from refserver.protocol.http import HTTPEffects, HTTPMachine, Persistence, State, scope_http_version
from refserver.protocol.http_extensions import ADVERTISED
from refserver.protocol.lifespan import LifespanMachine
from refserver.protocol.lifespan import State as LifespanState
from refserver.spec import messages, scopes, sections

RS = sections.HTTP_RESPONSE_START
RB = sections.HTTP_RESPONSE_BODY

# ---------------------------------------------------------------- validators


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.start", "status": 200},
        {"type": "http.response.start", "status": 599, "headers": [], "trailers": False},
        {"type": "http.response.start", "status": 204, "headers": [[b"a", b"b"]], "unknown": object()},
        {"type": "http.response.start", "status": 200, "headers": ((b"a", b"B c"),)},
        {"type": "http.response.body"},
        {"type": "http.response.body", "body": bytearray(b"x"), "more_body": True, "extra": 1},
        {"type": "lifespan.startup.complete", "extra": "ok"},
        {"type": "lifespan.startup.failed"},
        {"type": "lifespan.shutdown.failed", "message": "text"},
        {"type": "lifespan.shutdown.failed", "message": None},
        {"type": "some.unknown.type"},  # unknown types are the state table's business
    ],
)
def test_valid_messages_pass(message: dict[str, Any]) -> None:
    messages.validate(message, messages.message_type(message))


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"type": "http.response.start"}, f"http.response.start has no status (a required key) ({RS})"),
        (
            {"type": "http.response.start", "status": 200.0},
            f"http.response.start has status 200.0; it must be an int ({RS})",
        ),
        (
            {"type": "http.response.start", "status": False},
            f"http.response.start has status False; it must be an int ({RS})",
        ),
        (
            {"type": "http.response.start", "status": 1000},
            f"http.response.start has status 1000; it must be in 100..599 ({RS})",
        ),
        (
            {"type": "http.response.start", "status": 101},
            "http.response.start has status 101: an informational (1xx) status cannot be the final response "
            f"(RFC 9110 §15.2) ({RS})",
        ),
        (
            {"type": "http.response.start", "status": 200, "headers": b"x: y"},
            f"http.response.start has headers of type bytes; it must be an iterable of [name, value] byte pairs ({RS})",
        ),
        (
            {"type": "http.response.start", "status": 200, "headers": 5},
            f"http.response.start has headers of type int; it must be an iterable of [name, value] byte pairs ({RS})",
        ),
        (
            {"type": "http.response.start", "status": 200, "headers": [b"abc"]},
            f"http.response.start has a header b'abc' that is not a [name, value] pair ({RS})",
        ),
        (
            {"type": "http.response.start", "status": 200, "headers": [(b"Content-Type", b"x")]},
            f"http.response.start has a header name b'Content-Type' that is not lower-case ({RS}); "
            "--app-violations warn would serve it (sent as b'content-type')",
        ),
        (
            {"type": "http.response.start", "status": 200, "headers": [(b":path", b"/")]},
            f"http.response.start has a pseudo-header b':path' ({RS})",
        ),
        (
            {"type": "http.response.start", "status": 200, "trailers": "yes"},
            f"http.response.start has trailers='yes'; it must be a bool ({RS})",
        ),
        (
            {"type": "http.response.body", "body": "x"},
            f"http.response.body has body of type str; it must be bytes ({RB})",
        ),
        (
            {"type": "http.response.body", "more_body": None},
            f"http.response.body has more_body=None; it must be a bool ({RB})",
        ),
        (
            {"type": "lifespan.startup.failed", "message": b"x"},
            f"lifespan.startup.failed has message b'x'; it must be a str ({sections.LIFESPAN_STARTUP_FAILED})",
        ),
        (
            {"type": "lifespan.shutdown.failed", "message": 1},
            f"lifespan.shutdown.failed has message 1; it must be a str ({sections.LIFESPAN_SHUTDOWN_FAILED})",
        ),
    ],
)
def test_invalid_messages_name_type_problem_and_section(message: dict[str, Any], text: str) -> None:
    with pytest.raises(ASGIProtocolError) as info:
        messages.validate(message, message["type"])
    assert str(info.value) == text
    assert info.value.message_type == message["type"]
    assert info.value.state is None


def test_message_type_requires_a_dict_with_a_str_type() -> None:
    assert messages.message_type({"type": "x.y"}) == "x.y"
    with pytest.raises(ASGIProtocolError, match=r"^None is a NoneType, not a dict event \(asgi spec, \"Events\"\)$"):
        messages.message_type(None)
    with pytest.raises(ASGIProtocolError, match=r"^event \{'type': 1\} has no str 'type' key"):
        messages.message_type({"type": 1})


def test_protocol_error_is_refserver_own_and_not_an_oserror() -> None:
    exc = ASGIProtocolError("http.response.body", "sent before http.response.start", RB)
    assert isinstance(exc, RuntimeError) and not isinstance(exc, OSError)
    assert exc.with_state("AWAITING_START") is exc
    assert str(exc) == f"http.response.body sent before http.response.start (state: AWAITING_START; {RB})"
    exc.with_state("OTHER")  # the first state recorded wins
    assert exc.state == "AWAITING_START"


def test_with_reiterable_headers_copies_only_iterators() -> None:
    listed = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]}
    assert messages.with_reiterable_headers(listed) is listed
    gen = {"type": "http.response.start", "status": 200, "headers": iter([(b"a", b"1")])}
    copied = messages.with_reiterable_headers(gen)
    assert copied == {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]}
    assert copied is not gen


# ---------------------------------------------------------------- scopes


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query"),
    [
        (b"/", "/", b"/", b""),
        (b"/a/b?c=d&e", "/a/b", b"/a/b", b"c=d&e"),
        (b"/a%20b%2Fc?x=%20", "/a b/c", b"/a%20b%2Fc", b"x=%20"),
        (b"/caf%C3%A9", "/café", b"/caf%C3%A9", b""),
        (b"/%FF%FE", "/\ufffd\ufffd", b"/%FF%FE", b""),  # undecodable: replacement characters
        (b"/a?b?c", "/a", b"/a", b"b?c"),
        (b"/q?", "/q", b"/q", b""),
        (b"*", "*", b"*", b""),
        (b"http://example.com/x%41?y=1", "/xA", b"/x%41", b"y=1"),  # absolute-form
        (b"http://example.com", "/", b"/", b""),
    ],
)
def test_split_target(target: bytes, path: str, raw_path: bytes, query: bytes) -> None:
    assert scopes.split_target(target) == (path, raw_path, query)


@given(st.binary(max_size=40).map(lambda b: b"/" + b.replace(b"#", b"")))
def test_origin_form_target_is_split_without_loss(target: bytes) -> None:
    path, raw_path, query_string = scopes.split_target(target)
    rebuilt = raw_path + (b"?" + query_string if b"?" in target else b"")
    assert rebuilt == target
    assert isinstance(path, str)


def test_http_scope_is_complete_and_copies_state() -> None:
    state = {"pool": object()}
    make = dict(
        method="GET",
        http_version="1.1",
        target=scopes.split_target(b"/p?q"),
        headers=[(b"host", b"x")],
        client=("127.0.0.1", 5000),
        server=("/tmp/s.sock", None),
        root_path="/r",
        state=state,
    )
    scope = scopes.http_scope(**make)  # type: ignore[arg-type]
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/r/p",
        "raw_path": b"/p",
        "query_string": b"q",
        "root_path": "/r",
        "headers": [(b"host", b"x")],
        "client": ("127.0.0.1", 5000),
        "server": ("/tmp/s.sock", None),
        "state": state,
        "extensions": {name: {} for name in ADVERTISED},
    }
    assert scope["state"] is not state and scope["state"]["pool"] is state["pool"]
    scope["asgi"]["version"] = "mutated"
    assert scopes.http_scope(**make)["asgi"] == {"version": "3.0", "spec_version": "2.5"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "expected"),
    [(b"1.1", "1.1"), (b"1.0", "1.0"), (b"1.2", "1.1"), (b"1.9", "1.1"), (b"2.0", None), (b"0.9", None)],
)
def test_scope_http_version(version: bytes, expected: str | None) -> None:
    assert scope_http_version(version) == expected


# ---------------------------------------------------------------- HTTPMachine, one request/response cycle

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def cycle_for(request: bytes) -> HTTPMachine:
    machine = HTTPMachine(date=lambda: DATE)
    fx = machine.receive_data(request)
    assert fx.request is not None
    return machine


def must_close(machine: HTTPMachine) -> bool:
    """Whether this cycle is the connection's last."""
    return machine.persistence is not Persistence.KEEP_ALIVE


def state_of(machine: Any) -> Any:
    """The state now. Read through a call: mypy keeps an earlier assert's narrowing of
    ``.state`` across the call that changes it."""
    return machine.state


def wire(fx: HTTPEffects) -> bytes:
    return b"".join(fx.write)


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
DISCONNECT = {"type": "http.disconnect"}


def test_single_body_response_bytes_and_states() -> None:
    cycle = cycle_for(GET)
    assert cycle.state is State.AWAITING_START
    assert wire(cycle.app_send(START)) == b""  # held until the first body message
    assert state_of(cycle) is State.START_HELD
    out = wire(cycle.app_send({"type": "http.response.body", "body": b"hello"}))
    assert out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ndate: " + DATE + b"\r\ncontent-length: 5\r\n\r\nhello"
    )
    assert state_of(cycle) is State.COMPLETE
    # The machine reads the bodiless GET's end with its head, so the connection can
    # carry the next request as soon as the response is complete.
    assert cycle.keep_alive is True
    assert wire(cycle.app_ended(raised=False)) == b""
    assert state_of(cycle) is State.IDLE


def test_streamed_response_is_chunked_and_app_transfer_encoding_dropped() -> None:
    cycle = cycle_for(GET)
    cycle.app_send({"type": "http.response.start", "status": 200, "headers": [(b"transfer-encoding", b"gzip")]})
    first = wire(cycle.app_send({"type": "http.response.body", "body": b"ab", "more_body": True}))
    assert first == b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
    assert cycle.state is State.SENDING_BODY
    assert wire(cycle.app_send({"type": "http.response.body", "body": b"", "more_body": True})) == b""
    assert wire(cycle.app_send({"type": "http.response.body", "body": b"c"})) == b"1\r\nc\r\n0\r\n\r\n"
    assert state_of(cycle) is State.COMPLETE


def test_http_1_0_streamed_response_is_close_delimited() -> None:
    cycle = cycle_for(b"GET / HTTP/1.0\r\n\r\n")
    cycle.app_send({"type": "http.response.start", "status": 200})
    out = wire(cycle.app_send({"type": "http.response.body", "body": b"ab", "more_body": True}))
    assert out == b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\nConnection: close\r\n\r\nab"
    assert wire(cycle.app_send({"type": "http.response.body", "body": b"c"})) == b"c"
    assert cycle.keep_alive is False


def test_head_and_no_body_statuses_send_no_body() -> None:
    head = cycle_for(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    head.app_send({"type": "http.response.start", "status": 200})
    assert wire(head.app_send({"type": "http.response.body", "body": b"hello"})) == (
        b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\ncontent-length: 5\r\n\r\n"
    )
    no_content = cycle_for(GET)
    no_content.app_send({"type": "http.response.start", "status": 204})
    assert wire(no_content.app_send({"type": "http.response.body", "body": b"x"})) == (
        b"HTTP/1.1 204 No Content\r\ndate: " + DATE + b"\r\n\r\n"
    )


def test_state_table_errors_leave_the_state_unchanged() -> None:
    cycle = cycle_for(GET)
    with pytest.raises(ASGIProtocolError) as info:
        cycle.app_send({"type": "http.response.body"})
    assert str(info.value) == f"http.response.body sent before http.response.start (state: AWAITING_START; {RB})"
    assert cycle.state is State.AWAITING_START
    with pytest.raises(ASGIProtocolError, match=r"has headers that cannot be sent: Illegal header value"):
        cycle.app_send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"\n")]})
    assert (cycle.state, cycle.status) == (State.AWAITING_START, 0)
    cycle.app_send(START)
    with pytest.raises(ASGIProtocolError, match=r"\(state: START_HELD; "):
        cycle.app_send(START)
    assert state_of(cycle) is State.START_HELD


def test_messages_after_completion_are_ignored() -> None:
    cycle = cycle_for(GET)
    cycle.app_send(START)
    cycle.app_send({"type": "http.response.body"})
    for late in (START, {"type": "http.response.body", "body": b"x"}, {"type": "http.response.trailers"}):
        fx = cycle.app_send(late)
        assert wire(fx) == b""
        assert [note.kind for note in fx.notes] == ["ignored"]
    assert cycle.state is State.COMPLETE


def test_receive_events_and_disconnect_precedence() -> None:
    cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
    assert cycle.app_receive().event is None
    fx = cycle.receive_data(b"ab")
    assert (fx.wake_app, fx.reading) == (True, False)  # one chunk waits for the app: reading pauses
    fx = cycle.app_receive()
    assert fx.event == {"type": "http.request", "body": b"ab", "more_body": True}
    assert fx.reading is True
    assert cycle.app_receive().event is None  # waits: neither body nor disconnect yet
    cycle.receive_data(b"cd")
    cycle.peer_gone("peer closed the connection")
    # Body that arrived before the loss is delivered first, then disconnect, every time.
    assert cycle.app_receive().event == {"type": "http.request", "body": b"cd", "more_body": False}
    assert [cycle.app_receive().event for _ in range(3)] == [DISCONNECT] * 3
    with pytest.raises(ClientDisconnected, match=r"^peer closed the connection$"):
        cycle.app_send(START)
    assert must_close(cycle)


def test_disconnect_after_completion_even_with_unread_body() -> None:
    cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
    cycle.app_send(START)
    cycle.app_send({"type": "http.response.body"})
    assert [cycle.app_receive().event for _ in range(2)] == [DISCONNECT] * 2


def test_100_continue_only_once_and_only_before_the_response() -> None:
    expect = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    cycle = cycle_for(expect)
    assert wire(cycle.app_receive()) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert wire(cycle.app_receive()) == b""
    started = cycle_for(expect)
    started.app_send(START)
    assert wire(started.app_receive()) == b""
    assert wire(cycle_for(GET).app_receive()) == b""


def test_app_ended_before_anything_reached_the_wire_is_500() -> None:
    for held in (False, True):
        cycle = cycle_for(GET)
        if held:
            cycle.app_send(START)
        fx = cycle.app_ended(raised=False)
        assert wire(fx) == (
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: 22\r\nconnection: close\r\ndate: " + DATE + b"\r\n\r\nInternal Server Error\n"
        )
        assert must_close(cycle) and cycle.status == 500 and fx.ended_status == 500
        assert (cycle.state, fx.tcp) == (State.CLOSED, Tcp.CLOSE)


def test_app_ended_mid_body_closes_without_bytes() -> None:
    cycle = cycle_for(GET)
    cycle.app_send(START)
    cycle.app_send({"type": "http.response.body", "body": b"x", "more_body": True})
    fx = cycle.app_ended(raised=False)
    assert wire(fx) == b""
    assert must_close(cycle) and not cycle.keep_alive
    assert (cycle.state, fx.tcp) == (State.CLOSED, Tcp.CLOSE)


def test_app_ended_after_client_gone_writes_nothing() -> None:
    cycle = cycle_for(GET)
    cycle.peer_gone("connection reset by peer")
    assert wire(cycle.app_ended(raised=False)) == b""
    assert must_close(cycle)


def test_request_with_transfer_encoding_and_content_length_must_close() -> None:
    """RFC 9112 §6.1: close the connection after responding."""
    cycle = cycle_for(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert must_close(cycle)
    cycle.app_send({"type": "http.response.start", "status": 200})
    assert wire(cycle.app_send({"type": "http.response.body"})) == (
        b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    )
    assert not cycle.keep_alive
    assert not must_close(cycle_for(GET))


# ---------------------------------------------------------------- LifespanMachine


def test_lifespan_machine_happy_path() -> None:
    machine = LifespanMachine()
    assert machine.state is LifespanState.STARTING
    machine.app_send({"type": "lifespan.startup.complete"})
    assert state_of(machine) is LifespanState.STARTED
    machine.begin_shutdown()
    assert state_of(machine) is LifespanState.SHUTTING_DOWN
    machine.app_send({"type": "lifespan.shutdown.complete", "extra": 1})
    assert state_of(machine) is LifespanState.DONE


@pytest.mark.parametrize(
    ("before", "message", "state", "failure"),
    [
        ([], {"type": "lifespan.startup.failed", "message": "db"}, LifespanState.STARTUP_FAILED, "db"),
        ([], {"type": "lifespan.startup.failed"}, LifespanState.STARTUP_FAILED, ""),
        (
            [{"type": "lifespan.startup.complete"}],
            {"type": "lifespan.shutdown.failed", "message": "flush"},
            LifespanState.SHUTDOWN_FAILED,
            "flush",
        ),
    ],
)
def test_lifespan_machine_failures(
    before: list[dict[str, Any]], message: dict[str, Any], state: LifespanState, failure: str
) -> None:
    machine = LifespanMachine()
    for m in before:
        machine.app_send(m)
    machine.begin_shutdown()
    machine.app_send(message)
    assert machine.state is state
    assert machine.failure_message == failure


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (
            {"type": "lifespan.shutdown.complete"},
            f"lifespan.shutdown.complete is not expected now (state: STARTING; {sections.LIFESPAN_SHUTDOWN})",
        ),
        (
            # not a lifespan message: the rule is the one for any message of an unknown type
            {"type": "lifespan.startup.complet"},
            f"lifespan.startup.complet is not expected now (state: STARTING; {sections.CORE_ERRORS})",
        ),
        (
            {"type": "http.response.start", "status": 200},
            f"http.response.start is not expected now (state: STARTING; {sections.CORE_ERRORS})",
        ),
        ("lifespan.startup.complete", "'lifespan.startup.complete' is a str, not a dict event (asgi spec, \"Events\")"),
    ],
)
def test_lifespan_machine_rejects_unexpected_messages(message: Any, text: str) -> None:
    machine = LifespanMachine()
    with pytest.raises(ASGIProtocolError) as info:
        machine.app_send(message)
    assert str(info.value) == text
    assert machine.state is LifespanState.STARTING


def test_lifespan_begin_shutdown_only_after_startup() -> None:
    machine = LifespanMachine()
    machine.begin_shutdown()
    assert machine.state is LifespanState.STARTING
    machine.app_send({"type": "lifespan.startup.complete"})
    with pytest.raises(ASGIProtocolError, match=r"startup.complete is not expected now \(state: STARTED; "):
        machine.app_send({"type": "lifespan.startup.complete"})


# ---------------------------------------------------------------- ASGI 2 detection


async def _asgi3(scope: Any, receive: Any, send: Any) -> None:
    return None


class _Asgi3Instance:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


class _Asgi2Class:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        return None


def _asgi2_function(scope: Any) -> Any:
    async def instance(receive: Any, send: Any) -> None:
        return None

    return instance


def test_asgi_version_detection() -> None:
    assert is_asgi3(_asgi3) and is_asgi3(_Asgi3Instance())
    assert not is_asgi3(_Asgi2Class) and not is_asgi3(_asgi2_function)
    assert as_asgi3(_asgi3) is _asgi3
    wrapped = as_asgi3(_Asgi2Class)
    original: object = _Asgi2Class
    assert wrapped is not original and is_asgi3(wrapped)
