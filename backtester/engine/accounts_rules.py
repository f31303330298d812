"""Account rules per leg: maintenance margin, liquidation prices, the cross account's safety test and settlement (layer: engine.accounts).

Numba helpers of the account kernel (``engine.accounts``, whose module docstring states the
rules; docs/reference/exchange-rules.md §7.4, §7.6). A leg's tier tables travel as one
``Tables`` tuple (``engine.accounts_layout``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from backtester.engine._jitcache import cache_enabled
from backtester.engine.accounts_layout import Tables
from backtester.engine.kernel import _lp_nb, _table_rows_nb
from backtester.rules.formulas import liquidation_price_nb, maint_margin_nb

CACHE_ENABLED = cache_enabled(__file__)


@njit(cache=CACHE_ENABLED)
def _mm_nb(
    conv: int,
    size: float,
    entry: float,
    mark: float,
    floors: np.ndarray,
    mmr: np.ndarray,
    mamt: np.ndarray,
    by_size: bool,
    mmr_override: float,
    fee_rate: float,
) -> float:
    # one leg's maintenance margin as its convention values it (§7.6.1): Binance at mark, OKX at
    # mark plus the liquidation-fee term, Bybit at entry
    if conv == 2:
        return maint_margin_nb(conv, size * entry, size, floors, mmr, mamt, by_size, mmr_override)
    mm = maint_margin_nb(conv, size * mark, size, floors, mmr, mamt, by_size, mmr_override)
    if conv == 1:
        mm += size * mark * fee_rate
    return mm


@njit(cache=CACHE_ENABLED)
def _leg_mm_nb(
    j: int, conv: int, size: np.ndarray, entry: np.ndarray, mark: float, tb: Tables
) -> float:
    # leg j's maintenance margin at `mark` on its table in force
    tk, floors, mmr, mamt, n_tiers, by_size, mmr_ovr, rates = tb
    t = tk[j]
    n = n_tiers[j, t]
    return _mm_nb(
        conv,
        size[j],
        entry[j],
        mark,
        floors[j, t, :n],
        mmr[j, t, :n],
        mamt[j, t, :n],
        by_size[j, t],
        mmr_ovr,
        rates[j],
    )


@njit(cache=CACHE_ENABLED)
def _cross_lp_nb(
    k: int,
    n_legs: int,
    conv: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    marks: np.ndarray,
    wallet: float,
    tb: Tables,
) -> float:
    # leg k's liquidation price with the other open legs held at `marks`
    tk, floors, mmr, mamt, n_tiers, by_size, mmr_ovr, rates = tb
    o_mm = 0.0
    o_upnl = 0.0
    for j in range(n_legs):
        if j == k or side[j] == 0:
            continue
        o_mm += _leg_mm_nb(j, conv, size, entry, marks[j], tb)
        o_upnl += float(side[j]) * size[j] * (marks[j] - entry[j])
    t = tk[k]
    n = n_tiers[k, t]
    return liquidation_price_nb(
        conv,
        side[k],
        entry[k],
        size[k],
        wallet,
        o_mm,
        o_upnl,
        floors[k, t, :n],
        mmr[k, t, :n],
        mamt[k, t, :n],
        by_size[k, t],
        mmr_ovr,
        rates[k],
    )


@njit(cache=CACHE_ENABLED)
def _clearly_safe_nb(
    n_legs: int,
    conv: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    marks: np.ndarray,
    wallet: float,
    tb: Tables,
) -> bool:
    # A shortcut, not a rule: True when the account's gap WB + Σ UPNL − Σ MM with every leg at
    # `marks` is positive by more than 1e-9 of the notional, far beyond the rounding of the
    # per-leg liquidation-price tests below, which then cannot trigger. Only where each leg's
    # MM is continuous in its price (every convention except OKX tiers by notional, whose MM
    # jumps at the floors): there the gap is monotone in each leg's price.
    tk, _, _, _, _, by_size, mmr_ovr, _ = tb
    gap = wallet
    scale = 0.0
    for j in range(n_legs):
        if side[j] == 0:
            continue
        if conv == 1 and math.isnan(mmr_ovr) and not by_size[j, tk[j]]:
            return False
        gap += float(side[j]) * size[j] * (marks[j] - entry[j]) - _leg_mm_nb(
            j, conv, size, entry, marks[j], tb
        )
        scale += size[j] * marks[j]
    return gap > 1e-9 * scale


@njit(cache=CACHE_ENABLED)
def _liq_leg_nb(
    n_legs: int,
    conv: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    marks: np.ndarray,
    wallet: float,
    tb: Tables,
    opens: np.ndarray,
    any_open: bool,
    fills: np.ndarray,
) -> bool:
    # Is the account liquidated with every open leg at `marks`? Tested per leg k (in leg order):
    # k's liquidation price with the others at `marks`, against marks[k]. The first such leg
    # that was safe at its `opens` value (any_open: whatever its open) decides: it fills at its
    # solved price (fills[k]).
    if _clearly_safe_nb(n_legs, conv, side, size, entry, marks, wallet, tb):
        return False
    liq = False
    for k in range(n_legs):
        if side[k] == 0:
            continue
        lpk = _cross_lp_nb(k, n_legs, conv, side, size, entry, marks, wallet, tb)
        if side[k] * (marks[k] - lpk) <= 0.0:
            liq = True
            if any_open or side[k] * (opens[k] - lpk) > 0.0:
                fills[k] = lpk
                return True
    return liq


@njit(cache=CACHE_ENABLED)
def _settle_account_nb(
    n_legs: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    fills: np.ndarray,
    rates: np.ndarray,
    wallet: float,
    take_all: bool,
    owed: bool,
) -> tuple[float, float, float]:
    # close every open leg at `fills` (§7.6.4-6); returns (wallet change, fee, insurance draw)
    pnl = 0.0
    fee = 0.0
    for j in range(n_legs):
        if side[j] != 0:
            pnl += float(side[j]) * size[j] * (fills[j] - entry[j])
            fee += size[j] * fills[j] * rates[j]
    avail = wallet + pnl
    if avail < 0.0:
        if owed:
            return pnl, 0.0, 0.0
        return -wallet, 0.0, -avail
    if take_all:
        return -wallet, 0.0, 0.0
    if fee <= avail:
        r = pnl - fee
        return (r if r > -wallet else -wallet), fee, 0.0
    return -wallet, avail, 0.0


@njit(cache=CACHE_ENABLED)
def _leg_lp_nb(
    k: int, conv: int, side: int, entry: float, size: float, margin: float, tb: Tables
) -> float:
    # an isolated leg's liquidation price on its own margin and table in force
    tk, floors, mmr, mamt, n_tiers, by_size, mmr_ovr, rates = tb
    fl_t, mmr_t, mamt_t, bys_t = _table_rows_nb(
        tk[k], floors[k], mmr[k], mamt[k], n_tiers[k], by_size[k]
    )
    return _lp_nb(conv, side, entry, size, margin, fl_t, mmr_t, mamt_t, bys_t, mmr_ovr, rates[k])
