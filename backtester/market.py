"""Market: validated, aligned, read-only arrays of one perpetual (last, mark, funding, tiers).

This is the boundary between frames and arrays (STYLE §4.1): :meth:`Market.from_frames` and
:func:`load_market` validate once through ``data.schema``; everything below sees arrays only.

Rules
-----
* Bars are evenly spaced, strictly increasing bar open times (int64 ns UTC); gaps are errors.
* Mark data is never invented: ``mark=None`` raises, ``mark="last"`` copies the last-price OHLC into
  the mark arrays and records ``mark_source="last"``.
* Funding events are kept when ``first bar open <= t < last bar open + timeframe``.
* A mark price far from the last price is suspect but valid (real crashes open gaps): a
  :class:`~backtester.errors.BacktesterWarning` names the first bar whose mark open or close is
  more than ``MARK_GAP_WARN`` (20 %) from the last price, or a median gap above
  ``MARK_MEDIAN_GAP_WARN`` (5 %: mark data of another market or scale). The bundled BTC/ETH data
  stay below 3.3 % (open/close; wicks differ more and are not compared).
* :func:`load_market` default range is where BOTH the last-price and the mark series exist
  (BTC mark starts 2019-12-23 11:00 UTC while last starts 2019-09-08); the clip is logged at INFO.
  An explicit ``start``/``end`` outside that coverage raises a DataError suggesting a range or
  ``mark="last"``. ``start`` is inclusive and ``end`` exclusive (bar open times).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from backtester._typing import (
    EXCHANGES,
    ContractType,
    F64Array,
    I64Array,
    contract_type_of,
    default_contract_spec,
)
from backtester.data import schema
from backtester.data.schema import format_ts, to_utc_timestamp
from backtester.errors import BacktesterWarning, ConfigError, DataError, check_one_of

log = logging.getLogger(__name__)

__all__ = ["MARK_GAP_WARN", "MARK_MEDIAN_GAP_WARN", "Market", "load_market"]

#: warn when a bar's mark open or close is further than this from the last price (fraction)
MARK_GAP_WARN = 0.20
#: warn when the median |mark / last - 1| over all bars is above this (fraction)
MARK_MEDIAN_GAP_WARN = 0.05

_BAR_FIELDS = ("open", "high", "low", "close", "volume")
_MARK_FIELDS = ("mark_open", "mark_high", "mark_low", "mark_close")
_ARRAY_FIELDS = ("ts_ns", *_BAR_FIELDS, *_MARK_FIELDS, "funding_ts_ns", "funding_rate")


def _frozen(values: Any, dtype: type) -> Any:
    out: np.ndarray[Any, Any] = np.ascontiguousarray(values, dtype=dtype)
    if out.flags.writeable:  # never freeze the caller's array in place
        out = out.copy()
        out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class Market:
    """Aligned last-price bars, mark-price bars, funding events and the tier table of one market.

    Build one with :meth:`from_frames` or :func:`load_market`; all arrays are read-only,
    C-contiguous float64 (prices) or int64 (ns UTC timestamps).

    Attributes
    ----------
    symbol, exchange, timeframe : str
        ``"BTC/USDT:USDT"``, ``"binanceusdm"``, ``"1h"``.
    timeframe_ns : int
        Bar length in ns.
    ts_ns : (n_bars,) int64
        Bar open times, strictly increasing and evenly spaced.
    open, high, low, close, volume : (n_bars,) float64
        Last-price bars (volume in base units; zeros when not given).
    mark_open, mark_high, mark_low, mark_close : (n_bars,) float64
        Mark-price bars.
    mark_source : "mark" or "last"
        ``"last"`` only when the user passed ``mark="last"``.
    funding_ts_ns, funding_rate : (n_funding,)
        Funding event times and rates (fractions; longs pay when > 0).
    tiers : pandas.DataFrame or None
        The stored leverage-tier snapshot, for display.
    tiers_date : pandas.Timestamp or None
        Date of that snapshot.
    detail : Market or None
        Lower-timeframe bars (e.g. 1m) inside this market's range.
    contract_size : float
        USD face value of one contract of a coin-margined symbol (``contract_type ==
        "inverse"``; None picks the exchange's documented size, docs/reference/exchange-rules.md
        §8.1); 1.0 for a linear symbol. ``contract_type`` comes from the symbol.
    """

    symbol: str
    exchange: str
    timeframe: str
    timeframe_ns: int
    ts_ns: I64Array
    open: F64Array
    high: F64Array
    low: F64Array
    close: F64Array
    volume: F64Array
    mark_open: F64Array
    mark_high: F64Array
    mark_low: F64Array
    mark_close: F64Array
    mark_source: Literal["mark", "last"]
    funding_ts_ns: I64Array
    funding_rate: F64Array
    tiers: pd.DataFrame | None = None
    tiers_date: pd.Timestamp | None = None
    detail: Market | None = None
    contract_size: float | None = None

    def __post_init__(self) -> None:
        self._check_contract()
        for name in _ARRAY_FIELDS:
            dtype = np.int64 if name.endswith("ts_ns") else np.float64
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        n = self.ts_ns.shape[0]
        for name in (*_BAR_FIELDS, *_MARK_FIELDS):
            if getattr(self, name).shape != (n,):
                raise DataError(
                    f"Market.{name} must have shape ({n},), was {getattr(self, name).shape}"
                )
        if self.funding_rate.shape != self.funding_ts_ns.shape:
            raise DataError(
                f"Market.funding_rate must have shape {self.funding_ts_ns.shape}, "
                f"was {self.funding_rate.shape}"
            )
        if self.mark_source not in ("mark", "last"):
            raise ConfigError(
                f"Market.mark_source must be 'mark' or 'last', was {self.mark_source!r}"
            )

    # ------------------------------------------------------------ contract (inverse: §8)
    def _check_contract(self) -> None:
        size = self.contract_size
        if size is None:
            size = (
                default_contract_spec(self.exchange, self.symbol)[0]
                if self.contract_type == "inverse"
                else 1.0
            )
        elif (
            isinstance(size, bool)
            or not isinstance(size, int | float)
            or not math.isfinite(size)
            or size <= 0
        ):
            raise ConfigError(
                f"contract_size must be a finite number > 0 (the USD face value of one contract, "
                f"e.g. 100), was {size!r}"
            )
        elif self.contract_type == "linear" and size != 1.0:
            raise ConfigError(
                f"contract_size is for coin-margined symbols such as 'BTC/USD:BTC', was {size!r} "
                f"with {self.symbol!r} (linear sizes are in base units)"
            )
        object.__setattr__(self, "contract_size", float(size))

    @property
    def contract_type(self) -> ContractType:
        """``"inverse"`` for a coin-margined symbol (settle == base, ``BTC/USD:BTC``), else linear."""
        return contract_type_of(self.symbol)

    @property
    def settle(self) -> str:
        """The settle (margin and PnL) currency: ``USDT`` for ``BTC/USDT:USDT``, ``BTC`` for inverse."""
        _, _, rest = self.symbol.partition("/")
        quote, _, settle = rest.partition(":")
        return settle or quote

    # ------------------------------------------------------------ basic views

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return int(self.ts_ns.shape[0])

    @property
    def index(self) -> pd.DatetimeIndex:
        """Bar open times as a tz-aware UTC DatetimeIndex named ``timestamp``."""
        return pd.DatetimeIndex(pd.to_datetime(self.ts_ns, utc=True), name="timestamp")

    @property
    def start(self) -> pd.Timestamp:
        """Open time of the first bar (UTC)."""
        return pd.Timestamp(int(self.ts_ns[0]), tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        """End of the last bar (UTC, exclusive)."""
        return pd.Timestamp(int(self.ts_ns[-1]) + self.timeframe_ns, tz="UTC")

    def funding_by_bar(self) -> F64Array:
        """Return ``(n_bars,)`` float64: the summed rates of events inside each bar, NaN if none.

        An event at time ``t`` belongs to bar ``i`` when ``ts_ns[i] <= t < ts_ns[i] + timeframe_ns``.
        """
        out = np.full(self.n_bars, np.nan, dtype=np.float64)
        if self.funding_ts_ns.size == 0 or self.n_bars == 0:
            return out
        idx = (self.funding_ts_ns - self.ts_ns[0]) // self.timeframe_ns
        inside = (idx >= 0) & (idx < self.n_bars)
        idx = idx[inside]
        sums = np.bincount(idx, weights=self.funding_rate[inside], minlength=self.n_bars)
        has = np.bincount(idx, minlength=self.n_bars) > 0
        out[has] = sums[has]
        return out

    def slice(
        self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None
    ) -> Market:
        """Return the bars with ``start <= bar open < end`` (either bound may be None).

        Funding events and detail bars are cut to the new range.

        Raises
        ------
        DataError
            If the slice holds no bar.
        """
        lo = 0
        hi = self.n_bars
        if start is not None:
            lo = int(np.searchsorted(self.ts_ns, to_utc_timestamp(start, "start").value, "left"))
        if end is not None:
            hi = int(np.searchsorted(self.ts_ns, to_utc_timestamp(end, "end").value, "left"))
        if hi <= lo:
            raise DataError(
                f"slice({start!r}, {end!r}) holds no bar of {self.symbol} {self.timeframe}; "
                f"data covers {self.start} to {self.end}"
            )
        return self._take(lo, hi)

    def _take(self, lo: int, hi: int) -> Market:
        ts = self.ts_ns[lo:hi]
        t0, t1 = int(ts[0]), int(ts[-1]) + self.timeframe_ns
        keep = (self.funding_ts_ns >= t0) & (self.funding_ts_ns < t1)
        detail = None
        if self.detail is not None:
            d = self.detail
            d_lo = int(np.searchsorted(d.ts_ns, t0, "left"))
            d_hi = int(np.searchsorted(d.ts_ns, t1, "left"))
            detail = d._take(d_lo, d_hi) if d_hi > d_lo else None
        return Market(
            symbol=self.symbol,
            exchange=self.exchange,
            timeframe=self.timeframe,
            timeframe_ns=self.timeframe_ns,
            ts_ns=ts,
            **{name: getattr(self, name)[lo:hi] for name in (*_BAR_FIELDS, *_MARK_FIELDS)},
            mark_source=self.mark_source,
            funding_ts_ns=self.funding_ts_ns[keep],
            funding_rate=self.funding_rate[keep],
            tiers=self.tiers,
            tiers_date=self.tiers_date,
            detail=detail,
            contract_size=self.contract_size,
        )

    def to_frame(self) -> pd.DataFrame:
        """Return the bars as a DataFrame indexed by ``timestamp``.

        Columns: ``open, high, low, close, volume, mark_open, mark_high, mark_low, mark_close,
        funding_rate`` (the per-bar sum of :meth:`funding_by_bar`, NaN without an event).
        """
        data = {name: getattr(self, name) for name in (*_BAR_FIELDS, *_MARK_FIELDS)}
        data["funding_rate"] = self.funding_by_bar()
        return pd.DataFrame(data, index=self.index)

    def fingerprint(self) -> str:
        """Return the sha256 hex digest of the identity strings and every array (for run.json)."""
        digest = hashlib.sha256()
        ident = f"{self.exchange}|{self.symbol}|{self.timeframe}|{self.mark_source}"
        digest.update(ident.encode("utf-8"))
        for name in _ARRAY_FIELDS:
            digest.update(name.encode("utf-8"))
            digest.update(getattr(self, name).tobytes())
        if self.detail is not None:
            digest.update(b"detail")
            digest.update(self.detail.fingerprint().encode("ascii"))
        return digest.hexdigest()

    def __repr__(self) -> str:
        if self.n_bars == 0:  # pragma: no cover - constructors never allow it
            return f"Market({self.symbol} {self.exchange} {self.timeframe}, 0 bars)"
        lines = [
            f"Market {self.symbol} on {self.exchange}, {self.timeframe} bars",
            f"  range   {self.start:%Y-%m-%d %H:%M} -> {self.end:%Y-%m-%d %H:%M} UTC "
            f"({self.n_bars:,} bars)",
            f"  last    close {self.close[0]:g} -> {self.close[-1]:g}, low {self.low.min():g}, "
            f"high {self.high.max():g}",
            "  mark    "
            + (
                "mark-price bars"
                if self.mark_source == "mark"
                else "last price used as mark (mark='last')"
            ),
            f"  funding {self.funding_ts_ns.size:,} events"
            + (
                f", {format_ts(self.funding_ts_ns[0])} -> {format_ts(self.funding_ts_ns[-1])}"
                if self.funding_ts_ns.size
                else " (none)"
            ),
            f"  tiers   {self._tiers_text()}",
            "  detail  "
            + (
                "none"
                if self.detail is None
                else f"{self.detail.timeframe} bars {self.detail.start:%Y-%m-%d %H:%M} -> "
                f"{self.detail.end:%Y-%m-%d %H:%M} UTC ({self.detail.n_bars:,} bars)"
            ),
        ]
        return "\n".join(lines)

    def _tiers_text(self) -> str:
        # the market's own tiers when it carries them, else the exchange's dated tier tables,
        # which the engine then uses (not "none": every run has tiers)
        if self.tiers is None:
            return f"the exchange's dated tables (bt.rules_timeline({self.exchange!r}, ...))"
        text = f"{len(self.tiers)} tiers"
        if self.tiers_date is not None:
            text += f" (snapshot {self.tiers_date:%Y-%m-%d})"
        return text

    def _repr_html_(self) -> str:
        # the notebook view: one row with what a reader checks before a run (escaped by pandas)
        tiers = self._tiers_text()
        row = {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "timeframe": self.timeframe,
            "range (UTC)": f"{self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}",
            "bars": f"{self.n_bars:,}",
            "mark": "mark-price bars" if self.mark_source == "mark" else "last price (mark='last')",
            "funding events": f"{self.funding_ts_ns.size:,}" if self.funding_ts_ns.size else "none",
            "tier table": tiers,
            "detail": "none"
            if self.detail is None
            else f"{self.detail.timeframe} ({self.detail.n_bars:,} bars)",
        }
        table: str = pd.DataFrame([row]).to_html(index=False, border=0)
        return table

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_frames(
        cls,
        ohlcv: Any,
        *,
        mark: Any = None,
        funding: Any = None,
        symbol: str,
        exchange: str = "binanceusdm",
        timeframe: str | None = None,
        tiers: Any = None,
        detail: Market | None = None,
        contract_size: float | None = None,
    ) -> Market:
        """Build a Market from pandas or polars frames.

        Parameters
        ----------
        ohlcv : DataFrame
            Last-price bars: ``timestamp`` (tz-aware bar open time), ``open, high, low, close``
            and optional ``volume``.
        mark : DataFrame or "last"
            Mark-price bars with the same columns (volume optional) covering every ``ohlcv`` bar
            (rows outside the ``ohlcv`` range are ignored), or ``"last"`` to use the last price as
            mark (recorded as ``mark_source="last"``). Required: None raises.
        funding : DataFrame, optional
            ``timestamp, funding_rate``; events outside the bars' range are dropped. None means
            no funding events.
        symbol, exchange : str
            ccxt symbol (``"BTC/USDT:USDT"``) and one of the profiled exchanges
            (``binanceusdm``, ``okx``, ``bybit``).
        timeframe : str, optional
            Bar length (``"1h"``); inferred from the bar spacing when omitted.
        tiers : DataFrame, optional
            Leverage tiers (``tier, floor, cap, max_leverage, mmr, maint_amount, basis``).
        detail : Market, optional
            Lower-timeframe bars of the same market.
        contract_size : float, optional
            USD face value of one contract of a coin-margined symbol (``"BTC/USD:BTC"``); None
            uses the exchange's documented size (Binance COIN-M 100 USD for BTC, 10 for others;
            OKX BTC 100; Bybit 1). A linear symbol refuses it.

        Raises
        ------
        ConfigError
            A symbol that is not a ccxt symbol string, an exchange without a profile.
        DataError
            On any schema violation, missing mark data, or mark bars that do not cover the bars.
        """
        _check_symbol(symbol)
        check_one_of(exchange, "exchange", EXCHANGES)
        bars = schema.validate_ohlcv(ohlcv, name="ohlcv", timeframe=timeframe)
        if bars.timeframe_ns == 0:
            raise DataError(
                "cannot infer the timeframe from 1 bar; pass timeframe='1h' (or similar)"
            )
        tf = timeframe if timeframe is not None else schema.infer_timeframe(bars.ts_ns)
        marks, mark_source = _mark_arrays(mark, bars, tf, symbol, exchange)
        t0 = int(bars.ts_ns[0])
        t1 = int(bars.ts_ns[-1]) + bars.timeframe_ns
        if funding is None:
            f_ts = np.empty(0, dtype=np.int64)
            f_rate = np.empty(0, dtype=np.float64)
        else:
            fund = schema.validate_funding(funding, name="funding")
            keep = (fund.ts_ns >= t0) & (fund.ts_ns < t1)
            f_ts, f_rate = fund.ts_ns[keep], fund.funding_rate[keep]
        tier_table = None if tiers is None else schema.validate_tiers(tiers)
        if detail is not None:
            _check_detail(detail, bars.timeframe_ns, symbol)
        return cls(
            symbol=symbol,
            exchange=exchange,
            timeframe=tf,
            timeframe_ns=bars.timeframe_ns,
            ts_ns=bars.ts_ns,
            open=bars.open,
            high=bars.high,
            low=bars.low,
            close=bars.close,
            volume=bars.volume,
            mark_open=marks[0],
            mark_high=marks[1],
            mark_low=marks[2],
            mark_close=marks[3],
            mark_source=mark_source,
            funding_ts_ns=f_ts,
            funding_rate=f_rate,
            tiers=tier_table,
            detail=detail,
            contract_size=contract_size,
        )


# a ccxt unified symbol: BASE/QUOTE, for a perpetual :SETTLE (letters, digits, '.', '_', '-')
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?")


def _check_symbol(symbol: object) -> None:
    if not isinstance(symbol, str) or not _SYMBOL_RE.fullmatch(symbol):
        raise ConfigError(
            f"symbol must be a non-empty ccxt symbol string such as 'BTC/USDT:USDT' "
            f"(BASE/QUOTE:SETTLE for a perpetual), was {symbol!r}"
        )


def _mark_arrays(
    mark: Any, bars: schema.BarArrays, timeframe: str, symbol: str, exchange: str
) -> tuple[tuple[F64Array, F64Array, F64Array, F64Array], Literal["mark", "last"]]:
    if mark is None:
        raise DataError(
            f"mark must be a mark-price frame or 'last', was None for {symbol} on {exchange}; "
            "pass mark=<frame with timestamp, open, high, low, close> or mark='last' to use the "
            "last price as mark (liquidations are then judged on last prices)"
        )
    if isinstance(mark, str):
        if mark != "last":
            raise ConfigError(
                f"mark must be a mark-price frame (timestamp, open, high, low, close) or 'last', "
                f"was {mark!r}; pass mark='last' to use the last price as mark"
            )
        return (bars.open, bars.high, bars.low, bars.close), "last"
    m = schema.validate_ohlcv(mark, name="mark", timeframe=timeframe, allow_gaps=True)
    pos = np.searchsorted(m.ts_ns, bars.ts_ns)
    pos_clipped = np.minimum(pos, m.ts_ns.size - 1)
    found = m.ts_ns[pos_clipped] == bars.ts_ns
    if not found.all():
        first = int(bars.ts_ns[np.flatnonzero(~found)[0]])
        raise DataError(
            f"mark bars must cover every ohlcv bar, was missing {int((~found).sum())} bar(s) "
            f"(first at {format_ts(first)}); slice the ohlcv frame to the mark range or pass "
            "mark='last'"
        )
    marks = (m.open[pos], m.high[pos], m.low[pos], m.close[pos])
    _warn_mark_gap(bars, marks[0], marks[3], symbol)
    return marks, "mark"


def _warn_mark_gap(
    bars: schema.BarArrays, mark_open: F64Array, mark_close: F64Array, symbol: str
) -> None:
    # opens and closes only: last-price wicks routinely leave the mark far behind (ETH 1h high
    # 2020-03-13 02:00: 63 %), while bundled opens/closes stay within 3.3 %
    gap = np.maximum(np.abs(mark_open / bars.open - 1.0), np.abs(mark_close / bars.close - 1.0))
    median = float(np.median(gap))
    far = np.flatnonzero(gap > MARK_GAP_WARN)
    if far.size == 0 and median <= MARK_MEDIAN_GAP_WARN:
        return
    i = int(far[0]) if far.size else int(np.argmax(gap))
    warnings.warn(
        f"mark prices of {symbol} are far from the last price: {far.size} bar(s) differ by more "
        f"than {MARK_GAP_WARN:.0%}, the first at {format_ts(bars.ts_ns[i])} by "
        f"{float(gap[i]):.1%} (mark close {float(mark_close[i])!r}, last close "
        f"{float(bars.close[i])!r}); median gap {median:.2%}. Check that the mark frame belongs to "
        "this market and uses the same price scale (liquidations are judged on it)",
        BacktesterWarning,
        stacklevel=4,
    )


def _check_detail(detail: Market, timeframe_ns: int, symbol: str) -> None:
    if not isinstance(detail, Market):
        raise DataError(f"detail must be a Market, was {type(detail).__name__}")
    if detail.timeframe_ns >= timeframe_ns or timeframe_ns % detail.timeframe_ns != 0:
        raise DataError(
            f"detail timeframe must divide the bar timeframe, was {detail.timeframe}; "
            "use 1m detail bars for 1h bars"
        )
    if detail.symbol != symbol:
        raise DataError(f"detail symbol must be {symbol!r}, was {detail.symbol!r}")


# ---------------------------------------------------------------- loading from the store


def _bar_frame_slice(df: pd.DataFrame, t0: int, t1: int) -> pd.DataFrame:
    ts = schema.timestamps_ns(df, "dataset")
    lo = int(np.searchsorted(ts, t0, "left"))
    hi = int(np.searchsorted(ts, t1, "left"))
    return df.iloc[lo:hi]


def load_market(
    symbol: str = "BTC/USDT:USDT",
    *,
    exchange: str = "binanceusdm",
    timeframe: str = "1h",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    store: str | os.PathLike[str] | None = None,
    mark: Literal["mark", "last"] = "mark",
    detail_timeframe: str | None = None,
) -> Market:
    """Load a Market from the store (downloaded data first, then the bundled data).

    Parameters
    ----------
    symbol, exchange, timeframe : str
        Which dataset (``"BTC/USDT:USDT"``, ``"binanceusdm"``, ``"1h"``).
    start, end : str or pd.Timestamp, optional
        Bar open times, ``start`` inclusive, ``end`` exclusive (naive values are UTC). By default
        the range where both last-price and mark bars exist.
    store : path, optional
        Store root (default ``$BACKTESTER_STORE``, the clone's ``data/`` or the user data dir);
        searched before the bundled data. A store that is a file is refused; one that does not
        exist is named in a WARNING (only the bundled data is then read).
    mark : "mark" or "last"
        ``"mark"`` uses stored mark-price bars; ``"last"`` uses the last price as mark.
    detail_timeframe : str, optional
        Attach stored lower-timeframe bars (e.g. ``"1m"``) as ``market.detail`` for the part of
        the range they cover.

    A coin-margined symbol (``"BTC/USD:BTC"``) takes its contract size (USD per contract) from
    the store, as the loader recorded it from the exchange (``store.read_contract``), else the
    exchange's documented default (docs/reference/exchange-rules.md §8.1).

    Raises
    ------
    DataError
        Missing datasets (with the download command), a range outside the stored coverage, a
        dataset that violates the schema, or a ``store`` that is a file.

    Examples
    --------
    >>> import backtester as bt
    >>> m = bt.load_market("BTC/USDT:USDT", start="2020-03-01", end="2020-04-01")
    >>> m.n_bars
    744
    """
    from backtester.data import store as data_store

    if mark not in ("mark", "last"):
        raise ConfigError(f"mark must be 'mark' or 'last', was {mark!r}")
    check_one_of(exchange, "exchange", EXCHANGES)
    # an explicit store that is a file or does not exist is refused (a typo in --store used to
    # fall back silently to the bundled data); the default and $BACKTESTER_STORE need not exist
    data_store.existing_store(store)
    step = schema.timeframe_to_ns(timeframe)
    last_df = data_store.read_dataset(exchange, symbol, timeframe, "ohlcv", store=store)
    if len(last_df) == 0:
        raise DataError(f"stored ohlcv for {exchange} {symbol} {timeframe} has no rows")
    last_ts = schema.timestamps_ns(last_df, "ohlcv")
    cover0, cover1 = int(last_ts[0]), int(last_ts[-1]) + step
    what = "last-price"
    mark_df = None
    if mark == "mark":
        try:
            mark_df = data_store.read_dataset(exchange, symbol, timeframe, "mark", store=store)
        except DataError as exc:
            raise DataError(f"{exc}; or pass mark='last' to use the last price as mark") from exc
        mark_ts = schema.timestamps_ns(mark_df, "mark")
        cover0 = max(cover0, int(mark_ts[0]))
        cover1 = min(cover1, int(mark_ts[-1]) + step)
        what = "last-price and mark"
    t0 = cover0 if start is None else int(to_utc_timestamp(start, "start").value)
    t1 = cover1 if end is None else int(to_utc_timestamp(end, "end").value)
    fix = "; pick a later start" + (" or pass mark='last'" if mark == "mark" else "")
    if t0 < cover0:
        raise DataError(
            f"start {format_ts(t0)} is before the {what} data of {exchange} {symbol} {timeframe}, "
            f"which starts at {format_ts(cover0)}{fix}"
        )
    more = data_store.download_hint(
        exchange, symbol, timeframe, "ohlcv,mark,funding", format_ts(cover1)[:10]
    )
    if start is not None and t0 >= cover1:
        raise DataError(
            f"start {format_ts(t0)} is after the {what} data of {exchange} {symbol} {timeframe}, "
            f"which ends at {format_ts(cover1)}; pick an earlier start or download more with "
            f"`{more}`"
        )
    if t1 > cover1:
        raise DataError(
            f"end {format_ts(t1)} is after the {what} data of {exchange} {symbol} {timeframe}, "
            f"which ends at {format_ts(cover1)}; pick an earlier end or download more with "
            f"`{more}`"
        )
    if t1 <= t0:
        raise DataError(f"end must be after start, was start {format_ts(t0)} end {format_ts(t1)}")
    if start is None and int(last_ts[0]) < cover0:
        log.info(
            "%s %s %s: range starts at %s where mark data begins (last-price bars from %s); "
            "pass mark='last' for the full last-price history",
            exchange,
            symbol,
            timeframe,
            format_ts(cover0),
            format_ts(last_ts[0]),
        )
    bars = _bar_frame_slice(last_df, t0, t1)
    if len(bars) == 0:
        raise DataError(
            f"no {timeframe} bars of {symbol} between {format_ts(t0)} and {format_ts(t1)}"
        )
    funding_df = data_store.read_dataset(exchange, symbol, timeframe, "funding", store=store)
    snapshots = data_store.list_tier_snapshots(exchange, symbol, store=store)
    tiers = snapshots[-1][1] if snapshots else None
    detail = None
    if detail_timeframe is not None:
        detail = _load_detail(
            symbol,
            exchange,
            detail_timeframe,
            int(bars["timestamp"].iloc[0].value),
            int(bars["timestamp"].iloc[-1].value) + step,
            store,
        )
    market = Market.from_frames(
        bars,
        mark="last" if mark_df is None else _bar_frame_slice(mark_df, t0, t1),
        funding=funding_df,
        symbol=symbol,
        exchange=exchange,
        timeframe=timeframe,
        tiers=tiers,
        detail=detail,
        contract_size=_stored_contract_size(exchange, symbol, store),
    )
    if snapshots:
        object.__setattr__(market, "tiers_date", snapshots[-1][0])
    _warn_partial_funding(market, schema.timestamps_ns(funding_df, "funding"))
    log.info(
        "loaded %s %s %s: %d bars %s -> %s, %d funding events, mark=%s",
        exchange,
        symbol,
        timeframe,
        market.n_bars,
        format_ts(market.ts_ns[0]),
        format_ts(market.ts_ns[-1]),
        market.funding_ts_ns.size,
        market.mark_source,
    )
    return market


def _stored_contract_size(
    exchange: str, symbol: str, store: str | os.PathLike[str] | None
) -> float | None:
    # an inverse market's USD face value as the loader recorded it (ccxt's contractSize, in the
    # quote currency); None (the exchange's documented default) for a linear symbol, a market
    # downloaded before the field existed, or a size in another unit
    from backtester.data import store as data_store

    if contract_type_of(symbol) != "inverse":
        return None
    contract = data_store.read_contract(exchange, symbol, store=store)
    if not contract or contract.get("contract_type") != "inverse":
        return None
    size = contract.get("contract_size")
    quote = symbol.partition("/")[2].partition(":")[0]
    if not isinstance(size, int | float) or contract.get("contract_size_unit") != quote:
        log.warning(
            "%s %s: the stored contract size %r %s is not a %s face value; using the default %g",
            exchange,
            symbol,
            size,
            contract.get("contract_size_unit"),
            quote,
            default_contract_spec(exchange, symbol)[0],
        )
        return None
    return float(size)


_H_NS = 3_600_000_000_000


def _warn_partial_funding(market: Market, stored_ts: I64Array) -> None:
    # Funding missing for part of the bars would silently mean "no funding paid" there (e.g. OKX
    # serves only ~3 months of funding history): say so, with the range that is covered.
    interval = int(np.median(np.diff(stored_ts))) if stored_ts.size > 1 else 8 * _H_NS
    slack = interval + 60_000_000_000  # one funding interval (+1 min for exchange timestamp jitter)
    b0 = int(market.ts_ns[0])
    b1 = int(market.ts_ns[-1]) + market.timeframe_ns
    f = market.funding_ts_ns
    if b1 - b0 <= slack:
        return  # shorter than one funding interval: nothing to judge
    if f.size and int(f[0]) - b0 <= slack and b1 - int(f[-1]) <= slack:
        return
    covered = (
        f"cover only {format_ts(f[0])} -> {format_ts(f[-1])}"
        if f.size
        else "are absent from the bars' range"
    )
    log.warning(
        "%s %s %s: funding events %s but the bars span %s -> %s; bars without funding events pay "
        "no funding. Pick a range the funding covers or download it with `%s`%s",
        market.exchange,
        market.symbol,
        market.timeframe,
        covered,
        format_ts(b0),
        format_ts(b1),
        _download_hint(market, "funding", format_ts(b0)[:10]),
        " (OKX serves only the last 3 months of funding history)"
        if market.exchange == "okx"
        else "",
    )


def _download_hint(market: Market, kinds: str, start: str) -> str:
    from backtester.data import store as data_store

    return data_store.download_hint(market.exchange, market.symbol, market.timeframe, kinds, start)


def _load_detail(
    symbol: str, exchange: str, timeframe: str, t0: int, t1: int, store: Any
) -> Market:
    from backtester.data import store as data_store

    df = data_store.read_dataset(exchange, symbol, timeframe, "ohlcv", store=store)
    part = _bar_frame_slice(df, t0, t1)
    if len(part) == 0:
        ts = df["timestamp"]
        raise DataError(
            f"stored {timeframe} bars of {symbol} cover {ts.iloc[0]} to {ts.iloc[-1]}, none inside "
            f"{format_ts(t0)} to {format_ts(t1)}; pick a range inside them or drop detail_timeframe"
        )
    return Market.from_frames(
        part, mark="last", symbol=symbol, exchange=exchange, timeframe=timeframe
    )
