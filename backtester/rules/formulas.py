"""Numba kernels for exchange margin rules (layer: rules.formulas, called by engine.kernel).

Every function here is ``@njit(cache=_CACHE)`` and takes floats, ints and 1-D float64 arrays only,
so the engine kernel can call it per bar. Python-facing wrappers with validation live in
``backtester.rules`` (``liquidation_price``, ``bankruptcy_price``); this module trusts its inputs.

Units and conventions (reference: docs/reference/exchange-rules.md):

- Prices are quote currency per base unit; ``size`` is the ABSOLUTE position size in base units
  (contracts × contract value, > 0); notional = size × price in quote currency.
- ``side`` is ``LONG = 1`` or ``SHORT = -1``; ``convention`` is ``BINANCE = 0``, ``OKX = 1``,
  ``BYBIT = 2``.
- Tier tables are three parallel arrays of the same length: ``floors`` (ascending,
  ``floors[0] == 0``; notional floors in quote, or base-unit size floors when ``tier_by_size``),
  ``mmr`` (maintenance-margin rates, fractions) and ``maint_amount`` (Binance ``cum`` / Bybit "MM
  deduction", quote).
- ``margin`` is the isolated margin of the position (isolated) or the wallet balance (cross);
  ``other_maint_margin`` and ``other_upnl`` are the maintenance margin and unrealized PnL of the
  cross account's OTHER positions (0.0 in isolated mode).
- ``mmr_override`` NaN uses the tier table; a number replaces it with a flat MMR and a maintenance
  amount of 0 (what-if analysis and tests).

Conventions of the liquidation price (one-way mode):

- BINANCE (§1.2): solve ``WB − TMM1 + UPNL1 + s·Q·(LP − EP) = Q·LP·MMR − cum`` with the tier of
  the notional AT the liquidation price. Because ``cum`` follows the tax-bracket recurrence, the
  maintenance margin is a continuous, piecewise-linear function of the price, so the equation has
  exactly one root; we find it by solving in every tier and keeping the one whose price lies inside
  that tier (this is the fixed point of the exchange's "re-calculate with the tier at LP" rule, with
  no iteration and no ping-pong). If a table's ``cum`` column is not consistent, the trigger set is
  still well defined and we return the first price at which ``margin balance <= maintenance
  margin`` when the mark moves away from entry against the position.
- OKX (§2.2): ``equity <= Q·P·(MMR + f)`` where ``f`` is the liquidation-fee rate (``fee_rate``),
  MMR applies to the whole position (no maintenance amount) and the tier is chosen by size:
  long ``LP = (EP − M/Q)/(1 − (MMR + f))``, short ``LP = (EP + M/Q)/(1 + (MMR + f))``. In cross
  mode ``M = wallet − other_maint_margin + other_upnl`` (the other positions' terms enter exactly as
  in Binance's formula). When tiers are by notional the same per-tier scan as Binance is used,
  but OKX's MM jumps at every tier floor (no maintenance amount smooths it), so the trigger set
  need not be a half-line: a long whose entry notional sits just below a floor can meet the
  trigger after a small RISE that lifts the notional into the next tier. The price returned is
  the first trigger on the adverse side (down for a long, up for a short), which is the level
  the engine tests against the mark's adverse extreme; a trigger on the favourable side is not
  modelled. (OKX's own tiers are by size, where the MM is continuous in the price.)
- BYBIT (§3.1): maintenance margin valued at ENTRY, ``MM = Q·EP·MMR − deduction`` with the tier of
  the entry notional, ``LP = EP − s·(M − MM)/Q``. Cross uses ``M = wallet − other_maint_margin +
  other_upnl`` (documented extension; Bybit publishes only the isolated formula).

Edge cases: a long whose liquidation price would be <= 0 returns ``0.0`` (it cannot be liquidated
at any positive price); a short that can never be liquidated returns ``inf`` (impossible while
MMR < 1). ``fee_rate`` is ignored by BINANCE and BYBIT (their clearance fee / fee to close does not
move the published liquidation price).
"""

