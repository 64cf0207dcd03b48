"""A small WebSocket client for load: wsproto over anyio, with a reset (RST) on demand."""

from __future__ import annotations

import socket
import struct

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)


class HandshakeRefused(Exception):
    pass


class LoadClient:
    def __init__(self, stream: anyio.abc.SocketStream, ws: WSConnection) -> None:
        self.stream = stream
        self.ws = ws
        self.closed_by_server: CloseConnection | None = None

    @classmethod
    async def open(cls, port: int, path: str, host: str = "127.0.0.1") -> LoadClient:
        stream = await anyio.connect_tcp(host, port)
        try:
            ws = WSConnection(ConnectionType.CLIENT)
            await stream.send(ws.send(Request(host=host, target=path)))
            while True:
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        client = cls(stream, ws)
                        return client
                    if isinstance(event, RejectConnection):
                        raise HandshakeRefused(f"HTTP {event.status_code}")
                ws.receive_data(await stream.receive())
        except BaseException:
            await stream.aclose()
            raise

    async def send_text(self, text: str) -> None:
        await self.stream.send(self.ws.send(TextMessage(data=text)))

    async def next_message(self) -> str | bytes | None:
        """The next whole message, or None once the server's close frame (or EOF) came."""
        parts: list[str | bytes] = []
        while True:
            for event in self.ws.events():
                if isinstance(event, Message):
                    parts.append(event.data)
                    if event.message_finished:
                        if isinstance(event, TextMessage):
                            return "".join(str(p) for p in parts)
                        return b"".join(bytes(p) for p in parts if isinstance(p, bytes))
                elif isinstance(event, Ping) and self.ws.state is ConnectionState.OPEN:
                    await self.stream.send(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.closed_by_server = event
                    return None
            try:
                data = await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return None
            self.ws.receive_data(data)

    async def close(self, code: int = 1000) -> list[str | bytes]:
        """Send a close frame, wait for the server's, close TCP; returns messages that came
        meanwhile (none are expected)."""
        extra: list[str | bytes] = []
        await self.stream.send(self.ws.send(CloseConnection(code=code)))
        while True:
            message = await self.next_message()
            if message is None:
                break
            extra.append(message)
        await self.stream.aclose()
        return extra

    async def reset(self) -> None:
        sock: socket.socket = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self.stream.aclose()
