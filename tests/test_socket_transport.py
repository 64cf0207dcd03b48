"""The transport that reads and writes a socket itself (``runtime/task_transport.py``,
``SocketIO``; plain connections on trio), and the wake-up call of trio's runtime
(``runtime/tasks.py``, ``TrioWakeup``). Both run on either backend's readiness waits."""

from __future__ import annotations

import socket
import struct

import anyio
import anyio.lowlevel
import pytest

from refserver.runtime.task_transport import SocketIO, TaskTransport
from refserver.runtime.tasks import TrioWakeup
from refserver.runtime.transport import PeerGone, describe
from tests.support import TIMEOUT

pytestmark = pytest.mark.anyio

BIG = bytes(range(256)) * (32 << 10)  # 8 MiB: more than the kernel buffers take at once


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair: (server side, client side)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


async def read_all(sock: socket.socket, size: int) -> bytes:
    sock.setblocking(False)
    chunks: list[bytes] = []
    got = 0
    while got < size:
        await anyio.wait_readable(sock)
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            continue
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


class TestRFC9293Section3_10_2SendCall:
    async def test_a_write_larger_than_the_buffers_arrives_whole_and_in_order(self) -> None:
        server, client = tcp_pair()
        transport = SocketIO(server)
        received: list[bytes] = []
        with client, anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    received.append(await read_all(client, len(BIG) + 3))

                tg.start_soon(reader)
                await transport.send(BIG)
                await transport.send(b"end")
            await transport.aclose()
        assert received == [BIG + b"end"]

    async def test_abort_cuts_a_blocked_write_short_and_nothing_more_is_written(self) -> None:
        """``TaskTransport.abort`` (the writer task's write, over a socket)."""
        server, client = tcp_pair()
        transport = TaskTransport(SocketIO(server))
        raised: list[str] = []

        async def main() -> None:
            transport.write([BIG])  # the peer does not read: the rest waits in the writer
            async with anyio.create_task_group() as tg:

                async def flusher() -> None:
                    try:
                        await transport.flush()
                    except PeerGone as exc:
                        raised.append(str(exc))

                tg.start_soon(flusher)
                await anyio.wait_all_tasks_blocked()
                transport.abort("aborted by the test")
            transport.write([b"more"])
            with pytest.raises(PeerGone, match=r"^aborted by the test$"):
                await transport.flush()

        with client, anyio.fail_after(TIMEOUT):
            await transport.run(main)
        assert raised == ["aborted by the test"]


class TestRFC9293Section3_10_3ReceiveCall:
    async def test_bytes_then_the_peers_fin(self) -> None:
        server, client = tcp_pair()
        transport = SocketIO(server)
        with anyio.fail_after(TIMEOUT):
            client.sendall(b"hello")
            assert await transport.receive() == b"hello"
            client.close()
            with pytest.raises(anyio.EndOfStream):
                await transport.receive()
            with pytest.raises(anyio.EndOfStream):
                await transport.receive()
            await transport.aclose()

    async def test_a_reset_says_so(self) -> None:
        server, client = tcp_pair()
        transport = SocketIO(server)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
        with anyio.fail_after(TIMEOUT):
            with pytest.raises(OSError) as raised:
                await transport.receive()
            await transport.aclose()
        assert describe(raised.value) == "connection reset by peer"

    async def test_a_cancelled_read_takes_no_bytes(self) -> None:
        server, client = tcp_pair()
        transport = SocketIO(server)
        with client, anyio.fail_after(TIMEOUT):
            with anyio.CancelScope() as scope:
                scope.cancel()
                client.sendall(b"kept")
                await transport.receive()  # cancelled before it reads
            assert scope.cancelled_caught
            assert await transport.receive() == b"kept"
            await transport.aclose()

    async def test_closing_wakes_a_waiting_read(self) -> None:
        server, client = tcp_pair()
        transport = SocketIO(server)
        results: list[BaseException] = []
        with client, anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:

                async def reader() -> None:
                    try:
                        await transport.receive()
                    except anyio.ClosedResourceError as exc:
                        results.append(exc)

                tg.start_soon(reader)
                await anyio.wait_all_tasks_blocked()
                await transport.aclose()
        assert len(results) == 1
        assert describe(results[0]) == "connection closed"


@pytest.mark.parametrize("anyio_backend", ["trio"])
class TestTrioWakeup:
    async def test_a_fire_before_the_wait_is_remembered_once(self) -> None:
        wakeup = TrioWakeup()
        wakeup.fire()
        wakeup.fire()
        woken: list[str] = []
        with anyio.fail_after(TIMEOUT):
            await wakeup.wait()  # at once
            async with anyio.create_task_group() as tg:

                async def waiter() -> None:
                    await wakeup.wait()  # nothing fired since: it waits
                    woken.append("woken")

                tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                assert woken == []
                wakeup.fire()
        assert woken == ["woken"]

    async def test_a_fire_wakes_the_waiter_and_a_cancelled_wait_is_forgotten(self) -> None:
        wakeup = TrioWakeup()
        woken: list[str] = []
        with anyio.fail_after(TIMEOUT):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await wakeup.wait()
            assert scope.cancelled_caught
            async with anyio.create_task_group() as tg:

                async def waiter() -> None:
                    await wakeup.wait()
                    woken.append("woken")

                tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                wakeup.fire()
        assert woken == ["woken"]
