"""Exchange margin rules: profiles, dated tier tables and liquidation formulas (layer: rules).

Public names (re-exported by ``backtester``): ``ExchangeRules``, ``exchange_rules``,
``liquidation_price``, ``bankruptcy_price``. Also importable from here: ``rules_timeline`` (used by
the engine to apply the table in force on each bar's date), ``liquidation_quote`` (everything the
``backtester liq-price`` calculator prints) and ``LiquidationQuote``.

The numba kernels in ``rules/formulas.py`` are imported only when a price is computed, so
``exchange_rules`` stays light. Sections refer to docs/reference/exchange-rules.md.

Date policy: ``exchange_rules(..., at=date)`` returns the latest table whose ``effective_from`` is
<= ``at`` (the table in force, or, past its last confirmed date, the nearest earlier one; ``.note``
says which and why). A date before the earliest known table raises ConfigError naming the earliest
date. ``rules_timeline(start, end)`` is for backtests: when ``start`` precedes the earliest table,
that table is extended backwards to ``start`` and its note says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd

from backtester._typing import F64Array, contract_type_of, default_contract_spec
from backtester.engine.enums import Convention
from backtester.errors import (
    BacktesterWarning,
    ConfigError,
    check_in_range,
    check_one_of,
    check_positive,
)
from backtester.rules.profiles import fee_change_dates, get_profile, liquidation_fee_rate
from backtester.rules.tables import TierTable, tables_for, unknown_symbol_message

__all__ = [
    "DEFAULT_SYMBOL",
    "ExchangeRules",
    "LiquidationQuote",
    "bankruptcy_price",
    "exchange_rules",
    "inverse_contract",
    "liquidation_price",
    "liquidation_quote",
    "round_to_tick",
    "rules_timeline",
]

DEFAULT_SYMBOL = "BTC/USDT:USDT"

DateLike: TypeAlias = str | date | datetime | pd.Timestamp


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeRules:
    """The margin rules of one exchange and symbol in force from ``effective_from``.

    Tier arrays are read-only, C-contiguous float64 of shape ``(n_tiers,)``: ``floors``/``caps``
    in quote currency (``tier_by_size`` False) or base units (True), ``mmr`` fractions,
    ``maint_amount`` quote currency (Binance ``cum`` / Bybit MM deduction; 0 for OKX),
    ``max_leverage``. ``convention`` is the code used by ``rules.formulas`` (0 Binance, 1 OKX,
    2 Bybit). Fees and ``liquidation_fee_rate`` are fractions of notional.
    """

    exchange: str
    symbol: str
    convention: int
    table_id: str
    effective_from: pd.Timestamp
    source: str
    note: str
    confidence: str
    floors: F64Array
    caps: F64Array
    mmr: F64Array
    maint_amount: F64Array
    max_leverage: F64Array
    tier_by_size: bool
    liquidation_fee_rate: float
    close_at: Literal["liquidation", "bankruptcy"]
    funding_interval_h: float
    taker_fee: float
    maker_fee: float

    @property
    def n_tiers(self) -> int:
        """Number of tiers in the table."""
        return int(self.floors.shape[0])

    def tier_index(self, notional: float, size: float) -> int:
        """Return the 0-based tier of a position (by ``size`` if ``tier_by_size`` else notional).

        Caps are inclusive, ``floor < value <= cap``: a cap is the largest position its tier
        allows (Binance ``notionalCap``, Bybit risk limit, OKX ``maxSz``), so a value exactly on
        a floor stays in the tier below (as ``rules.formulas.tier_index_nb``).
        """
        key = size if self.tier_by_size else notional
        return max(int(np.searchsorted(self.floors, key, side="left") - 1), 0)

    def max_leverage_for(self, notional: float, size: float) -> float:
        """Return the maximum leverage allowed for a position of this notional (or size).

        0.0 past the last tier's cap: the exchange refuses such a position at any leverage (as
        ``rules.formulas.max_leverage_nb``, which the engine uses to refuse entries).
        """
        key = size if self.tier_by_size else notional
        if key > float(self.caps[-1]):
            return 0.0
        return float(self.max_leverage[self.tier_index(notional, size)])

    def maint_margin(self, notional: float, size: float) -> float:
        """Return the maintenance margin (quote) of a position valued at ``notional``.

        Pass the notional at mark for Binance and OKX, at entry for Bybit (§1.1, §2.2, §3.3).
        """
        k = self.tier_index(notional, size)
        amount = 0.0 if self.convention == Convention.OKX else float(self.maint_amount[k])
        return float(notional * self.mmr[k]) - amount

    def to_frame(self) -> pd.DataFrame:
        """Return the tier table as a DataFrame (tiers numbered from 1)."""
        basis = "size" if self.tier_by_size else "notional"
        return pd.DataFrame(
            {
                "tier": np.arange(1, self.n_tiers + 1),
                "floor": self.floors,
                "cap": self.caps,
                "max_leverage": self.max_leverage,
                "mmr": self.mmr,
                "maint_amount": self.maint_amount,
                "basis": basis,
            }
        )


# ---------------------------------------------------------------------------------------------
# table selection


def _timestamp(value: DateLike, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name} must be a date such as '2021-05-19', was {value!r}") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise ConfigError(f"{name} must be a date such as '2021-05-19', was {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _tables(exchange: str, symbol: str) -> list[TierTable]:
    get_profile(exchange)
    if not isinstance(symbol, str):
        raise ConfigError(f"symbol must be a ccxt symbol such as 'BTC/USDT:USDT', was {symbol!r}")
    tables = tables_for(exchange, symbol)
    if not tables:
        raise ConfigError(unknown_symbol_message(exchange, symbol))
    return tables


def _build(
    table: TierTable,
    *,
    note: str,
    at: pd.Timestamp | None,
    effective_from: pd.Timestamp | None = None,
) -> ExchangeRules:
    profile = get_profile(table.exchange)
    fee_rate, fee_note = liquidation_fee_rate(table.exchange, table.symbol, at)
    return ExchangeRules(
        exchange=table.exchange,
        symbol=table.symbol,
        convention=profile.convention,
        table_id=table.table_id,
        effective_from=table.effective_from if effective_from is None else effective_from,
        source=table.source,
        note=f"{note}; {fee_note}",
        confidence=table.confidence,
        floors=table.floors,
        caps=table.caps,
        mmr=table.mmr,
        maint_amount=table.maint_amount,
        max_leverage=table.max_leverage,
        tier_by_size=table.basis == "size",
        liquidation_fee_rate=fee_rate,
        close_at=profile.close_at,
        funding_interval_h=profile.funding_interval_h,
        taker_fee=profile.taker_fee,
        maker_fee=profile.maker_fee,
    )


def _describe(tables: list[TierTable], k: int, at: pd.Timestamp | None) -> str:
    table = tables[k]
    nxt = tables[k + 1].effective_from if k + 1 < len(tables) else None
    span = f"from {table.effective_from:%Y-%m-%d}" + (f" until {nxt:%Y-%m-%d}" if nxt else "")
    head = f"table {table.table_id} [{table.confidence}]"
    if at is None:
        return f"{head}: the latest known table (in force {span}); no date given"
    confirmed = table.confirmed_until
    if confirmed is not None and at > confirmed:
        return (
            f"{head}: in force {span}; last confirmed {confirmed:%Y-%m-%d}, so for "
            f"{at:%Y-%m-%d} it is the nearest earlier table"
        )
    if confirmed is None and nxt is None:
        return f"{head}: the latest known table (in force {span}), used as the nearest for {at:%Y-%m-%d}"
    return f"{head}: in force {span}, which covers {at:%Y-%m-%d}"


@dataclass(frozen=True, slots=True)
class _Names:
    """How error messages name the inputs: the API's arguments, or the CLI's options."""

    entry_price: str = "entry_price"
    size: str = "size"
    leverage: str = "leverage"
    margin: str = "margin"
    wallet_balance: str = "wallet_balance"
    other_maint_margin: str = "other_maint_margin"
    other_unrealized_pnl: str = "other_unrealized_pnl"
    margin_mode: str = "margin_mode"
    taker_fee: str = "taker_fee"
    at: str = "at"
    contract_size: str = "contract_size"
    # the fix for a date before the earliest table; {first} is that table's date
    at_fix: str = "use rules_timeline() to extend the earliest table backwards for a backtest"


_API_NAMES = _Names()


def _rules_at(
    exchange: str, symbol: str, at: DateLike | None, names: _Names = _API_NAMES
) -> ExchangeRules:
    tables = _tables(exchange, symbol)
    if at is None:
        return _build(tables[-1], note=_describe(tables, len(tables) - 1, None), at=None)
    when = _timestamp(at, names.at)
    first = tables[0].effective_from
    if when < first:
        day = f"{first:%Y-%m-%d}" if first == first.normalize() else f"{first:%Y-%m-%d %H:%M}"
        raise ConfigError(
            f"{names.at} {when:%Y-%m-%d %H:%M} UTC is before the earliest {exchange} {symbol} "
            f"tier table ({tables[0].table_id}); allowed range: {names.at} >= "
            f"{first:%Y-%m-%d %H:%M} UTC; {names.at_fix.format(first=day)}"
        )
    starts = [t.effective_from for t in tables]
    k = int(np.searchsorted(np.array([s.value for s in starts]), when.value, side="right") - 1)
    return _build(tables[k], note=_describe(tables, k, when), at=when)


def exchange_rules(
    exchange: str, symbol: str = DEFAULT_SYMBOL, at: DateLike | None = None
) -> ExchangeRules:
    """Return the margin rules of ``exchange``/``symbol`` in force at ``at`` (UTC).

    Parameters
    ----------
    exchange : {"binanceusdm", "okx", "bybit"}
    symbol : str
        ccxt symbol, e.g. ``"BTC/USDT:USDT"``.
    at : date-like or None
        Date of interest; naive values are UTC. None returns the latest known table.

    Returns
    -------
    ExchangeRules
        ``.table_id`` and ``.note`` say which table was used and why.

    Raises
    ------
    ConfigError
        Unknown exchange or symbol, an unparsable date, or a date before the earliest table.

    Examples
    --------
    >>> r = exchange_rules("binanceusdm", "BTC/USDT:USDT", at="2021-05-19")
    >>> r.table_id
    'binanceusdm/BTC_USDT_USDT/2021-03-18'
    """
    return _rules_at(exchange, symbol, at)


def rules_timeline(
    exchange: str, symbol: str, start: DateLike, end: DateLike
) -> list[ExchangeRules]:
    """Return the rules in force over ``[start, end]``, sorted by ``effective_from``.

    Apply ``timeline[j]`` to bars with ``timeline[j].effective_from <= t <
    timeline[j + 1].effective_from``. The first element starts at or before ``start``: if
    ``start`` precedes the earliest known table, that table is extended backwards to ``start``
    (``effective_from == start``) and its note says so. A new element also starts where the
    liquidation-fee rate changes inside a table's span.
    """
    tables = _tables(exchange, symbol)
    t0 = _timestamp(start, "start")
    t1 = _timestamp(end, "end")
    if t1 < t0:
        raise ConfigError(f"end must not precede start ({t0:%Y-%m-%d}), was {t1:%Y-%m-%d}")
    out: list[ExchangeRules] = []
    for k, table in enumerate(tables):
        nxt = tables[k + 1].effective_from if k + 1 < len(tables) else None
        if (k > 0 and table.effective_from > t1) or (nxt is not None and nxt <= t0):
            continue
        seg_start = table.effective_from
        note = _describe(tables, k, max(t0, seg_start))
        if k == 0 and t0 < seg_start:
            note += (
                f"; extended backwards from {seg_start:%Y-%m-%d} to {t0:%Y-%m-%d} because no "
                "earlier table is known"
            )
            seg_start = t0
        rule = _build(table, note=note, at=max(seg_start, t0), effective_from=seg_start)
        out.append(rule)
        seg_end = t1 if nxt is None else min(nxt, t1)
        for change in fee_change_dates(exchange):
            if max(seg_start, t0) < change <= seg_end and (nxt is None or change < nxt):
                out.append(
                    _build(
                        table,
                        note=_describe(tables, k, change) + "; liquidation fee changed",
                        at=change,
                        effective_from=change,
                    )
                )
    return out


# ---------------------------------------------------------------------------------------------
# liquidation and bankruptcy prices


@dataclass(frozen=True, slots=True, kw_only=True)
class LiquidationQuote:
    """Everything the liquidation calculator reports for one position (quote currency, %)."""

    exchange: str
    symbol: str
    side: Literal["long", "short"]
    margin_mode: Literal["isolated", "cross"]
    entry_price: float
    size: float
    notional: float
    leverage: float
    margin: float
    liquidation_price: float
    bankruptcy_price: float
    maint_margin: float
    mmr: float
    maint_amount: float
    tier: int
    table_id: str
    max_leverage: float
    distance_pct: float
    liquidation_fee_rate: float
    close_at: str
    note: str
    # coin-margined (inverse) symbols (§8): size is in contracts of contract_size USD, margin,
    # notional, maintenance amounts in coin; the two prices are rounded to price_tick the
    # exchange's way, the *_exact fields are the formula's value (linear: the same, tick 0)
    contract_type: Literal["linear", "inverse"] = "linear"
    contract_size: float = 1.0
    price_tick: float = 0.0
    liquidation_price_exact: float = 0.0
    bankruptcy_price_exact: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Return the quote as a JSON-ready dict."""
        return {name: getattr(self, name) for name in LiquidationQuote.__dataclass_fields__}


