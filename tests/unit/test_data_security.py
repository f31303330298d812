"""Data-layer security: names never leave the store root; credentials never reach a log."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import backtester as bt
from backtester.cli import main
from backtester.data import ccxt_loader, store
from backtester.errors import ConfigError, DataError
from tests.helpers.replay import ReplayAdapter, mount

BTC = "BTC/USDT:USDT"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def _funding(n: int = 3) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=n, freq="8h", tz="UTC")
    return pd.DataFrame({"timestamp": ts, "funding_rate": [1e-4] * n})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("exchange", "../../x"),
        ("exchange", "/tmp/abs"),
        ("exchange", ".."),
        ("exchange", ".hidden"),
        ("symbol", ".."),
        ("symbol", "../../x"),
        ("symbol", "BTC/USDT\\..\\..:USDT"),
        ("symbol", "BTC USDT"),
        ("timeframe", "1h/../../x"),
        ("timeframe", "1h\n"),
    ],
)
def test_names_cannot_write_outside_the_store(tmp_path: Path, field: str, value: str) -> None:
    # Arrange: the store is a folder inside tmp_path; nothing may appear outside it
    root = tmp_path / "a" / "b" / "store"
    args: dict[str, Any] = {"exchange": "binanceusdm", "symbol": BTC, "timeframe": "1h"}
    args[field] = value
    # Act / Assert
    with pytest.raises((ConfigError, DataError), match=rf"{field} must"):
        store.write_dataset(_funding(), kind="funding", store=root, **args)
    with pytest.raises((ConfigError, DataError), match=rf"{field} must"):
        store.read_dataset(
            args["exchange"], args["symbol"], args["timeframe"], "funding", store=root
        )
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_tier_names_are_checked_too(tmp_path: Path) -> None:
    table = store.list_tier_snapshots("binanceusdm", BTC)[0][1]
    with pytest.raises(ConfigError, match="exchange must be a name"):
        store.write_tiers(table, exchange="../x", symbol=BTC, date="2024-01-01", store=tmp_path)
    with pytest.raises(ConfigError, match="symbol must be a ccxt symbol"):
        store.list_tier_snapshots("binanceusdm", "..", store=tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- credentials in logs


def _signed_client(adapter: ReplayAdapter) -> Any:
    # markets load unsigned; then the keys are set, so the tier request is a signed one
    client = ccxt_loader.create_exchange("binanceusdm", config={"enableRateLimit": False})
    mount(client, adapter)
    client.load_markets()
    client.apiKey, client.secret = API_KEY, SECRET
    return client


def _adapter() -> ReplayAdapter:
    bundled = store.list_tier_snapshots("binanceusdm", BTC)[0][1]
    brackets = [
        {
            "bracket": int(r.tier),
            "initialLeverage": int(r.max_leverage),
            "notionalCap": r.cap,
            "notionalFloor": r.floor,
            "maintMarginRatio": r.mmr,
            "cum": r.maint_amount,
        }
        for r in bundled.itertuples()
    ]
    return (
        ReplayAdapter()
        .load("binanceusdm", "btc_1h")
        .add(
            [
                {
                    "method": "GET",
                    "path": "/fapi/v1/leverageBracket",
                    "status": 200,
                    "body": [{"symbol": "BTCUSDT", "brackets": brackets}],
                }
            ]
        )
    )


def test_signed_request_logs_no_credential_at_any_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: everything at DEBUG, where ccxt logs each request with its headers and URL
    adapter = _adapter()
    client = _signed_client(adapter)
    caplog.set_level(logging.DEBUG)
    # Act: a replayed signed request (Binance leverage brackets), through the loader
    result = bt.download(
        "binanceusdm",
        BTC,
        "1h",
        start="2024-01-01",
        end="2024-01-02",
        kinds=("tiers",),
        store=tmp_path,
        client=client,
        progress=False,
        now="2026-06-01",
    )
    # Assert: the request was signed and logged, with every credential masked
    assert result["status"].tolist() == ["ok"]
    assert adapter.count("GET /fapi/v1/leverageBracket") == 1
    request_logs = [r for r in caplog.records if "leverageBracket" in r.getMessage()]
    assert request_logs, "ccxt logs the request at DEBUG"
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert API_KEY not in text
    assert SECRET not in text
    assert "X-MBX-APIKEY': '***'" in text
    assert "signature=***" in text


def test_cli_installs_the_filter_on_its_handlers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: the CLI reads the keys from the environment; the client it builds is mounted on
    # the replayed exchange (markets first unsigned, like a real first call)
    monkeypatch.setenv("BACKTESTER_BINANCEUSDM_API_KEY", API_KEY)
    monkeypatch.setenv("BACKTESTER_BINANCEUSDM_SECRET", SECRET)
    real_create = ccxt_loader.create_exchange
    adapter = _adapter()

    def create(exchange: str, *, config: dict[str, Any] | None = None) -> Any:
        client = real_create(exchange, config={"enableRateLimit": False})
        mount(client, adapter)
        client.load_markets()
        client.apiKey, client.secret = config["apiKey"], config["secret"]  # type: ignore[index]
        return client

    monkeypatch.setattr(ccxt_loader, "create_exchange", create)
    caplog.set_level(logging.DEBUG)  # (basicConfig is a no-op under pytest's own handlers)
    args = ["-vv", "data", "download", "--symbol", BTC, "--start", "2024-01-01"]
    args += ["--end", "2024-01-02", "--kinds", "tiers", "--store", str(tmp_path), "--no-progress"]
    # Act
    assert main(args) == 0
    # Assert: records from any logger (ours, ccxt's, a user's) are masked by the handler filter
    logging.getLogger("some.user.module").debug("key %s and secret %s", API_KEY, SECRET)
    assert "leverageBracket" in caplog.text
    assert API_KEY not in caplog.text
    assert SECRET not in caplog.text


def test_exchange_error_messages_mask_the_signature() -> None:
    import ccxt

    exc = ccxt.ExchangeError(
        "binanceusdm GET https://fapi.binance.com/fapi/v1/leverageBracket?timestamp=1&"
        "signature=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 403"
    )
    assert "signature=***" in ccxt_loader._short(exc)
