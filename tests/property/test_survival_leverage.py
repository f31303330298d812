"""Survival never rises with leverage for holds without stops (engine + Kaplan–Meier)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import backtester as bt
from tests.unit.test_survival_helpers import gbm_market

LEVERAGES = [1, 2, 3, 5, 10, 20, 50, 100]


@settings(max_examples=15)
@given(
    seed=st.integers(0, 10_000),
    vol=st.floats(0.3, 2.0),
    levs=st.lists(st.sampled_from(LEVERAGES), min_size=2, max_size=5, unique=True),
    side=st.sampled_from(["long", "short"]),
    fees=st.booleans(),
)
def test_survival_never_rises_with_leverage(
    seed: int, vol: float, levs: list[int], side: str, fees: bool
) -> None:
    """Without stops, survival at the horizon never rises with leverage (holds fully observed)."""
    # entries a horizon apart and a market a whole number of horizons long: no early censoring
    market = gbm_market(n_hours=24 * 2 * 30, sigma_per_minute=vol / np.sqrt(525_600), seed=seed)
    costs = {} if fees else {"taker_fee": 0.0, "maker_fee": 0.0}
    study = bt.survival_study(
        market,
        side=side,  # type: ignore[arg-type]
        leverage=tuple(sorted(levs)),
        horizon="2D",
        entry_every="2D",
        n_boot=1,
        funding=False,
        **costs,
    )
    surv = study.table().reset_index().sort_values("leverage")["survival"].to_numpy()
    assert np.all(np.diff(surv) <= 1e-12)


@settings(max_examples=15)
@given(
    seed=st.integers(0, 10_000), vol=st.floats(0.3, 2.0), side=st.sampled_from(["long", "short"])
)
def test_higher_leverage_is_liquidated_no_later(seed: int, vol: float, side: str) -> None:
    """Entry by entry, a higher leverage is liquidated whenever a lower one is, and no later."""
    market = gbm_market(n_hours=24 * 20, sigma_per_minute=vol / np.sqrt(525_600), seed=seed)
    study = bt.survival_study(
        market,
        side=side,
        leverage=tuple(LEVERAGES),
        horizon="3D",
        entry_every="12h",  # type: ignore[arg-type]
        n_boot=1,
        funding=False,
    )
    for lo, hi in zip(range(len(LEVERAGES) - 1), range(1, len(LEVERAGES)), strict=True):
        liq_lo, liq_hi = study.events[lo], study.events[hi]
        assert np.all(liq_hi[liq_lo])
        assert np.all(study.durations[hi][liq_lo] <= study.durations[lo][liq_lo])
