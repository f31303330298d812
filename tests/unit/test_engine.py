"""Hand-computed 3-10 bar cases, one per bar-semantics rule of engine.kernel."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.config import RunConfig
from tests.unit.reference import FixedSignals, make_market

# Flat MMR (no tiers), no fees, no funding: every number below can be computed by hand.
BASE = RunConfig(
    taker_fee=0.0,
    maker_fee=0.0,
    slippage=0.0,
    maint_margin_rate=0.005,
    liquidation_fee_rate=0.0,
    funding=False,
    initial_cash=1000.0,
    position_size=1.0,
)
FLAT = [100.0] * 4


def run(market: bt.Market, strat: FixedSignals, **cfg: object) -> bt.SweepResult:
    return bt.run_sweep(market, strat, bt.ParamGrid.product(), config=BASE.replace(**cfg))


def one(result: bt.SweepResult) -> pd.Series:
    return result.stats().iloc[0]


# Long 10x at 100 with margin 1000 (Q = 100): Binance flat-MMR liquidation price
# LP = (M - Q*EP) / (Q*(mmr - 1)) = (1000 - 10000) / (100 * -0.995) = 90.45226130653...
LP_10X = (1000.0 - 10000.0) / (100.0 * (0.005 - 1.0))


def test_signal_at_close_fills_at_next_open_with_slippage_and_taker_fee() -> None:
    # Arrange: long entry seen at the close of bar 0; bar 1 opens at 110
    m = make_market([100, 110, 120], [101, 111, 121], [99, 109, 119], [100, 110, 120])
    # Act
    r = run(m, FixedSignals(3, long_entries=[0]), slippage=0.01, taker_fee=0.001)
    t = r.trades()
    # Assert: fill = 110 * 1.01 = 111.1. The order costs margin + fee and the wallet is 1000, so
    # at 1x margin = 1000 / (1 + 1 * 0.001) = 999.000999..., notional the same, fee = 0.999000999
    margin = 1000.0 / 1.001
    assert t["entry_time"][0] == m.index[1]
    assert t["entry_price"][0] == pytest.approx(111.1, rel=1e-12)
    assert t["size"][0] == pytest.approx(margin / 111.1, rel=1e-12)
    assert one(r)["fees_paid"] == pytest.approx(margin * 0.001, rel=1e-12)
    # equity at the last close: 1000 - fee + size*(120 - 111.1)
    expected = 1000.0 - margin * 0.001 + margin / 111.1 * 8.9
    assert one(r)["final_equity"] == pytest.approx(expected, rel=1e-12)


def test_liquidation_triggers_on_mark_low_not_last_low() -> None:
    # Arrange: last low stays at 99 but the mark low of bar 2 is 89 < LP 90.452
    lows = [99.0, 99.0, 99.0, 99.0]
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 89.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, lows, FLAT, mark=mark)
    # Act
    r = run(m, FixedSignals(4, long_entries=[0]), leverage=10)
    s = one(r)
    t = r.trades()
    # Assert: closes at LP; left = MM at LP = Q*LP*mmr; wallet = 1000 + 100*(LP - 100)
    assert s["n_liquidations"] == 1
    assert s["first_liquidation_time"] == m.index[2]
    assert t["exit_reason"][0] == "liquidation"
    assert t["exit_price"][0] == pytest.approx(LP_10X, rel=1e-12)
    assert s["final_equity"] == pytest.approx(1000.0 + 100.0 * (LP_10X - 100.0), rel=1e-12)
    assert s["final_equity"] == pytest.approx(100.0 * LP_10X * 0.005, rel=1e-9)


def test_last_low_below_lp_does_not_liquidate_when_mark_stays_above() -> None:
    # Arrange: last low 89 (a wick), mark low 95
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 95.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0, 99.0, 89.0, 99.0], FLAT, mark=mark)
    # Act
    s = one(run(m, FixedSignals(4, long_entries=[0]), leverage=10))
    # Assert: still open at the end; min distance (95 - LP)/95
    assert s["n_liquidations"] == 0
    assert s["min_liquidation_distance"] == pytest.approx((95.0 - LP_10X) / 95.0, rel=1e-12)


def test_short_liquidates_on_mark_high() -> None:
    # Short 10x at 100, Q=100: LP = (M + Q*EP)/(Q*(mmr + 1)) = 11000/100.5 = 109.4527...
    lp = 11000.0 / 100.5
    mark = (FLAT, [101.0, 101.0, 110.0, 101.0], [99.0] * 4, FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark)
    r = run(m, FixedSignals(4, short_entries=[0]), leverage=10)
    assert one(r)["n_liquidations"] == 1
    assert r.trades()["exit_price"][0] == pytest.approx(lp, rel=1e-12)


def test_funding_paid_changes_margin_and_moves_liquidation_price() -> None:
    # Arrange: 1 % funding at bar 2 on a 10x long of 100 BTC-units at mark 100: pays 100.
    # Margin 900 -> LP = (900 - 10000)/(-99.5) = 91.457...; bar 2 mark low 91.0 is below it,
    # but above the no-funding LP 90.452.
    lp_after = (900.0 - 10000.0) / (100.0 * (0.005 - 1.0))
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 91.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark, funding={2: 0.01})
    # Act
    on = run(m, FixedSignals(4, long_entries=[0]), leverage=10, funding=True)
    off = run(m, FixedSignals(4, long_entries=[0]), leverage=10, funding=False)
    # Assert
    assert one(on)["funding_paid"] == pytest.approx(100.0, rel=1e-12)
    assert one(on)["n_liquidations"] == 1
    assert on.trades()["exit_price"][0] == pytest.approx(lp_after, rel=1e-12)
    assert one(off)["n_liquidations"] == 0


def test_funding_longs_pay_shorts_receive_at_mark_open() -> None:
    # Arrange: 1x, Q = 10 at 100; funding 0.001 at bar 2 where the mark opens at 102
    mark = ([100.0, 100.0, 102.0, 100.0], [103.0] * 4, [99.0] * 4, FLAT)
    m = make_market(FLAT, [103.0] * 4, [99.0] * 4, FLAT, mark=mark, funding={2: 0.001})
    long_ = one(run(m, FixedSignals(4, long_entries=[0]), funding=True))
    short = one(run(m, FixedSignals(4, short_entries=[0]), funding=True))
    # Assert: 10 * 102 * 0.001 = 1.02 paid by the long, received by the short
    assert long_["funding_paid"] == pytest.approx(1.02, rel=1e-12)
    assert short["funding_paid"] == pytest.approx(-1.02, rel=1e-12)
    assert long_["final_equity"] == pytest.approx(1000.0 - 1.02, rel=1e-12)


def test_gap_beyond_bankruptcy_isolated_floor_and_owed() -> None:
    # Arrange: long 10x with half the equity: margin 500, Q 50 at 100, BP 90.
    # Bar 2 opens at 80 (last and mark): liquidated at the mark open 80, loss 1000, margin 500.
    o = [100.0, 100.0, 80.0, 80.0]
    m = make_market(o, [101.0, 101.0, 81.0, 81.0], [99.0, 99.0, 79.0, 79.0], o)
    strat = FixedSignals(4, long_entries=[0])
    floor = one(run(m, strat, leverage=10, position_size=0.5))
    owed = run(m, strat, leverage=10, position_size=0.5, negative_balance="owed")
    # Assert: floor keeps the other 500 and the insurance fund pays the 500 beyond the margin.
    # Owed books the full 1000 loss in the trader's balance (1000 -> 0), so the fund pays
    # nothing: the loss beyond the margin is counted once, not also as an insurance draw.
    assert floor["final_equity"] == pytest.approx(500.0, rel=1e-12)
    assert floor["insurance_draw"] == pytest.approx(500.0, rel=1e-12)
    assert one(owed)["final_equity"] == pytest.approx(0.0, abs=1e-9)
    assert one(owed)["insurance_draw"] == 0.0
    assert owed.trades()["pnl"][0] == pytest.approx(-1000.0, rel=1e-12)


def test_gap_beyond_bankruptcy_cross_floors_wallet_at_zero() -> None:
    # Cross: the whole wallet (1000) backs Q 50 at 100 (BP 80). Gap open 70: loss 1500.
    o = [100.0, 100.0, 70.0, 70.0]
    m = make_market(o, [101.0, 101.0, 71.0, 71.0], [99.0, 99.0, 69.0, 69.0], o)
    strat = FixedSignals(4, long_entries=[0])
    cross = one(run(m, strat, leverage=10, position_size=0.5, margin_mode="cross"))
    owed = one(
        run(m, strat, leverage=10, position_size=0.5, margin_mode="cross", negative_balance="owed")
    )
    assert cross["final_equity"] == 0.0
    assert cross["insurance_draw"] == pytest.approx(500.0, rel=1e-12)
    # owed: the trader's balance ends at 1000 - 1500 = -500 and the fund pays nothing
    assert owed["final_equity"] == pytest.approx(-500.0, rel=1e-12)
    assert owed["insurance_draw"] == 0.0


def test_liquidation_fee_capped_by_equity_left_and_bankruptcy_close() -> None:
    # At LP 90.452 the long keeps MM = 45.226. Fee 0.3 %: 0.003*100*LP = 27.136 (paid in full);
    # fee 1 %: 90.45 > 45.23 -> capped, trader left with 0; close_at bankruptcy -> 0 as well.
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 89.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark)
    strat = FixedSignals(4, long_entries=[0])
    left = 1000.0 + 100.0 * (LP_10X - 100.0)
    small = one(run(m, strat, leverage=10, liquidation_fee_rate=0.003))
    big = one(run(m, strat, leverage=10, liquidation_fee_rate=0.01))
    bank = one(run(m, strat, leverage=10, close_at="bankruptcy"))
    assert small["final_equity"] == pytest.approx(left - 0.003 * 100.0 * LP_10X, rel=1e-12)
    assert small["fees_paid"] == pytest.approx(0.003 * 100.0 * LP_10X, rel=1e-12)
    assert big["final_equity"] == 0.0
    assert big["fees_paid"] == pytest.approx(left, rel=1e-12)
    # bankruptcy close: taken over at BP = 100 - 1000/100 = 90, no fee (the margin is the loss)
    assert bank["final_equity"] == 0.0
    assert bank["fees_paid"] == 0.0


def test_bankruptcy_close_records_the_bankruptcy_price_as_the_exit_price() -> None:
    # Long 10x at 100, Q 100, margin 1000: LP 90.452 (flat MMR 0.5 %), BP = 100 - 1000/100 = 90.
    # Bar 2's mark low 89 reaches the LP. close_at="bankruptcy": the exchange takes the position
    # over at 90, so the record says 90 (it said 90.452, a price the trader never got), the fee
    # is 0 and the trade's PnL is 100*(90 - 100) = -1000 = the margin.
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 89.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark)
    r = run(m, FixedSignals(4, long_entries=[0]), leverage=10, close_at="bankruptcy")
    t = r.trades()
    assert t["exit_reason"][0] == "liquidation"
    assert t["exit_price"][0] == pytest.approx(90.0, rel=1e-12)
    assert t["fees"][0] == 0.0
    assert t["pnl"][0] == pytest.approx(100.0 * (90.0 - 100.0), rel=1e-12)
    # a gap beyond the bankruptcy price closes at the gap (the mark open 80), not at 90
    o = [100.0, 100.0, 80.0, 80.0]
    gap = make_market(o, [101.0, 101.0, 81.0, 81.0], [99.0, 99.0, 79.0, 79.0], o)
    g = run(gap, FixedSignals(4, long_entries=[0]), leverage=10, close_at="bankruptcy")
    assert g.trades()["exit_price"][0] == 80.0
    assert one(g)["insurance_draw"] == pytest.approx(1000.0, rel=1e-12)


@pytest.mark.parametrize("close_at", ["bankruptcy", "liquidation"])
def test_losing_the_whole_margin_leaves_exactly_zero_and_no_ruin(close_at: str) -> None:
    # 25x long with the whole wallet of 1000 at taker 0.05 %: the order costs margin * 1.0125,
    # margin = 1000/1.0125 = 987.654..., fee 12.345... In floats 1000 - fee came out 1.1e-13
    # below the margin, so losing the margin (bankruptcy close, or a liquidation fee of 5 %
    # that takes all that is left) left equity -1.1e-13 and ruin_threshold=0 ruined the
    # account. The wallet after the order is exactly the margin, so the loss leaves 0.0.
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 90.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark)
    s = one(
        run(
            m,
            FixedSignals(4, long_entries=[0]),
            leverage=25,
            taker_fee=0.0005,
            close_at=close_at,
            liquidation_fee_rate=0.05,
            ruin_threshold=0.0,
        )
    )
    assert s["n_liquidations"] == 1
    assert s["final_equity"] == 0.0 and s["min_equity"] == 0.0
    assert not s["ruined"]
    if close_at == "bankruptcy":  # the entry fee only: 1000 - 1000/1.0125
        assert s["fees_paid"] == pytest.approx(1000.0 - 1000.0 / 1.0125, rel=1e-12)


def test_stop_fills_at_stop_price_with_slippage() -> None:
    # Long 1x at 100 (Q 10), stop 5 % = 95; bar 2 trades down to 94 -> fill 95*(1-0.001)
    m = make_market([100, 100, 98, 97], [101, 101, 99, 98], [99, 99, 94, 96], [100, 100, 97, 97])
    r = run(m, FixedSignals(4, long_entries=[0]), stop_loss=0.05, slippage=0.001)
    t = r.trades()
    # entry 100*1.001 = 100.1 -> stop 100.1*0.95 = 95.095 -> fill 95.095*0.999
    assert t["exit_reason"][0] == "stop_loss"
    assert t["exit_price"][0] == pytest.approx(100.1 * 0.95 * 0.999, rel=1e-12)
    assert one(r)["n_stops"] == 1


def test_stop_gap_fills_at_open() -> None:
    # Bar 2 opens at 93, below the stop 95: fills at the open 93 (no slippage here)
    m = make_market([100, 100, 93, 93], [101, 101, 94, 94], [99, 99, 92, 92], [100, 100, 93, 93])
    r = run(m, FixedSignals(4, long_entries=[0]), stop_loss=0.05)
    assert r.trades()["exit_price"][0] == 93.0


def test_stop_trigger_mark_uses_mark_extremes() -> None:
    # last low 94 hits the 95 stop; mark low 96 does not
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 96.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0, 99.0, 94.0, 99.0], FLAT, mark=mark)
    strat = FixedSignals(4, long_entries=[0])
    assert one(run(m, strat, stop_loss=0.05))["n_stops"] == 1
    assert one(run(m, strat, stop_loss=0.05, stop_trigger="mark"))["n_stops"] == 0


def test_intrabar_worst_best_between_stop_and_liquidation() -> None:
    # Long 10x at 100, stop 95, LP 90.45. Bar 2: last low 94 (stop), mark low 90 (liquidation).
    # worst -> liquidation (left 45.23); best -> stop at 95 (wallet 1000 - 500 = 500). Both count
    # one ambiguous bar.
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 90.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0, 99.0, 94.0, 99.0], FLAT, mark=mark)
    strat = FixedSignals(4, long_entries=[0])
    worst = one(run(m, strat, leverage=10, stop_loss=0.05))
    best = one(run(m, strat, leverage=10, stop_loss=0.05, intrabar="best"))
    assert worst["n_liquidations"] == 1 and worst["ambiguous_bars"] == 1
    assert best["n_stops"] == 1 and best["ambiguous_bars"] == 1
    assert best["final_equity"] == pytest.approx(500.0, rel=1e-12)


def test_stop_on_mark_above_lp_wins_without_assumption() -> None:
    # stop_trigger="mark": the mark passes 95 before 90.45, so the stop fills; not ambiguous
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 90.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0, 99.0, 94.0, 99.0], FLAT, mark=mark)
    s = one(
        run(m, FixedSignals(4, long_entries=[0]), leverage=10, stop_loss=0.05, stop_trigger="mark")
    )
    assert s["n_stops"] == 1 and s["n_liquidations"] == 0 and s["ambiguous_bars"] == 0


@pytest.mark.parametrize("policy", ["worst", "best"])
def test_stop_beyond_bankruptcy_price_cannot_precede_liquidation(policy: str) -> None:
    # Long 10x at 100 (Q = 100, margin 1000): bankruptcy price 90, LP 90.452. A 12% stop sits at
    # 88, beyond the bankruptcy price. Bar 2: last low 87 (stop hit), mark low 90 (LP hit).
    # Filling the stop would lose 100*12 = 1200 > margin 1000, i.e. the position would already be
    # bankrupt, so the liquidation comes first under either policy and nothing is drawn from the
    # insurance fund. Left to the trader: MM at LP = 100 * 90.452 * 0.005 = 45.226.
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 90.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0, 99.0, 87.0, 99.0], FLAT, mark=mark)
    # Act
    s = one(run(m, FixedSignals(4, long_entries=[0]), leverage=10, stop_loss=0.12, intrabar=policy))
    # Assert
    assert s["n_liquidations"] == 1 and s["n_stops"] == 0 and s["ambiguous_bars"] == 0
    assert s["insurance_draw"] == 0.0
    assert s["final_equity"] == pytest.approx(100.0 * LP_10X * 0.005, rel=1e-9)


def test_intrabar_stop_and_take_profit_in_one_bar() -> None:
    # stop 95 and take-profit 105 both inside bar 2 (94..106): worst = stop, best = tp at 105
    m = make_market(FLAT, [101, 101, 106, 101], [99, 99, 94, 99], FLAT)
    strat = FixedSignals(4, long_entries=[0])
    worst = run(m, strat, stop_loss=0.05, take_profit=0.05)
    best = run(m, strat, stop_loss=0.05, take_profit=0.05, intrabar="best")
    assert worst.trades()["exit_reason"][0] == "stop_loss"
    assert best.trades()["exit_reason"][0] == "take_profit"
    assert best.trades()["exit_price"][0] == pytest.approx(105.0, rel=1e-12)
    assert one(best)["ambiguous_bars"] == 1


def test_take_profit_pays_maker_fee() -> None:
    # Long 1x at 100 (Q 10), tp 10 % = 110; fee 0.0002 * 10 * 110 = 0.22
    m = make_market(FLAT, [101, 101, 111, 101], [99] * 4, FLAT)
    r = run(m, FixedSignals(4, long_entries=[0]), take_profit=0.1, maker_fee=0.0002)
    s = one(r)
    assert s["n_take_profits"] == 1
    assert s["final_equity"] == pytest.approx(1000.0 + 100.0 - 0.22, rel=1e-12)


def test_trailing_stop_moves_after_the_bar() -> None:
    # Long at 100, trailing 10 %. Bar 2 high 120 and low 107: the stop was 90 during the bar
    # (peak 100), so no exit; after it the peak is 120 -> stop 108; bar 3 low 107 -> fill 108.
    m = make_market(
        [100, 100, 110, 115], [101, 101, 120, 116], [99, 99, 107, 107], [100, 100, 115, 110]
    )
    r = run(m, FixedSignals(4, long_entries=[0]), trailing_stop=0.1)
    t = r.trades()
    assert t["exit_reason"][0] == "trailing_stop"
    assert t["exit_time"][0] == m.index[3]
    assert t["exit_price"][0] == pytest.approx(108.0, rel=1e-12)


def test_detail_bars_resolve_stop_before_liquidation() -> None:
    # Coarse 1h bar 2 touches the stop (94 < 95) and the LP (89 < 90.45). Its 1m bars show
    # the dip to 94 at minute 10 and to 89 at minute 30 -> the stop came first.
    n_min = 4 * 60
    o = np.full(n_min, 100.0)
    lo = np.full(n_min, 99.5)
    lo[120 + 10] = 94.0
    lo[120 + 30] = 89.0
    detail = make_market(list(o), list(o + 0.5), list(lo), list(o), timeframe="1m")
    m = make_market(FLAT, [100.5] * 4, [99.5, 99.5, 89.0, 99.5], FLAT, detail=detail)
    strat = FixedSignals(4, long_entries=[0])
    worst = one(run(m, strat, leverage=10, stop_loss=0.05))
    det = one(run(m, strat, leverage=10, stop_loss=0.05, intrabar="detail"))
    assert worst["n_liquidations"] == 1 and worst["ambiguous_bars"] == 1
    assert det["n_stops"] == 1 and det["n_liquidations"] == 0 and det["ambiguous_bars"] == 0


def test_entry_rejected_when_notional_tier_allows_less_leverage() -> None:
    # 10,000,000 cash at 50x = 500M notional; the 2024-05-30 table allows 4x there -> rejected
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT)
    with pytest.warns(bt.BacktesterWarning, match="allows at most 4x"):
        r = run(
            m,
            FixedSignals(4, long_entries=[0]),
            leverage=50,
            initial_cash=1e7,
            maint_margin_rate=None,
        )
    s = one(r)
    assert s["n_trades"] == 0 and s["n_rejected"] == 1


@pytest.mark.parametrize(
    ("exchange", "cash", "leverage", "opened"),
    [
        # OKX 2023-06-15 table by size: last tier 84-96 BTC at 20x, cap 96 BTC (inclusive).
        # 1000 x 10x at 100 = 10,000 notional = 100 BTC > 96: the exchange refuses the order (the
        # kernel extrapolated the last tier's 20x and opened it); 960 x 10x = 96 BTC is allowed.
        ("okx", 1000.0, 10.0, False),
        ("okx", 960.0, 10.0, True),
        # Binance 2024-05-30 table by notional: last tier 1.2B-1.8B at 1x. 2e9 at 1x is past
        # the cap; 1.8e9 exactly is the largest position allowed.
        ("binanceusdm", 2e9, 1.0, False),
        ("binanceusdm", 1.8e9, 1.0, True),
    ],
)
def test_entry_beyond_the_last_tier_cap_is_rejected(
    exchange: str, cash: float, leverage: float, opened: bool
) -> None:
    table = {"okx": "2023-06-15", "binanceusdm": "2024-05-30"}[exchange]
    cap = float(bt.exchange_rules(exchange, "BTC/USDT:USDT", at=table).caps[-1])
    assert cap == {"okx": 96.0, "binanceusdm": 1.8e9}[exchange]
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)  # "never opened a position"
        s = one(
            run(
                m,
                FixedSignals(4, long_entries=[0]),
                exchange=exchange,
                tier_table=table,
                leverage=leverage,
                initial_cash=cash,
                maint_margin_rate=None,
                liquidation_fee_rate=None,
            )
        )
    assert (s["n_trades"], s["n_rejected"]) == ((1, 0) if opened else (0, 1))


def test_engine_run_passes_the_last_tier_caps_to_the_kernel() -> None:
    # engine.run hands each table's last cap to the kernel: 100 BTC past OKX's 96 BTC cap is
    # refused (the kernel used to extrapolate the last tier's 20x and open it)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        s = one(
            run(
                m,
                FixedSignals(4, long_entries=[0]),
                exchange="okx",
                tier_table="2023-06-15",
                leverage=10.0,
                maint_margin_rate=None,
                liquidation_fee_rate=None,
            )
        )
    assert s["n_rejected"] == 1


def test_after_liquidation_stop_keeps_account_dead() -> None:
    # Liquidated on bar 2; entry signals on every bar. "continue" re-enters at bar 3's open
    mark = ([*FLAT, 100.0], [101.0] * 5, [99.0, 99.0, 89.0, 99.0, 99.0], [*FLAT, 100.0])
    m = make_market([*FLAT, 100.0], [101.0] * 5, [99.0] * 5, [*FLAT, 100.0], mark=mark)
    strat = FixedSignals(5, long_entries=[0, 1, 2, 3])
    cont = one(run(m, strat, leverage=10))
    stop = one(run(m, strat, leverage=10, after_liquidation="stop"))
    assert cont["n_trades"] == 2  # liquidated, then re-entered and open at the end
    # "stop": the entries pending at bars 3 and 4 are both refused
    assert stop["n_trades"] == 1 and stop["n_rejected"] == 2


def test_ruin_closes_at_close_and_blocks_entries() -> None:
    # Long 5x at 100 (Q 50); bar 2 closes at 90 -> equity 1000 - 500 = 500 < 0.6*1000: ruined,
    # closed at the close 90 (reason ruin); the entry signal of bar 2 is rejected at bar 3.
    m = make_market(
        [100, 100, 95, 90], [101, 101, 96, 91], [99, 99, 89.5, 89.5], [100, 100, 90, 90]
    )
    r = run(m, FixedSignals(4, long_entries=[0, 2]), leverage=5, ruin_threshold=0.6)
    s = one(r)
    assert bool(s["ruined"]) and s["n_rejected"] == 1
    assert r.trades()["exit_reason"][0] == "ruin"
    assert s["final_equity"] == pytest.approx(500.0, rel=1e-12)


def test_reversal_and_exit_signals() -> None:
    # long at bar 1 open (100), short entry at close 1 reverses at bar 2 open (110),
    # short exit at close 2 closes at bar 3 open (105). 1x, Q = 10 then 1100/110 = 10
    m = make_market([100, 100, 110, 105], [111] * 4, [99] * 4, [100, 110, 105, 105])
    r = run(m, FixedSignals(4, long_entries=[0], short_entries=[1], short_exits=[2]))
    t = r.trades()
    assert list(t["side"]) == ["long", "short"]
    assert list(t["exit_reason"]) == ["signal", "signal"]
    # long: +10*(110-100) = 100 -> 1100; short Q = 10: +10*(110-105) = 50 -> 1150
    assert one(r)["final_equity"] == pytest.approx(1150.0, rel=1e-12)


def test_no_signals_equity_stays_at_cash() -> None:
    m = make_market([100, 90, 120], [130] * 3, [80] * 3, [100, 90, 120])
    r = run(m, FixedSignals(3))
    eq = r.equity()
    assert (eq.to_numpy() == 1000.0).all()
    assert math.isnan(one(r)["min_liquidation_distance"])


def test_tiered_liquidation_price_uses_the_table_in_force() -> None:
    # 30x long at 100 with 10,000: notional 300,000, Q = 3,000, margin 10,000, no fees.
    # 2021-03-18 table: notional at LP ~291k is tier 3 (MMR 1 %, cum 1,300):
    #   LP = (10000 + 1300 - 300000) / (3000*0.01 - 3000) = 97.20538720...
    # 2024-05-30 table (from 2024-05-30 00:00): tier 2 (MMR 0.5 %, cum 50):
    #   LP = (10000 + 50 - 300000) / (3000*0.005 - 3000) = 97.13567839...
    lp_2021 = (10000.0 + 1300.0 - 300000.0) / (3000.0 * 0.01 - 3000.0)
    lp_2024 = (10000.0 + 50.0 - 300000.0) / (3000.0 * 0.005 - 3000.0)
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 97.17, 99.0], FLAT)
    strat = FixedSignals(4, long_entries=[0])
    cfg = {"leverage": 30, "initial_cash": 10_000.0, "maint_margin_rate": None}
    # bar 2 is 2024-05-29 23:00 (old table): 97.17 < 97.205 -> liquidated at lp_2021
    old = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark, start="2024-05-29 21:00")
    r_old = run(old, strat, **cfg)
    assert one(r_old)["n_liquidations"] == 1
    assert r_old.trades()["exit_price"][0] == pytest.approx(lp_2021, rel=1e-12)
    # bar 2 is 2024-05-30 00:00 (new table, LP recomputed): 97.17 > 97.136 -> still open
    new = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark, start="2024-05-29 22:00")
    s_new = one(run(new, strat, **cfg))
    assert s_new["n_liquidations"] == 0
    assert s_new["min_liquidation_distance"] == pytest.approx((97.17 - lp_2024) / 97.17, rel=1e-9)


def test_cross_margin_backs_the_position_with_the_whole_wallet() -> None:
    # 10x long with half the equity: Q = 50 at 100 (notional 5,000).
    # isolated margin 500: LP = (500 - 5000)/(50*(0.005 - 1)) = 90.452...
    # cross, wallet 1000:  LP = (1000 - 5000)/(50*(0.005 - 1)) = 80.402...
    # A mark low of 85 liquidates the isolated position only.
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 85.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark)
    strat = FixedSignals(4, long_entries=[0])
    iso = one(run(m, strat, leverage=10, position_size=0.5))
    cross = one(run(m, strat, leverage=10, position_size=0.5, margin_mode="cross"))
    assert iso["n_liquidations"] == 1
    assert cross["n_liquidations"] == 0
    lp_cross = (1000.0 - 5000.0) / (50.0 * (0.005 - 1.0))
    assert cross["min_liquidation_distance"] == pytest.approx((85.0 - lp_cross) / 85.0, rel=1e-12)


def test_entry_notional_exactly_on_a_tier_cap_uses_the_lower_tier() -> None:
    # 400 x 125 = notional 50,000, exactly the cap of tier 1 of the 2024-05-30 table (0-50,000,
    # max 125x; caps are inclusive, rules.formulas.tier_index_nb) -> the entry is accepted. A
    # kernel compiled against an older tier lookup (floor inclusive: tier 2, max 100x) refused it.
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT)
    r = run(
        m,
        FixedSignals(4, long_entries=[0]),
        leverage=125,
        initial_cash=400.0,
        maint_margin_rate=None,
    )
    s = one(r)
    assert s["n_trades"] == 1 and s["n_rejected"] == 0
    assert r.trades()["size"][0] == pytest.approx(500.0, rel=1e-12)  # 50,000 / 100


def test_kernel_cache_is_keyed_on_the_files_it_compiles_in() -> None:
    # numba keys its on-disk cache on the kernel file only; backtester.engine._jitcache adds the
    # content hashes of the modules it imports (rules/formulas.py inlined, engine/enums.py folded
    # in, and whatever those import), so editing them recompiles the kernel. The hook patches numba
    # internals: this fails if it is not in effect on every kernel and formula (CACHE_ENABLED
    # says whether they are cached at all; off, they cannot be stale).
    from numba.core.registry import CPUDispatcher

    from backtester.engine import _jitcache, kernel
    from backtester.rules import formulas

    deps = [path for path, _ in _jitcache.STAMPS[str(Path(kernel.__file__))]]
    assert {"rules/formulas.py", "engine/enums.py", "engine/layout.py"} <= set(deps)
    assert "engine/enums.py" in [p for p, _ in _jitcache.STAMPS[str(Path(formulas.__file__))]]
    assert kernel.CACHE_ENABLED
    for module in (kernel, formulas):
        jitted = [
            v
            for v in vars(module).values()
            if isinstance(v, CPUDispatcher) and v.py_func.__module__ == module.__name__
        ]
        assert len(jitted) >= 6
        for k in jitted:
            assert _jitcache.cache_hook_in_effect(k) == "", k.__name__


def test_kernel_cache_stamp_changes_when_a_dependency_changes(tmp_path: Path) -> None:
    # The stamp stored in the cache index is (path, sha256) per dependency: an edit of
    # formulas.py or enums.py content changes it, so numba's index no longer matches and the
    # kernel recompiles; an unchanged copy gives the same stamp (no needless recompiles).
    from backtester.engine import _jitcache, kernel

    root = Path(_jitcache.PACKAGE_ROOT)
    copies = []
    for rel in ("rules/formulas.py", "engine/enums.py"):
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes((root / rel).read_bytes())
        copies.append(str(dst))
    same = _jitcache.stamp_of(tuple(copies))
    in_use = dict(_jitcache.STAMPS[str(Path(kernel.__file__))])
    assert [d for _, d in same] == [in_use["rules/formulas.py"], in_use["engine/enums.py"]]
    for path in copies:
        edited = Path(path)
        original = edited.read_bytes()
        edited.write_bytes(original + b"\nX = 1  # an edit\n")
        assert _jitcache.stamp_of(tuple(copies)) != same
        edited.write_bytes(original)
    assert _jitcache.stamp_of(tuple(copies)) == same


def test_kernel_dependencies_follow_its_imports(tmp_path: Path) -> None:
    # The dependency list is derived from the import statements (also transitively), so a module
    # the kernel starts importing is covered without editing a list by hand.
    from backtester.engine import _jitcache

    root = Path(_jitcache.PACKAGE_ROOT)
    fake = tmp_path / "k.py"
    fake.write_text(
        "from backtester.rules.formulas import tier_index_nb\n"
        "def f():\n    from backtester.engine import records\n"
    )
    deps = {str(Path(p).relative_to(root)) for p in _jitcache.dependency_files(str(fake))}
    assert {"rules/formulas.py", "engine/records.py", "_typing.py", "engine/enums.py"} <= deps


def test_dependency_scan_finds_every_import_the_ast_finds(tmp_path: Path) -> None:
    # _imported_modules reads imports with a text scan (ast.parse cost ~0.1 s per start); it
    # may find more than the ast (an import-like line in a string), never less: checked on
    # every module of the package and on the forms the package does not use yet
    import ast

    from backtester.engine import _jitcache

    def by_ast(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names if a.name.startswith("backtester"))
            elif (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and node.module
                and (node.module == "backtester" or node.module.startswith("backtester."))
            ):
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
        return names

    odd = tmp_path / "odd.py"
    odd.write_text(
        "import os, backtester.engine.records as rec\n"
        "from backtester.rules import (\n    formulas,\n    tables as t,  # comment\n)\n"
        "if True:\n\tfrom backtester.engine  import  kernel\n"
        "import backtester\n"
    )
    files = [*Path(_jitcache.PACKAGE_ROOT).rglob("*.py"), odd]
    for path in files:
        want = by_ast(path)
        got = _jitcache._imported_modules(str(path))
        assert want <= got, (path, want - got)
    assert {
        "backtester.engine.records",
        "backtester.rules.formulas",
        "backtester.rules.tables",
        "backtester.engine.kernel",
        "backtester",
    } <= _jitcache._imported_modules(str(odd))


def test_kernels_load_without_importing_scipy_linalg_and_blas_still_works() -> None:
    # numba's arraymath imported scipy.linalg (~0.2 s) just to ask whether a BLAS exists;
    # _jitcache answers from the installed scipy's spec. A kernel run must not import it, and a
    # numba function that does use BLAS (np.dot) must still compile and import it then.
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "import backtester as bt\n"
        "m = bt.load_market('BTC/USDT:USDT')\n"
        "g = bt.ParamGrid.zip(leverage=[2.0], side=['long'])\n"
        "bt.run_entries(m, g, entry_idx=np.array([0]), horizon_bars=24)\n"
        "print('linalg' if 'scipy.linalg' in sys.modules else 'none')\n"
        "import numba.np.arraymath as am\n"
        "from numba import njit\n"
        "d = njit(lambda a, b: np.dot(a, b))\n"
        "print(am._HAVE_BLAS, d(np.ones(3), np.arange(3.0)), 'scipy.linalg' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600
    )
    assert done.stdout.split() == ["none", "True", "3.0", "True"], done.stdout + done.stderr


def test_kernel_compiles_without_the_cache_and_says_so_when_the_hook_is_bypassed() -> None:
    # NUMBA_CACHE_LOCATOR_CLASSES makes numba use its own locators, bypassing the dependency
    # stamp (as a numba release that moved its internals would): the kernels must then not use
    # the on-disk cache, and a warning must say why.
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "InTreeCacheLocator"}
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from backtester.engine import kernel\n"
        "print(kernel.CACHE_ENABLED, kernel.simulate_span_nb._cache.__class__.__name__)\n"
        "print([str(x.message) for x in w if 'on-disk cache' in str(x.message)])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    first, second = out.splitlines()[:2]
    assert first == "False NullCache"
    assert "InTreeCacheLocator" in second and "stale" in second


def test_funding_only_for_positions_open_at_the_funding_time() -> None:
    # 1x long, Q = 10 at 100; 1 % funding at bar 2's open time (mark 100): 10*100*0.01 = 10.
    # Entered at bar 2's open (signal at close 1): not open at the funding time -> pays nothing.
    # Entered at bar 1, exit signal at close 1 -> closed at bar 2's open: it was open at the
    # funding time (funding is exchanged before the open's fills) -> pays 10.
    m = make_market([100.0] * 5, [101.0] * 5, [99.0] * 5, [100.0] * 5, funding={2: 0.01})
    late = one(run(m, FixedSignals(5, long_entries=[1]), funding=True))
    leaving = one(run(m, FixedSignals(5, long_entries=[0], long_exits=[1]), funding=True))
    assert late["funding_paid"] == 0.0
    assert leaving["funding_paid"] == pytest.approx(10.0, rel=1e-12)
    assert leaving["final_equity"] == pytest.approx(990.0, rel=1e-12)


@pytest.mark.parametrize(
    ("exchange", "lp", "left"),
    [
        # Binance: MM at the LP, close at the LP, 0.3 % clearance fee (legacy BTC rate, 2024):
        # LP 90.452; left = 1000 + 100*(LP - 100) - 0.003*100*LP = 45.226 - 27.136 = 18.090
        ("binanceusdm", LP_10X, 1000.0 + 100.0 * (LP_10X - 100.0) - 0.3 * LP_10X),
        # OKX: equity <= Q*P*(MMR + liquidation fee), the fee being the column's taker rate (0
        # here; the profile's 0.05 % only when taker_fee is None, as in bt.liquidation_price):
        # LP = (100 - 1000/100)/(1 - 0.005) = 90.4523; taken over at the bankruptcy price
        # BP = 100 - 1000/100 = 90 (the trade's exit price) -> the trader keeps nothing
        ("okx", 90.0 / 0.995, 0.0),
        # Bybit: MM valued at entry (100*100*0.005 = 50): LP = 100 - (1000 - 50)/100 = 90.5;
        # bankruptcy-price close at 90 -> nothing left
        ("bybit", 90.5, 0.0),
    ],
)
def test_liquidation_price_fee_and_close_follow_the_exchange_profile(
    exchange: str, lp: float, left: float
) -> None:
    # Long 10x at 100 with 1000 (Q = 100), flat MMR 0.5 %; bar 2's mark low 90 is below all three
    mark = (FLAT, [101.0] * 4, [99.0, 99.0, 90.0, 99.0], FLAT)
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT, mark=mark)
    r = run(
        m,
        FixedSignals(4, long_entries=[0]),
        leverage=10,
        exchange=exchange,
        liquidation_fee_rate=None,
        close_at=None,
    )
    t = r.trades()
    assert t["exit_reason"][0] == "liquidation"
    closed_at = lp if exchange == "binanceusdm" else 90.0  # liquidation / bankruptcy price
    assert t["exit_price"][0] == pytest.approx(closed_at, rel=1e-12)
    assert one(r)["final_equity"] == pytest.approx(left, abs=1e-9)
    # the liquidation happened at the LP: the mark low 90 reached it, 90.6 would not have
    survived = run(
        make_market(
            FLAT,
            [101.0] * 4,
            [99.0] * 4,
            FLAT,
            mark=(FLAT, [101.0] * 4, [99.0, 99.0, 90.6, 99.0], FLAT),
        ),
        FixedSignals(4, long_entries=[0]),
        leverage=10,
        exchange=exchange,
        liquidation_fee_rate=None,
        close_at=None,
    )
    assert one(survived)["n_liquidations"] == 0
    # the public calculator gives the same price for the same settings
    calc = bt.liquidation_price(
        exchange, "long", 100.0, 100.0, margin=1000.0, mmr=0.005, maint_amount=0.0, taker_fee=0.0
    )
    assert calc == pytest.approx(lp, rel=1e-12)


def test_funding_inside_a_coarse_bar_is_paid_by_the_position_held_after_the_open() -> None:
    # Daily bars; a 1 % funding event at 08:00 of day 2 (inside bar 2). 1x long, Q = 10 at 100,
    # mark open 100: 10*100*0.01 = 10.
    # Entered at day 2's 00:00 open (signal at close 1): open at 08:00 -> pays 10.
    # Closed at day 2's 00:00 open (exit signal at close 1): gone by 08:00 -> pays nothing.
    ts = pd.date_range("2024-06-01", periods=4, freq="1D", tz="UTC")
    bars = pd.DataFrame(
        {"timestamp": ts, "open": FLAT, "high": [101.0] * 4, "low": [99.0] * 4, "close": FLAT}
    )
    fund = pd.DataFrame({"timestamp": [ts[2] + pd.Timedelta(hours=8)], "funding_rate": [0.01]})
    m = bt.Market.from_frames(
        bars, mark="last", funding=fund, symbol="BTC/USDT:USDT", timeframe="1d"
    )
    entered = one(run(m, FixedSignals(4, long_entries=[1]), funding=True))
    left = one(run(m, FixedSignals(4, long_entries=[0], long_exits=[1]), funding=True))
    assert entered["funding_paid"] == pytest.approx(10.0, rel=1e-12)
    assert entered["final_equity"] == pytest.approx(990.0, rel=1e-12)
    assert left["funding_paid"] == 0.0
    assert left["final_equity"] == 1000.0


def test_leverage_stays_exact_when_the_wallet_pays_margin_and_fee() -> None:
    # Arrange: 50x long with the whole wallet of 1000 at 100, taker fee 0.1 %. The order costs
    # margin + fee = margin * (1 + 50 * 0.001) = 1.05 * margin <= 1000, so margin = 952.38095...,
    # notional = 50 * margin = 47,619.05, size = 476.19, fee = 47.619; leverage is exactly 50.
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT)
    # Act
    r = run(m, FixedSignals(4, long_entries=[0]), leverage=50, taker_fee=0.001)
    t = r.trades()
    # Assert
    margin = 1000.0 / 1.05
    assert t["size"][0] == pytest.approx(50 * margin / 100.0, rel=1e-12)
    assert one(r)["fees_paid"] == pytest.approx(50 * margin * 0.001, rel=1e-12)
    assert t["size"][0] * 100.0 / margin == pytest.approx(50.0, rel=1e-12)


def test_flat_rate_that_liquidates_at_entry_is_a_config_error() -> None:
    # 50x needs a maintenance rate below 1/50 = 0.02: with 0.05 the position's initial margin is
    # below its maintenance margin and it would be "liquidated" at a profit at once
    m = make_market(FLAT, [101.0] * 4, [99.0] * 4, FLAT)
    with pytest.raises(
        bt.ConfigError, match=r"leverage 50 needs maint_margin_rate < 0\.02, was 0\.05"
    ):
        run(m, FixedSignals(4, long_entries=[0]), leverage=50, maint_margin_rate=0.05)
