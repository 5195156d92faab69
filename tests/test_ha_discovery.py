"""The discovery configs and state payloads as Home Assistant's MQTT integration reads them.

Home Assistant cannot be installed next to boltrouter (it needs a newer Python), so
``ha_problems`` re-states the rules its MQTT integration applies to a discovery message,
as documented on home-assistant.io (MQTT discovery, sensor, binary sensor and event
pages) and enforced by its config validation: the discovery topic pattern, the keys each
platform knows, the device and origin mappings, availability, the sensor rules for
``enum``/``timestamp``/numeric sensors and the event entity's ``event_types``.
``render`` evaluates value templates the way the integration does (``value`` and
``value_json``; JSON ``null`` renders as ``None``, which a sensor turns into unknown).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import orjson
import pytest
import yaml
from helpers_mqtt import Broker, Subscriber
from helpers_sinks import start_app, wait_until, write_config

from boltrouter.events import Event
from boltrouter.sinks import ha_discovery as ha

BILLS, BENGALS = "Buffalo Bills", "Cincinnati Bengals"
GAME = f"{BILLS} vs {BENGALS}, 2025-12-07, 13"
UID = "uid-bills"

# --- the rules -------------------------------------------------------------------------------

TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node>[a-zA-Z0-9_-]+)/)?"
                   r"(?P<object>[a-zA-Z0-9_-]+)/config")
ABBREVIATIONS = {"dev": "device", "o": "origin", "cmps": "components", "p": "platform",
                 "uniq_id": "unique_id", "stat_t": "state_topic", "val_tpl": "value_template",
                 "avty": "availability", "avty_mode": "availability_mode",
                 "dev_cla": "device_class", "stat_cla": "state_class",
                 "unit_of_meas": "unit_of_measurement", "json_attr_t": "json_attributes_topic",
                 "json_attr_tpl": "json_attributes_template", "ent_cat": "entity_category",
                 "evt_typ": "event_types", "ops": "options", "ic": "icon",
                 "sug_dsp_prc": "suggested_display_precision", "pl_on": "payload_on",
                 "pl_off": "payload_off", "t": "topic"}
ENTITY_KEYS = {"availability", "availability_mode", "availability_topic",
               "availability_template", "payload_available", "payload_not_available",
               "device", "origin", "enabled_by_default", "entity_category", "entity_picture",
               "icon", "json_attributes_topic", "json_attributes_template", "object_id",
               "default_entity_id", "unique_id", "name", "qos", "encoding", "state_topic",
               "value_template"}
PLATFORM_KEYS = {
    "sensor": ENTITY_KEYS | {"device_class", "expire_after", "force_update", "options",
                             "last_reset_value_template", "suggested_display_precision",
                             "state_class", "unit_of_measurement"},
    "binary_sensor": ENTITY_KEYS | {"device_class", "expire_after", "force_update",
                                    "off_delay", "payload_on", "payload_off"},
    "event": ENTITY_KEYS | {"device_class", "event_types"},
}
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
            "event": {"state_topic", "event_types"}}
DEVICE_KEYS = {"identifiers", "connections", "manufacturer", "model", "model_id", "name",
               "hw_version", "serial_number", "sw_version", "via_device", "suggested_area",
               "configuration_url"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
DEVICE_DISCOVERY_KEYS = {"device", "origin", "components", "availability",
                         "availability_mode", "availability_topic", "availability_template",
                         "payload_available", "payload_not_available", "state_topic",
                         "command_topic", "qos", "encoding", "message_expiry_interval"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
ATTRIBUTES_BLOCKED = {"assumed_state", "available", "context_recent_time", "device_class",
                      "device_info", "entity_category", "entity_picture",
                      "entity_registry_enabled_default", "extra_state_attributes",
                      "force_update", "friendly_name", "icon", "name", "should_poll", "state",
                      "supported_features", "unique_id", "unit_of_measurement"}
JINJA = jinja2.Environment()


def expand(doc: dict[str, Any]) -> dict[str, Any]:
    return {ABBREVIATIONS.get(k, k): v for k, v in doc.items()}


def template_problem(where: str, text: Any) -> str | None:
    if not isinstance(text, str):
        return f"{where}: a template must be a string"
    try:
        JINJA.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"{where}: invalid template {text!r}: {exc}"
    return None


def entity_problems(platform: str, config: dict[str, Any], where: str,
                    device_based: bool = False) -> list[str]:
    """What Home Assistant refuses (or mishandles) in one entity config."""
    out = []
    config = expand(config)
    unknown = set(config) - PLATFORM_KEYS[platform]
    if unknown:
        out.append(f"{where}: keys {sorted(unknown)} are not {platform} options")
    for key in sorted(REQUIRED[platform] - set(config)):
        out.append(f"{where}: {key} is required")
    if not isinstance(config.get("unique_id"), str) or not config["unique_id"]:
        out.append(f"{where}: needs a unique_id (entity registry, device-based discovery)")
    for key in ("value_template", "json_attributes_template"):
        if key in config and (problem := template_problem(f"{where}.{key}", config[key])):
            out.append(problem)
    avail = config.get("availability")
    if avail is not None:
        if "availability_topic" in config:
            out.append(f"{where}: availability and availability_topic exclude each other")
        if not isinstance(avail, list) or not avail:
            out.append(f"{where}: availability must be a non-empty list")
        else:
            for item in map(expand, avail):
                if not isinstance(item.get("topic"), str) or set(item) - {
                        "topic", "payload_available", "payload_not_available", "value_template"}:
                    out.append(f"{where}: availability item {item} is not valid")
    if config.get("availability_mode", "latest") not in ("all", "any", "latest"):
        out.append(f"{where}: availability_mode must be all, any or latest")
    if "entity_category" in config and config["entity_category"] != "diagnostic":
        out.append(f"{where}: a read-only entity may only be a diagnostic entity")
    if "name" in config and not (config["name"] is None or isinstance(config["name"], str)):
        out.append(f"{where}: name must be a string or null")
    if device_based:
        if "device" in config or "origin" in config:
            out.append(f"{where}: device and origin belong to the device message only")
    else:
        out += device_problems(config.get("device"), where)
        out += origin_problems(config.get("origin"), where)
    if isinstance(config.get("device"), dict) and isinstance(config.get("name"), str):
        device_name = str(config["device"].get("name") or "")
        if device_name and config["name"].casefold().startswith(device_name.casefold()):
            out.append(f"{where}: the name repeats the device name {device_name!r}")
    if platform == "sensor":
        out += sensor_problems(config, where)
    if platform == "event":
        types = config.get("event_types")
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            out.append(f"{where}: event_types must be a non-empty list of strings")
    return out


def sensor_problems(config: dict[str, Any], where: str) -> list[str]:
    out = []
    device_class = config.get("device_class")
    options = config.get("options")
    numeric = bool(config.get("state_class") or config.get("unit_of_measurement"))
    if options is not None:
        if not isinstance(options, list) or not options:
            out.append(f"{where}: options must be a non-empty list")
        if numeric:
            out.append(f"{where}: options cannot go with state_class or unit_of_measurement")
        if device_class != "enum":
            out.append(f"{where}: options need device_class enum")
    if device_class == "enum" and options is None:
        out.append(f"{where}: an enum sensor needs its options")
    if device_class in ("timestamp", "date") and numeric:
        out.append(f"{where}: a {device_class} sensor has no state_class or unit")
    if config.get("state_class") is not None and config["state_class"] not in STATE_CLASSES:
        out.append(f"{where}: state_class {config['state_class']!r} does not exist")
    precision = config.get("suggested_display_precision")
    if precision is not None and not (isinstance(precision, int) and precision >= 0):
        out.append(f"{where}: suggested_display_precision must be a positive integer")
    return out


def device_problems(device: Any, where: str) -> list[str]:
    if device is None:
        return [f"{where}: no device (the entities would not be grouped)"]
    device = expand(device)
    out = []
    if set(device) - DEVICE_KEYS:
        out.append(f"{where}: device keys {sorted(set(device) - DEVICE_KEYS)} are unknown")
    ids = device.get("identifiers")
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
        out.append(f"{where}: device identifiers must be a non-empty list of strings")
    if not isinstance(device.get("name"), str):
        out.append(f"{where}: the device needs a name")
    return out


def origin_problems(origin: Any, where: str, required: bool = False) -> list[str]:
    if origin is None:
        return [f"{where}: origin is required"] if required else []
    if not isinstance(origin, dict) or not isinstance(origin.get("name"), str) \
            or set(origin) - ORIGIN_KEYS:
        return [f"{where}: origin must have a name and only {sorted(ORIGIN_KEYS)}"]
    return []


def ha_problems(topic: str, payload: bytes, prefix: str = "homeassistant") -> list[str]:
    """Every rule of Home Assistant's MQTT discovery that this message breaks."""
    if not topic.startswith(prefix + "/"):
        return [f"{topic}: not under the discovery prefix {prefix}"]
    match = TOPIC.fullmatch(topic[len(prefix) + 1:])
    if match is None:
        return [f"{topic}: node and object ids may only hold [a-zA-Z0-9_-]"]
    component = match["component"]
    if not payload:
        return []   # removal
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return [f"{topic}: the payload is not JSON"]
    if not isinstance(doc, dict):
        return [f"{topic}: the payload must be a JSON object"]
    if component in PLATFORM_KEYS:
        return entity_problems(component, doc, topic)
    if component != "device":
        return [f"{topic}: {component} is not a component boltrouter should use"]
    doc = expand(doc)
    out = []
    if set(doc) - DEVICE_DISCOVERY_KEYS:
        out.append(f"{topic}: keys {sorted(set(doc) - DEVICE_DISCOVERY_KEYS)} are not "
                   "shared device options")
    out += device_problems(doc.get("device"), topic)
    out += origin_problems(doc.get("origin"), topic, required=True)
    components = doc.get("components")
    if not isinstance(components, dict) or not components:
        return [*out, f"{topic}: components must be a non-empty mapping"]
    for key, cmp in components.items():
        where = f"{topic}#{key}"
        cmp = expand(cmp)
        platform = cmp.pop("platform", None)
        if platform not in PLATFORM_KEYS:
            out.append(f"{where}: platform {platform!r} is missing or not used here")
        elif cmp:   # a platform alone removes the component
            shared = {k: v for k, v in doc.items() if k in ("state_topic", "qos")}
            out += entity_problems(platform, {**shared, **cmp}, where, device_based=True)
    return out


