"""The sqlite sink: archive, present odds and scores, concurrent readers, clear failures."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import orjson
import pytest
from helpers_sinks import (
    boltrouter,
    line_event,
    private_mount_prefix,
    recording,
    score_event,
    start_app,
    wait_until,
    write_config,
    write_jsonl,
)

from boltrouter.config import ConfigErrors, load_config
from boltrouter.events import Event

ARCHIVE = """
sinks:
  archive: {type: sqlite, path: data/archive.db, flush_interval: 50ms, busy_timeout: 100ms}
routes:
  - {name: archive-everything, when: {type: "*"}, to: archive}
"""

ODDS_ONLY = """
sinks:
  archive: {type: sqlite, path: archive.db, flush_interval: 50ms}
routes:
  - {name: nothing-routed, when: {type: no.such.type}, to: archive}
"""


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


async def test_routed_events_are_archived_once_even_when_replayed(tmp_path: Path) -> None:
    events = recording(changes=30)
    app = await start_app(write_config(tmp_path, ARCHIVE))
    await app.publish_many(events)
    await app.publish_many(Event.from_dict(e.to_dict()) for e in events)   # the same changes again
    await app.stop()

    db = tmp_path / "data" / "archive.db"        # the missing folder was created
    rows = query(db, "SELECT id, type, time, received, feed, sport, sportsbook, game, "
                     "universal_id, data FROM events ORDER BY id")
    assert len(rows) == len(events)
    first = next(r for r in rows if r[0] == events[0].id)
    e = events[0]
    assert first[1:9] == (e.type, e.time, e.received, e.feed, e.sport, e.sportsbook, e.game,
                          e.universal_id)
    assert orjson.loads(first[9]) == e.data
    assert app.bus.runners["archive"].status()["duplicates"] == len(events)
    indexes = {r[0] for r in query(db, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_type_time", "events_universal_id"} <= indexes
    assert query(db, "PRAGMA journal_mode") == [("wal",)]


async def test_events_table_name_is_configurable(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, ARCHIVE.replace("busy_timeout: 100ms",
                                                 "busy_timeout: 100ms, events_table: archive"))
    app = await start_app(cfg)
    await app.publish_many(recording(changes=3))
    await app.stop()
    assert query(tmp_path / "data" / "archive.db", "SELECT count(*) FROM archive")[0][0] > 0


async def test_odds_current_follows_every_event_even_unrouted(tmp_path: Path) -> None:
    app = await start_app(write_config(tmp_path, ODDS_ONLY))
    db = tmp_path / "archive.db"
    game = "New York Knicks vs Boston Celtics, 2025-12-07, 19"
    await app.publish_many([
        line_event("draftkings", game, "Knicks", "+105", 1),
        line_event("draftkings", game, "Celtics", "-120", 2),
        line_event("fanduel", game, "Knicks", "+100", 3),
        line_event("draftkings", game, "Knicks", "+110", 4),
        line_event("draftkings", game, "Celtics", None, 5, etype="odds.line_suspended"),
    ])
    # a reader sees the present board while the daemon runs, without any routed event
    current = "SELECT sportsbook, outcome, odds FROM odds_current ORDER BY 1, 2"
    await wait_until(lambda: len(query(db, current)) == 3, what="the periodic flush")
    assert query(db, current) == [("draftkings", "Celtics", None), ("draftkings", "Knicks", "+110"),
                                  ("fanduel", "Knicks", "+100")]
    assert query(db, "SELECT count(*) FROM events") == [(0,)]

    await app.publish(line_event("draftkings", game, "Celtics", "-115", 6,
                                 etype="odds.line_restored"))
    await app.publish(Event("odds.game_removed", {"count": 2}, feed="odds", sport="NBA",
                            sportsbook="draftkings", game=game))
    await app.publish(line_event("betmgm", game, "Knicks", "+101", 7, sport="NFL"))
    await app.publish(line_event("betmgm", "Other game", "Knicks", "+101", 8))
    await app.publish(Event("odds.sport_cleared", {"sport": "NFL", "sportsbook": "betmgm",
                                                   "lines": 1}, feed="odds"))
    await app.stop()
    assert query(db, current) == [("betmgm", "Knicks", "+101"), ("fanduel", "Knicks", "+100")]
    assert query(db, "SELECT game FROM odds_current WHERE sportsbook = 'betmgm'") == [
        ("Other game",)]


async def test_game_added_replaces_lines_and_book_clear_empties_the_book(tmp_path: Path) -> None:
    app = await start_app(write_config(tmp_path, ODDS_ONLY))
    events = recording(changes=0, games=2, books=["draftkings", "fanduel"])
    await app.publish_many(events)
    await app.publish(Event("odds.book_cleared", {"sportsbook": "fanduel", "lines": 4},
                            feed="odds"))
    await app.stop()
    rows = query(tmp_path / "archive.db",
                 "SELECT sportsbook, game, outcome, universal_id, sport, market, target, odds, "
                 "prob, link FROM odds_current ORDER BY game, outcome")
    assert {r[0] for r in rows} == {"draftkings"}
    added = events[0]
    key, line = next(iter(added.data["outcomes"].items()))
    assert (added.sportsbook, added.game, key, added.universal_id, added.sport, line["market"],
            line["target"], line["odds"], line["prob"], line["link"]) in rows
    assert len(rows) == 4


async def test_scores_current_merges_score_status_and_period(tmp_path: Path) -> None:
    app = await start_app(write_config(tmp_path, ODDS_ONLY))
    await app.publish_many([
        score_event("g1", 1, "game.status_changed", status="live", prev_status="scheduled"),
        score_event("g1", 2, home_score=7, away_score=0, period=1, clock="12:00"),
        score_event("g2", 2, home_score=1, away_score=1, period=2, clock="03:10"),
        score_event("g1", 3, "game.period_changed", period=2, prev_period=1),
        score_event("g1", 4, home_score=7, away_score=3, clock="09:41"),
    ])
    await app.stop()
    rows = query(tmp_path / "archive.db",
                 "SELECT universal_id, game, home, away, status, home_score, away_score, period, "
                 "clock FROM scores_current ORDER BY universal_id")
    assert rows == [("g1", "Game g1", "Home", "Away", "live", 7, 3, 2, "09:41"),
                    ("g2", "Game g2", "Home", "Away", None, 1, 1, 2, "03:10")]


async def test_a_reader_can_query_while_the_daemon_writes(tmp_path: Path) -> None:
    app = await start_app(write_config(tmp_path, ARCHIVE))
    db = tmp_path / "data" / "archive.db"
    events = recording(changes=200)
    half = len(events) // 2
    await app.publish_many(events[:half])
    runner = app.bus.runners["archive"]
    await wait_until(lambda: runner.delivered == half, what="the first half written")

    reader = sqlite3.connect(db, timeout=0.1)
    reader.execute("BEGIN")                      # a long read transaction, as a dashboard holds
    assert reader.execute("SELECT count(*) FROM events").fetchone() == (half,)
    await app.publish_many(events[half:])
    await wait_until(lambda: runner.delivered == len(events), what="the second half written")
    assert runner.failed == 0
    assert reader.execute("SELECT count(*) FROM events").fetchone() == (half,)   # its snapshot
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM events").fetchone() == (len(events),)
    reader.close()
    await app.stop()


async def test_a_locked_database_is_a_counted_failure_and_the_sink_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = await start_app(write_config(tmp_path, ARCHIVE))
    db = tmp_path / "data" / "archive.db"
    runner = app.bus.runners["archive"]
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")             # another program holds the write lock
    game = "Lakers vs Nuggets, 2025-12-07, 20"
    with caplog.at_level(logging.ERROR):
        await app.publish(line_event("draftkings", game, "Lakers", "+120", 1))
        await wait_until(lambda: runner.failed == 1, what="the failed batch")
    assert f"cannot write to {db}: database is locked" in runner.status()["last_error"]
    assert not runner.sink.healthy()
    assert app.metrics.get("sink_failed", sink="archive") == 1
    assert any("database is locked" in r.getMessage() for r in caplog.records)

    other.execute("ROLLBACK")
    other.close()
    await app.publish(line_event("draftkings", game, "Lakers", "+125", 2))
    await wait_until(lambda: runner.delivered == 1, what="the write after the lock went away")
    assert runner.sink.healthy()
    await app.stop()
    assert query(db, "SELECT count(*) FROM events") == [(1,)]
    # the board change seen while locked was kept and written later
    assert query(db, "SELECT odds FROM odds_current") == [("+125",)]


async def test_a_folder_that_cannot_be_created_fails_start_clearly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "blocker").write_text("a file where the folder should be")
    cfg = write_config(tmp_path, ARCHIVE.replace("data/archive.db", "blocker/sub/archive.db"))
    with caplog.at_level(logging.ERROR):
        app = await start_app(cfg)
        assert app.metrics.get("sink_start_failed", sink="archive") == 1
        assert any(f"cannot create the folder {tmp_path / 'blocker' / 'sub'}" in r.getMessage()
                   for r in caplog.records)
        await app.publish_many(recording(changes=2))
        runner = app.bus.runners["archive"]
        await wait_until(lambda: runner.failed > 0, what="counted failures")
        await app.stop()
    assert runner.delivered == 0


def test_options_are_validated(tmp_path: Path) -> None:
    bad = """