from __future__ import annotations

import math

from numba import njit

from backtester._typing import F64Array
from backtester.engine._jitcache import cache_enabled
from backtester.engine.enums import Convention, Side

# the codes of engine.enums as plain ints (numba folds module-level ints)
BINANCE = int(Convention.BINANCE)
OKX = int(Convention.OKX)
BYBIT = int(Convention.BYBIT)

LONG = int(Side.LONG)
SHORT = int(Side.SHORT)

__all__ = [
    "BINANCE",
    "BYBIT",
    "LONG",
    "OKX",
    "SHORT",
    "bankruptcy_price_nb",
    "funding_payment_nb",
    "inverse_bankruptcy_price_nb",
    "inverse_liquidation_price_nb",
    "liquidation_price_inline_nb",
    "liquidation_price_nb",
    "maint_margin_nb",
    "max_leverage_nb",
    "tier_index_nb",
]

# the functions fold the codes imported from engine.enums in at compile time: key the on-disk
# cache on that file too (backtester.engine._jitcache)
_CACHE = cache_enabled(__file__)


@njit(cache=_CACHE)
def tier_index_nb(value: float, floors: F64Array) -> int:
    """Return the index of the tier holding ``value``: the last tier whose floor < ``value``.

    Tiers are contiguous and their caps inclusive, ``floor_k < value <= cap_k = floor_{k+1}``: a
    cap is the largest position a tier allows (Binance ``notionalCap`` / "maximum position at
    current leverage", Bybit risk limit, OKX ``maxSz``), so a value exactly on a floor stays in the
    tier below; values <= floors[1] are tier 0. ``floors`` must be ascending with
    ``floors[0] == 0``. Binary search, O(log n_tiers).
    """
    lo = 0
    hi = floors.shape[0] - 1
    if hi <= 0 or value <= floors[1]:
        return 0
    if value > floors[hi]:
        return int(hi)
    # invariant: floors[lo] < value <= floors[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if floors[mid] < value:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=_CACHE)
def maint_margin_nb(
    convention: int,
    notional: float,
    size: float,
    floors: F64Array,
    mmr: F64Array,
    maint_amount: F64Array,
    tier_by_size: bool,
    mmr_override: float,
) -> float:
    """Return the maintenance margin (quote) of one position.

    ``notional`` is size × the price the exchange values it at: mark price for BINANCE and OKX,
    ENTRY price for BYBIT (the caller passes the right one). BINANCE and BYBIT subtract the tier's
    maintenance amount (``notional·MMR − cum``); OKX applies the tier's MMR to the whole position.
    The tier is looked up by ``size`` when ``tier_by_size`` else by ``notional``.
    """
    if not math.isnan(mmr_override):
        return notional * mmr_override
    key = size if tier_by_size else notional
    k: int = tier_index_nb(key, floors)
    if convention == OKX:
        return float(notional * mmr[k])
    return float(notional * mmr[k] - maint_amount[k])


# Scalar-only helpers are plain calls: LLVM inlines them anyway (no call is left in _lp_nb's
# IR), while numba's inline="always" copied their IR into every caller at each level, ~0.8 s
# of a first, compiling run. The scan (below) stays inline="always": it takes the tier arrays,
# and a plain call touches their reference counts at every funding event of every position
# (as a plain call the default study ran ~30 % slower).
@njit(cache=_CACHE)
def _linear_numerator_nb(
    side: int, entry_price: float, size: float, equity_base: float, amount: float
) -> float:
    # the numerator of _solve_linear_nb's root (the scan tests it before dividing)
    s = 1.0 if side == LONG else -1.0
    return equity_base + amount - s * size * entry_price


@njit(cache=_CACHE)
def _solve_linear_nb(
    side: int, entry_price: float, size: float, equity_base: float, rate: float, amount: float
) -> float:
    # Root in P of  equity_base + s*Q*(P - EP) == Q*P*rate - amount
    s = 1.0 if side == LONG else -1.0
    num = _linear_numerator_nb(side, entry_price, size, equity_base, amount)
    return num / (size * rate - s * size)


