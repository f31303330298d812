"""Store: root resolution, atomic writes, manifest, listing, verification, tier snapshots."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.data import integrity, store
from backtester.errors import DataError


def _bars(n: int = 5) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "timestamp": ts,
            "open": np.arange(n) + 100.0,
            "high": np.arange(n) + 102.0,
            "low": np.arange(n) + 99.0,
            "close": np.arange(n) + 101.0,
            "volume": np.ones(n),
        }
    )


def _write(root: Path, df: pd.DataFrame, kind: str = "ohlcv") -> Path:
    return store.write_dataset(
        df, exchange="binanceusdm", symbol="XRP/USDT:USDT", timeframe="1h", kind=kind, store=root
    )


def test_store_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store.ENV_STORE, raising=False)
    repo = store._source_checkout()
    if repo is not None:  # running from the source checkout (editable install)
        assert store.store_root() == repo / "data"
    else:  # an installed wheel: the per-user data directory
        assert "backtester" in str(store.store_root())
    monkeypatch.setenv(store.ENV_STORE, str(tmp_path / "env"))
    assert store.store_root() == tmp_path / "env"
    assert store.store_root(tmp_path / "arg") == tmp_path / "arg"


def test_bundled_root_has_a_manifest() -> None:
    root = store.bundled_root()
    assert root is not None
    assert (root / "manifest.json").is_file()


def test_symbol_safe_path() -> None:
    path = store.dataset_path(Path("/r"), "okx", "BTC/USDT:USDT", "1h", "mark")
    assert path == Path("/r/okx/BTC_USDT_USDT/1h/mark.parquet")


def test_write_is_atomic_and_round_trips(tmp_path: Path) -> None:
    # Act
    path = _write(tmp_path, _bars())
    # Assert: the file and its manifest entry exist, no temporary file is left
    assert path == tmp_path / "binanceusdm" / "XRP_USDT_USDT" / "1h" / "ohlcv.parquet"
    assert not list(tmp_path.rglob(".tmp-*"))
    back = store.read_dataset("binanceusdm", "XRP/USDT:USDT", "1h", "ohlcv", store=tmp_path)
    pd.testing.assert_frame_equal(back, _bars())
    entry = store.read_manifest(tmp_path)["binanceusdm/XRP_USDT_USDT/1h/ohlcv"]
    assert entry["rows"] == 5
    assert entry["start"] == "2024-01-01T00:00:00+00:00"
    assert entry["end"] == "2024-01-01T05:00:00+00:00"  # 4 h + one 1h bar
    body = json.loads((tmp_path / "manifest.json").read_text())
    assert body["format"] == 1


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: a good dataset, then a crash in the middle of writing its replacement
    path = _write(tmp_path, _bars())
    before = path.read_bytes()

    def crash(self: pd.DataFrame, target: Path, **kwargs: object) -> None:
        Path(target).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    # Act: one DataError naming the file and the fix, not a bare OSError traceback
    with pytest.raises(
        DataError,
        match=r"cannot write .*ohlcv.parquet: No space left on device; "
        r"free some space .*--store DIR.*the data already stored is unchanged",
    ):
        _write(tmp_path, _bars(7))
    # Assert: the old file is intact and no temp file remains
    assert path.read_bytes() == before
    assert not list(tmp_path.rglob(".tmp-*"))


def test_list_store_shows_bundled_and_downloaded(tmp_path: Path) -> None:
    _write(tmp_path, _bars())
    listing = bt.list_store(tmp_path)
    mine = listing[listing["location"] == "store"]
    assert mine[["symbol", "timeframe", "kind", "rows"]].values.tolist() == [
        ["XRP/USDT:USDT", "1h", "ohlcv", 5]
    ]
    bundled = listing[listing["location"] == "bundled"]
    assert {"ohlcv", "mark", "funding", "tiers"} <= set(bundled["kind"])
    btc = bundled[
        (bundled["exchange"] == "binanceusdm")
        & (bundled["symbol"] == "BTC/USDT:USDT")
        & (bundled["timeframe"] == "1h")
    ]
    assert btc.set_index("kind").loc["ohlcv", "rows"] == 58_620


def test_bundled_store_verifies_clean() -> None:
    assert bt.verify_store("/nonexistent-store").empty


def test_verify_reports_gaps_duplicates_and_bad_bars(tmp_path: Path) -> None:
    # Arrange: three datasets written behind the store's back (no manifest entry)
    base = tmp_path / "binanceusdm" / "XRP_USDT_USDT" / "1h"
    base.mkdir(parents=True)
    _bars().drop(index=[2]).to_parquet(base / "ohlcv.parquet")  # a 1-bar gap
    pd.concat([_bars(), _bars().iloc[[4]]]).to_parquet(base / "mark.parquet")  # a duplicate
    bad = _bars()
    bad.loc[1, "low"] = 200.0  # low above open and close
    bad_dir = tmp_path / "binanceusdm" / "ETH_USDT_USDT" / "1h"
    bad_dir.mkdir(parents=True)
    bad.to_parquet(bad_dir / "ohlcv.parquet")
    # Act
    problems = bt.verify_store(tmp_path)
    mine = problems[problems["location"] == "store"].set_index(["dataset", "problem"])
    # Assert
    assert (
        "1 gap(s), 1 missing bar(s); first after 2024-01-01 01:00 UTC"
        in mine.loc[("binanceusdm/XRP_USDT_USDT/1h/ohlcv", "gaps"), "detail"]
    )
    assert ("binanceusdm/XRP_USDT_USDT/1h/mark", "duplicates") in mine.index
    assert ("binanceusdm/ETH_USDT_USDT/1h/ohlcv", "OHLC inconsistent") in mine.index
    assert ("binanceusdm/XRP_USDT_USDT/1h/ohlcv", "not in manifest") in mine.index


def test_verify_reports_a_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path, _bars())
    path.unlink()
    problems = bt.verify_store(tmp_path)
    assert problems[problems["location"] == "store"]["problem"].tolist() == ["missing file"]


def test_damaged_file_read_gives_a_data_error(tmp_path: Path) -> None:
    path = _write(tmp_path, _bars())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"ohlcv.parquet is damaged: .*backtester data repair"):
        store.read_dataset("binanceusdm", "XRP/USDT:USDT", "1h", "ohlcv", store=tmp_path)
    # a damaged file with no manifest entry to compare is still refused once pyarrow fails
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"ohlcv.parquet cannot be read .*backtester data repair"):
        store.read_dataset("binanceusdm", "XRP/USDT:USDT", "1h", "ohlcv", store=tmp_path)


def test_user_store_wins_over_bundled(tmp_path: Path) -> None:
    df = _bars()
    store.write_dataset(
        df,
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        timeframe="1h",
        kind="ohlcv",
        store=tmp_path,
    )
    back = store.read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "ohlcv", store=tmp_path)
    assert len(back) == 5


def test_bundled_tier_snapshot() -> None:
    snapshots = store.list_tier_snapshots("binanceusdm", "BTC/USDT:USDT", store="/nonexistent")
    assert [d for d, _ in snapshots] == [pd.Timestamp("2026-05-07", tz="UTC")]
    tiers = snapshots[0][1]
    assert list(tiers.columns) == list(store.TIER_COLUMNS)
    # Binance bracket 1: [0, 300000) at 150x, MMR 0.4 %, cum 0; bracket 2 cum 300
    # (= 300000 * (0.005 - 0.004), the Binance maintenance amount continuity rule)
    assert tiers.iloc[0][["floor", "cap", "max_leverage", "mmr", "maint_amount"]].tolist() == [
        0.0, 300_000.0, 150.0, 0.004, 0.0,
    ]  # fmt: skip
    assert tiers["maint_amount"].iloc[1] == pytest.approx(300_000 * (0.005 - 0.004))
    assert len(tiers) == 12


def test_tier_snapshots_sorted_and_user_dates_override(tmp_path: Path) -> None:
    table = store.list_tier_snapshots("binanceusdm", "BTC/USDT:USDT")[0][1]
    store.write_tiers(
        table.assign(mmr=table["mmr"] * 1.1),
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        date="2024-01-01",
        store=tmp_path,
    )
    snapshots = store.list_tier_snapshots("binanceusdm", "BTC/USDT:USDT", store=tmp_path)
    assert [d.strftime("%Y-%m-%d") for d, _ in snapshots] == ["2024-01-01", "2026-05-07"]


def test_concurrent_writers_keep_every_manifest_entry(tmp_path: Path) -> None:
    # Arrange: 8 writers, each its own dataset, racing on one manifest
    from concurrent.futures import ThreadPoolExecutor

    def write(i: int) -> None:
        store.write_dataset(
            _bars(3 + i),
            exchange="bybit",
            symbol=f"C{i}/USDT:USDT",
            timeframe="1h",
            kind="ohlcv",
            store=tmp_path,
        )

    # Act
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    # Assert: no lost update
    manifest = store.read_manifest(tmp_path)
    assert sorted(e["rows"] for e in manifest.values()) == [3, 4, 5, 6, 7, 8, 9, 10]


def test_verify_reports_a_folder_that_is_not_a_timeframe(tmp_path: Path) -> None:
    # a dataset under "1hour/" (not a timeframe) used to abort the whole verify with a bare
    # "timeframe must look like ..." that named no file; it is now one problem row of that file
    folder = tmp_path / "binanceusdm" / "BTC_USDT_USDT" / "1hour"
    folder.mkdir(parents=True)
    _bars(3).to_parquet(folder / "ohlcv.parquet")
    problems = integrity.verify_store(tmp_path).query("location == 'store'")
    row = problems.set_index("problem").loc["bad path"]
    assert row["dataset"] == "binanceusdm/BTC_USDT_USDT/1hour/ohlcv"
    assert "timeframe must look like" in row["detail"]
    assert str(folder / "ohlcv.parquet") in row["detail"]
