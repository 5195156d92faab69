"""The scoreboard: one state per game joined across feeds. (Filled in by the scores work.)"""

from __future__ import annotations

from typing import Any


class Scoreboard:
    def __init__(self, catalogue: Any = None) -> None:
        self.catalogue = catalogue
