"""The conformance harness's verdict logic, on hand-made traces: no sockets, no servers.

Each test pins one verdict that a run against a real peer once got wrong; the trace is the
shape of what that peer did, reduced to the records the checks read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from typing import Any

import pytest

from refserver.conformance import verdict as V
from refserver.conformance.catalogue import BY_ID, META_CLAIMS
from refserver.conformance.catalogue.websocket import deflated
from refserver.conformance.model import Level
from refserver.conformance.observe import logged_errors
from refserver.conformance.probe import Reporter, ScriptRunner
from refserver.conformance.report import add_meta_cells
from refserver.conformance.runner import Runner, TargetRun, judge
from refserver.conformance.steps import (
    BodyOnContinue,
    OpenGate,
    Receive,
    Request,
    SendUntilBlocked,
    Trickle,
    WaitApp,
    WaitClose,
    WaitEOF,
    WaitFrame,
    WaitResponses,
    WriteBody,
)
from refserver.conformance.targets import BY_NAME, TargetInfo, describe_status

Record = dict[str, Any]


def target(name: str = "peer", advertised: dict[str, str] | None = None) -> TargetRun:
    run = TargetRun(TargetInfo(BY_NAME["refserver"], True, "1.0"), sys.executable)
    run.info = TargetInfo(run.info.spec.__class__(name, name, ("x",)), True, "1.0")
    run.advertised = dict(advertised or {})
    return run


def hello(scope: dict[str, Any] | None = None, *, version: str = "2.5", t: float = 0.0) -> Record:
    return {
        "t": t,
        "side": "app",
        "ev": "hello",
        "instance": 0,
        "scope": {"asgi": {"version": "3.0", "spec_version": version}, **(scope or {})},
    }


def app(ev: str, *, t: float = 0.1, **fields: Any) -> Record:
    return {"t": t, "side": "app", "ev": ev, "instance": 0, **fields}


def client(ev: str, *, t: float = 0.1, **fields: Any) -> Record:
    return {"t": t, "side": "client", "ev": ev, **fields}


def runner(ev: str, value: str) -> Record:
    return {"t": 0.0, "side": "runner", "ev": ev, "value": value}


def close_frame(code: int | None, t: float = 0.2) -> Record:
    if code is None:
        return client("close_frame", t=t, len=0)
    return client("close_frame", t=t, len=2, code=code, reason="")


def disconnect(code: int, step: int = 2) -> Record:
    return app("received", step=step, kind="websocket.disconnect", msg={"type": "websocket.disconnect", "code": code})


def cell(scenario: str, records: list[Record], *, version: str = "2.5", who: str = "peer") -> V.Cell:
    return judge(target(who, {"http": version, "websocket": version}), BY_ID[scenario], records, None)


def check(c: V.Cell, label: str) -> V.CheckResult:
    found = [k for k in c.checks if k.label == label or k.observable == label]
    assert found, (label, [k.label for k in c.checks])
    return found[0]


def b(text: str) -> dict[str, Any]:
    return {"bytes": text, "len": len(text)}


class TestHttpConnectionScopeHeaders:
    """www spec 2.5, "HTTP Connection Scope": "Order of header values must be preserved from the original
    HTTP request; order of header names is not important." """

    def headers(self, pairs: list[tuple[str, str]]) -> list[Record]:
        return [hello({"headers": [[b(n), b(v)] for n, v in pairs]})]

    def test_names_reordered_with_values_in_order_passes(self) -> None:
        # granian and daphne group the headers by name, keeping the order of each name's values
        c = cell(
            "http.scope.headers",
            self.headers(
                [("x-other", "o"), ("x-dup", "1"), ("x-dup", "2"), ("cookie", "a=1"), ("cookie", "b=2"), ("host", "h")]
            ),
        )
        assert c.verdict == V.PASS, [(k.label, k.value, k.verdict) for k in c.checks]

    def test_values_reordered_fails(self) -> None:
        c = cell(
            "http.scope.headers",
            self.headers([("x-dup", "2"), ("x-dup", "1"), ("cookie", "a=1"), ("cookie", "b=2")]),
        )
        assert c.verdict == V.FAIL
        assert check(c, "app.header_values").value == '["2","1"]'

    def test_joined_duplicates_fail(self) -> None:
        c = cell("http.scope.headers", self.headers([("x-dup", "1"), ("x-dup", "2"), ("cookie", "a=1; b=2")]))
        assert c.verdict == V.FAIL
        assert check(c, "cookies not joined").verdict == V.FAIL


class TestDisconnectReceiveEventEmptyClose:
    """www spec 2.5, "Disconnect - receive event": with no code in the frame "the server should set this
    to 1005": a SHOULD, so another code deviates and never fails."""

    def test_level_is_should(self) -> None:
        assert BY_ID["ws.close.empty"].level is Level.SHOULD

    @pytest.mark.parametrize(("code", "expected"), [(1005, V.PASS), (1000, V.DEVIATES), (1006, V.DEVIATES)])
    def test_code(self, code: int, expected: str) -> None:
        c = cell("ws.close.empty", [hello(), disconnect(code)])
        assert (c.verdict, check(c, "app.disconnect.code").value) == (expected, str(code))


FAIL_THE_CONNECTION = {
    "ws.data.reserved-bits": "1002",
    "ws.data.unknown-opcode": "1002",
    "ws.data.invalid-utf8": "1007",
    "ws.data.continuation-without-start": "1002",
    "ws.data.fragmented-ping": "1002",
    "ws.close.one-byte-payload": "1002",
    "ws.close.reserved-code": "1002",
    "ws.close.invalid-reason-utf8": "1007",
}


