"""reports.plots: every function returns a titled Figure with labelled axes; NaN groups once."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from backtester.reports import plots


def _ladder() -> pd.DataFrame:
    rows = []
    for stop in (None, 0.05):
        for lev, s in ((2, 0.98), (10, 0.55), (100, 0.05)):
            rows.append(
                {
                    "side": "long",
                    "leverage": float(lev),
                    "stop_loss": stop,
                    "survival": s,
                    "ci_low": s - 0.05,
                    "ci_high": min(1.0, s + 0.05),
                }
            )
    return pd.DataFrame(rows)


def test_heatmap_annotates_every_cell_and_maps_missing_stop_to_none() -> None:
    # Arrange: 2 stops x 3 leverages, stop None stored as NaN in a float column
    table = _ladder().assign(stop_loss=lambda d: d["stop_loss"].astype(float))
    # Act
    fig = plots.plot_survival_heatmap(table, facet=None)
    # Assert: 6 annotated cells (98%, 55%, 5% twice), rows labelled none / 5%
    ax = fig.axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["98%", "55%", "5%"] * 2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["none", "5%"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "10", "100"]
    assert ax.get_xlabel() == "Leverage [x]"


def test_survival_lines_one_line_per_group_including_none() -> None:
    table = _ladder().assign(stop_loss=lambda d: d["stop_loss"].astype(float))
    fig = plots.plot_survival_lines(
        table, x="leverage", hue="stop_loss", title="t", xlabel="Leverage [x]"
    )
    ax = fig.axes[0]
    assert isinstance(fig, Figure)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["none", "5%"]
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [98, 55, 5])
    assert ax.get_ylabel() == "Survival at horizon [%]"


def test_km_curves_extend_to_horizon() -> None:
    curves = {"2x": (np.array([0.0, 3.0]), np.array([1.0, 0.9]))}
    fig = plots.plot_km_curves(curves, horizon=30)
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [0, 3, 30])
    np.testing.assert_allclose(line.get_ydata(), [100, 90, 90])
    assert fig.axes[0].get_xlabel() == "Days since entry"


def test_histograms_and_fan_and_bars() -> None:
    hist = plots.plot_liquidation_histograms(
        {"10x": np.array([1.0, 2.0, 2.5]), "20x": np.array([])}, horizon=30
    )
    assert sum(p.get_height() for p in hist.axes[0].patches) == 3
    days = np.array([0.0, 10.0, 20.0])
    eq = np.array([[1.0, 1.0], [0.5, 1.5], [0.0, 2.0]])
    fan = plots.plot_equity_fan({"long 10x": (days, eq)})
    np.testing.assert_allclose(fan.axes[0].lines[0].get_ydata(), [100, 100, 100])  # median
    bars = plots.plot_bars(
        pd.DataFrame({"leverage": [2.0, 10.0], "n": [1, 4], "side": ["long", "long"]}),
        x="leverage",
        y="n",
        hue="side",
        title="gaps",
        xlabel="Leverage [x]",
        ylabel="Holds",
    )
    assert [p.get_height() for p in bars.axes[0].patches] == [1, 4]
    assert math.isclose(bars.axes[0].patches[0].get_width(), 0.8)


def test_equity_fan_rows_share_one_honest_y_axis() -> None:
    # Arrange: two sides x two leverages; at 100x one entry of four multiplies the account
    days = np.array([0.0, 10.0, 20.0])
    calm = np.array([[1.0, 1.0, 1.0, 1.0], [0.9, 1.0, 1.0, 1.1], [0.8, 1.0, 1.0, 1.2]])
    wild = np.array([[1.0, 1.0, 1.0, 1.0], [0.05, 0.05, 0.05, 4.0], [0.05, 0.05, 0.05, 9.0]])
    liq = np.array([0.0, 0.75, 0.75])
    fans = {
        side: {"2x": (days, calm, np.zeros(3)), "100x": (days, wild, liq)}
        for side in ("long", "short")
    }
    # Act
    fig = plots.plot_equity_fan(fans)
    # Assert: a row per side, one symlog y axis for all panels, linear up to 100 %
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4
    assert {ax.get_yscale() for ax in axes} == {"symlog"}
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[3])
    assert axes[0].yaxis.get_transform().linthresh == plots.FAN_LINEAR_TO
    low, high = axes[0].get_ylim()
    assert low < 0 and high >= 0.95 * 900  # the 95th percentile at day 20 is on the axis
    assert [ax.get_title() for ax in axes] == [
        "long 2x\nnone liquidated",
        "long 100x\n75% liquidated",
        "short 2x\nnone liquidated",
        "short 100x\n75% liquidated",
    ]
    assert axes[0].get_ylabel() == "long" and axes[2].get_ylabel() == "short"
    np.testing.assert_allclose(axes[1].lines[0].get_ydata(), [100, 5, 5])  # the median
    with pytest.raises(ValueError, match="no panel"):
        plots.plot_equity_fan({})


def test_save_figure_writes_savefig_s_pixels(tmp_path: Path) -> None:
    # the own PNG writer: the same pixels as matplotlib's savefig at PIXEL_RATIO x the dpi
    from PIL import Image

    def draw() -> Figure:
        curve = (np.array([0.0, 3.0]), np.array([1.0, 0.9]))
        return plots.plot_km_curves({"2x": curve}, horizon=30)

    fig = draw()
    plots.save_figure(fig, str(tmp_path / "own.png"))
    draw().savefig(tmp_path / "mpl.png", dpi=fig.dpi * plots.PIXEL_RATIO, facecolor="white")
    own = np.asarray(Image.open(tmp_path / "own.png"))
    ref = np.asarray(Image.open(tmp_path / "mpl.png"))
    assert own.shape[:2] == (round(fig.get_figheight() * fig.dpi * 2), plots.display_width(fig) * 2)
    np.testing.assert_array_equal(own[..., :3], ref[..., :3])
    assert Image.open(tmp_path / "own.png").info["dpi"][0] == pytest.approx(fig.dpi * 2, abs=0.1)


def test_heatmap_cells_never_round_to_certainty() -> None:
    # Arrange: 99.9 % and 0.2 % would round to 100 % and 0 %
    table = pd.DataFrame(
        {"leverage": [2.0, 100.0], "stop_loss": [np.nan, np.nan], "survival": [0.999, 0.002]}
    )
    # Act
    fig = plots.plot_survival_heatmap(table, facet=None)
    # Assert
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["<1%", ">99%"]


def test_liquidation_histogram_counts_have_integer_ticks() -> None:
    # Arrange: 3 liquidations spread over 3 bins -> bar heights 1; the y axis used to show
    # 0.0, 0.2, ..., 1.0 (fractions of a liquidation)
    fig = plots.plot_liquidation_histograms({"2x": np.array([1.0, 10.0, 20.0])}, horizon=30)
    # Act
    fig.canvas.draw()
    ticks = fig.axes[0].get_yticks()
    # Assert
    assert len(ticks) >= 2
    assert all(float(t).is_integer() for t in ticks)
