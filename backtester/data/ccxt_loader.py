"""Exchange I/O through ccxt: download perp OHLCV, mark/index bars, funding and tiers into the store.

This is the only module that imports ccxt (inside functions, so ``import backtester`` stays light).
It uses ccxt's unified methods only: ``load_markets``, ``fetch_ohlcv`` (``params={"price":
"mark"|"index"}``), ``fetch_funding_rate_history`` and ``fetch_market_leverage_tiers`` /
``fetch_leverage_tiers``.

Download rules
--------------
* Pages are requested by ``since`` with the exchange's page limit; ccxt's rate limiter is on.
* Network errors, timeouts, HTTP 429 and 5xx (ccxt ``OperationFailed``: ``NetworkError`` and its
  subclasses ``RequestTimeout``, ``DDoSProtection``, ``RateLimitExceeded``, ``ExchangeNotAvailable``,
  plus temporary exchange-side failures such as Binance's -1001 "internal error") are retried
  with exponential backoff (1, 2, 4, ... s, at most ``max_tries`` tries); any other ccxt error fails
  at once with an :class:`~backtester.errors.ExchangeError` naming exchange, symbol and what to do.
* Only what is missing is fetched: the part before the stored data (unless an earlier run already
  asked for it and the exchange had nothing), holes inside it and the part after it.
* Every ``batch_pages`` pages the dataset is merged (deduplicated by timestamp, newest copy wins)
  and written atomically, so an interrupted download loses at most one batch and the same command
  resumes it.
* The bar still forming is never stored: the default ``end`` is the open of the current bar.
* Merged data is validated: monotonic timestamps, gaps reported, OHLC consistent, prices positive;
  problems are reported in the result and logged (the store keeps what the exchange sent).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtester._redact import install_redaction, redact, register_secrets
from backtester._typing import DATA_KINDS
from backtester.data import integrity, schema
from backtester.data import store as data_store
from backtester.errors import ConfigError, DataError, ExchangeError, did_you_mean

log = logging.getLogger(__name__)

__all__ = [
    "DOWNLOAD_EXCHANGES",
    "EXCHANGE_PROFILES",
    "ExchangeProfile",
    "check_download_args",
    "contract_metadata",
    "create_exchange",
    "download",
    "repair",
]

_MS = 1_000_000  # ns per ms
# ccxt attributes that hold credentials (their values are redacted from every log record)
_CREDENTIAL_ATTRS = ("apiKey", "secret", "password", "uid", "privateKey", "token")


@dataclass(frozen=True, slots=True)
class ExchangeProfile:
    """How to talk to one exchange through ccxt."""

    options: dict[str, Any]
    ohlcv_limit: int  # bars per page
    funding_limit: int  # funding events per page
    windowed: bool  # a page covers [since, since + limit * step): an empty page is not the end
    funding_backward: bool  # funding history is paged backwards with the "after" cursor (OKX)
    explicit_until: bool = False  # pass each page's window end as ccxt's "until" (Bybit)


EXCHANGE_PROFILES: dict[str, ExchangeProfile] = {
    "binanceusdm": ExchangeProfile(
        options={"defaultType": "swap"},
        ohlcv_limit=1500,
        funding_limit=1000,
        windowed=False,
        funding_backward=False,
    ),
    "okx": ExchangeProfile(
        options={"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}},
        ohlcv_limit=100,
        funding_limit=100,
        windowed=True,
        funding_backward=True,
    ),
    "bybit": ExchangeProfile(
        options={"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}},
        ohlcv_limit=1000,
        funding_limit=200,
        windowed=True,
        funding_backward=False,
        explicit_until=True,
    ),
    # Binance COIN-M (coin-margined, inverse: BTC/USD:BTC): /dapi/v1/klines, markPriceKlines and
    # fundingRate; ccxt caps a kline page at 1000 and bounds it with endTime (since + page), so
    # pages are windows (an empty window before the listing is not the end); funding pages hold
    # at most 1000 events
    "binancecoinm": ExchangeProfile(
        options={"defaultType": "swap"},
        ohlcv_limit=1000,
        funding_limit=1000,
        windowed=True,
        funding_backward=False,
        explicit_until=True,
    ),
}
# the exchanges ``download`` serves (the engine's profiles are ``backtester._typing.EXCHANGES``)
DOWNLOAD_EXCHANGES: tuple[str, ...] = tuple(EXCHANGE_PROFILES)
# exchanges whose leverage brackets are served only to signed requests, and the endpoint
_SIGNED_TIERS = {
    "binanceusdm": "/fapi/v1/leverageBracket",
    "binancecoinm": "/dapi/v2/leverageBracket",
}
# funding windows assume the shortest funding interval (1 h) so a window never holds more events
# than a page (Bybit returns the newest events of a window first)
_FUNDING_WINDOW_STEP_NS = 3_600_000_000_000


def create_exchange(exchange: str, *, config: dict[str, Any] | None = None) -> Any:
    """Return a ccxt exchange instance set up for USDT perpetuals with the rate limiter on.

    ``config`` is merged into the ccxt constructor arguments (e.g. ``apiKey``/``secret``).
    Credentials never reach a log: their values are registered with the redacting log filter,
    which is installed on ccxt's, urllib3's and this package's loggers.
    """
    _check_exchange(exchange)
    import ccxt

    register_secrets(config or {})
    install_redaction()

    profile = EXCHANGE_PROFILES[exchange]
    options = dict(profile.options)
    settings: dict[str, Any] = {"enableRateLimit": True, "timeout": 30_000, "options": options}
    for key, value in (config or {}).items():
        if key == "options" and isinstance(value, dict):
            options.update(value)
        else:
            settings[key] = value
    return getattr(ccxt, exchange)(settings)


def _check_exchange(exchange: str) -> None:
    if exchange not in DOWNLOAD_EXCHANGES:
        raise ConfigError(
            f"exchange must be one of {', '.join(DOWNLOAD_EXCHANGES)}, was {exchange!r}"
            f"{did_you_mean(exchange, DOWNLOAD_EXCHANGES)}"
        )


def contract_metadata(market: dict[str, Any]) -> dict[str, Any]:
    """Return the contract fields recorded in each manifest entry of a downloaded market.

    ``contract_type`` is "linear" (margin and PnL in the quote currency) or "inverse"
    (coin-margined: margin and PnL in the base coin); ``contract_size`` is ccxt's
    ``contractSize``, in ``contract_size_unit``: base units for a linear contract (OKX BTC-USDT-SWAP:
    0.01 BTC), the quote currency for an inverse one (Binance COIN-M BTCUSD_PERP: 100 USD);
    ``settle`` is the margin currency. Read them back with
    :func:`backtester.data.store.read_contract`.
    """
    inverse = bool(market.get("inverse"))
    size = _num(market.get("contractSize"), 1.0) or 1.0
    values = (
        "inverse" if inverse else "linear",
        size,
        str(market.get("quote") if inverse else market.get("base")),
        str(market.get("settle") or market.get("quote")),
    )
    return dict(zip(data_store.CONTRACT_FIELDS, values, strict=True))


# ---------------------------------------------------------------- checks before any request

_API_NAMES = {"symbol": "symbol", "timeframe": "timeframe", "start": "start", "end": "end"}
_CLI_NAMES = {"symbol": "--symbol", "timeframe": "--timeframe", "start": "--start", "end": "--end"}
# a ccxt unified symbol: BASE/QUOTE, for derivatives :SETTLE (and -EXPIRY... for futures)
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?")
_GLUED_RE = re.compile(r"([A-Z0-9]+?)(USDT|USDC|USD)")


def check_download_args(
    exchange: str,
    symbol: str,
    timeframe: str,
    *,
    start: str | pd.Timestamp | None,
    end: str | pd.Timestamp | None = None,
    store: str | os.PathLike[str] | None = None,
    now: str | pd.Timestamp | None = None,
    cli: bool = False,
    kinds: Sequence[str] = ("ohlcv",),
) -> tuple[int, int, int, pd.Timestamp]:
    """Check a download's arguments without any request; return ``(t0, t1, step_ns, now)``.

    ``cli=True`` names the command-line options (``--timeframe``) instead of the arguments.
    ``start`` may be None only when ``kinds`` is tiers alone (today's snapshot needs no dates).

    Raises
    ------
    ConfigError
        A malformed symbol, a timeframe the exchange does not offer (its ccxt class's static
        ``timeframes``), ``start`` not before ``end`` (or not in the past), or a store root that
        is a file or not writable; one line naming the option, the value and the fix.
    """
    names = _CLI_NAMES if cli else _API_NAMES
    _check_exchange(exchange)
    _check_symbol(symbol, names["symbol"])
    step = _check_timeframe(exchange, timeframe, names["timeframe"])
    now_ts = pd.Timestamp.now(tz="UTC") if now is None else schema.to_utc_timestamp(now, "now")
    current_bar = (int(now_ts.value) // step) * step
    if start is None:
        series = [k for k in kinds if k != "tiers"]
        if series:
            raise ConfigError(
                f"{names['start']} is needed for {','.join(series)} (the first bar to fetch), "
                f"was not given; pass one such as {names['start']} 2024-01-01 (only tiers, "
                "today's snapshot, need no start)"
            )
        _check_store_writable(store, "--store" if cli else "store")
        return current_bar - step, current_bar, step, now_ts
    t0 = _ns(start, names["start"])
    t1 = current_bar if end is None else _ns(end, names["end"])
    if end is not None and t1 <= t0:
        raise ConfigError(
            f"{names['end']} must be after {names['start']}, was {names['start']} "
            f"{schema.format_ts(t0)} {names['end']} {schema.format_ts(t1)}; pass a later "
            f"{names['end']} (or none: up to now)"
        )
    if t0 >= current_bar:
        raise ConfigError(
            f"{names['start']} must be before the {timeframe} bar still forming "
            f"({schema.format_ts(current_bar)}), was {schema.format_ts(t0)}; pick an earlier "
            f"{names['start']}"
        )
    _check_store_writable(store, "--store" if cli else "store")
    return t0, min(t1, current_bar), step, now_ts


def _ns(value: str | pd.Timestamp, option: str) -> int:
    ts = schema.to_utc_timestamp(value, option)
    try:
        return int(ts.value)
    except OverflowError:  # pandas ns timestamps end in 2262
        raise ConfigError(
            f"{option} must be a date between 1677 and 2262, was {value!r}; pick a real date "
            "such as '2024-01-01'"
        ) from None


def _check_symbol(symbol: object, option: str) -> None:
    if isinstance(symbol, str) and _SYMBOL_RE.fullmatch(symbol):
        data_store.symbol_safe(symbol)  # the store's own folder-name rule
        return
    hint = ""
    glued = _GLUED_RE.fullmatch(symbol.upper()) if isinstance(symbol, str) else None
    if glued is not None and glued.group(1):
        base, quote = glued.group(1), glued.group(2)
        hint = f"; did you mean '{base}/{quote}:{quote}'?"
    raise ConfigError(
        f"{option} must be a ccxt symbol such as 'BTC/USDT:USDT' (BASE/QUOTE:SETTLE for a "
        f"perpetual), was {symbol!r}{hint}"
    )


def _check_timeframe(exchange: str, timeframe: object, option: str) -> int:
    import ccxt

    # the exchange class's static table (no request): e.g. OKX has 1m, 3m, 5m, ... no 7m
    offered = [str(t) for t in (getattr(ccxt, exchange)().timeframes or {})]
    usable = []
    for value in offered:
        try:
            schema.timeframe_to_ns(value)
        except DataError:  # months ('1M') have no fixed length
            continue
        usable.append(value)
    if isinstance(timeframe, str) and (timeframe in usable or not usable):
        try:
            return schema.timeframe_to_ns(timeframe)
        except DataError:
            pass
    close = difflib.get_close_matches(str(timeframe), usable, n=1, cutoff=0.5)
    raise ConfigError(
        f"{option} must be one of {exchange}'s bar lengths {', '.join(usable)}, was "
        f"{timeframe!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    )


def _check_store_writable(store: str | os.PathLike[str] | None, option: str) -> None:
    # the store root, or the folder it will be created in, must be a writable folder
    root = data_store.store_root(store)
    if store is not None:
        source = f"{option} {root}"
    elif os.environ.get(data_store.ENV_STORE):
        source = f"${data_store.ENV_STORE} {root}"
    else:
        source = f"the store {root}"
    probe = root
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    fix = (
        "pass --store DIR (store= in Python) with a folder you can write (it is created if missing)"
    )
    if not probe.is_dir():
        what = "is a file" if probe == root else f"is inside {probe}, which is a file"
        raise ConfigError(f"{source} {what}, not a folder; {fix}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{source} is not writable ({probe} is read-only to you); {fix}")


# ---------------------------------------------------------------- calling ccxt with retries


@dataclass(slots=True)
class _Caller:
    exchange_id: str
    symbol: str
    client: Any
    sleep: Callable[[float], None]
    max_tries: int

    def __call__(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        import ccxt

        for attempt in range(1, self.max_tries + 1):
            try:
                return getattr(self.client, method)(*args, **kwargs)
            except ccxt.OperationFailed as exc:  # timeouts, 429/DDoS, 5xx, internal errors
                if attempt == self.max_tries:
                    raise ExchangeError(
                        f"{self.exchange_id} {self.symbol}: {what} failed after {attempt} tries "
                        f"({type(exc).__name__}: {_short(exc)}); check the connection or retry "
                        "later - the data fetched so far is saved and the same command resumes"
                    ) from exc
                delay = min(60.0, 2.0 ** (attempt - 1))
                log.warning(
                    "%s %s: %s: %s, retry %d/%d in %.0f s",
                    self.exchange_id,
                    self.symbol,
                    what,
                    type(exc).__name__,
                    attempt,
                    self.max_tries - 1,
                    delay,
                )
                self.sleep(delay)
            except ccxt.BaseError as exc:
                raise ExchangeError(
                    f"{self.exchange_id} {self.symbol}: {what} failed ({type(exc).__name__}: "
                    f"{_short(exc)}); {_hint(exc)}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _short(exc: BaseException) -> str:
    text = redact(" ".join(str(exc).split()))
    return text if len(text) <= 200 else text[:197] + "..."


def _hint(exc: BaseException) -> str:
    import ccxt

    if isinstance(exc, ccxt.BadSymbol):
        return "check the symbol: perpetuals are written like 'BTC/USDT:USDT'"
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied):
        return "this endpoint needs API keys with read permission"
    if isinstance(exc, ccxt.NotSupported):
        return "this exchange does not offer it through ccxt; drop that kind from --kinds"
    return "the exchange rejected the request; check the symbol, timeframe and dates"


# ---------------------------------------------------------------- public entry point


_RESULT_COLUMNS = ["kind", "status", "rows_added", "rows", "start", "end", "problems", "path"]


def download(
    exchange: str,
    symbol: str,
    timeframe: str = "1h",
    *,
    start: str | pd.Timestamp | None,
    end: str | pd.Timestamp | None = None,
    kinds: Sequence[str] = ("ohlcv", "mark", "funding", "tiers"),
    store: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    client: object | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_tries: int = 5,
    page_limit: int | None = None,
    batch_pages: int = 10,
    now: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Download market data through ccxt into the store, fetching only what is missing.

    Parameters
    ----------
    exchange : {"binanceusdm", "okx", "bybit", "binancecoinm"}
    symbol : str
        ccxt unified symbol of the perpetual, e.g. ``"BTC/USDT:USDT"`` on every exchange, or a
        coin-margined one on ``binancecoinm``: ``"BTC/USD:BTC"``.
    timeframe : str
        Bar length (``"1m"``, ``"1h"``, ...).
    start, end : str or pd.Timestamp
        Bar open times, ``start`` inclusive, ``end`` exclusive (naive values are UTC); ``end``
        defaults to the open of the bar still forming. ``start`` may be None when ``kinds`` is
        ``("tiers",)``: a tier snapshot is today's, dated today (UTC).
    kinds : sequence of {"ohlcv", "mark", "index", "funding", "tiers"}
    store : path, optional
        Store root (see :func:`backtester.data.store.store_root`).
    progress : bool, optional
        Show a progress bar; by default only when stderr is a terminal.
    client : ccxt exchange, optional
        A ready ccxt instance (e.g. with API keys); by default :func:`create_exchange`.
    sleep : callable
        Used for retry backoff (tests pass a no-op).
    max_tries : int
        Tries per request before giving up (>= 1).
    page_limit : int, optional
        Rows per request; default (and at most) the exchange's page size: a larger value is
        capped, because an exchange that caps a request's window returns only part of it.
    batch_pages : int
        Pages fetched between two atomic writes of the dataset.
    now : str or pd.Timestamp, optional
        The current time (default: the clock); fixes the default ``end`` and the tier date.

    Returns
    -------
    pandas.DataFrame
        One row per dataset: ``kind, status, rows_added, rows, start, end, problems, path``.

    Raises
    ------
    ConfigError
        Unknown exchange or kind, bad numbers.
    ExchangeError
        The exchange failed permanently, or kept failing after ``max_tries`` tries.
    """
    _check_exchange(exchange)
    wanted = list(kinds)
    for kind in wanted:
        if kind not in DATA_KINDS:
            raise ConfigError(
                f"kinds must be among {', '.join(DATA_KINDS)}, was {kind!r}"
                f"{did_you_mean(kind, DATA_KINDS)}"
            )
    if not wanted:
        raise ConfigError("kinds must name at least one of " + ", ".join(DATA_KINDS))
    t0, t1, step, now_ts = check_download_args(
        exchange, symbol, timeframe, start=start, end=end, store=store, now=now, kinds=wanted
    )
    if not isinstance(max_tries, int) or max_tries < 1:
        raise ConfigError(f"max_tries must be an integer >= 1, was {max_tries!r}")
    if not isinstance(batch_pages, int) or batch_pages < 1:
        raise ConfigError(f"batch_pages must be an integer >= 1, was {batch_pages!r}")
    if page_limit is not None and (not isinstance(page_limit, int) or page_limit < 2):
        raise ConfigError(f"page_limit must be an integer >= 2, was {page_limit!r}")
    ex: Any = create_exchange(exchange) if client is None else client
    register_secrets({k: getattr(ex, k, None) for k in _CREDENTIAL_ATTRS})
    install_redaction()
    caller = _Caller(exchange, symbol, ex, sleep, max_tries)
    markets = caller("loading markets", "load_markets")
    if symbol not in markets:
        # perpetuals: BASE/QUOTE:SETTLE without an expiry (dated futures end in -YYMMDD)
        perps = [str(m) for m in markets if ":" in str(m) and "-" not in str(m).split(":")[1]]
        example = next((p for p in perps if p.startswith("BTC/")), "BTC/USDT:USDT")
        raise ExchangeError(
            f"{exchange} has no market {symbol!r}{did_you_mean(symbol, perps or markets)}; "
            f"perpetuals are written like {example!r}"
        )
    profile = EXCHANGE_PROFILES[exchange]
    show = sys.stderr.isatty() if progress is None else bool(progress)
    job = _Job(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        step=step,
        root=data_store.store_root(store),
        store=store,
        caller=caller,
        profile=profile,
        page_limit=page_limit,
        batch_pages=batch_pages,
        show_progress=show,
        contract=contract_metadata(ex.market(symbol)),
    )
    rows: list[dict[str, Any]] = []
    for kind in wanted:
        if kind == "tiers":
            rows.append(job.tiers(ex, now_ts))
        elif kind == "funding":
            rows.append(job.funding(t0, t1))
        else:
            rows.append(job.bars(kind, t0, t1))
    result = pd.DataFrame(rows, columns=_RESULT_COLUMNS)
    log.info("download %s %s %s done:\n%s", exchange, symbol, timeframe, result.to_string())
    return result


# ---------------------------------------------------------------- the download job


class _NoBar:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None

    def close(self) -> None:
        return None


def _progress_bar(show: bool, total: float, desc: str) -> Any:
    if not show:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return _NoBar()
    return tqdm(total=round(total, 1), desc=desc, unit="day", file=sys.stderr, leave=False)


def _segments(
    ts: np.ndarray[Any, Any], t0: int, t1: int, step: int, requested_from: int | None
) -> list[tuple[int, int]]:
    # the parts of [t0, t1) not covered by the stored bar open times ``ts``
    if ts.size == 0:
        return [(t0, t1)]
    out: list[tuple[int, int]] = []
    first, last_end = int(ts[0]), int(ts[-1]) + step
    head_known = requested_from is not None and requested_from <= t0
    if t0 < first and not head_known:
        out.append((t0, min(first, t1)))
    inside = ts[(ts >= t0 - step) & (ts < t1)]
    for a, b in schema.find_gaps(inside, step):
        out.append((max(a + step, t0), min(b, t1)))
    if t1 > last_end:
        out.append((max(last_end, t0), t1))
    return [(a, b) for a, b in out if b > a]


@dataclass(slots=True)
class _Job:
    exchange: str
    symbol: str
    timeframe: str
    step: int
    root: Any
    store: str | os.PathLike[str] | None
    caller: _Caller
    profile: ExchangeProfile
    page_limit: int | None
    batch_pages: int
    show_progress: bool
    contract: dict[str, Any]  # contract_metadata(): recorded in every manifest entry written

    # ------------------------------------------------------------ stored state

    def _stored(self, kind: str) -> tuple[pd.DataFrame | None, int | None]:
        path = data_store.dataset_path(self.root, self.exchange, self.symbol, self.timeframe, kind)
        if not data_store._is_file(path):
            return None, None
        # checked against the manifest: a damaged or unrecorded file is refused (with the repair
        # or rebuild command), never merged and re-recorded as good; the file of a write that
        # died between rename and manifest commit matches its pending entry and is committed
        df, entry = data_store.read_stored(self.root, path, kind, unrecorded_ok=False)
        key = path.relative_to(self.root).with_suffix("").as_posix()
        return df, data_store.manifest_time(self.root, key, entry, "requested_start")

    def _entry_time(self, kind: str, field: str) -> int | None:
        path = data_store.dataset_path(self.root, self.exchange, self.symbol, self.timeframe, kind)
        key = path.relative_to(self.root).with_suffix("").as_posix()
        entry = data_store.read_manifest(self.root).get(key, {})
        return data_store.manifest_time(self.root, key, entry, field)

    def _save(
        self,
        kind: str,
        parts: list[pd.DataFrame | None],
        requested_from: int | None,
        fetched_until: int | None = None,
    ) -> pd.DataFrame:
        merged = pd.concat([p for p in parts if p is not None and len(p)], ignore_index=True)
        merged = schema.drop_duplicates(merged, keep="last")
        extra = dict(self.contract)
        if requested_from is not None:
            extra["requested_start"] = pd.Timestamp(requested_from, tz="UTC").isoformat()
        if fetched_until is not None:
            extra["fetched_until"] = pd.Timestamp(fetched_until, tz="UTC").isoformat()
        data_store.write_dataset(
            merged,
            exchange=self.exchange,
            symbol=self.symbol,
            timeframe=self.timeframe,
            kind=kind,
            store=self.store,
            extra=extra,
        )
        return merged

    def _result(
        self, kind: str, status: str, added: int, df: pd.DataFrame | None, problems: str, path: Any
    ) -> dict[str, Any]:
        has = df is not None and len(df) > 0
        assert df is not None or not has
        return {
            "kind": kind,
            "status": status,
            "rows_added": int(added),
            "rows": 0 if df is None else len(df),
            "start": df["timestamp"].iloc[0] if has else pd.NaT,  # type: ignore[index]
            "end": df["timestamp"].iloc[-1] if has else pd.NaT,  # type: ignore[index]
            "problems": problems,
            "path": "" if path is None else str(path),
        }

    # ------------------------------------------------------------ bars

    def bars(self, kind: str, t0: int, t1: int) -> dict[str, Any]:
        existing, requested_from = self._stored(kind)
        ts = np.empty(0, np.int64) if existing is None else schema.timestamps_ns(existing, kind)
        path = data_store.dataset_path(self.root, self.exchange, self.symbol, self.timeframe, kind)
        segments = _segments(ts, t0, t1, self.step, requested_from)
        if not segments:
            return self._result(
                kind, "up to date", 0, existing, self._problems(existing, kind), path
            )
        before = 0 if existing is None else len(existing)
        params: dict[str, Any] = {} if kind == "ohlcv" else {"price": kind}
        limit = min(self.page_limit or self.profile.ohlcv_limit, self.profile.ohlcv_limit)
        total_days = sum(b - a for a, b in segments) / 86_400e9
        bar = _progress_bar(self.show_progress, total_days, f"{self.symbol} {kind}")
        stored = existing
        # "requested_start" may only move back once a head segment is complete, so an
        # interrupted head download leaves a hole that the next run sees and fetches
        recorded = requested_from
        try:
            for a, b in segments:
                is_head = ts.size == 0 or a < int(ts[0])
                pending: list[pd.DataFrame] = []
                pages = 0
                cursor = a
                while cursor < b:
                    what = f"fetching {kind} {self.timeframe} bars since {schema.format_ts(cursor)}"
                    page_params = dict(params)
                    if self.profile.explicit_until:
                        page_params["until"] = (cursor + limit * self.step) // _MS - 1
                    raw = self.caller(
                        what,
                        "fetch_ohlcv",
                        self.symbol,
                        self.timeframe,
                        cursor // _MS,
                        limit,
                        page_params,
                    )
                    page = _ohlcv_frame(raw)
                    if len(page) == 0:
                        if not self.profile.windowed:
                            break  # end of history
                        advance = cursor + limit * self.step
                    else:
                        page_ts = schema.timestamps_ns(page, kind)
                        advance = int(page_ts[-1]) + self.step
                        keep = (page_ts >= cursor) & (page_ts < b)
                        if keep.any():
                            pending.append(page.loc[keep])
                    if advance <= cursor:
                        break  # no progress: the exchange repeats itself
                    bar.update(round((min(advance, b) - cursor) / 86_400e9, 3))
                    cursor = advance
                    pages += 1
                    if pages % self.batch_pages == 0 and pending:
                        stored = self._save(kind, [stored, *pending], recorded)
                        pending = []
                if is_head:
                    recorded = t0 if recorded is None else min(t0, recorded)
                if pending:
                    stored = self._save(kind, [stored, *pending], recorded)
            if stored is not None and recorded != requested_from:
                stored = self._save(kind, [stored], recorded)
        finally:
            bar.close()
        if stored is None:
            return self._result(kind, "no data", 0, None, "exchange returned no bars", None)
        added = len(stored) - before
        return self._result(kind, "ok", added, stored, self._problems(stored, kind), path)

    def _problems(self, df: pd.DataFrame | None, kind: str) -> str:
        if df is None or len(df) == 0:
            return ""
        found = integrity._verify_series(df, kind, self.timeframe)
        text = "; ".join(f"{p}: {d}" for p, d in found)
        if text:
            log.warning("%s %s %s %s: %s", self.exchange, self.symbol, self.timeframe, kind, text)
        return text

    # ------------------------------------------------------------ funding

    def funding(self, t0: int, t1: int) -> dict[str, Any]:
        existing, requested_from = self._stored("funding")
        limit = min(self.page_limit or self.profile.funding_limit, self.profile.funding_limit)
        ts = (
            np.empty(0, dtype=np.int64)
            if existing is None
            else schema.timestamps_ns(existing, "funding")
        )
        segments: list[tuple[int, int]] = []
        if ts.size == 0:
            segments.append((t0, t1))
        else:
            head_known = requested_from is not None and requested_from <= t0
            if t0 < int(ts[0]) and not head_known:
                segments.append((t0, int(ts[0])))
            # events are sparse: remember how far the last run looked (manifest "fetched_until")
            until = self._entry_time("funding", "fetched_until")
            tail_from = max(int(ts[-1]) + _MS, until or 0)
            if t1 > tail_from:
                segments.append((tail_from, t1))
        before = 0 if existing is None else len(existing)
        path = data_store.dataset_path(
            self.root, self.exchange, self.symbol, self.timeframe, "funding"
        )
        if not segments:
            return self._result("funding", "up to date", 0, existing, "", path)
        stored = existing
        total_days = sum(b - a for a, b in segments) / 86_400e9
        bar = _progress_bar(self.show_progress, total_days, f"{self.symbol} funding")
        recorded = requested_from
        prev_until = self._entry_time("funding", "fetched_until")
        try:
            for a, b in segments:
                # funding has no bar grid, so a hole cannot be detected later: a head segment
                # before stored events is written only once complete
                hold = existing is not None and a < int(ts[0])
                fetch = (
                    self._funding_backward
                    if self.profile.funding_backward
                    else self._funding_forward
                )
                held: list[pd.DataFrame | None] = []
                for chunk in fetch(a, b, limit, bar):
                    if hold:
                        held.append(chunk)
                    else:
                        stored = self._save("funding", [stored, chunk], recorded, prev_until)
                if ts.size == 0 or a < int(ts[0]):
                    recorded = t0 if recorded is None else min(t0, recorded)
                if held:
                    stored = self._save("funding", [stored, *held], recorded, prev_until)
            if stored is not None:
                stored = self._save("funding", [stored], recorded, max(prev_until or t1, t1))
        finally:
            bar.close()
        if stored is None:
            return self._result("funding", "no data", 0, None, "exchange returned no events", None)
        return self._result("funding", "ok", len(stored) - before, stored, "", path)

    def _funding_forward(self, a: int, b: int, limit: int, bar: Any) -> Iterable[pd.DataFrame]:
        cursor = a
        pending: list[pd.DataFrame] = []
        pages = 0
        while cursor < b:
            what = f"fetching funding rates since {schema.format_ts(cursor)}"
            window_end = cursor + limit * _FUNDING_WINDOW_STEP_NS
            params = {"until": window_end // _MS - 1} if self.profile.explicit_until else {}
            raw = self.caller(
                what, "fetch_funding_rate_history", self.symbol, cursor // _MS, limit, params
            )
            page = _funding_frame(raw)
            if len(page) == 0:
                if not self.profile.windowed:
                    break
                advance = window_end
            else:
                page_ts = schema.timestamps_ns(page, "funding")
                advance = int(page_ts[-1]) + _MS
                if self.profile.windowed:
                    advance = max(advance, window_end)
                keep = (page_ts >= cursor) & (page_ts < b)
                if keep.any():
                    pending.append(page.loc[keep])
                if not self.profile.windowed and len(page) < limit:
                    advance = max(advance, b)  # a short page is the newest data there is
            if advance <= cursor:
                break
            bar.update(round((min(advance, b) - cursor) / 86_400e9, 3))
            cursor = advance
            pages += 1
            if pages % self.batch_pages == 0 and pending:
                yield pd.concat(pending, ignore_index=True)
                pending = []
        if pending:
            yield pd.concat(pending, ignore_index=True)

    def _funding_backward(self, a: int, b: int, limit: int, bar: Any) -> Iterable[pd.DataFrame]:
        # OKX: records older than "after", newest first; walk back from b to a, write once
        cursor = b
        pending: list[pd.DataFrame] = []
        while cursor > a:
            what = f"fetching funding rates before {schema.format_ts(cursor)}"
            raw = self.caller(
                what,
                "fetch_funding_rate_history",
                self.symbol,
                None,
                limit,
                {"after": str(cursor // _MS)},
            )
            page = _funding_frame(raw)
            if len(page) == 0:
                break  # start of the exchange's history
            page_ts = schema.timestamps_ns(page, "funding")
            keep = (page_ts >= a) & (page_ts < b) & (page_ts < cursor)
            if keep.any():
                pending.append(page.loc[keep])
            oldest = int(page_ts[0])
            if oldest >= cursor:
                break
            bar.update(round((cursor - max(oldest, a)) / 86_400e9, 3))
            cursor = oldest
        if pending:
            yield pd.concat(pending, ignore_index=True)

    # ------------------------------------------------------------ tiers

    def tiers(self, ex: Any, now: pd.Timestamp) -> dict[str, Any]:
        signed = _SIGNED_TIERS.get(self.exchange)
        if signed and not getattr(ex, "apiKey", None):
            prefix = f"BACKTESTER_{self.exchange.upper()}"
            status = (
                f"skipped: Binance serves leverage brackets only to signed requests ({signed}); "
                f"pass a client with apiKey/secret (CLI: {prefix}_API_KEY/_SECRET)"
                + (" or use the bundled snapshot" if self.exchange == "binanceusdm" else "")
            )
            log.warning("%s %s tiers %s", self.exchange, self.symbol, status)
            return self._result("tiers", status, 0, None, "", None)
        what = "fetching leverage tiers"
        if getattr(ex, "has", {}).get("fetchMarketLeverageTiers"):
            raw = self.caller(what, "fetch_market_leverage_tiers", self.symbol)
        else:
            raw = self.caller(what, "fetch_leverage_tiers", [self.symbol]).get(self.symbol, [])
        market = ex.market(self.symbol)
        table = _tier_frame(self.exchange, raw, market)
        if len(table) == 0:
            return self._result("tiers", "no data", 0, None, "exchange returned no tiers", None)
        table = schema.validate_tiers(table, name=f"{self.exchange} {self.symbol} tiers")
        day = pd.Timestamp(now).floor("D")
        frame = pd.DataFrame({"timestamp": [day]})
        path = data_store.tiers_path(self.root, self.exchange, self.symbol, day)
        stored = data_store.stored_tiers(self.exchange, self.symbol, day, store=self.store)
        if stored is not None:
            if data_store.same_tiers(stored, table):
                row = self._result("tiers", "up to date", 0, frame, "", path)
                return {**row, "rows": len(stored)}
            problem = (
                f"the exchange's tiers differ from the snapshot of {day:%Y-%m-%d} already stored; "
                "kept the stored one (a snapshot is never replaced): the new tiers are recorded "
                "by a download on a later day"
            )
            log.warning("%s %s tiers: %s (%s)", self.exchange, self.symbol, problem, path)
            return {**self._result("tiers", "conflict", 0, frame, problem, path), "rows": 0}
        path = data_store.write_tiers(
            table,
            exchange=self.exchange,
            symbol=self.symbol,
            date=day,
            store=self.store,
            extra=self.contract,
        )
        return {**self._result("tiers", "ok", len(table), frame, "", path), "rows": len(table)}


# ---------------------------------------------------------------- ccxt structures -> frames


def _ohlcv_frame(raw: Any) -> pd.DataFrame:
    rows = [r for r in (raw or []) if r and r[0] is not None and None not in r[1:5]]
    if not rows:
        return pd.DataFrame(columns=list(schema.BAR_COLUMNS))
    arr = np.array([[float(x) if x is not None else 0.0 for x in r[:6]] for r in rows])
    if arr.shape[1] < 6:
        arr = np.column_stack([arr, np.zeros(len(arr))])
    df = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(arr[:, 0].astype(np.int64), unit="ms", utc=True),
            "open": arr[:, 1],
            "high": arr[:, 2],
            "low": arr[:, 3],
            "close": arr[:, 4],
            "volume": arr[:, 5],
        }
    )
    df["timestamp"] = df["timestamp"].astype("datetime64[ns, UTC]")
    return schema.drop_duplicates(df, keep="last")


def _funding_frame(raw: Any) -> pd.DataFrame:
    rows = [
        (int(r["timestamp"]), float(r["fundingRate"]))
        for r in (raw or [])
        if r.get("timestamp") is not None and r.get("fundingRate") is not None
    ]
    if not rows:
        return pd.DataFrame(columns=list(schema.FUNDING_COLUMNS))
    ts, rate = zip(*rows, strict=True)
    df = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.array(ts, dtype=np.int64), unit="ms", utc=True).astype(
                "datetime64[ns, UTC]"
            ),
            "funding_rate": np.array(rate, dtype=np.float64),
        }
    )
    return schema.drop_duplicates(df, keep="last")


