"""TLS: https and wss, the scope's ``tls`` extension (tls extension, "TLS Connection
Scope"), client certificates, handshakes that fail or never finish, and the TLS options.
Certificates come from trustme; every wait is bounded and synchronised on events."""

from __future__ import annotations

import datetime
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.tls import TLSAttribute
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import refserver.cli
from refserver import Config
from refserver.conformance.client import TLSClient
from refserver.protocol.http_extensions import ADVERTISED
from refserver.runtime.tls import TLSConfigError, client_chain, load, rfc4514_subject
from tests.support import (
    TIMEOUT,
    HTTPClient,
    Recorder,
    close_frame,
    frame,
    handshake_request,
    read_until_eof,
    serving,
)

pytestmark = pytest.mark.anyio

# RFC 8446 §B.4: the TLS 1.3 cipher suites Python enables by default.
TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_leaf(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("127.0.0.1", "localhost")


@pytest.fixture
def tls_files(tmp_path: Path, ca: trustme.CA, server_leaf: trustme.LeafCert) -> dict[str, str]:
    """Config options for a TLS server whose certificate ``ca`` signed."""
    cert, key, cas = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in server_leaf.cert_chain_pems))
    server_leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(cas))
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "ssl_ca_certs": str(cas)}


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


async def tls_connect(port: int, context: ssl.SSLContext) -> anyio.abc.ByteStream:
    return await anyio.connect_tcp(
        "127.0.0.1", port, ssl_context=context, tls_hostname="127.0.0.1", tls_standard_compatible=False
    )


@asynccontextmanager
async def tls_client(port: int, context: ssl.SSLContext) -> AsyncIterator[tuple[HTTPClient, anyio.abc.ByteStream]]:
    stream = await tls_connect(port, context)
    try:
        yield HTTPClient(stream), stream
    finally:
        await stream.aclose()


