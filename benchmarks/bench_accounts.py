"""Accounts of K legs: cost per bar against a one-leg column, and memory (issue 10, part 7).

Run: ``python benchmarks/bench_accounts.py [--bars 20000 --cols 200 --repeats 3]`` prints, for
K = 1, 2, 4, 8 and 16 legs on synthetic 1h random walks, the wall time of ``run_account_entries``
(one entry per column at bar 0, held to the end) per leg-bar, and its ratio to K = 1 (at most
about K times the one-leg cost per bar means a ratio per leg-bar near or below 1).

``python benchmarks/bench_accounts.py --signals`` times the same two-leg accounts driven by
signals instead (``run_sweep(market_set, strategies.hold, grid, legs=...)``: an entry signal on
every bar, held, trades and close equity kept) against ``run_account_entries`` held from bar 1.

``python benchmarks/bench_accounts.py --memory`` runs 1,000 two-leg accounts over one year of
1-minute bars (525,600 bars, synthetic) in a child process and prints its peak RSS (the issue's
bound: under 1 GiB). Never asserted in tests: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

import backtester as bt

SYMBOLS = [f"C{k:02d}/USDT:USDT" for k in range(16)]
TIMEFRAMES = {"1h": "1h", "1min": "1m"}  # pandas frequency -> ccxt timeframe


def _frame(n_bars: int, seed: int, freq: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n_bars)))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.001, n_bars))
    ts = pd.date_range("2024-01-01", periods=n_bars, freq=freq, tz="UTC")
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + wick),
            "low": np.minimum(open_, close) * (1.0 - wick),
            "close": close,
        }
    )


def market_set(n_legs: int, n_bars: int, freq: str = "1h") -> bt.MarketSet:
    """Return ``n_legs`` synthetic markets (flat 0.5 % MMR, no tier table) on one clock."""
    markets = [
        bt.Market.from_frames(
            f, mark=f, symbol=SYMBOLS[k], exchange="binanceusdm", timeframe=TIMEFRAMES[freq]
        )
        for k, f in enumerate(_frame(n_bars, k, freq) for k in range(n_legs))
    ]
    return bt.MarketSet.from_markets(markets)


def run(ms: bt.MarketSet, n_cols: int) -> float:
    """Run ``n_cols`` cross accounts (distinct leverages) over the whole set; return seconds."""
    legs = {s: 1.0 / len(ms.symbols) for s in ms.symbols}
    grid = bt.ParamGrid.zip(
        leverage=list(np.linspace(1.5, 5.0, n_cols)), margin_mode=["cross"] * n_cols
    )
    config = bt.RunConfig(maint_margin_rate=0.005, initial_cash=1000.0)
    n_bars = len(ms[ms.symbols[0]].index)
    t0 = time.perf_counter()
    bt.run_account_entries(
        ms, grid, legs=legs, entry_idx=[0], horizon_bars=n_bars - 1, config=config
    )
    return time.perf_counter() - t0


def cost_per_leg(n_bars: int, n_cols: int, repeats: int) -> None:
    """Print the cost per leg-bar of K-leg accounts and its ratio to one leg."""
    sets = {k: market_set(k, n_bars) for k in (1, 2, 4, 8, 16)}
    for ms in sets.values():
        run(ms, 2)  # compile and warm, untimed
    best = {k: float("inf") for k in sets}
    for _ in range(repeats):  # interleaved, best of
        for k, ms in sets.items():
            best[k] = min(best[k], run(ms, n_cols))
    print(f"{n_cols} accounts x {n_bars:,} bars, best of {repeats}, load {os.getloadavg()[0]:.2f}")
    base = best[1] / (n_bars * n_cols)
    for k, sec in best.items():
        per = sec / (n_bars * n_cols * k)
        print(
            f"K={k:>2}: {sec:7.3f} s, {per * 1e9:6.2f} ns per leg-bar, "
            f"{sec / best[1]:5.2f}x one leg (ratio per leg-bar {per / base:4.2f})"
        )


def signals_vs_entries(n_bars: int, n_cols: int, repeats: int) -> None:
    """Print the wall time of signal-driven two-leg accounts against entry-driven ones."""
    from backtester import strategies

    ms = market_set(2, n_bars)
    legs = {s: 0.5 for s in ms.symbols}
    levs = list(np.linspace(1.5, 5.0, n_cols))
    grid = bt.ParamGrid.zip(side=["long"] * n_cols, leverage=levs, margin_mode=["cross"] * n_cols)
    config = bt.RunConfig(maint_margin_rate=0.005, initial_cash=1000.0)

    def by_signals() -> float:
        t0 = time.perf_counter()
        bt.run_sweep(ms, strategies.hold, grid, legs=legs, config=config)
        return time.perf_counter() - t0

    def by_entries() -> float:
        t0 = time.perf_counter()
        bt.run_account_entries(
            ms, grid.select(("leverage", "margin_mode")), legs=legs, entry_idx=[1],
            horizon_bars=n_bars - 1, config=config,
        )  # fmt: skip
        return time.perf_counter() - t0

    by_signals(), by_entries()  # compile and warm, untimed
    best_s = best_e = float("inf")
    for _ in range(repeats):
        best_s, best_e = min(best_s, by_signals()), min(best_e, by_entries())
    print(
        f"{n_cols} two-leg accounts x {n_bars:,} bars, best of {repeats}, load {os.getloadavg()[0]:.2f}"
    )
    print(f"run_account_entries (held from bar 1): {best_e:7.3f} s")
    print(f"run_sweep on the MarketSet (hold):      {best_s:7.3f} s ({best_s / best_e:.2f}x)")


def memory_child() -> None:
    """1,000 two-leg accounts over a year of 1-minute bars; print seconds and peak RSS."""
    ms = market_set(2, 525_600, "1min")
    run(ms, 2)
    sec = run(ms, 1000)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"1,000 two-leg accounts x 525,600 1m bars: {sec:.1f} s, peak RSS {rss:.2f} GiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bars", type=int, default=20_000)
    p.add_argument("--cols", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory", action="store_true", help="the 1,000 x 1-year-of-1m memory run")
    p.add_argument("--signals", action="store_true", help="signal-driven vs entry-driven accounts")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        memory_child()
    elif a.memory:
        subprocess.run([sys.executable, __file__, "--child"], check=True)
    elif a.signals:
        signals_vs_entries(a.bars, a.cols, a.repeats)
    else:
        cost_per_leg(a.bars, a.cols, a.repeats)


if __name__ == "__main__":
    main()
