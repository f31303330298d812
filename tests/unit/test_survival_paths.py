"""survival_study over synthetic paths: pooling, path-cluster intervals, streaming, GBM check."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import backtester as bt
from backtester.survival.paths import PathsStudy, bootstrap_study, scenario_table
from backtester.survival.stats import cluster_bootstrap_km, km_weighted
from tests.unit.test_survival_helpers import gbm_market

BGK = 0.5826  # Broadie–Glasserman–Kou: -zeta(1/2) / sqrt(2 pi)
FREE: dict[str, Any] = {
    "taker_fee": 0.0,
    "maker_fee": 0.0,
    "slippage": 0.0,
    "funding": False,
    "liquidation_fee_rate": 0.0,
}


def test_cluster_bootstrap_equals_weighted_km_with_path_counts() -> None:
    # Arrange: 300 subjects in 7 clusters
    rng = np.random.default_rng(0)
    d = rng.integers(1, 20, 300)
    e = rng.random(300) < 0.3
    c = rng.integers(0, 7, 300)
    times = np.array([0, 5, 10, 25])
    # Act
    got = cluster_bootstrap_km(d, e, c, n_clusters=7, times=times, n_boot=4, seed=1)
    # Assert: the same draws (seed 1, integers(0, 7, (4, 7))) as case weights of km_weighted
    draws = np.random.default_rng(1).integers(0, 7, size=(4, 7))
    w = np.stack([np.bincount(r, minlength=7)[c] for r in draws]).astype(float)
    want = np.stack([km_weighted(d, e, w, at=int(t)) for t in times], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def source(btc_1h: bt.Market) -> bt.Market:
    return btc_1h.slice("2022-01-01", "2023-01-01")


def test_one_path_pools_to_its_own_study(source: bt.Market) -> None:
    # Arrange
    (path,) = bt.bootstrap_paths(source, 1, length="120D", seed=3)
    # Act
    alone = bt.survival_study(path, leverage=(5, 20), horizon="10D", n_boot=50)
    pooled = bt.survival_study([path], leverage=(5, 20), horizon="10D", n_boot=50)
    # Assert: same outcomes and point estimates; the pooled one knows its paths
    assert isinstance(pooled, PathsStudy) and pooled.n_paths == 1
    np.testing.assert_array_equal(pooled.reason, alone.reason)
    np.testing.assert_array_equal(pooled.table()["survival"], alone.table()["survival"])


def test_paths_pool_entries_and_narrow_the_interval(source: bt.Market) -> None:
    # Arrange
    history = bt.survival_study(source, leverage=(5, 20), horizon="10D", n_boot=200)
    paths = bt.bootstrap_paths(source, 40, length="120D", seed=1)
    # Act
    study = bt.survival_study(paths, leverage=(5, 20), horizon="10D", n_boot=200)
    assert isinstance(study, PathsStudy)
    table = study.table()
    # Assert: 40 paths x 120 daily entries, one table of the usual columns
    assert study.n_entries == 40 * 120
    assert list(table.columns) == list(history.table().columns)
    assert table["n_entries"].tolist() == [4800, 4800]
    np.testing.assert_array_equal(study.path_id, np.repeat(np.arange(40), 120))
    # 40 x 120 days of paths against 365 days of history: narrower intervals
    width = (table["ci_high"] - table["ci_low"]).to_numpy()
    hist_width = (history.table()["ci_high"] - history.table()["ci_low"]).to_numpy()
    assert np.all(width < hist_width)
    assert study.recipe is not None and "40 synthetic paths" in study.table_metadata()["paths"]
    assert study.outcomes()["path"].max() == 39
    assert study.run_info()["paths"]["n_paths"] == 40


def test_cluster_interval_is_wider_than_treating_entries_as_independent(
    source: bt.Market,
) -> None:
    # overlapping 10-day holds inside a path move together: the cluster bootstrap must be
    # wider than Greenwood's interval, which treats every entry as independent
    study = bt.survival_study(
        bt.bootstrap_paths(source, 30, length="60D", seed=2),
        leverage=(10,),
        horizon="10D",
        n_boot=300,
    )
    row = study.table().iloc[0]
    assert row["ci_high"] - row["ci_low"] > 1.5 * (
        row["ci_high_greenwood"] - row["ci_low_greenwood"]
    )


def test_streamed_study_equals_the_list(source: bt.Market) -> None:
    # Arrange / Act: batches of 3 paths against the whole list
    listed = bt.survival_study(
        bt.bootstrap_paths(source, 7, length="40D", seed=4), leverage=(20,), horizon="5D", seed=4
    )
    streamed = bootstrap_study(
        source, 7, length="40D", seed=4, batch=3, leverage=(20,), horizon="5D"
    )
    # Assert
    np.testing.assert_array_equal(streamed.exit_idx, listed.exit_idx)
    pd.testing.assert_frame_equal(streamed.table(), listed.table())


def test_vol_scale_above_one_never_raises_survival_without_stops(source: bt.Market) -> None:
    # same seed -> same blocks; more volatile paths liquidate holds without a stop more often
    kw: dict[str, Any] = {
        "length": "120D",
        "seed": 5,
        "leverage": (3, 10, 50),
        "horizon": "10D",
        "n_boot": 20,
    }
    base = bootstrap_study(source, 20, side="both", **kw).table()["survival"].to_numpy()
    for scale in (1.25, 1.5, 2.0):
        hot = bootstrap_study(source, 20, side="both", vol_scale=scale, **kw)
        assert np.all(hot.table()["survival"].to_numpy() <= base + 1e-12), scale


def test_scenario_table_puts_history_next_to_paths(source: bt.Market) -> None:
    # stops (None, 0.05): the no-stop rows are NaN in the index and must still match
    grid: dict[str, Any] = {"leverage": (5, 20), "stop_loss": (None, 0.05), "horizon": "10D"}
    history = bt.survival_study(source, n_boot=50, **grid)
    paths = bootstrap_study(source, 5, length="60D", n_boot=50, **grid)
    frame = scenario_table(history, [("bootstrap", paths)])
    assert list(frame.columns) == [
        "survival_history",
        "ci_low_history",
        "ci_high_history",
        "survival_bootstrap",
        "ci_low_bootstrap",
        "ci_high_bootstrap",
    ]
    np.testing.assert_array_equal(frame["survival_history"], history.table()["survival"])
    assert "5 synthetic paths" in frame.attrs["scenarios"]["bootstrap"]
    other = bt.survival_study(source, leverage=(5,), horizon="10D", n_boot=50)
    with pytest.raises(bt.ConfigError, match="other settings than the history study"):
        scenario_table(history, [("x", other)])


def test_bad_path_lists_are_refused(source: bt.Market) -> None:
    a = bt.bootstrap_paths(source, 1, length="30D")
    b = bt.bootstrap_paths(source, 1, length="40D")
    with pytest.raises(bt.ConfigError, match="paths must hold at least one market"):
        bt.survival_study([])
    with pytest.raises(bt.ConfigError, match=r"paths must share one clock .*paths\[1\]"):
        bt.survival_study([a[0], b[0]], horizon="5D")
    with pytest.raises(bt.ConfigError, match=r"paths\[1\] must be a Market like paths\[0\]"):
        bt.survival_study([a[0], "BTC"], horizon="5D")  # type: ignore[list-item]
    study = bt.survival_study(a, horizon="5D", n_boot=10)
    with pytest.raises(bt.ConfigError, match="not defined over synthetic paths"):
        study.comparisons()


# ------------------------------------------------------------------ GBM: closed form


SIGMA = 1.0 / np.sqrt(365 * 24 * 60)  # 100 % a year, per 1-minute step
HORIZON_H = 24 * 5


def _first_passage(side: str, leverage: float, mmr: float, nu: float, sigma: float) -> float:
    # P(no liquidation within the horizon) for log price nu t + sigma W_t monitored every
    # minute: continuous formula with the barrier shifted away by BGK sigma sqrt(1 minute)
    t = HORIZON_H * 60
    s = sigma * np.sqrt(t)
    if side == "long":
        b = np.log((1 - 1 / leverage) / (1 - mmr)) - BGK * sigma
        return float(
            norm.cdf((nu * t - b) / s) - np.exp(2 * nu * b / sigma**2) * norm.cdf((b + nu * t) / s)
        )
    b = np.log((1 + 1 / leverage) / (1 + mmr)) + BGK * sigma
    return float(
        norm.cdf((b - nu * t) / s) - np.exp(2 * nu * b / sigma**2) * norm.cdf((-b - nu * t) / s)
    )


def test_bootstrap_survival_matches_first_passage_on_gbm() -> None:
    # Arrange: a long GBM of 1-minute steps in 1h bars; the bootstrap resamples its bars, so
    # its paths are GBM with the source's realised drift and volatility (estimated from bars)
    source = gbm_market(n_hours=24 * 2000, sigma_per_minute=SIGMA, seed=20240601)
    r = np.log(source.close / source.open)
    nu, sigma = float(np.mean(r)) / 60, float(np.std(r)) / np.sqrt(60)
    # Act: 200 paths of 50 days, entries one horizon apart (independent within a path)
    study = bootstrap_study(
        source,
        200,
        length="50D",
        seed=7,
        side="both",
        leverage=(5, 10, 20),
        horizon="5D",
        entry_every="5D",
        maint_margin_rate=0.005,
        n_boot=50,
        **FREE,
    )
    # Assert: within 4 Monte Carlo standard errors (+ 0.002 for the estimated sigma and drift)
    for row in study.table().reset_index().itertuples(index=False):
        want = _first_passage(row.side, row.leverage, 0.005, nu, sigma)
        se = np.sqrt(want * (1 - want) / row.n_entries)
        assert row.n_entries == 200 * 10
        assert abs(row.survival - want) < 4 * se + 2e-3, (row.side, row.leverage, want)
        assert row.ci_low <= want + 2e-3 and want - 2e-3 <= row.ci_high, (row.side, row.leverage)
