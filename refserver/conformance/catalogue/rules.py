"""The sentences the catalogue's levels rest on.

Every scenario's level, and every check that has a level of its own, names one :class:`Rule`:
the level, where the sentence is (a spec section heading as the spec spells it, or an RFC
section) and the sentence itself, quoted. ``--explain`` and the findings print it next to
the verdict. A level follows its sentence: "must" or an RFC MUST is MUST, "should" is SHOULD,
"may" is MAY; where the spec only describes what the server does (a scope key's definition,
what an event is sent for), the description is a MUST, as for any protocol requirement; where
the spec is silent, the level is unspecified and the sentence is the one that comes closest,
with a note on what it leaves open.

One rule, one level, in every scenario that judges the thing it is about
(``tests/test_conformance_rules.py`` checks this over the catalogue). A target's spec version
claim never raises a level. Standard library only.
"""

from __future__ import annotations

from refserver.conformance.model import Level, Rule

MUST, SHOULD, MAY, UNSPEC = Level.MUST, Level.SHOULD, Level.MAY, Level.UNSPECIFIED
_DESCRIBES = "the spec describes what the server does: a protocol requirement"

# ---------------------------------------------------------------- asgi (the core spec)

INVALID_EVENT = Rule(
    SHOULD,
    'asgi spec, "Error Handling"',
    "If a server receives an invalid event dictionary - for example, having an unknown ``type``, missing keys an "
    "event type should have, or with wrong Python types for objects (e.g. Unicode strings for HTTP headers) - it "
    "should raise an exception out of the ``send`` awaitable back to the application.",
)
TERMINATE_ON_ERROR = Rule(
    MUST,
    'asgi spec, "Error Handling"',
    "Servers are free to surface errors that bubble up out of application instances they are running however they "
    "wish - log to console, send to syslog, or other options - but they must terminate the application instance "
    "and its associated connection if this happens.",
)
SEND_RETURNS = Rule(
    SHOULD,
    'asgi spec, "Applications"',
    "``send``: an awaitable callable taking a single event dictionary as a positional argument that will return "
    "once the send has been completed or the connection has been closed",
    "how soon is not said; a send that outlasts a generous window deviates",
)
SPEC_VERSION_CLAIMS = Rule(
    MUST,
    'www spec 2.5, "Spec Versions"',
    "Spec versions let you understand what the server you are using understands.",
    "a server advertising a version promises the rules up to it; each broken rule keeps its own level, and the "
    "broken claim is counted here once",
)

# ---------------------------------------------------------------- www: HTTP

HTTP_SCOPE_KEYS = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "``path`` (*Unicode string*) -- HTTP request target excluding any query string, with percent-encoded "
    "sequences and UTF-8 byte sequences decoded into characters.",
    "each key as the list under the heading defines it; " + _DESCRIBES,
)
HTTP_SCOPE_SCHEME = Rule(
    SHOULD,
    'www spec 2.5, "HTTP Connection Scope"',
    '``scheme`` (*Unicode string*) -- URL scheme portion (likely ``"http"`` or ``"https"``). Optional (but must '
    'not be empty); default is ``"http"``.',
)
HTTP_SCOPE_RAW_PATH = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "``raw_path`` (*byte string*) -- The original HTTP path component, excluding any query string, unmodified "
    "from the bytes that were received by the web server.",
)
HTTP_SCOPE_HEADERS = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "Order of header values must be preserved from the original HTTP request; order of header names is not "
    "important. Duplicates are possible and must be preserved in the message as received.",
)
HEADER_CASE = Rule(
    SHOULD,
    'www spec 2.5, "HTTP Connection Scope"',
    "Header names should be lowercased, but it is not required; servers should preserve header case on a "
    "best-effort basis.",
)
HTTP_SCOPE_ADDRESSES = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "``client`` (*Iterable[Unicode string, int]*) -- A two-item iterable of ``[host, port]``, where ``host`` is "
    "the remote host's IPv4 or IPv6 address, and ``port`` is the remote port as an integer.",
)
HTTP_SCOPE_SERVER = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "``server`` (*Iterable[Unicode string, Optional[int]]*) -- Either a two-item iterable of ``[host, port]``, "
    "where ``host`` is the listening address for this server, and ``port`` is the integer listening port, or "
    "``[path, None]`` where ``path`` is that of the unix socket. Optional; if missing defaults to ``None``.",
)
HTTP_VERSION = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    '``http_version`` (*Unicode string*) -- One of ``"1.0"``, ``"1.1"`` or ``"2"``.',
)
ROOT_PATH = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "``root_path`` (*Unicode string*) -- The root path this application is mounted at; same as ``SCRIPT_NAME`` "
    "in WSGI.",
)
ROOT_PATH_IN_PATH = Rule(
    MUST,
    'www spec 2.5, "WSGI Compatibility"',
    "``PATH_INFO`` can be derived by stripping ``root_path`` from ``path``",
    "so path starts with root_path: a server mounted at root_path puts it in front of the request target "
    "(docs/decisions.md#root-path-in-path)",
)
RESPONSE_HEADER_CASE = Rule(
    UNSPEC,
    'www spec 2.5, "Response Start - send event"',
    "Header names must be lowercased.",
    "the sentence binds the app; what a server does with a name that is not lower-case (raise, send it on, "
    "or lower-case it) is not said (docs/decisions.md#header-names-lower-case)",
)
NON_UTF8_PATH = Rule(
    UNSPEC,
    'www spec 2.5, "HTTP Connection Scope"',
    "``path`` (*Unicode string*) -- HTTP request target excluding any query string, with percent-encoded "
    "sequences and UTF-8 byte sequences decoded into characters.",
    "what bytes that are not UTF-8 decode to, or whether such a request is refused, is not said"
    " (docs/decisions.md#undecodable-paths)",
)
SERVER_HANDLES_CHUNKED = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "Servers are responsible for handling inbound and outbound chunked transfer encodings.",
)
RESPONSE_FRAMING = Rule(
    UNSPEC,
    'www spec 2.5, "HTTP Connection Scope"',
    "a response that is given to the server with no ``Content-Length`` may be chunked as the server sees fit.",
    "the framing is the server's choice",
)
REQUEST_EVENT = Rule(
    MUST,
    'www spec 2.5, "Request - receive event"',
    "the body message serves as a way to stream large incoming HTTP bodies in chunks, and as a trigger to "
    "actually run request code",
    _DESCRIBES,
)
BODY_BACKPRESSURE = Rule(
    UNSPEC,
    'www spec 2.5, "Request - receive event"',
    "the body message serves as a way to stream large incoming HTTP bodies in chunks",
    "how much a server reads ahead of the app is not said",
)
RESPONSE_AS_SENT = Rule(
    MUST,
    'www spec 2.5, "Response Start - send event"',
    "Order must be preserved in the HTTP response.",
)
APP_TRANSFER_ENCODING = Rule(
    MUST,
    'www spec 2.5, "Response Start - send event"',
    "You may send a ``Transfer-Encoding`` header in this message, but the server must ignore it.",
)
RESPONSE_BODY = Rule(
    MUST,
    'www spec 2.5, "Response Body - send event"',
    "``body`` (*byte string*) -- HTTP body content. Concatenated onto any previous ``body`` values sent in this "
    "connection scope.",
    _DESCRIBES,
)
AFTER_COMPLETE = Rule(
    UNSPEC,
    'www spec 2.5, "Response Body - send event"',
    "If ``False``, and the server is not expecting *Response Trailers* response will be taken as complete and "
    "closed, and any further messages on the channel will be ignored.",
    "ignoring is the text; raising from send() is not forbidden, and an app that lets it escape then has its "
    'connection terminated (asgi spec, "Error Handling") (docs/decisions.md#after-complete-ignored)',
)
HTTP_DISCONNECT = Rule(
    MUST,
    'www spec 2.5, "Disconnect - receive event" (HTTP)',
    "Sent to the application if receive is called after a response has been sent or after the HTTP connection "
    "has been closed.",
)
HTTP_DISCONNECT_NOT_INVENTED = Rule(
    UNSPEC,
    'www spec 2.5, "Disconnect - receive event" (HTTP)',
    "Sent to the application if receive is called after a response has been sent or after the HTTP connection "
    "has been closed.",
    "what receive() does before either is not said (docs/decisions.md#http-disconnect-waits)",
)
SEND_ON_CLOSED = Rule(
    SHOULD,
    'www spec 2.5, "Disconnected Client - send exception"',
    "If ``send()`` is called on a closed connection the server should raise a server-specific subclass of ``OSError``.",
    'introduced in spec version 2.4; before it, asgi spec, "Error Handling": the send awaitable should act as a no-op',
)
NOT_LOGGED = Rule(
    SHOULD,
    'www spec 2.5, "Disconnected Client - send exception"',
    "Servers must be prepared to catch this exception if they raised it and should not log it as an error in "
    "their server logs.",
)
HTTP_SCOPE_ENDS_WITH_REQUEST = Rule(
    MUST,
    'www spec 2.5, "HTTP Connection Scope"',
    "HTTP connections have a single-request *connection scope* - that is, your application will be called at the "
    "start of the request, and will last until the end of that specific request",
    "an app that ends without a response has ended the request: it is answered",
)
ERROR_STATUS = Rule(
    UNSPEC,
    "RFC 9110 §15.6.1",
    "The 500 (Internal Server Error) status code indicates that the server encountered an unexpected condition "
    "that prevented it from fulfilling the request.",
    "which status an app failure gets is not said by the ASGI spec; 500 is the convention",
)

