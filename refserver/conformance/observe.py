"""Observables: named functions that read one value (a short string) out of a trace.

A check names an observable and its parameters; the value is matched against the check's
allowed ``fnmatch`` patterns. Values are strings so that reports can show them as they are.

App records carry ``instance``: 0 for the first app instance of the scenario (by the order
in which they said hello), 1 for the next, and ``"lifespan"`` for the lifespan scope.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Records = list[dict[str, Any]]
Observable = Callable[[Records, Mapping[str, Any]], str]

OBSERVABLES: dict[str, Observable] = {}


def observable(name: str) -> Callable[[Observable], Observable]:
    def register(fn: Observable) -> Observable:
        OBSERVABLES[name] = fn
        return fn

    return register


def compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def app_records(records: Records, params: Mapping[str, Any]) -> Records:
    instance = params.get("instance", 0)
    return [r for r in records if r["side"] == "app" and r.get("instance") == instance]


def client_records(records: Records) -> Records:
    return [r for r in records if r["side"] == "client"]


def hello(records: Records, params: Mapping[str, Any]) -> dict[str, Any] | None:
    for r in app_records(records, params):
        if r["ev"] == "hello":
            scope = r.get("scope")
            return scope if isinstance(scope, dict) else None
    return None


def _exc(record: dict[str, Any]) -> str:
    return ("oserror:" if record.get("oserror") else "error:") + str(record.get("exc"))


def outcome(record: dict[str, Any] | None) -> str:
    """One app record as a value: a receive result, or what a send did."""
    if record is None:
        return "not-reached"
    ev = record["ev"]
    if ev == "received":
        kind = str(record.get("kind"))
        if kind == "websocket.disconnect":
            msg = record.get("msg") or {}
            code = msg.get("code", "<absent>") if isinstance(msg, dict) else "<absent>"
            return f"{kind}:{code}"
        return kind
    if ev == "receive_timeout":
        return "timeout"
    if ev in ("receive_raised", "send_raised"):
        return _exc(record)
    if ev == "sent":
        return "returned"
    if ev == "send_blocked":
        return "blocked"
    return str(ev)


_STEP_EVENTS = ("received", "receive_timeout", "receive_raised", "sent", "send_raised", "send_blocked", "never_blocked")


@observable("app.step")
def app_step(records: Records, params: Mapping[str, Any]) -> str:
    """What app step ``step`` did (the last result of that step)."""
    found = None
    for r in app_records(records, params):
        if r.get("step") == params["step"] and r["ev"] in _STEP_EVENTS:
            found = r
            if not params.get("last", False):
                break
    return outcome(found)


@observable("app.steps")
def app_steps(records: Records, params: Mapping[str, Any]) -> str:
    return " ".join(app_step(records, {**params, "step": s}) for s in params["steps"])


@observable("app.step.duration")
def app_step_duration(records: Records, params: Mapping[str, Any]) -> str:
    """ "prompt" if step ``step`` took at most ``max_s`` seconds."""
    for r in app_records(records, params):
        if r.get("step") == params["step"] and r["ev"] in _STEP_EVENTS:
            if r["ev"] == "send_blocked":
                return f"blocked (over {r.get('timeout')} s)"
            duration = float(r.get("duration") or 0.0)
            return "prompt" if duration <= params["max_s"] else f"late ({duration:.2f} s)"
    return "not-reached"


@observable("app.step.exc_text")
def app_step_exc_text(records: Records, params: Mapping[str, Any]) -> str:
    for r in app_records(records, params):
        if r.get("step") == params["step"] and r["ev"].endswith("_raised"):
            return str(r.get("text"))
    return "<no exception>"


def _disconnects(records: Records, params: Mapping[str, Any]) -> Records:
    return [
        r for r in app_records(records, params) if r["ev"] == "received" and r.get("kind") == "websocket.disconnect"
    ]


@observable("app.disconnect.code")
def disconnect_code(records: Records, params: Mapping[str, Any]) -> str:
    found = _disconnects(records, params)
    if not found:
        return "no-disconnect"
    msg = found[0].get("msg") or {}
    return str(msg.get("code", "<absent>"))


@observable("app.disconnect.reason")
def disconnect_reason(records: Records, params: Mapping[str, Any]) -> str:
    found = _disconnects(records, params)
    if not found:
        return "no-disconnect"
    msg = found[0].get("msg") or {}
    return str(msg["reason"]) if "reason" in msg else "<absent>"


@observable("app.after_disconnect")
def after_disconnect(records: Records, params: Mapping[str, Any]) -> str:
    """What later receive() calls return once a websocket.disconnect was delivered."""
    mine = app_records(records, params)
    results = [r for r in mine if r["ev"] in ("received", "receive_timeout", "receive_raised")]
    first = next((i for i, r in enumerate(results) if r.get("kind") == "websocket.disconnect"), None)
    if first is None:
        return "no-disconnect"
    later = results[first + 1 :]
    if not later:
        return "not-called"
    base = results[first].get("msg")
    seen: list[str] = []
    for r in later:
        if r["ev"] == "receive_timeout":
            return "hangs" if not seen else "extra-then-hangs"
        if r["ev"] == "receive_raised":
            return _exc(r)
        if r.get("kind") != "websocket.disconnect":
            return f"other:{r.get('kind')}"
        seen.append("same" if r.get("msg") == base else f"code {r.get('msg', {}).get('code')}")
    if all(s == "same" for s in seen):
        return "repeats-same"
    return "repeats-changed (" + ", ".join(seen) + ")"


@observable("app.received_kinds")
def received_kinds(records: Records, params: Mapping[str, Any]) -> str:
    return compact([outcome(r) for r in app_records(records, params) if r["ev"] == "received"])


@observable("app.messages")
def app_messages(records: Records, params: Mapping[str, Any]) -> str:
    """The websocket.receive messages the app got, as text:... / bytes:N."""
    out = []
    for r in app_records(records, params):
        if r["ev"] == "received" and r.get("kind") == "websocket.receive":
            msg = r.get("msg") or {}
            if msg.get("text") is not None:
                out.append("text:" + str(msg["text"]))
            elif isinstance(msg.get("bytes"), dict):
                out.append(f"bytes:{msg['bytes']['len']}")
            else:
                out.append("bytes:None")
    return compact(out)


@observable("app.ended")
def app_ended(records: Records, params: Mapping[str, Any]) -> str:
    for r in app_records(records, params):
        if r["ev"] == "ended":
            return str(r.get("how"))
    if hello(records, params) is None:
        return "not-called"
    return "not-ended"


@observable("app.called")
def app_called(records: Records, params: Mapping[str, Any]) -> str:
    return "called" if hello(records, params) is not None else "not-called"


@observable("app.scope")
def app_scope(records: Records, params: Mapping[str, Any]) -> str:
    scope = hello(records, params)
    if scope is None:
        return "not-called"
    value: Any = scope
    for key in str(params["key"]).split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return "<absent>"
    if isinstance(value, dict) and set(value) == {"bytes", "len"}:
        return "b" + repr(value["bytes"])
    text = compact(value)
    # The scenario's Unix socket path differs from run to run: it reads as <uds>.
    uds = runner_value(records, {"ev": "uds", "missing": ""})
    return text.replace(uds, "<uds>") if uds else text


@observable("app.header_values")
def app_header_values(records: Records, params: Mapping[str, Any]) -> str:
    scope = hello(records, params)
    if scope is None:
        return "not-called"
    name = params["name"]
    out = []
    for pair in scope.get("headers") or []:
        n = pair[0]["bytes"] if isinstance(pair[0], dict) else str(pair[0])
        v = pair[1]["bytes"] if isinstance(pair[1], dict) else str(pair[1])
        if n.lower() == name:
            out.append(v)
    return compact(out)


@observable("app.header_order")
def app_header_order(records: Records, params: Mapping[str, Any]) -> str:
    """The scope's header names restricted to ``names`` (compared lower-case), in order."""
    scope = hello(records, params)
    if scope is None:
        return "not-called"
    wanted = set(params["names"])
    names = []
    for pair in scope.get("headers") or []:
        n = pair[0]["bytes"] if isinstance(pair[0], dict) else str(pair[0])
        if n.lower() in wanted:
            names.append(n.lower())
    return ",".join(names)


