"""Sweep report: best/worst settings, survival by leverage, parameter sensitivity (reports layer).

Frames in, files out: the caller (the CLI) opens the run and passes its result table and its
``run.json`` metadata; this module never imports ``backtester.sweep``. Figures are built with
the helpers of ``reports/plots.py`` and written by ``reports/html.write_report``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "FALLBACK_METRIC",
    "RISK_METRIC",
    "display_table",
    "ranked",
    "sensitivity_table",
    "survival_by_leverage",
    "sweep_report",
    "worst_first",
]

# metrics where higher is better; the rest of the known ones are "lower is better"
_HIGHER_IS_BETTER = {
    "final_equity": True,
    "total_return": True,
    "survival": True,
    "min_liquidation_distance": True,
    "max_drawdown": False,
    "fees_paid": False,
    "funding_paid": False,
    "n_liquidations": False,
    "calmar": True,
    "return_over_drawdown": True,
    "sharpe": True,
    "sortino": True,
    "win_rate": True,
    "profit_factor": True,
}
# the default ranking of a strategy sweep: risk-adjusted, not raw return (a 90 % drawdown on the
# way to +150 % must not top the table); runs written before stats() had calmar fall back to
# total_return / max_drawdown
RISK_METRIC = "calmar"
FALLBACK_METRIC = "return_over_drawdown"
# |value| below this is floating-point dust (an account emptied to -1.8e-12): shown as 0
_DUST = 1e-9
# raw column -> display label with units; fractions in this set are shown in percent
_PERCENT = {
    "loss_mean": "Wallet lost, mean [%]",
    "loss_q95": "Wallet lost, 95th pct [%]",
    "total_return": "Return [%]",
    "max_drawdown": "Max drawdown [%]",
    "time_in_market": "Time in market [%]",
    "min_liquidation_distance": "Min distance to liquidation [%]",
    "survival": "Survival [%]",
    "ci_low": "CI low [%]",
    "ci_high": "CI high [%]",
    "stop_loss": "Stop-loss [%]",
    "take_profit": "Take-profit [%]",
    "trailing_stop": "Trailing stop [%]",
    "position_size": "Position size [% of equity]",
    "win_rate": "Win rate [%]",
    "never_liquidated": "Never liquidated [% of settings]",
    "exposure": "Exposure [% of bars]",
}
_LABELS = {
    "symbol": "Symbol",
    "legs": "Legs (account)",
    "leverage": "Leverage [x]",
    "final_equity": "Final equity [quote]",
    "fees_paid": "Fees [quote]",
    "funding_paid": "Funding paid [quote]",
    "n_liquidations": "Liquidations",
    "n_trades": "Trades",
    "n_stops": "Stops",
    "liquidated": "Liquidated",
    "calmar": "Calmar",
    "return_over_drawdown": "Return / max DD",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "profit_factor": "Profit factor",
    "n_settings": "Settings",
    "n_never_entered": "Never entered",
}
_SHOWN = (
    "calmar",
    "return_over_drawdown",
    "total_return",
    "max_drawdown",
    "sharpe",
    "final_equity",
    "n_trades",
    "n_liquidations",
    "funding_paid",
    "min_liquidation_distance",
    "survival",
    "ci_low",
    "ci_high",
    "never_liquidated",
    "n_settings",
    "n_never_entered",
    "n_entries",
    "n_liquidated",
    "loss_mean",
    "loss_q95",
)


# figures stay readable: at most this many tick labels per axis and lines per legend
_MAX_TICKS = 12
_MAX_LINES = 6


def unit_column(table: pd.DataFrame) -> str:
    """Return what the rows run on: ``legs`` (an account sweep's leg sets) or ``symbol``."""
    return "legs" if "legs" in table and "symbol" not in table else "symbol"


def _label(name: str) -> str:
    return _PERCENT.get(name) or _LABELS.get(name) or name.replace("_", " ").capitalize()


def _fmt(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none" if name in ("stop_loss", "take_profit", "trailing_stop") else "n/a"
    if isinstance(value, float | np.floating) and abs(float(value)) < _DUST:
        value = 0.0  # dust: -1.8e-12 left in an emptied account reads 0, not -1.8e-12
    if name in _PERCENT and isinstance(value, int | float | np.number):
        return f"{float(value) * 100:.4g}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(value)


def display_table(rows: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Return ``rows`` formatted for reading: keys then the main statistics, units in labels."""
    names = [k for k in keys if k in rows and k != "col"]
    names += [s for s in _SHOWN if s in rows and s not in names]
    out = pd.DataFrame(index=rows.index)
    for name in names:
        out[_label(name)] = [_fmt(name, v) for v in rows[name]]
    return out.reset_index(drop=True)


def ranked(
    table: pd.DataFrame, *, metric: str | None = None, survival_mode: bool = False
) -> tuple[str, pd.DataFrame]:
    """Return (the ranking metric, ``table`` ordered best first, NaN last).

    The default ranks a strategy sweep by ``calmar`` (annualised return / max drawdown), or,
    for a run without that column, by ``return_over_drawdown = total_return / max_drawdown``
    (added to the table; NaN where the drawdown is 0); a survival sweep by ``survival``.
    """
    if metric is None:
        if survival_mode:
            metric = "survival"
        elif RISK_METRIC in table:
            metric = RISK_METRIC
        elif {"total_return", "max_drawdown"} <= set(table.columns):
            dd = table["max_drawdown"].astype(float)
            table = table.assign(
                **{FALLBACK_METRIC: (table["total_return"] / dd.where(dd > 0)).astype(float)}
            )
            metric = FALLBACK_METRIC
        else:
            metric = "total_return"
    if metric not in table:
        raise ConfigError(
            f"metric must be a column of the result table, was {metric!r}"
            f"{did_you_mean(metric, table.columns)}"
        )
    higher = _HIGHER_IS_BETTER.get(metric, True)
    order = table.sort_values(metric, ascending=not higher, kind="stable", na_position="last")
    return metric, order


def worst_first(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Return ``table`` ordered worst first by ``metric`` (ties in table order, NaN last).

    The one rule for "the worst settings": the report's bottom table and the CLI's re-run
    equity curves take them from here, so they name the same settings when values tie.
    """
    higher = _HIGHER_IS_BETTER.get(metric, True)
    return table.sort_values(metric, ascending=higher, kind="stable", na_position="last")


def survival_by_leverage(table: pd.DataFrame, *, by: str | None = None) -> pd.DataFrame:
    """Return the fraction of settings never liquidated, per symbol × leverage (× ``by``).

    In a strategy sweep each row is one setting, so "survival" is the share of the settings at
    that leverage (over every other parameter) whose account was never liquidated. In a
    survival sweep the rows already hold Kaplan–Meier survival; it is averaged the same way.
    """
    if "leverage" not in table:
        raise ConfigError(
            "survival by leverage needs 'leverage' in the grid; add [engine.grid] leverage = [...]"
        )
    groups = [unit_column(table), "leverage", *([by] if by else [])]
    if "survival" in table:
        frame = table.assign(_value=table["survival"].astype(float))
    elif "liquidated" in table:
        frame = table.assign(_value=1.0 - table["liquidated"].astype(float))
        if "n_trades" in table:  # a setting whose every entry was rejected never took risk
            frame.loc[frame["n_trades"] == 0, "_value"] = np.nan
    else:
        raise ConfigError("survival by leverage needs a 'liquidated' or 'survival' column")
    grouped = frame.groupby(groups, dropna=False, sort=True)["_value"]
    out = grouped.agg(survival="mean", n_settings="size").reset_index()
    out["n_never_entered"] = grouped.apply(lambda v: int(v.isna().sum())).to_numpy()
    return out


def sensitivity_table(table: pd.DataFrame, name: str, metric: str) -> pd.DataFrame:
    """Return the median and quartiles of ``metric`` per value of ``name``, per symbol."""
    groups = table.groupby([unit_column(table), name], dropna=False, sort=True)[metric]
    out = groups.quantile([0.25, 0.5, 0.75]).unstack()
    out.columns = ["q25", "median", "q75"]
    return out.reset_index()


def _as_x(name: str, values: pd.Series) -> tuple[np.ndarray, list[str]]:
    # every value is a category, in sorted order ("none" first); labels in the axis' units
    labels = []
    for v in values:
        if isinstance(v, float) and v.is_integer() and name not in _PERCENT:
            labels.append(str(int(v)))
        else:
            labels.append(_fmt(name, v))
    return np.arange(len(values), dtype=float), labels


def _sensitivity_figure(table: pd.DataFrame, names: Sequence[str], metric: str) -> Figure:
    from backtester.reports.plots import _colors, _figure, _style

    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = _figure(3.9 * ncols, 3.0 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    unit = unit_column(table)
    symbols = list(dict.fromkeys(table[unit]))
    colors = (
        _colors(len(symbols), "viridis")
        if len(symbols) > 2
        else [
            (0.12, 0.47, 0.71, 1.0),
            (0.84, 0.15, 0.16, 1.0),
        ][: len(symbols)]
    )
    scale = 100.0 if metric in _PERCENT else 1.0
    for k, name in enumerate(names):
        ax = axes[k // ncols][k % ncols]
        sens = sensitivity_table(table, name, metric)
        column = table[name]
        categorical = pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(
            column
        )
        width = 0.8 / max(1, len(symbols))
        for j, (symbol, color) in enumerate(zip(symbols, colors, strict=True)):
            sub = sens[sens[unit] == symbol]
            xs, labels = _as_x(name, sub[name])
            median = sub["median"].to_numpy(dtype=float) * scale
            low, high = sub["q25"].to_numpy(dtype=float) * scale, sub["q75"].to_numpy() * scale
            if categorical:  # unordered values (side, margin mode): bars, not a line
                ax.bar(xs + (j - (len(symbols) - 1) / 2) * width, median, width * 0.95,
                       color=color, alpha=0.8, label=symbol,
                       yerr=np.vstack([median - low, high - median]), capsize=3,
                       error_kw={"elinewidth": 0.8})  # fmt: skip
                ax.axhline(0.0, color="#888888", linewidth=0.6)
            else:
                ax.plot(xs, median, marker="o", ms=4, color=color, label=symbol)
                ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
            step = max(1, math.ceil(len(xs) / _MAX_TICKS))  # thin the labels of long grids
            ax.set_xticks(
                xs[::step], labels[::step], rotation=30 if max(map(len, labels)) > 5 else 0
            )
        ax.set_xlabel(_label(name))
        ax.set_ylabel(_label(metric))
        _style(ax)
    for k in range(len(names), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(
        f"Sensitivity of {_label(metric)} to each parameter "
        "(line or bar: median over every other setting; band or whisker: 25–75 %)",
        fontsize=11,
    )
    return fig


def _curves_figure(curves: Mapping[str, Mapping[str, pd.Series]]) -> Figure:
    from backtester.reports.plots import _figure, _style

    fig = _figure(10.0, 6.4)
    ax_e, ax_d = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.0, 1.0]})
    palettes = {
        "best": ("#1a9850", "#66bd63", "#a6d96a"),
        "worst": ("#d73027", "#f46d43", "#fdae61"),
    }
    for group, series in curves.items():
        colors = palettes.get(group, ("#555555",))
        for k, (label, equity) in enumerate(series.items()):
            color = colors[k % len(colors)]
            values = equity.to_numpy(dtype=np.float64)
            values = np.where(np.abs(values) < _DUST, 0.0, values)
            peak = np.maximum.accumulate(values)
            with np.errstate(divide="ignore", invalid="ignore"):
                dd = np.where(peak > 0.0, values / peak - 1.0, 0.0) * 100.0
            style = "-" if group == "best" else "--"
            ax_e.plot(equity.index, values, style, color=color, linewidth=1.1,
                      label=f"{group} {k + 1}: {label}")  # fmt: skip
            ax_d.plot(equity.index, dd, style, color=color, linewidth=0.9)
    ax_e.set_ylabel("Equity [quote]")
    ax_e.legend(fontsize=7, loc="upper left")
    ax_d.set_ylabel("Drawdown [%]")
    ax_d.set_xlabel("Time (UTC)")
    for ax in (ax_e, ax_d):
        _style(ax)
    return fig


def _survival_figure(curve: pd.DataFrame, by: str | None, survival_mode: bool) -> Figure:
    from backtester.reports.plots import _colors, _figure, _style

    fig = _figure(7.2, 4.2)
    ax = fig.subplots()
    series = curve.groupby([unit_column(curve), *([by] if by else [])], dropna=False, sort=True)
    colors = _colors(max(2, series.ngroups), "viridis")
    for (key, sub), color in zip(series, colors, strict=False):
        parts = key if isinstance(key, tuple) else (key,)
        unit = "%" if by in _PERCENT and _fmt(by, parts[-1]) != "none" else ""
        label = (
            parts[0]
            if by is None
            else f"{parts[0]}, {by.replace('_', ' ')} {_fmt(by, parts[1])}{unit}"
        )
        sub = sub.sort_values("leverage")
        ax.plot(sub["leverage"].astype(float), sub["survival"] * 100, marker="o", ms=4,
                color=color, label=label)  # fmt: skip
    ticks = sorted(dict.fromkeys(curve["leverage"].astype(float)))
    if ticks and min(ticks) > 0:
        ax.set_xscale("log")
        if len(ticks) > _MAX_TICKS:  # keep a readable subset, spread over the log axis
            keep = np.unique(np.geomspace(1, len(ticks), _MAX_TICKS).round().astype(int) - 1)
            ticks = [ticks[k] for k in keep]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    ax.set_ylim(-2, 102)
    ax.set_xlabel("Leverage [x]")
    ax.set_ylabel("Survival [%]" if survival_mode else "Settings never liquidated [%]")
    ax.set_title(
        "Kaplan–Meier survival at the horizon, by leverage"
        if survival_mode
        else "Settings never liquidated during the backtest, by leverage"
    )
    _style(ax)
    ax.legend(fontsize=8)
    return fig


def sweep_report(
    table: pd.DataFrame,
    *,
    metadata: Mapping[str, Any],
    out: str | Path,
    metric: str | None = None,
    top: int = 10,
    curves: Mapping[str, Mapping[str, pd.Series]] | None = None,
) -> Path:
    """Write the sweep report (``index.html``, ``figures/*.png``, ``tables/*``) to ``out``.

    Parameters
    ----------
    table : pandas.DataFrame
        The run's result table (``open_run(path).table``).
    metadata : mapping
        The run's ``run.json`` (``open_run(path).metadata``).
    out : str or Path
        Report directory: new, empty, or written by an earlier report (never the run directory
        itself; see ``reports.html.check_output_dir``). Checked before anything is drawn.
    metric : str, optional
        Column ranking the settings; default ``calmar`` (annualised return / max drawdown; for
        a run without it ``total_return / max_drawdown``), ``survival`` for survival runs (see
        :func:`ranked`).
    top : int
        Rows in the best and worst tables.
    curves : mapping, optional
        ``{"best": {label: equity}, "worst": {label: equity}}``: close equity per bar (quote)
        of some best and worst settings (the CLI re-runs them), drawn with their drawdowns.

    Returns
    -------
    Path
        The report's ``index.html``.

    Raises
    ------
    ConfigError
        A bad ``metric`` or ``top``, an empty table, or an ``out`` that may not be written.
    """
    from backtester.reports.html import (
        ReportFigure,
        ReportSection,
        ReportTable,
        check_output_dir,
        write_report,
    )

    survival_mode = metadata.get("mode") == "survival"
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"top must be an integer >= 1, was {top!r}")
    if table.empty:
        raise ConfigError("the result table is empty; there is nothing to report")
    metric, ordered = ranked(table, metric=metric, survival_mode=survival_mode)
    table = ordered.sort_index()  # the fallback metric, if added, is a column from here on
    check_output_dir(out)  # before the figures are drawn
    names = [n for n in metadata.get("grid_names", []) if n in table]
    sides = ["side"] if survival_mode and "side" in table and "side" not in names else []
    unit = unit_column(table)
    keys = [unit, *names, *sides]
    best = ordered.head(top)
    worst = worst_first(table, metric).head(top)
    config = metadata.get("config", {})
    market = config.get("market", {})
    strategy = config.get("strategy", {}).get("name", "survival study" if survival_mode else "?")
    why = {
        RISK_METRIC: " Calmar is the annualised return (CAGR, 365-day year) divided by the"
        " maximum drawdown, so a setting that lost 90 % on the way to its return ranks below a"
        " steadier one of the same return; settings with no drawdown (n/a) come last. Sharpe:"
        " mean / standard deviation of the per-bar returns, annualised (× √bars per year).",
        FALLBACK_METRIC: " Return / max drawdown is total_return / max_drawdown (this run has no"
        " calmar column), so a deep drawdown is paid for; settings with no drawdown come last.",
    }.get(metric, "")
    sections = [
        ReportSection(
            heading=f"Best and worst settings by {_label(metric)}",
            paragraphs=(
                f"{len(table):,} rows: {metadata.get('n_symbols', '?')} "
                f"{'account(s)' if unit == 'legs' else 'symbol(s)'} × "
                f"{metadata.get('n_cols', '?'):,} settings. Ranking by {metric} "
                f"({'higher' if _HIGHER_IS_BETTER.get(metric, True) else 'lower'} is better)."
                f"{why}",
            ),
            tables=(
                ReportTable("best", best, display_table(best, keys), f"Top {len(best)} settings"),
                ReportTable(
                    "worst", worst, display_table(worst, keys), f"Bottom {len(worst)} settings"
                ),
            ),
        )
    ]
    if curves:
        sections.append(
            ReportSection(
                heading="Equity and drawdown of the best and worst settings",
                paragraphs=(
                    f"Close equity per bar of the top and bottom settings by {metric}, re-run"
                    " from the run's config and data; drawdown from each curve's running peak.",
                ),
                figures=(
                    ReportFigure(
                        "equity_best_worst",
                        _curves_figure(curves),
                        f"Equity and drawdown of the best and worst settings by {metric}",
                    ),
                ),
            )
        )
    if "leverage" in table and ("liquidated" in table or "survival" in table):
        hue = next(
            (
                n
                for n in ("stop_loss", "margin_mode", "side")
                if n in names and table[n].nunique(dropna=False) <= _MAX_LINES
            ),
            None,
        )
        curve = survival_by_leverage(table, by=hue)
        sections.append(
            ReportSection(
                heading="Survival by leverage"
                if survival_mode
                else "Never liquidated, by leverage (share of settings)",
                paragraphs=(
                    (
                        "Each point is the Kaplan–Meier survival at the horizon (the probability"
                        " that a position opened at a random entry time is not liquidated"
                        " within the horizon) averaged over the other settings."
                        if survival_mode
                        else "Not a Kaplan–Meier survival curve: nothing here is a probability"
                        " over entry dates. Each point is the share of the swept settings at"
                        " that leverage (over every other swept parameter) whose account was"
                        " never liquidated during the whole backtest; `backtester survival`"
                        " measures survival over entry dates."
                    )
                    + " A stop-loss exit is not a liquidation. Settings whose every entry was"
                    " rejected (leverage above the tier maximum) never took risk and are left"
                    " out (column n_never_entered).",
                ),
                tables=(
                    ReportTable(
                        "survival_by_leverage",
                        curve,
                        display_table(
                            curve
                            if survival_mode
                            else curve.rename(columns={"survival": "never_liquidated"}),
                            [unit, "leverage", *([hue] if hue else [])],
                        ),
                    ),
                ),
                figures=(
                    ReportFigure(
                        "survival_by_leverage",
                        _survival_figure(curve, hue, survival_mode),
                        "Survival by leverage (log scale)"
                        if survival_mode
                        else "Share of settings never liquidated, by leverage (log scale)",
                    ),
                ),
            )
        )
    varied = [n for n in names if table[n].nunique(dropna=False) > 1]
    if varied:
        sensitivity = pd.concat(
            [
                sensitivity_table(table, n, metric).rename(columns={n: "value"}).assign(parameter=n)
                for n in varied
            ],
            ignore_index=True,
        )
        # "none" for a switched-off stop (not "nan"); the metric in the table's own units
        pairs = list(zip(sensitivity["parameter"], sensitivity["value"], strict=True))
        sensitivity["value"] = [
            "none" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            for _, v in pairs
        ]
        shown = sensitivity[["parameter", unit, "value", "q25", "median", "q75"]]
        sensitivity_display = shown.assign(
            value=[_fmt(p, v) for p, v in pairs],
            **{q: [_fmt(metric, v) for v in shown[q]] for q in ("q25", "median", "q75")},
        ).rename(columns={q: f"{q} {_label(metric)}" for q in ("q25", "median", "q75")})
        sections.append(
            ReportSection(
                heading="Parameter sensitivity",
                paragraphs=(
                    f"For each swept parameter: the median {metric} over every other setting, "
                    "with the 25–75 % band. Flat lines mean the parameter hardly matters.",
                ),
                tables=(ReportTable("sensitivity", shown, sensitivity_display),),
                figures=(
                    ReportFigure(
                        "sensitivity",
                        _sensitivity_figure(table, varied, metric),
                        f"Sensitivity of {metric} to each parameter",
                    ),
                ),
            )
        )
    data = metadata.get("data", {})
    subtitle = (
        f"{strategy} on {', '.join(market.get('symbols', []))} "
        f"({market.get('exchange', '')}, {market.get('timeframe', '')}, "
        f"{market.get('start', 'first bar')} → {market.get('end', 'last bar')}); "
        f"backtester {metadata.get('backtester_version', '?')}; data sha256 "
        + ", ".join(f"{s} {str(d.get('sha256', ''))[:12]}" for s, d in data.items())
    )
    return write_report(
        out,
        title=f"Sweep report: {strategy}",
        subtitle=subtitle,
        sections=sections,
        run_info=dict(metadata),
    )
