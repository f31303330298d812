"""Engine invariants (STYLE.md §9) and kernel == pure-Python reference on random inputs."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import backtester as bt
from backtester.config import RunConfig
from backtester.engine import run as engine_run
from backtester.engine.enums import CloseAt, ExitReason, Stat
from backtester.engine.layout import FParam
from backtester.market import Market
from backtester.params import ParamGrid
from backtester.results import bars_per_year, path_metrics, trade_metrics
from tests.property.strategies import (
    EXCHANGES,
    RandomSignals,
    detail_markets,
    examples,
    markets,
    sweep_grids,
)
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


def _run(market: Market, strategy: Any, grid: ParamGrid, **kw: Any) -> bt.SweepResult:
    # warnings (e.g. "columns never opened a position" when a drawn initial_cash x leverage lies
    # above what the tiers allow) are unit-tested; these properties are about the numbers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        return bt.run_sweep(market, strategy, grid, **kw)


def _resolved(result: bt.SweepResult, col: int) -> tuple[dict[str, Any], Any]:
    """A column's settings for the reference: the grid's and config's values, with the settings
    whose None means "the exchange profile's" (fees, liquidation-fee rate, close_at) taken as the
    kernel received them. How engine.run resolves those is checked against hand-written values
    in tests/unit/test_profile_defaults.py, not re-derived here."""
    sim = result._sim
    rules = sim.rules[sim.keys[col]]
    s: dict[str, Any] = {name: result.grid.values(name)[col] for name in result.grid.names}
    cfg = result.config
    for name in cfg.to_dict():
        s.setdefault(name, getattr(cfg, name))
    fp, ip = sim.fparams[:, col], sim.iparams[:, col]
    fparam, iparam = engine_run.FParam, engine_run.IParam
    s["taker_fee"] = float(fp[fparam.TAKER_FEE])
    s["maker_fee"] = float(fp[fparam.MAKER_FEE])
    s["liquidation_fee_rate"] = float(fp[fparam.LIQ_FEE_RATE])  # NaN = the table's own rate
    s["close_at"] = "bankruptcy" if ip[iparam.CLOSE_AT] == CloseAt.BANKRUPTCY else "liquidation"
    s["convention"] = int(ip[iparam.CONVENTION])
    for name in ("stop_loss", "take_profit", "trailing_stop", "maint_margin_rate"):
        if s[name] is None:
            s[name] = math.nan
    return s, tables_from_rules(rules)


@examples(0.5)
@given(market=markets(), grid=sweep_grids())
def test_kernel_matches_reference(market: Market, grid: ParamGrid) -> None:
    """The numba kernel equals the pure-Python reference: stats, trades and equity."""
    _compare_with_reference(market, grid)


@examples(0.2)
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
    result = _run(market, STRAT, grid)
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


RISK_COLUMNS = ("sharpe", "sortino", "win_rate", "profit_factor")


def _risk_from_paths(result: bt.SweepResult) -> tuple[np.ndarray, np.ndarray]:
    """The risk-adjusted statistics by their definitions, from equity() and trades() (re-run),
    and the absolute tolerance of each: the kernel sums the returns in bar order, NumPy
    pairwise, so their means agree to ~1e-16 of the returns' magnitude, not of a mean that
    cancels to near 0; the tolerance is 1e-12 x mean(|r|) carried through the ratio."""
    eq = result.equity().to_numpy()
    pnl, col = result.trade_records()["pnl"], result.trade_records()["col"]
    cash = result._sim.fparams[FParam.INITIAL_CASH]
    scale = math.sqrt(bars_per_year(int(result.market.timeframe_ns)))
    out = np.empty((result.n_cols, 4))
    atol = np.zeros((result.n_cols, 4))
    for c in range(result.n_cols):
        out[c, :2] = path_metrics(eq[:, c], float(cash[c]), scale**2)
        out[c, 2:] = trade_metrics(pnl[col == c])
        prev = np.concatenate(([cash[c]], eq[:-1, c]))
        r = eq[prev > 0.0, c] / prev[prev > 0.0] - 1.0
        if r.size >= 2:
            size = 1e-12 * float(np.mean(np.abs(r))) * scale
            std, down = float(r.std(ddof=1)), math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
            atol[c, 0] = size / std if std > 0.0 else 0.0
            atol[c, 1] = size / down if down > 0.0 else 0.0
    return out, atol


@examples(0.3)
@given(market=markets(), grid=sweep_grids())
def test_risk_statistics_equal_their_definitions_on_equity_and_trades(
    market: Market, grid: ParamGrid
) -> None:
    """stats()'s sharpe, sortino, win_rate and profit_factor, from the kernel's sums, equal
    path_metrics / trade_metrics on the column's equity() and trades() (1e-12 relative, or
    1e-12 of the mean absolute return for a mean near 0), NaN and inf alike."""
    result = _run(market, STRAT, grid)
    got = result.stats(list(RISK_COLUMNS)).to_numpy(dtype=np.float64)
    want, atol = _risk_from_paths(result)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)])
    ok = np.isfinite(want)
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-12 * np.abs(want[ok]) + atol[ok])


def _funding_by_bar(market: Market) -> tuple[np.ndarray, np.ndarray]:
    # summed rates of the events at each bar's open time and strictly inside each bar
    at_open, inside = np.zeros(market.n_bars), np.zeros(market.n_bars)
    for t_ns, rate in zip(market.funding_ts_ns, market.funding_rate, strict=True):
        k, off = divmod(int(t_ns) - int(market.ts_ns[0]), market.timeframe_ns)
        if 0 <= k < market.n_bars:
            (at_open if off == 0 else inside)[k] += rate
    return at_open, inside


def _equity_from_trades(
    market: Market, trades: np.ndarray, cash: float, taker_fee: float, funding: bool
) -> np.ndarray:
    """Close equity per bar from the trade records and the market alone (kernel docstring, steps
    1, 2 and 5): flat, it is initial cash plus the PnL of the trades closed so far; holding a
    trade entered at bar e, it is that minus the entry fee (size x entry price x taker fee) and
    the funding paid since (events at the opens after e and inside bars e.., on the mark open),
    plus the unrealized PnL at the mark close."""
    n = market.n_bars
    closed = np.full(n, cash)
    for t in trades:
        closed[int(t["idx"]) :] += t["pnl"]
    eq = closed.copy()
    at_open, inside = _funding_by_bar(market)
    for t in trades:
        e, x = int(t["entry_idx"]), int(t["idx"])
        if x <= e:
            continue  # entered and closed in one bar: flat at its close
        s, size, entry = float(t["side"]), float(t["size"]), float(t["entry_price"])
        bars = np.arange(e, x)
        paid = np.zeros(len(bars))
        if funding:
            per_bar = market.mark_open * (np.where(np.arange(n) > e, at_open, 0.0) + inside)
            paid = s * size * np.cumsum(per_bar[bars])
        upnl = s * size * (market.mark_close[bars] - entry)
        eq[bars] = closed[bars] - size * entry * taker_fee - paid + upnl
    return eq


@examples(0.3)
@given(market=markets(), grid=sweep_grids())
def test_equity_is_wallet_plus_unrealized_pnl(market: Market, grid: ParamGrid) -> None:
    """On every bar the kernel's equity equals wallet balance + unrealized PnL at the mark close,
    computed independently from its trade records and the market (no position is open at the
    close of a bar with a liquidation)."""
    # explicit taker fees: the entry fee below needs the rate (the profile's rate is another test)
    taker = [0.0005 if v is None else v for v in grid.values("taker_fee")]
    grid = ParamGrid(
        {**{n: grid.values(n) for n in grid.names if n != "taker_fee"}, "taker_fee": taker}
    )
    result = _run(market, STRAT, grid)
    eq = result.equity().to_numpy()
    trades = result.trade_records()
    for col in range(grid.n_cols):
        mine = trades[trades["col"] == col]
        want = _equity_from_trades(
            market,
            mine,
            grid.values("initial_cash")[col],
            taker[col],
            bool(grid.values("funding")[col]),
        )
        scale = grid.values("initial_cash")[col]
        np.testing.assert_allclose(eq[:, col], want, rtol=1e-9, atol=1e-9 * scale)
        for i in mine["idx"][mine["exit_reason"] == ExitReason.LIQUIDATION]:
            holding = (mine["entry_idx"] <= i) & (mine["idx"] > i)
            assert not holding.any(), f"position open at the close of liquidation bar {i}"


@examples(0.1)
@given(market=markets(), grid=sweep_grids())
def test_no_signals_leave_equity_at_initial_cash(market: Market, grid: ParamGrid) -> None:
    """With all-False signals equity stays exactly at each column's initial cash on every bar."""
    quiet = ParamGrid(
        {**{n: grid.values(n) for n in grid.names if n != "p"}, "p": [0.0] * grid.n_cols}
    )
    eq = _run(market, STRAT, quiet).equity().to_numpy()
    assert (eq == np.array(grid.values("initial_cash"))[None, :]).all()