# ---------------------------------------------------------------- HTTP RFCs

HEAD_NO_BODY = Rule(
    MUST,
    "RFC 9110 §9.3.2",
    "The HEAD method is identical to GET except that the server MUST NOT send content in the response.",
)
NO_CONTENT_204 = Rule(
    MUST,
    "RFC 9110 §15.3.5",
    "A 204 response is terminated by the end of the header section; it cannot contain content or trailers.",
)
NOT_MODIFIED_304 = Rule(
    MUST,
    "RFC 9110 §15.4.5",
    "A 304 response is terminated by the end of the header section; it cannot contain content or trailers.",
)
MESSAGE_LENGTH = Rule(
    MUST,
    "RFC 9112 §6.3",
    "If a valid Content-Length header field is present without Transfer-Encoding, its decimal value defines the "
    "expected message body length in octets.",
)
INCOMPLETE_RESPONSE = Rule(
    MUST,
    "RFC 9112 §6.3",
    "If the sender closes the connection or the recipient times out before the indicated number of octets are "
    "received, the recipient MUST consider the message to be incomplete and close the connection.",
    "a response the server cannot complete ends only by the server closing the connection: that is how the "
    "client learns it is incomplete (docs/decisions.md#http-app-ends-incomplete)",
)
PIPELINING = Rule(
    MUST,
    "RFC 9112 §9.3.2",
    "A server MAY process a sequence of pipelined requests in parallel if they all have safe methods, but it MUST "
    "send the corresponding responses in the same order that the requests were received.",
)
PERSISTENCE = Rule(
    SHOULD,
    "RFC 9112 §9.3",
    'HTTP/1.1 defaults to the use of "persistent connections", allowing multiple requests and responses to be '
    "carried over a single connection.",
    "a server may close after any response (§9.6), so closing is a departure from the default, not a break",
)
HTTP10_CLOSE = Rule(
    MUST,
    "RFC 9112 §9.3",
    'If the received protocol is HTTP/1.0, the "keep-alive" connection option is present, ... the connection '
    "will persist after the current response; otherwise, the connection will close after the current response.",
)
CONNECTION_CLOSE = Rule(
    MUST,
    "RFC 9112 §9.6",
    'A server that receives a "close" connection option MUST initiate closure of the connection (see below) '
    'after it sends the final response to the request that contained the "close" connection option.',
)
CL_AND_TE = Rule(
    MUST,
    "RFC 9112 §6.1",
    "A server MAY reject a request that contains both Content-Length and Transfer-Encoding or process such a "
    "request in accordance with the Transfer-Encoding alone. Regardless, the server MUST close the connection "
    "after responding to such a request to avoid the potential attacks.",
)
REJECT_STATUS = Rule(
    UNSPEC,
    "RFC 9112 §6.1",
    "A server MAY reject a request that contains both Content-Length and Transfer-Encoding or process such a "
    "request in accordance with the Transfer-Encoding alone.",
    "rejecting or processing it is the server's choice",
)
EXPECT_CONTINUE = Rule(
    MUST,
    "RFC 9110 §10.1.1",
    "A server that receives a 100-continue expectation in an HTTP/1.1 (or later) request ... MUST either send an "
    "immediate response with a final status code, if that status can be determined by examining just the method, "
    "target URI, and header fields, or send an immediate 100 (Continue) response to encourage the client to send "
    "the request content.",
    "the app asking for the body is when the server can no longer answer from the head alone"
    " (docs/decisions.md#expect-100-continue)",
)
EXPECT_CONTINUE_BODY = Rule(
    MUST,
    'www spec 2.5, "Request - receive event"',
    "``body`` (*byte string*) -- Body of the request.",
    "the content the client sends after 100 (Continue) is the request body the app receives",
)
EXPECT_UNREAD = Rule(
    UNSPEC,
    "RFC 9110 §10.1.1",
    "A server MAY omit sending a 100 (Continue) response if it has already received some or all of the content "
    "for the corresponding request, or if the framing indicates that there is no content.",
    "whether a 100 goes out before an app that never reads the body answers is the server's choice",
)
FINAL_STATUS_SENT = Rule(
    MUST,
    'www spec 2.5, "Response Start - send event"',
    "``status`` (*int*) -- HTTP status code.",
    "the status the app sent is the status on the wire",
)
HEAD_TOO_LARGE = Rule(
    MUST,
    "RFC 9110 §5.4",
    "A server that receives a request header field line, field value, or set of fields larger than it wishes to "
    "process MUST respond with an appropriate 4xx (Client Error) status code.",
)
TOO_LARGE_STATUS = Rule(
    UNSPEC,
    "RFC 6585 §5",
    "The 431 status code indicates that the server is unwilling to process the request because its header fields "
    "are too large.",
    "431 names the cause; any 4xx keeps the MUST (docs/decisions.md#bad-client-input)",
)
BAD_REQUEST_LINE = Rule(
    SHOULD,
    "RFC 9112 §3",
    "Recipients of an invalid request-line SHOULD respond with either a 400 (Bad Request) error or a 301 (Moved "
    "Permanently) redirect with the request-target properly encoded.",
)

