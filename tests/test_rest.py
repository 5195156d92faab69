"""The REST endpoints: the shared rate limit (measured on a virtual clock), retries of
429 and 5xx, the key kept out of every message, pollers that speak only on change,
and the `sports`/`books`/`games`/`markets` commands against the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers_http import Reply
from helpers_scores import API_KEY, Rest, Rig, get_games_entry
from helpers_sinks import boltrouter
from helpers_ws import FakeClock

from boltrouter.feeds.rest import RateLimiter, RestClient, RestError
from boltrouter.simulator import SimulatorServer

INFO = {"sports": ["NBA", "NFL", "Wimbledon (M)"], "sportsbooks": ["draftkings", "betmgm"]}


@pytest.fixture
def rest():
    server = Rest().start()
    server.answers["get_info"] = INFO
    yield server
    server.stop()


def client_on(rest: Rest, clock: FakeClock, limiter: RateLimiter | None = None,
              key: str = API_KEY, **kw: Any) -> tuple[RestClient, list[float]]:
    """A client on the virtual clock; the list gets the virtual time each request left."""
    client = RestClient(rest.url, key, clock=clock,
                        limiter=limiter or RateLimiter(12, 3, clock=clock), **kw)
    left: list[float] = []

    async def stamp(request: httpx.Request) -> None:
        left.append(clock.now)

    client.http.event_hooks = {"request": [stamp]}
    return client, left


async def test_thirteen_requests_never_leave_faster_than_12_a_minute_with_a_burst_of_3(
        rest: Rest) -> None:
    clock = FakeClock()
    shared = RateLimiter(12, 3, clock=clock)
    first, left_a = client_on(rest, clock, shared)
    second, left_b = client_on(rest, clock, shared)       # another caller, the same budget
    calls = [(first if i % 2 else second).get_info() for i in range(13)]
    answers = await asyncio.gather(*calls)
    await first.aclose()
    await second.aclose()
    assert answers == [INFO] * 13                         # queued, never rejected
    assert len(rest.calls("get_info")) == 13
    times = sorted(left_a + left_b)
    start = times[0]
    assert times[:3] == [start] * 3                       # the burst goes at once
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            span = times[j] - times[i]
            assert j - i + 1 <= 3 + span * 12 / 60 + 1e-6, (i, j, span)
    for i in range(len(times) - 12):
        assert times[i + 12] - times[i] >= 60 - 1e-6        # at most 12 in any minute
    assert times[-1] - start == pytest.approx(60)          # and no slower than that


async def test_429_with_retry_after_and_503_are_retried_with_backoff(rest: Rest) -> None:
    clock = FakeClock()
    rest.receiver.script(Reply(429, b"slow down", {"retry-after": "7"}), 503, 502)
    roomy = RateLimiter(600, 100, clock=clock)             # only the retries wait here
    client, _ = client_on(rest, clock, roomy, backoff_base=1.0)
    assert await client.get_info() == INFO
    await client.aclose()
    assert len(rest.calls("get_info")) == 4
    after_429, after_503, after_502 = [s for s in clock.sleeps if s > 0]
    assert after_429 == 7                                   # Retry-After honoured
    assert 1.0 <= after_503 <= 2.0 and 2.0 <= after_502 <= 4.0   # exponential backoff


async def test_retries_run_out_with_a_clear_error(rest: Rest) -> None:
    clock = FakeClock()
    rest.receiver.script(*[503] * 5)
    client, _ = client_on(rest, clock, retries=2)
    with pytest.raises(RestError, match=r"GET get_info failed after 3 attempts: upstream "
                                        r"error HTTP 503"):
        await client.get_info()
    await client.aclose()


async def test_the_key_never_appears_in_errors_or_logs(rest: Rest, caplog: Any) -> None:
    key = "k-very-secret-91c2e55b"
    clock = FakeClock()
    caplog.set_level(logging.DEBUG)
    rest.answers["get_markets"] = lambda req: Reply(400, f"bad request {req.path}".encode())
    rest.answers["get_games"] = Reply(401, b"unauthorized")
    messages = []
    client, _ = client_on(rest, clock, key=key, retries=1)
    for call in (client.get_markets(["draftkings"]), client.get_games()):
        with pytest.raises(RestError) as err:
            await call
        messages.append(str(err.value))
    await client.aclose()
    closed = RestClient("http://127.0.0.1:9/api", key, clock=clock, retries=1,
                        limiter=RateLimiter(12, 3, clock=clock))
    with pytest.raises(RestError) as err:
        await closed.get_info()
    await closed.aclose()
    messages.append(str(err.value))
    assert "refused with HTTP 400" in messages[0]
    assert "refused the API key" in messages[1]
    assert "could not reach" in messages[2]
    assert all(key not in m for m in messages)
    assert key not in caplog.text
    assert all(key in r.path for r in rest.receiver.requests)     # it was sent, though


# -- pollers ------------------------------------------------------------------------------

BUCS = "Tampa Bay Buccaneers vs Atlanta Falcons, 2025-12-11, 08"
BOUZAS = "Jessica Bouzas Maneiro vs Magdalena Frech, 2026-02-26, 03"
BOXSCORE = {BUCS: {"game": {
    "scorePerPeriod": {"Q1": {"home": 7, "away": 0}, "Q2": {"home": 6, "away": 14}},
    "location": "", "clock": "Halftime", "timeoutsTotal": 3,
    "timeoutsRemaining": {"home": 3, "away": 3}, "isRedZone": False, "possession": "away",
    "home": 13, "away": 14},
    "players": [{"player": {"player_name": "Kirk Cousins", "player_number": "18",
                            "player_position": "Quarterback"},
                 "stats": {"passingComb": "12/16", "passYards": "156"}}]}}
MATCH_STATS = {BOUZAS: {"doc": [{"event": "match_detailsextended", "_dob": 1772139461,
                                 "_maxage": 10, "data": {
    "_doc": "details", "_matchid": 69079420,
    "teams": {"home": "Bouzas Maneiro, Jessica", "away": "Frech, Magdalena"},
    "index": [132, 136],
    "values": {"132": {"name": "Double Faults", "value": {"home": 1, "away": 1}},
               "136": {"name": "Points won", "value": {"home": 25, "away": 39}}}}}],
    "types": {"132": "Double Faults", "136": "Points won"}}}
MATCH_INFO = {BOUZAS: {"doc": [{"event": "match_timelinedelta", "_synced": True,
                                "_dob": 1772139333, "_maxage": 3, "data": {"match": {
    "_doc": "match", "_doctype": "tennis", "_id": 69079420,
    "result": {"home": 0, "away": 1, "winner": "away"},
    "periods": {"p1": {"home": 0, "away": 6}, "p2": {"home": 2, "away": 1}},
    "updated_uts": 1772139299, "ended_uts": False, "p": "2",
    "timeinfo": {"started": "1772136548", "played": "2748", "running": True},
    "teams": {"home": {"name": "Bouzas Maneiro, Jessica"}, "away": {"name": "Frech, Magdalena"}},
    "status": {"_doc": "status", "_id": 9, "name": "2nd set", "shortName": "S2"},
    "gamescore": {"home": 0, "away": 0, "service": "1"}}, "events": []}}]}}
PARLAYS = [{"odds": "+1746", "total_bets": 3238, "type": "SGP_PLUS", "legs": {
    "Toronto Maple Leafs Moneyline": {
        "game": "Toronto Maple Leafs vs New York Rangers, 2025-10-16, 07", "sport": "NHL",
        "universal_id": "ac792a4acb18", "outcome_name": "Moneyline", "outcome_line": None,
        "outcome_over_under": None, "outcome_target": "Toronto Maple Leafs"}}}]
GAMES = {**get_games_entry(BUCS, "b0c5a7f11e2d", "NFL", "2025-12-11, 08:15 PM"),
         **get_games_entry(BOUZAS, "7e1d0c4b9a33", "WTA", "2026-02-26, 03:00 AM")}


async def test_pollers_publish_only_when_the_content_changed(tmp_path: Path) -> None:
    answers: dict[str, Any] = {"boxscores": copy.deepcopy(BOXSCORE),
                               "match_stats": copy.deepcopy(MATCH_STATS),
                               "match_info": copy.deepcopy(MATCH_INFO),
                               "get_parlays": copy.deepcopy(PARLAYS)}
    rig = await Rig.start(tmp_path, games=GAMES, answers=answers, rest={
        "rate_limit": {"per_minute": 6000, "burst": 100},
        "poll": {"games": "1h",
                 "parlays": {"sportsbooks": ["draftkings"], "every": "1s"},
                 "boxscores": {"games": [BUCS], "every": "1s"},
                 "match_stats": {"games": [BOUZAS], "every": "1s"},
                 "match_info": {"games": [BOUZAS], "every": "1s"}}})
    rest = rig.rest
    try:
        kinds = ("boxscore.updated", "match.stats_updated", "match.info_updated",
                 "parlay.updated")
        await rig.wait_for(lambda: all(rig.of_type(k) for k in kinds), what="the first polls")
        box = rig.of_type("boxscore.updated")[0]
        assert (box.data["home_score"], box.data["away_score"], box.data["possession"]) == (
            13, 14, "away")
        assert (box.universal_id, box.home, box.sport) == ("b0c5a7f11e2d",
                                                           "Tampa Bay Buccaneers", "NFL")
        stats = rig.of_type("match.stats_updated")[0]
        assert stats.data["stats"]["Points won"] == {"home": 25, "away": 39}
        info = rig.of_type("match.info_updated")[0]
        assert (info.data["home_score"], info.data["away_score"], info.data["period"]) == (0, 1, 2)
        parlay = rig.of_type("parlay.updated")[0]
        assert parlay.sportsbook == "draftkings" and parlay.data["count"] == 1

        # the same answers again, with only the volatile stamps moving: nothing new
        answers["match_stats"][BOUZAS]["doc"][0]["_dob"] += 60
        answers["match_info"][BOUZAS]["doc"][0]["data"]["match"]["updated_uts"] += 60
        polled = {e: len(rest.calls(e)) for e in ("boxscores", "match_stats", "match_info")}
        await rig.wait_for(lambda: all(len(rest.calls(e)) >= n + 2 for e, n in polled.items()),
                           what="two more rounds of polls")
        assert [len(rig.of_type(k)) for k in kinds] == [1, 1, 1, 1]

        answers["boxscores"][BUCS]["game"].update(home=20, clock="08:12")
        await rig.wait_for(lambda: len(rig.of_type("boxscore.updated")) == 2,
                           what="the changed box score")
        [goal] = await rig.wait_for(lambda: rig.of_type("score.changed"))
        assert goal.data["home_score"] == 20 and goal.data["prev_home_score"] == 13
        assert goal.feed == "rest" and goal.universal_id == "b0c5a7f11e2d"
    finally:
        await rig.stop()


async def test_a_failing_poll_is_reported_and_the_next_one_recovers(tmp_path: Path) -> None:
    rig = await Rig.start(tmp_path, games=GAMES, answers={"boxscores": BOXSCORE}, rest={
        "retries": 0, "rate_limit": {"per_minute": 6000, "burst": 100},
        "poll": {"boxscores": {"games": [BUCS], "every": "1s"}}})
    try:
        rig.rest.receiver.script(*[Reply(503, b"busy")] * 2)
        await rig.wait_for(lambda: rig.of_type("boxscore.updated"), what="a box score")
        errors = [e for e in rig.of_type("feed.error") if e.feed == "rest"]
        assert errors and "HTTP 503" in errors[0].data["message"]
        assert API_KEY not in json.dumps([e.to_dict() for e in rig.events])
    finally:
        await rig.stop()


# -- the commands ---------------------------------------------------------------------------

def test_games_command_lists_the_simulators_games_of_one_sport() -> None:
    out = boltrouter("games", "--sport", "NBA", "--json")
    assert out.returncode == 0, out.stderr
    games = json.loads(out.stdout)
    assert games and all(g["sport"] == "NBA" for g in games)
    assert all(g["game"].startswith(f"{g['home']} vs {g['away']}, ") for g in games)
    starts = [g["start"] for g in games]
    assert starts == sorted(starts)


def test_sports_books_and_markets_commands_print_exact_filter_values() -> None:
    sports = boltrouter("sports")
    assert sports.returncode == 0, sports.stderr
    assert "NBA" in sports.stdout.split("\n")
    books = boltrouter("books", "--json")
    assert "draftkings" in json.loads(books.stdout)
    markets = boltrouter("markets", "--book", "draftkings", "--sport", "NBA")
    lines = markets.stdout.splitlines()
    assert lines[0] == "# draftkings / NBA" and "Moneyline" in lines
    nothing = boltrouter("games", "--sport", "Curling")
    assert nothing.returncode == 0 and "boltrouter sports" in nothing.stderr


def test_commands_use_the_configured_service_and_hide_its_key(tmp_path: Path) -> None:
    rest = Rest().start()
    try:
        rest.answers["get_info"] = INFO
        config = tmp_path / "config.yaml"
        config.write_text(f"boltodds:\n  api_key: k-cli-secret-31b7\n  rest: {{url: {rest.url}}}\n")
        out = boltrouter("sports", "--config", str(config))
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == INFO["sports"]
        rest.answers["get_info"] = Reply(403, b"forbidden")
        failed = boltrouter("books", "--config", str(config))
        assert failed.returncode == 1 and "refused the API key" in failed.stderr
        assert "k-cli-secret-31b7" not in failed.stderr + failed.stdout
    finally:
        rest.stop()


async def test_the_simulators_429_and_503_are_ridden_out(tmp_path: Path) -> None:
    sim = SimulatorServer({"seed": 3, "games": 8, "connects_per_minute": 0})
    await sim.start()
    try:
        clock = FakeClock()
        client = RestClient(sim.url_for("rest"), "k-sim-rest-77", clock=clock,
                            limiter=RateLimiter(12, 3, clock=clock))
        sim.fail_rest(1, 429)
        games = await client.get_games()
        sim.fail_rest(1, 503)
        info = await client.get_info()
        await client.aclose()
        assert {g["universal_id"] for g in games.values()} == set(sim.world.by_uid)
        assert set(info["sports"]) >= {g.sport for g in sim.world.games.values()}
        assert 1 in clock.sleeps                               # the simulator's Retry-After
    finally:
        await sim.stop()


def test_with_a_config_and_no_key_the_commands_ask_the_running_daemons_simulator(
        tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("simulator: {seed: 5, games: 10, updates_per_second: 20}\n"
                      "summary: {enabled: never}\nstate_dir: state\n"
                      "sinks: {archive: {type: sqlite, path: archive.db}}\n"
                      "routes: [{name: all, when: {type: odds.game_added}, to: archive}]\n")
    fresh = boltrouter("games", "--config", str(config))
    assert fresh.returncode == 0 and "built-in simulator" in fresh.stderr
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "boltrouter", "run", "--config", str(config)],
                              env={**os.environ, "BOLTODDS_API_KEY": ""}, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not daemon_status(tmp_path / "state").get("routes", {}).get("all", {}).get("fired"):
            assert time.monotonic() < deadline and daemon.poll() is None, \
                "the daemon did not start: " + (tmp_path / "daemon.log").read_text()[-2000:]
            time.sleep(0.05)
        out = boltrouter("games", "--config", str(config))
        assert out.returncode == 0, out.stderr
        assert "running daemon" in out.stderr
    finally:
        daemon.send_signal(signal.SIGINT)
        try:
            daemon.wait(30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            log.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "archive.db")) as db:
        played = {g for (g,) in db.execute("SELECT game FROM events")}
    assert played and played <= set(out.stdout.splitlines())


def daemon_status(state_dir: Path) -> dict[str, Any]:
    """The running daemon's /api/status over its control socket ({} when none answers)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(state_dir / "boltrouter.sock"))
            sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: boltrouter\r\n\r\n")
            raw = b"".join(iter(lambda: sock.recv(65536), b""))
    except OSError:
        return {}
    return json.loads(raw.partition(b"\r\n\r\n")[2] or b"{}")


async def test_a_reload_starts_new_pollers_and_applies_new_intervals(tmp_path: Path) -> None:
    rig = await Rig.start(tmp_path, games=GAMES, answers={"boxscores": BOXSCORE}, rest={
        "rate_limit": {"per_minute": 6000, "burst": 100}, "poll": {"games": "1h"}})
    try:
        await rig.wait_for(lambda: rig.rest.calls("get_games"), what="the catalogue")
        assert rig.rest.calls("boxscores") == []
        rig.doc["boltodds"]["rest"]["poll"] = {"games": "1s",
                                               "boxscores": {"games": [BUCS], "every": "1h"}}
        await rig.reload()
        [box] = await rig.wait_for(lambda: rig.of_type("boxscore.updated"), what="a box score")
        assert box.data["home_score"] == 13
        calls = len(rig.rest.calls("get_games"))
        await rig.wait_for(lambda: len(rig.rest.calls("get_games")) >= calls + 2,
                           what="get_games at the new interval")
        assert rig.app.feeds["rest"].connected
    finally:
        await rig.stop()
