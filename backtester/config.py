"""The settings spec and RunConfig: every engine setting described once (layer: config).

The body of :class:`RunConfig` is the one declarative table of engine settings: each field gives
its name, type and default, and its :func:`setting` metadata gives the range or choices, what
``None`` means, the help text, the kernel parameter row and any stricter bound or default a
survival study uses. Everything else is derived from it:

- validation (:func:`check_setting`, used by ``RunConfig``, grids, TOML configs and studies);
- the kernel's parameter layout (``engine.layout.FParam`` / ``IParam``) and the encoding in
  ``engine.run``;
- the CLI options of ``backtester survival`` with their real defaults (``cli.survival``);
- the TOML checks of ``backtester sweep`` (``sweep.config``).

Option strings and kernel codes of the string settings come from the ``IntEnum`` classes of
``engine.enums`` (member name in lower case = option string, value = kernel code).

Adding a setting: add a field here (and its ``IntEnum`` if it takes words), then use its row in
the kernel.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, Literal

from backtester._typing import EXCHANGES
from backtester.engine.enums import (
    AfterLiquidation,
    CloseAt,
    Intrabar,
    MarginMode,
    NegativeBalance,
    Side,
    StopTrigger,
    option_names,
)
from backtester.errors import BacktesterWarning, ConfigError, did_you_mean

__all__ = [
    "SETTINGS",
    "RunConfig",
    "Setting",
    "check_setting",
    "setting",
    "setting_names",
    "settings_markdown",
    "warn_suspect_settings",
]

KernelRow = Literal["float", "int"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """How one engine setting is described, checked, encoded and offered (read, don't build).

    Attributes
    ----------
    name, type_name, default
        The ``RunConfig`` field (``type_name``: "float", "bool" or "choice").
    help : str
        One line for docs and ``--help``.
    low, high, low_open, high_open : float
        Numeric range (``low_open``: ``low`` itself is excluded).
    choices : tuple of str
        Allowed words of a "choice" setting (from its ``IntEnum``, or a fixed list).
    codes : IntEnum subclass or None
        Kernel codes of the choices.
    none_means : str or None
        What ``None`` means ("off", "the exchange profile's"); None = ``None`` is not allowed.
    hint : str
        The fix shown in an error ("write 5 bps as 0.0005").
    kernel : "float", "int" or None
        Row kind in the kernel's parameter arrays (None: not a kernel parameter row).
    slot : str
        Row name in ``engine.layout.FParam`` / ``IParam``.
    warn_above : float or None
        Values above it are valid but suspect (a ``BacktesterWarning``).
    study_low : float or None
        A survival study's stricter lower bound (inclusive).
    study_default : tuple
        A survival study's default values (its grid axis); empty = the RunConfig default.
    percent : bool
        The CLI also reads ``5%`` as 0.05.
    """

    name: str = ""
    type_name: str = ""
    default: Any = None
    help: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    codes: type[IntEnum] | None = None
    none_means: str | None = None
    hint: str = ""
    kernel: KernelRow | None = None
    slot: str = ""
    warn_above: float | None = None
    study_low: float | None = None
    study_default: tuple[Any, ...] = ()
    percent: bool = False

    @property
    def optional(self) -> bool:
        """Return True if ``None`` is a valid value."""
        return self.none_means is not None

    def range_text(self, *, study: bool = False) -> str:
        """Return the allowed range as text, e.g. ``(0, 1000]``."""
        low = self.study_low if study and self.study_low is not None else self.low
        low_open = self.low_open and not (study and self.study_low is not None)
        lb = "(" if low_open else "["
        rb = ")" if self.high_open else "]"
        return f"{lb}{_num(low)}, {_num(self.high)}{rb}"

    def describe(self, *, study: bool = False) -> str:
        """Return the help text with the allowed values (``study``: its bounds) and None's meaning."""
        if self.type_name == "choice":
            allowed = ", ".join(self.choices)
        elif self.type_name == "bool":
            allowed = "true or false"
        elif self.type_name == "str":
            allowed = self.hint
        else:
            allowed = self.range_text(study=study)
        none = f"; none = {self.none_means}" if self.optional else ""
        return f"{self.help} ({allowed}{none})"


def setting(
    default: Any,
    *,
    help: str,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    choices: type[IntEnum] | tuple[str, ...] | None = None,
    exclude: tuple[IntEnum, ...] = (),
    none_means: str | None = None,
    hint: str = "",
    kernel: KernelRow | None = None,
    slot: str = "",
    warn_above: float | None = None,
    study_low: float | None = None,
    study_default: tuple[Any, ...] = (),
    percent: bool = False,
) -> Any:
    """Return a dataclass field for ``RunConfig`` that carries its :class:`Setting` description."""
    codes = choices if isinstance(choices, type) else None
    words = option_names(codes, exclude=exclude) if codes is not None else choices
    spec = Setting(
        default=default,
        help=help,
        low=low,
        high=high,
        low_open=low_open,
        high_open=high_open,
        choices=tuple(words or ()),
        codes=codes,
        none_means=none_means,
        hint=hint,
        kernel=kernel,
        slot=slot,
        warn_above=warn_above,
        study_low=study_low,
        study_default=study_default,
        percent=percent,
    )
    return dataclasses.field(default=default, metadata={"setting": spec})


_FEE_HINT = "a fraction of notional: write 5 bps as 0.0005"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Engine settings of a run; every field can also be swept per column through a grid.

    The fields are the settings spec: ``SETTINGS[name]`` (a :class:`Setting`) describes each one
    (range, what None means, help). ``str(RunConfig())`` lists them; the README's table and
    ``backtester survival --help`` are generated from the same place.

    Attributes
    ----------
    leverage : float
        Notional / initial margin of each entry, in (0, 1000] (checked against the tier table's
        maximum for the symbol; a survival study needs >= 1).
    margin_mode : "isolated" or "cross"
        Isolated: the position can lose at most its margin. Cross: the whole wallet backs it.
    position_size : float
        Fraction of equity committed as initial margin per entry, in (0, 1].
    stop_loss, trailing_stop : float or None
        Fractions of the entry price (trailing: of the best price since entry) in (0, 1);
        None = off.
    take_profit : float or None
        Fraction of the entry price in (0, 10]; None = off.
    stop_trigger : "last" or "mark"
        Price series that triggers stops and take-profits.
    taker_fee, maker_fee : float or None
        Fractions of notional in [0, 1); None = the exchange profile's fee.
    slippage : float
        Fraction of price paid on every market fill (entries, exits, stops), in [0, 1).
    exchange : str or None
        Exchange profile (convention, liquidation fee, tiers); None = the market's exchange.
    tier_table : None, "market" or "YYYY-MM-DD"
        None: the dated tier tables in force on each bar; "market": the market's ``tiers``
        snapshot; a date: the table in force on that date for every bar.
    funding : bool
        Exchange funding at funding timestamps.
    maint_margin_rate : float or None
        Flat maintenance-margin rate replacing the tier table (no maintenance amount). A symbol
        with no tier table (your own market) needs nothing else.
    max_leverage : float or None
        The symbol's leverage limit (for a market without a tier table, or stricter than it);
        None = the tier table's.
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
        Starting wallet balance, quote currency (a survival study defaults to 100).
    side : "long" or "short"
        Side opened by :func:`~backtester.engine.run.run_entries` (strategies ignore it).
    """

    leverage: float = setting(
        1.0,
        help="notional / initial margin of each entry",
        low=0.0,
        high=1000.0,
        low_open=True,
        hint="e.g. 10 for 10x",
        kernel="float",
        slot="LEVERAGE",
        study_low=1.0,
        study_default=(1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0),
    )
    margin_mode: str = setting(
        "isolated",
        help="isolated: a position risks its own margin; cross: the whole wallet backs it",
        choices=MarginMode,
        kernel="int",
        slot="MARGIN_MODE",
    )
    position_size: float = setting(
        1.0,
        help="fraction of equity committed as initial margin per entry",
        low=0.0,
        high=1.0,
        low_open=True,
        hint="a fraction of equity, e.g. 0.25 for a quarter",
        kernel="float",
        slot="POSITION_SIZE",
        percent=True,
    )
    stop_loss: float | None = setting(
        None,
        help="stop distance as a fraction of the entry price",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        none_means="no stop",
        hint="e.g. 0.05 for 5% (a long's stop at 1 or more could never fire)",
        kernel="float",
        slot="STOP_LOSS",
        percent=True,
    )
    take_profit: float | None = setting(
        None,
        help="take-profit distance as a fraction of the entry price",
        low=0.0,
        high=10.0,
        low_open=True,
        none_means="no take-profit",
        hint="e.g. 0.2 for 20%",
        kernel="float",
        slot="TAKE_PROFIT",
        percent=True,
    )
    trailing_stop: float | None = setting(
        None,
        help="trailing-stop distance as a fraction of the best price since entry",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        none_means="no trailing stop",
        hint="e.g. 0.05 for 5%",
        kernel="float",
        slot="TRAILING_STOP",
        percent=True,
    )
    stop_trigger: str = setting(
        "last",
        help="price series that triggers stops and take-profits",
        choices=StopTrigger,
        kernel="int",
        slot="STOP_TRIGGER",
    )
    taker_fee: float | None = setting(
        None,
        help="taker fee as a fraction of notional",
        low=0.0,
        high=1.0,
        high_open=True,
        none_means="the exchange profile's",
        hint=_FEE_HINT,
        kernel="float",
        slot="TAKER_FEE",
        warn_above=0.01,
    )
    maker_fee: float | None = setting(
        None,
        help="maker fee as a fraction of notional",
        low=0.0,
        high=1.0,
        high_open=True,
        none_means="the exchange profile's",
        hint=_FEE_HINT,
        kernel="float",
        slot="MAKER_FEE",
        warn_above=0.01,
    )
    slippage: float = setting(
        0.0,
        help="fraction of price paid on every market fill",
        low=0.0,
        high=1.0,
        high_open=True,
        hint="write 2 bps as 0.0002 (0 for none)",
        kernel="float",
        slot="SLIPPAGE",
        warn_above=0.01,
    )
    exchange: str | None = setting(
        None,
        help="exchange profile: margin convention, liquidation fee, tier tables",
        choices=EXCHANGES,
        none_means="the market's exchange",
    )
    tier_table: str | None = setting(
        None,
        help="tier table: 'market' (the market's own tiers) or a date YYYY-MM-DD",
        none_means="the dated tables in force on each bar",
        hint="write 'market' or a date such as '2024-05-30'",
    )
    funding: bool = setting(
        True,
        help="exchange funding at the funding timestamps",
        kernel="int",
        slot="FUNDING",
    )
    maint_margin_rate: float | None = setting(
        None,
        help="flat maintenance-margin rate replacing the tier table",
        low=0.0,
        high=1.0,
        high_open=True,
        none_means="the tier table",
        hint="write 0.5% as 0.005",
        kernel="float",
        slot="MMR_OVERRIDE",
    )
    max_leverage: float | None = setting(
        None,
        help="the symbol's leverage limit: entries above it are refused before the run",
        low=1.0,
        high=1000.0,
        none_means="the tier table's (with a flat maint_margin_rate and no table: none)",
        hint="e.g. 20 for a symbol that allows at most 20x",
    )
    liquidation_fee_rate: float | None = setting(
        None,
        help="liquidation (clearance) fee rate",
        low=0.0,
        high=1.0,
        high_open=True,
        none_means="the exchange profile's (okx, bybit: the taker fee)",
        hint=_FEE_HINT,
        kernel="float",
        slot="LIQ_FEE_RATE",
        warn_above=0.05,
    )
    close_at: str | None = setting(
        None,
        help="price a liquidated position closes at",
        choices=CloseAt,
        none_means="the exchange profile's",
        kernel="int",
        slot="CLOSE_AT",
    )
    after_liquidation: str = setting(
        "continue",
        help="after a liquidation keep trading with what is left, or stop the account",
        choices=AfterLiquidation,
        kernel="int",
        slot="AFTER_LIQUIDATION",
    )
    ruin_threshold: float = setting(
        0.0,
        help="equity fraction of initial_cash below which the account is ruined",
        low=0.0,
        high=1.0,
        high_open=True,
        hint="an equity fraction of initial cash, e.g. 0.1",
        kernel="float",
        slot="RUIN_THRESHOLD",
        percent=True,
    )
    negative_balance: str = setting(
        "floor",
        help="floor the balance at zero after a gap (insurance fund pays) or keep the debt",
        choices=NegativeBalance,
        kernel="int",
        slot="NEGATIVE_BALANCE",
    )
    intrabar: str = setting(
        "worst",
        help="who wins when several exits can trigger in one bar",
        choices=Intrabar,
        kernel="int",
        slot="INTRABAR",
    )
    initial_cash: float = setting(
        10_000.0,
        help="starting wallet balance, quote currency",
        low=0.0,
        low_open=True,
        high_open=True,
        hint="e.g. 10000",
        kernel="float",
        slot="INITIAL_CASH",
        study_default=(100.0,),
    )
    side: str = setting(
        "long",
        help="side opened by rolling entries (strategies decide their own)",
        choices=Side,
        exclude=(Side.FLAT,),
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> RunConfig:
        # a misspelt field gets a suggestion instead of dataclass' bare TypeError
        _check_names(kwargs, "RunConfig field")
        return object.__new__(cls)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            normalised = check_setting(f.name, value)
            if normalised is not value:
                object.__setattr__(self, f.name, normalised)
        warn_suspect_settings({f.name: [getattr(self, f.name)] for f in fields(self)})

    def replace(self, **changes: Any) -> RunConfig:
        """Return a copy with ``changes`` applied (unknown names get a suggestion)."""
        _check_names(changes, "RunConfig field")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict (TOML/JSON friendly; None stays None)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build a RunConfig from :meth:`to_dict` output (unknown keys get a suggestion)."""
        _check_names(data, "RunConfig field")
        return cls(**data)


def _spec_table() -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for f in fields(RunConfig):
        spec: Setting = f.metadata["setting"]
        # annotations are strings ("float | None", "bool"): the first word is the value type
        base = str(f.type).split("|")[0].strip()
        type_name = "choice" if spec.choices else base
        out[f.name] = dataclasses.replace(spec, name=f.name, type_name=type_name)
    return out


#: the settings spec: every engine setting's description, keyed by name (RunConfig field order)
SETTINGS: Mapping[str, Setting] = _spec_table()
_NAMES: tuple[str, ...] = tuple(SETTINGS)


def setting_names() -> tuple[str, ...]:
    """Return the names of every engine setting (the fields of RunConfig, in order)."""
    return _NAMES


def _check_names(names: Mapping[str, Any] | Iterator[str], what: str) -> None:
    for name in names:
        if name not in SETTINGS:
            raise ConfigError(f"unknown {what} {name!r}{did_you_mean(name, _NAMES)}")


def _num(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, bool):
        return f"{value!r} (a boolean)"
    if isinstance(value, int | float) or value is None:
        return repr(value)
    return f"{value!r} (a {type(value).__name__})"


def check_setting(name: str, value: Any, *, study: bool = False, where: str | None = None) -> Any:
    """Return ``value`` validated and normalised for the engine setting ``name``.

    Parameters
    ----------
    name : str
        A ``RunConfig`` field.
    value : Any
        The value (numpy scalars are accepted and become Python scalars).
    study : bool
        Also apply the survival study's stricter bounds (leverage >= 1).
    where : str, optional
        How to name the setting in the message (default ``RunConfig.<name>``; the CLI passes
        ``--leverage``, a config ``[engine] leverage``).

    Raises
    ------
    ConfigError
        Unknown setting name (with a suggestion), a value of the wrong type or out of range;
        one line naming the setting, the value and the fix.
    """
    spec = SETTINGS.get(name)
    if spec is None:
        raise ConfigError(f"unknown engine setting {name!r}{did_you_mean(name, _NAMES)}")
    where = where or f"RunConfig.{name}"
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar -> Python scalar
        value = value.item()
    if value is None:
        if spec.optional:
            return None
        raise ConfigError(f"{where} must be {_expected(spec, study)}, was None{_hint(spec)}")
    if spec.type_name == "choice":
        if not isinstance(value, str) or value not in spec.choices:
            choices = ", ".join(map(repr, spec.choices))
            extra = f"; none = {spec.none_means}" if spec.optional else ""
            suggestion = did_you_mean(str(value), spec.choices) if isinstance(value, str) else ""
            raise ConfigError(f"{where} must be one of {choices}{extra}, was {value!r}{suggestion}")
        return value
    if spec.type_name == "bool":
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise ConfigError(f"{where} must be True or False, was {value!r}")
        return bool(value)
    if spec.type_name == "str":
        return _check_tier_table(value, where, spec)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{where} must be {_expected(spec, study)}, was {_show(value)}"
            f"{_hint(spec, quoted=isinstance(value, str))}"
        )
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float (10**400)
        number = math.inf
    if math.isnan(number):
        raise ConfigError(f"{where} must be {_expected(spec, study)}, was nan{_hint(spec)}")
    low = spec.study_low if study and spec.study_low is not None else spec.low
    low_open = spec.low_open and not (study and spec.study_low is not None)
    ok = (number > low if low_open else number >= low) and (
        number < spec.high if spec.high_open else number <= spec.high
    )
    if not ok or math.isinf(number):
        kind = "a fraction " if spec.low == 0 and spec.high == 1 else ""
        raise ConfigError(
            f"{where} must be {kind}in {spec.range_text(study=study)}, was "
            f"{_short_repr(value, number)}{_hint(spec)}"
        )
    return number


