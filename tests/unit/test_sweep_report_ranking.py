"""Sweep report: risk-adjusted ranking, dust shown as 0, categorical bars, curves, definitions."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

from backtester.reports.sweep import (
    FALLBACK_METRIC,
    _sensitivity_figure,
    display_table,
    ranked,
    sweep_report,
)

META = {"mode": "sweep", "grid_names": ["side", "leverage"], "n_symbols": 1, "n_cols": 4}


def table() -> pd.DataFrame:
    # setting 0 has the highest return but lost 90 % on the way; setting 1 is steadier:
    #   return / drawdown: 1.5 / 0.9 = 1.667, 0.6 / 0.1 = 6, -0.2 / 0.4 = -0.5, 0.1 / 0 = n/a
    return pd.DataFrame(
        {
            "symbol": ["X"] * 4,
            "side": ["long", "short", "long", "short"],
            "leverage": [10.0, 1.0, 5.0, 2.0],
            "col": range(4),
            "total_return": [1.5, 0.6, -0.2, 0.1],
            "max_drawdown": [0.9, 0.1, 0.4, 0.0],
            "final_equity": [25_000.0, 16_000.0, -1.8e-12, 11_000.0],
            "liquidated": [False, False, True, False],
            "n_trades": [3, 2, 1, 1],
        }
    )


def test_default_ranking_is_risk_adjusted_not_raw_return() -> None:
    # without a calmar column: total_return / max_drawdown, no drawdown last
    metric, order = ranked(table())
    assert metric == FALLBACK_METRIC
    assert order["col"].tolist() == [1, 0, 2, 3]
    np.testing.assert_allclose(order[metric].iloc[:3], [6.0, 1.5 / 0.9, -0.5])
    assert math.isnan(order[metric].iloc[3])
    # with calmar (written by stats()), it ranks
    with_calmar = table().assign(calmar=[0.4, 2.0, -0.3, np.nan])
    metric, order = ranked(with_calmar)
    assert metric == "calmar" and order["col"].tolist() == [1, 0, 2, 3]
    assert ranked(table(), survival_mode=True, metric="total_return")[0] == "total_return"


def test_dust_equity_reads_zero() -> None:
    shown = display_table(table(), ["symbol", "side", "leverage"])
    assert shown["Final equity [quote]"].tolist() == ["25,000.00", "16,000.00", "0", "11,000.00"]


def test_categorical_parameters_are_bars_numeric_ones_lines() -> None:
    fig = _sensitivity_figure(table(), ["side", "leverage"], "total_return")
    side, leverage = fig.axes[:2]
    bars = [p for p in side.patches if isinstance(p, Rectangle)]
    # medians per side: long (1.5, -0.2) -> 0.65; short (0.6, 0.1) -> 0.35, in percent
    assert sorted(round(b.get_height(), 9) for b in bars) == [35.0, 65.0]
    assert [t.get_text() for t in side.get_xticklabels()] == ["long", "short"]
    assert side.get_lines() == [] or all(len(line.get_xdata()) <= 2 for line in side.get_lines())
    assert len(leverage.patches) == 0 and len(leverage.get_lines()) == 1


def test_report_states_its_ranking_and_survival_definition_and_draws_curves(
    tmp_path: Path,
) -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="1h", tz="UTC")
    curves = {
        "best": {"X, side=short": pd.Series([100.0, 110.0, 105.0, 120.0], index=index)},
        "worst": {"X, side=long": pd.Series([100.0, 50.0, 1e-13, 0.0], index=index)},
    }
    page = sweep_report(table(), metadata=META, out=tmp_path / "r", curves=curves).read_text()
    assert "Best and worst settings by Return / max DD" in page
    assert "total_return / max_drawdown" in page
    assert "Not a Kaplan–Meier survival curve" in page
    assert "Never liquidated, by leverage (share of settings)" in page
    assert (tmp_path / "r" / "figures" / "equity_best_worst.png").is_file()
    best = pd.read_csv(tmp_path / "r" / "tables" / "best.csv")
    assert best["col"].tolist()[:2] == [1, 0]


def test_report_without_curves_has_no_curve_section(tmp_path: Path) -> None:
    page = sweep_report(table(), metadata=META, out=tmp_path / "r").read_text()
    assert "equity_best_worst" not in page


@pytest.mark.parametrize("value", [-1.8e-12, 3.2e-20])
def test_dust_in_percent_columns_reads_zero(value: float) -> None:
    rows = table().assign(total_return=value)
    assert set(display_table(rows, [])["Return [%]"]) == {"0"}


def test_the_worst_settings_are_one_list_when_values_tie() -> None:
    from backtester.reports.sweep import ranked, worst_first

    # three settings tie at calmar -1: best-first reversed would put them 2, 1, 0; the worst
    # list keeps table order (0, 1, 2), as the report's bottom table and the CLI's curves do
    table = pd.DataFrame({"calmar": [-1.0, -1.0, -1.0, 2.0, float("nan")]})
    name, order = ranked(table)
    assert name == "calmar"
    assert list(worst_first(order.sort_index(), name).index) == [0, 1, 2, 3, 4]