@observable("app.header_case")
def app_header_case(records: Records, params: Mapping[str, Any]) -> str:
    scope = hello(records, params)
    if scope is None:
        return "not-called"
    names = [pair[0]["bytes"] if isinstance(pair[0], dict) else str(pair[0]) for pair in scope.get("headers") or []]
    mixed = [n for n in names if n != n.lower()]
    return "lowercase" if not mixed else "mixed: " + ",".join(mixed)


@observable("app.body")
def app_body(records: Records, params: Mapping[str, Any]) -> str:
    for r in app_records(records, params):
        if r["ev"] == "body":
            body = r.get("body") or {}
            return str(body.get("bytes", ""))
    return "not-reached"


@observable("app.body_len")
def app_body_len(records: Records, params: Mapping[str, Any]) -> str:
    """How many bytes of request content the app's ``DrainBody`` got."""
    for r in app_records(records, params):
        if r["ev"] == "body":
            return str((r.get("body") or {}).get("len", 0))
    return "not-reached"


@observable("app.backpressure")
def app_backpressure(records: Records, params: Mapping[str, Any]) -> str:
    for r in app_records(records, params):
        if r["ev"] == "send_blocked" and "after_bytes" in r:
            return f"blocked after {r['after_bytes'] >> 20} MiB"
        if r["ev"] == "never_blocked":
            return f"never blocked ({r['after_bytes'] >> 20} MiB sent)"
        if r["ev"] == "send_raised" and "after_bytes" in r:
            return _exc(r)
    return "not-reached"


