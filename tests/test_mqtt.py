"""The mqtt sink against a real Mosquitto: what Home Assistant and other subscribers see."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import orjson
import pytest
from helpers_mqtt import MISSING, Broker, Subscriber, make_certs, mosquitto_binary
from helpers_sinks import start_app, wait_until, write_config

from boltrouter.app import App
from boltrouter.config import ConfigErrors, load_config
from boltrouter.events import Event

BILLS, BENGALS = "Buffalo Bills", "Cincinnati Bengals"
GAME = f"{BILLS} vs {BENGALS}, 2025-12-07, 13"
UID = "uid-bills"
TEAM = "boltrouter/team/buffalo_bills"
CFG = "homeassistant/sensor/boltrouter_buffalo_bills"


def mqtt_config(tmp_path: Path, port: int, *, teams: tuple[str, ...] = (BILLS,),
                extra: str = "", routes: str = "") -> Path:
    team_list = ", ".join(teams)
    return write_config(tmp_path, f"""
state_dir: state
boltodds: {{scores: {{}}}}
sinks:
  ha:
    type: mqtt
    port: {port}
    reconnect_min_delay: 50ms
    reconnect_max_delay: 200ms
    homeassistant:
      republish_delay: 100ms
      track: {{teams: [{team_list}], markets: [Moneyline]}}
{extra}
routes:
  - {{name: scores, when: {{type: "score.*"}}, to: ha}}
{routes}
""")


def game_event(etype: str, data: dict, feed: str = "scores", book: str | None = None,
               game: str = GAME, uid: str = UID, home: str = BILLS,
               away: str = BENGALS) -> Event:
    return Event(etype, data, feed=feed, sport="NFL", sportsbook=book, game=game,
                 universal_id=uid, home=home, away=away)


def score(home: int, away: int, prev: tuple[int, int], **kw: object) -> Event:
    side = "home" if home != prev[0] else "away"
    return game_event("score.changed", {
        "home_score": home, "away_score": away, "prev_home_score": prev[0],
        "prev_away_score": prev[1], "scoring_side": side, "period": 1, "clock": "10:31"}, **kw)


def moneyline(book: str, bills: str, bengals: str) -> Event:
    outcomes = {f"{team} Moneyline": {"odds": odds, "market": "Moneyline", "target": team,
                                      "line": None, "over_under": None,
                                      "link": f"https://{book}.example/bills"}
                for team, odds in ((BILLS, bills), (BENGALS, bengals))}
    return game_event("odds.game_added", {"count": 2, "outcomes": outcomes}, feed="odds",
                      book=book)


def suspend(book: str, old: str) -> Event:
    return game_event("odds.line_suspended", {
        "outcome": f"{BILLS} Moneyline", "market": "Moneyline", "target": BILLS, "line": None,
        "over_under": None, "old_odds": old, "new_odds": None, "old_prob": 0.6,
        "new_prob": None, "link": None}, feed="odds", book=book)


def feed_up(feed: str) -> Event:
    return Event("feed.connected", {"feed": feed}, feed=feed)


def add_to_catalogue(app: App) -> None:
    app.catalogue.update({GAME: {"game": GAME, "universal_id": UID, "sport": "NFL",
                                 "when": "2025-12-07, 01:00 PM",
                                 "orig_teams": f"{BILLS} vs {BENGALS}"}})


def config_topics(sub: Subscriber) -> set[str]:
    return {m.topic for m in sub.under("homeassistant/") if m.topic.endswith("/config")
            and m.payload}


async def test_home_assistant_sees_a_device_per_tracked_team_with_state_and_events(
        broker: Broker, tmp_path: Path) -> None:
    cfg = mqtt_config(tmp_path, broker.port, routes="""
  - name: alerts
    when: {type: game.status_changed}
    to: [{sink: ha, topic: "alerts/{{ home }}", payload: '{"status": "{{ data.status }}"}'}]
