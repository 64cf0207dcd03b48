"""refserver's pytest entry point (``pytest11``): inert until a project turns it on.

Installing refserver makes pytest load this module in every project of that environment, so
by itself it changes nothing: it declares two ini settings and a marker, defines no fixture,
imports neither the server nor an event loop library, and its one other hook acts only on a test
whose setup failed because a ``refserver_*`` fixture was not found, to say how to turn the
fixtures on. (``refserver_fail_on_violations`` and its marker are read by the fixtures: see
:mod:`refserver.pytest_fixtures`.)
A project turns the fixtures of :mod:`refserver.pytest_fixtures` on in one of two ways:

* in its pytest configuration, ``refserver_fixtures = true`` (``[tool.pytest.ini_options]`` in
  pyproject.toml, or ``-o refserver_fixtures=true`` for one run);
* the way pytest's own optional plugins (``pytester``) are loaded: ``-p refserver.pytest_fixtures``
  on the command line, or ``pytest_plugins = ["refserver.pytest_fixtures"]`` in the root conftest.py.

``-p no:refserver`` unloads even this gate.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

FIXTURES = "refserver.pytest_fixtures"
INI = "refserver_fixtures"
FAIL_ON_VIOLATIONS = "refserver_fail_on_violations"  # an ini setting and a marker


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(INI, type="bool", default=False, help=f"turn on refserver's fixtures ({FIXTURES})")
    parser.addini(
        FAIL_ON_VIOLATIONS,
        type="bool",
        default=False,
        help="fail a test whose app broke a spec rule while a refserver fixture served it",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{FAIL_ON_VIOLATIONS}(on=True): fail this test if the app served by a refserver fixture broke a "
        f"spec rule (overrides the {FAIL_ON_VIOLATIONS} ini setting)",
    )
    if config.getini(INI) and not config.pluginmanager.has_plugin(FIXTURES):
        config.pluginmanager.import_plugin(FIXTURES)


HINT = (
    f"refserver's pytest fixtures are off until the project turns them on: add {INI} = true to its "
    f"pytest configuration ([tool.pytest.ini_options] in pyproject.toml), or run pytest -p {FIXTURES}"
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if (
        isinstance(error, pytest.FixtureLookupError)
        and str(error.argname).startswith("refserver_")
        and not item.config.pluginmanager.has_plugin(FIXTURES)
    ):
        report.sections.append(("refserver", HINT))
    return report
