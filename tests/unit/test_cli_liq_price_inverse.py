"""`backtester liq-price` on coin-margined symbols, with `--contract-size`."""

from __future__ import annotations

import pytest

from backtester.cli import main

SHORT = ["liq-price", "--exchange", "binancecoinm", "--symbol", "BTC/USD:BTC", "--side", "short"]
SHORT += ["--entry", "40000", "--size", "10", "--margin", "0.00125"]


def test_contract_size_sets_the_face_value(capsys: pytest.CaptureFixture[str]) -> None:
    # 10 contracts x 100 USD (Binance's BTCUSD_PERP) = 1,000 USD = 0.025 BTC at 40,000; margin
    # 0.00125 BTC (20x); tier 1 (MMR 0.4 %): LP = 1000 * 0.996 / (0.025 - 0.00125) = 41,936.84
    assert main(SHORT) == 0
    out = capsys.readouterr().out
    assert "position            10 contracts x 100 USD @ 40000  notional 0.025 BTC" in out
    assert "liquidation price   41936.8\n" in out
    # 10 contracts x 10 USD = 100 USD = 0.0025 BTC, the same margin is 2x:
    # LP = 100 * 0.996 / (0.0025 - 0.00125) = 79,680; BP = 100 / 0.00125 = 80,000
    assert main([*SHORT, "--contract-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "10 contracts x 10 USD @ 40000  notional 0.0025 BTC  leverage 2  margin 0.00125" in out
    assert "liquidation price   79680\n" in out
    assert "bankruptcy price    80000\n" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*SHORT, "--contract-size", "0"], "--contract-size must be a finite number > 0, was 0"),
        (
            ["liq-price", "--exchange", "binanceusdm", "--side", "long", "--entry", "20000",
             "--size", "1", "--leverage", "10", "--contract-size", "100"],
            "--contract-size is for coin-margined symbols such as 'BTC/USD:BTC'",
        ),
    ],
)  # fmt: skip
def test_a_bad_contract_size_is_one_line_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
