"""Canonical market-data columns, dtypes and validation; the lowest data layer (no I/O).

Every frame that enters the library passes through here once (STYLE §4.1). Validation never repairs
input: it raises a one-line :class:`~backtester.errors.DataError` that names the column, the value
and the fix. Repairs are explicit helpers the caller chooses to call (:func:`drop_duplicates`,
:func:`fill_gaps`).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from backtester._typing import F64Array, I64Array
from backtester.errors import ConfigError, DataError

__all__ = [
    "BAR_COLUMNS",
    "FUNDING_COLUMNS",
    "OHLC_COLUMNS",
    "TIER_COLUMNS",
    "BarArrays",
    "FundingArrays",
    "cum_recurrence",
    "drop_duplicates",
    "fill_gaps",
    "find_gaps",
    "format_ts",
    "infer_timeframe",
    "ohlc_problems",
    "parse_period_bars",
    "timeframe_to_ns",
    "timestamps_ns",
    "to_pandas",
    "to_utc_timestamp",
    "validate_funding",
    "validate_ohlcv",
    "validate_tiers",
]

OHLC_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLUMNS: tuple[str, ...] = ("timestamp", *OHLC_COLUMNS, "volume")
FUNDING_COLUMNS: tuple[str, ...] = ("timestamp", "funding_rate")
TIER_COLUMNS: tuple[str, ...] = (
    "tier",
    "floor",
    "cap",
    "max_leverage",
    "mmr",
    "maint_amount",
    "basis",
)

_UNIT_NS = {
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
_TIMEFRAME_RE = re.compile(r"([1-9][0-9]{0,5})([smhdw])")  # fullmatch: no trailing newline


class BarArrays(NamedTuple):
    """Validated bars: int64 ns UTC open times and float64 OHLCV, all C-contiguous."""

    ts_ns: I64Array
    open: F64Array
    high: F64Array
    low: F64Array
    close: F64Array
    volume: F64Array
    timeframe_ns: int


class FundingArrays(NamedTuple):
    """Validated funding events: int64 ns UTC event times and fractional rates."""

    ts_ns: I64Array
    funding_rate: F64Array


def timeframe_to_ns(timeframe: str) -> int:
    """Return the bar length in ns of a ccxt timeframe string such as ``"1m"``, ``"1h"``, ``"1d"``.

    Raises
    ------
    DataError
        If ``timeframe`` is not ``<positive int><s|m|h|d|w>``.
    """
    match = _TIMEFRAME_RE.fullmatch(timeframe) if isinstance(timeframe, str) else None
    if match is None:
        raise DataError(
            f"timeframe must look like '1m', '5m', '1h', '4h' or '1d', was {timeframe!r}"
        )
    return int(match.group(1)) * _UNIT_NS[match.group(2)]


def _ns_to_timeframe(step_ns: int) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_NS[unit]
        if step_ns % size == 0:
            return f"{step_ns // size}{unit}"
    raise DataError(f"bar spacing must be a whole number of seconds, was {step_ns} ns")


def infer_timeframe(ts_ns: I64Array) -> str:
    """Return the timeframe string of evenly spaced timestamps (the smallest spacing)."""
    if ts_ns.size < 2:
        raise DataError(
            f"cannot infer the timeframe from {ts_ns.size} bar(s); pass timeframe='1h' (or similar)"
        )
    return _ns_to_timeframe(int(np.min(np.diff(ts_ns))))


def format_ts(ts_ns: int | np.integer[Any]) -> str:
    """Return ``'YYYY-MM-DD HH:MM UTC'`` for an int64 ns UTC timestamp (for messages)."""
    return str(pd.Timestamp(int(ts_ns), tz="UTC").strftime("%Y-%m-%d %H:%M UTC"))


def to_utc_timestamp(value: Any, name: str) -> pd.Timestamp:
    """Return ``value`` (str, datetime, pd.Timestamp) as a tz-aware UTC ``pd.Timestamp``.

    Naive values are taken to be UTC.
    """
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{name} must be a date such as '2020-01-01' or a pd.Timestamp, was {value!r}"
        ) from exc
    if ts is pd.NaT:
        raise DataError(f"{name} must be a date such as '2020-01-01', was {value!r}")
    out: pd.Timestamp = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return out


_BAR_HINT = "timestamp, open, high, low, close[, volume]"


def _rename_hint(column: str, columns: Any) -> str:
    # "; rename 'rate' to 'funding_rate'" when a given column is close to the missing one (a
    # canonical column is never offered: renaming 'close' to 'low' would lose the close), else
    # the columns that were given
    given = [str(c) for c in columns]
    canonical = {*BAR_COLUMNS, *FUNDING_COLUMNS, *TIER_COLUMNS}
    close = difflib.get_close_matches(column, [c for c in given if c not in canonical], 1, 0.5)
    if close:
        return f"; rename {close[0]!r} to {column!r}"
    return f" (its columns: {', '.join(given) or 'none'})"


def _missing_column(name: str, column: str, columns: Any, extra: str = "") -> DataError:
    return DataError(f"{name} has no column {column!r}{_rename_hint(column, columns)}{extra}")


def to_pandas(frame: Any, name: str, columns: str = _BAR_HINT) -> pd.DataFrame:
    """Return a pandas copy-free view of a pandas or polars frame, else raise DataError.

    ``columns`` describes the frame expected (for the message), e.g. ``"timestamp, funding_rate"``.
    """
    if isinstance(frame, pd.DataFrame):
        return frame
    module = type(frame).__module__
    if module.startswith("polars") and hasattr(frame, "to_pandas"):
        converted = frame.to_pandas()
        if isinstance(converted, pd.DataFrame):
            return converted
    raise DataError(
        f"{name} must be a pandas or polars DataFrame, was {type(frame).__name__}; "
        f"build one with columns {columns}"
    )


def timestamps_ns(frame: pd.DataFrame, name: str) -> I64Array:
    """Return the ``timestamp`` column (or a DatetimeIndex) as int64 ns UTC.

    Accepts tz-aware datetimes in any zone (converted to UTC). Naive datetimes and plain integers
    are rejected because their zone or unit is ambiguous.
    """
    if "timestamp" in frame.columns:
        values: Any = frame["timestamp"]
    elif isinstance(frame.index, pd.DatetimeIndex):
        values = frame.index.to_series(index=range(len(frame)))
    else:
        raise DataError(
            f"{name} has no 'timestamp' column{_rename_hint('timestamp', frame.columns)}; pass "
            "the times as a tz-aware column named 'timestamp' (or a DatetimeIndex)"
        )
    series = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        raise DataError(
            f"{name}.timestamp must be tz-aware datetimes, was dtype {series.dtype}; "
            "convert with pd.to_datetime(values, unit='ms', utc=True)"
        )
    tz = getattr(series.dtype, "tz", None)
    if tz is None:
        raise DataError(
            f"{name}.timestamp must be tz-aware (UTC), was naive {series.dtype}; "
            "localize with .dt.tz_localize('UTC') (polars: "
            "pl.col('timestamp').dt.replace_time_zone('UTC'))"
        )
    if series.isna().any():
        first = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise DataError(f"{name}.timestamp has missing values (first at row {first}); drop them")
    utc = series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    return np.ascontiguousarray(pd.DatetimeIndex(utc).asi8, dtype=np.int64)


def _float_column(frame: pd.DataFrame, column: str, name: str, ts_ns: I64Array) -> F64Array:
    if column not in frame.columns:
        raise _missing_column(name, column, frame.columns)
    series = frame[column]
    if not (pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series)):
        raise DataError(f"{name}.{column} must be numeric, was dtype {series.dtype}")
    values = np.ascontiguousarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"column {column!r} of {name} has {int(bad.sum())} NaN/inf values "
            f"(first at {format_ts(ts_ns[first])}); drop or fill them first"
        )
    return values


def _check_increasing(ts_ns: I64Array, name: str) -> None:
    if ts_ns.size < 2:
        return
    step = np.diff(ts_ns)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0])
        what = "duplicate" if step[i] == 0 else "out-of-order"
        raise DataError(
            f"{name}.timestamp must be strictly increasing, was {what} at "
            f"{format_ts(ts_ns[i + 1])} (row {i + 1}); sort the frame and call "
            "backtester.data.schema.drop_duplicates first"
        )


def find_gaps(ts_ns: I64Array, timeframe_ns: int) -> list[tuple[int, int]]:
    """Return ``(last_bar_before_gap_ns, first_bar_after_gap_ns)`` pairs where bars are missing."""
    if ts_ns.size < 2:
        return []
    step = np.diff(ts_ns)
    idx = np.flatnonzero(step > timeframe_ns)
    return [(int(ts_ns[i]), int(ts_ns[i + 1])) for i in idx]


def ohlc_problems(
    open_: F64Array, high: F64Array, low: F64Array, close: F64Array
) -> dict[str, I64Array]:
    """Return, per rule, the row indices that break positive prices and OHLC consistency."""
    problems: dict[str, I64Array] = {}
    nonpositive = (open_ <= 0) | (high <= 0) | (low <= 0) | (close <= 0)
    if nonpositive.any():
        problems["prices must be > 0"] = np.flatnonzero(nonpositive).astype(np.int64)
    low_bad = low > np.minimum(open_, close)
    if low_bad.any():
        problems["low <= min(open, close)"] = np.flatnonzero(low_bad).astype(np.int64)
    high_bad = high < np.maximum(open_, close)
    if high_bad.any():
        problems["high >= max(open, close)"] = np.flatnonzero(high_bad).astype(np.int64)
    return problems


def validate_ohlcv(
    frame: Any,
    *,
    name: str = "ohlcv",
    timeframe: str | None = None,
    require_volume: bool = False,
    allow_gaps: bool = False,
) -> BarArrays:
    """Validate a bar frame and return its columns as contiguous arrays.

    Parameters
    ----------
    frame : pandas or polars DataFrame
        Columns ``timestamp, open, high, low, close[, volume]``; ``timestamp`` is the tz-aware bar
        open time (a DatetimeIndex is accepted instead of the column).
    name : str
        What the frame is, for messages (``"ohlcv"``, ``"mark"``).
    timeframe : str, optional
        Expected bar length (``"1h"``); inferred from the smallest spacing when omitted.
    require_volume : bool
        Raise when ``volume`` is missing (otherwise it is zeros).
    allow_gaps : bool
        Accept missing bars (the stored datasets may have exchange outages); a Market never does.

    Returns
    -------
    BarArrays

    Raises
    ------
    DataError
        Missing or non-numeric columns, NaN/inf, non-increasing timestamps, gaps, OHLC
        inconsistency or non-positive prices, each with the first offending bar.
    """
    df = to_pandas(frame, name)
    ts_ns = timestamps_ns(df, name)
    if ts_ns.size == 0:
        raise DataError(f"{name} has no rows; pass at least one bar")
    _check_increasing(ts_ns, name)
    cols = [_float_column(df, c, name, ts_ns) for c in OHLC_COLUMNS]
    if "volume" in df.columns:
        volume = _float_column(df, "volume", name, ts_ns)
    elif require_volume:
        raise _missing_column(name, "volume", df.columns)
    else:
        volume = np.zeros(ts_ns.size, dtype=np.float64)
    if timeframe is None:
        timeframe_ns = timeframe_to_ns(infer_timeframe(ts_ns)) if ts_ns.size > 1 else 0
    else:
        timeframe_ns = timeframe_to_ns(timeframe)
    if ts_ns.size > 1 and timeframe_ns:
        off_grid = np.flatnonzero(np.diff(ts_ns) % timeframe_ns != 0)
        if off_grid.size:
            i = int(off_grid[0]) + 1
            raise DataError(
                f"{name}.timestamp must be spaced by whole {_ns_to_timeframe(timeframe_ns)} bars, "
                f"was off the grid at {format_ts(ts_ns[i])} (row {i}); resample the frame first"
            )
        gaps = find_gaps(ts_ns, timeframe_ns)
        if gaps and not allow_gaps:
            missing = sum((b - a) // timeframe_ns - 1 for a, b in gaps)
            raise DataError(
                f"{name} has {len(gaps)} gap(s), {missing} missing bar(s) (first after "
                f"{format_ts(gaps[0][0])}); gaps are never filled silently: call "
                "backtester.data.schema.fill_gaps or slice around them"
            )
    problems = ohlc_problems(*cols)
    for rule, rows in problems.items():
        i = int(rows[0])
        raise DataError(
            f"{name} bars must satisfy {rule}, was broken on {rows.size} bar(s) (first at "
            f"{format_ts(ts_ns[i])}: open={float(cols[0][i])!r} high={float(cols[1][i])!r} "
            f"low={float(cols[2][i])!r} close={float(cols[3][i])!r}); fix or drop those bars"
        )
    return BarArrays(ts_ns, cols[0], cols[1], cols[2], cols[3], volume, timeframe_ns)


def validate_funding(frame: Any, *, name: str = "funding") -> FundingArrays:
    """Validate a funding frame (``timestamp, funding_rate``) and return its arrays.

    Raises
    ------
    DataError
        Missing columns, NaN/inf rates, rates with ``|rate| >= 1`` (not fractions) or
        non-increasing timestamps.
    """
    df = to_pandas(frame, name, "timestamp, funding_rate")
    ts_ns = timestamps_ns(df, name)
    _check_increasing(ts_ns, name)
    rate = _float_column(df, "funding_rate", name, ts_ns)
    too_big = np.flatnonzero(np.abs(rate) >= 1.0)
    if too_big.size:
        i = int(too_big[0])
        raise DataError(
            f"{name}.funding_rate must be a fraction (|rate| < 1), was {float(rate[i])!r} at "
            f"{format_ts(ts_ns[i])}; write 0.01 % as 0.0001"
        )
    return FundingArrays(ts_ns, rate)


def cum_recurrence(floors: F64Array, mmr: F64Array) -> F64Array:
    """Return the maintenance amounts implied by the tax-bracket recurrence (§1.1, §3.3).

    ``cum[0] = 0``, ``cum[n] = cum[n-1] + floor[n]·(mmr[n] − mmr[n-1])``.
    """
    cum = np.zeros(floors.shape[0])
    for n in range(1, floors.shape[0]):
        cum[n] = cum[n - 1] + floors[n] * (mmr[n] - mmr[n - 1])
    return cum


def validate_tiers(frame: Any, *, name: str = "tiers") -> pd.DataFrame:
    """Validate a leverage-tier table and return it with canonical column order and dtypes.

    Raises
    ------
    DataError
        A missing (``floor``, ``cap``, ``max_leverage``, ``mmr``; ``tier``, ``maint_amount``
        and ``basis`` default to 1..n, the tax-bracket recurrence and "notional") or
        non-numeric column, no rows, floors not strictly increasing from >= 0, a cap
        not above its floor, or a NaN/inf, out-of-range value (``mmr`` in (0, 1),
        ``max_leverage`` > 0, ``maint_amount`` >= 0), naming the first offending tier.
    """
    df = to_pandas(frame, name, "floor, cap, max_leverage, mmr[, tier, maint_amount, basis]").copy()
    if len(df) == 0:
        raise DataError(f"{name} has no rows; a tier table needs at least one tier")
    # optional columns of a table you write yourself: tiers numbered 1..n, tiers by notional,
    # maintenance amounts from the tax-bracket recurrence (docs/reference/exchange-rules.md §1.1)
    if "tier" not in df.columns:
        df["tier"] = np.arange(1, len(df) + 1)
    if "basis" not in df.columns:
        df["basis"] = "notional"
    for column in TIER_COLUMNS:
        if column not in df.columns and column != "maint_amount":
            raise _missing_column(
                name,
                column,
                df.columns,
                "; a tier table needs floor, cap, max_leverage and mmr (tier, maint_amount and "
                "basis are optional)",
            )
    if "maint_amount" not in df.columns:
        floors = pd.to_numeric(df["floor"], errors="coerce").to_numpy(dtype=np.float64)
        rates = pd.to_numeric(df["mmr"], errors="coerce").to_numpy(dtype=np.float64)
        df["maint_amount"] = cum_recurrence(floors, rates)
    out = df.loc[:, list(TIER_COLUMNS)].copy()
    for column in ("tier", "floor", "cap", "max_leverage", "mmr", "maint_amount"):
        series = out[column]
        if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series):
            raise DataError(f"{name}.{column} must be numeric, was dtype {series.dtype}")
        out[column] = series.to_numpy(dtype=np.float64, na_value=np.nan)
    # (column, valid?, what it must be); cap may be +inf (the last tier is open-ended)
    floors, caps = out["floor"].to_numpy(), out["cap"].to_numpy()
    mmr, lev, amount = (out[c].to_numpy() for c in ("mmr", "max_leverage", "maint_amount"))
    tier = out["tier"].to_numpy()
    rules: list[tuple[str, Any, str]] = [
        ("tier", np.isfinite(tier) & (tier % 1 == 0), "a whole number"),
        ("floor", np.isfinite(floors) & (floors >= 0), "a finite number >= 0"),
        ("cap", ~np.isnan(caps) & (caps > floors), "above its floor (inf for no cap)"),
        ("mmr", np.isfinite(mmr) & (mmr > 0) & (mmr < 1), "a fraction in (0, 1)"),
        ("max_leverage", np.isfinite(lev) & (lev > 0), "a finite number > 0"),
        ("maint_amount", np.isfinite(amount) & (amount >= 0), "a finite number >= 0"),
    ]
    for column, valid, must in rules:
        bad = np.flatnonzero(~np.asarray(valid, dtype=bool))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{name}.{column} must be {must} in every tier, was {float(out[column].iloc[i])!r} "
                f"in row {i} ({bad.size} bad row(s)); fix the table (the exchange's tiers are "
                "fetched by `backtester data download --kinds tiers`)"
            )
    if np.any(np.diff(floors) <= 0):
        raise DataError(f"{name}.floor must be strictly increasing, was {floors.tolist()}")
    out["tier"] = out["tier"].astype(np.int64)
    out["basis"] = out["basis"].astype(str)
    bad_basis = sorted(set(out["basis"]) - {"notional", "size"})
    if bad_basis:
        raise DataError(f"{name}.basis must be 'notional' or 'size', was {bad_basis[0]!r}")
    return out.reset_index(drop=True)


def drop_duplicates(frame: Any, *, keep: str = "last") -> pd.DataFrame:
    """Return the frame sorted by ``timestamp`` with duplicate timestamps removed (explicit repair)."""
    df = to_pandas(frame, "frame")
    if keep not in ("first", "last"):
        raise DataError(f"keep must be 'first' or 'last', was {keep!r}")
    out = df.sort_values("timestamp", kind="stable").drop_duplicates("timestamp", keep=keep)  # type: ignore[arg-type]
    return out.reset_index(drop=True)


def fill_gaps(frame: Any, *, timeframe: str) -> pd.DataFrame:
    """Return bars with missing ``timeframe`` bars inserted as flat bars (explicit repair).

    An inserted bar has open = high = low = close = the previous close and volume 0.
    """
    df = to_pandas(frame, "frame")
    step = timeframe_to_ns(timeframe)
    ts_ns = timestamps_ns(df, "frame")
    _check_increasing(ts_ns, "frame")
    full = np.arange(ts_ns[0], ts_ns[-1] + 1, step, dtype=np.int64)
    base = df.assign(timestamp=pd.to_datetime(ts_ns, utc=True)).set_index("timestamp")
    out = base.reindex(pd.to_datetime(full, utc=True))
    out.index.name = "timestamp"
    close = out["close"].ffill()
    for column in ("open", "high", "low", "close"):
        out[column] = out[column].fillna(close)
    if "volume" in out.columns:
        out["volume"] = out["volume"].fillna(0.0)
    return out.reset_index()


def _period_text(ns: int) -> str:
    # a period as a user writes it: 1h, 30D, 15min
    for unit, size in (("D", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns / 10**9:g}s"


def parse_period_bars(value: str | pd.Timedelta, name: str, timeframe_ns: int) -> int:
    """Return a period such as ``"30D"`` as a whole number of bars of ``timeframe_ns``."""
    bar = _period_text(timeframe_ns)
    example = f"'30D' or '{720 * 3_600 * 10**9 // timeframe_ns}h'" if bar == "1h" else "'30D'"
    if isinstance(value, bool) or not isinstance(value, str | pd.Timedelta):
        raise ConfigError(f"{name} must be a duration such as {example} (a string), was {value!r}")
    try:
        ns = int(pd.Timedelta(value).value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name} must be a duration such as {example}, '12h' or '1W', was {value!r}"
        ) from exc
    if ns <= 0 or ns % timeframe_ns:
        raise ConfigError(
            f"{name} must be a positive whole number of {bar} bars, was {value!r}; use a "
            f"multiple of {bar} such as {example}"
        )
    return ns // timeframe_ns