def render(template: str, payload: bytes) -> str:
    """A value template's result as Home Assistant computes it from a payload."""
    text = payload.decode()
    try:
        value_json = orjson.loads(payload)
    except orjson.JSONDecodeError:
        value_json = None
    return JINJA.from_string(template).render(value=text, value_json=value_json)


def state_problems(where: str, config: dict[str, Any], state: str) -> list[str]:
    """What a sensor would reject: text in a numeric sensor, an option it does not list..."""
    if state == "None":
        return []   # unknown
    if config.get("state_class") or config.get("unit_of_measurement") \
            or "suggested_display_precision" in config:
        try:
            float(state)
        except ValueError:
            return [f"{where}: numeric sensor got {state!r}"]
    if config.get("device_class") == "enum" and state not in config["options"]:
        return [f"{where}: enum sensor got {state!r}, not one of {config['options']}"]
    if config.get("device_class") == "timestamp":
        try:
            when = datetime.fromisoformat(state)
        except ValueError:
            return [f"{where}: timestamp sensor got {state!r}"]
        if when.tzinfo is None:
            return [f"{where}: timestamp {state!r} has no time zone"]
    return []


def seen_by_ha(config: dict[str, Any], payloads: dict[str, bytes], where: str) -> list[str]:
    """Render an entity's state and attributes from the retained payloads it subscribes to."""
    out = []
    payload = payloads.get(config["state_topic"])
    if payload is None:
        return [f"{where}: nothing retained on {config['state_topic']}"]
    state = render(config["value_template"], payload) if "value_template" in config \
        else payload.decode()
    out += state_problems(where, config, state)
    if "json_attributes_topic" in config:
        raw = payloads.get(config["json_attributes_topic"], b"")
        attrs = orjson.loads(render(config.get("json_attributes_template", "{{ value }}"), raw))
        if not isinstance(attrs, dict):
            out.append(f"{where}: attributes must render a JSON object, got {attrs!r}")
        elif set(attrs) & ATTRIBUTES_BLOCKED:
            out.append(f"{where}: Home Assistant drops the attributes "
                       f"{sorted(set(attrs) & ATTRIBUTES_BLOCKED)}")
    return out


