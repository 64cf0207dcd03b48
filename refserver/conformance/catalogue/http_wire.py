"""HTTP on the wire: what the bytes a server writes must be, whatever the app sends. HEAD and the
body-less statuses, messages after the response completed, pipelined requests answered in order,
the close option honoured, framing (Content-Length, chunked, HTTP/1.0), the response's own
header fields, and request bodies of every shape. Each scenario carries the rule its level rests
on. Standard library only."""

from __future__ import annotations

import dataclasses

from refserver.conformance.catalogue.common import (
    G_HTTP_DISC,
    G_HTTP_FLOW,
    HTTP_BODY,
    HTTP_REQ,
    HTTP_START,
    MUST,
    SHOULD,
    UNSPEC,
    check,
    http,
)
from refserver.conformance.model import Check, Rule, Scenario, ServerNeeds
from refserver.conformance.steps import (
    DrainBody,
    Receive,
    Request,
    Respond,
    Send,
    ShutdownServer,
    Sleep,
    WaitApp,
    WaitEOF,
    WaitResponses,
)

# ---------------------------------------------------------------------- the sentences

HEAD_NO_BODY = Rule(
    MUST,
    "RFC 9110 §9.3.2",
    "The HEAD method is identical to GET except that the server MUST NOT send content in the response.",
)
HEAD_SAME_FIELDS = Rule(
    SHOULD,
    "RFC 9110 §9.3.2",
    "The server SHOULD send the same header fields in response to a HEAD request as it would have sent if the "
    "request method had been GET.",
)
NO_CONTENT_BODY = Rule(
    MUST,
    "RFC 9110 §15.3.5",
    "A 204 response is terminated by the end of the header section; it cannot contain content or trailers.",
)
NOT_MODIFIED_BODY = Rule(
    MUST,
    "RFC 9110 §15.4.5",
    "A 304 response is terminated by the end of the header section; it cannot contain content or trailers.",
)
NO_LENGTH_ON_204 = Rule(
    MUST,
    "RFC 9110 §8.6",
    "A server MUST NOT send a Content-Length header field in any response with a status code of 1xx "
    "(Informational) or 204 (No Content).",
)
AFTER_COMPLETE = Rule(
    MUST,
    'www spec 2.5, "Response Body - send event"',
    "``more_body`` (*bool*) -- Signifies if there is additional content to come (as part of a Response Body "
    "message). If ``False``, response will be taken as complete and closed, and any further messages on the "
    "channel will be ignored.",
    "nothing of a message after completion reaches the wire: the next response starts with its status line",
)
PIPELINE_ORDER = Rule(
    MUST,
    "RFC 9112 §9.3.2",
    "A server MAY process a sequence of pipelined requests in parallel if they all have safe methods, but it "
    "MUST send the corresponding responses in the same order that the requests were received.",
)
PIPELINE_SERIAL = Rule(
    UNSPEC,
    "RFC 9112 §9.3.2",
    "A server MAY process a sequence of pipelined requests in parallel if they all have safe methods",
    "whether the app for the second request starts before the first response is out is the server's choice",
)
FRAMING_CHOICE = Rule(
    UNSPEC,
    "RFC 9112 §6.3",
    "If a Transfer-Encoding header field is present and the chunked transfer coding is the final encoding, the "
    "message body length is determined by reading and decoding the chunked data until the transfer coding "
    "indicates the data is complete.",
    "which framing the server picks for a body (length, chunked, or the end of the connection) is its choice",
)
CLOSE_OPTION = Rule(
    MUST,
    "RFC 9112 §9.6",
    'A server that receives a "close" connection option MUST initiate closure of the connection after it sends '
    'the final response to the request that contained the "close" connection option.',
)
CLOSE_OPTION_NO_MORE = Rule(
    MUST,
    "RFC 9112 §9.6",
    "The server ... MUST NOT process any further requests received on that connection.",
    "a request pipelined behind one with the close option is not answered",
)
CLOSE_OPTION_SENT = Rule(
    SHOULD,
    "RFC 9112 §9.6",
    'The server SHOULD send a "close" connection option in its final response on that connection.',
)
SENT_CLOSE = Rule(
    MUST,
    "RFC 9112 §9.6",
    'A server that sends a "close" connection option MUST initiate closure of the connection (see below) after '
    'it sends the response containing "close".',
)
NO_TE_TO_1_0 = Rule(
    MUST,
    "RFC 9112 §6.1",
    "A server MUST NOT send a response containing Transfer-Encoding unless the corresponding request indicates "
    "HTTP/1.1 (or later minor revisions).",
)
LENGTH_FRAMES = Rule(
    MUST,
    "RFC 9112 §6.3",
    "If a valid Content-Length header field is present without Transfer-Encoding, its decimal value defines the "
    "expected message body length in octets.",
    "the app's Content-Length frames the streamed body: the client reads exactly that many octets",
)
STREAM_FRAMED = Rule(
    MUST,
    'www spec 2.5, "Response Body - send event"',
    "``body`` (*byte string*) -- HTTP body content. Concatenated onto any previous ``body`` values sent in this "
    "connection scope.",
    "however the server frames a streamed body, the client reads the chunks joined in order",
)
DATE_SENT = Rule(
    MUST,
    "RFC 9110 §6.6.1",
    "An origin server with a clock (as defined in Section 5.6.7) MUST generate a Date header field in all "
    "responses with a 2xx (Successful), 3xx (Redirection), or 4xx (Client Error) status code",
    "the server and its app are the origin server; the server has the clock",
)
ONE_DATE = Rule(
    MUST,
    "RFC 9110 §5.3",
    "A sender MUST NOT generate multiple field lines with the same name in a message (whether in the headers or "
    "trailers) or append a field line when a field line of the same name already exists in the message, unless "
    "that field's definition allows multiple field line values to be recombined as a comma-separated list",
    "Date is a single value: the app's Date is the response's, not one of two",
)
FIELD_ORDER = Rule(
    MUST,
    "RFC 9110 §5.3",
    "the order in which field lines with the same name are received is therefore significant to the "
    "interpretation of the field value; a proxy MUST NOT change the order of these field line values when "
    "forwarding a message.",
    "the server forwards the app's field lines: repeated ones keep their order",
)
RESPONSE_STATUS = Rule(
    MUST,
    HTTP_START,
    "``status`` (*int*) -- HTTP status code.",
)
RESPONSE_HEADERS = Rule(
    MUST,
    HTTP_START,
    "``headers`` (*Iterable[[byte string, byte string]]*) -- An iterable of ``[name, value]`` two-item "
    "iterables, where ``name`` is the header name, and ``value`` is the header value.",
)
REQUEST_BODY = Rule(
    MUST,
    HTTP_REQ,
    '``body`` (*byte string*) -- Body of the request. Optional; if missing defaults to ``b""``. If '
    "``more_body`` is set, treat as a start of body and concatenate on future chunks.",
)
CHUNKED_REQUEST = Rule(
    MUST,
    "RFC 9112 §7.1",
    "A recipient MUST be able to parse and decode the chunked transfer coding.",
)
TRAILERS_DISCARDED = Rule(
    UNSPEC,
    "RFC 9112 §7.1.2",
    "A recipient that removes the chunked coding from a message MAY selectively retain or discard the received "
    "trailer fields.",
    "ASGI has no request trailers: what the server does with them is not said, as long as the body arrives",
)


