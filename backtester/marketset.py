"""MarketSet: several Markets of one exchange aligned on one clock (layer ``market``).

A MarketSet holds the markets an account trades (issue 10), each sliced to the bars they all have:
the intersection of their ranges, ``[latest start, earliest end)``. Every Market keeps its own
last and mark bars, funding events, tier table and detail bars (cut to the common range), and
inside that range every market has exactly the same bar open times (``ts_ns``).

Rules
-----
* Built by :meth:`MarketSet.from_markets` (or ``MarketSet(markets=...)``, the same checks) and
  :func:`load_markets`; validated once here, so the engine can trust that ``ts_ns`` is shared.
* Refused, with one line naming the symbol and the fix: no market, a duplicate symbol, another
  timeframe, another exchange, ranges that do not overlap, bars that open at other times (offset
  grids), and a gap: a bar of the common range missing from one market but present in another,
  or missing from all of them.
* One exchange only: an account is one wallet on one exchange (cross margin shares that wallet,
  and each exchange has its own liquidation procedure), so markets of two exchanges cannot form
  one account. Study them as separate MarketSets.
* Mark sources may differ (``mark="last"`` on one market is shown in the repr and HTML table).
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from backtester._typing import I64Array
from backtester.data.schema import format_ts
from backtester.errors import ConfigError, DataError, did_you_mean
from backtester.market import Market, load_market

log = logging.getLogger(__name__)

__all__ = ["MarketSet", "load_markets"]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class MarketSet:
    """Markets of one exchange and timeframe aligned on their common bars.

    Build one with :meth:`from_markets` or :func:`load_markets`. Container protocol: ``len(ms)``
    is the number of symbols, ``iter(ms)`` yields the **symbols** (like a dict's keys),
    ``symbol in ms`` tests membership and ``ms[symbol]`` returns that symbol's Market; iterate
    over ``ms.markets`` for the Market objects.

    Attributes
    ----------
    markets : tuple of Market
        One per symbol, in the given order, each sliced to the common range.
    """

    markets: tuple[Market, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "markets", _aligned(self.markets))

    @classmethod
    def from_markets(cls, markets: Iterable[Market]) -> MarketSet:
        """Return the markets aligned on their common bars (the intersection of their ranges).

        Parameters
        ----------
        markets : iterable of Market
            Markets of distinct symbols, one exchange and one timeframe. Order is kept.

        Raises
        ------
        ConfigError
            No market, an item that is not a Market, a duplicate symbol, another exchange.
        DataError
            Another timeframe, no common bar, offset bar times or a gap inside the common range.

        Examples
        --------
        >>> import backtester as bt
        >>> btc = bt.load_market("BTC/USDT:USDT", start="2021-01-01", end="2021-03-01")
        >>> eth = bt.load_market("ETH/USDT:USDT", start="2021-02-01", end="2021-04-01")
        >>> bt.MarketSet.from_markets([btc, eth]).n_bars  # February 2021
        672
        """
        return cls(markets=tuple(markets))

    # ------------------------------------------------------------ container protocol

    def __len__(self) -> int:
        return len(self.markets)

    def __iter__(self) -> Iterator[str]:
        return iter(self.symbols)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.symbols

    def __getitem__(self, symbol: str) -> Market:
        for market in self.markets:
            if market.symbol == symbol:
                return market
        raise ConfigError(
            f"MarketSet has no symbol {symbol!r}, it holds {', '.join(self.symbols)}"
            f"{did_you_mean(str(symbol), self.symbols)}"
        )

    # ------------------------------------------------------------ shared views

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols in the given order."""
        return tuple(m.symbol for m in self.markets)

    @property
    def exchange(self) -> str:
        """Exchange id shared by every market."""
        return self.markets[0].exchange

    @property
    def timeframe(self) -> str:
        """Bar timeframe shared by every market (``"1h"``)."""
        return self.markets[0].timeframe

    @property
    def timeframe_ns(self) -> int:
        """Bar length in ns."""
        return self.markets[0].timeframe_ns

    @property
    def ts_ns(self) -> I64Array:
        """``(n_bars,)`` int64 bar open times (ns UTC), equal in every market."""
        return self.markets[0].ts_ns

    @property
    def n_bars(self) -> int:
        """Number of common bars."""
        return self.markets[0].n_bars

    @property
    def index(self) -> pd.DatetimeIndex:
        """Common bar open times as a tz-aware UTC DatetimeIndex named ``timestamp``."""
        return self.markets[0].index

    @property
    def start(self) -> pd.Timestamp:
        """Open time of the first common bar (UTC)."""
        return self.markets[0].start

    @property
    def end(self) -> pd.Timestamp:
        """End of the last common bar (UTC, exclusive)."""
        return self.markets[0].end

    def fingerprint(self) -> str:
        """Return the sha256 hex digest of the markets' fingerprints, in order (for run.json)."""
        digest = hashlib.sha256()
        for market in self.markets:
            digest.update(market.fingerprint().encode("ascii"))
        return digest.hexdigest()

    # ------------------------------------------------------------ display

    def __repr__(self) -> str:
        width = max(len(s) for s in self.symbols)
        lines = [
            f"MarketSet of {len(self)} markets on {self.exchange}, {self.timeframe} bars",
            f"  range  {self.start:%Y-%m-%d %H:%M} -> {self.end:%Y-%m-%d %H:%M} UTC "
            f"({self.n_bars:,} common bars)",
        ]
        for m in self.markets:
            row = _row(m)
            lines.append(
                f"  {m.symbol:<{width}}  {row['mark source']}, funding {row['funding events']} events, "
                f"tiers {row['tiers']}, detail {row['detail']}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [_row(m) for m in self.markets]
        head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>"
            for row in rows
        )
        caption = html.escape(
            f"MarketSet on {self.exchange}, {self.timeframe} bars, "
            f"{self.start:%Y-%m-%d %H:%M} -> {self.end:%Y-%m-%d %H:%M} UTC "
            f"({self.n_bars:,} common bars)"
        )
        return (
            f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )


def _row(m: Market) -> dict[str, str]:
    # one display row per market (repr and _repr_html_ share it)
    tiers = "exchange's dated tables" if m.tiers is None else m._tiers_text()
    detail = "none" if m.detail is None else f"{m.detail.timeframe} ({m.detail.n_bars:,} bars)"
    return {
        "symbol": m.symbol,
        "mark source": "mark-price bars" if m.mark_source == "mark" else "last price (mark='last')",
        "funding events": f"{m.funding_ts_ns.size:,}",
        "tiers": tiers,
        "detail": detail,
    }


def _aligned(markets: tuple[Market, ...]) -> tuple[Market, ...]:
    # validate once and slice every market to [latest start, earliest end)
    if not markets:
        raise ConfigError(
            "MarketSet needs at least one market, was none; pass [bt.load_market(...), ...]"
        )
    for k, m in enumerate(markets):
        if not isinstance(m, Market):
            raise ConfigError(
                f"MarketSet markets must be Market objects, item {k} was {type(m).__name__}; "
                "build them with bt.load_market or bt.Market.from_frames"
            )
        if m.n_bars == 0:
            raise DataError(f"{m.symbol} has no bar; build it with bt.load_market or from_frames")
    first = markets[0]
    seen: set[str] = set()
    for m in markets:
        if m.symbol in seen:
            raise ConfigError(
                f"MarketSet symbols must be distinct, {m.symbol!r} was given twice; "
                "pass each symbol once"
            )
        seen.add(m.symbol)
        if m.exchange != first.exchange:
            raise ConfigError(
                "MarketSet markets must share one exchange (an account is one wallet), "
                f"{m.symbol} is on {m.exchange} and {first.symbol} on {first.exchange}; "
                "load every symbol from the same exchange"
            )
        if m.timeframe_ns != first.timeframe_ns:
            raise DataError(
                f"MarketSet markets must share one timeframe, {m.symbol} has {m.timeframe} bars "
                f"and {first.symbol} {first.timeframe}; load every symbol with the same timeframe"
            )
    t0 = max(int(m.ts_ns[0]) for m in markets)
    t1 = min(int(m.ts_ns[-1]) + m.timeframe_ns for m in markets)
    if t1 <= t0:
        late = max(markets, key=lambda m: int(m.ts_ns[0]))
        early = min(markets, key=lambda m: int(m.ts_ns[-1]) + m.timeframe_ns)
        raise DataError(
            f"MarketSet markets have no common bar: {late.symbol} starts at {format_ts(t0)} "
            f"after {early.symbol} ends at {format_ts(t1)}; pick markets whose ranges overlap"
        )
    out = tuple(
        m if int(m.ts_ns[0]) == t0 and int(m.ts_ns[-1]) + m.timeframe_ns == t1 else _cut(m, t0, t1)
        for m in markets
    )
    _check_same_bars(out)
    clipped = [m.symbol for m, o in zip(markets, out, strict=True) if o is not m]
    if clipped:
        log.info(
            "MarketSet %s: common range %s -> %s (%d bars); clipped %s",
            ", ".join(m.symbol for m in out),
            format_ts(t0),
            format_ts(t1),
            out[0].n_bars,
            ", ".join(clipped),
        )
    return out


def _cut(m: Market, t0: int, t1: int) -> Market:
    lo = int(np.searchsorted(m.ts_ns, t0, "left"))
    hi = int(np.searchsorted(m.ts_ns, t1, "left"))
    if hi <= lo:  # every bar of m falls between two bars of the grid (offset bar times)
        raise DataError(
            f"{m.symbol} has no bar opening inside the common range {format_ts(t0)} -> "
            f"{format_ts(t1)}; its bars open at other times, resample it to the others' bar times"
        )
    return m.slice(pd.Timestamp(int(m.ts_ns[lo]), tz="UTC"), pd.Timestamp(t1, tz="UTC"))


def _check_same_bars(markets: tuple[Market, ...]) -> None:
    step = markets[0].timeframe_ns
    ref = markets[0]
    for m in markets[1:]:
        offset = (int(m.ts_ns[0]) - int(ref.ts_ns[0])) % step
        if offset:
            raise DataError(
                f"bars of {m.symbol} open {pd.Timedelta(offset, 'ns')} after those of "
                f"{ref.symbol} (first {format_ts(m.ts_ns[0])} vs {format_ts(ref.ts_ns[0])}); "
                "resample them so every market's bars open at the same times"
            )
    union = np.unique(np.concatenate([m.ts_ns for m in markets]))
    for m in markets:
        if m.n_bars != union.size:
            missing = np.setdiff1d(union, m.ts_ns, assume_unique=True)
            other = _holder(markets, int(missing[0]))
            raise DataError(
                f"{m.symbol} is missing {missing.size} bar(s) of the common range (first at "
                f"{format_ts(missing[0])}, present in {other}); fill them with "
                "backtester.data.schema.fill_gaps before Market.from_frames or pick a range "
                "without them"
            )
    gaps = np.flatnonzero(np.diff(union) != step)
    if gaps.size:
        i = int(gaps[0])
        raise DataError(
            f"{', '.join(m.symbol for m in markets)} all skip from {format_ts(union[i])} to "
            f"{format_ts(union[i + 1])} (a gap inside the common range); fill it with "
            "backtester.data.schema.fill_gaps before Market.from_frames or pick a range without it"
        )


def _holder(markets: tuple[Market, ...], t: int) -> str:
    # the first market that has a bar opening at t
    for m in markets:
        pos = int(np.searchsorted(m.ts_ns, t))
        if pos < m.n_bars and int(m.ts_ns[pos]) == t:
            return m.symbol
    return "none"  # pragma: no cover - t comes from the union of the markets' bars


def load_markets(
    symbols: Sequence[str],
    *,
    exchange: str = "binanceusdm",
    timeframe: str = "1h",
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    store: str | os.PathLike[str] | None = None,
    mark: Literal["mark", "last"] = "mark",
    detail_timeframe: str | None = None,
) -> MarketSet:
    """Load several symbols from the store and align them on their common bars.

    Each symbol is loaded with :func:`~backtester.load_market` (same arguments), then the
    markets are cut to the intersection of their ranges (:meth:`MarketSet.from_markets`).

    Parameters
    ----------
    symbols : sequence of str
        Distinct ccxt symbols (``["BTC/USDT:USDT", "ETH/USDT:USDT"]``); the order is kept.
    exchange, timeframe : str
        Shared by every symbol.
    start, end : str or pd.Timestamp, optional
        Bar open times, ``start`` inclusive, ``end`` exclusive; each symbol's data must cover
        them. By default each symbol's full range, cut to the common part.
    store : path, optional
        Store root, as in :func:`~backtester.load_market`.
    mark : "mark" or "last"
        Mark-price bars or the last price as mark, for every symbol.
    detail_timeframe : str, optional
        Attach each symbol's stored lower-timeframe bars (``"1m"``) for the part of the range
        they cover; every symbol must have some stored.

    Raises
    ------
    ConfigError
        ``symbols`` is a string or empty, or repeats a symbol.
    DataError
        A symbol's data is missing or does not cover ``start``/``end`` (the message names it),
        or the markets share no bar or have a gap inside the common range.

    Examples
    --------
    >>> import backtester as bt
    >>> ms = bt.load_markets(["BTC/USDT:USDT", "ETH/USDT:USDT"], start="2022-11-01", end="2022-12-01")
    >>> ms.symbols, ms.n_bars
    (('BTC/USDT:USDT', 'ETH/USDT:USDT'), 720)
    """
    if isinstance(symbols, str):
        raise ConfigError(
            f"symbols must be a list of symbols, was the string {symbols!r}; "
            f"pass [{symbols!r}] or {symbols.split(',')!r}"
        )
    names = list(symbols)
    if not names:
        raise ConfigError("symbols must name at least one symbol, was empty")
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(
                f"symbols must be distinct, {name!r} was given {names.count(name)} times; "
                "pass each symbol once"
            )
    markets = [
        load_market(
            name,
            exchange=exchange,
            timeframe=timeframe,
            start=start,
            end=end,
            store=store,
            mark=mark,
            detail_timeframe=detail_timeframe,
        )
        for name in names
    ]
    return MarketSet.from_markets(markets)
