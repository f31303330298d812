"""Run a sweep config chunk by chunk into a resumable store; open finished runs (sweep layer).

``run_config`` validates the config, loads every market once, writes the plan, then runs the
chunks that are not on disk yet and appends nothing twice: each chunk's rows go to their own
file, written atomically, and the result table is assembled from the files in plan order.

One process at a time runs a run directory (an OS lock, ``RunStore.lock``). The plan records the
sha256 of the strategy's source; a resume with other code is refused, and every chunk, in any
worker, runs exactly that code (``strategies.load(..., sha256=...)``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtester.errors import ConfigError, DataError, did_you_mean
from backtester.sweep.config import SURVIVAL_SETTINGS, SweepSpec, load_spec, parse_spec
from backtester.sweep.executors import ChunkFunction, DaskSecurity, Executor, make_executor
from backtester.sweep.plan import Chunk, Plan, chunk_values, key_frame, make_plan
from backtester.sweep.store import LOCK_NAME, RunStore, _os_error, write_json_atomic

__all__ = [
    "Run",
    "equity_curves",
    "open_run",
    "run_chunk",
    "run_config",
    "survival_chunk",
    "sweep_chunk",
]

log = logging.getLogger(__name__)

MarketLoader = Callable[[SweepSpec, str], Any]

# strategy file -> the source sha256 this process must run (set by the runner and _Pinned)
_PINS: dict[str, str] = {}


def strategy_base(spec: SweepSpec) -> Path | None:
    """Return the folder a relative strategy path is relative to: the config file's folder."""
    return None if spec.source.startswith("<") else Path(spec.source).parent


def load_strategy(spec: SweepSpec) -> Any:
    """Return the config's strategy module through the one loader (``strategies.load``)."""
    from backtester import strategies

    if spec.strategy is None:
        raise ConfigError(f"{spec.source}: [strategy] is missing; a sweep needs a strategy")
    key = spec.strategy
    if strategies.is_path(key):
        key = str(strategies.resolve(key, base=strategy_base(spec)))
    return strategies.load(key, sha256=_PINS.get(key))


@dataclass(frozen=True, slots=True)
class _Pinned:
    # a chunk function that runs only the strategy source the plan recorded (in any process)
    function: ChunkFunction
    strategy: str
    sha256: str

    def __call__(self, spec: SweepSpec, chunk: Chunk, market: Any) -> Any:
        _PINS[self.strategy] = self.sha256
        return self.function(spec, chunk, market)


# ---------------------------------------------------------------------------------------------
# the work of one chunk (runs in a worker: keep it a top-level, importable function)


