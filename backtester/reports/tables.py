"""Presentation tables: labels carry units ("Survival [%]"), values are formatted for people.

Layer: reports (frames in, frames or text out; never imports survival or sweep).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = [
    "format_percent",
    "format_percent_ci",
    "format_stop",
    "report_display",
    "safe_leverage_display",
    "safe_leverage_lines",
    "survival_display",
    "to_text",
    "unreachable_reason",
]

# raw column -> display label (units in the label)
_LABELS = {
    "legs": "Legs",
    "side": "Side",
    "leverage": "Leverage [x]",
    "stop_loss": "Stop-loss",
    "position_size": "Position size [% of equity]",
    "margin_mode": "Margin",
    "n_entries": "Entries",
    "n_liquidated": "Liquidated",
    "n_stopped": "Stopped",
    "n_censored": "Censored",
    "n_ruined": "Ruined",
    "loss_mean": "Wallet lost, mean [%]",
    "loss_q95": "Wallet lost, 95th pct [%]",
    "survival": "Survival [%]",
    "ci_low": "CI low [%]",
    "ci_high": "CI high [%]",
    "median_time_to_liquidation": "Median to liquidation [days]",
    "mean_funding_paid_pct": "Funding paid, mean [% of margin]",
    "funding": "Funding",
    "price_rule": "Liquidated on",
    "false_liquidations": "False liquidations",
    "liquidated_later_on_mark": "Liquidated later on mark",
    "leverages": "Leverages",
    "date": "Date",
    "n_gaps_past_bankruptcy": "Gaps past bankruptcy",
    "total_insurance_draw_pct": "Insurance draws, total [% of cash]",
    "max_insurance_draw_pct": "Insurance draw, largest [% of cash]",
    "worst_gap_time": "Worst gap at",
    "n_min_equity_below_zero": "Equity below zero",
    "survival_with_stop": "Survival with stop [%]",
    "survival_without_stop": "Survival without stop [%]",
    "difference": "Difference [pp]",
    "diff_ci_low": "Difference CI low [pp]",
    "diff_ci_high": "Difference CI high [pp]",
    "logrank_p": "Log-rank p",
    "n_liquidated_with_stop": "Liquidated with stop",
    "n_liquidated_without_stop": "Liquidated without stop",
    "mean_final_equity_with_stop": "Final equity with stop, mean",
    "mean_final_equity_without_stop": "Final equity without stop, mean",
    "leverage_a": "Leverage a [x]",
    "leverage_b": "Leverage b [x]",
    "survival_a": "Survival a [%]",
    "survival_b": "Survival b [%]",
    "n_independent": "Independent entries",
    "survival_offset0": "Survival, offset 0 [%]",
    "ci_low_offset0": "CI low, offset 0 [%]",
    "ci_high_offset0": "CI high, offset 0 [%]",
    "survival_min": "Survival, lowest offset [%]",
    "survival_median": "Survival, median offset [%]",
    "survival_max": "Survival, highest offset [%]",
    "exchange": "Exchange",
    "mark_source": "Liquidation price",
    "day": "Day",
    "mark_move": "Mark move that day [%]",
    "n_open_at_day": "Open at day start",
    "n_liquidated_on_day": "Liquidated that day",
    "liquidated_share": "Liquidated that day [%]",
}
# columns holding a fraction shown as a percentage, and a difference of two shown in points
_PERCENT = {
    "survival", "ci_low", "ci_high", "loss_mean", "loss_q95", "survival_with_stop",
    "survival_without_stop", "survival_a", "survival_b", "survival_offset0", "ci_low_offset0",
    "ci_high_offset0", "survival_min", "survival_median", "survival_max", "mark_move",
    "liquidated_share",
}  # fmt: skip
_POINTS = {"difference", "diff_ci_low", "diff_ci_high"}
_EMPTY = "—"  # a missing value (no gap, no liquidation) in a table a person reads


def format_stop(value: object) -> str:
    """Return a stop-loss fraction as text: ``0.05`` → ``"5%"``, None/NaN → ``"none"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, int | float | np.floating):
        return f"{float(value) * 100:g}%"
    return str(value)