def _finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, was {value!r}")
    return float(value)


# The largest notional, price or account amount (quote) the calculator takes: well above any
# real position, far below where float products overflow or prices print with 300 digits.
_MAX_QUOTE = 1e15


def _amount(value: float, name: str, *, signed: bool = False) -> float:
    number = _finite(value, name)
    if signed and abs(number) > _MAX_QUOTE:
        raise ConfigError(
            f"{name} must be in [-{_MAX_QUOTE:g}, {_MAX_QUOTE:g}] quote, was {number:g}; "
            "check its units (quote currency)"
        )
    if not signed and number > _MAX_QUOTE:
        raise ConfigError(
            f"{name} must be <= {_MAX_QUOTE:g} quote, was {number:g}; check its units "
            "(quote currency)"
        )
    return number


def _check_scale(ep: float, qty: float, names: _Names) -> None:
    notional = ep * qty
    if not math.isfinite(notional) or notional > _MAX_QUOTE:
        raise ConfigError(
            f"{names.entry_price} × {names.size} (the notional) must be <= {_MAX_QUOTE:g} quote, "
            f"was {notional:g}; check the units of {names.entry_price} (quote per base unit) and "
            f"{names.size} (base units)"
        )
    if ep > _MAX_QUOTE:
        raise ConfigError(
            f"{names.entry_price} must be <= {_MAX_QUOTE:g} (quote per base unit), was {ep:g}; "
            "check its units"
        )


