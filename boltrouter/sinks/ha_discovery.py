"""Home Assistant MQTT discovery: configs, state payloads and event payloads.

Pure functions over plain data, so every payload Home Assistant will read can be
checked without a broker. The MQTT sink (``sinks/mqtt.py``) decides *when* to
publish; this module decides *what*.

Topic layout (``<base>`` is the sink's ``base_topic``):

- ``<base>/bridge/state``: ``online`` / ``offline`` (retained, last will)
- ``<base>/bridge/feed/<feed>``: ``online`` / ``offline`` per upstream feed
- ``<base>/bridge/info``: JSON (version, feeds, last message, events/s)
- ``<base>/game/<universal_id>``: JSON state of one game
- ``<base>/team/<team>``: JSON state of a tracked team's current or next game
- ``<base>/team/<team>/status`` and ``/kickoff``: raw values, only ever valid ones
  (an enum or timestamp sensor must never receive anything else)
- ``<base>/team/<team>/event``: the payloads of the team's ``event`` entity

Numeric sensors read JSON fields that hold a number or ``null``; ``null`` renders
as ``None``, which Home Assistant turns into ``unknown``. They never get text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..events import iso, parse_time

STATUS_CODES = {"scheduled": "PRE", "live": "IN", "final": "POST"}
STATUS_OPTIONS = ["PRE", "IN", "POST"]
TEAM_EVENT_TYPES = ["score_change", "lead_change", "period_end", "final", "odds_move"]
FEED_NAMES = {"odds": "Odds feed", "scores": "Live scores feed",
              "playbyplay": "Play-by-play feed", "rest": "REST API"}
ORIGIN = {"name": "boltrouter", "sw_version": __version__}


def slug(text: str) -> str:
    """``Buffalo Bills`` -> ``buffalo_bills``: safe in topics, ids and entity ids."""
    s = re.sub(r"[^a-z0-9]+", "_", str(text).casefold()).strip("_")
    return s or "x"


def status_code(status: Any) -> str | None:
    """``scheduled``/``live``/``final`` (or already PRE/IN/POST) -> PRE/IN/POST, else None."""
    if status is None:
        return None
    s = str(status)
    if s in STATUS_OPTIONS:
        return s
    return STATUS_CODES.get(s.casefold())


def status_payload(status: Any) -> str:
    """The payload of the enum status sensor: one of its options, or ``None`` (unknown)."""
    return status_code(status) or "None"


def timestamp_payload(value: Any) -> str:
    """The payload of a timestamp sensor: ISO 8601 with its UTC offset, or ``None`` (unknown).

    Home Assistant refuses a timestamp without a time zone, and anything unparsable."""
    dt = parse_time(value) if isinstance(value, str) else None
    return iso(dt) if dt is not None else "None"


def american_to_decimal(odds: Any) -> float | None:
    """``"+105"`` -> 2.05, ``"-150"`` -> 1.6667; None for suspended or unreadable odds."""
    if odds is None or isinstance(odds, bool):
        return None
    try:
        value = float(str(odds).strip().replace("+", ""))
    except ValueError:
        return None
    if value >= 100:
        return round(1 + value / 100, 4)
    if value <= -100:
        return round(1 + 100 / -value, 4)
    return None


def odds_state(american: Any, odds_format: str) -> float | None:
    """The numeric state of an odds sensor: decimal odds or implied probability in %."""
    dec = american_to_decimal(american)
    if dec is None:
        return None
    if odds_format == "probability":
        return round(100 / dec, 2)
    return round(dec, 3)


def split_game_name(name: str | None) -> tuple[str | None, str | None]:
    """``"Home vs Away, 2025-12-07, 01"`` -> (home, away); (None, None) when it does not parse."""
    if not name:
        return None, None
    head = str(name).split(",", 1)[0]
    if " vs " not in head:
        return None, None
    home, away = head.split(" vs ", 1)
    return home.strip() or None, away.strip() or None


# --- topics ------------------------------------------------------------------------------

def bridge_state_topic(base: str) -> str:
    return f"{base}/bridge/state"


def bridge_info_topic(base: str) -> str:
    return f"{base}/bridge/info"


def feed_topic(base: str, feed: str) -> str:
    return f"{base}/bridge/feed/{feed}"


def game_topic(base: str, universal_id: str) -> str:
    return f"{base}/game/{universal_id}"


def team_topic(base: str, team: str) -> str:
    return f"{base}/team/{slug(team)}"


def team_topics(base: str, team: str) -> dict[str, str]:
    """Every retained topic a tracked team owns (cleared when it is untracked)."""
    t = team_topic(base, team)
    return {"state": t, "status": f"{t}/status", "kickoff": f"{t}/kickoff"}


def team_event_topic(base: str, team: str) -> str:
    return f"{team_topic(base, team)}/event"


# --- discovery -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HaSettings:
    """What the discovery configs depend on. Equal settings give identical configs."""

    base: str = "boltrouter"
    prefix: str = "homeassistant"
    device_based: bool = False
    odds_format: str = "decimal"
    markets: tuple[str, ...] = ("Moneyline",)
    feeds: tuple[str, ...] = ()            # configured feeds: one connectivity sensor each
    score_feed: str | None = None          # the feed score entities depend on
    odds_feed: str | None = None           # the feed odds entities depend on
    qos: int = 1

    @property
    def node_prefix(self) -> str:
        return slug(self.base)


@dataclass(slots=True)
class Entity:
    """One Home Assistant entity: its platform, ids and config (without the device)."""

    component: str
    node_id: str
    object_id: str
    config: dict[str, Any] = field(default_factory=dict)

    def topic(self, prefix: str) -> str:
        return f"{prefix}/{self.component}/{self.node_id}/{self.object_id}/config"


def bridge_node(settings: HaSettings) -> str:
    return f"{settings.node_prefix}_bridge"


def team_node(settings: HaSettings, team: str) -> str:
    return f"{settings.node_prefix}_{slug(team)}"


def bridge_name(settings: HaSettings) -> str:
    """``boltrouter bridge``, plus the base topic when it is not the default one."""
    return "boltrouter bridge" if settings.base == "boltrouter" \
        else f"boltrouter bridge {settings.base}"


def bridge_device(settings: HaSettings) -> dict[str, Any]:
    return {"identifiers": [bridge_node(settings)], "name": bridge_name(settings),
            "manufacturer": "boltrouter", "model": "boltrouter bridge",
            "sw_version": __version__}


def team_device(settings: HaSettings, team: str) -> dict[str, Any]:
    return {"identifiers": [team_node(settings, team)], "name": team,
            "manufacturer": "boltrouter", "model": "boltrouter team",
            "sw_version": __version__, "via_device": bridge_node(settings)}


def _availability(settings: HaSettings, feed: str | None) -> dict[str, Any]:
    topics = [{"topic": bridge_state_topic(settings.base)}]
    if feed:
        topics.append({"topic": feed_topic(settings.base, feed)})
    return {"availability": topics, "availability_mode": "all"}


def market_key(market: str) -> str:
    """The key of a market in the team state. Templates read it as ``odds['<key>']``, since a
    key may start with a digit (``1st_half_moneyline``), which Jinja cannot read as an
    attribute: Home Assistant would reject the whole config over the template."""
    return slug(market)


def odds_entity_name(market: str, odds_format: str) -> str:
    return f"{market} {'probability' if odds_format == 'probability' else 'odds'}"


def team_entities(settings: HaSettings, team: str) -> list[Entity]:
    """The entities of one tracked team's device."""
    node = team_node(settings, team)
    topics = team_topics(settings.base, team)
    state = topics["state"]
    scores = _availability(settings, settings.score_feed)

    def entity(component: str, key: str, avail: dict[str, Any], **config: Any) -> Entity:
        return Entity(component, node, key, {"unique_id": f"{node}_{key}", **config, **avail})

    out = [
        entity("sensor", "status", scores, name="Status", state_topic=topics["status"],
               device_class="enum", options=list(STATUS_OPTIONS), icon="mdi:scoreboard",
               json_attributes_topic=state,
               json_attributes_template="{{ value_json.game_info | tojson }}"),
        entity("sensor", "score", scores, name="Score", state_topic=state,
               value_template="{{ value_json.team_score }}", state_class="measurement",
               icon="mdi:counter"),
        entity("sensor", "opponent_score", scores, name="Opponent score", state_topic=state,
               value_template="{{ value_json.opponent_score }}", state_class="measurement",
               icon="mdi:counter"),
        entity("sensor", "opponent", scores, name="Opponent", state_topic=state,
               value_template="{{ value_json.opponent }}",
               icon="mdi:account-group"),
        entity("sensor", "kickoff", scores, name="Kickoff", state_topic=topics["kickoff"],
               device_class="timestamp", icon="mdi:calendar-clock"),
        entity("sensor", "period", scores, name="Period", state_topic=state,
               value_template="{{ value_json.period }}", icon="mdi:timer-sand"),
        entity("sensor", "clock", scores, name="Clock", state_topic=state,
               value_template="{{ value_json.clock }}",
               icon="mdi:clock-outline"),
        entity("event", "game_event", scores, name="Game event",
               state_topic=team_event_topic(settings.base, team),
               event_types=list(TEAM_EVENT_TYPES), icon="mdi:bullhorn"),
    ]
    odds = _availability(settings, settings.odds_feed)
    probability = settings.odds_format == "probability"
    # the ids name the format: Home Assistant's long-term statistics cannot follow a sensor
    # whose unit and scale change, so another format makes other entities
    kind = "probability" if probability else "odds"
    for market in settings.markets:
        key = market_key(market)
        extra: dict[str, Any] = {"unit_of_measurement": "%"} if probability else {}
        out.append(entity(
            "sensor", f"{kind}_{key}", odds, name=odds_entity_name(market, settings.odds_format),
            state_topic=state, value_template=f"{{{{ value_json.odds['{key}'].value }}}}",
            state_class="measurement", suggested_display_precision=1 if probability else 2,
            json_attributes_topic=state,
            json_attributes_template=f"{{{{ value_json.odds['{key}'].attributes | tojson }}}}",
            icon="mdi:cash-multiple", **extra))
    return out


