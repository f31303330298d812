"""Deterministic chunk plan of a sweep: chunk id → (symbol, column range) (sweep layer).

Column ``k`` of a symbol is the ``k``-th combination of the config's grid in C order (the first
swept name varies slowest, the last fastest). Strategy parameters come first, so a chunk spans
few distinct signal sets. The plan depends only on the config and the chunk size, so a resumed
run rebuilds exactly the same chunks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtester.errors import ConfigError
from backtester.sweep.config import Scalar, SweepSpec

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
PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class Chunk:
    """One unit of work: columns ``start <= col < stop`` of one symbol."""

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
    """Every chunk of a sweep, in result order, plus what the plan was built from."""

    config_sha256: str
    chunk_size: int
    n_cols: int
    chunks: tuple[Chunk, ...]

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self.chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-able data (written to ``<out>/plan.json``)."""
        return {
            "version": PLAN_VERSION,
            "config_sha256": self.config_sha256,
            "chunk_size": self.chunk_size,
            "n_cols": self.n_cols,
            "chunks": [[c.id, c.symbol, c.start, c.stop] for c in self.chunks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Rebuild a plan written by ``to_dict``."""
        try:
            if data["version"] != PLAN_VERSION:
                raise ConfigError(
                    f"plan.json version must be {PLAN_VERSION}, was {data['version']!r}; "
                    "start a new run with another --out"
                )
            return cls(
                config_sha256=str(data["config_sha256"]),
                chunk_size=int(data["chunk_size"]),
                n_cols=int(data["n_cols"]),
                chunks=tuple(
                    Chunk(str(i), str(s), int(a), int(b)) for i, s, a, b in data["chunks"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"plan.json is damaged ({type(exc).__name__}: {exc}); start a new run with another --out"
            ) from exc


def default_chunk_size(spec: SweepSpec) -> int:
    """Return the default columns per chunk: a quarter of a symbol's grid, at most 20,000.

    It depends on the config only (never on the machine), so a resumed run finds the same plan.
    """
    return max(1, min(MAX_CHUNK_COLUMNS, math.ceil(spec.n_cols / 4)))


def make_plan(spec: SweepSpec, chunk_size: int | None = None) -> Plan:
    """Split every symbol's columns into consecutive chunks of ``chunk_size`` columns.

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
        for s, symbol in enumerate(spec.market.symbols)
        for start in range(0, spec.n_cols, size)
    ]
    return Plan(spec.fingerprint(), size, spec.n_cols, tuple(chunks))


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

    Each swept name has one dtype for the whole sweep (ints stay int64; a number list holding
    ``"none"`` becomes float64 with NaN), so every chunk writes the same parquet schema.
    """
    values = chunk_values(spec, chunk.start, chunk.stop)
    data: dict[str, Any] = {"symbol": pd.Series([chunk.symbol] * chunk.n_cols, dtype=object)}
    for name, grid_values in spec.grid:
        dtype = _column_dtype(grid_values)
        column = values[name]
        if dtype == "float64":
            column = [np.nan if v is None else float(v) for v in column]  # type: ignore[arg-type]
        data[name] = pd.Series(column, dtype=dtype)
    data["col"] = np.arange(chunk.start, chunk.stop, dtype=np.int64)
    return pd.DataFrame(data)