def _check_leverage_and_margin(notional: float, lev: float, margin: float, names: _Names) -> None:
    # Both given: they describe the same margin or the call is contradictory (before, margin
    # silently won, e.g. 10x with 5,000 on 20,000 was priced at 4x).
    initial = notional / lev
    if abs(margin - initial) <= 1e-9 * initial:
        return
    raise ConfigError(
        f"{names.leverage} {lev:,.8g} and {names.margin} {margin:,.8g} disagree: the margin of a "
        f"{notional:,.8g} notional at leverage {lev:g} is {initial:,.8g} ({names.margin} "
        f"{margin:,.8g} is leverage {notional / margin:.6g}); give one of them: {names.leverage} "
        f"for a new position, or {names.margin} for a position's current margin (extra margin "
        "included)"
    )


def _check_wallet_opens(
    notional: float,
    ep: float,
    lev: float,
    wallet: float,
    max_lev: float,
    names: _Names,
) -> None:
    # With leverage given, the cross position is being opened: the wallet must hold its initial
    # margin (a necessary condition; the other positions' margin is not known here).
    initial = notional / lev
    if wallet >= initial * (1 - 1e-9):
        return
    need_lev = notional / wallet
    above = f", above the maximum {max_lev:g} here" if need_lev > max_lev else ""
    raise ConfigError(
        f"{names.wallet_balance} {wallet:,.8g} cannot open a {notional:,.8g} notional at "
        f"{names.leverage} {lev:g} ({initial:,.8g} initial margin needed); give a larger wallet "
        f"({names.wallet_balance} >= {initial:,.8g}), a smaller size ({names.size} <= "
        f"{wallet * lev / ep:.8g}) or a higher leverage ({names.leverage} >= {need_lev:.6g}"
        f"{above})"
    )