def bridge_entities(settings: HaSettings) -> list[Entity]:
    """Diagnostic entities of the bridge device: one per feed, events/s, dropped events."""
    node = bridge_node(settings)
    avail = _availability(settings, None)
    info = bridge_info_topic(settings.base)
    out = []
    for feed in settings.feeds:
        key = f"{slug(feed)}_feed"
        out.append(Entity("binary_sensor", node, key, {
            "unique_id": f"{node}_{key}", "name": FEED_NAMES.get(feed, f"{feed.capitalize()} feed"),
            "state_topic": feed_topic(settings.base, feed), "payload_on": "online",
            "payload_off": "offline", "device_class": "connectivity",
            "entity_category": "diagnostic", **avail}))
    out.append(Entity("sensor", node, "events_per_second", {
        "unique_id": f"{node}_events_per_second", "name": "Events per second",
        "state_topic": info, "value_template": "{{ value_json.events_per_second }}",
        "unit_of_measurement": "events/s", "state_class": "measurement",
        "suggested_display_precision": 1, "entity_category": "diagnostic",
        "icon": "mdi:speedometer", **avail}))
    out.append(Entity("sensor", node, "dropped_events", {
        "unique_id": f"{node}_dropped_events", "name": "Dropped events",
        "state_topic": info, "value_template": "{{ value_json.dropped }}",
        "state_class": "total_increasing", "entity_category": "diagnostic",
        "icon": "mdi:delete-alert", **avail}))
    return out