@examples(0.2)
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
    final = _run(market, STRAT, grid, config=cfg).stats()["final_equity"].to_numpy()
    assert all(final[k + 1] <= final[k] * (1 + 1e-12) + 1e-9 for k in range(len(fees) - 1))


@examples(0.2)
@given(
    market=markets(),
    exchange=st.sampled_from(EXCHANGES),
    side=st.sampled_from(["long", "short"]),
    leverage=st.sampled_from([5.0, 10.0, 20.0, 50.0]),
    rates=st.lists(st.floats(0.0, 0.9), min_size=2, max_size=2, unique=True),
    margin_mode=st.sampled_from(["isolated", "cross"]),
    funding=st.booleans(),
)
def test_lower_maintenance_rate_never_liquidates_earlier(
    market: Market,
    exchange: str,
    side: str,
    leverage: float,
    rates: list[float],
    margin_mode: str,
    funding: bool,
) -> None:
    """Entry by entry, a position with a lower flat maintenance rate is liquidated only if the
    same position with a higher rate is, and no earlier (its liquidation price is farther from
    entry); an entry refused at the lower rate is refused at the higher one."""
    lo, hi = sorted(r / leverage for r in rates)  # both below 1/leverage: liquidatable later
    settings = ParamGrid.zip(
        maint_margin_rate=[lo, hi],
        side=[side, side],
        leverage=[leverage, leverage],
        exchange=[exchange, exchange],
        margin_mode=[margin_mode, margin_mode],
        funding=[funding, funding],
    )
    entries = np.arange(market.n_bars, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        out = bt.run_entries(market, settings, entry_idx=entries, horizon_bars=market.n_bars)
    liq = out.reason == ExitReason.LIQUIDATION
    assert not (out.rejected[0] & ~out.rejected[1]).any()
    both = ~out.rejected[0] & ~out.rejected[1]
    assert not (liq[0] & ~liq[1] & both).any(), "liquidated at the lower rate only"
    later = liq[0] & liq[1] & both
    assert (out.exit_idx[0][later] >= out.exit_idx[1][later]).all()


@examples(0.1)
@given(market=markets(), grid=sweep_grids(max_cols=5), batch=st.integers(1, 3))
def test_columns_alone_together_and_batched_are_identical(
    market: Market, grid: ParamGrid, batch: int
) -> None:
    """Running all columns at once equals running each alone, and batching changes nothing."""
    together = _run(market, STRAT, grid).raw_stats
    batched = _run(market, STRAT, grid, batch_size=batch).raw_stats
    np.testing.assert_array_equal(together, batched)
    for col in range(grid.n_cols):
        alone = _run(market, STRAT, grid.take([col])).raw_stats
        np.testing.assert_array_equal(together[col], alone[0])


@examples(0.1)
@given(market=markets(), grid=sweep_grids())
def test_identical_runs_are_bit_identical(market: Market, grid: ParamGrid) -> None:
    """Two identical runs give bit-identical statistics, trades and equity."""
    a = _run(market, STRAT, grid)
    b = _run(market, STRAT, grid)
    np.testing.assert_array_equal(a.raw_stats, b.raw_stats)
    np.testing.assert_array_equal(a.equity().to_numpy(), b.equity().to_numpy())
    assert a.trade_records().tobytes() == b.trade_records().tobytes()


@examples(0.2)
@given(market=markets(), grid=sweep_grids(), chunk=st.integers(1, 7))
def test_time_chunks_change_nothing(market: Market, grid: ParamGrid, chunk: int) -> None:
    """Walking time in chunks of any size (state carried across chunk boundaries) gives
    bit-identical statistics, equity and trades; the default chunk (4,096 bars) never splits
    these small markets, so a tiny chunk is what exercises the carried state."""
    import backtester.engine.kernel as kernel

    whole = _run(market, STRAT, grid)
    default = kernel.CHUNK
    kernel.CHUNK = chunk
    try:
        cut = _run(market, STRAT, grid)
        eq_cut, tr_cut = cut.equity().to_numpy(), cut.trade_records()
    finally:
        kernel.CHUNK = default
    np.testing.assert_array_equal(whole.raw_stats, cut.raw_stats)
    np.testing.assert_array_equal(whole.equity().to_numpy(), eq_cut)
    assert whole.trade_records().tobytes() == tr_cut.tobytes()


@examples(0.3)
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        out = bt.run_entries(market, settings, entry_idx=entries, horizon_bars=horizon)
    probe = _run(market, STRAT, grid)  # resolves each column's rules like run_entries
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


@examples(0.2)
@given(
    market=markets(),
    grid=sweep_grids(max_cols=3),
    sides=st.lists(st.sampled_from(["long", "short"]), min_size=3, max_size=3),
    data=st.data(),
)
def test_run_entries_checkpoints_equal_shorter_horizons(
    market: Market, grid: ParamGrid, sides: list[str], data: Any
) -> None:
    """run_entries' checkpoint equity at k bars equals the final equity of a run with horizon k
    (bit for bit), and asking for checkpoints changes no other output."""
    n_bars = market.n_bars
    entries = np.array(
        sorted(data.draw(st.sets(st.integers(0, n_bars - 1), min_size=1, max_size=4))),
        dtype=np.int64,
    )
    horizon = data.draw(st.integers(1, n_bars))
    ck = sorted(data.draw(st.sets(st.integers(1, horizon + 3), min_size=1, max_size=5)))
    names = [n for n in grid.names if n not in ("seed", "p")]
    settings = ParamGrid.zip(**{n: grid.values(n) for n in names}, side=sides[: grid.n_cols])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bt.BacktesterWarning)
        plain = bt.run_entries(market, settings, entry_idx=entries, horizon_bars=horizon)
        with_ck = bt.run_entries(
            market, settings, entry_idx=entries, horizon_bars=horizon, checkpoints=ck
        )
        for j, k in enumerate(ck):
            short = bt.run_entries(
                market, settings, entry_idx=entries, horizon_bars=min(k, horizon)
            )
            np.testing.assert_array_equal(with_ck.checkpoint_equity[:, :, j], short.final_equity)
    for name in ("exit_idx", "reason", "final_equity", "min_equity", "fees_paid", "funding_paid"):
        np.testing.assert_array_equal(getattr(with_ck, name), getattr(plain, name))
    assert plain.checkpoint_equity.shape == (settings.n_cols, entries.size, 0)
