"""Signal-driven accounts: a strategy's signals per symbol run as K legs in one wallet (engine).

``run_sweep(market_set, strategy, grid, legs=...)`` lands here. The strategy receives the
``MarketSet`` and returns ``{symbol: Signals}``, each ``(n_bars, n_cols)``; every column is one
account whose leg ``k`` (symbol ``legs[k]``, weight ``w_k``) follows its symbol's signals with
the single kernel's signal rule (``engine.kernel`` rule 6) and the account kernel's rules for
everything else (``engine.accounts``: sizing, isolated and cross liquidation, funding, fees,
stops, take-profits, ``intrabar``). A leg opens on its entry signal when flat, with margin
``position_size·|w_k|·wallet``, on the signal's side times the sign of ``w_k`` (a negative
weight trades the leg's signals the other way round: ``hold`` long with ``{"ETH": -0.5}`` is
short ETH); legs entering at one open are one order (sized, checked and refused together).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester._typing import F64Array
from backtester.config import RunConfig
from backtester.errors import ConfigError, ShapeError
from backtester.params import ParamGrid
from backtester.results import STAT_COLUMNS
from backtester.signals import Signals

if TYPE_CHECKING:
    from backtester.marketset import MarketSet

__all__ = ["AccountSweepResult", "run_account_sweep"]

log = logging.getLogger(__name__)

# trade rows per column before a re-run with a buffer as large as the busiest column needs
_TRADE_CAP = 64

#: columns of AccountSweepResult.stats(), in order: SweepResult's, less the ones a single
#: position has and an account of several does not (one liquidation distance, time in market)
ACCOUNT_STAT_COLUMNS: tuple[str, ...] = tuple(
    c for c in STAT_COLUMNS if c not in ("min_liquidation_distance", "time_in_market", "exposure")
)


@dataclass(frozen=True, slots=True, eq=False)
class AccountSweepResult:
    """Result of ``run_sweep(market_set, strategy, grid, legs=...)``: one account per column.

    Attributes
    ----------
    labels : pandas.MultiIndex
        One row per column, named after the grid's parameters.
    legs : tuple of (symbol, weight)
        The account's legs; leg ``k`` is ``legs[k]``.
    grid, config, market_set
        What was run.
    """

    labels: pd.MultiIndex
    legs: tuple[tuple[str, float], ...]
    grid: ParamGrid
    config: RunConfig
    market_set: MarketSet
    initial_cash: F64Array = field(repr=False)
    raw: F64Array = field(repr=False)  # (n_cols, A_N)
    trade_rows: F64Array = field(repr=False)  # (n_trades, 1 + T_N): col, then the T_* fields
    equity_rows: F64Array = field(repr=False)  # (n_cols, n_bars)
    rules: tuple[dict[str, str], ...] = ()

    @property
    def n_cols(self) -> int:
        """Number of columns (accounts)."""
        return int(self.raw.shape[0])

    def stats(self) -> pd.DataFrame:
        """Return one row of statistics per column (account), indexed by the grid's labels.

        As ``SweepResult.stats()`` where the account has the same meaning: ``final_equity`` at
        the last mark close, ``total_return``, ``max_drawdown`` (of close equity from its
        running peak), ``n_liquidations`` (an isolated leg's or the cross account's: one each),
        ``liquidated``, ``first_liquidation_time``, ``n_stops`` (stop-loss and trailing-stop
        exits of legs), ``n_take_profits``, ``n_trades`` (legs' positions, closed or still
        open at the end), ``n_rejected`` (leg entries refused), ``fees_paid``,
        ``funding_paid``, ``insurance_draw``, ``min_equity``, ``ambiguous_bars``, ``ruined``,
        and ``sharpe``, ``sortino``, ``calmar``, ``win_rate``, ``profit_factor`` (the
        definitions of ``backtester.results``).
        """
        from backtester.engine.accounts_layout import (
            A_AMBIGUOUS,
            A_FEES,
            A_FINAL_EQUITY,
            A_FUNDING,
            A_INSURANCE,
            A_LIQ_IDX,
            A_MAX_DRAWDOWN,
            A_MIN_EQUITY,
            A_N_LIQUIDATIONS,
            A_N_TRADES,
            A_REJECTED,
            T_PNL,
            T_REASON,
        )
        from backtester.engine.enums import ExitReason
        from backtester.results import (
            _times,
            bars_per_year,
            calmar_ratio,
            path_metrics,
            trade_metrics,
        )

        raw = self.raw
        final = raw[:, A_FINAL_EQUITY]
        n_liq = raw[:, A_N_LIQUIDATIONS]
        col = self.trade_rows[:, 0].astype(np.int64)
        reason = self.trade_rows[:, 1 + T_REASON].astype(np.int64)
        stops = (reason == ExitReason.STOP_LOSS) | (reason == ExitReason.TRAILING_STOP)
        per_year = bars_per_year(self.market_set.timeframe_ns)
        n_bars = float(self.market_set.n_bars)
        sharpe = np.full(self.n_cols, np.nan)
        sortino = np.full(self.n_cols, np.nan)
        win = np.full(self.n_cols, np.nan)
        factor = np.full(self.n_cols, np.nan)
        pnl = self.trade_rows[:, 1 + T_PNL]
        for c in range(self.n_cols):
            sharpe[c], sortino[c] = path_metrics(
                self.equity_rows[c], self.initial_cash[c], per_year
            )
            win[c], factor[c] = trade_metrics(pnl[col == c])
        data = {
            "final_equity": final,
            "total_return": final / self.initial_cash - 1.0,
            "max_drawdown": raw[:, A_MAX_DRAWDOWN],
            "liquidated": n_liq > 0,
            "n_liquidations": n_liq.astype(np.int64),
            "first_liquidation_time": _times(self.market_set.ts_ns, raw[:, A_LIQ_IDX]),
            "n_stops": np.bincount(col[stops], minlength=self.n_cols),
            "n_take_profits": np.bincount(
                col[reason == ExitReason.TAKE_PROFIT], minlength=self.n_cols
            ),
            "n_trades": raw[:, A_N_TRADES].astype(np.int64),
            "n_rejected": raw[:, A_REJECTED].astype(np.int64),
            "fees_paid": raw[:, A_FEES],
            "funding_paid": raw[:, A_FUNDING],
            "insurance_draw": raw[:, A_INSURANCE],
            "min_equity": raw[:, A_MIN_EQUITY],
            "ambiguous_bars": raw[:, A_AMBIGUOUS].astype(np.int64),
            "ruined": np.bincount(col[reason == ExitReason.RUIN], minlength=self.n_cols) > 0,
            "sharpe": sharpe,
            "sortino": sortino,
            "calmar": calmar_ratio(
                final,
                self.initial_cash,
                raw[:, A_MAX_DRAWDOWN],
                np.full(self.n_cols, n_bars),
                per_year,
            ),
            "win_rate": win,
            "profit_factor": factor,
        }
        return pd.DataFrame(data, index=self.labels)[list(ACCOUNT_STAT_COLUMNS)]

    def trades(self) -> pd.DataFrame:
        """Return one row per leg position: ``col``, the grid's parameters, ``leg``, ``symbol``.

        Then ``weight``, ``entry_time``, ``exit_time``, ``side``, ``entry_price``,
        ``exit_price``, ``size`` (base units), ``margin``, ``fees``, ``funding`` (paid), ``pnl``
        (the leg's wallet change incl. fees and funding; a cross liquidation is shared out as
        ``engine.accounts`` says) and ``exit_reason``. A leg still open at the end appears with
        ``end_of_data`` valued at its last mark close. Rows are in order of column, then of
        closing (legs closing in one bar in leg order).
        """
        from backtester.engine.accounts_layout import (
            T_ENTRY_IDX,
            T_ENTRY_PRICE,
            T_EXIT_IDX,
            T_EXIT_PRICE,
            T_FEES,
            T_FUNDING,
            T_LEG,
            T_MARGIN,
            T_PNL,
            T_REASON,
            T_SIDE,
            T_SIZE,
        )
        from backtester.engine.enums import EXIT_REASON_NAMES

        t = self.trade_rows
        col = t[:, 0].astype(np.int64)
        leg = t[:, 1 + T_LEG].astype(np.int64)
        ts = self.market_set.ts_ns
        symbols = np.array([s for s, _ in self.legs], dtype=object)
        weights = np.array([w for _, w in self.legs], dtype=np.float64)
        frame = pd.DataFrame(
            {
                "col": col,
                "leg": leg,
                "symbol": symbols[leg] if leg.size else np.array([], dtype=object),
                "weight": weights[leg] if leg.size else np.array([], dtype=np.float64),
                "entry_time": pd.to_datetime(ts[t[:, 1 + T_ENTRY_IDX].astype(np.int64)], utc=True),
                "exit_time": pd.to_datetime(ts[t[:, 1 + T_EXIT_IDX].astype(np.int64)], utc=True),
                "side": np.where(t[:, 1 + T_SIDE] > 0, "long", "short"),
                "entry_price": t[:, 1 + T_ENTRY_PRICE],
                "exit_price": t[:, 1 + T_EXIT_PRICE],
                "size": t[:, 1 + T_SIZE],
                "margin": t[:, 1 + T_MARGIN],
                "fees": t[:, 1 + T_FEES],
                "funding": t[:, 1 + T_FUNDING],
                "pnl": t[:, 1 + T_PNL],
                "exit_reason": [EXIT_REASON_NAMES[int(r)] for r in t[:, 1 + T_REASON]],
            }
        )
        labels = self.labels.to_frame(index=False).iloc[col].reset_index(drop=True)
        labels = labels.drop(columns=[c for c in labels.columns if c in frame.columns])
        return pd.concat([frame[["col"]], labels, frame.drop(columns=["col"])], axis=1)

    def equity(self, columns: Sequence[int] | None = None) -> pd.DataFrame:
        """Return the account's close equity per bar (rows) for ``columns`` (default all)."""
        cols = list(range(self.n_cols)) if columns is None else [int(c) for c in columns]
        for c in cols:
            if not 0 <= c < self.n_cols:
                raise ConfigError(f"columns must lie in [0, {self.n_cols - 1}], was {c}")
        return pd.DataFrame(
            self.equity_rows[cols].T, index=self.market_set.index, columns=self.labels[cols]
        )


