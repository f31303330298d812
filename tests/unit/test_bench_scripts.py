"""The benchmark scripts' reference paths still run against the current API (they are not timed
in tests, but a benchmark that raises reports nothing)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import backtester as bt

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(_BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, _BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(_BENCH))


def test_strategy_survival_old_path_runs_the_study_settings() -> None:
    market = bt.load_market("BTC/USDT:USDT", start="2023-01-01", end="2023-02-10")
    old = _load("bench_strategy_survival")._old_path(market)
    out = old()
    study_settings = 48  # sma_cross's 6 parameter pairs x the study's 8 leverages
    assert out["exit_idx"].shape[0] == study_settings
    assert out["exit_idx"].shape[1] > 0
