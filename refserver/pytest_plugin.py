"""refserver's pytest entry point (``pytest11``): inert until a project turns it on.

Installing refserver makes pytest load this module in every project of that environment, so
by itself it changes nothing: it declares one ini setting, defines no fixture and no hook that
acts, and imports neither the server nor an event loop library. A project turns the fixtures of
:mod:`refserver.pytest_fixtures` on in one of two ways:

* in its pytest configuration, ``refserver_fixtures = true`` (``[tool.pytest.ini_options]`` in
  pyproject.toml, or ``-o refserver_fixtures=true`` for one run);
* the way pytest's own optional plugins (``pytester``) are loaded: ``-p refserver.pytest_fixtures``
  on the command line, or ``pytest_plugins = ["refserver.pytest_fixtures"]`` in the root conftest.py.

``-p no:refserver`` unloads even this gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

FIXTURES = "refserver.pytest_fixtures"
INI = "refserver_fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(INI, type="bool", default=False, help=f"turn on refserver's fixtures ({FIXTURES})")


def pytest_configure(config: pytest.Config) -> None:
    if config.getini(INI) and not config.pluginmanager.has_plugin(FIXTURES):
        config.pluginmanager.import_plugin(FIXTURES)
