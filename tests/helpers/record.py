"""Record the exchange HTTP fixtures in tests/data/recorded/ (maintainer step, not run by tests).

    python -m tests.helpers.record --source RAW_DATA_DIR

Runs every scenario of ``tests/helpers/scenarios.py`` through the real ccxt exchange classes with a
:class:`RecordingAdapter` that renders each request from REAL bars in the exchange's documented
response format (``tests/helpers/exchange_api.py``), and saves the interactions as JSON:
Binance (USDⓈ-M, and COIN-M in the dapi format) from the bundled BTC data, OKX from the OKX BTC-USDT-SWAP 1m/1h-mark/funding files of
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
    # (ETH-USDT-SWAP: contracts of 0.1 ETH; values of the same documented shape, not OKX's)
    levels = {
        "BTC-USDT": [
            (0, 20000, 100, 0.004, 0.01),
            (20000, 40000, 75, 0.005, 0.0133),
            (40000, 60000, 50, 0.01, 0.02),
        ],
        "ETH-USDT": [
            (0, 50000, 100, 0.004, 0.01),
            (50000, 100000, 50, 0.008, 0.02),
        ],
    }
    tiers: dict[str, list[dict[str, Any]]] = {}
    for family, rows in levels.items():
        tiers[family] = []
        for i, (lo, hi, lever, mmr, imr) in enumerate(rows):
            row = copy.deepcopy(template)
            row.update(
                {
                    "instId": "",
                    "instFamily": family,
                    "uly": family,
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
            tiers[family].append(row)

    def position_tiers(q: dict[str, str]) -> tuple[int, Any]:
        return 200, {"code": "0", "msg": "", "data": tiers.get(q.get("instFamily", ""), [])}

    return api.Backend(
        {
            "GET /api/v5/public/instruments": api.static(instruments),
            "GET /api/v5/market/history-candles": api.okx_candles(ohlcv),
            "GET /api/v5/market/candles": api.okx_candles(ohlcv),
            "GET /api/v5/market/history-mark-price-candles": api.okx_candles(mark, mark=True),
            "GET /api/v5/market/mark-price-candles": api.okx_candles(mark, mark=True),
            "GET /api/v5/public/funding-rate-history": api.okx_funding(funding, "BTC-USDT-SWAP"),
            "GET /api/v5/public/position-tiers": position_tiers,
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

    # risk limits of the documented shape (ETHUSDT: values of that shape, not Bybit's)
    levels = {
        "BTCUSDT": [
            (2000000, 0.005, 0.01, 100, 0),
            (2600000, 0.0056, 0.0111, 90, 1200),
            (3200000, 0.0062, 0.0125, 80, 2760),
        ],
        "ETHUSDT": [
            (1000000, 0.005, 0.01, 100, 0),
            (1500000, 0.0065, 0.0125, 80, 1500),
        ],
    }

    def risk_limit(q: dict[str, str]) -> tuple[int, Any]:
        symbol = q.get("symbol", "")
        risk = [
            {
                "id": i + 1,
                "symbol": symbol,
                "riskLimitValue": str(cap),
                "maintenanceMargin": str(mmr),
                "initialMargin": str(imr),
                "isLowestRisk": 1 if i == 0 else 0,
                "maxLeverage": f"{lever:.2f}",
                "mmDeduction": str(ded),
            }
            for i, (cap, mmr, imr, lever, ded) in enumerate(levels.get(symbol, []))
        ]
        body = {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": "linear", "list": risk},
            "retExtInfo": {},
            "time": 1760000000000,
        }
        return 200, body

    return api.Backend(
        {
            "GET /v5/market/instruments-info": instruments_info,
            "GET /v5/market/kline": api.bybit_kline(ohlcv, "BTCUSDT"),
            "GET /v5/market/mark-price-kline": api.bybit_kline(mark, "BTCUSDT", mark=True),
            "GET /v5/market/funding/history": api.bybit_funding(funding, "BTCUSDT"),
            "GET /v5/market/risk-limit": risk_limit,
        }
    )


# Binance COIN-M exchangeInfo in the documented shape (ccxt's binance.parse_market comment, from
# Binance's delivery API docs): BTCUSD_PERP 100 USD and ETHUSD_PERP 10 USD per contract, plus a
# dated BTCUSD quarter (not a perpetual)
def _dapi_symbol(symbol: str, base: str, kind: str, delivery: int, size: int, tick: str) -> Any:
    return {
        "symbol": symbol,
        "pair": f"{base}USD",
        "contractType": kind,
        "deliveryDate": delivery,
        "onboardDate": 1596006000000,
        "contractStatus": "TRADING",
        "contractSize": size,
        "marginAsset": base,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": "USD",
        "pricePrecision": 1 if base == "BTC" else 2,
        "quantityPrecision": 0,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "equalQtyPrecision": 4,
        "filters": [
            {
                "minPrice": tick,
                "maxPrice": "4529764",
                "filterType": "PRICE_FILTER",
                "tickSize": tick,
            },
            {"stepSize": "1", "filterType": "LOT_SIZE", "maxQty": "1000000", "minQty": "1"},
            {"stepSize": "1", "filterType": "MARKET_LOT_SIZE", "maxQty": "60000", "minQty": "1"},
            {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {
                "multiplierDown": "0.9500",
                "multiplierUp": "1.0500",
                "multiplierDecimal": "4",
                "filterType": "PERCENT_PRICE",
            },
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def _binancecoinm(source: Path) -> api.Backend:
    from backtester.data.store import read_dataset

    # COIN-M prices follow the same index as USDⓈ-M: the bars are the bundled real Binance
    # USDⓈ-M BTC bars from 2024-01-01 (the rendered market's first bar), in the dapi format;
    # the loader is what is tested, not COIN-M's own prices
    start = pd.Timestamp("2024-01-01", tz="UTC")

    def since(df: pd.DataFrame) -> pd.DataFrame:
        return df.loc[df["timestamp"] >= start].reset_index(drop=True)

    ohlcv = since(read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "ohlcv"))
    mark = since(read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "mark"))
    funding = since(read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", "funding"))
    info = {
        "timezone": "UTC",
        "serverTime": 1780000000000,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 2400,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],
        "exchangeFilters": [],
        "symbols": [
            _dapi_symbol("BTCUSD_PERP", "BTC", "PERPETUAL", 4133404800000, 100, "0.1"),
            _dapi_symbol("ETHUSD_PERP", "ETH", "PERPETUAL", 4133404800000, 10, "0.01"),
            _dapi_symbol("BTCUSD_260626", "BTC", "CURRENT_QUARTER", 1782460800000, 100, "0.1"),
        ],
    }
    return api.Backend(
        {
            "GET /dapi/v1/exchangeInfo": api.static(info),
            "GET /dapi/v1/klines": api.binance_dapi_klines(ohlcv, H_MS, 100.0),
            "GET /dapi/v1/markPriceKlines": api.binance_dapi_klines(mark, H_MS, 100.0, mark=True),
            "GET /dapi/v1/indexPriceKlines": api.binance_dapi_klines(mark, H_MS, 100.0, mark=True),
            "GET /dapi/v1/fundingRate": api.binance_funding(funding, "BTCUSD_PERP", mark),
        }
    )


def record(exchange: str, backend: api.Backend) -> list[Path]:
    paths = []
    for name, sequences in SCENARIOS[exchange].items():
        adapter = RecordingAdapter(backend=backend)
        for sequence in sequences:
            with tempfile.TemporaryDirectory() as tmp:
                for scenario in sequence:
                    config = {"enableRateLimit": False}
                    client = ccxt_loader.create_exchange(exchange, config=config)
                    mount(client, adapter)
                    args, kwargs = call_args(scenario)
                    result = bt.download(
                        *args, store=tmp, client=client, sleep=lambda s: None, **kwargs
                    )
                    rows = result[["kind", "status", "rows_added", "rows"]].to_dict("records")
                    print(exchange, name, rows)
        path = RECORDED / exchange / f"{name}.json"
        adapter.save(path)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", required=True, help="the raw data directory (see data/README.md for its origin)"
    )
    parser.add_argument("--only", default=None, help="one exchange")
    args = parser.parse_args()
    source = Path(args.source)
    builders: dict[str, Any] = {
        "binanceusdm": _binance,
        "okx": _okx,
        "bybit": _bybit,
        "binancecoinm": _binancecoinm,
    }
    for exchange, build in builders.items():
        if args.only and exchange != args.only:
            continue
        for path in record(exchange, build(source)):
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
