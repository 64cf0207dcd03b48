"""Versions refserver advertises (asgi spec, "Applications"; www spec 2.5, "Spec Versions"; lifespan spec 2.0).

www 2.5 is cumulative: 2.1 accept headers, 2.2 unix-socket ``server``, 2.3 close reason,
2.4 send() on a closed connection raises an OSError subclass, 2.5 disconnect reason.
All are implemented, so both http and websocket scopes say "2.5".
"""

from __future__ import annotations

ASGI_VERSION = "3.0"
WWW_SPEC_VERSION = "2.5"
LIFESPAN_SPEC_VERSION = "2.0"

HTTP_ASGI = {"version": ASGI_VERSION, "spec_version": WWW_SPEC_VERSION}
WEBSOCKET_ASGI = {"version": ASGI_VERSION, "spec_version": WWW_SPEC_VERSION}
LIFESPAN_ASGI = {"version": ASGI_VERSION, "spec_version": LIFESPAN_SPEC_VERSION}
