"""Loop-free tests of the HTTP response extensions (asgi extensions, "Early Hints",
"HTTP Trailers", "Path Send", "Zero Copy Send") in the HTTP machine: bytes and app messages
in, effects out, asserted exactly (docs/decisions.md#early-hints)."""

from __future__ import annotations

from typing import Any

import pytest

from refserver.errors import ASGIProtocolError
from refserver.protocol.effects import Note
from refserver.protocol.http import HTTPEffects, HTTPMachine, Settings, State
from refserver.protocol.http_extensions import ADVERTISED
from refserver.spec import scopes, sections

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
START = {"type": "http.response.start", "status": 200}
HINT = {"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload; as=style", b"</a.js>; rel=preload"]}
HINT_BYTES = b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload; as=style\r\nlink: </a.js>; rel=preload\r\n\r\n"


def started(request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") -> HTTPMachine:
    m = HTTPMachine(Settings(), date=lambda: DATE)
    m.receive_data(request)
    assert m.state is State.AWAITING_START
    return m


def wire(fx: HTTPEffects) -> bytes:
    return b"".join(fx.write)


def test_http_scopes_advertise_every_extension_implemented() -> None:
    scope = scopes.http_scope(
        method="GET",
        http_version="1.1",
        target=scopes.split_target(b"/"),
        headers=[],
        client=None,
        server=None,
        root_path="",
        state={},
    )
    assert scope["extensions"] == {name: {} for name in ADVERTISED}


# ---------------------------------------------------------------------- Early Hints


def test_an_early_hint_after_the_start_is_a_103_written_before_the_held_head() -> None:
    m = started()
    assert wire(m.app_send(START)) == b""
    fx = m.app_send(HINT)
    assert (wire(fx), fx.notes, m.state) == (HINT_BYTES, [], State.START_HELD)
    assert wire(m.app_send(HINT)) == HINT_BYTES  # "and multiple times"
    fx = m.app_send({"type": "http.response.body", "body": b"ok"})
    assert wire(fx) == b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\ncontent-length: 2\r\n\r\nok"
    assert m.state is State.COMPLETE


def test_links_may_be_any_iterable_of_byte_strings() -> None:
    m = started()
    m.app_send(START)
    assert wire(m.app_send({**HINT, "links": iter(HINT["links"])})) == HINT_BYTES
    assert wire(m.app_send({**HINT, "links": ()})) == b"HTTP/1.1 103 Early Hints\r\n\r\n"


def test_an_early_hint_once_the_head_is_on_the_wire_is_ignored_and_traced() -> None:
    m = started()
    m.app_send(START)
    m.app_send({"type": "http.response.body", "body": b"a", "more_body": True})
    fx = m.app_send(HINT)
    assert (wire(fx), m.state) == (b"", State.SENDING_BODY)
    assert fx.notes == [
        Note("ignored", "http.response.early_hint after the response head was sent", sections.HTTP_EARLY_HINTS)
    ]


def test_an_early_hint_to_an_http_10_client_is_ignored_and_traced() -> None:
    m = started(b"GET / HTTP/1.0\r\n\r\n")
    m.app_send(START)
    fx = m.app_send(HINT)
    assert (wire(fx), m.state) == (b"", State.START_HELD)
    assert fx.notes == [Note("ignored", "http.response.early_hint to an HTTP/1.0 client", "RFC 9110 §15.2")]


def test_an_early_hint_before_the_start_is_an_app_error() -> None:
    m = started()
    with pytest.raises(ASGIProtocolError, match=r"sent before http\.response\.start") as info:
        m.app_send(HINT)
    assert (info.value.section, m.state) == (sections.HTTP_EARLY_HINTS, State.AWAITING_START)


@pytest.mark.parametrize(
    ("links", "problem"),
    [
        (None, "has links of type NoneType"),
        (b"</s.css>", "has links of type bytes"),
        (["</s.css>"], "has a link '</s.css>' that is not a byte string"),
        ([b"</s.css>\r\nx: y"], "has a link that cannot be sent"),
    ],
)
def test_a_malformed_early_hint_is_an_app_error(links: Any, problem: str) -> None:
    m = started()
    m.app_send(START)
    with pytest.raises(ASGIProtocolError, match=problem) as info:
        m.app_send({"type": "http.response.early_hint", "links": links})
    assert (info.value.section, m.state) == (sections.HTTP_EARLY_HINTS, State.START_HELD)
    assert wire(m.app_send({"type": "http.response.body", "body": b"ok"})).startswith(b"HTTP/1.1 200 OK")


def test_an_early_hint_after_the_response_is_ignored() -> None:
    m = started()
    m.app_send(START)
    m.app_send({"type": "http.response.body", "body": b"ok"})
    fx = m.app_send(HINT)
    assert (wire(fx), [note.kind for note in fx.notes]) == (b"", ["ignored"])


# ---------------------------------------------------------------------- HTTP Trailers

TRAILERS_START = {**START, "trailers": True}
TE = b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\nTransfer-Encoding: chunked\r\n\r\n"


def body_sent(request: bytes = TE, start: dict[str, Any] = TRAILERS_START, body: bytes = b"ok") -> HTTPMachine:
    m = started(request)
    m.app_send(start)
    m.app_send({"type": "http.response.body", "body": body})
    assert m.state is State.AWAITING_TRAILERS
    return m


def test_trailers_follow_the_last_chunk_of_a_chunked_body_when_the_client_asked() -> None:
    m = started(TE)
    m.app_send(TRAILERS_START)
    # A body in one message is chunked all the same: only a chunked body carries trailers.
    fx = m.app_send({"type": "http.response.body", "body": b"ok"})
    assert (wire(fx), fx.wake_app, m.state) == (CHUNKED_HEAD + b"2\r\nok\r\n", False, State.AWAITING_TRAILERS)
    fx = m.app_send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")], "more_trailers": True})
    assert (wire(fx), m.state) == (b"", State.AWAITING_TRAILERS)
    fx = m.app_send({"type": "http.response.trailers", "headers": iter([(b"x-b", b"2")])})
    assert (wire(fx), fx.notes, fx.wake_app) == (b"0\r\nx-a: 1\r\nx-b: 2\r\n\r\n", [], True)
    assert (m.state, m.keep_alive) == (State.COMPLETE, True)


@pytest.mark.parametrize(
    ("request_head", "start", "why"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", TRAILERS_START, "the request did not carry TE: trailers"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTE: gzip;q=0.5\r\n\r\n", TRAILERS_START, "the request did not carry TE"),
        (b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n", TRAILERS_START, "an HTTP/1.0 client gets no chunked body"),
        (b"HEAD / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n", TRAILERS_START, "the response has no body"),
        (TE, {**TRAILERS_START, "status": 204}, "the response has no body"),
        (TE, {**TRAILERS_START, "headers": [(b"content-length", b"2")]}, "the app's content-length frames the body"),
    ],
)
def test_trailers_the_response_cannot_carry_are_dropped_and_traced(
    request_head: bytes, start: dict[str, Any], why: str
) -> None:
    m = body_sent(request_head, start)
    fx = m.app_send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")]})
    assert b"x-a" not in wire(fx)
    assert [(note.kind, note.section) for note in fx.notes] == [("ignored", sections.HTTP_TRAILERS)]
    assert fx.notes[0].text.startswith(f"the trailers: {why}")
    assert m.state is State.COMPLETE


def test_a_te_list_with_trailers_among_others_accepts_them() -> None:
    m = body_sent(b"GET / HTTP/1.1\r\nHost: x\r\nTE: gzip, Trailers\r\n\r\n")
    assert wire(m.app_send({"type": "http.response.trailers", "headers": [(b"x-a", b"1")]})) == b"0\r\nx-a: 1\r\n\r\n"


def test_a_streamed_body_ends_at_the_trailers() -> None:
    m = started(TE)
    m.app_send(TRAILERS_START)
    m.app_send({"type": "http.response.body", "body": b"a", "more_body": True})
    assert wire(m.app_send({"type": "http.response.body", "body": b"b"})) == b"1\r\nb\r\n"
    assert m.state is State.AWAITING_TRAILERS
    assert wire(m.app_send({"type": "http.response.trailers", "headers": []})) == b"0\r\n\r\n"


@pytest.mark.parametrize("state_messages", [0, 1, 2])
def test_trailers_before_the_last_body_message_are_an_app_error(state_messages: int) -> None:
    m = started(TE)
    for message in [TRAILERS_START, {"type": "http.response.body", "body": b"a", "more_body": True}][:state_messages]:
        m.app_send(message)
    before = m.state
    with pytest.raises(ASGIProtocolError, match=r"sent before the last http\.response\.body") as info:
        m.app_send({"type": "http.response.trailers", "headers": []})
    assert (info.value.section, m.state) == (sections.HTTP_TRAILERS, before)


def test_a_body_after_the_last_one_is_an_app_error() -> None:
    m = body_sent()
    with pytest.raises(ASGIProtocolError, match=r"http\.response\.trailers is owed"):
        m.app_send({"type": "http.response.body", "body": b"more"})
    assert m.state is State.AWAITING_TRAILERS


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([(b"x-a", b"1\r\nx-injected: 1")], "has headers that cannot be sent: Illegal header value"),
        ([(b"x a", b"1")], "has headers that cannot be sent: Illegal header name"),
        ([(b":path", b"/")], "has a pseudo-header"),
        ([("x-a", "1")], "whose name and value are not both bytes"),
        ([(b"X-A", b"1")], "that is not lower-case"),
    ],
)
def test_bad_trailers_are_answered_as_bad_headers(headers: Any, problem: str) -> None:
    m = body_sent()
    with pytest.raises(ASGIProtocolError, match=problem) as info:
        m.app_send({"type": "http.response.trailers", "headers": headers})
    assert (info.value.section, m.state) == (sections.HTTP_TRAILERS, State.AWAITING_TRAILERS)
    assert wire(m.app_send({"type": "http.response.trailers", "headers": []})) == b"0\r\n\r\n"


