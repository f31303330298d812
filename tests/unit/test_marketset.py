"""MarketSet: alignment on the common bars, every refusal (one line, names the symbol), display."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.errors import ConfigError, DataError

H = 3_600_000_000_000  # 1 h in ns
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


def _bars(n: int, start: str, freq: str = "1h", base: float = 100.0) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": [base + i for i in range(n)],
            "high": [base + 2 + i for i in range(n)],
            "low": [base - 1 + i for i in range(n)],
            "close": [base + 1 + i for i in range(n)],
            "volume": [1.0] * n,
        }
    )


def _market(
    symbol: str,
    n: int,
    start: str,
    *,
    freq: str = "1h",
    exchange: str = "binanceusdm",
    funding: pd.DataFrame | None = None,
) -> bt.Market:
    return bt.Market.from_frames(
        _bars(n, start, freq),
        mark="last",
        funding=funding,
        symbol=symbol,
        exchange=exchange,
        timeframe=freq.replace("min", "m"),
    )


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- alignment


def test_markets_are_cut_to_the_intersection_of_their_ranges() -> None:
    # Arrange: BTC 00:00..05:00 (6 bars), ETH 02:00..09:00 (8 bars) -> common 02:00..05:00
    funding = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2024-01-01 00:00", "2024-01-01 03:00", "2024-01-01 08:00"], utc=True
            ),
            "funding_rate": [0.1, 0.2, 0.3],
        }
    )
    btc = _market(BTC, 6, "2024-01-01 00:00", funding=funding)
    eth = _market(ETH, 8, "2024-01-01 02:00", funding=funding)
    # Act
    ms = bt.MarketSet.from_markets([btc, eth])
    # Assert: 4 common bars 02:00, 03:00, 04:00, 05:00 in both, ordered as given
    expected = pd.date_range("2024-01-01 02:00", periods=4, freq="1h", tz="UTC")
    assert ms.symbols == (BTC, ETH)
    assert ms.n_bars == 4
    assert ms.start == pd.Timestamp("2024-01-01 02:00", tz="UTC")
    assert ms.end == pd.Timestamp("2024-01-01 06:00", tz="UTC")
    assert ms.timeframe == "1h" and ms.timeframe_ns == H and ms.exchange == "binanceusdm"
    pd.testing.assert_index_equal(ms.index, pd.DatetimeIndex(expected, name="timestamp"))
    for market in ms.markets:
        np.testing.assert_array_equal(market.ts_ns, ms.ts_ns)
    # BTC's bars 2..5 (open 102..105), ETH's bars 0..3 (open 100..103)
    assert ms[BTC].open.tolist() == [102.0, 103.0, 104.0, 105.0]
    assert ms[ETH].open.tolist() == [100.0, 101.0, 102.0, 103.0]
    # funding kept per market inside [02:00, 06:00): only the 03:00 event
    assert ms[BTC].funding_rate.tolist() == [0.2]
    assert ms[ETH].funding_rate.tolist() == [0.2]


def test_an_already_aligned_market_is_kept_as_is_and_the_cut_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    btc = _market(BTC, 4, "2024-01-01 00:00")
    eth = _market(ETH, 6, "2024-01-01 00:00")
    with caplog.at_level(logging.INFO, logger="backtester.marketset"):
        ms = bt.MarketSet(markets=(btc, eth))
    assert ms[BTC] is btc
    assert ms[ETH] is not eth and ms[ETH].n_bars == 4
    assert "clipped ETH/USDT:USDT" in caplog.text


def test_detail_bars_stay_with_their_market_cut_to_the_common_range() -> None:
    # Arrange: BTC 1h 00:00..03:00 with 15m detail over the same hours; ETH 1h 02:00..05:00
    detail = _market(BTC, 16, "2024-01-01 00:00", freq="15min")
    btc = bt.Market.from_frames(
        _bars(4, "2024-01-01 00:00"), mark="last", symbol=BTC, timeframe="1h", detail=detail
    )
    eth = _market(ETH, 4, "2024-01-01 02:00")
    # Act
    ms = bt.MarketSet.from_markets([btc, eth])
    # Assert: common 02:00..03:00 -> BTC detail 02:00..03:45 (8 bars), ETH has none
    btc_detail = ms[BTC].detail
    assert btc_detail is not None and btc_detail.n_bars == 8
    assert btc_detail.start == pd.Timestamp("2024-01-01 02:00", tz="UTC")
    assert btc_detail.end == ms.end
    assert ms[ETH].detail is None


def test_container_protocol_iterates_over_symbols() -> None:
    ms = bt.MarketSet.from_markets([_market(ETH, 3, "2024-01-01"), _market(BTC, 3, "2024-01-01")])
    assert len(ms) == 2
    assert list(ms) == [ETH, BTC]  # the given order, not sorted
    assert BTC in ms and "SOL/USDT:USDT" not in ms
    assert [m.symbol for m in ms.markets] == [ETH, BTC]
    assert isinstance(ms[BTC], bt.Market)
    assert len(ms.fingerprint()) == 64


# ---------------------------------------------------------------- refusals


def test_unknown_symbol_suggests_the_closest() -> None:
    ms = bt.MarketSet.from_markets([_market(BTC, 3, "2024-01-01"), _market(ETH, 3, "2024-01-01")])
    with pytest.raises(ConfigError) as exc:
        ms["BTC/USDT"]
    assert _one_line(exc) == (
        "MarketSet has no symbol 'BTC/USDT', it holds BTC/USDT:USDT, ETH/USDT:USDT; "
        "did you mean 'BTC/USDT:USDT'?"
    )


def test_no_market_and_non_markets_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"at least one market, was none") as exc:
        bt.MarketSet.from_markets([])
    _one_line(exc)
    with pytest.raises(ConfigError, match=r"item 1 was str; build them with bt.load_market"):
        bt.MarketSet.from_markets([_market(BTC, 3, "2024-01-01"), BTC])  # type: ignore[list-item]
    with pytest.raises(DataError, match=r"^ETH/USDT:USDT has no bar; build it"):
        bt.MarketSet.from_markets([_market(BTC, 3, "2024-01-01"), _gappy(ETH, [])])


def test_duplicate_symbol_is_refused() -> None:
    a = _market(BTC, 3, "2024-01-01")
    with pytest.raises(ConfigError) as exc:
        bt.MarketSet.from_markets([a, _market(BTC, 5, "2024-01-01")])
    assert _one_line(exc) == (
        "MarketSet symbols must be distinct, 'BTC/USDT:USDT' was given twice; pass each symbol once"
    )


def test_another_timeframe_is_refused_naming_the_symbol() -> None:
    btc = _market(BTC, 4, "2024-01-01")
    eth = _market(ETH, 4, "2024-01-01", freq="4h")
    with pytest.raises(DataError) as exc:
        bt.MarketSet.from_markets([btc, eth])
    assert _one_line(exc) == (
        "MarketSet markets must share one timeframe, ETH/USDT:USDT has 4h bars and "
        "BTC/USDT:USDT 1h; load every symbol with the same timeframe"
    )


def test_another_exchange_is_refused_because_an_account_is_one_wallet() -> None:
    btc = _market(BTC, 4, "2024-01-01")
    eth = _market(ETH, 4, "2024-01-01", exchange="okx")
    with pytest.raises(ConfigError) as exc:
        bt.MarketSet.from_markets([btc, eth])
    assert _one_line(exc) == (
        "MarketSet markets must share one exchange (an account is one wallet), ETH/USDT:USDT is "
        "on okx and BTC/USDT:USDT on binanceusdm; load every symbol from the same exchange"
    )


def test_ranges_that_do_not_overlap_are_refused() -> None:
    # BTC 2024-01-01 00:00..02:59, ETH from 05:00: no common bar
    btc = _market(BTC, 3, "2024-01-01 00:00")
    eth = _market(ETH, 3, "2024-01-01 05:00")
    with pytest.raises(DataError) as exc:
        bt.MarketSet.from_markets([btc, eth])
    assert _one_line(exc) == (
        "MarketSet markets have no common bar: ETH/USDT:USDT starts at 2024-01-01 05:00 UTC after "
        "BTC/USDT:USDT ends at 2024-01-01 03:00 UTC; pick markets whose ranges overlap"
    )


def test_ranges_that_only_touch_share_no_bar() -> None:
    # BTC ends at 03:00 (exclusive) where ETH starts
    with pytest.raises(
        DataError, match=r"have no common bar: ETH/USDT:USDT starts at 2024-01-01 03:00"
    ):
        bt.MarketSet.from_markets(
            [_market(BTC, 3, "2024-01-01"), _market(ETH, 3, "2024-01-01 03:00")]
        )


def test_bars_opening_at_other_times_are_refused() -> None:
    # BTC opens on the hour, ETH at half past: same timeframe, never the same bar
    btc = _market(BTC, 6, "2024-01-01 00:00")
    eth = _market(ETH, 6, "2024-01-01 00:30")
    with pytest.raises(DataError) as exc:
        bt.MarketSet.from_markets([btc, eth])
    message = _one_line(exc)
    assert message.startswith("bars of ETH/USDT:USDT open 0 days 00:30:00 after those of BTC")
    assert message.endswith("resample them so every market's bars open at the same times")


def _gappy(symbol: str, hours: list[int]) -> bt.Market:
    # Market's own constructor checks shapes only (from_frames refuses gaps): build one directly
    ts = np.array([pd.Timestamp("2024-01-01", tz="UTC").value + h * H for h in hours])
    prices = np.arange(1.0, len(hours) + 1.0)
    return bt.Market(
        symbol=symbol,
        exchange="binanceusdm",
        timeframe="1h",
        timeframe_ns=H,
        ts_ns=ts,
        **{f: prices for f in ("open", "high", "low", "close", "volume")},
        **{f: prices for f in ("mark_open", "mark_high", "mark_low", "mark_close")},
        mark_source="last",
        funding_ts_ns=np.empty(0, dtype=np.int64),
        funding_rate=np.empty(0),
    )


def test_a_bar_missing_in_one_market_is_refused_naming_it() -> None:
    # ETH lacks 03:00 and 04:00, which BTC has
    btc = _market(BTC, 6, "2024-01-01 00:00")
    eth = _gappy(ETH, [0, 1, 2, 5])
    with pytest.raises(DataError) as exc:
        bt.MarketSet.from_markets([btc, eth])
    assert _one_line(exc) == (
        "ETH/USDT:USDT is missing 2 bar(s) of the common range (first at 2024-01-01 03:00 UTC, "
        "present in BTC/USDT:USDT); fill them with backtester.data.schema.fill_gaps before "
        "Market.from_frames or pick a range without them"
    )


def test_a_gap_shared_by_every_market_is_refused() -> None:
    with pytest.raises(DataError) as exc:
        bt.MarketSet.from_markets([_gappy(BTC, [0, 1, 3]), _gappy(ETH, [0, 1, 3])])
    assert _one_line(exc).startswith(
        "BTC/USDT:USDT, ETH/USDT:USDT all skip from 2024-01-01 01:00 UTC to 2024-01-01 03:00 UTC"
    )


def test_load_markets_refuses_a_string_empty_and_repeated_symbols() -> None:
    with pytest.raises(ConfigError, match=r"was the string 'BTC/USDT:USDT,ETH/USDT:USDT'; pass"):
        bt.load_markets(f"{BTC},{ETH}")
    with pytest.raises(ConfigError, match=r"at least one symbol, was empty"):
        bt.load_markets([])
    with pytest.raises(ConfigError, match=r"'BTC/USDT:USDT' was given 2 times"):
        bt.load_markets([BTC, BTC])


def test_load_markets_names_the_symbol_whose_data_is_missing() -> None:
    with pytest.raises(DataError, match=r"SOL") as exc:
        bt.load_markets([BTC, "SOL/USDT:USDT"], start="2024-01-01", end="2024-01-02")
    _one_line(exc)


# ---------------------------------------------------------------- display


def test_repr_shows_symbols_exchange_timeframe_range_and_bars() -> None:
    btc = _market(BTC, 6, "2024-01-01 00:00")
    eth = _market(ETH, 8, "2024-01-01 02:00")
    ms = bt.MarketSet.from_markets([btc, eth])
    assert repr(ms) == (
        "MarketSet of 2 markets on binanceusdm, 1h bars\n"
        "  range  2024-01-01 02:00 -> 2024-01-01 06:00 UTC (4 common bars)\n"
        "  BTC/USDT:USDT  last price (mark='last'), funding 0 events, tiers exchange's dated tables, detail none\n"
        "  ETH/USDT:USDT  last price (mark='last'), funding 0 events, tiers exchange's dated tables, detail none"
    )


def test_html_repr_is_a_table_with_one_row_per_symbol() -> None:
    ms = bt.MarketSet.from_markets([_market(BTC, 3, "2024-01-01"), _market(ETH, 3, "2024-01-01")])
    page = ms._repr_html_()
    assert page.startswith("<table><caption>MarketSet on binanceusdm, 1h bars")
    for header in ("symbol", "mark source", "funding events", "tiers", "detail"):
        assert f"<th>{header}</th>" in page
    assert page.count("<tr>") == 3  # header + 2 markets
    assert "<td>ETH/USDT:USDT</td>" in page and "mark=&#x27;last&#x27;" in page


# ---------------------------------------------------------------- bundled data


def test_bundled_btc_and_eth_share_their_range_and_keep_their_own_data() -> None:
    # Act: both bundled 1h sets cover 2019-12-23 11:00 -> 2026-05-17 06:00 (mark and last)
    ms = bt.load_markets([BTC, ETH])
    # Assert
    assert ms.symbols == (BTC, ETH)
    assert ms.start == pd.Timestamp("2019-12-23 11:00", tz="UTC")
    assert ms.end == pd.Timestamp("2026-05-17 06:00", tz="UTC")
    assert ms.n_bars == 56_083
    np.testing.assert_array_equal(ms[BTC].ts_ns, ms[ETH].ts_ns)
    assert ms[BTC].close[0] != ms[ETH].close[0]  # each market its own prices
    assert ms[BTC].mark_source == ms[ETH].mark_source == "mark"
    assert ms[BTC].tiers is not None and ms[ETH].tiers is not None
    assert "(56,083 common bars)" in repr(ms)


def test_bundled_common_range_is_the_later_start_and_the_earlier_end() -> None:
    # Arrange: BTC March 2020, ETH from 2020-03-10 to 2020-04-10
    btc = bt.load_market(BTC, start="2020-03-01", end="2020-04-01")
    eth = bt.load_market(ETH, start="2020-03-10", end="2020-04-10")
    # Act
    ms = bt.MarketSet.from_markets([btc, eth])
    # Assert: 2020-03-10 00:00 -> 2020-04-01 00:00 = 22 days = 528 bars
    assert ms.start == pd.Timestamp("2020-03-10", tz="UTC")
    assert ms.end == pd.Timestamp("2020-04-01", tz="UTC")
    assert ms.n_bars == 528
    # BTC's own bars from 2020-03-10, untouched values
    assert ms[BTC].close[0] == btc.close[9 * 24]
    assert ms[ETH].close[-1] == eth.close[22 * 24 - 1]
    assert ms[BTC].funding_ts_ns.size == ms[ETH].funding_ts_ns.size == 22 * 3
