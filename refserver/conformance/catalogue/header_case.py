"""Response header names that are not lower-case (www spec 2.5, "Response Start - send event":
"Header names must be lowercased."): what each server does with them
(docs/decisions.md#header-names-lower-case, #app-violations)."""

from __future__ import annotations

from refserver.conformance.catalogue.common import CORE_ERR, G_HTTP_FLOW, HTTP_START, UNSPEC, ck, http
from refserver.conformance.model import a_receive, a_send, c_request, c_wait_app, c_wait_responses

MIXED_CASE_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [[b"Content-Type", b"text/plain"], [b"X-Mixed-Case", b"m"]],
}

SCENARIOS = [
    http(
        "http.send.header-name-case",
        "http.response.start with mixed-case header names (Content-Type)",
        "Header names must be lower-case; refserver raises from send() (a 500) unless --app-violations warn "
        "sends them lower-cased, where other servers send them on.",
        G_HTTP_FLOW,
        (HTTP_START, CORE_ERR, "RFC 9110 §5.1"),
        UNSPEC,
        client=(c_request(), c_wait_responses(1), c_wait_app("ended")),
        app=(
            a_receive(),
            a_send(MIXED_CASE_START),
            a_send({"type": "http.response.body", "body": b"ok", "more_body": False}),
        ),
        checks=(
            ck(
                "app.step",
                "returned",
                "error:*",
                choice="error:ASGIProtocolError",
                step=1,
                show=True,
                label="send() of the mixed-case start",
            ),
            ck("client.status", "200", "500", choice="500", show=True, label="status"),
            ck("client.header", '["m"]', "[]", "no-response", choice="[]", name="x-mixed-case", show=True),
        ),
    ),
]
