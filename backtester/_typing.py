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
ContractType: TypeAlias = Literal["linear", "inverse"]


def contract_type_of(symbol: str) -> ContractType:
    """Return ``"inverse"`` for a coin-margined ccxt symbol (settle == base, ``BTC/USD:BTC``).

    Every other symbol (``BTC/USDT:USDT``, a spot-style ``BTC/USDT``) is ``"linear"``.
    """
    base, _, rest = symbol.partition("/")
    _, colon, settle = rest.partition(":")
    return "inverse" if colon and settle == base else "linear"
