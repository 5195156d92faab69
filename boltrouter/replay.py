"""Replay a JSONL recording through the routes.

A line is either an event envelope (has ``type``) or a raw frame written by
``boltrouter record`` (``{"received", "feed", "frame"}``), which goes through the
feed's own parser and state exactly as it did live. A recorded game catalogue
(``{"feed": "catalogue", "games": {...}}``) replaces the catalogue at that point,
as get_games did live.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from .app import App
from .config import Config
from .events import Event, parse_time
from .plugins import collect_registrations

log = logging.getLogger("boltrouter.replay")


async def replay_file(config: Config, path: Path, speed: float = 0.0,
                      progress: bool | None = None) -> dict[str, Any]:
    app = App(config)
    await app.start(feeds=False)
    feed_types = collect_registrations(app.pm, "register_feed_types")
    feeds: dict[str, Any] = {}
    stats = {"lines": 0, "events": 0, "frames": 0, "errors": 0}
    total = path.stat().st_size
    show = sys.stderr.isatty() if progress is None else progress
    first_rec: float | None = None
    start = time.monotonic()
    done_bytes = 0
    last_draw = 0.0
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                done_bytes += len(raw)
                if not raw.strip():
                    continue
                stats["lines"] += 1
                try:
                    doc = orjson.loads(raw)
                    if not isinstance(doc, dict):
                        raise ValueError("not a JSON object")
                except Exception as exc:
                    stats["errors"] += 1
                    log.warning("%s:%d: skipped: %s", path, lineno, exc)
                    continue
                when = parse_time(doc.get("received") or doc.get("time"))
                if speed > 0 and when is not None:
                    t = when.timestamp()
                    if first_rec is None:
                        first_rec = t
                    delay = (t - first_rec) / speed - (time.monotonic() - start)
                    if delay > 0:
                        await asyncio.sleep(delay)
                try:
                    if doc.get("feed") == "catalogue" and "type" not in doc:
                        games = doc.get("games")
                        if not isinstance(games, dict):
                            raise ValueError("a catalogue line without a games object")
                        app.catalogue.update(games)
                    elif "frame" in doc and "type" not in doc:
                        fname = doc.get("feed") or "odds"
                        feed = feeds.get(fname)
                        if feed is None:
                            cls = feed_types.get(fname)
                            if cls is None:
                                raise ValueError(f"unknown feed {fname!r}")
                            opts = config.feeds.get(fname, (cls, {}))[1]
                            feed = feeds[fname] = cls(fname, dict(opts), app)
                        await feed.handle_frame(doc["frame"], doc.get("received"))
                        stats["frames"] += 1
                    else:
                        await app.publish(Event.from_dict(doc))
                except Exception as exc:
                    stats["errors"] += 1
                    log.warning("%s:%d: skipped: %s", path, lineno, exc)
                    continue
                if show and time.monotonic() - last_draw > 0.2:
                    last_draw = time.monotonic()
                    _draw(done_bytes, total, app.events_in)
                if stats["lines"] % 1000 == 0:
                    await asyncio.sleep(0)
    finally:
        stats["events"] = app.events_in
        if show:
            _draw(total, total, app.events_in)
            sys.stderr.write("\n")
        await app.stop()
        stats["summary"] = app.summary_line()
    return stats


def _draw(done: int, total: int, events: int) -> None:
    frac = done / total if total else 1.0
    width = 30
    bar = "#" * int(frac * width)
    sys.stderr.write(f"\r[{bar:<{width}}] {frac * 100:5.1f}%  {events} events")
    sys.stderr.flush()