@observable("app.event")
def app_event(records: Records, params: Mapping[str, Any]) -> str:
    """Whether the app reported an event ``ev`` (e.g. unsupported, state_set)."""
    for r in app_records(records, params):
        if r["ev"] == params["ev"]:
            return "yes"
    return "no"


@observable("app.extension")
def app_extension(records: Records, params: Mapping[str, Any]) -> str:
    """Whether ``scope["extensions"]`` has ``name``: yes, no, or not-called."""
    scope = hello(records, params)
    if scope is None:
        return "not-called"
    extensions = scope.get("extensions")
    if not isinstance(extensions, list):
        return "no (no extensions)"
    return "yes" if params["name"] in extensions else "no"


def _tls_facts(records: Records) -> dict[str, Any]:
    """What the runner made (certificate fingerprints, the client's subject) and what the
    client's handshake negotiated (version, cipher suite)."""
    facts: dict[str, Any] = {}
    for r in records:
        if r["side"] == "runner" and r["ev"] == "tls_facts" and isinstance(r.get("value"), dict):
            facts.update(r["value"])
    handshake = next((r for r in client_records(records) if r["ev"] == "tls_handshake"), None)
    if handshake is not None:
        facts["version"] = handshake.get("version")
        facts["cipher_suite"] = handshake.get("cipher_suite")
    return facts


def _which_certificate(value: Any, facts: Mapping[str, Any]) -> str:
    if value is None:
        return "null"
    if not isinstance(value, dict):
        return compact(value)
    if "pem_sha256" in value:
        if value["pem_sha256"] == facts.get("server_cert_sha256"):
            return "the server's certificate"
        if value["pem_sha256"] == facts.get("client_cert_sha256"):
            return "the client's certificate"
        return "another certificate"
    if "not_pem" in value:
        return "not PEM: " + str(value["not_pem"])
    return "a " + str(value.get("pytype", "?"))


def _negotiated(value: Any, negotiated: Any) -> str:
    """An integer field (tls_version, cipher_suite) against what the handshake negotiated."""
    if value is None:
        return "null"
    if not isinstance(value, int) or isinstance(value, bool):
        return json.dumps(value, ensure_ascii=False) + " (not an int)"
    if value == negotiated:
        return f"0x{value:04x} (negotiated)"
    shown = f"0x{negotiated:04x}" if isinstance(negotiated, int) else "unknown"
    return f"0x{value:04x} (negotiated: {shown})"


@observable("app.tls")
def app_tls(records: Records, params: Mapping[str, Any]) -> str:
    """One entry (``field``) of the scope's ``tls`` extension (tls extension, "TLS Connection
    Scope"), compared with what the run knows: certificates read as ``the server's certificate``,
    ``the client's certificate`` or ``another certificate``; ``tls_version`` and ``cipher_suite``
    as hex, with ``(negotiated)`` when they are what the client's handshake agreed on; the rest
    as they are. ``<absent>`` for a missing entry, ``no tls extension`` without the extension."""
    scope = hello(records, params)
    if scope is None:
        return "not-called"
    tls = scope.get("tls")
    if not isinstance(tls, dict):
        return "no tls extension"
    field = params["field"]
    if field not in tls:
        return "<absent>"
    value = tls[field]
    facts = _tls_facts(records)
    if field == "server_cert":
        return _which_certificate(value, facts)
    if field == "client_cert_chain":
        if not isinstance(value, list):
            return _which_certificate(value, facts)
        return "[" + ", ".join(_which_certificate(v, facts) for v in value) + "]"
    if field == "tls_version":
        return _negotiated(value, facts.get("version"))
    if field == "cipher_suite":
        return _negotiated(value, facts.get("cipher_suite"))
    return compact(value)


