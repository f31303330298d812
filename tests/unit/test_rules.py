"""Unit tests of backtester.rules: dated tables, profiles, the public price API and its errors.

Hand-computed expectations are in the comments; sections refer to
docs/reference/exchange-rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.engine.enums import Convention
from backtester.errors import BacktesterWarning, ConfigError, DataError
from backtester.rules import liquidation_quote, rules_timeline
from backtester.rules import tables as tables_mod
from backtester.rules.profiles import PROFILES, fee_change_dates, liquidation_fee_rate
from backtester.rules.tables import packaged_tables, table_from_frame, tables_for

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
_REAL_STORE_TABLES = tables_mod._store_tables


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep tests independent of whatever tier snapshots the local data store holds."""
    monkeypatch.setattr(tables_mod, "_store_tables", lambda exchange, symbol, store=None: [])
    tables_mod._read_store_tables.cache_clear()  # snapshots are cached by file fingerprint
    yield
    tables_mod._read_store_tables.cache_clear()


# ---------------------------------------------------------------------------------------------
# dated tables


def test_exchange_rules_at_2021_05_19_uses_the_2021_03_18_table() -> None:
    # Arrange / Act
    rules = bt.exchange_rules("binanceusdm", BTC, at="2021-05-19")
    # Assert: in force from 2021-03-18 09:00 until the 2024-05-30 table
    assert rules.table_id == "binanceusdm/BTC_USDT_USDT/2021-03-18"
    assert rules.effective_from == pd.Timestamp("2021-03-18 09:00", tz="UTC")
    assert "in force from 2021-03-18 until 2024-05-30" in rules.note
    assert rules.confidence == "V"
    # derived cum column of the reference table (§1.3): 0, 50, 1,300, 16,300, 266,300, ...
    assert rules.maint_amount.tolist() == [
        0,
        50,
        1_300,
        16_300,
        266_300,
        1_266_300,
        2_516_300,
        5_016_300,
        25_016_300,
        100_016_300,
    ]
    assert rules.max_leverage.tolist() == [125, 100, 50, 20, 10, 5, 4, 3, 2, 1]


def test_table_switches_at_its_effective_hour() -> None:
    # 2021-03-18 08:59 UTC is still the legacy table; 09:00 the new one
    before = bt.exchange_rules("binanceusdm", BTC, at="2021-03-18 08:59")
    after = bt.exchange_rules("binanceusdm", BTC, at=pd.Timestamp("2021-03-18 09:00", tz="UTC"))
    assert before.table_id.endswith("2019-09-08")
    assert after.table_id.endswith("2021-03-18")


def test_legacy_table_reproduces_faq_cases_e_and_f() -> None:
    rules = bt.exchange_rules("binanceusdm", BTC, at="2020-06-01")
    # case E: notional 264,000 → tier 3 (1%), cum 1,300
    k = rules.tier_index(264_000.0, 1.0)
    assert (rules.mmr[k], rules.maint_amount[k]) == (0.01, 1_300.0)
    # case F: floor 5,000,000 at 5% after 2.5%/16,300 → 5,000,000·2.5% + 16,300 = 141,300
    k = int(np.flatnonzero(rules.floors == 5_000_000.0)[0])  # the tier whose floor is 5,000,000
    assert (rules.mmr[k], rules.maint_amount[k - 1], rules.maint_amount[k]) == (
        0.05,
        16_300,
        141_300,
    )
    assert "[S]" in rules.note


def test_maint_margin_method_matches_the_kernel() -> None:
    # 2024 table: 700,000 notional → tier 3 (0.65%, cum 950): 4,550 − 950 = 3,600
    from backtester.rules import formulas as fx

    rules = bt.exchange_rules("binanceusdm", BTC, at="2024-06-01")
    assert rules.maint_margin(700_000.0, 35.0) == pytest.approx(3_600.0)
    kernel = fx.maint_margin_nb(
        0, 700_000.0, 35.0, rules.floors, rules.mmr, rules.maint_amount, False, float("nan")
    )
    assert rules.maint_margin(700_000.0, 35.0) == pytest.approx(kernel)
    # OKX: 4 BTC by size → tier 2 (0.5%), no amount: 120,000 × 0.5% = 600
    assert bt.exchange_rules("okx", BTC).maint_margin(120_000.0, 4.0) == pytest.approx(600.0)


def test_latest_table_when_no_date() -> None:
    rules = bt.exchange_rules("binanceusdm", ETH)
    assert rules.table_id == "binanceusdm/ETH_USDT_USDT/2026-05-07"
    assert rules.max_leverage[0] == 150.0  # tier 1 of the 2026-05-07 snapshot
    assert "latest known table" in rules.note


def test_nearest_earlier_table_after_its_last_confirmed_date() -> None:
    # the 2024 BTC table is confirmed until 2024-10-24; 2025-03-01 uses it as the nearest
    rules = bt.exchange_rules("binanceusdm", BTC, at="2025-03-01")
    assert rules.table_id.endswith("2024-05-30")
    assert "last confirmed 2024-10-24" in rules.note and "nearest" in rules.note


