"""The game catalogue from get_games: joins feeds by universal_id.

(API agreed between the feeds, the sinks and the rules; the scores/REST work
fills in the implementation.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class GameRef:
    """One game as get_games knows it."""

    universal_id: str
    name: str            # "Home vs Away, YYYY-MM-DD, HH" as get_games spells it
    sport: str | None
    home: str | None
    away: str | None
    start: str | None    # ISO 8601 UTC start time, from `when` (US Eastern)


class Catalogue:
    def __init__(self) -> None:
        self.games: dict[str, GameRef] = {}   # by universal_id

    def resolve(self, name: str | None, sport: str | None = None, *,
                universal_id: str | None = None) -> GameRef | None:
        """The game a feed means by ``name`` (any spelling the feeds use), or None."""
        if universal_id and universal_id in self.games:
            return self.games[universal_id]
        return None

    def games_for_team(self, team: str) -> list[GameRef]:
        """Games of a team (exact or case-insensitive name), soonest first."""
        return []