# ---------------------------------------------------------------- the client's side


def _responses(records: Records) -> Records:
    return [r for r in client_records(records) if r["ev"] == "response"]


def _end(records: Records) -> str:
    for r in client_records(records):
        if r["ev"] in ("eof", "rst"):
            return "none:" + str(r["ev"])
    return "none:open"


@observable("client.status")
def client_status(records: Records, params: Mapping[str, Any]) -> str:
    responses = _responses(records)
    index = params.get("index", 0)
    if len(responses) > index:
        return str(responses[index]["status"])
    return _end(records)


@observable("client.statuses")
def client_statuses(records: Records, params: Mapping[str, Any]) -> str:
    """The statuses of the responses in order; ``stray`` where bytes came that were not part
    of any response (before a status line, or left at the end of the connection)."""
    seen = [r for r in client_records(records) if r["ev"] in ("response", "stray")]
    return ",".join("stray" if r["ev"] == "stray" else str(r["status"]) for r in seen) or _end(records)


@observable("client.informational")
def client_informational(records: Records, params: Mapping[str, Any]) -> str:
    found = [str(r["status"]) for r in client_records(records) if r["ev"] == "informational"]
    return ",".join(found) or "none"


@observable("client.header")
def client_header(records: Records, params: Mapping[str, Any]) -> str:
    responses = _responses(records)
    index = params.get("index", 0)
    if len(responses) <= index:
        return "no-response"
    name = params["name"]
    return compact([v for n, v in responses[index]["headers"] if n == name])


@observable("client.trailer")
def client_trailer(records: Records, params: Mapping[str, Any]) -> str:
    """The values of trailer field ``name`` of the first response (a chunked one)."""
    responses = _responses(records)
    if not responses:
        return "no-response"
    return compact([v for n, v in responses[0].get("trailers") or [] if n == params["name"]])


@observable("client.has_headers")
def client_has_headers(records: Records, params: Mapping[str, Any]) -> str:
    """Which of ``names`` the first response carries."""
    responses = _responses(records)
    if not responses:
        return "no-response"
    present = {n for n, _ in responses[0]["headers"]}
    found = [n for n in params["names"] if n in present]
    return ",".join(found) or "none"


@observable("client.body")
def client_body(records: Records, params: Mapping[str, Any]) -> str:
    responses = _responses(records)
    index = params.get("index", 0)
    if len(responses) <= index:
        return "no-response"
    return str(responses[index]["body"]["bytes"])


@observable("client.bodies")
def client_bodies(records: Records, params: Mapping[str, Any]) -> str:
    return compact([r["body"]["bytes"] for r in _responses(records)])


@observable("client.framing")
def client_framing(records: Records, params: Mapping[str, Any]) -> str:
    responses = _responses(records)
    return str(responses[0].get("framing", "none")) if responses else "no-response"


@observable("client.close")
def client_close(records: Records, params: Mapping[str, Any]) -> str:
    """The server's close frame: its code, ``empty`` for no payload, or how the TCP
    connection ended without one (``none:eof``, ``none:rst``, ``none:open``). With ``until``,
    only what came before the client's mark of that name counts."""
    until = params.get("until")
    for r in client_records(records):
        if until is not None and r["ev"] == "mark" and r.get("name") == until:
            break
        if r["ev"] == "close_frame":
            return "empty" if r["len"] == 0 else str(r.get("code"))
        if r["ev"] in ("eof", "rst"):
            return "none:" + str(r["ev"])
    return "none:open"


@observable("client.close.reason")
def client_close_reason(records: Records, params: Mapping[str, Any]) -> str:
    for r in client_records(records):
        if r["ev"] == "close_frame":
            return str(r.get("reason"))
    return "no-close-frame"


