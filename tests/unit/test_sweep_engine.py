"""Sweeps through the real engine: the chunked table equals one direct run_sweep / survival_study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester import strategies
from backtester.sweep import run_config
from backtester.sweep.config import parse_spec
from backtester.sweep.executors import SerialExecutor
from backtester.sweep.runner import _execute, load_spec_market, run_chunk

SWEEP: dict[str, Any] = {
    "market": {"symbols": ["BTC/USDT:USDT"], "start": "2024-06-01", "end": "2024-09-01"},
    "strategy": {"name": "sma_cross", "grid": {"fast": [10, 20], "slow": [50, 100]}},
    "engine": {
        "taker_fee": 0.0004,
        "grid": {"leverage": [1, 10, 30], "stop_loss": ["none", 0.03]},
    },
}  # 2 x 2 x 3 x 2 = 24 columns


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("engine") / "run"
    return run_config(SWEEP, out=out, workers=1, chunk_size=5)  # chunks of 5, 5, 5, 5, 4


def test_chunked_sweep_equals_one_direct_run_sweep(chunked: Any) -> None:
    # Arrange: the same grid in one call; ParamGrid.product is C order like the plan
    market = bt.load_market("BTC/USDT:USDT", start="2024-06-01", end="2024-09-01")
    grid = bt.ParamGrid.product(
        fast=[10, 20], slow=[50, 100], leverage=[1, 10, 30], stop_loss=[None, 0.03]
    )
    # Act
    direct = bt.run_sweep(market, strategies.sma_cross, grid, config=bt.RunConfig(taker_fee=0.0004))
    stats = direct.stats().reset_index()
    # Assert: keys and every statistic equal, row for row
    table = chunked.table
    assert list(table["fast"]) == list(stats["fast"])
    assert list(table["leverage"]) == list(stats["leverage"])
    np.testing.assert_array_equal(table["stop_loss"].isna(), stats["stop_loss"].isna())
    for name in ("final_equity", "total_return", "max_drawdown", "n_liquidations", "fees_paid"):
        np.testing.assert_array_equal(table[name].to_numpy(), stats[name].to_numpy(), err_msg=name)


def test_chunk_size_never_changes_results(tmp_path: Path, chunked: Any) -> None:
    one = run_config(SWEEP, out=tmp_path / "one", workers=1, chunk_size=24)
    pd.testing.assert_frame_equal(one.table, chunked.table, check_exact=True)


def test_leverage_liquidates_more(chunked: Any) -> None:
    # sanity on real data: 30x without a stop is liquidated at least as often as 1x
    t = chunked.table[chunked.table.stop_loss.isna()]
    by_leverage = t.groupby("leverage")["n_liquidations"].sum()
    assert by_leverage[1] == 0
    assert by_leverage[30] >= by_leverage[10] >= by_leverage[1]


SURVIVAL: dict[str, Any] = {
    "market": {"symbols": ["BTC/USDT:USDT"], "start": "2024-06-01", "end": "2025-01-01"},
    "survival": {"horizon": "10D", "entry_every": "2D", "side": "both"},
    "engine": {"taker_fee": 0.0005, "grid": {"leverage": [2, 50], "stop_loss": ["none", 0.05]}},
}


def test_survival_sweep_rows_equal_a_direct_study(tmp_path: Path) -> None:
    # Arrange
    run = _execute(
        SURVIVAL, out=tmp_path / "s", executor=SerialExecutor(run_chunk), resume=False,
        progress=False, chunk_size=3,
    )  # fmt: skip
    spec = parse_spec(SURVIVAL)
    market = load_spec_market(spec, "BTC/USDT:USDT")
    # Act: one study with the whole grid
    direct = bt.survival_study(
        market, side="both", leverage=(2, 50), stop_loss=(None, 0.05), horizon="10D",
        entry_every="2D", taker_fee=0.0005,
    ).table().reset_index()  # fmt: skip
    # Assert: 2 leverages x 2 stops x 2 sides, same survival per setting and side
    table = run.table
    assert len(table) == 8
    merged = table.merge(
        direct.assign(stop_loss=direct["stop_loss"].astype(float)),
        on=["leverage", "stop_loss", "side"],
        suffixes=("", "_direct"),
    )
    assert len(merged) == 8
    np.testing.assert_array_equal(merged["survival"], merged["survival_direct"])
    np.testing.assert_array_equal(merged["n_liquidated"], merged["n_liquidated_direct"])
    assert run.keys == ["symbol", "leverage", "stop_loss", "side", "col"]


def test_trades_are_recorded_keyed_like_the_results(tmp_path: Path, chunked: Any) -> None:
    # Arrange: the same sweep with [output] trades = true
    config = {**SWEEP, "output": {"trades": True}}
    # Act
    run = run_config(config, out=tmp_path / "t", workers=1, chunk_size=5)
    trades = run.trades()
    # Assert: one row per trade of the direct run, keyed by symbol, parameters and col
    market = bt.load_market("BTC/USDT:USDT", start="2024-06-01", end="2024-09-01")
    grid = bt.ParamGrid.product(
        fast=[10, 20], slow=[50, 100], leverage=[1, 10, 30], stop_loss=[None, 0.03]
    )
    direct = bt.run_sweep(market, strategies.sma_cross, grid, config=bt.RunConfig(taker_fee=0.0004))
    expected = direct.trades()
    assert list(trades.columns[:6]) == ["symbol", "fast", "slow", "leverage", "stop_loss", "col"]
    assert len(trades) == len(expected) == int(chunked.table["n_trades"].sum())
    np.testing.assert_array_equal(trades["col"], expected["col"])
    np.testing.assert_array_equal(trades["pnl"], expected["pnl"])
    np.testing.assert_array_equal(trades["entry_time"], expected["entry_time"])
    pd.testing.assert_frame_equal(run.table, chunked.table)


def test_resume_recomputes_trades_of_an_unfinished_chunk(tmp_path: Path) -> None:
    # Arrange: a finished run with trades; then chunk 2's results file is lost (its trades file
    # stays, as after a kill between the two writes) and the run is marked unfinished
    config = {**SWEEP, "output": {"trades": True}}
    out = tmp_path / "t"
    first = run_config(config, out=out, workers=1, chunk_size=5)
    trades_before = first.trades()
    (out / "chunks" / "000-0000000010.parquet").unlink()
    (out / "results.parquet").unlink()
    (out / "trades.parquet").unlink()
    meta = out / "run.json"
    meta.write_text(meta.read_text().replace('"complete"', '"running"'))
    # Act
    again = run_config(config, out=out, resume=True, workers=1)
    # Assert
    assert again.metadata["chunks_run"] == 1
    pd.testing.assert_frame_equal(again.trades(), trades_before, check_exact=True)
    pd.testing.assert_frame_equal(again.table, first.table, check_exact=True)


def test_strategy_survival_sweep_rows_equal_a_direct_study(tmp_path: Path) -> None:
    # Arrange: [strategy] + [survival]: each row is a strategy-driven survival study
    config: dict[str, Any] = {
        "market": {"symbols": ["BTC/USDT:USDT"], "start": "2024-06-01", "end": "2024-09-01"},
        "strategy": {"name": "hold"},  # side = [long, short] from PARAMS
        "survival": {"horizon": "10D", "entry_every": "5D"},
        "engine": {"taker_fee": 0.0005, "grid": {"leverage": [3, 40]}},
    }
    # Act
    run = run_config(config, out=tmp_path / "s", workers=1, chunk_size=3)
    market = bt.load_market("BTC/USDT:USDT", start="2024-06-01", end="2024-09-01")
    direct = bt.survival_study(
        market, strategy=strategies.hold, leverage=(3, 40), horizon="10D", entry_every="5D",
        taker_fee=0.0005,
    ).table().reset_index()  # fmt: skip
    # Assert: 2 sides x 2 leverages, the same estimates as one study over the whole grid
    table = run.table
    assert list(table[["side", "leverage"]].itertuples(index=False, name=None)) == [
        ("long", 3), ("long", 40), ("short", 3), ("short", 40),
    ]  # fmt: skip
    merged = table.merge(direct, on=["side", "leverage"], suffixes=("", "_direct"))
    assert len(merged) == 4
    np.testing.assert_array_equal(merged["survival"], merged["survival_direct"])
    np.testing.assert_array_equal(merged["n_liquidated"], merged["n_liquidated_direct"])
    assert run.keys == ["symbol", "side", "leverage", "col"]