APP_TE_IGNORED = Rule(
    MUST,
    HTTP_START,
    "You may send a ``Transfer-Encoding`` header in this message, but the server must ignore it.",
    "a coding the server does not apply is not announced: the client reads the body as sent",
)
CONNECT_REFUSED = Rule(
    UNSPEC,
    "RFC 9110 §9.3.6",
    "The CONNECT method requests that the recipient establish a tunnel to the destination origin server "
    "identified by the request target",
    "ASGI has no way to carry a tunnel; which status refuses it is not said (docs/decisions.md#connect-501)",
)
ABSOLUTE_FORM = Rule(
    MUST,
    "RFC 9112 §3.2.2",
    "A server MUST accept the absolute-form in requests even though most HTTP/1.1 clients will only send the "
    "absolute-form to a proxy.",
    "the scope's path is the path of the URI, not the URI",
)
SHUTDOWN_IN_FLIGHT = Rule(
    UNSPEC,
    "RFC 9112 §9.6",
    'A server that sends a "close" connection option MUST initiate closure of the connection (see below) after '
    'it sends the response containing "close".',
    "a server that is going down may finish the response in flight and say close in it; the spec does not ask",
)


def ruled(rule: Rule, c: Check) -> Check:
    """``c`` with its own rule (and the rule's level)."""
    return dataclasses.replace(c, rule=rule, level=rule.level)


