"""A maintainer's own server as a target: options through placeholders, ``--explain`` and the
reproduce commands with ``--target-command``, the reason a server went down in the text
output, and a built-in target with a missing dependency reported as not installed."""

from __future__ import annotations

import shlex
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from refserver.conformance import verdict as V
from refserver.conformance.catalogue import BY_ID
from refserver.conformance.cli import main, resolve_targets
from refserver.conformance.report import Report, Target, render_findings, render_junit, render_text
from refserver.conformance.runner import TargetRun, missing_options
from refserver.conformance.targets import (
    BY_NAME,
    OPTION_PLACEHOLDERS,
    ProcessServer,
    TargetInfo,
    TargetSpec,
    TLSFiles,
    custom_target,
    probe_target,
    target_args,
    target_option,
)

COMMAND = "mine={python} -m refserver {app} --host {host} --port {port} --no-access-log {options} --log-level warning"
OPTIONS = (
    "mine:tls=--ssl-certfile {certfile} --ssl-keyfile {keyfile}",
    "mine:client_cert=--ssl-ca-certs {ca_certs} --ssl-cert-reqs required",
    "mine:uds=--uds {uds}",
    "mine:root_path=--root-path {root_path}",
    "other:uds=--bind unix:{uds}",
)


def tls_files() -> TLSFiles:
    return TLSFiles("/d", "/d/server cert.pem", "/d/key.pem", "/d/ca.pem", "/d/c.pem", "/d/ck.pem", "", "", "")


class TestTargetOption:
    def test_parsed(self) -> None:
        assert target_option("mine:uds=--uds {uds}") == ("mine", "uds", "--uds {uds}")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("mine=--uds {uds}", "NAME:OPTION=ARGS"),
            ("mine:sockets=--uds {uds}", "unknown option 'sockets'"),
            ("mine:uds=--uds {socket}", r"unknown placeholder \{socket\}"),
        ],
    )
    def test_refused(self, text: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            target_option(text)

    def test_a_target_takes_its_own_options(self) -> None:
        spec = custom_target(COMMAND, OPTIONS)
        assert [name for name, _ in spec.options] == ["tls", "client_cert", "uds", "root_path"]
        assert {"uds", "root_path", "certfile", "keyfile", "ca_certs"} <= set(OPTION_PLACEHOLDERS)

    def test_option_for_no_command_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no --target-command of that name"):
            resolve_targets([], [COMMAND], sys.executable, options=["theirs:uds=--uds {uds}"])


class TestOptionsOnTheCommandLine:
    def server(self, options: dict[str, str], command: str = COMMAND) -> ProcessServer:
        server = ProcessServer(custom_target(command, OPTIONS), "/venv/bin/python", 9, options=options)
        server.port = 4242
        server.uds = "/tmp/x/probe.sock"
        server.tls = tls_files()
        return server

    def test_options_asked_for_go_where_the_command_says(self) -> None:
        argv = self.server({"tls": "", "root_path": "/mount"}).argv()
        assert shlex.split(argv[2]) == [
            *("exec", "/venv/bin/python", "-m", "refserver", "refserver.conformance.probe:app"),
            *("--host", "127.0.0.1", "--port", "4242", "--no-access-log"),
            *("--ssl-certfile", "/d/server cert.pem", "--ssl-keyfile", "/d/key.pem", "--root-path", "/mount"),
            *("--log-level", "warning"),
        ]

    def test_without_options_the_placeholder_is_empty(self) -> None:
        assert shlex.split(self.server({}).argv()[2])[-3:] == ["--no-access-log", "--log-level", "warning"]

    def test_without_the_placeholder_options_go_at_the_end(self) -> None:
        server = self.server({"uds": ""}, command="mine=srv {app} --port {port}")
        assert shlex.split(server.argv()[2])[-2:] == ["--uds", "/tmp/x/probe.sock"]

    def test_scenarios_needing_an_option_the_target_lacks_are_not_applicable(self) -> None:
        with_options = TargetRun(TargetInfo(custom_target(COMMAND, OPTIONS), True, "custom"), sys.executable)
        without = TargetRun(TargetInfo(custom_target(COMMAND), True, "custom"), sys.executable)
        for scenario in ("tls.client-cert", "http.scope.unix-socket", "http.scope.root-path"):
            assert missing_options(with_options, BY_ID[scenario]) == [], scenario
            assert missing_options(without, BY_ID[scenario]) != [], scenario


def custom_report(cells: list[V.Cell]) -> Report:
    spec = custom_target(COMMAND, OPTIONS)
    target = Target.of(TargetRun(TargetInfo(spec, True, "custom"), ""))
    return Report([BY_ID[c.scenario] for c in cells], [target], cells)


def reproduced(command: str) -> list[str]:
    """The arguments of a printed reproduce command, as a shell would pass them."""
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "refserver.conformance"]
    return words[3:]


