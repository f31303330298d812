"""rsi_reversion: mean reversion on Wilder's RSI (long when oversold, short when overbought)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtester._typing import F64Array
from backtester.errors import ConfigError
from backtester.market import Market
from backtester.params import ParamGrid
from backtester.signals import Signals

__all__ = ["PARAMS", "rsi", "signals"]

PARAMS: dict[str, list[float]] = {"period": [14], "lower": [20.0, 30.0], "upper": [70.0, 80.0]}


def rsi(close: F64Array, period: int) -> F64Array:
    """Return Wilder's RSI (0-100) of ``close``; NaN for the first ``period`` bars."""
    delta = np.diff(close, prepend=np.nan)
    gain = pd.Series(np.where(delta > 0, delta, 0.0))
    loss = pd.Series(np.where(delta < 0, -delta, 0.0))
    gain.iloc[0] = np.nan
    loss.iloc[0] = np.nan
    avg_gain = gain.ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean().to_numpy()
    avg_loss = loss.ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    out = np.where((avg_loss == 0.0) & (avg_gain > 0.0), 100.0, out)
    return np.where((avg_loss == 0.0) & (avg_gain == 0.0), 50.0, out)


def signals(market: Market, grid: ParamGrid) -> Signals:
    """Return RSI signals: RSI below ``lower`` enters long, above ``upper`` enters short; a long
    exits when RSI rises above 50, a short when it falls below 50. The RSI at bar ``i`` uses
    closes up to ``i`` only.
    """
    n = market.n_bars
    periods = grid.values("period")
    lowers = grid.values("lower")
    uppers = grid.values("upper")
    k = len(periods)
    le = np.zeros((n, k), dtype=np.bool_)
    lx = np.zeros((n, k), dtype=np.bool_)
    se = np.zeros((n, k), dtype=np.bool_)
    sx = np.zeros((n, k), dtype=np.bool_)
    cache: dict[int, F64Array] = {}
    for c in range(k):
        p, lo, hi = periods[c], lowers[c], uppers[c]
        if isinstance(p, bool) or not isinstance(p, int | np.integer) or int(p) < 2:
            raise ConfigError(f"rsi_reversion period must be an int >= 2, was {p!r}")
        if not (0.0 < float(lo) < 50.0 < float(hi) < 100.0):
            raise ConfigError(
                f"rsi_reversion needs 0 < lower < 50 < upper < 100, was lower={lo!r}, upper={hi!r}"
            )
        r = cache.get(int(p))
        if r is None:
            r = cache[int(p)] = rsi(market.close, int(p))
        le[:, c] = r < float(lo)
        se[:, c] = r > float(hi)
        lx[:, c] = r > 50.0
        sx[:, c] = r < 50.0
    return Signals(le, lx, se, sx)