def _check_within_table(
    rules: ExchangeRules, qty: float, ep: float, contract_size: float = 0.0
) -> None:
    # A position past the last tier's cap cannot be opened on the exchange, and the table says
    # nothing about its maintenance margin: refuse rather than extrapolate the last tier.
    # ``contract_size`` > 0: an inverse position's X-twin (qty = face value, ep = 1/price).
    cap = float(rules.caps[-1])
    if contract_size > 0.0 and qty * ep > cap and not rules.tier_by_size:
        settle = rules.symbol.partition(":")[2]
        raise ConfigError(
            f"the coin value size × contract_size / entry_price must be <= {cap:,.8g} {settle} "
            f"(the cap of the last tier of {rules.table_id}), was {qty * ep:,.8g}; lower size to "
            f"at most {cap / ep / contract_size:.8g} contracts, or pass mmr= for a what-if"
        )
    if rules.tier_by_size and qty > cap:
        raise ConfigError(
            f"size must be <= {cap:g} (the cap of the last tier of {rules.table_id}, base "
            f"units), was {qty:g}; lower size, or pass mmr= for a what-if"
        )
    if not rules.tier_by_size and qty * ep > cap:
        raise ConfigError(
            f"notional size × entry_price must be <= {cap:,.0f} (the cap of the last tier of "
            f"{rules.table_id}), was {qty * ep:,.2f}; lower size to at most {cap / ep:.8g}, or "
            "pass mmr= for a what-if"
        )


def _under_maintenance_at_entry(
    conv: int,
    mode: str,
    fresh: bool,
    ep: float,
    qty: float,
    lp: float,
    margin_value: float,
    other_mm: float,
    other_upnl: float,
    floors: F64Array,
    mmr_arr: F64Array,
    amount_arr: F64Array,
    tier_by_size: bool,
    override: float,
    fee_term: float,
    inverse: bool = False,
) -> str:
    # Margin balance at entry <= MM (+ OKX fee term) at entry, so the liquidation price lies on
    # the profitable side of entry. A fresh isolated position (margin = notional/leverage) cannot
    # be opened like that: raise. An explicit isolated margin or a cross wallet may describe a
    # position already in profit whose margin shrank (funding, other positions' losses): the price
    # is still right, but the caller is warned; the returned text goes into the quote's note.
    from backtester.rules import formulas as fx

    notional = qty * ep
    mm = float(
        fx.maint_margin_nb(conv, notional, qty, floors, mmr_arr, amount_arr, tier_by_size, override)
    )
    if math.isnan(override):
        rate = float(mmr_arr[fx.tier_index_nb(qty if tier_by_size else notional, floors)])
    else:
        rate = override
    need = mm + notional * fee_term
    what = f"maintenance margin at entry {need:.8g} (mmr {rate:.4%}" + (
        f" + liquidation fee {fee_term:.4%})" if fee_term else ")"
    )
    where = "above" if lp >= ep else "below"
    if inverse:  # an inverse position's X-twin: say it in prices (P = 1/X, above <-> below)
        where = "below" if where == "above" else "above"
        lp = 1.0 / lp if lp > 0.0 else math.inf
    if mode == "isolated":
        head = f"margin {margin_value:.8g} (leverage {notional / margin_value:.6g})"
        fix = f"lower leverage below {notional / need:.6g}, or the mmr"
        if fresh:
            raise ConfigError(
                f"{head} must exceed the {what}, or the position is liquidated as it opens; {fix}"
            )
    else:
        balance = margin_value - other_mm + other_upnl
        head = f"wallet_balance - other_maint_margin + other_unrealized_pnl = {balance:.8g}"
        what = what.replace("maintenance", "position's maintenance", 1)
        fix = f"raise wallet_balance above {margin_value + need - balance:.8g}"
    return (
        f"{head} is at or below the {what}: liquidatable at the entry price; the position "
        f"survives only while the mark stays {where} the liquidation price {lp:.8g} (for a new "
        f"position: {fix})"
    )


def _tables_exist(exchange: str, symbol: str) -> bool:
    get_profile(exchange)
    return bool(tables_for(exchange, symbol))


def _flat_rules(exchange: str, symbol: str) -> ExchangeRules:
    # one open tier whose rate the caller's mmr replaces; leverage bounded by RunConfig's range
    from backtester.config import SETTINGS

    profile = get_profile(exchange)
    fee_rate, fee_note = liquidation_fee_rate(exchange, symbol, None)
    top = float(SETTINGS["leverage"].high)
    one = np.zeros(1)
    one.setflags(write=False)
    return ExchangeRules(
        exchange=exchange,
        symbol=symbol,
        convention=profile.convention,
        table_id="flat",
        effective_from=pd.Timestamp(0, tz="UTC"),
        source="mmr given by the caller",
        note=f"no tier table for {symbol} on {exchange}: the flat mmr given is used; {fee_note}",
        confidence="A",
        floors=one,
        caps=np.full(1, np.inf),
        mmr=one,
        maint_amount=one,
        max_leverage=np.full(1, top),
        tier_by_size=False,
        liquidation_fee_rate=fee_rate,
        close_at=profile.close_at,
        funding_interval_h=profile.funding_interval_h,
        taker_fee=profile.taker_fee,
        maker_fee=profile.maker_fee,
    )