def discovery_configs(settings: HaSettings, teams: list[str]) -> dict[str, dict[str, Any]]:
    """Every discovery message wanted: ``{topic: config}``.

    Per-component topics (``<prefix>/<component>/<node_id>/<object_id>/config``) by
    default; with ``device_based`` one ``<prefix>/device/<node_id>/config`` per device
    with its entities under ``cmps`` (Home Assistant 2024.11 and later).
    """
    devices = [(bridge_device(settings), bridge_entities(settings))]
    devices += [(team_device(settings, team), team_entities(settings, team)) for team in teams]
    out: dict[str, dict[str, Any]] = {}
    for device, entities in devices:
        if settings.device_based:
            node = device["identifiers"][0]
            cmps = {e.object_id: {"p": e.component, **e.config} for e in entities}
            out[f"{settings.prefix}/device/{node}/config"] = {
                "dev": device, "o": ORIGIN, "cmps": cmps, "qos": settings.qos}
            continue
        for e in entities:
            out[e.topic(settings.prefix)] = {**e.config, "device": device, "origin": ORIGIN,
                                             "qos": settings.qos}
    return out


def device_components(config: dict[str, Any]) -> dict[str, str]:
    """``{component id: platform}`` of a device-based config; empty for a per-component one."""
    cmps = config.get("cmps")
    return {key: c["p"] for key, c in cmps.items()} if isinstance(cmps, dict) else {}