# ---------------------------------------------------------------- strict request framing

OBS_FOLD = Rule(
    MUST,
    "RFC 9112 §5.2",
    'A server that receives an obs-fold in a request message that is not within a "message/http" container MUST '
    "either reject the message by sending a 400 (Bad Request), preferably with a representation explaining that "
    "obsolete line folding is unacceptable, or replace each received obs-fold with one or more SP octets prior to "
    "interpreting the field value or forwarding the message downstream.",
)
GRAMMAR_400 = Rule(
    SHOULD,
    "RFC 9112 §2.2",
    "When a server listening only for HTTP request messages, or processing what appears from the start-line to be "
    "an HTTP request message, receives a sequence of octets that does not match the HTTP-message grammar aside from "
    "the robustness exceptions listed above, the server SHOULD respond with a 400 (Bad Request) response and close "
    "the connection.",
)
LARGE_CHUNK_SIZE = Rule(
    MUST,
    "RFC 9112 §7.1",
    "Recipients MUST anticipate potentially large hexadecimal numerals and prevent parsing errors due to integer "
    "conversion overflows or precision loss due to integer representation.",
)
LARGE_CONTENT_LENGTH = Rule(
    MUST,
    "RFC 9110 §8.6",
    "Since there is no predefined limit to the length of content, a recipient MUST anticipate potentially large "
    "decimal numerals and prevent parsing errors due to integer conversion overflows or precision loss due to "
    "integer conversion.",
)
FRAMING_STATUS = Rule(
    UNSPEC,
    "RFC 9110 §15.5.1",
    "The 400 (Bad Request) status code indicates that the server cannot or will not process the request due to "
    "something that is perceived to be a client error (e.g., malformed request syntax, invalid request message "
    "framing, or deceptive request routing).",
    "400 names the cause; which answer a refused request gets is the server's choice",
)
CONTROL_BYTES = Rule(
    UNSPEC,
    "RFC 9110 §5.5",
    "Field values containing other CTL characters are also invalid; however, recipients MAY retain such characters "
    "for the sake of robustness when they appear within a safe context (e.g., an application-specific quoted string "
    "that will not be processed by any downstream HTTP parser).",
    "retaining or rejecting them is the recipient's choice (docs/decisions.md#strict-request-framing)",
)
URI_TOO_LONG = Rule(
    MUST,
    "RFC 9112 §3",
    "A server that receives a request-target longer than any URI it wishes to parse MUST respond with a 414 (URI "
    "Too Long) status code.",
)
ABSOLUTE_FORM_HOST = Rule(
    MUST,
    "RFC 9112 §3.2.2",
    "When an origin server receives a request with an absolute-form of request-target, the origin server MUST "
    "ignore the received Host header field (if any) and instead use the host information of the request-target.",
)
REQUEST_TIMEOUT = Rule(
    UNSPEC,
    "RFC 9110 §15.5.9",
    "The 408 (Request Timeout) status code indicates that the server did not receive a complete request message "
    "within the time that it was prepared to wait.",
    "no RFC requires a server to cut a body that trickles; refserver allows a grace period, then a minimum rate, "
    "and answers 408 (docs/decisions.md#request-body-rate)",
)

# ---------------------------------------------------------------- extensions