class TestFailTheWebSocketConnection:
    """RFC 6455 §7.1.7: the endpoint "SHOULD send a Close frame with an appropriate status code"
    before closing. One rule for every scenario in which the server must fail the connection:
    the right code passes; no frame, an empty frame and another code all deviate alike."""

    @pytest.mark.parametrize("scenario", sorted(FAIL_THE_CONNECTION))
    @pytest.mark.parametrize(
        ("wire", "value"),
        [("right", None), ("empty", "empty"), ("eof", "none:eof"), ("rst", "none:rst"), ("other", "1011")],
    )
    def test_one_rule(self, scenario: str, wire: str, value: str | None) -> None:
        code = FAIL_THE_CONNECTION[scenario]
        records: list[Record] = [hello()]
        if wire == "right":
            records.append(close_frame(int(code)))
        elif wire == "empty":
            records.append(close_frame(None))
        elif wire == "other":
            records.append(close_frame(1011))
        else:
            records.append(client(wire, t=0.2))
        records.append(disconnect(int(code)))
        c = cell(scenario, records)
        result = [k for k in c.checks if k.observable == "client.close"]
        assert len(result) == 1
        assert result[0].value == (value or code)
        assert result[0].verdict == (V.PASS if wire == "right" else V.DEVIATES)
        assert c.verdict == (V.PASS if wire == "right" else V.DEVIATES)

    def test_not_closing_at_all_fails(self) -> None:
        c = cell("ws.data.invalid-utf8", [hello()])
        assert check(c, "client.closed").verdict == V.FAIL
        assert c.verdict == V.FAIL


class TestRFC6455Section5_1UnmaskedFrame:
    """RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that is not
    masked. In this case, a server MAY send a Close frame with a status code of 1002": closing
    without the frame only differs (the MAY is more specific than §7.1.7's SHOULD)."""

    @pytest.mark.parametrize(("wire", "value"), [("empty", "empty"), ("eof", "none:eof"), ("rst", "none:rst")])
    def test_no_1002_frame_differs(self, wire: str, value: str) -> None:
        records: list[Record] = [hello()]
        records.append(close_frame(None) if wire == "empty" else client(wire, t=0.2))
        records.append(disconnect(1002))
        c = cell("ws.data.unmasked-frame", records)
        frame = check(c, "close frame with 1002 (RFC 6455 §5.1)")
        assert (frame.value, frame.verdict, frame.level) == (value, V.DIFFERS, "MAY")
        assert c.verdict == V.DIFFERS

    def test_1002_passes(self) -> None:
        c = cell("ws.data.unmasked-frame", [hello(), close_frame(1002), disconnect(1002)])
        assert c.verdict == V.PASS

    def test_open_connection_fails(self) -> None:
        c = cell("ws.data.unmasked-frame", [hello()])
        assert check(c, "client.closed").verdict == V.FAIL


class TestLifespanStartupFailed:
    """lifespan spec 2.0, "Startup Failed - send event": "If a server sees this it should log/print the
    message provided and then exit." An exit is the rule; its status is not named."""

    def run(self, value: str, output: str = "ERROR: Lifespan startup failed: no database") -> V.Cell:
        records = [runner("server_end", value), {**hello(), "instance": "lifespan"}, runner("server_output", output)]
        return judge(target(), BY_ID["lifespan.startup-failed"], records, None)

    def test_exit_1_passes(self) -> None:
        assert self.run("exited with status 1 before listening").verdict == V.PASS

    def test_exit_0_only_differs(self) -> None:
        c = self.run("exited with status 0 before listening")
        assert c.verdict == V.DIFFERS
        assert check(c, "the server exits").verdict == V.PASS

    def test_exit_after_listening_passes(self) -> None:
        # gunicorn's master binds the port first; its worker fails startup and the master exits
        c = self.run("exited with status 3")
        assert (c.verdict, check(c, "the server exits").verdict) == (V.DIFFERS, V.PASS)

    def test_serving_on_deviates(self) -> None:
        c = self.run("still running")
        assert c.verdict == V.DEVIATES
        assert check(c, "the server exits").verdict == V.DEVIATES

    def test_message_not_logged_deviates(self) -> None:
        c = self.run("exited with status 1 before listening", output="shutting down\n")
        assert (c.verdict, check(c, "the message is logged or printed").value) == (V.DEVIATES, "no")


class TestExpectContinueUnread:
    """RFC 9110 §10.1.1: a server may send 100 (Continue) anyway; then the client sends the
    content and the final answer follows. Only the 417 is a rule."""

    def test_100_then_417_differs_and_does_not_fail(self) -> None:
        records = [
            hello(),
            client("informational", status=100, headers=[]),
            client("response", t=0.3, status=417, headers=[], body=b("no")),
        ]
        c = cell("http.expect-continue-unread", records)
        assert (c.verdict, check(c, "client.informational").value) == (V.DIFFERS, "100")
        assert check(c, "client.status").verdict == V.PASS

    def test_script_sends_the_content_after_100(self) -> None:
        kinds = [type(s) for s in BY_ID["http.expect-continue-unread"].client]
        assert kinds == [Request, BodyOnContinue, WaitResponses]


