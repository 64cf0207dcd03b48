"""Response header names that are not lower-case (www spec 2.5, "Response Start - send event":
"Header names must be lowercased."): what each server does with them
(docs/decisions.md#header-names-lower-case, #app-violations)."""

from __future__ import annotations

from refserver.conformance.catalogue.common import CORE_ERR, G_HTTP_FLOW, HTTP_START, UNSPEC, check, http
from refserver.conformance.steps import Receive, Request, Send, WaitApp, WaitResponses

MIXED_CASE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [[b"Content-Type", b"text/plain"], [b"X-Mixed-Case", b"m"]],
}

SCENARIOS = [
    http(
        id="http.response.header-name-case",
        title="http.response.start with mixed-case header names (Content-Type)",
        lesson="Header names must be lower-case; refserver raises from send() (a 500) unless --app-violations warn "
        "sends them lower-cased, where other servers send them on.",
        group=G_HTTP_FLOW,
        refs=(HTTP_START, CORE_ERR, "RFC 9110 §5.1"),
        level=UNSPEC,
        client=(Request(), WaitResponses(1), WaitApp("ended")),
        app=(
            Receive(),
            Send(MIXED_CASE_START),
            Send({"type": "http.response.body", "body": b"ok", "more_body": False}),
        ),
        checks=(
            check(
                "app.step",
                "returned",
                "error:*",
                choice="error:ASGIProtocolError",
                step=1,
                show=True,
                label="send() of the mixed-case start",
            ),
            check("client.status", "200", "500", choice="500", show=True, label="status"),
            check("client.header", '["m"]', "[]", "no-response", choice="[]", name="x-mixed-case", show=True),
        ),
    ),
]
