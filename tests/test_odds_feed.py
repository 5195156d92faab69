"""The odds feed client against a loopback websocket server that sends exact frames.

Every test runs the real OddsFeed (connection manager, parser, odds board) on a
real App and checks the events a user would see.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from helpers_odds import KEY, clear_msg, odds_client, odds_msg, outcome
from helpers_ws import FakeClock, ScriptServer, wait_until

from boltrouter.feeds.ws import ConnectLimiter, FeedFatal

METS = "New York Mets vs Los Angeles Angels, 2025-07-23, 01"
GIANTS = "San Francisco Giants vs Philadelphia Phillies, 2025-07-23, 09"
KNICKS = "New York Knicks vs Boston Celtics, 2025-07-23, 07"


def mets_lines(home: str = "-150", away: str = "+130", total: str = "-110") -> dict:
    return {
        "New York Mets Moneyline": outcome(home, "New York Mets"),
        "Los Angeles Angels Moneyline": outcome(away, "Los Angeles Angels"),
        "New York Mets vs Los Angeles Angels O 8.5 Total": outcome(
            total, "New York Mets vs Los Angeles Angels", "Total", "8.5", "O"),
    }


def giants_lines(home: str = "+105") -> dict:
    return {"San Francisco Giants Moneyline": outcome(home, "San Francisco Giants"),
            "Philadelphia Phillies Moneyline": outcome("-125", "Philadelphia Phillies")}


def knicks_lines() -> dict:
    return {"New York Knicks Moneyline": outcome("-200", "New York Knicks"),
            "Boston Celtics Moneyline": outcome("+170", "Boston Celtics")}


@pytest.fixture
async def server():
    srv = await ScriptServer.start()
    yield srv
    await srv.stop()


async def connected(server: ScriptServer):
    """The next connection, after the client subscribed on it."""
    conn = await server.next_connection()
    sub = await conn.next_message()
    assert sub["action"] == "subscribe"
    return conn


async def test_the_client_waits_for_socket_connected_then_subscribes_with_the_configured_filters(
        tmp_path, server):
    server.greeting = None
    filters = {"sports": ["MLB", "Wimbledon (M)"], "sportsbooks": ["draftkings"],
               "markets": ["Moneyline", "Spread"]}
    async with odds_client(tmp_path, server.url, subscribe=filters) as client:
        conn = await server.next_connection()
        assert f"key={KEY}" in conn.path
        assert conn.received == []
        await conn.send({"action": "socket_connected", "plan": "trial", "feed": "odds"})
        sub = await conn.next_message()
        assert sub == {"action": "subscribe", "filters": filters}
        connected_events = await client.wait_event("feed.connected")
        assert connected_events[0].data["info"] == {"plan": "trial", "feed": "odds"}
        await conn.send({"action": "subscription_updated", "message": "ok"})
        subscribed = await client.wait_event("feed.subscribed")
        assert subscribed[0].data["filters"] == filters


async def test_every_action_in_object_and_list_frames_becomes_the_right_events(tmp_path, server):
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        # a list frame holding two initial_state messages
        await conn.send([odds_msg("initial_state", "ballybet", METS, mets_lines()),
                         odds_msg("initial_state", "ballybet", GIANTS, giants_lines())])
        await client.wait_event("odds.game_added", 2)
        assert client.of("odds.line_") == []
        added = client.of("odds.game_added")[0]
        assert added.game == METS and added.sportsbook == "ballybet" and added.sport == "MLB"
        assert added.data["count"] == 3
        assert added.data["outcomes"]["New York Mets Moneyline"]["odds"] == "-150"
        assert added.data["outcomes"]["New York Mets Moneyline"]["prob"] == pytest.approx(0.6)

        # an object frame: line_update merges one line
        await conn.send(odds_msg("line_update", "ballybet", METS,
                                 {"New York Mets Moneyline": outcome("-200", "New York Mets")}))
        changed = (await client.wait_event("odds.line_changed"))[0]
        assert changed.data["outcome"] == "New York Mets Moneyline"
        assert changed.data["market"] == "Moneyline"
        assert changed.data["target"] == "New York Mets"
        assert (changed.data["old_odds"], changed.data["new_odds"]) == ("-150", "-200")
        assert changed.data["old_prob"] == pytest.approx(0.6)
        assert changed.data["new_prob"] == pytest.approx(2 / 3)
        assert changed.data["link"].startswith("https://book.example/")
        assert client.app.board.line("ballybet", METS, "Los Angeles Angels Moneyline").odds == "+130"

        # game_update replaces the game's outcomes: only the real differences
        update = mets_lines(home="-200", total="-120")
        del update["Los Angeles Angels Moneyline"]
        await conn.send([odds_msg("game_update", "ballybet", METS, update)])
        await client.wait_event("odds.game_updated")
        updated = client.of("odds.game_updated")[0]
        assert sorted(updated.data["changed"]) == sorted(
            ["New York Mets vs Los Angeles Angels O 8.5 Total", "Los Angeles Angels Moneyline"])
        total = client.of("odds.line_changed")[-1]
        assert total.data["over_under"] == "Over" and total.data["line"] == "8.5"
        vanished = client.of("odds.line_suspended")[0]
        assert vanished.data["outcome"] == "Los Angeles Angels Moneyline"
        assert vanished.data["new_odds"] is None

        # game_added for a game never seen, game_removed for one that goes
        await conn.send(odds_msg("game_added", "draftkings", KNICKS, knicks_lines(), "NBA"))
        await client.wait_event("odds.game_added", 3)
        await conn.send([odds_msg("game_removed", "ballybet", GIANTS, {})])
        removed = (await client.wait_event("odds.game_removed"))[0]
        assert removed.game == GIANTS and removed.data["count"] == 2
        assert client.app.board.game("ballybet", GIANTS) is None

        # control messages: ping (object or in a list), error, subscription_updated
        await conn.send({"action": "ping"})
        await conn.send([{"action": "ping"}])
        await conn.send({"action": "error", "message": "Something went wrong on our side."})
        error = (await client.wait_event("feed.error"))[0]
        assert error.data["message"] == "Something went wrong on our side."
        await conn.send({"action": "subscription_updated",
                         "message": "You have successfully updated your subscription filters."})
        await client.wait_event("feed.subscribed")
        assert client.feed.connected and server.handshakes == 1
        assert [e.type for e in client.odds_events()] == [
            "odds.game_added", "odds.game_added", "odds.line_changed", "odds.game_updated",
            "odds.line_changed", "odds.line_suspended", "odds.game_added", "odds.game_removed"]


async def test_a_reconnect_that_replays_the_same_initial_state_emits_no_events(tmp_path, server):
    snapshot = [odds_msg("initial_state", "ballybet", METS, mets_lines()),
                odds_msg("initial_state", "ballybet", GIANTS, giants_lines())]
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send(snapshot)
        await client.wait_event("odds.game_added", 2)
        conn.abort()
        conn = await connected(server)
        disconnected = await client.wait_event("feed.disconnected")
        assert disconnected[0].data["reason"]
        await conn.send(snapshot)
        await conn.send({"action": "ping"})
        # a marker: once it arrives, everything sent before it was applied
        await conn.send(odds_msg("game_added", "draftkings", KNICKS, knicks_lines(), "NBA"))
        await client.wait_event("odds.game_added", 3)
        assert [e.type for e in client.odds_events()] == ["odds.game_added"] * 3
        assert len(client.of("feed.connected")) == 2


async def test_a_reconnect_with_a_changed_initial_state_emits_exactly_the_differences(
        tmp_path, server):
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send([odds_msg("initial_state", "ballybet", METS, mets_lines()),
                         odds_msg("initial_state", "ballybet", GIANTS, giants_lines())])
        await client.wait_event("odds.game_added", 2)
        before = len(client.events)
        conn.abort()
        conn = await connected(server)
        changed = mets_lines(home="-160", away=None)          # one price moved, one suspended
        await conn.send([odds_msg("initial_state", "ballybet", METS, changed),
                         odds_msg("initial_state", "draftkings", KNICKS, knicks_lines(), "NBA")])
        await conn.send({"action": "ping"})                  # the snapshot is over: Giants gone
        await client.wait_event("odds.game_removed")
        after = [e for e in client.events[before:] if e.type.startswith("odds.")]
        kinds = sorted((e.type, e.game, e.data.get("outcome")) for e in after)
        assert kinds == sorted([
            ("odds.game_updated", METS, None),
            ("odds.line_changed", METS, "New York Mets Moneyline"),
            ("odds.line_suspended", METS, "Los Angeles Angels Moneyline"),
            ("odds.game_added", KNICKS, None),
            ("odds.game_removed", GIANTS, None),
        ])


async def test_a_ping_between_the_frames_of_a_snapshot_does_not_cut_it_short(tmp_path, server):
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send([odds_msg("initial_state", "ballybet", METS, mets_lines()),
                         odds_msg("initial_state", "ballybet", GIANTS, giants_lines())])
        await client.wait_event("odds.game_added", 2)
        conn.abort()
        conn = await connected(server)
        await client.wait_event("feed.disconnected")
        before = len(client.odds_events())
        # a large snapshot comes in many frames, and upstream's ping may land between them
        await conn.send([odds_msg("initial_state", "ballybet", METS, mets_lines())])
        await conn.send({"action": "ping"})
        await conn.send([odds_msg("initial_state", "ballybet", GIANTS, giants_lines())])
        await conn.send(odds_msg("game_added", "draftkings", KNICKS, knicks_lines(), "NBA"))
        await client.wait_event("odds.game_added", 3)
        assert [(e.type, e.game) for e in client.odds_events()[before:]] == [
            ("odds.game_added", KNICKS)]


async def test_a_ping_before_the_new_initial_state_does_not_cut_the_snapshot_short(
        tmp_path, server):
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send([odds_msg("initial_state", "ballybet", METS, mets_lines()),
                         odds_msg("initial_state", "ballybet", GIANTS, giants_lines())])
        await client.wait_event("odds.game_added", 2)
        conn.abort()
        conn = await connected(server)
        await conn.send({"action": "ping"})
        await conn.send([odds_msg("initial_state", "ballybet", METS, mets_lines())])
        await conn.send({"action": "ping"})
        removed = (await client.wait_event("odds.game_removed"))[0]
        assert removed.game == GIANTS and removed.data["reason"] == "not in snapshot"
        assert client.app.board.game("ballybet", METS) is not None
        assert [e.type for e in client.odds_events()] == ["odds.game_added"] * 2 + [
            "odds.game_removed"]


async def test_none_empty_and_the_string_none_are_one_suspended_state(tmp_path, server):
    key = "New York Mets Moneyline"
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send(odds_msg("initial_state", "ballybet", METS, mets_lines()))
        await client.wait_event("odds.game_added")
        for spelling in (None, "", "None", None):
            await conn.send(odds_msg("line_update", "ballybet", METS,
                                     {key: outcome(spelling, "New York Mets")}))
        await conn.send(odds_msg("game_update", "ballybet", METS,
                                 {**mets_lines(), key: outcome("", "New York Mets")}))
        await conn.send(odds_msg("line_update", "ballybet", METS,
                                 {key: outcome("+100", "New York Mets")}))
        restored = (await client.wait_event("odds.line_restored"))[0]
        suspended = client.of("odds.line_suspended")
        assert len(suspended) == 1
        assert suspended[0].data["old_odds"] == "-150" and suspended[0].data["new_odds"] is None
        assert suspended[0].data["new_prob"] is None
        assert restored.data["old_odds"] is None and restored.data["new_odds"] == "+100"
        assert restored.data["new_prob"] == pytest.approx(0.5)
        assert client.of("odds.line_changed", "odds.game_updated") == []


async def test_clears_emit_one_event_each_and_lines_coming_back_unchanged_emit_nothing(
        tmp_path, server):
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send([odds_msg("initial_state", "draftkings", METS, mets_lines()),
                         odds_msg("initial_state", "draftkings", GIANTS, giants_lines()),
                         odds_msg("initial_state", "draftkings", KNICKS, knicks_lines(), "NBA"),
                         odds_msg("initial_state", "fanduel", METS, mets_lines())])
        await client.wait_event("odds.game_added", 4)
        board = client.app.board

        await conn.send(clear_msg("draftkings", "MLB"))
        cleared = (await client.wait_event("odds.sport_cleared"))[0]
        assert cleared.sportsbook == "draftkings" and cleared.sport == "MLB"
        assert cleared.data["lines"] == 5 and cleared.data["games"] == 2
        assert board.game("draftkings", METS) is None and board.game("draftkings", GIANTS) is None
        assert board.game("draftkings", KNICKS) is not None
        assert board.game("fanduel", METS) is not None

        # the cleared games come back unchanged: no line events
        await conn.send([odds_msg("game_added", "draftkings", METS, mets_lines()),
                         odds_msg("game_added", "draftkings", GIANTS, giants_lines())])
        await client.wait_event("odds.game_added", 6)
        assert client.of("odds.line_") == []
        assert all(e.data.get("restored") for e in client.of("odds.game_added")[4:])

        await conn.send([clear_msg("draftkings")])
        book = (await client.wait_event("odds.book_cleared"))[0]
        assert book.data["lines"] == 7 and book.data["games"] == 3
        assert board.game("fanduel", METS) is not None and len(board) == 3
        # back with one line moved: exactly that line changes
        await conn.send(odds_msg("game_added", "draftkings", METS, mets_lines(home="-170")))
        moved = (await client.wait_event("odds.line_changed"))[0]
        assert moved.data["outcome"] == "New York Mets Moneyline"
        assert moved.data["old_odds"] == "-150" and moved.data["new_odds"] == "-170"
        assert len(client.of("odds.sport_cleared", "odds.book_cleared")) == 2
        assert len(client.of("odds.line_")) == 1


async def test_garbage_frames_and_unknown_actions_are_counted_logged_and_never_fatal(
        tmp_path, server, caplog):
    caplog.set_level(logging.WARNING, logger="boltrouter")
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send('{"action": "line_update", "data": {"sport": ')     # truncated JSON
        await conn.send("[1, \"two\", null]")                                  # junk list
        await conn.send("42")
        await conn.send({"action": "odds_flux_capacitor", "data": {}})         # unknown action
        await conn.send({"action": "line_update"})                             # no data
        await conn.send(odds_msg("line_update", "ballybet", METS, ["not", "an", "object"]))
        await conn.send(odds_msg("initial_state", "ballybet", METS, mets_lines()))
        await client.wait_event("odds.game_added")
        metrics = client.app.metrics
        assert metrics.get("feed_bad_frames", feed="odds") == 7      # the junk list counts 3
        assert metrics.get("feed_unknown_actions", feed="odds") == 1
        assert server.handshakes == 1 and client.feed.connected
        text = caplog.text
        assert "not JSON" in text and "odds_flux_capacitor" in text


async def test_a_frame_of_tens_of_mib_is_received_and_applied(tmp_path, server):
    books = ("draftkings", "fanduel")
    games = [f"Home Team {i} vs Away Team {i}, 2025-07-23, 07" for i in range(1000)]
    pad = "x" * 180
    messages = []
    for game in games:
        for book in books:
            lines = {f"Player {j} Over {j}.5 Points {pad}": outcome(f"+{100 + j}", f"Player {j}",
                                                                   "Points", f"{j}.5", "Over")
                     for j in range(30)}
            messages.append(odds_msg("initial_state", book, game, lines, "NBA"))
    frame = orjson.dumps(messages).decode()
    assert len(frame) > 20 * 1024 * 1024
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send(frame)
        await client.wait_event("odds.game_added", len(messages), timeout=60)
        assert len(client.app.board) == len(messages) * 30
        assert server.handshakes == 1


async def test_subscription_changes_inside_the_5_second_window_are_coalesced_and_sent_when_it_opens(
        tmp_path, server):
    clock = FakeClock()
    async with odds_client(tmp_path, server.url, clock=clock,
                           subscribe={"sports": ["MLB"]}) as client:
        conn = await connected(server)
        feed = client.feed
        first_at = clock.now
        for sports in (["NBA"], ["NBA", "NHL"], ["NFL"]):
            options = dict(feed.options)
            options["subscribe"] = {"sports": sports}
            await feed.reconfigure(options)
        second = await conn.next_message()
        assert second == {"action": "subscribe", "filters": {"sports": ["NFL"]}}
        assert clock.now - first_at == pytest.approx(5.0)
        await conn.send({"action": "subscription_updated", "message": "ok"})
        await client.wait_event("feed.subscribed")

        # upstream refuses a re-subscribe: the current filters go again 5 s later
        await conn.send({"action": "error", "message": "Re-subscription rate limit hit. "
                                                       "Please wait 5 seconds before re-subscribing."})
        third = await conn.next_message()
        assert third == second
        assert server.handshakes == 1
        assert [m["filters"] for m in conn.received] == [{"sports": ["MLB"]}, {"sports": ["NFL"]},
                                                        {"sports": ["NFL"]}]


class RecordingLimiter(ConnectLimiter):
    """The real limiter, remembering when every connect was allowed."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.allowed: list[float] = []

    async def acquire(self) -> float:
        waited = await super().acquire()
        self.allowed.append(self.clock.monotonic())
        return waited


