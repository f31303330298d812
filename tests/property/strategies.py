"""Hypothesis strategies for engine property tests: random markets, signals and settings."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from backtester.market import Market
from backtester.params import ParamGrid
from backtester.signals import Signals


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
    """Return a valid random-walk Market (mark = last x (1 + noise)) with funding events
    (``funding_offset_min`` minutes after the bar opens: > 0 puts them inside the bars)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
    open_ = np.empty(n_bars)
    open_[0] = 100.0
    # occasional gaps between bars
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, vol / 2, n_bars - 1))
    wick = np.abs(rng.normal(0.0, vol, (2, n_bars)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    ts = pd.date_range("2024-06-01", periods=n_bars, freq="1h", tz="UTC")
    bars = pd.DataFrame({"timestamp": ts, "open": open_, "high": high, "low": low, "close": close})
    mark: Any = "last"
    if not mark_is_last:
        b = rng.normal(0.0, basis, (4, n_bars))
        mo, mc = open_ * (1 + b[0]), close * (1 + b[1])
        mh = np.maximum(mo, mc) * (1.0 + np.abs(b[2]))
        ml = np.minimum(mo, mc) * (1.0 - np.abs(b[3]))
        mark = pd.DataFrame({"timestamp": ts, "open": mo, "high": mh, "low": ml, "close": mc})
    f_idx = np.arange(0, n_bars, funding_every)
    funding = pd.DataFrame(
        {
            "timestamp": ts[f_idx] + pd.Timedelta(minutes=funding_offset_min),
            "funding_rate": rng.normal(0.0002, 0.002, f_idx.shape[0]),
        }
    )
    return Market.from_frames(
        bars,
        mark=mark,
        funding=funding,
        symbol="BTC/USDT:USDT",
        exchange="binanceusdm",
        timeframe="1h",
    )


@st.composite
def markets(draw: Any, max_bars: int = 60, mark_is_last: bool | None = None) -> Market:
    """Random valid markets of 3..max_bars hourly bars."""
    return random_market(
        draw(st.integers(0, 2**31 - 1)),
        draw(st.integers(3, max_bars)),
        vol=draw(st.sampled_from([0.005, 0.02, 0.06])),
        basis=draw(st.sampled_from([0.0005, 0.005, 0.03])),
        mark_is_last=draw(st.booleans()) if mark_is_last is None else mark_is_last,
        funding_every=draw(st.sampled_from([1, 3, 8])),
        funding_offset_min=draw(st.sampled_from([0, 0, 20])),
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
    "taker_fee": [0.0, 0.0005, 0.004],
    "maker_fee": [0.0, 0.0002],
    "slippage": [0.0, 0.001],
    "funding": [True, False],
    "maint_margin_rate": [None, 0.005, 0.05],
    "liquidation_fee_rate": [None, 0.0, 0.01],
    "close_at": [None, "liquidation", "bankruptcy"],
    "after_liquidation": ["continue", "stop"],
    "ruin_threshold": [0.0, 0.3],
    "negative_balance": ["floor", "owed"],
    "intrabar": ["worst", "best"],
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


def random_detail_market(seed: int, n_bars: int, *, vol: float, basis: float) -> Market:
    """Return a random 1h Market whose bars aggregate random 15m detail bars (``.detail``)."""
    k = 4
    fine = random_market(
        seed, n_bars * k, vol=vol / 2, basis=basis, mark_is_last=True, funding_every=8
    )
    ts = pd.date_range("2024-06-01", periods=n_bars * k, freq="15min", tz="UTC")
    fine_frame = pd.DataFrame(
        {
            "timestamp": ts,
            "open": fine.open,
            "high": fine.high,
            "low": fine.low,
            "close": fine.close,
        }
    )
    detail = Market.from_frames(
        fine_frame, mark="last", symbol="BTC/USDT:USDT", exchange="binanceusdm", timeframe="15m"
    )
    o = fine.open[::k]
    h = fine.high.reshape(n_bars, k).max(axis=1)
    lo = fine.low.reshape(n_bars, k).min(axis=1)
    c = fine.close[k - 1 :: k]
    rng = np.random.default_rng(seed + 1)
    b = rng.normal(0.0, basis, (4, n_bars))
    mo, mc = o * (1 + b[0]), c * (1 + b[1])
    mh = np.maximum(np.maximum(mo, mc), h * (1 + b[2]))
    ml = np.minimum(np.minimum(mo, mc), lo * (1 + b[3]))
    hts = pd.date_range("2024-06-01", periods=n_bars, freq="1h", tz="UTC")
    bars = pd.DataFrame({"timestamp": hts, "open": o, "high": h, "low": lo, "close": c})
    mark = pd.DataFrame({"timestamp": hts, "open": mo, "high": mh, "low": ml, "close": mc})
    funding = pd.DataFrame(
        {"timestamp": hts[::8], "funding_rate": rng.normal(0.0002, 0.002, len(hts[::8]))}
    )
    return Market.from_frames(
        bars,
        mark=mark,
        funding=funding,
        symbol="BTC/USDT:USDT",
        exchange="binanceusdm",
        timeframe="1h",
        detail=detail,
    )


@st.composite
def detail_markets(draw: Any, max_bars: int = 40) -> Market:
    """Random hourly markets carrying 15-minute detail bars."""
    return random_detail_market(
        draw(st.integers(0, 2**31 - 1)),
        draw(st.integers(3, max_bars)),
        vol=draw(st.sampled_from([0.01, 0.03, 0.06])),
        basis=draw(st.sampled_from([0.0005, 0.005, 0.02])),
    )