@njit(cache=_CACHE, inline="always")
def _scan_tiers_nb(
    side: int,
    entry_price: float,
    size: float,
    equity_base: float,
    floors: F64Array,
    mmr: F64Array,
    maint_amount: F64Array,
    fee_rate: float,
    use_amount: bool,
    k_lo: int,
    k_hi: int,
) -> float:
    # Tier by the notional AT the liquidation price, over tiers k_lo <= k < k_hi. In tier k
    # (prices [a_k, b_k) with a_k = floors[k]/Q) the trigger gap g(P) = equity(P) - MM(P) is
    # linear, increasing for a long and decreasing for a short. Returns the largest price of the
    # scanned tiers with g(P) <= 0 for a long, the smallest for a short (-1 / inf: none).
    # A long's candidate in tier k is min(root_k, b_k) when root_k >= a_k, so it lies in
    # [a_k, b_k] and every lower tier's is <= b_{k-1} = a_k: the highest tier with a candidate
    # holds the largest, and the scan runs down from the top and stops there. A short's lies
    # in [a_k, b_k) and every higher tier's is >= a_{k+1} = b_k: the scan runs up and stops at
    # the first. Before dividing, a tier whose root clearly lies outside it is skipped: in exact
    # arithmetic a long's root is below its tier (root < a) iff N > F_k·(rate - 1) and a
    # short's above it (root >= b) iff N > F_{k+1}·(rate + 1), N the numerator
    # (_linear_numerator_nb); with a margin of 1e-9 relative (the floating error here is a few
    # 1e-16) the skip changes no result, and a rate >= 0.5 is never skipped. Both are checked
    # against the plain every-tier scan in tests/unit/test_formulas_scan.py. This runs at every
    # funding event of every position, so it is worth the care.
    n = floors.shape[0]
    if side == LONG:
        for k in range(k_hi - 1, k_lo - 1, -1):
            amount = maint_amount[k] if use_amount else 0.0
            rate = mmr[k] + fee_rate
            if rate < 0.5:
                num = _linear_numerator_nb(side, entry_price, size, equity_base, amount)
                edge = floors[k] * (rate - 1.0)
                if num > edge + 1e-9 * (abs(num) + abs(edge)) + 1e-290:
                    continue
            a = floors[k] / size
            root = _solve_linear_nb(side, entry_price, size, equity_base, rate, amount)
            if root >= a:
                b = floors[k + 1] / size if k + 1 < n else math.inf
                return root if root < b else b
        return -1.0
    for k in range(k_lo, k_hi):
        amount = maint_amount[k] if use_amount else 0.0
        rate = mmr[k] + fee_rate
        if rate < 0.5 and k + 1 < n:
            num = _linear_numerator_nb(side, entry_price, size, equity_base, amount)
            edge = floors[k + 1] * (rate + 1.0)
            if num > edge + 1e-9 * (abs(num) + abs(edge)) + 1e-290:
                continue
        b = floors[k + 1] / size if k + 1 < n else math.inf
        root = _solve_linear_nb(side, entry_price, size, equity_base, rate, amount)
        if root < b:
            a = floors[k] / size
            return root if root > a else a
    return math.inf


