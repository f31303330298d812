"""Chunk plan invariants (hypothesis): every column of every symbol exactly once, in product order."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from backtester.sweep.config import parse_spec
from backtester.sweep.plan import chunk_values, make_plan

# a strategy file: PARAMS window=[2, 3], side=[long, short]
STRATEGY = str(Path(__file__).with_name("test_sweep_config.py"))


def spec_for(leverages: list[int], stops: list[float], symbols: list[str]) -> Any:
    return parse_spec(
        {
            "market": {"symbols": symbols},
            "strategy": {"name": STRATEGY},
            "engine": {"grid": {"leverage": leverages, "stop_loss": stops}},
        }
    )


grids = st.tuples(
    st.lists(st.integers(1, 100), min_size=1, max_size=5, unique=True),
    st.lists(st.sampled_from([0.01, 0.02, 0.05, 0.1, 0.2]), min_size=1, max_size=4, unique=True),
    st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True),
    st.integers(1, 50),
)


@given(grids)
def test_plan_covers_each_column_once_in_product_order(grid: Any) -> None:
    """The chunks of a plan, concatenated, are exactly itertools.product of the grid, per symbol."""
    leverages, stops, symbols, chunk_size = grid
    spec = spec_for(leverages, stops, symbols)
    plan = make_plan(spec, chunk_size)
    expected = list(itertools.product([2, 3], ["long", "short"], leverages, stops))
    for symbol in symbols:
        rows: list[tuple[Any, ...]] = []
        for chunk in (c for c in plan if c.symbol == symbol):
            assert 1 <= chunk.n_cols <= chunk_size
            values = chunk_values(spec, chunk.start, chunk.stop)
            rows += list(zip(*(values[n] for n in spec.names), strict=True))
        assert rows == expected
    assert len({c.id for c in plan}) == len(plan)  # ids are unique
    assert list(plan) == sorted(plan, key=lambda c: c.id)  # id order is result order