# --- configs built without a broker ------------------------------------------------------------

SETTINGS = ha.HaSettings(feeds=("odds", "scores"), score_feed="scores", odds_feed="odds",
                         markets=("Moneyline", "1st Half Moneyline", "Total"))


def configs(settings: ha.HaSettings, teams: list[str]) -> dict[str, bytes]:
    return {t: orjson.dumps(c) for t, c in ha.discovery_configs(settings, teams).items()}


@pytest.mark.parametrize("device_based", [False, True], ids=["per-component", "device-based"])
@pytest.mark.parametrize("odds_format", ["decimal", "probability"])
def test_every_discovery_config_passes_home_assistants_rules(device_based: bool,
                                                             odds_format: str) -> None:
    settings = ha.HaSettings(feeds=SETTINGS.feeds, score_feed="scores", odds_feed="odds",
                             markets=SETTINGS.markets, device_based=device_based,
                             odds_format=odds_format)
    published = configs(settings, [BILLS, "New York Knicks"])
    assert [p for t, b in published.items() for p in ha_problems(t, b)] == []
    ids = [c["unique_id"] for doc in map(orjson.loads, published.values())
           for c in (doc["cmps"].values() if device_based else [doc])]
    assert len(ids) == len(set(ids)) == 2 * 11 + 4


