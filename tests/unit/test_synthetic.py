"""bt.bootstrap_paths / bt.stress_paths: resampling of whole bars, clock, seeds, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

import backtester as bt
from backtester.synthetic import PathRecipe, worst_days

HOUR = "1h"


def _market(
    body: np.ndarray,
    *,
    symbol: str = "BTC/USDT:USDT",
    funding_every: int = 1,
    basis: float = 0.001,
    start: str = "2024-01-01",
) -> bt.Market:
    # bars with the given log bodies, no gaps, wicks of 0.2 % beyond the body, a constant mark
    # basis, and one funding event per `funding_every` bars at 30 minutes in, rate = bar / 1e6
    n = body.size
    log_open = np.log(100.0) + np.r_[0.0, np.cumsum(body)[:-1]]
    o, c = np.exp(log_open), np.exp(log_open + body)
    h = np.maximum(o, c) * 1.002
    lo = np.minimum(o, c) / 1.002
    ts = pd.date_range(start, periods=n, freq=HOUR, tz="UTC")
    ohlcv = pd.DataFrame({"timestamp": ts, "open": o, "high": h, "low": lo, "close": c})
    ohlcv["volume"] = np.arange(n, dtype=float)
    k = np.arange(0, n, funding_every)
    mark = ohlcv[["timestamp", "open", "high", "low", "close"]].copy()
    mark[["open", "high", "low", "close"]] *= np.exp(basis)
    funding = pd.DataFrame({"timestamp": ts[k] + pd.Timedelta("30min"), "funding_rate": k / 1e6})
    return bt.Market.from_frames(ohlcv, mark=mark, funding=funding, symbol=symbol, timeframe=HOUR)


def _bodies(m: bt.Market) -> np.ndarray:
    out: np.ndarray = np.log(m.close / m.open)
    return out


def _source_index(source: bt.Market, path: bt.Market) -> np.ndarray:
    # the source bar of every path bar, found through the (unique) volume of each source bar
    return path.volume.astype(np.int64)


def test_paths_keep_whole_bars_funding_and_the_clock() -> None:
    # Arrange: unique bodies per bar, volume = bar number (the key back to the source bar)
    rng = np.random.default_rng(7)
    source = _market(rng.normal(0, 0.01, 500))
    # Act
    paths = bt.bootstrap_paths(source, 3, mean_block="10h", length=300, seed=5)
    # Assert
    assert isinstance(paths, list) and len(paths) == 3
    for p in paths:
        src = _source_index(source, p)
        np.testing.assert_array_equal(p.ts_ns, source.ts_ns[0] + np.arange(300) * 3_600 * 10**9)
        assert p.open[0] == source.open[0]  # starts at the original first open
        np.testing.assert_allclose(_bodies(p), _bodies(source)[src], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            np.log(p.high / p.open), np.log(source.high / source.open)[src], atol=1e-12
        )
        np.testing.assert_allclose(
            np.log(p.low / p.open), np.log(source.low / source.open)[src], atol=1e-12
        )
        np.testing.assert_allclose(np.log(p.mark_open / p.open), 0.001, atol=1e-12)
        np.testing.assert_allclose(
            np.log(p.mark_low / p.mark_open),
            np.log(source.mark_low / source.mark_open)[src],
            atol=1e-12,
        )
        # no gaps in the source -> each path open is the previous path close
        np.testing.assert_allclose(p.open[1:], p.close[:-1], rtol=1e-12)
        # funding: one event per path bar, 30 min in, with its source bar's rate
        np.testing.assert_array_equal(p.funding_ts_ns, p.ts_ns + 1_800 * 10**9)
        np.testing.assert_allclose(p.funding_rate, src / 1e6)
        # blocks: consecutive source bars (wrapping) except at block starts; blocks average 10
        step = np.diff(src) % source.n_bars
        n_blocks = 1 + int((step != 1).sum())
        assert 10 <= n_blocks <= 60  # ~30 blocks of mean 10 bars in 300 bars


def test_funding_events_move_with_their_bars() -> None:
    # Arrange: funding every 8th bar only
    source = _market(np.full(240, 0.001), funding_every=8)
    # Act
    (p,) = bt.bootstrap_paths(source, 1, mean_block="5h", seed=3)
    # Assert: a path bar has an event exactly when its source bar had one
    src = _source_index(source, p)
    has = src % 8 == 0
    np.testing.assert_array_equal(p.funding_ts_ns, p.ts_ns[has] + 1_800 * 10**9)
    np.testing.assert_allclose(p.funding_rate, src[has] / 1e6)


def test_circular_blocks_have_fixed_length() -> None:
    source = _market(np.random.default_rng(1).normal(0, 0.01, 200))
    (p,) = bt.bootstrap_paths(source, 1, mean_block="20h", method="circular", length=100, seed=2)
    src = _source_index(source, p)
    starts = np.flatnonzero(np.r_[True, (np.diff(src) % 200) != 1])
    # every block starts at a multiple of 20 bars (two blocks may chain by chance, never split)
    assert set(starts.tolist()) <= set(range(0, 100, 20))


def test_market_set_blocks_are_joint() -> None:
    # Arrange: two symbols with different bodies; volume = bar number in both
    rng = np.random.default_rng(11)
    btc = _market(rng.normal(0, 0.01, 300))
    eth = _market(rng.normal(0, 0.02, 300), symbol="ETH/USDT:USDT")
    ms = bt.MarketSet.from_markets([btc, eth])
    # Act
    paths = bt.bootstrap_paths(ms, 2, mean_block="6h", seed=9)
    # Assert: in every path bar both symbols come from the same source bar
    for p in paths:
        assert isinstance(p, bt.MarketSet) and p.symbols == ms.symbols
        a, b = p["BTC/USDT:USDT"], p["ETH/USDT:USDT"]
        np.testing.assert_array_equal(a.volume, b.volume)
        src = a.volume.astype(np.int64)
        np.testing.assert_allclose(_bodies(b), _bodies(eth)[src], atol=1e-12)
        assert b.open[0] == eth.open[0]


def test_paths_are_bit_identical_per_seed_and_a_prefix_of_more_paths() -> None:
    source = _market(np.random.default_rng(3).normal(0, 0.01, 400))
    a = bt.bootstrap_paths(source, 4, seed=12, vol_scale=1.3)
    b = bt.bootstrap_paths(source, 4, seed=12, vol_scale=1.3)
    c = bt.bootstrap_paths(source, 2, seed=12, vol_scale=1.3)
    d = bt.bootstrap_paths(source, 4, seed=13, vol_scale=1.3)
    assert [p.fingerprint() for p in a] == [p.fingerprint() for p in b]
    assert [p.fingerprint() for p in a[:2]] == [p.fingerprint() for p in c]
    assert len({p.fingerprint() for p in a} | {p.fingerprint() for p in d}) == 8


def test_vol_scale_stretches_returns_around_their_mean() -> None:
    # Arrange: bodies with mean 0.001
    rng = np.random.default_rng(5)
    body = 0.001 + rng.normal(0, 0.01, 400)
    source = _market(body)
    # Act: same seed -> same source bars
    (one,) = bt.bootstrap_paths(source, 1, seed=4)
    (two,) = bt.bootstrap_paths(source, 1, seed=4, vol_scale=2.0)
    # Assert: body' = mean + 2 (body - mean); wick beyond the body doubled (0.2 % -> ~0.4 %)
    src = _source_index(source, one)
    mean = float(np.mean(_bodies(source)))
    np.testing.assert_allclose(_bodies(two), mean + 2.0 * (_bodies(source)[src] - mean), atol=1e-12)
    up = np.log(two.high / np.maximum(two.open, two.close))
    np.testing.assert_allclose(up, 2.0 * np.log(1.002), atol=1e-12)
    assert np.all(two.high >= np.maximum(two.open, two.close))
    assert np.all(two.low <= np.minimum(two.open, two.close))


def test_bar_returns_keep_their_distribution() -> None:
    # Arrange: fat-tailed bar returns
    rng = np.random.default_rng(21)
    source = _market(rng.standard_t(3, 5000) * 0.005)
    # Act
    paths = bt.bootstrap_paths(source, 20, mean_block="1D", seed=0)
    pooled = np.concatenate([_bodies(p) for p in paths])
    # Assert: two-sample KS does not tell them apart; a normal of the same variance is told
    assert ks_2samp(pooled, _bodies(source)).pvalue > 0.01
    normal = rng.normal(0, np.std(_bodies(source)), pooled.size)
    assert ks_2samp(normal, _bodies(source)).pvalue < 1e-6


def _acf_abs(x: np.ndarray, lag: int) -> float:
    a = np.abs(x) - np.mean(np.abs(x))
    return float(np.dot(a[:-lag], a[lag:]) / np.dot(a, a))


def test_autocorrelation_of_absolute_returns_survives_up_to_the_block() -> None:
    # Arrange: volatility clustering: log-vol an AR(1) with a half-life of ~70 bars
    rng = np.random.default_rng(8)
    n = 20_000
    logvol = np.zeros(n)
    for i in range(1, n):
        logvol[i] = 0.99 * logvol[i - 1] + 0.1 * rng.normal()
    source = _market(0.005 * np.exp(logvol) * rng.normal(size=n))
    r = _bodies(source)
    # Act: blocks of mean 240 bars, and blocks of one bar (an i.i.d. shuffle)
    long_blocks = np.concatenate(
        [_bodies(p) for p in bt.bootstrap_paths(source, 5, mean_block="10D")]
    )
    shuffled = np.concatenate([_bodies(p) for p in bt.bootstrap_paths(source, 5, mean_block="1h")])
    # Assert: lags 1..24 (well inside a block) keep the source's ACF (it is ~0.2 here, damped by
    # the chance (1 - 1/240)^lag that a block ends in between); the shuffle loses it
    for lag in (1, 6, 12, 24):
        src_acf = _acf_abs(r, lag)
        assert src_acf > 0.1
        assert abs(_acf_abs(long_blocks, lag) - src_acf) < 0.2 * src_acf, lag
        assert abs(_acf_abs(shuffled, lag)) < 0.03, lag


def test_stress_paths_replay_the_worst_day() -> None:
    # Arrange: calm bars and one crash day (2024-01-05) of -3 % per hour
    body = np.full(24 * 20, 0.0005)
    body[24 * 4 : 24 * 5] = -0.03
    source = _market(body)
    # Act
    days = worst_days(source, 2)
    paths = bt.stress_paths(source, 3, n_worst=1, mean_block="2h", length="10D", seed=1)
    # Assert: the crash day is the worst (-72 % in log, high at its open -> move 0.72)
    assert days[0][0] == pd.Timestamp("2024-01-05", tz="UTC")
    assert days[0][1] == pytest.approx(24 * 0.03 + np.log(1.002), rel=1e-9)
    assert paths.recipe is not None and paths.recipe.stress_days == ("2024-01-05 (72.2%)",)
    for p in paths:
        src = _source_index(source, p)
        day = np.arange(24 * 4, 24 * 5)
        runs = [k for k in np.flatnonzero(src == day[0]) if np.array_equal(src[k : k + 24], day)]
        assert runs, "the crash day is replayed whole"


def test_recipe_says_how_the_paths_were_made() -> None:
    source = _market(np.full(100, 0.001))
    paths = bt.bootstrap_paths(source, 2, mean_block="5h", method="circular", vol_scale=1.5, seed=4)
    recipe = paths.recipe
    assert isinstance(recipe, PathRecipe)
    assert (recipe.n_paths, recipe.mean_block_bars, recipe.length_bars) == (2, 5, 100)
    text = recipe.describe()
    assert "circular block bootstrap" in text and "vol_scale 1.5" in text and "seed 4" in text
    assert recipe.to_dict()["source_sha256"] == source.fingerprint()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_paths": 0}, r"n_paths must be an int >= 1, was 0"),
        ({"n_paths": 2.5}, r"n_paths must be an int >= 1, was 2.5"),
        ({"method": "moving"}, r"method must be one of 'stationary', 'circular', was 'moving'"),
        ({"mean_block": "90min"}, r"mean_block must be a positive whole number of 1h bars"),
        ({"mean_block": "30D"}, r"mean_block '30D' \(720 bars\) is longer than the data"),
        ({"vol_scale": 0.0}, r"vol_scale must be a number in \(0, 10\], was 0.0"),
        ({"vol_scale": float("nan")}, r"vol_scale must be a number in \(0, 10\], was nan"),
        ({"length": 1}, r"length must be at least 2 bars, was 1"),
        ({"length": "soon"}, r"length must be a duration such as"),
        ({"seed": -1}, r"seed must be an int >= 0, was -1"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(kwargs: dict[str, object], message: str) -> None:
    source = _market(np.full(100, 0.001))
    n_paths = kwargs.pop("n_paths", 2)
    with pytest.raises(bt.ConfigError, match=message) as info:
        bt.bootstrap_paths(source, n_paths, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_bad_sources_are_refused() -> None:
    with pytest.raises(bt.ConfigError, match="market must be a backtester Market or MarketSet"):
        bt.bootstrap_paths("BTC", 2)  # type: ignore[arg-type]
    with pytest.raises(bt.ConfigError, match="n_worst must be an int >= 1, was 0"):
        bt.stress_paths(_market(np.full(100, 0.001)), 2, n_worst=0)


def test_stress_paths_share_the_bootstrap_blocks_of_their_seed() -> None:
    # the blocks are drawn before the replayed day: outside that day, stress path k is
    # bootstrap path k of the same seed (common random numbers between scenarios)
    body = np.random.default_rng(2).normal(0, 0.01, 24 * 20)
    body[24 * 6 : 24 * 7] *= 5  # the worst day
    source = _market(body)
    plain = bt.bootstrap_paths(source, 3, mean_block="3h", length="8D", seed=6)
    stressed = bt.stress_paths(source, 3, n_worst=1, mean_block="3h", length="8D", seed=6)
    for a, b in zip(plain, stressed, strict=True):
        same = a.volume == b.volume
        assert 1 <= int((~same).sum()) <= 24  # only bars of the replayed day differ
        assert same.sum() >= 24 * 7
