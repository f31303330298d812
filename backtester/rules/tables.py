"""Dated maintenance-margin tier tables: packaged JSON files plus store snapshots (layer: rules).

Packaged tables live in ``backtester/rules/tables/<exchange>__<SYMBOL_SAFE>__<YYYY-MM-DD>.json``
(loaded with importlib.resources, so they ship in the wheel). Each file holds its metadata
(exchange, symbol, effective_from, confirmed_until, basis, confidence tag, source URL, note) and
rows ``[tier, floor, cap, max_leverage, mmr, maint_amount]``.

One more packaged file per exchange, ``<exchange>__ALL__<YYYY-MM-DD>.json.gz`` (gzip-compressed
JSON with the same metadata plus the input's ``sha256`` and ``converted_by``, and
``symbols: {symbol: rows}``), holds a whole-exchange bracket snapshot: for Binance USDⓈ-M, every
market of 2026-05-07, converted by ``scripts/convert_binance_tiers.py``. It gives each symbol one
more dated table, unless the symbol has a hand-made table of that date (BTC and ETH do: theirs is
used, and the snapshot is not even read). The file is parsed once, on first use of a symbol that
needs it, and each symbol's table is built once.

Tier snapshots in the data store (the bundled one and any downloaded through ccxt leverage tiers)
are read through ``backtester.data.store.list_tier_snapshots(exchange, symbol, store=None)``,
which returns ``[(Timestamp, DataFrame[tier, floor, cap, max_leverage, mmr, maint_amount, basis])]``;
each becomes one more dated table. A store snapshot dated the same day as a packaged table (or
the exchange snapshot) is skipped (the packaged file carries the provenance).

Tiers are contiguous with inclusive caps (``floor < value <= cap``); a gap between one tier's cap
and the next tier's floor (OKX lists whole contracts: 0–500, 501–1000) is closed on load by
moving the next floor down to the cap.

Units: ``basis == "notional"`` floors and caps are quote currency (USDT); ``basis == "size"``
floors and caps are base units (contracts × contract value). Rates are fractions; maintenance
amounts are quote currency.
"""

from __future__ import annotations

import difflib
import gzip
import json
import logging
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import pandas as pd

from backtester._typing import F64Array
from backtester.data.schema import cum_recurrence
from backtester.errors import DataError

__all__ = [
    "TierTable",
    "close_symbols",
    "known_symbols",
    "packaged_tables",
    "snapshot_table",
    "symbol_safe",
    "table_from_frame",
    "tables_for",
    "unknown_symbol_message",
]

log = logging.getLogger(__name__)

Basis = Literal["notional", "size"]
TIER_COLUMNS = ("tier", "floor", "cap", "max_leverage", "mmr", "maint_amount")


def symbol_safe(symbol: str) -> str:
    """Return the file-name form of a ccxt symbol (``BTC/USDT:USDT`` → ``BTC_USDT_USDT``)."""
    return symbol.replace("/", "_").replace(":", "_")