def _short_repr(value: Any, number: float) -> str:
    # a value as typed, unless it is too long to read (10**400)
    text = repr(value)
    return text if len(text) <= 24 else f"{number:g}"


def _expected(spec: Setting, study: bool) -> str:
    if spec.type_name == "choice":
        return "one of " + ", ".join(map(repr, spec.choices))
    kind = "a fraction" if spec.low == 0 and spec.high == 1 else "a number"
    text = f"{kind} in {spec.range_text(study=study)}"
    return f"{text} or None ({spec.none_means})" if spec.optional else text


def _hint(spec: Setting, *, quoted: bool = False) -> str:
    parts = []
    if quoted:
        parts.append("write the number without quotes")
    if spec.hint:
        parts.append(spec.hint)
    return "; " + "; ".join(parts) if parts else ""


def _check_tier_table(value: Any, where: str, spec: Setting) -> str:
    import datetime as dt

    if value == "market":
        return "market"
    if isinstance(value, dt.date):  # a date or pd.Timestamp: the table in force that day
        return value.isoformat()
    if isinstance(value, str):
        import pandas as pd

        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            ts = None
        if ts is not None and ts is not pd.NaT:
            return value
    raise ConfigError(
        f"{where} must be None ({spec.none_means}), 'market' or a date 'YYYY-MM-DD', "
        f"was {_show(value)}"
    )