DENIAL_RESPONSE = Rule(
    MUST,
    'asgi extensions, "Websocket Denial Response"',
    "This will allow the ASGI Framework to send HTTP response messages after the ``websocket.connect`` message.",
    _DESCRIBES,
)
DENIAL_NO_UPGRADE = Rule(
    SHOULD,
    'asgi extensions, "Websocket Denial Response"',
    "These messages cannot be followed by any other websocket messages as the server should send a HTTP response "
    "and then close the connection.",
    "a denial response is a plain HTTP response, without the handshake's upgrade headers",
)
DENIAL_UNFINISHED = Rule(
    UNSPEC,
    'asgi extensions, "Websocket Denial Response"',
    "These messages cannot be followed by any other websocket messages as the server should send a HTTP response "
    "and then close the connection.",
    "what a server does with a denial the app never finishes is not said",
)
PATH_SEND = Rule(
    SHOULD,
    'asgi extensions, "Path Send"',
    "Except for the characteristics of path-send, it should behave the same as ordinary ``http.response.body``.",
)
ZERO_COPY_SEND = Rule(
    SHOULD,
    'asgi extensions, "Zero Copy Send"',
    "Except for the characteristics of zero-copy, it should behave the same as ordinary ``http.response.body``.",
)
EARLY_HINTS = Rule(
    MUST,
    'asgi extensions, "Early Hints"',
    "ASGI servers that implement this extension will provide ``http.response.early_hint`` in the extensions part "
    "of the scope",
    "a server that advertises it accepts the message; the response follows",
)
EARLY_HINT_SEND = Rule(
    SHOULD,
    'asgi extensions, "Early Hints"',
    "The ASGI server should then attempt to send an informational response to the client with the provided links "
    "as ``Link`` headers.",
)
EARLY_HINT_SENT = Rule(
    MAY,
    'asgi extensions, "Early Hints"',
    "The server may decide to ignore this message, for example if the HTTP/1.1 protocol is used and the server "
    "has security concerns.",
)
TRAILERS = Rule(
    MUST,
    'www spec 2.5, "Response Start - send event"',
    "``trailers`` (*bool*) -- Signifies if the application will send trailers. If ``True``, the server must wait "
    'until it receives a ``"http.response.trailers"`` message after the *Response Body* event.',
)
TRAILERS_SENT = Rule(
    SHOULD,
    'asgi extensions, "HTTP Trailers"',
    "That will allow the ASGI server to know that after the last ``http.response.body`` message (``more_body`` "
    "being ``False``), the ASGI framework will send a ``http.response.trailers`` message.",
    "the trailer the app sent is what the client gets, where the connection can carry trailers",
)

# ---------------------------------------------------------------- www: WebSocket

