"""The odds board: current odds per (sportsbook, game, outcome). (Filled in by the odds feed work.)"""

from __future__ import annotations

from typing import Any


class OddsBoard:
    def __init__(self, catalogue: Any = None) -> None:
        self.catalogue = catalogue
