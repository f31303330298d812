"""Array aliases and Literal option types shared by every layer."""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

F64Array: TypeAlias = npt.NDArray[np.float64]
I64Array: TypeAlias = npt.NDArray[np.int64]
I32Array: TypeAlias = npt.NDArray[np.int32]
I8Array: TypeAlias = npt.NDArray[np.int8]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

ExchangeName: TypeAlias = Literal["binanceusdm", "okx", "bybit"]
SideName: TypeAlias = Literal["long", "short"]
MarginMode: TypeAlias = Literal["isolated", "cross"]
StopTrigger: TypeAlias = Literal["last", "mark"]
IntrabarPolicy: TypeAlias = Literal["worst", "best", "detail"]
AfterLiquidation: TypeAlias = Literal["continue", "stop"]
NegativeBalance: TypeAlias = Literal["floor", "owed"]
DataKind: TypeAlias = Literal["ohlcv", "mark", "index", "funding", "tiers"]

EXCHANGES: tuple[str, ...] = ("binanceusdm", "okx", "bybit", "binancecoinm")
DATA_KINDS: tuple[str, ...] = ("ohlcv", "mark", "index", "funding", "tiers")
BootstrapMethod: TypeAlias = Literal["stationary", "circular"]
#: block bootstrap methods of bt.bootstrap_paths (geometric or fixed block lengths)
BOOTSTRAP_METHODS: tuple[str, ...] = ("stationary", "circular")
ContractType: TypeAlias = Literal["linear", "inverse"]


def contract_type_of(symbol: str) -> ContractType:
    """Return ``"inverse"`` for a coin-margined ccxt symbol (settle == base, ``BTC/USD:BTC``).

    Every other symbol (``BTC/USDT:USDT``, a spot-style ``BTC/USDT``) is ``"linear"``.
    """
    base, _, rest = symbol.partition("/")
    _, colon, settle = rest.partition(":")
    return "inverse" if colon and settle == base else "linear"


# (contract size in USD, price tick) of the coin-margined perpetuals whose specifications are
# documented (docs/reference/exchange-rules.md §8.1), and each exchange's contract size for its
# other inverse symbols (tick unknown there: prices are not rounded)
INVERSE_SPECS: dict[tuple[str, str], tuple[float, float]] = {
    ("binancecoinm", "BTC/USD:BTC"): (100.0, 0.1),
    ("okx", "BTC/USD:BTC"): (100.0, 0.1),
    ("bybit", "BTC/USD:BTC"): (1.0, 0.5),
}
INVERSE_DEFAULT_SIZE: dict[str, float] = {"binancecoinm": 10.0, "okx": 10.0, "bybit": 1.0}


def default_contract_spec(exchange: str, symbol: str) -> tuple[float, float]:
    """Return ``(contract size in USD, price tick or 0.0)`` of an inverse symbol (§8.1)."""
    return INVERSE_SPECS.get((exchange, symbol), (INVERSE_DEFAULT_SIZE.get(exchange, 1.0), 0.0))
