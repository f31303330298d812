"""Integer codes shared by the kernel and the Python side (layer: engine.enums).

Each class is an ``IntEnum`` with explicit values: the value is the code the kernel sees (numba
folds the members as integer constants) and, for the string settings of ``RunConfig``, the member
name in lower case is the option string (``MarginMode.CROSS`` is ``"cross"``). This module is the
only place those strings and codes are written; :func:`option_names` and :func:`code_of` derive
everything else. Parameter slots (``FParam``/``IParam``) are laid out from the settings spec in
``engine.layout``.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AfterLiquidation",
    "CloseAt",
    "Convention",
    "ExitReason",
    "Intrabar",
    "MarginMode",
    "NegativeBalance",
    "Side",
    "Stat",
    "StopTrigger",
    "code_of",
    "option_names",
]


class Side(IntEnum):
    """Position side codes (same as ``rules.formulas``); ``"long"``/``"short"`` as options."""

    LONG = 1
    SHORT = -1
    FLAT = 0


class Convention(IntEnum):
    """Exchange margin conventions (docs/reference/exchange-rules.md §1.2, §2.2, §3.1)."""

    BINANCE = 0
    OKX = 1
    BYBIT = 2


class ExitReason(IntEnum):
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


class MarginMode(IntEnum):
    """Isolated: the position risks its own margin; cross: the whole wallet backs it."""

    ISOLATED = 0
    CROSS = 1


class StopTrigger(IntEnum):
    """Price series that triggers stops and take-profits."""

    LAST = 0
    MARK = 1


class CloseAt(IntEnum):
    """Price a liquidated position closes at."""

    LIQUIDATION = 0
    BANKRUPTCY = 1


class AfterLiquidation(IntEnum):
    """Keep trading with what is left, or treat the account as dead."""

    CONTINUE = 0
    STOP = 1


class NegativeBalance(IntEnum):
    """Floor the balance at zero after a gap (the insurance fund pays), or keep the debt."""

    FLOOR = 0
    OWED = 1


class Intrabar(IntEnum):
    """Who wins when several exits can trigger in one bar."""

    WORST = 0
    BEST = 1
    DETAIL = 2


def option_names(enum: type[IntEnum], *, exclude: tuple[IntEnum, ...] = ()) -> tuple[str, ...]:
    """Return the option strings of ``enum`` (member names in lower case, in definition order)."""
    return tuple(m.name.lower() for m in enum if m not in exclude)


def code_of(enum: type[IntEnum], option: str) -> int:
    """Return the kernel code of the option string ``option`` (already validated)."""
    return int(enum[option.upper()])


#: exit-reason names indexed by code (``EXIT_REASON_NAMES[ExitReason.LIQUIDATION]``)
EXIT_REASON_NAMES: tuple[str, ...] = option_names(ExitReason)


class Stat(IntEnum):
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
    # per-bar close-equity returns r = equity_i / equity_{i-1} - 1 (equity_{-1} = initial cash),
    # over the bars whose previous equity is > 0: what sharpe and sortino need (results.py);
    # summed by run_sweep's runs, 0 in run_entries' and run_strategy_windows'
    RET_SUM = 22  # sum of r
    RET_SUM_SQ = 23  # sum of r**2
    RET_DOWN_SQ = 24  # sum of min(r, 0)**2
    N_RETURNS = 25  # number of such bars
    # closed trades (pnl after fees and funding): what win_rate and profit_factor need
    N_WINS = 26  # trades with pnl > 0
    GROSS_PROFIT = 27  # sum of the winners' pnl
    GROSS_LOSS = 28  # minus the sum of the losers' pnl (>= 0)
    N = 29
