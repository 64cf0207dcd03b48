"""``python -m refserver``: the listening line, app loading errors, ASGI 2 apps, the
options, and signals. Each server is a subprocess whose PID the test kills in a finally;
every wait is bounded. The server runs on the same backend as the test."""

from __future__ import annotations

import errno
import importlib
import importlib.util
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import refserver
import refserver.cli
from tests.support import HTTPClient, http_request, read_until_eof

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"^refserver listening on (http://127\.0\.0\.1:(\d+)|unix:(.+)) \(press CTRL\+C to quit\)$")


def env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


class CLI:
    """A running ``python -m refserver``."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None and process.stderr is not None
        self.stdout = BufferedByteReceiveStream(process.stdout)
        self.stderr = BufferedByteReceiveStream(process.stderr)
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.port = 0
        self.uds = ""

    async def stdout_line(self) -> str:
        """The next line of stdout, without its newline."""
        with anyio.fail_after(5):
            line = (await self.stdout.receive_until(b"\n", 1 << 16)).decode()
        self.stdout_lines.append(line)
        return line

    async def stderr_until(self, text: str) -> str:
        with anyio.fail_after(5):
            while True:
                line = (await self.stderr.receive_until(b"\n", 1 << 16)).decode()
                self.stderr_lines.append(line)
                if text in line:
                    return line

    async def wait_listening(self) -> str:
        while True:
            line = await self.stdout_line()
            match = LISTENING.match(line)
            if match:
                self.port = int(match.group(2) or 0)
                self.uds = match.group(3) or ""
                return line

    async def finish(self, signum: signal.Signals = signal.SIGINT) -> int:
        """Signal the server, wait for it to exit, and collect the rest of its output."""
        self.process.send_signal(signum)
        with anyio.fail_after(5):
            code = await self.process.wait()
            self.stdout_lines += (await read_rest(self.stdout)).decode().splitlines()
            self.stderr_lines += (await read_rest(self.stderr)).decode().splitlines()
        return code


async def read_rest(stream: BufferedByteReceiveStream) -> bytes:
    data = bytearray(stream.buffer)
    try:
        while True:
            data += await stream.receive()
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass
    return bytes(data)


@asynccontextmanager
async def refserver_cli(*args: str, cwd: Path = REPO, backend: str) -> AsyncIterator[CLI]:
    command = [sys.executable, "-m", "refserver", *args, "--backend", backend]
    process = await anyio.open_process(command, cwd=cwd, env=env())
    try:
        yield CLI(process)
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)  # the PID this test started
        with anyio.fail_after(5), anyio.CancelScope(shield=True):
            await process.aclose()


async def run_to_exit(*args: str, backend: str, cwd: Path = REPO) -> tuple[int, str, str]:
    with anyio.fail_after(10):
        done = await anyio.run_process(
            [sys.executable, "-m", "refserver", *args, "--backend", backend], cwd=cwd, env=env(), check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def get_json(port: int, target: str = "/") -> dict[str, Any]:
    with anyio.fail_after(5):
        response, body = await http_request(port, "GET", target)
    assert response.status_code == 200
    result: dict[str, Any] = json.loads(body)
    return result


# ---------------------------------------------------------------- serving and signals


async def test_listening_line_serves_and_exits_cleanly_on_sigint(anyio_backend: str) -> None:
    args = ("tests.apps.basic:app", "--host", "127.0.0.1", "--port", "0")
    async with refserver_cli(*args, backend=anyio_backend) as cli:
        assert await cli.stdout_line() == "lifespan: startup"
        line = await cli.wait_listening()
        assert line == f"refserver listening on http://127.0.0.1:{cli.port} (press CTRL+C to quit)"
        assert cli.port != 0
        summary = await get_json(cli.port, "/x%20y")
        code = await cli.finish(signal.SIGINT)
    assert summary == {
        "app": "asgi3",
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "method": "GET",
        "path": "/x y",
        "root_path": "",
        "server": ["127.0.0.1", cli.port],
    }
    assert code == 0
    assert cli.stdout_lines == ["lifespan: startup", line, "lifespan: shutdown"]
    stderr = "\n".join(cli.stderr_lines)
    assert "Traceback" not in stderr
    assert "Received SIGINT; shutting down" in stderr
    assert '"GET /x%20y HTTP/1.1" 200' in stderr  # the access log, at the default level info


async def test_sigterm_lets_responses_in_flight_finish_then_closes_the_rest(anyio_backend: str) -> None:
    """Shutdown: stop accepting, let in-flight responses finish up to --shutdown-timeout,
    close the rest, run lifespan shutdown, exit 0."""
    args = ("tests.apps.basic:app", "--port", "0", "--shutdown-timeout", "0.5")
    request = b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"
    async with refserver_cli(*args, backend=anyio_backend) as cli:
        await cli.wait_listening()
        async with HTTPClient.open(cli.port) as finishing, HTTPClient.open(cli.port) as stuck:
            received: dict[str, bytes] = {}
            for name, client in (("finishing", finishing), ("stuck", stuck)):
                await client.stream.send(request)
                data = b""
                with anyio.fail_after(5):
                    while b"started;" not in data:
                        data += await client.stream.receive()
                received[name] = data
            start = anyio.current_time()  # the shutdown timeout starts after the signal
            cli.process.send_signal(signal.SIGTERM)
            await cli.stderr_until("Received SIGTERM")
            await finishing.stream.send(b"cd")  # this response can now complete
            with anyio.fail_after(5):
                received["finishing"] += await read_until_eof(finishing.stream)
                received["stuck"] += await read_until_eof(stuck.stream)  # never completes: cut
            elapsed = anyio.current_time() - start
        with anyio.fail_after(5):
            code = await cli.process.wait()
        cli.stdout_lines += (await read_rest(cli.stdout)).decode().splitlines()
        cli.stderr_lines += (await read_rest(cli.stderr)).decode().splitlines()
    assert code == 0
    assert received["finishing"].endswith(b"started;\r\n4\r\ndone\r\n0\r\n\r\n")
    assert received["stuck"].endswith(b"started;\r\n")
    assert elapsed >= 0.45
    assert cli.stdout_lines[-1] == "lifespan: shutdown"
    assert not any("Traceback" in line for line in cli.stderr_lines)


async def test_unix_socket_and_options(anyio_backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "refserver.sock")
        args = (
            "tests.apps.basic:app",
            "--uds",
            path,
            "--root-path",
            "/mounted",
            "--lifespan",
            "off",
            "--h11-max-incomplete-event-size",
            "1024",
            "--timeout-keep-alive",
            "0.2",
            "--log-level",
            "warning",
        )
        async with refserver_cli(*args, backend=anyio_backend) as cli:
            line = await cli.wait_listening()  # --lifespan off: no startup line first
            assert line == f"refserver listening on unix:{path} (press CTRL+C to quit)"
            with anyio.fail_after(5):
                async with await anyio.connect_unix(path) as stream:
                    client = HTTPClient(stream)
                    await client.send_request("GET", "/p")
                    response, body = await client.read_response()
                    # then idle: closed by --timeout-keep-alive
                    assert await read_until_eof(stream) == b""
                async with await anyio.connect_unix(path) as stream:
                    await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
                    too_big = await read_until_eof(stream)
            code = await cli.finish()
        assert not Path(path).exists()
    assert code == 0
    assert response.status_code == 200
    summary = json.loads(body)
    assert summary["server"] == [path, None]
    assert (summary["root_path"], summary["path"]) == ("/mounted", "/mounted/p")
    assert too_big.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert cli.stdout_lines == [line]  # no lifespan lines with --lifespan off
    # --log-level warning hides the access log and info messages.
    assert cli.stderr_lines == []


async def test_factory_from_app_dir(anyio_backend: str, tmp_path: Path) -> None:
    target = REPO / "tests" / "apps" / "appdir_target"
    args = ("elsewhere:create_app", "--factory", "--app-dir", str(target), "--port", "0")
    async with refserver_cli(*args, cwd=tmp_path, backend=anyio_backend) as cli:
        await cli.wait_listening()
        with anyio.fail_after(5):
            response, body = await http_request(cli.port)
        code = await cli.finish()
    assert (response.status_code, body, code) == (200, b"from --app-dir, made by a factory", 0)


def test_a_factory_given_without_factory_is_called_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A callable taking no arguments cannot be an ASGI 2 app (which takes the scope): it is an
    app factory, called (as uvicorn does), instead of an app answering every request 500."""
    from refserver.loading import load_app

    with caplog.at_level(logging.WARNING, logger="refserver.error"):
        app = load_app("tests.apps.basic:create_app", app_dir=str(REPO))
    assert app.__qualname__ == "create_app.<locals>.made"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "tests.apps.basic:create_app takes no arguments, so it is taken for an app factory and called; "
            "pass --factory",
        )
    ]