def test_a_market_key_starting_with_a_digit_still_gives_a_valid_template() -> None:
    # Home Assistant validates value_template when it reads the config: `odds.1st_half_...`
    # is a Jinja syntax error and the whole entity would be refused
    published = configs(SETTINGS, [BILLS])
    odds = orjson.loads(published[
        "homeassistant/sensor/boltrouter_buffalo_bills/odds_1st_half_moneyline/config"])
    assert ha_problems("homeassistant/sensor/x/odds/config", orjson.dumps(odds)) == []
    state = {"odds": {"1st_half_moneyline": {"value": 1.91, "attributes": {"book": "fd"}}}}
    assert render(odds["value_template"], orjson.dumps(state)) == "1.91"
    assert orjson.loads(render(odds["json_attributes_template"], orjson.dumps(state))) == {
        "book": "fd"}


def test_names_do_not_repeat_the_device_name_and_the_bridge_is_not_named_twice() -> None:
    docs = [orjson.loads(b) for b in configs(SETTINGS, [BILLS]).values()]
    bridge = {d["device"]["name"] for d in docs if d["device"]["identifiers"] == [
        "boltrouter_bridge"]}
    assert bridge == {"boltrouter bridge"}
    other = ha.discovery_configs(ha.HaSettings(base="stadium"), [])
    assert {c["device"]["name"] for c in other.values()} == {"boltrouter bridge stadium"}
    # has_entity_name: Home Assistant shows "<device> <name>"; entity ids follow from it
    assert {d["name"] for d in docs if d["device"]["name"] == BILLS} >= {
        "Status", "Score", "Opponent score", "Kickoff", "Game event", "Moneyline odds"}


def test_sensors_read_numbers_options_and_zoned_timestamps_from_the_state_payloads() -> None:
    # what the sink publishes for a team: before any game is known, then during one
    full = ha.GameInfo(key=UID, universal_id=UID, name=GAME, sport="NFL", home=BILLS,
                       away=BENGALS, start="2025-12-07T18:00:00.000+00:00", status="IN",
                       home_score=7, away_score=10, period=2, clock="03:12")
    full.lines[("fanduel", f"{BILLS} Moneyline")] = ha.Line("Moneyline", BILLS, None, None,
                                                            "-140", "https://fd.example/b")
    naive = ha.GameInfo(key=UID, universal_id=UID, name=GAME, home=BILLS, away=BENGALS,
                        start="2025-12-07T18:00:00", status="scheduled")
    for game in (None, full, naive):
        state = ha.team_state(BILLS, game, SETTINGS)
        topics = ha.team_topics("boltrouter", BILLS)
        payloads = {topics["state"]: orjson.dumps(state),
                    topics["status"]: ha.status_payload(state["status"]).encode(),
                    topics["kickoff"]: ha.timestamp_payload(state["kickoff"]).encode()}
        for topic, config in ha.discovery_configs(SETTINGS, [BILLS]).items():
            if "/boltrouter_buffalo_bills/" in topic and "event_types" not in config:
                assert seen_by_ha(config, payloads, topic) == []
    assert ha.timestamp_payload("2025-12-07T18:00:00") == "2025-12-07T18:00:00.000+00:00"
    assert ha.timestamp_payload("next Sunday") == "None"
    assert ha.status_payload("live") == "IN" and ha.status_payload("delayed") == "None"


