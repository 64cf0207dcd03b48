"""What h11 lets through and refserver refuses (refserver/protocol/request_checks.py): obs-fold
and control bytes in a head, sizes beyond 2**63 - 1, chunk extensions outside their grammar, a
WebSocket upgrade with both Content-Length and Transfer-Encoding, an over-long request line, and
the absolute-form target's authority. Machine tests (no sockets), then one socket test per family
on both backends (the obs-fold family is in tests/test_reliability_bad_input.py)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refserver.protocol import request_checks
from refserver.protocol.effects import Tcp
from refserver.protocol.http import REQUEST_LINE_TOO_LONG, HTTPMachine, Settings, State
from tests.support import Recorder, connect, read_until_eof, refserver_errors, serving

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
SM = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def machine(**options: Any) -> HTTPMachine:
    return HTTPMachine(Settings(**options), date=lambda: DATE)


def refusal(status: bytes, text: str) -> bytes:
    body = text.encode() + b"\n"
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
        b"%d\r\nconnection: close\r\ndate: " % len(body) + DATE + b"\r\n\r\n" + body
    )


class TestHeadChecks:
    """RFC 9112 §5.2 (obs-fold) and RFC 9110 §5.5 (control bytes in a field value): 400 and
    close, before any app sees the request (docs/decisions.md#obs-fold,
    docs/decisions.md#strict-request-framing)."""

    @pytest.mark.parametrize(
        ("head", "reason"),
        [
            (
                b"X-A: one\r\n two\r\n",
                "obs-fold (a header line starting with whitespace) is not accepted (RFC 9112 §5.2)",
            ),
            (
                b"Transfer-Encoding: \r\n chunked\r\n",
                "obs-fold (a header line starting with whitespace) is not accepted (RFC 9112 §5.2)",
            ),
            (
                b"Content-Length:\r\n\t5\r\n",
                "obs-fold (a header line starting with whitespace) is not accepted (RFC 9112 §5.2)",
            ),
            (b"X-A: a\x01b\r\n", "control character b'\\x01' in a header value (RFC 9110 §5.5)"),
            (b"X-A: a\x1fb\r\n", "control character b'\\x1f' in a header value (RFC 9110 §5.5)"),
            (b"X-A: a\x7f\r\n", "control character b'\\x7f' in a header value (RFC 9110 §5.5)"),
        ],
        ids=["fold", "fold in transfer-encoding", "fold in content-length", "0x01", "0x1f", "0x7f"],
    )
    def test_refused_before_the_app(self, head: bytes, reason: str) -> None:
        m = machine()
        fx = m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n5\r\nhello\r\n0\r\n\r\n" + SM)
        assert (b"".join(fx.write), fx.tcp, fx.request) == (refusal(b"400 Bad Request", reason), Tcp.CLOSE, None)
        assert fx.refused is not None and (fx.refused.status, fx.refused.reason) == (400, reason)

    def test_a_head_that_arrives_in_pieces_is_checked_whole(self) -> None:
        m = machine()
        assert m.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n").write == []
        fx = m.receive_data(b" two\r\n\r\n")
        assert fx.request is None and fx.refused is not None and fx.refused.status == 400

    @pytest.mark.parametrize("value", [b"a\tb", b"caf\xc3\xa9", b"\x80\xff"], ids=["HTAB", "UTF-8", "obs-text"])
    def test_htab_and_obs_text_are_kept(self, value: bytes) -> None:
        fx = machine().receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + value + b"\r\n\r\n")
        assert fx.request is not None and (b"x-a", value) in fx.request.headers

    def test_a_body_starting_with_whitespace_is_no_fold(self) -> None:
        fx = machine().receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n \x01")
        assert fx.request is not None and fx.refused is None


class TestSizes:
    """A length no real body can have (over 2**63 - 1) is 400: a 64-bit front-end reads it
    differently (docs/decisions.md#strict-request-framing)."""

    def test_content_length_of_2_to_the_64_plus_5_is_400(self) -> None:
        fx = machine().receive_data(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551621\r\n\r\nhello" + SM
        )
        reason = "Content-Length larger than any body can be (over 2**63 - 1 bytes)"
        assert (b"".join(fx.write), fx.request) == (refusal(b"400 Bad Request", reason), None)

    def test_content_length_of_2_to_the_63_minus_1_waits_for_the_body(self) -> None:
        m = machine()
        fx = m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\nhello")
        assert fx.request is not None and fx.write == [] and m.state is State.AWAITING_START

    def test_chunk_size_of_2_to_the_64_plus_5_is_400(self) -> None:
        m = machine()
        fx = m.receive_data(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello"
        )
        reason = "chunk size larger than any body can be (over 2**63 - 1 bytes)"
        assert b"".join(fx.write) == refusal(b"400 Bad Request", "malformed request body: " + reason)
        assert (m.state, m.app_receive().event) == (State.CLIENT_GONE, {"type": "http.disconnect"})

    def test_a_head_request_s_malformed_body_is_answered_400_without_a_body(self) -> None:
        """RFC 9110 §9.3.2: a response to HEAD carries no content, the server's own included."""
        m = machine()
        fx = m.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        wire = b"".join(fx.write)
        assert wire.startswith(b"HTTP/1.1 400 Bad Request\r\n") and wire.endswith(b"\r\n\r\n")  # the head alone


