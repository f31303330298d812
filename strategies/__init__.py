"""Column-vectorized signal generators, one module per strategy (STYLE.md §4.3).

Each module exposes ``PARAMS: dict[str, list]`` (its default grid) and
``signals(market: Market, grid: ParamGrid) -> Signals``: no I/O, no margin logic, no look-ahead.
Modules are imported lazily, so ``strategies.hold`` works after ``import strategies``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["available", "get"]

_NAMES = ("hold", "sma_cross", "breakout", "rsi_reversion", "funding_carry")


def available() -> tuple[str, ...]:
    """Return the names of the bundled strategies."""
    return _NAMES


def get(name: str) -> ModuleType:
    """Return the strategy module called ``name`` (ConfigError with a suggestion if unknown)."""
    from backtester.errors import ConfigError, did_you_mean

    if name not in _NAMES:
        raise ConfigError(f"unknown strategy {name!r}{did_you_mean(name, _NAMES)}")
    return importlib.import_module(f"strategies.{name}")


def __getattr__(name: str) -> ModuleType:
    if name in _NAMES:
        return importlib.import_module(f"strategies.{name}")
    raise AttributeError(f"module 'strategies' has no attribute {name!r}")
