"""Pure array metrics on equity curves (layer: metrics; arrays in, arrays out).

Axis 0 is the bar, axis 1 (optional) the column, like every engine array. Rates are fractions.
"""

from __future__ import annotations

import numpy as np

from backtester._typing import F64Array
from backtester.errors import ConfigError, ShapeError

__all__ = ["drawdown", "exposure", "max_drawdown", "returns", "sharpe", "total_return"]


def _as_2d(equity: F64Array, name: str = "equity") -> F64Array:
    arr = np.asarray(equity, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ShapeError(
            f"{name} must be (n_bars,) or (n_bars, n_cols) with n_bars >= 1, was shape {arr.shape}"
        )
    return arr


def returns(equity: F64Array) -> F64Array:
    """Return simple per-bar returns ``e[i]/e[i-1] - 1`` (first bar 0; 0 where e[i-1] <= 0)."""
    e = _as_2d(equity)
    out = np.zeros_like(e)
    prev = e[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = np.where(prev > 0, e[1:] / prev - 1.0, 0.0)
    return out if np.ndim(equity) == 2 else out[:, 0]


def drawdown(equity: F64Array) -> F64Array:
    """Return the drawdown per bar: ``1 - e / running peak`` (0 at new highs)."""
    e = _as_2d(equity)
    peak = np.maximum.accumulate(e, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - e / peak, 0.0)
    return dd if np.ndim(equity) == 2 else dd[:, 0]


def max_drawdown(equity: F64Array) -> F64Array:
    """Return the largest drawdown of each column (a float for 1-D input)."""
    return np.asarray(drawdown(equity).max(axis=0))


def total_return(equity: F64Array) -> F64Array:
    """Return ``e[-1] / e[0] - 1`` per column."""
    e = _as_2d(equity)
    return (
        np.asarray(e[-1] / e[0] - 1.0)
        if np.ndim(equity) == 2
        else np.asarray(e[-1, 0] / e[0, 0] - 1.0)
    )


def sharpe(equity: F64Array, *, periods_per_year: float) -> F64Array:
    """Return the annualised Sharpe ratio of per-bar returns (risk-free 0; NaN if flat).

    ``periods_per_year`` is bars per year, e.g. 8760 for 1h bars.
    """
    if not periods_per_year > 0:
        raise ConfigError(f"periods_per_year must be > 0, was {periods_per_year!r}; 8760 for 1h")
    r = _as_2d(returns(_as_2d(equity)))[1:]
    if r.shape[0] < 2:
        return np.full(r.shape[1], np.nan) if np.ndim(equity) == 2 else np.asarray(np.nan)
    sd = r.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(sd > 0, r.mean(axis=0) / sd * np.sqrt(periods_per_year), np.nan)
    return s if np.ndim(equity) == 2 else np.asarray(s[0])


def exposure(position: F64Array) -> F64Array:
    """Return the fraction of bars with a non-zero position per column."""
    p = _as_2d(position, "position")
    out = (p != 0).mean(axis=0)
    return out if np.ndim(position) == 2 else np.asarray(out[0])
