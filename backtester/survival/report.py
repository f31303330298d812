"""Assemble a survival study's HTML report: tables, figures, CSV/parquet and run.json.

Layer: survival, rendering side (uses reports.html, reports.plots and reports.tables, which take
frames). It draws the study and the ``Comparisons`` it is given and never runs the engine: it
imports neither ``survival.run`` nor ``engine.run`` (a test checks it); the extra engine runs
happen in ``survival.comparisons.compute`` (``SurvivalStudy.comparisons()``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester.reports.html import ReportFigure, ReportSection, ReportTable, write_report
from backtester.reports.tables import (
    format_percent,
    format_percent_ci,
    safe_leverage_display,
    safe_leverage_lines,
    survival_display,
    unreachable_reason,
)
from backtester.survival.study import curve_groups, others_fixed

if TYPE_CHECKING:  # pragma: no cover
    from backtester.survival.comparisons import Comparisons, FanPanel, MarkVsLast
    from backtester.survival.study import SurvivalStudy

__all__ = [
    "account_sections",
    "answer_section",
    "comparison_sections",
    "main_sections",
    "write_survival_report",
]

log = logging.getLogger(__name__)


def main_sections(
    study: SurvivalStudy,
    *,
    fan: Mapping[str, Mapping[str, FanPanel]] | None = None,
    target: float = 0.9,
    stop_beyond: Any = None,
) -> list[ReportSection]:
    """Return the sections on the study itself (answer, table, heatmap, curves, histograms, fan).

    ``fan`` is ``Comparisons.equity_fan`` (drawn when given); the first section is the highest
    leverage that meets ``target`` (``study.max_safe_leverage``). ``stop_beyond``
    (``study.stop_beyond_liquidation()``, one bool per setting) hatches heatmap cells.
    """
    from backtester.reports import plots

    table = study.table().reset_index()
    setting_cols = [
        c for c in study.setting_columns if study.settings[c].nunique(dropna=False) > 1
    ] or study.setting_columns[:2]
    display = survival_display(table, setting_columns=setting_cols, horizon_days=study.horizon_days)
    meta = table.attrs
    what = "the whole account (every leg)" if study.is_account else "a position"
    sections: list[ReportSection] = [
        answer_section(study, target),
        # an account's first section is its headline: isolated vs cross, survival and loss
        *(
            account_sections(study)
            if study.is_account
            else (
                ReportSection(
                    heading="In short", paragraphs=_headline(study, table), headline=True
                ),
            )
        ),
        ReportSection(
            heading="What the numbers mean",
            paragraphs=(
                meta["survival"],
                "Interval: " + meta["ci_method"],
                "Loss: " + meta["loss"] + ".",
                *((meta["legs"] + ".",) if "legs" in meta else ()),
                f"Each setting opens {what} at {study.n_entries:,} entry times "
                f"(every {study.entry_every_bars * study.bar_days:g} days) and follows it for "
                f"{study.horizon_days:g} days; liquidation is judged on the market's "
                f"{study.mark_source} price by the engine's exchange rules.",
                _ambiguity_note(study),
                *_rules_note(study),
                *_coin_note(study, table),
            ),
        ),
    ]
    figs = []
    # an account's first section already shows survival by leverage; its heatmap (one leg set
    # and margin mode) only adds the stop-loss rows when stops are swept
    stops_swept = "stop_loss" in table and table["stop_loss"].nunique(dropna=False) > 1
    if "stop_loss" in table and "leverage" in table and (stops_swept or not study.is_account):
        heat = table[others_fixed(study.settings, ("side", "leverage", "stop_loss"))]
        figs.append(
            ReportFigure(
                "survival_heatmap",
                partial(
                    plots.plot_survival_heatmap,
                    heat.assign(
                        stop_loss=heat["stop_loss"].astype(float),
                        stop_beyond=False
                        if stop_beyond is None
                        else np.asarray(stop_beyond)[heat.index.to_numpy()],
                    ),
                    marked="stop_beyond",
                    title=f"Survival (not liquidated) after {study.horizon_days:g} days"
                    + (
                        f" ({heat['legs'].iloc[0]}, {heat['margin_mode'].iloc[0]})"
                        if study.is_account
                        else ""
                    ),
                ),
                "Survival at the horizon by leverage (columns) and stop-loss (rows); green "
                "survives. Hatched: the stop lies at or beyond the liquidation price (a stop of "
                "s at leverage L is hit after a move of s, liquidation after about 1/L minus the "
                "maintenance margin at entry), so the stop is not the defence here. The cell can "
                "still differ from no stop: the stop triggers on its own price (the last price "
                "by default) while liquidation is judged on the "
                f"{'mark' if study.mark_source == 'mark' else 'last price (standing in for the mark)'}"
                ", and the two part in fast "
                "moves.",
                cost=3.0,  # a panel per side, a colour bar and a label per cell
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
    groups = curve_groups(study.settings)
    curve_figs = []
    hist_figs = []
    for n_group, (side, idx) in enumerate(groups.items()):
        if not idx:
            continue
        slug = f"{n_group + 1}" if study.is_account else side  # file names: no "/" or spaces
        curves = {
            study.label(i)
            if len(groups) == 1
            else f"{float(study.settings['leverage'].iloc[i]):g}x": study.curve(i)
            for i in idx
        }
        curve_figs.append(
            ReportFigure(
                f"km_curves_{slug}",
                partial(
                    plots.plot_km_curves,
                    curves,
                    title=f"Kaplan–Meier survival by leverage ({side})",
                    horizon=study.horizon_days,
                ),
                f"Share of {_who(study, side)} not yet liquidated, by days since entry; the "
                "shaded band is the honest 95% interval at each time (as in the table).",
            )
        )
        by_stop = _histograms_by_stop(study, idx)
        stops = len(next(iter(by_stop.values()), {}))
        hist_figs.append(
            ReportFigure(
                f"liquidation_histograms_{slug}",
                partial(
                    plots.plot_liquidation_histograms,
                    by_stop,
                    horizon=study.horizon_days,
                    title=f"Days from entry to liquidation, {_who(study, side)}, by leverage"
                    + (" and stop-loss" if stops > 1 else ""),
                    series_title="Stop-loss" if stops > 1 else None,
                ),
                f"How many {_who(study, side)} were liquidated on each day after entry "
                f"(30 bins over the {study.horizon_days:g}-day horizon), one panel per leverage"
                + (
                    ", one outline per stop-loss; n gives each stop's count of liquidations in "
                    "the legend's order. A stopped position is not liquidated, so a stop that "
                    "fires first empties its outline."
                    if stops > 1
                    else "."
                ),
                cost=0.5 * len(by_stop),  # small panels, one per leverage
            )
        )
    sections.append(ReportSection(heading="Kaplan–Meier curves", figures=tuple(curve_figs)))
    sections.append(ReportSection(heading="Time to liquidation", figures=tuple(hist_figs)))
    if fan is not None:
        sections.append(_fan_section(study, fan))
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
                tables=(ReportTable("nonoverlapping", no, _fmt(shown)),),
            )
        )
    if "leverage" in study.settings and study.settings["leverage"].nunique() > 1:
        lr = study.logrank("leverage")
        sections.append(
            ReportSection(
                heading="Does more leverage change survival? (log-rank and bootstrap)",
                paragraphs=(
                    "Each row compares one leverage with the next higher one under the same "
                    "other settings. Difference = survival at a − survival at b, with a "
                    "moving-block bootstrap interval (honest for overlapping entries); the "
                    "log-rank p assumes independent entries and overstates significance.",
                ),
                tables=(ReportTable("logrank_leverage", lr, _fmt(lr)),),
            )
        )
    return sections


def _fan_section(study: SurvivalStudy, fan: Mapping[str, Mapping[str, FanPanel]]) -> ReportSection:
    # the equity fan: one row per side (or leg set and margin mode), one panel per leverage
    from backtester.reports import plots

    first = study.settings.iloc[next(iter(curve_groups(study.settings).values()))[0]]
    size = float(first.get("position_size", 1.0))
    rows = list(fan)
    if study.is_account:
        what = "accounts"
        held = f"each row one leg set and margin mode ({'; '.join(rows)})"
    else:
        what = "positions"
        held = (
            f"{' and '.join(rows)} holds, one row each, {first.get('margin_mode', 'isolated')} "
            f"margin"
        )
    levs = list(next(iter(fan.values())))
    horizon = f"{study.horizon_days:g}"
    return ReportSection(
        heading="Equity fan",
        paragraphs=(
            f"Account equity (percent of the starting cash) if the {what} were closed after t "
            f"days, across all {study.n_entries:,} entries: {held}, without a stop, "
            f"{'the whole' if size == 1 else f'{size:.0%} of the'} equity as margin, at {', '.join(levs)}. Every point is the engine's "
            "equity at that time (what a run with that horizon reports), so it includes fees, "
            "funding and liquidations; a liquidated entry stays at what the liquidation left "
            "of the wallet (the floor of the median at high leverage).",
        ),
        figures=(
            ReportFigure(
                "equity_fan",
                partial(plots.plot_equity_fan, fan),
                "Dark band: the middle half of the entries (25th to 75th percentile); light "
                "band: 5th to 95th percentile; line: median; dashed: 100 % (break-even). The y "
                f"axis is linear from 0 to {plots.FAN_LINEAR_TO:g} % and logarithmic above, the "
                "same in every panel, so the few high-leverage entries that multiplied the "
                "account do not flatten the rest. Each title gives the share of entries "
                f"liquidated within {horizon} days (by each day: the Kaplan–Meier curves above).",
                cost=0.5 * sum(len(panels) for panels in fan.values()),  # small panels
            ),
        ),
    )


def _histograms_by_stop(study: SurvivalStudy, idx: list[int]) -> dict[str, dict[str, Any]]:
    # per leverage of the curve group (no stop), the liquidation days of each stop-loss setting
    # that differs from it only in the stop
    s = study.settings
    if "stop_loss" not in s or study.is_account:
        return {
            f"{float(s['leverage'].iloc[i]):g}x": {"no stop": study.liquidation_days(i)}
            for i in idx
        }
    out: dict[str, dict[str, Any]] = {}
    for i in idx:
        same = others_fixed(s, ("stop_loss",), row=i)
        stop = s["stop_loss"]
        rows = sorted(
            np.flatnonzero(same), key=lambda j: -1.0 if pd.isna(stop.iloc[j]) else stop.iloc[j]
        )
        out[f"{float(s['leverage'].iloc[i]):g}x"] = {
            _stop_name(stop.iloc[j]): study.liquidation_days(int(j)) for j in rows
        }
    return out


def _stop_name(v: Any) -> str:
    from backtester.reports.tables import format_stop

    return "no stop" if pd.isna(v) else format_stop(v)


def _who(study: SurvivalStudy, group: str) -> str:
    # "long positions", "BTC +0.5 / ETH -0.5 accounts (cross)", "the account"
    if study.is_account:
        legs, _, mode = group.rpartition(", ")
        return f"{legs} accounts ({mode})" if legs else f"{group} accounts"
    return f"{group} positions" if group != "account" else "the account"


def _kind(legs: tuple[tuple[str, float], ...]) -> str:
    # how a trader names a leg set: long/long, short/short, hedged long/short
    signs = {w > 0 for _, w in legs}
    if len(legs) == 1:
        return "one leg, long" if True in signs else "one leg, short"
    if signs == {True}:
        return "all long (correlated)"
    if signs == {False}:
        return "all short (correlated)"
    return "hedged long/short"


def _liquidated_by(study: SurvivalStudy, i: int) -> str:
    # "BTC 12, ETH 30" (isolated legs) or "account 41" (a cross account as a whole)
    legs = study.legs[i] if study.legs else ((study.symbols[0], 1.0),)
    hit = study.liquidated_leg[i][~study.rejected[i]]
    parts = []
    for k in range(len(legs) + 1):
        n = int((hit == k).sum())
        if n:
            name = "account" if k == len(legs) else legs[k][0].split("/")[0]
            parts.append(f"{name} {n:,}")
    return ", ".join(parts) or "none"


def account_sections(study: SurvivalStudy) -> list[ReportSection]:
    """Return the first section of an account study: isolated vs cross, survival and loss.

    For each leg set (e.g. a correlated long/long and a hedged long/short account), each margin
    mode and each leverage: how often the account (any leg, or the cross account as a whole)
    was liquidated within the horizon and how much of the starting wallet it lost.
    """
    from backtester.reports import plots

    table = study.table().reset_index()
    keep = others_fixed(study.settings, ("legs", "margin_mode", "leverage"))
    rows = np.flatnonzero(keep)
    sub = table.iloc[rows].reset_index(drop=True)
    horizon = f"{study.horizon_days:g} days"
    shown = pd.DataFrame(
        {
            "Legs": sub["legs"],
            "Kind": [_kind(study.legs[i]) for i in rows] if study.legs else "",
            "Margin": sub["margin_mode"],
            "Leverage [x]": [f"{v:g}" for v in sub["leverage"]],
            "Entries": sub["n_entries"],
            "Liquidated [%]": [
                f"{n / e * 100:.1f}" if e else "n/a"
                for n, e in zip(sub["n_liquidated"], sub["n_entries"], strict=True)
            ],
            "First liquidated": [_liquidated_by(study, int(i)) for i in rows],
            "Survival [%] (95% CI)": [
                format_percent_ci(a, b, c)
                for a, b, c in zip(sub["survival"], sub["ci_low"], sub["ci_high"], strict=True)
            ],
            "Wallet lost, mean [%]": [format_percent(v) for v in sub["loss_mean"]],
            "Wallet lost, 95th pct [%]": [format_percent(v) for v in sub["loss_q95"]],
        }
    )
    lines = []
    for legs_text in dict.fromkeys(sub["legs"]):
        part = sub[sub["legs"] == legs_text]
        i0 = int(rows[int(np.flatnonzero((sub["legs"] == legs_text).to_numpy())[0])])
        kind = _kind(study.legs[i0]) if study.legs else ""
        levs = sorted(dict.fromkeys(float(v) for v in part["leverage"]))
        said = []
        # a middle leverage (10x when studied) and the highest: the extremes alone say little
        middle = 10.0 if 10.0 in levs else levs[(len(levs) - 1) // 2]
        for lev in dict.fromkeys((middle, levs[-1])):
            at = part[part["leverage"] == lev]
            modes = []
            for _, r in at.iterrows():
                share = r["n_liquidated"] / r["n_entries"] if r["n_entries"] else math.nan
                modes.append(
                    f"{r['margin_mode']} was liquidated in {share * 100:.0f}% of the entries "
                    f"and lost {format_percent(r['loss_mean'])}% of the wallet on average "
                    f"({format_percent(r['loss_q95'])}% in the worst 5%)"
                )
            said.append(f"At {lev:g}x, " + "; ".join(modes) + ".")
        lines.append(f"{legs_text} ({kind}), within {horizon}. " + " ".join(said))
    lines.append(
        "Isolated margin risks each leg's own margin: a leg is liquidated on its own mark price "
        "and the other legs go on. Cross margin backs all legs with the whole wallet: one leg's "
        "profit holds the other up (fewer liquidations, most of all for a hedge), but when the "
        "account's margin balance falls to the legs' maintenance margins every leg goes and the "
        "wallet with it (docs/reference/exchange-rules.md §7)."
    )
    losses = [study.loss[i][~study.rejected[i]] for i in rows]
    fig = partial(
        plots.plot_account_survival_and_loss,
        sub,
        losses,
        title=f"{study.market_label}: isolated vs cross after {horizon}",
    )
    return [
        ReportSection(
            heading="Isolated vs cross: how often the account is liquidated, and what it costs",
            paragraphs=tuple(lines),
            headline=True,
            tables=(
                ReportTable(
                    "account_isolated_vs_cross",
                    sub,
                    shown,
                    caption="Liquidated = any leg or the cross account liquidated within the "
                    "horizon; First liquidated = which leg (or the cross account) went first; "
                    "wallet lost = max(0, 1 − final equity / starting wallet) at the horizon.",
                ),
            ),
            figures=(
                ReportFigure(
                    "account_survival_and_loss",
                    fig,
                    "Left: survival at the horizon (honest 95% interval shaded) by leverage, "
                    "isolated vs cross. Right: distribution over entries of the share of the "
                    "starting wallet lost by the horizon.",
                ),
            ),
        )
    ]


def _rules_note(study: SurvivalStudy) -> tuple[str, ...]:
    # which tier tables decided the liquidations, and how each applies (e.g. the earliest table
    # extended back to dates before it)
    if not study.rules:
        return ()
    tables = ", ".join(r["table_id"] for r in study.rules)
    extended = [
        part.strip()
        for r in study.rules
        for part in r["note"].split(";")
        if "extended backwards" in part
    ]
    extra = f" {'; '.join(extended).capitalize()}." if extended else ""
    return (f"Tier tables used (each on the bars it was in force): {tables}.{extra}",)


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


def answer_section(study: SurvivalStudy, target: float) -> ReportSection:
    """Return the report's first section: the highest leverage that meets ``target``."""
    safe = study.max_safe_leverage(target=target)
    return ReportSection(
        heading="The answer: the highest leverage that survives",
        paragraphs=(
            f"The {safe.attrs['rule']}, for each setting other than leverage (only the "
            f'leverages this study tested can be named; "none" where even the lowest misses). '
            + _answer_summary(safe),
        ),
        tables=(
            ReportTable(
                name="max_safe_leverage",
                data=safe,
                display=safe_leverage_display(safe),
                caption=(
                    "Survival and interval are those of the leverage named, or of the lowest "
                    "tested leverage where none meets the target (how far it misses)."
                ),
            ),
        ),
        headline=True,
    )


