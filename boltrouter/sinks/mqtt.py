"""The ``mqtt`` sink: events, game state and Home Assistant discovery on an MQTT broker.

The connection is ``mqtt_client.MqttClient``, on the event loop: it reconnects by
itself, writes many messages per system call and keeps QoS 1/2 messages until the
broker has them, so nothing here waits on the network. What is published:

- routed events on ``<base>/event/<type>`` (QoS ``qos``, not retained), or on the
  route's rendered ``topic`` with its rendered ``payload``;
- retained JSON state per game on ``<base>/game/<universal_id>`` for the games of
  routed events and of tracked teams;
- ``<base>/bridge/state`` (``online``; ``offline`` as last will and on shutdown),
  ``<base>/bridge/info`` and ``<base>/bridge/feed/<feed>``;
- with ``homeassistant.discovery``: a device per tracked team and a bridge device
  (see ``ha_discovery``), their retained state topics, and the team's ``event``
  entity payloads.

While the broker is away, retained topics keep only their latest value (published
once on reconnect, with everything else retained, since a restarted broker may
have lost them) and events wait in a queue of at most ``max_queued``; beyond that
the oldest are dropped and counted. The topics of published entities are kept in
``<state_dir>/mqtt-<sink>.json``, so an entity no longer wanted gets an empty
retained config even after a restart with a changed config. With device-based
discovery the file also lists each device's components: one that leaves a device
still wanted is sent once by its platform alone, which is what removes its entity.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import orjson

import boltrouter
from boltrouter import __version__
from boltrouter import events as ev
from boltrouter.catalogue import GameRef, norm
from boltrouter.config import Field
from boltrouter.events import Event, parse_time
from boltrouter.secrets import redact
from boltrouter.sink import Delivery, Sink
from boltrouter.sinks import ha_discovery as ha
from boltrouter.sinks.mqtt_client import MqttClient, Sent, Will, tls_context
from boltrouter.sinks.mqtt_commands import (
    RequestError,
    command_of,
    parse_request,
    request_topic_filter,
    response,
    response_topic,
)

log = logging.getLogger("boltrouter.sink.mqtt")

_LINE_TYPES = {ev.ODDS_LINE_CHANGED, ev.ODDS_LINE_SUSPENDED, ev.ODDS_LINE_RESTORED}
_GAME_TYPES = _LINE_TYPES | {
    ev.SCORE_CHANGED, ev.GAME_STATUS_CHANGED, ev.GAME_PERIOD_CHANGED,
    ev.ODDS_GAME_ADDED, ev.ODDS_GAME_UPDATED, ev.ODDS_GAME_REMOVED}
_AUTH_REFUSALS = {"not authorized", "bad user name or password", "bad username or password"}
_UPCOMING_WINDOW = 6 * 3600.0    # a scheduled game that started less ago still counts as next
_TICK = 1.0
_STATE_EVERY = 0.1   # state topics are refreshed at most this often: bursts coalesce
_HIGH_WATER = 5000   # messages handed to the client and not acknowledged yet: write() waits above
_LOW_WATER = 1000    # ... and goes on below this


def _topic_check(value: str) -> str | None:
    if not value or any(c in value for c in "+#") or value.startswith("/") \
            or value.endswith("/"):
        return (f"{value!r} cannot start topics: it must be non-empty, without + or # "
                "and without a leading or trailing /")
    return None


def _port_check(value: int) -> str | None:
    return None if value <= 65535 else f"must be a TCP port from 1 to 65535, not {value}"


_NAMES = dict(items=Field(str), one_or_list=True)

TRACK_SCHEMA: dict[str, Field] = {
    "teams": Field(list, default=[], **_NAMES,
                   help="a Home Assistant device per team, for its current or next game"),
    "sports": Field(list, default=[], **_NAMES,
                    help="only games of these sports count for the teams (empty = any)"),
    "sportsbooks": Field(list, default=[], **_NAMES,
                         help="books whose prices feed the odds sensors (empty = any)"),
    "markets": Field(list, default=["Moneyline"], **_NAMES,
                     help="one odds sensor per market, e.g. Moneyline, Spread, Total"),
}

HA_SCHEMA: dict[str, Field] = {
    "discovery": Field(bool, default=True),
    "prefix": Field(str, default="homeassistant", check=_topic_check),
    "status_topic": Field(str,
                          help="Home Assistant's birth topic (default homeassistant/status, "
                               "which Home Assistant keeps whatever its discovery prefix, and "
                               "<prefix>/status as well)"),
    "device_based": Field(bool, default=False,
                          help="one discovery message per device (Home Assistant 2024.11+)"),
    "odds_format": Field(str, default="decimal", choices=("decimal", "probability")),
    "odds_move": Field(float, default=0.02, min=0,
                       help="implied-probability move that fires an odds_move event"),
    "republish_delay": Field("duration", default=5.0,
                             help="longest random wait before discovery is re-sent when "
                                  "Home Assistant comes online"),
    "final_hold": Field("duration", default=3 * 3600.0,
                        help="how long a finished game stays a team's current game"),
    "track": Field(dict, default={}, schema=TRACK_SCHEMA),
}

TLS_SCHEMA: dict[str, Field] = {
    "enabled": Field(bool, default=False, help="also implied by ca_file or cert_file"),
    "ca_file": Field(str),
    "cert_file": Field(str),
    "key_file": Field(str),
    "insecure": Field(bool, default=False, help="skip the host name check (testing only)"),
}


class MqttSink(Sink):
    """Publish events and state to an MQTT broker, with Home Assistant discovery."""

    options_schema: ClassVar[dict[str, Field]] = {
        "host": Field(str, default="127.0.0.1"),
        "port": Field(int, default=1883, min=1, check=_port_check),
        "base_topic": Field(str, default="boltrouter", check=_topic_check),
        "client_id": Field(str, help="default: boltrouter-<base_topic>-<sink name>"),
        "username": Field(str),
        "password": Field(str, secret=True),
        "protocol": Field(str, default="3.1.1", choices=("3.1.1", "5")),
        "keepalive": Field("duration", default=30.0, min=5),
        "tls": Field(dict, default={}, schema=TLS_SCHEMA),
        "qos": Field(int, default=1, choices=(0, 1, 2)),
        "max_queued": Field(int, default=10_000, min=0,
                            help="events held while the broker is away; older ones are dropped"),
        "info_interval": Field("duration", default=10.0, min=0.1,
                               help="how often <base>/bridge/info is refreshed"),
        "reconnect_min_delay": Field("duration", default=1.0, min=0.01),
        "reconnect_max_delay": Field("duration", default=60.0, min=0.01),
        "homeassistant": Field(dict, default={}, schema=HA_SCHEMA),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if options.get("password") and not options.get("username"):
            out.append((("password",), "a password needs a username as well"))
        tls = options.get("tls") or {}
        if tls.get("key_file") and not tls.get("cert_file"):
            out.append((("tls", "key_file"), "a key_file needs the cert_file it belongs to"))
        if options["reconnect_min_delay"] > options["reconnect_max_delay"]:
            out.append((("reconnect_min_delay",), "must not exceed reconnect_max_delay"))
        return out

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.host: str = options["host"]
        self.port: int = options["port"]
        self.base: str = options["base_topic"]
        self.qos: int = options["qos"]
        self.max_queued: int = options["max_queued"]
        self.client_id = options.get("client_id") or f"boltrouter-{ha.slug(self.base)}-{name}"
        self._use_homeassistant_options(options["homeassistant"])
        self.state_path: Path = app.state_dir / f"mqtt-{ha.slug(name)}.json"

        self.client: MqttClient | None = None
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._pending_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._waiting = False
        self._sent = 0        # handed to the client
        self._acked = 0       # acknowledged by the broker (QoS 0: written)
        # what is published
        self._retained: dict[str, bytes] = {}      # every retained topic we own: last value
        self._stale: set[str] = set()              # retained topics changed while away
        self._events: deque[tuple[str, bytes]] = deque()
        self._discovery: dict[str, bytes] = {}
        self._owned: set[str] = set()              # entity and team topics wanted now
        self._clears: set[str] = set()             # topics to empty (no longer wanted)
        self._clear_infos: list[tuple[str, Sent]] = []
        # device-based discovery: the components of each device config, and those still to
        # remove from Home Assistant (omitting one from its device's config does not)
        self._components: dict[str, dict[str, str]] = {}
        self._component_removals: dict[str, dict[str, str]] = {}
        self._removal_infos: list[tuple[str, dict[str, str], Sent]] = []
        self._added: list[str] = []                # teams tracked over MQTT
        self._removed: list[str] = []              # config teams untracked over MQTT
        self._save_pending = False
        # what is known
        self._games: dict[str, ha.GameInfo] = {}
        self._final_seen: dict[str, float] = {}
        self._seeded: set[str] = set()
        self._routed: set[str] = set()
        self._dirty: set[str] = set()
        self._teams_dirty = True
        self._team_current: dict[str, str | None] = {}
        self._playing: dict[str, list[str]] = {}   # game key -> tracked teams in it
        self._odds_ref: dict[tuple[str, str], float] = {}
        self._feed_up: dict[str, bool] = {}
        # figures
        self.published = 0
        self.dropped = 0
        self.coalesced = 0
        self.republishes = 0
        self.connects = 0
        self.refusals = 0
        self.bad_topics = 0
        self.last_error: str | None = None
        self._logged_error: str | None = None
        self._rate = 0.0
        self._rate_mark = (time.monotonic(), 0)

    def _use_homeassistant_options(self, hass: dict[str, Any]) -> None:
        self.hass = hass
        self.discovery: bool = hass["discovery"]
        self.status_topics: tuple[str, ...] = (hass["status_topic"],) if hass.get("status_topic") \
            else tuple(dict.fromkeys(("homeassistant/status", f"{hass['prefix']}/status")))
        track = hass["track"]
        self.config_teams: list[str] = list(track["teams"])
        self._sports = {norm(s) for s in track["sports"]}
        self._books = {norm(b) for b in track["sportsbooks"]}
        self._markets = {m.casefold() for m in track["markets"]}
        feeds = tuple(self.app.config.feeds)
        self.settings = ha.HaSettings(
            base=self.base, prefix=hass["prefix"], device_based=hass["device_based"],
            odds_format=hass["odds_format"], markets=tuple(track["markets"]), feeds=feeds,
            score_feed=next((f for f in ("scores", "playbyplay") if f in feeds), None),
            odds_feed="odds" if "odds" in feeds else None, qos=self.qos)

    async def reconfigure(self, options: dict[str, Any]) -> bool:
        """Apply new Home Assistant options on the open connection; anything else reconnects."""
        def without_hass(o: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in o.items() if k != "homeassistant"}

        old, new = self.options["homeassistant"], options["homeassistant"]
        if self.client is None or without_hass(options) != without_hass(self.options) or any(
                old.get(k) != new.get(k) for k in ("discovery", "prefix", "status_topic")):
            return False
        self.options = options
        before = self.config_teams
        self._use_homeassistant_options(new)
        self._keep_removals_of(before)
        for info in self._games.values():
            self._drop_lines(info, lambda b, _o: not self._wanted_book(b))
            info.lines = {k: ln for k, ln in info.lines.items() if self._wanted_market(ln.market)}
        self._seeded.clear()
        self._team_current.clear()
        self._apply_tracking()
        log.info("sink %r: Home Assistant options applied; tracking %s", self.name,
                 ", ".join(self.teams) or "no team")
        return True

    # -- the tracked teams ---------------------------------------------------------------

    def _keep_removals_of(self, config_teams: list[Any]) -> None:
        """A team untracked over MQTT stays untracked until the config lists it anew."""
        before = {str(t).casefold() for t in config_teams}
        self._removed = [t for t in self._removed if t.casefold() in before]

    @property
    def teams(self) -> list[str]:
        removed = {t.casefold() for t in self._removed}
        teams = [t for t in self.config_teams if t.casefold() not in removed]
        known = {t.casefold() for t in teams}
        return teams + [t for t in self._added if t.casefold() not in known]

    def _track(self, team: str) -> dict[str, Any]:
        existing = next((t for t in self.teams if t.casefold() == team.casefold()), None)
        if existing is None:
            self._removed = [t for t in self._removed if t.casefold() != team.casefold()]
            if not any(t.casefold() == team.casefold() for t in self.config_teams):
                self._added.append(team)
            self._apply_tracking()
            log.info("sink %r: now tracking %s", self.name, team)
        return {"team": existing or team, "tracked": self.teams}

    def _untrack(self, team: str) -> dict[str, Any]:
        existing = next((t for t in self.teams if t.casefold() == team.casefold()), None)
        if existing is None:
            raise RequestError(f"{team!r} is not tracked; tracked: "
                               f"{', '.join(self.teams) or 'none'}")
        self._added = [t for t in self._added if t.casefold() != team.casefold()]
        if any(t.casefold() == team.casefold() for t in self.config_teams):
            self._removed.append(existing)
        self._team_current.pop(existing, None)
        self._apply_tracking()
        log.info("sink %r: no longer tracking %s", self.name, existing)
        return {"team": existing, "tracked": self.teams}

    def _apply_tracking(self, previous: set[str] | None = None) -> None:
        """Publish the discovery configs wanted now and clear the topics no longer wanted."""
        teams = self.teams
        configs = ha.discovery_configs(self.settings, teams) if self.discovery else {}
        payloads = {t: orjson.dumps(c, option=orjson.OPT_SORT_KEYS) for t, c in configs.items()}
        owned = set(payloads)
        for team in teams:
            owned.update(ha.team_topics(self.base, team).values())
        for topic in self._clear_order((self._owned if previous is None else previous) - owned):
            self._clear(topic)
        self._note_component_removals(configs)
        self._discovery = payloads
        self._owned = owned
        self._playing.clear()
        for topic, payload in payloads.items():
            if self.connected and self._send_component_removals(topic):
                self._retained.pop(topic, None)   # the config without them must follow
            self._publish(topic, payload, retain=True)
        self._teams_dirty = True
        self._save_pending = True
        self._wake.set()

    # -- lifespan ------------------------------------------------------------------------

    async def start(self) -> None:
        client = self._make_client()
        saved = await asyncio.to_thread(self._load_state)
        self._added = [t for t in saved.get("added", []) if isinstance(t, str)]
        self._removed = [t for t in saved.get("removed", []) if isinstance(t, str)]
        self._keep_removals_of(saved.get("config_teams", []))
        for key, into in (("components", self._components),
                          ("component_removals", self._component_removals)):
            doc = saved.get(key)
            if isinstance(doc, dict):
                into.update({t: {k: p for k, p in c.items() if isinstance(p, str)}
                             for t, c in doc.items() if isinstance(c, dict)})
        previous = {t for t in saved.get("topics", []) + saved.get("clear", [])
                    if isinstance(t, str)}
        self._publish_feeds()
        self._apply_tracking(previous)
        self._publish_info()
        self.app.catalogue.add_listener(self._catalogue_changed)
        self.client = client
        client.start()
        self._task = asyncio.create_task(self._run(), name=f"mqtt:{self.name}")

    def _make_client(self) -> MqttClient:
        tls = self.options["tls"]
        context = None
        if tls["enabled"] or tls.get("ca_file") or tls.get("cert_file"):
            files = {}
            for key in ("ca_file", "cert_file", "key_file"):
                if tls.get(key):
                    path = self.app.resolve_path(tls[key])
                    if not path.is_file():
                        raise FileNotFoundError(f"tls.{key} {path} does not exist or is not "
                                                "a file")
                    files[key] = str(path)
            context = tls_context(files.get("ca_file"), files.get("cert_file"),
                                  files.get("key_file"), tls["insecure"])
        client = MqttClient(
            self.host, self.port, client_id=self.client_id, v5=self.options["protocol"] == "5",
            keepalive=self.options["keepalive"], username=self.options.get("username") or None,
            password=self.options.get("password"), ssl_context=context,
            will=Will(ha.bridge_state_topic(self.base), b"offline", qos=1, retain=True),
            reconnect_min=self.options["reconnect_min_delay"],
            reconnect_max=self.options["reconnect_max_delay"],
            max_pending=max(50_000, 2 * self.max_queued + _HIGH_WATER))
        client.on_connect = lambda reason, failed: self._connected(client, reason, failed)
        client.on_disconnect = lambda reason: self._disconnected(client, reason)
        client.on_unreachable = lambda reason: self._unreachable(client, reason)
        client.on_message = self._message
        client.on_acked = self._on_acked
        client.on_refused = self._on_refused
        return client

    async def stop(self) -> None:
        self.app.catalogue.remove_listener(self._catalogue_changed)
        tasks = [t for t in (self._task, *self._pending_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        client, self.client = self.client, None
        if client is not None:
            if self.connected:
                info = client.publish(ha.bridge_state_topic(self.base), b"offline", qos=1,
                                      retain=True)
                if info is None or not await client.wait_published(info, 3.0):
                    log.warning("sink %r could not publish its offline state", self.name)
            self.connected = False
            await client.stop()
        if self._events:
            log.warning("sink %r: %d event(s) waiting for the MQTT broker %s:%d were not "
                        "delivered", self.name, len(self._events), self.host, self.port)
        self._check_clears()   # what the broker has acknowledged leaves the state file
        await self._save_state()

    # -- the client's callbacks ------------------------------------------------------------

    def _on_acked(self, count: int) -> None:
        self._acked += count
        if self._waiting and self._sent - self._acked <= _LOW_WATER:
            self._waiting = False
            self._room.set()

    def _on_refused(self, topic: str, reason: str) -> None:
        self.app.metrics.inc("mqtt_refused", sink=self.name)
        self._report(f"sink {self.name!r}: the MQTT broker {self.where} refused a message "
                     f"to {topic!r}: {reason}")

    # -- connection state (event loop) ----------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _report(self, message: str, level: int = logging.ERROR) -> None:
        """Remember an error and log it once (again only when it changes)."""
        self.last_error = redact(message)
        if self.last_error != self._logged_error:
            self._logged_error = self.last_error
            log.log(level, "%s", self.last_error)

    def _connected(self, client: MqttClient, reason: str, failed: bool) -> None:
        if client is not self.client:
            return
        if failed:
            self.refusals += 1
            self.app.metrics.inc("mqtt_connect_refused", sink=self.name, reason=reason)
            if reason.casefold() in _AUTH_REFUSALS:
                self._report(f"sink {self.name!r}: the MQTT broker {self.where} refused the "
                             f"connection: not authorised ({reason}); check the sink's "
                             "username and password")
            else:
                self._report(f"sink {self.name!r}: the MQTT broker {self.where} refused the "
                             f"connection: {reason}")
            return
        self.connected = True
        self.connects += 1
        log.info("sink %r: connected to the MQTT broker %s", self.name, self.where)
        self.last_error = self._logged_error = None
        self._publish_all(client)

    def _publish_all(self, client: MqttClient) -> None:
        """After a (re)connect: subscriptions, then every retained topic, then queued events."""
        topics = [(request_topic_filter(self.base), 1)]
        if self.discovery:
            topics += [(topic, 1) for topic in self.status_topics]
        client.subscribe(topics)
        self._send(ha.bridge_state_topic(self.base), b"online", True)
        for topic in self._clear_order(self._clears):
            self._send_clear(topic)
        for topic in sorted(self._component_removals):
            self._send_component_removals(topic)
        for topic, payload in self._discovery.items():
            self._send(topic, payload, True)
        for topic, payload in list(self._retained.items()):
            if topic not in self._discovery:
                self._send(topic, payload, True)
        self._stale.clear()
        while self._events and self.connected:
            topic, payload = self._events.popleft()
            self._send(topic, payload, False)

    def _disconnected(self, client: MqttClient, reason: str) -> None:
        if client is not self.client:
            return
        if self.connected:
            self.app.metrics.inc("mqtt_disconnects", sink=self.name)
            why = f" ({reason})" if reason else ""
            self._report(f"sink {self.name!r}: lost the connection to the MQTT broker "
                         f"{self.where}{why}; reconnecting, holding up to "
                         f"{self.max_queued} event(s) meanwhile", logging.WARNING)
        self.connected = False

    def _unreachable(self, client: MqttClient, reason: str) -> None:
        if client is not self.client:
            return
        self.connected = False
        self.app.metrics.inc("mqtt_connect_failed", sink=self.name)
        self._report(f"sink {self.name!r}: cannot reach the MQTT broker {self.where} "
                     f"({reason}); retrying", logging.WARNING)

    # -- publishing --------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """Publish now, or keep it for the reconnect: retained topics coalesce, events queue."""
        if retain:
            self._clears.discard(topic)
            if self._retained.get(topic) == payload:
                return
            self._retained[topic] = payload
            if not self.connected:
                if topic in self._stale:
                    self.coalesced += 1
                self._stale.add(topic)
                return
            self._send(topic, payload, True)
            return
        if not self.connected:
            if self.max_queued == 0 or len(self._events) >= self.max_queued:
                self.dropped += 1
                self.app.metrics.inc("mqtt_dropped", sink=self.name)
                if self.max_queued == 0:
                    return
                self._events.popleft()
            self._events.append((topic, payload))
            return
        self._send(topic, payload, False)

    def _send(self, topic: str, payload: bytes, retain: bool) -> Sent | None:
        if self.client is None:
            return None
        try:
            info = self.client.publish(topic, payload, self.qos, retain)
        except ValueError as exc:
            self.bad_topics += 1
            self.app.metrics.inc("mqtt_bad_topics", sink=self.name)
            self._report(f"sink {self.name!r}: cannot publish to {topic!r}: {exc}")
            return None
        if info is None:   # QoS 0 with the connection just lost, or the client's queue full
            self.dropped += 1
            self.app.metrics.inc("mqtt_dropped", sink=self.name)
            return None
        self._sent += 1
        self.published += 1
        return info

    async def _wait_for_room(self) -> None:
        """Backpressure: while the broker lags far behind, let the bus queue hold events."""
        while self.connected and self._sent - self._acked >= _HIGH_WATER:
            self._room.clear()
            self._waiting = True
            try:
                async with asyncio.timeout(_TICK):
                    await self._room.wait()
            except TimeoutError:
                pass

    def _clear(self, topic: str) -> None:
        self._retained.pop(topic, None)
        self._stale.discard(topic)
        self._clears.add(topic)
        if self.connected:
            self._send_clear(topic)

    def _send_clear(self, topic: str) -> None:
        info = self._send(topic, b"", True)
        if info is not None:
            self._clear_infos.append((topic, info))

    def _clear_order(self, topics: set[str]) -> list[str]:
        """Discovery configs first: Home Assistant removes the entity before its state topic
        is emptied, instead of logging the empty payload as an invalid state."""
        prefix = self.settings.prefix + "/"
        return sorted(topics, key=lambda t: (not t.startswith(prefix), t))

    def _note_component_removals(self, configs: dict[str, dict[str, Any]]) -> None:
        """Device-based discovery: note the components that left a device still wanted."""
        now = {topic: ha.device_components(config) for topic, config in configs.items()}
        for topic in set(self._components) | set(self._component_removals):
            if not now.get(topic):
                self._component_removals.pop(topic, None)   # its empty config removes them all
                continue
            gone = {**self._component_removals.get(topic, {}), **self._components.get(topic, {})}
            gone = {key: p for key, p in gone.items() if key not in now[topic]}
            if gone:
                self._component_removals[topic] = gone
            else:
                self._component_removals.pop(topic, None)
        self._components = {topic: cmps for topic, cmps in now.items() if cmps}

    def _send_component_removals(self, topic: str) -> bool:
        """Send the device config listing its removed components by their platform alone."""
        removed = self._component_removals.get(topic)
        if not removed or topic not in self._discovery:
            return False
        config = ha.removing_components(orjson.loads(self._discovery[topic]), removed)
        info = self._send(topic, orjson.dumps(config, option=orjson.OPT_SORT_KEYS), True)
        if info is not None:
            self._removal_infos.append((topic, dict(removed), info))
        return True

    def _check_clears(self) -> None:
        """Forget cleared topics and sent component removals once the broker has them; they
        leave the state file then."""
        removals = []
        for topic, removed, info in self._removal_infos:
            if not info.is_published():
                removals.append((topic, removed, info))
                continue
            pending = self._component_removals.get(topic, {})
            for key, platform in removed.items():
                if pending.get(key) == platform:
                    del pending[key]
            if not pending:
                self._component_removals.pop(topic, None)
            self._save_pending = True
        self._removal_infos = removals
        if not self._clear_infos:
            return
        waiting = []
        for topic, info in self._clear_infos:
            if info.is_published():
                if topic not in self._owned:
                    self._clears.discard(topic)
                self._save_pending = True
            else:
                waiting.append((topic, info))
        self._clear_infos = waiting

    # -- routed events -----------------------------------------------------------------------

    async def write(self, batch: list[Delivery]) -> None:
        for d in batch:
            if self._sent - self._acked >= _HIGH_WATER:
                await self._wait_for_room()
            e = d.event
            topic = d.topic or f"{self.base}/event/{e.type}"
            payload = d.payload.encode() if d.payload is not None else e.to_json()
            self._publish(topic, payload, retain=False)
            if e.universal_id or e.game:
                key = self._game_of(e).key
                self._routed.add(key)
                self._dirty.add(key)
        self._wake.set()

    # -- what happens in the games ---------------------------------------------------------

    def observe(self, event: Event) -> None:
        etype = event.type
        if etype in (ev.FEED_CONNECTED, ev.FEED_DISCONNECTED):
            feed = event.data.get("feed") or event.feed
            if feed:
                self._feed_up[feed] = etype == ev.FEED_CONNECTED
                self._publish_feeds()
            return
        if etype in (ev.ODDS_SPORT_CLEARED, ev.ODDS_BOOK_CLEARED):
            self._cleared(event)
            return
        if etype not in _GAME_TYPES or not (event.universal_id or event.game):
            return
        if etype in _LINE_TYPES and not (self._wanted_book(event.sportsbook)
                                         and self._wanted_market(event.data.get("market"))):
            return
        info = self._game_of(event)
        teams = self._teams_playing(info)
        before = {t: ha.team_state(t, info, self.settings) for t in teams}
        shown = {t: self._current_game(t) for t in teams}
        self._apply(info, event)
        if etype == ev.GAME_STATUS_CHANGED:
            for team in teams:
                self._team_current.pop(team, None)   # a game going live becomes current
        for team in teams:
            if info.key in (shown[team], self._current_game(team)):
                self._team_events(team, event, info, before[team])
        if teams:
            self._teams_dirty = True
        if teams or info.key in self._routed:
            self._dirty.add(info.key)
            self._wake.set()

    def _wanted_book(self, book: str | None) -> bool:
        return not self._books or norm(book) in self._books

    def _wanted_market(self, market: Any) -> bool:
        return isinstance(market, str) and market.casefold() in self._markets

    def _game_of(self, event: Event) -> ha.GameInfo:
        key = event.universal_id or f"name:{norm(event.game)}"
        info = self._games.get(key)
        if info is None:
            home, away = event.home, event.away
            if not (home and away):
                home, away = ha.split_game_name(event.game)
            info = self._games[key] = ha.GameInfo(
                key=key, universal_id=event.universal_id, name=event.game, sport=event.sport,
                home=home, away=away)
            self._team_current.clear()   # a new game may be a tracked team's next one
        return info

    def _teams_playing(self, info: ha.GameInfo) -> list[str]:
        teams = self._playing.get(info.key)
        if teams is None:
            teams = [] if self._sports and norm(info.sport) not in self._sports \
                else [t for t in self.teams if info.side_of(t)]
            self._playing[info.key] = teams
        return teams

    def _apply(self, info: ha.GameInfo, event: Event) -> None:
        etype, d = event.type, event.data
        if etype == ev.SCORE_CHANGED:
            info.home_score, info.away_score = d.get("home_score"), d.get("away_score")
            if d.get("period") is not None:
                info.period = d["period"]
            if d.get("clock") is not None:
                info.clock = d["clock"]
        elif etype == ev.GAME_STATUS_CHANGED:
            code = ha.status_code(d.get("status"))
            if code is not None:
                info.status = code
                if code == "POST":
                    self._final_seen[info.key] = time.monotonic()
        elif etype == ev.GAME_PERIOD_CHANGED:
            info.period = d.get("period")
        elif etype in (ev.ODDS_GAME_ADDED, ev.ODDS_GAME_UPDATED):
            book = event.sportsbook or ""
            outcomes = d.get("outcomes")
            if etype == ev.ODDS_GAME_UPDATED and event.game:
                outcomes = self.app.board.game_lines(event.game).get(book) or outcomes
            self._drop_lines(info, lambda b, _o: b == book)
            if isinstance(outcomes, dict) and self._wanted_book(book):
                for outcome, line in outcomes.items():
                    self._set_line(info, book, outcome, line)
        elif etype == ev.ODDS_GAME_REMOVED:
            book = event.sportsbook or ""
            self._drop_lines(info, lambda b, _o: b == book)
        elif etype in _LINE_TYPES:
            data = {"odds": d.get("new_odds"), **d}
            self._set_line(info, event.sportsbook or "", d.get("outcome"), data)

    def _set_line(self, info: ha.GameInfo, book: str, outcome: Any, line: Any) -> None:
        if not isinstance(outcome, str) or not isinstance(line, dict):
            return
        if not self._wanted_market(line.get("market")):
            return
        odds = line.get("odds")
        info.lines[(book, outcome)] = ha.Line(
            market=line.get("market"), target=line.get("target"), line=line.get("line"),
            over_under=line.get("over_under"), american=None if odds is None else str(odds),
            link=line.get("link"))

    @staticmethod
    def _drop_lines(info: ha.GameInfo, which: Callable[[str, str], bool]) -> None:
        for key in [k for k in info.lines if which(*k)]:
            del info.lines[key]

    def _cleared(self, event: Event) -> None:
        book = event.data.get("sportsbook") or event.sportsbook
        sport = (event.data.get("sport") or event.sport) \
            if event.type == ev.ODDS_SPORT_CLEARED else None
        if not book:
            return
        for info in self._games.values():
            if sport is None or norm(info.sport) == norm(sport):
                self._drop_lines(info, lambda b, _o: b == book)
                if info.key in self._routed:
                    self._dirty.add(info.key)
        self._teams_dirty = True
        self._wake.set()

    def _team_events(self, team: str, event: Event, info: ha.GameInfo,
                     before: dict[str, Any]) -> None:
        after = ha.team_state(team, info, self.settings)
        etype, d = event.type, event.data
        out: list[dict[str, Any]] = []
        if etype == ev.SCORE_CHANGED:
            out = ha.score_events(before, after)
        elif etype == ev.GAME_PERIOD_CHANGED and d.get("prev_period") is not None:
            out = [ha.team_event("period_end", before, after, period=d.get("prev_period"),
                                 next_period=d.get("period"))]
        elif etype == ev.GAME_STATUS_CHANGED and info.status == "POST":
            lead = ha.leader(after.get("team_score"), after.get("opponent_score"))
            result = {"team": "win", "opponent": "loss"}.get(lead or "", "tie")
            out = [ha.team_event("final", before, after, result=result)]
        elif etype in _LINE_TYPES or etype in (ev.ODDS_GAME_ADDED, ev.ODDS_GAME_UPDATED):
            out = self._odds_moves(team, before, after)
        topic = ha.team_event_topic(self.base, team)
        for payload in out:
            self._publish(topic, orjson.dumps(payload), retain=False)

    def _odds_moves(self, team: str, before: dict[str, Any],
                    after: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for key, now in after["odds"].items():
            american = now["attributes"].get("american")
            dec = ha.american_to_decimal(american)
            if dec is None:
                continue
            prob = 1 / dec
            ref = self._odds_ref.get((team, key))
            if ref is None or abs(prob - ref) >= self.hass["odds_move"]:
                self._odds_ref[(team, key)] = prob
                if ref is None:
                    continue
                was = before["odds"].get(key, {})
                out.append(ha.team_event(
                    "odds_move", before, after, market=now["attributes"].get("market"),
                    value=now["value"], prev_value=was.get("value"), american=american,
                    prev_american=was.get("attributes", {}).get("american"),
                    book=now["attributes"].get("book"),
                    prob=round(prob, 4), prev_prob=round(ref, 4)))
        return out

    # -- a team's current or next game -------------------------------------------------------

    def _current_game(self, team: str) -> str | None:
        if team not in self._team_current:
            game = self._find_team_game(team)
            self._team_current[team] = game.key if game is not None else None
        return self._team_current[team]

    def _find_team_game(self, team: str) -> ha.GameInfo | None:
        candidates: dict[str, ha.GameInfo] = {}
        for ref in self.app.catalogue.games_for_team(team):
            info = self._info_for_ref(ref)
            candidates[info.key] = info
        for info in self._games.values():
            if team in self._teams_playing(info):
                candidates[info.key] = info
        chosen = [self._seed(i) for i in candidates.values() if team in self._teams_playing(i)]
        if not chosen:
            return None
        now, wall = time.monotonic(), time.time()
        hold = self.hass["final_hold"]

        def rank(info: ha.GameInfo) -> tuple[int, float]:
            dt = parse_time(info.start)
            start = dt.timestamp() if dt else float("inf")
            if info.status == "IN":
                return 0, -start
            if info.status == "POST" and now - self._final_seen.get(info.key, -1e18) < hold:
                return 1, 0.0
            if info.status in (None, "PRE"):
                return (2, start) if start >= wall - _UPCOMING_WINDOW else (3, -start)
            return 4, -start if dt else 0.0

        return min(chosen, key=rank)

    def _catalogue_changed(self, added: list[GameRef], removed: list[GameRef]) -> None:
        """Games gone from get_games: forget them and empty their retained state topic."""
        current = set(self._team_current.values())
        for ref in removed:
            key = ref.universal_id
            if key in current or self._games.pop(key, None) is None:
                continue
            for known in (self._final_seen, self._playing):
                known.pop(key, None)
            self._routed.discard(key)
            self._seeded.discard(key)
            topic = ha.game_topic(self.base, key)
            if topic in self._retained:
                self._clear(topic)
        if added or removed:
            self._teams_dirty = True
            self._wake.set()

    def _info_for_ref(self, ref: GameRef) -> ha.GameInfo:
        info = self._games.get(ref.universal_id)
        if info is None:
            info = self._games[ref.universal_id] = ha.GameInfo(
                key=ref.universal_id, universal_id=ref.universal_id, name=ref.name,
                sport=ref.sport, home=ref.home, away=ref.away, start=ref.start)
        return info

    def _seed(self, info: ha.GameInfo) -> ha.GameInfo:
        """Fill what events have not said (yet) from the catalogue, scoreboard and odds board.

        Only empty fields are filled: changes always come from events, so the
        scores before an event are never overwritten by the scores after it.
        """
        uid = info.universal_id
        ref = self.app.catalogue.games.get(uid) if uid else None
        if ref is not None:
            if (info.home, info.away, info.sport) != (info.home or ref.home,
                                                      info.away or ref.away,
                                                      info.sport or ref.sport):
                self._playing.pop(info.key, None)
            info.name = info.name or ref.name
            info.sport = info.sport or ref.sport
            info.home = info.home or ref.home
            info.away = info.away or ref.away
            info.start = ref.start or info.start
        state = self.app.scoreboard.get(uid) if uid else None
        if state is not None:
            if info.status is None:
                info.status = ha.status_code(state.status)
            if info.home_score is None and info.away_score is None:
                info.home_score, info.away_score = state.home_score, state.away_score
            if info.period is None:
                info.period = state.period
            if info.clock is None:
                info.clock = state.clock
            info.start = info.start or state.start
        if info.status is None and ref is not None:
            start = parse_time(info.start)
            if start is not None and start.timestamp() > time.time():
                info.status = "PRE"
        if info.key not in self._seeded and info.name:
            self._seeded.add(info.key)
            for book, lines in self.app.board.game_lines(info.name).items():
                if self._wanted_book(book):
                    for outcome, line in lines.items():
                        if (book, outcome) not in info.lines:
                            self._set_line(info, book, outcome, line)
        return info

    # -- the publisher task ------------------------------------------------------------------

    async def _run(self) -> None:
        last_tick = last_info = time.monotonic()
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses the cancellation
            # of stop() when it comes as _wake is set, and stop() would wait forever
            try:
                async with asyncio.timeout(_TICK):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                now = time.monotonic()
                if now - last_tick >= _TICK:
                    last_tick = now
                    self._team_current.clear()
                    self._teams_dirty = True
                    self._publish_feeds()
                    self._check_clears()
                self._publish_states()
                if now - last_info >= self.options["info_interval"]:
                    last_info = now
                    self._publish_info()
                if self._save_pending:
                    self._save_pending = False
                    await self._save_state()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.app.metrics.inc("plugin_errors", plugin=f"sink:{self.name}")
                log.exception("sink %r could not update its state topics: %s", self.name,
                              redact(exc))
            await asyncio.sleep(_STATE_EVERY)

    def _publish_states(self) -> None:
        games = set(self._dirty)
        self._dirty.clear()
        if self._teams_dirty:
            self._teams_dirty = False
            for team in self.teams:
                key = self._current_game(team)
                game = self._games.get(key) if key else None
                state = ha.team_state(team, game, self.settings)
                topics = ha.team_topics(self.base, team)
                self._publish(topics["state"], orjson.dumps(state), True)
                self._publish(topics["status"], ha.status_payload(state["status"]).encode(), True)
                self._publish(topics["kickoff"], ha.timestamp_payload(state["kickoff"]).encode(),
                              True)
                if game is not None:
                    games.add(game.key)
        for key in games:
            info = self._games.get(key)
            if info is not None:
                topic = ha.game_topic(self.base, info.universal_id or ha.slug(info.name or key))
                self._publish(topic, orjson.dumps(ha.game_state(info, self.settings.markets)),
                              True)

    def _feeds_up(self) -> dict[str, bool]:
        out = {}
        for name in self.settings.feeds:
            feed = self.app.feeds.get(name)
            out[name] = bool(feed.connected) if feed is not None \
                else self._feed_up.get(name, False)
        return out

    def _publish_feeds(self) -> None:
        changed = False
        for name, up in self._feeds_up().items():
            topic, payload = ha.feed_topic(self.base, name), b"online" if up else b"offline"
            if self._retained.get(topic) != payload:
                changed = True
                self._publish(topic, payload, True)
        if changed and self.client is not None:
            self._publish_info()

    def _publish_info(self) -> None:
        now, n = time.monotonic(), self.app.events_in
        mark_t, mark_n = self._rate_mark
        if now - mark_t > 0.05:
            self._rate = (n - mark_n) / (now - mark_t)
            self._rate_mark = (now, n)
        recent = self.app.recent
        info = {"version": __version__, "base_topic": self.base,
                "feeds": {f: "online" if up else "offline" for f, up in self._feeds_up().items()},
                "last_message": recent[-1].received if recent else None,
                "events_per_second": round(self._rate, 1), "published": self.published,
                "queued": len(self._events), "dropped": self.dropped,
                "tracked_teams": self.teams}
        self._publish(ha.bridge_info_topic(self.base), orjson.dumps(info), True)

    # -- requests from MQTT clients --------------------------------------------------------

    def _message(self, topic: str, payload: bytes, retain: bool) -> None:
        if retain:
            return   # a stale retained request or birth message: nothing to act on now
        if topic in self.status_topics:
            if payload.strip().lower() == b"online":
                self._spawn(self._republish_after(
                    random.uniform(0, self.hass["republish_delay"])))
            return
        command = command_of(self.base, topic)
        transaction = None
        try:
            request = parse_request(command, payload)
            transaction = request.transaction
            if request.command == "track":
                data = self._track(request.team or "")
            elif request.command == "untrack":
                data = self._untrack(request.team or "")
            else:
                data = {"feeds": self._resubscribe()}
        except RequestError as exc:
            log.warning("sink %r: request %s refused: %s", self.name, command, exc)
            body = response("error", transaction=exc.transaction or transaction, error=str(exc))
        else:
            body = response("ok", data, transaction)
        self._publish(response_topic(self.base, command), body, retain=False)

    def _resubscribe(self) -> list[str]:
        done = []
        for name, feed in self.app.feeds.items():
            again = getattr(feed, "request_subscribe", None)
            if again is not None:
                again()
                done.append(name)
        return done

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._pending_tasks.add(task)
        task.add_done_callback(self._pending_tasks.discard)

    async def _republish_after(self, delay: float) -> None:
        """Home Assistant (re)started: send the discovery configs and availability again."""
        await asyncio.sleep(delay)
        self.republishes += 1
        if not self.connected:
            return   # the reconnect publishes everything anyway
        self._send(ha.bridge_state_topic(self.base), b"online", True)
        for topic, payload in self._discovery.items():
            self._send(topic, payload, True)
        for name in self.settings.feeds:
            topic = ha.feed_topic(self.base, name)
            if topic in self._retained:
                self._send(topic, self._retained[topic], True)

    # -- the entity list on disk --------------------------------------------------------------

    def _load_state(self) -> dict[str, Any]:
        try:
            doc = orjson.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("sink %r: cannot read %s (%s); entities published before are not "
                        "known and cannot be removed", self.name, self.state_path, exc)
            return {}
        return doc if isinstance(doc, dict) else {}

    def _state_doc(self) -> dict[str, Any]:
        return {"topics": sorted(self._owned), "clear": sorted(self._clears - self._owned),
                "components": {t: dict(c) for t, c in self._components.items()},
                "component_removals": {t: dict(c) for t, c in self._component_removals.items()},
                "added": list(self._added), "removed": list(self._removed),
                "config_teams": list(self.config_teams)}

    async def _save_state(self) -> None:
        try:
            await asyncio.to_thread(self._write_state, self._state_doc())
        except OSError as exc:
            self._report(f"sink {self.name!r}: cannot write {self.state_path}: {exc}; "
                         "entities removed later may stay in Home Assistant")

    def _write_state(self, doc: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.state_path)

    # -- status -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"broker": self.where, "connected": self.connected, "published": self.published,
                "queued": len(self._events), "dropped": self.dropped,
                "coalesced": self.coalesced, "republishes": self.republishes,
                "connects": self.connects, "refusals": self.refusals,
                "in_flight": self._sent - self._acked,
                "entities": len(self._discovery), "tracked_teams": self.teams,
                "last_error": self.last_error}

    def healthy(self) -> bool:
        return self.connected


@boltrouter.hookimpl
def register_sink_types(register: Any) -> None:
    register("mqtt", MqttSink)
