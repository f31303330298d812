"""Tests of the ``backtester liq-price`` calculator (backtester/cli/rules.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backtester.cli import main
from backtester.cli.rules import format_price
from backtester.rules import tables as tables_mod


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep tests independent of whatever tier snapshots the local data store holds."""
    monkeypatch.setattr(tables_mod, "_store_tables", lambda exchange, symbol, store=None: [])


BYBIT_ACCEPTANCE = [
    "liq-price",
    "--exchange",
    "bybit",
    "--side",
    "long",
    "--entry",
    "20000",
    "--size",
    "1",
    "--leverage",
    "50",
    "--mmr",
    "0.005",
]


def test_acceptance_bybit_prints_19700(capsys: pytest.CaptureFixture[str]) -> None:
    # Act
    code = main(BYBIT_ACCEPTANCE)
    out = capsys.readouterr().out
    # Assert: 20,000 − (400 − 100) = 19,700; BP 20,000 − 400 = 19,600; distance 1.5 %
    assert code == 0
    assert "liquidation price   19700\n" in out
    assert "bankruptcy price    19600\n" in out
    assert "maintenance margin  100.00" in out
    assert "distance to liq.    1.50%" in out
    assert "table bybit/BTC_USDT_USDT/2021-01-01" in out


def test_json_output_binance_cross_case_a(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "liq-price",
            "--exchange",
            "binanceusdm",
            "--side",
            "short",
            "--entry",
            "9451.53",
            "--size",
            "0.005",
            "--margin-mode",
            "cross",
            "--wallet",
            "10.72",
            "--other-maint-margin",
            "1.3",
            "--other-upnl",
            "0.47",
            "--mmr",
            "0.004",
            "--maint-amount",
            "0",
            "--json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert round(data["liquidation_price"], 2) == 11383.99
    assert data["margin_mode"] == "cross" and data["tier"] == 0
    assert set(data) >= {"bankruptcy_price", "maint_margin", "tier", "table_id", "distance_pct"}


def test_tier_table_and_date(capsys: pytest.CaptureFixture[str]) -> None:
    # 2024 table: 31 BTC at 20,000, 20x → LP 19,093.86 in tier 2
    code = main(
        [
            "liq-price",
            "--exchange",
            "binanceusdm",
            "--symbol",
            "BTC/USDT:USDT",
            "--side",
            "long",
            "--entry",
            "20000",
            "--size",
            "31",
            "--leverage",
            "20",
            "--at",
            "2024-06-01",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "liquidation price   19093.86\n" in out
    assert "tier used           tier 2  table binanceusdm/BTC_USDT_USDT/2024-05-30" in out
    # the MM tier is the one at the LP (591,910 → tier 2, max 100x); the leverage limit is the
    # entry notional's (620,000 → tier 3, max 75x): the line says which is which
    assert "(MM valued at the liquidation price; max leverage at entry 75)" in out


def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "liq-price",
            "--exchange",
            "binanceusdm",
            "--side",
            "long",
            "--entry",
            "20000",
            "--size",
            "1",
            "--leverage",
            "500",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "leverage must be in [1, 150], was 500.0" in err


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (19700.0, "19700"),
        (19698.4924623, "19698.49"),
        (0.000123456, "0.00012346"),
        (0.0, "0"),
        (0.5, "0.5"),
        (float("inf"), "inf"),
    ],
)
def test_format_price(value: float, text: str) -> None:
    assert format_price(value) == text


def test_command_line_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "backtester", *BYBIT_ACCEPTANCE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "19700" in out


def test_cross_wallet_below_maintenance_is_flagged(capsys: pytest.CaptureFixture[str]) -> None:
    # wallet 10 against 20,000 notional: MM at entry 20,000·0.4% = 80 > 10 → liquidatable at
    # entry; LP = (10 − 20,000)/(0.004 − 1) = 20,070.28 lies above the entry (before: printed
    # without any remark, distance 0.35%)
    argv = "liq-price --exchange binanceusdm --side long --entry 20000 --size 1"
    code = main([*argv.split(), "--margin-mode", "cross", "--wallet", "10"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    assert "liquidation price   20070.28  (WARNING: on the profitable side of entry" in captured.out
    assert "= 10 is at or below the position's maintenance margin at entry 80" in captured.out


# ---------------------------------------------------------------------------------------------
# review fixes: one line naming the option, the value and a fix a CLI user can apply

LONG_20K = [
    "liq-price",
    "--exchange",
    "binanceusdm",
    "--side",
    "long",
    "--entry",
    "20000",
    "--size",
    "1",
]


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ConfigError: ")
    return captured.err


def test_leverage_and_margin_that_disagree(capsys: pytest.CaptureFixture[str]) -> None:
    # before: liquidation price 0 (the margin silently won)
    argv = "liq-price --exchange bybit --side long --entry 20000 --size 1"
    err = _error_line(capsys, [*argv.split(), "--leverage", "5", "--margin", "999999"])
    assert "--leverage 5 and --margin 999,999 disagree" in err
    assert "give one of them" in err


def test_cross_wallet_too_small_for_the_initial_margin(capsys: pytest.CaptureFixture[str]) -> None:
    # before: liquidation price 19979.92
    argv = [*LONG_20K, "--leverage", "5", "--margin-mode", "cross", "--wallet", "100"]
    err = _error_line(capsys, argv)
    assert "--wallet 100 cannot open a 20,000 notional at --leverage 5 (4,000 initial" in err
    assert "--wallet >= 4,000" in err and "--size <= 0.025" in err and "--leverage >= 200" in err


@pytest.mark.parametrize("at", ["2018-01-01", "2019-09-07"])
def test_date_before_the_earliest_table_names_the_option(
    capsys: pytest.CaptureFixture[str], at: str
) -> None:
    err = _error_line(capsys, [*LONG_20K, "--leverage", "5", "--at", at])
    assert f"--at {at} 00:00 UTC is before the earliest binanceusdm BTC/USDT:USDT" in err
    assert "rules_timeline" not in err
    assert "give --at 2019-09-08 or later, or omit --at for the latest table" in err


def test_unparsable_date_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error_line(capsys, [*LONG_20K, "--leverage", "5", "--at", "yesterday"])
    assert "--at must be a date such as '2021-05-19', was 'yesterday'" in err


def test_margin_mode_and_taker_fee_use_the_run_config_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from backtester.config import RunConfig
    from backtester.errors import ConfigError

    err = _error_line(capsys, [*LONG_20K, "--margin-mode", "CROSS", "--wallet", "1000"])
    with pytest.raises(ConfigError) as info:
        RunConfig(margin_mode="CROSS")
    want = str(info.value).replace("RunConfig.margin_mode", "--margin-mode")
    assert err == f"error: ConfigError: {want}\n"
    assert "'cross'" in err
    err = _error_line(capsys, [*LONG_20K, "--leverage", "5", "--taker-fee", "1"])
    assert "--taker-fee must be a fraction in [0, 1), was 1.0" in err
    # 0.2 is a valid RunConfig taker fee, so liq-price takes it too (it refused > 0.1 before)
    okx = ["liq-price", "--exchange", "okx", "--side", "long", "--entry", "30000", "--size", "1"]
    assert main([*okx, "--leverage", "2", "--taker-fee", "0.2"]) == 0


def test_absurd_notional_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # before: 300-digit prices
    argv = [
        "liq-price",
        "--exchange",
        "okx",
        "--side",
        "long",
        "--entry",
        "1e300",
        "--size",
        "1",
        "--leverage",
        "5",
    ]
    err = _error_line(capsys, argv)
    assert "--entry × --size" in err and "must be <= 1e+15" in err and len(err) < 300


def test_readme_examples_still_hold(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*LONG_20K, "--leverage", "50", "--margin-mode", "cross", "--wallet", "1000", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["margin_mode"] == "cross" and 0 < data["liquidation_price"] < 20000
