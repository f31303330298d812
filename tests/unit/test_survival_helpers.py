"""A SurvivalStudy built from synthetic outcomes, for report and table tests without the engine."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

import backtester as bt
from backtester.survival.study import SurvivalStudy, entry_indices

HORIZON_BARS = 24 * 30


def fake_study(market: bt.Market, *, seed: int = 0) -> SurvivalStudy:
    """Liquidation times ~ exponential with a hazard that grows with leverage; stops cut some."""
    rng = np.random.default_rng(seed)
    entries = entry_indices(market, 24)
    combos = list(itertools.product(("long", "short"), (2.0, 10.0, 100.0), (None, 0.05)))
    settings = pd.DataFrame(combos, columns=["side", "leverage", "stop_loss"])
    settings["position_size"] = 1.0
    settings["margin_mode"] = "isolated"
    n_s, n = len(settings), entries.size
    exit_idx = np.empty((n_s, n), dtype=np.int64)
    reason = np.empty((n_s, n), dtype=np.int64)
    for s, (_side, lev, stop) in enumerate(combos):
        t_liq = rng.exponential(HORIZON_BARS * 20 / lev, n).astype(int) + 1
        t_stop = rng.exponential(HORIZON_BARS / 2, n).astype(int) + 1 if stop else np.full(n, 10**9)
        d = np.minimum(np.minimum(t_liq, t_stop), HORIZON_BARS)
        reason[s] = np.where(d == t_liq, 5, np.where(d == t_stop, 2, 7))
        end = entries + d - 1
        over = end >= market.n_bars
        reason[s, over] = 6
        exit_idx[s] = np.minimum(end, market.n_bars - 1)
    zeros = np.zeros((n_s, n))
    return SurvivalStudy(
        market=market,
        settings=settings,
        entry_idx=entries,
        horizon_bars=HORIZON_BARS,
        entry_every_bars=24,
        exit_idx=exit_idx,
        reason=reason,
        final_equity=np.where(reason == 5, 0.0, 1.0),
        min_equity=zeros,
        insurance_draw=zeros,
        funding_paid=zeros,
        fees_paid=zeros,
        n_boot=200,
    )
