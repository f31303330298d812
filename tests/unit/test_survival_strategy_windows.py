"""Strategy-mode survival in one kernel call equals one run_sweep per start (the old path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backtester as bt
from backtester.engine.enums import Stat
from backtester.engine.run import call_signals, run_strategy_windows
from backtester.errors import ConfigError
from backtester.signals import Signals
from backtester.survival.strategy import strategy_outcomes

_LIQUIDATION, _HORIZON, _END_OF_DATA, _RUIN = 5, 7, 6, 8


class _WindowStrategy:
    # the strategy's full-history signals, cut to the window being simulated
    def __init__(self, strategy: Any, market: bt.Market) -> None:
        self.PARAMS = strategy.PARAMS
        self.__name__ = strategy.__name__
        self._strategy = strategy
        self._market = market
        self._full: Signals | None = None
        self.lo, self.hi = 0, market.n_bars

    def signals(self, market: bt.Market, grid: bt.ParamGrid) -> Signals:
        if self._full is None:
            self._full = call_signals(self._strategy, self._market, grid)
        cut = slice(self.lo, self.hi)
        names = ("long_entries", "long_exits", "short_entries", "short_exits")
        return Signals(*[getattr(self._full, n)[cut] for n in names])


def _per_start_reference(
    market: bt.Market,
    strategy: Any,
    grid: bt.ParamGrid,
    config: bt.RunConfig,
    entries: np.ndarray,
    horizon_bars: int,
) -> dict[str, np.ndarray]:
    # the path strategy_outcomes took before issue 12: one run_sweep per start on the market cut
    # to the start's window
    n_s, n_e, n_bars = grid.n_cols, entries.size, market.n_bars
    cash = float(config.initial_cash)
    out = {
        "exit_idx": np.empty((n_s, n_e), dtype=np.int64),
        "reason": np.empty((n_s, n_e), dtype=np.int64),
        "final_equity": np.empty((n_s, n_e)),
        "min_equity": np.empty((n_s, n_e)),
        "insurance_draw": np.empty((n_s, n_e)),
        "funding_paid": np.empty((n_s, n_e)),
        "fees_paid": np.empty((n_s, n_e)),
        "rejected": np.zeros((n_s, n_e), dtype=bool),
        "ambiguous_bars": np.zeros(n_s, dtype=np.int64),
    }
    window = _WindowStrategy(strategy, market)
    for k, lo in enumerate(entries):
        hi = int(min(lo + horizon_bars, n_bars))
        if hi - lo < 2:
            out["rejected"][:, k] = True
            out["exit_idx"][:, k] = n_bars - 1
            out["reason"][:, k] = _END_OF_DATA
            out["final_equity"][:, k] = out["min_equity"][:, k] = cash
            for name in ("insurance_draw", "funding_paid", "fees_paid"):
                out[name][:, k] = 0.0
            continue
        window.lo, window.hi = int(lo), hi
        end = market.index[hi] if hi < n_bars else None
        sub = market.slice(market.index[lo], end)
        result = bt.run_sweep(sub, window, grid, config=config)
        stats = result.stats()
        times = stats["first_liquidation_time"]
        liq_at = np.where(times.isna(), -1, np.searchsorted(sub.ts_ns, times.to_numpy("int64")))
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
        for name in ("final_equity", "min_equity", "insurance_draw", "funding_paid", "fees_paid"):
            out[name][:, k] = stats[name].to_numpy()
        out["ambiguous_bars"] += stats["ambiguous_bars"].to_numpy().astype(np.int64)
    return out


@pytest.mark.filterwarnings("ignore::backtester.errors.BacktesterWarning")
@pytest.mark.parametrize(
    ("strategy_name", "fixed"),
    [
        ("sma_cross", {"initial_cash": 100.0, "funding": True}),
        ("rsi_reversion", {"initial_cash": 100.0, "ruin_threshold": 0.6, "slippage": 0.0005}),
        ("hold", {"initial_cash": 100.0, "intrabar": "best", "stop_trigger": "mark"}),
    ],
)
def test_one_call_equals_one_run_sweep_per_start(
    btc_1h: bt.Market, strategy_name: str, fixed: dict[str, Any]
) -> None:
    """Every array of the one-call path is bit for bit the per-start path's."""
    from backtester import strategies

    # Arrange: 100 days of 1h bars, a start every 3 days, 20-day horizon, so the last starts
    # are censored by the end of the data and the very last has fewer than two bars
    market = btc_1h.slice("2022-05-01", "2022-08-09")
    strategy = getattr(strategies, strategy_name)
    entries = np.append(np.arange(0, market.n_bars, 72), market.n_bars - 1).astype(np.int64)
    axes = {
        "leverage": (2.0, 20.0, 100.0),
        "stop_loss": (None, 0.03),
        "margin_mode": ("isolated", "cross"),
    }
    # Act
    settings, got, _, _ = strategy_outcomes(market, strategy, axes, fixed, entries, 480)
    grid = bt.ParamGrid.zip(
        **{n: [None if v is None or v != v else v for v in settings[n]] for n in settings}
    )
    want = _per_start_reference(market, strategy, grid, bt.RunConfig(**fixed), entries, 480)
    # Assert: identical bits, and the case exercises liquidations and both censorings
    for name, expected in want.items():
        assert got[name].dtype == expected.dtype, name
        assert got[name].tobytes() == expected.tobytes(), name
    assert {_LIQUIDATION, _HORIZON, _END_OF_DATA} <= set(np.unique(got["reason"]))


def test_run_strategy_windows_refuses_bad_windows(btc_1h: bt.Market) -> None:
    from backtester import strategies

    # Arrange
    market = btc_1h.slice("2022-05-01", "2022-06-01")
    grid = bt.ParamGrid.product(leverage=[2.0])
    # Act / Assert: a window of one bar is refused in one line naming the fix
    with pytest.raises(ConfigError, match="at least 2 bars"):
        run_strategy_windows(market, strategies.hold, grid, starts=[5], ends=[6])
