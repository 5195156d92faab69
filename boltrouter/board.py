"""The odds board: current odds per (sportsbook, game, outcome).

(API agreed between the odds feed, the sinks and the rules; the odds work fills it in.)
"""

from __future__ import annotations

from typing import Any


class OddsBoard:
    def __init__(self, catalogue: Any = None) -> None:
        self.catalogue = catalogue

    def game_lines(self, game: str) -> dict[str, dict[str, Any]]:
        """{sportsbook: {outcome_key: line}} for one game (upstream odds name)."""
        return {}

    def __len__(self) -> int:
        """Number of lines (outcomes) on the board."""
        return 0
