"""Unit tests of backtester.rules.formulas, with pure-Python reference twins of every kernel.

Expected values are computed by hand in the comments (docs/reference/exchange-rules.md §5).
The twins implement the exchanges' documented procedures literally (for Binance: start with the
entry tier and re-solve with the tier at the liquidation price until it is stable), so they are an
independent check of the kernels' closed-form tier scan.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtester.rules import formulas as fx
from backtester.rules.profiles import BINANCE, BYBIT, OKX

# ---------------------------------------------------------------------------------------------
# pure-Python reference twins


def ref_tier_index(value: float, floors: list[float]) -> int:
    # caps inclusive: the last tier whose floor is strictly below the value (tier 0 at least)
    k = 0
    for i, floor in enumerate(floors):
        if floor < value:
            k = i
    return k


def ref_maint_margin(
    convention: int,
    notional: float,
    size: float,
    floors: list[float],
    mmr: list[float],
    amount: list[float],
    tier_by_size: bool,
    mmr_override: float,
) -> float:
    if not math.isnan(mmr_override):
        return notional * mmr_override
    k = ref_tier_index(size if tier_by_size else notional, floors)
    return notional * mmr[k] - (0.0 if convention == OKX else amount[k])


def ref_liquidation_price(
    convention: int,
    side: int,
    ep: float,
    q: float,
    margin: float,
    other_mm: float,
    other_upnl: float,
    floors: list[float],
    mmr: list[float],
    amount: list[float],
    tier_by_size: bool,
    mmr_override: float,
    fee: float,
) -> float:
    s = 1.0 if side == fx.LONG else -1.0
    wb = margin - other_mm + other_upnl

    def rate_amount(k: int) -> tuple[float, float]:
        if not math.isnan(mmr_override):
            return mmr_override, 0.0
        return mmr[k], 0.0 if convention == OKX else amount[k]

    if convention == BYBIT:
        k = ref_tier_index(q if tier_by_size else q * ep, floors)
        r, a = rate_amount(k)
        lp = ep - s * (wb - (q * ep * r - a)) / q
    else:
        f = fee if convention == OKX else 0.0
        k = ref_tier_index(q if tier_by_size else q * ep, floors)
        lp = math.nan
        for _ in range(4 * len(floors) + 4):  # the exchange's procedure: re-solve until stable
            r, a = rate_amount(k)
            lp = (wb + a - s * q * ep) / (q * (r + f) - s * q)
            k_new = ref_tier_index(q if tier_by_size else q * max(lp, 0.0), floors)
            if k_new == k:
                break
            k = k_new
    return 0.0 if side == fx.LONG and lp <= 0.0 else lp


def ref_bankruptcy_price(side: int, ep: float, q: float, margin: float, other_upnl: float) -> float:
    s = 1.0 if side == fx.LONG else -1.0
    bp = ep - s * (margin + other_upnl) / q
    return 0.0 if side == fx.LONG and bp <= 0.0 else bp


# Binance BTCUSDT 2024-05-30 table (reference §1.3), notional floors
BTC24_FLOORS = [0, 50e3, 600e3, 3e6, 12e6, 70e6, 100e6, 230e6, 480e6, 600e6, 800e6, 1200e6]
BTC24_MMR = [0.004, 0.005, 0.0065, 0.01, 0.02, 0.025, 0.05, 0.10, 0.125, 0.15, 0.25, 0.50]
BTC24_CUM = [
    0,
    50,
    950,
    11450,
    131450,
    481450,
    2981450,
    14481450,
    26481450,
    41481450,
    121481450,
    421481450,
]
OKX_FLOORS = [0, 3, 6, 12, 24, 36, 48, 60, 72, 84, 96, 108]  # base units (BTC)
NAN = math.nan
INF = math.inf


def arr(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


ONE = arr([0.0])


# ---------------------------------------------------------------------------------------------
# tier lookup and maintenance margin


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.0, 0),
        (49_999.99, 0),
        (50_000.0, 0),
        (50_000.01, 1),
        (599_999.0, 1),
        (600_000.0, 1),
        (600_000.5, 2),
        (5e9, 11),
        (-1.0, 0),
    ],
)
def test_tier_index_caps_are_inclusive(value: float, expected: int) -> None:
    # Arrange: floors 0, 50k, 600k, ...; tier k is floor_k < value <= cap_k = floor_{k+1}, so a
    # value equal to a cap (the next floor) stays in the tier below (Binance "maximum position
    # at current leverage" = notionalCap; Bybit risk limit; OKX maxSz)
    floors = arr(BTC24_FLOORS)
    # Act / Assert
    assert (
        fx.tier_index_nb(value, floors) == expected == ref_tier_index(max(value, 0), BTC24_FLOORS)
    )


def test_tier_index_single_tier() -> None:
    assert fx.tier_index_nb(1e12, ONE) == 0


def test_maint_margin_binance_legacy_case_e() -> None:
    # Arrange: legacy table, notional 264,000 is in the 1% tier with cum 1,300 (case E)
    floors = arr([0, 50e3, 250e3, 1e6])
    mmr = arr([0.004, 0.005, 0.01, 0.025])
    cum = arr([0, 50, 1300, 16300])
    # Act
    mm = fx.maint_margin_nb(BINANCE, 264_000.0, 13.2, floors, mmr, cum, False, NAN)
    # Assert: 264,000 × 1% − 1,300 = 1,340
    assert mm == pytest.approx(1340.0, abs=1e-9)


def test_maint_margin_okx_has_no_amount_and_uses_size() -> None:
    # Arrange: tiers by size in base units 0 / 3 / 6 BTC at 0.4 / 0.5 / 0.75 %
    floors, mmr, amount = arr([0, 3, 6]), arr([0.004, 0.005, 0.0075]), arr([0, 99, 99])
    # Act: 4 BTC at 30,000 → notional 120,000, tier 2 by size → 120,000 × 0.5% = 600
    mm = fx.maint_margin_nb(OKX, 120_000.0, 4.0, floors, mmr, amount, True, NAN)
    # Assert: the amount column is ignored for OKX
    assert mm == pytest.approx(600.0)


def test_maint_margin_override_is_flat() -> None:
    # 20,000 × 0.5% = 100, the table is ignored
    mm = fx.maint_margin_nb(
        BINANCE, 20_000.0, 1.0, arr(BTC24_FLOORS), arr(BTC24_MMR), arr(BTC24_CUM), False, 0.005
    )
    assert mm == pytest.approx(100.0)


# ---------------------------------------------------------------------------------------------
# liquidation price: the reference's worked examples


def test_case_a_binance_cross_short() -> None:
    # LP = (10.72 − 1.3 + 0.47 + 0 + 0.005·9451.53)/(0.005·0.004 + 0.005)
    #    = (9.89 + 47.25765)/0.00502 = 11383.994 → page: 11383.99
    lp = fx.liquidation_price_nb(
        BINANCE, fx.SHORT, 9451.53, 0.005, 10.72, 1.3, 0.47, ONE, arr([0.004]), ONE, False, NAN, 0.0
    )
    assert round(lp, 2) == 11383.99


def test_case_b_binance_cross_long() -> None:
    # LP = (10.72 − 0.19 − 0.06 + 0 − 199.53)/(1·0.0065 − 1) = −189.06/−0.9935 = 190.297
    lp = fx.liquidation_price_nb(
        BINANCE, fx.LONG, 199.53, 1.0, 10.72, 0.19, -0.06, ONE, arr([0.0065]), ONE, False, NAN, 0.0
    )
    assert lp == pytest.approx(190.2969, abs=1e-4)
    assert math.floor(lp * 100) / 100 == 190.29  # the page truncates


def test_case_c_bybit_isolated_long() -> None:
    # IM = 20,000/50 = 400, MM = 20,000·0.5% = 100, LP = 20,000 − (400 − 100)/1 = 19,700
    lp = fx.liquidation_price_nb(
        BYBIT, fx.LONG, 20_000.0, 1.0, 400.0, 0.0, 0.0, ONE, ONE, ONE, False, 0.005, 0.0
    )
    assert lp == pytest.approx(19_700.0, abs=1e-9)


def test_case_d_bybit_bankruptcy_price() -> None:
    # BP = 10,000·(1 − 1/50) = 9,800
    assert fx.bankruptcy_price_nb(fx.LONG, 10_000.0, 1.0, 200.0, 0.0) == pytest.approx(9_800.0)


def test_binance_and_bybit_differ_for_the_same_position() -> None:
    # Binance: (400 − 20,000)/(0.005 − 1) = 19,600/0.995 = 19,698.49; Bybit: 19,700
    args = (fx.LONG, 20_000.0, 1.0, 400.0, 0.0, 0.0, ONE, ONE, ONE, False, 0.005, 0.0)
    assert round(fx.liquidation_price_nb(BINANCE, *args), 2) == 19_698.49
    assert round(fx.liquidation_price_nb(BYBIT, *args), 2) == 19_700.00


def test_okx_isolated_long_and_short() -> None:
    # long  LP = (30,000 − 1,500/1)/(1 − (0.004 + 0.0005)) = 28,500/0.9955 = 28,628.83
    # short LP = (30,000 + 1,500/1)/(1 + 0.0045)          = 31,500/1.0045 = 31,358.89
    floors, mmr = arr([0, 3]), arr([0.004, 0.005])
    long_lp = fx.liquidation_price_nb(
        OKX, fx.LONG, 30_000.0, 1.0, 1_500.0, 0.0, 0.0, floors, mmr, arr([0, 0]), True, NAN, 0.0005
    )
    short_lp = fx.liquidation_price_nb(
        OKX, fx.SHORT, 30_000.0, 1.0, 1_500.0, 0.0, 0.0, floors, mmr, arr([0, 0]), True, NAN, 0.0005
    )
    assert long_lp == pytest.approx(28_628.83, abs=0.005)
    assert short_lp == pytest.approx(31_358.89, abs=0.005)


def test_okx_tier_by_size() -> None:
    # 4 BTC is in the 0.5% tier (size floor 3): LP = (30,000 − 6,000/4)/(1 − 0.0055) = 28,657.62
    lp = fx.liquidation_price_nb(
        OKX,
        fx.LONG,
        30_000.0,
        4.0,
        6_000.0,
        0.0,
        0.0,
        arr([0, 3]),
        arr([0.004, 0.005]),
        arr([0, 0]),
        True,
        NAN,
        0.0005,
    )
    assert lp == pytest.approx(28_500.0 / 0.9945, rel=1e-12)


def test_okx_notional_tier_floor_jump_above_entry_keeps_the_adverse_side_price() -> None:
    # The hypothesis example of issue 9: a long at entry 141,907, size 114 (notional
    # 16,177,398), 13x (margin M = 16,177,398/13 = 1,244,415.23), OKX convention (MMR of the tier
    # on the whole position plus the fee term f = 0.05 %) with tiers by notional:
    #   tier 1: notional <= 16,231,600 at 5 %; tier 2 above it at 7.96 %.
    # OKX's MM jumps at the floor (no maintenance amount), so g(P) = M + Q(P - EP) - QP(MMR + f)
    # is positive at entry (M - N*5.05 % = 427,456) but turns negative just ABOVE the floor
    # price 16,231,600/114 = 142,382.46: tier 2's root is (EP - M/Q)/(1 - 8.01 %) = 142,397.08.
    # The old scan returned that price above the entry (a long "liquidated" by a rise of 0.3 %),
    # although g is already negative at 142,388.6, which lies between the entry and that price.
    # The liquidation price is the first trigger moving AGAINST the long, in tier 1:
    #   LP = (EP - M/Q)/(1 - 5.05 %) = (141,907 * 12/13)/0.9495 = 137,958.0
    floors, mmr, zeros = arr([0.0, 16_231_600.0]), arr([0.05, 0.0796]), arr([0.0, 0.0])
    ep, q = 141_907.0, 114.0
    margin = q * ep / 13.0
    lp = fx.liquidation_price_nb(
        OKX, fx.LONG, ep, q, margin, 0.0, 0.0, floors, mmr, zeros, False, NAN, 0.0005
    )
    assert lp == pytest.approx(ep * 12.0 / 13.0 / 0.9495, rel=1e-12)
    assert lp < ep

    def gap(p: float) -> float:
        return (
            margin
            + q * (p - ep)
            - fx.maint_margin_nb(OKX, q * p, q, floors, mmr, zeros, False, NAN)
            - q * p * 0.0005
        )

    assert gap(142_388.6) < 0.0 < gap(ep)  # the jump above the entry
    for t in np.linspace(0.0, 1.0, 41)[:-1]:  # nothing triggers between entry and LP
        assert gap(ep + t * (lp - ep)) > 0.0
    assert gap(lp * (1 - 1e-9)) <= 0.0
    # the exchange's own re-solve procedure (start in the entry tier, re-solve in the tier at
    # LP until stable) agrees
    twin = ref_liquidation_price(
        OKX,
        fx.LONG,
        ep,
        q,
        margin,
        0.0,
        0.0,
        list(floors),
        list(mmr),
        [0.0, 0.0],
        False,
        NAN,
        0.0005,
    )
    assert lp == pytest.approx(twin, rel=1e-12)
    # the mirror case: a short whose entry sits just above a floor does not "liquidate" on a
    # small fall into the lower tier (MM drops there, so g rises: nothing to find below entry)
    short = fx.liquidation_price_nb(
        OKX, fx.SHORT, ep, q, margin, 0.0, 0.0, floors, mmr, zeros, False, NAN, 0.0005
    )
    assert short > ep


def test_okx_notional_entry_exactly_on_a_floor() -> None:
    # The shrunk form hypothesis finds: the entry notional 16,177,398 equals the last floor. By
    # inclusive caps the entry is in tier 4 (6.45 %, g(EP) = N(1/13 - 6.45 %) > 0), any rise
    # is in tier 5 (9.575 %, g < 0). The old scan returned 144,861.57 (tier 5's root, above
    # the entry). Tier 4's root: (EP*12/13)/(1 - 6.45 %) = 130,991.08/0.9355 = 140,022.53.
    floors = arr([0.0, 1000.0, 2000.0, 6_177_398.0, 16_177_398.0])
    mmr = arr([0.002, 0.002, 0.03325, 0.0645, 0.09575])
    ep, q = 141_907.0, 114.0
    lp = fx.liquidation_price_nb(
        OKX, fx.LONG, ep, q, q * ep / 13.0, 0.0, 0.0, floors, mmr, np.zeros(5), False, NAN, 0.0
    )
    assert lp == pytest.approx(ep * 12.0 / 13.0 / 0.9355, rel=1e-12)


def test_binance_resolves_when_lp_notional_lands_in_a_lower_tier() -> None:
    # Arrange: 31 BTC at 20,000 → notional 620,000 (tier 3: 0.65%, cum 950), 20x → margin 31,000
    # entry tier 3: LP = (31,000 + 950 − 620,000)/(31·0.0065 − 31) = 19,093.46 → notional
    #   591,897 < 600,000, i.e. tier 2 (0.5%, cum 50): re-solve
    # tier 2:       LP = (31,000 + 50 − 620,000)/(31·0.005 − 31) = 588,950/30.845 = 19,093.86
    #   → notional 591,910 is in tier 2: stable
    floors, mmr, cum = arr(BTC24_FLOORS), arr(BTC24_MMR), arr(BTC24_CUM)
    # Act
    lp = fx.liquidation_price_nb(
        BINANCE, fx.LONG, 20_000.0, 31.0, 31_000.0, 0.0, 0.0, floors, mmr, cum, False, NAN, 0.0
    )
    # Assert
    assert lp == pytest.approx(588_950.0 / 30.845, rel=1e-12)
    assert 31 * lp < 600_000.0
    naive = (31_000 + 950 - 620_000) / (31 * 0.0065 - 31)
    assert abs(lp - naive) > 0.3  # the entry tier would have been wrong


def test_binance_short_moves_to_a_higher_tier() -> None:
    # 29 BTC short at 20,000 → 580,000 (tier 2), 5x → margin 116,000
    # tier 2: LP = (116,000 + 50 + 580,000)/(29·0.005 + 29) = 696,050/29.145 = 23,882.3 → 692,587
    #   notional is in tier 3 → re-solve: (116,000 + 950 + 580,000)/(29·0.0065 + 29)
    #   = 696,950/29.1885 = 23,877.55 → 692,449, tier 3: stable
    lp = fx.liquidation_price_nb(
        BINANCE,
        fx.SHORT,
        20_000.0,
        29.0,
        116_000.0,
        0.0,
        0.0,
        arr(BTC24_FLOORS),
        arr(BTC24_MMR),
        arr(BTC24_CUM),
        False,
        NAN,
        0.0,
    )
    assert lp == pytest.approx(696_950.0 / 29.1885, rel=1e-12)


def test_long_that_cannot_be_liquidated_returns_zero() -> None:
    # margin 25,000 > notional 20,000: (25,000 − 20,000)/(0.004 − 1) < 0 → 0.0
    lp = fx.liquidation_price_nb(
        BINANCE, fx.LONG, 20_000.0, 1.0, 25_000.0, 0.0, 0.0, ONE, ONE, ONE, False, 0.004, 0.0
    )
    assert lp == 0.0
    assert (
        fx.liquidation_price_nb(
            BYBIT, fx.LONG, 20_000.0, 1.0, 25_000.0, 0.0, 0.0, ONE, ONE, ONE, False, 0.004, 0.0
        )
        == 0.0
    )
    assert fx.bankruptcy_price_nb(fx.LONG, 20_000.0, 1.0, 25_000.0, 0.0) == 0.0


def test_bybit_deduction_and_cross_terms() -> None:
    # tier 2 of the legacy Bybit table (floor 2M, MMR 1%, deduction 10,000); 150 BTC at 20,000 =
    # 3,000,000 entry value; MM = 30,000 − 10,000 = 20,000; cross wallet 200,000, other MM 5,000,
    # other uPnL −15,000 → M = 180,000; LP = 20,000 − (180,000 − 20,000)/150 = 18,933.33
    floors, mmr, ded = arr([0, 2e6]), arr([0.005, 0.01]), arr([0, 10_000])
    lp = fx.liquidation_price_nb(
        BYBIT,
        fx.LONG,
        20_000.0,
        150.0,
        200_000.0,
        5_000.0,
        -15_000.0,
        floors,
        mmr,
        ded,
        False,
        NAN,
        0.0,
    )
    assert lp == pytest.approx(20_000.0 - 160_000.0 / 150.0)


# ---------------------------------------------------------------------------------------------
# fees, funding, margin, leverage


def test_funding_payment_sign() -> None:
    # long 0.5 BTC, mark 40,000, rate +0.01% → pays 2.0; the short receives (−2.0)
    assert fx.funding_payment_nb(0.5, 40_000.0, 0.0001) == pytest.approx(2.0)
    assert fx.funding_payment_nb(-0.5, 40_000.0, 0.0001) == pytest.approx(-2.0)


def test_max_leverage() -> None:
    # notional 700,000 is tier 3 of the 2024 table → 75x; 4 BTC is tier 2 of a size table → 100x
    lev = arr([125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1])
    assert fx.max_leverage_nb(700_000.0, 35.0, arr(BTC24_FLOORS), lev, False, INF) == 75.0
    okx_lev = arr([125, 100, 66.66])
    assert fx.max_leverage_nb(1.0, 4.0, arr([0, 3, 6]), okx_lev, True, INF) == 100.0


def test_max_leverage_is_zero_beyond_the_last_tier_cap() -> None:
    # The 2024 table's last tier is 1.2B-1.8B at 1x: 1.8B exactly is still allowed (caps are
    # inclusive), 1.8B + 1 cannot be opened at any leverage; the same by size (cap 9 BTC)
    lev = arr([125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1])
    floors = arr(BTC24_FLOORS)
    assert fx.max_leverage_nb(1.8e9, 1.0, floors, lev, False, 1.8e9) == 1.0
    assert fx.max_leverage_nb(1.8e9 + 1.0, 1.0, floors, lev, False, 1.8e9) == 0.0
    okx_floors, okx_lev = arr([0, 3, 6]), arr([125, 100, 66.66])
    assert fx.max_leverage_nb(1.0, 9.0, okx_floors, okx_lev, True, 9.0) == 66.66
    assert fx.max_leverage_nb(1.0, 9.5, okx_floors, okx_lev, True, 9.0) == 0.0


def test_convention_codes_agree_with_profiles() -> None:
    assert (fx.BINANCE, fx.OKX, fx.BYBIT) == (BINANCE, OKX, BYBIT) == (0, 1, 2)
    assert (fx.LONG, fx.SHORT) == (1, -1)


# ---------------------------------------------------------------------------------------------
# kernels against their twins on a deterministic grid


@pytest.mark.parametrize("convention", [BINANCE, OKX, BYBIT])
@pytest.mark.parametrize("side", [fx.LONG, fx.SHORT])
def test_kernels_match_reference_twins(convention: int, side: int) -> None:
    rng = np.random.default_rng(7)
    # OKX tiers by size in base units (its real convention); Binance and Bybit by notional
    by_size = convention == OKX
    fl = OKX_FLOORS if by_size else BTC24_FLOORS
    floors, mmr, cum = arr(fl), arr(BTC24_MMR), arr(BTC24_CUM)
    for _ in range(300):
        ep = float(rng.uniform(100, 100_000))
        q = float(10 ** rng.uniform(-3, 4))
        lev = float(rng.uniform(1, 100))
        margin = q * ep / lev
        other_mm = float(rng.uniform(0, 0.1 * margin)) if rng.random() < 0.5 else 0.0
        other_upnl = float(rng.normal(0, 0.1 * margin)) if other_mm else 0.0
        override = float(rng.uniform(0.001, 0.02)) if rng.random() < 0.3 else NAN
        args = (convention, side, ep, q, margin, other_mm, other_upnl)
        got = fx.liquidation_price_nb(*args, floors, mmr, cum, by_size, override, 0.0005)
        want = ref_liquidation_price(*args, fl, BTC24_MMR, BTC24_CUM, by_size, override, 0.0005)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (args, override)
        notional = q * ep
        assert fx.maint_margin_nb(
            convention, notional, q, floors, mmr, cum, by_size, override
        ) == pytest.approx(
            ref_maint_margin(convention, notional, q, fl, BTC24_MMR, BTC24_CUM, by_size, override),
            rel=1e-12,
        )
        assert fx.bankruptcy_price_nb(side, ep, q, margin, other_upnl) == pytest.approx(
            ref_bankruptcy_price(side, ep, q, margin, other_upnl), rel=1e-12, abs=1e-12
        )


def test_max_leverage_cap_is_inclusive() -> None:
    # 2024 BTC table: tier 1 is 0–50,000 at 125x. A cap is the largest position allowed at its
    # tier's leverage, so 50,000 exactly keeps 125x; 50,000.01 is tier 2 (100x).
    lev = arr([125, 100, 75, 50, 25, 20, 10, 5, 4, 3, 2, 1])
    floors = arr(BTC24_FLOORS)
    assert fx.max_leverage_nb(50_000.0, 1.0, floors, lev, False, INF) == 125.0
    assert fx.max_leverage_nb(50_000.01, 1.0, floors, lev, False, INF) == 100.0
    assert fx.max_leverage_nb(600_000.0, 1.0, floors, lev, False, INF) == 100.0
    assert fx.max_leverage_nb(1e-9, 1.0, floors, lev, False, INF) == 125.0
    # by size (OKX): 3 BTC is still tier 1 (cap 3), 3.5 BTC tier 2
    okx_floors, okx_lev = arr([0, 3, 6]), arr([125, 100, 66.66])
    assert fx.max_leverage_nb(1.0, 3.0, okx_floors, okx_lev, True, INF) == 125.0
    assert fx.max_leverage_nb(1.0, 3.5, okx_floors, okx_lev, True, INF) == 100.0
