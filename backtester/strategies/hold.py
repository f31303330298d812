"""hold: enter at the first bar and stay in, long or short (re-enters after a forced exit)."""

from __future__ import annotations

import numpy as np

from backtester.errors import ConfigError
from backtester.market import Market
from backtester.params import ParamGrid
from backtester.signals import Signals

__all__ = ["PARAMS", "signals"]

PARAMS: dict[str, list[str]] = {"side": ["long", "short"]}


def signals(market: Market, grid: ParamGrid) -> Signals:
    """Return an entry signal on every bar for each column's side, never an exit.

    The first entry (signal at the close of bar 0) fills at the open of bar 1; after a stop or a
    liquidation the position is opened again at the next open.
    """
    sides = grid.values("side")
    n = market.n_bars
    longs = np.zeros((n, len(sides)), dtype=np.bool_)
    shorts = np.zeros((n, len(sides)), dtype=np.bool_)
    for k, side in enumerate(sides):
        if side == "long":
            longs[:, k] = True
        elif side == "short":
            shorts[:, k] = True
        else:
            raise ConfigError(f"hold side must be 'long' or 'short', was {side!r}")
    return Signals(longs, None, shorts, None)
