"""A real browser: headless Chromium (Debian's ``chromium``), driven by Playwright through
``executable_path``, against the example apps served by refserver.testing.serve_in_thread.

* Page reload (examples/page_reload.py): the page is loaded, reloaded three times, navigated
  away from, loaded again and its tab closed. Every old connection's app gets
  ``websocket.disconnect`` with the code Chromium sent (1001, "going away", RFC 6455 §7.4.1,
  for all three ways of leaving), its next ``receive()`` returns the same event (www spec 2.5,
  "Disconnect - receive event"), its next ``send()`` raises ``ClientDisconnected``, an OSError
  (www spec 2.5, "Disconnected Client - send exception"); every new connection works; nothing is logged at error level.
* Denial (examples/denial.py): the page sees the denied WebSocket fail (close 1006) while the
  test reads the app's HTTP response to the same handshake (asgi extensions, "Websocket Denial
  Response").
* Chat (examples/chat.py): two tabs talk; a screenshot of the page is kept as an artifact.

Skips when Chromium or Playwright is missing, unless REFSERVER_REQUIRE_BROWSER=1 (set by
.ci/run), which turns the skip into a failure.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import websockets.exceptions
import websockets.sync.client

from examples import denial
from examples.chat import ChatApp
from examples.page_reload import PageReloadApp
from refserver.testing import serve_in_thread

TIMEOUT_S = 10.0  # generous: a loaded CI machine starts Chromium slowly
REQUIRED = os.environ.get("REFSERVER_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(os.environ.get("REFSERVER_ARTIFACTS", Path(__file__).resolve().parent.parent / "artifacts"))

BOTH = pytest.mark.parametrize("backend", ["asyncio", "trio"])


def unavailable(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"{reason}; REFSERVER_REQUIRE_BROWSER=1 makes the browser test mandatory")
    pytest.skip(reason)


def chromium_path() -> str | None:
    explicit = os.environ.get("REFSERVER_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        unavailable("no Chromium found (apt-get install chromium, or set REFSERVER_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install playwright; no `playwright install` needed)")
    # Chromium refuses to run its sandbox as root (as in a CI container).
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Callable[[], Any]]:
    context = browser.new_context(viewport={"width": 800, "height": 560})
    context.set_default_timeout(TIMEOUT_S * 1000)

    def new_page() -> Any:
        return context.new_page()

    try:
        yield new_page
    finally:
        context.close()


class Lines:
    """Lines reported by an example app from the server's thread; the test waits on them."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._changed:
            self._lines.append(line)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool]) -> list[str]:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self._lines), TIMEOUT_S):
                raise AssertionError(f"timed out; the app reported {self._lines}")
            return list(self._lines)


def socket_ended(n: int) -> Callable[[list[str]], bool]:
    return lambda lines: any(line.startswith(f"socket {n}: send() ") for line in lines)


def wait_for_echo(page: Any) -> None:
    page.wait_for_function("document.getElementById('log').textContent.includes('echo: hello from')")