def removing_components(config: dict[str, Any], removed: dict[str, str]) -> dict[str, Any]:
    """The device-based config that makes Home Assistant remove some of its components.

    Leaving a component out of the device's config does not remove its entity; listing
    it with its platform alone does. The config without it is to be sent right after.
    """
    return {**config, "cmps": {**config["cmps"],
                               **{key: {"p": platform} for key, platform in removed.items()}}}


# --- state payloads -----------------------------------------------------------------------

@dataclass(slots=True)
class Line:
    """One price of one outcome at one book."""

    market: str | None
    target: str | None
    line: Any
    over_under: str | None
    american: str | None
    link: str | None = None


@dataclass(slots=True)
class GameInfo:
    """What the MQTT sink knows of one game, from events, the catalogue and the scoreboard."""

    key: str
    universal_id: str | None = None
    name: str | None = None
    sport: str | None = None
    home: str | None = None
    away: str | None = None
    start: str | None = None
    status: str | None = None            # PRE / IN / POST
    home_score: int | None = None
    away_score: int | None = None
    period: Any = None
    clock: str | None = None
    lines: dict[tuple[str, str], Line] = field(default_factory=dict)   # (book, outcome) -> Line

    def side_of(self, team: str) -> str | None:
        """``home`` or ``away`` when ``team`` plays (its full name, or a part of it), else None."""
        t = " ".join(team.split()).casefold()
        home = " ".join((self.home or "").split()).casefold()
        away = " ".join((self.away or "").split()).casefold()
        if not t:
            return None
        if home == t or away == t:
            return "home" if home == t else "away"
        if t in home:
            return "home"
        if t in away:
            return "away"
        return None


def _number(value: Any) -> int | float | None:
    """A score as a number, or None: never text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        f = float(str(value).strip())
    except ValueError:
        return None
    return int(f) if f.is_integer() else f


def best_lines(game: GameInfo, markets: tuple[str, ...]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{market: {outcome: best price across books}}`` for the tracked markets."""
    wanted = {m.casefold(): m for m in markets}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (book, outcome), ln in game.lines.items():
        market = wanted.get((ln.market or "").casefold())
        dec = american_to_decimal(ln.american)
        if market is None or dec is None:
            continue
        slot = out.setdefault(market, {})
        cur = slot.get(outcome)
        if cur is None or dec > cur["decimal"]:
            slot[outcome] = {"decimal": dec, "american": ln.american, "book": book,
                             "target": ln.target, "line": ln.line, "link": ln.link}
    return out


def _is_team_outcome(game: GameInfo, team: str, outcome: str, ln: Line) -> bool:
    """The team's side of a market: its own outcome, or the Over of a total."""
    t = team.casefold()
    if ln.target:
        target = ln.target.casefold()
        if target == t:
            return ln.over_under in (None, "Over")
        teams = {(game.home or "").casefold(), (game.away or "").casefold()}
        return target not in teams and ln.over_under == "Over"
    return ln.over_under == "Over" or (ln.over_under is None and t in outcome.casefold())