class TestVersioningClaims:
    """www spec 2.5, "Spec Versions": a target that advertises a version keeps every rule up to it, MUST
    and SHOULD alike (www spec 2.5, "Accept - send event": headers, since 2.1)."""

    def test_must_rule_of_an_advertised_version_breaks_the_claim(self) -> None:
        # granian: advertises 2.3 and drops the accept headers (a MUST since 2.1)
        records = [hello(version="2.3"), client("response", status=101, headers=[], body=b(""))]
        c = cell("ws.accept.headers", records, version="2.3", who="granian")
        headers = [k for k in c.checks if k.observable == "client.header"]
        assert headers and all(k.verdict == V.FAIL and k.note.startswith("advertises 2.3") for k in headers)
        cells = [c]
        add_meta_cells(cells, [target("granian", {"websocket": "2.3"})])
        meta = cells[-1]
        assert (meta.scenario, meta.verdict) == (META_CLAIMS.id, V.FAIL)
        assert meta.checks[0].value == "broken: ws.accept.headers"

    def test_must_rule_of_a_newer_version_is_not_applicable(self) -> None:
        records = [hello(version="2.0"), client("response", status=101, headers=[], body=b(""))]
        c = cell("ws.accept.headers", records, version="2.0")
        assert all(k.verdict == V.NA for k in c.checks if k.observable == "client.header")

    def test_kept_claims_pass(self) -> None:
        cells = [cell("ws.close.empty", [hello(), disconnect(1005)])]
        add_meta_cells(cells, [target("peer", {"websocket": "2.5"})])
        assert cells[-1].verdict == V.PASS


class TestKeepaliveWindow:
    """www spec 2.5, "WebSocket" (pings): only a close inside the client's window counts as the keepalive
    drop; the app is still in receive() then, so a close on app return cannot pass for it."""

    def test_close_after_the_window_is_not_a_drop(self) -> None:
        records = [
            hello(),
            client("ping", t=1.0),
            client("mark", t=7.0, name="window-ended"),
            close_frame(1000, t=7.1),
        ]
        c = cell("ws.keepalive.ping", records)
        assert check(c, "the unanswered peer is dropped").value == "none:open"
        assert c.verdict == V.DIFFERS

    def test_close_in_the_window_is_the_drop(self) -> None:
        records = [hello(), client("ping", t=1.0), close_frame(1011, t=2.0), client("mark", t=2.0, name="window-ended")]
        assert cell("ws.keepalive.ping", records).verdict == V.PASS

    def test_app_outwaits_the_window_by_twice(self) -> None:
        s = BY_ID["ws.keepalive.ping"]
        window = sum(step.timeout for step in s.client if isinstance(step, WaitFrame | WaitClose))
        receive = [step for step in s.app if isinstance(step, Receive)][-1]
        assert receive.timeout is not None and receive.timeout >= 2 * window


class TestRaiseBeforeAcceptTiming:
    """asgi spec, "Error Handling": the 500 after the exception is judged over twice a 1 s polling."""

    def test_one_second_polling_passes(self) -> None:
        records = [hello(), app("ended", t=0.2, how="raised"), client("response", t=1.2, status=500, headers=[])]
        assert cell("ws.app.raise-before-accept", records).verdict == V.PASS

    def test_never_answered_fails(self) -> None:
        records = [hello(), app("ended", t=0.2, how="raised"), client("eof", t=1.2)]
        assert cell("ws.app.raise-before-accept", records).verdict == V.FAIL


class TestBackpressureProbe:
    """A send that blocks but cannot be cancelled returns late: it blocked all the same."""

    def test_uncancellable_blocking_send_is_blocked(self) -> None:
        reports: list[dict[str, Any]] = []

        class Recorder(Reporter):
            def report(self, ev: str, **fields: Any) -> None:
                reports.append({"ev": ev, **fields})

        calls = 0

        async def send(message: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 3:  # the buffers are full: this one takes 0.3 s and swallows the cancellation
                try:
                    await asyncio.sleep(0.3)
                except asyncio.CancelledError:
                    await asyncio.sleep(0.3)

        async def receive() -> Any:
            raise AssertionError("not called")

        step = BY_ID["ws.backpressure.send"].app[-2]
        assert isinstance(step, SendUntilBlocked)
        args = dataclasses.replace(step, block_s=0.1, max_s=5.0)
        script = ScriptRunner({}, receive, send, Recorder(None, "t1"))

        async def main() -> None:
            await asyncio.wait_for(script._send_until_blocked(args, 2), 10)

        asyncio.run(main())
        ends = [r for r in reports if r["ev"] in ("send_blocked", "never_blocked")]
        assert len(ends) == 1
        assert ends[0]["ev"] == "send_blocked"
        assert (ends[0]["after_bytes"], ends[0]["cancelled"]) == (2 << 20, False)


class TestRunIndependentValues:
    def test_token_is_not_part_of_a_value(self) -> None:
        def run(token: str) -> V.Cell:
            scope: dict[str, Any] = {"type": "websocket", "path": f"/ws.scope.raw-path/{token}/a/b"}
            scope["raw_path"] = b(f"/ws.scope.raw-path/{token}/a%2Fb")
            return cell("ws.scope.raw-path", [hello(scope)])

        first, second = run("t7"), run("t812")
        assert [k.value for k in first.checks] == [k.value for k in second.checks]
        assert "<token>" in first.checks[0].value


class TestCellSummary:
    def test_not_applicable_check_is_visible(self) -> None:
        # daphne advertises 2.0: the close reason (since 2.3) cannot be judged
        records = [hello(version="2.0"), close_frame(4002)]
        c = cell("ws.close.app-reason", records, version="2.0")
        assert c.verdict == V.PASS
        assert c.summary.startswith("pass (1 n/a: ")

    def test_crash_is_its_own_verdict(self) -> None:
        c = judge(target(), BY_ID["ws.close.empty"], [], "harness error: x", "the server process exited with status 1")
        assert (c.verdict, c.summary, c.error) == (V.CRASH, "crash", "the server process exited with status 1")
        assert V.CRASH in V.STRICT_FAILURES and V.ERROR not in V.STRICT_FAILURES

    def test_harness_error_is_apart(self) -> None:
        c = judge(target(), BY_ID["ws.close.empty"], [], "harness error: KeyError", None)
        assert c.verdict == V.ERROR


class TestServerExit:
    @pytest.mark.parametrize(
        ("status", "text"), [(1, "exited with status 1"), (-11, "was killed by SIGSEGV"), (0, "exited with status 0")]
    )
    def test_describe_status(self, status: int, text: str) -> None:
        assert describe_status(status) == text

    def test_a_dead_process_is_not_stopped_answering(self) -> None:
        class Dead:
            exit_reason = None
            port = 1

            def alive(self) -> bool:
                return False

            def describe_exit(self) -> str:
                return "exited with status 3"

        problem = asyncio.run(Runner([])._healthy(Dead()))
        assert problem == "the server process exited with status 3"


class TestDisconnectedClientSendException:
    """www spec 2.5, "Disconnected Client - send exception": servers must catch the OSError they raised
    into the app and should not log it as an error (a 2.4 rule)."""

    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("", "none"),
            ("WARNING  refserver: slow\n", "none"),
            ("ERROR    refserver: Exception in ASGI application\n", "error: ERROR    refserver: Exception in ASGI"),
            ("[2026-01-01 00:00:00] [12] [ERROR] boom\n", "error: [2026-01-01 00:00:00] [12] [ERROR] boom"),
            ("Traceback (most recent call last):\n  File x\n", "error: Traceback (most recent call last):"),
            ("INFO: an ERRORS counter\n", "none"),
        ],
    )
    def test_error_level_lines(self, text: str, value: str) -> None:
        assert logged_errors(text)[: len(value)] == value

    def run(self, logged: str, version: str) -> V.Cell:
        records = [
            hello(version=version),
            disconnect(1000),
            app("send_raised", step=3, kind="websocket.send", exc="ClientDisconnected", oserror=True),
            runner("server_log", logged),
        ]
        return cell("ws.send.after-disconnect", records, version=version)

    def test_logged_traceback_breaks_the_2_4_claim(self) -> None:
        # A claim never raises a SHOULD: the check deviates, and the broken claim is counted
        # once, by the meta scenario.
        c = self.run("error: Traceback (most recent call last):", "2.4")
        logged = check(c, "the escaped OSError is not logged as an error")
        assert (logged.verdict, logged.note[:15]) == (V.DEVIATES, "advertises 2.4,")
        assert c.verdict == V.DEVIATES
        cells = [c]
        add_meta_cells(cells, [target("peer", {"websocket": "2.4"})])
        assert (cells[-1].verdict, cells[-1].checks[0].value) == (V.FAIL, "broken: ws.send.after-disconnect")

    def test_silence_passes(self) -> None:
        assert self.run("none", "2.4").verdict == V.PASS

    def test_older_version_is_not_held_to_it(self) -> None:
        c = self.run("error: Traceback (most recent call last):", "2.3")
        assert check(c, "the escaped OSError is not logged as an error").verdict == V.NA


