"""The conformance harness around the verdicts: starting a maintainer's own server, the exit
status of ``--strict``, and the reports (JSON read back, JUnit, ``--diff``)."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from refserver.conformance import verdict as V
from refserver.conformance.catalogue import BY_ID
from refserver.conformance.cli import exit_status, main
from refserver.conformance.report import (
    Report,
    Target,
    findings,
    load_json,
    render_diff,
    render_findings,
    render_json,
    render_junit,
)
from refserver.conformance.runner import ReportHub, TargetRun
from refserver.conformance.targets import (
    PLACEHOLDERS,
    ProcessServer,
    TargetInfo,
    TargetSpec,
    custom_target,
    shell_argv,
)


class TestShellCommand:
    """A --target-command is exec'd when it can be, so SIGTERM reaches the server itself."""

    def test_simple_command_is_execd(self) -> None:
        assert shell_argv("uvicorn app --port 1") == (["/bin/sh", "-c", "exec uvicorn app --port 1"], False)

    def test_assignments_go_through_env(self) -> None:
        argv, group = shell_argv("FOO=1 BAR=x uvicorn app")
        assert (argv[2], group) == ("exec env FOO=1 BAR=x uvicorn app", False)

    @pytest.mark.parametrize("command", ["cd /tmp && uvicorn app", "uvicorn app | tee log", "a; b", "(uvicorn app)"])
    def test_compound_command_signals_the_group(self, command: str) -> None:
        assert shell_argv(command) == (["/bin/sh", "-c", command], True)

    def test_quoted_operators_are_words(self) -> None:
        assert shell_argv("server --name 'a;b'")[1] is False

    def test_placeholders(self) -> None:
        spec = custom_target("mine=srv {app} --port {port} --ping {ping_interval} --py {python}")
        server = ProcessServer(spec, "/venv/bin/python", 9, ping_interval_s=0.5)
        server.port = 4242
        assert server.argv()[2] == (
            "exec srv refserver.conformance.probe:app --port 4242 --ping 0.5 --py /venv/bin/python"
        )
        assert {"app", "host", "port", "python", "ping_interval", "ping_interval_int", "ping_timeout"} <= set(
            PLACEHOLDERS
        )

    def test_unknown_placeholder_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"unknown placeholder \{prot\}"):
            custom_target("mine=srv {app} --port {port} {prot}")


@pytest.mark.anyio
async def test_sigterm_reaches_the_server_behind_the_shell(anyio_backend: str) -> None:
    """The PID we started is the server itself (not sh), so a graceful SIGTERM works, and the
    interpreter's directory is on PATH."""
    spec = custom_target("mine=python -m refserver {app} --port {port} --log-level warning")
    server = ProcessServer(spec, sys.executable, 9)
    with anyio.fail_after(30):
        await server.start()
        try:
            assert server.exit_reason is None, server.log_tail()
            assert server.proc is not None
            cmdline = Path(f"/proc/{server.proc.pid}/cmdline").read_bytes().split(b"\0")
            assert b"refserver" in cmdline and not cmdline[0].endswith(b"sh")
            assert server.command.startswith("/bin/sh -c 'exec python -m refserver")
            await server.shutdown()
            assert await server.wait_exit(10.0) == 0
        finally:
            await server.stop()
            server.cleanup()


@pytest.mark.anyio
async def test_gates_opened_by_many_lanes_at_once_all_arrive(anyio_backend: str) -> None:
    """Lanes share the hub's one UDP socket: gates opened at the same moment are sent one after
    the other (two writers at once used to make the harness fail the cell)."""
    lanes = 20
    async with (
        await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as hub_sock,
        await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as app_sock,
    ):
        hub = ReportHub(hub_sock)
        address = app_sock.extra(anyio.abc.SocketAttribute.local_address)
        assert isinstance(address, tuple)
        for lane in range(lanes):
            hub.instances[f"t{lane}"] = {(str(address[0]), int(address[1])): 0}
        sent: list[int] = []

        async def open_one(lane: int) -> None:
            sent.append(await hub.open_gate(f"t{lane}", f"gate{lane}"))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for lane in range(lanes):
                    tg.start_soon(open_one, lane)
            names: set[str] = set()
            while len(names) < lanes:
                data, _ = await app_sock.receive()
                names.add(json.loads(data)["gate"])
        assert sent == [1] * lanes
        assert names == {f"gate{lane}" for lane in range(lanes)}