def test_date_before_any_table_is_an_error_naming_the_range() -> None:
    with pytest.raises(ConfigError, match=r"at 2019-01-01 .*allowed range: at >= 2019-09-08"):
        bt.exchange_rules("binanceusdm", BTC, at="2019-01-01")
    with pytest.raises(ConfigError, match=r"allowed range: at >= 2024-05-30"):
        bt.exchange_rules("binanceusdm", ETH, at="2022-01-01")


def test_bad_date_string() -> None:
    with pytest.raises(ConfigError, match=r"at must be a date .* was 'yesterday'"):
        bt.exchange_rules("binanceusdm", BTC, at="yesterday")


def test_unknown_exchange_and_symbol() -> None:
    with pytest.raises(ConfigError, match=r"was 'binance'; did you mean 'binanceusdm'\?"):
        bt.exchange_rules("binance", BTC)
    with pytest.raises(
        ConfigError, match=r"'BTC/USDT' has no tier table .*did you mean 'BTC/USDT:USDT'"
    ):
        bt.exchange_rules("binanceusdm", "BTC/USDT")


def test_rules_arrays_are_readonly_contiguous_float64() -> None:
    rules = bt.exchange_rules("okx", BTC)
    for name in ("floors", "caps", "mmr", "maint_amount", "max_leverage"):
        values = getattr(rules, name)
        assert values.dtype == np.float64 and values.flags.c_contiguous
        assert not values.flags.writeable
    assert (
        rules.tier_by_size and rules.convention == Convention.OKX and rules.close_at == "bankruptcy"
    )
    assert not rules.maint_amount.any()  # OKX has no maintenance amount (§2.2)


def test_profiles() -> None:
    binance = bt.exchange_rules("binanceusdm", BTC)
    bybit = bt.exchange_rules("bybit", BTC)
    assert (binance.convention, binance.close_at, binance.funding_interval_h) == (
        0,
        "liquidation",
        8,
    )
    assert (binance.taker_fee, binance.maker_fee) == (0.0005, 0.0002)
    assert (bybit.convention, bybit.close_at, bybit.taker_fee) == (2, "bankruptcy", 0.00055)
    assert set(PROFILES) == {"binanceusdm", "okx", "bybit", "binancecoinm"}


def test_liquidation_fee_history() -> None:
    # legacy 0.3% BTC/USDT and 0.5% others (§1.4); exchangeInfo of 2025-12-24: 2%
    assert (
        liquidation_fee_rate("binanceusdm", BTC, pd.Timestamp("2021-01-01", tz="UTC"))[0] == 0.003
    )
    assert (
        liquidation_fee_rate("binanceusdm", ETH, pd.Timestamp("2021-01-01", tz="UTC"))[0] == 0.005
    )
    assert liquidation_fee_rate("binanceusdm", BTC, pd.Timestamp("2026-01-01", tz="UTC"))[0] == 0.02
    assert liquidation_fee_rate("okx", BTC, None)[0] == 0.0005
    assert bt.exchange_rules("binanceusdm", BTC, at="2021-05-19").liquidation_fee_rate == 0.003


def test_rules_timeline_extends_backwards_and_splits_at_fee_change() -> None:
    # Act
    timeline = rules_timeline("binanceusdm", BTC, "2019-01-01", "2026-06-01")
    # Assert: 2019-01-01 (extended legacy), 2021-03-18, 2024-05-30, 2025-12-24 (fee), 2026-05-07
    starts = [r.effective_from.strftime("%Y-%m-%d") for r in timeline]
    assert starts == ["2019-01-01", "2021-03-18", "2024-05-30", "2025-12-24", "2026-05-07"]
    assert "extended backwards from 2019-09-08 to 2019-01-01" in timeline[0].note
    assert [r.liquidation_fee_rate for r in timeline] == [0.003, 0.003, 0.003, 0.02, 0.02]
    assert timeline[3].table_id == timeline[2].table_id
    assert fee_change_dates("binanceusdm")[0] == timeline[3].effective_from


def test_rules_timeline_entirely_before_the_earliest_table() -> None:
    # OKX 2022 bars (before the 2023-06-15 table): the earliest table, extended back to start
    timeline = rules_timeline("okx", BTC, "2022-05-01", "2022-12-31")
    assert len(timeline) == 1
    assert timeline[0].effective_from == pd.Timestamp("2022-05-01", tz="UTC")
    assert timeline[0].table_id == "okx/BTC_USDT_USDT/2023-06-15"
    assert "extended backwards from 2023-06-15 to 2022-05-01" in timeline[0].note


def test_rules_timeline_inside_one_table() -> None:
    timeline = rules_timeline("bybit", BTC, "2022-01-01", "2022-12-31")
    assert [r.table_id for r in timeline] == ["bybit/BTC_USDT_USDT/2021-01-01"]
    with pytest.raises(ConfigError, match=r"end must not precede start"):
        rules_timeline("bybit", BTC, "2022-12-31", "2022-01-01")


