"""The odds websocket (``/api``): filters, initial_state, deltas, clears, re-subscribe limit."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from .session import Session
from .world import OddsMsg

RESUBSCRIBE_ERROR = {"action": "error",
                     "message": "Re-subscription rate limit hit. "
                                "Please wait 5 seconds before re-subscribing."}


def timestamp() -> str:
    return datetime.now(UTC).isoformat()


def encode(msg: OddsMsg, stamp: str, data: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"timestamp": stamp, "action": msg.action,
                         "data": msg.data if data is None else data})


class OddsSession(Session):
    feed = "odds"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._last_subscribe = float("-inf")

    async def on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("action") == "subscribe":
            now = time.monotonic()
            if now - self._last_subscribe < self.server.options["resubscribe_window"]:
                self.send_obj(RESUBSCRIBE_ERROR)
                return
            self._last_subscribe = now
        await super().on_message(msg)

    def on_subscribed(self, first: bool) -> None:
        super().on_subscribed(first)
        stamp = timestamp()
        messages = []
        for msg in self.server.world.snapshot():
            data = self.filtered(msg)
            if data is not None and data["outcomes"]:
                messages.append(encode(msg, stamp, data))
        self.send_messages(messages, self.server.options["initial_batch"])

    def filtered(self, msg: OddsMsg) -> dict[str, Any] | None:
        """The message data as this subscription sees it, or None when it does not match."""
        f = self.filters
        books = f.get("sportsbooks")
        if books is not None and msg.book not in books:
            return None
        sports = f.get("sports")
        if msg.action == "book_clear":
            return msg.data
        if sports is not None and msg.sport not in sports:
            return None
        if msg.action == "sport_clear":
            return msg.data
        games = f.get("games")
        if games is not None and msg.game not in games:
            return None
        markets = f.get("markets")
        if markets is None or msg.action == "game_removed":
            return msg.data
        outcomes = {k: v for k, v in msg.data["outcomes"].items()
                    if v.get("outcome_name") in markets}
        if not outcomes and msg.action == "line_update":
            return None
        data = dict(msg.data)
        data["outcomes"] = outcomes
        return data

    def deliver(self, msgs: list[OddsMsg], stamp: str, cache: dict[int, bytes]) -> None:
        """Send this tick's messages that match the filters, batched into frames."""
        if not self.subscribed:
            return
        out = []
        plain = "markets" not in self.filters
        for msg in msgs:
            data = self.filtered(msg)
            if data is None:
                continue
            if plain or data is msg.data:
                encoded = cache.get(id(msg))
                if encoded is None:
                    encoded = cache[id(msg)] = encode(msg, stamp)
                out.append(encoded)
            else:
                out.append(encode(msg, stamp, data))
        if out:
            self.send_messages(out, self.server.options["batch"])