def _answer_summary(safe: pd.DataFrame) -> str:
    # one sentence over the answer table: the best group and how many have no safe leverage
    lines = safe_leverage_lines(safe)
    ok = safe["leverage"].notna().to_numpy()
    if not ok.any():
        return "No tested setting meets the target. " + (unreachable_reason(safe) or "")
    best = int(np.nanargmax(safe["leverage"].to_numpy(dtype=float)))
    text = f"Highest: {lines[best]}."
    if not ok.all():
        text += f" {int((~ok).sum())} of {len(safe)} have no leverage that meets it."
    return text


def _pct(row: pd.Series) -> str:
    if not math.isfinite(row["survival"]):
        return "n/a (no entry could be opened)"
    return f"{row['survival'] * 100:.1f}% ({row['ci_low'] * 100:.1f}–{row['ci_high'] * 100:.1f}%)"


def _headline(study: SurvivalStudy, table: pd.DataFrame) -> tuple[str, ...]:
    """Return one or two sentences with the study's main numbers."""
    lines: list[str] = []
    days = f"{study.horizon_days:g} days"
    for side, idx in curve_groups(study.settings).items():
        if len(idx) < 2:
            continue
        lo, hi = table.iloc[idx[0]], table.iloc[idx[-1]]
        who = _who(study, side)
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


