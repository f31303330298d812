"""`bt.load_market` takes an inverse market's contract size from the store's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.data import store

COIN_BTC = "BTC/USD:BTC"


def _write(root: Path, contract: dict[str, Any] | None, symbol: str = COIN_BTC) -> None:
    ts = pd.date_range("2024-01-01", periods=6, freq="1h", tz="UTC")
    price = np.array([40000.0, 40100.0, 40050.0, 40200.0, 40150.0, 40300.0])
    bars = pd.DataFrame(
        {"timestamp": ts, "open": price, "high": price + 50, "low": price - 50, "close": price,
         "volume": 1.0}
    )  # fmt: skip
    funding = pd.DataFrame({"timestamp": ts[:1], "funding_rate": [0.0001]})
    for kind, frame in (("ohlcv", bars), ("mark", bars.assign(volume=0.0)), ("funding", funding)):
        store.write_dataset(
            frame,
            exchange="binancecoinm",
            symbol=symbol,
            timeframe="1h",
            kind=kind,
            store=root,
            extra=contract,
        )


def test_the_stored_contract_size_is_used(tmp_path: Path) -> None:
    # 50 USD is not Binance's BTCUSD_PERP size (100 USD, the default): it tells the two apart
    contract = {"contract_type": "inverse", "contract_size": 50.0, "contract_size_unit": "USD",
                "settle": "BTC"}  # fmt: skip
    _write(tmp_path, contract)
    market = bt.load_market(COIN_BTC, exchange="binancecoinm", store=tmp_path)
    assert market.contract_size == 50.0


def test_without_a_stored_size_the_documented_default_is_used(tmp_path: Path) -> None:
    _write(tmp_path, None)
    market = bt.load_market(COIN_BTC, exchange="binancecoinm", store=tmp_path)
    assert market.contract_size == 100.0  # Binance COIN-M BTCUSD_PERP, exchange-rules.md §8.1


def test_a_size_in_another_unit_is_not_taken_for_usd(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    contract = {"contract_type": "inverse", "contract_size": 0.001, "contract_size_unit": "BTC",
                "settle": "BTC"}  # fmt: skip
    _write(tmp_path, contract)
    with caplog.at_level("WARNING", logger="backtester.market"):
        market = bt.load_market(COIN_BTC, exchange="binancecoinm", store=tmp_path)
    assert market.contract_size == 100.0
    assert "the stored contract size 0.001 BTC is not a USD face value" in caplog.text