WS_CONNECT_HOLDS = Rule(
    MUST,
    'www spec 2.5, "Connect - receive event"',
    "The protocol server must send this message during the handshake phase of the WebSocket and not complete the "
    "handshake until it gets a reply, returning HTTP status code ``403`` if the connection is denied.",
)
WS_CONNECT_FIRST_RECEIVE = Rule(
    MUST,
    'www spec 2.5, "Connect - receive event"',
    "This message must be responded to with either an *Accept* message or a *Close* message before the socket "
    "will pass ``websocket.receive`` messages.",
)
WS_SCOPE_KEYS = Rule(
    MUST,
    'www spec 2.5, "Websocket Connection Scope"',
    "``path`` (*Unicode string*) -- HTTP request target excluding any query string, with percent-encoded "
    "sequences and UTF-8 byte sequences decoded into characters.",
    "each key as the list under the heading defines it; " + _DESCRIBES,
)
WS_SCOPE_SCHEME = Rule(
    SHOULD,
    'www spec 2.5, "Websocket Connection Scope"',
    '``scheme`` (*Unicode string*) -- URL scheme portion (likely ``"ws"`` or ``"wss"``). Optional (but must not '
    'be empty); default is ``"ws"``.',
)
WS_SCOPE_HTTP_VERSION = Rule(
    SHOULD,
    'www spec 2.5, "Websocket Connection Scope"',
    '``http_version`` (*Unicode string*) -- One of ``"1.1"`` or ``"2"``. Optional; if missing default is ``"1.1"``.',
)
WS_SCOPE_RAW_PATH = Rule(
    MUST,
    'www spec 2.5, "Websocket Connection Scope"',
    "``raw_path`` (*byte string*) -- The original HTTP path component, excluding any query string, unmodified "
    "from the bytes that were received by the web server.",
)
WS_SCOPE_SUBPROTOCOLS = Rule(
    MUST,
    'www spec 2.5, "Websocket Connection Scope"',
    "``subprotocols`` (*Iterable[Unicode string]*) -- Subprotocols the client advertised.",
)
WS_SCOPE_HEADER_DUPLICATES = Rule(
    MUST,
    'www spec 2.5, "Websocket Connection Scope"',
    "duplicates are possible and must be preserved in the message as received.",
)
WS_SCOPE_HEADER_ORDER = Rule(
    SHOULD,
    'www spec 2.5, "Websocket Connection Scope"',
    "Order should be preserved from the original HTTP request; duplicates are possible and must be preserved in "
    "the message as received.",
)
WS_HEADER_CASE = Rule(
    SHOULD,
    'www spec 2.5, "Websocket Connection Scope"',
    "Header names should be lowercased, but it is not required; servers should preserve header case on a "
    "best-effort basis.",
)
WS_SCOPE_ADDRESSES = Rule(
    MUST,
    'www spec 2.5, "Websocket Connection Scope"',
    "``client`` (*Iterable[Unicode string, int]*) -- A two-item iterable of ``[host, port]``, where ``host`` is "
    "the remote host's IPv4 or IPv6 address, and ``port`` is the remote port.",
)
WS_SCOPE_SERVER = Rule(
    MUST,
    'www spec 2.5, "Websocket Connection Scope"',
    "``server`` (*Iterable[Unicode string, Optional[int]]*) -- Either a two-item iterable of ``[host, port]``, "
    "where ``host`` is the listening address for this server, and ``port`` is the integer listening port, or "
    "``[path, None]`` where ``path`` is that of the unix socket.",
)
WS_ROOT_PATH = Rule(
    MUST,
    'www spec 2.5, "Websocket Connection Scope"',
    "``root_path`` (*Unicode string*) -- The root path this application is mounted at; same as ``SCRIPT_NAME`` "
    "in WSGI.",
)
WS_SCOPE_LIFETIME = Rule(
    SHOULD,
    'www spec 2.5, "Websocket Connection Scope"',
    "WebSocket connections' scope lives as long as the socket itself - if the application dies the socket should "
    "be closed, and vice-versa.",
)
WS_CLOSE_CODE_ON_APP_END = Rule(
    UNSPEC,
    "RFC 6455 §7.4.1",
    "1011 indicates that a server is terminating the connection because it encountered an unexpected condition "
    "that prevented it from fulfilling the request.",
    "which code the close frame carries when the app ends is not said (docs/decisions.md#app-end-close-codes)",
)
WS_ACCEPT_HEADERS = Rule(
    MUST,
    'www spec 2.5, "Accept - send event"',
    "``headers`` (*Iterable[[byte string, byte string]]*) -- An iterable of ``[name, value]`` two-item iterables, "
    "where ``name`` is the header name, and ``value`` is the header value. Order must be preserved in the HTTP "
    "response.",
)
WS_ACCEPT_SUBPROTOCOL = Rule(
    MUST,
    'www spec 2.5, "Accept - send event"',
    "``subprotocol`` (*Unicode string*) -- The subprotocol the server wishes to accept. Optional; if missing "
    "defaults to ``None``.",
    "and RFC 6455 §4.2.2: if the server does not wish to agree to one of the suggested subprotocols, it MUST NOT "
    "send back a |Sec-WebSocket-Protocol| header field in its response",
)
WS_ACCEPT_UNOFFERED = Rule(
    UNSPEC,
    'www spec 2.5, "Accept - send event"',
    "``subprotocol`` (*Unicode string*) -- The subprotocol the server wishes to accept.",
    "a subprotocol the client did not offer is not addressed; RFC 6455 §4.1 makes the client fail such a "
    "handshake (docs/decisions.md#accept-refusals)",
)
WS_ACCEPT_RESERVED = Rule(
    UNSPEC,
    'www spec 2.5, "Accept - send event"',
    "Must not include a header named ``sec-websocket-protocol``; use the ``subprotocol`` key instead.",
    "what the server does with other handshake headers from the app is not said (docs/decisions.md#accept-refusals)",
)
WS_DENY_403 = Rule(
    MUST,
    'www spec 2.5, "Close - send event"',
    "If this is sent before the socket is accepted, the server must close the connection with a HTTP 403 error "
    "code (Forbidden), and not complete the WebSocket handshake",
)
WS_DISCONNECT_SENT = Rule(
    MUST,
    'www spec 2.5, "Disconnect - receive event"',
    "Sent to the application when either connection to the client is lost, either from the client closing the "
    "connection, the server closing the connection, or loss of the socket.",
)
WS_DISCONNECT_CODE = Rule(
    MUST,
    'www spec 2.5, "Disconnect - receive event"',
    "``code`` (*int*) -- The WebSocket close code, as per the WebSocket spec.",
)
WS_DISCONNECT_1005 = Rule(
    SHOULD,
    'www spec 2.5, "Disconnect - receive event"',
    "If no code was received in the frame from the client, the server should set this to ``1005`` (the default "
    "value in the WebSocket specification).",
)
WS_DISCONNECT_ABNORMAL = Rule(
    MUST,
    "RFC 6455 §7.1.5",
    "If _The WebSocket Connection is Closed_ and no Close control frame was received by the endpoint (such as "
    "could occur if the underlying transport connection is lost), _The WebSocket Connection Close Code_ is "
    "considered to be 1006.",
    "1005, the www spec's default, is allowed too (docs/decisions.md#lost-connection-1006)",
)
WS_DISCONNECT_REASON = Rule(
    MUST,
    'www spec 2.5, "Disconnect - receive event"',
    "``reason`` (*Unicode string*) -- A reason given for the disconnect, can be any string.",
    "added in spec version 2.5",
)
WS_DISCONNECT_PROMPT = Rule(
    SHOULD,
    'www spec 2.5, "Disconnect - receive event"',
    "Sent to the application when either connection to the client is lost, either from the client closing the "
    "connection, the server closing the connection, or loss of the socket.",
    "when is not said; the close frame is the client closing, and a disconnect that waits for TCP or a timeout "
    "deviates",
)
WS_RECEIVE_AFTER_DISCONNECT = Rule(
    UNSPEC,
    'www spec 2.5, "Disconnect - receive event"',
    "Once you have received this event, you should expect future calls to ``send()`` to raise an exception",
    "what a later receive() returns is not said (docs/decisions.md#disconnect-repeats)",
)
WS_AFTER_OWN_CLOSE = Rule(
    UNSPEC,
    'www spec 2.5, "Close - send event"',
    "If this is sent after the socket is accepted, the server must close the socket with the close code passed in "
    "the message (or 1000 if none is specified).",
    "what receive() and send() do while the closing handshake runs is not said"
    " (docs/decisions.md#send-after-own-close-raises, #own-close-then-echo)",
)
WS_COMPLETE_MESSAGES = Rule(
    SHOULD,
    'www spec 2.5, "WebSocket"',
    "WebSocket protocol servers should handle message fragmentation themselves, and deliver complete messages to "
    "the application.",
)
WS_RECEIVE_EVENT = Rule(
    MUST,
    'www spec 2.5, "Receive - receive event"',
    "Sent to the application when a data message is received from the client.",
    _DESCRIBES,
)
WS_SEND_EVENT = Rule(
    MUST,
    'www spec 2.5, "Send - send event"',
    "Sent by the application to send a data message to the client.",
    _DESCRIBES,
)
WS_PING_PONG = Rule(
    MUST,
    "RFC 6455 §5.5.2",
    "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response, unless it already received a "
    "Close frame.",
)
WS_KEEPALIVE = Rule(
    SHOULD,
    'www spec 2.5, "WebSocket"',
    "WebSocket protocol servers should handle PING/PONG messages themselves, and send PING messages as necessary "
    "to ensure the connection is alive.",
)
WS_KEEPALIVE_DROP = Rule(
    UNSPEC,
    'www spec 2.5, "WebSocket"',
    "send PING messages as necessary to ensure the connection is alive.",
    "how an unanswered peer is dropped (which close code, if any) is not said",
)
WS_CLOSE_CODE_SENT = Rule(
    MUST,
    'www spec 2.5, "Close - send event"',
    "If this is sent after the socket is accepted, the server must close the socket with the close code passed in "
    "the message (or 1000 if none is specified).",
)
WS_CLOSE_REASON_SENT = Rule(
    MUST,
    'www spec 2.5, "Close - send event"',
    "``reason`` (*Unicode string*) -- A reason given for the closure, can be any string.",
    "added in spec version 2.3",
)
WS_CLOSE_1006_RAISES = Rule(
    SHOULD,
    'asgi spec, "Error Handling"',
    "If a server receives an invalid event dictionary ... it should raise an exception out of the ``send`` "
    "awaitable back to the application.",
    "a close code that may not be sent (RFC 6455 §7.4.1) makes the event invalid",
)
WS_LONG_REASON = Rule(
    UNSPEC,
    "RFC 6455 §5.5",
    "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented.",
    "whether a too-long reason is truncated or refused is not said (docs/decisions.md#app-close-codes-and-reasons)",
)
WS_GRACEFUL_SHUTDOWN = Rule(
    SHOULD,
    "RFC 6455 §7.4.1",
    '1001 indicates that an endpoint is "going away", such as a server going down or a browser having navigated '
    "away from a page.",
    "a server going down says so; docs/decisions.md#shutdown-1001",
)
WS_BACKPRESSURE = Rule(
    UNSPEC,
    'asgi spec, "Applications"',
    "``send``: an awaitable callable taking a single event dictionary as a positional argument that will return "
    "once the send has been completed or the connection has been closed",
    "how much a server buffers before send() waits is not said (docs/decisions.md#backpressure)",
)
WS_BLOCKED_SEND_ENDS = Rule(
    SHOULD,
    'www spec 2.5, "Disconnected Client - send exception"',
    "If ``send()`` is called on a closed connection the server should raise a server-specific subclass of ``OSError``.",
    "a send blocked when the peer goes away is a send on a closed connection: it raises or returns, never hangs",
)
WS_LIMIT = Rule(
    SHOULD,
    "RFC 6455 §10.4",
    "Such an implementation SHOULD impose a limit on frame sizes and the total message size after reassembly from "
    "multiple frames.",
    "and §7.4.1: 1009 indicates a message that is too big for it to process (docs/decisions.md#keepalive-and-limits)",
)
WS_LARGE_MESSAGE = Rule(
    UNSPEC,
    "RFC 6455 §10.4",
    "Such an implementation SHOULD impose a limit on frame sizes and the total message size after reassembly from "
    "multiple frames.",
    "the limit is the server's choice",
)
WS_PERMESSAGE_DEFLATE = Rule(
    UNSPEC,
    "RFC 6455 §9",
    "WebSocket clients MAY request extensions to this specification, and WebSocket servers MAY accept some or all "
    "extensions requested by the client.",
)
WS_COMPRESSED = Rule(
    MUST,
    "RFC 7692 §6.2",
    "An endpoint uses the following algorithm to decompress a message.",
    "where permessage-deflate was negotiated, a message with RSV1 set is inflated",
)
WS_EARLY_DATA = Rule(
    UNSPEC,
    "RFC 6455 §4.1",
    "Once the client's opening handshake has been sent, the client MUST wait for a response from the server before "
    "sending any further data.",
    "a rule for clients: what a server does with bytes that come early is not said",
)
WS_DURING_CLOSING = Rule(
    UNSPEC,
    "RFC 6455 §1.4",
    "After sending a control frame indicating the connection should be closed, a peer does not send any further "
    "data; after receiving a control frame indicating the connection should be closed, a peer discards any further "
    "data received.",
    "what the app is told meanwhile is not said (docs/decisions.md#own-close-then-echo)",
)
WS_NO_DATA_AFTER_CLOSE = Rule(
    MUST,
    "RFC 6455 §5.5.1",
    "The application MUST NOT send any more data frames after sending a Close frame.",
)
WS_CLOSE_TIMEOUT = Rule(
    SHOULD,
    "RFC 6455 §7.1.1",
    "In abnormal cases (such as not having received a TCP Close from the server after a reasonable amount of "
    "time) a client MAY initiate the TCP Close.",
    "and the server, waiting for a close frame that never comes, ends the connection itself"
    " (docs/decisions.md#own-close-then-echo)",
)
WS_DISCONNECT_CODE_AFTER_TIMEOUT = Rule(
    UNSPEC,
    "RFC 6455 §7.1.5",
    "If _The WebSocket Connection is Closed_ and no Close control frame was received by the endpoint ... _The "
    "WebSocket Connection Close Code_ is considered to be 1006.",
    "the app sent its own close first: which code its disconnect carries is not said"
    " (docs/decisions.md#own-close-then-echo)",
)
WS_APP_RAISE_AFTER_CLOSE = Rule(
    SHOULD,
    "RFC 6455 §5.5.1",
    "If an endpoint receives a Close frame and did not previously send a Close frame, the endpoint MUST send a "
    "Close frame in response.",
    "one close frame per endpoint: an exception after the app's close adds no second one",
)

