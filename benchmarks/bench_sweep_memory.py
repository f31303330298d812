"""Memory benchmark of a batch sweep: 1,000,000 columns over one year of 1h bars within 4 GiB.

Runs the real command ``backtester sweep`` in a subprocess on the bundled BTC/USDT:USDT 1h bars of
2025 (8,760 bars) with sma_cross: 10 fast x 10 slow windows x 100 leverages x 100 stop-losses =
1,000,000 columns (8.76 G bar·columns), and samples the resident memory of the whole process tree
(the runner plus its worker processes) every 0.1 s. Prints peak RSS, wall time and bar·columns/s;
exits 1 if the peak exceeds the budget. Time is printed, never asserted.

    python benchmarks/bench_sweep_memory.py                 # the full 1,000,000-column sweep
    python benchmarks/bench_sweep_memory.py --columns 100000 --workers 1   # a quicker look
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

GIB = 1024**3


def config_text(columns: int) -> str:
    """Return a sma_cross config with ``columns`` columns (a multiple of 10,000 works exactly)."""
    n_signals = max(1, columns // 10_000)  # (fast, slow) pairs, 10,000 engine settings each
    fast = [5 + 5 * k for k in range(10)]
    slow = [100 + 20 * k for k in range(10)]
    pairs = n_signals if n_signals <= 100 else 100
    leverage = list(range(1, 101))
    stops = ['"none"', *[f"{k / 1000:.3f}" for k in range(1, 100)]]
    n_fast = min(10, pairs)
    n_slow = max(1, pairs // n_fast)
    return f"""
[market]
exchange = "binanceusdm"
symbols = ["BTC/USDT:USDT"]
timeframe = "1h"
start = "2025-01-01"
end = "2026-01-01"

[strategy]
name = "sma_cross"

[strategy.grid]
fast = {fast[:n_fast]}
slow = {slow[:n_slow]}

[engine]
taker_fee = 0.0005

[engine.grid]
leverage = {leverage}
stop_loss = [{", ".join(stops)}]
"""


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: the runner's")
    parser.add_argument("--budget-gib", type=float, default=4.0)
    parser.add_argument("--keep", default=None, help="keep the run in this directory")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(config_text(args.columns))
        out = Path(args.keep) if args.keep else Path(tmp) / "run"
        cmd = [sys.executable, "-m", "backtester", "sweep", str(config), "--out", str(out),
               "--no-progress"]  # fmt: skip
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        if args.chunk_size is not None:
            cmd += ["--chunk-size", str(args.chunk_size)]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(0.1)
        elapsed = time.perf_counter() - start
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            print(stdout, stderr, sep="\n", file=sys.stderr)
            return proc.returncode
        import pyarrow.parquet as pq

        rows = pq.read_metadata(out / "results.parquet").num_rows
        n_bars = 8_760
    cells = rows * n_bars
    print(stdout.strip())
    print(f"columns            {rows:,}")
    print(f"bars               {n_bars:,} (BTC/USDT:USDT 1h, 2025)")
    print(f"wall time          {elapsed:,.1f} s (incl. start-up, data load, JIT cache load)")
    print(f"throughput         {cells / elapsed / 1e6:,.1f} M bar·columns/s")
    print(f"peak RSS (tree)    {peak / GIB:.2f} GiB (budget {args.budget_gib:g} GiB)")
    ok = peak <= args.budget_gib * GIB
    print("PASS" if ok else "FAIL: peak RSS above budget")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
