"""Allow ``python -m backtester`` as an alias of the ``backtester`` command."""

from __future__ import annotations

import sys

from backtester.cli import main

sys.exit(main())