# ---------------------------------------------------------------- RFC 6455

ACCEPT_KEY = Rule(
    MUST,
    "RFC 6455 §4.2.2",
    "The value of this header field is constructed by concatenating /key/, defined above in step 4 in Section "
    '4.2.2, with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", taking the SHA-1 hash of this concatenated '
    "value to obtain a 20-byte value and base64-encoding (see Section 4 of [RFC4648]) this 20-byte hash.",
)
BAD_VERSION = Rule(
    MUST,
    "RFC 6455 §4.4",
    "If this version does not match a version understood by the server, the server MUST abort the WebSocket "
    "handshake described in this section and instead send an appropriate HTTP error code (such as 426 Upgrade "
    "Required) and a |Sec-WebSocket-Version| header field indicating the version(s) the server is capable of "
    "understanding.",
)
BAD_HANDSHAKE = Rule(
    MUST,
    "RFC 6455 §4.2.1",
    "If the server, while reading the handshake, finds that the client did not send a handshake that matches the "
    "description below ..., the server MUST stop processing the client's handshake and return an HTTP response "
    "with an appropriate error code (such as 400 Bad Request).",
)
BAD_HANDSHAKE_STATUS = Rule(
    UNSPEC,
    "RFC 6455 §4.2.1",
    "return an HTTP response with an appropriate error code (such as 400 Bad Request).",
    "which error code is the server's choice",
)
BAD_HANDSHAKE_APP = Rule(
    UNSPEC,
    'www spec 2.5, "Connect - receive event"',
    "Sent to the application when the client initially opens a connection and is about to finish the WebSocket "
    "handshake.",
    "whether an app is called for a handshake the server refuses is not said",
)
FRAGMENTS = Rule(
    MUST,
    "RFC 6455 §5.4",
    "Clients and servers MUST support receiving both fragmented and unfragmented messages.",
)
CONTROL_IN_FRAGMENTS = Rule(
    MUST,
    "RFC 6455 §5.4",
    "An endpoint MUST be capable of handling control frames in the middle of a fragmented message.",
)
UNSOLICITED_PONG = Rule(
    MUST,
    "RFC 6455 §5.5.3",
    "A Pong frame MAY be sent unsolicited. This serves as a unidirectional heartbeat. A response to an "
    "unsolicited Pong frame is not expected.",
    "a frame the peer may send must not break the connection",
)
FRAMING = Rule(
    MUST,
    "RFC 6455 §5.2",
    'The length of the "Payload data", in bytes: if 0-125, that is the payload length.',
    "frames are parsed from the byte stream, however TCP splits it",
)
UTF8_WHOLE_MESSAGE = Rule(
    MUST,
    "RFC 6455 §5.6",
    "Note that a particular text frame might include a partial UTF-8 sequence; however, the whole message MUST "
    "contain valid UTF-8.",
)
FAIL_ON_UNMASKED = Rule(
    MUST,
    "RFC 6455 §5.1",
    "The server MUST close the connection upon receiving a frame that is not masked.",
)
UNMASKED_CLOSE_FRAME = Rule(
    MAY,
    "RFC 6455 §5.1",
    "In this case, a server MAY send a Close frame with a status code of 1002 (protocol error) as defined in "
    "Section 7.4.1.",
)
FAIL_ON_RSV = Rule(
    MUST,
    "RFC 6455 §5.2",
    "If a nonzero value is received and none of the negotiated extensions defines the meaning of such a nonzero "
    "value, the receiving endpoint MUST _Fail the WebSocket Connection_.",
)
FAIL_ON_OPCODE = Rule(
    MUST,
    "RFC 6455 §5.2",
    "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket Connection_.",
)
FAIL_ON_UTF8 = Rule(
    MUST,
    "RFC 6455 §8.1",
    "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream is not, in fact, a "
    "valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_.",
)
FAIL_ON_FRAGMENTATION = Rule(
    MUST,
    "RFC 6455 §5.4",
    "A fragmented message consists of a single frame with the FIN bit clear and an opcode other than 0, followed "
    "by zero or more frames with the FIN bit clear and the opcode set to 0, and terminated by a single frame with "
    "the FIN bit set and an opcode of 0.",
    "a frame outside that shape is a protocol error: the connection fails",
)
CONTROL_FRAME_SIZE = Rule(
    MUST,
    "RFC 6455 §5.5",
    "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented.",
)
FAIL_ON_CLOSE_PAYLOAD = Rule(
    MUST,
    "RFC 6455 §5.5.1",
    "If there is a body, the first two bytes of the body MUST be a 2-byte unsigned integer (in network byte "
    "order) representing a status code with value /code/ defined in Section 7.4.",
)
FAIL_ON_RESERVED_CODE = Rule(
    SHOULD,
    "RFC 6455 §7.4.1",
    "1005 is a reserved value and MUST NOT be set as a status code in a Close control frame by an endpoint.",
    "the rule binds the sender; failing the connection on receiving it is how Autobahn 7.9 reads it",
)
FAIL_ON_CLOSE_REASON = Rule(
    SHOULD,
    "RFC 6455 §5.5.1",
    "Following the 2-byte integer, the body MAY contain UTF-8-encoded data with value /reason/, the interpretation "
    "of which is not defined by this specification.",
    "and §8.1: invalid UTF-8 fails the connection; a reason is data a server need not interpret",
)
FAIL_CLOSE_FRAME = Rule(
    SHOULD,
    "RFC 6455 §7.1.7",
    "If _The WebSocket Connection is Established_ prior to the point where the endpoint is required to _Fail the "
    "WebSocket Connection_, the endpoint SHOULD send a Close frame with an appropriate status code (Section 7.4) "
    "before proceeding to _Close the WebSocket Connection_.",
)
CLOSE_ANSWERED = Rule(
    MUST,
    "RFC 6455 §5.5.1",
    "If an endpoint receives a Close frame and did not previously send a Close frame, the endpoint MUST send a "
    "Close frame in response.",
)
CLOSE_ECHO_CODE = Rule(
    UNSPEC,
    "RFC 6455 §5.5.1",
    "(When sending a Close frame in response, the endpoint typically echos the status code it received.)",
    "typical, not required: another code only differs",
)
SERVER_CLOSES_TCP = Rule(
    SHOULD,
    "RFC 6455 §7.1.1",
    "The underlying TCP connection, in most normal cases, SHOULD be closed first by the server, so that it holds "
    "the TIME_WAIT state and not the client",
)
TCP_CLOSE_AFTER_ECHO = Rule(
    UNSPEC,
    "RFC 6455 §7.1.1",
    "when a server is instructed to _Close the WebSocket Connection_ it SHOULD initiate a TCP Close immediately",
    "how the TCP connection ends (FIN or RST) is not judged here",
)

