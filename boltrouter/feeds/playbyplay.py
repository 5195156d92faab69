"""The play-by-play websocket (``wss://spro.agency/api/playbyplay``), streams 1 to 4.

Each message names its game in ``event`` (some streams without the hour
suffix) and carries ``universal_id``; the catalogue joins it to the other feeds.

- stream 1 (NFL-style): ``current_state`` (period, clock, score, possession),
  ``stats`` (a flat snapshot), ``last_play``/``new_play`` (one play per message,
  identified by ``action_id``);
- streams 2 and 3: ``new_play`` with a list of recent plays (10 or 5 on
  connect) and the score, and ``stats`` (per team, or a list of named stats);
- stream 4: ``new_play`` with the current play and the score.

Plays become ``play.new`` once each: plays repeated on reconnect are recognised
by ``action_id``, the play ``id``, or (clock, description), per game. Stats
become ``stats.updated`` only when they differ from the last snapshot. Scores,
periods and clocks go through the scoreboard.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, ClassVar

import orjson

from .. import hookimpl
from ..config import Field
from ..events import PLAY_NEW, STATS_UPDATED, Event, make_id
from ..scoreboard import GameState, ScoreUpdate
from .scoreshapes import as_int, format_clock
from .selection import SelectedGamesFeed, selection_schema

DEFAULT_URL = "wss://spro.agency/api/playbyplay"
PLAYS_REMEMBERED = 500
"""Play keys remembered per game for deduplication."""
GAMES_REMEMBERED = 2000


def content_hash(value: Any) -> str:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str),
                           digest_size=12).hexdigest()


def humanize(action: Any) -> str:
    """``pass_that_gains_yards`` -> ``Pass that gains yards``."""
    text = str(action or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _name(person: Any) -> str | None:
    return person.get("full_name") if isinstance(person, dict) else None


def normalize_stats(stream: Any, info: Any) -> dict[str, Any]:
    """The stats of one ``stats`` message in one shape per stream.

    Stream 1: the flat dict without its ``id``. Stream 2: ``{game, team: {home, away}}``
    as sent. Stream 3: ``{"game": {name: {home, away, ...}}}`` from the list of
    named stats. Anything else is kept as sent.
    """
    if not isinstance(info, dict):
        return {"raw": info}
    game = info.get("game")
    if isinstance(game, list):
        named: dict[str, Any] = {}
        for item in game:
            if isinstance(item, dict) and item.get("name") is not None:
                named[str(item["name"])] = {k: v for k, v in item.items() if k != "name"}
        return {**info, "game": named}
    if stream == 1:
        return {k: v for k, v in info.items() if k != "id"}
    return dict(info)


class PlayByPlayFeed(SelectedGamesFeed):
    options_schema: ClassVar[dict[str, Field]] = selection_schema(DEFAULT_URL)
    simulator_path: ClassVar[str] = "/api/playbyplay"

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self._plays: OrderedDict[str, OrderedDict[Any, None]] = OrderedDict()
        self._stats: OrderedDict[tuple[str, Any], str] = OrderedDict()
        self._fresh: set[str] = set()   # games already heard on this connection

    async def on_socket_connected(self, msg: dict[str, Any], received: str) -> None:
        self._fresh.clear()

    async def handle_message(self, msg: dict[str, Any], received: str) -> bool:
        action = msg.get("action")
        stream = stream_of(msg)
        if not (msg.get("event") or msg.get("universal_id")) or action is None:
            return False
        scoreboard = self.app.scoreboard
        state = scoreboard.state_for(msg.get("event"), msg.get("league"),
                                     universal_id=msg.get("universal_id") or None,
                                     home=msg.get("home"), away=msg.get("away"))
        if state is None:
            return False
        self.app.metrics.inc("playbyplay_messages", stream=str(stream), action=str(action)[:40])
        first_on_connection = state.universal_id not in self._fresh
        self._fresh.add(state.universal_id)
        if action == "current_state":
            await self._current_state(msg, state, received)
        elif action == "stats":
            await self._stats_message(msg, state, received)
        elif msg.get("state") in ("new_play", "last_play") or action == "new_play":
            backlog = msg.get("state") == "last_play" or (
                first_on_connection and stream in (2, 3))
            await self._plays_message(msg, state, received, backlog)
        else:
            return False
        return True

    # -- message kinds ----------------------------------------------------------------

    async def _current_state(self, msg: dict[str, Any], state: GameState, received: str) -> None:
        info = msg.get("game_info") if isinstance(msg.get("game_info"), dict) else {}
        score = info.get("score") if isinstance(info.get("score"), dict) else {}
        field_state = msg.get("field_state") if isinstance(msg.get("field_state"), dict) else {}
        possession = field_state.get("possession")
        update = self._update(msg, state, home_score=as_int(score.get("home_score")),
                              away_score=as_int(score.get("away_score")),
                              period=as_int(info.get("period")) or info.get("period") or None,
                              clock=format_clock(info.get("clock")),
                              possession=possession if possession in ("home", "away") else None,
                              status="live",
                              extra={"field_state": field_state} if field_state else None)
        if update.home is None:
            update.home, update.away = score.get("home_team"), score.get("away_team")
        await self.publish_game_events(self.app.scoreboard.apply(update, received))

    async def _stats_message(self, msg: dict[str, Any], state: GameState, received: str) -> None:
        stream = stream_of(msg)
        stats = normalize_stats(stream, msg.get("play_info"))
        key = (state.universal_id, stream)
        digest = content_hash(stats)
        if self._stats.get(key) == digest:
            return
        self._stats[key] = digest
        self._stats.move_to_end(key)
        while len(self._stats) > GAMES_REMEMBERED:
            self._stats.popitem(last=False)
        state.extra[f"stats_stream{stream}"] = stats
        await self.app.publish(Event(
            STATS_UPDATED, {"stream": stream, "stats": stats},
            id=make_id(state.start or received, STATS_UPDATED, state.universal_id, stream, digest),
            time=received, received=received, feed=self.name, **self._envelope(msg, state)))

    async def _plays_message(self, msg: dict[str, Any], state: GameState, received: str,
                             backlog: bool) -> None:
        stream = stream_of(msg)
        info = msg.get("play_info")
        if isinstance(info, list):
            plays = [p for p in info if isinstance(p, dict)]
            if len(plays) > 1 and not _ascending(plays):
                plays.reverse()   # upstream lists the most recent play first
        elif isinstance(info, dict):
            plays = [info]
        else:
            plays = []
        events: list[Event] = []
        for play in plays:
            key = self._play_key(msg, play)
            if not self._remember(state.universal_id, key):
                continue
            data = self._play_data(msg, play, stream, backlog, state)
            self.app.scoreboard.record_play(state, data)
            events.append(Event(
                PLAY_NEW, data,
                id=make_id(state.start or received, PLAY_NEW, state.universal_id, key),
                time=received, received=received, feed=self.name,
                **self._envelope(msg, state)))
        await self.app.publish_many(events)
        score = msg.get("score") if isinstance(msg.get("score"), dict) else None
        if score is not None:
            update = self._update(msg, state, home_score=as_int(score.get("home")),
                                  away_score=as_int(score.get("away")), status="live")
            await self.publish_game_events(self.app.scoreboard.apply(update, received))

    # -- helpers ----------------------------------------------------------------------

    def _update(self, msg: dict[str, Any], state: GameState, **fields: Any) -> ScoreUpdate:
        return ScoreUpdate(feed=self.name, game=msg.get("event"),
                           universal_id=state.universal_id, sport=msg.get("league"),
                           home=msg.get("home"), away=msg.get("away"), **fields)

    @staticmethod
    def _envelope(msg: dict[str, Any], state: GameState) -> dict[str, Any]:
        return {"sport": state.sport or msg.get("league"), "game": state.name or msg.get("event"),
                "universal_id": state.universal_id, "home": state.home, "away": state.away}

    @staticmethod
    def _play_key(msg: dict[str, Any], play: dict[str, Any]) -> Any:
        if msg.get("action_id"):
            return ("action_id", msg["action_id"])
        if play.get("id") not in (None, ""):
            return ("id", str(play["id"]))
        if play.get("description") is not None:
            return ("clock", play.get("period"), play.get("clock"), play.get("description"))
        return ("hash", content_hash(play))

    def _remember(self, uid: str, key: Any) -> bool:
        """Record a play key; False when this game's play was seen already."""
        seen = self._plays.get(uid)
        if seen is None:
            seen = self._plays[uid] = OrderedDict()
            while len(self._plays) > GAMES_REMEMBERED:
                self._plays.popitem(last=False)
        else:
            self._plays.move_to_end(uid)
        if key in seen:
            return False
        seen[key] = None
        while len(seen) > PLAYS_REMEMBERED:
            seen.popitem(last=False)
        return True

    @staticmethod
    def _play_data(msg: dict[str, Any], play: dict[str, Any], stream: Any,
                   backlog: bool, state: GameState) -> dict[str, Any]:
        action = msg.get("action")
        if stream == 1 or action not in ("new_play",):
            description = humanize(action)
            passer, receiver = _name(play.get("passer")), _name(play.get("receiver"))
            if passer and receiver:
                description += f": {passer} to {receiver}"
            elif passer or receiver:
                description += f": {passer or receiver}"
            yards = as_int(play.get("net_yards"))
            if yards is not None:
                description += f", {yards} yard{'' if abs(yards) == 1 else 's'}"
            data = {"stream": stream, "action": action, "description": description,
                    "play": play, "play_start": msg.get("play_start") or None,
                    "play_end": msg.get("play_end") or None,
                    "action_id": msg.get("action_id") or None}
        else:
            kind = play.get("type") or play.get("name")
            if play.get("description"):
                description = str(play["description"])
            else:
                description = humanize(play.get("name") or kind)
                if play.get("subType"):
                    description += f" ({play['subType']})"
                team = play.get("team")
                team_name = ((msg.get(team) or getattr(state, team)) if team in ("home", "away")
                             else team)
                if team_name:
                    description += f" - {team_name}"
            data = {"stream": stream, "action": kind or action, "description": description,
                    "play": play}
        data["backlog"] = backlog
        return data


