"""sma_cross: long when the fast simple moving average crosses above the slow one, short below."""

from __future__ import annotations

import numpy as np

from backtester._typing import F64Array
from backtester.errors import ConfigError
from backtester.market import Market
from backtester.params import ParamGrid
from backtester.signals import Signals

__all__ = ["PARAMS", "signals", "sma"]

PARAMS: dict[str, list[int]] = {"fast": [10, 20], "slow": [50, 100, 200]}


def sma(values: F64Array, window: int) -> F64Array:
    """Return the trailing simple moving average (NaN for the first ``window - 1`` bars)."""
    out = np.full(values.shape[0], np.nan)
    if window <= values.shape[0]:
        csum = np.cumsum(values, dtype=np.float64)
        out[window - 1] = csum[window - 1] / window
        out[window:] = (csum[window:] - csum[:-window]) / window
    return out


def _window(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise ConfigError(f"sma_cross {name} must be an int >= 1, was {value!r}")
    return int(value)


def signals(market: Market, grid: ParamGrid) -> Signals:
    """Return crossover signals: the fast SMA of closes crossing above the slow one enters long
    (and exits a short), crossing below enters short (and exits a long); always in the market
    after the first cross. Uses closes up to and including the signal bar only.
    """
    fasts = [_window(v, "fast") for v in grid.values("fast")]
    slows = [_window(v, "slow") for v in grid.values("slow")]
    n, k = market.n_bars, len(fasts)
    up = np.zeros((n, k), dtype=np.bool_)
    down = np.zeros((n, k), dtype=np.bool_)
    cache: dict[int, F64Array] = {}
    for c, (f, s) in enumerate(zip(fasts, slows, strict=True)):
        if f >= s:
            raise ConfigError(
                f"sma_cross fast must be < slow, was fast={f}, slow={s}; filter the grid with "
                ".where(lambda p: p.fast < p.slow)"
            )
        fm = cache.get(f)
        if fm is None:
            fm = cache[f] = sma(market.close, f)
        sm = cache.get(s)
        if sm is None:
            sm = cache[s] = sma(market.close, s)
        above = fm > sm  # False while either is NaN
        below = fm < sm
        up[1:, c] = above[1:] & ~above[:-1] & ~np.isnan(sm[:-1])
        down[1:, c] = below[1:] & ~below[:-1] & ~np.isnan(sm[:-1])
    return Signals(up, down, down, up)
