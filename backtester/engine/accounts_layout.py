"""The account kernel's layouts and codes: inputs, outputs, per-leg bar values (layer: engine.accounts).

Plain constants shared by ``engine.accounts`` and its helpers (``accounts_rules``,
``accounts_cross``, ``accounts_book``) and read by ``accounts_run`` / ``accounts_sweep``:
the ``A_*`` rows of a column's output, the ``L_*`` fields of a leg's, the ``T_*`` fields of a
trade row, the price columns ``P_*``, the enums and parameter rows as numba-visible ints.
"""

from __future__ import annotations

import numpy as np

from backtester.engine.enums import (
    AfterLiquidation,
    CloseAt,
    ExitReason,
    Intrabar,
    MarginMode,
    NegativeBalance,
    StopTrigger,
)
from backtester.engine.layout import FParam, IParam

# a leg's tier tables and liquidation-fee rate, one argument: (table in force per leg ``tk``,
# ``floors``, ``mmr``, ``mamt``, ``n_tiers``, ``by_size``, the flat ``mmr_ovr`` (NaN: tiers),
# the liquidation-fee rate in force per leg ``rates``); ``tk`` and ``rates`` move with the bars
Tables = tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, np.ndarray
]


MAX_LEGS = 16
# a free balance below this fraction of the wallet is float dust left by a lost margin
FREE_DUST = 1e-9

CA_BANKRUPTCY = int(CloseAt.BANKRUPTCY)
ER_END_OF_DATA = int(ExitReason.END_OF_DATA)
ER_HORIZON = int(ExitReason.HORIZON)
ER_LIQUIDATION = int(ExitReason.LIQUIDATION)
ER_NONE = int(ExitReason.NONE)
ER_SIGNAL = int(ExitReason.SIGNAL)
AL_STOP = int(AfterLiquidation.STOP)
ER_RUIN = int(ExitReason.RUIN)
ER_STOP_LOSS = int(ExitReason.STOP_LOSS)
ER_TAKE_PROFIT = int(ExitReason.TAKE_PROFIT)
FP_INITIAL_CASH = int(FParam.INITIAL_CASH)
FP_LEVERAGE = int(FParam.LEVERAGE)
FP_LIQ_FEE_RATE = int(FParam.LIQ_FEE_RATE)
FP_MMR_OVERRIDE = int(FParam.MMR_OVERRIDE)
FP_POSITION_SIZE = int(FParam.POSITION_SIZE)
FP_RUIN_THRESHOLD = int(FParam.RUIN_THRESHOLD)
FP_SLIPPAGE = int(FParam.SLIPPAGE)
FP_STOP_LOSS = int(FParam.STOP_LOSS)
FP_TAKE_PROFIT = int(FParam.TAKE_PROFIT)
FP_TRAILING_STOP = int(FParam.TRAILING_STOP)
FP_TAKER_FEE = int(FParam.TAKER_FEE)
FP_MAKER_FEE = int(FParam.MAKER_FEE)
IP_AFTER_LIQUIDATION = int(IParam.AFTER_LIQUIDATION)
IP_CLOSE_AT = int(IParam.CLOSE_AT)
IP_CONVENTION = int(IParam.CONVENTION)
IP_FUNDING = int(IParam.FUNDING)
IP_INTRABAR = int(IParam.INTRABAR)
IP_MARGIN_MODE = int(IParam.MARGIN_MODE)
IP_NEGATIVE_BALANCE = int(IParam.NEGATIVE_BALANCE)
IP_STOP_TRIGGER = int(IParam.STOP_TRIGGER)
IB_DETAIL = int(Intrabar.DETAIL)
MM_ISOLATED = int(MarginMode.ISOLATED)
NB_OWED = int(NegativeBalance.OWED)
STR_MARK = int(StopTrigger.MARK)

P_OPEN, P_HIGH, P_LOW, P_CLOSE, P_MOPEN, P_MHIGH, P_MLOW, P_MCLOSE = 0, 1, 2, 3, 4, 5, 6, 7
K_LIQ, K_STOP, K_TP = 0, 1, 2
# a leg's exits triggered in a bar (bits), then the one kept
HIT_STOP, HIT_TP = 1, 2
# rows of the per-leg values of one (coarse or detail) bar, ``bar (V_N, K)``: mark open / adverse
# / favourable extreme, trigger price open / adverse / favourable extreme, last open
V_MO, V_MADV, V_MFAV, V_TO, V_TADV, V_TFAV, V_OP = range(7)
V_N = 7

# rows of the per-column output
(
    A_FINAL_EQUITY,
    A_MIN_EQUITY,
    A_FIRST_EXIT_IDX,
    A_FIRST_EXIT_REASON,
    A_LIQ_IDX,
    A_LIQ_LEG,
    A_LIQ_REASON,
    A_FEES,
    A_FUNDING,
    A_INSURANCE,
    A_AMBIGUOUS,
    A_REJECTED,
    A_MAX_DRAWDOWN,
    A_N_LIQUIDATIONS,
    A_N_TRADES,
    A_OVERFLOW,
) = range(16)
A_N = 16
# fields of the per-leg output ``legs_out (n_cols, K, L_N)``
L_EXIT_IDX, L_REASON, L_ENTRY_PRICE, L_EXIT_PRICE, L_SIZE, L_PNL, L_FEES, L_FUNDING = range(8)
L_N = 8
# fields of a signal-driven account's trade buffer ``trades (n_cols, cap, T_N)``: one row per
# leg's closed (or, at the end, still open) position
(
    T_LEG,
    T_ENTRY_IDX,
    T_EXIT_IDX,
    T_SIDE,
    T_ENTRY_PRICE,
    T_EXIT_PRICE,
    T_SIZE,
    T_MARGIN,
    T_FEES,
    T_FUNDING,
    T_PNL,
    T_REASON,
) = range(12)
T_N = 12
