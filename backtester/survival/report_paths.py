"""Report section and terminal table of history next to synthetic scenarios (draw only).

Layer: survival (renders what ``survival.paths.scenario_table`` computed; runs nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import pandas as pd

from backtester.reports.html import ReportFigure, ReportSection, ReportTable
from backtester.reports.tables import format_percent_ci, survival_display
from backtester.survival.study import curve_groups

__all__ = ["scenario_display", "scenario_sections"]


def _scenario_names(frame: pd.DataFrame) -> list[str]:
    return [c.removeprefix("survival_") for c in frame.columns if c.startswith("survival_")]


def scenario_display(frame: pd.DataFrame, *, horizon_days: float) -> pd.DataFrame:
    """Return ``scenario_table``'s frame for reading: the settings, then one column per scenario.

    Each scenario's cell is ``"54.2% (42.5–65.5)"``: survival to the horizon and its interval,
    in percent. Settings that never vary are left out (side stays).
    """
    flat = frame.reset_index()
    settings = [c for c in frame.index.names if c is not None]
    stub = flat[settings].assign(
        n_entries=0,
        n_liquidated=0,
        n_stopped=0,
        n_censored=0,
        survival=float("nan"),
        ci_low=float("nan"),
        ci_high=float("nan"),
        median_time_to_liquidation=float("nan"),
    )
    shown = survival_display(stub, setting_columns=settings, horizon_days=horizon_days)
    keep = [
        label
        for name, label in zip(settings, shown.columns, strict=False)
        if name in ("side", "legs") or shown[label].nunique() > 1
    ]
    out = shown[keep or list(shown.columns[:1])].copy()
    for name in _scenario_names(frame):
        out[f"{name.replace('_', ' ').capitalize()} (95% CI)"] = [
            format_percent_ci(s, lo, hi)
            for s, lo, hi in zip(
                flat[f"survival_{name}"],
                flat[f"ci_low_{name}"],
                flat[f"ci_high_{name}"],
                strict=True,
            )
        ]
    return out.reset_index(drop=True)


def scenario_notes(frame: pd.DataFrame) -> dict[str, str]:
    """Return how each scenario was made: the first in full, the others as what differs.

    ``{"bootstrap": "40 synthetic paths ...", "vol_x1.5": "as bootstrap, with vol_scale 1.5"}``
    from ``scenario_table``'s ``attrs`` (the CLI prints these, the report shows them).
    """
    recipes: dict[str, dict[str, Any]] = frame.attrs.get("recipes", {})
    first = next(iter(recipes), None)
    out: dict[str, str] = {}
    for name, text in frame.attrs.get("scenarios", {}).items():
        if first is not None and name in recipes and name != first:  # only what differs
            differ = [
                f"{k} {v if not isinstance(v, list) else ', '.join(v)}"
                for k, v in recipes[name].items()
                if v != recipes[first][k]
            ]
            text = f"as {first}, with " + "; ".join(differ)
        out[name] = text
    return out


def scenario_sections(
    frame: pd.DataFrame, *, horizon_days: float, timing: Mapping[str, str] | None = None
) -> list[ReportSection]:
    """Return the report section "History and synthetic paths" for ``scenario_table``'s frame."""
    paragraphs = [
        f"Survival to {horizon_days:g} days estimated on the historical data and on synthetic "
        "paths, side by side: the same settings, rolling entries and engine (exchange-exact "
        "liquidation on the mark price) run on each path, pooled over the paths. History is "
        "one path; the synthetic estimates average over many resampled ones, so their "
        "intervals are narrower, but they assume the future resembles resampled pieces of "
        "the past (blocks of bars), which breaks long trends and regimes longer than a block.",
        "Intervals over paths: a cluster bootstrap that resamples whole paths (independent) "
        "and keeps the overlapping entries inside a path together, widened to an exact "
        "binomial interval at the effective number of non-overlapping horizons. They measure "
        "how precisely the paths pin down the bootstrap's answer (Monte Carlo error, shrinking "
        "with more paths), not how far history's one sample may be from the truth: every path "
        "is built from the same history, and the mean block length can move the answer by "
        "more than that interval (longer blocks keep longer trends and volatility regimes).",
    ]
    for name, text in scenario_notes(frame).items():
        extra = f" ({timing[name]})" if timing and name in timing else ""
        paragraphs.append(f"{name.replace('_', ' ').capitalize()}: {text}{extra}")
    display = scenario_display(frame, horizon_days=horizon_days)
    return [
        ReportSection(
            heading="History and synthetic paths",
            paragraphs=tuple(paragraphs),
            tables=(
                ReportTable(
                    "synthetic_paths",
                    frame.reset_index(),
                    display,
                    caption="Survival to the horizon with its 95% interval, per scenario.",
                ),
            ),
            figures=tuple(_figures(frame, horizon_days)),
        )
    ]


def _figures(frame: pd.DataFrame, horizon_days: float) -> list[ReportFigure]:
    # survival by leverage, one line per scenario, for each side (or leg set) without a stop
    flat = frame.reset_index()
    if "leverage" not in flat or flat["leverage"].nunique() < 2:
        return []
    from backtester.reports import plots

    settings = flat[[c for c in frame.index.names if c is not None]]
    out: list[ReportFigure] = []
    for k, (group, rows) in enumerate(curve_groups(settings).items()):
        if len(rows) < 2:
            continue
        long = pd.concat(
            [
                pd.DataFrame(
                    {
                        "leverage": flat["leverage"].iloc[rows].to_numpy(dtype=float),
                        "scenario": name.replace("_", " "),
                        "survival": flat[f"survival_{name}"].iloc[rows].to_numpy(),
                        "ci_low": flat[f"ci_low_{name}"].iloc[rows].to_numpy(),
                        "ci_high": flat[f"ci_high_{name}"].iloc[rows].to_numpy(),
                    }
                )
                for name in _scenario_names(frame)
            ],
            ignore_index=True,
        )
        fig = partial(
            plots.plot_survival_lines,
            long,
            x="leverage",
            hue="scenario",
            title=f"Survival after {horizon_days:g} days: history and synthetic ({group})",
            xlabel="Leverage [x] (log scale)",
            hue_label="Scenario",
        )
        caption = f"{group}, no stop: survival by leverage per scenario, 95% intervals shaded."
        out.append(ReportFigure(f"synthetic_paths_{k}", fig, caption))
    return out
