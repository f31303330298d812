"""ParamGrid: product, zip, where, take, labels, unique, cross."""

from __future__ import annotations

import pytest

from backtester.errors import ConfigError, ShapeError
from backtester.params import ParamGrid


def test_product_last_name_varies_fastest_and_labels() -> None:
    g = ParamGrid.product(fast=[10, 20], slow=[50, 100])
    assert g.n_cols == 4
    assert list(g.labels) == [(10, 50), (10, 100), (20, 50), (20, 100)]
    assert g.labels.names == ["fast", "slow"]
    assert g.values("slow") == [50, 100, 50, 100]


def test_zip_where_take() -> None:
    g = ParamGrid.zip(fast=[10, 60, 20], slow=[50, 50, 100]).where(lambda p: p.fast < p.slow)
    assert list(g.labels) == [(10, 50), (20, 100)]
    assert g.take([1]).values("fast") == [20]


def test_scalars_become_single_values_and_none_is_kept() -> None:
    g = ParamGrid.product(leverage=5, stop_loss=[None, 0.05], side="long")
    assert g.n_cols == 2
    assert g.values("stop_loss") == [None, 0.05]
    assert g.values("side") == ["long", "long"]


def test_unique_and_cross() -> None:
    g = ParamGrid.zip(a=[1, 2, 1], b=["x", "y", "x"])
    uniq, inv = g.unique()
    assert uniq.n_cols == 2 and inv.tolist() == [0, 1, 0]
    c = ParamGrid.product(a=[1, 2]).cross(ParamGrid.product(b=["x", "y", "z"]))
    assert c.n_cols == 6 and c.values("b")[:3] == ["x", "y", "z"]


def test_errors_name_the_problem() -> None:
    with pytest.raises(ShapeError, match="equal length"):
        ParamGrid.zip(a=[1, 2], b=[1])
    with pytest.raises(ConfigError, match="has no values"):
        ParamGrid.product(a=[])
    with pytest.raises(ConfigError, match="removed every column"):
        ParamGrid.product(a=[1]).where(lambda p: p.a > 5)
    with pytest.raises(ConfigError, match="no parameter 'fsat'; did you mean 'fast'"):
        ParamGrid.product(fast=[1]).values("fsat")
    with pytest.raises(ShapeError, match=r"column 3 is outside \[0, 1\]"):
        ParamGrid.product(a=[1, 2]).take([3])
