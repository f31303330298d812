"""Survival over synthetic paths: rolling entries pooled across paths, path-cluster intervals.

Layer: survival (imports survival.run, survival.study, survival.stats and synthetic; never
reports or cli). ``survival_study(paths, ...)`` with a list of markets lands here: each path is
studied like one market (the same validation and engine call), one path at a time, and the
outcomes are pooled into one :class:`PathsStudy` whose table has the columns of any study.

Intervals: the paths are independent draws, the entries inside one path overlap. The bootstrap
resamples whole paths (clusters) with replacement, so the overlap inside a path is kept and
only the paths' independence is assumed; the exact binomial floor uses the effective sample
size ``n_paths x`` (non-overlapping horizons per path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.errors import ConfigError
from backtester.survival.stats import cluster_bootstrap_km
from backtester.survival.study import SurvivalStudy

if TYPE_CHECKING:  # pragma: no cover
    from backtester.market import Market
    from backtester.marketset import MarketSet
    from backtester.survival.comparisons import Comparisons
    from backtester.synthetic import PathRecipe

__all__ = ["PathsStudy", "bootstrap_study", "paths_study", "scenario_table"]

log = logging.getLogger(__name__)

_POOLED = (
    "exit_idx",
    "reason",
    "final_equity",
    "min_equity",
    "insurance_draw",
    "funding_paid",
    "fees_paid",
    "rejected",
    "liquidated_leg",
)


class PathsStudy(SurvivalStudy):
    """A survival study pooled over independent paths (see :func:`survival_study`).

    Arrays are ``(n_settings, n_paths * n_entries_per_path)``: path 0's entries, then path
    1's, ...; ``path_id`` gives each entry's path. ``market`` is the first path (all paths share
    its clock); ``recipe`` says how the paths were made (None when the caller made them).
    """

    def __init__(
        self,
        *,
        path_id: I64Array,
        n_paths: int,
        recipe: PathRecipe | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path_id = np.asarray(path_id, dtype=np.int64)
        self.n_paths = int(n_paths)
        self.recipe = recipe

    def __repr__(self) -> str:
        return (
            f"PathsStudy({self.market_label} {self.market.timeframe}, {self.n_paths} paths, "
            f"{self.n_settings} settings x {self.n_entries} pooled entries, "
            f"horizon {self.horizon_days:g} days)"
        )

    @property
    def n_entries_per_path(self) -> int:
        """Rolling entries in each path."""
        return self.n_entries // max(self.n_paths, 1)

    @property
    def n_effective(self) -> float:
        """Independent holds: non-overlapping horizons per path times the number of paths."""
        return self.n_entries * min(1.0, self.entry_every_bars / self.horizon_bars)

    def _cluster_boot(self, s: int, times: I64Array) -> F64Array:
        return cluster_bootstrap_km(
            self.durations[s],
            self.events[s],
            self.path_id,
            n_clusters=self.n_paths,
            times=times,
            n_boot=self.n_boot,
            seed=self.seed,
            include=~self.rejected[s],
        )

    @cached_property
    def bootstrap_survival(self) -> F64Array:
        """``(n_settings, n_boot)`` KM survival at the horizon on path-cluster resamples.

        Every setting draws the same paths (one seed), so differences between settings are
        bootstrapped jointly.
        """
        at = np.array([self.horizon_bars], dtype=np.int64)
        out = np.empty((self.n_settings, self.n_boot))
        for s in range(self.n_settings):
            out[s] = self._cluster_boot(s, at)[:, 0]
        return out

    def _curve_boot(self, i: int, ok: BoolArray, times: I64Array) -> F64Array:
        # the curve's interval resamples whole paths (SurvivalStudy.curve does the rest)
        return self._cluster_boot(i, times)

    def table_metadata(self) -> dict[str, Any]:
        """Return what the table's numbers mean; the interval is over independent paths."""
        meta = super().table_metadata()
        pct = f"{self.confidence * 100:g}%"
        made = self.recipe.describe() if self.recipe is not None else "paths given by the caller"
        meta["ci_method"] = (
            f"{pct} interval for survival at the horizon over {self.n_paths:,} independent "
            f"paths with overlapping entries inside each: the wider of (a) a cluster bootstrap "
            f"that resamples whole paths with replacement ({self.n_boot} resamples, seed "
            f"{self.seed}, percentile interval of the pooled Kaplan–Meier estimate; the "
            f"overlap inside a path is kept whole) and (b) an exact Clopper–Pearson interval "
            f"at n_eff = {self.n_effective:.1f} non-overlapping horizons (per path x paths). "
            f"ci_low_greenwood/ci_high_greenwood treat every entry as independent."
        )
        meta["paths"] = made
        return meta

    def outcomes(self) -> pd.DataFrame:
        """Return one row per setting and entry, as ``SurvivalStudy.outcomes`` plus ``path``."""
        frame = super().outcomes()
        frame.insert(
            frame.columns.get_loc("entry_time"), "path", np.tile(self.path_id, self.n_settings)
        )
        return frame

    def run_info(self) -> dict[str, Any]:
        """Return the run's settings, version, data sha256 and how the paths were made."""
        info = super().run_info()
        info["kind"] = "survival_study_paths"
        info["n_paths"] = self.n_paths
        info["paths"] = self.recipe.to_dict() if self.recipe is not None else None
        return info

    def comparisons(self, *, step: Any = None) -> Comparisons:
        """Refused: the comparisons re-run the engine on one market; run them on history."""
        raise ConfigError(
            "comparisons() re-run the engine on one market and are not defined over synthetic "
            "paths; call them on the historical study (survival_study(market, ...))"
        )

    def report(
        self,
        path: str = "reports/survival",
        *,
        comparisons: bool = False,
        target: float = 0.9,
        progress: bool = False,
        venues: pd.DataFrame | None = None,
        scenarios: pd.DataFrame | None = None,
    ) -> str:
        """Write the HTML report of the pooled study (no comparisons; see ``comparisons()``)."""
        if comparisons:
            self.comparisons()
        return super().report(
            path,
            comparisons=False,
            target=target,
            progress=progress,
            venues=venues,
            scenarios=scenarios,
        )


