"""bt.check_run: a grid and config checked against a market without running the kernel."""

from __future__ import annotations

import numpy as np
import pytest

import backtester as bt
from backtester import params
from backtester.errors import ConfigError


@pytest.fixture(scope="module")
def market() -> bt.Market:
    return bt.load_market("BTC/USDT:USDT").slice("2024-01-01", "2024-03-01")


def test_a_valid_grid_reports_its_size_and_limits(market: bt.Market) -> None:
    grid = bt.ParamGrid.product(leverage=[2, 10, 125], stop_loss=[None, 0.05])
    check = bt.check_run(market, grid, config=bt.RunConfig(initial_cash=100))
    assert (check.n_cols, check.n_bars) == (6, market.n_bars)
    assert check.max_leverage == {("binanceusdm", None): 125.0}
    assert check.memory_bytes > 0 and "ok: 6 columns" in repr(check)
    # the default 10,000 USDT at 125x is 1,250,000 notional: tier 4, at most 20x, refused
    assert bt.check_run(market, grid).refused_at_entry.tolist() == [4, 5]


@pytest.mark.parametrize(
    ("grid", "config", "message"),
    [
        (
            {"leverage": [5, 500]},
            None,
            r"leverage must be in \(0, 125\] for binanceusdm BTC/USDT:USDT .*was 500",
        ),
        ({"leverage": [50]}, {"maint_margin_rate": 0.03}, r"leverage 50 needs maint_margin_rate"),
        ({"intrabar": ["detail"]}, None, r"intrabar 'detail' needs lower-timeframe bars"),
        ({"levrage": [5]}, None, r"unknown grid parameter 'levrage'; did you mean 'leverage'"),
        ({"stop_loss": [float("nan")]}, None, r"RunConfig.stop_loss must be .*was nan"),
    ],
)
def test_problems_are_found_without_running(
    market: bt.Market, grid: dict, config: dict | None, message: str
) -> None:
    cfg = bt.RunConfig(**config) if config else None
    with pytest.raises(ConfigError, match=message):
        bt.check_run(market, bt.ParamGrid.product(**grid), config=cfg)


def test_strategy_parameters_are_allowed_with_the_strategy(market: bt.Market) -> None:
    import backtester.strategies.sma_cross as sma_cross

    grid = bt.ParamGrid.product(fast=[10], slow=[50], leverage=[3])
    assert bt.check_run(market, grid, strategy=sma_cross).n_cols == 1
    with pytest.raises(ConfigError, match="unknown grid parameter 'fast'"):
        bt.check_run(market, grid)


def test_a_run_that_cannot_fit_is_refused_before_allocation(
    market: bt.Market, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: pretend the machine has 1 MiB free; 10,000 columns need more than that
    monkeypatch.setattr(params, "available_memory", lambda: 1 << 20)
    grid = bt.ParamGrid.zip(leverage=list(np.linspace(1, 20, 10_000)))
    # Act / Assert
    with pytest.raises(ConfigError, match=r"needs about .* more than the 1.0 MiB of memory"):
        bt.check_run(market, grid)


def test_a_grid_too_large_for_memory_is_refused_at_once() -> None:
    # a 10^12-column product used to end in a MemoryError after a minute
    with pytest.raises(ConfigError, match=r"1,000,000,000,000 columns .* more than the"):
        bt.ParamGrid.product(a=range(10_000), b=range(10_000), c=range(10_000))


def test_product_order_is_unchanged() -> None:
    grid = bt.ParamGrid.product(fast=[1, 2], slow=[3, 4, 5])
    assert list(zip(grid.values("fast"), grid.values("slow"), strict=True)) == [
        (1, 3),
        (1, 4),
        (1, 5),
        (2, 3),
        (2, 4),
        (2, 5),
    ]


def test_check_run_names_the_columns_whose_first_entry_the_tiers_refuse() -> None:
    # 1,000,000 USDT x 1.0 x 125 = 125,000,000 notional: the 2019-09-08 BTC table (in force at
    # the data's first bar) puts it in tier 8 (floor 100M, cap 200M), which allows 3x, so the
    # 125x column is refused at entry; 5 x 1,000,000 = 5,000,000 is tier 5 (10x): fine
    m = bt.load_market("BTC/USDT:USDT")
    rules = bt.exchange_rules("binanceusdm", "BTC/USDT:USDT", at=m.start)
    assert (rules.floors[7], rules.caps[7], rules.max_leverage[7]) == (1e8, 2e8, 3.0)
    check = bt.check_run(
        m, bt.ParamGrid.product(leverage=[5, 125]), config=bt.RunConfig(initial_cash=1_000_000)
    )
    assert not check.ok
    assert check.refused_at_entry.tolist() == [1]
    assert check.refusals == (
        "125x on 125,000,000 notional: tier 8 allows 3x (lower initial_cash, position_size or "
        "the leverage)",
    )
    assert "1 column(s) refused at entry" in repr(check)
    small = bt.RunConfig(initial_cash=100)  # 100 x 125 = 12,500: tier 1 (125x)
    assert bt.check_run(m, bt.ParamGrid.product(leverage=[5, 125]), config=small).ok
