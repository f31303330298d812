"""Engine throughput benchmark: 1 year of 1-minute bars x 1,000 columns, one command.

    python benchmarks/bench_engine.py                 # backtester, then vectorbt if installed
    python benchmarks/bench_engine.py --engine backtester --cols 1000
    /work/venv-vbt/bin/python benchmarks/bench_engine.py --engine vectorbt --cols 100

Workload: fixed-seed synthetic BTC-like market (525,600 one-minute bars, mark = last x (1 +
basis), funding every 8 h), ``sma_cross`` (10 fast/slow pairs) x leverage (10) x stop_loss (10)
= 1,000 columns, funding on, dated tiered liquidation (binanceusdm BTC/USDT:USDT). The warm-up
call (JIT compilation) is excluded. vectorbt's ``Portfolio.from_signals`` runs the equivalent
signals with the same stop-loss, fees and leverage-free sizing (it has no liquidation or funding)
at fewer columns, compared per bar·column. Peak RSS is the process high-water mark.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

N_BARS = 525_600
FASTS = [10, 20, 30, 60, 120]
SLOWS = [240, 720]
LEVERAGES = [1, 2, 3, 5, 8, 10, 15, 20, 25, 30]
STOPS = [None, 0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1]


def peak_rss_mib() -> float:
    """Return the process's peak resident set size in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_frames(n_bars: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Return fixed-seed OHLCV, mark and funding frames (GBM-like 1-minute BTC path)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=n_bars, freq="1min", tz="UTC")
    ret = rng.normal(0.0, 0.0008, n_bars)
    close = 40_000.0 * np.exp(np.cumsum(ret))
    open_ = np.empty(n_bars)
    open_[0] = 40_000.0
    open_[1:] = close[:-1]
    wiggle = np.abs(rng.normal(0.0, 0.0004, (2, n_bars)))
    high = np.maximum(open_, close) * (1.0 + wiggle[0])
    low = np.minimum(open_, close) * (1.0 - wiggle[1])
    basis = rng.normal(0.0, 0.0001, n_bars)
    ohlcv = pd.DataFrame(
        {
            "timestamp": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": np.ones(n_bars),
        }
    )
    mark = pd.DataFrame(
        {
            "timestamp": ts,
            "open": open_ * (1 + basis),
            "high": high * (1 + basis),
            "low": low * (1 + basis),
            "close": close * (1 + basis),
            "volume": np.zeros(n_bars),
        }
    )
    f_ts = pd.date_range("2024-01-01", periods=n_bars // 480, freq="8h", tz="UTC")
    funding = pd.DataFrame(
        {"timestamp": f_ts, "funding_rate": rng.normal(0.0001, 0.0001, f_ts.shape[0])}
    )
    return {"ohlcv": ohlcv, "mark": mark, "funding": funding}


def synthetic_market(n_bars: int) -> Any:
    """Return the benchmark's synthetic market (binanceusdm BTC/USDT:USDT tiers, 1m bars)."""
    import backtester as bt

    frames = synthetic_frames(n_bars)
    market = bt.Market.from_frames(
        frames["ohlcv"],
        mark=frames["mark"],
        funding=frames["funding"],
        symbol="BTC/USDT:USDT",
        exchange="binanceusdm",
        timeframe="1m",
    )
    del frames
    gc.collect()
    return market


def _floor_rate(market: Any, repeats: int, timed: Any) -> tuple[float, float]:
    # best of `repeats` of `timed()` and of the floor loop (1,000 hold columns on `market`),
    # interleaved; returns (best seconds of timed, floor bar·columns per second)
    from minimal_loop import floor_inputs, hold_columns, run_floor

    prices, rates = floor_inputs(market)
    lev, stop = hold_columns(1000)
    run_floor(prices[:2000], rates, lev[:2], stop[:2])  # JIT warm-up, untimed
    best_t = best_f = float("inf")
    for _ in range(repeats):
        best_t = min(best_t, timed())
        t0 = time.perf_counter()
        run_floor(prices, rates, lev, stop)
        best_f = min(best_f, time.perf_counter() - t0)
    return best_t, prices.shape[0] * lev.shape[0] / best_f


def bench_backtester(n_bars: int, n_cols: int, repeats: int = 3) -> dict[str, Any]:
    from minimal_loop import bench_floor

    import backtester as bt
    from backtester import strategies

    market = synthetic_market(n_bars)
    grid = bt.ParamGrid.product(fast=FASTS, slow=SLOWS, leverage=LEVERAGES, stop_loss=STOPS).take(
        np.arange(n_cols)
    )
    config = bt.RunConfig(taker_fee=0.0004, position_size=1.0, funding=True)
    warm = market.slice(end=market.index[5000])
    bt.run_sweep(warm, strategies.sma_cross, grid.take([0, 1]), config=config)  # JIT, untimed
    load0 = os.getloadavg()[0]
    runs: list[tuple[float, float, Any]] = []

    def timed() -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        result = bt.run_sweep(market, strategies.sma_cross, grid, config=config)
        runs.append((time.perf_counter() - t0, time.process_time() - c0, result))
        return runs[-1][0]

    _, floor_rate = _floor_rate(market, repeats, timed)
    elapsed, cpu, result = min(runs, key=lambda r: r[0])
    stats = result.stats()
    hold = bench_floor(market, 1000, repeats)
    return {
        "engine": "backtester",
        "n_bars": n_bars,
        "n_cols": grid.n_cols,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "bar_cols_per_s": n_bars * grid.n_cols / elapsed,
        "peak_rss_mib": peak_rss_mib(),
        "liquidations": int(stats["n_liquidations"].sum()),
        "trades": int(stats["n_trades"].sum()),
        "threads": int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1)),
        "floor_bar_cols_per_s": floor_rate,
        "hold_ratio": hold["ratio"],
        "load": (load0 + os.getloadavg()[0]) / 2.0,
    }