def test_store_snapshots_become_dated_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: a downloaded snapshot dated 2026-09-01 and one on the packaged 2026-05-07 date
    frame = pd.DataFrame(
        {
            "tier": [1, 2],
            "floor": [0.0, 100_000.0],
            "cap": [100_000.0, 1e9],
            "max_leverage": [100.0, 20.0],
            "mmr": [0.005, 0.01],
            "maint_amount": [0.0, 500.0],
            "basis": ["notional", "notional"],
        }
    )
    import backtester.data.store as store

    monkeypatch.setattr(tables_mod, "_store_tables", _REAL_STORE_TABLES)
    monkeypatch.setattr(
        store,
        "list_tier_snapshots",
        lambda exchange, symbol, store=None: [
            (pd.Timestamp("2026-05-07", tz="UTC"), frame),
            (pd.Timestamp("2026-09-01", tz="UTC"), frame),
        ],
    )
    # Act
    ids = [t.table_id for t in tables_for("binanceusdm", BTC)]
    latest = bt.exchange_rules("binanceusdm", BTC)
    # Assert: the same-day store copy is dropped, the new one is the latest table
    assert ids[-2:] == [
        "binanceusdm/BTC_USDT_USDT/2026-05-07",
        "store:binanceusdm/BTC_USDT_USDT/2026-09-01",
    ]
    assert latest.table_id == "store:binanceusdm/BTC_USDT_USDT/2026-09-01"
    assert latest.maint_amount.tolist() == [0.0, 500.0]


def test_table_from_frame_rejects_bad_tables() -> None:
    good = {
        "tier": [1, 2],
        "floor": [0.0, 10.0],
        "cap": [10.0, 20.0],
        "max_leverage": [50.0, 20.0],
        "mmr": [0.01, 0.02],
        "maint_amount": [0.0, 0.1],
    }
    when = pd.Timestamp("2026-01-01", tz="UTC")
    table = table_from_frame(pd.DataFrame(good), exchange="okx", symbol=BTC, effective_from=when)
    assert table.n_tiers == 2 and table.basis == "notional"
    with pytest.raises(DataError, match=r"missing columns \['mmr'\]"):
        table_from_frame(
            pd.DataFrame(good).drop(columns="mmr"), exchange="okx", symbol=BTC, effective_from=when
        )
    with pytest.raises(DataError, match=r"column 'mmr' must be fractions in \(0, 1\)"):
        table_from_frame(
            pd.DataFrame({**good, "mmr": [0.01, 1.5]}),
            exchange="okx",
            symbol=BTC,
            effective_from=when,
        )
    with pytest.raises(DataError, match=r"column 'floor' must start at 0"):
        table_from_frame(
            pd.DataFrame({**good, "floor": [5.0, 10.0]}),
            exchange="okx",
            symbol=BTC,
            effective_from=when,
        )


def test_every_packaged_table_names_its_source() -> None:
    tables = packaged_tables()
    assert {(t.exchange, t.symbol) for t in tables} >= {
        ("binanceusdm", BTC),
        ("binanceusdm", ETH),
        ("okx", BTC),
        ("bybit", BTC),
    }
    for table in tables:
        assert table.source and table.note and table.confidence in {"V", "V-code", "S", "GAP"}
        np.testing.assert_array_equal(table.caps[:-1], table.floors[1:])  # tiers are contiguous


# ---------------------------------------------------------------------------------------------
# the public price API: worked examples


def test_case_a_cross_short_through_public_api() -> None:
    # Binance FAQ case A: LP = 57.14765/0.00502 = 11,383.99
    lp = bt.liquidation_price(
        "binanceusdm",
        "short",
        9451.53,
        0.005,
        margin_mode="cross",
        wallet_balance=10.72,
        other_maint_margin=1.3,
        other_unrealized_pnl=0.47,
        mmr=0.004,
        maint_amount=0.0,
    )
    assert round(lp, 2) == 11_383.99


def test_case_b_cross_long_through_public_api() -> None:
    # Binance FAQ case B: LP = 189.06/0.9935 = 190.297 (page truncates to 190.29)
    lp = bt.liquidation_price(
        "binanceusdm",
        "long",
        199.53,
        1,
        margin_mode="cross",
        wallet_balance=10.72,
        other_maint_margin=0.19,
        other_unrealized_pnl=-0.06,
        mmr=0.0065,
        maint_amount=0,
    )
    assert lp == pytest.approx(190.297, abs=5e-4)


def test_case_c_and_d_bybit() -> None:
    assert bt.liquidation_price("bybit", "long", 20000, 1, leverage=50, mmr=0.005) == pytest.approx(
        19_700
    )
    assert bt.bankruptcy_price("bybit", "long", 10000, 1, leverage=50) == pytest.approx(9_800)


def test_binance_vs_bybit_same_position() -> None:
    # Binance 19,600/0.995 = 19,698.49 (MM at LP); Bybit 20,000 − 300 = 19,700 (MM at entry)
    kw = dict(leverage=50, mmr=0.005)
    assert round(bt.liquidation_price("binanceusdm", "long", 20000, 1, **kw), 2) == 19_698.49
    assert round(bt.liquidation_price("bybit", "long", 20000, 1, **kw), 2) == 19_700.00


def test_tier_tables_are_used_by_default() -> None:
    # 2024 BTC table, 31 BTC at 20,000, 20x: the LP notional falls into tier 2 → 19,093.86
    quote = liquidation_quote("binanceusdm", "long", 20000, 31, leverage=20, at="2024-06-01")
    assert quote.liquidation_price == pytest.approx(588_950 / 30.845, rel=1e-12)
    assert (quote.tier, quote.mmr, quote.maint_amount) == (2, 0.005, 50.0)
    # MM at LP = 31·19,093.86·0.5% − 50 = 2,909.55
    assert quote.maint_margin == pytest.approx(31 * quote.liquidation_price * 0.005 - 50)