sinks:
  archive: {type: sqlite, events_table: "drop table", synchronous: normall}
  other: {type: sqlite, path: x.db, pathh: y}
"""
    with pytest.raises(ConfigErrors) as err:
        load_config(write_config(tmp_path, bad))
    text = str(err.value)
    assert "sinks.archive.path: is required" in text
    assert "'drop table' is not a table name" in text
    assert "'normall' is not allowed; did you mean 'NORMAL'?" in text
    assert "unknown key 'pathh'; did you mean 'path'?" in text


def test_a_read_only_file_system_is_reported_not_fatal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cfg = write_config(tmp_path, """
sinks:
  archive: {type: sqlite, path: data/archive.db}
  lines: {type: csv, path: lines.csv}
routes:
  - {name: archive-everything, when: {type: "*"}, to: [archive, lines]}
""")
    rec = write_jsonl(tmp_path / "rec.jsonl", recording(changes=20))
    assert boltrouter("replay", "--config", str(cfg), str(rec)).returncode == 0
    prefix = private_mount_prefix(data, "readonly")
    if prefix is None:
        pytest.skip("this machine does not allow a private read-only mount")
    result = boltrouter("replay", "--config", str(cfg), str(rec), prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert f"cannot write to {data / 'archive.db'}" in result.stderr
    assert "read-only file system" in result.stderr
    assert "Traceback" not in result.stderr
    n = len(recording(changes=20))
    assert f"archive 0 ok/{n} failed" in result.stderr
    assert f"lines {n} ok/0 failed" in result.stderr      # the other sink went on


def test_a_full_disk_is_reported_not_fatal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    prefix = private_mount_prefix(data, "tiny")
    if prefix is None:
        pytest.skip("this machine does not allow a private tmpfs mount")
    cfg = write_config(tmp_path, """
sinks:
  archive: {type: sqlite, path: data/archive.db, batch_size: 200}
  lines: {type: csv, path: lines.csv}
routes:
  - {name: archive-everything, when: {type: "*"}, to: [archive, lines]}
""")
    events = recording(changes=3000)
    rec = write_jsonl(tmp_path / "rec.jsonl", events)
    result = boltrouter("replay", "--config", str(cfg), str(rec), prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert f"cannot write to {data / 'archive.db'}: database or disk is full; free some disk " \
           "space" in result.stderr
    assert "Traceback" not in result.stderr
    assert f"lines {len(events)} ok/0 failed" in result.stderr
