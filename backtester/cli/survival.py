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

from backtester.errors import ConfigError

DEFAULTS: dict[str, str] = {
    "symbol": "BTC/USDT:USDT",
    "exchange": "binanceusdm",
    "timeframe": "1h",
    "side": "both",
    "leverage": "1,2,3,5,10,20,50,100",
    "stop_loss": "none,0.02,0.05,0.10",
    "position_size": "1",
    "margin_mode": "isolated",
    "horizon": "30D",
    "entry_every": "1D",
}


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
            "30-day horizon, daily entries."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--symbol", default=DEFAULTS["symbol"], help="ccxt symbol of the perpetual")
    p.add_argument("--exchange", default=DEFAULTS["exchange"], help="exchange id of the data")
    p.add_argument("--timeframe", default=DEFAULTS["timeframe"], help="bar timeframe of the data")
    p.add_argument("--side", default=DEFAULTS["side"], choices=("long", "short", "both"))
    p.add_argument("--leverage", default=DEFAULTS["leverage"], help="comma-separated leverages")
    p.add_argument(
        "--stop-loss",
        default=DEFAULTS["stop_loss"],
        help="comma-separated stop distances as fractions (0.05) or percent (5%%); none = no stop",
    )
    p.add_argument(
        "--position-size",
        default=DEFAULTS["position_size"],
        help="comma-separated fractions of equity used as margin",
    )
    p.add_argument(
        "--margin-mode", default=DEFAULTS["margin_mode"], help="isolated, cross or isolated,cross"
    )
    p.add_argument("--horizon", default=DEFAULTS["horizon"], help="how long each hold is followed")
    p.add_argument("--entry-every", default=DEFAULTS["entry_every"], help="spacing of entries")
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
        help="report only this study (skip the article's comparison runs)",
    )
    p.add_argument("--stop-trigger", choices=("last", "mark"), default=None, help="stop price")
    p.add_argument(
        "--intrabar", choices=("worst", "best", "detail"), default=None, help="intrabar policy"
    )
    p.add_argument("--no-funding", action="store_true", help="do not exchange funding")
    p.add_argument("--mmr", type=float, default=None, help="flat maint_margin_rate override")
    p.add_argument("--taker-fee", type=float, default=None, help="taker fee (0.0005 = 5 bps)")
    p.add_argument("--initial-cash", type=float, default=None, help="starting cash (quote)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--strategy",
        default=None,
        help="a module in strategies/ (e.g. sma_cross): a fresh account trades it from each "
        "start and survival is the account's",
    )
    p.set_defaults(handler=run)


def _split(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def parse_numbers(text: str, option: str) -> list[float]:
    """Return comma-separated numbers; raise ConfigError naming the option on bad input."""
    out: list[float] = []
    for token in _split(text):
        try:
            out.append(float(token.rstrip("x")))
        except ValueError:
            raise ConfigError(
                f"{option} must be comma-separated numbers such as 1,5,20, was {text!r}"
            ) from None
    if not out:
        raise ConfigError(f"{option} must list at least one value, was {text!r}")
    return out


def parse_stops(text: str) -> list[float | None]:
    """Return stop distances from ``"none,0.02,5%"`` (percent or fraction; none = no stop)."""
    out: list[float | None] = []
    for token in _split(text):
        low = token.lower()
        if low in ("none", "off", "no"):
            out.append(None)
            continue
        try:
            value = float(low.rstrip("%")) / (100 if low.endswith("%") else 1)
        except ValueError:
            raise ConfigError(
                f"--stop-loss must be 'none' or fractions such as 0.05 (or 5%), was {text!r}"
            ) from None
        out.append(value)
    if not out:
        raise ConfigError(f"--stop-loss must list at least one value, was {text!r}")
    return out


def default_out(args: argparse.Namespace) -> str:
    """Return a deterministic report folder: the symbol and timeframe, plus an id of the options."""
    safe = str(args.symbol).replace("/", "_").replace(":", "_")
    keys = [
        "exchange",
        "side",
        "leverage",
        "stop_loss",
        "position_size",
        "margin_mode",
        "horizon",
        "entry_every",
        "start",
        "end",
        "stop_trigger",
        "intrabar",
        "no_funding",
        "mmr",
        "taker_fee",
        "initial_cash",
        "seed",
        "no_comparisons",
    ]
    opts = {k: getattr(args, k, None) for k in keys}
    base = {**{k: None for k in keys}, **DEFAULTS, "seed": 0, "no_funding": False}
    base.pop("symbol")
    base.pop("timeframe")
    base["no_comparisons"] = False
    changed = {k: v for k, v in opts.items() if v != base.get(k)}
    name = f"reports/survival-{safe}-{args.timeframe}"
    if changed:
        digest = hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]
        name += f"-{digest}"
    return name


def load_strategy(name: str | None) -> Any:
    """Return the --strategy module: a bundled name or a .py file (None for plain holds)."""
    if name is None:
        return None
    import strategies  # the one strategy loader; a relative file is relative to the cwd

    try:
        return strategies.load(name)
    except ConfigError as exc:
        raise ConfigError(f"--strategy: {exc}") from exc


def _engine_settings(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.stop_trigger is not None:
        out["stop_trigger"] = args.stop_trigger
    if args.intrabar is not None:
        out["intrabar"] = args.intrabar
    if args.no_funding:
        out["funding"] = False
    if args.mmr is not None:
        out["maint_margin_rate"] = args.mmr
    if args.taker_fee is not None:
        out["taker_fee"] = args.taker_fee
    if args.initial_cash is not None:
        out["initial_cash"] = args.initial_cash
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

    progress = _Progress(sys.stderr.isatty())
    leverage = parse_numbers(args.leverage, "--leverage")
    stops = parse_stops(args.stop_loss)
    sizes = parse_numbers(args.position_size, "--position-size")
    modes = _split(args.margin_mode)
    progress(f"loading {args.symbol} {args.timeframe} ({args.exchange})")
    market = load_market(
        args.symbol,
        exchange=args.exchange,
        timeframe=args.timeframe,
        start=args.start,
        end=args.end,
        store=args.store,
        detail_timeframe="1m" if args.intrabar == "detail" else None,
    )
    progress(
        f"{market.n_bars:,} bars {market.index[0]:%Y-%m-%d} -> {market.index[-1]:%Y-%m-%d}; "
        "running the engine (the first run compiles)"
    )
    study = survival_study(
        market,
        side=args.side,
        leverage=tuple(leverage),
        stop_loss=tuple(stops),
        position_size=tuple(sizes),
        margin_mode=tuple(modes),
        horizon=args.horizon,
        entry_every=args.entry_every,
        seed=args.seed,
        strategy=load_strategy(args.strategy),
        **_engine_settings(args),
    )
    progress(f"{study.n_settings} settings x {study.n_entries:,} entries; estimating survival")
    table = study.table()
    report_path = None
    if not args.no_report:
        out = args.out or default_out(args)
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
