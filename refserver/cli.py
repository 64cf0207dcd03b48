"""``refserver MODULE:ATTR [options]``: the command line.

Only the CLI configures logging and signal handling; every default comes from Config.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import logging
import math
import re
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from refserver import __version__
from refserver.config import Config
from refserver.errors import AppLoadError
from refserver.logs import trace_log
from refserver.violations import POLICIES

_DEFAULTS = Config()

HELP_HINT = "see refserver --help"


# uvicorn's options that refserver does not take, each with what refserver does instead.
# An option that takes a value swallows it, so the answer is about the option, never its value.
UVICORN_ANSWERS: dict[str, tuple[bool, str]] = {
    "--workers": (True, "refserver is one process by design; run several behind a load balancer if you need them"),
    "--proxy-headers": (
        False,
        "refserver never rewrites the scope's client or scheme from X-Forwarded-* headers; the app sees the peer",
    ),
    "--no-proxy-headers": (False, "refserver never reads X-Forwarded-* headers, so there is nothing to turn off"),
    "--forwarded-allow-ips": (
        True,
        "refserver never trusts X-Forwarded-* headers from any address; the scope's client is the peer",
    ),
    "--log-config": (
        True,
        "refserver's logging is --log-level and --no-access-log; configure the refserver.* loggers from "
        "Python with refserver.run() for more",
    ),
    "--loop": (True, "the event loop is --backend asyncio|trio (Python's own asyncio loop; no uvloop)"),
    "--ws": (True, "refserver has one WebSocket implementation (wsproto's framing); there is nothing to choose"),
    "--http": (True, "refserver has one HTTP/1.1 implementation (h11); there is nothing to choose"),
    "--timeout-graceful-shutdown": (
        True,
        "use --shutdown-timeout SECONDS: how long in-flight work may finish after SIGINT/SIGTERM",
    ),
    "--env-file": (True, "refserver reads no environment file; set the variables in the shell or the service manager"),
    "--fd": (True, "refserver binds its own socket: use --host/--port or --uds"),
    "--interface": (
        True,
        "refserver detects ASGI 2 and ASGI 3 apps by themselves; use --factory for an app factory (WSGI is not served)",
    ),
    "--limit-max-requests": (True, "refserver has no request limit that restarts a worker: it has no workers"),
    "--use-colors": (False, "refserver's log lines are plain text"),
    "--no-use-colors": (False, "refserver's log lines are plain text already"),
    "--server-header": (False, "refserver sends no Server header; the app sets any header it wants"),
    "--no-server-header": (False, "refserver sends no Server header already"),
    "--date-header": (False, "refserver sends no Date header; the app sets any header it wants"),
    "--no-date-header": (False, "refserver sends no Date header already"),
    "--header": (True, "refserver adds no default headers; the app sets the headers of its responses"),
    "--ws-max-queue": (
        True,
        "refserver reads ahead at most 256 KiB of unread WebSocket messages; --ws-max-size limits one message",
    ),
    "--access-log": (False, "the access log is on by default; --no-access-log turns it off"),
}


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations, whose errors are one line naming the option typed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print one line (no usage block) and exit with status 2, before anything is loaded."""
        # argparse says "argument --port: expected one argument"; name the option first.
        if message.startswith("the following arguments are required"):
            message = "no app given: name it as MODULE:ATTR (for example main:app)"
        message = message.removeprefix("argument ").replace("expected one argument", "expected a value")
        self.exit(2, f"refserver: error: {message}; {HELP_HINT}\n")


def _one_of(*choices: str) -> Callable[[str], str]:
    """An option taking one of ``choices`` (the message is the same on every Python)."""
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected {listed}, not {text!r}")
        return text

    return parse


def _number(text: str, what: str, parse: Callable[[str], float]) -> float:
    try:
        return parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None


