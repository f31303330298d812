"""`backtester survival`: the default survival study on bundled data, table in the terminal + report.

Layer: cli (translates options into ``bt.load_market`` / ``bt.survival_study`` calls and formats
what they return; no logic the Python API lacks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from typing import Any

from backtester.config import SETTINGS, Setting
from backtester.errors import ConfigError

#: study options that are not engine settings, and the CLI's own grid defaults (the API's
#: survival_study defaults to one side and no stop: the CLI shows the whole picture at once)
DEFAULTS: dict[str, str] = {
    "symbol": "BTC/USDT:USDT",
    "exchange": "binanceusdm",
    "timeframe": "1h",
    "side": "both",
    "stop_loss": "none,0.02,0.05,0.10",
    "horizon": "30D",
    "entry_every": "1D",
}
#: engine settings without an option of their own: --exchange names the data's exchange (the
#: profile follows it) and --side covers both sides
_NO_OPTION = ("exchange", "side")
#: older spellings kept working
_ALIASES = {"maint_margin_rate": ("--mmr",)}
_NONE_WORDS = ("none", "off", "no")
_BOOL_WORDS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False}
_BOOL_WORDS.update({"no": False, "0": False})


def option_of(name: str) -> str:
    """Return the CLI option of the engine setting ``name`` (``--stop-loss``)."""
    return "--" + name.replace("_", "-")


def _default_text(spec: Setting) -> str:
    # the value used when the option is not given, as it would be typed
    if spec.name in DEFAULTS:
        return DEFAULTS[spec.name]
    values = spec.study_default or (spec.default,)
    return ",".join(_format(v) for v in values)


def _format(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def register(subparsers: Any) -> None:
    """Add the ``survival`` subcommand to the top-level parser."""
    p = subparsers.add_parser(
        "survival",
        help="survival rates across leverage, stop-loss and position size, with an HTML report",
        description=(
            "Open a position at every entry time (rolling entries) for each setting, follow it "
            "through the engine up to the horizon and estimate how many are NOT liquidated "
            "(Kaplan–Meier with honest intervals for overlapping entries). With no options: "
            "bundled BTC/USDT:USDT 1h data, both sides, leverage 1-100x, stops none/2%/5%/10%, "
            "30-day horizon, daily entries. Every engine setting is an option; a comma-"
            "separated list sweeps it."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--symbol", default=DEFAULTS["symbol"], help=_d("ccxt symbol of the perpetual"))
    p.add_argument(
        "--exchange", default=DEFAULTS["exchange"], help=_d("exchange id of the data (and profile)")
    )
    p.add_argument("--timeframe", default=DEFAULTS["timeframe"], help=_d("bar timeframe"))
    p.add_argument(
        "--mark",
        default="mark",
        choices=("mark", "last"),
        help=_d("price that judges liquidation: stored mark bars, or the last price as mark"),
    )
    p.add_argument(
        "--side", default=DEFAULTS["side"], choices=("long", "short", "both"), help=_d("side")
    )
    p.add_argument(
        "--horizon",
        default=DEFAULTS["horizon"],
        help=_d("how long each hold is followed (30D, 720h)"),
    )
    p.add_argument("--entry-every", default=DEFAULTS["entry_every"], help=_d("spacing of entries"))
    p.add_argument("--start", default=None, help="first bar (UTC, inclusive), e.g. 2021-01-01")
    p.add_argument("--end", default=None, help="end of the data (UTC, exclusive)")
    p.add_argument("--store", default=None, help="data store root (default: env, clone, user dir)")
    p.add_argument(
        "--out", default=None, help="report folder (default reports/survival-<symbol>-<tf>[-id])"
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON on stdout")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    p.add_argument(
        "--no-comparisons",
        action="store_true",
        help="report only this study (skip the comparison runs)",
    )
    p.add_argument("--seed", type=int, default=0, help=_d("bootstrap seed", "0"))
    p.add_argument(
        "--strategy",
        default=None,
        help="a bundled strategy (e.g. sma_cross) or a .py file (./my_strategy.py): a fresh "
        "account trades it from each start and survival is the account's",
    )
    engine = p.add_argument_group(
        "engine settings (from the settings spec; a comma-separated list sweeps the setting)"
    )
    for spec in SETTINGS.values():
        if spec.name in _NO_OPTION:
            continue
        engine.add_argument(
            option_of(spec.name),
            *_ALIASES.get(spec.name, ()),
            dest=spec.name,
            default=None,
            metavar="V[,V...]",
            help=f"{spec.describe(study=True)} (default: {_default_text(spec)})".replace("%", "%%"),
        )
    engine.add_argument(
        "--no-funding", action="store_true", help="same as --funding false (kept for old scripts)"
    )
    p.set_defaults(handler=run)


def _d(text: str, default: str | None = None) -> str:
    # argparse help with the default spelled out (no ArgumentDefaultsHelpFormatter: it would
    # show "None" for the engine options, whose real defaults come from the spec)
    return f"{text} (default: %(default)s)" if default is None else f"{text} (default: {default})"


def parse_values(name: str, text: str, *, option: str | None = None) -> list[Any]:
    """Return the values of setting ``name`` typed as ``text`` (``"1,5,20x"``, ``"none,5%"``).

    Each value is checked by the settings spec with a survival study's bounds; an error names
    the option as typed.

    Raises
    ------
    ConfigError
        An empty item (``1,,2``), a word where a number belongs, or a value out of range.
    """
    from backtester.config import check_setting

    spec = SETTINGS[name]
    option = option or option_of(name)
    items = [t.strip() for t in str(text).split(",")]
    if not text.strip() or any(not t for t in items):
        raise ConfigError(
            f"{option} has an empty value in {text!r}; write comma-separated values such as "
            f"{_default_text(spec)}"
        )
    out: list[Any] = []
    for token in items:
        value = _typed(spec, token, option)
        out.append(check_setting(name, value, study=True, where=option))
    if len(set(map(repr, out))) != len(out):
        raise ConfigError(f"{option} lists a value twice in {text!r}; list each value once")
    return out


def _typed(spec: Setting, token: str, option: str) -> Any:
    low = token.lower()
    if low in _NONE_WORDS and spec.optional:
        return None
    if spec.type_name == "bool":
        if low not in _BOOL_WORDS:
            raise ConfigError(f"{option} must be true or false, was {token!r}")
        return _BOOL_WORDS[low]
    if spec.type_name != "float":
        return token
    number = low[:-1] if (spec.name == "leverage" and low.endswith("x")) else low
    scale = 1.0
    if spec.percent and number.endswith("%"):
        number, scale = number[:-1], 100.0
    try:
        return float(number) / scale
    except ValueError:
        pct = " (or 5%)" if spec.percent else ""
        none = "; none = " + str(spec.none_means) if spec.optional else ""
        raise ConfigError(
            f"{option} must be comma-separated numbers such as {_default_text(spec)}{pct}"
            f"{none}, was {token!r}"
        ) from None


def given_settings(args: argparse.Namespace) -> dict[str, list[Any]]:
    """Return the engine settings the user gave, each as its list of values."""
    out: dict[str, list[Any]] = {}
    for name in SETTINGS:
        if name in _NO_OPTION:
            continue
        text = getattr(args, name, None)
        if text is not None:
            out[name] = parse_values(name, text)
    if getattr(args, "no_funding", False):
        if out.get("funding", [False]) != [False]:
            raise ConfigError("--no-funding contradicts --funding true; give one of them")
        out["funding"] = [False]
    return out


def default_out(args: argparse.Namespace) -> str:
    """Return a deterministic report folder: the symbol and timeframe, plus an id of the options."""
    safe = str(args.symbol).replace("/", "_").replace(":", "_")
    study = ("exchange", "side", "horizon", "entry_every")
    changed: dict[str, Any] = {
        k: getattr(args, k) for k in study if getattr(args, k) != DEFAULTS[k]
    }
    if args.mark != "mark":
        changed["mark"] = args.mark
    for k in ("start", "end", "strategy"):
        if getattr(args, k, None) is not None:
            changed[k] = getattr(args, k)
    if args.seed != 0:
        changed["seed"] = args.seed
    if args.no_comparisons:
        changed["no_comparisons"] = True
    default_stops = parse_values("stop_loss", DEFAULTS["stop_loss"])
    for name, values in given_settings(args).items():
        if name != "stop_loss" or values != default_stops:
            changed[name] = [_format(v) for v in values]
    name = f"reports/survival-{safe}-{args.timeframe}"
    if changed:
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
        name += f"-{digest}"
    return name


def load_strategy(name: str | None) -> Any:
    """Return the --strategy module: a bundled name or a .py file (None for plain holds)."""
    if name is None:
        return None
    from backtester import (
        strategies,
    )  # the one strategy loader; a relative file is relative to the cwd

    try:
        return strategies.load(name)
    except ConfigError as exc:
        # the loader's hint is written for a config file; on the command line a file is a path
        text = str(exc).replace(
            f'e.g. name = "{name}.py" (relative to the config file)', f"e.g. --strategy ./{name}.py"
        )
        raise ConfigError(f"--strategy: {text}") from exc


def _study_arguments(args: argparse.Namespace) -> dict[str, Any]:
    # survival_study's keyword arguments: the grid axes as tuples, other settings as a scalar
    # (one value) or a tuple (a sweep); stop_loss defaults to the CLI's grid
    given = given_settings(args)
    given.setdefault("stop_loss", parse_values("stop_loss", DEFAULTS["stop_loss"]))
    out: dict[str, Any] = {}
    for name, values in given.items():
        axis = name in ("leverage", "stop_loss", "position_size", "margin_mode")
        out[name] = tuple(values) if axis or len(values) > 1 else values[0]
    return out


class _Progress:
    # stage messages on stderr, only on a terminal (the library itself never prints)
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f}s] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Handle ``backtester survival``: run the study, print the table, write the report."""
    from backtester.market import load_market
    from backtester.reports.tables import survival_display, to_text
    from backtester.survival import survival_study

    if args.no_report and args.out is not None:
        raise ConfigError(
            f"--out {args.out!r} has no effect with --no-report (no report is written); "
            "drop one of them"
        )
    progress = _Progress(sys.stderr.isatty())
    settings = _study_arguments(args)
    strategy = load_strategy(args.strategy)
    out = None if args.no_report else (args.out or default_out(args))
    if out is not None:  # a folder the report may not write is refused before the long work
        from backtester.reports.html import check_output_dir

        check_output_dir(out)
    intrabar = settings.get("intrabar", ())
    detail = "detail" in (intrabar if isinstance(intrabar, tuple) else (intrabar,))
    progress(f"loading {args.symbol} {args.timeframe} ({args.exchange})")
    market = load_market(
        args.symbol,
        exchange=args.exchange,
        timeframe=args.timeframe,
        start=args.start,
        end=args.end,
        store=args.store,
        mark=args.mark,
        detail_timeframe="1m" if detail else None,
    )
    progress(
        f"{market.n_bars:,} bars {market.index[0]:%Y-%m-%d} -> {market.index[-1]:%Y-%m-%d}; "
        "running the engine (the first run compiles)"
    )
    study = survival_study(
        market,
        side=args.side,
        horizon=args.horizon,
        entry_every=args.entry_every,
        seed=args.seed,
        strategy=strategy,
        **settings,
    )
    progress(f"{study.n_settings} settings x {study.n_entries:,} entries; estimating survival")
    table = study.table()
    report_path = None
    if out is not None:
        progress(f"writing the report to {out} (comparisons: {not args.no_comparisons})")
        report_path = study.report(out, comparisons=not args.no_comparisons)
    if args.json:
        records = json.loads(table.to_json(orient="records"))
        payload = {
            "symbol": market.symbol,
            "exchange": market.exchange,
            "timeframe": market.timeframe,
            "horizon_days": study.horizon_days,
            "n_entries": study.n_entries,
            "survival_meaning": table.attrs["survival"],
            "ci_method": table.attrs["ci_method"],
            "table": records,
            "report": report_path,
        }
        print(json.dumps(payload, indent=2, allow_nan=False, default=_nan_to_none))
        return 0
    display = survival_display(
        table, setting_columns=study.setting_columns, horizon_days=study.horizon_days
    )
    keep = [c for c in display.columns if display[c].nunique() > 1 or c.startswith("Surv")]
    keep = [c for c in display.columns if c in keep or c in ("Side", "Leverage [x]")]
    what = "holds" if study.strategy_name is None else f"accounts trading {_short(study)}"
    print(
        f"Survival of {market.symbol} {what} ({market.exchange} {market.timeframe}, "
        f"{market.index[0]:%Y-%m-%d} -> {market.index[-1]:%Y-%m-%d}): share NOT liquidated "
        f"within {study.horizon_days:g} days, Kaplan–Meier, honest 95% interval"
    )
    print(to_text(display[keep]))
    print(footer(study))
    if report_path is not None:
        print(f"report: {report_path}")
    return 0


def _short(study: Any) -> str:
    # "strategies.sma_cross" -> "sma_cross"
    return str(study.strategy_name).rsplit(".", 1)[-1]


def footer(study: Any) -> str:
    """Return the line under the terminal table: entries, what a stop means, the interval."""
    every = (
        f"{study.n_entries:,} entries every {study.entry_every_bars * study.bar_days:g} day(s); "
    )
    if study.strategy_name is None:
        stops = "a stopped position survives (it can no longer be liquidated); "
    else:  # the strategy trades on after a stop: the account can still be liquidated
        stops = (
            f"a fresh account trades {_short(study)} from each entry; a stop ends a trade, "
            "not the account's follow-up; "
        )
    return (
        every + stops + "the horizon and the end of data censor. Censored = not liquidated by "
        "then. Interval: block bootstrap over entry time (block = horizon) widened to an exact "
        f"binomial interval at {study.n_effective:.0f} non-overlapping horizons."
    )


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
