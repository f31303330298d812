"""Your own symbol and your own rules: a market the project has no tier table for (issue 11.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.errors import ConfigError, DataError
from tests.unit.test_engine import FLAT, FixedSignals, make_market

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _renamed(market: bt.Market, symbol: str) -> bt.Market:
    frame = pd.DataFrame(
        {
            "timestamp": market.index,
            "open": market.open,
            "high": market.high,
            "low": market.low,
            "close": market.close,
            "volume": market.volume,
        }
    )
    return bt.Market.from_frames(frame, mark="last", symbol=symbol)


def test_a_flat_rate_needs_no_tier_table() -> None:
    # Arrange: bars of a symbol no table knows; 10x long at 100 with 1000 (Q = 100), flat 0.5 %
    # (Binance convention, flat MMR, no maintenance amount): LP = (1000 - 10000)/(100*(0.005-1))
    # = 90.4523; the mark low 90 on bar 2 reaches it
    known = make_market(FLAT, [101.0] * 4, [99.0, 99.0, 90.0, 99.0], FLAT)
    mine = _renamed(known, "MYCOIN/USDT:USDT")
    cfg = bt.RunConfig(
        leverage=10,
        maint_margin_rate=0.005,
        taker_fee=0.0,
        initial_cash=1000,
        liquidation_fee_rate=0.003,  # BTC's legacy clearance fee; other symbols pay 0.5 %
    )
    # Act
    ours = bt.run_sweep(mine, FixedSignals(4, long_entries=[0]), config=cfg)
    theirs = bt.run_sweep(known, FixedSignals(4, long_entries=[0]), config=cfg)
    # Assert: the same numbers as on a known symbol with the same flat rate
    t = ours.trades()
    assert t["exit_reason"][0] == "liquidation"
    assert t["exit_price"][0] == pytest.approx((1000 - 10000) / (100 * (0.005 - 1)), rel=1e-12)
    pd.testing.assert_frame_equal(ours.stats(), theirs.stats())


def test_without_a_rate_or_tiers_the_error_says_how() -> None:
    mine = _renamed(make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT), "MYCOIN/USDT:USDT")
    with pytest.raises(ConfigError) as info:
        bt.run_sweep(mine, FixedSignals(4, long_entries=[0]), config=bt.RunConfig(leverage=2))
    message = str(info.value)
    assert "'MYCOIN/USDT:USDT' has no tier table for binanceusdm" in message
    assert "maint_margin_rate=" in message and "tier_table='market'" in message
    assert "\n" not in message


def test_max_leverage_limits_a_flat_rate_market() -> None:
    mine = _renamed(make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT), "MYCOIN/USDT:USDT")
    cfg = bt.RunConfig(leverage=25, maint_margin_rate=0.01, max_leverage=20)
    with pytest.raises(ConfigError, match=r"leverage 25 is above max_leverage 20 for MYCOIN"):
        bt.run_sweep(mine, FixedSignals(4, long_entries=[0]), config=cfg)
    assert bt.check_run(mine, config=cfg.replace(leverage=20)).max_leverage


def test_the_market_own_tiers_are_honoured_exactly() -> None:
    # Arrange: two tiers: up to 5,000 notional 20x at 1 %, then 10x at 2.5 % (amount 75 by the
    # recurrence: 5000 * (0.025 - 0.01)). 10x long at 100 with 1000: Q = 100, notional 10,000
    # (tier 2). Binance LP: 1000 + 100*(LP - 100) = 100*LP*0.025 - 75
    # -> LP*(100 - 2.5) = 10000 - 1000 - 75 -> LP = 8925 / 97.5 = 91.538...
    tiers = pd.DataFrame(
        {"floor": [0, 5000], "cap": [5000, 50000], "max_leverage": [20, 10], "mmr": [0.01, 0.025]}
    )
    base = make_market(FLAT, [101.0] * 4, [99.0, 99.0, 91.5, 99.0], FLAT)
    frame = pd.DataFrame(
        {
            "timestamp": base.index,
            "open": base.open,
            "high": base.high,
            "low": base.low,
            "close": base.close,
            "volume": base.volume,
        }
    )
    mine = bt.Market.from_frames(frame, mark="last", symbol="MYCOIN/USDT:USDT", tiers=tiers)
    cfg = bt.RunConfig(leverage=10, tier_table="market", taker_fee=0.0, initial_cash=1000)
    # Act
    t = bt.run_sweep(mine, FixedSignals(4, long_entries=[0]), config=cfg).trades()
    # Assert
    assert list(mine.tiers["maint_amount"]) == [0.0, 75.0]
    assert t["exit_reason"][0] == "liquidation"
    assert t["exit_price"][0] == pytest.approx(8925 / 97.5, rel=1e-12)
    # tier 2 allows 10x: 11x on the same notional is refused before the run
    with pytest.raises(ConfigError, match=r"\(0, 20\] .*market's own tiers"):
        bt.run_sweep(mine, FixedSignals(4, long_entries=[0]), config=cfg.replace(leverage=25))


def test_tier_columns_that_are_optional_default_sensibly() -> None:
    t = bt.Market.from_frames(
        pd.read_csv(EXAMPLES / "mycoin_1h.csv", parse_dates=["timestamp"]),
        mark="last",
        symbol="MYCOIN/USDT:USDT",
        tiers=pd.read_csv(EXAMPLES / "mycoin_tiers.csv"),
    ).tiers
    assert t is not None
    assert list(t["tier"]) == [1, 2, 3] and set(t["basis"]) == {"notional"}
    np.testing.assert_allclose(t["maint_amount"], [0.0, 75.0, 1325.0])  # 75 + 50000 * 0.025
    with pytest.raises(DataError, match=r"tiers has no column 'mmr'.*floor, cap, max_leverage"):
        bt.Market.from_frames(
            pd.read_csv(EXAMPLES / "mycoin_1h.csv", parse_dates=["timestamp"]),
            mark="last",
            symbol="MYCOIN/USDT:USDT",
            tiers=pd.DataFrame({"floor": [0], "cap": [1e6], "max_leverage": [20]}),
        )


def test_the_readme_csv_example_runs() -> None:
    bars = pd.read_csv(EXAMPLES / "mycoin_1h.csv", parse_dates=["timestamp"])
    m = bt.Market.from_frames(bars, mark="last", symbol="MYCOIN/USDT:USDT")
    study = bt.survival_study(
        m, leverage=(2, 10), horizon="12h", entry_every="2h", maint_margin_rate=0.01
    )
    assert list(study.table().reset_index()["n_entries"]) == [50, 50]


def test_the_run_says_which_tier_tables_it_used_and_how() -> None:
    # SOL has only the 2026-05-07 snapshot: a 2021 study uses it extended backwards and says so
    bars = pd.read_csv(EXAMPLES / "mycoin_1h.csv", parse_dates=["timestamp"])
    m = bt.Market.from_frames(bars, mark="last", symbol="SOL/USDT:USDT")
    study = bt.survival_study(m, leverage=(2,), horizon="12h", entry_every="2h")
    (used,) = study.rules
    assert used["table_id"] == "binanceusdm/SOL_USDT_USDT/2026-05-07"
    assert "extended backwards from 2026-05-07 to 2021-11-17" in used["note"]
    assert study.run_info()["rules"] == [used]


def test_the_report_says_a_table_was_extended_backwards() -> None:
    from backtester.survival.report import _rules_note

    bars = pd.read_csv(EXAMPLES / "mycoin_1h.csv", parse_dates=["timestamp"])
    m = bt.Market.from_frames(bars, mark="last", symbol="SOL/USDT:USDT")
    (line,) = _rules_note(bt.survival_study(m, leverage=(2,), horizon="12h", entry_every="2h"))
    assert "binanceusdm/SOL_USDT_USDT/2026-05-07" in line
    assert "Extended backwards from 2026-05-07 to 2021-11-17" in line
