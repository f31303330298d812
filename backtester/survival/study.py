"""SurvivalStudy: outcomes of rolling-entry holds per setting, survival estimates and intervals.

Layer: survival (imports survival.stats and engine.enums; frames only in outputs). It computes and
never draws: ``report()`` hands the study and its ``comparisons()`` to ``survival.report``.

What "survival" means here: a position *survives* the horizon when it was not liquidated (and
the account not ruined) within it. A stop-loss exit ends the position unharmed by the
liquidation engine: a stopped position can no longer be liquidated, so it counts as a survivor
to the horizon (it is not censored at the stop, which would treat the stop as uninformative and
bias survival down). Only the horizon and the end of the data censor; stop exits are counted
separately as ``n_stopped``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.engine.enums import ExitReason
from backtester.errors import ConfigError, ShapeError
from backtester.survival.stats import (
    block_bootstrap_counts,
    clopper_pearson,
    clopper_pearson_many,
    km_curve,
    km_estimate,
    logrank_p,
)

if TYPE_CHECKING:  # pragma: no cover
    from backtester.market import Market
    from backtester.marketset import MarketSet
    from backtester.survival.comparisons import Comparisons

__all__ = [
    "ACCOUNT_MEANING",
    "DEFAULT_INITIAL_CASH",
    "LOSS_MEANING",
    "SETTING_COLUMNS",
    "SURVIVAL_MEANING",
    "SurvivalStudy",
    "curve_groups",
    "default_initial_cash",
    "legs_label",
    "others_fixed",
]

log = logging.getLogger(__name__)

_STOP_LOSS, _TRAILING_STOP = ExitReason.STOP_LOSS, ExitReason.TRAILING_STOP
_LIQUIDATION, _RUIN = ExitReason.LIQUIDATION, ExitReason.RUIN
_NS_PER_DAY = 86_400_000_000_000

#: starting cash of survival studies (quote currency): 125x stays in the first tier
DEFAULT_INITIAL_CASH = 100.0


def default_initial_cash(market: Any) -> float:
    """Return the study's starting wallet: 100 in the quote currency (USDT), so that 125x stays
    inside the first maintenance tier; on a coin-margined market the same 100 USD in the coin
    at the first bar's open (100 BTC would put 10x far beyond the first tiers)."""
    if getattr(market, "contract_type", "linear") == "inverse":
        return DEFAULT_INITIAL_CASH / float(market.open[0])
    return DEFAULT_INITIAL_CASH


SETTING_COLUMNS = ("side", "leverage", "stop_loss", "position_size", "margin_mode")

SURVIVAL_MEANING = (
    "Survival = share of positions NOT liquidated (and the account not ruined) within the "
    "horizon, estimated by Kaplan–Meier. A stop-loss exit is not a liquidation: a stopped "
    "position can no longer be liquidated, so it survives to the horizon and is counted in "
    "n_stopped. Only the horizon and the end of the data censor (right-censoring)."
)

ACCOUNT_MEANING = (
    "Survival = share of accounts in which NO leg and not the account itself was liquidated "
    "(and the account not ruined) within the horizon, estimated by Kaplan–Meier on the time to "
    "the first liquidation. Every rolling entry opens the whole account (every leg at once). "
    "Isolated: each leg is liquidated on its own and loses its own margin; cross: the account "
    "is liquidated when its margin balance falls to the sum of the legs' maintenance margins, "
    "and every leg goes. A leg's stop-loss exit is not a liquidation; the other legs are "
    "followed on. Only the horizon and the end of the data censor (right-censoring)."
)

LOSS_MEANING = (
    "fraction of the starting wallet lost by the horizon, max(0, 1 - final_equity / "
    "initial_cash), over the entries that opened (0 = no loss, 1 = the whole wallet); "
    "loss_mean is its mean, loss_q95 its 95th percentile (numpy's linear interpolation)"
)


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt_label(value: Any) -> str:
    if _is_none(value):
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def legs_label(legs: Sequence[tuple[str, float]]) -> str:
    """Return ``"BTC +0.5 / ETH -0.5"``: each leg's base currency and signed weight."""
    return " / ".join(f"{sym.split('/')[0]} {w:+g}" for sym, w in legs)


