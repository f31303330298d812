"""Local parquet store of market data: paths, atomic reads/writes, manifest, listing, verification.

Layout under a store root (design.md §1)::

    <root>/<exchange>/<SYMBOL_SAFE>/<timeframe>/<kind>.parquet    kind in ohlcv, mark, index, funding
    <root>/<exchange>/<SYMBOL_SAFE>/tiers/<YYYY-MM-DD>.parquet      dated leverage-tier snapshots
    <root>/manifest.json                                             one entry per dataset

The root is, in order: the ``store`` argument, ``$BACKTESTER_STORE``, the clone's ``data/`` when
running from a source checkout, else the per-user data directory (platformdirs). Bundled data
(``backtester/_bundled`` in a wheel, ``data/bundled`` in a clone) has the same layout, is read-only
and is searched after the user store.

Every write goes to a temporary file in the same directory, is fsynced and then renamed over the
target with ``os.replace``, so a crash at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester._atomic import atomic_path, write_bytes_atomic
from backtester.data.schema import (
    BAR_COLUMNS,
    FUNDING_COLUMNS,
    TIER_COLUMNS,
    find_gaps,
    format_ts,
    ohlc_problems,
    timeframe_to_ns,
    timestamps_ns,
)
from backtester.errors import ConfigError, DataError, check_one_of

log = logging.getLogger(__name__)

__all__ = [
    "ENV_STORE",
    "SERIES_KINDS",
    "bundled_root",
    "dataset_path",
    "download_hint",
    "find_dataset",
    "list_store",
    "list_tier_snapshots",
    "read_dataset",
    "read_manifest",
    "store_root",
    "symbol_safe",
    "tiers_path",
    "verify_store",
    "write_dataset",
    "write_tiers",
]

ENV_STORE = "BACKTESTER_STORE"
SERIES_KINDS: tuple[str, ...] = ("ohlcv", "mark", "index", "funding")
MANIFEST = "manifest.json"
LOCK = ".manifest.lock"
_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 19, "index": False}


# ---------------------------------------------------------------- roots and paths


def _source_checkout() -> Path | None:
    # the clone: <repo>/backtester/data/store.py with <repo>/pyproject.toml naming "backtester"
    repo = Path(__file__).resolve().parents[2]
    pyproject = repo / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return repo if 'name = "backtester"' in text else None


def store_root(store: str | os.PathLike[str] | None = None) -> Path:
    """Return the store root: ``store`` > ``$BACKTESTER_STORE`` > the clone's ``data/`` > user dir."""
    if store is not None:
        return Path(store).expanduser()
    env = os.environ.get(ENV_STORE)
    if env:
        return Path(env).expanduser()
    repo = _source_checkout()
    if repo is not None:
        return repo / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir("backtester", appauthor=False))


def bundled_root() -> Path | None:
    """Return the read-only bundled data root, or None if this install has none."""
    try:
        installed = Path(str(resources.files("backtester") / "_bundled"))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - namespace oddities
        installed = None
    if installed is not None and (installed / MANIFEST).is_file():
        return installed
    repo = _source_checkout()
    if repo is not None and (repo / "data" / "bundled" / MANIFEST).is_file():
        return repo / "data" / "bundled"
    return None


def symbol_safe(symbol: str) -> str:
    """Return the ccxt symbol as a path component: ``BTC/USDT:USDT`` -> ``BTC_USDT_USDT``."""
    if not symbol or not isinstance(symbol, str):
        raise ConfigError(f"symbol must be a ccxt symbol such as 'BTC/USDT:USDT', was {symbol!r}")
    return symbol.replace("/", "_").replace(":", "_")


def dataset_path(root: Path, exchange: str, symbol: str, timeframe: str, kind: str) -> Path:
    """Return ``<root>/<exchange>/<SYMBOL_SAFE>/<timeframe>/<kind>.parquet``."""
    check_one_of(kind, "kind", SERIES_KINDS)
    timeframe_to_ns(timeframe)
    return root / exchange / symbol_safe(symbol) / timeframe / f"{kind}.parquet"


