"""Accounts of several legs in one wallet (issue 10.2): bt.run_account_entries."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import backtester as bt
from backtester.config import RunConfig
from backtester.engine import run as engine_run
from backtester.engine.enums import CloseAt, ExitReason
from backtester.engine.layout import FParam, IParam
from backtester.params import ParamGrid
from tests.unit.reference import tables_from_rules
from tests.unit.reference_accounts import simulate_account_reference

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _market(
    symbol: str,
    closes: list[float],
    *,
    exchange: str = "binanceusdm",
    spread: float = 0.01,
    basis: float = 0.0,
    funding: dict[int, float] | None = None,
) -> bt.Market:
    # bars from closes: open = previous close, high/low a `spread` beyond; mark = last + basis
    o = [closes[0], *closes[:-1]]
    h = [max(a, b) * (1 + spread) for a, b in zip(o, closes, strict=True)]
    lo = [min(a, b) * (1 - spread) for a, b in zip(o, closes, strict=True)]
    ts = pd.date_range("2024-06-01", periods=len(closes), freq="1h", tz="UTC")
    bars = pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": closes})
    mark = bars.copy()
    for c in ("open", "high", "low", "close"):
        mark[c] = bars[c] * (1 + basis)
    fund = None
    if funding:
        at = sorted(funding)
        fund = pd.DataFrame(
            {"timestamp": [ts[i] for i in at], "funding_rate": [funding[i] for i in at]}
        )
    return bt.Market.from_frames(
        bars, mark=mark, funding=fund, symbol=symbol, exchange=exchange, timeframe="1h"
    )


def _walk(seed: int, n: int, start: float, vol: float) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(start * np.exp(np.cumsum(rng.normal(0.0, vol, n))))


def _quiet(fn: Any, *args: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        return fn(*args, **kw)


# ------------------------------------------------------------------ (1) one leg == run_entries
@pytest.mark.parametrize("exchange", ["binanceusdm", "okx", "bybit"])
@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_one_leg_account_equals_the_single_run(exchange: str, mode: str) -> None:
    btc = _market(BTC, _walk(1, 400, 60_000.0, 0.02), exchange=exchange, funding={5: 0.001})
    eth = _market(ETH, _walk(2, 400, 3_000.0, 0.02), exchange=exchange)
    ms = bt.MarketSet.from_markets([btc, eth])
    grid = ParamGrid.product(
        leverage=[3.0, 10.0, 25.0],
        margin_mode=[mode],
        stop_loss=[None, 0.03],
        close_at=[None, "bankruptcy"],
        slippage=[0.0, 0.001],
    )
    entries = np.arange(0, 380, 7)
    one = _quiet(
        bt.run_account_entries, ms, grid, legs={BTC: 1.0}, entry_idx=entries, horizon_bars=48
    )
    ref = _quiet(bt.run_entries, ms[BTC], grid, entry_idx=entries, horizon_bars=48)
    assert np.array_equal(one.final_equity, ref.final_equity)
    assert np.array_equal(one.exit_idx, ref.exit_idx)
    assert np.array_equal(one.reason, ref.reason)
    assert np.array_equal(one.min_equity, ref.min_equity)
    assert np.array_equal(one.rejected, ref.rejected)
    np.testing.assert_allclose(one.fees_paid, ref.fees_paid, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one.funding_paid, ref.funding_paid, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one.insurance_draw, ref.insurance_draw, rtol=1e-12, atol=1e-12)
    assert np.array_equal(one.ambiguous_bars, ref.ambiguous_bars)
    liq = ref.reason == ExitReason.LIQUIDATION
    assert liq.any() and (ref.reason == ExitReason.STOP_LOSS).any()
    assert np.array_equal(one.liquidated_leg >= 0, liq)
    assert set(np.unique(one.liquidated_leg[liq])) == {0 if mode == "isolated" else 1}


# ----------------------------------------------- (2) isolated == the legs run side by side
def test_isolated_two_legs_equal_the_two_single_runs() -> None:
    btc = _market(BTC, _walk(3, 300, 60_000.0, 0.03), funding={4: 0.0005, 12: -0.001})
    eth = _market(ETH, _walk(4, 300, 3_000.0, 0.03), funding={4: 0.0002})
    ms = bt.MarketSet.from_markets([btc, eth])
    psize = 0.8
    legs = {BTC: 0.6, ETH: -0.4}
    grid = ParamGrid.product(leverage=[5.0, 20.0], stop_loss=[None, 0.05])
    cfg = RunConfig(margin_mode="isolated", position_size=psize)
    entries = np.arange(0, 280, 5)
    acc = bt.run_account_entries(
        ms, grid, legs=legs, entry_idx=entries, horizon_bars=24, config=cfg
    )
    runs = {}
    for sym, w in legs.items():
        c = cfg.replace(position_size=psize * abs(w), side="long" if w > 0 else "short")
        runs[sym] = bt.run_entries(ms[sym], grid, entry_idx=entries, horizon_bars=24, config=c)
    cash = cfg.initial_cash
    side_by_side = cash + sum(r.final_equity - cash for r in runs.values())
    np.testing.assert_allclose(acc.final_equity, side_by_side, rtol=1e-12)
    fees = sum(r.fees_paid for r in runs.values())
    np.testing.assert_allclose(acc.fees_paid, fees, rtol=1e-12)
    first = np.minimum(runs[BTC].exit_idx, runs[ETH].exit_idx)
    assert np.array_equal(acc.exit_idx, first)
    liq_any = np.zeros_like(acc.rejected)
    for r in runs.values():
        liq_any |= r.reason == ExitReason.LIQUIDATION
    assert liq_any.any()
    assert np.array_equal(acc.liquidated, liq_any)
    # a liquidated leg costs its margin only: the account keeps at least the other leg's margin
    lost_btc = (runs[BTC].reason == ExitReason.LIQUIDATION) & (
        runs[ETH].reason != ExitReason.LIQUIDATION
    )
    assert lost_btc.any()
    assert (acc.final_equity[lost_btc] > cash * (1 - psize * 0.6) - 1e-6 - cash * psize * 0.4).all()


# --------------------------------------------------- (3) the Binance example of §7.5 by hand
def test_binance_two_leg_cross_example_of_exchange_rules_7_5() -> None:
    # exchange-rules.md §7.5, Binance, 2024-05-30 brackets (BTC and ETH: tier 1 0-50k at 0.40 %,
    # cum 0; tier 2 50k-600k at 0.50 %, cum 50). Wallet 12,000; both long 10x with 6,000 each:
    # BTC Q = 1 at 60,000, ETH Q = 20 at 3,000 (taker fee 0, no funding, as in §7.5).
    # ETH's mark goes to 2,850 and stays there: ETH MM = 57,000 x 0.5 % - 50 = 235, UPNL -3,000;
    # BTC LP = (12,000 - 235 - 3,000 + 50 - 60,000) / (0.005 - 1) = 51,442.21 (notional in tier 2).
    # There MB = 12,000 - 3,000 - 8,557.79 = 442.21 = 235 + 207.21 = sum MM.
    lp = (12_000 - 235 - 3_000 + 50 - 60_000) / (0.005 - 1)
    assert lp == pytest.approx(51_442.21, abs=0.005)
    # bars: 0 entry (ETH drops to 2,850 inside it); 1 flat; 2 BTC falls through 51,442.21 to
    # 51,000 with ETH held at 2,850; 3 flat
    ts = pd.date_range("2024-06-01", periods=4, freq="1h", tz="UTC")

    def frame(o: list[float], h: list[float], lo: list[float], c: list[float]) -> pd.DataFrame:
        return pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c})

    btc_bars = frame(
        [60_000.0, 60_000.0, 60_000.0, 51_000.0],
        [60_000.0, 60_000.0, 60_000.0, 51_000.0],
        [60_000.0, 60_000.0, 51_000.0, 51_000.0],
        [60_000.0, 60_000.0, 51_000.0, 51_000.0],
    )
    eth_bars = frame(
        [3_000.0, 2_850.0, 2_850.0, 2_850.0],
        [3_000.0, 2_850.0, 2_850.0, 2_850.0],
        [2_850.0, 2_850.0, 2_850.0, 2_850.0],
        [2_850.0, 2_850.0, 2_850.0, 2_850.0],
    )
    ms = bt.MarketSet.from_markets(
        [
            bt.Market.from_frames(b, mark=b, symbol=sym, exchange="binanceusdm", timeframe="1h")
            for sym, b in ((BTC, btc_bars), (ETH, eth_bars))
        ]
    )
    cfg = RunConfig(
        initial_cash=12_000.0,
        leverage=10.0,
        position_size=1.0,
        taker_fee=0.0,
        tier_table="2024-05-30",
        funding=False,
    )
    legs = {BTC: 0.5, ETH: 0.5}
    g = ParamGrid.product(margin_mode=["cross", "isolated"], liquidation_fee_rate=[0.0, None])
    out = bt.run_account_entries(
        ms, g, legs=legs, entry_idx=np.array([0]), horizon_bars=4, config=cfg
    )
    cross_free, cross_fee, iso_free, iso_fee = range(4)
    # cross: the account liquidates in bar 2, BTC at its solved price and ETH at 2,850
    assert out.liquidation_idx[cross_free, 0] == 2
    assert out.liquidated_leg[cross_free, 0] == 2  # K = 2: the account
    left = 12_000 - 3_000 - (60_000 - lp)  # 442.21 = sum MM
    assert left == pytest.approx(442.21, abs=0.005)
    assert out.final_equity[cross_free, 0] == pytest.approx(left, rel=1e-9)
    # with the 2024 clearance rates of the table (BTC 0.3 %, ETH 0.5 %): 154.33 + 285.00 = 439.33
    fee = 0.003 * lp + 0.005 * 20 * 2_850
    assert fee == pytest.approx(439.33, abs=0.005)
    assert out.final_equity[cross_fee, 0] == pytest.approx(left - fee, rel=1e-9)  # keeps 2.88
    assert out.fees_paid[cross_fee, 0] == pytest.approx(fee, rel=1e-9)
    assert out.ambiguous_bars[cross_free] == 0  # ETH's bar is flat: no assumption decided
    assert {(r["symbol"], r["table_id"]) for r in out.rules} == {
        (BTC, "binanceusdm/BTC_USDT_USDT/2024-05-30"),
        (ETH, "binanceusdm/ETH_USDT_USDT/2024-05-30"),
    }
    # isolated (§7.5): BTC alone liquidates at 54,221.11 (in bar 2): of its 6,000 it keeps
    # only its maintenance margin there (54,221.11 x 0.5 % - 50 = 221.11), less the clearance
    # fee (0.3 %: 162.66); ETH (6,000 of margin, UPNL -3,000) goes on; the unused wallet is 0
    iso_lp = (6_000 + 50 - 60_000) / (0.005 - 1)
    assert iso_lp == pytest.approx(54_221.11, abs=0.005)
    assert out.liquidated_leg[iso_free, 0] == 0
    assert out.liquidation_idx[iso_free, 0] == 2
    kept = iso_lp * 0.005 - 50
    assert kept == pytest.approx(221.11, abs=0.005)
    eth = 6_000 - 3_000
    assert out.final_equity[iso_free, 0] == pytest.approx(eth + kept, rel=1e-9)
    iso_fee_paid = 0.003 * iso_lp
    assert iso_fee_paid == pytest.approx(162.66, abs=0.005)
    assert out.final_equity[iso_fee, 0] == pytest.approx(eth + kept - iso_fee_paid, rel=1e-9)
    assert out.loss[cross_fee, 0] == pytest.approx(1 - (left - fee) / 12_000, rel=1e-9)


def test_the_example_liquidates_exactly_at_the_solved_btc_price() -> None:
    # §7.5 again, with BTC's bar low on either side of 51,442.21 by one cent
    lp = (12_000 - 235 - 3_000 + 50 - 60_000) / (0.005 - 1)
    for low, liquidated in ((lp + 0.01, False), (lp - 0.01, True)):
        ts = pd.date_range("2024-06-01", periods=3, freq="1h", tz="UTC")
        b = pd.DataFrame(
            {
                "timestamp": ts,
                "open": [60_000.0] * 3,
                "high": [60_000.0] * 3,
                "low": [60_000.0, low, 60_000.0],
                "close": [60_000.0] * 3,
            }
        )
        e = pd.DataFrame(
            {
                "timestamp": ts,
                "open": [3_000.0, 2_850.0, 2_850.0],
                "high": [3_000.0, 2_850.0, 2_850.0],
                "low": [2_850.0] * 3,
                "close": [2_850.0] * 3,
            }
        )
        ms = bt.MarketSet.from_markets(
            [
                bt.Market.from_frames(f, mark=f, symbol=s, exchange="binanceusdm", timeframe="1h")
                for s, f in ((BTC, b), (ETH, e))
            ]
        )
        cfg = RunConfig(
            initial_cash=12_000.0,
            leverage=10.0,
            taker_fee=0.0,
            tier_table="2024-05-30",
            margin_mode="cross",
            funding=False,
        )
        out = bt.run_account_entries(
            ms,
            ParamGrid.product(leverage=[10.0]),
            legs={BTC: 0.5, ETH: 0.5},
            entry_idx=np.array([0]),
            horizon_bars=3,
            config=cfg,
        )
        assert bool(out.liquidated[0, 0]) is liquidated


# ------------------------------------------------------------- (4) kernel == reference
def _path_market(
    symbol: str,
    subs: list[float],
    *,
    per: int,
    exchange: str,
    spread: float,
    basis: float,
    funding: dict[int, float],
    detail_from: int | None,
) -> bt.Market:
    # 15-minute bars from the closes `subs` (open = previous close, high/low a `spread` beyond),
    # hourly bars aggregated from each `per` of them (so the detail bars reach the bar's
    # extremes), mark = last·(1 + basis); detail bars from hour `detail_from` on (None: none)
    o = [subs[0], *subs[:-1]]
    h = [max(a, b) * (1 + spread) for a, b in zip(o, subs, strict=True)]
    lo = [min(a, b) * (1 - spread) for a, b in zip(o, subs, strict=True)]
    n = len(subs) // per
    ts = pd.date_range("2024-06-01", periods=n, freq="1h", tz="UTC")
    bars = pd.DataFrame(
        {
            "timestamp": ts,
            "open": [o[j * per] for j in range(n)],
            "high": [max(h[j * per : (j + 1) * per]) for j in range(n)],
            "low": [min(lo[j * per : (j + 1) * per]) for j in range(n)],
            "close": [subs[(j + 1) * per - 1] for j in range(n)],
        }
    )
    mark = bars.copy()
    for c in ("open", "high", "low", "close"):
        mark[c] = bars[c] * (1 + basis)
    fund = None
    if funding:
        at = sorted(funding)
        fund = pd.DataFrame(
            {"timestamp": [ts[i] for i in at], "funding_rate": [funding[i] for i in at]}
        )
    detail = None
    if detail_from is not None:
        d0 = detail_from * per
        d_ts = pd.date_range(ts[0], periods=len(subs), freq="15min")[d0:]
        d_bars = pd.DataFrame(
            {"timestamp": d_ts, "open": o[d0:], "high": h[d0:], "low": lo[d0:], "close": subs[d0:]}
        )
        detail = bt.Market.from_frames(
            d_bars, mark="last", symbol=symbol, exchange=exchange, timeframe="15m"
        )
    return bt.Market.from_frames(
        bars,
        mark=mark,
        funding=fund,
        symbol=symbol,
        exchange=exchange,
        timeframe="1h",
        detail=detail,
    )


@st.composite
def _accounts(draw: Any) -> tuple[bt.MarketSet, dict[str, float], ParamGrid, RunConfig]:
    exchange = draw(st.sampled_from(["binanceusdm", "okx", "bybit"]))
    n = draw(st.integers(4, 12))
    k = draw(st.integers(1, 3))
    per = 4
    symbols = [BTC, ETH, "SOL/USDT:USDT"][:k]
    step = st.floats(-0.06, 0.06, allow_nan=False)
    intrabar = draw(st.sampled_from(["worst", "detail"]))
    markets = []
    for j, sym in enumerate(symbols):
        rets = draw(st.lists(step, min_size=n * per, max_size=n * per))
        subs = list(100.0 * (10.0**j) * np.exp(np.cumsum(rets)))
        fund = draw(
            st.dictionaries(
                st.integers(0, n - 1), st.sampled_from([-0.002, 0.001, 0.003]), max_size=3
            )
        )
        markets.append(
            _path_market(
                sym,
                subs,
                per=per,
                exchange=exchange,
                spread=draw(st.sampled_from([0.0, 0.003, 0.01])),
                basis=draw(st.sampled_from([0.0, 0.002, -0.002])),
                funding=fund,
                # detail from the first hour, or a later one (the legs' detail then differs)
                detail_from=draw(st.sampled_from([0, 0, 0, 2])) if intrabar == "detail" else None,
            )
        )
    raw = draw(
        st.lists(st.sampled_from([-0.6, -0.3, -0.1, 0.1, 0.3, 0.5, 1.0]), min_size=k, max_size=k)
    )
    total = sum(abs(w) for w in raw)
    weights = [w / total if total > 1 else w for w in raw]
    mode = draw(st.sampled_from(["isolated", "cross"]))
    cfg = RunConfig(
        margin_mode=mode,
        intrabar=intrabar,
        position_size=draw(st.sampled_from([0.2, 0.5, 0.9, 1.0])),
        stop_loss=draw(st.sampled_from([None, None, 0.02, 0.08])),
        take_profit=draw(st.sampled_from([None, None, 0.03, 0.1])),
        trailing_stop=draw(st.sampled_from([None, None, 0.02, 0.05])),
        stop_trigger=draw(st.sampled_from(["last", "mark"])),
        slippage=draw(st.sampled_from([0.0, 0.001])),
        close_at=draw(st.sampled_from([None, "liquidation", "bankruptcy"])),
        negative_balance=draw(st.sampled_from(["floor", "owed"])) if mode == "cross" else "floor",
        # Binance: the dated tier tables of BTC, ETH and SOL too (tiers by notional)
        maint_margin_rate=draw(
            st.sampled_from([None, 0.005, 0.02] if exchange == "binanceusdm" else [0.005, 0.02])
        ),
        liquidation_fee_rate=draw(st.sampled_from([None, 0.0, 0.01])),
        funding=draw(st.booleans()),
    )
    grid = ParamGrid.product(
        leverage=draw(
            st.lists(st.sampled_from([2.0, 10.0, 30.0, 40.0]), min_size=1, max_size=2, unique=True)
        )
    )
    return bt.MarketSet.from_markets(markets), dict(zip(symbols, weights, strict=True)), grid, cfg


def _resolved(
    ms: bt.MarketSet, legs: dict[str, float], grid: ParamGrid, cfg: RunConfig
) -> list[tuple[dict[str, Any], list[Any]]]:
    # each column's settings as the kernel received them (fees, close_at, convention resolved by
    # engine.run exactly as for a single market) and each leg's tier tables
    names = engine_run._split_names(grid, (), allow_strategy=False)
    cols = engine_run._settings_columns(grid, cfg, names)
    built = [engine_run._build_rules(ms[sym], cols) for sym in legs]
    fp, ip = engine_run._encode(cols, built[0][0], built[0][1], names)
    out = []
    for c in range(grid.n_cols):
        s = {name: cols[name][c] for name in cols}
        s["taker_fee"] = float(fp[int(FParam.TAKER_FEE), c])
        s["maker_fee"] = float(fp[int(FParam.MAKER_FEE), c])
        s["liquidation_fee_rate"] = float(fp[int(FParam.LIQ_FEE_RATE), c])
        s["close_at"] = (
            "bankruptcy" if ip[int(IParam.CLOSE_AT), c] == CloseAt.BANKRUPTCY else "liquidation"
        )
        s["convention"] = int(ip[int(IParam.CONVENTION), c])
        for name in ("stop_loss", "take_profit", "trailing_stop", "maint_margin_rate"):
            if s[name] is None:
                s[name] = math.nan
        out.append((s, [tables_from_rules(rules[keys[c]]) for rules, keys in built]))
    return out


@settings(max_examples=int(os.environ.get("ACCOUNTS_EXAMPLES", "150")), deadline=None)
@given(case=_accounts(), first=st.integers(0, 3), horizon=st.integers(1, 12))
def test_kernel_matches_the_reference(case: Any, first: int, horizon: int) -> None:
    ms, legs, grid, cfg = case
    entries = np.arange(min(first, ms.n_bars - 1), ms.n_bars, 2)
    out = _quiet(
        bt.run_account_entries,
        ms,
        grid,
        legs=legs,
        entry_idx=entries,
        horizon_bars=horizon,
        config=cfg,
    )
    markets = [ms[sym] for sym in legs]
    for c, (s, tables) in enumerate(_resolved(ms, legs, grid, cfg)):
        for e, start in enumerate(entries):
            end = min(int(start) + horizon, ms.n_bars)
            ref = simulate_account_reference(
                markets, list(legs.values()), s, tables, start=int(start), end=end
            )
            assume(ref.near > 1e-9)
            where = f"setting {c} entry {start}"
            event(f"{s['margin_mode']} {len(legs)} legs: {ExitReason(ref.reason).name}")
            event(f"intrabar {s['intrabar']}")
            if ref.ambiguous:
                event("ambiguous")
            assert bool(out.rejected[c, e]) == ref.rejected, where
            assert out.exit_idx[c, e] == ref.exit_idx, where
            if not ref.rejected:
                assert out.reason[c, e] == ref.reason, where
            assert out.liquidation_idx[c, e] == ref.liq_idx, where
            assert out.liquidated_leg[c, e] == ref.liq_leg, where
            for name, mine, theirs in (
                ("final_equity", out.final_equity[c, e], ref.final_equity),
                ("min_equity", out.min_equity[c, e], ref.min_equity),
                ("fees", out.fees_paid[c, e], ref.fees),
                ("funding", out.funding_paid[c, e], ref.funding),
                ("insurance", out.insurance_draw[c, e], ref.insurance),
            ):
                np.testing.assert_allclose(
                    mine, theirs, rtol=1e-9, atol=1e-9, err_msg=f"{name} {where}"
                )
            for j, leg in enumerate(ref.legs):
                at = f"leg {j} {where}"
                assert out.leg_exit_idx[c, e, j] == leg.exit_idx, at
                assert out.leg_reason[c, e, j] == leg.reason, at
                for name, mine, theirs in (
                    ("pnl", out.leg_pnl[c, e, j], leg.pnl),
                    ("fees", out.leg_fees[c, e, j], leg.fees),
                    ("funding", out.leg_funding[c, e, j], leg.funding),
                ):
                    np.testing.assert_allclose(
                        mine, theirs, rtol=1e-9, atol=1e-9, err_msg=f"{name} {at}"
                    )
            if not ref.rejected:
                cash = cfg.initial_cash
                np.testing.assert_allclose(
                    out.leg_pnl[c, e].sum(), out.final_equity[c, e] - cash, rtol=1e-9, atol=1e-9
                )
        n_amb = sum(
            simulate_account_reference(
                markets,
                list(legs.values()),
                s,
                tables,
                start=int(a),
                end=min(int(a) + horizon, ms.n_bars),
            ).ambiguous
            for a in entries
        )
        assert out.ambiguous_bars[c] == n_amb


# ---------------------------------------------------------------- (5) bad legs, one line
@pytest.fixture(scope="module")
def two() -> bt.MarketSet:
    return bt.MarketSet.from_markets(
        [_market(BTC, _walk(5, 20, 60_000.0, 0.01)), _market(ETH, _walk(6, 20, 3_000.0, 0.01))]
    )


@pytest.mark.parametrize(
    ("legs", "match"),
    [
        ({"XRP/USDT:USDT": 0.5}, "unknown symbol 'XRP/USDT:USDT'"),
        ({BTC: 0.7, ETH: -0.6}, r"sum to at most 1, was 1\.3"),
        ({BTC: 0.0, ETH: 0.5}, "non-zero"),
        ({BTC: "half"}, "must be a number"),
        ({}, "non-empty dict"),
        ({f"S{k}/USDT:USDT": 0.01 for k in range(17)}, "at most 16 legs"),
    ],
)
def test_bad_legs_give_one_line_errors(two: bt.MarketSet, legs: Any, match: str) -> None:
    with pytest.raises(bt.ConfigError, match=match) as info:
        bt.run_account_entries(
            two,
            ParamGrid.product(leverage=[2.0]),
            legs=legs,
            entry_idx=np.array([0]),
            horizon_bars=3,
        )
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"intrabar": "best"}, "intrabar 'best' is not modelled for accounts"),
        ({"intrabar": "detail"}, "intrabar 'detail' needs lower-timeframe bars for every leg"),
        ({"leverage": -1.0}, "RunConfig.leverage"),
    ],
)
def test_settings_the_accounts_cannot_run_are_refused(
    two: bt.MarketSet, change: dict[str, Any], match: str
) -> None:
    grid = ParamGrid.product(**{k: [v] for k, v in change.items()})
    with pytest.raises(bt.ConfigError, match=match) as info:
        bt.run_account_entries(two, grid, legs={BTC: 0.5}, entry_idx=np.array([0]), horizon_bars=3)
    assert "\n" not in str(info.value)


def test_a_refused_leg_refuses_the_whole_account(two: bt.MarketSet) -> None:
    # 1,000 x 0.9 x 125 = 112,500 of BTC notional is in tier 2 (50k-600k, at most 100x): the BTC
    # leg is refused at 125x, so the ETH leg (12,500 in tier 1, 125x allowed) does not open either
    cfg = RunConfig(initial_cash=1_000.0, tier_table="2024-05-30", max_leverage=None)
    out = _quiet(
        bt.run_account_entries,
        two,
        ParamGrid.product(leverage=[125.0]),
        legs={BTC: 0.9, ETH: 0.1},
        entry_idx=np.array([0, 3]),
        horizon_bars=5,
        config=cfg,
    )
    assert out.rejected.all()
    assert (out.final_equity == 1_000.0).all() and (out.exit_idx == -1).all()
    assert (out.reason == ExitReason.NONE).all() and (out.liquidated_leg == -1).all()
    # the ETH leg alone opens
    alone = _quiet(
        bt.run_account_entries,
        two,
        ParamGrid.product(leverage=[125.0]),
        legs={ETH: 0.1},
        entry_idx=np.array([0, 3]),
        horizon_bars=5,
        config=cfg,
    )
    assert not alone.rejected.any()


def test_sixteen_legs() -> None:
    # 16 isolated legs on 16 markets with the same bars: each is the single run at 1/16 of the
    # position size, the account their sum; one more leg is refused
    closes = _walk(7, 60, 100.0, 0.03)
    ms = bt.MarketSet.from_markets(
        [_market(f"S{k}/USDT:USDT", closes, funding={3: 0.001}) for k in range(16)]
    )
    cfg = RunConfig(maint_margin_rate=0.005, margin_mode="isolated", position_size=0.8)
    grid = ParamGrid.product(leverage=[5.0, 40.0])
    entries = np.arange(0, 50, 3)
    legs = {sym: 1 / 16 for sym in ms.symbols}
    acc = bt.run_account_entries(
        ms, grid, legs=legs, entry_idx=entries, horizon_bars=10, config=cfg
    )
    one = bt.run_entries(
        ms["S0/USDT:USDT"],
        grid,
        entry_idx=entries,
        horizon_bars=10,
        config=cfg.replace(position_size=0.8 / 16),
    )
    cash = cfg.initial_cash
    np.testing.assert_allclose(acc.final_equity, cash + 16 * (one.final_equity - cash), rtol=1e-12)
    assert np.array_equal(acc.liquidated, one.reason == ExitReason.LIQUIDATION)
    assert acc.liquidated.any()
    # the same in cross: 16 identical legs are one position of 16 times the size
    cross = bt.run_account_entries(
        ms,
        grid,
        legs=legs,
        entry_idx=entries,
        horizon_bars=10,
        config=cfg.replace(margin_mode="cross"),
    )
    whole = bt.run_entries(
        ms["S0/USDT:USDT"],
        grid,
        entry_idx=entries,
        horizon_bars=10,
        config=cfg.replace(margin_mode="cross"),
    )
    np.testing.assert_allclose(cross.final_equity, whole.final_equity, rtol=1e-9, atol=1e-9)
    assert np.array_equal(cross.liquidation_idx >= 0, whole.reason == ExitReason.LIQUIDATION)


# ------------------------------------------------- real data: BTC+ETH long/long on crash days
@pytest.fixture(scope="module")
def btc_eth() -> bt.MarketSet:
    return bt.load_markets([BTC, ETH])


@pytest.mark.parametrize("day", ["2020-03-12", "2021-05-19", "2022-11-09"])
def test_crash_days_isolated_loses_the_margins_cross_the_wallet(
    btc_eth: bt.MarketSet, day: str
) -> None:
    # Half the wallet committed (position_size 0.5), split 50/50 into BTC and ETH longs, entered
    # at 00:00 UTC and followed for 24 h. In the next 24 h the mark lows fell 44 % / 48 %
    # (2020-03-12), 31 % / 48 % (2021-05-19), 16 % / 20 % (2022-11-09) from the entry open, more
    # than 1/10 of the price, so at 10x and 20x every isolated leg is liquidated and the
    # account loses exactly its two margins (50 % of the wallet, less what is left after the
    # clearance fees: the account keeps 4,997.6 of 10,000) and nothing more. In cross the idle
    # half of the wallet backs both legs, so the account lives longer (its liquidation comes no
    # earlier than the first isolated leg's) but, once the fall goes on, it loses (nearly) the
    # whole wallet. The one case where cross survives the day is 2022-11-09 at 10x: the wallet
    # holds at an effective 5x on the 16-20 % fall, at a loss of 79 % (isolated: 50 %).
    e = int(np.searchsorted(btc_eth.index, pd.Timestamp(day, tz="UTC")))
    grid = ParamGrid.product(leverage=[10.0, 20.0], margin_mode=["isolated", "cross"])
    out = bt.run_account_entries(
        btc_eth,
        grid,
        legs={BTC: 0.5, ETH: 0.5},
        entry_idx=np.array([e]),
        horizon_bars=24,
        config=RunConfig(position_size=0.5),
    )
    assert not out.rejected.any()
    for lev_row in (0, 2):  # (10x isolated, 10x cross), (20x isolated, 20x cross)
        iso, cross = lev_row, lev_row + 1
        assert out.liquidated_leg[iso, 0] in (0, 1)
        assert out.loss[iso, 0] == pytest.approx(0.5, abs=0.001)
        if day == "2022-11-09" and lev_row == 0:
            assert out.liquidated_leg[cross, 0] == -1
            assert out.loss[cross, 0] == pytest.approx(0.79, abs=0.01)
        else:
            assert out.liquidated_leg[cross, 0] == 2  # the account
            assert out.liquidation_idx[cross, 0] >= out.liquidation_idx[iso, 0]
            assert out.loss[cross, 0] > 0.999


def test_a_market_set_or_one_market(two: bt.MarketSet) -> None:
    grid = ParamGrid.product(leverage=[2.0])
    kw: dict[str, Any] = {"entry_idx": np.array([0, 4]), "horizon_bars": 5}
    one = bt.run_account_entries(two[BTC], grid, legs={BTC: 1.0}, **kw)
    both = bt.run_account_entries(two, grid, legs={BTC: 1.0}, **kw)
    assert np.array_equal(one.final_equity, both.final_equity)
    with pytest.raises(bt.ConfigError, match=r"market_set must be a backtester\.MarketSet") as info:
        bt.run_account_entries({BTC: two[BTC]}, grid, legs={BTC: 1.0}, **kw)
    assert "\n" not in str(info.value)
