"""``python -m refserver``: the listening line, app loading errors, ASGI 2 apps, the
options, and signals. Each server is a subprocess whose PID the test kills in a finally;
every wait is bounded. The server runs on the same backend as the test."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import signal
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

    async def finish(self, signum: int = signal.SIGINT) -> int:
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_listening_line_serves_and_exits_cleanly_on_signal(anyio_backend: str, signum: int) -> None:
    async with refserver_cli("tests.apps.basic:app", "--port", "0", backend=anyio_backend) as cli:
        assert await cli.stdout_line() == "lifespan: startup"
        line = await cli.wait_listening()
        assert line == f"refserver listening on http://127.0.0.1:{cli.port} (press CTRL+C to quit)"
        assert cli.port != 0
        summary = await get_json(cli.port, "/x%20y")
        code = await cli.finish(signum)
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
    assert cli.stdout_lines[-1] == "lifespan: shutdown"
    stderr = "\n".join(cli.stderr_lines)
    assert "Traceback" not in stderr
    assert f"Received {signal.Signals(signum).name}; shutting down" in stderr
    assert f'"GET /x%20y HTTP/1.1" 200' in stderr  # the access log, at the default level info


async def test_signal_lets_the_response_in_flight_finish(anyio_backend: str) -> None:
    async with refserver_cli("tests.apps.basic:app", "--port", "0", backend=anyio_backend) as cli:
        await cli.wait_listening()
        async with HTTPClient.open(cli.port) as client:
            await client.stream.send(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
            received = b""
            with anyio.fail_after(5):
                while b"started;" not in received:
                    received += await client.stream.receive()
            cli.process.send_signal(signal.SIGTERM)
            await cli.stderr_until("Received SIGTERM")
            # The server is shutting down; the request in flight still completes.
            await client.stream.send(b"cd")
            with anyio.fail_after(5):
                received += await read_until_eof(client.stream)
        with anyio.fail_after(5):
            code = await cli.process.wait()
        cli.stdout_lines += (await read_rest(cli.stdout)).decode().splitlines()
    assert code == 0
    assert received.endswith(b"started;\r\n4\r\ndone\r\n0\r\n\r\n")
    assert cli.stdout_lines[-1] == "lifespan: shutdown"


async def test_shutdown_timeout_closes_what_is_left(anyio_backend: str) -> None:
    args = ("tests.apps.basic:app", "--port", "0", "--shutdown-timeout", "0.2")
    async with refserver_cli(*args, backend=anyio_backend) as cli:
        await cli.wait_listening()
        async with HTTPClient.open(cli.port) as client:
            # The body never completes, so the response stays in flight.
            await client.stream.send(b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
            received = b""
            with anyio.fail_after(5):
                while b"started;" not in received:
                    received += await client.stream.receive()
            start = anyio.current_time()
            code = await cli.finish(signal.SIGINT)
            elapsed = anyio.current_time() - start
            with anyio.fail_after(5):
                received += await read_until_eof(client.stream)
    assert code == 0
    assert elapsed >= 0.15
    assert b"done" not in received
    assert cli.stdout_lines[-1] == "lifespan: shutdown"
    assert not any("Traceback" in line for line in cli.stderr_lines)


async def test_unix_socket_server_scope(anyio_backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "refserver.sock")
        async with refserver_cli("tests.apps.basic:app", "--uds", path, backend=anyio_backend) as cli:
            line = await cli.wait_listening()
            assert line == f"refserver listening on unix:{path} (press CTRL+C to quit)"
            with anyio.fail_after(5):
                async with await anyio.connect_unix(path) as stream:
                    client = HTTPClient(stream)  # type: ignore[arg-type]
                    await client.send_request("GET", "/u")
                    response, body = await client.read_response()
            code = await cli.finish()
        assert not Path(path).exists()
    assert code == 0
    assert json.loads(body)["server"] == [path, None]


async def test_options_reach_the_server(anyio_backend: str) -> None:
    args = (
        "tests.apps.basic:app",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
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
        first = await cli.wait_listening()  # --lifespan off: no startup line first
        summary = await get_json(cli.port, "/mounted/p")
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", cli.port)
            try:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n")
                too_big = await read_until_eof(stream)
            finally:
                await stream.aclose()
            idle = await anyio.connect_tcp("127.0.0.1", cli.port)
            try:
                assert await read_until_eof(idle) == b""  # closed by --timeout-keep-alive
            finally:
                await idle.aclose()
        code = await cli.finish()
    assert cli.stdout_lines[0] == first
    assert (summary["root_path"], summary["path"]) == ("/mounted", "/mounted/p")
    assert too_big.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert code == 0
    assert "lifespan: shutdown" not in cli.stdout_lines
    # --log-level warning hides the access log and info messages.
    assert not any(" 200" in line or line.startswith("INFO") for line in cli.stderr_lines)


async def test_factory(anyio_backend: str) -> None:
    async with refserver_cli("tests.apps.basic:create_app", "--factory", "--port", "0", backend=anyio_backend) as cli:
        await cli.wait_listening()
        summary = await get_json(cli.port)
        code = await cli.finish()
    assert summary["app"] == "factory"
    assert code == 0


@pytest.mark.parametrize("attr", ["Legacy", "legacy_function"])
async def test_asgi2_app_runs(anyio_backend: str, attr: str) -> None:
    async with refserver_cli(f"tests.apps.basic:{attr}", "--port", "0", backend=anyio_backend) as cli:
        await cli.wait_listening()
        summary = await get_json(cli.port, "/two")
        code = await cli.finish()
    assert summary["app"] == {"Legacy": "asgi2-class", "legacy_function": "asgi2-function"}[attr]
    assert (summary["asgi"], summary["path"]) == ({"version": "3.0", "spec_version": "2.5"}, "/two")
    assert code == 0
    # --lifespan auto: the ASGI 2 app raised on the lifespan scope, so it is "unsupported".
    assert sum("appears unsupported" in line for line in cli.stderr_lines) == 1


async def test_app_dir(anyio_backend: str, tmp_path: Path) -> None:
    target = REPO / "tests" / "apps" / "appdir_target"
    async with refserver_cli("elsewhere:app", "--app-dir", str(target), "--port", "0",
                             cwd=tmp_path, backend=anyio_backend) as cli:
        await cli.wait_listening()
        with anyio.fail_after(5):
            response, body = await http_request(cli.port)
        code = await cli.finish()
    assert (response.status_code, body, code) == (200, b"from --app-dir", 0)


async def test_lifespan_startup_failure_exits_non_zero(anyio_backend: str) -> None:
    code, out, err = await run_to_exit("tests.apps.basic:startup_fails", "--port", "0", backend=anyio_backend)
    assert code == 1
    assert out == ""  # never listening
    assert err == "ERROR    refserver.error: Lifespan startup failed: database unreachable\n"


# ---------------------------------------------------------------- wrong app paths


@pytest.mark.parametrize(
    ("app", "extra", "message"),
    [
        ("no_such_module_xyz:app", (), "cannot import module 'no_such_module_xyz': no module named 'no_such_module_xyz'"),
        ("tests.apps.nope:app", (), "cannot import module 'tests.apps.nope': no module named 'tests.apps.nope'"),
        ("tests.apps.basic:nope", (), "module 'tests.apps.basic' has no attribute 'nope'"),
        ("tests.apps.basic:not_callable", (), "tests.apps.basic:not_callable is a int, not a callable ASGI app"),
        (
            "tests.apps.basic:not_callable",
            ("--factory",),
            "tests.apps.basic:not_callable is a int, not a callable app factory",
        ),
        (
            "tests.apps.basic:create_nothing",
            ("--factory",),
            "tests.apps.basic:create_nothing is a int, not a callable ASGI app",
        ),
        ("tests.apps.basic", (), "the app must be given as MODULE:ATTR (for example main:app), not 'tests.apps.basic'"),
    ],
    ids=["no module", "no submodule", "no attribute", "not callable", "factory not callable", "factory result",
         "no colon"],
)
async def test_wrong_app_path_is_a_one_line_error(anyio_backend: str, app: str, extra: tuple[str, ...],
                                                  message: str) -> None:
    code, out, err = await run_to_exit(app, *extra, "--port", "0", backend=anyio_backend)
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    if message.startswith("cannot import"):
        assert line.startswith(f"refserver: error: {message} (searched ")
        assert line.endswith(" and sys.path)")
    else:
        assert line == f"refserver: error: {message}"


async def test_bad_option_value_is_a_usage_error(anyio_backend: str) -> None:
    code, out, err = await run_to_exit("tests.apps.basic:app", "--lifespan", "maybe", backend=anyio_backend)
    assert code == 2
    assert out == ""
    assert err.splitlines()[-1] == (
        "refserver: error: argument --lifespan: invalid choice: 'maybe' (choose from auto, on, off)"
    ) or err.splitlines()[-1] == (
        "refserver: error: argument --lifespan: invalid choice: 'maybe' (choose from 'auto', 'on', 'off')"
    )
    assert "Traceback" not in err


# ---------------------------------------------------------------- in-process


@pytest.fixture
def restore_refserver_logger() -> Iterator[None]:
    """cli.main() configures the "refserver" logger; put it back for caplog's sake."""
    logger = logging.getLogger("refserver")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_backend_trio_without_trio_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_refserver_logger: None
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


async def test_version_flag_matches_package(anyio_backend: str) -> None:
    code, out, err = await run_to_exit("--version", backend=anyio_backend)
    assert (code, out, err) == (0, f"refserver {refserver.__version__}\n", "")


import importlib  # noqa: E402  (used by the console-script test)
