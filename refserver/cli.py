"""``refserver MODULE:ATTR [options]``: the command line.

Only the CLI configures logging and signal handling; every default comes from Config.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import ssl
import sys
from collections.abc import Sequence

from refserver import __version__
from refserver.config import Config
from refserver.errors import AppLoadError

_DEFAULTS = Config()


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _cert_reqs(text: str) -> int:
    """``--ssl-cert-reqs``: 0, 1, 2 (as uvicorn takes it) or none, optional, required."""
    lowered = text.lower()
    if lowered in _CERT_REQS:
        return int(_CERT_REQS[lowered])
    if lowered in ("0", "1", "2"):
        return int(lowered)
    raise argparse.ArgumentTypeError(f"expected 0 (none), 1 (optional) or 2 (required), not {text!r}")


def build_parser() -> argparse.ArgumentParser:
    d = _DEFAULTS
    p = argparse.ArgumentParser(
        prog="refserver",
        description="A reference ASGI 3 server (HTTP/1.1, WebSocket, lifespan) that does "
        "exactly what the ASGI specification says.",
    )
    p.add_argument("app", metavar="MODULE:ATTR", help="the ASGI app, e.g. examples.app:app")
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host})")
    p.add_argument(
        "--port",
        type=int,
        default=d.port,
        help=f"port to bind; 0 picks a free one (default {d.port})",
    )
    p.add_argument("--uds", default=d.uds, metavar="PATH", help="bind a unix domain socket instead of TCP")
    p.add_argument(
        "--backlog",
        type=int,
        default=d.backlog,
        metavar="N",
        help=f"how many connections may wait in the kernel's accept queue (default {d.backlog})",
    )
    p.add_argument(
        "--limit-concurrency",
        type=int,
        default=d.limit_concurrency,
        metavar="N",
        help="open connections beyond N are answered 503 (HTTP and WebSocket handshakes); default: no limit",
    )
    p.add_argument("--root-path", default=d.root_path, help="the scope's root_path (mount point)")
    p.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default=d.lifespan,
        help=f"lifespan protocol: auto, on or off (default {d.lifespan})",
    )
    p.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default=d.backend,
        help=f"event loop (default {d.backend})",
    )
    p.add_argument("--factory", action="store_true", help="MODULE:ATTR is a factory returning the app")
    p.add_argument("--app-dir", default=d.app_dir, help="directory added to sys.path first (default .)")
    p.add_argument(
        "--log-level",
        default=d.log_level,
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help=f"log level (default {d.log_level}); trace is debug with --trace",
    )
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="disable the access log")
    p.add_argument(
        "--trace",
        action="store_true",
        help="print every ASGI message and state change of every connection, with the spec rule behind it",
    )
    p.add_argument("--trace-bodies", action="store_true", help="show payloads in the trace instead of <N bytes>")
    p.add_argument(
        "--trace-format",
        choices=("text", "jsonl"),
        default=d.trace_format,
        help="trace as text lines or as JSON lines with a monotonic timestamp (default text)",
    )
    p.add_argument("--trace-file", metavar="PATH", default=None, help="write the trace to PATH instead of stderr")
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=d.shutdown_timeout_s,
        metavar="SECONDS",
        help=f"how long in-flight work may finish on shutdown (default {d.shutdown_timeout_s})",
    )
    p.add_argument(
        "--h11-max-incomplete-event-size",
        type=int,
        default=d.h11_max_incomplete_event_size_bytes,
        metavar="BYTES",
        help=f"limit for a request head; larger gets 431 (default {d.h11_max_incomplete_event_size_bytes})",
    )
    p.add_argument(
        "--timeout-keep-alive",
        type=float,
        default=d.timeout_keep_alive_s,
        metavar="SECONDS",
        help=f"close idle keep-alive connections and unfinished heads after this (default {d.timeout_keep_alive_s})",
    )
    p.add_argument(
        "--ws-max-size",
        type=int,
        default=d.ws_max_size_bytes,
        metavar="BYTES",
        help=f"largest incoming WebSocket message; larger closes with 1009 (default {d.ws_max_size_bytes})",
    )
    p.add_argument(
        "--ws-ping-interval",
        type=float,
        default=d.ws_ping_interval_s,
        metavar="SECONDS",
        help=f"keepalive ping interval, 0 disables (default {d.ws_ping_interval_s})",
    )
    p.add_argument(
        "--ws-ping-timeout",
        type=float,
        default=d.ws_ping_timeout_s,
        metavar="SECONDS",
        help=f"close when a ping is not answered in time, 0 disables (default {d.ws_ping_timeout_s})",
    )
    p.add_argument(
        "--ws-close-timeout",
        type=float,
        default=d.ws_close_timeout_s,
        metavar="SECONDS",
        help=f"how long to wait for the peer's close frame (default {d.ws_close_timeout_s})",
    )
    p.add_argument(
        "--ws-per-message-deflate",
        type=_bool,
        default=d.ws_per_message_deflate,
        metavar="BOOL",
        help="negotiate permessage-deflate (default true)",
    )
    tls = p.add_argument_group("TLS", "serve https and wss (the scope's tls extension is filled)")
    tls.add_argument("--ssl-certfile", metavar="PATH", default=d.ssl_certfile, help="the server's certificate (PEM)")
    tls.add_argument(
        "--ssl-keyfile",
        metavar="PATH",
        default=d.ssl_keyfile,
        help="its private key (PEM); not needed when the certfile holds it",
    )
    tls.add_argument(
        "--ssl-keyfile-password", metavar="PASSWORD", default=d.ssl_keyfile_password, help="the key's password"
    )
    tls.add_argument(
        "--ssl-ca-certs",
        metavar="PATH",
        default=d.ssl_ca_certs,
        help="CA certificates (PEM) that client certificates are verified against",
    )
    tls.add_argument(
        "--ssl-cert-reqs",
        type=_cert_reqs,
        default=d.ssl_cert_reqs,
        metavar="0|1|2",
        help="client certificates: 0 not asked for, 1 optional, 2 required (default 0); 1 and 2 need --ssl-ca-certs",
    )
    tls.add_argument(
        "--ssl-ciphers",
        metavar="CIPHERS",
        default=d.ssl_ciphers,
        help="OpenSSL cipher list for TLS 1.2 and older (default: Python's defaults)",
    )
    p.add_argument("--version", action="version", version=f"refserver {__version__}")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    return Config(
        host=args.host,
        port=args.port,
        uds=args.uds,
        root_path=args.root_path,
        backlog=args.backlog,
        limit_concurrency=args.limit_concurrency,
        lifespan=args.lifespan,
        backend=args.backend,
        factory=args.factory,
        app_dir=args.app_dir,
        log_level=args.log_level,
        shutdown_timeout_s=args.shutdown_timeout,
        h11_max_incomplete_event_size_bytes=args.h11_max_incomplete_event_size,
        timeout_keep_alive_s=args.timeout_keep_alive,
        ws_max_size_bytes=args.ws_max_size,
        ws_ping_interval_s=args.ws_ping_interval,
        ws_ping_timeout_s=args.ws_ping_timeout,
        ws_close_timeout_s=args.ws_close_timeout,
        ws_per_message_deflate=args.ws_per_message_deflate,
        access_log=args.access_log,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        ssl_keyfile_password=args.ssl_keyfile_password,
        ssl_ca_certs=args.ssl_ca_certs,
        ssl_cert_reqs=args.ssl_cert_reqs,
        ssl_ciphers=args.ssl_ciphers,
        trace=args.trace or args.trace_bodies or args.trace_file is not None or args.log_level == "trace",
        trace_bodies=args.trace_bodies,
        trace_format=args.trace_format,
        trace_file=args.trace_file,
    )


def configure_logging(level: str) -> None:
    numeric = logging.DEBUG if level == "trace" else getattr(logging, level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-8s %(name)s: %(message)s"))
    root = logging.getLogger("refserver")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["conformance"]:
        # `refserver conformance ...` is `python -m refserver.conformance ...`.
        from refserver.conformance.cli import main as conformance_main

        return conformance_main(arguments[1:])
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(config.log_level)
    if config.backend == "trio" and importlib.util.find_spec("trio") is None:
        print(
            "refserver: error: --backend trio needs trio, which is not installed; "
            "install it with: pip install 'refserver[trio]'",
            file=sys.stderr,
        )
        return 2
    from refserver.loading import load_app
    from refserver.runtime.main import run_until_signalled
    from refserver.runtime.tls import TLSConfigError, load

    try:
        load(config)  # a bad certificate or key is a one-line error before anything starts
    except TLSConfigError as exc:
        print(f"refserver: error: TLS: {exc}", file=sys.stderr)
        return 2

    try:
        app = load_app(args.app, app_dir=config.app_dir, factory=config.factory)
    except AppLoadError as exc:
        print(f"refserver: error: {exc}", file=sys.stderr)
        return 2
    try:
        return run_until_signalled(app, config)
    except OSError as exc:
        # The server could not listen: one line naming the address and the OS error.
        where = f"cannot listen on {exc.filename}: " if exc.filename else ""
        print(f"refserver: error: {where}[Errno {exc.errno}] {exc.strerror or exc}", file=sys.stderr)
        return 1


__all__ = ["build_parser", "config_from_args", "main"]
