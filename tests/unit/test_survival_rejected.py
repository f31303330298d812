"""Entries the engine rejected (never opened) are left out of every estimate, not only the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.engine.enums import ExitReason
from backtester.reports import plots
from backtester.survival.study import SurvivalStudy
from tests.unit.test_survival_helpers import gbm_market

H = 10  # horizon in bars


def _study(market: bt.Market) -> SurvivalStudy:
    # 2 settings x 6 entries 10 bars apart (independent, none censored by the end of data).
    # setting 0: entries 0-2 liquidated after 1, 2, 3 bars; entries 3-5 rejected (never opened)
    # setting 1: same outcomes, nothing rejected except that 3-5 survive the horizon
    entries = np.arange(6, dtype=np.int64) * H
    exit_idx = np.vstack([entries + np.array([0, 1, 2, 9, 9, 9])] * 2)
    liq, none, horizon = ExitReason.LIQUIDATION, ExitReason.NONE, ExitReason.HORIZON
    reason = np.array([[liq, liq, liq, none, none, none], [liq, liq, liq] + [horizon] * 3])
    rejected = np.array([[False, False, False, True, True, True], [False] * 6])
    zeros = np.zeros((2, 6))
    return SurvivalStudy(
        market=market,
        settings=pd.DataFrame({"side": ["long", "long"], "leverage": [100.0, 2.0]}),
        entry_idx=entries,
        horizon_bars=H,
        entry_every_bars=H,
        exit_idx=exit_idx,
        reason=reason,
        final_equity=zeros + 1,
        min_equity=zeros,
        insurance_draw=zeros,
        funding_paid=zeros,
        fees_paid=zeros,
        rejected=rejected,
        n_boot=20,
    )


@pytest.fixture(scope="module")
def study() -> SurvivalStudy:
    return _study(gbm_market(n_hours=80, sigma_per_minute=1e-4, seed=1))


def test_curve_leaves_out_rejected_entries(study: SurvivalStudy) -> None:
    # Arrange: setting 0 has 3 opened holds, all liquidated (after 1, 2, 3 bars); the 3 rejected
    # entries were counted as survivors to the horizon before the fix (curve ended at 50 %)
    # Act
    curve = study.curve(0)
    # Assert: KM on the opened holds: 2/3, 1/3, 0 -> ends at 0 like table()'s survival (and
    # stays there to the horizon, the last row)
    np.testing.assert_allclose(curve["survival"], [1.0, 2 / 3, 1 / 3, 0.0, 0.0])
    assert curve["time_days"].iloc[-1] == pytest.approx(study.horizon_days)
    assert (curve["ci_low"] <= curve["survival"]).all()
    assert (curve["survival"] <= curve["ci_high"]).all()
    assert study.table()["survival"].iloc[0] == pytest.approx(0.0)


def test_logrank_leaves_out_rejected_entries(study: SurvivalStudy) -> None:
    # Arrange: setting 0 opened 3 holds (all liquidated at 1, 2, 3 bars); setting 1 opened 6
    # (3 liquidated at the same times, 3 survive). With rejected entries as survivors setting 0
    # would equal setting 1 exactly (p = 1); without them, at each death time the expected share
    # differs. Hand-computed with lifelines on the opened holds only:
    from lifelines.statistics import logrank_test

    expected = logrank_test([1, 2, 3], [1, 2, 3, 10, 10, 10], [1, 1, 1], [1, 1, 1, 0, 0, 0]).p_value
    # Act
    result = study.compare(0, 1)
    # Assert
    assert result["logrank_p"] == pytest.approx(expected)
    assert result["logrank_p"] < 1.0


def test_all_rejected_curve_is_empty_and_plots() -> None:
    # Arrange: every entry of a setting rejected
    market = gbm_market(n_hours=80, sigma_per_minute=1e-4, seed=1)
    s = _study(market)
    s.rejected[0] = True
    # Act
    curve = s.curve(0)
    fig = plots.plot_km_curves({"100x": curve, "2x": s.curve(1)}, horizon=10 / 24)
    # Assert: no curve drawn for 100x (it was never opened), and the legend says so
    assert curve.empty
    assert list(curve.columns) == ["time_days", "survival", "ci_low", "ci_high"]
    labels = [x.get_text() for x in fig.axes[0].get_legend().get_texts()]
    assert labels == ["100x (not opened)", "2x"]