def format_percent_ci(value: float, low: float, high: float, *, digits: int = 1) -> str:
    """Return ``"62.1% (55.3–68.4)"``; NaN values print as ``"n/a"``."""
    if not math.isfinite(value):
        return "n/a"
    text = f"{value * 100:.{digits}f}%"
    if math.isfinite(low) and math.isfinite(high):
        text += f" ({low * 100:.{digits}f}–{high * 100:.{digits}f})"
    return text


def _fmt_number(value: object) -> str:
    if isinstance(value, float | np.floating):
        v = float(value)
        return f"{int(v)}" if v.is_integer() else f"{v:g}"
    return str(value)


def survival_display(
    table: pd.DataFrame, *, setting_columns: list[str], horizon_days: float
) -> pd.DataFrame:
    """Return the survival table formatted for reading (percentages with intervals, units)."""
    out = pd.DataFrame(index=table.index)
    for name in setting_columns:
        header = label(name)
        if name == "stop_loss":
            out[header] = [format_stop(v) for v in table[name]]
        elif name == "position_size":
            out[header] = [f"{float(v) * 100:g}" for v in table[name]]
        else:
            out[header] = [_fmt_number(v) for v in table[name]]
    for name in ("n_entries", "n_liquidated", "n_stopped", "n_censored"):
        out[_LABELS[name]] = table[name].astype(int)
    if "n_ruined" in table and int(table["n_ruined"].sum()) > 0:
        out[_LABELS["n_ruined"]] = table["n_ruined"].astype(int)
    out["Survival [%] (95% CI)"] = [
        format_percent_ci(s, lo, hi)
        for s, lo, hi in zip(table["survival"], table["ci_low"], table["ci_high"], strict=True)
    ]
    out["Median to liquidation [days]"] = [
        f"> {horizon_days:g}" if not math.isfinite(v) else f"{v:.1f}"
        for v in table["median_time_to_liquidation"]
    ]
    for name in ("loss_mean", "loss_q95"):
        if name in table:
            out[_LABELS[name]] = [format_percent(v) for v in table[name]]
    return out.reset_index(drop=True)


def label(name: str) -> str:
    """Return the display header of a raw column: its label with units, else words, not snake_case."""
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def _cell(name: str, value: object, horizon_days: float | None) -> str:
    if value is None or value is pd.NaT:
        return _EMPTY
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    if isinstance(value, bool | np.bool_):
        return "on" if value else "off"
    if name == "stop_loss":
        return format_stop(value)
    if name == "position_size":
        return f"{float(value) * 100:g}"  # type: ignore[arg-type]  # the label says [% of equity]
    if not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    v = float(value)
    if name == "median_time_to_liquidation":
        if math.isfinite(v):
            return f"{v:.1f}"
        return f"> {horizon_days:g}" if horizon_days else "n/a"
    if not math.isfinite(v):
        return "n/a"
    if name in _PERCENT:
        return f"{v * 100:.1f}%"
    if name in _POINTS:
        return f"{v * 100:+.1f} pp"
    if name.endswith("_pct"):  # already a percentage: one precision down the column
        return f"{v:.2f}"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v)}"  # 5.0 -> "5", 2337.0 -> "2337"
    return f"{v:.4g}"


def report_display(df: pd.DataFrame, *, horizon_days: float | None = None) -> pd.DataFrame:
    """Return a raw report table formatted for reading: labelled headers, no snake_case.

    The one presentation rule for report tables whose numbers are the raw frame's (the CSV and
    parquet downloads keep the raw columns): fractions as percentages, differences in points,
    stops as ``"5%"``, whole numbers without ``.0``, timestamps in UTC, a missing time as
    ``"—"`` (never ``NaT``), booleans as on/off and an infinite median time as ``"> horizon"``.
    """
    out = pd.DataFrame(index=df.index)
    for name in df.columns:
        out[label(str(name))] = [_cell(str(name), v, horizon_days) for v in df[name]]
    return out.reset_index(drop=True)


