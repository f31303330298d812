"""The leverage-decision comparisons on hand-made outcomes: false liquidations, gaps, stops, last-price market."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.engine.enums import ExitReason
from backtester.errors import ConfigError
from backtester.survival.comparisons import (
    MarkVsLast,
    false_liquidations,
    insurance_gaps,
    last_price_market,
    stop_loss_effect,
)
from backtester.survival.study import SurvivalStudy
from tests.unit.test_survival_helpers import gbm_market

LIQ, STOP, HORIZON = ExitReason.LIQUIDATION, ExitReason.STOP_LOSS, ExitReason.HORIZON


def _study(market: bt.Market, settings: pd.DataFrame, exit_idx, reason, **extra) -> SurvivalStudy:
    exit_idx = np.asarray(exit_idx)
    zeros = np.zeros(exit_idx.shape)
    arrays = {
        "final_equity": zeros + 100.0,
        "min_equity": zeros,
        "insurance_draw": zeros,
        "funding_paid": zeros,
        "fees_paid": zeros,
        **extra,
    }
    return SurvivalStudy(
        market=market,
        settings=settings,
        entry_idx=np.array([0, 24, 48]),
        horizon_bars=24,
        entry_every_bars=24,
        exit_idx=exit_idx,
        reason=np.asarray(reason),
        initial_cash=100.0,
        n_boot=20,
        **arrays,
    )


@pytest.fixture(scope="module")
def market() -> bt.Market:
    return gbm_market(n_hours=72, sigma_per_minute=0.001, seed=3)


def test_false_liquidations_hand_example(market: bt.Market) -> None:
    # Arrange: one setting, three entries (bars 0, 24, 48), horizon 24 bars
    # entry 0: last liquidates at bar 5, mark never          -> false liquidation (avoided)
    # entry 1: last liquidates at bar 30, mark at bar 40     -> liquidated later on mark
    # entry 2: both liquidate at bar 50                      -> not false
    settings = pd.DataFrame({"side": ["long"], "leverage": [50.0]})
    mark = _study(market, settings, [[23, 40, 50]], [[HORIZON, LIQ, LIQ]])
    last = _study(market, settings, [[5, 30, 50]], [[LIQ, LIQ, LIQ]])
    # Act
    rows = false_liquidations(mark, last)
    # Assert
    assert list(rows["mark_price_outcome"]) == ["survived to horizon", "liquidated later"]
    assert rows["last_price_liquidation_time"].iloc[0] == market.index[5]
    assert rows["entry_time"].iloc[1] == market.index[24]


def test_insurance_gaps_counts_and_sizes(market: bt.Market) -> None:
    # Arrange: draws of 0, 12.5 and 0 quote on 100 cash -> 1 gap, 12.5 % of the cash
    settings = pd.DataFrame({"side": ["short"], "leverage": [125.0]})
    study = _study(
        market,
        settings,
        [[3, 30, 71]],
        [[LIQ, LIQ, HORIZON]],
        insurance_draw=np.array([[0.0, 12.5, 0.0]]),
    )
    # Act
    gaps = insurance_gaps(study).iloc[0]
    # Assert
    assert gaps["n_liquidated"] == 2
    assert gaps["n_gaps_past_bankruptcy"] == 1
    assert gaps["max_insurance_draw_pct"] == pytest.approx(12.5)
    assert gaps["worst_gap_time"] == market.index[30]


def test_stop_loss_effect_pairs_each_stop_with_no_stop(market: bt.Market) -> None:
    # Arrange: no stop -> 2 of 3 liquidated (KM 1/3); 5% stop -> 3 stopped, none liquidated
    settings = pd.DataFrame(
        {"side": ["long", "long"], "leverage": [20.0, 20.0], "stop_loss": [None, 0.05]}
    )
    study = _study(
        market, settings, [[3, 30, 71], [2, 26, 49]], [[LIQ, LIQ, HORIZON], [STOP, STOP, STOP]]
    )
    # Act
    effect = stop_loss_effect(study)
    # Assert: one row, survival 1.0 with the stop vs 1/3 without
    assert len(effect) == 1
    row = effect.iloc[0]
    assert row["stop_loss"] == 0.05
    assert row["survival_with_stop"] == 1.0
    assert row["survival_without_stop"] == pytest.approx(1 / 3)
    assert row["n_stopped"] == 3 and row["n_liquidated_without_stop"] == 2


def test_last_price_market_copies_last_bars_into_mark(btc_1h: bt.Market) -> None:
    # Arrange: real bars whose mark differs from last (2020-03-13 crash)
    market = btc_1h.slice("2020-03-12", "2020-03-14")
    assert market.mark_source == "mark"
    assert not np.array_equal(market.mark_low, market.low)
    # Act
    last = last_price_market(market)
    # Assert
    assert last.mark_source == "last"
    np.testing.assert_array_equal(last.mark_low, market.low)
    np.testing.assert_array_equal(last.mark_high, market.high)
    np.testing.assert_array_equal(last.close, market.close)


def test_crash_day_sentence_follows_the_numbers(market: bt.Market) -> None:
    # Arrange: last-price liquidations at bars 5 (2020-01-09), 30 (2020-01-10) and 50
    # (2020-01-11); the report used to say "the mark price fell almost as far as the last price"
    # whatever the counts were
    from backtester.survival.comparisons import last_price_liquidations_by_day
    from backtester.survival.report import _crash_conclusion

    settings = pd.DataFrame({"side": ["long"], "leverage": [50.0]})
    last = _study(market, settings, [[5, 30, 50]], [[LIQ, LIQ, LIQ]])
    days = ("2020-01-09", "2020-01-10", "2020-01-12")
    one_false = pd.DataFrame({"date": ["2020-01-09"], "false_liquidations": [1]})
    none_false = pd.DataFrame({"date": [], "false_liquidations": []})
    # Act
    crash = last_price_liquidations_by_day(last, days)

    def mvl(by_day: pd.DataFrame) -> MarkVsLast:
        empty = pd.DataFrame()
        return MarkVsLast(
            table=empty,
            by_leverage=empty,
            by_day=by_day,
            n_false=len(by_day),
            n_liquidated_later=0,
            crash_days=crash,
        )

    # Assert: 1 + 1 + 0 liquidations on those days; 1 of 2 avoided = 50 %, 0 of 2 = 0 %
    assert crash == {"2020-01-09": 1, "2020-01-10": 1, "2020-01-12": 0}
    assert "spared 1 of 2 (50%)" in _crash_conclusion(mvl(one_false))
    assert "almost as far" in _crash_conclusion(mvl(none_false))
    assert "0 of 2 (0%)" in _crash_conclusion(mvl(none_false))
    assert mvl(one_false).day_text("2020-01-09") == "1 false liquidation"
    assert mvl(none_false).day_text("2020-01-09") == "none"


def test_reuse_takes_held_settings_and_changes_no_number(monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: a study of 2x and 10x longs; a second asks for 2x, 5x and 10x on the same market
    import backtester.engine.run as engine_run

    m = gbm_market(n_hours=24 * 40, sigma_per_minute=0.0008, seed=5)
    kw = {"side": "long", "horizon": "5D", "entry_every": "1D", "n_boot": 50}
    first = bt.survival_study(m, leverage=(2, 10), **kw)
    ran: list[int] = []
    real = engine_run.run_entries

    def counting(market, settings, **kwargs):  # type: ignore[no-untyped-def]
        ran.append(settings.n_cols)
        return real(market, settings, **kwargs)

    # Act
    plain = bt.survival_study(m, leverage=(2, 5, 10), **kw)
    monkeypatch.setattr(engine_run, "run_entries", counting)
    shared = bt.survival_study(m, leverage=(2, 5, 10), reuse=(first,), **kw)
    assert ran == [1]  # only 5x ran
    elsewhere = bt.survival_study(m, leverage=(2, 5, 10), reuse=(first,), **{**kw, "horizon": "4D"})
    # Assert: the same outcomes and table, bit for bit; other horizons are never taken
    for name in ("exit_idx", "reason", "final_equity", "min_equity", "fees_paid", "rejected"):
        np.testing.assert_array_equal(getattr(shared, name), getattr(plain, name))
    pd.testing.assert_frame_equal(shared.table(), plain.table())
    np.testing.assert_array_equal(shared.ambiguous_bars, plain.ambiguous_bars)
    assert elsewhere.horizon_bars == 96
    with pytest.raises(ConfigError, match="reuse must be a sequence of SurvivalStudy"):
        bt.survival_study(m, leverage=2, reuse=first, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(
        elsewhere.final_equity[[0, 2]],
        bt.survival_study(m, leverage=(2, 10), **{**kw, "horizon": "4D"}).final_equity,
    )


def test_equity_fan_has_both_sides_and_agrees_with_the_study() -> None:
    # Arrange: a both-sided study over 30 days of hourly GBM bars, 4 leverages, one stop
    from backtester.survival.comparisons import equity_fan

    m = gbm_market(n_hours=24 * 30, sigma_per_minute=0.002, seed=5)
    study = bt.survival_study(
        m, side="both", leverage=(2, 20, 50, 100), stop_loss=(None, 0.05), horizon="2D",
        entry_every="6h", n_boot=10,
    )  # fmt: skip
    # Act
    fan = equity_fan(study)
    # Assert: one row per side, the same leverages in each, none with a stop
    assert list(fan) == ["long", "short"]
    assert [list(p) for p in fan.values()] == [["2x", "20x", "50x", "100x"]] * 2
    s = study.settings
    for side, panels in fan.items():
        for lev, (days, equity, liquidated) in panels.items():
            i = int(np.flatnonzero(
                (s["side"] == side) & (s["leverage"] == float(lev[:-1])) & s["stop_loss"].isna()
            )[0])  # fmt: skip
            # the last checkpoint is the horizon: the study's own final equity and liquidations
            assert days[0] == 0.0 and days[-1] == study.horizon_days
            np.testing.assert_allclose(equity[-1], study.final_equity[i] / study.initial_cash)
            assert liquidated[0] == 0.0 and np.all(np.diff(liquidated) >= 0)
            assert liquidated[-1] == study.events[i].sum() / study.n_entries
    assert fan["long"]["100x"][2][-1] > fan["long"]["2x"][2][-1]  # the test can fail
