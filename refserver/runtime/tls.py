"""TLS: the server's ``SSLContext`` built from the config, the handshake on each accepted
connection (bounded by ``timeout_keep_alive_s``; a failure is the client's, logged at INFO), the
scope's ``tls`` extension (ASGI tls extension, "TLS Connection Scope";
docs/decisions.md#tls-extension-contents), and a close that sends close_notify without waiting
for the peer's (RFC 8446 §6.1; docs/decisions.md#tls-close-notify).
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from refserver.config import Config
from refserver.protocol.internals import tls_broken, tls_outgoing
from refserver.runtime.transport import IO_ERRORS, describe

# ALPN (RFC 7301): refserver speaks HTTP/1.1 only, so that is all it agrees to.
ALPN_PROTOCOLS = ("http/1.1",)

CLOSE_NOTIFY_TIMEOUT_S = 1.0  # the most writing close_notify may take (docs/decisions.md#tls-close-notify)

# The certfile's first certificate is the server's own; a chain follows it.
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


class TLSConfigError(ValueError):
    """The TLS options cannot make a server context (a missing or unreadable file, a key
    that does not match the certificate, a wrong password, an empty cipher list)."""


class HandshakeFailed(Exception):
    """The TLS handshake with one client failed or timed out; ``str()`` says why."""


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """What every TLS connection of one server shares."""

    context: ssl.SSLContext
    server_cert: str | None  # the PEM of the certificate the server sends (the certfile's first)
    cipher_suites: Mapping[str, int]  # OpenSSL cipher name -> IANA cipher suite code


def load(config: Config) -> ServerTLS | None:
    """Give the server's TLS setup, or None when ``ssl_certfile`` is not set. Raises
    :class:`TLSConfigError` naming what is wrong."""
    certfile = config.ssl_certfile
    if certfile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with _fails_as(f"cannot load the certificate {certfile!r} / key {config.ssl_keyfile!r}"):
        context.load_cert_chain(certfile, config.ssl_keyfile, _password(config))
    with _fails_as(f"cannot read the certificate {certfile!r}"):
        pem = _PEM_CERTIFICATE.search(Path(certfile).read_text(encoding="ascii", errors="replace"))
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs is not None:
        with _fails_as(f"cannot load the CA certificates {config.ssl_ca_certs!r}"):
            context.load_verify_locations(cafile=config.ssl_ca_certs)
    if config.ssl_ciphers is not None:
        with _fails_as(f"no cipher matches {config.ssl_ciphers!r}"):
            context.set_ciphers(config.ssl_ciphers)
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    server_cert = None if pem is None else ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(pem.group(0)))
    suites = {cipher["name"]: int(cipher["id"]) & 0xFFFF for cipher in context.get_ciphers()}
    return ServerTLS(context=context, server_cert=server_cert, cipher_suites=suites)


@contextlib.contextmanager
def _fails_as(message: str) -> Iterator[None]:
    """Raise what fails inside as a :class:`TLSConfigError` that starts with ``message``."""
    try:
        yield
    except TLSConfigError:
        raise  # (the password callback's: a ValueError too)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TLSConfigError(f"{message}: {exc}") from exc


def _password(config: Config) -> Any:
    """Give the key's password, or a callback that refuses: OpenSSL would otherwise prompt on
    the terminal, which hangs a server run by a supervisor."""
    if config.ssl_keyfile_password is not None:
        return config.ssl_keyfile_password

    def refuse() -> str:
        raise TLSConfigError(
            f"the key {config.ssl_keyfile or config.ssl_certfile!r} is encrypted; give its password "
            "(--ssl-keyfile-password)"
        )

    return refuse


class ServerTLSStream(TLSStream):
    """anyio's ``TLSStream`` closed as RFC 8446 §6.1 asks (docs/decisions.md#tls-close-notify).
    (anyio's own close either sends nothing, or waits for the peer's alert and fails when the
    peer just closes TCP.)"""

    async def aclose(self) -> None:
        try:
            # (IO_ERRORS: the peer is gone, or the session failed: nothing to say goodbye to.)
            with anyio.move_on_after(CLOSE_NOTIFY_TIMEOUT_S), contextlib.suppress(*IO_ERRORS):
                await self.send_close_notify()
        finally:
            await self.transport_stream.aclose()

    async def send_close_notify(self) -> None:
        """Write the close_notify alert; no-op if a write was cut short (the record stream is
        torn). Raises ``OSError``/anyio errors when the session or the peer is gone."""
        if tls_broken(self):
            return
        ssl_object: ssl.SSLObject = self.extra(TLSAttribute.ssl_object)
        try:
            ssl_object.unwrap()
        except ssl.SSLWantReadError:
            pass  # the alert is written; the second step (reading the peer's) is not wanted
        data = tls_outgoing(self).read()
        if data:
            await self.transport_stream.send(data)


async def handshake(stream: anyio.abc.ByteStream, tls: ServerTLS, timeout_s: float) -> TLSStream:
    """Run the server side of the handshake over ``stream``, within ``timeout_s``. Raises
    :class:`HandshakeFailed`; closing ``stream`` is then the caller's business."""
    with anyio.move_on_after(timeout_s):
        try:
            return await ServerTLSStream.wrap(
                stream, server_side=True, ssl_context=tls.context, standard_compatible=False
            )
        except anyio.EndOfStream:
            raise HandshakeFailed("the client closed the connection during the handshake") from None
        except ssl.SSLError as exc:
            raise HandshakeFailed(f"{exc.reason or exc}") from None
        except IO_ERRORS as exc:
            raise HandshakeFailed(describe(exc)) from None
    raise HandshakeFailed(f"no handshake within {timeout_s:g} s")


