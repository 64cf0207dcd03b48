"""Which sentence each level of the catalogue rests on.

``SCENARIO_RULES`` gives every scenario the :class:`~refserver.conformance.model.Rule` of its
level; ``CHECK_RULES`` gives a check that has a level of its own (or rests on a sentence other
than its scenario's) its rule, by the check's label (or, unlabelled, its observable and the
parameter that tells it apart). The rule's level is the level the catalogue writes for the
scenario or check: ``tests/test_conformance_rules.py`` fails when they part, when a scenario has
no rule, or when one kind of check is judged at two levels. The shorthands ``check_fail_close`` and
``check_not_logged`` in ``common.py`` carry their rules themselves.

To add a scenario: name its rule here (an existing one, or a new one in ``rules.py`` quoting
the sentence).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from refserver.conformance.catalogue import http_wire, lifespan_timing, scope_keys
from refserver.conformance.catalogue import rules as R
from refserver.conformance.model import Check, Rule, Scenario

SCENARIO_RULES: dict[str, Rule] = {
    # WebSocket: handshake and scope
    "ws.handshake.connect-first": R.WS_CONNECT_HOLDS,
    "ws.handshake.accept-key": R.ACCEPT_KEY,
    "ws.handshake.bad-version": R.BAD_VERSION,
    "ws.handshake.missing-key": R.BAD_HANDSHAKE,
    "ws.handshake.no-upgrade": R.BAD_HANDSHAKE,
    "ws.handshake.post": R.BAD_HANDSHAKE,
    "ws.handshake.bad-key-length": R.BAD_HANDSHAKE,
    "ws.handshake.permessage-deflate": R.WS_PERMESSAGE_DEFLATE,
    "ws.scope.basics": R.WS_SCOPE_KEYS,
    "ws.scope.raw-path": R.WS_SCOPE_RAW_PATH,
    "ws.scope.subprotocols": R.WS_SCOPE_SUBPROTOCOLS,
    "ws.scope.headers": R.WS_SCOPE_HEADER_DUPLICATES,
    "ws.scope.address-types": R.WS_SCOPE_ADDRESSES,
    "ws.scope.unix-socket": R.WS_SCOPE_SERVER,
    "ws.scope.root-path": R.WS_ROOT_PATH,
    # accept and denial
    "ws.accept.headers": R.WS_ACCEPT_HEADERS,
    "ws.accept.subprotocol": R.WS_ACCEPT_SUBPROTOCOL,
    "ws.accept.no-subprotocol": R.WS_ACCEPT_SUBPROTOCOL,
    "ws.accept.unoffered-subprotocol": R.WS_ACCEPT_UNOFFERED,
    "ws.accept.reserved-header": R.WS_ACCEPT_RESERVED,
    "ws.deny.close-before-accept": R.WS_DENY_403,
    "ws.deny.prompt": R.WS_DENY_PROMPT,
    "ws.deny.response": R.DENIAL_RESPONSE,
    "ws.deny.response-chunked": R.DENIAL_RESPONSE,
    "ws.deny.empty-body": R.DENIAL_RESPONSE,
    "ws.deny.receive-after": R.WS_DISCONNECT_SENT,
    # data and framing
    "ws.data.text-echo": R.WS_RECEIVE_EVENT,
    "ws.data.binary-echo": R.WS_RECEIVE_EVENT,
    "ws.data.fragmented": R.FRAGMENTS,
    "ws.data.utf8-split": R.UTF8_WHOLE_MESSAGE,
    "ws.data.ping-between-fragments": R.CONTROL_IN_FRAGMENTS,
    "ws.data.ping-pong": R.WS_PING_PONG,
    "ws.data.unsolicited-pong": R.UNSOLICITED_PONG,
    "ws.data.chopped": R.FRAMING,
    "ws.data.trailing-after-handshake": R.WS_EARLY_DATA,
    "ws.data.empty-text": R.WS_SEND_EVENT,
    "ws.data.empty-bytes": R.WS_SEND_EVENT,
    "ws.data.order-before-close": R.WS_COMPLETE_MESSAGES,
    "ws.data.large-message": R.WS_LARGE_MESSAGE,
    "ws.data.compressed": R.WS_COMPRESSED,
    "ws.data.unmasked-frame": R.FAIL_ON_UNMASKED,
    "ws.data.reserved-bits": R.FAIL_ON_RSV,
    "ws.data.unknown-opcode": R.FAIL_ON_OPCODE,
    "ws.data.invalid-utf8": R.FAIL_ON_UTF8,
    "ws.data.continuation-without-start": R.FAIL_ON_FRAGMENTATION,
    "ws.data.fragmented-ping": R.CONTROL_FRAME_SIZE,
    # invalid app messages
    "ws.send.bytes-and-text": R.INVALID_EVENT,
    "ws.send.neither": R.INVALID_EVENT,
    "ws.send.both-none": R.INVALID_EVENT,
    "ws.send.text-int": R.INVALID_EVENT,
    "ws.send.bytes-str": R.INVALID_EVENT,
    "ws.send.bytes-none-only": R.INVALID_EVENT,
    "ws.send.unknown-type": R.INVALID_EVENT,
    "ws.send.http-start-after-accept": R.INVALID_EVENT,
    "ws.send.accept-twice": R.INVALID_EVENT,
    "ws.send.before-accept": R.INVALID_EVENT,
    "ws.send.unknown-before-accept": R.INVALID_EVENT,
    "ws.close.app-code-str": R.INVALID_EVENT,
    # the client or the network closes
    "ws.loss.rst": R.WS_DISCONNECT_ABNORMAL,
    "ws.loss.fin": R.WS_DISCONNECT_ABNORMAL,
    "ws.close.code-reason": R.WS_DISCONNECT_CODE,
    "ws.close.empty": R.WS_DISCONNECT_1005,
    "ws.close.prompt": R.WS_DISCONNECT_PROMPT,
    "ws.close.echo": R.CLOSE_ANSWERED,
    "ws.close.one-byte-payload": R.FAIL_ON_CLOSE_PAYLOAD,
    "ws.close.reserved-code": R.FAIL_ON_RESERVED_CODE,
    "ws.close.invalid-reason-utf8": R.FAIL_ON_CLOSE_REASON,
    "ws.close.mid-message": R.WS_COMPLETE_MESSAGES,
    "ws.close.during-closing-handshake": R.WS_DURING_CLOSING,
    # the app closes
    "ws.close.app-default-code": R.WS_CLOSE_CODE_SENT,
    "ws.close.app-1001": R.WS_CLOSE_CODE_SENT,
    "ws.close.app-1011": R.WS_CLOSE_CODE_SENT,
    "ws.close.app-reason": R.WS_CLOSE_REASON_SENT,
    "ws.close.app-1006": R.RESERVED_NOT_SENT,
    "ws.close.long-reason": R.CONTROL_FRAME_SIZE,
    "ws.close.send-duration": R.SEND_RETURNS,
    "ws.close.client-never-answers": R.WS_CLOSE_TIMEOUT,
    # after the end
    "ws.send.after-disconnect": R.SEND_ON_CLOSED,
    "ws.send.after-rst": R.SEND_ON_CLOSED,
    "ws.send.after-close-frame": R.SEND_ON_CLOSED,
    "ws.receive.after-disconnect": R.WS_RECEIVE_AFTER_DISCONNECT,
    "ws.receive.after-own-close": R.WS_AFTER_OWN_CLOSE,
    "ws.send.after-own-close": R.WS_AFTER_OWN_CLOSE,
    "ws.receive.never-read-connect": R.WS_CONNECT_FIRST_RECEIVE,
    # the app returns or raises
    "ws.app.return-after-accept": R.WS_SCOPE_LIFETIME,
    "ws.app.return-before-accept": R.WS_APP_ENDS_BEFORE_ACCEPT,
    "ws.app.raise-before-accept": R.TERMINATE_ON_ERROR,
    "ws.app.raise-after-accept": R.TERMINATE_ON_ERROR,
    "ws.app.raise-after-close": R.WS_APP_RAISE_AFTER_CLOSE,
    "ws.app.return-during-denial": R.DENIAL_UNFINISHED,
    # limits, keepalive, backpressure, shutdown
    "ws.limits.oversized": R.WS_LIMIT,
    "ws.keepalive.ping": R.WS_KEEPALIVE,
    "ws.shutdown.graceful": R.WS_GRACEFUL_SHUTDOWN,
    "ws.backpressure.send": R.WS_BACKPRESSURE,
    "ws.backpressure.close-while-blocked": R.WS_BLOCKED_SEND_ENDS,
    # HTTP: scope
    "http.scope.basics": R.HTTP_SCOPE_KEYS,
    "http.scope.raw-path": R.HTTP_SCOPE_RAW_PATH,
    "http.scope.headers": R.HTTP_SCOPE_HEADERS,
    "http.scope.address-types": R.HTTP_SCOPE_ADDRESSES,
    "http.scope.unix-socket": R.HTTP_SCOPE_SERVER,
    "http.scope.root-path": R.ROOT_PATH,
    "http.scope.non-utf8-path": R.HTTP_SCOPE_RAW_PATH,
    "http.version.1-0": R.HTTP10_CLOSE,
    # HTTP: request and response
    "http.request.body": R.REQUEST_EVENT,
    "http.request.no-body": R.REQUEST_EVENT,
    "http.request.body-backpressure": R.REQUEST_EVENT,
    "http.request.chunked": R.SERVER_HANDLES_CHUNKED,
    "http.request.cl-and-te": R.CL_AND_TE,
    "http.strict.obs-fold-framing": R.OBS_FOLD,
    "http.strict.obs-fold-content-length": R.OBS_FOLD,
    "http.strict.chunk-extension-bare-cr": R.GRAMMAR_400,
    "http.strict.chunk-extension-nul": R.GRAMMAR_400,
    "http.strict.chunk-size-2-64": R.LARGE_CHUNK_SIZE,
    "http.strict.content-length-2-64": R.LARGE_CONTENT_LENGTH,
    "http.strict.control-byte": R.CONTROL_BYTES,
    "ws.handshake.cl-and-te": R.CL_AND_TE,
    "http.strict.uri-too-long": R.URI_TOO_LONG,
    "http.strict.absolute-form-host": R.ABSOLUTE_FORM_HOST,
    "http.strict.body-trickle": R.REQUEST_TIMEOUT,
    "http.response.basic": R.RESPONSE_AS_SENT,
    "http.response.streaming": R.RESPONSE_BODY,
    "http.response.app-transfer-encoding": R.APP_TRANSFER_ENCODING,
    "http.response.head": R.HEAD_NO_BODY,
    "http.response.204": R.NO_CONTENT_204,
    "http.response.304": R.NOT_MODIFIED_304,
    "http.response.more-than-content-length": R.MESSAGE_LENGTH,
    "http.response.fewer-than-content-length": R.INCOMPLETE_RESPONSE,
    "http.pipelining": R.PIPELINING,
    "http.keep-alive": R.PERSISTENCE,
    "http.connection-close": R.CONNECTION_CLOSE,
    "http.expect-continue": R.EXPECT_CONTINUE,
    "http.expect-continue-unread": R.EXPECT_UNREAD,
    "http.send.body-before-start": R.INVALID_EVENT,
    "http.send.start-twice": R.INVALID_EVENT,
    "http.send.status-str": R.INVALID_EVENT,
    "http.send.unknown-type": R.INVALID_EVENT,
    "http.send.websocket-message": R.INVALID_EVENT,
    "http.response.header-name-case": R.RESPONSE_HEADER_CASE,
    "http.ext.pathsend": R.PATH_SEND,
    "http.ext.zerocopysend": R.ZERO_COPY_SEND,
    "http.ext.early-hint": R.EARLY_HINTS,
    "http.ext.trailers": R.TRAILERS,
    "http.bad.head-too-large": R.HEAD_TOO_LARGE,
    "http.bad.request-line": R.BAD_REQUEST_LINE,
    # HTTP: disconnect and the end of the response
    "http.disconnect.rst-waiting": R.HTTP_DISCONNECT,
    "http.disconnect.mid-body": R.HTTP_DISCONNECT,
    "http.disconnect.after-response": R.HTTP_DISCONNECT,
    "http.disconnect.send-after": R.SEND_ON_CLOSED,
    "http.disconnect.send-after-rst-unseen": R.SEND_ON_CLOSED,
    "http.disconnect.not-invented": R.HTTP_DISCONNECT_NOT_INVENTED,
    "http.after-complete": R.AFTER_COMPLETE,
    "http.app.return-without-response": R.HTTP_SCOPE_ENDS_WITH_REQUEST,
    "http.app.raise-before-start": R.TERMINATE_ON_ERROR,
    "http.app.raise-mid-body": R.TERMINATE_ON_ERROR,
    "http.app.return-mid-body": R.INCOMPLETE_RESPONSE,
    # TLS
    "tls.https.scheme": R.TLS_SCHEME,
    "tls.wss.scheme": R.TLS_SCHEME,
    "tls.https.extension": R.TLS_SCOPE,
    "tls.wss.extension": R.TLS_SCOPE,
    "tls.client-cert": R.TLS_CLIENT_CERT,
    "tls.plain.http": R.TLS_NOT_ON_PLAIN,
    "tls.plain.websocket": R.TLS_NOT_ON_PLAIN,
    "tls.handshake.plain-http": R.TLS_HANDSHAKE_FAILURE,
    "tls.wss.echo-close": R.CLOSE_ANSWERED,
    "tls.wss.app-close": R.WS_CLOSE_CODE_SENT,
    # lifespan
    "lifespan.state": R.LIFESPAN_STATE,
    "lifespan.state-websocket": R.LIFESPAN_STATE,
    "lifespan.state-copy": R.LIFESPAN_STATE_COPY,
    "lifespan.state-websocket-copy": R.LIFESPAN_STATE_COPY,
    "lifespan.startup-first": R.LIFESPAN_STARTUP_COMPLETE,
    "lifespan.startup-failed": R.LIFESPAN_STARTUP_FAILED,
    "lifespan.app-raises": R.LIFESPAN_APP_RAISES,
    "lifespan.shutdown": R.LIFESPAN_SHUTDOWN_COMPLETE,
    "lifespan.shutdown.failed": R.LIFESPAN_SHUTDOWN_FAILED,
    "lifespan.scope": R.LIFESPAN_SCOPE,
    # spec version claims
    "meta.spec-version-claims": R.SPEC_VERSION_CLAIMS,
}

# Catalogue modules whose scenarios carry their rules themselves (each quotes its own sentences).
for _module in (http_wire, lifespan_timing, scope_keys):
    SCENARIO_RULES.update({s.id: s.rule for s in _module.SCENARIOS if s.rule is not None})

# (scenario, check) -> rule; a check is named by its label, or by its observable and the
# parameter that tells it apart (``app.scope[key=scheme]``), as :func:`check_key` spells it.
CHECK_RULES: dict[tuple[str, str], Rule] = {
    ("ws.handshake.bad-version", "the app is not called"): R.BAD_HANDSHAKE_APP,
    ("ws.handshake.no-upgrade", "status"): R.BAD_HANDSHAKE_STATUS,
    ("ws.handshake.post", "status"): R.BAD_HANDSHAKE_STATUS,
    ("ws.handshake.bad-key-length", "status"): R.BAD_HANDSHAKE_STATUS,
    ("ws.scope.basics", "app.scope[key=scheme]"): R.WS_SCOPE_SCHEME,
    ("ws.scope.basics", "app.scope[key=http_version]"): R.WS_SCOPE_HTTP_VERSION,
    ("ws.scope.headers", "relative order kept"): R.WS_SCOPE_HEADER_ORDER,
    ("ws.scope.headers", "names lower-case"): R.WS_HEADER_CASE,
    ("ws.scope.root-path", "path"): R.ROOT_PATH_IN_PATH,
    ("ws.deny.close-before-accept", "receive() afterwards"): R.WS_DISCONNECT_SENT,
    ("ws.deny.response", "no upgrade headers on a denial"): R.DENIAL_NO_UPGRADE,
    ("ws.data.unmasked-frame", "close frame with 1002 (RFC 6455 §5.1)"): R.UNMASKED_CLOSE_FRAME,
    ("ws.close.code-reason", "reason (2.5)"): R.WS_DISCONNECT_REASON,
    ("ws.close.echo", "the close code is echoed"): R.CLOSE_ECHO_CODE,
    ("ws.close.echo", "then the server closes TCP"): R.TCP_CLOSE_AFTER_ECHO,
    ("ws.close.mid-message", "app.disconnect.code"): R.WS_DISCONNECT_CODE,
    ("ws.data.order-before-close", "app.disconnect.code"): R.WS_DISCONNECT_CODE,
    ("ws.close.app-1006", "close(1006) raises"): R.WS_CLOSE_1006_RAISES,
    ("ws.close.long-reason", "truncate (returned) or raise"): R.WS_LONG_REASON,
    ("ws.send.after-disconnect", "a disconnect is delivered"): R.WS_DISCONNECT_SENT,
    ("ws.send.after-own-close", "no data frame after the close frame (RFC 6455 §5.5.1)"): R.WS_NO_DATA_AFTER_CLOSE,
    ("ws.app.return-after-accept", "close code"): R.WS_CLOSE_CODE_ON_APP_END,
    ("ws.app.return-before-accept", "status"): R.ERROR_STATUS,
    ("ws.app.raise-before-accept", "status"): R.ERROR_STATUS,
    ("ws.app.raise-before-accept", "within 2.5 s of the exception"): R.TERMINATE_PROMPT,
    ("ws.app.raise-after-accept", "close code"): R.WS_CLOSE_CODE_ON_APP_END,
    ("ws.keepalive.ping", "the unanswered peer is dropped"): R.WS_KEEPALIVE_DROP,
    ("ws.close.client-never-answers", "the app's close frame"): R.WS_CLOSE_CODE_SENT,
    ("ws.close.client-never-answers", "the app gets a disconnect"): R.WS_DISCONNECT_SENT,
    ("ws.close.client-never-answers", "the disconnect's code"): R.WS_DISCONNECT_CODE_AFTER_TIMEOUT,
    ("http.scope.basics", "app.scope[key=scheme]"): R.HTTP_SCOPE_SCHEME,
    ("http.scope.headers", "app.header_case"): R.HEADER_CASE,
    ("http.scope.unix-socket", "client"): R.UNIX_CLIENT,
    ("http.scope.root-path", "path"): R.ROOT_PATH_IN_PATH,
    ("http.scope.non-utf8-path", "path"): R.NON_UTF8_PATH,
    ("http.scope.non-utf8-path", "status"): R.NON_UTF8_PATH,
    ("http.response.streaming", "client.framing"): R.RESPONSE_FRAMING,
    ("http.response.more-than-content-length", "the long body send()"): R.LONG_BODY_SEND,
    ("http.request.cl-and-te", "status"): R.REJECT_STATUS,
    ("http.strict.chunk-size-2-64", "status"): R.FRAMING_STATUS,
    ("http.strict.content-length-2-64", "status"): R.FRAMING_STATUS,
    ("ws.handshake.cl-and-te", "status"): R.FRAMING_STATUS,
    ("http.request.body-backpressure", "while the app does not read"): R.BODY_BACKPRESSURE,
    ("http.expect-continue", "app.body"): R.EXPECT_CONTINUE_BODY,
    ("http.expect-continue-unread", "client.status"): R.FINAL_STATUS_SENT,
    ("http.disconnect.send-after", "app.step[step=2]"): R.HTTP_DISCONNECT,
    ("http.after-complete", "nothing extra on the wire"): R.NOTHING_AFTER_COMPLETE,
    ("http.app.return-without-response", "client.status"): R.ERROR_STATUS,
    ("http.app.raise-before-start", "client.status"): R.ERROR_STATUS,
    ("http.ext.early-hint", "send(early_hint) returns"): R.EARLY_HINT_SEND,
    ("http.ext.early-hint", "103 sent"): R.EARLY_HINT_SENT,
    ("http.ext.trailers", "client.trailer[name=x-checksum]"): R.TRAILERS_SENT,
    ("http.bad.head-too-large", "status"): R.TOO_LARGE_STATUS,
    ("tls.https.scheme", "tls extension advertised"): R.TLS_EXTENSION_OFFERED,
    ("tls.wss.scheme", "tls extension advertised"): R.TLS_EXTENSION_OFFERED,
    ("tls.handshake.plain-http", "no error-level log line for the failed handshake"): R.TLS_FAILED_HANDSHAKE_LOG,
    ("tls.wss.echo-close", "the app's disconnect"): R.WS_DISCONNECT_CODE,
    ("tls.wss.echo-close", "the server closes TCP (RFC 6455 §7.1.1)"): R.SERVER_CLOSES_TCP,
    ("tls.wss.app-close", "the server closes TCP (RFC 6455 §7.1.1)"): R.SERVER_CLOSES_TCP,
    ("tls.https.scheme", "close_notify before the TCP close (RFC 8446 §6.1)"): R.CLOSE_NOTIFY,
    ("tls.wss.echo-close", "close_notify before the TCP close (RFC 8446 §6.1)"): R.CLOSE_NOTIFY,
    ("tls.wss.app-close", "close_notify before the TCP close (RFC 8446 §6.1)"): R.CLOSE_NOTIFY,
    ("lifespan.startup-failed", "exit status"): R.LIFESPAN_EXIT_STATUS,
    ("lifespan.shutdown", "clean exit (0, or re-raising the SIGTERM it handled)"): R.LIFESPAN_CLEAN_EXIT,
    ("lifespan.scope", "app.scope[key=state]"): R.LIFESPAN_SCOPE_STATE,
    ("lifespan.shutdown.failed", "app.step[step=2]"): R.LIFESPAN_SHUTDOWN_SENT,
    ("lifespan.shutdown.failed", "exit status"): R.LIFESPAN_SHUTDOWN_EXIT_STATUS,
}


def check_key(check: Check) -> str:
    """How ``CHECK_RULES`` names a check: its label, else its observable and the parameter
    that tells it apart from the scenario's other checks of that observable."""
    if check.label:
        return check.label
    shown = ",".join(f"{k}={check.params[k]}" for k in ("key", "step", "name", "index") if k in check.params)
    return f"{check.observable}[{shown}]" if shown else check.observable


def attach(scenarios: Iterable[Scenario]) -> list[Scenario]:
    """The scenarios with the rules of their levels attached (a check that carries its own
    rule keeps it)."""
    out = []
    for s in scenarios:
        checks = tuple(
            c
            if c.rule is not None or (s.id, check_key(c)) not in CHECK_RULES
            else dataclasses.replace(c, rule=CHECK_RULES[(s.id, check_key(c))])
            for c in s.checks
        )
        out.append(dataclasses.replace(s, rule=SCENARIO_RULES.get(s.id, s.rule), checks=checks))
    return out
