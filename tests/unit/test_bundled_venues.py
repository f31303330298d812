"""Bundled Bybit, OKX and Binance XRP markets: load offline, known prices, 5m -> 1h rule, checksums.

The expected prices are literals read from the source feather files (data/README.md names them)
when this test was written; the tests never read the source.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.data import integrity, store
from tests.helpers.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
H = pd.Timedelta("1h")

# (exchange, symbol, mark, first bar, its open, last bar, its close, n_bars, funding events)
VENUES = [
    ("bybit", "BTC/USDT:USDT", "mark", "2025-09-24 00:00", 111937.5, "2026-07-21 15:00", 66640.4,
     7216, 901),
    ("bybit", "ETH/USDT:USDT", "mark", "2025-09-24 00:00", 4162.25, "2026-07-21 15:00", 1931.01,
     7216, 901),
    ("okx", "BTC/USDT:USDT", "last", "2022-05-01 00:00", 37630.5, "2022-12-31 17:00", 16578.7,
     5874, 0),
    ("okx", "ETH/USDT:USDT", "mark", "2022-05-01 00:00", 2727.35, "2022-12-31 17:00", 1201.13,
     5874, 0),
    ("binanceusdm", "XRP/USDT:USDT", "mark", "2021-11-15 06:00", None, "2021-11-19 08:00", None,
     99, 5),
]  # fmt: skip
NEW_PREFIXES = ("bybit/", "okx/", "binanceusdm/XRP_USDT_USDT/")


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("build_bundled_data", module_name="build_bundled_data_venues")


@pytest.fixture
def empty_store(tmp_path: Path) -> Path:
    # an empty user store: only the bundled data can answer
    path = tmp_path / "store"
    path.mkdir()
    return path


def _at(market: bt.Market, when: str) -> int:
    i = int(np.searchsorted(market.ts_ns, pd.Timestamp(when, tz="UTC").value))
    assert market.ts_ns[i] == pd.Timestamp(when, tz="UTC").value
    return i


@pytest.mark.parametrize(
    ("exchange", "symbol", "mark", "first", "first_open", "last", "last_close", "n", "n_funding"),
    VENUES,
    ids=[f"{v[0]}-{v[1].split('/')[0]}" for v in VENUES],
)
def test_each_bundled_venue_loads_offline(
    empty_store: Path,
    exchange: str,
    symbol: str,
    mark: str,
    first: str,
    first_open: float | None,
    last: str,
    last_close: float | None,
    n: int,
    n_funding: int,
) -> None:
    m = bt.load_market(symbol, exchange=exchange, store=empty_store, mark=mark)  # type: ignore[arg-type]
    assert (m.exchange, m.symbol, m.timeframe, m.mark_source) == (exchange, symbol, "1h", mark)
    assert m.n_bars == n
    assert m.ts_ns[0] == pd.Timestamp(first, tz="UTC").value
    assert m.ts_ns[-1] == pd.Timestamp(last, tz="UTC").value
    assert np.all(np.diff(m.ts_ns) == H.value)  # gap-free
    if first_open is not None:
        assert m.open[0] == first_open  # first 5m open of the first hour
        assert m.close[-1] == last_close  # last 5m close of the last hour
    assert m.funding_ts_ns.size == n_funding


def test_known_prices_match_the_source(empty_store: Path) -> None:
    bybit = bt.load_market("BTC/USDT:USDT", exchange="bybit", store=empty_store)
    # the Bybit BTC all-time high of the source: 5m bar 2025-10-06 18:55 high 126150.0
    assert bybit.high[_at(bybit, "2025-10-06 18:00")] == 126150.0
    assert float(bybit.high.max()) == 126150.0
    # 2025-10-10 crash: 5m low 101045.9 at 21:20; the 1h mark bar 21:00 (source row) low 102032.5
    i = _at(bybit, "2025-10-10 21:00")
    assert bybit.low[i] == 101045.9
    assert bybit.mark_low[i] == 102032.5
    assert bybit.funding_rate[0] == pytest.approx(1.004e-05)  # 2025-09-24 08:00
    okx = bt.load_market("BTC/USDT:USDT", exchange="okx", store=empty_store, mark="last")
    # FTX crash low on OKX BTC-USDT-SWAP: 5m bar 2022-11-21 21:50 low 15438.8
    assert okx.low[_at(okx, "2022-11-21 21:00")] == 15438.8
    eth = bt.load_market("ETH/USDT:USDT", exchange="okx", store=empty_store)
    j = _at(eth, "2022-11-09 12:00")
    assert (eth.mark_high[j], eth.mark_low[j]) == (1248.66, 1212.94)
    xrp = bt.load_market("XRP/USDT:USDT", store=empty_store)
    assert xrp.mark_open[0] == 1.20932  # 1h mark 2021-11-15 06:00
    full = bt.load_market("XRP/USDT:USDT", store=empty_store, mark="last")
    assert (full.n_bars, full.open[0], full.close[-1]) == (166, 1.1893, 1.0752)


def test_okx_btc_has_no_mark_and_says_so(empty_store: Path) -> None:
    with pytest.raises(bt.DataError, match=r"no mark data for okx BTC/USDT:USDT 1h.*mark='last'"):
        bt.load_market("BTC/USDT:USDT", exchange="okx", store=empty_store)


def test_okx_2022_funding_is_absent_and_logged(
    empty_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the source's OKX funding starts in Oct 2025 (ETH) / Jan 2026 (BTC): nothing for 2022 bars
    with caplog.at_level(logging.WARNING, logger="backtester.market"):
        bt.load_market("ETH/USDT:USDT", exchange="okx", store=empty_store)
    assert "funding events are absent from the bars' range" in caplog.text


def _bars(times: list[str], opens: list[float]) -> pd.DataFrame:
    o = np.asarray(opens, dtype=np.float64)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(times, utc=True).astype("datetime64[ns, UTC]"),
            "open": o,
            "high": o + 2.0,
            "low": o - 1.0,
            "close": o + 0.5,
            "volume": np.arange(1.0, o.size + 1.0),
        }
    )


def test_hourly_from_5m_keeps_only_complete_hours(script: ModuleType) -> None:
    # Arrange: hour 00:00 complete (12 bars), hour 01:00 missing its 01:25 bar, hour 02:00 complete
    h0 = [f"2024-01-01 00:{m:02d}" for m in range(0, 60, 5)]
    h1 = [f"2024-01-01 01:{m:02d}" for m in range(0, 60, 5) if m != 25]
    h2 = [f"2024-01-01 02:{m:02d}" for m in range(0, 60, 5)]
    opens = [100.0 + k for k in range(12)] + [200.0] * 11 + [300.0 - k for k in range(12)]
    five = _bars(h0 + h1 + h2, opens)
    # Act
    hourly = script.hourly_from_5m(five)
    # Assert: 01:00 is dropped (a gap, never filled); OHLCV = first, max, min, last, sum
    assert list(hourly["timestamp"]) == [
        pd.Timestamp("2024-01-01 00:00", tz="UTC"),
        pd.Timestamp("2024-01-01 02:00", tz="UTC"),
    ]
    assert hourly["timestamp"].dtype == "datetime64[ns, UTC]"
    first = hourly.iloc[0]
    assert (first.open, first.high, first.low, first.close) == (100.0, 113.0, 99.0, 111.5)
    assert first.volume == sum(range(1, 13))
    third = hourly.iloc[1]
    assert (third.open, third.high, third.low, third.close) == (300.0, 302.0, 288.0, 289.5)
    assert third.volume == sum(range(24, 36))


def test_hourly_from_5m_refuses_unsorted_or_off_grid_bars(script: ModuleType) -> None:
    with pytest.raises(ValueError, match="5m grid"):
        script.hourly_from_5m(_bars(["2024-01-01 00:05", "2024-01-01 00:00"], [1.0, 1.0]))
    with pytest.raises(ValueError, match="5m grid"):
        script.hourly_from_5m(_bars(["2024-01-01 00:01", "2024-01-01 00:06"], [1.0, 1.0]))


def test_manifest_sha256_matches_every_new_file_and_the_readme() -> None:
    root = store.bundled_root()
    assert root is not None
    readme = (REPO / "data" / "README.md").read_text(encoding="utf-8")
    entries = {k: e for k, e in store.read_manifest(root).items() if k.startswith(NEW_PREFIXES)}
    assert len(entries) == 15
    for key, entry in entries.items():
        digest = hashlib.sha256((root / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], key
        assert f"`bundled/{entry['path']}`" in readme, key
        assert digest in readme, key


def test_verify_is_clean_and_list_shows_the_venues(empty_store: Path) -> None:
    assert integrity.verify_store(empty_store).empty
    listing = integrity.list_store(empty_store)
    bundled = listing[listing["location"] == "bundled"]
    pairs = set(zip(bundled["exchange"], bundled["symbol"], strict=True))
    assert {
        ("bybit", "BTC/USDT:USDT"),
        ("bybit", "ETH/USDT:USDT"),
        ("okx", "BTC/USDT:USDT"),
        ("okx", "ETH/USDT:USDT"),
        ("binanceusdm", "XRP/USDT:USDT"),
    } <= pairs
