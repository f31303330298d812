"""ParamGrid: named parameter combinations, one column each, with labels (layer: params).

A grid may mix strategy parameters and engine settings (names of ``RunConfig`` fields);
``run_sweep`` splits them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from backtester.errors import ConfigError, ShapeError, did_you_mean

__all__ = [
    "ParamGrid",
    "available_memory",
    "check_grid_size",
    "format_bytes",
    "refuse_beyond_memory",
]


def _as_list(name: str, values: Any) -> list[Any]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        return [values]
    out = list(values)
    if not out:
        raise ConfigError(f"ParamGrid parameter {name!r} has no values; give at least one")
    return out


# bytes one grid cell costs: a list slot, its share of the label index and the per-column
# arrays built from it (generous: a grid is refused only when it cannot possibly run)
_BYTES_PER_CELL = 48


def available_memory() -> int | None:
    """Return the bytes of memory this machine has available now (None where unknown)."""
    try:  # Linux: MemAvailable counts the page cache the kernel would give back
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not a POSIX system: no estimate
        return None


def format_bytes(n: float) -> str:
    """Return ``n`` bytes as text with a binary unit (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover - unreachable


def refuse_beyond_memory(need: int, subject: str) -> None:
    """Raise ConfigError when ``need`` bytes exceed the memory available (``subject`` needs...)."""
    free = available_memory()
    if free is not None and need > free:
        raise ConfigError(
            f"{subject} needs about {format_bytes(need)}, more than the {format_bytes(free)} of "
            "memory available; sweep fewer values, or run it as a chunked sweep (backtester "
            "sweep config.toml --out runs/<name>)"
        )


def check_grid_size(n_cols: int, n_names: int, what: str) -> None:
    """Refuse, before allocating, a grid whose columns cannot fit in memory."""
    need = n_cols * max(n_names, 1) * _BYTES_PER_CELL
    refuse_beyond_memory(need, f"{what} of {n_cols:,} columns ({n_names} parameters)")


class ParamGrid:
    """Columns of parameter values: ``grid.values(name)[col]`` is column ``col``'s value.

    Build with :meth:`product` (every combination), :meth:`zip` (element-wise), then
    :meth:`where` to filter and :meth:`take` to select columns.

    Examples
    --------
    >>> g = ParamGrid.product(fast=[10, 20], slow=[50, 100]).where(lambda p: p.fast < p.slow)
    >>> g.n_cols
    4
    """

    __slots__ = ("_names", "_values")

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        lengths = {name: len(v) for name, v in columns.items()}
        if len(set(lengths.values())) > 1:
            raise ShapeError(
                f"ParamGrid columns must have equal lengths, were {lengths}; use "
                "ParamGrid.product for combinations"
            )
        for name in columns:
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"ParamGrid parameter names must be identifiers, was {name!r}")
        self._names: tuple[str, ...] = tuple(columns)
        self._values: dict[str, list[Any]] = {k: list(v) for k, v in columns.items()}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def product(cls, **params: Any) -> ParamGrid:
        """Return every combination of the given values (the last name varies fastest).

        Raises
        ------
        ConfigError
            The grid would not fit in this machine's memory (checked before allocating).
        """
        names = list(params)
        lists = [_as_list(n, params[n]) for n in names]
        n_cols = math.prod(len(v) for v in lists)
        check_grid_size(n_cols, len(names), "ParamGrid.product")
        cols: dict[str, list[Any]] = {}
        stride = n_cols
        for name, values in zip(names, lists, strict=True):
            stride //= len(values)
            idx = (np.arange(n_cols, dtype=np.int64) // stride) % len(values)
            cols[name] = [values[i] for i in idx.tolist()]
        return cls(cols)

    @classmethod
    def zip(cls, **params: Any) -> ParamGrid:
        """Return columns pairing the k-th values of every parameter (equal lengths)."""
        lists = {n: _as_list(n, v) for n, v in params.items()}
        lengths = {n: len(v) for n, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise ShapeError(f"ParamGrid.zip needs lists of equal length, were {lengths}")
        return cls(lists)

    # ------------------------------------------------------------------ properties
    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in column-label order."""
        return self._names

    @property
    def n_cols(self) -> int:
        """Number of columns (parameter combinations)."""
        if not self._names:
            return 1
        return len(self._values[self._names[0]])

    @property
    def labels(self) -> pd.MultiIndex:
        """A MultiIndex with one level per parameter; row ``col`` labels column ``col``."""
        if not self._names:
            return pd.MultiIndex.from_arrays([np.zeros(1, dtype=np.int64)], names=["col"])
        arrays = [pd.Index(self._values[n], dtype=object) for n in self._names]
        arrays = [a.infer_objects() if not any(v is None for v in a) else a for a in arrays]
        return pd.MultiIndex.from_arrays(arrays, names=list(self._names))

    def values(self, name: str) -> list[Any]:
        """Return the values of parameter ``name`` for every column (a new list)."""
        if name not in self._values:
            raise ConfigError(
                f"ParamGrid has no parameter {name!r}{did_you_mean(name, self._names)}"
            )
        return list(self._values[name])

    def rows(self) -> list[NamedTuple]:
        """Return one namedtuple of parameter values per column."""
        row_t = _row_type(self._names)
        return [row_t(*vals) for vals in zip(*(self._values[n] for n in self._names), strict=True)]

    # ------------------------------------------------------------------ transforms
    def where(self, predicate: Callable[[Any], Any]) -> ParamGrid:
        """Keep the columns whose row (attributes named after the parameters) passes."""
        keep = [k for k, row in enumerate(self.rows()) if bool(predicate(row))]
        if not keep:
            raise ConfigError("ParamGrid.where removed every column; loosen the predicate")
        return self.take(keep)

    def take(self, cols: Sequence[int] | np.ndarray) -> ParamGrid:
        """Return a grid of the given column numbers (in that order)."""
        idx = [int(c) for c in np.asarray(cols, dtype=np.int64).ravel()]
        for c in idx:
            if c < 0 or c >= self.n_cols:
                raise ShapeError(f"ParamGrid.take column {c} is outside [0, {self.n_cols - 1}]")
        if not self._names:
            return ParamGrid.product()
        return ParamGrid({n: [self._values[n][c] for c in idx] for n in self._names})

    def select(self, names: Sequence[str]) -> ParamGrid:
        """Return a grid with only the named parameters (columns keep their order)."""
        for n in names:
            if n not in self._values:
                raise ConfigError(f"ParamGrid has no parameter {n!r}{did_you_mean(n, self._names)}")
        if not names:
            grid = ParamGrid({})
            return grid
        return ParamGrid({n: self._values[n] for n in names})

    def cross(self, other: ParamGrid) -> ParamGrid:
        """Return every combination of this grid's columns with ``other``'s (other fastest)."""
        clash = set(self._names) & set(other.names)
        if clash:
            raise ConfigError(f"ParamGrid.cross: both grids define {sorted(clash)}")
        if not other.names:
            return self
        if not self._names:
            return other
        a, b = self.n_cols, other.n_cols
        check_grid_size(a * b, len(self._names) + len(other.names), "ParamGrid.cross")
        cols: dict[str, list[Any]] = {}
        for n in self._names:
            cols[n] = [v for v in self._values[n] for _ in range(b)]
        for n in other.names:
            cols[n] = list(other.values(n)) * a
        return ParamGrid(cols)

    def unique(self) -> tuple[ParamGrid, np.ndarray]:
        """Return the distinct columns (first-seen order) and each column's index among them."""
        keys: dict[tuple[Any, ...], int] = {}
        inverse = np.empty(self.n_cols, dtype=np.int64)
        firsts: list[int] = []
        for c, row in enumerate(zip(*(self._values[n] for n in self._names), strict=True)):
            key = tuple(_hashable(v) for v in row)
            k = keys.get(key)
            if k is None:
                k = len(firsts)
                keys[key] = k
                firsts.append(c)
            inverse[c] = k
        if not self._names:
            return self, np.zeros(self.n_cols, dtype=np.int64)
        return self.take(firsts), inverse

    def __len__(self) -> int:
        return self.n_cols

    def __repr__(self) -> str:
        return f"ParamGrid(n_cols={self.n_cols}, names={list(self._names)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParamGrid):
            return NotImplemented
        return self._names == other._names and self._values == other._values

    __hash__ = None  # type: ignore[assignment]


def _hashable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN
        return ("nan",)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


_ROW_TYPES: dict[tuple[str, ...], Any] = {}


def _row_type(names: tuple[str, ...]) -> Any:
    from collections import namedtuple

    if names not in _ROW_TYPES:
        _ROW_TYPES[names] = namedtuple("Params", names)  # type: ignore[misc]
    return _ROW_TYPES[names]
