"""Batch sweeps: TOML configs, a chunked resumable runner, local and Dask executors (sweep layer).

``run_config(path_or_dict, *, out, resume=False, scheduler=None, progress=False)`` runs a config
into a run directory; ``open_run(path)`` returns the finished run's ``.table`` and ``.config``.
"""

from __future__ import annotations

from backtester.sweep.config import SweepSpec, load_spec, parse_spec
from backtester.sweep.runner import Run, open_run, run_config

__all__ = ["Run", "SweepSpec", "load_spec", "open_run", "parse_spec", "run_config"]
