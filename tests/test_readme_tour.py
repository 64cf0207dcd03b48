"""README.md's tour: the trace lines it shows are lines refserver prints for the same steps
(a page reload is a close frame with 1001 from the old page's WebSocket), and its test block
passes as a reader would run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from examples.chat import ChatApp
from examples.page_reload import PageReloadApp
from refserver.testing import serve
from refserver.trace import TraceRecord, render_text
from tests.support import TIMEOUT, Recorder, WSClient

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def tour() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## A short tour\n")
    return text[start : text.index("\n---\n", start)]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```$", tour(), re.MULTILINE | re.DOTALL)


def without_connection(line: str) -> str:
    """``c2 ws recv ...`` -> ``ws recv ...``: connection numbers depend on the browser's requests."""
    return line.split(" ", 1)[1]


def printed(records: list[TraceRecord]) -> list[str]:
    return [without_connection(render_text(r)) for r in records]


def test_the_tour_has_its_commands_traces_and_test() -> None:
    assert blocks("sh") == [".venv/bin/refserver examples.chat:app --trace\n"]
    assert "`.venv/bin/refserver examples.page_reload:app --trace`" in tour()
    assert len(blocks("text")) == 2
    assert len(blocks("python")) == 1


@pytest.mark.anyio
async def test_the_chat_lines_are_what_a_reload_prints() -> None:
    """The old page's socket closes with 1001 while another member stays; that member hears
    "left" only after the app received the disconnect, so waiting on it is enough."""
    async with serve(ChatApp(), record=True) as server:
        stays = await WSClient.connect(server.port, "/ws?name=bob")
        assert json.loads(await stays.next_message()) == {"system": "bob joined"}
        old = await WSClient.connect(server.port, "/ws?name=ada")
        assert json.loads(await stays.next_message()) == {"system": "ada joined"}
        await old.close(1001)
        await old.expect_close()
        assert json.loads(await stays.next_message()) == {"system": "ada left"}
        new = await WSClient.connect(server.port, "/ws?name=ada")
        assert json.loads(await stays.next_message()) == {"system": "ada joined"}
        for client in (new, stays, old):
            await client.aclose()
        lines = printed(server.records)
    shown = [without_connection(line) for line in blocks("text")[0].splitlines()]
    # every line shown, in the order shown (other lines may come in between)
    position = 0
    for line in shown:
        assert line in lines[position:], (line, lines)
        position = lines.index(line, position) + 1


@pytest.mark.anyio
async def test_the_page_reload_lines_are_what_a_reload_prints() -> None:
    rec = Recorder()
    app = PageReloadApp(report=lambda line: rec.add("report", line))
    async with serve(app, record=True) as server:
        old = await WSClient.connect(server.port, "/ws")
        await old.send_text("hello")
        assert await old.next_message() == "hello"
        await old.close(1001)
        await old.expect_close()
        await rec.wait_for(lambda r: any("send() raised" in line for line in r.of("report")), TIMEOUT)
        await old.aclose()
        lines = printed(server.records)
    shown = [without_connection(line) for line in blocks("text")[1].splitlines()]
    ws_lines = [line for line in lines if line.startswith("ws ")]
    assert ws_lines[-3:] == shown


def test_the_tour_test_block_passes(tmp_path: Path) -> None:
    (tmp_path / "test_tour_block.py").write_text(blocks("python")[0])
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
            "-p",
            "no:asyncio",
            "-W",
            "error",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^1 passed in ", done.stdout, re.MULTILINE), done.stdout
