"""The same settings on several venues, on the crash days they have in common.

A perpetual trades on many exchanges; each liquidates on its own mark price with its own tiers
and funding. :func:`compare_venues` opens the same holds on each venue in the days before each
of their common crash days and counts, per venue, how many were still open when the day began
and how many of those the day liquidated: the venue's rules and its mark price, not the
market's move, make the difference between two rows of the same setting.

Layer: survival (runs the engine through ``survival.run``; draws nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester.errors import ConfigError

if TYPE_CHECKING:
    from backtester.market import Market

__all__ = ["compare_venues", "crash_days"]

_DAY_NS = 86_400 * 10**9

#: the columns of :func:`compare_venues`, in order
COLUMNS = (
    "day",
    "exchange",
    "mark_source",
    "side",
    "leverage",
    "stop_loss",
    "mark_move",
    "n_entries",
    "n_open_at_day",
    "n_liquidated_on_day",
    "liquidated_share",
)


def _as_venues(markets: Mapping[str, Market] | Iterable[Market]) -> dict[str, Market]:
    from backtester.market import Market

    items = list(markets.values()) if isinstance(markets, Mapping) else list(markets)
    if len(items) < 2:
        raise ConfigError(
            f"compare_venues needs markets from at least two exchanges, was {len(items)}; "
            'e.g. [bt.load_market(s, exchange="okx"), bt.load_market(s)]'
        )
    out: dict[str, Market] = {}
    for m in items:
        if not isinstance(m, Market):
            raise ConfigError(
                f"markets must hold backtester Markets (bt.load_market), was {type(m).__name__}"
            )
        if m.exchange in out:
            raise ConfigError(
                f"markets holds two markets of exchange {m.exchange!r}; give one per exchange"
            )
        out[m.exchange] = m
    frames = {m.timeframe for m in out.values()}
    if len(frames) > 1:
        raise ConfigError(
            f"markets have different timeframes ({', '.join(sorted(frames))}); load them with "
            "the same timeframe"
        )
    return out


def _daily_mark_move(m: Market) -> pd.Series:
    # per UTC day: the larger of the fall to the day's mark low and the rise to its mark high,
    # as a fraction of the day's first mark open
    day = m.ts_ns // _DAY_NS
    frame = pd.DataFrame(
        {"day": day, "open": m.mark_open, "high": m.mark_high, "low": m.mark_low}
    ).groupby("day")
    first = frame["open"].first()
    move = np.maximum(1.0 - frame["low"].min() / first, frame["high"].max() / first - 1.0)
    return pd.Series(move.to_numpy(), index=first.index.to_numpy(), name="mark_move")


def _common_days(venues: Mapping[str, Market], lookback_ns: int) -> tuple[int, int]:
    # the whole UTC days every venue covers, after a lookback before the first of them
    t0 = max(int(m.ts_ns[0]) for m in venues.values()) + lookback_ns
    t1 = min(int(m.ts_ns[-1]) + m.timeframe_ns for m in venues.values())
    first_day = -(-t0 // _DAY_NS)
    last_day = t1 // _DAY_NS - 1
    if last_day < first_day:
        ranges = "; ".join(f"{x}: {m.start:%Y-%m-%d} → {m.end:%Y-%m-%d}" for x, m in venues.items())
        raise ConfigError(
            f"the markets share no whole day after the lookback ({ranges}); load ranges that "
            "overlap by more than the lookback"
        )
    return first_day, last_day


def crash_days(
    markets: Mapping[str, Market] | Iterable[Market], *, n_days: int = 3, lookback: str = "7D"
) -> list[pd.Timestamp]:
    """Return the ``n_days`` UTC days with the largest mark move that every market covers.

    A day's move is the larger of the fall to its mark low and the rise to its mark high, as a
    fraction of its first mark open, and the largest over the venues ranks it; only days with
    ``lookback`` of data before them on every venue count, and a day within ``lookback`` of a
    larger one is the same event (left out). Sorted by date.
    """
    venues = _as_venues(markets)
    if isinstance(n_days, bool) or not isinstance(n_days, int) or n_days < 1:
        raise ConfigError(f"n_days must be a whole number >= 1, was {n_days!r}; e.g. n_days=3")
    lookback_ns = int(_period(lookback, "lookback").value)
    first_day, last_day = _common_days(venues, lookback_ns)
    moves = pd.concat([_daily_mark_move(m) for m in venues.values()], axis=1).max(axis=1)
    moves = moves[(moves.index >= first_day) & (moves.index <= last_day)]
    # distinct events: a day within the lookback of a larger one is the same crash (FTX moved
    # 2022-11-08, -09 and -10) and its holds are the same holds
    spacing = -(-lookback_ns // _DAY_NS)
    chosen: list[int] = []
    for d in moves.sort_values(ascending=False, kind="stable").index:
        if all(abs(int(d) - c) > spacing for c in chosen):
            chosen.append(int(d))
        if len(chosen) == n_days:
            break
    return sorted(pd.Timestamp(d * _DAY_NS, tz="UTC") for d in chosen)


def _period(text: str | pd.Timedelta, name: str) -> pd.Timedelta:
    try:
        value = pd.Timedelta(text)
    except (TypeError, ValueError):
        value = pd.NaT
    if value is pd.NaT or value <= pd.Timedelta(0):
        raise ConfigError(f"{name} must be a positive period such as '7D' or '168h', was {text!r}")
    return value


def _day(text: Any) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(text)
    except (TypeError, ValueError):
        raise ConfigError(f"days must hold dates such as '2022-11-09', was {text!r}") from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts != ts.normalize():
        raise ConfigError(f"days must hold whole UTC dates such as '2022-11-09', was {text!r}")
    return ts


def compare_venues(
    markets: Mapping[str, Market] | Iterable[Market],
    *,
    days: Sequence[Any] | None = None,
    n_days: int = 3,
    side: str = "both",
    leverage: float | Sequence[float] = (5, 10, 20, 50),
    stop_loss: float | Sequence[float | None] | None = (None,),
    lookback: str = "7D",
    **engine_settings: Any,
) -> pd.DataFrame:
    """Open the same holds on every venue before each crash day; count what the day liquidated.

    For each day ``D`` (``days``, or the ``n_days`` of :func:`crash_days`) and each venue, a
    position of every setting (side × leverage × stop-loss; any other ``RunConfig`` field in
    ``engine_settings``; the starting wallet as in ``survival_study``) opens at every bar of the
    ``lookback`` before ``D`` and is followed through the end of ``D`` on that venue's last and
    mark prices, tiers and funding.

    Returns
    -------
    pandas.DataFrame
        One row per day × venue × setting: ``mark_source`` (``"mark"``, or ``"last"`` where the
        venue's last price stood in for its mark), ``mark_move`` (the venue's largest mark move
        of the day, a fraction), ``n_entries``, ``n_open_at_day`` (neither liquidated, stopped nor
        refused before ``D`` began), ``n_liquidated_on_day`` (liquidated during ``D``) and
        ``liquidated_share`` = ``n_liquidated_on_day / n_open_at_day`` (NaN when none was open).

    Raises
    ------
    ConfigError
        Fewer than two venues, two markets of one exchange, different timeframes, a day outside
        the common range (or without ``lookback`` before it), bad settings.

    Examples
    --------
    >>> import backtester as bt
    >>> okx = bt.load_market("BTC/USDT:USDT", exchange="okx")
    >>> binance = bt.load_market("BTC/USDT:USDT", start="2022-05-01", end="2023-01-01")
    >>> bt.compare_venues([okx, binance], days=["2022-11-09"])  # doctest: +SKIP
    """
    from backtester.survival.run import _as_tuple, _check_values, _run_engine, _study_value

    venues = _as_venues(markets)
    lookback_ns = int(_period(lookback, "lookback").value)
    first_day, last_day = _common_days(venues, lookback_ns)
    chosen = (
        crash_days(venues, n_days=n_days, lookback=lookback)
        if days is None
        else [_day(d) for d in ([days] if isinstance(days, str) else days)]
    )
    for d in chosen:
        if not first_day <= d.value // _DAY_NS <= last_day:
            lo = pd.Timestamp(first_day * _DAY_NS, tz="UTC")
            hi = pd.Timestamp(last_day * _DAY_NS, tz="UTC")
            raise ConfigError(
                f"day {d:%Y-%m-%d} is outside the days every venue covers with {lookback} "
                f"before them ({lo:%Y-%m-%d} → {hi:%Y-%m-%d}); pick a day in that range"
            )
    sides = {"both": ("long", "short"), "long": ("long",), "short": ("short",)}.get(side)
    if sides is None:
        raise ConfigError(f"side must be 'long', 'short' or 'both', was {side!r}")
    axes: dict[str, tuple[Any, ...]] = {
        "side": sides,
        "leverage": _check_values("leverage", _as_tuple(leverage)),
        "stop_loss": _check_values("stop_loss", _as_tuple(stop_loss)),
    }
    from backtester.survival.study import default_initial_cash

    fixed = {k: _study_value(k, v) for k, v in engine_settings.items()}
    rows: list[pd.DataFrame] = []
    for d in chosen:
        d0 = d.value
        for exchange, m in venues.items():
            start = int(np.searchsorted(m.ts_ns, d0 - lookback_ns))
            begin = int(np.searchsorted(m.ts_ns, d0))
            stop = int(np.searchsorted(m.ts_ns, d0 + _DAY_NS))
            entries = np.arange(start, begin, dtype=np.int64)
            cash = {"initial_cash": default_initial_cash(m)} if "initial_cash" not in fixed else {}
            outcomes, settings, _, _ = _run_engine(
                m, axes, {**fixed, **cash}, entries, stop - start
            )
            exit_idx = outcomes.exit_idx
            open_at_day = (exit_idx >= begin) & ~outcomes.rejected
            on_day = outcomes.liquidated & (exit_idx >= begin) & (exit_idx < stop)
            n_open = open_at_day.sum(axis=1)
            n_liq = on_day.sum(axis=1)
            sl = m.ts_ns[begin:stop]
            move = _daily_mark_move(m).get(d0 // _DAY_NS, np.nan) if sl.size else np.nan
            part = settings[["side", "leverage", "stop_loss"]].copy()
            part.insert(0, "mark_source", m.mark_source)
            part.insert(0, "exchange", exchange)
            part.insert(0, "day", d.strftime("%Y-%m-%d"))
            part["mark_move"] = float(move)
            part["n_entries"] = int(entries.size)
            part["n_open_at_day"] = n_open.astype(np.int64)
            part["n_liquidated_on_day"] = n_liq.astype(np.int64)
            with np.errstate(invalid="ignore", divide="ignore"):
                part["liquidated_share"] = np.where(n_open > 0, n_liq / n_open, np.nan)
            rows.append(part)
    out = pd.concat(rows, ignore_index=True)[list(COLUMNS)]
    return out.sort_values(
        ["day", "side", "stop_loss", "leverage", "exchange"], kind="stable", na_position="first"
    ).reset_index(drop=True)