class TestExtensionsAdvertised:
    """asgi extensions: a scenario about an extension is n/a where the server does not
    advertise it, never a plain pass."""

    def test_app_reports_unsupported(self) -> None:
        records = [hello(), app("unsupported", step=1, extension="http.response.pathsend")]
        c = cell("http.ext.pathsend", records)
        assert (c.verdict, c.summary) == (V.NA, "n/a")

    def test_declined_permessage_deflate_is_not_applicable(self) -> None:
        records = [hello(), client("unsupported", extension="permessage-deflate")]
        assert cell("ws.data.compressed", records).verdict == V.NA

    def test_trailer_is_read_from_the_chunked_response(self) -> None:
        response = client("response", status=200, headers=[], body=b("with trailers"), trailers=[["x-checksum", "42"]])
        assert cell("http.ext.trailers", [hello(), response]).verdict == V.PASS
        bare = client("response", status=200, headers=[], body=b("with trailers"), trailers=[])
        c = cell("http.ext.trailers", [hello(), bare])
        assert (c.verdict, check(c, "client.trailer").value) == (V.DEVIATES, "[]")

    def test_compressed_payload_inflates_to_the_text(self) -> None:
        import zlib

        payload = deflated("squeezed text")
        assert zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff") == b"squeezed text"


class TestHttp10AndClosing:
    """RFC 9112 §9.3 and §9.6: the server closes after the response."""

    def test_granian_http_version_1_fails(self) -> None:
        records = [
            hello({"http_version": "1"}),
            client("response", status=200, headers=[], body=b("old")),
            client("eof", t=0.3),
        ]
        c = cell("http.version.1-0", records)
        assert (c.verdict, check(c, "app.scope").value) == (V.FAIL, "1")

    def test_open_connection_after_cl_and_te_fails(self) -> None:
        records = [
            hello(),
            app("body", body=b("hello")),
            client("response", status=200, headers=[], body=b("ok")),
        ]
        c = cell("http.request.cl-and-te", records)
        assert (c.verdict, check(c, "the connection is closed after the response").value) == (V.FAIL, "open")


UDS = "/tmp/conformance-uds-x/probe.sock"


