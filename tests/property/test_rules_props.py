"""Property tests of the exchange margin rules (backtester.rules and rules.formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import backtester as bt
from backtester.data.store import list_tier_snapshots
from backtester.rules import formulas as fx
from backtester.rules.tables import cum_recurrence, packaged_tables, recurrence_error
from tests.unit.test_formulas import ref_liquidation_price

EXCHANGES = ["binanceusdm", "okx", "bybit"]
CONVENTIONS = [fx.BINANCE, fx.OKX, fx.BYBIT]
SIDES = ["long", "short"]

prices = st.floats(min_value=1.0, max_value=200_000.0, allow_nan=False)
sizes = st.floats(min_value=1e-3, max_value=50.0, allow_nan=False)
rates = st.floats(min_value=0.0, max_value=0.05, allow_nan=False)


@st.composite
def tier_tables(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random notional tier table whose amounts follow the cum recurrence."""
    n = draw(st.integers(min_value=1, max_value=8))
    steps = draw(st.lists(st.floats(1e3, 1e7), min_size=n - 1, max_size=n - 1))
    floors = np.concatenate([[0.0], np.cumsum(steps)]) if n > 1 else np.zeros(1)
    bumps = draw(st.lists(st.floats(0.0, 0.05), min_size=n - 1, max_size=n - 1))
    mmr = 0.002 + np.concatenate([[0.0], np.cumsum(bumps)]) if n > 1 else np.array([0.004])
    mmr = np.minimum(mmr, 0.5)
    return floors, mmr, cum_recurrence(floors, mmr)


# ---------------------------------------------------------------------------------------------
# tables


def _allowed(exchange: str, entry: float, size: float, leverage: float) -> bool:
    rules = bt.exchange_rules(exchange, "BTC/USDT:USDT")
    return leverage <= rules.max_leverage_for(entry * size, size)


def _tables_with_amounts() -> list[object]:
    out: list[object] = [t for t in packaged_tables() if t.maint_amount.any()]
    for exchange, symbol in (("binanceusdm", "BTC/USDT:USDT"), ("binanceusdm", "ETH/USDT:USDT")):
        for day, frame in list_tier_snapshots(exchange, symbol):
            out.append((f"{exchange}/{symbol}/{day:%Y-%m-%d}", frame))
    return out


@pytest.mark.parametrize(
    "table", _tables_with_amounts(), ids=lambda t: getattr(t, "table_id", "store")
)
def test_cum_recurrence_holds_for_every_table(table: object) -> None:
    """Every maintenance amount equals cum[n-1] + floor[n]·(mmr[n] − mmr[n-1]) (§1.1, §3.3)."""
    if isinstance(table, tuple):
        frame = table[1]
        floors = frame["floor"].to_numpy(float)
        mmr = frame["mmr"].to_numpy(float)
        np.testing.assert_allclose(
            frame["maint_amount"].to_numpy(float), cum_recurrence(floors, mmr), rtol=0, atol=1e-6
        )
    else:
        assert recurrence_error(table) < 1e-6  # type: ignore[arg-type]


@given(tier_tables(), st.floats(0.0, 3e7))
def test_binance_maint_margin_is_continuous_in_notional(table: tuple, notional: float) -> None:
    """With recurrent cum, MM(N) has no jump at any tier floor (so the LP is unique)."""
    floors, mmr, cum = table
    for floor in floors[1:]:
        below = fx.maint_margin_nb(
            fx.BINANCE, floor * (1 - 1e-12), 1.0, floors, mmr, cum, False, math.nan
        )
        at = fx.maint_margin_nb(fx.BINANCE, floor, 1.0, floors, mmr, cum, False, math.nan)
        assert at == pytest.approx(below, rel=1e-9, abs=1e-6)
    assert fx.maint_margin_nb(fx.BINANCE, notional, 1.0, floors, mmr, cum, False, math.nan) >= -1e-6


# ---------------------------------------------------------------------------------------------
# liquidation price


@given(
    exchange=st.sampled_from(EXCHANGES),
    entry=prices,
    size=sizes,
    mmr=st.floats(0.0, 0.02),
    lev1=st.floats(1.0, 45.0),
    lev2=st.floats(1.0, 45.0),
)
def test_long_below_short_above_and_monotone_in_leverage(
    exchange: str, entry: float, size: float, mmr: float, lev1: float, lev2: float
) -> None:
    """When 1/leverage > MMR (+ fee), a long's LP is below entry and a short's above, and both
    move toward entry as leverage rises."""
    lo, hi = sorted((lev1, lev2))
    fee = 0.0005 if exchange == "okx" else 0.0
    assume(1.0 / hi > mmr + fee + 1e-9)
    assume(_allowed(exchange, entry, size, hi))
    kw = dict(mmr=mmr, symbol="BTC/USDT:USDT")
    long_lo = bt.liquidation_price(exchange, "long", entry, size, leverage=lo, **kw)
    long_hi = bt.liquidation_price(exchange, "long", entry, size, leverage=hi, **kw)
    short_lo = bt.liquidation_price(exchange, "short", entry, size, leverage=lo, **kw)
    short_hi = bt.liquidation_price(exchange, "short", entry, size, leverage=hi, **kw)
    assert long_lo <= long_hi * (1 + 1e-12) + 1e-9
    assert long_hi < entry < short_hi
    assert short_hi <= short_lo * (1 + 1e-12)


