"""run_sweep / run_entries: bad input, grid splitting, batching, EntryOutcomes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester import strategies
from backtester.engine.enums import ExitReason
from backtester.engine.run import run_entries
from backtester.errors import BacktesterWarning, ConfigError, DataError, ShapeError
from backtester.signals import Signals
from tests.unit.reference import FixedSignals, make_market

M = make_market([100, 101, 102, 103, 104], [105] * 5, [95] * 5, [101, 102, 103, 104, 105])


def test_unknown_grid_name_suggests_closest() -> None:
    grid = bt.ParamGrid.product(leverge=[2])
    with pytest.raises(
        ConfigError, match=r"unknown grid parameter 'leverge'; did you mean 'leverage'"
    ):
        bt.run_sweep(M, strategies.hold, grid)


def test_leverage_above_tier_maximum_names_value_and_range() -> None:
    grid = bt.ParamGrid.product(leverage=[200])
    with pytest.raises(ConfigError, match=r"leverage must be in \(0, 125\].*was 200"):
        bt.run_sweep(M, strategies.hold, grid)


def test_columns_whose_every_entry_is_rejected_warn_with_the_tier_maximum() -> None:
    # Arrange: hold at 100x with 10,000: the first entry's notional 1 x 10,000 x 100 = 1,000,000
    # lies in tier 3 of the 2024-05-30 table (600,000-3,000,000, max 75x) -> every entry refused.
    # At 10x (notional 100,000, tier 2, max 100x) the column trades normally.
    grid = bt.ParamGrid.product(leverage=[10, 100], side=["long"])
    # Act / Assert: one warning naming the notional, the tier and its maximum
    with pytest.warns(
        BacktesterWarning,
        match=r"1 of 2 columns never opened a position.*column 1.*= 1,000,000 is in tier 3 of "
        r"binanceusdm/BTC_USDT_USDT/2024-05-30, which allows at most 75x",
    ):
        r = bt.run_sweep(M, strategies.hold, grid)
    stats = r.stats()
    assert stats["n_trades"].tolist() == [1, 0]
    assert stats["n_rejected"].tolist() == [0, 4]  # signals at closes 0..3 -> bars 1..4


@pytest.mark.parametrize("batch_size", [0, -1])
def test_batch_size_below_one_is_a_config_error(batch_size: int) -> None:
    # 0 used to fall back silently to the default batch size
    with pytest.raises(ConfigError, match=f"batch_size must be >= 1, was {batch_size}"):
        bt.run_sweep(M, strategies.hold, batch_size=batch_size)


def test_bad_setting_value_names_field() -> None:
    with pytest.raises(ConfigError, match=r"RunConfig.margin_mode must be one of .* was 'crosss'"):
        bt.run_sweep(M, strategies.hold, bt.ParamGrid.product(margin_mode=["crosss"]))
    with pytest.raises(ConfigError, match=r"RunConfig.stop_loss .* was -0.1"):
        bt.RunConfig(stop_loss=-0.1)


def test_market_with_nan_or_unsorted_bars_is_rejected() -> None:
    ts = pd.date_range("2024-06-01", periods=3, freq="1h", tz="UTC")
    bad = pd.DataFrame(
        {
            "timestamp": ts,
            "open": [1.0, np.nan, 1.0],
            "high": [1.0] * 3,
            "low": [1.0] * 3,
            "close": [1.0] * 3,
        }
    )
    with pytest.raises(DataError, match="NaN"):
        bt.Market.from_frames(bad, mark="last", symbol="BTC/USDT:USDT")
    unsorted = bad.fillna(1.0).iloc[[0, 2, 1]]
    with pytest.raises(DataError):
        bt.Market.from_frames(unsorted, mark="last", symbol="BTC/USDT:USDT")


def test_signals_of_wrong_shape_raise_shape_error() -> None:
    class Bad:
        PARAMS: ClassVar[dict[str, list[int]]] = {}
        __name__ = "bad"

        @staticmethod
        def signals(market: bt.Market, grid: bt.ParamGrid) -> Signals:
            return Signals(np.zeros((market.n_bars - 1, 1), dtype=bool))

    with pytest.raises(ShapeError, match=r"bad signals must have shape .* \(5, 1\), was \(4, 1\)"):
        bt.run_sweep(M, Bad(), bt.ParamGrid.product())


def test_detail_policy_without_detail_bars_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="intrabar 'detail' needs lower-timeframe bars"):
        bt.run_sweep(M, strategies.hold, config=bt.RunConfig(intrabar="detail"))


def test_missing_strategy_params_cross_with_defaults_and_labels_follow_grid() -> None:
    r = bt.run_sweep(M, strategies.hold, bt.ParamGrid.product(leverage=[1, 2]))
    stats = r.stats()
    assert list(stats.index.names) == ["leverage", "side"]
    assert list(stats.index) == [(1, "long"), (1, "short"), (2, "long"), (2, "short")]


def test_batching_and_progress_do_not_change_results() -> None:
    grid = bt.ParamGrid.product(leverage=[1, 2, 3], stop_loss=[None, 0.01])
    a = bt.run_sweep(M, strategies.hold, grid).raw_stats
    b = bt.run_sweep(M, strategies.hold, grid, batch_size=1, progress=False).raw_stats
    np.testing.assert_array_equal(a, b)


def test_trades_equity_and_stats_columns() -> None:
    r = bt.run_sweep(
        M,
        FixedSignals(5, long_entries=[0]),
        bt.ParamGrid.product(leverage=[1, 2]),
        config=bt.RunConfig(taker_fee=0.0, funding=False),
    )
    t = r.trades()
    assert list(t.columns).count("leverage") == 1  # the grid label and the trade's leverage agree
    assert list(t["leverage"]) == [1.0, 2.0]
    assert list(t["exit_reason"]) == ["end_of_data", "end_of_data"]
    eq = r.equity([1])
    assert eq.shape == (5, 1)
    # 2x long from 101: size 20000/101; last mark close 105
    assert eq.iloc[-1, 0] == pytest.approx(10_000 + 20_000 / 101 * 4, rel=1e-12)
    stats = r.stats()
    for name in (
        "final_equity",
        "total_return",
        "max_drawdown",
        "liquidated",
        "n_liquidations",
        "first_liquidation_time",
        "n_stops",
        "fees_paid",
        "funding_paid",
        "insurance_draw",
        "min_liquidation_distance",
        "time_in_market",
        "ambiguous_bars",
        "ruined",
    ):
        assert name in stats.columns
    assert str(stats["first_liquidation_time"].dtype) == "datetime64[ns, UTC]"
    assert stats["first_liquidation_time"].isna().all()
    assert stats["time_in_market"].iloc[0] == pytest.approx(4 / 5)


def test_run_entries_outcomes_and_horizon_censoring() -> None:
    # Arrange: bar 2's mark low 80 liquidates a 10x long opened at bar 1 (LP ~ 91), not a 1x
    mark = ([100.0] * 5, [101.0] * 5, [99.0, 99.0, 80.0, 99.0, 99.0], [100.0] * 5)
    m = make_market([100.0] * 5, [101.0] * 5, [99.0] * 5, [100.0] * 5, mark=mark)
    settings = bt.ParamGrid.product(side=["long"], leverage=[1, 10])
    # Act
    out = run_entries(
        m,
        settings,
        entry_idx=np.array([1, 3]),
        horizon_bars=2,
        config=bt.RunConfig(taker_fee=0.0, funding=False),
    )
    # Assert
    assert out.exit_idx.shape == (2, 2)
    assert out.reason[1, 0] == ExitReason.LIQUIDATION and out.exit_idx[1, 0] == 2
    assert out.reason[0, 0] == ExitReason.HORIZON and out.exit_idx[0, 0] == 2  # window [1, 3)
    assert out.reason[0, 1] == ExitReason.END_OF_DATA and out.exit_idx[0, 1] == 4
    assert out.bars_held[1, 0] == 2
    assert out.final_equity[0, 0] == pytest.approx(10_000.0, rel=1e-12)
    assert out.to_frame().shape[0] == 4


def test_run_entries_checkpoints_record_equity_after_k_bars() -> None:
    # Arrange: 1x long of the 10,000 wallet at bar 0's open 100, no fee: size 100; mark closes
    # 100, 103, 98, 110 -> equity 10,000, 10,300, 9,800, 11,000 at bars 0..3; horizon 3
    closes = [100.0, 103.0, 98.0, 110.0]
    m = make_market([100.0] * 4, [111.0] * 4, [97.0] * 4, closes)
    settings = bt.ParamGrid.product(side=["long"])
    config = bt.RunConfig(taker_fee=0.0, funding=False)
    # Act: 1 and 2 bars after entry, and 5 (past the horizon: the window's last bar)
    out = run_entries(
        m, settings, entry_idx=np.array([0, 2]), horizon_bars=3, config=config,
        checkpoints=[1, 2, 5],
    )  # fmt: skip
    # Assert: entry 0 -> bars 0, 1 and 2 (its window [0, 3)); entry 2 -> bars 2, 3, 3 (data
    # end), from its own entry at open 100 of bar 2: 9,800, 11,000
    np.testing.assert_allclose(out.checkpoint_equity[0, 0], [10_000, 10_300, 9_800], rtol=1e-12)
    np.testing.assert_allclose(out.checkpoint_equity[0, 1], [9_800, 11_000, 11_000], rtol=1e-12)
    np.testing.assert_array_equal(out.checkpoints, [1, 2, 5])
    np.testing.assert_array_equal(out.checkpoint_equity[0, :, 2], out.final_equity[0])


def test_run_entries_bad_input() -> None:
    s = bt.ParamGrid.product(side=["long"])
    with pytest.raises(ConfigError, match=r"entry_idx values must be in \[0, 4\], was 9"):
        run_entries(M, s, entry_idx=np.array([9]), horizon_bars=2)
    with pytest.raises(ConfigError, match="horizon_bars must be an int >= 1, was 0"):
        run_entries(M, s, entry_idx=np.array([1]), horizon_bars=0)
    with pytest.raises(ConfigError, match="unknown grid parameter 'fast'"):
        run_entries(M, bt.ParamGrid.product(fast=[1]), entry_idx=np.array([1]), horizon_bars=2)
    with pytest.raises(
        ConfigError, match=r"checkpoints must be increasing bar counts >= 1, was \[2, 1\]"
    ):
        run_entries(M, s, entry_idx=np.array([1]), horizon_bars=2, checkpoints=[2, 1])
    with pytest.raises(ConfigError, match="checkpoints must be a 1-D sequence of int"):
        run_entries(M, s, entry_idx=np.array([1]), horizon_bars=2, checkpoints=[1.5])


def test_exchange_and_tier_table_can_be_swept() -> None:
    # Arrange: one 1x long per exchange profile / tier-table choice, no funding
    grid = bt.ParamGrid.product(
        exchange=["binanceusdm", "bybit"], tier_table=[None, "2024-06-01"], side=["long"]
    )
    # Act
    stats = bt.run_sweep(M, strategies.hold, grid, config=bt.RunConfig(funding=False)).stats()
    # Assert: 1x long with the whole 10,000 wallet; the order costs margin + fee, so
    # margin = 10,000 / (1 + f) and fee = margin * f with f = 0.05 % (binance) vs 0.055 % (bybit)
    fees = stats["fees_paid"].to_numpy()
    f_bn, f_by = 0.0005, 0.00055
    expected = [10_000 / (1 + f_bn) * f_bn] * 2 + [10_000 / (1 + f_by) * f_by] * 2
    np.testing.assert_allclose(fees, expected, rtol=1e-12)
