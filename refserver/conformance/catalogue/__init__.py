"""The scenario catalogue: every scenario the harness runs, as data, one module per protocol:
``websocket``, ``http`` (and ``http_wire``: what the bytes on the wire must be), ``lifespan``
(and ``lifespan_timing``: when shutdown comes and how long it is waited for), ``tls``, and
``deployment`` (what needs the server started with an option: a Unix socket, a root_path; and
bad or heavy input). ``http_wire`` and ``lifespan_timing`` carry the rules of their levels
themselves.

A scenario is a call of ``ws(...)``, ``http(...)`` or ``lifespan(...)`` (``common.py``) with
keyword arguments: the client script and the app script (typed steps of ``steps.py``), and the
checks (``check(observable, *allowed, ...)``). Its level, and any check's own level, names the
sentence it rests on in ``grading.py`` (the sentences are in ``rules.py``).

``SCENARIOS`` is the ordered list; ``BY_ID`` finds one by id (the probe app uses it to
find the app script named in the request path). Standard library only.
"""

from __future__ import annotations

from refserver.conformance.catalogue import deployment as _deployment
from refserver.conformance.catalogue import header_case as _header_case
from refserver.conformance.catalogue import http as _http
from refserver.conformance.catalogue import http_wire as _http_wire
from refserver.conformance.catalogue import lifespan as _lifespan
from refserver.conformance.catalogue import lifespan_timing as _lifespan_timing
from refserver.conformance.catalogue import scope_keys as _scope_keys
from refserver.conformance.catalogue import strict as _strict
from refserver.conformance.catalogue import tls as _tls
from refserver.conformance.catalogue import websocket as _websocket
from refserver.conformance.catalogue.common import G_META, GROUP_ORDER, MUST, UNSPEC, check
from refserver.conformance.catalogue.grading import attach
from refserver.conformance.model import Scenario
from refserver.conformance.steps import Handshake, Receive, Request, Respond, WaitApp, accept, close_socket

# Used by the runner to read what a target advertises; not part of the catalogue.
HELLO_HTTP = Scenario(
    "_hello.http",
    "hello (http)",
    "",
    "",
    (),
    UNSPEC,
    "http",
    (Request(), WaitApp("ended")),
    (Receive(), Respond()),
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
    (Handshake(), WaitApp("ended")),
    (Receive(), accept(), close_socket()),
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
    (check("claims", "kept"),),
    peer_case=26,
    meta=True,
)

SCENARIOS: list[Scenario] = attach(
    [
        *_websocket.SCENARIOS,
        *_http.SCENARIOS,
        *_header_case.SCENARIOS,
        *_http_wire.SCENARIOS,
        *_lifespan.SCENARIOS,
        *_lifespan_timing.SCENARIOS,
        *_deployment.SCENARIOS,
        *_scope_keys.SCENARIOS,
        *_tls.SCENARIOS,
        *_strict.SCENARIOS,
        META_CLAIMS,
    ]
)
META_CLAIMS = SCENARIOS[-1]
BY_ID: dict[str, Scenario] = {s.id: s for s in (*SCENARIOS, HELLO_HTTP, HELLO_WS)}

if len(BY_ID) != len(SCENARIOS) + 2:  # pragma: no cover - a catalogue error
    raise RuntimeError("duplicate scenario ids in the catalogue")

__all__ = ["BY_ID", "GROUP_ORDER", "HELLO_HTTP", "HELLO_WS", "META_CLAIMS", "MUST", "SCENARIOS"]
