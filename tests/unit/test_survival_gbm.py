"""Survival of isolated holds on synthetic GBM matches the closed-form first-passage probability."""

from __future__ import annotations

import numpy as np
import pytest

import backtester as bt
from tests.unit.test_survival_helpers import first_passage_survival, gbm_market

SIGMA = 1.2 / np.sqrt(365 * 24 * 60)  # 120 % annualised volatility, per 1-minute step
HORIZON_H = 24 * 10
N_PATHS = 800
MMR = 0.005


@pytest.fixture(scope="module")
def gbm_study() -> bt.SurvivalStudy:
    # entries a horizon apart -> independent holds, nothing censored before the horizon
    market = gbm_market(n_hours=HORIZON_H * N_PATHS, sigma_per_minute=SIGMA, seed=20240501)
    return bt.survival_study(
        market,
        side="both",
        leverage=(3, 5, 10, 20, 50),
        horizon="10D",
        entry_every="10D",
        taker_fee=0.0,
        maker_fee=0.0,
        slippage=0.0,
        funding=False,
        maint_margin_rate=MMR,
        liquidation_fee_rate=0.0,
        n_boot=50,
    )


def test_closed_form_hand_value() -> None:
    # Arrange: long 10x, m = 0.5 %: LP/EP = 0.9 / 0.995, b = ln(0.904523) = -0.100348;
    # continuous monitoring, T = 1000 steps, s = sigma sqrt(T) = 0.2, sigma^2 = 4e-5,
    # nu = -sigma^2 / 2 = -2e-5, nu T = -0.02:
    # P = Phi((nu T - b) / s) - exp(2 nu b / sigma^2) Phi((b + nu T) / s)
    #   = Phi(0.40174) - exp(0.100348) Phi(-0.60174) = 0.656062 - 1.105556 * 0.273674 = 0.353501
    sigma = 0.2 / np.sqrt(1000)
    # Act
    p = first_passage_survival(
        side="long", leverage=10, mmr=0.005, sigma=sigma, n_steps=1000, dt_corrected=False
    )
    # Assert
    assert p == pytest.approx(0.353501, abs=5e-6)


def test_gbm_survival_matches_first_passage(gbm_study: bt.SurvivalStudy) -> None:
    # Arrange
    table = gbm_study.table().reset_index()
    # Act / Assert: |KM - closed form| within 4 Monte Carlo standard errors for every setting
    for row in table.itertuples(index=False):
        expected = first_passage_survival(
            side=row.side,
            leverage=row.leverage,
            mmr=MMR,
            sigma=SIGMA,
            n_steps=HORIZON_H * 60,
            dt_corrected=True,
        )
        se = np.sqrt(expected * (1 - expected) / row.n_entries)
        assert row.n_entries == N_PATHS
        assert abs(row.survival - expected) < 4 * se + 1e-3, (row.side, row.leverage)


def test_gbm_km_is_plain_fraction(gbm_study: bt.SurvivalStudy) -> None:
    # Arrange: every hold is followed to its liquidation or to the horizon (no censoring before)
    table = gbm_study.table().reset_index()
    # Act / Assert: Kaplan–Meier = 1 - liquidated / entries
    expected = 1.0 - table["n_liquidated"] / table["n_entries"]
    np.testing.assert_allclose(table["survival"], expected, rtol=0, atol=1e-12)


def test_gbm_survival_falls_with_leverage(gbm_study: bt.SurvivalStudy) -> None:
    table = gbm_study.table().reset_index()
    for side in ("long", "short"):
        s = table[table["side"] == side].sort_values("leverage")["survival"].to_numpy()
        assert np.all(np.diff(s) <= 0), side


def test_discrete_monitoring_correction_is_resolved() -> None:
    # The test above has ~1.8 pp standard errors (800 paths) while the Broadie–Glasserman–Kou
    # correction moves the closed form by only ~0.3 pp there, so it cannot tell whether the
    # correction applies. Here: 30,000 independent 12-hour holds at 50x, where the barrier
    # (1.5 % away, ~9 one-minute sigmas) is close enough for the correction to be ~1.6 pp, or
    # ~6 standard errors (SE = sqrt(0.28 * 0.72 / 30000) = 0.0026).
    # Arrange
    n_paths, horizon_h = 30_000, 12
    market = gbm_market(n_hours=horizon_h * n_paths, sigma_per_minute=SIGMA, seed=20240501)
    study = bt.survival_study(
        market,
        side="both",
        leverage=(50,),
        horizon="12h",
        entry_every="12h",
        taker_fee=0.0,
        maker_fee=0.0,
        slippage=0.0,
        funding=False,
        maint_margin_rate=MMR,
        liquidation_fee_rate=0.0,
        n_boot=1,
    )
    # Act
    table = study.table().reset_index()
    # Assert: within 3 SE of the corrected closed form, and more than 4 SE from the uncorrected
    for row in table.itertuples(index=False):
        kw = {"side": row.side, "leverage": 50, "mmr": MMR, "sigma": SIGMA, "n_steps": 720}
        corrected = first_passage_survival(**kw, dt_corrected=True)  # type: ignore[arg-type]
        continuous = first_passage_survival(**kw, dt_corrected=False)  # type: ignore[arg-type]
        se = np.sqrt(corrected * (1 - corrected) / n_paths)
        assert row.n_entries == n_paths
        assert abs(row.survival - corrected) < 3 * se, (row.side, row.survival, corrected)
        assert abs(row.survival - continuous) > 4 * se, (row.side, row.survival, continuous)