async def test_asgi2_app_runs(anyio_backend: str) -> None:
    # Both ASGI 2 shapes (class and function) are also served in-process in test_http_scope.
    async with refserver_cli("tests.apps.basic:Legacy", "--port", "0", backend=anyio_backend) as cli:
        await cli.wait_listening()
        summary = await get_json(cli.port, "/two")
        code = await cli.finish()
    assert summary["app"] == "asgi2-class"
    assert (summary["asgi"], summary["path"]) == ({"version": "3.0", "spec_version": "2.5"}, "/two")
    assert code == 0
    # --lifespan auto: the ASGI 2 app raised on the lifespan scope, so it is "unsupported".
    assert sum("appears unsupported" in line for line in cli.stderr_lines) == 1


async def test_lifespan_startup_failure_exits_non_zero(anyio_backend: str) -> None:
    code, out, err = await run_to_exit("tests.apps.basic:startup_fails", "--port", "0", backend=anyio_backend)
    assert code == 1
    assert out == ""  # never listening
    assert err == "ERROR    refserver.error: Lifespan startup failed: database unreachable\n"


async def test_wrong_app_path_exits_2_without_traceback(anyio_backend: str) -> None:
    code, out, err = await run_to_exit("no_such_module_xyz:app", "--port", "0", backend=anyio_backend)
    assert (code, out) == (2, "")
    assert err == (
        "refserver: error: cannot import module 'no_such_module_xyz': no module named 'no_such_module_xyz' "
        f"(searched {REPO} and sys.path)\n"
    )


