"""OKX/Bybit tiers through public endpoints and Binance COIN-M downloads, replayed at ccxt's HTTP layer.

The recorded responses (tests/data/recorded/{okx,bybit}/eth_tiers.json, binancecoinm/btc_1h.json)
were rendered in each exchange's documented format by tests/helpers/record.py from the scenarios
of tests/helpers/scenarios.py; the REAL ccxt classes build the requests and parse the responses.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.cli import main
from backtester.data import ccxt_loader, store
from backtester.data.integrity import verify_store
from backtester.errors import DataError, ExchangeError
from tests.helpers.replay import ReplayAdapter, mount
from tests.helpers.scenarios import (
    COINM_BEFORE_LISTING,
    COINM_FULL,
    OKX_ETH_TIERS,
    call_args,
)

ETH = "ETH/USDT:USDT"
COIN_BTC = "BTC/USD:BTC"


def _client(exchange: str, adapter: ReplayAdapter) -> Any:
    client = ccxt_loader.create_exchange(exchange, config={"enableRateLimit": False})
    return mount(client, adapter)


def _run(scenario: dict[str, Any], root: Path, adapter: ReplayAdapter, **over: Any) -> pd.DataFrame:
    args, kwargs = call_args({**scenario, **over})
    client = kwargs.pop("client", None) or _client(args[0], adapter)
    return bt.download(
        *args, store=root, client=client, progress=False, sleep=lambda s: None, **kwargs
    )


def _replaying_cli(monkeypatch: pytest.MonkeyPatch, exchange: str, name: str) -> ReplayAdapter:
    # the CLI builds its client through create_exchange: serve the recorded HTTP instead
    real = ccxt_loader.create_exchange
    adapter = ReplayAdapter().load(exchange, name)

    def replaying(exchange_id: str, **kwargs: Any) -> Any:
        return mount(real(exchange_id, config={"enableRateLimit": False}), adapter)

    monkeypatch.setattr(ccxt_loader, "create_exchange", replaying)
    return adapter


# ---------------------------------------------------------------- OKX / Bybit tiers, no keys


@pytest.mark.parametrize("exchange", ["okx", "bybit"])
def test_cli_downloads_public_tiers_without_keys_or_start(
    exchange: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Arrange: no API key in the environment, no --start (a snapshot is today's)
    for name in ("API_KEY", "SECRET", "PASSWORD"):
        monkeypatch.delenv(f"BACKTESTER_{exchange.upper()}_{name}", raising=False)
    adapter = _replaying_cli(monkeypatch, exchange, "eth_tiers")
    argv = ["data", "download", "--exchange", exchange, "--symbol", ETH, "--kinds", "tiers"]
    argv += ["--store", str(tmp_path), "--no-progress"]
    # Act
    first = main(argv)
    second = main(argv)
    # Assert: one public request per run, today's snapshot written once, then up to date
    assert (first, second) == (0, 0)
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:3] == ["tiers", "ok", "2"]
    assert out[3].split()[:5] == ["tiers", "up", "to", "date", "0"]
    path = "/api/v5/public/position-tiers" if exchange == "okx" else "/v5/market/risk-limit"
    assert adapter.count(f"GET {path}?") == 2
    (day, tiers), *_ = store.list_tier_snapshots(exchange, ETH, store=tmp_path)
    assert day == pd.Timestamp.now(tz="UTC").floor("D")
    if exchange == "okx":
        # 50,000 and 100,000 contracts of 0.1 ETH -> 5,000 and 10,000 ETH, tiers by size
        assert tiers["cap"].tolist() == [5000.0, 10000.0]
        assert set(tiers["basis"]) == {"size"}
    else:
        # risk limits by notional; the second tier's mmDeduction is its maintenance amount
        assert tiers["floor"].tolist() == [0.0, 1_000_000.0]
        assert tiers["cap"].tolist() == [1_000_000.0, 1_500_000.0]
        assert tiers["maint_amount"].tolist() == [0.0, 1500.0]
    entry = store.read_manifest(tmp_path)[f"{exchange}/ETH_USDT_USDT/tiers/{day:%Y-%m-%d}"]
    assert entry["contract_type"] == "linear"


def test_downloaded_okx_tiers_are_the_table_the_engine_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: OKX ETH has no packaged table; its downloaded snapshot of 2026-01-16
    monkeypatch.setenv("BACKTESTER_STORE", str(tmp_path))
    _run(OKX_ETH_TIERS, tmp_path, ReplayAdapter().load("okx", "eth_tiers"))
    # Act
    rules = bt.exchange_rules("okx", ETH, at="2026-02-01")
    lp = bt.liquidation_price("okx", "long", 2000, 6000, leverage=20, symbol=ETH, at="2026-02-01")
    # Assert: 6,000 ETH is tier 2 (MMR 0.8 %); margin/size = 2000/20 = 100;
    # LP = (2000 - 100) / (1 - 0.008 - 0.0005 taker fee) = 1900 / 0.9915
    assert rules.table_id == "store:okx/ETH_USDT_USDT/2026-01-16"
    assert lp == pytest.approx(1900 / 0.9915, rel=1e-12)


def test_a_different_snapshot_of_the_same_day_is_never_replaced(tmp_path: Path) -> None:
    # Arrange: a snapshot of 2026-01-16 already stored, with other tiers than OKX serves
    mine = pd.DataFrame(
        {"floor": [0.0], "cap": [float("inf")], "max_leverage": [10.0], "mmr": [0.05]}
    )
    path = store.write_tiers(mine, exchange="okx", symbol=ETH, date="2026-01-16", store=tmp_path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    # Act
    result = _run(OKX_ETH_TIERS, tmp_path, ReplayAdapter().load("okx", "eth_tiers"))
    # Assert: reported, and the stored file (and its entry) untouched
    row = result.iloc[0]
    assert row["status"] == "conflict"
    assert "kept the stored one (a snapshot is never replaced)" in row["problems"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert store.read_manifest(tmp_path)["okx/ETH_USDT_USDT/tiers/2026-01-16"]["sha256"] == before
    # and the store layer refuses it too, while writing the same tiers again is a no-op
    with pytest.raises(DataError, match=r"already holds different okx ETH/USDT:USDT tiers"):
        store.write_tiers(
            mine.assign(mmr=0.06), exchange="okx", symbol=ETH, date="2026-01-16", store=tmp_path
        )
    store.write_tiers(mine, exchange="okx", symbol=ETH, date="2026-01-16", store=tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_cli_unknown_symbol_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _replaying_cli(monkeypatch, "okx", "eth_tiers")
    argv = ["data", "download", "--exchange", "okx", "--symbol", "ETH/USDC:USDC"]
    code = main([*argv, "--kinds", "tiers", "--store", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "okx has no market 'ETH/USDC:USDC'; did you mean 'ETH/USDT:USDT'?" in err


def test_cli_series_without_start_is_refused_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["data", "download", "--exchange", "okx", "--symbol", ETH, "--kinds", "ohlcv"])
    assert code == 2
    assert "--start is needed for ohlcv (the first bar to fetch)" in capsys.readouterr().err


# ---------------------------------------------------------------- Binance COIN-M


def _coinm() -> ReplayAdapter:
    return ReplayAdapter().load("binancecoinm", "btc_1h")


def test_coinm_download_pages_dapi_and_records_the_contract(tmp_path: Path) -> None:
    # Arrange: 2024-01-01 -> 01-08 is 168 hourly bars; 50-bar windows -> 4 requests per kind
    adapter = _coinm()
    # Act
    result = _run(COINM_FULL, tmp_path, adapter)
    # Assert
    assert result.set_index("kind")["rows_added"].to_dict() == {
        "ohlcv": 168,
        "mark": 168,
        "funding": 21,  # 7 days x 3
        "index": 168,
    }
    for path in ("klines", "markPriceKlines", "indexPriceKlines"):
        assert adapter.count(f"GET /dapi/v1/{path}?") == 4
    # the rendered bars are the bundled USDⓈ-M BTC bars; the volume kept is the base-coin
    # volume (dapi index 7), not the contract count (index 5)
    got = store.read_dataset("binancecoinm", COIN_BTC, "1h", "ohlcv", store=tmp_path)
    real = store.read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "ohlcv", store="/nonexistent")
    real = real[real["timestamp"] >= pd.Timestamp("2024-01-01", tz="UTC")].head(168)
    np.testing.assert_allclose(got["close"], real["close"], rtol=1e-9)
    np.testing.assert_allclose(got["volume"], real["volume"], rtol=1e-9)
    assert store.read_contract("binancecoinm", COIN_BTC, store=tmp_path) == {
        "contract_type": "inverse",
        "contract_size": 100.0,
        "contract_size_unit": "USD",
        "settle": "BTC",
    }
    entry = store.read_manifest(tmp_path)["binancecoinm/BTC_USD_BTC/1h/funding"]
    assert (entry["contract_type"], entry["contract_size"]) == ("inverse", 100.0)
    assert verify_store(tmp_path).query("location == 'store'").empty


def test_coinm_start_before_listing_walks_empty_windows_and_remembers_them(
    tmp_path: Path,
) -> None:
    # Arrange: the market's first bar is 2024-01-01 00:00; we ask from 2023-12-27 (5 days before)
    adapter = _coinm()
    # Act
    _run(COINM_BEFORE_LISTING, tmp_path, adapter)
    first_run = adapter.count("GET /dapi/v1/klines?")
    again = _run(COINM_BEFORE_LISTING, tmp_path, adapter)
    # Assert: windows from 12-27 00:00 and 12-29 02:00 are empty, 12-31 04:00 holds the first
    # 30 bars (01-01 00:00 -> 01-02 05:00), 01-02 06:00 the last 18 (-> 01-02 23:00)
    ohlcv = store.read_dataset("binancecoinm", COIN_BTC, "1h", "ohlcv", store=tmp_path)
    assert len(ohlcv) == 48
    assert ohlcv["timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert first_run == 4
    assert adapter.count("GET /dapi/v1/klines?") == 4  # the second run asks nothing
    assert again["status"].tolist() == ["up to date", "up to date"]
    entry = store.read_manifest(tmp_path)["binancecoinm/BTC_USD_BTC/1h/ohlcv"]
    assert entry["requested_start"] == "2023-12-27T00:00:00+00:00"


def test_coinm_unknown_symbol_suggests_the_coin_margined_perpetual(tmp_path: Path) -> None:
    with pytest.raises(ExchangeError) as err:
        _run({**COINM_FULL, "symbol": "BTC/USDT:USDT"}, tmp_path, _coinm())
    assert "binancecoinm has no market 'BTC/USDT:USDT'" in str(err.value)
    assert "perpetuals are written like 'BTC/USD:BTC'" in str(err.value)


def test_coinm_tiers_need_keys_then_come_from_the_signed_dapi_brackets(tmp_path: Path) -> None:
    # without keys: skipped, naming the signed endpoint
    unsigned = _run({**COINM_FULL, "kinds": ("tiers",)}, tmp_path, _coinm())
    assert (
        unsigned["status"]
        .iloc[0]
        .startswith(
            "skipped: Binance serves leverage brackets only to signed requests (/dapi/v2/leverageBracket)"
        )
    )
    # with keys: Binance's documented v2 brackets, in the coin (qtyFloor/qtyCap, cum)
    brackets = [
        {"bracket": 1, "initialLeverage": 125, "qtyCap": 5, "qtyFloor": 0,
         "maintMarginRatio": 0.004, "cum": 0.0},
        {"bracket": 2, "initialLeverage": 100, "qtyCap": 10, "qtyFloor": 5,
         "maintMarginRatio": 0.005, "cum": 0.005},
    ]  # fmt: skip
    body = [{"symbol": "BTCUSD_PERP", "notionalCoef": 1.5, "brackets": brackets}]
    adapter = _coinm().add(
        [{"method": "GET", "path": "/dapi/v2/leverageBracket", "status": 200, "body": body}]
    )
    client = _client("binancecoinm", adapter)
    client.load_markets()
    client.apiKey, client.secret = "test-key-not-real", "test-secret-not-real"
    result = _run({**COINM_FULL, "kinds": ("tiers",)}, tmp_path, adapter, client=client)
    assert result["status"].tolist() == ["ok"]
    assert adapter.count("GET /dapi/v2/leverageBracket") == 1
    tiers = store.list_tier_snapshots("binancecoinm", COIN_BTC, store=tmp_path)[-1][1]
    assert tiers["floor"].tolist() == [0.0, 5.0]
    assert tiers["cap"].tolist() == [5.0, 10.0]
    assert tiers["maint_amount"].tolist() == [0.0, 0.005]
    assert set(tiers["basis"]) == {"size"}
