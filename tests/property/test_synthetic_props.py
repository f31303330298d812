"""Synthetic paths: more volatility never saves a hold without a stop; paths are reproducible."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

import backtester as bt
from backtester.survival.paths import bootstrap_study
from tests.property.strategies import _drawn, examples

FREE: dict[str, Any] = {"taker_fee": 0.0, "maker_fee": 0.0, "slippage": 0.0, "funding": False}


@st.composite
def zero_mean_markets(draw: Any) -> bt.Market:
    # drawn log bodies and their negatives (mean 0, no gaps) and drawn wicks; mark = last
    half = draw(st.integers(24, 72))
    vol = draw(st.sampled_from([0.002, 0.01, 0.03]))
    moves = _drawn(draw, half, -4.0, 4.0) * vol
    body = np.concatenate([moves, -moves[::-1]])
    wicks = _drawn(draw, 2 * body.size, 0.0, 3.0).reshape(2, body.size) * vol
    log_open = math.log(100.0) + np.r_[0.0, np.cumsum(body)[:-1]]
    o, c = np.exp(log_open), np.exp(log_open + body)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-06-01", periods=body.size, freq="1h", tz="UTC"),
            "open": o,
            "high": np.maximum(o, c) * np.exp(wicks[0]),
            "low": np.minimum(o, c) * np.exp(-wicks[1]),
            "close": c,
            "volume": 1.0,
        }
    )
    return bt.Market.from_frames(frame, mark="last", symbol="BTC/USDT:USDT", timeframe="1h")


@examples(0.3)
@given(
    market=zero_mean_markets(),
    scale=st.floats(1.01, 3.0),
    seed=st.integers(0, 2**32 - 1),
    leverage=st.sampled_from([2.0, 5.0, 10.0, 25.0, 50.0]),
    block=st.sampled_from(["1h", "3h", "12h"]),
)
def test_more_volatility_never_saves_a_hold_without_a_stop(
    market: bt.Market, scale: float, seed: int, leverage: float, block: str
) -> None:
    """With the same blocks, every hold without a stop liquidated at vol_scale 1 is also
    liquidated at vol_scale > 1, so survival never rises (zero-mean bars: the stretch scales
    every log level relative to the entry by vol_scale; nothing is censored early, so
    Kaplan–Meier is 1 - liquidated / entries)."""
    kw: dict[str, Any] = {
        "length": "2D",
        "seed": seed,
        "mean_block": block,
        "side": "both",
        "leverage": (leverage,),
        "horizon": "12h",
        "entry_every": "12h",  # 4 holds per path, each followed to the horizon (no censoring)
        "n_boot": 5,
        **FREE,
    }
    calm = bootstrap_study(market, 3, **kw)
    hot = bootstrap_study(market, 3, vol_scale=scale, **kw)
    assert np.all(hot.events[calm.events])
    assert np.all(hot.table()["survival"].to_numpy() <= calm.table()["survival"].to_numpy())


@examples(0.3)
@given(market=zero_mean_markets(), seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4))
def test_paths_are_bit_identical_for_a_seed(market: bt.Market, seed: int, n: int) -> None:
    """Two calls with one seed give bit-identical paths, and fewer paths are a prefix of more."""
    a = bt.bootstrap_paths(market, n + 1, seed=seed, mean_block="2h", vol_scale=1.7)
    b = bt.bootstrap_paths(market, n, seed=seed, mean_block="2h", vol_scale=1.7)
    for x, y in zip(a, b, strict=False):
        for name in ("ts_ns", "open", "high", "low", "close", "mark_low", "funding_rate"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    assert a[0].open[0] == market.open[0]
