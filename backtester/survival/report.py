"""Assemble a survival study's HTML report: tables, figures, CSV/parquet and run.json.

Layer: survival (uses reports.html, reports.plots and reports.tables, which take frames).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester.reports.html import ReportFigure, ReportSection, ReportTable, write_report
from backtester.reports.tables import survival_display

if TYPE_CHECKING:  # pragma: no cover
    from backtester.survival.study import SurvivalStudy

__all__ = ["fan_checkpoints", "main_sections", "write_survival_report"]

log = logging.getLogger(__name__)


def _others_fixed(study: SurvivalStudy, keep: tuple[str, ...]) -> np.ndarray:
    # rows that share the first row's values on every column not in ``keep``
    s = study.settings
    mask = np.ones(len(s), dtype=bool)
    for c in s.columns:
        if c in keep:
            continue
        first = s[c].iloc[0]
        mask &= s[c].isna().to_numpy() if pd.isna(first) else (s[c] == first).to_numpy()
    return mask


def _curve_groups(study: SurvivalStudy) -> dict[str, list[int]]:
    """Group settings by side for per-leverage curves (no-stop settings, else the first stop)."""
    s = study.settings
    mask = _others_fixed(study, ("side", "leverage", "stop_loss"))
    if "stop_loss" in s:
        no_stop = s["stop_loss"].isna().to_numpy()
        if (mask & no_stop).any():
            mask &= no_stop
        else:
            mask &= _others_fixed(study, ("side", "leverage"))
    sides = list(dict.fromkeys(s["side"])) if "side" in s else ["account"]
    groups: dict[str, list[int]] = {}
    for side in sides:
        in_side = (s["side"] == side).to_numpy() if "side" in s else np.ones(len(s), dtype=bool)
        idx = [int(i) for i in np.flatnonzero(mask & in_side)]
        idx.sort(key=lambda i: float(s["leverage"].iloc[i]))
        groups[str(side)] = idx
    return groups


def fan_checkpoints(horizon_bars: int, n_points: int = 10) -> list[int]:
    """Return up to ``n_points`` evenly spaced horizons in bars, ending at ``horizon_bars``."""
    points = np.unique(np.linspace(0, horizon_bars, n_points + 1).round().astype(int)[1:])
    return [int(p) for p in points if p >= 1]


def _equity_fans(study: SurvivalStudy) -> dict[str, tuple[Any, Any]]:
    """Run the engine once per checkpoint: equity if closed after t days (engine is the truth)."""
    from backtester.survival.run import survival_study

    groups = _curve_groups(study)
    side = next(iter(groups))
    idx = groups[side]
    if len(idx) > 6:  # keep the fan readable: up to six leverages spread over the ladder
        pick = np.unique(np.linspace(0, len(idx) - 1, 6).round().astype(int))
        idx = [idx[k] for k in pick]
    levs = [float(study.settings["leverage"].iloc[i]) for i in idx]
    row = study.settings.iloc[idx[0]]
    checkpoints = fan_checkpoints(study.horizon_bars)
    fixed = {k: v for k, v in study.run_settings.items() if k not in ("horizon", "entry_every")}
    days = np.array(checkpoints) * study.bar_days
    equity = np.empty((len(levs), len(checkpoints), study.n_entries))
    for k, bars in enumerate(checkpoints):
        sub = survival_study(
            study.market,
            side=str(side),  # type: ignore[arg-type]
            leverage=levs,
            stop_loss=None,
            position_size=float(row.get("position_size", 1.0)),
            margin_mode=str(row.get("margin_mode", "isolated")),
            horizon=pd.Timedelta(bars * study.market.timeframe_ns, unit="ns"),
            entry_every=pd.Timedelta(study.entry_every_bars * study.market.timeframe_ns, unit="ns"),
            n_boot=1,
            **fixed,
        )
        equity[:, k, :] = sub.final_equity / sub.initial_cash
    return {
        f"{side} {lev:g}x": (
            np.concatenate(([0.0], days)),
            np.vstack([np.ones((1, study.n_entries)), equity[j]]),
        )
        for j, lev in enumerate(levs)
    }


def main_sections(study: SurvivalStudy, *, with_fan: bool = True) -> list[ReportSection]:
    """Return the sections on the study itself (table, heatmap, curves, histograms, fan)."""
    from backtester.reports import plots

    table = study.table()
    setting_cols = [
        c for c in study.setting_columns if study.settings[c].nunique(dropna=False) > 1
    ] or study.setting_columns[:2]
    display = survival_display(table, setting_columns=setting_cols, horizon_days=study.horizon_days)
    meta = table.attrs
    sections: list[ReportSection] = [
        ReportSection(heading="In short", paragraphs=_headline(study, table), headline=True),
        ReportSection(
            heading="What the numbers mean",
            paragraphs=(
                meta["survival"],
                "Interval: " + meta["ci_method"],
                f"Each setting opens a position at {study.n_entries:,} entry times "
                f"(every {study.entry_every_bars * study.bar_days:g} days) and follows it for "
                f"{study.horizon_days:g} days; liquidation is judged on the market's "
                f"{study.market.mark_source} price by the engine's exchange rules.",
                _ambiguity_note(study),
            ),
        ),
    ]
    figs = []
    if "stop_loss" in table and "leverage" in table:
        heat = table[_others_fixed(study, ("side", "leverage", "stop_loss"))]
        figs.append(
            ReportFigure(
                "survival_heatmap",
                plots.plot_survival_heatmap(
                    heat.assign(stop_loss=heat["stop_loss"].astype(float)),
                    title=f"Survival (not liquidated) after {study.horizon_days:g} days",
                ),
                "Survival at the horizon by leverage (columns) and stop-loss (rows); green survives.",
            )
        )
    sections.append(
        ReportSection(
            heading="Survival by setting",
            tables=(
                ReportTable(
                    "survival",
                    table,
                    display,
                    caption="Survival at the horizon with its honest 95% interval.",
                ),
            ),
            figures=tuple(figs),
        )
    )
    groups = _curve_groups(study)
    curve_figs = []
    hist_figs = []
    for side, idx in groups.items():
        if not idx:
            continue
        curves = {
            study.label(i)
            if len(groups) == 1
            else f"{float(study.settings['leverage'].iloc[i]):g}x": study.curve(i)
            for i in idx
        }
        curve_figs.append(
            ReportFigure(
                f"km_curves_{side}",
                plots.plot_km_curves(
                    curves,
                    title=f"Kaplan–Meier survival by leverage ({side})",
                    horizon=study.horizon_days,
                ),
                f"Share of {side} positions not yet liquidated, by days since entry.",
            )
        )
        hist = {
            f"{float(study.settings['leverage'].iloc[i]):g}x": study.liquidation_days(i)
            for i in idx
        }
        hist_figs.append(
            ReportFigure(
                f"liquidation_histograms_{side}",
                plots.plot_liquidation_histograms(
                    hist,
                    horizon=study.horizon_days,
                    title=f"When {side} positions get liquidated",
                ),
                f"Days from entry to liquidation for liquidated {side} positions.",
            )
        )
    sections.append(ReportSection(heading="Kaplan–Meier curves", figures=tuple(curve_figs)))
    sections.append(ReportSection(heading="Time to liquidation", figures=tuple(hist_figs)))
    if with_fan:
        fans = _equity_fans(study)
        sections.append(
            ReportSection(
                heading="Equity fan",
                paragraphs=(
                    "Account equity (percent of the starting cash) if the position were closed "
                    "after t days, across all entries; every point is a separate engine run "
                    "with that horizon, so it includes fees, funding and liquidations.",
                ),
                figures=(
                    ReportFigure(
                        "equity_fan",
                        plots.plot_equity_fan(fans),
                        "Quantiles across entries of the equity if closed after t days.",
                    ),
                ),
            )
        )
    if study.block_len > 1 and study.n_entries >= 2 * study.block_len:
        no = study.nonoverlapping()
        cols = [c for c in study.setting_columns if study.settings[c].nunique(dropna=False) > 1]
        shown = no[
            [*(cols or study.setting_columns[:1]), *no.columns[len(study.setting_columns) :]]
        ]
        sections.append(
            ReportSection(
                heading="Check: independent (non-overlapping) entries",
                paragraphs=(
                    "Entries one horizon apart do not overlap, so they are independent holds. "
                    f"There are {study.block_len} such disjoint subsamples (one per starting "
                    "offset); the table gives the first one's survival with its Greenwood "
                    "interval and the range over all offsets. The main table's interval should "
                    "be comparable in width to these.",
                ),
                tables=(ReportTable("nonoverlapping", no, _round(shown)),),
            )
        )
    if "leverage" in study.settings and study.settings["leverage"].nunique() > 1:
        lr = study.logrank("leverage")
        sections.append(
            ReportSection(
                heading="Does more leverage change survival? (log-rank and bootstrap)",
                paragraphs=(
                    "Each row compares one leverage with the next higher one under the same "
                    "other settings. difference = survival_a − survival_b with a moving-block "
                    "bootstrap interval (honest for overlapping entries); logrank_p assumes "
                    "independent entries and overstates significance.",
                ),
                tables=(ReportTable("logrank_leverage", lr, _round(lr)),),
            )
        )
    return sections


def _ambiguity_note(study: SurvivalStudy) -> str:
    total = int(study.ambiguous_bars.sum())
    policy = study.run_settings.get("intrabar", "worst")
    if total == 0:
        return "No bar was ambiguous (a stop and a liquidation never both triggered in one bar)."
    return (
        f"{total:,} bars across all holds were ambiguous (several exits could trigger inside one "
        f"bar); the engine resolved them with intrabar={policy!r}. Use 1-minute detail bars "
        "(intrabar='detail') where available to remove the assumption."
    )


def _pct(row: pd.Series) -> str:
    if not math.isfinite(row["survival"]):
        return "n/a (no entry could be opened)"
    return f"{row['survival'] * 100:.1f}% ({row['ci_low'] * 100:.1f}–{row['ci_high'] * 100:.1f}%)"


def _headline(study: SurvivalStudy, table: pd.DataFrame) -> tuple[str, ...]:
    """Return one or two sentences with the study's main numbers."""
    lines: list[str] = []
    days = f"{study.horizon_days:g} days"
    for side, idx in _curve_groups(study).items():
        if len(idx) < 2:
            continue
        lo, hi = table.iloc[idx[0]], table.iloc[idx[-1]]
        who = f"{side} positions" if side != "account" else "the account"
        text = (
            f"Opened on a random day, {who} at {lo['leverage']:g}x were not liquidated within "
            f"{days} {_pct(lo)} of the time; at {hi['leverage']:g}x only {_pct(hi)}"
        )
        median = hi["median_time_to_liquidation"]
        if np.isfinite(median):
            text += f", and half of them were liquidated within {median:.1f} days"
        lines.append(text + ".")
    if "stop_loss" in table and table["stop_loss"].notna().any() and "side" in table:
        mid = table[(table["leverage"] >= 10) & table["stop_loss"].notna()]
        if len(mid):
            best = mid.loc[mid["survival"].idxmax()]
            base = table[
                (table["side"] == best["side"])
                & (table["leverage"] == best["leverage"])
                & table["stop_loss"].isna()
            ]
            if len(base):
                lines.append(
                    f"A {best['stop_loss'] * 100:g}% stop at {best['leverage']:g}x "
                    f"({best['side']}) lifts survival from {_pct(base.iloc[0])} to "
                    f"{_pct(best)}, at the price of {int(best['n_stopped']):,} stopped-out "
                    f"positions of {int(best['n_entries']):,}, each losing about "
                    f"{best['stop_loss'] * best['leverage'] * 100:.0f}% of its margin."
                )
    return tuple(lines)


def _round(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = [f"{v:.4g}" if math.isfinite(v) else "n/a" for v in out[c]]
    return out


def write_survival_report(
    study: SurvivalStudy, path: str | Path, *, comparisons: bool = True
) -> Path:
    """Write the full report of ``study`` under ``path``; return the path of ``index.html``."""
    holds = study.strategy_name is None  # comparisons and the fan are about plain holds
    sections = main_sections(study, with_fan=comparisons and holds)
    extra: dict[str, Any] = {}
    if comparisons and holds:
        from backtester.survival.comparisons import comparison_sections

        more, extra = comparison_sections(study)
        sections.extend(more)
    m = study.market
    subtitle = (
        f"{m.symbol} on {m.exchange}, {m.timeframe} bars {m.index[0]:%Y-%m-%d} → "
        f"{m.index[-1]:%Y-%m-%d}; {study.n_settings} settings × {study.n_entries:,} entries; "
        f"horizon {study.horizon_days:g} days; backtester {study.run_info()['version']}"
    )
    info = study.run_info()
    info["comparisons"] = extra
    return write_report(
        path,
        title=f"Which leverage survives? {m.symbol}",
        subtitle=subtitle,
        sections=sections,
        run_info=info,
    )
