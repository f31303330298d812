"""Shared test configuration: hypothesis profiles and shared fixtures (STYLE.md §9)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, **_COMMON)
settings.register_profile("ci", max_examples=500, **_COMMON)
settings.register_profile("nightly", max_examples=5000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# ---------------------------------------------------------------- shared market fixtures (data)
# Real bundled Binance USDⓈ-M data (see data/README.md); loaded once per test session.
import pytest  # noqa: E402

import backtester as bt  # noqa: E402


@pytest.fixture(scope="session")
def bundled_only_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty store root, so loads see only the bundled data (never a developer's downloads)."""
    return str(tmp_path_factory.mktemp("empty-store"))


@pytest.fixture(scope="session")
def btc_1h(bundled_only_store: str) -> bt.Market:
    """BTC/USDT:USDT 1h with mark and funding, 2019-12-23 11:00 -> 2026-05-17 06:00 UTC."""
    return bt.load_market("BTC/USDT:USDT", store=bundled_only_store)


@pytest.fixture(scope="session")
def eth_1h(bundled_only_store: str) -> bt.Market:
    """ETH/USDT:USDT 1h with mark and funding, 2019-12-23 11:00 -> 2026-05-17 06:00 UTC."""
    return bt.load_market("ETH/USDT:USDT", store=bundled_only_store)


@pytest.fixture(scope="session")
def btc_1m(bundled_only_store: str) -> bt.Market:
    """BTC/USDT:USDT 1m last-price bars (mark='last'), 2025-05-04 16:00 -> 2025-06-24 10:00 UTC."""
    return bt.load_market("BTC/USDT:USDT", timeframe="1m", mark="last", store=bundled_only_store)


@pytest.fixture(scope="session")
def btc_1h_with_1m(bundled_only_store: str) -> bt.Market:
    """BTC/USDT:USDT 1h bars 2025-05-04 16:00 -> 2025-06-24 10:00 UTC with .detail = the 1m bars."""
    return bt.load_market(
        "BTC/USDT:USDT",
        start="2025-05-04 16:00",
        end="2025-06-24 10:00",
        detail_timeframe="1m",
        store=bundled_only_store,
    )