class TestHttpConnectionScopeUnixSocket:
    """www spec 2.5, "HTTP Connection Scope" (2.2): on a Unix socket, server is [path, None], or absent."""

    def served(self, server: Any, version: str = "2.3") -> V.Cell:
        records = [
            runner("uds", UDS),
            hello({"server": server, "client": None}, version=version),
            client("response", t=0.2, status=200, headers=[], body=b("over a unix socket")),
        ]
        return cell("http.scope.unix-socket", records, version=version)

    def test_path_and_none_passes(self) -> None:
        c = self.served([UDS, None])
        assert (check(c, "server ([path, None])").value, c.verdict) == ('["<uds>",null]', V.PASS)

    def test_no_server_passes(self) -> None:
        assert check(self.served(None), "server ([path, None])").verdict == V.PASS

    def test_port_as_string_zero_fails(self) -> None:  # granian 2.8.9
        c = self.served([UDS, "0"])
        assert (check(c, "server ([path, None])").value, c.verdict) == ('["<uds>","0"]', V.FAIL)

    def test_first_two_characters_of_the_path_fail(self) -> None:  # gunicorn 27.0.1
        assert self.served(["/", "t"], version="2.4").verdict == V.FAIL

    def test_a_target_before_2_2_is_not_held_to_it(self) -> None:  # daphne advertises 2.0
        assert check(self.served([UDS, "0"], version="2.0"), "server ([path, None])").verdict == V.NA

    def test_a_target_without_the_option_is_na(self) -> None:
        from refserver.conformance.runner import missing_options

        spec = BY_NAME["refserver"].__class__("bare", "bare", ("x",))
        bare = TargetRun(TargetInfo(spec, True, "1.0"), sys.executable)
        assert missing_options(bare, BY_ID["http.scope.unix-socket"]) == ["uds"]
        assert missing_options(bare, BY_ID["ws.close.client-never-answers"]) == []  # runs on its default
        assert not missing_options(
            TargetRun(TargetInfo(BY_NAME["granian"], True, "1"), "p"), BY_ID["ws.scope.root-path"]
        )

    def test_the_option_goes_before_the_app(self) -> None:
        from refserver.conformance.targets import ProcessServer

        server = ProcessServer(BY_NAME["daphne"], "/venv/bin/python", 9, options={"uds": "", "root_path": "/m"})
        server.uds, server.port = UDS, 4242
        argv = server.argv()
        assert argv[-5:] == ["-u", UDS, "--root-path", "/m", "refserver.conformance.probe:app"]


class TestHttpConnectionScopeRootPath:
    """www spec 2.5, "HTTP Connection Scope": root_path is the configured one; "WSGI Compatibility": path
    starts with it (docs/decisions.md#root-path-in-path)."""

    def test_root_path_in_front_of_path_passes(self) -> None:  # uvicorn 0.54.0
        scope = {"root_path": "/mount", "path": "/mount/http.scope.root-path/t3/x"}
        records = [hello(scope), client("response", t=0.2, status=200, headers=[], body=b("ok"))]
        c = cell("http.scope.root-path", records)
        assert (check(c, "path").value, c.verdict) == ("/mount/http.scope.root-path/<token>/x", V.PASS)

    def test_path_as_sent_fails(self) -> None:  # hypercorn 0.18, daphne, granian
        scope = {"root_path": "/mount", "path": "/http.scope.root-path/t3/x"}
        records = [hello(scope), client("response", t=0.2, status=200, headers=[], body=b("ok"))]
        c = cell("http.scope.root-path", records)
        assert (check(c, "path").verdict, c.verdict) == (V.FAIL, V.FAIL)

    def test_missing_root_path_fails(self) -> None:
        scope = {"root_path": "", "path": "/http.scope.root-path/t3/x"}
        records = [hello(scope), client("response", t=0.2, status=200, headers=[], body=b("ok"))]
        assert cell("http.scope.root-path", records).verdict == V.FAIL


class TestFieldLimits:
    """RFC 9110 §5.4: a head larger than the server will process gets a 4xx, not silence."""

    def test_silent_close_fails(self) -> None:  # daphne 4.2.3
        assert cell("http.bad.head-too-large", [client("eof", t=0.1)]).verdict == V.FAIL

    def test_serving_it_differs_only(self) -> None:  # uvicorn with httptools, granian
        records = [hello(), client("response", t=0.2, status=200, headers=[], body=b("ok"))]
        assert cell("http.bad.head-too-large", records).verdict == V.DIFFERS

    def test_400_differs_from_431(self) -> None:
        records = [client("response", t=0.2, status=400, headers=[], body=b(""))]
        assert cell("http.bad.head-too-large", records).verdict == V.DIFFERS


class TestRequestLine:
    """RFC 9112 §3: an invalid request line SHOULD get 400 (or 301), not be autocorrected."""

    def test_processed_anyway_deviates(self) -> None:
        records = [hello(), client("response", t=0.2, status=200, headers=[], body=b("ok"))]
        c = cell("http.bad.request-line", records, version="2.3")
        assert c.verdict == V.DEVIATES


class TestRequestReceiveEventBackpressure:
    """www spec 2.5, "Request - receive event": the body is streamed in chunks. Reading it all ahead of
    the app only differs (the spec has no rule); losing any of it fails."""

    def run(self, *records: Record) -> V.Cell:
        body = {"bytes": "", "len": 64 << 20}
        return cell(
            "http.request.body-backpressure",
            [
                hello(),
                *records,
                app("body", t=3.0, step=1, body=body),
                client("response", t=3.1, status=200, headers=[], body=b("ok")),
            ],
        )

    @pytest.mark.parametrize(
        ("written", "value"),
        [(4 << 20, "stalled at ≤16 MiB"), (10 << 20, "stalled at ≤16 MiB"), ((16 << 20) + 1, "stalled at ≤64 MiB")],
    )
    def test_stall_passes_with_a_coarse_size(self, written: int, value: str) -> None:
        # peers stall after 4 to 10 MiB, varying from run to run: one value for all of them
        c = self.run(client("body_stalled", t=2.0, after_bytes=written, stall_s=1.0))
        assert (check(c, "while the app does not read").value, c.verdict) == (value, V.PASS)

    def test_reading_it_all_differs(self) -> None:  # daphne 4.2.3
        c = self.run(client("body_written", t=2.0, len=64 << 20))
        assert (check(c, "while the app does not read").value, c.verdict) == ("took all 64 MiB", V.DIFFERS)

    def test_a_lost_chunk_fails(self) -> None:
        c = cell(
            "http.request.body-backpressure",
            [
                hello(),
                client("body_stalled", t=2.0, after_bytes=4 << 20, stall_s=1.0),
                app("body", t=3.0, step=1, body={"bytes": "", "len": (64 << 20) - (64 << 10)}),
                client("response", t=3.1, status=200, headers=[], body=b("ok")),
            ],
        )
        assert c.verdict == V.FAIL

    def test_the_gate_waits_for_an_app_called_after_the_body(self) -> None:
        client = BY_ID["http.request.body-backpressure"].client
        kinds = [type(s) for s in client]
        assert kinds.index(OpenGate) == kinds.index(WriteBody) + 2
        before = client[kinds.index(OpenGate) - 1]
        assert isinstance(before, WaitApp) and before.event == "hello"


