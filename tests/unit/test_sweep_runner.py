"""Sweep runner: result table assembly, run.json, open_run, resume rules, executors agree.

The chunk function here is a small real computation on the bundled BTC bars (a leveraged
buy-and-hold return, no engine) so the runner's bookkeeping is tested on its own; the
end-to-end tests with the engine live in test_sweep_engine.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.errors import ConfigError, DataError
from backtester.sweep import open_run
from backtester.sweep.config import SweepSpec, parse_spec
from backtester.sweep.executors import ProcessExecutor, SerialExecutor, make_executor
from backtester.sweep.plan import Chunk, chunk_values, key_frame
from backtester.sweep.runner import _execute, load_spec_market

# -- this module is also the strategy of its configs ---------------------------------------------
PARAMS: dict[str, list[Any]] = {"window": [2, 3], "side": ["long", "short"]}


def signals(market: Any, grid: Any) -> Any:  # never called: the chunk function below is used
    raise NotImplementedError


def toy_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame:
    """Return side x leverage x (close[-1] / mean(close[:window]) - 1) for each column."""
    values = chunk_values(spec, chunk.start, chunk.stop)
    close = market.close
    window = np.asarray(values["window"], dtype=np.int64)
    base = np.array([close[:w].mean() for w in window])
    sign = np.where(np.asarray(values["side"]) == "long", 1.0, -1.0)
    leverage = np.asarray(values.get("leverage", [1.0] * chunk.n_cols), dtype=float)
    stats = pd.DataFrame(
        {
            "total_return": sign * leverage * (close[-1] / base - 1.0),
            "n_bars": np.full(chunk.n_cols, market.n_bars, dtype=np.int64),
        }
    )
    return pd.concat([key_frame(spec, chunk), stats], axis=1)


CALLS: list[str] = []


def counting_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame:
    CALLS.append(chunk.id)
    return toy_chunk(spec, chunk, market)


class Interrupt(KeyboardInterrupt):
    pass


def interrupting_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame:
    """Finish three chunks, then behave like Ctrl-C."""
    if len(CALLS) == 3:
        raise Interrupt
    return counting_chunk(spec, chunk, market)


CONFIG: dict[str, Any] = {
    "market": {
        "symbols": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
        "start": "2024-01-01",
        "end": "2024-01-15",
    },
    "strategy": {"name": __file__, "grid": {"window": [2, 3, 4]}},
    "engine": {"grid": {"leverage": [1, 5, 20]}},
}  # 3 windows x 2 sides x 3 leverages = 18 columns per symbol


def run(out: Path, function: Any = toy_chunk, **options: Any) -> Any:
    options.setdefault("resume", False)
    options.setdefault("progress", False)
    options.setdefault("chunk_size", 4)  # 18 columns -> chunks of 4, 4, 4, 4, 2 per symbol
    executor = options.pop("executor", SerialExecutor(function))
    return _execute(options.pop("config", CONFIG), out=out, executor=executor, **options)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return run(tmp_path_factory.mktemp("sweep") / "reference")


def test_table_is_keyed_by_symbol_and_every_parameter(reference: Any) -> None:
    # Arrange / Act: done by the fixture (2 symbols x 18 columns)
    table = reference.table
    # Assert
    assert list(table.columns) == [
        "symbol",
        "window",
        "side",
        "leverage",
        "col",
        "total_return",
        "n_bars",
    ]
    assert len(table) == 36
    assert not table.duplicated(["symbol", "window", "side", "leverage"]).any()
    assert list(table["col"]) == list(range(18)) * 2
    # shape (3 windows, 2 sides, 3 leverages): col 7 -> window[7 // 6 = 1] = 3,
    # side[(7 % 6) // 3 = 0] = long, leverage[7 % 3 = 1] = 5
    row = table[(table.symbol == "BTC/USDT:USDT") & (table.col == 7)].iloc[0]
    assert (row.window, row.side, row.leverage) == (3, "long", 5)


def test_values_match_the_chunk_function_on_the_whole_grid(reference: Any) -> None:
    # the same function over all 18 columns at once gives the same numbers as the chunks
    spec = parse_spec(CONFIG)
    market = load_spec_market(spec, "ETH/USDT:USDT")
    whole = toy_chunk(spec, Chunk("x", "ETH/USDT:USDT", 0, 18), market)
    eth = reference.table[reference.table.symbol == "ETH/USDT:USDT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(eth, whole, check_dtype=False)


def test_run_json_records_config_version_and_data_hashes(reference: Any) -> None:
    meta = reference.metadata
    assert meta["status"] == "complete"
    assert meta["backtester_version"]
    assert meta["n_chunks"] == 10 and meta["chunk_size"] == 4
    spec = parse_spec(CONFIG)
    assert meta["config_sha256"] == spec.fingerprint()
    assert meta["config"] == spec.to_dict() == reference.config
    btc = load_spec_market(spec, "BTC/USDT:USDT")
    assert meta["data"]["BTC/USDT:USDT"]["sha256"] == btc.fingerprint()
    assert meta["data"]["BTC/USDT:USDT"]["n_bars"] == btc.n_bars


def test_open_run_and_best(reference: Any) -> None:
    # Act
    again = open_run(reference.path)
    best = again.best(3)
    # Assert
    pd.testing.assert_frame_equal(again.table, reference.table)
    assert list(best["total_return"]) == sorted(reference.table["total_return"], reverse=True)[:3]
    assert again.worst(1)["total_return"].iloc[0] == reference.table["total_return"].min()
    assert again.keys == ["symbol", "window", "side", "leverage", "col"]
    with pytest.raises(ConfigError, match="did you mean 'total_return'"):
        again.best(by="total_retrun")


def test_out_that_holds_a_run_needs_resume(reference: Any) -> None:
    with pytest.raises(ConfigError, match="already holds a sweep; pass --resume"):
        run(reference.path)


def test_resume_of_a_complete_run_does_no_work(reference: Any) -> None:
    CALLS.clear()
    again = run(reference.path, counting_chunk, resume=True)
    assert CALLS == []
    pd.testing.assert_frame_equal(again.table, reference.table)


def test_resume_with_another_config_is_refused(tmp_path: Path) -> None:
    run(tmp_path / "r")
    other = {**CONFIG, "engine": {"grid": {"leverage": [1, 5, 10]}}}
    with pytest.raises(ConfigError, match="does not match the config the run"):
        run(tmp_path / "r", config=other, resume=True)
    with pytest.raises(ConfigError, match=r"chunk_size must match the run's plan \(4\), was 5"):
        run(tmp_path / "r", resume=True, chunk_size=5)


def test_interrupted_run_resumes_without_recomputing(tmp_path: Path, reference: Any) -> None:
    # Arrange: Ctrl-C after three chunks
    CALLS.clear()
    with pytest.raises(Interrupt):
        run(tmp_path / "r", interrupting_chunk)
    finished = sorted(p.stem for p in (tmp_path / "r" / "chunks").glob("*.parquet"))
    assert finished == sorted(CALLS) and len(finished) == 3
    with pytest.raises(DataError, match=r"not finished \(3 of 10 chunks\); resume it with"):
        open_run(tmp_path / "r")
    # Act
    CALLS.clear()
    resumed = run(tmp_path / "r", counting_chunk, resume=True, chunk_size=None)
    # Assert: only the 7 missing chunks ran, and the table equals an uninterrupted run
    assert len(CALLS) == 7 and not set(CALLS) & set(finished)
    pd.testing.assert_frame_equal(resumed.table, reference.table)
    assert resumed.metadata["resumed"] is True and resumed.metadata["chunks_run"] == 7


def test_damaged_chunk_and_temp_files_are_redone(tmp_path: Path, reference: Any) -> None:
    # Arrange: a full run, then one chunk truncated, one deleted, and a stale temp file
    out = tmp_path / "r"
    run(out)
    chunks = sorted((out / "chunks").glob("*.parquet"))
    chunks[0].write_bytes(chunks[0].read_bytes()[:100])
    chunks[5].unlink()
    (out / "chunks" / ".tmp-123-000-0000000004.parquet").write_bytes(b"partial")
    (out / "results.parquet").unlink()
    meta = (out / "run.json").read_text().replace('"complete"', '"running"')
    (out / "run.json").write_text(meta)
    # Act
    CALLS.clear()
    resumed = run(out, counting_chunk, resume=True)
    # Assert
    assert sorted(CALLS) == sorted([chunks[0].stem, chunks[5].stem])
    assert not list((out / "chunks").glob(".tmp-*"))
    pd.testing.assert_frame_equal(resumed.table, reference.table)


def test_changed_data_refuses_to_resume(tmp_path: Path) -> None:
    CALLS.clear()
    with pytest.raises(Interrupt):
        run(tmp_path / "r", interrupting_chunk)

    def shorter(spec: SweepSpec, symbol: str) -> Any:
        market = load_spec_market(spec, symbol)
        return market.slice(market.index[0], market.index[-3])

    with pytest.raises(DataError, match="the data of BTC/USDT:USDT changed since the run started"):
        _execute(
            CONFIG, out=tmp_path / "r", executor=SerialExecutor(toy_chunk), resume=True,
            progress=False, chunk_size=None, load=shorter,
        )  # fmt: skip


def test_non_empty_out_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not an empty sweep directory"):
        run(tmp_path)


def test_open_run_on_a_plain_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is not a sweep run \(no run.json\)"):
        open_run(tmp_path)


def test_process_workers_equal_serial(tmp_path: Path, reference: Any) -> None:
    # two spawned worker processes, results arrive in any order, the table is identical
    result = run(tmp_path / "p", executor=ProcessExecutor(toy_chunk, 2))
    pd.testing.assert_frame_equal(result.table, reference.table)


def test_make_executor_options() -> None:
    assert isinstance(make_executor(toy_chunk, workers=1), SerialExecutor)
    assert isinstance(make_executor(toy_chunk, workers=3), ProcessExecutor)
    with pytest.raises(ConfigError, match="workers must be an integer >= 1, was 0"):
        make_executor(toy_chunk, workers=0)
    with pytest.raises(
        ConfigError, match="scheduler must be an address like tls://HOST:PORT or tcp://HOST:PORT"
    ):
        make_executor(toy_chunk, scheduler="localhost:8786")


def test_resume_with_another_package_version_is_refused(tmp_path: Path) -> None:
    # Arrange: an interrupted run whose run.json says it was started by another version
    CALLS.clear()
    with pytest.raises(Interrupt):
        run(tmp_path / "r", interrupting_chunk)
    meta_path = tmp_path / "r" / "run.json"
    meta_path.write_text(
        meta_path.read_text().replace('"backtester_version": "', '"backtester_version": "0.0.0-')
    )
    # Act / Assert
    with pytest.raises(ConfigError, match=r"was started with backtester 0\.0\.0-"):
        run(tmp_path / "r", resume=True)


_MARKETS: dict[str, Any] = {}


def cached_market(spec: SweepSpec, symbol: str) -> Any:
    if symbol not in _MARKETS:
        _MARKETS[symbol] = load_spec_market(spec, symbol)
    return _MARKETS[symbol]


def stop_after(n: int) -> Any:
    def chunk_function(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame:
        if len(CALLS) >= n:
            raise Interrupt
        return counting_chunk(spec, chunk, market)

    return chunk_function


@settings(max_examples=15)
@given(kill_after=st.integers(0, 12), chunk_size=st.integers(1, 18))
def test_any_interruption_resumes_to_the_same_table(kill_after: int, chunk_size: int) -> None:
    """Interrupting after any number of chunks, then resuming, gives the uninterrupted table."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r"

        def go(function: Any, resume: bool, **kw: Any) -> Any:
            return _execute(
                CONFIG, out=out, executor=SerialExecutor(function), resume=resume,
                progress=False, chunk_size=chunk_size, load=cached_market, **kw,
            )  # fmt: skip

        CALLS.clear()
        n_chunks = 2 * -(-18 // chunk_size)
        if kill_after < n_chunks:
            with pytest.raises(Interrupt):
                go(stop_after(kill_after), False)
            CALLS.clear()
            resumed = go(counting_chunk, True)
            assert len(CALLS) == n_chunks - kill_after  # nothing finished is recomputed
        else:
            resumed = go(counting_chunk, False)
        full = _execute(
            CONFIG, out=Path(tmp) / "full", executor=SerialExecutor(toy_chunk), resume=False,
            progress=False, chunk_size=None, load=cached_market,
        )  # fmt: skip
        pd.testing.assert_frame_equal(resumed.table, full.table, check_exact=True)


def test_a_strategy_value_the_strategy_refuses_fails_before_any_work(tmp_path: Path) -> None:
    # Arrange: the bundled hold strategy only knows side = "long" / "short"; before the pre-check
    # the run directory was created and the error came from a worker without file or section
    bad = {
        "market": {"symbols": ["BTC/USDT:USDT"], "start": "2024-01-01", "end": "2024-01-15"},
        "strategy": {"name": "hold", "grid": {"side": ["long", "sideways"]}},
        "engine": {"grid": {"leverage": [1, 5]}},
    }
    out = tmp_path / "r"
    # Act
    with pytest.raises(ConfigError) as info:
        run(out, config=bad, executor=SerialExecutor(toy_chunk), load=load_spec_market)
    # Assert: one line naming the source, the section, the value and the fix; nothing written
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("<dict>: [strategy.grid] is invalid for hold")
    assert "'sideways'" in message and "fix the value in the config" in message
    assert not out.exists()


def test_leverage_above_the_tier_maximum_fails_before_any_work(tmp_path: Path) -> None:
    # Arrange: Binance's BTC tier-1 maximum is 125x over 2024; 500x used to fail in a worker,
    # after the run directory was made, without naming the file or the key
    bad = {**CONFIG, "engine": {"grid": {"leverage": [5, 500]}}}
    out = tmp_path / "r"
    # Act
    with pytest.raises(ConfigError) as info:
        run(out, config=bad, executor=SerialExecutor(toy_chunk), load=load_spec_market)
    # Assert
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("<dict>: [engine.grid] leverage does not fit BTC/USDT:USDT: ")
    assert "(0, 125]" in message and "was 500" in message and "tier_table" in message
    assert not out.exists()
