"""The live-scores feed on loopback: every league shape, A/B through ``designation``,
status and period changes, unknown shapes, and seeding from match_info."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers_scores import Rig, get_games_entry
from helpers_ws import FakeClock

from boltrouter.catalogue import EASTERN

GEORGIA = "Georgia Yellow Jackets vs Georgia Panthers, 2026-02-24, 04"
DOCS_BASEBALL: dict[str, Any] = {
    "action": "match_update",
    "game": GEORGIA,
    "universal_id": "469e868dfa5b",
    "home": "Georgia Yellow Jackets",
    "away": "Georgia Panthers",
    "designation": {"A": "home", "B": "away"},
    "state": {
        "preMatch": False, "matchCompleted": False, "out": 0, "inning": 5,
        "runs": {"A": 2, "B": 0}, "strike": 1, "ball": 0,
        "base1": False, "base2": True, "base3": True, "topOfInning": True,
        "extraInningsRuns": {"A": 0, "B": 0},
        "inningScores": {"1": {"A": 2, "B": 0}, "2": {"A": 0, "B": 0}, "3": {"A": 0, "B": 0},
                         "4": {"A": 0, "B": 0}, "5": {"A": 0, "B": 0}},
        "matchPeriod": ["BaseballMatchPeriod", "AT_TOP_5TH_INNING"],
        "matchNumberOfInnings": 0, "clockStatus": "SET_PERIOD_END",
        "totalRunsForTeamA": 2, "totalRunsForTeamB": 0, "clockRunning": False,
    },
}
GAMES = get_games_entry(GEORGIA, "469e868dfa5b", "NCAA Baseball", "2026-02-24, 04:00 PM")


def match_update(state: dict[str, Any], designation: dict[str, str] | None = None,
                 game: str = "Home Team vs Away Team, 2026-03-01, 07",
                 uid: str = "aa11bb22cc33") -> dict[str, Any]:
    return {"action": "match_update", "game": game, "universal_id": uid,
            "home": "Home Team", "away": "Away Team",
            "designation": designation or {"A": "home", "B": "away"}, "state": state}


OTHER = get_games_entry("Home Team vs Away Team, 2026-03-01, 07", "aa11bb22cc33", "NBA",
                        "2026-03-01, 07:30 PM")


def live(**state: Any) -> dict[str, Any]:
    return {"preMatch": False, "matchCompleted": False, **state}


# (league, designation, first state, second state, expected (home, away) before and after,
#  expected scoring side, expected period after)
SHAPES = [
    ("basketball, pointsA/pointsB and an elapsed clock", {"A": "home", "B": "away"},
     live(pointsA=50, pointsB=48, elapsedTimeSeconds=1500,
          matchPeriod=["BasketballMatchPeriod", "IN_THIRD_QUARTER"]),
     live(pointsA=50, pointsB=51, elapsedTimeSeconds=1530,
          matchPeriod=["BasketballMatchPeriod", "IN_THIRD_QUARTER"]),
     (50, 48), (50, 51), "away", 3),
    ("basketball into overtime", {"A": "home", "B": "away"},
     live(quarter=4, clock="0:00", points={"A": 99, "B": 99},
          matchPeriod=["BasketballMatchPeriod", "IN_4TH_QUARTER"]),
     live(quarter=5, clock="4:40", points={"A": 101, "B": 99},
          matchPeriod=["BasketballMatchPeriod", "IN_1ST_OVERTIME"]),
     (99, 99), (101, 99), "home", 5),
    ("football, B is home, possession by letter", {"A": "away", "B": "home"},
     live(quarter=2, clock="10:31", points={"A": 7, "B": 3}, possession="B", down=3,
          yardline=35, matchPeriod=["AmericanFootballMatchPeriod", "IN_2ND_QUARTER"]),
     live(quarter=2, clock="9:02", points={"A": 14, "B": 3}, possession="A", down=1,
          yardline=25, matchPeriod=["AmericanFootballMatchPeriod", "IN_2ND_QUARTER"]),
     (3, 7), (3, 14), "away", 2),
    ("soccer, goals, cards and corners as A/B keys", {"A": "home", "B": "away"},
     live(goalsA=1, goalsB=0, cornersA=3, cornersB=1, yellowCardsA=1, yellowCardsB=2,
          redCardsA=0, redCardsB=0, elapsedTimeSeconds=2400,
          matchPeriod=["FootballMatchPeriod", "IN_FIRST_HALF"]),
     live(goalsA=1, goalsB=1, cornersA=3, cornersB=2, yellowCardsA=1, yellowCardsB=2,
          redCardsA=0, redCardsB=1, elapsedTimeSeconds=3100,
          matchPeriod=["FootballMatchPeriod", "IN_SECOND_HALF"]),
     (1, 0), (1, 1), "away", 2),
    ("hockey, goals per team", {"A": "away", "B": "home"},
     live(period=1, clock="12:00", goals={"A": 0, "B": 1},
          matchPeriod=["IceHockeyMatchPeriod", "IN_1ST_PERIOD"]),
     live(period=2, clock="19:40", goals={"A": 1, "B": 1},
          matchPeriod=["IceHockeyMatchPeriod", "IN_2ND_PERIOD"]),
     (1, 0), (1, 1), "away", 2),
    ("tennis, sets are the score, games in the stats", {"A": "home", "B": "away"},
     live(sets={"A": 0, "B": 0}, games={"A": 5, "B": 4}, points={"A": "40", "B": "15"},
          server="A", currentSet=1, matchPeriod=["TennisMatchPeriod", "IN_1ST_SET"]),
     live(sets={"A": 1, "B": 0}, games={"A": 0, "B": 0}, points={"A": "0", "B": "0"},
          setScores={"1": {"A": 6, "B": 4}}, server="B", currentSet=2,
          matchPeriod=["TennisMatchPeriod", "IN_2ND_SET"]),
     (0, 0), (1, 0), "home", 2),
]


@pytest.fixture
async def rig(tmp_path: Path):
    rig = await Rig.start(tmp_path, games={**GAMES, **OTHER},
                          scores={"games": [GEORGIA, "Home Team vs Away Team, 2026-03-01, 07"]})
    yield rig
    await rig.stop()


async def test_the_docs_baseball_update_gives_runs_inning_outs_and_bases(rig: Rig) -> None:
    conn = await rig.connection()
    await conn.send(DOCS_BASEBALL)
    await rig.settle(conn)
    state = rig.app.scoreboard.get("469e868dfa5b")
    assert state is not None
    assert (state.home_score, state.away_score, state.period, state.status) == (2, 0, 5, "live")
    assert state.possession == "away"     # top of the inning: the away side bats
    stats = state.extra["stats"]
    assert stats["out"] == 0 and (stats["base1"], stats["base2"], stats["base3"]) == (
        False, True, True)
    assert stats["inningScores"]["1"] == {"home": 2, "away": 0}
    assert rig.of_type("score.changed") == []     # the first report is the baseline

    later = copy.deepcopy(DOCS_BASEBALL)
    later["state"].update(runs={"A": 2, "B": 1}, totalRunsForTeamB=1, out=1)
    await conn.send(later)
    changed = await rig.wait_for(lambda: rig.of_type("score.changed"))
    event = changed[0]
    assert event.data["home_score"] == 2 and event.data["away_score"] == 1
    assert event.data["prev_home_score"] == 2 and event.data["prev_away_score"] == 0
    assert event.data["scoring_side"] == "away" and event.data["period"] == 5
    assert (event.universal_id, event.home, event.away, event.sport, event.feed) == (
        "469e868dfa5b", "Georgia Yellow Jackets", "Georgia Panthers", "NCAA Baseball", "scores")


async def test_designation_b_home_swaps_the_runs(rig: Rig) -> None:
    conn = await rig.connection()
    swapped = copy.deepcopy(DOCS_BASEBALL)
    swapped["designation"] = {"A": "away", "B": "home"}
    await conn.send(swapped)
    await rig.settle(conn)
    state = rig.app.scoreboard.get("469e868dfa5b")
    assert state is not None and (state.home_score, state.away_score) == (0, 2)
    assert state.extra["stats"]["inningScores"]["1"] == {"home": 0, "away": 2}


@pytest.mark.parametrize("case", SHAPES, ids=[s[0] for s in SHAPES])
async def test_every_league_shape_reports_the_score_change(rig: Rig, case: tuple) -> None:
    _, designation, first, second, before, after, side, period = case
    conn = await rig.connection()
    await conn.send(match_update(first, designation))
    await rig.settle(conn)
    state = rig.app.scoreboard.get("aa11bb22cc33")
    assert state is not None and (state.home_score, state.away_score) == before
    await conn.send(match_update(second, designation))
    changed = await rig.wait_for(lambda: rig.of_type("score.changed"))
    assert len(changed) == 1
    data = changed[0].data
    assert (data["prev_home_score"], data["prev_away_score"]) == before
    assert (data["home_score"], data["away_score"]) == after
    assert data["scoring_side"] == side
    assert state.period == period
    assert changed[0].home == "Home Team" and changed[0].sport == "NBA"


async def test_soccer_cards_and_corners_are_kept_per_side(rig: Rig) -> None:
    conn = await rig.connection()
    await conn.send(match_update(SHAPES[3][3], {"A": "away", "B": "home"}))
    await rig.settle(conn)
    stats = rig.app.scoreboard.get("aa11bb22cc33").extra["stats"]
    assert stats["corners"] == {"away": 3, "home": 2}
    assert stats["redCards"] == {"away": 0, "home": 1}
    assert stats["yellowCards"] == {"away": 1, "home": 2}


async def test_period_and_status_events_fire_only_on_real_change(rig: Rig) -> None:
    conn = await rig.connection()
    third = live(pointsA=60, pointsB=58, matchPeriod=["BasketballMatchPeriod", "IN_THIRD_QUARTER"])
    fourth = live(pointsA=60, pointsB=58,
                  matchPeriod=["BasketballMatchPeriod", "IN_FOURTH_QUARTER"])
    for state in (third, third, fourth, fourth, fourth):
        await conn.send(match_update(state))
    final = {"preMatch": False, "matchCompleted": True, "pointsA": 60, "pointsB": 58,
             "matchPeriod": ["BasketballMatchPeriod", "MATCH_COMPLETED"]}
    await conn.send(match_update(final))
    await conn.send(match_update(final))
    await conn.send(match_update(fourth))         # a stale message after the end
    await rig.settle(conn)
    periods = rig.of_type("game.period_changed")
    assert [(e.data["prev_period"], e.data["period"]) for e in periods] == [(3, 4)]
    statuses = rig.of_type("game.status_changed")
    assert [(e.data["prev_status"], e.data["status"]) for e in statuses] == [("live", "final")]
    assert rig.of_type("score.changed") == []
    assert rig.app.scoreboard.get("aa11bb22cc33").status == "final"


async def test_unknown_shapes_and_broken_updates_are_kept_or_skipped_never_fatal(rig: Rig) -> None:
    conn = await rig.connection()
    cricket = match_update({"preMatch": False, "innings": 2,
                            "wickets": {"A": 3, "B": 7}, "overs": {"A": "20.0", "B": "14.2"}})
    await conn.send(cricket)
    await conn.send({"action": "match_update", "game": GEORGIA, "state": "not an object"})
    await conn.send([{"action": "match_update"}, 17, {"action": "scoreboard_flux"}])
    await conn.send(DOCS_BASEBALL)
    await rig.settle(conn)
    state = rig.app.scoreboard.get("aa11bb22cc33")
    assert state is not None and state.extra["shape"] == "unknown"
    assert state.extra["stats"]["wickets"] == {"home": 3, "away": 7}
    assert rig.app.scoreboard.get("469e868dfa5b").home_score == 2
    assert rig.app.feeds["scores"].connected
    assert rig.app.metrics.get("feed_bad_frames", feed="scores") >= 2


async def test_the_subscription_names_the_chosen_games(tmp_path: Path) -> None:
    rig = await Rig.start(tmp_path, games={**GAMES, **OTHER}, scores={"teams": ["georgia"]})
    try:
        conn = await rig.ws.next_connection(10)
        sub = await conn.next_message(10)
        assert sub == {"action": "subscribe", "filters": {"games": [GEORGIA]}}
    finally:
        await rig.stop()


async def test_match_info_seeds_the_score_so_the_first_live_goal_is_an_event(
        tmp_path: Path) -> None:
    started = datetime.now(UTC) - timedelta(minutes=50)
    local = started.astimezone(EASTERN)
    name = f"Sheffield vs Hull City, {local:%Y-%m-%d}, {local:%I}"
    games = get_games_entry(name, "d8b78ad82391", "EFL Championship",
                            f"{local:%Y-%m-%d, %I:%M %p}")
    info = {name: {"doc": [{"event": "match_timelinedelta", "_dob": 1772139333, "data": {
        "match": {"_doc": "match", "result": {"home": 2, "away": 1}, "p": "2",
                  "periods": {"p1": {"home": 1, "away": 1}},
                  "timeinfo": {"started": "1772136548", "running": True},
                  "status": {"_doc": "status", "_id": 7, "name": "2nd half"},
                  "teams": {"home": {"name": "Sheffield"}, "away": {"name": "Hull City"}}},
        "events": []}}]}}
    rig = await Rig.start(tmp_path, games=games, scores={"sports": ["EFL Championship"]},
                          rest={"seed": True}, answers={"match_info": info})
    try:
        conn = await rig.connection()
        await rig.wait_for(lambda: rig.app.scoreboard.get("d8b78ad82391"), what="the seed")
        seeded = rig.app.scoreboard.get("d8b78ad82391")
        assert (seeded.home_score, seeded.away_score, seeded.status) == (2, 1, "live")
        asked = rig.rest.calls("match_info")[0].json()
        assert asked == {"games": [name]}
        await conn.send(match_update(live(goalsA=2, goalsB=2, matchPeriod=[
            "FootballMatchPeriod", "IN_SECOND_HALF"]), game=name, uid="d8b78ad82391"))
        changed = await rig.wait_for(lambda: rig.of_type("score.changed"))
        assert (changed[0].data["prev_home_score"], changed[0].data["prev_away_score"]) == (2, 1)
        assert changed[0].data["away_score"] == 2 and changed[0].data["scoring_side"] == "away"
        assert changed[0].game == name and changed[0].sport == "EFL Championship"
    finally:
        await rig.stop()


async def test_subscriptions_follow_the_catalogue_as_games_appear_and_finish(
        tmp_path: Path, caplog: Any) -> None:
    knicks_1 = "New York Knicks vs Boston Celtics, 2026-03-01, 07"
    knicks_2 = "Miami Heat vs New York Knicks, 2026-03-03, 08"
    first = get_games_entry(knicks_1, "c0ffee000001", "NBA", "2026-03-01, 07:30 PM")
    rig = await Rig.start(tmp_path, games={**first, **GAMES},
                          scores={"teams": ["knicks"], "sports": ["Curling"]},
                          rest={"poll": {"games": "1s"}})
    try:
        feed = rig.app.feeds["scores"]
        feed.clock = FakeClock()          # no real wait for upstream's 5 s re-subscribe limit
        conn = await rig.ws.next_connection(10)
        assert (await conn.next_message(10))["filters"] == {"games": [knicks_1]}
        rig.rest.answers["get_games"] = {
            **first, **GAMES,
            **get_games_entry(knicks_2, "c0ffee000002", "NBA", "2026-03-03, 08:00 PM")}
        again = await conn.next_message(10)
        assert again == {"action": "subscribe", "filters": {"games": [knicks_1, knicks_2]}}
        await conn.send(match_update({"preMatch": False, "matchCompleted": False,
                                      "points": {"A": 90, "B": 88}}, game=knicks_1,
                                     uid="c0ffee000001"))
        await conn.send(match_update({"preMatch": False, "matchCompleted": True,
                                      "points": {"A": 101, "B": 99}}, game=knicks_1,
                                     uid="c0ffee000001"))
        after_final = await conn.next_message(10)
        assert after_final["filters"] == {"games": [knicks_2]}
        assert [e.data["status"] for e in rig.of_type("game.status_changed")] == ["final"]
    finally:
        await rig.stop()
    assert "no game in get_games matches the sport 'Curling'" in caplog.text


async def test_a_followed_game_that_starts_later_reports_going_live(tmp_path: Path) -> None:
    later = (datetime.now(UTC) + timedelta(hours=3)).astimezone(EASTERN)
    name = f"Denver Nuggets vs Utah Jazz, {later:%Y-%m-%d}, {later:%I}"
    games = get_games_entry(name, "0dd5e7a1b2c3", "NBA", f"{later:%Y-%m-%d, %I:%M %p}")
    rig = await Rig.start(tmp_path, games=games, scores={"teams": ["Utah Jazz"]},
                          rest={"seed": True})
    try:
        conn = await rig.connection()
        await rig.wait_for(lambda: rig.app.scoreboard.get("0dd5e7a1b2c3"), what="the seed")
        assert rig.rest.calls("match_info") == []          # nothing to ask before the start
        await conn.send(match_update(live(points={"A": 0, "B": 0}, quarter=1), game=name,
                                     uid="0dd5e7a1b2c3"))
        [started] = await rig.wait_for(lambda: rig.of_type("game.status_changed"))
        assert started.data == {"status": "live", "prev_status": "scheduled"}
        assert started.game == name and started.home == "Denver Nuggets"
    finally:
        await rig.stop()


async def test_a_feed_whose_teams_have_no_game_yet_subscribes_once_one_appears(
        tmp_path: Path) -> None:
    rig = await Rig.start(tmp_path, games=GAMES, scores={"teams": ["Knicks"]},
                          rest={"poll": {"games": "1s"}})
    try:
        conn = await rig.ws.next_connection(10)
        knicks = "New York Knicks vs Boston Celtics, 2026-03-01, 07"
        rig.rest.answers["get_games"] = {**GAMES, **get_games_entry(
            knicks, "c0ffee000001", "NBA", "2026-03-01, 07:30 PM")}
        assert await conn.next_message(10) == {"action": "subscribe",
                                               "filters": {"games": [knicks]}}
    finally:
        await rig.stop()


async def test_a_reload_that_chooses_other_teams_resubscribes_on_the_open_socket(
        tmp_path: Path) -> None:
    rig = await Rig.start(tmp_path, games={**GAMES, **OTHER}, scores={"teams": ["Knicks"]})
    try:
        feed = rig.app.feeds["scores"]
        conn = await rig.ws.next_connection(10)
        await rig.wait_for(lambda: feed.connected, what="the connection")
        rig.doc["boltodds"]["scores"]["teams"] = ["Away Team"]
        await rig.reload()
        assert (await conn.next_message(10))["filters"] == {
            "games": ["Home Team vs Away Team, 2026-03-01, 07"]}
        feed.clock = FakeClock()          # no real wait for upstream's 5 s re-subscribe limit
        rig.doc["boltodds"]["scores"]["teams"] = ["Georgia Panthers", "Away Team"]
        await rig.reload()
        assert (await conn.next_message(10))["filters"] == {
            "games": [GEORGIA, "Home Team vs Away Team, 2026-03-01, 07"]}
    finally:
        await rig.stop()
