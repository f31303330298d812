"""Strategy-mode survival speed: sma_cross over two years of daily starts (issue 12, part 3).

    python benchmarks/bench_strategy_survival.py [--repeats 3]

Times the engine part of ``bt.survival_study(market, strategy=sma_cross, entry_every="1D")``
(``study.elapsed_s``: every rolling start's fresh account, all settings) and the whole call, on
the bundled BTC/USDT:USDT 1h bars 2023-01-01 -> 2025-01-01 (730 daily starts, 30-day horizon,
the study's default leverages; sma_cross's default parameters), best of ``--repeats``,
interleaved with the minimal loop's 525,600 x 1,000 run (``minimal_loop.py``), whose ratio it
prints with the load average. ``--old`` also times, interleaved, the path used before issue 12
(one ``run_sweep`` per start on the market cut to its window; kept as the reference in
``tests/unit/test_survival_strategy_windows.py``) on the same settings and starts, and prints
the speed-up. Never asserted in tests: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests/ for --old


def main() -> int:
    from bench_engine import synthetic_frames  # type: ignore[import-not-found]
    from minimal_loop import hold_columns, run_floor  # type: ignore[import-not-found]

    import backtester as bt
    from backtester import strategies

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old", action="store_true", help="time the per-start path too")
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
    best_engine = best_call = best_floor = best_old = float("inf")
    old = _old_path(market) if args.old else None
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
        if old is not None:
            t0 = time.perf_counter()
            old()
            best_old = min(best_old, time.perf_counter() - t0)
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
    if old is not None:
        print(
            f"per-start path (before issue 12) {best_old:.3f} s = {best_old / best_floor:.2f}x the "
            f"loop -> one call is {best_old / best_engine:.1f}x faster"
        )
    return 0


def _old_path(market: Any) -> Any:
    # the study's settings and starts, run one run_sweep per start (the reference)
    import backtester as bt
    from backtester import strategies
    from backtester.survival.run import entry_indices, parse_period_bars
    from backtester.survival.study import DEFAULT_INITIAL_CASH
    from tests.unit.test_survival_strategy_windows import _per_start_reference

    study = bt.survival_study(market, strategy=strategies.sma_cross, n_boot=10)
    table = study.table().reset_index()  # the settings are the table's index
    names = [*strategies.sma_cross.PARAMS, "leverage", "stop_loss", "position_size", "margin_mode"]
    grid = bt.ParamGrid.zip(
        **{n: [None if v is None or v != v else v for v in table[n]] for n in names}
    )
    config = bt.RunConfig(initial_cash=DEFAULT_INITIAL_CASH)
    entries = entry_indices(market, parse_period_bars("1D", "entry_every", market.timeframe_ns))
    horizon = parse_period_bars("30D", "horizon", market.timeframe_ns)
    return lambda: _per_start_reference(
        market, strategies.sma_cross, grid, config, entries, horizon
    )


if __name__ == "__main__":
    raise SystemExit(main())
