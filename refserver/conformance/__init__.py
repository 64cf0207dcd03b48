"""The differential conformance harness: one catalogue of scenarios, run against refserver
and against other ASGI servers, judged on both sides (the wire and what the app saw).

Run it with ``python -m refserver.conformance`` (see ``--help`` and docs/conformance.md).
A consumer of refserver's public API; the server core never imports this package.

Modules: :mod:`.model` (what a scenario is), :mod:`.catalogue` (the scenarios),
:mod:`.probe` (the ASGI app every target runs), :mod:`.client` (the raw client's reader and
the trace; its bytes are built by :mod:`refserver.rawclient`),
:mod:`.observe` and :mod:`.verdict` (judging), :mod:`.targets`, :mod:`.runner`,
:mod:`.report` and :mod:`.cli`.
"""

JSON_FORMAT = "refserver-conformance/1"