# ---------------------------------------------------------------- TLS

TLS_SCHEME = Rule(
    MUST,
    'tls extension, "When to use this extension"',
    "This extension must only be used for TLS connections.",
    "and www: ``scheme`` is the URL scheme portion, https or wss over TLS",
)
TLS_EXTENSION_OFFERED = Rule(
    UNSPEC,
    'tls extension, "When to use this extension"',
    "If present, the server supports this extension and the connection is over TLS. If not present, either the "
    "server does not support this extension or the connection is not over TLS.",
    "advertising the extension is the server's choice",
)
TLS_NOT_ON_PLAIN = Rule(
    MUST,
    'tls extension, "When to use this extension"',
    "For non-TLS connections, the ASGI server is forbidden from providing this extension.",
)
TLS_SCOPE = Rule(
    MUST,
    'tls extension, "TLS Connection Scope"',
    "``server_cert`` (*Unicode string or None*) -- The PEM-encoded conversion of the x509 certificate sent by the "
    "server when establishing the TLS connection.",
    "and the other entries as that section defines them",
)
TLS_CLIENT_CERT = Rule(
    MUST,
    'tls extension, "TLS Connection Scope"',
    "The first certificate is the client certificate.",
    "and client_cert_name in RFC 4514 form",
)
CLOSE_NOTIFY = Rule(
    MUST,
    "RFC 8446 §6.1",
    'Each party MUST send a "close_notify" alert before closing its write side of the connection, unless it has '
    "already sent some error alert.",
)
TLS_HANDSHAKE_FAILURE = Rule(
    MUST,
    "RFC 8446 §6.2",
    "Upon transmission or receipt of a fatal alert message, both parties MUST immediately close the connection.",
    "and the server goes on serving other connections",
)
TLS_FAILED_HANDSHAKE_LOG = Rule(
    UNSPEC,
    "RFC 8446 §6.2",
    "Upon transmission or receipt of a fatal alert message, both parties MUST immediately close the connection.",
    "whether a server logs a client's failed handshake is its choice (docs/decisions.md#tls-extension-contents)",
)

