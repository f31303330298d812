"""Account orders at an open: signal exits, one order for the legs entering together (layer: engine.accounts).

Numba helpers of the account kernel (``engine.accounts``, step 2 of its module docstring and its
signal-driven paragraph): a leg's pending signal order closes it (reason ``SIGNAL``) or marks it
to enter; the legs entering at one open are sized as one order from the free balance, checked
together (tiers, cap, not liquidatable at the fill) and booked together.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from backtester.engine._jitcache import cache_enabled
from backtester.engine.accounts_book import _close_leg_nb, _record_leg_nb
from backtester.engine.accounts_layout import (
    A_FEES,
    A_INSURANCE,
    A_REJECTED,
    ER_NONE,
    ER_SIGNAL,
    FP_LEVERAGE,
    FP_POSITION_SIZE,
    FP_SLIPPAGE,
    FP_STOP_LOSS,
    FP_TAKE_PROFIT,
    FP_TAKER_FEE,
    FP_TRAILING_STOP,
    FREE_DUST,
    L_ENTRY_PRICE,
    L_EXIT_IDX,
    L_FEES,
    L_PNL,
    L_REASON,
    L_SIZE,
    P_MOPEN,
    P_OPEN,
    Tables,
)
from backtester.engine.accounts_rules import _cross_lp_nb, _leg_lp_nb
from backtester.engine.kernel import PENDING_CLOSE, _settle_nb, _stop_level_nb
from backtester.rules.formulas import max_leverage_nb

CACHE_ENABLED = cache_enabled(__file__)


@njit(cache=CACHE_ENABLED)
def _signal_orders_nb(
    i: int,
    wallet: float,
    n_open: int,
    refuse: bool,
    pend: np.ndarray,
    wsign: np.ndarray,
    enter: np.ndarray,
    want: np.ndarray,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    margin: np.ndarray,
    prices: np.ndarray,
    fp: np.ndarray,
    isolated: bool,
    owed: bool,
    e_idx: np.ndarray,
    e_margin: np.ndarray,
    legs_out: np.ndarray,
    trades: np.ndarray,
    out: np.ndarray,
) -> tuple[float, int, int]:
    # The legs' pending orders at the open of bar i: signal exits and reversals fill first (last
    # open against the leg, taker fee, capped by the leg's margin or the wallet), then the legs
    # to enter are marked (enter, want: the side); refused when `refuse` (after a ruin, or a
    # liquidation with after_liquidation="stop"). Returns (wallet, n_open, n_enter).
    slip = fp[FP_SLIPPAGE]
    taker = fp[FP_TAKER_FEE]
    n_enter = 0
    for k in range(side.shape[0]):
        enter[k] = False
        p = pend[k]
        if p == 0:
            continue
        pend[k] = 0
        if side[k] != 0 and (p == PENDING_CLOSE or p == -side[k] * wsign[k]):
            fill = prices[k, i, P_OPEN] * (1.0 - side[k] * slip)
            cap = margin[k] if isolated else wallet
            r, f, ins, _px = _settle_nb(side[k], size[k], entry[k], fill, taker, cap, False, owed)
            wallet += r
            out[A_FEES] += f
            out[A_INSURANCE] += ins
            _close_leg_nb(k, i, ER_SIGNAL, fill, r, f, legs_out[k], out)
            _record_leg_nb(k, side[k], e_idx[k], e_margin[k], legs_out[k], trades, out)
            side[k] = 0
            size[k] = 0.0
            n_open -= 1
        if p != PENDING_CLOSE and side[k] == 0:
            if refuse:
                out[A_REJECTED] += 1.0
            else:
                enter[k] = True
                want[k] = p * wsign[k]
                n_enter += 1
    return wallet, n_open, n_enter


@njit(cache=CACHE_ENABLED)
def _size_order_nb(
    i: int,
    wallet: float,
    n_open: int,
    enter: np.ndarray,
    want: np.ndarray,
    weights: np.ndarray,
    side: np.ndarray,
    margin: np.ndarray,
    prices: np.ndarray,
    fp: np.ndarray,
    margin_t: np.ndarray,
    fills: np.ndarray,
    size_t: np.ndarray,
    fee_t: np.ndarray,
) -> float:
    # Size the legs entering at the open of bar i as one order (margin_t, fills, size_t, fee_t):
    # margin position_size·|w|·wallet each; when that costs more than the free balance (the
    # wallet less the open legs' margins, FREE_DUST of it is nothing) the margins shrink to
    # free·(|w|/Σ|w| entering)/(1 + leverage·taker) and the last leg's fee is what is left.
    # Returns the wallet after the order's fees.
    n_legs = side.shape[0]
    lev = fp[FP_LEVERAGE]
    psize = fp[FP_POSITION_SIZE]
    taker = fp[FP_TAKER_FEE]
    slip = fp[FP_SLIPPAGE]
    wsum = 0.0
    last = -1
    for k in range(n_legs):
        if enter[k]:
            wsum += abs(weights[k])
            last = k
    cost = 1.0 + lev * taker
    avail = wallet
    if n_open > 0:
        # free: the wallet less the open legs' margins (float dust of it is nothing)
        for k in range(n_legs):
            if side[k] != 0:
                avail -= margin[k]
        if avail <= wallet * FREE_DUST:
            avail = 0.0
    total = 0.0
    for k in range(n_legs):
        if enter[k]:
            margin_t[k] = (psize * abs(weights[k])) * wallet
            total += margin_t[k] * cost
    all_in = total > avail
    fee_sum = 0.0
    m_sum = 0.0
    for k in range(n_legs):
        if not enter[k]:
            continue
        if all_in:
            margin_t[k] = avail * (abs(weights[k]) / wsum) / cost
        fills[k] = prices[k, i, P_OPEN] * (1.0 + want[k] * slip)
        notional = margin_t[k] * lev
        size_t[k] = notional / fills[k]
        fee_t[k] = notional * taker
        m_sum += margin_t[k]
        if k != last:
            fee_sum += fee_t[k]
    if all_in:
        # the order takes all that is free: what is left is exactly the margins
        fee_t[last] = avail - m_sum - fee_sum
        return m_sum if n_open == 0 else wallet - (avail - m_sum)
    fee_sum += fee_t[last]
    return float(wallet - fee_sum)


@njit(cache=CACHE_ENABLED)
def _order_ok_nb(
    i: int,
    conv: int,
    isolated: bool,
    enter: np.ndarray,
    want: np.ndarray,
    fills: np.ndarray,
    size_t: np.ndarray,
    margin_t: np.ndarray,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    prices: np.ndarray,
    wallet_after: float,
    tb: Tables,
    maxlev: np.ndarray,
    last_cap: np.ndarray,
    fp: np.ndarray,
    c_side: np.ndarray,
    c_size: np.ndarray,
    c_entry: np.ndarray,
    c_mark: np.ndarray,
) -> bool:
    # Does the exchange accept the whole order? Each entering leg as the single kernel checks an
    # entry: a size, its tier allows the leverage within the last cap, and it is not
    # liquidatable at its own fill (isolated: on its own margin; cross: with the entering legs
    # at their fills and the open ones at their mark open). One refused leg refuses the order.
    n_legs = side.shape[0]
    tk, floors, _, _, n_tiers, by_size, mmr_ovr, _ = tb
    lev = fp[FP_LEVERAGE]
    for k in range(n_legs):
        if not enter[k]:
            continue
        t = tk[k]
        n = n_tiers[k, t]
        if not (margin_t[k] > 0.0 and size_t[k] > 0.0):  # a size of float dust: refused
            return False
        ml = max_leverage_nb(
            margin_t[k] * lev,
            size_t[k],
            floors[k, t, :n],
            maxlev[k, t, :n],
            by_size[k, t],
            last_cap[k, t] if math.isnan(mmr_ovr) else math.inf,
        )
        if not ml >= lev:
            return False
    if not isolated:
        # the other legs as they stand: the entering ones at their fills, the open ones at
        # their mark open
        for k in range(n_legs):
            if enter[k]:
                c_side[k] = want[k]
                c_size[k] = size_t[k]
                c_entry[k] = fills[k]
                c_mark[k] = fills[k]
            else:
                c_side[k] = side[k]
                c_size[k] = size[k]
                c_entry[k] = entry[k]
                c_mark[k] = prices[k, i, P_MOPEN]
    for k in range(n_legs):
        if not enter[k]:
            continue
        if isolated:
            lp_t = _leg_lp_nb(k, conv, want[k], fills[k], size_t[k], margin_t[k], tb)
        else:
            lp_t = _cross_lp_nb(k, n_legs, conv, c_side, c_size, c_entry, c_mark, wallet_after, tb)
        if not want[k] * (fills[k] - lp_t) > 0.0:
            return False
    return True


@njit(cache=CACHE_ENABLED)
def _open_legs_nb(
    i: int,
    conv: int,
    isolated: bool,
    enter: np.ndarray,
    want: np.ndarray,
    fills: np.ndarray,
    size_t: np.ndarray,
    margin_t: np.ndarray,
    fee_t: np.ndarray,
    fp: np.ndarray,
    tb: Tables,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    margin: np.ndarray,
    lp: np.ndarray,
    sl: np.ndarray,
    tpl: np.ndarray,
    peak: np.ndarray,
    stop: np.ndarray,
    s_reason: np.ndarray,
    e_idx: np.ndarray,
    e_margin: np.ndarray,
    e_side: np.ndarray,
    legs_out: np.ndarray,
    out: np.ndarray,
) -> None:
    # Book an accepted order: each entering leg's fee, outputs, position, stop-loss, trailing
    # stop, take-profit and (isolated) liquidation price.
    sl_frac = fp[FP_STOP_LOSS]
    tp_frac = fp[FP_TAKE_PROFIT]
    trail = fp[FP_TRAILING_STOP]
    for k in range(side.shape[0]):
        if not enter[k]:
            continue
        out[A_FEES] += fee_t[k]
        lo = legs_out[k]
        lo[:] = 0.0
        lo[L_EXIT_IDX] = -1.0
        lo[L_REASON] = ER_NONE
        lo[L_FEES] = fee_t[k]
        lo[L_PNL] = -fee_t[k]
        lo[L_ENTRY_PRICE] = fills[k]
        lo[L_SIZE] = size_t[k]
        side[k] = want[k]
        size[k] = size_t[k]
        entry[k] = fills[k]
        margin[k] = margin_t[k]
        e_idx[k] = i
        e_margin[k] = margin_t[k]
        e_side[k] = want[k]
        peak[k] = fills[k]
        sl[k] = fills[k] * (1.0 - side[k] * sl_frac)
        tpl[k] = fills[k] * (1.0 + side[k] * tp_frac)
        stop[k], s_reason[k] = _stop_level_nb(side[k], sl[k], peak[k], trail)
        if isolated:
            lp[k] = _leg_lp_nb(k, conv, side[k], entry[k], size[k], margin[k], tb)
