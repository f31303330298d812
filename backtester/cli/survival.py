"""`backtester survival`: the default survival study on bundled data, table in the terminal + report.

Layer: cli (translates options into ``bt.load_market`` / ``bt.survival_study`` calls and formats
what they return; no logic the Python API lacks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Literal, cast

from backtester._typing import BOOTSTRAP_METHODS
from backtester.config import SETTINGS, Setting
from backtester.errors import BacktesterError, ConfigError

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
#: the terminal table's columns, always (after Side, or Legs and Margin); a setting the run
#: sweeps besides these (position size, margin mode, fees, ...) adds its column, and Ruined
#: appears when an account was ruined
TABLE_COLUMNS = (
    "Leverage [x]",
    "Stop-loss",
    "Entries",
    "Liquidated",
    "Stopped",
    "Censored",
    "Ruined",
    "Survival [%] (95% CI)",
    "Median to liquidation [days]",
    "Wallet lost, mean [%]",
    "Wallet lost, 95th pct [%]",
)
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
        epilog=textwrap.fill(
            "The table always has the columns Side (or Legs and Margin), "
            + ", ".join(c for c in TABLE_COLUMNS if c != "Ruined")
            + "; a setting the run sweeps besides these adds its column, and Ruined appears "
            "when an account was ruined. Under it: the highest leverage per side and stop whose "
            "95% lower bound of survival meets --target.",
            width=88,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--symbol",
        default=DEFAULTS["symbol"],
        help=_d(
            "ccxt symbol of the perpetual; several, comma-separated (BTC/USDT:USDT,ETH/USDT:USDT): "
            "one study per symbol, or one account of them all with --legs"
        ),
    )
    p.add_argument(
        "--legs",
        action="append",
        default=None,
        metavar="W,W[;W,W...]",
        help="study one account holding every --symbol: a signed weight per symbol, in "
        "--symbol's order (negative = short; |weights| sum to at most 1; leg k commits "
        "position_size*|w_k| of the equity). Several leg sets: repeat --legs (--legs 0.5,0.5 "
        "--legs 0.5,-0.5) or separate them with ';' (--legs '0.5,0.5;0.5,-0.5'). One leg set "
        "of two or more legs is compared with its counterpart (every leg after the first "
        "flipped: 0.5,0.5 adds 0.5,-0.5 and 0.5,-0.5 adds 0.5,0.5) unless --no-counterpart. "
        "With --legs, --margin-mode defaults to isolated,cross and --stop-loss to none, and "
        "--side does not apply (each leg's side is its weight's sign). A first weight below "
        "zero is written --legs=-0.5,0.5",
    )
    p.add_argument(
        "--no-counterpart",
        action="store_true",
        help="with one --legs set: study only that set (no hedge / long-long counterpart)",
    )
    p.add_argument(
        "--exchange", default=DEFAULTS["exchange"], help=_d("exchange id of the data (and profile)")
    )
    p.add_argument("--timeframe", default=DEFAULTS["timeframe"], help=_d("bar timeframe"))
    p.add_argument(
        "--mark",
        default="auto",
        choices=("auto", "mark", "last"),
        help=_d(
            "price that judges liquidation: stored mark bars (mark), the last price as mark "
            "(last), or auto: mark where it is stored, else the last price with a note saying so"
        ),
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
    p.add_argument(
        "--vs-exchange",
        default=None,
        help="also run the same holds on these exchanges (comma-separated, e.g. binanceusdm) "
        "on the largest crash days the venues have in common; printed and added to the report",
    )
    p.add_argument(
        "--crash-days",
        default=None,
        help="with --vs-exchange: the UTC days to compare (comma-separated, e.g. "
        "2022-11-09,2022-06-13); default the 3 largest common mark moves",
    )
    p.add_argument("--seed", type=int, default=0, help=_d("bootstrap seed", "0"))
    p.add_argument(
        "--target",
        type=_target,
        default=0.9,
        help=_d(
            "survival to meet: under the table, the highest leverage per side and stop whose "
            "95%% lower bound of survival is at least this share",
            "0.9",
        ),
    )
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
    _register_paths(p)
    p.set_defaults(handler=run)


def _register_paths(p: argparse.ArgumentParser) -> None:
    # synthetic paths (backtester.synthetic, survival.paths): history next to bootstrap paths
    g = p.add_argument_group(
        "synthetic paths (block bootstrap of whole bars; history and synthetic side by side)"
    )
    g.add_argument(
        "--paths",
        type=int,
        default=0,
        metavar="N",
        help=_d("also study N bootstrapped paths (bt.bootstrap_paths); 0 = history only", "0"),
    )
    g.add_argument(
        "--mean-block",
        default="1D",
        help=_d("mean block length of the bootstrap (a whole number of bars)", "1D"),
    )
    g.add_argument(
        "--method",
        default="stationary",
        choices=BOOTSTRAP_METHODS,
        help=_d("stationary (geometric block lengths) or circular (fixed)", "stationary"),
    )
    g.add_argument(
        "--vol-scale",
        type=float,
        default=1.0,
        help=_d("stretch of the paths' log returns and intrabar ranges", "1.0"),
    )
    g.add_argument(
        "--path-length",
        default="365D",
        help=_d("bars per path, a duration, or 'all' for the data's length", "365D"),
    )
    g.add_argument(
        "--stress",
        action="store_true",
        help="add stress scenarios: the 5 worst mark days of history replayed at random times "
        "of the paths, and a volatility regime (--stress-vol)",
    )
    g.add_argument(
        "--stress-vol",
        type=float,
        default=1.5,
        help=_d("vol_scale of the volatility-regime scenario", "1.5"),
    )


def _target(text: str) -> float:
    # argparse type of --target: a share strictly between 0 and 1 (90% reads as 0.9)
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"--target must be a survival share between 0 and 1 such as 0.9 or 90%, was {text!r}"
        )
    return value


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


def venue_comparison(args: argparse.Namespace, market: Any, study: Any, account: bool) -> Any:
    """Return ``bt.compare_venues`` of the study's holds on ``--exchange`` and ``--vs-exchange``.

    The other venues' bars are loaded over the study's range (their mark price as ``--mark``
    resolves for them); side, leverages and stop-losses are the study's.
    """
    import pandas as pd

    from backtester.market import load_market
    from backtester.survival.venues import compare_venues

    if account:
        raise ConfigError(
            "--vs-exchange compares one symbol's holds across venues; drop --legs (or "
            "--vs-exchange)"
        )
    others = [x.strip() for x in str(args.vs_exchange).split(",") if x.strip()]
    if not others or args.exchange in others:
        raise ConfigError(
            f"--vs-exchange must name other exchanges than --exchange {args.exchange}, was "
            f"{args.vs_exchange!r}; e.g. --vs-exchange binanceusdm"
        )
    markets = [market]
    for other in others:
        view = argparse.Namespace(**{**vars(args), "exchange": other})
        # the other venue's whole stored range: compare_venues keeps the days both cover
        markets.append(
            load_market(
                market.symbol,
                exchange=other,
                timeframe=args.timeframe,
                store=args.store,
                mark=mark_choice(view, [market.symbol]),
            )
        )
    settings = study.settings
    stops = [None if pd.isna(v) else float(v) for v in settings["stop_loss"].drop_duplicates()]
    days = None
    if args.crash_days:
        days = [d.strip() for d in str(args.crash_days).split(",") if d.strip()]
    return compare_venues(
        markets,
        days=days,
        side=args.side,
        leverage=tuple(float(v) for v in settings["leverage"].drop_duplicates()),
        stop_loss=tuple(stops),
    )


def venue_text(venues: Any) -> str:
    """Return the venue comparison as text: per day, side and leverage, each venue's count."""
    shown = venues[venues["stop_loss"].isna()] if venues["stop_loss"].isna().any() else venues
    cells = shown.assign(
        cell=[
            "-" if o == 0 else f"{n}/{o} ({n / o:.0%})"
            for n, o in zip(shown["n_liquidated_on_day"], shown["n_open_at_day"], strict=True)
        ]
    )
    wide = cells.pivot_table(
        index=["day", "side", "leverage"], columns="exchange", values="cell", aggfunc="first"
    )
    wide.index = wide.index.set_names(["Day", "Side", "Leverage [x]"])
    wide = wide.rename(index=lambda v: f"{v:g}" if isinstance(v, float) else v)
    n = int(venues["n_entries"].iloc[0])
    last = sorted(set(venues.loc[venues["mark_source"] == "last", "exchange"]))
    judged = f"; {', '.join(last)}: judged on the last price (no mark bars)" if last else ""
    return (
        "The same holds on each venue on their crash days (no stop; holds "
        f"opened at each of the {n} bars before the day): liquidated that day / open at its "
        f"start{judged}\n" + str(wide.to_string())
    )


