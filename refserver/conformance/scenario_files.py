"""Scenarios from files of your own: ``python -m refserver.conformance --scenarios mine.py``.

A scenario file is a Python file that builds its scenarios with :mod:`refserver.conformance.api`
and lists them in a module-level ``SCENARIOS``. Its scenarios run beside the built-in catalogue
on every target and are reported the same way. The probe app, inside the server under test,
finds a scenario's app script by its id: here, through the files named in the environment
variable :data:`ENV`, which every server the harness starts inherits.

Standard library only (the probe imports this module inside the server under test).
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

from refserver.conformance.model import Scenario

ENV = "REFSERVER_PROBE_SCENARIOS"  # os.pathsep-separated absolute paths of the loaded files

_LOADED: dict[str, Scenario] = {}
FILES: list[str] = []


def load(path: str | os.PathLike[str]) -> list[Scenario]:
    """Run the file and register the scenarios of its ``SCENARIOS`` list.

    Raises:
        ValueError: the file has no ``SCENARIOS`` list of scenarios, or an id is taken
            (by the built-in catalogue or another file)."""
    from refserver.conformance.catalogue import BY_ID

    full = str(Path(path).resolve())
    namespace = runpy.run_path(full)
    scenarios = namespace.get("SCENARIOS")
    if not isinstance(scenarios, list | tuple) or not all(isinstance(s, Scenario) for s in scenarios):
        raise ValueError(f"{path}: define SCENARIOS, a list of scenarios built with refserver.conformance.api")
    new = full not in FILES
    for s in scenarios:
        if s.id in BY_ID or (new and s.id in _LOADED):
            raise ValueError(f"{path}: the scenario id {s.id!r} is already taken")
    if new:
        FILES.append(full)
    for s in scenarios:
        _LOADED[s.id] = s
    return list(scenarios)


def find(scenario_id: str) -> Scenario | None:
    """A scenario by id: the built-in catalogue's, else one of a loaded file (in a server the
    harness started, the files of :data:`ENV`, loaded on first use)."""
    from refserver.conformance.catalogue import BY_ID

    found = BY_ID.get(scenario_id)
    if found is not None:
        return found
    if not _LOADED and os.environ.get(ENV):
        for path in os.environ[ENV].split(os.pathsep):
            load(path)
    return _LOADED.get(scenario_id)


def environment() -> dict[str, str]:
    """What a server the harness starts needs in its environment to find the loaded files."""
    return {ENV: os.pathsep.join(FILES)} if FILES else {}


def forget() -> None:
    """Unload every file (for tests)."""
    _LOADED.clear()
    FILES.clear()
