"""Run a sweep config chunk by chunk into a resumable store; open finished runs (sweep layer).

``run_config`` validates the config, loads every market once, writes the plan, then runs the
chunks that are not on disk yet and appends nothing twice: each chunk's rows go to their own
file, written atomically, and the result table is assembled from the files in plan order.
"""

from __future__ import annotations

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
from backtester.sweep.executors import ChunkFunction, Executor, make_executor
from backtester.sweep.plan import Chunk, Plan, chunk_values, key_frame, make_plan
from backtester.sweep.store import RunStore, write_json_atomic

__all__ = ["Run", "open_run", "run_chunk", "run_config", "survival_chunk", "sweep_chunk"]

log = logging.getLogger(__name__)

MarketLoader = Callable[[SweepSpec, str], Any]


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
    like the results.
    """
    from backtester.config import RunConfig
    from backtester.engine.run import run_sweep
    from backtester.params import ParamGrid
    from backtester.sweep.config import _load_strategy

    if spec.strategy is None:
        raise ConfigError(f"{spec.source}: [strategy] is missing; a sweep needs a strategy")
    values = chunk_values(spec, chunk.start, chunk.stop)
    grid = ParamGrid.zip(**values)
    strategy = _load_strategy(spec.strategy)
    config = RunConfig(**dict(spec.engine))  # type: ignore[arg-type]
    result = run_sweep(market, strategy, grid, config=config)
    keys = key_frame(spec, chunk)
    rows = _join(keys, result.stats())
    if not spec.trades:
        return rows
    return {"results": rows, "trades": _trades(keys, result.trades())}


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

    A study with ``side = "both"`` gives two rows per setting (one per side).
    """
    from backtester import survival
    from backtester.sweep.config import _load_strategy

    survival_study: Any = survival.survival_study

    if spec.survival is None:
        raise ConfigError(f"{spec.source}: [survival] is missing; a survival sweep needs one")
    values = chunk_values(spec, chunk.start, chunk.stop)
    keys = key_frame(spec, chunk)
    scalars = dict(spec.engine)
    module = None if spec.strategy is None else _load_strategy(spec.strategy)
    frames = []
    for k in range(chunk.n_cols):
        setting: dict[str, Any] = {**scalars, **{name: values[name][k] for name in values}}
        named: dict[str, Any] = {n: (setting.pop(n),) for n in SURVIVAL_SETTINGS if n in setting}
        if module is not None:  # strategy mode: this row's parameters, one combination
            params = {p: setting.pop(p) for p in spec.strategy_params}
            named["strategy"] = _FixedParams(module, params)
        study = survival_study(
            market,
            side=spec.survival.side,
            horizon=spec.survival.horizon,
            entry_every=spec.survival.entry_every,
            **named,
            **setting,
        )
        table = study.table().reset_index(drop=True)
        row = keys.iloc[[k] * len(table)].reset_index(drop=True)
        frames.append(pd.concat([row, table.drop(columns=[c for c in table if c in row])], axis=1))
    return pd.concat(frames, ignore_index=True)