def mark_choice(args: argparse.Namespace, symbols: list[str]) -> Literal["mark", "last"]:
    """Return the price that judges liquidation for ``--mark`` (``auto`` resolved, with a note).

    ``auto`` takes the stored mark bars; where a symbol has none (the bundled OKX BTC data is
    last-price only), the last price stands in for the mark and a note on stderr says so (the
    report and ``run.json`` say ``mark_source: last``). ``--mark mark`` keeps the error.
    """
    if args.mark in ("mark", "last"):
        return cast(Literal["mark", "last"], args.mark)
    from backtester.data.store import find_dataset

    def stored(symbol: str, kind: str) -> bool:
        try:
            return (
                find_dataset(args.exchange, symbol, args.timeframe, kind, store=args.store)
                is not None
            )
        except BacktesterError:  # a bad name: the loader's own error says it
            return False

    # only symbols whose bars are stored: a missing or misspelt market gets the loader's error
    missing = [s for s in symbols if stored(s, "ohlcv") and not stored(s, "mark")]
    if not missing:
        return "mark"
    print(
        f"note: no stored {args.timeframe} mark price for {', '.join(missing)} on "
        f"{args.exchange}: liquidation is judged on the last price (as --mark last); download "
        f"mark bars (backtester data download --exchange {args.exchange} --kinds mark ...) for "
        "exchange-exact results, or pass --mark mark to require them",
        file=sys.stderr,
    )
    return "last"