def test_bybit_values_mm_at_entry_with_deduction() -> None:
    # legacy Bybit table, 150 BTC at 20,000 = 3,000,000 → tier 2 (1%, deduction 10,000)
    # MM = 30,000 − 10,000 = 20,000; 10x → IM 300,000; LP = 20,000 − 280,000/150 = 18,133.33
    quote = liquidation_quote("bybit", "long", 20000, 150, leverage=10, at="2022-01-01")
    assert quote.maint_margin == pytest.approx(20_000.0)
    assert quote.liquidation_price == pytest.approx(20_000 - 280_000 / 150)
    assert quote.tier == 2


def test_okx_uses_taker_fee_term() -> None:
    # size tier 1 (0.4%), f = 0.0005: LP = (30,000 − 1,500)/0.9955 = 28,628.83
    lp = bt.liquidation_price("okx", "long", 30000, 1, leverage=20)
    assert lp == pytest.approx(28_500 / 0.9955)
    # an explicit taker_fee replaces the term: f = 0 → 28,500/0.996 = 28,614.46
    assert bt.liquidation_price(
        "okx", "long", 30000, 1, leverage=20, taker_fee=0.0
    ) == pytest.approx(28_500 / 0.996)


def test_isolated_margin_from_margin_and_extra_margin() -> None:
    # margin 500 on 20,000 (40x) equals leverage=40; a 50x position with 100 extra margin is
    # margin=500 alone (leverage=50 with margin=500 disagree, and are refused: see below)
    by_margin = bt.liquidation_price("bybit", "long", 20000, 1, margin=500, mmr=0.005)
    by_lev = bt.liquidation_price("bybit", "long", 20000, 1, leverage=40, mmr=0.005)
    assert by_margin == by_lev == pytest.approx(20_000 - (500 - 100))
    with pytest.raises(ConfigError, match=r"^leverage 50 and margin 500 disagree"):
        bt.liquidation_price("bybit", "long", 20000, 1, leverage=50, margin=500, mmr=0.005)


def test_long_that_cannot_be_liquidated_returns_zero() -> None:
    # 1x: margin 2,000 = notional → LP = (2,000 − 2,000)/(0.1·0.004 − 0.1) = 0 → 0.0 (never)
    assert bt.liquidation_price("binanceusdm", "long", 20000, 0.1, leverage=1, mmr=0.004) == 0.0
    assert bt.liquidation_price("binanceusdm", "long", 20000, 0.1, margin=2500, mmr=0.004) == 0.0
    # 2x: (1,000 − 2,000)/(0.0004 − 0.1) = 10,040.16
    lp = bt.liquidation_price("binanceusdm", "long", 20000, 0.1, leverage=2, mmr=0.004)
    assert lp == pytest.approx(1000 / 0.0996)


def test_quote_distance_and_close_at() -> None:
    quote = liquidation_quote("bybit", "long", 20000, 1, leverage=50, mmr=0.005)
    assert quote.distance_pct == pytest.approx(1.5)  # (20,000 − 19,700)/20,000
    assert quote.bankruptcy_price == pytest.approx(19_600)
    assert quote.close_at == "bankruptcy" and quote.tier == 0
    assert quote.to_dict()["liquidation_price"] == pytest.approx(19_700)


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(leverage=200), r"leverage must be in \[1, 150\], was 200; the maximum for tier 1"),
        (dict(leverage=0.5), r"leverage must be in \[1, 150\], was 0.5"),
        (dict(size=0), r"size must be a finite number > 0, was 0"),
        (dict(size=-1.0), r"size must be a finite number > 0, was -1.0"),
        (dict(entry_price=float("nan")), r"entry_price must be a finite number > 0"),
        (dict(side="buy"), r"side must be one of 'long', 'short', was 'buy'"),
        (dict(margin_mode="crossed"), r"margin_mode .* was 'crossed'; did you mean 'cross'"),
        (dict(leverage=None), r"isolated margin needs margin= .* or leverage="),
        (dict(margin_mode="cross"), r"margin_mode cross needs wallet_balance \(the wallet balance"),
        (
            dict(margin_mode="cross", wallet_balance=100, margin=50, leverage=None),
            r"margin is for margin_mode isolated",
        ),
        (dict(wallet_balance=100), r"wallet_balance is for margin_mode='cross'"),
        (dict(other_maint_margin=1.0), r"apply to margin_mode='cross' only"),
        (dict(margin=100.0), r"leverage 50 and margin 100 disagree: .* is 400"),
        (dict(margin=100.0, leverage=None), r"margin must be >= 133.33.* was 100"),
        (dict(mmr=1.0), r"mmr must be in \[0.0, 1.0\), was 1.0"),
        (dict(symbol="NOSUCH/USDT:USDT"), r"'NOSUCH/USDT:USDT' has no tier table for binanceusdm"),
        (dict(exchange="kraken"), r"exchange must be one of .* was 'kraken'"),
        (dict(at="2018-01-01"), r"at 2018-01-01 .*allowed range: at >= 2019-09-08"),
    ],
)
def test_bad_input_raises_a_clear_config_error(kwargs: dict[str, object], pattern: str) -> None:
    args: dict[str, object] = dict(
        exchange="binanceusdm", side="long", entry_price=20000.0, size=1.0, leverage=50
    )
    args.update(kwargs)
    with pytest.raises(ConfigError, match=pattern):
        bt.liquidation_price(**args)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=pattern):
        bt.bankruptcy_price(**args)  # type: ignore[arg-type]


