"""The benchmark scripts' reference paths still run against the current API (they are not timed
in tests, but a benchmark that raises reports nothing)."""

from __future__ import annotations

import backtester as bt
from tests.helpers.scripts import BENCHMARKS, load_script


def test_strategy_survival_old_path_runs_the_study_settings() -> None:
    market = bt.load_market("BTC/USDT:USDT", start="2023-01-01", end="2023-02-10")
    bench = load_script("bench_strategy_survival", folder=BENCHMARKS)
    out = bench._old_path(market)()
    study_settings = 48  # sma_cross's 6 parameter pairs x the study's 8 leverages
    assert out["exit_idx"].shape[0] == study_settings
    assert out["exit_idx"].shape[1] > 0