class TestCloseNeverAnswered:
    """RFC 6455 §7.1.1: the server closes TCP after a timeout when the client never answers its
    close; the app then gets a disconnect, 1006 by RFC 6455 §7.1.5 (no close frame received)."""

    def run(self, *records: Record, code: int = 1006) -> V.Cell:
        return cell(
            "ws.close.client-never-answers",
            [
                hello(),
                close_frame(1000, t=0.1),
                *records,
                client("mark", t=22.1, name="window-ended"),
                disconnect(code, step=3),
            ],
        )

    def test_closed_after_one_second_passes(self) -> None:
        assert self.run(client("eof", t=1.1)).verdict == V.PASS

    def test_never_closed_deviates(self) -> None:  # hypercorn 0.18.0, gunicorn 27.0.1
        c = self.run(code=1000)
        assert (check(c, "the server closes TCP (within 22 s)").value, c.verdict) == ("open", V.DEVIATES)

    def test_own_code_at_once_differs(self) -> None:  # uvicorn 0.54.0
        assert self.run(client("eof", t=10.0), code=1000).verdict == V.DIFFERS

    def test_window_is_over_twice_a_ten_second_default(self) -> None:
        s = BY_ID["ws.close.client-never-answers"]
        window = next(step.timeout for step in s.client if isinstance(step, WaitEOF))
        assert window > 2 * 10.0
        assert s.server is not None and s.server.ws_close_timeout_s is not None
        assert window > 2 * s.server.ws_close_timeout_s


class TestRFC9110Section15_5_9RequestTimeout:
    """RFC 9110 §15.5.9: 408 says the server did not get the whole request in the time it would
    wait; no RFC requires the cut, so a target that never cuts a trickling body differs. Only what
    comes before the end of the window counts, and the time is measured from before the head."""

    def run(self, *records: Record) -> V.Cell:
        return cell(
            "http.strict.body-trickle",
            [hello(), client("mark", t=0.0, name="head"), *records, client("mark", t=4.0, name="window-ended")],
        )

    def test_408_after_the_grace_period_passes(self) -> None:
        c = self.run(client("response", t=1.3, status=408, headers=[]), client("eof", t=1.3))
        assert (check(c, "status").value, c.verdict) == ("408", V.PASS)
        assert check(c, "cut after (within 4 s)").value == "1-2 s"

    def test_never_cut_differs(self) -> None:
        c = self.run()
        assert [k.value for k in c.checks] == ["none:open", "never"]
        assert c.verdict == V.DIFFERS

    def test_a_close_after_the_window_is_no_cut(self) -> None:
        c = cell(
            "http.strict.body-trickle",
            [
                hello(),
                client("mark", t=0.0, name="head"),
                client("mark", t=4.0, name="window-ended"),
                client("eof", t=4.1),
            ],
        )
        assert check(c, "cut after (within 4 s)").value == "never"

    def test_a_cut_without_status_is_shown_as_such(self) -> None:
        c = self.run(client("rst", t=2.5))
        assert [k.value for k in c.checks] == ["none:rst", "2-3 s"]

    def test_the_grace_period_ends_halfway_between_two_bytes(self) -> None:
        s = BY_ID["http.strict.body-trickle"]
        trickle = next(step for step in s.client if isinstance(step, Trickle))
        assert s.server is not None and s.server.request_body_timeout_s is not None
        assert s.server.request_body_timeout_s % trickle.every_s == trickle.every_s / 2
        assert trickle.count * trickle.every_s > 2 * s.server.request_body_timeout_s
        assert s.server.options() == {"request_body_timeout": "1.25"}

    def test_refserver_gets_the_flag_and_a_peer_without_one_its_default(self) -> None:
        from refserver.conformance.runner import missing_options
        from refserver.conformance.targets import ProcessServer

        wanted = {"request_body_timeout": "1.25"}
        argv = ProcessServer(BY_NAME["refserver"], "/venv/bin/python", 9, options=wanted).argv()
        assert argv[argv.index("--request-body-timeout") + 1] == "1.25"
        uvicorn = TargetRun(TargetInfo(BY_NAME["uvicorn"], True, "0.1"), "p")
        assert BY_NAME["uvicorn"].option_argv("request_body_timeout") is None
        assert missing_options(uvicorn, BY_ID["http.strict.body-trickle"]) == []


class TestErrorHandlingAfterAccept:
    """asgi spec, "Error Handling": the close after an exception is waited for over twice a 1 s polling
    of the app instances (daphne's), so the verdict does not flip with the machine's load."""

    def test_window_is_twice_a_one_second_poll(self) -> None:
        s = BY_ID["ws.app.raise-after-accept"]
        window = next(step.timeout for step in s.client if isinstance(step, WaitClose))
        assert window >= 4.0  # a 1 s poll, and as long again on a loaded machine, twice over

    def test_close_after_a_poll_passes(self) -> None:
        records = [hello(), app("ended", t=0.2, how="raised"), close_frame(1011, t=2.3)]
        assert cell("ws.app.raise-after-accept", records).verdict == V.PASS


