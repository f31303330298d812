"""Record the exchange HTTP fixtures in tests/data/recorded/ (maintainer step, not run by tests).

    python -m tests.helpers.record --source RAW_DATA_DIR

Runs every scenario of ``tests/helpers/scenarios.py`` through the real ccxt exchange classes with a
:class:`RecordingAdapter` that renders each request from REAL bars in the exchange's documented
response format (``tests/helpers/exchange_api.py``), and saves the interactions as JSON:
Binance from the bundled BTC data, OKX from the OKX BTC-USDT-SWAP 1m/1h-mark/funding files of
``okx_swap_huckhuck12``, Bybit from the BTCUSDT 5m/1h-mark/funding files of ``bybit_linear_dkotl``,
market lists trimmed from the real Binance exchangeInfo and the nautilus OKX/Bybit fixtures.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

import backtester as bt
from backtester.data import ccxt_loader
from tests.helpers import exchange_api as api
from tests.helpers.replay import RECORDED, RecordingAdapter, mount
from tests.helpers.scenarios import SCENARIOS, call_args

H_MS = 3_600_000


def _feather(path: Path, kind: str) -> pd.DataFrame:
    df = pd.read_feather(path).rename(columns={"date": "timestamp"})
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    if kind == "funding":
        return pd.DataFrame({"timestamp": df["timestamp"], "funding_rate": df["open"]})
    return df[["timestamp", "open", "high", "low", "close", "volume"]]


def _hourly(df: pd.DataFrame) -> pd.DataFrame:
    out = (
        df.set_index("timestamp")
        .resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
        .reset_index()
    )
    return out


def _binance(source: Path) -> api.Backend:
    from backtester.data.store import read_dataset

    ohlcv = read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "ohlcv")
    mark = read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "mark")
    funding = read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "funding")
    # index klines are not in the bundle: Binance's index tracks spot; serve the mark bars' shape
    # from the real Binance SPOT BTC/USDT 1h bars (the index's main constituent)
    spot = _feather(source / "binance_usdm_roshan7869" / "spot" / "BTC_USDT-1h.feather", "bars")
    info = json.loads(
        (source / "binance_usdm_raw_api" / "fapi_v1_exchangeInfo_2025-12-24.json").read_text()
    )
    info["symbols"] = [s for s in info["symbols"] if s["symbol"] in ("BTCUSDT", "ETHUSDT")]
    info["assets"] = [a for a in info["assets"] if a["asset"] in ("USDT", "USDC", "BTC")]
    return api.Backend(
        {
            "GET /fapi/v1/exchangeInfo": api.static(info),
            "GET /fapi/v1/klines": api.binance_klines(ohlcv, H_MS),
            "GET /fapi/v1/markPriceKlines": api.binance_klines(mark, H_MS, mark=True),
            "GET /fapi/v1/indexPriceKlines": api.binance_klines(spot, H_MS, mark=True),
            "GET /fapi/v1/fundingRate": api.binance_funding(funding, "BTCUSDT", mark),
        }
    )


def _okx(source: Path) -> api.Backend:
    base = source / "okx_swap_huckhuck12"
    ohlcv = _hourly(_feather(base / "BTC_USDT_USDT-1m-futures.feather", "bars"))
    mark = _feather(base / "BTC_USDT_USDT-1h-mark.feather", "bars")
    funding = _feather(base / "BTC_USDT_USDT-1h-funding_rate.feather", "funding")
    nautilus = source / "nautilus_raw_api_fixtures" / "okx"
    instruments = json.loads((nautilus / "http_get_instruments_swap.json").read_text())
    tiers_fixture = json.loads((nautilus / "http_get_position_tiers.json").read_text())
    # position tiers of BTC-USDT-SWAP in the documented shape of the nautilus fixture (sizes in
    # contracts of 0.01 BTC)
    template = tiers_fixture["data"][0]
    tiers = []
    for i, (lo, hi, lever, mmr, imr) in enumerate(
        [
            (0, 20000, 100, 0.004, 0.01),
            (20000, 40000, 75, 0.005, 0.0133),
            (40000, 60000, 50, 0.01, 0.02),
        ]
    ):
        row = copy.deepcopy(template)
        row.update(
            {
                "instId": "",
                "instFamily": "BTC-USDT",
                "uly": "BTC-USDT",
                "tier": str(i + 1),
                "minSz": str(lo),
                "maxSz": str(hi),
                "maxLever": str(lever),
                "mmr": str(mmr),
                "imr": str(imr),
                "baseMaxLoan": "",
                "quoteMaxLoan": "",
            }
        )
        tiers.append(row)
    return api.Backend(
        {
            "GET /api/v5/public/instruments": api.static(instruments),
            "GET /api/v5/market/history-candles": api.okx_candles(ohlcv),
            "GET /api/v5/market/candles": api.okx_candles(ohlcv),
            "GET /api/v5/market/history-mark-price-candles": api.okx_candles(mark, mark=True),
            "GET /api/v5/market/mark-price-candles": api.okx_candles(mark, mark=True),
            "GET /api/v5/public/funding-rate-history": api.okx_funding(funding, "BTC-USDT-SWAP"),
            "GET /api/v5/public/position-tiers": api.static(
                {"code": "0", "msg": "", "data": tiers}
            ),
        }
    )


def _bybit(source: Path) -> api.Backend:
    base = source / "bybit_linear_dkotl"
    ohlcv = _hourly(_feather(base / "BTC_USDT_USDT-5m-futures.feather", "bars"))
    mark = _feather(base / "BTC_USDT_USDT-1h-mark.feather", "bars")
    funding = _feather(base / "BTC_USDT_USDT-1h-funding_rate.feather", "funding")
    nautilus = source / "nautilus_raw_api_fixtures" / "bybit"
    instruments = json.loads((nautilus / "http_get_instruments_linear.json").read_text())
    instruments["result"]["category"] = "linear"  # the documented response names its category
    prelaunch = copy.deepcopy(instruments)
    prelaunch["result"]["list"] = []

    def instruments_info(q: dict[str, str]) -> tuple[int, Any]:
        return 200, prelaunch if q.get("status") == "PreLaunch" else instruments

    risk = [
        {
            "id": i + 1,
            "symbol": "BTCUSDT",
            "riskLimitValue": str(cap),
            "maintenanceMargin": str(mmr),
            "initialMargin": str(imr),
            "isLowestRisk": 1 if i == 0 else 0,
            "maxLeverage": f"{lever:.2f}",
            "mmDeduction": str(ded),
        }
        for i, (cap, mmr, imr, lever, ded) in enumerate(
            [
                (2000000, 0.005, 0.01, 100, 0),
                (2600000, 0.0056, 0.0111, 90, 1200),
                (3200000, 0.0062, 0.0125, 80, 2760),
            ]
        )
    ]
    risk_body = {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"category": "linear", "list": risk},
        "retExtInfo": {},
        "time": 1760000000000,
    }
    return api.Backend(
        {
            "GET /v5/market/instruments-info": instruments_info,
            "GET /v5/market/kline": api.bybit_kline(ohlcv, "BTCUSDT"),
            "GET /v5/market/mark-price-kline": api.bybit_kline(mark, "BTCUSDT", mark=True),
            "GET /v5/market/funding/history": api.bybit_funding(funding, "BTCUSDT"),
            "GET /v5/market/risk-limit": api.static(risk_body),
        }
    )


def record(exchange: str, backend: api.Backend) -> Path:
    adapter = RecordingAdapter(backend=backend)
    for sequence in SCENARIOS[exchange]:
        with tempfile.TemporaryDirectory() as tmp:
            for scenario in sequence:
                client = ccxt_loader.create_exchange(exchange, config={"enableRateLimit": False})
                mount(client, adapter)
                args, kwargs = call_args(scenario)
                result = bt.download(
                    *args, store=tmp, client=client, sleep=lambda s: None, **kwargs
                )
                print(exchange, result[["kind", "status", "rows_added", "rows"]].to_dict("records"))
    path = RECORDED / exchange / "btc_1h.json"
    adapter.save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", required=True, help="the raw data directory (see data/README.md for its origin)"
    )
    parser.add_argument("--only", default=None, help="one exchange")
    args = parser.parse_args()
    source = Path(args.source)
    builders: dict[str, Any] = {"binanceusdm": _binance, "okx": _okx, "bybit": _bybit}
    for exchange, build in builders.items():
        if args.only and exchange != args.only:
            continue
        path = record(exchange, build(source))
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
