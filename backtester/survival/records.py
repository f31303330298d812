"""The records of a survival study, one per leg of each hold (layer: survival; frames at the edge).

``SurvivalStudy.trades()`` lives here so ``study.py`` stays within the size the style guide
allows. It reads the study's arrays only; nothing is re-run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtester.engine.enums import EXIT_REASON_NAMES

if TYPE_CHECKING:
    from backtester.survival.study import SurvivalStudy

__all__ = ["leg_trades"]


def leg_trades(study: SurvivalStudy) -> pd.DataFrame:
    """Return ``study.trades()``: one row per setting, entry and leg (see there)."""
    n_s, n_e = study.n_settings, study.n_entries
    ts = study.market.ts_ns
    legs = study.legs
    if legs is None:  # one market: the hold is the one leg
        symbol = study.symbols[0]
        sides = study.settings["side"] if "side" in study.settings else ["long"] * n_s
        legs = tuple(((symbol, 1.0 if side == "long" else -1.0),) for side in sides)
        out = study.leg_outcomes or {
            "leg_exit_idx": study.exit_idx[..., None],
            "leg_reason": study.reason[..., None],
            "leg_entry_price": np.full((n_s, n_e, 1), np.nan),
            "leg_exit_price": np.full((n_s, n_e, 1), np.nan),
            "leg_size": np.full((n_s, n_e, 1), np.nan),
            "leg_pnl": (study.final_equity - study.initial_cash)[..., None],
            "leg_fees": study.fees_paid[..., None],
            "leg_funding": study.funding_paid[..., None],
        }
    else:
        out = study.leg_outcomes
    width = out["leg_exit_idx"].shape[2]
    n_legs = np.array([len(x) for x in legs])
    setting, entry, leg = np.meshgrid(
        np.arange(n_s), np.arange(n_e), np.arange(width), indexing="ij"
    )
    keep = (leg < n_legs[setting]) & ~study.rejected[setting, entry]
    s_k, e_k, l_k = setting[keep], entry[keep], leg[keep]
    symbols = np.array([legs[s][k][0] for s, k in zip(s_k, l_k, strict=True)], dtype=object)
    weights = np.array([legs[s][k][1] for s, k in zip(s_k, l_k, strict=True)], dtype=np.float64)
    exit_idx = out["leg_exit_idx"][keep].astype(np.int64)
    frame = study.settings.iloc[s_k].reset_index(drop=True)
    frame["setting"] = s_k
    frame["entry_time"] = pd.to_datetime(ts[study.entry_idx[e_k]], utc=True)
    frame["leg"] = l_k
    frame["symbol"] = symbols
    frame["weight"] = weights
    frame["side"] = np.where(weights > 0, "long", "short")
    frame["exit_time"] = pd.to_datetime(ts[np.clip(exit_idx, 0, None)], utc=True)
    frame["exit_reason"] = [EXIT_REASON_NAMES[int(r)] for r in out["leg_reason"][keep]]
    for name in ("entry_price", "exit_price", "size", "pnl", "fees", "funding"):
        frame[name] = out[f"leg_{name}"][keep].astype(np.float64)
    return frame
