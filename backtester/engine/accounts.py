"""Numba kernel: accounts of K legs (one perpetual per symbol) in one wallet (layer: engine.accounts).

A column is an account entered once, at the open of its window's first bar, and followed to the
end of its window (rolling entries of a survival study). Every leg ``k`` has a signed weight
``w_k`` (``Σ|w_k| <= 1``): ``side_k = sign(w_k)`` and ``margin_k = (position_size·|w_k|)·wallet``,
``notional_k = margin_k·leverage``, ``size_k = notional_k / fill_k``. The bars are the MarketSet's
shared bars; prices are ``(K, n_bars, 8)`` as in ``engine.kernel``. Rules follow
docs/reference/exchange-rules.md §7.4 (isolated) and §7.6 (cross). Bar ``i`` of a column:

1. **Funding** at the open on the legs carried into the bar (each leg at its own symbol's
   funding times, on its own mark open), from the wallet; isolated: also from the leg's margin,
   which moves its liquidation price. (No leg is open at the entry bar's open.)
2. **Entry** (first bar only): every leg fills at its last open moved by ``slippage`` and pays
   ``taker_fee`` on its notional, exactly as ``engine.kernel``'s entry; when the wallet cannot pay
   every margin and fee, the margins shrink to ``wallet·(|w_k|/Σ|w|)/(1 + leverage·taker_fee)``
   and the last leg's fee is what is left beyond the margins. Each leg is checked as the single
   kernel checks an entry (margin > 0, the tier of its notional allows the leverage, the
   notional is within the last tier's cap, not liquidatable at its own entry price; cross: with
   the other legs' maintenance margins at entry). **A refused leg refuses the whole account
   entry** (``rejected``; the wallet is untouched). Funding events inside a coarse bar are then
   paid by the legs held after the entry.
3. **Exits.**
   - *isolated*: each leg on its own, with the single kernel's rule (``engine.kernel``
     ``_resolve_exit_nb``: gap at the mark open, then the mark's adverse extreme against the
     leg's own liquidation price; the stop on its trigger price; ``intrabar="worst"``); losing a
     leg costs its margin only.
   - *cross* (§7.6): the account liquidates when ``WB + Σ UPNL_k(mark_k) <= Σ MM_k(mark_k)``. It
     is tested as the single kernel tests it, per leg: leg ``k``'s liquidation price with the
     other legs' maintenance margin and unrealized PnL (``liquidation_price_nb``'s
     ``other_maint_margin`` / ``other_upnl``), first with every leg at its mark open (a gap: every
     leg closes at its mark open), then with the other legs at their adverse mark extremes of
     the bar (``intrabar="worst"``). The first leg (in leg order) whose liquidation price lies
     inside its bar decides: it closes at that price, the others at their adverse extremes; if
     none does, every leg closes at its adverse extreme. With one leg this is exactly the single
     kernel's cross rule. Settlement (§7.6.4–6): ``close_at="liquidation"`` books the legs' PnL
     and the clearance fee ``Σ rate_k·size_k·fill_k`` capped by the account equity left;
     ``close_at="bankruptcy"`` forfeits the account equity left; a negative account equity at the
     fills floors the wallet at 0 with one ``insurance_draw`` (``negative_balance="floor"``), or
     stays (``"owed"``). A leg's stop fills as in the single kernel (cap: the wallet) and removes
     the leg; when a stop and the account liquidation trigger in one bar, the stop is dropped if
     the account equity at its fill (the other legs at their adverse extremes) is negative, and
     otherwise ``worst`` keeps the lower of the liquidation's wallet change and the stop's plus
     the other legs' unrealized PnL at their adverse extremes (with one leg: the single
     kernel's choice). With one open leg and ``stop_trigger="mark"`` the level its mark reaches
     first wins, as in the single kernel.
   - Not modelled yet (cross, several legs): after a stop fills, the other legs are not
     tested again in the same bar (a stop removes its leg's MM, so the account is safer, but
     its slippage and fee are not re-tested until the next bar); each stop filling in one bar
     is capped by the wallet before that bar's stops.
   - ``ambiguous_bars`` counts a bar where a stop and a liquidation both triggered, and a bar in
     which a cross account of several open legs was liquidated inside the bar but would not have
     been with the other legs at their favourable extremes (the legs' adverse extremes were
     assumed simultaneous, and that decided the outcome).
4. **Close.** ``equity = wallet + Σ s_k·size_k·(mark_close_k − entry_k)``; ``min_equity``; ruin
   (``equity < ruin_threshold·initial_cash``) closes every open leg at its last close (slippage,
   taker fee).

Outputs per column (``A_*`` rows of ``out``): final equity at the window's last mark close,
min equity, first exit bar and reason (the first leg to close, or the window's last bar with
``HORIZON``/``END_OF_DATA``), first liquidation bar and which leg (K = the cross account), fees,
funding, insurance draw, ambiguous bars, rejected.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from backtester.engine._jitcache import cache_enabled
from backtester.engine.enums import (
    CloseAt,
    ExitReason,
    MarginMode,
    NegativeBalance,
    StopTrigger,
)
from backtester.engine.kernel import _lp_nb, _resolve_exit_nb, _settle_nb
from backtester.engine.layout import FParam, IParam
from backtester.rules.formulas import (
    funding_payment_nb,
    liquidation_price_nb,
    maint_margin_nb,
    max_leverage_nb,
)

CACHE_ENABLED = cache_enabled(__file__)

__all__ = [
    "A_AMBIGUOUS",
    "A_FEES",
    "A_FINAL_EQUITY",
    "A_FIRST_EXIT_IDX",
    "A_FIRST_EXIT_REASON",
    "A_FUNDING",
    "A_INSURANCE",
    "A_LIQ_IDX",
    "A_LIQ_LEG",
    "A_LIQ_REASON",
    "A_MIN_EQUITY",
    "A_N",
    "A_REJECTED",
    "MAX_LEGS",
    "simulate_accounts_nb",
]

MAX_LEGS = 16

CA_BANKRUPTCY = int(CloseAt.BANKRUPTCY)
ER_END_OF_DATA = int(ExitReason.END_OF_DATA)
ER_HORIZON = int(ExitReason.HORIZON)
ER_LIQUIDATION = int(ExitReason.LIQUIDATION)
ER_NONE = int(ExitReason.NONE)
ER_RUIN = int(ExitReason.RUIN)
ER_STOP_LOSS = int(ExitReason.STOP_LOSS)
FP_INITIAL_CASH = int(FParam.INITIAL_CASH)
FP_LEVERAGE = int(FParam.LEVERAGE)
FP_LIQ_FEE_RATE = int(FParam.LIQ_FEE_RATE)
FP_MMR_OVERRIDE = int(FParam.MMR_OVERRIDE)
FP_POSITION_SIZE = int(FParam.POSITION_SIZE)
FP_RUIN_THRESHOLD = int(FParam.RUIN_THRESHOLD)
FP_SLIPPAGE = int(FParam.SLIPPAGE)
FP_STOP_LOSS = int(FParam.STOP_LOSS)
FP_TAKER_FEE = int(FParam.TAKER_FEE)
FP_MAKER_FEE = int(FParam.MAKER_FEE)
IP_CLOSE_AT = int(IParam.CLOSE_AT)
IP_CONVENTION = int(IParam.CONVENTION)
IP_FUNDING = int(IParam.FUNDING)
IP_MARGIN_MODE = int(IParam.MARGIN_MODE)
IP_NEGATIVE_BALANCE = int(IParam.NEGATIVE_BALANCE)
IP_STOP_TRIGGER = int(IParam.STOP_TRIGGER)
MM_ISOLATED = int(MarginMode.ISOLATED)
NB_OWED = int(NegativeBalance.OWED)
STR_MARK = int(StopTrigger.MARK)

P_OPEN, P_HIGH, P_LOW, P_CLOSE, P_MOPEN, P_MHIGH, P_MLOW, P_MCLOSE = 0, 1, 2, 3, 4, 5, 6, 7
K_LIQ, K_STOP = 0, 1

# rows of the per-column output
(
    A_FINAL_EQUITY,
    A_MIN_EQUITY,
    A_FIRST_EXIT_IDX,
    A_FIRST_EXIT_REASON,
    A_LIQ_IDX,
    A_LIQ_LEG,
    A_LIQ_REASON,
    A_FEES,
    A_FUNDING,
    A_INSURANCE,
    A_AMBIGUOUS,
    A_REJECTED,
) = range(12)
A_N = 12


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
def _cross_lp_nb(
    k: int,
    n_legs: int,
    conv: int,
    side: np.ndarray,
    size: np.ndarray,
    entry: np.ndarray,
    marks: np.ndarray,
    wallet: float,
    tk: np.ndarray,
    floors: np.ndarray,
    mmr: np.ndarray,
    mamt: np.ndarray,
    n_tiers: np.ndarray,
    by_size: np.ndarray,
    mmr_ovr: float,
    rates: np.ndarray,
) -> float:
    # leg k's liquidation price with the other open legs held at `marks`
    o_mm = 0.0
    o_upnl = 0.0
    for j in range(n_legs):
        if j == k or side[j] == 0:
            continue
        t = tk[j]
        n = n_tiers[j, t]
        o_mm += _mm_nb(
            conv,
            size[j],
            entry[j],
            marks[j],
            floors[j, t, :n],
            mmr[j, t, :n],
            mamt[j, t, :n],
            by_size[j, t],
            mmr_ovr,
            rates[j],
        )
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
    tk: np.ndarray,
    floors: np.ndarray,
    mmr: np.ndarray,
    mamt: np.ndarray,
    n_tiers: np.ndarray,
    by_size: np.ndarray,
    mmr_ovr: float,
    rates: np.ndarray,
) -> bool:
    # A shortcut, not a rule: True when the account's gap WB + Σ UPNL − Σ MM with every leg at
    # `marks` is positive by more than 1e-9 of the notional, far beyond the rounding of the
    # per-leg liquidation-price tests below, which then cannot trigger. Only where each leg's
    # MM is continuous in its price (every convention except OKX tiers by notional, whose MM
    # jumps at the floors): there the gap is monotone in each leg's price.
    gap = wallet
    scale = 0.0
    for j in range(n_legs):
        if side[j] == 0:
            continue
        t = tk[j]
        if conv == 1 and math.isnan(mmr_ovr) and not by_size[j, t]:
            return False
        n = n_tiers[j, t]
        gap += float(side[j]) * size[j] * (marks[j] - entry[j]) - _mm_nb(
            conv,
            size[j],
            entry[j],
            marks[j],
            floors[j, t, :n],
            mmr[j, t, :n],
            mamt[j, t, :n],
            by_size[j, t],
            mmr_ovr,
            rates[j],
        )
        scale += size[j] * marks[j]
    return gap > 1e-9 * scale


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
def _account_nb(
    s: int,
    end: int,
    n_bars: int,
    prices: np.ndarray,
    funding: np.ndarray,
    table_idx: np.ndarray,
    floors: np.ndarray,
    mmr: np.ndarray,
    mamt: np.ndarray,
    maxlev: np.ndarray,
    n_tiers: np.ndarray,
    last_cap: np.ndarray,
    by_size: np.ndarray,
    liq_rates: np.ndarray,
    weights: np.ndarray,
    fp: np.ndarray,
    ip: np.ndarray,
    out: np.ndarray,
) -> None:
    n_legs = weights.shape[0]
    lev = fp[FP_LEVERAGE]
    psize = fp[FP_POSITION_SIZE]
    sl_frac = fp[FP_STOP_LOSS]
    taker = fp[FP_TAKER_FEE]
    maker = fp[FP_MAKER_FEE]
    slip = fp[FP_SLIPPAGE]
    mmr_ovr = fp[FP_MMR_OVERRIDE]
    liq_fixed = fp[FP_LIQ_FEE_RATE]
    table_rate = math.isnan(liq_fixed)
    cash = fp[FP_INITIAL_CASH]
    ruin_level = fp[FP_RUIN_THRESHOLD] * cash
    isolated = ip[IP_MARGIN_MODE] == MM_ISOLATED
    on_mark = ip[IP_STOP_TRIGGER] == STR_MARK
    funding_on = ip[IP_FUNDING] != 0
    conv = ip[IP_CONVENTION]
    take_all = ip[IP_CLOSE_AT] == CA_BANKRUPTCY
    owed = ip[IP_NEGATIVE_BALANCE] == NB_OWED

    out[:] = 0.0
    out[A_FINAL_EQUITY] = cash
    out[A_MIN_EQUITY] = cash
    out[A_FIRST_EXIT_IDX] = -1.0
    out[A_FIRST_EXIT_REASON] = ER_NONE
    out[A_LIQ_IDX] = -1.0
    out[A_LIQ_LEG] = -1.0
    out[A_LIQ_REASON] = ER_NONE

    side = np.zeros(n_legs, dtype=np.int64)
    size = np.zeros(n_legs)
    entry = np.zeros(n_legs)
    margin = np.zeros(n_legs)
    lp = np.full(n_legs, np.nan)
    stop = np.full(n_legs, np.nan)
    tk = np.zeros(n_legs, dtype=np.int64)
    rates = np.zeros(n_legs)
    marks = np.zeros(n_legs)
    fills = np.zeros(n_legs)
    fill_t = np.zeros(n_legs)
    size_t = np.zeros(n_legs)
    margin_t = np.zeros(n_legs)
    fee_t = np.zeros(n_legs)
    want = np.zeros(n_legs, dtype=np.int64)
    hit_s = np.zeros(n_legs, dtype=np.bool_)
    r_s = np.zeros(n_legs)
    f_s = np.zeros(n_legs)
    ins_s = np.zeros(n_legs)

    for k in range(n_legs):
        tk[k] = table_idx[k, s]
        rates[k] = liq_rates[k, tk[k]] if table_rate else liq_fixed
    wallet = cash
    equity = cash
    n_open = 0

    for i in range(s, end):
        # ---- 1. funding on the legs carried into the bar; tier-table changes ----------------
        for k in range(n_legs):
            need = False
            t = table_idx[k, i]
            if t != tk[k]:
                tk[k] = t
                rates[k] = liq_rates[k, t] if table_rate else liq_fixed
                need = side[k] != 0
            if side[k] != 0 and funding_on and funding[k, i, 0] == funding[k, i, 0]:
                pay = funding_payment_nb(side[k] * size[k], prices[k, i, P_MOPEN], funding[k, i, 0])
                wallet -= pay
                if isolated:
                    margin[k] -= pay
                out[A_FUNDING] += pay
                need = True
            if need and isolated:
                lp[k] = _lp_nb(
                    conv,
                    side[k],
                    entry[k],
                    size[k],
                    margin[k],
                    tk[k],
                    floors[k],
                    mmr[k],
                    mamt[k],
                    n_tiers[k],
                    by_size[k],
                    mmr_ovr,
                    rates[k],
                )

        # ---- 2. the entry at the window's first open ------------------------------------------
        if i == s:
            wsum = 0.0
            for k in range(n_legs):
                wsum += abs(weights[k])
            cost = 1.0 + lev * taker
            total = 0.0
            for k in range(n_legs):
                want[k] = 1 if weights[k] > 0.0 else -1
                margin_t[k] = (psize * abs(weights[k])) * wallet
                total += margin_t[k] * cost
            all_in = total > wallet
            ok = True
            fee_sum = 0.0
            m_sum = 0.0
            for k in range(n_legs):
                if all_in:
                    margin_t[k] = wallet * (abs(weights[k]) / wsum) / cost
                fill_t[k] = prices[k, i, P_OPEN] * (1.0 + want[k] * slip)
                notional = margin_t[k] * lev
                size_t[k] = notional / fill_t[k]
                fee_t[k] = notional * taker
                m_sum += margin_t[k]
                if k < n_legs - 1:
                    fee_sum += fee_t[k]
            if all_in:
                # the order takes the whole wallet: what is left is exactly the margins
                fee_t[n_legs - 1] = wallet - m_sum - fee_sum
                wallet_after = m_sum
            else:
                fee_sum += fee_t[n_legs - 1]
                wallet_after = wallet - fee_sum
            for k in range(n_legs):
                t = tk[k]
                n = n_tiers[k, t]
                if not margin_t[k] > 0.0:
                    ok = False
                    break
                ml = max_leverage_nb(
                    margin_t[k] * lev,
                    size_t[k],
                    floors[k, t, :n],
                    maxlev[k, t, :n],
                    by_size[k, t],
                    last_cap[k, t] if math.isnan(mmr_ovr) else math.inf,
                )
                if not ml >= lev:
                    ok = False
                    break
            if ok:
                for k in range(n_legs):
                    if isolated:
                        lp_t = _lp_nb(
                            conv,
                            want[k],
                            fill_t[k],
                            size_t[k],
                            margin_t[k],
                            tk[k],
                            floors[k],
                            mmr[k],
                            mamt[k],
                            n_tiers[k],
                            by_size[k],
                            mmr_ovr,
                            rates[k],
                        )
                    else:
                        lp_t = _cross_lp_nb(
                            k,
                            n_legs,
                            conv,
                            want,
                            size_t,
                            fill_t,
                            fill_t,
                            wallet_after,
                            tk,
                            floors,
                            mmr,
                            mamt,
                            n_tiers,
                            by_size,
                            mmr_ovr,
                            rates,
                        )
                    if not want[k] * (fill_t[k] - lp_t) > 0.0:
                        ok = False
                        break
            if not ok:
                out[A_REJECTED] = 1.0
                break
            wallet = wallet_after
            for k in range(n_legs):
                out[A_FEES] += fee_t[k]
                side[k] = want[k]
                size[k] = size_t[k]
                entry[k] = fill_t[k]
                margin[k] = margin_t[k]
                stop[k] = fill_t[k] * (1.0 - side[k] * sl_frac)
                if isolated:
                    lp[k] = _lp_nb(
                        conv,
                        side[k],
                        entry[k],
                        size[k],
                        margin[k],
                        tk[k],
                        floors[k],
                        mmr[k],
                        mamt[k],
                        n_tiers[k],
                        by_size[k],
                        mmr_ovr,
                        rates[k],
                    )
            n_open = n_legs
        # events inside a coarse bar: paid by the legs held after the entry
        for k in range(n_legs):
            if side[k] != 0 and funding_on and funding[k, i, 1] == funding[k, i, 1]:
                pay = funding_payment_nb(side[k] * size[k], prices[k, i, P_MOPEN], funding[k, i, 1])
                wallet -= pay
                if isolated:
                    margin[k] -= pay
                    lp[k] = _lp_nb(
                        conv,
                        side[k],
                        entry[k],
                        size[k],
                        margin[k],
                        tk[k],
                        floors[k],
                        mmr[k],
                        mamt[k],
                        n_tiers[k],
                        by_size[k],
                        mmr_ovr,
                        rates[k],
                    )
                out[A_FUNDING] += pay

        # ---- 3. exits ----------------------------------------------------------------------
        if n_open > 0 and isolated:
            for k in range(n_legs):
                if side[k] == 0:
                    continue
                sf = float(side[k])
                pk = prices[k]
                if side[k] > 0:
                    m_adv = pk[i, P_MLOW]
                    t_adv = pk[i, P_MLOW] if on_mark else pk[i, P_LOW]
                else:
                    m_adv = pk[i, P_MHIGH]
                    t_adv = pk[i, P_MHIGH] if on_mark else pk[i, P_HIGH]
                if sf * (m_adv - lp[k]) <= 0.0 or sf * (t_adv - stop[k]) <= 0.0:
                    kk, _fill, r, f, ins, amb = _resolve_exit_nb(
                        i,
                        side[k],
                        size[k],
                        entry[k],
                        margin[k],
                        lp[k],
                        stop[k],
                        math.nan,
                        pk,
                        on_mark,
                        slip,
                        taker,
                        maker,
                        rates[k],
                        take_all,
                        owed,
                        0,
                        np.zeros(1, dtype=np.int64),
                        np.zeros(1, dtype=np.int64),
                        np.zeros((0, 3)),
                    )
                    out[A_AMBIGUOUS] += amb
                    wallet += r
                    out[A_FEES] += f
                    out[A_INSURANCE] += ins
                    reason = ER_LIQUIDATION if kk == 0 else ER_STOP_LOSS
                    if out[A_FIRST_EXIT_IDX] < 0.0:
                        out[A_FIRST_EXIT_IDX] = i
                        out[A_FIRST_EXIT_REASON] = reason
                    if kk == 0 and out[A_LIQ_IDX] < 0.0:
                        out[A_LIQ_IDX] = i
                        out[A_LIQ_LEG] = k
                        out[A_LIQ_REASON] = ER_LIQUIDATION
                    side[k] = 0
                    size[k] = 0.0
                    n_open -= 1
        elif n_open > 0:
            # cross: stops per leg, the account's liquidation (§7.6)
            any_s = False
            at_open = False
            # gaps at the open: every leg at its mark open
            for k in range(n_legs):
                marks[k] = prices[k, i, P_MOPEN]
            liq = False
            quiet = _clearly_safe_nb(
                n_legs,
                conv,
                side,
                size,
                entry,
                marks,
                wallet,
                tk,
                floors,
                mmr,
                mamt,
                n_tiers,
                by_size,
                mmr_ovr,
                rates,
            )
            for k in range(n_legs):
                if side[k] != 0 and not quiet:
                    lpk = _cross_lp_nb(
                        k,
                        n_legs,
                        conv,
                        side,
                        size,
                        entry,
                        marks,
                        wallet,
                        tk,
                        floors,
                        mmr,
                        mamt,
                        n_tiers,
                        by_size,
                        mmr_ovr,
                        rates,
                    )
                    if side[k] * (marks[k] - lpk) <= 0.0:
                        liq = True
                        break
            for k in range(n_legs):
                hit_s[k] = False
                if side[k] != 0:
                    t_open = prices[k, i, P_MOPEN] if on_mark else prices[k, i, P_OPEN]
                    if side[k] * (t_open - stop[k]) <= 0.0:
                        hit_s[k] = True
                        any_s = True
                        fill_t[k] = prices[k, i, P_OPEN] * (1.0 - side[k] * slip)
            if liq or any_s:
                at_open = True
                for k in range(n_legs):
                    fills[k] = marks[k]
            else:
                # inside the bar: the other legs at their adverse mark extremes
                for k in range(n_legs):
                    marks[k] = prices[k, i, P_MLOW] if side[k] > 0 else prices[k, i, P_MHIGH]
                    fills[k] = marks[k]
                quiet = _clearly_safe_nb(
                    n_legs,
                    conv,
                    side,
                    size,
                    entry,
                    marks,
                    wallet,
                    tk,
                    floors,
                    mmr,
                    mamt,
                    n_tiers,
                    by_size,
                    mmr_ovr,
                    rates,
                )
                for k in range(n_legs):
                    if side[k] == 0 or quiet:
                        continue
                    lpk = _cross_lp_nb(
                        k,
                        n_legs,
                        conv,
                        side,
                        size,
                        entry,
                        marks,
                        wallet,
                        tk,
                        floors,
                        mmr,
                        mamt,
                        n_tiers,
                        by_size,
                        mmr_ovr,
                        rates,
                    )
                    if side[k] * (marks[k] - lpk) <= 0.0:
                        if side[k] * (prices[k, i, P_MOPEN] - lpk) > 0.0:
                            # the deciding leg: closes at its solved price
                            for j in range(n_legs):
                                fills[j] = marks[j]
                            fills[k] = lpk
                            lp[k] = lpk
                            liq = True
                            break
                        liq = True
                for k in range(n_legs):
                    if side[k] == 0:
                        continue
                    if on_mark:
                        t_adv = prices[k, i, P_MLOW] if side[k] > 0 else prices[k, i, P_MHIGH]
                    else:
                        t_adv = prices[k, i, P_LOW] if side[k] > 0 else prices[k, i, P_HIGH]
                    if side[k] * (t_adv - stop[k]) <= 0.0:
                        hit_s[k] = True
                        any_s = True
                        fill_t[k] = stop[k] * (1.0 - side[k] * slip)
                if liq and any_s and on_mark and n_open == 1:
                    # one mark path: the level it reaches first wins (single kernel)
                    for k in range(n_legs):
                        if hit_s[k]:
                            if side[k] * (stop[k] - fills[k]) > 0.0:
                                liq = False
                            else:
                                hit_s[k] = False
                                any_s = False
            if liq or any_s:
                n_hit = 0
                if liq:
                    n_hit += 1
                # stops and their outcome: each on the wallet, the other legs at `marks`
                r_stop = 0.0
                eq_stop = 0.0
                for k in range(n_legs):
                    if side[k] != 0 and not hit_s[k]:
                        eq_stop += float(side[k]) * size[k] * (marks[k] - entry[k])
                for k in range(n_legs):
                    if hit_s[k]:
                        n_hit += 1
                        if liq:
                            pnl_k = float(side[k]) * size[k] * (fill_t[k] - entry[k])
                            if wallet + (pnl_k + eq_stop) < 0.0:
                                # bankrupt before the stop could fill: the liquidation wins
                                hit_s[k] = False
                                n_hit -= 1
                                continue
                        r, f, ins, _px = _settle_nb(
                            side[k], size[k], entry[k], fill_t[k], taker, wallet, False, owed
                        )
                        r_s[k] = r
                        f_s[k] = f
                        ins_s[k] = ins
                        r_stop += r
                any_s = False
                for k in range(n_legs):
                    if hit_s[k]:
                        any_s = True
                take_liq = liq
                r_l = 0.0
                f_l = 0.0
                ins_l = 0.0
                if liq:
                    r_l, f_l, ins_l = _settle_account_nb(
                        n_legs, side, size, entry, fills, rates, wallet, take_all, owed
                    )
                    if any_s and r_stop + eq_stop < r_l:
                        take_liq = False
                amb_liq = False
                if take_liq and n_open > 1 and not at_open:
                    # the assumption decides when the account would survive the bar with the
                    # other legs at their favourable extremes instead
                    for j in range(n_legs):
                        marks[j] = prices[j, i, P_MHIGH] if side[j] > 0 else prices[j, i, P_MLOW]
                    amb_liq = True
                    for k in range(n_legs):
                        if side[k] == 0:
                            continue
                        lpk = _cross_lp_nb(
                            k,
                            n_legs,
                            conv,
                            side,
                            size,
                            entry,
                            marks,
                            wallet,
                            tk,
                            floors,
                            mmr,
                            mamt,
                            n_tiers,
                            by_size,
                            mmr_ovr,
                            rates,
                        )
                        m_adv = prices[k, i, P_MLOW] if side[k] > 0 else prices[k, i, P_MHIGH]
                        if side[k] * (m_adv - lpk) <= 0.0:
                            amb_liq = False
                            break
                if n_hit > 1 or amb_liq:
                    out[A_AMBIGUOUS] += 1.0
                if take_liq:
                    wallet += r_l
                    out[A_FEES] += f_l
                    out[A_INSURANCE] += ins_l
                    if out[A_FIRST_EXIT_IDX] < 0.0:
                        out[A_FIRST_EXIT_IDX] = i
                        out[A_FIRST_EXIT_REASON] = ER_LIQUIDATION
                    if out[A_LIQ_IDX] < 0.0:
                        out[A_LIQ_IDX] = i
                        out[A_LIQ_LEG] = n_legs
                        out[A_LIQ_REASON] = ER_LIQUIDATION
                    for k in range(n_legs):
                        side[k] = 0
                        size[k] = 0.0
                    n_open = 0
                else:
                    for k in range(n_legs):
                        if hit_s[k]:
                            wallet += r_s[k]
                            out[A_FEES] += f_s[k]
                            out[A_INSURANCE] += ins_s[k]
                            side[k] = 0
                            size[k] = 0.0
                            n_open -= 1
                    if out[A_FIRST_EXIT_IDX] < 0.0:
                        out[A_FIRST_EXIT_IDX] = i
                        out[A_FIRST_EXIT_REASON] = ER_STOP_LOSS

        # ---- 4. mark to market at the close; ruin ----------------------------------------------
        upnl = 0.0
        for k in range(n_legs):
            if side[k] != 0:
                upnl += float(side[k]) * size[k] * (prices[k, i, P_MCLOSE] - entry[k])
        equity = wallet + upnl if n_open > 0 else wallet
        if equity < ruin_level and out[A_FIRST_EXIT_REASON] != ER_RUIN and n_open > 0:
            for k in range(n_legs):
                if side[k] != 0:
                    fill = prices[k, i, P_CLOSE] * (1.0 - side[k] * slip)
                    cap = margin[k] if isolated else wallet
                    r, f, ins, _px = _settle_nb(
                        side[k], size[k], entry[k], fill, taker, cap, False, owed
                    )
                    wallet += r
                    out[A_FEES] += f
                    out[A_INSURANCE] += ins
                    side[k] = 0
                    size[k] = 0.0
            n_open = 0
            if out[A_FIRST_EXIT_IDX] < 0.0:
                out[A_FIRST_EXIT_IDX] = i
                out[A_FIRST_EXIT_REASON] = ER_RUIN
            equity = wallet
        if equity < out[A_MIN_EQUITY]:
            out[A_MIN_EQUITY] = equity
        if n_open == 0:
            # nothing left to follow: the rest of the window changes nothing
            break

    if out[A_REJECTED] == 0.0 and out[A_FIRST_EXIT_IDX] < 0.0:
        out[A_FIRST_EXIT_IDX] = end - 1
        out[A_FIRST_EXIT_REASON] = ER_HORIZON if end < n_bars else ER_END_OF_DATA
    out[A_FINAL_EQUITY] = equity


@njit(cache=CACHE_ENABLED, parallel=True)
def simulate_accounts_nb(
    prices: np.ndarray,
    funding: np.ndarray,
    table_idx: np.ndarray,
    floors: np.ndarray,
    mmr: np.ndarray,
    mamt: np.ndarray,
    maxlev: np.ndarray,
    n_tiers: np.ndarray,
    last_cap: np.ndarray,
    by_size: np.ndarray,
    liq_rates: np.ndarray,
    weights: np.ndarray,
    start_idx: np.ndarray,
    end_idx: np.ndarray,
    fparams: np.ndarray,
    iparams: np.ndarray,
    out: np.ndarray,
) -> None:
    """Simulate every account column.

    Shapes: ``prices (K, n_bars, 8)``, ``funding (K, n_bars, 2)``, ``table_idx (K, n_bars)``,
    tier tables ``(K, n_tables, max_tiers)`` with ``n_tiers``, ``last_cap``, ``by_size``,
    ``liq_rates`` ``(K, n_tables)``, ``weights (K,)``, per column ``start_idx``, ``end_idx``,
    ``fparams (FP_N, n_cols)``, ``iparams (IP_N, n_cols)``; output ``out (n_cols, A_N)``.
    """
    n_cols = fparams.shape[1]
    n_bars = prices.shape[1]
    for c in prange(n_cols):
        _account_nb(
            start_idx[c],
            end_idx[c],
            n_bars,
            prices,
            funding,
            table_idx,
            floors,
            mmr,
            mamt,
            maxlev,
            n_tiers,
            last_cap,
            by_size,
            liq_rates,
            weights,
            np.ascontiguousarray(fparams[:, c]),
            np.ascontiguousarray(iparams[:, c]),
            out[c],
        )