class TestReproduceCommands:
    def cells(self) -> list[V.Cell]:
        bad = V.CheckResult("code", "app.disconnect.code", "1006", V.FAIL, "MUST", ("4001",), "4001")
        return [
            V.Cell("mine", "ws.close.code-reason", V.FAIL, [bad]),
            V.Cell("mine", "ws.close.empty", V.CRASH, error="the server did not start: exited with status 2"),
        ]

    def test_junit_reproduce_selects_the_command(self) -> None:
        root = ET.fromstring(render_junit(custom_report(self.cells())))
        failures: list[Any] = [case.find("failure") for case in root.iter("testcase")]
        line = next(x for x in (failures[0].text or "").splitlines() if x.startswith("reproduce: "))
        args = reproduced(line.removeprefix("reproduce: "))
        assert args[:2] == ["--explain", "ws.close.code-reason"]
        assert args[2:4] == ["--target-command", COMMAND]
        assert args[4:6] == ["--target-option", OPTIONS[0]]

    def test_target_args_parse_back(self) -> None:
        spec = custom_target(COMMAND, OPTIONS)
        args = shlex.split(target_args(spec))
        commands = [args[i + 1] for i, a in enumerate(args) if a == "--target-command"]
        options = [args[i + 1] for i, a in enumerate(args) if a == "--target-option"]
        assert custom_target(commands[0], options) == spec
        assert target_args(BY_NAME["uvicorn"]) == "--target uvicorn"

    def test_findings_reproduce_selects_the_command(self) -> None:
        text = render_findings(custom_report(self.cells()))
        line = next(x for x in text.splitlines() if "Reproduce: `" in x)
        assert reproduced(line.split("`")[1])[2:4] == ["--target-command", COMMAND]

    def test_text_output_says_why_the_server_went_down(self) -> None:
        text = render_text(custom_report(self.cells()))
        assert "mine / ws.close.empty: the server did not start: exited with status 2" in text


class TestMissingDependency:
    def test_uvicorn_needs_websockets(self) -> None:
        # uvicorn's default --ws websockets-sansio: without websockets every cell would crash
        assert "websockets" in (BY_NAME["uvicorn"].module or "").split(",")

    def test_reported_not_installed_with_the_package(self) -> None:
        spec = TargetSpec("x", "x", (), "refserver,refserver_no_such_module", "refserver")
        info = probe_target(spec, sys.executable)
        assert not info.installed
        assert info.reason.endswith("missing refserver_no_such_module; pip install refserver_no_such_module")


def test_explain_runs_a_target_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--explain`` with ``--target-command`` (refserver started from a shell command) and a
    root_path through ``--target-option``: both traces, and the option on the command line."""
    out = tmp_path / "explain.txt"
    status = main(
        [
            *("--explain", "http.scope.root-path", "--python", sys.executable, "--out", str(out)),
            *("--target-command", COMMAND, "--target-option", OPTIONS[3]),
        ]
    )
    assert status == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert "mine: pass" in text and "refserver: pass" in text
    assert "--root-path /mount" in text
    assert 'rests on MUST: www spec 2.5, "HTTP Connection Scope"' in text
