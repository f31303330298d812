"""Real-data checks on the bundled Binance BTC/USDT:USDT 1h data (mark, last, funding, tiers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester import strategies
from backtester.rules import liquidation_price


def _bar(market: bt.Market, when: str) -> int:
    return int(np.searchsorted(market.ts_ns, pd.Timestamp(when, tz="UTC").value))


def test_10x_long_entered_2020_03_12_is_liquidated_that_day_by_mark(btc_1h: bt.Market) -> None:
    # Arrange: hold long from the 2020-03-12 00:00 UTC open (signal at the 2020-03-11 23:00 close)
    m = btc_1h.slice("2020-03-11 23:00", "2020-03-16")
    grid = bt.ParamGrid.product(side=["long"], leverage=[10])
    # Act
    r = bt.run_sweep(m, strategies.hold, grid, config=bt.RunConfig(after_liquidation="stop"))
    t = r.trades()
    # Assert: first trade opened at the 00:00 open and was liquidated on 2020-03-12
    first = t.iloc[0]
    assert first["entry_time"] == pd.Timestamp("2020-03-12 00:00", tz="UTC")
    assert first["exit_reason"] == "liquidation"
    assert first["exit_time"].date() == pd.Timestamp("2020-03-12").date()
    # ... at the liquidation price the rules give for the position's margin (net of funding)
    lp = liquidation_price(
        "binanceusdm",
        "long",
        first["entry_price"],
        first["size"],
        margin=first["margin"] - first["funding"],
        symbol="BTC/USDT:USDT",
        at=first["exit_time"],
    )
    assert first["exit_price"] == pytest.approx(lp, rel=1e-9)
    # ... which the mark low of the exit bar reached, and no earlier mark low did
    k = _bar(m, str(first["exit_time"]))
    e = _bar(m, "2020-03-12 00:00")
    assert m.mark_low[k] <= lp
    assert (m.mark_low[e:k] > lp).all()


def _liquidations(market: bt.Market) -> np.ndarray:
    grid = bt.ParamGrid.product(side=["long", "short"], leverage=[50, 75, 100])
    cfg = bt.RunConfig(position_size=0.05, initial_cash=1000.0)
    stats = bt.run_sweep(market, strategies.hold, grid, config=cfg).stats()
    return stats["n_liquidations"].to_numpy()


def test_mark_price_rules_liquidate_less_than_last_price_rules_2020_2026(
    bundled_only_store: str,
) -> None:
    # Arrange: same bundled bars (never a developer's downloads), liquidation judged on the mark
    # vs on the last price
    start, end = "2020-01-01", "2026-05-17"
    mark = bt.load_market("BTC/USDT:USDT", start=start, end=end, store=bundled_only_store)
    last = bt.load_market(
        "BTC/USDT:USDT", start=start, end=end, mark="last", store=bundled_only_store
    )
    # Act
    n_mark, n_last = _liquidations(mark), _liquidations(last)
    # Assert: measured on the bundled data (hold long/short x 50/75/100x, re-entering after each
    # liquidation): 859 liquidations with mark-price rules vs 979 with last-price rules, per column
    #   long 50/75/100x: mark 35/56/65, last 38/61/73; short: mark 139/225/339, last 156/255/396.
    # An engine change that moves these numbers must say why here and in the change log.
    assert (int(n_mark.sum()), int(n_last.sum())) == (859, 979)
    assert n_mark.tolist() == [35, 56, 65, 139, 225, 339]
    assert n_last.tolist() == [38, 61, 73, 156, 255, 396]


def test_acceptance_hold_grid_liquidations_agree_with_mark_data_and_rules(
    btc_1h: bt.Market,
) -> None:
    # Arrange: the acceptance grid on the whole bundled history
    grid = bt.ParamGrid.product(leverage=[1, 2, 5, 10, 20, 50, 100], stop_loss=[None, 0.05])
    # Act: at 100x the default 10,000 opens a 1,000,000 notional, above what the tier allows at
    # 100x (the 2019-09-08 table: 250,000-1,000,000 at most 50x) -> those columns never trade,
    # and run_sweep says so
    with pytest.warns(bt.BacktesterWarning, match="4 of 28 columns never opened a position"):
        r = bt.run_sweep(btc_1h, strategies.hold, grid)
    stats = r.stats()
    t = r.trades()
    # Assert: one row per column with the documented statistics
    assert len(stats) == grid.n_cols * 2  # crossed with hold's default side: long, short
    for col in ("final_equity", "liquidated", "first_liquidation_time", "ambiguous_bars"):
        assert col in stats.columns
    refused = stats.xs(100, level="leverage")
    assert (refused["n_trades"] == 0).all() and (refused["n_rejected"] > 0).all()
    liq = t[t["exit_reason"] == "liquidation"]
    assert len(liq) > 0
    for row in liq.itertuples():
        k = _bar(btc_1h, str(row.exit_time))
        adverse = btc_1h.mark_low[k] if row.side == "long" else btc_1h.mark_high[k]
        s = 1 if row.side == "long" else -1
        # the mark's adverse extreme reached the exit (liquidation or gap) price
        assert s * (adverse - row.exit_price) <= 1e-9 * row.exit_price


def test_detail_bars_resolve_ambiguous_bars_on_real_1m_data(btc_1h_with_1m: bt.Market) -> None:
    # Arrange: tight stops and take-profits at 50x make many 1h bars ambiguous
    grid = bt.ParamGrid.product(
        side=["long", "short"],
        leverage=[50],
        stop_loss=[0.003],
        take_profit=[0.004],
        intrabar=["worst", "best", "detail"],
    )
    # Act
    stats = bt.run_sweep(btc_1h_with_1m, strategies.hold, grid).stats()
    worst = stats.xs("worst", level="intrabar")
    best = stats.xs("best", level="intrabar")
    detail = stats.xs("detail", level="intrabar")
    # Assert: the 1m bars settle the bars the policies had to assume, and the real paths land
    # between the worst-case and best-case assumptions (measured: 45/61 ambiguous bars -> 0)
    assert (worst["ambiguous_bars"] > 0).all()
    assert (best["ambiguous_bars"] == worst["ambiguous_bars"]).all()
    assert (detail["ambiguous_bars"] < worst["ambiguous_bars"]).all()
    assert (worst["final_equity"] <= detail["final_equity"]).all()
    assert (detail["final_equity"] <= best["final_equity"]).all()