class TestChunkExtensions:
    """RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
    a value a token or a quoted-string. Anything else is 400 and close; the app, already running,
    gets none of that body and http.disconnect (docs/decisions.md#malformed-body-400)."""

    @pytest.mark.parametrize(
        "line",
        [b"5;a\rb", b"5;a=\x00", b"5;", b"5;a=", b'5;a="b', b"5;a b", b"5 "],
        ids=["bare CR", "NUL value", "no name", "no value", "open quote", "two names", "trailing space"],
    )
    def test_malformed_extension_is_400(self, line: bytes) -> None:
        m = machine()
        fx = m.receive_data(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + line + b"\r\nhello\r\n0\r\n\r\n" + SM
        )
        reason = f"malformed request body: malformed chunk line: {line!r} (RFC 9112 §7.1, §7.1.1)"
        assert b"".join(fx.write) == refusal(b"400 Bad Request", reason)
        assert (m.state, fx.tcp, m.app_receive().event) == (State.CLIENT_GONE, None, {"type": "http.disconnect"})

    def test_a_malformed_later_chunk_is_400_after_the_good_ones(self) -> None:
        m = machine()
        fx = m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        assert fx.write == [] and m.app_receive().event == {"type": "http.request", "body": b"abc", "more_body": True}
        fx = m.receive_data(b"2;x=\x01\r\nde\r\n")
        assert b"".join(fx.write).startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert m.app_receive().event == {"type": "http.disconnect"}

    def test_valid_extensions_are_accepted(self) -> None:
        m = machine()
        m.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        fx = m.receive_data(b'3;a=b;c="d \\" e"\r\nabc\r\n2;x\r\nde\r\n0;last\r\n\r\n')
        assert fx.write == [] and m.app_receive().event == {
            "type": "http.request",
            "body": b"abcde",
            "more_body": False,
        }

    def test_an_upgrade_request_body_is_checked_too(self) -> None:
        fx = machine().receive_data(HANDSHAKE + b"Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n")
        assert (fx.upgrade, fx.tcp) == (None, Tcp.CLOSE)
        assert fx.refused is not None and fx.refused.status == 400


