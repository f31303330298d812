"""Signals: long/short entries and exits per bar and column (layer: signals).

A signal at the close of bar ``i`` fills at the open of bar ``i+1`` (engine.kernel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from backtester._typing import BoolArray
from backtester.errors import ShapeError

__all__ = ["Signals"]

_FIELDS = ("long_entries", "long_exits", "short_entries", "short_exits")


def _as_bool_2d(name: str, value: Any, shape: tuple[int, int] | None) -> BoolArray:
    arr = np.asarray(value)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ShapeError(f"Signals.{name} must be 2-D (n_bars, n_cols), was {arr.ndim}-D")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "biu":
            raise ShapeError(f"Signals.{name} must be boolean, was dtype {arr.dtype}")
        arr = arr != 0
    if shape is not None and arr.shape != shape:
        raise ShapeError(
            f"Signals.{name} must have shape {shape} like long_entries, was {arr.shape}"
        )
    return np.ascontiguousarray(arr)


@dataclass(frozen=True, slots=True, eq=False)
class Signals:
    """Boolean ``(n_bars, n_cols)`` arrays: long/short entries and exits.

    Missing arrays default to all False. 1-D arrays are one column.
    """

    long_entries: BoolArray
    long_exits: BoolArray | None = None
    short_entries: BoolArray | None = None
    short_exits: BoolArray | None = None

    def __post_init__(self) -> None:
        le = _as_bool_2d("long_entries", self.long_entries, None)
        object.__setattr__(self, "long_entries", le)
        for name in _FIELDS[1:]:
            value = getattr(self, name)
            arr = (
                np.zeros(le.shape, dtype=np.bool_)
                if value is None
                else _as_bool_2d(name, value, le.shape)
            )
            object.__setattr__(self, name, arr)

    @property
    def n_bars(self) -> int:
        """Number of bars (rows)."""
        return int(self.long_entries.shape[0])

    @property
    def n_cols(self) -> int:
        """Number of signal columns."""
        return int(self.long_entries.shape[1])

    @classmethod
    def empty(cls, n_bars: int, n_cols: int = 1) -> Signals:
        """Return all-False signals."""
        return cls(np.zeros((n_bars, n_cols), dtype=np.bool_))

    def check(self, n_bars: int, n_cols: int, *, source: str = "strategy") -> None:
        """Raise ShapeError unless the arrays are ``(n_bars, n_cols)``."""
        if self.long_entries.shape != (n_bars, n_cols):
            raise ShapeError(
                f"{source} signals must have shape (n_bars, n_cols) = ({n_bars}, {n_cols}), "
                f"was {self.long_entries.shape}"
            )

    def take(self, cols: Any) -> Signals:
        """Return the given columns."""
        idx = np.asarray(cols, dtype=np.int64)
        return Signals(*(getattr(self, f)[:, idx] for f in _FIELDS))

    def packed(self) -> np.ndarray:
        """Return the kernel's bit-packed ``(n_cols, n_bars)`` uint8 array (1, 2, 4, 8)."""
        out = np.zeros((self.n_cols, self.n_bars), dtype=np.uint8)
        for bit, name in zip((1, 2, 4, 8), _FIELDS, strict=True):
            out |= getattr(self, name).T.astype(np.uint8) * np.uint8(bit)
        return out
