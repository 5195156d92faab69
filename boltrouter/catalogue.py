"""The game catalogue from get_games: joins feeds by universal_id. (Filled in by the scores work.)"""

from __future__ import annotations


class Catalogue:
    def __init__(self) -> None:
        self.games: dict[str, dict] = {}
