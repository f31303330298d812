"""RunConfig: every engine setting with its default, validated once (layer: config).

Any field of :class:`RunConfig` can also be swept per column by putting its name in a
:class:`~backtester.params.ParamGrid`; :func:`check_setting` validates one value either way.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from backtester._typing import (
    AfterLiquidation,
    IntrabarPolicy,
    MarginMode,
    NegativeBalance,
    SideName,
    StopTrigger,
)
from backtester.errors import (
    ConfigError,
    check_fraction,
    check_in_range,
    check_one_of,
    did_you_mean,
)

__all__ = ["SETTING_CHOICES", "RunConfig", "check_setting", "setting_names"]

#: string settings and their allowed values (order = kernel code)
SETTING_CHOICES: dict[str, tuple[str, ...]] = {
    "margin_mode": ("isolated", "cross"),
    "stop_trigger": ("last", "mark"),
    "close_at": ("liquidation", "bankruptcy"),
    "after_liquidation": ("continue", "stop"),
    "negative_balance": ("floor", "owed"),
    "intrabar": ("worst", "best", "detail"),
    "side": ("long", "short"),
    "exchange": ("binanceusdm", "okx", "bybit"),
}

_OPTIONAL_FRACTIONS = ("stop_loss", "take_profit", "trailing_stop")
_OPTIONAL_RATES = ("taker_fee", "maker_fee", "maint_margin_rate", "liquidation_fee_rate")


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_setting(name: str, value: Any) -> Any:
    """Return ``value`` validated (and normalised) for the engine setting ``name``.

    Raises
    ------
    ConfigError
        Unknown setting name (with a suggestion) or a value out of range, naming both.
    """
    where = f"RunConfig.{name}"
    if name not in setting_names():
        raise ConfigError(f"unknown engine setting {name!r}{did_you_mean(name, setting_names())}")
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar -> Python scalar
        value = value.item()
    if name in SETTING_CHOICES:
        if name in ("exchange", "close_at") and value is None:
            return None
        return check_one_of(value, where, SETTING_CHOICES[name])
    if name == "leverage":
        return check_in_range(value, where, 0, 1000, low_inclusive=False, hint="write 10x as 10")
    if name == "position_size":
        return check_in_range(
            value,
            where,
            0,
            1,
            low_inclusive=False,
            hint="a fraction of equity committed as initial margin per entry, e.g. 0.1",
        )
    if name in _OPTIONAL_FRACTIONS:
        if _is_none(value):
            return None
        return check_in_range(
            value,
            where,
            0,
            10,
            low_inclusive=False,
            hint="a fraction of the entry price (5 % is 0.05), or None for off",
        )
    if name in _OPTIONAL_RATES:
        if _is_none(value):
            return None
        return check_fraction(value, where, hint="write 5 bps as 0.0005; None = exchange default")
    if name == "slippage":
        return check_fraction(value, where, hint="write 2 bps as 0.0002")
    if name == "ruin_threshold":
        return check_fraction(value, where, hint="equity fraction of initial cash, e.g. 0.1")
    if name == "initial_cash":
        return check_in_range(
            value, where, 0.0, math.inf, low_inclusive=False, high_inclusive=False
        )
    if name == "funding":
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise ConfigError(f"{where} must be True or False, was {value!r}")
        return bool(value)
    if name == "tier_table":
        if value is None or value == "market":
            return value
        if not isinstance(value, str):
            raise ConfigError(
                f"{where} must be None (dated tables), 'market' or a date 'YYYY-MM-DD', "
                f"was {value!r}"
            )
        return value
    raise AssertionError(f"setting {name} has no validator")  # pragma: no cover - a bug


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Engine settings of a run (every field can also be swept through the grid).

    Attributes
    ----------
    leverage : float
        Notional / initial margin of each entry (checked against the tier table's maximum).
    margin_mode : "isolated" or "cross"
        Isolated: the position can lose at most its margin. Cross: the whole wallet backs it.
    position_size : float
        Fraction of equity committed as initial margin per entry, in (0, 1].
    stop_loss, take_profit, trailing_stop : float or None
        Fractions of the entry price (trailing: of the best price since entry); None = off.
    stop_trigger : "last" or "mark"
        Price series that triggers stops and take-profits.
    taker_fee, maker_fee : float or None
        Fractions of notional; None = the exchange profile's fee.
    slippage : float
        Fraction of price paid on every market fill (entries, exits, stops).
    exchange : str or None
        Exchange profile (convention, liquidation fee, tiers); None = the market's exchange.
    tier_table : None, "market" or "YYYY-MM-DD"
        None: the dated tier tables in force on each bar; "market": the market's ``tiers``
        snapshot; a date: the table in force on that date for every bar.
    funding : bool
        Exchange funding at funding timestamps.
    maint_margin_rate : float or None
        Flat maintenance-margin rate replacing the tier table (no maintenance amount).
    liquidation_fee_rate : float or None
        Liquidation (clearance) fee rate; None = the exchange profile's (on okx and bybit that
        is the taker rate: the column's ``taker_fee`` when set).
    close_at : "liquidation", "bankruptcy" or None
        Price a liquidated position closes at; None = the exchange profile's.
    after_liquidation : "continue" or "stop"
        Keep trading with what is left, or treat the account as dead.
    ruin_threshold : float
        Equity fraction of ``initial_cash`` below which the account is ruined (0 = only when
        equity goes negative, which needs ``negative_balance="owed"``).
    negative_balance : "floor" or "owed"
        Floor the trader's balance at zero after a gap (the insurance fund pays), or keep the debt.
    intrabar : "worst", "best" or "detail"
        Who wins when several exits can trigger in one bar (see engine.kernel).
    initial_cash : float
        Starting wallet balance, quote currency.
    side : "long" or "short"
        Side opened by :func:`~backtester.engine.run.run_entries` (strategies ignore it).
    """

    leverage: float = 1.0
    margin_mode: MarginMode = "isolated"
    position_size: float = 1.0
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    stop_trigger: StopTrigger = "last"
    taker_fee: float | None = None
    maker_fee: float | None = None
    slippage: float = 0.0
    exchange: str | None = None
    tier_table: str | None = None
    funding: bool = True
    maint_margin_rate: float | None = None
    liquidation_fee_rate: float | None = None
    close_at: str | None = None
    after_liquidation: AfterLiquidation = "continue"
    ruin_threshold: float = 0.0
    negative_balance: NegativeBalance = "floor"
    intrabar: IntrabarPolicy = "worst"
    initial_cash: float = 10_000.0
    side: SideName = "long"

    def __new__(cls, *args: Any, **kwargs: Any) -> RunConfig:
        # a misspelt field gets a suggestion instead of dataclass' bare TypeError
        for name in kwargs:
            if name not in setting_names():
                raise ConfigError(
                    f"unknown RunConfig field {name!r}{did_you_mean(name, setting_names())}"
                )
        return object.__new__(cls)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            normalised = check_setting(f.name, value)
            if normalised != value or type(normalised) is not type(value):
                object.__setattr__(self, f.name, normalised)

    def replace(self, **changes: Any) -> RunConfig:
        """Return a copy with ``changes`` applied (unknown names get a suggestion)."""
        for name in changes:
            if name not in setting_names():
                raise ConfigError(
                    f"unknown RunConfig field {name!r}{did_you_mean(name, setting_names())}"
                )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict (TOML/JSON friendly; None stays None)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build a RunConfig from :meth:`to_dict` output (unknown keys get a suggestion)."""
        for name in data:
            if name not in setting_names():
                raise ConfigError(
                    f"unknown RunConfig field {name!r}{did_you_mean(name, setting_names())}"
                )
        return cls(**data)


def setting_names() -> tuple[str, ...]:
    """Return the names of every engine setting (the fields of RunConfig)."""
    return _NAMES


_NAMES: tuple[str, ...] = (
    "leverage",
    "margin_mode",
    "position_size",
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "stop_trigger",
    "taker_fee",
    "maker_fee",
    "slippage",
    "exchange",
    "tier_table",
    "funding",
    "maint_margin_rate",
    "liquidation_fee_rate",
    "close_at",
    "after_liquidation",
    "ruin_threshold",
    "negative_balance",
    "intrabar",
    "initial_cash",
    "side",
)
