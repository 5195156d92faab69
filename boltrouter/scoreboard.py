"""The scoreboard: one state per game joined across feeds by universal_id.

Live scores, play-by-play and the REST box scores all report the same games.
Each report is a ``ScoreUpdate`` (the fields a message carries, ``None`` for
what it does not say); ``Scoreboard.apply`` merges it into the game's
``GameState`` and returns the events for what really changed:
``score.changed``, ``game.status_changed`` and ``game.period_changed``.

- The first value known for a field (from a snapshot, a REST seed or the first
  live message) is the baseline and emits nothing; later differences do.
- Two feeds reporting the same goal give one event: the second finds nothing new.
- A feed that lags behind (it reports a score the game already went through,
  while it never reported the present one) is ignored, so a slow feed never
  makes the score jump back and forth. A feed going back from the present value
  it reported itself is a correction, and a correction is a change.
- Event ids derive from the game and the change itself (previous and new
  values), so the same change always gets the same id.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .catalogue import GameRef, norm
from .events import (
    GAME_PERIOD_CHANGED,
    GAME_STATUS_CHANGED,
    SCORE_CHANGED,
    Event,
    make_id,
    now_iso,
)

STATUSES = ("scheduled", "live", "final")
_STATUS_RANK = {s: i for i, s in enumerate(STATUSES)}
_HISTORY = 32
MAX_GAMES = 5000
"""Games kept; beyond this the finished games updated longest ago are forgotten."""
_MISSING = object()


@dataclass(slots=True)
class GameState:
    universal_id: str
    name: str | None = None
    sport: str | None = None
    home: str | None = None
    away: str | None = None
    start: str | None = None
    status: str = "scheduled"          # scheduled | live | final
    home_score: int | None = None
    away_score: int | None = None
    period: Any = None
    clock: str | None = None
    possession: str | None = None
    last_play: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    updated: str | None = None         # ISO time of the last report that changed something


@dataclass(slots=True)
class ScoreUpdate:
    """What one upstream message says about one game; ``None`` = not reported."""

    feed: str
    game: str | None = None            # the game as this feed spells it
    universal_id: str | None = None
    sport: str | None = None
    home: str | None = None
    away: str | None = None
    home_score: int | None = None
    away_score: int | None = None
    status: str | None = None          # scheduled | live | final
    period: Any = None
    clock: str | None = None
    possession: str | None = None      # home | away
    time: str | None = None            # the feed's own timestamp, if any
    extra: dict[str, Any] | None = None  # merged into GameState.extra (stats, shape, ...)


@dataclass(slots=True)
class _Tracking:
    """Per game: values each feed last reported and the values the game went through."""

    feed_last: dict[tuple[str, str], Any] = field(default_factory=dict)
    history: dict[str, deque[Any]] = field(default_factory=dict)
    status_known: bool = False
    occurrences: dict[Any, int] = field(default_factory=dict)

    def occurrence(self, change: Any) -> int:
        """How many times this exact change happened in this game, this one included."""
        self.occurrences[change] = self.occurrences.get(change, 0) + 1
        return self.occurrences[change]

    def seen(self, name: str) -> deque[Any]:
        got = self.history.get(name)
        if got is None:
            got = self.history[name] = deque(maxlen=_HISTORY)
        return got


class Scoreboard:
    def __init__(self, catalogue: Any = None) -> None:
        self.catalogue = catalogue
        self.states: dict[str, GameState] = {}
        self._tracking: dict[str, _Tracking] = {}

    def get(self, universal_id: str) -> GameState | None:
        return self.states.get(universal_id)

    def games(self) -> list[GameState]:
        return list(self.states.values())

    def last_reported(self, universal_id: str, feed: str, name: str = "score") -> Any:
        """What ``feed`` last said about a game's ``score`` (a (home, away) pair) or
        ``period``; None when it never did."""
        track = self._tracking.get(universal_id)
        if track is None:
            return None
        value = track.feed_last.get((feed, name))
        return None if value is _MISSING else value

    # -- finding the game -------------------------------------------------------------

    def resolve(self, game: str | None, sport: str | None = None,
                universal_id: str | None = None) -> GameRef | None:
        if self.catalogue is None:
            return None
        return self.catalogue.resolve(game, sport, universal_id=universal_id)

    def state_for(self, game: str | None, sport: str | None = None, *,
                  universal_id: str | None = None, home: str | None = None,
                  away: str | None = None) -> GameState | None:
        """The state of the game a feed names (created on first sight), or None."""
        ref = self.resolve(game, sport, universal_id)
        uid = ref.universal_id if ref else (universal_id or (f"name:{norm(game)}" if game else ""))
        if not uid:
            return None
        state = self.states.get(uid)
        if state is None:
            if len(self.states) >= MAX_GAMES:
                self._forget_finished()
            state = self.states[uid] = GameState(universal_id=uid)
            self._tracking[uid] = _Tracking()
        if ref is not None:
            state.name, state.start = ref.name, ref.start
            state.sport = ref.sport or state.sport or sport
            state.home = ref.home or state.home or home
            state.away = ref.away or state.away or away
        else:
            state.name = state.name or game
            state.sport = state.sport or sport
            state.home = state.home or home
            state.away = state.away or away
        return state

    def _forget_finished(self) -> None:
        """Drop the older half of the finished games (a daemon runs for months)."""
        done = sorted((g for g in self.states.values() if g.status == "final"),
                      key=lambda g: g.updated or "")
        for game in done[:max(1, len(done) // 2)]:
            del self.states[game.universal_id]
            del self._tracking[game.universal_id]

    # -- applying reports -------------------------------------------------------------

    def apply(self, update: ScoreUpdate, received: str | None = None) -> list[Event]:
        """Merge one report into its game; return the events for what changed."""
        state = self.state_for(update.game, update.sport, universal_id=update.universal_id,
                               home=update.home, away=update.away)
        if state is None:
            return []
        received = received or now_iso()
        track = self._tracking[state.universal_id]
        events: list[Event] = []
        changed = False

        if update.status in _STATUS_RANK:
            if not track.status_known:
                track.status_known = True
                changed = state.status != update.status
                state.status = update.status
            elif _STATUS_RANK[update.status] > _STATUS_RANK[state.status]:
                prev = state.status
                state.status = update.status
                changed = True
                events.append(self._event(track, GAME_STATUS_CHANGED, state, update, received,
                                          {"status": state.status, "prev_status": prev},
                                          (prev, state.status)))

        if update.clock is not None and update.clock != state.clock:
            state.clock = update.clock
            changed = True
        if update.possession is not None and update.possession != state.possession:
            state.possession = update.possession
            changed = True

        if update.period is not None and self._accept(track, update.feed, "period",
                                                      update.period, state.period):
            prev_period = state.period
            state.period = update.period
            track.seen("period").append(update.period)
            changed = True
            if prev_period is not None:
                events.append(self._event(track, GAME_PERIOD_CHANGED, state, update, received,
                                          {"period": state.period, "prev_period": prev_period},
                                          (prev_period, state.period)))

        if update.home_score is not None and update.away_score is not None:
            new = (int(update.home_score), int(update.away_score))
            current = (None if state.home_score is None or state.away_score is None
                       else (state.home_score, state.away_score))
            if self._accept(track, update.feed, "score", new, current):
                state.home_score, state.away_score = new
                track.seen("score").append(new)
                changed = True
                if current is not None:
                    events.append(self._score_event(track, state, update, received, current,
                                                    new))

        if update.extra:
            state.extra.update(update.extra)
        if changed:
            state.updated = update.time or received
        return events

    def record_play(self, state: GameState, play: dict[str, Any]) -> None:
        """Remember the latest play of a game (shown by the sinks)."""
        state.last_play = play

    @staticmethod
    def _accept(track: _Tracking, feed: str, name: str, value: Any, current: Any) -> bool:
        """Whether ``value`` reported by ``feed`` replaces ``current``."""
        key = (feed, name)
        last = track.feed_last.get(key, _MISSING)
        track.feed_last[key] = value
        if value == current:
            return False
        if current is None:
            return True
        if last == value:
            return False            # the feed repeats itself while another moved on
        if value in track.seen(name) and last != current:
            return False            # a lagging feed catching up through known values
        return True

    # -- events -----------------------------------------------------------------------

    def _score_event(self, track: _Tracking, state: GameState, update: ScoreUpdate,
                     received: str, prev: tuple[int, int], new: tuple[int, int]) -> Event:
        home_moved, away_moved = new[0] != prev[0], new[1] != prev[1]
        side = "both" if home_moved and away_moved else ("home" if home_moved else "away")
        data = {
            "home_score": new[0], "away_score": new[1],
            "prev_home_score": prev[0], "prev_away_score": prev[1],
            "scoring_side": side, "correction": new[0] < prev[0] or new[1] < prev[1],
            "period": state.period, "clock": state.clock, "status": state.status,
        }
        return self._event(track, SCORE_CHANGED, state, update, received, data, (prev, new))

    @staticmethod
    def _event(track: _Tracking, etype: str, state: GameState, update: ScoreUpdate,
               received: str, data: dict[str, Any], change: tuple[Any, ...]) -> Event:
        """The event of one change. Its id derives from the game and the change, plus
        the number of times the same change happened before (a goal taken back and
        scored again is a new event with a new id)."""
        time = update.time or received
        parts: tuple[Any, ...] = (etype, state.universal_id, *change)
        n = track.occurrence(parts)
        if n > 1:
            parts = (*parts, n)
        return Event(
            type=etype, data=data,
            id=make_id(state.start or time, *parts),
            time=time, received=received, feed=update.feed,
            sport=state.sport, game=state.name or update.game,
            universal_id=state.universal_id, home=state.home, away=state.away,
        )
