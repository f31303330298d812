"""Rebuild data/bundled/ from the raw source files (run once by a maintainer; see data/README.md).

    python scripts/build_bundled_data.py --source RAW_DATA_DIR

Reads the freqtrade feather files and the Binance leverage-tier JSON listed in data/README.md,
applies the documented defect rules, checks them, and writes the store layout of design.md §1
(parquet, zstd) plus data/bundled/manifest.json. The package never reads the source at run time.
Besides Binance BTC/ETH it bundles Bybit and OKX BTC/ETH and Binance XRP (``VENUES``), whose 1h
last-price bars are aggregated from 5m bars by :func:`hourly_from_5m`.

Nothing is deleted before the new bundle is complete: the source is checked first (every input
file present), the bundle is built and verified in a temporary folder beside ``--out``, and only
then swapped in (``--out`` renamed aside, the new folder renamed into place, the old one removed).
A run interrupted between the two renames is healed by the next run (the old bundle is renamed
back). Any failure leaves ``--out`` as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backtester._atomic import TMP_PREFIX, fsync_dir  # noqa: E402
from backtester.data import integrity, schema, store  # noqa: E402

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


# ---------------------------------------------------------------- other venues (issue 11)

FIVE_MINUTES_PER_HOUR = 12


@dataclass(frozen=True)
class Venue:
    """One bundled market of another venue, read from freqtrade feather files.

    ``mark`` and ``funding`` name the source files (``None``: the source has no such file for
    the bundled range); ``check`` names a higher-timeframe last-price file of the same source that
    the aggregated 1h bars must reproduce (OHLC exactly, volume to 1e-6) where they overlap, or,
    when ``check_rtol`` is set, only agree with to that relative tolerance in OHLC (freqtrade's XRP
    1h file is not the 5m file's series: 5 decimals instead of the 4 of Binance's XRPUSDT tick,
    closes a median 2.8 bp apart, 1/14 of the volume; the 5m file is the one bundled).
    """

    exchange: str
    symbol: str
    folder: str
    source: str
    fetched_at: str
    mark: str | None
    funding: str
    check: str | None = None
    check_rtol: float = 0.0


DKOTL = "Dkotl/trade_bot@a792aaea26c4cd018d02b2e7ea80b3276ee1714a"
HUCKHUCK = "huckhuck12/freqtrade-futures-lab@e0b7618794b70357e7f569439bd403d59bf92973"
FREQTRADE = "freqtrade/freqtrade@c9ae5e1e9ff25bb55dd61f5e5519f7c479291edb"
VENUES: tuple[Venue, ...] = (
    *(
        Venue(
            "bybit",
            symbol,
            "bybit_linear_dkotl",
            DKOTL,
            "2026-07-21T17:00:00+00:00",
            mark="1h-mark",
            funding="1h-funding_rate",
            check="4h",
        )
        for symbol in SYMBOLS
    ),
    # OKX BTC: the source's 1h mark covers only 2026-01-01..16, none of the 2022 bars: no mark
    Venue("okx", "BTC/USDT:USDT", "okx_swap_huckhuck12", HUCKHUCK, "2026-01-16T08:00:00+00:00",
          mark=None, funding="1h-funding_rate"),
    Venue("okx", "ETH/USDT:USDT", "okx_swap_huckhuck12", HUCKHUCK, "2026-01-16T08:00:00+00:00",
          mark="1h-mark", funding="1h-funding_rate"),
    Venue("binanceusdm", "XRP/USDT:USDT", "freqtrade_testdata", FREQTRADE,
          "2021-12-18T00:00:00+00:00", mark="1h-mark", funding="8h-funding_rate", check="1h", check_rtol=1e-2),
)  # fmt: skip


def hourly_from_5m(bars: pd.DataFrame) -> pd.DataFrame:
    """Aggregate 5m bars to 1h: a bar only for the hours all twelve 5m bars exist.

    open = first, high = max, low = min, close = last, volume = sum. An hour with a missing 5m bar
    is dropped (left as a gap), never filled. ``bars`` must be on the 5m grid, strictly increasing.
    """
    ts = schema.timestamps_ns(bars, "5m bars")
    step = schema.timeframe_to_ns("5m")
    if ts.size and (np.any(np.diff(ts) <= 0) or np.any(ts % step)):
        raise ValueError("5m bars must be strictly increasing and on the 5m grid")
    hour = bars["timestamp"].dt.floor("1h")
    grouped = bars.groupby(hour, sort=True)
    out = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    full = grouped.size() == FIVE_MINUTES_PER_HOUR
    out = out[full.to_numpy()].rename_axis("timestamp").reset_index()
    out["timestamp"] = out["timestamp"].astype("datetime64[ns, UTC]")
    return out.loc[:, list(schema.BAR_COLUMNS)].astype(dict.fromkeys(schema.BAR_COLUMNS[1:], "f8"))


def _venue_file(source: Path, venue: Venue, what: str) -> Path:
    return source / venue.folder / f"{store.symbol_safe(venue.symbol)}-{what}.feather"


def _check_against(
    hourly: pd.DataFrame, reference: pd.DataFrame, timeframe: str, rtol: float
) -> None:
    # the aggregated 1h bars reproduce the source's own bars of a higher timeframe (OHLC exactly)
    if timeframe == "1h":
        merged = hourly.merge(reference, on="timestamp", suffixes=("", "_ref"))
    else:
        coarse = (
            hourly.set_index("timestamp")
            .resample(timeframe)
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .dropna()
            .reset_index()
        )
        merged = coarse.merge(reference, on="timestamp", suffixes=("", "_ref"))
    assert len(merged) >= min(len(reference), len(hourly)) - 2, (len(merged), len(reference))
    for column in ("open", "high", "low", "close"):
        if rtol:
            diff = np.abs(merged[column] / merged[f"{column}_ref"] - 1.0).max()
            assert diff <= rtol, (timeframe, column, diff)
        else:
            diff = np.abs(merged[column] - merged[f"{column}_ref"]).max()
            assert diff == 0.0, (timeframe, column, diff)
    if not rtol:
        rel = np.abs(merged["volume"] / merged["volume_ref"] - 1.0).max()
        assert rel < 1e-6, (timeframe, "volume", rel)


def _venue_series(source: Path, venue: Venue) -> dict[str, pd.DataFrame]:
    name = f"{venue.exchange} {venue.symbol}"
    ohlcv = hourly_from_5m(_drop_last(_bars(_venue_file(source, venue, "5m-futures"))))
    if venue.check is not None:
        reference = _drop_last(_bars(_venue_file(source, venue, f"{venue.check}-futures")))
        _check_against(ohlcv, reference, venue.check, venue.check_rtol)
    t0, t1 = ohlcv["timestamp"].iloc[0], ohlcv["timestamp"].iloc[-1]
    series = {"ohlcv": ohlcv}
    if venue.mark is not None:
        mark = _drop_last(_bars(_venue_file(source, venue, venue.mark)))
        # only the bars' range (OKX ETH mark runs to 2026, its last-price bars end in 2022)
        mark = mark[(mark["timestamp"] >= t0) & (mark["timestamp"] <= t1)].reset_index(drop=True)
        mark["volume"] = 0.0
        schema.validate_ohlcv(mark, name=f"{name} mark", timeframe="1h")
        series["mark"] = mark
    raw = pd.read_feather(_venue_file(source, venue, venue.funding))
    series["funding"] = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(raw["date"], utc=True).astype("datetime64[ns, UTC]"),
            "funding_rate": raw["open"].astype(np.float64),
        }
    )
    schema.validate_ohlcv(ohlcv, name=f"{name} ohlcv", timeframe="1h", require_volume=True)
    schema.validate_funding(series["funding"], name=f"{name} funding")
    return series


def _build_venues(source: Path, out: Path) -> None:
    for venue in VENUES:
        for kind, frame in _venue_series(source, venue).items():
            store.write_dataset(
                frame,
                exchange=venue.exchange,
                symbol=venue.symbol,
                timeframe="1h",
                kind=kind,
                store=out,
                fetched_at=venue.fetched_at,
                source=venue.source,
            )
        if venue.exchange == EXCHANGE:  # Binance XRP: its tiers from the same bracket snapshot
            store.write_tiers(
                _tiers(source, venue.symbol),
                exchange=EXCHANGE,
                symbol=venue.symbol,
                date=TIERS_DATE,
                store=out,
                fetched_at=f"{TIERS_DATE}T00:00:00+00:00",
                source="freqtrade/freqtrade binance_leverage_tiers.json (ccxt fetch_leverage_tiers)",
            )


def required_files(source: Path) -> list[Path]:
    """Return every input file the build reads under ``source``."""
    files = [source / ROSHAN / "binance_leverage_tiers.json"]
    for symbol in SYMBOLS:
        safe = store.symbol_safe(symbol)
        files += [source / ROSHAN / f"{safe}-1h-{k}.feather" for k in ("futures", "mark")]
        files.append(source / ROSHAN / f"{safe}-1h-funding_rate.feather")
    files += [source / folder / "BTC_USDT_USDT-1m-futures.feather" for folder, _ in ONE_MINUTE]
    for venue in VENUES:
        whats = ["5m-futures", venue.funding]
        whats += [] if venue.mark is None else [venue.mark]
        whats += [] if venue.check is None else [f"{venue.check}-futures"]
        files += [_venue_file(source, venue, what) for what in whats]
    return files


def check_source(source: Path) -> str | None:
    """Return why ``source`` cannot be built from (one line), or None if every input exists."""
    if not source.is_dir():
        return f"--source {source} is not a folder; pass the raw data directory (data/README.md)"
    missing = [p for p in required_files(source) if not p.is_file()]
    if missing:
        return (
            f"--source {source} lacks {len(missing)} input file(s), first "
            f"{missing[0].relative_to(source)}; pass the raw data directory (data/README.md)"
        )
    return None


def build(source: Path, out: Path) -> None:
    """Write the bundle from ``source`` into the empty folder ``out``."""
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
    _build_venues(source, out)
    (out / store.LOCK).unlink(missing_ok=True)  # the manifest lock is not data


def _aside(out: Path) -> Path:
    return out.with_name(f"{TMP_PREFIX}{out.name}.old")


def swap_in(new: Path, out: Path) -> None:
    """Replace folder ``out`` by folder ``new`` (two renames; the old bundle is removed last)."""
    old = _aside(out)
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        # files that are not built (e.g. .gitkeep) move over to the new bundle
        for child in out.iterdir():
            if (
                child.is_file()
                and child.name != "manifest.json"
                and not (new / child.name).exists()
            ):
                shutil.copy2(child, new / child.name)
        os.replace(out, old)
    os.replace(new, out)
    fsync_dir(out.parent)
    if old.exists():
        shutil.rmtree(old)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--source", required=True, help="the raw data directory (see data/README.md for its origin)"
    )
    parser.add_argument("--out", default=str(REPO / "data" / "bundled"))
    args = parser.parse_args(argv)
    source, out = Path(args.source), Path(args.out)
    old = _aside(out)
    if old.is_dir() and not out.exists():  # a swap was interrupted between its two renames
        os.replace(old, out)
        print(f"restored the previous bundle {out} from an interrupted run", file=sys.stderr)
    problem = check_source(source)
    if problem is not None:
        print(f"error: {problem}; {out} is unchanged", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{out.name}.", dir=out.parent))
    try:
        try:
            build(source, new)
        except Exception as exc:  # a defect rule or a source file failed: one line, out kept
            print(
                f"error: build failed ({type(exc).__name__}: {exc}); {out} is unchanged",
                file=sys.stderr,
            )
            return 1
        problems = integrity.verify_store(new)
        problems = problems[problems["location"] == "store"]
        if len(problems):
            print(problems.to_string())
            print(f"error: the new bundle has problems; {out} is unchanged", file=sys.stderr)
            return 1
        swap_in(new, out)
    finally:
        if new.exists():
            shutil.rmtree(new)
    listing = integrity.list_store(out)
    listing = listing[listing["location"] == "store"]
    print(
        listing[
            ["exchange", "timeframe", "symbol", "kind", "start", "end", "rows", "size_kb"]
        ].to_string()
    )
    print(f"total {listing['size_kb'].sum() / 1024:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
