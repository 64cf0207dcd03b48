"""Every citation of the ASGI spec names a heading that exists, in the one citation form.

The form is :data:`refserver.spec.headings.CITATION` (``www spec 2.5, "Disconnect - receive
event"``); the headings are those of :mod:`refserver.spec.headings`. Checked here: the
constants of :mod:`refserver.spec.sections`, every row of the machines' tables, every
tracked source and document, the conformance catalogue's references, and the sections of
the trace records of a real lifespan, HTTP request and WebSocket connection.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from refserver.conformance.catalogue import SCENARIOS
from refserver.protocol import http, lifespan, websocket
from refserver.spec import headings, sections
from refserver.testing import serve
from refserver.trace import TraceRecord
from tests.support import HTTPClient, WSClient

ROOT = Path(__file__).resolve().parent.parent
RFC = re.compile(r"RFC \d+ §\d+(?:\.\d+)*")
DECISION = re.compile(r"docs/decisions\.md#[a-z0-9-]+")
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()
problems = headings.problems


def is_citation(section: str) -> bool:
    """``section`` starts with a citation: a spec heading, an RFC section or a decision."""
    return any(p.match(section) for p in (headings.CITATION, RFC, DECISION))


class TestTheForm:
    @pytest.mark.parametrize(
        "text",
        [
            'www spec 2.4, "Disconnected Client - send exception"',
            'www spec, "Disconnected Client - send exception"',
            '(www, "Disconnect - receive event")',
            'lifespan spec 2.0, "Startup - send event"',
            'asgi spec, "Versioning"',
            'asgi extensions, "WebSocket Denial Response"',
            'www spec 2.5, "Send - send event" and "Close - sent event"',
            'lifespan, "Scope"',
            'TLS extension, "TLS Connection Scope"',
            "send() raises (www spec 2.4) and the room stops writing to it",
            "www spec 2.2: ``server`` is ``[path, None]``",
            'www "Accept - send event"',
            "www spec 2.5, 'HTTP Connection Scope'",
            'ASGI spec, "Error Handling"',
            "www spec 2.5, \u201cHTTP Connection Scope\u201d",
        ],
    )
    def test_a_wrong_citation_is_caught(self, text: str) -> None:
        assert problems(text), text

    @pytest.mark.parametrize(
        "text",
        [
            'www spec 2.5, "Disconnect - receive event"',
            'a receive (www spec 2.5, "Disconnect - receive\n    # event") that wraps',
            'lifespan spec 2.0, "Startup Complete - send event" and "Shutdown - receive event"',
            'asgi extensions, "Websocket Denial Response"',
            'tls extension, "TLS Connection Scope"',
            "RFC 6455 §7.1.5 and docs/decisions.md#disconnect-repeats",
        ],
    )
    def test_a_right_citation_passes(self, text: str) -> None:
        assert problems(text) == []


def test_every_constant_of_sections_is_a_citation_of_a_heading() -> None:
    constants = {name: value for name, value in vars(sections).items() if name.isupper() and isinstance(value, str)}
    assert len(constants) > 20
    for name, value in constants.items():
        assert is_citation(value), name
        assert problems(value) == [], name


def test_every_table_row_cites_a_heading_that_exists() -> None:
    rows = [row for machine in (websocket, http, lifespan) for row in machine.TABLE.values()]
    assert len(rows) > 100
    wrong = {row.section for row in rows if problems(row.section) or not is_citation(row.section)}
    assert wrong == set()


def tracked_texts() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    paths = [p for p in out.decode().split("\0") if p.endswith((".py", ".md", ".rst", ".txt", ".toml"))]
    return [p for p in paths if p != THIS and (ROOT / p).exists()]


def test_every_citation_in_the_code_and_the_docs_names_a_heading_that_exists() -> None:
    files = tracked_texts()
    assert {"README.md", "docs/guide.md", "docs/state-machines.md", "refserver/spec/sections.py"} <= set(files)
    wrong = [f"{path}: {problem}" for path in files for problem in problems((ROOT / path).read_text("utf-8"))]
    assert wrong == [], "\n".join(wrong)


def test_every_reference_of_the_catalogue_is_a_citation() -> None:
    refs = {ref for scenario in SCENARIOS for ref in scenario.refs}
    documents = re.compile(rf"^(?:{'|'.join(re.escape(d.prefix) for d in headings.DOCUMENTS)})$")
    assert sum(1 for ref in refs if headings.CITATION.match(ref)) > 20
    assert [ref for ref in refs if problems(ref) or not (is_citation(ref) or documents.match(ref))] == []


# ---------------------------------------------------------------- the trace of real runs


async def lifespan_http_websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    elif scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        await receive()  # http.disconnect, once the client has gone
    else:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
        await receive()
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError:
            pass  # recorded as an error


@pytest.mark.anyio
async def test_every_section_in_the_trace_of_a_real_run_names_a_heading_that_exists() -> None:
    records: list[TraceRecord]
    async with serve(lifespan_http_websocket, record=True, lifespan="on") as server:
        async with HTTPClient.open(server.port) as client:
            await client.send_request()
            response, body = await client.read_response()
            assert (response.status_code, body) == (200, b"ok")
        ws = await WSClient.connect(server.port)
        await ws.send_text("hi")
        assert await ws.next_message() == "hi"
        await ws.close(1000)
        await ws.expect_close()
        records = server.records
    scopes = {r.scope for r in records}
    assert scopes == {"lifespan", "http", "ws"}
    kinds = {r.kind for r in records}
    assert {"recv", "send", "state", "error"} <= kinds
    for record in records:
        assert problems(record.section) == [], record
        if record.kind in ("recv", "send", "state", "error", "ignored", "timer"):
            assert is_citation(record.section), record
    messages = [(r, str(r.message["type"])) for r in records if r.kind in ("recv", "send") and r.message]
    assert {message_type.split(".")[0] for _, message_type in messages} == {"lifespan", "http", "websocket"}
    for record, message_type in messages:
        assert record.section == sections.MESSAGES[message_type], record


def test_every_message_type_has_its_own_section() -> None:
    """The send events cite a "send event" heading, the receive events a "receive event" one."""
    for message_type, section in sections.MESSAGES.items():
        if message_type.startswith("websocket.http."):
            assert section == sections.WS_DENIAL
        elif message_type.startswith("http.response.") and message_type not in (
            "http.response.start",
            "http.response.body",
        ):
            assert section.startswith("asgi extensions, "), message_type  # an extension's own heading
        elif message_type in ("http.request", "http.disconnect", "lifespan.startup", "lifespan.shutdown") or (
            message_type in ("websocket.connect", "websocket.receive", "websocket.disconnect")
        ):
            assert section.endswith(' - receive event"'), message_type
        else:
            assert section.endswith(' - send event"'), message_type
