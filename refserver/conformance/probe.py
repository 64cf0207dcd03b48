"""The probe app: a plain ASGI 3 app, importable by any server as
``refserver.conformance.probe:app``.

For each connection it finds the scenario in the request path
(``/<scenario-id>/<token>/...``), runs that scenario's app script, and reports every
``receive()`` result, every ``send()`` and what it returned or raised (the exception class,
its MRO and whether it is an ``OSError``), and how the app ended, as JSON datagrams over
UDP to the runner on loopback. The runner's address comes from the environment variable
``REFSERVER_PROBE_REPORT`` (``127.0.0.1:PORT``) or from :func:`make_app`.

The runner can also open *gates*: a datagram ``{"gate": NAME}`` sent back to the socket
that reported lets the app past ``WaitGate(NAME)``. So the client waits on the app and the
app waits on the client by events, not by sleeping.

Whatever ``receive()`` or ``send()`` raises into the app is reported and then re-raised, on
every scope, as an app that does not catch it would do.

Standard library only, and it works under asyncio and trio (and any server that runs
an asyncio loop), because it runs inside every server under test.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from refserver.conformance.steps import (
    AppMark,
    AppStep,
    DrainBody,
    Echo,
    FileResponse,
    Raise,
    ReceiveUntil,
    RequireExtension,
    Respond,
    Return,
    SendUntilBlocked,
    SetState,
    Sleep,
    WaitGate,
)
from refserver.conformance.steps import Receive as ReceiveStep
from refserver.conformance.steps import Send as SendStep

REPORT_ENV = "REFSERVER_PROBE_REPORT"
LIFESPAN_ENV = "REFSERVER_PROBE_LIFESPAN"  # "<scenario-id>/<token>": run that scenario on the lifespan scope
HEALTH_PATH = "/__probe__/health"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_MAX_TEXT = 400


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe rendering of an ASGI value; bytes become ``{"bytes": latin-1, "len": n}``."""
    if depth > 6:
        return repr(value)[:_MAX_TEXT]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + f"...<{len(value)} chars>"
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return {"bytes": data[:_MAX_TEXT].decode("latin-1"), "len": len(data)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(repr(v) for v in value)
    return {"repr": repr(value)[:_MAX_TEXT], "pytype": type(value).__name__}


def _scope_summary(scope: Mapping[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in (
        "type",
        "asgi",
        "http_version",
        "scheme",
        "method",
        "path",
        "raw_path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "subprotocols",
    ):
        summary[key] = jsonable(scope[key]) if key in scope else "<absent>"
    extensions = scope.get("extensions")
    summary["extensions"] = sorted(extensions) if isinstance(extensions, Mapping) else "<absent>"
    if isinstance(extensions, Mapping) and "tls" in extensions:
        summary["tls"] = _tls_summary(extensions["tls"])
    state = scope.get("state", "<absent>")
    summary["state"] = jsonable(dict(state)) if isinstance(state, Mapping) else jsonable(state)
    for key in ("client", "server"):
        value = scope.get(key)
        if isinstance(value, list | tuple) and len(value) == 2:
            summary[key + "_types"] = [type(value[0]).__name__, type(value[1]).__name__]
    return summary


def _certificate(value: Any) -> Any:
    """A PEM certificate as ``{"pem_sha256": <SHA-256 of its DER>}`` (the runner compares it with
    the certificates it made); ``{"not_pem": ...}`` for a string that is not one."""
    import hashlib
    import ssl

    if not isinstance(value, str):
        return jsonable(value) if value is None else {"pytype": type(value).__name__}
    try:
        der = ssl.PEM_cert_to_DER_cert(value)
    except ValueError:
        return {"not_pem": value[:60]}
    return {"pem_sha256": hashlib.sha256(der).hexdigest()}


def _tls_summary(value: Any) -> Any:
    """The scope's ``tls`` extension (tls extension, "TLS Connection Scope"), its certificates as
    fingerprints and every other entry as it is."""
    if not isinstance(value, Mapping):
        return {"pytype": type(value).__name__}
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "server_cert":
            out[key] = _certificate(item)
        elif key == "client_cert_chain":
            if isinstance(item, list | tuple):
                out[key] = [_certificate(c) for c in item]
            else:
                out[key] = {"pytype": type(item).__name__}
        else:
            out[str(key)] = jsonable(item)
    return out


def _exception(exc: BaseException) -> dict[str, Any]:
    return {
        "exc": type(exc).__name__,
        "module": type(exc).__module__,
        "mro": [c.__name__ for c in type(exc).__mro__],
        "oserror": isinstance(exc, OSError),
        "text": str(exc)[:_MAX_TEXT],
    }


def _is_cancellation(exc: BaseException) -> bool:
    return not isinstance(exc, Exception)


# ---------------------------------------------------------------- async-library agnostic helpers


def _flavour() -> str:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "trio"
    return "asyncio"


async def _sleep(seconds: float) -> None:
    if _flavour() == "asyncio":
        import asyncio

        await asyncio.sleep(seconds)
    else:
        import trio

        await trio.sleep(seconds)


_TIMED_OUT = object()


async def _within(awaitable: Awaitable[Any], timeout: float | None) -> Any:
    """Await with a timeout; return ``_TIMED_OUT`` if it expired (the await is cancelled)."""
    if timeout is None:
        return await awaitable
    if _flavour() == "asyncio":
        import asyncio

        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            return _TIMED_OUT
    import trio

    with trio.move_on_after(timeout):
        return await awaitable
    return _TIMED_OUT


# ---------------------------------------------------------------- reporting


class Reporter:
    """Sends the reports of one connection (``token``) to the runner; receives its gates."""

    def __init__(self, address: tuple[str, int] | None, token: str) -> None:
        self.address = address
        self.token = token
        self.seq = 0
        self.gates: set[str] = set()
        self.sock: socket.socket | None = None
        if address is not None:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.sock.setblocking(False)

    def report(self, ev: str, **fields: Any) -> None:
        if self.sock is None or self.address is None:
            return
        self.seq += 1
        record = {"token": self.token, "seq": self.seq, "t": time.monotonic(), "ev": ev, **fields}
        data = json.dumps(record, default=repr).encode()
        if len(data) > 60000:
            record = {"token": self.token, "seq": self.seq, "t": record["t"], "ev": ev, "truncated": True}
            data = json.dumps(record).encode()
        try:
            self.sock.sendto(data, self.address)
        except OSError:
            pass

    def _poll(self) -> None:
        if self.sock is None:
            return
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, OSError):
                return
            try:
                name = json.loads(data).get("gate")
            except ValueError:
                continue
            if isinstance(name, str):
                self.gates.add(name)

    async def wait_gate(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            self._poll()
            if name in self.gates:
                return True
            if time.monotonic() >= deadline:
                return False
            await _sleep(0.003)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


# ---------------------------------------------------------------- running an app script


class _Unsupported(Exception):
    pass


class ScriptRunner:
    def __init__(self, scope: Scope, receive: Receive, send: Send, rep: Reporter) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.rep = rep
        self._quiet = False  # http.request messages are not reported one by one (DrainBody(quiet=True))

    async def receive(self, timeout: float | None, step: int, catch: bool = False) -> Any:
        started = time.monotonic()
        try:
            message = await _within(self._receive(), timeout)
        except BaseException as exc:
            # Recorded, then re-raised, as a real app that does not catch it would: the
            # server must see what it raised into the app (it may log it, close, or exit).
            self.rep.report("receive_raised", step=step, **_exception(exc))
            if catch and not _is_cancellation(exc):
                return None
            raise
        if message is _TIMED_OUT:
            self.rep.report("receive_timeout", step=step, timeout=timeout)
            return None
        kind = message.get("type") if isinstance(message, Mapping) else None
        if not (self._quiet and kind == "http.request"):
            self.rep.report(
                "received", step=step, kind=kind, msg=jsonable(message), duration=round(time.monotonic() - started, 4)
            )
        return message

    async def send(
        self, message: MutableMapping[str, Any], timeout: float | None, step: int, catch: bool = False
    ) -> str:
        started = time.monotonic()
        kind = message.get("type")
        try:
            result = await _within(self._send(message), timeout)
        except BaseException as exc:
            self.rep.report(
                "send_raised",
                step=step,
                kind=kind,
                msg=jsonable(message),
                duration=round(time.monotonic() - started, 4),
                **_exception(exc),
            )
            if catch and not _is_cancellation(exc):
                return "raised"
            raise
        if result is _TIMED_OUT:
            self.rep.report("send_blocked", step=step, kind=kind, msg=jsonable(message), timeout=timeout)
            return "blocked"
        self.rep.report(
            "sent", step=step, kind=kind, msg=jsonable(message), duration=round(time.monotonic() - started, 4)
        )
        return "returned"

    async def run(self, steps: tuple[AppStep, ...]) -> None:
        """Run the app script, each step by its handler in :data:`APP_HANDLERS`."""
        for index, step in enumerate(steps):
            handler = APP_HANDLERS.get(type(step))
            if handler is None:  # pragma: no cover - a catalogue error
                raise ValueError(f"no handler for the app step {step!r}")
            if await handler(self, step, index) is _STOP:
                return

    # ------------------------------------------------------------------ one handler per step

    async def _do_receive(self, step: ReceiveStep, index: int) -> None:
        await self.receive(step.timeout, index, step.catch)

    async def _do_receive_until(self, step: ReceiveUntil, index: int) -> None:
        deadline = time.monotonic() + step.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.rep.report("receive_timeout", step=index, timeout=step.timeout)
                return
            message = await self.receive(remaining, index)
            if message is None or message.get("type") == step.kind:
                return

    async def _do_send(self, step: SendStep, index: int) -> None:
        await self.send(dict(step.message), step.timeout, index, step.catch)

    async def _do_echo(self, step: Echo, index: int) -> None:
        message = await self.receive(3.0, index)
        if message is not None and message.get("type") == "websocket.receive":
            reply: dict[str, Any] = {"type": "websocket.send"}
            if message.get("text") is not None:
                reply["text"] = message["text"]
            else:
                reply["bytes"] = message.get("bytes")
            await self.send(reply, 3.0, index)

    async def _do_respond(self, step: Respond, index: int) -> None:
        headers = [list(h) for h in step.headers]
        await self.send({"type": "http.response.start", "status": step.status, "headers": headers}, 3.0, index)
        await self.send({"type": "http.response.body", "body": step.body}, 3.0, index)

    async def _do_drain_body(self, step: DrainBody, index: int) -> None:
        body = bytearray()
        length = 0  # with quiet, only the first bytes are kept (a large body is not held)
        chunks = 0
        deadline = time.monotonic() + step.timeout
        self._quiet = step.quiet
        try:
            while True:
                message = await self.receive(max(deadline - time.monotonic(), 0.01), index)
                if message is None or message.get("type") != "http.request":
                    break
                chunks += 1
                data = message.get("body", b"")
                length += len(data)
                if not self._quiet or len(body) < _MAX_TEXT:
                    body += data[: _MAX_TEXT - len(body)] if self._quiet else data
                if not message.get("more_body", False):
                    break
        finally:
            self._quiet = False
        reported = jsonable(bytes(body))
        reported["len"] = length
        self.rep.report("body", step=index, body=reported, chunks=chunks)

    async def _do_sleep(self, step: Sleep, index: int) -> None:
        await _sleep(step.seconds)

    async def _do_wait_gate(self, step: WaitGate, index: int) -> None:
        opened = await self.rep.wait_gate(step.name, step.timeout)
        self.rep.report("gate", step=index, name=step.name, opened=opened)

    async def _do_mark(self, step: AppMark, index: int) -> None:
        self.rep.report("mark", step=index, name=step.name)

    async def _do_return(self, step: Return, index: int) -> object:
        return _STOP

    async def _do_raise(self, step: Raise, index: int) -> None:
        raise RuntimeError("the probe app raises here, as its script says")

    async def _do_require_extension(self, step: RequireExtension, index: int) -> None:
        extensions = self.scope.get("extensions") or {}
        if step.name not in extensions:
            self.rep.report("unsupported", step=index, extension=step.name)
            raise _Unsupported(step.name)

    async def _do_file_response(self, step: FileResponse, index: int) -> None:
        await self._file_response(step.kind, step.content, index)

    async def _do_send_until_blocked(self, step: SendUntilBlocked, index: int) -> None:
        await self._send_until_blocked(step, index)

    async def _do_set_state(self, step: SetState, index: int) -> None:
        state = self.scope.get("state")
        if isinstance(state, MutableMapping):
            state[step.key] = step.value
            self.rep.report("state_set", step=index, key=step.key)
        else:
            self.rep.report("state_unsupported", step=index)

    async def _file_response(self, kind: str, content: bytes, index: int) -> None:
        """200 with ``content`` from a file: by path (pathsend) or by file object (zerocopysend).
        The file stays (a server may read it after send() returned); its name depends only on
        the content, so runs overwrite it rather than pile files up."""
        import hashlib
        import tempfile

        name = f"refserver-probe-{hashlib.sha256(content).hexdigest()[:16]}.txt"
        path = os.path.join(tempfile.gettempdir(), name)
        with open(path, "wb") as f:
            f.write(content)
        headers = [[b"content-type", b"text/plain"], [b"content-length", str(len(content)).encode()]]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers}, 3.0, index)
        if kind == "path":
            await self.send({"type": "http.response.pathsend", "path": path}, 3.0, index)
        else:
            with open(path, "rb") as file:
                await self.send({"type": "http.response.zerocopysend", "file": file}, 3.0, index)

    async def _send_until_pending(self, a: SendUntilBlocked, index: int) -> None:
        """Send until one send() is slow; report ``send_pending`` and keep awaiting that
        same send (up to ``then_wait_s``), then report how it ended."""
        message = dict(a.message)
        size = len(message.get("bytes") or b"")
        total = 0
        started = time.monotonic()
        while True:
            before = time.monotonic()
            slow = [False]

            def pending(total: int = total, slow: list[bool] = slow) -> None:
                slow[0] = True
                self.rep.report("send_pending", step=index, kind=message.get("type"), after_bytes=total)

            try:
                result = await _within(_watch(self._send(dict(message)), a.block_s, pending), a.then_wait_s)
            except BaseException as exc:
                self.rep.report(
                    "send_raised",
                    step=index,
                    kind=message.get("type"),
                    after_bytes=total,
                    duration=round(time.monotonic() - before, 4),
                    **_exception(exc),
                )
                raise
            if result is _TIMED_OUT:
                self.rep.report(
                    "send_blocked", step=index, kind=message.get("type"), after_bytes=total, timeout=a.then_wait_s
                )
                return
            total += size
            if slow[0]:
                self.rep.report(
                    "sent",
                    step=index,
                    kind=message.get("type"),
                    after_bytes=total,
                    duration=round(time.monotonic() - before, 4),
                )
                return
            if total >= a.max_bytes or time.monotonic() - started >= a.max_s:
                self.rep.report("never_blocked", step=index, sends=total // max(size, 1), after_bytes=total)
                return

    async def _send_until_blocked(self, a: SendUntilBlocked, index: int) -> None:
        if a.then_wait_s:
            await self._send_until_pending(a, index)
            return
        message = dict(a.message)
        size = len(message.get("bytes") or b"") + len((message.get("text") or "").encode())
        total = 0
        sends = 0
        started = time.monotonic()
        while True:
            before = time.monotonic()
            try:
                result = await _within(self._send(dict(message)), a.block_s)
            except BaseException as exc:
                self.rep.report(
                    "send_raised",
                    step=index,
                    kind=message.get("type"),
                    sends=sends,
                    after_bytes=total,
                    duration=round(time.monotonic() - before, 4),
                    **_exception(exc),
                )
                raise
            took = time.monotonic() - before
            if result is _TIMED_OUT or took > a.block_s:
                # A send that outlived block_s blocked, whether or not the timeout could
                # cancel it (a send that ignores cancellation returns late instead).
                self.rep.report(
                    "send_blocked",
                    step=index,
                    kind=message.get("type"),
                    sends=sends,
                    after_bytes=total,
                    timeout=a.block_s,
                    cancelled=result is _TIMED_OUT,
                    duration=round(took, 4),
                )
                return
            sends += 1
            total += size
            if total >= a.max_bytes or time.monotonic() - started >= a.max_s:
                self.rep.report("never_blocked", step=index, sends=sends, after_bytes=total)
                return


_STOP = object()  # returned by a handler that ends the script (Return)

# Which handler runs each kind of app step.
APP_HANDLERS: dict[type[AppStep], Callable[[ScriptRunner, Any, int], Awaitable[object]]] = {
    ReceiveStep: ScriptRunner._do_receive,
    ReceiveUntil: ScriptRunner._do_receive_until,
    SendStep: ScriptRunner._do_send,
    Echo: ScriptRunner._do_echo,
    Respond: ScriptRunner._do_respond,
    DrainBody: ScriptRunner._do_drain_body,
    Sleep: ScriptRunner._do_sleep,
    WaitGate: ScriptRunner._do_wait_gate,
    AppMark: ScriptRunner._do_mark,
    Return: ScriptRunner._do_return,
    Raise: ScriptRunner._do_raise,
    RequireExtension: ScriptRunner._do_require_extension,
    FileResponse: ScriptRunner._do_file_response,
    SendUntilBlocked: ScriptRunner._do_send_until_blocked,
    SetState: ScriptRunner._do_set_state,
}


async def _watch(awaitable: Awaitable[Any], after_s: float, on_slow: Callable[[], None]) -> Any:
    """Await ``awaitable`` to the end; call ``on_slow`` if it takes longer than ``after_s``."""

    async def watcher() -> None:
        await _sleep(after_s)
        on_slow()

    if _flavour() == "asyncio":
        import asyncio

        task = asyncio.ensure_future(watcher())
        try:
            return await awaitable
        finally:
            task.cancel()
    import trio

    result: list[Any] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watcher)
            try:
                result.append(await awaitable)
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the nursery wraps what send() raised: unwrap it
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    return result[0] if result else None


def _report_address(explicit: tuple[str, int] | None) -> tuple[str, int] | None:
    if explicit is not None:
        return explicit
    text = os.environ.get(REPORT_ENV)
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1", int(port))


def make_app(report_to: tuple[str, int] | None = None, lifespan: str | None = None) -> Callable[..., Awaitable[None]]:
    """Build a probe app; ``report_to`` and ``lifespan`` default to the environment."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        address = _report_address(report_to)
        kind = scope.get("type")
        if kind == "lifespan":
            await _lifespan(
                scope, receive, send, address, lifespan if lifespan is not None else os.environ.get(LIFESPAN_ENV)
            )
            return
        path = str(scope.get("path", ""))
        if kind == "http" and path == HEALTH_PATH:
            await send({"type": "http.response.start", "status": 200, "headers": [[b"content-type", b"text/plain"]]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        root_path = str(scope.get("root_path") or "")
        if root_path and path.startswith(root_path + "/"):
            # a server that puts root_path in front of path: the scenario follows it
            path = path[len(root_path) :]
        parts = path.split("/")
        scenario = _find(parts[1]) if len(parts) > 2 else None
        if scenario is None:
            if kind == "http":
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"no such scenario"})
            elif kind == "websocket":
                await send({"type": "websocket.close"})
            return
        await _run(scenario.app, scope, receive, send, Reporter(address, parts[2]))

    return app


def _find(scenario_id: str) -> Any:
    from refserver.conformance.scenario_files import find

    return find(scenario_id)


async def _run(steps: tuple[AppStep, ...], scope: Scope, receive: Receive, send: Send, rep: Reporter) -> None:
    rep.report("hello", scope=_scope_summary(scope), python=sys.version.split()[0])
    how = "returned"
    try:
        await ScriptRunner(scope, receive, send, rep).run(steps)
    except _Unsupported:
        how = "unsupported"
        try:
            if scope.get("type") == "websocket":
                await _within(send({"type": "websocket.close"}), 1.0)
            elif scope.get("type") == "http":
                await _within(send({"type": "http.response.start", "status": 501, "headers": []}), 1.0)
                await _within(send({"type": "http.response.body", "body": b"not advertised"}), 1.0)
        except BaseException as exc:
            if _is_cancellation(exc):
                raise
    except BaseException as exc:
        how = "raised" if isinstance(exc, Exception) else "cancelled"
        rep.report("ended", how=how, **_exception(exc))
        rep.close()
        raise
    rep.report("ended", how=how)
    rep.close()


async def _lifespan(
    scope: Scope, receive: Receive, send: Send, address: tuple[str, int] | None, selected: str | None
) -> None:
    if selected:
        scenario_id, _, token = selected.partition("/")
        scenario = _find(scenario_id)
        if scenario is not None:
            reporter = Reporter(address, token or "lifespan")
            await _run(scenario.lifespan_app or scenario.app, scope, receive, send, reporter)
            return
    # No lifespan scenario: complete startup and shutdown, like any well-behaved app.
    rep = Reporter(address, "lifespan")
    rep.report("hello", scope=_scope_summary(scope))
    try:
        while True:
            message = await receive()
            kind = message.get("type")
            rep.report("received", kind=kind, msg=jsonable(message))
            if kind == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    finally:
        rep.close()


app = make_app()
