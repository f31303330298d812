"""Listing, verification, manifest rebuild and repair of the data store (layer: data, above store).

:func:`list_store` lists the stored datasets; :func:`verify_store` checks every file against the
manifest and the schema; :func:`rebuild_manifest` rebuilds ``manifest.json`` from the files
without laundering a damaged one; :func:`inspect_dataset`, :func:`restore_from_copy` and
:func:`quarantine` are the steps of ``backtester data repair`` (driven by
:func:`backtester.data.ccxt_loader.repair`). The layout, the checked reads and the atomic writes
live in :mod:`backtester.data.store`, which this module imports (never the reverse).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester._atomic import TMP_PREFIX, write_bytes_atomic
from backtester.data import store as data_store
from backtester.data.schema import (
    find_gaps,
    format_ts,
    ohlc_problems,
    timeframe_to_ns,
    timestamps_ns,
)
from backtester.errors import ConfigError, DataError

__all__ = [
    "LIST_DISPLAY_COLUMNS",
    "inspect_dataset",
    "list_store",
    "quarantine",
    "rebuild_manifest",
    "restore_from_copy",
    "verify_store",
]


# ---------------------------------------------------------------- listing and verification


def _parse_key(root: Path, path: Path) -> dict[str, Any] | None:
    parts = path.relative_to(root).parts
    if len(parts) != 4 or path.suffix != ".parquet":
        return None
    exchange, safe, middle, stem = parts[0], parts[1], parts[2], Path(parts[3]).stem
    if middle == "tiers":
        return {"exchange": exchange, "symbol_safe": safe, "timeframe": None, "kind": "tiers"}
    if stem not in data_store.SERIES_KINDS:
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
    for location, root in data_store._roots(store):
        manifest = data_store.read_manifest(root)
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


def _leftovers(root: Path) -> list[Path]:
    # temp files of interrupted writes (atomic writes name them TMP_PREFIX...)
    if not root.is_dir():
        return []
    found: list[Path] = []
    for depth in ("", "*/", "*/*/", "*/*/*/"):
        found.extend(p for p in root.glob(f"{depth}{TMP_PREFIX}*") if p.is_file())
    return sorted(found)


_LEFTOVER_AGE_S = 3600.0  # rebuild-manifest removes temp files older than this (not in use)


def verify_store(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Check every stored dataset and return one row per problem (empty frame: all good).

    Checks: the manifest reads; each file reads, its sha256 and row count match the manifest,
    canonical columns, strictly increasing timestamps, finite and positive prices, OHLC
    consistency and gaps, valid tier tables; manifest entries whose file is missing; temp files
    left by interrupted writes. Columns: ``location, dataset, problem, detail``; each detail
    names the fix (``backtester data repair``, ``backtester data rebuild-manifest``).
    """
    from backtester.data.schema import validate_tiers

    found: list[dict[str, str]] = []

    def add(location: str, dataset: str, problem: str, detail: str) -> None:
        found.append(
            {"location": location, "dataset": dataset, "problem": problem, "detail": detail}
        )

    for location, root in data_store._roots(store):
        try:
            manifest = data_store.read_manifest(root)
        except DataError as exc:
            add(location, data_store.MANIFEST, "manifest unreadable", str(exc))
            manifest = {}
        seen: set[str] = set()
        try:
            files = _dataset_files(root)
        except OSError as exc:
            add(location, str(root), "unreadable", str(data_store._os_error(exc, root, "read")))
            continue
        for path in files:
            info = _parse_key(root, path)
            if info is None:
                continue
            key = data_store._key(root, path)
            seen.add(key)
            entry = manifest.get(key)
            try:
                data, digest, _ = data_store._read_bytes(path)
            except DataError as exc:
                add(location, key, "unreadable", str(exc))
                continue
            status = data_store._match(entry, digest)
            if status == "pending" and entry is not None:
                entry = entry["pending"]  # an interrupted write: the file is whole
            if status == "unrecorded":
                add(
                    location,
                    key,
                    "not in manifest",
                    f"file present but no manifest entry; record it with "
                    f"`{data_store.rebuild_manifest_hint(root)}` (validates it first) or delete {path}",
                )
            elif status == "mismatch":
                add(
                    location,
                    key,
                    "checksum mismatch",
                    "sha256 differs from the manifest (bit rot, a torn copy or a change outside "
                    f"backtester); restore it with `{data_store.repair_hint(root, key)}`",
                )
            try:
                df = pd.read_parquet(io.BytesIO(data))
            except Exception as exc:
                add(location, key, "unreadable", f"{type(exc).__name__}: {str(exc)[:100]}")
                continue
            if entry is not None and str(entry.get("rows", len(df))) != str(len(df)):
                add(location, key, "row count", f"manifest {entry.get('rows')}, file {len(df)}")
            if info["kind"] == "tiers":
                try:
                    validate_tiers(df, name="table")
                except DataError as exc:
                    add(location, key, "invalid tiers", str(exc))
                continue
            try:
                canonical = data_store._canonical(df, info["kind"], path)
            except DataError as exc:
                add(location, key, "columns", str(exc))
                continue
            try:
                series_problems = _verify_series(canonical, info["kind"], info["timeframe"])
            except (ConfigError, DataError) as exc:  # e.g. a folder that is not a timeframe
                add(location, key, "bad path", f"{exc}; move or delete {path}")
                continue
            for problem, detail in series_problems:
                if problem in ("duplicates", "not monotonic"):
                    detail += f"; re-fetch it with `{data_store.repair_hint(root, key)}`"
                add(location, key, problem, detail)
        for key in sorted(set(manifest) - seen):
            add(
                location,
                key,
                "missing file",
                f"manifest lists {manifest[key].get('path', key)}; download it again, or drop the "
                f"entry with `{data_store.rebuild_manifest_hint(root)}`",
            )
        for leftover in _leftovers(root):
            add(
                location,
                leftover.relative_to(root).as_posix(),
                "leftover temp file",
                "an interrupted write left it (the datasets are intact); "
                f"`{data_store.rebuild_manifest_hint(root)}` removes it once it is an hour old, or delete it "
                "when no download is running",
            )
    return pd.DataFrame(found, columns=_VERIFY_COLUMNS)