# ---------------------------------------------------------------- lifespan

LIFESPAN_STATE = Rule(
    MUST,
    'lifespan spec 2.0, "Lifespan State"',
    "The server will ensure that a *shallow copy* of the namespace is passed into each subsequent "
    "request/response call into the application.",
)
LIFESPAN_STATE_COPY = Rule(
    SHOULD,
    'lifespan spec 2.0, "Lifespan State"',
    "The server will ensure that a *shallow copy* of the namespace is passed into each subsequent "
    "request/response call into the application.",
    "a copy per call: one call changing it does not change the next one's (the namespace's contents are the app's)",
)
LIFESPAN_STARTUP_COMPLETE = Rule(
    MUST,
    'lifespan spec 2.0, "Startup Complete - send event"',
    "A server must wait for this message before it starts processing connections.",
)
LIFESPAN_STARTUP_FAILED = Rule(
    SHOULD,
    'lifespan spec 2.0, "Startup Failed - send event"',
    "If a server sees this it should log/print the message provided and then exit.",
)
LIFESPAN_EXIT_STATUS = Rule(
    UNSPEC,
    'lifespan spec 2.0, "Startup Failed - send event"',
    "If a server sees this it should log/print the message provided and then exit.",
    "the exit status is not named",
)
LIFESPAN_APP_RAISES = Rule(
    MUST,
    'lifespan spec 2.0, "Scope"',
    "If an exception is raised when calling the application callable with a ``lifespan.startup`` message or a "
    "``scope`` with type ``lifespan``, the server must continue but not send any lifespan events.",
)
LIFESPAN_SHUTDOWN_COMPLETE = Rule(
    MUST,
    'lifespan spec 2.0, "Shutdown Complete - send event"',
    "A server must wait for this message before terminating.",
)
LIFESPAN_CLEAN_EXIT = Rule(
    SHOULD,
    'lifespan spec 2.0, "Shutdown Complete - send event"',
    "Sent by the application when it has completed its cleanup. A server must wait for this message before "
    "terminating.",
    "a shutdown that completed is a clean exit: status 0, or the SIGTERM re-raised",
)
LIFESPAN_SHUTDOWN_FAILED = Rule(
    SHOULD,
    'lifespan spec 2.0, "Shutdown Failed - send event"',
    "If a server sees this it should log/print the message provided and then terminate.",
)
LIFESPAN_SHUTDOWN_SENT = Rule(
    MUST,
    'lifespan spec 2.0, "Shutdown - receive event"',
    "Sent to the application when the server has stopped accepting connections and closed all active connections.",
)
LIFESPAN_SHUTDOWN_EXIT_STATUS = Rule(
    UNSPEC,
    'lifespan spec 2.0, "Shutdown Failed - send event"',
    "If a server sees this it should log/print the message provided and then terminate.",
    "the exit status is not named",
)
LIFESPAN_SCOPE = Rule(
    MUST,
    'lifespan spec 2.0, "Scope"',
    '``asgi["spec_version"]`` (*Unicode string*) -- The version of this spec being used. Optional; if missing '
    'defaults to ``"1.0"``.',
    'the lifespan spec has versions 1.0 and 2.0; "2.3" or "2.4" are versions of the www spec',
)
LIFESPAN_SCOPE_STATE = Rule(
    UNSPEC,
    'lifespan spec 2.0, "Scope"',
    "``state`` Optional(*dict[Unicode string, Any]*) -- An empty namespace where the application can persist state "
    "to be used when handling subsequent requests. Optional; if missing the server does not support this feature.",
)

# ---------------------------------------------------------------- timing and the rest

WS_DENY_PROMPT = Rule(
    SHOULD,
    'www spec 2.5, "Close - send event"',
    "If this is sent before the socket is accepted, the server must close the connection with a HTTP 403 error "
    "code (Forbidden), and not complete the WebSocket handshake",
    "when is not said; a 403 that waits for the app to return deviates",
)
RESERVED_NOT_SENT = Rule(
    MUST,
    "RFC 6455 §7.4.1",
    "1006 is a reserved value and MUST NOT be set as a status code in a Close control frame by an endpoint.",
)
WS_APP_ENDS_BEFORE_ACCEPT = Rule(
    MUST,
    'www spec 2.5, "Connect - receive event"',
    "The protocol server must send this message during the handshake phase of the WebSocket and not complete the "
    "handshake until it gets a reply",
    "an app that ends without a reply has not accepted: the handshake still gets an HTTP answer",
)
TERMINATE_PROMPT = Rule(
    SHOULD,
    'asgi spec, "Error Handling"',
    "they must terminate the application instance and its associated connection if this happens.",
    "when is not said; a server slower than a second's polling and a margin deviates",
)
UNIX_CLIENT = Rule(
    UNSPEC,
    'www spec 2.5, "HTTP Connection Scope"',
    "``client`` (*Iterable[Unicode string, int]*) -- A two-item iterable of ``[host, port]`` ... Optional; if "
    "missing defaults to ``None``.",
    "what client is on a Unix socket is not said (docs/decisions.md#unix-socket-scope)",
)
LONG_BODY_SEND = Rule(
    UNSPEC,
    'www spec 2.5, "Response Body - send event"',
    "Protocol servers must flush any data passed to them into the send buffer before returning from a send call.",
    "what send() does with more bytes than the declared Content-Length is not said",
)
NOTHING_AFTER_COMPLETE = Rule(
    MUST,
    'www spec 2.5, "Response Body - send event"',
    "If ``False``, and the server is not expecting *Response Trailers* response will be taken as complete and "
    "closed, and any further messages on the channel will be ignored.",
    "none of a later message reaches the wire; a server that raises instead, and has the app's error escape, "
    'terminates the connection (asgi spec, "Error Handling")',
)
