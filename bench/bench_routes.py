"""Route matching: events per second through 10 and through 1,000 routes, in one run.

The routes are the kind users write: one per followed game (odds moves of a
market, score changes, an outcome glob, now and then an ``if``), plus a few
catch-alls (``type: "*"``, ``type: "odds.*"`` on a sport, a status). Both tables
route the same first games the same way; the 1,000-route table adds 990 routes
on other games. The stream is the same for both: a quarter of it on the games
both tables follow, the rest on games no route names. So every event fires the
same routes with either table, and the difference is the cost of finding them
among 10 or among 1,000 routes. Figures: ``RouteTable.match`` alone, and
``App.publish`` (rules none, sinks none) which adds the envelope bookkeeping.
The baseline of each is 10 routes; the target is 1,000 routes within 1.5x of
10. Times are the thread's CPU time (best of several interleaved rounds), so
other work on the machine disturbs them less.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from boltrouter.app import App
from boltrouter.config import Validator, load_config, load_yaml
from boltrouter.events import Event
from boltrouter.metrics import Metrics
from boltrouter.routes import Route, RouteTable, compile_routes

GAMES = 1_000
SINKS = {"archive", "ha", "hook"}
MARKETS = ("Moneyline", "Spread", "Total")
BOOKS = ("draftkings", "fanduel", "betmgm", "caesars")


def game(i: int) -> str:
    return f"Home {i} vs Away {i}, 2025-12-07, {13 + i % 10:02d}"


def routes_yaml(n: int) -> str:
    """``n`` routes: three catch-alls, the rest per game, cycling through route shapes."""
    out = [
        '  - {name: archive-all, when: {type: "*"}, to: archive}',
        '  - {name: nba-odds, when: {type: "odds.*", sport: NBA, sportsbook: fanduel}, to: ha}',
        '  - {name: finals, when: {type: game.status_changed, data.status: final}, to: hook}',
    ]
    for i in range(n - len(out)):
        g = game(i)
        shape = i % 5
        if shape == 0:
            out.append(f'  - {{name: r{i}, when: {{type: odds.line_changed, game: "{g}", '
                       f'market: Moneyline}}, to: ha}}')
        elif shape == 1:
            out.append(f'  - {{name: r{i}, when: {{type: score.changed, game: "{g}"}}, '
                       f'to: [ha, hook]}}')
        elif shape == 2:
            out.append(f'  - {{name: r{i}, when: {{type: [odds.line_changed, '
                       f'odds.line_suspended], game: "{g}", data.outcome: "*Over*"}}, '
                       f'to: hook}}')
        elif shape == 3:
            out.append(f'  - name: r{i}\n    when: {{type: odds.line_changed, game: "{g}"}}\n'
                       f'    if: "{{{{ data.new_prob is number and data.new_prob > 0.6 }}}}"\n'
                       f'    to: hook')
        else:
            out.append(f'  - {{name: r{i}, when: {{type: "odds.line_*", game: "{g}", '
                       f'sportsbook: [draftkings, fanduel]}}, to: ha}}')
    return "routes:\n" + "\n".join(out) + "\n"


def compile_n(n: int) -> list[Route]:
    raw, lines = load_yaml(routes_yaml(n), "bench.yaml")
    v = Validator("bench.yaml", lines)
    routes = compile_routes(raw["routes"], SINKS, v)
    if v.errors:
        raise RuntimeError("\n".join(str(e) for e in v.errors))
    assert len(routes) == n
    return routes


FOLLOWED = 7
"""The games both tables have a route for (10 routes = 3 catch-alls + 7 games)."""


def stream(count: int) -> list[Event]:
    """Mostly line changes, some scores and statuses; a quarter on the followed games."""
    events = []
    for i in range(count):
        g = i % FOLLOWED if i % 4 == 0 else GAMES + (i * 7919) % GAMES
        kind = i % 20
        common: dict[str, Any] = {"game": game(g), "sport": "NBA" if g % 2 else "NFL",
                                  "feed": "odds", "universal_id": f"u{g}",
                                  "received": "2025-12-07T18:00:00.000+00:00"}
        if kind == 0:
            events.append(Event("score.changed", {"home_score": i % 90, "away_score": 3},
                                **{**common, "feed": "scores"}))
        elif kind == 1:
            events.append(Event("game.status_changed", {"status": "live"},
                                **{**common, "feed": "scores"}))
        else:
            market = MARKETS[i % 3]
            outcome = f"Home {g} {market}" if market != "Total" else "Over 210.5 Total"
            prob = 0.4 + (i % 30) / 100
            events.append(Event("odds.line_changed",
                                {"outcome": outcome, "market": market, "old_prob": 0.5,
                                 "new_prob": prob, "old_odds": "+100", "new_odds": "-110"},
                                sportsbook=BOOKS[i % 4], **common))
    return events


def time_match(table: RouteTable, events: list[Event]) -> float:
    match = table.match
    t0 = time.thread_time()
    for e in events:
        match(e)
    return time.thread_time() - t0


def time_publish(app: App, events: list[Event]) -> float:
    async def go() -> float:
        publish = app.publish
        t0 = time.thread_time()
        for e in events:
            await publish(e)
        return time.thread_time() - t0
    return asyncio.run(go())


def bare_app(folder: Path, routes: list[Route]) -> App:
    path = folder / "bench.yaml"
    path.write_text("boltodds: {odds: false, rest: false}\n")
    app = App(load_config(path, environ={}))
    app.routes = RouteTable(routes, app.metrics)
    return app


def run(quick: bool) -> list[dict[str, Any]]:
    events = stream(20_000 if quick else 100_000)
    rounds = 3 if quick else 5
    tables = {n: compile_n(n) for n in (10, 1_000)}
    best: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):  # interleaved, best of several: other load hits both sizes
            for n, routes in tables.items():
                for how in ("match", "publish"):
                    fresh = [Route(**{**r.__dict__, "state": r.new_state()}) for r in routes]
                    gc.collect()
                    if how == "match":
                        seconds = time_match(RouteTable(fresh, Metrics()), events)
                    else:
                        seconds = time_publish(bare_app(Path(tmp), fresh), events)
                    key = (how, n)
                    best[key] = min(best.get(key, seconds), seconds)
    rows = []
    for how, label in (("match", "RouteTable.match"), ("publish", "App.publish, no sinks")):
        base = len(events) / best[(how, 10)]
        rows.append({"name": f"{label}, 10 routes", "value": base, "unit": "events/s",
                     "baseline_name": None, "baseline": None})
        rows.append({"name": f"{label}, 1,000 routes", "value": len(events) / best[(how, 1_000)],
                     "unit": "events/s", "baseline_name": f"{label}, 10 routes",
                     "baseline": base})
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