# ---------------------------------------------------------------------------------------------
# coin-margined (inverse) contracts, §8


def inverse_contract(
    exchange: str, symbol: str, contract_size: float | None = None
) -> tuple[float, float]:
    """Return ``(contract size in USD, price tick)`` of a coin-margined symbol (§8.1).

    ``contract_size`` overrides the documented size (it must be > 0). The tick is 0.0 (prices
    are not rounded) for a symbol whose tick is not documented here.
    """
    size, tick = default_contract_spec(exchange, symbol)
    if contract_size is not None:
        size = check_positive(
            contract_size, "contract_size", hint="the USD face value of one contract, e.g. 100"
        )
    return float(size), tick


def round_to_tick(price: float, tick: float, exchange: str, side: str) -> float:
    """Round a liquidation or bankruptcy price to ``tick`` the way ``exchange`` shows it (§8.4).

    Bybit rounds toward the entry (a long's prices up, a short's down: the position is closed no
    later than the exact price); Binance and OKX to the nearest tick. ``tick`` 0 (unknown), 0.0
    and inf are returned unchanged.
    """
    if tick <= 0.0 or not math.isfinite(price) or price <= 0.0:
        return price
    steps = price / tick
    # a price within 1e-9 ticks of a multiple is that multiple (binary fractions of 0.1)
    near = round(steps)
    if abs(steps - near) < 1e-9:
        steps = near
    if exchange == "bybit":
        steps = math.ceil(steps) if side == "long" else math.floor(steps)
    else:
        steps = math.floor(steps + 0.5)
    return float(round(steps * tick, 10))


def liquidation_quote(
    exchange: str,
    side: str,
    entry_price: float,
    size: float,
    *,
    margin_mode: str = "isolated",
    leverage: float | None = None,
    margin: float | None = None,
    wallet_balance: float | None = None,
    other_maint_margin: float = 0.0,
    other_unrealized_pnl: float = 0.0,
    mmr: float | None = None,
    maint_amount: float | None = None,
    taker_fee: float | None = None,
    symbol: str | None = None,
    at: DateLike | None = None,
    contract_size: float | None = None,
) -> LiquidationQuote:
    """Return the liquidation and bankruptcy prices of one position with the details used.

    Takes the arguments of :func:`liquidation_price`; see there.
    """
    return _quote(
        exchange,
        side,
        entry_price,
        size,
        margin_mode=margin_mode,
        leverage=leverage,
        margin=margin,
        wallet_balance=wallet_balance,
        other_maint_margin=other_maint_margin,
        other_unrealized_pnl=other_unrealized_pnl,
        mmr=mmr,
        maint_amount=maint_amount,
        taker_fee=taker_fee,
        symbol=symbol,
        at=at,
        contract_size=contract_size,
    )


