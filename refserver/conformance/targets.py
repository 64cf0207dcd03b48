"""Targets: the servers under test, how to start them, and how to stop them.

A target is started as a subprocess (its own session, so its workers are one process
group whose id is the PID we started) on a free loopback port, with the probe app as its
app and the side channel's address in the environment. Readiness is "the port accepts a
TCP connection". Stopping is SIGTERM, then SIGKILL to that process group after a grace
period. refserver can also run in-process (the tests do), through its public ``serve()``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.abc

import refserver
from refserver.conformance import scenario_files
from refserver.conformance.probe import LIFESPAN_ENV, REPORT_ENV

PROBE_APP = "refserver.conformance.probe:app"
HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class TargetSpec:
    """How to run one server configuration. ``argv`` may use ``{python}``, ``{app}``,
    ``{host}`` and ``{port}``; ``ping_argv`` may use ``{interval}`` and ``{interval_int}``."""

    name: str
    description: str
    argv: tuple[str, ...]
    module: str | None = None  # modules (comma-separated) that ``python`` must import for the target to count
    dist: str | None = None  # distribution whose version is reported
    ping_argv: tuple[str, ...] = ()
    builtin: bool = True
    shell: bool = False  # a --target-command: run through the shell
    # How to ask for each option of :data:`OPTIONS` the target has, put in front of the app
    # argument; ``{uds}``, ``{root_path}``, ``{ws_close_timeout}``, ``{request_body_timeout}`` and the TLS files of
    # :class:`TLSFiles` (``{certfile}``, ``{keyfile}``, ``{ca_certs}``) are filled in.
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Arguments of ``argv`` that an option replaces rather than adds to (daphne's TLS endpoint
    # takes the place of its TCP -b/-p), removed when that option is asked for.
    replaces: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # The packages to install when a module of ``module`` is missing (module -> package).
    packages: tuple[tuple[str, str], ...] = ()

    def option_argv(self, name: str) -> tuple[str, ...] | None:
        """The arguments that set option ``name``, or None if the target has no such option."""
        return next((argv for key, argv in self.options if key == name), None)


_COMMON = ("{python}", "-m")
_UVICORN_PING = ("--ws-ping-interval", "{interval}", "--ws-ping-timeout", "{interval}")

# The options a scenario may need (model.ServerNeeds); a target without one is n/a for the
# scenarios that need it, except ws_close_timeout and request_body_timeout, without which the
# target runs on its default.
OPTIONS: dict[str, str] = {
    "uds": 'listen on a Unix socket (the scope\'s server is then [path, None]; www spec 2.5, "HTTP Connection Scope")',
    "root_path": "the root_path the scope reports",
    "ws_close_timeout": "how long to wait for the client's close frame after the server's",
    "request_body_timeout": "how long a request body may take before a minimum rate applies",
    "tls": "serve TLS (https, wss) with a given certificate and key",
    "client_cert": "require a client certificate, verified against given CA certificates",
}
_REFSERVER_OPTIONS = (
    ("uds", ("--uds", "{uds}")),
    ("root_path", ("--root-path", "{root_path}")),
    ("ws_close_timeout", ("--ws-close-timeout", "{ws_close_timeout}")),
    ("request_body_timeout", ("--request-body-timeout", "{request_body_timeout}")),
    ("tls", ("--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}")),
    ("client_cert", ("--ssl-ca-certs", "{ca_certs}", "--ssl-cert-reqs", "required")),
)
_UVICORN_OPTIONS = (
    ("uds", ("--uds", "{uds}")),
    ("root_path", ("--root-path", "{root_path}")),
    ("tls", ("--ssl-certfile", "{certfile}", "--ssl-keyfile", "{keyfile}")),
    ("client_cert", ("--ssl-ca-certs", "{ca_certs}", "--ssl-cert-reqs", "2")),  # ssl.CERT_REQUIRED
)
# hypercorn and gunicorn take a second --bind (the TCP one stays); daphne a -u next to -b/-p
_BIND_UNIX_OPTIONS = (("uds", ("--bind", "unix:{uds}")), ("root_path", ("--root-path", "{root_path}")))
# hypercorn: with --certfile every --bind serves TLS; --verify-mode takes an ssl.VerifyMode name
_HYPERCORN_OPTIONS = (
    *_BIND_UNIX_OPTIONS,
    ("tls", ("--certfile", "{certfile}", "--keyfile", "{keyfile}")),
    ("client_cert", ("--ca-certs", "{ca_certs}", "--verify-mode", "CERT_REQUIRED")),
)
_GUNICORN_OPTIONS = (
    *_BIND_UNIX_OPTIONS,
    ("tls", ("--certfile", "{certfile}", "--keyfile", "{keyfile}")),
    ("client_cert", ("--ca-certs", "{ca_certs}", "--cert-reqs", "2")),  # ssl.CERT_REQUIRED
)

BUILTIN_TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec(
        "refserver",
        "refserver (asyncio)",
        (
            *_COMMON,
            "refserver",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--no-access-log",
            "--log-level",
            "warning",
        ),
        "refserver",
        "refserver",
        ("--ws-ping-interval", "{interval}", "--ws-ping-timeout", "{interval}"),
        options=_REFSERVER_OPTIONS,
    ),
    TargetSpec(
        "refserver-trio",
        "refserver (trio)",
        (
            *_COMMON,
            "refserver",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--no-access-log",
            "--log-level",
            "warning",
            "--backend",
            "trio",
        ),
        "refserver,trio",
        "refserver",
        ("--ws-ping-interval", "{interval}", "--ws-ping-timeout", "{interval}"),
        options=_REFSERVER_OPTIONS,
    ),
    TargetSpec(
        "uvicorn",
        "uvicorn --ws websockets-sansio (the default)",
        (
            *_COMMON,
            "uvicorn",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--ws",
            "websockets-sansio",
            "--log-level",
            "warning",
            "--no-access-log",
        ),
        "uvicorn,websockets",
        "uvicorn",
        _UVICORN_PING,
        options=_UVICORN_OPTIONS,
    ),
    TargetSpec(
        "uvicorn-wsproto",
        "uvicorn --ws wsproto",
        (
            *_COMMON,
            "uvicorn",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--ws",
            "wsproto",
            "--log-level",
            "warning",
            "--no-access-log",
        ),
        "uvicorn,wsproto",
        "uvicorn",
        _UVICORN_PING,
        options=_UVICORN_OPTIONS,
    ),
    TargetSpec(
        "uvicorn-websockets",
        "uvicorn --ws websockets (legacy)",
        (
            *_COMMON,
            "uvicorn",
            "{app}",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--ws",
            "websockets",
            "--log-level",
            "warning",
            "--no-access-log",
        ),
        "uvicorn,websockets",
        "uvicorn",
        _UVICORN_PING,
        options=_UVICORN_OPTIONS,
    ),
    TargetSpec(
        "hypercorn",
        "hypercorn (asyncio)",
        (*_COMMON, "hypercorn", "{app}", "--bind", "{host}:{port}", "--log-level", "warning"),
        "hypercorn",
        "hypercorn",
        ("--websocket-ping-interval", "{interval_int}"),
        options=_HYPERCORN_OPTIONS,
    ),
    TargetSpec(
        "hypercorn-trio",
        "hypercorn -k trio",
        (*_COMMON, "hypercorn", "{app}", "--bind", "{host}:{port}", "--log-level", "warning", "--worker-class", "trio"),
        "hypercorn,trio",
        "hypercorn",
        ("--websocket-ping-interval", "{interval_int}"),
        options=_HYPERCORN_OPTIONS,
    ),
    TargetSpec(
        "daphne",
        "daphne",
        (*_COMMON, "daphne", "-b", "{host}", "-p", "{port}", "-v", "0", "{app}"),
        "daphne",
        "daphne",
        ("--ping-interval", "{interval_int}", "--ping-timeout", "{interval_int}"),
        options=(
            ("uds", ("-u", "{uds}")),
            ("root_path", ("--root-path", "{root_path}")),
            # a Twisted endpoint string (whose ssl: endpoint cannot ask for client certificates)
            ("tls", ("-e", "ssl:port={port}:interface={host}:privateKey={keyfile}:certKey={certfile}")),
        ),
        replaces=(("tls", ("-b", "{host}", "-p", "{port}")),),
    ),
    TargetSpec(
        "granian",
        "granian --interface asgi",
        (
            *_COMMON,
            "granian",
            "--interface",
            "asgi",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--log-level",
            "warning",
            "--no-access-log",
            "{app}",
        ),
        "granian",
        "granian",
        # --url-path-prefix sets root_path and leaves path as sent
        options=(
            ("uds", ("--uds", "{uds}")),
            ("root_path", ("--url-path-prefix", "{root_path}")),
            ("tls", ("--ssl-certificate", "{certfile}", "--ssl-keyfile", "{keyfile}")),
            ("client_cert", ("--ssl-ca", "{ca_certs}", "--ssl-client-verify")),
        ),
    ),
    TargetSpec(
        "gunicorn",
        "gunicorn --worker-class asgi (one worker)",
        (
            *_COMMON,
            "gunicorn",
            "--worker-class",
            "asgi",
            "--workers",
            "1",
            "--bind",
            "{host}:{port}",
            "--log-level",
            "warning",
            "{app}",
        ),
        "gunicorn",
        "gunicorn",
        options=_GUNICORN_OPTIONS,
    ),
)

BY_NAME = {t.name: t for t in BUILTIN_TARGETS}
REFSERVER_TARGETS = ("refserver", "refserver-trio")


def custom_target(text: str, options: Sequence[str] = ()) -> TargetSpec:
    """``NAME=COMMAND`` with the placeholders of :data:`PLACEHOLDERS` (``{app}``, ``{host}``,
    ``{port}``, ``{python}``, ``{ping_interval}``...), and the ``--target-option`` texts
    ``NAME:OPTION=ARGS`` given for it (see :func:`target_option`); the others are ignored.

    Raises:
        ValueError: the text, a placeholder or an option is malformed."""
    name, sep, command = text.partition("=")
    name, command = name.strip(), command.strip()
    if not sep or not name or not command:
        raise ValueError(f"--target-command wants NAME=COMMAND, not {text!r}")
    if "{port}" not in command:
        raise ValueError("--target-command: the command must contain {port} (and should contain {app})")
    _check_placeholders("--target-command", command, {*PLACEHOLDERS, "options"})
    chosen = []
    for option_text in options:
        target, option, args = target_option(option_text)
        if target == name:
            chosen.append((option, (args,)))
    return TargetSpec(name, f"custom: {command}", (command,), builtin=False, shell=True, options=tuple(chosen))


def target_option(text: str) -> tuple[str, str, str]:
    """``NAME:OPTION=ARGS``: the arguments that ask target NAME (a ``--target-command``) for one
    option of :data:`OPTIONS`, using the placeholders of :data:`OPTION_PLACEHOLDERS`. Returns
    (name, option, args).

    Raises:
        ValueError: the text is malformed, the option unknown, or a placeholder unknown."""
    head, sep, args = text.partition("=")
    name, colon, option = head.partition(":")
    name, option, args = name.strip(), option.strip(), args.strip()
    if not sep or not colon or not name or not args:
        raise ValueError(f"--target-option wants NAME:OPTION=ARGS, not {text!r}")
    if option not in OPTIONS:
        raise ValueError(f"--target-option: unknown option {option!r}; known: {', '.join(OPTIONS)}")
    _check_placeholders("--target-option", args, {*PLACEHOLDERS, *OPTION_PLACEHOLDERS})
    return name, option, args


def _check_placeholders(flag: str, text: str, known: set[str]) -> None:
    unknown = sorted(set(re.findall(r"\{([a-z_]+)\}", text)) - known)
    if unknown:
        raise ValueError(
            f"{flag}: unknown placeholder {{{unknown[0]}}}; known: " + ", ".join("{" + k + "}" for k in sorted(known))
        )


def target_args(spec: TargetSpec) -> str:
    """The command-line arguments that select this target again (for a reproduce command)."""
    if not spec.shell:
        return f"--target {spec.name}"
    parts = ["--target-command", shlex.quote(f"{spec.name}={spec.argv[0]}")]
    for option, args in spec.options:
        parts += ["--target-option", shlex.quote(f"{spec.name}:{option}={' '.join(args)}")]
    return " ".join(parts)


@dataclass
class TargetInfo:
    spec: TargetSpec
    installed: bool
    version: str
    reason: str = ""
    in_process: bool = False


def repo_root() -> str:
    """The directory that holds the ``refserver`` package (put on the peers' PYTHONPATH)."""
    return str(Path(refserver.__file__).resolve().parent.parent)


def probe_target(spec: TargetSpec, python: str) -> TargetInfo:
    """Is the target installed for ``python``, and which version?"""
    if spec.module is None or spec.shell:
        return TargetInfo(spec, True, "custom")
    code = (
        "import importlib.util, importlib.metadata, sys\n"
        f"mods = {[*spec.module.split(','), 'refserver']!r}\n"
        "missing = [m for m in mods if importlib.util.find_spec(m) is None]\n"
        "if missing: print(' '.join(missing)); sys.exit(1)\n"
        f"try: print(importlib.metadata.version({spec.dist!r}))\n"
        "except importlib.metadata.PackageNotFoundError: print('unknown')\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root(), env.get("PYTHONPATH", "")) if p)
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return TargetInfo(spec, False, "", f"cannot run {python}: {exc}")
    out = done.stdout.strip()
    if done.returncode != 0 and out and not done.stderr.strip():
        packages = dict(spec.packages)
        wanted = " ".join(packages.get(m, m) for m in out.split())
        return TargetInfo(spec, False, "", f"not installed for {python}: missing {out}; pip install {wanted}")
    if done.returncode != 0:
        return TargetInfo(spec, False, "", f"not installed for {python} ({out or done.stderr.strip()[-200:]})")
    if spec.dist == "refserver":
        out = refserver.__version__
    return TargetInfo(spec, True, out)


class ServerHandle(Protocol):
    port: int
    exit_reason: str | None

    def alive(self) -> bool: ...

    async def shutdown(self) -> None: ...

    async def stop(self) -> None: ...

    def log_tail(self) -> str: ...


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def port_open(port: int, timeout: float = 0.5) -> bool:
    with anyio.move_on_after(timeout):
        try:
            stream = await anyio.connect_tcp(HOST, port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


async def tls_open(port: int, tls: TLSFiles, timeout: float = 0.5) -> bool:
    """Does the port finish a TLS handshake (with the client certificate, should the server ask
    for one)? The session then ends cleanly (close_notify), so that readiness checks leave no
    failed handshake in a server's log."""
    from refserver.conformance.client import TLSClient

    with anyio.move_on_after(timeout):
        try:
            stream = await anyio.connect_tcp(HOST, port)
        except OSError:
            return False
        secure = TLSClient(stream, tls.client_context(with_certificate=True), HOST)
        try:
            await secure.handshake()
        except (OSError, anyio.BrokenResourceError, anyio.EndOfStream):
            await stream.aclose()
            return False
        await secure.aclose()
        return True
    return False


async def unix_open(path: str, timeout: float = 0.5) -> bool:
    """Does the Unix socket at ``path`` accept a connection?"""
    with anyio.move_on_after(timeout):
        try:
            stream = await anyio.connect_unix(path)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


def remove_uds(path: str | None) -> None:
    """Remove a Unix socket made for a scenario, and the directory made for it."""
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))


DEFAULT_PING_INTERVAL_S = 20.0

# The placeholders of a --target-option's arguments, beside those of PLACEHOLDERS: what the
# harness made for the server start that asks for the option.
OPTION_PLACEHOLDERS: dict[str, str] = {
    "uds": "the path of a Unix socket, in a fresh directory, for the server to listen on (option uds)",
    "root_path": "the root_path the server is to report (option root_path)",
    "ws_close_timeout": "how long to wait for the client's close frame, in seconds (option ws_close_timeout)",
    "request_body_timeout": "the grace period of a request body, in seconds (option request_body_timeout)",
    "certfile": "the server's certificate chain, PEM, made for the run (option tls)",
    "keyfile": "the server's private key, PEM (option tls)",
    "ca_certs": "the CA certificate that signed the client's certificate, PEM (option client_cert)",
}

PLACEHOLDERS: dict[str, str] = {
    "app": f"the probe app, {PROBE_APP} (refserver is put on the server's PYTHONPATH)",
    "host": f"the address to bind, {HOST}",
    "port": "a free port, chosen for every server start",
    "python": "the interpreter given by --python (its directory is put first on PATH)",
    "ping_interval": "the keepalive ping interval in seconds the scenario asks for "
    f"(0.5 for ws.keepalive.ping, {DEFAULT_PING_INTERVAL_S:g} otherwise)",
    "ping_interval_int": "the same, rounded up to whole seconds (at least 1)",
    "ping_timeout": "how long to wait for the pong: the same as ping_interval",
    "options": "where the arguments of the --target-option flags a scenario asks for go (default: at the end)",
}

_SHELL_OPERATORS = set("();<>|&")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def shell_argv(command: str) -> tuple[list[str], bool]:
    """How to start a --target-command so that signals reach the server itself.

    One simple command (with optional ``NAME=value`` assignments in front) is run as
    ``sh -c 'exec ...'``: the shell replaces itself by the server, which keeps the PID we
    started and so gets our SIGTERM. A compound command (``cd x && ...``, a pipeline) cannot
    be exec'd: then the whole process group is signalled. Returns (argv, signal the group)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return ["/bin/sh", "-c", command], True
    if not tokens or any(t and set(t) <= _SHELL_OPERATORS for t in tokens):
        return ["/bin/sh", "-c", command], True
    if tokens[0] == "exec":
        return ["/bin/sh", "-c", command], False
    prefix = "exec env " if _ASSIGNMENT.match(tokens[0]) else "exec "
    return ["/bin/sh", "-c", prefix + command], False


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


@dataclass(frozen=True)
class TLSFiles:
    """The certificates of one run's TLS scenarios, made with ``trustme`` in a fresh directory:
    a CA, the server's certificate for 127.0.0.1 and a client certificate, both signed by it;
    keys in PKCS#8 PEM (which every target reads). Also what the checks compare with: the
    SHA-256 of each certificate's DER and the client certificate's subject (RFC 4514)."""

    directory: str
    certfile: str
    keyfile: str
    ca_certs: str
    client_certfile: str
    client_keyfile: str
    server_cert_sha256: str
    client_cert_sha256: str
    client_subject: str

    def placeholders(self) -> dict[str, str]:
        return {"certfile": self.certfile, "keyfile": self.keyfile, "ca_certs": self.ca_certs}

    def facts(self) -> dict[str, str]:
        """What a scope's ``tls`` extension is compared with."""
        return {
            "server_cert_sha256": self.server_cert_sha256,
            "client_cert_sha256": self.client_cert_sha256,
            "client_subject": self.client_subject,
        }

    def client_context(self, with_certificate: bool) -> Any:
        """An ``ssl.SSLContext`` for the client: trusts the run's CA; with the client certificate
        when ``with_certificate``."""
        import ssl

        context = ssl.create_default_context(cafile=self.ca_certs)
        if with_certificate:
            context.load_cert_chain(self.client_certfile, self.client_keyfile)
        return context

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)


