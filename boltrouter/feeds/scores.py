"""The live-scores websocket (``wss://spro.agency/api/livescores``).

Upstream sends one ``match_update`` per change of a live game and no snapshot on
subscribe; each is parsed for its league shape (``scoreshapes``), merged into the
scoreboard, and what changed is published as ``score.changed``,
``game.status_changed`` and ``game.period_changed``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hookimpl
from ..config import Field
from .scoreshapes import parse_match_update
from .selection import SelectedGamesFeed, selection_schema

DEFAULT_URL = "wss://spro.agency/api/livescores"


class LiveScoresFeed(SelectedGamesFeed):
    options_schema: ClassVar[dict[str, Field]] = selection_schema(DEFAULT_URL)
    simulator_path: ClassVar[str] = "/api/livescores"

    async def handle_message(self, msg: dict[str, Any], received: str) -> bool:
        if msg.get("action") != "match_update":
            return False
        update = parse_match_update(msg, self.name)
        if update is None:
            self.bad_frame("a match_update without a game or a state", msg)
            return True
        self.app.metrics.inc("scores_updates", shape=(update.extra or {}).get("shape", "unknown"))
        await self.publish_game_events(self.app.scoreboard.apply(update, received))
        return True


@hookimpl
def register_feed_types(register: Any) -> None:
    register("scores", LiveScoresFeed)
