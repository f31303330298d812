"""Rebuild data/bundled/ from the raw source files (run once by a maintainer; see data/README.md).

    python scripts/build_bundled_data.py --source RAW_DATA_DIR

Reads the freqtrade feather files and the Binance leverage-tier JSON listed in data/README.md,
applies the documented defect rules, checks them, and writes the store layout of design.md §1
(parquet, zstd) plus data/bundled/manifest.json. The package never reads the source at run time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backtester.data import schema, store  # noqa: E402

EXCHANGE = "binanceusdm"
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
TIERS_DATE = "2026-05-07"
# the BTC listing placeholder bars (flat 10000.00, ~0 volume) before trading started
PLACEHOLDERS = {
    "BTC/USDT:USDT": [
        pd.Timestamp("2019-09-08 17:00", tz="UTC"),
        pd.Timestamp("2019-09-08 18:00", tz="UTC"),
    ]
}
ROSHAN = "binance_usdm_roshan7869"
ROSHAN_SOURCE = "Roshan7869/algotrading@db07ceb71ac165a38fe200a86ae48586ed040f60"
ONE_MINUTE = (
    ("binance_usdm_1m_typhonun", "typhonun/DcaTpStrategy@057525d1db7e665da1122809889fb38144460d88"),
    (
        "binance_usdm_1m_thesnowguru",
        "TheSnowGuru/Market-Swarm-Agents-@a03d14a5f0e129bb6d419618886fdff8a5872a40",
    ),
)
# whole hours of the merged 1m window (partial first/last hours and the live last bar dropped)
ONE_MINUTE_RANGE = (
    pd.Timestamp("2025-05-04 16:00", tz="UTC"),
    pd.Timestamp("2025-06-24 10:00", tz="UTC"),
)


def _bars(path: Path) -> pd.DataFrame:
    df = pd.read_feather(path).rename(columns={"date": "timestamp"})
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    return df.loc[:, list(schema.BAR_COLUMNS)].reset_index(drop=True)


def _drop_last(df: pd.DataFrame) -> pd.DataFrame:
    # the last candle of a live download may be incomplete: drop it
    return df.iloc[:-1].reset_index(drop=True)


def _series(source: Path, symbol: str) -> dict[str, pd.DataFrame]:
    safe = store.symbol_safe(symbol)
    ohlcv = _drop_last(_bars(source / ROSHAN / f"{safe}-1h-futures.feather"))
    placeholders = PLACEHOLDERS.get(symbol, [])
    if placeholders:
        rows = ohlcv[ohlcv["timestamp"].isin(placeholders)]
        assert len(rows) == len(placeholders), rows
        assert (rows[["open", "high", "low", "close"]] == 10000.0).all().all(), rows
        ohlcv = ohlcv[~ohlcv["timestamp"].isin(placeholders)].reset_index(drop=True)
    mark = _drop_last(_bars(source / ROSHAN / f"{safe}-1h-mark.feather"))
    mark["volume"] = 0.0
    raw = pd.read_feather(source / ROSHAN / f"{safe}-1h-funding_rate.feather")
    funding = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(raw["date"], utc=True).astype("datetime64[ns, UTC]"),
            "funding_rate": raw["open"].astype(np.float64),
        }
    )
    schema.validate_ohlcv(ohlcv, name=f"{symbol} ohlcv", timeframe="1h", require_volume=True)
    schema.validate_ohlcv(mark, name=f"{symbol} mark", timeframe="1h")
    schema.validate_funding(funding, name=f"{symbol} funding")
    return {"ohlcv": ohlcv, "mark": mark, "funding": funding}


def _one_minute(source: Path, reference_1h: pd.DataFrame) -> pd.DataFrame:
    first = _drop_last(_bars(source / ONE_MINUTE[0][0] / "BTC_USDT_USDT-1m-futures.feather"))
    second = _drop_last(_bars(source / ONE_MINUTE[1][0] / "BTC_USDT_USDT-1m-futures.feather"))
    overlap = first.merge(second, on="timestamp", suffixes=("_a", "_b"))
    assert len(overlap) > 10_000, len(overlap)
    for column in ("open", "high", "low", "close", "volume"):
        diff = np.abs(overlap[f"{column}_a"] - overlap[f"{column}_b"]).max()
        assert diff == 0.0, (column, diff)
    merged = schema.drop_duplicates(pd.concat([first, second]), keep="first")
    lo, hi = ONE_MINUTE_RANGE
    merged = merged[(merged["timestamp"] >= lo) & (merged["timestamp"] < hi)].reset_index(drop=True)
    schema.validate_ohlcv(merged, name="BTC 1m", timeframe="1m", require_volume=True)
    # cross-check: the 1m bars aggregate exactly to the bundled 1h bars
    hourly = (
        merged.set_index("timestamp")
        .resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
    )
    ref = reference_1h.set_index("timestamp").loc[hourly.index, ["open", "high", "low", "close"]]
    assert np.abs(hourly.to_numpy() - ref.to_numpy()).max() < 1e-9
    return merged


def _tiers(source: Path, symbol: str) -> pd.DataFrame:
    raw = json.loads((source / ROSHAN / "binance_leverage_tiers.json").read_text())
    rows = []
    for tier in raw[symbol]:
        info = tier["info"]
        rows.append(
            {
                "tier": int(info["bracket"]),
                "floor": float(info["notionalFloor"]),
                "cap": float(info["notionalCap"]),
                "max_leverage": float(info["initialLeverage"]),
                "mmr": float(info["maintMarginRatio"]),
                "maint_amount": float(info["cum"]),
                "basis": "notional",
            }
        )
    return schema.validate_tiers(pd.DataFrame(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", required=True, help="the raw data directory (see data/README.md for its origin)"
    )
    parser.add_argument("--out", default=str(REPO / "data" / "bundled"))
    args = parser.parse_args()
    source, out = Path(args.source), Path(args.out)
    for child in out.iterdir() if out.exists() else []:
        if child.is_dir():
            shutil.rmtree(child)
        elif child.name == "manifest.json":
            child.unlink()
    fetched = "2026-05-17T07:00:00+00:00"  # when the source snapshot was downloaded (its last bar)
    for symbol in SYMBOLS:
        series = _series(source, symbol)
        for kind, frame in series.items():
            store.write_dataset(
                frame,
                exchange=EXCHANGE,
                symbol=symbol,
                timeframe="1h",
                kind=kind,
                store=out,
                fetched_at=fetched,
                source=ROSHAN_SOURCE,
            )
        store.write_tiers(
            _tiers(source, symbol),
            exchange=EXCHANGE,
            symbol=symbol,
            date=TIERS_DATE,
            store=out,
            fetched_at=f"{TIERS_DATE}T00:00:00+00:00",
            source="freqtrade/freqtrade binance_leverage_tiers.json (ccxt fetch_leverage_tiers)",
        )
        if symbol == "BTC/USDT:USDT":
            minute = _one_minute(source, series["ohlcv"])
            store.write_dataset(
                minute,
                exchange=EXCHANGE,
                symbol=symbol,
                timeframe="1m",
                kind="ohlcv",
                store=out,
                fetched_at="2025-06-24T10:32:00+00:00",
                source=" + ".join(s for _, s in ONE_MINUTE),
            )
    (out / store.LOCK).unlink(missing_ok=True)  # the manifest lock is not data
    listing = store.list_store(out)
    listing = listing[listing["location"] == "store"]
    print(listing[["timeframe", "symbol", "kind", "start", "end", "rows", "size_kb"]].to_string())
    print(f"total {listing['size_kb'].sum() / 1024:.2f} MB")
    problems = store.verify_store(out)
    problems = problems[problems["location"] == "store"]
    if len(problems):
        print(problems.to_string())
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
