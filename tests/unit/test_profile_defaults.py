"""Settings whose None means "the exchange profile's": taker fee and liquidation-fee rate.

Hand-computed expectations for one 10x isolated long (flat maintenance rate 0.005, funding off,
``close_at="liquidation"``) entered at the 100.0 open of a 4-bar market whose third bar's low
(50.0, mark = last) liquidates it. With cash 10,000 and taker fee ``t`` the order costs margin +
fee, so ``margin = 10,000 / (1 + 10 t)``, ``size = 10 margin / 100`` and the entry fee is
``100 size t``. The liquidation fee is ``rate x size x LP``. The property tests take these
resolved rates from the kernel's inputs; this file checks the rule itself.
"""

from __future__ import annotations

import pandas as pd
import pytest

import backtester as bt
from tests.unit.reference import FixedSignals


def _liquidated_long(exchange: str, **settings: float | None) -> pd.Series:
    ts = pd.date_range("2024-06-03", periods=4, freq="1h", tz="UTC")
    bars = pd.DataFrame(
        {
            "timestamp": ts,
            "open": [100.0] * 4,
            "high": [100.0] * 4,
            "low": [100.0, 100.0, 50.0, 100.0],
            "close": [100.0] * 4,
        }
    )
    market = bt.Market.from_frames(
        bars, mark="last", symbol="BTC/USDT:USDT", exchange=exchange, timeframe="1h"
    )
    cfg = bt.RunConfig(
        leverage=10.0,
        maint_margin_rate=0.005,
        close_at="liquidation",
        funding=False,
        **settings,  # type: ignore[arg-type]
    )
    trades = bt.run_sweep(
        market, FixedSignals(4, long_entries=[0]), bt.ParamGrid.product(), config=cfg
    ).trades()
    assert list(trades["exit_reason"]) == ["liquidation"]
    return trades.iloc[0]


# taker 0.001: margin 9,900.990099, size 990.0990099, entry fee 99.00990099
# taker 0.0005 (OKX profile): margin 9,950.248756, size 995.0248756, entry fee 49.75124378
# taker 0.00055 (Bybit profile): margin 9,945.300845, size 994.5300845, entry fee 54.69915465
CASES = [
    # Binance: the liquidation-fee rate is the table's (0.003 on 2024-06-03), never the taker fee;
    # LP = (margin - size*100) / (size*(0.005 - 1)) = 90.45226131
    ("binanceusdm", 0.001, None, 90.45226131, 99.00990099 + 0.003 * 990.0990099 * 90.45226131),
    # OKX: None follows the column's taker fee, which also enters the LP:
    # LP = (margin - size*100) / (size*(0.005 + 0.001 - 1)) = 90.54325956
    ("okx", 0.001, None, 90.54325956, 99.00990099 + 0.001 * 990.0990099 * 90.54325956),
    # OKX, taker None: the profile's 0.0005 for both; LP with 0.0055 = 90.49773756
    ("okx", None, None, 90.49773756, 49.75124378 + 0.0005 * 995.0248756 * 90.49773756),
    # Bybit: None follows the taker fee; LP = 100 - (margin - 0.005 notional)/size = 90.5
    ("bybit", 0.001, None, 90.5, 99.00990099 + 0.001 * 990.0990099 * 90.5),
    # Bybit, taker None: the profile's 0.00055 for both
    ("bybit", None, None, 90.5, 54.69915465 + 0.00055 * 994.5300845 * 90.5),
    # an explicit rate wins on every exchange (0.0: only the entry fee; OKX's LP has no fee term)
    ("binanceusdm", 0.001, 0.0, 90.45226131, 99.00990099),
    ("okx", 0.001, 0.0, 90.45226131, 99.00990099),
    ("bybit", 0.001, 0.0, 90.5, 99.00990099),
]


@pytest.mark.parametrize(("exchange", "taker_fee", "liq_rate", "lp", "fees"), CASES)
def test_liquidation_fee_rate_none_follows_the_profile_rule(
    exchange: str, taker_fee: float | None, liq_rate: float | None, lp: float, fees: float
) -> None:
    # Act
    trade = _liquidated_long(exchange, taker_fee=taker_fee, liquidation_fee_rate=liq_rate)
    # Assert
    assert trade["exit_price"] == pytest.approx(lp, rel=1e-9)
    assert trade["fees"] == pytest.approx(fees, rel=1e-9)