def warn_suspect_settings(columns: Mapping[str, list[Any]]) -> None:
    """Warn once per setting whose values are valid but above any exchange's (fees > 1 %).

    ``columns`` maps setting names to their (validated) values, one per column.
    """
    for name, values in columns.items():
        spec = SETTINGS.get(name)
        if spec is None or spec.warn_above is None:
            continue
        high = [v for v in values if v is not None and v > spec.warn_above]
        if high:
            warnings.warn(
                f"{name} = {max(high):g} is above {spec.warn_above:g} "
                f"({spec.warn_above:.0%}), more than any exchange charges; {spec.hint}",
                BacktesterWarning,
                stacklevel=3,
            )


def settings_markdown() -> str:
    """Return the settings spec as a Markdown table (the README's "Engine settings" table).

    Regenerate the README's copy with ``python -m backtester.config``; a test compares them.
    """
    rows = ["| setting | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for spec in SETTINGS.values():
        if spec.type_name == "choice":
            allowed = ", ".join(f"`{c}`" for c in spec.choices)
        elif spec.type_name == "bool":
            allowed = "`true`, `false`"
        elif spec.type_name == "str":
            allowed = "`market` or a date"
        else:
            allowed = spec.range_text()
            if spec.study_low is not None:
                allowed += f" (study: >= {_num(spec.study_low)})"
        if spec.optional:
            allowed += f"; `None` = {spec.none_means}"
        default = "`None`" if spec.default is None else f"`{spec.default!r}`"
        if spec.study_default:
            default += " (study: " + ", ".join(f"{v:g}" for v in spec.study_default) + ")"
        rows.append(f"| `{spec.name}` | {default} | {allowed} | {spec.help} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - prints the README table
    print(settings_markdown())
