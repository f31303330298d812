"""Accounts by hand: per-leg take-profit and trailing stop, and the `detail` walk of two cross legs.

The numbers follow docs/reference/exchange-rules.md §7.5 (the Binance two-position account:
2024-05-30 brackets, BTC and ETH tier 1 0-50k at 0.40 %, tier 2 50k-600k at 0.50 % cum 50) and
§7.6.9 (each leg's own stops and take-profits; the detail walk of a cross account).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.config import RunConfig
from backtester.engine.enums import ExitReason
from backtester.params import ParamGrid

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _bars(rows: list[tuple[float, float, float, float]], freq: str) -> pd.DataFrame:
    ts = pd.date_range("2024-06-01", periods=len(rows), freq=freq, tz="UTC")
    o, h, lo, c = (list(x) for x in zip(*rows, strict=True))
    return pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c})


def _market(symbol: str, rows: list[Any], detail: list[Any] | None = None) -> bt.Market:
    # mark = last (the exchange's mark path is the last path here)
    bars = _bars(rows, "1h")
    sub = None
    if detail is not None:
        sub = bt.Market.from_frames(
            _bars(detail, "15min"), mark="last", symbol=symbol, exchange="binanceusdm",
            timeframe="15m",
        )  # fmt: skip
    return bt.Market.from_frames(
        bars, mark=bars, symbol=symbol, exchange="binanceusdm", timeframe="1h", detail=sub
    )


def _flat(price: float, n: int) -> list[tuple[float, float, float, float]]:
    return [(price, price, price, price)] * n


def _run(ms: bt.MarketSet, grid: ParamGrid, cfg: RunConfig, n: int) -> Any:
    return bt.run_account_entries(
        ms, grid, legs={BTC: 0.5, ETH: 0.5}, entry_idx=np.array([0]), horizon_bars=n, config=cfg
    )


BASE = RunConfig(
    initial_cash=12_000.0,
    leverage=10.0,
    position_size=0.9,
    taker_fee=0.0005,
    maker_fee=0.0002,
    stop_trigger="last",
    tier_table="2024-05-30",
    funding=False,
)


@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_a_leg_s_take_profit_fills_at_its_price_and_the_other_leg_goes_on(mode: str) -> None:
    """BTC's take-profit (5 %: 63,000) fills in bar 1; ETH stays open to the end.

    Wallet 12,000, position_size 0.9, weights 0.5 / 0.5, 10x: each leg's margin 5,400, notional
    54,000 (BTC 0.9 at 60,000, ETH 18 at 3,000), entry fee 54,000 x 0.05 % = 27 each.
    Bar 1: BTC's high 63,500 reaches 63,000; the take-profit is a resting limit order: it
    fills at 63,000 with the maker fee 0.9 x 63,000 x 0.02 % = 11.34; BTC's share
    = -27 + 0.9 x 3,000 - 11.34 = 2,661.66. ETH's high 3,100 stays below its 3,150.
    ETH at the last mark close 3,050: -27 + 18 x 50 = 873. Final equity = 12,000 + 2,661.66
    + 873 = 15,534.66.
    """
    btc = _market(BTC, [*_flat(60_000.0, 1), (60_000.0, 63_500.0, 60_000.0, 63_000.0),
                        *_flat(63_000.0, 1)])  # fmt: skip
    eth = _market(ETH, [*_flat(3_000.0, 1), (3_000.0, 3_100.0, 2_950.0, 3_050.0),
                        *_flat(3_050.0, 1)])  # fmt: skip
    ms = bt.MarketSet.from_markets([btc, eth])
    out = _run(ms, ParamGrid.product(take_profit=[0.05]), BASE.replace(margin_mode=mode), 3)
    assert out.leg_reason[0, 0].tolist() == [ExitReason.TAKE_PROFIT, ExitReason.END_OF_DATA]
    assert out.leg_exit_idx[0, 0].tolist() == [1, 2]
    assert out.leg_exit_price[0, 0, 0] == pytest.approx(63_000.0, rel=1e-12)
    np.testing.assert_allclose(out.leg_pnl[0, 0], [2_661.66, 873.0], rtol=1e-12)
    np.testing.assert_allclose(out.leg_fees[0, 0], [27 + 11.34, 27.0], rtol=1e-12)
    assert out.final_equity[0, 0] == pytest.approx(15_534.66, rel=1e-12)
    assert out.ambiguous_bars[0] == 0


@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_a_leg_s_trailing_stop_follows_its_own_peak(mode: str) -> None:
    """BTC's 2 % trailing stop rises with its bar-1 high and fills in bar 2; ETH is held.

    As above: BTC 0.9 and ETH 18 at 60,000 / 3,000, entry fee 27 each. Bar 1: the stop
    (60,000 x 0.98 = 58,800) is not reached (open 61,600, low 61,500); after the bar the peak moves to its
    high 62,000, so the stop is 62,000 x 0.98 = 60,760. Bar 2 opens at 61,800 (above it) and
    its low 60,500 reaches it: the stop fills at 60,760 (no slippage) with the taker fee
    0.9 x 60,760 x 0.05 % = 27.342. BTC's share = -27 + 0.9 x 760 - 27.342 = 629.658.
    ETH (flat at 3,000; its stop 2,940 never reached): -27. Final = 12,602.658.
    """
    btc = _market(BTC, [*_flat(60_000.0, 1), (61_600.0, 62_000.0, 61_500.0, 61_800.0),
                        (61_800.0, 61_800.0, 60_500.0, 60_600.0), *_flat(60_600.0, 1)])  # fmt: skip
    eth = _market(ETH, _flat(3_000.0, 4))
    ms = bt.MarketSet.from_markets([btc, eth])
    out = _run(ms, ParamGrid.product(trailing_stop=[0.02]), BASE.replace(margin_mode=mode), 4)
    assert out.leg_reason[0, 0].tolist() == [ExitReason.TRAILING_STOP, ExitReason.END_OF_DATA]
    assert out.leg_exit_idx[0, 0].tolist() == [2, 3]
    assert out.leg_exit_price[0, 0, 0] == pytest.approx(60_760.0, rel=1e-12)
    np.testing.assert_allclose(out.leg_pnl[0, 0], [629.658, -27.0], rtol=1e-12)
    assert out.final_equity[0, 0] == pytest.approx(12_602.658, rel=1e-12)
    assert out.exit_idx[0, 0] == 2 and out.reason[0, 0] == ExitReason.TRAILING_STOP


# §7.5's account: wallet 12,000, both long 10x with 6,000 each (BTC 1 at 60,000, ETH 20 at
# 3,000), no fees. Its cross liquidation price of BTC with ETH held at 2,850 is 51,442.21
# (ETH MM 235, UPNL -3,000); with ETH held at 3,000 it is 48,443.78 (§7.5, re-solved in tier 1).
LP_ETH_2850 = (12_000 - 235 - 3_000 + 50 - 60_000) / (0.005 - 1)
LP_ETH_3000 = (12_000 - 250 + 0 + 0 - 60_000) / (0.004 - 1)
CROSS = RunConfig(
    initial_cash=12_000.0,
    leverage=10.0,
    position_size=1.0,
    taker_fee=0.0,
    liquidation_fee_rate=0.0,
    tier_table="2024-05-30",
    funding=False,
    margin_mode="cross",
)


def _crash(together: bool) -> bt.MarketSet:
    # hour 1: BTC falls to 51,000 and ETH to 2,850 inside the same hour. Its four 15-minute
    # bars: BTC's low in the first (then 55,000); ETH's low in the first too (together) or in
    # the last (apart), when BTC is back at 55,000
    btc_d = [*_flat(60_000.0, 4), (60_000.0, 60_000.0, 51_000.0, 52_000.0),
             (52_000.0, 55_000.0, 52_000.0, 55_000.0), *_flat(55_000.0, 6)]  # fmt: skip
    drop = (3_000.0, 3_000.0, 2_850.0, 2_900.0)
    eth_d = [*_flat(3_000.0, 4), drop if together else _flat(3_000.0, 1)[0],
             (2_900.0 if together else 3_000.0,) * 4, _flat(2_900.0 if together else 3_000.0, 1)[0],
             (2_900.0,) * 4 if together else drop, *_flat(2_900.0, 4)]  # fmt: skip
    btc = _market(BTC, [*_flat(60_000.0, 1), (60_000.0, 60_000.0, 51_000.0, 55_000.0),
                        *_flat(55_000.0, 1)], btc_d)  # fmt: skip
    eth = _market(ETH, [*_flat(3_000.0, 1), (3_000.0, 3_000.0, 2_850.0, 2_900.0),
                        *_flat(2_900.0, 1)], eth_d)  # fmt: skip
    return bt.MarketSet.from_markets([btc, eth])


def test_the_hand_numbers_of_the_crash() -> None:
    assert abs(LP_ETH_2850 - 51_442.21) < 0.005
    assert abs(LP_ETH_3000 - 48_443.78) < 0.005
    # BTC at 55,000 and ETH at 2,850: MB = 12,000 - 5,000 - 3,000 = 4,000 > MM 225 + 235 = 460
    assert 12_000 - 5_000 - 3_000 > (55_000 * 0.005 - 50) + (57_000 * 0.005 - 50)


def test_detail_walks_two_cross_legs_apart_and_no_liquidation_happens() -> None:
    """The coarse bar liquidates only if BTC's low (51,000) and ETH's low (2,850) are at once.

    `worst` assumes they are: BTC's price with ETH at 2,850 is 51,442.21 > 51,000, so the
    account liquidates in hour 1 (BTC at 51,442.21, ETH at 2,850), keeping MB = 12,000 - 3,000
    - 8,557.79 = 442.21, one ambiguous bar (with ETH at its high 3,000 BTC would need
    48,443.78). `detail` walks the 15-minute bars together: BTC's 51,000 comes while ETH is at
    3,000 (safe: 51,000 > 48,443.78), ETH's 2,850 when BTC is at 55,000 (safe: MB 4,000 > MM
    460): nothing happens; at the last close (BTC 55,000, ETH 2,900) the equity is 12,000 -
    5,000 - 2,000 = 5,000.
    """
    ms = _crash(together=False)
    out = _run(ms, ParamGrid.product(intrabar=["worst", "detail"]), CROSS, 3)
    worst, detail = 0, 1
    assert out.liquidation_idx[worst, 0] == 1 and out.liquidated_leg[worst, 0] == 2
    np.testing.assert_allclose(out.leg_exit_price[worst, 0], [LP_ETH_2850, 2_850.0], rtol=1e-12)
    assert out.final_equity[worst, 0] == pytest.approx(442.21, abs=0.005)
    assert out.ambiguous_bars[worst] == 1
    assert out.liquidation_idx[detail, 0] == -1
    assert out.leg_reason[detail, 0].tolist() == [ExitReason.END_OF_DATA] * 2
    assert out.final_equity[detail, 0] == pytest.approx(5_000.0, rel=1e-12)
    assert out.ambiguous_bars[detail] == 0


def test_detail_walks_two_cross_legs_together_and_liquidates_in_the_shared_quarter() -> None:
    """Both lows in the first 15-minute bar: the detail walk liquidates there as `worst` does.

    In that quarter BTC reaches 51,000 with ETH at 2,850: BTC's price 51,442.21 is inside it,
    so the account goes at BTC 51,442.21 and ETH 2,850, keeping 442.21, in both policies.
    """
    ms = _crash(together=True)
    out = _run(ms, ParamGrid.product(intrabar=["worst", "detail"]), CROSS, 3)
    for c in (0, 1):
        assert out.liquidation_idx[c, 0] == 1 and out.liquidated_leg[c, 0] == 2
        np.testing.assert_allclose(out.leg_exit_price[c, 0], [LP_ETH_2850, 2_850.0], rtol=1e-12)
        assert out.final_equity[c, 0] == pytest.approx(442.21, abs=0.005)
