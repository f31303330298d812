"""The example configs in configs/: one per bundled strategy plus a survival sweep; each runs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from backtester import strategies
from backtester.sweep import load_spec, run_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_bundled_strategy_has_an_example_config() -> None:
    for name in strategies.available():
        spec = load_spec(CONFIGS / f"{name}.toml")
        assert spec.strategy == name
        assert spec.n_cols > 1
    survival = load_spec(CONFIGS / "survival.toml")
    assert survival.survival is not None and "leverage" in survival.names
    accounts = load_spec(CONFIGS / "accounts_survival.toml")
    assert accounts.units == ("BTC +0.5 / ETH +0.5", "BTC +0.5 / ETH -0.5")
    assert accounts.values("margin_mode") == ("isolated", "cross")


@pytest.mark.parametrize("name", [*strategies.available(), "survival", "accounts_survival"])
def test_example_config_runs_on_a_short_window(name: str, tmp_path: Path) -> None:
    # Arrange: the example, cut to four weeks of bars so the test stays fast
    data = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    data["market"]["start"], data["market"]["end"] = "2025-01-01", "2025-01-29"
    if "survival" in data:
        data["survival"].update(horizon="7D", entry_every="2D")
    # Act
    run = run_config(data, out=tmp_path / name, workers=1)
    # Assert: one row per symbol (or account) x setting (x side for side = "both")
    spec = load_spec(CONFIGS / f"{name}.toml")
    sides = 2 if spec.survival is not None and spec.survival.side == "both" else 1
    assert len(run.table) == spec.n_symbols * spec.n_cols * sides
    assert run.table[spec.unit_column].tolist()[0] == spec.units[0]