def team_line(game: GameInfo, team: str, market: str) -> tuple[str, Line] | None:
    """The best (book, line) of ``team``'s outcome in ``market`` across the tracked books."""
    best: tuple[str, Line] | None = None
    best_dec = 0.0
    for (book, outcome), ln in game.lines.items():
        if (ln.market or "").casefold() != market.casefold():
            continue
        dec = american_to_decimal(ln.american)
        if dec is not None and dec > best_dec and _is_team_outcome(game, team, outcome, ln):
            best, best_dec = (book, ln), dec
    return best


def team_odds(game: GameInfo | None, team: str, settings: HaSettings) -> dict[str, Any]:
    """``{market_key: {value, attributes}}`` for every tracked market: value is numeric or None."""
    out: dict[str, Any] = {}
    side = game.side_of(team) if game is not None else None
    if game is not None and side is not None:
        team = (game.home if side == "home" else game.away) or team
    for market in settings.markets:
        found = team_line(game, team, market) if game is not None else None
        if found is None:
            out[market_key(market)] = {"value": None, "attributes": {"market": market}}
            continue
        book, ln = found
        out[market_key(market)] = {
            "value": odds_state(ln.american, settings.odds_format),
            "attributes": {"market": market, "american": ln.american, "book": book,
                           "line": ln.line, "link": ln.link}}
    return out


def team_state(team: str, game: GameInfo | None, settings: HaSettings) -> dict[str, Any]:
    """The JSON on ``<base>/team/<team>``: every key always present, numbers or null."""
    side = game.side_of(team) if game is not None else None
    if game is None or side is None:
        return {"team": team, "game": None, "universal_id": None, "sport": None,
                "opponent": None, "home_away": None, "status": None, "team_score": None,
                "opponent_score": None, "period": None, "clock": None, "kickoff": None,
                "odds": team_odds(None, team, settings),
                "game_info": {"game": None}}
    home = side == "home"
    return {
        "team": team, "game": game.name, "universal_id": game.universal_id,
        "sport": game.sport, "opponent": game.away if home else game.home,
        "home_away": side, "status": game.status,
        "team_score": _number(game.home_score if home else game.away_score),
        "opponent_score": _number(game.away_score if home else game.home_score),
        "period": game.period, "clock": game.clock, "kickoff": game.start,
        "odds": team_odds(game, team, settings),
        "game_info": {"game": game.name, "universal_id": game.universal_id,
                      "sport": game.sport, "home": game.home, "away": game.away},
    }


def game_state(game: GameInfo, markets: tuple[str, ...]) -> dict[str, Any]:
    """The JSON on ``<base>/game/<universal_id>``."""
    return {"universal_id": game.universal_id, "game": game.name, "sport": game.sport,
            "status": game.status, "home": game.home, "away": game.away,
            "home_score": _number(game.home_score), "away_score": _number(game.away_score),
            "period": game.period, "clock": game.clock, "start": game.start,
            "odds": best_lines(game, markets)}


def leader(team_score: Any, opponent_score: Any) -> str | None:
    """``team``, ``opponent`` or None (tie or unknown)."""
    a, b = _number(team_score), _number(opponent_score)
    if a is None or b is None or a == b:
        return None
    return "team" if a > b else "opponent"


def team_event(event_type: str, before: dict[str, Any], after: dict[str, Any],
               **extra: Any) -> dict[str, Any]:
    """The payload of the team's ``event`` entity: the event type and the scores around it."""
    return {"event_type": event_type, "game": after.get("game"),
            "opponent": after.get("opponent"),
            "team_score": after.get("team_score"), "opponent_score": after.get("opponent_score"),
            "prev_team_score": before.get("team_score"),
            "prev_opponent_score": before.get("opponent_score"),
            "period": after.get("period"), "clock": after.get("clock"), **extra}


def score_events(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """``score_change`` (and ``lead_change`` when the leader switched sides) for one team."""
    if (before.get("team_score"), before.get("opponent_score")) == (
            after.get("team_score"), after.get("opponent_score")):
        return []
    out = [team_event("score_change", before, after)]
    was = leader(before.get("team_score"), before.get("opponent_score"))
    now = leader(after.get("team_score"), after.get("opponent_score"))
    if was is not None and now is not None and was != now:
        out.append(team_event("lead_change", before, after, leader=now))
    return out