async def test_never_more_than_12_connects_in_any_minute(tmp_path, server):
    server.refuse = 500                 # every handshake fails at once
    clock = FakeClock()
    limiter = RecordingLimiter(clock)
    async with odds_client(tmp_path, server.url, clock=clock, limiter=limiter) as client:
        await wait_until(lambda: server.handshakes >= 30, 20, "30 connection attempts")
        times = limiter.allowed[:30]
        assert all(later - earlier >= 60.0 - 1e-6 for earlier, later in zip(times, times[12:]))
        assert times[12] - times[0] < 70.0       # the limit is used, not a crawl
        assert len(client.of("feed.disconnected")) >= 29


async def test_a_server_that_accepts_and_drops_at_once_is_not_hammered(tmp_path, server):
    clock = FakeClock()
    async with odds_client(tmp_path, server.url, clock=clock, quick_drop_delay=5.0,
                           backoff_base=0.01, backoff_max=60) as client:
        for _ in range(4):
            conn = await connected(server)
            conn.abort()
        drops = await client.wait_event("feed.disconnected", 3)
        assert all(e.data["retry_in"] >= 5.0 for e in drops)


async def test_http_503_and_too_many_connections_back_off_longer(tmp_path, server):
    clock = FakeClock()
    server.refuse = 503
    async with odds_client(tmp_path, server.url, clock=clock) as client:
        first = (await client.wait_event("feed.disconnected"))[0]
        assert "503" in first.data["reason"] and first.data["retry_in"] >= 30
        server.refuse = None
        conn = await connected(server)
        await conn.send({"action": "error", "message": "too many concurrent connections"})
        second = (await wait_until(
            lambda: [e for e in client.of("feed.disconnected")
                     if "too many concurrent connections" in e.data["reason"]],
            10, "the overload disconnect"))[0]
        assert second.data["retry_in"] >= 30


