"""Python side of the account engine: validate, encode, call the kernel (layer: engine.accounts_run).

:func:`run_account_entries` opens an account of several legs (one perpetual per symbol of a
``MarketSet``, signed weights) at each entry bar and follows it for a fixed horizon, as
:func:`~backtester.engine.run.run_entries` does for one position. The rules are those of
``backtester.engine.accounts`` (docs/reference/exchange-rules.md §7.4, §7.6).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.config import RunConfig
from backtester.engine.enums import ExitReason
from backtester.errors import BacktesterWarning, ConfigError, ShapeError, did_you_mean
from backtester.params import ParamGrid

if TYPE_CHECKING:
    from backtester.engine.run import _MarketInputs, _RulesInputs
    from backtester.market import Market
    from backtester.marketset import MarketSet

__all__ = ["AccountOutcomes", "check_leg_weights", "run_account_entries"]

#: the intrabar policies the account engine models
_INTRABAR = ("worst", "detail")


def _no_legs_i() -> I64Array:
    return np.zeros((0, 0, 0), dtype=np.int64)


def _no_legs_f() -> F64Array:
    return np.zeros((0, 0, 0), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class AccountOutcomes:
    """Outcomes of :func:`run_account_entries`, arrays ``(n_settings, n_entries)``.

    ``exit_idx``/``reason``: the first leg to close (bar, ``ExitReason`` code), or the window's
    last bar with ``HORIZON``/``END_OF_DATA`` when no leg closed (-1 / ``NONE`` when rejected).
    ``liquidation_idx``: the first liquidation's bar (-1 none); ``liquidated_leg``: which leg
    (index into ``legs``), ``len(legs)`` for a cross account's liquidation, -1 none. Money in
    quote currency; ``loss`` = ``max(0, 1 - final_equity / initial_cash)``, the fraction of the
    starting wallet lost by the horizon. ``ambiguous_bars (n_settings,)`` summed over entries.

    Per leg, arrays ``(n_settings, n_entries, K)`` (leg ``k`` is ``legs[k]``): ``leg_exit_idx``
    and ``leg_reason`` (the leg's exit bar and ``ExitReason``; ``HORIZON`` / ``END_OF_DATA`` at
    the window's last bar when still open; -1 / ``NONE`` when rejected; a cross liquidation
    closes every open leg with ``LIQUIDATION``), ``leg_entry_price``, ``leg_exit_price`` (for a
    leg still open: its last mark close), ``leg_size`` (base units), and the leg's share of the
    wallet change: ``leg_pnl`` (its entry fee, its funding and its exit's realized change; when
    still open, its unrealized PnL at the last mark close), ``leg_fees`` and ``leg_funding``.
    ``leg_pnl.sum(axis=2) == final_equity - initial_cash``. A cross liquidation is shared out as
    each leg's PnL at its fill less its part of the clearance fee, and what the cap takes or
    gives beyond that pro rata to the legs' maintenance margins (``engine.accounts``).
    """

    labels: pd.MultiIndex
    legs: tuple[tuple[str, float], ...]
    entry_idx: I64Array
    horizon_bars: int
    exit_idx: I64Array
    reason: I64Array
    liquidation_idx: I64Array
    liquidated_leg: I64Array
    final_equity: F64Array
    min_equity: F64Array
    insurance_draw: F64Array
    funding_paid: F64Array
    fees_paid: F64Array
    rejected: BoolArray
    loss: F64Array
    ambiguous_bars: I64Array
    ts_ns: I64Array
    #: the tier tables used: ``{"symbol", "exchange", "table_id", "note"}`` each
    rules: tuple[dict[str, str], ...] = ()
    leg_exit_idx: I64Array = field(default_factory=_no_legs_i)
    leg_reason: I64Array = field(default_factory=_no_legs_i)
    leg_entry_price: F64Array = field(default_factory=_no_legs_f)
    leg_exit_price: F64Array = field(default_factory=_no_legs_f)
    leg_size: F64Array = field(default_factory=_no_legs_f)
    leg_pnl: F64Array = field(default_factory=_no_legs_f)
    leg_fees: F64Array = field(default_factory=_no_legs_f)
    leg_funding: F64Array = field(default_factory=_no_legs_f)
    #: with ``equity=True``: close equity ``(n_settings, n_entries, horizon_bars)`` of each
    #: window and each leg's share ``(..., K)`` (``initial_cash + Σ_k leg_equity = equity``)
    equity: F64Array = field(default_factory=_no_legs_f)
    leg_equity: F64Array = field(default_factory=_no_legs_f)

    @property
    def n_settings(self) -> int:
        """Number of settings (rows)."""
        return int(self.exit_idx.shape[0])

    @property
    def n_entries(self) -> int:
        """Number of entries (columns)."""
        return int(self.exit_idx.shape[1])

    @property
    def liquidated(self) -> BoolArray:
        """True where a leg or the account was liquidated inside the window."""
        return np.asarray(self.liquidated_leg >= 0)


def check_leg_weights(
    legs: Any, symbols: tuple[str, ...], *, where: str = "legs"
) -> tuple[tuple[str, float], ...]:
    """Return ``legs`` (``{symbol: weight}``) as ``((symbol, weight), ...)``, checked.

    The one rule of an account's legs, used by the engine, ``survival_study`` and the sweep
    configs (``where`` names the caller's key in the message): 1 to ``MAX_LEGS`` symbols of
    ``symbols``, each weight a non-zero finite number (negative = short), ``Σ|weight| <= 1``.
    """
    from backtester.engine.accounts_layout import MAX_LEGS

    if not isinstance(legs, dict) or not legs:
        raise ConfigError(
            f"{where} must be a non-empty dict {{symbol: weight}}, was {legs!r}; e.g. "
            "{'BTC/USDT:USDT': 0.5, 'ETH/USDT:USDT': 0.5}"
        )
    if len(legs) > MAX_LEGS:
        raise ConfigError(f"{where}: an account holds at most {MAX_LEGS} legs, was {len(legs)}")
    out: list[tuple[str, float]] = []
    for sym, w in legs.items():
        if sym not in symbols:
            raise ConfigError(
                f"{where}: unknown symbol {sym!r}, the markets are {', '.join(symbols)}"
                f"{did_you_mean(str(sym), symbols)}"
            )
        if isinstance(w, bool) or not isinstance(w, int | float | np.integer | np.floating):
            raise ConfigError(f"{where}: the weight of {sym} must be a number, was {w!r}")
        wf = float(w)
        if not math.isfinite(wf) or wf == 0.0:
            raise ConfigError(
                f"{where}: the weight of {sym} must be a non-zero finite number (negative = "
                f"short), was {w!r}; leave the symbol out instead"
            )
        out.append((str(sym), wf))
    total = sum(abs(w) for _, w in out)
    if total > 1.0 + 1e-12:
        raise ConfigError(
            f"{where}: the |weights| must sum to at most 1, was {total:g}; scale them down "
            "(position_size sets how much of the equity the whole account commits)"
        )
    return tuple(out)


def _check_legs(market_set: Any, legs: Any) -> tuple[tuple[str, float], ...]:
    out = check_leg_weights(legs, tuple(market_set.symbols))
    for sym, _ in out:
        if market_set[sym].contract_type == "inverse":
            raise ConfigError(
                f"legs: {sym} is a coin-margined (inverse) perpetual; accounts hold linear "
                "(USDT- or USDC-margined) perpetuals only, one settle currency per wallet"
            )
    return out


def _pad(parts: list[Any], name: str, fill: Any, dtype: Any) -> np.ndarray:
    arrs = [np.asarray(getattr(p, name)) for p in parts]
    if arrs[0].ndim == 1:
        width = max(a.shape[0] for a in arrs)
        out = np.full((len(arrs), width), fill, dtype=dtype)
        for k, a in enumerate(arrs):
            out[k, : a.shape[0]] = a
        return out
    n_t = max(a.shape[0] for a in arrs)
    width = max(a.shape[1] for a in arrs)
    out = np.full((len(arrs), n_t, width), fill, dtype=dtype)
    for k, a in enumerate(arrs):
        out[k, : a.shape[0], : a.shape[1]] = a
    return out


def _stack_legs(parts: list[_RulesInputs]) -> dict[str, np.ndarray]:
    out = {
        "table_idx": np.ascontiguousarray(np.stack([p.table_idx for p in parts])),
        "floors": _pad(parts, "floors", np.inf, np.float64),
        "mmr": _pad(parts, "mmr", 0.0, np.float64),
        "mamt": _pad(parts, "mamt", 0.0, np.float64),
        "maxlev": _pad(parts, "maxlev", 0.0, np.float64),
        "n_tiers": _pad(parts, "n_tiers", 1, np.int64),
        "last_cap": _pad(parts, "last_cap", np.inf, np.float64),
        "by_size": _pad(parts, "by_size", False, np.bool_),
        "liq_rates": _pad(parts, "liq_rates", 0.0, np.float64),
    }
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _stack_detail(
    markets: list[Market], inputs: list[_MarketInputs]
) -> tuple[I64Array, I64Array, F64Array, BoolArray]:
    """Each leg's detail bars ``(K, n_detail, 3)`` with ``d_start/d_end (K, n_bars)``, and
    ``d_ok (n_bars,)``: True where every leg has detail bars at the same times (walked together)."""
    k_legs = len(inputs)
    width = max(1, max(inp.detail.shape[0] for inp in inputs))
    detail = np.zeros((k_legs, width, 3), dtype=np.float64)
    for k, inp in enumerate(inputs):
        detail[k, : inp.detail.shape[0]] = inp.detail
    d_start = np.stack([inp.d_start for inp in inputs]).astype(np.int64)
    d_end = np.stack([inp.d_end for inp in inputs]).astype(np.int64)
    count = d_end - d_start
    d_ok = (count[0] > 0) & (count == count[0]).all(axis=0)
    if k_legs > 1 and d_ok.any():
        # the same counts; the same times too, row by row inside each of those bars
        ts = [np.asarray(m.detail.ts_ns, dtype=np.int64) for m in markets]  # type: ignore[union-attr]
        bars = np.nonzero(d_ok)[0]
        n = count[0, bars]
        owner = np.repeat(bars, n)
        within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        ref = ts[0][d_start[0, owner] + within]
        for k in range(1, k_legs):
            bad = ts[k][d_start[k, owner] + within] != ref
            d_ok[owner[bad]] = False
    return (
        np.ascontiguousarray(d_start),
        np.ascontiguousarray(d_end),
        np.ascontiguousarray(detail),
        np.ascontiguousarray(d_ok),
    )


def run_account_entries(
    market_set: MarketSet | Market,
    settings: ParamGrid,
    *,
    legs: dict[str, float],
    entry_idx: Any,
    horizon_bars: int,
    config: RunConfig | None = None,
    equity: bool = False,
) -> AccountOutcomes:
    """Open every setting's account at the open of each bar in ``entry_idx``; follow it.

    Parameters
    ----------
    market_set : MarketSet or Market
        The markets on their common bars (``bt.load_markets`` or ``MarketSet.from_markets``);
        a single ``Market`` is a MarketSet of that symbol.
    settings : ParamGrid
        Engine settings per row (``RunConfig`` field names; ``side`` is ignored: each leg's side
        is the sign of its weight). ``margin_mode`` chooses isolated legs or one cross wallet.
    legs : dict
        ``{symbol: weight}``, up to 16 symbols of ``market_set``, non-zero weights (negative =
        short) with ``Σ|weight| <= 1``; leg ``k`` commits ``position_size·|weight|`` of equity.
    entry_idx : array of int
        Bar numbers of the entries (each in ``[0, n_bars)``).
    horizon_bars : int
        Bars followed after each entry (>= 1).
    config : RunConfig, optional
        Settings not in the grid.
    equity : bool
        Also return each window's close equity per bar, ``equity (n_settings, n_entries,
        horizon_bars)`` (bar ``j`` after the entry; a window cut by the end of the data ends in
        NaN), and each leg's share of it, ``leg_equity (..., K)``. Memory grows with the
        horizon: ask for a few settings.

    Raises
    ------
    ConfigError
        Bad legs (unknown symbol, zero weight, ``Σ|w| > 1``, more than 16), invalid settings,
        ``intrabar="best"`` (not modelled for accounts), ``intrabar="detail"`` on a leg without
        detail bars.
    """
    from backtester.engine.accounts_layout import (
        A_AMBIGUOUS,
        A_FEES,
        A_FINAL_EQUITY,
        A_FIRST_EXIT_IDX,
        A_FIRST_EXIT_REASON,
        A_FUNDING,
        A_INSURANCE,
        A_LIQ_IDX,
        A_LIQ_LEG,
        A_MIN_EQUITY,
        A_REJECTED,
        L_ENTRY_PRICE,
        L_EXIT_IDX,
        L_EXIT_PRICE,
        L_FEES,
        L_FUNDING,
        L_N,
        L_PNL,
        L_REASON,
        L_SIZE,
    )
    from backtester.engine.layout import FParam
    from backtester.engine.run import _check_config, _check_fits, _split_names
    from backtester.market import Market
    from backtester.marketset import MarketSet

    if isinstance(market_set, Market):  # one market: an account of legs on that symbol alone
        market_set = MarketSet.from_markets([market_set])
    if not isinstance(market_set, MarketSet):
        raise ConfigError(
            f"market_set must be a backtester.MarketSet (bt.load_markets or "
            f"MarketSet.from_markets), was {type(market_set).__name__}"
        )
    leg_list = _check_legs(market_set, legs)
    config = _check_config(config)
    if not isinstance(settings, ParamGrid):
        raise ConfigError(f"settings must be a ParamGrid, was {type(settings).__name__}")
    engine_names = _split_names(settings, (), allow_strategy=False)
    if (
        isinstance(horizon_bars, bool)
        or not isinstance(horizon_bars, int | np.integer)
        or horizon_bars < 1
    ):
        raise ConfigError(f"horizon_bars must be an int >= 1, was {horizon_bars!r}")
    entries = np.asarray(entry_idx)
    if entries.ndim != 1 or entries.dtype.kind not in "iu":
        raise ShapeError(
            f"entry_idx must be a 1-D array of int bar numbers, was shape {entries.shape} "
            f"dtype {entries.dtype}"
        )
    entries = entries.astype(np.int64)
    n_bars = int(market_set.n_bars)
    if entries.size and (entries.min() < 0 or entries.max() >= n_bars):
        bad = int(entries[(entries < 0) | (entries >= n_bars)][0])
        raise ConfigError(f"entry_idx values must be in [0, {n_bars - 1}], was {bad}")
    _check_fits(settings.n_cols * entries.shape[0], int(horizon_bars), 0, "run_account_entries")
    prep = prepare_accounts(market_set, settings, leg_list, config, engine_names)
    fp = prep.fp
    n_s, n_e = settings.n_cols, entries.shape[0]
    n_legs = len(leg_list)
    rows = np.repeat(np.arange(n_s, dtype=np.int64), n_e)
    start = np.tile(entries, n_s)
    end = np.minimum(start + int(horizon_bars), n_bars)
    n_eq = int(horizon_bars) if equity else 0
    out, legs_out, _trades, eq, leg_eq = simulate_accounts(
        prep, rows, start, end, n_eq=n_eq, legs_eq=equity
    )

    shape = (n_s, n_e)
    cash = np.repeat(fp[FParam.INITIAL_CASH], n_e).reshape(shape)
    final = out[:, A_FINAL_EQUITY].reshape(shape)
    rejected = (out[:, A_REJECTED] > 0).reshape(shape)
    reason = out[:, A_FIRST_EXIT_REASON].astype(np.int64).reshape(shape)
    reason[rejected] = ExitReason.NONE
    per_leg = legs_out.reshape((n_s, n_e, n_legs, L_N))
    return AccountOutcomes(
        labels=settings.labels,
        legs=leg_list,
        entry_idx=entries,
        horizon_bars=int(horizon_bars),
        exit_idx=out[:, A_FIRST_EXIT_IDX].astype(np.int64).reshape(shape),
        reason=reason,
        liquidation_idx=out[:, A_LIQ_IDX].astype(np.int64).reshape(shape),
        liquidated_leg=out[:, A_LIQ_LEG].astype(np.int64).reshape(shape),
        final_equity=final,
        min_equity=out[:, A_MIN_EQUITY].reshape(shape),
        insurance_draw=out[:, A_INSURANCE].reshape(shape),
        funding_paid=out[:, A_FUNDING].reshape(shape),
        fees_paid=out[:, A_FEES].reshape(shape),
        rejected=rejected,
        loss=np.maximum(0.0, 1.0 - final / cash),
        ambiguous_bars=out[:, A_AMBIGUOUS].reshape(shape).sum(axis=1).astype(np.int64),
        ts_ns=np.asarray(market_set.ts_ns, dtype=np.int64),
        rules=_rules_used(leg_list, prep.leg_rules),
        leg_exit_idx=per_leg[..., L_EXIT_IDX].astype(np.int64),
        leg_reason=per_leg[..., L_REASON].astype(np.int64),
        leg_entry_price=np.ascontiguousarray(per_leg[..., L_ENTRY_PRICE]),
        leg_exit_price=np.ascontiguousarray(per_leg[..., L_EXIT_PRICE]),
        leg_size=np.ascontiguousarray(per_leg[..., L_SIZE]),
        leg_pnl=np.ascontiguousarray(per_leg[..., L_PNL]),
        leg_fees=np.ascontiguousarray(per_leg[..., L_FEES]),
        leg_funding=np.ascontiguousarray(per_leg[..., L_FUNDING]),
        equity=_windows(eq, end - start, (n_s, n_e)),
        leg_equity=_windows(leg_eq, end - start, (n_s, n_e)),
    )


@dataclass(frozen=True, slots=True)
class AccountInputs:
    """An account run's kernel inputs: the legs' markets stacked, each setting encoded."""

    legs: tuple[tuple[str, float], ...]
    prices: F64Array  # (K, n_bars, 8)
    funding: F64Array  # (K, n_bars, 2)
    d_start: I64Array
    d_end: I64Array
    detail: F64Array
    d_ok: BoolArray
    weights: F64Array
    fp: F64Array  # (FParam.N, n_settings)
    ip: I64Array  # (IParam.N, n_settings)
    leg_rules: list[dict[Any, Any]]
    leg_keys: list[list[Any]]


def prepare_accounts(
    market_set: MarketSet,
    settings: ParamGrid,
    leg_list: tuple[tuple[str, float], ...],
    config: RunConfig,
    engine_names: list[str],
) -> AccountInputs:
    """Check every setting against every leg's market and rules; stack the kernel's inputs."""
    from backtester.engine.run import (
        _build_rules,
        _check_leverage,
        _check_market,
        _encode,
        _market_inputs,
        _settings_columns,
    )

    markets = [market_set[sym] for sym, _ in leg_list]
    for m in markets:
        _check_market(m)
    cols = _settings_columns(settings, config, engine_names)
    if any(v not in _INTRABAR for v in cols["intrabar"]):
        bad_ib = next(v for v in cols["intrabar"] if v not in _INTRABAR)
        raise ConfigError(
            f"intrabar {bad_ib!r} is not modelled for accounts yet; use intrabar='worst' or "
            "'detail'"
        )
    inputs = [_market_inputs(m) for m in markets]
    d_start, d_end, detail, d_ok = _stack_detail(markets, inputs)
    if "detail" in cols["intrabar"]:
        _check_detail(markets, inputs, d_ok)
    leg_rules: list[dict[Any, Any]] = []
    leg_keys: list[list[Any]] = []
    for m in markets:
        rules, keys = _build_rules(m, cols)
        _check_leverage(cols, keys, rules, m.symbol)
        leg_rules.append(rules)
        leg_keys.append(keys)
    fp, ip = _encode(cols, leg_rules[0], leg_keys[0], engine_names)
    return AccountInputs(
        legs=leg_list,
        prices=np.ascontiguousarray(np.stack([inp.prices for inp in inputs])),
        funding=np.ascontiguousarray(np.stack([inp.funding for inp in inputs])),
        d_start=d_start,
        d_end=d_end,
        detail=detail,
        d_ok=d_ok,
        weights=np.array([w for _, w in leg_list], dtype=np.float64),
        fp=fp,
        ip=ip,
        leg_rules=leg_rules,
        leg_keys=leg_keys,
    )


def simulate_accounts(
    prep: AccountInputs,
    rows: I64Array,
    start: I64Array,
    end: I64Array,
    *,
    sig: Any = None,
    sig_idx: I64Array | None = None,
    trade_cap: int = 0,
    n_eq: int = 0,
    legs_eq: bool = False,
) -> tuple[F64Array, F64Array, F64Array, F64Array, F64Array]:
    """Run the kernel on columns ``c`` = setting ``rows[c]`` over ``[start[c], end[c])``.

    Columns are grouped by the tier tables their setting uses (one kernel call per group).
    ``sig (n_sig, K, n_bars) uint8`` with ``sig_idx (n_cols,)`` makes columns signal-driven
    (their trades in ``(n_cols, trade_cap, T_N)``). ``n_eq`` bars of close equity from each
    column's start, ``(n_cols, n_eq)``, and with ``legs_eq`` each leg's share ``(n_cols, n_eq,
    K)``. Returns ``out (n_cols, A_N)``, ``legs_out (n_cols, K, L_N)``, trades, equity, leg
    equity.
    """
    from backtester.engine.accounts import simulate_accounts_nb
    from backtester.engine.accounts_layout import A_N, L_N, T_N

    n_legs = len(prep.legs)
    n = int(rows.shape[0])
    if sig is None:
        sig = np.zeros((1, n_legs, 1), dtype=np.uint8)
        sig_idx = np.full(n, -1, dtype=np.int64)
    assert sig_idx is not None
    out = np.empty((n, A_N), dtype=np.float64)
    legs_out = np.empty((n, n_legs, L_N), dtype=np.float64)
    trades = np.zeros((n, trade_cap, T_N), dtype=np.float64)
    eq = np.zeros((n, n_eq), dtype=np.float64)
    leg_eq = np.zeros((n, n_eq if legs_eq else 0, n_legs), dtype=np.float64)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for c in range(n):
        key = tuple(keys[int(rows[c])] for keys in prep.leg_keys)
        groups.setdefault(key, []).append(c)
    for combo, members in groups.items():
        stacked = _stack_legs([prep.leg_rules[k][key] for k, key in enumerate(combo)])
        dest = np.array(members, dtype=np.int64)
        rep = rows[dest]
        part = np.empty((dest.shape[0], A_N), dtype=np.float64)
        part_legs = np.empty((dest.shape[0], n_legs, L_N), dtype=np.float64)
        part_trades = np.zeros((dest.shape[0], trade_cap, T_N), dtype=np.float64)
        part_eq = np.zeros((dest.shape[0], eq.shape[1]), dtype=np.float64)
        part_leg_eq = np.zeros((dest.shape[0], leg_eq.shape[1], n_legs), dtype=np.float64)
        simulate_accounts_nb(
            prep.prices,
            prep.funding,
            stacked["table_idx"],
            stacked["floors"],
            stacked["mmr"],
            stacked["mamt"],
            stacked["maxlev"],
            stacked["n_tiers"],
            stacked["last_cap"],
            stacked["by_size"],
            stacked["liq_rates"],
            prep.d_start,
            prep.d_end,
            prep.detail,
            prep.d_ok,
            prep.weights,
            np.ascontiguousarray(start[dest]),
            np.ascontiguousarray(end[dest]),
            np.ascontiguousarray(prep.fp[:, rep]),
            np.ascontiguousarray(prep.ip[:, rep]),
            part,
            part_legs,
            sig,
            np.ascontiguousarray(sig_idx[dest]),
            part_trades,
            part_eq,
            part_leg_eq,
        )
        out[dest] = part
        legs_out[dest] = part_legs
        trades[dest] = part_trades
        eq[dest] = part_eq
        leg_eq[dest] = part_leg_eq
    return out, legs_out, trades, eq, leg_eq


def _windows(values: F64Array, lengths: I64Array, shape: tuple[int, int]) -> F64Array:
    # per-column window values (n_cols, n_eq, ...) -> (n_settings, n_entries, n_eq, ...), NaN
    # past each window's end (the end of the data)
    out = values.copy()
    if out.shape[1]:
        past = np.arange(out.shape[1])[None, :] >= lengths[:, None]
        out[past] = np.nan
    return out.reshape((*shape, *out.shape[1:]))


def _check_detail(markets: list[Market], inputs: list[_MarketInputs], d_ok: BoolArray) -> None:
    # intrabar="detail" needs every leg's lower-timeframe bars; say where they do not cover
    for m, inp in zip(markets, inputs, strict=True):
        if not inp.has_detail:
            raise ConfigError(
                f"intrabar 'detail' needs lower-timeframe bars for every leg, {m.symbol} has "
                "none; load them with bt.load_markets(..., detail_timeframe='1m') or use "
                "intrabar='worst'"
            )
    n_bars = int(d_ok.shape[0])
    covered = int(np.count_nonzero(d_ok))
    if covered < n_bars:
        warnings.warn(
            f"intrabar 'detail': the legs share lower-timeframe bars in {covered:,} of the "
            f"{n_bars:,} bars ({covered / n_bars:.0%}); in the other bars isolated legs walk "
            "their own detail bars and cross accounts resolve ambiguous bars with 'worst'",
            BacktesterWarning,
            stacklevel=3,
        )


def _rules_used(
    leg_list: tuple[tuple[str, float], ...], leg_rules: list[dict[Any, _RulesInputs]]
) -> tuple[dict[str, str], ...]:
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    for (sym, _w), rules in zip(leg_list, leg_rules, strict=True):
        for r in rules.values():
            for table_id, note in zip(r.table_ids, r.notes, strict=True):
                seen.setdefault(
                    (sym, r.exchange, table_id),
                    {"symbol": sym, "exchange": r.exchange, "table_id": table_id, "note": note},
                )
    return tuple(seen.values())