@observable("client.close.payload_len")
def client_close_payload_len(records: Records, params: Mapping[str, Any]) -> str:
    for r in client_records(records):
        if r["ev"] == "close_frame":
            return "<=125" if r["len"] <= 125 else f"{r['len']} bytes"
    return "no-close-frame"


@observable("client.end")
def client_end(records: Records, params: Mapping[str, Any]) -> str:
    """How the TCP connection ended from the client's view: eof, rst, or open. With ``until``,
    only what came before the client's mark of that name counts."""
    until = params.get("until")
    if until is None:
        return _end(records).removeprefix("none:")
    for r in client_records(records):
        if r["ev"] == "mark" and r.get("name") == until:
            break
        if r["ev"] in ("eof", "rst"):
            return str(r["ev"])
    return "open"


@observable("client.tls_end")
def client_tls_end(records: Records, params: Mapping[str, Any]) -> str:
    """How the server ended the TLS session of the client's connection: ``close_notify`` (the
    alert of RFC 8446 §6.1 came before the end of TCP), ``no close_notify (eof)`` or ``no
    close_notify (rst)`` (TCP ended without it), or ``open``."""
    for r in client_records(records):
        if r["ev"] in ("eof", "rst") and "tls" in r:
            return "close_notify" if r["tls"] == "close_notify" else f"no close_notify ({r['ev']})"
    return "open"


@observable("client.plain_answer")
def client_plain_answer(records: Records, params: Mapping[str, Any]) -> str:
    """What the server answered plain text sent to its TLS port (``c_plain_to_tls``): ``eof`` or
    ``rst`` when it closed the connection with nothing more, ``TLS alert, then eof``, ``HTTP 400,
    then eof`` and so on, or ``open`` when it still held the connection after the step's wait."""
    for r in client_records(records):
        if r["ev"] == "plain_answer":
            data = str((r.get("data") or {}).get("bytes", ""))
            end = str(r.get("end"))
            if not data:
                return end
            if data.startswith("HTTP/1."):
                status = data.split(" ", 2)[1] if " " in data else "?"
                return f"HTTP {status}, then {end}"
            if data.startswith("\x15"):  # RFC 8446 §5.1: ContentType alert(21)
                return f"TLS alert, then {end}"
            return f"{len(data)} other bytes, then {end}"
    return "not-run"


@observable("client.body_write")
def client_body_write(records: Records, params: Mapping[str, Any]) -> str:
    """How writing request content with ``c_write_body`` went while the app did not read it:
    ``stalled at ≤N MiB`` (a write did not finish in time: the server stopped reading; N is
    16, 64, 256... MiB, the first at or above what was written, since kernel buffers and
    read-ahead vary from run to run), ``took all N MiB``, or ``failed at ≤N MiB``."""
    for r in client_records(records):
        if r["ev"] == "body_stalled":
            return f"stalled at ≤{_mib_bucket(int(r['after_bytes']))} MiB"
        if r["ev"] == "body_written":
            return f"took all {int(r['len']) >> 20} MiB"
        if r["ev"] == "body_write_failed":
            return f"failed at ≤{_mib_bucket(int(r['after_bytes']))} MiB"
    return "not-run"


def _mib_bucket(count: int) -> int:
    bucket = 16
    while bucket << 20 < count:
        bucket <<= 2
    return bucket


@observable("client.closed")
def client_closed(records: Records, params: Mapping[str, Any]) -> str:
    """ "closed" if the server sent a close frame or ended TCP; "open" otherwise."""
    for r in client_records(records):
        if r["ev"] in ("close_frame", "eof", "rst"):
            return "closed"
    return "open"


@observable("client.messages")
def client_messages(records: Records, params: Mapping[str, Any]) -> str:
    out = []
    for r in client_records(records):
        if r["ev"] == "message":
            out.append("text:" + r["text"] if r["kind"] == "text" else f"bytes:{r['len']}")
    return compact(out)


@observable("client.pong")
def client_pong(records: Records, params: Mapping[str, Any]) -> str:
    for r in client_records(records):
        if r["ev"] == "pong":
            return str(r["payload"]["bytes"])
    return "none"


@observable("client.ping")
def client_ping(records: Records, params: Mapping[str, Any]) -> str:
    for r in client_records(records):
        if r["ev"] == "ping":
            return "ping"
    return "none"


@observable("client.masked")
def client_masked(records: Records, params: Mapping[str, Any]) -> str:
    frames = [r for r in client_records(records) if "masked" in r]
    return "masked" if any(r["masked"] for r in frames) else "unmasked"