# The client certificate's subject (common name, organizational unit, organization); RFC 4514
# §2.1 writes it last RDN first: CN=probe client,OU=client certificate,O=refserver conformance.
CLIENT_CERT_SUBJECT = ("probe client", "client certificate", "refserver conformance")


def make_tls_files() -> TLSFiles:
    """Make the run's certificates. Raises ``ImportError`` without ``trustme``."""
    import hashlib
    import ssl

    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    directory = tempfile.mkdtemp(prefix="conformance-tls-")
    ca = trustme.CA(organization_name="refserver conformance")
    server = ca.issue_cert(HOST, "localhost")
    common_name, unit, organization = CLIENT_CERT_SUBJECT
    client = ca.issue_cert(
        "conformance-client", common_name=common_name, organization_unit_name=unit, organization_name=organization
    )

    def write(name: str, data: bytes) -> str:
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def pkcs8(leaf: trustme.LeafCert) -> bytes:
        key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sha256(leaf: trustme.LeafCert) -> str:
        der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode("ascii"))
        return hashlib.sha256(der).hexdigest()

    subject = x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes()).subject.rfc4514_string()
    return TLSFiles(
        directory=directory,
        certfile=write("server-cert.pem", b"".join(blob.bytes() for blob in server.cert_chain_pems)),
        keyfile=write("server-key.pem", pkcs8(server)),
        ca_certs=write("ca.pem", ca.cert_pem.bytes()),
        client_certfile=write("client-cert.pem", b"".join(blob.bytes() for blob in client.cert_chain_pems)),
        client_keyfile=write("client-key.pem", pkcs8(client)),
        server_cert_sha256=sha256(server),
        client_cert_sha256=sha256(client),
        client_subject=subject,
    )