def _same_clock(first: Market | MarketSet, path: Market | MarketSet, k: int) -> None:
    from backtester.market import Market
    from backtester.marketset import MarketSet

    if not isinstance(path, Market | MarketSet) or type(path) is not type(first):
        raise ConfigError(
            f"paths[{k}] must be a {type(first).__name__} like paths[0], was "
            f"{type(path).__name__}; pass a list from bt.bootstrap_paths(...)"
        )
    if (
        path.n_bars != first.n_bars
        or path.timeframe_ns != first.timeframe_ns
        or int(path.ts_ns[0]) != int(first.ts_ns[0])
    ):
        raise ConfigError(
            f"paths must share one clock (bt.bootstrap_paths keeps the source's): paths[{k}] "
            f"has {path.n_bars:,} bars from {path.index[0]}, paths[0] {first.n_bars:,} from "
            f"{first.index[0]}; make them with one length"
        )
    syms = (
        tuple(path.symbols) if isinstance(path, MarketSet) else (path.symbol,),
        tuple(first.symbols) if isinstance(first, MarketSet) else (first.symbol,),
    )
    if syms[0] != syms[1]:
        raise ConfigError(
            f"paths must be of one market: paths[{k}] is {' + '.join(syms[0])}, paths[0] "
            f"{' + '.join(syms[1])}"
        )


def paths_study(
    batches: Iterable[Sequence[Any]],
    *,
    recipe: PathRecipe | None = None,
    n_paths: int | None = None,
    **study: Any,
) -> PathsStudy:
    """Pool ``survival_study(path, **study)`` over every path of ``batches`` into one study.

    ``batches`` yields lists of paths (``Market`` or ``MarketSet`` on one clock); each batch
    is studied path by path and then dropped, so memory holds one batch and the pooled
    outcomes (written in place when ``n_paths``, the number the batches hold, is given). Raises ``ConfigError`` for an empty list, paths of other clocks or markets.
    """
    from backtester.survival.run import survival_study

    first: Any = None
    parts: dict[str, list[Any]] = {name: [] for name in _POOLED}
    pooled: dict[str, Any] = {}  # preallocated when n_paths is known: no concatenation copy
    ambiguous: I64Array | None = None
    rules: dict[tuple[str, ...], dict[str, str]] = {}
    one: SurvivalStudy | None = None
    expected, n_paths = n_paths, 0
    elapsed = 0.0
    t0 = time.perf_counter()
    for batch in batches:
        for path in batch:
            if first is None:
                first = path
            _same_clock(first, path, n_paths)
            one = survival_study(path, **study)
            for name in _POOLED:
                value = getattr(one, name)
                if expected is not None:
                    n_e = value.shape[1]
                    if name not in pooled:
                        pooled[name] = np.empty((value.shape[0], expected * n_e), value.dtype)
                    pooled[name][:, n_paths * n_e : (n_paths + 1) * n_e] = value
                else:  # a copy: the engine's arrays are views of its whole stats block
                    parts[name].append(np.array(value, copy=True))
            ambiguous = one.ambiguous_bars if ambiguous is None else ambiguous + one.ambiguous_bars
            for r in one.rules:
                rules.setdefault(tuple(r.values()), dict(r))
            elapsed += one.elapsed_s
            n_paths += 1
    if expected is not None and n_paths != expected:
        raise ConfigError(f"the batches held {n_paths} paths, not the n_paths={expected} given")
    if one is None:
        raise ConfigError(
            "paths must hold at least one market, was empty; e.g. bt.bootstrap_paths(m, 500)"
        )
    n_e = one.n_entries
    log.info(
        "survival over %d paths: %d settings x %d entries each, engine %.2f s, total %.2f s",
        n_paths,
        one.n_settings,
        n_e,
        elapsed,
        time.perf_counter() - t0,
    )
    return PathsStudy(
        path_id=np.repeat(np.arange(n_paths, dtype=np.int64), n_e),
        n_paths=n_paths,
        recipe=recipe,
        market=first,
        settings=one.settings,
        entry_idx=np.tile(one.entry_idx, n_paths),
        horizon_bars=one.horizon_bars,
        entry_every_bars=one.entry_every_bars,
        ambiguous_bars=ambiguous,
        initial_cash=one.initial_cash,
        run_settings=one.run_settings,
        confidence=one.confidence,
        n_boot=one.n_boot,
        seed=one.seed,
        elapsed_s=elapsed,
        strategy_name=one.strategy_name,
        rules=tuple(rules.values()),
        legs=one.legs,
        **(pooled or {name: np.concatenate(parts[name], axis=1) for name in _POOLED}),
    )


