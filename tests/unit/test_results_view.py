"""SweepResult in a notebook: _repr_html_ tables (result, Market) and the plot(column) figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection

import backtester as bt
from backtester.errors import ConfigError
from tests.unit.reference import FixedSignals, make_market

# 1h bars; long at open 1 (100) with all 10,000 as isolated margin at 10x: 1,000 units,
# notional 100,000, tier 2 of the binanceusdm BTC table (mmr 0.005, maintenance amount 50):
#   liquidation = (10,000 + 50 - 100,000) / (1,000 x 0.005 - 1,000) = 89,950 / 995 = 90.40201
#   (the kernel agrees: its min distance at bar 3's low 94 is (94 - 90.40201) / 94 = 0.038276)
# stop_loss 0.05 -> stop price 100 x 0.95 = 95; bar 3's low 94 fires it (exit reason stop_loss)
OPEN = [100.0, 100.0, 101.0, 99.0, 96.0]
HIGH = [100.0, 102.0, 101.0, 99.0, 97.0]
LOW = [100.0, 99.0, 98.0, 94.0, 95.0]
CLOSE = [100.0, 101.0, 99.0, 96.0, 96.0]
MARKET = make_market(OPEN, HIGH, LOW, CLOSE)
RESULT = bt.run_sweep(
    MARKET,
    FixedSignals(5, long_entries=[0]),
    bt.ParamGrid.product(leverage=[10], stop_loss=[0.05]),
    config=bt.RunConfig(taker_fee=0.0, funding=False),
)


def _labels(ax: matplotlib.axes.Axes) -> list[str]:
    return ax.get_legend_handles_labels()[1]


def test_plot_draws_price_trades_levels_equity_and_drawdown() -> None:
    fig = RESULT.plot(0)
    price, equity, drawdown = fig.axes
    # price panel: the close line, one entry and one stop exit marker, both levels
    assert price.lines[0].get_ydata().tolist() == CLOSE
    assert _labels(price) == [
        "close", "entry: long", "exit: stop-loss", "liquidation price (at entry)",
        "stop-loss price",
    ]  # fmt: skip
    scatters = [c for c in price.collections if isinstance(c, PathCollection)]
    assert [c.get_offsets().shape[0] for c in scatters] == [1, 1]
    levels = [c for c in price.collections if isinstance(c, LineCollection)]
    (liq,) = levels[0].get_segments()
    (stop,) = levels[1].get_segments()
    assert liq[0, 1] == pytest.approx(89_950 / 995, rel=1e-12)
    assert RESULT.stats()["min_liquidation_distance"].iloc[0] == pytest.approx(0.038276, rel=1e-4)
    assert stop[0, 1] == pytest.approx(95.0, rel=1e-12)
    # equity panel: one line of close equity; drawdown panel: a filled area, in percent
    assert equity.lines[0].get_ydata()[0] == 10_000.0
    assert len(equity.lines) == 1
    assert drawdown.get_ylabel() == "Drawdown [%]"
    assert len(drawdown.collections) == 1
    assert "leverage=10" in price.get_title() and "stop_loss=0.05" in price.get_title()


def test_plot_takes_one_valid_column_number() -> None:
    with pytest.raises(ConfigError, match=r"columns must be in \[0, 0\], was \[3\]"):
        RESULT.plot(3)
    with pytest.raises(ConfigError, match="column must be one column number"):
        RESULT.plot([0, 0])  # type: ignore[arg-type]


def test_result_renders_as_a_table_of_its_stats_head() -> None:
    text = RESULT._repr_html_()
    assert "BTC/USDT:USDT on binanceusdm, 1h bars" in text and "× 1 columns" in text
    for column in ("final_equity", "max_drawdown", "calmar", "n_trades", "exposure"):
        assert f"<th>{column}</th>" in text
    assert "<table" in text and "binanceusdm/BTC_USDT_USDT/" in text


def test_market_renders_as_a_one_row_table() -> None:
    text = MARKET._repr_html_()
    for header in ("symbol", "exchange", "timeframe", "range (UTC)", "bars", "mark",
                   "funding events", "tier table"):  # fmt: skip
        assert f"<th>{header}</th>" in text
    assert "<td>BTC/USDT:USDT</td>" in text and "<td>5</td>" in text
    assert "<td>last price (mark='last')</td>" in text


def test_stats_of_the_plot_column_are_unchanged_by_plotting() -> None:
    before = RESULT.stats()
    RESULT.plot(0)
    np.testing.assert_array_equal(before.to_numpy(dtype=str), RESULT.stats().to_numpy(dtype=str))
