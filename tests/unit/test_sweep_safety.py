"""Sweep runs are never mixed, lost or written outside their folder.

- one process at a time per run directory (an OS lock naming its holder; a dead holder's lock
  is taken over), tested with real processes;
- a resume after the strategy's code changed is refused (the plan records its source sha256),
  and a chunk never runs code other than the plan's;
- a tampered or damaged plan.json / run.json / results.parquet is one line naming the file;
- an --out that is a file or cannot be written, and a full disk, are one line naming the path.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtester.errors import ConfigError, DataError
from backtester.sweep import open_run
from backtester.sweep.config import SweepSpec
from backtester.sweep.executors import SerialExecutor
from backtester.sweep.plan import Chunk, key_frame
from backtester.sweep.runner import _execute, run_chunk
from backtester.sweep.store import RunStore
from tests.unit.test_sweep_runner import CALLS, CONFIG, Interrupt, counting_chunk, run, toy_chunk

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys
from backtester.sweep.store import RunStore
with RunStore(sys.argv[1]).lock():
    print("locked", flush=True)
    sys.stdin.readline()
"""


def hold_lock(out: Path) -> subprocess.Popen[str]:
    # another real process that holds the run directory's lock until told (or killed)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def interrupted(out: Path, **options: Any) -> None:
    # a run stopped by Ctrl-C after three of its ten chunks
    CALLS.clear()
    with pytest.raises(Interrupt):
        run(out, interrupting, **options)


