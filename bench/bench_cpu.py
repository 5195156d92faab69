"""CPU per event on an idle day: 50 line updates per second for about 10 seconds.

boltrouter runs as in the throughput benchmark (odds board, 20 routes, SQLite,
CSV and MQTT when the mqtt sink is installed); the figure is the process CPU
time (every thread) over the window divided by the line updates, and the share
of one core it amounts to. The baseline is a bare client that receives and
parses the same frames at the same rate.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from . import _support as s
from .bench_throughput import _open, app_config, has_mqtt_sink

RATE = 50.0


async def bare(server: s.FrameServer) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of a client that only parses, over the updates."""
    ws = await _open(server.url)
    try:
        for _ in range(server.info["snapshot_frames"]):
            orjson.loads(await ws.recv())
        c0, t0 = time.process_time(), time.perf_counter()
        server.go()
        got = 0
        while got < server.info["messages"]:
            doc = orjson.loads(await ws.recv())
            got += len(doc) if isinstance(doc, list) else 1
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    finally:
        await ws.close()
    server.sent()
    return cpu, wall


async def boltrouter(server: s.FrameServer, broker: s.Mosquitto | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        config = app_config(Path(tmp), server.info["games"], broker)
        app, _feed = await s.start_app(Path(tmp), config, server.url)
        try:
            await s.wait_for(lambda: len(app.board) >= server.info["lines"], 120,
                             "the snapshot to be applied")
            await s.wait_for(lambda: s.sinks_settled(app), 120, "the snapshot to be written")
            expected = s.line_events(app) + server.info["updates"]
            c0, t0 = time.process_time(), time.perf_counter()
            server.go()
            await s.wait_for(lambda: s.line_events(app) >= expected, 120, "every line update",
                             step=0.05)
            await s.wait_for(lambda: s.sinks_settled(app), 60, "the sinks to write", step=0.05)
            cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        finally:
            await app.stop()
    server.sent()
    return cpu, wall


async def _measure(quick: bool) -> list[dict[str, Any]]:
    lines = int(RATE * (3 if quick else 10))
    server = s.FrameServer(s.ServerSpec(50, 10, 20, lines, rate=RATE))
    broker = s.Mosquitto() if has_mqtt_sink() else None
    try:
        base_cpu, base_wall = await bare(server)
        cpu, wall = await boltrouter(server, broker)
    finally:
        server.stop()
        if broker is not None:
            broker.stop()
    n = server.info["updates"]
    return [
        {"name": f"CPU per line update at {RATE:g}/s (idle day)", "value": cpu / n * 1e6,
         "unit": "us", "baseline_name": "bare client, orjson.loads only",
         "baseline": base_cpu / n * 1e6},
        {"name": f"CPU use at {RATE:g} line updates/s", "value": cpu / wall * 100,
         "unit": "% core", "baseline_name": "bare client, orjson.loads only",
         "baseline": base_cpu / base_wall * 100},
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return s.run_async(_measure(quick))