def comparison_sections(study: SurvivalStudy, cmp: Comparisons) -> list[ReportSection]:
    """Return the sections of the leverage-decision comparisons in ``cmp`` (draw only)."""
    from backtester.reports import plots

    sections: list[ReportSection] = []
    horizon = f"{study.horizon_days:g} days"
    if cmp.skipped:  # an account study: the single-position comparisons do not apply
        return [
            ReportSection(
                heading="Comparisons not run for an account",
                paragraphs=tuple(f"{name}: {why}" for name, why in cmp.skipped.items()),
            )
        ]

    # 1. leverage ladder
    lt = cmp.ladder
    sections.append(
        ReportSection(
            heading="1. The leverage ladder (1x … 125x)",
            paragraphs=(
                f"Isolated holds without a stop, full position, followed for {horizon}. "
                "Liquidation sits roughly 1/leverage away from entry (minus the maintenance "
                "margin), so survival falls steeply once that distance is within an ordinary "
                "month's price range.",
            ),
            tables=(ReportTable("cmp_leverage_ladder", lt, _fmt(lt, study.horizon_days)),),
            figures=(
                ReportFigure(
                    "cmp_leverage_ladder",
                    partial(
                        plots.plot_survival_lines,
                        lt,
                        x="leverage",
                        hue="side",
                        title=f"Survival after {horizon} by leverage",
                        xlabel="Leverage [x] (log scale)",
                    ),
                    "Survival at the horizon with honest 95% intervals (shaded).",
                ),
            ),
        )
    )

    # 2. stop-loss vs none
    se = cmp.stop_effect
    st_table = cmp.stop_table
    sections.append(
        ReportSection(
            heading="2. Stop-loss vs none",
            paragraphs=(
                "A stop exit is not a liquidation: a stopped position can no longer be "
                "liquidated, so it counts as surviving the horizon, and 'survival' is the chance "
                "of not being liquidated within it. A stop only protects when it sits closer to entry than the liquidation "
                "price (about 1/leverage away); beyond that the liquidation comes first. "
                "Compare also the mean final equity: stops convert liquidations into smaller, "
                "more frequent losses.",
            ),
            tables=(ReportTable("cmp_stop_loss", se, _fmt(_varying_only(se))),),
            figures=(
                ReportFigure(
                    "cmp_stop_loss",
                    partial(
                        plots.plot_survival_lines,
                        st_table[st_table["side"] == st_table["side"].iloc[0]],
                        x="leverage",
                        hue="stop_loss",
                        title=f"Survival after {horizon}: stop-loss vs none "
                        f"({st_table['side'].iloc[0]})",
                        xlabel="Leverage [x] (log scale)",
                        hue_label="Stop-loss",
                    ),
                    "Survival by leverage for each stop distance.",
                ),
            ),
        )
    )

    # 3 + 4. position size and isolated vs cross
    mt = cmp.size_table
    cross = mt[mt["margin_mode"] == "cross"]
    sections.append(
        ReportSection(
            heading="3. Position size",
            paragraphs=(
                "Position size is the fraction of equity committed as initial margin. Under "
                "isolated margin it does not change survival: the liquidation price depends "
                "only on leverage (margin and notional scale together), so every size gives "
                "the same liquidation distance. Under cross margin the rest of the wallet "
                "backs the position, pushing the liquidation price further away: a 10x "
                "position using 25% of equity behaves like 2.5x on the whole account.",
            ),
            tables=(ReportTable("cmp_position_size", mt, _fmt(mt, study.horizon_days)),),
            figures=(
                ReportFigure(
                    "cmp_position_size",
                    partial(
                        plots.plot_survival_lines,
                        cross,
                        x="leverage",
                        hue="position_size",
                        title=f"Cross margin: survival after {horizon} by position size",
                        xlabel="Leverage [x] (log scale)",
                        hue_label="Position size [fraction of equity]",
                    ),
                    "Cross-margin long holds: smaller positions survive far longer.",
                ),
            ),
        )
    )
    size_q = mt[mt["position_size"] == 0.25]
    sections.append(
        ReportSection(
            heading="4. Isolated vs cross",
            paragraphs=(
                "Same long holds using 25% of equity as margin. Cross margin survives "
                "longer because the whole wallet is at stake; when it is liquidated, the whole "
                "wallet is lost, while isolated loses only the position's margin. "
                + _loss_sentence(size_q),
            ),
            tables=(
                ReportTable("cmp_isolated_vs_cross", size_q, _fmt(size_q, study.horizon_days)),
            ),
            figures=(
                ReportFigure(
                    "cmp_isolated_vs_cross",
                    partial(
                        plots.plot_survival_lines,
                        size_q,
                        x="leverage",
                        hue="margin_mode",
                        title=f"Isolated vs cross (25% of equity): survival after {horizon}",
                        xlabel="Leverage [x] (log scale)",
                        hue_label="Margin mode",
                    ),
                    "Survival of isolated and cross long holds at the same size.",
                ),
                ReportFigure(
                    "cmp_isolated_vs_cross_loss",
                    partial(
                        plots.plot_survival_lines,
                        size_q,
                        x="leverage",
                        hue="margin_mode",
                        y="loss_mean",
                        ci=None,
                        title=f"Isolated vs cross (25% of equity): wallet lost by {horizon}",
                        xlabel="Leverage [x] (log scale)",
                        ylabel="Wallet lost, mean [%]",
                        hue_label="Margin mode",
                    ),
                    "Mean fraction of the starting wallet lost by the horizon, over all entries "
                    "(liquidated or not); the table gives the 95th percentile.",
                ),
            ),
        )
    )

    # 5. mark vs last
    mvl = cmp.mark_vs_last
    if mvl is not None:
        both, counts, by_day, crash = mvl.table, mvl.by_leverage, mvl.by_day, mvl.crash_days
        top = by_day.head(15)
        sections.append(
            ReportSection(
                heading="5. Mark-price vs last-price liquidation",
                paragraphs=(
                    "The exchange liquidates on the mark price (an index-anchored fair price); "
                    "last-price rules rebuild the same market with mark = last. A 'false "
                    "liquidation' is a hold that last-price rules would have liquidated but "
                    f"that the mark price never liquidated within the horizon. Total: "
                    f"{mvl.n_false:,}, on {len(by_day):,} days ({mvl.n_liquidated_later:,} more "
                    "were liquidated on the mark "
                    "price later, not avoided); "
                    "the busiest days are listed below. On the crash days of March 2020 and May 2021: "
                    + "; ".join(
                        f"{d}: {mvl.day_text(d)} of {crash[d]:,} last-price liquidations"
                        for d in crash
                    )
                    + ". "
                    + _crash_conclusion(mvl),
                ),
                tables=(
                    ReportTable("cmp_mark_vs_last", both, _fmt(both, study.horizon_days)),
                    ReportTable("cmp_false_liquidations_by_leverage", counts, _fmt(counts)),
                    ReportTable("cmp_false_liquidation_days", top, _fmt(top)),
                ),
                figures=(
                    ReportFigure(
                        "cmp_mark_vs_last",
                        partial(
                            plots.plot_bars,
                            counts,
                            x="leverage",
                            y="false_liquidations",
                            hue="side",
                            title="Last-price 'false liquidations' the mark price avoided",
                            xlabel="Leverage [x]",
                            ylabel="Holds liquidated on last price only",
                        ),
                        "Holds that last-price rules would have liquidated while the mark price "
                        "had not, by leverage and side (survival under both rules: table above).",
                    ),
                ),
            )
        )

    else:
        sections.append(
            ReportSection(
                heading="5. Mark-price vs last-price liquidation",
                paragraphs=(
                    "Not shown: this market has no mark-price bars (its last price stands in "
                    "for the mark), so the two rules judge the same prices here. Load mark bars "
                    "to compare them."
                    if study.mark_source == "last"
                    else "Not computed for this study.",
                ),
            )
        )

    # 6. will you owe money?
    gaps = cmp.gaps
    gap_tables = [ReportTable("cmp_owe_money", gaps, _fmt(gaps), caption="Holds without a stop.")]
    sg = cmp.stop_gaps
    if sg is not None:
        gap_tables.append(
            ReportTable(
                "cmp_owe_money_stops",
                sg,
                _fmt(sg),
                caption="Holds with a stop: a stop that sits beyond the liquidation distance "
                "(e.g. 5% at 20x) can be filled on the last price past the bankruptcy price "
                "while the mark price has not yet triggered liquidation.",
            )
        )
    sections.append(
        ReportSection(
            heading="6. Will you owe money?",
            paragraphs=(
                "When the price gaps through the bankruptcy price before the liquidation "
                "engine closes the position, the loss exceeds the margin. On "
                f"{_VENUE_NAMES.get(study.market.exchange, study.market.exchange)} "
                "the insurance fund absorbs that excess and the trader's balance is floored "
                "at zero, so you do not owe money; the table counts those gaps and how much "
                "the fund paid (percent of the initial cash).",
            ),
            tables=tuple(gap_tables),
            figures=(
                ReportFigure(
                    "cmp_owe_money",
                    partial(
                        plots.plot_bars,
                        gaps,
                        x="leverage",
                        y="n_gaps_past_bankruptcy",
                        hue="side",
                        title="Liquidations that gapped past the bankruptcy price",
                        xlabel="Leverage [x]",
                        ylabel="Holds (insurance-fund draws)",
                    ),
                    "Number of holds whose loss exceeded their margin.",
                ),
            ),
        )
    )

    # 7. funding
    ft = cmp.funding
    funding_days = cmp.funding_horizon_days
    if not _has_funding(study):
        sections.append(
            ReportSection(
                heading="7. Funding on long holds",
                paragraphs=(
                    "Not shown: this market has no funding events in its range, so funding on "
                    "and off are the same holds. Load funding history to compare them.",
                ),
            )
        )
        return sections
    sections.append(
        ReportSection(
            heading="7. Funding on long holds",
            paragraphs=(
                f"Long holds for {funding_days:g} days with funding exchanged (as on the "
                "exchange) and without. Longs usually pay funding in bull markets, which "
                "drains isolated margin and moves the liquidation price closer; the effect "
                "grows with leverage and holding time.",
            ),
            tables=(ReportTable("cmp_funding", ft, _fmt(ft, funding_days)),),
            figures=(
                ReportFigure(
                    "cmp_funding",
                    partial(
                        plots.plot_survival_lines,
                        ft,
                        x="leverage",
                        hue="funding",
                        title=f"Long holds: survival after {funding_days:g} days, "
                        "funding on vs off",
                        xlabel="Leverage [x] (log scale)",
                        hue_label="Funding exchanged",
                    ),
                    "Survival of long holds with and without funding payments.",
                ),
            ),
        )
    )
    return sections


