"""The command line's answer to a wrong value, an unknown option or a uvicorn habit: one line on
stderr naming the option typed, then "see refserver --help", status 2, before the app is loaded
or anything listens. In-process (cli.main) except one run as a process."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import refserver
import refserver.cli
import refserver.runtime.main

REPO = Path(__file__).resolve().parent.parent
APP = "tests.apps.basic:app"
HINT = "; see refserver --help\n"


@pytest.fixture
def never_serves(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """cli.main() in-process, failing the test if it ever gets as far as serving."""

    def run_until_signalled(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("the command line was accepted and the server started")

    monkeypatch.setattr(refserver.runtime.main, "run_until_signalled", run_until_signalled)
    logger = logging.getLogger("refserver")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    monkeypatch.chdir(REPO)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def usage_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run cli.main(args), expect status 2, nothing on stdout, one line on stderr; return it."""
    with pytest.raises(SystemExit) as info:
        refserver.cli.main(args)
    out, err = capsys.readouterr()
    assert (info.value.code, out) == (2, "")
    assert err.endswith(HINT) and err.count("\n") == 1, err
    return err.removeprefix("refserver: error: ").removesuffix(HINT)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--shutdown-timeout", "nan"],
            "--shutdown-timeout: expected a finite number of seconds, 0 or more, not 'nan'",
        ),
        (
            ["--shutdown-timeout", "inf"],
            "--shutdown-timeout: expected a finite number of seconds, 0 or more, not 'inf'",
        ),
        (
            ["--timeout-keep-alive", "-1"],
            "--timeout-keep-alive: expected a finite number of seconds, 0 or more, not '-1'",
        ),
        (
            ["--ws-ping-interval", "NaN"],
            "--ws-ping-interval: expected a finite number of seconds, 0 or more, not 'NaN'",
        ),
        (["--ws-ping-timeout", "soon"], "--ws-ping-timeout: expected a number of seconds, not 'soon'"),
        (["--ws-close-timeout=-inf"], "--ws-close-timeout: expected a finite number of seconds, 0 or more, not '-inf'"),
        (
            ["--h11-max-incomplete-event-size", "0"],
            "--h11-max-incomplete-event-size: expected a whole number, 1 or more, not '0'",
        ),
        (["--ws-max-size", "0"], "--ws-max-size: expected a whole number, 1 or more, not '0'"),
        (["--ws-max-size", "1.5"], "--ws-max-size: expected a whole number, not '1.5'"),
        (["--backlog", "0"], "--backlog: expected a whole number, 1 or more, not '0'"),
        (["--limit-concurrency", "-3"], "--limit-concurrency: expected a whole number, 1 or more, not '-3'"),
        (["--port", "70000"], "--port: expected a port in 0..65535, not '70000'"),
        (["--port", "http"], "--port: expected a port number, not 'http'"),
        (["--port"], "--port: expected a value"),
        (["--lifespan", "maybe"], "--lifespan: expected auto, on or off, not 'maybe'"),
        (["--backend", "uvloop"], "--backend: expected asyncio or trio, not 'uvloop'"),
        (["--trace-format", "json"], "--trace-format: expected text or jsonl, not 'json'"),
        (
            ["--log-level", "verbose"],
            "--log-level: expected critical, error, warning, info, debug or trace, not 'verbose'",
        ),
        (["--ws-per-message-deflate", "maybe"], "--ws-per-message-deflate: expected true or false, not 'maybe'"),
        (["--ssl-cert-reqs", "3"], "--ssl-cert-reqs: expected 0 (none), 1 (optional) or 2 (required), not '3'"),
        # Config's checks across options name the options, not Config's fields.
        (["--ssl-keyfile", "key.pem"], "--ssl-keyfile needs --ssl-certfile"),
        (
            ["--ssl-certfile", "cert.pem", "--ssl-cert-reqs", "2"],
            "--ssl-cert-reqs asks for client certificates: give --ssl-ca-certs to verify them against",
        ),
        # No abbreviations: a prefix of an option is an unknown option, with the option it may mean.
        (["--ws-max", "5"], "unknown option --ws-max (did you mean --ws-max-size?)"),
        (["--shutdown", "5"], "unknown option --shutdown (did you mean --shutdown-timeout?)"),
        (["--prot", "5"], "unknown option --prot (did you mean --port?)"),
        (["--colour"], "unknown option --colour"),
        (["other:app"], "unexpected argument 'other:app' (the app is given once, as MODULE:ATTR)"),
    ],
)
def test_a_wrong_value_or_unknown_option_is_one_line_naming_the_option(
    args: list[str], line: str, never_serves: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert usage_error([APP, *args], capsys) == line


def test_no_app_is_one_line(never_serves: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(["--port", "0"], capsys) == "no app given: name it as MODULE:ATTR (for example main:app)"


# uvicorn options a user brings along, each with the gist of refserver's answer.
UVICORN_HABITS = [
    (["--workers", "4"], "one process by design"),
    (["--proxy-headers"], "X-Forwarded-*"),
    (["--forwarded-allow-ips", "*"], "X-Forwarded-*"),
    (["--log-config", "log.yaml"], "--log-level"),
    (["--loop", "uvloop"], "--backend asyncio|trio"),
    (["--ws", "wsproto"], "one WebSocket implementation"),
    (["--http", "httptools"], "one HTTP/1.1 implementation"),
    (["--timeout-graceful-shutdown", "5"], "use --shutdown-timeout"),
    (["--timeout-graceful-shutdown=5"], "use --shutdown-timeout"),
    (["--env-file", ".env"], "no environment file"),
    (["--fd", "3"], "--host/--port or --uds"),
]


@pytest.mark.parametrize(("args", "gist"), UVICORN_HABITS, ids=[a[0] for a, _ in UVICORN_HABITS])
def test_a_uvicorn_option_gets_a_one_line_answer(
    args: list[str], gist: str, never_serves: None, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = args[0].partition("=")[0]
    line = usage_error([APP, *args], capsys)
    assert line.startswith(f"{flag} is a uvicorn option: "), line
    assert gist in line


def test_the_readme_has_a_coming_from_uvicorn_table() -> None:
    readme = (REPO / "README.md").read_text()
    assert "## Coming from uvicorn" in readme
    section = readme.split("## Coming from uvicorn", 1)[1].split("\n## ", 1)[0]
    for args, _ in UVICORN_HABITS:
        assert f"`{args[0].partition('=')[0]}" in section, args[0]


def test_help_hides_the_uvicorn_answers_and_lists_every_option() -> None:
    text = refserver.cli.build_parser().format_help()
    assert "--workers" not in text
    for flag in refserver.cli.FLAG_OF_FIELD.values():
        assert flag in text


def test_every_option_stores_into_the_config_field_it_names() -> None:
    # config_from_args reads each field by name, and error messages name the option of a field.
    dest_of_flag = {
        flag: action.dest for action in refserver.cli.build_parser()._actions for flag in action.option_strings
    }
    assert {field: dest_of_flag[flag] for field, flag in refserver.cli.FLAG_OF_FIELD.items()} == {
        field: field for field in refserver.cli.FLAG_OF_FIELD
    }


@pytest.mark.parametrize("name", ["shutdown_timeout_s", "timeout_keep_alive_s", "ws_ping_interval_s"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_config_refuses_nan_and_inf_durations(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number, 0 or more, not {value!r}$"):
        refserver.Config.from_options(**{name: value})


def test_config_refuses_a_zero_head_limit() -> None:
    with pytest.raises(ValueError, match=r"^h11_max_incomplete_event_size_bytes must be positive$"):
        refserver.Config(h11_max_incomplete_event_size_bytes=0)


def test_as_a_process_a_wrong_value_stops_before_the_app_starts() -> None:
    """The process never runs lifespan startup (which prints a line) and never listens."""
    done = subprocess.run(
        [sys.executable, "-m", "refserver", APP, "--port", "0", "--shutdown-timeout", "nan"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "refserver: error: --shutdown-timeout: expected a finite number of seconds, 0 or more, not 'nan'" + HINT
    )


def test_a_trace_file_that_cannot_be_opened_is_one_line(
    never_serves: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "no-such-dir" / "trace.jsonl"
    assert refserver.cli.main([APP, "--trace-file", str(path)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == (
        "",
        f"refserver: error: --trace-file: cannot open {path}: [Errno 2] No such file or directory" + HINT,
    )