@BOTH
def test_reloads_navigation_and_closing_the_tab(
    backend: str, page_factory: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    lines = Lines()
    with serve_in_thread(PageReloadApp(report=lines), backend=backend) as server:
        page = page_factory()
        page.goto(server.http_url + "/")
        wait_for_echo(page)  # socket 1
        for n in (1, 2, 3):
            page.reload()
            wait_for_echo(page)  # socket n + 1
            lines.wait_for(socket_ended(n))
        page.goto("about:blank")  # navigate away
        lines.wait_for(socket_ended(4))
        page.goto(server.http_url + "/")
        wait_for_echo(page)  # socket 5
        page.close()  # close the tab
        seen = lines.wait_for(socket_ended(5))

    outcomes = {}
    for n in range(1, 6):
        mine = [line.removeprefix(f"socket {n}: ") for line in seen if line.startswith(f"socket {n}: ")]
        assert mine[0] == "accepted"
        assert re.fullmatch(r"received 'hello from [0-9.]+'", mine[1]), mine  # the new connection works
        disconnect = re.fullmatch(r"websocket\.disconnect, code (\d+), reason ''", mine[2])
        assert disconnect, mine
        sent = re.fullmatch(r"send\(\) raised (\w+) \(an OSError\): .*", mine[4])
        assert sent, mine
        assert len(mine) == 5, mine
        outcomes[n] = (int(disconnect[1]), mine[3], sent[1])
    # Chromium sends close 1001 ("going away") on reload, on navigating away and on closing the tab.
    same = "receive() again: the same websocket.disconnect"
    assert outcomes == {n: (1001, same, "ClientDisconnected") for n in range(1, 6)}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@BOTH
def test_a_denial_is_a_failed_websocket_to_the_page_and_an_http_response_to_a_client(
    backend: str, page_factory: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    with serve_in_thread(denial.app, backend=backend) as server:
        page = page_factory()
        socket_errors: list[tuple[str, str]] = []
        page.on("websocket", lambda ws: ws.on("socketerror", lambda error: socket_errors.append((ws.url, error))))
        page.goto(server.http_url + "/")
        log = "document.getElementById('log').textContent"
        page.wait_for_function(f"{log}.includes('without token: closed') && {log}.includes('with token: closed')")
        shown = page.inner_text("#log").splitlines()

        with pytest.raises(websockets.exceptions.InvalidStatus) as denied:
            websockets.sync.client.connect(server.ws_url + "/ws", open_timeout=TIMEOUT_S)

    assert [line for line in shown if line.startswith("without token")] == [
        "without token: error",
        "without token: closed 1006",
    ]
    assert [line for line in shown if line.startswith("with token")] == [
        "with token: open",
        "with token: echo hi",
        "with token: closed 1000",
    ]
    # Chromium's reason for the failure names the 401 (its wording differs between versions).
    assert len(socket_errors) == 1 and socket_errors[0][0] == server.ws_url + "/ws"
    assert socket_errors[0][1] in (
        "HTTP Authentication failed; no valid credentials available",
        "Error during WebSocket handshake: Unexpected response code: 401",
    ), socket_errors
    response = denied.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Token realm="echo"'
    assert response.body == b"a token is needed: /ws?token=...\n"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def chat_lines(page: Any) -> list[str]:
    return list(page.locator("#log div").all_inner_texts())


def say(page: Any, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


# One backend: the chat's broadcast runs on both in tests/test_examples.py; this test is about
# what a browser shows, and keeps the screenshot.
@pytest.mark.parametrize("backend", ["asyncio"])
def test_chat_between_two_tabs_and_a_screenshot(
    backend: str, page_factory: Callable[[], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_in_thread(ChatApp(), backend=backend) as server:
        alice, bob = page_factory(), page_factory()
        alice.goto(server.http_url + "/?name=alice")
        alice.wait_for_function("document.getElementById('status').textContent === 'connected as alice'")
        bob.goto(server.http_url + "/?name=bob")
        bob.wait_for_function("document.getElementById('status').textContent === 'connected as bob'")
        say(alice, "hello bob")
        bob.wait_for_function("document.getElementById('log').textContent.includes('alice: hello bob')")
        say(bob, "hi alice, closing my tab now")
        bob.wait_for_function("document.getElementById('log').textContent.includes('bob: hi alice')")
        bob.close()
        alice.wait_for_function("document.getElementById('log').textContent.includes('bob left')")
        assert chat_lines(alice) == [
            "alice joined",
            "bob joined",
            "alice: hello bob",
            "bob: hi alice, closing my tab now",
            "bob left",
        ]
        path = shot(alice, backend)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with capsys.disabled():
        print(f"\nchat screenshot: {path}")


def shot(page: Any, backend: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"chat-{backend}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
