"""Memory: bytes per line held by the odds board at 1 M lines, and the peak while the
snapshot is applied (both from tracemalloc).

The baseline keeps what a script would keep: the parsed ``outcomes`` objects of
every (sportsbook, game), measured on a tenth of the frames.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import orjson

from boltrouter.board import OddsBoard
from boltrouter.catalogue import Catalogue

from . import _support as s
from .bench_snapshot import apply_all

MIB = 1024 * 1024


def traced(fn: Any) -> tuple[Any, int, int]:
    """(result, bytes still allocated after a collection, peak bytes) of ``fn()``."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, current, peak


def board_of(frames: tuple[bytes, ...]) -> OddsBoard:
    board = OddsBoard(Catalogue())
    apply_all(board, frames)
    return board


def parsed_outcomes(frames: tuple[bytes, ...]) -> dict[tuple[str, str], Any]:
    kept: dict[tuple[str, str], Any] = {}
    for frame in frames:
        for msg in orjson.loads(frame):
            data = msg["data"]
            kept[(data["sportsbook"], data["game"])] = data["outcomes"]
    return kept


def parse_only(frames: tuple[bytes, ...]) -> None:
    for frame in frames:
        orjson.loads(frame)


def run(quick: bool = False) -> list[dict[str, Any]]:
    frames = s.snapshot_frames(200 if quick else 2000)
    board, held, peak = traced(lambda: board_of(frames))
    lines = len(board)
    del board
    sample = frames[: max(1, len(frames) // 10)]
    kept, kept_bytes, _ = traced(lambda: parsed_outcomes(sample))
    kept_lines = sum(len(o) for o in kept.values())
    del kept
    _, _, parse_peak = traced(lambda: parse_only(frames))
    return [
        {"name": f"odds board bytes per line at {lines / 1e6:.2g} M lines", "value": held / lines,
         "unit": "B", "baseline_name": "parsed outcome objects kept",
         "baseline": kept_bytes / kept_lines},
        {"name": "peak memory while applying the snapshot", "value": peak / MIB, "unit": "MiB",
         "baseline_name": "held by the board afterwards", "baseline": held / MIB},
        {"name": "peak memory of a bare loop parsing the snapshot", "value": parse_peak / MIB,
         "unit": "MiB"},
    ]