def _sma(values: np.ndarray, window: int) -> np.ndarray:
    out = np.full(values.shape[0], np.nan)
    csum = np.cumsum(values)
    out[window - 1] = csum[window - 1] / window
    out[window:] = (csum[window:] - csum[:-window]) / window
    return out


def bench_vectorbt(n_bars: int, n_cols: int, repeats: int = 1) -> dict[str, Any]:
    import vectorbt as vbt

    frames = synthetic_frames(n_bars)
    o = frames["ohlcv"]
    idx = pd.DatetimeIndex(o["timestamp"])
    close = pd.Series(o["close"].to_numpy(), index=idx)
    combos = [(f, s, lev, sl) for f in FASTS for s in SLOWS for lev in LEVERAGES for sl in STOPS]
    combos = combos[:n_cols]
    entries = np.zeros((n_bars, len(combos)), dtype=bool)
    exits = np.zeros((n_bars, len(combos)), dtype=bool)
    for c, (f, s, _, _) in enumerate(combos):
        fm, sm = _sma(close.to_numpy(), f), _sma(close.to_numpy(), s)
        above, below = fm > sm, fm < sm
        entries[1:, c] = above[1:] & ~above[:-1] & ~np.isnan(sm[:-1])
        exits[1:, c] = below[1:] & ~below[:-1] & ~np.isnan(sm[:-1])
    sl = np.array([np.nan if c[3] is None else c[3] for c in combos])
    cols = pd.RangeIndex(len(combos))
    kwargs = dict(
        close=pd.DataFrame(
            np.repeat(close.to_numpy()[:, None], len(combos), 1), index=idx, columns=cols
        ),
        entries=pd.DataFrame(entries, index=idx, columns=cols),
        short_entries=pd.DataFrame(exits, index=idx, columns=cols),
        sl_stop=sl,
        fees=0.0004,
        init_cash=10_000.0,
        freq="1min",
        open=pd.DataFrame(
            np.repeat(o["open"].to_numpy()[:, None], len(combos), 1), index=idx, columns=cols
        ),
        high=pd.DataFrame(
            np.repeat(o["high"].to_numpy()[:, None], len(combos), 1), index=idx, columns=cols
        ),
        low=pd.DataFrame(
            np.repeat(o["low"].to_numpy()[:, None], len(combos), 1), index=idx, columns=cols
        ),
    )
    small = {
        k: (v.iloc[:2000].copy() if isinstance(v, pd.DataFrame) else v) for k, v in kwargs.items()
    }
    vbt.Portfolio.from_signals(**small).final_value()  # JIT warm-up, untimed
    load0 = os.getloadavg()[0]
    runs: list[tuple[float, float, Any]] = []

    def timed() -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        final = vbt.Portfolio.from_signals(**kwargs).final_value()
        runs.append((time.perf_counter() - t0, time.process_time() - c0, final))
        return runs[-1][0]

    # the floor loop on the same bars (it needs only numpy and numba, which vectorbt has)
    floor_market = _FloorMarket(frames)
    _, floor_rate = _floor_rate(floor_market, repeats, timed)
    elapsed, cpu, final = min(runs, key=lambda r: r[0])
    return {
        "engine": "vectorbt " + vbt.__version__,
        "n_bars": n_bars,
        "n_cols": len(combos),
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "bar_cols_per_s": n_bars * len(combos) / elapsed,
        "peak_rss_mib": peak_rss_mib(),
        "liquidations": "n/a (no liquidation model)",
        "final_value_mean": float(np.mean(np.asarray(final))),
        "floor_bar_cols_per_s": floor_rate,
        "load": (load0 + os.getloadavg()[0]) / 2.0,
    }


