"""TOML sweep configs: parse, validate and normalise them before any work starts (sweep layer).

A config names the markets, the strategy and its parameter grid, the engine settings (scalars and
a grid) and optionally a survival study. Every problem is reported as one ``ConfigError`` line that
names the file, the key, the value and the fix, so a bad config fails before any data is loaded.

Example::

    [market]
    exchange = "binanceusdm"
    symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    timeframe = "1h"
    start = "2023-01-01"
    end = "2024-01-01"

    [strategy]
    name = "sma_cross"

    [strategy.grid]
    fast = [10, 20]
    slow = [50, 100]

    [engine]
    taker_fee = 0.0005

    [engine.grid]
    leverage = [1, 5, 20]
    stop_loss = ["none", 0.05]

    [output]
    trades = true          # also write trades.parquet (one row per trade; off by default)

An account sweep holds the symbols together in one wallet: ``[market] legs`` is one table
``{symbol = weight}`` (``Σ|weight| <= 1``) or a list of them, each leg set run as one account
(rows keyed by its ``legs`` label, ``"BTC +0.5 / ETH -0.5"``, in place of ``symbol``); the
legs' order is the order of ``symbols``. With ``[strategy]`` every column is
``run_sweep(market_set, strategy, grid, legs=...)`` (a negative weight trades that symbol's
signals the other way round); with ``[survival]`` a survival study of the account (each leg's
side is its weight's sign)::

    [market]
    symbols = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    legs = [{"BTC/USDT:USDT" = 0.5, "ETH/USDT:USDT" = 0.5},
            {"BTC/USDT:USDT" = 0.5, "ETH/USDT:USDT" = -0.5}]
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtester._typing import EXCHANGES
from backtester.errors import BacktesterError, ConfigError, did_you_mean

__all__ = [
    "CONFIG_VERSION",
    "MarketSpec",
    "SurvivalSpec",
    "SweepSpec",
    "load_spec",
    "parse_spec",
]

# bump when the meaning of a normalised config changes (it is part of the plan hash)
CONFIG_VERSION = 1

Scalar = int | float | str | bool | None

_SECTIONS = ("market", "strategy", "engine", "survival", "output")
_OUTPUT_KEYS = ("trades",)
_MARKET_KEYS = ("exchange", "symbols", "legs", "timeframe", "start", "end", "store")
_STRATEGY_KEYS = ("name", "grid")
_ENGINE_TABLES = ("grid",)
_SURVIVAL_KEYS = ("horizon", "entry_every", "side")
_SIDES = ("long", "short", "both")
_TIMEFRAME = re.compile(r"^[1-9][0-9]*[smhdwM]$")
# key columns every result table has besides the swept names (``legs`` in account sweeps)
RESERVED_NAMES = ("symbol", "legs", "col")
# engine settings the survival study takes as named arguments (the rest pass through)
SURVIVAL_SETTINGS = ("leverage", "stop_loss", "position_size", "margin_mode")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketSpec:
    """Which markets a sweep runs on: one exchange, one or more symbols, one timeframe and range.

    ``legs`` (account sweeps): the leg sets, each ``((symbol, weight), ...)`` in the order of
    ``symbols``; empty when every symbol runs on its own.
    """

    exchange: str = "binanceusdm"
    symbols: tuple[str, ...]
    legs: tuple[tuple[tuple[str, float], ...], ...] = ()
    timeframe: str = "1h"
    start: str | None = None
    end: str | None = None
    store: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SurvivalSpec:
    """Rolling-entry survival settings: every chunk runs a survival study instead of a sweep."""

    horizon: str = "30D"
    entry_every: str = "1D"
    side: str = "long"


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepSpec:
    """A validated, normalised sweep config.

    ``grid`` lists every swept name in column order: strategy parameters first, then engine
    settings, each with its non-empty tuple of values (``None`` means "off", written ``"none"``
    in TOML). Column ``k`` of a symbol is the ``k``-th element of the cartesian product of the
    grid in that order (the last name varies fastest).
    """

    source: str
    market: MarketSpec
    strategy: str | None
    strategy_params: tuple[str, ...]
    grid: tuple[tuple[str, tuple[Scalar, ...]], ...]
    engine: tuple[tuple[str, Scalar], ...] = ()
    survival: SurvivalSpec | None = None
    trades: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        """Return the swept names in column order."""
        return tuple(name for name, _ in self.grid)

    @property
    def engine_grid_names(self) -> tuple[str, ...]:
        """Return the swept engine-setting names."""
        return tuple(n for n in self.names if n not in self.strategy_params)

    @property
    def n_cols(self) -> int:
        """Return the number of grid combinations per symbol."""
        return math.prod(len(values) for _, values in self.grid)

    @property
    def is_account(self) -> bool:
        """True when ``[market] legs`` makes the symbols one account (per leg set)."""
        return bool(self.market.legs)

    @property
    def unit_column(self) -> str:
        """Return the first key column of the results: ``legs`` for accounts, else ``symbol``."""
        return "legs" if self.is_account else "symbol"

    @property
    def units(self) -> tuple[str, ...]:
        """Return what the grid runs on: the symbols, or each leg set's label (accounts)."""
        if not self.is_account:
            return self.market.symbols
        from backtester.survival.study import legs_label

        return tuple(legs_label(one) for one in self.market.legs)

    def legs_of(self, unit: str) -> dict[str, float]:
        """Return the ``{symbol: weight}`` of the leg set labelled ``unit``."""
        for label, one in zip(self.units, self.market.legs, strict=True):
            if label == unit:
                return dict(one)
        raise ConfigError(
            f"{unit!r} is not a leg set of {self.source}{did_you_mean(unit, self.units)}"
        )

    @property
    def n_symbols(self) -> int:
        """Return the number of units the grid runs on (symbols, or leg sets of an account)."""
        return len(self.units)

    def values(self, name: str) -> tuple[Scalar, ...]:
        """Return the swept values of ``name``."""
        for key, values in self.grid:
            if key == name:
                return values
        raise ConfigError(f"{name!r} is not swept{did_you_mean(name, self.names)}")

    def to_dict(self) -> dict[str, Any]:
        """Return the normalised config as plain JSON-able data (it round-trips via parse_spec)."""
        market = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(self.market).items()
            if v is not None and k != "legs"
        }
        if self.market.legs:  # the legs' order is the order of symbols (JSON sorts keys)
            sets = [dict(one) for one in self.market.legs]
            market["legs"] = sets[0] if len(sets) == 1 else sets
        out: dict[str, Any] = {"market": market}
        if self.strategy is not None:
            out["strategy"] = {
                "name": self.strategy,
                "grid": {n: _encode_list(v) for n, v in self.grid if n in self.strategy_params},
            }
        engine: dict[str, Any] = {k: _encode(v) for k, v in self.engine}
        engine_grid = {n: _encode_list(v) for n, v in self.grid if n not in self.strategy_params}
        if engine_grid:
            engine["grid"] = engine_grid
        if engine:
            out["engine"] = engine
        if self.survival is not None:
            out["survival"] = dataclasses.asdict(self.survival)
            if self.is_account:  # each leg's side is the sign of its weight
                del out["survival"]["side"]
        if self.trades:
            out["output"] = {"trades": True}
        return out

    def fingerprint(self) -> str:
        """Return the sha256 of the normalised config (stable across key order and formatting)."""
        payload = json.dumps(
            {"version": CONFIG_VERSION, "config": self.to_dict()}, sort_keys=True, default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# entry points


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep config.

    Parameters
    ----------
    path : str or Path
        The ``.toml`` file.

    Returns
    -------
    SweepSpec

    Raises
    ------
    ConfigError
        If the file is missing, is not valid TOML, or any key or value is invalid; the message
        names the file, the key and the fix.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"sweep config {str(file)!r} does not exist; pass the path of a .toml file"
        )
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{file}: is not UTF-8 text (byte {exc.start} is {exc.object[exc.start : exc.start + 1]!r}); "
            "a sweep config is a UTF-8 TOML file: save it as UTF-8"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: is not valid TOML ({exc}); fix the syntax") from exc
    except OSError as exc:
        raise ConfigError(
            f"{file}: cannot be read ({exc.strerror or exc}); check the path and its permissions"
        ) from exc
    return parse_spec(data, source=str(file))


