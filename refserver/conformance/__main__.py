"""``python -m refserver.conformance``."""

import sys

from refserver.conformance.cli import main

sys.exit(main())
