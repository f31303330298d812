"""Invariants of the Kaplan–Meier estimators."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from backtester.survival.stats import km_curve, km_estimate, km_weighted

durations = st.lists(st.integers(1, 50), min_size=1, max_size=40)


@given(d=durations, data=st.data())
def test_km_is_plain_fraction_when_nothing_is_censored(d: list[int], data: st.DataObject) -> None:
    """With every subject followed to the horizon or its event, KM equals the surviving share."""
    horizon = 50
    e = data.draw(st.lists(st.booleans(), min_size=len(d), max_size=len(d)))
    dur = np.where(np.array(e), np.array(d), horizon)
    ev = np.array(e, dtype=bool)
    expected = 1.0 - ev.mean()
    assert abs(km_estimate(dur, ev, horizon=horizon).survival - expected) < 1e-12
    assert abs(km_weighted(dur, ev, np.ones((1, len(d))), at=horizon)[0] - expected) < 1e-12


@given(d=durations, data=st.data())
def test_km_curve_is_non_increasing_and_matches_weighted(d: list[int], data: st.DataObject) -> None:
    """The KM curve never rises, stays in [0, 1], and the vectorized estimator agrees with it."""
    e = np.array(data.draw(st.lists(st.booleans(), min_size=len(d), max_size=len(d))))
    dur = np.array(d)
    _times, surv = km_curve(dur, e)
    assert np.all(np.diff(surv) <= 1e-15)
    assert surv.min() >= 0.0 and surv.max() <= 1.0
    got = km_weighted(dur, e, np.ones((1, len(d))))[0]
    assert abs(got - surv[-1]) < 1e-12
