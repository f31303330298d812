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
   paid by the legs held after the entry. Each leg gets its own stop-loss
   ``entry_k·(1 − s_k·stop_loss)``, trailing stop from its own peak (``engine.kernel``'s
   ``_stop_level_nb``: the tighter of the two) and take-profit ``entry_k·(1 + s_k·take_profit)``.
3. **Exits.**
   - *isolated*: each leg on its own, with the single kernel's rule (``engine.kernel``
     ``_resolve_exit_nb``: gap at the mark open, then the mark's adverse extreme against the
     leg's own liquidation price; the stop and take-profit on the trigger price; ``worst`` or
     ``detail`` on the leg's own lower-timeframe bars); losing a leg costs its margin only.
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
     stays (``"owed"``).
     A leg's own exits (its stop, its take-profit) trigger and fill as in the single kernel (a
     gap at the open fills at the last open; stop: slippage and taker fee; take-profit: its
     price, maker fee; cap: the wallet) and remove the leg. When both of one leg's exits
     trigger in a bar, ``worst`` keeps the lower wallet change. When the account liquidation
     also triggers, a stop is dropped if the account equity at its fill (the legs without an
     exit at the bar's values) is negative (bankrupt before it could fill), and ``worst`` keeps
     the lower of the liquidation's wallet change and the leg exits' plus the unrealized PnL of
     the legs without an exit (with one leg: the single kernel's choice). With one open leg and
     ``stop_trigger="mark"`` the level its mark reaches first wins, as in the single kernel.
   - ``intrabar="detail"`` (cross): when the bar is ambiguous (several exits trigger, or the
     liquidation holds only because the legs' adverse extremes were taken as simultaneous), the
     legs' lower-timeframe bars are walked together (each leg's mark path is its detail last
     path shifted by its bar's basis at its extremes, as in the single kernel) and the first
     detail bar in which anything triggers decides, with the rules above applied to that detail
     bar (stops and take-profits fill at the detail open when it gapped through them). Detail
     bars are walked together only in bars where every leg has the same detail bars
     (``d_ok``); elsewhere, and when no detail bar triggers, the coarse ``worst`` decides, except
     that a liquidation that held only through the simultaneity assumption does not happen
     when the detail bars never reach it.
   - Not modelled yet (cross, several legs): after a leg exit fills, the other legs are not
     tested again in the same (detail) bar, and each leg exit filling in one bar is capped by
     the wallet before that bar's exits.
   - ``ambiguous_bars`` counts a bar where several exits (the account liquidation, a leg's stop
     or take-profit) triggered, and a bar in which a cross account of several open legs was
     liquidated inside the bar but would not have been with the other legs at their favourable
     extremes (the legs' adverse extremes were assumed simultaneous, and that decided the
     outcome); with ``detail``, the same test on the deciding detail bar.
   After the checks, each open leg's trailing-stop peak moves to its bar's favourable trigger
   extreme.
4. **Close.** ``equity = wallet + Σ s_k·size_k·(mark_close_k − entry_k)``; ``min_equity``; ruin
   (``equity < ruin_threshold·initial_cash``) closes every open leg at its last close (slippage,
   taker fee).

**Signal-driven columns** (``run_sweep`` on a MarketSet, ``engine.accounts_sweep``) replace step 2's
single entry with orders: a leg's packed signal bits at the close of bar ``i`` become its order for
the open of bar ``i+1`` by ``engine.kernel``'s rule 6 (``_pending_nb``), on the leg's *signal side*
``side_k·sign(w_k)``. At the open, after funding, signal exits and reversals fill first (last open
against the leg by ``slippage``, ``taker_fee``, capped by the leg's margin (isolated) or the wallet;
reason ``SIGNAL``), then the legs entering at that open are **one order**: ``want_k = order·sign(w_k)``,
``margin_k = position_size·|w_k|·wallet``; when the order costs more than the free balance (the
wallet less the open legs' margins; ``FREE_DUST`` of the wallet or less is nothing) the margins shrink
to ``free·(|w_k|/Σ|w| entering)/(1 + leverage·taker_fee)`` and the last entering leg's fee is what is
left; each entering leg is checked as above (cross: with the open legs at their mark opens) and a
refused leg refuses the whole order (``A_REJECTED`` counts the leg entries refused); after a ruin, or
a liquidation with ``after_liquidation="stop"``, entries are refused. The column runs to the end
(no early stop when flat), each leg position closed (or open at the end) is one row of ``trades``
(``T_*``), and the drawdown of close equity is measured as ``engine.kernel`` measures it.

Outputs per column (``A_*`` rows of ``out``): final equity at the window's last mark close,
min equity, first exit bar and reason (the first leg to close, the lowest leg number among legs
closing in the same bar, or the window's last bar with ``HORIZON``/``END_OF_DATA``), first
liquidation bar and which leg (K = the cross account), fees, funding, insurance draw, ambiguous
bars, rejected. Per leg (``L_*`` fields of ``legs_out``): exit bar and reason (``HORIZON`` /
``END_OF_DATA`` at the window's last bar when still open), entry and exit price, size, and the
leg's share of the wallet change: ``pnl`` (its entry fee, its funding, its exit's realized
change; when still open, its unrealized PnL at the last mark close), ``fees``, ``funding``; so
that ``Σ_k pnl_k = final_equity − initial_cash``. A cross liquidation's settlement is shared
out as: each leg's PnL at its fill less its part of the clearance fee (pro rata to
``rate_k·size_k·fill_k``), and what the cap takes or gives beyond that (a floored deficit, a
forfeited equity with ``close_at="bankruptcy"``) pro rata to the legs' maintenance margins at
the fills (§7.6.4); with ``close_at="bankruptcy"`` each leg's exit price is
``fill_k − s_k·E·w_k/size_k``, ``w_k = MM_k/Σ MM``.

This module is the bar loop; its helpers: ``accounts_layout`` (the ``A_*``/``L_*``/``T_*``
layouts, codes, the ``Tables`` tuple of a leg's tier tables), ``accounts_rules`` (per-leg
maintenance margin and liquidation prices, the cross safety test and settlement),
``accounts_cross`` (one cross bar; ``_cross_quiet_nb``: a bar where nothing can trigger skips
it), ``accounts_orders`` (step 2), ``accounts_book`` (funding, exits, trade rows). Step 1 runs
only in bars with a funding event or a tier table coming into force (``_events_nb``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from backtester.engine._jitcache import cache_enabled
from backtester.engine.accounts_book import (
    _book_liquidation_nb,
    _close_leg_nb,
    _fund_legs_nb,
    _record_leg_nb,
)
from backtester.engine.accounts_cross import (
    _coarse_bar_nb,
    _cross_bar_nb,
    _cross_quiet_nb,
    _detail_bar_nb,
    _trail_nb,
)
from backtester.engine.accounts_layout import (
    A_AMBIGUOUS,
    A_FEES,
    A_FINAL_EQUITY,
    A_FIRST_EXIT_IDX,
    A_FIRST_EXIT_REASON,
    A_INSURANCE,
    A_LIQ_IDX,
    A_LIQ_LEG,
    A_LIQ_REASON,
    A_MAX_DRAWDOWN,
    A_MIN_EQUITY,
    A_N_LIQUIDATIONS,
    A_REJECTED,
    AL_STOP,
    CA_BANKRUPTCY,
    ER_END_OF_DATA,
    ER_HORIZON,
    ER_LIQUIDATION,
    ER_NONE,
    ER_RUIN,
    ER_TAKE_PROFIT,
    FP_INITIAL_CASH,
    FP_LIQ_FEE_RATE,
    FP_MAKER_FEE,
    FP_MMR_OVERRIDE,
    FP_RUIN_THRESHOLD,
    FP_SLIPPAGE,
    FP_TAKER_FEE,
    FP_TRAILING_STOP,
    HIT_STOP,
    IB_DETAIL,
    IP_AFTER_LIQUIDATION,
    IP_CLOSE_AT,
    IP_CONVENTION,
    IP_FUNDING,
    IP_INTRABAR,
    IP_MARGIN_MODE,
    IP_NEGATIVE_BALANCE,
    IP_STOP_TRIGGER,
    K_LIQ,
    K_STOP,
    L_EXIT_IDX,
    L_EXIT_PRICE,
    L_PNL,
    L_REASON,
    MM_ISOLATED,
    NB_OWED,
    P_CLOSE,
    P_HIGH,
    P_LOW,
    P_MCLOSE,
    P_MHIGH,
    P_MLOW,
    STR_MARK,
    V_N,
)
from backtester.engine.accounts_orders import (
    _open_legs_nb,
    _order_ok_nb,
    _signal_orders_nb,
    _size_order_nb,
)
from backtester.engine.kernel import _pending_nb, _resolve_exit_nb, _settle_nb, _stop_level_nb

CACHE_ENABLED = cache_enabled(__file__)

__all__ = ["simulate_accounts_nb"]


@njit(cache=CACHE_ENABLED)
def _account_nb(
    s: int,
    end: int,
    n_bars: int,
    prices: np.ndarray,
    funding: np.ndarray,
    events: np.ndarray,
    table_idx: np.ndarray,
    floors: np.ndarray,
    mmr: np.ndarray,
    mamt: np.ndarray,
    maxlev: np.ndarray,
    n_tiers: np.ndarray,
    last_cap: np.ndarray,
    by_size: np.ndarray,
    liq_rates: np.ndarray,
    d_start: np.ndarray,
    d_end: np.ndarray,
    detail: np.ndarray,
    d_ok: np.ndarray,
    weights: np.ndarray,
    fp: np.ndarray,
    ip: np.ndarray,
    out: np.ndarray,
    legs_out: np.ndarray,
    has_sig: bool,
    sig: np.ndarray,
    trades: np.ndarray,
    eq: np.ndarray,
    leg_eq: np.ndarray,
) -> None:
    n_legs = weights.shape[0]
    trail = fp[FP_TRAILING_STOP]
    has_trail = not math.isnan(trail)
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
    policy = ip[IP_INTRABAR]
    use_detail = policy == IB_DETAIL
    stop_after_liq = ip[IP_AFTER_LIQUIDATION] == AL_STOP
    write_eq = eq.shape[0] > 0
    write_leg_eq = leg_eq.shape[0] > 0
    n_written = 0  # close equity written for bars s .. s + n_written - 1

    out[:] = 0.0
    out[A_FINAL_EQUITY] = cash
    out[A_MIN_EQUITY] = cash
    out[A_FIRST_EXIT_IDX] = -1.0
    out[A_FIRST_EXIT_REASON] = ER_NONE
    out[A_LIQ_IDX] = -1.0
    out[A_LIQ_LEG] = -1.0
    out[A_LIQ_REASON] = ER_NONE
    legs_out[:] = 0.0
    legs_out[:, L_EXIT_IDX] = -1.0
    legs_out[:, L_REASON] = ER_NONE

    side = np.zeros(n_legs, dtype=np.int64)
    size = np.zeros(n_legs)
    entry = np.zeros(n_legs)
    margin = np.zeros(n_legs)
    lp = np.full(n_legs, np.nan)
    sl = np.full(n_legs, np.nan)
    tpl = np.full(n_legs, np.nan)
    peak = np.full(n_legs, np.nan)
    stop = np.full(n_legs, np.nan)
    s_reason = np.zeros(n_legs, dtype=np.int64)
    tk = np.zeros(n_legs, dtype=np.int64)
    rates = np.zeros(n_legs)
    want = np.zeros(n_legs, dtype=np.int64)
    size_t = np.zeros(n_legs)
    margin_t = np.zeros(n_legs)
    fee_t = np.zeros(n_legs)
    # scratch of the cross bar
    bar = np.zeros((V_N, n_legs))
    marks = np.zeros(n_legs)
    fills = np.zeros(n_legs)
    fs = np.zeros(n_legs)
    ft = np.zeros(n_legs)
    hit = np.zeros(n_legs, dtype=np.int64)
    r_x = np.zeros(n_legs)
    f_x = np.zeros(n_legs)
    ins_x = np.zeros(n_legs)
    px_x = np.zeros(n_legs)
    # signal-driven accounts: each leg's pending order, sign of its weight, trade bookkeeping
    pend = np.zeros(n_legs, dtype=np.int64)
    wsign = np.zeros(n_legs, dtype=np.int64)
    e_idx = np.zeros(n_legs, dtype=np.int64)
    e_margin = np.zeros(n_legs)
    e_side = np.zeros(n_legs, dtype=np.int64)
    enter = np.zeros(n_legs, dtype=np.bool_)
    was_open = np.zeros(n_legs, dtype=np.bool_)
    c_side = np.zeros(n_legs, dtype=np.int64)
    c_size = np.zeros(n_legs)
    c_entry = np.zeros(n_legs)
    c_mark = np.zeros(n_legs)
    dead = False
    ruined = False
    peak_equity = cash
    dd_level = cash

    for k in range(n_legs):
        wsign[k] = 1 if weights[k] > 0.0 else -1
        tk[k] = table_idx[k, s]
        rates[k] = liq_rates[k, tk[k]] if table_rate else liq_fixed
    tb = (tk, floors, mmr, mamt, n_tiers, by_size, mmr_ovr, rates)
    wallet = cash
    equity = cash
    n_open = 0

    for i in range(s, end):
        # ---- 1. funding on the legs carried into the bar; tier-table changes ----------------
        if events[i, 0]:
            wallet = _fund_legs_nb(
                i, 0, wallet, conv, funding_on, funding, prices, table_idx, liq_rates, liq_fixed,
                side, size, entry, margin, lp, isolated, tb, legs_out, out,
            )  # fmt: skip

        # ---- 2. orders at the open: signal exits first, then entries -----------------------
        n_enter = 0
        if has_sig:
            wallet, n_open, n_enter = _signal_orders_nb(
                i, wallet, n_open, dead or ruined, pend, wsign, enter, want, side, size, entry,
                margin, prices, fp, isolated, owed, e_idx, e_margin, legs_out, trades, out,
            )  # fmt: skip
        elif i == s:
            for k in range(n_legs):
                enter[k] = True
                want[k] = wsign[k]
            n_enter = n_legs
        if n_enter > 0:
            # legs entering at one open are one order: sized, checked and refused together
            wallet_after = _size_order_nb(
                i, wallet, n_open, enter, want, weights, side, margin, prices, fp, margin_t,
                fills, size_t, fee_t,
            )  # fmt: skip
            ok = _order_ok_nb(
                i, conv, isolated, enter, want, fills, size_t, margin_t, side, size, entry,
                prices, wallet_after, tb, maxlev, last_cap, fp, c_side, c_size, c_entry, c_mark,
            )  # fmt: skip
            if not ok:
                if not has_sig:
                    out[A_REJECTED] = 1.0
                    break
                out[A_REJECTED] += n_enter
            else:
                wallet = wallet_after
                _open_legs_nb(
                    i, conv, isolated, enter, want, fills, size_t, margin_t, fee_t, fp, tb,
                    side, size, entry, margin, lp, sl, tpl, peak, stop, s_reason, e_idx,
                    e_margin, e_side, legs_out, out,
                )  # fmt: skip
                n_open += n_enter
        # events inside a coarse bar: paid by the legs held after the entry
        if events[i, 1]:
            wallet = _fund_legs_nb(
                i, 1, wallet, conv, funding_on, funding, prices, table_idx, liq_rates, liq_fixed,
                side, size, entry, margin, lp, isolated, tb, legs_out, out,
            )  # fmt: skip

        # ---- 3. exits ----------------------------------------------------------------------
        for k in range(n_legs):
            was_open[k] = side[k] != 0
        if n_open > 0 and isolated:
            for k in range(n_legs):
                if side[k] == 0:
                    continue
                sf = float(side[k])
                pk = prices[k, i]
                if side[k] > 0:
                    m_adv = pk[P_MLOW]
                    t_adv = pk[P_MLOW] if on_mark else pk[P_LOW]
                    t_fav = pk[P_MHIGH] if on_mark else pk[P_HIGH]
                else:
                    m_adv = pk[P_MHIGH]
                    t_adv = pk[P_MHIGH] if on_mark else pk[P_HIGH]
                    t_fav = pk[P_MLOW] if on_mark else pk[P_LOW]
                if (
                    sf * (m_adv - lp[k]) <= 0.0
                    or sf * (t_adv - stop[k]) <= 0.0
                    or sf * (t_fav - tpl[k]) >= 0.0
                ):
                    kk, fill, r, f, ins, amb = _resolve_exit_nb(
                        i,
                        side[k],
                        size[k],
                        entry[k],
                        margin[k],
                        lp[k],
                        stop[k],
                        tpl[k],
                        prices[k],
                        on_mark,
                        slip,
                        taker,
                        maker,
                        rates[k],
                        take_all,
                        owed,
                        policy,
                        d_start[k],
                        d_end[k],
                        detail[k],
                    )
                    out[A_AMBIGUOUS] += amb
                    wallet += r
                    out[A_FEES] += f
                    out[A_INSURANCE] += ins
                    if kk == K_LIQ:
                        reason = ER_LIQUIDATION
                        out[A_N_LIQUIDATIONS] += 1.0
                        if out[A_LIQ_IDX] < 0.0:
                            out[A_LIQ_IDX] = i
                            out[A_LIQ_LEG] = k
                            out[A_LIQ_REASON] = ER_LIQUIDATION
                    elif kk == K_STOP:
                        reason = s_reason[k]
                    else:
                        reason = ER_TAKE_PROFIT
                    _close_leg_nb(k, i, reason, fill, r, f, legs_out[k], out)
                    side[k] = 0
                    size[k] = 0.0
                    n_open -= 1
                elif has_trail and sf * (t_fav - peak[k]) > 0.0:
                    peak[k] = t_fav
                    stop[k], s_reason[k] = _stop_level_nb(side[k], sl[k], peak[k], trail)
        elif n_open > 0 and _cross_quiet_nb(
            i, n_legs, conv, side, size, entry, wallet, tb, prices, stop, tpl, on_mark, marks,
        ):  # fmt: skip
            # a quiet bar: nothing can trigger, only the trailing stops move
            if has_trail:
                _trail_nb(i, n_legs, side, prices, on_mark, sl, peak, trail, stop, s_reason)
        elif n_open > 0:
            # cross: the account's liquidation and each leg's own exits (§7.6)
            _coarse_bar_nb(i, n_legs, side, prices, on_mark, bar)
            res = _cross_bar_nb(
                n_legs,
                conv,
                side,
                size,
                entry,
                wallet,
                tb,
                stop,
                tpl,
                on_mark,
                slip,
                taker,
                maker,
                take_all,
                owed,
                True,
                bar,
                marks,
                fills,
                fs,
                ft,
                hit,
                r_x,
                f_x,
                ins_x,
                px_x,
            )
            n_trig, _n_hit, liq, _take, amb_liq, at_open = (
                res[0],
                res[1],
                res[2],
                res[3],
                res[4],
                res[5],
            )
            if use_detail and not at_open and d_ok[i] and (n_trig > 1 or (liq and amb_liq)):
                # walk the legs' lower-timeframe bars together: the first that triggers decides
                found = False
                for j in range(d_end[0, i] - d_start[0, i]):
                    _detail_bar_nb(i, j, n_legs, side, prices, d_start, detail, on_mark, bar)
                    res = _cross_bar_nb(
                        n_legs,
                        conv,
                        side,
                        size,
                        entry,
                        wallet,
                        tb,
                        stop,
                        tpl,
                        on_mark,
                        slip,
                        taker,
                        maker,
                        take_all,
                        owed,
                        False,
                        bar,
                        marks,
                        fills,
                        fs,
                        ft,
                        hit,
                        r_x,
                        f_x,
                        ins_x,
                        px_x,
                    )
                    if res[0] > 0:
                        found = True
                        break
                if not found:
                    if n_trig == 1 and liq and amb_liq:
                        # the liquidation needed simultaneous extremes, which the detail never
                        # reached: nothing happens in this bar
                        res = (0, 0, False, False, False, False, 0.0, 0.0, 0.0)
                    else:
                        # the detail bars do not reach the bar's extremes: `worst` decides
                        _coarse_bar_nb(i, n_legs, side, prices, on_mark, bar)
                        res = _cross_bar_nb(
                            n_legs,
                            conv,
                            side,
                            size,
                            entry,
                            wallet,
                            tb,
                            stop,
                            tpl,
                            on_mark,
                            slip,
                            taker,
                            maker,
                            take_all,
                            owed,
                            True,
                            bar,
                            marks,
                            fills,
                            fs,
                            ft,
                            hit,
                            r_x,
                            f_x,
                            ins_x,
                            px_x,
                        )
            n_trig, n_hit, liq, take_liq, amb_liq = res[0], res[1], res[2], res[3], res[4]
            r_l, f_l, ins_l = res[6], res[7], res[8]
            if n_trig > 0:
                if n_hit > 1 or (take_liq and amb_liq):
                    out[A_AMBIGUOUS] += 1.0
                if take_liq:
                    _book_liquidation_nb(
                        i,
                        n_legs,
                        conv,
                        side,
                        size,
                        entry,
                        fills,
                        tb,
                        wallet,
                        r_l,
                        f_l,
                        take_all,
                        legs_out,
                        out,
                    )
                    wallet += r_l
                    out[A_FEES] += f_l
                    out[A_INSURANCE] += ins_l
                    out[A_N_LIQUIDATIONS] += 1.0
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
                        if hit[k] != 0:
                            wallet += r_x[k]
                            out[A_FEES] += f_x[k]
                            out[A_INSURANCE] += ins_x[k]
                            reason = s_reason[k] if hit[k] == HIT_STOP else ER_TAKE_PROFIT
                            _close_leg_nb(k, i, reason, px_x[k], r_x[k], f_x[k], legs_out[k], out)
                            side[k] = 0
                            size[k] = 0.0
                            n_open -= 1
            if has_trail:
                _trail_nb(i, n_legs, side, prices, on_mark, sl, peak, trail, stop, s_reason)

        # ---- 4. mark to market at the close; ruin ----------------------------------------------
        upnl = 0.0
        for k in range(n_legs):
            if side[k] != 0:
                upnl += float(side[k]) * size[k] * (prices[k, i, P_MCLOSE] - entry[k])
        equity = wallet + upnl if n_open > 0 else wallet
        if equity < ruin_level and n_open > 0:
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
                    _close_leg_nb(k, i, ER_RUIN, fill, r, f, legs_out[k], out)
                    side[k] = 0
                    size[k] = 0.0
            n_open = 0
            equity = wallet
            ruined = True
        if equity < out[A_MIN_EQUITY]:
            out[A_MIN_EQUITY] = equity
        if write_eq:
            eq[i - s] = equity
            if write_leg_eq:
                # each leg's share so far: its booked PnL plus its unrealized PnL at the close
                for k in range(n_legs):
                    v = legs_out[k, L_PNL]
                    if side[k] != 0:
                        v += float(side[k]) * size[k] * (prices[k, i, P_MCLOSE] - entry[k])
                    leg_eq[i - s, k] = v
            n_written = i - s + 1
        if has_sig:
            for k in range(n_legs):
                if was_open[k] and side[k] == 0:  # closed in this bar: one trade
                    lo = legs_out[k]
                    _record_leg_nb(k, e_side[k], e_idx[k], e_margin[k], lo, trades, out)
            if stop_after_liq and out[A_LIQ_IDX] >= 0.0:
                dead = True
            # drawdown from the running peak of close equity, as engine.kernel measures it
            if equity > peak_equity:
                peak_equity = equity
                dd_level = peak_equity * (1.0 - out[A_MAX_DRAWDOWN])
            elif equity < dd_level and peak_equity > 0.0:
                out[A_MAX_DRAWDOWN] = (peak_equity - equity) / peak_equity
                dd_level = peak_equity * (1.0 - out[A_MAX_DRAWDOWN])
            # ---- 5. signals at the close become pending for the next open --------------------
            if i + 1 < end:
                for k in range(n_legs):
                    bits = sig[k, i]
                    if bits != 0:
                        pend[k] = _pending_nb(side[k] * wsign[k], bits, pend[k])
        elif n_open == 0:
            # nothing left to follow: the rest of the window changes nothing
            break

    if has_sig or out[A_REJECTED] == 0.0:
        censored = ER_HORIZON if end < n_bars else ER_END_OF_DATA
        for k in range(n_legs):
            if side[k] != 0:
                # still open at the window's end: valued at its last mark close
                mc = prices[k, end - 1, P_MCLOSE]
                lo = legs_out[k]
                lo[L_EXIT_IDX] = end - 1
                lo[L_REASON] = censored
                lo[L_EXIT_PRICE] = mc
                lo[L_PNL] += float(side[k]) * size[k] * (mc - entry[k])
                if has_sig:
                    _record_leg_nb(k, side[k], e_idx[k], e_margin[k], lo, trades, out)
        if out[A_FIRST_EXIT_IDX] < 0.0:
            out[A_FIRST_EXIT_IDX] = end - 1
            out[A_FIRST_EXIT_REASON] = censored
    out[A_FINAL_EQUITY] = equity
    if write_eq:
        # after the last leg closed (or a refused entry) nothing moves to the window's end
        for j in range(n_written, min(eq.shape[0], end - s)):
            eq[j] = equity
            if write_leg_eq:
                for k in range(n_legs):
                    leg_eq[j, k] = legs_out[k, L_PNL]


@njit(cache=CACHE_ENABLED)
def _events_nb(funding: np.ndarray, table_idx: np.ndarray) -> np.ndarray:
    # (n_bars, 2): bar i has, for some leg, a funding event at its open or a tier table coming
    # into force ([i, 0]), or a funding event inside it ([i, 1]); the other bars skip step 1's
    # funding helper (which would change nothing there) and its call's cost
    n_legs, n_bars = table_idx.shape
    events = np.zeros((n_bars, 2), dtype=np.bool_)
    for k in range(n_legs):
        for i in range(n_bars):
            if i > 0 and table_idx[k, i] != table_idx[k, i - 1]:
                events[i, 0] = True
            for at in range(2):
                if funding[k, i, at] == funding[k, i, at]:
                    events[i, at] = True
    return events


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
    d_start: np.ndarray,
    d_end: np.ndarray,
    detail: np.ndarray,
    d_ok: np.ndarray,
    weights: np.ndarray,
    start_idx: np.ndarray,
    end_idx: np.ndarray,
    fparams: np.ndarray,
    iparams: np.ndarray,
    out: np.ndarray,
    legs_out: np.ndarray,
    sig: np.ndarray,
    sig_idx: np.ndarray,
    trades: np.ndarray,
    eq: np.ndarray,
    leg_eq: np.ndarray,
) -> None:
    """Simulate every account column.

    Shapes: ``prices (K, n_bars, 8)``, ``funding (K, n_bars, 2)``, ``table_idx (K, n_bars)``,
    tier tables ``(K, n_tables, max_tiers)`` with ``n_tiers``, ``last_cap``, ``by_size``,
    ``liq_rates`` ``(K, n_tables)``, each leg's detail bars ``detail (K, n_detail, 3)`` (open,
    high, low) with ``d_start/d_end (K, n_bars)`` and ``d_ok (n_bars,)`` (every leg has the same
    detail bars in that bar: cross accounts walk them together), ``weights (K,)``, per column
    ``start_idx``, ``end_idx``, ``fparams (FP_N, n_cols)``, ``iparams (IP_N, n_cols)``; outputs
    ``out (n_cols, A_N)`` and ``legs_out (n_cols, K, L_N)``.

    Signal-driven columns (``sig_idx[c] >= 0``) follow the packed signal bits ``sig[sig_idx[c]]
    (K, n_bars)`` (``engine.kernel``'s bits, one row per leg) and write their trades to
    ``trades[c] (cap, T_N)`` (count ``A_N_TRADES``, ``A_OVERFLOW`` when the buffer is too small)
    and, when ``eq`` has bars, their close equity to ``eq[c] (n_bars,)``; entry-driven columns
    (``sig_idx[c] == -1``) enter every leg at ``start_idx[c]``. ``eq (n_cols, n_eq)`` (``n_eq``
    0: none) gets bar ``start_idx[c] + j``'s close equity in ``eq[c, j]``, and ``leg_eq (n_cols,
    n_eq, K)`` (entry-driven columns) each leg's share of it so far (booked PnL plus unrealized
    PnL at the mark close; ``initial_cash + Σ_k leg_eq = eq``).
    """
    n_cols = fparams.shape[1]
    n_bars = prices.shape[1]
    events = _events_nb(funding, table_idx)
    for c in prange(n_cols):
        _account_nb(
            start_idx[c],
            end_idx[c],
            n_bars,
            prices,
            funding,
            events,
            table_idx,
            floors,
            mmr,
            mamt,
            maxlev,
            n_tiers,
            last_cap,
            by_size,
            liq_rates,
            d_start,
            d_end,
            detail,
            d_ok,
            weights,
            np.ascontiguousarray(fparams[:, c]),
            np.ascontiguousarray(iparams[:, c]),
            out[c],
            legs_out[c],
            sig_idx[c] >= 0,
            sig[max(sig_idx[c], 0)],
            trades[c],
            eq[c],
            leg_eq[c],
        )
