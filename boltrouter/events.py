"""The event envelope every feed produces and every sink receives.

An event is one JSON-serializable envelope (PRODUCT.md section 4). Its ``id`` is
derived from the upstream change it describes, so the same change seen twice
(a replay, a second feed) gets the same id and receivers can deduplicate.
"""

from __future__ import annotations

import base64
import hashlib
import time as _time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

# --- event types -----------------------------------------------------------------

FEED_CONNECTED = "feed.connected"
FEED_DISCONNECTED = "feed.disconnected"
FEED_ERROR = "feed.error"
FEED_SUBSCRIBED = "feed.subscribed"

ODDS_GAME_ADDED = "odds.game_added"
ODDS_GAME_UPDATED = "odds.game_updated"
ODDS_GAME_REMOVED = "odds.game_removed"
ODDS_LINE_CHANGED = "odds.line_changed"
ODDS_LINE_SUSPENDED = "odds.line_suspended"
ODDS_LINE_RESTORED = "odds.line_restored"
ODDS_SPORT_CLEARED = "odds.sport_cleared"
ODDS_BOOK_CLEARED = "odds.book_cleared"

SCORE_CHANGED = "score.changed"
GAME_STATUS_CHANGED = "game.status_changed"
GAME_PERIOD_CHANGED = "game.period_changed"
PLAY_NEW = "play.new"
STATS_UPDATED = "stats.updated"

BOXSCORE_UPDATED = "boxscore.updated"
MATCH_STATS_UPDATED = "match.stats_updated"
MATCH_INFO_UPDATED = "match.info_updated"
PARLAY_UPDATED = "parlay.updated"

EVENT_TYPES: dict[str, str] = {
    FEED_CONNECTED: "A websocket feed connected and was acknowledged (socket_connected).",
    FEED_DISCONNECTED: "A websocket feed dropped; data.reason and data.retry_in say why and when.",
    FEED_ERROR: "A feed reported or met an error; data.message says what.",
    FEED_SUBSCRIBED: "Subscription filters were sent and acknowledged.",
    ODDS_GAME_ADDED: "First sight of a (sportsbook, game); data.outcomes holds its lines.",
    ODDS_GAME_UPDATED: "A game_update replaced a game's lines; data.changed lists what differed.",
    ODDS_GAME_REMOVED: "A (sportsbook, game) was removed upstream.",
    ODDS_LINE_CHANGED: "The price of one outcome changed (old_odds/new_odds, old_prob/new_prob).",
    ODDS_LINE_SUSPENDED: "An outcome's odds became unavailable (None, '' or 'None').",
    ODDS_LINE_RESTORED: "A suspended outcome has a price again.",
    ODDS_SPORT_CLEARED: "One sport of one book was cleared; data.lines counts the lines affected.",
    ODDS_BOOK_CLEARED: "One whole book was cleared; data.lines counts the lines affected.",
    SCORE_CHANGED: "The score of a game changed; carries previous scores and the scoring side.",
    GAME_STATUS_CHANGED: "A game went scheduled -> live -> final.",
    GAME_PERIOD_CHANGED: "A game entered a new period (quarter, inning, set, half).",
    PLAY_NEW: "A new play-by-play entry (streams 1-4).",
    STATS_UPDATED: "Game statistics changed.",
    BOXSCORE_UPDATED: "A polled box score changed.",
    MATCH_STATS_UPDATED: "Polled match stats changed.",
    MATCH_INFO_UPDATED: "Polled match info changed.",
    PARLAY_UPDATED: "Polled parlays of a sportsbook changed.",
}
"""Every known event type with a one-line description; plugins add their own."""

