"""backtester: which leverage, stop-loss and position size survive on crypto perpetual futures.

Public API. Names are imported lazily on first use so that ``import backtester`` stays fast
(numba, ccxt and matplotlib load only when the feature that needs them is used).
Anything not in ``__all__`` is private and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from backtester.errors import (
    BacktesterError,
    BacktesterWarning,
    ConfigError,
    DataError,
    ExchangeError,
    ShapeError,
)

__version__ = "0.1.0"

# public name -> module that defines it (each area adds its own names here, nowhere else)
_LAZY: dict[str, str] = {
    # market data (data/, market.py, marketset.py)
    "Market": "backtester.market",
    "load_market": "backtester.market",
    "MarketSet": "backtester.marketset",
    "load_markets": "backtester.marketset",
    "download": "backtester.data.ccxt_loader",
    "list_store": "backtester.data.integrity",
    "verify_store": "backtester.data.integrity",
    # exchange rules (rules/)
    "ExchangeRules": "backtester.rules",
    "exchange_rules": "backtester.rules",
    "liquidation_price": "backtester.rules",
    "bankruptcy_price": "backtester.rules",
    "rules_timeline": "backtester.rules",
    # engine (params.py, signals.py, config.py, engine/, results.py)
    "ParamGrid": "backtester.params",
    "Signals": "backtester.signals",
    "RunConfig": "backtester.config",
    "RunCheck": "backtester.engine.run",
    "check_run": "backtester.engine.run",
    "run_sweep": "backtester.engine.run",
    "run_entries": "backtester.engine.run",
    "run_account_entries": "backtester.engine.accounts_run",
    "AccountOutcomes": "backtester.engine.accounts_run",
    "AccountSweepResult": "backtester.engine.accounts_sweep",
    "EntryOutcomes": "backtester.results",
    "SweepResult": "backtester.results",
    # synthetic paths (synthetic.py)
    "bootstrap_paths": "backtester.synthetic",
    "stress_paths": "backtester.synthetic",
    # survival study (survival.py)
    "survival_study": "backtester.survival",
    "SurvivalStudy": "backtester.survival",
    "compare_venues": "backtester.survival.venues",
    "crash_days": "backtester.survival.venues",
    "PathsStudy": "backtester.survival.paths",
    "bootstrap_study": "backtester.survival.paths",
    # batch sweeps (sweep/)
    "open_run": "backtester.sweep",
    "run_config": "backtester.sweep",
}

__all__ = [
    "AccountOutcomes",
    "AccountSweepResult",
    "BacktesterError",
    "BacktesterWarning",
    "ConfigError",
    "DataError",
    "EntryOutcomes",
    "ExchangeError",
    "ExchangeRules",
    "Market",
    "MarketSet",
    "ParamGrid",
    "PathsStudy",
    "RunCheck",
    "RunConfig",
    "ShapeError",
    "Signals",
    "SurvivalStudy",
    "SweepResult",
    "__version__",
    "bankruptcy_price",
    "bootstrap_paths",
    "bootstrap_study",
    "check_run",
    "compare_venues",
    "crash_days",
    "download",
    "exchange_rules",
    "liquidation_price",
    "list_store",
    "load_market",
    "load_markets",
    "open_run",
    "rules_timeline",
    "run_account_entries",
    "run_config",
    "run_entries",
    "run_sweep",
    "stress_paths",
    "survival_study",
    "verify_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backtester' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from backtester.config import RunConfig
    from backtester.data.ccxt_loader import download
    from backtester.data.integrity import list_store, verify_store
    from backtester.engine.accounts_run import AccountOutcomes, run_account_entries
    from backtester.engine.accounts_sweep import AccountSweepResult
    from backtester.engine.run import RunCheck, check_run, run_entries, run_sweep
    from backtester.market import Market, load_market
    from backtester.marketset import MarketSet, load_markets
    from backtester.params import ParamGrid
    from backtester.results import EntryOutcomes, SweepResult
    from backtester.rules import (
        ExchangeRules,
        bankruptcy_price,
        exchange_rules,
        liquidation_price,
        rules_timeline,
    )
    from backtester.signals import Signals
    from backtester.survival import SurvivalStudy, survival_study
    from backtester.survival.paths import PathsStudy, bootstrap_study
    from backtester.survival.venues import compare_venues, crash_days
    from backtester.sweep import open_run, run_config
    from backtester.synthetic import bootstrap_paths, stress_paths
