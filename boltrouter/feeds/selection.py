"""Game selection shared by the live-scores and play-by-play feeds.

Users choose games by exact name, by team ("every game of the Knicks") or by
sport ("all NBA games"). The feed subscribes to the catalogue's spelling of
every chosen game and re-subscribes (within upstream's 5 s re-subscribe limit)
whenever the catalogue gains or loses games or a chosen game ends.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from ..catalogue import GameRef
from ..config import Field
from ..events import GAME_STATUS_CHANGED, Event
from .ws import WebsocketFeed, ws_options_schema

if TYPE_CHECKING:
    from ..app import App


def selection_schema(default_url: str) -> dict[str, Field]:
    schema = ws_options_schema(default_url)
    schema.update({
        "games": Field(list, default=[], items=Field(str), one_or_list=True,
                       help="exact game names as get_games lists them"),
        "teams": Field(list, default=[], items=Field(str), one_or_list=True,
                       help="every game of these teams (case-insensitive, part of the name)"),
        "sports": Field(list, default=[], items=Field(str), one_or_list=True,
                        help="every game of these sports, as get_info spells them"),
        "catalogue_wait": Field("duration", default=15.0, min=0,
                                help="how long to wait for the first get_games before "
                                     "subscribing by team or sport"),
    })
    return schema


class SelectedGamesFeed(WebsocketFeed):
    """A websocket feed whose subscription is a list of games chosen from the catalogue."""

    options_schema: ClassVar[dict[str, Field]] = selection_schema("")

    def __init__(self, name: str, options: dict[str, Any], app: App) -> None:
        super().__init__(name, options, app)
        self._requested: dict[str, Any] | None = None
        self._warned_choices: set[tuple[str, str]] = set()
        self.app.catalogue.add_listener(self._catalogue_changed)

    @property
    def selects_everything(self) -> bool:
        return not (self.options.get("games") or self.options.get("teams")
                    or self.options.get("sports"))

    def selected_games(self) -> list[str]:
        """Names to subscribe to: the catalogue's spelling, games already final left out."""
        catalogue = self.app.catalogue
        names: list[str] = []
        for name in self.options.get("games") or []:
            ref = catalogue.resolve(name)
            names.append(ref.name if ref else name)
            if ref is None:
                self._warn_choice("game", name)
        teams, sports = self.options.get("teams") or (), self.options.get("sports") or ()
        for team in teams:
            if not catalogue.games_for_team(team):
                self._warn_choice("team", team)
        for sport in sports:
            if not catalogue.games_for_sport(sport):
                self._warn_choice("sport", sport)
        refs: list[GameRef] = catalogue.select(teams=teams, sports=sports)
        scoreboard = self.app.scoreboard
        for ref in refs:
            state = scoreboard.get(ref.universal_id)
            if state is not None and state.status == "final":
                continue
            names.append(ref.name)
        return list(dict.fromkeys(names))

    def _warn_choice(self, kind: str, value: str) -> None:
        """Warn once that a chosen game, team or sport matches nothing get_games lists
        (upstream silently ignores game names that are not spelt exactly)."""
        if not self.app.catalogue.loaded or (kind, value) in self._warned_choices:
            return
        self._warned_choices.add((kind, value))
        command = "boltrouter sports" if kind == "sport" else "boltrouter games"
        self.log.warning("%s feed: no game in get_games matches the %s %r; `%s` lists "
                         "what upstream offers", self.name, kind, value, command)

    def subscribe_message(self) -> dict[str, Any] | None:
        if self.selects_everything:
            return {"action": "subscribe", "filters": {}}
        games = self.selected_games()
        if not games:
            return None   # nothing chosen plays now: keep the previous subscription
        return {"action": "subscribe", "filters": {"games": games}}

    async def reconfigure(self, options: dict[str, Any]) -> None:
        await super().reconfigure(options)
        self._requested = self.subscribe_message()

    def _catalogue_changed(self, added: list[GameRef], removed: list[GameRef]) -> None:
        self.follow_selection()

    def follow_selection(self) -> None:
        """Re-subscribe when the chosen games changed since the last request."""
        msg = self.subscribe_message()
        if msg is None or msg == self._requested:
            return
        self._requested = msg
        self.request_subscribe()

    async def run(self) -> None:
        await self._wait_for_catalogue()
        self._requested = self.subscribe_message()
        await super().run()

    async def _wait_for_catalogue(self) -> None:
        if self.selects_everything or self.app.catalogue.loaded:
            return
        wait = float(self.options.get("catalogue_wait", 15.0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self.app.catalogue.loaded and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if not self.app.catalogue.loaded and (self.options.get("teams")
                                              or self.options.get("sports")):
            self.log.warning("%s feed: the game catalogue (get_games) is not loaded yet; "
                             "games chosen by team or sport are subscribed once it is",
                             self.name)

    async def publish_game_events(self, events: list[Event]) -> None:
        """Publish scoreboard events; a game that ended leaves the subscription."""
        if not events:
            return
        await self.app.publish_many(events)
        if any(e.type == GAME_STATUS_CHANGED and e.data.get("status") == "final"
               for e in events) and not self.selects_everything:
            self.follow_selection()