def test_the_rules_catch_what_home_assistant_refuses() -> None:
    good = {"unique_id": "u", "state_topic": "s", "device": {"identifiers": ["d"], "name": "D"},
            "origin": {"name": "o"}}
    bad = {
        "unknown key": {**good, "stat_topic": "s"},
        "enum with a unit": {**good, "device_class": "enum", "options": ["A"],
                             "unit_of_measurement": "x"},
        "options without enum": {**good, "options": ["A"]},
        "broken template": {**good, "value_template": "{{ value_json.odds.1st.value }}"},
        "device without identifiers": {**good, "device": {"name": "D"}},
        "origin without a name": {**good, "origin": {"sw_version": "1"}},
        "name repeating the device": {**good, "name": "D score"},
    }
    for why, config in bad.items():
        assert ha_problems("homeassistant/sensor/n/o/config", orjson.dumps(config)), why
    assert ha_problems("homeassistant/sensor/n/o/config", orjson.dumps(good)) == []
    assert ha_problems("homeassistant/sensor/n.x/o/config", orjson.dumps(good))
    assert ha_problems("homeassistant/event/n/o/config", orjson.dumps(good))   # event_types
    assert ha_problems("homeassistant/device/n/config", orjson.dumps(
        {"dev": good["device"], "cmps": {"a": {"p": "sensor", "state_topic": "s"}}}))
    assert state_problems("w", {"state_class": "measurement"}, "") != []
    assert state_problems("w", {"device_class": "timestamp"}, "2025-12-07T18:00:00") != []


# --- what a Home Assistant subscribed to a real broker receives -------------------------------

def config_file(tmp_path: Path, port: int, *, prefix: str = "homeassistant",
                markets: str = "[Moneyline, 1st Half Moneyline]", device_based: bool = False,
                name: str = "config.yaml") -> Path:
    return write_config(tmp_path, f"""
state_dir: state
boltodds: {{scores: {{}}, odds: {{}}}}
sinks:
  ha:
    type: mqtt
    port: {port}
    reconnect_min_delay: 50ms
    reconnect_max_delay: 200ms
    homeassistant:
      prefix: {prefix}
      device_based: {str(device_based).lower()}
      republish_delay: 10ms
      track: {{teams: [{BILLS}], markets: {markets}}}
""", name=name)


def game_event(etype: str, data: dict[str, Any], feed: str = "scores",
               book: str | None = None) -> Event:
    return Event(etype, data, feed=feed, sport="NFL", sportsbook=book, game=GAME,
                 universal_id=UID, home=BILLS, away=BENGALS)


