"""Server configuration: the single source of defaults for the CLI and the API."""

from __future__ import annotations

import dataclasses
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from refserver.trace import TraceRecord
    from refserver.violations import Violation

LifespanMode = Literal["auto", "on", "off"]
Backend = Literal["asyncio", "trio"]
AppViolations = Literal["raise", "warn"]  # refserver.violations

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Config:
    """Every option of the server. Field names carry their unit."""

    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    root_path: str = ""
    lifespan: LifespanMode = "auto"
    backend: Backend = "asyncio"
    factory: bool = False
    app_dir: str = "."
    log_level: str = "info"
    shutdown_timeout_s: float = 10.0
    backlog: int = 2048  # the kernel's accept queue (listen(2) backlog)
    # Open connections beyond this get 503 for their first request (None: no limit).
    limit_concurrency: int | None = None
    h11_max_incomplete_event_size_bytes: int = 16 * 1024
    timeout_keep_alive_s: float = 5.0
    # A request body may take this long, plus one second per request_body_min_rate_bytes_per_s
    # bytes received (Apache's mod_reqtimeout; 0: no limit); then 408 (docs/decisions.md#request-body-rate).
    request_body_timeout_s: float = 20.0
    request_body_min_rate_bytes_per_s: float = 500.0
    ws_max_size_bytes: int = 16 * MiB
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 20.0
    ws_close_timeout_s: float = 10.0
    ws_per_message_deflate: bool = True
    access_log: bool = True
    # TLS (the uvicorn option names): set ssl_certfile to serve https/wss. ssl_keyfile may be
    # left out when the certfile holds the key; ssl_cert_reqs is ssl.CERT_NONE, CERT_OPTIONAL
    # or CERT_REQUIRED (ask for a client certificate, verified against ssl_ca_certs);
    # ssl_ciphers is an OpenSSL cipher list (None: Python's defaults; TLS 1.3 suites are
    # not affected by it).
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: int = ssl.CERT_NONE
    ssl_ciphers: str | None = None
    # The trace (refserver.trace): every ASGI message, state change, ignored message,
    # error raised into the app and timer fired, with the rule behind it.
    trace: bool = False
    trace_bodies: bool = False  # payloads in full instead of <N bytes>
    trace_format: Literal["text", "jsonl"] = "text"
    trace_file: str | None = None  # write the trace here instead of the refserver.trace logger
    # Callables that receive every TraceRecord (e.g. refserver.testing records them); they
    # turn the trace on without --trace.
    trace_sinks: tuple[Callable[[TraceRecord], None], ...] = ()
    # A message that breaks a spec rule: send() raises ("raise"), or, when the breach has
    # exactly one safe reading, it is served in that reading and logged once per rule
    # ("warn"; refserver.violations, docs/decisions.md#app-violations).
    app_violations: AppViolations = "raise"
    # Callables that receive every refserver.violations.Violation (e.g. refserver.testing
    # keeps them), served or raised.
    violation_sinks: tuple[Callable[[Violation], None], ...] = ()

    def __post_init__(self) -> None:
        if self.lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be auto, on or off, not {self.lifespan!r}")
        if self.backend not in ("asyncio", "trio"):
            raise ValueError(f"backend must be asyncio or trio, not {self.backend!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, not {self.port}")
        for name in (
            "shutdown_timeout_s",
            "timeout_keep_alive_s",
            "request_body_timeout_s",
            "ws_close_timeout_s",
            "ws_ping_interval_s",
            "ws_ping_timeout_s",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:  # nan and inf are not durations
                raise ValueError(f"{name} must be a finite number, 0 or more, not {value!r}")
        if self.app_violations not in ("raise", "warn"):
            raise ValueError(f"app_violations must be raise or warn, not {self.app_violations!r}")
        if self.trace_format not in ("text", "jsonl"):
            raise ValueError(f"trace_format must be text or jsonl, not {self.trace_format!r}")
        if self.limit_concurrency is not None and self.limit_concurrency < 1:
            raise ValueError("limit_concurrency must be positive")
        if self.backlog < 1:
            raise ValueError("backlog must be positive")
        rate = self.request_body_min_rate_bytes_per_s
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"request_body_min_rate_bytes_per_s must be a finite number above 0, not {rate!r}")
        if self.ws_max_size_bytes < 1:
            raise ValueError("ws_max_size_bytes must be positive")
        if self.h11_max_incomplete_event_size_bytes < 1:
            raise ValueError("h11_max_incomplete_event_size_bytes must be positive")
        if self.ssl_cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise ValueError(
                f"ssl_cert_reqs must be 0 (none), 1 (optional) or 2 (required), not {self.ssl_cert_reqs!r}"
            )
        if self.ssl_certfile is None:
            for name in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs", "ssl_ciphers"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} needs ssl_certfile")
            if self.ssl_cert_reqs != ssl.CERT_NONE:
                raise ValueError("ssl_cert_reqs needs ssl_certfile")
        elif self.ssl_cert_reqs != ssl.CERT_NONE and self.ssl_ca_certs is None:
            raise ValueError("ssl_cert_reqs asks for client certificates: give ssl_ca_certs to verify them against")

    @property
    def tls(self) -> bool:
        """Whether connections are served over TLS (https, wss)."""
        return self.ssl_certfile is not None

    @classmethod
    def from_options(cls, **options: Any) -> Config:
        """Build a Config from keyword options, naming any unknown option."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**options)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)