def _quote(
    exchange: str,
    side: str,
    entry_price: float,
    size: float,
    *,
    margin_mode: str = "isolated",
    leverage: float | None = None,
    margin: float | None = None,
    wallet_balance: float | None = None,
    other_maint_margin: float = 0.0,
    other_unrealized_pnl: float = 0.0,
    mmr: float | None = None,
    maint_amount: float | None = None,
    taker_fee: float | None = None,
    symbol: str | None = None,
    at: DateLike | None = None,
    contract_size: float | None = None,
    names: _Names = _API_NAMES,
    need_mm: bool = True,
) -> LiquidationQuote:
    # liquidation_quote with the inputs named as ``names`` says (the CLI passes its options)
    from backtester.config import check_setting
    from backtester.rules import formulas as fx

    sym = DEFAULT_SYMBOL if symbol is None else symbol
    flat_ok = isinstance(sym, str) and (
        mmr is not None or (not need_mm and contract_type_of(sym) == "inverse")
    )
    if flat_ok and not _tables_exist(exchange, sym):
        # a flat rate needs no tier table (as a run's maint_margin_rate): one open-ended tier; a
        # coin-margined bankruptcy price needs none at all
        rules = _flat_rules(exchange, sym)
    else:
        rules = _rules_at(exchange, sym, at, names)
    side_name = check_one_of(side, "side", ("long", "short"))
    # the RunConfig checks, so liq-price and a run accept (and word) the same values
    mode = check_setting("margin_mode", margin_mode, where=names.margin_mode)
    ep = check_positive(entry_price, names.entry_price)
    inverse = contract_type_of(rules.symbol) == "inverse"
    qty = check_positive(
        size,
        names.size,
        hint=(
            "size is the number of contracts of an inverse symbol, e.g. 100"
            if inverse
            else "size is the position size in base units, e.g. 0.5 BTC"
        ),
    )
    # an inverse position is priced as the linear position of the opposite side on X = 1/P with
    # size F = contracts × contract size (§8.2): from here to the kernels ep and qty are X and F
    ep_user, qty_user = ep, qty
    cs, tick = 1.0, 0.0
    if inverse:
        if contract_size is not None:
            check_positive(
                contract_size,
                names.contract_size,
                hint="the USD face value of one contract, e.g. 100",
            )
        cs, tick = inverse_contract(rules.exchange, rules.symbol, contract_size)
        ep, qty = 1.0 / ep_user, qty_user * cs
    elif contract_size is not None:
        raise ConfigError(
            f"{names.contract_size} is for coin-margined symbols such as 'BTC/USD:BTC', was "
            f"{contract_size!r} with {rules.symbol!r} (a linear symbol: size is in base units)"
        )
    _check_scale(ep, qty, names)
    notional = qty * ep
    if mmr is None and maint_amount is None:
        _check_within_table(rules, qty, ep, cs if inverse else 0.0)
    k_entry = rules.tier_index(notional, qty)
    max_lev = float(rules.max_leverage[k_entry])
    where = (
        f"tier {k_entry + 1} of {rules.table_id} (notional {notional:,.2f})"
        if not rules.tier_by_size
        else f"tier {k_entry + 1} of {rules.table_id} (size {qty:g})"
    )
    lev_hint = f"the maximum for {where} is {max_lev:g}"
    if leverage is not None:
        check_in_range(
            leverage,
            names.leverage,
            1,
            int(max_lev) if max_lev.is_integer() else max_lev,
            hint=lev_hint,
        )
    other_mm = _amount(other_maint_margin, names.other_maint_margin, signed=True)
    other_upnl = _amount(other_unrealized_pnl, names.other_unrealized_pnl, signed=True)
    if mode == "isolated":
        if wallet_balance is not None:
            raise ConfigError(
                f"wallet_balance is for margin_mode='cross', was {wallet_balance!r} with "
                "'isolated'; pass margin= or leverage= for an isolated position"
            )
        if other_mm != 0.0 or other_upnl != 0.0:
            raise ConfigError(
                "other_maint_margin and other_unrealized_pnl apply to margin_mode='cross' only, "
                f"were {other_mm:g} and {other_upnl:g} with 'isolated'"
            )
        if margin is None and leverage is None:
            raise ConfigError(
                "isolated margin needs margin= (quote currency) or leverage=, got neither"
            )
        initial = notional / leverage if leverage is not None else 0.0
        if margin is not None:
            margin_value = _amount(check_positive(margin, names.margin), names.margin)
            if leverage is not None:
                _check_leverage_and_margin(notional, float(leverage), margin_value, names)
            if notional / margin_value > max_lev * (1 + 1e-12):
                raise ConfigError(
                    f"margin must be >= {notional / max_lev:.8g} (leverage {notional / margin_value:.6g} "
                    f"is above {max_lev:g}), was {margin_value:g}; {lev_hint}"
                )
        else:
            margin_value = initial
        lev_value = notional / margin_value if leverage is None else float(leverage)
    else:
        if margin is not None:
            raise ConfigError(
                f"{names.margin} is for {names.margin_mode} isolated, was {margin!r} with "
                f"cross; pass {names.wallet_balance} for a cross position"
            )
        if wallet_balance is None:
            raise ConfigError(
                f"{names.margin_mode} cross needs {names.wallet_balance} (the wallet balance, "
                "quote currency), got none"
            )
        margin_value = _amount(
            check_positive(wallet_balance, names.wallet_balance), names.wallet_balance
        )
        if other_mm < 0:
            raise ConfigError(f"{names.other_maint_margin} must be >= 0, was {other_mm:g}")
        if leverage is not None:
            _check_wallet_opens(notional, ep, float(leverage), margin_value, max_lev, names)
        lev_value = float(leverage) if leverage is not None else notional / margin_value

    conv = rules.convention
    floors, mmr_arr, amount_arr = rules.floors, rules.mmr, rules.maint_amount
    tier_by_size = rules.tier_by_size
    override = math.nan
    if maint_amount is not None and mmr is None:
        raise ConfigError(f"maint_amount needs mmr= as well, was maint_amount={maint_amount!r}")
    if mmr is not None:
        rate = check_in_range(
            mmr, "mmr", 0.0, 1.0, high_inclusive=False, hint="write 0.5% as 0.005"
        )
        if maint_amount is None:
            override = rate
        else:
            if conv == fx.OKX and maint_amount != 0:
                raise ConfigError(
                    f"maint_amount must be 0 for okx (no maintenance amount, §2.2), was {maint_amount!r}"
                )
            amount = _finite(maint_amount, "maint_amount")
            if amount < 0:
                raise ConfigError(f"maint_amount must be >= 0, was {amount:g}")
            floors = np.zeros(1)
            mmr_arr = np.array([rate])
            amount_arr = np.array([amount])
            tier_by_size = False
    if taker_fee is not None:
        fee = float(check_setting("taker_fee", taker_fee, where=names.taker_fee))
    else:
        fee = rules.liquidation_fee_rate if conv == fx.OKX else rules.taker_fee
    fee_term = fee if conv == fx.OKX else 0.0
    top_rate = override if not math.isnan(override) else float(np.max(mmr_arr))
    if fee_term and top_rate + fee_term >= 1.0:
        # OKX's price divides by 1 − mmr − fee (ZeroDivisionError at 1 before; nonsense above)
        raise ConfigError(
            f"{names.taker_fee} + mmr must be < 1 for okx (its liquidation price divides by "
            f"1 − mmr − fee), was {fee:g} + {top_rate:g}; lower {names.taker_fee} (write 5 bps "
            "as 0.0005)"
        )
    s = fx.LONG if (side_name == "long") != inverse else fx.SHORT
    # Bybit's inverse examples reserve the fee to close, F·f/BP coin, out of the margin (§8.3):
    # with an explicit taker_fee it moves both prices; BP solves M + s·F·(X − X_E) − F·f·X = 0
    close_fee, x_bp = 0.0, math.nan
    if inverse and conv == fx.BYBIT and taker_fee is not None:
        x_bp = (s * qty * ep - (margin_value + other_upnl)) / (qty * (s - fee))
        close_fee = qty * fee * x_bp
    lp = float(
        fx.liquidation_price_nb(
            conv,
            s,
            ep,
            qty,
            margin_value - close_fee,
            other_mm,
            other_upnl,
            floors,
            mmr_arr,
            amount_arr,
            tier_by_size,
            override,
            fee_term,
        )
    )
    at_entry = ""
    if (lp >= ep) if s == fx.LONG else (lp <= ep):
        at_entry = _under_maintenance_at_entry(
            conv,
            mode,
            mode == "isolated" and margin is None,
            ep,
            qty,
            lp,
            margin_value,
            other_mm,
            other_upnl,
            floors,
            mmr_arr,
            amount_arr,
            tier_by_size,
            override,
            fee_term,
            inverse,
        )
        warnings.warn(at_entry, BacktesterWarning, stacklevel=4)
    bp = float(fx.bankruptcy_price_nb(s, ep, qty, margin_value, other_upnl))
    if close_fee:
        bp = x_bp if x_bp > 0.0 else 0.0
    # maintenance margin as the exchange values it: at LP (Binance, OKX) or at entry (Bybit)
    valued_at = ep if conv == fx.BYBIT else lp
    mm = float(
        fx.maint_margin_nb(
            conv, qty * valued_at, qty, floors, mmr_arr, amount_arr, tier_by_size, override
        )
    )
    if not (
        (math.isfinite(lp) or inverse) and math.isfinite(bp) and math.isfinite(mm)
    ):  # an inverse long that cannot be liquidated has an X-twin price of inf
        # not reached with inputs inside the bounds above; one line rather than "inf"/"nan"
        raise ConfigError(
            f"the prices of this position are not finite numbers (liquidation {lp!r}, bankruptcy "
            f"{bp!r}); check {names.entry_price}, {names.size} and the margin for their units"
        )
    if math.isnan(override):
        k = int(fx.tier_index_nb(qty if tier_by_size else qty * valued_at, floors))
        used_mmr, used_amount = float(mmr_arr[k]), float(amount_arr[k]) if conv != fx.OKX else 0.0
        tier = k + 1 if maint_amount is None else 0
    else:
        used_mmr, used_amount, tier = override, 0.0, 0
    note = rules.note
    if tier == 0:
        note = f"mmr/maint_amount given explicitly (tier table not used for MM); {note}"
    if at_entry:
        note = f"{at_entry}; {note}"
    quote = LiquidationQuote(
        exchange=rules.exchange,
        symbol=rules.symbol,
        side="long" if side_name == "long" else "short",
        margin_mode="isolated" if mode == "isolated" else "cross",
        entry_price=ep,
        size=qty,
        notional=notional,
        leverage=lev_value,
        margin=margin_value,
        liquidation_price=lp,
        bankruptcy_price=bp,
        maint_margin=mm,
        mmr=used_mmr,
        maint_amount=used_amount,
        tier=tier,
        table_id=rules.table_id,
        max_leverage=max_lev,
        distance_pct=abs(ep - lp) / ep * 100.0,
        liquidation_fee_rate=fee if conv == fx.OKX else rules.liquidation_fee_rate,
        close_at=rules.close_at,
        note=note,
    )
    if not inverse:
        return replace(quote, liquidation_price_exact=lp, bankruptcy_price_exact=bp)
    # back from X = 1/P (§8.2); a long's X-twin is a short: its LP inf means "never" (price 0)
    lp_p = 0.0 if math.isinf(lp) else (math.inf if lp <= 0.0 else 1.0 / lp)
    bp_p = math.inf if bp <= 0.0 else 1.0 / bp
    return replace(
        quote,
        side="long" if side_name == "long" else "short",
        entry_price=ep_user,
        size=qty_user,
        liquidation_price=round_to_tick(lp_p, tick, rules.exchange, side_name),
        bankruptcy_price=round_to_tick(bp_p, tick, rules.exchange, side_name),
        distance_pct=abs(ep_user - lp_p) / ep_user * 100.0 if math.isfinite(lp_p) else math.inf,
        contract_type="inverse",
        contract_size=cs,
        price_tick=tick,
        liquidation_price_exact=lp_p,
        bankruptcy_price_exact=bp_p,
        note=f"coin-margined: size {qty_user:g} contracts x {cs:g} USD, margin, notional and MM in "
        f"{rules.symbol.partition(':')[2]} (§8); {note}",
    )


