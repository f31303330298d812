"""Signal-driven accounts: run_sweep(market_set, strategy, grid, legs=...) (issue 10.3)."""

from __future__ import annotations

import os
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import backtester as bt
from backtester import strategies
from backtester.config import RunConfig
from backtester.errors import ConfigError, ShapeError
from backtester.params import ParamGrid
from tests.unit.test_accounts import _accounts, _market, _walk

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def _quiet(fn: Any, *args: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        return fn(*args, **kw)


class _Fixed:
    """A strategy whose signals are given: ``{symbol: (long_entries, long_exits, short_entries,
    short_exits)}``, each ``(n_bars,)``, the same for every column."""

    __name__ = "fixed"
    PARAMS: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, rows: dict[str, tuple[Any, ...]]) -> None:
        self.rows = rows

    def signals(self, market: Any, grid: ParamGrid) -> Any:
        n = grid.n_cols
        out = {}
        for sym, arrays in self.rows.items():
            cols = [
                None if a is None else np.repeat(np.asarray(a, bool)[:, None], n, 1) for a in arrays
            ]
            out[sym] = bt.Signals(*cols)
        if isinstance(market, bt.Market):
            return out[market.symbol]
        return out


def _flags(n: int, at: list[int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[at] = True
    return out


# --------------------------------------------------------------------------------- by hand
def _flat(symbol: str, opens: list[float]) -> bt.Market:
    # bars whose open, high, low and close are all the bar's price: fills are the numbers given
    ts = pd.date_range("2024-06-01", periods=len(opens), freq="1h", tz="UTC")
    bars = pd.DataFrame(
        {"timestamp": ts, "open": opens, "high": opens, "low": opens, "close": opens}
    )
    return bt.Market.from_frames(
        bars, mark="last", symbol=symbol, exchange="binanceusdm", timeframe="1h"
    )


def test_two_isolated_legs_follow_their_signals_by_hand() -> None:
    """BTC exits on a signal and re-enters on the grown wallet; ETH is held; free margin caps it.

    Cash 100, position_size 1, weights 0.5 / 0.5, leverage 2, no fees, isolated:
    - entries seen at the close of bar 0 fill at the open of bar 1: BTC 100, ETH 10, each margin
      0.5·100 = 50, notional 100: BTC size 1, ETH size 10.
    - BTC's exit seen at the close of bar 2 fills at the open of bar 3 (BTC 110): pnl 1·10 = +10,
      wallet 110 (ETH at 10: its margin 50 is in the wallet).
    - BTC's entry seen at the close of bar 3 fills at the open of bar 4 (BTC 120, ETH 12): margin
      0.5·110 = 55 <= free 110 - 50 = 60, notional 110, size 110/120.
    - at the last close (bar 5: BTC 132, ETH 12): equity = 110 + (110/120)·12 + 10·2 = 141.
    """
    btc = _flat(BTC, [100, 100, 105, 110, 120, 132])
    eth = _flat(ETH, [10, 10, 10, 10, 12, 12])
    ms = bt.MarketSet.from_markets([btc, eth])
    n = 6
    strat = _Fixed(
        {
            BTC: (_flags(n, [0, 3]), _flags(n, [2]), None, None),
            ETH: (_flags(n, [0]), None, None, None),
        }
    )
    cfg = RunConfig(leverage=2, taker_fee=0.0, maker_fee=0.0, funding=False, initial_cash=100.0)
    result = bt.run_sweep(
        ms,
        strat,
        ParamGrid.product(margin_mode=["isolated"]),
        legs={BTC: 0.5, ETH: 0.5},
        config=cfg,
    )
    stats = result.stats().iloc[0]
    trades = result.trades()
    np.testing.assert_allclose(stats["final_equity"], 141.0, rtol=1e-12)
    assert stats["n_trades"] == 3
    assert trades["symbol"].tolist() == [BTC, BTC, ETH]
    assert trades["exit_reason"].tolist() == ["signal", "end_of_data", "end_of_data"]
    np.testing.assert_allclose(trades["pnl"], [10.0, 110 / 120 * 12, 20.0], rtol=1e-12)
    np.testing.assert_allclose(trades["margin"], [50.0, 55.0, 50.0], rtol=1e-12)
    np.testing.assert_allclose(trades["size"], [1.0, 110 / 120, 10.0], rtol=1e-12)
    eq = result.equity([0]).iloc[:, 0].to_numpy()
    # bar 1: 100 + 0; bar 2: +5 on BTC; bar 3: BTC closed at 110, wallet 110; bar 4: ETH +20
    np.testing.assert_allclose(eq, [100, 100, 105, 110, 130, 141], rtol=1e-12)


def test_legs_entering_at_one_open_share_the_free_margin_by_weight() -> None:
    """Both legs enter while nothing is free beyond 100: all-in sizing by |weight| as one order.

    Cash 100, position_size 1, weights 0.75 / 0.25, leverage 10, taker fee 0.001: the order
    would cost (75 + 25)·(1 + 10·0.001) = 101 > 100, so the margins shrink to
    100·0.75/1.01 and 100·0.25/1.01; the last leg's fee is what is left beyond the margins.
    """
    btc = _flat(BTC, [100, 100, 100])
    eth = _flat(ETH, [10, 10, 10])
    ms = bt.MarketSet.from_markets([btc, eth])
    strat = _Fixed(
        {BTC: (_flags(3, [0]), None, None, None), ETH: (_flags(3, [0]), None, None, None)}
    )
    cfg = RunConfig(leverage=10, taker_fee=0.001, funding=False, initial_cash=100.0)
    result = bt.run_sweep(
        ms, strat, ParamGrid.product(margin_mode=["cross"]), legs={BTC: 0.75, ETH: 0.25}, config=cfg
    )
    trades = result.trades()
    np.testing.assert_allclose(trades["margin"], [75 / 1.01, 25 / 1.01], rtol=1e-12)
    np.testing.assert_allclose(trades["fees"].sum(), 100 - 100 / 1.01, rtol=1e-12)
    np.testing.assert_allclose(result.stats()["final_equity"].iloc[0], 100 / 1.01, rtol=1e-12)


def test_hold_takes_the_legs_signs_as_sides() -> None:
    """hold long with {BTC: +0.5, ETH: -0.5} is long BTC and short ETH; hold short turns both."""
    btc = _market(BTC, _walk(11, 40, 60_000.0, 0.004))
    eth = _market(ETH, _walk(12, 40, 3_000.0, 0.004))
    ms = bt.MarketSet.from_markets([btc, eth])
    result = bt.run_sweep(
        ms, strategies.hold, ParamGrid.product(side=["long", "short"]), legs={BTC: 0.5, ETH: -0.5}
    )
    trades = result.trades()
    sides = {
        (int(c), s): side
        for c, s, side in zip(trades["col"], trades["symbol"], trades["side"], strict=True)
    }
    assert sides == {(0, BTC): "long", (0, ETH): "short", (1, BTC): "short", (1, ETH): "long"}


# --------------------------------------------------- hold == run_account_entries, held through
@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_hold_equals_run_account_entries_from_bar_one(mode: str) -> None:
    """hold's first signal (close of bar 0) fills at the open of bar 1: with no leg closing
    before the end the account is the entry-driven account opened at bar 1, to the last bit."""
    ms = bt.load_markets([BTC, ETH], start="2024-01-01", end="2024-03-01")
    legs = {BTC: 0.5, ETH: -0.5}
    grid = ParamGrid.product(leverage=[1.0, 1.5], margin_mode=[mode], side=["long"])
    cfg = RunConfig(initial_cash=100.0)
    held = bt.run_sweep(ms, strategies.hold, grid, legs=legs, config=cfg)
    opened = bt.run_account_entries(
        ms, grid.select(("leverage", "margin_mode")), legs=legs, entry_idx=np.array([1]),
        horizon_bars=ms.n_bars - 1, config=cfg,
    )  # fmt: skip
    stats = held.stats()
    assert (stats["n_liquidations"] == 0).all() and (stats["n_trades"] == 2).all()
    assert np.array_equal(stats["final_equity"].to_numpy(), opened.final_equity[:, 0])
    assert np.array_equal(stats["min_equity"].to_numpy(), opened.min_equity[:, 0])
    assert np.array_equal(stats["fees_paid"].to_numpy(), opened.fees_paid[:, 0])
    assert np.array_equal(stats["funding_paid"].to_numpy(), opened.funding_paid[:, 0])
    trades = held.trades()
    for c in range(grid.n_cols):
        rows = trades[trades["col"] == c].sort_values("leg")
        assert np.array_equal(rows["pnl"].to_numpy(), opened.leg_pnl[c, 0])


# ------------------------------------- one leg == the single-position run of the same strategy
class _Noise:
    """Entries and exits from a fixed pattern (reversals, re-entries, exits while flat)."""

    __name__ = "noise"
    PARAMS: ClassVar[dict[str, list[Any]]] = {"seed": [1, 2, 3]}

    def signals(self, market: Any, grid: ParamGrid) -> Any:
        n = market.n_bars
        seeds = grid.values("seed")
        arrays = []
        for k in range(4):
            a = np.zeros((n, len(seeds)), dtype=bool)
            for c, seed in enumerate(seeds):
                a[:, c] = np.random.default_rng([int(seed), k]).random(n) < 0.15
            arrays.append(a)
        one = bt.Signals(*arrays)
        if isinstance(market, bt.MarketSet):
            return dict.fromkeys(market.symbols, one)
        return one


@pytest.mark.parametrize("mode", ["isolated", "cross"])
def test_a_one_leg_account_equals_the_single_run_of_its_signals(mode: str) -> None:
    """legs={BTC: 1.0}: the account kernel follows the signals exactly as engine.kernel does."""
    btc = _market(BTC, _walk(5, 300, 60_000.0, 0.02), funding={5: 0.001, 40: -0.002})
    eth = _market(ETH, _walk(6, 300, 3_000.0, 0.02))
    ms = bt.MarketSet.from_markets([btc, eth])
    grid = ParamGrid.product(
        seed=[1, 2, 3],
        leverage=[3.0, 25.0],
        stop_loss=[None, 0.03],
        take_profit=[None, 0.05],
        margin_mode=[mode],
    )
    cfg = RunConfig(slippage=0.0005)
    acc = _quiet(bt.run_sweep, ms, _Noise(), grid, legs={BTC: 1.0}, config=cfg)
    one = _quiet(bt.run_sweep, btc, _Noise(), grid, config=cfg)
    a, b = acc.stats(), one.stats()
    for name in ("final_equity", "max_drawdown", "n_liquidations", "n_stops", "n_take_profits",
                 "n_trades", "n_rejected", "min_equity", "ambiguous_bars"):  # fmt: skip
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy(), err_msg=name)
    for name in ("fees_paid", "funding_paid", "insurance_draw"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-12, err_msg=name)
    assert (b["n_liquidations"] > 0).any() and (b["n_stops"] > 0).any()
    ta, tb = acc.trades(), one.trades()
    assert len(ta) == len(tb)
    for name in ("col", "entry_time", "exit_time", "side", "exit_reason"):
        assert ta[name].tolist() == tb[name].tolist(), name
    for name in ("entry_price", "exit_price", "size", "margin", "pnl"):
        np.testing.assert_allclose(ta[name], tb[name], rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(acc.equity().to_numpy(), one.equity().to_numpy())


# ------------------------------- hypothesis: one entry signal == run_account_entries (reference)
@settings(max_examples=int(os.environ.get("ACCOUNTS_EXAMPLES", "100")), deadline=None)
@given(case=_accounts(), first=st.integers(1, 4))
def test_one_entry_signal_equals_the_entry_driven_account(case: Any, first: int) -> None:
    """An entry signal on every leg at the close of bar first-1 and nothing else is the account
    run_account_entries opens at bar first (itself equal to the pure-Python reference)."""
    ms, legs, grid, cfg = case
    first = min(first, ms.n_bars - 1)
    n = ms.n_bars
    strat = _Fixed({sym: (_flags(n, [first - 1]), None, None, None) for sym in legs})
    sweep = _quiet(bt.run_sweep, ms, strat, grid, legs=legs, config=cfg)
    opened = _quiet(
        bt.run_account_entries, ms, grid, legs=legs, entry_idx=np.array([first]),
        horizon_bars=n - first, config=cfg,
    )  # fmt: skip
    stats = sweep.stats()
    trades = sweep.trades()
    for c in range(grid.n_cols):
        where = f"column {c}"
        np.testing.assert_allclose(
            stats["final_equity"].iloc[c],
            opened.final_equity[c, 0],
            rtol=1e-12,
            atol=1e-12,
            err_msg=where,
        )
        np.testing.assert_allclose(
            stats["min_equity"].iloc[c],
            opened.min_equity[c, 0],
            rtol=1e-12,
            atol=1e-12,
            err_msg=where,
        )
        np.testing.assert_allclose(
            stats["fees_paid"].iloc[c],
            opened.fees_paid[c, 0],
            rtol=1e-12,
            atol=1e-12,
            err_msg=where,
        )
        np.testing.assert_allclose(
            stats["funding_paid"].iloc[c],
            opened.funding_paid[c, 0],
            rtol=1e-12,
            atol=1e-12,
            err_msg=where,
        )
        np.testing.assert_allclose(
            stats["insurance_draw"].iloc[c],
            opened.insurance_draw[c, 0],
            rtol=1e-12,
            atol=1e-12,
            err_msg=where,
        )
        assert int(stats["ambiguous_bars"].iloc[c]) == int(opened.ambiguous_bars[c]), where
        liq_at = opened.liquidation_idx[c, 0]
        got = stats["first_liquidation_time"].iloc[c]
        assert (pd.isna(got) and liq_at < 0) or got == ms.index[liq_at], where
        rows = trades[trades["col"] == c].sort_values("leg")
        if opened.rejected[c, 0]:
            assert rows.empty and stats["n_rejected"].iloc[c] == len(legs), where
            continue
        assert rows["leg"].tolist() == list(range(len(legs))), where
        exit_idx = ms.index.get_indexer(rows["exit_time"])
        assert exit_idx.tolist() == opened.leg_exit_idx[c, 0].tolist(), where
        names = [bt.engine.enums.EXIT_REASON_NAMES[int(r)] for r in opened.leg_reason[c, 0]]
        assert rows["exit_reason"].tolist() == names, where
        np.testing.assert_allclose(
            rows["pnl"], opened.leg_pnl[c, 0], rtol=1e-12, atol=1e-12, err_msg=where
        )
        np.testing.assert_allclose(
            rows["exit_price"], opened.leg_exit_price[c, 0], rtol=1e-12, atol=1e-12, err_msg=where
        )


# ------------------------------------------------------------------------------------ errors
def test_bad_account_sweeps_are_one_line_errors() -> None:
    btc = _market(BTC, _walk(1, 20, 60_000.0, 0.01))
    eth = _market(ETH, _walk(2, 20, 3_000.0, 0.01))
    ms = bt.MarketSet.from_markets([btc, eth])
    with pytest.raises(
        ConfigError, match=r"run_sweep on a MarketSet needs legs=\{symbol: weight\}"
    ):
        bt.run_sweep(ms, strategies.hold)
    with pytest.raises(ConfigError, match="legs= needs a MarketSet"):
        bt.run_sweep(btc, strategies.hold, legs={BTC: 1.0})
    with pytest.raises(ConfigError, match=r"legs: the \|weights\| must sum to at most 1"):
        bt.run_sweep(ms, strategies.hold, legs={BTC: 0.8, ETH: 0.8})

    class _One:
        PARAMS: ClassVar[dict[str, list[Any]]] = {}

        def signals(self, market: Any, grid: Any) -> Any:
            return bt.Signals.empty(market.n_bars, grid.n_cols)

    with pytest.raises(ShapeError, match=r"must return a dict \{symbol: Signals\} for a MarketSet"):
        bt.run_sweep(ms, _One(), legs={BTC: 0.5})

    class _Half:
        PARAMS: ClassVar[dict[str, list[Any]]] = {}

        def signals(self, market: Any, grid: Any) -> Any:
            return {BTC: bt.Signals.empty(market.n_bars, grid.n_cols)}

    with pytest.raises(ShapeError, match=r"must hold a Signals for every leg, 'ETH/USDT:USDT' was"):
        bt.run_sweep(ms, _Half(), legs={BTC: 0.5, ETH: 0.5})


# --------------------- hypothesis: signal-driven isolated and cross accounts == the reference
@settings(max_examples=int(os.environ.get("ACCOUNTS_EXAMPLES", "100")), deadline=None)
@given(case=_accounts(), data=st.data())
def test_signal_driven_accounts_match_the_reference(case: Any, data: Any) -> None:
    """Random entry and exit signals per leg (reversals, re-entries after exits and
    liquidations, legs entering together and alone), isolated and cross accounts on random
    shrinkable multi-leg markets: kernel == reference, trade by trade and bar by bar."""
    from tests.unit.reference_accounts import simulate_account_signals_reference
    from tests.unit.test_accounts import _resolved

    ms, legs, grid, cfg = case
    n = ms.n_bars
    rows = {}
    for sym in legs:
        rows[sym] = tuple(
            np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
            for _ in range(4)
        )
    sweep = _quiet(bt.run_sweep, ms, _Fixed(rows), grid, legs=legs, config=cfg)
    stats, trades = sweep.stats(), sweep.trades()
    markets = [ms[sym] for sym in legs]
    for c, (s, tables) in enumerate(_resolved(ms, legs, grid, cfg)):
        ref = simulate_account_signals_reference(
            markets, list(legs.values()), s, tables, [rows[sym] for sym in legs]
        )
        assume(ref.near > 1e-9)
        where = f"column {c}"
        for name, theirs in (
            ("final_equity", ref.final_equity),
            ("min_equity", ref.min_equity),
            ("fees_paid", ref.fees),
            ("funding_paid", ref.funding),
            ("insurance_draw", ref.insurance),
        ):
            np.testing.assert_allclose(
                stats[name].iloc[c], theirs, rtol=1e-9, atol=1e-9, err_msg=f"{name} {where}"
            )
        assert stats["n_rejected"].iloc[c] == ref.n_rejected, where
        assert stats["n_liquidations"].iloc[c] == ref.n_liquidations, where
        assert stats["ambiguous_bars"].iloc[c] == ref.ambiguous, where
        mine = trades[trades["col"] == c]
        assert len(mine) == len(ref.trades), where
        idx = ms.index
        for (_, row), (leg, e_i, x_i, side, pnl, fees, funding, reason) in zip(
            mine.iterrows(), ref.trades, strict=True
        ):
            at = f"{where} leg {leg} entry {e_i}"
            assert row["leg"] == leg, at
            assert row["entry_time"] == idx[e_i] and row["exit_time"] == idx[x_i], at
            assert row["side"] == ("long" if side > 0 else "short"), at
            assert row["exit_reason"] == bt.engine.enums.EXIT_REASON_NAMES[reason], at
            np.testing.assert_allclose(row["pnl"], pnl, rtol=1e-9, atol=1e-9, err_msg=at)
            np.testing.assert_allclose(row["fees"], fees, rtol=1e-9, atol=1e-9, err_msg=at)
            np.testing.assert_allclose(row["funding"], funding, rtol=1e-9, atol=1e-9, err_msg=at)
        np.testing.assert_allclose(
            sweep.equity([c]).iloc[:, 0].to_numpy(), ref.equity, rtol=1e-9, atol=1e-9
        )
