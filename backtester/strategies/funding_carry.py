"""funding_carry: short when funding is persistently positive, long when persistently negative."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtester.errors import ConfigError
from backtester.market import Market
from backtester.params import ParamGrid
from backtester.signals import Signals

__all__ = ["PARAMS", "signals"]

PARAMS: dict[str, list[float]] = {"lookback": [3, 9], "threshold": [0.0001, 0.0003]}


def signals(market: Market, grid: ParamGrid) -> Signals:
    """Return carry signals from the mean of the last ``lookback`` funding rates.

    Mean > ``threshold`` enters short (collect funding), mean < ``-threshold`` enters long; a
    short exits when the mean falls to <= 0 and a long when it rises to >= 0. A funding event at
    time ``t`` is known from the close of the bar containing ``t`` on (never earlier).
    """
    n = market.n_bars
    lookbacks = grid.values("lookback")
    thresholds = grid.values("threshold")
    k = len(lookbacks)
    le = np.zeros((n, k), dtype=np.bool_)
    lx = np.zeros((n, k), dtype=np.bool_)
    se = np.zeros((n, k), dtype=np.bool_)
    sx = np.zeros((n, k), dtype=np.bool_)
    rates = pd.Series(market.funding_rate)
    # index of the last event known at the close of each bar (-1 if none yet)
    last = np.searchsorted(market.funding_ts_ns, market.ts_ns + market.timeframe_ns, "left") - 1
    for c in range(k):
        lb, th = lookbacks[c], thresholds[c]
        if isinstance(lb, bool) or not isinstance(lb, int | np.integer) or int(lb) < 1:
            raise ConfigError(f"funding_carry lookback must be an int >= 1 (events), was {lb!r}")
        if isinstance(th, bool) or not isinstance(th, int | float) or not 0.0 <= float(th) < 0.01:
            raise ConfigError(
                f"funding_carry threshold must be a rate in [0, 0.01) (1 bp is 0.0001), was {th!r}"
            )
        mean = rates.rolling(int(lb), min_periods=int(lb)).mean().to_numpy()
        per_bar = np.full(n, np.nan)
        ok = last >= 0
        if mean.size:
            per_bar[ok] = mean[last[ok]]
        se[:, c] = per_bar > float(th)
        le[:, c] = per_bar < -float(th)
        sx[:, c] = per_bar <= 0.0
        lx[:, c] = per_bar >= 0.0
    return Signals(le, lx, se, sx)
