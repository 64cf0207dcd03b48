"""Accepting connections: every queued connection is taken when the listening socket is
readable (new clients are not starved by busy ones), and connections still in the kernel's
accept queue when shutdown begins are served, not reset."""

from __future__ import annotations

import socket
import struct
from functools import partial
from typing import Any

import anyio
import pytest

from refserver import Config
from refserver.runtime.listener import Acceptor
from refserver.runtime.server import Listening, serve
from tests.support import TIMEOUT, http_request, refserver_errors, serving

pytestmark = pytest.mark.anyio


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


class TestAcceptQueue:
    async def test_one_readable_event_takes_every_waiting_connection(self) -> None:
        listener = listening_socket()
        clients = [socket.create_connection(listener.getsockname()) for _ in range(20)]
        taken: list[socket.socket] = []
        try:
            acceptor = Acceptor(listener)
            with anyio.fail_after(TIMEOUT):
                await anyio.wait_readable(listener)
            assert acceptor.accept_waiting(taken.append) == 20
            assert acceptor.accept_waiting(taken.append) == 0
            assert all(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for conn in taken)
        finally:
            for sock in (*clients, *taken, listener):
                sock.close()


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"hi"})


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


async def test_connections_queued_when_shutdown_begins_are_answered() -> None:
    """The clients connect (the kernel queues them) and send a request in the very step that
    starts the shutdown, so only the shutdown's last look at the accept queue can take them."""
    queued: list[socket.socket] = []
    port = 0

    async def shutdown_trigger() -> None:
        await go.wait()
        for _ in range(10):  # no await in between: the server cannot accept them before
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            queued.append(sock)

    go = anyio.Event()
    config = Config(port=0, lifespan="off", shutdown_timeout_s=TIMEOUT)
    async with anyio.create_task_group() as tg:
        listening: Listening = await tg.start(partial(serve, hello, config, shutdown_trigger=shutdown_trigger))
        port = listening.port
        go.set()
    answers = []
    for sock in queued:
        with sock:
            sock.settimeout(TIMEOUT)
            answers.append(await anyio.to_thread.run_sync(read_to_eof, sock))
    assert len(answers) == 10
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nconnection: close\r\n" in answer
        assert answer.endswith(b"\r\n\r\nhi")


async def test_a_client_that_resets_before_it_is_served_does_not_stop_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(hello) as server:
        for _ in range(5):  # queued, then reset, before the server can take them
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        response, body = await http_request(server.port)
    assert (response.status_code, body) == (200, b"hi")
    assert refserver_errors(caplog) == []
