"""Import a freqtrade data directory into the store: futures, mark and funding files (layer: data).

freqtrade (https://www.freqtrade.io) keeps the futures data it downloads under
``user_data/data/<exchange>/futures/`` as one file per pair, timeframe and candle type::

    XRP_USDT_USDT-1h-futures.feather      last-price bars     -> kind "ohlcv"
    XRP_USDT_USDT-1h-mark.feather         mark-price bars     -> kind "mark"
    XRP_USDT_USDT-1h-index.feather        index-price bars    -> kind "index"
    XRP_USDT_USDT-8h-funding_rate.feather funding events      -> kind "funding"

Columns are ``date, open, high, low, close, volume`` (``date`` the bar open, UTC); a funding_rate
file stores the rate in ``open`` (its other columns are 0) and its timestamps as the exchange
recorded them. The pair name is freqtrade's file name of the ccxt symbol (``/`` and ``:`` replaced
by ``_``): ``XRP_USDT_USDT`` is ``XRP/USDT:USDT``. Files may be ``.feather`` or ``.parquet``.

Import rules (the same as a download's, :mod:`backtester.data.ccxt_loader`):

* every file is read and checked before anything is written: missing or non-numeric columns,
  NaN prices, duplicate or unordered rows, bars off the file's timeframe and pair names that are not
  a perpetual's are refused with one line naming the file, the field and the fix; gaps and
  OHLC-inconsistent bars are reported in the result's ``problems`` column, as a download does;
* a stored value is never replaced and sources are never mixed: the same rows give "up to
  date" (re-importing is idempotent); a file that only adds bars to an earlier freqtrade import
  (freqtrade downloaded more) gives "extended"; any other difference (a changed value, or rows
  next to a download's) refuses the whole import before any write;
* each dataset is written atomically with its manifest entry (``source`` ``"freqtrade"``, the
  source file's name and sha256), so ``data verify`` checks it like a download.

Funding events do not depend on the bar timeframe: they are written beside the bars of every
timeframe imported for the pair, so a load never takes funding from another store or the bundle.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester._typing import EXCHANGES, contract_type_of
from backtester.data import integrity, schema
from backtester.data import store as data_store
from backtester.errors import ConfigError, DataError, did_you_mean

log = logging.getLogger(__name__)

__all__ = [
    "CANDLE_KINDS",
    "FREQTRADE_EXCHANGES",
    "IMPORT_COLUMNS",
    "import_freqtrade",
    "symbol_of_pair",
]

# freqtrade's candle type (the file name's last part) -> the store's dataset kind
CANDLE_KINDS: dict[str, str] = {
    "futures": "ohlcv",
    "mark": "mark",
    "index": "index",
    "funding_rate": "funding",
}
# freqtrade's exchange folder names -> the exchange profiles of this package
FREQTRADE_EXCHANGES: dict[str, str] = {
    "binance": "binanceusdm",
    "binanceusdm": "binanceusdm",
    "okx": "okx",
    "bybit": "bybit",
    "binancecoinm": "binancecoinm",
}
_LINEAR_ONLY = ("binanceusdm",)  # profiles of USDⓈ-M (linear) perpetuals only
IMPORT_COLUMNS: tuple[str, ...] = (
    "symbol",
    "timeframe",
    "kind",
    "status",
    "rows_added",
    "rows",
    "start",
    "end",
    "problems",
    "source_file",
    "path",
)
_SOURCE = "freqtrade"
_SUFFIXES = (".feather", ".parquet")
_FREQTRADE_COLUMNS = ("date", "open", "high", "low", "close", "volume")
# PAIR-TIMEFRAME-CANDLE.EXT; the pair is everything before the timeframe (it may hold '-')
_FILE_RE = re.compile(
    r"(?P<pair>.+)-(?P<timeframe>[0-9]+[smhdwM])-(?P<candle>[A-Za-z_]+)\.(?P<ext>[a-z.]+)"
)
_PART_RE = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    symbol: str
    timeframe: str
    kind: str


@dataclass(slots=True)
class _Planned:
    symbol: str
    timeframe: str
    kind: str
    frame: pd.DataFrame
    source: _File
    status: str = ""
    added: int = 0
    problems: str = ""
    path: Path | None = None


def symbol_of_pair(pair: str, *, file: str = "file") -> str:
    """Return the ccxt symbol of freqtrade's file-name pair: ``XRP_USDT_USDT`` -> ``XRP/USDT:USDT``.

    Raises
    ------
    DataError
        If the pair is not ``BASE_QUOTE_SETTLE`` (a spot pair ``XRP_USDT``, a dated future
        ``BTC_USDT_USDT-230630``); the message names the file and the name to use.
    """
    parts = pair.split("_")
    if len(parts) == 3 and all(_PART_RE.fullmatch(p) for p in parts):
        base, quote, settle = parts
        return f"{base}/{quote}:{settle}"
    if len(parts) == 2 and all(_PART_RE.fullmatch(p) for p in parts):
        fix = f"freqtrade names the perpetual {parts[0]}/{parts[1]}:{parts[1]} '{pair}_{parts[1]}'"
    else:
        fix = "only perpetuals are imported (no dated futures or other names)"
    raise DataError(
        f"{file}: pair {pair!r} is not freqtrade's name of a perpetual, BASE_QUOTE_SETTLE such as "
        f"'XRP_USDT_USDT' for XRP/USDT:USDT; {fix}: rename the file or leave it out of the folder"
    )


def _sha256(path: Path) -> str:
    # the store's own file digest (one rule for every sha256 in a manifest)
    return data_store._sha256(path)


# ---------------------------------------------------------------- the folder


def _data_folder(directory: Path) -> tuple[Path, str]:
    # the folder holding the files and the exchange folder's name: DIR/futures (freqtrade's
    # layout under user_data/data/<exchange>), DIR itself when it is .../<exchange>/futures
    if not directory.is_dir():
        what = "is a file" if directory.exists() else "does not exist"
        raise ConfigError(
            f"--from-freqtrade {str(directory)!r} {what}; pass freqtrade's data folder of one "
            "exchange, e.g. user_data/data/binance (or its futures/ subfolder)"
        )
    resolved = directory.resolve()
    if (resolved / "futures").is_dir():
        return resolved / "futures", resolved.name
    if resolved.name == "futures":
        return resolved, resolved.parent.name
    return resolved, resolved.name


def _exchange(folder_name: str, exchange: str | None) -> str:
    if exchange is not None:
        if exchange not in EXCHANGES:
            raise ConfigError(
                f"--exchange must be one of {', '.join(EXCHANGES)}, was {exchange!r}"
                f"{did_you_mean(exchange, EXCHANGES)}"
            )
        return exchange
    found = FREQTRADE_EXCHANGES.get(folder_name.lower())
    if found is None:
        raise ConfigError(
            f"cannot tell the exchange from the folder name {folder_name!r} (freqtrade's exchange "
            f"folders {', '.join(sorted(FREQTRADE_EXCHANGES))} are known); pass --exchange, one "
            f"of {', '.join(EXCHANGES)}"
        )
    return found


def _scan(folder: Path, timeframe: str | None) -> tuple[list[_File], list[dict[str, Any]]]:
    files: list[_File] = []
    skipped: list[dict[str, Any]] = []

    def skip(path: Path, why: str) -> None:
        skipped.append({"status": "skipped", "problems": why, "source_file": path.name, "path": ""})

    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        match = _FILE_RE.fullmatch(path.name)
        if match is None:
            if path.suffix in _SUFFIXES:
                skip(
                    path,
                    "not a PAIR-TIMEFRAME-{futures,mark,index,funding_rate} file (spot candles "
                    "and trades are not imported)",
                )
            continue
        ext, candle = "." + match["ext"], match["candle"]
        if ext not in _SUFFIXES:
            if ext in (".json", ".json.gz", ".jsongz", ".h5"):
                skip(
                    path,
                    f"freqtrade's {ext} format is not read: convert it with `freqtrade "
                    "convert-data --format-from json --format-to feather` (or jsongz, hdf5)",
                )
            continue
        if candle not in CANDLE_KINDS:
            skip(path, f"candle type {candle!r} is not imported (only {', '.join(CANDLE_KINDS)})")
            continue
        tf = match["timeframe"]
        try:
            schema.timeframe_to_ns(tf)
        except DataError:
            skip(path, f"timeframe {tf!r} is not supported (use s, m, h, d or w bars)")
            continue
        kind = CANDLE_KINDS[candle]
        if timeframe is not None and kind != "funding" and tf != timeframe:
            continue
        symbol = symbol_of_pair(match["pair"], file=str(path))
        files.append(_File(path, symbol, tf, kind))
    return files, skipped


# ---------------------------------------------------------------- one file


def _read(file: _File) -> pd.DataFrame:
    path = file.path
    try:
        raw = pd.read_feather(path) if path.suffix == ".feather" else pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a file that is not its format
        reason = " ".join(str(exc).split())[:100]
        raise DataError(
            f"{path}: cannot be read as {path.suffix[1:]} ({reason}); export it again with "
            "freqtrade (`freqtrade download-data --data-format-ohlcv feather`)"
        ) from exc
    # mark and index bars carry no volume (NaN in freqtrade); funding rates are in "open"
    needed: tuple[str, ...] = {"funding": ("date", "open"), "ohlcv": _FREQTRADE_COLUMNS}.get(
        file.kind, _FREQTRADE_COLUMNS[:5]
    )
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: lacks column(s) {missing} (a freqtrade {file.kind} file has "
            f"{', '.join(needed)}; columns were {list(map(str, raw.columns))}); export it again "
            "with freqtrade or rename the columns"
        )
    if len(raw) == 0:
        raise DataError(f"{path}: has no rows; download it again with freqtrade or remove it")
    try:
        when = pd.to_datetime(raw["date"], utc=True).astype("datetime64[ns, UTC]")
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(
            f"{path}: column 'date' is not a date ({' '.join(str(exc).split())[:80]}); export it "
            "again with freqtrade"
        ) from exc
    if file.kind == "funding":
        frame = pd.DataFrame({"timestamp": when, "funding_rate": _numbers(raw, "open", path)})
    else:
        frame = pd.DataFrame({"timestamp": when})
        for column in schema.OHLC_COLUMNS:
            frame[column] = _numbers(raw, column, path)
        # the store's mark and index bars have volume 0 (design.md §1)
        frame["volume"] = _numbers(raw, "volume", path) if file.kind == "ohlcv" else 0.0
    _check_rows(frame, file)
    return frame


def _numbers(raw: pd.DataFrame, column: str, path: Path) -> np.ndarray[Any, Any]:
    try:
        values: np.ndarray[Any, Any] = pd.to_numeric(raw[column]).to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{path}: column {column!r} is not numeric ({' '.join(str(exc).split())[:80]}); "
            "export it again with freqtrade"
        ) from exc
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size and column != "volume":
        when = pd.Timestamp(raw["date"].iloc[int(bad[0])])
        raise DataError(
            f"{path}: column {column!r} has {bad.size} NaN/inf value(s) (first at {when}); "
            "download the range again with freqtrade (`freqtrade download-data --erase`) or drop "
            "those rows"
        )
    if bad.size:
        values = values.copy()
        values[bad] = 0.0  # an unknown volume is none
    return values


def _check_rows(frame: pd.DataFrame, file: _File) -> None:
    ts = schema.timestamps_ns(frame, str(file.path))
    step = np.diff(ts)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        what = "a duplicate" if step[bad[0]] == 0 else "an out-of-order"
        raise DataError(
            f"{file.path}: column 'date' has {what} row at {schema.format_ts(ts[i])} (row {i}, "
            f"{bad.size} in all); freqtrade writes sorted unique rows: download it again, or "
            "sort and de-duplicate the file first"
        )
    if file.kind == "funding":
        rate = frame["funding_rate"].to_numpy()
        big = np.flatnonzero(np.abs(rate) >= 1.0)
        if big.size:
            raise DataError(
                f"{file.path}: column 'open' (the funding rate) must be a fraction (|rate| < 1), "
                f"was {float(rate[big[0]])!r} at {schema.format_ts(ts[big[0]])}; is this a "
                "funding_rate file?"
            )
        return
    tf_ns = schema.timeframe_to_ns(file.timeframe)
    off = np.flatnonzero(ts % tf_ns != 0)
    if off.size:
        raise DataError(
            f"{file.path}: column 'date' must hold {file.timeframe} bar opens (the file name's "
            f"timeframe), was {schema.format_ts(ts[off[0]])} (row {int(off[0])}); rename the file "
            "to its real timeframe"
        )


# ---------------------------------------------------------------- the import


def _plan(files: list[_File], timeframe: str | None) -> list[_Planned]:
    by_symbol: dict[str, list[_File]] = {}
    for file in files:
        by_symbol.setdefault(file.symbol, []).append(file)
    planned: list[_Planned] = []
    for symbol, group in by_symbol.items():
        bars = [f for f in group if f.kind != "funding"]
        funding = [f for f in group if f.kind == "funding"]
        if len(funding) > 1:
            names = ", ".join(f.path.name for f in funding)
            raise DataError(
                f"{funding[0].path.parent}: {len(funding)} funding_rate files for {symbol} "
                f"({names}); keep one of them in the folder (they would be the same events)"
            )
        for file in bars:
            planned.append(_Planned(symbol, file.timeframe, file.kind, _read(file), file))
        if funding:
            events = _read(funding[0])
            timeframes = sorted({f.timeframe for f in bars}, key=schema.timeframe_to_ns)
            if not timeframes and timeframe is not None:
                continue  # no bars of --timeframe for this pair: nothing to put funding beside
            if not timeframes:
                timeframes = [funding[0].timeframe]
            for tf in timeframes:
                planned.append(_Planned(symbol, tf, "funding", events, funding[0]))
    return planned


def _same(stored: pd.DataFrame, frame: pd.DataFrame) -> bool:
    if len(stored) != len(frame) or list(stored.columns) != list(frame.columns):
        return False
    return all(
        np.array_equal(
            schema.timestamps_ns(stored, "stored")
            if c == "timestamp"
            else stored[c].to_numpy(np.float64),
            schema.timestamps_ns(frame, "import")
            if c == "timestamp"
            else frame[c].to_numpy(np.float64),
        )
        for c in stored.columns
    )


def _overlap_difference(stored: pd.DataFrame, frame: pd.DataFrame) -> str | None:
    # how the rows both hold differ (None: every common timestamp has the same values)
    a = schema.timestamps_ns(stored, "stored")
    b = schema.timestamps_ns(frame, "import")
    common, ia, ib = np.intersect1d(a, b, assume_unique=True, return_indices=True)
    for column in stored.columns[1:]:
        diff = np.flatnonzero(
            stored[column].to_numpy(np.float64)[ia] != frame[column].to_numpy(np.float64)[ib]
        )
        if diff.size:
            return (
                f"{column!r} differs on {diff.size} row(s), first at "
                f"{schema.format_ts(common[diff[0]])}"
            )
    return None


def _union(stored: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    merged = pd.concat([stored, frame], ignore_index=True)
    return schema.drop_duplicates(merged, keep="first")


def import_freqtrade(
    directory: str | os.PathLike[str],
    *,
    exchange: str | None = None,
    timeframe: str | None = None,
    store: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Import a freqtrade futures data folder (futures, mark, funding_rate files) into the store.

    Parameters
    ----------
    directory : path
        freqtrade's data folder of one exchange: ``user_data/data/binance`` (its ``futures/``
        subfolder is read) or the ``futures/`` folder itself.
    exchange : str, optional
        Exchange profile of the data (``"binanceusdm"``, ``"okx"``, ``"bybit"``,
        ``"binancecoinm"``); by default from the folder name (freqtrade's ``binance`` is
        ``binanceusdm``).
    timeframe : str, optional
        Import only the bars of this timeframe (``"1h"``); funding files are always read. By
        default every timeframe found.
    store : path, optional
        Store root (see :func:`backtester.data.store.store_root`).

    Returns
    -------
    pandas.DataFrame
        One row per dataset (and per file skipped): ``symbol, timeframe, kind, status,
        rows_added, rows, start, end, problems, source_file, path``; status is ``ok``,
        ``up to date`` (the store holds these rows), ``extended`` (an earlier freqtrade import
        that the file only extends: rows added, none changed) or ``skipped``.

    Raises
    ------
    ConfigError
        A folder that does not exist, an exchange that cannot be told from the folder name.
    DataError
        A file that cannot be read or is invalid (one line naming the file, the field and the fix),
        no freqtrade futures file in the folder, or a dataset the store already holds with other
        rows (nothing is written then).
    """
    if timeframe is not None:
        schema.timeframe_to_ns(timeframe)
    folder, folder_name = _data_folder(Path(directory).expanduser())
    nested = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and p.name.lower() in FREQTRADE_EXCHANGES
    )
    if nested and not any(p.is_file() for p in folder.iterdir()):
        raise DataError(
            f"{folder} holds freqtrade's exchange folders ({', '.join(nested)}), not data files: "
            f"pass one of them, e.g. --from-freqtrade {folder / nested[0]}"
        )
    profile = _exchange(folder_name, exchange)
    files, skipped = _scan(folder, timeframe)
    if not files or (timeframe is not None and all(f.kind == "funding" for f in files)):
        only = f" of timeframe {timeframe}" if timeframe is not None else ""
        raise DataError(
            f"no freqtrade futures files{only} in {folder} (looked for PAIR-TIMEFRAME-"
            f"{{futures,mark,index,funding_rate}}.{{feather,parquet}}, e.g. "
            f"XRP_USDT_USDT-1h-futures.feather); freqtrade keeps them in "
            "user_data/data/<exchange>/futures"
        )
    for file in files:
        if profile in _LINEAR_ONLY and contract_type_of(file.symbol) == "inverse":
            raise DataError(
                f"{file.path}: pair {file.symbol} is coin-margined, which {profile} does not "
                "list (USDⓈ-M perpetuals only); pass --exchange binancecoinm for Binance COIN-M"
            )
    planned = _plan(files, timeframe)
    root = data_store.store_root(store)
    conflicts: list[str] = []
    for item in planned:
        path = data_store.dataset_path(root, profile, item.symbol, item.timeframe, item.kind)
        item.path = path
        if not data_store._is_file(path):
            continue
        # checked against the manifest: a damaged or unrecorded file is refused with its fix
        stored, entry = data_store.read_stored(root, path, item.kind, unrecorded_ok=False)
        if _same(stored, item.frame):
            item.status = "up to date"
            continue
        difference = _overlap_difference(stored, item.frame)
        source = entry.get("source")
        if difference is None and source == _SOURCE:
            # an earlier import of freqtrade data that the new file only extends (freqtrade
            # downloads more bars): the stored rows are kept as they are, the new ones added
            item.frame = _union(stored, item.frame)
            item.status, item.added = "extended", len(item.frame) - len(stored)
            continue
        origin = entry.get("source_file") or source or "unknown source"
        reason = difference or (
            f"the stored rows came from {source or 'an unknown source'}, the file's cover "
            "other bars, and an import never mixes its rows with another source's"
        )
        conflicts.append(
            f"{path} (from {origin}) already holds other {item.kind} rows than "
            f"{item.source.path.name} ({reason})"
        )
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise DataError(
            f"import refused, nothing written: {conflicts[0]}{more}; stored data is never "
            "replaced or mixed: import into another store with --store DIR, or move the stored "
            "dataset aside first"
        )
    rows: list[dict[str, Any]] = []
    for item in planned:
        found = integrity._verify_series(item.frame, item.kind, item.timeframe)
        item.problems = "; ".join(f"{p}: {d}" for p, d in found)
        if item.problems:
            log.warning("%s %s: %s", item.source.path, item.kind, item.problems)
        if item.status in ("", "extended"):
            item.path = data_store.write_dataset(
                item.frame,
                exchange=profile,
                symbol=item.symbol,
                timeframe=item.timeframe,
                kind=item.kind,
                store=store,
                source=_SOURCE,
                extra={
                    "source_file": item.source.path.name,
                    "source_sha256": _sha256(item.source.path),
                },
            )
            if not item.status:
                item.status, item.added = "ok", len(item.frame)
        ts = item.frame["timestamp"]
        rows.append(
            {
                "symbol": item.symbol,
                "timeframe": item.timeframe,
                "kind": item.kind,
                "status": item.status,
                "rows_added": item.added,
                "rows": len(item.frame),
                "start": ts.iloc[0],
                "end": ts.iloc[-1],
                "problems": item.problems,
                "source_file": item.source.path.name,
                "path": str(item.path),
            }
        )
    for row in skipped:
        rows.append({"symbol": "", "timeframe": "", "kind": "", "rows_added": 0, "rows": 0, **row})
    result = pd.DataFrame(rows, columns=list(IMPORT_COLUMNS))
    log.info("freqtrade import %s -> %s %s:\n%s", folder, profile, root, result.to_string())
    return result
