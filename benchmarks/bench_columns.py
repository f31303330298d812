"""Per-column overhead: is the cost of a sweep linear in its columns? (issue 9: 200k ~ 8x 25k).

Run: ``python benchmarks/bench_columns.py [--small 25000 --large 200000]``. Prints the wall time
of ``run_sweep`` (validation, encoding, kernel, stats) for a small and a large grid of distinct
leverages on one week of bundled 1h BTC bars, and their ratio; linear cost gives a ratio close to
large / small. Never asserted in tests: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=25_000)
    parser.add_argument("--large", type=int, default=200_000)
    args = parser.parse_args()
    market = bt.load_market("BTC/USDT:USDT").slice("2024-01-01", "2024-01-08")
    _time(market, 100)  # JIT warm-up, untimed
    small, large = _time(market, args.small), _time(market, args.large)
    print(f"{args.small:>9,} columns: {small:6.2f} s ({small / args.small * 1e6:5.1f} us/column)")
    print(f"{args.large:>9,} columns: {large:6.2f} s ({large / args.large * 1e6:5.1f} us/column)")
    print(f"ratio {large / small:.1f}x for {args.large / args.small:.0f}x the columns")


if __name__ == "__main__":
    main()
