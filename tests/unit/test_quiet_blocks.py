"""The quiet loop's block skip (kernel._quiet_blocks_nb) changes no result, bit for bit.

A long run of quiet bars passes a block of ``QUIET_BLOCK`` bars at once when the block's price
extremes (``kernel.bar_extremes``) show that no bar of it could trigger or set a statistic. The
engine without extremes (an empty array: every bar stepped one by one, as before the skip) is
the judge: every output of ``run_entries`` must be equal to the last bit, over markets made to
hit the edges (price ties on a coarse tick, trends that set new peaks, crashes that liquidate)
and settings that use every test of the skip (both sides, stops on last and mark, take-profit,
trailing stops, cross margin, a ruin threshold). A market whose extremes lie (every block looks
quiet) must change the results: the kernel does read them.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backtester as bt
from backtester.engine import kernel
from backtester.engine import run as run_mod
from backtester.engine.enums import ExitReason, Stat


def _market(seed: int, n_bars: int, vol: float, drift: float, tick: float, crash: bool) -> Any:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-03-01", periods=n_bars, freq="1min", tz="UTC")
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(drift, vol, n_bars)))
    if crash:  # a 25 % fall over 20 bars a third of the way in, then recovery
        k = n_bars // 3
        close[k : k + 20] *= np.linspace(1.0, 0.75, 20)
        close[k + 20 :] *= 0.75
    if tick > 0.0:  # a coarse tick: many equal prices (ties with peaks and lows)
        close = np.maximum(np.round(close / tick) * tick, tick)
    open_ = np.concatenate([[close[0]], close[:-1]])
    wig = np.abs(rng.normal(0.0, vol / 2.0, (2, n_bars)))
    high = np.maximum(open_, close) * (1.0 + wig[0])
    low = np.minimum(open_, close) * (1.0 - wig[1])
    # last-price wicks on 1 % of bars (the mark does not follow them): stops and take-profits
    # reached inside a block whose closes set no new peak or low
    spikes = rng.random((2, n_bars)) < 0.01
    high = np.where(spikes[0], high * (1.0 + rng.uniform(0.0, 0.03, n_bars)), high)
    low = np.where(spikes[1], low * (1.0 - rng.uniform(0.0, 0.03, n_bars)), low)
    if tick > 0.0:
        high = np.ceil(high / tick) * tick
        low = np.maximum(np.floor(low / tick) * tick, tick)
    basis = 1.0 + rng.normal(0.0, vol / 8.0, n_bars)
    bars = pd.DataFrame(
        {"timestamp": ts, "open": open_, "high": high, "low": low, "close": close, "volume": 1.0}
    )
    mark = bars.copy()
    smooth_high = np.maximum(open_, close) * (1.0 + wig[0])
    smooth_low = np.minimum(open_, close) * (1.0 - wig[1])
    for c, v in (("open", open_), ("high", smooth_high), ("low", smooth_low), ("close", close)):
        mark[c] = v * basis
    mark["high"] = np.maximum.reduce([mark["open"], mark["high"], mark["close"]])
    mark["low"] = np.minimum.reduce([mark["open"], mark["low"], mark["close"]])
    f_ts = ts[::480]
    funding = pd.DataFrame(
        {"timestamp": f_ts, "funding_rate": rng.normal(0.0001, 0.0003, len(f_ts))}
    )
    return bt.Market.from_frames(
        bars,
        mark=mark,
        funding=funding,
        symbol="BTC/USDT:USDT",
        exchange="binanceusdm",
        timeframe="1m",
    )


GRID = bt.ParamGrid.product(
    side=["long", "short"],
    leverage=[1, 3, 10, 50],
    stop_loss=[None, 0.004, 0.03],
    take_profit=[None, 0.01],
    trailing_stop=[None, 0.01],
    stop_trigger=["last", "mark"],
)


def _run(market: Any, grid: Any, config: Any, monkeypatch: Any, ext: Any) -> Any:
    # ext: None = the engine's own extremes; else a function of prices replacing them. Returns
    # the outcomes and the kernel's whole statistics rows (the lowest liquidation distance, the
    # drawdown, bars in the market, ... that EntryOutcomes does not carry).
    stats: list[np.ndarray] = []
    run = run_mod._Simulation.run

    def recording(self: Any, *args: Any, **kw: Any) -> Any:
        out = run(self, *args, **kw)
        stats.append(out[0])
        return out

    with monkeypatch.context() as mp:
        mp.setattr(run_mod._Simulation, "run", recording)
        if ext is not None:
            mp.setattr(kernel, "bar_extremes", ext)
        n = market.n_bars
        entries = np.array([0, 5, 31, 32, 200, n // 3 - 40], dtype=np.int64)
        out = bt.run_entries(
            market,
            grid,
            entry_idx=entries[entries < n - 50],
            horizon_bars=n,
            config=config,
            checkpoints=[31, 32, 33, 500, 1000],
        )
    (kernel_stats,) = stats
    return out, kernel_stats


HONEST_EXTREMES = kernel.bar_extremes


def _no_blocks(prices: np.ndarray) -> np.ndarray:
    return HONEST_EXTREMES(prices[:0])  # no rows: every bar stepped


def _assert_same(a: Any, b: Any) -> None:
    (a, a_stats), (b, b_stats) = a, b
    pairs = [
        (f.name, getattr(a, f.name), getattr(b, f.name))
        for f in fields(a)
        if isinstance(getattr(a, f.name), np.ndarray)
    ]
    pairs += [
        (f"stats[:, {stat.name}]", a_stats[:, stat], b_stats[:, stat])
        for stat in Stat
        if stat != Stat.N
    ]
    for name, x, y in pairs:
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape, name
        if x.dtype.kind == "f":
            x, y = x.view(np.uint64), y.view(np.uint64)  # bits, so -0.0 != 0.0 and NaN == NaN
        assert np.array_equal(x, y), name


def test_bar_extremes_are_the_block_min_and_max() -> None:
    rng = np.random.default_rng(3)
    prices = rng.normal(size=(kernel.QUIET_BLOCK * 3 + 5, 8))
    ext = kernel.bar_extremes(prices)
    assert ext.shape == (3, 16)  # the 5 bars after the last full block have no row
    for k in range(3):
        rows = prices[k * kernel.QUIET_BLOCK : (k + 1) * kernel.QUIET_BLOCK]
        for c in range(8):
            assert ext[k, c] == min(rows[:, c])
            assert ext[k, 8 + c] == max(rows[:, c])
    assert kernel.bar_extremes(prices[: kernel.QUIET_BLOCK - 1]).shape == (0, 16)


@pytest.mark.parametrize(
    ("seed", "vol", "drift", "tick", "crash"),
    [
        (1, 0.0008, 0.0, 0.0, False),  # the benchmark's kind of path
        (2, 0.0003, 0.00005, 0.0, False),  # a trend: new peaks in many blocks
        (3, 0.0005, 0.0, 10.0, False),  # a coarse tick: ties everywhere
        (4, 0.0010, 0.0, 0.0, True),  # a crash: liquidations, stops and ruin
    ],
)
def test_block_skip_changes_no_output(
    seed: int, vol: float, drift: float, tick: float, crash: bool, monkeypatch: Any
) -> None:
    market = _market(seed, 6_000, vol, drift, tick, crash)
    for config in (
        bt.RunConfig(taker_fee=0.0004),
        bt.RunConfig(margin_mode="cross", ruin_threshold=0.6, initial_cash=1_000),
    ):
        with_blocks = _run(market, GRID, config, monkeypatch, None)
        per_bar = _run(market, GRID, config, monkeypatch, _no_blocks)
        _assert_same(with_blocks, per_bar)


def test_the_kernel_reads_the_extremes(monkeypatch: Any) -> None:
    # extremes that make every block look quiet skip the crash's liquidations: different output
    market = _market(4, 6_000, 0.0010, 0.0, 0.0, True)
    grid = bt.ParamGrid.product(side=["long"], leverage=[10, 50])

    def lying(prices: np.ndarray) -> np.ndarray:
        ext = HONEST_EXTREMES(prices)
        ext[:, :8] = np.inf  # every minimum above any level
        ext[:, 8:] = -np.inf  # every maximum below
        return ext

    config = bt.RunConfig()
    honest, _ = _run(market, grid, config, monkeypatch, None)
    lied, _ = _run(market, grid, config, monkeypatch, lying)
    assert (honest.reason == int(ExitReason.LIQUIDATION)).any()
    assert not np.array_equal(honest.exit_idx, lied.exit_idx)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    vol=st.sampled_from([0.0002, 0.0006, 0.0015]),
    drift=st.sampled_from([-0.0001, 0.0, 0.0001]),
    tick=st.sampled_from([0.0, 1.0, 25.0]),
    leverage=st.sampled_from([1.0, 2.0, 5.0, 20.0, 75.0]),
    stop=st.sampled_from([None, 0.002, 0.01, 0.05]),
    tp=st.sampled_from([None, 0.005, 0.05]),
    trail=st.sampled_from([None, 0.004, 0.02]),
    trigger=st.sampled_from(["last", "mark"]),
    mode=st.sampled_from(["isolated", "cross"]),
)
def test_block_skip_property(
    seed: int,
    vol: float,
    drift: float,
    tick: float,
    leverage: float,
    stop: float | None,
    tp: float | None,
    trail: float | None,
    trigger: str,
    mode: str,
) -> None:
    market = _market(seed, 1_500, vol, drift, tick, seed % 3 == 0)
    grid = bt.ParamGrid.product(side=["long", "short"])
    config = bt.RunConfig(
        leverage=leverage,
        stop_loss=stop,
        take_profit=tp,
        trailing_stop=trail,
        stop_trigger=trigger,
        margin_mode=mode,
        ruin_threshold=0.5 if seed % 2 else 0.0,
    )
    mp = pytest.MonkeyPatch()
    try:
        _assert_same(
            _run(market, grid, config, mp, None), _run(market, grid, config, mp, _no_blocks)
        )
    finally:
        mp.undo()