@dataclass
class ProcessServer:
    """A target running as a subprocess that we started (and only ever signal by its PID)."""

    spec: TargetSpec
    python: str
    report_port: int
    lifespan: str | None = None
    ping_interval_s: float | None = None
    port: int = 0
    exit_reason: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    command: str = ""  # the exact command line the server was started with
    signal_group: bool = False  # signal the whole process group (a compound shell command)
    log_path: str = ""
    options: dict[str, str] = field(default_factory=dict)  # ServerNeeds.options(), all of them supported
    uds: str | None = None  # the Unix socket the server listens on (then the client connects to it)
    tls: TLSFiles | None = None  # the certificates, with the "tls" and "client_cert" options
    _log: Any = field(default=None, repr=False)

    def values(self) -> dict[str, str]:
        """The placeholders a command may use (documented in :data:`PLACEHOLDERS`)."""
        interval = self.ping_interval_s if self.ping_interval_s is not None else DEFAULT_PING_INTERVAL_S
        return {
            "python": self.python,
            "app": PROBE_APP,
            "host": HOST,
            "port": str(self.port),
            "ping_interval": f"{interval:g}",
            "ping_interval_int": str(max(1, math.ceil(interval))),
            "ping_timeout": f"{interval:g}",
        }

    def argv(self) -> list[str]:
        values = self.values()
        if self.spec.shell:
            return self._shell_argv(values)
        argv = [part.format(**values) for part in self.spec.argv]
        for name, dropped in self.spec.replaces:
            if name in self.options:
                argv = _without(argv, [part.format(**values) for part in dropped])
        extra: list[str] = []
        if self.ping_interval_s is not None and self.spec.ping_argv:
            extra += [
                p.format(interval=self.ping_interval_s, interval_int=max(1, round(self.ping_interval_s)))
                for p in self.spec.ping_argv
            ]
        filled = {**values, **self.options, "uds": self.uds or ""}
        if self.tls is not None:
            filled.update(self.tls.placeholders())
        for name in self.options:
            fragment = self.spec.option_argv(name)
            if fragment is not None:
                extra += [p.format(**filled) for p in fragment]
        if extra:
            # options go before the app argument for CLIs that take it last
            app_index = argv.index(PROBE_APP)
            argv[app_index:app_index] = extra
        return argv

    def _shell_argv(self, values: dict[str, str]) -> list[str]:
        """A --target-command with the options asked for put in at ``{options}`` (or at the end),
        every placeholder filled in and shell-quoted."""
        filled = {**values, **self.options, "uds": self.uds or ""}
        if self.tls is not None:
            filled.update(self.tls.placeholders())
        wanted = [args[0] for name, args in self.spec.options if name in self.options]
        command = self.spec.argv[0]
        if "{options}" in command:
            command = command.replace("{options}", " ".join(wanted))
        elif wanted:
            command = " ".join([command, *wanted])
        for key, value in filled.items():
            command = command.replace("{" + key + "}", shlex.quote(value))
        argv, self.signal_group = shell_argv(command)
        return argv

    async def start(self) -> None:
        self.port = free_port()
        if "uds" in self.options:
            self.uds = os.path.join(tempfile.mkdtemp(prefix="conformance-uds-"), "probe.sock")
        env = dict(os.environ)
        env[REPORT_ENV] = f"{HOST}:{self.report_port}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root(), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(scenario_files.environment())  # the probe finds the scenarios of --scenarios files
        env.pop(LIFESPAN_ENV, None)
        if self.lifespan:
            env[LIFESPAN_ENV] = self.lifespan
        # Executables are found next to the interpreter first (a server installed in the
        # --python virtual environment is on PATH without activating it).
        env["PATH"] = os.pathsep.join(p for p in (os.path.dirname(self.python), env.get("PATH", "")) if p)
        fd, self.log_path = tempfile.mkstemp(prefix=f"conformance-{self.spec.name}-", suffix=".log")
        self._log = os.fdopen(fd, "wb")
        argv = self.argv()
        self.command = shlex.join(argv)
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exit_reason = f"exited with status {self.proc.returncode} before listening"
                return
            if self.uds:
                ready = await unix_open(self.uds, 0.3)
            elif self.tls is not None and "tls" in self.options:
                ready = await tls_open(self.port, self.tls, 0.3)
            else:
                ready = await port_open(self.port, 0.3)
            if ready:
                return
            await anyio.sleep(0.05)
        self.exit_reason = f"did not listen within {START_TIMEOUT_S:.0f} s"
        await self.stop()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def describe_exit(self) -> str | None:
        """``exited with status 1`` or ``was killed by SIGSEGV``; None while it runs."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return describe_status(self.proc.returncode)

    async def shutdown(self) -> None:
        """Graceful shutdown, as an operator would ask for it: SIGTERM to the server."""
        if self.alive() and self.proc is not None:
            self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        """Signal the server we started: its PID, or its process group (the session we
        created for that PID) when it runs behind a shell that could not exec it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.signal_group:
                os.killpg(self.proc.pid, signum)
            else:
                os.kill(self.proc.pid, signum)

    async def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.proc is not None and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            await anyio.sleep(0.05)
        return None if self.proc is None else self.proc.poll()

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(signal.SIGTERM)
            if await self.wait_exit(3.0) is None:
                # The process group is the session we created for this PID.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await self.wait_exit(3.0)
        # workers that outlived their parent (same process group as the PID we started)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_size(self) -> int:
        """How many bytes the server has written so far (its stdout and stderr)."""
        try:
            return os.path.getsize(self.log_path) if self.log_path else 0
        except OSError:
            return 0

    def log_since(self, offset: int, limit: int = 20000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read(limit).decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def log_tail(self, limit: int = 1500) -> str:
        if not self.log_path:
            return ""
        try:
            data = Path(self.log_path).read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def cleanup(self) -> None:
        if self.log_path:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)
        remove_uds(self.uds)


