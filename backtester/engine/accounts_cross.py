"""One bar of a cross account: what triggers, what ``worst`` keeps, the quiet-bar fast path (layer: engine.accounts).

Numba helpers of the account kernel (``engine.accounts``, step 3 of its module docstring): the
per-leg values of a coarse or detail bar, the account's liquidation test and the legs' own
exits in it, and the test that lets a bar where nothing can trigger skip all that.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtester.engine._jitcache import cache_enabled
from backtester.engine.accounts_layout import (
    HIT_STOP,
    HIT_TP,
    P_HIGH,
    P_LOW,
    P_MHIGH,
    P_MLOW,
    P_MOPEN,
    P_OPEN,
    V_MADV,
    V_MFAV,
    V_MO,
    V_OP,
    V_TADV,
    V_TFAV,
    V_TO,
    Tables,
)
from backtester.engine.accounts_rules import (
    _clearly_safe_nb,
    _cross_lp_nb,
    _liq_leg_nb,
    _settle_account_nb,
)
from backtester.engine.kernel import _settle_nb, _stop_level_nb

CACHE_ENABLED = cache_enabled(__file__)


@njit(cache=CACHE_ENABLED)
def _cross_bar_nb(
    n_legs: int,
    conv: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    wallet: float,
    tb: Tables,
    stop: np.ndarray,
    tpl: np.ndarray,
    on_mark: bool,
    slip: float,
    taker: float,
    maker: float,
    take_all: bool,
    owed: bool,
    open_phase: bool,
    bar: np.ndarray,
    marks: np.ndarray,
    fills: np.ndarray,
    fs: np.ndarray,
    ft: np.ndarray,
    hit: np.ndarray,
    r_x: np.ndarray,
    f_x: np.ndarray,
    ins_x: np.ndarray,
    px_x: np.ndarray,
) -> tuple[int, int, bool, bool, bool, bool, float, float, float]:
    # One (coarse or detail) bar of a cross account, per-leg values in `bar (V_N, K)`: what
    # triggers and what `worst` keeps (§7.6, step 3 of the module docstring). Returns (n_trig:
    # exits triggered, n_hit: after dropping bankrupt stops, liq, take_liq, amb_liq: the
    # liquidation holds only with the legs' adverse extremes simultaneous, at_open, the
    # liquidation's wallet change, fee, insurance draw). Leg exits kept: hit[k] (HIT_STOP /
    # HIT_TP / 0) with their settlement in r_x, f_x, ins_x, px_x; liquidation fills in `fills`.
    _, _, _, _, _, _, _, rates = tb
    n_open = 0
    for k in range(n_legs):
        hit[k] = 0
        if side[k] != 0:
            n_open += 1
    liq = False
    at_open = False
    any_x = False
    if open_phase:
        # gaps at the open: every leg at its mark open
        for k in range(n_legs):
            marks[k] = bar[V_MO, k]
            fills[k] = marks[k]
        liq = _liq_leg_nb(n_legs, conv, side, size, entry, marks, wallet, tb, marks, False, fills)
        for k in range(n_legs):
            fills[k] = marks[k]
            if side[k] == 0:
                continue
            if side[k] * (bar[V_TO, k] - stop[k]) <= 0.0:
                hit[k] |= HIT_STOP
                fs[k] = bar[V_OP, k] * (1.0 - side[k] * slip)
            if side[k] * (bar[V_TO, k] - tpl[k]) >= 0.0:
                hit[k] |= HIT_TP
                ft[k] = bar[V_OP, k]
            any_x = any_x or hit[k] != 0
        at_open = liq or any_x
    if not at_open:
        # inside the bar: the other legs at their adverse mark extremes
        for k in range(n_legs):
            marks[k] = bar[V_MADV, k]
            fills[k] = marks[k]
        liq = _liq_leg_nb(
            n_legs, conv, side, size, entry, marks, wallet, tb, bar[V_MO], not open_phase, fills
        )
        for k in range(n_legs):
            if side[k] == 0:
                continue
            sd = side[k]
            if sd * (bar[V_TADV, k] - stop[k]) <= 0.0:
                hit[k] |= HIT_STOP
                gapped = sd * (bar[V_TO, k] - stop[k]) <= 0.0  # (detail bars only)
                fs[k] = (bar[V_OP, k] if gapped else stop[k]) * (1.0 - sd * slip)
            if sd * (bar[V_TFAV, k] - tpl[k]) >= 0.0:
                hit[k] |= HIT_TP
                ft[k] = bar[V_OP, k] if sd * (bar[V_TO, k] - tpl[k]) >= 0.0 else tpl[k]
            if liq and on_mark and n_open == 1 and hit[k] & HIT_STOP:
                # one mark path: the level it reaches first wins (single kernel)
                if sd * (stop[k] - fills[k]) > 0.0:
                    liq = False
                else:
                    hit[k] &= ~HIT_STOP
    n_trig = 1 if liq else 0
    for k in range(n_legs):
        n_trig += (hit[k] & HIT_STOP) + (hit[k] >> 1)
    if n_trig == 0:
        return 0, 0, False, False, False, at_open, 0.0, 0.0, 0.0
    n_hit = n_trig
    rest = 0.0  # the legs without an exit, at the bar's values
    for k in range(n_legs):
        if side[k] != 0 and hit[k] == 0:
            rest += float(side[k]) * size[k] * (marks[k] - entry[k])
    if liq:
        for k in range(n_legs):
            pnl_k = float(side[k]) * size[k] * (fs[k] - entry[k])
            if hit[k] & HIT_STOP and wallet + (pnl_k + rest) < 0.0:
                # bankrupt before the stop could fill: the liquidation wins
                hit[k] &= ~HIT_STOP
                n_hit -= 1
    r_sum = 0.0
    any_x = False
    for k in range(n_legs):
        if hit[k] == 0:
            continue
        sd = side[k]
        kind = 0
        if hit[k] & HIT_STOP:
            r_x[k], f_x[k], ins_x[k], px_x[k] = _settle_nb(
                sd, size[k], entry[k], fs[k], taker, wallet, False, owed
            )
            kind = HIT_STOP
        if hit[k] & HIT_TP:
            r, f, ins, px = _settle_nb(sd, size[k], entry[k], ft[k], maker, wallet, False, owed)
            if kind == 0 or r < r_x[k]:
                r_x[k], f_x[k], ins_x[k], px_x[k] = r, f, ins, px
                kind = HIT_TP
        hit[k] = kind
        if kind != 0:
            any_x = True
            r_sum += r_x[k]
    rest = 0.0
    for k in range(n_legs):
        if side[k] != 0 and hit[k] == 0:
            rest += float(side[k]) * size[k] * (marks[k] - entry[k])
    take_liq = liq
    r_l = 0.0
    f_l = 0.0
    ins_l = 0.0
    if liq:
        r_l, f_l, ins_l = _settle_account_nb(
            n_legs, side, size, entry, fills, rates, wallet, take_all, owed
        )
        if any_x and r_sum + rest < r_l:
            take_liq = False
    amb_liq = False
    if liq and n_open > 1 and not at_open:
        # the assumption decides when the account would survive the bar with the other legs
        # at their favourable extremes instead
        amb_liq = True
        for k in range(n_legs):
            if side[k] == 0:
                continue
            for j in range(n_legs):
                marks[j] = bar[V_MFAV, j]
            marks[k] = bar[V_MADV, k]
            lpk = _cross_lp_nb(k, n_legs, conv, side, size, entry, marks, wallet, tb)
            if side[k] * (marks[k] - lpk) <= 0.0:
                amb_liq = False
                break
    return n_trig, n_hit, liq, take_liq, amb_liq, at_open, r_l, f_l, ins_l


@njit(cache=CACHE_ENABLED)
def _cross_quiet_nb(
    i: int,
    n_legs: int,
    conv: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    wallet: float,
    tb: Tables,
    prices: np.ndarray,
    stop: np.ndarray,
    tpl: np.ndarray,
    on_mark: bool,
    marks: np.ndarray,
) -> bool:
    # A fast path, not a rule: True when `_cross_bar_nb` on coarse bar i would find nothing
    # (n_trig == 0): no leg's stop or take-profit triggers at its open or inside the bar, and
    # the account is clearly safe (`_clearly_safe_nb`, the shortcut `_liq_leg_nb` takes first)
    # with every leg at its mark open and at its adverse mark extreme. The trigger tests are
    # `_cross_bar_nb`'s, negated as written there (a NaN level never triggers).
    for k in range(n_legs):
        sd = side[k]
        if sd == 0:
            continue
        pk = prices[k, i]
        if on_mark:
            t_o = pk[P_MOPEN]
            t_adv = pk[P_MLOW] if sd > 0 else pk[P_MHIGH]
            t_fav = pk[P_MHIGH] if sd > 0 else pk[P_MLOW]
        else:
            t_o = pk[P_OPEN]
            t_adv = pk[P_LOW] if sd > 0 else pk[P_HIGH]
            t_fav = pk[P_HIGH] if sd > 0 else pk[P_LOW]
        if sd * (t_o - stop[k]) <= 0.0 or sd * (t_o - tpl[k]) >= 0.0:
            return False
        if sd * (t_adv - stop[k]) <= 0.0 or sd * (t_fav - tpl[k]) >= 0.0:
            return False
        marks[k] = pk[P_MOPEN]
    if not _clearly_safe_nb(
        n_legs, conv, side, size, entry, marks, wallet, tb,
    ):  # fmt: skip
        return False
    for k in range(n_legs):
        if side[k] != 0:
            marks[k] = prices[k, i, P_MLOW] if side[k] > 0 else prices[k, i, P_MHIGH]
    return _clearly_safe_nb(
        n_legs, conv, side, size, entry, marks, wallet, tb,
    )  # fmt: skip


@njit(cache=CACHE_ENABLED)
def _trail_nb(
    i: int,
    n_legs: int,
    side: np.ndarray,
    prices: np.ndarray,
    on_mark: bool,
    sl: np.ndarray,
    peak: np.ndarray,
    trail: float,
    stop: np.ndarray,
    s_reason: np.ndarray,
) -> None:
    # trailing stops of a cross account's open legs move after the bar's checks
    for k in range(n_legs):
        if side[k] == 0:
            continue
        pk = prices[k, i]
        if on_mark:
            t_fav = pk[P_MHIGH] if side[k] > 0 else pk[P_MLOW]
        else:
            t_fav = pk[P_HIGH] if side[k] > 0 else pk[P_LOW]
        if side[k] * (t_fav - peak[k]) > 0.0:
            peak[k] = t_fav
            stop[k], s_reason[k] = _stop_level_nb(side[k], sl[k], peak[k], trail)


@njit(cache=CACHE_ENABLED)
def _coarse_bar_nb(
    i: int, n_legs: int, side: np.ndarray, prices: np.ndarray, on_mark: bool, bar: np.ndarray
) -> None:
    # the per-leg values of bar i
    for k in range(n_legs):
        pk = prices[k, i]
        lo, hi = (P_MLOW, P_MHIGH) if side[k] > 0 else (P_MHIGH, P_MLOW)
        bar[V_MO, k] = pk[P_MOPEN]
        bar[V_MADV, k] = pk[lo]
        bar[V_MFAV, k] = pk[hi]
        if on_mark:
            bar[V_TO, k] = pk[P_MOPEN]
            bar[V_TADV, k] = pk[lo]
            bar[V_TFAV, k] = pk[hi]
        else:
            bar[V_TO, k] = pk[P_OPEN]
            bar[V_TADV, k] = pk[P_LOW] if side[k] > 0 else pk[P_HIGH]
            bar[V_TFAV, k] = pk[P_HIGH] if side[k] > 0 else pk[P_LOW]
        bar[V_OP, k] = pk[P_OPEN]


@njit(cache=CACHE_ENABLED)
def _detail_bar_nb(
    i: int,
    j: int,
    n_legs: int,
    side: np.ndarray,
    prices: np.ndarray,
    d_start: np.ndarray,
    detail: np.ndarray,
    on_mark: bool,
    bar: np.ndarray,
) -> None:
    # the per-leg values of detail bar j of bar i: the mark path is the detail last path
    # shifted by the bar's basis at its extremes (engine.kernel's detail walk)
    for k in range(n_legs):
        pk = prices[k, i]
        off_lo = pk[P_MLOW] - pk[P_LOW]
        off_hi = pk[P_MHIGH] - pk[P_HIGH]
        d = detail[k, d_start[k, i] + j]
        if side[k] > 0:
            bar[V_MO, k] = d[0] + off_lo
            bar[V_MADV, k] = d[2] + off_lo
            bar[V_MFAV, k] = d[1] + off_hi
        else:
            bar[V_MO, k] = d[0] + off_hi
            bar[V_MADV, k] = d[1] + off_hi
            bar[V_MFAV, k] = d[2] + off_lo
        if on_mark:
            bar[V_TO, k] = bar[V_MO, k]
            bar[V_TADV, k] = bar[V_MADV, k]
            bar[V_TFAV, k] = bar[V_MFAV, k]
        else:
            bar[V_TO, k] = d[0]
            bar[V_TADV, k] = d[2] if side[k] > 0 else d[1]
            bar[V_TFAV, k] = d[1] if side[k] > 0 else d[2]
        bar[V_OP, k] = d[0]