def body(data: bytes, more: bool = False) -> dict[str, object]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def start(status: int = 200, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {"type": "http.response.start", "status": status, "headers": [list(h) for h in headers]}


IN_SYNC = "the next response on the connection starts with its status line"


def streamed(*chunks: bytes, status: int = 200, headers: tuple[tuple[bytes, bytes], ...] = ()) -> tuple[Send, ...]:
    """The app's response: a start, then each chunk in a message of its own."""
    last = len(chunks) - 1
    return (Send(start(status, *headers)), *(Send(body(c, more=i < last)) for i, c in enumerate(chunks)))


# ---------------------------------------------------------------------- HEAD and body-less statuses


def _head_family() -> list[Scenario]:
    out = []
    for suffix, title, app, rule in (
        ("streamed", "A HEAD request whose app streams a body", streamed(b"he", b"llo"), HEAD_NO_BODY),
        (
            "content-length",
            "A HEAD request whose app gives a Content-Length and a body",
            (Send(start(200, (b"content-length", b"5"))), Send(body(b"hello"))),
            HEAD_NO_BODY,
        ),
        ("no-body", "A HEAD request whose app sends no body", (Send(start(200)), Send(body(b""))), HEAD_NO_BODY),
    ):
        out.append(
            http(
                id=f"http.head.{suffix}",
                title=title,
                lesson="A response to HEAD has no content on the wire, whatever the app sends; the next response on "
                "the connection is read from its status line.",
                group=G_HTTP_FLOW,
                refs=("RFC 9110 §9.3.2",),
                level=rule.level,
                client=(Request("HEAD"), WaitResponses(1), Request("GET"), WaitResponses(2)),
                app=(Receive(), *app),
                checks=(
                    check("client.statuses", "200,200", label=IN_SYNC),
                    check("client.body", "", label="no content after the HEAD response's head"),
                ),
                rule=rule,
            )
        )
    out.append(
        http(
            id="http.head.same-length",
            title="A HEAD request: the Content-Length a GET would have had",
            lesson="The server should send the header fields a GET would get, Content-Length included; the content "
            "itself stays off the wire.",
            group=G_HTTP_FLOW,
            refs=("RFC 9110 §9.3.2",),
            level=SHOULD,
            client=(Request("HEAD"), WaitResponses(1), Request("GET"), WaitResponses(2)),
            app=(Receive(), Respond(200, b"hello")),
            checks=(
                check("client.header", '["5"]', name="content-length", label="Content-Length of the GET", show=True),
                ruled(HEAD_NO_BODY, check("client.statuses", "200,200", label=IN_SYNC)),
            ),
            rule=HEAD_SAME_FIELDS,
        )
    )
    return out


def _bodyless_family() -> list[Scenario]:
    out = []
    for status, rule in ((204, NO_CONTENT_BODY), (304, NOT_MODIFIED_BODY)):
        for suffix, title, app in (
            ("streamed", f"A {status} response whose app streams a body", streamed(b"ab", b"cd", status=status)),
            (
                "head",
                f"A {status} response to HEAD whose app sends a body",
                (Send(start(status)), Send(body(b"abcd"))),
            ),
        ):
            method = "HEAD" if suffix == "head" else "GET"
            out.append(
                http(
                    id=f"http.response.{status}-{suffix}",
                    title=title,
                    lesson=f"A {status} response ends with its head: the app's body never reaches the wire, and the "
                    "connection stays usable.",
                    group=G_HTTP_FLOW,
                    refs=(rule.source,),
                    level=MUST,
                    client=(Request(method), WaitResponses(1), Request("GET"), WaitResponses(2)),
                    app=(Receive(), *app),
                    checks=(check("client.statuses", f"{status},{status}", label=IN_SYNC),),
                    rule=rule,
                )
            )
    out.append(
        http(
            id="http.response.204-no-length",
            title="A 204 response has no Content-Length",
            lesson="The server frames a 204 by its status alone: no Content-Length, no Transfer-Encoding.",
            group=G_HTTP_FLOW,
            refs=("RFC 9110 §8.6",),
            level=MUST,
            client=(Request(), WaitResponses(1)),
            app=(Receive(), Send(start(204)), Send(body(b""))),
            checks=(
                check("client.status", "204"),
                check(
                    "client.has_headers",
                    "none",
                    names=["content-length", "transfer-encoding"],
                    label="no framing header",
                    show=True,
                ),
            ),
            rule=NO_LENGTH_ON_204,
        )
    )
    return out


# ---------------------------------------------------------------------- after completion


def _after_complete_family() -> list[Scenario]:
    out = []
    for suffix, title, extra in (
        ("start", "A second http.response.start after the response completed", (start(500),)),
        ("more-body", "A body message with more_body after the response completed", (body(b"extra", more=True),)),
        ("two-bodies", "Two body messages after the response completed", (body(b"x", more=True), body(b"y"))),
    ):
        out.append(
            http(
                id=f"http.after-complete.{suffix}",
                title=title,
                lesson="Messages after completion are ignored or refused, never written: the next response on the "
                "connection starts with its status line.",
                group=G_HTTP_DISC,
                refs=(HTTP_BODY,),
                level=MUST,
                client=(Request(), WaitResponses(1), Request(), WaitResponses(2)),
                app=(Receive(), Respond(200, b"one"), *(Send(m, catch=True) for m in extra)),
                checks=(
                    check("client.statuses", "200,200", "200", choice="200,200", label="nothing extra on the wire"),
                ),
                rule=AFTER_COMPLETE,
            )
        )
    out.append(
        http(
            id="http.after-complete.streamed",
            title="A body message after a streamed response completed",
            lesson="A streamed response ends with its last chunk; a message after it is not written.",
            group=G_HTTP_DISC,
            refs=(HTTP_BODY,),
            level=MUST,
            client=(Request(), WaitResponses(1), Request(), WaitResponses(2)),
            app=(Receive(), *streamed(b"a", b"b"), Send(body(b"extra"), catch=True)),
            checks=(
                check("client.statuses", "200,200", "200", choice="200,200", label="nothing extra on the wire"),
                ruled(STREAM_FRAMED, check("client.body", "ab", label="the streamed body")),
            ),
            rule=AFTER_COMPLETE,
        )
    )
    out.append(
        http(
            id="http.after-complete.head",
            title="A body message after the response to HEAD completed",
            lesson="After a HEAD response, a further body message reaches the wire no more than the first did.",
            group=G_HTTP_DISC,
            refs=(HTTP_BODY, "RFC 9110 §9.3.2"),
            level=MUST,
            client=(Request("HEAD"), WaitResponses(1), Request(), WaitResponses(2)),
            app=(Receive(), Respond(200, b"one"), Send(body(b"extra"), catch=True)),
            checks=(check("client.statuses", "200,200", "200", choice="200,200", label="nothing extra on the wire"),),
            rule=AFTER_COMPLETE,
        )
    )
    return out


# ---------------------------------------------------------------------- pipelining and the close option

TWO_REQUESTS = b"GET {path}/1 HTTP/1.1\r\nHost: {host}\r\n\r\nGET {path}/2 HTTP/1.1\r\nHost: {host}\r\n\r\n"
THREE_REQUESTS = TWO_REQUESTS + b"GET {path}/3 HTTP/1.1\r\nHost: {host}\r\n\r\n"
TWO_POSTS = (
    b"POST {path}/1 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\none"
    b"POST {path}/2 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\ntwo"
)


def _echo_body() -> tuple[DrainBody, Send, Send]:
    """The app answers with the request body it read (the probe reports it; the response is fixed)."""
    return (DrainBody(), Send(start(200)), Send(body(b"done")))


def _pipelining_and_close() -> list[Scenario]:
    return [
        http(
            id="http.pipelining.three",
            title="Three requests in one write",
            lesson="Each pipelined request gets its own whole response, in order.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §9.3.2",),
            level=MUST,
            client=(Request("GET", raw=THREE_REQUESTS), WaitResponses(3)),
            app=(Receive(), Respond(200, b"one")),
            checks=(check("client.statuses", "200,200,200"), check("client.bodies", '["one","one","one"]')),
            rule=PIPELINE_ORDER,
        ),
        http(
            id="http.pipelining.bodies",
            title="Two POST requests with bodies in one write",
            lesson="The bytes of the second request are not read as the first's body, and each app gets its own.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §9.3.2", HTTP_REQ),
            level=MUST,
            client=(Request("POST", raw=TWO_POSTS), WaitResponses(2)),
            app=_echo_body(),
            checks=(
                check("client.statuses", "200,200"),
                ruled(REQUEST_BODY, check("app.body", "one", label="the first request's body")),
                ruled(REQUEST_BODY, check("app.body", "two", instance=1, label="the second request's body")),
            ),
            rule=PIPELINE_ORDER,
        ),
        http(
            id="http.pipelining.slow-first",
            title="Two pipelined requests, the first answered slowly",
            lesson="A slow first response still comes first: responses go out in the order of the requests.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §9.3.2",),
            level=MUST,
            client=(
                Request("POST", raw=TWO_POSTS),
                WaitResponses(2, timeout=5.0),
            ),
            app=(Receive(), Sleep(0.3), Respond(200, b"ok")),
            checks=(
                check("client.statuses", "200,200"),
                ruled(
                    PIPELINE_SERIAL,
                    check(
                        "order",
                        "before",
                        "after",
                        choice="before",
                        first="app@0:ended",
                        second="app@1:hello",
                        label="the second request waits for the first response",
                    ),
                ),
            ),
            rule=PIPELINE_ORDER,
        ),
        http(
            id="http.connection-close.pipelined",
            title="A request pipelined behind one with Connection: close",
            lesson="After the response to the request that asked to close, the server closes the connection and "
            "does not process the request behind it.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §9.6",),
            level=MUST,
            client=(
                Request(
                    "GET",
                    raw=b"GET {path}/1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                    b"GET {path}/2 HTTP/1.1\r\nHost: {host}\r\n\r\n",
                ),
                WaitResponses(1),
                WaitEOF(3.0),
            ),
            app=(Receive(), Respond()),
            checks=(
                check("client.statuses", "200", label="one response only"),
                check("client.end", "eof", "rst", choice="eof", label="the connection is closed after it"),
                ruled(
                    CLOSE_OPTION_NO_MORE,
                    check("app.called", "not-called", instance=1, label="the request behind it is not processed"),
                ),
            ),
            rule=CLOSE_OPTION,
        ),
        http(
            id="http.connection-close.echoed",
            title="Connection: close is answered with Connection: close",
            lesson="The server says in its final response that the connection is closing.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §9.6",),
            level=SHOULD,
            client=(Request(headers=(("Connection", "close"),)), WaitResponses(1), WaitEOF(3.0)),
            app=(Receive(), Respond()),
            checks=(check("client.header", '["close"]', name="connection", label="Connection: close", show=True),),
            rule=CLOSE_OPTION_SENT,
        ),
        http(
            id="http.connection-close.from-app",
            title="The app's response says Connection: close",
            lesson="A response that carries the close option ends the connection after it: the server honours the "
            "header the app set.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §9.6",),
            level=MUST,
            client=(Request(), WaitResponses(1), WaitEOF(3.0)),
            app=(Receive(), Respond(200, b"bye", headers=((b"connection", b"close"),))),
            checks=(
                check("client.status", "200"),
                check("client.end", "eof", "rst", choice="eof", label="the connection is closed after it"),
            ),
            rule=SENT_CLOSE,
        ),
        http(
            id="http.connection-close.head",
            title="Connection: close on a HEAD request",
            lesson="The close option is honoured after a response without content too.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §9.6", "RFC 9110 §9.3.2"),
            level=MUST,
            client=(Request("HEAD", headers=(("Connection", "close"),)), WaitResponses(1), WaitEOF(3.0)),
            app=(Receive(), Respond(200, b"hello")),
            checks=(
                check("client.statuses", "200"),
                check("client.end", "eof", "rst", choice="eof", label="the connection is closed after it"),
            ),
            rule=CLOSE_OPTION,
        ),
    ]


