"""Render exchange REST responses (documented formats) from real bars, to RECORD test fixtures.

Used only by ``python -m tests.helpers.record`` (a maintainer step that writes
``tests/data/recorded/<exchange>/*.json``); tests replay those files and never call this.

Formats:
* Binance COIN-M: ``GET /dapi/v1/klines`` / ``markPriceKlines`` as USDⓈ-M but volume in
  contracts (index 5) and in the base coin (index 7), bounded by ``endTime``;
  ``GET /dapi/v1/fundingRate`` as USDⓈ-M with the symbol ``BTCUSD_PERP``; ``/dapi/v1/exchangeInfo``
  symbols with ``contractType``, ``contractSize`` (USD per contract), ``marginAsset``.
* Binance USDⓈ-M: ``GET /fapi/v1/klines`` / ``markPriceKlines`` / ``indexPriceKlines`` return arrays
  ``[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades, takerBase,
  takerQuote, ignore]`` (prices as strings), ascending, bars with ``openTime >= startTime`` (and
  ``<= endTime``), at most ``limit``; ``GET /fapi/v1/fundingRate`` returns
  ``[{symbol, fundingTime, fundingRate, markPrice}]`` ascending from ``startTime``.
* OKX v5: ``{"code": "0", "msg": "", "data": [...]}``, newest first. Candles
  ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`` with ``before < ts < after``;
  mark/index candles ``[ts, o, h, l, c, confirm]``; funding-rate-history objects older than
  ``after``.
* Bybit v5: ``{"retCode": 0, "retMsg": "OK", "result": {"category", "symbol", "list": [...]}}``,
  newest first. Kline ``[startTime, o, h, l, c, volume, turnover]`` with ``start <= t <= end``;
  mark/index kline ``[startTime, o, h, l, c]``; funding history objects in
  ``[startTime, endTime]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

Handler = Callable[[dict[str, str]], tuple[int, Any]]


def _ms(df: pd.DataFrame) -> np.ndarray:
    return pd.DatetimeIndex(df["timestamp"]).asi8 // 1_000_000


def _num(x: float) -> str:
    return format(float(x), ".10g")


def _binance_page(ts: np.ndarray, q: dict[str, str], default_limit: int) -> np.ndarray:
    # Binance fapi/dapi paging: rows with startTime <= t <= endTime, ascending, at most `limit`
    lo = int(q.get("startTime", ts[0]))
    hi = int(q.get("endTime", 2**62))
    return np.flatnonzero((ts >= lo) & (ts <= hi))[: int(q.get("limit", default_limit))]


@dataclass
class Backend:
    """Route ``(method, path)`` to a handler built from real frames."""

    routes: dict[str, Handler] = field(default_factory=dict)

    def __call__(self, method: str, url: str) -> tuple[int, Any]:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        handler = self.routes.get(f"{method.upper()} {parts.path}")
        if handler is None:
            raise AssertionError(f"backend has no route for {method} {parts.path}")
        return handler(query)


# ---------------------------------------------------------------- Binance USDⓈ-M


def binance_klines(bars: pd.DataFrame, step_ms: int, *, mark: bool = False) -> Handler:
    ts = _ms(bars)

    def handle(q: dict[str, str]) -> tuple[int, Any]:
        sel = _binance_page(ts, q, 500)
        rows = []
        for i in sel:
            r = bars.iloc[i]
            vol = 0.0 if mark else r["volume"]
            rows.append(
                [
                    int(ts[i]),
                    _num(r["open"]),
                    _num(r["high"]),
                    _num(r["low"]),
                    _num(r["close"]),
                    _num(vol),
                    int(ts[i]) + step_ms - 1,
                    _num(vol * r["close"]),
                    0 if mark else 1000,
                    "0",
                    "0",
                    "0",
                ]
            )
        return 200, rows

    return handle


def binance_funding(funding: pd.DataFrame, symbol_id: str, marks: pd.DataFrame) -> Handler:
    ts = _ms(funding)

    def handle(q: dict[str, str]) -> tuple[int, Any]:
        sel = _binance_page(ts, q, 100)
        return 200, [
            {
                "symbol": symbol_id,
                "fundingTime": int(ts[i]),
                "fundingRate": _num(funding["funding_rate"].iloc[i]),
                "markPrice": "",
            }
            for i in sel
        ]

    return handle


def binance_dapi_klines(
    bars: pd.DataFrame, step_ms: int, contract_size: float, *, mark: bool = False
) -> Handler:
    """Binance COIN-M ``/dapi/v1/klines`` (and ``markPriceKlines``): ``[openTime, o, h, l, c,
    volume (contracts), closeTime, baseAssetVolume, trades, takerBuyVolume,
    takerBuyBaseAssetVolume, ignore]``, bars with ``startTime <= openTime <= endTime``."""
    ts = _ms(bars)

    def handle(q: dict[str, str]) -> tuple[int, Any]:
        sel = _binance_page(ts, q, 500)
        rows = []
        for i in sel:
            r = bars.iloc[i]
            base = 0.0 if mark else float(r["volume"])
            contracts = round(base * float(r["close"]) / contract_size)
            rows.append(
                [
                    int(ts[i]),
                    _num(r["open"]),
                    _num(r["high"]),
                    _num(r["low"]),
                    _num(r["close"]),
                    str(contracts),
                    int(ts[i]) + step_ms - 1,
                    _num(base),
                    0 if mark else 1000,
                    "0",
                    "0",
                    "0",
                ]
            )
        return 200, rows

    return handle


# ---------------------------------------------------------------- OKX


def okx_candles(bars: pd.DataFrame, *, mark: bool = False) -> Handler:
    ts = _ms(bars)

    def handle(q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 100))
        before = int(q.get("before", -1))
        after = int(q.get("after", 2**62))
        sel = np.flatnonzero((ts > before) & (ts < after))[::-1][:limit]  # newest first
        data = []
        for i in sel:
            r = bars.iloc[i]
            head = [
                str(int(ts[i])),
                _num(r["open"]),
                _num(r["high"]),
                _num(r["low"]),
                _num(r["close"]),
            ]
            if mark:
                data.append([*head, "1"])
            else:
                vol = r["volume"]
                data.append([*head, _num(vol * 100), _num(vol), _num(vol * r["close"]), "1"])
        return 200, {"code": "0", "msg": "", "data": data}

    return handle


def okx_funding(funding: pd.DataFrame, inst_id: str) -> Handler:
    ts = _ms(funding)

    def handle(q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 100))
        before = int(q.get("before", -1))
        after = int(q.get("after", 2**62))
        sel = np.flatnonzero((ts > before) & (ts < after))[::-1][:limit]
        data = [
            {
                "instType": "SWAP",
                "instId": inst_id,
                "fundingRate": _num(funding["funding_rate"].iloc[i]),
                "realizedRate": _num(funding["funding_rate"].iloc[i]),
                "fundingTime": str(int(ts[i])),
                "formulaType": "noRate",
                "method": "current_period",
            }
            for i in sel
        ]
        return 200, {"code": "0", "msg": "", "data": data}

    return handle


# ---------------------------------------------------------------- Bybit


def bybit_kline(bars: pd.DataFrame, symbol_id: str, *, mark: bool = False) -> Handler:
    ts = _ms(bars)

    def handle(q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 200))
        lo = int(q.get("start", 0))
        hi = int(q.get("end", 2**62))
        sel = np.flatnonzero((ts >= lo) & (ts <= hi))[::-1][:limit]
        rows = []
        for i in sel:
            r = bars.iloc[i]
            head = [
                str(int(ts[i])),
                _num(r["open"]),
                _num(r["high"]),
                _num(r["low"]),
                _num(r["close"]),
            ]
            rows.append(
                head if mark else [*head, _num(r["volume"]), _num(r["volume"] * r["close"])]
            )
        body = {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": "linear", "symbol": symbol_id, "list": rows},
            "retExtInfo": {},
            "time": 1760000000000,
        }
        return 200, body

    return handle


def bybit_funding(funding: pd.DataFrame, symbol_id: str) -> Handler:
    ts = _ms(funding)

    def handle(q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 200))
        lo = int(q.get("startTime", 0))
        hi = int(q.get("endTime", 2**62))
        sel = np.flatnonzero((ts >= lo) & (ts <= hi))[::-1][:limit]
        rows = [
            {
                "symbol": symbol_id,
                "fundingRate": _num(funding["funding_rate"].iloc[i]),
                "fundingRateTimestamp": str(int(ts[i])),
            }
            for i in sel
        ]
        body = {
            "retCode": 0,
            "retMsg": "OK",
            "result": {"category": "linear", "list": rows},
            "retExtInfo": {},
            "time": 1760000000000,
        }
        return 200, body

    return handle


def static(body: Any, status: int = 200) -> Handler:
    return lambda q: (status, body)
