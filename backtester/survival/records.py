"""A survival study's records per leg: trades and equity paths (layer: survival).

``SurvivalStudy.trades()`` and ``.equity()`` live here so ``study.py`` does not grow further.
``trades()`` reads the study's arrays; ``equity()`` runs one setting's windows again through
the account engine (``run_account_entries(..., equity=True)``), the only way to get paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtester.engine.enums import EXIT_REASON_NAMES
from backtester.errors import ConfigError

if TYPE_CHECKING:
    from backtester.survival.study import SurvivalStudy

__all__ = ["hold_equity", "leg_trades"]

# settings of a study's table that are not engine settings
_NOT_ENGINE = ("legs", "side")
# run settings of a study that are not engine settings
_NOT_RUN = ("horizon", "entry_every", "strategy")


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


def hold_equity(study: SurvivalStudy, i: int) -> pd.DataFrame:
    """Return ``study.equity(i)``: setting ``i``'s windows run again with their equity paths."""
    from backtester.config import RunConfig
    from backtester.engine.accounts_run import run_account_entries
    from backtester.marketset import MarketSet
    from backtester.params import ParamGrid
    from backtester.survival.run import _grid_value

    if study.strategy_name is not None:
        raise ConfigError(
            f"equity() follows rolling holds; a strategy study ({study.strategy_name}) has no "
            "hold paths: run bt.run_sweep on the market for the strategy's equity"
        )
    row = study.settings.iloc[i]
    if study.legs is not None:
        market_set = study.market
        legs = dict(study.legs[i])
    else:
        market_set = MarketSet.from_markets([study.market])  # type: ignore[list-item]
        side = row.get("side", "long")
        legs = {study.symbols[0]: 1.0 if side == "long" else -1.0}
    grid = ParamGrid.zip(
        **{c: [_grid_value(c, row[c])] for c in study.settings.columns if c not in _NOT_ENGINE}
    )
    fixed = {k: v for k, v in study.run_settings.items() if k not in _NOT_RUN}
    out = run_account_entries(
        market_set,  # type: ignore[arg-type]
        grid,
        legs=legs,
        entry_idx=study.entry_idx,
        horizon_bars=study.horizon_bars,
        config=RunConfig(**fixed),
        equity=True,
    )
    times = pd.to_datetime(study.market.ts_ns[study.entry_idx], utc=True)
    names = [*legs, "account"]
    values = np.concatenate([out.leg_equity[0], out.equity[0][..., None]], axis=2)
    # (entries, bars, legs + 1) -> rows = bars, columns = (entry, leg)
    data = values.transpose(1, 0, 2).reshape(study.horizon_bars, -1)
    columns = pd.MultiIndex.from_product([times, names], names=["entry_time", "leg"])
    frame = pd.DataFrame(data, index=pd.RangeIndex(study.horizon_bars, name="bar"), columns=columns)
    frame.attrs = {"setting": study.label(i), "initial_cash": study.initial_cash}
    return frame
