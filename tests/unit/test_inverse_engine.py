"""The engine on coin-margined markets (engine/inverse.py): hand-computed outcomes in the coin.

Every expected number is computed here from the inverse rules (PnL ``s·F·(1/EP − 1/P)`` coin,
fees and funding on the coin value), not from the X = 1/P transform the engine uses.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backtester as bt
from backtester.engine.enums import ExitReason
from backtester.engine.inverse import equity_usd, linear_twin, stop_fractions
from backtester.errors import ConfigError
from backtester.rules import formulas as fx

INV = "BTC/USD:BTC"


def _market(
    rows: list[tuple[float, float, float, float]],
    funding: dict[int, float] | None = None,
    exchange: str = "binancecoinm",
) -> bt.Market:
    ts = pd.date_range("2024-01-01", periods=len(rows), freq="1h", tz="UTC")
    o, h, lo, c = (np.array(x, dtype=float) for x in zip(*rows, strict=True))
    bars = pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c})
    fund = None
    if funding:
        fund = pd.DataFrame(
            {"timestamp": [ts[i] for i in funding], "funding_rate": list(funding.values())}
        )
    return bt.Market.from_frames(bars, mark="last", funding=fund, symbol=INV, exchange=exchange)


def _config(**cfg: object) -> bt.RunConfig:
    # 1 BTC wallet, half of it as margin, no fees, flat MMR 0.4% unless told otherwise
    base: dict[str, object] = dict(
        leverage=10,
        position_size=0.5,
        taker_fee=0.0,
        maker_fee=0.0,
        slippage=0.0,
        initial_cash=1.0,
        maint_margin_rate=0.004,
    )
    base.update(cfg)
    return bt.RunConfig(**base)  # type: ignore[arg-type]


def _run(
    market: bt.Market, side: str = "long", horizon: int = 10, **cfg: object
) -> bt.EntryOutcomes:
    return bt.run_entries(
        market,
        bt.ParamGrid.product(side=[side]),
        entry_idx=np.array([0]),
        horizon_bars=horizon,
        config=_config(**cfg),
    )


def test_market_knows_its_contract() -> None:
    m = _market([(50000, 50000, 50000, 50000)] * 3)
    assert (m.contract_type, m.contract_size, m.settle) == ("inverse", 100.0, "BTC")
    assert m.slice(m.index[0], m.index[1]).contract_size == 100.0
    bars = pd.DataFrame(
        {"timestamp": m.index, "open": m.open, "high": m.high, "low": m.low, "close": m.close}
    )
    m2 = bt.Market.from_frames(bars, mark="last", symbol=INV, exchange="bybit", contract_size=2)
    assert m2.contract_size == 2.0
    with pytest.raises(ConfigError, match="contract_size is for coin-margined symbols"):
        bt.Market.from_frames(bars, mark="last", symbol="BTC/USDT:USDT", contract_size=100)
    with pytest.raises(ConfigError, match="contract_size must be a finite number > 0"):
        bt.Market.from_frames(bars, mark="last", symbol=INV, contract_size=-1)


def test_twin_bars_swap_high_and_low_and_negate_funding() -> None:
    m = _market([(50000, 52000, 40000, 51000)] * 2, funding={1: 0.0001})
    t = linear_twin(m)
    assert (t.high[0], t.low[0]) == (1 / 40000, 1 / 52000)
    assert (t.mark_high[0], t.mark_low[0], t.open[0]) == (1 / 40000, 1 / 52000, 1 / 50000)
    assert t.funding_rate[0] == -0.0001
    # detail bars are turned over the same way, and intrabar="detail" runs on the twin
    ts = pd.date_range("2024-01-01", periods=8, freq="15min", tz="UTC")
    d = pd.DataFrame(
        {"timestamp": ts, "open": 50000.0, "high": 52000.0, "low": 40000.0, "close": 51000.0}
    )
    dm = bt.Market.from_frames(d, mark="last", symbol=INV, exchange="binancecoinm")
    bars = pd.DataFrame(
        {"timestamp": m.index, "open": m.open, "high": m.high, "low": m.low, "close": m.close}
    )
    md = bt.Market.from_frames(bars, mark="last", symbol=INV, exchange="binancecoinm", detail=dm)
    td = linear_twin(md).detail
    assert td is not None
    assert (td.high[0], td.low[0]) == (1 / 40000, 1 / 52000)
    out = _run(md, horizon=2, intrabar="detail", stop_loss=0.1)
    assert out.reason[0, 0] == ExitReason.LIQUIDATION  # 10x: LP ~45.6k is above the 45k stop


def test_10x_long_drops_through_its_liquidation_price() -> None:
    # 0.5 BTC margin at 10x: coin value 5 BTC at 50,000, F = 250,000 USD. Flat MMR 0.4%:
    # LP = F·(1 + 0.004)/(0.5 + F/EP) = 251,000/5.5 = 45,636.36. Equity at LP = MM = 0.004·F/LP
    # = 0.0219 BTC; the 0.5% clearance fee (0.0274 BTC) takes all of it: margin lost, 0.5 BTC left.
    m = _market([(50000, 50000, 50000, 50000), (50000, 50000, 45000, 45500), (45500,) * 4])
    out = _run(m)
    assert out.reason[0, 0] == ExitReason.LIQUIDATION
    assert out.exit_idx[0, 0] == 1
    assert out.final_equity[0, 0] == pytest.approx(0.5, abs=1e-12)
    lp = bt.liquidation_price(
        "binancecoinm", "long", 50000, 2500, margin=0.5, mmr=0.004, symbol=INV
    )
    assert lp == pytest.approx(251000 / 5.5, abs=0.05)
    # one tick above the liquidation price the position survives
    safe = _market([(50000, 50000, 50000, 50000), (50000, 50000, 45637.0, 45700), (45700,) * 4])
    out = _run(safe, horizon=3)
    assert out.reason[0, 0] != ExitReason.LIQUIDATION
    # equity at the close: 0.5 wallet + F·(1/50,000 − 1/45,700) coin
    assert out.final_equity[0, 0] == pytest.approx(
        1.0 + 250000 * (1 / 50000 - 1 / 45700), rel=1e-12
    )


def test_short_pnl_fee_and_funding_in_coin() -> None:
    # short 0.5 BTC margin at 10x at 50,000: F = 250,000 USD. Entry taker fee 0.05% of 5 BTC =
    # 0.0025 BTC (the margin shrinks to wallet/(1 + 10·fee) when the wallet must pay both: with
    # position_size 0.5 it need not). Funding +0.01% at bar 2 on mark 48,000: the short RECEIVES
    # F/48,000·0.0001 = 0.000520833 BTC. At the horizon close 40,000 the short's PnL is
    # F·(1/40,000 − 1/50,000) = 1.25 BTC (valued at the mark close).
    rows = [(50000,) * 4, (48000,) * 4, (48000, 48000, 40000, 40000), (40000,) * 4]
    m = _market(rows, funding={2: 0.0001})
    out = _run(m, side="short", horizon=4, taker_fee=0.0005)
    fee = 0.0005 * 5.0
    funding = -250000 / 48000 * 0.0001
    assert out.fees_paid[0, 0] == pytest.approx(fee, rel=1e-12)
    assert out.funding_paid[0, 0] == pytest.approx(funding, rel=1e-12)
    expect = 1.0 - fee - funding + 250000 * (1 / 40000 - 1 / 50000)
    assert out.final_equity[0, 0] == pytest.approx(expect, rel=1e-12)
    usd = equity_usd(out.final_equity[0], m, at=np.array([3]))
    assert usd[0] == pytest.approx(expect * 40000, rel=1e-12)


def test_long_funding_payment_in_coin() -> None:
    rows = [(50000,) * 4, (50000,) * 4, (50000,) * 4]
    out = _run(_market(rows, funding={1: 0.0001}), horizon=3)
    # a long pays F/mark·rate = 250,000/50,000·0.0001 = 0.0005 BTC
    assert out.funding_paid[0, 0] == pytest.approx(0.0005, rel=1e-12)
    assert out.final_equity[0, 0] == pytest.approx(1.0 - 0.0005, rel=1e-12)


@pytest.mark.parametrize("side", ["long", "short"])
def test_stop_loss_fills_at_the_price_fraction(side: str) -> None:
    # stop 5%: a long's at 47,500, a short's at 52,500 (fractions of P, not of 1/P)
    s = 1 if side == "long" else -1
    stop = 50000 * (1 - s * 0.05)
    rows = [(50000,) * 4, (50000, 53000, 47000, 50000), (50000,) * 4]
    out = _run(_market(rows), side=side, horizon=3, stop_loss=0.05, maint_margin_rate=0.001)
    assert out.reason[0, 0] == ExitReason.STOP_LOSS
    pnl = s * 250000 * (1 / 50000 - 1 / stop)
    assert out.final_equity[0, 0] == pytest.approx(1.0 + pnl, rel=1e-9)
    # a bar that reaches 5.0 % minus a dollar does not stop
    near = 50000 * (1 - s * 0.05) + s * 1.0
    rows = [(50000,) * 4, (50000, max(near, 50000), min(near, 50000), 50000), (50000,) * 4]
    out = _run(_market(rows), side=side, horizon=3, stop_loss=0.05, maint_margin_rate=0.001)
    assert out.reason[0, 0] != ExitReason.STOP_LOSS


@pytest.mark.parametrize("side", ["long", "short"])
def test_take_profit_fills_at_the_price_fraction(side: str) -> None:
    s = 1 if side == "long" else -1
    tp = 50000 * (1 + s * 0.1)
    far = 50000 * (1 + s * 0.12)
    rows = [(50000,) * 4, (50000, max(far, 50000), min(far, 50000), 50000), (50000,) * 4]
    out = _run(_market(rows), side=side, horizon=3, take_profit=0.1, maint_margin_rate=0.001)
    assert out.reason[0, 0] == ExitReason.TAKE_PROFIT
    assert out.final_equity[0, 0] == pytest.approx(
        1.0 + s * 250000 * (1 / 50000 - 1 / tp), rel=1e-9
    )


def test_slippage_is_a_fraction_of_the_coin_value() -> None:
    # a long buys at P/(1 − slip): 50,000/0.999; 10x of 0.5 BTC = 5 BTC of coin value
    rows = [(50000,) * 4, (50000,) * 4]
    out = _run(_market(rows), horizon=2, slippage=0.001)
    entry = 50000 / 0.999
    face = 5.0 * entry
    assert out.final_equity[0, 0] == pytest.approx(1.0 + face * (1 / entry - 1 / 50000), rel=1e-12)


def test_survival_study_runs_on_an_inverse_market() -> None:
    rng = np.random.default_rng(0)
    n = 24 * 40
    p = 50000 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    rows = [(p[i], p[i] * 1.002, p[i] * 0.998, p[i]) for i in range(n)]
    m = _market(rows)
    study = bt.survival_study(m, leverage=[2, 10], horizon="7d", maint_margin_rate=0.005)
    table = study.table()
    assert table["n_entries"].tolist() == [study.n_entries] * 2
    assert {"mean_final_equity_usd", "loss_mean_usd"} <= set(table.columns)
    assert table["survival"].between(0, 1).all()


def test_an_inverse_study_states_the_wallet_in_the_coin_and_in_usd() -> None:
    # Arrange: day 1 opens at 50,000 and closes its last bar at 40,000; day 2 is flat at 40,000.
    # A 1x long of the whole 1 BTC wallet (face 50,000 USD on day 1), no fees, no funding:
    # day 1: PnL = 50,000 * (1/50,000 - 1/40,000) = -0.25 BTC -> 0.75 BTC = 30,000 USD of the
    #        50,000 USD it started with (0.6 in USD; liquidation at about 25,100 is not reached)
    # day 2: nothing moves -> 1 BTC = 40,000 USD of 40,000 (1.0 in the coin and in USD)
    rows = [(50000.0,) * 4] * 23 + [(50000.0, 50000.0, 40000.0, 40000.0)] + [(40000.0,) * 4] * 24
    m = _market(rows)
    # Act
    study = bt.survival_study(
        m, leverage=1, horizon="1D", entry_every="1D", initial_cash=1.0, taker_fee=0.0,
        maker_fee=0.0, slippage=0.0, funding=False, maint_margin_rate=0.004,
    )  # fmt: skip
    row = study.table().iloc[0]
    # Assert: the coin says 0.875 on average, USD says 0.8; only USD lost 40 % on day 1
    assert row["n_entries"] == 2 and row["n_liquidated"] == 0
    assert row["mean_final_equity"] == pytest.approx((0.75 + 1.0) / 2, rel=1e-12)
    assert row["mean_final_equity_usd"] == pytest.approx((0.6 + 1.0) / 2, rel=1e-12)
    assert row["loss_mean_usd"] == pytest.approx(0.4 / 2, rel=1e-12)
    assert row["loss_mean"] == pytest.approx(0.25 / 2, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from([1, -1]),
    sl=st.floats(0.001, 0.9),
    tp=st.floats(0.001, 5.0),
    ep=st.floats(100.0, 1e6),
)
def test_twin_stop_levels_are_the_price_levels(side: int, sl: float, tp: float, ep: float) -> None:
    # the twin (side −s on X) puts its stop at X_EP·(1 − (−s)·sl_x): exactly 1/(EP·(1 − s·sl))
    sl_x, tp_x, ts_x = stop_fractions(
        np.array([side]), np.array([sl]), np.array([tp]), np.array([sl])
    )
    x = 1 / ep
    assert 1 / (x * (1 + side * sl_x[0])) == pytest.approx(ep * (1 - side * sl), rel=1e-12)
    assert 1 / (x * (1 + side * ts_x[0])) == pytest.approx(ep * (1 - side * sl), rel=1e-12)
    if side == 1 or tp < 1:
        assert 1 / (x * (1 - side * tp_x[0])) == pytest.approx(ep * (1 + side * tp), rel=1e-9)
    else:
        assert math.isinf(tp_x[0])


@settings(max_examples=100, deadline=None)
@given(
    side=st.sampled_from(["long", "short"]),
    lev=st.floats(2.0, 40.0),  # coin value <= 20 BTC: tiers up to 50x
    drop=st.floats(0.0, 0.6),
)
def test_engine_liquidates_exactly_at_the_direct_price(side: str, lev: float, drop: float) -> None:
    # the engine liquidates iff the bar's adverse mark extreme reaches the direct inverse LP
    s = 1 if side == "long" else -1
    face = 0.5 * lev * 50000
    lp = face * (0.004 + s) / (0.5 + s * face / 50000)
    extreme = 50000 * (1 - s * drop)
    rows = [(50000,) * 4, (50000, max(extreme, 50000), min(extreme, 50000), 50000), (50000,) * 4]
    out = _run(_market(rows), side=side, horizon=3, leverage=lev)
    hit = (extreme <= lp) if s == 1 else (extreme >= lp)
    assert not out.rejected[0, 0]
    if abs(extreme - lp) > 1e-6 * lp:
        assert (out.reason[0, 0] == ExitReason.LIQUIDATION) == hit
    got = fx.inverse_liquidation_price_nb(
        fx.BINANCE,
        s,
        50000.0,
        face,
        0.5,
        0.0,
        0.0,
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        False,
        0.004,
        0.0,
    )
    assert got == pytest.approx(lp, rel=1e-12)


class _Enter:
    """Enter at the close of bar 0 (fills at bar 1's open); ``short`` picks the side."""

    PARAMS: ClassVar[dict[str, list[bool]]] = {"short": [False]}

    @staticmethod
    def signals(market: bt.Market, grid: bt.ParamGrid) -> bt.Signals:
        assert market.open[0] > 1.0  # the strategy sees the market's own prices, not 1/P
        n = market.n_bars
        le = np.zeros((n, grid.n_cols), dtype=bool)
        se = np.zeros((n, grid.n_cols), dtype=bool)
        for c, short in enumerate(grid.values("short")):
            (se if short else le)[0, c] = True
        return bt.Signals(long_entries=le, short_entries=se)


class _Both(_Enter):
    @staticmethod
    def signals(market: bt.Market, grid: bt.ParamGrid) -> bt.Signals:
        n = market.n_bars
        le = np.zeros((n, grid.n_cols), dtype=bool)
        se = np.zeros((n, grid.n_cols), dtype=bool)
        le[0], se[1] = True, True
        return bt.Signals(long_entries=le, short_entries=se)


def test_run_sweep_on_an_inverse_market_reports_trades_in_price_and_contracts() -> None:
    rows = [(50000,) * 4, (50000,) * 4, (50000, 60000, 50000, 60000), (60000,) * 4]
    m = _market(rows)
    cfg = _config(leverage=5)
    res = bt.run_sweep(m, _Enter, bt.ParamGrid.product(short=[False, True]), config=cfg)
    assert res.market is m
    tr = res.trade_records() if hasattr(res, "trade_records") else None
    trades = res.trades()
    assert len(trades) == 2
    face = 0.5 * 5 * 50000  # 125,000 USD = 1,250 contracts of 100 USD
    long_pnl = face * (1 / 50000 - 1 / 60000)  # +0.4167 BTC; the short (LP 62,250) loses it
    st_ = res.stats()
    final = st_["final_equity"].to_numpy()
    assert final == pytest.approx([1.0 + long_pnl, 1.0 - long_pnl], rel=1e-12)
    assert tr is None or len(tr) == 2
    rec = res._sim.run(np.array([0, 1]), trade_cap=4)[1]
    assert list(rec["side"]) == [1, -1]
    assert rec["entry_price"] == pytest.approx([50000.0, 50000.0], rel=1e-12)
    assert rec["size"] == pytest.approx([1250.0, 1250.0], rel=1e-12)
    assert rec["pnl"] == pytest.approx([long_pnl, -long_pnl], rel=1e-12)


def test_run_sweep_refuses_stops_on_two_sided_inverse_columns() -> None:
    m = _market([(50000,) * 4] * 4)
    cfg = bt.RunConfig(leverage=2, stop_loss=0.05, maint_margin_rate=0.004)
    with pytest.raises(ConfigError, match="need columns that trade one side"):
        bt.run_sweep(m, _Both, config=cfg)
    assert (
        bt.run_sweep(m, _Both, config=bt.RunConfig(leverage=2, maint_margin_rate=0.004)).n_cols == 1
    )


@settings(max_examples=100, deadline=None)
@given(
    side=st.sampled_from(["long", "short"]),
    lev=st.floats(1.0, 20.0),
    move=st.floats(-0.04, 0.04),
    rate=st.floats(-0.001, 0.001),
    fee=st.floats(0.0, 0.001),
    slip=st.floats(0.0, 0.002),
)
def test_engine_pnl_fees_funding_agree_with_direct_inverse_formulas(
    side: str, lev: float, move: float, rate: float, fee: float, slip: float
) -> None:
    # entry at bar 0's open (50,000, slippage on the coin value), funding at bar 1's open on the
    # mark 50,000, valued at the horizon's close P1 = 50,000·(1 + move): no liquidation possible
    s = 1 if side == "long" else -1
    p1 = 50000 * (1 + move)
    rows = [(50000.0,) * 4, (50000.0,) * 4, (50000.0,) * 4, (p1,) * 4]
    out = _run(
        _market(rows, funding={1: rate}),
        side=side,
        horizon=4,
        leverage=lev,
        taker_fee=fee,
        slippage=slip,
        maint_margin_rate=0.001,
        position_size=0.5,
    )
    entry = 50000 / (1 - s * slip) if s == 1 else 50000 / (1 + slip)
    coin = 0.5 * lev  # coin value of the entry (margin 0.5 BTC × leverage)
    face = coin * entry
    entry_fee = fee * coin
    funding = s * face / 50000 * rate
    expect = 1.0 - entry_fee - funding + s * face * (1 / entry - 1 / p1)
    assert out.fees_paid[0, 0] == pytest.approx(entry_fee, rel=1e-9, abs=1e-15)
    assert out.funding_paid[0, 0] == pytest.approx(funding, rel=1e-9, abs=1e-15)
    assert out.final_equity[0, 0] == pytest.approx(expect, rel=1e-9)


def test_an_account_refuses_an_inverse_leg() -> None:
    """Accounts hold linear perpetuals only: an inverse leg is refused, not run as linear."""
    m = _market([(100.0, 101.0, 99.0, 100.0)] * 4)
    with pytest.raises(ConfigError, match=r"legs: BTC/USD:BTC is a coin-margined \(inverse\)"):
        bt.run_account_entries(
            m,
            bt.ParamGrid.product(leverage=[2.0]),
            legs={INV: 0.5},
            entry_idx=[0],
            horizon_bars=2,
        )


def test_the_report_of_an_inverse_study_says_the_coin_and_usd(tmp_path: object) -> None:
    from pathlib import Path

    rows = [(50000.0,) * 4] * 23 + [(50000.0, 50000.0, 40000.0, 40000.0)] + [(40000.0,) * 4] * 24
    study = bt.survival_study(
        _market(rows), leverage=(1, 2), horizon="1D", entry_every="1D", maint_margin_rate=0.004
    )
    # the default wallet is 100 USD in BTC at the first open: 0.002 BTC
    assert study.initial_cash == pytest.approx(100 / 50000, rel=1e-15)
    page = Path(study.report(str(Path(str(tmp_path)) / "inv"), comparisons=False)).read_text()
    assert "Coin-margined: the wallet, margin, PnL, fees and funding are in BTC" in page
    assert "starting wallet is 0.002 BTC" in page