def default_out(args: argparse.Namespace, symbol: str | None = None) -> str:
    """Return a deterministic report folder: the symbol and timeframe, plus an id of the options.

    ``symbol`` names one study of several ``--symbol`` values; an account (``--legs``) is named
    after all its symbols joined by ``+``.
    """
    symbols = [symbol] if symbol is not None else split_symbols(args.symbol)
    safe = "+".join(x.replace("/", "_").replace(":", "_") for x in symbols)
    study = ("exchange", "side", "horizon", "entry_every")
    changed: dict[str, Any] = {
        k: getattr(args, k) for k in study if getattr(args, k) != DEFAULTS[k]
    }
    if args.mark not in ("mark", "auto"):
        changed["mark"] = args.mark
    for k in ("vs_exchange", "crash_days"):  # a report with the venue section is another report
        if getattr(args, k, None):
            changed[k] = getattr(args, k)
    for k in ("start", "end", "strategy"):
        if getattr(args, k, None) is not None:
            changed[k] = getattr(args, k)
    if args.seed != 0:
        changed["seed"] = args.seed
    if args.no_comparisons:
        changed["no_comparisons"] = True
    if getattr(args, "legs", None):
        changed["legs"] = list(args.legs)
        if args.no_counterpart:
            changed["no_counterpart"] = True
    default_stops = parse_values("stop_loss", DEFAULTS["stop_loss"])
    for name, values in given_settings(args).items():
        if name != "stop_loss" or values != default_stops:
            changed[name] = [_format(v) for v in values]
    name = f"reports/survival-{safe}-{args.timeframe}"
    if changed:
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
        name += f"-{digest}"
    return name