""")
    app = await start_app(cfg)
    sink = app.sinks["ha"]
    try:
        add_to_catalogue(app)
        with Subscriber(broker.port, ["homeassistant/#", "boltrouter/#", "alerts/#"]) as sub:
            await wait_until(lambda: sub.last("boltrouter/bridge/state") == b"online",
                             what="bridge online")
            for e in (feed_up("scores"), feed_up("odds"), moneyline("draftkings", "-150", "+130"),
                      moneyline("fanduel", "-140", "+120"),
                      game_event("game.status_changed", {"status": "live",
                                                         "prev_status": "scheduled"}),
                      score(7, 0, (0, 0)), score(7, 10, (7, 0))):
                await app.publish(e)
            await wait_until(lambda: (sub.last_json(TEAM) or {}).get("opponent_score") == 10,
                             what="team state with the latest score")
            await wait_until(lambda: len(sub.on(f"{TEAM}/event")) == 3, what="team events")

            # discovery: retained, QoS 1, names without the device name, stable unique ids
            configs = {t: orjson.loads(sub.last(t)) for t in config_topics(sub)}
            status = configs[f"{CFG}/status/config"]
            assert status["device_class"] == "enum" and status["options"] == ["PRE", "IN", "POST"]
            assert status["device"]["name"] == BILLS and status["name"] == "Status"
            assert [a["topic"] for a in status["availability"]] == [
                "boltrouter/bridge/state", "boltrouter/bridge/feed/scores"]
            odds_cfg = configs[f"{CFG}/odds_moneyline/config"]
            assert "boltrouter/bridge/feed/odds" in [a["topic"] for a in odds_cfg["availability"]]
            assert configs[f"{CFG}/kickoff/config"]["device_class"] == "timestamp"
            event_cfg = configs["homeassistant/event/boltrouter_buffalo_bills/game_event/config"]
            assert event_cfg["event_types"] == ["score_change", "lead_change", "period_end",
                                                "final", "odds_move"]
            bridge = configs["homeassistant/binary_sensor/boltrouter_bridge/odds_feed/config"]
            assert bridge["entity_category"] == "diagnostic"
            assert all(BILLS not in c["name"] for c in configs.values())
            ids = [c["unique_id"] for c in configs.values()]
            assert len(ids) == len(set(ids)) == sink.stats()["entities"]
            with Subscriber(broker.port, [f"{CFG}/status/config"]) as late:
                await wait_until(lambda: late.on(f"{CFG}/status/config"), what="retained config")
                assert late.on(f"{CFG}/status/config")[0].retain
                assert late.on(f"{CFG}/status/config")[0].qos == 1

            # retained state: numbers for numeric sensors, raw values for enum and timestamp
            state = sub.last_json(TEAM)
            assert (state["team_score"], state["opponent_score"]) == (7, 10)
            assert state["opponent"] == BENGALS and state["home_away"] == "home"
            assert state["odds"]["moneyline"]["value"] == pytest.approx(1.714)
            assert state["odds"]["moneyline"]["attributes"]["american"] == "-140"
            assert state["odds"]["moneyline"]["attributes"]["book"] == "fanduel"
            assert sub.last(f"{TEAM}/status") == b"IN"
            assert sub.last(f"{TEAM}/kickoff") == b"2025-12-07T18:00:00.000+00:00"
            assert sub.last("boltrouter/bridge/feed/odds") == b"online"
            game = sub.last_json(f"boltrouter/game/{UID}")
            assert (game["home_score"], game["away_score"], game["status"]) == (7, 10, "IN")

            # the event entity: score changes carry the previous scores; the lead changed
            events = [m.json() for m in sub.on(f"{TEAM}/event")]
            assert [e["event_type"] for e in events] == ["score_change", "score_change",
                                                         "lead_change"]
            assert (events[1]["prev_team_score"], events[1]["prev_opponent_score"]) == (7, 0)
            assert (events[1]["team_score"], events[1]["opponent_score"]) == (7, 10)
            assert events[2]["leader"] == "opponent"

            # routed events: the envelope on <base>/event/<type>, or the route's templates
            routed = [m.json() for m in sub.on("boltrouter/event/score.changed")]
            assert [r["data"]["away_score"] for r in routed] == [0, 10]
            assert all(not m.retain for m in sub.on("boltrouter/event/score.changed"))
            assert sub.last_json(f"alerts/{BILLS}") == {"status": "live"}

            # suspended odds fall back to the other book, then to unknown (null, never text)
            await app.publish(suspend("fanduel", "-140"))
            await wait_until(lambda: sub.last_json(TEAM)["odds"]["moneyline"]["value"]
                             == pytest.approx(1.667), what="draftkings price")
            await app.publish(suspend("draftkings", "-150"))
            await wait_until(lambda: sub.last_json(TEAM)["odds"]["moneyline"]["value"] is None,
                             what="no price at all")

            await app.publish(game_event("game.period_changed", {"period": 2, "prev_period": 1}))
            await app.publish(game_event("game.status_changed", {"status": "final",
                                                                 "prev_status": "live"}))
            await wait_until(lambda: len(sub.on(f"{TEAM}/event")) == 5, what="period and final")
            period_end, final = (m.json() for m in sub.on(f"{TEAM}/event")[3:])
            assert period_end["event_type"] == "period_end" and period_end["period"] == 1
            assert final["event_type"] == "final" and final["result"] == "loss"
            await wait_until(lambda: sub.last(f"{TEAM}/status") == b"POST", what="status POST")
            restored = suspend("draftkings", "-150")
            restored.type, restored.data["new_odds"] = "odds.line_restored", "+120"
            await app.publish(restored)
            await wait_until(lambda: len(sub.on(f"{TEAM}/event")) == 6, what="odds move")
            move = sub.on(f"{TEAM}/event")[5].json()
            assert move["event_type"] == "odds_move" and move["american"] == "+120"
            assert move["prev_prob"] == pytest.approx(0.6) and move["value"] == pytest.approx(2.2)
            info = sub.last_json("boltrouter/bridge/info")
            assert info["feeds"]["odds"] == "online" and info["tracked_teams"] == [BILLS]
            assert isinstance(info["events_per_second"], float) and info["dropped"] == 0
    finally:
        await app.stop()
    with Subscriber(broker.port, ["boltrouter/bridge/state"]) as after:
        await wait_until(lambda: after.last("boltrouter/bridge/state") == b"offline",
                         what="offline after shutdown")


async def test_device_based_discovery_over_mqtt_5_sends_one_config_per_device(
        broker: Broker, tmp_path: Path) -> None:
    cfg = mqtt_config(tmp_path, broker.port).read_text().replace(
        "republish_delay: 100ms", "republish_delay: 100ms\n      device_based: true").replace(
        "    type: mqtt\n", "    type: mqtt\n    protocol: 5\n")
    cfg_path = tmp_path / "device.yaml"
    cfg_path.write_text(cfg)
    app = await start_app(cfg_path)
    try:
        with Subscriber(broker.port, ["homeassistant/#"]) as sub:
            topic = "homeassistant/device/boltrouter_buffalo_bills/config"
            await wait_until(lambda: sub.last(topic), what="device config")
            doc = orjson.loads(sub.last(topic))
            assert doc["dev"]["name"] == BILLS
            assert doc["cmps"]["status"]["p"] == "sensor"
            assert doc["cmps"]["game_event"]["p"] == "event"
            assert "homeassistant/device/boltrouter_bridge/config" in config_topics(sub)
            assert not [t for t in config_topics(sub) if "/sensor/" in t]
    finally:
        await app.stop()


async def test_broker_killed_and_restarted_mid_stream_loses_no_event_beyond_the_bound(
        broker: Broker, tmp_path: Path) -> None:
    cfg = mqtt_config(tmp_path, broker.port, teams=(), extra="    max_queued: 5")
    app = await start_app(cfg)
    sink = app.sinks["ha"]
    try:
        with Subscriber(broker.port, ["boltrouter/event/#", "boltrouter/game/#"],
                        client_id="events-reader", persistent=True) as sub:
            await wait_until(lambda: sink.connected, what="sink connected")
            before = [score(n, 0, (n - 1, 0)) for n in range(1, 4)]
            for e in before:
                await app.publish(e)
            received = lambda: {m.json()["id"] for m in sub.on("boltrouter/event/score.changed")}  # noqa: E731
            await wait_until(lambda: received() == {e.id for e in before}, what="first events")

            broker.save()   # the reader's session survives the crash, as with a real broker
            broker.kill()
            await wait_until(lambda: not sink.connected, what="sink notices the broker is gone")
            during = [score(n, 0, (n - 1, 0)) for n in range(4, 12)]
            for e in during:
                await app.publish(e)
            await wait_until(lambda: sink.stats()["queued"] + sink.stats()["dropped"] == 8,
                             what="events held")
            assert sink.stats()["dropped"] == 3 and sink.stats()["queued"] == 5
            assert not app.status()["sinks"]["ha"]["healthy"]

            broker.start()
            await wait_until(lambda: sink.connected, what="sink reconnected", timeout=20)
            kept = {e.id for e in before + during[3:]}
            await wait_until(lambda: received() >= kept, what="held events delivered",
                             timeout=20)
            assert not received() & {e.id for e in during[:3]}
            # the game's state changed 8 times while the broker was away: only the last is sent
            game = f"boltrouter/game/{UID}"
            await wait_until(lambda: (sub.last_json(game) or {}).get("home_score") == 11,
                             what="current game state")
            assert {m.json()["home_score"] for m in sub.on(game)} <= {1, 2, 3, 11}
        with Subscriber(broker.port, ["boltrouter/#"]) as fresh:
            await wait_until(lambda: fresh.last("boltrouter/bridge/state") == b"online",
                             what="bridge online again")
            await wait_until(lambda: (fresh.last_json(f"boltrouter/game/{UID}") or {})
                             .get("home_score") == 11, what="current game state")
    finally:
        await app.stop()


async def test_home_assistant_online_message_triggers_exactly_one_republish(
        broker: Broker, tmp_path: Path) -> None:
    app = await start_app(mqtt_config(tmp_path, broker.port))
    sink = app.sinks["ha"]
    try:
        with Subscriber(broker.port, ["homeassistant/#", "boltrouter/bridge/response/#"]) as sub:
            await wait_until(lambda: len(config_topics(sub)) == sink.stats()["entities"],
                             what="every config")
            topics = config_topics(sub)
            before = Counter(m.topic for m in sub.under("homeassistant/") if m.topic in topics)
            sub.publish("homeassistant/status", "online")
            await wait_until(lambda: all(len(sub.on(t)) == before[t] + 1 for t in topics),
                             what="configs sent again")
            sub.publish("boltrouter/bridge/request/resubscribe", '{"transaction": "after"}')
            await wait_until(lambda: sub.on("boltrouter/bridge/response/resubscribe"),
                             what="a later response")
            assert all(len(sub.on(t)) == before[t] + 1 for t in topics)
            assert sink.stats()["republishes"] == 1
    finally:
        await app.stop()


async def test_untracking_a_team_and_restarting_removes_its_entities(
        broker: Broker, tmp_path: Path) -> None:
    knicks = "New York Knicks"
    app = await start_app(mqtt_config(tmp_path, broker.port, teams=(BILLS, knicks)))
    with Subscriber(broker.port, ["homeassistant/#", "boltrouter/#"]) as sub:
        try:
            await wait_until(lambda: len(config_topics(sub)) == app.sinks["ha"].stats()["entities"]
                             and sub.last("boltrouter/team/new_york_knicks/status"),
                             what="both devices")
        finally:
            await app.stop()
        knicks_topics = {t for t in sub.retained() if "new_york_knicks" in t}
        assert any(t.endswith("/config") for t in knicks_topics)
        assert "boltrouter/team/new_york_knicks" in knicks_topics

        app = await start_app(mqtt_config(tmp_path, broker.port, teams=(BILLS,)))
        try:
            await wait_until(lambda: all(sub.last(t) == b"" for t in knicks_topics),
                             what="empty retained configs for the untracked team")
            with Subscriber(broker.port, ["homeassistant/#", "boltrouter/#"]) as fresh:
                await wait_until(lambda: fresh.last(f"{CFG}/status/config"), what="bills config")
                assert not [t for t in fresh.retained() if "new_york_knicks" in t]
                assert "homeassistant/sensor/boltrouter_bridge/events_per_second/config" \
                    in fresh.retained()
        finally:
            await app.stop()


async def test_bad_broker_credentials_give_a_clear_error_and_the_daemon_goes_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if mosquitto_binary() is None:
        pytest.skip(MISSING)
    broker = Broker(tmp_path / "auth", users={"ha": "right-horse-battery"})
    broker.start()
    caplog.set_level(logging.INFO)
    cfg = write_config(tmp_path, f"""
