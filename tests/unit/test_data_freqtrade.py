"""`backtester data import --from-freqtrade`: freqtrade's own XRP futures files into the store.

The files are freqtrade's test data, copied to tests/data/freqtrade/binance/futures (README there):
1h last 2021-11-17 01:00 -> 11-21 04:00 (100 bars), 1h mark 2021-11-15 06:00 -> 11-19 09:00
(100 bars), 5m last (1,999 bars), 8h mark and 8h funding (91 rows each, 2021-11-18 -> 12-18).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.cli import main
from backtester.data.freqtrade import import_freqtrade, symbol_of_pair
from backtester.errors import ConfigError, DataError

SOURCE = Path(__file__).resolve().parents[1] / "data" / "freqtrade" / "binance" / "futures"
ONE_H = "XRP_USDT_USDT-1h-futures.feather"
# sha256 of the 1h futures file as listed in tests/data/freqtrade/README.md
ONE_H_SHA256 = "e5ab4a2a4b2032fb8ff51659264abd66cd291d1bcb67abc3765c5d06d0a7be11"


@pytest.fixture()
def user_data(tmp_path: Path) -> Path:
    """A copy of the files in freqtrade's layout: <tmp>/user_data/data/binance/futures/."""
    folder = tmp_path / "user_data" / "data" / "binance" / "futures"
    shutil.copytree(SOURCE, folder)
    return folder.parent


def _rows(result: pd.DataFrame) -> set[tuple[str, str, str, int]]:
    return {(r.timeframe, r.kind, r.status, r.rows) for r in result.itertuples()}


def test_import_then_load_market_runs_a_survival_study(user_data: Path, tmp_path: Path) -> None:
    # Arrange
    store = tmp_path / "store"
    # Act: the exchange folder "binance" is freqtrade's name of binanceusdm
    result = import_freqtrade(user_data, store=store)
    market = bt.load_market("XRP/USDT:USDT", exchange="binanceusdm", store=store)
    study = bt.survival_study(market, leverage=(10,), horizon="1D", entry_every="1h")
    # Assert: every file became a dataset; funding sits beside the bars of each timeframe
    assert set(result["symbol"]) == {"XRP/USDT:USDT"}
    assert _rows(result) == {
        ("1h", "ohlcv", "ok", 100),
        ("1h", "mark", "ok", 100),
        ("5m", "ohlcv", "ok", 1999),
        ("8h", "mark", "ok", 91),
        ("1h", "funding", "ok", 91),
        ("5m", "funding", "ok", 91),
        ("8h", "funding", "ok", 91),
    }
    entry = json.loads((store / "manifest.json").read_text())["datasets"][
        "binanceusdm/XRP_USDT_USDT/1h/ohlcv"
    ]
    assert (entry["source"], entry["source_file"], entry["source_sha256"]) == (
        "freqtrade",
        ONE_H,
        ONE_H_SHA256,
    )
    assert entry["ccxt_version"] is None
    # the common range of last and mark: 2021-11-17 01:00 -> 11-19 10:00 = 57 one-hour bars
    assert market.n_bars == 57
    assert market.index[0] == pd.Timestamp("2021-11-17 01:00", tz="UTC")
    raw = pd.read_feather(SOURCE / ONE_H)
    np.testing.assert_array_equal(market.close, raw["close"].to_numpy()[:57])  # not the bundle's
    assert market.close[0] == 1.07925
    mark = pd.read_feather(SOURCE / "XRP_USDT_USDT-1h-mark.feather")
    assert market.mark_low[0] == mark.loc[mark["date"] == market.index[0], "low"].item()
    assert market.funding_rate[0] == 0.0001
    assert int(study.table()["n_entries"].iloc[0]) == 57  # one entry per bar, every hour
    assert bt.data.store.read_contract("binanceusdm", "XRP/USDT:USDT", store=store) is None


