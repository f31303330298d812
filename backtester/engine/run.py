"""Python side of the engine: validate, broadcast, batch, call the kernel, wrap (layer: engine.run).

``run_sweep`` simulates one column per grid row (strategy parameters × engine settings);
``run_entries`` opens a position at chosen bars and follows each for a fixed horizon (survival
studies). Both validate once here; the kernel trusts its inputs.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pandas as pd

from backtester._typing import BoolArray, F64Array, I64Array
from backtester.config import (
    SETTINGS,
    RunConfig,
    check_setting,
    setting_names,
    warn_suspect_settings,
)
from backtester.engine.enums import CloseAt, Convention, ExitReason, Stat, code_of
from backtester.engine.layout import FLOAT_ROWS, INT_ROWS, FParam, IParam
from backtester.errors import (
    BacktesterError,
    BacktesterWarning,
    ConfigError,
    DataError,
    ShapeError,
    did_you_mean,
)
from backtester.params import ParamGrid, format_bytes, refuse_beyond_memory
from backtester.signals import Signals

if TYPE_CHECKING:
    from backtester.engine.accounts_sweep import AccountSweepResult
    from backtester.market import Market
    from backtester.marketset import MarketSet
    from backtester.results import EntryOutcomes, SweepResult

log = logging.getLogger(__name__)

__all__ = ["RunCheck", "check_run", "estimate_memory", "run_entries", "run_sweep"]

_DEFAULT_BATCH = 4096


# ------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True, slots=True)
class _MarketInputs:
    prices: F64Array  # (n_bars, 8)
    funding: F64Array  # (n_bars, 2): events at the bar's open / inside the bar
    d_start: I64Array
    d_end: I64Array
    detail: F64Array  # (n_detail, 3)
    has_detail: bool
    f_bars: I64Array  # bars carrying a funding event


def _funding_columns(market: Market) -> F64Array:
    # (n_bars, 2): summed rates of the events at each bar's open time / strictly inside the bar
    # (NaN = none); the kernel charges them before / after the fills at the open
    n = market.n_bars
    out = np.full((n, 2), np.nan, dtype=np.float64)
    ts = np.asarray(market.funding_ts_ns, dtype=np.int64)
    if ts.size == 0 or n == 0:
        return out
    rel = ts - market.ts_ns[0]
    idx = rel // market.timeframe_ns
    inside = (idx >= 0) & (idx < n)
    kind = (rel % market.timeframe_ns != 0).astype(np.int64)
    rates = np.asarray(market.funding_rate, dtype=np.float64)
    for k in (0, 1):
        sel = inside & (kind == k)
        sums = np.bincount(idx[sel], weights=rates[sel], minlength=n)
        has = np.bincount(idx[sel], minlength=n) > 0
        out[has, k] = sums[has]
    return out


def _market_inputs(market: Market) -> _MarketInputs:
    for name in (
        "open",
        "high",
        "low",
        "close",
        "mark_open",
        "mark_high",
        "mark_low",
        "mark_close",
    ):
        arr = getattr(market, name)
        bad = ~np.isfinite(arr)
        if bad.any():
            first = int(np.argmax(bad))
            raise DataError(
                f"market.{name} has {int(bad.sum())} NaN/inf values (first at bar {first}); "
                "build the market with Market.from_frames, which validates bars"
            )
    if market.n_bars > 1 and not bool(np.all(np.diff(market.ts_ns) > 0)):
        raise DataError("market.ts_ns must be strictly increasing; sort the bars before building")
    prices = np.empty((market.n_bars, 8), dtype=np.float64)
    for k, name in enumerate(
        ("open", "high", "low", "close", "mark_open", "mark_high", "mark_low", "mark_close")
    ):
        prices[:, k] = getattr(market, name)
    funding = _funding_columns(market)
    f_bars = np.ascontiguousarray(np.nonzero(~np.isnan(funding).all(axis=1))[0], dtype=np.int64)
    detail = market.detail
    if detail is not None and detail.n_bars > 0:
        edges = np.append(market.ts_ns, market.ts_ns[-1] + market.timeframe_ns)
        pos = np.searchsorted(detail.ts_ns, edges, side="left")
        d_start = np.ascontiguousarray(pos[:-1], dtype=np.int64)
        d_end = np.ascontiguousarray(pos[1:], dtype=np.int64)
        darr = np.ascontiguousarray(np.column_stack([detail.open, detail.high, detail.low]))
        return _MarketInputs(prices, funding, d_start, d_end, darr, True, f_bars)
    zeros = np.zeros(market.n_bars, dtype=np.int64)
    return _MarketInputs(prices, funding, zeros, zeros, np.zeros((0, 3)), False, f_bars)


@dataclass(frozen=True, slots=True)
class _RulesInputs:
    exchange: str
    table_ids: tuple[str, ...]
    notes: tuple[str, ...]  # per table: its source and how it applies (rules_timeline's note)
    table_idx: I64Array  # (n_bars,)
    floors: F64Array  # (n_tables, max_tiers)
    mmr: F64Array
    mamt: F64Array
    maxlev: F64Array
    n_tiers: I64Array
    by_size: BoolArray
    liq_rates: F64Array
    last_cap: F64Array  # (n_tables,) the last tier's cap: larger positions are refused
    t_bars: I64Array  # bars where the table in force changes
    convention: int
    close_at: str
    taker_fee: float
    maker_fee: float
    max_leverage: float  # the smallest tier-1 maximum over the tables in force


def _stack(rules: list[Any], table_idx: I64Array, market_tiers: Any = None) -> _RulesInputs:
    n_t = len(rules)
    width = max(int(r.floors.shape[0]) for r in rules)
    floors = np.full((n_t, width), np.inf)
    mmr = np.zeros((n_t, width))
    mamt = np.zeros((n_t, width))
    maxlev = np.zeros((n_t, width))
    for k, r in enumerate(rules):
        n = r.floors.shape[0]
        floors[k, :n] = r.floors
        mmr[k, :n] = r.mmr
        mamt[k, :n] = r.maint_amount
        maxlev[k, :n] = r.max_leverage
    used = np.unique(table_idx)
    first = rules[0]
    return _RulesInputs(
        exchange=first.exchange,
        table_ids=tuple(str(r.table_id) for r in rules),
        notes=tuple(str(getattr(r, "note", "") or r.table_id) for r in rules),
        table_idx=np.ascontiguousarray(table_idx, dtype=np.int64),
        floors=floors,
        mmr=mmr,
        mamt=mamt,
        maxlev=maxlev,
        n_tiers=np.array([r.floors.shape[0] for r in rules], dtype=np.int64),
        by_size=np.array([bool(r.tier_by_size) for r in rules], dtype=np.bool_),
        liq_rates=np.array([float(r.liquidation_fee_rate) for r in rules], dtype=np.float64),
        last_cap=np.array([float(r.caps[-1]) for r in rules], dtype=np.float64),
        t_bars=np.ascontiguousarray(np.nonzero(np.diff(table_idx))[0] + 1, dtype=np.int64),
        convention=int(first.convention),
        close_at=str(first.close_at),
        taker_fee=float(first.taker_fee),
        maker_fee=float(first.maker_fee),
        max_leverage=float(min(rules[int(k)].max_leverage[0] for k in used)),
    )


_FLAT = "flat maint_margin_rate"  # the rules key of columns that need no tier table


def _profile_rule(
    market: Market, exchange: str, table_id: str, tiers: dict[str, F64Array], by_size: bool
) -> _TableRule:
    # a table the user gave (market.tiers) or a flat rate's single open tier, with the exchange
    # profile's convention, fees and liquidation fee: no packaged table for the symbol needed
    from backtester.rules.profiles import get_profile, liquidation_fee_rate

    profile = get_profile(exchange)
    fee_rate, _ = liquidation_fee_rate(exchange, market.symbol, market.start)
    return _TableRule(
        exchange=exchange,
        table_id=table_id,
        floors=tiers["floor"],
        caps=tiers["cap"],
        mmr=tiers["mmr"],
        maint_amount=tiers["maint_amount"],
        max_leverage=tiers["max_leverage"],
        tier_by_size=by_size,
        liquidation_fee_rate=fee_rate,
        convention=profile.convention,
        close_at=profile.close_at,
        taker_fee=profile.taker_fee,
        maker_fee=profile.maker_fee,
    )


def _rules_inputs(
    market: Market, exchange: str, tier_table: str | None, max_leverage: float | None = None
) -> _RulesInputs:
    from backtester.rules import exchange_rules, rules_timeline

    n = market.n_bars
    if tier_table == _FLAT:
        # one open-ended tier: the flat rate replaces its margin; the leverage limit is the
        # column's max_leverage (RunConfig's own bound without one)
        top = float(SETTINGS["leverage"].high if max_leverage is None else max_leverage)
        one = {
            "floor": np.zeros(1),
            "cap": np.full(1, np.inf),
            "mmr": np.zeros(1),
            "maint_amount": np.zeros(1),
            "max_leverage": np.full(1, top),
        }
        rule = _profile_rule(market, exchange, _FLAT, one, by_size=False)
        return _stack([rule], np.zeros(n, dtype=np.int64))
    if tier_table is None:
        timeline = rules_timeline(exchange, market.symbol, market.start, market.end)
        starts = np.array([r.effective_from.value for r in timeline], dtype=np.int64)
        idx = np.searchsorted(starts, market.ts_ns, side="right") - 1
        idx = np.clip(idx, 0, len(timeline) - 1)
        return _stack(timeline, idx)
    if tier_table == "market":
        if market.tiers is None:
            raise ConfigError(
                "RunConfig.tier_table 'market' needs market.tiers, was None; pass "
                "Market.from_frames(..., tiers=frame) or use None for the dated tables"
            )
        t = market.tiers
        cols = {
            name: np.asarray(t[name], dtype=np.float64)
            for name in ("floor", "cap", "mmr", "maint_amount", "max_leverage")
        }
        by_size = bool("basis" in t and str(t["basis"].iloc[0]) == "size")
        rule = _profile_rule(market, exchange, "market.tiers", cols, by_size)
        return _stack([rule], np.zeros(n, dtype=np.int64))
    try:
        at = pd.Timestamp(tier_table, tz="UTC")
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"RunConfig.tier_table must be None, 'market' or a date 'YYYY-MM-DD', "
            f"was {tier_table!r}"
        ) from e
    return _stack([exchange_rules(exchange, market.symbol, at=at)], np.zeros(n, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class _TableRule:
    exchange: str
    table_id: str
    floors: F64Array
    caps: F64Array
    mmr: F64Array
    maint_amount: F64Array
    max_leverage: F64Array
    tier_by_size: bool
    liquidation_fee_rate: float
    convention: int
    close_at: str
    taker_fee: float
    maker_fee: float


# ---------------------------------------------------------------------------------- settings
def _checked(name: str, values: list[Any]) -> list[Any]:
    # validate each distinct value once: a grid of 10^6 columns has a handful of distinct values
    memo: dict[tuple[type, Any], Any] = {}
    out: list[Any] = []
    for v in values:
        try:
            key = (type(v), v)
            hit = memo.get(key, memo)
        except TypeError:  # unhashable: checked (and refused) below
            key, hit = None, memo
        if hit is memo:
            hit = check_setting(name, v)
            if key is not None:
                memo[key] = hit
        out.append(hit)
    return out


def _settings_columns(grid: ParamGrid, config: RunConfig, names: list[str]) -> dict[str, list[Any]]:
    """Per-column values (validated) of every engine setting, from the grid or the config."""
    n = grid.n_cols
    out: dict[str, list[Any]] = {}
    for name in setting_names():
        if name in names:
            out[name] = _checked(name, grid.values(name))
        else:
            out[name] = [getattr(config, name)] * n
    return out


def _codes(name: str, values: list[Any]) -> I64Array:
    # kernel codes of a setting's per-column values (words via their IntEnum, bools as 0/1)
    spec = SETTINGS[name]
    table: dict[Any, int] = {}
    for v in dict.fromkeys(values):
        table[v] = int(v) if spec.codes is None else code_of(spec.codes, v)
    return np.fromiter((table[v] for v in values), dtype=np.int64, count=len(values))


def _encode(
    settings: dict[str, list[Any]],
    rules: dict[tuple[str, Any], _RulesInputs],
    keys: list[Any],
    swept: Collection[str],
) -> tuple[F64Array, I64Array]:
    # a setting the grid does not sweep is one value for every column: encode it once
    n = len(keys)
    fp = np.empty((FParam.N, n), dtype=np.float64)
    ip = np.empty((IParam.N, n), dtype=np.int64)
    for name, row in FLOAT_ROWS.items():
        values = settings[name]
        if name not in swept:
            fp[row] = math.nan if values[0] is None else values[0]
        else:
            fp[row] = np.fromiter(
                (math.nan if v is None else v for v in values), dtype=np.float64, count=n
            )
    for name, row in INT_ROWS.items():
        if name != "close_at":  # None = the profile's, filled per rules key below
            values = settings[name]
            ip[row] = _codes(name, values) if name in swept else _codes(name, values[:1])[0]
    # settings whose None means "the exchange profile's", resolved per rules key
    uniq = list(rules)
    pos = {k: j for j, k in enumerate(uniq)}
    key_idx = np.fromiter((pos[k] for k in keys), dtype=np.int64, count=n)
    profile = [rules[k] for k in uniq]
    taker_of = np.array([r.taker_fee for r in profile], dtype=np.float64)
    maker_of = np.array([r.maker_fee for r in profile], dtype=np.float64)
    conv_of = np.array([r.convention for r in profile], dtype=np.int64)
    close_of = np.array([code_of(CloseAt, r.close_at) for r in profile], dtype=np.int64)
    taker_set = ~np.isnan(fp[FParam.TAKER_FEE])
    liq_unset = np.isnan(fp[FParam.LIQ_FEE_RATE])
    # OKX / Bybit charge the trader's taker rate on liquidation (OKX's enters the liquidation
    # price), as bt.liquidation_price(..., taker_fee=...) does; NaN = the table's own rate
    taker_is_liq = liq_unset & taker_set & (conv_of[key_idx] != Convention.BINANCE)
    fp[FParam.LIQ_FEE_RATE, taker_is_liq] = fp[FParam.TAKER_FEE, taker_is_liq]
    fp[FParam.TAKER_FEE, ~taker_set] = taker_of[key_idx[~taker_set]]
    maker_unset = np.isnan(fp[FParam.MAKER_FEE])
    fp[FParam.MAKER_FEE, maker_unset] = maker_of[key_idx[maker_unset]]
    ip[IParam.CONVENTION] = conv_of[key_idx]
    close = settings["close_at"]
    close_set = np.fromiter((v is not None for v in close), dtype=np.bool_, count=n)
    ip[IParam.CLOSE_AT] = close_of[key_idx]
    if close_set.any():
        given = [v for v in close if v is not None]
        ip[IParam.CLOSE_AT, close_set] = _codes("close_at", given)
    return fp, ip


def _check_leverage(
    settings: dict[str, list[Any]], keys: list[Any], rules: dict[Any, _RulesInputs], symbol: str
) -> None:
    lev = np.asarray(settings["leverage"], dtype=np.float64)
    mmr = np.array(
        [math.nan if v is None else v for v in settings["maint_margin_rate"]], dtype=np.float64
    )
    bad = np.nonzero(lev * np.nan_to_num(mmr, nan=0.0) >= 1.0)[0]
    if bad.size:
        c = int(bad[0])
        raise ConfigError(
            f"leverage {lev[c]:g} needs maint_margin_rate < {1.0 / lev[c]:.4g}, was {mmr[c]:g} "
            "(the position would be liquidatable at its entry price); lower the leverage or "
            "the rate"
        )
    limit = np.array(
        [math.inf if v is None else v for v in settings["max_leverage"]], dtype=np.float64
    )
    over = np.nonzero(lev > limit)[0]
    if over.size:
        c = int(over[0])
        raise ConfigError(
            f"leverage {lev[c]:g} is above max_leverage {limit[c]:g} for {symbol}; lower the "
            "leverage or raise max_leverage"
        )
    top: dict[Any, float] = {}
    for c, key in enumerate(keys):
        if lev[c] > top.get(key, 0.0):
            top[key] = float(lev[c])
    for key, highest in top.items():
        r = rules[key]
        if highest > r.max_leverage:
            which, fix = {
                "market": ("the market's own tiers (market.tiers)", "lower the leverage"),
                _FLAT: ("max_leverage", "lower the leverage or raise max_leverage"),
            }.get(
                key[1],
                (
                    "the lowest tier-1 maximum of the tier tables in force",
                    "lower the leverage or pin a table with tier_table='YYYY-MM-DD'",
                ),
            )
            raise ConfigError(
                f"leverage must be in (0, {r.max_leverage:g}] for {r.exchange} {symbol} "
                f"({which}), was {highest:g}; {fix}"
            )


# ---------------------------------------------------------------------------------- simulation
class _ColumnKeys(Sequence[Any]):
    """Per-column rules keys held as the distinct keys and one index per column.

    ``keys[c]`` is column ``c``'s key, as with a list; a run of 10^6 columns built from a few
    settings (``run_entries``: settings x entries) never makes a Python object per column.
    """

    def __init__(self, uniq: list[Any], idx: I64Array) -> None:
        self.uniq = uniq
        self.idx = idx

    @classmethod
    def repeat(cls, keys: list[Any], rep: I64Array) -> _ColumnKeys:
        """Column ``c`` gets ``keys[rep[c]]`` (one entry per distinct key, in first-seen order)."""
        pos: dict[Any, int] = {}
        of_key = np.fromiter((pos.setdefault(k, len(pos)) for k in keys), np.int64, len(keys))
        return cls(list(pos), np.ascontiguousarray(of_key[rep]))

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    @overload
    def __getitem__(self, c: int) -> Any: ...
    @overload
    def __getitem__(self, c: slice) -> list[Any]: ...
    def __getitem__(self, c: int | slice) -> Any:
        if isinstance(c, slice):
            return [self.uniq[j] for j in self.idx[c]]
        return self.uniq[int(self.idx[c])]

    def groups(self) -> dict[Any, I64Array]:
        """Return each distinct key's columns (ascending), keys in first-seen column order."""
        order = np.argsort(self.idx, kind="stable")
        cuts = np.searchsorted(self.idx[order], np.arange(len(self.uniq) + 1))
        parts = {j: order[cuts[j] : cuts[j + 1]] for j in range(len(self.uniq))}
        seen = sorted((int(v[0]), j) for j, v in parts.items() if v.size)
        return {self.uniq[j]: parts[j] for _, j in seen}