async def test_what_home_assistant_receives_from_the_sink_passes_its_rules(
        broker: Broker, tmp_path: Path) -> None:
    app = await start_app(config_file(tmp_path, broker.port))
    sink = app.sinks["ha"]
    try:
        app.catalogue.update({GAME: {"game": GAME, "universal_id": UID, "sport": "NFL",
                                     "when": "2025-12-07, 01:00 PM",
                                     "orig_teams": f"{BILLS} vs {BENGALS}"}})
        with Subscriber(broker.port, ["homeassistant/#", "boltrouter/#"]) as sub:
            outcomes = {f"{team} 1st Half Moneyline": {
                "odds": odds, "market": "1st Half Moneyline", "target": team, "line": None,
                "over_under": None, "link": None} for team, odds in ((BILLS, "+110"),
                                                                     (BENGALS, "-130"))}
            for e in (Event("feed.connected", {"feed": "scores"}, feed="scores"),
                      game_event("odds.game_added", {"outcomes": outcomes}, "odds", "fanduel"),
                      game_event("game.status_changed", {"status": "live"}),
                      game_event("score.changed", {"home_score": 3, "away_score": 0,
                                                   "period": 1, "clock": "09:58"}),
                      game_event("game.status_changed", {"status": "final"})):
                await app.publish(e)
            team = "boltrouter/team/buffalo_bills"
            await wait_until(lambda: len(sub.on(f"{team}/event")) == 2
                             and sub.last(f"{team}/status") == b"POST"
                             and (sub.last_json(team) or {}).get("team_score") == 3
                             and sub.last("boltrouter/bridge/info"),
                             what="the score, the final and their events")
            await wait_until(lambda: sum(1 for t in sub.retained() if t.endswith("/config"))
                             == sink.stats()["entities"], what="every config")
            retained = sub.retained()
            found = {t: orjson.loads(p) for t, p in retained.items() if t.endswith("/config")}
            assert [p for t in found for p in ha_problems(t, retained[t])] == []
            for topic, config in found.items():
                if "event_types" not in config:
                    assert seen_by_ha(config, retained, topic) == [], topic
            assert sub.last(f"{team}/kickoff") == b"2025-12-07T18:00:00.000+00:00"
            odds = found["homeassistant/sensor/boltrouter_buffalo_bills/"
                         "odds_1st_half_moneyline/config"]
            assert render(odds["value_template"], retained[team]) == "2.1"

            # the event entity: not retained (Home Assistant ignores replayed events), a JSON
            # object whose event_type is one of the entity's event_types
            event_cfg = found["homeassistant/event/boltrouter_buffalo_bills/game_event/config"]
            fired = sub.on(event_cfg["state_topic"])
            assert [m.json()["event_type"] for m in fired] == ["score_change", "final"]
            assert all(not m.retain and m.json()["event_type"] in event_cfg["event_types"]
                       and not set(m.json()) & ATTRIBUTES_BLOCKED for m in fired)
    finally:
        await app.stop()


async def test_home_assistants_birth_message_is_heard_with_a_custom_discovery_prefix(
        broker: Broker, tmp_path: Path) -> None:
    # Home Assistant sends its birth message on homeassistant/status whatever its
    # discovery prefix is: a changed prefix must not make boltrouter deaf to it
    app = await start_app(config_file(tmp_path, broker.port, prefix="ha"))
    sink = app.sinks["ha"]
    try:
        with Subscriber(broker.port, ["ha/#"]) as sub:
            await wait_until(lambda: sink.connected and len(sub.retained())
                             == sink.stats()["entities"], what="every config")
            sub.publish("homeassistant/status", "online")
            await wait_until(lambda: sink.stats()["republishes"] == 1, what="a republish")
            sub.publish("ha/status", "online")
            await wait_until(lambda: sink.stats()["republishes"] == 2, what="another one")
    finally:
        await app.stop()


async def test_a_component_leaving_a_device_based_config_is_removed_even_across_a_restart(
        broker: Broker, tmp_path: Path) -> None:
    # Home Assistant keeps an entity that is merely left out of its device's config: the
    # config must list it by its platform alone once, then go on without it
    topic = "homeassistant/device/boltrouter_buffalo_bills/config"

    def components(sub: Subscriber) -> list[dict[str, Any]]:
        return [m.json()["cmps"] for m in sub.on(topic) if m.payload]

    def removal_then_final(sub: Subscriber, gone: str) -> bool:
        seen = components(sub)
        stubs = [i for i, c in enumerate(seen) if c.get(gone) == {"p": "sensor"}]
        return bool(stubs) and gone not in seen[-1] and stubs[-1] < len(seen) - 1

    cfg = config_file(tmp_path, broker.port, device_based=True, markets="[Moneyline, Spread]")
    app = await start_app(cfg)
    try:
        with Subscriber(broker.port, [topic]) as sub:
            await wait_until(lambda: "odds_spread" in (components(sub) or [{}])[-1],
                             what="the spread sensor")
            config_file(tmp_path, broker.port, device_based=True, markets="[Moneyline]")
            assert await app.reload() == []
            await wait_until(lambda: removal_then_final(sub, "odds_spread"),
                             what="the spread sensor removed, then the config without it")
            assert all(ha_problems(topic, m.payload) == [] for m in sub.on(topic))
    finally:
        await app.stop()

    config_file(tmp_path, broker.port, device_based=True, markets="[Total]")
    with Subscriber(broker.port, [topic]) as sub:
        app = await start_app(cfg)
        try:
            await wait_until(lambda: removal_then_final(sub, "odds_moneyline")
                             and "odds_total" in components(sub)[-1],
                             what="the moneyline sensor removed after the restart")
        finally:
            await app.stop()
    saved = orjson.loads((tmp_path / "state" / "mqtt-ha.json").read_bytes())
    assert saved["component_removals"] == {}
    assert set(saved["components"][topic]) >= {"odds_total", "status"}


