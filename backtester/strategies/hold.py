"""hold: enter at the first bar and stay in, long or short (re-enters after a forced exit).

On a ``MarketSet`` (``run_sweep(market_set, hold, grid, legs={...})``) every symbol gets the
same signals, one ``Signals`` per symbol: the account's legs are held, each on the side of its
weight's sign (``side="long"`` with ``{"BTC/USDT:USDT": 0.5, "ETH/USDT:USDT": -0.5}`` is long
BTC and short ETH; ``side="short"`` turns both over).
"""

from __future__ import annotations

import numpy as np

from backtester.errors import ConfigError
from backtester.market import Market
from backtester.marketset import MarketSet
from backtester.params import ParamGrid
from backtester.signals import Signals

__all__ = ["PARAMS", "signals"]

PARAMS: dict[str, list[str]] = {"side": ["long", "short"]}


def signals(market: Market | MarketSet, grid: ParamGrid) -> Signals | dict[str, Signals]:
    """Return an entry signal on every bar for each column's side, never an exit.

    The first entry (signal at the close of bar 0) fills at the open of bar 1; after a stop or a
    liquidation the position is opened again at the next open. For a MarketSet: the same
    signals for every symbol, ``{symbol: Signals}``.
    """
    if isinstance(market, MarketSet):
        one = _signals(market.n_bars, grid)
        return {symbol: one for symbol in market.symbols}
    return _signals(market.n_bars, grid)


def _signals(n: int, grid: ParamGrid) -> Signals:
    sides = grid.values("side")
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