def split_symbols(text: str) -> list[str]:
    """Return the ``--symbol`` values: ``"BTC/USDT:USDT,ETH/USDT:USDT"`` → two symbols.

    Raises
    ------
    ConfigError
        An empty item or a symbol given twice.
    """
    items = [t.strip() for t in str(text).split(",")]
    if any(not t for t in items):
        raise ConfigError(
            f"--symbol has an empty value in {text!r}; write comma-separated symbols such as "
            "BTC/USDT:USDT,ETH/USDT:USDT"
        )
    if len(set(items)) != len(items):
        raise ConfigError(f"--symbol lists a symbol twice in {text!r}; list each symbol once")
    return items


def parse_legs(
    texts: list[str], symbols: list[str], *, counterpart: bool = True
) -> list[dict[str, float]]:
    """Return the ``--legs`` sets as ``{symbol: weight}`` dicts, in ``--symbol``'s order.

    ``texts`` are the ``--legs`` values (each may hold several sets separated by ``;``). One
    set of two or more legs gains its counterpart (every leg after the first flipped) when
    ``counterpart`` is true.

    Raises
    ------
    ConfigError
        A weight that is not a number or is zero, a set whose number of weights differs from the
        number of symbols, ``Σ|w| > 1``, or a set given twice (each names ``--legs``).
    """
    sets: list[dict[str, float]] = []
    for text in texts:
        for part in str(text).split(";"):
            tokens = [t.strip() for t in part.split(",")]
            if not part.strip() or any(not t for t in tokens):
                raise ConfigError(
                    f"--legs has an empty value in {text!r}; write one signed weight per "
                    "--symbol, e.g. --legs 0.5,0.5 or --legs 0.5,-0.5"
                )
            if len(tokens) != len(symbols):
                raise ConfigError(
                    f"--legs {part.strip()!r} has {len(tokens)} weight(s) for {len(symbols)} "
                    f"symbol(s) of --symbol ({', '.join(symbols)}); give one weight per symbol"
                )
            weights: dict[str, float] = {}
            for sym, token in zip(symbols, tokens, strict=True):
                try:
                    w = float(token)
                except ValueError:
                    raise ConfigError(
                        f"--legs weights must be numbers such as 0.5 or -0.5, was {token!r}"
                    ) from None
                if not math.isfinite(w) or w == 0.0:
                    raise ConfigError(
                        f"--legs weight of {sym} must be a non-zero number (negative = short), "
                        f"was {token!r}; leave the symbol out of --symbol instead"
                    )
                weights[sym] = w
            total = sum(abs(w) for w in weights.values())
            if total > 1.0 + 1e-12:
                raise ConfigError(
                    f"--legs {part.strip()!r}: the |weights| must sum to at most 1, was "
                    f"{total:g}; scale them down (--position-size sets how much of the equity "
                    "the whole account commits)"
                )
            if weights in sets:
                raise ConfigError(f"--legs lists {part.strip()!r} twice; list each leg set once")
            sets.append(weights)
    if counterpart and len(sets) == 1 and len(symbols) >= 2:
        first, *rest = sets[0].items()
        sets.append(dict([first, *((k, -w) for k, w in rest)]))
    return sets


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


def _study_arguments(args: argparse.Namespace, *, account: bool = False) -> dict[str, Any]:
    # survival_study's keyword arguments: the grid axes as tuples, other settings as a scalar
    # (one value) or a tuple (a sweep); stop_loss defaults to the CLI's grid (an account: no
    # stop, and both margin modes: the comparison an account study is for)
    given = given_settings(args)
    if account:
        given.setdefault("stop_loss", [None])
        given.setdefault("margin_mode", parse_values("margin_mode", "isolated,cross"))
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


