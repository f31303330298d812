"""A universe study: one survival study per symbol, side by side, with an honest pooled row.

Layer: survival (computes from :class:`~backtester.survival.study.SurvivalStudy` arrays; never
runs the engine and never draws; ``survival.universe_report`` renders).

Pooling the holds of several symbols multiplies the entries, but not the independent evidence:
crypto perpetuals crash together (2020-03-12, 2021-05-19, 2022-11-09, 2025-10-10), so a BTC
hold and an ETH hold opened the same day are nearly one observation. The pooled row therefore
treats **calendar time** as the unit of independence:

* the point estimate is Kaplan–Meier on every opened hold of every symbol (each symbol's holds
  weigh by their number, as in one study of all of them);
* the interval is the wider of (a) a block bootstrap that resamples **calendar blocks** one
  horizon long, each drawn block bringing the holds of **every** symbol entered in it, so
  co-moving symbols are resampled together and never counted as independent, and (b) an exact
  (Clopper–Pearson) binomial interval at the number of non-overlapping horizons of the
  **calendar** covered by the entries (a day with three symbols' entries counts once): the
  pooled interval is never narrower than one symbol's of the same span, however many
  symbols move together. ``ci_low_greenwood``/``ci_high_greenwood`` give the naive interval that
  treats every hold of every symbol as independent, for contrast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtester._typing import F64Array, I64Array
from backtester.engine.enums import ExitReason
from backtester.errors import ConfigError
from backtester.survival.stats import clopper_pearson, km_estimate, km_weighted
from backtester.survival.study import SurvivalStudy, _loss_stats

__all__ = ["POOLED", "POOLED_MEANING", "calendar_blocks", "pooled_table", "universe_table"]

#: the ``symbol`` value of the pooled row in :func:`universe_table`
POOLED = "pooled"

POOLED_MEANING = (
    "pooled: Kaplan–Meier on the holds of every symbol together; its interval is the wider of a "
    "bootstrap that resamples calendar blocks one horizon long, jointly across symbols (the "
    "holds of all symbols entered in a block are drawn together, so symbols that move together "
    "are not counted as independent), and an exact binomial interval at the non-overlapping "
    "horizons of the calendar covered (a period counts once however many symbols were entered "
    "in it)"
)

_LIQUIDATION, _RUIN = ExitReason.LIQUIDATION, ExitReason.RUIN
_STOPS = (ExitReason.STOP_LOSS, ExitReason.TRAILING_STOP)


def _check(studies: Sequence[SurvivalStudy]) -> None:
    if len(studies) < 2:
        raise ConfigError(
            f"a universe needs at least two studies (one per symbol), was {len(studies)}"
        )
    first = studies[0]
    seen: set[str] = set()
    for study in studies:
        name = study.market_label
        if study.is_account:
            raise ConfigError(
                f"study of {name} is an account study; a universe pools plain studies, one per "
                "symbol"
            )
        if name in seen:
            raise ConfigError(f"symbol {name} is in the universe twice; list each symbol once")
        seen.add(name)
        same = (
            study.market.timeframe_ns == first.market.timeframe_ns
            and study.horizon_bars == first.horizon_bars
            and study.entry_every_bars == first.entry_every_bars
            and study.confidence == first.confidence
        )
        if not same:
            raise ConfigError(
                f"studies of {first.market_label} and {name} differ in timeframe, horizon, entry "
                "spacing or confidence; pool studies run with the same options"
            )
        if not study.settings.equals(first.settings):
            raise ConfigError(
                f"studies of {first.market_label} and {name} have different settings; pool "
                "studies of one grid (the same leverage, stops, sides and sizes)"
            )


def calendar_blocks(studies: Sequence[SurvivalStudy]) -> tuple[list[I64Array], int]:
    """Return each study's entries' calendar block (horizon-long, from the earliest entry).

    Returns ``(blocks, n_blocks)``: ``blocks[j][k]`` is the position, among the blocks that hold
    any entry, of entry ``k`` of study ``j``; entries of different symbols in the same stretch of
    calendar share a block.
    """
    horizon_ns = studies[0].horizon_bars * studies[0].market.timeframe_ns
    times = [s.market.ts_ns[s.entry_idx] for s in studies]
    t0 = min(int(t.min()) for t in times if t.size)
    raw = [(t - t0) // horizon_ns for t in times]
    occupied = np.unique(np.concatenate(raw))
    return [np.searchsorted(occupied, r).astype(np.int64) for r in raw], int(occupied.size)


def _calendar_counts(n_blocks: int, *, n_boot: int, seed: int) -> npt.NDArray[np.float32]:
    # (n_boot, n_blocks): how often each calendar block is drawn in each replicate (small
    # integer counts: exact in float32, half the memory, as block_bootstrap_counts)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_blocks, size=(n_boot, n_blocks))
    flat = draws + (np.arange(n_boot) * n_blocks)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_boot * n_blocks).reshape(n_boot, n_blocks)
    return counts.astype(np.float32)


def _pooled_bootstrap(
    durations: I64Array,
    events: np.ndarray[Any, Any],
    blocks: I64Array,
    counts: npt.NDArray[np.float32],
    at: int,
) -> F64Array:
    # holds of one block with the same duration and event weigh alike: fit on the distinct ones
    keys = np.stack([blocks, durations, events.astype(np.int64)], axis=1)
    distinct, multiplicity = np.unique(keys, axis=0, return_counts=True)
    weights = counts[:, distinct[:, 0]] * multiplicity.astype(np.float32)[None, :]
    out: F64Array = km_weighted(distinct[:, 1], distinct[:, 2].astype(bool), weights, at=at)
    return out


def pooled_table(studies: Sequence[SurvivalStudy]) -> pd.DataFrame:
    """Return the pooled survival of a universe: one row per setting, the settings as columns.

    ``studies`` are plain survival studies of different symbols run with the same grid,
    timeframe, horizon, entry spacing and confidence (their markets may cover different
    ranges). Columns: the settings, then ``n_symbols, n_entries, n_liquidated, n_stopped,
    n_censored, survival, ci_low, ci_high, median_time_to_liquidation`` (days), ``n_effective``
    (non-overlapping horizons of the calendar covered), ``ci_low_greenwood, ci_high_greenwood``
    (the naive interval that counts every hold of every symbol as independent), ``loss_mean,
    loss_q95``. ``attrs["ci_method"]`` says how the interval is made (module docstring). The
    bootstrap uses the first study's ``n_boot`` and ``seed``: the same studies give the same
    table.

    Raises
    ------
    ConfigError
        Fewer than two studies, an account study, a symbol twice, or studies whose grid,
        timeframe, horizon, entry spacing or confidence differ.
    """
    _check(studies)
    first = studies[0]
    alpha = 1.0 - first.confidence
    blocks, n_blocks = calendar_blocks(studies)
    counts = _calendar_counts(n_blocks, n_boot=first.n_boot, seed=first.seed)
    times = np.unique(np.concatenate([s.market.ts_ns[s.entry_idx] for s in studies]))
    n_eff = times.size * min(1.0, first.entry_every_bars / first.horizon_bars)
    rows: list[dict[str, Any]] = []
    for s in range(first.n_settings):
        ok = [~study.rejected[s] for study in studies]
        d = np.concatenate([st.durations[s][m] for st, m in zip(studies, ok, strict=True)])
        e = np.concatenate([st.events[s][m] for st, m in zip(studies, ok, strict=True)])
        b = np.concatenate([bl[m] for bl, m in zip(blocks, ok, strict=True)])
        reason = np.concatenate([st.reason[s][m] for st, m in zip(studies, ok, strict=True)])
        loss = np.concatenate([st.loss[s][m] for st, m in zip(studies, ok, strict=True)])
        est = km_estimate(d, e, horizon=first.horizon_bars, alpha=alpha)
        low, high = math.nan, math.nan
        if math.isfinite(est.survival):
            boot = _pooled_bootstrap(d, e, b, counts, first.horizon_bars)
            finite = boot[np.isfinite(boot)]
            lo_b, hi_b = (
                (float(np.quantile(finite, alpha / 2)), float(np.quantile(finite, 1 - alpha / 2)))
                if finite.size
                else (0.0, 1.0)
            )
            lo_c, hi_c = clopper_pearson(est.survival * n_eff, n_eff, alpha=alpha)
            low, high = min(lo_b, lo_c), max(hi_b, hi_c)
        rows.append(
            {
                "n_symbols": len(studies),
                "n_entries": int(d.size),
                "n_liquidated": int((reason == _LIQUIDATION).sum()),
                "n_stopped": int(np.isin(reason, _STOPS).sum()),
                "n_censored": int((~e).sum()),
                "survival": est.survival,
                "ci_low": low,
                "ci_high": high,
                "median_time_to_liquidation": est.median * first.bar_days,
                "n_ruined": int((reason == _RUIN).sum()),
                "n_effective": n_eff,
                "ci_low_greenwood": est.ci_low,
                "ci_high_greenwood": est.ci_high,
                **_loss_stats(loss),
            }
        )
    table = pd.concat([first.settings, pd.DataFrame(rows)], axis=1)
    table.attrs = {
        "survival": first.table_metadata()["survival"],
        "ci_method": POOLED_MEANING,
        "horizon_days": first.horizon_days,
        "n_calendar_blocks": n_blocks,
    }
    return table


def universe_table(studies: Sequence[SurvivalStudy]) -> pd.DataFrame:
    """Return the studies side by side: per setting, one row per symbol, then the pooled row.

    Columns: ``symbol`` (the study's symbol, or :data:`POOLED`), the settings, then the columns
    the rows share: ``n_entries, n_liquidated, n_stopped, n_censored, survival, ci_low,
    ci_high, median_time_to_liquidation, n_ruined, ci_low_greenwood, ci_high_greenwood,
    loss_mean, loss_q95``. Each symbol's row is its own ``table()`` (its own interval).
    """
    pooled = pooled_table(studies)
    columns = [
        c
        for c in studies[0].table().columns
        if c in pooled.columns and c not in studies[0].setting_columns
    ]
    settings = list(studies[0].setting_columns)
    parts: list[pd.DataFrame] = []
    for study in studies:
        flat = study.table().reset_index()
        parts.append(flat[settings + columns].assign(symbol=study.market_label, _order=len(parts)))
    parts.append(pooled[settings + columns].assign(symbol=POOLED, _order=len(parts)))
    stacked = pd.concat(
        [p.assign(_setting=np.arange(len(p))) for p in parts], ignore_index=True
    ).sort_values(["_setting", "_order"], kind="stable")
    out = stacked[["symbol", *settings, *columns]].reset_index(drop=True)
    out.attrs = dict(pooled.attrs)
    return out
