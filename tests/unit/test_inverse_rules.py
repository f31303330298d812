"""Coin-margined (inverse) liquidation and bankruptcy prices (docs/reference/exchange-rules.md §8).

The published examples are the exchanges' own (cited per test); the direct closed forms below are
written from the exchanges' inverse formulas, independently of the X = 1/P transform the library
uses, and a property test checks the two agree on random inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import backtester as bt
from backtester._typing import contract_type_of
from backtester.errors import ConfigError
from backtester.rules import formulas as fx
from backtester.rules import inverse_contract, liquidation_quote, round_to_tick

INV = "BTC/USD:BTC"


# ------------------------------------------------------------------------- direct formulas
def _price(num: float, den: float) -> float:
    # num / den; a zero denominator is the pole of 1/LP = 0: no finite price reaches the
    # maintenance margin (a short whose margin and amount cover its whole coin value)
    return num / den if den != 0.0 else math.inf


def binance_lp(side: int, ep: float, face: float, wb: float, mmr: float, cum: float) -> float:
    # Binance COIN-M one-way: WB + s·F·(1/EP − 1/LP) = F/LP·MMR − cum, solved for LP
    return _price(face * (mmr + side), wb + cum + side * face / ep)


def bybit_lp(side: int, ep: float, face: float, margin: float, mmr: float, ded: float) -> float:
    # Bybit (UTA isolated, inverse): LP = Q / [PV ± (IM − MM)], PV = Q/EP, MM = PV·MMR − ded
    pv = face / ep
    return _price(face, pv + side * (margin - (pv * mmr - ded)))


def okx_lp(side: int, ep: float, face: float, margin: float, mmr: float, fee: float) -> float:
    # equity M + s·F·(1/EP − 1/LP) = F/LP·(MMR + fee), solved for LP
    return face * (side + mmr + fee) / (side * face / ep + margin)


def bp_direct(side: int, ep: float, face: float, margin: float) -> float:
    return face / (face / ep + side * margin)


# ------------------------------------------------------------------------- published examples
def test_binance_coinm_calculator_example() -> None:
    # dev.binance.vision/t/6292 (not in the repository): cross, wallet 101 BTC, long 100,000
    # BTCUSD contracts (100 USD) at 45,000; Binance's calculator shows 33,599.40. The position's
    # coin value at LP (~297.6 BTC) is in tier 7 (MMR 12.5%, maintenance amount 11.605 BTC, the
    # FAQ's own 300 BTC example).
    lp = bt.liquidation_price(
        "binancecoinm", "long", 45000, 100_000, margin_mode="cross", wallet_balance=101, symbol=INV
    )
    assert lp == 33599.4
    exact = binance_lp(1, 45000, 1e7, 101, 0.125, 11.605)
    assert exact == pytest.approx(33599.4186, abs=1e-3)
    q = liquidation_quote(
        "binancecoinm", "long", 45000, 100_000, margin_mode="cross", wallet_balance=101, symbol=INV
    )
    assert q.liquidation_price_exact == pytest.approx(exact, rel=1e-12)
    assert (q.mmr, q.maint_amount, q.tier) == (0.125, 11.605, 7)
    assert (q.contract_type, q.contract_size, q.price_tick) == ("inverse", 100.0, 0.1)


def test_binance_coinm_maintenance_amount_of_the_faq() -> None:
    # "if the BTCUSD contract position is 300 BTC ... MMR 12.5% ... maintenance amount 11.605 BTC"
    r = bt.exchange_rules("binancecoinm", INV)
    k = r.tier_index(300.0, 0.0)
    assert (float(r.mmr[k]), float(r.maint_amount[k])) == (0.125, 11.605)


def test_bybit_inverse_cross_example_with_fee_to_close() -> None:
    # Bybit "How to calculate Liquidation Price (Inverse Contract)", help.bybit.com/hc/en-us/
    # articles/360039261334: balance 0.5 BTC, long 10,000 contracts at 8,000, cross, MMR 0.5%,
    # taker 0.075%: BP = 1.00075·10000/(10000/8000 + 0.5) = 5718.57, LP = 5739.50.
    q = liquidation_quote(
        "bybit",
        "long",
        8000,
        10_000,
        margin_mode="cross",
        wallet_balance=0.5,
        mmr=0.005,
        taker_fee=0.00075,
        symbol=INV,
    )
    assert q.bankruptcy_price_exact == pytest.approx(5718.57, abs=0.005)
    assert q.liquidation_price == 5739.5  # 5739.08 rounded up to the 0.5 tick
    inv_lp = 1 / 8000 + (0.5 - 10_000 / 8000 * 0.005 - 10_000 * 0.00075 / 5718.57) / 10_000
    assert q.liquidation_price_exact == pytest.approx(1 / inv_lp, rel=1e-6)


def test_bybit_inverse_bankruptcy_example() -> None:
    # Bybit "What is Bankruptcy Price? (Inverse Contract)": long 50x at 7,890.08 → BP 7,735.37,
    # rounded up to 7,735.50 (exchange-rules.md §3.2, [V])
    assert bt.bankruptcy_price("bybit", "long", 7890.08, 10_000, leverage=50, symbol=INV) == 7735.5
    q = liquidation_quote("bybit", "long", 7890.08, 10_000, leverage=50, mmr=0.005, symbol=INV)
    assert q.bankruptcy_price_exact == pytest.approx(7890.08 * 50 / 51, rel=1e-12)
    assert round(q.bankruptcy_price_exact, 2) == 7735.37


def test_bybit_inverse_uta_example() -> None:
    # Bybit "Liquidation Price Calculation under Isolated Mode (UTA)", 2024-09-10 version:
    # 60,000 USD of BTCUSD at 50,000, 10x, MMR 0.5%: PV 1.2, IM 0.12, MM 0.006
    short = liquidation_quote("bybit", "short", 50000, 60000, leverage=10, mmr=0.005, symbol=INV)
    long = liquidation_quote("bybit", "long", 50000, 60000, leverage=10, mmr=0.005, symbol=INV)
    assert short.liquidation_price_exact == pytest.approx(60000 / (1.2 - 0.114), rel=1e-12)
    assert long.liquidation_price_exact == pytest.approx(60000 / (1.2 + 0.114), rel=1e-12)
    assert (short.liquidation_price, long.liquidation_price) == (55248.5, 45662.5)
    assert short.maint_margin == pytest.approx(0.006, rel=1e-12)
    assert long.margin == pytest.approx(0.12, rel=1e-12)


def test_bybit_legacy_isolated_formula() -> None:
    # legacy Bybit: LP = EP·L/(L + 1 − MMR·L) long, EP·L/(L − 1 + MMR·L) short (8,000, 50x, 0.5%)
    lo = liquidation_quote("bybit", "long", 8000, 10_000, leverage=50, mmr=0.005, symbol=INV)
    hi = liquidation_quote("bybit", "short", 8000, 10_000, leverage=50, mmr=0.005, symbol=INV)
    assert lo.liquidation_price_exact == pytest.approx(8000 * 50 / 50.75, rel=1e-12)
    assert hi.liquidation_price_exact == pytest.approx(8000 * 50 / 49.25, rel=1e-12)
    assert (lo.liquidation_price, hi.liquidation_price) == (7882.0, 8121.5)


# ------------------------------------------------------------------------- hand-computed cases
def test_binance_coinm_short_by_hand() -> None:
    # 10 contracts × 100 USD = 1,000 USD at 40,000 (0.025 BTC), 20x → margin 0.00125 BTC; tier 1
    # (MMR 0.4%, cum 0): LP = 1000·0.996/(0.025 − 0.00125) = 41,936.84; BP = 1000/0.02375
    q = liquidation_quote("binancecoinm", "short", 40000, 10, leverage=20, symbol=INV)
    assert q.liquidation_price_exact == pytest.approx(1000 * 0.996 / 0.02375, rel=1e-12)
    assert q.bankruptcy_price_exact == pytest.approx(1000 / 0.02375, rel=1e-12)
    assert (q.liquidation_price, q.bankruptcy_price) == (41936.8, 42105.3)
    assert q.notional == pytest.approx(0.025, rel=1e-12)
    assert q.margin == pytest.approx(0.00125, rel=1e-12)


def test_okx_inverse_by_hand() -> None:
    # 100 BTC-USD-SWAP contracts (100 USD) at 50,000 = 0.2 BTC, 10x → 0.02 BTC; MMR 0.5%, fee
    # 0.05%: LP = 10000·1.0055/0.22 = 45,704.545 → 45,704.5 (0.1 tick)
    q = liquidation_quote("okx", "long", 50000, 100, leverage=10, mmr=0.005, symbol=INV)
    assert q.liquidation_price_exact == pytest.approx(10000 * 1.0055 / 0.22, rel=1e-12)
    assert q.liquidation_price == 45704.5


def test_inverse_short_at_1x_is_never_bankrupt_and_long_lp_zero() -> None:
    assert (
        bt.bankruptcy_price("binancecoinm", "short", 40000, 10, leverage=1, symbol=INV) == math.inf
    )
    q = liquidation_quote("bybit", "long", 8000, 10_000, leverage=1, mmr=0.005, symbol=INV)
    assert q.liquidation_price > 0  # 1x long: LP = 8000/(2 − 0.005)
    assert q.liquidation_price_exact == pytest.approx(8000 / 1.995, rel=1e-12)


def test_contract_type_from_the_symbol_and_bad_contract_size() -> None:
    assert contract_type_of("BTC/USD:BTC") == "inverse"
    assert contract_type_of("BTC/USDT:USDT") == "linear"
    assert contract_type_of("BTC/USDT") == "linear"
    assert inverse_contract("binancecoinm", "ETH/USD:ETH") == (10.0, 0.0)
    assert inverse_contract("bybit", INV, 2.0) == (2.0, 0.5)
    with pytest.raises(ConfigError, match="contract_size is for coin-margined symbols"):
        bt.liquidation_price("binanceusdm", "long", 20000, 1, leverage=10, contract_size=100)
    with pytest.raises(ConfigError, match="contract_size must be a finite number > 0, was 0"):
        bt.liquidation_price(
            "bybit", "long", 8000, 1, leverage=10, mmr=0.005, symbol=INV, contract_size=0
        )
    with pytest.raises(ConfigError, match="no tier table for bybit"):
        bt.liquidation_price("bybit", "long", 8000, 1, leverage=10, symbol=INV)


def test_linear_results_unchanged() -> None:
    q = liquidation_quote("binanceusdm", "long", 20000, 1, leverage=50, mmr=0.005)
    assert round(q.liquidation_price, 2) == 19698.49
    assert q.liquidation_price_exact == q.liquidation_price
    assert (q.contract_type, q.price_tick) == ("linear", 0.0)


def test_round_to_tick() -> None:
    assert round_to_tick(5739.0835, 0.5, "bybit", "long") == 5739.5
    assert round_to_tick(5739.0835, 0.5, "bybit", "short") == 5739.0
    assert round_to_tick(5739.5, 0.5, "bybit", "long") == 5739.5
    assert round_to_tick(33599.4186, 0.1, "binancecoinm", "long") == 33599.4
    assert round_to_tick(33599.46, 0.1, "okx", "short") == 33599.5
    assert round_to_tick(123.456, 0.0, "okx", "short") == 123.456
    assert round_to_tick(math.inf, 0.1, "okx", "short") == math.inf


# ------------------------------------------------------------------------- property: X = 1/P
_EMPTY = np.zeros(1)


@settings(max_examples=300, deadline=None)
# found by hypothesis: margin + amount == the short's coin value, the direct form's pole
@example(side=-1, ep=100.0, face=1.5, lev=1.5, mmr=0.03125, amount=0.005, fee=0.0)
@given(
    side=st.sampled_from([1, -1]),
    ep=st.floats(100.0, 200_000.0),
    face=st.floats(1.0, 1e7),
    lev=st.floats(1.5, 100.0),
    mmr=st.floats(0.001, 0.05),
    amount=st.floats(0.0, 0.01),
    fee=st.floats(0.0, 0.001),
)
def test_transform_agrees_with_direct_formulas(
    side: int, ep: float, face: float, lev: float, mmr: float, amount: float, fee: float
) -> None:
    margin = face / ep / lev
    if mmr + fee >= 1.0 / lev:  # liquidatable at entry: not a position one can open
        return
    one = np.ones(1) * mmr
    amt = np.ones(1) * amount
    for conv, direct in (
        (fx.BINANCE, binance_lp(side, ep, face, margin, mmr, amount)),
        (fx.BYBIT, bybit_lp(side, ep, face, margin, mmr, amount)),
        (fx.OKX, okx_lp(side, ep, face, margin, mmr, fee)),
    ):
        got = fx.inverse_liquidation_price_nb(
            conv,
            side,
            ep,
            face,
            margin,
            0.0,
            0.0,
            _EMPTY,
            one,
            amt if conv != fx.OKX else _EMPTY,
            False,
            math.nan,
            fee if conv == fx.OKX else 0.0,
        )
        if direct <= 0.0:  # a short never liquidated / a long at no positive price
            assert got in (0.0, math.inf)
        else:
            assert got == pytest.approx(direct, rel=1e-9)
    bp = fx.inverse_bankruptcy_price_nb(side, ep, face, margin, 0.0)
    assert bp == pytest.approx(bp_direct(side, ep, face, margin), rel=1e-9)
    # the liquidation price lies between entry and bankruptcy
    lp = fx.inverse_liquidation_price_nb(
        fx.BINANCE, side, ep, face, margin, 0.0, 0.0, _EMPTY, one, _EMPTY, False, math.nan, 0.0
    )
    assert (
        (bp <= lp * (1 + 1e-12) <= ep * (1 + 1e-12))
        if side == 1
        else (ep <= lp <= bp * (1 + 1e-12))
    )


def test_inverse_messages_speak_in_prices_and_contracts() -> None:
    # above the last tier's 1,000 BTC cap: 1,000 BTC × 50,000 / 100 USD = 500,000 contracts
    with pytest.raises(ConfigError, match="lower size to at most 500000 contracts"):
        bt.liquidation_price("binancecoinm", "long", 50000, 1e9, leverage=2, symbol=INV)
    # a cross wallet below maintenance at entry: LP above the entry price, said in USD
    with pytest.warns(bt.BacktesterWarning, match="stays above the liquidation price 50074.8"):
        lp = bt.liquidation_price(
            "binancecoinm",
            "long",
            50000,
            100,
            margin_mode="cross",
            wallet_balance=0.0005,
            symbol=INV,
        )
    # 10,000 USD: (0.2 + 0.0005)·LP = 10,000·1.004 → 50,074.81
    assert lp == 50074.8