# ---------------------------------------------------------------- an address it cannot listen on


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port this test holds with a listening socket of its own."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def cannot_listen_line(address: str, code: int) -> str:
    return f"refserver: error: cannot listen on {address}: [Errno {code}] {os.strerror(code)}\n"


async def test_port_in_use_exits_1_with_one_line_naming_the_address(anyio_backend: str, taken_port: int) -> None:
    code, out, err = await run_to_exit(
        "tests.apps.basic:app", "--host", "127.0.0.1", "--port", str(taken_port), backend=anyio_backend
    )
    assert code == 1
    # Never listening; the app that started is shut down before the exit.
    assert out == "lifespan: startup\nlifespan: shutdown\n"
    assert err == cannot_listen_line(f"127.0.0.1:{taken_port}", errno.EADDRINUSE)


async def test_unix_socket_in_a_missing_directory_exits_1_with_one_line(anyio_backend: str, tmp_path: Path) -> None:
    path = str(tmp_path / "no-such-dir" / "refserver.sock")
    code, out, err = await run_to_exit(
        "tests.apps.basic:app", "--uds", path, "--lifespan", "off", backend=anyio_backend
    )
    assert (code, out) == (1, "")
    assert err == cannot_listen_line(path, errno.ENOENT)


# ---------------------------------------------------------------- in-process: cli.main()


