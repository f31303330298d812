"""Survival over synthetic paths: 1,000 bootstrapped one-year hourly paths x the default grid.

    python benchmarks/bench_paths.py [--paths 1000] [--batch 50] [--cli-grid] [--repeats 1]

Streams ``bt.bootstrap_study(market, n_paths, length="365D", mean_block="1D")`` on the bundled
BTC/USDT:USDT 1h bars (2019-12-23 -> 2026-05-17): ``--batch`` paths are made at a time, each path
is studied through the engine (30-day horizon, daily entries: 365 per path) and dropped, and the
outcomes are pooled. The grid is ``survival_study``'s default (long, leverage 1..100x: 8
settings) or, with ``--cli-grid``, the CLI's (both sides x 8 leverages x 4 stops: 64). Prints the
time to make the paths alone, the whole streamed study (paths + engine + pooling), the table
(Kaplan–Meier per setting and the path-cluster bootstrap, 1,000 resamples) and the peak RSS. The
JIT warm-up is untimed. Never asserted in tests: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    import backtester as bt
    from backtester.synthetic import iter_paths

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--cli-grid", action="store_true", help="the CLI's 64 settings")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    grid = {"side": "both", "stop_loss": (None, 0.02, 0.05, 0.10)} if args.cli_grid else {}
    market = bt.load_market("BTC/USDT:USDT")
    bt.bootstrap_study(market, 2, length="60D", n_boot=10, **grid).table()  # JIT, untimed
    rss0 = _rss_mib()
    _, batches = iter_paths(market, args.paths, batch=args.batch, length="365D")
    t0 = time.perf_counter()
    n = sum(len(b) for b in batches)
    make = time.perf_counter() - t0
    best_study = best_table = best_cpu = float("inf")
    study = None
    load0 = os.getloadavg()[0]
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), _cpu_s()
        study = bt.bootstrap_study(
            market, args.paths, length="365D", mean_block="1D", batch=args.batch, **grid
        )
        best_study = min(best_study, time.perf_counter() - t0)
        best_cpu = min(best_cpu, _cpu_s() - c0)
        t0 = time.perf_counter()
        table = study.table()
        best_table = min(best_table, time.perf_counter() - t0)
    assert study is not None
    print(
        f"{n:,} paths x {study.market.n_bars:,} bars, {study.n_settings} settings x "
        f"{study.n_entries_per_path} entries per path = {study.n_settings * study.n_entries:,} "
        f"holds (horizon {study.horizon_days:g} days), batch {args.batch}"
    )
    print(f"make the paths alone:          {make:6.2f} s")
    print(
        f"streamed study (paths+engine): {best_study:6.2f} s (engine {study.elapsed_s:.2f} s; "
        f"{best_cpu:.1f} CPU-seconds)"
    )
    print(f"table (KM + cluster bootstrap):{best_table:6.2f} s")
    print(f"total:                         {best_study + best_table:6.2f} s")
    print(f"peak RSS {_rss_mib():,.0f} MiB (after warm-up and loading: {rss0:,.0f} MiB)")
    print(f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(table[["survival", "ci_low", "ci_high"]].round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