state_dir: state
sinks:
  good: {{type: mqtt, port: {broker.port}, username: ha, password: right-horse-battery,
          base_topic: good, homeassistant: {{discovery: false}}}}
  bad: {{type: mqtt, port: {broker.port}, username: ha, password: wrong-staple-99,
         base_topic: bad, reconnect_min_delay: 50ms, reconnect_max_delay: 200ms}}
routes:
  - {{name: all, when: {{type: "*"}}, to: [good, bad]}}
""")
    app = await start_app(cfg)
    try:
        bad, good = app.sinks["bad"], app.sinks["good"]
        await wait_until(lambda: "not authorised" in (bad.stats()["last_error"] or ""),
                         what="the refusal")
        await wait_until(lambda: good.connected, what="the good sink connected")
        error = bad.stats()["last_error"]
        assert f"127.0.0.1:{broker.port}" in error and "'bad'" in error
        assert "username and password" in error
        assert app.metrics.total("mqtt_connect_refused", sink="bad") >= 1
        with Subscriber(broker.port, ["good/#"], username="ha",
                        password="right-horse-battery") as sub:
            await app.publish(score(1, 0, (0, 0)))
            await wait_until(lambda: sub.on("good/event/score.changed"), what="delivered")
        await wait_until(lambda: bad.stats()["queued"] == 1, what="held for the bad sink")
        assert not app.status()["sinks"]["bad"]["healthy"]
    finally:
        await app.stop()
        broker.stop()
    assert "not authorised" in caplog.text
    for secret in ("wrong-staple-99", "right-horse-battery"):
        assert secret not in caplog.text


async def test_track_command_over_mqtt_adds_a_device_and_answers_with_the_transaction(
        broker: Broker, tmp_path: Path) -> None:
    cfg = mqtt_config(tmp_path, broker.port)
    app = await start_app(cfg)
    sink = app.sinks["ha"]
    bengals_cfg = "homeassistant/sensor/boltrouter_cincinnati_bengals/status/config"
    try:
        with Subscriber(broker.port, ["homeassistant/#", "boltrouter/#"]) as sub:
            await wait_until(lambda: len(config_topics(sub)) == sink.stats()["entities"],
                             what="every config")
            before = Counter(m.topic for m in sub.under("homeassistant/"))
            sub.publish("boltrouter/bridge/request/track",
                        orjson.dumps({"team": BENGALS, "transaction": 42}))
            await wait_until(lambda: sub.on("boltrouter/bridge/response/track"), what="answer")
            answer = sub.last_json("boltrouter/bridge/response/track")
            assert answer["status"] == "ok" and answer["transaction"] == 42
            assert answer["data"]["tracked"] == [BILLS, BENGALS]
            await wait_until(lambda: sub.last(bengals_cfg), what="the new device")
            await app.publish(score(0, 3, (0, 0)))
            await wait_until(lambda: (sub.last_json("boltrouter/team/cincinnati_bengals") or {})
                             .get("team_score") == 3, what="the new team's state")
            unchanged = [t for t in before if "cincinnati_bengals" not in t]
            assert all(len(sub.on(t)) == before[t] for t in unchanged)   # not sent again

            sub.publish("boltrouter/bridge/request/untrack", '{"team": "Nobody", '
                                                             '"transaction": "t2"}')
            await wait_until(lambda: sub.on("boltrouter/bridge/response/untrack"),
                             what="refusal")
            refusal = sub.last_json("boltrouter/bridge/response/untrack")
            assert refusal["status"] == "error" and refusal["transaction"] == "t2"
            assert "not tracked" in refusal["error"] and BENGALS in refusal["error"]
    finally:
        await app.stop()
    app = await start_app(cfg)
    try:
        assert app.sinks["ha"].stats()["tracked_teams"] == [BILLS, BENGALS]
    finally:
        await app.stop()


def test_bad_mqtt_options_are_config_errors_naming_the_option(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  ha: {type: mqtt, port: 70000, hots: broker.lan, password: hunter2-secret, protocol: 4,
       homeassistant: {prefix: "home/#", track: {team: [x]}}}
""")
    with pytest.raises(ConfigErrors) as err:
        load_config(cfg)
    text = str(err.value)
    assert "sinks.ha.port: must be a TCP port from 1 to 65535, not 70000" in text
    assert "unknown key 'hots'; did you mean 'host'?" in text
    assert "sinks.ha.protocol: '4' is not allowed" in text
    assert "sinks.ha.homeassistant.prefix" in text
    assert "unknown key 'team'; did you mean 'teams'?" in text
    assert "sinks.ha.password: a password needs a username" in text
    assert "hunter2-secret" not in text