def recording_app(recorder: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        recorder.add("scope", scope)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        elif scope["type"] == "websocket":
            assert await receive() == {"type": "websocket.connect"}
            await send({"type": "websocket.accept"})
            event = await receive()
            recorder.add("ws", event)
            await send({"type": "websocket.send", "text": scope["scheme"]})
            await send({"type": "websocket.close", "code": 1000})

    return app


def pem(blob: trustme.Blob) -> str:
    return blob.bytes().decode("ascii")


class LogWaiter(logging.Handler):
    """Collects refserver's log records; tests wait on them instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[logging.LogRecord], bool]) -> logging.LogRecord:
        with anyio.fail_after(TIMEOUT):
            while True:
                for record in self.records:
                    if predicate(record):
                        return record
                await self._changed.wait()


@pytest.fixture
def logs() -> Iterator[LogWaiter]:
    logger = logging.getLogger("refserver")
    waiter = LogWaiter()
    saved = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(waiter)
    try:
        yield waiter
    finally:
        logger.removeHandler(waiter)
        logger.setLevel(saved)


def handshake_failure(record: logging.LogRecord) -> bool:
    return record.getMessage().startswith("TLS handshake with 127.0.0.1:")


def errors(logs: LogWaiter) -> list[str]:
    return [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]


async def served_ok(port: int, context: ssl.SSLContext) -> bytes:
    """One GET over a fresh TLS connection: the body (the server is still serving)."""
    async with tls_client(port, context) as (client, _):
        with anyio.fail_after(TIMEOUT):
            await client.send_request()
            response, body = await client.read_response()
    assert response.status_code == 200
    return body


class TestTLSConnectionScope:
    """tls extension, "TLS Connection Scope", and www spec 2.5 ``scheme``."""

    async def test_https_scope_carries_the_tls_extension(
        self, ca: trustme.CA, server_leaf: trustme.LeafCert, tls_files: dict[str, str]
    ) -> None:
        recorder = Recorder()
        async with serving(recording_app(recorder), **tls_files) as listening:
            assert listening.url == f"https://127.0.0.1:{listening.port}"
            async with tls_client(listening.port, client_context(ca)) as (client, stream):
                with anyio.fail_after(TIMEOUT):
                    await client.send_request()
                    response, body = await client.read_response()
                client_port = stream.extra(anyio.abc.SocketAttribute.local_address)[1]
                cipher_name = stream.extra(TLSAttribute.cipher)[0]
                assert stream.extra(TLSAttribute.tls_version) == "TLSv1.3"
        assert (response.status_code, body) == (200, b"ok")
        (scope,) = recorder.of("scope")
        assert scope["scheme"] == "https"
        assert scope["client"] == ("127.0.0.1", client_port)
        assert scope["server"] == ("127.0.0.1", listening.port)
        assert scope["extensions"] == {
            **{name: {} for name in ADVERTISED},
            "tls": {
                "server_cert": pem(server_leaf.cert_chain_pems[0]),
                "client_cert_chain": [],
                "client_cert_name": None,
                "client_cert_error": None,
                "tls_version": 0x0304,
                "cipher_suite": TLS13_SUITES[cipher_name],
            },
        }

    async def test_tls_12_with_the_configured_cipher(self, ca: trustme.CA, tls_files: dict[str, str]) -> None:
        recorder = Recorder()
        # trustme's keys are ECDSA P-256; RFC 5289 §3: ECDHE-ECDSA-AES128-GCM-SHA256 is {0xC0, 0x2B}.
        async with serving(recording_app(recorder), ssl_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", **tls_files) as ls:
            context = client_context(ca)
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            assert await served_ok(ls.port, context) == b"ok"
        (scope,) = recorder.of("scope")
        tls = scope["extensions"]["tls"]
        assert (tls["tls_version"], tls["cipher_suite"]) == (0x0303, 0xC02B)

    async def test_plain_text_connections_have_no_tls_extension(self) -> None:
        recorder = Recorder()
        async with serving(recording_app(recorder)) as listening, HTTPClient.open(listening.port) as client:
            with anyio.fail_after(TIMEOUT):
                await client.send_request()
                await client.read_response()
        (scope,) = recorder.of("scope")
        assert (scope["scheme"], scope["extensions"]) == ("http", {name: {} for name in ADVERTISED})

    async def test_wss_scope(self, ca: trustme.CA, server_leaf: trustme.LeafCert, tls_files: dict[str, str]) -> None:
        recorder = Recorder()
        async with serving(recording_app(recorder), **tls_files) as listening:
            stream = await tls_connect(listening.port, client_context(ca))
            try:
                with anyio.fail_after(TIMEOUT):
                    await stream.send(handshake_request("/"))
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += await stream.receive()
                    head, _, rest = data.partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 101 ")
                    masked = bytes(b ^ k for b, k in zip(b"hi", b"\x01\x02", strict=True))
                    await stream.send(b"\x81\x82\x01\x02\x03\x04" + masked)
                    expected = b"\x81\x03wss" + b"\x88\x02\x03\xe8"  # text "wss", then close 1000
                    while len(rest) < len(expected):
                        rest += await stream.receive()
            finally:
                await stream.aclose()
        assert rest == expected
        assert recorder.of("ws") == [{"type": "websocket.receive", "text": "hi"}]
        (scope,) = recorder.of("scope")
        assert scope["scheme"] == "wss"
        assert set(scope["extensions"]) == {"websocket.http.response", "tls"}
        assert scope["extensions"]["tls"]["server_cert"] == pem(server_leaf.cert_chain_pems[0])
        assert scope["extensions"]["tls"]["tls_version"] == 0x0304

    async def test_client_certificate(self, ca: trustme.CA, tls_files: dict[str, str]) -> None:
        recorder = Recorder()
        alice = ca.issue_cert("alice@example.com", common_name="alice")
        async with serving(recording_app(recorder), ssl_cert_reqs=ssl.CERT_REQUIRED, **tls_files) as listening:
            assert await served_ok(listening.port, client_context(ca, alice)) == b"ok"
        (scope,) = recorder.of("scope")
        tls = scope["extensions"]["tls"]
        leaf = pem(alice.cert_chain_pems[0])
        # Python 3.11 gives the server the client's leaf only: the chain is that one certificate.
        assert tls["client_cert_chain"] == [leaf]
        subject = x509.load_pem_x509_certificate(leaf.encode()).subject
        assert tls["client_cert_name"] == subject.rfc4514_string()
        assert tls["client_cert_name"].startswith("CN=alice,OU=Testing cert #")
        assert tls["client_cert_error"] is None

    async def test_each_scope_has_its_own_copy(self, ca: trustme.CA, tls_files: dict[str, str]) -> None:
        recorder = Recorder()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            recorder.add("scope", scope)
            scope["extensions"]["tls"]["client_cert_chain"].append("mine")
            scope["extensions"]["tls"]["tls_version"] = 1
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

        async with (
            serving(app, **tls_files) as listening,
            tls_client(listening.port, client_context(ca)) as (client, _),
        ):
            with anyio.fail_after(TIMEOUT):
                for _ in range(2):
                    await client.send_request()
                    await client.read_response()
        first, second = recorder.of("scope")
        assert second["extensions"]["tls"]["client_cert_chain"] == ["mine"]  # only its own append
        assert first["extensions"]["tls"] is not second["extensions"]["tls"]


async def echo_until_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """HTTP: 200 "ok". WebSocket: echo text until the disconnect; "close" makes the app close."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    assert await receive() == {"type": "websocket.connect"}
    await send({"type": "websocket.accept"})
    while (event := await receive())["type"] == "websocket.receive":
        if event["text"] == "close":
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send({"type": "websocket.send", "text": event["text"]})


async def tls_session(port: int, context: ssl.SSLContext) -> TLSClient:
    """A TLS client driven by hand, which tells the server's close_notify from a bare TCP end."""
    secure = TLSClient(await anyio.connect_tcp("127.0.0.1", port), context, "127.0.0.1")
    with anyio.fail_after(TIMEOUT):
        await secure.handshake()
    return secure


async def until_tls_end(secure: TLSClient) -> bytes:
    """Everything the server sends until its TLS session ends (``secure.ended`` says how)."""
    with anyio.fail_after(TIMEOUT):
        return await read_until_eof(secure)


async def tcp_end(secure: TLSClient) -> str:
    """After the TLS session ended: how the TCP connection ends (``eof``: the server closed it)."""
    with anyio.fail_after(TIMEOUT):
        try:
            while await secure.raw.receive():
                pass
        except anyio.EndOfStream:
            return "eof"
        except anyio.BrokenResourceError:
            return "rst"
    return "data"


class TestFileBodiesOverTLS:
    """asgi extensions, "Zero Copy Send" and "Path Send" over TLS, where sendfile cannot be used:
    the same bytes, read in bounded chunks (docs/decisions.md#zerocopysend)."""

    async def test_zerocopysend_and_pathsend_over_tls(
        self, ca: trustme.CA, tls_files: dict[str, str], tmp_path: Path
    ) -> None:
        content = bytes(range(256)) * 2048  # 512 KiB: more than one bounded read
        path = tmp_path / "data.bin"
        path.write_bytes(content)
        with open(path, "rb") as file:

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                await send({"type": "http.response.start", "status": 200})
                if scope["path"] == "/zerocopy":
                    await send({"type": "http.response.zerocopysend", "file": file, "offset": 1, "more_body": True})
                    await send({"type": "http.response.body", "body": b"!"})
                else:
                    await send({"type": "http.response.pathsend", "path": str(path)})

            async with (
                serving(app, **tls_files) as listening,
                tls_client(listening.port, client_context(ca)) as (
                    client,
                    _,
                ),
            ):
                with anyio.fail_after(TIMEOUT):
                    await client.send_request(target="/zerocopy")
                    _, zerocopy = await client.read_response()
                    await client.send_request(target="/pathsend")
                    _, pathsend = await client.read_response()
            assert not file.closed
        assert (zerocopy, pathsend) == (content[1:] + b"!", content)


class TestRFC8446Section6_1ClosureAlerts:
    """RFC 8446 §6.1: "Each party MUST send a "close_notify" alert before closing its write side
    of the connection". refserver sends it, then closes TCP, without waiting for the client's
    (docs/decisions.md#tls-close-notify); over wss, after the WebSocket close handshake."""

    async def test_https_connection_close(self, ca: trustme.CA, tls_files: dict[str, str]) -> None:
        async with serving(echo_until_disconnect, **tls_files) as listening:
            secure = await tls_session(listening.port, client_context(ca))
            try:
                await secure.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                response = await until_tls_end(secure)
                end = await tcp_end(secure)
            finally:
                await secure.aclose()
        assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"\r\n\r\nok")
        assert (secure.ended, end) == ("close_notify", "eof")

    async def test_wss_app_closes(self, ca: trustme.CA, tls_files: dict[str, str]) -> None:
        async with serving(echo_until_disconnect, **tls_files) as listening:
            secure = await tls_session(listening.port, client_context(ca))
            try:
                await secure.send(handshake_request("/"))
                with anyio.fail_after(TIMEOUT):
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += await secure.receive()
                await secure.send(frame(1, b"hi") + frame(1, b"close"))
                expected = b"\x81\x02hi" + b"\x88\x02\x03\xe8"
                rest = head.partition(b"\r\n\r\n")[2]
                with anyio.fail_after(TIMEOUT):
                    while len(rest) < len(expected):
                        rest += await secure.receive()
                await secure.send(close_frame(1000))  # the client's answer (RFC 6455 §5.5.1)
                after = await until_tls_end(secure)
                end = await tcp_end(secure)
            finally:
                await secure.aclose()
        assert head.startswith(b"HTTP/1.1 101 ")
        assert (rest, after) == (expected, b"")
        assert (secure.ended, end) == ("close_notify", "eof")

    async def test_wss_client_closes(self, ca: trustme.CA, tls_files: dict[str, str]) -> None:
        async with serving(echo_until_disconnect, **tls_files) as listening:
            secure = await tls_session(listening.port, client_context(ca))
            try:
                await secure.send(handshake_request("/") + frame(1, b"hi"))
                data = b""
                with anyio.fail_after(TIMEOUT):
                    while not data.endswith(b"\r\n\r\n\x81\x02hi"):
                        data += await secure.receive()
                await secure.send(close_frame(1000))
                after = await until_tls_end(secure)
                end = await tcp_end(secure)
            finally:
                await secure.aclose()
        assert after == b"\x88\x02\x03\xe8"  # the echo of the client's close frame
        assert (secure.ended, end) == ("close_notify", "eof")


