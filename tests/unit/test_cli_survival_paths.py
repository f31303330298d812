"""`backtester survival --paths N`: history and synthetic side by side, report, JSON, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtester.cli import main

SMALL = ["--start", "2021-01-01", "--end", "2021-07-01", "--side", "long", "--stop-loss", "none"]
PATHS = ["--paths", "4", "--path-length", "60D", "--horizon", "10D", "--leverage", "3,20"]


def test_paths_print_history_and_synthetic_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Act
    code = main(
        ["survival", *SMALL, *PATHS, "--stress", "--out", str(tmp_path / "rep"), "--no-comparisons"]
    )
    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert "History and synthetic paths: survival within 10 days, 95% interval" in out
    header = next(line for line in out.splitlines() if "History (95% CI)" in line)
    for name in ("Bootstrap (95% CI)", "Worst days (95% CI)", "Vol x1.5 (95% CI)"):
        assert name in header
    assert "bootstrap: 4 synthetic paths of 1,440 bars from BTC/USDT:USDT" in out
    page = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert "History and synthetic paths" in page and "stationary block bootstrap" in page
    info = json.loads((tmp_path / "rep" / "run.json").read_text(encoding="utf-8"))
    assert set(info["synthetic"]["scenarios"]) == {"history", "bootstrap", "worst_days", "vol_x1.5"}


def test_paths_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["survival", *SMALL, *PATHS, "--method", "circular", "--no-report", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    rows = payload["synthetic"]["table"]
    assert [r["leverage"] for r in rows] == [3.0, 20.0]
    assert {"survival_history", "ci_low_bootstrap", "ci_high_bootstrap"} <= set(rows[0])
    assert "circular block bootstrap" in payload["synthetic"]["scenarios"]["bootstrap"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--stress"], "--stress has no effect without --paths N"),
        (["--vol-scale", "2"], "--vol-scale has no effect without --paths N"),
        (["--path-length", "90D"], "--path-length has no effect without --paths N"),
        (["--paths", "-1"], "--paths must be an int >= 0, was -1"),
        (["--paths", "2", "--mean-block", "90min"], "--mean-block must be a positive whole"),
        (["--paths", "2", "--path-length", "1000D"], None),
        (["--paths", "2", "--path-length", "20D"], "--horizon 30D is longer than the paths"),
        (["--paths", "2", "--vol-scale", "0"], "vol_scale must be a number in (0, 10], was 0.0"),
    ],
)
def test_bad_paths_options_exit_2_with_one_line(
    extra: list[str], message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["survival", *SMALL, "--leverage", "3", "--no-report", *extra])
    err = capsys.readouterr().err.strip()
    if message is None:  # a path longer than the data is allowed (blocks wrap around)
        assert code == 0
        return
    assert code == 2
    assert message in err and "\n" not in err
