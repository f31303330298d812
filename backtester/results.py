"""SweepResult and EntryOutcomes: labelled views of kernel outputs (layer: results).

Statistics are computed inside the kernel, so a sweep never holds its equity matrix;
``trades()`` and ``equity()`` re-run just the columns asked for (deterministic, memory bounded).
The risk-adjusted columns of ``stats()`` (``sharpe``, ``sortino``, ``win_rate``,
``profit_factor``) come from sums the kernel keeps per column (per-bar returns of close equity,
winning and losing trades): :func:`return_ratios` and :func:`trade_ratios`, equal to
:func:`path_metrics` and :func:`trade_metrics` on ``equity()`` and ``trades()`` (a test checks
it) without re-running anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.engine.enums import EXIT_REASON_NAMES, ExitReason, MarginMode, Stat
from backtester.engine.layout import FParam, IParam
from backtester.errors import ConfigError, ShapeError, did_you_mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from backtester.config import RunConfig
    from backtester.params import ParamGrid

__all__ = [
    "STAT_COLUMNS",
    "YEAR_NS",
    "EntryOutcomes",
    "SweepResult",
    "bars_per_year",
    "calmar_ratio",
    "path_metrics",
    "return_ratios",
    "trade_metrics",
    "trade_ratios",
]

#: columns of SweepResult.stats(), in order
STAT_COLUMNS: tuple[str, ...] = (
    "final_equity",
    "total_return",
    "max_drawdown",
    "liquidated",
    "n_liquidations",
    "first_liquidation_time",
    "n_stops",
    "n_take_profits",
    "n_trades",
    "n_rejected",
    "fees_paid",
    "funding_paid",
    "insurance_draw",
    "min_liquidation_distance",
    "min_equity",
    "time_in_market",
    "ambiguous_bars",
    "ruined",
    "sharpe",
    "sortino",
    "calmar",
    "win_rate",
    "profit_factor",
    "exposure",
)

# the notebook view of a result: these statistics (no re-run), for the first rows
_HTML_COLUMNS = (
    "final_equity", "total_return", "max_drawdown", "calmar", "n_trades", "n_liquidations",
    "n_stops", "exposure", "fees_paid", "funding_paid",
)  # fmt: skip
_HTML_ROWS = 10

#: a year of bars is counted on the 24/7 crypto calendar (365 days)
YEAR_NS = 365 * 24 * 3600 * 10**9


def bars_per_year(timeframe_ns: int) -> float:
    """Return the number of bars of ``timeframe_ns`` in a 365-day year (8,760 for 1h bars)."""
    return YEAR_NS / float(timeframe_ns)


def path_metrics(
    equity: F64Array, initial_cash: float, periods_per_year: float
) -> tuple[float, float]:
    """Return (sharpe, sortino) of one close-equity path ``(n_bars,)``, annualised.

    Per-bar simple returns ``r_i = equity_i / equity_{i-1} - 1``, with ``equity_{-1} =
    initial_cash``, over the bars whose previous equity is > 0 (a ruined account has no
    returns). ``sharpe = mean(r) / std(r, ddof=1) * sqrt(periods_per_year)``; ``sortino = mean(r)
    / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year)``; the risk-free rate is 0. NaN when
    there are fewer than two returns or no variation (no downside for ``sortino``).
    """
    prev = np.concatenate(([initial_cash], equity[:-1]))
    alive = prev > 0.0
    r = equity[alive] / prev[alive] - 1.0
    if r.size < 2:
        return math.nan, math.nan
    scale = math.sqrt(periods_per_year)
    mean = float(r.mean())
    std = float(r.std(ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sharpe = mean / std * scale if std > 0.0 else math.nan
    sortino = mean / downside * scale if downside > 0.0 else math.nan
    return sharpe, sortino


def trade_metrics(pnl: F64Array) -> tuple[float, float]:
    """Return (win_rate, profit_factor) of one column's trade ``pnl`` (quote, incl. costs).

    ``win_rate`` is the fraction of trades with ``pnl > 0``; ``profit_factor`` the sum of the
    winners' pnl over the absolute sum of the losers' (inf with winners and no losers). Both NaN
    without trades; ``profit_factor`` NaN when every trade is exactly 0.
    """
    if pnl.size == 0:
        return math.nan, math.nan
    gains = float(pnl[pnl > 0.0].sum())
    losses = -float(pnl[pnl < 0.0].sum())
    if losses > 0.0:
        return float(np.mean(pnl > 0.0)), gains / losses
    factor = math.inf if gains > 0.0 else math.nan
    return float(np.mean(pnl > 0.0)), factor


def return_ratios(stats: F64Array, periods_per_year: float) -> tuple[F64Array, F64Array]:
    """Return (sharpe, sortino) per column from the kernel's sums of per-bar returns.

    ``stats (n_cols, Stat.N)`` holds, per column, the sum of the returns ``r``
    (``Stat.RET_SUM``), of ``r**2`` (``RET_SUM_SQ``), of ``min(r, 0)**2`` (``RET_DOWN_SQ``) and
    their count ``n`` (``N_RETURNS``), over the bars :func:`path_metrics` counts:
    ``mean = sum / n``, ``std = sqrt((sum_sq - sum**2 / n) / (n - 1))``, ``downside =
    sqrt(down_sq / n)``; NaN as there (fewer than two returns, no variation, no downside).
    """
    n = stats[:, Stat.N_RETURNS]
    total = stats[:, Stat.RET_SUM]
    scale = math.sqrt(periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        var = np.maximum(stats[:, Stat.RET_SUM_SQ] - total * mean, 0.0) / (n - 1.0)
        std = np.sqrt(var)
        downside = np.sqrt(stats[:, Stat.RET_DOWN_SQ] / n)
        ok = n >= 2.0
        sharpe = np.where(ok & (std > 0.0), mean / std * scale, np.nan)
        sortino = np.where(ok & (downside > 0.0), mean / downside * scale, np.nan)
    return sharpe.astype(np.float64), sortino.astype(np.float64)


def trade_ratios(stats: F64Array) -> tuple[F64Array, F64Array]:
    """Return (win_rate, profit_factor) per column from the kernel's trade sums.

    ``Stat.N_WINS`` / ``N_TRADES`` and ``GROSS_PROFIT`` / ``GROSS_LOSS``, as
    :func:`trade_metrics` defines them (inf with winners and no losers; NaN without trades, and
    ``profit_factor`` NaN when every trade is exactly 0).
    """
    n = stats[:, Stat.N_TRADES]
    gains = stats[:, Stat.GROSS_PROFIT]
    losses = stats[:, Stat.GROSS_LOSS]
    with np.errstate(divide="ignore", invalid="ignore"):
        win = np.where(n > 0.0, stats[:, Stat.N_WINS] / n, np.nan)
        factor = np.where(losses > 0.0, gains / losses, np.where(gains > 0.0, math.inf, math.nan))
    factor = np.where(n > 0.0, factor, np.nan)
    return win.astype(np.float64), factor.astype(np.float64)


def calmar_ratio(
    final_equity: F64Array, initial_cash: F64Array, max_drawdown: F64Array, n_bars: F64Array,
    periods_per_year: float,
) -> F64Array:  # fmt: skip
    """Return the annualised return over the maximum drawdown (both fractions), per column.

    ``cagr = (final_equity / initial_cash) ** (periods_per_year / n_bars) - 1`` (-1 once the
    equity is <= 0); ``calmar = cagr / max_drawdown``, NaN when the drawdown is 0.
    """
    growth = np.maximum(final_equity / initial_cash, 0.0)
    # a few bars annualised can overflow to inf: the ratio is then inf, not an error
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cagr = growth ** (periods_per_year / np.maximum(n_bars, 1.0)) - 1.0
        out = np.where(max_drawdown > 0.0, cagr / max_drawdown, np.nan)
    result: F64Array = out.astype(np.float64)
    return result


def _times(ts_ns: I64Array, idx: F64Array) -> pd.DatetimeIndex:
    idx_i = idx.astype(np.int64)
    vals = np.where(
        idx_i >= 0, ts_ns[np.clip(idx_i, 0, ts_ns.shape[0] - 1)], np.iinfo(np.int64).min
    )
    return pd.DatetimeIndex(pd.to_datetime(vals, utc=True))


class SweepResult:
    """Result of :func:`~backtester.engine.run.run_sweep`.

    Attributes
    ----------
    labels : pandas.MultiIndex
        One row per column, named after the grid's parameters.
    grid : ParamGrid
    config : RunConfig
    """

    def __init__(
        self,
        *,
        sim: Any,
        labels: pd.MultiIndex,
        grid: ParamGrid,
        config: RunConfig,
        raw: F64Array,
        batch_size: int | None = None,
    ) -> None:
        self._sim = sim
        self.labels = labels
        self.grid = grid
        self.config = config
        self._raw = raw
        self._batch_size = batch_size

    @property
    def n_cols(self) -> int:
        """Number of columns."""
        return int(self._raw.shape[0])

    @property
    def market(self) -> Any:
        """The market the sweep ran on."""
        return self._sim.market

    @property
    def rules(self) -> tuple[dict[str, str], ...]:
        """The tier tables the sweep used: ``{"exchange", "table_id", "note"}`` each."""
        rules: tuple[dict[str, str], ...] = self._sim.rules_used()
        return rules

    @property
    def raw_stats(self) -> F64Array:
        """The kernel's ``(n_cols, Stat.N)`` statistics array (read-only view)."""
        view = self._raw.view()
        view.flags.writeable = False
        return view

    def stats(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Return one row of statistics per column, indexed by the grid's labels.

        ``columns`` picks statistics (default: every name of ``STAT_COLUMNS``, in that order).

        Money is in the quote currency, rates and distances are fractions:
        ``total_return = final_equity / initial_cash - 1``; ``max_drawdown`` from the running
        peak of close equity; ``min_liquidation_distance`` the smallest gap between the mark's
        adverse extreme and the liquidation price (fraction of the mark, 0 once liquidated, NaN if
        never in the market); ``time_in_market`` the fraction of bars with an open position;
        ``ambiguous_bars`` the bars resolved by an intrabar assumption; ``n_trades`` the closed
        positions (one still open at the end counts, valued at the mark close).

        Risk-adjusted columns (annualised on a 365-day year of the market's bars, 8,760 a year
        for 1h bars; risk-free rate 0; NaN where undefined, see :func:`path_metrics`,
        :func:`trade_metrics`, :func:`calmar_ratio`):

        - ``sharpe``: mean / standard deviation of the per-bar returns of close equity
          × sqrt(bars per year);
        - ``sortino``: mean per-bar return / its downside deviation × sqrt(bars per year);
        - ``calmar``: annualised return (CAGR, a fraction) / ``max_drawdown`` (a fraction);
        - ``win_rate``: fraction of trades with pnl > 0 (pnl after fees and funding);
        - ``profit_factor``: gross profit / gross loss of the trades (inf: no losing trade);
        - ``exposure``: fraction of bars with an open position (``time_in_market``, under the
          name backtesting.py and vectorbt users look for).

        The kernel keeps the sums these need per column (:func:`return_ratios`,
        :func:`trade_ratios`), so no column is re-run.
        """
        names = STAT_COLUMNS if columns is None else self._stat_names(columns)
        s = self._raw
        cash = self._sim.fparams[FParam.INITIAL_CASH, :]
        ts = self._sim.market.ts_ns
        n_bars = np.maximum(s[:, Stat.N_BARS], 1.0)
        data: dict[str, Any] = {
            "final_equity": s[:, Stat.FINAL_EQUITY],
            "total_return": s[:, Stat.FINAL_EQUITY] / cash - 1.0,
            "max_drawdown": s[:, Stat.MAX_DRAWDOWN],
            "liquidated": s[:, Stat.N_LIQUIDATIONS] > 0,
            "n_liquidations": s[:, Stat.N_LIQUIDATIONS].astype(np.int64),
            "first_liquidation_time": _times(ts, s[:, Stat.FIRST_LIQUIDATION_IDX]),
            "n_stops": s[:, Stat.N_STOPS].astype(np.int64),
            "n_take_profits": s[:, Stat.N_TAKE_PROFITS].astype(np.int64),
            "n_trades": s[:, Stat.N_TRADES].astype(np.int64),
            "n_rejected": s[:, Stat.N_REJECTED].astype(np.int64),
            "fees_paid": s[:, Stat.FEES_PAID],
            "funding_paid": s[:, Stat.FUNDING_PAID],
            "insurance_draw": s[:, Stat.INSURANCE_DRAW],
            "min_liquidation_distance": s[:, Stat.MIN_LIQUIDATION_DISTANCE],
            "min_equity": s[:, Stat.MIN_EQUITY],
            "time_in_market": s[:, Stat.BARS_IN_MARKET] / n_bars,
            "ambiguous_bars": s[:, Stat.AMBIGUOUS_BARS].astype(np.int64),
            "ruined": s[:, Stat.RUINED] > 0,
        }
        per_year = bars_per_year(int(self._sim.market.timeframe_ns))
        data["sharpe"], data["sortino"] = return_ratios(s, per_year)
        data["win_rate"], data["profit_factor"] = trade_ratios(s)
        data["calmar"] = calmar_ratio(
            s[:, Stat.FINAL_EQUITY], cash, s[:, Stat.MAX_DRAWDOWN], s[:, Stat.N_BARS], per_year
        )
        data["exposure"] = data["time_in_market"]
        data["first_liquidation_time"] = data["first_liquidation_time"].array
        return pd.DataFrame({n: data[n] for n in names}, index=self.labels.copy())

    @staticmethod
    def _stat_names(columns: Sequence[str]) -> tuple[str, ...]:
        names = (columns,) if isinstance(columns, str) else tuple(columns)
        for name in names:
            if name not in STAT_COLUMNS:
                raise ConfigError(
                    f"unknown statistic {name!r}{did_you_mean(str(name), STAT_COLUMNS)}; "
                    "the columns are results.STAT_COLUMNS"
                )
        return names

    def _cols(self, columns: Any) -> I64Array:
        if columns is None:
            return np.arange(self.n_cols, dtype=np.int64)
        cols = np.atleast_1d(np.asarray(columns))
        if cols.dtype.kind not in "iu":
            raise ShapeError(
                f"columns must be column numbers (ints in [0, {self.n_cols - 1}]), was dtype "
                f"{cols.dtype}"
            )
        cols = cols.astype(np.int64)
        if np.unique(cols).size != cols.size:
            raise ConfigError(f"columns must be distinct column numbers, was {cols.tolist()}")
        if cols.size and (cols.min() < 0 or cols.max() >= self.n_cols):
            raise ConfigError(f"columns must be in [0, {self.n_cols - 1}], was {cols.tolist()}")
        return cols

    def trade_records(self, columns: Any = None) -> np.ndarray:
        """Return the trades of ``columns`` (default all) as a ``records.trade_dt`` array."""
        cols = self._cols(columns)
        cap = int(max(1, self._raw[cols, Stat.N_TRADES].max(initial=0)))
        _, trades, _ = self._sim.run(cols, trade_cap=cap, batch_size=self._batch_size)
        assert trades is not None  # trade_cap > 0 always returns records
        out: np.ndarray = trades
        return out

    def trades(self, columns: Any = None) -> pd.DataFrame:
        """Return one row per trade of ``columns`` (default all), re-running only those columns.

        Columns: ``col`` plus the grid's parameters, ``entry_time``, ``exit_time``, ``side``,
        ``entry_price``, ``exit_price``, ``size`` (base units), ``leverage``, ``margin``, ``fees``,
        ``funding`` (paid), ``pnl`` (wallet change incl. fees and funding), ``exit_reason``.
        Open positions at the end appear with reason ``end_of_data`` valued at the mark close.
        """
        rec = self.trade_records(columns)
        ts = self._sim.market.ts_ns
        frame = pd.DataFrame(
            {
                "col": rec["col"],
                "entry_time": pd.to_datetime(ts[rec["entry_idx"]], utc=True),
                "exit_time": pd.to_datetime(ts[rec["idx"]], utc=True),
                "side": np.where(rec["side"] > 0, "long", "short"),
                "entry_price": rec["entry_price"],
                "exit_price": rec["exit_price"],
                "size": rec["size"],
                "leverage": rec["leverage"],
                "margin": rec["margin"],
                "fees": rec["fees"],
                "funding": rec["funding"],
                "pnl": rec["pnl"],
                "exit_reason": [EXIT_REASON_NAMES[int(r)] for r in rec["exit_reason"]],
            }
        )
        labels = self.labels.to_frame(index=False).iloc[rec["col"]].reset_index(drop=True)
        labels = labels.drop(columns=[c for c in labels.columns if c in frame.columns])
        return pd.concat([frame[["col"]], labels, frame.drop(columns=["col"])], axis=1)

    def equity(self, columns: Any = None) -> pd.DataFrame:
        """Return close equity per bar (rows) for ``columns`` (default all), re-running them.

        Memory is ``n_bars × len(columns)`` floats: ask for the columns you need.
        """
        cols = self._cols(columns)
        _, _, eq = self._sim.run(cols, equity=True, batch_size=self._batch_size)
        assert eq is not None
        return pd.DataFrame(eq, index=self._sim.market.index, columns=self.labels[cols])

    def plot(self, column: int = 0) -> Figure:
        """Return the trade view of ``column``: price, entries and exits, levels, equity, drawdown.

        One matplotlib Figure in three panels (re-running just that column): the close price
        with entries (▲ long, ▼ short) and exits (✕, coloured by reason); each trade's
        liquidation price, computed at its entry by :func:`backtester.liquidation_price` from
        the trade's margin (isolated) or the equity before the entry (cross) and the tier table
        in force (later funding and margin changes move the engine's real level; the line is
        left out where the rules cannot price the position, e.g. a market with its own tiers),
        and its stop-loss price (``entry_price × (1 ∓ stop_loss)``; a trailing stop is not
        drawn); the close equity; and the drawdown [%] from its running peak.

        Raises
        ------
        ConfigError
            ``column`` is not a column number of this result.
        """
        from backtester.reports.trades import trade_figure

        col = int(self._cols(column)[0]) if np.ndim(column) == 0 else -1
        if col < 0:
            raise ConfigError(f"column must be one column number, was {column!r}")
        m = self._sim.market
        trades = self.trades([col])
        equity = self.equity([col]).iloc[:, 0]
        liquidation = np.array(
            [self._liquidation_at_entry(col, t, equity) for t in trades.itertuples(index=False)],
            dtype=np.float64,
        )
        stop_loss = float(self._sim.fparams[FParam.STOP_LOSS, col])
        sign = np.where(trades["side"].to_numpy() == "long", -1.0, 1.0)
        stop = trades["entry_price"].to_numpy() * (1.0 + sign * stop_loss)
        label = ", ".join(
            f"{n}={v}" for n, v in zip(self.labels.names, self.labels[col], strict=True)
        )
        title = f"{m.symbol} {m.timeframe}, column {col}" + (f" ({label})" if label else "")
        return trade_figure(
            pd.Series(m.close, index=m.index), trades, equity, liquidation=liquidation,
            stop=stop, title=title, quote=m.symbol.split("/")[-1].split(":")[0],
        )  # fmt: skip

    def _liquidation_at_entry(self, col: int, trade: Any, equity: pd.Series) -> float:
        from backtester.rules import liquidation_price

        m = self._sim.market
        cross = int(self._sim.iparams[IParam.MARGIN_MODE, col]) == MarginMode.CROSS
        mmr = float(self._sim.fparams[FParam.MMR_OVERRIDE, col])
        before = equity.index.searchsorted(trade.entry_time) - 1
        wallet = float(equity.iloc[before]) if before >= 0 else float(
            self._sim.fparams[FParam.INITIAL_CASH, col]
        )  # fmt: skip
        try:
            return liquidation_price(
                m.exchange, trade.side, trade.entry_price, trade.size,
                margin_mode="cross" if cross else "isolated",
                margin=None if cross else trade.margin,
                wallet_balance=wallet if cross else None,
                mmr=None if math.isnan(mmr) else mmr,
                maint_amount=None if math.isnan(mmr) else 0.0,
                symbol=m.symbol, at=trade.entry_time,
            )  # fmt: skip
        except ConfigError:
            return math.nan

    def __repr__(self) -> str:
        m = self._sim.market
        return f"SweepResult({m.symbol} {m.timeframe}, {m.n_bars} bars x {self.n_cols} columns)"

    def _repr_html_(self) -> str:
        # the notebook view: what ran, then the head of stats() (the columns that need no re-run)
        import html

        m = self._sim.market
        head = self.stats(_HTML_COLUMNS).head(_HTML_ROWS)
        caption = html.escape(
            f"SweepResult: {m.symbol} on {m.exchange}, {m.timeframe} bars "
            f"{m.start:%Y-%m-%d %H:%M} → {m.end:%Y-%m-%d %H:%M} UTC ({m.n_bars:,} bars) × "
            f"{self.n_cols:,} columns; tier tables "
            + (", ".join(r["table_id"] for r in self.rules) or "none")
        )
        more = (
            f"<p>first {_HTML_ROWS} of {self.n_cols:,} columns; "
            if self.n_cols > _HTML_ROWS
            else "<p>"
        ) + "all statistics (sharpe, sortino, win_rate, ...) with <code>.stats()</code></p>"
        table: str = head.to_html(
            float_format=lambda v: f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}", border=0
        )
        return f"<div><p><b>{caption}</b></p>{table}{more}</div>"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class EntryOutcomes:
    """Outcomes of :func:`~backtester.engine.run.run_entries`, ``(n_settings, n_entries)``.

    ``exit_idx`` is the bar the position ended (the window's last bar when censored, -1 when the
    entry was rejected); ``reason`` an ``ExitReason`` code (``HORIZON``/``END_OF_DATA`` when
    censored, ``NONE`` when rejected); money in quote currency (``final_equity`` at the window's
    last mark close, ``min_equity`` the lowest close equity in the window), ``funding_paid``
    positive when paid; ``rejected`` True where the entry was refused (tier maximum leverage);
    ``ambiguous_bars (n_settings,)`` summed over entries. ``checkpoint_equity (n_settings,
    n_entries, len(checkpoints))``: the equity ``checkpoints[j]`` bars after entry (run_entries'
    ``checkpoints``; none by default), each equal to the ``final_equity`` of a run with that
    horizon.
    """

    labels: pd.MultiIndex
    entry_idx: I64Array
    horizon_bars: int
    exit_idx: I64Array
    reason: I64Array
    final_equity: F64Array
    min_equity: F64Array
    insurance_draw: F64Array
    funding_paid: F64Array
    fees_paid: F64Array
    rejected: BoolArray
    ambiguous_bars: I64Array
    ts_ns: I64Array
    #: the tier tables used: ``{"exchange", "table_id", "note"}`` each (the note says, e.g., that
    #: the earliest table was extended back to dates before it)
    rules: tuple[dict[str, str], ...] = ()
    checkpoints: I64Array = field(default_factory=lambda: np.zeros(0, np.int64))
    checkpoint_equity: F64Array = field(default_factory=lambda: np.zeros((0, 0, 0)))

    @property
    def n_settings(self) -> int:
        """Number of settings (rows)."""
        return int(self.exit_idx.shape[0])

    @property
    def n_entries(self) -> int:
        """Number of entries (columns)."""
        return int(self.exit_idx.shape[1])

    @property
    def bars_held(self) -> I64Array:
        """Bars from entry to exit, inclusive of the exit bar (0 when rejected)."""
        held = self.exit_idx - self.entry_idx[None, :] + 1
        return np.where(self.rejected, 0, held).astype(np.int64)

    @property
    def liquidated(self) -> BoolArray:
        """True where the position was liquidated."""
        return np.asarray(self.reason == ExitReason.LIQUIDATION)

    def to_frame(self) -> pd.DataFrame:
        """Return one row per (setting, entry) with the settings' labels and entry times."""
        n_s, n_e = self.n_settings, self.n_entries
        lab = self.labels.to_frame(index=False)
        lab = lab.iloc[np.repeat(np.arange(n_s), n_e)].reset_index(drop=True)
        entry_ts = np.tile(self.ts_ns[self.entry_idx], n_s)
        exit_i = self.exit_idx.ravel()
        exit_ts = np.where(
            exit_i >= 0, self.ts_ns[np.clip(exit_i, 0, None)], np.iinfo(np.int64).min
        )
        frame = pd.DataFrame(
            {
                "entry_time": pd.to_datetime(entry_ts, utc=True),
                "exit_time": pd.to_datetime(exit_ts, utc=True),
                "bars_held": self.bars_held.ravel(),
                "reason": [EXIT_REASON_NAMES[int(r)] for r in self.reason.ravel()],
                "final_equity": self.final_equity.ravel(),
                "min_equity": self.min_equity.ravel(),
                "insurance_draw": self.insurance_draw.ravel(),
                "funding_paid": self.funding_paid.ravel(),
                "fees_paid": self.fees_paid.ravel(),
                "rejected": self.rejected.ravel(),
            }
        )
        return pd.concat([lab, frame], axis=1)