async def test_a_team_tracked_over_mqtt_follows_its_game_from_the_simulated_feeds(
        broker: Broker, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, f"""
state_dir: state
simulator: {{seed: 5, games: 6, updates_per_second: 100}}
boltodds:
  odds: {{backoff_base: 0.1s, backoff_max: 0.3s}}
  scores: {{}}
  rest: {{poll: {{games: 1h}}}}
sinks:
  ha: {{type: mqtt, port: {broker.port}, homeassistant: {{track: {{markets: [Moneyline]}}}}}}
""")
    app = App(load_config(cfg))
    await app.start()
    try:
        with Subscriber(broker.port, ["boltrouter/#"]) as sub:
            await wait_until(lambda: sub.last("boltrouter/bridge/feed/odds") == b"online",
                             what="odds feed online", timeout=20)
            def priced_game() -> object:
                for _book, name, _key, line in app.board.iter_lines():
                    ref = app.catalogue.resolve(name)
                    if ref is not None and line.market == "Moneyline" and line.odds:
                        return ref
                return None

            ref = await wait_until(priced_game, what="a priced game in the catalogue",
                                   timeout=20)
            sub.publish("boltrouter/bridge/request/track",
                        orjson.dumps({"team": ref.home, "transaction": "sim"}))
            topic = f"boltrouter/team/{ref.home.lower().replace(' ', '_').replace('.', '')}"
            state = await wait_until(
                lambda: (s := sub.last_json(topic)) and s["odds"]["moneyline"]["value"] and s,
                what="the team's game with a price", timeout=20)
            game = app.catalogue.resolve(state["game"])
            assert game is not None and ref.home in (game.home, game.away)
            assert state["kickoff"] == game.start
            await wait_until(lambda: sub.last(f"{topic}/status") in (b"PRE", b"IN", b"POST"),
                             what="the team's status sensor", timeout=20)
            assert isinstance(state["odds"]["moneyline"]["value"], float)
    finally:
        await app.stop()


