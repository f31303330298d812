"""Deprecated: the bundled strategies moved to ``backtester.strategies``.

``import strategies`` still works (it is ``backtester.strategies``, with a DeprecationWarning);
write ``from backtester import strategies`` instead. This alias will be removed in a later
release, so the package stops taking the generic top-level name ``strategies``.
"""

from __future__ import annotations

import sys
import warnings

warnings.warn(
    "the top-level 'strategies' package is deprecated; use `from backtester import strategies` "
    "(the same loader and modules)",
    DeprecationWarning,
    stacklevel=2,
)

from backtester import strategies as _strategies  # noqa: E402

sys.modules[__name__] = _strategies
