"""The packaged 2026-05-07 bracket snapshot of every Binance USDⓈ-M market (issue 11, part 1).

The expected rows below were read from the raw ``/fapi/v1/leverageBracket`` brackets of the
shared ``binance_usdm_roshan7869/binance_leverage_tiers.json`` (sha256 49de4ae5c0a2db3b...)
when the test was written: [notionalFloor, notionalCap, initialLeverage, maintMarginRatio, cum].
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.errors import ConfigError
from backtester.rules import rules_timeline
from backtester.rules import tables as tables_mod
from backtester.rules.tables import (
    close_symbols,
    known_symbols,
    packaged_tables,
    recurrence_error,
    snapshot_table,
    tables_for,
)

SNAPSHOT = "binanceusdm__ALL__2026-05-07.json.gz"
DAY = pd.Timestamp("2026-05-07", tz="UTC")

RAW = {
    "SOL/USDT:USDT": [
        [0, 50000, 100, 0.005, 0.0],
        [50000, 400000, 75, 0.0065, 75.0],
        [400000, 1000000, 50, 0.01, 1475.0],
        [1000000, 4000000, 25, 0.02, 11475.0],
        [4000000, 8000000, 20, 0.025, 31475.0],
        [8000000, 40000000, 10, 0.05, 231475.0],
        [40000000, 80000000, 5, 0.1, 2231475.0],
        [80000000, 100000000, 4, 0.125, 4231475.0],
        [100000000, 200000000, 2, 0.25, 16731475.0],
        [200000000, 400000000, 1, 0.5, 66731475.0],
    ],
    "DOGE/USDT:USDT": [
        [0, 80000, 75, 0.0065, 0.0],
        [80000, 150000, 50, 0.01, 280.0],
        [150000, 750000, 40, 0.0125, 655.0],
        [750000, 2000000, 25, 0.02, 6280.0],
        [2000000, 4000000, 20, 0.025, 16280.0],
        [4000000, 20000000, 10, 0.05, 116280.0],
        [20000000, 40000000, 5, 0.1, 1116280.0],
        [40000000, 50000000, 4, 0.125, 2116280.0],
        [50000000, 100000000, 2, 0.25, 8366280.0],
        [100000000, 200000000, 1, 0.5, 33366280.0],
    ],
    "1000PEPE/USDT:USDT": [
        [0, 20000, 75, 0.0065, 0.0],
        [20000, 200000, 50, 0.01, 70.0],
        [200000, 300000, 40, 0.015, 1070.0],
        [300000, 1500000, 25, 0.02, 2570.0],
        [1500000, 3000000, 20, 0.025, 10070.0],
        [3000000, 15000000, 10, 0.05, 85070.0],
        [15000000, 20000000, 5, 0.1, 835070.0],
        [20000000, 25000000, 4, 0.125, 1335070.0],
        [25000000, 30000000, 2, 0.25, 4460070.0],
        [30000000, 35000000, 1, 0.5, 11960070.0],
    ],
    # 11 brackets (only BTC and ETH have more, 12)
    "XRP/USDT:USDT": [
        [0, 40000, 100, 0.005, 0.0],
        [40000, 80000, 75, 0.006, 40.0],
        [80000, 150000, 50, 0.01, 360.0],
        [150000, 400000, 40, 0.0125, 735.0],
        [400000, 1000000, 25, 0.02, 3735.0],
        [1000000, 2000000, 20, 0.025, 8735.0],
        [2000000, 10000000, 10, 0.05, 58735.0],
        [10000000, 20000000, 5, 0.1, 558735.0],
        [20000000, 25000000, 4, 0.125, 1058735.0],
        [25000000, 50000000, 2, 0.25, 4183735.0],
        [50000000, 100000000, 1, 0.5, 16683735.0],
    ],
    # a rate that is not a round fraction (0.1667) and a tiny coin
    "0G/USDT:USDT": [
        [0, 5000, 75, 0.01, 0.0],
        [5000, 10000, 50, 0.015, 25.0],
        [10000, 25000, 25, 0.02, 75.0],
        [25000, 50000, 20, 0.025, 200.0],
        [50000, 125000, 10, 0.05, 1450.0],
        [125000, 250000, 5, 0.1, 7700.0],
        [250000, 500000, 4, 0.125, 13950.0],
        [500000, 1000000, 3, 0.1667, 34800.0],
        [1000000, 7500000, 2, 0.25, 118100.0],
        [7500000, 12500000, 1, 0.5, 1993100.0],
    ],
}


@pytest.mark.parametrize("symbol", sorted(RAW))
def test_snapshot_symbols_have_the_raw_brackets(symbol: str) -> None:
    # Act
    rules = bt.exchange_rules("binanceusdm", symbol, at="2026-05-10")
    # Assert: floors, caps, max leverage, MMR and cum exactly as in the raw file
    expected = np.array(RAW[symbol], dtype=np.float64)
    got = np.column_stack(
        [rules.floors, rules.caps, rules.max_leverage, rules.mmr, rules.maint_amount]
    )
    np.testing.assert_array_equal(got, expected)
    assert rules.table_id == f"binanceusdm/{symbol.replace('/', '_').replace(':', '_')}/2026-05-07"
    assert rules.effective_from == DAY and rules.confidence == "V-code"
    assert "49de4ae5c0a2db3b206a6c4f4ac60afee6ef35b03d856fc60fd9c0fc6c7f4f8d" in rules.source
    assert "scripts/convert_binance_tiers.py" in rules.source
    assert not rules.tier_by_size


def test_every_snapshot_symbol_loads() -> None:
    # Act
    symbols = known_symbols("binanceusdm")
    # Assert: all 719 markets, each a valid table whose cum follows the recurrence
    assert len(symbols) == 719
    assert {"BTC/USDT:USDT", "ETH/BTC:BTC", "1000PEPE/USDC:USDC"} <= set(symbols)
    for symbol in symbols:
        rules = bt.exchange_rules("binanceusdm", symbol, at="2026-05-10")
        assert rules.n_tiers >= 5 and rules.floors[0] == 0.0
        np.testing.assert_array_equal(rules.caps[:-1], rules.floors[1:])
        table = tables_for("binanceusdm", symbol)[-1]
        assert recurrence_error(table) < 1e-6 * max(1.0, float(table.maint_amount[-1]))


def test_bundled_snapshot_is_small() -> None:
    entry = resources.files("backtester.rules").joinpath("tables").joinpath(SNAPSHOT)
    assert len(entry.read_bytes()) < 1_000_000  # 14 kB when written


@pytest.mark.parametrize("symbol", ["BTC/USDT:USDT", "ETH/USDT:USDT"])
def test_btc_eth_keep_their_hand_made_tables(symbol: str) -> None:
    # Arrange
    hand = [t for t in packaged_tables() if t.symbol == symbol and t.effective_from == DAY]
    # Act
    snap = snapshot_table("binanceusdm", symbol, "2026-05-07")
    ids = [t.table_id for t in tables_for("binanceusdm", symbol)]
    # Assert: the snapshot's brackets equal the hand-made 2026-05-07 table, which is the one used
    assert snap is not None and len(hand) == 1
    for name in ("floors", "caps", "max_leverage", "mmr", "maint_amount"):
        np.testing.assert_array_equal(getattr(snap, name), getattr(hand[0], name))
    safe = symbol.replace("/", "_").replace(":", "_")
    expected = ["2024-05-30", "2026-05-07"]
    if symbol.startswith("BTC"):
        expected = ["2019-09-08", "2021-03-18", *expected]
    assert ids == [f"binanceusdm/{safe}/{day}" for day in expected]
    assert tables_for("binanceusdm", symbol)[-1] is hand[0]


def test_btc_and_eth_do_not_read_the_snapshot() -> None:
    # Arrange
    tables_mod._snapshot_table.cache_clear()
    tables_mod._snapshot_doc.cache_clear()
    # Act
    bt.exchange_rules("binanceusdm", "BTC/USDT:USDT", at="2026-05-10")
    rules_timeline("binanceusdm", "ETH/USDT:USDT", "2019-12-23", "2026-05-17")
    # Assert
    assert tables_mod._snapshot_doc.cache_info().currsize == 0
    bt.exchange_rules("binanceusdm", "SOL/USDT:USDT")
    assert tables_mod._snapshot_doc.cache_info().currsize == 1


def test_earlier_dates_extend_the_snapshot_backwards_and_say_so() -> None:
    # Act
    timeline = rules_timeline("binanceusdm", "SOL/USDT:USDT", "2024-01-01", "2026-05-17")
    # Assert: one table; the fee change of 2025-12-24 splits it; the note says it was extended
    assert [t.table_id for t in timeline] == ["binanceusdm/SOL_USDT_USDT/2026-05-07"] * 2
    assert timeline[0].effective_from == pd.Timestamp("2024-01-01", tz="UTC")
    assert "extended backwards from 2026-05-07 to 2024-01-01" in timeline[0].note
    # a single date before the table is refused, pointing at rules_timeline (as for BTC/ETH)
    with pytest.raises(ConfigError, match=r"allowed range: at >= 2026-05-07.*rules_timeline"):
        bt.exchange_rules("binanceusdm", "SOL/USDT:USDT", at="2025-01-01")


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("PEPE/USDT:USDT", ["1000PEPE/USDT:USDT"]),
        ("SOL/USDT", ["SOL/USDT:USDT"]),
        ("solusdt", ["SOL/USDT:USDT"]),
        ("sol", ["SOL/USDT:USDT", "SOL/USDC:USDC"]),
        ("XTZ/USDT:USTD", ["XTZ/USDT:USDT"]),
        ("BTC/USDT", ["BTC/USDT:USDT", "BTC/USDT:USDT-260626", "BTC/USDT:USDT-260925"]),
    ],
)
def test_did_you_mean_lists_close_real_symbols(typed: str, meant: list[str]) -> None:
    # Act
    with pytest.raises(ConfigError) as info:
        bt.exchange_rules("binanceusdm", typed)
    # Assert: real symbols, perpetuals first; the 719 names are counted, not listed
    assert close_symbols(typed, known_symbols("binanceusdm")) == meant
    message = str(info.value)
    assert "did you mean " + repr(meant[0]) in message and "719 symbols are known" in message
    assert message.count("/USDT:USDT") <= 6  # suggestions and examples, not the list


def test_an_unrelated_symbol_gets_no_suggestion_from_its_quote() -> None:
    # "SOL/USDT:USDT" on okx shares only "/USDT:USDT" with BTC: not a typo
    assert close_symbols("SOL/USDT:USDT", known_symbols("okx")) == []
