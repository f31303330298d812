"""The comparisons a leverage decision needs, computed on a study's market and entries (no drawing).

Layer: survival (runs more studies through ``survival_study`` and derives the frames the report
shows; ``survival.report`` draws them and never runs the engine).

1. leverage ladder 1x … 125x          5. mark-price vs last-price liquidation ("false liquidations")
2. stop-loss vs none                   6. "will you owe money?": gaps past the bankruptcy price
3. position size (cross vs isolated)   7. funding on long holds (funding on vs off)
4. isolated vs cross                   + the equity fan (equity if closed after t days)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester._typing import F64Array
from backtester.engine.enums import ExitReason
from backtester.errors import BacktesterError, ConfigError
from backtester.survival.study import curve_groups

if TYPE_CHECKING:  # pragma: no cover
    from backtester.market import Market
    from backtester.survival.study import SurvivalStudy

__all__ = [
    "ACCOUNT_SKIPPED",
    "COMPARISON_STAGES",
    "CRASH_DAYS",
    "LADDER",
    "Comparisons",
    "FanPanel",
    "MarkVsLast",
    "compute",
    "equity_fan",
    "false_liquidations",
    "fan_checkpoints",
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

#: the stages of ``compute`` in order (what a progress bar shows)
COMPARISON_STAGES = (
    "equity fan",
    "leverage ladder",
    "stop-loss vs none",
    "position size, isolated vs cross",
    "mark vs last price",
    "gaps past bankruptcy",
    "funding",
)

LADDER = (1, 2, 3, 5, 10, 20, 25, 50, 75, 100, 125)
_SIZES = (0.1, 0.25, 0.5, 1.0)
_SIZE_LEVERAGE = (2, 5, 10, 20, 50, 100)
_FUNDING_LEVERAGE = (1, 2, 3, 5, 10, 20)
_STOP_LEVERAGE = (2, 5, 10, 20, 50, 100)
_STOPS = (None, 0.02, 0.05, 0.10)

#: well-known crash days (UTC dates): the March 2020 COVID crash and the 19 May 2021 sell-off
CRASH_DAYS = ("2020-03-12", "2020-03-13", "2021-05-19")

_COLS = [
    "survival",
    "ci_low",
    "ci_high",
    "n_entries",
    "n_liquidated",
    "n_stopped",
    "median_time_to_liquidation",
    "loss_mean",
    "loss_q95",
]

_GAP_COLS = [
    "side",
    "leverage",
    "n_liquidated",
    "n_gaps_past_bankruptcy",
    "total_insurance_draw_pct",
    "max_insurance_draw_pct",
    "worst_gap_time",
    "n_min_equity_below_zero",
]

# how the mark-price run ended a hold that last-price rules liquidated
_OUTCOME: dict[int, str] = {
    ExitReason.NONE: "still open",
    ExitReason.SIGNAL: "signal",
    ExitReason.STOP_LOSS: "stop-loss",
    ExitReason.TAKE_PROFIT: "take-profit",
    ExitReason.TRAILING_STOP: "trailing stop",
    ExitReason.LIQUIDATION: "liquidated later",
    ExitReason.END_OF_DATA: "end of data",
    ExitReason.HORIZON: "survived to horizon",
    ExitReason.RUIN: "ruin",
}
LIQUIDATED_LATER = _OUTCOME[ExitReason.LIQUIDATION]


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkVsLast:
    """Comparison 5: the ladder under mark-price and last-price liquidation rules.

    ``table`` has both rules' survival (column ``price_rule``); ``by_leverage`` counts the
    false liquidations (last price only) and the holds the mark price liquidated later, per
    side and leverage; ``by_day`` counts false liquidations per UTC day, busiest first;
    ``crash_days`` maps each of :data:`CRASH_DAYS` to its number of last-price liquidations.
    """

    table: pd.DataFrame
    by_leverage: pd.DataFrame
    by_day: pd.DataFrame
    n_false: int
    n_liquidated_later: int
    crash_days: dict[str, int]

    def false_on(self, day: str) -> int:
        """Return the number of false liquidations on UTC day ``day`` (``YYYY-MM-DD``)."""
        hit = self.by_day[self.by_day["date"] == day]
        return int(hit["false_liquidations"].iloc[0]) if len(hit) else 0

    def day_text(self, day: str) -> str:
        """Return ``"3 false liquidations"`` (or ``"none"``) for UTC day ``day``."""
        n = self.false_on(day)
        return f"{n} false liquidation{'' if n == 1 else 's'}" if n else "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparisons:
    """Everything the report's comparison sections show, computed by :func:`compute`.

    Frames hold raw values (fractions, days, counts); the report only formats and draws them.
    ``equity_fan`` is :func:`equity_fan`'s ``{group: {"10x": (days, equity, liquidated)}}``
    (``FanPanel``); ``summary`` is what ``run.json`` records. For an account
    study only the equity fan is computed: ``skipped`` names every other comparison with the
    reason, and their frames are empty.
    """

    horizon_days: float
    ladder: pd.DataFrame
    stop_effect: pd.DataFrame
    stop_table: pd.DataFrame
    size_table: pd.DataFrame
    mark_vs_last: MarkVsLast | None
    gaps: pd.DataFrame
    stop_gaps: pd.DataFrame | None
    funding: pd.DataFrame
    funding_horizon_days: float
    equity_fan: dict[str, dict[str, FanPanel]]
    summary: dict[str, Any]
    #: comparisons not computed (an account study), each with the reason; their frames are empty
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)


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


def _one_market(study: SurvivalStudy) -> Market:
    # the single-position comparisons need one Market (an account study holds a MarketSet)
    from backtester.market import Market

    if not isinstance(study.market, Market):
        raise ConfigError(
            f"this comparison runs single positions on one market, was an account study of "
            f"{study.market_label}; see the account report's first section instead"
        )
    return study.market


def _max_leverage(study: SurvivalStudy) -> float:
    # the ladder stops at the lowest first-tier maximum of the tier tables in force (what the
    # engine accepts over the whole range); the market's snapshot is the fallback
    m = _one_market(study)
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
    """Run long and short holds, no stop, over leverage 1x … 125x (capped by the tier table).

    Settings ``study`` already holds (same market, horizon and fixed settings) are taken from
    it, not run again.
    """
    cap = _max_leverage(study)
    return _rerun(
        study,
        reuse=(study,),
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
    table = study.table().reset_index()
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


def margin_and_size(
    study: SurvivalStudy, *, reuse: tuple[SurvivalStudy, ...] = ()
) -> SurvivalStudy:
    """Run long holds over margin mode × position size × leverage (no stop).

    Settings that ``study`` or a study in ``reuse`` already holds are taken from it.
    """
    return _rerun(
        study,
        reuse=(study, *reuse),
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


def mark_vs_last(
    study: SurvivalStudy, *, reuse: tuple[SurvivalStudy, ...] = ()
) -> tuple[SurvivalStudy, SurvivalStudy]:
    """Run the no-stop leverage ladder on mark-price and on last-price liquidation rules.

    Mark-price settings that ``study`` or a study in ``reuse`` (the leverage ladder) already
    holds are taken from it; the last-price market is always run.
    """
    levs = tuple(v for v in (5, 10, 20, 50, 75, 100, 125) if v <= _max_leverage(study))
    kw: dict[str, Any] = {
        "side": "both",
        "leverage": levs,
        "stop_loss": None,
        "position_size": 1.0,
        "margin_mode": "isolated",
    }
    market = _one_market(study)
    if market.mark_source == "last":
        raise ConfigError(
            "mark_vs_last needs a market with mark-price bars, was mark_source='last'; "
            "load it with bt.load_market(..., mark='mark')"
        )
    return (
        _rerun(study, reuse=(study, *reuse), **kw),
        _rerun(study, market=last_price_market(market), **kw),
    )


def false_liquidations(mark: SurvivalStudy, last: SurvivalStudy) -> pd.DataFrame:
    """Return one row per hold liquidated on last-price rules but not (yet) on mark-price rules.

    A "false liquidation" is a hold that last-price rules liquidate in bar ``t`` while the
    mark-price rules (the exchange's) had not liquidated it by the end of bar ``t``.
    """
    columns = ["side", "leverage", "entry_time", "last_price_liquidation_time"]
    columns.append("mark_price_outcome")
    ts = mark.market.ts_ns
    liq_last = last.reason == ExitReason.LIQUIDATION
    mark_liq_by = (mark.reason == ExitReason.LIQUIDATION) & (mark.exit_idx <= last.exit_idx)
    s_idx, k_idx = np.nonzero(liq_last & ~mark_liq_by)  # setting by setting, entries in order
    if s_idx.size == 0:
        return pd.DataFrame([], columns=columns)
    return pd.DataFrame(
        {
            "side": mark.settings["side"].to_numpy(dtype=object)[s_idx],
            "leverage": mark.settings["leverage"].to_numpy(dtype=np.float64)[s_idx],
            "entry_time": pd.to_datetime(ts[mark.entry_idx[k_idx]], utc=True),
            "last_price_liquidation_time": pd.to_datetime(
                ts[last.exit_idx[s_idx, k_idx]], utc=True
            ),
            "mark_price_outcome": [_reason_name(int(r)) for r in mark.reason[s_idx, k_idx]],
        },
        columns=columns,
    )


def _reason_name(code: int) -> str:
    return _OUTCOME.get(code, str(code))


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
                "n_liquidated": int((study.reason[s] == ExitReason.LIQUIDATION).sum()),
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
    """Run long holds over a low-leverage ladder with funding on and off.

    The horizon is the study's, raised to 90 days (funding needs time to drain a margin) but
    never past the length of the data.
    """
    horizon = min(max(study.horizon_bars, round(90 / study.bar_days)), study.market.n_bars)
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


def fan_checkpoints(horizon_bars: int, n_points: int = 10) -> list[int]:
    """Return up to ``n_points`` evenly spaced horizons in bars, ending at ``horizon_bars``."""
    points = np.unique(np.linspace(0, horizon_bars, n_points + 1).round().astype(int)[1:])
    return [int(p) for p in points if p >= 1]


#: one panel of the equity fan: days since entry ``(k + 1,)``, equity as a fraction of the
#: initial cash ``(k + 1, n_opened)`` and the share of the opened entries liquidated by each day
#: ``(k + 1,)``; all three start at day 0 (equity 1, nothing liquidated)
FanPanel = tuple[F64Array, F64Array, F64Array]


def equity_fan(study: SurvivalStudy) -> dict[str, dict[str, FanPanel]]:
    """Return the equity if closed after t days, from the engine (the engine is the truth).

    Returns ``{group: {"10x": (days, equity, liquidated)}}`` (``FanPanel``): one group per
    side of a plain study (``"long"``, ``"short"``) or per leg set and margin mode of an
    account study (``"BTC +0.5 / ETH +0.5, isolated"``), the groups of ``curve_groups``, each
    with up to six of the study's leverages spread over its ladder (the same in every group),
    without a stop. Entries that could not be opened are left out. Plain holds: one engine
    run with checkpoints (the equity at each of ``fan_checkpoints``, exactly what a run with
    that horizon reports as its final equity); an account study: one run per checkpoint.
    """
    from backtester.survival.run import survival_study

    groups = curve_groups(study.settings)
    first = next(iter(groups.values()))
    idx = first
    if len(idx) > 6:  # keep the fan readable: up to six leverages spread over the ladder
        pick = np.unique(np.linspace(0, len(idx) - 1, 6).round().astype(int))
        idx = [idx[k] for k in pick]
    levs = [float(study.settings["leverage"].iloc[i]) for i in idx]
    row = study.settings.iloc[first[0]]
    who: dict[str, Any]
    if study.legs is not None:  # an account: every group's leg set and margin mode
        heads = [g[0] for g in groups.values() if g]
        who = {
            "legs": list({study.legs[i]: dict(study.legs[i]) for i in heads}.values()),
            "margin_mode": tuple(
                dict.fromkeys(str(study.settings["margin_mode"].iloc[i]) for i in heads)
            ),
        }
    else:
        sides = list(groups)
        who = {
            "side": sides[0] if len(sides) == 1 else "both",
            "margin_mode": str(row.get("margin_mode", "isolated")),
        }
    checkpoints = fan_checkpoints(study.horizon_bars)
    days = np.concatenate(([0.0], np.array(checkpoints) * study.bar_days))
    common: dict[str, Any] = {
        **who,
        "leverage": levs,
        "stop_loss": None,
        "position_size": float(row.get("position_size", 1.0)),
        "entry_every": _period(study, study.entry_every_bars),
        "n_boot": 1,
        **_fixed(study),
    }
    if study.legs is None:
        sub = survival_study(
            study.market,
            horizon=_period(study, checkpoints[-1]),
            checkpoints=checkpoints,
            **common,
        )
        assert sub.checkpoint_equity is not None  # asked for above
        equity = sub.checkpoint_equity.transpose(0, 2, 1) / sub.initial_cash
    else:
        runs = [
            survival_study(study.market, horizon=_period(study, bars), **common)
            for bars in checkpoints
        ]
        sub = runs[-1]
        equity = np.stack([r.final_equity for r in runs], axis=1) / sub.initial_cash
    # the last run followed every hold to the horizon: its liquidation times hold for all t
    ck = np.asarray(checkpoints)
    out: dict[str, dict[str, FanPanel]] = {}
    for name, rows in curve_groups(sub.settings).items():
        if name not in groups:
            continue  # a leg set x margin mode the study does not have
        panels: dict[str, FanPanel] = {}
        for s in rows:
            opened = ~sub.rejected[s]
            hit = sub.events[s] & opened
            n = max(int(opened.sum()), 1)
            liquidated = (sub.durations[s][hit][None, :] <= ck[:, None]).sum(axis=1) / n
            panels[f"{float(sub.settings['leverage'].iloc[s]):g}x"] = (
                days,
                np.vstack([np.ones((1, int(opened.sum()))), equity[s][:, opened]]),
                np.concatenate(([0.0], liquidated)),
            )
        out[name] = panels
    return {name: out[name] for name in groups if name in out}


def _mark_vs_last_frames(mk: SurvivalStudy, ls: SurvivalStudy) -> MarkVsLast:
    fl_all = false_liquidations(mk, ls)
    mtab = _pick(mk.table().reset_index(), ["side", "leverage"]).assign(
        price_rule="mark (exchange)"
    )
    ltab = _pick(ls.table().reset_index(), ["side", "leverage"]).assign(price_rule="last price")
    both = pd.concat([mtab, ltab], ignore_index=True)
    delayed = fl_all[fl_all["mark_price_outcome"] == LIQUIDATED_LATER]
    fl = fl_all[fl_all["mark_price_outcome"] != LIQUIDATED_LATER]
    counts = _false_counts(mk, _count(fl, "false_liquidations")).merge(
        _count(delayed, "liquidated_later_on_mark"), on=["side", "leverage"], how="left"
    )
    counts["liquidated_later_on_mark"] = counts["liquidated_later_on_mark"].fillna(0).astype(int)
    by_day = (
        fl.assign(date=fl["last_price_liquidation_time"].dt.strftime("%Y-%m-%d"))
        .groupby("date")
        .agg(false_liquidations=("side", "size"), leverages=("leverage", _levels))
        .sort_values(["false_liquidations", "date"], ascending=[False, True])
        .reset_index()
        if len(fl)
        else pd.DataFrame(columns=["date", "false_liquidations", "leverages"])
    )
    return MarkVsLast(
        table=both,
        by_leverage=counts,
        by_day=by_day,
        n_false=len(fl),
        n_liquidated_later=len(delayed),
        crash_days=last_price_liquidations_by_day(ls, CRASH_DAYS),
    )


def compute(study: SurvivalStudy, *, step: Callable[[str], None] | None = None) -> Comparisons:
    """Run every comparison (and the equity fan) on ``study``'s market and entries.

    This is where the report's extra engine runs happen; ``study.report(path)`` calls it and
    passes the result to the renderer, which only draws it. ``step`` is called with the name
    of each stage before it runs (``COMPARISON_STAGES``; a progress bar).

    Raises
    ------
    ConfigError
        If ``study`` follows a strategy (the comparisons are about plain holds).
    """
    if study.strategy_name is not None:
        raise ConfigError(
            f"the comparisons are about plain holds, was a study of strategy "
            f"{study.strategy_name!r}; write its report with comparisons=False"
        )
    tick = step or (lambda _name: None)
    tick(COMPARISON_STAGES[0])
    fan = equity_fan(study)
    if study.is_account:
        return _account_comparisons(study, fan)
    summary: dict[str, Any] = {}

    # 1. leverage ladder
    tick(COMPARISON_STAGES[1])
    ladder = leverage_ladder(study)
    summary["leverage_ladder"] = {"settings": int(ladder.n_settings)}

    tick(COMPARISON_STAGES[2])
    # 2. stop-loss vs none: the study's own stops when it has stopped and unstopped settings
    stops = study if study.settings["stop_loss"].notna().any() else None
    if stops is None or not study.settings["stop_loss"].isna().any():
        stops = _rerun(
            study,
            reuse=(study, ladder),
            side="long",
            leverage=_STOP_LEVERAGE,
            stop_loss=_STOPS,
            position_size=1.0,
            margin_mode="isolated",
        )

    tick(COMPARISON_STAGES[3])
    # 3 + 4. position size and isolated vs cross
    ms = margin_and_size(study, reuse=(ladder,))

    tick(COMPARISON_STAGES[4])
    # 5. mark vs last
    mvl = None
    if study.mark_source == "mark":
        mvl = _mark_vs_last_frames(*mark_vs_last(study, reuse=(ladder,)))
        summary["false_liquidations"] = {
            "total": mvl.n_false,
            "top_dates": [str(d) for d in mvl.by_day["date"].head(5)],
            "crash_days": {d: mvl.day_text(d) for d in CRASH_DAYS},
            "crash_day_last_price_liquidations": mvl.crash_days,
        }

    tick(COMPARISON_STAGES[5])
    # 6. will you owe money?
    gaps = insurance_gaps(ladder)[_GAP_COLS]
    summary["gaps_past_bankruptcy"] = int(gaps["n_gaps_past_bankruptcy"].sum())
    stop_gaps = None
    if stops.settings["stop_loss"].notna().any():
        sg = insurance_gaps(stops)
        stop_gaps = sg[sg["stop_loss"].notna()].drop(columns=["position_size", "margin_mode"])
        summary["gaps_past_bankruptcy_with_stops"] = int(stop_gaps["n_gaps_past_bankruptcy"].sum())

    tick(COMPARISON_STAGES[6])
    # 7. funding
    fe = funding_effect(study)
    paid = pd.DataFrame(
        {
            "leverage": fe.settings["leverage"],
            "funding": fe.settings["funding"],
            "mean_funding_paid_pct": fe.funding_paid.mean(axis=1) / fe.initial_cash * 100,
        }
    )
    funding = _pick(fe.table().reset_index(), ["leverage", "funding"]).merge(
        paid, on=["leverage", "funding"]
    )
    return Comparisons(
        horizon_days=study.horizon_days,
        ladder=_pick(ladder.table().reset_index(), ["side", "leverage"]),
        stop_effect=stop_loss_effect(stops),
        stop_table=_pick(stops.table().reset_index(), ["side", "leverage", "stop_loss"]),
        size_table=_pick(ms.table().reset_index(), ["margin_mode", "position_size", "leverage"]),
        mark_vs_last=mvl,
        gaps=gaps,
        stop_gaps=stop_gaps,
        funding=funding,
        funding_horizon_days=fe.horizon_days,
        equity_fan=fan,
        summary=summary,
    )


#: the single-position comparisons an account study does not run, and why
ACCOUNT_SKIPPED = {
    "1. leverage ladder": "this study's own leverages are shown per leg set and margin mode in "
    "the first section; pass more leverages to the study for a longer ladder",
    "2. stop-loss vs none": "compares single positions; pass stop_loss=(None, 0.05) to the "
    "account study to see each leg's stop in its table",
    "3. position size": "reruns single long holds; pass position_size=(...) to the account study",
    "4. isolated vs cross": "shown in the first section, for the account's own legs",
    "5. mark-price vs last-price liquidation": "rebuilds one market with mark = last; not done "
    "for the legs of a MarketSet yet",
    "6. will you owe money?": "counts gaps of single positions; the account's insurance-fund "
    "draws are n_insurance_draws in the survival table",
    "7. funding on long holds": "reruns single long holds with funding on and off; pass "
    "funding=(True, False) to the account study",
}


def _account_comparisons(study: SurvivalStudy, fan: dict[str, dict[str, FanPanel]]) -> Comparisons:
    empty = pd.DataFrame()
    return Comparisons(
        horizon_days=study.horizon_days,
        ladder=empty,
        stop_effect=empty,
        stop_table=empty,
        size_table=empty,
        mark_vs_last=None,
        gaps=empty,
        stop_gaps=None,
        funding=empty,
        funding_horizon_days=study.horizon_days,
        equity_fan=fan,
        summary={"skipped_for_account": sorted(ACCOUNT_SKIPPED)},
        skipped=dict(ACCOUNT_SKIPPED),
    )


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


def last_price_liquidations_by_day(last: SurvivalStudy, days: tuple[str, ...]) -> dict[str, int]:
    """Return, for each UTC day ``YYYY-MM-DD``, how many holds last-price rules liquidated then."""
    liq = last.reason == ExitReason.LIQUIDATION
    day_ns = 86_400 * 10**9
    when = last.market.ts_ns[last.exit_idx[liq]] // day_ns  # UTC day numbers, no strings
    return {
        d: int(np.count_nonzero(when == pd.Timestamp(d, tz="UTC").value // day_ns)) for d in days
    }


def _levels(values: pd.Series) -> str:
    return ", ".join(f"{v:g}x" for v in sorted(set(values)))
