"""Account bookkeeping: funding, a leg's exit, a cross liquidation's shares, trade rows (layer: engine.accounts).

Numba helpers of the account kernel (``engine.accounts``) that write its outputs (the ``A_*``,
``L_*`` and ``T_*`` layouts of ``engine.accounts_layout``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from backtester.engine._jitcache import cache_enabled
from backtester.engine.accounts_layout import (
    A_FIRST_EXIT_IDX,
    A_FIRST_EXIT_REASON,
    A_FUNDING,
    A_N_TRADES,
    A_OVERFLOW,
    ER_LIQUIDATION,
    L_ENTRY_PRICE,
    L_EXIT_IDX,
    L_EXIT_PRICE,
    L_FEES,
    L_FUNDING,
    L_PNL,
    L_REASON,
    L_SIZE,
    P_MOPEN,
    T_ENTRY_IDX,
    T_ENTRY_PRICE,
    T_EXIT_IDX,
    T_EXIT_PRICE,
    T_FEES,
    T_FUNDING,
    T_LEG,
    T_MARGIN,
    T_PNL,
    T_REASON,
    T_SIDE,
    T_SIZE,
    Tables,
)
from backtester.engine.accounts_rules import _leg_lp_nb, _leg_mm_nb
from backtester.rules.formulas import funding_payment_nb

CACHE_ENABLED = cache_enabled(__file__)


@njit(cache=CACHE_ENABLED)
def _close_leg_nb(
    k: int, i: int, reason: int, price: float, r: float, f: float, lo: np.ndarray, out: np.ndarray
) -> None:
    # book leg k's exit at bar i into its outputs and the account's
    lo[L_EXIT_IDX] = i
    lo[L_REASON] = reason
    lo[L_EXIT_PRICE] = price
    lo[L_PNL] += r
    lo[L_FEES] += f
    if out[A_FIRST_EXIT_IDX] < 0.0:
        out[A_FIRST_EXIT_IDX] = i
        out[A_FIRST_EXIT_REASON] = reason


@njit(cache=CACHE_ENABLED)
def _pay_funding_nb(
    k: int,
    rate: float,
    side: np.ndarray,
    size: np.ndarray,
    mark: float,
    margin: np.ndarray,
    isolated: bool,
    lo: np.ndarray,
    out: np.ndarray,
) -> float:
    # leg k pays `rate` on its mark; returns the payment (taken from the wallet by the caller)
    pay = funding_payment_nb(side[k] * size[k], mark, rate)
    if isolated:
        margin[k] -= pay
    out[A_FUNDING] += pay
    lo[L_FUNDING] += pay
    lo[L_PNL] -= pay
    return pay


@njit(cache=CACHE_ENABLED)
def _fund_legs_nb(
    i: int,
    at: int,
    wallet: float,
    conv: int,
    funding_on: bool,
    funding: np.ndarray,
    prices: np.ndarray,
    table_idx: np.ndarray,
    liq_rates: np.ndarray,
    liq_fixed: float,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    margin: np.ndarray,
    lp: np.ndarray,
    isolated: bool,
    tb: Tables,
    legs_out: np.ndarray,
    out: np.ndarray,
) -> float:
    # Bar i's funding events at its open (at=0; also the tier tables coming into force) or
    # inside it (at=1), paid by the open legs on their mark open; returns the wallet after them.
    # An isolated leg's liquidation price moves with its margin and its table.
    tk = tb[0]
    rates = tb[7]
    for k in range(side.shape[0]):
        need = False
        if at == 0:
            t = table_idx[k, i]
            if t != tk[k]:
                tk[k] = t
                rates[k] = liq_rates[k, t] if math.isnan(liq_fixed) else liq_fixed
                need = side[k] != 0
        rate = funding[k, i, at]
        if side[k] != 0 and funding_on and rate == rate:
            wallet -= _pay_funding_nb(
                k, rate, side, size, prices[k, i, P_MOPEN], margin, isolated, legs_out[k], out
            )
            need = True
        if need and isolated:
            lp[k] = _leg_lp_nb(k, conv, side[k], entry[k], size[k], margin[k], tb)
    return wallet


@njit(cache=CACHE_ENABLED)
def _book_liquidation_nb(
    i: int,
    n_legs: int,
    conv: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    fills: np.ndarray,
    tb: Tables,
    wallet: float,
    r_l: float,
    f_l: float,
    take_all: bool,
    legs_out: np.ndarray,
    out: np.ndarray,
) -> None:
    # share a cross liquidation's settlement out to the open legs (module docstring)
    _, _, _, _, _, _, _, rates = tb
    fee_sum = 0.0
    mm_sum = 0.0
    base = 0.0
    n_open = 0
    for k in range(n_legs):
        if side[k] != 0:
            n_open += 1
            fee_sum += size[k] * fills[k] * rates[k]
            mm_sum += _leg_mm_nb(k, conv, size, entry, fills[k], tb)
            base += float(side[k]) * size[k] * (fills[k] - entry[k])
    adj = r_l - (base - f_l)  # what the cap takes (or the fund gives) beyond PnL and fee
    left = wallet + base  # the account equity at the fills
    for k in range(n_legs):
        if side[k] == 0:
            continue
        f_k = f_l * (size[k] * fills[k] * rates[k] / fee_sum) if fee_sum > 0.0 else 0.0
        mm_k = _leg_mm_nb(k, conv, size, entry, fills[k], tb)
        w_k = mm_k / mm_sum if mm_sum > 0.0 else 1.0 / n_open
        pnl_k = float(side[k]) * size[k] * (fills[k] - entry[k])
        px = fills[k]
        if take_all and left >= 0.0:
            px = fills[k] - side[k] * left * w_k / size[k]  # §7.6.4 bankruptcy price
        _close_leg_nb(k, i, ER_LIQUIDATION, px, pnl_k - f_k + adj * w_k, f_k, legs_out[k], out)


@njit(cache=CACHE_ENABLED)
def _record_leg_nb(
    k: int,
    side: int,
    entry_idx: int,
    margin: float,
    lo: np.ndarray,
    trades: np.ndarray,
    out: np.ndarray,
) -> None:
    # leg k's position (its outputs in lo) as one trade row; a full buffer sets A_OVERFLOW
    n = int(out[A_N_TRADES])
    if n < trades.shape[0]:
        row = trades[n]
        row[T_LEG] = k
        row[T_ENTRY_IDX] = entry_idx
        row[T_EXIT_IDX] = lo[L_EXIT_IDX]
        row[T_SIDE] = side
        row[T_ENTRY_PRICE] = lo[L_ENTRY_PRICE]
        row[T_EXIT_PRICE] = lo[L_EXIT_PRICE]
        row[T_SIZE] = lo[L_SIZE]
        row[T_MARGIN] = margin
        row[T_FEES] = lo[L_FEES]
        row[T_FUNDING] = lo[L_FUNDING]
        row[T_PNL] = lo[L_PNL]
        row[T_REASON] = lo[L_REASON]
    else:
        out[A_OVERFLOW] = 1.0
    out[A_N_TRADES] = n + 1
