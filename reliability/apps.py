"""Apps for the reliability runs. Only the standard library and refserver's public API: they also
run in a ``python -m refserver`` subprocess.

``echo`` echoes every WebSocket message on ``/ws/<id>`` and records, per connection id, each
``websocket.disconnect`` code it received, whether a later ``receive()`` repeated it, and whether a
``send()`` raised :class:`refserver.ClientDisconnected`. ``GET /stats`` returns that record as
JSON and ``GET /stats/clear`` empties it (once a soak round has been checked); ``GET /`` answers
``ok``, and ``GET /slow`` answers after ``?ms`` milliseconds.

``GET /memory`` reports where the process's memory is, for the soak's leak check (all of it is
the app's business, none of it refserver's): resident memory; what ``tracemalloc`` traces, when
the server was started with ``PYTHONTRACEMALLOC=1`` (and which source lines' share grew since
the first report); the count of every type of object the
garbage collector tracks; pymalloc's arenas (from ``sys._debugmallocstats``); and glibc's
``mallinfo2`` figures. ``GET /memory?trim=1`` then calls glibc's ``malloc_trim(0)``, which hands
the free pages malloc keeps back to the system, and reports resident memory once more.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import sys
import tempfile
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import anyio

from refserver import ClientDisconnected

Scope = dict[str, Any]


@dataclass
class EchoStats:
    """What the echo app saw, per connection id (the last path segment)."""

    codes: dict[str, list[int]] = field(default_factory=dict)
    repeated: dict[str, bool] = field(default_factory=dict)
    send_raised: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    running: int = 0
    other_errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "codes": self.codes,
            "repeated": self.repeated,
            "send_raised": self.send_raised,
            "messages": self.messages,
            "running": self.running,
            "other_errors": self.other_errors,
        }

    def clear(self) -> None:
        """Forget the per-connection record (the soak has checked it)."""
        self.codes.clear()
        self.repeated.clear()
        self.send_raised.clear()
        self.other_errors.clear()


STATS = EchoStats()


def reset_stats() -> EchoStats:
    global STATS
    STATS = EchoStats()
    return STATS


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(scope: Scope, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/stats":
        body = json.dumps(STATS.as_json()).encode()
    elif scope["path"] == "/stats/clear":
        STATS.clear()
        body = b"cleared"
    elif scope["path"] == "/memory":
        body = json.dumps(memory_report(trim=scope["query_string"] == b"trim=1")).encode()
    elif scope["path"] == "/slow":
        query = scope["query_string"].decode()
        await anyio.sleep(int(query or "0") / 1000)  # the app's own work, not a test's synchronisation
        body = b"slow " + query.encode()
    else:
        body = b"ok"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]}
    )
    await send({"type": "http.response.body", "body": body})


def rss_kib() -> int:
    """This process's resident memory (``VmRSS``), KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


_MALLINFO2 = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2]


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


