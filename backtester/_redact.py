"""Credential redaction for log records and messages; importable from any layer, like ``errors``.

ccxt logs every request at DEBUG (method, URL with its ``signature``, the headers with the API key,
the body) and urllib3 logs URLs. :class:`RedactingFilter` rewrites a record's message so that no
credential survives at any level: the values registered with :func:`register_secrets` (the API
key, secret and password actually in use) are replaced wherever they appear, and so are the
values of credential-looking fields (``apiKey=``, ``signature=``, ``'X-MBX-APIKEY': '...'``,
OKX ``OK-ACCESS-*`` and Bybit ``X-BAPI-*`` headers, ``Authorization``). The CLI installs the
filter on its log handlers; the exchange loader installs it on the ccxt, urllib3 and backtester
loggers, so a user's own logging setup is covered as well.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping

__all__ = ["MASK", "RedactingFilter", "install_redaction", "redact", "register_secrets"]

MASK = "***"

_KEYS = (
    r"api[-_]?key|apikey|secret(?:[-_]?key)?|password|passphrase|signature|sign|token"
    r"|x-mbx-apikey|ok-access-(?:key|sign|passphrase)|x-bapi-(?:api-key|sign|signature)"
    r"|x-mexc-apikey|authorization|private[-_]?key"
)
# key, then the separator as written (=, :, ': ' in a dict repr, "": " in JSON), then the value
_FIELD_RE = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_KEYS})(['\"]?\s*[:=]\s*(?:Bearer\s+)?['\"]?)([^'\"&\s,;}}\]]+)"
)
_secrets: set[str] = set()
_lock = threading.Lock()
# loggers that see credentials: ccxt's request log, urllib3's URL log, and ours
_LOGGERS = ("ccxt", "ccxt.base.exchange", "urllib3", "urllib3.connectionpool", "backtester")


def register_secrets(values: Mapping[str, object] | Iterable[object]) -> None:
    """Remember credential values (strings of 4+ characters) so they are masked everywhere."""
    items = values.values() if isinstance(values, Mapping) else values
    with _lock:
        for value in items:
            if isinstance(value, str) and len(value) >= 4:
                _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and credential-looking field values masked."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _FIELD_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in the formatted message (and traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()


def install_redaction(handlers: Iterable[logging.Handler] = ()) -> None:
    """Install the redacting filter on the credential-seeing loggers and on ``handlers``.

    Idempotent. A filter on a logger sees only the records created on that logger, so the CLI
    also passes its handlers (which see every record that reaches them).
    """
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    for handler in handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