async def test_an_invalid_key_stops_the_feed_with_a_clear_message_and_no_retries(
        tmp_path, server, caplog):
    server.refuse = 401
    async with odds_client(tmp_path, server.url) as client:
        with pytest.raises(FeedFatal) as info:
            await asyncio.wait_for(client.task, 10)
        message = str(info.value)
        assert "refused the API key" in message and "BOLTODDS_API_KEY" in message
        assert KEY not in message and KEY not in caplog.text
        assert server.handshakes == 1
        assert client.of("feed.error")[0].data["message"] == message


async def test_an_invalid_key_error_message_after_connecting_stops_the_feed(tmp_path, server):
    async with odds_client(tmp_path, server.url) as client:
        conn = await connected(server)
        await conn.send({"action": "error", "message": "Invalid API key."})
        with pytest.raises(FeedFatal, match="refused the API key"):
            await asyncio.wait_for(client.task, 10)
        assert server.handshakes == 1


async def test_a_socket_silent_for_dead_after_seconds_is_dropped_and_reconnected(tmp_path, server):
    async with odds_client(tmp_path, server.url, dead_after=1) as client:
        first = await connected(server)
        await connected(server)
        drop = (await client.wait_event("feed.disconnected"))[0]
        assert "nothing received" in drop.data["reason"]
        await wait_until(lambda: first.closed.is_set(), 5, "the dead socket to be closed")


