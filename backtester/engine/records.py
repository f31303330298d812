"""Structured record dtypes written by the kernel (layer: engine.records)."""

from __future__ import annotations

import numpy as np

__all__ = ["trade_dt"]

# One closed (or still open at the window's end) position. ``idx`` is the bar of the exit.
trade_dt = np.dtype(
    [
        ("id", np.int64),
        ("col", np.int64),
        ("idx", np.int64),
        ("entry_idx", np.int64),
        ("side", np.int64),
        ("entry_price", np.float64),
        ("exit_price", np.float64),
        ("size", np.float64),
        ("leverage", np.float64),
        ("margin", np.float64),
        ("fees", np.float64),
        ("funding", np.float64),
        ("pnl", np.float64),
        ("exit_reason", np.int64),
    ],
    align=True,
)
