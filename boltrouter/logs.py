"""Logging: human-readable or JSON lines, with every secret redacted."""

from __future__ import annotations

import logging
import sys

import orjson

from .secrets import RedactingFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        if record.exc_text:
            doc["exception"] = record.exc_text
        return orjson.dumps(doc).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_boltrouter", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._boltrouter = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                               "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("websockets", "httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