def tiers_path(root: Path, exchange: str, symbol: str, date: pd.Timestamp) -> Path:
    """Return ``<root>/<exchange>/<SYMBOL_SAFE>/tiers/<YYYY-MM-DD>.parquet``."""
    return root / exchange / symbol_safe(symbol) / "tiers" / f"{date:%Y-%m-%d}.parquet"


def _roots(store: str | os.PathLike[str] | None) -> list[tuple[str, Path]]:
    roots = [("store", store_root(store))]
    bundled = bundled_root()
    if bundled is not None and bundled.resolve() != roots[0][1].resolve():
        roots.append(("bundled", bundled))
    return roots


def download_hint(
    exchange: str, symbol: str, timeframe: str, kinds: str, start: str = "2020-01-01"
) -> str:
    """Return the CLI command that downloads a missing dataset (for error messages)."""
    return (
        f"backtester data download --exchange {exchange} --symbol {symbol} "
        f"--timeframe {timeframe} --start {start} --kinds {kinds}"
    )


def find_dataset(
    exchange: str,
    symbol: str,
    timeframe: str,
    kind: str,
    *,
    store: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Return the path of a stored dataset (user store first, then bundled), or None.

    Funding events do not depend on the bar timeframe: when ``<timeframe>/funding.parquet`` is
    absent, the funding dataset stored under another timeframe of the same market is used.
    """
    roots = _roots(store)
    for _, root in roots:
        path = dataset_path(root, exchange, symbol, timeframe, kind)
        if path.is_file():
            return path
    if kind == "funding":
        for _, root in roots:
            market_dir = root / exchange / symbol_safe(symbol)
            candidates = sorted(market_dir.glob("*/funding.parquet")) if market_dir.is_dir() else []
            if candidates:
                return max(candidates, key=lambda p: p.stat().st_size)
    return None


# ---------------------------------------------------------------- reading


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(
            f"dataset {path} cannot be read ({type(exc).__name__}: {str(exc)[:120]}); "
            "delete it and download it again (`backtester data verify` lists damaged files)"
        ) from exc


def read_dataset(
    exchange: str,
    symbol: str,
    timeframe: str,
    kind: str,
    *,
    store: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Return a stored series dataset with canonical columns and a UTC ``timestamp`` column.

    Raises
    ------
    DataError
        If no store holds it; the message gives the download command.
    """
    path = find_dataset(exchange, symbol, timeframe, kind, store=store)
    if path is None:
        roots = ", ".join(str(r) for _, r in _roots(store))
        if "/" in symbol and ":" not in symbol:
            # a spot symbol: the project works on perpetuals, whose ccxt symbol names the settle
            perp = f"{symbol}:{symbol.split('/', 1)[1]}"
            raise DataError(
                f"no {kind} data for {exchange} {symbol} {timeframe}: {symbol!r} is a spot "
                f"symbol; did you mean the perpetual {perp!r}?"
            )
        # a market needs last-price bars, mark bars and funding: name them all in one command
        kinds = "ohlcv,mark,funding" if kind in ("ohlcv", "mark", "funding") else kind
        raise DataError(
            f"no {kind} data for {exchange} {symbol} {timeframe} in {roots}; download it with "
            f"`{download_hint(exchange, symbol, timeframe, kinds)}`"
        )
    return _canonical(_read_parquet(path), kind, path)


def _canonical(df: pd.DataFrame, kind: str, path: Path | str) -> pd.DataFrame:
    columns = list(FUNDING_COLUMNS if kind == "funding" else BAR_COLUMNS)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"dataset {path} lacks column(s) {missing}; delete it and download it again"
        )
    out = df.loc[:, columns].copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    for column in columns[1:]:
        out[column] = out[column].astype(np.float64)
    return out.reset_index(drop=True)