def _target(name: str, installed: bool = True) -> Target:
    return Target.of(
        TargetRun(TargetInfo(TargetSpec(name, name, ("x",)), installed, "1", "" if installed else "missing"), "")
    )


def _report(cells: list[V.Cell], names: tuple[str, ...] = ("a", "b")) -> Report:
    scenarios = [BY_ID["ws.close.empty"], BY_ID["ws.close.code-reason"]]
    return Report(scenarios, [_target(n) for n in names], cells)


def _check(value: str, verdict: str) -> V.CheckResult:
    return V.CheckResult("code", "app.disconnect.code", value, verdict, "SHOULD", ("1005",), "1005", show=True)


class TestStrict:
    def test_crash_fails_strict(self) -> None:
        report = _report([V.Cell("a", "ws.close.empty", V.CRASH, error="the server process exited with status 1")])
        assert exit_status(report, ["a"], check_refserver=False) == 1

    def test_fail_fails_strict_and_deviates_does_not(self) -> None:
        fail = _report([V.Cell("a", "ws.close.empty", V.FAIL, [_check("1006", V.FAIL)])])
        deviates = _report([V.Cell("a", "ws.close.empty", V.DEVIATES, [_check("1006", V.DEVIATES)])])
        assert exit_status(fail, ["a"], check_refserver=False) == 1
        assert exit_status(deviates, ["a"], check_refserver=False) == 0

    def test_harness_fault_is_reported_apart(self, capsys: pytest.CaptureFixture[str]) -> None:
        report = _report([V.Cell("a", "ws.close.empty", V.ERROR, error="harness error: KeyError")])
        assert exit_status(report, ["a"], check_refserver=False) == 3
        assert "fault of the harness itself" in capsys.readouterr().err

    def test_target_not_installed_fails_strict(self) -> None:
        report = Report([BY_ID["ws.close.empty"]], [_target("a", installed=False)], [])
        assert exit_status(report, ["a"], check_refserver=False) == 1


