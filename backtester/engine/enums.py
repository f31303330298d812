"""Integer codes shared by the kernel and the Python side (layer: engine.enums).

Plain ``int`` constants so numba folds them at compile time. Parameter and statistic slots index
the packed per-column arrays that ``engine.run`` passes to ``engine.kernel``.
"""

from __future__ import annotations

__all__ = [
    "AfterLiquidation",
    "CloseAt",
    "ExitReason",
    "FParam",
    "IParam",
    "Intrabar",
    "MarginMode",
    "NegativeBalance",
    "Side",
    "Stat",
    "StopTrigger",
]


class Side:
    """Position side codes (same as ``rules.formulas``)."""

    LONG = 1
    SHORT = -1
    FLAT = 0


class ExitReason:
    """Why a trade ended (design.md §3)."""

    NONE = 0
    SIGNAL = 1
    STOP_LOSS = 2
    TAKE_PROFIT = 3
    TRAILING_STOP = 4
    LIQUIDATION = 5
    END_OF_DATA = 6
    HORIZON = 7
    RUIN = 8

    NAMES: tuple[str, ...] = (
        "none",
        "signal",
        "stop_loss",
        "take_profit",
        "trailing_stop",
        "liquidation",
        "end_of_data",
        "horizon",
        "ruin",
    )


class MarginMode:
    ISOLATED = 0
    CROSS = 1
    NAMES: tuple[str, ...] = ("isolated", "cross")


class StopTrigger:
    LAST = 0
    MARK = 1
    NAMES: tuple[str, ...] = ("last", "mark")


class CloseAt:
    LIQUIDATION = 0
    BANKRUPTCY = 1
    NAMES: tuple[str, ...] = ("liquidation", "bankruptcy")


class AfterLiquidation:
    CONTINUE = 0
    STOP = 1
    NAMES: tuple[str, ...] = ("continue", "stop")


class NegativeBalance:
    FLOOR = 0
    OWED = 1
    NAMES: tuple[str, ...] = ("floor", "owed")


class Intrabar:
    WORST = 0
    BEST = 1
    DETAIL = 2
    NAMES: tuple[str, ...] = ("worst", "best", "detail")


class FParam:
    """Rows of the per-column float parameter array ``fparams (N, n_cols)``."""

    LEVERAGE = 0
    POSITION_SIZE = 1
    STOP_LOSS = 2  # NaN = off
    TAKE_PROFIT = 3  # NaN = off
    TRAILING_STOP = 4  # NaN = off
    TAKER_FEE = 5
    MAKER_FEE = 6
    SLIPPAGE = 7
    MMR_OVERRIDE = 8  # NaN = tier table
    LIQ_FEE_RATE = 9
    RUIN_THRESHOLD = 10
    INITIAL_CASH = 11
    N = 12


class IParam:
    """Rows of the per-column int parameter array ``iparams (N, n_cols)``."""

    MARGIN_MODE = 0
    STOP_TRIGGER = 1
    FUNDING = 2  # 1 on, 0 off
    CONVENTION = 3  # rules.formulas BINANCE/OKX/BYBIT
    CLOSE_AT = 4
    AFTER_LIQUIDATION = 5
    NEGATIVE_BALANCE = 6
    INTRABAR = 7
    N = 8


class Stat:
    """Columns of the per-column statistics array ``out_stats (n_cols, N)`` (float64)."""

    FINAL_EQUITY = 0
    MAX_DRAWDOWN = 1  # fraction of the running peak of close equity
    N_LIQUIDATIONS = 2
    FIRST_LIQUIDATION_IDX = 3  # -1 if none
    N_STOPS = 4  # stop-loss + trailing-stop exits
    N_TAKE_PROFITS = 5
    FEES_PAID = 6  # trading + liquidation fees
    FUNDING_PAID = 7  # net funding paid (negative = received)
    INSURANCE_DRAW = 8
    MIN_LIQUIDATION_DISTANCE = 9  # NaN if never in the market
    BARS_IN_MARKET = 10
    N_BARS = 11  # bars in the column's window
    AMBIGUOUS_BARS = 12
    RUINED = 13
    RUIN_IDX = 14
    N_TRADES = 15
    N_REJECTED = 16
    MIN_EQUITY = 17
    FIRST_EXIT_IDX = 18  # -1 if the first trade never closed inside the window
    FIRST_EXIT_REASON = 19
    N_SIGNAL_EXITS = 20
    OVERFLOW = 21  # 1 if the trade buffer was too small
    N = 22
