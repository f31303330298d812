"""The loop floor: the least a leveraged-hold simulation can do per bar, in numba (issue 12).

A long opened at the first bar's open and held: every bar checks the mark low against a
liquidation price and the last low against a stop, pays funding every ``funding_every`` bars
(which moves the liquidation price), marks to market at the mark close and tracks the drawdown
and the lowest equity. Columns (one leverage and stop each) run in parallel over numba's
threads. No tiers, fees, signals, records or options: whatever the engine does beyond this is
its overhead, so ``kernel time / minimal_loop time`` on the same columns is the figure the
engine's speed is judged by (``bench_engine.py`` prints it; ``bench_floor`` below measures it).

    python benchmarks/minimal_loop.py            # kernel vs floor, 1 year of 1m bars x 1,000

Only numpy and numba are imported at module level, so vectorbt's venv can time it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

MMR = 0.004  # flat maintenance-margin rate of the floor's liquidation price


@njit(cache=True, parallel=True)
def minimal_loop_nb(
    prices: np.ndarray,
    rates: np.ndarray,
    funding_every: int,
    leverage: np.ndarray,
    stop_loss: np.ndarray,
    cash: float,
    out: np.ndarray,
) -> None:
    """Hold a long per column over ``prices (n_bars, 8)`` (the kernel's packed layout).

    ``rates[k]`` is paid at bar ``k * funding_every``; ``out (n_cols, 4)`` receives the final
    equity, the max drawdown, the lowest equity and the exit bar (-1 = held to the end).
    """
    n_bars = prices.shape[0]
    n_cols = leverage.shape[0]
    for c in prange(n_cols):
        lev = leverage[c]
        entry = prices[0, 0]
        margin = cash
        size = margin * lev / entry
        wallet = cash
        lp = entry - (margin - size * entry * MMR) / size / (1.0 - MMR)
        stop = entry * (1.0 - stop_loss[c])
        peak = cash
        max_dd = 0.0
        min_eq = cash
        equity = cash
        dd_level = 0.0  # the equity below which the drawdown exceeds max_dd
        exit_at = -1
        k = 0
        next_f = 0
        for i in range(n_bars):
            if i == next_f and k < rates.shape[0]:
                pay = size * prices[i, 4] * rates[k]
                k += 1
                next_f += funding_every
                wallet -= pay
                margin -= pay
                lp = entry - (margin - size * entry * MMR) / size / (1.0 - MMR)
            if prices[i, 6] <= lp:  # mark low reaches the liquidation price
                wallet -= margin
                equity = wallet
                exit_at = i
                break
            if prices[i, 2] <= stop:  # last low reaches the stop
                wallet += size * (stop - entry)
                equity = wallet
                exit_at = i
                break
            equity = wallet + size * (prices[i, 7] - entry)
            if equity > peak:
                peak = equity
                dd_level = peak * (1.0 - max_dd)
            elif equity < dd_level:
                max_dd = (peak - equity) / peak
                dd_level = peak * (1.0 - max_dd)
            if equity < min_eq:
                min_eq = equity
        if equity < min_eq:
            min_eq = equity
        out[c, 0] = equity
        out[c, 1] = max_dd
        out[c, 2] = min_eq
        out[c, 3] = exit_at


def run_floor(
    prices: np.ndarray,
    rates: np.ndarray,
    leverage: np.ndarray,
    stop_loss: np.ndarray,
    funding_every: int = 480,
    cash: float = 10_000.0,
) -> np.ndarray:
    """Run the floor loop; return ``(n_cols, 4)`` (final equity, max drawdown, min equity, exit)."""
    out = np.empty((leverage.shape[0], 4))
    minimal_loop_nb(
        np.ascontiguousarray(prices, dtype=np.float64),
        np.ascontiguousarray(rates, dtype=np.float64),
        int(funding_every),
        np.ascontiguousarray(leverage, dtype=np.float64),
        np.ascontiguousarray(stop_loss, dtype=np.float64),
        float(cash),
        out,
    )
    return out


def hold_columns(n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the (leverage, stop_loss) of ``n_cols`` hold columns: low leverage, wide stops.

    Chosen so that most columns on the synthetic year stay in the market to the end, the case
    where per-bar cost (not set-up) decides.
    """
    lev = np.resize(np.array([1.0, 1.25, 1.5, 1.75, 2.0]), n_cols)
    stop = np.resize(np.array([0.6, 0.7, 0.8, 0.9]), n_cols)
    return lev, stop


def floor_inputs(market: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return the floor loop's ``prices (n_bars, 8)`` and per-event funding rates of ``market``."""
    names = ("open", "high", "low", "close", "mark_open", "mark_high", "mark_low", "mark_close")
    prices = np.column_stack([getattr(market, n) for n in names])
    return prices, np.asarray(market.funding_rate, dtype=np.float64)


def bench_floor(
    market: Any, n_cols: int, repeats: int = 5, per_bar: bool = False
) -> dict[str, float]:
    """Time the engine's hold columns and the floor loop on the same columns, interleaved.

    Both run ``n_cols`` long holds opened at bar 0 over ``market`` (funding every 8 h on 1m
    bars, so every 480 bars): the engine through ``run_entries`` (the survival-study path, dated
    binanceusdm tiers, funding on, fees), the floor through :func:`minimal_loop_nb`. Each is
    timed ``repeats`` times alternately and the best of each is kept, so a shared machine's load
    hits both alike. Returns seconds and ``ratio`` = floor / engine (1.0 = at the floor).

    ``per_bar``: time the engine without its block skip (no ``bar_extremes``: every quiet bar
    stepped one by one, as the floor does), to separate the per-bar loop's speed from the skip.
    """
    import os
    import time

    import backtester as bt
    from backtester.engine import kernel
    from backtester.engine.enums import ExitReason

    if per_bar:
        honest = kernel.bar_extremes
        kernel.bar_extremes = lambda prices: honest(prices[:0])  # no rows: every bar stepped
        try:
            return bench_floor(market, n_cols, repeats)
        finally:
            kernel.bar_extremes = honest

    prices, rates = floor_inputs(market)
    n_bars = market.n_bars
    lev, stop = hold_columns(n_cols)
    grid = bt.ParamGrid.zip(leverage=list(lev), stop_loss=list(stop), side=["long"] * n_cols)
    config = bt.RunConfig(taker_fee=0.0004, funding=True)
    entry = np.array([0], dtype=np.int64)
    bt.run_entries(market, grid.take([0, 1]), entry_idx=entry, horizon_bars=2000, config=config)
    run_floor(prices[:2000], rates, lev[:2], stop[:2])  # JIT warm-up, untimed
    best_k, best_f = float("inf"), float("inf")
    load0 = os.getloadavg()[0]
    for _ in range(repeats):
        t0 = time.perf_counter()
        outcomes = bt.run_entries(market, grid, entry_idx=entry, horizon_bars=n_bars, config=config)
        best_k = min(best_k, time.perf_counter() - t0)
        t0 = time.perf_counter()
        floor = run_floor(prices, rates, lev, stop)
        best_f = min(best_f, time.perf_counter() - t0)
    held = float(np.mean(outcomes.reason == int(ExitReason.END_OF_DATA)))
    return {
        "n_bars": n_bars,
        "n_cols": n_cols,
        "engine_s": best_k,
        "floor_s": best_f,
        "ratio": best_f / best_k,
        "held_engine": held,
        "held_floor": float(np.mean(floor[:, 3] < 0)),
        "load": (load0 + os.getloadavg()[0]) / 2.0,
    }


def main() -> int:
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=525_600)
    parser.add_argument("--cols", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--per-bar", action="store_true", help="also time the engine without its block skip"
    )
    args = parser.parse_args()
    from bench_engine import synthetic_market  # type: ignore[import-not-found]

    market = synthetic_market(args.bars)
    for per_bar in (False, True) if args.per_bar else (False,):
        r = bench_floor(market, args.cols, args.repeats, per_bar=per_bar)
        what = "engine stepping every bar" if per_bar else "engine"
        print(
            f"hold columns {r['n_bars']:,} bars x {r['n_cols']:,}: {what} {r['engine_s']:.3f} s, "
            f"floor loop {r['floor_s']:.3f} s (best of {args.repeats}, interleaved) -> engine at "
            f"{r['ratio']:.2f} of the floor per column; held to the end: engine "
            f"{r['held_engine']:.0%}, floor {r['held_floor']:.0%}; load average {r['load']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
