"""The clients against the BoltOdds API documentation itself.

Every message and answer example of the upstream docs is kept verbatim in
``tests/data/boltodds_docs_examples.txt`` (Python-literal quoting, ``#``
comments and ``...`` elisions included) and served by a scripted loopback
websocket server (``ScriptServer``, not our simulator) or a local HTTP server.
The tests check the requests the clients send and the events a user gets,
plus the upstream quirks the docs do not show: Python-literal frames, numbers
as strings, other timestamp spellings, refusals worded in other ways.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import io
import json
import logging
import re
import tokenize
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import yaml
from helpers_http import Reply
from helpers_odds import KEY, odds_client
from helpers_scores import API_KEY, Rest, Rig, get_games_entry
from helpers_ws import FakeClock, ScriptServer, wait_until

from boltrouter.app import App
from boltrouter.board import implied_prob
from boltrouter.catalogue import Catalogue
from boltrouter.config import load_config
from boltrouter.feeds.rest import RateLimiter, RestClient, RestError
from boltrouter.feeds.ws import FeedFatal, classify_error

EXAMPLES_FILE = Path(__file__).parent / "data" / "boltodds_docs_examples.txt"
_JSON_WORDS = {"null": "None", "true": "True", "false": "False"}


def _sections() -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    name = None
    for line in EXAMPLES_FILE.read_text().splitlines():
        if line.startswith("=== "):
            name = line[4:].strip()
            sections[name] = []
        elif name is not None:
            sections[name].append(line)
    return {k: "\n".join(v) for k, v in sections.items()}


RAW = _sections()


def docs(name: str) -> Any:
    """One docs example as data: ``x =`` prefixes, ``...`` elisions and comments
    dropped, JSON's null/true/false and Python's None/True/False both understood."""
    text = re.sub(r"^\s*\w+\s*=\s*", "", RAW[name])
    kept = [line for line in text.splitlines() if not line.strip().startswith("...")]
    text = re.sub(r",\s*\.\.\.(?=\s*[}\]])", "", "\n".join(kept))
    tokens = [t._replace(string=_JSON_WORDS.get(t.string, t.string))
              if t.type == tokenize.NAME else t
              for t in tokenize.generate_tokens(io.StringIO(text).readline)]
    return ast.literal_eval(tokenize.untokenize(tokens))


METS = "New York Mets vs Los Angeles Angels, 2025-07-23, 01"
MLB_ML = ("New York Mets Moneyline", "Los Angeles Angels Moneyline")


@pytest.fixture
async def server():
    srv = await ScriptServer.start()
    yield srv
    await srv.stop()


async def subscribed(server: ScriptServer):
    conn = await server.next_connection()
    return conn, await conn.next_message()


def key_of(path: str) -> str | None:
    return parse_qs(urlsplit(path).query).get("key", [None])[0]


# -- the odds websocket ---------------------------------------------------------------------

async def test_the_docs_subscribe_message_follows_socket_connected_and_extra_fields_are_kept(
        tmp_path, server):
    server.greeting = {"action": "socket_connected", "plan": "trial", "feed": "odds"}
    filters = docs("SUBSCRIBE_ODDS")["filters"]
    async with odds_client(tmp_path, server.url, subscribe=filters) as client:
        conn, sub = await subscribed(server)
        assert sub == docs("SUBSCRIBE_ODDS")
        assert urlsplit(conn.path).path == "/api" and key_of(conn.path) == KEY
        connected = await client.wait_event("feed.connected")
        assert connected[0].data["info"] == {"plan": "trial", "feed": "odds"}

    # "If you don't want to filter for a certain category, just don't include its key"
    async with odds_client(tmp_path, server.url, subscribe={"sports": ["NBA"]}):
        _, sub = await subscribed(server)
        assert sub == {"action": "subscribe", "filters": {"sports": ["NBA"]}}
    async with odds_client(tmp_path, server.url):
        _, sub = await subscribed(server)
        assert sub == {"action": "subscribe", "filters": {}}


async def test_the_key_is_percent_encoded_and_replaces_one_pasted_into_the_url(
        tmp_path, server, caplog):
    caplog.set_level(logging.DEBUG)
    odd = "k3y+/=&secret-7"
    async with odds_client(tmp_path, server.url + "?key=YOUR_TOKEN", key=odd) as client:
        conn, _ = await subscribed(server)
        assert parse_qs(urlsplit(conn.path).query) == {"key": [odd]}
        conn.abort()
        await client.wait_event("feed.disconnected")
    client_logs = "\n".join(r.getMessage() for r in caplog.records
                            if not r.name.startswith("websockets.server"))
    assert "connected to" in client_logs and "secret-7" not in client_logs
    assert "secret-7" not in json.dumps([e.to_dict() for e in client.events])


async def test_the_docs_odds_messages_become_the_documented_events(tmp_path, server):
    async with odds_client(tmp_path, server.url, clock=FakeClock()) as client:
        conn, _ = await subscribed(server)
        await conn.send(docs("INITIAL_STATE"))
        [added] = await client.wait_event("odds.game_added")
        assert (added.sport, added.sportsbook, added.game, added.home, added.away) == (
            "MLB", "ballybet", METS, "New York Mets", "Los Angeles Angels")
        assert added.time == "2025-07-23T19:45:03.048958+00:00"
        assert added.data["count"] == 2 and added.data["when"] == "2025-07-23, 01:09 PM"
        mets = added.data["outcomes"]["New York Mets Moneyline"]
        assert (mets["odds"], mets["market"], mets["target"], mets["line"]) == (
            "-10000", "Moneyline", "New York Mets", None)
        assert mets["link"].endswith("pickType|3815533797|wagerAmounts|replace")
        assert client.of("odds.line_") == []

        await conn.send(docs("GAME_UPDATE"))
        await client.wait_event("odds.line_changed", 2)
        [updated] = client.of("odds.game_updated")
        assert sorted(updated.data["changed"]) == sorted(MLB_ML)
        moves = {e.data["outcome"]: (e.data["old_odds"], e.data["new_odds"])
                 for e in client.of("odds.line_changed")}
        assert moves == {MLB_ML[0]: ("-10000", "-3333"), MLB_ML[1]: ("+3300", "+900")}

        # line_update is a delta: the Angels line it does not mention stays
        await conn.send(docs("LINE_UPDATE"))
        change = (await client.wait_event("odds.line_changed", 3))[-1]
        assert (change.data["outcome"], change.data["old_odds"], change.data["new_odds"]) == (
            MLB_ML[0], "-3333", "-1250")
        assert change.data["new_prob"] == pytest.approx(implied_prob("-1250"))
        assert change.time == "2025-07-23T19:46:10.023175+00:00"
        assert client.app.board.line("ballybet", METS, MLB_ML[1]).odds == "+900"

        await conn.send(docs("GAME_REMOVED"))
        [removed] = await client.wait_event("odds.game_removed")
        assert removed.game == METS and removed.data["count"] == 2
        assert client.app.board.game("ballybet", METS) is None

        await conn.send(docs("PING"))
        await conn.send(docs("INITIAL_STATE"))
        await client.wait_event("odds.game_added", 2)     # removed, then seen again

        # the docs' error: the feed stays connected and subscribes again after the window
        await conn.send(docs("RESUBSCRIBE_ERROR"))
        again = await conn.next_message()
        assert again["action"] == "subscribe"
        [error] = client.of("feed.error")
        assert error.data["message"] == docs("RESUBSCRIBE_ERROR")["message"]
        await conn.send(docs("SUBSCRIPTION_UPDATED"))
        await client.wait_event("feed.subscribed", 2)
        assert client.of("feed.disconnected") == [] and server.handshakes == 1
        assert client.app.metrics.get("feed_unknown_actions", feed="odds") == 0
        assert client.app.metrics.get("feed_bad_frames", feed="odds") == 0


def other_game(sport: str, book: str, game: str) -> dict[str, Any]:
    msg = docs("INITIAL_STATE")
    home, away = game.split(",")[0].split(" vs ")
    msg["data"].update(sport=sport, sportsbook=book, game=game, home_team=home, away_team=away)
    msg["data"]["info"]["game"] = game
    return msg


async def test_the_docs_clears_with_placeholder_fields_clear_exactly_their_scope(
        tmp_path, server):
    knicks = "New York Knicks vs Boston Celtics, 2025-07-23, 07"
    async with odds_client(tmp_path, server.url) as client:
        conn, _ = await subscribed(server)
        await conn.send([docs("INITIAL_STATE"), other_game("NBA", "ballybet", knicks),
                         other_game("NBA", "draftkings", knicks)])
        await client.wait_event("odds.game_added", 3)

        await conn.send(docs("SPORT_CLEAR"))     # NBA of ballybet
        [sport] = await client.wait_event("odds.sport_cleared")
        assert (sport.sportsbook, sport.sport, sport.data["lines"], sport.data["games"]) == (
            "ballybet", "NBA", 2, 1)
        assert client.app.board.game("draftkings", knicks) is not None
        assert client.app.board.game("ballybet", METS) is not None

        await conn.send(docs("BOOK_CLEAR"))      # everything of ballybet
        [book] = await client.wait_event("odds.book_cleared")
        assert (book.sportsbook, book.data["lines"], book.data["games"]) == ("ballybet", 2, 1)
        assert sorted((b, g) for b, g, _, _ in client.app.board.iter_lines()) == [
            ("draftkings", knicks)] * 2
        assert len(client.of("odds.")) == 5      # 3 added + one event per clear
        assert client.app.metrics.get("feed_bad_frames", feed="odds") == 0


async def test_frames_written_as_the_docs_print_them_or_encoded_twice_are_read(tmp_path, server):
    """The docs print messages as Python literals (single quotes, None, comments);
    some servers encode their JSON twice or put one message a line."""
    server.greeting = RAW["SOCKET_CONNECTED"].strip()
    async with odds_client(tmp_path, server.url) as client:
        conn, _ = await subscribed(server)
        await client.wait_event("feed.connected")
        await conn.send(orjson.dumps(docs("INITIAL_STATE")).decode())
        await client.wait_event("odds.game_added")
        await conn.send(json.dumps(json.dumps(docs("GAME_UPDATE"))))     # JSON encoded twice
        await client.wait_event("odds.line_changed", 2)
        await conn.send("\n".join(json.dumps(m) for m in (docs("PING"), docs("LINE_UPDATE"))))
        await client.wait_event("odds.line_changed", 3)           # one JSON message a line
        await conn.send(RAW["BOOK_CLEAR"].strip())      # "#UTC" comment, {} placeholders
        await conn.send("[" + RAW["SPORT_CLEAR"].strip() + ", {'action': 'ping'}]")
        await client.wait_event("odds.book_cleared")
        await client.wait_event("odds.sport_cleared")
        assert client.app.metrics.get("feed_bad_frames", feed="odds") == 0


async def test_the_basic_examples_list_frames_carry_game_added_and_unknown_actions_harmlessly(
        tmp_path, server):
    giants = "San Francisco Giants vs Philadelphia Phillies, 2025-07-23, 09"
    async with odds_client(tmp_path, server.url) as client:
        conn, _ = await subscribed(server)
        added = other_game("MLB", "ballybet", giants)
        added["action"] = "game_added"
        await conn.send([docs("INITIAL_STATE"), docs("GAME_UPDATE"), docs("PING")])
        await conn.send([{"action": "market_suspended", "data": {}}, added,
                         docs("LINE_UPDATE")])
        await client.wait_event("odds.line_changed", 3)
        assert {e.game for e in client.of("odds.game_added")} == {METS, giants}
        assert client.app.metrics.get("feed_unknown_actions", feed="odds") == 1
        assert client.of("feed.disconnected") == []


async def test_numbers_as_strings_over_spelt_o_other_timestamps_and_missing_fields(
        tmp_path, server):
    async with odds_client(tmp_path, server.url) as client:
        conn, _ = await subscribed(server)
        msg = docs("INITIAL_STATE")
        msg["timestamp"] = 1753299903.048
        msg["data"]["outcomes"] = {
            "Total O 8.5": {"odds": -110, "outcome_name": "Total", "outcome_line": 8.5,
                            "outcome_over_under": "O", "outcome_target": None},
            "Total Under 8.5": {"odds": "-110", "link": None, "outcome_name": "Total",
                                "outcome_line": "8.5", "outcome_over_under": "Under",
                                "outcome_target": None},
        }
        await conn.send(msg)
        [added] = await client.wait_event("odds.game_added")
        assert added.time == "2025-07-23T19:45:03.048+00:00"
        over = added.data["outcomes"]["Total O 8.5"]
        assert (over["odds"], over["line"], over["over_under"]) == ("-110", "8.5", "Over")

        def update(odds: Any, ts: Any) -> dict[str, Any]:
            msg = docs("LINE_UPDATE")
            msg["data"]["outcomes"] = {"Total O 8.5": {"odds": odds, "outcome_name": "Total",
                                                       "outcome_line": "8.5",
                                                       "outcome_over_under": "Over"}}
            msg["data"].update(home_team=None, away_team=None, info=None)
            if ts is None:
                del msg["timestamp"]
            else:
                msg["timestamp"] = ts
            return msg

        await conn.send(update("-110", "2025-07-23 19:46:10"))     # same price as a string
        await conn.send(update("-120", "2025-07-23 19:46:11"))
        await conn.send(update("None", "2025-07-23T19:46:12Z"))
        await conn.send(update("", None))
        await conn.send(update("+100", None))
        await client.wait_event("odds.line_restored")
        link_only = update("+100", None)
        link_only["data"]["outcomes"]["Total O 8.5"] = {"link": "https://book.example/o85"}
        await conn.send(link_only)                                 # no odds key: no news
        await wait_until(lambda: client.app.board.line("ballybet", METS, "Total O 8.5").link
                         == "https://book.example/o85", 5, "the new link")
        lines = client.of("odds.line_")
        assert [(e.type, e.data["old_odds"], e.data["new_odds"]) for e in lines] == [
            ("odds.line_changed", "-110", "-120"),
            ("odds.line_suspended", "-120", None),
            ("odds.line_restored", None, "+100")]
        assert lines[0].time == "2025-07-23T19:46:11.000+00:00"
        assert lines[1].time == "2025-07-23T19:46:12Z"
        assert lines[2].time == lines[2].received
        assert all(e.data["over_under"] == "Over" and e.home == "New York Mets"
                   for e in lines)


# -- refusals -------------------------------------------------------------------------------

@pytest.mark.parametrize("message, kind", [
    (docs("RESUBSCRIBE_ERROR")["message"], "resubscribe"),
    ("Too many concurrent connections.", "overload"),
    ("Maximum number of connections exceeded", "overload"),
    ("Connection rate limit exceeded: 12 per minute", "overload"),
    ("Invalid API key.", "key"),
    ("Authentication failed", "key"),
    ("API key not recognized", "key"),
    ("No API key provided", "key"),
    ("Unauthorized", "key"),
    ("This feature is available to Trial and Custom users.", "plan"),
    ("Your plan does not include play-by-play", "plan"),
    ("Your subscription has expired", "plan"),
    ("Your API key is not authorized for this feed", "key"),
    ("Invalid subscription format", "other"),
    ("Invalid sport: Ice Hockey", "other"),
    ("Invalid message format.", "other"),
])
def test_upstream_error_wordings_are_understood(message: str, kind: str) -> None:
    assert classify_error(message) == kind


async def _refuse(server: ScriptServer, how: str) -> None:
    if how.startswith("http "):
        server.refuse = int(how.split()[1])
        return
    conn, _ = await subscribed(server)
    if how.startswith("close "):
        code, _, reason = how.removeprefix("close ").partition(" ")
        await conn.close(int(code), reason)
    else:
        await conn.send({"action": "error", "message": how})


@pytest.mark.parametrize("how, fatal", [
    ("http 401", "BOLTODDS_API_KEY"),
    ("http 403", "BOLTODDS_API_KEY"),
    ("Invalid API key.", "BOLTODDS_API_KEY"),
    ("close 1008 Invalid API key", "BOLTODDS_API_KEY"),
    ("This feature is available to Trial and Custom users.", "boltodds.odds: false"),
])
async def test_a_refused_key_or_plan_stops_the_feed_with_one_clear_message(
        tmp_path, server, caplog, how: str, fatal: str) -> None:
    async with odds_client(tmp_path, server.url, clock=FakeClock()) as client:
        await _refuse(server, how)
        with pytest.raises(FeedFatal) as info:
            await asyncio.wait_for(client.task, 10)
        assert fatal in str(info.value)
        assert client.of("feed.error")[-1].data["message"] == str(info.value)
        assert server.handshakes == 1
        assert KEY not in caplog.text and KEY not in json.dumps(
            [e.to_dict() for e in client.events])


@pytest.mark.parametrize("how", [
    "http 503", "http 429", "Too many concurrent connections.",
    "Maximum number of connections exceeded", "close 1013 try again later",
    "close 1008 too many connections",
])
async def test_a_refusal_for_too_many_connections_backs_off_at_least_30_seconds(
        tmp_path, server, how: str) -> None:
    async with odds_client(tmp_path, server.url, clock=FakeClock()) as client:
        await _refuse(server, how)
        drop = (await client.wait_event("feed.disconnected"))[0]
        assert drop.data["retry_in"] >= 30
        server.refuse = None
        await subscribed(server)       # and then it does come back


async def test_a_503_asking_to_retry_after_two_minutes_is_obeyed(tmp_path, server) -> None:
    server.refuse, server.refuse_headers = 503, {"Retry-After": "120"}
    async with odds_client(tmp_path, server.url, clock=FakeClock()) as client:
        drop = (await client.wait_event("feed.disconnected"))[0]
        assert drop.data["retry_in"] >= 120 and "retry after 120 s" in drop.data["reason"]


# -- live scores ----------------------------------------------------------------------------

GEORGIA = docs("MATCH_UPDATE")["game"]


async def test_the_docs_match_update_then_changes_with_team_designations_and_string_numbers(
        tmp_path: Path) -> None:
    rig = await Rig.start(tmp_path, games=get_games_entry(
        GEORGIA, "469e868dfa5b", "NCAA Baseball", "2026-02-24, 04:00 PM"),
        scores={"games": [GEORGIA]})
    try:
        conn = await rig.ws.next_connection()
        sub = await conn.next_message()
        expected = docs("SUBSCRIBE_SCORES")
        expected["filters"]["games"] = [GEORGIA]
        assert sub == expected
        assert urlsplit(conn.path).path == "/api/livescores" and key_of(conn.path) == API_KEY

        await conn.send(docs("MATCH_UPDATE"))
        await rig.settle(conn)
        state = rig.app.scoreboard.get("469e868dfa5b")
        assert (state.home_score, state.away_score, state.period, state.status) == (2, 0, 5, "live")
        assert state.possession == "away"            # top of the inning: the away side bats
        assert state.extra["stats"]["inningScores"]["1"] == {"home": 2, "away": 0}
        assert rig.of_type("score.changed") == []    # the first report is the baseline
        # no subscription_updated came: the first data confirms the subscription
        [confirmed] = rig.of_type("feed.subscribed")
        assert confirmed.feed == "scores" and confirmed.data["filters"] == {"games": [GEORGIA]}

        later = docs("MATCH_UPDATE")
        later["state"].update(runs={"A": 3, "B": 0}, totalRunsForTeamA=3, inning=6,
                              topOfInning=False,
                              matchPeriod=["BaseballMatchPeriod", "AT_BOTTOM_6TH_INNING"])
        await conn.send([later])
        [goal] = await rig.wait_for(lambda: rig.of_type("score.changed"))
        assert (goal.data["home_score"], goal.data["away_score"], goal.data["prev_home_score"],
                goal.data["scoring_side"]) == (3, 0, 2, "home")
        assert (goal.game, goal.universal_id, goal.feed, goal.sport) == (
            GEORGIA, "469e868dfa5b", "scores", "NCAA Baseball")
        [period] = rig.of_type("game.period_changed")
        assert (period.data["prev_period"], period.data["period"]) == (5, 6)

        # team names in `designation`, numbers and flags as strings
        named = docs("MATCH_UPDATE")
        named["designation"] = {"A": "Georgia Panthers", "B": "Georgia Yellow Jackets"}
        named["state"].update(runs={"A": "1", "B": "3"}, totalRunsForTeamA="1",
                              totalRunsForTeamB="3", inning="6", preMatch="False",
                              matchPeriod=["BaseballMatchPeriod", "AT_BOTTOM_6TH_INNING"])
        await conn.send(named)
        await rig.wait_for(lambda: len(rig.of_type("score.changed")) == 2)
        last = rig.of_type("score.changed")[-1].data
        assert (last["home_score"], last["away_score"], last["scoring_side"]) == (3, 1, "away")

        final = copy.deepcopy(named)
        final["state"]["matchCompleted"] = "true"
        await conn.send(final)
        [done] = await rig.wait_for(lambda: rig.of_type("game.status_changed"))
        assert (done.data["prev_status"], done.data["status"]) == ("live", "final")
    finally:
        await rig.stop()


# -- play-by-play ---------------------------------------------------------------------------

PBP_GAMES = {
    "26dbab0e7ade": ("Buffalo Bills vs Cincinnati Bengals, 2025-12-07, 01", "NFL",
                     "2025-12-07, 01:00 PM"),
    "e6251db7dbec": ("New York Jets vs Miami Dolphins, 2025-12-07, 01", "NFL",
                     "2025-12-07, 01:00 PM"),
    "08a0bc661896": ("Houston Rockets vs Los Angeles Clippers, 2025-12-11, 08", "NBA",
                     "2025-12-11, 08:00 PM"),
    "d8b78ad82391": ("Sheffield vs Hull City, 2025-12-26, 10", "EFL Championship",
                     "2025-12-26, 10:00 AM"),
    "af76659e4344": ("Portland Trail Blazers vs Dallas Mavericks, 2025-12-29, 10", "NBA",
                     "2025-12-29, 10:00 PM"),
}
PBP_EXAMPLES = ["S1_CURRENT_STATE", "S1_STATS", "S1_LAST_PLAY", "S1_NEW_PLAY", "S2_NEW_PLAY",
                "S2_STATS", "S3_NEW_PLAY", "S3_STATS", "S4_NEW_PLAY"]


async def test_the_docs_play_by_play_streams_1_to_4_become_plays_stats_and_scores(
        tmp_path: Path) -> None:
    games: dict[str, Any] = {}
    for uid, (name, sport, when) in PBP_GAMES.items():
        games.update(get_games_entry(name, uid, sport, when))
    names = [name for name, _, _ in PBP_GAMES.values()]
    rig = await Rig.start(tmp_path, games=games, playbyplay={"games": names, "backoff_max": 0.1})
    try:
        conn = await rig.ws.next_connection()
        sub = await conn.next_message()
        expected = docs("SUBSCRIBE_PLAYBYPLAY")
        expected["filters"]["games"] = names
        assert sub == expected
        assert urlsplit(conn.path).path == "/api/playbyplay" and key_of(conn.path) == API_KEY

        for name in PBP_EXAMPLES:
            await conn.send(docs(name))
        await rig.wait_for(lambda: len(rig.of_type("stats.updated")) == 3
                           and len(rig.of_type("play.new")) == 6, what="every play and stats")

        bills = rig.app.scoreboard.get("26dbab0e7ade")
        assert (bills.home_score, bills.away_score, bills.period, bills.clock,
                bills.possession) == (11, 21, 3, "10:31", "home")
        assert bills.name == PBP_GAMES["26dbab0e7ade"][0]     # joined despite the missing hour
        assert (rig.app.scoreboard.get("08a0bc661896").home_score,
                rig.app.scoreboard.get("af76659e4344").away_score) == (80, 9)

        plays = [(e.universal_id, e.data["stream"], e.data["description"], e.data["backlog"])
                 for e in rig.of_type("play.new")]
        assert plays == [
            ("26dbab0e7ade", 1, "Pass that gains yards: Josh Allen to James Cook, 5 yards", True),
            ("e6251db7dbec", 1, "Rush that gains yards, 1 yard", False),
            ("08a0bc661896", 2, "End of 3rd Quarter.", True),
            ("d8b78ad82391", 3, "DangerStateChanged (Safe) - Hull City", True),
            ("d8b78ad82391", 3, "GoalKick - Hull City", True),
            ("af76659e4344", 4, "Attempt missed - Portland Trail Blazers", False),
        ]
        assert all(e.game == PBP_GAMES[e.universal_id][0] for e in rig.events
                   if e.type in ("play.new", "stats.updated"))
        stats = {e.data["stream"]: e.data["stats"] for e in rig.of_type("stats.updated")}
        assert stats[1]["home_team_stats_first_downs"] == 13
        assert stats[2]["team"]["home"]["rebounds"] == 36
        assert stats[3]["game"]["SHOTS"] == {"home": "0/3", "homePercentage": 0,
                                             "away": "4/7", "awayPercentage": 57}

        # what a reconnect repeats (recent plays, stats snapshots) is nothing new
        conn.abort()
        again = await rig.connection()
        for name in PBP_EXAMPLES:
            await again.send(docs(name))
        await rig.settle(again)
        assert (len(rig.of_type("play.new")), len(rig.of_type("stats.updated"))) == (6, 3)
        assert rig.of_type("score.changed") == []
    finally:
        await rig.stop()


async def test_play_by_play_with_fields_missing_null_or_written_as_strings(
        tmp_path: Path) -> None:
    games: dict[str, Any] = {}
    for uid, (name, sport, when) in PBP_GAMES.items():
        games.update(get_games_entry(name, uid, sport, when))
    rig = await Rig.start(tmp_path, games=games, playbyplay={
        "games": [name for name, _, _ in PBP_GAMES.values()]})
    try:
        conn = await rig.connection()
        state = docs("S1_CURRENT_STATE")
        state.update(game_info=None, field_state=None)
        blazers = docs("S4_NEW_PLAY")
        del blazers["home"], blazers["away"]
        blazers.update(universal_id=None, stream="4")
        bills = docs("S1_LAST_PLAY")
        bills.update(stream="1", play_info={"passer": None, "receiver": {"full_name": None},
                                            "net_yards": "5", "tackler_1": None})
        rockets = docs("S2_NEW_PLAY")
        rockets.update(stream="2", score=None, play_info=[     # recent plays, oldest first
            {"clock": "00:19", "description": "Harden misses a three", "isEndOfPeriod": False},
            {"clock": "00:02", "description": "Sengun makes a layup", "isEndOfPeriod": False},
            {"clock": "00:00", "description": "End of 3rd Quarter.", "isEndOfPeriod": True}])
        for msg in (state, blazers, bills, rockets):
            await conn.send(msg)
        await rig.settle(conn)
        plays = {e.universal_id: e.data for e in rig.of_type("play.new")}
        assert [e.data["description"] for e in rig.of_type("play.new")
                if e.universal_id == "08a0bc661896"] == [
            "Harden misses a three", "Sengun makes a layup", "End of 3rd Quarter."]
        rockets_state = rig.app.scoreboard.get("08a0bc661896")
        assert rockets_state.last_play["description"] == "End of 3rd Quarter."
        assert plays["af76659e4344"]["description"] == "Attempt missed - Portland Trail Blazers"
        assert plays["af76659e4344"]["stream"] == 4
        assert plays["26dbab0e7ade"]["description"] == "Pass that gains yards, 5 yards"
        assert plays["08a0bc661896"]["stream"] == 2 and plays["08a0bc661896"]["backlog"]
        assert rig.app.metrics.get("feed_bad_frames", feed="playbyplay") == 0
    finally:
        await rig.stop()


async def test_feeds_without_a_url_follow_an_odds_socket_moved_to_another_server(
        tmp_path: Path, server) -> None:
    server.http["/api/get_games"] = docs("GET_GAMES")
    doc = {"boltodds": {"api_key": API_KEY, "odds": {"url": server.url, "check_filters": False},
                        "scores": {"games": ["Damian Pinas vs Wes Schultz, 2026-02-28, 05"]}},
           "simulator": {"enabled": "never"}, "summary": {"enabled": "never"},
           "state_dir": str(tmp_path)}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    app = App(load_config(path))
    await app.start()
    try:
        first, second = await server.next_connection(), await server.next_connection()
        paths = sorted(urlsplit(c.path).path for c in (first, second))
        assert paths == ["/api", "/api/livescores"]
        await wait_until(lambda: len(app.catalogue) == 2, 10, "get_games from the same server")
        assert any(p.startswith("/api/get_games?key=") for p in server.http_requests)
    finally:
        await app.stop()


# -- REST -----------------------------------------------------------------------------------

BUCS = next(iter(docs("BOXSCORES")))
BOUZAS = next(iter(docs("MATCH_INFO")))
REST_GAMES = {**docs("GET_GAMES"),
              **get_games_entry(BUCS, "b0c5a7f11e2d", "NFL", "2025-12-11, 08:15 PM"),
              **get_games_entry(BOUZAS, "7e1d0c4b9a33", "WTA", "2026-02-26, 03:00 AM")}


async def test_the_docs_rest_answers_fill_the_catalogue_and_become_events(
        tmp_path: Path) -> None:
    answers = {"get_info": docs("GET_INFO"), "get_markets": docs("GET_MARKETS"),
               "get_parlays": docs("GET_PARLAYS"), "boxscores": docs("BOXSCORES"),
               "match_stats": docs("MATCH_STATS"), "match_info": docs("MATCH_INFO")}
    rig = await Rig.start(tmp_path, games=REST_GAMES, answers=answers, rest={
        "rate_limit": {"per_minute": 6000, "burst": 100},
        "poll": {"games": "1h", "parlays": {"sportsbooks": ["draftkings"], "every": "1h"},
                 "boxscores": {"games": [BUCS], "every": "1h"},
                 "match_stats": {"games": [BOUZAS], "every": "1h"},
                 "match_info": {"games": [BOUZAS], "every": "1h"}}})
    rest = rig.rest
    try:
        kinds = ("boxscore.updated", "match.stats_updated", "match.info_updated",
                 "parlay.updated")
        await rig.wait_for(lambda: all(rig.of_type(k) for k in kinds), what="every poller")

        ufc = rig.app.catalogue.resolve("Damian Pinas vs Wes Schultz, 2026-02-28, 05")
        assert (ufc.universal_id, ufc.sport, ufc.home, ufc.away, ufc.start) == (
            "af418396d57c", "UFC", "Damian Pinas", "Wes Schultz", "2026-02-28T22:15:00.000+00:00")

        for endpoint, request in (("boxscores", "BOXSCORES_REQUEST"),
                                  ("match_stats", "MATCH_STATS_REQUEST"),
                                  ("match_info", "MATCH_INFO_REQUEST")):
            [call] = rest.calls(endpoint)
            assert call.method == "POST" and call.json() == docs(request)
            assert key_of(call.path) == API_KEY
        [parlays] = rest.calls("get_parlays")
        assert parse_qs(urlsplit(parlays.path).query) == {"sportsbooks": ["draftkings"],
                                                          "key": [API_KEY]}
        assert rest.calls("get_games")[0].method == "GET"

        [box] = rig.of_type("boxscore.updated")
        assert (box.data["home_score"], box.data["away_score"], box.data["clock"],
                box.data["possession"], box.data["status"]) == (13, 14, "Halftime", "away", "live")
        assert (box.game, box.universal_id, box.home) == (BUCS, "b0c5a7f11e2d",
                                                          "Tampa Bay Buccaneers")
        assert box.data["boxscore"]["players"][0]["stats"]["passYards"] == "156"
        [stats] = rig.of_type("match.stats_updated")
        assert stats.data["stats"]["Double Faults"] == {"home": 1, "away": 1}
        assert stats.data["stats"]["1st Serve Pts. Won"] == {"home": "8/9/17", "away": "12/8/20"}
        [info] = rig.of_type("match.info_updated")
        assert (info.data["status"], info.data["period"], info.data["home_score"],
                info.data["away_score"]) == ("live", 2, 0, 1)
        [parlay] = rig.of_type("parlay.updated")
        assert parlay.sportsbook == "draftkings" and parlay.data["count"] == 1
        assert len(parlay.data["parlays"][0]["legs"]) == 4

        async with RestClient(rest.url, API_KEY, limiter=RateLimiter(6000, 100)) as client:
            assert await client.get_info() == docs("GET_INFO")
            markets = await client.get_markets(["draftkings"], ["UFC"])
            rest.answers["get_games"] = list(REST_GAMES.values())    # entries without keys
            assert await client.get_games() == REST_GAMES
            # the answer printed as the docs print it (single quotes, True/False/None)
            rest.answers["match_info"] = Reply(200, RAW["MATCH_INFO"].replace(
                "...,\n", "").replace("...\n", "").replace(",...}", "}").encode())
            assert await client.match_info([BOUZAS]) == docs("MATCH_INFO")
        assert markets["draftkings"]["UFC"][0] == "Fight To Not Start R3"
        query = parse_qs(urlsplit(rest.calls("get_markets")[-1].path).query)
        assert (query["sportsbooks"], query["sports"]) == (["draftkings"], ["UFC"])
    finally:
        await rig.stop()


async def test_an_empty_get_games_answer_does_not_forget_every_game(tmp_path: Path) -> None:
    rig = await Rig.start(tmp_path, games=docs("GET_GAMES"), rest={
        "poll": {"games": "1s"}, "rate_limit": {"per_minute": 6000, "burst": 100}})
    try:
        await rig.wait_for(lambda: len(rig.app.catalogue) == 2, what="the catalogue")
        rig.rest.answers["get_games"] = {"message": "No games available"}
        polls = len(rig.rest.calls("get_games"))
        await rig.wait_for(lambda: len(rig.rest.calls("get_games")) >= polls + 2,
                           what="two more get_games polls")
        assert len(rig.app.catalogue) == 2
    finally:
        await rig.stop()


async def test_errors_sent_with_status_200_are_errors_and_empty_answers_are_no_data() -> None:
    rest = Rest().start()
    try:
        rest.answers["get_games"] = {"error": f"Invalid API key: {API_KEY}"}
        rest.answers["get_info"] = {"error": "Rate limit exceeded"}
        rest.answers["boxscores"] = Reply(200, b"")
        rest.answers["match_info"] = {"message": "No match info available"}
        async with RestClient(rest.url, API_KEY, retries=1, backoff_base=0.01,
                              limiter=RateLimiter(6000, 100)) as client:
            with pytest.raises(RestError) as refused:
                await client.get_games()
            assert "BOLTODDS_API_KEY" in str(refused.value) and API_KEY not in str(refused.value)
            with pytest.raises(RestError, match="failed after 2 attempts: rate limited"):
                await client.get_info()
            assert await client.boxscores([BUCS]) == {}
            assert await client.match_info([BOUZAS]) == {}
        assert len(rest.calls("get_games")) == 1 and len(rest.calls("get_info")) == 2
    finally:
        rest.stop()



@pytest.mark.parametrize("spelling", [
    "Damian Pinas vs Wes Schultz, 2026-02-28, 05",        # as get_games writes it
    "damian pinas  VS wes schultz, 2026-02-28, 05",       # case and spacing
    "Damian Pinas vs. Wes Schultz, 2026-02-28",           # 'vs.' and no hour suffix
    "Wes Schultz vs Damian Pinas, 2026-02-28, 05",        # home and away swapped
    "Damian Pinas vs Wes Schultz",                        # teams only
])
def test_game_name_variants_resolve_to_the_get_games_entry(spelling: str) -> None:
    catalogue = Catalogue()
    catalogue.update(docs("GET_GAMES"))
    ref = catalogue.resolve(spelling)
    assert ref is not None and ref.universal_id == "af418396d57c"


def test_a_late_eastern_game_named_with_its_utc_date_is_found() -> None:
    catalogue = Catalogue()
    catalogue.update(get_games_entry("Erik Silva vs Francis Marshall, 2026-02-28, 11",
                                     "144fb6386df6", "UFC", "2026-02-28, 11:45 PM"))
    [ref] = catalogue.games.values()
    assert ref.start == "2026-03-01T04:45:00.000+00:00"       # US Eastern -> UTC
    assert catalogue.resolve("Erik Silva vs Francis Marshall, 2026-03-01") is ref
