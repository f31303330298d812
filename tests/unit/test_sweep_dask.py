"""Dask execution: a real LocalCluster with worker processes gives exactly the local result."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtester.errors import ConfigError
from backtester.sweep.executors import DaskExecutor, SerialExecutor
from tests.unit.test_sweep_runner import CONFIG, run, toy_chunk

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    # two worker processes, one thread each, loopback only, no dashboard
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,
    ) as local:
        yield local


def test_dask_cluster_equals_local_run(tmp_path: Path, cluster: Any) -> None:
    # Arrange
    local = run(tmp_path / "local", executor=SerialExecutor(toy_chunk))
    # Act
    remote = run(tmp_path / "dask", executor=DaskExecutor(toy_chunk, cluster.scheduler_address))
    # Assert: bit-identical table, same chunk files
    pd.testing.assert_frame_equal(remote.table, local.table, check_exact=True)
    assert sorted(p.name for p in (tmp_path / "dask" / "chunks").iterdir()) == sorted(
        p.name for p in (tmp_path / "local" / "chunks").iterdir()
    )


def test_unreachable_scheduler_is_a_config_error(tmp_path: Path) -> None:
    # port 9 on loopback: nothing listens there
    executor = DaskExecutor(toy_chunk, "tcp://127.0.0.1:9", timeout="1s")
    with pytest.raises(
        ConfigError, match=re.escape("cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9'")
    ):
        run(tmp_path / "x", executor=executor, config=CONFIG)


def test_dask_cluster_runs_the_engine_exactly_like_local(tmp_path: Path, cluster: Any) -> None:
    # Arrange: a real sma_cross sweep through run_sweep, 24 columns in chunks of 5
    from backtester.sweep.runner import _execute, run_chunk
    from tests.unit.test_sweep_engine import SWEEP

    def go(out: Path, executor: Any) -> Any:
        return _execute(
            SWEEP, out=out, executor=executor, resume=False, progress=False, chunk_size=5
        )

    # Act
    local = go(tmp_path / "local", SerialExecutor(run_chunk))
    remote = go(tmp_path / "dask", DaskExecutor(run_chunk, cluster.scheduler_address))
    # Assert
    pd.testing.assert_frame_equal(remote.table, local.table, check_exact=True)
    assert remote.metadata["executor"].startswith("DaskExecutor(")


def test_cli_scheduler_option_equals_local(
    tmp_path: Path, cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # `backtester sweep --scheduler tcp://...` end to end, against a local in-process run
    from backtester.cli import main
    from backtester.sweep import open_run
    from tests.unit.test_cli_sweep import CONFIG as CLI_CONFIG

    config = tmp_path / "cfg.toml"
    config.write_text(CLI_CONFIG)
    args = ["sweep", str(config), "--chunk-size", "5"]
    assert main([*args, "--out", str(tmp_path / "local"), "--workers", "1"]) == 0
    assert (
        main([*args, "--out", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address])
        == 0
    )
    assert "sweep complete: 12 rows" in capsys.readouterr().out
    pd.testing.assert_frame_equal(
        open_run(tmp_path / "dask").table, open_run(tmp_path / "local").table, check_exact=True
    )


def test_missing_dask_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: make `import distributed` fail as if the extra were not installed
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    executor = DaskExecutor(toy_chunk, "tcp://127.0.0.1:8786")
    # Act / Assert
    with pytest.raises(ConfigError, match=re.escape("pip install 'backtester[dask]'")):
        run(tmp_path / "x", executor=executor)