class _Simulation:
    """Everything needed to (re-)run any subset of columns deterministically."""

    def __init__(
        self,
        market: Market,
        inputs: _MarketInputs,
        rules: dict[Any, _RulesInputs],
        keys: list[Any] | _ColumnKeys,
        fparams: F64Array,
        iparams: I64Array,
        sig: np.ndarray,
        sig_idx: I64Array,
        start_idx: I64Array,
        end_idx: I64Array,
        force_side: I64Array,
        *,
        returns: bool = False,
    ) -> None:
        # returns: the kernel sums per-bar equity returns (Stat.RET_*; SweepResult.stats())
        self.returns = returns
        self.market = market
        self.inputs = inputs
        from backtester.engine.kernel import bar_extremes

        # the quiet blocks' price extremes, once per simulation; a run that sums per-bar
        # returns passes no block, so it gets none (bar_extremes of no bars)
        self.ext = bar_extremes(inputs.prices[:0] if returns else inputs.prices)
        self.rules = rules
        self.keys = keys
        self.fparams = fparams
        self.iparams = iparams
        self.sig = sig
        self.sig_idx = sig_idx
        self.start_idx = start_idx
        self.end_idx = end_idx
        self.force_side = force_side
        if isinstance(keys, _ColumnKeys):
            self.groups = keys.groups()
        else:
            uniq: dict[Any, list[int]] = {}
            for c, k in enumerate(keys):
                uniq.setdefault(k, []).append(c)
            self.groups = {k: np.array(v, dtype=np.int64) for k, v in uniq.items()}

    @property
    def n_cols(self) -> int:
        return int(self.fparams.shape[1])

    def rules_used(self) -> tuple[dict[str, str], ...]:
        """Return each tier table the run used: exchange, table id and its note, once each."""
        seen: dict[tuple[str, str], dict[str, str]] = {}
        for r in self.rules.values():
            for table_id, note in zip(r.table_ids, r.notes, strict=True):
                seen.setdefault(
                    (r.exchange, table_id),
                    {"exchange": r.exchange, "table_id": table_id, "note": note},
                )
        return tuple(seen.values())

    def run(
        self,
        cols: I64Array | None = None,
        *,
        trade_cap: int = 0,
        equity: bool = False,
        batch_size: int | None = None,
        progress: bool = False,
        checkpoints: I64Array | None = None,
        out_checkpoints: F64Array | None = None,
    ) -> tuple[F64Array, np.ndarray | None, F64Array | None]:
        """Return (stats (n, Stat.N), trade records or None, equity (n_bars, n) or None).

        With ``checkpoints`` (sorted bar counts >= 1), ``out_checkpoints (n, len)`` receives
        each column's equity that many bars after its start (``simulate_nb``'s ``out_ck``).
        """
        from backtester.engine.kernel import CHUNK, NTF, simulate_nb
        from backtester.engine.records import trade_dt

        if cols is None:
            cols = np.arange(self.n_cols, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        n = cols.shape[0]
        n_bars = self.market.n_bars
        stats = np.empty((n, Stat.N), dtype=np.float64)
        eq_out = np.empty((n_bars, n), dtype=np.float64) if equity else None
        trade_parts: list[np.ndarray] = []
        bs = _DEFAULT_BATCH if batch_size is None else int(batch_size)
        if bs < 1:
            raise ConfigError(f"batch_size must be >= 1, was {batch_size}")
        pos_of = np.full(self.n_cols, -1, dtype=np.int64)
        pos_of[cols] = np.arange(n, dtype=np.int64)
        order: list[tuple[Any, I64Array]] = []
        for key, members in self.groups.items():
            sel = members[pos_of[members] >= 0]
            for a in range(0, sel.shape[0], bs):
                order.append((key, sel[a : a + bs]))
        bar = None
        if progress:
            try:
                from tqdm import tqdm

                bar = tqdm(total=len(order), desc="compile", unit="batch", leave=False)
            except ImportError:  # pragma: no cover - tqdm is a dependency
                bar = None
        inp = self.inputs
        ck = np.zeros(0, dtype=np.int64) if checkpoints is None else checkpoints
        for key, batch in order:
            r = self.rules[key]
            m = batch.shape[0]
            cap = trade_cap
            while True:
                out_stats = np.empty((m, Stat.N), dtype=np.float64)
                out_trades = np.empty((m, cap, NTF), dtype=np.float64)
                if equity:
                    out_eq = np.empty((n_bars, m), dtype=np.float64)
                    eq_col = np.arange(m, dtype=np.int64)
                else:
                    out_eq = np.empty((0, 0), dtype=np.float64)
                    eq_col = np.full(m, -1, dtype=np.int64)
                out_ck = np.empty((m, ck.shape[0]), dtype=np.float64)
                n_over = simulate_nb(
                    inp.prices,
                    self.ext,
                    inp.funding,
                    r.table_idx,
                    inp.f_bars,
                    r.t_bars,
                    r.floors,
                    r.mmr,
                    r.mamt,
                    r.maxlev,
                    r.n_tiers,
                    r.last_cap,
                    r.by_size,
                    r.liq_rates,
                    inp.d_start,
                    inp.d_end,
                    inp.detail,
                    self.sig,
                    np.ascontiguousarray(self.sig_idx[batch]),
                    np.ascontiguousarray(self.start_idx[batch]),
                    np.ascontiguousarray(self.end_idx[batch]),
                    np.ascontiguousarray(self.force_side[batch]),
                    np.ascontiguousarray(self.fparams[:, batch]),
                    np.ascontiguousarray(self.iparams[:, batch]),
                    0,
                    out_stats,
                    out_trades,
                    out_eq,
                    eq_col,
                    self.returns,
                    CHUNK,
                    ck,
                    out_ck,
                )
                if n_over == 0 or trade_cap == 0:
                    break
                cap = int(out_stats[:, Stat.N_TRADES].max())  # re-run with a large enough buffer
            dest = pos_of[batch]
            stats[dest] = out_stats
            if out_checkpoints is not None:
                out_checkpoints[dest] = out_ck
            if eq_out is not None:
                eq_out[:, dest] = out_eq
            if trade_cap > 0:
                counts = np.minimum(out_stats[:, Stat.N_TRADES].astype(np.int64), cap)
                for j in range(m):
                    k = int(counts[j])
                    if k:
                        rec = np.empty(k, dtype=trade_dt)
                        buf = out_trades[j, :k]
                        for f_i, name in enumerate(trade_dt.names or ()):
                            rec[name] = buf[:, f_i]
                        rec["col"] = int(batch[j])
                        trade_parts.append(rec)
            if bar is not None:
                bar.set_description("sweep")
                bar.update(1)
        if bar is not None:
            bar.close()
        trades = None
        if trade_cap > 0:
            trades = np.concatenate(trade_parts) if trade_parts else np.empty(0, dtype=trade_dt)
            trades = trades[np.lexsort((trades["id"], trades["col"]))] if trades.size else trades
        return stats, trades, eq_out


def _split_names(
    grid: ParamGrid, strategy_params: tuple[str, ...], allow_strategy: bool = True
) -> list[str]:
    engine = set(setting_names())
    known = (set(strategy_params) if allow_strategy else set()) | engine
    for name in grid.names:
        if name not in known:
            raise ConfigError(f"unknown grid parameter {name!r}{did_you_mean(name, known)}")
    return [n for n in grid.names if n in engine and n not in strategy_params]


def _build_rules(
    market: Market, settings: dict[str, list[Any]], idx: I64Array | None = None
) -> tuple[dict[Any, _RulesInputs], list[Any]]:
    from backtester.rules.tables import tables_for

    exch = settings["exchange"]
    tiers = settings["tier_table"]
    mmr = settings["maint_margin_rate"]
    top = settings["max_leverage"]
    n = len(exch)
    keys: list[Any] = []
    has_tables: dict[str, bool] = {}
    for c in range(n):
        exchange = exch[c] or market.exchange
        key: tuple[Any, ...] = (exchange, tiers[c])
        if tiers[c] is None and mmr[c] is not None:
            # a flat rate with no packaged table for the symbol needs none (your own symbol)
            if exchange not in has_tables:
                has_tables[exchange] = bool(tables_for(exchange, market.symbol))
            if not has_tables[exchange]:
                key = (exchange, _FLAT, top[c])
        keys.append(key)
    rules: dict[Any, _RulesInputs] = {}
    for key in dict.fromkeys(keys):
        rules[key] = _rules_inputs(market, key[0], key[1], *key[2:])
    return rules, keys


def _check_market(market: Any) -> None:
    for name in ("ts_ns", "open", "mark_open", "funding_by_bar", "n_bars"):
        if not hasattr(market, name):
            raise ShapeError(
                f"market must be a backtester.Market (from bt.load_market or "
                f"Market.from_frames), was {type(market).__name__}"
            )
    if market.n_bars < 2:
        raise DataError(f"market must have at least 2 bars, was {market.n_bars}")


def _strategy_params(strategy: Any) -> dict[str, list[Any]]:
    params = getattr(strategy, "PARAMS", None)
    if not isinstance(params, dict) or not callable(getattr(strategy, "signals", None)):
        raise ConfigError(
            f"strategy must be a module or object with PARAMS (dict) and signals(market, grid), "
            f"was {strategy!r}"
        )
    return params


def _strategy_grid(
    strategy: Any, grid: ParamGrid | None
) -> tuple[ParamGrid, tuple[str, ...], list[str]]:
    """Return (the grid a strategy run simulates, the strategy's names, the engine's names).

    No grid is the strategy's ``PARAMS``; strategy parameters the grid leaves out are crossed
    in with their ``PARAMS`` values. Shared by ``run_sweep`` (one market or a MarketSet) and
    ``run_strategy_windows``.
    """
    defaults = _strategy_params(strategy)
    if grid is None:
        grid = ParamGrid.product(**defaults)
    if not isinstance(grid, ParamGrid):
        raise ConfigError(f"grid must be a ParamGrid, was {type(grid).__name__}")
    strat_names = tuple(defaults)
    engine_names = _split_names(grid, strat_names)
    missing = [n for n in strat_names if n not in grid.names]
    if missing:
        grid = grid.cross(ParamGrid.product(**{n: defaults[n] for n in missing}))
    return grid, strat_names, engine_names


def _signal_columns(grid: ParamGrid, strat_names: tuple[str, ...]) -> tuple[ParamGrid, I64Array]:
    """Return (the distinct strategy-parameter rows, each column's row): signals run once each.

    A strategy without parameters has one signal column shared by every column.
    """
    if strat_names:
        uniq, inverse = grid.select(strat_names).unique()
        return uniq, np.asarray(inverse, dtype=np.int64)
    return ParamGrid.product(), np.zeros(grid.n_cols, dtype=np.int64)


def strategy_name(strategy: Any) -> str:
    """Return the name a strategy's messages use (its module or type name)."""
    return str(getattr(strategy, "__name__", type(strategy).__name__))


def strategy_output(strategy: Any, market: Any, grid: ParamGrid) -> Any:
    """Return what ``strategy.signals(market, grid)`` returns; its own error in one line."""
    import traceback

    try:
        return strategy.signals(market, grid)
    except BacktesterError:
        raise
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        raise ConfigError(
            f"strategy {strategy_name(strategy)}: signals(market, grid) raised "
            f"{type(exc).__name__}: {exc}{where}; fix the strategy (run with --debug, or see "
            "this error's __cause__, for the traceback)"
        ) from exc


def call_signals(strategy: Any, market: Market, grid: ParamGrid) -> Signals:
    """Return ``strategy.signals(market, grid)``, checked; a strategy's own error in one line.

    Raises
    ------
    ConfigError
        The strategy raised (a bug in its code: the message names the exception, its file and
        line; ``--debug`` or the ``__cause__`` shows the traceback).
    ShapeError
        It returned something other than a ``Signals`` of ``(n_bars, grid.n_cols)``.
    """
    name = strategy_name(strategy)
    signals = strategy_output(strategy, market, grid)
    if not isinstance(signals, Signals):
        raise ShapeError(
            f"strategy {name}: signals(market, grid) must return a backtester Signals, was "
            f"{type(signals).__name__}; return Signals(long_entries=..., ...)"
        )
    signals.check(market.n_bars, grid.n_cols, source=name)
    return signals


def _first_entry_tier(r: _RulesInputs, notional: float, price: float) -> tuple[float, int, float]:
    """Return (the tier key, the tier index, its maximum leverage) of a first entry's notional.

    The key is the notional, or the size in base units (``notional / price``) for tables
    tiered by size (OKX), under the tier table in force at the first bar.
    """
    from backtester.rules.formulas import tier_index_nb

    t = int(r.table_idx[0])
    n = int(r.n_tiers[t])
    key = notional / price if r.by_size[t] else notional
    k = int(tier_index_nb(key, r.floors[t, :n]))
    return key, k, float(r.maxlev[t, k])


def _warn_never_entered(
    stats: F64Array,
    fparams: F64Array,
    rules: dict[Any, _RulesInputs],
    keys: Sequence[Any],
    market: Market,
) -> None:
    # Columns whose every entry was refused (typically: the first entry's notional
    # position_size x initial_cash x leverage lies in a tier that allows less leverage) show
    # the initial cash and "not liquidated", which reads like survival. Say so, once per run.
    never = np.nonzero((stats[:, Stat.N_TRADES] == 0) & (stats[:, Stat.N_REJECTED] > 0))[0]
    if never.size == 0:
        return
    c = int(never[0])
    lev = float(fparams[FParam.LEVERAGE, c])
    psize = float(fparams[FParam.POSITION_SIZE, c])
    cash = float(fparams[FParam.INITIAL_CASH, c])
    r = rules[keys[c]]
    t = int(r.table_idx[0])
    notional = psize * cash * lev
    _, k, allowed = _first_entry_tier(r, notional, float(market.open[0]))
    if lev > allowed:
        why = (
            f"the first entry's notional position_size x initial_cash x leverage = {psize:g} x "
            f"{cash:,.0f} x {lev:g} = {notional:,.0f} is in tier {k + 1} of {r.table_ids[t]}, "
            f"which allows at most {allowed:g}x"
        )
    else:
        why = (
            "the position would be liquidatable at its own entry price (its initial margin "
            f"1/{lev:g} is not above the maintenance margin rate plus the liquidation-fee term)"
        )
    warnings.warn(
        f"{never.size} of {stats.shape[0]} columns never opened a position: every entry was "
        f"rejected (e.g. column {c}: {why}); their rows show the initial cash and no "
        "liquidation. Lower leverage, position_size or initial_cash (stats()['n_rejected'] "
        "counts the refused entries)",
        BacktesterWarning,
        stacklevel=3,
    )


def _prepare(
    market: Market, grid: ParamGrid, config: RunConfig, engine_names: list[str]
) -> tuple[
    _MarketInputs, dict[str, list[Any]], dict[Any, _RulesInputs], list[Any], F64Array, I64Array
]:
    """Validate the engine settings of every column against the market and encode them."""
    inputs = _market_inputs(market)
    settings = _settings_columns(grid, config, engine_names)
    rules, keys = _build_rules(market, settings)
    _check_leverage(settings, keys, rules, market.symbol)
    if "detail" in settings["intrabar"] and not inputs.has_detail:
        raise ConfigError(
            "intrabar 'detail' needs lower-timeframe bars, market.detail was None; load them "
            "with bt.load_market(..., detail_timeframe='1m') or use intrabar='worst'"
        )
    if "detail" in settings["intrabar"]:
        covered = int(np.count_nonzero(inputs.d_end > inputs.d_start))
        if covered < market.n_bars:
            first, last = market.detail.index[0], market.detail.index[-1]  # type: ignore[union-attr]
            warnings.warn(
                f"intrabar 'detail': the lower-timeframe bars ({first:%Y-%m-%d} -> "
                f"{last:%Y-%m-%d}) cover {covered:,} of the {market.n_bars:,} bars "
                f"({covered / market.n_bars:.0%}); the other bars resolve ambiguous exits with "
                "'worst'. Slice the market to the detail range for detail results throughout",
                BacktesterWarning,
                stacklevel=3,
            )
    warn_suspect_settings({n: settings[n] for n in engine_names})
    fparams, iparams = _encode(settings, rules, keys, engine_names)
    return inputs, settings, rules, keys, fparams, iparams


# bytes a column costs outside the kernel, measured (benchmarks/bench_columns.py, 10^6 columns):
# its stats row and frame, parameter rows, the per-setting value lists, labels and index arrays
_BYTES_PER_COL = 1024


def estimate_memory(n_cols: int, n_bars: int, *, n_signal_cols: int = 0) -> int:
    """Return the bytes a run of ``n_cols`` columns over ``n_bars`` bars needs at its peak.

    Counts the per-column costs (statistics and their frame, parameters, setting values,
    labels: about 1 KiB a column, measured) and the packed strategy signals (one byte per bar
    and signal column); the kernel itself allocates nothing per bar. Equity curves and trade
    records are extra and are asked for per column later.
    """
    return int(n_cols) * _BYTES_PER_COL + int(n_bars) * int(n_signal_cols)


def _check_fits(n_cols: int, n_bars: int, n_signal_cols: int, what: str) -> int:
    need = estimate_memory(n_cols, n_bars, n_signal_cols=n_signal_cols)
    refuse_beyond_memory(need, f"{what} of {n_cols:,} columns x {n_bars:,} bars")
    return need


@dataclass(frozen=True, slots=True)
class RunCheck:
    """What :func:`check_run` found: the run is valid; its size and the limits that apply.

    Attributes
    ----------
    n_cols, n_bars : int
        Columns (grid rows) and bars of the run.
    memory_bytes : int
        Estimated peak memory outside the kernel (:func:`estimate_memory`).
    max_leverage : dict
        ``(exchange, tier_table) -> the highest leverage the tier tables in force allow``.
    """

    n_cols: int
    n_bars: int
    memory_bytes: int
    max_leverage: dict[tuple[str, Any], float]
    #: columns whose first entry (the whole starting wallet's size at the first bar's open,
    #: under the tier table then in force) exceeds its tier's leverage or the last tier's cap:
    #: the engine refuses those entries (``n_rejected``)
    refused_at_entry: I64Array = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: one sentence per refused column kind: "125x on 125,000,000 notional: tier 8 allows 3x"
    refusals: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no column's first entry would be refused."""
        return self.refused_at_entry.size == 0

    def __repr__(self) -> str:
        limits = ", ".join(
            f"{k[0]} {k[1] or 'dated'}: {v:g}x" for k, v in self.max_leverage.items()
        )
        head = "ok" if self.ok else f"{self.refused_at_entry.size:,} column(s) refused at entry"
        text = (
            f"RunCheck({head}: {self.n_cols:,} columns x {self.n_bars:,} bars, about "
            f"{format_bytes(self.memory_bytes)}; leverage limits {limits}"
        )
        if self.refusals:
            text += "; " + "; ".join(self.refusals[:3])
        return text + ")"


def check_run(
    market: Market,
    grid: ParamGrid | None = None,
    *,
    config: RunConfig | None = None,
    strategy: Any = None,
) -> RunCheck:
    """Check a grid and config against a market without running it (cheap; call it first).

    Validates every column exactly as :func:`run_sweep` / :func:`run_entries` would: setting
    names and values, leverage against the tier tables in force over the market's range, a flat
    maintenance rate against leverage, ``intrabar='detail'`` against the market's detail bars,
    and the memory the run needs against what this machine has.

    Parameters
    ----------
    market : Market
    grid : ParamGrid, optional
        Columns (engine settings and, with ``strategy``, its parameters).
    config : RunConfig, optional
        Settings not in the grid.
    strategy : module or object, optional
        With ``PARAMS``: its parameter names are allowed in the grid (their values are the
        strategy's to check, when its signals run).

    Returns
    -------
    RunCheck

    Raises
    ------
    ConfigError
        The first problem found, in one line naming the setting, the value and the fix.
    """
    _check_market(market)
    config = _check_config(config)
    grid = ParamGrid.product() if grid is None else grid
    if not isinstance(grid, ParamGrid):
        raise ConfigError(f"grid must be a ParamGrid, was {type(grid).__name__}")
    strat_names = tuple(_strategy_params(strategy)) if strategy is not None else ()
    engine_names = _split_names(grid, strat_names, allow_strategy=strategy is not None)
    need = _check_fits(grid.n_cols, market.n_bars, 0, "the run")
    _inputs, settings, rules, keys, _fp, _ip = _prepare(market, grid, config, engine_names)
    refused, refusals = _first_entry_refusals(market, settings, rules, keys)
    return RunCheck(
        n_cols=grid.n_cols,
        n_bars=market.n_bars,
        memory_bytes=need,
        max_leverage={k: r.max_leverage for k, r in rules.items()},
        refused_at_entry=refused,
        refusals=refusals,
    )


def _first_entry_refusals(
    market: Market, settings: dict[str, list[Any]], rules: dict[Any, _RulesInputs], keys: list[Any]
) -> tuple[I64Array, tuple[str, ...]]:
    # the tier an entry of the whole starting wallet lands in at the first bar's open: the
    # engine refuses it above that tier's leverage or beyond the last tier's cap
    lev = np.asarray(settings["leverage"], dtype=np.float64)
    size = np.asarray(settings["position_size"], dtype=np.float64)
    cash = np.asarray(settings["initial_cash"], dtype=np.float64)
    price = float(market.open[0])
    out: list[int] = []
    said: dict[str, None] = {}
    for c, key in enumerate(keys):
        r = rules[key]
        t = int(r.table_idx[0])
        value, tier, allowed = _first_entry_tier(r, cash[c] * size[c] * lev[c], price)
        beyond = value > float(r.last_cap[t])
        if lev[c] > allowed or beyond:
            out.append(c)
            amount = f"{value:,.6g} base units" if r.by_size[t] else f"{value:,.0f} notional"
            said[
                f"{lev[c]:g}x on {amount}: "
                + (
                    "beyond the last tier's cap"
                    if beyond
                    else f"tier {tier + 1} allows {allowed:g}x"
                )
                + " (lower initial_cash, position_size or the leverage)"
            ] = None
    return np.asarray(out, dtype=np.int64), tuple(said)


def _check_config(config: Any) -> RunConfig:
    if config is None:
        return RunConfig()
    if not isinstance(config, RunConfig):
        raise ConfigError(
            f"config must be a RunConfig, was {type(config).__name__}; build one with "
            "bt.RunConfig(leverage=10, ...)"
        )
    return config


@overload
def run_sweep(
    market: Market,
    strategy: Any,
    grid: ParamGrid | None = None,
    *,
    config: RunConfig | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    legs: None = None,
) -> SweepResult: ...


@overload
def run_sweep(
    market: MarketSet,
    strategy: Any,
    grid: ParamGrid | None = None,
    *,
    config: RunConfig | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    legs: Mapping[str, float] | None = None,
) -> AccountSweepResult: ...


def run_sweep(
    market: Market | MarketSet,
    strategy: Any,
    grid: ParamGrid | None = None,
    *,
    config: RunConfig | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    legs: Mapping[str, float] | None = None,
) -> SweepResult | AccountSweepResult:
    """Simulate every column of ``grid`` (strategy parameters × engine settings) on ``market``.

    Parameters
    ----------
    market : Market or MarketSet
        Validated bars (``bt.load_market`` or ``Market.from_frames``). A ``MarketSet``
        (``bt.load_markets``) with ``legs`` runs every column as one account of several
        perpetuals in one wallet (``engine.accounts_sweep``): the strategy then receives the
        MarketSet and returns ``{symbol: Signals}``; the result is an ``AccountSweepResult``
        (``stats()`` per column, ``trades()`` with ``leg`` and ``symbol`` columns, ``equity()``).
    strategy : module or object
        Has ``PARAMS`` (default grid) and ``signals(market, grid) -> Signals``.
    grid : ParamGrid, optional
        Columns to run. Names are strategy parameters or ``RunConfig`` fields; strategy
        parameters missing from the grid are crossed with their ``PARAMS`` defaults.
    config : RunConfig, optional
        Engine settings not swept in the grid.
    batch_size : int, optional
        Columns per kernel call (bounds memory; results do not depend on it).
    progress : bool
        Show a progress bar (one tick per batch).
    legs : dict, optional
        With a MarketSet only: ``{symbol: weight}`` (``Σ|weight| <= 1``); leg ``k`` opens on
        its symbol's entry signal when flat with margin ``position_size·|weight|`` of the wallet,
        on the signal's side times the sign of its weight, and closes on its exit signal, its
        stop, its take-profit or a liquidation (isolated or cross, as ``run_account_entries``).

    Returns
    -------
    SweepResult
        ``stats()`` indexed by the grid's labels; ``trades()`` and ``equity()`` on demand
        (``AccountSweepResult`` for a MarketSet).

    Raises
    ------
    ConfigError
        Unknown grid names (with a suggestion), invalid values, leverage above the tier maximum.
    ShapeError
        Strategy signals of the wrong shape.
    DataError
        Markets with NaN or unsorted bars.
    """
    from backtester.marketset import MarketSet
    from backtester.results import SweepResult

    if isinstance(market, MarketSet):
        from backtester.engine.accounts_sweep import run_account_sweep

        return run_account_sweep(market, strategy, grid, legs=legs, config=config)
    if legs is not None:
        raise ConfigError(
            "legs= needs a MarketSet (an account of several symbols), was given one Market; "
            "pass bt.load_markets([...]) or drop legs"
        )
    t0 = time.perf_counter()
    _check_market(market)
    # --- coin-margined (inverse) market: simulate its linear twin on X = 1/P (engine/inverse.py);
    # the strategy still sees the market's own prices
    coin_margined = market.contract_type == "inverse"
    if coin_margined:
        from backtester.engine import inverse as inv

        original, market = market, inv.linear_twin(market)
    # ---
    config = _check_config(config)
    grid, strat_names, engine_names = _strategy_grid(strategy, grid)
    _check_fits(grid.n_cols, market.n_bars, 0, "run_sweep")
    inputs, _settings, rules, keys, fparams, iparams = _prepare(market, grid, config, engine_names)

    uniq, inverse = _signal_columns(grid, strat_names)
    signals = call_signals(strategy, original if coin_margined else market, uniq)
    # --- inverse: the twin trades the opposite sides, with its own stop fractions
    if coin_margined:
        signals, fparams = inv.twin_signals(signals, fparams, inverse)
    # ---
    n = grid.n_cols
    sim = (inv.TwinSimulation if coin_margined else _Simulation)(
        market,
        inputs,
        rules,
        keys,
        fparams,
        iparams,
        signals.packed(),
        np.ascontiguousarray(inverse, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        np.full(n, market.n_bars, dtype=np.int64),
        np.zeros(n, dtype=np.int64),
        returns=True,
    )
    stats, _, _ = sim.run(batch_size=batch_size, progress=progress)
    _warn_never_entered(stats, fparams, rules, keys, market)
    if coin_margined:  # results show the inverse market (the kernel inputs stay the twin's)
        sim.market = original
    log.info(
        "run_sweep %s %s: %d bars x %d columns in %.2f s",
        market.symbol,
        market.timeframe,
        market.n_bars,
        n,
        time.perf_counter() - t0,
    )
    return SweepResult(
        sim=sim, labels=grid.labels, grid=grid, config=config, raw=stats, batch_size=batch_size
    )


def run_strategy_windows(
    market: Market,
    strategy: Any,
    grid: ParamGrid,
    *,
    starts: Any,
    ends: Any,
    config: RunConfig | None = None,
    batch_size: int | None = None,
) -> F64Array:
    """Run every grid column from each window ``[starts[k], ends[k])`` with a fresh account.

    One kernel call for all (column, window) pairs: the strategy's signals are computed once on
    the whole market (strategies have no look-ahead) and each pair is simulated only over its
    window, exactly as ``run_sweep`` on ``market`` cut to that window would (strategy-mode
    survival studies). Windows need at least two bars.

    Returns
    -------
    ndarray
        Raw statistics ``(grid.n_cols, n_windows, Stat.N)``; bar numbers (first liquidation,
        ruin, first exit) are bars of ``market``.
    """
    _check_market(market)
    config = _check_config(config)
    _strategy_params(strategy)  # a bad strategy is named before the windows
    if not isinstance(grid, ParamGrid):
        raise ConfigError(f"grid must be a ParamGrid, was {type(grid).__name__}")
    lo = np.asarray(starts, dtype=np.int64)
    hi = np.asarray(ends, dtype=np.int64)
    if lo.ndim != 1 or lo.shape != hi.shape:
        raise ShapeError(f"starts and ends must be 1-D of one length, were {lo.shape}, {hi.shape}")
    if lo.size and (lo.min() < 0 or hi.max() > market.n_bars or (hi - lo).min() < 2):
        raise ConfigError(
            f"windows must lie in [0, {market.n_bars}] with at least 2 bars each; cut them"
        )
    grid, strat_names, engine_names = _strategy_grid(strategy, grid)
    n_s, n_w = grid.n_cols, lo.shape[0]
    _check_fits(n_s * n_w, market.n_bars, 0, "run_strategy_windows")
    inputs, _settings, rules, keys, fparams, iparams = _prepare(market, grid, config, engine_names)
    uniq, inverse = _signal_columns(grid, strat_names)
    signals = call_signals(strategy, market, uniq)
    rep = np.repeat(np.arange(n_s), n_w)
    sim = _Simulation(
        market,
        inputs,
        rules,
        _ColumnKeys.repeat(keys, rep),
        np.ascontiguousarray(fparams[:, rep]),
        np.ascontiguousarray(iparams[:, rep]),
        signals.packed(),
        np.ascontiguousarray(np.asarray(inverse, dtype=np.int64)[rep]),
        np.tile(lo, n_s),
        np.tile(hi, n_s),
        np.zeros(n_s * n_w, dtype=np.int64),
    )
    stats, _, _ = sim.run(batch_size=batch_size)
    _warn_never_entered(stats, sim.fparams, rules, sim.keys, market)
    return stats.reshape(n_s, n_w, Stat.N)


def run_entries(
    market: Market,
    settings: ParamGrid,
    *,
    entry_idx: Any,
    horizon_bars: int,
    config: RunConfig | None = None,
    batch_size: int | None = None,
    checkpoints: Any = None,
) -> EntryOutcomes:
    """Open every setting's position at the open of each bar in ``entry_idx``; follow it.

    Each (setting, entry) is one column simulated only over ``[entry, entry + horizon_bars)``
    (cut at the end of the data). No strategy signals: the position ends by liquidation, stop,
    take-profit, ruin, or is censored at the horizon / end of data.

    Parameters
    ----------
    market : Market
    settings : ParamGrid
        Engine settings per setting row (``RunConfig`` field names, including ``side``).
    entry_idx : array of int
        Bar numbers of the entries (each in ``[0, n_bars)``).
    horizon_bars : int
        Bars followed after each entry (>= 1).
    config : RunConfig, optional
        Settings not in the grid.
    checkpoints : sequence of int, optional
        Bar counts after entry (increasing, each >= 1) at which to record every column's
        equity: ``EntryOutcomes.checkpoint_equity[s, k, j]`` is the equity at the mark close
        ``checkpoints[j]`` bars after entry ``k`` (at the window's last bar when the data or the
        horizon ends first), exactly the ``final_equity`` of a run with
        ``horizon_bars=checkpoints[j]``: one run instead of one per checkpoint (equity fans).

    Returns
    -------
    EntryOutcomes
        ``(n_settings, n_entries)`` outcome arrays.
    """
    from backtester.results import EntryOutcomes

    _check_market(market)
    # --- coin-margined (inverse) market: simulate its linear twin on X = 1/P (engine/inverse.py)
    inverse = market.contract_type == "inverse"
    if inverse:
        from backtester.engine import inverse as inv

        market = inv.linear_twin(market)
    # ---
    config = _check_config(config)
    if not isinstance(settings, ParamGrid):
        raise ConfigError(f"settings must be a ParamGrid, was {type(settings).__name__}")
    engine_names = _split_names(settings, (), allow_strategy=False)
    if (
        isinstance(horizon_bars, bool)
        or not isinstance(horizon_bars, int | np.integer)
        or (horizon_bars < 1)
    ):
        raise ConfigError(f"horizon_bars must be an int >= 1, was {horizon_bars!r}")
    entries = np.asarray(entry_idx)
    if entries.ndim != 1 or entries.dtype.kind not in "iu":
        raise ShapeError(
            f"entry_idx must be a 1-D array of int bar numbers, was shape {entries.shape} "
            f"dtype {entries.dtype}"
        )
    entries = entries.astype(np.int64)
    n_bars = market.n_bars
    if entries.size and (entries.min() < 0 or entries.max() >= n_bars):
        bad = int(entries[(entries < 0) | (entries >= n_bars)][0])
        raise ConfigError(f"entry_idx values must be in [0, {n_bars - 1}], was {bad}")
    ck = _check_checkpoints(checkpoints)
    _check_fits(settings.n_cols * entries.shape[0], int(horizon_bars), 0, "run_entries")
    inputs, set_cols, rules, keys, fp_s, ip_s = _prepare(market, settings, config, engine_names)
    n_s, n_e = settings.n_cols, entries.shape[0]
    rep = np.repeat(np.arange(n_s), n_e)
    side = _codes("side", set_cols["side"])
    # --- inverse: the twin's stop fractions by side, then the twin's (opposite) side
    if inverse:
        fp_s, side = inv.twin_params(fp_s, side), -side
    # ---
    start = np.tile(entries, n_s)
    sim = _Simulation(
        market,
        inputs,
        rules,
        _ColumnKeys.repeat(keys, rep),
        np.ascontiguousarray(fp_s[:, rep]),
        np.ascontiguousarray(ip_s[:, rep]),
        np.zeros((1, n_bars), dtype=np.uint8),
        np.full(n_s * n_e, -1, dtype=np.int64),
        start,
        np.minimum(start + int(horizon_bars), n_bars),
        side[rep],
    )
    t0 = time.perf_counter()
    ck_out = np.empty((n_s * n_e, ck.shape[0]), dtype=np.float64)
    stats, _, _ = sim.run(batch_size=batch_size or 65536, checkpoints=ck, out_checkpoints=ck_out)
    log.info(
        "run_entries %s %s: %d settings x %d entries x <= %d bars in %.2f s",
        market.symbol,
        market.timeframe,
        n_s,
        n_e,
        horizon_bars,
        time.perf_counter() - t0,
    )
    shape = (n_s, n_e)
    exit_idx = stats[:, Stat.FIRST_EXIT_IDX].astype(np.int64).reshape(shape)
    reason = stats[:, Stat.FIRST_EXIT_REASON].astype(np.int64).reshape(shape)
    rejected = (stats[:, Stat.N_REJECTED] > 0).reshape(shape)
    reason[rejected] = ExitReason.NONE
    return EntryOutcomes(
        labels=settings.labels,
        entry_idx=entries,
        horizon_bars=int(horizon_bars),
        exit_idx=exit_idx,
        reason=reason,
        final_equity=stats[:, Stat.FINAL_EQUITY].reshape(shape),
        min_equity=stats[:, Stat.MIN_EQUITY].reshape(shape),
        insurance_draw=stats[:, Stat.INSURANCE_DRAW].reshape(shape),
        funding_paid=stats[:, Stat.FUNDING_PAID].reshape(shape),
        fees_paid=stats[:, Stat.FEES_PAID].reshape(shape),
        rejected=rejected,
        ambiguous_bars=stats[:, Stat.AMBIGUOUS_BARS].reshape(shape).sum(axis=1).astype(np.int64),
        ts_ns=market.ts_ns,
        rules=sim.rules_used(),
        checkpoints=ck,
        checkpoint_equity=ck_out.reshape(n_s, n_e, ck.shape[0]),
    )


def _check_checkpoints(checkpoints: Any) -> I64Array:
    # run_entries' checkpoints: increasing whole bar counts >= 1 (none: an empty array)
    if checkpoints is None:
        return np.zeros(0, dtype=np.int64)
    ck = np.asarray(checkpoints)
    if ck.ndim != 1 or (ck.size and ck.dtype.kind not in "iu"):
        raise ConfigError(
            f"checkpoints must be a 1-D sequence of int bar counts, was {checkpoints!r}"
        )
    ck = ck.astype(np.int64)
    if ck.size and (ck.min() < 1 or np.any(np.diff(ck) <= 0)):
        raise ConfigError(
            f"checkpoints must be increasing bar counts >= 1, was {checkpoints!r}; sort them "
            "and drop duplicates and zeros"
        )
    return np.ascontiguousarray(ck)
