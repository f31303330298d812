"""SweepResult.stats(): the risk-adjusted columns, hand-computed on a 6-bar daily market."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

import backtester as bt
from backtester.errors import ConfigError
from backtester.results import STAT_COLUMNS, bars_per_year, path_metrics, trade_metrics
from tests.property.strategies import RandomSignals, random_market
from tests.unit.reference import FixedSignals, make_market

# Daily bars, no fees, no funding, 1x long with 10,000:
#   bar    0    1    2    3    4    5
#   open  100  100  110   99   99   90
#   close 100  110   99   99   90  108
# entry signal at close 0 -> long 100 units at open 1 (100); exit signal at close 2 -> sold at
# open 3 (99): pnl -100. Entry signal at close 3 -> long 9,900 / 99 = 100 units at open 4 (99),
# open at the end: pnl 100 x (108 - 99) = +900.
# close equity: 10,000, 11,000, 9,900, 9,900, 9,000, 10,800
OPEN = [100.0, 100.0, 110.0, 99.0, 99.0, 90.0]
CLOSE = [100.0, 110.0, 99.0, 99.0, 90.0, 108.0]
MARKET = make_market(
    OPEN,
    [max(a, b) for a, b in zip(OPEN, CLOSE, strict=True)],
    [min(a, b) for a, b in zip(OPEN, CLOSE, strict=True)],
    CLOSE,
    timeframe="1d",
)
STRATEGY = FixedSignals(6, long_entries=[0, 3], long_exits=[2])
CONFIG = bt.RunConfig(taker_fee=0.0, funding=False)


def _stats(**grid: list[object]) -> bt.SweepResult:
    return bt.run_sweep(MARKET, STRATEGY, bt.ParamGrid.product(**grid), config=CONFIG)


def test_risk_adjusted_columns_match_the_hand_computation() -> None:
    # Arrange: per-bar returns, equity_{-1} = 10,000:
    #   r = 0, 0.1, -0.1, 0, -1/11, 0.2            mean = 0.10909/6 = 0.0181818
    #   std (ddof 1) = 0.1151356; sqrt(365) = 19.104973
    #   sharpe  = 0.0181818 / 0.1151356 x 19.104973 = 3.016993
    #   downside = sqrt((0.01 + 1/121) / 6) = 0.0551733 -> sortino = 6.295872
    #   max drawdown = (11,000 - 9,000) / 11,000 = 0.181818
    #   cagr = 1.08 ** (365 / 6) - 1 = 106.9639 -> calmar = 106.9639 / 0.181818 = 588.3013
    #   trades -100, +900: win_rate 0.5, profit_factor 900 / 100 = 9
    #   exposure: open on bars 1, 2, 4, 5 of 6 = 0.666667
    # Act
    row = _stats(leverage=[1]).stats().iloc[0]
    # Assert
    assert row["sharpe"] == pytest.approx(3.016993, rel=1e-6)
    assert row["sortino"] == pytest.approx(6.295872, rel=1e-6)
    assert row["max_drawdown"] == pytest.approx(0.181818, rel=1e-5)
    assert row["calmar"] == pytest.approx(588.3013, rel=1e-6)
    assert row["win_rate"] == 0.5
    assert row["profit_factor"] == pytest.approx(9.0, rel=1e-12)
    assert row["exposure"] == pytest.approx(4 / 6, rel=1e-12)
    assert row["n_trades"] == 2


def test_every_column_is_kept_in_order_and_a_subset_can_be_asked_for() -> None:
    result = _stats(leverage=[1, 2])
    assert tuple(result.stats().columns) == STAT_COLUMNS
    assert STAT_COLUMNS[:18] == (  # the original columns keep their place
        "final_equity", "total_return", "max_drawdown", "liquidated", "n_liquidations",
        "first_liquidation_time", "n_stops", "n_take_profits", "n_trades", "n_rejected",
        "fees_paid", "funding_paid", "insurance_draw", "min_liquidation_distance", "min_equity",
        "time_in_market", "ambiguous_bars", "ruined",
    )  # fmt: skip
    picked = result.stats(["calmar", "final_equity"])
    assert list(picked.columns) == ["calmar", "final_equity"]
    np.testing.assert_array_equal(picked["calmar"], result.stats()["calmar"])


def test_stats_never_re_run_the_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # the risk-adjusted columns come from the kernel's per-column sums (Stat.RET_SUM, ...)
    result = _stats(leverage=[1])
    calls: list[int] = []
    run = result._sim.run

    def counted(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return run(*a, **k)

    monkeypatch.setattr(result._sim, "run", counted)
    result.stats()
    result.stats(["sharpe", "profit_factor"])
    assert calls == []


def test_an_unknown_statistic_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown statistic 'sharp'; did you mean 'sharpe'"):
        _stats(leverage=[1]).stats(["sharp"])


def test_kernel_sums_equal_the_definitions_on_a_random_market() -> None:
    # 2,000 hourly bars, random signals of three densities, leverage up to 50 with and without
    # a stop (liquidations, ruins and long flat spells): stats() equals path_metrics and
    # trade_metrics on equity() and trades() to 1e-12 relative, NaN and inf alike
    market = random_market(3, 2000, vol=0.02, basis=0.002, mark_is_last=False, funding_every=8)
    grid = bt.ParamGrid.product(
        seed=[1, 2], p=[0.003, 0.05, 0.3], leverage=[1, 5, 50], stop_loss=[None, 0.02]
    )
    config = bt.RunConfig(taker_fee=0.0005, funding=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        result = bt.run_sweep(market, RandomSignals(), grid, config=config)
    got = result.stats(["sharpe", "sortino", "win_rate", "profit_factor"]).to_numpy(float)
    eq = result.equity().to_numpy()
    trades = result.trades()
    want = np.empty_like(got)
    for c in range(result.n_cols):
        want[c, :2] = path_metrics(eq[:, c], 10_000.0, 8_760.0)
        want[c, 2:] = trade_metrics(trades["pnl"].to_numpy()[trades["col"].to_numpy() == c])
    assert np.isfinite(want[:, 0]).sum() > 20  # the comparison is not all NaN
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0.0)


def test_path_metrics_skip_bars_after_ruin_and_are_nan_without_variation() -> None:
    # equity 100 -> 50 -> 0 -> 0 -> 0 from 100: returns 0, -0.5, -1 (then no capital left)
    #   mean -0.5, std (ddof 1) 0.5 -> sharpe -1 x sqrt(1) = -1
    #   downside sqrt((0 + 0.25 + 1) / 3) = 0.645497 -> sortino -0.5 / 0.645497 = -0.774597
    sharpe, sortino = path_metrics(np.array([100.0, 50.0, 0.0, 0.0, 0.0]), 100.0, 1.0)
    assert sharpe == pytest.approx(-1.0, rel=1e-12)
    assert sortino == pytest.approx(-0.774597, rel=1e-6)
    flat = path_metrics(np.full(4, 100.0), 100.0, 8760.0)
    assert all(math.isnan(v) for v in flat)


def test_trade_metrics_edge_cases() -> None:
    assert all(math.isnan(v) for v in trade_metrics(np.array([])))
    assert trade_metrics(np.array([5.0, 1.0])) == (1.0, math.inf)  # no loser
    assert trade_metrics(np.array([-2.0, 1.0, 3.0, 0.0])) == (0.5, 2.0)  # 4 / 2


def test_bars_per_year_is_a_365_day_year() -> None:
    assert bars_per_year(3_600 * 10**9) == 8_760.0
    assert bars_per_year(86_400 * 10**9) == 365.0


def test_a_column_that_never_trades_has_nan_risk_ratios() -> None:
    result = bt.run_sweep(
        MARKET, FixedSignals(6), bt.ParamGrid.product(leverage=[1]), config=CONFIG
    )
    row = result.stats().iloc[0]
    assert row["n_trades"] == 0
    for name in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor"):
        assert math.isnan(row[name]), name
    assert row["exposure"] == 0.0
