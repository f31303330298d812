"""`backtester data list|verify|download` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backtester.cli import main
from backtester.data import ccxt_loader
from tests.helpers.replay import ReplayAdapter, mount


def test_list_prints_the_bundled_datasets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["data", "list", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "bundled binanceusdm BTC/USDT:USDT        1h   ohlcv 2019-09-08 19:00 2026-05-17 07:00 58620"
        in out
    )
    assert "1m   ohlcv 2025-05-04 16:00 2025-06-24 10:00 73080" in out
    # and where downloads go, so a newcomer can find (or move) the store
    assert f"store: {tmp_path} (downloads go here; change with --store or $BACKTESTER_STORE)" in out
    assert "; bundled (read-only): " in out


def test_verify_ok_on_the_bundled_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["data", "verify", "--store", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("ok: 24 datasets verified, no problems")


def test_verify_exits_non_zero_on_a_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "binanceusdm" / "BTC_USDT_USDT" / "1h"
    bad.mkdir(parents=True)
    (bad / "ohlcv.parquet").write_bytes(b"PAR1 truncated")
    assert main(["data", "verify", "--store", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "unreadable" in captured.out
    assert "problem(s)" in captured.err


def test_download_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the CLI builds its ccxt client through create_exchange; serve recorded OKX HTTP
    real = ccxt_loader.create_exchange

    def replaying(exchange: str, **kwargs: Any) -> Any:
        client = real(exchange, config={"enableRateLimit": False})
        return mount(client, ReplayAdapter().load("okx", "btc_1h"))

    monkeypatch.setattr(ccxt_loader, "create_exchange", replaying)
    # Act
    code = main(
        [
            "data", "download", "--exchange", "okx", "--symbol", "BTC/USDT:USDT",
            "--start", "2026-01-02", "--end", "2026-01-10", "--kinds", "ohlcv,mark,funding,tiers",
            "--store", str(tmp_path), "--no-progress",
        ]
    )  # fmt: skip
    # Assert
    assert code == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    # kind status rows_added rows start(date time) end(date time) ...
    assert lines["ohlcv"][1:6] == ["ok", "192", "192", "2026-01-02", "00:00"]
    assert lines["funding"][1:4] == ["ok", "24", "24"]
    assert (tmp_path / "okx" / "BTC_USDT_USDT" / "1h" / "mark.parquet").is_file()


def test_bad_kind_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "data",
            "download",
            "--symbol",
            "BTC/USDT:USDT",
            "--start",
            "2024-01-01",
            "--kinds",
            "ohlcv,markk",
            "--store",
            str(tmp_path),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "did you mean 'mark'" in err


def test_interrupted_download_says_how_to_resume(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C during a download: exit 130 and say that the same command resumes (not a bare
    # "interrupted")
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ccxt_loader, "download", interrupted)
    code = main(
        ["data", "download", "--symbol", "BTC/USDT:USDT", "--start", "2024-01-01",
         "--store", str(tmp_path)]
    )  # fmt: skip
    assert code == 130
    assert capsys.readouterr().err == (
        "interrupted: the pages fetched so far are saved; run the same command to resume\n"
    )