def mallinfo() -> dict[str, int]:
    """glibc's own account (``mallinfo2``, glibc 2.33+): ``arena`` bytes taken from the system
    by ``brk`` and per-thread arenas, ``uordblks`` of them in use, ``fordblks`` free but kept,
    ``hblkhd`` in blocks mapped on their own. Empty when not available."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return {}
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {name: int(getattr(info, name)) for name in _MALLINFO2}


_MALLOCSTATS = re.compile(r"^(# [a-z ]+?|Total)\s+=\s+([\d,]+)$", re.M)


def pymalloc_stats() -> dict[str, int]:
    """pymalloc's figures, as ``sys._debugmallocstats()`` prints them on the C-level stderr:
    ``# arenas allocated current`` (1 MiB each, returned to the system only when every block in
    them is free), ``# bytes in allocated blocks``, ``# bytes in available blocks`` and so on."""
    with tempfile.TemporaryFile() as into:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(into.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        into.seek(0)
        text = into.read().decode(errors="replace")
    figures: dict[str, int] = {}
    for name, value in _MALLOCSTATS.findall(text):
        figures.setdefault(name.lstrip("# "), int(value.replace(",", "")))  # the first "Total": the arenas'
    return figures


_FIRST_SNAPSHOT: list[tracemalloc.Snapshot] = []


def traced_growth(top: int = 10) -> list[str]:
    """When tracing: the ``top`` source lines whose traced memory grew most since the first
    report (whose snapshot is kept), as ``tracemalloc`` prints them."""
    if not tracemalloc.is_tracing():
        return []
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    if not _FIRST_SNAPSHOT:
        _FIRST_SNAPSHOT.append(snapshot)
        return []
    return [str(stat) for stat in snapshot.compare_to(_FIRST_SNAPSHOT[0], "lineno")[:top]]


def memory_report(trim: bool = False) -> dict[str, Any]:
    """Where this process's memory is, after a full garbage collection; see the module's text."""
    gc.collect()
    counts = Counter(type(obj).__qualname__ for obj in gc.get_objects())
    current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (-1, -1)
    report: dict[str, Any] = {
        "rss_kib": rss_kib(),
        "tracemalloc": tracemalloc.is_tracing(),
        "traced_current": current,
        "traced_peak": peak,
        "gc_objects": sum(counts.values()),
        "gc_counts": dict(counts),
        "pymalloc": pymalloc_stats(),
        "mallinfo": mallinfo(),
        "traced_growth": traced_growth(),
    }
    if trim:
        libc = _libc()
        report["trimmed"] = bool(libc.malloc_trim(0)) if libc is not None else None
        report["rss_kib_after_trim"] = rss_kib()
        report["mallinfo_after_trim"] = mallinfo()
    return report


async def _websocket(scope: Scope, receive: Any, send: Any) -> None:
    cid = scope["path"].rsplit("/", 1)[-1]
    stats = STATS
    stats.running += 1
    try:
        connect = await receive()
        if connect["type"] != "websocket.connect":
            stats.other_errors.append(f"{cid}: first event {connect!r}")
            return
        try:
            await send({"type": "websocket.accept"})
        except ClientDisconnected:
            stats.send_raised[cid] = stats.send_raised.get(cid, 0) + 1
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                stats.codes.setdefault(cid, []).append(event["code"])
                stats.repeated[cid] = await receive() == event
                return
            stats.messages += 1
            reply = {"type": "websocket.send", "bytes": event.get("bytes"), "text": event.get("text")}
            try:
                await send(reply)
            except ClientDisconnected:
                stats.send_raised[cid] = stats.send_raised.get(cid, 0) + 1
    finally:
        stats.running -= 1


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    elif scope["type"] == "http":
        await _http(scope, receive, send)
    else:
        await _websocket(scope, receive, send)


async def streamer(scope: Scope, receive: Any, send: Any) -> None:
    """For shutdown under load: each WebSocket on ``/ws/<id>`` is sent ``<id>:<n>`` for
    n = 0, 1, ... every ``?pace=`` milliseconds (default 10) until ``send()`` raises; then the app prints one line,
    ``ws <id> last_ok <n> code <code>``: the last message whose ``send()`` returned and the
    disconnect code it got. HTTP is as in :func:`echo` (``/slow?ms`` for requests in flight)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":
        await _http(scope, receive, send)
        return
    cid = scope["path"].rsplit("/", 1)[-1]
    query = scope["query_string"].decode()
    pace_s = int(query.partition("pace=")[2] or "10") / 1000
    await receive()
    last_ok = -1
    try:
        await send({"type": "websocket.accept"})
        n = 0
        while True:
            await send({"type": "websocket.send", "text": f"{cid}:{n}"})
            last_ok = n
            n += 1
            await anyio.sleep(pace_s)  # the app's pace
    except ClientDisconnected:
        pass
    event = await receive()
    while event["type"] != "websocket.disconnect":
        event = await receive()
    print(f"ws {cid} last_ok {last_ok} code {event['code']}", flush=True)
