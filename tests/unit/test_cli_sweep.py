"""`backtester sweep` / `backtester report`: exit codes, one-line errors, files written."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtester.cli import main

CONFIG = """
[market]
symbols = ["BTC/USDT:USDT"]
start = "2024-06-01"
end = "2024-08-01"

[strategy]
name = "hold"

[engine.grid]
leverage = [1, 5, 20]
stop_loss = ["none", 0.05]
"""  # hold's side [long, short] x 3 x 2 = 12 columns


def write(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


def test_sweep_then_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Arrange
    config, out = write(tmp_path), tmp_path / "runs" / "hold"
    # Act
    code = main(["sweep", str(config), "--out", str(out), "--workers", "1", "--chunk-size", "5"])
    printed = capsys.readouterr().out
    report_code = main(["report", str(out), "--top", "3"])
    # Assert
    assert code == 0 and report_code == 0
    assert "sweep complete: 12 rows (1 symbol(s) x 12 settings)" in printed
    assert "(3 of 3 chunks computed)" in printed
    assert (out / "results.parquet").is_file() and (out / "run.json").is_file()
    page = (out / "report" / "index.html").read_text()
    assert "Best and worst settings by Calmar" in page
    assert "Never liquidated, by leverage (share of settings)" in page
    assert "Not a Kaplan–Meier survival curve" in page
    assert "figures/equity_best_worst.png" in page  # the best and worst settings, re-run
    assert "Parameter sensitivity" in page
    for name in ("survival_by_leverage", "sensitivity"):
        assert (out / "report" / "figures" / f"{name}.png").stat().st_size > 10_000


def test_bad_config_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: an empty grid
    config = write(tmp_path, CONFIG.replace("leverage = [1, 5, 20]", "leverage = []"))
    out = tmp_path / "never"
    # Act
    code = main(["sweep", str(config), "--out", str(out)])
    # Assert: exit 2, one line naming file, key and fix; nothing written
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0
    assert err.startswith(f"error: ConfigError: {config}: [engine.grid] leverage is an empty grid")
    assert "give at least one value" in err
    assert not out.exists()


def test_unknown_key_is_named_with_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, CONFIG.replace("[engine.grid]", "[engine.grid]\nstop_los = [0.1]"))
    assert main(["sweep", str(config), "--out", str(tmp_path / "x")]) == 2
    assert "did you mean 'stop_loss'?" in capsys.readouterr().err


def test_resume_and_finished_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, out = write(tmp_path), tmp_path / "r"
    assert main(["sweep", str(config), "--out", str(out), "--workers", "1"]) == 0
    # running again without --resume is refused; with --resume it is a no-op
    assert main(["sweep", str(config), "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["sweep", str(config), "--out", str(out), "--resume"]) == 0
    assert "(0 of 4 chunks computed)" in capsys.readouterr().out  # default: 12 / 4 = 3 per chunk


def test_report_of_unfinished_or_missing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "is not a sweep run (no run.json)" in capsys.readouterr().err


def test_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(config), "--out", str(tmp_path / "x"), "--workers", "0"])
    assert info.value.code == 2
    assert "must be an integer >= 1, was '0'" in capsys.readouterr().err
    code = main(
        ["sweep", str(config), "--out", str(tmp_path / "x"), "--workers", "2",
         "--scheduler", "tcp://127.0.0.1:8786"]
    )  # fmt: skip
    assert code == 2
    assert "--workers applies to local runs" in capsys.readouterr().err