class _FloorMarket:
    # the price and funding arrays the floor loop reads, from the frames (no backtester import)
    def __init__(self, frames: dict[str, pd.DataFrame]) -> None:
        o, m = frames["ohlcv"], frames["mark"]
        for c in ("open", "high", "low", "close"):
            setattr(self, c, o[c].to_numpy())
            setattr(self, "mark_" + c, m[c].to_numpy())
        self.funding_rate = frames["funding"]["funding_rate"].to_numpy()


def _print(row: dict[str, Any]) -> None:
    print(
        f"{row['engine']:<22} {row['n_bars']:>9,} bars x {row['n_cols']:>5,} cols  "
        f"{row['seconds']:8.2f} s  {row['bar_cols_per_s'] / 1e6:9.1f} M bar·cols/s  "
        f"(CPU {row['cpu_seconds']:.2f} s: "
        f"{row['n_bars'] * row['n_cols'] / row['cpu_seconds'] / 1e6:.1f} M bar·cols per CPU-s)  "
        f"peak RSS {row['peak_rss_mib']:8.0f} MiB",
        flush=True,
    )
    hold = f"; hold columns at {row['hold_ratio']:.2f} of the loop" if "hold_ratio" in row else ""
    print(
        f"{'':<22} vs the minimal loop timed in the same process (interleaved, best of each): "
        f"{row['bar_cols_per_s'] / row['floor_bar_cols_per_s']:.3f} of its bar·cols/s "
        f"({row['floor_bar_cols_per_s'] / 1e6:.0f} M){hold}; load average {row['load']:.2f}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["both", "backtester", "vectorbt"], default="both")
    parser.add_argument("--bars", type=int, default=N_BARS)
    parser.add_argument("--cols", type=int, default=1000, help="backtester columns")
    parser.add_argument("--vbt-cols", type=int, default=100, help="vectorbt columns")
    parser.add_argument("--repeats", type=int, default=3, help="backtester runs (best kept)")
    parser.add_argument("--vbt-repeats", type=int, default=1, help="vectorbt runs (best kept)")
    parser.add_argument(
        "--vbt-python",
        default=os.environ.get("VBT_PYTHON", ""),
        help="python of a venv with vectorbt (if not importable here)",
    )
    args = parser.parse_args(argv)
    if args.engine == "backtester":
        _print(bench_backtester(args.bars, args.cols, args.repeats))
        return 0
    if args.engine == "vectorbt":
        _print(bench_vectorbt(args.bars, args.vbt_cols, args.vbt_repeats))
        return 0
    # both: each engine in its own process so peak RSS is per engine
    here = Path(__file__).resolve()
    common = ["--bars", str(args.bars)]
    subprocess.run(
        [
            sys.executable,
            str(here),
            "--engine",
            "backtester",
            "--cols",
            str(args.cols),
            "--repeats",
            str(args.repeats),
            *common,
        ],
        check=True,
    )
    vbt_python = args.vbt_python or sys.executable
    probe = subprocess.run([vbt_python, "-c", "import vectorbt"], capture_output=True)
    if probe.returncode != 0:
        alt = Path("/work/venv-vbt/bin/python")
        if not args.vbt_python and alt.exists():
            vbt_python = str(alt)
            probe = subprocess.run([vbt_python, "-c", "import vectorbt"], capture_output=True)
    if probe.returncode != 0:
        print(
            "vectorbt             not installed (pip install 'backtester[bench]' or set "
            "--vbt-python); skipped"
        )
        return 0
    subprocess.run(
        [
            vbt_python,
            str(here),
            "--engine",
            "vectorbt",
            "--vbt-cols",
            str(args.vbt_cols),
            "--vbt-repeats",
            str(args.vbt_repeats),
            *common,
        ],
        check=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
