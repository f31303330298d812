"""Market: from_frames (pandas/polars), mark rules, funding_by_bar, slicing, load_market on bundled data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import backtester as bt
from backtester.errors import ConfigError, DataError

H = 3_600_000_000_000  # 1 h in ns


def _bars(n: int = 4, start: str = "2024-01-01") -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": [100.0 + i for i in range(n)],
            "high": [102.0 + i for i in range(n)],
            "low": [99.0 + i for i in range(n)],
            "close": [101.0 + i for i in range(n)],
            "volume": [1.0] * n,
        }
    )


def _funding(times: list[str], rates: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": pd.to_datetime(times, utc=True), "funding_rate": rates})


def test_from_frames_with_mark_last_records_the_source() -> None:
    # Act
    m = bt.Market.from_frames(_bars(), mark="last", symbol="BTC/USDT:USDT")
    # Assert: mark arrays are copies of the last-price OHLC and the market says so
    assert m.mark_source == "last"
    assert m.mark_low.tolist() == [99.0, 100.0, 101.0, 102.0]
    assert m.timeframe == "1h" and m.timeframe_ns == H
    assert m.n_bars == 4
    assert m.funding_ts_ns.size == 0
    assert "last price used as mark (mark='last')" in repr(m)


def test_missing_mark_is_never_silently_replaced() -> None:
    with pytest.raises(DataError, match=r"pass .*mark='last' to use the last price as mark"):
        bt.Market.from_frames(_bars(), symbol="BTC/USDT:USDT")
    # None is refused too, so the message no longer offers it
    with pytest.raises(
        ConfigError,
        match=r"^mark must be a mark-price frame \(timestamp, open, high, low, close\) "
        r"or 'last', was 'lst'",
    ):
        bt.Market.from_frames(_bars(), mark="lst", symbol="BTC/USDT:USDT")


def test_mark_frame_is_aligned_to_the_bars() -> None:
    # Arrange: mark has one extra bar before the ohlcv range (ignored) and different prices
    mark = _bars(5, start="2023-12-31 23:00")
    mark[["open", "high", "low", "close"]] += 0.5
    # Act
    m = bt.Market.from_frames(_bars(), mark=mark.drop(columns="volume"), symbol="X/USDT:USDT")
    # Assert: bar i gets the mark bar with the same open time, mark row i+1, whose open is
    # 100 + (i+1) + 0.5; mark row 0 (23:00, open 100.5) lies before the bars and is dropped
    assert m.mark_source == "mark"
    assert m.mark_open.tolist() == [101.5, 102.5, 103.5, 104.5]


def test_mark_frame_missing_a_bar_is_an_error() -> None:
    mark = _bars().drop(index=2)
    with pytest.raises(
        DataError,
        match=r"mark bars must cover every ohlcv bar, was missing 1 bar\(s\) \(first at 2024-01-01 02:00 UTC\)",
    ):
        bt.Market.from_frames(_bars(), mark=mark, symbol="X/USDT:USDT")


def test_polars_frames() -> None:
    pl = pytest.importorskip("polars")
    funding = _funding(["2024-01-01 00:00"], [1e-4])
    m = bt.Market.from_frames(
        pl.from_pandas(_bars()),
        mark=pl.from_pandas(_bars()),
        funding=pl.from_pandas(funding),
        symbol="BTC/USDT:USDT",
    )
    assert m.close.tolist() == [101.0, 102.0, 103.0, 104.0]
    assert m.funding_rate.tolist() == [1e-4]


def test_funding_by_bar_sums_events_inside_each_bar() -> None:
    # Arrange: bars 00:00..03:00; events at 00:00 (bar 0), 02:30 and 02:59 (bar 2),
    # 04:00 (= end of last bar, excluded) and the day before (excluded)
    funding = _funding(
        [
            "2023-12-31 16:00",
            "2024-01-01 00:00",
            "2024-01-01 02:30",
            "2024-01-01 02:59",
            "2024-01-01 04:00",
        ],
        [9.0e-4, 1.0e-4, 2.0e-4, -0.5e-4, 7.0e-4],
    )
    m = bt.Market.from_frames(_bars(), mark="last", funding=funding, symbol="X/USDT:USDT")
    # Act
    out = m.funding_by_bar()
    # Assert: [1e-4, NaN, 2e-4 - 0.5e-4 = 1.5e-4, NaN]; kept events are the 3 inside [00:00, 04:00)
    assert m.funding_ts_ns.size == 3
    np.testing.assert_allclose(out, [1.0e-4, np.nan, 1.5e-4, np.nan])


def test_slice_cuts_bars_funding_and_is_end_exclusive() -> None:
    funding = _funding(["2024-01-01 00:00", "2024-01-01 02:00"], [1e-4, 2e-4])
    m = bt.Market.from_frames(_bars(), mark="last", funding=funding, symbol="X/USDT:USDT")
    # Act: [01:00, 03:00) -> bars 01:00 and 02:00
    part = m.slice("2024-01-01 01:00", "2024-01-01 03:00")
    # Assert
    assert part.n_bars == 2
    assert part.open.tolist() == [101.0, 102.0]
    assert part.funding_rate.tolist() == [2e-4]
    with pytest.raises(DataError, match=r"holds no bar"):
        m.slice("2025-01-01", None)


def test_arrays_are_read_only_and_input_is_not_frozen() -> None:
    df = _bars()
    m = bt.Market.from_frames(df, mark="last", symbol="X/USDT:USDT")
    with pytest.raises(ValueError, match="read-only"):
        m.close[0] = 1.0
    df.loc[0, "close"] = 5.0  # the caller's frame stays writable and unlinked
    assert m.close[0] == 101.0


def test_to_frame_and_fingerprint() -> None:
    funding = _funding(["2024-01-01 01:00"], [1e-4])
    m = bt.Market.from_frames(_bars(), mark="last", funding=funding, symbol="X/USDT:USDT")
    frame = m.to_frame()
    assert list(frame.columns) == [
        "open", "high", "low", "close", "volume",
        "mark_open", "mark_high", "mark_low", "mark_close", "funding_rate",
    ]  # fmt: skip
    assert frame.index[1] == pd.Timestamp("2024-01-01 01:00", tz="UTC")
    assert frame["funding_rate"].iloc[1] == 1e-4
    same = bt.Market.from_frames(_bars(), mark="last", funding=funding, symbol="X/USDT:USDT")
    assert m.fingerprint() == same.fingerprint()
    other = bt.Market.from_frames(_bars(), mark="last", symbol="X/USDT:USDT")
    assert m.fingerprint() != other.fingerprint()
    assert len(m.fingerprint()) == 64


def test_single_bar_needs_a_timeframe() -> None:
    with pytest.raises(DataError, match=r"pass timeframe='1h'"):
        bt.Market.from_frames(_bars(1), mark="last", symbol="X/USDT:USDT")
    m = bt.Market.from_frames(_bars(1), mark="last", symbol="X/USDT:USDT", timeframe="1h")
    assert m.end - m.start == pd.Timedelta(hours=1)


@given(
    st.integers(min_value=2, max_value=40),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=40),
)
def test_slices_partition_the_market(n: int, a: int, b: int) -> None:
    """Slicing at any cut point splits the bars and funding events with nothing lost or doubled."""
    cut = min(a, b, n - 1) or 1
    times = [f"2024-01-01 {h:02d}:00" for h in range(0, min(n, 24), 3)]
    funding = _funding(times, [1e-4] * len(times))
    m = bt.Market.from_frames(_bars(n), mark="last", funding=funding, symbol="X/USDT:USDT")
    at = m.index[cut]
    left, right = m.slice(None, at), m.slice(at, None)
    assert left.n_bars + right.n_bars == m.n_bars
    assert left.funding_ts_ns.size + right.funding_ts_ns.size == m.funding_ts_ns.size
    np.testing.assert_array_equal(np.concatenate([left.close, right.close]), m.close)


# ---------------------------------------------------------------- bundled data


def test_acceptance_btc_crash_low(btc_1h: bt.Market) -> None:
    # the Binance USD-M BTC perp 1h low at 2020-03-13 02:00 UTC was 3621.81
    i = btc_1h.index.get_loc(pd.Timestamp("2020-03-13 02:00", tz="UTC"))
    assert btc_1h.low[i] == 3621.81
    assert btc_1h.mark_source == "mark"
    assert btc_1h.start == pd.Timestamp("2019-12-23 11:00", tz="UTC")  # where mark data begins
    assert btc_1h.end == pd.Timestamp("2026-05-17 06:00", tz="UTC")
    assert btc_1h.n_bars == 56_083
    assert btc_1h.tiers is not None and len(btc_1h.tiers) == 12
    # funding on 2020-03-13 08:00 UTC was -0.3 % (PROVENANCE.md)
    j = btc_1h.index.get_loc(pd.Timestamp("2020-03-13 08:00", tz="UTC"))
    assert btc_1h.funding_by_bar()[j] == -0.003


def test_repr_describes_the_market(btc_1h: bt.Market) -> None:
    text = repr(btc_1h)
    assert "Market BTC/USDT:USDT on binanceusdm, 1h bars" in text
    assert "2019-12-23 11:00 -> 2026-05-17 06:00 UTC (56,083 bars)" in text
    assert "mark-price bars" in text
    assert "funding 7,010 events" in text
    assert "12 tiers (snapshot 2026-05-07)" in text


def test_eth_market(eth_1h: bt.Market) -> None:
    i = eth_1h.index.get_loc(pd.Timestamp("2020-03-13 02:00", tz="UTC"))
    assert eth_1h.low[i] == 84.23


def test_mark_last_gives_the_full_last_price_history(bundled_only_store: str) -> None:
    m = bt.load_market("BTC/USDT:USDT", mark="last", end="2019-09-09", store=bundled_only_store)
    # the two 10000.00 listing placeholder bars of 17:00 and 18:00 were dropped when bundling
    assert m.start == pd.Timestamp("2019-09-08 19:00", tz="UTC")
    assert m.mark_source == "last"


def test_explicit_start_before_mark_data_is_an_error(bundled_only_store: str) -> None:
    with pytest.raises(
        DataError, match=r"starts at 2019-12-23 11:00 UTC; pick a later start or pass mark='last'"
    ):
        bt.load_market("BTC/USDT:USDT", start="2019-10-01", store=bundled_only_store)
    with pytest.raises(DataError, match=r"pick an earlier end or download more"):
        bt.load_market(
            "BTC/USDT:USDT", start="2026-05-01", end="2026-06-01", store=bundled_only_store
        )


def test_missing_data_names_the_download_command(bundled_only_store: str) -> None:
    with pytest.raises(
        DataError,
        match=r"backtester data download --exchange binanceusdm --symbol SOL/USDT:USDT --timeframe 1h",
    ):
        bt.load_market("SOL/USDT:USDT", store=bundled_only_store)


def test_range_and_detail_bars(btc_1h_with_1m: bt.Market) -> None:
    m = btc_1h_with_1m
    assert m.detail is not None
    assert m.detail.timeframe == "1m"
    assert m.detail.mark_source == "last"
    assert m.detail.n_bars == 60 * m.n_bars  # 1m window trimmed to whole hours
    # the 1m bars inside an hour aggregate exactly to that hour's 1h bar
    hour = m.slice("2025-05-20 13:00", "2025-05-20 14:00")
    assert hour.detail is not None
    assert hour.detail.high.max() == hour.high[0]
    assert hour.detail.low.min() == hour.low[0]
    assert hour.detail.open[0] == hour.open[0]
    assert hour.detail.close[-1] == hour.close[0]


def test_detail_outside_the_1m_window_is_an_error(bundled_only_store: str) -> None:
    with pytest.raises(DataError, match=r"none inside"):
        bt.load_market(
            "BTC/USDT:USDT",
            start="2024-01-01",
            end="2024-02-01",
            detail_timeframe="1m",
            store=bundled_only_store,
        )


def test_missing_market_names_one_command_for_every_kind_it_needs(bundled_only_store: str) -> None:
    # a market needs last-price bars, mark bars and funding: the hint downloads all three at once
    # (it used to say `--kinds ohlcv`, and the next load then failed on the missing mark data)
    with pytest.raises(DataError) as info:
        bt.load_market("BTC/USDT:USDT", exchange="okx", store=bundled_only_store)
    assert (
        "`backtester data download --exchange okx --symbol BTC/USDT:USDT --timeframe 1h "
        "--start 2020-01-01 --kinds ohlcv,mark,funding`"
    ) in str(info.value)


def test_spot_symbol_suggests_the_perpetual(bundled_only_store: str) -> None:
    # 'BTC/USDT' is Binance spot; the perpetual settled in USDT is 'BTC/USDT:USDT'
    with pytest.raises(DataError, match=r"did you mean the perpetual 'BTC/USDT:USDT'\?$"):
        bt.load_market("BTC/USDT", store=bundled_only_store)


def test_unknown_exchange_is_a_config_error(bundled_only_store: str) -> None:
    with pytest.raises(
        ConfigError, match=r"exchange must be one of .*was 'bybt'; did you mean 'bybit'"
    ):
        bt.load_market("BTC/USDT:USDT", exchange="bybt", store=bundled_only_store)


def test_start_after_the_stored_data_says_so(bundled_only_store: str) -> None:
    # the bundled mark data ends with the 2026-05-17 05:00 bar, i.e. at 06:00; a start in 2027 used
    # to fail with "end must be after start ... end 2026-05-17 06:00", an end the user never gave
    with pytest.raises(
        DataError,
        match=r"start 2027-01-01 00:00 UTC is after the last-price and mark data .* ends at "
        r"2026-05-17 06:00 UTC; pick an earlier start or download more with `backtester data "
        r"download .*--start 2026-05-17 --kinds ohlcv,mark,funding`",
    ):
        bt.load_market("BTC/USDT:USDT", start="2027-01-01", store=bundled_only_store)


def test_funding_covering_only_part_of_the_bars_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bundled_only_store: str
) -> None:
    # Arrange: 2024-01-01 -> 2024-01-10 (216 bars) with mark, but funding only from 2024-01-05
    # (like OKX, which serves ~3 months of funding history): 4 days would silently pay nothing
    from backtester.data import store as data_store

    n = 216
    bars = _bars(n)
    funding = _funding(
        [str(t) for t in pd.date_range("2024-01-05", "2024-01-09 16:00", freq="8h")],
        [0.0001] * 15,
    )
    for kind, frame in (("ohlcv", bars), ("mark", bars), ("funding", funding)):
        data_store.write_dataset(
            frame, exchange="okx", symbol="BTC/USDT:USDT", timeframe="1h", kind=kind, store=tmp_path
        )
    # Act
    with caplog.at_level("WARNING", logger="backtester.market"):
        m = bt.load_market("BTC/USDT:USDT", exchange="okx", store=tmp_path)
    # Assert: loaded as asked, and a warning names the covered range and the download command
    assert m.n_bars == n
    assert m.funding_ts_ns.size == 15
    (record,) = [r for r in caplog.records if r.name == "backtester.market"]
    text = record.getMessage()
    assert "funding events cover only 2024-01-05 00:00 UTC -> 2024-01-09 16:00 UTC" in text
    assert "bars span 2024-01-01 00:00 UTC -> 2024-01-10 00:00 UTC" in text
    assert "--start 2024-01-01 --kinds funding` (OKX serves only the last 3 months" in text
    # full coverage (the bundled data) stays quiet
    caplog.clear()
    with caplog.at_level("WARNING", logger="backtester.market"):
        bt.load_market(
            "BTC/USDT:USDT", start="2024-01-01", end="2024-02-01", store=bundled_only_store
        )
    assert not [r for r in caplog.records if r.name == "backtester.market"]


# ---------------------------------------------------------------- input validation at the boundary


def _tiers(**changes: list[float]) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "tier": [1, 2],
            "floor": [0.0, 300_000.0],
            "cap": [300_000.0, 800_000.0],
            "max_leverage": [150.0, 100.0],
            "mmr": [0.004, 0.005],
            "maint_amount": [0.0, 300.0],
            "basis": ["notional", "notional"],
        }
    )
    return table.assign(**changes)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        (
            "mmr",
            [np.nan, 0.005],
            r"tiers.mmr must be a fraction in \(0, 1\) in every tier, was nan",
        ),
        ("mmr", [-0.004, 0.005], r"tiers.mmr must be a fraction in \(0, 1\) .*was -0.004 in row 0"),
        ("max_leverage", [150.0, np.nan], r"tiers.max_leverage must be a finite number > 0 .*nan"),
        ("max_leverage", [-150.0, 100.0], r"tiers.max_leverage must be .*was -150.0 in row 0"),
        ("maint_amount", [0.0, -300.0], r"tiers.maint_amount must be .*>= 0 .*was -300.0 in row 1"),
        ("maint_amount", [0.0, np.nan], r"tiers.maint_amount must be a finite number >= 0"),
        ("floor", [np.nan, 300_000.0], r"tiers.floor must be a finite number >= 0"),
        ("cap", [np.nan, 800_000.0], r"tiers.cap must be above its floor"),
        ("tier", [1.0, np.nan], r"tiers.tier must be a whole number .*was nan in row 1"),
    ],
)
def test_bad_tier_tables_are_refused(column: str, values: list[float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        bt.Market.from_frames(
            _bars(), mark="last", symbol="X/USDT:USDT", tiers=_tiers(**{column: values})
        )


def test_bad_stored_tier_snapshot_names_the_file(tmp_path: Path) -> None:
    # Arrange: a snapshot with a NaN MMR written behind the store's back (write_tiers refuses it)
    folder = tmp_path / "binanceusdm" / "BTC_USDT_USDT" / "tiers"
    folder.mkdir(parents=True)
    _tiers(mmr=[0.004, np.nan]).to_parquet(folder / "2024-01-01.parquet")
    # Act / Assert
    with pytest.raises(
        DataError,
        match=r"tier snapshot .*tiers/2024-01-01.parquet.mmr must be a fraction in \(0, 1\) in "
        r"every tier, was nan in row 1.*backtester data repair binanceusdm/BTC_USDT_USDT/tiers/",
    ):
        bt.load_market("BTC/USDT:USDT", store=tmp_path, start="2024-01-01", end="2024-01-02")


def test_mark_far_from_last_warns_with_the_first_bar_and_the_gap() -> None:
    # Arrange: mark close of bar 2 (02:00) 30 % above the last close 103 -> 133.9
    mark = _bars()
    mark.loc[2, ["high", "close"]] = [140.0, 133.9]
    # Act / Assert: warned, not refused (real crashes open large gaps)
    with pytest.warns(
        bt.BacktesterWarning,
        match=r"1 bar\(s\) differ by more than 20%, the first at 2024-01-01 02:00 UTC by 30.0%",
    ):
        m = bt.Market.from_frames(_bars(), mark=mark, symbol="X/USDT:USDT")
    assert m.mark_close[2] == 133.9


def test_mark_systematically_off_warns_with_the_median() -> None:
    # every mark price 6 % above the last price: no single bar beyond 20 %, median 6 % > 5 %
    mark = _bars()
    mark[["open", "high", "low", "close"]] *= 1.06
    with pytest.warns(bt.BacktesterWarning, match=r"median gap 6.00%"):
        bt.Market.from_frames(_bars(), mark=mark, symbol="X/USDT:USDT")


def test_bundled_mark_prices_do_not_warn(bundled_only_store: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
            bt.load_market(symbol, store=bundled_only_store)


# ---------------------------------------------------------------- bad input names its own columns


def test_each_frame_argument_names_its_own_columns() -> None:
    # tiers='x' used to be told the OHLCV columns
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tiers": "x"}, r"^tiers must be .*was str; build one with columns floor, cap, max_lev"),
        ({"funding": "x"}, r"^funding must be .*was str; build one with columns timestamp, fundi"),
        ({"mark": 5}, r"^mark must be .*was int; build one with columns timestamp, open, high"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DataError, match=message):
            bt.Market.from_frames(_bars(), **{"mark": "last", **kwargs}, symbol="X/USDT:USDT")


def test_a_misnamed_funding_column_says_rename_it() -> None:
    ts = pd.date_range("2024-01-01", periods=1, freq="8h", tz="UTC")
    funding = pd.DataFrame({"rate": [0.0001]}, index=ts)
    with pytest.raises(
        DataError, match=r"^funding has no column 'funding_rate'; rename 'rate' to 'funding_rate'$"
    ):
        bt.Market.from_frames(_bars(), mark="last", funding=funding, symbol="X/USDT:USDT")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"exchange": "ftx"},
            r"^exchange must be one of 'binanceusdm', 'okx', 'bybit', 'binancecoinm', was 'ftx'",
        ),
        ({"exchange": "binance"}, r"was 'binance'; did you mean 'binanceusdm'\?$"),
        ({"symbol": ""}, r"^symbol must be a non-empty ccxt symbol string such as 'BTC/USDT:USD"),
        ({"symbol": 123}, r"^symbol must be a non-empty ccxt symbol string .*was 123$"),
        ({"symbol": "BTC"}, r"^symbol must be .*was 'BTC'$"),
    ],
)
def test_unknown_exchange_and_bad_symbol_are_refused(
    kwargs: dict[str, object], message: str
) -> None:
    # these used to build "Market  on binanceusdm" or a market of an exchange without a profile
    args: dict[str, object] = {"mark": "last", "symbol": "X/USDT:USDT", **kwargs}
    with pytest.raises(ConfigError, match=message):
        bt.Market.from_frames(_bars(), **args)  # type: ignore[arg-type]


# ---------------------------------------------------------------- an explicit store must exist


def test_an_explicit_store_that_is_a_file_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(DataError, match=rf"^store '{afile}' .* is a file, not a folder"):
        bt.load_market("BTC/USDT:USDT", store=afile)


def test_an_explicit_store_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    # it used to fall back silently to the bundled data (a typo in --store went unnoticed)
    missing = tmp_path / "nonexistent"
    with pytest.raises(
        DataError, match=r"store '.*nonexistent' \(--store / store=\) does not"
    ) as info:
        bt.load_market("BTC/USDT:USDT", start="2024-01-01", end="2024-01-02", store=missing)
    assert "\n" not in str(info.value)


def test_default_and_env_store_need_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # $BACKTESTER_STORE (CI points it at a folder not made yet) is not an explicit store
    monkeypatch.setenv("BACKTESTER_STORE", str(tmp_path / "not-yet"))
    with caplog.at_level("WARNING", logger="backtester.data.store"):
        market = bt.load_market("BTC/USDT:USDT", start="2024-01-01", end="2024-01-02")
    assert market.n_bars == 24
    assert "does not exist" not in caplog.text