ENVELOPE_FIELDS = (
    "id", "type", "time", "received", "feed", "sport", "sportsbook",
    "game", "universal_id", "home", "away",
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """ISO 8601 with milliseconds and an explicit UTC offset."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


def now_iso() -> str:
    return iso(utcnow())


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@lru_cache(maxsize=4096)
def _feed_time_text(value: str) -> str | None:
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return _epoch_iso(float(text))
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = None
    if dt is not None and dt.tzinfo is not None and "T" in text:
        return value
    dt = parse_time(text)
    return iso(dt) if dt is not None else None


def _epoch_iso(seconds: float) -> str | None:
    if seconds > 1e11:
        seconds /= 1000.0       # milliseconds
    try:
        return iso(datetime.fromtimestamp(seconds, UTC))
    except (OverflowError, OSError, ValueError):
        return None


def feed_time(value: Any, fallback: str) -> str:
    """An upstream timestamp as an event ``time``: ISO 8601 with an offset (or ``Z``)
    is kept as sent; a space instead of ``T``, no offset (taken as UTC) and epoch
    seconds or milliseconds become ISO 8601 UTC; anything else gives ``fallback``."""
    if isinstance(value, str) and value:
        return _feed_time_text(value) or fallback
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return _epoch_iso(float(value)) or fallback
    return fallback


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
"""The two Crockford base32 digits (as in ULIDs) of every 10-bit number."""


@lru_cache(maxsize=4096)
def _epoch_ms(time: str) -> int | None:
    """Milliseconds since the epoch of an ISO time (the events of one message share it)."""
    dt = parse_time(time)
    return None if dt is None else int(dt.timestamp() * 1000)


def _ms_text(ms: int) -> str:
    """The first 10 characters of an id: 48 bits of milliseconds in Crockford base32."""
    ms &= (1 << 48) - 1
    p = _PAIRS
    return (p[ms >> 40] + p[(ms >> 30) & 1023] + p[(ms >> 20) & 1023] + p[(ms >> 10) & 1023]
            + p[ms & 1023])


@lru_cache(maxsize=4096)
def _time_text(time: str) -> str | None:
    """``_ms_text`` of an ISO time (the events of one message share it)."""
    ms = _epoch_ms(time)
    return None if ms is None else _ms_text(ms)


def make_id(time: str | None, *parts: Any) -> str:
    """A ULID-shaped id: 48 bits of the event time in ms, then 80 bits of a hash.

    The same upstream change (same time and parts) always gives the same id, and
    ids sort by time like ULIDs.
    """
    head = _time_text(time) if time else None
    if head is None:
        head = _ms_text(int(utcnow().timestamp() * 1000))
    d = int.from_bytes(hashlib.blake2b(orjson.dumps(parts, default=str),
                                       digest_size=10).digest(), "big")
    p = _PAIRS
    return (head + p[d >> 70] + p[(d >> 60) & 1023] + p[(d >> 50) & 1023]
            + p[(d >> 40) & 1023] + p[(d >> 30) & 1023] + p[(d >> 20) & 1023]
            + p[(d >> 10) & 1023] + p[d & 1023])


def short_hash(*parts: Any) -> str:
    return base64.b32encode(
        hashlib.blake2b(orjson.dumps(parts, default=str), digest_size=5).digest()
    ).decode().lower()


@dataclass(slots=True)
class Event:
    """One normalized event. ``data`` holds the type-specific fields.

    The odds board passes the fields by position (the hot path): keep their order.
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    time: str = ""
    received: str = ""
    feed: str | None = None
    sport: str | None = None
    sportsbook: str | None = None
    game: str | None = None
    universal_id: str | None = None
    home: str | None = None
    away: str | None = None
    mono: float = field(default=0.0, repr=False, compare=False)
    """Monotonic clock at receipt; not serialized. Sinks measure latency against it."""

    def __post_init__(self) -> None:
        if not self.mono:
            self.mono = _time.monotonic()
        if not self.received:
            self.received = now_iso()
        if not self.time:
            self.time = self.received
        if not self.id:
            self.id = make_id(
                self.time, self.type, self.feed, self.sportsbook,
                self.universal_id or self.game, self.data,
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "type": self.type, "time": self.time, "received": self.received,
            "feed": self.feed, "sport": self.sport, "sportsbook": self.sportsbook,
            "game": self.game, "universal_id": self.universal_id,
            "home": self.home, "away": self.away, "data": self.data,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), default=str)

    def get(self, path: str, default: Any = None) -> Any:
        """Value at a dotted path: ``game``, ``data.outcome``, ``data.stats.home``."""
        if "." not in path:
            if path == "data":
                return self.data
            return getattr(self, path, default) if path in ENVELOPE_FIELDS else default
        head, _, rest = path.partition(".")
        node: Any = self.data if head == "data" else getattr(self, head, None)
        for part in rest.split("."):
            if isinstance(node, dict):
                node = node.get(part, default)
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return node

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        if not isinstance(d, dict) or not isinstance(d.get("type"), str):
            raise ValueError("an event needs a string 'type'")
        data = d.get("data") or {}
        if not isinstance(data, dict):
            raise ValueError("an event's 'data' must be an object")
        return cls(
            type=d["type"], data=data, id=d.get("id") or "", time=d.get("time") or "",
            received=d.get("received") or "",
            **{k: d.get(k) for k in ("feed", "sport", "sportsbook", "game",
                                     "universal_id", "home", "away")},
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        return cls.from_dict(orjson.loads(raw))