@njit(cache=_CACHE, inline="always")
def _first_trigger_nb(
    side: int,
    entry_price: float,
    size: float,
    equity_base: float,
    floors: F64Array,
    mmr: F64Array,
    maint_amount: F64Array,
    fee_rate: float,
    use_amount: bool,
) -> float:
    # The liquidation price with the tier of the notional at that price: the first mark price at
    # which g(P) <= 0 when the mark moves from the entry against the position.
    n = floors.shape[0]
    best = _scan_tiers_nb(
        side, entry_price, size, equity_base, floors, mmr, maint_amount, fee_rate, use_amount, 0, n
    )
    if side * (best - entry_price) > 0.0:
        # The largest (long) / smallest (short) trigger price lies on the position's favourable
        # side of the entry. With a continuous MM (Binance's cum recurrence) that only happens
        # when the position is already at or below maintenance at entry (g(EP) <= 0), and that
        # price is kept so callers see it. A MM with jumps at the tier floors (OKX: the tier's
        # MMR on the whole position, no maintenance amount) can also meet the trigger just past
        # a floor above the entry notional while g(EP) > 0: then the liquidation price is the
        # first trigger on the adverse side, found in the entry's tier and those it moves into
        # (below it for a long, above it for a short).
        k = tier_index_nb(size * entry_price, floors)
        amount = maint_amount[k] if use_amount else 0.0
        gap = equity_base + amount - size * entry_price * (mmr[k] + fee_rate)
        if gap > 0.0:
            lo, hi = (0, k + 1) if side == LONG else (k, n)
            best = _scan_tiers_nb(
                side,
                entry_price,
                size,
                equity_base,
                floors,
                mmr,
                maint_amount,
                fee_rate,
                use_amount,
                lo,
                hi,
            )
    if side == LONG and best <= 0.0:
        return 0.0
    return best


def _liquidation_price(
    convention: int,
    side: int,
    entry_price: float,
    size: float,
    margin: float,
    other_maint_margin: float,
    other_upnl: float,
    floors: F64Array,
    mmr: F64Array,
    maint_amount: F64Array,
    tier_by_size: bool,
    mmr_override: float,
    fee_rate: float,
) -> float:
    """Return the liquidation (mark) price of a one-way linear perpetual position.

    See the module docstring for each convention. Returns 0.0 for a long that cannot be
    liquidated at a positive price.
    """
    equity_base = margin - other_maint_margin + other_upnl
    flat = not math.isnan(mmr_override)
    if convention == BYBIT:
        if flat:
            mm_entry = size * entry_price * mmr_override
        else:
            key = size if tier_by_size else size * entry_price
            k = tier_index_nb(key, floors)
            mm_entry = size * entry_price * mmr[k] - maint_amount[k]
        s = 1.0 if side == LONG else -1.0
        lp = entry_price - s * (equity_base - mm_entry) / size
    else:
        extra = fee_rate if convention == OKX else 0.0
        use_amount = convention != OKX
        if flat:
            lp = _solve_linear_nb(side, entry_price, size, equity_base, mmr_override + extra, 0.0)
        elif tier_by_size:
            k = tier_index_nb(size, floors)
            amount = maint_amount[k] if use_amount else 0.0
            lp = _solve_linear_nb(side, entry_price, size, equity_base, mmr[k] + extra, amount)
        else:
            lp = _first_trigger_nb(
                side, entry_price, size, equity_base, floors, mmr, maint_amount, extra, use_amount
            )
    if side == LONG and lp <= 0.0:
        return 0.0
    return lp


liquidation_price_nb = njit(cache=_CACHE)(_liquidation_price)
# the same function, inlined where it is called: in the kernel's liquidation price per table
# (engine.kernel._lp_nb, at every funding event), where one more call passing the tier arrays
# would touch their shared reference counts; everywhere else the call above (inlining it at
# every call site made a first, compiling run three times longer)
liquidation_price_inline_nb = njit(cache=_CACHE, inline="always")(_liquidation_price)


@njit(cache=_CACHE)
def bankruptcy_price_nb(
    side: int, entry_price: float, size: float, margin: float, other_upnl: float
) -> float:
    """Return the price at which margin (+ the other positions' unrealized PnL) reaches 0.

    ``BP = EP − s·(margin + other_upnl)/Q``; a long whose BP would be <= 0 returns 0.0.
    """
    s = 1.0 if side == LONG else -1.0
    bp = entry_price - s * (margin + other_upnl) / size
    if side == LONG and bp <= 0.0:
        return 0.0
    return bp


