"""`backtester data ...` and `survival` refuse bad options in one line, before any request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from backtester.cli import main
from backtester.data import ccxt_loader


@pytest.fixture
def no_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a bad option must be refused before any exchange call")

    monkeypatch.setattr(ccxt_loader, "download", refuse)
    monkeypatch.setattr(ccxt_loader, "create_exchange", refuse)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    began = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - began < 10  # no retries against a dead connection
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


DOWNLOAD = ["data", "download", "--exchange", "okx", "--symbol", "BTC/USDT:USDT"]


def test_the_newcomer_command_names_the_timeframe(
    capsys: pytest.CaptureFixture[str], no_requests: None
) -> None:
    # it used to retry 4 times for 17 s, then say "check the connection"
    err = _error(
        capsys,
        [*DOWNLOAD, "--timeframe", "7m", "--start", "2024-01-01", "--store", "/etc/passwd"],
    )
    assert err.startswith("error: ConfigError: --timeframe must be one of okx's bar lengths 1m,")
    assert "was '7m'" in err


def test_a_store_that_is_a_file_names_the_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, no_requests: None
) -> None:
    afile = tmp_path / "passwd"
    afile.write_text("")
    err = _error(capsys, [*DOWNLOAD, "--start", "2024-01-01", "--store", str(afile)])
    assert f"--store {afile} is a file, not a folder; pass --store DIR" in err


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--start", "2024-02-01", "--end", "2024-01-01"], "--end must be after --start, was"),
        (["--start", "2200-01-01"], "--start must be before the 1h bar still forming"),
        (["--start", "2999-01-01"], "--start must be a date between 1677 and 2262"),
        (["--start", "someday"], "--start must be a date such as '2020-01-01'"),
        (["--start", "2024-01-01", "--symbol", "BTCUSDT"], "did you mean 'BTC/USDT:USDT'?"),
    ],
)
def test_dates_and_symbol_are_checked_first(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    no_requests: None,
    options: list[str],
    expected: str,
) -> None:
    err = _error(capsys, [*DOWNLOAD, *options, "--store", str(tmp_path)])
    assert expected in err


@pytest.mark.parametrize("action", ["verify", "list", "repair", "rebuild-manifest"])
def test_reading_a_store_that_does_not_exist_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, action: str
) -> None:
    # `verify --store /tmp/notastore` used to say "ok: 9 datasets verified" (the bundled ones)
    missing = tmp_path / "notastore"
    err = _error(capsys, ["data", action, "--store", str(missing)])
    assert f"store '{missing}' (--store / store=) does not exist" in err
    assert not missing.exists()


def test_verify_counts_the_store_and_the_bundled_data_separately(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["data", "verify", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 24 datasets verified, no problems")
    assert f"(0 in the store {tmp_path}, 24 bundled)" in out


def test_survival_with_a_store_that_is_a_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    err = _error(capsys, ["survival", "--store", str(afile), "--no-report"])
    assert f"store '{afile}' (--store / store=) is a file, not a folder" in err
