"""The article's comparisons, each a table and a figure, run on a study's market and entries.

Layer: survival (runs more studies through ``survival_study``; figures via reports.plots).

1. leverage ladder 1x … 125x          5. mark-price vs last-price liquidation ("false liquidations")
2. stop-loss vs none                   6. "will you owe money?": gaps past the bankruptcy price
3. position size (cross vs isolated)   7. funding on long holds (funding on vs off)
4. isolated vs cross
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester.errors import BacktesterError, ConfigError
from backtester.reports.html import ReportFigure, ReportSection, ReportTable

if TYPE_CHECKING:  # pragma: no cover
    from backtester.market import Market
    from backtester.survival.study import SurvivalStudy

__all__ = [
    "LADDER",
    "comparison_sections",
    "false_liquidations",
    "funding_effect",
    "insurance_gaps",
    "last_price_liquidations_by_day",
    "last_price_market",
    "leverage_ladder",
    "margin_and_size",
    "mark_vs_last",
    "stop_loss_effect",
]

log = logging.getLogger(__name__)

LADDER = (1, 2, 3, 5, 10, 20, 25, 50, 75, 100, 125)
_SIZES = (0.1, 0.25, 0.5, 1.0)
_SIZE_LEVERAGE = (2, 5, 10, 20, 50, 100)
_FUNDING_LEVERAGE = (1, 2, 3, 5, 10, 20)

_COLS = [
    "survival",
    "ci_low",
    "ci_high",
    "n_entries",
    "n_liquidated",
    "n_stopped",
    "median_time_to_liquidation",
]


def _fixed(study: SurvivalStudy) -> dict[str, Any]:
    return {k: v for k, v in study.run_settings.items() if k not in ("horizon", "entry_every")}


def _period(study: SurvivalStudy, bars: int) -> pd.Timedelta:
    return pd.Timedelta(bars * study.market.timeframe_ns, unit="ns")


def _rerun(study: SurvivalStudy, market: Market | None = None, **kw: Any) -> SurvivalStudy:
    from backtester.survival.run import survival_study

    settings = {
        "horizon": _period(study, study.horizon_bars),
        "entry_every": _period(study, study.entry_every_bars),
        "n_boot": study.n_boot,
        "seed": study.seed,
        **_fixed(study),
    }
    settings.update(kw)
    return survival_study(market if market is not None else study.market, **settings)


def _max_leverage(study: SurvivalStudy) -> float:
    # the ladder stops at the lowest first-tier maximum of the tier tables in force (what the
    # engine accepts over the whole range); the market's snapshot is the fallback
    m = study.market
    try:
        from backtester.rules import rules_timeline

        tables = rules_timeline(m.exchange, m.symbol, m.start, m.end)
        return float(min(float(t.max_leverage[0]) for t in tables))
    except (BacktesterError, IndexError, ValueError):  # no dated tables: use the snapshot
        tiers = m.tiers
        if tiers is not None and "max_leverage" in tiers:
            return float(pd.to_numeric(tiers["max_leverage"]).max())
        return 125.0


def leverage_ladder(study: SurvivalStudy) -> SurvivalStudy:
    """Run long and short holds, no stop, over leverage 1x … 125x (capped by the tier table)."""
    cap = _max_leverage(study)
    return _rerun(
        study,
        side="both",
        leverage=tuple(v for v in LADDER if v <= cap),
        stop_loss=None,
        position_size=1.0,
        margin_mode="isolated",
    )


def stop_loss_effect(study: SurvivalStudy) -> pd.DataFrame:
    """Return each stopped setting next to the same setting without a stop (from ``study``)."""
    s = study.settings
    rows: list[dict[str, Any]] = []
    base_cols = [c for c in s.columns if c != "stop_loss"]
    table = study.table()
    for i in range(study.n_settings):
        if pd.isna(s["stop_loss"].iloc[i]):
            continue
        match = {c: s[c].iloc[i] for c in base_cols}
        j = study.select(stop_loss=None, **match)
        if not j:
            continue
        cmp = study.compare(i, j[0])
        rows.append(
            {
                **match,
                "stop_loss": float(s["stop_loss"].iloc[i]),
                "survival_with_stop": cmp["survival_a"],
                "survival_without_stop": cmp["survival_b"],
                "difference": cmp["difference"],
                "diff_ci_low": cmp["diff_ci_low"],
                "diff_ci_high": cmp["diff_ci_high"],
                "logrank_p": cmp["logrank_p"],
                "n_stopped": int(table["n_stopped"].iloc[i]),
                "n_liquidated_with_stop": int(table["n_liquidated"].iloc[i]),
                "n_liquidated_without_stop": int(table["n_liquidated"].iloc[j[0]]),
                "mean_final_equity_with_stop": float(table["mean_final_equity"].iloc[i]),
                "mean_final_equity_without_stop": float(table["mean_final_equity"].iloc[j[0]]),
            }
        )
    return pd.DataFrame(rows)


def margin_and_size(study: SurvivalStudy) -> SurvivalStudy:
    """Run long holds over margin mode × position size × leverage (no stop)."""
    return _rerun(
        study,
        side="long",
        leverage=_SIZE_LEVERAGE,
        stop_loss=None,
        position_size=_SIZES,
        margin_mode=("isolated", "cross"),
    )


def last_price_market(market: Market) -> Market:
    """Return ``market`` with its last-price bars used as mark (``mark_source="last"``)."""
    detail = market.detail
    if detail is not None:
        detail = last_price_market(detail)
    return dataclasses.replace(
        market,
        mark_open=market.open,
        mark_high=market.high,
        mark_low=market.low,
        mark_close=market.close,
        mark_source="last",
        detail=detail,
    )


def mark_vs_last(study: SurvivalStudy) -> tuple[SurvivalStudy, SurvivalStudy]:
    """Run the no-stop leverage ladder on mark-price and on last-price liquidation rules."""
    levs = tuple(v for v in (5, 10, 20, 50, 75, 100, 125) if v <= _max_leverage(study))
    kw: dict[str, Any] = {
        "side": "both",
        "leverage": levs,
        "stop_loss": None,
        "position_size": 1.0,
        "margin_mode": "isolated",
    }
    market = study.market
    if market.mark_source == "last":
        raise ConfigError(
            "mark_vs_last needs a market with mark-price bars, was mark_source='last'; "
            "load it with bt.load_market(..., mark='mark')"
        )
    return _rerun(study, **kw), _rerun(study, market=last_price_market(market), **kw)


def false_liquidations(mark: SurvivalStudy, last: SurvivalStudy) -> pd.DataFrame:
    """Return one row per hold liquidated on last-price rules but not (yet) on mark-price rules.

    A "false liquidation" is a hold that last-price rules liquidate in bar ``t`` while the
    mark-price rules (the exchange's) had not liquidated it by the end of bar ``t``.
    """
    rows: list[dict[str, Any]] = []
    ts = mark.market.ts_ns
    for s in range(mark.n_settings):
        liq_last = last.reason[s] == 5
        mark_liq_by = (mark.reason[s] == 5) & (mark.exit_idx[s] <= last.exit_idx[s])
        false = np.flatnonzero(liq_last & ~mark_liq_by)
        for k in false:
            rows.append(
                {
                    "side": mark.settings["side"].iloc[s],
                    "leverage": float(mark.settings["leverage"].iloc[s]),
                    "entry_time": pd.Timestamp(ts[mark.entry_idx[k]], tz="UTC"),
                    "last_price_liquidation_time": pd.Timestamp(ts[last.exit_idx[s, k]], tz="UTC"),
                    "mark_price_outcome": _reason_name(int(mark.reason[s, k])),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "side",
            "leverage",
            "entry_time",
            "last_price_liquidation_time",
            "mark_price_outcome",
        ],
    )


def _reason_name(code: int) -> str:
    names = (
        "still open",
        "signal",
        "stop-loss",
        "take-profit",
        "trailing stop",
        "liquidated later",
        "end of data",
        "survived to horizon",
        "ruin",
    )
    return names[code] if 0 <= code < len(names) else str(code)


def insurance_gaps(study: SurvivalStudy) -> pd.DataFrame:
    """Return per setting: liquidations, gaps past the bankruptcy price and insurance draws.

    ``insurance_draw`` is the loss beyond the trader's margin that the insurance fund absorbed
    (the price gapped past the bankruptcy price); sizes are in % of the initial cash.
    """
    rows: list[dict[str, Any]] = []
    for s in range(study.n_settings):
        draw = study.insurance_draw[s]
        gaps = draw > 0
        worst = int(np.argmax(draw)) if gaps.any() else -1
        rows.append(
            {
                **{c: study.settings[c].iloc[s] for c in study.settings.columns},
                "n_liquidated": int((study.reason[s] == 5).sum()),
                "n_stopped": int(study.stopped[s].sum()),
                "n_gaps_past_bankruptcy": int(gaps.sum()),
                "total_insurance_draw_pct": float(draw.sum() / study.initial_cash * 100),
                "max_insurance_draw_pct": float(draw.max() / study.initial_cash * 100)
                if draw.size
                else 0.0,
                "worst_gap_time": pd.Timestamp(
                    study.market.ts_ns[study.exit_idx[s, worst]], tz="UTC"
                )
                if worst >= 0
                else pd.NaT,
                "n_min_equity_below_zero": int((study.min_equity[s] < 0).sum()),
            }
        )
    return pd.DataFrame(rows)


def funding_effect(study: SurvivalStudy) -> SurvivalStudy:
    """Run long holds over a low-leverage ladder with funding on and off (horizon ≥ 90 days)."""
    horizon = max(study.horizon_bars, round(90 / study.bar_days))
    kw = {k: v for k, v in _fixed(study).items() if k != "funding"}
    from backtester.survival.run import survival_study

    return survival_study(
        study.market,
        side="long",
        leverage=_FUNDING_LEVERAGE,
        stop_loss=None,
        horizon=_period(study, horizon),
        entry_every=_period(study, study.entry_every_bars),
        n_boot=study.n_boot,
        seed=study.seed,
        funding=(True, False),
        **kw,
    )


def _pick(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return table[[*keys, *[c for c in _COLS if c in table]]].reset_index(drop=True)


def _fmt(df: pd.DataFrame, horizon_days: float | None = None) -> pd.DataFrame:
    out = df.copy()
    for c in out.columns:
        if c == "median_time_to_liquidation":
            out[c] = [
                f"{v:.1f}"
                if math.isfinite(v)
                else (f"> {horizon_days:g}" if horizon_days else "n/a")
                for v in out[c]
            ]
            continue
        if c in ("survival", "ci_low", "ci_high") or c.startswith("survival_"):
            out[c] = [f"{v * 100:.1f}%" if math.isfinite(v) else "n/a" for v in out[c]]
        elif c in ("difference", "diff_ci_low", "diff_ci_high"):
            out[c] = [f"{v * 100:+.1f} pp" if math.isfinite(v) else "n/a" for v in out[c]]
        elif out[c].dtype.kind == "f":
            out[c] = [f"{v:.4g}" if math.isfinite(v) else "n/a" for v in out[c]]
        elif c == "stop_loss":
            out[c] = ["none" if pd.isna(v) else f"{float(v) * 100:g}%" for v in out[c]]
    return out


def comparison_sections(study: SurvivalStudy) -> tuple[list[ReportSection], dict[str, Any]]:
    """Run every comparison and return report sections plus a summary for ``run.json``."""
    from backtester.reports import plots

    sections: list[ReportSection] = []
    summary: dict[str, Any] = {}
    horizon = f"{study.horizon_days:g} days"

    # 1. leverage ladder
    ladder = leverage_ladder(study)
    lt = _pick(ladder.table(), ["side", "leverage"])
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
                    plots.plot_survival_lines(
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
    summary["leverage_ladder"] = {"settings": int(ladder.n_settings)}

    # 2. stop-loss vs none
    stops = study if study.settings["stop_loss"].notna().any() else None
    if stops is None or not study.settings["stop_loss"].isna().any():
        stops = _rerun(
            study,
            side="long",
            leverage=(2, 5, 10, 20, 50, 100),
            stop_loss=(None, 0.02, 0.05, 0.10),
            position_size=1.0,
            margin_mode="isolated",
        )
    se = stop_loss_effect(stops)
    st_table = _pick(stops.table(), ["side", "leverage", "stop_loss"])
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
            tables=(ReportTable("cmp_stop_loss", se, _fmt(se)),),
            figures=(
                ReportFigure(
                    "cmp_stop_loss",
                    plots.plot_survival_lines(
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
    ms = margin_and_size(study)
    mt = _pick(ms.table(), ["margin_mode", "position_size", "leverage"])
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
                    plots.plot_survival_lines(
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
                "wallet is lost, while isolated loses only the position's margin.",
            ),
            tables=(
                ReportTable("cmp_isolated_vs_cross", size_q, _fmt(size_q, study.horizon_days)),
            ),
            figures=(
                ReportFigure(
                    "cmp_isolated_vs_cross",
                    plots.plot_survival_lines(
                        size_q,
                        x="leverage",
                        hue="margin_mode",
                        title=f"Isolated vs cross (25% of equity): survival after {horizon}",
                        xlabel="Leverage [x] (log scale)",
                        hue_label="Margin mode",
                    ),
                    "Survival of isolated and cross long holds at the same size.",
                ),
            ),
        )
    )

    # 5. mark vs last
    if study.market.mark_source == "mark":
        mk, ls = mark_vs_last(study)
        fl = false_liquidations(mk, ls)
        mtab = _pick(mk.table(), ["side", "leverage"]).assign(price_rule="mark (exchange)")
        ltab = _pick(ls.table(), ["side", "leverage"]).assign(price_rule="last price")
        both = pd.concat([mtab, ltab], ignore_index=True)
        fl_all = fl
        delayed = fl_all[fl_all["mark_price_outcome"] == "liquidated later"]
        fl = fl_all[fl_all["mark_price_outcome"] != "liquidated later"]
        counts = _false_counts(mk, _count(fl, "false_liquidations")).merge(
            _count(delayed, "liquidated_later_on_mark"), on=["side", "leverage"], how="left"
        )
        counts["liquidated_later_on_mark"] = (
            counts["liquidated_later_on_mark"].fillna(0).astype(int)
        )
        by_day = (
            fl.assign(date=fl["last_price_liquidation_time"].dt.strftime("%Y-%m-%d"))
            .groupby("date")
            .agg(false_liquidations=("side", "size"), leverages=("leverage", _levels))
            .sort_values(["false_liquidations", "date"], ascending=[False, True])
            .reset_index()
            if len(fl)
            else pd.DataFrame(columns=["date", "false_liquidations", "leverages"])
        )
        top = by_day.head(15)
        crash = last_price_liquidations_by_day(ls, _CRASH_DAYS)
        summary["false_liquidations"] = {
            "total": len(fl),
            "top_dates": [str(d) for d in top["date"].head(5)],
            "crash_days": {d: _on_day(by_day, d) for d in _CRASH_DAYS},
            "crash_day_last_price_liquidations": crash,
        }
        sections.append(
            ReportSection(
                heading="5. Mark-price vs last-price liquidation",
                paragraphs=(
                    "The exchange liquidates on the mark price (an index-anchored fair price); "
                    "last-price rules rebuild the same market with mark = last. A 'false "
                    "liquidation' is a hold that last-price rules would have liquidated but "
                    f"that the mark price never liquidated within the horizon. Total: {len(fl):,}, "
                    f"on {len(by_day):,} days ({len(delayed):,} more were liquidated on the mark "
                    "price later, not avoided); "
                    "the busiest days are listed below. On the crash days the article names: "
                    + "; ".join(
                        f"{d}: {_on_day(by_day, d)} of {crash[d]:,} last-price liquidations"
                        for d in _CRASH_DAYS
                    )
                    + ". "
                    + _crash_conclusion(by_day, crash),
                ),
                tables=(
                    ReportTable("cmp_mark_vs_last", both, _fmt(both, study.horizon_days)),
                    ReportTable("cmp_false_liquidations_by_leverage", counts, counts),
                    ReportTable("cmp_false_liquidation_days", top, top),
                ),
                figures=(
                    ReportFigure(
                        "cmp_mark_vs_last",
                        plots.plot_bars(
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

    # 6. will you owe money?
    gaps = insurance_gaps(ladder)[
        [
            "side",
            "leverage",
            "n_liquidated",
            "n_gaps_past_bankruptcy",
            "total_insurance_draw_pct",
            "max_insurance_draw_pct",
            "worst_gap_time",
            "n_min_equity_below_zero",
        ]
    ]
    summary["gaps_past_bankruptcy"] = int(gaps["n_gaps_past_bankruptcy"].sum())
    gap_tables = [ReportTable("cmp_owe_money", gaps, _fmt(gaps), caption="Holds without a stop.")]
    if stops.settings["stop_loss"].notna().any():
        sg = insurance_gaps(stops)
        sg = sg[sg["stop_loss"].notna()].drop(columns=["position_size", "margin_mode"])
        summary["gaps_past_bankruptcy_with_stops"] = int(sg["n_gaps_past_bankruptcy"].sum())
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
                "engine closes the position, the loss exceeds the margin. On Binance USDⓈ-M "
                "the insurance fund absorbs that excess and the trader's balance is floored "
                "at zero, so you do not owe money; the table counts those gaps and how much "
                "the fund paid (percent of the initial cash).",
            ),
            tables=tuple(gap_tables),
            figures=(
                ReportFigure(
                    "cmp_owe_money",
                    plots.plot_bars(
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
    fe = funding_effect(study)
    ft = _pick(fe.table(), ["leverage", "funding"])
    paid = pd.DataFrame(
        {
            "leverage": fe.settings["leverage"],
            "funding": fe.settings["funding"],
            "mean_funding_paid_pct": fe.funding_paid.mean(axis=1) / fe.initial_cash * 100,
        }
    )
    ft = ft.merge(paid, on=["leverage", "funding"])
    sections.append(
        ReportSection(
            heading="7. Funding on long holds",
            paragraphs=(
                f"Long holds for {fe.horizon_days:g} days with funding exchanged (as on the "
                "exchange) and without. Longs usually pay funding in bull markets, which "
                "drains isolated margin and moves the liquidation price closer; the effect "
                "grows with leverage and holding time.",
            ),
            tables=(ReportTable("cmp_funding", ft, _fmt(ft, fe.horizon_days)),),
            figures=(
                ReportFigure(
                    "cmp_funding",
                    plots.plot_survival_lines(
                        ft,
                        x="leverage",
                        hue="funding",
                        title=f"Long holds: survival after {fe.horizon_days:g} days, "
                        "funding on vs off",
                        xlabel="Leverage [x] (log scale)",
                        hue_label="Funding exchanged",
                    ),
                    "Survival of long holds with and without funding payments.",
                ),
            ),
        )
    )
    return sections, summary


def _count(rows: pd.DataFrame, name: str) -> pd.DataFrame:
    if not len(rows):
        return pd.DataFrame({"side": [], "leverage": [], name: []})
    return rows.groupby(["side", "leverage"]).size().rename(name).reset_index()


def _false_counts(mark: SurvivalStudy, counts: pd.DataFrame) -> pd.DataFrame:
    # every (side, leverage) of the run, zero where no false liquidation happened
    grid = mark.settings[["side", "leverage"]].drop_duplicates().reset_index(drop=True)
    merged = grid.merge(counts, on=["side", "leverage"], how="left")
    name = counts.columns[-1]
    merged[name] = merged[name].fillna(0).astype(int)
    return merged


_CRASH_DAYS = ("2020-03-12", "2020-03-13", "2021-05-19")


def _false_on(by_day: pd.DataFrame, day: str) -> int:
    hit = by_day[by_day["date"] == day]
    return int(hit["false_liquidations"].iloc[0]) if len(hit) else 0


def _on_day(by_day: pd.DataFrame, day: str) -> str:
    n = _false_on(by_day, day)
    return f"{n} false liquidation{'' if n == 1 else 's'}" if n else "none"


def last_price_liquidations_by_day(last: SurvivalStudy, days: tuple[str, ...]) -> dict[str, int]:
    """Return, for each UTC day ``YYYY-MM-DD``, how many holds last-price rules liquidated then."""
    liq = last.reason == 5
    when = pd.to_datetime(last.market.ts_ns[last.exit_idx[liq]], utc=True).strftime("%Y-%m-%d")
    counts = pd.Series(when).value_counts()
    return {d: int(counts.get(d, 0)) for d in days}


def _crash_conclusion(by_day: pd.DataFrame, crash: dict[str, int]) -> str:
    # what the crash-day numbers say, from the numbers (not a fixed sentence)
    total = sum(crash.values())
    false = sum(_false_on(by_day, d) for d in crash)
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


def _levels(values: pd.Series) -> str:
    return ", ".join(f"{v:g}x" for v in sorted(set(values)))