def _seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (nan and inf are refused)."""
    value = _number(text, "a number of seconds", float)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, 0 or more, not {text!r}")
    return float(value)


def _positive_rate(text: str) -> float:
    """A finite number above 0 (bytes per second)."""
    value = _number(text, "a number of bytes per second", float)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of bytes per second above 0, not {text!r}")
    return float(value)


def _positive_int(text: str) -> int:
    value = _number(text, "a whole number", int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, not {text!r}")
    return int(value)


def _port(text: str) -> int:
    value = _number(text, "a port number", int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, not {text!r}")
    return int(value)


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
    p = _Parser(
        prog="refserver",
        description="A reference ASGI 3 server (HTTP/1.1, WebSocket, lifespan) that does "
        "exactly what the ASGI specification says.",
    )
    p.add_argument("app", metavar="MODULE:ATTR", help="the ASGI app, e.g. examples.app:app")
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host})")
    p.add_argument(
        "--port",
        type=_port,
        default=d.port,
        help=f"port to bind; 0 picks a free one (default {d.port})",
    )
    p.add_argument("--uds", default=d.uds, metavar="PATH", help="bind a unix domain socket instead of TCP")
    p.add_argument(
        "--backlog",
        type=_positive_int,
        default=d.backlog,
        metavar="N",
        help=f"how many connections may wait in the kernel's accept queue (default {d.backlog})",
    )
    p.add_argument(
        "--limit-concurrency",
        type=_positive_int,
        default=d.limit_concurrency,
        metavar="N",
        help="open connections beyond N are answered 503 (HTTP and WebSocket handshakes); default: no limit",
    )
    p.add_argument("--root-path", default=d.root_path, help="the scope's root_path (mount point)")
    p.add_argument(
        "--lifespan",
        type=_one_of("auto", "on", "off"),
        metavar="auto|on|off",
        default=d.lifespan,
        help=f"lifespan protocol: auto, on or off (default {d.lifespan})",
    )
    p.add_argument(
        "--backend",
        type=_one_of("asyncio", "trio"),
        metavar="asyncio|trio",
        default=d.backend,
        help=f"event loop (default {d.backend})",
    )
    p.add_argument("--factory", action="store_true", help="MODULE:ATTR is a factory returning the app")
    p.add_argument("--app-dir", default=d.app_dir, help="directory added to sys.path first (default .)")
    p.add_argument(
        "--reload",
        action="store_true",
        help="restart the server whenever a .py file changes (development only; needs refserver[reload])",
    )
    p.add_argument(
        "--reload-dir",
        action="append",
        metavar="DIR",
        help="with --reload: a directory to watch, given once per directory (default: --app-dir)",
    )
    p.add_argument(
        "--log-level",
        default=d.log_level,
        type=_one_of("critical", "error", "warning", "info", "debug", "trace"),
        metavar="critical|error|warning|info|debug|trace",
        help=f"log level (default {d.log_level}); trace is debug with --trace",
    )
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="disable the access log")
    p.add_argument(
        "--app-violations",
        type=_one_of(*POLICIES),
        metavar="raise|warn",
        default=d.app_violations,
        help=f"a message the app sends that breaks a spec rule: send() raises, or (warn) one with exactly one "
        f"safe reading, such as an upper-case header name, is served in it and logged once per rule "
        f"(default {d.app_violations})",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="print every ASGI message and state change of every connection, with the spec rule behind it",
    )
    p.add_argument("--trace-bodies", action="store_true", help="show payloads in the trace instead of <N bytes>")
    p.add_argument(
        "--trace-format",
        type=_one_of("text", "jsonl"),
        metavar="text|jsonl",
        default=d.trace_format,
        help="trace as text lines or as JSON lines with a monotonic timestamp (default text)",
    )
    p.add_argument("--trace-file", metavar="PATH", default=None, help="write the trace to PATH instead of stderr")
    p.add_argument(
        "--shutdown-timeout",
        dest="shutdown_timeout_s",
        type=_seconds,
        default=d.shutdown_timeout_s,
        metavar="SECONDS",
        help=f"how long in-flight work may finish on shutdown (default {d.shutdown_timeout_s})",
    )
    p.add_argument(
        "--h11-max-incomplete-event-size",
        dest="h11_max_incomplete_event_size_bytes",
        type=_positive_int,
        default=d.h11_max_incomplete_event_size_bytes,
        metavar="BYTES",
        help=f"limit for a request head; larger gets 431 (default {d.h11_max_incomplete_event_size_bytes})",
    )
    p.add_argument(
        "--timeout-keep-alive",
        dest="timeout_keep_alive_s",
        type=_seconds,
        default=d.timeout_keep_alive_s,
        metavar="SECONDS",
        help=f"close idle keep-alive connections and unfinished heads after this (default {d.timeout_keep_alive_s})",
    )
    p.add_argument(
        "--request-body-timeout",
        dest="request_body_timeout_s",
        type=_seconds,
        default=d.request_body_timeout_s,
        metavar="SECONDS",
        help="grace period for a request body, extended by a second for every --request-body-min-rate bytes "
        f"that arrive; slower gets 408 (0: no limit; default {d.request_body_timeout_s})",
    )
    p.add_argument(
        "--request-body-min-rate",
        dest="request_body_min_rate_bytes_per_s",
        type=_positive_rate,
        default=d.request_body_min_rate_bytes_per_s,
        metavar="BYTES_PER_SECOND",
        help=f"minimum rate of a request body after its grace period (default {d.request_body_min_rate_bytes_per_s})",
    )
    p.add_argument(
        "--ws-max-size",
        dest="ws_max_size_bytes",
        type=_positive_int,
        default=d.ws_max_size_bytes,
        metavar="BYTES",
        help=f"largest incoming WebSocket message; larger closes with 1009 (default {d.ws_max_size_bytes})",
    )
    p.add_argument(
        "--ws-ping-interval",
        dest="ws_ping_interval_s",
        type=_seconds,
        default=d.ws_ping_interval_s,
        metavar="SECONDS",
        help=f"keepalive ping interval, 0 disables (default {d.ws_ping_interval_s})",
    )
    p.add_argument(
        "--ws-ping-timeout",
        dest="ws_ping_timeout_s",
        type=_seconds,
        default=d.ws_ping_timeout_s,
        metavar="SECONDS",
        help=f"close when a ping is not answered in time, 0 disables (default {d.ws_ping_timeout_s})",
    )
    p.add_argument(
        "--ws-close-timeout",
        dest="ws_close_timeout_s",
        type=_seconds,
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
    for flag, (takes_value, answer) in UVICORN_ANSWERS.items():
        p.add_argument(flag, action=_Answer, nargs="?" if takes_value else 0, answer=answer, help=argparse.SUPPRESS)
    return p


class _Answer(argparse.Action):
    """A uvicorn option refserver does not take: its one-line answer is the error."""

    def __init__(self, option_strings: list[str], dest: str, answer: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)
        self.answer = answer

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(f"{option_string} is a uvicorn option: {self.answer}")


def _reload(arguments: Sequence[str], directories: list[str], config: Config) -> int:
    """--reload: this process watches; a child runs the same command line without --reload."""
    if importlib.util.find_spec("watchfiles") is None:
        print(
            "refserver: error: --reload needs watchfiles, which is not installed; "
            f"install it with: pip install '{RELOAD_EXTRA}'",
            file=sys.stderr,
        )
        return 2
    from refserver.reload import run_with_reload

    child: list[str] = []
    skip_value = False
    for argument in arguments:
        if skip_value:
            skip_value = False
        elif argument == "--reload-dir":
            skip_value = True
        elif argument != "--reload" and not argument.startswith("--reload-dir="):
            child.append(argument)
    return run_with_reload(child, directories, config.shutdown_timeout_s)


RELOAD_EXTRA = "refserver[reload]"


# Each Config field the command line sets, and the option that sets it (its ``dest`` is the field).
FLAG_OF_FIELD = {
    "host": "--host",
    "port": "--port",
    "uds": "--uds",
    "root_path": "--root-path",
    "backlog": "--backlog",
    "limit_concurrency": "--limit-concurrency",
    "lifespan": "--lifespan",
    "backend": "--backend",
    "factory": "--factory",
    "app_dir": "--app-dir",
    "log_level": "--log-level",
    "shutdown_timeout_s": "--shutdown-timeout",
    "h11_max_incomplete_event_size_bytes": "--h11-max-incomplete-event-size",
    "timeout_keep_alive_s": "--timeout-keep-alive",
    "request_body_timeout_s": "--request-body-timeout",
    "request_body_min_rate_bytes_per_s": "--request-body-min-rate",
    "ws_max_size_bytes": "--ws-max-size",
    "ws_ping_interval_s": "--ws-ping-interval",
    "ws_ping_timeout_s": "--ws-ping-timeout",
    "ws_close_timeout_s": "--ws-close-timeout",
    "ws_per_message_deflate": "--ws-per-message-deflate",
    "access_log": "--no-access-log",
    "app_violations": "--app-violations",
    "ssl_certfile": "--ssl-certfile",
    "ssl_keyfile": "--ssl-keyfile",
    "ssl_keyfile_password": "--ssl-keyfile-password",
    "ssl_ca_certs": "--ssl-ca-certs",
    "ssl_cert_reqs": "--ssl-cert-reqs",
    "ssl_ciphers": "--ssl-ciphers",
    "trace_bodies": "--trace-bodies",
    "trace_format": "--trace-format",
    "trace_file": "--trace-file",
}


def config_from_args(args: argparse.Namespace) -> Config:
    """Raises: ValueError when Config refuses a combination of values (naming its fields)."""
    options = {field: getattr(args, field) for field in FLAG_OF_FIELD}
    return Config(
        **options,
        trace=args.trace or args.trace_bodies or args.trace_file is not None or args.log_level == "trace",
    )


def _flags_for_fields(message: str) -> str:
    """Config's message with each field name it mentions replaced by the option typed."""
    return re.sub(r"\b[a-z][a-z0-9_]*\b", lambda m: FLAG_OF_FIELD.get(m.group(), m.group()), message)