def _join(keys: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    stats = stats.reset_index(drop=True)
    for name in stats.columns:  # times are UTC: a chunk with no events must not turn naive
        column = stats[name]
        if pd.api.types.is_datetime64_dtype(column) and getattr(column.dt, "tz", None) is None:
            stats[name] = column.dt.tz_localize("UTC")
    if len(stats) != len(keys):
        raise DataError(f"a chunk returned {len(stats)} rows for {len(keys)} columns")
    stats = stats.drop(columns=[c for c in stats.columns if c in keys.columns])
    return pd.concat([keys, stats], axis=1)


def sweep_chunk(
    spec: SweepSpec, chunk: Chunk, market: Any
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Run ``run_sweep`` on one chunk's columns and return key columns + ``stats()``.

    With ``[output] trades = true`` return ``{"results": ..., "trades": ...}``, the trades keyed
    like the results. In an account sweep ``market`` is the ``MarketSet`` and the chunk's unit
    names the leg set (``run_sweep(market_set, strategy, grid, legs=...)``; trades have ``leg``
    and ``symbol``).
    """
    from backtester.config import RunConfig
    from backtester.engine.run import run_sweep
    from backtester.params import ParamGrid

    strategy = load_strategy(spec)
    values = chunk_values(spec, chunk.start, chunk.stop)
    grid = ParamGrid.zip(**values)
    config = RunConfig(**dict(spec.engine))  # type: ignore[arg-type]
    if spec.is_account:  # the chunk's unit is a leg set; market is the MarketSet
        result: Any = run_sweep(
            market, strategy, grid, config=config, legs=spec.legs_of(chunk.symbol)
        )
    else:
        result = run_sweep(market, strategy, grid, config=config)
    keys = key_frame(spec, chunk)
    rows = _join(keys, result.stats())
    if not spec.trades:
        return rows
    trades = result.trades()
    if spec.is_account and "side" in keys:  # the leg's side, apart from a "side" parameter
        trades = trades.rename(columns={"side": "leg_side"})
    return {"results": rows, "trades": _trades(keys, trades)}


def _trades(keys: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    # the chunk's local column numbers become the sweep's keys (symbol, parameters, col)
    local = trades["col"].to_numpy()
    keyed = keys.iloc[local].reset_index(drop=True)
    rest = trades.drop(columns=[c for c in trades.columns if c in keyed.columns])
    return pd.concat([keyed, rest.reset_index(drop=True)], axis=1)


class _FixedParams:
    # a strategy whose default grid is one combination of its parameters (survival rows)
    def __init__(self, module: Any, params: Mapping[str, Any]) -> None:
        self.__name__ = str(getattr(module, "__name__", "strategy")).rsplit(".", 1)[-1]
        self.PARAMS = {name: [value] for name, value in params.items()}
        self._module = module

    def signals(self, market: Any, grid: Any) -> Any:
        return self._module.signals(market, grid)


def survival_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame:
    """Run one survival study per setting of the chunk; return key columns + ``table()`` rows.

    A study with ``side = "both"`` gives two rows per setting (one per side). In an account
    sweep ``market`` is the ``MarketSet`` of every symbol and the chunk's unit names the leg set
    (``bt.survival_study(market_set, legs=...)``: every rolling entry opens the whole account).
    """
    from backtester import survival

    survival_study: Any = survival.survival_study

    if spec.survival is None:
        raise ConfigError(f"{spec.source}: [survival] is missing; a survival sweep needs one")
    values = chunk_values(spec, chunk.start, chunk.stop)
    keys = key_frame(spec, chunk)
    scalars = dict(spec.engine)
    module = None if spec.strategy is None else load_strategy(spec)
    account = spec.legs_of(chunk.symbol) if spec.is_account else None
    frames = []
    for k in range(chunk.n_cols):
        setting: dict[str, Any] = {**scalars, **{name: values[name][k] for name in values}}
        named: dict[str, Any] = {n: (setting.pop(n),) for n in SURVIVAL_SETTINGS if n in setting}
        if module is not None:  # strategy mode: this row's parameters, one combination
            params = {p: setting.pop(p) for p in spec.strategy_params}
            named["strategy"] = _FixedParams(module, params)
        if account is not None:  # the whole account at every rolling entry
            named["legs"] = account
        else:
            named["side"] = spec.survival.side
        study = survival_study(
            market,
            horizon=spec.survival.horizon,
            entry_every=spec.survival.entry_every,
            **named,
            **setting,
        )
        table = study.table().reset_index()
        row = keys.iloc[[k] * len(table)].reset_index(drop=True)
        frames.append(pd.concat([row, table.drop(columns=[c for c in table if c in row])], axis=1))
    return pd.concat(frames, ignore_index=True)


def run_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Run one chunk: a survival study when the config has [survival], else a sweep."""
    if spec.survival is not None:
        return survival_chunk(spec, chunk, market)
    return sweep_chunk(spec, chunk, market)


def load_spec_markets(spec: SweepSpec, load: MarketLoader | None = None) -> dict[str, Any]:
    """Return what each unit of the plan runs on, each market loaded once with ``load``.

    Each symbol's ``Market``; for an account sweep, every leg set's label maps to the one
    ``MarketSet`` of all the symbols (``MarketSet.from_markets``: their common bars).
    """
    from backtester.marketset import MarketSet

    load = load_spec_market if load is None else load
    markets = {symbol: load(spec, symbol) for symbol in spec.market.symbols}
    if not spec.is_account:
        return markets
    market_set = MarketSet.from_markets(list(markets.values()))
    return dict.fromkeys(spec.units, market_set)


def load_spec_market(spec: SweepSpec, symbol: str) -> Any:
    """Load ``symbol`` as the config's [market] section describes it."""
    from backtester.market import load_market

    m = spec.market
    return load_market(
        symbol, exchange=m.exchange, timeframe=m.timeframe, start=m.start, end=m.end, store=m.store
    )


# ---------------------------------------------------------------------------------------------
# opening a run


@dataclass(frozen=True, slots=True)
class Run:
    """A finished sweep: the result table, the normalised config and the run's metadata.

    Attributes
    ----------
    path : Path
        The run directory (``--out``).
    table : pandas.DataFrame
        One row per symbol × grid column (or per survival setting and side), keyed by
        ``symbol``, every swept name and ``col``, followed by the statistics.
    config : dict
        The normalised config (it round-trips through ``run_config``).
    metadata : dict
        The whole ``run.json``: package version, data sha256 per symbol, plan, timings.
    """

    path: Path
    table: pd.DataFrame = field(repr=False)
    config: dict[str, Any] = field(repr=False)
    metadata: dict[str, Any] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"Run({str(self.path)!r}, rows={len(self.table)}, "
            f"symbols={len(self.config.get('market', {}).get('symbols', []))}, "
            f"keys={self.keys})"
        )

    @property
    def keys(self) -> list[str]:
        """Return the key columns: ``symbol`` (``legs`` for accounts), every swept name, ``col``."""
        names = list(self.metadata.get("grid_names", []))
        survival = self.metadata.get("mode") == "survival"
        sides = ["side"] if survival and "side" in self.table and "side" not in names else []
        unit = "legs" if "legs" in self.table and "symbol" not in self.table else "symbol"
        return [unit, *names, *sides, "col"]

    def best(
        self, n: int = 10, *, by: str = "total_return", ascending: bool = False
    ) -> pd.DataFrame:
        """Return the ``n`` best rows by ``by`` (highest first unless ``ascending``)."""
        if by not in self.table.columns:
            raise ConfigError(
                f"by must be a column of the result table, was {by!r}"
                f"{did_you_mean(by, self.table.columns)}"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"n must be an integer >= 1, was {n!r}")
        return self.table.sort_values(by, ascending=ascending, kind="stable").head(n)

    def trades(self) -> pd.DataFrame:
        """Return every trade of the sweep (needs ``[output] trades = true`` in the config)."""
        path = self.path / "trades.parquet"
        if not path.is_file():
            raise DataError(
                f"the sweep in {str(self.path)!r} did not record trades; add [output] "
                "trades = true to its config and run it again with a new --out"
            )
        return pd.read_parquet(path)

    def worst(self, n: int = 10, *, by: str = "total_return") -> pd.DataFrame:
        """Return the ``n`` worst rows by ``by`` (lowest first)."""
        return self.best(n, by=by, ascending=True)


def equity_curves(run: Run, rows: pd.DataFrame, *, progress: bool = False) -> dict[str, pd.Series]:
    """Return the close equity per bar (quote) of ``rows`` of a strategy run, re-running them.

    Each row of ``run.table`` (``symbol`` or, in an account sweep, ``legs``, and ``col`` are
    read) is run again from the run's config, on the market (or MarketSet) loaded as the config
    describes it, with the strategy named there.
    Keys are labels like ``"BTC/USDT:USDT, side=short, leverage=3, stop_loss=none"``.

    Raises
    ------
    ConfigError
        A survival run (it has no equity curves), or a config that no longer loads.
    """
    from backtester.config import RunConfig
    from backtester.engine.run import run_sweep
    from backtester.params import ParamGrid

    if run.metadata.get("mode") == "survival":
        raise ConfigError("a survival run has no equity curves; pass a strategy sweep")
    spec = parse_spec(run.config, source=str(run.path / "run.json"))
    unit = spec.unit_column
    if "col" not in rows or unit not in rows:
        raise ConfigError(f"rows must be rows of the run's table (with {unit!r} and 'col')")
    strategy = load_strategy(spec)
    config = RunConfig(**dict(spec.engine))  # type: ignore[arg-type]
    markets: dict[str, Any] = {}
    out: dict[str, pd.Series] = {}
    bar = _bar(progress, len(rows), "equity curves")
    for symbol, col in zip(rows[unit], rows["col"], strict=True):
        if symbol not in markets:
            markets.update(
                load_spec_markets(spec)
                if spec.is_account
                else {symbol: load_spec_market(spec, symbol)}
            )
        values = chunk_values(spec, int(col), int(col) + 1)
        grid = ParamGrid.zip(**values)
        if spec.is_account:
            legs = spec.legs_of(str(symbol))
            result: Any = run_sweep(markets[symbol], strategy, grid, config=config, legs=legs)
        else:
            result = run_sweep(markets[symbol], strategy, grid, config=config)
        shown = ", ".join(f"{n}={'none' if v[0] is None else f'{v[0]:g}' if isinstance(v[0], float) else v[0]}" for n, v in values.items())  # fmt: skip
        out[f"{symbol}, {shown}" if shown else str(symbol)] = result.equity([0]).iloc[:, 0]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def _bar(progress: bool, total: int, desc: str) -> Any:
    # a tqdm bar on stderr when asked (tqdm is optional: None without it)
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, desc=desc, unit="setting", leave=False, file=sys.stderr)