@pytest.fixture
def isolated_main(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """cli.main() in-process: it configures the "refserver" logger (put back for caplog's
    sake) and --app-dir changes sys.path (undone)."""
    logger = logging.getLogger("refserver")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    monkeypatch.setattr(sys, "path", sys.path[:])
    monkeypatch.chdir(REPO)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["no_such_module_xyz:app"],
            "cannot import module 'no_such_module_xyz': no module named 'no_such_module_xyz' "
            f"(searched {REPO} and sys.path)",
        ),
        (
            ["tests.apps.nope:app"],
            f"cannot import module 'tests.apps.nope': no module named 'tests.apps.nope' (searched {REPO} and sys.path)",
        ),
        (["tests.apps.basic:nope"], "module 'tests.apps.basic' has no attribute 'nope'"),
        (["tests.apps.basic:Legacy.nope"], "module 'tests.apps.basic' has no attribute 'Legacy.nope'"),
        (["tests.apps.basic:not_callable"], "tests.apps.basic:not_callable is an int, not a callable ASGI app"),
        (
            ["tests.apps.basic:not_callable", "--factory"],
            "tests.apps.basic:not_callable is an int, not a callable app factory",
        ),
        (
            ["tests.apps.basic:create_nothing", "--factory"],
            "tests.apps.basic:create_nothing is an int, not a callable ASGI app",
        ),
        (
            ["tests.apps.basic:app", "--factory"],
            "tests.apps.basic:app is an ASGI 3 app, not an app factory: run it without --factory",
        ),
        (
            ["tests.apps.basic:Legacy", "--factory"],
            "tests.apps.basic:Legacy is a callable that takes arguments, not an app factory: run it without --factory",
        ),
        (["tests.apps.basic"], "the app must be given as MODULE:ATTR (for example main:app), not 'tests.apps.basic'"),
        ([":app"], "the app must be given as MODULE:ATTR (for example main:app), not ':app'"),
    ],
    ids=[
        "no module",
        "no submodule",
        "no attribute",
        "no nested attribute",
        "not callable",
        "factory not callable",
        "factory result",
        "an app given as a factory",
        "an ASGI 2 app given as a factory",
        "no colon",
        "no module name",
    ],
)
def test_wrong_app_path_is_a_one_line_error(
    args: list[str], message: str, isolated_main: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = refserver.cli.main([*args, "--port", "0"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", f"refserver: error: {message}\n")


def test_bad_option_value_is_a_usage_error(isolated_main: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        refserver.cli.main(["tests.apps.basic:app", "--lifespan", "maybe"])
    out, err = capsys.readouterr()
    assert (info.value.code, out) == (2, "")
    # One line naming the option (no usage block first); tests/test_cli_usage.py has the rest.
    assert err == "refserver: error: --lifespan: expected auto, on or off, not 'maybe'; see refserver --help\n"


def test_out_of_range_port_is_a_usage_error(isolated_main: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        refserver.cli.main(["tests.apps.basic:app", "--port", "70000"])
    out, err = capsys.readouterr()
    assert (info.value.code, out) == (2, "")
    assert err == "refserver: error: --port: expected a port in 0..65535, not '70000'; see refserver --help\n"


def test_version_flag(isolated_main: None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        refserver.cli.main(["--version"])
    assert (info.value.code, capsys.readouterr().out) == (0, f"refserver {refserver.__version__}\n")


def test_backend_trio_without_trio_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], isolated_main: None
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "trio" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    code = refserver.cli.main(["tests.apps.basic:app", "--backend", "trio", "--port", "0"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err == (
        "refserver: error: --backend trio needs trio, which is not installed; "
        "install it with: pip install 'refserver[trio]'\n"
    )


def test_console_script_is_the_same_function_as_python_m() -> None:
    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"] == {"refserver": "refserver.cli:main"}
    module, _, attr = project["scripts"]["refserver"].partition(":")
    assert getattr(importlib.import_module(module), attr) is refserver.cli.main
    main_source = (REPO / "refserver" / "__main__.py").read_text()
    assert "from refserver.cli import main" in main_source
    assert "sys.exit(main())" in main_source


# ---------------------------------------------------------------- the programmatic API


async def test_run_blocks_like_the_cli(anyio_backend: str) -> None:
    code = (
        f"import refserver\nfrom tests.apps.basic import app\nrefserver.run(app, port=0, backend={anyio_backend!r})\n"
    )
    process = await anyio.open_process([sys.executable, "-c", code], cwd=REPO, env=env())
    try:
        cli = CLI(process)
        assert await cli.stdout_line() == "lifespan: startup"
        await cli.wait_listening()
        summary = await get_json(cli.port)
        status = await cli.finish(signal.SIGTERM)
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGKILL)
        with anyio.fail_after(5), anyio.CancelScope(shield=True):
            await process.aclose()
    assert summary["app"] == "asgi3"
    assert status == 0
    assert cli.stdout_lines[-1] == "lifespan: shutdown"


def test_run_exits_non_zero_when_lifespan_fails(anyio_backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.apps.basic import startup_fails

    with pytest.raises(SystemExit) as info:
        refserver.run(startup_fails, port=0, backend=anyio_backend, lifespan="on")
    assert info.value.code == 1
    assert capsys.readouterr().out == ""  # never listening


async def test_serve_raises_oserror_naming_the_address(anyio_backend: str, taken_port: int) -> None:
    from tests.apps.basic import app

    config = refserver.Config(host="127.0.0.1", port=taken_port, lifespan="off")
    with anyio.fail_after(5), pytest.raises(OSError) as info:
        await refserver.serve(app, config)
    assert type(info.value) is OSError
    assert (info.value.errno, info.value.filename) == (errno.EADDRINUSE, f"127.0.0.1:{taken_port}")


async def test_serve_under_tg_start_raises_oserror_from_start(anyio_backend: str, tmp_path: Path) -> None:
    """The README's pattern: ``tg.start`` raises the bind error itself, never "listening"."""
    from tests.apps.basic import app

    path = str(tmp_path / "no-such-dir" / "refserver.sock")
    config = refserver.Config(uds=path, lifespan="off")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with pytest.raises(OSError) as info:
                await tg.start(lambda task_status: refserver.serve(app, config, task_status=task_status))
    assert (info.value.errno, info.value.filename) == (errno.ENOENT, path)


def test_run_raises_oserror_when_it_cannot_listen(
    anyio_backend: str, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.apps.basic import app

    with pytest.raises(OSError) as info:
        refserver.run(app, host="127.0.0.1", port=taken_port, backend=anyio_backend)
    assert (info.value.errno, info.value.filename) == (errno.EADDRINUSE, f"127.0.0.1:{taken_port}")
    assert capsys.readouterr().out == "lifespan: startup\nlifespan: shutdown\n"  # never listening


def test_config_is_the_single_frozen_source_of_defaults() -> None:
    import dataclasses

    parsed = refserver.cli.build_parser().parse_args(["tests.apps.basic:app"])
    assert refserver.cli.config_from_args(parsed) == refserver.Config()
    config = refserver.Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    assert (config.host, config.port, config.lifespan, config.backend) == ("127.0.0.1", 8000, "auto", "asyncio")
    with pytest.raises(TypeError, match=r"^unknown option\(s\): prot; known: "):
        refserver.Config.from_options(prot=1)


def test_installed_console_script_runs_cli_main() -> None:
    """With the package installed (as CI does), the ``refserver`` command is cli.main."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("refserver")
    except PackageNotFoundError:
        pytest.skip("refserver is not installed in this environment (running from the source tree)")
    [entry] = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == "refserver"]
    assert entry.value == "refserver.cli:main"
    script = Path(sys.executable).parent / "refserver"
    if script.exists():
        done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30, check=False)
        assert (done.returncode, done.stdout) == (0, f"refserver {refserver.__version__}\n")


def test_conformance_subcommand_is_the_conformance_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """`refserver conformance ...` is `python -m refserver.conformance ...`."""
    from refserver.cli import main

    assert main(["conformance", "--list", "--scenario", "ws.handshake.accept-key"]) == 0
    out = capsys.readouterr().out
    assert "ws.handshake.accept-key" in out
    assert "Sec-WebSocket-Accept is computed from the key" in out
