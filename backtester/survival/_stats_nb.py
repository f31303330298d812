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
from numba import njit, prange

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.engine._jitcache import cache_enabled

CACHE_ENABLED = cache_enabled(__file__)

__all__ = ["km_boot", "km_boot_nb"]


@njit(cache=CACHE_ENABLED, parallel=True)
def km_boot_nb(
    order: np.ndarray,
    starts: np.ndarray,
    group_time: np.ndarray,
    group_event: np.ndarray,
    event: np.ndarray,
    weights: np.ndarray,
    ok: np.ndarray,
    times: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write the weighted Kaplan–Meier survival at each of ``times`` for each weight row.

    Subjects are visited in ``order`` (stable by duration); group ``g`` holds the positions
    ``starts[g]:starts[g + 1]`` of ``order``, at ``group_time[g]``, and is an event time when
    ``group_event[g]``; ``event`` flags the subjects. ``weights (n_rep, n)`` are the replicate
    counts, ``ok (n,)`` zeroes a subject (rejected entries). ``out (n_rep, len(times))``: the
    product of the factors of the event times ``<= times[k]`` (sorted ``times``); NaN for a row
    without weight.
    """
    n_rep = weights.shape[0]
    n_groups = group_time.shape[0]
    n_t = times.shape[0]
    for r in prange(n_rep):
        w = weights[r]
        total = 0.0
        for i in range(w.shape[0]):
            if ok[i]:
                total += w[i]
        if not total > 0.0:
            for k in range(n_t):
                out[r, k] = np.nan
            continue
        surv = 1.0
        before = 0.0
        k = 0
        for g in range(n_groups):
            t = group_time[g]
            while k < n_t and times[k] < t:
                out[r, k] = surv
                k += 1
            if k == n_t:
                break
            dead = 0.0
            seen = 0.0
            for p in range(starts[g], starts[g + 1]):
                s = order[p]
                if ok[s]:
                    seen += w[s]
                    if event[s]:
                        dead += w[s]
            if group_event[g]:
                at_risk = total - before
                factor = 1.0 - dead / at_risk if at_risk > 0.0 else 1.0
                factor = min(max(factor, 0.0), 1.0)
                surv *= factor
            before += seen
        while k < n_t:
            out[r, k] = surv
            k += 1


def km_boot(
    durations: I64Array,
    events: BoolArray,
    weights: np.ndarray,
    ok: BoolArray,
    times: I64Array,
) -> F64Array:
    """Return ``(n_rep, len(times))`` Kaplan–Meier survival for each weight row (compiled).

    Equals ``stats.km_weighted_curve(durations, events, weights * ok, times=times)`` bit for
    bit (and, at one time, ``stats.km_weighted(..., at=times[0])``); ``weights`` is the study's
    float32 bootstrap counts (or any float32 weights).
    """
    d = np.asarray(durations, dtype=np.int64)
    e = np.asarray(events, dtype=np.bool_)
    w = np.ascontiguousarray(weights, dtype=np.float32)
    t = np.ascontiguousarray(times, dtype=np.int64)
    out = np.empty((w.shape[0], t.size))
    if d.size == 0:
        out[:] = np.nan
        return out
    order = np.argsort(d, kind="stable")
    ds = d[order]
    starts = np.flatnonzero(np.r_[True, ds[1:] != ds[:-1]])
    group_event = np.add.reduceat(e[order].astype(np.int64), starts) > 0
    km_boot_nb(
        order.astype(np.int64),
        np.append(starts, d.size).astype(np.int64),
        ds[starts],
        group_event,
        e,
        w,
        np.ascontiguousarray(ok, dtype=np.bool_),
        t,
        out,
    )
    return out
