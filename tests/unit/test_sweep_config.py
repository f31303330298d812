"""Sweep configs: TOML parsing, validation messages (file, key, fix), normalisation, hashing.

This module doubles as a tiny strategy module ("tests.unit.test_sweep_config") so the config
layer is tested independently of the bundled strategies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtester.errors import ConfigError
from backtester.sweep.config import load_spec, parse_spec
from backtester.sweep.plan import Chunk, chunk_values, key_frame, make_plan

# -- the strategy this module pretends to be -----------------------------------------------------
PARAMS: dict[str, list[Any]] = {"window": [2, 3], "side": ["long", "short"]}


def signals(market: Any, grid: Any) -> Any:  # never called by these tests
    raise NotImplementedError("config tests never run the strategy")


STRATEGY = __file__  # a strategy is a bundled name or a .py file


def config(**sections: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "market": {"symbols": ["BTC/USDT:USDT"]},
        "strategy": {"name": STRATEGY},
    }
    for name, value in sections.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_spec(data, source="cfg.toml")
    message = str(info.value)
    assert "\n" not in message  # one line
    assert message.startswith("cfg.toml: ")  # names the file
    return message


# -- valid configs --------------------------------------------------------------------------------


def test_minimal_config_takes_defaults_from_strategy_params() -> None:
    # Arrange: no grid given -> PARAMS window=[2, 3], side=[long, short] -> 2 x 2 = 4 columns
    data = config()
    # Act
    spec = parse_spec(data, source="cfg.toml")
    # Assert
    assert spec.market.exchange == "binanceusdm"
    assert spec.market.timeframe == "1h"
    assert spec.names == ("window", "side")
    assert spec.n_cols == 4
    assert spec.strategy_params == ("window", "side")


def test_engine_grid_follows_strategy_grid_and_none_means_off() -> None:
    # Arrange: window [5] x side [long] x leverage [1, 10] x stop_loss [none, 0.05] = 4 columns
    data = config(
        strategy={"name": STRATEGY, "grid": {"window": [5], "side": ["long"]}},
        engine={"taker_fee": 0.0004, "grid": {"leverage": [1, 10], "stop_loss": ["none", 0.05]}},
    )
    # Act
    spec = parse_spec(data)
    # Assert
    assert spec.names == ("window", "side", "leverage", "stop_loss")
    assert spec.values("stop_loss") == (None, 0.05)
    assert spec.engine == (("taker_fee", 0.0004),)
    assert spec.engine_grid_names == ("leverage", "stop_loss")
    assert spec.n_cols == 4


def test_toml_file_round_trips_and_hash_ignores_formatting(tmp_path: Path) -> None:
    # Arrange: the same config written twice with different key order and spacing
    a = tmp_path / "a.toml"
    a.write_text(
        '[market]\nsymbols = ["BTC/USDT:USDT"]\nstart = 2023-01-01\n\n'
        f'[strategy]\nname = "{STRATEGY}"\n[engine.grid]\nleverage = [1, 5]\n'
    )
    b = tmp_path / "b.toml"
    b.write_text(
        f'[engine.grid]\nleverage = [ 1,5 ]\n[strategy]\nname="{STRATEGY}"\n'
        '[market]\nstart = "2023-01-01"\nsymbols = ["BTC/USDT:USDT"]\n'
    )
    # Act
    spec_a, spec_b = load_spec(a), load_spec(b)
    # Assert: a TOML date and the same date as a string normalise to the same config
    assert spec_a.market.start == "2023-01-01"
    assert spec_a.fingerprint() == spec_b.fingerprint()
    assert parse_spec(spec_a.to_dict()).fingerprint() == spec_a.fingerprint()


def test_hash_changes_with_any_value() -> None:
    base = parse_spec(config(engine={"grid": {"leverage": [1, 5]}}))
    other = parse_spec(config(engine={"grid": {"leverage": [1, 6]}}))
    assert base.fingerprint() != other.fingerprint()


# -- bad configs fail before any work, naming file, key and fix ---------------------------------


def test_unknown_section_suggests_the_closest() -> None:
    message = error_of({**config(), "markets": {}})
    assert "'markets'" in message and "did you mean 'market'?" in message


def test_unknown_market_key_suggests_symbols() -> None:
    message = error_of(config(market={"symbol": ["BTC/USDT:USDT"]}))
    assert "[market] key 'symbol'" in message and "did you mean 'symbols'?" in message


def test_symbols_of_wrong_type() -> None:
    message = error_of(config(market={"symbols": "BTC/USDT:USDT"}))
    assert "[market] symbols must be a non-empty list of strings" in message
    assert 'write symbols = ["BTC/USDT:USDT"]' in message


def test_empty_engine_grid_is_rejected() -> None:
    message = error_of(config(engine={"grid": {"leverage": []}}))
    assert "[engine.grid] leverage is an empty grid" in message


def test_empty_strategy_grid_is_rejected() -> None:
    message = error_of(config(strategy={"name": STRATEGY, "grid": {"window": []}}))
    assert "[strategy.grid] window is an empty grid" in message


def test_scalar_where_a_grid_list_is_needed() -> None:
    message = error_of(config(engine={"grid": {"leverage": 5}}))
    assert "[engine.grid] leverage must be a list of values, was a number 5" in message
    assert "write leverage = [5]" in message


def test_list_in_engine_scalars_points_to_the_grid() -> None:
    message = error_of(config(engine={"leverage": [1, 5]}))
    assert "[engine] leverage must be a single value" in message
    assert "move it to [engine.grid]" in message


def test_unknown_engine_setting_suggests_the_closest() -> None:
    message = error_of(config(engine={"grid": {"levrage": [1]}}))
    assert "'levrage'" in message and "did you mean 'leverage'?" in message


def test_invalid_engine_value_names_key_and_value() -> None:
    # leverage must be in (0, 1000]; 0 is out of range
    message = error_of(config(engine={"grid": {"leverage": [1, 0]}}))
    assert "[engine.grid] leverage must be in (0, 1000], was 0" in message


def test_wrong_engine_type_is_rejected() -> None:
    message = error_of(config(engine={"margin_mode": "isolatd"}))
    assert (
        "[engine] margin_mode must be one of" in message and "did you mean 'isolated'?" in message
    )


def test_setting_in_both_engine_and_grid() -> None:
    message = error_of(config(engine={"leverage": 2, "grid": {"leverage": [1, 5]}}))
    assert "[engine.grid] leverage is also set in [engine]" in message


def test_unknown_strategy_parameter_suggests_the_closest() -> None:
    message = error_of(config(strategy={"name": STRATEGY, "grid": {"windw": [3]}}))
    assert "[strategy.grid] key 'windw'" in message and "did you mean 'window'?" in message


def test_unknown_strategy_name() -> None:
    message = error_of(config(strategy={"name": "sma_crossing"}))
    assert "[strategy] name" in message and "did you mean 'sma_cross'?" in message


def test_missing_strategy_module() -> None:
    message = error_of(config(strategy={"name": "no_such_package.strategy"}))
    assert "for your own strategy give its file" in message


def test_mixed_value_types_in_a_grid() -> None:
    message = error_of(config(engine={"grid": {"leverage": [1, "5"]}}))
    assert "[engine.grid] leverage mixes number and string values" in message


def test_duplicate_grid_values() -> None:
    message = error_of(config(engine={"grid": {"leverage": [5, 1, 5.0]}}))
    assert "[engine.grid] leverage lists 5.0 twice" in message


def test_bad_timeframe_and_dates() -> None:
    assert "[market] timeframe must look like" in error_of(
        config(market={"symbols": ["X"], "timeframe": "hourly"})
    )
    assert "[market] start must be before end" in error_of(
        config(market={"symbols": ["X"], "start": "2024-01-01", "end": "2023-01-01"})
    )
    assert "[market] end is not a date" in error_of(
        config(market={"symbols": ["X"], "end": "yesterday-ish"})
    )


def test_duplicate_symbols_and_unknown_exchange() -> None:
    assert "lists 'X' twice" in error_of(config(market={"symbols": ["X", "X"]}))
    assert "did you mean 'bybit'?" in error_of(
        config(market={"symbols": ["X"], "exchange": "bybt"})
    )


def test_missing_sections() -> None:
    assert "[market] is missing" in error_of(config(market=None))
    assert "[strategy] is missing" in error_of(config(strategy=None))


def test_survival_section_validation() -> None:
    with_strategy = config(survival={"side": "long"}, engine={"grid": {"leverage": [1]}})
    assert "[survival] side is decided by the strategy" in error_of(with_strategy)
    no_leverage = config(strategy=None, survival={"horizon": "30D"})
    assert "[engine.grid] leverage is missing" in error_of(no_leverage)
    bad_horizon = config(
        strategy=None, survival={"horizon": "soon"}, engine={"grid": {"leverage": [2]}}
    )
    assert "[survival] horizon must be a positive duration" in error_of(bad_horizon)
    bad_side = config(strategy=None, survival={"side": "lon"}, engine={"grid": {"leverage": [2]}})
    assert "did you mean 'long'?" in error_of(bad_side)


def test_survival_spec_is_parsed() -> None:
    spec = parse_spec(
        config(
            strategy=None,
            survival={"horizon": "7D", "entry_every": "12h", "side": "both"},
            engine={"grid": {"leverage": [1, 10], "stop_loss": ["none", 0.05]}},
        )
    )
    assert spec.survival is not None and spec.survival.side == "both"
    assert spec.strategy is None and spec.n_cols == 4


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[market\nsymbols = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: is not valid TOML"):
        load_spec(bad)


def test_reserved_names_cannot_be_swept(tmp_path: Path) -> None:
    strategy = tmp_path / "reserved.py"  # a strategy file whose parameter is a key column
    strategy.write_text('PARAMS = {"symbol": [1]}\n')
    assert "grid key 'symbol' is reserved" in error_of(config(strategy={"name": str(strategy)}))


# -- the plan ------------------------------------------------------------------------------------


def test_chunk_values_follow_c_order() -> None:
    # Arrange: window [5, 7] (slowest) x side [long] x leverage [1, 5, 20] (fastest) = 6 columns
    spec = parse_spec(
        config(
            strategy={"name": STRATEGY, "grid": {"window": [5, 7], "side": ["long"]}},
            engine={"grid": {"leverage": [1, 5, 20]}},
        )
    )
    # Act: columns 2..4 -> (5, long, 20), (7, long, 1), (7, long, 5)
    values = chunk_values(spec, 2, 5)
    # Assert
    assert values == {"window": [5, 7, 7], "side": ["long"] * 3, "leverage": [20, 1, 5]}


def test_plan_covers_every_column_of_every_symbol_once() -> None:
    # Arrange: 2 symbols x 2 x 2 x 5 = 20 columns each, chunks of 7 -> 7 + 7 + 6 per symbol
    spec = parse_spec(
        config(
            market={"symbols": ["A", "B"]},
            engine={"grid": {"leverage": [1, 2, 3, 4, 5]}},
        )
    )
    # Act
    plan = make_plan(spec, 7)
    # Assert
    assert [(c.symbol, c.start, c.stop) for c in plan] == [
        ("A", 0, 7), ("A", 7, 14), ("A", 14, 20), ("B", 0, 7), ("B", 7, 14), ("B", 14, 20),
    ]  # fmt: skip
    assert [c.id for c in plan] == sorted(c.id for c in plan)
    assert make_plan(spec, 7) == plan  # deterministic


def test_default_chunk_size_is_a_quarter_capped() -> None:
    spec = parse_spec(config(engine={"grid": {"leverage": [1, 2, 3, 4, 5]}}))  # 20 columns
    assert make_plan(spec).chunk_size == 5
    with pytest.raises(ConfigError, match="chunk_size must be an integer >= 1, was 0"):
        make_plan(spec, 0)


def test_key_frame_types_are_stable_across_chunks() -> None:
    # Arrange: stop_loss [none, 0.05] -> float64 with NaN; window ints stay int64
    spec = parse_spec(
        config(
            strategy={"name": STRATEGY, "grid": {"window": [5], "side": ["long"]}},
            engine={"grid": {"stop_loss": ["none", 0.05]}},
        )
    )
    # Act
    first = key_frame(spec, Chunk("000-0000000000", "X", 0, 1))
    second = key_frame(spec, Chunk("000-0000000001", "X", 1, 2))
    # Assert
    assert list(first.columns) == ["symbol", "window", "side", "stop_loss", "col"]
    assert first.dtypes.equals(second.dtypes)
    assert np.isnan(first["stop_loss"].iloc[0]) and second["stop_loss"].iloc[0] == 0.05
    assert str(first["window"].dtype) == "int64" and second["col"].iloc[0] == 1


def test_output_section() -> None:
    spec = parse_spec({**config(), "output": {"trades": True}})
    assert spec.trades is True and spec.to_dict()["output"] == {"trades": True}
    assert parse_spec(config()).fingerprint() != spec.fingerprint()
    assert "[output] trades must be true or false" in error_of(
        {**config(), "output": {"trades": 1}}
    )
    assert "did you mean 'trades'?" in error_of({**config(), "output": {"trade": True}})
    survival = config(strategy=None, survival={}, engine={"grid": {"leverage": [2]}})
    assert "only recorded by strategy sweeps" in error_of({**survival, "output": {"trades": True}})


def test_quoted_number_says_it_must_be_a_number() -> None:
    # Arrange: taker_fee = "cheap" used to surface Python's "'<' not supported between
    # instances of 'str' and 'int'"
    # Act
    message = error_of(config(engine={"taker_fee": "cheap"}))
    grid_message = error_of(config(engine={"grid": {"slippage": ["0.0002"]}}))
    # Assert
    assert "cfg.toml: [engine] taker_fee must be a fraction in [0, 1)" in message
    assert "was 'cheap' (a string); write the number without quotes" in message
    assert "not supported" not in message
    assert "cfg.toml: [engine.grid] slippage must be a fraction in [0, 1)" in grid_message
    assert "was '0.0002' (a string)" in grid_message


def test_survival_values_are_checked_like_survival_study() -> None:
    # Arrange: RunConfig takes stop_loss up to 10 and leverage from 0, survival_study does not
    # (stop in (0, 1), leverage >= 1, size in (0, 1]); these used to fail in a worker after the
    # run directory was made
    def survival(engine: dict[str, Any]) -> dict[str, Any]:
        return config(strategy=None, survival={"horizon": "30D"}, engine=engine)

    # Act
    stop = error_of(survival({"grid": {"leverage": [2], "stop_loss": ["none", 5]}}))
    lev = error_of(survival({"grid": {"leverage": [0.5, 2]}}))
    size = error_of(survival({"position_size": 2, "grid": {"leverage": [2]}}))
    # Assert
    assert "[engine.grid] stop_loss must be a fraction in (0, 1), was 5; e.g. 0.05 for 5%" in stop
    assert "[engine.grid] leverage must be in [1, 1000], was 0.5" in lev  # the study's bound
    assert "[engine] position_size must be a fraction in (0, 1], was 2" in size
