"""The trade view of one column: price with entries and exits, levels, equity, drawdown (reports).

Frames and arrays in, a matplotlib Figure out (never ``plt.show()``); ``SweepResult.plot``
gathers the data and calls :func:`trade_figure`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtester._typing import F64Array

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["trade_figure"]

# exit markers by reason: colour and the legend's words
_EXITS = {
    "liquidation": ("#d62728", "exit: liquidation"),
    "stop_loss": ("#ff7f0e", "exit: stop-loss"),
    "trailing_stop": ("#ff7f0e", "exit: trailing stop"),
    "take_profit": ("#2ca02c", "exit: take-profit"),
}
_OTHER_EXIT = ("#444444", "exit: signal / other")


def _segments(
    ax: object, trades: pd.DataFrame, levels: F64Array, *, color: str, style: str, label: str
) -> None:
    # one horizontal segment per trade, from its entry to its exit, at its level
    first = True
    for (start, stop), level in zip(
        trades[["entry_time", "exit_time"]].itertuples(index=False), levels, strict=True
    ):
        if not np.isfinite(level) or level <= 0.0:
            continue
        ax.hlines(  # type: ignore[attr-defined]
            level, start, stop, colors=color, linestyles=style, linewidth=1.2,
            label=label if first else None,
        )  # fmt: skip
        first = False


def trade_figure(
    price: pd.Series,
    trades: pd.DataFrame,
    equity: pd.Series,
    *,
    liquidation: F64Array,
    stop: F64Array,
    title: str,
    quote: str = "quote",
) -> Figure:
    """Return the trade view of one column as a three-panel Figure.

    Parameters
    ----------
    price : pandas.Series
        Close (last) price per bar, indexed by bar time.
    trades : pandas.DataFrame
        The column's rows of ``SweepResult.trades()`` (entry/exit time and price, side,
        exit_reason).
    equity : pandas.Series
        Close equity per bar (quote).
    liquidation, stop : (n_trades,) float64
        Each trade's liquidation price and stop-loss price (NaN: none), drawn from its entry to
        its exit.
    title : str
        The figure's title (the column's settings).
    quote : str
        Quote currency, for the axis labels.

    Returns
    -------
    matplotlib.figure.Figure
        Panels: price (entries ▲ long / ▼ short, exits ✕ by reason, liquidation and stop levels),
        equity, drawdown [%] from the running peak.
    """
    from backtester.reports.plots import _figure, _style

    fig = _figure(10.0, 7.5)
    ax_p, ax_e, ax_d = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3.0, 1.5, 1.0]}
    )
    ax_p.plot(price.index, price.to_numpy(), color="#1f77b4", linewidth=0.9, label="close")
    longs = trades[trades["side"] == "long"]
    shorts = trades[trades["side"] == "short"]
    for rows, marker, label in ((longs, "^", "entry: long"), (shorts, "v", "entry: short")):
        if len(rows):
            ax_p.scatter(rows["entry_time"], rows["entry_price"], marker=marker, s=46,
                         color="#2ca02c" if marker == "^" else "#9467bd", zorder=3,
                         label=label)  # fmt: skip
    by_reason = trades["exit_reason"].map(lambda r: _EXITS.get(r, _OTHER_EXIT))
    for (color, label), rows in trades.groupby(by_reason, sort=False):
        ax_p.scatter(rows["exit_time"], rows["exit_price"], marker="X", s=40, color=color,
                     zorder=3, label=label)  # fmt: skip
    _segments(ax_p, trades, liquidation, color="#d62728", style="--",
              label="liquidation price (at entry)")  # fmt: skip
    _segments(ax_p, trades, stop, color="#ff7f0e", style=":", label="stop-loss price")
    ax_p.set_ylabel(f"Price [{quote}]")
    ax_p.set_title(title)
    ax_p.legend(fontsize=8, loc="best")
    ax_e.plot(equity.index, equity.to_numpy(), color="#333333", linewidth=1.0)
    ax_e.set_ylabel(f"Equity [{quote}]")
    values = equity.to_numpy(dtype=np.float64)
    peak = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0.0, values / peak - 1.0, 0.0) * 100.0
    ax_d.fill_between(equity.index, drawdown, 0.0, color="#d62728", alpha=0.35, linewidth=0)
    ax_d.set_ylabel("Drawdown [%]")
    ax_d.set_xlabel("Time (UTC)")
    for ax in (ax_p, ax_e, ax_d):
        _style(ax)
    return fig