def _unknown(argument: str, parser: argparse.ArgumentParser) -> str:
    """The line for an argument the parser does not know, with the nearest option if any."""
    if not argument.startswith("-"):
        return f"unexpected argument {argument!r} (the app is given once, as MODULE:ATTR)"
    flag = argument.partition("=")[0]
    known = [o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings]
    near = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    starts = [o for o in known if o.startswith(flag) and len(flag) > 2]
    guess = starts[0] if len(starts) == 1 else (near[0] if near else None)
    hint = f" (did you mean {guess}?)" if guess else ""
    return f"unknown option {flag}{hint}"


def parse_command_line(arguments: Sequence[str]) -> tuple[argparse.Namespace, Config]:
    """Raises: SystemExit(2) after one line on stderr naming the option or value that is wrong."""
    parser = build_parser()
    args, extra = parser.parse_known_args(arguments)
    if extra:
        parser.error(_unknown(extra[0], parser))
    try:
        return args, config_from_args(args)
    except ValueError as exc:
        parser.error(_flags_for_fields(str(exc)))


def configure_logging(config: Config) -> None:
    """The refserver loggers at ``--log-level``, on stderr; the trace, when asked for, always
    prints (whatever the level), and as bare JSON lines with ``--trace-format jsonl``."""
    numeric = logging.DEBUG if config.log_level == "trace" else getattr(logging, config.log_level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-8s %(name)s: %(message)s"))
    root = logging.getLogger("refserver")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False
    if config.trace and config.trace_file is None:
        # An explicit --trace is not filtered by --log-level: it has its own handler.
        trace_handler = logging.StreamHandler(sys.stderr)
        jsonl = config.trace_format == "jsonl"
        trace_handler.setFormatter(
            logging.Formatter("%(message)s" if jsonl else "%(levelname)-8s %(name)s: %(message)s")
        )
        trace_log.handlers[:] = [trace_handler]
        trace_log.setLevel(logging.DEBUG)
        trace_log.propagate = False
    else:
        trace_log.handlers[:] = []
        trace_log.setLevel(logging.NOTSET)
        trace_log.propagate = True


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["conformance"]:
        # `refserver conformance ...` is `python -m refserver.conformance ...`.
        from refserver.conformance.cli import main as conformance_main

        return conformance_main(arguments[1:])
    args, config = parse_command_line(arguments)  # a wrong option: one line, exit 2
    if args.reload_dir and not args.reload:
        print(f"refserver: error: --reload-dir needs --reload; {HELP_HINT}", file=sys.stderr)
        return 2
    if config.trace_file is not None:
        try:
            open(config.trace_file, "a", encoding="utf-8").close()  # the server appends to it
        except OSError as exc:
            print(
                f"refserver: error: --trace-file: cannot open {config.trace_file}: {_os_error(exc)}; {HELP_HINT}",
                file=sys.stderr,
            )
            return 2
    configure_logging(config)
    if args.reload:
        return _reload(arguments, args.reload_dir or [config.app_dir], config)
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
        print(f"refserver: error: {where}{_os_error(exc)}", file=sys.stderr)
        return 1


def _os_error(exc: OSError) -> str:
    return f"[Errno {exc.errno}] {exc.strerror or exc}"


__all__ = ["build_parser", "config_from_args", "main", "parse_command_line"]
