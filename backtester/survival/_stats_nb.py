"""Compiled block-bootstrap Kaplan–Meier (layer: survival; numba kernels on arrays only).

The study's intervals need a Kaplan–Meier fit per bootstrap replicate, setting and time:
``km_boot_nb`` computes them replicate by replicate in one pass over the time-sorted subjects,
with the same arithmetic as the NumPy reference ``stats.km_weighted`` / ``km_weighted_curve``
(integer counts summed exactly, each factor ``1 - deaths / at_risk`` clipped to [0, 1], the
product taken over the event times in increasing order), so the numbers are the same bit for bit
(tests/unit/test_survival_stats.py checks it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.engine._jitcache import cache_enabled
from backtester.errors import ConfigError

CACHE_ENABLED = cache_enabled(__file__)

__all__ = ["boot_weights", "km_boot", "km_boot_nb"]


@njit(cache=CACHE_ENABLED)
def km_boot_nb(
    order: np.ndarray,
    starts: np.ndarray,
    group_time: np.ndarray,
    group_event: np.ndarray,
    seen_w: np.ndarray,
    dead_w: np.ndarray,
    weights_t: np.ndarray,
    times: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write the weighted Kaplan–Meier survival at each of ``times`` for each replicate.

    Subjects are visited in ``order`` (stable by duration); group ``g`` holds the positions
    ``starts[g]:starts[g + 1]`` of ``order``, at ``group_time[g]`` (increasing), and is an
    event time when ``group_event[g]``. ``seen_w[p]`` / ``dead_w[p]`` (by position) are 1 for
    a subject that counts (an opened entry) / an event that counts, else 0. ``weights_t (n,
    n_rep)`` int32 replicate counts, one row per subject (replicates contiguous, so every step
    runs over all replicates at once). ``out (n_rep, len(times))``: the product of the factors
    ``1 - deaths / at_risk`` of the event times ``<= times[k]`` (sorted ``times``); NaN for a
    replicate without weight. Weights are summed as integers (exact, so in any order, like the
    NumPy reference's float sums of the same integers); each factor and the product follow
    the reference's float steps, and a factor of exactly 1 (no death) is skipped (x·1 = x).
    """
    n_rep = weights_t.shape[1]
    n_groups = group_time.shape[0]
    n_t = times.shape[0]
    n = order.shape[0]
    total = np.zeros(n_rep, dtype=np.int64)
    for p in range(n):
        if seen_w[p]:
            row = weights_t[order[p]]
            for r in range(n_rep):
                total[r] += row[r]
    surv = np.ones(n_rep)
    before = np.zeros(n_rep, dtype=np.int64)
    dead = np.zeros(n_rep, dtype=np.int64)
    k = 0
    for g in range(n_groups):
        t = group_time[g]
        while k < n_t and times[k] < t:
            for r in range(n_rep):
                out[r, k] = surv[r]
            k += 1
        if k == n_t:
            break
        if group_event[g]:
            dead[:] = 0
            any_dead = False
            for p in range(starts[g], starts[g + 1]):
                if dead_w[p]:
                    any_dead = True
                    row = weights_t[order[p]]
                    for r in range(n_rep):
                        dead[r] += row[r]
            if any_dead:
                for r in range(n_rep):
                    if dead[r] > 0:
                        at_risk = float(total[r] - before[r])
                        factor = 1.0 - float(dead[r]) / at_risk if at_risk > 0.0 else 1.0
                        surv[r] *= min(max(factor, 0.0), 1.0)
        for p in range(starts[g], starts[g + 1]):
            if seen_w[p]:
                row = weights_t[order[p]]
                for r in range(n_rep):
                    before[r] += row[r]
    while k < n_t:
        for r in range(n_rep):
            out[r, k] = surv[r]
        k += 1
    for r in range(n_rep):
        if total[r] <= 0:
            for k in range(n_t):
                out[r, k] = np.nan


def boot_weights(counts: np.ndarray) -> np.ndarray:
    """Return ``(n, n_rep)`` int32 counts for :func:`km_boot` from ``(n_rep, n)`` whole counts."""
    w = np.asarray(counts)
    as_int = w.astype(np.int32)
    if not np.array_equal(as_int, w):
        raise ConfigError("km_boot weights must be whole counts (bootstrap replicate counts)")
    return np.ascontiguousarray(as_int.T)


def km_boot(
    durations: I64Array,
    events: BoolArray,
    weights_t: np.ndarray,
    ok: BoolArray,
    times: I64Array,
) -> F64Array:
    """Return ``(n_rep, len(times))`` Kaplan–Meier survival for each replicate (compiled).

    ``weights_t`` is ``boot_weights(counts)`` (subjects x replicates, int32). Equals
    ``stats.km_weighted_curve(durations, events, counts * ok, times=times)`` bit for bit (and,
    at one time, ``stats.km_weighted(..., at=times[0])``).
    """
    d = np.asarray(durations, dtype=np.int64)
    e = np.asarray(events, dtype=np.bool_)
    w = np.asarray(weights_t)
    if w.dtype != np.int32 or w.ndim != 2 or w.shape[0] != d.size or not w.flags.c_contiguous:
        raise ConfigError(
            f"km_boot weights must be boot_weights(counts): ({d.size}, n_rep) int32, was "
            f"{w.shape} {w.dtype}"
        )
    w = w.view()
    w.setflags(write=False)  # one compiled specialization: the study's shared counts are read-only
    t = np.ascontiguousarray(times, dtype=np.int64)
    out = np.empty((w.shape[1], t.size))
    if d.size == 0:
        out[:] = np.nan
        return out
    order = np.argsort(d, kind="stable")
    ds = d[order]
    starts = np.flatnonzero(np.r_[True, ds[1:] != ds[:-1]])
    opened = np.asarray(ok, dtype=np.bool_)[order]
    dead = opened & e[order]
    group_event = np.add.reduceat(e[order].astype(np.int64), starts) > 0
    km_boot_nb(
        order.astype(np.int64),
        np.append(starts, d.size).astype(np.int64),
        ds[starts],
        group_event,
        opened,
        dead,
        w,
        t,
        out,
    )
    return out