def format_percent(value: float, *, digits: int = 1) -> str:
    """Return a fraction as a percentage: ``0.4871`` → ``"48.7"``; NaN prints as ``"n/a"``."""
    return f"{value * 100:.{digits}f}" if math.isfinite(value) else "n/a"


def to_text(display: pd.DataFrame) -> str:
    """Return an aligned plain-text rendering of a display table for the terminal."""
    return str(display.to_string(index=False, justify="right"))


def _group_text(row: pd.Series, columns: list[str]) -> str:
    # "long, stop 5%", "BTC +0.5 / ETH -0.5, cross"
    parts = []
    for c in columns:
        v = row[c]
        if c == "stop_loss":
            parts.append("no stop" if format_stop(v) == "none" else f"stop {format_stop(v)}")
        elif c == "position_size":
            parts.append(f"size {float(v) * 100:g}%")
        else:
            parts.append(_fmt_number(v))
    return ", ".join(parts)


def _varying(safe: pd.DataFrame) -> list[str]:
    # the side (or legs) always, then every other setting that differs between the rows
    groups = list(safe.columns[: list(safe.columns).index("leverage")])
    return [c for i, c in enumerate(groups) if i == 0 or safe[c].nunique(dropna=False) > 1]


def safe_leverage_lines(safe: pd.DataFrame) -> list[str]:
    """Return one plain sentence per row of ``SurvivalStudy.max_safe_leverage()``.

    ``"long, no stop: at most 10x (survival 100.0% (92.9–100.0) at 10x; tested up to 100x)"``
    or ``"short, stop 5%: no tested leverage meets 90% (2x: 94.0% (83.5–99.0))"``.
    """
    target = f"{float(safe.attrs.get('target', math.nan)) * 100:g}%"
    columns = _varying(safe)
    lines = []
    for _, row in safe.iterrows():
        ci = format_percent_ci(row["survival"], row["ci_low"], row["ci_high"])
        lost = format_percent(row["loss_mean"])
        if math.isfinite(row["leverage"]):
            top = " (the highest tested)" if row["leverage"] == row["max_tested"] else ""
            text = (
                f"at most {_fmt_number(row['leverage'])}x{top}: survival {ci}, "
                f"{lost}% of the wallet lost on average"
            )
        else:
            text = f"no tested leverage meets {target}; even the lowest gives {ci}"
        lines.append(f"{_group_text(row, columns)}: {text}")
    return lines


def unreachable_reason(safe: pd.DataFrame) -> str | None:
    """Return why no leverage can meet the target when the data is too short to show it.

    None when the target is within reach (``max_safe_leverage().attrs["best_possible_low"]``,
    the lower bound of a setting that is never liquidated, meets it).
    """
    best = float(safe.attrs.get("best_possible_low", math.nan))
    if not (math.isfinite(best) and float(safe.attrs.get("target", math.nan)) > best):
        return None
    best *= 100
    n_eff = float(safe.attrs["n_effective"])
    return (
        f"The target is out of reach: the data holds {n_eff:.3g} non-overlapping horizons, so even with no liquidation at all "
        f"the lower bound is {best:.1f}%; load a longer range, shorten the horizon or lower "
        "the target."
    )


def safe_leverage_display(safe: pd.DataFrame) -> pd.DataFrame:
    """Return ``max_safe_leverage()`` formatted for reading (labels with units, no NaN)."""
    out = pd.DataFrame(index=safe.index)
    for c in _varying(safe):
        out[label(c)] = [_group_text(row, [c]) for _, row in safe.iterrows()]
    out["Highest safe leverage [x]"] = [
        _fmt_number(v) if math.isfinite(v) else "none" for v in safe["leverage"]
    ]
    out["Survival [%] (95% CI)"] = [
        format_percent_ci(a, b, c)
        for a, b, c in zip(safe["survival"], safe["ci_low"], safe["ci_high"], strict=True)
    ]
    out[_LABELS["loss_mean"]] = [format_percent(v) for v in safe["loss_mean"]]
    out["Tested up to [x]"] = [_fmt_number(v) for v in safe["max_tested"]]
    return out.reset_index(drop=True)
