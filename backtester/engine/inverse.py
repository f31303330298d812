"""Coin-margined (inverse) markets as their linear twin on X = 1/P (layer: engine, beside run).

An inverse position of face value ``F`` USD (contracts × contract size) entered at ``EP`` has the
coin PnL ``s·F·(1/EP − 1/P)``. With ``X = 1/P`` that is ``(−s)·F·(X − X_EP)``: the PnL of a LINEAR
position of the opposite side, size ``F``, on the price ``X``. Everything the kernel computes
follows (docs/reference/exchange-rules.md §8.2, §8.7):

- notional ``F·X`` is the coin value, so margin ``= coin value / leverage``, fees ``rate·F·X``,
  the tier table in coin notional and the maintenance margin are the kernel's own;
- the wallet, equity, PnL, fees and funding are in the coin;
- bars: ``X_open = 1/open``, ``X_close = 1/close``, ``X_high = 1/low``, ``X_low = 1/high`` (last,
  mark and detail bars): a long's adverse mark low is its twin's adverse mark high;
- funding: the twin pays ``(−s)·F·X_mark·r'``; with ``r' = −r`` that is ``s·F/mark·r`` coin;
- stops and take-profits are fractions of P and become other fractions of X, by side: a long's
  stop ``EP·(1 − sl)`` is ``X_EP/(1 − sl) = X_EP·(1 + sl/(1 − sl))``, its twin (a short) stop;
  a short's ``EP·(1 + sl)`` is ``X_EP·(1 − sl/(1 + sl))``; the same for the trailing stop (on the
  best price since entry); a long's take-profit ``EP·(1 + tp)`` is ``X_EP·(1 − tp/(1 + tp))``,
  a short's ``EP·(1 − tp)`` is ``X_EP·(1 + tp/(1 − tp))`` (never reached for ``tp >= 1``);
- slippage stays the same fraction, of the COIN value of the fill: a buy fills at
  ``P/(1 − slippage)`` and a sell at ``P/(1 + slippage)`` (a linear market's ``P·(1 ± slippage)``
  to within ``slippage²``, e.g. 2.5e-7 of the price at 5 bps, below BTCUSD's 0.1 tick).

``run_entries`` and ``run_sweep`` call :func:`linear_twin` and :func:`twin_params` through a short
delimited hook; trades come back in P with :func:`trades_from_twin`. :func:`equity_usd` values a
coin amount in USD at each bar's close.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from backtester._typing import F64Array, I64Array
from backtester.engine.layout import FParam
from backtester.engine.run import _Simulation
from backtester.errors import ConfigError
from backtester.signals import Signals

if TYPE_CHECKING:
    from backtester.market import Market

__all__ = [
    "TwinSimulation",
    "equity_usd",
    "linear_twin",
    "stop_fractions",
    "sweep_sides",
    "trades_from_twin",
    "twin_params",
    "twin_signals",
]

LONG, SHORT = 1, -1


def _recip(values: F64Array) -> F64Array:
    return np.ascontiguousarray(1.0 / np.asarray(values, dtype=np.float64))


def linear_twin(market: Market) -> Market:
    """Return the linear twin of an inverse market: prices 1/P (high ↔ low), funding negated.

    Timestamps, symbol, exchange, tiers (coin notional) and contract size are kept; ``detail``
    bars are transformed the same way.
    """
    from backtester.market import Market

    detail = None if market.detail is None else linear_twin(market.detail)
    return Market(
        symbol=market.symbol,
        exchange=market.exchange,
        timeframe=market.timeframe,
        timeframe_ns=market.timeframe_ns,
        ts_ns=market.ts_ns,
        open=_recip(market.open),
        high=_recip(market.low),
        low=_recip(market.high),
        close=_recip(market.close),
        volume=market.volume,
        mark_open=_recip(market.mark_open),
        mark_high=_recip(market.mark_low),
        mark_low=_recip(market.mark_high),
        mark_close=_recip(market.mark_close),
        mark_source=market.mark_source,
        funding_ts_ns=market.funding_ts_ns,
        funding_rate=np.ascontiguousarray(-np.asarray(market.funding_rate, dtype=np.float64)),
        tiers=market.tiers,
        tiers_date=market.tiers_date,
        detail=detail,
        contract_size=market.contract_size,
    )


def stop_fractions(
    side: I64Array, stop_loss: F64Array, take_profit: F64Array, trailing_stop: F64Array
) -> tuple[F64Array, F64Array, F64Array]:
    """Return the twin's stop-loss, take-profit and trailing fractions for inverse ``side``.

    ``side`` is the INVERSE position's side per column (1 long, -1 short); NaN (off) stays NaN.
    """
    long = np.asarray(side) == LONG
    sl = np.asarray(stop_loss, dtype=np.float64)
    tp = np.asarray(take_profit, dtype=np.float64)
    ts = np.asarray(trailing_stop, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sl_x = np.where(long, sl / (1.0 - sl), sl / (1.0 + sl))
        ts_x = np.where(long, ts / (1.0 - ts), ts / (1.0 + ts))
        tp_short = np.where(tp < 1.0, tp / (1.0 - tp), math.inf)  # a short's tp >= 1: never
        tp_x = np.where(long, tp / (1.0 + tp), tp_short)
    tp_x = np.where(np.isnan(tp), np.nan, tp_x)
    return sl_x, tp_x, ts_x


def twin_params(fparams: F64Array, side: I64Array) -> F64Array:
    """Return a copy of the kernel's float rows with the stop fractions of the twin (by side).

    ``side`` is each column's INVERSE side; the caller flips it for the kernel.
    """
    out = np.array(fparams, dtype=np.float64, copy=True)
    sl, tp, ts = stop_fractions(
        side,
        out[FParam.STOP_LOSS],
        out[FParam.TAKE_PROFIT],
        out[FParam.TRAILING_STOP],
    )
    out[FParam.STOP_LOSS], out[FParam.TAKE_PROFIT], out[FParam.TRAILING_STOP] = sl, tp, ts
    return np.ascontiguousarray(out)


def sweep_sides(long_entries: np.ndarray, short_entries: np.ndarray, fparams: F64Array) -> I64Array:
    """Return each signal column's inverse side for :func:`twin_params` (run_sweep).

    A column whose signals open both sides cannot carry one set of twin stop fractions: with a
    stop-loss, take-profit or trailing stop set that is refused (ConfigError); without one the
    side does not matter (1 is returned).
    """
    has_long = np.asarray(long_entries).any(axis=0)
    has_short = np.asarray(short_entries).any(axis=0)
    stops = ~np.isnan(fparams[[FParam.STOP_LOSS, FParam.TAKE_PROFIT, FParam.TRAILING_STOP]])
    both = has_long & has_short & stops.any(axis=0)
    if both.any():
        raise ConfigError(
            f"stop_loss, take_profit and trailing_stop on an inverse market need columns that "
            f"trade one side (column {int(np.argmax(both))} opens longs and shorts; a fraction of "
            "the price is a different fraction of 1/price for each side); split the strategy into "
            "a long-only and a short-only run, or drop the stops"
        )
    return np.where(has_short & ~has_long, SHORT, LONG).astype(np.int64)


def trades_from_twin(trades: np.ndarray, contract_size: float) -> np.ndarray:
    """Return trade records of the twin in the inverse market's terms.

    Prices back to ``P = 1/X``, side flipped, size in contracts (``F / contract_size``); margin,
    fees, funding and PnL stay in the coin.
    """
    out = trades.copy()
    if out.size:
        out["side"] = -out["side"]
        with np.errstate(divide="ignore"):
            out["entry_price"] = 1.0 / out["entry_price"]
            out["exit_price"] = 1.0 / out["exit_price"]
        out["size"] = out["size"] / contract_size
    return out


def equity_usd(coin: Any, market: Market, *, at: Any = None) -> Any:
    """Return a coin amount in USD: ``coin × close`` of the bar (the last price).

    ``coin`` is a per-bar array or frame aligned with ``market``'s bars (``SweepResult.equity()``),
    or values at the bars ``at`` (``EntryOutcomes.final_equity`` with ``at=exit_idx``).
    """
    close = np.asarray(market.close, dtype=np.float64)
    if at is not None:
        return np.asarray(coin, dtype=np.float64) * close[np.asarray(at, dtype=np.int64)]
    if hasattr(coin, "mul"):
        return coin.mul(close, axis=0)
    arr = np.asarray(coin, dtype=np.float64)
    return arr * (close if arr.ndim == 1 else close[:, None])


def twin_signals(
    signals: Signals, fparams: F64Array, sig_idx: I64Array
) -> tuple[Signals, F64Array]:
    """Return the twin's signals (long ↔ short) and float rows with the twin's stop fractions.

    ``sig_idx`` maps each run column to its signal column (run_sweep's ``inverse``); a run
    column with stops whose signals open both sides is refused (:func:`sweep_sides`).
    """
    cols = np.asarray(sig_idx, dtype=np.int64)
    le, lx = np.asarray(signals.long_entries), np.asarray(signals.long_exits)
    se, sx = np.asarray(signals.short_entries), np.asarray(signals.short_exits)
    col_side = sweep_sides(le[:, cols], se[:, cols], fparams)
    swapped = Signals(long_entries=se, long_exits=sx, short_entries=le, short_exits=lx)
    return swapped, twin_params(fparams, col_side)


class TwinSimulation(_Simulation):
    """A run on the linear twin whose trade records come back in the inverse market's terms.

    ``market`` is the inverse market (what results show); the kernel inputs are the twin's.
    """

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run as :class:`_Simulation`, then :func:`trades_from_twin` on the trade records."""
        stats, trades, eq = super().run(*args, **kwargs)
        if trades is not None:
            trades = trades_from_twin(trades, float(self.market.contract_size or 1.0))
        return stats, trades, eq