# ---------------------------------------------------------------------- TLS

SERVER_SHA, CLIENT_SHA = "5e" * 32, "c1" * 32
FACTS = {
    "server_cert_sha256": SERVER_SHA,
    "client_cert_sha256": CLIENT_SHA,
    "client_subject": "CN=probe client,OU=client certificate,O=refserver conformance",
}


def tls_records(tls: dict[str, Any] | None, *, scheme: str = "https", body: str = "ok") -> list[Record]:
    """An HTTPS request whose scope carries ``tls`` (as the probe summarises it), after a
    handshake that negotiated TLS 1.3 with TLS_AES_256_GCM_SHA384."""
    scope: dict[str, Any] = {"scheme": scheme, "extensions": ["tls"] if tls is not None else []}
    if tls is not None:
        scope["tls"] = tls
    return [
        {"t": 0.0, "side": "runner", "ev": "tls_facts", "value": FACTS},
        client("tls_handshake", t=0.01, version=0x0304, cipher_suite=0x1302, server_cert_sha256=SERVER_SHA),
        hello(scope),
        client("response", t=0.2, status=200, headers=[], body=b(body)),
    ]


def extension(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "server_cert": {"pem_sha256": SERVER_SHA},
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1302,
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v != "<drop>"}


class TestTLSConnectionScope:
    """tls extension, "TLS Connection Scope": each entry against the certificates the run made and
    what the client's handshake negotiated."""

    def test_refserver_shape_passes(self) -> None:
        c = cell("tls.https.extension", tls_records(extension()))
        assert c.verdict == V.PASS
        assert check(c, "tls_version (the negotiated one)").value == "0x0304 (negotiated)"
        assert check(c, "server_cert").value == "the server's certificate"

    @pytest.mark.parametrize(
        ("changes", "label", "value"),
        [
            ({"server_cert": {"pem_sha256": "00" * 32}}, "server_cert", "another certificate"),
            ({"server_cert": {"not_pem": "MIIB"}}, "server_cert", "not PEM: MIIB"),
            ({"server_cert": "<drop>"}, "server_cert", "<absent>"),  # mandatory
            ({"tls_version": "TLSv1.3"}, "tls_version (the negotiated one)", '"TLSv1.3" (not an int)'),
            ({"tls_version": 0x0303}, "tls_version (the negotiated one)", "0x0303 (negotiated: 0x0304)"),
            ({"cipher_suite": "TLS_AES_256_GCM_SHA384"}, "cipher_suite (the negotiated one)", "*not an int)"),
            ({"cipher_suite": "<drop>"}, "cipher_suite (the negotiated one)", "<absent>"),  # mandatory
            ({"client_cert_error": "no certificate"}, "client_cert_error", "no certificate"),
        ],
    )
    def test_a_wrong_entry_fails(self, changes: dict[str, Any], label: str, value: str) -> None:
        c = cell("tls.https.extension", tls_records(extension(**changes)))
        assert V.matches(check(c, label).value, value)
        assert (check(c, label).verdict, c.verdict) == (V.FAIL, V.FAIL)

    @pytest.mark.parametrize(
        "changes",
        [
            {"server_cert": None, "tls_version": None, "cipher_suite": None},  # "unable to provide"
            {"client_cert_chain": "<drop>", "client_cert_name": "<drop>", "client_cert_error": "<drop>"},  # defaults
        ],
    )
    def test_what_the_spec_allows_passes(self, changes: dict[str, Any]) -> None:
        assert cell("tls.https.extension", tls_records(extension(**changes))).verdict == V.PASS

    def test_client_certificate_and_its_rfc_4514_name(self) -> None:
        sent = extension(client_cert_chain=[{"pem_sha256": CLIENT_SHA}], client_cert_name=FACTS["client_subject"])
        assert cell("tls.client-cert", tls_records(sent)).verdict == V.PASS
        reversed_name = dict(sent, client_cert_name="O=refserver conformance,OU=client certificate,CN=probe client")
        c = cell("tls.client-cert", tls_records(reversed_name))
        assert (check(c, "client_cert_name (RFC 4514)").verdict, c.verdict) == (V.FAIL, V.FAIL)
        c = cell("tls.client-cert", tls_records(dict(sent, client_cert_chain=[])))
        assert (check(c, "client_cert_chain (the client's first)").value, c.verdict) == ("[]", V.FAIL)

    def test_not_advertised_is_not_applicable(self) -> None:
        records = [*tls_records(None), app("unsupported", step=1, extension="tls")]
        assert cell("tls.https.extension", records).verdict == V.NA

    def test_no_extension_on_https_only_differs_but_the_scheme_must_be_https(self) -> None:
        records = [*tls_records(None, body="over tls"), client("eof", t=0.3, tls="close_notify")]
        c = cell("tls.https.scheme", records)
        assert (check(c, "tls extension advertised").verdict, c.verdict) == (V.DIFFERS, V.DIFFERS)
        records = [*tls_records(None, scheme="http", body="over tls"), client("eof", t=0.3, tls="close_notify")]
        c = cell("tls.https.scheme", records)
        assert (check(c, "scheme").verdict, c.verdict) == (V.FAIL, V.FAIL)

    def test_a_websocket_scope_without_a_scheme_fails_over_tls(self) -> None:  # daphne 4.2.3
        records = [hello({"scheme": "<absent>", "extensions": "<absent>"}), client("response", t=0.2, status=101)]
        c = cell("tls.wss.scheme", records)
        assert (check(c, "scheme").value, c.verdict) == ("<absent>", V.FAIL)


