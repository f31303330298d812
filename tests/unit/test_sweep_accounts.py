"""Account survival sweeps: ``[market] legs`` in a TOML config (checks, plan, runner, report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.errors import ConfigError
from backtester.sweep import run_config
from backtester.sweep.config import parse_spec
from backtester.sweep.plan import make_plan

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def account(legs: Any = None, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "market": {"symbols": [BTC, ETH], "legs": {BTC: 0.5, ETH: -0.5} if legs is None else legs},
        "survival": {"horizon": "7D", "entry_every": "2D"},
        "engine": {"grid": {"leverage": [5, 10], "margin_mode": ["isolated", "cross"]}},
    }
    for name, value in sections.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_spec(data, source="cfg.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cfg.toml: ")
    return message


def test_legs_make_one_account_per_leg_set_in_the_order_of_symbols() -> None:
    # Arrange: ETH written first in the table; the legs' order is the order of symbols
    data = account([{ETH: 0.5, BTC: 0.5}, {BTC: 0.5, ETH: -0.5}])
    # Act
    spec = parse_spec(data, source="cfg.toml")
    # Assert
    assert spec.is_account and spec.unit_column == "legs"
    assert spec.market.legs == (((BTC, 0.5), (ETH, 0.5)), ((BTC, 0.5), (ETH, -0.5)))
    assert spec.units == ("BTC +0.5 / ETH +0.5", "BTC +0.5 / ETH -0.5")
    assert spec.legs_of("BTC +0.5 / ETH -0.5") == {BTC: 0.5, ETH: -0.5}
    plan = make_plan(spec)
    assert {c.symbol for c in plan} == set(spec.units)
    assert sum(c.n_cols for c in plan) == 2 * 4


def test_legs_round_trip_through_to_dict_and_json_and_change_the_hash() -> None:
    spec = parse_spec(account(), source="cfg.toml")
    # run.json sorts keys: the leg order must survive it (it is the order of symbols)
    again = parse_spec(json.loads(json.dumps(spec.to_dict(), sort_keys=True)))
    assert again.market.legs == spec.market.legs
    assert again.fingerprint() == spec.fingerprint()
    assert parse_spec(account({BTC: 0.5, ETH: 0.5})).fingerprint() != spec.fingerprint()
    # the same symbols without legs are "each symbol on its own": another sweep
    alone = account(None)
    del alone["market"]["legs"]
    assert not parse_spec(alone).is_account


@pytest.mark.parametrize(
    ("legs", "expected"),
    [
        ({BTC: 0.5, "XRP/USDT:USDT": 0.5}, "[market] legs: unknown symbol 'XRP/USDT:USDT'"),
        ({BTC: 0.7, ETH: -0.6}, "[market] legs: the |weights| must sum to at most 1, was 1.3"),
        ({}, "[market] legs must name at least one symbol with its weight, was {}"),
        ([], "[market] legs must be a table {symbol = weight} or a list of such tables"),
        ("BTC=0.5", "[market] legs must be a table {symbol = weight}"),
        ({BTC: 0.5, ETH: 0}, "[market] legs: the weight of ETH/USDT:USDT must be a non-zero"),
        ({BTC: "half", ETH: 0.5}, "[market] legs: the weight of BTC/USDT:USDT must be a number"),
        ([{BTC: 0.5, ETH: 0.5}, {BTC: 2.0}], "[market] legs[1]: the |weights| must sum to"),
        ([{BTC: 0.5, ETH: 0.5}, {ETH: 0.5, BTC: 0.5}], "[market] legs[1] repeats the leg set"),
        ({BTC: 1.0}, "[market] symbols lists 'ETH/USDT:USDT', which no leg of [market] legs"),
    ],
)
def test_bad_legs_are_one_line_naming_the_key(legs: Any, expected: str) -> None:
    assert expected in error_of(account(legs))


def test_legs_in_a_survival_sweep_with_side_or_strategy_are_refused() -> None:
    strategy = {"name": "hold"}
    assert "[survival] side has no meaning for an account" in error_of(
        account(survival={"side": "short"})
    )
    assert "[strategy] with [market] legs is not modelled" in error_of(account(strategy=strategy))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = account([{BTC: 0.5, ETH: 0.5}, {BTC: 0.5, ETH: -0.5}])
    data["market"].update(start="2025-01-01", end="2025-02-01")
    return run_config(data, out=tmp_path_factory.mktemp("acct") / "run", workers=1)


def test_account_sweep_rows_equal_the_survival_study_of_each_leg_set(run: Any) -> None:
    # Arrange: the same studies run directly
    ms = bt.load_markets([BTC, ETH], start="2025-01-01", end="2025-02-01")
    table = run.table
    # Assert: keyed by the legs label, one row per leg set x setting, in plan order
    assert run.keys == ["legs", "leverage", "margin_mode", "col"]
    assert "symbol" not in table
    assert table["legs"].tolist() == ["BTC +0.5 / ETH +0.5"] * 4 + ["BTC +0.5 / ETH -0.5"] * 4
    for legs in ({BTC: 0.5, ETH: 0.5}, {BTC: 0.5, ETH: -0.5}):
        study = bt.survival_study(
            ms, legs=legs, leverage=(5, 10), margin_mode=("isolated", "cross"),
            horizon="7D", entry_every="2D",
        )  # fmt: skip
        direct = study.table().reset_index()
        rows = table[table["legs"] == direct["legs"].iloc[0]].reset_index(drop=True)
        for name in ("n_entries", "n_liquidated", "survival", "loss_mean", "loss_q95"):
            np.testing.assert_array_equal(rows[name].to_numpy(), direct[name].to_numpy())
    # the run records each symbol's data, not the account labels
    assert set(run.metadata["data"]) == {BTC, ETH}


def test_account_sweep_report_groups_by_legs(run: Any, tmp_path: Path) -> None:
    from backtester.reports.sweep import survival_by_leverage, sweep_report

    curve = survival_by_leverage(run.table, by="margin_mode")
    assert list(curve.columns[:3]) == ["legs", "leverage", "margin_mode"]
    assert len(curve) == 8
    index = sweep_report(run.table, metadata=run.metadata, out=tmp_path / "report")
    html = index.read_text()
    assert "2 account(s)" in html
    assert "BTC +0.5 / ETH -0.5" in html
    assert (tmp_path / "report" / "figures" / "survival_by_leverage.png").is_file()
    best = pd.read_csv(tmp_path / "report" / "tables" / "best.csv")
    assert set(best["legs"]) <= set(run.table["legs"])


def test_an_account_strategy_sweep_equals_run_sweep_on_the_market_set(tmp_path: Path) -> None:
    # Arrange: hold on BTC +0.5 / ETH -0.5 (long BTC, short ETH), leverage x margin mode
    data = account(
        [{BTC: 0.5, ETH: -0.5}],
        survival=None,
        strategy={"name": "hold", "grid": {"side": ["long"]}},
        output={"trades": True},
    )
    data["market"].update(start="2025-01-01", end="2025-02-01")
    # Act
    run = run_config(data, out=tmp_path / "run", workers=1)
    # Assert: the rows and trades are run_sweep's, keyed by the legs
    assert run.keys == ["legs", "side", "leverage", "margin_mode", "col"]
    ms = bt.load_markets([BTC, ETH], start="2025-01-01", end="2025-02-01")
    grid = bt.ParamGrid.product(
        side=["long"], leverage=[5.0, 10.0], margin_mode=["isolated", "cross"]
    )
    direct = bt.run_sweep(ms, bt.strategies.hold, grid, legs={BTC: 0.5, ETH: -0.5})
    stats = direct.stats()
    for name in ("final_equity", "max_drawdown", "n_trades", "n_liquidations", "fees_paid"):
        np.testing.assert_array_equal(run.table[name].to_numpy(), stats[name].to_numpy())
    trades = run.trades()
    assert set(trades["legs"]) == {"BTC +0.5 / ETH -0.5"}
    assert len(trades) == len(direct.trades())
    # hold's parameter side=long is a key; each leg's own side is leg_side
    assert set(trades["side"]) == {"long"}
    legs_sides = set(zip(trades["symbol"], trades["leg_side"], strict=True))
    assert legs_sides == {(BTC, "long"), (ETH, "short")}
    # the report re-runs the best and worst accounts for their equity curves
    from backtester.sweep.runner import equity_curves

    curves = equity_curves(run, run.table.head(2))
    assert len(curves) == 2
    first = next(iter(curves.values()))
    np.testing.assert_array_equal(first.to_numpy(), direct.equity([0]).iloc[:, 0].to_numpy())