class SurvivalStudy:
    """Outcomes of rolling-entry holds for each setting, with survival estimates and a report.

    Build one with :func:`survival_study`. Arrays are ``(n_settings, n_entries)``; the settings
    frame ``settings`` has one row per setting (column ``i`` of the arrays is row ``i``).

    Attributes
    ----------
    market : Market or MarketSet
        A ``MarketSet`` for an account study (``legs=``): every entry opens the whole account.
    settings : pandas.DataFrame
        The swept values of each setting (side, leverage, stop_loss, ...); an account study has
        a ``legs`` column (``"BTC +0.5 / ETH -0.5"``) instead of ``side``.
    entry_idx : (n_entries,) int64
        Bar index of every entry (the position opens at that bar's open).
    horizon_bars, entry_every_bars : int
    exit_idx, reason : (n_settings, n_entries)
        Bar of the exit and its ``ExitReason`` code (``ExitReason.LIQUIDATION``,
        ``ExitReason.STOP_LOSS``, ``ExitReason.HORIZON``, ...). For an account: the first
        liquidation (of a leg or of the cross account) when there was one, else the first
        leg's exit (a stop, ruin) or the window's last bar.
    final_equity, min_equity, insurance_draw, funding_paid, fees_paid : (n_settings, n_entries)
        Quote-currency amounts from the engine (equity starts at ``initial_cash``); for an
        account, of the whole wallet.
    legs : tuple or None
        Account studies: each setting's legs, ``((symbol, weight), ...)``; None for one market.
    liquidated_leg : (n_settings, n_entries) int64
        Which leg was liquidated first (index into that setting's legs; ``len(legs)`` = the
        cross account as a whole; -1 none). One market: 0 where liquidated.
    checkpoint_equity : (n_settings, n_entries, k) float64 or None
        Equity (quote currency) ``checkpoints[j]`` bars after entry when ``survival_study``
        was given ``checkpoints``; else None.
    """

    def __init__(
        self,
        *,
        market: Market | MarketSet,
        settings: pd.DataFrame,
        entry_idx: I64Array,
        horizon_bars: int,
        entry_every_bars: int,
        exit_idx: I64Array,
        reason: Any,
        final_equity: F64Array,
        min_equity: F64Array,
        insurance_draw: F64Array,
        funding_paid: F64Array,
        fees_paid: F64Array,
        ambiguous_bars: I64Array | None = None,
        rejected: BoolArray | None = None,
        initial_cash: float = 1.0,
        run_settings: dict[str, Any] | None = None,
        confidence: float = 0.95,
        n_boot: int = 1000,
        seed: int = 0,
        elapsed_s: float = math.nan,
        strategy_name: str | None = None,
        rules: Sequence[Mapping[str, str]] | None = None,
        legs: Sequence[Sequence[tuple[str, float]]] | None = None,
        liquidated_leg: I64Array | None = None,
        leg_outcomes: Mapping[str, Any] | None = None,
        checkpoint_equity: F64Array | None = None,
    ) -> None:
        n_settings, n_entries = len(settings), int(np.asarray(entry_idx).size)
        self.market = market
        self.settings = settings.reset_index(drop=True)
        self.entry_idx = np.asarray(entry_idx, dtype=np.int64)
        self.horizon_bars = int(horizon_bars)
        self.entry_every_bars = int(entry_every_bars)
        arrays = {
            "exit_idx": exit_idx,
            "reason": reason,
            "final_equity": final_equity,
            "min_equity": min_equity,
            "insurance_draw": insurance_draw,
            "funding_paid": funding_paid,
            "fees_paid": fees_paid,
        }
        for name, arr in arrays.items():
            a = np.asarray(arr)
            if a.shape != (n_settings, n_entries):
                raise ShapeError(
                    f"SurvivalStudy.{name} must have shape ({n_settings}, {n_entries}), "
                    f"was {a.shape}"
                )
        self.exit_idx = np.asarray(exit_idx, dtype=np.int64)
        self.reason = np.asarray(reason, dtype=np.int64)
        self.final_equity = np.asarray(final_equity, dtype=np.float64)
        self.min_equity = np.asarray(min_equity, dtype=np.float64)
        self.insurance_draw = np.asarray(insurance_draw, dtype=np.float64)
        self.funding_paid = np.asarray(funding_paid, dtype=np.float64)
        self.fees_paid = np.asarray(fees_paid, dtype=np.float64)
        self.ambiguous_bars = (
            np.zeros(n_settings, dtype=np.int64)
            if ambiguous_bars is None
            else np.asarray(ambiguous_bars, dtype=np.int64)
        )
        self.rejected = (
            np.zeros((n_settings, n_entries), dtype=bool)
            if rejected is None
            else np.asarray(rejected, dtype=bool).reshape(n_settings, n_entries)
        )
        self.initial_cash = float(initial_cash)
        self.run_settings = dict(run_settings or {})
        #: the tier tables the engine used, each ``{"exchange", "table_id", "note"}``
        self.rules: tuple[dict[str, str], ...] = tuple(dict(r) for r in (rules or ()))
        self.confidence = float(confidence)
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self.elapsed_s = float(elapsed_s)
        self.strategy_name = strategy_name
        self.legs: tuple[tuple[tuple[str, float], ...], ...] | None = (
            None if legs is None else tuple(tuple((str(a), float(w)) for a, w in x) for x in legs)
        )
        if self.legs is not None and len(self.legs) != n_settings:
            raise ShapeError(
                f"SurvivalStudy.legs must hold one leg set per setting ({n_settings}), "
                f"was {len(self.legs)}"
            )
        #: account studies: ``run_account_entries``' per-leg arrays ``(n_settings, n_entries,
        #: K)`` (``leg_exit_idx``, ``leg_reason``, ``leg_pnl``, ...; padded with -1 / NaN where a
        #: setting's leg set has fewer legs); empty for one market
        self.leg_outcomes: dict[str, Any] = {
            k: np.asarray(v) for k, v in (leg_outcomes or {}).items()
        }
        #: ``(n_settings, n_entries, k)`` equity at ``survival_study``'s checkpoints (or None)
        self.checkpoint_equity = (
            None if checkpoint_equity is None else np.asarray(checkpoint_equity, np.float64)
        )
        if liquidated_leg is None:
            self.liquidated_leg = np.where(self.reason == _LIQUIDATION, 0, -1).astype(np.int64)
        else:
            self.liquidated_leg = np.asarray(liquidated_leg, dtype=np.int64).reshape(
                n_settings, n_entries
            )

    # ------------------------------------------------------------------ basics

    def __repr__(self) -> str:
        return (
            f"SurvivalStudy({self.market_label} {self.market.timeframe}, "
            f"{self.n_settings} settings x {self.n_entries} entries, "
            f"horizon {self.horizon_days:g} days)"
        )

    def _repr_html_(self) -> str:
        """Return a compact HTML summary for notebooks: what was studied and the answer."""
        import html

        from backtester.reports.tables import safe_leverage_display

        m = self.market
        facts = {
            "Market": f"{self.market_label} ({m.exchange} {m.timeframe})",
            "Data": f"{m.index[0]:%Y-%m-%d} → {m.index[-1]:%Y-%m-%d}" if m.n_bars else "empty",
            "Horizon": f"{self.horizon_days:g} days",
            "Entries": f"{self.n_entries:,} every {self.entry_every_bars * self.bar_days:g} day(s)",
            "Settings": f"{self.n_settings}",
        }
        rows = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>"
            f"{html.escape(v)}</td></tr>"
            for k, v in facts.items()
        )
        safe = self.max_safe_leverage()
        answer = safe_leverage_display(safe).to_html(index=False, border=0)
        return (
            f"<div><b>SurvivalStudy</b><table>{rows}</table>"
            f"<p>Highest leverage that meets the target ({html.escape(safe.attrs['rule'])}):</p>"
            f"{answer}<p><code>.table()</code> for every setting, <code>.curve(...)</code> "
            f"for a Kaplan–Meier curve, <code>.report(path)</code> for the HTML report.</p></div>"
        )

    @property
    def is_account(self) -> bool:
        """True for an account study (a ``MarketSet`` and ``legs``)."""
        return self.legs is not None

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols the study holds (one for a single market)."""
        from backtester.marketset import MarketSet

        m = self.market
        return tuple(m.symbols) if isinstance(m, MarketSet) else (m.symbol,)

    @property
    def market_label(self) -> str:
        """``"BTC/USDT:USDT"``, or ``"BTC/USDT:USDT + ETH/USDT:USDT"`` for an account."""
        return " + ".join(self.symbols)

    @property
    def mark_source(self) -> str:
        """Which price judges liquidation: ``"mark"`` or ``"last"`` (per symbol if they differ)."""
        from backtester.marketset import MarketSet

        m = self.market
        if not isinstance(m, MarketSet):
            return str(m.mark_source)
        sources = {x.symbol: str(x.mark_source) for x in m.markets}
        if len(set(sources.values())) == 1:
            return next(iter(sources.values()))
        return ", ".join(f"{k}: {v}" for k, v in sources.items())

    @property
    def n_settings(self) -> int:
        """Number of settings (rows of ``settings``)."""
        return len(self.settings)

    @property
    def n_entries(self) -> int:
        """Number of rolling entries per setting."""
        return int(self.entry_idx.size)

    @property
    def bar_days(self) -> float:
        """Length of one bar in days."""
        return self.market.timeframe_ns / _NS_PER_DAY

    @property
    def horizon_days(self) -> float:
        """The horizon in days."""
        return self.horizon_bars * self.bar_days

    @property
    def setting_columns(self) -> list[str]:
        """Names of the settings that vary or define the study (columns of ``settings``)."""
        return list(self.settings.columns)

    @property
    def entry_times(self) -> pd.DatetimeIndex:
        """Entry times (bar open, UTC)."""
        return pd.to_datetime(self.market.ts_ns[self.entry_idx], utc=True)

    @cached_property
    def durations(self) -> I64Array:
        """Bars of follow-up per hold, capped at the horizon ``(n_settings, n_entries)``.

        A liquidation or ruin ends follow-up at its bar (the event time). Any other exit (stop,
        take-profit, horizon) leaves a position that can no longer be liquidated, so it is
        followed to the horizon, or to the end of the data when that comes first (censoring).
        """
        n_bars = self.market.n_bars
        exit_idx = np.where(self.exit_idx < 0, n_bars - 1, self.exit_idx)
        event_d = exit_idx - self.entry_idx[None, :] + 1
        available = (n_bars - self.entry_idx)[None, :]
        d = np.where(self.events, event_d, available)
        return np.clip(d, 1, self.horizon_bars).astype(np.int64)

    @cached_property
    def events(self) -> BoolArray:
        """True where the hold ended in liquidation or ruin ``(n_settings, n_entries)``."""
        out: BoolArray = (self.reason == _LIQUIDATION) | (self.reason == _RUIN)
        return out

    @cached_property
    def loss(self) -> F64Array:
        """Fraction of the starting wallet lost by the horizon: ``max(0, 1 - final/initial)``."""
        out: F64Array = np.maximum(0.0, 1.0 - self.final_equity / self.initial_cash)
        return out

    @cached_property
    def stopped(self) -> BoolArray:
        """True where a stop-loss (or trailing stop) closed the hold."""
        out: BoolArray = (self.reason == _STOP_LOSS) | (self.reason == _TRAILING_STOP)
        return out

    def label(self, i: int) -> str:
        """Return a short text label of setting ``i`` from its varying columns."""
        row = self.settings.iloc[i]
        varying = [c for c in self.settings.columns if self.settings[c].nunique(dropna=False) > 1]
        parts = []
        for c in varying or list(self.settings.columns[:1]):
            v = row[c]
            if c == "leverage":
                parts.append(f"{_fmt_label(v)}x")
            elif c == "stop_loss":
                parts.append("no stop" if _is_none(v) else f"stop {float(v) * 100:g}%")
            elif c == "position_size":
                parts.append(f"size {float(v) * 100:g}%")
            else:
                parts.append(_fmt_label(v))
        return " ".join(parts)

    def select(self, **values: Any) -> list[int]:
        """Return the setting indices whose columns equal ``values`` (None matches no stop)."""
        mask = np.ones(self.n_settings, dtype=bool)
        for name, want in values.items():
            if name not in self.settings:
                from backtester.errors import did_you_mean

                raise ConfigError(
                    f"unknown setting {name!r}{did_you_mean(name, self.settings.columns)}"
                )
            col = self.settings[name]
            if _is_none(want):
                mask &= col.isna().to_numpy()
            else:
                mask &= (col == want).to_numpy()
        return [int(i) for i in np.flatnonzero(mask)]

    # ------------------------------------------------------------------ statistics

    @property
    def block_len(self) -> int:
        """Entries per bootstrap block: as many as fit in one horizon (at least 1)."""
        return max(1, math.ceil(self.horizon_bars / max(self.entry_every_bars, 1)))

    @property
    def n_effective(self) -> float:
        """Effective number of independent holds: non-overlapping horizons spanned by entries."""
        return self.n_entries * min(1.0, self.entry_every_bars / self.horizon_bars)

    @cached_property
    def bootstrap_survival(self) -> F64Array:
        """``(n_settings, n_boot)`` KM survival at the horizon on moving-block resamples.

        All settings share the same resampled entry times, so differences between settings
        are bootstrapped jointly. Compiled (``survival._stats_nb``); the same numbers as
        ``stats.km_weighted`` on the counts of the opened entries.
        """
        from backtester.survival._stats_nb import km_boot

        weights = self._boot_weights
        at = np.array([self.horizon_bars], dtype=np.int64)
        out = np.empty((self.n_settings, self.n_boot))
        for s in range(self.n_settings):  # rejected entries never opened: weight 0
            ok = ~self.rejected[s]
            out[s] = km_boot(self.durations[s], self.events[s], weights, ok, at)[:, 0]
        return out

    @property
    def _boot_weights(self) -> Any:
        # the counts as the compiled bootstrap takes them: (n_entries, n_boot) int32
        return _shared_boot(self.n_entries, self.block_len, self.n_boot, self.seed)[1]

    @property
    def _boot_counts(self) -> Any:
        # (n_boot, n_entries) moving-block resample counts, shared by every setting and time
        return _shared_boot(self.n_entries, self.block_len, self.n_boot, self.seed)[0]

    def _interval(self, survival: float, boot: F64Array) -> tuple[float, float]:
        low, high = self._intervals(np.array([survival]), boot[:, None])
        return float(low[0]), float(high[0])

    def _intervals(self, survival: F64Array, boot: F64Array) -> tuple[F64Array, F64Array]:
        # the honest interval of each survival[k] from its bootstrap column boot[:, k]: the
        # wider of the bootstrap percentile interval and the exact binomial one at n_eff
        alpha = 1.0 - self.confidence
        k = survival.size
        lo_b, hi_b = np.zeros(k), np.ones(k)
        finite = np.isfinite(boot)
        full = finite.all(axis=0)
        if full.any():  # np.quantile per column, all columns at once
            q = np.quantile(boot[:, full], [alpha / 2, 1 - alpha / 2], axis=0)
            lo_b[full], hi_b[full] = q[0], q[1]
        for j in np.flatnonzero(~full & finite.any(axis=0)):
            col = boot[finite[:, j], j]
            lo_b[j], hi_b[j] = np.quantile(col, alpha / 2), np.quantile(col, 1 - alpha / 2)
        n_eff = self.n_effective
        lo_c, hi_c = clopper_pearson_many(survival * n_eff, n_eff, alpha=alpha)
        ok = np.isfinite(survival)
        low = np.where(ok, np.minimum(lo_b, lo_c), np.nan)
        high = np.where(ok, np.maximum(hi_b, hi_c), np.nan)
        return low, high

    @cached_property
    def _table(self) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        alpha = 1.0 - self.confidence
        boot = self.bootstrap_survival
        for s in range(self.n_settings):
            ok = ~self.rejected[s]
            d, e = self.durations[s][ok], self.events[s][ok]
            est = km_estimate(d, e, horizon=self.horizon_bars, alpha=alpha)
            low, high = self._interval(est.survival, boot[s])
            reason = self.reason[s][ok]
            rows.append(
                {
                    "n_entries": int(ok.sum()),
                    "n_liquidated": int((reason == _LIQUIDATION).sum()),
                    "n_stopped": int(((reason == _STOP_LOSS) | (reason == _TRAILING_STOP)).sum()),
                    "n_censored": int((~e).sum()),
                    "survival": est.survival,
                    "ci_low": low,
                    "ci_high": high,
                    "median_time_to_liquidation": est.median * self.bar_days,
                    "n_ruined": int((reason == _RUIN).sum()),
                    "n_rejected": int(self.rejected[s].sum()),
                    "ci_low_greenwood": est.ci_low,
                    "ci_high_greenwood": est.ci_high,
                    "n_insurance_draws": int((self.insurance_draw[s] > 0).sum()),
                    "mean_final_equity": float(np.mean(self.final_equity[s]) / self.initial_cash),
                    "ambiguous_bars": int(self.ambiguous_bars[s]),
                    **_loss_stats(self.loss[s][ok]),
                    **self._usd_stats(s, ok),
                }
            )
        table = pd.concat([self.settings, pd.DataFrame(rows)], axis=1)
        table.attrs = self.table_metadata()
        return table

    def _usd_stats(self, s: int, ok: BoolArray) -> dict[str, float]:
        # a coin-margined wallet in USD: the coin at the entry bar's open, then at the exit
        # bar's close (engine.inverse.equity_usd), as a fraction of the starting USD value
        from backtester.market import Market

        m = self.market
        if not isinstance(m, Market) or m.contract_type != "inverse":
            return {}
        from backtester.engine.inverse import equity_usd

        entries, exits = self.entry_idx[ok], self.exit_idx[s][ok]
        if not entries.size:
            return {"mean_final_equity_usd": math.nan, "loss_mean_usd": math.nan}
        start = self.initial_cash * np.asarray(m.open, dtype=np.float64)[entries]
        frac = equity_usd(self.final_equity[s][ok], m, at=exits) / start
        return {
            "mean_final_equity_usd": float(np.mean(frac)),
            "loss_mean_usd": float(np.mean(np.maximum(0.0, 1.0 - frac))),
        }

    def table(self) -> pd.DataFrame:
        """Return one row per setting, indexed by the settings, with survival statistics.

        The index is a ``MultiIndex`` of the setting columns (``side, leverage, stop_loss,
        position_size, margin_mode``, ``legs`` for an account, and any other swept engine
        setting), in the order of ``settings``, like ``SweepResult.stats()``; so
        ``table().loc[("long", 10.0)]`` picks rows by label and ``table().reset_index()`` is
        the flat frame with the settings as its first columns (what ``table()`` returned
        before 0.x). No stop is NaN in ``stop_loss``.

        Columns: ``n_entries, n_liquidated, n_stopped, n_censored, survival,
        ci_low, ci_high, median_time_to_liquidation`` (days, NaN when more than half survive the
        horizon), then ``n_ruined``, ``ci_low_greenwood``/``ci_high_greenwood`` (the naive
        interval that treats overlapping entries as independent), ``n_insurance_draws``,
        ``mean_final_equity`` (fraction of the initial cash), ``ambiguous_bars``, and how much
        of the wallet was lost: ``loss_mean`` and ``loss_q95``, the mean and the 95th
        percentile over the opened entries of ``max(0, 1 - final_equity / initial_cash)`` at
        the horizon (0 = nothing lost, 1 = the whole starting wallet; NaN when no entry
        opened). For an account study ``n_liquidated`` counts the entries where any leg or
        the account was liquidated, and survival is the time to that first liquidation.
        On a coin-margined (inverse) market money is in the coin, and two columns give the
        wallet in USD: ``mean_final_equity_usd`` (the final equity at the exit bar's close over
        the starting wallet at the entry bar's open, in USD) and ``loss_mean_usd``
        (``max(0, 1 - that)``, averaged): a coin-margined long loses in the coin and in the
        coin's price at once.
        ``df.attrs`` states what survival and loss mean and how the interval was computed.
        """
        flat = self._table
        stats = flat.drop(columns=self.setting_columns)
        stats.index = pd.MultiIndex.from_frame(flat[self.setting_columns])
        stats.attrs = dict(flat.attrs)
        return stats

    def table_metadata(self) -> dict[str, Any]:
        """Return what the table's numbers mean (stored in ``table().attrs``)."""
        pct = f"{self.confidence * 100:g}%"
        meaning = ACCOUNT_MEANING if self.is_account else SURVIVAL_MEANING
        if self.strategy_name is not None:
            from backtester.survival.strategy import STRATEGY_MEANING, STRATEGY_STOPS

            # the plain-hold wording ("a stopped position survives to the horizon") is wrong
            # here: after a stop the strategy trades on and the account can still be liquidated
            meaning = (
                f"{STRATEGY_MEANING} ({self.strategy_name}). Survival = share of accounts NOT "
                f"liquidated (and not ruined) within the horizon, estimated by Kaplan–Meier. "
                f"{STRATEGY_STOPS}"
            )
        return {
            "survival": meaning,
            "horizon_days": self.horizon_days,
            "entry_every_days": self.entry_every_bars * self.bar_days,
            "median_time_to_liquidation": "days; NaN when survival stays above 50% to the horizon",
            "ci_method": (
                f"{pct} interval for survival at the horizon, honest for overlapping entries: "
                f"the wider of (a) a moving-block bootstrap over entry time ({self.n_boot} "
                f"resamples, block = {self.block_len} consecutive entries = one horizon, "
                f"seed {self.seed}, percentile interval of the Kaplan–Meier estimate) and (b) "
                f"an exact Clopper–Pearson interval at the effective sample size "
                f"n_eff = {self.n_effective:.1f} non-overlapping horizons. "
                f"ci_low_greenwood/ci_high_greenwood are lifelines' Greenwood log(-log) "
                f"intervals, which treat every entry as independent and are too narrow here."
            ),
            "estimator": "Kaplan–Meier (lifelines.KaplanMeierFitter's arithmetic, bit for bit)",
            "loss": LOSS_MEANING,
            **({"legs": self._legs_meaning()} if self.is_account else {}),
        }

    def _legs_meaning(self) -> str:
        sets = dict.fromkeys(legs_label(x) for x in self.legs or ())
        return (
            "legs: symbol base and signed weight of each leg (negative = short); leg k commits "
            "position_size·|weight_k| of the equity as margin. Leg sets: " + "; ".join(sets)
        )

    def nonoverlapping(self) -> pd.DataFrame:
        """Return survival on independent subsamples: entries one horizon apart.

        For each of the ``block_len`` offsets, the entries ``offset, offset + block_len, ...``
        never overlap, so lifelines' Greenwood interval is valid for that subsample. Columns:
        the settings, ``n_independent`` (entries per subsample), ``survival_offset0`` with
        ``ci_low_offset0``/``ci_high_offset0`` (the subsample starting at the first entry), and
        the ``min``/``median``/``max`` of the survival over all offsets (how much the answer
        depends on the calendar alignment).
        """
        alpha = 1.0 - self.confidence
        b = min(self.block_len, max(self.n_entries, 1))
        from backtester.survival._stats_nb import boot_weights, km_boot

        offsets = np.zeros((b, self.n_entries), dtype=np.int32)
        for offset in range(b):
            offsets[offset, offset::b] = 1  # subsample `offset`: entries one horizon apart
        at = np.array([self.horizon_bars], dtype=np.int64)
        weights = boot_weights(offsets)
        rows: list[dict[str, Any]] = []
        for s in range(self.n_settings):
            ok = ~self.rejected[s]
            values = km_boot(self.durations[s], self.events[s], weights, ok, at)[:, 0]
            take = (offsets[0] > 0) & ok
            est = km_estimate(
                self.durations[s][take],
                self.events[s][take],
                horizon=self.horizon_bars,
                alpha=alpha,
            )
            finite = values[np.isfinite(values)]
            rows.append(
                {
                    "n_independent": int(take.sum()),
                    "survival_offset0": est.survival,
                    "ci_low_offset0": est.ci_low,
                    "ci_high_offset0": est.ci_high,
                    "survival_min": float(finite.min()) if finite.size else math.nan,
                    "survival_median": float(np.median(finite)) if finite.size else math.nan,
                    "survival_max": float(finite.max()) if finite.size else math.nan,
                }
            )
        frame = pd.concat([self.settings, pd.DataFrame(rows)], axis=1)
        frame.attrs = {
            "method": f"entries {b} apart (one horizon): {b} disjoint subsamples of independent "
            "holds; Greenwood interval on the first, spread over all of them",
        }
        return frame

    def curve(self, i: int | None = None, /, **labels: Any) -> pd.DataFrame:
        """Return the Kaplan–Meier curve of one setting with its pointwise interval.

        Pick the setting by position (``curve(3)``, a row of ``table()``) or by labels
        (``curve(leverage=10, side="long")``; ``stop_loss=None`` is no stop); the labels must
        match exactly one setting. Columns: ``time_days`` (days since entry, from 0),
        ``survival`` (the step holds from that time until the next row), ``ci_low`` and
        ``ci_high``: at each time, the same honest interval as ``table()``'s at the horizon
        (moving-block bootstrap over entry time, widened to an exact binomial interval at the
        effective sample size). The last row is at the horizon. Entries the engine rejected
        (never opened) are left out, as in ``table()``; with every entry rejected the frame
        is empty. ``df.attrs["setting"]`` is the setting's label.

        Raises
        ------
        ConfigError
            If ``i`` is out of range, both ``i`` and labels are given, or the labels match
            no setting or several (the message lists the settings that still differ).
        """
        i = self._pick(i, labels)
        columns = ["time_days", "survival", "ci_low", "ci_high"]
        ok = ~self.rejected[i]
        if not ok.any():
            frame = pd.DataFrame(columns=columns, dtype=np.float64)
        else:
            t, surv = km_curve(self.durations[i][ok], self.events[i][ok])
            if t[-1] < self.horizon_bars:  # the curve runs flat to the horizon
                t, surv = np.append(t, self.horizon_bars), np.append(surv, surv[-1])
            low, high = self._intervals(surv, self._curve_boot(i, ok, t))
            frame = pd.DataFrame(
                {
                    "time_days": t.astype(np.float64) * self.bar_days,
                    "survival": surv,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        frame.attrs = {"setting": self.label(i), "ci_method": self.table_metadata()["ci_method"]}
        return frame

    def _curve_boot(self, i: int, ok: BoolArray, times: I64Array) -> F64Array:
        # (n_boot, len(times)) bootstrap replicates of setting i's curve at `times`: the
        # moving-block resample over entry time (a study pooled over paths resamples paths)
        from backtester.survival._stats_nb import km_boot

        return km_boot(self.durations[i], self.events[i], self._boot_weights, ok, times)  # type: ignore[no-any-return]

    def _pick(self, i: int | None, labels: Mapping[str, Any]) -> int:
        # one setting by position or by labels (curve, and whatever selects one setting)
        if i is not None and labels:
            raise ConfigError("pick a setting by position or by labels, not both")
        if i is None:
            if not labels:
                raise ConfigError(
                    "pick a setting: curve(0) or labels such as "
                    f"curve({', '.join(f'{c}=...' for c in self.setting_columns[:2])})"
                )
            found = self.select(**labels)
            if len(found) != 1:
                differ = [
                    c
                    for c in self.setting_columns
                    if c not in labels and self.settings[c].iloc[found].nunique(dropna=False) > 1
                ]
                what = f"{len(found)} settings; add {', '.join(differ)}" if found else "no setting"
                raise ConfigError(
                    f"labels {labels!r} match {what} (one is needed; the settings are "
                    f"study.settings)"
                )
            return found[0]
        if (
            isinstance(i, bool)
            or not isinstance(i, int | np.integer)
            or not (0 <= i < self.n_settings)
        ):
            raise ConfigError(
                f"setting position must be an int in [0, {self.n_settings - 1}], was {i!r}"
            )
        return int(i)

    def liquidation_days(self, i: int) -> F64Array:
        """Return the times to liquidation (days) of the liquidated holds of setting ``i``."""
        hit = self.events[i] & ~self.rejected[i]
        out: F64Array = self.durations[i][hit].astype(np.float64) * self.bar_days
        return out

    def compare(self, a: int, b: int) -> dict[str, float]:
        """Compare settings ``a`` and ``b``: survival difference with its interval and log-rank.

        Returns ``survival_a, survival_b, difference`` (a − b), ``diff_ci_low, diff_ci_high``
        (moving-block bootstrap, same resamples for both) and ``logrank_p`` (lifelines; it
        assumes independent entries, so it overstates significance for overlapping holds).
        """
        table = self._table
        boot = self.bootstrap_survival
        diff = boot[a] - boot[b]
        diff = diff[np.isfinite(diff)]
        alpha = 1.0 - self.confidence
        sa, sb = float(table["survival"].iloc[a]), float(table["survival"].iloc[b])
        ok_a, ok_b = ~self.rejected[a], ~self.rejected[b]  # rejected entries never opened
        return {
            "survival_a": sa,
            "survival_b": sb,
            "difference": sa - sb,
            "diff_ci_low": float(np.quantile(diff, alpha / 2)) if diff.size else math.nan,
            "diff_ci_high": float(np.quantile(diff, 1 - alpha / 2)) if diff.size else math.nan,
            "logrank_p": logrank_p(
                self.durations[a][ok_a],
                self.events[a][ok_a],
                self.durations[b][ok_b],
                self.events[b][ok_b],
            ),
        }

    def logrank(self, by: str = "leverage") -> pd.DataFrame:
        """Return log-rank and bootstrap comparisons of neighbouring values of ``by``.

        Within each group of the other settings, the settings are sorted by ``by`` (no stop
        first) and each is compared with the next. One row per pair.
        """
        if by not in self.settings:
            from backtester.errors import did_you_mean

            raise ConfigError(
                f"logrank by must be a setting column, was {by!r}"
                f"{did_you_mean(by, self.settings.columns)}"
            )
        others = [c for c in self.settings.columns if c != by]
        rows: list[dict[str, Any]] = []
        keyed = self.settings.assign(setting_index=np.arange(self.n_settings))
        keyed["group_key"] = [
            tuple(_fmt_label(v) for v in r) for r in keyed[others].itertuples(index=False)
        ]
        for key, group in keyed.groupby("group_key", sort=False):
            order = sorted(
                group.itertuples(index=False),
                key=lambda r: -1.0 if _is_none(getattr(r, by)) else _num(getattr(r, by)),
            )
            for ra, rb in itertools.pairwise(order):
                result = self.compare(int(ra.setting_index), int(rb.setting_index))
                row = dict(zip(others, key, strict=True))
                row.update({f"{by}_a": getattr(ra, by), f"{by}_b": getattr(rb, by), **result})
                rows.append(row)
        frame = pd.DataFrame(rows)
        frame.attrs = {
            "difference": "survival_a - survival_b at the horizon",
            "diff_ci": "moving-block bootstrap percentile interval (same resamples for a and b)",
            "logrank_p": "lifelines logrank_test; assumes independent entries (anti-conservative)",
        }
        return frame

    def max_safe_leverage(self, target: float = 0.9) -> pd.DataFrame:
        """Return, per group of the other settings, the highest leverage that meets ``target``.

        A leverage *meets* the target when its survival's lower confidence bound (``ci_low``
        of ``table()``, the honest interval) is at least ``target``: with the study's
        confidence, survival to the horizon is no lower than that. One row per group of the
        settings other than leverage (side or legs, stop_loss, and every other setting the
        study has, such as margin_mode), in the order they first appear. Columns: those
        settings, ``leverage`` (NaN where no tested leverage qualifies), then ``survival``,
        ``ci_low``, ``ci_high`` and ``loss_mean`` of the setting that decided it: the chosen
        leverage, or where none qualifies the lowest leverage tested (how far it misses),
        and ``max_tested`` (the highest leverage tried; a leverage equal to it may be safe
        beyond it). ``df.attrs["target"]`` holds the target.

        Raises
        ------
        ConfigError
            If ``target`` is not a number strictly between 0 and 1.
        """
        if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
            raise ConfigError(
                f"target must be a survival share strictly between 0 and 1 (e.g. 0.9), "
                f"was {target!r}"
            )
        table = self._table
        others = [c for c in self.setting_columns if c != "leverage"]
        keys = [
            tuple(_fmt_label(v) for v in r) for r in self.settings[others].itertuples(index=False)
        ]
        rows: list[dict[str, Any]] = []
        for key in dict.fromkeys(keys):
            idx = [i for i, k in enumerate(keys) if k == key]
            lev = np.array([_num(self.settings["leverage"].iloc[i]) for i in idx])
            ok = np.array([float(table["ci_low"].iloc[i]) >= target for i in idx])
            pick = idx[int(np.argmax(np.where(ok, lev, -np.inf)))] if ok.any() else None
            decided = pick if pick is not None else idx[int(np.argmin(lev))]
            row = {c: self.settings[c].iloc[idx[0]] for c in others}
            row["leverage"] = lev[idx.index(pick)] if pick is not None else math.nan
            for c in ("survival", "ci_low", "ci_high", "loss_mean"):
                row[c] = float(table[c].iloc[decided])
            row["max_tested"] = float(lev.max())
            rows.append(row)
        frame = pd.DataFrame(
            rows,
            columns=[
                *others,
                "leverage",
                "survival",
                "ci_low",
                "ci_high",
                "loss_mean",
                "max_tested",
            ],
        )
        n_eff = self.n_effective
        frame.attrs = {
            "target": float(target),
            # the highest lower bound the data allows (no liquidation at all): a target above it
            # cannot be met at any leverage, however safe
            "n_effective": float(n_eff),
            "best_possible_low": clopper_pearson(n_eff, n_eff, alpha=1.0 - self.confidence)[0],
            "rule": (
                f"highest leverage whose {self.confidence * 100:g}% lower bound of survival to "
                f"{self.horizon_days:g} days is at least {target * 100:g}%"
            ),
        }
        return frame

    def stop_beyond_liquidation(self) -> BoolArray:
        """Return, per setting, whether the stop lies at or beyond the liquidation price.

        True where the stop's price move is at least the move from the entry to the
        liquidation price (``rules.liquidation_price``: the exchange's formula and the tier
        table at the data's end, isolated margin, the setting's leverage and position size):
        such a stop can never fire before the liquidation. False without a stop, for
        accounts, and where the exchange's formula is not known.
        """
        from backtester.errors import BacktesterError
        from backtester.rules import liquidation_price

        out = np.zeros(self.n_settings, dtype=bool)
        if self.is_account or "side" not in self.settings or "stop_loss" not in self.settings:
            return out
        m = self.market
        at = pd.Timestamp(int(m.ts_ns[-1]), tz="UTC")  # m.index[-1], without the whole index
        for k, r in self.settings.iterrows():
            stop = r["stop_loss"]
            if _is_none(stop):
                continue
            lev = float(r["leverage"])
            size = float(r.get("position_size", 1.0)) * self.initial_cash * lev / 100.0
            try:
                liq = liquidation_price(
                    m.exchange, str(r["side"]), 100.0, size, leverage=lev,
                    symbol=self.symbols[0], at=at,
                )  # fmt: skip
            except BacktesterError:  # an exchange or symbol the formula does not know
                return np.zeros(self.n_settings, dtype=bool)
            out[int(str(k))] = float(stop) >= abs(liq / 100.0 - 1.0)
        return out

    # ------------------------------------------------------------------ outputs

    def outcomes(self) -> pd.DataFrame:
        """Return one row per setting and entry: how each hold (or account) ended.

        Columns: the settings, ``setting`` (row of ``table()``), ``entry_time``, ``exit_time``
        (open of the bar of ``exit_idx``: the first liquidation when there was one, else the
        first exit; NaT when rejected), ``reason`` (``"liquidation"``, ``"stop_loss"``,
        ``"horizon"``, ``"end_of_data"``, ``"ruin"``, ``"none"`` = rejected), ``liquidated``,
        ``liquidated_leg`` (the symbol liquidated first; ``"account"`` when a cross account was
        liquidated as a whole; None), ``final_equity``, ``min_equity``, ``fees_paid``,
        ``funding_paid``, ``insurance_draw`` (quote currency, of the whole wallet), ``loss``
        (fraction of the starting wallet lost by the horizon) and ``rejected``.
        """
        n_s, n_e = self.n_settings, self.n_entries
        ts = self.market.ts_ns
        rows = np.repeat(np.arange(n_s), n_e)
        exit_idx = self.exit_idx.ravel()
        exit_ns = np.where(exit_idx >= 0, ts[np.clip(exit_idx, 0, None)], np.iinfo(np.int64).min)
        names = {int(r): r.name.lower() for r in ExitReason}
        leg_names: list[str | None] = []
        for s in range(n_s):
            symbols = [sym for sym, _ in self.legs[s]] if self.legs else [self.symbols[0]]
            for k in self.liquidated_leg[s]:
                leg_names.append(
                    None if k < 0 else ("account" if k >= len(symbols) else symbols[int(k)])
                )
        frame = self.settings.iloc[rows].reset_index(drop=True)
        frame["setting"] = rows
        frame["entry_time"] = pd.to_datetime(ts[np.tile(self.entry_idx, n_s)], utc=True)
        frame["exit_time"] = pd.to_datetime(pd.Series(exit_ns).where(exit_idx >= 0), utc=True)
        frame["reason"] = [names.get(int(r), str(r)) for r in self.reason.ravel()]
        frame["liquidated"] = (self.liquidated_leg >= 0).ravel()
        frame["liquidated_leg"] = leg_names
        for name in ("final_equity", "min_equity", "fees_paid", "funding_paid", "insurance_draw"):
            frame[name] = getattr(self, name).ravel()
        frame["loss"] = np.where(self.rejected, np.nan, self.loss).ravel()
        frame["rejected"] = self.rejected.ravel()
        frame.attrs = {"loss": LOSS_MEANING, "survival": self.table_metadata()["survival"]}
        return frame

    def trades(self) -> pd.DataFrame:
        """Return one row per setting, entry and leg: what each leg of each hold did.

        Columns: the settings, ``setting``, ``entry_time``, ``leg`` (index into the setting's
        legs), ``symbol``, ``weight``, ``side``, ``exit_time`` (the leg's exit, or the window's
        last bar when still open), ``exit_reason`` (``"liquidation"`` for a leg closed by a cross
        account's liquidation too), ``entry_price``, ``exit_price`` (a leg still open: its last
        mark close), ``size`` (base units), ``pnl`` (the leg's share of the wallet change, fees
        and funding included: the legs of one hold sum to ``final_equity - initial_cash``),
        ``fees``, ``funding``. Rejected entries have no rows. A one-market study has one leg
        per hold (leg 0, weight +1 or -1 by side); ``run_entries`` keeps no prices, so its
        ``entry_price``, ``exit_price`` and ``size`` are NaN and ``pnl`` is the wallet change.
        """
        from backtester.survival.records import leg_trades

        return leg_trades(self)

    def equity(self, i: int | None = None, /, **labels: Any) -> pd.DataFrame:
        """Return one setting's close equity per bar after each entry, and each leg's share.

        Pick the setting as for :meth:`curve`. Rows: bar ``j`` after the entry (0 = the entry
        bar's close) up to the horizon; columns: a ``(entry_time, leg)`` MultiIndex whose
        ``leg`` is ``"account"`` (the wallet's close equity, quote) or a leg's symbol (that
        leg's share of the wallet change so far: its booked PnL, fees and funding plus its
        unrealized PnL at the mark close; ``initial_cash`` plus the legs' shares is the
        account). A window cut by the end of the data ends in NaN; a rejected entry stays at
        ``initial_cash``. The windows are run again (the study keeps no paths) through the
        account engine, which gives a one-market study's holds exactly (a one-leg account is
        the single position). Strategy studies have no such paths.

        Raises
        ------
        ConfigError
            A bad pick (see :meth:`curve`), or a strategy study.
        """
        from backtester.survival.records import hold_equity

        return hold_equity(self, self._pick(i, labels))

    def _market_info(self) -> dict[str, Any]:
        from backtester.marketset import MarketSet

        m = self.market
        common = {
            "exchange": m.exchange,
            "timeframe": m.timeframe,
            # the first and last bar's open times, without building the whole index
            "start": str(pd.Timestamp(int(m.ts_ns[0]), tz="UTC")) if m.n_bars else None,
            "end": str(pd.Timestamp(int(m.ts_ns[-1]), tz="UTC")) if m.n_bars else None,
            "n_bars": m.n_bars,
            "mark_source": self.mark_source,
            "sha256": m.fingerprint(),
        }
        if not isinstance(m, MarketSet):
            return {"symbol": m.symbol, **common}
        return {
            "symbol": self.market_label,
            "symbols": list(m.symbols),
            **common,
            "markets": [{"symbol": x.symbol, "sha256": x.fingerprint()} for x in m.markets],
        }

    def run_info(self) -> dict[str, Any]:
        """Return the run's settings, package version and data sha256 (for ``run.json``)."""
        from backtester import __version__

        info: dict[str, Any] = {
            "kind": "survival_study",
            "package": "backtester",
            "version": __version__,
            "market": self._market_info(),
            "settings": {
                "grid": {c: _unique_json(self.settings[c]) for c in self.settings},
                **{k: _json_value(v) for k, v in self.run_settings.items()},
            },
            "n_settings": self.n_settings,
            "n_entries": self.n_entries,
            "horizon_bars": self.horizon_bars,
            "entry_every_bars": self.entry_every_bars,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "ci_method": self.table_metadata()["ci_method"],
            "rules": [dict(r) for r in self.rules],
        }
        if self.legs is not None:
            info["legs"] = [
                {"label": label, "weights": dict(legs)}
                for label, legs in {legs_label(x): x for x in self.legs}.items()
            ]
        return info

    def comparisons(self, *, step: Any = None) -> Comparisons:
        """Run the leverage-decision comparisons and the equity fan on this study's market and entries.

        Returns a ``Comparisons`` of frames and arrays (the leverage ladder to 125x, stop-loss,
        position size, isolated vs cross, mark vs last price, gaps past bankruptcy, funding);
        ``report()`` draws them. These are extra engine runs, often most of a report's time.
        """
        from backtester.survival.comparisons import compute

        return compute(self, step=step)

    def report(
        self,
        path: str = "reports/survival",
        *,
        comparisons: bool = True,
        target: float = 0.9,
        progress: bool = False,
        venues: pd.DataFrame | None = None,
        scenarios: pd.DataFrame | None = None,
    ) -> str:
        """Write the HTML report (tables, figures, CSV/parquet, ``run.json``) under ``path``.

        ``venues`` (``bt.compare_venues(...)``) adds a section on the same holds on other
        venues on their common crash days.

        With ``comparisons=True`` the comparisons (see ``comparisons()``) are run on
        the same market and entries and added (not for strategy studies, which are about one
        strategy's account). ``path`` must be a new or empty folder, or one a report wrote
        before (it holds a ``.backtester-report`` marker); it is checked before any work.
        The report opens with ``max_safe_leverage(target)``. ``progress=True`` shows a tqdm
        bar of the stages (each comparison, then drawing) on stderr. ``scenarios`` (from
        ``backtester.survival.paths.scenario_table``) adds the section of history next to
        synthetic paths. Returns the path of ``index.html``.

        Raises
        ------
        ConfigError
            If ``target`` is not strictly between 0 and 1; if ``path`` is a file, holds files no report wrote, is a sweep run directory, or
            cannot be written (the message names the path and the fix).
        """
        from backtester.reports.html import check_output_dir
        from backtester.survival.report import write_survival_report

        check_output_dir(path)
        from backtester.survival.comparisons import COMPARISON_STAGES

        self.max_safe_leverage(target)  # a bad target fails before the comparison runs
        run_them = comparisons and self.strategy_name is None
        bar = _StageBar(len(COMPARISON_STAGES) + 1 if run_them else 1, enabled=progress)
        try:
            computed = self.comparisons(step=bar.stage) if run_them else None
            bar.stage("drawing the figures")
            return str(
                write_survival_report(
                    self,
                    path,
                    comparisons=computed,
                    target=target,
                    stop_beyond=self.stop_beyond_liquidation(),
                    venues=venues,
                    scenarios=scenarios,
                )
            )
        finally:
            bar.close()


class _StageBar:
    # a tqdm bar of named stages on stderr; silent when disabled or tqdm is missing
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                return
            self.bar = tqdm(total=total, desc="report", unit="stage", leave=False)

    def stage(self, name: str) -> None:
        if self.bar is not None:
            if self.bar.n or self.bar.postfix:
                self.bar.update(1)
            self.bar.set_postfix_str(name)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


@functools.lru_cache(maxsize=2)
def _shared_boot(n: int, block_len: int, n_boot: int, seed: int) -> tuple[Any, Any]:
    # the bootstrap counts (and their int32 transpose) depend on these four numbers only, so
    # a report's studies on the same entries draw them once; read-only, shared
    from backtester.survival._stats_nb import boot_weights

    counts = block_bootstrap_counts(n, block_len, n_boot=n_boot, seed=seed)
    weights = boot_weights(counts)
    counts.setflags(write=False)
    weights.setflags(write=False)
    return counts, weights


def _loss_stats(loss: F64Array) -> dict[str, float]:
    if not loss.size:
        return {"loss_mean": math.nan, "loss_q95": math.nan}
    return {"loss_mean": float(np.mean(loss)), "loss_q95": float(np.quantile(loss, 0.95))}


def others_fixed(settings: pd.DataFrame, keep: tuple[str, ...], row: int = 0) -> BoolArray:
    """Return the rows of ``settings`` that share row ``row``'s values on every column not in
    ``keep`` (NaN matches NaN)."""
    mask = np.ones(len(settings), dtype=bool)
    for c in settings.columns:
        if c in keep:
            continue
        first = settings[c].iloc[row]
        col = settings[c]
        mask &= col.isna().to_numpy() if pd.isna(first) else (col == first).to_numpy()
    return mask


def curve_groups(settings: pd.DataFrame) -> dict[str, list[int]]:
    """Return setting indices by side, sorted by leverage, for per-leverage curves.

    Only settings without a stop are kept (else those with the first stop), and every other
    column is held at row 0's value. An account study (a ``legs`` column) is grouped by leg set
    and margin mode (``"BTC +0.5 / ETH +0.5, cross"``); without ``side`` or ``legs`` the one
    group is ``"account"``.
    """
    s = settings
    by = ["side"] if "side" in s else [c for c in ("legs", "margin_mode") if "legs" in s and c in s]
    mask = others_fixed(s, (*by, "leverage", "stop_loss"))
    if "stop_loss" in s:
        no_stop = s["stop_loss"].isna().to_numpy()
        if (mask & no_stop).any():
            mask &= no_stop
        else:
            mask &= others_fixed(s, (*by, "leverage"))
    keys = list(dict.fromkeys(tuple(r) for r in s[by].itertuples(index=False))) if by else [()]
    groups: dict[str, list[int]] = {}
    for key in keys:
        inside = np.ones(len(s), dtype=bool)
        for c, v in zip(by, key, strict=True):
            inside &= (s[c] == v).to_numpy()
        idx = [int(i) for i in np.flatnonzero(mask & inside)]
        idx.sort(key=lambda i: float(s["leverage"].iloc[i]))
        groups[", ".join(str(v) for v in key) if key else "account"] = idx
    return groups


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _unique_json(values: pd.Series) -> list[Any]:
    out: list[Any] = []
    for v in values:
        j = _json_value(v)
        if j not in out:
            out.append(j)
    return out


def _json_value(value: Any) -> Any:
    if _is_none(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    return value