# ---------------------------------------------------------------------- framing and the response's fields


def _framing() -> list[Scenario]:
    return [
        http(
            id="http.response.streamed-with-length",
            title="A streamed response with the app's Content-Length",
            lesson="The app's Content-Length frames the body: the server sends the chunks as they come, unchunked.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §6.3", HTTP_BODY),
            level=MUST,
            client=(Request(), WaitResponses(1), Request(), WaitResponses(2)),
            app=(Receive(), *streamed(b"hel", b"lo", headers=((b"content-length", b"5"),))),
            checks=(
                check("client.framing", "content-length", show=True),
                check("client.bodies", '["hello","hello"]'),
            ),
            rule=LENGTH_FRAMES,
        ),
        http(
            id="http.response.streamed-unknown-length",
            title="A streamed response without a Content-Length",
            lesson="The server frames a body of unknown length itself (chunked on HTTP/1.1); the client reads the "
            "chunks joined, and the connection stays usable.",
            group=G_HTTP_FLOW,
            refs=(HTTP_BODY, "RFC 9112 §7.1"),
            level=MUST,
            client=(Request(), WaitResponses(1), Request(), WaitResponses(2)),
            app=(Receive(), *streamed(b"a", b"b", b"c")),
            checks=(
                check("client.bodies", '["abc","abc"]'),
                ruled(
                    FRAMING_CHOICE, check("client.framing", "chunked", "close-delimited", choice="chunked", show=True)
                ),
            ),
            rule=STREAM_FRAMED,
        ),
        http(
            id="http.response.whole-body-length",
            title="A whole body in one message",
            lesson="A body known whole when it is sent can be framed by Content-Length; chunked is allowed too.",
            group=G_HTTP_FLOW,
            refs=(HTTP_BODY,),
            level=MUST,
            client=(Request(), WaitResponses(1)),
            app=(Receive(), Respond(200, b"hello")),
            checks=(
                check("client.body", "hello"),
                ruled(
                    FRAMING_CHOICE,
                    check("client.framing", "content-length", "chunked", choice="content-length", show=True),
                ),
            ),
            rule=STREAM_FRAMED,
        ),
        http(
            id="http.version.1-0-streamed",
            title="A streamed response to an HTTP/1.0 request",
            lesson="An HTTP/1.0 client cannot read chunked: the server frames the body by closing the connection "
            "(or by length), never with Transfer-Encoding.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §6.1",),
            level=MUST,
            client=(Request(raw=b"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n"), WaitResponses(1), WaitEOF(3.0)),
            app=(Receive(), *streamed(b"ol", b"d")),
            checks=(
                check(
                    "client.has_headers",
                    "none",
                    "content-length",
                    choice="none",
                    names=["transfer-encoding", "content-length"],
                    label="no Transfer-Encoding",
                    show=True,
                ),
                ruled(STREAM_FRAMED, check("client.body", "old", label="the streamed body")),
            ),
            rule=NO_TE_TO_1_0,
        ),
        http(
            id="http.response.date",
            title="The server adds a Date header",
            lesson="The response carries a Date when the app sets none: the server has the clock.",
            group=G_HTTP_FLOW,
            refs=("RFC 9110 §6.6.1",),
            level=MUST,
            client=(Request(), WaitResponses(1)),
            app=(Receive(), Respond()),
            checks=(check("client.has_headers", "date", names=["date"], label="a Date header"),),
            rule=DATE_SENT,
        ),
        http(
            id="http.response.app-date",
            title="The app sets its own Date header",
            lesson="The app's Date is the response's Date: the server adds no second one.",
            group=G_HTTP_FLOW,
            refs=("RFC 9110 §5.3", "RFC 9110 §6.6.1"),
            level=MUST,
            client=(Request(), WaitResponses(1)),
            app=(Receive(), Respond(200, b"ok", headers=((b"date", b"Thu, 01 Jan 2026 00:00:00 GMT"),))),
            checks=(
                check("client.header", '["Thu, 01 Jan 2026 00:00:00 GMT"]', name="date", label="one Date, the app's"),
            ),
            rule=ONE_DATE,
        ),
        http(
            id="http.response.repeated-fields",
            title="Repeated response header fields (two Set-Cookie)",
            lesson="The app's repeated field lines reach the client as separate lines, in their order.",
            group=G_HTTP_FLOW,
            refs=("RFC 9110 §5.3", HTTP_START),
            level=MUST,
            client=(Request(), WaitResponses(1)),
            app=(Receive(), Respond(200, b"ok", headers=((b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")))),
            checks=(check("client.header", '["a=1","b=2"]', name="set-cookie", show=True),),
            rule=FIELD_ORDER,
        ),
        http(
            id="http.response.app-headers",
            title="The app's response headers reach the client",
            lesson="Every header the app sends is on the wire, with its value as given.",
            group=G_HTTP_FLOW,
            refs=(HTTP_START,),
            level=MUST,
            client=(Request(), WaitResponses(1)),
            app=(Receive(), Respond(200, b"ok", headers=((b"x-one", b"1"), (b"content-type", b"text/csv")))),
            checks=(
                check("client.header", '["1"]', name="x-one", label="x-one"),
                check("client.header", '["text/csv"]', name="content-type", label="content-type"),
            ),
            rule=RESPONSE_HEADERS,
        ),
        http(
            id="http.response.status-family",
            title="Responses with statuses 201, 404 and 599",
            lesson="The status line carries the app's status, whatever its class.",
            group=G_HTTP_FLOW,
            refs=(HTTP_START,),
            level=MUST,
            client=(Request(), WaitResponses(1), Request(), WaitResponses(2), Request(), WaitResponses(3)),
            app=(Receive(), Respond(201, b"made")),
            checks=(check("client.statuses", "201,201,201"),),
            rule=RESPONSE_STATUS,
        ),
    ]


def _server_side() -> list[Scenario]:
    return [
        http(
            id="http.response.app-transfer-encoding-gzip",
            title="The app sends Transfer-Encoding: gzip with a plain body",
            lesson="The server ignores the app's Transfer-Encoding: it frames the body itself, and the client "
            "reads the bytes the app sent.",
            group=G_HTTP_FLOW,
            refs=(HTTP_START,),
            level=MUST,
            client=(Request(), WaitResponses(1), Request(), WaitResponses(2)),
            app=(Receive(), Respond(200, b"hello", headers=((b"transfer-encoding", b"gzip"),))),
            checks=(
                check("client.bodies", '["hello","hello"]'),
                check("client.header", "[]", name="transfer-encoding", label="no Transfer-Encoding: gzip"),
            ),
            rule=APP_TE_IGNORED,
        ),
        http(
            id="http.request.connect",
            title="A CONNECT request",
            lesson="ASGI cannot carry a tunnel: the server refuses CONNECT (501 by refserver's reading) and no app "
            "answers it.",
            group=G_HTTP_FLOW,
            refs=("RFC 9110 §9.3.6", "docs/decisions.md#connect-501"),
            level=UNSPEC,
            client=(Request(raw=b"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n"), WaitResponses(1)),
            app=(Receive(), Respond()),
            checks=(check("client.status", "*", choice="501", show=True),),
            rule=CONNECT_REFUSED,
        ),
        http(
            id="http.request.absolute-form",
            title="A request with an absolute-form target",
            lesson="The scope's path and query_string are those of the URI, without its scheme and authority.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §3.2.2", 'www spec 2.5, "HTTP Connection Scope"'),
            level=MUST,
            client=(Request(raw=b"GET http://{host}{path}?a=1 HTTP/1.1\r\nHost: {host}\r\n\r\n"), WaitResponses(1)),
            app=(Receive(), Respond()),
            checks=(
                check("app.scope", "b'a=1'", key="query_string", label="query_string"),
                check("client.status", "200"),
            ),
            rule=ABSOLUTE_FORM,
        ),
        http(
            id="http.shutdown.in-flight",
            title="Shutdown while a response is in flight",
            lesson="A server going down may finish the response it is writing; refserver does, and says "
            "Connection: close in it.",
            group=G_HTTP_DISC,
            refs=("RFC 9112 §9.6",),
            level=UNSPEC,
            client=(Request(), WaitApp("hello"), ShutdownServer(), WaitResponses(1, timeout=5.0)),
            app=(Receive(), Sleep(0.5), Respond()),
            checks=(
                check("client.status", "*", choice="200", show=True),
                check("client.header", "*", choice='["close"]', name="connection", label="Connection: close"),
            ),
            rule=SHUTDOWN_IN_FLIGHT,
            server=ServerNeeds(shutdown=True),
        ),
    ]


# ---------------------------------------------------------------------- request bodies


def _request_bodies() -> list[Scenario]:
    return [
        http(
            id="http.request.empty-post",
            title="A POST with Content-Length: 0",
            lesson="The app gets one http.request with an empty body and more_body false.",
            group=G_HTTP_FLOW,
            refs=(HTTP_REQ,),
            level=MUST,
            client=(Request("POST", body=b""), WaitResponses(1)),
            app=_echo_body(),
            checks=(check("app.body", "", label="empty body"), check("client.status", "200")),
            rule=REQUEST_BODY,
        ),
        http(
            id="http.request.chunked-trailers",
            title="A chunked request body with a trailer section",
            lesson="The body arrives whole; the trailer fields do not end up in it.",
            group=G_HTTP_FLOW,
            refs=("RFC 9112 §7.1", "RFC 9112 §7.1.2"),
            level=MUST,
            client=(
                Request(
                    "POST",
                    raw=b"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Check: 1\r\n\r\n",
                ),
                WaitResponses(1),
            ),
            app=_echo_body(),
            checks=(
                check("app.body", "abcde", show=True),
                ruled(TRAILERS_DISCARDED, check("client.status", "200", label="answered")),
            ),
            rule=CHUNKED_REQUEST,
        ),
        http(
            id="http.request.large-body",
            title="A 256 KiB request body",
            lesson="Every byte of a large body reaches the app, in order, however the server splits it.",
            group=G_HTTP_FLOW,
            refs=(HTTP_REQ,),
            level=MUST,
            client=(Request("POST", body=b"x" * 262144), WaitResponses(1, timeout=5.0)),
            app=(DrainBody(quiet=True), Send(start(200)), Send(body(b"ok"))),
            checks=(check("app.body_len", "262144", show=True), check("client.status", "200")),
            rule=REQUEST_BODY,
        ),
        http(
            id="http.request.keep-alive-bodies",
            title="Two POST requests one after the other on one connection",
            lesson="Each request's body reaches its own app instance, nothing of one in the other.",
            group=G_HTTP_FLOW,
            refs=(HTTP_REQ,),
            level=MUST,
            client=(
                Request("POST", body=b"first"),
                WaitResponses(1),
                Request("POST", body=b"second"),
                WaitResponses(2),
            ),
            app=_echo_body(),
            checks=(
                check("app.body", "first", label="the first body"),
                check("app.body", "second", instance=1, label="the second body"),
            ),
            rule=REQUEST_BODY,
        ),
    ]


SCENARIOS: list[Scenario] = [
    *_head_family(),
    *_bodyless_family(),
    *_after_complete_family(),
    *_pipelining_and_close(),
    *_framing(),
    *_server_side(),
    *_request_bodies(),
]
