"""``backtester data {download,import,list,verify,repair,rebuild-manifest}``: data-layer calls, printed tables."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import pandas as pd

from backtester._typing import DATA_KINDS, EXCHANGES
from backtester.data.ccxt_loader import DOWNLOAD_EXCHANGES
from backtester.errors import BacktesterError, ConfigError, did_you_mean


def register(subparsers: Any) -> None:
    """Add the ``data`` command group to the top-level parser."""
    data = subparsers.add_parser(
        "data",
        help="download, import, list and verify market data in the local store",
        description="Market data in the local parquet store (bundled data included).",
    )
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(handler=lambda args: _usage(data))

    dl = sub.add_parser(
        "download",
        help="download OHLCV, mark/index bars, funding and tiers through ccxt",
        description="Fetch only what the store lacks; rerun the same command to resume.",
    )
    dl.add_argument(
        "--exchange", default="binanceusdm", help=f"one of {', '.join(DOWNLOAD_EXCHANGES)}"
    )
    dl.add_argument(
        "--symbol", required=True, help="ccxt symbol, e.g. BTC/USDT:USDT (COIN-M: BTC/USD:BTC)"
    )
    dl.add_argument("--timeframe", default="1h", help="bar length (1m, 5m, 1h, 4h, 1d)")
    dl.add_argument(
        "--start",
        default=None,
        help="first bar open (UTC), e.g. 2020-01-01; not needed for --kinds tiers alone",
    )
    dl.add_argument("--end", default=None, help="end (exclusive, UTC); default: now")
    dl.add_argument(
        "--kinds",
        default="ohlcv,mark,funding,tiers",
        help=f"comma-separated subset of {','.join(DATA_KINDS)}",
    )
    dl.add_argument("--store", default=None, help="store root (default $BACKTESTER_STORE or data/)")
    dl.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    dl.set_defaults(handler=_download)

    im = sub.add_parser(
        "import",
        help="import a freqtrade data folder (futures, mark, funding_rate files) into the store",
        description=(
            "Read freqtrade's futures data (PAIR-TIMEFRAME-{futures,mark,index,funding_rate}"
            ".{feather,parquet}, pairs named like XRP_USDT_USDT) into the store, checked like a "
            "download; a stored value is never replaced and sources never mixed (the same rows: "
            "up to date; more bars after an earlier import: extended; else refused)."
        ),
    )
    im.add_argument(
        "--from-freqtrade",
        required=True,
        metavar="DIR",
        help="freqtrade's data folder of one exchange, e.g. user_data/data/binance (its futures/ "
        "subfolder is read) or that futures/ folder",
    )
    im.add_argument(
        "--exchange",
        default=None,
        help=f"one of {', '.join(EXCHANGES)}; default from the folder name (binance: binanceusdm)",
    )
    im.add_argument(
        "--timeframe", default=None, help="import only bars of this timeframe (default: all)"
    )
    im.add_argument("--store", default=None, help="store root (default $BACKTESTER_STORE or data/)")
    im.set_defaults(handler=_import)

    ls = sub.add_parser("list", help="print the stored datasets (bundled and downloaded)")
    ls.add_argument("--store", default=None, help="store root (an existing folder)")
    ls.set_defaults(handler=_list)

    vf = sub.add_parser(
        "verify",
        help="check integrity and gaps of every dataset; exit 1 on a problem",
        description=(
            "Check every dataset of the store (--store DIR, default $BACKTESTER_STORE or data/) "
            "and, counted separately, the bundled data; exit 1 on a problem. The 'location' "
            "column of a problem says which of the two it is in."
        ),
    )
    vf.add_argument(
        "--store",
        default=None,
        help="store root to verify (an existing folder); the bundled data is verified too and "
        "counted separately",
    )
    vf.set_defaults(handler=_verify)

    rp = sub.add_parser(
        "repair",
        help="restore or re-fetch damaged datasets (never re-records a damaged file as good)",
        description=(
            "Restore each damaged dataset from a good copy (bundled data) or fetch it again "
            "through ccxt over its recorded range; by default every dataset `verify` finds damaged."
        ),
    )
    rp.add_argument(
        "datasets",
        nargs="*",
        metavar="DATASET",
        help="dataset keys as printed by `verify`, e.g. binanceusdm/BTC_USDT_USDT/1h/ohlcv",
    )
    rp.add_argument("--store", default=None, help="store root (an existing folder)")
    rp.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    rp.set_defaults(handler=_repair)

    rb = sub.add_parser(
        "rebuild-manifest",
        help="rebuild manifest.json from the stored files (validates each; keeps damaged flagged)",
        description=(
            "Rebuild <store>/manifest.json: entries matching their file are kept, damaged files "
            "stay flagged for `repair`, unrecorded files are recorded only if they validate, "
            "entries of missing files are dropped, old temp files are removed. Run it while no "
            "download is running."
        ),
    )
    rb.add_argument("--store", default=None, help="store root (an existing folder)")
    rb.set_defaults(handler=_rebuild_manifest)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    for kind in kinds:
        if kind not in DATA_KINDS:
            raise ConfigError(
                f"--kinds must be among {','.join(DATA_KINDS)}, was {kind!r}"
                f"{did_you_mean(kind, DATA_KINDS)}"
            )
    return kinds


def _credentials(exchange: str) -> dict[str, str]:
    prefix = f"BACKTESTER_{exchange.upper()}_"
    config = {}
    for env, key in (("API_KEY", "apiKey"), ("SECRET", "secret"), ("PASSWORD", "password")):
        value = os.environ.get(prefix + env)
        if value:
            config[key] = value
    return config


def _download(args: argparse.Namespace) -> int:
    from backtester.data.ccxt_loader import check_download_args, create_exchange, download

    kinds = _kinds(args.kinds)
    # a bad option is refused here, before any request (no retries against a dead connection)
    check_download_args(
        args.exchange,
        args.symbol,
        args.timeframe,
        start=args.start,
        end=args.end,
        store=args.store,
        cli=True,
        kinds=kinds,
    )
    config = _credentials(args.exchange)
    client = create_exchange(args.exchange, config=config) if config else None
    try:
        result = download(
            args.exchange,
            args.symbol,
            args.timeframe,
            start=args.start,
            end=args.end,
            kinds=kinds,
            store=args.store,
            progress=False if args.no_progress else None,
            client=client,
        )
    except KeyboardInterrupt:
        print(
            "interrupted: the pages fetched so far are saved; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(_table(result))
    return 0


def _import(args: argparse.Namespace) -> int:
    from backtester.data.freqtrade import import_freqtrade

    result = import_freqtrade(
        args.from_freqtrade, exchange=args.exchange, timeframe=args.timeframe, store=args.store
    )
    print(_table(result))
    print(_roots_line(args.store))
    return 0


def _table(df: pd.DataFrame) -> str:
    if len(df) == 0:
        return "(nothing)"
    shown = df.copy()
    for column in ("start", "end"):
        if column in shown:
            shown[column] = [
                "" if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M")
                for v in shown[column]
            ]
    return str(shown.to_string(index=False))


def _roots_line(store: str | None) -> str:
    from backtester.data.store import bundled_root, store_root

    bundled = bundled_root()
    text = (
        f"store: {store_root(store)} (downloads go here; change with --store or $BACKTESTER_STORE)"
    )
    return text + (f"; bundled (read-only): {bundled}" if bundled is not None else "")


def _list(args: argparse.Namespace) -> int:
    from backtester.data.integrity import LIST_DISPLAY_COLUMNS, list_store
    from backtester.data.store import existing_store

    existing_store(args.store)
    listing = list_store(args.store)
    if len(listing) == 0:
        print(
            "no datasets; download some with `backtester data download --symbol BTC/USDT:USDT --start 2024-01-01`"
        )
        print(_roots_line(args.store))
        return 0
    print(_table(listing[LIST_DISPLAY_COLUMNS]))
    print(_roots_line(args.store))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from backtester.data.integrity import list_store, verify_store
    from backtester.data.store import existing_store, store_root

    existing_store(args.store)
    problems = verify_store(args.store)
    try:
        listing = list_store(args.store)
        n: int | str = len(listing)
        located = listing["location"].value_counts()
        counts = (
            f" ({int(located.get('store', 0))} in the store {store_root(args.store)}, "
            f"{int(located.get('bundled', 0))} bundled)"
        )
    except BacktesterError:  # e.g. a malformed manifest: verify's own rows say what to do
        n, counts = "the", ""
    if len(problems) == 0:
        print(f"ok: {n} datasets verified, no problems{counts}")
        return 0
    print(problems.to_string(index=False))
    print(f"{len(problems)} problem(s) in {n} datasets{counts}", file=sys.stderr)
    return 1


def _repair(args: argparse.Namespace) -> int:
    from backtester.data.ccxt_loader import repair
    from backtester.data.store import existing_store

    existing_store(args.store)
    result = repair(
        args.datasets or None,
        store=args.store,
        progress=False if args.no_progress else None,
    )
    if len(result) == 0:
        print("ok: no damaged dataset found (`backtester data verify` lists every problem)")
        return 0
    print(result.to_string(index=False))
    return 1 if (result["action"] == "cannot repair").any() else 0


def _rebuild_manifest(args: argparse.Namespace) -> int:
    from backtester.data.integrity import rebuild_manifest
    from backtester.data.store import existing_store, store_root

    existing_store(args.store)
    result = rebuild_manifest(args.store)
    if len(result):
        print(result.to_string(index=False))
    print(f"manifest rebuilt: {store_root(args.store) / 'manifest.json'}")
    return 0
