"""One game across every feed: the catalogue joins the spellings, the scoreboard turns
reports into score, status and period events once each, and a route on one game's
score changes fires exactly once per change, end to end against the simulator."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import yaml
from helpers_ws import wait_until

from boltrouter.app import App
from boltrouter.catalogue import Catalogue
from boltrouter.config import load_config
from boltrouter.events import Event
from boltrouter.scoreboard import Scoreboard, ScoreUpdate
from boltrouter.simulator import SimulatorServer

GET_GAMES = {
    "New York Knicks vs Boston Celtics, 2025-12-07, 09": {
        "when": "2025-12-07, 09:30 PM", "game": "New York Knicks vs Boston Celtics, 2025-12-07, 09",
        "orig_teams": "New York Knicks vs Boston Celtics", "universal_id": "k1c1", "sport": "NBA"},
    "New York Mets vs Atlanta Braves, 2025-07-23, 01": {
        "when": "2025-07-23, 01:09 PM", "game": "New York Mets vs Atlanta Braves, 2025-07-23, 01",
        "orig_teams": "New York Mets vs Atlanta Braves", "universal_id": "mets1", "sport": "MLB"},
    "New York Mets vs Atlanta Braves, 2025-07-23, 07": {
        "when": "2025-07-23, 07:10 PM", "game": "New York Mets vs Atlanta Braves, 2025-07-23, 07",
        "orig_teams": "New York Mets vs Atlanta Braves", "universal_id": "mets2", "sport": "MLB"},
    "Buffalo Bills vs Cincinnati Bengals, 2025-12-07, 01": {
        "when": "2025-12-07, 01:00 PM", "game": "Buffalo Bills vs Cincinnati Bengals, 2025-12-07, 01",
        "orig_teams": "Buffalo Bills vs Cincinnati Bengals", "universal_id": "26dbab0e7ade",
        "sport": "NFL"},
    "not an entry": 17,
}


def catalogue() -> Catalogue:
    cat = Catalogue()
    cat.update(GET_GAMES)
    return cat


# -- the catalogue ------------------------------------------------------------------------

def test_every_spelling_of_a_game_resolves_to_the_same_universal_id() -> None:
    cat = catalogue()
    spellings = [
        "New York Knicks vs Boston Celtics, 2025-12-07, 09",       # as get_games
        "new york knicks  VS boston celtics, 2025-12-07, 09",      # case and spacing
        "New York Knicks vs. Boston Celtics, 2025-12-07, 09",      # "vs."
        "New York Knicks vs Boston Celtics, 2025-12-07",           # no hour suffix
        "Boston Celtics vs New York Knicks, 2025-12-07",           # home and away swapped
        "New York Knicks vs Boston Celtics, 2025-12-08, 02",       # the UTC date and hour
        "New York Knicks vs Boston Celtics",                       # teams only
    ]
    for name in spellings:
        ref = cat.resolve(name)
        assert ref is not None and ref.universal_id == "k1c1", name
    assert cat.resolve("New York Knicks vs Boston Celtics, 2025-12-01") is None
    assert cat.resolve("Someone vs Someone Else, 2025-12-07") is None
    assert cat.resolve(None, universal_id="26dbab0e7ade").name.startswith("Buffalo Bills")
    assert len(cat) == 4                                           # the bad entry is skipped


def test_a_double_header_is_told_apart_by_the_hour() -> None:
    cat = catalogue()
    assert cat.resolve("New York Mets vs Atlanta Braves, 2025-07-23, 01").universal_id == "mets1"
    assert cat.resolve("New York Mets vs Atlanta Braves, 2025-07-23, 07").universal_id == "mets2"
    assert cat.resolve("New York Mets vs Atlanta Braves, 2025-07-23, 06").universal_id == "mets2"


def test_start_times_are_eastern_wall_clock_turned_into_utc() -> None:
    cat = catalogue()
    assert cat.games["k1c1"].start == "2025-12-08T02:30:00.000+00:00"     # EST, UTC-5
    assert cat.games["mets1"].start == "2025-07-23T17:09:00.000+00:00"    # EDT, UTC-4
    knicks = cat.games["k1c1"]
    assert (knicks.home, knicks.away, knicks.sport) == ("New York Knicks", "Boston Celtics", "NBA")


def test_games_are_chosen_by_team_or_sport_and_the_choice_follows_the_catalogue() -> None:
    cat = catalogue()
    changes: list[tuple[list[str], list[str]]] = []
    cat.add_listener(lambda added, removed: changes.append(
        ([r.universal_id for r in added], [r.universal_id for r in removed])))
    assert [r.universal_id for r in cat.select(teams=["mets"])] == ["mets1", "mets2"]
    assert cat.select(teams=["york"]) and cat.select(teams=["ork"]) == []   # whole words only
    assert [r.universal_id for r in cat.select(sports=["nfl"], teams=["Knicks"])] == [
        "26dbab0e7ade", "k1c1"]
    later = {k: v for k, v in GET_GAMES.items() if k != "New York Mets vs Atlanta Braves, 2025-07-23, 01"}
    later["New York Knicks vs Miami Heat, 2025-12-09, 07"] = {
        "when": "2025-12-09, 07:30 PM", "game": "New York Knicks vs Miami Heat, 2025-12-09, 07",
        "orig_teams": "New York Knicks vs Miami Heat", "universal_id": "k2", "sport": "NBA"}
    cat.update(later)
    assert changes == [(["k2"], ["mets1"])]
    assert [r.universal_id for r in cat.select(teams=["knicks"])] == ["k1c1", "k2"]
    cat.update(later)
    assert len(changes) == 1                                       # nothing new: no call


# -- the scoreboard -----------------------------------------------------------------------

def report(feed: str, home: int | None = None, away: int | None = None, **kw: Any) -> ScoreUpdate:
    return ScoreUpdate(feed=feed, game=kw.pop("game", "New York Knicks vs Boston Celtics, 2025-12-07"),
                       home_score=home, away_score=away, **kw)


def kinds(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def test_two_feeds_reporting_the_same_basket_give_one_score_change() -> None:
    board = Scoreboard(catalogue())
    assert board.apply(report("scores", 10, 8, status="live", period=1)) == []
    assert board.apply(report("playbyplay", 10, 8, game="Boston Celtics vs New York Knicks")) == []
    [event] = board.apply(report("playbyplay", 13, 8))
    assert board.apply(report("scores", 13, 8)) == []
    assert event.data == {"home_score": 13, "away_score": 8, "prev_home_score": 10,
                          "prev_away_score": 8, "scoring_side": "home", "correction": False,
                          "period": 1, "clock": None, "status": "live"}
    assert (event.universal_id, event.home, event.away, event.sport, event.game) == (
        "k1c1", "New York Knicks", "Boston Celtics", "NBA",
        "New York Knicks vs Boston Celtics, 2025-12-07, 09")


def test_a_lagging_feed_never_makes_the_score_jump_back() -> None:
    board = Scoreboard(catalogue())
    board.apply(report("scores", 0, 0, status="live"))
    board.apply(report("playbyplay", 0, 0))
    assert kinds(board.apply(report("scores", 2, 0))) == ["score.changed"]
    assert kinds(board.apply(report("scores", 5, 0))) == ["score.changed"]
    assert board.apply(report("playbyplay", 2, 0)) == []           # behind: ignored
    assert board.apply(report("playbyplay", 5, 0)) == []           # caught up: nothing new
    assert board.get("k1c1").home_score == 5
    [fix] = board.apply(report("scores", 2, 0))                    # the feed corrects itself
    assert fix.data["correction"] is True and fix.data["prev_home_score"] == 5


def test_status_and_period_change_only_forward_and_only_once() -> None:
    board = Scoreboard(catalogue())
    assert board.apply(report("rest", status="scheduled")) == []
    [live] = board.apply(report("scores", 0, 0, status="live", period=1))
    assert live.data == {"status": "live", "prev_status": "scheduled"}
    assert board.apply(report("playbyplay", status="live", period=1)) == []
    [second] = board.apply(report("scores", status="live", period=2))
    assert second.data == {"period": 2, "prev_period": 1}
    assert board.apply(report("playbyplay", period=2)) == []
    [final] = board.apply(report("playbyplay", status="final"))
    assert board.apply(report("scores", status="live")) == []      # never back from final
    assert final.data["prev_status"] == "live" and board.get("k1c1").status == "final"


def test_the_same_change_always_gets_the_same_event_id() -> None:
    ids = []
    for _ in range(2):
        board = Scoreboard(catalogue())
        board.apply(report("scores", 1, 1, status="live"))
        ids.append(board.apply(report("scores", 2, 1, time="2025-12-08T03:00:00+00:00"))[0].id)
    assert ids[0] == ids[1]


def test_a_goal_taken_back_and_scored_again_is_a_new_event_with_a_new_id() -> None:
    board = Scoreboard(catalogue())
    board.apply(report("scores", 1, 0, status="live"))
    goal = board.apply(report("scores", 2, 0))
    taken_back = board.apply(report("scores", 1, 0))
    again = board.apply(report("scores", 2, 0))
    assert [len(goal), len(taken_back), len(again)] == [1, 1, 1]
    assert taken_back[0].data["correction"] is True and again[0].data["correction"] is False
    assert len({goal[0].id, taken_back[0].id, again[0].id}) == 3


def test_a_game_missing_from_the_catalogue_is_kept_under_its_own_name() -> None:
    board = Scoreboard(catalogue())
    board.apply(ScoreUpdate(feed="scores", game="Unknown FC vs Nobody United, 2025-12-07, 03",
                            universal_id="zz9", home="Unknown FC", away="Nobody United",
                            home_score=1, away_score=0))
    [event] = board.apply(report("scores", 1, 1, universal_id="zz9"))
    assert (event.universal_id, event.home, event.data["scoring_side"]) == (
        "zz9", "Unknown FC", "away")


# -- end to end against the simulator -----------------------------------------------------

async def test_a_route_on_one_games_score_fires_once_per_change_across_feeds(
        tmp_path: Path) -> None:
    sim = SimulatorServer({"seed": 7, "games": 16, "updates_per_second": 20,
                           "clear_every": 0, "connects_per_minute": 0})
    await sim.start()
    sim.pause()
    game = next(g for g in sim.world.games.values()
                if g.status == "live" and g.stream in (2, 3) and g.designation["A"] == "away")
    doc = {
        "boltodds": {
            "api_key": "k-sim-7c1d44e0a9",
            "odds": {"url": sim.url_for("odds"), "subscribe": {"sports": [game.sport]}},
            "scores": {"url": sim.url_for("scores"), "teams": [game.home]},
            "playbyplay": {"url": sim.url_for("playbyplay"), "sports": [game.sport]},
            "rest": {"url": sim.url_for("rest")},
        },
        "simulator": {"enabled": "never"}, "summary": {"enabled": "never"},
        "state_dir": str(tmp_path),
        "sinks": {"archive": {"type": "sqlite", "path": str(tmp_path / "db.sqlite")},
                  "alerts": {"type": "csv", "path": str(tmp_path / "alerts.csv"),
                             "fields": ["id", "game", "data.home_score", "data.away_score"]}},
        "routes": [{"name": "game-x", "when": {"type": "score.changed", "game": game.name},
                    "to": "alerts"},
                   {"name": "archive", "when": {"type": "*"}, "to": "archive"}],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    app = App(load_config(path))
    events: list[Event] = []
    app.taps.append(lambda event, routes: events.append(event))
    board = app.scoreboard
    await app.start()
    try:
        await wait_until(lambda: all(
            any(s.subscribed and s.wants_game(game.name) for s in sim.sessions[f])
            for f in ("scores", "playbyplay")), 20, "both score feeds to follow the game")
        await wait_until(lambda: board.get(game.uid) and board.get(game.uid).home_score
                         is not None, 20, "the seed from match_info or the recent plays")
        start = (game.score["home"], game.score["away"])
        assert (board.get(game.uid).home_score, board.get(game.uid).away_score) == start
        steps = [(start[0] + 1, start[1]), (start[0] + 1, start[1] + 1),
                 (start[0] + 2, start[1] + 1)]
        for n, (home, away) in enumerate(steps, 1):
            sim.force_score(game.name, home, away, reprice=False)
            await wait_until(lambda h=home, a=away: all(
                board.last_reported(game.uid, f) == (h, a) for f in ("scores", "playbyplay")),
                20, f"both feeds to report {home}-{away}")
            assert len([e for e in events if e.type == "score.changed"]) == n
        changes = [e for e in events if e.type == "score.changed"]
        assert [(e.data["home_score"], e.data["away_score"]) for e in changes] == steps
        assert [e.data["scoring_side"] for e in changes] == ["home", "away", "home"]
        joined = {(e.universal_id, e.game, e.home, e.away, e.sport) for e in events
                  if e.universal_id == game.uid}
        assert joined == {(game.uid, game.name, game.home, game.away, game.sport)}
        feeds = {e.feed for e in events if e.universal_id == game.uid}
        assert {"odds", "playbyplay"} <= feeds and feeds & {"scores", "playbyplay"}
    finally:
        await app.stop()
        await sim.stop()
    with open(tmp_path / "alerts.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["data.home_score"], r["data.away_score"]) for r in rows] == [
        (str(h), str(a)) for h, a in steps]
    db = sqlite3.connect(tmp_path / "db.sqlite")
    stored = db.execute("SELECT count(*) FROM events WHERE type = 'score.changed' "
                        "AND universal_id = ?", (game.uid,)).fetchone()[0]
    current = db.execute("SELECT home, away, home_score, away_score, status FROM scores_current "
                         "WHERE universal_id = ?", (game.uid,)).fetchone()
    db.close()
    assert stored == 3
    assert current == (game.home, game.away, steps[-1][0], steps[-1][1], "live")


def test_a_long_running_scoreboard_forgets_old_finished_games_only(monkeypatch: Any) -> None:
    monkeypatch.setattr("boltrouter.scoreboard.MAX_GAMES", 10)
    board = Scoreboard(Catalogue())
    for i in range(10):
        board.apply(ScoreUpdate(feed="scores", universal_id=f"g{i}", home_score=0,
                                away_score=i, status="final" if i % 2 else "live",
                                time=f"2025-12-07T18:{i:02d}:00+00:00"))
    board.apply(ScoreUpdate(feed="scores", universal_id="new", home_score=1, away_score=0))
    assert "new" in board.states
    assert {"g0", "g2", "g4", "g6", "g8"} <= set(board.states)      # live games stay
    assert not {"g1", "g3"} & set(board.states)                      # oldest finished go
    assert {"g7", "g9"} <= set(board.states)