async def test_reloading_the_tracked_teams_changes_devices_without_going_offline(
        broker: Broker, tmp_path: Path) -> None:
    knicks_cfg = "homeassistant/sensor/boltrouter_new_york_knicks/status/config"
    app = await start_app(mqtt_config(tmp_path, broker.port))
    sink = app.sinks["ha"]
    try:
        with Subscriber(broker.port, ["homeassistant/#", "boltrouter/bridge/state"]) as sub:
            await wait_until(lambda: sub.last(f"{CFG}/status/config"), what="bills device")
            mqtt_config(tmp_path, broker.port, teams=("New York Knicks",))
            assert await app.reload() == []
            await wait_until(lambda: sub.last(knicks_cfg), what="knicks device")
            await wait_until(lambda: sub.last(f"{CFG}/status/config") == b"",
                             what="bills device removed")
            assert app.sinks["ha"] is sink
            assert b"offline" not in [m.payload for m in sub.on("boltrouter/bridge/state")]
    finally:
        await app.stop()


async def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    if mosquitto_binary() is None:
        pytest.skip(MISSING)
    certs = make_certs(tmp_path / "certs")
    if certs is None:
        pytest.skip("openssl is not installed: it makes the test certificates")
    tls_broker = Broker(tmp_path / "tls", certs=certs)
    tls_broker.start()
    cfg = write_config(tmp_path, f"""
state_dir: state
sinks:
  ha:
    type: mqtt
    port: {tls_broker.tls_port}
    tls: {{ca_file: {certs["ca"]}, cert_file: {certs["client_cert"]},
          key_file: {certs["client_key"]}}}
    homeassistant: {{discovery: false}}
routes:
  - {{name: scores, when: {{type: "score.*"}}, to: ha}}
""")
    app = await start_app(cfg)
    try:
        with Subscriber(tls_broker.port, ["boltrouter/#"]) as sub:
            await wait_until(lambda: sub.last("boltrouter/bridge/state") == b"online",
                             what="online over TLS")
            await app.publish(score(3, 0, (0, 0)))
            await wait_until(lambda: sub.on("boltrouter/event/score.changed"), what="event")
    finally:
        await app.stop()
        tls_broker.stop()