def liquidation_price(
    exchange: str,
    side: str,
    entry_price: float,
    size: float,
    *,
    margin_mode: str = "isolated",
    leverage: float | None = None,
    margin: float | None = None,
    wallet_balance: float | None = None,
    other_maint_margin: float = 0.0,
    other_unrealized_pnl: float = 0.0,
    mmr: float | None = None,
    maint_amount: float | None = None,
    taker_fee: float | None = None,
    symbol: str | None = None,
    at: DateLike | None = None,
    contract_size: float | None = None,
) -> float:
    """Return the liquidation (mark) price of a one-way linear perpetual position.

    Parameters
    ----------
    exchange : {"binanceusdm", "okx", "bybit"}
        Selects the convention (§1.2 Binance, §2.2 OKX, §3.1 Bybit) and the tier tables.
    side : {"long", "short"}
    entry_price : float
        Quote per base unit, > 0.
    size : float
        Position size in base units (contracts × contract value), > 0.
    margin_mode : {"isolated", "cross"}
        Isolated margin comes from ``margin`` (quote) or ``leverage`` (margin = notional /
        leverage); give one of them (both only if they agree within a relative 1e-9; pass
        ``margin`` alone for a position with extra margin). Cross uses ``wallet_balance`` with
        the other positions' ``other_maint_margin`` and ``other_unrealized_pnl`` (quote); with
        ``leverage`` as well, the wallet must hold the initial margin notional / leverage.
        Notional, entry price and the quote amounts must be <= 1e15.
    mmr, maint_amount : float, optional
        Override the tier table: a flat maintenance-margin rate (fraction) and amount (quote).
    taker_fee : float, optional
        OKX liquidation-fee term ``f`` (defaults to the profile's taker rate), a fraction in
        [0, 1) as ``RunConfig.taker_fee``; ignored by the Binance and Bybit formulas.
    symbol : str, optional
        ccxt symbol; defaults to ``"BTC/USDT:USDT"``. A coin-margined symbol (settle == base,
        ``"BTC/USD:BTC"``; exchanges ``binancecoinm``, ``bybit``, ``okx``) prices an inverse
        position (docs/reference/exchange-rules.md §8): ``size`` is in contracts, ``margin``,
        ``wallet_balance``, the other positions' amounts and ``maint_amount`` are in the coin,
        and the price is rounded to the exchange's tick (``LiquidationQuote.*_exact`` keeps the
        formula's value). Without a tier table for the symbol, pass ``mmr=``.
    at : date-like, optional
        Use the tier table in force at this date (default: the latest known table).
    contract_size : float, optional
        USD face value of one contract of an inverse symbol (default: the exchange's, §8.1).

    Returns
    -------
    float
        The mark price at which the position is liquidated; 0.0 for a long that cannot be
        liquidated at a positive price (an inverse short that cannot be: ``inf``).

    Raises
    ------
    ConfigError
        Bad side/mode/size/price, leverage above the tier's maximum, unknown exchange or symbol,
        a date before any known table, inconsistent margin arguments (leverage and margin that
        disagree, a cross wallet below the initial margin), or a notional above 1e15.

    Examples
    --------
    >>> round(liquidation_price("bybit", "long", 20000, 1, leverage=50, mmr=0.005), 2)
    19700.0
    >>> round(liquidation_price("binanceusdm", "long", 20000, 1, leverage=50, mmr=0.005), 2)
    19698.49
    """
    return liquidation_quote(
        exchange,
        side,
        entry_price,
        size,
        margin_mode=margin_mode,
        leverage=leverage,
        margin=margin,
        wallet_balance=wallet_balance,
        other_maint_margin=other_maint_margin,
        other_unrealized_pnl=other_unrealized_pnl,
        mmr=mmr,
        maint_amount=maint_amount,
        taker_fee=taker_fee,
        symbol=symbol,
        at=at,
        contract_size=contract_size,
    ).liquidation_price