def test_reimport_is_idempotent(user_data: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    import_freqtrade(user_data / "futures", store=store)  # the futures/ folder itself works too
    manifest = (store / "manifest.json").read_bytes()
    again = import_freqtrade(user_data, store=store)
    assert set(again["status"]) == {"up to date"}
    assert (store / "manifest.json").read_bytes() == manifest


def test_more_bars_after_an_earlier_import_extend_it(user_data: Path, tmp_path: Path) -> None:
    # Arrange: an import of the first 60 one-hour bars, then freqtrade downloaded all 100
    store = tmp_path / "store"
    path = user_data / "futures" / ONE_H
    full = pd.read_feather(path)
    full.iloc[:60].reset_index(drop=True).to_feather(path)
    import_freqtrade(user_data, timeframe="1h", store=store)
    full.to_feather(path)
    # Act
    result = import_freqtrade(user_data, timeframe="1h", store=store)
    # Assert: 40 bars added, the others (and the mark, funding) as they were
    row = result[result["kind"] == "ohlcv"].iloc[0]
    assert (row["status"], row["rows_added"], row["rows"]) == ("extended", 40, 100)
    assert set(result.loc[result["kind"] != "ohlcv", "status"]) == {"up to date"}
    stored = bt.data.store.read_dataset("binanceusdm", "XRP/USDT:USDT", "1h", "ohlcv", store=store)
    np.testing.assert_array_equal(stored["close"].to_numpy(), full["close"].to_numpy())


def test_bars_next_to_a_download_are_refused(user_data: Path, tmp_path: Path) -> None:
    # the store holds a "download" (source ccxt) of the first 60 bars: the file's other 40 bars
    # would mix two sources in one dataset
    store = tmp_path / "store"
    full = pd.read_feather(user_data / "futures" / ONE_H).rename(columns={"date": "timestamp"})
    bt.data.store.write_dataset(
        full.iloc[:60],
        exchange="binanceusdm",
        symbol="XRP/USDT:USDT",
        timeframe="1h",
        kind="ohlcv",
        store=store,
    )
    with pytest.raises(DataError, match="the stored rows came from ccxt, the file's cover other"):
        import_freqtrade(user_data, timeframe="1h", store=store)


def test_a_conflicting_file_is_refused_and_nothing_is_written(
    user_data: Path, tmp_path: Path
) -> None:
    # Arrange: the store holds the import; the user's new 1h file has one other close
    store = tmp_path / "store"
    import_freqtrade(user_data, store=store)
    manifest = (store / "manifest.json").read_bytes()
    frame = pd.read_feather(user_data / "futures" / ONE_H)
    frame.loc[5, "close"] = 1.0
    frame.to_feather(user_data / "futures" / ONE_H)
    # Act
    with pytest.raises(DataError) as info:
        import_freqtrade(user_data, store=store)
    # Assert: one line naming the dataset, the file, the first differing bar and the fix
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("import refused, nothing written: ")
    assert "binanceusdm/XRP_USDT_USDT/1h/ohlcv.parquet (from XRP_USDT_USDT-1h-futures" in message
    assert "'close' differs on 1 row(s), first at 2021-11-17 06:00 UTC" in message
    assert "--store DIR" in message
    assert (store / "manifest.json").read_bytes() == manifest


def test_a_file_without_a_column_gets_one_line_naming_file_field_and_fix(
    user_data: Path, tmp_path: Path
) -> None:
    path = user_data / "futures" / ONE_H
    pd.read_feather(path).drop(columns=["close"]).to_feather(path)
    with pytest.raises(DataError) as info:
        import_freqtrade(user_data, store=tmp_path / "store")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: lacks column(s) ['close']")
    assert "export it again with freqtrade or rename the columns" in message
    assert not (tmp_path / "store" / "manifest.json").exists()  # nothing written


def test_a_spot_pair_name_is_refused_with_the_perpetual_name() -> None:
    assert symbol_of_pair("XRP_USDT_USDT") == "XRP/USDT:USDT"
    assert symbol_of_pair("BTC_USD_BTC") == "BTC/USD:BTC"
    with pytest.raises(DataError, match=r"f.feather: pair 'XRP_USDT' is not freqtrade's name"):
        symbol_of_pair("XRP_USDT", file="f.feather")
    with pytest.raises(DataError, match="perpetual XRP/USDT:USDT 'XRP_USDT_USDT'"):
        symbol_of_pair("XRP_USDT", file="f.feather")


def test_a_wrongly_named_file_is_refused(user_data: Path, tmp_path: Path) -> None:
    futures = user_data / "futures"
    (futures / ONE_H).rename(futures / "XRP_USDT-1h-futures.feather")
    with pytest.raises(DataError, match=r"XRP_USDT-1h-futures\.feather: pair 'XRP_USDT'"):
        import_freqtrade(user_data, store=tmp_path / "store")


def test_bars_off_the_file_names_timeframe_are_refused(user_data: Path, tmp_path: Path) -> None:
    futures = user_data / "futures"
    (futures / "XRP_USDT_USDT-5m-futures.feather").rename(
        futures / "XRP_USDT_USDT-4h-futures.feather"
    )
    with pytest.raises(DataError, match=r"must hold 4h bar opens \(the file name's timeframe\)"):
        import_freqtrade(user_data, store=tmp_path / "store")


def test_the_exchange_comes_from_the_folder_or_the_option(tmp_path: Path) -> None:
    other = tmp_path / "mydata"
    shutil.copytree(SOURCE, other)
    with pytest.raises(ConfigError, match="cannot tell the exchange from the folder name 'mydata'"):
        import_freqtrade(other, store=tmp_path / "store")
    result = import_freqtrade(other, exchange="bybit", timeframe="1h", store=tmp_path / "store")
    # --timeframe 1h: the 1h bars and the funding beside them; no 5m or 8h datasets
    assert {(r.timeframe, r.kind) for r in result.itertuples()} == {
        ("1h", "ohlcv"),
        ("1h", "mark"),
        ("1h", "funding"),
    }
    assert (tmp_path / "store" / "bybit" / "XRP_USDT_USDT" / "1h" / "ohlcv.parquet").is_file()


def test_an_exchanges_parent_folder_points_to_its_exchange_folders(
    user_data: Path, tmp_path: Path
) -> None:
    # user_data/data holds binance/: say which folder to pass (the exchange is not needed)
    with pytest.raises(
        DataError, match=r"holds freqtrade's exchange folders \(binance\), not data"
    ):
        import_freqtrade(user_data.parent, store=tmp_path / "store")
    with pytest.raises(DataError, match="no freqtrade futures files of timeframe 4h in"):
        import_freqtrade(user_data, timeframe="4h", store=tmp_path / "store")


def test_cli_import_prints_the_table_and_refuses_a_bad_file_in_one_line(
    user_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    assert main(["data", "import", "--from-freqtrade", str(user_data), "--store", store]) == 0
    out = capsys.readouterr().out
    assert (
        "XRP/USDT:USDT        1h   ohlcv     ok         100   100 2021-11-17 01:00 2021-11-21"
        in out
    )
    path = user_data / "futures" / "XRP_USDT_USDT-8h-funding_rate.feather"
    pd.read_feather(path).drop(columns=["open"]).to_feather(path)
    code = main(["data", "import", "--from-freqtrade", str(user_data), "--store", store])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert f"{path}: lacks column(s) ['open']" in err


def test_parquet_files_and_other_files_in_the_folder(tmp_path: Path) -> None:
    # freqtrade's parquet data format; a spot file and a json file are listed as skipped
    folder = tmp_path / "okx" / "futures"
    folder.mkdir(parents=True)
    for name in (ONE_H, "XRP_USDT_USDT-1h-mark.feather"):
        pd.read_feather(SOURCE / name).to_parquet(folder / name.replace(".feather", ".parquet"))
    (folder / "XRP_USDT-1h.parquet").write_bytes(b"spot")
    (folder / "XRP_USDT_USDT-1h-futures.json").write_text("[]")
    result = import_freqtrade(folder, store=tmp_path / "store")  # okx from the folder name
    done = result[result["status"] == "ok"]
    assert {(r.kind, r.rows) for r in done.itertuples()} == {("ohlcv", 100), ("mark", 100)}
    skipped = dict(zip(result["source_file"], result["problems"], strict=True))
    assert "spot candles and trades are not imported" in skipped["XRP_USDT-1h.parquet"]
    assert "convert-data --format-from json" in skipped["XRP_USDT_USDT-1h-futures.json"]
    assert (tmp_path / "store" / "okx" / "XRP_USDT_USDT" / "1h" / "ohlcv.parquet").is_file()


def test_a_damaged_import_names_the_import_as_its_repair(user_data: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    import_freqtrade(user_data, timeframe="1h", store=store)
    path = store / "binanceusdm" / "XRP_USDT_USDT" / "1h" / "ohlcv.parquet"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    result = bt.data.ccxt_loader.repair(None, store=store)
    row = result[result["dataset"] == "binanceusdm/XRP_USDT_USDT/1h/ohlcv"].iloc[0]
    assert row["action"] == "cannot repair"
    assert (
        "delete it and import XRP_USDT_USDT-1h-futures.feather again with `backtester"
        in (row["detail"])
    )


def test_a_coin_margined_pair_is_not_imported_as_usdm(tmp_path: Path) -> None:
    folder = tmp_path / "binance" / "futures"
    folder.mkdir(parents=True)
    shutil.copy(SOURCE / ONE_H, folder / "BTC_USD_BTC-1h-futures.feather")
    with pytest.raises(DataError, match="pair BTC/USD:BTC is coin-margined, which binanceusdm"):
        import_freqtrade(folder, store=tmp_path / "store")
    result = import_freqtrade(folder, exchange="binancecoinm", store=tmp_path / "store")
    assert list(result["symbol"]) == ["BTC/USD:BTC"]