# ---------------------------------------------------------------- writing


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: Path) -> dict[str, dict[str, Any]]:
    """Return ``{dataset_key: entry}`` from ``<root>/manifest.json`` (empty if absent)."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"manifest {path} is not valid JSON ({exc}); delete it and run `backtester data verify`"
        ) from exc
    datasets = data.get("datasets", {}) if isinstance(data, dict) else {}
    return dict(datasets)


@contextlib.contextmanager
def _manifest_lock(root: Path) -> Iterator[None]:
    # serialize read-modify-write of the manifest between processes (POSIX advisory lock; the
    # kernel releases it if the process dies)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _update_manifest(root: Path, key: str, entry: dict[str, Any] | None) -> None:
    with _manifest_lock(root):
        _update_manifest_locked(root, key, entry)


def _update_manifest_locked(root: Path, key: str, entry: dict[str, Any] | None) -> None:
    datasets = read_manifest(root)
    if entry is None:
        datasets.pop(key, None)
    else:
        datasets[key] = entry
    body = {"format": 1, "datasets": dict(sorted(datasets.items()))}
    write_bytes_atomic(root / MANIFEST, (json.dumps(body, indent=1) + "\n").encode("utf-8"))


def _ccxt_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("ccxt")
    except Exception:  # pragma: no cover - ccxt is a dependency
        return None


def _entry(
    root: Path,
    path: Path,
    *,
    exchange: str,
    symbol: str,
    timeframe: str | None,
    kind: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    rows: int,
    fetched_at: str | None,
    source: str | None,
) -> dict[str, Any]:
    return {
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": timeframe,
        "kind": kind,
        "path": path.relative_to(root).as_posix(),
        "start": None if start is None else start.isoformat(),
        "end": None if end is None else end.isoformat(),
        "rows": int(rows),
        "fetched_at": fetched_at or pd.Timestamp.now(tz="UTC").floor("s").isoformat(),
        "ccxt_version": _ccxt_version() if (source or "ccxt") == "ccxt" else None,
        "sha256": _sha256(path),
        "source": source or "ccxt",
    }


def write_dataset(
    frame: pd.DataFrame,
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    kind: str,
    store: str | os.PathLike[str] | None = None,
    fetched_at: str | None = None,
    source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a series dataset and its manifest entry; return the parquet path.

    ``frame`` must have canonical columns (``timestamp`` tz-aware, strictly increasing);
    ``extra`` adds fields to the manifest entry (the loader records ``requested_start``).
    """
    root = store_root(store)
    path = dataset_path(root, exchange, symbol, timeframe, kind)
    df = _canonical(frame, kind, "frame to write")
    ts = timestamps_ns(df, kind)
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        raise DataError(f"{kind} frame to write must have strictly increasing timestamps")
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, **_PARQUET_OPTIONS)
    step = 0 if kind == "funding" else timeframe_to_ns(timeframe)
    start = pd.Timestamp(int(ts[0]), tz="UTC") if ts.size else None
    end = pd.Timestamp(int(ts[-1]) + step, tz="UTC") if ts.size else None
    key = path.relative_to(root).with_suffix("").as_posix()
    entry = _entry(
        root,
        path,
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        kind=kind,
        start=start,
        end=end,
        rows=len(df),
        fetched_at=fetched_at,
        source=source,
    )
    entry.update(extra or {})
    _update_manifest(root, key, entry)
    return path


def write_tiers(
    frame: pd.DataFrame,
    *,
    exchange: str,
    symbol: str,
    date: str | pd.Timestamp,
    store: str | os.PathLike[str] | None = None,
    fetched_at: str | None = None,
    source: str | None = None,
) -> Path:
    """Atomically write a dated leverage-tier snapshot and its manifest entry."""
    from backtester.data.schema import validate_tiers

    root = store_root(store)
    day = pd.Timestamp(date)
    day = (day.tz_localize("UTC") if day.tzinfo is None else day.tz_convert("UTC")).floor("D")
    path = tiers_path(root, exchange, symbol, day)
    df = validate_tiers(frame)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, **_PARQUET_OPTIONS)
    key = path.relative_to(root).with_suffix("").as_posix()
    entry = _entry(
        root,
        path,
        exchange=exchange,
        symbol=symbol,
        timeframe=None,
        kind="tiers",
        start=day,
        end=day,
        rows=len(df),
        fetched_at=fetched_at,
        source=source,
    )
    _update_manifest(root, key, entry)
    return path


