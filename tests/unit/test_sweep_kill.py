"""A REAL `backtester sweep` process killed mid-run (SIGKILL, or Ctrl-C) resumes to the exact result.

The sweep runs sma_cross on the bundled BTC bars in many small chunks; the test waits until some
chunk files exist, kills the process, checks that only complete chunk files are on disk, resumes
with --resume and compares the table with an uninterrupted run, value for value.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from backtester.sweep import open_run

CONFIG = """
[market]
symbols = ["BTC/USDT:USDT"]
start = "2024-06-01"
end = "2025-06-01"

[strategy]
name = "sma_cross"

[strategy.grid]
fast = [10, 20]
slow = [50, 100, 200]

[engine]
taker_fee = 0.0005

[engine.grid]
leverage = [1, 3, 10, 25]
stop_loss = ["none", 0.02, 0.05]
"""  # 2 x 3 x 4 x 3 = 72 columns; --chunk-size 2 -> 36 chunks


def sweep(config: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "backtester", "sweep", str(config), "--out", str(out),
         "--chunk-size", "2", "--no-progress", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill reaches its workers too
    )  # fmt: skip


def finished_chunk_files(out: Path) -> list[Path]:
    # final names only: a ".tmp-*" file is a write still in flight
    return [p for p in (out / "chunks").glob("*.parquet") if not p.name.startswith(".tmp-")]


def wait_for_chunks(proc: subprocess.Popen[str], out: Path, n: int) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = len(finished_chunk_files(out)) if (out / "chunks").is_dir() else 0
        if done >= n:
            return done
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before {n} chunks existed: {proc.communicate()}")
        time.sleep(0.01)
    pytest.fail("the sweep wrote no chunks within 180 s")


def finish(config: Path, out: Path, *extra: str) -> pd.DataFrame:
    proc = sweep(config, out, *extra)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "sweep complete" in stdout
    return open_run(out).table


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill") / "sma.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def uninterrupted(config: Path) -> pd.DataFrame:
    return finish(config, config.parent / "uninterrupted", "--workers", "1")


def assert_only_complete_chunks(out: Path) -> int:
    # a ".tmp-*" leftover of the write in flight is allowed; every final file must be whole
    files = finished_chunk_files(out)
    for path in files:
        assert pq.read_metadata(path).num_rows == 2
    return len(files)


def test_sigkill_mid_run_then_resume_equals_uninterrupted(
    config: Path, uninterrupted: pd.DataFrame
) -> None:
    # Arrange: a real sweep, killed with SIGKILL once 3 chunks are on disk
    out = config.parent / "killed"
    proc = sweep(config, out, "--workers", "1")
    wait_for_chunks(proc, out, 3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = assert_only_complete_chunks(out)
    assert 3 <= done < 36, "the kill must land mid-run"
    assert not (out / "results.parquet").exists()
    # Act
    resumed = finish(config, out, "--resume", "--workers", "1")
    # Assert: same rows, same values, nothing lost or duplicated
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
    meta = open_run(out).metadata
    assert meta["chunks_run"] == 36 - done


def test_ctrl_c_with_worker_processes_leaves_a_resumable_run(
    config: Path, uninterrupted: pd.DataFrame
) -> None:
    # Arrange: two worker processes; SIGINT to the whole group, as a terminal's Ctrl-C does
    out = config.parent / "interrupted"
    proc = sweep(config, out, "--workers", "2")
    wait_for_chunks(proc, out, 3)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    # Assert: exit 130 with a hint, only whole chunk files, and the resume completes exactly
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    assert_only_complete_chunks(out)
    resumed = finish(config, out, "--resume", "--workers", "2")
    pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True)
