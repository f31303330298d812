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