def open_run(path: str | Path) -> Run:
    """Open a finished sweep run directory.

    Parameters
    ----------
    path : str or Path
        The ``--out`` directory of ``backtester sweep`` / ``run_config``.

    Returns
    -------
    Run
        ``.table`` (DataFrame), ``.config`` (dict), ``.metadata``, ``.path``.

    Raises
    ------
    DataError
        If the directory is not a sweep run or the run is not finished (the message says how
        to resume it).
    """
    store = RunStore(path)
    if not store.run_path.is_file():
        raise DataError(
            f"{str(store.root)!r} is not a sweep run (no run.json); "
            "pass the --out directory of `backtester sweep`"
        )
    meta = _read_meta(store)
    if meta["status"] != "complete" or not store.results_path.is_file():
        done = len(store.finished_chunks()) if store.chunk_dir.is_dir() else 0
        raise DataError(
            f"the sweep in {str(store.root)!r} is not finished ({done} of "
            f"{meta.get('n_chunks', '?')} chunks); resume it with "
            f"`backtester sweep {meta.get('source', 'CONFIG')} --out {store.root} --resume`"
        )
    table = store.read_table(store.results_path)
    return Run(path=store.root, table=table, config=meta["config"], metadata=meta)


# run.json keys a reader relies on, with their types
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "status": str,
    "config": dict,
    "n_chunks": int,
    "n_cols": int,
    "n_symbols": int,
    "grid_names": list,
    "data": dict,
    "backtester_version": str,
}