def list_tier_snapshots(
    exchange: str, symbol: str, *, store: str | os.PathLike[str] | None = None
) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """Return the stored tier snapshots of a market as ``(date, table)`` pairs sorted by date.

    Tables have columns ``tier, floor, cap, max_leverage, mmr, maint_amount, basis``. When the user
    store and the bundled data both hold a date, the user store's copy is used.
    """
    by_date: dict[pd.Timestamp, pd.DataFrame] = {}
    for _, root in reversed(_roots(store)):  # bundled first so the user store overrides it
        directory = root / exchange / symbol_safe(symbol) / "tiers"
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.parquet")):
            try:
                day = pd.Timestamp(path.stem, tz="UTC")
            except ValueError:
                log.debug("ignoring %s: name is not a date", path)
                continue
            table = _read_parquet(path)
            by_date[day] = table.loc[:, list(TIER_COLUMNS)].reset_index(drop=True)
    return sorted(by_date.items(), key=lambda item: item[0])


# ---------------------------------------------------------------- listing and verification


def _parse_key(root: Path, path: Path) -> dict[str, Any] | None:
    parts = path.relative_to(root).parts
    if len(parts) != 4 or path.suffix != ".parquet":
        return None
    exchange, safe, middle, stem = parts[0], parts[1], parts[2], Path(parts[3]).stem
    if middle == "tiers":
        return {"exchange": exchange, "symbol_safe": safe, "timeframe": None, "kind": "tiers"}
    if stem not in SERIES_KINDS:
        return None
    return {"exchange": exchange, "symbol_safe": safe, "timeframe": middle, "kind": stem}


def _dataset_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.glob("*/*/*/*.parquet") if p.is_file() and not p.name.startswith(".")
    )


#: the columns of list_store() that `backtester data list` prints
LIST_DISPLAY_COLUMNS = [
    "location",
    "exchange",
    "symbol",
    "timeframe",
    "kind",
    "start",
    "end",
    "rows",
    "size_kb",
]
_LIST_COLUMNS = [*LIST_DISPLAY_COLUMNS, "fetched_at", "path"]