@njit(cache=_CACHE)
def funding_payment_nb(signed_size: float, mark_price: float, funding_rate: float) -> float:
    """Return the cash paid BY the holder: ``signed_size·mark·rate`` (negative = received)."""
    return signed_size * mark_price * funding_rate


@njit(cache=_CACHE)
def max_leverage_nb(
    notional: float,
    size: float,
    floors: F64Array,
    max_leverage: F64Array,
    tier_by_size: bool,
    last_cap: float,
) -> float:
    """Return the maximum leverage allowed for a position of this notional (or size).

    The tier is that of :func:`tier_index_nb` (caps inclusive: a position exactly at a tier's cap
    keeps that tier's leverage). ``last_cap`` is the cap of the last tier (``inf`` if
    open-ended): a larger position cannot be opened at any leverage, so it returns 0.0.
    """
    key = size if tier_by_size else notional
    if key > last_cap:
        return 0.0
    return float(max_leverage[tier_index_nb(key, floors)])


# ---------------------------------------------------------------------------------------------
# coin-margined (inverse) perpetuals, docs/reference/exchange-rules.md §8
#
# A position of face value F (USD: contracts × contract size) entered at EP has the coin value
# F/P at price P and the PnL s·F·(1/EP − 1/P) in coin. With X = 1/P that is −s·F·(X − X_EP): the
# PnL of a LINEAR position of the opposite side, size F, on the price X. Its notional F·X is the
# coin value, so margin, maintenance margin (tiers in coin notional), fees and the liquidation
# trigger are those of the linear position in X, and the linear formulas above give the inverse
# prices through P = 1/X (§8.2 derives each exchange's published formula from this).


@njit(cache=_CACHE)
def inverse_liquidation_price_nb(
    convention: int,
    side: int,
    entry_price: float,
    face: float,
    margin: float,
    other_maint_margin: float,
    other_upnl: float,
    floors: F64Array,
    mmr: F64Array,
    maint_amount: F64Array,
    tier_by_size: bool,
    mmr_override: float,
    fee_rate: float,
) -> float:
    """Return the liquidation (mark) price of a one-way coin-margined position.

    ``face`` is the face value in USD (contracts × contract size); ``margin``, the other
    positions' terms, tier floors (``tier_by_size`` False) and ``maint_amount`` are in coin. It is
    ``1 / liquidation_price_nb(convention, -side, 1/entry_price, face, ...)``: BINANCE
    ``LP = F·(MMR + s)/(M + cum + s·F/EP)``, BYBIT ``LP = F/(F/EP + s·(M − MM_entry))``, OKX
    ``LP = F·(1 + s·(MMR + f))/(F/EP + s·M)`` (long s = 1). A short that cannot be liquidated at
    any price returns ``inf``; a long whose liquidation price would be <= 0 returns 0.0.
    """
    x = liquidation_price_nb(
        convention,
        -side,
        1.0 / entry_price,
        face,
        margin,
        other_maint_margin,
        other_upnl,
        floors,
        mmr,
        maint_amount,
        tier_by_size,
        mmr_override,
        fee_rate,
    )
    if x <= 0.0:
        return math.inf
    if math.isinf(x) or x < 0.0:
        return 0.0
    return 1.0 / x


@njit(cache=_CACHE)
def inverse_bankruptcy_price_nb(
    side: int, entry_price: float, face: float, margin: float, other_upnl: float
) -> float:
    """Return the price at which a coin-margined position's margin (+ other UPNL, coin) is 0.

    ``BP = F/(F/EP + s·(margin + other_upnl))``: long ``EP·L/(L + 1)``, short ``EP·L/(L − 1)``
    with ``margin = F/(EP·L)``; a short whose margin covers its whole coin value
    (leverage <= 1) returns ``inf``.
    """
    x = bankruptcy_price_nb(-side, 1.0 / entry_price, face, margin, other_upnl)
    if x <= 0.0:
        return math.inf
    return 1.0 / x
