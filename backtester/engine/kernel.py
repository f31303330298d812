"""Numba simulation kernel: leveraged perpetual positions bar by bar (layer: engine.kernel).

Inputs are NumPy arrays only (``engine.run`` validates, broadcasts and batches). Columns never
share state; ``simulate_nb`` runs blocks of columns in parallel and walks time in chunks so the
market arrays of a chunk stay in cache while every column of the block consumes them. Bars where
a position is held and nothing can happen take a tight loop (``_quiet``); in long runs of them it
passes whole blocks of ``QUIET_BLOCK`` bars whose price extremes (``bar_extremes``) prove that no
bar of the block triggers or sets a statistic (``_quiet_blocks_nb``: exact, not approximate; the
results are the same bit for bit as stepping every bar).

Bar semantics (bar ``i`` of a column, in this order; each rule has its own test)
------------------------------------------------------------------------------
Prices: ``open/high/low/close`` are last-price bars, ``mark_*`` the mark-price bars. ``s`` is +1
for a long, -1 for a short; ``size`` is the absolute position size in base units.

1. **Funding.** If a funding event falls on the bar's open time (``funding[i, 0]`` not NaN, the
   rate summed over such events) and funding is on, the position carried into the bar pays
   ``s·size·mark_open[i]·rate`` (longs pay when the rate is positive): only positions open at the
   funding time pay, so an entry filled at that open does not and an exit filled at it does. The
   cash moves the wallet and, in isolated mode, the position's margin, so it moves the liquidation
   price (recomputed at once). Exact for bars whose opens fall on the funding times (1m, 1h, 4h, 8h).
   Events strictly inside a coarser bar (``funding[i, 1]``, e.g. 08:00 and 16:00 in a 1d bar) are
   paid after step 2 by the position held after the open's fills, also on ``mark_open[i]``
   (approximation: the mark at that time and whether an intrabar exit came first are unknown).
   A change of the tier table in force (``table_idx[i]``) also recomputes the liquidation price.
2. **Pending orders fill at the open.** A signal seen at the close of bar ``i-1`` fills at
   ``open[i]`` moved against the trader by ``slippage`` (buy ``open·(1+slippage)``, sell
   ``open·(1-slippage)``) and pays ``taker_fee`` on the notional. Exits and reversals close first.
   Entry size: ``margin = position_size × equity``, ``notional = margin × leverage``,
   ``size = notional / fill``; the order costs ``margin + fee`` with ``fee = notional × taker_fee``
   paid from the wallet, and when the wallet cannot pay both the margin shrinks to
   ``wallet / (1 + leverage × taker_fee)``, so the position's leverage is always exactly
   ``leverage`` (as on the exchanges, where the order cost includes the opening fee); then the fee
   is what the wallet holds beyond the margin, so the wallet left is exactly the margin. The entry
   is rejected (counted in ``n_rejected``, not an error) when the notional's tier allows less than
   ``leverage``, when the notional (or size, for tables by size) exceeds the cap of the table's
   last tier (the exchange refuses such an order; the last tier is not extrapolated), when the
   margin is <= 0 or the size rounds to 0 (a wallet worn down to float dust), when the
   position would be liquidatable at its own entry price (initial margin at or below
   maintenance margin), after a ruin, or after a liquidation with
   ``after_liquidation="stop"``. An isolated position's margin is that margin; a cross position is
   backed by the whole wallet. The liquidation price comes from ``rules.formulas.liquidation_price_nb`` with the
   column's exchange convention, the tier table in force and the current margin (cross: wallet).
3. **Gaps at the open.** A mark open at or beyond the liquidation price liquidates at the mark
   open; a trigger-price open (last, or mark with ``stop_trigger="mark"``) at or beyond the stop
   fills the stop at the last open (with slippage); beyond the take-profit, the take-profit fills
   at the last open (maker fee, no slippage: it is a resting limit order).
4. **Inside the bar.** Liquidation when the mark's adverse extreme (mark low for a long, mark high
   for a short) reaches the liquidation price; fills at the liquidation price. The stop (stop-loss
   ``entry·(1 - s·stop_loss)`` or trailing ``peak·(1 - s·trailing_stop)``, whichever is tighter)
   triggers on the trigger price's adverse extreme and fills at the stop price with slippage and
   taker fee; the take-profit ``entry·(1 + s·take_profit)`` on the favourable extreme fills at its
   price with the maker fee. When several can trigger in one bar (or at one open) the ``intrabar``
   policy chooses: ``worst`` (default) takes the outcome with the lowest wallet for the trader,
   ``best`` the highest, ``detail`` walks the lower-timeframe bars inside the bar (they carry last
   prices only: the mark path is approximated by the detail last path shifted by the bar's basis at
   its adverse extreme, ``mark_low - low`` for a long, ``mark_high - high`` for a short, so the
   detail walk liquidates exactly when the bar's mark extreme does). Every bar resolved by an
   assumption (worst/best, or a detail bar in which several still trigger) adds one to
   ``ambiguous_bars``. One exception is not an assumption: with ``stop_trigger="mark"`` a stop and a
   liquidation ride the same mark path, so the level the mark reaches first wins. Nor is a second:
   when a liquidation triggers in the bar, a stop whose fill lies beyond the bankruptcy price is
   dropped (the position would be bankrupt before the stop could fill), so the liquidation wins.
   Settlement of every exit: ``pnl = s·size·(fill - entry_price)``; the fee is capped by what is left
   of the margin (isolated) or of the wallet (cross), so isolated margin loses at most the margin
   assigned to it; a loss is never booked below the margin (cross: the wallet) through rounding,
   so a position that took the whole wallet leaves exactly 0.0. A liquidation at the liquidation
   price charges ``liquidation_fee_rate × size × price`` capped by the equity left
   (``close_at="liquidation"``, the trade's exit price is the liquidation price), or is taken over
   at the bankruptcy price (``close_at="bankruptcy"``: the trade's exit price is the bankruptcy
   price, the trader loses the margin and pays no fee; what was left of it goes to the exchange).
   When the fill lies beyond the bankruptcy price (a gap), the position closes at the fill; the
   trader's balance is floored (loses exactly the margin) and the loss beyond the margin is an
   ``insurance_draw``, unless ``negative_balance="owed"``: then the trader's balance books the
   whole loss and the insurance fund pays nothing.
   After the checks, a trailing stop's peak moves to the bar's favourable trigger extreme.
5. **Close.** ``equity = wallet + s·size·(mark_close - entry_price)`` (the wallet includes isolated
   margin). Drawdown is measured on this equity. If ``equity < ruin_threshold × initial_cash`` the
   column is ruined: an open position is closed at the last close (slippage, taker fee, reason
   ``RUIN``) and no new entries follow.
6. **Signals** at the close of bar ``i`` become pending for bar ``i+1``. Flat: a long (short) entry
   opens that side unless both entries or that side's exit are also set. Long: a short entry
   reverses, else a long exit closes. Short: symmetric.

At the end of a column's window an open position is recorded as a trade with exit reason
``HORIZON`` (window shorter than the data) or ``END_OF_DATA``, valued at the last mark close.
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
    Stat,
    StopTrigger,
)
from backtester.engine.layout import FParam, IParam
from backtester.rules.formulas import (
    bankruptcy_price_nb,
    funding_payment_nb,
    liquidation_price_inline_nb,
    max_leverage_nb,
)

# numba's cache is keyed on this file only, but the kernel inlines rules.formulas and freezes
# the enums and parameter rows it imports: backtester.engine._jitcache adds the content of every
# module this file imports (transitively) to the key, or turns the cache off with a warning when
# it cannot (see there). True when the kernels use the on-disk cache.
CACHE_ENABLED = cache_enabled(__file__)

__all__ = [
    "BLOCK",
    "CACHE_ENABLED",
    "CHUNK",
    "NTF",
    "QUIET_BLOCK",
    "bar_extremes",
    "init_stats_nb",
    "simulate_nb",
]

# enum values as plain module globals (numba folds ints, not class attributes)
AL_STOP = int(AfterLiquidation.STOP)
CA_BANKRUPTCY = int(CloseAt.BANKRUPTCY)
ER_END_OF_DATA = int(ExitReason.END_OF_DATA)
ER_HORIZON = int(ExitReason.HORIZON)
ER_LIQUIDATION = int(ExitReason.LIQUIDATION)
ER_NONE = int(ExitReason.NONE)
ER_RUIN = int(ExitReason.RUIN)
ER_SIGNAL = int(ExitReason.SIGNAL)
ER_STOP_LOSS = int(ExitReason.STOP_LOSS)
ER_TAKE_PROFIT = int(ExitReason.TAKE_PROFIT)
ER_TRAILING_STOP = int(ExitReason.TRAILING_STOP)
FP_INITIAL_CASH = int(FParam.INITIAL_CASH)
FP_LEVERAGE = int(FParam.LEVERAGE)
FP_LIQ_FEE_RATE = int(FParam.LIQ_FEE_RATE)
FP_MAKER_FEE = int(FParam.MAKER_FEE)
FP_MMR_OVERRIDE = int(FParam.MMR_OVERRIDE)
FP_N = int(FParam.N)
FP_POSITION_SIZE = int(FParam.POSITION_SIZE)
FP_RUIN_THRESHOLD = int(FParam.RUIN_THRESHOLD)
FP_SLIPPAGE = int(FParam.SLIPPAGE)
FP_STOP_LOSS = int(FParam.STOP_LOSS)
FP_TAKER_FEE = int(FParam.TAKER_FEE)
FP_TAKE_PROFIT = int(FParam.TAKE_PROFIT)
FP_TRAILING_STOP = int(FParam.TRAILING_STOP)
IP_AFTER_LIQUIDATION = int(IParam.AFTER_LIQUIDATION)
IP_CLOSE_AT = int(IParam.CLOSE_AT)
IP_CONVENTION = int(IParam.CONVENTION)
IP_FUNDING = int(IParam.FUNDING)
IP_INTRABAR = int(IParam.INTRABAR)
IP_MARGIN_MODE = int(IParam.MARGIN_MODE)
IP_N = int(IParam.N)
IP_NEGATIVE_BALANCE = int(IParam.NEGATIVE_BALANCE)
IP_STOP_TRIGGER = int(IParam.STOP_TRIGGER)
IB_BEST = int(Intrabar.BEST)
IB_DETAIL = int(Intrabar.DETAIL)
MM_ISOLATED = int(MarginMode.ISOLATED)
NB_OWED = int(NegativeBalance.OWED)
ST_AMBIGUOUS_BARS = int(Stat.AMBIGUOUS_BARS)
ST_BARS_IN_MARKET = int(Stat.BARS_IN_MARKET)
ST_FEES_PAID = int(Stat.FEES_PAID)
ST_FINAL_EQUITY = int(Stat.FINAL_EQUITY)
ST_FIRST_EXIT_IDX = int(Stat.FIRST_EXIT_IDX)
ST_FIRST_EXIT_REASON = int(Stat.FIRST_EXIT_REASON)
ST_FIRST_LIQUIDATION_IDX = int(Stat.FIRST_LIQUIDATION_IDX)
ST_FUNDING_PAID = int(Stat.FUNDING_PAID)
ST_GROSS_LOSS = int(Stat.GROSS_LOSS)
ST_GROSS_PROFIT = int(Stat.GROSS_PROFIT)
ST_INSURANCE_DRAW = int(Stat.INSURANCE_DRAW)
ST_MAX_DRAWDOWN = int(Stat.MAX_DRAWDOWN)
ST_MIN_EQUITY = int(Stat.MIN_EQUITY)
ST_MIN_LIQUIDATION_DISTANCE = int(Stat.MIN_LIQUIDATION_DISTANCE)
ST_N = int(Stat.N)
ST_N_BARS = int(Stat.N_BARS)
ST_N_LIQUIDATIONS = int(Stat.N_LIQUIDATIONS)
ST_N_REJECTED = int(Stat.N_REJECTED)
ST_N_RETURNS = int(Stat.N_RETURNS)
ST_N_SIGNAL_EXITS = int(Stat.N_SIGNAL_EXITS)
ST_N_STOPS = int(Stat.N_STOPS)
ST_N_TAKE_PROFITS = int(Stat.N_TAKE_PROFITS)
ST_N_TRADES = int(Stat.N_TRADES)
ST_N_WINS = int(Stat.N_WINS)
ST_OVERFLOW = int(Stat.OVERFLOW)
ST_RET_DOWN_SQ = int(Stat.RET_DOWN_SQ)
ST_RET_SUM = int(Stat.RET_SUM)
ST_RET_SUM_SQ = int(Stat.RET_SUM_SQ)
ST_RUINED = int(Stat.RUINED)
ST_RUIN_IDX = int(Stat.RUIN_IDX)
STR_MARK = int(StopTrigger.MARK)

# price columns of the packed (n_bars, 8) array
P_OPEN, P_HIGH, P_LOW, P_CLOSE, P_MOPEN, P_MHIGH, P_MLOW, P_MCLOSE = 0, 1, 2, 3, 4, 5, 6, 7
# signal bits of the packed (n_sig, n_bars) uint8 array
SIG_LONG_ENTRY, SIG_LONG_EXIT, SIG_SHORT_ENTRY, SIG_SHORT_EXIT = 1, 2, 4, 8
PENDING_CLOSE = 2

# fields of the float trade buffer (n_cols, cap, NTF); converted to records.trade_dt by run.py
(
    TF_ID,
    TF_COL,
    TF_IDX,
    TF_ENTRY_IDX,
    TF_SIDE,
    TF_ENTRY_PRICE,
    TF_EXIT_PRICE,
    TF_SIZE,
    TF_LEVERAGE,
    TF_MARGIN,
    TF_FEES,
    TF_FUNDING,
    TF_PNL,
    TF_REASON,
) = range(14)
NTF = 14

# candidate exit kinds
K_LIQ, K_STOP, K_TP = 0, 1, 2

BLOCK = 8  # columns per parallel task
CHUNK = 4096  # bars per time chunk (the chunk's market rows, 256 KiB, stay in L2 across the block)

# float state slots
(
    SF_WALLET,
    SF_SIZE,
    SF_ENTRY,
    SF_MARGIN,
    SF_LP,
    SF_SL,
    SF_TP,
    SF_PEAK,
    SF_ENTRY_WALLET,
    SF_TRADE_FEES,
    SF_TRADE_FUNDING,
    SF_PEAK_EQUITY,
    SF_ENTRY_MARGIN,
) = range(13)
NSF = 13
# int state slots
SI_SIDE, SI_PENDING, SI_ENTRY_IDX, SI_TABLE, SI_DEAD, SI_RUINED = range(6)
NSI = 6


@njit(cache=CACHE_ENABLED)
def _table_rows_nb(
    t: int,
    floors: np.ndarray,
    mmr: np.ndarray,
    mamt: np.ndarray,
    n_tiers: np.ndarray,
    by_size: np.ndarray,
) -> tuple:  # type: ignore[type-arg]
    # table t's tier rows, which _lp_nb reads. A span takes them when it starts and when the
    # table in force changes, not at every liquidation price: each slice of the shared tier
    # arrays increments and decrements their reference count, an atomic write to memory both
    # threads share, and a funding event (every 8 bars of 1h) computes one price. Taking them
    # once was 7 % faster on the default study's engine run (benchmarks/README.md)
    n = n_tiers[t]
    return floors[t, :n], mmr[t, :n], mamt[t, :n], by_size[t]


@njit(cache=CACHE_ENABLED)
def _lp_nb(
    conv: int,
    side: int,
    entry: float,
    size: float,
    margin: float,
    floors_t: np.ndarray,
    mmr_t: np.ndarray,
    mamt_t: np.ndarray,
    by_size_t: bool,
    mmr_override: float,
    fee_rate: float,
) -> float:
    # the liquidation price with the table in force, given its tier rows (_table_rows_nb).
    # The formula is inlined here (one call per price); inlining this function too into its
    # call sites was 4 % faster on the default study and made a first, compiling run 11 s longer
    return liquidation_price_inline_nb(
        conv,
        side,
        entry,
        size,
        margin,
        0.0,
        0.0,
        floors_t,
        mmr_t,
        mamt_t,
        by_size_t,
        mmr_override,
        fee_rate,
    )


# A constant argument is passed as np.bool_(False) / np.int64(ER_...), not bare: numba compiles
# a function once more for every literal value it is called with (a bare False or ER_SIGNAL
# made _settle_nb and _record_nb five copies, ~1 s of a first, compiling run)
@njit(cache=CACHE_ENABLED)
def _settle_nb(
    side: int,
    size: float,
    entry: float,
    fill: float,
    fee_rate: float,
    cap: float,
    take_all: bool | np.bool_,
    owed: bool,
) -> tuple[float, float, float, float]:
    # Close `size` at `fill`. `cap` is the most the trader can lose (isolated margin, or the
    # wallet in cross). Returns (realized wallet change, fee actually paid, insurance draw, the
    # price the position actually closes at).
    pnl = float(side) * size * (fill - entry)
    avail = cap + pnl  # what is left of the margin (cross: of the wallet) at the fill
    fee = size * fill * fee_rate
    if avail < 0.0:
        # beyond the bankruptcy price: floored, the insurance fund pays the rest; owed, the
        # trader's balance takes the whole loss and the fund pays nothing
        if owed:
            return pnl, 0.0, 0.0, fill
        return -cap, 0.0, -avail, fill
    if take_all:
        # close_at="bankruptcy": taken over at the bankruptcy price, everything left of the
        # margin goes to the exchange (no fee: the loss is the move to that price)
        return -cap, 0.0, 0.0, bankruptcy_price_nb(side, entry, size, cap, 0.0)
    if fee <= avail:
        r = pnl - fee
        # never below -cap through rounding, so a loss of the whole margin leaves exactly
        # wallet - cap (0.0 for a position that took the whole wallet), not -1e-13
        return (r if r > -cap else -cap), fee, 0.0, fill
    return -cap, avail, 0.0, fill


@njit(cache=CACHE_ENABLED)
def _stop_level_nb(side: int, sl: float, peak: float, trail: float) -> tuple[float, int]:
    # The tighter of the stop-loss level `sl` and the trailing level from `peak`; NaN = off.
    tl = peak * (1.0 - side * trail)
    if math.isnan(tl):
        return sl, ER_STOP_LOSS
    if math.isnan(sl):
        return tl, ER_TRAILING_STOP
    if side * (tl - sl) > 0.0:
        return tl, ER_TRAILING_STOP
    return sl, ER_STOP_LOSS


@njit(cache=CACHE_ENABLED)
def _resolve_exit_nb(
    i: int,
    side: int,
    size: float,
    entry: float,
    cap: float,
    lp: float,
    stop: float,
    tp_level: float,
    prices: np.ndarray,
    on_mark: bool,
    slip: float,
    taker: float,
    maker: float,
    liq_rate: float,
    take_all: bool,
    owed: bool,
    policy: int,
    d_start: np.ndarray,
    d_end: np.ndarray,
    detail: np.ndarray,
) -> tuple[int, float, float, float, float, float]:
    # Slow path of step 3/4 for a bar where something triggers: returns (kind, fill price,
    # realized wallet change, fee paid, insurance draw, 1.0 if resolved by assumption else 0.0).
    if on_mark:
        t_open = prices[i, P_MOPEN]
        t_hi = prices[i, P_MHIGH]
        t_lo = prices[i, P_MLOW]
    else:
        t_open = prices[i, P_OPEN]
        t_hi = prices[i, P_HIGH]
        t_lo = prices[i, P_LOW]
    t_adv = t_lo if side > 0 else t_hi
    t_fav = t_hi if side > 0 else t_lo
    m_adv = prices[i, P_MLOW] if side > 0 else prices[i, P_MHIGH]
    op = prices[i, P_OPEN]
    # gaps at the open
    has_l = side * (prices[i, P_MOPEN] - lp) <= 0.0
    has_s = side * (t_open - stop) <= 0.0
    has_t = side * (t_open - tp_level) >= 0.0
    n_hit = int(has_l) + int(has_s) + int(has_t)
    if n_hit > 0:
        fill_l = prices[i, P_MOPEN]
        fill_s = op * (1.0 - side * slip)
        fill_t = op
    else:
        has_l = side * (m_adv - lp) <= 0.0
        has_s = side * (t_adv - stop) <= 0.0
        has_t = side * (t_fav - tp_level) >= 0.0
        if on_mark and has_l and has_s:
            # one mark path: the level it reaches first wins (not an assumption)
            if side * (stop - lp) > 0.0:
                has_l = False
            else:
                has_s = False
        n_hit = int(has_l) + int(has_s) + int(has_t)
        fill_l = lp
        fill_s = stop * (1.0 - side * slip)
        fill_t = tp_level
        if n_hit > 1 and policy == IB_DETAIL and d_end[i] > d_start[i]:
            # walk the lower-timeframe bars; mark path = detail last + the bar's basis
            off_lo = prices[i, P_MLOW] - prices[i, P_LOW]
            off_hi = prices[i, P_MHIGH] - prices[i, P_HIGH]
            for j in range(d_start[i], d_end[i]):
                d_op = detail[j, 0]
                d_hi = detail[j, 1]
                d_lo = detail[j, 2]
                ml_adv = d_lo + off_lo if side > 0 else d_hi + off_hi
                if on_mark:
                    tj_open = d_op + (off_lo if side > 0 else off_hi)
                    tj_adv = ml_adv
                    tj_fav = d_hi + off_hi if side > 0 else d_lo + off_lo
                else:
                    tj_open = d_op
                    tj_adv = d_lo if side > 0 else d_hi
                    tj_fav = d_hi if side > 0 else d_lo
                h_liq = side * (ml_adv - lp) <= 0.0
                h_stop = side * (tj_adv - stop) <= 0.0
                h_tp = side * (tj_fav - tp_level) >= 0.0
                if on_mark and h_liq and h_stop:
                    if side * (stop - lp) > 0.0:
                        h_liq = False
                    else:
                        h_stop = False
                if h_liq or h_stop or h_tp:
                    has_l = h_liq
                    has_s = h_stop
                    has_t = h_tp
                    if side * (tj_open - stop) <= 0.0:
                        fill_s = d_op * (1.0 - side * slip)
                    if side * (tj_open - tp_level) >= 0.0:
                        fill_t = d_op
                    n_hit = int(h_liq) + int(h_stop) + int(h_tp)
                    break
            # no detail bar triggered (inconsistent detail): the policy below decides
    if has_l and has_s and cap + side * size * (fill_s - entry) < 0.0:
        # a stop filling beyond the bankruptcy price cannot come before a liquidation that
        # triggers in the same bar: the position would already be bankrupt (not an assumption)
        has_s = False
        n_hit -= 1
    best_k = -1
    best_fill = 0.0
    best_r = 0.0
    best_f = 0.0
    best_ins = 0.0
    if has_l:
        # the liquidation's close price: the fill, or the bankruptcy price (close_at)
        best_r, best_f, best_ins, best_fill = _settle_nb(
            side, size, entry, fill_l, liq_rate, cap, take_all, owed
        )
        best_k = K_LIQ
    # worst: lowest wallet for the trader; best: highest; ties keep the earlier kind
    if has_s:
        r, f, ins, px = _settle_nb(side, size, entry, fill_s, taker, cap, np.bool_(False), owed)
        if best_k < 0 or (r > best_r if policy == IB_BEST else r < best_r):
            best_k, best_fill, best_r, best_f, best_ins = K_STOP, px, r, f, ins
    if has_t:
        r, f, ins, px = _settle_nb(side, size, entry, fill_t, maker, cap, np.bool_(False), owed)
        if best_k < 0 or (r > best_r if policy == IB_BEST else r < best_r):
            best_k, best_fill, best_r, best_f, best_ins = K_TP, px, r, f, ins
    amb = 1.0 if n_hit > 1 else 0.0
    return best_k, best_fill, best_r, best_f, best_ins, amb


def _quiet(
    lean: bool,
    sf: float,
    c_madv: int,
    c_tadv: int,
    c_tfav: int,
    nxt: int,
    lim: int,
    prices: np.ndarray,
    srow: np.ndarray,
    sig_mask: int,
    has_sig: bool,
    has_trail: bool,
    lp: float,
    stop: float,
    tp_level: float,
    peak: float,
    wallet: float,
    size: float,
    entry: float,
    ruin_chk: float,
    write_eq: bool,
    eq: np.ndarray,
    returns: bool,
    acc: tuple[float, float, float, float, float, float, float, float, float, float],
) -> tuple[int, tuple[float, float, float, float, float, float, float, float, float, float]]:
    # Steps 3-6 for quiet bars of a position with nothing pending: advance from ``nxt`` while
    # no level triggers, no signal could act and the column is not ruined; stop at ``lim`` (the
    # next funding or table change, or the span's end) and return the first bar not consumed
    # and the running statistics. Any bar that breaks goes back to the full path untouched.
    # ``lean`` folds two per-bar tests into rarer ones, exactly (the caller checks when):
    # a liquidation (gap <= 0) is a new minimum distance (gap < min_dist·m_adv), since a gap < 0
    # is below that product (>= 0) and a gap of 0 (m_adv == lp) below it when it cannot
    # underflow to 0 (min_dist > 1e-300 and lp > 1e-20, or lp == 0: then gap = m_adv > 0);
    # and with every equity so far >= the ruin level, a ruin (equity < ruin level) is a new low.
    # Compiled twice (below): out of line for long runs, inlined for short ones.
    equity, min_dist, peak_equity, dd_level, max_dd, min_equity, rs, rs2, rd2, n_ret = acc
    while nxt < lim:
        # an unsigned index: numba then adds no negative-index wraparound, and LLVM steps one
        # row pointer instead of multiplying by the stride each bar (~17 % of the hold loop)
        u = np.uint64(nxt)
        m_adv = prices[u, c_madv]
        t_adv = prices[u, c_tadv]
        t_fav = prices[u, c_tfav]
        gap_lp = sf * (m_adv - lp)
        if sf * (t_adv - stop) <= 0.0 or sf * (t_fav - tp_level) >= 0.0:
            break
        if has_trail and sf * (t_fav - peak) > 0.0:
            break
        if has_sig and (srow[u] & sig_mask) != 0:
            break
        eq_n = wallet + sf * size * (prices[u, P_MCLOSE] - entry)
        low = eq_n < min_equity
        if lean:
            if low and eq_n < ruin_chk:
                break
            if gap_lp < min_dist * m_adv:
                if gap_lp <= 0.0:
                    break
                min_dist = gap_lp / m_adv
        else:
            if gap_lp <= 0.0 or eq_n < ruin_chk:
                break
            if gap_lp < min_dist * m_adv or min_dist != min_dist:  # new minimum (or first)
                min_dist = gap_lp / m_adv
        if returns and equity > 0.0:  # the bar's return (as in step 5)
            ret = eq_n / equity - 1.0
            down = min(ret, 0.0)  # no branch: its sign is a coin toss
            rs += ret
            rs2 += ret * ret
            rd2 += down * down
            n_ret += 1.0
        equity = eq_n
        if equity > peak_equity:
            peak_equity = equity
            dd_level = peak_equity * (1.0 - max_dd)
        elif equity < dd_level and peak_equity > 0.0:
            max_dd = (peak_equity - equity) / peak_equity
            dd_level = peak_equity * (1.0 - max_dd)
        if low:
            min_equity = equity
        if write_eq:
            eq[u] = equity
        nxt += 1
    return nxt, (equity, min_dist, peak_equity, dd_level, max_dd, min_equity, rs, rs2, rd2, n_ret)


# Two compiled forms of the one quiet loop. A call passing arrays increments and decrements
# their shared reference counts (atomics on a cache line both threads write), ~90 ns a call
# on 2 threads: the short runs between funding events of hourly bars (8 bars) take the copy
# inlined into the caller, where no call is made; long runs take the one out of line, whose
# loop numba compiles better on its own (the inlined copy ran 1m bars ~10 % slower).
_quiet_nb = njit(cache=CACHE_ENABLED)(_quiet)
_quiet_inline_nb = njit(cache=CACHE_ENABLED, inline="always")(_quiet)
QUIET_INLINE_BARS = 64  # runs of at most this many bars use the inlined copy

QUIET_BLOCK = 32  # bars per row of the block extremes (bar_extremes)


def bar_extremes(prices: np.ndarray) -> np.ndarray:
    """Return ``(n_bars // QUIET_BLOCK, 16)``: per block of bars, each price column's min, max.

    Row ``k`` covers bars ``[k·QUIET_BLOCK, (k+1)·QUIET_BLOCK)`` of ``prices (n_bars, 8)``:
    columns ``0-7`` the minimum of each price column (``P_*``), ``8-15`` the maximum. The bars
    after the last full block have no row (the quiet loop steps them one by one).
    """
    n = prices.shape[0] // QUIET_BLOCK
    rows = prices[: n * QUIET_BLOCK].reshape(n, QUIET_BLOCK, 8)
    return np.ascontiguousarray(np.concatenate([rows.min(axis=1), rows.max(axis=1)], axis=1))


@njit(cache=CACHE_ENABLED)
def _quiet_blocks_nb(ext: np.ndarray, q: tuple) -> tuple:  # type: ignore[type-arg]
    # The quiet loop of a long run (as _quiet_nb, same result bit for bit) that passes a whole
    # block of QUIET_BLOCK bars at once when its extremes (bar_extremes: ``ext``) show that no
    # bar of it would do anything but move the equity: the block's last bar then sets it.
    # Exact, not approximate: each per-bar quantity tested by the loop is a monotone function of
    # one price (fl(x - c) is non-decreasing in x; times ±1 or a constant of fixed sign, plus a
    # constant, it stays monotone), so its value at the block's extreme price bounds every bar's
    # value, rounding included, and a test that fails at the bound fails on every bar:
    # - liquidation and the minimum distance: gap = sf·(m_adv - lp) is at least its value at the
    #   adverse extreme of m_adv (min for a long, max for a short) and min_dist·m_adv is at most
    #   its value at the max of m_adv (min_dist > 0 when lean): no bar has gap < min_dist·m_adv;
    # - stop, take-profit, trailing stop: tested at the adverse / favourable trigger extremes;
    # - equity = wallet + sf·size·(mark close - entry) lies between its values at the mark
    #   close's min and max: no new low (so no ruin, when lean), no new peak, no new drawdown.
    # The caller takes it only when lean and nothing is recorded per bar (no signals, equity
    # curve or returns; ``ext`` not empty); the bars around blocks take the per-bar loop.
    # ``q``: _quiet's arguments, in its order.
    (_, sf, c_madv, c_tadv, c_tfav, nxt, lim, prices, srow, sig_mask, _, has_trail, lp, stop,
     tp_level, peak, wallet, size, entry, ruin_chk, _, eq, _, acc) = q  # fmt: skip
    # ext columns of the extremes that bound each test for this side (min: c, max: 8 + c)
    if sf > 0.0:
        x_madv, x_tadv, x_tfav, x_eq_lo, x_eq_hi = (
            c_madv,
            c_tadv,
            8 + c_tfav,
            P_MCLOSE,
            8 + P_MCLOSE,
        )
    else:
        x_madv, x_tadv, x_tfav, x_eq_lo, x_eq_hi = (
            8 + c_madv,
            8 + c_tadv,
            c_tfav,
            8 + P_MCLOSE,
            P_MCLOSE,
        )
    x_mfar = 8 + c_madv
    n_ext = ext.shape[0]
    while nxt < lim:
        k = nxt // QUIET_BLOCK
        end = (k + 1) * QUIET_BLOCK
        if nxt == k * QUIET_BLOCK and end <= lim and k < n_ext:
            _, min_dist, peak_equity, dd_level, _, min_equity = acc[:6]
            gap = sf * (ext[k, x_madv] - lp)
            eq_lo = wallet + sf * size * (ext[k, x_eq_lo] - entry)
            eq_hi = wallet + sf * size * (ext[k, x_eq_hi] - entry)
            if not (
                gap < min_dist * ext[k, x_mfar]
                or sf * (ext[k, x_tadv] - stop) <= 0.0
                or sf * (ext[k, x_tfav] - tp_level) >= 0.0
                or (has_trail and sf * (ext[k, x_tfav] - peak) > 0.0)
                or eq_lo < min_equity
                or eq_hi > peak_equity
                or (eq_lo < dd_level and peak_equity > 0.0)
            ):
                # the block's last bar sets the equity; nothing else moved
                equity = wallet + sf * size * (prices[np.uint64(end - 1), P_MCLOSE] - entry)
                acc = (equity,) + acc[1:]  # noqa: RUF005 (numba cannot build (e, *acc[1:]) here)
                nxt = end
                continue
        stop_at = min(end, lim)
        nxt, acc = _quiet_inline_nb(
            True, sf, c_madv, c_tadv, c_tfav, nxt, stop_at, prices, srow, sig_mask, False,
            has_trail, lp, stop, tp_level, peak, wallet, size, entry, ruin_chk, False, eq, False,
            acc,
        )  # fmt: skip
        if nxt < stop_at:
            break
    return nxt, acc


@njit(cache=CACHE_ENABLED)
def init_stats_nb(stats: np.ndarray, cash: float, n_window: int) -> None:
    """Reset one column's statistics row before its first bar."""
    stats[:] = 0.0
    stats[ST_FINAL_EQUITY] = cash
    stats[ST_FIRST_LIQUIDATION_IDX] = -1.0
    stats[ST_MIN_LIQUIDATION_DISTANCE] = np.nan
    stats[ST_N_BARS] = n_window
    stats[ST_RUIN_IDX] = -1.0
    stats[ST_MIN_EQUITY] = cash
    stats[ST_FIRST_EXIT_IDX] = -1.0
    stats[ST_FIRST_EXIT_REASON] = ER_NONE


@njit(cache=CACHE_ENABLED)
def _pending_nb(side: int, bits: int, pending: int) -> int:
    # rule 6: the order a bar's signal bits leave pending for the next open, given the side held
    le = (bits & SIG_LONG_ENTRY) != 0
    lx = (bits & SIG_LONG_EXIT) != 0
    se = (bits & SIG_SHORT_ENTRY) != 0
    sx = (bits & SIG_SHORT_EXIT) != 0
    if side == 0:
        if le and not se and not lx:
            return 1
        if se and not le and not sx:
            return -1
    elif side > 0:
        if se and not sx:
            return -1
        if lx:
            return PENDING_CLOSE
    elif le and not lx:
        return 1
    elif sx:
        return PENDING_CLOSE
    return pending


@njit(cache=CACHE_ENABLED)
def _record_nb(
    trades: np.ndarray,
    stats: np.ndarray,
    col: int,
    idx: int,
    entry_idx: int,
    side: int,
    entry: float,
    exit_price: float,
    size: float,
    leverage: float,
    margin: float,
    fees: float,
    funding: float,
    pnl: float,
    reason: int | np.int64,
) -> None:
    k = int(stats[ST_N_TRADES])
    if k == 0:
        stats[ST_FIRST_EXIT_IDX] = idx
        stats[ST_FIRST_EXIT_REASON] = reason
    if k < trades.shape[0]:
        row = trades[k]
        row[TF_ID] = k
        row[TF_COL] = col
        row[TF_IDX] = idx
        row[TF_ENTRY_IDX] = entry_idx
        row[TF_SIDE] = side
        row[TF_ENTRY_PRICE] = entry
        row[TF_EXIT_PRICE] = exit_price
        row[TF_SIZE] = size
        row[TF_LEVERAGE] = leverage
        row[TF_MARGIN] = margin
        row[TF_FEES] = fees
        row[TF_FUNDING] = funding
        row[TF_PNL] = pnl
        row[TF_REASON] = reason
    elif trades.shape[0] > 0:
        stats[ST_OVERFLOW] = 1.0
    stats[ST_N_TRADES] = k + 1
    if pnl > 0.0:
        stats[ST_N_WINS] += 1.0
        stats[ST_GROSS_PROFIT] += pnl
    elif pnl < 0.0:
        stats[ST_GROSS_LOSS] -= pnl


@njit(cache=CACHE_ENABLED)
def simulate_span_nb(
    col: int,
    a: int,
    b: int,
    end: int,
    prices: np.ndarray,
    ext: np.ndarray,
    funding: np.ndarray,
    table_idx: np.ndarray,
    f_bars: np.ndarray,
    t_bars: np.ndarray,
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
    sig: np.ndarray,
    sig_col: int,
    fp: np.ndarray,
    ip: np.ndarray,
    stf: np.ndarray,
    sti: np.ndarray,
    stats: np.ndarray,
    trades: np.ndarray,
    eq: np.ndarray,
    returns: bool,
) -> None:
    """Advance one column over bars ``[a, b)`` of its window ``[start, end)``; state in stf/sti.

    ``returns``: also sum the per-bar close-equity returns into ``Stat.RET_*`` (left 0 when off:
    the quiet loop runs faster without them).
    """
    n_bars = prices.shape[0]
    lev = fp[FP_LEVERAGE]
    psize = fp[FP_POSITION_SIZE]
    sl_frac = fp[FP_STOP_LOSS]
    tp_frac = fp[FP_TAKE_PROFIT]
    trail = fp[FP_TRAILING_STOP]
    taker = fp[FP_TAKER_FEE]
    maker = fp[FP_MAKER_FEE]
    slip = fp[FP_SLIPPAGE]
    mmr_ovr = fp[FP_MMR_OVERRIDE]
    liq_fixed = fp[FP_LIQ_FEE_RATE]
    table_rate = math.isnan(liq_fixed)  # NaN = the rate of the table in force
    ruin_level = fp[FP_RUIN_THRESHOLD] * fp[FP_INITIAL_CASH]
    isolated = ip[IP_MARGIN_MODE] == MM_ISOLATED
    on_mark = ip[IP_STOP_TRIGGER] == STR_MARK
    funding_on = ip[IP_FUNDING] != 0
    conv = ip[IP_CONVENTION]
    take_all = ip[IP_CLOSE_AT] == CA_BANKRUPTCY
    stop_after_liq = ip[IP_AFTER_LIQUIDATION] == AL_STOP
    owed = ip[IP_NEGATIVE_BALANCE] == NB_OWED
    policy = ip[IP_INTRABAR]
    write_eq = eq.shape[0] > 0
    has_sig = sig_col >= 0
    srow = sig[sig_col] if has_sig else sig[0]

    wallet = stf[SF_WALLET]
    size = stf[SF_SIZE]
    entry = stf[SF_ENTRY]
    margin = stf[SF_MARGIN]
    lp = stf[SF_LP]
    sl_level = stf[SF_SL]
    tp_level = stf[SF_TP]
    peak = stf[SF_PEAK]
    entry_wallet = stf[SF_ENTRY_WALLET]
    trade_fees = stf[SF_TRADE_FEES]
    trade_funding = stf[SF_TRADE_FUNDING]
    peak_equity = stf[SF_PEAK_EQUITY]
    entry_margin = stf[SF_ENTRY_MARGIN]
    side = sti[SI_SIDE]
    pending = sti[SI_PENDING]
    entry_idx = sti[SI_ENTRY_IDX]
    cur_t = sti[SI_TABLE]
    fl_t, mmr_t, mamt_t, bys_t = _table_rows_nb(cur_t, floors, mmr, mamt, n_tiers, by_size)
    dead = sti[SI_DEAD] != 0
    ruined = sti[SI_RUINED] != 0

    max_dd = stats[ST_MAX_DRAWDOWN]
    min_equity = stats[ST_MIN_EQUITY]
    min_dist = stats[ST_MIN_LIQUIDATION_DISTANCE]
    bars_in = stats[ST_BARS_IN_MARKET]
    equity = stats[ST_FINAL_EQUITY]
    rs = stats[ST_RET_SUM]
    rs2 = stats[ST_RET_SUM_SQ]
    rd2 = stats[ST_RET_DOWN_SQ]
    n_ret = stats[ST_N_RETURNS]
    dd_level = peak_equity * (1.0 - max_dd)
    has_trail = not math.isnan(trail)
    liq_rate = liq_rates[cur_t] if table_rate else liq_fixed
    n_f = f_bars.shape[0]
    pf = np.searchsorted(f_bars, a)
    next_f = f_bars[pf] if pf < n_f else n_bars
    n_t = t_bars.shape[0]
    pt = np.searchsorted(t_bars, a)
    next_t = t_bars[pt] if pt < n_t else n_bars
    stop, stop_reason = _stop_level_nb(side, sl_level, peak, trail)

    i = a
    while i < b:
        # ---- 1. funding on the carried position; tier-table changes -------------------------
        need_lp = False
        in_bar = False
        if i == next_f:  # a funding event in this bar
            pf += 1
            next_f = f_bars[pf] if pf < n_f else n_bars
            in_bar = funding_on and funding[i, 1] == funding[i, 1]  # events after the open
            if side != 0 and funding_on and funding[i, 0] == funding[i, 0]:
                pay = funding_payment_nb(side * size, prices[i, P_MOPEN], funding[i, 0])
                wallet -= pay
                if isolated:
                    margin -= pay
                trade_funding += pay
                stats[ST_FUNDING_PAID] += pay
                need_lp = True
        if i == next_t:  # the tier table in force may change here
            pt += 1
            next_t = t_bars[pt] if pt < n_t else n_bars
            t = table_idx[i]
            if t != cur_t:
                cur_t = t
                fl_t, mmr_t, mamt_t, bys_t = _table_rows_nb(t, floors, mmr, mamt, n_tiers, by_size)
                liq_rate = liq_rates[t] if table_rate else liq_fixed
                need_lp = side != 0
        t = cur_t
        if need_lp:
            m = margin if isolated else wallet
            lp = _lp_nb(
                conv,
                side,
                entry,
                size,
                m,
                fl_t,
                mmr_t,
                mamt_t,
                bys_t,
                mmr_ovr,
                liq_rate,
            )

        # ---- 2. pending orders fill at the open ------------------------------------------
        if pending != 0:
            op = prices[i, P_OPEN]
            if side != 0 and (pending == PENDING_CLOSE or pending == -side):
                fill = op * (1.0 - side * slip)
                cap = margin if isolated else wallet
                r, f, ins, _ = _settle_nb(
                    side, size, entry, fill, taker, cap, np.bool_(False), owed
                )
                wallet += r
                trade_fees += f
                stats[ST_FEES_PAID] += f
                stats[ST_INSURANCE_DRAW] += ins
                stats[ST_N_SIGNAL_EXITS] += 1.0
                _record_nb(
                    trades,
                    stats,
                    col,
                    i,
                    entry_idx,
                    side,
                    entry,
                    fill,
                    size,
                    lev,
                    entry_margin,
                    trade_fees,
                    trade_funding,
                    wallet - entry_wallet,
                    np.int64(ER_SIGNAL),
                )
                side = 0
                size = 0.0
            if pending != PENDING_CLOSE and side == 0:
                want = pending
                if dead or ruined:
                    stats[ST_N_REJECTED] += 1.0
                else:
                    # the order costs margin + fee (fee = margin·leverage·taker); when the wallet
                    # cannot pay both, the margin shrinks so that the leverage stays exact
                    margin_t = psize * wallet
                    cost = 1.0 + lev * taker
                    all_in = margin_t * cost > wallet
                    if all_in:
                        margin_t = wallet / cost
                    fill = op * (1.0 + want * slip)
                    notional = margin_t * lev
                    size_t = notional / fill
                    if all_in:
                        # the order takes the whole wallet: what is left is exactly the
                        # margin (no float dust that a later loss of the margin would leave)
                        fee = wallet - margin_t
                        wallet_after = margin_t
                    else:
                        fee = notional * taker
                        wallet_after = wallet - fee
                    n = n_tiers[t]
                    ok = margin_t > 0.0 and size_t > 0.0
                    if ok:
                        # 0 beyond the last tier's cap: the exchange refuses such a position
                        # (a flat maint_margin_rate replaces the tiers' margin, not their cap:
                        # with it the last tier's leverage extends, as before the cap existed)
                        ml = max_leverage_nb(
                            notional,
                            size_t,
                            fl_t,
                            maxlev[t, :n],
                            bys_t,
                            last_cap[t] if math.isnan(mmr_ovr) else math.inf,
                        )
                        ok = ml >= lev
                    if ok:
                        # refuse a position that would be liquidatable at its own entry price
                        # (initial margin at or below the maintenance margin)
                        lp_t = _lp_nb(
                            conv,
                            want,
                            fill,
                            size_t,
                            margin_t if isolated else wallet_after,
                            fl_t,
                            mmr_t,
                            mamt_t,
                            bys_t,
                            mmr_ovr,
                            liq_rate,
                        )
                        ok = want * (fill - lp_t) > 0.0
                    if not ok:
                        stats[ST_N_REJECTED] += 1.0
                    else:
                        entry_wallet = wallet
                        wallet = wallet_after
                        stats[ST_FEES_PAID] += fee
                        side = want
                        size = size_t
                        entry = fill
                        margin = margin_t if isolated else wallet
                        entry_margin = margin
                        entry_idx = i
                        trade_fees = fee
                        trade_funding = 0.0
                        peak = fill
                        sl_level = fill * (1.0 - side * sl_frac)
                        tp_level = fill * (1.0 + side * tp_frac)
                        stop, stop_reason = _stop_level_nb(side, sl_level, peak, trail)
                        m = margin if isolated else wallet
                        lp = _lp_nb(
                            conv,
                            side,
                            entry,
                            size,
                            m,
                            fl_t,
                            mmr_t,
                            mamt_t,
                            bys_t,
                            mmr_ovr,
                            liq_rate,
                        )
            pending = 0
        if in_bar and side != 0:
            # events inside the bar (coarse bars): the position held after the open's fills pays
            pay = funding_payment_nb(side * size, prices[i, P_MOPEN], funding[i, 1])
            wallet -= pay
            if isolated:
                margin -= pay
            trade_funding += pay
            stats[ST_FUNDING_PAID] += pay
            lp = _lp_nb(
                conv,
                side,
                entry,
                size,
                margin if isolated else wallet,
                fl_t,
                mmr_t,
                mamt_t,
                bys_t,
                mmr_ovr,
                liq_rate,
            )

        # ---- 3./4. liquidation, stops and take-profit -------------------------------------
        sf = float(side)
        if side != 0:
            bars_in += 1.0
            if on_mark:
                t_hi = prices[i, P_MHIGH]
                t_lo = prices[i, P_MLOW]
            else:
                t_hi = prices[i, P_HIGH]
                t_lo = prices[i, P_LOW]
            if side > 0:
                m_adv = prices[i, P_MLOW]
                t_adv = t_lo
                t_fav = t_hi
            else:
                m_adv = prices[i, P_MHIGH]
                t_adv = t_hi
                t_fav = t_lo
            gap_lp = sf * (m_adv - lp)
            if gap_lp < min_dist * m_adv or min_dist != min_dist:  # new minimum (or first bar)
                min_dist = gap_lp / m_adv if gap_lp > 0.0 else 0.0
            # the open lies inside [low, high], so one test on the extremes covers gaps too
            if gap_lp <= 0.0 or sf * (t_adv - stop) <= 0.0 or sf * (t_fav - tp_level) >= 0.0:
                kk, fill, r, f, ins, amb = _resolve_exit_nb(
                    i,
                    side,
                    size,
                    entry,
                    margin if isolated else wallet,
                    lp,
                    stop,
                    tp_level,
                    prices,
                    on_mark,
                    slip,
                    taker,
                    maker,
                    liq_rate,
                    take_all,
                    owed,
                    policy,
                    d_start,
                    d_end,
                    detail,
                )
                stats[ST_AMBIGUOUS_BARS] += amb
                wallet += r
                trade_fees += f
                stats[ST_FEES_PAID] += f
                stats[ST_INSURANCE_DRAW] += ins
                if kk == K_LIQ:
                    reason = ER_LIQUIDATION
                    if stats[ST_N_LIQUIDATIONS] == 0.0:
                        stats[ST_FIRST_LIQUIDATION_IDX] = i
                    stats[ST_N_LIQUIDATIONS] += 1.0
                    min_dist = 0.0
                    if stop_after_liq:
                        dead = True
                elif kk == K_STOP:
                    reason = stop_reason
                    stats[ST_N_STOPS] += 1.0
                else:
                    reason = ER_TAKE_PROFIT
                    stats[ST_N_TAKE_PROFITS] += 1.0
                _record_nb(
                    trades,
                    stats,
                    col,
                    i,
                    entry_idx,
                    side,
                    entry,
                    fill,
                    size,
                    lev,
                    entry_margin,
                    trade_fees,
                    trade_funding,
                    wallet - entry_wallet,
                    reason,
                )
                side = 0
                size = 0.0
            elif has_trail and sf * (t_fav - peak) > 0.0:
                # trailing stops move after the bar's checks
                peak = t_fav
                stop, stop_reason = _stop_level_nb(side, sl_level, peak, trail)

        # ---- 5. mark to market at the close, drawdown, ruin --------------------------------
        prev_equity = equity
        equity = wallet + sf * size * (prices[i, P_MCLOSE] - entry) if side != 0 else wallet
        if equity < ruin_level and not ruined:
            ruined = True
            stats[ST_RUINED] = 1.0
            stats[ST_RUIN_IDX] = i
            if side != 0:
                fill = prices[i, P_CLOSE] * (1.0 - side * slip)
                cap = margin if isolated else wallet
                r, f, ins, _ = _settle_nb(
                    side, size, entry, fill, taker, cap, np.bool_(False), owed
                )
                wallet += r
                trade_fees += f
                stats[ST_FEES_PAID] += f
                stats[ST_INSURANCE_DRAW] += ins
                _record_nb(
                    trades,
                    stats,
                    col,
                    i,
                    entry_idx,
                    side,
                    entry,
                    fill,
                    size,
                    lev,
                    entry_margin,
                    trade_fees,
                    trade_funding,
                    wallet - entry_wallet,
                    np.int64(ER_RUIN),
                )
                side = 0
                size = 0.0
                equity = wallet
        if equity > peak_equity:
            peak_equity = equity
            dd_level = peak_equity * (1.0 - max_dd)
        elif equity < dd_level and peak_equity > 0.0:
            max_dd = (peak_equity - equity) / peak_equity
            dd_level = peak_equity * (1.0 - max_dd)
        if equity < min_equity:
            min_equity = equity
        if write_eq:
            eq[i] = equity
        if returns and prev_equity > 0.0:  # the bar's close-equity return
            ret = equity / prev_equity - 1.0
            down = min(ret, 0.0)
            rs += ret
            rs2 += ret * ret
            rd2 += down * down
            n_ret += 1.0

        # ---- 6. signals at the close become pending for the next bar ----------------------
        if has_sig and i + 1 < end:
            bits = srow[i]
            if bits != 0:
                pending = _pending_nb(side, bits, pending)

        # ---- flat with nothing pending: the bars before the next signal change nothing -----
        nxt = i + 1
        if side == 0 and pending == 0:
            if has_sig:
                while nxt < b and srow[nxt] == 0:
                    nxt += 1
            else:
                nxt = b
            if nxt > i + 1:
                if write_eq:
                    eq[i + 1 : nxt] = equity
                if returns and equity > 0.0:  # flat bars: returns of exactly 0
                    n_ret += nxt - i - 1
                while next_f < nxt:
                    pf += 1
                    next_f = f_bars[pf] if pf < n_f else n_bars
                if next_t < nxt:
                    while next_t < nxt:
                        pt += 1
                        next_t = t_bars[pt] if pt < n_t else n_bars
                    t = table_idx[nxt - 1]
                    if t != cur_t:
                        cur_t = t
                        fl_t, mmr_t, mamt_t, bys_t = _table_rows_nb(
                            t, floors, mmr, mamt, n_tiers, by_size
                        )
                        liq_rate = liq_rates[t] if table_rate else liq_fixed
        elif side != 0 and pending == 0:
            # ---- in the market, nothing scheduled: the same steps 3-6 for quiet bars in a
            # tight loop; any bar where something could happen goes back to the full path
            sf = float(side)
            lim = min(b, next_f, next_t)
            # signal bits that could act on this side (entries of the same side do nothing)
            if side > 0:
                sig_mask = SIG_SHORT_ENTRY | SIG_LONG_EXIT
            else:
                sig_mask = SIG_LONG_ENTRY | SIG_SHORT_EXIT
            # price columns read by this side and trigger (no branches inside the loop)
            if side > 0:
                c_madv = P_MLOW
                c_tadv = P_MLOW if on_mark else P_LOW
                c_tfav = P_MHIGH if on_mark else P_HIGH
            else:
                c_madv = P_MHIGH
                c_tadv = P_MHIGH if on_mark else P_HIGH
                c_tfav = P_MLOW if on_mark else P_LOW
            # ruined: no ruin check (-inf is below any equity)
            ruin_chk = -math.inf if ruined else ruin_level
            first = nxt
            # whole quiet blocks can be passed when nothing is recorded per bar (see
            # _quiet_blocks_nb), and when the run is lean
            blocks = not (has_sig or write_eq or returns) and ext.shape[0] > 0
            while True:
                # the lean loop's conditions (see _quiet_nb)
                lean = min_dist > 1e-300 and (lp == 0.0 or lp > 1e-20) and min_equity >= ruin_chk
                acc = (
                    equity,
                    min_dist,
                    peak_equity,
                    dd_level,
                    max_dd,
                    min_equity,
                    rs,
                    rs2,
                    rd2,
                    n_ret,
                )
                if lim - nxt <= QUIET_INLINE_BARS:  # (numba inlines no call with *args)
                    nxt, acc = _quiet_inline_nb(
                        lean, sf, c_madv, c_tadv, c_tfav, nxt, lim, prices, srow, sig_mask,
                        has_sig, has_trail, lp, stop, tp_level, peak, wallet, size, entry,
                        ruin_chk, write_eq, eq, returns, acc,
                    )  # fmt: skip
                else:
                    q = (lean, sf, c_madv, c_tadv, c_tfav, nxt, lim, prices, srow, sig_mask,
                         has_sig, has_trail, lp, stop, tp_level, peak, wallet, size, entry,
                         ruin_chk, write_eq, eq, returns, acc)  # fmt: skip
                    if lean and blocks:
                        nxt, acc = _quiet_blocks_nb(ext, q)
                    else:
                        nxt, acc = _quiet_nb(*q)
                equity, min_dist, peak_equity, dd_level, max_dd, min_equity, rs, rs2, rd2, n_ret = (
                    acc
                )
                # stopped at a plain funding event (at the open only, no table change): step 1
                # as on the full path (same operations in the same order), then the bar's
                # steps 3-6 in the quiet loop again; a bar that breaks it takes the full path
                # with its funding already paid (next_f has moved on)
                if nxt != next_f or nxt >= b or nxt == next_t:
                    break
                if funding_on and funding[nxt, 1] == funding[nxt, 1]:
                    break
                pf += 1
                next_f = f_bars[pf] if pf < n_f else n_bars
                if funding_on and funding[nxt, 0] == funding[nxt, 0]:
                    pay = funding_payment_nb(side * size, prices[nxt, P_MOPEN], funding[nxt, 0])
                    wallet -= pay
                    if isolated:
                        margin -= pay
                    trade_funding += pay
                    stats[ST_FUNDING_PAID] += pay
                    lp = _lp_nb(
                        conv,
                        side,
                        entry,
                        size,
                        margin if isolated else wallet,
                        fl_t,
                        mmr_t,
                        mamt_t,
                        bys_t,
                        mmr_ovr,
                        liq_rate,
                    )
                lim = min(b, next_f, next_t)
            bars_in += nxt - first
        i = nxt

    if b == end and side != 0:
        # censored at the end of the window: valued at the last mark close
        reason = ER_HORIZON if end < n_bars else ER_END_OF_DATA
        last = prices[end - 1, P_MCLOSE]
        _record_nb(
            trades,
            stats,
            col,
            end - 1,
            entry_idx,
            side,
            entry,
            last,
            size,
            lev,
            entry_margin,
            trade_fees,
            trade_funding,
            equity - entry_wallet,
            reason,
        )

    stf[SF_WALLET] = wallet
    stf[SF_SIZE] = size
    stf[SF_ENTRY] = entry
    stf[SF_MARGIN] = margin
    stf[SF_LP] = lp
    stf[SF_SL] = sl_level
    stf[SF_TP] = tp_level
    stf[SF_PEAK] = peak
    stf[SF_ENTRY_WALLET] = entry_wallet
    stf[SF_TRADE_FEES] = trade_fees
    stf[SF_TRADE_FUNDING] = trade_funding
    stf[SF_PEAK_EQUITY] = peak_equity
    stf[SF_ENTRY_MARGIN] = entry_margin
    sti[SI_SIDE] = side
    sti[SI_PENDING] = pending
    sti[SI_ENTRY_IDX] = entry_idx
    sti[SI_TABLE] = cur_t
    sti[SI_DEAD] = 1 if dead else 0
    sti[SI_RUINED] = 1 if ruined else 0
    stats[ST_MAX_DRAWDOWN] = max_dd
    stats[ST_MIN_EQUITY] = min_equity
    stats[ST_MIN_LIQUIDATION_DISTANCE] = min_dist
    stats[ST_BARS_IN_MARKET] = bars_in
    stats[ST_FINAL_EQUITY] = equity
    stats[ST_RET_SUM] = rs
    stats[ST_RET_SUM_SQ] = rs2
    stats[ST_RET_DOWN_SQ] = rd2
    stats[ST_N_RETURNS] = n_ret


@njit(cache=CACHE_ENABLED)
def _init_state_nb(
    stf: np.ndarray, sti: np.ndarray, cash: float, force_side: int, first_table: int
) -> None:
    stf[:] = 0.0
    stf[SF_WALLET] = cash
    stf[SF_PEAK_EQUITY] = cash
    stf[SF_LP] = np.nan
    stf[SF_SL] = np.nan
    stf[SF_TP] = np.nan
    sti[:] = 0
    sti[SI_PENDING] = force_side
    sti[SI_ENTRY_IDX] = -1
    sti[SI_TABLE] = first_table


@njit(cache=CACHE_ENABLED, parallel=True)
def simulate_nb(
    prices: np.ndarray,
    ext: np.ndarray,
    funding: np.ndarray,
    table_idx: np.ndarray,
    f_bars: np.ndarray,
    t_bars: np.ndarray,
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
    sig: np.ndarray,
    sig_idx: np.ndarray,
    start_idx: np.ndarray,
    end_idx: np.ndarray,
    force_side: np.ndarray,
    fparams: np.ndarray,
    iparams: np.ndarray,
    col_offset: int,
    out_stats: np.ndarray,
    out_trades: np.ndarray,
    out_equity: np.ndarray,
    eq_col: np.ndarray,
    returns: bool,
    chunk: int,
    ck_bars: np.ndarray,
    out_ck: np.ndarray,
) -> int:
    """Simulate every column; return the number of columns whose trade buffer overflowed.

    Shapes: ``prices (n_bars, 8)`` (open, high, low, close, mark open/high/low/close), ``ext``
    its per-block extremes (:func:`bar_extremes`; ``(0, 16)`` steps every bar), ``funding
    (n_bars, 2)`` (summed rates of the events at the bar's open / strictly inside it, NaN = none), ``table_idx (n_bars,)`` int64, ``f_bars`` / ``t_bars`` (sorted
    bars with a funding event / where the table in force changes), tier tables ``(n_tables,
    max_tiers)`` with ``n_tiers``, ``last_cap`` (the cap of the last tier, inf if open-ended; an
    entry beyond it is refused), ``by_size`` and ``liq_rates`` per table, detail bars ``(n_detail,
    3)`` (open, high, low) with ``d_start/d_end (n_bars,)``, packed signal bits ``sig (n_sig,
    n_bars)`` uint8, per-column ``sig_idx`` (-1 = no signals), ``start_idx``, ``end_idx``,
    ``force_side``, ``fparams (FP_N, n_cols)``, ``iparams (IP_N, n_cols)``; outputs
    ``out_stats (n_cols, ST_N)``, ``out_trades (n_cols, cap, NTF)``, ``out_equity (n_bars,
    n_eq)`` written for columns with ``eq_col >= 0``; ``returns``: sum the per-bar returns of
    close equity into ``Stat.RET_SUM``, ``RET_SUM_SQ``, ``RET_DOWN_SQ``, ``N_RETURNS`` (else 0).
    ``col_offset`` numbers the columns in the trade records (batches). Checkpoints: ``ck_bars (n_ck,)`` sorted bar counts >= 1 after the
    column's start; ``out_ck (n_cols, n_ck)`` receives the column's equity at the close of bar
    ``min(start + ck_bars[j], end) - 1``, what a window ending there reports as its final
    equity (the span is cut there; cutting spans changes no result). ``n_ck = 0``: none.
    """
    n_cols = fparams.shape[1]
    n_blocks = (n_cols + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        c0 = blk * BLOCK
        c1 = min(c0 + BLOCK, n_cols)
        nb = c1 - c0
        stf = np.empty((nb, NSF))
        sti = np.empty((nb, NSI), dtype=np.int64)
        fp = np.empty((nb, FP_N))
        ip = np.empty((nb, IP_N), dtype=np.int64)
        lo = start_idx[c0]
        hi = end_idx[c0]
        for c in range(c0, c1):
            r = c - c0
            fp[r, :] = fparams[:, c]
            ip[r, :] = iparams[:, c]
            cash = fparams[FP_INITIAL_CASH, c]
            _init_state_nb(stf[r], sti[r], cash, force_side[c], table_idx[start_idx[c]])
            init_stats_nb(out_stats[c], cash, end_idx[c] - start_idx[c])
            lo = min(lo, start_idx[c])
            hi = max(hi, end_idx[c])
        empty_eq = np.empty(0)
        n_ck = ck_bars.shape[0]
        ck_next = np.zeros(nb, dtype=np.int64)  # each column's next checkpoint to record
        for a in range(lo, hi, chunk):
            b = min(a + chunk, hi)
            for c in range(c0, c1):
                r = c - c0
                aa = max(a, start_idx[c])
                b_end = min(b, end_idx[c])
                while aa < b_end:
                    bb = b_end
                    j = ck_next[r]
                    if j < n_ck:  # stop the span at the next checkpoint
                        bb = min(bb, min(start_idx[c] + ck_bars[j], end_idx[c]))
                    e = eq_col[c]
                    eq = out_equity[:, e] if e >= 0 else empty_eq
                    simulate_span_nb(
                        c + col_offset,
                        aa,
                        bb,
                        end_idx[c],
                        prices,
                        ext,
                        funding,
                        table_idx,
                        f_bars,
                        t_bars,
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
                        sig,
                        sig_idx[c],
                        fp[r],
                        ip[r],
                        stf[r],
                        sti[r],
                        out_stats[c],
                        out_trades[c],
                        eq,
                        returns,
                    )
                    while j < n_ck and min(start_idx[c] + ck_bars[j], end_idx[c]) <= bb:
                        out_ck[c, j] = out_stats[c, ST_FINAL_EQUITY]
                        j += 1
                    ck_next[r] = j
                    aa = bb
    n_over = 0
    for c in range(n_cols):
        if out_stats[c, ST_OVERFLOW] != 0.0:
            n_over += 1
    return n_over