async def test_an_untracked_teams_entities_go_before_their_state_topics_are_emptied(
        broker: Broker, tmp_path: Path) -> None:
    # an empty payload on a live sensor's state topic is logged by Home Assistant as an
    # invalid state (enum, timestamp); once its config is empty the entity is gone
    app = await start_app(config_file(tmp_path, broker.port))
    sink = app.sinks["ha"]
    try:
        with Subscriber(broker.port, ["homeassistant/#", "boltrouter/#"]) as sub:
            await wait_until(lambda: sub.last("boltrouter/team/buffalo_bills/kickoff")
                             and len([t for t in sub.retained() if t.endswith("/config")])
                             == sink.stats()["entities"], what="the Bills device")
            sub.publish("boltrouter/bridge/request/untrack", '{"team": "Buffalo Bills"}')
            mine = [t for t in sub.retained() if "buffalo_bills" in t]
            await wait_until(lambda: all(sub.last(t) == b"" for t in mine), what="all emptied")
            with sub.lock:
                emptied = [m.topic for m in sub.messages if m.topic in mine and not m.payload]
            configs = [i for i, t in enumerate(emptied) if t.startswith("homeassistant/")]
            states = [i for i, t in enumerate(emptied) if t.startswith("boltrouter/")]
            assert configs and states and max(configs) < min(states)
    finally:
        await app.stop()


def test_the_readme_automation_flashes_the_lights_only_when_the_team_scores() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = re.search(r"```yaml\n(automation:.*?)```", readme, re.S)
    assert block is not None
    automation = yaml.safe_load(block[1])["automation"][0]
    # Home Assistant names the entity after its device and its own name
    event_cfg = ha.discovery_configs(SETTINGS, [BILLS])[
        "homeassistant/event/boltrouter_buffalo_bills/game_event/config"]
    entity_id = f"event.{ha.slug(BILLS + ' ' + event_cfg['name'])}"
    assert automation["triggers"][0]["entity_id"] == entity_id

    def fires(before: tuple[Any, Any], after: tuple[Any, Any]) -> list[bool]:
        states = [{"game": GAME, "opponent": BENGALS, "team_score": a, "opponent_score": b,
                   "period": 1, "clock": "01:00"} for a, b in (before, after)]
        out = []
        for payload in ha.score_events(*states):
            attrs = {k: v for k, v in payload.items() if k != "event_type"}
            attributes = {"event_type": payload["event_type"],
                          "event_types": event_cfg["event_types"], **attrs}
            trigger = {"to_state": {"attributes": attributes}}
            out.append(all(render_condition(c, trigger) for c in automation["conditions"]))
        return out

    assert fires((None, None), (7, 0)) == [True]          # the first score of the game
    assert fires((7, 0), (7, 3)) == [False]               # the opponent scored
    assert fires((7, 10), (14, 10)) == [True, False]      # a score, and the lead change


def render_condition(template: str, trigger: dict[str, Any]) -> bool:
    env = jinja2.Environment()
    result = env.from_string(template).render(trigger=trigger).strip()
    assert result in ("True", "False"), result
    return result == "True"


def test_another_odds_format_makes_new_odds_entities_and_keeps_the_others() -> None:
    # Home Assistant's long-term statistics flag a sensor whose unit changes (decimal odds
    # to %): the probability sensors are entities of their own
    def ids(odds_format: str) -> set[str]:
        settings = ha.HaSettings(markets=("Moneyline",), odds_format=odds_format)
        return {c["unique_id"] for c in ha.discovery_configs(settings, [BILLS]).values()}

    decimal, probability = ids("decimal"), ids("probability")
    assert decimal - probability == {"boltrouter_buffalo_bills_odds_moneyline"}
    assert probability - decimal == {"boltrouter_buffalo_bills_probability_moneyline"}