def bootstrap_study(
    market: Market | MarketSet,
    n_paths: int,
    *,
    mean_block: str | pd.Timedelta = "1D",
    method: str = "stationary",
    vol_scale: float = 1.0,
    length: str | pd.Timedelta | int | None = None,
    seed: int = 0,
    n_worst: int = 0,
    batch: int = 50,
    **study: Any,
) -> PathsStudy:
    """Return ``survival_study(bt.bootstrap_paths(market, n_paths, ...), **study)``, streamed.

    The same paths as :func:`backtester.bootstrap_paths` (or :func:`backtester.stress_paths`
    with ``n_worst`` > 0 days replayed) are made ``batch`` at a time and dropped after their
    engine run, so memory holds one batch (not ``n_paths`` markets) and the pooled outcomes.
    ``seed`` seeds both the paths and the interval bootstrap; ``study`` takes the arguments
    of :func:`backtester.survival_study` (side, leverage, horizon, ...).
    """
    from backtester.synthetic import iter_paths

    if "seed" in study:
        raise ConfigError("bootstrap_study takes one seed (paths and intervals); pass it once")
    recipe, batches = iter_paths(
        market,
        n_paths,
        batch=batch,
        stress=n_worst,
        mean_block=mean_block,
        method=method,  # type: ignore[arg-type]
        vol_scale=vol_scale,
        length=length,
        seed=seed,
    )
    return paths_study(batches, recipe=recipe, n_paths=recipe.n_paths, seed=seed, **study)


def scenario_table(
    history: SurvivalStudy, scenarios: Sequence[tuple[str, SurvivalStudy]]
) -> pd.DataFrame:
    """Return survival, ci_low and ci_high per setting: history, then each scenario, side by side.

    Columns ``survival_history, ci_low_history, ci_high_history`` and the same with each
    scenario's name as suffix (``survival_bootstrap``, ...), indexed like ``history.table()``.
    Every scenario must have history's settings in the same order. ``attrs["scenarios"]``
    says how each was made (a sentence), ``attrs["recipes"]`` holds the paths' recipes.
    """
    base = history.table()
    frame = pd.DataFrame(index=base.index)
    for name, study in (("history", history), *scenarios):
        table = study.table()
        if not table.index.equals(base.index):  # NaN (no stop) matches NaN here
            raise ConfigError(
                f"scenario {name!r} has other settings than the history study; run it with the "
                "same side, leverage, stop_loss, ... arguments"
            )
        for col in ("survival", "ci_low", "ci_high"):
            frame[f"{col}_{name}"] = table[col].to_numpy()
    frame.attrs = {
        "recipes": {
            name: study.recipe.to_dict()
            for name, study in scenarios
            if isinstance(study, PathsStudy) and study.recipe is not None
        },
        "scenarios": {
            name: (
                study.recipe.describe()
                if isinstance(study, PathsStudy) and study.recipe is not None
                else "the historical data"
            )
            for name, study in (("history", history), *scenarios)
        },
    }
    return frame