#: how the report names a venue in a sentence (plain ASCII: every font renders it)
_VENUE_NAMES = {
    "binanceusdm": "Binance USDS-M",
    "binancecoinm": "Binance COIN-M",
    "okx": "OKX",
    "bybit": "Bybit",
}


def _has_funding(study: SurvivalStudy) -> bool:
    from backtester.market import Market

    m = study.market
    markets = [m] if isinstance(m, Market) else list(m.markets)
    return any(x.funding_ts_ns.size > 0 for x in markets)


def _coin_note(study: SurvivalStudy, table: pd.DataFrame) -> tuple[str, ...]:
    # a coin-margined market: the wallet, PnL, fees and funding are in the coin; say it in USD too
    from backtester.market import Market

    m = study.market
    if not isinstance(m, Market) or m.contract_type != "inverse" or "loss_mean_usd" not in table:
        return ()
    coin = m.settle
    worst = table.loc[table["mean_final_equity_usd"].idxmin()]
    return (
        f"Coin-margined: the wallet, margin, PnL, fees and funding are in {coin}, and the "
        f"starting wallet is {study.initial_cash:.6g} {coin} (about 100 USD at the first bar). "
        "In USD a long gains or loses twice (in the coin, and in the coin's price): the lowest "
        f"mean final equity in USD of any setting is {worst['mean_final_equity_usd'] * 100:.1f}% "
        f"of the starting USD value ({worst['mean_final_equity'] * 100:.1f}% in {coin}). The "
        "table's mean_final_equity_usd and loss_mean_usd give every setting.",
    )


