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
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from backtester.engine._jitcache import cache_enabled
from backtester.engine.enums import (
    AfterLiquidation,
    CloseAt,
    ExitReason,
    Intrabar,
    MarginMode,
    NegativeBalance,
    StopTrigger,
)
from backtester.engine.kernel import (
    PENDING_CLOSE,
    _lp_nb,
    _pending_nb,
    _resolve_exit_nb,
    _settle_nb,
    _stop_level_nb,
)
from backtester.engine.layout import FParam, IParam
from backtester.rules.formulas import (
    funding_payment_nb,
    liquidation_price_nb,
    maint_margin_nb,
    max_leverage_nb,
)

CACHE_ENABLED = cache_enabled(__file__)

# a leg's tier tables and liquidation-fee rate, one argument: (table in force per leg ``tk``,
# ``floors``, ``mmr``, ``mamt``, ``n_tiers``, ``by_size``, the flat ``mmr_ovr`` (NaN: tiers),
# the liquidation-fee rate in force per leg ``rates``); ``tk`` and ``rates`` move with the bars
Tables = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray
]

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
    "A_MAX_DRAWDOWN",
    "A_MIN_EQUITY",
    "A_N",
    "A_N_LIQUIDATIONS",
    "A_N_TRADES",
    "A_OVERFLOW",
    "A_REJECTED",
    "L_ENTRY_PRICE",
    "L_EXIT_IDX",
    "L_EXIT_PRICE",
    "L_FEES",
    "L_FUNDING",
    "L_N",
    "L_PNL",
    "L_REASON",
    "L_SIZE",
    "MAX_LEGS",
    "T_N",
    "simulate_accounts_nb",
]

MAX_LEGS = 16
# a free balance below this fraction of the wallet is float dust left by a lost margin
FREE_DUST = 1e-9

CA_BANKRUPTCY = int(CloseAt.BANKRUPTCY)
ER_END_OF_DATA = int(ExitReason.END_OF_DATA)
ER_HORIZON = int(ExitReason.HORIZON)
ER_LIQUIDATION = int(ExitReason.LIQUIDATION)
ER_NONE = int(ExitReason.NONE)
ER_SIGNAL = int(ExitReason.SIGNAL)
AL_STOP = int(AfterLiquidation.STOP)
ER_RUIN = int(ExitReason.RUIN)
ER_STOP_LOSS = int(ExitReason.STOP_LOSS)
ER_TAKE_PROFIT = int(ExitReason.TAKE_PROFIT)
FP_INITIAL_CASH = int(FParam.INITIAL_CASH)
FP_LEVERAGE = int(FParam.LEVERAGE)
FP_LIQ_FEE_RATE = int(FParam.LIQ_FEE_RATE)
FP_MMR_OVERRIDE = int(FParam.MMR_OVERRIDE)
FP_POSITION_SIZE = int(FParam.POSITION_SIZE)
FP_RUIN_THRESHOLD = int(FParam.RUIN_THRESHOLD)
FP_SLIPPAGE = int(FParam.SLIPPAGE)
FP_STOP_LOSS = int(FParam.STOP_LOSS)
FP_TAKE_PROFIT = int(FParam.TAKE_PROFIT)
FP_TRAILING_STOP = int(FParam.TRAILING_STOP)
FP_TAKER_FEE = int(FParam.TAKER_FEE)
FP_MAKER_FEE = int(FParam.MAKER_FEE)
IP_AFTER_LIQUIDATION = int(IParam.AFTER_LIQUIDATION)
IP_CLOSE_AT = int(IParam.CLOSE_AT)
IP_CONVENTION = int(IParam.CONVENTION)
IP_FUNDING = int(IParam.FUNDING)
IP_INTRABAR = int(IParam.INTRABAR)
IP_MARGIN_MODE = int(IParam.MARGIN_MODE)
IP_NEGATIVE_BALANCE = int(IParam.NEGATIVE_BALANCE)
IP_STOP_TRIGGER = int(IParam.STOP_TRIGGER)
IB_DETAIL = int(Intrabar.DETAIL)
MM_ISOLATED = int(MarginMode.ISOLATED)
NB_OWED = int(NegativeBalance.OWED)
STR_MARK = int(StopTrigger.MARK)

P_OPEN, P_HIGH, P_LOW, P_CLOSE, P_MOPEN, P_MHIGH, P_MLOW, P_MCLOSE = 0, 1, 2, 3, 4, 5, 6, 7
K_LIQ, K_STOP, K_TP = 0, 1, 2
# a leg's exits triggered in a bar (bits), then the one kept
HIT_STOP, HIT_TP = 1, 2
# rows of the per-leg values of one (coarse or detail) bar, ``bar (V_N, K)``: mark open / adverse
# / favourable extreme, trigger price open / adverse / favourable extreme, last open
V_MO, V_MADV, V_MFAV, V_TO, V_TADV, V_TFAV, V_OP = range(7)
V_N = 7

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
    A_MAX_DRAWDOWN,
    A_N_LIQUIDATIONS,
    A_N_TRADES,
    A_OVERFLOW,
) = range(16)
A_N = 16
# fields of the per-leg output ``legs_out (n_cols, K, L_N)``
L_EXIT_IDX, L_REASON, L_ENTRY_PRICE, L_EXIT_PRICE, L_SIZE, L_PNL, L_FEES, L_FUNDING = range(8)
L_N = 8
# fields of a signal-driven account's trade buffer ``trades (n_cols, cap, T_N)``: one row per
# leg's closed (or, at the end, still open) position
(
    T_LEG,
    T_ENTRY_IDX,
    T_EXIT_IDX,
    T_SIDE,
    T_ENTRY_PRICE,
    T_EXIT_PRICE,
    T_SIZE,
    T_MARGIN,
    T_FEES,
    T_FUNDING,
    T_PNL,
    T_REASON,
) = range(12)
T_N = 12


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
    j: int,
    conv: int,
    size: np.ndarray,
    entry: np.ndarray,
    mark: float,
    tb: Tables,
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
    if _clearly_safe_nb(
        n_legs,
        conv,
        side,
        size,
        entry,
        marks,
        wallet,
        tb,
    ):
        return False
    liq = False
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
            tb,
        )
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
        liq = _liq_leg_nb(
            n_legs,
            conv,
            side,
            size,
            entry,
            marks,
            wallet,
            tb,
            marks,
            False,
            fills,
        )
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
            n_legs,
            conv,
            side,
            size,
            entry,
            marks,
            wallet,
            tb,
            bar[V_MO],
            not open_phase,
            fills,
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
            lpk = _cross_lp_nb(
                k,
                n_legs,
                conv,
                side,
                size,
                entry,
                marks,
                wallet,
                tb,
            )
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