def _num(value: Any, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def _tier_frame(exchange: str, raw: list[dict[str, Any]], market: dict[str, Any]) -> pd.DataFrame:
    rows = []
    contract_size = _num(market.get("contractSize"), 1.0) or 1.0
    for i, tier in enumerate(sorted(raw, key=lambda t: _num(t.get("minNotional")))):
        info = tier.get("info") or {}
        floor = _num(tier.get("minNotional"))
        cap = _num(tier.get("maxNotional"), float("inf"))
        basis = "notional"
        maint_amount = 0.0
        if exchange == "binanceusdm":
            maint_amount = _num(info.get("cum"))
        elif exchange == "binancecoinm":
            # COIN-M brackets are the position's value in the base coin (qtyFloor/qtyCap, BTC),
            # their maintenance amount ("cum") in the coin too
            basis = "size"
            maint_amount = _num(info.get("cum"))
        elif exchange == "okx":
            # OKX tiers are position sizes in contracts: store them in base units
            basis = "size"
            floor, cap = floor * contract_size, cap * contract_size
        elif exchange == "bybit":
            maint_amount = _num(info.get("mmDeduction"))
        rows.append(
            {
                "tier": i + 1,
                "floor": floor,
                "cap": cap,
                "max_leverage": _num(tier.get("maxLeverage")),
                "mmr": _num(tier.get("maintenanceMarginRate")),
                "maint_amount": maint_amount,
                "basis": basis,
            }
        )
    return pd.DataFrame(rows, columns=list(schema.TIER_COLUMNS))


# ---------------------------------------------------------------- repair


_REPAIR_COLUMNS = ["location", "dataset", "action", "detail"]
# verify problems that a repair fixes (the others are what the exchange sent, or not data)
_REPAIRABLE = frozenset(
    {"checksum mismatch", "unreadable", "duplicates", "not monotonic", "columns", "row count"}
)


def _check_key(key: object) -> str:
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 4 or not all(parts) or any(p in (".", "..") for p in parts):
        raise ConfigError(
            f"dataset must be a key such as 'binanceusdm/BTC_USDT_USDT/1h/ohlcv' (as printed by "
            f"`backtester data verify` and `backtester data list`), was {key!r}"
        )
    data_store._check_name(parts[0], "exchange", "binanceusdm")
    data_store._check_name(parts[1], "symbol folder", "BTC_USDT_USDT")
    if parts[2] != "tiers":
        schema.timeframe_to_ns(parts[2])
        if parts[3] not in data_store.SERIES_KINDS:
            raise ConfigError(
                f"dataset kind must be one of {', '.join(data_store.SERIES_KINDS)}, was "
                f"{parts[3]!r} in {key!r}{did_you_mean(parts[3], data_store.SERIES_KINDS)}"
            )
    return str(key)


def repair(
    datasets: Sequence[str] | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
    client: object | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: str | pd.Timestamp | None = None,
    progress: bool | None = None,
    page_limit: int | None = None,
) -> pd.DataFrame:
    """Repair damaged datasets without ever re-recording a damaged file as good.

    A damaged file (checksum mismatch, unreadable, duplicate or unordered rows) is restored from
    another copy whose sha256 is the one the manifest records (the package's own bundled data,
    the clone's ``data/bundled``); otherwise a downloaded dataset is moved aside
    (``<file>.damaged``), re-fetched over its recorded range through ccxt, and the damaged copy
    is discarded once the fetch succeeds. A damaged tier snapshot is moved aside (a past
    snapshot cannot be fetched again). A damaged bundled file without a good copy, or a file not
    downloaded through ccxt, is reported as "cannot repair" with what to do.

    Parameters
    ----------
    datasets : sequence of str, optional
        Dataset keys (``"binanceusdm/BTC_USDT_USDT/1h/ohlcv"``); by default every dataset that
        ``verify_store`` finds damaged.
    store, client, sleep, now, progress, page_limit
        As in :func:`download`.

    Returns
    -------
    pandas.DataFrame
        One row per dataset: ``location, dataset, action, detail``; action is one of "ok",
        "restored", "re-fetched", "removed", "cannot repair".
    """
    roots = data_store._roots(store)
    if datasets is None:
        problems = integrity.verify_store(store)
        chosen = problems[problems["problem"].isin(_REPAIRABLE)]
        keys = sorted(set(chosen["dataset"]))
    else:
        keys = [_check_key(k) for k in datasets]
    rows: list[dict[str, str]] = []
    for key in keys:
        found = [(loc, root, *integrity.inspect_dataset(root, key)) for loc, root in roots]
        known = [f for f in found if f[2] != "missing" or f[3] is not None]
        if not known:
            where = ", ".join(str(r) for _, r in roots)
            listed = [str(k) for k in integrity.list_store(store)["path"]]
            raise ConfigError(
                f"no dataset {key!r} in {where}; `backtester data list` shows the stored "
                f"datasets{did_you_mean(key, [p.split('/', 1)[-1] for p in listed])}"
            )
        damaged = [f for f in found if f[2] == "damaged"]
        if not damaged:
            rows.append(
                {
                    "location": known[0][0],
                    "dataset": key,
                    "action": "ok",
                    "detail": f"nothing to repair ({known[0][2]})",
                }
            )
        for location, root, _, entry in damaged:
            options = {"client": client, "sleep": sleep, "now": now, "progress": progress}
            action, detail = _repair_one(root, key, entry, {**options, "page_limit": page_limit})
            rows.append({"location": location, "dataset": key, "action": action, "detail": detail})
    return pd.DataFrame(rows, columns=_REPAIR_COLUMNS)


def _repair_one(
    root: Any,
    key: str,
    entry: dict[str, Any] | None,
    options: dict[str, Any],
) -> tuple[str, str]:
    path = root / f"{key}.parquet"
    digest = (entry or {}).get("sha256")
    if isinstance(digest, str) and digest:
        source = integrity.restore_from_copy(root, key, digest)
        if source is not None:
            return "restored", f"copied from {source} (sha256 checked)"
    if data_store._is_bundled(root):
        return "cannot repair", (
            f"bundled file {path} is damaged and this install has no good copy; in a clone "
            f"restore it with `git checkout -- data/bundled/{key}.parquet`, else reinstall "
            "(`pip install --force-reinstall backtester`)"
        )
    if entry is None or entry.get("source") != "ccxt" or not entry.get("symbol"):
        source_name = None if entry is None else entry.get("source")
        again = (
            f"delete it and import {entry.get('source_file')} again with `backtester data import "
            "--from-freqtrade DIR`"
            if entry is not None and source_name == "freqtrade"
            else "write it again from its source, or delete it"
        )
        return "cannot repair", (
            f"{path} was not downloaded through ccxt (source {source_name!r}), so it cannot be "
            f"fetched again; {again}"
        )
    exchange, symbol = str(entry["exchange"]), str(entry["symbol"])
    timeframe = str(entry.get("timeframe") or "1h")
    if key.split("/")[2] == "tiers":
        aside = integrity.quarantine(root, key)
        hint = data_store.download_hint(exchange, symbol, "1h", "tiers")
        return "removed", (
            f"moved to {aside}: a past tier snapshot cannot be fetched again (exchanges serve "
            f"only today's tiers); `{hint}` records today's"
        )
    kind = key.split("/")[3]
    times = {}
    for field in ("requested_start", "start", "end", "fetched_until"):
        try:
            times[field] = data_store.manifest_time(root, key, entry, field)
        except DataError:
            times[field] = None
    t0 = times["requested_start"] or times["start"]
    t1 = times["end"]
    if kind == "funding":
        t1 = max(times["fetched_until"] or 0, (t1 or 0) + _MS) or None
    if t0 is None or t1 is None or t1 <= t0:
        return "cannot repair", (
            f"the manifest entry of {path} records no usable range; delete the file and download "
            f"it again with `{data_store.download_hint(exchange, symbol, timeframe, kind)}`"
        )
    aside = integrity.quarantine(root, key)
    log.warning("%s: damaged copy moved to %s; fetching it again", key, aside)
    try:
        result = download(
            exchange,
            symbol,
            timeframe,
            start=pd.Timestamp(t0, tz="UTC"),
            end=pd.Timestamp(t1, tz="UTC"),
            kinds=[kind],
            store=root,
            **options,
        )
    except ExchangeError as exc:
        hint = data_store.download_hint(
            exchange, symbol, timeframe, kind, schema.format_ts(t0)[:10]
        )
        raise ExchangeError(
            f"repair of {key} stopped: {exc}; finish it with `{hint}` (the damaged copy is kept "
            f"at {aside})"
        ) from exc
    aside.unlink(missing_ok=True)
    row = result.iloc[0]
    return "re-fetched", (
        f"{int(row['rows'])} rows from {exchange} {schema.format_ts(t0)} -> "
        f"{schema.format_ts(t1)}; the damaged copy was discarded"
    )