def bankruptcy_price(
    exchange: str,
    side: str,
    entry_price: float,
    size: float,
    *,
    margin_mode: str = "isolated",
    leverage: float | None = None,
    margin: float | None = None,
    wallet_balance: float | None = None,
    other_maint_margin: float = 0.0,
    other_unrealized_pnl: float = 0.0,
    mmr: float | None = None,
    maint_amount: float | None = None,
    taker_fee: float | None = None,
    symbol: str | None = None,
    at: DateLike | None = None,
    contract_size: float | None = None,
) -> float:
    """Return the bankruptcy price: where the margin (isolated) or account equity (cross) is 0.

    ``BP = EP − s·(margin + other_unrealized_pnl)/size`` (§4). Takes the same arguments as
    :func:`liquidation_price` and validates them the same way; ``mmr``, ``maint_amount`` and
    ``taker_fee`` do not change the result, so ``maint_amount`` is accepted without ``mmr``
    here (it must still be a finite number >= 0). Returns 0.0 for a long whose BP would be <= 0.
    A coin-margined symbol (``"BTC/USD:BTC"``, §8) needs no tier table here:
    ``BP = F/(F/EP + s·margin)`` with ``F = size × contract_size``, rounded to the tick the
    exchange's way (``round_to_tick``); on Bybit an explicit ``taker_fee`` adds the fee to close
    (``BP = F·(1 + s·f)/(F/EP + s·margin)``, §8.3).

    Examples
    --------
    >>> bankruptcy_price("bybit", "long", 10000, 1, leverage=50)
    9800.0
    """
    if maint_amount is not None and mmr is None:
        # a maintenance amount alone (the liquidation formulas need it with a rate) cannot move
        # the bankruptcy price: check it is a valid amount, then leave it out
        if _finite(maint_amount, "maint_amount") < 0:
            raise ConfigError(f"maint_amount must be >= 0, was {maint_amount!r}")
        maint_amount = None
    return _quote(
        exchange,
        side,
        entry_price,
        size,
        margin_mode=margin_mode,
        leverage=leverage,
        margin=margin,
        wallet_balance=wallet_balance,
        other_maint_margin=other_maint_margin,
        other_unrealized_pnl=other_unrealized_pnl,
        mmr=mmr,
        maint_amount=maint_amount,
        taker_fee=taker_fee,
        symbol=symbol,
        at=at,
        contract_size=contract_size,
        need_mm=False,  # the bankruptcy price needs no tier table (§8)
    ).bankruptcy_price