# ---------------------------------------------------------------- rebuilding the manifest


_REBUILD_COLUMNS = ["dataset", "action", "detail"]


def _guess_symbol(safe: str) -> str:
    # BTC_USDT_USDT -> BTC/USDT:USDT (the store's path replaced '/' and ':' by '_')
    parts = safe.split("_")
    if len(parts) == 3:
        return f"{parts[0]}/{parts[1]}:{parts[2]}"
    if len(parts) == 2:
        return f"{parts[0]}/{parts[1]}"
    return safe


def rebuild_manifest(store: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Rebuild ``<store>/manifest.json`` from the dataset files; return one row per dataset.

    Never launders a damaged file: an entry whose sha256 still matches its file is kept as it
    is (a bad ``requested_start``/``fetched_until`` field is dropped); an entry whose file no
    longer matches is kept unchanged, so the file stays refused until ``backtester data repair``;
    a file without an entry is recorded only if it reads and passes the schema checks (no
    duplicate, NaN or OHLC-inconsistent bar; valid tiers); entries of missing files are dropped.
    An unreadable manifest is kept beside it as ``manifest.json.bad-<time>``. Temp files of
    interrupted writes older than an hour are removed. Columns: ``dataset, action, detail``.

    Only the user store is rebuilt; bundled data is read-only.
    """
    from backtester.data.schema import validate_tiers

    root = data_store.store_root(store)
    rows: list[dict[str, str]] = []

    def add(dataset: str, action: str, detail: str) -> None:
        rows.append({"dataset": dataset, "action": action, "detail": detail})

    with data_store._os_errors(root, "read"):
        if not root.is_dir():
            raise DataError(f"store {root} does not exist; pass --store DIR naming a store root")
    with data_store._manifest_lock(root):
        try:
            old = data_store.read_manifest(root)
        except DataError as exc:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            aside = root / f"{data_store.MANIFEST}.bad-{stamp}"
            with data_store._os_errors(aside, "write"):
                os.replace(root / data_store.MANIFEST, aside)
            add(data_store.MANIFEST, "moved aside", f"{exc.args[0].split(';')[0]}; kept as {aside}")
            old = {}
        new: dict[str, dict[str, Any]] = {}
        for path in _dataset_files(root):
            info = _parse_key(root, path)
            if info is None:
                continue
            key = data_store._key(root, path)
            entry = old.get(key)
            try:
                data, digest, _ = data_store._read_bytes(path)
            except DataError as exc:
                if entry is not None:
                    new[key] = entry
                add(key, "unreadable", str(exc))
                continue
            status = data_store._match(entry, digest)
            if status == "mismatch" and entry is not None:
                new[key] = entry
                add(
                    key,
                    "kept, damaged",
                    f"checksum mismatch; `{data_store.repair_hint(root, key)}`",
                )
                continue
            if status in ("ok", "pending") and entry is not None:
                kept = dict(entry["pending"] if status == "pending" else entry)
                kept.pop("pending", None)
                dropped = []
                for field in ("requested_start", "fetched_until"):
                    try:
                        data_store.manifest_time(root, key, kept, field)
                    except DataError:
                        dropped.append(f"{field}={kept.pop(field)!r}")
                new[key] = kept
                add(key, "kept", "dropped bad " + ", ".join(dropped) if dropped else "")
                continue
            # no entry: validate before recording
            try:
                df = pd.read_parquet(io.BytesIO(data))
                if info["kind"] == "tiers":
                    validate_tiers(df, name=str(path))
                    start = end = pd.Timestamp(path.stem, tz="UTC")
                else:
                    df = data_store._canonical(df, info["kind"], path)
                    bad = [
                        f"{p}: {d}"
                        for p, d in _verify_series(df, info["kind"], info["timeframe"])
                        if p != "gaps"
                    ]
                    if bad:
                        raise DataError("; ".join(bad))
                    ts = timestamps_ns(df, str(path))
                    step = 0 if info["kind"] == "funding" else timeframe_to_ns(info["timeframe"])
                    start = pd.Timestamp(int(ts[0]), tz="UTC")
                    end = pd.Timestamp(int(ts[-1]) + step, tz="UTC")
            except Exception as exc:
                add(key, "not recorded", f"{exc}; repair or delete {path}")
                continue
            mtime = pd.Timestamp(path.stat().st_mtime_ns, tz="UTC").floor("s").isoformat()
            new[key] = data_store._entry(
                root,
                path,
                digest,
                exchange=info["exchange"],
                symbol=_guess_symbol(info["symbol_safe"]),
                timeframe=info["timeframe"],
                kind=info["kind"],
                start=start,
                end=end,
                rows=len(df),
                fetched_at=mtime,
                source="ccxt",
            )
            new[key]["rebuilt"] = True
            add(key, "recorded", f"{len(df)} rows, validated")
        for key in sorted(set(old) - set(new)):
            add(key, "dropped", "its file is missing")
        data_store._write_manifest(root, new)
    for leftover in _leftovers(root):
        with data_store._os_errors(leftover, "write"):
            age = time.time() - leftover.stat().st_mtime
            name = leftover.relative_to(root).as_posix()
            if age > _LEFTOVER_AGE_S:
                leftover.unlink()
                add(name, "removed", "temp file of an interrupted write")
            else:
                add(name, "left", "temp file younger than an hour: a write may be running")
    return pd.DataFrame(rows, columns=_REBUILD_COLUMNS)


# ---------------------------------------------------------------- repair helpers


def inspect_dataset(root: Path, key: str) -> tuple[str, dict[str, Any] | None]:
    """Return ``(status, entry)`` of dataset ``key`` in ``root``.

    status: ``"ok"``, ``"missing"`` (no file), ``"damaged"`` (checksum mismatch, unreadable or
    invalid file) or ``"unrecorded"`` (a valid file with no manifest entry).
    """
    path = root / f"{key}.parquet"
    entry = data_store.read_manifest(root).get(key)
    if not data_store._is_file(path):
        return "missing", entry
    try:
        data, digest, _ = data_store._read_bytes(path)
    except DataError:
        return "damaged", entry
    status = data_store._match(entry, digest)
    if status == "mismatch":
        return "damaged", entry
    if status == "pending" and entry is not None:
        entry = entry["pending"]
    kind = key.rsplit("/", 1)[-1]
    try:
        df = data_store._parse_parquet(data, path)
        if key.split("/")[2] == "tiers":
            from backtester.data.schema import validate_tiers

            validate_tiers(df)
        else:
            data_store._canonical(df, kind, path, root)
    except DataError:
        return "damaged", entry
    return ("unrecorded" if status == "unrecorded" else "ok"), entry


def restore_from_copy(root: Path, key: str, sha256: str) -> Path | None:
    """Copy dataset ``key`` from another copy whose bytes have ``sha256``; return its source.

    Looks in the package's own bundled data and the clone's ``data/bundled`` (whichever are not
    ``root``). Returns None when no copy matches.
    """
    target = root / f"{key}.parquet"
    for other in data_store._bundled_copies():
        candidate = other / f"{key}.parquet"
        with contextlib.suppress(OSError):
            if other.resolve() == root.resolve() or not candidate.is_file():
                continue
            data = candidate.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                continue
            with data_store._os_errors(target, "write"):
                write_bytes_atomic(target, data)
            return candidate
    return None


def quarantine(root: Path, key: str) -> Path:
    """Move a damaged dataset file aside (``<file>.damaged``) and drop its manifest entry."""
    path = root / f"{key}.parquet"
    aside = path.with_name(f"{path.name}.damaged")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{n}")
    with data_store._manifest_lock(root):
        with data_store._os_errors(path, "write"):
            os.replace(path, aside)
        data_store._update_manifest_locked(root, key, None)
    return aside
