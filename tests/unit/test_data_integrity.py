"""Stored data is never lost, mixed or laundered: checksums on load, repair, manifest rebuild.

Bit flips are real: single bits of a copy of a bundled parquet file are flipped on disk.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.cli import main
from backtester.data import ccxt_loader, integrity, store
from backtester.errors import DataError
from tests.helpers.replay import ReplayAdapter, mount
from tests.helpers.scenarios import BINANCE_FULL, call_args

BTC = "BTC/USDT:USDT"
KEY = "binanceusdm/BTC_USDT_USDT/1h/ohlcv"


def _bundled() -> Path:
    root = store.bundled_root()
    assert root is not None
    return root


def _copy_bundled(root: Path, key: str = KEY) -> Path:
    # a user store holding a byte-identical copy of a bundled dataset and its manifest entry
    src = _bundled() / f"{key}.parquet"
    dst = root / f"{key}.parquet"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    entry = store.read_manifest(_bundled())[key]
    store._write_manifest(root, {**store.read_manifest(root), key: entry})
    return dst


def _flip(path: Path, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))


def _client(adapter: ReplayAdapter) -> Any:
    client = ccxt_loader.create_exchange("binanceusdm", config={"enableRateLimit": False})
    return mount(client, adapter)


def _download(root: Path, **overrides: Any) -> pd.DataFrame:
    args, kwargs = call_args({**BINANCE_FULL, **overrides})
    adapter = ReplayAdapter().load("binanceusdm", "btc_1h")
    return bt.download(*args, store=root, client=_client(adapter), progress=False, **kwargs)


def _one_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ---------------------------------------------------------------- bit rot


def test_bit_flips_that_still_parse_are_refused_on_load(tmp_path: Path) -> None:
    # Arrange: 24 single-bit flips spread over the data pages of a copy of the bundled BTC 1h
    # bars; before the check, a flip that still parses was loaded with changed prices
    path = _copy_bundled(tmp_path)
    good = path.read_bytes()
    reference = pd.read_parquet(io.BytesIO(good))
    n_bits = len(good) * 8
    parsed_but_changed = 0
    for bit in np.linspace(n_bits * 0.05, n_bits * 0.9, 24).astype(int):
        path.write_bytes(good)
        _flip(path, int(bit))
        try:
            flipped = pd.read_parquet(path)
        except Exception:
            flipped = None
        if flipped is not None and not flipped.equals(reference):
            parsed_but_changed += 1
        # Act / Assert: every flipped copy is refused, naming the file and the repair command
        with pytest.raises(DataError, match=r"ohlcv.parquet is damaged: .*backtester data repair"):
            bt.load_market(BTC, store=tmp_path, start="2024-01-01", end="2024-02-01")
    # the danger is real: some flips parse and change the numbers
    assert parsed_but_changed >= 1
    path.write_bytes(good)
    assert bt.load_market(BTC, store=tmp_path, start="2024-01-01", end="2024-02-01").n_bars == 744


def test_checksum_is_computed_once_per_file_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _copy_bundled(tmp_path)
    calls = []
    real = store.hashlib.sha256

    def counting(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(store.hashlib, "sha256", counting)
    for _ in range(3):
        store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path)
    assert len(calls) <= 1  # memoised on (path, inode, size, mtime_ns)
    _flip(path, 8 * 4000)  # a new version of the file is hashed again, and refused
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    with pytest.raises(DataError, match="is damaged"):
        store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path)


def test_repair_restores_a_bundled_copy_byte_for_byte(tmp_path: Path) -> None:
    # Arrange: the user store's copy of a bundled dataset rots
    path = _copy_bundled(tmp_path)
    _flip(path, 8 * 100_000 + 3)
    assert set(bt.verify_store(tmp_path).query("location == 'store'")["problem"]) >= {
        "checksum mismatch"
    }
    # Act: `backtester data repair` with no argument repairs what verify finds damaged
    result = ccxt_loader.repair(store=tmp_path)
    # Assert
    assert result[["dataset", "action"]].values.tolist() == [[KEY, "restored"]]
    assert path.read_bytes() == (_bundled() / f"{KEY}.parquet").read_bytes()
    assert bt.verify_store(tmp_path).query("location == 'store'").empty


def test_repair_refetches_a_downloaded_dataset_instead_of_re_recording_it(tmp_path: Path) -> None:
    # Arrange: a downloaded dataset with one flipped bit
    _download(tmp_path, kinds=("ohlcv",))
    path = tmp_path / f"{KEY}.parquet"
    before = store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path)
    _flip(path, len(path.read_bytes()) * 4)
    # Act
    adapter = ReplayAdapter().load("binanceusdm", "btc_1h")
    result = ccxt_loader.repair([KEY], store=tmp_path, client=_client(adapter), page_limit=50)
    # Assert: fetched again over the recorded range; the damaged copy is gone once it succeeded
    assert result["action"].tolist() == ["re-fetched"]
    assert adapter.count("GET /fapi/v1/klines?") > 0
    pd.testing.assert_frame_equal(
        store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path), before
    )
    assert not list(path.parent.glob("*.damaged*"))
    assert bt.verify_store(tmp_path).query("location == 'store'").empty
    # and a healthy dataset needs nothing
    again = ccxt_loader.repair([KEY], store=tmp_path, client=_client(ReplayAdapter()))
    assert again["action"].tolist() == ["ok"]


def test_repair_of_a_damaged_bundled_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: a bundled root (a copy of the real one's BTC funding) whose file rots
    real = _bundled()
    bundled = tmp_path / "bundled"
    key = "binanceusdm/BTC_USDT_USDT/1h/funding"
    path = _copy_bundled(bundled, key)
    _flip(path, 8 * 1000)
    monkeypatch.setattr(store, "bundled_root", lambda: bundled)
    monkeypatch.setattr(store, "_bundled_copies", lambda: [bundled])
    user = tmp_path / "store"
    # Act / Assert: no good copy: "cannot repair" says how to restore it
    with pytest.raises(DataError, match=r"funding.parquet is damaged: .*repair .*funding"):
        store.read_dataset("binanceusdm", BTC, "1h", "funding", store=user)
    result = ccxt_loader.repair([key], store=user)
    assert result["action"].tolist() == ["cannot repair"]
    assert "git checkout -- data/bundled/" in result["detail"].iloc[0]
    # with the package's own copy at hand, it is restored from it
    monkeypatch.setattr(store, "_bundled_copies", lambda: [bundled, real])
    result = ccxt_loader.repair([key], store=user)
    assert result["action"].tolist() == ["restored"]
    assert len(store.read_dataset("binanceusdm", BTC, "1h", "funding", store=user)) == 7323


def test_repair_moves_a_damaged_tier_snapshot_aside(tmp_path: Path) -> None:
    table = store.list_tier_snapshots("binanceusdm", BTC)[0][1]
    path = store.write_tiers(
        table, exchange="binanceusdm", symbol=BTC, date="2024-01-01", store=tmp_path
    )
    _flip(path, 8 * 200)
    with pytest.raises(DataError, match=r"2024-01-01.parquet is damaged"):
        store.list_tier_snapshots("binanceusdm", BTC, store=tmp_path)
    result = ccxt_loader.repair(store=tmp_path)
    assert result["action"].tolist() == ["removed"]
    assert path.with_name("2024-01-01.parquet.damaged").is_file()  # kept, not deleted
    dates = [d for d, _ in store.list_tier_snapshots("binanceusdm", BTC, store=tmp_path)]
    assert dates == [pd.Timestamp("2026-05-07", tz="UTC")]


def test_cli_repair_and_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy_bundled(tmp_path)
    _flip(path, 8 * 50_000)
    assert main(["data", "repair", KEY, "--store", str(tmp_path)]) == 0
    assert "restored" in capsys.readouterr().out
    assert (
        main(["data", "repair", "binanceusdm/BTC_USDT_USDT/1h/mark", "--store", str(tmp_path)]) == 0
    )
    assert main(["data", "repair", "../../etc/passwd", "--store", str(tmp_path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "dataset must be a key such as 'binanceusdm/BTC_USDT_USDT/1h/ohlcv'" in line


# ---------------------------------------------------------------- manifest and files on disk


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", r"manifest .*manifest.json is not valid JSON"),
        ("", r"manifest .*manifest.json is not valid JSON"),
        ("[1, 2]", r"manifest .*manifest.json must be an object with a 'datasets' object"),
        ('{"datasets": {"a": 3}}', r"must be an object with a 'datasets' object of entries"),
        (b"\xff\xfe\x00", r"is not valid JSON"),
    ],
)
def test_malformed_manifest_is_one_line_naming_the_rebuild(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes, match: str
) -> None:
    # Arrange: a good dataset, then its manifest is damaged
    _copy_bundled(tmp_path)
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(text if isinstance(text, bytes) else text.encode())
    # Act / Assert: API and CLI say which file and which command
    with pytest.raises(DataError, match=match + r".*backtester data rebuild-manifest --store"):
        store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path)
    assert main(["data", "list", "--store", str(tmp_path)]) == 2
    assert "rebuild-manifest" in _one_line(capsys.readouterr().err)
    # a write refuses before touching the data (it would otherwise drop every entry)
    before = (tmp_path / f"{KEY}.parquet").read_bytes()
    frame = store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store="/nonexistent").head(3)
    with pytest.raises(DataError, match="rebuild-manifest"):
        store.write_dataset(
            frame, exchange="binanceusdm", symbol=BTC, timeframe="1h", kind="ohlcv", store=tmp_path
        )
    assert (tmp_path / f"{KEY}.parquet").read_bytes() == before
    # Act: the rebuild keeps the bad manifest aside and records the (valid) file again
    assert main(["data", "rebuild-manifest", "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "moved aside" in out and "recorded" in out
    assert len(list(tmp_path.glob("manifest.json.bad-*"))) == 1
    assert len(store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path)) == 58_620


def test_rebuild_never_launders_a_damaged_file(tmp_path: Path) -> None:
    path = _copy_bundled(tmp_path)
    _flip(path, 8 * 70_000)
    result = integrity.rebuild_manifest(tmp_path)
    assert result.set_index("dataset").loc[KEY, "action"] == "kept, damaged"
    with pytest.raises(DataError, match="is damaged"):
        store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path)


def test_duplicated_bar_on_disk_names_the_file_and_the_fix(tmp_path: Path) -> None:
    # Arrange: a file written behind the store's back with bar 2024-01-01 01:00 twice
    folder = tmp_path / "binanceusdm" / "BTC_USDT_USDT" / "1h"
    folder.mkdir(parents=True)
    bars = store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store="/nonexistent")
    bars = bars[bars["timestamp"] >= pd.Timestamp("2024-01-01", tz="UTC")].head(5)
    pd.concat([bars, bars.iloc[[1]]]).sort_values("timestamp").to_parquet(folder / "ohlcv.parquet")
    # Act / Assert
    with pytest.raises(
        DataError,
        match=r"ohlcv.parquet has a duplicate bar at 2024-01-01 01:00 UTC \(row 2, 1 in all\).*"
        r"backtester data repair binanceusdm/BTC_USDT_USDT/1h/ohlcv",
    ):
        bt.load_market(BTC, store=tmp_path, mark="last")
    # the rebuild does not record it, and the downloader does not merge it
    result = integrity.rebuild_manifest(tmp_path).set_index("dataset")
    assert result.loc[KEY, "action"] == "not recorded"
    assert "duplicate" in result.loc[KEY, "detail"]
    with pytest.raises(DataError, match=r"no entry in .*manifest.json.*rebuild-manifest"):
        _download(tmp_path, kinds=("ohlcv",))


def test_garbage_requested_start_is_one_line_and_rebuild_drops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _download(tmp_path, kinds=("ohlcv",))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["datasets"][KEY]["requested_start"] = "yesterday-ish"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        DataError,
        match=r"manifest .*manifest.json: binanceusdm/BTC_USDT_USDT/1h/ohlcv requested_start must "
        r"be a date .*was 'yesterday-ish'; `backtester data rebuild-manifest --store",
    ):
        _download(tmp_path, kinds=("ohlcv",))
    result = integrity.rebuild_manifest(tmp_path).set_index("dataset")
    assert result.loc[KEY, "detail"] == "dropped bad requested_start='yesterday-ish'"
    assert _download(tmp_path, kinds=("ohlcv",))["status"].tolist() == ["up to date"]


def test_leftover_temp_files_are_reported_and_old_ones_removed(tmp_path: Path) -> None:
    path = _copy_bundled(tmp_path)
    old = path.parent / ".tmp-ohlcv.parquet.abc123"
    young = tmp_path / ".tmp-manifest.json.def456"
    old.write_bytes(b"half a file")
    young.write_bytes(b"{")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    problems = bt.verify_store(tmp_path).query("location == 'store'")
    assert problems["problem"].tolist() == ["leftover temp file"] * 2
    assert "rebuild-manifest" in problems["detail"].iloc[0]
    result = integrity.rebuild_manifest(tmp_path).set_index("dataset")
    assert result.loc[".tmp-manifest.json.def456", "action"] == "left"  # a write may be running
    assert (
        result.loc["binanceusdm/BTC_USDT_USDT/1h/.tmp-ohlcv.parquet.abc123", "action"] == "removed"
    )
    assert not old.exists() and young.exists()


# ---------------------------------------------------------------- operating-system faults


def test_read_only_store_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno
    import tempfile

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    frame = store.read_dataset("binanceusdm", BTC, "1h", "funding", store="/nonexistent").head(3)
    user = tmp_path / "user"
    _copy_bundled(user)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(
        DataError,
        match=r"cannot write .*funding.parquet: Read-only file system; make .* writable or pass "
        r"--store DIR",
    ):
        store.write_dataset(
            frame,
            exchange="binanceusdm",
            symbol=BTC,
            timeframe="1h",
            kind="funding",
            store=tmp_path,
        )
    assert not (tmp_path / "manifest.json").exists()
    # the CLI: one line, exit 2 (the manifest rebuild writes through the same atomic helper)
    assert main(["data", "rebuild-manifest", "--store", str(user)]) == 2
    assert "Read-only file system" in _one_line(capsys.readouterr().err)


def test_unreadable_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    path = _copy_bundled(tmp_path)
    real_open = builtins.open

    def guarded(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(str(file)) == path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(
        DataError, match=r"cannot read .*ohlcv.parquet: Permission denied; make it readable"
    ):
        store.read_dataset("binanceusdm", BTC, "1h", "ohlcv", store=tmp_path)
    problems = bt.verify_store(tmp_path).query("location == 'store'")
    assert problems["problem"].tolist() == ["unreadable"]