def _frozen(values: Any) -> F64Array:
    arr = np.ascontiguousarray(np.asarray(values, dtype=np.float64))
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, slots=True, kw_only=True)
class TierTable:
    """One dated tier table of one exchange and symbol (arrays are read-only float64)."""

    exchange: str
    symbol: str
    table_id: str
    effective_from: pd.Timestamp
    confirmed_until: pd.Timestamp | None
    basis: Basis
    confidence: str
    source: str
    note: str
    origin: Literal["package", "store"]
    floors: F64Array
    caps: F64Array
    max_leverage: F64Array
    mmr: F64Array
    maint_amount: F64Array

    @property
    def n_tiers(self) -> int:
        """Number of tiers."""
        return int(self.floors.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """Return the table as a DataFrame with tiers numbered from 1."""
        return pd.DataFrame(
            {
                "tier": np.arange(1, self.n_tiers + 1),
                "floor": self.floors,
                "cap": self.caps,
                "max_leverage": self.max_leverage,
                "mmr": self.mmr,
                "maint_amount": self.maint_amount,
            }
        )


def _validate(
    table_id: str, floors: F64Array, caps: F64Array, lev: F64Array, mmr: F64Array, amount: F64Array
) -> None:
    where = f"tier table {table_id}"
    if floors.shape[0] == 0:
        raise DataError(f"{where} has no tiers; expected at least one row")
    finite = (
        ("floor", floors),
        ("cap", caps[:-1]),  # the last tier may be open-ended (cap = inf)
        ("max_leverage", lev),
        ("mmr", mmr),
        ("maint_amount", amount),
    )
    for name, arr in finite:
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{where} column {name!r} must be finite, was {arr.tolist()}")
    if np.isnan(caps[-1]):
        raise DataError(f"{where} column 'cap' must not be NaN, was {caps.tolist()}")
    if floors[0] != 0.0:
        raise DataError(f"{where} column 'floor' must start at 0, was {floors[0]:g}")
    if np.any(np.diff(floors) <= 0):
        raise DataError(
            f"{where} column 'floor' must be strictly increasing, was {floors.tolist()}"
        )
    if np.any(caps <= floors):
        raise DataError(
            f"{where} column 'cap' must exceed 'floor' in every tier, was {caps.tolist()}"
        )
    if np.any((mmr <= 0) | (mmr >= 1)):
        raise DataError(f"{where} column 'mmr' must be fractions in (0, 1), was {mmr.tolist()}")
    if np.any(lev < 1):
        raise DataError(f"{where} column 'max_leverage' must be >= 1, was {lev.tolist()}")
    if np.any(amount < 0):
        raise DataError(f"{where} column 'maint_amount' must be >= 0, was {amount.tolist()}")


def _make(
    meta: dict[str, Any],
    rows: Any,
    *,
    table_id: str,
    origin: Literal["package", "store"],
    effective_from: pd.Timestamp,
) -> TierTable:
    arr = np.asarray(rows, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(TIER_COLUMNS):
        raise DataError(
            f"tier table {table_id} must have columns {list(TIER_COLUMNS)}, was shape {arr.shape}"
        )
    order = np.argsort(arr[:, 1], kind="stable")
    arr = arr[order]
    # OKX lists tiers as whole contracts, e.g. 0–500 then 501–1000: with inclusive caps the next
    # tier starts where the previous one ends, so close such gaps (floor_{k+1} := cap_k)
    gap = arr[1:, 1] > arr[:-1, 2]
    arr[1:, 1] = np.where(gap, arr[:-1, 2], arr[1:, 1])
    floors, caps, lev, mmr, amount = (_frozen(arr[:, j]) for j in range(1, 6))
    _validate(table_id, floors, caps, lev, mmr, amount)
    basis = str(meta.get("basis", "notional"))
    if basis not in ("notional", "size"):
        raise DataError(f"tier table {table_id} basis must be 'notional' or 'size', was {basis!r}")
    until = meta.get("confirmed_until")
    return TierTable(
        exchange=str(meta["exchange"]),
        symbol=str(meta["symbol"]),
        table_id=table_id,
        effective_from=effective_from,
        confirmed_until=pd.Timestamp(until) if until else None,
        basis="size" if basis == "size" else "notional",
        confidence=str(meta.get("confidence", "unknown")),
        source=str(meta.get("source", "")),
        note=str(meta.get("note", "")),
        origin=origin,
        floors=floors,
        caps=caps,
        max_leverage=lev,
        mmr=mmr,
        maint_amount=amount,
    )


@lru_cache(maxsize=1)
def packaged_tables() -> tuple[TierTable, ...]:
    """Return every packaged tier table, sorted by (exchange, symbol, effective_from)."""
    folder = resources.files("backtester.rules").joinpath("tables")
    out = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".json") or not entry.is_file():
            continue
        meta = json.loads(entry.read_text(encoding="utf-8"))
        if list(meta.get("columns", [])) != list(TIER_COLUMNS):
            raise DataError(
                f"tier table {entry.name} columns must be {list(TIER_COLUMNS)}, "
                f"was {meta.get('columns')}"
            )
        eff = pd.Timestamp(meta["effective_from"])
        table_id = f"{meta['exchange']}/{symbol_safe(str(meta['symbol']))}/{eff:%Y-%m-%d}"
        out.append(
            _make(meta, meta["rows"], table_id=table_id, origin="package", effective_from=eff)
        )
    out.sort(key=lambda t: (t.exchange, t.symbol, t.effective_from))
    return tuple(out)


def table_from_frame(
    frame: pd.DataFrame,
    *,
    exchange: str,
    symbol: str,
    effective_from: pd.Timestamp,
    source: str = "store snapshot",
    note: str = "",
    confidence: str = "snapshot",
) -> TierTable:
    """Return a TierTable from a frame with columns tier, floor, cap, max_leverage, mmr,
    maint_amount (and optionally basis: "notional" or "size", size floors in base units).

    Raises
    ------
    DataError
        If a column is missing or the tiers are not ascending, finite and sensible.
    """
    missing = [c for c in TIER_COLUMNS if c not in frame.columns]
    eff = pd.Timestamp(effective_from)
    if eff.tzinfo is None:
        eff = eff.tz_localize("UTC")
    table_id = f"{exchange}/{symbol_safe(symbol)}/{eff:%Y-%m-%d}"
    if missing:
        raise DataError(
            f"tier snapshot {table_id} is missing columns {missing}; expected {list(TIER_COLUMNS)}"
        )
    basis = "notional"
    if "basis" in frame.columns and len(frame):
        values = {str(v) for v in frame["basis"].unique()}
        if len(values) != 1:
            raise DataError(f"tier snapshot {table_id} mixes basis values {sorted(values)}")
        basis = values.pop()
    amounts = frame["maint_amount"].astype("float64").fillna(0.0)
    rows = np.column_stack(
        [frame[c].astype("float64").to_numpy() for c in TIER_COLUMNS[:-1]] + [amounts.to_numpy()]
    )
    meta = {
        "exchange": exchange,
        "symbol": symbol,
        "basis": basis,
        "confidence": confidence,
        "source": source,
        "note": note or f"tier snapshot of {eff:%Y-%m-%d} from the data store",
        "confirmed_until": str(eff),
    }
    return _make(meta, rows, table_id=table_id, origin="store", effective_from=eff)


def _store_fingerprint(exchange: str, symbol: str, store: Any) -> tuple[tuple[str, int, int], ...]:
    # (path, mtime, size) of every snapshot file the store would read; cheap to compute
    from backtester.data import store as data_store

    roots = [data_store.store_root(store), data_store.bundled_root()]
    files = []
    for root in roots:
        if root is None:
            continue
        folder = root / exchange / symbol_safe(symbol) / "tiers"
        if folder.is_dir():
            for path in sorted(folder.glob("*.parquet")):
                stat = path.stat()
                files.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(files)


@lru_cache(maxsize=64)
def _read_store_tables(
    exchange: str, symbol: str, store: Any, fingerprint: tuple[tuple[str, int, int], ...]
) -> tuple[TierTable, ...]:
    from backtester.data.store import list_tier_snapshots

    out = []
    for when, frame in list_tier_snapshots(exchange, symbol, store=store):
        day = pd.Timestamp(when)
        table = table_from_frame(
            frame,
            exchange=exchange,
            symbol=symbol,
            effective_from=day,
            source=f"data store tiers/{day:%Y-%m-%d}.parquet",
        )
        out.append(TierTable(**{**_asdict(table), "table_id": f"store:{table.table_id}"}))
    return tuple(out)


def _store_tables(exchange: str, symbol: str, store: Any = None) -> list[TierTable]:
    # Snapshots are re-read only when a snapshot file appears, changes or disappears.
    try:
        fingerprint = _store_fingerprint(exchange, symbol, store)
    except ImportError:  # data layer not installed in this build: packaged tables only
        return []
    if not fingerprint:
        return []
    key = None if store is None else str(store)
    return list(_read_store_tables(exchange, symbol, key, fingerprint))


def _asdict(table: TierTable) -> dict[str, Any]:
    return {name: getattr(table, name) for name in TierTable.__dataclass_fields__}


# ---------------------------------------------------------------------------------------------
# whole-exchange snapshots: <exchange>__ALL__<YYYY-MM-DD>.json.gz

_SNAPSHOT_NAME = re.compile(r"^(?P<exchange>[a-z]+)__ALL__(?P<day>\d{4}-\d{2}-\d{2})\.json\.gz$")


@lru_cache(maxsize=1)
def _snapshot_files() -> tuple[tuple[str, pd.Timestamp, str], ...]:
    # (exchange, effective day, file name), from the file names alone: nothing is parsed here
    folder = resources.files("backtester.rules").joinpath("tables")
    out = []
    for entry in folder.iterdir():
        match = _SNAPSHOT_NAME.match(entry.name)
        if match and entry.is_file():
            day = pd.Timestamp(match["day"], tz="UTC")
            out.append((match["exchange"], day, entry.name))
    out.sort()
    return tuple(out)


@cache
def _snapshot_doc(name: str) -> dict[str, Any]:
    # parsed once per process, on first use of a symbol that needs it
    entry = resources.files("backtester.rules").joinpath("tables").joinpath(name)
    doc: dict[str, Any] = json.loads(gzip.decompress(entry.read_bytes()).decode("utf-8"))
    if list(doc.get("columns", [])) != list(TIER_COLUMNS):
        raise DataError(
            f"tier snapshot {name} columns must be {list(TIER_COLUMNS)}, was {doc.get('columns')}"
        )
    if not isinstance(doc.get("symbols"), dict):
        raise DataError(f"tier snapshot {name} must map 'symbols' to their rows")
    return doc


def _snapshots(exchange: str) -> list[tuple[pd.Timestamp, str]]:
    return [(day, name) for ex, day, name in _snapshot_files() if ex == exchange]


@cache
def _snapshot_table(name: str, symbol: str) -> TierTable | None:
    doc = _snapshot_doc(name)
    rows = doc["symbols"].get(symbol)
    if rows is None:
        return None
    eff = pd.Timestamp(doc["effective_from"])
    meta = {
        **{k: v for k, v in doc.items() if k not in ("symbols", "columns")},
        "symbol": symbol,
        "source": (
            f"{doc.get('source', '')}; sha256 {doc.get('sha256', '?')}; converted by "
            f"{doc.get('converted_by', '?')} into backtester/rules/tables/{name}"
        ),
    }
    table_id = f"{doc['exchange']}/{symbol_safe(symbol)}/{eff:%Y-%m-%d}"
    return _make(meta, rows, table_id=table_id, origin="package", effective_from=eff)


def snapshot_table(exchange: str, symbol: str, day: str | pd.Timestamp) -> TierTable | None:
    """Return ``symbol``'s table in the packaged ``exchange`` snapshot of ``day`` (None if absent).

    Reads the snapshot itself, even where a hand-made table of that date takes precedence in
    :func:`tables_for` (BTC and ETH on Binance): tests compare the two with it.
    """
    when = pd.Timestamp(day)
    when = when.tz_localize("UTC") if when.tzinfo is None else when
    for snap_day, name in _snapshots(exchange):
        if snap_day == when.normalize():
            return _snapshot_table(name, symbol)
    return None


def tables_for(exchange: str, symbol: str, *, store: Any = None) -> list[TierTable]:
    """Return the tables of ``exchange``/``symbol`` (packaged, snapshot, store), sorted by date.

    An exchange snapshot is skipped on the day of a hand-made packaged table, and a store
    snapshot on the day of either.
    """
    packaged = [t for t in packaged_tables() if t.exchange == exchange and t.symbol == symbol]
    days = {t.effective_from.normalize() for t in packaged}
    merged = list(packaged)
    for day, name in _snapshots(exchange):
        if day in days:
            continue
        table = _snapshot_table(name, symbol)
        if table is not None:
            merged.append(table)
            days.add(day)
    for table in _store_tables(exchange, symbol, store):
        if table.effective_from.normalize() in days:
            log.debug("skipping store tiers %s: a packaged table has that date", table.table_id)
            continue
        merged.append(table)
    merged.sort(key=lambda t: t.effective_from)
    return merged


def known_symbols(exchange: str) -> list[str]:
    """Return the symbols with a packaged table (hand-made or in a snapshot) for ``exchange``."""
    symbols = {t.symbol for t in packaged_tables() if t.exchange == exchange}
    for _, name in _snapshots(exchange):
        symbols.update(_snapshot_doc(name)["symbols"])
    return sorted(symbols)


# Binance and Bybit list low-priced coins per 1000 (1000PEPE), 10000, 1000000 or 1M units
_MULTIPLIER = re.compile(r"^(?:1000000|100000|10000|1000|100|10|1M)(?=[A-Z])")


def _parts(symbol: str) -> tuple[str, str, str]:
    # (base without a unit multiplier, quote, settle) of a ccxt symbol, upper case
    head, _, settle = symbol.upper().partition(":")
    base, _, quote = head.partition("/")
    return _MULTIPLIER.sub("", base), quote, settle


def _compact(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def close_symbols(symbol: str, known: list[str], n: int = 3) -> list[str]:
    """Return up to ``n`` of ``known`` that ``symbol`` plausibly means, best first.

    The same symbol in another case; else the same coin (``PEPE`` → ``1000PEPE``, an exchange id
    such as ``SOLUSDT``, a spot symbol such as ``SOL/USDT``), perpetuals and the same quote
    first; else close spellings (difflib).
    """
    upper = symbol.upper()
    same_case = [k for k in known if k.upper() == upper]
    if same_case:
        return same_case[:1]
    base, quote, settle = _parts(symbol)
    compact = _compact(symbol)

    def same_coin(k: str) -> bool:
        k_base, k_quote, _ = _parts(k)
        if "/" not in symbol:  # an exchange id (SOLUSDT) or a bare coin (sol)
            return compact in (_compact(k.partition(":")[0]), _compact(k), k_base)
        return k_base == base and (not quote or k_quote == quote)

    def rank(k: str) -> tuple[bool, bool, bool, str]:
        _, k_quote, k_settle = _parts(k)
        want = quote or "USDT"
        return ("-" in k_settle, k_quote != want, k_settle != (settle or want), k)

    coins = sorted((k for k in known if same_coin(k)), key=rank)
    if coins:
        return coins[:n]
    # a misspelt coin: compare the coins only (every symbol shares "/USDT:USDT"), among the
    # symbols of the same quote and settlement when the input names them
    if "/" not in symbol:
        base = _MULTIPLIER.sub("", compact)
    peers = [k for k in known if not quote or _parts(k)[1:] == (quote, settle or quote)]
    by_base: dict[str, list[str]] = {}
    for k in sorted(peers, key=rank):
        by_base.setdefault(_parts(k)[0], []).append(k)
    bases = difflib.get_close_matches(base, list(by_base), n=n, cutoff=0.6)
    return [by_base[b][0] for b in bases]


def unknown_symbol_message(exchange: str, symbol: str) -> str:
    """Return the error text for a symbol without tier tables: what is known, what was meant."""
    known = known_symbols(exchange)
    if len(known) <= 12:
        listing = f"known symbols: {', '.join(known)}"
    else:
        hand = sorted({t.symbol for t in packaged_tables() if t.exchange == exchange})
        days = ", ".join(f"{day:%Y-%m-%d}" for day, _ in _snapshots(exchange))
        listing = (
            f"{len(known)} symbols are known (the bracket snapshot of {days}"
            + (f"; dated history for {', '.join(hand)}" if hand else "")
            + ")"
        )
    close = close_symbols(symbol, known)
    suggestion = ""
    if close:
        quoted = [repr(k) for k in close]
        suggestion = (
            "; did you mean "
            + (quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}")
            + "?"
        )
    return (
        f"symbol {symbol!r} has no tier table for {exchange}; {listing}{suggestion}; for your "
        "own market pass maint_margin_rate=... (a flat rate needs no table) or "
        "Market.from_frames(..., tiers=frame) with tier_table='market' (or download its "
        "leverage tiers into the data store)"
    )


def recurrence_error(table: TierTable) -> float:
    """Return max |maint_amount − recurrence| (0 for OKX-style tables without amounts)."""
    if not np.any(table.maint_amount):
        return 0.0
    return float(np.max(np.abs(table.maint_amount - cum_recurrence(table.floors, table.mmr))))
