"""Synthetic paths: block bootstraps of whole bars and stress replays of the worst days.

Layer: market (imports market, marketset, data.schema and errors; never the engine).

A path is rebuilt from per-bar log ratios of the source market, resampled in blocks of whole
bars (the same blocks for every symbol of a ``MarketSet``):

* ``gap = log(open_i / close_{i-1})`` (0 for the first bar) and ``body = log(close_i / open_i)``
  of the last price; the wicks beyond the body, ``log(high_i / open_i) - max(body, 0)`` and
  ``log(low_i / open_i) - min(body, 0)``;
* the mark's basis at the open, ``log(mark_open_i / open_i)``, and its own body and wicks;
* the bar's volume and its funding events (each at the same offset inside its bar).

A path starts at the source's first open and runs on the source's clock (bar ``k`` opens at
``ts_ns[0] + k * timeframe_ns``); each bar's open is the previous synthetic close times
``exp(gap)``. ``vol_scale = s`` stretches the gaps and bodies around their means
(``x' = mean + s·(x - mean)``) and the wicks by ``s``; the basis and the funding rates are kept.
``s = 1`` rebuilds every resampled bar's ratios exactly (up to rounding).

Paths are deterministic per seed: path ``k`` draws from child ``k`` of
``numpy.random.SeedSequence(seed)``, so the first ``k`` paths of a larger request are the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from backtester._typing import BOOTSTRAP_METHODS, F64Array, I64Array
from backtester.data.schema import parse_period_bars
from backtester.errors import ConfigError, check_one_of
from backtester.market import Market
from backtester.marketset import MarketSet

__all__ = [
    "METHODS",
    "PathRecipe",
    "SyntheticPaths",
    "bootstrap_paths",
    "iter_paths",
    "stress_paths",
    "worst_days",
]

#: block bootstrap methods: geometric block lengths (Politis–Romano) or fixed ones
METHODS = BOOTSTRAP_METHODS

_NS_PER_DAY = 86_400 * 10**9


@dataclass(frozen=True, slots=True, kw_only=True)
class PathRecipe:
    """How synthetic paths were made (kept with them and written into reports and run.json)."""

    source: str  # symbols of the source market
    source_start: str
    source_end: str
    source_sha256: str
    n_paths: int
    method: str
    mean_block: str
    mean_block_bars: int
    vol_scale: float
    length_bars: int
    seed: int
    stress_days: tuple[str, ...] = ()  # dates of the replayed worst days (stress paths)

    def describe(self) -> str:
        """Return one sentence on how the paths were made."""
        kind = (
            "stationary block bootstrap (Politis–Romano: geometric block lengths"
            if self.method == "stationary"
            else "circular block bootstrap (fixed block lengths"
        )
        text = (
            f"{self.n_paths:,} synthetic paths of {self.length_bars:,} bars from {self.source} "
            f"({self.source_start} → {self.source_end}): a {kind} with a mean of "
            f"{self.mean_block} = {self.mean_block_bars} bars, wrapping around the data's end) "
            f"of whole bars, keeping the last and mark OHLC relative to the open, the mark "
            f"basis, the volume and the funding events of each bar together; vol_scale "
            f"{self.vol_scale:g} (log gaps and bodies stretched around their means, wicks "
            f"scaled); each path starts at the source's first open, on its clock; seed "
            f"{self.seed} (numpy SeedSequence, one child per path)."
        )
        if self.stress_days:
            text += (
                " Stress: each path replays one of the worst historical days (largest mark "
                f"move, with its funding) at a random time: {', '.join(self.stress_days)}."
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        """Return the recipe as plain JSON values."""
        return {
            "source": self.source,
            "source_start": self.source_start,
            "source_end": self.source_end,
            "source_sha256": self.source_sha256,
            "n_paths": self.n_paths,
            "method": self.method,
            "mean_block": self.mean_block,
            "mean_block_bars": self.mean_block_bars,
            "vol_scale": self.vol_scale,
            "length_bars": self.length_bars,
            "seed": self.seed,
            "stress_days": list(self.stress_days),
        }


class SyntheticPaths(list[Any]):
    """A plain list of paths (``Market`` or ``MarketSet``) that also carries its ``recipe``."""

    recipe: PathRecipe | None

    def __init__(self, paths: Sequence[Any] = (), recipe: PathRecipe | None = None) -> None:
        super().__init__(paths)
        self.recipe = recipe


# ---------------------------------------------------------------------- source ratios


@dataclass(frozen=True, slots=True)
class _Ratios:
    # per-bar log ratios of one market, the parts a path is rebuilt from
    gap: F64Array
    body: F64Array
    wick_hi: F64Array
    wick_lo: F64Array
    basis: F64Array
    mbody: F64Array
    mwick_hi: F64Array
    mwick_lo: F64Array
    volume: F64Array
    ev_bar: I64Array  # source bar of each funding event (sorted)
    ev_offset: I64Array  # ns after that bar's open
    ev_rate: F64Array
    ev_first: I64Array  # (n_bars + 1,) first event of each bar


def _ratios(m: Market) -> _Ratios:
    o, h, lo, c = m.open, m.high, m.low, m.close
    body = np.log(c / o)
    gap = np.zeros(m.n_bars)
    gap[1:] = np.log(o[1:] / c[:-1])
    mo, mh, ml, mc = m.mark_open, m.mark_high, m.mark_low, m.mark_close
    mbody = np.log(mc / mo)
    order = np.argsort(m.funding_ts_ns, kind="stable")
    ts = m.funding_ts_ns[order]
    ev_bar = (ts - m.ts_ns[0]) // m.timeframe_ns
    inside = (ev_bar >= 0) & (ev_bar < m.n_bars)
    ev_bar, ts = ev_bar[inside], ts[inside]
    return _Ratios(
        gap=gap,
        body=body,
        wick_hi=np.log(h / o) - np.maximum(body, 0.0),
        wick_lo=np.log(lo / o) - np.minimum(body, 0.0),
        basis=np.log(mo / o),
        mbody=mbody,
        mwick_hi=np.log(mh / mo) - np.maximum(mbody, 0.0),
        mwick_lo=np.log(ml / mo) - np.minimum(mbody, 0.0),
        volume=m.volume,
        ev_bar=ev_bar.astype(np.int64),
        ev_offset=(ts - m.ts_ns[ev_bar]).astype(np.int64),
        ev_rate=m.funding_rate[order][inside],
        ev_first=np.searchsorted(ev_bar, np.arange(m.n_bars + 1)).astype(np.int64),
    )


def _scaled(x: F64Array, s: float) -> F64Array:
    if s == 1.0:
        return x
    mean = float(np.mean(x))
    out: F64Array = mean + s * (x - mean)
    return out


def _build(m: Market, r: _Ratios, src: I64Array, s: float) -> Market:
    # the path of source bars ``src`` on m's clock, starting at m's first open
    gap = _scaled(r.gap, s)[src]
    gap[0] = 0.0
    body = _scaled(r.body, s)[src]
    mbody = _scaled(r.mbody, s)[src]
    log_open = math.log(float(m.open[0])) + np.cumsum(gap + np.r_[0.0, body[:-1]])
    opn = np.exp(log_open)
    close = np.exp(log_open + body)
    high = np.exp(log_open + np.maximum(body, 0.0) + s * r.wick_hi[src])
    low = np.exp(log_open + np.minimum(body, 0.0) + s * r.wick_lo[src])
    log_mopen = log_open + r.basis[src]
    mopen = np.exp(log_mopen)
    mclose = np.exp(log_mopen + mbody)
    mhigh = np.exp(log_mopen + np.maximum(mbody, 0.0) + s * r.mwick_hi[src])
    mlow = np.exp(log_mopen + np.minimum(mbody, 0.0) + s * r.mwick_lo[src])
    # rounding must never put a close outside its bar's range (the schema's rule)
    high = np.maximum(high, np.maximum(opn, close))
    low = np.minimum(low, np.minimum(opn, close))
    mhigh = np.maximum(mhigh, np.maximum(mopen, mclose))
    mlow = np.minimum(mlow, np.minimum(mopen, mclose))
    n = src.size
    ts = m.ts_ns[0] + np.arange(n, dtype=np.int64) * m.timeframe_ns
    counts = r.ev_first[src + 1] - r.ev_first[src]
    total = int(counts.sum())
    ends = np.cumsum(counts)
    k = np.repeat(np.arange(n), counts)
    ev = np.repeat(r.ev_first[src], counts) + (np.arange(total) - np.repeat(ends - counts, counts))
    return Market(
        symbol=m.symbol,
        exchange=m.exchange,
        timeframe=m.timeframe,
        timeframe_ns=m.timeframe_ns,
        ts_ns=ts,
        open=opn,
        high=high,
        low=low,
        close=close,
        volume=r.volume[src],
        mark_open=mopen,
        mark_high=mhigh,
        mark_low=mlow,
        mark_close=mclose,
        mark_source=m.mark_source,
        funding_ts_ns=ts[k] + r.ev_offset[ev],
        funding_rate=r.ev_rate[ev],
        tiers=m.tiers,
        tiers_date=m.tiers_date,
        contract_size=m.contract_size,
    )


# ---------------------------------------------------------------------- block indices


def _block_indices(
    rng: np.random.Generator, n_source: int, length: int, mean_block: int, method: str
) -> I64Array:
    # source bar of each path bar: blocks of consecutive bars, wrapping around the end
    if method == "stationary":
        new = rng.random(length) < 1.0 / mean_block
        new[0] = True
        block = np.cumsum(new) - 1
        first = np.flatnonzero(new)
    else:
        block = np.arange(length) // mean_block
        first = np.arange(0, length, mean_block)
    starts = rng.integers(0, n_source, size=first.size)
    out: I64Array = (starts[block] + (np.arange(length) - first[block])) % n_source
    return out.astype(np.int64)


def _markets_of(source: Market | MarketSet) -> tuple[Market, ...]:
    return tuple(source.markets) if isinstance(source, MarketSet) else (source,)


def _check_source(source: Any, where: str) -> tuple[Market, ...]:
    if not isinstance(source, Market | MarketSet):
        raise ConfigError(
            f"{where} market must be a backtester Market or MarketSet, was "
            f"{type(source).__name__}; build one with bt.load_market(...) or bt.load_markets(...)"
        )
    markets = _markets_of(source)
    for m in markets:
        if m.detail is not None:
            raise ConfigError(
                f"{where} resamples whole bars of one timeframe, but {m.symbol} has "
                f"{m.detail.timeframe} detail bars; load it without detail_timeframe"
            )
    if source.n_bars < 2:
        raise ConfigError(
            f"{where} needs a market of at least 2 bars, was {source.n_bars}; load a longer range"
        )
    return markets


def _check_args(
    source: Market | MarketSet,
    n_paths: Any,
    mean_block: Any,
    method: Any,
    vol_scale: Any,
    length: Any,
    seed: Any,
) -> tuple[int, int, int, float, int]:
    if isinstance(n_paths, bool) or not isinstance(n_paths, int | np.integer) or n_paths < 1:
        raise ConfigError(f"n_paths must be an int >= 1, was {n_paths!r}; e.g. 500")
    check_one_of(method, "method", METHODS)
    tf = source.timeframe_ns
    block = parse_period_bars(mean_block, "mean_block", tf)
    if block > source.n_bars:
        raise ConfigError(
            f"mean_block {mean_block!r} ({block} bars) is longer than the data "
            f"({source.n_bars} bars); shorten it or load a longer range"
        )
    if (
        isinstance(vol_scale, bool)
        or not isinstance(vol_scale, int | float)
        or not math.isfinite(vol_scale)
        or not 0 < vol_scale <= 10
    ):
        raise ConfigError(
            f"vol_scale must be a number in (0, 10], was {vol_scale!r}; 1.0 keeps the data's "
            "volatility, 1.5 is 50% more"
        )
    if length is None:
        n = source.n_bars
    elif isinstance(length, bool):
        raise ConfigError(f"length must be a duration such as '365D' or None, was {length!r}")
    elif isinstance(length, int | np.integer):
        if length < 2:
            raise ConfigError(f"length must be at least 2 bars, was {length!r}; e.g. '365D'")
        n = int(length)
    else:
        n = parse_period_bars(length, "length", tf)
        if n < 2:
            raise ConfigError(f"length must be at least 2 bars, was {length!r}; e.g. '365D'")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an int >= 0, was {seed!r}")
    return int(n_paths), block, n, float(vol_scale), int(seed)


def _recipe(
    source: Market | MarketSet,
    n_paths: int,
    method: str,
    mean_block: Any,
    block: int,
    vol_scale: float,
    n: int,
    seed: int,
    stress_days: tuple[str, ...] = (),
) -> PathRecipe:
    return PathRecipe(
        source=" + ".join(m.symbol for m in _markets_of(source)),
        source_start=f"{source.index[0]:%Y-%m-%d %H:%M}",
        source_end=f"{source.end:%Y-%m-%d %H:%M}",
        source_sha256=source.fingerprint(),
        n_paths=n_paths,
        method=method,
        mean_block=str(mean_block),
        mean_block_bars=block,
        vol_scale=vol_scale,
        length_bars=n,
        seed=seed,
        stress_days=stress_days,
    )


def _paths(
    source: Market | MarketSet,
    markets: tuple[Market, ...],
    seeds: Sequence[np.random.SeedSequence],
    *,
    block: int,
    method: str,
    vol_scale: float,
    n: int,
    stress: Sequence[I64Array] = (),
    ratios: Sequence[_Ratios] | None = None,
) -> list[Any]:
    ratios = ratios if ratios is not None else [_ratios(m) for m in markets]
    out: list[Any] = []
    for child in seeds:
        rng = np.random.default_rng(child)
        src = _block_indices(rng, source.n_bars, n, block, method)
        if stress:
            day = stress[int(rng.integers(0, len(stress)))]
            at = int(rng.integers(0, max(n - day.size, 0) + 1))
            src[at : at + day.size] = day[: n - at]
        built = [_build(m, r, src, vol_scale) for m, r in zip(markets, ratios, strict=True)]
        out.append(MarketSet.from_markets(built) if isinstance(source, MarketSet) else built[0])
    return out


def bootstrap_paths(
    market: Market | MarketSet,
    n_paths: int,
    *,
    mean_block: str | pd.Timedelta = "1D",
    method: Literal["stationary", "circular"] = "stationary",
    vol_scale: float = 1.0,
    length: str | pd.Timedelta | int | None = None,
    seed: int = 0,
) -> SyntheticPaths:
    """Return ``n_paths`` block-bootstrapped paths of whole bars of ``market``.

    Parameters
    ----------
    market : Market or MarketSet
        The source. For a ``MarketSet`` every symbol takes the same blocks (they keep their
        co-movement) and each path is a ``MarketSet``.
    n_paths : int
        Number of paths (>= 1).
    mean_block : str
        Mean block length (``"1D"``), a whole number of bars. ``method="stationary"`` draws
        geometric block lengths with this mean (Politis–Romano); ``"circular"`` uses blocks of
        exactly this length. Both wrap around the data's end.
    vol_scale : float
        Stretch of the log gaps and bodies around their means and of the wicks (1.0 = as in the
        data, 1.5 = 50 % more volatile), in (0, 10].
    length : str, int or None
        Bars per path: a duration (``"365D"``), a bar count, or None for the source's length.
    seed : int
        Seed of the ``numpy.random.SeedSequence``; path ``k`` uses its child ``k``.

    Returns
    -------
    list of Market (or of MarketSet)
        A ``SyntheticPaths`` list whose ``recipe`` says how the paths were made. Every path has
        the source's symbol, exchange, tiers and clock, and starts at its first open.

    Raises
    ------
    ConfigError
        A bad argument (the message names it), a market with detail bars, fewer than 2 bars.

    Examples
    --------
    >>> import backtester as bt
    >>> m = bt.load_market("BTC/USDT:USDT")
    >>> paths = bt.bootstrap_paths(m, 100, mean_block="1D", length="365D", seed=1)
    >>> study = bt.survival_study(paths, leverage=(5, 10))  # doctest: +SKIP
    """
    return _all_paths(
        market,
        n_paths,
        mean_block=mean_block,
        method=method,
        vol_scale=vol_scale,
        length=length,
        seed=seed,
    )


def _all_paths(market: Market | MarketSet, n_paths: Any, **recipe: Any) -> SyntheticPaths:
    # every path in one batch, as a list (n_paths itself is checked by iter_paths)
    one = isinstance(n_paths, int) and not isinstance(n_paths, bool) and n_paths > 0
    made, batches = iter_paths(market, n_paths, batch=int(n_paths) if one else 1, **recipe)
    return SyntheticPaths([p for batch in batches for p in batch], made)


def worst_days(market: Market | MarketSet, k: int = 5) -> list[tuple[pd.Timestamp, float]]:
    """Return the ``k`` UTC days with the largest mark move, largest first: ``(day, move)``.

    A day's move is the largest of ``|log(mark_high / mark_open)|`` and
    ``|log(mark_low / mark_open)|`` over the day, from the day's first mark open (for a
    ``MarketSet``, the largest over its symbols). Only whole days of the data count.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"worst_days k must be an int >= 1, was {k!r}; e.g. 5")
    per_day = _NS_PER_DAY // market.timeframe_ns if _NS_PER_DAY % market.timeframe_ns == 0 else 0
    if per_day < 1:
        raise ConfigError(
            f"worst days need bars that divide a day, was {market.timeframe}; use 1h or 1m bars"
        )
    midnights = np.flatnonzero(market.ts_ns % _NS_PER_DAY == 0)
    first = int(midnights[0]) if midnights.size else market.n_bars  # first 00:00 UTC bar
    n_days = (market.n_bars - first) // per_day
    if n_days < 1:
        raise ConfigError(
            f"worst days need at least one whole UTC day of data, was {market.n_bars} bars"
        )
    move = np.zeros(n_days)
    for m in _markets_of(market):
        span = slice(first, first + n_days * per_day)
        hi = m.mark_high[span].reshape(n_days, per_day).max(axis=1)
        lo = m.mark_low[span].reshape(n_days, per_day).min(axis=1)
        o = m.mark_open[span].reshape(n_days, per_day)[:, 0]
        move = np.maximum(move, np.maximum(np.log(hi / o), -np.log(lo / o)))
    top = np.argsort(-move, kind="stable")[: min(k, n_days)]
    return [
        (pd.Timestamp(int(market.ts_ns[first + d * per_day]), tz="UTC"), float(move[d]))
        for d in top
    ]