class TestTLSHandshakeFailures:
    """A handshake that fails or never finishes is the client's business: logged at INFO with
    the peer and the reason, the connection closed, and the server keeps serving."""

    async def test_plain_http_to_a_tls_port(self, ca: trustme.CA, tls_files: dict[str, str], logs: LogWaiter) -> None:
        async with serving(recording_app(Recorder()), **tls_files) as listening:
            stream = await anyio.connect_tcp("127.0.0.1", listening.port)
            try:
                await stream.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                with anyio.fail_after(TIMEOUT):
                    assert b"HTTP/1.1" not in await read_until_eof(stream)
            finally:
                await stream.aclose()
            record = await logs.wait_for(handshake_failure)
            assert await served_ok(listening.port, client_context(ca)) == b"ok"
        assert record.levelno == logging.INFO
        assert "HTTP_REQUEST" in record.getMessage()
        assert errors(logs) == []

    async def test_client_leaves_during_the_handshake(
        self, ca: trustme.CA, tls_files: dict[str, str], logs: LogWaiter
    ) -> None:
        hello = client_hello(client_context(ca))
        async with serving(recording_app(Recorder()), **tls_files) as listening:
            stream = await anyio.connect_tcp("127.0.0.1", listening.port)
            await stream.send(hello[: len(hello) // 2])
            await stream.aclose()
            record = await logs.wait_for(handshake_failure)
            assert await served_ok(listening.port, client_context(ca)) == b"ok"
        assert record.levelno == logging.INFO
        assert record.getMessage().endswith(": the client closed the connection during the handshake")
        assert errors(logs) == []

    async def test_missing_client_certificate_is_refused(
        self, ca: trustme.CA, tls_files: dict[str, str], logs: LogWaiter
    ) -> None:
        recorder = Recorder()
        async with serving(recording_app(recorder), ssl_cert_reqs=ssl.CERT_REQUIRED, **tls_files) as listening:
            with anyio.fail_after(TIMEOUT):
                try:
                    async with tls_client(listening.port, client_context(ca)) as (client, stream):
                        await client.send_request()
                        received = await read_until_eof(stream)
                except (ssl.SSLError, anyio.BrokenResourceError):  # TLS 1.2 fails in the handshake
                    received = b""
            record = await logs.wait_for(handshake_failure)
            alice = ca.issue_cert("alice@example.com", common_name="alice")
            assert await served_ok(listening.port, client_context(ca, alice)) == b"ok"
        assert received == b""
        assert len(recorder.of("scope")) == 1  # only the client with a certificate reached the app
        assert record.levelno == logging.INFO
        assert "CERTIFICATE" in record.getMessage().upper()
        assert errors(logs) == []

    async def test_unfinished_handshake_is_closed_after_the_keep_alive_timeout(
        self, ca: trustme.CA, tls_files: dict[str, str], logs: LogWaiter
    ) -> None:
        async with serving(recording_app(Recorder()), timeout_keep_alive_s=0.2, **tls_files) as listening:
            stream = await anyio.connect_tcp("127.0.0.1", listening.port)
            try:
                with anyio.fail_after(TIMEOUT):
                    assert await read_until_eof(stream) == b""  # the server closed it
            finally:
                await stream.aclose()
            record = await logs.wait_for(handshake_failure)
        assert record.levelno == logging.INFO
        assert record.getMessage().endswith(": no handshake within 0.2 s")
        assert errors(logs) == []


def client_hello(context: ssl.SSLContext) -> bytes:
    """The ClientHello a TLS client would send first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=False, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


# ---------------------------------------------------------------- without a server


def certificate(subject: x509.Name) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


class TestRFC4514ClientCertName:
    """ASGI TLS extension, ``client_cert_name``: "encoded as defined in RFC4514"."""

    def test_order_escaping_multi_valued_and_dotted_types(self) -> None:
        subject = x509.Name(
            [
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "SE")]),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'A, "B" + <C>;\\')]),
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "#lead trail "),
                        x509.NameAttribute(NameOID.COMMON_NAME, " Ärla"),
                    ]
                ),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b")]),
            ]
        )
        # §2.1: last RDN first; §2.3: emailAddress has no short name, so its OID and (§2.4) the
        # hex of its BER encoding (IA5String, 3 bytes); §2.4 escapes; §2.2: "+" joins an RDN
        # (DER sorts the SET: CN's encoding sorts before OU's).
        assert rfc4514_subject(certificate(subject)) == (
            '1.2.840.113549.1.9.1=#1603614062,CN=\\ Ärla+OU=\\#lead trail\\ ,O=A\\, \\"B\\" \\+ \\<C\\>\\;\\\\,C=SE'
        )

    def test_domain_components_and_uid(self) -> None:
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "org"),
                x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
                x509.NameAttribute(NameOID.USER_ID, "jsmith"),
            ]
        )
        assert rfc4514_subject(certificate(subject)) == "UID=jsmith,DC=example,DC=org"  # RFC 4514 §4's example


class FakeSSLObject:
    def __init__(self, leaf: bytes | None, chain: list[bytes] | None) -> None:
        self.leaf, self.chain = leaf, chain

    def getpeercert(self, binary_form: bool) -> bytes | None:
        assert binary_form
        return self.leaf

    def get_unverified_chain(self) -> list[bytes] | None:
        return self.chain


class TestClientCertChain:
    """ASGI TLS extension, ``client_cert_chain``: "The first certificate is the client certificate"."""

    def test_chain_as_sent_leaf_first(self) -> None:
        assert client_chain(FakeSSLObject(b"leaf", [b"leaf", b"intermediate"])) == [b"leaf", b"intermediate"]

    def test_leaf_put_first_when_the_chain_lacks_it(self) -> None:
        assert client_chain(FakeSSLObject(b"leaf", [b"intermediate"])) == [b"leaf", b"intermediate"]

    def test_no_certificate_no_chain(self) -> None:
        assert client_chain(FakeSSLObject(None, None)) == []


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """cli.main() configures the "refserver" logger: put it back afterwards."""
    logger = logging.getLogger("refserver")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


class TestTLSOptions:
    """The TLS options, as uvicorn names them."""

    def test_cli_options_become_config_fields(self, tls_files: dict[str, str]) -> None:
        parser = refserver.cli.build_parser()
        args = parser.parse_args(
            [
                "tests.apps.basic:app",
                *("--ssl-certfile", tls_files["ssl_certfile"], "--ssl-keyfile", tls_files["ssl_keyfile"]),
                *("--ssl-keyfile-password", "secret", "--ssl-ca-certs", tls_files["ssl_ca_certs"]),
                *("--ssl-cert-reqs", "2", "--ssl-ciphers", "ECDHE+AESGCM"),
            ]
        )
        assert refserver.cli.config_from_args(args) == Config.from_options(
            ssl_keyfile_password="secret", ssl_cert_reqs=ssl.CERT_REQUIRED, ssl_ciphers="ECDHE+AESGCM", **tls_files
        )
        named = parser.parse_args(["x:app", "--ssl-cert-reqs", "optional"])
        assert named.ssl_cert_reqs == ssl.CERT_OPTIONAL

    def test_bad_cert_reqs_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            refserver.cli.build_parser().parse_args(["x:app", "--ssl-cert-reqs", "3"])
        assert exit_info.value.code == 2
        assert "expected 0 (none), 1 (optional) or 2 (required), not '3'" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"ssl_keyfile": "k.pem"}, "ssl_keyfile needs ssl_certfile"),
            ({"ssl_cert_reqs": ssl.CERT_REQUIRED}, "ssl_cert_reqs needs ssl_certfile"),
            ({"ssl_certfile": "c.pem", "ssl_cert_reqs": ssl.CERT_OPTIONAL}, "give ssl_ca_certs"),
            ({"ssl_certfile": "c.pem", "ssl_cert_reqs": 5}, "ssl_cert_reqs must be 0 (none), 1 (optional) or 2"),
        ],
    )
    def test_inconsistent_options_are_refused(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=r".*") as info:
            Config.from_options(**options)
        assert message in str(info.value)

    def test_missing_certificate_is_a_one_line_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], cli_logging: None
    ) -> None:
        missing = str(tmp_path / "nope.pem")
        code = refserver.cli.main(["tests.apps.basic:app", "--port", "0", "--ssl-certfile", missing])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith(f"refserver: error: TLS: cannot load the certificate '{missing}'")
        assert err.count("\n") == 1

    def test_encrypted_key_needs_its_password_and_never_prompts(
        self, tmp_path: Path, server_leaf: trustme.LeafCert, tls_files: dict[str, str]
    ) -> None:
        key = serialization.load_pem_private_key(server_leaf.private_key_pem.bytes(), password=None)
        encrypted = tmp_path / "encrypted.pem"
        encrypted.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
        options = {"ssl_certfile": tls_files["ssl_certfile"], "ssl_keyfile": str(encrypted)}
        with pytest.raises(TLSConfigError, match="is encrypted; give its password"):
            load(Config.from_options(**options))
        with pytest.raises(TLSConfigError, match="cannot load the certificate"):
            load(Config.from_options(ssl_keyfile_password="wrong", **options))
        loaded = load(Config.from_options(ssl_keyfile_password="secret", **options))
        assert loaded is not None
        assert loaded.server_cert == pem(server_leaf.cert_chain_pems[0])

    def test_no_certfile_no_tls(self) -> None:
        assert load(Config()) is None
