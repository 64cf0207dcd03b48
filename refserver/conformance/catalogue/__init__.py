"""The scenario catalogue: every scenario the harness runs, as data.

``SCENARIOS`` is the ordered list; ``BY_ID`` finds one by id (the probe app uses it to
find the app script named in the request path). Standard library only.
"""

from __future__ import annotations

from refserver.conformance.catalogue import deployment as _deployment
from refserver.conformance.catalogue import extended as _extended
from refserver.conformance.catalogue import http as _http
from refserver.conformance.catalogue import strict as _strict
from refserver.conformance.catalogue import tls as _tls
from refserver.conformance.catalogue import websocket as _websocket
from refserver.conformance.catalogue.common import G_META, GROUP_ORDER, MUST, UNSPEC, ck
from refserver.conformance.model import Scenario, a_accept, a_close, a_receive, a_respond, c_handshake, c_request
from refserver.conformance.model import c_wait_app as _wait_app

# Used by the runner to read what a target advertises; not part of the catalogue.
HELLO_HTTP = Scenario(
    "_hello.http",
    "hello (http)",
    "",
    "",
    (),
    UNSPEC,
    "http",
    (c_request(), _wait_app("ended")),
    (a_receive(), a_respond()),
    (),
)
HELLO_WS = Scenario(
    "_hello.ws",
    "hello (websocket)",
    "",
    "",
    (),
    UNSPEC,
    "websocket",
    (c_handshake(), _wait_app("ended")),
    (a_receive(), a_accept(), a_close()),
    (),
)

META_CLAIMS = Scenario(
    "meta.spec-version-claims",
    "The spec_version a target advertises is kept",
    "A server advertising a www spec version promises every rule up to it; a broken rule of an advertised "
    "version is a failure of its own.",
    G_META,
    ('asgi spec, "Applications"', 'www spec 2.5, "Spec Versions"'),
    MUST,
    "meta",
    (),
    (),
    (ck("claims", "kept"),),
    peer_case=26,
    meta=True,
)

SCENARIOS: list[Scenario] = [
    *_websocket.SCENARIOS,
    *_http.SCENARIOS,
    *_extended.SCENARIOS,
    *_deployment.SCENARIOS,
    *_tls.SCENARIOS,
    *_strict.SCENARIOS,
    META_CLAIMS,
]
BY_ID: dict[str, Scenario] = {s.id: s for s in (*SCENARIOS, HELLO_HTTP, HELLO_WS)}

if len(BY_ID) != len(SCENARIOS) + 2:  # pragma: no cover - a catalogue error
    raise RuntimeError("duplicate scenario ids in the catalogue")

__all__ = ["BY_ID", "GROUP_ORDER", "HELLO_HTTP", "HELLO_WS", "META_CLAIMS", "MUST", "SCENARIOS"]
