"""Sweep report: hand-computed survival-by-leverage and sensitivity tables, files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtester.errors import ConfigError
from backtester.reports.sweep import (
    display_table,
    sensitivity_table,
    survival_by_leverage,
    sweep_report,
)


def tiny() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": ["X"] * 6,
            "leverage": [1, 1, 10, 10, 100, 100],
            "stop_loss": [np.nan, 0.05] * 3,
            "col": range(6),
            "total_return": [0.10, 0.05, -0.50, 0.20, 0.0, 0.0],
            "liquidated": [False, False, True, False, False, False],
            "n_trades": [1, 3, 1, 4, 0, 0],
        }
    )


def test_survival_by_leverage_is_the_never_liquidated_share() -> None:
    # leverage 1: 2 of 2 never liquidated -> 1.0; leverage 10: 1 of 2 -> 0.5;
    # leverage 100: both settings never entered (n_trades 0) -> NaN, 2 never entered
    curve = survival_by_leverage(tiny())
    assert list(curve["leverage"]) == [1, 10, 100]
    np.testing.assert_array_equal(curve["survival"], [1.0, 0.5, np.nan])
    assert list(curve["n_never_entered"]) == [0, 0, 2]
    assert list(curve["n_settings"]) == [2, 2, 2]


def test_survival_by_leverage_needs_leverage() -> None:
    with pytest.raises(ConfigError, match="needs 'leverage' in the grid"):
        survival_by_leverage(tiny().drop(columns="leverage"))


def test_sensitivity_table_quartiles() -> None:
    # stop none: returns [0.10, -0.50, 0.0] -> q25 -0.25, median 0.0, q75 0.05
    # stop 0.05: returns [0.05, 0.20, 0.0] -> q25 0.025, median 0.05, q75 0.125
    table = sensitivity_table(tiny(), "stop_loss", "total_return")
    none = table[table["stop_loss"].isna()].iloc[0]
    five = table[table["stop_loss"] == 0.05].iloc[0]
    assert len(table) == 2
    np.testing.assert_allclose([none.q25, none["median"], none.q75], [-0.25, 0.0, 0.05])
    np.testing.assert_allclose([five.q25, five["median"], five.q75], [0.025, 0.05, 0.125])


def test_display_table_units() -> None:
    shown = display_table(tiny().head(2), ["symbol", "leverage", "stop_loss", "col"])
    assert list(shown.columns[:4]) == ["Symbol", "Leverage [x]", "Stop-loss [%]", "Return [%]"]
    assert list(shown["Stop-loss [%]"]) == ["none", "5"]
    assert list(shown["Return [%]"]) == ["10", "5"]


def test_sweep_report_files(tmp_path: Path) -> None:
    meta = {"mode": "sweep", "grid_names": ["leverage", "stop_loss"], "n_symbols": 1, "n_cols": 6}
    index = sweep_report(tiny(), metadata=meta, out=tmp_path / "rep", top=2)
    page = index.read_text()
    assert "Top 2 settings" in page and "Bottom 2 settings" in page
    assert (tmp_path / "rep" / "figures" / "sensitivity.png").is_file()
    assert (tmp_path / "rep" / "tables" / "survival_by_leverage.csv").is_file()
    with pytest.raises(ConfigError, match="did you mean 'total_return'"):
        sweep_report(tiny(), metadata=meta, out=tmp_path / "x", metric="total_retrun")


def test_long_grids_render_without_warnings(tmp_path: Path) -> None:
    # 40 leverages x 30 stops: legends and tick labels are thinned (pytest turns warnings into
    # errors, so a collapsed layout would fail here)
    lev, stop = np.meshgrid(np.arange(1, 41), np.linspace(0.01, 0.3, 30), indexing="ij")
    table = pd.DataFrame(
        {
            "symbol": "X",
            "leverage": lev.ravel(),
            "stop_loss": stop.ravel(),
            "col": np.arange(lev.size),
            "total_return": -lev.ravel() * stop.ravel(),
            "liquidated": lev.ravel() * stop.ravel() > 2,
            "n_trades": 1,
        }
    )
    meta = {
        "mode": "sweep",
        "grid_names": ["leverage", "stop_loss"],
        "n_symbols": 1,
        "n_cols": 1200,
    }
    index = sweep_report(table, metadata=meta, out=tmp_path / "rep")
    assert index.is_file()


def test_sensitivity_table_says_none_for_no_stop(tmp_path: Path) -> None:
    # Arrange: stop_loss swept over [none, 0.05]; the stored and shown value used to be "nan"
    meta = {"mode": "sweep", "grid_names": ["leverage", "stop_loss"], "n_symbols": 1, "n_cols": 6}
    # Act
    sweep_report(tiny(), metadata=meta, out=tmp_path / "rep", top=2)
    stored = pd.read_csv(tmp_path / "rep" / "tables" / "sensitivity.csv", keep_default_na=False)
    page = (tmp_path / "rep" / "index.html").read_text()
    # Assert: the no-stop row reads "none"; the shown quartiles are in percent, as in the
    # other tables (median return over the no-stop settings 0.0 -> "0", see the test above)
    stops = stored[stored["parameter"] == "stop_loss"]
    assert sorted(stops["value"]) == ["0.05", "none"]
    assert "nan" not in set(stored["value"])
    assert "median Return [%]" in page
