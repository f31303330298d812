"""Replay recorded exchange HTTP responses at ccxt's HTTP layer (a requests adapter).

ccxt's sync exchanges send every request through ``exchange.session`` (a ``requests.Session``).
:class:`ReplayAdapter` is mounted on that session, so the REAL ccxt exchange classes build the
requests, parse the responses and map HTTP errors; only the network is replaced.

Recorded interactions live in ``tests/data/recorded/<exchange>/<name>.json`` as a list of
``{"method", "path", "query", "status", "body"}``; a request is matched by method + path + query
(signature, timestamp and recvWindow ignored). Faults (429, 5xx, timeout, permanent 4xx, an
arbitrary exception) can be injected for the next requests that match a path fragment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded"
IGNORED_PARAMS = frozenset({"signature", "timestamp", "recvWindow", "sign"})


def request_key(method: str, url: str) -> str:
    """Return ``"GET /path?a=1&b=2"`` with sorted query and volatile auth params removed."""
    parts = urlsplit(url)
    return _key(method, parts.path, dict(parse_qsl(parts.query)))


def _key(method: str, path: str, query: dict[str, Any]) -> str:
    items = sorted((k, str(v)) for k, v in query.items() if k not in IGNORED_PARAMS)
    encoded = "&".join(f"{k}={v}" for k, v in items)
    return f"{method.upper()} {path}" + (f"?{encoded}" if encoded else "")


@dataclass
class Fault:
    """An injected failure for the next request whose key contains ``match``."""

    match: str
    kind: str  # "429", "500", "503", "timeout", "400", "exception"
    body: Any = None
    exception: BaseException | None = None


@dataclass
class ReplayAdapter(HTTPAdapter):  # type: ignore[misc]
    """Serve recorded responses; raise a clear error for an unrecorded request."""

    interactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        HTTPAdapter.__init__(self)

    def __hash__(self) -> int:
        return id(self)

    # ---------------------------------------------------------------- loading

    def add(self, items: Iterable[dict[str, Any]]) -> ReplayAdapter:
        for item in items:
            key = _key(item.get("method", "GET"), item["path"], item.get("query") or {})
            self.interactions[key] = item
        return self

    def load(self, exchange: str, *names: str) -> ReplayAdapter:
        for name in names:
            path = RECORDED / exchange / f"{name}.json"
            self.add(json.loads(path.read_text(encoding="utf-8")))
        return self

    def inject(self, match: str, *kinds: str, body: Any = None) -> ReplayAdapter:
        for kind in kinds:
            self.faults.append(Fault(match=match, kind=kind, body=body))
        return self

    def inject_exception(self, match: str, exc: BaseException, *, after: int = 0) -> ReplayAdapter:
        """Raise ``exc`` on the ``after+1``-th request matching ``match`` (simulates a crash)."""
        self.faults.append(Fault(match=match, kind=f"skip:{after}", exception=exc))
        return self

    def count(self, fragment: str) -> int:
        return sum(fragment in key for key in self.log)

    # ---------------------------------------------------------------- serving

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        key = request_key(str(request.method), str(request.url))
        self.log.append(key)
        for i, fault in enumerate(self.faults):
            if fault.match not in key:
                continue
            if fault.kind.startswith("skip:"):
                remaining = int(fault.kind.split(":")[1])
                if remaining > 0:
                    fault.kind = f"skip:{remaining - 1}"
                    break
                del self.faults[i]
                assert fault.exception is not None
                raise fault.exception
            del self.faults[i]
            if fault.kind == "timeout":
                raise requests.exceptions.ReadTimeout(f"replayed timeout for {key}")
            status = int(fault.kind)
            body = fault.body if fault.body is not None else _error_body(status)
            return _response(request, status, body)
        item = self.interactions.get(key)
        if item is None:
            raise AssertionError(f"no recorded response for {key}")
        return _response(request, int(item.get("status", 200)), item["body"])

    def close(self) -> None:  # pragma: no cover - nothing to release
        return None


def _error_body(status: int) -> Any:
    if status == 429:
        return {"code": -1003, "msg": "Too many requests; current limit is 2400 per minute."}
    if status >= 500:
        return {"code": -1001, "msg": "Internal error; unable to process your request."}
    return {"code": -1121, "msg": "Invalid symbol."}


def _response(request: requests.PreparedRequest, status: int, body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode("utf-8")
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
    response.url = str(request.url)
    response.request = request
    response.reason = {200: "OK", 400: "Bad Request", 429: "Too Many Requests"}.get(status, "Error")
    response.encoding = "utf-8"
    return response


def mount(exchange: Any, adapter: ReplayAdapter) -> Any:
    """Mount ``adapter`` on a ccxt exchange's session for http and https and return it."""
    exchange.session.mount("https://", adapter)
    exchange.session.mount("http://", adapter)
    return exchange


@dataclass
class RecordingAdapter(ReplayAdapter):
    """Serve from a rendering backend and keep every interaction (used only to record)."""

    backend: Any = None
    served: dict[str, dict[str, Any]] = field(default_factory=dict)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        key = request_key(str(request.method), str(request.url))
        if any(f.match in key for f in self.faults):
            return super().send(request, **kwargs)
        self.log.append(key)
        status, body = self.backend(str(request.method), str(request.url))
        parts = urlsplit(str(request.url))
        query = {k: v for k, v in parse_qsl(parts.query) if k not in IGNORED_PARAMS}
        self.served[key] = {
            "method": str(request.method),
            "path": parts.path,
            "query": dict(sorted(query.items())),
            "status": status,
            "body": body,
        }
        return _response(request, status, body)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        items = [self.served[k] for k in sorted(self.served)]
        path.write_text(json.dumps(items, separators=(",", ":")) + "\n", encoding="utf-8")
