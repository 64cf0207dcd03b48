"""Real Django (``get_asgi_application()``, tests/apps/django_project.py) on refserver. Django
writes ``Content-Type``, which breaks "Header names must be lowercased" (www spec 2.5, "Response
Start - send event"): with the default ``--app-violations raise`` every response is a 500 whose
error names the rule and says that ``--app-violations warn`` exists; with ``warn`` it answers 200,
the names lower-cased, and one warning names the rule however many requests there are
(docs/decisions.md#header-names-lower-case, #app-violations). Django runs on asyncio only."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from refserver.testing import serve_in_thread
from refserver.violations import Violation

pytest.importorskip("django", reason="Django is in the test extra: pip install '.[test]'")

RULE = 'www spec 2.5, "Response Start - send event"'
PROBLEM = "has a header name b'Content-Type' that is not lower-case"


def app() -> Any:
    from tests.apps.django_project import application

    return application


def refserver_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("refserver") and r.levelno >= level]


def test_with_warn_django_answers_200_and_one_warning_names_the_header_rule(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "refserver")
    with serve_in_thread(app(), app_violations="warn") as server, httpx.Client(base_url=server.http_url) as client:
        responses = [client.get("/") for _ in range(3)]
        raw = httpx.get(server.http_url + "/")
    assert [(r.status_code, r.text, r.headers["content-type"]) for r in responses] == [
        (200, "hello from django", "text/plain")
    ] * 3
    assert raw.status_code == 200
    [warning] = refserver_lines(caplog, logging.WARNING)
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        f"http.response.start {PROBLEM}; sent as b'content-type' ({RULE}); "
        "later breaches of this rule are served alike without a warning"
    )
    served = Violation("http.response.start", PROBLEM, RULE, "AWAITING_START", "sent as b'content-type'")
    assert server.violations == [served] * 4


def test_by_default_django_answers_500_and_the_error_has_the_one_line_hint(caplog: pytest.LogCaptureFixture) -> None:
    with serve_in_thread(app()) as server:
        response = httpx.get(server.http_url + "/")
    assert response.status_code == 500
    [error] = refserver_lines(caplog, logging.ERROR)
    assert error.exc_info is not None
    text = str(error.exc_info[1])
    assert text == (
        f"http.response.start {PROBLEM} (state: AWAITING_START; {RULE}); "
        "--app-violations warn would serve it (sent as b'content-type')"
    )
    assert "\n" not in text
    assert server.violations == [Violation("http.response.start", PROBLEM, RULE, "AWAITING_START", None)]