def run_chunk(spec: SweepSpec, chunk: Chunk, market: Any) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Run one chunk: a survival study when the config has [survival], else a sweep."""
    if spec.survival is not None:
        return survival_chunk(spec, chunk, market)
    return sweep_chunk(spec, chunk, market)


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
        """Return the key columns: ``symbol``, every swept name, ``col``."""
        names = list(self.metadata.get("grid_names", []))
        survival = self.metadata.get("mode") == "survival"
        sides = ["side"] if survival and "side" in self.table and "side" not in names else []
        return ["symbol", *names, *sides, "col"]

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
    meta = store.read_json(store.run_path)
    if meta.get("status") != "complete" or not store.results_path.is_file():
        done = len(store.finished_chunks()) if store.chunk_dir.is_dir() else 0
        raise DataError(
            f"the sweep in {str(store.root)!r} is not finished ({done} of "
            f"{meta.get('n_chunks', '?')} chunks); resume it with "
            f"`backtester sweep {meta.get('source', 'CONFIG')} --out {store.root} --resume`"
        )
    table = pd.read_parquet(store.results_path)
    return Run(path=store.root, table=table, config=meta["config"], metadata=meta)


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
    for path in store.root.iterdir():
        if path == store.chunk_dir and not any(path.iterdir()):
            continue
        if path == store.run_path or path.name.startswith(".tmp-"):
            continue
        return False
    return True


def _open_plan(
    spec: SweepSpec, store: RunStore, *, resume: bool, chunk_size: int | None
) -> tuple[Plan, bool]:
    # returns (plan, resumed)
    if store.has_plan():
        if not resume:
            raise ConfigError(
                f"--out {str(store.root)!r} already holds a sweep; pass --resume to continue it "
                "or choose another --out"
            )
        plan = Plan.from_dict(store.read_json(store.plan_path))
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
        return plan, True
    if not _is_fresh(store):
        raise ConfigError(
            f"--out {str(store.root)!r} exists and is not an empty sweep directory; "
            "choose a new --out"
        )
    return make_plan(spec, chunk_size), False


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
    from backtester.sweep.config import _load_strategy

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
    module = _load_strategy(spec.strategy)
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


class _NoSignals:
    # a strategy that never trades: the engine validates its settings and returns at once
    __name__ = "preflight"

    def __init__(self) -> None:
        self.PARAMS: dict[str, list[Any]] = {"preflight": [0]}

    @staticmethod
    def signals(market: Any, grid: Any) -> Any:
        import numpy as np

        from backtester.signals import Signals

        return Signals(np.zeros((market.n_bars, grid.n_cols), dtype=np.bool_))


def _check_leverage_limit(spec: SweepSpec, markets: Mapping[str, Any]) -> None:
    """Fail before any work when a symbol's tier tables refuse the config's highest leverage.

    The engine checks leverage against the lowest tier-1 maximum of the tables in force over the
    market's range; without this check that error came from a worker after the run directory
    was made, naming neither the file nor the key. One column that never trades runs per symbol.
    """
    swept = "leverage" in spec.engine_grid_names
    if any(n in spec.engine_grid_names for n in ("exchange", "tier_table")):
        return  # the tables differ per column: the run itself checks each one
    values = spec.values("leverage") if swept else (dict(spec.engine).get("leverage"),)
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return
    from backtester.config import RunConfig
    from backtester.engine.run import run_sweep
    from backtester.params import ParamGrid

    settings: dict[str, Any] = {**dict(spec.engine), "leverage": max(numbers)}
    config = RunConfig(**settings)
    where = "[engine.grid] leverage" if swept else "[engine] leverage"
    for market in markets.values():
        if market.n_bars < 2:
            continue
        try:
            run_sweep(market, _NoSignals(), ParamGrid.zip(preflight=[0]), config=config)
        except ConfigError as exc:
            raise ConfigError(f"{spec.source}: {where} is too high: {exc}") from exc


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
    store = RunStore(out)
    plan, resumed = _open_plan(spec, store, resume=resume, chunk_size=chunk_size)
    if executor is None:
        executor = make_executor(function, workers=workers, scheduler=scheduler)
    complete = resumed and store.results_path.is_file() and store.run_path.is_file()
    if complete and (done_meta := store.read_json(store.run_path)).get("status") == "complete":
        log.info("sweep %s is already complete", store.root)
        done_meta.update(
            resumed=True, chunks_run=0, elapsed_s=round(time.perf_counter() - started, 3)
        )
        write_json_atomic(store.run_path, done_meta)
        return open_run(store.root)

    # every market is loaded (and its data hashed) before any chunk runs
    markets = {symbol: load(spec, symbol) for symbol in spec.market.symbols}
    data = _fingerprints(markets)
    if resumed and store.run_path.is_file():
        started_with = store.read_json(store.run_path)
        version = started_with.get("backtester_version")
        if version != _version():
            raise ConfigError(
                f"--resume: the run in {str(store.root)!r} was started with backtester {version}, "
                f"this is {_version()}; results of two versions must not mix, start a new run"
            )
        before = started_with.get("data", {})
        for symbol, info in data.items():
            was = before.get(symbol, {}).get("sha256")
            if was != info["sha256"]:
                raise DataError(
                    f"--resume: the data of {symbol} changed since the run started (sha256 "
                    f"{info['sha256'][:12]} != {str(was)[:12]}); start a new run with another --out"
                )
    _check_strategy_values(spec, markets)
    _check_leverage_limit(spec, markets)
    store.create()
    meta: dict[str, Any] = {
        "backtester_version": _version(),
        "source": spec.source,
        "config": spec.to_dict(),
        "config_sha256": spec.fingerprint(),
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
    write_json_atomic(store.run_path, meta)
    if not resumed:  # the plan is written last: its presence means "this run has started"
        write_json_atomic(store.plan_path, plan.to_dict())

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
        for chunk, output in executor.run(spec, todo, markets):
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
    write_json_atomic(store.run_path, meta)
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
        ``tcp://HOST:PORT`` of a Dask scheduler; chunks then run on its workers.
    progress : bool
        Show a progress bar on stderr (chunks, elapsed, ETA, bar·columns/s).
    workers : int, optional
        Local worker processes (default: one per core; 1 runs in this process).
    chunk_size : int, optional
        Columns per chunk (default: a quarter of a symbol's grid, at most 20,000).

    Returns
    -------
    Run
        The finished run, as ``open_run(out)`` returns it.

    Raises
    ------
    ConfigError
        For a bad config (before any work), a resume that does not match, or bad options.
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
    )


def plan_summary(spec: SweepSpec, plan: Sequence[Chunk]) -> str:
    """Return one line describing the size of a sweep (for logs and the CLI)."""
    total = spec.n_cols * spec.n_symbols
    return (
        f"{spec.n_symbols} symbol(s) x {spec.n_cols:,} columns = {total:,} runs in "
        f"{len(plan)} chunks of <= {max((c.n_cols for c in plan), default=0):,} "
        f"({', '.join(f'{n}: {len(v)}' for n, v in spec.grid)})"
    )