def parse_spec(data: Mapping[str, Any], *, source: str = "<dict>") -> SweepSpec:
    """Validate a config given as a mapping (the parsed TOML) and return a SweepSpec.

    Raises
    ------
    ConfigError
        On the first problem found; the message starts with ``source``.
    """
    return _Parser(source).parse(data)


# ---------------------------------------------------------------------------------------------
# helpers


def _encode(value: Scalar) -> Scalar:
    return "none" if value is None else value


def _encode_list(values: Sequence[Scalar]) -> list[Scalar]:
    return [_encode(v) for v in values]


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _load_strategy(name: str, source: str = "<dict>") -> Any:
    # the one strategy loader (strategies.params / strategies.load): a bundled name, or a .py
    # file relative to the config file; a file's PARAMS literal is read here WITHOUT running the
    # file, which the runner loads only after the whole config has validated
    from types import SimpleNamespace

    from backtester import strategies

    base = None if source.startswith("<") else Path(source).parent
    return SimpleNamespace(PARAMS=strategies.params(name, base=base))


def _normalise_time(value: Any) -> str:
    if isinstance(value, dt.datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return ts.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str, fix: str | None = None) -> ConfigError:
        hint = f"; {fix}" if fix else ""
        return ConfigError(f"{self.source}: {key} {message}{hint}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key.rsplit(".", 1)[-1])
        if not isinstance(value, Mapping):
            raise self.fail(
                f"[{key}]", f"must be a table, was {_type_name(value)}", f"write a [{key}] section"
            )
        return value

    def check_keys(self, data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(
                    f"{where} key {key!r}",
                    f"is not a known key{did_you_mean(key, allowed)}",
                    f"valid keys: {', '.join(allowed)}",
                )

    def string(self, data: Mapping[str, Any], key: str, where: str, default: str | None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(
                f"{where} {key}",
                f"must be a non-empty string, was {_show(value)}",
                f'write {key} = "..."',
            )
        return value

    # -- sections --------------------------------------------------------------------------

    def parse(self, data: Mapping[str, Any]) -> SweepSpec:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{self.source}: the config must be a table of sections")
        self.check_keys(data, _SECTIONS, "top-level")
        if "market" not in data:
            raise self.fail(
                "[market]", "is missing", 'add [market] with symbols = ["BTC/USDT:USDT"]'
            )
        market = self.market(self.table(data, "market"))
        survival = self.survival(self.table(data, "survival")) if "survival" in data else None
        strategy: str | None = None
        strategy_grid: list[tuple[str, tuple[Scalar, ...]]] = []
        if "strategy" in data:
            if survival is not None and "side" in data["survival"]:
                raise self.fail(
                    "[survival] side",
                    "is decided by the strategy when [strategy] is given",
                    "remove side (or [strategy] to study plain holds)",
                )
            strategy, strategy_grid = self.strategy(self.table(data, "strategy"))
        elif survival is None:
            raise self.fail(
                "[strategy]",
                "is missing",
                'add [strategy] with name = "hold" (or a [survival] section for a survival sweep)',
            )
        engine_scalars, engine_grid = self.engine(
            self.table(data, "engine") if "engine" in data else {},
            taken={name for name, _ in strategy_grid},
            survival=survival is not None,
        )
        grid = (*strategy_grid, *engine_grid)
        for name, _ in grid:
            if name in RESERVED_NAMES:
                raise self.fail(
                    f"grid key {name!r}",
                    "is reserved for a column of the result table",
                    "rename the strategy parameter",
                )
        if survival is not None and not grid:
            raise self.fail(
                "[engine.grid]", "is missing", "a survival sweep needs e.g. leverage = [1, 5, 20]"
            )
        if market.legs:
            self.check_account(data, survival)
        trades = self.output(self.table(data, "output")) if "output" in data else False
        if trades and survival is not None:
            raise self.fail(
                "[output] trades",
                "is only recorded by strategy sweeps",
                "remove it from a survival sweep",
            )
        return SweepSpec(
            source=self.source,
            market=market,
            strategy=strategy,
            strategy_params=tuple(name for name, _ in strategy_grid),
            grid=grid,
            engine=engine_scalars,
            survival=survival,
            trades=trades,
            raw=dict(data),
        )

    def market(self, data: Mapping[str, Any]) -> MarketSpec:
        self.check_keys(data, _MARKET_KEYS, "[market]")
        exchange = self.string(data, "exchange", "[market]", "binanceusdm")
        if exchange not in EXCHANGES:
            raise self.fail(
                "[market] exchange",
                f"must be one of {', '.join(EXCHANGES)}, was {exchange!r}"
                f"{did_you_mean(exchange, EXCHANGES)}",
            )
        symbols = data.get("symbols")
        if (
            not isinstance(symbols, list)
            or not symbols
            or not all(isinstance(s, str) and s for s in symbols)
        ):
            raise self.fail(
                "[market] symbols",
                f"must be a non-empty list of strings, was {_show(symbols)}",
                'write symbols = ["BTC/USDT:USDT"]',
            )
        duplicates = sorted({s for s in symbols if symbols.count(s) > 1})
        if duplicates:
            raise self.fail(
                "[market] symbols", f"lists {duplicates[0]!r} twice", "list each symbol once"
            )
        timeframe = self.string(data, "timeframe", "[market]", "1h")
        if not _TIMEFRAME.match(timeframe):
            raise self.fail(
                "[market] timeframe",
                f"must look like 1m, 15m, 1h or 1d, was {timeframe!r}",
                'write timeframe = "1h"',
            )
        start, end = (self.time(data, key) for key in ("start", "end"))
        if start is not None and end is not None and _to_ts(start) >= _to_ts(end):
            raise self.fail(
                "[market] start", f"must be before end, was {start!r} >= {end!r}", "swap them"
            )
        store = data.get("store")
        if store is not None and (not isinstance(store, str) or not store):
            raise self.fail(
                "[market] store",
                f"must be a directory path string, was {_show(store)}",
                'write store = "data" or leave it out for the default store',
            )
        legs = self.legs(data["legs"], tuple(symbols)) if "legs" in data else ()
        return MarketSpec(
            exchange=exchange,
            symbols=tuple(symbols),
            legs=legs,
            timeframe=timeframe,
            start=start,
            end=end,
            store=store,
        )

    def legs(
        self, value: Any, symbols: tuple[str, ...]
    ) -> tuple[tuple[tuple[str, float], ...], ...]:
        # one leg set {symbol = weight} or a list of them, each by the engine's own rule
        from backtester.engine.accounts_run import check_leg_weights
        from backtester.survival.study import legs_label

        example = (
            "write legs = {" + ", ".join(f'"{s}" = {1 / len(symbols):.4g}' for s in symbols) + "}"
        )
        sets = [value] if isinstance(value, Mapping) else value
        if not isinstance(sets, list) or not sets:
            raise self.fail(
                "[market] legs",
                f"must be a table {{symbol = weight}} or a list of such tables, was {_show(value)}",
                example,
            )
        out: list[tuple[tuple[str, float], ...]] = []
        for k, one in enumerate(sets):
            where = "[market] legs" if len(sets) == 1 else f"[market] legs[{k}]"
            if not isinstance(one, Mapping) or not one:
                raise self.fail(
                    where,
                    f"must name at least one symbol with its weight, was {_show(one)}",
                    example,
                )
            checked = dict(check_leg_weights(dict(one), symbols, where=f"{self.source}: {where}"))
            ordered = tuple((s, checked[s]) for s in symbols if s in checked)
            if legs_label(ordered) in (legs_label(x) for x in out):
                raise self.fail(
                    where, f"repeats the leg set {legs_label(ordered)!r}", "list each leg set once"
                )
            out.append(ordered)
        used = {s for one in out for s, _ in one}
        for s in symbols:
            if s not in used:
                raise self.fail(
                    "[market] symbols",
                    f"lists {s!r}, which no leg of [market] legs holds",
                    "remove it from symbols or give it a weight",
                )
        return tuple(out)

    def check_account(self, data: Mapping[str, Any], survival: SurvivalSpec | None) -> None:
        # what an account sweep models: a strategy's signals per symbol (run_sweep on the
        # MarketSet), or rolling-entry account survival studies
        if survival is None:
            return
        if "strategy" in data:
            raise self.fail(
                "[strategy]",
                "with [market] legs is not modelled by survival sweeps (every rolling entry "
                "opens the whole account)",
                "remove [strategy] or legs",
            )
        if "side" in data["survival"]:
            raise self.fail(
                "[survival] side",
                "has no meaning for an account (each leg's side is the sign of its weight)",
                "remove side and give a short leg a negative weight",
            )

    def output(self, data: Mapping[str, Any]) -> bool:
        self.check_keys(data, _OUTPUT_KEYS, "[output]")
        trades = data.get("trades", False)
        if not isinstance(trades, bool):
            raise self.fail(
                "[output] trades",
                f"must be true or false, was {_show(trades)}",
                "write trades = true to also write trades.parquet",
            )
        return trades

    def time(self, data: Mapping[str, Any], key: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str | dt.date | dt.datetime):
            raise self.fail(
                f"[market] {key}",
                f"must be a date string like 2023-01-01, was {_show(value)}",
                f'write {key} = "2023-01-01"',
            )
        text = _normalise_time(value)
        try:
            _to_ts(text)
        except ValueError as exc:
            raise self.fail(
                f"[market] {key}",
                f"is not a date, was {text!r}",
                f'write {key} = "2023-01-01" or "2023-01-01T00:00:00Z"',
            ) from exc
        return text

    def survival(self, data: Mapping[str, Any]) -> SurvivalSpec:
        self.check_keys(data, _SURVIVAL_KEYS, "[survival]")
        horizon = self.string(data, "horizon", "[survival]", "30D")
        entry_every = self.string(data, "entry_every", "[survival]", "1D")
        for key, value in (("horizon", horizon), ("entry_every", entry_every)):
            if not _is_duration(value):
                raise self.fail(
                    f"[survival] {key}",
                    f"must be a positive duration like 30D or 12h, was {value!r}",
                    f'write {key} = "{"30D" if key == "horizon" else "1D"}"',
                )
        side = self.string(data, "side", "[survival]", "long")
        if side not in _SIDES:
            raise self.fail(
                "[survival] side",
                f"must be one of {', '.join(_SIDES)}, was {side!r}{did_you_mean(side, _SIDES)}",
            )
        return SurvivalSpec(horizon=horizon, entry_every=entry_every, side=side)

    def strategy(self, data: Mapping[str, Any]) -> tuple[str, list[tuple[str, tuple[Scalar, ...]]]]:
        self.check_keys(data, _STRATEGY_KEYS, "[strategy]")
        name = self.string(data, "name", "[strategy]", None)
        try:
            module = _load_strategy(name, self.source)
        except BacktesterError as exc:
            raise self.fail("[strategy] name", str(exc)) from exc
        params = getattr(module, "PARAMS", None)
        if not isinstance(params, Mapping):
            raise self.fail("[strategy] name", f"{name!r} has no PARAMS default grid")
        given = self.table(data, "strategy.grid") if "grid" in data else {}
        for key in given:
            if key not in params:
                raise self.fail(
                    f"[strategy.grid] key {key!r}",
                    f"is not a parameter of {name}{did_you_mean(key, params)}",
                    f"{name} takes {', '.join(params) or 'no parameters'}",
                )
        grid = []
        for key, default in params.items():
            values = given.get(key, list(default))
            grid.append((key, self.grid_values(values, f"[strategy.grid] {key}")))
        return name, grid

    def engine(
        self, data: Mapping[str, Any], *, taken: set[str], survival: bool
    ) -> tuple[tuple[tuple[str, Scalar], ...], list[tuple[str, tuple[Scalar, ...]]]]:
        from backtester.config import setting_names

        names = list(setting_names())
        self.check_keys(data, [*names, *_ENGINE_TABLES], "[engine]")
        scalars: dict[str, Scalar] = {}
        for key, value in data.items():
            if key == "grid":
                continue
            if isinstance(value, list | dict):
                raise self.fail(
                    f"[engine] {key}",
                    f"must be a single value, was {_type_name(value)}",
                    f"to sweep it, move it to [engine.grid] as {key} = [...]",
                )
            where = f"[engine] {key}"
            scalars[key] = self.setting(key, self.scalar(value, where), where, survival)
        self.check_engine(scalars, "[engine]")
        grid: list[tuple[str, tuple[Scalar, ...]]] = []
        given = self.table(data, "engine.grid") if "grid" in data else {}
        self.check_keys(given, names, "[engine.grid]")
        for key, values in given.items():
            where = f"[engine.grid] {key}"
            if key in scalars:
                raise self.fail(
                    where, "is also set in [engine]", "keep it in one of the two sections"
                )
            if key in taken:
                raise self.fail(where, "is also a strategy parameter", "rename one of them")
            clean = tuple(
                self.setting(key, v, where, survival) for v in self.grid_values(values, where)
            )
            for value in clean:
                self.check_engine({**scalars, key: value}, where)
            grid.append((key, clean))
        if survival and "leverage" not in scalars and "leverage" not in dict(grid):
            raise self.fail(
                "[engine.grid] leverage",
                "is missing",
                "a survival sweep needs e.g. leverage = [1, 5, 20]",
            )
        return tuple(sorted(scalars.items())), grid

    def setting(self, name: str, value: Scalar, where: str, survival: bool) -> Scalar:
        # the settings spec checks each value (a survival sweep with the study's bounds); the
        # normalised value (5 -> 5.0) is what the plan hashes and the engine runs
        from backtester.config import check_setting

        checked: Scalar = check_setting(
            name, value, study=survival, where=f"{self.source}: {where}"
        )
        return checked

    def check_engine(self, settings: Mapping[str, Scalar], where: str) -> None:
        # combinations the single values cannot show (a flat maintenance rate too high for the
        # leverage is checked against the market, before the run: engine.run.check_run)
        from backtester.config import RunConfig

        try:
            RunConfig(**settings)  # type: ignore[arg-type]
        except BacktesterError as exc:
            raise self.fail(where, f"is invalid: {exc}") from exc

    def scalar(self, value: Any, where: str) -> Scalar:
        if isinstance(value, str) and value.lower() == "none":
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, dt.date | dt.datetime):
            return _normalise_time(value)
        raise self.fail(
            where,
            f"must be a number, string or boolean, was {_type_name(value)} {_show(value)}",
            'write "none" to switch a setting off',
        )

    def grid_values(self, values: Any, where: str) -> tuple[Scalar, ...]:
        name = where.rsplit(" ", 1)[-1]
        if not isinstance(values, list):
            raise self.fail(
                where,
                f"must be a list of values, was {_type_name(values)} {_show(values)}",
                f"write {name} = [{_show(values)}]",
            )
        if not values:
            raise self.fail(
                where,
                "is an empty grid (a sweep over no values runs nothing)",
                f"give at least one value, e.g. {name} = [...], or remove the key",
            )
        clean = tuple(self.scalar(v, where) for v in values)
        keyed = [(_kind(v), v) for v in clean]
        for i, key in enumerate(keyed):
            if key in keyed[:i]:
                raise self.fail(
                    where, f"lists {_show(_encode(key[1]))} twice", "list each value once"
                )
        kinds = {_kind(v) for v in clean if v is not None}
        if len(kinds) > 1:
            raise self.fail(
                where,
                f"mixes {' and '.join(sorted(kinds))} values: {_show(_encode_list(clean))}",
                "use one type per parameter (write 5.0 or 5, not both styles with strings)",
            )
        return clean


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def _to_ts(text: str) -> Any:
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from exc
    if ts is pd.NaT:
        raise ValueError("not a time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _is_duration(text: str) -> bool:
    import pandas as pd

    try:
        return bool(pd.Timedelta(text) > pd.Timedelta(0))
    except (ValueError, TypeError):
        return False