def _loss_sentence(size_q: pd.DataFrame) -> str:
    # the loss side of isolated vs cross, from the numbers, at the highest leverage both modes have
    by = {m: g.set_index("leverage") for m, g in size_q.groupby("margin_mode")}
    if set(by) != {"isolated", "cross"}:
        return ""
    common = sorted(set(by["isolated"].index) & set(by["cross"].index))
    if not common:
        return ""
    lev = common[-1] if len(common) < 3 else common[len(common) // 2]
    iso, cro = by["isolated"].loc[lev], by["cross"].loc[lev]
    return (
        f"The size of the loss: at {lev:g}x isolated holds lost {iso['loss_mean'] * 100:.1f}% of "
        f"the wallet on average (95th percentile {iso['loss_q95'] * 100:.1f}%), cross holds "
        f"{cro['loss_mean'] * 100:.1f}% ({cro['loss_q95'] * 100:.1f}%)."
    )


def _varying_only(df: pd.DataFrame) -> pd.DataFrame:
    # the shown table leaves out settings every row shares (the download keeps them)
    fixed = [
        c
        for c in ("position_size", "margin_mode")
        if c in df and len(df) > 1 and df[c].nunique(dropna=False) == 1
    ]
    return df.drop(columns=fixed)


def _fmt(df: pd.DataFrame, horizon_days: float | None = None) -> pd.DataFrame:
    from backtester.reports.tables import report_display

    return report_display(df, horizon_days=horizon_days)


def _crash_conclusion(mvl: MarkVsLast) -> str:
    # what the crash-day numbers say, from the numbers (not a fixed sentence)
    crash = mvl.crash_days
    total = sum(crash.values())
    false = sum(mvl.false_on(d) for d in crash)
    if total == 0:
        return "None of the holds was liquidated on those days under last-price rules."
    share = false / total
    if share < 0.1:
        return (
            f"On those days the mark price fell almost as far as the last price: "
            f"{false:,} of {total:,} ({share:.0%}) last-price liquidations were avoided, so most "
            "holds were liquidated under either rule."
        )
    return (
        f"On those days the mark price spared {false:,} of {total:,} ({share:.0%}) of the "
        "holds last-price rules liquidated."
    )


def write_survival_report(
    study: SurvivalStudy,
    path: str | Path,
    *,
    comparisons: Comparisons | None = None,
    target: float = 0.9,
    stop_beyond: Any = None,
    venues: pd.DataFrame | None = None,
    scenarios: pd.DataFrame | None = None,
) -> Path:
    """Write the report of ``study`` (and of ``comparisons`` when given) under ``path``.

    ``venues`` (``survival.venues.compare_venues``) adds the same holds on other venues on
    their common crash days.

    ``comparisons`` comes from ``study.comparisons()``; nothing here runs the engine. The
    report opens with ``study.max_safe_leverage(target)``; ``stop_beyond`` is
    ``study.stop_beyond_liquidation()`` (computed by the caller: it uses the rules' numba
    formulas, and the renderer runs nothing). ``path``
    must be new or empty or hold an earlier report (``reports.html.check_output_dir``).
    ``scenarios`` (``survival.paths.scenario_table``) adds the section "History and synthetic
    paths".
    Returns the path of ``index.html``.
    """
    sections = main_sections(
        study,
        fan=None if comparisons is None else comparisons.equity_fan,
        target=target,
        stop_beyond=stop_beyond,
    )
    if scenarios is not None:  # history next to synthetic paths (survival.paths.scenario_table)
        from backtester.survival.report_paths import scenario_sections

        sections.extend(scenario_sections(scenarios, horizon_days=study.horizon_days))
    extra: dict[str, Any] = {}
    if comparisons is not None:
        sections.extend(comparison_sections(study, comparisons))
        extra = comparisons.summary
    if venues is not None and len(venues):
        sections.append(venue_section(venues))
    m = study.market
    first, last = (pd.Timestamp(int(m.ts_ns[k]), tz="UTC") for k in (0, -1))  # no whole index
    info = study.run_info()
    subtitle = (
        f"{study.market_label} on {m.exchange}, {m.timeframe} bars {first:%Y-%m-%d} → "
        f"{last:%Y-%m-%d}; {study.n_settings} settings × {study.n_entries:,} entries; "
        f"horizon {study.horizon_days:g} days; backtester {info['version']}"
    )
    info["comparisons"] = extra
    if scenarios is not None:
        info["synthetic"] = dict(scenarios.attrs)
    return write_report(
        path,
        title=f"Which leverage survives? {study.market_label}"
        + (" (one account)" if study.is_account else ""),
        subtitle=subtitle,
        sections=sections,
        run_info=info,
    )


def _last_note(venues: pd.DataFrame) -> str:
    last = list(dict.fromkeys(venues.loc[venues["mark_source"] == "last", "exchange"]))
    if not last:
        return ""
    return (
        f" On {', '.join(last)} the last price stood in for the mark (no mark bars were stored), "
        "so its holds were judged on the last price: a deeper wick can liquidate where the "
        "mark would not."
    )


def venue_section(venues: pd.DataFrame) -> ReportSection:
    """Return the section comparing the same holds across venues on their common crash days.

    ``venues`` is :func:`backtester.survival.venues.compare_venues` output (draw only).
    """
    from backtester.reports import plots

    names = ", ".join(dict.fromkeys(venues["exchange"]))
    days = ", ".join(dict.fromkeys(venues["day"]))
    no_stop = venues[venues["stop_loss"].isna()] if venues["stop_loss"].isna().any() else venues
    n_entries = int(venues["n_entries"].iloc[0])
    wide = (
        no_stop.assign(
            differs=no_stop.groupby(["day", "side", "leverage"])["n_liquidated_on_day"].transform(
                lambda v: v.nunique() > 1
            )
        )
        .query("differs")
        .drop_duplicates(["day", "side", "leverage"])
    )
    finding = (
        f"The venues liquidated different numbers of the same holds in {len(wide)} of "
        f"{len(no_stop.drop_duplicates(['day', 'side', 'leverage']))} day × side × leverage "
        "cells without a stop: their mark prices, tiers and funding are not the same."
        if len(wide)
        else "On these days every venue liquidated the same holds: their mark prices moved "
        "alike and their rules agreed at these sizes."
    )
    return ReportSection(
        heading=f"Same holds on other venues: {names}",
        paragraphs=(
            f"Crash days of {names}: {days}. On each venue a hold of every "
            f"setting opened at each of the {n_entries} bars before the day and was followed "
            "through its end on that venue's own last and mark prices, tiers and funding; the "
            "share is of the holds still open when the day began. " + finding + _last_note(venues),
        ),
        figures=(
            ReportFigure(
                "venues_crash_days",
                partial(
                    plots.plot_venue_crash_days,
                    no_stop,
                    title="Share of open holds liquidated on the crash day, by venue",
                ),
                "Each bar: holds liquidated during the day / holds open at its start, "
                "without a stop.",
            ),
        ),
        tables=(ReportTable("venues_crash_days", venues, _fmt(venues)),),
    )
