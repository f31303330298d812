"""Per-column overhead: is the cost of a sweep linear in its columns? (issues 9 and 12).

Run: ``python benchmarks/bench_columns.py [--small 25000 --large 200000]``. Prints the wall time
of ``run_sweep`` (validation, encoding, kernel, stats) for a small and a large grid of distinct
leverages on one week of bundled 1h BTC bars, and their ratio; linear cost gives a ratio close to
large / small.

``python benchmarks/bench_columns.py --entries [--repeats 3]`` times ``run_entries`` (the
survival path) at 10^4 and 10^6 columns (100 x 100 and 1,000 x 1,000 leverages x entry bars)
over one year of bundled 1h BTC bars (2025, 30-day horizon), best of ``--repeats``
interleaved, and prints the cost per column of each, the process's peak RSS and the load
average. Never asserted in tests: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

import backtester as bt
import backtester.strategies.hold as hold


def _time(market: bt.Market, n: int) -> float:
    grid = bt.ParamGrid.zip(
        leverage=list(np.linspace(1.0, 20.0, n)), stop_loss=[0.05] * n, side=["long"] * n
    )
    t0 = time.perf_counter()
    bt.run_sweep(market, hold, grid).stats()
    return time.perf_counter() - t0


def _time_entries(market: bt.Market, n_settings: int, n_entries: int, horizon: int) -> float:
    grid = bt.ParamGrid.product(leverage=list(np.linspace(1.0, 20.0, n_settings)), side=["long"])
    entries = np.linspace(0, market.n_bars - 2, n_entries).astype(np.int64)
    t0 = time.perf_counter()
    bt.run_entries(market, grid, entry_idx=entries, horizon_bars=horizon)
    return time.perf_counter() - t0


def entries_main(repeats: int) -> None:
    """Time run_entries at 10^4 and 10^6 columns, interleaved, best of ``repeats``."""
    market = bt.load_market("BTC/USDT:USDT", start="2025-01-01", end="2026-01-01")
    _time_entries(market, 10, 10, 720)  # JIT warm-up, untimed
    sizes = [(100, 100), (1000, 1000)]
    best = [float("inf")] * len(sizes)
    load0 = os.getloadavg()[0]
    for _ in range(repeats):
        for k, (n_s, n_e) in enumerate(sizes):
            best[k] = min(best[k], _time_entries(market, n_s, n_e, 720))
    load = (load0 + os.getloadavg()[0]) / 2.0
    per = [b / (n_s * n_e) * 1e6 for b, (n_s, n_e) in zip(best, sizes, strict=True)]
    for (n_s, n_e), b, us in zip(sizes, best, per, strict=True):
        print(f"run_entries {n_s * n_e:>9,} columns x 720 bars: {b:7.3f} s ({us:5.2f} us/column)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0**2
    print(
        f"10^6 columns cost {per[1] / per[0]:.2f}x per column what 10^4 do; peak RSS "
        f"{rss:.2f} GiB; best of {repeats}, interleaved; load average {load:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=25_000)
    parser.add_argument("--large", type=int, default=200_000)
    parser.add_argument("--entries", action="store_true", help="time run_entries instead")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.entries:
        entries_main(args.repeats)
        return
    market = bt.load_market("BTC/USDT:USDT").slice("2024-01-01", "2024-01-08")
    _time(market, 100)  # JIT warm-up, untimed
    small, large = _time(market, args.small), _time(market, args.large)
    print(f"{args.small:>9,} columns: {small:6.2f} s ({small / args.small * 1e6:5.1f} us/column)")
    print(f"{args.large:>9,} columns: {large:6.2f} s ({large / args.large * 1e6:5.1f} us/column)")
    print(f"ratio {large / small:.1f}x for {args.large / args.small:.0f}x the columns")


if __name__ == "__main__":
    main()
