"""ccxt loader through the REAL ccxt exchange classes, replaying recorded HTTP at ccxt's HTTP layer.

The recorded responses (tests/data/recorded/) were rendered from real bars in each exchange's
documented format by tests/helpers/record.py; the scenarios are in tests/helpers/scenarios.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtester as bt
from backtester.data import ccxt_loader
from backtester.data.integrity import verify_store
from backtester.data.store import read_dataset, read_manifest
from backtester.errors import ConfigError, DataError, ExchangeError
from tests.helpers.replay import ReplayAdapter, mount
from tests.helpers.scenarios import (
    BINANCE_END,
    BINANCE_FULL,
    BINANCE_INDEX,
    BINANCE_MIDDLE,
    BYBIT_FULL,
    OKX_FULL,
    call_args,
)

KLINES = "/fapi/v1/klines"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client(exchange: str, adapter: ReplayAdapter) -> Any:
    client = ccxt_loader.create_exchange(exchange, config={"enableRateLimit": False})
    return mount(client, adapter)


def _run(
    scenario: dict[str, Any], store: Path, adapter: ReplayAdapter, **overrides: Any
) -> pd.DataFrame:
    args, kwargs = call_args({**scenario, **overrides})
    kwargs.setdefault("sleep", Sleeps())
    client = _client(args[0], adapter)
    return bt.download(*args, store=store, client=client, progress=False, **kwargs)


def _binance() -> ReplayAdapter:
    return ReplayAdapter().load("binanceusdm", "btc_1h")


def _bundled(kind: str, start: str, end: str) -> pd.DataFrame:
    # the bundled store holds the same real Binance bars the recorded pages were rendered from
    df = read_dataset("binanceusdm", "BTC/USDT:USDT", "1h", kind, store="/nonexistent-store")
    ts = df["timestamp"]
    sel = (ts >= pd.Timestamp(start, tz="UTC")) & (ts < pd.Timestamp(end, tz="UTC"))
    return df.loc[sel].reset_index(drop=True)


def _stored(store: Path, kind: str, exchange: str = "binanceusdm") -> pd.DataFrame:
    return read_dataset(exchange, "BTC/USDT:USDT", "1h", kind, store=store)


def _starts(adapter: ReplayAdapter, path: str) -> list[pd.Timestamp]:
    out = []
    for key in adapter.log:
        if key.startswith(f"GET {path}?"):
            query = dict(part.split("=") for part in key.split("?", 1)[1].split("&"))
            out.append(pd.Timestamp(int(query["startTime"]), unit="ms", tz="UTC"))
    return out


# ---------------------------------------------------------------- happy paths


def test_binance_paginates_across_pages_and_matches_the_real_bars(tmp_path: Path) -> None:
    # Arrange: 2024-01-01 -> 2024-01-21 is 480 hourly bars; 50-row pages -> 10 kline requests
    adapter = _binance()
    # Act
    result = _run(BINANCE_FULL, tmp_path, adapter)
    # Assert
    assert result.set_index("kind")["rows_added"].to_dict() == {
        "ohlcv": 480,
        "mark": 480,
        "funding": 60,  # 20 days x 3 events
    }
    assert adapter.count(f"GET {KLINES}?") == 10
    assert _starts(adapter, KLINES)[1] == pd.Timestamp("2024-01-03 02:00", tz="UTC")  # +50 h
    for kind in ("ohlcv", "mark", "funding"):
        pd.testing.assert_frame_equal(
            _stored(tmp_path, kind), _bundled(kind, "2024-01-01", "2024-01-21")
        )
    assert verify_store(tmp_path).query("location == 'store'").empty


def test_manifest_records_range_rows_checksum_and_ccxt_version(tmp_path: Path) -> None:
    _run(BINANCE_FULL, tmp_path, _binance())
    entry = read_manifest(tmp_path)["binanceusdm/BTC_USDT_USDT/1h/ohlcv"]
    assert entry["rows"] == 480
    assert entry["start"] == "2024-01-01T00:00:00+00:00"
    assert entry["end"] == "2024-01-21T00:00:00+00:00"  # end of the last bar
    assert entry["requested_start"] == "2024-01-01T00:00:00+00:00"
    assert len(entry["sha256"]) == 64
    assert entry["ccxt_version"]
    assert entry["fetched_at"]


def test_binance_end_of_history_stops_on_an_empty_page(tmp_path: Path) -> None:
    # Arrange: the exchange's last bar opens 2026-05-17 06:00; we ask up to 2026-05-18 00:00.
    # 2026-05-15 00:00 -> 05-17 06:00 is 48 + 7 = 55 bars: pages of 50, 5, then an empty page
    adapter = _binance()
    # Act
    result = _run(BINANCE_END, tmp_path, adapter)
    # Assert
    assert adapter.count(f"GET {KLINES}?") == 3
    ohlcv = _stored(tmp_path, "ohlcv")
    assert len(ohlcv) == 55
    assert ohlcv["timestamp"].iloc[-1] == pd.Timestamp("2026-05-17 06:00", tz="UTC")
    assert result.set_index("kind").loc["funding", "rows"] == 7  # 05-15 00h .. 05-17 00h


def test_index_price_bars(tmp_path: Path) -> None:
    result = _run(BINANCE_INDEX, tmp_path, _binance())
    assert result["rows_added"].tolist() == [48]
    index = _stored(tmp_path, "index")
    assert (index["volume"] == 0).all()
    assert index["timestamp"].iloc[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_okx_happy_path(tmp_path: Path) -> None:
    # Arrange: 2026-01-02 -> 2026-01-10 is 192 bars; OKX pages hold 100 -> 2 requests per kind
    adapter = ReplayAdapter().load("okx", "btc_1h")
    # Act
    result = _run(OKX_FULL, tmp_path, adapter)
    # Assert
    assert result.set_index("kind")["rows"].to_dict() == {
        "ohlcv": 192,
        "mark": 192,
        "funding": 24,  # 8 days x 3
        "tiers": 3,
    }
    assert adapter.count("GET /api/v5/market/history-candles?") == 2
    ohlcv = _stored(tmp_path, "ohlcv", "okx")
    assert np.all(np.diff(ohlcv["timestamp"].to_numpy()) == np.timedelta64(1, "h"))
    snapshots = bt.data.store.list_tier_snapshots("okx", "BTC/USDT:USDT", store=tmp_path)
    day, tiers = snapshots[-1]
    assert day == pd.Timestamp("2026-01-16", tz="UTC")
    # OKX tiers are contracts of 0.01 BTC: 20000 contracts -> 200 BTC, stored with basis "size"
    assert tiers["cap"].iloc[0] == pytest.approx(200.0)
    assert set(tiers["basis"]) == {"size"}
    market = bt.load_market("BTC/USDT:USDT", exchange="okx", store=tmp_path)
    assert market.n_bars == 192
    assert market.mark_source == "mark"


def test_bybit_happy_path(tmp_path: Path) -> None:
    # Arrange: 2025-10-01 -> 2025-10-05 is 96 bars; 40-row pages -> 3 requests per kind
    adapter = ReplayAdapter().load("bybit", "btc_1h")
    # Act
    result = _run(BYBIT_FULL, tmp_path, adapter)
    # Assert
    assert result.set_index("kind")["rows"].to_dict() == {
        "ohlcv": 96,
        "mark": 96,
        "funding": 12,
        "tiers": 3,
    }
    assert adapter.count("GET /v5/market/kline?") == 3
    tiers = bt.data.store.list_tier_snapshots("bybit", "BTC/USDT:USDT", store=tmp_path)[-1][1]
    assert tiers["maint_amount"].tolist() == [0.0, 1200.0, 2760.0]  # Bybit mmDeduction
    assert tiers["floor"].tolist() == [0.0, 2_000_000.0, 2_600_000.0]
    market = bt.load_market("BTC/USDT:USDT", exchange="bybit", store=tmp_path)
    assert market.funding_ts_ns.size == 12


@pytest.mark.parametrize(
    ("kind", "path", "limit", "end"),
    [
        # 2025-10-01 00:00 UTC = 1759276800000 ms; a 1000-bar 1h window ends 1000 h - 1 ms later
        ("ohlcv", "/v5/market/kline?", 1000, 1759276800000 + 1000 * 3_600_000 - 1),
        # funding windows are 200 one-hour steps (Bybit's 200-event page)
        ("funding", "/v5/market/funding/history?", 200, 1759276800000 + 200 * 3_600_000 - 1),
    ],
)
def test_page_limit_is_capped_at_the_exchange_page_size(
    tmp_path: Path, kind: str, path: str, limit: int, end: int
) -> None:
    # Bybit returns at most 1000 klines / 200 funding events per request, the NEWEST of the
    # window: a 5000-row window would silently lose its older rows, so the page is capped
    adapter = ReplayAdapter().load("bybit", "btc_1h")
    with pytest.raises(AssertionError, match="no recorded response"):  # not recorded: stop there
        _run({**BYBIT_FULL, "kinds": (kind,)}, tmp_path, adapter, page_limit=5000)
    (key,) = [k for k in adapter.log if path in k]
    assert f"limit={limit}&" in key
    assert f"end={end}&" in key or f"endTime={end}&" in key


# ---------------------------------------------------------------- retries and failures


def test_429_and_timeout_are_retried_with_backoff(tmp_path: Path) -> None:
    # Arrange: the first kline request gets HTTP 429, the retry times out, the third succeeds
    adapter = _binance().inject(KLINES, "429", "timeout")
    sleeps = Sleeps()
    # Act
    _run(BINANCE_FULL, tmp_path, adapter, sleep=sleeps)
    # Assert: exponential backoff 1 s then 2 s; nothing lost
    assert sleeps == [1.0, 2.0]
    assert adapter.count(f"GET {KLINES}?") == 12  # 10 pages + 2 failed tries
    assert len(_stored(tmp_path, "ohlcv")) == 480


def test_5xx_is_retried(tmp_path: Path) -> None:
    adapter = _binance().inject("/fapi/v1/fundingRate", "503")
    sleeps = Sleeps()
    _run(BINANCE_FULL, tmp_path, adapter, sleep=sleeps)
    assert sleeps == [1.0]
    assert len(_stored(tmp_path, "funding")) == 60


def test_retries_are_bounded(tmp_path: Path) -> None:
    adapter = _binance().inject(KLINES, "timeout", "timeout", "timeout")
    sleeps = Sleeps()
    with pytest.raises(ExchangeError, match=r"failed after 3 tries \(RequestTimeout") as info:
        _run(BINANCE_FULL, tmp_path, adapter, sleep=sleeps, max_tries=3)
    assert sleeps == [1.0, 2.0]
    assert "binanceusdm BTC/USDT:USDT: fetching ohlcv 1h bars since 2024-01-01 00:00 UTC" in str(
        info.value
    )
    assert "resumes" in str(info.value)


def test_permanent_error_fails_at_once_with_a_clear_message(tmp_path: Path) -> None:
    adapter = _binance().inject(KLINES, "400")
    sleeps = Sleeps()
    with pytest.raises(ExchangeError) as info:
        _run(BINANCE_FULL, tmp_path, adapter, sleep=sleeps)
    message = str(info.value)
    assert sleeps == []  # no retry
    assert message.startswith("binanceusdm BTC/USDT:USDT: fetching ohlcv 1h bars since")
    assert "Invalid symbol" in message
    assert "\n" not in message


def test_unknown_symbol_suggests_the_perpetual(tmp_path: Path) -> None:
    with pytest.raises(ExchangeError, match=r"no market 'BTC/USDT'; did you mean 'BTC/USDT:USDT'"):
        _run({**BINANCE_FULL, "symbol": "BTC/USDT"}, tmp_path, _binance())


def test_bad_kind_and_exchange_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'funding'"):
        _run({**BINANCE_FULL, "kinds": ("fundin",)}, tmp_path, _binance())
    with pytest.raises(ConfigError, match=r"did you mean 'binanceusdm'"):
        bt.download("binanceusd", "BTC/USDT:USDT", start="2024-01-01", store=tmp_path)


def test_binance_tiers_need_keys_and_are_skipped_clearly(tmp_path: Path) -> None:
    result = _run({**BINANCE_FULL, "kinds": ("tiers",)}, tmp_path, _binance())
    assert result["status"].iloc[0].startswith("skipped: Binance serves leverage brackets only")


# ---------------------------------------------------------------- resume and incremental


@pytest.mark.parametrize("crash_at", [0, 3, 9])
def test_interrupted_download_resumes_without_duplicate_or_missing_bar(
    tmp_path: Path, crash_at: int
) -> None:
    # Arrange: write after every page; kline request number crash_at+1 dies (process killed)
    adapter = _binance().inject_exception(KLINES, KeyboardInterrupt(), after=crash_at)
    # Act 1: the crash propagates; the crash_at pages before it (50 bars each) are safely stored
    with pytest.raises(KeyboardInterrupt):
        _run(BINANCE_FULL, tmp_path, adapter, batch_pages=1)
    if crash_at:
        assert len(_stored(tmp_path, "ohlcv")) == 50 * crash_at
    assert verify_store(tmp_path).query("location == 'store'").empty
    # Act 2: the same command again
    resumed = _binance()
    _run(BINANCE_FULL, tmp_path, resumed, batch_pages=1)
    # Assert: it resumes at the first missing bar (page crash_at starts 50 * crash_at hours in)
    # and ends identical to the real series
    first = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=50 * crash_at)
    assert _starts(resumed, KLINES)[0] == first
    assert resumed.count(f"GET {KLINES}?") == 10 - crash_at
    ohlcv = _stored(tmp_path, "ohlcv")
    assert ohlcv["timestamp"].is_unique
    pd.testing.assert_frame_equal(ohlcv, _bundled("ohlcv", "2024-01-01", "2024-01-21"))
    assert not list(tmp_path.rglob(".tmp-*"))  # no temp file left behind


def test_a_crash_between_file_and_manifest_is_healed_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: pages of 50 bars, a write every 3 pages: ohlcv is saved after pages 3, 6, 9 (450
    # bars) and 10 (480 bars); the process dies after the 4th file is renamed into place but
    # before its manifest entry is committed: file 480 rows, manifest 450 rows + pending 480
    from backtester.data import store as data_store

    real = data_store._commit_entry
    calls = []

    def dying(root: Path, key: str, entry: Any) -> None:
        calls.append(key)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real(root, key, entry)

    monkeypatch.setattr(data_store, "_commit_entry", dying)
    with pytest.raises(KeyboardInterrupt):
        _run({**BINANCE_FULL, "kinds": ("ohlcv",)}, tmp_path, _binance(), batch_pages=3)
    monkeypatch.setattr(data_store, "_commit_entry", real)
    key = "binanceusdm/BTC_USDT_USDT/1h/ohlcv"
    entry = read_manifest(tmp_path)[key]
    assert (entry["rows"], entry["pending"]["rows"]) == (450, 480)
    # the whole file matches its pending entry: verify has nothing to report
    assert verify_store(tmp_path).query("location == 'store'").empty
    # Act: the same command again has no bar to fetch
    adapter = _binance()
    result = _run({**BINANCE_FULL, "kinds": ("ohlcv",)}, tmp_path, adapter, batch_pages=3)
    # Assert: nothing fetched, and the pending entry was committed
    assert result["status"].tolist() == ["up to date"]
    assert adapter.count(f"GET {KLINES}?") == 0
    assert verify_store(tmp_path).query("location == 'store'").empty
    assert read_manifest(tmp_path)[key]["rows"] == 480
    assert "pending" not in read_manifest(tmp_path)[key]


def test_download_never_re_records_a_damaged_file(tmp_path: Path) -> None:
    # Arrange: a downloaded dataset whose bytes change on disk (one flipped bit)
    _run({**BINANCE_FULL, "kinds": ("ohlcv",)}, tmp_path, _binance())
    path = tmp_path / "binanceusdm" / "BTC_USDT_USDT" / "1h" / "ohlcv.parquet"
    recorded = read_manifest(tmp_path)["binanceusdm/BTC_USDT_USDT/1h/ohlcv"]["sha256"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    # Act: the same download again (it used to "heal" the manifest to the damaged file)
    with pytest.raises(DataError, match=r"ohlcv.parquet is damaged: .*backtester data repair"):
        _run({**BINANCE_FULL, "kinds": ("ohlcv",), "end": "2024-01-25"}, tmp_path, _binance())
    # Assert: the manifest still records the good checksum, so the file stays refused
    assert read_manifest(tmp_path)["binanceusdm/BTC_USDT_USDT/1h/ohlcv"]["sha256"] == recorded


def test_only_missing_ranges_are_fetched(tmp_path: Path) -> None:
    # Arrange: the store already holds 2024-01-08 -> 2024-01-15
    _run(BINANCE_MIDDLE, tmp_path, _binance())
    adapter = _binance()
    # Act: ask for 2024-01-01 -> 2024-01-21
    result = _run(BINANCE_FULL, tmp_path, adapter)
    # Assert: only the head (from 01-01) and the tail (from 01-15) were requested
    starts = _starts(adapter, KLINES)
    middle = [
        s
        for s in starts
        if pd.Timestamp("2024-01-08", tz="UTC") <= s < pd.Timestamp("2024-01-15", tz="UTC")
    ]
    assert middle == []
    assert starts[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert pd.Timestamp("2024-01-15", tz="UTC") in starts
    assert result.set_index("kind").loc["ohlcv", "rows_added"] == 480 - 168
    pd.testing.assert_frame_equal(
        _stored(tmp_path, "ohlcv"), _bundled("ohlcv", "2024-01-01", "2024-01-21")
    )
    # and a third run has nothing to fetch (funding remembers how far it looked: fetched_until)
    again = _binance()
    rerun = _run(BINANCE_FULL, tmp_path, again)
    assert rerun["status"].tolist() == ["up to date", "up to date", "up to date"]
    assert again.log == ["GET /fapi/v1/exchangeInfo"]


def test_truncated_parquet_is_detected_by_verify(tmp_path: Path) -> None:
    # Arrange
    _run(BINANCE_FULL, tmp_path, _binance())
    path = tmp_path / "binanceusdm" / "BTC_USDT_USDT" / "1h" / "ohlcv.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # Act
    problems = verify_store(tmp_path).query("location == 'store'")
    # Assert
    assert set(problems["problem"]) == {"checksum mismatch", "unreadable"}
    assert set(problems["dataset"]) == {"binanceusdm/BTC_USDT_USDT/1h/ohlcv"}


# ---------------------------------------------------------------- bad input: refused before any request


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"exchange": "okx", "timeframe": "7m"},
            r"^timeframe must be one of okx's bar lengths 1m, 3m, 5m, .*1w, was '7m'; did you mean",
        ),
        ({"timeframe": "1M"}, r"^timeframe must be one of binanceusdm's bar lengths .*was '1M'"),
        (
            {"symbol": "BTCUSDT"},
            r"^symbol must be a ccxt symbol .*was 'BTCUSDT'; did you mean "
            r"'BTC/USDT:USDT'\?$",
        ),
        ({"symbol": ""}, r"^symbol must be a ccxt symbol such as 'BTC/USDT:USDT'.*was ''$"),
        ({"symbol": "../x/USDT"}, r"^symbol must be a ccxt symbol"),
        (
            {"start": "2024-02-01", "end": "2024-01-01"},
            r"^end must be after start, was start "
            r"2024-02-01 00:00 UTC end 2024-01-01 00:00 UTC; pass a later end",
        ),
        (
            {"start": "2027-01-01", "end": None},
            r"^start must be before the 1h bar still forming "
            r"\(2026-06-01 00:00 UTC\), was 2027-01-01 00:00 UTC; pick an earlier start$",
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    # a bad option used to reach the exchange (or, offline, 4 retries and "check the connection")
    adapter = ReplayAdapter()  # nothing recorded: any request would fail
    args = {**BINANCE_FULL, **changes}
    with pytest.raises(ConfigError, match=message) as info:
        _run(args, tmp_path, adapter, sleep=Sleeps())
    assert adapter.log == []
    assert "\n" not in str(info.value)


def test_a_store_that_is_a_file_is_refused_before_any_request(tmp_path: Path) -> None:
    adapter = ReplayAdapter()
    afile = tmp_path / "passwd"
    afile.write_text("root:x:0:0\n")
    with pytest.raises(ConfigError, match=rf"^store {afile} is a file, not a folder; pass --store"):
        _run(BINANCE_FULL, afile, adapter)
    inside = afile / "store"
    with pytest.raises(ConfigError, match=rf"^store {inside} is inside {afile}, which is a file"):
        _run(BINANCE_FULL, inside, adapter)
    assert adapter.log == []


def test_an_unwritable_store_is_refused_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root may write anywhere, so the permission answer is faked for this folder only
    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        return False if Path(path) == locked else real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    adapter = ReplayAdapter()
    with pytest.raises(ConfigError, match=rf"^store {locked / 'new'} is not writable \({locked} "):
        _run(BINANCE_FULL, locked / "new", adapter)
    assert adapter.log == []


def test_a_store_folder_that_does_not_exist_yet_is_fine_for_a_download(tmp_path: Path) -> None:
    t0, t1, step, _ = ccxt_loader.check_download_args(
        "okx", "BTC/USDT:USDT", "1h", start="2024-01-01", end="2024-01-02",
        store=tmp_path / "a" / "b", now="2026-01-01",
    )  # fmt: skip
    assert (t1 - t0) // step == 24
    assert not (tmp_path / "a").exists()  # checked, not created
