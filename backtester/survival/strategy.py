"""Strategy-mode survival: a fresh account runs the strategy from each rolling start time.

Layer: survival (uses the public engine API ``run_sweep`` and ``SweepResult.stats``).

For every rolling start ``s`` a fresh account (``initial_cash``) trades the strategy's signals
over ``[s, s + horizon)``; its survival time is the time to its first liquidation (or ruin),
right-censored at the horizon or the end of the data. The signals are computed once on the
whole market, so indicators are warmed up with the history before ``s`` (strategies have no
look-ahead, so a signal at bar ``i`` never depends on later bars). One ``run_sweep`` per start
(all settings as columns): daily starts over six years take a minute or two; use a longer
``entry_every`` (e.g. ``"7D"``) for a quick look.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester._typing import I64Array

if TYPE_CHECKING:  # pragma: no cover
    from backtester.market import Market
    from backtester.params import ParamGrid
    from backtester.signals import Signals

__all__ = ["STRATEGY_MEANING", "STRATEGY_STOPS", "strategy_outcomes"]

_LIQUIDATION, _HORIZON, _END_OF_DATA, _RUIN = 5, 7, 6, 8

STRATEGY_MEANING = (
    "Strategy mode: from each rolling start time a fresh account trades the strategy's signals "
    "(computed on the full history); survival is the account's time to its first liquidation "
    "or ruin, right-censored at the horizon or the end of data"
)

#: what a stop means in strategy mode (it ends a trade, not the account's follow-up)
STRATEGY_STOPS = (
    "A stop-loss exit closes a trade, not the account: the strategy trades on and the account "
    "can still be liquidated later, so stops do not end follow-up (n_stopped stays 0: stop "
    "exits are not counted per account here). Only the horizon and the end of the data censor."
)


class _WindowStrategy:
    # the strategy's full-history signals, cut to the window being simulated
    def __init__(self, strategy: Any, market: Market) -> None:
        self.PARAMS = strategy.PARAMS
        self.__name__ = getattr(strategy, "__name__", "strategy")
        self._strategy = strategy
        self._market = market
        self._cache: dict[Any, Signals] = {}
        self.lo = 0
        self.hi = market.n_bars

    def signals(self, market: Market, grid: ParamGrid) -> Signals:
        from backtester.signals import Signals

        key = (grid.names, tuple(tuple(grid.values(n)) for n in grid.names))
        if key not in self._cache:
            from backtester.engine.run import call_signals

            self._cache[key] = call_signals(self._strategy, self._market, grid)
        full = self._cache[key]
        cut = slice(self.lo, self.hi)
        # Signals fills missing arrays with False, so every field is an array here
        parts = [
            getattr(full, name)[cut]
            for name in ("long_entries", "long_exits", "short_entries", "short_exits")
        ]
        return Signals(*parts)


def strategy_outcomes(
    market: Market,
    strategy: Any,
    axes: dict[str, tuple[Any, ...]],
    fixed: dict[str, Any],
    entries: I64Array,
    horizon_bars: int,
) -> tuple[pd.DataFrame, dict[str, Any], float, float]:
    """Run ``strategy`` from every start for every setting; return (settings, arrays, s, cash)."""
    from backtester import strategies  # the one strategy loader checks what a strategy must define
    from backtester.config import RunConfig
    from backtester.engine.enums import Stat
    from backtester.engine.run import run_sweep
    from backtester.params import ParamGrid

    strategies.check(strategy)
    params: dict[str, Any] = strategy.PARAMS
    engine_axes = {k: v for k, v in axes.items() if k != "side"}
    names = [*params, *engine_axes]
    combos = list(itertools.product(*[params[k] for k in params], *engine_axes.values()))
    settings = pd.DataFrame(combos, columns=names)
    grid = ParamGrid.zip(
        **{n: [None if _none(v) else v for v in settings[n]] for n in settings.columns}
    )
    config = RunConfig(**fixed)
    cash = float(config.initial_cash)
    n_s, n_e, n_bars = len(settings), entries.size, market.n_bars
    out = {
        "exit_idx": np.empty((n_s, n_e), dtype=np.int64),
        "reason": np.empty((n_s, n_e), dtype=np.int64),
        "final_equity": np.empty((n_s, n_e)),
        "min_equity": np.empty((n_s, n_e)),
        "insurance_draw": np.empty((n_s, n_e)),
        "funding_paid": np.empty((n_s, n_e)),
        "fees_paid": np.empty((n_s, n_e)),
        "rejected": np.zeros((n_s, n_e), dtype=bool),
    }
    ambiguous = np.zeros(n_s, dtype=np.int64)
    window = _WindowStrategy(strategy, market)
    t0 = time.perf_counter()
    for k, lo in enumerate(entries):
        hi = int(min(lo + horizon_bars, n_bars))
        if hi - lo < 2:  # the engine needs two bars: too close to the end to trade
            out["rejected"][:, k] = True
            out["exit_idx"][:, k] = n_bars - 1
            out["reason"][:, k] = _END_OF_DATA
            for name in ("final_equity", "min_equity"):
                out[name][:, k] = cash
            for name in ("insurance_draw", "funding_paid", "fees_paid"):
                out[name][:, k] = 0.0
            continue
        window.lo, window.hi = int(lo), hi
        end = market.index[hi] if hi < n_bars else None
        sub = market.slice(market.index[lo], end)
        result = run_sweep(sub, window, grid, config=config)
        stats = result.stats()
        liq_at = _bar_of(sub, stats["first_liquidation_time"])
        ruin_idx = result.raw_stats[:, Stat.RUIN_IDX]
        ruin_at = np.where(stats["ruined"].to_numpy() & (ruin_idx >= 0), ruin_idx, -1)
        first = np.where(liq_at >= 0, liq_at, hi - lo)
        dead = np.where(ruin_at >= 0, ruin_at, hi - lo)
        stop = np.minimum(first, dead)
        hit = stop < hi - lo
        out["exit_idx"][:, k] = lo + np.where(hit, stop, hi - lo - 1)
        out["reason"][:, k] = np.where(
            hit,
            np.where(stop == first, _LIQUIDATION, _RUIN),
            _HORIZON if lo + horizon_bars <= n_bars else _END_OF_DATA,
        )
        out["final_equity"][:, k] = stats["final_equity"].to_numpy()
        out["min_equity"][:, k] = stats["min_equity"].to_numpy()
        out["insurance_draw"][:, k] = stats["insurance_draw"].to_numpy()
        out["funding_paid"][:, k] = stats["funding_paid"].to_numpy()
        out["fees_paid"][:, k] = stats["fees_paid"].to_numpy()
        ambiguous += stats["ambiguous_bars"].to_numpy().astype(np.int64)
    elapsed = time.perf_counter() - t0
    for name in settings.columns:
        if name == "stop_loss":
            settings[name] = [None if _none(v) else float(v) for v in settings[name]]
    return settings, {**out, "ambiguous_bars": ambiguous}, elapsed, cash


def _none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _bar_of(market: Market, times: pd.Series) -> I64Array:
    # bar index in ``market`` of each timestamp, -1 for NaT
    ns = pd.DatetimeIndex(times).asi8
    idx = np.searchsorted(market.ts_ns, ns)
    return np.where(pd.isna(times).to_numpy(), -1, idx).astype(np.int64)