def test_maint_amount_without_mmr_matters_for_the_liquidation_price_only() -> None:
    # A maintenance amount needs a rate to define a maintenance margin, so liquidation_price
    # refuses it alone; the bankruptcy price (EP - margin/Q = 20,000 - 400 = 19,600 at 50x) does
    # not depend on either, so bankruptcy_price accepts it (it raised the same error before).
    args: dict[str, Any] = dict(
        exchange="binanceusdm", side="long", entry_price=20000.0, size=1.0, leverage=50
    )
    with pytest.raises(ConfigError, match=r"maint_amount needs mmr= as well, was maint_amount=0.0"):
        bt.liquidation_price(**args, maint_amount=0.0)
    assert bt.bankruptcy_price(**args, maint_amount=0.0) == pytest.approx(19_600.0)
    assert bt.bankruptcy_price(**args, maint_amount=10.0) == pytest.approx(19_600.0)
    # still validated as an amount
    with pytest.raises(ConfigError, match=r"maint_amount must be >= 0, was -1.0"):
        bt.bankruptcy_price(**args, maint_amount=-1.0)
    with pytest.raises(ConfigError, match=r"maint_amount must be a finite number, was nan"):
        bt.bankruptcy_price(**args, maint_amount=float("nan"))


def test_okx_rejects_a_maintenance_amount() -> None:
    with pytest.raises(ConfigError, match=r"maint_amount must be 0 for okx"):
        bt.liquidation_price("okx", "long", 30000, 1, leverage=20, mmr=0.004, maint_amount=5)


def test_leverage_limit_depends_on_the_tier() -> None:
    # 2024 table: 700,000 notional is tier 3 (max 75x): 80x is refused, 75x accepted
    with pytest.raises(ConfigError, match=r"leverage must be in \[1, 75\], was 80"):
        bt.liquidation_price("binanceusdm", "long", 20000, 35, leverage=80, at="2024-06-01")
    assert bt.liquidation_price("binanceusdm", "long", 20000, 35, leverage=75, at="2024-06-01") > 0


def test_downloaded_tiers_in_the_store_become_the_latest_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # Arrange: an OKX snapshot as the ccxt loader writes it (sizes in base units, open last cap)
    from backtester.data.store import write_tiers

    monkeypatch.setattr(tables_mod, "_store_tables", _REAL_STORE_TABLES)
    monkeypatch.setenv("BACKTESTER_STORE", str(tmp_path))
    frame = pd.DataFrame(
        {
            "tier": [1, 2],
            "floor": [0.0, 5.0],
            "cap": [5.0, float("inf")],
            "max_leverage": [100.0, 50.0],
            "mmr": [0.005, 0.01],
            "maint_amount": [0.0, 0.0],
            "basis": ["size", "size"],
        }
    )
    write_tiers(frame, exchange="okx", symbol=BTC, date="2026-10-01")
    # Act
    rules = bt.exchange_rules("okx", BTC)
    lp = bt.liquidation_price("okx", "long", 30000, 6, leverage=20)
    # Assert: 6 BTC is tier 2 (1%): LP = (30,000 − 9,000/6)/(1 − 0.0105) = 28,802.43
    assert rules.table_id == "store:okx/BTC_USDT_USDT/2026-10-01"
    assert rules.tier_by_size and rules.caps[-1] == float("inf")
    assert lp == pytest.approx(28_500 / 0.9895)
    # the packaged table still applies to earlier dates
    assert bt.exchange_rules("okx", BTC, at="2024-01-01").table_id == "okx/BTC_USDT_USDT/2023-06-15"


# ---------------------------------------------------------------------------------------------
# a position already at or below maintenance at entry has no liquidation price


@pytest.mark.parametrize("side", ["long", "short"])
def test_isolated_margin_below_maintenance_at_entry_is_an_error(side: str) -> None:
    # 1 BTC at 20,000, 50x → margin 400; mmr 5% → MM at entry 20,000·5% = 1,000 > 400.
    # Solved anyway, the long's "LP" would be (400 − 20,000)/(0.05 − 1) = 20,631.58 > entry:
    # liquidated the moment it opens. The largest leverage that survives is 20,000/1,000 = 20.
    with pytest.raises(
        ConfigError,
        match=r"margin 400 \(leverage 50\) must exceed the maintenance margin at entry 1000 "
        r"\(mmr 5.0000%\).*lower leverage below 20, or the mmr",
    ):
        bt.liquidation_price("binanceusdm", side, 20000, 1, leverage=50, mmr=0.05)


