"""Download scenarios shared by the recorder (tests/helpers/record.py) and the loader tests.

Each scenario is a list of ``download`` keyword sets run in order against one store; the recorder
serves them from real bars and saves every HTTP interaction, the tests replay exactly those.
"""

from __future__ import annotations

from typing import Any

SYMBOL = "BTC/USDT:USDT"

# Binance USDⓈ-M BTC 1h from the bundled real data; 50-row pages so a few days span several pages
BINANCE_FULL: dict[str, Any] = {
    "exchange": "binanceusdm",
    "symbol": SYMBOL,
    "timeframe": "1h",
    "start": "2024-01-01",
    "end": "2024-01-21",
    "kinds": ("ohlcv", "mark", "funding"),
    "page_limit": 50,
    "now": "2026-06-01",
}
BINANCE_MIDDLE = {**BINANCE_FULL, "start": "2024-01-08", "end": "2024-01-15"}
BINANCE_INDEX = {**BINANCE_FULL, "kinds": ("index",), "start": "2024-01-01", "end": "2024-01-03"}
# the last stored bar opens 2026-05-17 06:00: asking up to 2026-05-18 reaches the end of history
BINANCE_END = {
    **BINANCE_FULL,
    "kinds": ("ohlcv", "funding"),
    "start": "2026-05-15",
    "end": "2026-05-18",
    "now": "2026-05-18 00:30",
}

# OKX BTC-USDT-SWAP 1h (real OKX bars of Jan 2026), exchange page size (100)
OKX_FULL: dict[str, Any] = {
    "exchange": "okx",
    "symbol": SYMBOL,
    "timeframe": "1h",
    "start": "2026-01-02",
    "end": "2026-01-10",
    "kinds": ("ohlcv", "mark", "funding", "tiers"),
    "now": "2026-01-16 12:00",
}

# Bybit BTCUSDT linear 1h (real Bybit bars of Oct 2025), 40-row pages
BYBIT_FULL: dict[str, Any] = {
    "exchange": "bybit",
    "symbol": SYMBOL,
    "timeframe": "1h",
    "start": "2025-10-01",
    "end": "2025-10-05",
    "kinds": ("ohlcv", "mark", "funding", "tiers"),
    "page_limit": 40,
    "now": "2025-11-01",
}

# tiers alone (no start: today's snapshot) of a second symbol, OKX ETH-USDT-SWAP / Bybit ETHUSDT
OKX_ETH_TIERS: dict[str, Any] = {
    "exchange": "okx",
    "symbol": "ETH/USDT:USDT",
    "timeframe": "1h",
    "start": None,
    "kinds": ("tiers",),
    "now": "2026-01-16 12:00",
}
BYBIT_ETH_TIERS: dict[str, Any] = {**OKX_ETH_TIERS, "exchange": "bybit", "now": "2025-11-01"}

# Binance COIN-M BTCUSD_PERP (coin-margined, 100 USD contracts) 1h, 50-row pages; served from
# 2024-01-01 00:00 (the "listing" of the rendered market), so a start before it meets empty windows
COINM_FULL: dict[str, Any] = {
    "exchange": "binancecoinm",
    "symbol": "BTC/USD:BTC",
    "timeframe": "1h",
    "start": "2024-01-01",
    "end": "2024-01-08",
    "kinds": ("ohlcv", "mark", "funding", "index"),
    "page_limit": 50,
    "now": "2026-06-01",
}
COINM_BEFORE_LISTING: dict[str, Any] = {
    **COINM_FULL,
    "start": "2023-12-27",
    "end": "2024-01-03",
    "kinds": ("ohlcv", "funding"),
}

# {exchange: {recorded file name: [scenario sequence, ...]}}; each sequence runs in order
# against one fresh store
SCENARIOS: dict[str, dict[str, list[list[dict[str, Any]]]]] = {
    "binanceusdm": {
        "btc_1h": [[BINANCE_FULL], [BINANCE_MIDDLE, BINANCE_FULL], [BINANCE_INDEX], [BINANCE_END]]
    },
    "okx": {"btc_1h": [[OKX_FULL]], "eth_tiers": [[OKX_ETH_TIERS]]},
    "bybit": {"btc_1h": [[BYBIT_FULL]], "eth_tiers": [[BYBIT_ETH_TIERS]]},
    "binancecoinm": {"btc_1h": [[COINM_FULL], [COINM_BEFORE_LISTING]]},
}


def call_args(scenario: dict[str, Any]) -> tuple[tuple[str, str, str], dict[str, Any]]:
    """Split a scenario into ``download`` positional and keyword arguments."""
    kwargs = dict(scenario)
    args = (kwargs.pop("exchange"), kwargs.pop("symbol"), kwargs.pop("timeframe"))
    return args, kwargs