def list_store(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Return one row per stored dataset, user store and bundled data.

    Columns: ``location`` ("store" or "bundled"), ``exchange, symbol, timeframe, kind, start, end``
    (UTC; ``end`` is the end of the last bar), ``rows, size_kb, fetched_at, path``.
    """
    rows: list[dict[str, Any]] = []
    for location, root in _roots(store):
        manifest = read_manifest(root)
        for path in _dataset_files(root):
            info = _parse_key(root, path)
            if info is None:
                continue
            key = path.relative_to(root).with_suffix("").as_posix()
            entry = manifest.get(key, {})
            rows.append(
                {
                    "location": location,
                    "exchange": info["exchange"],
                    "symbol": entry.get("symbol", info["symbol_safe"]),
                    "timeframe": info["timeframe"] or "",
                    "kind": info["kind"],
                    "start": pd.Timestamp(entry["start"]) if entry.get("start") else pd.NaT,
                    "end": pd.Timestamp(entry["end"]) if entry.get("end") else pd.NaT,
                    "rows": int(entry["rows"]) if "rows" in entry else -1,
                    "size_kb": round(path.stat().st_size / 1024, 1),
                    "fetched_at": entry.get("fetched_at", ""),
                    "path": str(path),
                }
            )
    return pd.DataFrame(rows, columns=_LIST_COLUMNS)


_VERIFY_COLUMNS = ["location", "dataset", "problem", "detail"]


def _verify_series(df: pd.DataFrame, kind: str, timeframe: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    ts = timestamps_ns(df, "dataset")
    if ts.size == 0:
        return [("empty", "dataset has no rows")]
    step = np.diff(ts)
    if np.any(step == 0):
        problems.append(("duplicates", f"{int((step == 0).sum())} duplicate timestamp(s)"))
    if np.any(step < 0):
        i = int(np.flatnonzero(step < 0)[0]) + 1
        problems.append(("not monotonic", f"timestamps go back at {format_ts(ts[i])}"))
    if kind == "funding":
        rate = df["funding_rate"].to_numpy()
        bad = ~np.isfinite(rate) | (np.abs(rate) >= 1)
        if bad.any():
            problems.append(("bad funding_rate", f"{int(bad.sum())} non-finite or |rate|>=1"))
        return problems
    values = {c: df[c].to_numpy() for c in ("open", "high", "low", "close")}
    finite = np.all([np.isfinite(v) for v in values.values()], axis=0)
    if not finite.all():
        problems.append(("NaN prices", f"{int((~finite).sum())} bar(s) with NaN/inf OHLC"))
    for rule, rows in ohlc_problems(*values.values()).items():
        problems.append(
            (
                "OHLC inconsistent",
                f"{rule} broken on {rows.size} bar(s), first {format_ts(ts[rows[0]])}",
            )
        )
    if not problems:
        gaps = find_gaps(ts, timeframe_to_ns(timeframe))
        if gaps:
            tf = timeframe_to_ns(timeframe)
            missing = sum((b - a) // tf - 1 for a, b in gaps)
            problems.append(
                (
                    "gaps",
                    f"{len(gaps)} gap(s), {missing} missing bar(s); first after "
                    f"{format_ts(gaps[0][0])}",
                )
            )
    return problems


def verify_store(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Check every stored dataset and return one row per problem (empty frame: all good).

    Checks: the file reads as parquet (a truncated or damaged file is reported), its sha256 and
    row count match the manifest, canonical columns, strictly increasing timestamps, finite and
    positive prices, OHLC consistency and gaps; manifest entries whose file is missing.
    Columns: ``location, dataset, problem, detail``.
    """
    found: list[dict[str, str]] = []

    def add(location: str, dataset: str, problem: str, detail: str) -> None:
        found.append(
            {"location": location, "dataset": dataset, "problem": problem, "detail": detail}
        )

    for location, root in _roots(store):
        try:
            manifest = read_manifest(root)
        except DataError as exc:
            add(location, MANIFEST, "manifest unreadable", str(exc))
            manifest = {}
        seen: set[str] = set()
        for path in _dataset_files(root):
            info = _parse_key(root, path)
            if info is None:
                continue
            key = path.relative_to(root).with_suffix("").as_posix()
            seen.add(key)
            entry = manifest.get(key)
            if entry is None:
                add(location, key, "not in manifest", "file present but no manifest entry")
            elif entry.get("sha256") and entry["sha256"] != _sha256(path):
                add(
                    location,
                    key,
                    "checksum mismatch",
                    "sha256 differs from the manifest (interrupted write or changed file); rerun "
                    "its `backtester data download` to re-record it, or delete it",
                )
            try:
                df = pd.read_parquet(path)
            except Exception as exc:
                add(location, key, "unreadable", f"{type(exc).__name__}: {str(exc)[:100]}")
                continue
            if entry is not None and int(entry.get("rows", len(df))) != len(df):
                add(location, key, "row count", f"manifest {entry['rows']}, file {len(df)}")
            if info["kind"] == "tiers":
                missing = [c for c in TIER_COLUMNS if c not in df.columns]
                if missing:
                    add(location, key, "columns", f"missing {missing}")
                continue
            try:
                canonical = _canonical(df, info["kind"], path)
            except DataError as exc:
                add(location, key, "columns", str(exc))
                continue
            try:
                series_problems = _verify_series(canonical, info["kind"], info["timeframe"])
            except (ConfigError, DataError) as exc:  # e.g. a folder that is not a timeframe
                add(location, key, "bad path", f"{exc}; move or delete {path}")
                continue
            for problem, detail in series_problems:
                add(location, key, problem, detail)
        for key in sorted(set(manifest) - seen):
            add(location, key, "missing file", f"manifest lists {manifest[key].get('path', key)}")
    return pd.DataFrame(found, columns=_VERIFY_COLUMNS)
