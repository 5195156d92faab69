"""Keep secrets out of logs, errors and tracebacks.

Every configured secret (API key, webhook secrets, MQTT passwords, the HTTP
token) is registered here when the config loads; a logging filter and
``redact()`` replace it (also as it is spelled inside a URL), and any
``key=...`` query parameter, with ``***``.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_QUERY_KEY = re.compile(r"(?i)([?&](?:key|api_key|apikey|token|password|secret)=)[^&\s'\"]+")
MASK = "***"


def register_secret(value: object) -> None:
    """Remember a secret so that it is redacted everywhere from now on."""
    global _pattern
    if not isinstance(value, str) or len(value) < 4:
        return
    spellings = {value, quote(value, safe=""), quote_plus(value, safe="")}
    with _lock:
        if spellings <= _secrets:
            return
        _secrets.update(spellings)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: object) -> str:
    s = str(text)
    s = _QUERY_KEY.sub(r"\1" + MASK, s)
    pattern = _pattern
    if pattern is not None:
        s = pattern.sub(MASK, s)
    return s


def redact_url(url: str) -> str:
    return redact(url)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, arguments and exception text before output."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            import traceback
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