def cli_words(message: str) -> str:
    """Return an error message with the API's ``name=value`` fixes as this command's options.

    ``pass mark='last'`` reads ``pass --mark last``, ``tier_table='YYYY-MM-DD'`` reads
    ``--tier-table YYYY-MM-DD`` and ``maint_margin_rate=...`` reads ``--mmr ...``: the fix a
    command-line user can type. Names are the engine settings (``SETTINGS``) and ``mark``.
    """
    import re

    names = sorted({*SETTINGS, "mark"}, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(names) + r")=('?)([^'\s;,)]*)\2")

    def option(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(3)
        flag = _ALIASES.get(name, (option_of(name),))[0]
        return f"{flag} {value}" if value else flag

    return pattern.sub(option, message)


def run(args: argparse.Namespace) -> int:
    """Handle ``backtester survival``: run the study, print the table, write the report.

    ``--symbol A,B`` without ``--legs`` runs one study per symbol (tables one after the other,
    each report in its own folder: ``--out`` then holds one sub-folder per symbol); with
    ``--legs`` one account study of all the symbols. Errors name options, not API arguments
    (:func:`cli_words`).
    """
    try:
        return _run(args)
    except BacktesterError as exc:
        worded = cli_words(str(exc))
        if worded == str(exc):
            raise
        raise type(exc)(worded) from exc


def _run(args: argparse.Namespace) -> int:
    if args.no_report and args.out is not None:
        raise ConfigError(
            f"--out {args.out!r} has no effect with --no-report (no report is written); "
            "drop one of them"
        )
    symbols = split_symbols(args.symbol)
    if args.no_counterpart and not args.legs:
        raise ConfigError("--no-counterpart has no effect without --legs; drop it")
    if args.legs:
        if args.side != DEFAULTS["side"]:
            raise ConfigError(
                f"--side {args.side} has no meaning with --legs (each leg's side is the sign of "
                "its weight); drop --side and give a short leg a negative weight"
            )
        if args.strategy is not None:
            raise ConfigError("--strategy with --legs is not modelled yet; drop one of them")
        legs = parse_legs(args.legs, symbols, counterpart=not args.no_counterpart)
        _run_one(args, symbols, legs, args.out)
        return 0
    if len(symbols) == 1:
        _run_one(args, symbols, None, args.out)
        return 0
    payloads: list[dict[str, Any]] = []
    done: list[tuple[Any, str | None]] = []
    universe_out = None if args.no_report else universe_dir(args)
    if universe_out is not None:  # refused before the long work, like each study's folder
        from backtester.reports.html import check_output_dir

        check_output_dir(universe_out)
    import pandas as pd

    from backtester.survival.run import check_periods, parse_period_bars

    markets = {}
    for symbol in symbols:  # every symbol's data is checked before the first study runs
        try:
            market = _load(args, [symbol], None)
            horizon = parse_period_bars(args.horizon, "--horizon", market.timeframe_ns)
            if horizon > market.n_bars:  # too short for the horizon: the others still run
                span = pd.Timedelta(market.n_bars * market.timeframe_ns, unit="ns")
                print(
                    f"note: --symbol {symbol} is left out: its data ({market.n_bars:,} bars, "
                    f"{span}) is shorter than --horizon {args.horizon}; download a longer range "
                    f"(backtester data download --symbol {symbol} ...) or shorten --horizon",
                    file=sys.stderr,
                )
                continue
            check_periods(market, args.horizon, args.entry_every, names=_PERIOD_OPTIONS)
            markets[symbol] = market
        except BacktesterError as exc:  # say which of the symbols it was
            raise type(exc)(f"--symbol {symbol}: {exc}") from exc
    if not markets:
        raise ConfigError(
            f"--symbol: every symbol's data is shorter than --horizon {args.horizon}; shorten "
            "--horizon or download longer ranges"
        )
    symbols = [s for s in symbols if s in markets]
    for k, symbol in enumerate(symbols):
        out = None
        if args.out is not None:
            out = f"{args.out}/{symbol.replace('/', '_').replace(':', '_')}"
        if k and not args.json:
            print()
        try:
            payload = _run_one(
                args, [symbol], None, out, quiet_json=True, done=done, market=markets[symbol]
            )
        except BacktesterError as exc:
            raise type(exc)(f"--symbol {symbol}: {exc}") from exc
        payloads.append(payload or {})
    pooled = _universe(args, done, universe_out)
    if args.json:
        print(
            json.dumps(
                {"studies": payloads, **pooled}, indent=2, allow_nan=False, default=_nan_to_none
            )
        )
    return 0


def universe_dir(args: argparse.Namespace) -> str:
    """Return the folder of the universe page: ``<--out>/universe``, else ``reports/universe-...``.

    Each symbol's report is in ``<--out>/<SYMBOL>`` (or its own default folder), so the page
    sits beside them and links to them.
    """
    if args.out is not None:
        return f"{args.out}/universe"
    return default_out(args).replace("reports/survival-", "reports/universe-", 1)


def _universe(
    args: argparse.Namespace, done: list[tuple[Any, str | None]], out: str | None
) -> dict[str, Any]:
    # the side-by-side table with the pooled row: printed (or returned for --json), and its page
    from backtester.reports.tables import to_text
    from backtester.survival.universe import universe_table
    from backtester.survival.universe_report import universe_display, write_universe_report

    studies = [study for study, _ in done]
    table = universe_table(studies)
    page = None
    if out is not None:
        links = {
            s.market_label: os.path.relpath(Path(r).parent, out) + "/index.html"
            for s, r in done
            if r is not None
        }
        page = str(write_universe_report(studies, out, reports=links))
    if args.json:
        return {
            "pooled_ci_method": table.attrs["ci_method"],
            "universe": json.loads(table.to_json(orient="records")),
            "universe_report": page,
        }
    display = universe_display(table, setting_columns=studies[0].setting_columns)
    print()
    print(
        f"Side by side, {len(studies)} symbols, with the pooled row ({studies[0].horizon_days:g} "
        "days; its interval resamples calendar blocks jointly across symbols, so symbols that "
        "crash together are not counted as independent; the naive interval would)"
    )
    print(to_text(display))
    if page is not None:
        print(f"universe report: {page}")
    return {}


def _run_one(
    args: argparse.Namespace,
    symbols: list[str],
    legs: list[dict[str, float]] | None,
    out_arg: str | None,
    *,
    quiet_json: bool = False,
    done: list[tuple[Any, str | None]] | None = None,
    market: Any = None,
) -> dict[str, Any] | None:
    # one study (one symbol, or one account of all `symbols`): load, run, report, print;
    # `done` collects (study, report path) for the universe table
    from backtester.reports.tables import (
        safe_leverage_lines,
        survival_display,
        to_text,
        unreachable_reason,
    )
    from backtester.survival import survival_study

    progress = _Progress(sys.stderr.isatty())
    settings = _study_arguments(args, account=legs is not None)
    strategy = load_strategy(args.strategy)
    one = symbols[0] if legs is None and len(split_symbols(args.symbol)) > 1 else None
    out = None if args.no_report else (out_arg or default_out(args, one))
    if out is not None:  # a folder the report may not write is refused before the long work
        from backtester.reports.html import check_output_dir

        check_output_dir(out)
    label = " + ".join(symbols)
    progress(f"loading {label} {args.timeframe} ({args.exchange})")
    if market is None:
        market = _load(args, symbols, legs)
    progress(
        f"{market.n_bars:,} bars {market.index[0]:%Y-%m-%d} -> {market.index[-1]:%Y-%m-%d}; "
        "running the engine (the first run compiles)"
    )
    from backtester.survival.run import check_periods

    # checked here too so that an error names the option as typed (--horizon, not horizon=)
    check_periods(market, args.horizon, args.entry_every, names=_PERIOD_OPTIONS)
    _check_paths_options(args, market)
    study_kw: dict[str, Any] = {"legs": legs} if legs else {"side": args.side}
    study = survival_study(
        market,
        **study_kw,
        horizon=args.horizon,
        entry_every=args.entry_every,
        seed=args.seed,
        strategy=strategy,
        **settings,
    )
    progress(f"{study.n_settings} settings x {study.n_entries:,} entries; estimating survival")
    table = study.table().reset_index()
    venues = None
    if args.crash_days and not args.vs_exchange:
        raise ConfigError("--crash-days goes with --vs-exchange; add --vs-exchange binanceusdm")
    if args.vs_exchange:
        progress(f"the same holds on {args.vs_exchange} on the common crash days")
        venues = venue_comparison(args, market, study, legs is not None)
    scenarios = _scenarios(args, market, study, progress, strategy=strategy, **study_kw, **settings)
    report_path = None
    if out is not None:
        progress(f"writing the report to {out} (comparisons: {not args.no_comparisons})")
        report_path = study.report(
            out,
            comparisons=not args.no_comparisons,
            target=args.target,
            progress=progress.enabled,
            venues=venues,
            scenarios=scenarios,
        )
    if done is not None:
        done.append((study, None if report_path is None else str(report_path)))
    if args.json:
        records = json.loads(table.to_json(orient="records"))
        payload = {
            "symbol": label,
            "exchange": market.exchange,
            "timeframe": market.timeframe,
            "horizon_days": study.horizon_days,
            "n_entries": study.n_entries,
            "survival_meaning": table.attrs["survival"],
            "ci_method": table.attrs["ci_method"],
            "loss_meaning": table.attrs["loss"],
            **({"legs": study.run_info()["legs"]} if legs else {}),
            "table": records,
            "target": args.target,
            "max_safe_leverage": json.loads(
                study.max_safe_leverage(target=args.target).to_json(orient="records")
            ),
            "report": report_path,
            **({} if scenarios is None else {"synthetic": _scenarios_json(scenarios)}),
        }
        if quiet_json:
            return payload
        print(json.dumps(payload, indent=2, allow_nan=False, default=_nan_to_none))
        return None
    display = survival_display(
        table, setting_columns=study.setting_columns, horizon_days=study.horizon_days
    )
    # a stable set of columns (TABLE_COLUMNS), plus any other setting the run sweeps
    always = ("Legs", "Margin") if legs else ("Side",)
    settings_shown = len(study.setting_columns)
    keep = [
        c
        for k, c in enumerate(display.columns)
        if c in always or c in TABLE_COLUMNS or (k < settings_shown and display[c].nunique() > 1)
    ]
    if legs:
        what = "accounts"
        meaning = "with NO leg (and not the account) liquidated"
    else:
        what = "holds" if study.strategy_name is None else f"accounts trading {_short(study)}"
        meaning = "NOT liquidated"
    print(
        f"Survival of {label} {what} ({market.exchange} {market.timeframe}, "
        f"{market.index[0]:%Y-%m-%d} -> {market.index[-1]:%Y-%m-%d}): share {meaning} "
        f"within {study.horizon_days:g} days, Kaplan–Meier, honest 95% interval; wallet lost "
        "= share of the starting wallet gone by then"
    )
    print(to_text(display[keep]))
    print(footer(study))
    if venues is not None:
        print()
        print(venue_text(venues))
    safe = study.max_safe_leverage(target=args.target)
    print()
    print(f"Highest leverage that meets the target ({safe.attrs['rule']}):")
    for line in safe_leverage_lines(safe):
        print(f"  {line}")
    out_of_reach = unreachable_reason(safe)
    if out_of_reach:
        print(f"  {out_of_reach}")
    if legs is not None and len(legs) == 2 and len(args.legs) == 1 and ";" not in args.legs[0]:
        print(
            f"(the second leg set is the counterpart of --legs {args.legs[0]}, added to compare; "
            "give a second --legs to choose it, or --no-counterpart)"
        )
    if scenarios is not None:
        _print_scenarios(scenarios, study)
    if report_path is not None:
        print(f"report: {report_path}")
    return None


_PERIOD_OPTIONS = ("--horizon", "--entry-every")


def _load(args: argparse.Namespace, symbols: list[str], legs: Any) -> Any:
    # the Market (or, for an account, the MarketSet) the options name
    from backtester.market import load_market
    from backtester.marketset import load_markets

    intrabar = _study_arguments(args, account=legs is not None).get("intrabar", ())
    detail = "detail" in (intrabar if isinstance(intrabar, tuple) else (intrabar,))
    load: dict[str, Any] = {
        "exchange": args.exchange,
        "timeframe": args.timeframe,
        "start": args.start,
        "end": args.end,
        "store": args.store,
        "mark": mark_choice(args, symbols),
        "detail_timeframe": "1m" if detail else None,
    }
    return load_markets(symbols, **load) if legs else load_market(symbols[0], **load)


def _check_paths_options(args: argparse.Namespace, market: Any) -> None:
    # the --paths options, checked before any run so that an error names the option as typed
    from backtester.data.schema import parse_period_bars

    if args.paths == 0:
        for option, value, default in (
            ("--stress", args.stress, False),
            ("--vol-scale", args.vol_scale, 1.0),
            ("--mean-block", args.mean_block, "1D"),
            ("--method", args.method, "stationary"),
            ("--path-length", args.path_length, "365D"),
            ("--stress-vol", args.stress_vol, 1.5),
        ):
            if value != default:
                raise ConfigError(f"{option} has no effect without --paths N; add --paths 500")
        return
    if args.paths < 0:
        raise ConfigError(f"--paths must be an int >= 0, was {args.paths}; e.g. --paths 500")
    parse_period_bars(args.mean_block, "--mean-block", market.timeframe_ns)
    n_bars = market.n_bars
    if args.path_length != "all":
        n_bars = parse_period_bars(args.path_length, "--path-length", market.timeframe_ns)
    if parse_period_bars(args.horizon, "--horizon", market.timeframe_ns) > n_bars:
        raise ConfigError(
            f"--horizon {args.horizon} is longer than the paths (--path-length "
            f"{args.path_length}); make the paths longer or the horizon shorter"
        )


def _scenarios(
    args: argparse.Namespace, market: Any, history: Any, progress: Any, **study: Any
) -> Any:
    # --paths N: the synthetic scenarios next to history (survival.paths.scenario_table)
    if args.paths == 0:
        return None
    from backtester.survival.paths import bootstrap_study, scenario_table

    common: dict[str, Any] = {
        "mean_block": args.mean_block,
        "method": args.method,
        "length": None if args.path_length == "all" else args.path_length,
        "seed": args.seed,
        "horizon": args.horizon,
        "entry_every": args.entry_every,
        **study,
    }
    runs = [("bootstrap", {"vol_scale": args.vol_scale})]
    if args.stress:
        runs.append(("worst_days", {"vol_scale": args.vol_scale, "n_worst": 5}))
        runs.append((f"vol_x{args.stress_vol:g}", {"vol_scale": args.stress_vol}))
    done = []
    for name, extra in runs:
        progress(f"{args.paths} synthetic paths: {name.replace('_', ' ')}")
        done.append((name, bootstrap_study(market, args.paths, **extra, **common)))
    return scenario_table(history, done)


def _print_scenarios(frame: Any, study: Any) -> None:
    from backtester.reports.tables import to_text
    from backtester.survival.report_paths import scenario_display, scenario_notes

    print()
    print(f"History and synthetic paths: survival within {study.horizon_days:g} days, 95% interval")
    print(to_text(scenario_display(frame, horizon_days=study.horizon_days)))
    for name, text in scenario_notes(frame).items():
        print(textwrap.fill(f"{name}: {text}", width=100, subsequent_indent="  "))


def _scenarios_json(frame: Any) -> dict[str, Any]:
    return {
        "scenarios": dict(frame.attrs.get("scenarios", {})),
        "table": json.loads(frame.reset_index().to_json(orient="records")),
    }


def _short(study: Any) -> str:
    # "strategies.sma_cross" -> "sma_cross"
    return str(study.strategy_name).rsplit(".", 1)[-1]


def footer(study: Any) -> str:
    """Return the line under the terminal table: entries, what a stop means, the interval."""
    every = (
        f"{study.n_entries:,} entries every {study.entry_every_bars * study.bar_days:g} day(s); "
    )
    if study.is_account:
        stops = (
            "every entry opens every leg; a leg's stop is not a liquidation and the other legs "
            "are followed on; "
        )
    elif study.strategy_name is None:
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
