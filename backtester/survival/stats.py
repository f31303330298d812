"""Survival statistics on arrays: Kaplan–Meier, honest intervals for overlapping entries, log-rank.

Layer: survival (arrays in, arrays out; no frames, no engine). Durations are integer bar counts
(time from the entry bar's open to the end of the bar in which the event happened), events are
booleans (True = liquidated or ruined, False = right-censored). The Kaplan–Meier estimate with
its Greenwood interval (``km_estimate``) and the log-rank test (``logrank_p``) repeat lifelines'
arithmetic step by step in NumPy, so they return lifelines' numbers bit for bit without importing
it (about 0.8 s); the exact binomial interval calls the ``scipy.special`` function that
``scipy.stats.beta.ppf`` calls, without importing ``scipy.stats`` (tests/unit/test_survival_stats.py
checks all three against lifelines and scipy.stats). The bootstrap needs thousands of fits: the
vectorized NumPy estimator ``km_weighted`` (tested against lifelines) is the reference of the
compiled one the study uses (``survival._stats_nb``, same numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.errors import ConfigError, ShapeError

__all__ = [
    "KMEstimate",
    "block_bootstrap_counts",
    "clopper_pearson",
    "clopper_pearson_many",
    "cluster_bootstrap_km",
    "km_curve",
    "km_estimate",
    "km_weighted",
    "km_weighted_curve",
    "logrank_p",
]


@dataclass(frozen=True, slots=True)
class KMEstimate:
    """Kaplan–Meier survival at a horizon with its Greenwood (log-log) interval and median."""

    survival: float
    ci_low: float
    ci_high: float
    median: float  # NaN when the curve stays above 0.5 up to the horizon


def _check_pair(durations: I64Array, events: BoolArray) -> tuple[I64Array, BoolArray]:
    d = np.asarray(durations)
    e = np.asarray(events, dtype=bool)
    if d.ndim != 1 or e.shape != d.shape:
        raise ShapeError(
            f"durations and events must be 1-D arrays of one length, were {d.shape} and {e.shape}"
        )
    if d.size and (not np.all(np.isfinite(d)) or d.min() < 0):
        raise ConfigError("durations must be finite and >= 0; pass bar counts since entry")
    return d.astype(np.int64), e


def km_estimate(
    durations: I64Array, events: BoolArray, *, horizon: int, alpha: float = 0.05
) -> KMEstimate:
    """Return the Kaplan–Meier estimate at ``horizon`` (same unit as durations).

    The interval is the exponential Greenwood (log(-log)) interval, which assumes independent
    subjects; overlapping rolling entries are not, see ``block_bootstrap_counts``. The numbers
    are lifelines' ``KaplanMeierFitter(alpha=alpha)`` ones bit for bit: the same operations on
    the same event table (``S = exp(cumsum(log(n - d) - log(n)))``, the variance
    ``cumsum(d / (n (n - d)))`` with 0 where ``n = d``, the bounds
    ``exp(-exp(log(-log S) ∓ z·sqrt(var) / log S))`` with 1 where undefined, the median the
    first time with ``S <= 0.5``).
    """
    d, e = _check_pair(durations, events)
    if d.size == 0:
        return KMEstimate(math.nan, math.nan, math.nan, math.nan)
    times, surv, low, high = _km_table(d, e, alpha)
    k = int(np.searchsorted(times, horizon, side="right")) - 1
    below = np.flatnonzero(surv <= 0.5)
    median = float(times[below[0]]) if surv[-1] <= 0.5 and below.size else math.inf
    if not math.isfinite(median) or median > horizon:
        median = math.nan
    return KMEstimate(float(surv[k]), float(low[k]), float(high[k]), median)


def _km_table(
    d: I64Array, e: BoolArray, alpha: float
) -> tuple[F64Array, F64Array, F64Array, F64Array]:
    # lifelines' timeline (0 = the births, then every distinct duration), survival and bounds
    times, inverse = np.unique(d, return_inverse=True)
    removed = np.bincount(inverse, minlength=times.size)
    observed = np.bincount(inverse, weights=e, minlength=times.size).astype(np.int64)
    if times[0] != 0:  # lifelines' row of the births at time 0
        times = np.concatenate(([0], times))
        removed = np.concatenate(([0], removed))
        observed = np.concatenate(([0], observed))
    at_risk = d.size - np.concatenate(([0], np.cumsum(removed)[:-1]))
    n, dead = at_risk.astype(np.float64), observed.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.cumsum(np.log(n - dead) - np.log(n))
        var = dead / (n * (n - dead))
        var[var == np.inf] = 0.0
        var = np.cumsum(var)
        surv = np.exp(log_s)
        z = _normal_quantile(1 - alpha / 2)
        v = np.log(surv)
        low = np.exp(-np.exp(np.log(-v) - z * np.sqrt(var) / v))
        high = np.exp(-np.exp(np.log(-v) + z * np.sqrt(var) / v))
    low[np.isnan(low)] = 1.0
    high[np.isnan(high)] = 1.0
    return times.astype(np.float64), surv, low, high


def _normal_quantile(p: float) -> float:
    # scipy.stats.norm.ppf(p) is scipy.special.ndtri(p); scipy.special alone is light
    from scipy.special import ndtri

    return float(ndtri(p))


def km_curve(durations: I64Array, events: BoolArray) -> tuple[I64Array, F64Array]:
    """Return the Kaplan–Meier step curve as (times, survival), starting at (0, 1.0).

    ``survival[k]`` holds from ``times[k]`` (inclusive) until ``times[k + 1]``.
    """
    d, e = _check_pair(durations, events)
    times = np.unique(d[e])
    if times.size == 0:
        return np.zeros(1, dtype=np.int64), np.ones(1)
    order = np.sort(d)
    at_risk = d.size - np.searchsorted(order, times, side="left")
    deaths = np.bincount(np.searchsorted(times, d[e]), minlength=times.size)
    surv = np.cumprod(1.0 - deaths / at_risk)
    return np.concatenate(([0], times)).astype(np.int64), np.concatenate(([1.0], surv))


def km_weighted(
    durations: I64Array,
    events: BoolArray,
    weights: F64Array | npt.NDArray[np.float32],
    *,
    at: int | None = None,
) -> F64Array:
    """Return Kaplan–Meier survival at time ``at`` for each row of case weights.

    Vectorized over replicates: ``weights`` is ``(n_rep, n)`` (bootstrap counts), the result is
    ``(n_rep,)``. Row ``r`` equals the estimate on a data set where subject ``i`` appears
    ``weights[r, i]`` times. ``at=None`` means after the last duration. Rows with no subjects are NaN.
    """
    times, factor, total = _km_factors(durations, events, weights, at=at)
    surv = np.prod(factor, axis=0) if times.size else np.ones(total.size)
    out: F64Array = np.where(total > 0, surv, np.nan)
    return out


def km_weighted_curve(
    durations: I64Array,
    events: BoolArray,
    weights: F64Array | npt.NDArray[np.float32],
    *,
    times: I64Array,
) -> F64Array:
    """Return Kaplan–Meier survival at each of ``times`` for each row of case weights.

    ``(n_rep, len(times))``: column ``k`` equals ``km_weighted(..., at=times[k])``, computed in
    one pass (a cumulative product over the event times). Rows with no subjects are NaN.
    """
    t = np.asarray(times, dtype=np.int64)
    ev_times, factor, total = _km_factors(durations, events, weights, at=None)
    if ev_times.size == 0:
        out: F64Array = np.where(total[:, None] > 0, np.ones((total.size, t.size)), np.nan)
        return out
    cum = np.concatenate((np.ones((1, total.size)), np.cumprod(factor, axis=0)), axis=0)
    curve = cum[np.searchsorted(ev_times, t, side="right")].T
    res: F64Array = np.where(total[:, None] > 0, curve, np.nan)
    return res


def _km_factors(
    durations: I64Array,
    events: BoolArray,
    weights: F64Array | npt.NDArray[np.float32],
    *,
    at: int | None,
) -> tuple[I64Array, F64Array, F64Array]:
    # (event times <= at, (n_times, n_rep) factors 1 - deaths / at_risk, (n_rep,) total weight)
    d, e = _check_pair(durations, events)
    w = np.atleast_2d(np.asarray(weights))
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64)
    if w.shape[1] != d.size:
        raise ShapeError(f"weights must have {d.size} columns (one per subject), had {w.shape[1]}")
    if d.size == 0:
        return np.zeros(0, dtype=np.int64), np.ones((0, w.shape[0])), np.zeros(w.shape[0])
    total = w.sum(axis=1, dtype=np.float64)
    order = np.argsort(d, kind="stable")
    d, e = d[order], e[order]
    starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
    group_time = d[starts]
    group_event = np.add.reduceat(e.astype(np.int64), starts) > 0
    keep = group_event & (group_time <= (at if at is not None else group_time.max()))
    if not keep.any():
        return np.zeros(0, dtype=np.int64), np.ones((0, w.shape[0])), total
    # subjects along axis 0 (rows of replicates): reductions over subjects stay contiguous
    ws = w.T[order]
    kept_starts = starts[keep]
    # at risk at a kept time = total weight minus the weight of subjects that ended earlier
    bounds = np.unique(np.r_[0, kept_starts])
    before = np.cumsum(np.add.reduceat(ws, bounds, axis=0, dtype=np.float64), axis=0)
    before = np.concatenate((np.zeros((1, w.shape[0])), before[:-1]), axis=0)
    at_risk = total[None, :] - before[np.searchsorted(bounds, kept_starts)]
    # deaths at a kept time = weight of the event subjects in that group
    group_of = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, d.size]))
    ev_pos = np.flatnonzero(e & keep[group_of])
    ev_group = group_of[ev_pos]
    first_of_group = np.flatnonzero(np.r_[True, ev_group[1:] != ev_group[:-1]])
    deaths = np.add.reduceat(ws[ev_pos], first_of_group, axis=0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - deaths / at_risk, 1.0)
    return group_time[keep].astype(np.int64), np.clip(factor, 0.0, 1.0), total


def block_bootstrap_counts(
    n: int, block_len: int, *, n_boot: int, seed: int
) -> npt.NDArray[np.float32]:
    """Return ``(n_boot, n)`` moving-block bootstrap counts over time-ordered subjects.

    Each replicate concatenates ``ceil(n / block_len)`` blocks of ``block_len`` consecutive
    subjects with uniform random starts in ``[0, n - block_len]``, truncated to ``n`` subjects.
    With blocks as long as the horizon, entries whose holds overlap are resampled together, so
    the spread reflects their dependence. The generator is seeded: same inputs, same counts.
    """
    if n <= 0:
        return np.zeros((n_boot, 0), dtype=np.float32)
    if block_len < 1:
        raise ConfigError(f"block_len must be >= 1, was {block_len}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, was {n_boot}; use 1000 for a 95% interval")
    b = min(block_len, n)
    n_blocks = -(-n // b)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - b + 1, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(n_boot, -1)[:, :n]
    flat = idx + (np.arange(n_boot) * n)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n)
    return counts.astype(np.float32)  # small integer counts: exact, half the memory traffic


def cluster_bootstrap_km(
    durations: I64Array,
    events: BoolArray,
    clusters: I64Array,
    *,
    n_clusters: int,
    times: I64Array,
    n_boot: int,
    seed: int,
    include: BoolArray | None = None,
) -> F64Array:
    """Return ``(n_boot, len(times))`` Kaplan–Meier survival on cluster-bootstrap resamples.

    Each replicate draws ``n_clusters`` clusters (independent synthetic paths) with replacement
    and keeps every subject of a drawn cluster, so the dependence of overlapping subjects
    inside a cluster is kept whole and only the clusters' independence is assumed. Column
    ``k`` equals ``km_weighted`` at ``times[k]`` with each subject weighted by its cluster's
    draw count, computed from per-cluster at-risk and death counts on the duration grid
    (memory ``n_clusters x max duration``, not ``n_boot x n_subjects``). ``include`` leaves
    subjects out (rejected entries). The generator is seeded: same inputs, same values.
    """
    d, e = _check_pair(durations, events)
    c = np.asarray(clusters, dtype=np.int64)
    if c.shape != d.shape:
        raise ShapeError(f"clusters must have the shape of durations {d.shape}, was {c.shape}")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be >= 1, was {n_boot}; use 1000 for a 95% interval")
    if n_clusters < 1 or (c.size and (c.min() < 0 or c.max() >= n_clusters)):
        raise ConfigError(f"clusters must be in [0, {n_clusters - 1}], were outside it")
    t = np.asarray(times, dtype=np.int64)
    if include is not None:
        keep = np.asarray(include, dtype=bool)
        d, e, c = d[keep], e[keep], c[keep]
    width = int(max(d.max(initial=0), t.max(initial=0))) + 2
    ends = np.bincount(c * width + d, minlength=n_clusters * width).reshape(n_clusters, width)
    dead = np.bincount(c[e] * width + d[e], minlength=n_clusters * width)
    dead = dead.reshape(n_clusters, width)
    # at risk at time u: subjects whose duration is >= u
    at_risk = np.cumsum(ends[:, ::-1], axis=1)[:, ::-1]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    weights = np.zeros((n_boot, n_clusters))
    np.add.at(weights, (np.repeat(np.arange(n_boot), n_clusters), draws.ravel()), 1.0)
    risk_b = weights @ at_risk.astype(np.float64)
    dead_b = weights @ dead.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(risk_b > 0, 1.0 - dead_b / risk_b, 1.0)
    curve = np.cumprod(np.clip(factor, 0.0, 1.0), axis=1)
    out: F64Array = curve[:, t]
    total = weights @ ends.sum(axis=1).astype(np.float64)
    return np.where(total[:, None] > 0, out, np.nan)


def clopper_pearson(successes: float, n: float, *, alpha: float = 0.05) -> tuple[float, float]:
    """Return the exact (Clopper–Pearson) binomial interval; real-valued ``n`` is allowed.

    Used with an effective sample size (the number of non-overlapping horizons in the data) so
    a survival of 100 % on few independent periods still gets an honest lower bound. The bounds
    are ``scipy.stats.beta.ppf``'s, from the function it calls (``scipy.special.betaincinv``).
    """
    low, high = clopper_pearson_many(np.array([successes], dtype=np.float64), n, alpha=alpha)
    return float(low[0]), float(high[0])


def clopper_pearson_many(
    successes: F64Array, n: float, *, alpha: float = 0.05
) -> tuple[F64Array, F64Array]:
    """Return :func:`clopper_pearson` for each of ``successes`` (one sample size ``n``)."""
    x = np.asarray(successes, dtype=np.float64)
    if not n > 0:
        return np.zeros(x.shape), np.ones(x.shape)
    from scipy.special import betaincinv

    x = np.minimum(np.maximum(x, 0.0), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x <= 0, 0.0, betaincinv(x, n - x + 1, alpha / 2))
        high = np.where(x >= n, 1.0, betaincinv(x + 1, n - x, 1 - alpha / 2))
    return low.astype(np.float64), high.astype(np.float64)


def logrank_p(
    durations_a: I64Array, events_a: BoolArray, durations_b: I64Array, events_b: BoolArray
) -> float:
    """Return the two-sided log-rank p-value for equal hazard in groups a and b.

    Like Greenwood intervals it assumes independent subjects, so with overlapping entries it
    overstates significance; compare with the block-bootstrap interval of the difference. The
    value is lifelines' ``logrank_test(...).p_value`` (to the last bit with the same BLAS
    summation order, to 1e-12 relative otherwise): the same event table, sums and
    variance (``V = -V_ᵀV_`` by the same BLAS product, its 1×1 pseudo-inverse) and
    ``chi2.sf(U, 1)`` (``scipy.special.chdtrc``).
    """
    da, ea = _check_pair(durations_a, events_a)
    db, eb = _check_pair(durations_b, events_b)
    if da.size == 0 or db.size == 0 or not (ea.any() or eb.any()):
        return math.nan if da.size == 0 or db.size == 0 else 1.0
    times = np.unique(np.concatenate((da, db)))
    # removed / observed per time and group, as lifelines' frames hold them: (group, time)
    rm = np.empty((2, times.size))
    obs = np.empty((2, times.size))
    for g, (dg, eg) in enumerate(((da, ea), (db, eb))):
        pos = np.searchsorted(times, dg)
        rm[g] = np.bincount(pos, minlength=times.size)
        obs[g] = np.bincount(pos, weights=eg, minlength=times.size)
    shifted = np.concatenate((np.zeros((2, 1)), np.cumsum(rm, axis=1)[:, :-1]), axis=1)
    n_ij = rm.sum(axis=1)[:, None] - shifted
    d_i = obs[0] + obs[1]
    tot = rm[0] + rm[1]
    n_i = rm.sum() - np.concatenate(([0.0], np.cumsum(tot)[:-1]))
    ev_i = n_ij * (d_i / n_i)
    ev = ev_i.sum(axis=1)
    z = obs.sum(axis=1) - ev
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (n_i - d_i) / (n_i - 1)
        ratio[np.isinf(ratio) | np.isnan(ratio)] = 1.0
        factor = ratio * d_i / n_i**2
    v_ = np.empty((3, times.size))  # lifelines' V_ block: (columns, times)
    v_[:2] = n_ij
    v_[2] = n_i
    v_ *= np.sqrt(factor)
    v_[np.isnan(v_)] = 0.0
    # lifelines' np.dot(V_.T, V_) runs a general matrix product (gemm) on two buffers; on one
    # buffer numpy would pick syrk, whose sums round differently
    big_v = -np.dot(v_, v_.T.copy())
    v00 = big_v[0, 0] - big_v[2, 0]
    u = z[0] * np.linalg.pinv(np.array([[v00]]))[0, 0] * z[0]
    if not u > 0:
        return math.nan if math.isnan(u) else 1.0
    from scipy.special import chdtrc

    return float(chdtrc(1, u))