def account_signals(
    strategy: Any, market_set: MarketSet, grid: ParamGrid, legs: Sequence[tuple[str, float]]
) -> np.ndarray:
    """Return the strategy's signals for each leg, packed ``(grid.n_cols, K, n_bars)`` uint8.

    Raises
    ------
    ShapeError
        The strategy returned something other than ``{symbol: Signals}`` holding every leg's
        symbol, each ``(n_bars, grid.n_cols)``.
    """
    from backtester.engine.run import strategy_name, strategy_output

    name = strategy_name(strategy)
    got = strategy_output(strategy, market_set, grid)
    if not isinstance(got, Mapping):
        raise ShapeError(
            f"strategy {name}: signals(market_set, grid) must return a dict {{symbol: Signals}} "
            f"for a MarketSet, was {type(got).__name__}; return one Signals per symbol"
        )
    rows = []
    for sym, _ in legs:
        one = got.get(sym)
        if not isinstance(one, Signals):
            raise ShapeError(
                f"strategy {name}: signals(market_set, grid) must hold a Signals for every leg, "
                f"{sym!r} was {type(one).__name__}; return {{symbol: Signals}} for "
                f"{', '.join(s for s, _ in legs)}"
            )
        one.check(market_set.n_bars, grid.n_cols, source=f"{name} [{sym}]")
        rows.append(one.packed())
    return np.ascontiguousarray(np.stack(rows, axis=1))


