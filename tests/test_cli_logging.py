"""The command line's logging: an explicit --trace always prints, whatever --log-level, and
``--trace-format jsonl`` on stderr is JSON lines (no logging prefix). The server is the real
one, configured as cli.main configures it."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator

import anyio
import pytest

import refserver.cli
from refserver.logs import trace_log
from refserver.testing import serve
from tests.apps.basic import app
from tests.support import http_request

pytestmark = pytest.mark.anyio


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """configure_logging changes the "refserver" and "refserver.trace" loggers; put them back."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in (logging.getLogger("refserver"), trace_log)]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


async def serve_one_request(args: list[str]) -> None:
    """Parse ``args`` as cli.main does, configure logging, serve one GET / with that config."""
    _, config = refserver.cli.parse_command_line(["tests.apps.basic:app", *args])
    refserver.cli.configure_logging(config)
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    del options["backend"]  # the test's own loop
    async with serve(app, **{**options, "port": 0, "lifespan": "off"}) as server:
        with anyio.fail_after(5):
            response, _ = await http_request(server.port, "GET", "/")
    assert response.status_code == 200


@pytest.mark.parametrize("level", ["warning", "error", "critical"])
async def test_an_explicit_trace_prints_at_any_log_level(
    level: str, anyio_backend: str, logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    await serve_one_request(["--trace", "--log-level", level])
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("INFO     refserver.trace: ") and "http.response.start" in line for line in lines), lines
    assert not any("refserver.access" in line for line in lines)  # the level still hides the access log


async def test_jsonl_trace_on_stderr_is_json_lines(
    anyio_backend: str, logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    await serve_one_request(["--trace", "--trace-format", "jsonl", "--no-access-log"])
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # each line is one JSON value, no prefix
    assert records and all(isinstance(r, dict) for r in records)
    assert any((r["message"] or {}).get("type") == "http.response.start" for r in records), records


async def test_without_trace_the_trace_logger_follows_the_log_level(
    anyio_backend: str, logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    await serve_one_request(["--log-level", "warning"])
    assert capsys.readouterr().err == ""
