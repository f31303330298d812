"""Exception hierarchy and uniform validation helpers; importable from every layer."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "BacktesterError",
    "BacktesterWarning",
    "ConfigError",
    "DataError",
    "ExchangeError",
    "ShapeError",
    "check_fraction",
    "check_in_range",
    "check_one_of",
    "check_positive",
    "did_you_mean",
]


class BacktesterError(Exception):
    """Root of every error the library raises on purpose; the CLI catches only this."""


class ConfigError(BacktesterError, ValueError):
    """A parameter value or combination of values is invalid."""


class DataError(BacktesterError, ValueError):
    """An input frame or stored dataset violates the schema, or requested data is missing."""


class ShapeError(BacktesterError, ValueError):
    """Arrays or parameters cannot be broadcast to the expected shape."""


class ExchangeError(BacktesterError):
    """An exchange request failed (wraps ccxt errors with ``raise ... from e``)."""


class BacktesterWarning(UserWarning):
    """Suspect but valid input, such as a very short history or fees above 1 %."""


def _fmt(value: Any) -> str:
    # floats and strings as Python reads them back (0.5, 2.0, 'x'); anything else as str()
    return repr(value) if isinstance(value, float | str) else str(value)


def _hint(hint: str | None) -> str:
    return f"; {hint}" if hint else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_positive(value: Any, name: str, *, hint: str | None = None) -> float:
    """Return ``value`` as float if it is a finite number > 0, else raise ConfigError."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, was {_fmt(value)}{_hint(hint)}")
    return float(value)


def check_fraction(
    value: Any, name: str, *, hint: str | None = None, allow_one: bool = False
) -> float:
    """Return ``value`` as float if it lies in [0, 1) (or [0, 1]), else raise ConfigError."""
    upper_ok = (value <= 1) if allow_one else (value < 1)
    if not _is_number(value) or not math.isfinite(value) or value < 0 or not upper_ok:
        bracket = "[0, 1]" if allow_one else "[0, 1)"
        raise ConfigError(f"{name} must be a fraction in {bracket}, was {_fmt(value)}{_hint(hint)}")
    return float(value)


def check_in_range(
    value: Any,
    name: str,
    low: float,
    high: float,
    *,
    hint: str | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as float if it lies within [low, high] (bounds as asked), else raise."""
    ok = _is_number(value) and math.isfinite(value)
    if ok:
        ok = (value >= low if low_inclusive else value > low) and (
            value <= high if high_inclusive else value < high
        )
    if not ok:
        lb = "[" if low_inclusive else "("
        rb = "]" if high_inclusive else ")"
        raise ConfigError(
            f"{name} must be in {lb}{_fmt(low)}, {_fmt(high)}{rb}, was {_fmt(value)}{_hint(hint)}"
        )
    return float(value)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or a list of valid names."""
    options = sorted(str(c) for c in choices)
    folded = {o.lower(): o for o in options}  # 'CROSS' means 'cross'
    close = difflib.get_close_matches(str(name).lower(), list(folded), n=1, cutoff=0.5)
    if close:
        return f"; did you mean {folded[close[0]]!r}?"
    return f"; valid names: {', '.join(options)}" if options else ""


def check_one_of(value: Any, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ConfigError with a suggestion."""
    options = list(choices)
    if value not in options:
        hint = did_you_mean(str(value), options)
        raise ConfigError(
            f"{name} must be one of {', '.join(map(repr, options))}, was {value!r}"
            + (hint if hint.startswith("; did you mean") else "")  # the names are listed already
        )
    return str(value)
