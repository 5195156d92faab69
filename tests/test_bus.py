"""The bus: one bounded queue and worker per sink, overflow policies, draining on shutdown."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from helpers_sinks import recording, start_app, wait_until, write_config

from boltrouter.app import App


def config_with(tmp_path: Path, sinks: str, grace: str = "10s") -> Path:
    """Every event goes to every sink named in ``sinks`` (YAML lines under ``sinks:``)."""
    names = [line.split(":", 1)[0].strip() for line in sinks.strip().splitlines()]
    return write_config(tmp_path, f"""
shutdown_grace: {grace}
sinks:
{sinks}
routes:
  - {{name: all, when: {{type: "*"}}, to: [{", ".join(names)}]}}
""")


def seen(app: App, sink: str) -> list[str]:
    return app.sinks[sink].seen  # type: ignore[attr-defined]


async def test_a_hung_sink_blocks_neither_the_producer_nor_the_other_sinks(tmp_path: Path) -> None:
    app = await start_app(config_with(tmp_path, """
  good: {type: flaky, mode: ok}
  stuck: {type: flaky, mode: hang, queue_size: 10, overflow: drop_oldest, batch_size: 1}
"""))
    events = recording(changes=200)
    await app.publish(events[0])
    await wait_until(lambda: app.sinks["stuck"].writes == 1, what="the stuck sink's write")
    await asyncio.wait_for(app.publish_many(events[1:]), 30)  # never waits on the stuck sink
    await wait_until(lambda: len(seen(app, "good")) == len(events), what="the good sink")
    assert seen(app, "good") == [e.id for e in events]
    stuck = app.bus.runners["stuck"]
    # one event is inside the hung write, ten wait in the queue, the rest were dropped
    assert len(stuck.queue) == 10
    assert stuck.dropped == len(events) - 11
    assert app.metrics.total("sink_dropped", sink="stuck") == stuck.dropped
    assert app.bus.runners["good"].dropped == 0
    app.sinks["stuck"].release.set()  # type: ignore[attr-defined]
    await app.stop()
    # what drop_oldest kept is the newest events
    assert seen(app, "stuck") == [events[0].id] + [e.id for e in events[-10:]]


async def test_a_failing_sink_is_counted_and_the_others_still_deliver(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = await start_app(config_with(tmp_path, """
  good: {type: flaky, mode: ok}
  bad: {type: flaky, mode: fail, batch_size: 7}
"""))
    events = recording(changes=50)
    with caplog.at_level(logging.ERROR, logger="boltrouter.bus"):
        await app.publish_many(events)
        await app.stop()
    assert seen(app, "good") == [e.id for e in events]
    bad = app.bus.runners["bad"]
    assert bad.failed == len(events) and bad.delivered == 0
    assert app.metrics.total("sink_failed", sink="bad") == len(events)
    assert "ConnectionError: flaky sink 'bad' refused" in bad.last_error
    assert "sink 'bad' failed to deliver" in caplog.text
    assert f"bad 0 ok/{len(events)} failed" in app.summary_line()


async def test_drop_newest_keeps_what_was_queued_first(tmp_path: Path) -> None:
    app = await start_app(config_with(tmp_path, """
  slow: {type: flaky, mode: hang, queue_size: 5, overflow: drop_newest, batch_size: 1}
"""))
    events = recording(changes=30)
    runner = app.bus.runners["slow"]
    await app.publish(events[0])
    await wait_until(lambda: app.sinks["slow"].writes == 1, what="the first write")
    await app.publish_many(events[1:])
    app.sinks["slow"].release.set()  # type: ignore[attr-defined]
    await app.stop()
    # the first event was in the write, the next five waited; the rest were refused
    assert seen(app, "slow") == [e.id for e in events[:6]]
    assert runner.dropped == len(events) - 6
    assert app.metrics.total("sink_dropped", sink="slow") == len(events) - 6


async def test_block_makes_the_producer_wait_for_room_and_loses_nothing(tmp_path: Path) -> None:
    app = await start_app(config_with(tmp_path, """
  careful: {type: flaky, mode: hang, queue_size: 3, overflow: block, batch_size: 2}
  other: {type: flaky, mode: ok}
"""))
    events = recording(changes=40)
    runner = app.bus.runners["careful"]
    producer = asyncio.create_task(app.publish_many(events))
    await wait_until(lambda: len(runner.queue) == 3 and app.sinks["careful"].writes == 1,
                     what="a full queue")
    for _ in range(20):
        await asyncio.sleep(0)
    assert not producer.done()  # it waits for room instead of dropping
    app.sinks["careful"].release.set()  # type: ignore[attr-defined]
    await asyncio.wait_for(producer, 30)
    await app.stop()
    assert seen(app, "careful") == [e.id for e in events]
    assert seen(app, "other") == [e.id for e in events]
    assert runner.dropped == 0


async def test_shutdown_drains_every_accepted_event(tmp_path: Path) -> None:
    app = await start_app(config_with(tmp_path, """
  gated: {type: flaky, mode: hang, batch_size: 3}
  archive: {type: sqlite, path: archive.db}
"""))
    events = recording(changes=100)
    await app.publish_many(events)
    await wait_until(lambda: app.sinks["gated"].writes == 1, what="the first write")
    stopping = asyncio.create_task(app.stop())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()  # waiting for the queue, within shutdown_grace
    app.sinks["gated"].release.set()  # type: ignore[attr-defined]
    await asyncio.wait_for(stopping, 30)
    assert seen(app, "gated") == [e.id for e in events]
    import sqlite3
    with sqlite3.connect(tmp_path / "archive.db") as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] == len(events)


async def test_a_sink_hung_past_the_grace_period_does_not_hold_up_shutdown(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = await start_app(config_with(tmp_path, """
  stuck: {type: flaky, mode: hang, batch_size: 5}
  good: {type: flaky, mode: ok}
""", grace="200ms"))
    events = recording(changes=20)
    await app.publish_many(events)
    with caplog.at_level(logging.ERROR, logger="boltrouter.bus"):
        await asyncio.wait_for(app.stop(), 30)
    assert seen(app, "good") == [e.id for e in events]
    assert "sink 'stuck' did not drain within 0.2s" in caplog.text
    stuck = app.bus.runners["stuck"]
    # nothing vanishes silently: every event is delivered, failed or dropped
    assert stuck.failed == 5 and stuck.dropped == len(events) - 5
    assert f"stuck 0 ok/{stuck.failed} failed/{stuck.dropped} dropped" in app.summary_line()
