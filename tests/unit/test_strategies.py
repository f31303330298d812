"""Strategies: default grids run, signals are column-vectorized, and never look ahead."""

from __future__ import annotations

import numpy as np
import pytest

import backtester as bt
from backtester import strategies
from backtester.errors import ConfigError
from tests.property.strategies import random_market

NAMES = ("hold", "sma_cross", "breakout", "rsi_reversion", "funding_carry")
SMALL = {
    "hold": {"side": ["long", "short"]},
    "sma_cross": {"fast": [3, 5], "slow": [8, 13]},
    "breakout": {"window": [5, 12]},
    "rsi_reversion": {"period": [5], "lower": [30.0], "upper": [70.0]},
    "funding_carry": {"lookback": [1, 3], "threshold": [0.0, 0.0005]},
}


@pytest.mark.parametrize("name", NAMES)
def test_no_look_ahead(name: str) -> None:
    # Arrange: two markets identical up to bar 150, different afterwards
    a = random_market(1, 300, vol=0.02, basis=0.002, mark_is_last=False, funding_every=1)
    b = random_market(2, 300, vol=0.02, basis=0.002, mark_is_last=False, funding_every=1)
    cut = 150
    frames = a.to_frame()
    other = b.to_frame()
    mixed = frames.copy()
    mixed.iloc[cut:] = other.iloc[cut:].to_numpy() * 1.3  # any different future
    future = bt.Market.from_frames(
        mixed.reset_index()[["timestamp", "open", "high", "low", "close"]],
        mark="last",
        symbol="BTC/USDT:USDT",
        timeframe="1h",
    )
    past = bt.Market.from_frames(
        frames.reset_index()[["timestamp", "open", "high", "low", "close"]],
        mark="last",
        symbol="BTC/USDT:USDT",
        timeframe="1h",
    )
    # funding: same events before the cut, different after
    fund_a = a.funding_rate.copy()
    fund_b = fund_a.copy()
    fund_b[cut:] = -fund_b[cut:] * 3
    grid = bt.ParamGrid.product(**SMALL[name])
    mod = strategies.get(name)
    # Act
    s1 = mod.signals(_with_funding(past, a.funding_ts_ns, fund_a), grid)
    s2 = mod.signals(_with_funding(future, a.funding_ts_ns, fund_b), grid)
    # Assert: signals up to the last bar before the cut are identical
    for f in ("long_entries", "long_exits", "short_entries", "short_exits"):
        np.testing.assert_array_equal(getattr(s1, f)[:cut], getattr(s2, f)[:cut])


def _with_funding(m: bt.Market, ts: np.ndarray, rates: np.ndarray) -> bt.Market:
    import pandas as pd

    frame = m.to_frame().reset_index()[["timestamp", "open", "high", "low", "close"]]
    funding = pd.DataFrame({"timestamp": pd.to_datetime(ts, utc=True), "funding_rate": rates})
    return bt.Market.from_frames(
        frame, mark="last", funding=funding, symbol="BTC/USDT:USDT", timeframe="1h"
    )


@pytest.mark.parametrize("name", NAMES)
def test_default_grid_runs_and_shapes(name: str) -> None:
    m = random_market(3, 400, vol=0.01, basis=0.001, mark_is_last=False, funding_every=8)
    mod = strategies.get(name)
    grid = bt.ParamGrid.product(**mod.PARAMS)
    sig = mod.signals(m, grid)
    assert sig.long_entries.shape == (m.n_bars, grid.n_cols)
    r = bt.run_sweep(m, mod, config=bt.RunConfig(leverage=2))
    assert len(r.stats()) == grid.n_cols


def test_sma_cross_hand_case() -> None:
    # closes 1,1,1,5,5,0,0: sma2 vs sma3 -> fast above slow at bar 3 (3 > 2.33): long entry;
    # at bar 5 fast 2.5 < slow 3.33: short entry (and long exit)
    from tests.unit.reference import make_market

    c = [1.0, 1.0, 1.0, 5.0, 5.0, 0.5, 0.5]
    m = make_market(c, [6.0] * 7, [0.4] * 7, c)
    sig = strategies.sma_cross.signals(m, bt.ParamGrid.product(fast=[2], slow=[3]))
    assert np.nonzero(sig.long_entries[:, 0])[0].tolist() == [3]
    assert np.nonzero(sig.short_entries[:, 0])[0].tolist() == [5]
    assert np.array_equal(sig.long_exits, sig.short_entries)


def test_breakout_hand_case() -> None:
    # window 2: bar 3 closes 10 above the prior 2-bar high 6 -> long; bar 5 closes 1 below
    # the prior 2-bar low 4 -> short
    from tests.unit.reference import make_market

    c = [5.0, 5.0, 5.0, 10.0, 5.0, 1.0]
    m = make_market(c, [6.0, 6.0, 6.0, 10.0, 6.0, 5.0], [4.0, 4.0, 4.0, 5.0, 4.0, 1.0], c)
    sig = strategies.breakout.signals(m, bt.ParamGrid.product(window=[2]))
    assert np.nonzero(sig.long_entries[:, 0])[0].tolist() == [3]
    assert np.nonzero(sig.short_entries[:, 0])[0].tolist() == [5]


def test_funding_carry_hand_case() -> None:
    # events at bars 1, 2, 3 with rates +0.001, +0.001, -0.002; lookback 2, threshold 0.0005:
    # mean known at the close of bar 2 = 0.001 > 0.0005 -> short entry at bar 2; at bar 3 the mean
    # is -0.0005 <= 0 -> short exit (and -0.0005 is not < -0.0005, so no long entry)
    from tests.unit.reference import make_market

    m = make_market(
        [1.0] * 5, [1.0] * 5, [1.0] * 5, [1.0] * 5, funding={1: 0.001, 2: 0.001, 3: -0.002}
    )
    sig = strategies.funding_carry.signals(
        m, bt.ParamGrid.product(lookback=[2], threshold=[0.0005])
    )
    assert np.nonzero(sig.short_entries[:, 0])[0].tolist() == [2]
    assert 3 in np.nonzero(sig.short_exits[:, 0])[0].tolist()
    assert not sig.long_entries.any()


def test_rsi_is_bounded_and_signals_follow_thresholds() -> None:
    m = random_market(5, 300, vol=0.03, basis=0.001, mark_is_last=True, funding_every=8)
    r = strategies.rsi_reversion.rsi(m.close, 14)
    finite = r[~np.isnan(r)]
    assert ((finite >= 0) & (finite <= 100)).all()
    sig = strategies.rsi_reversion.signals(
        m, bt.ParamGrid.product(period=[14], lower=[30.0], upper=[70.0])
    )
    np.testing.assert_array_equal(sig.long_entries[:, 0], r < 30.0)


def test_bad_strategy_params() -> None:
    m = random_market(3, 50, vol=0.01, basis=0.001, mark_is_last=True, funding_every=8)
    with pytest.raises(ConfigError, match="sma_cross fast must be < slow, was fast=50, slow=20"):
        strategies.sma_cross.signals(m, bt.ParamGrid.product(fast=[50], slow=[20]))
    with pytest.raises(ConfigError, match="hold side must be 'long' or 'short', was 'up'"):
        strategies.hold.signals(m, bt.ParamGrid.product(side=["up"]))
    with pytest.raises(ConfigError, match="unknown strategy 'sma_cros'; did you mean 'sma_cross'"):
        strategies.get("sma_cros")