def extension(stream: TLSStream, tls: ServerTLS) -> dict[str, Any]:
    """Give the ``tls`` entry of ``scope["extensions"]`` (ASGI tls extension, "TLS Connection
    Scope") for a connection whose handshake is done. Raises
    :class:`HandshakeFailed` for a client certificate whose subject cannot be read."""
    ssl_object: ssl.SSLObject = stream.extra(TLSAttribute.ssl_object)
    # tls extension, "TLS Connection Scope": ``tls_version`` is "one of the version numbers as
    # defined in the TLS specifications" (RFC 8446 §4.2.1, RFC 5246 appendix E, RFC 6101 §5.2.1).
    # ssl.TLSVersion holds them, each named as SSLObject.version() names it with "_" for ".":
    # "TLSv1.3" is TLSVersion.TLSv1_3 (0x0304).
    version = ssl.TLSVersion.__members__.get((ssl_object.version() or "").replace(".", "_"))
    cipher = ssl_object.cipher()
    chain = client_chain(ssl_object)
    try:
        name = rfc4514_subject(chain[0]) if chain else None
    except (ValueError, IndexError) as exc:
        raise HandshakeFailed(f"unreadable client certificate ({exc})") from None
    return {
        "server_cert": tls.server_cert,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in chain],
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": None if version is None else int(version),
        "cipher_suite": None if cipher is None else tls.cipher_suites.get(cipher[0]),
    }


def client_chain(ssl_object: Any) -> list[bytes]:
    """Give the client's certificates as DER, leaf first; empty when it sent none."""
    leaf: bytes | None = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return []
    # Python 3.13+: the chain as the client sent it. (OpenSSL leaves the leaf out of the
    # chain it keeps on the server side; Python puts it back, but do not rely on that.)
    unverified = getattr(ssl_object, "get_unverified_chain", None)
    sent = [bytes(der) for der in unverified() or ()] if unverified is not None else []
    return sent if sent[:1] == [leaf] else [leaf, *sent]


# ---------------------------------------------------------------- RFC 4514


# RFC 4514 §3: the attribute types that are written by their short name.
SHORT_NAMES: Mapping[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}

# DER string types and how their bytes decode (X.680 §41; TeletexString as Latin-1, as is usual).
_STRING_TYPES: Mapping[int, str] = {
    0x0C: "utf-8",  # UTF8String
    0x12: "ascii",  # NumericString
    0x13: "ascii",  # PrintableString
    0x14: "latin-1",  # TeletexString
    0x16: "ascii",  # IA5String
    0x1A: "ascii",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
_EXPLICIT_0 = 0xA0  # tbsCertificate's version (RFC 5280 §4.1), which may be left out
# RFC 4514 §2.4: what is escaped with a backslash (NUL is written as \00).
_MUST_ESCAPE = re.compile(r'["+,;<>\\]|^[ #]| \Z')


def _elements(der: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """Yield the DER elements in ``der`` (a certificate is DER, RFC 5280 §4.1; X.690 §8.1 gives the
    tag-length-content layout): (tag, the whole element, its content) each.
    The certificate is one OpenSSL has already verified."""
    pos = 0
    while pos < len(der):
        tag, length, content = der[pos], der[pos + 1], pos + 2
        if length & 0x80:  # the long form: the length is in the next (length & 0x7F) bytes
            content += length & 0x7F
            length = int.from_bytes(der[pos + 2 : content], "big")
        end = content + length
        if end > len(der):
            raise ValueError("truncated DER")
        yield tag, der[pos:end], der[content:end]
        pos = end


def _oid(content: bytes) -> str:
    """Decode an OBJECT IDENTIFIER's content as dotted decimal (X.690 §8.19)."""
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)  # the first two arcs share the first number
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def _value(name: str | None, tag: int, encoded: bytes, content: bytes) -> str:
    """Write the value as RFC 4514 §2.4 does: an escaped string, or ``#`` and the hex of the
    value's BER encoding when its type is written dotted-decimal (``name`` None) or it is not a
    string."""
    encoding = _STRING_TYPES.get(tag)
    if name is not None and encoding is not None:
        with contextlib.suppress(UnicodeDecodeError):
            text = content.decode(encoding)
            return _MUST_ESCAPE.sub(lambda match: "\\" + match.group(), text).replace("\0", "\\00")
    return "#" + encoded.hex()


def rfc4514_subject(der_cert: bytes) -> str:
    """Give the subject of a DER certificate as an RFC 4514 string: RDNs last to first (§2.1),
    multi-valued RDNs joined with ``+`` (§2.2), short names for the types of §3 and
    dotted-decimal OIDs for the rest (§2.3), and values as :func:`_value` writes them (§2.4)."""
    ((_, _, certificate),) = _elements(der_cert)
    _, _, tbs_certificate = next(_elements(certificate))
    fields = [content for tag, _, content in _elements(tbs_certificate) if tag != _EXPLICIT_0]
    rdns = []
    # serialNumber, signature, issuer, validity, subject (RFC 5280 §4.1); an RDN is a SET of attributes
    for _, _, rdn in _elements(fields[4]):
        pairs = []
        for _, _, attribute in _elements(rdn):
            (_, _, oid_content), (tag, encoded, content) = _elements(attribute)
            oid = _oid(oid_content)
            name = SHORT_NAMES.get(oid)
            pairs.append(f"{name or oid}={_value(name, tag, encoded, content)}")
        rdns.append("+".join(pairs))
    return ",".join(reversed(rdns))
