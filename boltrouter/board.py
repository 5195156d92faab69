"""The odds board: current odds per (sportsbook, game, outcome), and what changed.

``OddsBoard.apply(msg, received)`` takes one upstream odds message and returns the
events for exactly what differs from what the board knew:

- The event ``time`` is the message's ``timestamp`` (normalized to ISO 8601 when
  upstream writes it another way), else the time of receipt.
- ``line_update`` merges into the game; ``initial_state``, ``game_update`` and
  ``game_added`` replace the game's outcomes. Lines whose price is unchanged emit
  nothing, so a reconnect whose ``initial_state`` repeats what is known emits no
  event at all.
- The first sight of a (sportsbook, game) emits one ``odds.game_added`` carrying
  its outcomes and no line events. A game removed and seen again is added again.
- A price change emits ``odds.line_changed``; a price becoming unavailable
  (``None``, ``''`` or ``"None"``, all the same) ``odds.line_suspended``; a price
  coming back ``odds.line_restored``. One price spelt two ways (``150`` as a
  number, ``"150"``, ``"+150"``) is not a change. A line that appears in a
  replacement with a price counts as restored (``old_odds`` null) and a priced
  line that vanishes from one as suspended (``new_odds`` null). A replacement
  that differed in any way also emits one ``odds.game_updated`` listing the
  changed keys.
- ``sport_clear`` / ``book_clear`` remove exactly their scope and emit one
  ``odds.sport_cleared`` / ``odds.book_cleared`` with the number of lines and
  games affected. The cleared games are remembered for ``cleared_ttl`` seconds:
  when one comes back it gets a new ``odds.game_added`` (``data.restored`` true,
  so consumers that dropped it on the clear can fill it again), and line events
  only for the lines whose price differs from before the clear.
- After a ``socket_connected`` (or ``subscription_updated``) the ``initial_state``
  messages that follow are a snapshot: at the first other message, games the
  snapshot did not mention are removed (``odds.game_removed``).

Memory: one ``Line`` (slots) per outcome, repeated strings interned, implied
probabilities computed on demand from a cache keyed by the odds string.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from . import events as ev
from .events import Event, feed_time, make_id

_intern = sys.intern
_SUSPENDED_SPELLINGS = (None, "", "None")
_NOT_SENT = object()
REPLACING_ACTIONS = frozenset({"initial_state", "game_update", "game_added"})
ODDS_ACTIONS = REPLACING_ACTIONS | {"line_update", "game_removed", "sport_clear", "book_clear"}


def normalize_odds(value: Any) -> str | None:
    """Upstream odds as a string, or None when the line is suspended."""
    if value is None:
        return None
    if isinstance(value, str):
        return None if value == "" or value == "None" else _intern(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        text = f"{value:g}"
        return _intern("+" + text if value > 0 else text)
    return None


@lru_cache(maxsize=8192)
def implied_prob(odds: str | None) -> float | None:
    """Implied probability of American odds: +150 -> 0.4, -200 -> 0.667, even -> 0.5.

    Accepts strings with or without a leading ``+``; anything else gives None.
    """
    if odds is None:
        return None
    text = str(odds).strip()
    if text.lower() in ("even", "ev"):
        return 0.5
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or abs(value) < 100:
        return None
    if value > 0:
        return 100.0 / (value + 100.0)
    return -value / (-value + 100.0)


def _same_price(a: str | None, b: str | None) -> bool:
    """Two spellings of one number (``"150"`` and ``"+150"``, ``"-110"`` and ``"-110.0"``)."""
    if a is None or b is None:
        return False
    value = _number(a)
    return value is not None and value == _number(b)


@lru_cache(maxsize=8192)
def _number(odds: str) -> float | None:
    try:
        value = float(odds)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def normalize_over_under(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip()
    low = text.lower()
    if low in ("o", "over"):
        return "Over"
    if low in ("u", "under"):
        return "Under"
    return _intern(text)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _intern(value) if isinstance(value, str) else _intern(str(value))


class Line:
    """One outcome of one game at one sportsbook."""

    __slots__ = ("odds", "market", "target", "line", "over_under", "link", "changed")

    def __init__(self, odds: str | None, market: str | None, target: str | None,
                 line: str | None, over_under: str | None, link: str | None,
                 changed: str) -> None:
        self.odds = odds
        self.market = market
        self.target = target
        self.line = line
        self.over_under = over_under
        self.link = link
        self.changed = changed

    @property
    def prob(self) -> float | None:
        return implied_prob(self.odds)

    @property
    def suspended(self) -> bool:
        return self.odds is None

    def as_dict(self) -> dict[str, Any]:
        return {"odds": self.odds, "prob": implied_prob(self.odds), "market": self.market,
                "target": self.target, "line": self.line, "over_under": self.over_under,
                "link": self.link, "changed": self.changed}


def _make_line(o: dict[str, Any], changed: str) -> Line:
    line = o.get("outcome_line")
    return Line(normalize_odds(o.get("odds")), _text(o.get("outcome_name")),
                _text(o.get("outcome_target")),
                None if line is None or line == "" else _intern(str(line)),
                normalize_over_under(o.get("outcome_over_under")), o.get("link") or None,
                changed)


class GameState:
    """The lines of one (sportsbook, game) and what is known about the game."""

    __slots__ = ("sport", "home", "away", "when", "link", "lines", "universal_id",
                 "resolved_at", "snapshot")

    def __init__(self, sport: str | None, home: str | None, away: str | None) -> None:
        self.sport = sport
        self.home = home
        self.away = away
        self.when: str | None = None
        self.link: str | None = None
        self.lines: dict[str, Line] = {}
        self.universal_id: str | None = None
        self.resolved_at = -1
        self.snapshot = 0


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class OddsBoard:
    """Current odds of every (sportsbook, game, outcome) the odds feed delivered."""

    cleared_ttl = 3600.0
    """How long cleared games are remembered, so that their return is quiet (seconds)."""

    def __init__(self, catalogue: Any = None) -> None:
        self.catalogue = catalogue
        self.books: dict[str, dict[str, GameState]] = {}
        self.cleared: dict[tuple[str, str], tuple[GameState, float]] = {}
        self._lines = 0
        self._snapshot = 0
        self._snapshot_open = False
        self._snapshot_seen = False

    # -- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of lines (outcomes) on the board."""
        return self._lines

    def game_lines(self, game: str) -> dict[str, dict[str, dict[str, Any]]]:
        """{sportsbook: {outcome_key: line}} for one game (upstream odds name)."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for book, games in self.books.items():
            state = games.get(game)
            if state is not None:
                out[book] = {key: line.as_dict() for key, line in state.lines.items()}
        return out

    def game(self, sportsbook: str, game: str) -> GameState | None:
        return self.books.get(sportsbook, {}).get(game)

    def line(self, sportsbook: str, game: str, outcome: str) -> Line | None:
        state = self.game(sportsbook, game)
        return None if state is None else state.lines.get(outcome)

    def iter_lines(self) -> Iterator[tuple[str, str, str, Line]]:
        """(sportsbook, game, outcome_key, line) for every line on the board."""
        for book, games in self.books.items():
            for game, state in games.items():
                for key, line in state.lines.items():
                    yield book, game, key, line

    def games_count(self) -> int:
        return sum(len(g) for g in self.books.values())

    # -- snapshots (reconnects) ------------------------------------------------------------

    def begin_snapshot(self) -> None:
        """The ``initial_state`` messages that follow describe everything subscribed."""
        self._snapshot += 1
        self._snapshot_open = True
        self._snapshot_seen = False

    @property
    def snapshot_arriving(self) -> bool:
        """True while the ``initial_state`` messages of a snapshot are arriving."""
        return self._snapshot_open and self._snapshot_seen

    def _end_snapshot(self, ts: str, received: str, feed: str) -> list[Event]:
        self._snapshot_open = False
        if not self._snapshot_seen:
            return []
        out: list[Event] = []
        gen = self._snapshot
        for book, games in self.books.items():
            stale = [g for g, st in games.items() if st.snapshot != gen]
            for game in stale:
                state = games.pop(game)
                self._lines -= len(state.lines)
                out.append(self._event(ev.ODDS_GAME_REMOVED, book, game, state,
                                       {"count": len(state.lines), "reason": "not in snapshot"},
                                       ts, received, feed))
        return out

    # -- applying messages -----------------------------------------------------------------

    def apply(self, msg: dict[str, Any], received: str, feed: str = "odds") -> list[Event]:
        """Apply one odds message; returns the events for what it changed."""
        action = msg.get("action")
        data = msg.get("data")
        if not isinstance(data, dict):
            raise ValueError(f"{action} message without a 'data' object")
        ts = feed_time(msg.get("timestamp"), received)
        out: list[Event] = []
        if self._snapshot_open and action != "initial_state":
            out = self._end_snapshot(ts, received, feed)
        if action in REPLACING_ACTIONS:
            out.extend(self._update(data, ts, received, feed, action, replace=True))
        elif action == "line_update":
            out.extend(self._update(data, ts, received, feed, action, replace=False))
        elif action == "game_removed":
            out.extend(self._remove(data, ts, received, feed))
        elif action == "sport_clear":
            sport = data.get("sport")
            if not isinstance(sport, str) or not sport:
                raise ValueError("sport_clear without a sport")
            out.extend(self._clear(sport, data, ts, received, feed))
        elif action == "book_clear":
            out.extend(self._clear(None, data, ts, received, feed))
        else:
            raise ValueError(f"not an odds action: {action!r}")
        return out

    def note_control(self, received: str, feed: str = "odds") -> list[Event]:
        """A ping or other non-odds message: it ends a snapshot that has begun arriving
        (one that comes before the first ``initial_state`` leaves it open)."""
        if self._snapshot_open and self._snapshot_seen:
            return self._end_snapshot(received, received, feed)
        return []

    def _resolve(self, state: GameState, game: str) -> None:
        catalogue = self.catalogue
        if catalogue is None or state.universal_id is not None:
            return
        size = len(getattr(catalogue, "games", ()) or ())
        if size == state.resolved_at:
            return
        state.resolved_at = size
        try:
            ref = catalogue.resolve(game, state.sport)
        except Exception:
            ref = None
        if ref is not None:
            state.universal_id = ref.universal_id
            state.home = ref.home or state.home
            state.away = ref.away or state.away

    def _event(self, etype: str, book: str, game: str | None, state: GameState | None,
               data: dict[str, Any], ts: str, received: str, feed: str,
               outcome: str | None = None, new_odds: str | None = None,
               sport: str | None = None) -> Event:
        id_game = game if game is not None else sport
        event_id = make_id(ts, etype, book, id_game, outcome, new_odds)
        # positional, in the order of Event's fields: half the cost of keywords per event
        if state is None:
            return Event(etype, data, event_id, ts, received, feed, sport, book, game)
        return Event(etype, data, event_id, ts, received, feed, state.sport, book, game,
                     state.universal_id, state.home, state.away)

    def _line_event(self, book: str, game: str, state: GameState, key: str, old: str | None,
                    line: Line, ts: str, received: str, feed: str) -> Event:
        new = line.odds
        if old is None:
            etype = ev.ODDS_LINE_RESTORED
        elif new is None:
            etype = ev.ODDS_LINE_SUSPENDED
        else:
            etype = ev.ODDS_LINE_CHANGED
        data = {"outcome": key, "market": line.market, "target": line.target,
                "line": line.line, "over_under": line.over_under, "old_odds": old,
                "new_odds": new, "old_prob": implied_prob(old), "new_prob": implied_prob(new),
                "link": line.link}
        return self._event(etype, book, game, state, data, ts, received, feed, key, new)

    def _update(self, data: dict[str, Any], ts: str, received: str, feed: str, action: str,
                replace: bool) -> list[Event]:
        book = data.get("sportsbook")
        game = data.get("game")
        if not isinstance(book, str) or not book or not isinstance(game, str) or not game:
            raise ValueError(f"{action} message without a sportsbook and a game")
        outcomes = data.get("outcomes") or {}
        if not isinstance(outcomes, dict):
            raise ValueError(f"{action} message whose outcomes are not an object")
        book = _intern(book)
        games = self.books.get(book)
        if games is None:
            games = self.books[book] = {}
        state = games.get(game)
        restored = False
        if state is None:
            game = _intern(game)
            remembered = self.cleared.pop((book, game), None)
            if remembered is None:
                return self._add(games, book, game, data, outcomes, ts, received, feed,
                                 action)
            state = remembered[0]
            state.snapshot = self._snapshot
            games[game] = state
            self._lines += len(state.lines)
            restored = True
        self._game_info(state, data)
        if action == "initial_state":
            state.snapshot = self._snapshot
            self._snapshot_seen = True
        self._resolve(state, game)
        out: list[Event] = []
        changed: list[str] = []
        lines = state.lines
        before = len(lines)
        for key, o in outcomes.items():
            if not isinstance(o, dict):
                continue
            prev = lines.get(key)
            if prev is None:
                key = _intern(key)
                line = lines[key] = _make_line(o, ts)
                changed.append(key)
                if line.odds is not None:
                    out.append(self._line_event(book, game, state, key, None, line, ts,
                                                received, feed))
                continue
            raw = o.get("odds", _NOT_SENT)
            odds = prev.odds if raw is _NOT_SENT else normalize_odds(raw)   # no key: no news
            if odds != prev.odds and not _same_price(odds, prev.odds):
                old = prev.odds
                prev.odds = odds
                prev.changed = ts
                _refresh(prev, o)
                changed.append(key)
                out.append(self._line_event(book, game, state, key, old, prev, ts, received,
                                            feed))
            elif prev.link != (o.get("link") or None):
                prev.link = o.get("link") or None
        if replace and len(lines) != len(outcomes):
            for key in [k for k in lines if k not in outcomes]:
                gone = lines.pop(key)
                changed.append(key)
                if gone.odds is not None:
                    vanished = Line(None, gone.market, gone.target, gone.line, gone.over_under,
                                    gone.link, ts)
                    out.append(self._line_event(book, game, state, key, gone.odds, vanished,
                                                ts, received, feed))
        self._lines += len(lines) - before
        if restored:
            added = self._event(ev.ODDS_GAME_ADDED, book, game, state,
                                self._game_added_data(state, restored=True), ts, received, feed)
            return [added, *out]
        if replace and changed:
            updated = self._event(ev.ODDS_GAME_UPDATED, book, game, state,
                                  {"count": len(lines), "changed": changed}, ts, received, feed)
            return [updated, *out]
        return out

    def _add(self, games: dict[str, GameState], book: str, game: str, data: dict[str, Any],
             outcomes: dict[str, Any], ts: str, received: str, feed: str,
             action: str) -> list[Event]:
        sport = data.get("sport")
        state = GameState(_intern(sport) if isinstance(sport, str) and sport else None,
                          _str_or_none(data.get("home_team")),
                          _str_or_none(data.get("away_team")))
        self._game_info(state, data)
        state.snapshot = self._snapshot
        if action == "initial_state":
            self._snapshot_seen = True
        lines = state.lines
        for key, o in outcomes.items():
            if isinstance(o, dict):
                lines[_intern(key)] = _make_line(o, ts)
        games[game] = state
        self._lines += len(lines)
        self._resolve(state, game)
        return [self._event(ev.ODDS_GAME_ADDED, book, game, state,
                            self._game_added_data(state), ts, received, feed)]

    @staticmethod
    def _game_info(state: GameState, data: dict[str, Any]) -> None:
        info = data.get("info")
        if isinstance(info, dict):
            when = info.get("when")
            link = info.get("link")
            if isinstance(when, str):
                state.when = when
            if isinstance(link, str):
                state.link = link
        sport = data.get("sport")
        if state.sport is None and isinstance(sport, str) and sport:
            state.sport = _intern(sport)

    @staticmethod
    def _game_added_data(state: GameState, restored: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "count": len(state.lines),
            "outcomes": {key: {"odds": line.odds, "prob": implied_prob(line.odds),
                               "market": line.market, "target": line.target,
                               "line": line.line, "over_under": line.over_under,
                               "link": line.link}
                         for key, line in state.lines.items()},
            "when": state.when, "link": state.link,
        }
        if restored:
            data["restored"] = True
        return data

    def _remove(self, data: dict[str, Any], ts: str, received: str, feed: str) -> list[Event]:
        book = data.get("sportsbook")
        game = data.get("game")
        if not isinstance(book, str) or not isinstance(game, str):
            raise ValueError("game_removed message without a sportsbook and a game")
        self.cleared.pop((book, game), None)
        games = self.books.get(book)
        state = games.pop(game, None) if games is not None else None
        if state is None:
            return []
        self._lines -= len(state.lines)
        return [self._event(ev.ODDS_GAME_REMOVED, book, game, state,
                            {"count": len(state.lines)}, ts, received, feed)]

    def _clear(self, sport: str | None, data: dict[str, Any], ts: str, received: str,
               feed: str) -> list[Event]:
        book = data.get("sportsbook")
        if not isinstance(book, str) or not book:
            raise ValueError("clear message without a sportsbook")
        now = time.monotonic()
        self._forget_old_clears(now)
        games = self.books.get(book) or {}
        victims = [g for g, st in games.items() if sport is None or st.sport == sport]
        n_lines = 0
        for game in victims:
            state = games.pop(game)
            n_lines += len(state.lines)
            self.cleared[(book, game)] = (state, now)
        self._lines -= n_lines
        if sport is None:
            return [self._event(ev.ODDS_BOOK_CLEARED, book, None, None,
                                {"sportsbook": book, "lines": n_lines, "games": len(victims)},
                                ts, received, feed)]
        return [self._event(ev.ODDS_SPORT_CLEARED, book, None, None,
                            {"sport": sport, "sportsbook": book, "lines": n_lines,
                             "games": len(victims)}, ts, received, feed, sport=sport)]

    def _forget_old_clears(self, now: float) -> None:
        if not self.cleared:
            return
        old = [k for k, (_, when) in self.cleared.items() if now - when > self.cleared_ttl]
        for k in old:
            del self.cleared[k]


def _refresh(line: Line, o: dict[str, Any]) -> None:
    """Take the descriptive fields of a changed line from the message."""
    link = o.get("link") or None
    if link != line.link:
        line.link = link
    ou = o.get("outcome_over_under")
    if ou is not None:
        line.over_under = normalize_over_under(ou)
