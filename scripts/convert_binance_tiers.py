"""Convert a Binance USDⓈ-M leverage-bracket snapshot into the packaged all-symbols tier table.

Maintainer script (not part of the package; run from a clone). The input is a ccxt
``fetch_leverage_tiers`` dump whose tiers keep the raw ``/fapi/v1/leverageBracket`` bracket under
``info`` (freqtrade's ``freqtrade/exchange/binance_leverage_tiers.json``). The output is one
gzip-compressed JSON file, ``backtester/rules/tables/binanceusdm__ALL__<YYYY-MM-DD>.json.gz``,
read by ``backtester.rules.tables`` on first use of a symbol without a hand-made table::

    {"exchange": ..., "effective_from": ..., "confirmed_until": ..., "basis": "notional",
     "confidence": ..., "source": ..., "sha256": <of the input file>, "converted_by": ...,
     "note": ..., "columns": [tier, floor, cap, max_leverage, mmr, maint_amount],
     "symbols": {"SOL/USDT:USDT": [[1, 0, 50000, 100, 0.005, 0], ...], ...}}

Rows are the raw brackets (bracket, notionalFloor, notionalCap, initialLeverage,
maintMarginRatio, cum), unchanged; the script refuses an input whose ccxt fields disagree with
them, whose tiers are not contiguous from 0, or whose ``cum`` breaks the tax-bracket recurrence.
The output is byte-for-byte reproducible (sorted symbols, gzip mtime 0).

Usage::

    python scripts/convert_binance_tiers.py SNAPSHOT.json --date 2026-05-07 \
        --source "https://github.com/freqtrade/freqtrade/... at commit dc4384de8c15"
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "backtester" / "rules" / "tables"
COLUMNS = ["tier", "floor", "cap", "max_leverage", "mmr", "maint_amount"]
DEFAULT_SOURCE = (
    "https://github.com/freqtrade/freqtrade/blob/develop/freqtrade/exchange/"
    "binance_leverage_tiers.json at commit dc4384de8c15 (2026-05-07): ccxt fetch_leverage_tiers "
    "output with the raw /fapi/v1/leverageBracket brackets (bracket, notionalFloor, notionalCap, "
    "initialLeverage, maintMarginRatio, cum); copied from the shared data set "
    "binance_usdm_roshan7869/binance_leverage_tiers.json (Roshan7869/algotrading @ "
    "db07ceb71ac165a38fe200a86ae48586ed040f60, GPL-3.0)"
)


def _number(value: Any) -> int | float:
    # integral values as ints (shorter JSON; float64 exactly the same once read)
    x = float(value)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def _rows(symbol: str, tiers: list[dict[str, Any]]) -> list[list[int | float]]:
    rows = []
    for k, tier in enumerate(tiers, start=1):
        raw = tier["info"]
        row = [
            int(raw["bracket"]),
            float(raw["notionalFloor"]),
            float(raw["notionalCap"]),
            float(raw["initialLeverage"]),
            float(raw["maintMarginRatio"]),
            float(raw["cum"]),
        ]
        parsed = [
            tier["tier"],
            tier["minNotional"],
            tier["maxNotional"],
            tier["maxLeverage"],
            tier["maintenanceMarginRate"],
        ]
        if row[0] != k or [float(v) for v in parsed] != row[:5] or tier["symbol"] != symbol:
            raise SystemExit(f"{symbol} tier {k}: ccxt fields {parsed} disagree with raw {raw}")
        rows.append(row)
    floors = [r[1] for r in rows]
    caps = [r[2] for r in rows]
    if (
        floors[0] != 0.0
        or caps[:-1] != floors[1:]
        or any(c <= f for f, c in zip(floors, caps, strict=True))
    ):
        raise SystemExit(f"{symbol}: tiers not contiguous from 0: floors {floors}, caps {caps}")
    if not all(0.0 < r[4] < 1.0 and r[3] >= 1.0 and r[5] >= 0.0 for r in rows):
        raise SystemExit(f"{symbol}: mmr, leverage or cum out of range: {rows}")
    cum = 0.0
    for n in range(1, len(rows)):
        cum += floors[n] * (rows[n][4] - rows[n - 1][4])
        if abs(cum - rows[n][5]) > 1e-6 * max(1.0, rows[n][5]):
            raise SystemExit(f"{symbol} tier {n + 1}: cum {rows[n][5]} != recurrence {cum}")
    return [[_number(v) for v in row] for row in rows]


def convert(src: Path, day: str, source: str) -> tuple[Path, dict[str, Any]]:
    """Return the output path and the converted document of snapshot ``src`` dated ``day``."""
    blob = src.read_bytes()
    raw = json.loads(blob)
    symbols = {symbol: _rows(symbol, raw[symbol]) for symbol in sorted(raw)}
    doc = {
        "exchange": "binanceusdm",
        "effective_from": f"{day}T00:00:00Z",
        "confirmed_until": f"{day}T00:00:00Z",
        "basis": "notional",
        "confidence": "V-code",
        "source": source,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "converted_by": "scripts/convert_binance_tiers.py",
        "note": (
            f"Binance USDⓈ-M bracket snapshot of {day}, {len(symbols)} markets (date of the "
            "file's last commit; the start of these brackets is unknown, so they are applied "
            "from that date)"
        ),
        "columns": COLUMNS,
        "symbols": symbols,
    }
    return OUT_DIR / f"binanceusdm__ALL__{day}.json.gz", doc


def write(path: Path, doc: dict[str, Any]) -> int:
    """Write ``doc`` as reproducible gzip-compressed compact JSON; return its size in bytes."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)
    path.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot", type=Path, help="ccxt fetch_leverage_tiers JSON dump")
    parser.add_argument("--date", required=True, help="snapshot date YYYY-MM-DD")
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="provenance text")
    args = parser.parse_args(argv)
    path, doc = convert(args.snapshot, args.date, args.source)
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
        hand = (
            OUT_DIR / f"binanceusdm__{symbol.replace('/', '_').replace(':', '_')}__{args.date}.json"
        )
        if hand.is_file() and symbol in doc["symbols"]:
            rows = [[float(v) for v in r] for r in json.loads(hand.read_text())["rows"]]
            if rows != [[float(v) for v in r] for r in doc["symbols"][symbol]]:
                raise SystemExit(f"{symbol}: snapshot brackets differ from {hand.name}")
    size = write(path, doc)
    print(
        f"{path.relative_to(ROOT)}: {len(doc['symbols'])} symbols, {size:,} bytes, "
        f"source sha256 {doc['sha256']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
