"""Engine invariants (STYLE.md §9) and kernel == pure-Python reference on random inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import backtester as bt
from backtester.config import RunConfig
from backtester.engine.enums import Stat
from backtester.market import Market
from backtester.params import ParamGrid
from tests.property.strategies import RandomSignals, detail_markets, markets, sweep_grids
from tests.unit.reference import simulate_reference, tables_from_rules

STRAT = RandomSignals()
STAT_KEYS = {
    "final_equity": Stat.FINAL_EQUITY,
    "max_drawdown": Stat.MAX_DRAWDOWN,
    "n_liquidations": Stat.N_LIQUIDATIONS,
    "first_liquidation_idx": Stat.FIRST_LIQUIDATION_IDX,
    "n_stops": Stat.N_STOPS,
    "n_take_profits": Stat.N_TAKE_PROFITS,
    "fees_paid": Stat.FEES_PAID,
    "funding_paid": Stat.FUNDING_PAID,
    "insurance_draw": Stat.INSURANCE_DRAW,
    "min_liquidation_distance": Stat.MIN_LIQUIDATION_DISTANCE,
    "bars_in_market": Stat.BARS_IN_MARKET,
    "ambiguous_bars": Stat.AMBIGUOUS_BARS,
    "ruined": Stat.RUINED,
    "ruin_idx": Stat.RUIN_IDX,
    "n_trades": Stat.N_TRADES,
    "n_rejected": Stat.N_REJECTED,
    "min_equity": Stat.MIN_EQUITY,
    "first_exit_idx": Stat.FIRST_EXIT_IDX,
    "first_exit_reason": Stat.FIRST_EXIT_REASON,
}


def _resolved(result: bt.SweepResult, col: int) -> tuple[dict[str, Any], Any]:
    sim = result._sim
    key = sim.keys[col]
    rules = sim.rules[key]
    s: dict[str, Any] = {}
    for name in result.grid.names:
        s[name] = result.grid.values(name)[col]
    cfg = result.config
    for name in cfg.to_dict():
        s.setdefault(name, getattr(cfg, name))
    if s["liquidation_fee_rate"] is None and s["taker_fee"] is not None and rules.convention != 0:
        s["liquidation_fee_rate"] = s["taker_fee"]  # OKX / Bybit: the trader's taker rate
    for name in (
        "stop_loss",
        "take_profit",
        "trailing_stop",
        "maint_margin_rate",
        "liquidation_fee_rate",
    ):
        if s[name] is None:
            s[name] = math.nan
    if s["taker_fee"] is None:
        s["taker_fee"] = rules.taker_fee
    if s["maker_fee"] is None:
        s["maker_fee"] = rules.maker_fee
    s["close_at"] = s["close_at"] or rules.close_at
    s["convention"] = rules.convention
    return s, tables_from_rules(rules)


@given(market=markets(), grid=sweep_grids())
def test_kernel_matches_reference(market: Market, grid: ParamGrid) -> None:
    """The numba kernel equals the pure-Python reference: stats, trades and equity."""
    _compare_with_reference(market, grid)


@given(market=detail_markets(), grid=sweep_grids(), detail=st.booleans())
def test_kernel_matches_reference_with_detail_bars(
    market: Market, grid: ParamGrid, detail: bool
) -> None:
    """With lower-timeframe bars and intrabar="detail" the kernel still equals the reference."""
    if detail:
        grid = ParamGrid(
            {
                **{n: grid.values(n) for n in grid.names if n != "intrabar"},
                "intrabar": ["detail"] * grid.n_cols,
            }
        )
    _compare_with_reference(market, grid)


def _compare_with_reference(market: Market, grid: ParamGrid) -> None:
    result = bt.run_sweep(market, STRAT, grid)
    raw = result.raw_stats
    eq = result.equity().to_numpy()
    trades = result.trade_records()
    for col in range(grid.n_cols):
        s, tables = _resolved(result, col)
        sig = RandomSignals.arrays(market.n_bars, s["seed"], s["p"])
        ref = simulate_reference(market, sig, s, tables)
        for name, k in STAT_KEYS.items():
            np.testing.assert_allclose(
                raw[col, k], ref.stats[name], rtol=1e-12, atol=1e-9, err_msg=f"{name} col {col}"
            )
        np.testing.assert_allclose(eq[:, col], ref.equity, rtol=1e-12, atol=1e-9)
        mine = trades[trades["col"] == col]
        assert len(mine) == len(ref.trades)
        for t, r in zip(mine, ref.trades, strict=True):
            assert (t["idx"], t["entry_idx"], t["side"], t["exit_reason"]) == (
                r.idx,
                r.entry_idx,
                r.side,
                r.exit_reason,
            )
            np.testing.assert_allclose(
                [t["entry_price"], t["exit_price"], t["size"], t["fees"], t["funding"], t["pnl"]],
                [r.entry_price, r.exit_price, r.size, r.fees, r.funding, r.pnl],
                rtol=1e-12,
                atol=1e-9,
            )


@given(market=markets(), grid=sweep_grids())
def test_equity_is_wallet_plus_unrealized_pnl(market: Market, grid: ParamGrid) -> None:
    """On every bar the kernel's equity equals wallet balance + unrealized PnL at mark close,
    and after a liquidation the position is zero on that bar."""
    result = bt.run_sweep(market, STRAT, grid)
    eq = result.equity().to_numpy()
    trades = result.trade_records()
    for col in range(grid.n_cols):
        s, tables = _resolved(result, col)
        ref = simulate_reference(
            market, RandomSignals.arrays(market.n_bars, s["seed"], s["p"]), s, tables
        )
        np.testing.assert_allclose(eq[:, col], np.add(ref.wallet, ref.upnl), rtol=1e-12, atol=1e-9)
        liq_bars = trades["idx"][(trades["col"] == col) & (trades["exit_reason"] == 5)]
        for i in liq_bars:
            # flat at that close unless the same bar re-entered (impossible: entries are at opens)
            assert ref.position[int(i)] == 0.0


@given(market=markets(), grid=sweep_grids())
def test_no_signals_leave_equity_at_initial_cash(market: Market, grid: ParamGrid) -> None:
    """With all-False signals equity stays exactly at initial cash on every bar."""
    quiet = ParamGrid(
        {**{n: grid.values(n) for n in grid.names if n != "p"}, "p": [0.0] * grid.n_cols}
    )
    eq = bt.run_sweep(market, STRAT, quiet).equity().to_numpy()
    assert (eq == 10_000.0).all()


@given(
    market=markets(mark_is_last=True),
    seed=st.integers(0, 1000),
    fees=st.lists(
        st.sampled_from([0.0, 0.0002, 0.0005, 0.001, 0.01]), min_size=2, max_size=4, unique=True
    ),
    leverage=st.sampled_from([1.0, 3.0, 10.0]),
    stop=st.sampled_from([None, 0.02]),
)
def test_higher_taker_fee_never_raises_final_equity(
    market: Market, seed: int, fees: list[float], leverage: float, stop: float | None
) -> None:
    """For fixed signals, final equity never rises as taker_fee rises (flat MMR so results
    scale with equity, liquidations close at bankruptcy, no ruin)."""
    fees = sorted(fees)
    grid = ParamGrid.product(seed=[seed], p=[0.2], taker_fee=fees)
    cfg = RunConfig(
        leverage=leverage,
        stop_loss=stop,
        maint_margin_rate=0.005,
        close_at="bankruptcy",
        funding=False,
    )
    final = bt.run_sweep(market, STRAT, grid, config=cfg).stats()["final_equity"].to_numpy()
    assert all(final[k + 1] <= final[k] * (1 + 1e-12) + 1e-9 for k in range(len(fees) - 1))


@given(market=markets(), seed=st.integers(0, 1000))
def test_one_x_isolated_long_without_costs_is_never_liquidated(market: Market, seed: int) -> None:
    """A 1x isolated long with zero fees and funding is never liquidated."""
    grid = ParamGrid.product(seed=[seed], p=[0.3])
    cfg = RunConfig(leverage=1.0, taker_fee=0.0, maker_fee=0.0, funding=False)

    class LongOnly(RandomSignals):
        def signals(self, market: Market, grid: ParamGrid) -> Any:
            sig = super().signals(market, grid)
            return bt.Signals(sig.long_entries, sig.long_exits, None, None)

    stats = bt.run_sweep(market, LongOnly(), grid, config=cfg).stats()
    assert (stats["n_liquidations"] == 0).all()


@given(market=markets(), grid=sweep_grids(max_cols=5), batch=st.integers(1, 3))
def test_columns_alone_together_and_batched_are_identical(
    market: Market, grid: ParamGrid, batch: int
) -> None:
    """Running all columns at once equals running each alone, and batching changes nothing."""
    together = bt.run_sweep(market, STRAT, grid).raw_stats
    batched = bt.run_sweep(market, STRAT, grid, batch_size=batch).raw_stats
    np.testing.assert_array_equal(together, batched)
    for col in range(grid.n_cols):
        alone = bt.run_sweep(market, STRAT, grid.take([col])).raw_stats
        np.testing.assert_array_equal(together[col], alone[0])


@given(market=markets(), grid=sweep_grids())
def test_identical_runs_are_bit_identical(market: Market, grid: ParamGrid) -> None:
    """Two identical runs give bit-identical statistics, trades and equity."""
    a = bt.run_sweep(market, STRAT, grid)
    b = bt.run_sweep(market, STRAT, grid)
    np.testing.assert_array_equal(a.raw_stats, b.raw_stats)
    np.testing.assert_array_equal(a.equity().to_numpy(), b.equity().to_numpy())
    assert a.trade_records().tobytes() == b.trade_records().tobytes()


@given(market=markets(), grid=sweep_grids(), chunk=st.integers(1, 7))
def test_time_chunks_change_nothing(market: Market, grid: ParamGrid, chunk: int) -> None:
    """Walking time in chunks of any size (state carried across chunk boundaries) gives
    bit-identical statistics, equity and trades; the default chunk (1,024 bars) never splits
    these small markets, so a tiny chunk is what exercises the carried state."""
    import backtester.engine.kernel as kernel

    whole = bt.run_sweep(market, STRAT, grid)
    default = kernel.CHUNK
    kernel.CHUNK = chunk
    try:
        cut = bt.run_sweep(market, STRAT, grid)
        eq_cut, tr_cut = cut.equity().to_numpy(), cut.trade_records()
    finally:
        kernel.CHUNK = default
    np.testing.assert_array_equal(whole.raw_stats, cut.raw_stats)
    np.testing.assert_array_equal(whole.equity().to_numpy(), eq_cut)
    assert whole.trade_records().tobytes() == tr_cut.tobytes()


@given(
    market=markets(),
    grid=sweep_grids(max_cols=3),
    sides=st.lists(st.sampled_from(["long", "short"]), min_size=3, max_size=3),
    data=st.data(),
)
def test_run_entries_matches_reference_windows(
    market: Market, grid: ParamGrid, sides: list[str], data: Any
) -> None:
    """run_entries (a forced entry at each chosen bar, followed for at most horizon_bars) equals
    the reference simulating each window [entry, entry + horizon) alone."""
    n_bars = market.n_bars
    entries = np.array(
        sorted(data.draw(st.sets(st.integers(0, n_bars - 1), min_size=1, max_size=4))),
        dtype=np.int64,
    )
    horizon = data.draw(st.integers(1, n_bars))
    names = [n for n in grid.names if n not in ("seed", "p")]
    settings = ParamGrid.zip(**{n: grid.values(n) for n in names}, side=sides[: grid.n_cols])
    out = bt.run_entries(market, settings, entry_idx=entries, horizon_bars=horizon)
    probe = bt.run_sweep(market, STRAT, grid)  # resolves each column's rules like run_entries
    for row in range(settings.n_cols):
        s, tables = _resolved(probe, row)
        for k, e in enumerate(entries):
            ref = simulate_reference(
                market,
                None,
                s,
                tables,
                start=int(e),
                end=min(int(e) + horizon, n_bars),
                force_side=1 if sides[row] == "long" else -1,
            ).stats
            rejected = ref["n_rejected"] > 0
            assert bool(out.rejected[row, k]) == rejected
            assert out.exit_idx[row, k] == ref["first_exit_idx"]
            assert out.reason[row, k] == (0 if rejected else ref["first_exit_reason"])
            np.testing.assert_allclose(
                [
                    out.final_equity[row, k],
                    out.min_equity[row, k],
                    out.insurance_draw[row, k],
                    out.funding_paid[row, k],
                    out.fees_paid[row, k],
                ],
                [
                    ref["final_equity"],
                    ref["min_equity"],
                    ref["insurance_draw"],
                    ref["funding_paid"],
                    ref["fees_paid"],
                ],
                rtol=1e-12,
                atol=1e-9,
            )
