"""Hypothesis strategies for engine property tests: markets, signals and settings from drawn values.

Every market is built from drawn values (per-bar moves, gaps, wicks, mark basis and funding rates
as drawn bytes, a tier table as drawn floats), never from a seed fed to numpy, so hypothesis
shrinks a failure towards a flat, short market. Markets are Binance, OKX or Bybit BTC/USDT:USDT perpetuals at a price level where
the exchanges' tiers matter, some starting just before a dated tier-table change.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from hypothesis import settings
from hypothesis import strategies as st

from backtester.market import Market
from backtester.params import ParamGrid
from backtester.rules.tables import cum_recurrence
from backtester.signals import Signals

EXCHANGES = ("binanceusdm", "okx", "bybit")
# first bar open: the 2nd and 3rd put a change of the Binance table in force a few bars in
# (2021-03-18 09:00 new tiers; 2025-12-24 07:49 liquidation fee 0.003 -> 0.02)
STARTS = ("2024-06-01", "2021-03-18 06:00", "2025-12-24 05:00")
# a 100 USDT toy price and a BTC-like one (OKX tiers by size: 3, 6, ... BTC)
PRICE_LEVELS = (100.0, 60_000.0)


def examples(share: float, floor: int = 10) -> settings:
    """Settings running ``share`` of the loaded profile's examples (dev 50, ci 500, nightly 5,000;
    tests/conftest.py), at least ``floor``: the whole-engine properties each run a sweep or two
    per example, and the CI profile must stay within a few minutes on 2 cores."""
    return settings(max_examples=max(floor, int(settings.default.max_examples * share)))


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _drawn(draw: Any, n: int, lo: float, hi: float) -> np.ndarray:
    # n values in [lo, hi] (lo = -hi or 0) from n drawn bytes: one draw instead of n float draws
    # (10x faster to generate), and a zero byte is a zero value, so shrinking flattens the market
    v = np.frombuffer(draw(st.binary(min_size=n, max_size=n)), dtype=np.int8).astype(np.float64)
    return v / 127.0 * hi if lo < 0 else np.abs(v) / 128.0 * hi


def _ohlc(draw: Any, n: int, vol: float, level: float) -> tuple[np.ndarray, ...]:
    # log close moves and open gaps in units of vol (0 shrinks to a flat market), wicks >= 0
    moves = _drawn(draw, n, -4.0, 4.0) * vol
    gaps = _drawn(draw, n, -2.0, 2.0) * (vol / 2)
    gaps[0] = 0.0
    wicks = _drawn(draw, 2 * n, 0.0, 3.0).reshape(2, n) * vol
    log_open = math.log(level) + np.cumsum(gaps + np.concatenate([[0.0], moves[:-1]]))
    open_ = np.exp(log_open)
    close = np.exp(log_open + moves)
    high = np.maximum(open_, close) * (1.0 + wicks[0])
    low = np.minimum(open_, close) / (1.0 + wicks[1])
    return open_, high, low, close


def _mark(
    draw: Any, n: int, basis: float, o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, ...]:
    b = _drawn(draw, 4 * n, -1.0, 1.0).reshape(4, n) * basis
    mo, mc = o * (1 + b[0]), c * (1 + b[1])
    mh = np.maximum(np.maximum(mo, mc), h * (1 + b[2]))
    ml = np.minimum(np.minimum(mo, mc), lo * (1 + b[3]))
    return mo, mh, ml, mc


@st.composite
def tier_frames(draw: Any) -> pd.DataFrame:
    """A valid tier table (for tier_table="market"): 1-5 tiers by notional or size, recurrent
    maintenance amounts, tier 1 up to 125x and lower maxima above."""
    n = draw(st.integers(1, 5))
    by_size = draw(st.booleans())
    step_lo, step_hi = (0.5, 500.0) if by_size else (5e3, 5e7)
    steps = draw(st.lists(_floats(step_lo, step_hi), min_size=n, max_size=n))
    bounds = np.concatenate([[0.0], np.cumsum(steps)])
    floors, caps = bounds[:-1], bounds[1:]
    bumps = draw(st.lists(_floats(0.0, 0.02), min_size=n - 1, max_size=n - 1))
    mmr = 0.004 + np.concatenate([[0.0], np.cumsum(bumps)])
    max_lev = np.minimum(125.0, np.floor(0.5 / mmr))
    max_lev[0] = 125.0
    return pd.DataFrame(
        {
            "tier": np.arange(1, n + 1),
            "floor": floors,
            "cap": caps,
            "max_leverage": max_lev,
            "mmr": mmr,
            "maint_amount": cum_recurrence(floors, mmr),
            "basis": "size" if by_size else "notional",
        }
    )


def _frame(ts: pd.DatetimeIndex, o: Any, h: Any, lo: Any, c: Any) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c})


@st.composite
def markets(
    draw: Any, max_bars: int = 120, mark_is_last: bool | None = None, exchange: str | None = None
) -> Market:
    """Markets of 3..max_bars hourly bars on a drawn exchange, start, price level and volatility,
    with a mark series (or mark = last), funding events (some inside the bars) and a tier table."""
    n = draw(st.integers(3, max_bars))
    vol = draw(st.sampled_from([0.005, 0.02, 0.06]))
    o, h, lo, c = _ohlc(draw, n, vol, draw(st.sampled_from(PRICE_LEVELS)))
    ts = pd.date_range(draw(st.sampled_from(STARTS)), periods=n, freq="1h", tz="UTC")
    last = draw(st.booleans()) if mark_is_last is None else mark_is_last
    mark: Any = "last"
    if not last:
        basis = draw(st.sampled_from([0.0005, 0.005, 0.03]))
        mark = _frame(ts, *_mark(draw, n, basis, o, h, lo, c))
    every = draw(st.sampled_from([1, 3, 8]))
    offset = draw(st.sampled_from([0, 0, 20]))  # minutes after the bar opens: > 0 inside the bar
    f_ts = ts[::every] + pd.Timedelta(minutes=offset)
    rates = _drawn(draw, len(f_ts), -0.005, 0.005)
    return Market.from_frames(
        _frame(ts, o, h, lo, c),
        mark=mark,
        funding=pd.DataFrame({"timestamp": f_ts, "funding_rate": rates}),
        symbol="BTC/USDT:USDT",
        exchange=exchange or draw(st.sampled_from(EXCHANGES)),
        timeframe="1h",
        tiers=draw(tier_frames()),
    )


class RandomSignals:
    """A strategy whose columns are seeded random signals (param ``seed``, density ``p``)."""

    PARAMS: ClassVar[dict[str, list[Any]]] = {"seed": [0], "p": [0.2]}
    __name__ = "random_signals"

    @staticmethod
    def arrays(n_bars: int, seed: int, p: float) -> np.ndarray:
        """Return ``(n_bars, 4)`` bool: long entry/exit, short entry/exit."""
        return np.random.default_rng(seed).random((n_bars, 4)) < p

    def signals(self, market: Market, grid: ParamGrid) -> Signals:
        cols = [
            self.arrays(market.n_bars, s, p)
            for s, p in zip(grid.values("seed"), grid.values("p"), strict=True)
        ]
        stack = np.stack(cols, axis=2)  # (n_bars, 4, n_cols)
        return Signals(stack[:, 0], stack[:, 1], stack[:, 2], stack[:, 3])


SETTING_VALUES: dict[str, list[Any]] = {
    "leverage": [1.0, 2.0, 5.0, 10.0, 25.0, 50.0],
    "position_size": [1.0, 0.5, 0.1],
    "stop_loss": [None, 0.01, 0.03, 0.1],
    "take_profit": [None, 0.02, 0.05],
    "trailing_stop": [None, 0.02, 0.05],
    "stop_trigger": ["last", "mark"],
    "margin_mode": ["isolated", "cross"],
    "taker_fee": [None, 0.0, 0.0005, 0.004],
    "maker_fee": [None, 0.0, 0.0002],
    "slippage": [0.0, 0.001],
    "funding": [True, False],
    "maint_margin_rate": [None, 0.005, 0.05],
    "liquidation_fee_rate": [None, 0.0, 0.01],
    "close_at": [None, "liquidation", "bankruptcy"],
    "after_liquidation": ["continue", "stop"],
    "ruin_threshold": [0.0, 0.3],
    "negative_balance": ["floor", "owed"],
    "intrabar": ["worst", "best"],
    # None = the market's exchange; tables: dated timeline, market.tiers, or pinned by a date
    # (after every exchange's first table: okx 2023-06-15; a pinned date is never extended back)
    "exchange": [None, *EXCHANGES],
    "tier_table": [None, "market", "2023-07-01", "2025-12-25"],
    "initial_cash": [100.0, 10_000.0, 1_000_000.0],
}


@st.composite
def engine_settings(draw: Any) -> dict[str, Any]:
    """One column's engine settings drawn from SETTING_VALUES (a flat maintenance rate always
    below 1/leverage: anything else is a ConfigError, tested in the unit tests)."""
    out = {k: draw(st.sampled_from(v)) for k, v in SETTING_VALUES.items()}
    if out["maint_margin_rate"] is not None and out["maint_margin_rate"] * out["leverage"] >= 1:
        out["maint_margin_rate"] = 0.005
    return out


@st.composite
def sweep_grids(draw: Any, max_cols: int = 4) -> ParamGrid:
    """Grids of 1..max_cols columns mixing random signals and random engine settings."""
    n = draw(st.integers(1, max_cols))
    rows = [draw(engine_settings()) for _ in range(n)]
    cols: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in SETTING_VALUES}
    cols["seed"] = [draw(st.integers(0, 10_000)) for _ in range(n)]
    cols["p"] = [draw(st.sampled_from([0.05, 0.2, 0.5])) for _ in range(n)]
    return ParamGrid.zip(**cols)


@st.composite
def detail_markets(draw: Any, max_bars: int = 40) -> Market:
    """Hourly markets whose bars aggregate drawn 15-minute detail bars (``.detail``), with a mark
    series around them and funding every 8 hours."""
    k = 4
    n = draw(st.integers(3, max_bars))
    vol = draw(st.sampled_from([0.01, 0.03, 0.06]))
    fo, fh, flo, fc = _ohlc(draw, n * k, vol / 2, draw(st.sampled_from(PRICE_LEVELS)))
    start = draw(st.sampled_from(STARTS))
    exchange = draw(st.sampled_from(EXCHANGES))
    fine_ts = pd.date_range(start, periods=n * k, freq="15min", tz="UTC")
    detail = Market.from_frames(
        _frame(fine_ts, fo, fh, flo, fc),
        mark="last",
        symbol="BTC/USDT:USDT",
        exchange=exchange,
        timeframe="15m",
    )
    o, c = fo[::k], fc[k - 1 :: k]
    h, lo = fh.reshape(n, k).max(axis=1), flo.reshape(n, k).min(axis=1)
    basis = draw(st.sampled_from([0.0005, 0.005, 0.02]))
    ts = pd.date_range(start, periods=n, freq="1h", tz="UTC")
    rates = _drawn(draw, len(ts[::8]), -0.005, 0.005)
    return Market.from_frames(
        _frame(ts, o, h, lo, c),
        mark=_frame(ts, *_mark(draw, n, basis, o, h, lo, c)),
        funding=pd.DataFrame({"timestamp": ts[::8], "funding_rate": rates}),
        symbol="BTC/USDT:USDT",
        exchange=exchange,
        timeframe="1h",
        tiers=draw(tier_frames()),
        detail=detail,
    )


def random_market(
    seed: int,
    n_bars: int,
    *,
    vol: float,
    basis: float,
    mark_is_last: bool,
    funding_every: int,
    funding_offset_min: int = 0,
) -> Market:
    """Return a fixed seeded random-walk Market (mark = last x (1 + noise)) with funding events
    (``funding_offset_min`` minutes after the bar opens). For unit tests that need one realistic
    market; property tests draw theirs with ``markets()`` so hypothesis can shrink them."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
    open_ = np.empty(n_bars)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, vol / 2, n_bars - 1))
    wick = np.abs(rng.normal(0.0, vol, (2, n_bars)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    ts = pd.date_range("2024-06-01", periods=n_bars, freq="1h", tz="UTC")
    mark: Any = "last"
    if not mark_is_last:
        b = rng.normal(0.0, basis, (4, n_bars))
        mo, mc = open_ * (1 + b[0]), close * (1 + b[1])
        mh = np.maximum(mo, mc) * (1.0 + np.abs(b[2]))
        ml = np.minimum(mo, mc) * (1.0 - np.abs(b[3]))
        mark = _frame(ts, mo, mh, ml, mc)
    f_idx = np.arange(0, n_bars, funding_every)
    funding = pd.DataFrame(
        {
            "timestamp": ts[f_idx] + pd.Timedelta(minutes=funding_offset_min),
            "funding_rate": rng.normal(0.0002, 0.002, f_idx.shape[0]),
        }
    )
    return Market.from_frames(
        _frame(ts, open_, high, low, close),
        mark=mark,
        funding=funding,
        symbol="BTC/USDT:USDT",
        exchange="binanceusdm",
        timeframe="1h",
    )