class TestWebSocketUpgradeFraming:
    """RFC 9112 §6.1: a request with both Content-Length and Transfer-Encoding "ought to be
    handled as an error"; a WebSocket upgrade with both is refused 400 at once, its body unread."""

    def test_content_length_and_transfer_encoding_is_400(self) -> None:
        fx = machine().receive_data(HANDSHAKE + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert (fx.upgrade, fx.tcp) == (None, Tcp.CLOSE)
        reason = "a WebSocket handshake with both Content-Length and Transfer-Encoding"
        assert fx.refused is not None and (fx.refused.status, fx.refused.reason) == (400, reason)
        assert b"".join(fx.write).startswith(b"HTTP/1.1 400 Bad Request\r\n")


class TestRequestLineLength:
    """RFC 9112 §3: "A server that receives a request-target longer than any URI it wishes to
    parse MUST respond with a 414 (URI Too Long) status code". A head over the limit because of
    its request line alone is 414; because of its header fields, 431."""

    def test_whole_head_with_a_long_target_is_414(self) -> None:
        fx = machine(max_head_bytes=40).receive_data(b"GET /" + b"a" * 60 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"".join(fx.write) == refusal(b"414 Request-URI Too Long", REQUEST_LINE_TOO_LONG)

    def test_incomplete_long_request_line_is_414(self) -> None:
        m = machine(max_head_bytes=40)
        fx = m.receive_data(b"GET /" + b"a" * 60)
        assert b"".join(fx.write) == refusal(b"414 Request-URI Too Long", REQUEST_LINE_TOO_LONG)
        assert fx.refused is not None and fx.refused.status == 414


class TestAbsoluteForm:
    """RFC 9112 §3.2.2: the origin server "MUST ignore the received Host header field (if any)
    and instead use the host information of the request-target" (docs/decisions.md#absolute-form-host)."""

    def test_the_targets_authority_is_the_host_header(self) -> None:
        fx = machine().receive_data(b"GET http://evil.example:8080/p?q=1 HTTP/1.1\r\nX-B: c\r\nHost: a\r\n\r\n")
        assert fx.request is not None
        assert fx.request.headers == [(b"x-b", b"c"), (b"host", b"evil.example:8080")]
        assert fx.request.target == b"http://evil.example:8080/p?q=1"

    def test_http_1_0_without_host_gets_one(self) -> None:
        fx = machine().receive_data(b"GET http://evil.example HTTP/1.0\r\n\r\n")
        assert fx.request is not None and fx.request.headers == [(b"host", b"evil.example")]

    @pytest.mark.parametrize(
        "target", [b"http:///p", b"http://user@evil.example/p", b'http://a"b/'], ids=["empty", "userinfo", "bad char"]
    )
    def test_a_target_without_a_valid_host_is_400(self, target: bytes) -> None:
        fx = machine().receive_data(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (fx.request, fx.tcp) == (None, Tcp.CLOSE)
        assert fx.refused is not None and fx.refused.status == 400

    def test_origin_form_is_untouched(self) -> None:
        headers = [(b"host", b"a")]
        assert request_checks.with_target_host(b"/p?q=http://x", headers) is headers


# ---------------------------------------------------------------- properties

CONTROL = [*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]  # h11 itself refuses 0x0B and 0x0C
TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHARS, min_size=1, max_size=6).map(str.encode)
quoted = st.lists(
    st.sampled_from([b"\t", b" ", b"!", b"#", b"[", b"]", b"~", b"\x80", b"\xff", b'\\"', b"\\\\"]), max_size=5
).map(lambda parts: b'"' + b"".join(parts) + b'"')
extensions = st.lists(
    st.tuples(st.sampled_from([b"", b" ", b"\t "]), tokens, st.none() | tokens | quoted), max_size=4
).map(
    lambda exts: b"".join(ws + b";" + ws + name + (b"" if value is None else b"=" + value) for ws, name, value in exts)
)


@given(st.binary(max_size=20).filter(lambda v: not set(v) & {0x00, 0x0A, 0x0D}))
def test_a_header_value_is_refused_exactly_when_it_holds_a_control_byte(value: bytes) -> None:
    fx = machine().receive_data(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + value + b"\r\n\r\n")
    if set(value) & set(CONTROL):
        assert (fx.request, fx.refused is not None and fx.refused.status) == (None, 400)
    else:
        assert fx.request is not None and (b"x-a", value.strip(b" \t")) in fx.request.headers


@given(st.integers(1, 2**60), extensions)
def test_every_chunk_line_of_the_grammar_is_accepted(size: int, exts: bytes) -> None:
    assert request_checks.chunk_line_defect(b"%x" % size + exts) is None


@given(st.integers(1, 2**60), extensions, st.sampled_from([0x00, 0x0D, *CONTROL]), st.data())
def test_a_control_byte_inside_the_extensions_is_refused(
    size: int, exts: bytes, byte: int, data: st.DataObject
) -> None:
    line = b"%x" % size + b";" + exts.lstrip(b" \t;")
    at = data.draw(st.integers(len(b"%x" % size) + 1, len(line)))
    assert request_checks.chunk_line_defect(line[:at] + bytes([byte]) + line[at:]) is not None


# ---------------------------------------------------------------- over sockets, both backends


async def exchange(port: int, data: bytes) -> bytes:
    stream = await connect(port)
    try:
        await stream.send(data)
        with anyio.fail_after(5):
            return await read_until_eof(stream)
    finally:
        await stream.aclose()


def recording_app(rec: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        rec.add("request", (scope["path"], [v for k, v in scope["headers"] if k == b"host"]))
        while True:
            message = await receive()
            rec.add("message", message["type"])
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.anyio
async def test_control_byte_over_a_socket_is_400_and_nothing_is_served(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    async with serving(recording_app(rec)) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n" + SM)
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n") and raw.count(b"HTTP/1.1") == 1
    assert rec.of("request") == []
    assert refserver_errors(caplog) == []


@pytest.mark.anyio
async def test_bad_chunk_extension_over_a_socket_is_400_and_the_smuggled_request_is_not_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder()
    data = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n" + SM
    async with serving(recording_app(rec)) as server:
        raw = await exchange(server.port, data)
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n") and raw.count(b"HTTP/1.1") == 1
    assert rec.of("request") == [("/", [b"x"])] and rec.of("message") == ["http.disconnect"]
    assert refserver_errors(caplog) == []


@pytest.mark.anyio
async def test_websocket_upgrade_with_both_framings_over_a_socket_is_400() -> None:
    rec = Recorder()
    data = HANDSHAKE + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with serving(recording_app(rec), timeout_keep_alive_s=5) as server:
        raw = await exchange(server.port, data)  # closed at once: no wait for the keep-alive timeout
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert rec.of("request") == []


@pytest.mark.anyio
async def test_absolute_form_over_a_socket_gives_the_app_the_targets_host() -> None:
    rec = Recorder()
    async with serving(recording_app(rec)) as server:
        raw = await exchange(
            server.port, b"GET http://evil.example/p?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rec.of("request") == [("/p", [b"evil.example"])]


@pytest.mark.anyio
async def test_long_request_target_over_a_socket_is_414() -> None:
    async with serving(recording_app(Recorder())) as server:
        raw = await exchange(server.port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 414 ")