def _time_of(records: Records, selector: str) -> float | None:
    """``side[@instance]:ev[:detail]``, e.g. ``app@lifespan:sent:lifespan.startup.complete``."""
    side, _, rest = selector.partition(":")
    ev, _, detail = rest.partition(":")
    side, _, instance = side.partition("@")
    for r in records:
        if r["side"] != side or r["ev"] != ev:
            continue
        if instance and str(r.get("instance")) != instance:
            continue
        if detail and detail not in (str(r.get("name")), str(r.get("kind")), str(r.get("status"))):
            continue
        return float(r["t"])
    return None


@observable("delay")
def delay(records: Records, params: Mapping[str, Any]) -> str:
    """ "prompt" if the record ``to`` came at most ``max_s`` after ``from``; selectors are
    ``side:ev[:detail]``, e.g. ``client:mark:closed`` or ``app:received:websocket.disconnect``."""
    start = _time_of(records, params["from"])
    end = _time_of(records, params["to"])
    if start is None:
        return "no-start"
    if end is None:
        return "never"
    seconds = end - start
    return "prompt" if seconds <= params["max_s"] else f"late ({seconds:.2f} s)"


@observable("elapsed")
def elapsed(records: Records, params: Mapping[str, Any]) -> str:
    """The whole seconds from the record ``from`` to the first of the records ``to`` (selectors
    as in :func:`delay`, several joined by ``|``), as a one-second range (``"1-2 s"``);
    "never" if none of them came (before the record ``until``, if given)."""
    start = _time_of(records, params["from"])
    if start is None:
        return "no-start"
    until = _time_of(records, params["until"]) if "until" in params else None
    ends = [t for t in (_time_of(records, selector) for selector in params["to"].split("|")) if t is not None]
    ends = [t for t in ends if until is None or t <= until]
    if not ends:
        return "never"
    seconds = math.floor(max(min(ends) - start, 0.0))
    return f"{seconds}-{seconds + 1} s"


@observable("order")
def order(records: Records, params: Mapping[str, Any]) -> str:
    """ "before" if the record ``first`` came no later than ``second``; "after" otherwise."""
    first = _time_of(records, params["first"])
    second = _time_of(records, params["second"])
    if first is None or second is None:
        return "missing " + ("first" if first is None else "second")
    return "before" if first <= second else "after"


@observable("runner")
def runner_value(records: Records, params: Mapping[str, Any]) -> str:
    """The value of the last runner record ``ev`` (``value`` field), or ``params["missing"]``."""
    found = [r for r in records if r["side"] == "runner" and r["ev"] == params["ev"]]
    if not found:
        return str(params.get("missing", "none"))
    return str(found[-1].get("value"))


_ERROR_LINE = re.compile(r"(^|[\s\[|:(])(ERROR|CRITICAL|FATAL|Traceback \(most recent call last\))([\s\]|:)]|$)")


def logged_errors(text: str) -> str:
    """What a server wrote during a scenario, judged by level: ``none``, or ``error: <the
    first such line>`` for a line at error level (``ERROR``, ``[ERROR]``, ``CRITICAL``...) or
    a traceback; ``not-observed`` when the server's output cannot be told apart."""
    for line in text.splitlines():
        if _ERROR_LINE.search(line):
            return "error: " + line.strip()[:120]
    return "none"


@observable("server.log")
def server_log(records: Records, params: Mapping[str, Any]) -> str:
    """Whether the server logged at error level while the scenario ran (see :func:`logged_errors`)."""
    return runner_value(records, {"ev": "server_log", "missing": "not-observed"})


@observable("server.output")
def server_output(records: Records, params: Mapping[str, Any]) -> str:
    """ "yes" if what a server of the scenario's own wrote contains ``contains``; "no"; or
    "not-observed" (refserver in-process)."""
    found = [r for r in records if r["side"] == "runner" and r["ev"] == "server_output"]
    if not found:
        return "not-observed"
    return "yes" if str(params["contains"]) in str(found[-1].get("value")) else "no"


def observe(name: str, records: Records, params: Mapping[str, Any]) -> str:
    fn = OBSERVABLES.get(name)
    if fn is None:
        raise KeyError(f"unknown observable {name!r}; known: {', '.join(sorted(OBSERVABLES))}")
    return fn(records, params)
