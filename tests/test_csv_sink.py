"""The csv sink: chosen columns, JSON for nested values, daily files, restarts, full disks."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import orjson
import pytest
from helpers_sinks import at, recording, start_app, wait_until, write_config

from boltrouter.config import ConfigErrors, load_config
from boltrouter.events import Event


def read_csv(path: Path, delimiter: str = ",") -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


async def test_default_columns_hold_the_envelope_and_data_as_json(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  lines: {type: csv, path: out/events.csv}
routes:
  - {name: all, when: {type: "*"}, to: lines}
""")
    events = recording(changes=12)
    app = await start_app(cfg)
    await app.publish_many(events)
    await app.stop()
    rows = read_csv(tmp_path / "out" / "events.csv")
    assert rows[0] == ["time", "type", "sport", "sportsbook", "game", "universal_id", "data"]
    assert len(rows) == len(events) + 1
    for row, e in zip(rows[1:], events):
        assert row[:6] == [e.time, e.type, e.sport or "", e.sportsbook or "", e.game,
                           e.universal_id]
        assert orjson.loads(row[6]) == e.data


async def test_chosen_fields_dotted_paths_and_delimiter(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  lines:
    type: csv
    path: lines.csv
    delimiter: ";"
    fields: [game, sportsbook, data.outcome, data.new_odds, data.new_prob, data.outcomes,
             data.missing, route]
routes:
  - {name: moves, when: {type: "odds.*"}, to: lines}
""")
    events = recording(changes=4, games=1, books=["draftkings"])
    app = await start_app(cfg)
    await app.publish_many(events)
    await app.stop()
    rows = read_csv(tmp_path / "lines.csv", ";")
    assert rows[0] == ["game", "sportsbook", "data.outcome", "data.new_odds", "data.new_prob",
                       "data.outcomes", "data.missing", "route"]
    added, change = rows[1], rows[2]
    assert orjson.loads(added[5]) == events[0].data["outcomes"]   # a mapping is written as JSON
    assert added[2] == "" and added[6] == ""                       # absent values are empty
    d = events[1].data
    assert change == [events[1].game, "draftkings", d["outcome"], d["new_odds"],
                      str(d["new_prob"]), "", "", "moves"]


async def test_date_in_the_path_starts_a_new_file_with_its_own_header_each_utc_day(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  lines: {type: csv, path: "daily/lines-{date}.csv", fields: [time, type]}
routes:
  - {name: all, when: {type: "*"}, to: lines}
""")
    app = await start_app(cfg)
    await app.publish_many([
        Event("score.changed", time="2025-12-07T23:59:59.000+00:00"),
        Event("score.changed", time="2025-12-07T19:30:00.000-05:00"),   # 00:30 UTC next day
        Event("score.changed", time="2025-12-08T00:00:01Z"),
    ])
    await app.stop()
    first = read_csv(tmp_path / "daily" / "lines-2025-12-07.csv")
    second = read_csv(tmp_path / "daily" / "lines-2025-12-08.csv")
    assert first == [["time", "type"], ["2025-12-07T23:59:59.000+00:00", "score.changed"]]
    assert second == [["time", "type"], ["2025-12-07T19:30:00.000-05:00", "score.changed"],
                      ["2025-12-08T00:00:01Z", "score.changed"]]


async def test_a_restart_appends_without_a_second_header(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  lines: {type: csv, path: lines.csv, fields: [time, type]}
routes:
  - {name: all, when: {type: "*"}, to: lines}
""")
    for second in (1, 2):
        app = await start_app(cfg)
        await app.publish(Event("score.changed", time=at(second)))
        await app.stop()
    assert read_csv(tmp_path / "lines.csv") == [
        ["time", "type"], [at(1), "score.changed"], [at(2), "score.changed"]]


async def test_a_full_disk_is_a_counted_failure_and_other_sinks_go_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this machine")
    cfg = write_config(tmp_path, """
sinks:
  full: {type: csv, path: /dev/full}
  kept: {type: csv, path: kept.csv}
routes:
  - {name: all, when: {type: "*"}, to: [full, kept]}
""")
    events = recording(changes=5)
    with caplog.at_level(logging.ERROR):
        app = await start_app(cfg)
        await app.publish_many(events)
        full = app.bus.runners["full"]
        await wait_until(lambda: full.failed == len(events), what="the failed batch")
        await app.stop()
    assert "cannot write to /dev/full: No space left on device; free some disk space" in \
        full.status()["last_error"]
    assert any("No space left on device" in r.getMessage() for r in caplog.records)
    assert app.bus.runners["kept"].delivered == len(events)
    assert len(read_csv(tmp_path / "kept.csv")) == len(events) + 1


def test_unknown_fields_and_bad_delimiters_are_config_errors(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  lines: {type: csv, path: x.csv, fields: [time, sportbook, data.outcome], delimiter: "::"}
""")
    with pytest.raises(ConfigErrors) as err:
        load_config(cfg)
    text = str(err.value)
    assert "unknown field 'sportbook'; did you mean 'sportsbook'?" in text
    assert "the delimiter must be one character, not '::'" in text