def test_okx_margin_must_also_cover_the_fee_term_at_entry() -> None:
    # 50x → 400; MM + fee at entry = 20,000·(2% + 0.05%) = 410 > 400 → refused, limit 48.7805x
    with pytest.raises(ConfigError, match=r"entry 410 \(mmr 2.0000% \+ liquidation fee 0.0500%\)"):
        bt.liquidation_price("okx", "long", 20000, 1, leverage=50, mmr=0.02, taker_fee=0.0005)
    # 48x → 416.67 > 410: LP = (20,000 − 416.67)/(1 − 0.0205) = 19,993.19, just below entry
    lp = bt.liquidation_price("okx", "long", 20000, 1, leverage=48, mmr=0.02, taker_fee=0.0005)
    assert lp == pytest.approx((20000 - 20000 / 48) / 0.9795)
    assert lp < 20000


@pytest.mark.parametrize(
    ("side", "expected"),
    [("long", 20_100 / 0.996), ("short", 19_900 / 1.004)],
)
def test_cross_balance_below_maintenance_at_entry_warns(side: str, expected: float) -> None:
    # latest Binance table: 20,000 notional is tier 1 (0.4%) → MM at entry 80; wallet 100 minus
    # the other positions' MM 200 leaves −100 <= 80: liquidatable at the entry price. The price
    # is still the formula's (a cross position in profit can live with it), on the profitable
    # side: long (−100 − 20,000)/(0.004 − 1) = 20,180.72, short (−100 + 20,000)/1.004 =
    # 19,820.72. Before: returned silently. Needed for a new position: wallet > 100 + 80 + 100.
    with pytest.warns(
        BacktesterWarning,
        match=r"= -100 is at or below the position's maintenance margin at entry 80 "
        r"\(mmr 0.4000%\): liquidatable at the entry price.*raise wallet_balance above 280",
    ):
        quote = liquidation_quote(
            "binanceusdm",
            side,
            20000,
            1,
            margin_mode="cross",
            wallet_balance=100,
            other_maint_margin=200,
        )
    assert quote.liquidation_price == pytest.approx(expected)
    assert "liquidatable at the entry price" in quote.note


def test_explicit_isolated_margin_below_maintenance_at_entry_warns() -> None:
    # margin 500 given explicitly (it may have shrunk through funding while in profit), mmr 5%:
    # MM at entry 1,000 > 500 → warned, LP = (500 − 20,000)/(0.05 − 1) = 20,526.32 > entry
    with pytest.warns(BacktesterWarning, match=r"margin 500 \(leverage 40\) is at or below"):
        lp = bt.liquidation_price("binanceusdm", "long", 20000, 1, margin=500, mmr=0.05)
    assert lp == pytest.approx(19_500 / 0.95)


def test_position_beyond_the_last_tier_is_refused() -> None:
    # latest Binance BTC table ends at 1,800,000,000: 100,000 BTC at 20,000 = 2,000,000,000 is
    # beyond it (before: silently priced with tier 12); at most 1.8e9/20,000 = 90,000 BTC
    with pytest.raises(
        ConfigError,
        match=r"notional size × entry_price must be <= 1,800,000,000 .*was 2,000,000,000.00; "
        r"lower size to at most 90000",
    ):
        bt.liquidation_price("binanceusdm", "long", 20000, 100_000, leverage=1)
    # exactly at the cap is allowed: 1x long, margin = notional → never liquidated (0.0)
    assert bt.liquidation_price("binanceusdm", "long", 20000, 90_000, leverage=1) == 0.0
    # OKX tiers by size: the packaged table ends at 96 BTC
    with pytest.raises(ConfigError, match=r"size must be <= 96 .*was 200"):
        bt.liquidation_price("okx", "long", 20000, 200, leverage=10)
    # the engine refuses the same entries: no leverage is allowed past the last cap
    binance, okx = bt.exchange_rules("binanceusdm", BTC), bt.exchange_rules("okx", BTC)
    assert binance.max_leverage_for(1.8e9, 90_000) == 1.0
    assert binance.max_leverage_for(2e9, 100_000) == 0.0
    assert okx.max_leverage_for(96 * 20000.0, 96.0) == 20.0
    assert okx.max_leverage_for(200 * 20000.0, 200.0) == 0.0
    # an explicit mmr is a what-if that does not use the table: 40,000,000 on Bybit at 10x,
    # LP = 20,000 − (4,000,000 − 2,000,000)/2,000 = 19,000
    lp = bt.liquidation_price("bybit", "long", 20000, 2000, leverage=10, mmr=0.05)
    assert lp == pytest.approx(19_000.0)


def test_leverage_limit_at_a_tier_cap_is_the_lower_tiers() -> None:
    # 2024 table: 1 BTC at 50,000 is exactly tier 1's cap (0–50,000, 125x): 125x is allowed
    # (before: refused as tier 2, max 100x). Binance LP with MM valued at LP, tier 1 (0.4%):
    # margin 400; LP = (400 − 50,000)/(0.004 − 1) = 49,799.20
    lp = bt.liquidation_price("binanceusdm", "long", 50000, 1, leverage=125, at="2024-06-01")
    assert lp == pytest.approx(49_600 / 0.996)
    rules = bt.exchange_rules("binanceusdm", BTC, at="2024-06-01")
    assert rules.max_leverage_for(50_000.0, 1.0) == 125.0
    assert rules.max_leverage_for(50_000.01, 1.0) == 100.0
    with pytest.raises(ConfigError, match=r"leverage must be in \[1, 100\], was 125"):
        bt.liquidation_price("binanceusdm", "long", 50000.01, 1, leverage=125, at="2024-06-01")
    # Bybit legacy risk limit 2,000,000 at 100x: 100 BTC at 20,000 is allowed at 100x;
    # MM at entry 2,000,000·0.5% = 10,000 (= tier 2's 20,000 − 10,000), LP = 20,000 − 10,000/100
    assert bt.liquidation_price("bybit", "long", 20000, 100, leverage=100) == pytest.approx(19_900)


