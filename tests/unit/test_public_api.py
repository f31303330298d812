"""The public surface: a sorted __all__, every name importable, import stays light."""

from __future__ import annotations

import subprocess
import sys

import backtester as bt


def test_all_is_sorted_and_unique() -> None:
    assert list(bt.__all__) == sorted(set(bt.__all__))


def test_every_public_name_resolves() -> None:
    # Arrange / Act: touching each name imports its module lazily
    missing = [name for name in bt.__all__ if getattr(bt, name, None) is None]
    # Assert
    assert missing == []


def test_import_does_not_load_heavy_packages() -> None:
    code = (
        "import sys, backtester; "
        "heavy = [m for m in ('numba', 'ccxt', 'matplotlib', 'lifelines', 'dask') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_all_lists_every_lazy_name() -> None:
    from backtester import _LAZY

    errors = {"BacktesterError", "BacktesterWarning", "ConfigError", "DataError"}
    errors |= {"ExchangeError", "ShapeError", "__version__"}
    assert set(bt.__all__) == set(_LAZY) | errors
