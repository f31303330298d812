"""The universe report page: every symbol's survival side by side, with the pooled row.

Layer: survival, rendering side (reports.html and reports.tables; the numbers come from
``survival.universe``, which computes; nothing here runs the engine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from backtester.reports.html import ReportSection, ReportTable, write_report
from backtester.reports.tables import format_percent_ci, survival_display
from backtester.survival.study import SurvivalStudy
from backtester.survival.universe import POOLED, POOLED_MEANING, universe_table

__all__ = ["universe_display", "universe_sections", "write_universe_report"]

_POOLED_COLUMN = "Pooled [%] (95% CI)"
_NAIVE = "Naive [%] (as if independent)"


def universe_display(table: pd.DataFrame, *, setting_columns: list[str]) -> pd.DataFrame:
    """Return :func:`~backtester.survival.universe.universe_table` side by side, for reading.

    One row per setting: the settings that vary (and the side), each symbol's survival with
    its own interval, the pooled survival with its honest interval, the naive interval that
    would count every symbol's holds as independent, and the pooled counts.
    """
    pooled = table[table["symbol"] == POOLED].reset_index(drop=True)
    shown = survival_display(
        pooled, setting_columns=setting_columns, horizon_days=float(table.attrs["horizon_days"])
    )
    labels = list(shown.columns[: len(setting_columns)])
    keep = [
        c for c, name in zip(labels, setting_columns, strict=True)
        if name == "side" or shown[c].nunique() > 1
    ] or labels[:1]  # fmt: skip
    out = shown[keep].copy()
    for symbol in dict.fromkeys(table["symbol"]):
        if symbol == POOLED:
            continue
        rows = table[table["symbol"] == symbol].reset_index(drop=True)
        out[f"{symbol} [%]"] = [
            format_percent_ci(v, lo, hi)
            for v, lo, hi in zip(rows["survival"], rows["ci_low"], rows["ci_high"], strict=True)
        ]
    out[_POOLED_COLUMN] = shown["Survival [%] (95% CI)"]
    out[_NAIVE] = [
        format_percent_ci(v, lo, hi)
        for v, lo, hi in zip(
            pooled["survival"],
            pooled["ci_low_greenwood"],
            pooled["ci_high_greenwood"],
            strict=True,
        )
    ]
    for column in ("Entries", "Liquidated", "Wallet lost, mean [%]"):
        out[f"{column} (pooled)" if "[" not in column else column.replace(" [", " (pooled) [")] = (
            shown[column]
        )
    return out


def universe_sections(
    studies: Sequence[SurvivalStudy], *, reports: Mapping[str, str] | None = None
) -> list[ReportSection]:
    """Return the side-by-side section (and the links to each symbol's own report)."""
    table = universe_table(studies)
    settings = list(studies[0].setting_columns)
    names = ", ".join(s.market_label for s in studies)
    spans = "; ".join(
        f"{s.market_label} {s.market.index[0]:%Y-%m-%d} → {s.market.index[-1]:%Y-%m-%d} "
        f"({s.n_entries:,} entries)"
        for s in studies
    )
    sections = [
        ReportSection(
            "Side by side: every symbol, and all of them pooled",
            paragraphs=(
                f"One survival study per symbol ({names}), each with its own honest interval, "
                f"then the {POOLED} row. {POOLED_MEANING}. The naive interval beside it counts "
                "every hold of every symbol as independent and is too narrow whenever the "
                "symbols crash together.",
                f"Data: {spans}; {table.attrs['n_calendar_blocks']} calendar blocks of "
                f"{table.attrs['horizon_days']:g} days hold entries.",
            ),
            tables=(
                ReportTable(
                    "universe",
                    table,
                    universe_display(table, setting_columns=settings),
                    caption=str(table.attrs["survival"]),
                ),
            ),
            headline=True,
        )
    ]
    if reports:
        links = pd.DataFrame(
            {"symbol": list(reports), "report": [str(p) for p in reports.values()]}
        )
        sections.append(
            ReportSection(
                "Each symbol's own report",
                paragraphs=("The full report of each study (paths relative to this page).",),
                links=tuple((sym, str(path)) for sym, path in reports.items()),
                tables=(ReportTable("reports", links),),
            )
        )
    return sections


def write_universe_report(
    studies: Sequence[SurvivalStudy],
    path: str | Path,
    *,
    reports: Mapping[str, str] | None = None,
) -> Path:
    """Write the universe page under ``path``; return the path of its ``index.html``.

    ``reports`` maps each symbol to its own report (a path relative to ``path``), listed on the
    page. ``path`` must be new or empty or hold an earlier report.
    """
    first = studies[0]
    subtitle = (
        f"{len(studies)} symbols on {first.market.exchange}, {first.market.timeframe} bars; "
        f"{first.n_settings} settings; horizon {first.horizon_days:g} days; backtester "
        f"{first.run_info()['version']}"
    )
    info = {
        "universe": [s.market_label for s in studies],
        "studies": [s.run_info() for s in studies],
        "pooled_ci_method": POOLED_MEANING,
    }
    return write_report(
        path,
        title=f"Which leverage survives? {len(studies)} symbols side by side",
        subtitle=subtitle,
        sections=universe_sections(studies, reports=reports),
        run_info=info,
    )
