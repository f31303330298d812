"""A SurvivalStudy built from synthetic outcomes, for report and table tests without the engine."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

import backtester as bt
from backtester.engine.enums import ExitReason
from backtester.survival.run import entry_indices
from backtester.survival.study import SurvivalStudy

HORIZON_BARS = 24 * 30


def fake_study(market: bt.Market, *, seed: int = 0) -> SurvivalStudy:
    """Liquidation times ~ exponential with a hazard that grows with leverage; stops cut some."""
    rng = np.random.default_rng(seed)
    entries = entry_indices(market, 24)
    combos = list(itertools.product(("long", "short"), (2.0, 10.0, 100.0), (None, 0.05)))
    settings = pd.DataFrame(combos, columns=["side", "leverage", "stop_loss"])
    settings["position_size"] = 1.0
    settings["margin_mode"] = "isolated"
    n_s, n = len(settings), entries.size
    exit_idx = np.empty((n_s, n), dtype=np.int64)
    reason = np.empty((n_s, n), dtype=np.int64)
    for s, (_side, lev, stop) in enumerate(combos):
        t_liq = rng.exponential(HORIZON_BARS * 20 / lev, n).astype(int) + 1
        t_stop = rng.exponential(HORIZON_BARS / 2, n).astype(int) + 1 if stop else np.full(n, 10**9)
        d = np.minimum(np.minimum(t_liq, t_stop), HORIZON_BARS)
        reason[s] = np.where(
            d == t_liq,
            ExitReason.LIQUIDATION,
            np.where(d == t_stop, ExitReason.STOP_LOSS, ExitReason.HORIZON),
        )
        end = entries + d - 1
        over = end >= market.n_bars
        reason[s, over] = ExitReason.END_OF_DATA
        exit_idx[s] = np.minimum(end, market.n_bars - 1)
    zeros = np.zeros((n_s, n))
    return SurvivalStudy(
        market=market,
        settings=settings,
        entry_idx=entries,
        horizon_bars=HORIZON_BARS,
        entry_every_bars=24,
        exit_idx=exit_idx,
        reason=reason,
        final_equity=np.where(reason == ExitReason.LIQUIDATION, 0.0, 1.0),
        min_equity=zeros,
        insurance_draw=zeros,
        funding_paid=zeros,
        fees_paid=zeros,
        n_boot=200,
    )


# ------------------------------------------------------------------ synthetic GBM market

BETA = 0.5825971579390106  # Broadie–Glasserman–Kou: -zeta(1/2) / sqrt(2 pi)


def gbm_market(
    *, n_hours: int, sigma_per_minute: float, seed: int, start_price: float = 100.0
) -> bt.Market:
    """Driftless-in-price GBM: 1-minute log steps aggregated into 1-hour bars, mark = last.

    Minute points P_0..P_{60 n}; bar k has open P_{60k}, close P_{60k+60} and high/low over
    P_{60k}..P_{60k+60}, so a bar's low is the minimum of its 61 minute prices.
    """
    rng = np.random.default_rng(seed)
    nu = -0.5 * sigma_per_minute**2  # log drift so that E[P_t] = P_0
    steps = rng.normal(nu, sigma_per_minute, size=(n_hours, 60))
    log_close = np.log(start_price) + np.cumsum(steps.sum(axis=1))
    log_open = np.concatenate(([np.log(start_price)], log_close[:-1]))
    path = log_open[:, None] + np.concatenate(
        (np.zeros((n_hours, 1)), np.cumsum(steps, axis=1)), axis=1
    )
    ohlcv = pd.DataFrame(
        {
            # 2020-01-09 is day 18270 since the epoch: aligned for 1D, 2D, 5D and 10D entries
            "timestamp": pd.date_range("2020-01-09", periods=n_hours, freq="1h", tz="UTC"),
            "open": np.exp(log_open),
            "high": np.exp(path.max(axis=1)),
            "low": np.exp(path.min(axis=1)),
            "close": np.exp(log_close),
            "volume": np.ones(n_hours),
        }
    )
    # keep the bars exactly consistent after exp(): open/close inside [low, high]
    ohlcv["high"] = ohlcv[["high", "open", "close"]].max(axis=1)
    ohlcv["low"] = ohlcv[["low", "open", "close"]].min(axis=1)
    return bt.Market.from_frames(ohlcv, mark="last", symbol="BTC/USDT:USDT", timeframe="1h")


def first_passage_survival(
    *, side: str, leverage: float, mmr: float, sigma: float, n_steps: int, dt_corrected: bool
) -> float:
    """P(no liquidation within n_steps minutes) for a GBM with log drift -sigma^2/2 per minute.

    Barrier (Binance, flat MMR m, no maintenance amount): long LP = EP (1 - 1/L) / (1 - m),
    short LP = EP (1 + 1/L) / (1 + m). Continuous-monitoring formula for the running min/max of
    Brownian motion with drift, with the barrier shifted away by BETA * sigma (one step) to
    correct for monitoring at 1-minute points (Broadie–Glasserman–Kou).
    """
    from scipy.stats import norm

    nu = -0.5 * sigma**2
    t = n_steps
    s = sigma * np.sqrt(t)
    if side == "long":
        b = np.log((1 - 1 / leverage) / (1 - mmr))
        if dt_corrected:
            b -= BETA * sigma
        return float(
            norm.cdf((nu * t - b) / s) - np.exp(2 * nu * b / sigma**2) * norm.cdf((b + nu * t) / s)
        )
    b = np.log((1 + 1 / leverage) / (1 + mmr))
    if dt_corrected:
        b += BETA * sigma
    return float(
        norm.cdf((b - nu * t) / s) - np.exp(2 * nu * b / sigma**2) * norm.cdf((-b - nu * t) / s)
    )