@njit(cache=CACHE_ENABLED)
def _close_leg_nb(
    k: int,
    i: int,
    reason: int,
    price: float,
    r: float,
    f: float,
    lo: np.ndarray,
    out: np.ndarray,
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
def _leg_lp_nb(
    k: int,
    conv: int,
    side: int,
    entry: float,
    size: float,
    margin: float,
    tb: Tables,
) -> float:
    # an isolated leg's liquidation price on its own margin and table in force
    tk, floors, mmr, mamt, n_tiers, by_size, mmr_ovr, rates = tb
    return _lp_nb(
        conv,
        side,
        entry,
        size,
        margin,
        tk[k],
        floors[k],
        mmr[k],
        mamt[k],
        n_tiers[k],
        by_size[k],
        mmr_ovr,
        rates[k],
    )


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
            mm_sum += _leg_mm_nb(
                k,
                conv,
                size,
                entry,
                fills[k],
                tb,
            )
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
    lev = fp[FP_LEVERAGE]
    psize = fp[FP_POSITION_SIZE]
    sl_frac = fp[FP_STOP_LOSS]
    tp_frac = fp[FP_TAKE_PROFIT]
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
        wallet = _fund_legs_nb(
            i, 0, wallet, conv, funding_on, funding, prices, table_idx, liq_rates, liq_fixed,
            side, size, entry, margin, lp, isolated, tb, legs_out, out,
        )  # fmt: skip

        # ---- 2. orders at the open: signal exits first, then entries -----------------------
        n_enter = 0
        if has_sig:
            for k in range(n_legs):
                enter[k] = False
                p = pend[k]
                if p == 0:
                    continue
                pend[k] = 0
                if side[k] != 0 and (p == PENDING_CLOSE or p == -side[k] * wsign[k]):
                    fill = prices[k, i, P_OPEN] * (1.0 - side[k] * slip)
                    cap = margin[k] if isolated else wallet
                    r, f, ins, _px = _settle_nb(
                        side[k], size[k], entry[k], fill, taker, cap, False, owed
                    )
                    wallet += r
                    out[A_FEES] += f
                    out[A_INSURANCE] += ins
                    _close_leg_nb(k, i, ER_SIGNAL, fill, r, f, legs_out[k], out)
                    _record_leg_nb(k, side[k], e_idx[k], e_margin[k], legs_out[k], trades, out)
                    side[k] = 0
                    size[k] = 0.0
                    n_open -= 1
                if p != PENDING_CLOSE and side[k] == 0:
                    if dead or ruined:
                        out[A_REJECTED] += 1.0
                    else:
                        enter[k] = True
                        want[k] = p * wsign[k]
                        n_enter += 1
        elif i == s:
            for k in range(n_legs):
                enter[k] = True
                want[k] = wsign[k]
            n_enter = n_legs
        if n_enter > 0:
            # legs entering at one open are one order: sized, checked and refused together
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
            ok = True
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
                wallet_after = m_sum if n_open == 0 else wallet - (avail - m_sum)
            else:
                fee_sum += fee_t[last]
                wallet_after = wallet - fee_sum
            for k in range(n_legs):
                if not enter[k]:
                    continue
                t = tk[k]
                n = n_tiers[k, t]
                if not (margin_t[k] > 0.0 and size_t[k] > 0.0):  # a size of float dust: refused
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
            if ok and not isolated:
                # the other legs as they stand: the entering ones at their fills, the open ones
                # at their mark open
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
            if ok:
                for k in range(n_legs):
                    if not enter[k]:
                        continue
                    if isolated:
                        lp_t = _leg_lp_nb(
                            k,
                            conv,
                            want[k],
                            fills[k],
                            size_t[k],
                            margin_t[k],
                            tb,
                        )
                    else:
                        lp_t = _cross_lp_nb(
                            k,
                            n_legs,
                            conv,
                            c_side,
                            c_size,
                            c_entry,
                            c_mark,
                            wallet_after,
                            tb,
                        )
                    if not want[k] * (fills[k] - lp_t) > 0.0:
                        ok = False
                        break
            if not ok:
                if not has_sig:
                    out[A_REJECTED] = 1.0
                    break
                out[A_REJECTED] += n_enter
            else:
                wallet = wallet_after
                for k in range(n_legs):
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
                        lp[k] = _leg_lp_nb(
                            k,
                            conv,
                            side[k],
                            entry[k],
                            size[k],
                            margin[k],
                            tb,
                        )
                n_open += n_enter
        # events inside a coarse bar: paid by the legs held after the entry
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
