"""The harness sees the three server bugs that once passed the whole catalogue: bytes outside
any response on the HTTP wire (a HEAD body, a body message sent after the response completed
and written raw), and a lifespan shutdown that stops waiting for the app's answer.

The client's parser is fed bytes through a stream of canned chunks (no sockets); the verdicts
are judged on hand-made traces of the shape each bug leaves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import pytest

from refserver.conformance import verdict as V
from refserver.conformance.catalogue import BY_ID
from refserver.conformance.client import Connection, Trace
from refserver.conformance.observe import observe
from refserver.conformance.runner import TargetRun, judge
from refserver.conformance.targets import BY_NAME, TargetInfo

Record = dict[str, Any]
OK_EMPTY = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
OK_HELLO = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"


class CannedStream(anyio.abc.ByteStream):
    """What the server sent, in the pieces it arrived in, then the end of the connection."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)

    async def send(self, item: bytes) -> None:
        raise AssertionError("the parser writes nothing here")

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {}


async def statuses(chunks: list[bytes], methods: list[str]) -> tuple[str, list[Record]]:
    trace = Trace()
    conn = Connection(CannedStream(chunks), trace)
    conn.methods = methods
    await conn.read_forever()
    return observe("client.statuses", trace.records, {}), trace.records


@pytest.mark.anyio
class TestRFC9112Section4StatusLine:
    """RFC 9112 §4: a response begins with its status line; bytes before it belong to no response."""

    async def test_responses_in_order_pass(self) -> None:
        assert (await statuses([OK_HELLO + OK_HELLO], ["GET", "GET"]))[0] == "200,200"

    async def test_head_body_on_the_wire_is_stray(self) -> None:
        value, records = await statuses([OK_EMPTY + b"hello", OK_HELLO], ["HEAD", "GET"])
        assert value == "200,stray,200"
        assert [r["data"]["bytes"] for r in records if r["ev"] == "stray"] == ["hello"]

    async def test_stray_bytes_split_across_reads(self) -> None:
        glued = OK_HELLO + b"extra" + OK_HELLO
        pieces = [glued[i : i + 7] for i in range(0, len(glued), 7)]
        assert (await statuses(pieces, ["GET", "GET"]))[0] == "200,stray,200"

    async def test_stray_bytes_at_the_end_of_the_connection(self) -> None:
        assert (await statuses([OK_HELLO + b"extra"], ["GET"]))[0] == "200,stray"


def peer(version: str = "2.5") -> TargetRun:
    run = TargetRun(TargetInfo(BY_NAME["refserver"], True, "1.0"), sys.executable)
    run.info = TargetInfo(run.info.spec.__class__("peer", "peer", ("x",)), True, "1.0")
    run.advertised = {"http": version, "websocket": version}
    return run


def client(ev: str, **fields: Any) -> Record:
    return {"t": 0.1, "side": "client", "ev": ev, **fields}


def app(ev: str, instance: Any = 0, **fields: Any) -> Record:
    return {"t": 0.1, "side": "app", "ev": ev, "instance": instance, **fields}


def response(body: str = "") -> Record:
    return client("response", status=200, headers=[], body={"bytes": body, "len": len(body)})


def stray(data: str) -> Record:
    return client("stray", data={"bytes": data, "len": len(data)})


class TestStrayBytesFail:
    def test_head_body(self) -> None:
        records = [response(), stray("hello"), response("hello")]
        assert judge(peer(), BY_ID["http.response.head"], records, None).verdict == V.FAIL

    def test_body_after_complete_written_raw(self) -> None:
        records = [app("sent", step=2), response("one"), stray("extra"), response("one")]
        c = judge(peer(), BY_ID["http.after-complete"], records, None)
        assert c.verdict == V.FAIL
        assert [k.value for k in c.checks if k.label == "nothing extra on the wire"] == ["200,stray,200"]


class TestLifespanShutdownCompleteIsAwaited:
    """lifespan spec 2.0, "Shutdown - receive event": the server must wait for lifespan.shutdown.complete
    before terminating; the probe answers a second late."""

    def run(self, answered: bool, exit_status: str) -> V.Cell:
        records: list[Record] = [
            app("hello", instance="lifespan", scope={"type": "lifespan"}),
            app("received", instance="lifespan", step=0, kind="lifespan.startup"),
            app("sent", instance="lifespan", step=1, kind="lifespan.startup.complete"),
            app("received", instance="lifespan", step=2, kind="lifespan.shutdown"),
            {"t": 0.2, "side": "runner", "ev": "server_exit", "value": exit_status},
        ]
        if answered:
            records.insert(-1, app("mark", instance="lifespan", step=5, name="answering"))
        return judge(peer(), BY_ID["lifespan.shutdown"], records, None)

    def test_waiting_for_the_answer_passes(self) -> None:
        assert self.run(True, "status 0").verdict == V.PASS

    def test_giving_up_before_the_answer_fails(self) -> None:
        c = self.run(False, "status 1")
        assert c.verdict == V.FAIL
        found = [k for k in c.checks if k.label == "the server waited for lifespan.shutdown.complete"]
        assert [(k.value, k.verdict) for k in found] == [("missing first", V.FAIL)]
