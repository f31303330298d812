"""The liquidation-price tier scan skips tiers without dividing: the skip changes no result.

``_scan_tiers_nb`` (backtester/rules/formulas.py) leaves out, with a 1e-9 relative margin, a
tier whose root clearly lies outside it, and a short stops at a tier floor above the best price
found. This compares it bit for bit with the plain scan (every tier, three divisions each, as it
was written before) on random tables and on equity chosen to put the root within a few ulps
of a tier's edge, for Binance's (amounts) and OKX's (no amounts, a fee rate) forms.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.rules import formulas as F


def _plain_scan(side, entry, size, eb, floors, mmr, amounts, fee, use_amount, k_lo, k_hi):
    # the scan as written before the skip: every tier, three divisions (pure Python floats
    # are the same IEEE doubles, evaluated in the same order)
    n = floors.shape[0]
    s = 1.0 if side == F.LONG else -1.0
    best = -1.0 if side == F.LONG else math.inf
    for k in range(k_lo, k_hi):
        a = float(floors[k]) / size
        b = float(floors[k + 1]) / size if k + 1 < n else math.inf
        amount = float(amounts[k]) if use_amount else 0.0
        rate = float(mmr[k]) + fee
        root = (eb + amount - s * size * entry) / (size * rate - s * size)
        if side == F.LONG:
            if root >= a:
                cand = root if root < b else b
                if cand > best:
                    best = cand
        elif root < b:
            cand = root if root > a else a
            if cand < best:
                best = cand
    return best


def _table(draw_floors: list[float], draw_rates: list[float]) -> tuple[np.ndarray, ...]:
    floors = np.concatenate(([0.0], np.cumsum(draw_floors)))
    mmr = np.sort(np.asarray(draw_rates))
    # Binance's cum recurrence: the maintenance margin is continuous at every floor
    cum = np.zeros_like(mmr)
    for k in range(1, mmr.size):
        cum[k] = cum[k - 1] + floors[k] * (mmr[k] - mmr[k - 1])
    return floors, mmr, cum


tables = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(1e2, 1e8), min_size=n - 1, max_size=n - 1),
        st.lists(st.floats(0.001, 0.6), min_size=n, max_size=n),
    )
)


@settings(max_examples=400, deadline=None)
@given(
    tables,
    st.sampled_from([F.LONG, F.SHORT]),
    st.floats(0.01, 1e5),
    st.floats(1e-4, 1e4),
    st.floats(-2.0, 2.0),
    st.booleans(),
    st.integers(0, 11),
    st.integers(-3, 3),
)
def test_skip_matches_the_plain_scan(table, side, entry, size, eq_frac, okx, edge_tier, ulps):
    floors, mmr, cum = _table(*table)
    fee = 0.0005 if okx else 0.0
    use_amount = not okx
    n = floors.size
    notional = size * entry
    cases = [notional * eq_frac]
    # equity that puts the root on a tier's edge (a for a long, b for a short), nudged by ulps
    k = edge_tier % n
    s = 1.0 if side == F.LONG else -1.0
    edge_floor = floors[k] if side == F.LONG else (floors[k + 1] if k + 1 < n else None)
    if edge_floor is not None:
        p = edge_floor / size
        amount = cum[k] if use_amount else 0.0
        eb = p * (size * (mmr[k] + fee) - s * size) - amount + s * size * entry
        for _ in range(abs(ulps)):
            eb = math.nextafter(eb, math.inf if ulps > 0 else -math.inf)
        cases.append(eb)
    for eb in cases:
        got = F._scan_tiers_nb(side, entry, size, eb, floors, mmr, cum, fee, use_amount, 0, n)
        want = _plain_scan(side, entry, size, eb, floors, mmr, cum, fee, use_amount, 0, n)
        assert got == want or (math.isnan(got) and math.isnan(want)), (eb, got, want)
        # and through the public kernel entry point (both scans of _first_trigger_nb)
        conv = F.OKX if okx else F.BINANCE
        lp = F.liquidation_price_nb(
            conv, side, entry, size, eb, 0.0, 0.0, floors, mmr, cum, False, math.nan, fee
        )
        assert lp == lp  # never NaN for finite inputs


def test_skip_matches_on_a_real_table_near_every_edge():
    # Binance BTCUSDT-like tiers; equity walked across every tier edge one ulp at a time
    floors = np.array([0, 5e4, 2.5e5, 1e6, 5e6, 2e7, 5e7, 1e8, 2e8])
    mmr = np.array([0.004, 0.005, 0.01, 0.025, 0.05, 0.1, 0.125, 0.15, 0.25])
    _, _, cum = _table(list(np.diff(floors)), list(mmr))
    for side in (F.LONG, F.SHORT):
        s = 1.0 if side == F.LONG else -1.0
        for size in (0.002, 2.0, 40.0, 3000.0):
            entry = 50_000.0
            for k in range(floors.size):
                edge = floors[k] if side == F.LONG else (floors[k + 1] if k + 1 < 9 else None)
                if edge is None:
                    continue
                p = edge / size
                eb0 = p * (size * mmr[k] - s * size) - cum[k] + s * size * entry
                for step in range(-4, 5):
                    eb = eb0
                    for _ in range(abs(step)):
                        eb = math.nextafter(eb, math.inf if step > 0 else -math.inf)
                    got = F._scan_tiers_nb(side, entry, size, eb, floors, mmr, cum, 0.0, True, 0, 9)
                    want = _plain_scan(side, entry, size, eb, floors, mmr, cum, 0.0, True, 0, 9)
                    assert got == want, (side, size, k, step, got, want)
