"""Schema validation: every rule raises a one-line DataError naming column, value and fix."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtester.data import schema
from backtester.errors import DataError


def _bars(n: int = 4, *, step: str = "1h", **override: list[float]) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=n, freq=step, tz="UTC")
    data = {
        "timestamp": ts,
        "open": [100.0 + i for i in range(n)],
        "high": [102.0 + i for i in range(n)],
        "low": [99.0 + i for i in range(n)],
        "close": [101.0 + i for i in range(n)],
        "volume": [1.0] * n,
    }
    data.update(override)
    return pd.DataFrame(data)


def test_valid_bars_become_contiguous_arrays() -> None:
    out = schema.validate_ohlcv(_bars())
    assert out.ts_ns.dtype == np.int64
    assert out.ts_ns[1] - out.ts_ns[0] == 3_600_000_000_000  # 1 h in ns
    assert out.timeframe_ns == 3_600_000_000_000
    assert out.close.flags.c_contiguous
    assert out.close.tolist() == [101.0, 102.0, 103.0, 104.0]


def test_timeframe_parsing() -> None:
    assert schema.timeframe_to_ns("1m") == 60_000_000_000
    assert schema.timeframe_to_ns("4h") == 4 * 3_600_000_000_000
    assert schema.timeframe_to_ns("1d") == 86_400_000_000_000
    with pytest.raises(DataError, match=r"timeframe must look like '1m'.*was '1 hour'"):
        schema.timeframe_to_ns("1 hour")


def test_missing_column_says_which_given_column_to_rename() -> None:
    # the hint used to read "did you mean 'closee'?": backwards, 'closee' is what was given
    df = _bars().rename(columns={"close": "closee"})
    with pytest.raises(
        DataError, match=r"^ohlcv has no column 'close'; rename 'closee' to 'close'$"
    ):
        schema.validate_ohlcv(df)


def test_missing_column_never_suggests_renaming_a_needed_column() -> None:
    # 'close' is close to 'low' as text, but renaming it would lose the close
    df = _bars().drop(columns="low")
    with pytest.raises(
        DataError, match=r"^ohlcv has no column 'low' \(its columns: timestamp, open, high, close"
    ):
        schema.validate_ohlcv(df)


def test_missing_timestamp_says_which_column_to_rename() -> None:
    df = _bars().rename(columns={"timestamp": "time"})
    with pytest.raises(DataError, match=r"^ohlcv has no 'timestamp' column; rename 'time' to"):
        schema.validate_ohlcv(df)


@pytest.mark.parametrize(
    ("validate", "columns"),
    [
        (schema.validate_ohlcv, "timestamp, open, high, low, close[, volume]"),
        (schema.validate_funding, "timestamp, funding_rate"),
        (schema.validate_tiers, "floor, cap, max_leverage, mmr[, tier, maint_amount, basis]"),
    ],
)
def test_a_non_frame_is_told_the_columns_of_its_own_kind(validate: Any, columns: str) -> None:
    with pytest.raises(DataError, match=rf"was str; build one with columns {re.escape(columns)}$"):
        validate("x")


def test_date_column_is_not_silently_accepted() -> None:
    df = _bars().rename(columns={"timestamp": "date"})
    with pytest.raises(DataError, match=r"no 'timestamp' column"):
        schema.validate_ohlcv(df)


def test_nan_is_reported_with_its_first_bar() -> None:
    df = _bars(close=[101.0, np.nan, 103.0, np.nan])
    with pytest.raises(
        DataError,
        match=r"column 'close' of ohlcv has 2 NaN/inf values \(first at 2024-01-01 01:00 UTC\)",
    ):
        schema.validate_ohlcv(df)


def test_naive_and_integer_timestamps_are_rejected() -> None:
    naive = _bars().assign(timestamp=lambda d: d["timestamp"].dt.tz_localize(None))
    with pytest.raises(DataError, match=r"must be tz-aware \(UTC\).*tz_localize\('UTC'\)"):
        schema.validate_ohlcv(naive)
    ints = _bars().assign(timestamp=[0, 1, 2, 3])
    with pytest.raises(DataError, match=r"unit='ms', utc=True"):
        schema.validate_ohlcv(ints)


def test_other_time_zones_are_converted_to_utc() -> None:
    df = _bars().assign(timestamp=lambda d: d["timestamp"].dt.tz_convert("Asia/Tokyo"))
    out = schema.validate_ohlcv(df)
    assert out.ts_ns[0] == pd.Timestamp("2024-01-01", tz="UTC").value


def test_duplicate_and_unsorted_timestamps_are_rejected_not_repaired() -> None:
    df = _bars()
    dup = pd.concat([df.iloc[:2], df.iloc[1:]], ignore_index=True)
    with pytest.raises(
        DataError, match=r"strictly increasing, was duplicate at 2024-01-01 01:00 UTC"
    ):
        schema.validate_ohlcv(dup)
    with pytest.raises(DataError, match=r"was out-of-order"):
        schema.validate_ohlcv(df.iloc[[0, 2, 1, 3]])


def test_gaps_are_reported_and_never_filled() -> None:
    df = _bars(5).drop(index=[2, 3])  # bars 02:00 and 03:00 missing
    with pytest.raises(
        DataError, match=r"1 gap\(s\), 2 missing bar\(s\) \(first after 2024-01-01 01:00 UTC\)"
    ):
        schema.validate_ohlcv(df, timeframe="1h")
    # explicit repair: flat bars at the previous close, zero volume
    filled = schema.fill_gaps(df, timeframe="1h")
    assert len(filled) == 5
    assert filled.loc[2, ["open", "high", "low", "close", "volume"]].tolist() == [102.0] * 4 + [0.0]


def test_ohlc_consistency_and_positive_prices() -> None:
    with pytest.raises(
        DataError, match=r"low <= min\(open, close\).*first at 2024-01-01 00:00 UTC"
    ):
        schema.validate_ohlcv(_bars(low=[100.5, 100.0, 101.0, 102.0]))  # 100.5 > open 100
    with pytest.raises(DataError, match=r"high >= max\(open, close\)"):
        schema.validate_ohlcv(_bars(high=[100.5, 103.0, 104.0, 105.0]))  # 100.5 < close 101
    with pytest.raises(DataError, match=r"prices must be > 0"):
        schema.validate_ohlcv(_bars(low=[-1.0, 100.0, 101.0, 102.0]))


def test_off_grid_timestamps_are_rejected() -> None:
    df = _bars()
    df.loc[3, "timestamp"] = df.loc[3, "timestamp"] + pd.Timedelta(minutes=30)
    with pytest.raises(
        DataError, match=r"spaced by whole 1h bars, was off the grid at 2024-01-01 03:30"
    ):
        schema.validate_ohlcv(df, timeframe="1h")


def test_funding_validation() -> None:
    ts = pd.date_range("2024-01-01", periods=3, freq="8h", tz="UTC")
    ok = schema.validate_funding(
        pd.DataFrame({"timestamp": ts, "funding_rate": [1e-4, -2e-4, 0.0]})
    )
    assert ok.funding_rate.tolist() == [1e-4, -2e-4, 0.0]
    with pytest.raises(DataError, match=r"must be a fraction \(\|rate\| < 1\), was 1.5.*0.0001"):
        schema.validate_funding(pd.DataFrame({"timestamp": ts, "funding_rate": [1e-4, 1.5, 0.0]}))


def test_tier_validation() -> None:
    tiers = pd.DataFrame(
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
    assert schema.validate_tiers(tiers)["maint_amount"].tolist() == [0.0, 300.0]
    with pytest.raises(
        DataError, match=r"tiers.mmr must be a fraction in \(0, 1\) .*was 1.5 in row 1"
    ):
        schema.validate_tiers(tiers.assign(mmr=[0.4, 1.5]))
    with pytest.raises(DataError, match=r"no column 'mmr'.*tier, maint_amount and basis are"):
        schema.validate_tiers(tiers.drop(columns="mmr"))
    # tier, basis and maint_amount may be left out of a table you write yourself
    mine = schema.validate_tiers(tiers.drop(columns=["tier", "basis", "maint_amount"]))
    assert mine["tier"].tolist() == [1, 2] and mine["basis"].tolist() == ["notional"] * 2
    assert mine["maint_amount"].tolist() == [0.0, 300_000.0 * (0.005 - 0.004)]


def test_polars_frames_are_accepted() -> None:
    pl = pytest.importorskip("polars")
    out = schema.validate_ohlcv(pl.from_pandas(_bars()))
    assert out.close.tolist() == [101.0, 102.0, 103.0, 104.0]


def test_naive_polars_timestamps_name_the_polars_fix() -> None:
    # polars datetimes are naive unless given a zone; the pandas-only hint (.dt.tz_localize) does
    # not exist in polars, so the message also names polars' replace_time_zone
    pl = pytest.importorskip("polars")
    naive = pl.from_pandas(_bars()).with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    with pytest.raises(DataError, match=r"polars: pl.col\('timestamp'\).dt.replace_time_zone"):
        schema.validate_ohlcv(naive)


def test_non_frames_are_rejected() -> None:
    with pytest.raises(DataError, match=r"must be a pandas or polars DataFrame, was dict"):
        schema.validate_ohlcv({"open": [1.0]})


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=30, unique=True))
def test_drop_duplicates_then_fill_gaps_gives_a_valid_grid(hours: list[int]) -> None:
    """Any set of hourly bars, deduplicated and gap-filled, validates with no gap and keeps every bar."""
    ts = pd.to_datetime(
        [pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=h) for h in hours + hours[:3]]
    )
    price = np.array([100.0 + h for h in hours + hours[:3]])
    df = pd.DataFrame(
        {"timestamp": ts, "open": price, "high": price + 1, "low": price - 1, "close": price}
    )
    clean = schema.fill_gaps(schema.drop_duplicates(df), timeframe="1h")
    out = schema.validate_ohlcv(clean, timeframe="1h")
    assert out.ts_ns.size == max(hours) - min(hours) + 1
    assert set(np.asarray(ts.asi8)) <= set(out.ts_ns.tolist())