async def test_a_team_device_moves_on_to_the_next_game_once_the_current_one_is_over(
        broker: Broker, tmp_path: Path) -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    eastern = datetime.now(ZoneInfo("America/New_York"))
    entries = {uid: {"game": f"{BILLS} vs {away}, {start:%Y-%m-%d, %H}", "universal_id": uid,
                     "sport": "NFL", "when": f"{start:%Y-%m-%d, %I:%M %p}",
                     "orig_teams": f"{BILLS} vs {away}"}
               for uid, away, start in (("today", BENGALS, eastern - timedelta(hours=1)),
                                        ("next", "Miami Dolphins", eastern + timedelta(days=3)))}
    today = entries["today"]["game"]
    cfg = mqtt_config(tmp_path, broker.port).read_text().replace(
        "republish_delay: 100ms", "republish_delay: 100ms\n      final_hold: 0s")
    cfg_path = tmp_path / "hold.yaml"
    cfg_path.write_text(cfg)
    app = await start_app(cfg_path)
    try:
        app.catalogue.update({e["game"]: e for e in entries.values()})
        with Subscriber(broker.port, ["boltrouter/team/#"]) as sub:
            team = lambda: sub.last_json(TEAM) or {}  # noqa: E731
            await wait_until(lambda: team().get("universal_id") == "today", what="today's game")
            await app.publish(game_event("game.status_changed",
                                         {"status": "live", "prev_status": "scheduled"},
                                         game=today, uid="today"))
            await app.publish(score(3, 0, (0, 0), game=today, uid="today"))
            await wait_until(lambda: team().get("team_score") == 3, what="live score")
            assert sub.last(f"{TEAM}/status") == b"IN"
            await app.publish(game_event("game.status_changed",
                                         {"status": "final", "prev_status": "live"},
                                         game=today, uid="today"))
            await wait_until(lambda: team().get("universal_id") == "next", what="the next game")
            assert team()["opponent"] == "Miami Dolphins" and team()["team_score"] is None
            await wait_until(lambda: sub.last(f"{TEAM}/status") == b"PRE", what="next is PRE")
            assert [m.json()["event_type"] for m in sub.on(f"{TEAM}/event")] == [
                "score_change", "final"]
    finally:
        await app.stop()


async def test_a_team_untracked_over_mqtt_stays_untracked_until_the_config_lists_it_anew(
        broker: Broker, tmp_path: Path) -> None:
    both = (BILLS, BENGALS)
    app = await start_app(mqtt_config(tmp_path, broker.port, teams=both))
    try:
        with Subscriber(broker.port, ["homeassistant/#", "boltrouter/bridge/response/#"]) as sub:
            await wait_until(lambda: sub.last(f"{CFG}/status/config"), what="bills device")
            sub.publish("boltrouter/bridge/request/untrack", BILLS)
            await wait_until(lambda: sub.last(f"{CFG}/status/config") == b"",
                             what="bills entities removed")
            assert sub.last_json("boltrouter/bridge/response/untrack")["data"]["tracked"] == [
                BENGALS]
    finally:
        await app.stop()
    for teams, expected in ((both, [BENGALS]), ((BENGALS,), [BENGALS]), (both, list(both))):
        app = await start_app(mqtt_config(tmp_path, broker.port, teams=teams))
        try:
            assert app.sinks["ha"].stats()["tracked_teams"] == expected
        finally:
            await app.stop()
