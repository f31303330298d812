"""A wallet worn down to float dust: an entry whose size rounds to 0 is rejected, not a crash."""

from __future__ import annotations

import pytest

import backtester as bt
from tests.unit.reference import make_market


@pytest.mark.filterwarnings("ignore::backtester.errors.BacktesterWarning")
def test_entry_of_zero_size_is_rejected() -> None:
    import backtester.strategies.hold as hold

    # Arrange: a long entry at 100,000 with 5e-322 of cash (a denormal): margin > 0, but
    # size = 5e-322 x 2 / 100,000 rounds to 0.0 (it once divided by that size and raised
    # ZeroDivisionError inside the kernel: seen after 177 liquidations of sma_cross at 25x)
    bars = [100_000.0] * 6
    market = make_market(bars, bars, bars, bars)
    grid = bt.ParamGrid.product(side=["long"], leverage=[2.0])
    config = bt.RunConfig(initial_cash=5e-322, taker_fee=0.0)
    # Act
    stats = bt.run_sweep(market, hold, grid, config=config).stats()
    # Assert: every bar's entry refused, the cash kept
    assert stats["n_trades"].iloc[0] == 0
    assert stats["n_rejected"].iloc[0] == 5
    assert stats["final_equity"].iloc[0] == 5e-322