class TestWhenToUseThisExtension:
    """tls extension, "When to use this extension": "For non-TLS connections, the ASGI server is
    forbidden from providing this extension"."""

    def test_tls_extension_on_plain_text_fails(self) -> None:
        records = [hello({"scheme": "http", "extensions": ["tls"]}), client("response", t=0.2, status=200)]
        assert cell("tls.plain.http", records).verdict == V.FAIL

    @pytest.mark.parametrize("extensions", [[], ["http.response.trailers"], "<absent>"])
    def test_no_tls_extension_passes(self, extensions: Any) -> None:
        records = [hello({"scheme": "http", "extensions": extensions}), client("response", t=0.2, status=200)]
        assert cell("tls.plain.http", records).verdict == V.PASS


class TestRFC8446Section6_1ClosureAlerts:
    """RFC 8446 §6.1: close_notify before the TCP close; the client records how the session ended."""

    def closed(self, how: str, tls: str) -> V.Cell:
        records = [
            client("tls_handshake", t=0.01, version=0x0304, cipher_suite=0x1302),
            hello({"scheme": "wss", "extensions": []}),
            client("response", t=0.1, status=101),
            app("sent", step=1, kind="websocket.accept"),
            close_frame(1000),
            disconnect(1000, step=3),
            client(how, t=0.3, tls=tls),
        ]
        return cell("tls.wss.app-close", records)

    def test_close_notify_passes(self) -> None:
        assert self.closed("eof", "close_notify").verdict == V.PASS

    def test_bare_tcp_end_fails(self) -> None:  # granian 2.8.9, hypercorn -k trio 0.18.0
        c = self.closed("eof", "eof")
        label = "close_notify before the TCP close (RFC 8446 §6.1)"
        assert (check(c, label).value, c.verdict) == ("no close_notify (eof)", V.FAIL)

    def test_reset_fails_on_both_counts(self) -> None:  # daphne 4.2.3
        c = self.closed("rst", "none")
        assert check(c, "the server closes TCP (RFC 6455 §7.1.1)").verdict == V.DEVIATES
        assert c.verdict == V.FAIL


class TestRFC8446Section6_2PlainTextToTheTLSPort:
    """RFC 8446 §6.2: a fatal error closes the connection; the next connection is served. Whether
    the server logs the failure at error level, the spec does not say (only differs)."""

    def run(self, end: str, data: str = "", log: str = "none") -> V.Cell:
        records = [
            client("plain_answer", t=0.1, end=end, data=b(data)),
            hello({"scheme": "https"}),
            client("response", t=0.2, status=200, headers=[], body=b("still serving")),
            runner("server_log", log),
        ]
        return cell("tls.handshake.plain-http", records)

    @pytest.mark.parametrize(
        ("end", "data", "value"),
        [("eof", "", "eof"), ("eof", "\x15\x03\x03\x00\x02\x02\x46", "TLS alert, then eof"), ("rst", "", "rst")],
    )
    def test_closed_passes(self, end: str, data: str, value: str) -> None:
        c = self.run(end, data)
        assert (check(c, "client.plain_answer").value, c.verdict) == (value, V.PASS)

    def test_plain_400_then_close_passes(self) -> None:
        assert self.run("eof", "HTTP/1.1 400 Bad Request\r\n\r\n").verdict == V.PASS

    def test_held_open_fails(self) -> None:
        assert self.run("open").verdict == V.FAIL

    def test_error_log_only_differs(self) -> None:
        c = self.run("eof", log="error: ERROR: SSL handshake failed")
        assert c.verdict == V.DIFFERS


class TestTLSOptions:
    """Each target's own TLS flags; a target without a way to ask for client certificates is n/a."""

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            (
                "uvicorn",
                ["--ssl-certfile", "/c", "--ssl-keyfile", "/k", "--ssl-ca-certs", "/ca", "--ssl-cert-reqs", "2"],
            ),
            (
                "hypercorn",
                ["--certfile", "/c", "--keyfile", "/k", "--ca-certs", "/ca", "--verify-mode", "CERT_REQUIRED"],
            ),
            ("granian", ["--ssl-certificate", "/c", "--ssl-keyfile", "/k", "--ssl-ca", "/ca", "--ssl-client-verify"]),
            ("gunicorn", ["--certfile", "/c", "--keyfile", "/k", "--ca-certs", "/ca", "--cert-reqs", "2"]),
        ],
    )
    def test_flags_go_before_the_app(self, name: str, expected: list[str]) -> None:
        server = self.server(name, {"tls": "", "client_cert": ""})
        argv = server.argv()
        app_at = argv.index("refserver.conformance.probe:app")
        assert argv[app_at - len(expected) : app_at] == expected

    def test_daphne_endpoint_replaces_its_tcp_port(self) -> None:
        argv = self.server("daphne", {"tls": ""}).argv()
        assert "-b" not in argv and "-p" not in argv
        assert argv[-3:] == [
            "-e",
            "ssl:port=4242:interface=127.0.0.1:privateKey=/k:certKey=/c",
            "refserver.conformance.probe:app",
        ]

    def test_daphne_has_no_client_certificate_option(self) -> None:
        from refserver.conformance.runner import missing_options

        daphne = TargetRun(TargetInfo(BY_NAME["daphne"], True, "4.2.3"), "p")
        assert missing_options(daphne, BY_ID["tls.client-cert"]) == ["client_cert"]
        assert missing_options(daphne, BY_ID["tls.https.extension"]) == []

    def server(self, name: str, options: dict[str, str]) -> Any:
        from refserver.conformance.targets import ProcessServer, TLSFiles

        files = TLSFiles("/d", "/c", "/k", "/ca", "/cc", "/ck", "s", "c", "CN=x")
        server = ProcessServer(BY_NAME[name], "/venv/bin/python", 9, options=options, tls=files)
        server.port = 4242
        return server
