"""breakout: Donchian channel breakout, long above the prior N-bar high, short below the low."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtester.errors import ConfigError
from backtester.market import Market
from backtester.params import ParamGrid
from backtester.signals import Signals

__all__ = ["PARAMS", "signals"]

PARAMS: dict[str, list[int]] = {"window": [20, 55, 100]}


def signals(market: Market, grid: ParamGrid) -> Signals:
    """Return breakout signals: a close above the highest high of the previous ``window`` bars
    enters long (exits a short); a close below their lowest low enters short (exits a long).
    The channel excludes the signal bar, so only past bars are used.
    """
    n = market.n_bars
    windows = grid.values("window")
    k = len(windows)
    long_e = np.zeros((n, k), dtype=np.bool_)
    short_e = np.zeros((n, k), dtype=np.bool_)
    high = pd.Series(market.high)
    low = pd.Series(market.low)
    close = market.close
    for c, w in enumerate(windows):
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or int(w) < 1:
            raise ConfigError(f"breakout window must be an int >= 1, was {w!r}")
        upper = high.rolling(int(w), min_periods=int(w)).max().shift(1).to_numpy()
        lower = low.rolling(int(w), min_periods=int(w)).min().shift(1).to_numpy()
        long_e[:, c] = close > upper  # NaN compares False
        short_e[:, c] = close < lower
    return Signals(long_e, short_e, short_e, long_e)
