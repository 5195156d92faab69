"""The game catalogue from get_games: joins feeds by universal_id.

Every feed spells a game its own way: the odds and live-scores feeds use the
get_games name ``"Home vs Away, YYYY-MM-DD, HH"`` (US Eastern time), play-by-play
often drops the hour (``"Home vs Away, YYYY-MM-DD"``), and people type team names
in any case. ``Catalogue.resolve`` maps any of these spellings, or the
``universal_id`` a message carries, to one ``GameRef``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .events import iso, parse_time

EASTERN = ZoneInfo("America/New_York")

_NAME = re.compile(
    r"^\s*(?P<home>.+?)\s+(?:vs\.?|v\.?)\s+(?P<away>.+?)"
    r"(?:\s*,\s*(?P<date>\d{4}-\d{2}-\d{2})(?:\s*,\s*(?P<hour>\d{1,2}))?)?\s*$",
    re.IGNORECASE,
)


@dataclass(slots=True)
class GameRef:
    """One game as get_games knows it."""

    universal_id: str
    name: str            # "Home vs Away, YYYY-MM-DD, HH" as get_games spells it
    sport: str | None
    home: str | None
    away: str | None
    start: str | None    # ISO 8601 UTC start time, from `when` (US Eastern)


@dataclass(slots=True, frozen=True)
class ParsedName:
    """The parts of a game name: teams, Eastern date and hour when present."""

    home: str
    away: str
    date: str | None
    hour: int | None


def norm(text: str | None) -> str:
    """Case- and whitespace-insensitive form of a name."""
    return " ".join(str(text or "").split()).casefold()


def parse_name(name: str | None) -> ParsedName | None:
    """``"Home vs Away, 2025-07-23, 01"`` (date and hour optional) -> its parts."""
    if not name:
        return None
    m = _NAME.match(str(name))
    if not m:
        return None
    hour = m.group("hour")
    return ParsedName(m.group("home").strip(), m.group("away").strip(), m.group("date"),
                      int(hour) if hour else None)


def parse_when(when: str | None) -> str | None:
    """get_games ``when`` (``"2025-07-23, 01:09 PM"``, US Eastern) -> ISO 8601 UTC.

    ISO 8601 times are taken too (US Eastern when they carry no offset)."""
    if not when:
        return None
    text = " ".join(str(when).replace(",", " ").split())
    for fmt in ("%Y-%m-%d %I:%M %p", "%Y-%m-%d %I:%M%p", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            local = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return iso(local.replace(tzinfo=EASTERN))
    try:
        moment = datetime.fromisoformat(str(when).strip())   # ISO 8601 with an offset
    except ValueError:
        return None
    return iso(moment) if moment.tzinfo else iso(moment.replace(tzinfo=EASTERN))


def eastern_date(start_iso: str | None) -> str | None:
    """The US Eastern calendar date of an ISO time (the date in game names)."""
    dt = parse_time(start_iso)
    return dt.astimezone(EASTERN).date().isoformat() if dt else None


def _teams_key(home: str, away: str) -> tuple[str, str]:
    return norm(home), norm(away)


class Catalogue:
    """Every game get_games lists, indexed by each spelling the feeds use."""

    def __init__(self) -> None:
        self.games: dict[str, GameRef] = {}   # by universal_id
        self.loaded = False                    # True once a get_games answer was applied
        self._by_name: dict[str, str] = {}
        self._by_teams: dict[tuple[str, str], list[str]] = {}
        self._listeners: list[Callable[[list[GameRef], list[GameRef]], None]] = []

    # -- building ---------------------------------------------------------------------

    def update(self, get_games: dict[str, Any]) -> tuple[list[GameRef], list[GameRef]]:
        """Replace the catalogue with a get_games answer; returns (added, removed).

        Entries that are not objects, or lack a name, are skipped: bad input never
        breaks the catalogue.
        """
        fresh: dict[str, GameRef] = {}
        for key, entry in (get_games or {}).items():
            ref = self._ref_from_entry(key, entry)
            if ref is not None:
                fresh[ref.universal_id] = ref
        added = [ref for uid, ref in fresh.items() if uid not in self.games]
        removed = [ref for uid, ref in self.games.items() if uid not in fresh]
        changed = bool(added or removed) or any(self.games.get(uid) != ref
                                                for uid, ref in fresh.items())
        self.games = fresh
        self._reindex()
        self.loaded = True
        if changed:
            for listener in list(self._listeners):
                listener(added, removed)
        return added, removed

    def add(self, ref: GameRef) -> None:
        """Add or replace one game (a feed learned it before get_games did)."""
        self.games[ref.universal_id] = ref
        self._index(ref)
        for listener in list(self._listeners):
            listener([ref], [])

    def add_listener(self, listener: Callable[[list[GameRef], list[GameRef]], None]) -> None:
        """Call ``listener(added, removed)`` whenever the set of games changes."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[list[GameRef], list[GameRef]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @staticmethod
    def _ref_from_entry(key: str, entry: Any) -> GameRef | None:
        if not isinstance(entry, dict):
            return None
        name = str(entry.get("game") or key or "")
        if not name:
            return None
        parsed = parse_name(entry.get("orig_teams")) or parse_name(name)
        uid = str(entry.get("universal_id") or "") or f"name:{norm(name)}"
        sport = entry.get("sport")
        return GameRef(
            universal_id=uid, name=name, sport=str(sport) if sport else None,
            home=parsed.home if parsed else None, away=parsed.away if parsed else None,
            start=parse_when(entry.get("when")),
        )

    def _reindex(self) -> None:
        self._by_name = {}
        self._by_teams = {}
        for ref in sorted(self.games.values(), key=_start_key):
            self._index(ref)

    def _index(self, ref: GameRef) -> None:
        self._by_name[norm(ref.name)] = ref.universal_id
        if ref.home and ref.away:
            uids = self._by_teams.setdefault(_teams_key(ref.home, ref.away), [])
            if ref.universal_id not in uids:
                uids.append(ref.universal_id)

    # -- lookups ----------------------------------------------------------------------

    def resolve(self, name: str | None, sport: str | None = None, *,
                universal_id: str | None = None) -> GameRef | None:
        """The game a feed means by ``name`` (any spelling the feeds use), or None.

        Tried in order: the message's ``universal_id``; the exact name; the name in
        another case or spacing; the same teams on the same Eastern date (the hour
        suffix missing or different, or home and away swapped); and for a bare
        ``"Home vs Away"`` the game of those teams nearest to now. ``sport``, when
        given, breaks ties between games of the same teams. A ``universal_id`` the
        catalogue does not know is trusted over a name that means another game.
        """
        if universal_id and universal_id in self.games:
            return self.games[universal_id]
        ref = self._resolve_name(name, sport)
        if ref is not None and universal_id and not ref.universal_id.startswith("name:"):
            return None     # the name matches another game than the id the feed sent
        return ref

    def _resolve_name(self, name: str | None, sport: str | None) -> GameRef | None:
        if not name:
            return None
        uid = self._by_name.get(norm(name))
        if uid is not None:
            return self.games.get(uid)
        parsed = parse_name(name)
        if parsed is None:
            return None
        candidates = [self.games[u] for u in self._by_teams.get(
            _teams_key(parsed.home, parsed.away), ()) if u in self.games]
        if not candidates:
            candidates = [self.games[u] for u in self._by_teams.get(
                _teams_key(parsed.away, parsed.home), ()) if u in self.games]
        if sport:
            same_sport = [r for r in candidates if r.sport is None or norm(r.sport) == norm(sport)]
            candidates = same_sport or candidates
        if parsed.date:
            same_day = [r for r in candidates if _ref_date(r) == parsed.date]
            # a feed that wrote the UTC date of a late Eastern game is one day off
            candidates = same_day or [r for r in candidates
                                      if _days_apart(_ref_date(r), parsed.date) == 1]
            if parsed.hour is not None and len(candidates) > 1:
                return min(candidates, key=lambda r: abs((_ref_hour(r) or 0) - parsed.hour))
            return candidates[0] if candidates else None
        if not candidates:
            return None
        now = datetime.now(UTC).timestamp()
        return min(candidates, key=lambda r: abs(_start_ts(r) - now))

    def games_for_team(self, team: str) -> list[GameRef]:
        """Games of a team, soonest first. The team is matched case-insensitively as
        whole words of the name: ``knicks`` and ``New York Knicks`` find the Knicks,
        ``nets`` does not find the Hornets."""
        want = norm(team)
        if not want:
            return []
        words = re.compile(rf"(?:^|\W){re.escape(want)}(?:\W|$)")
        found = [r for r in self.games.values()
                 if words.search(norm(r.home)) or words.search(norm(r.away))]
        return sorted(found, key=_start_key)

    def games_for_sport(self, sport: str) -> list[GameRef]:
        """Games of a sport as get_games spells it (case-insensitive), soonest first."""
        want = norm(sport)
        return sorted((r for r in self.games.values() if norm(r.sport) == want), key=_start_key)

    def select(self, *, games: Iterable[str] = (), teams: Iterable[str] = (),
               sports: Iterable[str] = ()) -> list[GameRef]:
        """Games chosen by exact names (any spelling), team names or sports, soonest first."""
        chosen: dict[str, GameRef] = {}
        for name in games:
            ref = self.resolve(name)
            if ref is not None:
                chosen[ref.universal_id] = ref
        for team in teams:
            for ref in self.games_for_team(team):
                chosen[ref.universal_id] = ref
        for sport in sports:
            for ref in self.games_for_sport(sport):
                chosen[ref.universal_id] = ref
        return sorted(chosen.values(), key=_start_key)

    def __len__(self) -> int:
        return len(self.games)


def _start_ts(ref: GameRef) -> float:
    dt = parse_time(ref.start)
    return dt.timestamp() if dt else float("inf")


def _start_key(ref: GameRef) -> tuple[float, str]:
    return _start_ts(ref), ref.name


def _ref_date(ref: GameRef) -> str | None:
    parsed = parse_name(ref.name)
    if parsed is not None and parsed.date:
        return parsed.date
    return eastern_date(ref.start)


def _days_apart(a: str | None, b: str | None) -> int | None:
    try:
        return abs((date.fromisoformat(a or "") - date.fromisoformat(b or "")).days)
    except ValueError:
        return None


def _ref_hour(ref: GameRef) -> int | None:
    parsed = parse_name(ref.name)
    if parsed is not None and parsed.hour is not None:
        return parsed.hour
    dt = parse_time(ref.start)
    return int(dt.astimezone(EASTERN).strftime("%I")) if dt else None
