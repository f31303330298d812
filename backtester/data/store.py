"""Local parquet store of market data: paths, manifest, checked reads, atomic writes (layer: data).

Layout under a store root (design.md §1)::

    <root>/<exchange>/<SYMBOL_SAFE>/<timeframe>/<kind>.parquet    kind in ohlcv, mark, index, funding
    <root>/<exchange>/<SYMBOL_SAFE>/tiers/<YYYY-MM-DD>.parquet      dated leverage-tier snapshots
    <root>/manifest.json                                             one entry per dataset

The root is, in order: the ``store`` argument, ``$BACKTESTER_STORE``, the clone's ``data/`` when
running from a source checkout, else the per-user data directory (platformdirs). Bundled data
(``backtester/_bundled`` in a wheel, ``data/bundled`` in a clone) has the same layout, is read-only
and is searched after the user store.

Every write goes to a temporary file in the same directory and is fsynced; then, holding the
manifest lock, the new entry is recorded as ``pending`` in the manifest, the file is renamed over
the target with ``os.replace`` and the entry is committed. A crash at any moment leaves either the
old file (matching its entry) or the new one (matching the pending entry, committed by the next
reader): a file that matches neither is damaged, and is refused, never re-recorded as good.

Every read checks the file against the manifest's sha256 (memoised per file version: path,
inode, size, mtime) and refuses a mismatch with a :class:`~backtester.errors.DataError` naming the
file and ``backtester data repair``. Names that become path components (exchange, symbol,
timeframe) are validated so nothing is read or written outside the root. Operating-system faults
(read-only store, full disk, unreadable file) end in one DataError naming the path and the fix.

Listing, verification, manifest rebuild and repair live in :mod:`backtester.data.integrity`,
which imports this module (this module never imports it).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester._atomic import TMP_PREFIX, fsync_dir, write_bytes_atomic
from backtester.data.schema import (
    BAR_COLUMNS,
    FUNDING_COLUMNS,
    TIER_COLUMNS,  # also re-exported: the columns of list_tier_snapshots() tables
    format_ts,
    timeframe_to_ns,
    timestamps_ns,
)
from backtester.errors import ConfigError, DataError, check_one_of

log = logging.getLogger(__name__)

__all__ = [
    "CONTRACT_FIELDS",
    "ENV_STORE",
    "SERIES_KINDS",
    "bundled_root",
    "dataset_path",
    "download_hint",
    "existing_store",
    "find_dataset",
    "list_tier_snapshots",
    "manifest_time",
    "read_contract",
    "read_dataset",
    "read_manifest",
    "read_stored",
    "rebuild_manifest_hint",
    "repair_hint",
    "same_tiers",
    "store_root",
    "stored_tiers",
    "symbol_safe",
    "tiers_path",
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


def existing_store(store: str | os.PathLike[str] | None, *, must_exist: bool = True) -> Path | None:
    """Return an explicitly given store root for reading, refusing one that is not a folder.

    ``None`` (the default root: ``$BACKTESTER_STORE``, the clone's ``data/`` or the user dir)
    passes as None: a default store that was never written to is simply empty. With
    ``must_exist=False`` a store that does not exist is logged at WARNING (only the bundled data
    is then read) instead of refused.

    Raises
    ------
    DataError
        If ``store`` is a file, or does not exist (``must_exist``); one line naming it and the fix.
    """
    if store is None:
        return None
    root = store_root(store)
    fix = (
        "pass the folder that holds its manifest.json (as written by `backtester data download "
        "--store DIR`), or leave the store out to read the default store and the bundled data"
    )
    with _os_errors(root, "read"):
        if root.is_dir():
            return root
        if root.exists():
            raise DataError(
                f"store {str(root)!r} (--store / store=) is a file, not a folder; {fix}"
            )
    if must_exist:
        raise DataError(f"store {str(root)!r} (--store / store=) does not exist; {fix}")
    log.warning(
        "store %r (--store / store=) does not exist, so only the bundled data is read; %s",
        str(root),
        fix,
    )
    return root


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


def _bundled_copies() -> list[Path]:
    # every copy of the bundled data this install can see: the package's own (wheel) and the
    # clone's data/bundled; repair restores a damaged bundled file from another copy
    out: list[Path] = []
    with contextlib.suppress(ModuleNotFoundError, TypeError):
        out.append(Path(str(resources.files("backtester") / "_bundled")))
    repo = _source_checkout()
    if repo is not None:
        out.append(repo / "data" / "bundled")
    return [p for p in out if (p / MANIFEST).is_file()]


# a path component: letters, digits, '.', '_', '-'; never '..', never starting with '.' or '-'
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _check_name(value: object, what: str, example: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{what} must be a name of letters, digits, '.', '_' or '-' such as {example!r}, "
            f"was {value!r}; it names a folder of the store, so path separators and '..' are "
            "refused"
        )
    return value


def symbol_safe(symbol: str) -> str:
    """Return the ccxt symbol as a path component: ``BTC/USDT:USDT`` -> ``BTC_USDT_USDT``.

    Raises
    ------
    ConfigError
        If the symbol is empty or would not be one plain folder name (``..``, ``\\``, spaces).
    """
    if not symbol or not isinstance(symbol, str):
        raise ConfigError(f"symbol must be a ccxt symbol such as 'BTC/USDT:USDT', was {symbol!r}")
    safe = symbol.replace("/", "_").replace(":", "_")
    if not _NAME_RE.fullmatch(safe) or ".." in safe:
        raise ConfigError(
            f"symbol must be a ccxt symbol such as 'BTC/USDT:USDT' (letters, digits, '/', ':', "
            f"'.', '_', '-'), was {symbol!r}"
        )
    return safe


def dataset_path(root: Path, exchange: str, symbol: str, timeframe: str, kind: str) -> Path:
    """Return ``<root>/<exchange>/<SYMBOL_SAFE>/<timeframe>/<kind>.parquet``.

    Raises
    ------
    ConfigError
        If a name would leave one folder level (``../x``, ``/etc``) or the kind is unknown.
    """
    check_one_of(kind, "kind", SERIES_KINDS)
    _check_name(exchange, "exchange", "binanceusdm")
    timeframe_to_ns(timeframe)
    return root / exchange / symbol_safe(symbol) / timeframe / f"{kind}.parquet"


def tiers_path(root: Path, exchange: str, symbol: str, date: pd.Timestamp) -> Path:
    """Return ``<root>/<exchange>/<SYMBOL_SAFE>/tiers/<YYYY-MM-DD>.parquet``."""
    _check_name(exchange, "exchange", "binanceusdm")
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


def _is_bundled(root: Path) -> bool:
    with contextlib.suppress(OSError):
        return any(root.resolve() == p.resolve() for p in _bundled_copies())
    return False


def _store_option(root: Path) -> str:
    return "" if _is_bundled(root) else f" --store {root}"


def repair_hint(root: Path, key: str) -> str:
    """Return the CLI command that repairs dataset ``key`` (``exchange/SYMBOL_SAFE/tf/kind``)."""
    return f"backtester data repair {key}{_store_option(root)}"


def rebuild_manifest_hint(root: Path) -> str:
    """Return the CLI command that rebuilds ``<root>/manifest.json`` from the files."""
    return f"backtester data rebuild-manifest --store {root}"


def _key(root: Path, path: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _find(
    exchange: str, symbol: str, timeframe: str, kind: str, store: str | os.PathLike[str] | None
) -> tuple[Path, Path] | None:
    roots = _roots(store)
    for _, root in roots:
        path = dataset_path(root, exchange, symbol, timeframe, kind)
        if _is_file(path):
            return root, path
    if kind == "funding":
        for _, root in roots:
            market_dir = root / exchange / symbol_safe(symbol)
            with _os_errors(market_dir, "read"):
                candidates = (
                    sorted(market_dir.glob("*/funding.parquet")) if market_dir.is_dir() else []
                )
                if candidates:
                    return root, max(candidates, key=lambda p: p.stat().st_size)
    return None


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
    found = _find(exchange, symbol, timeframe, kind, store)
    return None if found is None else found[1]


# ---------------------------------------------------------------- operating-system faults


_WRITE_FIX = "or pass --store DIR (or set $BACKTESTER_STORE) to use another folder"


def _os_error(exc: OSError, path: Path, action: str) -> DataError:
    # one line naming the path, the cause and the fix (the data already stored is unchanged)
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free some space on that disk {_WRITE_FIX}; the data already stored is unchanged"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS) and action == "read":
        fix = f"make it readable (chmod u+r {path}) or run as its owner"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"make {path.parent} writable {_WRITE_FIX}; the data already stored is unchanged"
    elif action == "read":
        fix = "check the disk and the path; `backtester data verify` lists damaged files"
    else:
        fix = f"check the disk and the path {_WRITE_FIX}; the data already stored is unchanged"
    return DataError(f"cannot {action} {path}: {reason}; {fix}")


@contextlib.contextmanager
def _os_errors(path: Path, action: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _os_error(exc, path, action) from exc


def _is_file(path: Path) -> bool:
    with _os_errors(path, "read"):
        return path.is_file()


# ---------------------------------------------------------------- manifest


def read_manifest(root: Path) -> dict[str, dict[str, Any]]:
    """Return ``{dataset_key: entry}`` from ``<root>/manifest.json`` (empty if absent).

    Raises
    ------
    DataError
        If the manifest cannot be read, is not JSON or not of the expected structure; the message
        names the file and ``backtester data rebuild-manifest``.
    """
    path = root / MANIFEST
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise _os_error(exc, path, "read") from exc
    fix = f"rebuild it from the files with `{rebuild_manifest_hint(root)}`"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:80]
        raise DataError(f"manifest {path} is not valid JSON ({reason}); {fix}") from exc
    datasets = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(datasets, dict) or not all(isinstance(e, dict) for e in datasets.values()):
        raise DataError(
            f"manifest {path} must be an object with a 'datasets' object of entries, was "
            f"{type(data).__name__} {str(data)[:60]!r}; {fix}"
        )
    return dict(datasets)


def manifest_time(root: Path, key: str, entry: dict[str, Any], field: str) -> int | None:
    """Return a timestamp field of a manifest entry as int64 ns UTC (None if absent).

    Raises
    ------
    DataError
        If the value is not a date; the message names the manifest, the entry, the value and
        the rebuild command (which drops the bad field).
    """
    value = entry.get(field)
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value) if isinstance(value, str) else None
    except (ValueError, TypeError):
        ts = None
    if ts is None or ts is pd.NaT:
        raise DataError(
            f"manifest {root / MANIFEST}: {key} {field} must be a date such as "
            f"'2020-01-01T00:00:00+00:00', was {value!r}; `{rebuild_manifest_hint(root)}` drops "
            "the bad field (the next download checks that range again)"
        )
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


@contextlib.contextmanager
def _manifest_lock(root: Path) -> Iterator[None]:
    # serialize read-modify-write of the manifest between processes (POSIX advisory lock; the
    # kernel releases it if the process dies)
    with _os_errors(root / LOCK, "write"):
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / LOCK, "a+b")  # noqa: SIM115 - closed below
    with handle:
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


def _write_manifest(root: Path, datasets: dict[str, dict[str, Any]]) -> None:
    body = {"format": 1, "datasets": dict(sorted(datasets.items()))}
    with _os_errors(root / MANIFEST, "write"):
        write_bytes_atomic(root / MANIFEST, (json.dumps(body, indent=1) + "\n").encode("utf-8"))


def _update_manifest(root: Path, key: str, entry: dict[str, Any] | None) -> None:
    with _manifest_lock(root):
        _update_manifest_locked(root, key, entry)


def _update_manifest_locked(root: Path, key: str, entry: dict[str, Any] | None) -> None:
    datasets = read_manifest(root)
    if entry is None:
        datasets.pop(key, None)
    else:
        datasets[key] = entry
    _write_manifest(root, datasets)


def _set_pending(root: Path, key: str, entry: dict[str, Any]) -> None:
    # step 1 of a write (lock held): the new entry is pending until the file is in place
    datasets = read_manifest(root)
    current = dict(datasets.get(key, {}))
    current["pending"] = entry
    datasets[key] = current
    _write_manifest(root, datasets)


def _commit_entry(root: Path, key: str, entry: dict[str, Any]) -> None:
    # step 3 of a write (lock held): the file is in place, its entry becomes the entry
    _update_manifest_locked(root, key, entry)


def _finalize_pending(root: Path, key: str, digest: str) -> None:
    # a reader found the file of a pending entry (the writer died between rename and commit)
    try:
        with _manifest_lock(root):
            pending = read_manifest(root).get(key, {}).get("pending")
            if isinstance(pending, dict) and pending.get("sha256") == digest:
                _commit_entry(root, key, pending)
                log.info("%s: committed the entry of an interrupted write", key)
    except DataError as exc:  # e.g. a read-only store: the file is whole, reading goes on
        log.debug("could not commit the pending entry of %s: %s", key, exc)


# ---------------------------------------------------------------- checked reading


_DIGESTS: dict[tuple[str, int, int, int], str] = {}  # file version -> sha256 (memo)
_DIGESTS_LOCK = threading.Lock()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(path: Path, st: os.stat_result) -> tuple[str, int, int, int]:
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def _read_bytes(path: Path) -> tuple[bytes, str, tuple[str, int, int, int]]:
    # the bytes, their sha256 (memoised per file version) and that version
    with _os_errors(path, "read"), open(path, "rb") as handle:
        version = _version(path, os.fstat(handle.fileno()))
        data = handle.read()
    with _DIGESTS_LOCK:
        digest = _DIGESTS.get(version)
    if digest is None:
        digest = hashlib.sha256(data).hexdigest()
        with _DIGESTS_LOCK:
            _DIGESTS[version] = digest
    return data, digest, version


def _match(entry: dict[str, Any] | None, digest: str) -> str:
    # "ok", "pending" (the file of an interrupted write), "unrecorded" or "mismatch"
    if entry is None:
        return "unrecorded"
    if entry.get("sha256") == digest:
        return "ok"
    pending = entry.get("pending")
    if isinstance(pending, dict) and pending.get("sha256") == digest:
        return "pending"
    return "mismatch"


def _damaged(root: Path, path: Path, key: str) -> DataError:
    return DataError(
        f"dataset {path} is damaged: its sha256 differs from {root / MANIFEST} (bit rot, a "
        "torn copy or a change outside backtester); its prices cannot be trusted, so it is not "
        f"used: restore it with `{repair_hint(root, key)}`"
    )


def _read_checked(root: Path, path: Path, *, unrecorded_ok: bool = True) -> tuple[bytes, str]:
    # the file's bytes after checking them against the manifest; returns (bytes, match status)
    key = _key(root, path)
    for _ in range(3):
        entry = read_manifest(root).get(key)
        data, digest, version = _read_bytes(path)
        status = _match(entry, digest)
        if status == "unrecorded" and not unrecorded_ok:
            raise DataError(
                f"dataset {path} has no entry in {root / MANIFEST}, so its content cannot be "
                f"checked; record it (each file is validated first) with "
                f"`{rebuild_manifest_hint(root)}`, or delete it"
            )
        if status != "mismatch":
            if status == "pending":
                _finalize_pending(root, key, digest)
            elif status == "unrecorded":
                log.info("%s has no manifest entry; its checksum is not checked", path)
            return data, status
        # a writer may have replaced the file or its entry while we read: look again
        with _os_errors(path, "read"):
            now = _version(path, path.stat())
        if now == version and read_manifest(root).get(key) == entry:
            break
    raise _damaged(root, path, key)


def _parse_parquet(data: bytes, path: Path, root: Path | None = None) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        fix = (
            f"restore it with `{repair_hint(root, _key(root, path))}`"
            if root is not None
            else "delete it and download it again"
        )
        raise DataError(
            f"dataset {path} cannot be read ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:100]}); {fix} (`backtester data verify` lists damaged "
            "files)"
        ) from exc


def _read_parquet(path: Path, root: Path | None = None) -> pd.DataFrame:
    if root is None:
        with _os_errors(path, "read"):
            data = path.read_bytes()
        return _parse_parquet(data, path)
    return _parse_parquet(_read_checked(root, path)[0], path, root)


def read_stored(
    root: Path, path: Path, kind: str, *, unrecorded_ok: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return a stored series file (checked, canonical, strictly increasing) and its entry.

    For the downloader: ``unrecorded_ok=False`` refuses a file without a manifest entry (its
    content cannot be vouched for, so it must not be merged and recorded as good).

    Raises
    ------
    DataError
        A checksum mismatch, an unreadable or invalid file, duplicate or unordered timestamps;
        each names the file and the repair command.
    """
    data, status = _read_checked(root, path, unrecorded_ok=unrecorded_ok)
    df = _canonical(_parse_parquet(data, path, root), kind, path, root)
    entry = read_manifest(root).get(_key(root, path), {})
    if status == "pending":
        entry = entry.get("pending", entry)
    return df, entry


def read_dataset(
    exchange: str,
    symbol: str,
    timeframe: str,
    kind: str,
    *,
    store: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Return a stored series dataset with canonical columns and a UTC ``timestamp`` column.

    The file is checked against the manifest's sha256 first (once per file version).

    Raises
    ------
    DataError
        If no store holds it (the message gives the download command), or the file is damaged,
        unreadable or invalid (the message names it and the repair command).
    """
    found = _find(exchange, symbol, timeframe, kind, store)
    if found is None:
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
    root, path = found
    return read_stored(root, path, kind)[0]


def _canonical(
    df: pd.DataFrame, kind: str, path: Path | str, root: Path | None = None
) -> pd.DataFrame:
    columns = list(FUNDING_COLUMNS if kind == "funding" else BAR_COLUMNS)
    fix = (
        f"restore it with `{repair_hint(root, _key(root, Path(path)))}`"
        if root is not None
        else "delete it and download it again"
    )
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"dataset {path} lacks column(s) {missing}; {fix}")
    out = df.loc[:, columns].copy()
    try:
        out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype("datetime64[ns, UTC]")
        for column in columns[1:]:
            out[column] = out[column].astype(np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"dataset {path} has a column of the wrong type ({exc}); {fix}") from exc
    out = out.reset_index(drop=True)
    if root is not None and len(out) > 1:
        ts = timestamps_ns(out, str(path))
        bad = np.flatnonzero(np.diff(ts) <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            what = "a duplicate" if ts[i] == ts[i - 1] else "an out-of-order"
            raise DataError(
                f"dataset {path} has {what} {'event' if kind == 'funding' else 'bar'} at "
                f"{format_ts(ts[i])} (row {i}, {bad.size} in all); the store only writes strictly "
                f"increasing data, so the file was changed outside backtester: {fix}"
            )
    return out


# ---------------------------------------------------------------- writing


def _ccxt_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("ccxt")
    except Exception:  # pragma: no cover - ccxt is a dependency
        return None


def _entry(
    root: Path,
    path: Path,
    digest: str,
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
        "sha256": digest,
        "source": source or "ccxt",
    }


def _store_file(
    root: Path,
    path: Path,
    write: Callable[[Path], None],
    make_entry: Callable[[str], dict[str, Any]],
) -> None:
    # write to a temp file, fsync; then under the manifest lock: pending entry, rename, commit
    key = _key(root, path)
    read_manifest(root)  # a malformed manifest is refused before any data is touched
    with _os_errors(path, "write"):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _os_errors(path, "write"):
            write(tmp)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            digest = _sha256(tmp)
        entry = make_entry(digest)
        with _manifest_lock(root):
            _set_pending(root, key, entry)
            with _os_errors(path, "write"):
                os.replace(tmp, path)
            fsync_dir(path.parent)
            _commit_entry(root, key, entry)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


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

    Raises
    ------
    ConfigError
        A name that is not one plain folder name (``exchange="../x"``), an unknown kind.
    DataError
        Non-increasing timestamps, a malformed manifest, or an operating-system fault (read-only
        store, full disk), naming the path and the fix; the stored data is then unchanged.
    """
    root = store_root(store)
    path = dataset_path(root, exchange, symbol, timeframe, kind)
    df = _canonical(frame, kind, "frame to write")
    ts = timestamps_ns(df, kind)
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        raise DataError(f"{kind} frame to write must have strictly increasing timestamps")
    step = 0 if kind == "funding" else timeframe_to_ns(timeframe)
    start = pd.Timestamp(int(ts[0]), tz="UTC") if ts.size else None
    end = pd.Timestamp(int(ts[-1]) + step, tz="UTC") if ts.size else None

    def make_entry(digest: str) -> dict[str, Any]:
        entry = _entry(
            root,
            path,
            digest,
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
        return entry

    _store_file(root, path, lambda tmp: df.to_parquet(tmp, **_PARQUET_OPTIONS), make_entry)
    return path


def stored_tiers(
    exchange: str,
    symbol: str,
    date: str | pd.Timestamp,
    *,
    store: str | os.PathLike[str] | None = None,
) -> pd.DataFrame | None:
    """Return the tier snapshot of ``date`` in the user store (not the bundled data), or None.

    Raises
    ------
    DataError
        If the file is damaged (checksum mismatch) or invalid; the message names the repair.
    """
    from backtester.data.schema import to_utc_timestamp, validate_tiers

    root = store_root(store)
    path = tiers_path(root, exchange, symbol, to_utc_timestamp(date, "date").floor("D"))
    if not _is_file(path):
        return None
    return validate_tiers(_read_parquet(path, root), name=f"tier snapshot {path}")


def same_tiers(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Return True if two validated tier tables hold the same tiers (values and basis)."""
    if len(a) != len(b):
        return False
    numeric = [c for c in TIER_COLUMNS if c != "basis"]
    left = a[numeric].to_numpy(dtype=np.float64)
    right = b[numeric].to_numpy(dtype=np.float64)
    same_basis = [str(x) for x in a["basis"]] == [str(x) for x in b["basis"]]
    return bool(same_basis and np.array_equal(left, right))


def write_tiers(
    frame: pd.DataFrame,
    *,
    exchange: str,
    symbol: str,
    date: str | pd.Timestamp,
    store: str | os.PathLike[str] | None = None,
    fetched_at: str | None = None,
    source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a dated leverage-tier snapshot and its manifest entry.

    A snapshot is never replaced: writing the same tiers again for a date already stored leaves
    the file (and its entry) as it is; different tiers for that date are refused. ``extra`` adds
    fields to the manifest entry (the loader records the contract type and size).

    Raises
    ------
    DataError
        Invalid tiers, or the store already holds different tiers for that date (naming the
        file and what to do), or an operating-system fault.
    """
    from backtester.data.schema import to_utc_timestamp, validate_tiers

    root = store_root(store)
    day = to_utc_timestamp(date, "date").floor("D")
    path = tiers_path(root, exchange, symbol, day)
    df = validate_tiers(frame)
    existing = stored_tiers(exchange, symbol, day, store=root)
    if existing is not None:
        if same_tiers(existing, df):
            return path
        raise DataError(
            f"tier snapshot {path} already holds different {exchange} {symbol} tiers for "
            f"{day:%Y-%m-%d}; a stored snapshot is never replaced: keep it (tiers fetched on "
            "a later day are stored under that day) or move the file aside first"
        )

    def make_entry(digest: str) -> dict[str, Any]:
        entry = _entry(
            root,
            path,
            digest,
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
        entry.update(extra or {})
        return entry

    _store_file(root, path, lambda tmp: df.to_parquet(tmp, **_PARQUET_OPTIONS), make_entry)
    return path


# contract fields the ccxt loader records in each manifest entry of a market it downloads
CONTRACT_FIELDS: tuple[str, ...] = (
    "contract_type",
    "contract_size",
    "contract_size_unit",
    "settle",
)


def read_contract(
    exchange: str, symbol: str, *, store: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """Return the contract fields recorded for a market's datasets, or None if none are.

    The ccxt loader records, in the manifest entry of every dataset it writes (bars, funding,
    tiers), ``contract_type`` ("linear" or "inverse"), ``contract_size`` (ccxt's
    ``contractSize``), ``contract_size_unit`` (base units for linear, the quote currency for
    inverse: Binance COIN-M BTC/USD:BTC is 100 USD) and ``settle`` (the margin currency). The
    user store is searched first, then the bundled data; within a store the most recently
    fetched entry wins. Datasets written before these fields existed, bundled files and imports
    that do not know the contract give None.

    Examples
    --------
    >>> read_contract("binancecoinm", "BTC/USD:BTC")  # doctest: +SKIP
    {'contract_type': 'inverse', 'contract_size': 100.0, 'contract_size_unit': 'USD', 'settle': 'BTC'}
    """
    _check_name(exchange, "exchange", "binanceusdm")
    prefix = f"{exchange}/{symbol_safe(symbol)}/"
    for _, root in _roots(store):
        entries = [
            entry
            for key, entry in read_manifest(root).items()
            if key.startswith(prefix) and "contract_type" in entry
        ]
        if entries:
            latest = max(entries, key=lambda e: str(e.get("fetched_at") or ""))
            return {field: latest[field] for field in CONTRACT_FIELDS if field in latest}
    return None


def list_tier_snapshots(
    exchange: str, symbol: str, *, store: str | os.PathLike[str] | None = None
) -> list[tuple[pd.Timestamp, pd.DataFrame]]:
    """Return the stored tier snapshots of a market as ``(date, table)`` pairs sorted by date.

    Tables have columns ``tier, floor, cap, max_leverage, mmr, maint_amount, basis``. When the user
    store and the bundled data both hold a date, the user store's copy is used. Each file is
    checked against the manifest and validated (NaN or negative MMR, leverage, maintenance
    amount are refused with a DataError naming the file).
    """
    from backtester.data.schema import validate_tiers

    _check_name(exchange, "exchange", "binanceusdm")
    by_date: dict[pd.Timestamp, pd.DataFrame] = {}
    for _, root in reversed(_roots(store)):  # bundled first so the user store overrides it
        directory = root / exchange / symbol_safe(symbol) / "tiers"
        with _os_errors(directory, "read"):
            paths = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
        for path in paths:
            try:
                day = pd.Timestamp(path.stem, tz="UTC")
            except ValueError:
                log.debug("ignoring %s: name is not a date", path)
                continue
            table = _read_parquet(path, root)
            try:
                by_date[day] = validate_tiers(table, name=f"tier snapshot {path}")
            except DataError as exc:
                raise DataError(
                    f"{exc}; or restore the file with `{repair_hint(root, _key(root, path))}`"
                ) from exc
    return sorted(by_date.items(), key=lambda item: item[0])
