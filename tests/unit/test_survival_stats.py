"""Kaplan–Meier, block bootstrap, exact intervals and log-rank on tiny hand-checked inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from backtester.errors import ConfigError, ShapeError
from backtester.survival.stats import (
    block_bootstrap_counts,
    clopper_pearson,
    km_curve,
    km_estimate,
    km_weighted,
    logrank_p,
)

D = np.array([1, 2, 3, 5, 5, 8])
E = np.array([True, False, True, True, False, False])


def test_km_curve_hand_example() -> None:
    # Arrange: events at 1, 3, 5; censored at 2, 5, 8
    # S(1) = 5/6; S(3) = 5/6 * 3/4 = 0.625 (at risk 3,5,5,8); S(5) = 0.625 * 2/3 = 0.41667
    # Act
    times, surv = km_curve(D, E)
    # Assert
    np.testing.assert_array_equal(times, [0, 1, 3, 5])
    np.testing.assert_allclose(surv, [1.0, 5 / 6, 0.625, 0.625 * 2 / 3])


def test_km_estimate_matches_hand_example_and_median() -> None:
    # Arrange: from the curve above, S(8) = 0.41667; first time S <= 0.5 is t = 5
    # Act
    est = km_estimate(D, E, horizon=8)
    early = km_estimate(D, E, horizon=4)
    # Assert
    assert est.survival == pytest.approx(0.625 * 2 / 3)
    assert est.median == 5
    assert early.survival == pytest.approx(0.625)
    assert math.isnan(early.median)  # median 5 lies past the horizon 4
    assert est.ci_low < est.survival < est.ci_high


def test_km_equals_plain_fraction_without_censoring() -> None:
    # Arrange: 10 holds, all followed to the horizon 10; 3 liquidated (at 2, 4, 4), 7 survive
    # with no censoring before the horizon KM = 7/10 = 0.7
    d = np.array([2, 4, 4, 10, 10, 10, 10, 10, 10, 10])
    e = np.array([True, True, True] + [False] * 7)
    # Act / Assert
    assert km_estimate(d, e, horizon=10).survival == pytest.approx(0.7)
    assert km_weighted(d, e, np.ones((1, 10)), at=10)[0] == pytest.approx(0.7)


def test_km_weighted_equals_lifelines_on_repeated_data() -> None:
    # Arrange: random durations with ties and censoring; weights = integer replication counts
    rng = np.random.default_rng(1)
    d = rng.integers(1, 30, 200)
    e = rng.random(200) < 0.4
    w = rng.integers(0, 4, size=(5, 200)).astype(float)
    # Act
    got = km_weighted(d, e, w, at=20)
    # Assert: each row equals lifelines on the data set with subject i repeated w[r, i] times
    for r in range(5):
        rep = np.repeat(np.arange(200), w[r].astype(int))
        kmf = KaplanMeierFitter().fit(d[rep], e[rep])
        expected = float(kmf.survival_function_at_times(20).iloc[0])
        assert got[r] == pytest.approx(expected, rel=1e-12)


def test_km_weighted_no_events_and_empty_rows() -> None:
    # Arrange: nobody liquidated -> survival 1; a row with zero weights -> NaN
    d = np.array([3, 4])
    e = np.array([False, False])
    # Act
    got = km_weighted(d, e, np.array([[1.0, 1.0], [0.0, 0.0]]))
    # Assert
    assert got[0] == 1.0
    assert math.isnan(got[1])


def test_km_weighted_rejects_wrong_weight_shape() -> None:
    with pytest.raises(ShapeError, match="weights must have 2 columns"):
        km_weighted(np.array([1, 2]), np.array([True, False]), np.ones((3, 5)))


def test_shapes_are_checked() -> None:
    with pytest.raises(ShapeError, match="one length"):
        km_estimate(np.array([1, 2]), np.array([True]), horizon=3)


def test_block_bootstrap_counts_keep_size_and_blocks() -> None:
    # Arrange: 10 subjects in blocks of 5 -> 2 blocks per replicate, starts in [0, 5]
    # Act
    counts = block_bootstrap_counts(10, 5, n_boot=200, seed=7)
    again = block_bootstrap_counts(10, 5, n_boot=200, seed=7)
    # Assert: each replicate has 10 subjects; same seed -> same counts
    assert counts.shape == (200, 10)
    np.testing.assert_array_equal(counts.sum(axis=1), 10)
    np.testing.assert_array_equal(counts, again)
    # a replicate drawn from 2 blocks of 5 consecutive subjects covers between 5 and 10 of them
    covered = (counts > 0).sum(axis=1)
    assert covered.min() >= 5 and covered.max() <= 10


def test_block_bootstrap_rejects_bad_block() -> None:
    with pytest.raises(ConfigError, match="block_len must be >= 1, was 0"):
        block_bootstrap_counts(10, 0, n_boot=10, seed=0)


def test_clopper_pearson_known_values() -> None:
    # Arrange: 0 of 10 -> upper = 1 - 0.025**(1/10) = 0.30850; 10 of 10 -> lower = 0.025**(1/10)
    # Act
    low0, high0 = clopper_pearson(0, 10)
    low10, high10 = clopper_pearson(10, 10)
    # Assert
    assert (low0, high0) == (0.0, pytest.approx(1 - 0.025**0.1))
    assert (low10, high10) == (pytest.approx(0.025**0.1), 1.0)
    assert clopper_pearson(0.0, 0.0) == (0.0, 1.0)


def test_logrank_separates_different_hazards() -> None:
    # Arrange: group a all liquidated early, group b never
    da, ea = np.arange(1, 21), np.ones(20, dtype=bool)
    db, eb = np.full(20, 30), np.zeros(20, dtype=bool)
    # Act / Assert
    assert logrank_p(da, ea, db, eb) < 1e-6
    assert logrank_p(da, ea, da, ea) == pytest.approx(1.0)
    assert logrank_p(db, eb, db, eb) == 1.0  # no events at all: no evidence of a difference


def test_km_weighted_curve_equals_km_weighted_at_each_time() -> None:
    # Arrange: random durations/events and bootstrap-like weights
    from backtester.survival.stats import km_weighted, km_weighted_curve

    rng = np.random.default_rng(3)
    d = rng.integers(1, 20, 60)
    e = rng.random(60) < 0.6
    w = rng.integers(0, 3, (7, 60)).astype(np.float64)
    w[0] = 0.0  # a replicate with no subjects is NaN
    times = np.array([0, 1, 5, 9, 19, 25])
    # Act
    curve = km_weighted_curve(d, e, w, times=times)
    # Assert
    expected = np.stack([km_weighted(d, e, w, at=int(t)) for t in times], axis=1)
    np.testing.assert_allclose(curve, expected)
    assert np.isnan(curve[0]).all()


# ---- the fast paths against their references (lifelines, scipy.stats, the NumPy bootstrap) ----


def _random_pair(rng: np.random.Generator, n: int, top: int) -> tuple[np.ndarray, np.ndarray]:
    # durations capped at a horizon `top` with ties, events only before it (like a study)
    d = np.minimum(rng.integers(1, int(top * 1.8), n), top)
    e = (d < top) & (rng.random(n) < rng.uniform(0.2, 1.0))
    return d, e


def test_km_estimate_equals_lifelines_bit_for_bit() -> None:
    """km_estimate's survival, Greenwood bounds and median are lifelines' exact floats."""
    import warnings

    rng = np.random.default_rng(11)
    cases = [
        _random_pair(rng, int(rng.integers(1, 3000)), int(rng.integers(2, 800))) for _ in range(60)
    ]
    cases += [
        (D, E),
        (np.array([4, 4, 4]), np.zeros(3, bool)),
        (np.array([2, 3]), np.ones(2, bool)),
    ]
    cases.append((np.array([0, 1, 1, 5]), np.array([True, False, True, True])))  # a 0 duration
    for d, e in cases:
        for alpha in (0.05, 0.1):
            horizon = int(max(d.max() * 0.8, 1))
            kmf = KaplanMeierFitter(alpha=alpha)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                kmf.fit(d.astype(np.float64), e.astype(np.int64))
            sf = kmf.survival_function_.iloc[:, 0]
            ci = kmf.confidence_interval_survival_function_
            upto = sf.index.to_numpy() <= horizon
            median = float(kmf.median_survival_time_)
            if not math.isfinite(median) or median > horizon:
                median = math.nan
            got = km_estimate(d, e, horizon=horizon, alpha=alpha)
            assert got.survival == float(sf.to_numpy()[upto][-1])
            assert got.ci_low == float(ci.iloc[:, 0].to_numpy()[upto][-1])
            assert got.ci_high == float(ci.iloc[:, 1].to_numpy()[upto][-1])
            assert got.median == median or (math.isnan(got.median) and math.isnan(median))


def test_logrank_p_equals_lifelines() -> None:
    """logrank_p is lifelines' logrank_test p-value: the same float with the BLAS of the numpy
    it was written against, within 1e-12 relative with another (numpy 2.4's product moved the
    last bit of one p of 2e-19)."""
    import warnings

    from lifelines.statistics import logrank_test

    rng = np.random.default_rng(12)
    for _ in range(80):
        top = int(rng.integers(2, 800))
        da, ea = _random_pair(rng, int(rng.integers(1, 3000)), top)
        db, eb = _random_pair(rng, int(rng.integers(1, 3000)), top)
        if not (ea.any() or eb.any()):
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            expected = float(logrank_test(da, db, event_observed_A=ea, event_observed_B=eb).p_value)
        assert math.isclose(logrank_p(da, ea, db, eb), expected, rel_tol=1e-12, abs_tol=0.0)


def test_clopper_pearson_equals_scipy_stats_bit_for_bit() -> None:
    """clopper_pearson's bounds are scipy.stats.beta.ppf's exact floats, real n included."""
    from scipy.stats import beta

    from backtester.survival.stats import clopper_pearson_many

    rng = np.random.default_rng(13)
    for n in (1.0, 2.5, 10.0, 77.9, 77.9 * 0.37, 1000.0, 7_000.0):
        for share in np.r_[0.0, 1.0, rng.random(40)]:
            x = float(share * n)
            for alpha in (0.05, 0.01, 0.2):
                low = 0.0 if x <= 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
                high = 1.0 if x >= n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
                assert clopper_pearson(x, n, alpha=alpha) == (low, high)
    xs = rng.random(25) * 77.9
    many_low, many_high = clopper_pearson_many(xs, 77.9)
    one = [clopper_pearson(float(x), 77.9) for x in xs]
    assert many_low.tolist() == [a for a, _ in one]
    assert many_high.tolist() == [b for _, b in one]


def test_compiled_bootstrap_equals_numpy_km_weighted_bit_for_bit() -> None:
    """km_boot (numba) returns the NumPy km_weighted / km_weighted_curve floats for a seed."""
    from backtester.survival._stats_nb import boot_weights, km_boot
    from backtester.survival.stats import km_weighted_curve

    rng = np.random.default_rng(14)
    for seed in range(6):
        n = int(rng.integers(5, 2500))
        d, e = _random_pair(rng, n, int(rng.integers(2, 720)))
        counts = block_bootstrap_counts(n, int(rng.integers(1, 40)), n_boot=300, seed=seed)
        ok = rng.random(n) > 0.05  # a few rejected entries
        ok[: n // 3] &= seed != 3  # and, in one case, a third of them (some rows hold no one)
        at = int(d.max() * 0.7) + 1
        boot = km_boot(d, e, boot_weights(counts), ok, np.array([at]))[:, 0]
        np.testing.assert_array_equal(boot, km_weighted(d, e, counts * ok, at=at))
        times = np.unique(np.r_[0, rng.integers(0, d.max() + 5, 12)])
        curve = km_boot(d, e, boot_weights(counts), ok, times)
        np.testing.assert_array_equal(curve, km_weighted_curve(d, e, counts * ok, times=times))
    zero = km_boot(np.array([3, 4]), np.array([True, False]), np.zeros((2, 2), np.int32),
                   np.ones(2, bool), np.array([5]))  # fmt: skip
    assert np.isnan(zero).all()
    with pytest.raises(ConfigError, match="whole counts"):
        boot_weights(np.full((2, 3), 0.5))


def test_a_study_and_its_report_never_import_lifelines_or_scipy_stats(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The survival path (study, table, curves, log-rank, report) imports neither lifelines nor
    scipy.stats (about 1.2 s of imports): they are only the references of the tests above."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import backtester as bt\n"
        "from tests.unit.test_survival_helpers import gbm_market\n"
        "m = gbm_market(n_hours=24 * 40, sigma_per_minute=0.0008, seed=2)\n"
        "s = bt.survival_study(m, leverage=(2, 20), stop_loss=(None, 0.05), horizon='5D',"
        " n_boot=50)\n"
        "s.table(); s.curve(0); s.logrank('leverage'); s.nonoverlapping()\n"
        f"s.report({str(tmp_path / 'r')!r}, comparisons=False)\n"
        "print('heavy:' + ','.join(m for m in ('lifelines', 'scipy.stats') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "heavy:"