def test_the_app_ending_before_the_trailers_cuts_the_response() -> None:
    m = body_sent()
    fx = m.app_ended(raised=False)
    assert (fx.write, fx.ended_status, m.state) == ([], 200, State.CLOSED)


# ---------------------------------------------------------------------- Path Send, Zero Copy Send


@pytest.fixture
def data_file(tmp_path: Any) -> Any:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")
    return path


def sent(fx: HTTPEffects) -> tuple[bytes, tuple[int, int, bool] | None, bytes]:
    """The bytes before the file, the file part (offset, count, owned), the bytes after; the
    file closed as the runtime closes it."""
    if fx.file is None:
        return wire(fx), None, b""
    body = fx.file.body
    body.close()
    return wire(fx), (body.offset, body.count, body.owned), fx.file.after


def test_pathsend_is_the_whole_body_with_its_length(data_file: Any) -> None:
    m = started()
    m.app_send(START)
    fx = m.app_send({"type": "http.response.pathsend", "path": str(data_file)})
    head = b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\ncontent-length: 10\r\n\r\n"
    assert sent(fx) == (head, (0, 10, True), b"")
    assert (m.state, fx.wake_app) == (State.COMPLETE, True)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/no/such/file", "names a file that cannot be opened: No such file or directory"),
        ("relative/path", "which is not absolute"),
        (b"/bytes", "has path of type bytes"),
        ("/", "which is not a regular file"),
    ],
)
def test_a_pathsend_that_cannot_be_read_is_an_app_error(path: Any, problem: str) -> None:
    m = started()
    m.app_send(START)
    with pytest.raises(ASGIProtocolError, match=problem) as info:
        m.app_send({"type": "http.response.pathsend", "path": path})
    assert (info.value.section, m.state) == (sections.HTTP_PATHSEND, State.START_HELD)