def test_bybit_legacy_table_is_confirmed_only_for_2021_2022() -> None:
    # reference §3.3: the legacy BTCUSDT risk limits are a 2021-2022 restatement [S]; a 2023 date
    # uses the table as the nearest earlier one, and says so (before: "which covers 2023-06-01")
    assert "which covers 2022-06-01" in bt.exchange_rules("bybit", BTC, at="2022-06-01").note
    note = bt.exchange_rules("bybit", BTC, at="2023-06-01").note
    assert "last confirmed 2022-12-31" in note and "nearest earlier table" in note


def test_unknown_symbol_suggests_the_same_symbol_in_another_case() -> None:
    # lower-case input: one suggestion, the list of known symbols printed once (before: the list
    # twice, as "known symbols: ..." and "valid names: ...", and no suggestion)
    with pytest.raises(ConfigError) as info:
        bt.exchange_rules("binanceusdm", "eth/usdt:usdt")
    message = str(info.value)
    # (the 719 symbols of the 2026-05-07 snapshot are counted, not listed)
    assert "719 symbols are known" in message and "did you mean 'ETH/USDT:USDT'?" in message
    assert "valid names" not in message
    with pytest.raises(ConfigError) as info:
        bt.exchange_rules("binanceusdm", "XYZ")
    assert str(info.value).count("BTC/USDT:USDT") == 1


def test_okx_size_exactly_at_a_tier_cap_keeps_the_lower_tier() -> None:
    # packaged OKX table by size: tier 1 is 0–3 BTC (0.4%), tier 2 3–6 BTC (0.5%). OKX's maxSz is
    # inclusive, so 3 BTC is tier 1: 20x at 30,000 → margin 4,500,
    # LP = (30,000 − 4,500/3)/(1 − (0.004 + 0.0005)) = 28,500/0.9955 = 28,628.83
    # (before: tier 2, 28,500/0.9945 = 28,657.62)
    quote = liquidation_quote("okx", "long", 30000, 3, leverage=20)
    assert quote.liquidation_price == pytest.approx(28_500 / 0.9955)
    assert (quote.tier, quote.mmr, quote.max_leverage) == (1, 0.004, 125.0)
    # a hair above the cap is tier 2: (30,000 − 4,500/3)/(1 − 0.0055) with margin 3.001·30,000/20
    lp = bt.liquidation_price("okx", "long", 30000, 3.001, leverage=20)
    assert lp == pytest.approx(28_500 / 0.9945)


def test_okx_whole_contract_tier_gaps_are_closed_on_load() -> None:
    # OKX lists tiers in whole contracts (0–500, 501–1000): at ctVal 0.01 BTC the floors are
    # 0 and 5.01 BTC, the caps 5 and 10. The next floor moves down to the cap (5.0) so that no
    # size falls between tiers: 5 BTC is tier 1, 5.005 BTC tier 2.
    frame = pd.DataFrame(
        {
            "tier": [1, 2],
            "floor": [0.0, 5.01],
            "cap": [5.0, 10.0],
            "max_leverage": [100.0, 50.0],
            "mmr": [0.005, 0.01],
            "maint_amount": [0.0, 0.0],
            "basis": ["size", "size"],
        }
    )
    when = pd.Timestamp("2026-10-01", tz="UTC")
    table = table_from_frame(frame, exchange="okx", symbol=BTC, effective_from=when)
    assert table.floors.tolist() == [0.0, 5.0]
    from backtester.rules import formulas as fx

    assert fx.tier_index_nb(5.0, table.floors) == 0
    assert fx.tier_index_nb(5.005, table.floors) == 1


@pytest.mark.parametrize("symbol", [BTC, ETH])
def test_packaged_2026_table_equals_the_bundled_tier_snapshot(symbol: str) -> None:
    # the packaged 2026-05-07 JSON is the dated table for the bundled tiers/2026-05-07.parquet
    # (the store copy of the same day is skipped): they must hold the same numbers
    from backtester.data.store import list_tier_snapshots

    snapshots = dict(list_tier_snapshots("binanceusdm", symbol))
    frame = snapshots[pd.Timestamp("2026-05-07", tz="UTC")]
    rules = bt.exchange_rules("binanceusdm", symbol, at="2026-05-07")
    assert rules.table_id == f"binanceusdm/{symbol.replace('/', '_').replace(':', '_')}/2026-05-07"
    for column, values in (
        ("floor", rules.floors),
        ("cap", rules.caps),
        ("max_leverage", rules.max_leverage),
        ("mmr", rules.mmr),
        ("maint_amount", rules.maint_amount),
    ):
        np.testing.assert_array_equal(frame[column].to_numpy(dtype=float), values)