async def test_pings_keep_a_socket_alive(tmp_path, server):
    async with odds_client(tmp_path, server.url, dead_after=2) as client:
        conn = await connected(server)
        loop = asyncio.get_running_loop()
        until = loop.time() + 4.5
        while loop.time() < until:       # pings every 0.2 s for longer than dead_after
            await conn.send({"action": "ping"})
            await asyncio.sleep(0.2)
        assert client.of("feed.disconnected") == [] and server.handshakes == 1


async def test_the_api_key_never_appears_in_logs_events_or_errors(tmp_path, server, caplog):
    caplog.set_level(logging.DEBUG, logger="boltrouter")
    async with odds_client(tmp_path, server.url, clock=FakeClock()) as client:
        server.refuse = 503
        await client.wait_event("feed.disconnected")
        server.refuse = None
        conn = await connected(server)
        await conn.send({"action": "error", "message": f"bad request wss://x/api?key={KEY}"})
        await conn.send(f"not json {KEY}")
        conn.abort()
        conn = await connected(server)
        await conn.close(4000, f"closing for key {KEY}")
        await client.wait_event("feed.disconnected", 3)
        server.refuse = 401
        with pytest.raises(FeedFatal) as info:
            await asyncio.wait_for(client.task, 10)
        texts = [caplog.text, str(info.value), repr(info.value)]
        texts += [orjson.dumps(e.to_dict(), default=str).decode() for e in client.events]
        texts += [r.getMessage() for r in caplog.records]
        assert all(KEY not in t for t in texts)
        assert any("***" in t or "redacted" in t.lower() for t in texts)


async def test_unknown_filter_values_are_warned_about(tmp_path, server, caplog):
    caplog.set_level(logging.WARNING, logger="boltrouter")
    server.http = {
        "/api/get_info": {"sports": ["NBA", "MLB"], "sportsbooks": ["draftkings", "fanduel"]},
        "/api/get_markets": {"draftkings": {"NBA": ["Moneyline", "Spread"]}},
    }
    async with odds_client(tmp_path, server.url, check_filters=True,
                           subscribe={"sports": ["NBA", "NBAA"], "sportsbooks": ["draftkings"],
                                      "markets": ["Moneylines"]}):
        await connected(server)
        await wait_until(lambda: "Moneylines" in caplog.text, 10, "the filter warning")
        assert "'NBAA' is not a sport BoltOdds knows" in caplog.text
        assert "did you mean 'NBA'" in caplog.text
        assert "'draftkings'" not in caplog.text
