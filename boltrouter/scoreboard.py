"""The scoreboard: one state per game joined across feeds by universal_id.

(API agreed between the feeds and the sinks; the scores work fills it in.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


class Scoreboard:
    def __init__(self, catalogue: Any = None) -> None:
        self.catalogue = catalogue
        self.states: dict[str, GameState] = {}

    def get(self, universal_id: str) -> GameState | None:
        return self.states.get(universal_id)

    def games(self) -> list[GameState]:
        return list(self.states.values())
