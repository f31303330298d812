"""Report tables as a person reads them: labelled headers, whole numbers, no NaT, units stated."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from backtester.reports.plots import _spaced_labels
from backtester.reports.tables import report_display


def test_report_display_labels_and_formats_every_kind_of_cell() -> None:
    # Arrange: one row with a gap and one without, as the "Will you owe money?" table has them
    raw = pd.DataFrame(
        {
            "side": ["long", "short"],
            "leverage": [5.0, 125.0],
            "stop_loss": [np.nan, 0.05],
            "survival": [0.54237, 1.0],
            "difference": [-0.0123, 0.2],
            "median_time_to_liquidation": [math.inf, 7.04],
            "worst_gap_time": [pd.NaT, pd.Timestamp("2020-03-13", tz="UTC")],
            "funding": [True, False],
            "total_insurance_draw_pct": [0.0, 2.82104],
            "n_liquidated": [0, 2281],
        }
    )
    # Act
    shown = report_display(raw, horizon_days=30)
    # Assert: no snake_case header; every value as written by hand below
    assert not [c for c in shown.columns if "_" in c]
    assert shown.to_dict("list") == {
        "Side": ["long", "short"],
        "Leverage [x]": ["5", "125"],
        "Stop-loss": ["none", "5%"],
        "Survival [%]": ["54.2%", "100.0%"],
        "Difference [pp]": ["-1.2 pp", "+20.0 pp"],
        "Median to liquidation [days]": ["> 30", "7.0"],
        "Worst gap at": ["—", "2020-03-13 00:00 UTC"],
        "Funding": ["on", "off"],
        "Insurance draws, total [% of cash]": ["0.00", "2.82"],
        "Liquidated": ["0", "2281"],
    }


def test_ladder_ticks_are_all_labelled_close_ones_on_a_second_line() -> None:
    # 20 -> 25 and 100 -> 125 are closer than 1.3x on a log axis: labelled, one line lower
    assert _spaced_labels([1, 2, 3, 5, 10, 20, 25, 50, 75, 100, 125]) == [
        "1", "2", "3", "5", "10", "20", "\n25", "50", "75", "100", "\n125",
    ]  # fmt: skip


def test_isolated_vs_cross_states_the_size_of_the_loss() -> None:
    from backtester.survival.report import _loss_sentence

    # three common leverages: the middle one (10x) is quoted, each mode's mean and 95th percentile
    size_q = pd.DataFrame(
        {
            "margin_mode": ["isolated", "cross"] * 3,
            "leverage": [5.0, 5.0, 10.0, 10.0, 20.0, 20.0],
            "loss_mean": [0.05, 0.04, 0.12, 0.14, 0.2, 0.3],
            "loss_q95": [0.1, 0.1, 0.25, 0.996, 0.25, 1.0],
        }
    )
    assert _loss_sentence(size_q) == (
        "The size of the loss: at 10x isolated holds lost 12.0% of the wallet on average "
        "(95th percentile 25.0%), cross holds 14.0% (99.6%)."
    )
    assert _loss_sentence(size_q[size_q["margin_mode"] == "cross"]) == ""


def test_scenarios_after_the_first_say_only_what_differs() -> None:
    from backtester.survival.report_paths import scenario_notes

    frame = pd.DataFrame({"x": [1]})
    frame.attrs = {
        "scenarios": {"history": "the historical data", "bootstrap": "40 paths ...",
                      "vol_x1.5": "40 paths ... vol_scale 1.5"},
        "recipes": {"bootstrap": {"vol_scale": 1.0, "n_paths": 40},
                    "vol_x1.5": {"vol_scale": 1.5, "n_paths": 40}},
    }  # fmt: skip
    assert scenario_notes(frame) == {
        "history": "the historical data",
        "bootstrap": "40 paths ...",
        "vol_x1.5": "as bootstrap, with vol_scale 1.5",
    }