def stream_of(msg: dict[str, Any]) -> Any:
    """The message's stream number (upstream may write it as a string)."""
    stream = msg.get("stream")
    return as_int(stream) if as_int(stream) is not None else stream


def _ascending(plays: list[dict[str, Any]]) -> bool:
    """True when the plays are listed oldest first: numeric ids increasing or, without
    ids, a game clock counting down (``"00:19"``, ``"00:02"``, ``"00:00"``)."""
    ids = [as_int(p.get("id")) for p in plays]
    if all(i is not None for i in ids):
        return ids == sorted(ids)   # type: ignore[type-var]
    clocks = [_seconds(p.get("clock")) for p in plays]
    if all(c is not None for c in clocks) and len(set(clocks)) > 1:
        return clocks == sorted(clocks, reverse=True)   # type: ignore[type-var]
    return False


def _seconds(clock: Any) -> int | None:
    """``"MM:SS"`` -> seconds; None for anything else."""
    if not isinstance(clock, str) or clock.count(":") != 1:
        return None
    minutes, seconds = clock.split(":")
    if minutes.strip().isdigit() and seconds.strip().isdigit():
        return int(minutes) * 60 + int(seconds)
    return None


@hookimpl
def register_feed_types(register: Any) -> None:
    register("playbyplay", PlayByPlayFeed)
