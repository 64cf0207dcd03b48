"""The import direction of README.md ("Architecture"), checked by parsing every module with ast:

* ``refserver/spec`` imports nothing of refserver's but ``refserver.errors`` (and itself);
* ``refserver/protocol`` is sans-IO: never anyio, asyncio, trio, socket, time or logging,
  and of refserver only errors, spec and protocol;
* ``refserver/runtime`` never imports h11 or wsproto: the protocol layer owns the wire
  (every h11 and wsproto object, and every error they raise, stays behind it);
* only ``refserver/runtime`` imports anyio at module level (``refserver/__init__`` and the
  CLI reach the runtime lazily, inside functions); the conformance harness is a consumer
  of the public API that the server core never imports.
* the test helpers (``refserver.testing`` and the pytest fixtures) are consumers too: the
  core never imports them, and the ``pytest11`` entry point that pytest loads in every
  project (``refserver.pytest_plugin``) is core, so it imports no event loop library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "refserver"


@dataclass(frozen=True)
class Import:
    module: str  # the imported module, absolute
    lazy: bool  # inside a function body rather than at module level
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, lazy, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                found.append(Import(target, lazy, child.lineno))
                # "from refserver.spec import messages" imports refserver.spec.messages
                found.extend(Import(f"{target}.{alias.name}", lazy, child.lineno) for alias in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def modules_under(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py")) if sub else sorted(PACKAGE.glob("*.py"))


def top(name: str) -> str:
    return name.split(".")[0]


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_layers_exist() -> None:
    for sub in ("spec", "protocol", "runtime"):
        assert modules_under(sub), sub


@pytest.mark.parametrize("path", modules_under("spec"), ids=lambda p: p.name)
def test_spec_imports_only_errors_of_refserver(path: Path) -> None:
    bad = [
        (i.module, i.line)
        for i in imports_of(path)
        if top(i.module) == "refserver" and not within(i.module, "refserver.errors", "refserver.spec")
    ]
    assert bad == [], f"{path.name} imports {bad}"
    io = [
        (i.module, i.line) for i in imports_of(path) if top(i.module) in ("anyio", "asyncio", "trio", "h11", "wsproto")
    ]
    assert io == []


SANS_IO_FORBIDDEN = ("anyio", "asyncio", "trio", "socket", "time", "logging", "select", "selectors", "threading")


@pytest.mark.parametrize("path", modules_under("protocol"), ids=lambda p: p.name)
def test_protocol_is_sans_io(path: Path) -> None:
    imports = imports_of(path)
    io = [(i.module, i.line) for i in imports if top(i.module) in SANS_IO_FORBIDDEN]
    assert io == [], f"{path.name} does I/O, timing or logging: {io}"
    ours = [
        (i.module, i.line)
        for i in imports
        if top(i.module) == "refserver"
        and not within(i.module, "refserver.errors", "refserver.spec", "refserver.protocol")
    ]
    assert ours == [], f"{path.name} reaches beyond errors/spec/protocol: {ours}"


@pytest.mark.parametrize("path", modules_under("runtime"), ids=lambda p: p.name)
def test_runtime_never_imports_the_wire_libraries(path: Path) -> None:
    wire = [(i.module, i.line, i.lazy) for i in imports_of(path) if top(i.module) in ("h11", "wsproto")]
    assert wire == [], f"{path.name} imports a wire library; only refserver/protocol may: {wire}"


CONSUMERS = ("refserver.conformance", "refserver.testing", "refserver.pytest_fixtures", "refserver.rawclient")


def core_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not within(module_name(p), *CONSUMERS)]


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: module_name(p))
def test_only_the_runtime_imports_anyio_at_module_level(path: Path) -> None:
    name = module_name(path)
    if within(name, "refserver.runtime"):
        return
    eager = [
        (i.module, i.line) for i in imports_of(path) if not i.lazy and top(i.module) in ("anyio", "trio", "asyncio")
    ]
    assert eager == [], f"{name} imports an event loop library at module level: {eager}"
    eager_runtime = [
        (i.module, i.line) for i in imports_of(path) if not i.lazy and within(i.module, "refserver.runtime")
    ]
    assert eager_runtime == [], f"{name} imports the runtime at module level: {eager_runtime}"


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: module_name(p))
def test_the_core_never_imports_the_conformance_harness(path: Path) -> None:
    """The harness is a consumer of the server, never a dependency of it. The one door
    between them is the command line: ``refserver conformance`` dispatches to the
    harness's own CLI, with a lazy import inside ``refserver.cli.main``."""
    harness = [i for i in imports_of(path) if within(i.module, "refserver.conformance")]
    if module_name(path) == "refserver.cli":
        assert [(i.module, i.lazy) for i in harness] == [
            ("refserver.conformance.cli", True),
            ("refserver.conformance.cli.main", True),
        ]
    else:
        assert harness == []


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: module_name(p))
def test_the_core_never_imports_the_test_helpers(path: Path) -> None:
    helpers = [(i.module, i.line) for i in imports_of(path) if within(i.module, *CONSUMERS[1:])]
    assert helpers == []  # refserver.pytest_plugin names the fixtures module as a string only


def test_importing_the_package_and_cli_loads_no_event_loop_library() -> None:
    code = (
        "import sys, refserver, refserver.cli, refserver.loading, refserver.pytest_plugin\n"
        "print(sorted(m for m in ('anyio', 'trio') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout == "[]\n"


def test_the_checker_sees_eager_and_lazy_imports() -> None:
    """Guard against a checker that passes because it sees nothing."""
    runtime = imports_of(PACKAGE / "runtime" / "http.py")
    assert any(i.module == "anyio" and not i.lazy for i in runtime)
    assert any(i.module == "refserver.spec.scopes" and not i.lazy for i in runtime)  # from refserver.spec import scopes
    protocol = imports_of(PACKAGE / "protocol" / "http.py")
    assert any(i.module == "h11" and not i.lazy for i in protocol)
    cli = imports_of(PACKAGE / "cli.py")
    assert any(i.module == "refserver.runtime.main" and i.lazy for i in cli)
    assert any(i.module == "refserver.config" and not i.lazy for i in cli)
