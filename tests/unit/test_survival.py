"""survival_study: entry times, validation, table columns and meaning, real-data acceptance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.errors import ConfigError
from backtester.survival.run import entry_indices, parse_period_bars
from backtester.survival.stats import km_estimate
from tests.unit.test_survival_helpers import fake_study, gbm_market

HOUR_NS = 3_600_000_000_000
ISSUE_COLUMNS = [
    "n_entries",
    "n_liquidated",
    "n_stopped",
    "n_censored",
    "survival",
    "ci_low",
    "ci_high",
    "median_time_to_liquidation",
]


@pytest.fixture(scope="module")
def btc_2021(btc_1h: bt.Market) -> bt.Market:
    return btc_1h.slice("2021-01-01", "2022-01-01")


def test_parse_period_bars() -> None:
    # Arrange / Act / Assert: 30 days of 1h bars = 720 bars; 90 minutes is not whole hours
    assert parse_period_bars("30D", "horizon", HOUR_NS) == 720
    assert parse_period_bars(pd.Timedelta("12h"), "horizon", HOUR_NS) == 12
    with pytest.raises(
        ConfigError, match="horizon must be a positive whole number of 1h bars, was '90min'"
    ):
        parse_period_bars("90min", "horizon", HOUR_NS)
    with pytest.raises(ConfigError, match="entry_every must be a duration such as '30D' or '720h'"):
        parse_period_bars("soon", "entry_every", HOUR_NS)
    # a bare number was read as nanoseconds by pandas
    with pytest.raises(ConfigError, match=r"horizon must be a duration .*\(a string\), was 30"):
        parse_period_bars(30, "horizon", HOUR_NS)  # type: ignore[arg-type]


def test_entry_indices_start_at_first_aligned_bar() -> None:
    # Arrange: hourly bars from 2020-01-09 00:00 -> daily entries at bars 0, 24, 48
    market = gbm_market(n_hours=60, sigma_per_minute=0.001, seed=0)
    # Act / Assert
    np.testing.assert_array_equal(entry_indices(market, 24), [0, 24, 48])
    # a market starting at 22:00 has its first midnight at bar 2
    shifted = market.slice(market.index[22], None)
    np.testing.assert_array_equal(entry_indices(shifted, 24), [2, 26])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"side": "lng"},
            "side must be one of 'long', 'short', 'both', was 'lng'; did you mean 'long'",
        ),
        ({"leverage": (0.5,)}, "leverage must be in \\[1, 1000\\], was 0.5"),
        ({"stop_loss": (5,)}, "stop_loss must be a fraction in \\(0, 1\\), was 5"),
        ({"position_size": (2.0,)}, "position_size must be a fraction in \\(0, 1\\], was 2.0"),
        ({"stop_loss": (float("nan"),)}, "stop_loss must be .* or None \\(no stop\\), was nan"),
        ({"leverage": ("10",)}, "leverage must be a number .*was '10' \\(a string\\)"),
        ({"seed": "x"}, "seed must be an int >= 0, was 'x'"),
        ({"n_boot": 0}, "n_boot must be an int >= 1, was 0"),
        ({"horizon": "3D"}, "horizon '3D' is longer than the data \\(2 days"),
        ({"entry_every": "7D"}, "entry_every '7D' is longer than the data"),
        ({"margin_mode": "crossed"}, "did you mean 'cross'"),
        ({"taker_fe": 0.0}, "unknown engine setting 'taker_fe'; did you mean 'taker_fee'"),
        ({"horizon": "1min"}, "horizon must be a positive whole number of 1h bars"),
        ({"leverage": ()}, "leverage must list at least one value, was empty"),
        ({"leverage": (2, 2)}, "leverage lists 2.0 twice, was \\(2, 2\\); list each once"),
        ({"strategy": object()}, "strategy must be a module or object with PARAMS"),
    ],
)
def test_bad_input_raises_one_line_config_error(kwargs: dict, message: str) -> None:
    market = gbm_market(n_hours=48, sigma_per_minute=0.001, seed=0)
    with pytest.raises(ConfigError, match=message) as info:
        bt.survival_study(market, **{"horizon": "12h", **kwargs})
    assert "\n" not in str(info.value)


def test_market_must_be_a_market() -> None:
    with pytest.raises(
        ConfigError, match="market must be a backtester Market or MarketSet, was DataFrame"
    ):
        bt.survival_study(pd.DataFrame())  # type: ignore[arg-type]


def test_table_has_issue_columns_and_states_its_meaning(btc_2021: bt.Market) -> None:
    # Arrange / Act
    study = bt.survival_study(btc_2021, leverage=(2, 20), stop_loss=(None, 0.05), n_boot=100)
    table = study.table().reset_index()
    # Assert: settings first, then the issue's columns
    assert list(table.columns[:5]) == [
        "side",
        "leverage",
        "stop_loss",
        "position_size",
        "margin_mode",
    ]
    assert list(table.columns[5:13]) == ISSUE_COLUMNS
    assert len(table) == 4
    assert "not liquidated" in table.attrs["survival"].lower()
    assert "moving-block bootstrap" in table.attrs["ci_method"]
    # every entry ends liquidated or censored; stops are a subset of the censored
    assert (table["n_liquidated"] + table["n_censored"] == table["n_entries"]).all()
    assert (table["n_stopped"] <= table["n_censored"]).all()
    assert (table["ci_low"] <= table["survival"]).all() and (
        table["survival"] <= table["ci_high"]
    ).all()
    # the honest interval is at least as wide as the naive Greenwood one
    honest = table["ci_high"] - table["ci_low"]
    naive = table["ci_high_greenwood"] - table["ci_low_greenwood"]
    assert (honest >= naive - 1e-12).all()
    # 365 daily entries in 2021
    assert study.n_entries == 365
    assert study.durations.max() <= 720


def test_stop_exits_are_censored_not_liquidations(btc_2021: bt.Market) -> None:
    # Arrange: a 2% stop at 5x is hit long before the ~20% liquidation distance
    study = bt.survival_study(btc_2021, leverage=5, stop_loss=0.02, n_boot=10)
    row = study.table().reset_index().iloc[0]
    # Assert: most holds stop out; none of those count as liquidations
    assert row["n_stopped"] > 300
    assert row["n_liquidated"] == 0
    assert row["survival"] == 1.0


def test_a_stopped_hold_survives_to_the_horizon() -> None:
    """A stop exit is not censoring at the stop: the position can no longer be liquidated."""
    from backtester.engine.enums import ExitReason
    from backtester.survival.study import SurvivalStudy

    liq, stop = ExitReason.LIQUIDATION, ExitReason.STOP_LOSS
    # Arrange: 4 entries 24 bars apart, horizon 24, 100 bars of data; one setting.
    # entry 0 liquidated at bar 5, entry 1 stopped at bar 26 (2 bars in), entry 2 stopped at
    # bar 50, entry 3 liquidated at bar 80.  Hand-computed: 2 of 4 liquidated, nothing censored
    # before the horizon, so KM survival = 1 - 2/4 = 0.5.  (Censoring the stops at their bar
    # would give (1 - 1/4) * (1 - 1/1) = 0 at bar 9 of entry 3: the biased answer.)
    market = gbm_market(n_hours=100, sigma_per_minute=0.001, seed=0)
    entries = np.array([0, 24, 48, 72])
    settings = pd.DataFrame({"side": ["long"], "leverage": [10.0], "stop_loss": [0.02]})
    settings["position_size"], settings["margin_mode"] = 1.0, "isolated"
    zeros = np.zeros((1, 4))
    study = SurvivalStudy(
        market=market,
        settings=settings,
        entry_idx=entries,
        horizon_bars=24,
        entry_every_bars=24,
        exit_idx=np.array([[5, 26, 50, 80]]),
        reason=np.array([[liq, stop, stop, liq]]),
        final_equity=np.array([[0.0, 0.9, 0.9, 0.0]]),
        min_equity=zeros,
        insurance_draw=zeros,
        funding_paid=zeros,
        fees_paid=zeros,
        n_boot=10,
    )
    # Act
    row = study.table().reset_index().iloc[0]
    # Assert: stopped holds are followed to the horizon (24 bars), liquidations end at their bar
    np.testing.assert_array_equal(study.durations[0], [6, 24, 24, 9])
    assert (row["n_liquidated"], row["n_stopped"]) == (2, 2)
    assert row["survival"] == pytest.approx(0.5, abs=1e-12)


def test_km_is_plain_fraction_on_real_data_when_nothing_is_censored(btc_2021: bt.Market) -> None:
    # Arrange: engine outcomes; keep entries whose 30-day window ends inside the data
    study = bt.survival_study(btc_2021, leverage=(3, 10), n_boot=10)
    full = study.entry_idx + study.horizon_bars <= btc_2021.n_bars
    assert 0 < full.sum() < study.n_entries  # the last month's entries hit the end of data
    for s in range(study.n_settings):
        d, e = study.durations[s][full], study.events[s][full]
        # Act
        km = km_estimate(d, e, horizon=study.horizon_bars).survival
        # Assert: fully observed holds are censored only at the horizon; KM = surviving share
        assert (d[~e] == study.horizon_bars).all()
        assert km == pytest.approx(1.0 - e.mean(), abs=1e-12)


def test_logrank_and_compare(btc_2021: bt.Market) -> None:
    study = bt.survival_study(btc_2021, leverage=(2, 10, 50), n_boot=200)
    lr = study.logrank("leverage")
    assert list(lr[["leverage_a", "leverage_b"]].itertuples(index=False, name=None)) == [
        (2.0, 10.0),
        (10.0, 50.0),
    ]
    assert (lr["difference"] > 0).all()  # lower leverage survives more
    assert (lr["diff_ci_low"] <= lr["difference"]).all()
    assert (lr["logrank_p"] < 0.05).all()
    with pytest.raises(ConfigError, match="did you mean 'leverage'"):
        study.logrank("levrage")


def test_rejected_entries_are_left_out() -> None:
    # Arrange: a synthetic study where the first 10 entries of setting 0 were rejected
    market = gbm_market(n_hours=24 * 400, sigma_per_minute=0.001, seed=1)
    base = fake_study(market)
    rejected = np.zeros_like(base.rejected)
    rejected[0, :10] = True
    study = bt.SurvivalStudy(
        market=market,
        settings=base.settings,
        entry_idx=base.entry_idx,
        horizon_bars=base.horizon_bars,
        entry_every_bars=base.entry_every_bars,
        exit_idx=base.exit_idx,
        reason=base.reason,
        final_equity=base.final_equity,
        min_equity=base.min_equity,
        insurance_draw=base.insurance_draw,
        funding_paid=base.funding_paid,
        fees_paid=base.fees_paid,
        rejected=rejected,
        n_boot=20,
    )
    # Act
    table = study.table().reset_index()
    # Assert
    assert table["n_entries"].iloc[0] == base.n_entries - 10
    assert table["n_rejected"].iloc[0] == 10
    assert table["n_entries"].iloc[1] == base.n_entries


def test_acceptance_100x_long_far_below_2x_on_btc(btc_1h: bt.Market) -> None:
    """Issue 5 acceptance: a 100x long's 30-day survival on BTC 2019-2026 is far below a 2x long's."""
    study = bt.survival_study(btc_1h, leverage=(2, 100), n_boot=200)
    table = study.table().reset_index().set_index("leverage")
    assert table.loc[2.0, "survival"] > 0.9
    assert table.loc[100.0, "survival"] < 0.15
    # far below even with honest intervals: they do not overlap
    assert table.loc[100.0, "ci_high"] < table.loc[2.0, "ci_low"]
    assert math.isfinite(table.loc[100.0, "median_time_to_liquidation"])
    assert table.loc[100.0, "median_time_to_liquidation"] < 2  # days


def test_same_inputs_same_table(btc_2021: bt.Market) -> None:
    a = bt.survival_study(btc_2021, leverage=(5, 20), n_boot=100).table().reset_index()
    b = bt.survival_study(btc_2021, leverage=(5, 20), n_boot=100).table().reset_index()
    pd.testing.assert_frame_equal(a, b)


def test_strategy_mode_fresh_account_per_start(btc_2021: bt.Market, tmp_path: Path) -> None:
    """With a strategy, entries come from its signals and survival is the account's."""
    import backtester.strategies.hold as hold

    # Arrange / Act: the hold strategy (long and short) from weekly starts, 2x and 50x
    study = bt.survival_study(
        btc_2021, leverage=(2, 50), strategy=hold, entry_every="7D", n_boot=50
    )
    table = study.table().reset_index()
    # Assert: settings are the strategy's parameters crossed with the engine settings
    assert list(table.columns[:5]) == [
        "side",
        "leverage",
        "stop_loss",
        "position_size",
        "margin_mode",
    ]
    assert len(table) == 4
    # 7-day periods since the epoch start on Thursdays: 2021-01-07 ... 2021-12-30 = 52 starts
    assert study.n_entries == 52
    assert "fresh account" in table.attrs["survival"]
    by = table.set_index(["side", "leverage"])["survival"]
    assert by[("long", 2.0)] > 0.8 and by[("long", 50.0)] < 0.3
    assert by[("short", 2.0)] > 0.8 and by[("short", 50.0)] < 0.3
    # the account's first liquidation is the event; follow-up never exceeds the horizon
    assert study.durations.max() <= study.horizon_bars
    # the report is written without the hold comparisons
    index = study.report(str(tmp_path / "strategy"))
    assert "Equity fan" not in Path(index).read_text(encoding="utf-8")


def test_nonoverlapping_subsamples(btc_2021: bt.Market) -> None:
    # Arrange: daily entries, 30-day horizon -> 30 disjoint subsamples of entries 30 days apart
    study = bt.survival_study(btc_2021, leverage=(10,), n_boot=10)
    # Act
    no = study.nonoverlapping()
    row = no.iloc[0]
    # Assert: offset 0 = entries 0, 30, 60, ... (13 of the 365), KM on those alone
    take = np.arange(study.n_entries) % 30 == 0
    expected = km_estimate(study.durations[0][take], study.events[0][take], horizon=720)
    assert row["n_independent"] == 13
    assert row["survival_offset0"] == pytest.approx(expected.survival)
    assert row["survival_min"] <= row["survival_median"] <= row["survival_max"]
    assert "30 disjoint subsamples" in no.attrs["method"]
