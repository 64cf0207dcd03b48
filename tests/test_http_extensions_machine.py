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