# ---------------------------------------------------------------------------------------------
# review fixes: contradictory margin arguments, a wallet too small, absurd sizes


def test_leverage_and_margin_that_disagree_are_refused() -> None:
    # before: margin silently won (15,100.0); 20,000/10 = 2,000 ≠ 5,000
    with pytest.raises(
        ConfigError,
        match=r"^leverage 10 and margin 5,?000 disagree: .*20,000.* at leverage 10 is 2,000"
        r".*give one of them",
    ) as info:
        bt.liquidation_price("bybit", "long", 20000, 1, leverage=10, margin=5000)
    assert "\n" not in str(info.value)
    # a margin below the initial margin is refused the same way (it named only margin before)
    with pytest.raises(ConfigError, match=r"^leverage 50 and margin 100 disagree"):
        bt.liquidation_price("binanceusdm", "long", 20000, 1, leverage=50, margin=100)


def test_leverage_and_margin_that_agree_are_accepted() -> None:
    # 20,000/40 = 500 (and within a relative 1e-9)
    one = bt.liquidation_price("bybit", "long", 20000, 1, leverage=40, mmr=0.005)
    both = bt.liquidation_price("bybit", "long", 20000, 1, leverage=40, margin=500, mmr=0.005)
    near = bt.liquidation_price(
        "bybit", "long", 20000, 1, leverage=40, margin=500 * (1 + 5e-10), mmr=0.005
    )
    assert one == both == pytest.approx(near) == pytest.approx(19_600)


def test_cross_wallet_below_the_initial_margin_is_refused() -> None:
    # before: 19,979.92; 20,000 at 5x needs 4,000 of initial margin
    with pytest.raises(
        ConfigError,
        match=r"^wallet_balance 100 cannot open a 20,000 notional at leverage 5 \(4,000 initial "
        r"margin needed\); .*wallet_balance >= 4,000.*size <= 0.025.*leverage >= 200",
    ):
        bt.liquidation_price(
            "binanceusdm", "long", 20000, 1, leverage=5, margin_mode="cross", wallet_balance=100
        )
    # exactly the initial margin opens it; without leverage= the wallet is an account's balance
    # (maybe shrunk), so it is priced (and warned about if below maintenance) as before
    lp = bt.liquidation_price(
        "binanceusdm", "long", 20000, 1, leverage=5, margin_mode="cross", wallet_balance=4000
    )
    assert 0 < lp < 20000


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (dict(entry_price=1e300), r"^entry_price × size .* must be <= 1e\+15 .*was 1e\+300"),
        (dict(size=1e12, mmr=0.01), r"^entry_price × size .* must be <= 1e\+15 .*was 2e\+16"),
        (dict(entry_price=1e300, size=1e-295, mmr=0.01), r"^entry_price must be <= 1e\+15"),
        (
            dict(margin_mode="cross", wallet_balance=1e300, leverage=None),
            r"^wallet_balance must be <= 1e\+15 .*was 1e\+300",
        ),
        (dict(margin=1e300, leverage=None), r"^margin must be <= 1e\+15"),
        (
            dict(margin_mode="cross", wallet_balance=1e3, other_unrealized_pnl=-1e300),
            r"^other_unrealized_pnl must be in \[-1e\+15, 1e\+15\]",
        ),
    ],
)
def test_absurd_amounts_are_refused_in_one_line(kwargs: dict[str, object], pattern: str) -> None:
    # before: 300-digit prices (or a tier-cap message with a 300-digit notional)
    args: dict[str, object] = dict(
        exchange="binanceusdm", side="short", entry_price=20000.0, size=1.0, leverage=5
    )
    args.update(kwargs)
    with pytest.raises(ConfigError, match=pattern) as info:
        bt.liquidation_price(**args)  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_taker_fee_uses_the_run_config_range() -> None:
    # the same check as RunConfig.taker_fee: [0, 1) (liq-price allowed [0, 0.1] before)
    with pytest.raises(ConfigError, match=r"^taker_fee must be a fraction in \[0, 1\), was 1.0"):
        bt.liquidation_price("okx", "long", 30000, 1, leverage=20, taker_fee=1.0)
    with pytest.raises(ConfigError, match=r"^taker_fee must be a fraction in \[0, 1\), was -0.1"):
        bt.liquidation_price("okx", "long", 30000, 1, leverage=20, taker_fee=-0.1)
    assert bt.liquidation_price("okx", "long", 30000, 1, leverage=2, taker_fee=0.2) > 0
    # OKX divides by 1 − mmr − fee: a sum of 1 raised ZeroDivisionError, not a ConfigError
    with pytest.raises(
        ConfigError, match=r"^taker_fee \+ mmr must be < 1 for okx .*0.995 \+ 0.005"
    ):
        bt.liquidation_price("okx", "long", 20000, 1, margin=20000, mmr=0.005, taker_fee=0.995)


def test_date_before_the_earliest_table_keeps_the_api_fix() -> None:
    with pytest.raises(ConfigError, match=r"^at 2018-01-01 .*use rules_timeline\(\)"):
        bt.liquidation_price("binanceusdm", "long", 20000, 1, leverage=5, at="2018-01-01")
