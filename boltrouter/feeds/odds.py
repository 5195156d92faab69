"""The BoltOdds odds websocket (``wss://spro.agency/api``): odds messages -> board -> events.

Every odds message goes through ``app.board`` (``boltrouter.board.OddsBoard``),
which returns the events for exactly what changed. ``subscribe`` filters follow
upstream semantics: a key left out means everything. Upstream silently ignores
filter values it does not know, so when talking to the real service the feed
checks them once against ``get_info``, ``get_markets`` and ``get_games`` and
warns about unknown ones.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from .. import hookimpl
from ..board import ODDS_ACTIONS
from ..config import Field, did_you_mean
from ..events import now_iso
from ..secrets import redact
from .rest import RateLimiter, RestClient, RestError
from .ws import WebsocketFeed, ws_options_schema

ODDS_URL = "wss://spro.agency/api"
FILTER_KEYS = ("sports", "sportsbooks", "games", "markets")
SNAPSHOT_QUIET = 1.0
"""Seconds without an ``initial_state`` frame after which a snapshot is over. A ping
arriving sooner does not end it: a large snapshot takes many frames and upstream's
pings may come between them."""


def _filter_field(what: str) -> Field:
    return Field(list, items=Field(str), one_or_list=True,
                 help=f"{what} exactly as upstream spells them; leave out for all")


class OddsFeed(WebsocketFeed):
    """Odds of every subscribed sportsbook, game and market."""

    options_schema: ClassVar[dict[str, Field]] = {
        **ws_options_schema(ODDS_URL),
        "subscribe": Field(dict, default={}, schema={
            "sports": _filter_field("sports"),
            "sportsbooks": _filter_field("sportsbooks"),
            "games": _filter_field("games"),
            "markets": _filter_field("markets"),
        }),
        "check_filters": Field(bool, default=True,
                               help="warn about filter values the real service does not know"),
    }
    enabled_by_default: ClassVar[bool] = True
    simulator_path: ClassVar[str] = "/api"

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self._checked_filters: dict[str, Any] | None = None
        self._check_task: asyncio.Task[list[str]] | None = None
        self._snapshot_answers = 0
        """``subscribes_sent`` when the snapshot now arriving began."""
        self.rest_limiter: RateLimiter | None = None
        """Limiter of the filter check's requests; None = the process-wide one."""
        self._last_snapshot_frame = 0.0
        self._snapshot_timer: asyncio.TimerHandle | None = None

    def filters(self) -> dict[str, list[str]]:
        sub = self.options.get("subscribe") or {}
        return {k: list(sub[k]) for k in FILTER_KEYS if sub.get(k) is not None}

    def subscribe_message(self) -> dict[str, Any]:
        return {"action": "subscribe", "filters": self.filters()}

    async def on_socket_connected(self, msg: dict[str, Any], received: str) -> None:
        self.app.board.begin_snapshot()
        if self.ws is not None:
            self._maybe_check_filters()

    async def on_control(self, action: str, msg: dict[str, Any], received: str) -> None:
        if action == "subscription_updated":
            if not (self.app.board.snapshot_arriving
                    and self._snapshot_answers == self.subscribes_sent):
                # an acknowledgement sent after the initial_state answering the latest
                # subscribe belongs to that snapshot; else a new snapshot follows it
                self.app.board.begin_snapshot()
            self._maybe_check_filters()
        elif not self._snapshot_frames_recent():
            await self.app.publish_many(self.app.board.note_control(received, self.name))

    def _snapshot_frames_recent(self) -> bool:
        """True while a snapshot is arriving and its last frame came moments ago."""
        return (self.app.board.snapshot_arriving and asyncio.get_running_loop().time()
                - self._last_snapshot_frame < SNAPSHOT_QUIET)

    def _note_snapshot_frame(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_snapshot_frame = loop.time()
        if self._snapshot_timer is not None:
            self._snapshot_timer.cancel()
        self._snapshot_timer = loop.call_later(SNAPSHOT_QUIET, self._snapshot_went_quiet)

    def _snapshot_went_quiet(self) -> None:
        """No frame followed the last ``initial_state`` for a while: the snapshot is over."""
        self._snapshot_timer = None
        if not self.connected or not self.app.board.snapshot_arriving:
            return
        if self._snapshot_frames_recent():
            self._note_snapshot_frame()
            return
        events = self.app.board.note_control(now_iso(), self.name)
        if events:
            asyncio.ensure_future(self.app.publish_many(events))

    async def handle_message(self, msg: dict[str, Any], received: str) -> bool:
        if msg.get("action") not in ODDS_ACTIONS:
            return False
        if msg.get("action") == "initial_state":
            if not self.app.board.snapshot_arriving:
                self._snapshot_answers = self.subscribes_sent
            self._note_snapshot_frame()
        events = self.app.board.apply(msg, received, self.name)
        if self._pending_filters is not None:
            await self.confirm_subscribed(received)
        for event in events:
            await self.app.publish(event)
        return True

    # -- filter check against the REST endpoints ------------------------------------------

    def _maybe_check_filters(self) -> None:
        filters = self.filters()
        if (not self.options.get("check_filters", True) or not filters
                or filters == self._checked_filters
                or (self._check_task is not None and not self._check_task.done())):
            return
        self._checked_filters = filters
        self._check_task = asyncio.create_task(self.check_filters(filters),
                                               name=f"feed:{self.name}:check-filters")

    def rest_url(self) -> str:
        """Where get_info, get_markets and get_games live for this socket."""
        simulator = getattr(self.app, "simulator", None)
        if simulator is not None:
            return str(simulator.url_for("rest"))
        return rest_base(self.url)

    async def check_filters(self, filters: dict[str, list[str]]) -> list[str]:
        """Warn about (and return) filter values upstream does not know.

        The requests share the process-wide REST budget (12 a minute) with the
        ``rest`` feed, so checking never gets the key rate-limited.
        """
        base = self.rest_url()
        known: dict[str, set[str]] = {}
        try:
            async with RestClient(base, self.app.api_key() or "", limiter=self.rest_limiter,
                                  retries=2) as client:
                if "sports" in filters or "sportsbooks" in filters:
                    info = await client.get_info()
                    known["sports"] = {str(s) for s in info.get("sports") or []}
                    known["sportsbooks"] = {str(s) for s in info.get("sportsbooks") or []}
                if "markets" in filters:
                    known["markets"] = _all_markets(await client.get_markets())
                if "games" in filters:
                    known["games"] = {str(g) for g in await client.get_games()}
        except RestError as exc:
            self.log.info("%s feed: could not check the subscribe filters against %s: %s",
                          self.name, redact(base), exc)
            return []
        problems = unknown_filter_values(filters, known)
        for problem in problems:
            self.log.warning("%s", problem)
        return problems


def unknown_filter_values(filters: dict[str, list[str]],
                          known: dict[str, set[str]]) -> list[str]:
    """Sentences about each filter value that is not in the known set of its key."""
    problems = []
    for key, values in filters.items():
        valid = known.get(key)
        if not valid:
            continue
        for value in values:
            if value not in valid:
                problems.append(
                    f"boltodds.odds.subscribe.{key}: {value!r} is not a {key[:-1]} BoltOdds "
                    f"knows{did_you_mean(value, sorted(valid))}; upstream ignores unknown "
                    "filter values silently, so nothing will arrive for it")
    return problems


def _all_markets(doc: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for per_sport in doc.values():
        if isinstance(per_sport, dict):
            for markets in per_sport.values():
                if isinstance(markets, list):
                    out.update(str(m) for m in markets)
        elif isinstance(per_sport, list):
            out.update(str(m) for m in per_sport)
    return out


def rest_base(ws_url: str) -> str:
    """The REST base of a websocket URL: wss://host/api -> https://host/api."""
    parts = urlsplit(ws_url)
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") or "/api"
    if not path.endswith("/api"):
        path = path.rsplit("/", 1)[0] or "/api"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


@hookimpl
def register_feed_types(register: Any) -> None:
    register("odds", OddsFeed)


@hookimpl
def register_commands(cli: Any) -> None:
    from ..record import record_command
    from ..simulator.command import simulate_command
    cli.add_command(record_command)
    cli.add_command(simulate_command)
