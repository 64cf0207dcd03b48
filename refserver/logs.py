"""refserver's loggers. The library never configures logging; only the CLI does."""

from __future__ import annotations

import logging

error_log = logging.getLogger("refserver.error")
access_log = logging.getLogger("refserver.access")
trace_log = logging.getLogger("refserver.trace")
