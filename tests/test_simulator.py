"""The built-in simulator: the real odds client against it on loopback, its faults, its
protocol rules, its REST endpoints, and determinism for a seed."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from helpers_odds import odds_client
from helpers_ws import FakeClock, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from boltrouter.board import normalize_odds
from boltrouter.feeds.rest import RateLimiter, RestClient, RestError
from boltrouter.feeds.scoreshapes import parse_boxscore, parse_match_info
from boltrouter.feeds.ws import FeedFatal
from boltrouter.simulator import SimulatorServer, World

QUIET = {"seed": 11, "games": 6, "speed": 0.0, "updates_per_second": 0.0, "clear_every": 0.0,
         "tick": 0.02}
"""A world where nothing moves by itself: every change in a test is forced."""


@pytest.fixture
async def quiet_sim():
    sim = await SimulatorServer(QUIET).start()
    yield sim
    await sim.stop()


def first_line(sim: SimulatorServer, book: str | None = None) -> tuple[str, str, str]:
    """(book, game, outcome key) of a line the world offers."""
    for (b, game), outcomes in sorted(sim.world.lines.items()):
        if book is None or b == book:
            return b, game, sorted(outcomes)[0]
    raise AssertionError("the simulated world has no lines")


def board_matches_world(board, world, books=None, markets=None) -> list[str]:
    """Differences between the client's board and the simulator's lines (empty = equal)."""
    problems = []
    expected = {}
    for (book, game), outcomes in world.lines.items():
        if books is not None and book not in books:
            continue
        for key, o in outcomes.items():
            if markets is None or o["outcome_name"] in markets:
                expected[(book, game, key)] = normalize_odds(o["odds"])
    seen = {(book, game, key): line.odds for book, game, key, line in board.iter_lines()}
    for k in expected.keys() - seen.keys():
        problems.append(f"missing on the board: {k}")
    for k in seen.keys() - expected.keys():
        problems.append(f"on the board but not offered: {k}")
    for k in expected.keys() & seen.keys():
        if expected[k] != seen[k]:
            problems.append(f"{k}: board {seen[k]!r}, world {expected[k]!r}")
    return problems


async def marker(sim: SimulatorServer, client, book: str, game: str, key: str,
                 odds: str = "+9900") -> None:
    """Force one line change and wait until the client saw it: everything sent before
    it has been applied too."""
    sim.force_line_update(book, game, key, odds)
    await wait_until(lambda: any(e.data.get("outcome") == key and e.data.get("new_odds") == odds
                                 and e.sportsbook == book for e in client.events),
                     10, "the marker line update")


async def test_the_initial_state_is_the_world_seen_through_the_subscribe_filters(
        tmp_path, quiet_sim):
    books, markets = ["draftkings", "pinnacle"], ["Moneyline", "Total"]
    expected_games = {(b, g) for (b, g), o in quiet_sim.world.lines.items()
                      if b in books and any(x["outcome_name"] in markets for x in o.values())}
    async with odds_client(tmp_path, quiet_sim.url_for("odds"),
                           subscribe={"sportsbooks": books, "markets": markets}) as client:
        await client.wait_event("odds.game_added", len(expected_games))
        assert {(e.sportsbook, e.game) for e in client.of("odds.game_added")} == expected_games
        assert board_matches_world(client.app.board, quiet_sim.world, books, markets) == []
        assert client.of("odds.line_") == []


async def test_the_board_follows_a_lively_world_exactly(tmp_path):
    options = {"seed": 5, "games": 10, "updates_per_second": 400.0, "speed": 120.0,
               "clear_every": 0.0, "tick": 0.02}
    async with SimulatorServer(options) as sim, \
            odds_client(tmp_path, sim.url_for("odds")) as client:
        frames: list[str] = []
        client.app.recorder = lambda feed, raw, received: frames.append(raw)
        await client.wait_event("odds.game_added")
        await wait_until(lambda: len(client.of("odds.line_")) >= 300, 20, "300 line events")
        sim.pause()
        book, game, key = first_line(sim)
        await marker(sim, client, book, game, key)
        assert board_matches_world(client.app.board, sim.world) == []
        kinds = {e.type for e in client.events}
        assert {"odds.line_changed", "odds.game_added"} <= kinds
        assert {frame[0] for frame in frames} == {"[", "{"}     # lists and single objects
        assert client.app.metrics.get("feed_bad_frames", feed="odds") == 0


async def test_a_reconnect_after_a_drop_with_the_same_world_emits_no_odds_events(
        tmp_path, quiet_sim):
    async with odds_client(tmp_path, quiet_sim.url_for("odds")) as client:
        await wait_until(lambda: len(client.app.board) == sum(
            len(o) for o in quiet_sim.world.lines.values()), 10, "the initial state")
        before = len(client.odds_events())
        assert quiet_sim.drop_connections("odds") == 1
        await client.wait_event("feed.connected", 2)
        # the marker must come after the new snapshot: a line forced before the simulator
        # took the new subscribe would come back inside the snapshot (odds.game_updated)
        await wait_until(lambda: [s.subscribed for s in quiet_sim.sessions["odds"]] == [True],
                         10, "the new connection subscribed")
        book, game, key = first_line(quiet_sim)
        await marker(quiet_sim, client, book, game, key)
        after = client.odds_events()[before:]
        assert [(e.type, e.data["outcome"]) for e in after] == [("odds.line_changed", key)]
        assert len(client.of("feed.disconnected")) == 1


async def test_a_reconnect_after_a_drop_with_a_changed_world_emits_exactly_the_changes(
        tmp_path, quiet_sim):
    async with odds_client(tmp_path, quiet_sim.url_for("odds")) as client:
        total = sum(len(o) for o in quiet_sim.world.lines.values())
        await wait_until(lambda: len(client.app.board) == total, 10, "the initial state")
        before = len(client.odds_events())
        book, game, key = first_line(quiet_sim, "fanduel")
        other = sorted(quiet_sim.world.lines[(book, game)])[1]
        world = quiet_sim.world
        world.force_line(book, world.games[game], key, "+4000")      # changed while away
        world.force_line(book, world.games[game], other, "None")     # suspended while away
        quiet_sim.drop_connections("odds")
        await client.wait_event("feed.connected", 2)
        await wait_until(lambda: len(client.odds_events()) >= before + 3, 10, "the differences")
        m_book, m_game, m_key = first_line(quiet_sim, "draftkings")
        await marker(quiet_sim, client, m_book, m_game, m_key)
        after = [(e.type, e.sportsbook, e.game, e.data.get("outcome"))
                 for e in client.odds_events()[before:]]
        assert sorted(after[:-1]) == sorted([
            ("odds.game_updated", book, game, None),
            ("odds.line_changed", book, game, key),
            ("odds.line_suspended", book, game, other)])
        assert board_matches_world(client.app.board, world) == []


async def test_changing_the_filters_on_a_live_connection_swaps_exactly_the_subscribed_games(
        tmp_path):
    async with SimulatorServer({**QUIET, "resubscribe_window": 0.2}) as sim:
        world = sim.world
        sports = sorted({g.sport for g in world.games.values() if g.odds_open})
        first, second = sports[0], sports[1]

        def pairs(sport: str) -> set[tuple[str, str]]:
            return {(b, g) for (b, g) in world.lines if world.games[g].sport == sport}

        async with odds_client(tmp_path, sim.url_for("odds"),
                               subscribe={"sports": [first]}) as client:
            client.feed.resubscribe_interval = 0.2
            await client.wait_event("odds.game_added", len(pairs(first)))
            options = dict(client.feed.options)
            options["subscribe"] = {"sports": [second]}
            await client.feed.reconfigure(options)
            await client.wait_event("feed.subscribed", 2)
            await client.wait_event("odds.game_added", len(pairs(first)) + len(pairs(second)))
            book, game = sorted(pairs(second))[0]
            await marker(sim, client, book, game, sorted(world.lines[(book, game)])[0])
            removed = {(e.sportsbook, e.game) for e in client.of("odds.game_removed")}
            assert removed == pairs(first)
            assert {(b, g) for b, g, _, _ in client.app.board.iter_lines()} == pairs(second)
            assert sim.connects == 1


async def test_filter_values_the_simulator_does_not_know_are_warned_about(
        tmp_path, quiet_sim, caplog):
    caplog.set_level(logging.INFO, logger="boltrouter")
    subscribe = {"sports": ["NBA", "Premier League"], "sportsbooks": ["draftkings"],
                 "markets": ["Moneyline", "Run Line", "Moneyline (3-way)"]}
    async with odds_client(tmp_path, quiet_sim.url_for("odds"), check_filters=True,
                           subscribe=subscribe, simulator=quiet_sim) as client:
        await wait_until(lambda: client.feed._check_task is not None
                         and client.feed._check_task.done(), 10, "the filter check")
        problems = client.feed._check_task.result()
    assert len(problems) == 2
    assert "'Premier League' is not a sport BoltOdds knows" in problems[0]
    assert "'Moneyline (3-way)' is not a market BoltOdds knows" in problems[1]
    assert "did you mean 'Moneyline'" in problems[1]
    assert all(p in caplog.text for p in problems)


async def test_a_sport_clear_is_one_event_and_unchanged_lines_come_back_silently(
        tmp_path, quiet_sim):
    async with odds_client(tmp_path, quiet_sim.url_for("odds")) as client:
        world = quiet_sim.world
        total = sum(len(o) for o in world.lines.values())
        await wait_until(lambda: len(client.app.board) == total, 10, "the initial state")
        book, game, _ = first_line(quiet_sim, "draftkings")
        sport = world.games[game].sport
        games = {g for (b, g) in world.lines if b == book and world.games[g].sport == sport}
        lines = sum(len(world.lines[(book, g)]) for g in games)
        before = len(client.odds_events())
        quiet_sim.force_clear(book, sport, readd_after=0.1)
        cleared = (await client.wait_event("odds.sport_cleared"))[0]
        assert cleared.data["lines"] == lines and cleared.data["games"] == len(games)
        await wait_until(lambda: len(client.app.board) == total, 10, "the lines to come back")
        after = client.odds_events()[before:]
        assert [e.type for e in after].count("odds.sport_cleared") == 1
        assert {e.game for e in after if e.type == "odds.game_added"} == games
        assert [e for e in after if e.type.startswith("odds.line_")] == []

        book_lines = sum(len(o) for (b, _), o in world.lines.items() if b == book)
        quiet_sim.force_clear(book, None, readd_after=-1)
        whole = (await client.wait_event("odds.book_cleared"))[0]
        assert whole.data["lines"] == book_lines
        assert all(b != book for b, _, _, _ in client.app.board.iter_lines())
        assert board_matches_world(client.app.board, world) == []


async def test_every_suspended_spelling_from_the_simulator_is_one_suspension(tmp_path, quiet_sim):
    async with odds_client(tmp_path, quiet_sim.url_for("odds")) as client:
        await client.wait_event("odds.game_added")
        book, game, key = first_line(quiet_sim)
        for spelling in (None, "", "None"):
            quiet_sim.force_line_update(book, game, key, spelling)
        await marker(quiet_sim, client, book, game, key, "+333")
        kinds = [e.type for e in client.of("odds.line_")]
        assert kinds == ["odds.line_suspended", "odds.line_restored"]


async def test_garbage_unknown_actions_and_a_20_mib_frame_do_not_break_the_connection(
        tmp_path, quiet_sim):
    async with odds_client(tmp_path, quiet_sim.url_for("odds")) as client:
        total = sum(len(o) for o in quiet_sim.world.lines.values())
        await wait_until(lambda: len(client.app.board) == total, 10, "the initial state")
        before = len(client.odds_events())
        quiet_sim.send_garbage("invalid_json")
        quiet_sim.send_garbage("junk_list")
        quiet_sim.send_garbage("unknown_action")
        size = quiet_sim.send_garbage("huge", size_mib=20)
        assert size >= 20 * 1024 * 1024
        book, game, key = first_line(quiet_sim)
        await marker(quiet_sim, client, book, game, key)
        assert len(client.odds_events()) == before + 1     # the huge frame repeated known lines
        metrics = client.app.metrics
        # truncated JSON + 4 list items that are not objects; 3 objects without a known action
        assert metrics.get("feed_bad_frames", feed="odds") == 5
        assert metrics.get("feed_unknown_actions", feed="odds") == 3
        assert quiet_sim.connects == 1 and client.of("feed.disconnected") == []


async def test_a_stalled_simulator_is_detected_as_a_dead_socket(tmp_path, quiet_sim):
    async with odds_client(tmp_path, quiet_sim.url_for("odds"), dead_after=1,
                           connect_timeout=1) as client:
        await client.wait_event("feed.connected")
        quiet_sim.stall(1.0, "odds")
        drop = (await client.wait_event("feed.disconnected"))[0]
        assert "nothing received" in drop.data["reason"]
        await client.wait_event("feed.connected", 2)


async def test_a_refused_handshake_with_503_backs_off_then_connects(tmp_path, quiet_sim):
    quiet_sim.refuse_connections(2, 503)
    clock = FakeClock()
    async with odds_client(tmp_path, quiet_sim.url_for("odds"), clock=clock) as client:
        await client.wait_event("feed.connected")
        retries = [e.data["retry_in"] for e in client.of("feed.disconnected")]
        assert len(retries) == 2 and all(r >= 30 for r in retries)
        assert quiet_sim.refused == 2


async def test_a_rejected_key_stops_the_client_after_one_attempt(tmp_path, quiet_sim):
    async with odds_client(tmp_path, quiet_sim.url_for("odds"), key="invalid") as client:
        with pytest.raises(FeedFatal, match="refused the API key"):
            await asyncio.wait_for(client.task, 10)
        assert quiet_sim.refused == 1 and quiet_sim.connects == 0


async def test_the_simulator_pings_idle_sockets():
    async with SimulatorServer({**QUIET, "ping_interval": 0.2}) as sim, \
            connect(sim.url_for("odds") + "?key=abc") as ws:
        assert orjson.loads(await ws.recv())["action"] == "socket_connected"
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame in ({"action": "ping"}, [{"action": "ping"}])


async def test_the_simulator_refuses_re_subscribing_within_5_seconds(quiet_sim):
    async with connect(quiet_sim.url_for("odds") + "?key=abc", max_size=None) as ws:
        hello = orjson.loads(await ws.recv())
        assert hello["action"] == "socket_connected"
        await ws.send(orjson.dumps({"action": "subscribe", "filters": {"sports": ["NBA"]}}).decode())
        await ws.send(orjson.dumps({"action": "subscribe", "filters": {}}).decode())
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            msgs = frame if isinstance(frame, list) else [frame]
            errors = [m for m in msgs if m.get("action") == "error"]
            if errors:
                break
            assert all(m["data"]["sport"] == "NBA" for m in msgs if m["action"] != "ping")
        assert "Re-subscription rate limit" in errors[0]["message"]


async def test_the_simulator_limits_connects_per_minute_and_concurrent_sockets():
    async with SimulatorServer({**QUIET, "connects_per_minute": 2, "max_sockets": 1}) as sim:
        url = sim.url_for("odds") + "?key=abc"
        async with connect(url) as first:
            assert orjson.loads(await first.recv())["action"] == "socket_connected"
            async with connect(url) as second:     # over max_sockets: error, then closed
                refusal = orjson.loads(await second.recv())
                assert refusal == {"action": "error", "message": "too many concurrent connections"}
            with pytest.raises(InvalidStatus) as info:
                async with connect(url):
                    pass
            assert info.value.response.status_code == 503


def test_the_same_seed_gives_the_same_world_and_the_same_moves():
    epoch = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def moves(world: World) -> list[tuple]:
        return [(m.action, m.book, m.game, orjson.dumps(m.data))
                for _ in range(40) for m in world.step(0.05)]

    a, b, c = (World(seed, 12, epoch=epoch, updates_per_second=300) for seed in (3, 3, 4))
    moves_a, moves_b, moves_c = moves(a), moves(b), moves(c)
    assert len(moves_a) > 100
    assert moves_a == moves_b and a.lines == b.lines
    assert moves_a != moves_c and sorted(a.games) != sorted(c.games)


# -- REST ----------------------------------------------------------------------------------

@pytest.fixture
async def rest_sim():
    sim = await SimulatorServer({**QUIET, "rest_rate_limit": False, "games": 12}).start()
    yield sim
    await sim.stop()


def unlimited(url: str) -> RestClient:
    return RestClient(url, "abc", limiter=RateLimiter(10_000, 10_000), retries=0)


async def test_rest_answers_agree_with_what_the_websockets_stream(rest_sim):
    world = rest_sim.world
    async with unlimited(rest_sim.url_for("rest")) as rest:
        info = await rest.get_info()
        games = await rest.get_games()
        markets = await rest.get_markets()
        started = [g.name for g in world.games.values() if g.status != "scheduled"]
        assert started, "the quiet world should have live or finished games"
        boxes = await rest.boxscores(started + ["Nobody vs Nothing, 2025-01-01, 01"])
        infos = await rest.match_info(list(world.games))
        stats = await rest.match_stats(started)
        parlays = await rest.get_parlays("draftkings")
    assert set(info["sportsbooks"]) >= {b for b, _ in world.lines}
    assert set(info["sports"]) >= {g.sport for g in world.games.values()}
    assert {name: g["universal_id"] for name, g in games.items()} == {
        g.name: g.uid for g in world.games.values()}
    for (book, name), outcomes in world.lines.items():
        sport = world.games[name].sport
        assert {o["outcome_name"] for o in outcomes.values()} <= set(markets[book][sport])
    assert set(boxes) == set(started) and set(stats) == set(started)
    for name in started:
        game = world.games[name]
        box = parse_boxscore(name, boxes[name])
        assert (box.home_score, box.away_score) == (game.score["home"], game.score["away"])
        info_update = parse_match_info(name, infos[name])
        assert info_update.status == game.status
        assert info_update.home == game.home and info_update.away == game.away
    scheduled = [g for g in world.games.values() if g.status == "scheduled"]
    for game in scheduled:
        assert parse_match_info(game.name, infos[game.name]).status == "scheduled"
    for parlay in parlays:
        for key, leg in parlay["legs"].items():
            assert key in world.lines[("draftkings", leg["game"])]


async def test_rest_rate_limit_failures_and_rejected_keys_answer_like_upstream():
    async with SimulatorServer({**QUIET, "rest_per_minute": 12, "rest_burst": 3}) as sim:
        url = sim.url_for("rest")
        async with httpx.AsyncClient() as http:
            statuses = [(await http.get(f"{url}/get_info", params={"key": "abc"})).status_code
                        for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            limited = await http.get(f"{url}/get_info", params={"key": "abc"})
            assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
            refused = await http.get(f"{url}/get_games", params={"key": "invalid"})
            assert refused.status_code == 401
            sim.options["rest_rate_limit"] = False
            sim.fail_rest(1, 429)
            forced = await http.get(f"{url}/get_games", params={"key": "abc"})
            assert forced.status_code == 429 and forced.headers["Retry-After"] == "1"
            sim.fail_rest(1, 500)
            assert (await http.get(f"{url}/get_games", params={"key": "abc"})).status_code == 500
            bad = await http.post(f"{url}/boxscores", params={"key": "abc"}, json=["x"])
            assert bad.status_code == 400 and "games" in bad.json()["error"]
            wrong = await http.get(f"{url}/boxscore", params={"key": "abc"})
            assert wrong.status_code == 404 and "boxscores" in wrong.json()["error"]
        sim.fail_rest(1, 503)
        async with RestClient(url, "abc", limiter=RateLimiter(1000, 1000), retries=1,
                              backoff_base=0.01) as client:
            assert (await client.get_info())["sportsbooks"]
        async with RestClient(url, "invalid", limiter=RateLimiter(1000, 1000)) as client:
            with pytest.raises(RestError, match="refused the API key"):
                await client.get_games()
