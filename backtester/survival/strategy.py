"""Strategy-mode survival: a fresh account runs the strategy from each rolling start time.

Layer: survival (uses ``engine.run.run_strategy_windows``).

For every rolling start ``s`` a fresh account (``initial_cash``) trades the strategy's signals
over ``[s, s + horizon)``; its survival time is the time to its first liquidation (or ruin),
right-censored at the horizon or the end of the data. The signals are computed once on the
whole market, so indicators are warmed up with the history before ``s`` (strategies have no
look-ahead, so a signal at bar ``i`` never depends on later bars). Every (setting, start) pair
is one column of a single kernel call (``engine.run.run_strategy_windows``), each simulated
only over its window: the same numbers as one ``run_sweep`` per start on the market cut to
that window, in a fraction of the time.
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
    from backtester.engine.run import run_strategy_windows
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
    # every start with at least two bars to trade is one window; all windows of all settings
    # run as columns of one kernel call (the engine needs two bars: a start too close to the
    # end is recorded as rejected)
    lo = np.asarray(entries, dtype=np.int64)
    hi = np.minimum(lo + horizon_bars, n_bars)
    ok = hi - lo >= 2
    short = ~ok
    out["rejected"][:, short] = True
    out["exit_idx"][:, short] = n_bars - 1
    out["reason"][:, short] = _END_OF_DATA
    for name in ("final_equity", "min_equity"):
        out[name][:, short] = cash
    for name in ("insurance_draw", "funding_paid", "fees_paid"):
        out[name][:, short] = 0.0
    ambiguous = np.zeros(n_s, dtype=np.int64)
    t0 = time.perf_counter()
    if ok.any():
        w_lo, w_hi = lo[ok], hi[ok]
        raw = run_strategy_windows(market, strategy, grid, starts=w_lo, ends=w_hi, config=config)
        n_win = w_hi - w_lo
        liq = raw[:, :, Stat.FIRST_LIQUIDATION_IDX].astype(np.int64)
        ruin = raw[:, :, Stat.RUIN_IDX].astype(np.int64)
        ruined = (raw[:, :, Stat.RUINED] > 0) & (ruin >= 0)
        first = np.where(liq >= 0, liq - w_lo, n_win)
        dead = np.where(ruined, ruin - w_lo, n_win)
        stop = np.minimum(first, dead)
        hit = stop < n_win
        out["exit_idx"][:, ok] = w_lo + np.where(hit, stop, n_win - 1)
        censor = np.where(w_lo + horizon_bars <= n_bars, _HORIZON, _END_OF_DATA)
        out["reason"][:, ok] = np.where(
            hit, np.where(stop == first, _LIQUIDATION, _RUIN), censor[None, :]
        )
        for name, stat in (
            ("final_equity", Stat.FINAL_EQUITY),
            ("min_equity", Stat.MIN_EQUITY),
            ("insurance_draw", Stat.INSURANCE_DRAW),
            ("funding_paid", Stat.FUNDING_PAID),
            ("fees_paid", Stat.FEES_PAID),
        ):
            out[name][:, ok] = raw[:, :, stat]
        ambiguous += raw[:, :, Stat.AMBIGUOUS_BARS].astype(np.int64).sum(axis=1)
    elapsed = time.perf_counter() - t0
    for name in settings.columns:
        if name == "stop_loss":
            settings[name] = [None if _none(v) else float(v) for v in settings[name]]
    return settings, {**out, "ambiguous_bars": ambiguous}, elapsed, cash


def _none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
