"""Rules: the cost of one line update through ``App.publish`` with every rule on.

Each run builds an app from a config (no feeds, no routes), announces every game
of every book with ``odds.game_added``, then times only the line updates that
follow: moneyline, spread and total prices of random games taking random steps,
so moves, best prices, steam, arbitrages and edges keep appearing and closing.
In one run:

- every built-in rule on, against the same app with no rule (the cost of rules);
- every rule on with 2,000 games tracked, against 100 games (the cost of an
  update must not grow with the number of games).
"""

from __future__ import annotations

import gc
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event, iso

from ._support import run_async

BOOKS = ("draftkings", "fanduel", "betmgm", "caesars", "pinnacle")
START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)

ALL_RULES = """
rules:
  moves: {type: line_move, min_prob_change: 0.03, window: 10m}
  best: {type: best_line}
  steam: {type: steam, min_books: 3, window: 5m}
  arbs: {type: arbitrage, bankroll: 100, max_age: 60s}
  sharp: {type: fair_odds, sharp_book: pinnacle, min_edge: 0.02}
  consensus: {type: fair_odds, min_edge: 0.03}
"""


def american(prob: float) -> str:
    if prob >= 0.5:
        return f"-{round(100 * prob / (1 - prob))}"
    return f"+{round(100 * (1 - prob) / prob)}"


def _outcomes(home: str, away: str) -> list[tuple[str, dict[str, Any], float]]:
    """Key, line fields and fair probability of each outcome of one game."""
    total = f"{home} vs {away}"
    return [
        (f"{home} Moneyline", {"market": "Moneyline", "target": home}, 0.55),
        (f"{away} Moneyline", {"market": "Moneyline", "target": away}, 0.45),
        (f"{home} -3.5 Spread", {"market": "Spread", "target": home, "line": "-3.5"}, 0.5),
        (f"{away} +3.5 Spread", {"market": "Spread", "target": away, "line": "+3.5"}, 0.5),
        (f"{total} Over 220.5 Total", {"market": "Total", "target": total, "line": "220.5",
                                       "over_under": "Over"}, 0.5),
        (f"{total} Under 220.5 Total", {"market": "Total", "target": total, "line": "220.5",
                                        "over_under": "Under"}, 0.5),
    ]


def stream(games: int, updates: int, seed: int = 7) -> tuple[list[Event], list[Event]]:
    """The ``odds.game_added`` of every (book, game), then ``updates`` line updates."""
    rng = random.Random(seed)
    added: list[Event] = []
    names = []
    prices: dict[tuple[int, str, int], float] = {}
    for g in range(games):
        home, away = f"Home Team {g}", f"Away Team {g}"
        name = f"{home} vs {away}, 2026-12-01, 19"
        names.append((name, f"uid{g:05d}", home, away))
        for book in BOOKS:
            outcomes = {}
            for i, (key, line, prob) in enumerate(_outcomes(home, away)):
                p = prices[(g, book, i)] = prob * 1.04 + rng.uniform(-0.02, 0.02)
                outcomes[key] = {"odds": american(p), "line": None, "over_under": None,
                                 **line, "link": f"https://{book}.example/{g}/{i}"}
            added.append(Event("odds.game_added", {"count": 6, "outcomes": outcomes},
                               time=iso(START), feed="odds", sport="NBA", sportsbook=book,
                               game=name, universal_id=f"uid{g:05d}", home=home, away=away))
    moves: list[Event] = []
    for n in range(updates):
        g, book, i = rng.randrange(games), rng.choice(BOOKS), rng.randrange(6)
        name, uid, home, away = names[g]
        key, line, _ = _outcomes(home, away)[i]
        old = prices[(g, book, i)]
        new = prices[(g, book, i)] = min(0.9, max(0.1, old + rng.choice((-1, 1))
                                                  * rng.uniform(0.002, 0.02)))
        data = {"outcome": key, "line": None, "over_under": None, **line,
                "old_odds": american(old), "new_odds": american(new),
                "link": f"https://{book}.example/{g}/{i}"}
        moves.append(Event("odds.line_changed", data,
                           time=iso(START + timedelta(seconds=1 + n * 0.05)), feed="odds",
                           sport="NBA", sportsbook=book, game=name, universal_id=uid,
                           home=home, away=away))
    return added, moves


async def _round(path: Path, games: int, updates: int) -> tuple[float, int]:
    """Microseconds per line update through App.publish, and the rule events derived."""
    added, moves = stream(games, updates)
    app = App(load_config(path))
    await app.start(feeds=False)
    try:
        await app.publish_many(added)
        before = app.events_in
        gc.collect()
        t0 = time.perf_counter()
        for event in moves:
            await app.publish(event)
        elapsed = time.perf_counter() - t0
        return elapsed / len(moves) * 1e6, app.events_in - before - len(moves)
    finally:
        await app.stop()


async def _run(quick: bool) -> list[dict[str, Any]]:
    updates = 3_000 if quick else 15_000
    few, many = 100, 2_000
    cases = {"off": ("", few), "on": (ALL_RULES, few), "on_many": (ALL_RULES, many)}
    best: dict[str, float] = {}
    derived: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        for _ in range(3):             # rounds interleaved, best of each: a busy machine
            for case, (rules, games) in cases.items():
                path = Path(tmp) / f"{case}.yaml"
                path.write_text(f"summary: {{enabled: never}}\n{rules}")
                cost, events = await _round(path, games, updates)
                best[case] = min(cost, best.get(case, cost))
                derived[case] = events * 1000 / updates
    return [
        {"name": f"line update, all rules on ({few} games)", "value": best["on"], "unit": "µs",
         "baseline_name": "rules off", "baseline": best["off"]},
        {"name": f"line update, all rules on ({many:,} games)", "value": best["on_many"],
         "unit": "µs", "baseline_name": f"all rules on ({few} games)", "baseline": best["on"]},
        {"name": f"rule events per 1,000 updates ({many:,} games)",
         "value": derived["on_many"], "unit": "events", "baseline_name": f"{few} games",
         "baseline": derived["on"]},
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    return run_async(_run(quick))