def _without(argv: list[str], part: list[str]) -> list[str]:
    """``argv`` with the first run of ``part`` taken out (unchanged if it is not there)."""
    for i in range(len(argv) - len(part) + 1):
        if argv[i : i + len(part)] == part:
            return argv[:i] + argv[i + len(part) :]
    return argv


@dataclass
class InProcessServer:
    """refserver in the runner's own event loop, through its public API."""

    backend: str
    report_port: int
    task_group: anyio.abc.TaskGroup
    lifespan: str | None = None
    ping_interval_s: float | None = None
    # More Config fields for this server (e.g. ``trace_sinks``), over the ones set here.
    config_options: Mapping[str, Any] = field(default_factory=dict)
    port: int = 0
    exit_reason: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # ServerNeeds.options()
    uds: str | None = None
    tls: TLSFiles | None = None
    _stop: anyio.Event = field(default_factory=anyio.Event)
    _ended: anyio.Event = field(default_factory=anyio.Event)
    _killed: bool = False
    _scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def command(self) -> str:
        ping = f", ws_ping_interval_s={self.ping_interval_s:g}" if self.ping_interval_s is not None else ""
        extra = "".join(f", {key}={value!r}" for key, value in self._config_options().items())
        return f"in-process: refserver serve(probe app, backend={self.backend}, lifespan=auto{ping}{extra})"

    def _config_options(self) -> dict[str, Any]:
        """The Config fields for the options asked for."""
        fields: dict[str, Any] = {}
        if "uds" in self.options:
            fields["uds"] = self.uds or "<a fresh path>"
        if "root_path" in self.options:
            fields["root_path"] = self.options["root_path"]
        if "ws_close_timeout" in self.options:
            fields["ws_close_timeout_s"] = float(self.options["ws_close_timeout"])
        if "request_body_timeout" in self.options:
            fields["request_body_timeout_s"] = float(self.options["request_body_timeout"])
        if "tls" in self.options and self.tls is not None:
            fields["ssl_certfile"] = self.tls.certfile
            fields["ssl_keyfile"] = self.tls.keyfile
        if "client_cert" in self.options and self.tls is not None:
            fields["ssl_ca_certs"] = self.tls.ca_certs
            fields["ssl_cert_reqs"] = 2  # ssl.CERT_REQUIRED
        return fields

    async def start(self) -> None:
        from refserver import Config
        from refserver.conformance.probe import make_app
        from refserver.errors import LifespanFailure
        from refserver.runtime.server import Listening, serve

        options: dict[str, Any] = {
            "port": 0,
            "backend": self.backend,
            "access_log": False,
            "lifespan": "auto",
            "shutdown_timeout_s": 3.0,
        }
        if self.ping_interval_s is not None:
            options["ws_ping_interval_s"] = self.ping_interval_s
            options["ws_ping_timeout_s"] = self.ping_interval_s
        if "uds" in self.options:
            self.uds = os.path.join(tempfile.mkdtemp(prefix="conformance-uds-"), "probe.sock")
        options.update(self._config_options())
        config = Config.from_options(**{**options, **self.config_options})
        app = make_app(report_to=(HOST, self.report_port), lifespan=self.lifespan or "")
        listening = anyio.Event()

        def started(value: Listening) -> None:
            # on a Unix socket there is no port: -1 says "listening" all the same
            self.port = -1 if self.uds else value.port
            listening.set()

        class _Status:
            def started(self, value: Listening) -> None:
                started(value)

        async def run() -> None:
            with self._scope:
                try:
                    await serve(app, config, shutdown_trigger=self._stop.wait, task_status=_Status())  # type: ignore[arg-type]
                    self.exit_reason = "exited with status 0"
                except LifespanFailure as exc:
                    self.exit_reason = f"exited with status 1 ({exc})"
                except Exception as exc:
                    self.exit_reason = f"crashed: {type(exc).__name__}: {exc}"
            if self._scope.cancelled_caught:
                self.exit_reason = "killed"
            self._ended.set()
            listening.set()

        self.task_group.start_soon(run)
        with anyio.move_on_after(START_TIMEOUT_S):
            await listening.wait()
        if not self.port and self.exit_reason is None:
            self.exit_reason = "did not listen"

    def alive(self) -> bool:
        return not self._ended.is_set()

    async def shutdown(self) -> None:
        self._stop.set()

    async def wait_exit(self, timeout: float) -> int | None:
        with anyio.move_on_after(timeout):
            await self._ended.wait()
        if not self._ended.is_set():
            return None
        return 0 if self.exit_reason == "exited with status 0" else 1

    async def stop(self) -> None:
        self._stop.set()
        with anyio.move_on_after(4.0):
            await self._ended.wait()
        if not self._ended.is_set():
            self._scope.cancel()
            await self._ended.wait()

    def log_tail(self) -> str:
        return ""

    def log_size(self) -> int:
        return -1  # refserver's log is this process's: not told apart per scenario

    def log_since(self, offset: int, limit: int = 20000) -> str:
        return ""

    def cleanup(self) -> None:
        remove_uds(self.uds)


Factory = Callable[..., Any]


def default_python() -> str:
    return os.environ.get("REFSERVER_CONFORMANCE_PYTHON") or sys.executable
