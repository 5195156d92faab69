"""Batching for quiet feeds: SQLite and CSV wait a moment to fill a batch, and never hold
back a full batch or a shutdown."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

from helpers_sinks import line_event, start_app, wait_until, write_config

ROOT = Path(__file__).resolve().parent.parent


def csv_config(tmp_path: Path, batch_size: int = 500) -> Path:
    return write_config(tmp_path, f"""
sinks:
  lines: {{type: csv, path: {tmp_path}/lines.csv, batch_size: {batch_size},
          fields: [game, data.outcome, data.new_odds]}}
routes:
  - {{name: lines, when: {{type: odds.line_changed}}, to: lines}}
""")


def rows(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.reader(fh))[1:]


async def test_a_full_batch_is_written_without_waiting_for_more(tmp_path: Path) -> None:
    app = await start_app(csv_config(tmp_path, batch_size=2))
    app.bus.runners["lines"].linger = 3600.0        # a sink that would wait for an hour
    try:
        await app.publish(line_event("fanduel", "A vs B", "A Moneyline", "+120", 0))
        for _ in range(10):                          # the worker starts waiting for more
            await asyncio.sleep(0)
        await app.publish(line_event("fanduel", "A vs B", "B Moneyline", "-140", 0))
        await wait_until(lambda: len(rows(tmp_path / "lines.csv")) == 2, 10,
                         "the full batch in the file")
    finally:
        await app.stop()
    assert rows(tmp_path / "lines.csv") == [["A vs B", "A Moneyline", "+120"],
                                            ["A vs B", "B Moneyline", "-140"]]


async def test_stopping_writes_a_batch_that_was_still_filling(tmp_path: Path) -> None:
    app = await start_app(csv_config(tmp_path))
    runner = app.bus.runners["lines"]
    runner.linger = 3600.0
    await app.publish(line_event("fanduel", "A vs B", "A Moneyline", "+120", 0))
    await asyncio.wait_for(app.stop(), 20)           # the grace is 10 s, the linger an hour
    assert rows(tmp_path / "lines.csv") == [["A vs B", "A Moneyline", "+120"]]
    assert runner.delivered == 1 and runner.dropped == 0


async def test_sqlite_and_csv_batch_a_quiet_feed_and_mqtt_does_not(tmp_path: Path) -> None:
    from boltrouter.sinks.csv import CsvSink
    from boltrouter.sinks.mqtt import MqttSink
    from boltrouter.sinks.sqlite import SqliteSink

    assert SqliteSink.linger > 0 and CsvSink.linger > 0
    assert getattr(MqttSink, "linger", 0.0) == 0.0


def test_the_quick_benchmark_prints_one_table_and_a_replayed_snapshot_emits_nothing() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "snapshot"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    header = [i for i, line in enumerate(lines) if line.startswith("area ")]
    assert len(header) == 1, result.stdout
    replay = [line for line in lines if "events emitted by that replay" in line]
    assert len(replay) == 1 and " 0 events " in replay[0], result.stdout
    applied = [line for line in lines if "initial_state" in line and "applied" in line]
    assert applied and applied[0].rstrip().endswith("x"), result.stdout