def _read_meta(store: RunStore) -> dict[str, Any]:
    # run.json, with the keys a reader relies on checked (DataError naming the file and key)
    meta = store.read_json(store.run_path)
    for key, kind in _META_TYPES.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DataError(
                f"{store.run_path}: {key} must be {getattr(kind, '__name__', kind)}, was "
                f"{value!r:.60}; the file is damaged, start a new run with another --out"
            )
    return meta


# ---------------------------------------------------------------------------------------------
# running a config


def _version() -> str:
    from backtester import __version__

    return __version__


class _Progress:
    # one tick per finished chunk on stderr; the first chunk is labelled "compile" (STYLE §7)
    def __init__(self, enabled: bool, total: int, done: int, bars_per_chunk: Mapping[str, int]):
        self.bar: Any = None
        self.bars_per_chunk = bars_per_chunk
        self.cells = 0
        self.start = time.perf_counter()
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional
            return
        self.bar = tqdm(
            total=total,
            initial=done,
            desc="compile",
            unit="chunk",
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} chunks "
            "[{elapsed}<{remaining}{postfix}]",
        )

    def tick(self, chunk_id: str) -> None:
        self.cells += self.bars_per_chunk[chunk_id]
        if self.bar is None:
            return
        rate = self.cells / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_description_str("sweep", refresh=False)
        self.bar.set_postfix_str(f"{_si(rate)} bar·columns/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def _fingerprints(markets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for symbol, market in markets.items():
        index = market.index
        out[symbol] = {
            "sha256": market.fingerprint(),
            "n_bars": int(market.n_bars),
            "first": str(index[0]) if len(index) else None,
            "last": str(index[-1]) if len(index) else None,
            "mark_source": getattr(market, "mark_source", None),
        }
    return out


def _is_fresh(store: RunStore) -> bool:
    # a missing or empty directory, or one a run was killed in before its plan was written
    if not store.root.exists():
        return True
    if not store.root.is_dir():
        raise ConfigError(
            f"--out {str(store.root)!r} is a file, not a directory; choose another --out"
        )
    try:
        entries = list(store.root.iterdir())
        for path in entries:
            if path == store.chunk_dir and path.is_dir() and not any(path.iterdir()):
                continue
            if path == store.run_path or path.name.startswith(".tmp-") or path.name == LOCK_NAME:
                continue
            return False
    except OSError as exc:
        raise _os_error(exc, store.root, "read") from exc
    return True


def _check_out(store: RunStore, *, resume: bool) -> None:
    # before anything is written: --out must be a new or empty directory, or a run to resume
    if store.has_plan():
        if not resume:
            raise ConfigError(
                f"--out {str(store.root)!r} already holds a sweep; pass --resume to continue it "
                "or choose another --out"
            )
        return
    if not _is_fresh(store):
        raise ConfigError(
            f"--out {str(store.root)!r} exists and is not an empty sweep directory; "
            "choose a new --out"
        )


def _open_plan(
    spec: SweepSpec,
    store: RunStore,
    *,
    resume: bool,
    chunk_size: int | None,
    strategy_sha256: str | None,
) -> tuple[Plan, bool]:
    # returns (plan, resumed); called with the run directory locked
    _check_out(store, resume=resume)
    if not store.has_plan():
        return make_plan(spec, chunk_size, strategy_sha256=strategy_sha256), False
    plan = Plan.from_dict(store.read_json(store.plan_path), source=str(store.plan_path))
    if plan.config_sha256 != spec.fingerprint():
        raise ConfigError(
            f"--resume: {spec.source} does not match the config the run in "
            f"{str(store.root)!r} was started with (config sha256 {spec.fingerprint()[:12]} "
            f"!= {plan.config_sha256[:12]}); resume with the original config or use a new --out"
        )
    if chunk_size is not None and chunk_size != plan.chunk_size:
        raise ConfigError(
            f"--resume: chunk_size must match the run's plan ({plan.chunk_size}), was "
            f"{chunk_size}; leave --chunk-size out when resuming"
        )
    if plan.strategy_sha256 != strategy_sha256:
        raise ConfigError(
            f"--resume: the code of strategy {spec.strategy!r} changed since the run in "
            f"{str(store.root)!r} started (source sha256 {str(strategy_sha256)[:12]} != "
            f"{str(plan.strategy_sha256)[:12]}); results of two versions must not mix: restore "
            "the original strategy file or start a new run with another --out"
        )
    expected = make_plan(spec, plan.chunk_size, strategy_sha256=strategy_sha256)
    if plan != expected:
        raise DataError(
            f"{store.plan_path}: its chunks are not the ones the config makes (chunk size "
            f"{plan.chunk_size}); the plan was edited or damaged, start a new run with another --out"
        )
    return plan, True


def _strategy_source(spec: SweepSpec) -> tuple[SweepSpec, str | None]:
    # the spec the workers get (a strategy file by its absolute path) and the source's sha256
    from backtester import strategies

    if spec.strategy is None:
        return spec, None
    try:
        if not strategies.is_path(spec.strategy):
            return spec, strategies.source_sha256(spec.strategy)
        path = strategies.resolve(spec.strategy, base=strategy_base(spec))
        sha = strategies.source_sha256(path)
    except ConfigError as exc:
        raise ConfigError(f"{spec.source}: [strategy] name {exc}") from exc
    return dataclasses.replace(spec, strategy=str(path)), sha


def _write_json(path: Path, data: Any) -> None:
    try:
        write_json_atomic(path, data)
    except OSError as exc:
        raise _os_error(exc, path, "write") from exc


_PREFLIGHT_BARS = 500
_PREFLIGHT_COLS = 20_000


def _check_strategy_values(spec: SweepSpec, markets: Mapping[str, Any]) -> None:
    """Fail before any work when the strategy refuses one of the config's parameter values.

    Strategies validate their own parameters inside ``signals`` (e.g. ``hold`` side must be
    'long' or 'short'); without this check the run directory would be created and the error
    would come from a worker, naming neither the file nor the section. The signals run on the
    first bars of the first market, over the strategy grid (or, for a very large grid, each
    parameter's values with the others at their first value).
    """
    if spec.strategy is None or not spec.strategy_params or not markets:
        return
    from backtester.params import ParamGrid

    market = next(iter(markets.values()))
    if market.n_bars < 2:
        return
    n = min(market.n_bars, _PREFLIGHT_BARS)
    sub = market.slice(None, market.index[n]) if n < market.n_bars else market
    values = {name: list(spec.values(name)) for name in spec.strategy_params}
    size = math.prod(len(v) for v in values.values())
    if size <= _PREFLIGHT_COLS:
        grids = [ParamGrid.product(**values)]
    else:
        first = {name: v[:1] for name, v in values.items()}
        grids = [ParamGrid.product(**{**first, name: v}) for name, v in values.items()]
    module = load_strategy(spec)
    for grid in grids:
        try:
            module.signals(sub, grid)
        except ConfigError as exc:
            raise ConfigError(
                f"{spec.source}: [strategy.grid] is invalid for {spec.strategy}: {exc}; "
                "fix the value in the config"
            ) from exc
        except Exception:  # anything else surfaces in the run itself, as before
            log.debug("strategy pre-check of %s skipped", spec.strategy, exc_info=True)
            return


def _check_engine_values(spec: SweepSpec, markets: Mapping[str, Any]) -> None:
    """Fail before any work when a market's rules refuse the config's engine settings.

    Each symbol's grid of engine settings is checked with :func:`bt.check_run
    <backtester.engine.run.check_run>` (leverage against the tier tables in force over the
    market's range, a flat maintenance rate against leverage, detail bars, memory); without
    this check the error came from a worker after the run directory was made, naming neither
    the file nor the key. A very large grid is checked one swept name at a time (the others at
    their first value), as the strategy values are.
    """
    from backtester.config import RunConfig
    from backtester.engine.run import check_run
    from backtester.params import ParamGrid

    names = [n for n in spec.engine_grid_names if n not in ("symbol", "col")]
    values = {name: list(spec.values(name)) for name in names}
    if math.prod(len(v) for v in values.values()) <= _PREFLIGHT_COLS:
        grids = [ParamGrid.product(**values)]
    else:
        first = {name: v[:1] for name, v in values.items()}
        grids = [ParamGrid.product(**{**first, name: v}) for name, v in values.items()]
    config = RunConfig(**dict(spec.engine))  # type: ignore[arg-type]
    for symbol, market in markets.items():
        if market.n_bars < 2:
            continue
        for grid in grids:
            try:
                check_run(market, grid, config=config)
            except ConfigError as exc:
                where = _section_of(spec, str(exc))
                raise ConfigError(f"{spec.source}: {where} does not fit {symbol}: {exc}") from exc


def _section_of(spec: SweepSpec, message: str) -> str:
    # the config key an engine error is about: the first swept or fixed setting it names
    for name in (*spec.engine_grid_names, *dict(spec.engine)):
        if message.startswith(name) or f" {name} " in f" {message} ":
            return f"[engine.grid] {name}" if name in spec.engine_grid_names else f"[engine] {name}"
    return "[engine]"


def _execute(
    source: str | Path | Mapping[str, Any] | SweepSpec,
    *,
    out: str | Path,
    resume: bool,
    executor: Executor | None,
    progress: bool,
    chunk_size: int | None,
    workers: int | None = None,
    scheduler: str | None = None,
    security: DaskSecurity | None = None,
    allow_insecure_scheduler: bool = False,
    function: ChunkFunction = run_chunk,
    load: MarketLoader = load_spec_market,
) -> Run:
    started = time.perf_counter()
    if isinstance(source, SweepSpec):
        spec = source
    elif isinstance(source, Mapping):
        spec = parse_spec(source)
    else:
        spec = load_spec(source)
    # the whole config is valid here; only now is a strategy file looked at (hashed, not run)
    work_spec, strategy_sha = _strategy_source(spec)
    store = RunStore(out)
    _check_out(store, resume=resume)  # refuse a non-sweep folder before writing into it
    if executor is None:
        if strategy_sha is not None and work_spec.strategy is not None:
            function = _Pinned(function, work_spec.strategy, strategy_sha)
        executor = make_executor(
            function,
            workers=workers,
            scheduler=scheduler,
            security=security,
            allow_insecure=allow_insecure_scheduler,
        )
    pin = work_spec.strategy if strategy_sha is not None else None
    with store.lock():
        if pin is not None and strategy_sha is not None:
            _PINS[pin] = strategy_sha  # chunks that run in this process check it too
        try:
            return _execute_locked(
                spec,
                work_spec,
                store,
                resume=resume,
                executor=executor,
                progress=progress,
                chunk_size=chunk_size,
                strategy_sha=strategy_sha,
                load=load,
                started=started,
            )
        finally:
            if pin is not None:
                _PINS.pop(pin, None)


def _execute_locked(
    spec: SweepSpec,
    work_spec: SweepSpec,
    store: RunStore,
    *,
    resume: bool,
    executor: Executor,
    progress: bool,
    chunk_size: int | None,
    strategy_sha: str | None,
    load: MarketLoader,
    started: float,
) -> Run:
    plan, resumed = _open_plan(
        spec, store, resume=resume, chunk_size=chunk_size, strategy_sha256=strategy_sha
    )
    started_with = _read_meta(store) if resumed else None
    if started_with is not None and started_with["status"] == "complete":
        try:
            store.read_table(store.results_path)
        except DataError as exc:  # damaged or missing: rebuilt from the chunks below
            log.warning("%s; rebuilding it from the chunks", exc)
        else:
            log.info("sweep %s is already complete", store.root)
            started_with.update(
                resumed=True, chunks_run=0, elapsed_s=round(time.perf_counter() - started, 3)
            )
            _write_json(store.run_path, started_with)
            return open_run(store.root)

    # every market is loaded (and its data hashed) before any chunk runs
    markets = load_spec_markets(spec, load)
    symbol_markets = (
        {s: next(iter(markets.values()))[s] for s in spec.market.symbols}
        if spec.is_account
        else markets
    )
    data = _fingerprints(symbol_markets)
    if started_with is not None:
        version = started_with["backtester_version"]
        if version != _version():
            raise ConfigError(
                f"--resume: the run in {str(store.root)!r} was started with backtester {version}, "
                f"this is {_version()}; results of two versions must not mix, start a new run"
            )
        before = started_with["data"]
        for symbol, info in data.items():
            entry = before.get(symbol)
            was = entry.get("sha256") if isinstance(entry, dict) else None
            if was != info["sha256"]:
                raise DataError(
                    f"--resume: the data of {symbol} changed since the run started (sha256 "
                    f"{info['sha256'][:12]} != {str(was)[:12]}); start a new run with another --out"
                )
    _check_strategy_values(work_spec, symbol_markets)
    _check_engine_values(spec, symbol_markets)
    store.create()
    meta: dict[str, Any] = {
        "backtester_version": _version(),
        "source": spec.source,
        "config": spec.to_dict(),
        "config_sha256": spec.fingerprint(),
        "strategy_sha256": strategy_sha,
        "mode": "survival" if spec.survival is not None else "sweep",
        "grid_names": list(spec.names),
        "n_cols": spec.n_cols,
        "n_symbols": spec.n_symbols,
        "n_chunks": len(plan),
        "chunk_size": plan.chunk_size,
        "data": data,
        "status": "running",
        "executor": repr(executor),
    }
    if work_spec.strategy != spec.strategy:
        meta["strategy_path"] = work_spec.strategy
    _write_json(store.run_path, meta)
    if not resumed:  # the plan is written last: its presence means "this run has started"
        _write_json(store.plan_path, plan.to_dict())

    expected = None if spec.survival is not None else {c.id: c.n_cols for c in plan}
    finished = store.finished_chunks(expected)
    todo = [c for c in plan if c.id not in finished]
    log.info(
        "sweep %s: %s; %d chunks done, %s; bars %s",
        spec.source,
        plan_summary(spec, plan.chunks),
        len(finished),
        executor,
        ", ".join(f"{s} {d['n_bars']:,}" for s, d in data.items()),
    )
    cells = {c.id: c.n_cols * int(markets[c.symbol].n_bars) for c in plan}
    bar = _Progress(progress, len(plan), len(finished), cells)
    try:
        for chunk, output in executor.run(work_spec, todo, markets):
            tables: dict[str, pd.DataFrame] = (
                dict(output) if isinstance(output, Mapping) else {"results": output}
            )
            rows = tables.pop("results")
            if expected is not None and len(rows) != chunk.n_cols:
                raise DataError(
                    f"chunk {chunk.id} returned {len(rows)} rows for {chunk.n_cols} columns"
                )
            for kind, frame in tables.items():  # first: the results file marks "finished"
                store.write_chunk(chunk.id, frame, kind)
            store.write_chunk(chunk.id, rows)
            bar.tick(chunk.id)
    finally:
        bar.close()
    store.assemble([c.id for c in plan])
    if spec.trades:
        store.assemble([c.id for c in plan], "trades")
    elapsed = time.perf_counter() - started
    meta.update(
        status="complete",
        elapsed_s=round(elapsed, 3),
        bar_columns=int(sum(cells.values())),
        resumed=resumed,
        chunks_run=len(todo),
    )
    _write_json(store.run_path, meta)
    log.info("sweep %s complete in %.1f s: %s", spec.source, elapsed, store.results_path)
    return open_run(store.root)


def run_config(
    path_or_dict: str | Path | Mapping[str, Any],
    *,
    out: str | Path,
    resume: bool = False,
    scheduler: str | None = None,
    progress: bool = False,
    workers: int | None = None,
    chunk_size: int | None = None,
    security: DaskSecurity | None = None,
    allow_insecure_scheduler: bool = False,
) -> Run:
    """Run a sweep config into the resumable run directory ``out`` and return the Run.

    Parameters
    ----------
    path_or_dict : str, Path or mapping
        A TOML file, or the same structure as a dict (``[market]``, ``[strategy]``,
        ``[engine]``, ``[survival]``).
    out : str or Path
        Run directory; must be new or empty unless ``resume``.
    resume : bool
        Continue the run in ``out``: finished chunks are kept, the rest are computed. The config
        and the data must be the ones the run started with.
    scheduler : str, optional
        Address of a Dask scheduler (``tls://HOST:PORT`` with ``security``; ``tcp://`` only
        on loopback unless ``allow_insecure_scheduler``); chunks then run on its workers.
    progress : bool
        Show a progress bar on stderr (chunks, elapsed, ETA, bar·columns/s).
    workers : int, optional
        Local worker processes (default: one per core; 1 runs in this process).
    chunk_size : int, optional
        Columns per chunk (default: a quarter of a symbol's grid, at most 20,000).
    security : DaskSecurity, optional
        TLS certificates for a ``tls://`` scheduler (``DaskSecurity(ca_file=..., cert=...,
        key=...)``).
    allow_insecure_scheduler : bool
        Accept a plain ``tcp://`` scheduler on another host. Dask sends pickles, i.e. code:
        anyone who can reach an unauthenticated scheduler or worker can run code in this
        process. Only for a cluster on a network you trust.

    Returns
    -------
    Run
        The finished run, as ``open_run(out)`` returns it.

    Raises
    ------
    ConfigError
        For a bad config (before any work), a resume that does not match (config, strategy
        code, package version), an ``out`` used by another running sweep, or bad options.
    DataError
        If a market cannot be loaded or its data changed since the run started.

    Examples
    --------
    >>> run = run_config("configs/sma_cross.toml", out="runs/sma")  # doctest: +SKIP
    >>> run.best(5, by="total_return")  # doctest: +SKIP
    """
    return _execute(
        path_or_dict,
        out=out,
        resume=resume,
        executor=None,
        progress=progress,
        chunk_size=chunk_size,
        workers=workers,
        scheduler=scheduler,
        security=security,
        allow_insecure_scheduler=allow_insecure_scheduler,
    )


def plan_summary(spec: SweepSpec, plan: Sequence[Chunk]) -> str:
    """Return one line describing the size of a sweep (for logs and the CLI)."""
    total = spec.n_cols * spec.n_symbols
    unit = "account(s)" if spec.is_account else "symbol(s)"
    return (
        f"{spec.n_symbols} {unit} x {spec.n_cols:,} columns = {total:,} runs in "
        f"{len(plan)} chunks of <= {max((c.n_cols for c in plan), default=0):,} "
        f"({', '.join(f'{n}: {len(v)}' for n, v in spec.grid)})"
    )
