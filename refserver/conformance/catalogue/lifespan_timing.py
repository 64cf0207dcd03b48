"""Lifespan timing: when the server sends lifespan.shutdown (after its connections are closed),
how long it waits for the answer, what a slow startup holds back, and how a failed startup ends the
process. Each scenario carries the rule its level rests on. Standard library only."""

from __future__ import annotations

from refserver.conformance.model import Scenario

SCENARIOS: list[Scenario] = []
