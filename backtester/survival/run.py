"""survival_study: validate the settings, choose rolling entries, run the engine, wrap outcomes.

Layer: survival (imports engine.run, params, config and market lazily; returns SurvivalStudy).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from backtester._typing import I64Array
from backtester.config import SETTINGS, check_setting
from backtester.data.schema import parse_period_bars
from backtester.engine.enums import ExitReason
from backtester.errors import ConfigError, check_one_of
from backtester.survival.study import SurvivalStudy, _is_none, default_initial_cash, legs_label

if TYPE_CHECKING:  # pragma: no cover
    from backtester.market import Market
    from backtester.marketset import MarketSet

#: one account's legs as the API takes them: ``{symbol: signed weight}``
Legs = Mapping[str, float]

__all__ = ["entry_indices", "parse_period_bars", "survival_study"]

log = logging.getLogger(__name__)


def check_periods(
    market: Market | MarketSet,
    horizon: str | pd.Timedelta,
    entry_every: str | pd.Timedelta,
    *,
    names: tuple[str, str] = ("horizon", "entry_every"),
) -> tuple[int, int]:
    """Return ``(horizon, entry_every)`` in bars of ``market``, each no longer than its data.

    ``names`` name the two in messages (the CLI passes ``--horizon``, ``--entry-every``).

    Raises
    ------
    ConfigError
        A period that is not a whole number of bars, or longer than the market's data.
    """
    bars = [
        parse_period_bars(v, n, market.timeframe_ns)
        for v, n in zip((horizon, entry_every), names, strict=True)
    ]
    span = pd.Timedelta(market.n_bars * market.timeframe_ns, unit="ns")
    for name, value, n in zip(names, (horizon, entry_every), bars, strict=True):
        if n > market.n_bars:
            raise ConfigError(
                f"{name} {value!r} is longer than the data ({span}, {market.n_bars:,} bars of "
                f"{market.timeframe}); load a longer range or shorten {name}"
            )
    return bars[0], bars[1]


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str) or value is None or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def entry_indices(market: Market | MarketSet, every_bars: int) -> I64Array:
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
    market: Market | MarketSet | Sequence[Market] | Sequence[MarketSet],
    *,
    legs: Legs | Sequence[Legs] | None = None,
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
    checkpoints: Sequence[int] | None = None,
    reuse: Sequence[SurvivalStudy] = (),
    **engine_settings: Any,
) -> SurvivalStudy:
    """Open a position at every entry time for each setting and follow it up to the horizon.

    Parameters
    ----------
    market : Market, MarketSet, or a list of them
        From ``bt.load_market`` (or ``bt.load_markets`` with ``legs``). Liquidation is judged
        on its mark prices. A list of paths on one clock (``bt.bootstrap_paths``) is studied
        path by path and pooled into one ``PathsStudy``: the same table, with intervals from a
        bootstrap over whole paths (independent) that keeps the overlap inside each path.
    legs : dict or list of dicts, optional
        An account study: ``{symbol: weight}`` (negative = short, ``Σ|weight| <= 1``), every
        rolling entry opening the whole account (``bt.run_account_entries``). A list of dicts
        studies several leg sets side by side (long/long and long/short); the settings gain a
        ``legs`` column (``"BTC +0.5 / ETH -0.5"``) in place of ``side``. Survival is the time
        to the first liquidation of any leg or of the cross account.
    side : "long", "short" or "both"
        Plain holds only: with ``legs`` each leg's side is the sign of its weight, and any
        ``side`` but the default is refused.
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
    checkpoints : sequence of int, optional
        Plain holds only: bar counts after entry (increasing, each >= 1) at which the engine
        records every hold's equity, in ``SurvivalStudy.checkpoint_equity`` (what a study with
        that horizon reports as ``final_equity``; the report's equity fan).
    reuse : sequence of SurvivalStudy, optional
        Plain holds only: studies whose outcomes may stand in for settings this one would
        run: a setting that one of them holds on the same market object, horizon, entries
        and fixed engine settings is taken from it (the first that has it) and only the
        others are run. The engine's columns never share state, so the outcomes are the same
        as running them (the report's comparisons share the study's columns this way).
    **engine_settings
        Any ``RunConfig`` field (``initial_cash`` defaults to 100 USDT here so that 125x
        stays inside the first maintenance tier; on a coin-margined market, 100 USD in the coin
        at the first bar's open) (``taker_fee``, ``funding``, ``maint_margin_rate``,
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
    >>> study.table()["survival"]  # indexed by side, leverage, stop_loss, ...  # doctest: +SKIP
    >>> ms = bt.load_markets(["BTC/USDT:USDT", "ETH/USDT:USDT"])
    >>> hedge = bt.survival_study(ms, legs=[{"BTC/USDT:USDT": 0.5, "ETH/USDT:USDT": 0.5},
    ...                                     {"BTC/USDT:USDT": 0.5, "ETH/USDT:USDT": -0.5}],
    ...                           leverage=(5, 20), margin_mode=("isolated", "cross"))
    >>> hedge.table()[["survival", "loss_mean"]]  # doctest: +SKIP
    """
    from backtester.market import Market
    from backtester.marketset import MarketSet

    if isinstance(market, list | tuple):  # synthetic paths: pooled, one path at a time
        from backtester.survival.paths import paths_study

        return paths_study(
            [market],
            recipe=getattr(market, "recipe", None),
            legs=legs,
            side=side,
            leverage=leverage,
            stop_loss=stop_loss,
            position_size=position_size,
            margin_mode=margin_mode,
            horizon=horizon,
            entry_every=entry_every,
            strategy=strategy,
            confidence=confidence,
            n_boot=n_boot,
            seed=seed,
            **engine_settings,
        )
    if not isinstance(market, Market | MarketSet):
        raise ConfigError(
            f"market must be a backtester Market or MarketSet, was {type(market).__name__}; "
            "build one with bt.load_market(...), bt.Market.from_frames(...) or bt.load_markets(...)"
        )
    check_one_of(side, "side", ("long", "short", "both"))
    leg_sets = None
    if legs is not None or isinstance(market, MarketSet):
        if isinstance(market, Market):  # one market: an account of legs on that symbol
            market = MarketSet.from_markets([market])
        leg_sets = _check_leg_sets(market, legs)
        if side != "long":
            raise ConfigError(
                f"side has no meaning for an account (each leg's side is the sign of its "
                f"weight), was {side!r}; drop side= and give a short leg a negative weight"
            )
        if strategy is not None:
            raise ConfigError(
                "strategy= with legs= is not modelled yet (a strategy study follows one "
                "market's account); drop one of them"
            )
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
    horizon_bars, every_bars = check_periods(market, horizon, entry_every)
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
    engine_settings.setdefault("initial_cash", default_initial_cash(market))
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
    if isinstance(reuse, SurvivalStudy) or not all(isinstance(r, SurvivalStudy) for r in reuse):
        raise ConfigError(
            f"reuse must be a sequence of SurvivalStudy (e.g. reuse=(study,)), was {reuse!r}"
        )
    if checkpoints is not None and (leg_sets is not None or strategy is not None):
        raise ConfigError(
            "checkpoints= is for plain holds; an account or strategy study records no "
            "checkpoints, was given with " + ("legs=" if leg_sets is not None else "strategy=")
        )
    if leg_sets is not None:
        del axes["side"]
        arrays, settings, elapsed, initial_cash = _run_accounts(
            market,  # type: ignore[arg-type]
            leg_sets,
            axes,
            fixed,
            entries,
            horizon_bars,
        )
        strategy_name = None
    elif strategy is not None:
        from backtester.survival.strategy import strategy_outcomes

        settings, arrays, elapsed, initial_cash = strategy_outcomes(
            cast(Market, market), strategy, axes, fixed, entries, horizon_bars
        )
        strategy_name = str(getattr(strategy, "__name__", type(strategy).__name__))
    else:
        donors = [] if checkpoints is not None else [
            r for r in reuse if _can_reuse(r, market, horizon_bars, every_bars, entries, fixed)
        ]  # fmt: skip
        outcomes, settings, elapsed, initial_cash = _run_engine(
            cast(Market, market), axes, fixed, entries, horizon_bars, checkpoints, donors
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
        if checkpoints is not None:
            arrays["checkpoint_equity"] = outcomes.checkpoint_equity
        entries = np.asarray(outcomes.entry_idx, dtype=np.int64)
        strategy_name = None
    log.info(
        "survival study %s %s: %d settings x %d entries, horizon %d bars, %.2f s",
        " + ".join(market.symbols) if isinstance(market, MarketSet) else market.symbol,
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
    checkpoints: Sequence[int] | None = None,
    donors: Sequence[SurvivalStudy] = (),
) -> tuple[Any, pd.DataFrame, float, float]:
    from backtester.config import RunConfig
    from backtester.engine.run import run_entries
    from backtester.params import ParamGrid

    config = RunConfig(**fixed)
    combos = list(itertools.product(*axes.values()))
    settings = pd.DataFrame(combos, columns=list(axes))
    # settings the donors already hold: (donor, its row) per row of ours, None = to run
    found: list[tuple[SurvivalStudy, int] | None] = [None] * len(settings)
    for donor in donors:
        if list(donor.settings.columns) != list(settings.columns):
            continue
        rows = {_row_key(r): k for k, r in enumerate(donor.settings.itertuples(index=False))}
        for k, r in enumerate(settings.itertuples(index=False)):
            if found[k] is None and _row_key(r) in rows:
                found[k] = (donor, rows[_row_key(r)])
    todo = [k for k in range(len(settings)) if found[k] is None]
    part = settings.iloc[todo]
    t0 = time.perf_counter()
    outcomes = None
    if todo:
        grid = ParamGrid.zip(**{n: [_grid_value(n, v) for v in part[n]] for n in part.columns})
        outcomes = run_entries(
            market,
            grid,
            entry_idx=entries,
            horizon_bars=horizon_bars,
            config=config,
            checkpoints=checkpoints,
        )
    elapsed = time.perf_counter() - t0
    if len(todo) < len(settings):
        outcomes = _merge_outcomes(outcomes, todo, found, entries, horizon_bars, market)
    settings["stop_loss"] = [None if _is_none(v) else float(v) for v in settings["stop_loss"]]
    initial_cash = float(getattr(config, "initial_cash", 1.0))
    return outcomes, settings, elapsed, initial_cash


def _row_key(row: Any) -> tuple[Any, ...]:
    # one hashable key per setting row: None and NaN both mean "none", numbers as floats
    out: list[Any] = []
    for v in row:
        if _is_none(v):
            out.append(None)
        elif isinstance(v, bool | np.bool_):
            out.append(bool(v))
        elif isinstance(v, int | float | np.integer | np.floating):
            out.append(float(v))
        else:
            out.append(v)
    return tuple(out)


def _can_reuse(
    donor: SurvivalStudy,
    market: Any,
    horizon_bars: int,
    every_bars: int,
    entries: I64Array,
    fixed: dict[str, Any],
) -> bool:
    # a donor's columns equal ours when it ran the same market, window and fixed settings
    donor_fixed = {
        k: v for k, v in donor.run_settings.items() if k not in ("horizon", "entry_every")
    }
    return (
        donor.market is market
        and donor.strategy_name is None
        and donor.legs is None
        and donor.horizon_bars == horizon_bars
        and donor.entry_every_bars == every_bars
        and np.array_equal(donor.entry_idx, entries)
        and donor_fixed == fixed
    )


def _merge_outcomes(
    ran: Any,
    todo: list[int],
    found: list[tuple[SurvivalStudy, int] | None],
    entries: I64Array,
    horizon_bars: int,
    market: Market,
) -> Any:
    # the outcomes of every row: the run's for the rows in `todo`, the donors' for the others
    from backtester.results import EntryOutcomes

    n = len(found)
    pos = {k: j for j, k in enumerate(todo)}
    names = (
        "exit_idx", "reason", "final_equity", "min_equity", "insurance_draw", "funding_paid",
        "fees_paid", "rejected", "ambiguous_bars",
    )  # fmt: skip
    merged: dict[str, Any] = {}
    for name in names:
        parts = []
        for k in range(n):
            hit = found[k]
            parts.append(
                getattr(ran, name)[pos[k]] if hit is None else getattr(hit[0], name)[hit[1]]
            )
        merged[name] = np.stack(parts)
    rules: dict[tuple[str, ...], dict[str, str]] = {}
    sources = [ran.rules if ran is not None else ()]
    sources += [hit[0].rules for hit in found if hit is not None]
    for group in sources:
        for r in group:
            rules.setdefault(tuple(r.values()), dict(r))
    return EntryOutcomes(
        labels=pd.MultiIndex.from_arrays([np.arange(n)], names=["row"]),
        entry_idx=entries,
        horizon_bars=int(horizon_bars),
        ts_ns=market.ts_ns,
        rules=tuple(rules.values()),
        **merged,
    )


def _check_leg_sets(
    market_set: MarketSet, legs: Legs | Sequence[Legs] | None
) -> tuple[tuple[tuple[str, float], ...], ...]:
    # one or several leg sets, each checked by the account engine's own rule (Σ|w| <= 1, ...)
    from backtester.engine.accounts_run import _check_legs

    if legs is None:
        syms = list(market_set.symbols)
        example = {s: round(1 / len(syms), 4) for s in syms}
        raise ConfigError(
            f"legs is required when market is a MarketSet, was None; e.g. legs={example}"
        )
    sets = [legs] if isinstance(legs, Mapping) else legs
    if isinstance(sets, str) or not isinstance(sets, Sequence) or not sets:
        raise ConfigError(
            f"legs must be a dict {{symbol: weight}} or a list of such dicts, was {legs!r}"
        )
    out: list[tuple[tuple[str, float], ...]] = []
    for one in sets:
        checked = _check_legs(market_set, dict(one) if isinstance(one, Mapping) else one)
        if legs_label(checked) in (legs_label(x) for x in out):
            raise ConfigError(f"legs lists {legs_label(checked)!r} twice; list each leg set once")
        out.append(checked)
    return tuple(out)


def _run_accounts(
    market_set: MarketSet,
    leg_sets: tuple[tuple[tuple[str, float], ...], ...],
    axes: dict[str, tuple[Any, ...]],
    fixed: dict[str, Any],
    entries: I64Array,
    horizon_bars: int,
) -> tuple[dict[str, Any], pd.DataFrame, float, float]:
    # one run_account_entries call per leg set; rows are leg set (outer) x the other axes
    from backtester.config import RunConfig
    from backtester.engine.accounts_run import run_account_entries
    from backtester.params import ParamGrid

    config = RunConfig(**fixed)
    inner = pd.DataFrame(list(itertools.product(*axes.values())), columns=list(axes))
    grid = ParamGrid.zip(
        **{name: [_grid_value(name, v) for v in inner[name]] for name in inner.columns}
    )
    t0 = time.perf_counter()
    parts = [
        run_account_entries(
            market_set,
            grid,
            legs=dict(one),
            entry_idx=entries,
            horizon_bars=horizon_bars,
            config=config,
        )
        for one in leg_sets
    ]
    elapsed = time.perf_counter() - t0
    frames = [inner.assign(legs=legs_label(one)) for one in leg_sets]
    settings = pd.concat(frames, ignore_index=True)
    settings = settings[["legs", *inner.columns]]
    settings["stop_loss"] = [None if _is_none(v) else float(v) for v in settings["stop_loss"]]

    def stack(name: str) -> Any:
        return np.concatenate([np.asarray(getattr(p, name)) for p in parts], axis=0)

    liquidation_idx = stack("liquidation_idx")
    liquidated = liquidation_idx >= 0
    # the study's event is the first liquidation of a leg or of the cross account
    rules: dict[tuple[str, ...], dict[str, str]] = {}
    for p in parts:
        for r in p.rules:
            rules.setdefault(tuple(r.values()), dict(r))
    arrays: dict[str, Any] = {
        "exit_idx": np.where(liquidated, liquidation_idx, stack("exit_idx")),
        "reason": np.where(liquidated, int(ExitReason.LIQUIDATION), stack("reason")),
        "final_equity": stack("final_equity"),
        "min_equity": stack("min_equity"),
        "insurance_draw": stack("insurance_draw"),
        "funding_paid": stack("funding_paid"),
        "fees_paid": stack("fees_paid"),
        "ambiguous_bars": stack("ambiguous_bars"),
        "rejected": stack("rejected"),
        "rules": tuple(rules.values()),
        "legs": [one for one in leg_sets for _ in range(len(inner))],
        "liquidated_leg": stack("liquidated_leg"),
        "leg_outcomes": {name: _stack_legs(parts, name) for name in LEG_FIELDS},
    }
    return arrays, settings, elapsed, float(config.initial_cash)


#: the per-leg outcomes of run_account_entries a study keeps (``SurvivalStudy.trades()``)
LEG_FIELDS = (
    "leg_exit_idx",
    "leg_reason",
    "leg_entry_price",
    "leg_exit_price",
    "leg_size",
    "leg_pnl",
    "leg_fees",
    "leg_funding",
)


def _stack_legs(parts: Sequence[Any], name: str) -> Any:
    # (settings, entries, K) arrays of leg sets of different sizes, padded to the largest K
    # (-1 for bars and codes, NaN for money and prices)
    arrs = [np.asarray(getattr(p, name)) for p in parts]
    width = max(a.shape[2] for a in arrs)
    fill = -1 if arrs[0].dtype.kind == "i" else np.nan
    out = []
    for a in arrs:
        pad = np.full((*a.shape[:2], width), fill, dtype=a.dtype)
        pad[..., : a.shape[2]] = a
        out.append(pad)
    return np.concatenate(out, axis=0)


def _grid_value(name: str, value: Any) -> Any:
    if _is_none(value):
        return None
    return value.item() if isinstance(value, np.generic) else value
