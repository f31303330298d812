"""Allow ``python -m backtester`` as an alias of the ``backtester`` command."""

from __future__ import annotations

from backtester.cli import console

console()
