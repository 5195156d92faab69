"""The play-by-play feed on loopback with the docs' own examples of streams 1 to 4:
plays and stats become events once, scores reach the scoreboard, games named
without the hour suffix join the catalogue, and a reconnect repeats nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers_scores import Rig, get_games_entry
from helpers_ws import wait_until

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event
from boltrouter.simulator import SimulatorServer

BILLS = "Buffalo Bills vs Cincinnati Bengals, 2025-12-07, 01"
JETS = "New York Jets vs Miami Dolphins, 2025-12-07, 01"
ROCKETS = "Houston Rockets vs Los Angeles Clippers, 2025-12-11, 08"
SHEFFIELD = "Sheffield vs Hull City, 2025-12-26, 10"
BLAZERS = "Portland Trail Blazers vs Dallas Mavericks, 2025-12-29, 10"
GAMES = {
    **get_games_entry(BILLS, "26dbab0e7ade", "NFL", "2025-12-07, 01:00 PM"),
    **get_games_entry(JETS, "e6251db7dbec", "NFL", "2025-12-07, 01:00 PM"),
    **get_games_entry(ROCKETS, "08a0bc661896", "NBA", "2025-12-11, 08:00 PM"),
    **get_games_entry(SHEFFIELD, "d8b78ad82391", "EFL Championship", "2025-12-26, 10:00 AM"),
    **get_games_entry(BLAZERS, "af76659e4344", "NBA", "2025-12-29, 10:00 PM"),
}

CURRENT_STATE = {
    "stream": 1, "action": "current_state",
    "event": "Buffalo Bills vs Cincinnati Bengals, 2025-12-07",
    "universal_id": "26dbab0e7ade", "league": "NFL",
    "game_info": {"period": 3, "clock": 631, "game_start": "2025-12-07T18:00:00Z",
                  "score": {"home_team": "Buffalo Bills", "home_score": 11,
                            "away_team": "Cincinnati Bengals", "away_score": 21}},
    "field_state": {"possession": "home", "down": 3, "yardline": 35, "field_side": "away",
                    "timeouts": {"home": 3, "away": 3}},
}
STATS_1 = {
    "stream": 1, "action": "stats",
    "event": "Buffalo Bills vs Cincinnati Bengals, 2025-12-07",
    "universal_id": "26dbab0e7ade", "league": "NFL", "state": "",
    "play_info": {"id": None, "away_team_stats_first_downs": 10, "away_team_stats_pen": 10,
                  "away_team_stats_pen_yds": 70, "home_team_stats_first_downs": 13,
                  "home_team_stats_for_loss": 3},
    "play_start": "", "play_end": "", "action_id": "AZsQdbI-AAC3joRjm07yXQ==",
}
LAST_PLAY = {
    "stream": 1, "action": "pass_that_gains_yards",
    "event": "Buffalo Bills vs Cincinnati Bengals, 2025-12-07",
    "universal_id": "26dbab0e7ade", "league": "NFL", "state": "last_play",
    "play_info": {"receiver": {"full_name": "James Cook"}, "goal_to_go": False,
                  "passer": {"full_name": "Josh Allen"}, "drive_number": 5, "net_yards": 5,
                  "play_number": 7, "tackler_1": {"full_name": None}},
    "play_start": {"down": 2, "side": "away", "possession": "home", "yardline": 40,
                   "distance": 7},
    "play_end": {"down": 3, "side": "away", "possession": "home", "yardline": 35,
                 "distance": 2},
    "action_id": "AZr6VN81AABCouuXe-zjzQ==",
}
NEW_PLAY_1 = {
    "stream": 1, "action": "rush_that_gains_yards",
    "event": "New York Jets vs Miami Dolphins, 2025-12-07",
    "universal_id": "e6251db7dbec", "league": "NFL", "state": "new_play",
    "play_info": {"goal_to_go": False, "drive_number": 9, "net_yards": 1, "play_number": 1},
    "play_start": {"down": 1, "side": "away", "possession": "away", "yardline": 7,
                   "distance": 10},
    "play_end": {"down": 2, "side": "away", "possession": "away", "yardline": 8,
                 "distance": 9},
    "action_id": "AZr6ZcXuAAAcrGO3LfBQGg==",
}
STREAM2_PLAYS = {
    "stream": 2, "action": "new_play", "event": ROCKETS, "universal_id": "08a0bc661896",
    "league": "NBA", "state": "new_play",
    "play_info": [
        {"clock": "00:00", "description": "End of 3rd Quarter.", "isEndOfPeriod": True},
        {"clock": "00:02", "description": "Alperen Sengun makes 2-foot layup",
         "isEndOfPeriod": False},
        {"clock": "00:19", "description": "James Harden misses 26-foot three point jumper",
         "isEndOfPeriod": False},
    ],
    "play_start": "", "play_end": "", "score": {"home": 80, "away": 82},
}
STREAM2_STATS = {
    "stream": 2, "action": "stats", "event": ROCKETS, "universal_id": "08a0bc661896",
    "league": "NBA", "state": "",
    "play_info": {"game": {"threePointsAtt": 54, "rebounds": 55, "points": 162},
                  "team": {"away": {"threePointsAtt": 29, "rebounds": 19},
                           "home": {"rebounds": 36, "defensiveRebounds": 21}}},
    "play_start": "", "play_end": "", "action_id": "",
}
STREAM3_PLAYS = {
    "stream": 3, "action": "new_play", "event": SHEFFIELD, "universal_id": "d8b78ad82391",
    "league": "EFL Championship", "state": "new_play",
    "play_info": [
        {"id": "480", "type": "GoalKick", "subType": "", "actionDetails": {},
         "gameTime": "01:06:23", "team": "Hull City"},
        {"id": "479", "type": "DangerStateChanged", "subType": "Safe",
         "actionDetails": {"state": "Safe"}, "gameTime": "01:06:22", "team": "Hull City"},
    ],
    "play_start": "", "play_end": "", "score": {"home": 2, "away": 2},
}
STREAM3_STATS = {
    "stream": 3, "action": "stats", "event": SHEFFIELD, "universal_id": "d8b78ad82391",
    "league": "EFL Championship", "state": "",
    "play_info": {"game": [
        {"name": "POSSESSIONS", "home": "48", "away": "52"},
        {"name": "ATTACKS", "home": "67", "away": "53"},
        {"name": "DANGEROUS_ATTACK", "home": "41", "away": "43"},
        {"name": "SHOTS", "home": "0/3", "homePercentage": 0, "away": "4/7",
         "awayPercentage": 57},
    ]},
    "play_start": "", "play_end": "", "action_id": "",
}
STREAM4_PLAY = {
    "stream": 4, "action": "new_play", "event": BLAZERS, "universal_id": "af76659e4344",
    "home": "Portland Trail Blazers", "away": "Dallas Mavericks", "league": "NBA",
    "state": "new_play",
    "play_info": [{"type": "attempt_missed", "team": "home", "points": 3, "seconds": 200,
                   "name": "Attempt missed", "X": 73, "Y": 83, "time": 4}],
    "score": {"home": 8, "away": 9},
}
ON_CONNECT = [CURRENT_STATE, STATS_1, LAST_PLAY, STREAM2_PLAYS, STREAM2_STATS, STREAM3_PLAYS,
              STREAM3_STATS]


@pytest.fixture
async def rig(tmp_path: Path):
    rig = await Rig.start(tmp_path, games=GAMES, playbyplay={
        "games": [BILLS, JETS, ROCKETS, SHEFFIELD, BLAZERS], "backoff_max": 0.1})
    yield rig
    await rig.stop()


def plays_of(rig: Rig, uid: str) -> list[Any]:
    return [e for e in rig.of_type("play.new") if e.universal_id == uid]


async def test_stream_1_current_state_stats_and_last_play(rig: Rig) -> None:
    conn = await rig.connection()
    for msg in (CURRENT_STATE, STATS_1, LAST_PLAY):
        await conn.send(msg)
    await rig.settle(conn)
    state = rig.app.scoreboard.get("26dbab0e7ade")
    assert (state.home_score, state.away_score, state.period, state.clock, state.possession) == (
        11, 21, 3, "10:31", "home")
    assert state.name == BILLS and state.home == "Buffalo Bills"
    [stats] = rig.of_type("stats.updated")
    assert stats.data["stream"] == 1
    assert stats.data["stats"]["home_team_stats_first_downs"] == 13
    assert "id" not in stats.data["stats"]
    [play] = rig.of_type("play.new")
    assert play.data["description"] == "Pass that gains yards: Josh Allen to James Cook, 5 yards"
    assert play.data["action"] == "pass_that_gains_yards" and play.data["backlog"] is True
    assert play.data["play_end"]["yardline"] == 35
    assert (play.game, play.universal_id, play.sport, play.feed) == (
        BILLS, "26dbab0e7ade", "NFL", "playbyplay")
    assert state.last_play == play.data
    assert rig.of_type("score.changed") == []


async def test_stream_1_new_play_is_an_event(rig: Rig) -> None:
    conn = await rig.connection()
    await conn.send(NEW_PLAY_1)
    [play] = await rig.wait_for(lambda: rig.of_type("play.new"))
    assert play.data["description"] == "Rush that gains yards, 1 yard"
    assert play.data["backlog"] is False and play.data["action_id"] == NEW_PLAY_1["action_id"]
    assert (play.game, play.home, play.away) == (JETS, "New York Jets", "Miami Dolphins")


async def test_stream_2_recent_plays_oldest_first_then_stats_and_score(rig: Rig) -> None:
    conn = await rig.connection()
    await conn.send(STREAM2_PLAYS)
    await conn.send(STREAM2_STATS)
    await rig.settle(conn)
    plays = plays_of(rig, "08a0bc661896")
    assert [p.data["description"] for p in plays] == [
        "James Harden misses 26-foot three point jumper", "Alperen Sengun makes 2-foot layup",
        "End of 3rd Quarter."]
    assert all(p.data["backlog"] for p in plays)
    state = rig.app.scoreboard.get("08a0bc661896")
    assert (state.home_score, state.away_score) == (80, 82)
    [stats] = rig.of_type("stats.updated")
    assert stats.data["stats"]["team"]["home"]["rebounds"] == 36

    newer = copy.deepcopy(STREAM2_PLAYS)
    newer["play_info"].insert(0, {"clock": "11:41", "description": "Ivica Zubac makes free throw",
                                  "isEndOfPeriod": False})
    newer["score"] = {"home": 80, "away": 83}
    await conn.send(newer)
    changed = await rig.wait_for(lambda: rig.of_type("score.changed"))
    assert [p.data["description"] for p in plays_of(rig, "08a0bc661896")][3:] == [
        "Ivica Zubac makes free throw"]
    assert changed[0].data["scoring_side"] == "away" and changed[0].feed == "playbyplay"


async def test_stream_3_named_stats_and_plays_by_id(rig: Rig) -> None:
    conn = await rig.connection()
    await conn.send(STREAM3_PLAYS)
    await conn.send(STREAM3_STATS)
    await rig.settle(conn)
    plays = plays_of(rig, "d8b78ad82391")
    assert [p.data["play"]["id"] for p in plays] == ["479", "480"]
    assert plays[0].data["description"] == "DangerStateChanged (Safe) - Hull City"
    [stats] = rig.of_type("stats.updated")
    assert stats.data["stats"]["game"]["SHOTS"] == {"home": "0/3", "homePercentage": 0,
                                                    "away": "4/7", "awayPercentage": 57}
    assert rig.app.scoreboard.get("d8b78ad82391").home_score == 2
    await conn.send(STREAM3_STATS)                   # the same snapshot again
    await rig.settle(conn)
    assert len(rig.of_type("stats.updated")) == 1


async def test_stream_4_current_play_names_the_team(rig: Rig) -> None:
    conn = await rig.connection()
    await conn.send(STREAM4_PLAY)
    [play] = await rig.wait_for(lambda: rig.of_type("play.new"))
    assert play.data["description"] == "Attempt missed - Portland Trail Blazers"
    assert play.data["stream"] == 4 and play.data["play"]["X"] == 73
    state = rig.app.scoreboard.get("af76659e4344")
    assert (state.home_score, state.away_score) == (8, 9)
    later = copy.deepcopy(STREAM4_PLAY)
    later["play_info"] = [{"type": "two_pointer", "team": "away", "points": 2, "seconds": 180,
                           "name": "Two pointer", "X": 40, "Y": 20, "time": 4}]
    later["score"] = {"home": 8, "away": 11}
    await conn.send(later)
    changed = await rig.wait_for(lambda: rig.of_type("score.changed"))
    assert changed[0].data["away_score"] == 11
    assert len(rig.of_type("play.new")) == 2


async def test_a_reconnect_that_repeats_recent_plays_and_stats_emits_nothing(rig: Rig) -> None:
    conn = await rig.connection()
    for msg in ON_CONNECT:
        await conn.send(msg)
    await rig.settle(conn)
    seen = len(rig.events)
    plays = len(rig.of_type("play.new"))
    assert plays == 1 + 3 + 2
    conn.abort()
    again = await rig.connection()
    for msg in ON_CONNECT:
        await again.send(msg)
    await rig.settle(again)
    after = [e.type for e in rig.events[seen:]]
    assert [t for t in after if not t.startswith("feed.")] == []


async def test_a_game_named_without_the_hour_and_without_an_id_joins_the_catalogue(
        rig: Rig) -> None:
    conn = await rig.connection()
    anonymous = copy.deepcopy(NEW_PLAY_1)
    del anonymous["universal_id"]
    await conn.send(anonymous)
    [play] = await rig.wait_for(lambda: rig.of_type("play.new"))
    assert (play.universal_id, play.game, play.sport) == ("e6251db7dbec", JETS, "NFL")


async def test_the_simulator_replaying_recent_plays_after_a_drop_adds_nothing(
        tmp_path: Path) -> None:
    sim = SimulatorServer({"seed": 11, "games": 16, "clear_every": 0,
                           "connects_per_minute": 0})
    await sim.start()
    sim.pause()
    followed = [g for g in sim.world.games.values() if g.status == "live" and g.stream]
    assert {g.stream for g in followed} & {1, 2, 3}
    doc = {"boltodds": {"api_key": "k-sim-2b9e", "playbyplay": {
               "url": sim.url_for("playbyplay"), "sports": sorted({g.sport for g in followed}),
               "backoff_max": 0.1},
           "rest": {"url": sim.url_for("rest")}},
           "simulator": {"enabled": "never"}, "summary": {"enabled": "never"},
           "state_dir": str(tmp_path)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc))
    app = App(load_config(tmp_path / "config.yaml"))
    events: list[Event] = []
    app.taps.append(lambda event, routes: events.append(event))
    metrics = app.metrics
    await app.start()
    try:
        await wait_until(lambda: any(s.subscribed for s in sim.sessions["playbyplay"]), 20,
                         "the play-by-play subscription")
        on_connect = sum(1 for g in followed if g.stream in (2, 3)) * 2 + sum(
            2 + bool(g.plays) for g in followed if g.stream == 1)
        await wait_until(lambda: metrics.total("playbyplay_messages") == on_connect, 20,
                         "the messages sent on connect")
        first = [e for e in events if e.type in ("play.new", "stats.updated")]
        assert first and all(e.data.get("backlog", True) for e in first)
        seen = len(events)
        sim.drop_connections("playbyplay")
        await wait_until(lambda: metrics.total("playbyplay_messages") == 2 * on_connect, 20,
                         "the same messages after the reconnect")
        again = [e.type for e in events[seen:]]
        assert [t for t in again if not t.startswith("feed.")] == []
        assert app.feeds["playbyplay"].reconnects == 1
    finally:
        await app.stop()
        await sim.stop()
