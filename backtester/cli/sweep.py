"""``backtester sweep`` and ``backtester report``: run a TOML sweep config, report a finished run.

Handlers only translate options into ``run_config`` / ``open_run`` / ``sweep_report`` calls and
print where the results are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from backtester.errors import BacktesterError, ConfigError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, was {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, was {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``sweep`` and ``report`` commands to the top-level parser."""
    sw = subparsers.add_parser(
        "sweep",
        help="run a TOML sweep config (symbols x strategy grid x engine grid), resumable",
        description=(
            "Run every combination of a TOML config into a run directory, chunk by chunk. "
            "Kill it at any moment and continue with --resume; results go to "
            "<out>/results.parquet (open with bt.open_run)."
        ),
    )
    sw.add_argument(
        "config",
        help="the sweep config (.toml); the bundled examples (configs/hold.toml, ...) are found "
        "from any directory",
    )
    sw.add_argument("--out", required=True, help="run directory, e.g. runs/sma-btc")
    sw.add_argument(
        "--resume", action="store_true", help="continue the run in --out, keeping finished chunks"
    )
    sw.add_argument(
        "--scheduler",
        default=None,
        metavar="tls://HOST:PORT",
        help="run the chunks on this Dask distributed scheduler (needs backtester[dask]). "
        "Dask sends pickles, which run code: use tls:// with --tls-ca-file/--tls-cert/--tls-key; "
        "plain tcp:// is unauthenticated and must only reach a cluster you trust (loopback, or "
        "another host with --allow-insecure-scheduler)",
    )
    sw.add_argument(
        "--tls-ca-file", default=None, metavar="PEM", help="CA certificate of a tls:// cluster"
    )
    sw.add_argument(
        "--tls-cert", default=None, metavar="PEM", help="this client's certificate (tls://)"
    )
    sw.add_argument(
        "--tls-key",
        default=None,
        metavar="PEM",
        help="this client's private key, if it is not inside --tls-cert",
    )
    sw.add_argument(
        "--allow-insecure-scheduler",
        action="store_true",
        help="accept a plain tcp:// scheduler on another host (anyone who can reach the "
        "cluster can run code on this machine; only on a network you trust)",
    )
    sw.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="local worker processes (default: one per core; 1 = in this process)",
    )
    sw.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=None,
        help="columns per chunk (default: a quarter of the grid, at most 20,000)",
    )
    sw.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    sw.add_argument(
        "--report", action="store_true", help="also write the report to <out>/report when done"
    )
    sw.set_defaults(handler=_sweep)

    rp = subparsers.add_parser(
        "report",
        help="render the report of a finished sweep run (HTML + PNG figures)",
        description="Best/worst settings, survival by leverage and parameter sensitivity.",
    )
    rp.add_argument("run", help="a run directory written by `backtester sweep`")
    rp.add_argument("--out", default=None, help="report directory (default: <run>/report)")
    rp.add_argument(
        "--metric",
        default=None,
        help="column that ranks settings (default calmar: annualised return / max drawdown; "
        "survival for survival runs)",
    )
    rp.add_argument("--top", type=_positive_int, default=10, help="rows in the best/worst tables")
    rp.set_defaults(handler=_report)


def _sweep(args: argparse.Namespace) -> int:
    from backtester.sweep import run_config
    from backtester.sweep.bundled import find_config

    config = find_config(args.config)
    if str(config) != args.config:
        print(f"using the bundled config {config}", file=sys.stderr)
    if args.scheduler is not None and args.workers is not None:
        raise ConfigError("--workers applies to local runs; leave it out with --scheduler")
    try:
        run = run_config(
            config,
            out=args.out,
            resume=args.resume,
            scheduler=args.scheduler,
            progress=not args.no_progress and sys.stderr.isatty(),
            workers=args.workers,
            chunk_size=args.chunk_size,
            security=_security(args),
            allow_insecure_scheduler=args.allow_insecure_scheduler,
        )
    except KeyboardInterrupt:
        print(
            "sweep interrupted: finished chunks are kept; continue with "
            f"`backtester sweep {args.config} --out {args.out} --resume`",
            file=sys.stderr,
        )
        raise
    meta = run.metadata
    unit = "account(s)" if run.keys[0] == "legs" else "symbol(s)"
    print(
        f"sweep complete: {len(run.table):,} rows ({meta['n_symbols']} {unit} x "
        f"{meta['n_cols']:,} settings) in {meta.get('elapsed_s', 0):.1f} s "
        f"({meta.get('chunks_run', 0)} of {meta['n_chunks']} chunks computed)"
    )
    print(f"results: {run.path / 'results.parquet'}  (bt.open_run({str(run.path)!r}))")
    if args.report:
        print(f"report:  {_write_report(run, None, None, 10)}")
    return 0


def _security(args: argparse.Namespace) -> Any:
    from backtester.sweep.executors import DaskSecurity

    files = (args.tls_ca_file, args.tls_cert, args.tls_key)
    if all(f is None for f in files):
        return None
    if args.tls_ca_file is None or args.tls_cert is None:
        raise ConfigError(
            "--tls-ca-file and --tls-cert go together (plus --tls-key if the key is a separate "
            "file); pass both"
        )
    return DaskSecurity(ca_file=args.tls_ca_file, cert=args.tls_cert, key=args.tls_key)


def _write_report(run: Any, out: str | None, metric: str | None, top: int) -> Path:
    from backtester.reports.html import check_output_dir
    from backtester.reports.sweep import ranked, sweep_report, worst_first
    from backtester.sweep.runner import equity_curves

    target = Path(out) if out is not None else run.path / "report"
    survival_mode = run.metadata.get("mode") == "survival"
    curves = None
    if not survival_mode:
        check_output_dir(target)  # before the re-runs
        name, order = ranked(run.table, metric=metric)
        valid = order[order[name].notna()]
        best = valid.head(_CURVES)
        worst = worst_first(valid.sort_index(), name).head(_CURVES)  # as the report's table
        progress = sys.stderr.isatty()
        try:
            curves = {
                "best": equity_curves(run, best, progress=progress),
                "worst": equity_curves(run, worst.drop(index=best.index, errors="ignore"),
                                       progress=progress),
            }  # fmt: skip
        except BacktesterError as exc:  # the table alone still makes the report
            print(f"note: the equity curves are left out of the report ({exc})", file=sys.stderr)
            curves = None
    return sweep_report(
        run.table, metadata=run.metadata, out=target, metric=metric, top=top, curves=curves
    )


# settings re-run for the report's equity and drawdown figure, at each end of the ranking
_CURVES = 3


def _report(args: argparse.Namespace) -> int:
    from backtester.sweep import open_run

    run = open_run(args.run)
    index = _write_report(run, args.out, args.metric, args.top)
    print(f"report: {index}")
    return 0
