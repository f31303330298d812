"""survival_study: validate the settings, choose rolling entries, run the engine, wrap outcomes.

Layer: survival (imports engine.run, params, config and market lazily; returns SurvivalStudy).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from backtester._typing import I64Array
from backtester.config import SETTINGS, check_setting
from backtester.errors import ConfigError, check_one_of
from backtester.survival.study import DEFAULT_INITIAL_CASH, SurvivalStudy, _is_none

if TYPE_CHECKING:  # pragma: no cover
    from backtester.market import Market

__all__ = ["entry_indices", "parse_period_bars", "survival_study"]

log = logging.getLogger(__name__)


def _period_text(ns: int) -> str:
    # a period as a user writes it: 1h, 30D, 15min
    for unit, size in (("D", 86_400 * 10**9), ("h", 3_600 * 10**9), ("min", 60 * 10**9)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns / 10**9:g}s"


def parse_period_bars(value: str | pd.Timedelta, name: str, timeframe_ns: int) -> int:
    """Return a period such as ``"30D"`` as a whole number of bars of ``timeframe_ns``."""
    bar = _period_text(timeframe_ns)
    example = f"'30D' or '{720 * 3_600 * 10**9 // timeframe_ns}h'" if bar == "1h" else "'30D'"
    if isinstance(value, bool) or not isinstance(value, str | pd.Timedelta):
        raise ConfigError(f"{name} must be a duration such as {example} (a string), was {value!r}")
    try:
        ns = int(pd.Timedelta(value).value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{name} must be a duration such as {example}, '12h' or '1W', was {value!r}"
        ) from exc
    if ns <= 0 or ns % timeframe_ns:
        raise ConfigError(
            f"{name} must be a positive whole number of {bar} bars, was {value!r}; use a "
            f"multiple of {bar} such as {example}"
        )
    return ns // timeframe_ns


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str) or value is None or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def entry_indices(market: Market, every_bars: int) -> I64Array:
    """Return rolling entry bars: every ``every_bars`` bars from the first period-aligned bar.

    A bar is aligned when its open time is a whole multiple of the period since the Unix epoch
    (``"1D"`` → 00:00 UTC); without such a bar the first bar is used.
    """
    period_ns = every_bars * market.timeframe_ns
    aligned = np.flatnonzero(market.ts_ns % period_ns == 0)
    first = int(aligned[0]) if aligned.size else 0
    return np.arange(first, market.n_bars, every_bars, dtype=np.int64)


def _check_values(name: str, values: Sequence[Any]) -> tuple[Any, ...]:
    if len(values) == 0:
        raise ConfigError(f"{name} must list at least one value, was empty")
    checked = tuple(_study_value(name, v) for v in values)
    seen: list[Any] = []
    for v in checked:
        if v in seen:  # the table would show the same setting twice
            raise ConfigError(f"{name} lists {v!r} twice, was {tuple(values)!r}; list each once")
        seen.append(v)
    return checked


def _study_value(name: str, value: Any) -> Any:
    # the settings spec checks the value, with the study's stricter bounds (leverage >= 1);
    # "none" is how a TOML file or the CLI writes None
    if isinstance(value, str) and value.lower() == "none":
        value = None
    return check_setting(name, value, study=True, where=name)


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name} must be an int >= {low}, was {value!r}")
    return int(value)


def survival_study(
    market: Market,
    *,
    side: Literal["long", "short", "both"] = "long",
    leverage: float | Sequence[float] = SETTINGS["leverage"].study_default,
    stop_loss: float | Sequence[float | None] | None = (None,),
    position_size: float | Sequence[float] = (1.0,),
    margin_mode: str | Sequence[str] = ("isolated",),
    horizon: str | pd.Timedelta = "30D",
    entry_every: str | pd.Timedelta = "1D",
    strategy: Any = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    **engine_settings: Any,
) -> SurvivalStudy:
    """Open a position at every entry time for each setting and follow it up to the horizon.

    Parameters
    ----------
    market : Market
        From ``bt.load_market``. Liquidation is judged on its mark prices.
    side : "long", "short" or "both"
    leverage, stop_loss, position_size, margin_mode : value or sequence of values
        The grid is their product (with ``side``). ``stop_loss`` is a fraction of the entry
        price (0.05 = 5 %), None for no stop. ``position_size`` is the fraction of equity.
    horizon : str
        How long each hold is followed (``"30D"``); a whole number of bars.
    entry_every : str
        Spacing of the rolling entries (``"1D"``: every bar opening at 00:00 UTC).
    strategy : module, optional
        A strategy (``PARAMS`` and ``signals(market, grid)``): entries and exits come from its
        signals, ``side`` is ignored, and survival is the account's time from each rolling
        start to its next liquidation or ruin (see ``backtester.survival.strategy``).
    confidence, n_boot, seed : float, int, int
        Interval level, bootstrap resamples and the bootstrap seed.
    **engine_settings
        Any ``RunConfig`` field (``initial_cash`` defaults to 100 USDT here so that 125x
        stays inside the first maintenance tier) (``taker_fee``, ``funding``, ``maint_margin_rate``,
        ``stop_trigger``, ``intrabar``, ...); a tuple or list sweeps it.

    Returns
    -------
    SurvivalStudy
        ``.table()`` for estimates, ``.report(path)`` for the HTML report.

    Raises
    ------
    ConfigError
        Bad values, unknown engine settings, a horizon or spacing that is not whole bars.

    Examples
    --------
    >>> import backtester as bt
    >>> m = bt.load_market("BTC/USDT:USDT")
    >>> study = bt.survival_study(m, leverage=(2, 100))
    >>> study.table()[["leverage", "survival"]]  # doctest: +SKIP
    """
    from backtester.market import Market

    if not isinstance(market, Market):
        raise ConfigError(
            f"market must be a backtester Market, was {type(market).__name__}; "
            "build one with bt.load_market(...) or bt.Market.from_frames(...)"
        )
    check_one_of(side, "side", ("long", "short", "both"))
    sides = ("long", "short") if side == "both" else (side,)
    levs = _check_values("leverage", _as_tuple(leverage))
    stops = _check_values("stop_loss", _as_tuple(stop_loss))
    sizes = _check_values("position_size", _as_tuple(position_size))
    modes = _check_values("margin_mode", _as_tuple(margin_mode))
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ConfigError(f"confidence must be a number in (0, 1), was {confidence!r}; e.g. 0.95")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), was {confidence!r}; e.g. 0.95")
    n_boot = _check_int(n_boot, "n_boot", 1)
    seed = _check_int(seed, "seed", 0)
    horizon_bars = parse_period_bars(horizon, "horizon", market.timeframe_ns)
    every_bars = parse_period_bars(entry_every, "entry_every", market.timeframe_ns)
    span = pd.Timedelta(market.n_bars * market.timeframe_ns, unit="ns")
    periods = (("horizon", horizon, horizon_bars), ("entry_every", entry_every, every_bars))
    for name, value, bars in periods:
        if bars > market.n_bars:
            raise ConfigError(
                f"{name} {value!r} is longer than the data ({span}, {market.n_bars:,} bars of "
                f"{market.timeframe}); load a longer range or shorten {name}"
            )
    entries = entry_indices(market, every_bars)
    if entries.size == 0:
        raise ConfigError(
            f"no entry times: the market has {market.n_bars} bars and entry_every={entry_every!r}; "
            "load a longer range or enter more often"
        )
    for name, value in list(engine_settings.items()):  # unknown names get a suggestion
        if isinstance(value, tuple | list):
            engine_settings[name] = _check_values(name, value)
        else:
            engine_settings[name] = _study_value(name, value)

    # a small account keeps every leverage up to 125x inside the first maintenance tier
    engine_settings.setdefault("initial_cash", DEFAULT_INITIAL_CASH)
    swept = {k: tuple(v) for k, v in engine_settings.items() if isinstance(v, tuple | list)}
    fixed = {k: v for k, v in engine_settings.items() if k not in swept}
    axes: dict[str, tuple[Any, ...]] = {
        "side": sides,
        "leverage": levs,
        "stop_loss": stops,
        "position_size": sizes,
        "margin_mode": modes,
        **swept,
    }
    if strategy is not None:
        from backtester.survival.strategy import strategy_outcomes

        settings, arrays, elapsed, initial_cash = strategy_outcomes(
            market, strategy, axes, fixed, entries, horizon_bars
        )
        strategy_name = str(getattr(strategy, "__name__", type(strategy).__name__))
    else:
        outcomes, settings, elapsed, initial_cash = _run_engine(
            market, axes, fixed, entries, horizon_bars
        )
        arrays = {
            name: getattr(outcomes, name, None)
            for name in (
                "exit_idx",
                "reason",
                "final_equity",
                "min_equity",
                "insurance_draw",
                "funding_paid",
                "fees_paid",
                "ambiguous_bars",
                "rejected",
                "rules",
            )
        }
        entries = np.asarray(outcomes.entry_idx, dtype=np.int64)
        strategy_name = None
    log.info(
        "survival study %s %s: %d settings x %d entries, horizon %d bars, %.2f s",
        market.symbol,
        market.timeframe,
        len(settings),
        entries.size,
        horizon_bars,
        elapsed,
    )
    return SurvivalStudy(
        market=market,
        settings=settings,
        entry_idx=entries,
        horizon_bars=horizon_bars,
        entry_every_bars=every_bars,
        initial_cash=initial_cash,
        run_settings={
            "horizon": str(horizon),
            "entry_every": str(entry_every),
            **({"strategy": strategy_name} if strategy_name else {}),
            **fixed,
        },
        confidence=confidence,
        n_boot=n_boot,
        seed=seed,
        elapsed_s=elapsed,
        strategy_name=strategy_name,
        **arrays,
    )


def _run_engine(
    market: Market,
    axes: dict[str, tuple[Any, ...]],
    fixed: dict[str, Any],
    entries: I64Array,
    horizon_bars: int,
) -> tuple[Any, pd.DataFrame, float, float]:
    from backtester.config import RunConfig
    from backtester.engine.run import run_entries
    from backtester.params import ParamGrid

    config = RunConfig(**fixed)
    combos = list(itertools.product(*axes.values()))
    settings = pd.DataFrame(combos, columns=list(axes))
    grid_lists = {name: [_grid_value(name, v) for v in settings[name]] for name in settings.columns}
    grid = ParamGrid.zip(**grid_lists)
    t0 = time.perf_counter()
    outcomes = run_entries(
        market, grid, entry_idx=entries, horizon_bars=horizon_bars, config=config
    )
    elapsed = time.perf_counter() - t0
    settings["stop_loss"] = [None if _is_none(v) else float(v) for v in settings["stop_loss"]]
    initial_cash = float(getattr(config, "initial_cash", 1.0))
    return outcomes, settings, elapsed, initial_cash


def _grid_value(name: str, value: Any) -> Any:
    if _is_none(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
