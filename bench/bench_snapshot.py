"""Snapshot: an ``initial_state`` of 2,000 games x 10 books x 50 outcomes (1 M lines).

The frames are parsed and applied to the odds board exactly as the odds feed
does (``orjson.loads``, then ``OddsBoard.apply`` per message), then the same
snapshot is replayed as after a reconnect: it must emit no event at all. The
baseline is a bare loop that only ``json.loads`` the same frames.

A last figure runs the whole daemon path: the odds feed's frame handler, the
20,000 ``odds.game_added`` events routed to a SQLite archive, and
``odds_current`` filled with every line, until everything is written.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from boltrouter.board import OddsBoard
from boltrouter.catalogue import Catalogue

from . import _support as s

RECEIVED = "2026-12-01T18:00:00.100+00:00"


def apply_all(board: OddsBoard, frames: tuple[bytes, ...]) -> int:
    """Parse and apply every frame as the odds feed does; returns the events emitted."""
    board.begin_snapshot()
    events = 0
    for frame in frames:
        for msg in orjson.loads(frame):
            events += len(board.apply(msg, RECEIVED, "odds"))
    return events + len(board.note_control(RECEIVED, "odds"))


async def through_app(frames: tuple[bytes, ...]) -> float:
    """Seconds from the first frame to every event and line written to SQLite."""
    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        config = (f"simulator: {{enabled: never}}\nstate_dir: {tmp}\n"
                  "summary: {enabled: never}\n"
                  f"sinks:\n  archive: {{type: sqlite, path: {tmp}/archive.db}}\n"
                  "routes:\n  - {name: archive, when: {type: 'odds.*'}, to: archive}\n")
        app, feed = await s.app_with_feed(Path(tmp), config)
        try:
            t0 = time.perf_counter()
            app.board.begin_snapshot()
            for frame in frames:
                await feed.handle_frame(frame, RECEIVED)
            await s.wait_for(lambda: s.sinks_settled(app), 600, "the archive to be written")
            elapsed = time.perf_counter() - t0
        finally:
            await app.stop()
    return elapsed


def run(quick: bool = False) -> list[dict[str, Any]]:
    games = 200 if quick else 2000
    frames = s.snapshot_frames(games)
    t0 = time.perf_counter()
    for frame in frames:
        json.loads(frame)
    bare = time.perf_counter() - t0
    board = OddsBoard(Catalogue())
    t0 = time.perf_counter()
    apply_all(board, frames)
    first = time.perf_counter() - t0
    lines = len(board)
    t0 = time.perf_counter()
    replay_events = apply_all(board, frames)
    replay = time.perf_counter() - t0
    size = f"{games:,} games x 10 books x 50 ({lines / 1e6:.2g} M lines)"
    return [
        {"name": f"initial_state {size} applied", "value": first, "unit": "s",
         "baseline_name": "bare loop: json.loads only", "baseline": bare},
        {"name": "reconnect replaying the same initial_state", "value": replay, "unit": "s",
         "baseline_name": "bare loop: json.loads only", "baseline": bare},
        {"name": "events emitted by that replay (must be 0)", "value": replay_events,
         "unit": "events"},
        {"name": "the same initial_state through the daemon into SQLite",
         "value": s.run_async(through_app(frames)), "unit": "s",
         "baseline_name": "bare loop: json.loads only", "baseline": bare},
    ]