class TestReports:
    def cells(self) -> list[V.Cell]:
        return [
            V.Cell("a", "ws.close.empty", V.PASS, [_check("1005", V.PASS)], command="srv --port 1"),
            V.Cell("b", "ws.close.empty", V.DEVIATES, [_check("1006", V.DEVIATES)], command="other --port 2"),
            V.Cell("a", "ws.close.code-reason", V.PASS, [_check("4001", V.PASS)]),
            V.Cell("b", "ws.close.code-reason", V.CRASH, error="the server process was killed by SIGSEGV"),
        ]

    def test_json_reads_back_without_a_second_run(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        report = _report(self.cells())
        path = tmp_path / "r.json"
        path.write_text(json.dumps(render_json(report)), encoding="utf-8")
        again = load_json(path)
        assert [(c.target, c.scenario, c.verdict, c.command) for c in again.cells] == [
            (c.target, c.scenario, c.verdict, c.command) for c in report.cells
        ]
        assert again.totals("b") == report.totals("b")
        assert [c.summary for c in again.cells] == [c.summary for c in report.cells]
        capsys.readouterr()
        assert main(["--from-json", str(path), "--format", "markdown", "--out", str(tmp_path / "r.md")]) == 0
        assert capsys.readouterr().out == ""  # written to the file only
        assert main(["--from-json", str(path), "--format", "junit"]) == 0
        assert capsys.readouterr().out.startswith("<?xml")
        text = (tmp_path / "r.md").read_text(encoding="utf-8")
        assert "| b | " in text and "crash: the server process was killed by SIGSEGV" in text
        assert "`srv --port 1`" in text

    def test_junit_one_case_per_scenario(self) -> None:
        root = ET.fromstring(render_junit(_report(self.cells())))
        suites = {s.get("name"): s for s in root}
        assert set(suites) == {"a", "b"}
        cases: list[Any] = list(suites["b"])
        assert [c.get("name", "").split(":")[0] for c in cases] == ["ws.close.empty", "ws.close.code-reason"]
        assert cases[0].find("failure") is None and cases[0].find("system-out") is not None
        failure = cases[1].find("failure")
        assert failure is not None and failure.get("type") == V.CRASH
        assert (suites["b"].get("failures"), suites["a"].get("failures")) == ("1", "0")

    def test_diff_lists_only_what_differs(self) -> None:
        cells = self.cells()
        cells[2] = V.Cell("a", "ws.close.code-reason", V.CRASH, error="the server process was killed by SIGSEGV")
        text = render_diff(_report(cells), "a", "b")
        lines = [line.split()[0] for line in text.splitlines()[2:] if line.startswith("ws.")]
        assert lines == ["ws.close.empty"]
        assert "1 scenarios differ, 1 are the same" in text


class TestFindings:
    """docs/peer-findings.md: one finding per root cause (same server, same wrong value)."""

    def test_grouped_by_root_cause_across_scenarios_and_variants(self) -> None:
        def bad(target: str, scenario: str, value: str) -> V.Cell:
            check = V.CheckResult("code", "app.disconnect.code", value, V.FAIL, "MUST", ("1000",), "1000")
            return V.Cell(target, scenario, V.FAIL, [check], advertised="2.3")

        cells = [
            bad("hypercorn", "ws.close.code-reason", "1006"),
            bad("hypercorn-trio", "ws.close.echo", "1006"),
            bad("hypercorn", "ws.close.empty", "1000"),
            bad("refserver", "ws.close.echo", "1006"),  # refserver is never a finding
            V.Cell("hypercorn", "ws.close.prompt", V.DEVIATES, []),  # an unclaimed SHOULD is not either
            V.Cell("granian", "ws.close.echo", V.CRASH, error="the server process exited with status 1; log: x"),
        ]
        report = Report(
            [BY_ID[i] for i in ("ws.close.code-reason", "ws.close.echo", "ws.close.empty", "ws.close.prompt")],
            [_target(n) for n in ("refserver", "hypercorn", "hypercorn-trio", "granian")],
            cells,
        )
        groups = findings(report)
        assert [(g.family, g.kind, g.value, len(g.cells)) for g in groups] == [
            ("granian", "crash", "the server process exited with status 1", 1),
            ("hypercorn", "app.disconnect.code", "1006", 2),
            ("hypercorn", "app.disconnect.code", "1000", 1),
        ]
        text = render_findings(report)
        assert "3 findings in 4 cells." in text
        assert "python -m refserver.conformance --explain ws.close.echo --target hypercorn-trio" in text


def test_docs_show_portable_command_lines() -> None:
    from refserver.conformance.report import _portable

    assert _portable("/venv/bin/python -m gunicorn --bind 127.0.0.1:58867 app") == (
        "python -m gunicorn --bind 127.0.0.1:PORT app"
    )
    assert _portable("/usr/bin/python3.11 -m refserver app --port 44107") == "python -m refserver app --port PORT"


class TestTLSConnectionScopeSummary:
    """The probe reports the scope's ``tls`` extension (tls extension, "TLS Connection Scope")
    with its certificates as SHA-256 fingerprints of their DER, and the certificates the run
    makes are the ones the checks compare with."""

    def test_certificates_become_fingerprints(self) -> None:
        from refserver.conformance.probe import _tls_summary
        from refserver.conformance.targets import make_tls_files

        files = make_tls_files()
        try:
            server_pem = Path(files.certfile).read_text()
            client_pem = Path(files.client_certfile).read_text()
            summary = _tls_summary(
                {
                    "server_cert": server_pem,
                    "client_cert_chain": (client_pem, "not a certificate"),
                    "client_cert_name": files.client_subject,
                    "client_cert_error": None,
                    "tls_version": 0x0304,
                    "cipher_suite": 0x1301,
                }
            )
            assert summary == {
                "server_cert": {"pem_sha256": files.server_cert_sha256},
                "client_cert_chain": [{"pem_sha256": files.client_cert_sha256}, {"not_pem": "not a certificate"}],
                "client_cert_name": "CN=probe client,OU=client certificate,O=refserver conformance",
                "client_cert_error": None,
                "tls_version": 0x0304,
                "cipher_suite": 0x1301,
            }
            assert all(Path(p).exists() for p in (files.keyfile, files.ca_certs, files.client_keyfile))
            assert Path(files.keyfile).read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
        finally:
            files.cleanup()
        assert not Path(files.directory).exists()