def interrupting(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame:
    if len(CALLS) == 3:
        raise Interrupt
    return counting_chunk(spec, chunk, market)


# -- 1. one process per run directory ---------------------------------------------------------


def test_a_second_process_on_the_same_out_is_refused_naming_the_holder(tmp_path: Path) -> None:
    # Arrange: a real process holds the lock of the (still empty) run directory
    out = tmp_path / "r"
    holder = hold_lock(out)
    try:
        # Act: a sweep of another config on the same --out
        other = {**CONFIG, "engine": {"grid": {"leverage": [2, 3]}}}
        with pytest.raises(ConfigError) as info:
            run(out, config=other)
        written = sorted(p.name for p in out.iterdir())
    finally:
        holder.communicate("\n", timeout=30)
    # Assert: refused before writing anything, naming pid, host and start time
    message = str(info.value)
    assert "is in use by another sweep" in message and "\n" not in message
    assert f"pid {holder.pid} on host {socket.gethostname()}, started 20" in message
    assert written == [".sweep.lock"]  # the holder's; nothing of the refused run
    # the holder released cleanly: the next run takes the directory
    assert len(run(out).table) == 36


def test_a_lock_left_by_a_killed_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: the holder is SIGKILLed (no cleanup): its lock file and text stay behind
    out = tmp_path / "r"
    holder = hold_lock(out)
    holder.kill()
    holder.communicate(timeout=30)
    assert (out / ".sweep.lock").read_text().startswith('{"pid": ')
    # Act
    with caplog.at_level(logging.WARNING, logger="backtester.sweep.store"):
        result = run(out)
    # Assert: the run completes, says whose lock it took over, and leaves no lock file
    assert len(result.table) == 36
    assert f"left by pid {holder.pid} on host" in caplog.text
    assert not (out / ".sweep.lock").exists()


SWEEP_TOML = """
[market]
symbols = ["BTC/USDT:USDT"]
start = "2024-06-01"
end = "2025-06-01"

[strategy]
name = "sma_cross"

[strategy.grid]
fast = [10, 20]
slow = [50, 100, 200]

[engine.grid]
leverage = [1, 3, 10, 25]
stop_loss = ["none", 0.02, 0.05]
"""  # 72 columns; --chunk-size 2 -> 36 chunks


SLOW_SMA = """
import time

from backtester.strategies import sma_cross

PARAMS = {"fast": [10, 20], "slow": [50, 100, 200]}  # sma_cross.PARAMS, as a literal


def signals(market, grid):
    time.sleep(0.5)  # each chunk takes at least this long: the run is still going when the
    return sma_cross.signals(market, grid)  # second sweep starts, however fast the engine is
"""


def test_two_real_sweeps_on_one_out_never_run_at_once(tmp_path: Path) -> None:
    # Arrange: a real `backtester sweep` running (36 chunks of at least 0.5 s each: a fast engine
    # once finished the plain sma_cross run before the second sweep started), then a second one
    # resuming the same --out
    strategy = tmp_path / "slow_sma.py"
    strategy.write_text(SLOW_SMA)
    config = tmp_path / "sma.toml"
    config.write_text(SWEEP_TOML.replace('name = "sma_cross"', f'name = "{strategy}"'))
    out = tmp_path / "r"
    command = [sys.executable, "-m", "backtester", "sweep", str(config), "--out", str(out)]
    options = ["--chunk-size", "2", "--workers", "1", "--no-progress"]
    first = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while not (out / "plan.json").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first sweep never started"
            time.sleep(0.02)
        # Act
        second = subprocess.run(
            [*command, "--resume", *options], capture_output=True, text=True, timeout=120
        )
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    # Assert: the second refused in one line naming the first; only one process wrote chunks
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1
    assert f"is in use by another sweep (pid {first.pid} on host" in second.stderr


# -- 2. the strategy's code is part of the plan -----------------------------------------------

STRATEGY = """
import numpy as np
from backtester.signals import Signals

PARAMS = {"window": [2, 3], "side": ["long", "short"]}


def signals(market, grid):
    longs = np.zeros((market.n_bars, grid.n_cols), dtype=np.bool_)
    longs[:, :] = True
    return Signals(longs, None, None, None)
"""


def file_config(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    path = tmp_path / "my_strategy.py"
    path.write_text(STRATEGY)
    return {**CONFIG, "strategy": {"name": str(path), "grid": {"window": [2, 3, 4]}}}, path


def test_resume_after_the_strategy_code_changed_is_refused(tmp_path: Path) -> None:
    # Arrange: an interrupted run, then the strategy file is edited
    config, path = file_config(tmp_path)
    out = tmp_path / "r"
    interrupted(out, config=config)
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["strategy_sha256"]) == 64
    path.write_text(STRATEGY.replace("longs[:, :] = True", "longs[::2, :] = True"))
    # Act / Assert: one line naming the strategy and the fix
    with pytest.raises(ConfigError) as info:
        run(out, counting_chunk, config=config, resume=True)
    message = str(info.value)
    assert f"the code of strategy {str(path)!r} changed since the run" in message
    assert "restore the original strategy file or start a new run" in message
    # restoring the file resumes the run
    path.write_text(STRATEGY)
    assert len(run(out, counting_chunk, config=config, resume=True).table) == 36


def test_resume_after_a_bundled_strategy_changed_is_refused(tmp_path: Path) -> None:
    # the plan of a bundled strategy records its module file's hash too
    config = {**CONFIG, "strategy": {"name": "hold"}}  # 2 sides x 3 leverages
    out = tmp_path / "r"
    CALLS.clear()
    with pytest.raises(Interrupt):
        run(out, keys_chunk, config=config)
    plan = json.loads((out / "plan.json").read_text())
    plan["strategy_sha256"] = "0" * 64  # as if strategies/hold.py had been edited since
    (out / "plan.json").write_text(json.dumps(plan))
    CALLS.clear()
    with pytest.raises(ConfigError, match="the code of strategy 'hold' changed"):
        run(out, keys_chunk, config=config, resume=True)


def keys_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame:
    # the key columns and one statistic; Ctrl-C after three chunks
    if len(CALLS) == 3:
        raise Interrupt
    CALLS.append(chunk.id)
    return key_frame(spec, chunk).assign(total_return=0.0)


EDITS: list[str] = []


def editing_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> Any:
    # the user edits the strategy file while the sweep runs (after its first chunk)
    if EDITS and len(CALLS) == 1:
        Path(EDITS[0]).write_text(STRATEGY + "\n# edited mid-run\n")
    CALLS.append(chunk.id)
    return run_chunk(spec, chunk, market)


def test_a_chunk_never_runs_code_that_changed_mid_run(tmp_path: Path) -> None:
    # Arrange: the real chunk function (run_sweep) on the file strategy, one chunk per call
    config, path = file_config(tmp_path)
    config = {**config, "market": {**config["market"], "symbols": ["BTC/USDT:USDT"]}}
    EDITS[:] = [str(path)]
    CALLS.clear()
    try:
        # Act
        with pytest.raises(ConfigError, match="changed since the sweep started"):
            _execute(
                config, out=tmp_path / "r", executor=None, resume=False, progress=False,
                chunk_size=9, workers=1, function=editing_chunk,
            )  # fmt: skip
    finally:
        EDITS.clear()
    # Assert: only the chunk computed before the edit is on disk
    assert len(list((tmp_path / "r" / "chunks").glob("*.parquet"))) == 1


# -- 3. plan.json, run.json and results.parquet are checked when read --------------------------


def test_a_tampered_chunk_id_never_writes_outside_the_run(tmp_path: Path) -> None:
    # Arrange: an interrupted run whose plan.json names a chunk "../../escaped"
    out = tmp_path / "deep" / "r"
    interrupted(out)
    plan = json.loads((out / "plan.json").read_text())
    plan["chunks"][-1][0] = "../../escaped"
    (out / "plan.json").write_text(json.dumps(plan))
    # Act
    with pytest.raises(DataError) as info:
        run(out, counting_chunk, resume=True)
    # Assert
    assert str(out / "plan.json") in str(info.value)
    assert "chunk id '../../escaped' is not like '000-0000000000'" in str(info.value)
    assert not list(tmp_path.rglob("escaped*"))


def test_a_plan_whose_chunks_differ_from_the_config_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r"
    interrupted(out)
    plan = json.loads((out / "plan.json").read_text())
    plan["chunks"][3][3] -= 1  # a chunk one column shorter: that column would never run
    (out / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(DataError, match="its chunks are not the ones the config makes"):
        run(out, counting_chunk, resume=True)


def test_the_chunk_path_refuses_a_path_as_id(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for bad in ("../x", "/etc/passwd", "000-0000000000/../../x", "", "000-0000000000.trades"):
        with pytest.raises(DataError, match="is not a chunk id"):
            store.chunk_path(bad)
    assert store.chunk_path("001-0000000004").name == "001-0000000004.parquet"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is not valid JSON"),
        (b'{"status": "comp', "is not valid JSON"),
        (b"\xff\xfe\x00binary", "is not UTF-8 text"),
        (b"[1, 2]", "must hold a JSON object, was list"),
        (b'{"status": "complete"}', "config must be dict"),
        (b'{"status": "complete", "config": {}, "n_chunks": "ten"}', "n_chunks must be int"),
    ],
)
def test_a_damaged_run_json_is_one_line_naming_it(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    out = tmp_path / "r"
    run(out)
    (out / "run.json").write_bytes(content)
    for action in (lambda: open_run(out), lambda: run(out, resume=True)):
        with pytest.raises(DataError) as info:
            action()
        assert str(out / "run.json") in str(info.value) and expected in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not json", "is not valid JSON"),
        (b"{}", "version must be 2, was None"),
        (b'{"version": 2, "config_sha256": "x"}', "has no 'strategy_sha256'"),
    ],
)
def test_a_damaged_plan_json_is_one_line_naming_it(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    out = tmp_path / "r"
    interrupted(out)
    (out / "plan.json").write_bytes(content)
    with pytest.raises(DataError) as info:
        run(out, counting_chunk, resume=True)
    assert str(out / "plan.json") in str(info.value) and expected in str(info.value)


def test_a_damaged_results_parquet_names_it_and_resume_rebuilds_it(tmp_path: Path) -> None:
    # Arrange: a finished run whose results.parquet was truncated
    out = tmp_path / "r"
    good = run(out).table
    results = out / "results.parquet"
    results.write_bytes(results.read_bytes()[:200])
    # Act / Assert: open_run says which file and how to fix it
    with pytest.raises(DataError) as info:
        open_run(out)
    assert f"{results} is damaged" in str(info.value) and "--resume" in str(info.value)
    # the fix it names works, without computing any chunk again
    CALLS.clear()
    rebuilt = run(out, counting_chunk, resume=True)
    assert CALLS == []
    pd.testing.assert_frame_equal(rebuilt.table, good)


# -- operating-system faults: one line naming the path, before the long work ---------------------


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("my notes")
    with pytest.raises(ConfigError, match="is a file, not a directory; choose another --out"):
        run(tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "my notes"
    with pytest.raises(DataError, match="cannot create"):
        run(tmp_path / "taken" / "below")


def test_out_that_cannot_be_written_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as a non-root user would meet it (these tests may run as root: simulate EACCES)
    real_mkdir = Path.mkdir

    def refuse(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == "r":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    CALLS.clear()
    with pytest.raises(DataError) as info:
        run(tmp_path / "r", counting_chunk)
    assert str(info.value) == (
        f"cannot create {tmp_path / 'r'}: Permission denied (EACCES); choose an --out you can "
        "write to"
    )
    assert CALLS == []


def test_a_full_disk_at_the_start_fails_before_any_chunk_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("backtester.sweep.runner.write_json_atomic", full)
    CALLS.clear()
    with pytest.raises(DataError) as info:
        run(tmp_path / "r", counting_chunk)
    assert str(info.value).startswith(f"cannot write {tmp_path / 'r' / 'run.json'}: No space")
    assert "(ENOSPC); free space on that disk" in str(info.value)
    assert CALLS == []


def test_a_full_disk_mid_run_keeps_every_finished_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the disk fills up while the 4th chunk file is written
    import pyarrow.parquet as pq

    real_write = pq.write_table
    writes: list[str] = []

    def filling(table: Any, where: Any, **kwargs: Any) -> None:
        writes.append(str(where))
        if len(writes) == 4:
            Path(where).write_bytes(b"PAR1 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", filling)
    out = tmp_path / "r"
    # Act
    with pytest.raises(DataError) as info:
        run(out, toy_chunk)
    # Assert: one line naming the chunk file and the fix; 3 whole chunks, no partial file
    assert "chunks/" in str(info.value) and "No space left on device (ENOSPC)" in str(info.value)
    assert len(list((out / "chunks").glob("*.parquet"))) == 3
    assert not list((out / "chunks").glob(".tmp-*"))
    # space is back: resume computes only the rest and the table is complete
    monkeypatch.setattr(pq, "write_table", real_write)
    CALLS.clear()
    assert len(run(out, counting_chunk, resume=True).table) == 36
    assert len(CALLS) == 7


def test_serial_executor_default_path_is_unchanged(tmp_path: Path) -> None:
    # the lock and the checks change nothing in a normal run's table
    a = run(tmp_path / "a", executor=SerialExecutor(toy_chunk))
    b = run(tmp_path / "b")
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    assert sorted(os.listdir(tmp_path / "a")) == [
        "chunks",
        "plan.json",
        "results.parquet",
        "run.json",
    ]
