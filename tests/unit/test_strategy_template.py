"""Look-ahead test template for strategies (from docs/writing-a-strategy.md).

Copy this file next to your strategy, point ``STRATEGIES`` at your module, and run pytest. The
test changes every bar after a cut (prices and funding) and asserts that every signal up to and
including the cut stays the same: a signal seen at the close of bar i may use bars 0..i only.

This module is also the "momentum" example strategy of the guide (PARAMS + signals below), so
``name = "tests/unit/test_strategy_template.py"`` (its file) works in a sweep config.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest

import backtester as bt
from backtester import strategies
from backtester.errors import ConfigError

# ---------------------------------------------------------------- the example strategy (momentum)

PARAMS: dict[str, list[int]] = {"lookback": [24, 72, 168]}


def signals(market: bt.Market, grid: bt.ParamGrid) -> bt.Signals:
    """Go long when the close is above the close ``lookback`` bars ago, short when below."""
    close = market.close
    lookbacks = grid.values("lookback")
    long_entries = np.zeros((market.n_bars, len(lookbacks)), dtype=np.bool_)
    short_entries = np.zeros_like(long_entries)
    for col, lookback in enumerate(lookbacks):
        if not isinstance(lookback, int) or lookback < 1:
            raise ConfigError(f"momentum lookback must be an integer >= 1, was {lookback!r}")
        past = np.full(market.n_bars, np.nan)
        past[lookback:] = close[:-lookback]  # close[i - lookback]: only the past
        long_entries[:, col] = close > past
        short_entries[:, col] = close < past
    return bt.Signals(long_entries, short_entries, short_entries, long_entries)


# ---------------------------------------------------------------- the template

# the strategies to check: replace with [your_module]
STRATEGIES: list[ModuleType] = [
    *(strategies.get(name) for name in strategies.available()),
    __import__(__name__, fromlist=["signals"]),
]
CUTS = (200, 500, 900)  # last bar kept; every later bar is changed
SIGNAL_FIELDS = ("long_entries", "long_exits", "short_entries", "short_exits")


@pytest.fixture(scope="module")
def market() -> bt.Market:
    # 1,000 real hourly bars with mark prices and funding events
    full = bt.load_market("BTC/USDT:USDT", start="2024-01-01", end="2024-03-01")
    return full.slice(full.index[0], full.index[999])


def change_future(market: bt.Market, cut: int, seed: int = 0) -> bt.Market:
    """Return ``market`` with every bar after ``cut`` rescaled (a jump to half the price for an
    even ``seed``, double for an odd one, then a random walk) and every later funding rate flipped
    and tripled; bars 0..cut are untouched and every bar stays valid."""
    rng = np.random.default_rng(seed)
    jump = 0.5 if seed % 2 == 0 else 2.0
    factor = np.ones(market.n_bars)
    walk = np.cumsum(rng.normal(0.0, 0.05, market.n_bars - cut - 1))
    factor[cut + 1 :] = jump * np.exp(walk)
    changes: dict[str, Any] = {
        name: getattr(market, name) * factor
        for name in (
            "open",
            "high",
            "low",
            "close",
            "mark_open",
            "mark_high",
            "mark_low",
            "mark_close",
        )
    }
    changes["volume"] = market.volume * factor[::-1]
    rates = market.funding_rate.copy()
    later = market.funding_ts_ns >= market.ts_ns[cut + 1]
    rates[later] = -3.0 * rates[later] + 1e-4
    changes["funding_rate"] = rates
    return dataclasses.replace(market, **changes)


def assert_no_look_ahead(strategy: Any, market: bt.Market, cut: int) -> None:
    """Assert that ``strategy``'s signals up to bar ``cut`` do not depend on later bars."""
    grid = bt.ParamGrid.product(**strategy.PARAMS)
    before = strategy.signals(market, grid)
    for seed in (0, 1):  # the future falls, then rises: a peek in either direction shows
        after = strategy.signals(change_future(market, cut, seed), grid)
        for name in SIGNAL_FIELDS:
            np.testing.assert_array_equal(
                getattr(before, name)[: cut + 1],
                getattr(after, name)[: cut + 1],
                err_msg=f"{strategy.__name__}.{name} up to bar {cut} changed with future bars",
            )


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.__name__.rsplit(".", 1)[-1])
def test_signals_do_not_look_ahead(strategy: Any, market: bt.Market, cut: int) -> None:
    assert_no_look_ahead(strategy, market, cut)


# ---------------------------------------------------------------- the template can fail


def peeking_signals(market: bt.Market, grid: bt.ParamGrid) -> bt.Signals:
    # buys when the NEXT close is higher: look-ahead the template must catch
    n_cols = grid.n_cols
    up = np.zeros((market.n_bars, n_cols), dtype=np.bool_)
    up[:-1] = (market.close[1:] > market.close[:-1])[:, None]
    return bt.Signals(up, ~up, None, None)


def test_template_catches_a_peeking_strategy(market: bt.Market) -> None:
    peeking = SimpleNamespace(__name__="peeking", PARAMS={"x": [1]}, signals=peeking_signals)
    with pytest.raises(AssertionError, match=r"peeking\.long_entries up to bar 500 changed"):
        assert_no_look_ahead(peeking, market, 500)


def test_changed_market_keeps_the_past(market: bt.Market) -> None:
    # bars 0..500 identical, bar 501 on differs; the changed market is a valid Market
    changed = change_future(market, 500)
    np.testing.assert_array_equal(changed.close[:501], market.close[:501])
    assert not np.array_equal(changed.close[501:], market.close[501:])
    assert changed.n_bars == market.n_bars


def test_example_strategy_sweeps_from_a_config(tmp_path: Path) -> None:
    # the guide's momentum module, swept by its file path with the batch runner
    config = {
        "market": {"symbols": ["BTC/USDT:USDT"], "start": "2024-06-01", "end": "2024-08-01"},
        "strategy": {"name": __file__},
        "engine": {"grid": {"leverage": [1, 5]}},
    }
    run = bt.run_config(config, out=tmp_path / "momentum", workers=1)
    assert len(run.table) == 6  # 3 lookbacks x 2 leverages
    assert list(run.table["lookback"]) == [24, 24, 72, 72, 168, 168]
