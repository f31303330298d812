"""The same holds on several venues on their common crash days (bt.compare_venues)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.errors import ConfigError

DAY = pd.Timestamp("2024-03-08", tz="UTC")


def venue(exchange: str, crash_low: float) -> bt.Market:
    """Seven flat days at 100, then DAY: the mark falls to ``crash_low`` at 06:00 and recovers.

    The last price keeps to 100 all along; only the mark moves, so only the mark can liquidate.
    """
    ts = pd.date_range(DAY - pd.Timedelta("7D"), DAY + pd.Timedelta("2D"), freq="1h", tz="UTC")
    flat = pd.DataFrame({"timestamp": ts, "open": 100.0, "high": 100.0, "low": 100.0,
                         "close": 100.0, "volume": 1.0})  # fmt: skip
    mark = flat.copy()
    mark.loc[mark["timestamp"] == DAY + pd.Timedelta("6h"), "low"] = crash_low
    return bt.Market.from_frames(flat, mark=mark, symbol="TEST/USDT:USDT", exchange=exchange)


def test_only_the_venue_whose_mark_crosses_the_liquidation_price_liquidates() -> None:
    # Arrange: a 10x long at 100 with a flat 0.5 % maintenance rate is liquidated where
    # equity = maintenance: 100 * (1 - 1/10) / (1 - 0.005) = 90.45 (isolated, no fee at
    # liquidation in the price). Binance's mark dips to 95 (above), OKX's to 85 (below).
    binance, okx = venue("binanceusdm", 95.0), venue("okx", 85.0)
    # Act
    table = bt.compare_venues(
        [binance, okx], days=["2024-03-08"], side="long", leverage=10, maint_margin_rate=0.005
    )
    # Assert: 168 hourly entries in the 7 days before; all still open at 00:00; only OKX's
    # holds are liquidated, every one of them, during the day
    assert list(table.columns) == [
        "day", "exchange", "mark_source", "side", "leverage", "stop_loss", "mark_move",
        "n_entries", "n_open_at_day", "n_liquidated_on_day", "liquidated_share",
    ]  # fmt: skip
    by = table.set_index("exchange")
    assert by["n_entries"].tolist() == [168, 168]
    assert by["n_open_at_day"].tolist() == [168, 168]
    assert by.loc["binanceusdm", "n_liquidated_on_day"] == 0
    assert by.loc["okx", "n_liquidated_on_day"] == 168
    assert by.loc["okx", "liquidated_share"] == 1.0
    np.testing.assert_allclose(by["mark_move"], [0.05, 0.15])


def test_crash_days_ranks_the_largest_common_mark_move_and_skips_its_neighbours() -> None:
    # the only move is DAY's; a day within the 7-day lookback of it is the same event
    days = bt.crash_days([venue("binanceusdm", 95.0), venue("okx", 85.0)], n_days=2, lookback="1D")
    assert days[0] == DAY or days[1] == DAY
    assert all(abs((d - DAY).days) > 1 or d == DAY for d in days)
    assert bt.crash_days([venue("binanceusdm", 95.0), venue("okx", 85.0)], n_days=1) == [DAY]


@pytest.mark.parametrize(
    ("markets", "kwargs", "message"),
    [
        ("one", {}, "at least two exchanges"),
        ("same", {}, "two markets of exchange 'okx'"),
        ("two", {"days": ["2024-03-01"]}, "outside the days every venue covers"),
        ("two", {"days": ["2024-03-08 06:00"]}, "whole UTC dates"),
        ("two", {"lookback": "-1D"}, "lookback must be a positive period"),
        ("two", {"side": "up"}, "side must be 'long', 'short' or 'both'"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(markets: str, kwargs: dict, message: str) -> None:
    okx = venue("okx", 85.0)
    given = {"one": [okx], "same": [okx, venue("okx", 90.0)], "two": [okx, venue("bybit", 95.0)]}
    with pytest.raises(ConfigError, match=message):
        bt.compare_venues(given[markets], maint_margin_rate=0.005, **kwargs)
