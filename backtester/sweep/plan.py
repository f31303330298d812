"""Deterministic chunk plan of a sweep: chunk id → (symbol, column range) (sweep layer).

Column ``k`` of a symbol is the ``k``-th combination of the config's grid in C order (the first
swept name varies slowest, the last fastest). Strategy parameters come first, so a chunk spans
few distinct signal sets. The plan depends only on the config and the chunk size, so a resumed
run rebuilds exactly the same chunks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtester.errors import ConfigError, DataError
from backtester.sweep.config import Scalar, SweepSpec
from backtester.sweep.store import CHUNK_ID

__all__ = [
    "MAX_CHUNK_COLUMNS",
    "Chunk",
    "Plan",
    "chunk_values",
    "default_chunk_size",
    "key_frame",
    "make_plan",
]

# the default chunk never holds more columns than this (bounds a worker's memory)
MAX_CHUNK_COLUMNS = 20_000
# 2: the plan records the strategy's source sha256 (a resume with changed code is refused)
PLAN_VERSION = 2


@dataclass(frozen=True, slots=True)
class Chunk:
    """One unit of work: columns ``start <= col < stop`` of one symbol (or leg set's label)."""

    id: str
    symbol: str
    start: int
    stop: int

    @property
    def n_cols(self) -> int:
        """Return the number of columns in the chunk."""
        return self.stop - self.start


@dataclass(frozen=True, slots=True)
class Plan:
    """Every chunk of a sweep, in result order, plus what the plan was built from.

    ``strategy_sha256`` is the sha256 of the strategy's source file (None without a strategy):
    a run resumes only with the code it started with.
    """

    config_sha256: str
    chunk_size: int
    n_cols: int
    chunks: tuple[Chunk, ...]
    strategy_sha256: str | None = None

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-able data (written to ``<out>/plan.json``)."""
        return {
            "version": PLAN_VERSION,
            "config_sha256": self.config_sha256,
            "strategy_sha256": self.strategy_sha256,
            "chunk_size": self.chunk_size,
            "n_cols": self.n_cols,
            "chunks": [[c.id, c.symbol, c.start, c.stop] for c in self.chunks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "plan.json") -> Plan:
        """Rebuild a plan written by ``to_dict``; ``source`` names the file in errors.

        Raises
        ------
        DataError
            If the data is not a plan of this version, or a chunk id, symbol or column range
            is malformed (a tampered chunk id could otherwise name a file outside the run).
        """
        fix = "the plan was edited or damaged; start a new run with another --out"
        if data.get("version") != PLAN_VERSION:
            raise DataError(
                f"{source}: version must be {PLAN_VERSION}, was {data.get('version')!r}; a plan "
                "of another backtester version cannot be resumed, start a new run with another "
                "--out"
            )
        try:
            strategy = data["strategy_sha256"]
            config_sha = data["config_sha256"]
            chunk_size, n_cols, rows = data["chunk_size"], data["n_cols"], data["chunks"]
            if not isinstance(config_sha, str) or not _SHA256.fullmatch(config_sha):
                raise ValueError(f"config_sha256 {config_sha!r:.40} is not a sha256")
            if strategy is not None and (
                not isinstance(strategy, str) or not _SHA256.fullmatch(strategy)
            ):
                raise ValueError(f"strategy_sha256 {strategy!r:.40} is not a sha256")
            if not _is_count(chunk_size) or not _is_count(n_cols) or not isinstance(rows, list):
                raise ValueError("chunk_size, n_cols or chunks has the wrong type")
            chunks = []
            for row in rows:
                if not isinstance(row, list) or len(row) != 4:
                    raise ValueError(f"chunk {row!r:.60} is not [id, symbol, start, stop]")
                chunk_id, symbol, start, stop = row
                if not isinstance(chunk_id, str) or not CHUNK_ID.fullmatch(chunk_id):
                    raise ValueError(f"chunk id {chunk_id!r:.60} is not like '000-0000000000'")
                if not isinstance(symbol, str) or not symbol:
                    raise ValueError(f"chunk {chunk_id} symbol {symbol!r:.60} is not a symbol")
                if not (_is_count(start, 0) and _is_count(stop) and start < stop <= n_cols):
                    raise ValueError(f"chunk {chunk_id} range [{start!r}, {stop!r}) is invalid")
                chunks.append(Chunk(chunk_id, symbol, start, stop))
        except (KeyError, TypeError, ValueError) as exc:
            what = f"has no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DataError(f"{source}: {what}; {fix}") from None
        if len({c.id for c in chunks}) != len(chunks):
            raise DataError(f"{source}: lists a chunk id twice; {fix}")
        return cls(config_sha, chunk_size, n_cols, tuple(chunks), strategy)


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_count(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def default_chunk_size(spec: SweepSpec) -> int:
    """Return the default columns per chunk: a quarter of a symbol's grid, at most 20,000.

    It depends on the config only (never on the machine), so a resumed run finds the same plan.
    """
    return max(1, min(MAX_CHUNK_COLUMNS, math.ceil(spec.n_cols / 4)))


def make_plan(
    spec: SweepSpec, chunk_size: int | None = None, *, strategy_sha256: str | None = None
) -> Plan:
    """Split every symbol's columns into consecutive chunks of ``chunk_size`` columns.

    ``strategy_sha256`` (the strategy source's hash) is recorded in the plan.

    Raises
    ------
    ConfigError
        If ``chunk_size`` is not a positive integer.
    """
    size = default_chunk_size(spec) if chunk_size is None else chunk_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(
            f"chunk_size must be an integer >= 1, was {size!r}; try --chunk-size 1000"
        )
    chunks = [
        Chunk(f"{s:03d}-{start:010d}", symbol, start, min(start + size, spec.n_cols))
        for s, symbol in enumerate(spec.units)
        for start in range(0, spec.n_cols, size)
    ]
    return Plan(spec.fingerprint(), size, spec.n_cols, tuple(chunks), strategy_sha256)


def chunk_values(spec: SweepSpec, start: int, stop: int) -> dict[str, list[Scalar]]:
    """Return each swept name's value for columns ``start <= col < stop``.

    Examples
    --------
    With ``fast = [10, 20]`` and ``leverage = [1, 5, 20]`` column 4 is (fast=20, leverage=5).
    """
    shape = tuple(len(values) for _, values in spec.grid)
    if not 0 <= start <= stop <= spec.n_cols:
        raise ConfigError(f"column range must lie in [0, {spec.n_cols}], was [{start}, {stop})")
    cols = np.arange(start, stop, dtype=np.int64)
    indices = np.unravel_index(cols, shape) if shape else ()
    out: dict[str, list[Scalar]] = {}
    for (name, values), idx in zip(spec.grid, indices, strict=True):
        table = np.empty(len(values), dtype=object)
        table[:] = list(values)
        out[name] = table[idx].tolist()
    return out


def _column_dtype(values: tuple[Scalar, ...]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean" if len(present) < len(values) else "bool"
    if present and all(isinstance(v, int | float) for v in present):
        if len(present) == len(values) and all(isinstance(v, int) for v in present):
            return "int64"
        return "float64"
    return "object"


def key_frame(spec: SweepSpec, chunk: Chunk) -> pd.DataFrame:
    """Return the key columns of a chunk's rows: ``symbol``, every swept name, then ``col``.

    An account sweep's rows start with ``legs`` (the leg set's label) instead of ``symbol``.

    Each swept name has one dtype for the whole sweep (ints stay int64; a number list holding
    ``"none"`` becomes float64 with NaN), so every chunk writes the same parquet schema.
    """
    values = chunk_values(spec, chunk.start, chunk.stop)
    unit = pd.Series([chunk.symbol] * chunk.n_cols, dtype=object)
    data: dict[str, Any] = {spec.unit_column: unit}
    for name, grid_values in spec.grid:
        dtype = _column_dtype(grid_values)
        column = values[name]
        if dtype == "float64":
            column = [np.nan if v is None else float(v) for v in column]  # type: ignore[arg-type]
        data[name] = pd.Series(column, dtype=dtype)
    data["col"] = np.arange(chunk.start, chunk.stop, dtype=np.int64)
    return pd.DataFrame(data)
