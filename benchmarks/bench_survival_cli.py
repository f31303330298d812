"""The main job's wall time: ``backtester survival`` as a ratio to the minimal loop (issue 12, part 1).

    python benchmarks/bench_survival_cli.py [--repeats 3] [--no-cold] [--baseline PATH]

Times, each in a fresh process as a user runs it (``python -m backtester survival``, default
options: bundled BTC/USDT:USDT 1h data, both sides, 8 leverages x 4 stops, 30-day horizon,
daily entries): the full study with its HTML report (``--out`` a temporary folder), the table
only (``--no-report``), both with numba's on-disk cache warm (one untimed run fills it), and a
first, compiling run (``NUMBA_CACHE_DIR`` a new empty folder, so every kernel compiles). Each
timed run is interleaved with the minimal loop's 525,600 x 1,000 run (``minimal_loop.py``, in
this process) and the best of ``--repeats`` of each is kept, so the ratios compare like with
like on a shared machine; the load average is printed with them. Targets (issue 12): full
<= 9x the loop (<= 5 s on the 2-core machine), ``--no-report`` <= 3.5x (<= 2 s), first run
<= 25 s. ``--baseline PATH`` times another checkout the same way, interleaved (before/after
in one run). Never asserted in tests: compare runs on the same machine only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

LABELS = {
    "full": ("survival (full report, warm)", 9.0, 5.0),
    "no-report": ("survival --no-report (warm)", 3.5, 2.0),
    "cold": ("survival (first run, compiling)", None, 25.0),
}


def _env(repo: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    # as a user's install runs: with compiled bytecode (pip writes it at install; the untimed
    # warm-up run writes it here), not every module compiled from source at every start as
    # PYTHONDONTWRITEBYTECODE=1 (set on the project machine) would make it (~0.15 s)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH")) if p)
    return env


def _cli(python: str, repo: Path, args: list[str], env: dict[str, str]) -> float:
    # one `python -m backtester survival ...` in a fresh process; its wall time
    t0 = time.perf_counter()
    done = subprocess.run(
        [python, "-m", "backtester", "survival", *args],
        env=env,
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"backtester survival {' '.join(args)} failed:\n{done.stderr}")
    return elapsed


def main() -> int:
    from bench_engine import synthetic_frames  # type: ignore[import-not-found]
    from minimal_loop import hold_columns, run_floor  # type: ignore[import-not-found]

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cold", action="store_true", help="skip the compiling first run")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run the CLI")
    parser.add_argument("--baseline", type=Path, help="another checkout to time the same way")
    args = parser.parse_args()

    frames = synthetic_frames(525_600)
    o, mk = frames["ohlcv"], frames["mark"]
    cols = ("open", "high", "low", "close")
    prices = np.column_stack([o[c].to_numpy() for c in cols] + [mk[c].to_numpy() for c in cols])
    rates = frames["funding"]["funding_rate"].to_numpy()
    lev, stop = hold_columns(1000)
    run_floor(prices[:2000], rates, lev[:2], stop[:2])  # JIT warm-up, untimed

    def floor() -> float:
        t0 = time.perf_counter()
        run_floor(prices, rates, lev, stop)
        return time.perf_counter() - t0

    repos = {"": ROOT}
    if args.baseline is not None:
        repos[" [baseline]"] = args.baseline.resolve()
    out = tempfile.mkdtemp(prefix="bench-survival-")
    full = ["--out", out]
    runs: list[tuple[str, Callable[[], float]]] = []
    for tag, repo in repos.items():
        env = _env(repo)
        _cli(args.python, repo, full, env)  # fills numba's cache (and the data read), untimed
        runs.append((f"full{tag}", lambda r=repo, e=env: _cli(args.python, r, full, e)))
        runs.append(
            (f"no-report{tag}", lambda r=repo, e=env: _cli(args.python, r, ["--no-report"], e))
        )
    loads = [os.getloadavg()[0]]
    best: dict[str, float] = {"floor": float("inf")}
    for _ in range(args.repeats):
        for name, run in runs:
            best["floor"] = min(best["floor"], floor())
            best[name] = min(best.get(name, float("inf")), run())
            loads.append(os.getloadavg()[0])
    if not args.no_cold:
        for tag, repo in repos.items():
            with tempfile.TemporaryDirectory(prefix="bench-numba-cache-") as cache:
                best["floor"] = min(best["floor"], floor())
                env = _env(repo, NUMBA_CACHE_DIR=cache)
                best[f"cold{tag}"] = _cli(args.python, repo, full, env)
                loads.append(os.getloadavg()[0])
    f = best["floor"]
    print(
        f"minimal loop 525,600 x 1,000: {f:.3f} s (best of {len(loads) - 1}); "
        f"load average {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} cores"
    )
    for tag in repos:
        for name, (label, ratio_target, s_target) in LABELS.items():
            if name + tag not in best:
                continue
            goal = f"<= {ratio_target:g}x, {s_target:g} s" if ratio_target else f"<= {s_target:g} s"
            t = best[name + tag]
            print(f"{label + tag:44s} {t:6.2f} s = {t / f:5.1f}x the loop  (target {goal})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