def test_pathsend_is_not_mixed_with_body_messages(data_file: Any) -> None:
    m = started()
    m.app_send(START)
    m.app_send({"type": "http.response.body", "body": b"a", "more_body": True})
    with pytest.raises(ASGIProtocolError, match="cannot be mixed with http") as info:
        m.app_send({"type": "http.response.pathsend", "path": str(data_file)})
    assert (info.value.section, m.state) == (sections.HTTP_PATHSEND, State.SENDING_BODY)


def test_pathsend_and_zerocopysend_before_the_start_are_app_errors(data_file: Any) -> None:
    m = started()
    with open(data_file, "rb") as file:
        for message in (
            {"type": "http.response.pathsend", "path": str(data_file)},
            {"type": "http.response.zerocopysend", "file": file},
        ):
            with pytest.raises(ASGIProtocolError, match="sent before http"):
                m.app_send(message)
    assert m.state is State.AWAITING_START


def test_zerocopysend_mixes_with_body_messages_and_honours_more_body(data_file: Any) -> None:
    m = started()
    m.app_send(START)
    with open(data_file, "rb") as file:
        file.seek(4)
        fx = m.app_send({"type": "http.response.zerocopysend", "file": file, "count": 3, "more_body": True})
        # from the file's position
        assert (sent(fx), m.state) == ((CHUNKED_HEAD + b"3\r\n", (4, 3, False), b"\r\n"), State.SENDING_BODY)
        assert wire(m.app_send({"type": "http.response.body", "body": b"ab", "more_body": True})) == b"2\r\nab\r\n"
        fx = m.app_send({"type": "http.response.zerocopysend", "file": file, "offset": 8})
        assert sent(fx) == (b"2\r\n", (8, 2, False), b"\r\n0\r\n\r\n")  # to the file's end
        assert m.state is State.COMPLETE
        assert file.fileno() >= 0 and not file.closed  # the app's file stays open


def test_a_zerocopysend_in_one_message_gets_a_content_length(data_file: Any) -> None:
    m = started()
    m.app_send(START)
    with open(data_file, "rb") as file:
        fx = m.app_send({"type": "http.response.zerocopysend", "file": file, "offset": 1, "count": 5})
    head = b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\ncontent-length: 5\r\n\r\n"
    assert sent(fx) == (head, (1, 5, False), b"")


def test_a_head_response_sends_no_file(data_file: Any) -> None:
    m = started(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    m.app_send(START)
    fx = m.app_send({"type": "http.response.pathsend", "path": str(data_file)})
    assert sent(fx) == (b"HTTP/1.1 200 OK\r\ndate: " + DATE + b"\r\ncontent-length: 10\r\n\r\n", None, b"")


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"file": None}, "has a file with no OS file descriptor"),
        ({"offset": -1}, "has offset=-1"),
        ({"count": "3"}, "has count='3'"),
        ({"more_body": 1}, "has more_body=1"),
    ],
)
def test_a_malformed_zerocopysend_is_an_app_error(data_file: Any, message: dict[str, Any], problem: str) -> None:
    m = started()
    m.app_send(START)
    with open(data_file, "rb") as file, pytest.raises(ASGIProtocolError, match=problem) as info:
        m.app_send({"type": "http.response.zerocopysend", "file": file, **message})
    assert (info.value.section, m.state) == (sections.HTTP_ZEROCOPYSEND, State.START_HELD)
