"""Strategy-mode survival speed: sma_cross over two years of daily starts (issue 12, part 3).

    python benchmarks/bench_strategy_survival.py [--repeats 3]

Times the engine part of ``bt.survival_study(market, strategy=sma_cross, entry_every="1D")``
(``study.elapsed_s``: every rolling start's fresh account, all settings) and the whole call, on
the bundled BTC/USDT:USDT 1h bars 2023-01-01 -> 2025-01-01 (730 daily starts, 30-day horizon,
the study's default leverages; sma_cross's default parameters), best of ``--repeats``,
interleaved with the minimal loop's 525,600 x 1,000 run (``minimal_loop.py``), whose ratio it
prints with the load average. Never asserted in tests: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    from bench_engine import synthetic_frames  # type: ignore[import-not-found]
    from minimal_loop import hold_columns, run_floor  # type: ignore[import-not-found]

    import backtester as bt
    import strategies

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    market = bt.load_market("BTC/USDT:USDT", start="2023-01-01", end="2025-01-01")
    frames = synthetic_frames(525_600)
    o, mk = frames["ohlcv"], frames["mark"]
    cols = ("open", "high", "low", "close")
    prices = np.column_stack([o[c].to_numpy() for c in cols] + [mk[c].to_numpy() for c in cols])
    rates = frames["funding"]["funding_rate"].to_numpy()
    lev, stop = hold_columns(1000)
    run_floor(prices[:2000], rates, lev[:2], stop[:2])  # JIT warm-up, untimed
    small = market.slice(end=market.index[24 * 40])
    bt.survival_study(small, strategy=strategies.sma_cross, n_boot=10)  # JIT warm-up, untimed
    best_engine = best_call = best_floor = float("inf")
    load0 = os.getloadavg()[0]
    study = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        study = bt.survival_study(market, strategy=strategies.sma_cross, n_boot=200)
        best_call = min(best_call, time.perf_counter() - t0)
        best_engine = min(best_engine, study.elapsed_s)
        t0 = time.perf_counter()
        run_floor(prices, rates, lev, stop)
        best_floor = min(best_floor, time.perf_counter() - t0)
    load = (load0 + os.getloadavg()[0]) / 2.0
    assert study is not None
    n_settings = len(study.table())
    print(
        f"strategy-mode survival, sma_cross, {market.n_bars:,} 1h bars, {n_settings} settings x "
        f"daily starts: engine {best_engine:.3f} s, survival_study {best_call:.3f} s; minimal loop "
        f"525,600 x 1,000 {best_floor:.3f} s -> engine {best_engine / best_floor:.2f}x, whole "
        f"call {best_call / best_floor:.2f}x the loop (best of {args.repeats}, interleaved; "
        f"load average {load:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
