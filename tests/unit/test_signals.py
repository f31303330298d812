"""Signals: shapes, defaults, packing for the kernel."""

from __future__ import annotations

import numpy as np
import pytest

from backtester.errors import ShapeError
from backtester.signals import Signals


def test_missing_arrays_default_to_false_and_1d_is_one_column() -> None:
    s = Signals(np.array([True, False, True]))
    assert s.long_entries.shape == (3, 1)
    assert not s.short_exits.any()


def test_packed_bits() -> None:
    # bar 0: long entry (1) + short exit (8) = 9; bar 1: long exit (2) + short entry (4) = 6
    s = Signals([[True], [False]], [[False], [True]], [[False], [True]], [[True], [False]])
    assert s.packed().tolist() == [[9, 6]]


def test_wrong_shapes_and_dtypes() -> None:
    with pytest.raises(ShapeError, match=r"Signals.long_exits must have shape \(3, 1\)"):
        Signals(np.zeros(3, dtype=bool), np.zeros((2, 1), dtype=bool))
    with pytest.raises(ShapeError, match="must be boolean, was dtype float64"):
        Signals(np.zeros((3, 1)))
    with pytest.raises(ShapeError, match=r"must have shape \(n_bars, n_cols\) = \(4, 1\)"):
        Signals.empty(3).check(4, 1)
