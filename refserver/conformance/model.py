"""The scenario data model: what a scenario is made of, and the builders used to write one.

Standard library only: the probe app imports this module inside whatever server is
being tested, so nothing here may depend on anyio, h11 or refserver's core.

A :class:`Scenario` has two scripts and a list of checks:

- the **client script** (:class:`~refserver.conformance.steps.ClientStep` items): what the
  raw client does on the wire, including faults (RST, half-close, stop reading) and waits on
  events that the probe app reports ("the app has received the message");
- the **app script** (:class:`~refserver.conformance.steps.AppStep` items): what the probe
  app does with ``receive()`` and ``send()``, and how it ends;
- the **checks** (:class:`Check`): an observable computed from both traces, the values
  the spec allows (``fnmatch`` patterns), and refserver's own choice among them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from refserver.conformance.steps import AppStep, ClientStep


class Level(Enum):
    """How strongly the spec asks for the expected outcome."""

    MUST = "MUST"  # breaking it is a fail
    SHOULD = "SHOULD"  # breaking it deviates, whatever spec version the target claims
    MAY = "MAY"  # the spec allows it and nothing more: not doing it only differs from refserver
    UNSPECIFIED = "unspecified"  # the spec is silent; another value only differs from refserver's choice


@dataclass(frozen=True)
class Rule:
    """The sentence a level rests on: where it is (a spec section heading as the spec spells
    it, or an RFC section) and the words, quoted. For an unspecified level the sentence is the
    text that comes closest, and ``note`` says what it leaves open."""

    level: Level
    source: str
    sentence: str
    note: str = ""

    def cite(self) -> str:
        """One line: the level, the source and the quoted sentence."""
        note = f" ({self.note})" if self.note else ""
        return f'{self.level.value}: {self.source}: "{self.sentence}"{note}'


@dataclass(frozen=True)
class Check:
    """One expectation about an observable of the run.

    ``allowed`` are ``fnmatch`` patterns over the observable's string value. ``choice``
    is the value refserver produces (marked in reports). ``since`` is the www spec version
    that made the rule: a target advertising an older version is not held to it (n/a),
    and a SHOULD check fails outright for a target that advertises ``since`` or later.
    ``by_version`` replaces ``allowed`` for targets advertising at least that version
    (first match wins, newest first).
    """

    observable: str
    allowed: tuple[str, ...]
    choice: str | None = None
    level: Level | None = None  # None: the scenario's level
    since: str | None = None
    label: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    by_version: tuple[tuple[str, tuple[str, ...]], ...] = ()
    show: bool = False  # put the observed value into the matrix cell
    rule: Rule | None = None  # the sentence this check's own level rests on (None: the scenario's)

    def allowed_for(self, version: tuple[int, int]) -> tuple[str, ...]:
        for minimum, patterns in self.by_version:
            if version >= parse_version(minimum):
                return patterns
        return self.allowed


@dataclass(frozen=True)
class ServerNeeds:
    """A scenario that needs a server of its own (not the shared one)."""

    lifespan: bool = False  # the probe runs this scenario's app script on the lifespan scope
    ping_interval_s: float | None = None  # ask for keepalive pings this often, where the target can
    shutdown: bool = False  # the client script sends SIGTERM to the server (ShutdownServer)
    exits: bool = False  # the server is expected to exit by itself: wait for it (5 s), record "server_end"
    # Options a target may lack (see :data:`refserver.conformance.targets.OPTIONS`): a target
    # without ``uds`` or ``root_path`` is n/a for the scenario; one without a close timeout
    # option is run with its own default (the scenario's window allows for a 10 s default); one
    # without a request body timeout option is run with its own (the scenario shows whether it cuts).
    uds: bool = False  # listen on a Unix socket (in a fresh directory) instead of TCP; the client uses it
    root_path: str | None = None  # the server's root_path setting
    ws_close_timeout_s: float | None = None  # how long to wait for the peer's close frame, where configurable
    request_body_timeout_s: float | None = None  # a request body's grace period, where configurable
    # TLS: the server gets a certificate and key the runner makes for the run (with ``trustme``)
    # and the client speaks TLS to it; ``client_cert`` also makes the server require a client
    # certificate signed by the run's CA, and the client present one. A target without the
    # option is n/a for the scenario.
    tls: bool = False
    client_cert: bool = False

    def options(self) -> dict[str, str]:
        """The options asked for, by name, as text for the command line."""
        wanted: dict[str, str] = {}
        if self.tls or self.client_cert:
            wanted["tls"] = ""
        if self.client_cert:
            wanted["client_cert"] = ""
        if self.uds:
            wanted["uds"] = ""
        if self.root_path is not None:
            wanted["root_path"] = self.root_path
        if self.ws_close_timeout_s is not None:
            wanted["ws_close_timeout"] = f"{self.ws_close_timeout_s:g}"
        if self.request_body_timeout_s is not None:
            wanted["request_body_timeout"] = f"{self.request_body_timeout_s:g}"
        return wanted


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    lesson: str  # one sentence: what it teaches
    group: str  # the report groups rows by this (a spec section)
    refs: tuple[str, ...]  # spec sections and RFC clauses it rests on
    level: Level
    protocol: str  # "websocket", "http" or "lifespan"
    client: tuple[ClientStep, ...]
    app: tuple[AppStep, ...]
    checks: tuple[Check, ...]
    peer_case: int | None = None  # the numbered scenario of tests/test_ws_peer_scenarios.py, if any
    extension: str | None = None  # n/a when the target does not advertise this scope extension
    server: ServerNeeds | None = None
    app_deadline_s: float = 4.0  # how long the runner waits for the app to end after the client script
    lifespan_app: tuple[AppStep, ...] = ()  # with ServerNeeds(lifespan=True): the script for the lifespan scope
    meta: bool = False  # judged from the other scenarios' results, not run
    rule: Rule | None = None  # the sentence the scenario's level rests on

    def rule_of(self, check: Check) -> Rule | None:
        """The sentence a check's level rests on: its own, else the scenario's."""
        return check.rule or self.rule

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "lesson": self.lesson,
            "group": self.group,
            "refs": list(self.refs),
            "level": self.level.value,
            "protocol": self.protocol,
            "peer_case": self.peer_case,
            "extension": self.extension,
            "client": [s.describe() for s in self.client],
            "app": [s.describe() for s in self.app],
            "lifespan_app": [s.describe() for s in self.lifespan_app],
            "checks": [
                {
                    "observable": c.observable,
                    "params": dict(c.params),
                    "label": c.label,
                    "allowed": list(c.allowed),
                    "by_version": [[v, list(p)] for v, p in c.by_version],
                    "refserver": c.choice,
                    "level": (c.level or self.level).value,
                    "since": c.since,
                    "rule": rule.cite() if (rule := self.rule_of(c)) else None,
                }
                for c in self.checks
            ],
        }


def parse_version(text: str | None) -> tuple[int, int]:
    """ "2.4" -> (2, 4); a missing spec_version means 2.0 (www spec 2.5, "HTTP Connection Scope")."""
    if not text:
        return (2, 0)
    try:
        major, _, minor = str(text).partition(".")
        return (int(major), int(minor or 0))
    except ValueError:
        return (2, 0)