def stress_paths(
    market: Market | MarketSet,
    n_paths: int,
    *,
    n_worst: int = 5,
    mean_block: str | pd.Timedelta = "1D",
    method: Literal["stationary", "circular"] = "stationary",
    vol_scale: float = 1.0,
    length: str | pd.Timedelta | int | None = None,
    seed: int = 0,
) -> SyntheticPaths:
    """Return bootstrap paths into which one of the worst historical days is replayed.

    Each path is made as by :func:`bootstrap_paths` (same arguments); then one of the
    ``n_worst`` days of :func:`worst_days` (largest mark move), drawn at random, replaces the
    path's bars from a random time on, with that day's last and mark bars relative to their
    opens and its funding events. The recipe lists the days.
    """
    if isinstance(n_worst, bool) or not isinstance(n_worst, int) or n_worst < 1:
        raise ConfigError(f"n_worst must be an int >= 1, was {n_worst!r}; e.g. 5")
    return _all_paths(
        market,
        n_paths,
        stress=n_worst,
        mean_block=mean_block,
        method=method,
        vol_scale=vol_scale,
        length=length,
        seed=seed,
    )


def iter_paths(
    market: Market | MarketSet,
    n_paths: int,
    *,
    batch: int = 50,
    stress: int = 0,
    mean_block: str | pd.Timedelta = "1D",
    method: Literal["stationary", "circular"] = "stationary",
    vol_scale: float = 1.0,
    length: str | pd.Timedelta | int | None = None,
    seed: int = 0,
) -> tuple[PathRecipe, Iterator[list[Any]]]:
    """Return the recipe and an iterator of path batches (at most ``batch`` paths each).

    The concatenated batches equal ``bootstrap_paths(market, n_paths, ...)`` (or
    ``stress_paths(..., n_worst=stress)`` when ``stress > 0``) path for path, but only one
    batch is held at a time: streaming studies use it to bound memory.
    """
    where = "stress_paths" if stress else "bootstrap_paths"
    markets = _check_source(market, where)
    n_paths, block, n, scale, seed = _check_args(
        market, n_paths, mean_block, method, vol_scale, length, seed
    )
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be an int >= 1, was {batch!r}; e.g. 50")
    labels: tuple[str, ...] = ()
    days: list[I64Array] = []
    if stress:
        found = worst_days(market, stress)
        per_day = _NS_PER_DAY // market.timeframe_ns
        days = [
            np.searchsorted(market.ts_ns, d.value) + np.arange(min(per_day, n), dtype=np.int64)
            for d, _ in found
        ]
        labels = tuple(f"{d:%Y-%m-%d} ({mv * 100:.1f}%)" for d, mv in found)
    recipe = _recipe(market, n_paths, method, mean_block, block, scale, n, seed, labels)
    seeds = np.random.SeedSequence(seed).spawn(n_paths)
    ratios = [_ratios(m) for m in markets]

    def batches() -> Iterator[list[Any]]:
        for lo in range(0, n_paths, batch):
            yield _paths(
                market,
                markets,
                seeds[lo : lo + batch],
                block=block,
                method=method,
                vol_scale=scale,
                n=n,
                stress=days,
                ratios=ratios,
            )

    return recipe, batches()
