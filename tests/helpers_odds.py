"""Test helpers for the odds feed: a real OddsFeed client on a real App, and odds messages.

    async with odds_client(tmp_path, server.url, subscribe={"sports": ["NBA"]}) as client:
        await client.wait_for(lambda: client.of("odds.game_added"))
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml
from helpers_ws import wait_until

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event
from boltrouter.feeds.rest import RateLimiter

KEY = "k3y-7f3a9c-odds-test"
STAMP = "2025-07-23T19:45:03.048958+00:00"


def outcome(odds: Any, target: str = "New York Mets", market: str = "Moneyline",
            line: str | None = None, over_under: str | None = None) -> dict[str, Any]:
    return {"odds": odds, "link": f"https://book.example/e/1?pick={target}-{market}-{line}",
            "outcome_name": market, "outcome_line": line, "outcome_over_under": over_under,
            "outcome_target": target}


def odds_msg(action: str, book: str, game: str, outcomes: dict[str, Any], sport: str = "MLB",
             ts: str = STAMP) -> dict[str, Any]:
    home, away = game.split(",")[0].split(" vs ")
    return {"timestamp": ts, "action": action, "data": {
        "sport": sport, "sportsbook": book, "game": game, "home_team": home, "away_team": away,
        "info": {"id": 1022036664, "game": game, "when": "2025-07-23, 01:09 PM",
                 "link": "https://book.example/e/1"},
        "outcomes": outcomes}}


def clear_msg(book: str, sport: str | None = None, ts: str = STAMP) -> dict[str, Any]:
    return {"timestamp": ts, "action": "sport_clear" if sport else "book_clear", "data": {
        "sport": sport if sport else {}, "sportsbook": book, "game": {}, "home_team": {},
        "away_team": {}, "info": {}, "outcomes": {}}}


class OddsClient:
    """A running OddsFeed and every event it published."""

    def __init__(self, app: App, feed: Any, events: list[Event], task: asyncio.Task[None]) -> None:
        self.app = app
        self.feed = feed
        self.events = events
        self.task = task

    def of(self, *types: str) -> list[Event]:
        """Events of these types; a type ending in '.' or '_' is a prefix ('odds.line_')."""
        return [e for e in self.events
                if any(e.type == t or (t[-1:] in "._" and e.type.startswith(t)) for t in types)]

    def odds_events(self) -> list[Event]:
        return self.of("odds.")

    async def wait_for(self, cond: Callable[[], Any], timeout: float = 10.0,
                       what: str = "condition") -> Any:
        return await wait_until(cond, timeout, what)

    async def wait_event(self, etype: str, count: int = 1, timeout: float = 10.0) -> list[Event]:
        return await wait_until(lambda: len(self.of(etype)) >= count and self.of(etype),
                                timeout, f"{count} x {etype}")


def feed_config(tmp_path: Path, url: str, *, key: str = KEY,
                subscribe: dict[str, Any] | None = None, **options: Any) -> Any:
    odds = {"url": url, "subscribe": subscribe or {}, "check_filters": False,
            "backoff_base": 0.05, "backoff_max": 0.2, **options}
    doc = {"boltodds": {"api_key": key, "odds": odds}, "state_dir": str(tmp_path)}
    path = tmp_path / "config.yaml"
    text = yaml.safe_dump(doc)
    path.write_text(text)
    return load_config(path, text=text)


@contextlib.asynccontextmanager
async def odds_client(tmp_path: Path, url: str, *, clock: Any = None, limiter: Any = None,
                      start: bool = True, quick_drop_delay: float = 0.05,
                      simulator: Any = None, **kwargs: Any) -> AsyncIterator[OddsClient]:
    """An App (no sinks) with one OddsFeed connected to ``url``, as the daemon runs it.

    ``simulator``: the SimulatorServer the App should consider its own (as when no API
    key is configured). REST requests of the feed are not rate-limited here."""
    config = feed_config(tmp_path, url, **kwargs)
    app = App(config)
    await app.start(feeds=False)
    cls, options = config.feeds["odds"]
    feed = cls("odds", dict(options), app)
    feed.quick_drop_delay = quick_drop_delay
    feed.rest_limiter = RateLimiter(10_000, 10_000)
    app.simulator = simulator
    if clock is not None:
        feed.clock = clock
    if limiter is not None:
        feed.limiter = limiter
    app.feeds["odds"] = feed
    events: list[Event] = []
    app.taps.append(lambda event, routes: events.append(event))
    task = asyncio.create_task(feed.run()) if start else None
    client = OddsClient(app, feed, events, task)  # type: ignore[arg-type]
    try:
        yield client
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await app.stop()