def run_account_sweep(
    market_set: MarketSet,
    strategy: Any,
    grid: ParamGrid | None = None,
    *,
    legs: Mapping[str, float] | None,
    config: RunConfig | None = None,
) -> AccountSweepResult:
    """Run every column of ``grid`` as one account of ``legs`` following ``strategy``'s signals.

    See ``engine.run.run_sweep`` (which calls this for a ``MarketSet``) and the module docstring.
    """
    from backtester.engine.accounts_layout import A_N_TRADES, A_OVERFLOW
    from backtester.engine.accounts_run import (
        _check_legs,
        _rules_used,
        prepare_accounts,
        simulate_accounts,
    )
    from backtester.engine.layout import FParam
    from backtester.engine.run import _check_config, _check_fits, _signal_columns, _strategy_grid

    t0 = time.perf_counter()
    if legs is None:
        example = {s: round(1 / len(market_set.symbols), 4) for s in market_set.symbols}
        raise ConfigError(
            f"run_sweep on a MarketSet needs legs={{symbol: weight}}, was None; e.g. "
            f"legs={example} (a negative weight trades that symbol's signals the other way)"
        )
    leg_list = _check_legs(market_set, dict(legs))
    config = _check_config(config)
    grid, strat_names, engine_names = _strategy_grid(strategy, grid)
    n_bars = int(market_set.n_bars)
    _check_fits(grid.n_cols, n_bars, 0, "run_sweep")
    prep = prepare_accounts(market_set, grid, leg_list, config, engine_names)
    uniq, inverse = _signal_columns(grid, strat_names)
    sig = account_signals(strategy, market_set, uniq, leg_list)
    n = grid.n_cols
    rows = np.arange(n, dtype=np.int64)
    start = np.zeros(n, dtype=np.int64)
    end = np.full(n, n_bars, dtype=np.int64)
    sig_idx = np.ascontiguousarray(np.asarray(inverse, dtype=np.int64))
    out, _legs_out, trades, eq, _ = simulate_accounts(
        prep, rows, start, end, sig=sig, sig_idx=sig_idx, trade_cap=_TRADE_CAP, n_eq=n_bars
    )
    full = np.flatnonzero(out[:, A_OVERFLOW] > 0)
    if full.size:  # the busiest columns again, with a buffer that holds every trade
        cap = int(out[full, A_N_TRADES].max())
        o2, _l2, t2, e2, _ = simulate_accounts(
            prep, full, start[full], end[full], sig=sig, sig_idx=sig_idx[full], trade_cap=cap,
            n_eq=n_bars,
        )  # fmt: skip
        out[full] = o2
        eq[full] = e2
        wide = np.zeros((n, cap, trades.shape[2]), dtype=np.float64)
        wide[:, : trades.shape[1]] = trades
        wide[full] = t2
        trades = wide
    counts = out[:, A_N_TRADES].astype(np.int64)
    mask = np.arange(trades.shape[1])[None, :] < counts[:, None]
    flat = trades[mask]
    col = np.repeat(np.arange(n), counts).astype(np.float64)
    trade_rows = np.column_stack([col, flat]) if flat.size else np.zeros((0, 1 + trades.shape[2]))
    log.info(
        "run_sweep %s %s: account of %d legs, %d bars x %d columns in %.2f s",
        " + ".join(s for s, _ in leg_list),
        market_set.timeframe,
        len(leg_list),
        n_bars,
        n,
        time.perf_counter() - t0,
    )
    return AccountSweepResult(
        labels=grid.labels,
        legs=leg_list,
        grid=grid,
        config=config,
        market_set=market_set,
        initial_cash=np.ascontiguousarray(prep.fp[FParam.INITIAL_CASH]),
        raw=out,
        trade_rows=np.ascontiguousarray(trade_rows),
        equity_rows=eq,
        rules=_rules_used(leg_list, prep.leg_rules),
    )