@given(
    exchange=st.sampled_from(EXCHANGES),
    side=st.sampled_from(SIDES),
    entry=prices,
    size=sizes,
    lev1=st.floats(1.0, 25.0),
    lev2=st.floats(1.0, 25.0),
)
def test_monotone_with_real_tier_tables(
    exchange: str, side: str, entry: float, size: float, lev1: float, lev2: float
) -> None:
    """With each exchange's latest table, the LP moves toward entry as leverage rises."""
    lo, hi = sorted((lev1, lev2))
    assume(_allowed(exchange, entry, size, hi))
    lp_lo = bt.liquidation_price(exchange, side, entry, size, leverage=lo)
    lp_hi = bt.liquidation_price(exchange, side, entry, size, leverage=hi)
    if side == "long":
        assert lp_lo <= lp_hi * (1 + 1e-12) + 1e-9 and lp_hi < entry
    else:
        assert lp_lo >= lp_hi * (1 - 1e-12) and lp_hi > entry


@given(
    exchange=st.sampled_from(EXCHANGES),
    side=st.sampled_from(SIDES),
    entry=prices,
    size=sizes,
    lev=st.floats(1.0, 100.0),
)
def test_liquidation_equals_bankruptcy_when_mmr_and_fees_are_zero(
    exchange: str, side: str, entry: float, size: float, lev: float
) -> None:
    """With MMR 0 and no fee term, the liquidation price is the bankruptcy price."""
    assume(_allowed(exchange, entry, size, lev))
    kw = dict(leverage=lev, mmr=0.0, taker_fee=0.0)
    lp = bt.liquidation_price(exchange, side, entry, size, **kw)
    bp = bt.bankruptcy_price(exchange, side, entry, size, **kw)
    assert lp == pytest.approx(bp, rel=1e-12, abs=1e-9)


@given(
    side=st.sampled_from([fx.LONG, fx.SHORT]),
    table=tier_tables(),
    entry=prices,
    size=st.floats(0.01, 500.0),
    lev=st.floats(1.0, 100.0),
)
def test_binance_lp_satisfies_the_trigger_with_the_tier_at_lp(
    side: int, table: tuple, entry: float, size: float, lev: float
) -> None:
    """At the Binance LP, margin balance equals MM valued at LP with the tier of the LP notional,
    and the kernel agrees with the exchange's iterative re-solve procedure."""
    floors, mmr, cum = table
    margin = size * entry / lev
    lp = fx.liquidation_price_nb(
        fx.BINANCE, side, entry, size, margin, 0.0, 0.0, floors, mmr, cum, False, math.nan, 0.0
    )
    assume(lp > 0)
    s = 1.0 if side == fx.LONG else -1.0
    equity = margin + s * size * (lp - entry)
    mm = fx.maint_margin_nb(fx.BINANCE, size * lp, size, floors, mmr, cum, False, math.nan)
    assert equity == pytest.approx(mm, rel=1e-7, abs=1e-6 * size * entry)
    twin = ref_liquidation_price(
        fx.BINANCE,
        side,
        entry,
        size,
        margin,
        0.0,
        0.0,
        list(floors),
        list(mmr),
        list(cum),
        False,
        math.nan,
        0.0,
    )
    assert lp == pytest.approx(twin, rel=1e-9)


@given(
    side=st.sampled_from([fx.LONG, fx.SHORT]),
    table=tier_tables(),
    entry=prices,
    size=st.floats(0.01, 500.0),
    lev=st.floats(1.0, 60.0),
    fee=st.floats(0.0, 0.001),
)
def test_okx_notional_tiers_first_trigger(
    side: int, table: tuple, entry: float, size: float, lev: float, fee: float
) -> None:
    """OKX MM has jumps at tier floors; the LP is the first mark price, moving against the
    position, at which equity <= MM + liquidation fee, and no earlier price triggers."""
    floors, mmr, _ = table
    zeros = np.zeros_like(floors)
    margin = size * entry / lev
    lp = fx.liquidation_price_nb(
        fx.OKX, side, entry, size, margin, 0.0, 0.0, floors, mmr, zeros, False, math.nan, fee
    )
    s = 1.0 if side == fx.LONG else -1.0

    def gap(p: float) -> float:
        mm = fx.maint_margin_nb(fx.OKX, size * p, size, floors, mmr, zeros, False, math.nan)
        return margin + s * size * (p - entry) - mm - size * p * fee

    assume(lp > 0 and gap(entry) > 0)
    for t in np.linspace(0.0, 1.0, 41)[:-1]:
        p = entry + t * (lp - entry)
        assert gap(p) > -1e-9 * size * entry  # not triggered before LP
    beyond = lp * (1 - 1e-9) if side == fx.LONG else lp * (1 + 1e-9)
    assert gap(beyond) <= 1e-6 * size * entry  # triggered at (just past) LP


@given(
    entry=prices,
    size=sizes,
    wallet=st.floats(100.0, 1e6),
    upnl=st.floats(-50.0, 50.0),
    mm=st.floats(0.0, 50.0),
)
def test_cross_other_positions_shift_the_price(
    entry: float, size: float, wallet: float, upnl: float, mm: float
) -> None:
    """In cross mode, other positions' unrealized profit lowers a long's LP and their
    maintenance margin raises it (Binance §1.2: WB − TMM1 + UPNL1)."""
    assume(wallet > size * entry / 100)
    # the account must be above this position's maintenance margin at entry (else a warning)
    assume(wallet - mm + upnl > 0.005 * size * entry * (1 + 1e-9))
    base = dict(margin_mode="cross", wallet_balance=wallet, mmr=0.005, maint_amount=0.0)
    shifted = bt.liquidation_price(
        "binanceusdm", "long", entry, size, other_maint_margin=mm, other_unrealized_pnl=upnl, **base
    )
    # LP = (WB − TMM1 + UPNL1 − Q·EP)/(Q·MMR − Q), clipped at 0
    want = max(0.0, (size * entry - wallet + mm - upnl) / (size * 0.995))
    assert shifted == pytest.approx(want, rel=1e-9, abs=1e-6 * entry)
