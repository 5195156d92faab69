"""Rules: scripted line updates through a running app, and the exact rule events a sink gets."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers_sinks import at, boltrouter, start_app, wait_until, write_config, write_jsonl

from boltrouter.app import App
from boltrouter.config import ConfigErrors, load_config
from boltrouter.events import Event
from boltrouter.rules.market import PriceBook

HOME, AWAY = "Los Angeles Lakers", "Denver Nuggets"
GAME = f"{HOME} vs {AWAY}, 2025-12-07, 20"
UID = "lal-den-1207"
MATCHUP = f"{HOME} vs {AWAY}"


@dataclass(frozen=True)
class Outcome:
    key: str
    market: str
    target: str | None
    line: str | None = None
    over_under: str | None = None

    def spelled(self, over_under: str) -> Outcome:
        """The same outcome as a book that writes ``O``/``U`` names it."""
        return Outcome(self.key.replace(self.over_under or "", over_under, 1), self.market,
                       self.target, self.line, over_under)


ML_HOME = Outcome(f"{HOME} Moneyline", "Moneyline", HOME)
ML_AWAY = Outcome(f"{AWAY} Moneyline", "Moneyline", AWAY)
OVER_220 = Outcome(f"{MATCHUP} Over 220.5 Total", "Total", MATCHUP, "220.5", "Over")
UNDER_220 = Outcome(f"{MATCHUP} Under 220.5 Total", "Total", MATCHUP, "220.5", "Under")
OVER_221 = Outcome(f"{MATCHUP} Over 221.5 Total", "Total", MATCHUP, "221.5", "Over")
UNDER_221 = Outcome(f"{MATCHUP} Under 221.5 Total", "Total", MATCHUP, "221.5", "Under")


def link(book: str, outcome: Outcome) -> str:
    return f"https://{book}.example/bet/{outcome.key.replace(' ', '-').lower()}"


def fields(outcome: Outcome) -> dict[str, Any]:
    return {"outcome": outcome.key, "market": outcome.market, "target": outcome.target,
            "line": outcome.line, "over_under": outcome.over_under}


def envelope(etype: str, book: str, t: float, data: dict[str, Any], game: str = GAME,
             uid: str = UID) -> Event:
    home, _, away = game.split(",")[0].partition(" vs ")
    return Event(etype, data, time=at(t), feed="odds", sport="NBA", sportsbook=book,
                 game=game, universal_id=uid, home=home, away=away)


def added(book: str, t: float, prices: dict[Outcome, str], game: str = GAME,
          uid: str = UID) -> Event:
    """A book's first sight of the game, as the odds feed announces it."""
    outcomes = {o.key: {**fields(o), "odds": odds, "link": link(book, o)}
                for o, odds in prices.items()}
    for line in outcomes.values():
        del line["outcome"]
    return envelope("odds.game_added", book, t, {"count": len(outcomes), "outcomes": outcomes},
                    game, uid)


def move(book: str, t: float, outcome: Outcome, old: str | None, new: str | None,
         game: str = GAME, uid: str = UID) -> Event:
    """One line update of one book, as the odds feed announces it."""
    etype = ("odds.line_restored" if old is None else "odds.line_suspended" if new is None
             else "odds.line_changed")
    data = {**fields(outcome), "old_odds": old, "new_odds": new, "link": link(book, outcome)}
    return envelope(etype, book, t, data, game, uid)


def removed(book: str, t: float, game: str = GAME, uid: str = UID) -> Event:
    return envelope("odds.game_removed", book, t, {"count": 2}, game, uid)


MEMORY_SINK = '''
import boltrouter
from boltrouter.sink import Sink


class Memory(Sink):
    def __init__(self, name, options, app):
        super().__init__(name, options, app)
        self.seen = []

    async def write(self, batch):
        self.seen.extend(d.event for d in batch)


@boltrouter.hookimpl
def register_sink_types(register):
    register("memory", Memory)
'''


def config(tmp_path: Path, rules: str) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "memory_sink.py").write_text(MEMORY_SINK)
    path = tmp_path / "config.yaml"
    path.write_text(f"""
plugins_dir: plugins
summary: {{enabled: never}}
sinks:
  mem: {{type: memory}}
rules:
{rules}
routes:
  - {{name: rule-events, when: {{type: "rule.*"}}, to: mem}}
""")
    return path


async def derive(tmp_path: Path, rules: str, events: list[Event],
                 check: Any = None) -> list[Event]:
    """Publish ``events`` into an app running ``rules``; the rule events its sink received.

    ``check(app)`` runs once everything is published, before the app stops.
    """
    app = await start_app(config(tmp_path, rules))
    try:
        await app.publish_many(events)
        if check is not None:
            check(app)
    finally:
        await app.stop()
    return list(app.sinks["mem"].seen)  # type: ignore[attr-defined]


def summary(events: list[Event]) -> list[tuple[str, str | None, str | None, dict[str, Any]]]:
    return [(e.type, e.feed, e.sportsbook, e.data) for e in events]


# --- line_move ---------------------------------------------------------------------------

async def test_line_move_fires_once_past_the_threshold_and_not_for_small_or_expired_moves(
        tmp_path: Path) -> None:
    got = await derive(tmp_path, "  big-moves: {type: line_move, min_prob_change: 0.04, "
                                 "window: 10m}", [
        added("draftkings", 0, {ML_HOME: "-150", ML_AWAY: "+130"}),
        added("fanduel", 0, {ML_HOME: "-150", ML_AWAY: "+130"}),
        move("draftkings", 60, ML_HOME, "-150", "-160"),     # 0.6 -> 0.615: below threshold
        move("draftkings", 120, ML_HOME, "-160", "-185"),    # 0.6 -> 0.649 within 2 minutes
        move("fanduel", 130, ML_HOME, "-150", "-160"),       # another book: its own level
        move("draftkings", 200, ML_HOME, "-185", "-170"),    # re-armed at -185: 0.020 down
        # 0.6 again: 0.049 below -185, but -185 was replaced before the window began
        move("draftkings", 900, ML_HOME, "-170", "-150"),
        move("fanduel", 920, ML_HOME, "-160", "+110"),        # 0.615 -> 0.476 in 13 minutes
    ])
    assert summary(got) == [
        ("rule.line_move", "big-moves", "draftkings", {
            **fields(ML_HOME), "old_odds": "-150", "new_odds": "-185",
            "old_prob": 0.6, "new_prob": 0.649123, "old_decimal": 1.6667, "new_decimal": 1.5405,
            "change": 0.049123, "direction": "up", "since": at(0), "seconds": 120.0,
            "window": 600.0, "link": link("draftkings", ML_HOME), "data_age": 0.0}),
        ("rule.line_move", "big-moves", "fanduel", {
            **fields(ML_HOME), "old_odds": "-160", "new_odds": "+110",
            "old_prob": 0.615385, "new_prob": 0.47619, "old_decimal": 1.625, "new_decimal": 2.1,
            "change": -0.139194, "direction": "down", "since": at(130), "seconds": 790.0,
            "window": 600.0, "link": link("fanduel", ML_HOME), "data_age": 0.0}),
    ]
    assert got[0].game == GAME and got[0].universal_id == UID and got[0].time == at(120)
    assert (got[0].home, got[0].away, got[0].sport) == (HOME, AWAY, "NBA")


# --- best_line ---------------------------------------------------------------------------

def best(outcome: Outcome, books: list[str], odds: str, decimal: float, prob: float,
         previous: tuple[list[str], str | None, float | None], improved: bool, count: int,
         data_age: float) -> dict[str, Any]:
    return {**fields(outcome), "best_books": books, "best_odds": odds, "best_decimal": decimal,
            "best_prob": prob, "previous_books": previous[0], "previous_odds": previous[1],
            "previous_decimal": previous[2], "improved": improved, "books": count,
            "link": link(books[0], outcome), "links": {b: link(b, outcome) for b in books},
            "data_age": data_age}


async def test_best_line_announces_a_new_best_price_or_new_books_offering_it(
        tmp_path: Path) -> None:
    got = await derive(tmp_path, "  best: {type: best_line}", [
        added("draftkings", 0, {ML_HOME: "-150", ML_AWAY: "+130"}),   # first sight: quiet
        added("fanduel", 1, {ML_HOME: "-140", ML_AWAY: "+120"}),      # -140 beats -150
        move("draftkings", 10, ML_HOME, "-150", "-140"),              # now both offer it
        move("fanduel", 20, ML_HOME, "-140", "-145"),                 # draftkings alone
        move("fanduel", 25, ML_AWAY, "+120", "+125"),                 # not the best: quiet
        move("draftkings", 30, ML_HOME, "-140", None),                # the best is suspended
        move("draftkings", 40, ML_HOME, None, "-145"),                # a tie again
    ])
    assert summary(got) == [
        ("rule.best_line_changed", "best", None, best(
            ML_HOME, ["fanduel"], "-140", 1.7143, 0.583333, (["draftkings"], "-150", 1.6667),
            True, 2, 0.0)),
        ("rule.best_line_changed", "best", None, best(
            ML_HOME, ["draftkings", "fanduel"], "-140", 1.7143, 0.583333,
            (["fanduel"], "-140", 1.7143), False, 2, 9.0)),
        ("rule.best_line_changed", "best", None, best(
            ML_HOME, ["draftkings"], "-140", 1.7143, 0.583333,
            (["draftkings", "fanduel"], "-140", 1.7143), False, 2, 10.0)),
        ("rule.best_line_changed", "best", None, best(
            ML_HOME, ["fanduel"], "-145", 1.6897, 0.591837, (["draftkings"], "-140", 1.7143),
            False, 1, 10.0)),
        ("rule.best_line_changed", "best", None, best(
            ML_HOME, ["draftkings", "fanduel"], "-145", 1.6897, 0.591837,
            (["fanduel"], "-145", 1.6897), False, 2, 20.0)),
    ]


async def test_best_line_leaves_out_prices_older_than_max_age(tmp_path: Path) -> None:
    got = await derive(tmp_path, "  any-age: {type: best_line}\n"
                                 "  fresh: {type: best_line, max_age: 60s}", [
        added("draftkings", 0, {ML_HOME: "-150", ML_AWAY: "+130"}),
        added("fanduel", 1, {ML_HOME: "-155", ML_AWAY: "+120"}),
        move("fanduel", 100, ML_AWAY, "+120", "+125"),      # draftkings' +130 is 100 s old
    ])
    assert summary(got) == [
        ("rule.best_line_changed", "fresh", None, best(
            ML_AWAY, ["fanduel"], "+125", 2.25, 0.444444, (["draftkings"], "+130", 2.3),
            False, 2, 0.0)),
    ]


async def test_best_line_can_announce_the_first_best_price(tmp_path: Path) -> None:
    got = await derive(tmp_path, "  best: {type: best_line, initial: true, "
                                 "markets: [Moneyline]}", [
        added("draftkings", 0, {ML_HOME: "-150", OVER_220: "-110"}),
    ])
    assert summary(got) == [
        ("rule.best_line_changed", "best", None, best(
            ML_HOME, ["draftkings"], "-150", 1.6667, 0.6, ([], None, None), True, 1, 0.0)),
    ]


# --- steam -------------------------------------------------------------------------------

def steam_move(book: str, old: str, new: str, old_prob: float, new_prob: float, moved: float,
               t: float, outcome: Outcome = ML_HOME) -> dict[str, Any]:
    return {"sportsbook": book, "outcome": outcome.key, "old_odds": old, "new_odds": new,
            "old_prob": old_prob, "new_prob": new_prob, "move": moved, "time": at(t),
            "link": link(book, outcome)}


async def test_steam_needs_enough_books_moving_the_same_way_within_the_window(
        tmp_path: Path) -> None:
    books = ("draftkings", "fanduel", "betmgm", "caesars")
    got = await derive(tmp_path, "  steam: {type: steam, min_books: 3, window: 5m, "
                                 "min_move: 0.02}", [
        *(added(b, 0, {ML_HOME: "-150", ML_AWAY: "+130"}) for b in books),
        move("draftkings", 10, ML_HOME, "-150", "-165"),
        move("fanduel", 20, ML_HOME, "-150", "-170"),
        move("caesars", 25, ML_HOME, "-150", "-140"),     # the other way: does not count
        move("betmgm", 30, ML_HOME, "-150", "-160"),      # 0.015: too small to count yet
        move("betmgm", 40, ML_HOME, "-160", "-175"),      # third book: steam
        move("caesars", 50, ML_HOME, "-140", "-175"),     # a fourth, within the window: quiet
        # three books move the away side, but never three within five minutes
        move("draftkings", 60, ML_AWAY, "+130", "+110"),
        move("fanduel", 200, ML_AWAY, "+130", "+110"),
        move("betmgm", 400, ML_AWAY, "+130", "+110"),
        # long after the first steam, three books move the home side again
        move("draftkings", 400, ML_HOME, "-165", "-185"),
        move("fanduel", 410, ML_HOME, "-170", "-190"),
        move("betmgm", 420, ML_HOME, "-175", "-195"),
    ])
    assert summary(got) == [
        ("rule.steam", "steam", None, {
            **fields(ML_HOME), "direction": "up", "count": 3, "books": [
                steam_move("draftkings", "-150", "-165", 0.6, 0.622642, 0.022642, 10),
                steam_move("fanduel", "-150", "-170", 0.6, 0.62963, 0.02963, 20),
                steam_move("betmgm", "-150", "-175", 0.6, 0.636364, 0.036364, 40),
            ], "avg_move": 0.029545, "window": 300.0, "link": link("betmgm", ML_HOME),
            "data_age": 30.0}),
        ("rule.steam", "steam", None, {
            **fields(ML_HOME), "direction": "up", "count": 3, "books": [
                steam_move("draftkings", "-165", "-185", 0.622642, 0.649123, 0.026481, 400),
                steam_move("fanduel", "-170", "-190", 0.62963, 0.655172, 0.025543, 410),
                steam_move("betmgm", "-175", "-195", 0.636364, 0.661017, 0.024653, 420),
            ], "avg_move": 0.025559, "window": 300.0, "link": link("betmgm", ML_HOME),
            "data_age": 20.0}),
    ]


# --- arbitrage ---------------------------------------------------------------------------

O_220, U_220 = OVER_220.spelled("O"), UNDER_220.spelled("U")
O_221, U_221 = OVER_221.spelled("O"), UNDER_221.spelled("U")


def leg(side: str, outcome: Outcome, book: str, odds: str, decimal: float, stake: float,
        payout: float, age: float) -> dict[str, Any]:
    """One side of an arbitrage; the side's fields are those of the book that listed it first."""
    first = OVER_220 if side == "over" else UNDER_220
    return {**fields(first), "outcome": outcome.key, "side": side, "sportsbook": book,
            "odds": odds, "decimal": decimal, "prob": round(1 / decimal, 6), "stake": stake,
            "payout": payout, "link": link(book, outcome), "age": age}


def arb(status: str, legs: list[dict[str, Any]], implied: float, pct: float, profit: float,
        payout: float, opened: float, data_age: float) -> dict[str, Any]:
    return {"status": status, "market": "Total", "kind": "total", "line": 220.5,
            "books": sorted({leg["sportsbook"] for leg in legs}), "legs": legs,
            "implied": implied, "profit_pct": pct, "profit": profit, "bankroll": 100.0,
            "payout": payout, "opened": at(opened), "data_age": data_age}


def closed(reason: str, opened: float, duration: float, pct: float,
           books: list[str]) -> dict[str, Any]:
    return {"market": "Total", "kind": "total", "line": 220.5, "reason": reason,
            "opened": at(opened), "duration": duration, "last_profit_pct": pct, "books": books}


async def test_arbitrage_opens_changes_and_closes_on_one_line_with_stakes_per_side(
        tmp_path: Path) -> None:
    got = await derive(tmp_path, "  arbs: {type: arbitrage, bankroll: 100, max_age: 60s}", [
        added("draftkings", 0, {OVER_220: "-110", UNDER_220: "-110"}),
        added("fanduel", 0, {O_221: "-110", U_221: "-110"}),
        move("draftkings", 10, OVER_220, "-110", "+110"),
        # Over 220.5 at +110 and Under 221.5 at +110 imply 95 %, but they are not one market
        move("fanduel", 20, U_221, "-110", "+110"),
        added("betmgm", 30, {O_220: "-120", U_220: "+105"}),      # "U" is "Under": an arb
        move("betmgm", 40, U_220, "+105", "+108"),                # profit grows
        move("draftkings", 50, OVER_220, "+110", "-115"),         # gone
        move("draftkings", 90, OVER_220, "-115", "+110"),         # back
        move("fanduel", 200, O_221, "-110", "-105"),              # meanwhile both legs aged
        move("draftkings", 210, OVER_220, "+110", "+115"),        # fresh over, stale under
    ])
    first_id, second_id = got[0].data["arb_id"], got[3].data["arb_id"]
    assert first_id != second_id
    assert [e.data.pop("arb_id") for e in got] == [first_id] * 3 + [second_id] * 2
    assert summary(got) == [
        ("rule.arbitrage", "arbs", None, arb("open", [
            leg("over", OVER_220, "draftkings", "+110", 2.1, 49.4, 103.73, 20.0),
            leg("under", U_220, "betmgm", "+105", 2.05, 50.6, 103.73, 0.0),
        ], 0.963995, 3.7349, 3.73, 103.73, 30, 20.0)),
        ("rule.arbitrage", "arbs", None, arb("changed", [
            leg("over", OVER_220, "draftkings", "+110", 2.1, 49.76, 104.5, 30.0),
            leg("under", U_220, "betmgm", "+108", 2.08, 50.24, 104.5, 0.0),
        ], 0.95696, 4.4976, 4.5, 104.5, 30, 30.0)),
        ("rule.arbitrage_closed", "arbs", None, closed(
            "prices moved: no longer an arbitrage", 30, 20.0, 4.4976,
            ["betmgm", "draftkings"])),
        ("rule.arbitrage", "arbs", None, arb("open", [
            leg("over", OVER_220, "draftkings", "+110", 2.1, 49.76, 104.5, 0.0),
            leg("under", U_220, "betmgm", "+108", 2.08, 50.24, 104.5, 50.0),
        ], 0.95696, 4.4976, 4.5, 104.5, 90, 50.0)),
        ("rule.arbitrage_closed", "arbs", None, closed(
            "price too old", 90, 110.0, 4.4976, ["betmgm", "draftkings"])),
    ]


# --- fair_odds ---------------------------------------------------------------------------

def edge(outcome: Outcome, book: str, odds: str, decimal: float, fair_prob: float,
         fair_decimal: float, fair_odds: str, value: float, kelly: float, method: str,
         sources: list[str], data_age: float) -> dict[str, Any]:
    return {**fields(outcome), "odds": odds, "decimal": decimal, "prob": round(1 / decimal, 6),
            "fair_prob": fair_prob, "fair_decimal": fair_decimal, "fair_odds": fair_odds,
            "edge": value, "edge_pct": round(value * 100, 4), "kelly": kelly,
            "method": method, "devig": "multiplicative", "sources": sources,
            "link": link(book, outcome), "data_age": data_age}


async def test_fair_odds_from_a_sharp_book_reports_each_edge_crossing_once(
        tmp_path: Path) -> None:
    got = await derive(tmp_path, "  value: {type: fair_odds, sharp_book: pinnacle, "
                                 "min_edge: 0.02, max_age: 10m}", [
        added("pinnacle", 0, {ML_HOME: "-150", ML_AWAY: "+130"}),   # fair: 58 % / 42 %
        added("draftkings", 1, {ML_HOME: "-140", ML_AWAY: "+150"}),  # +150 pays 5 % over fair
        added("fanduel", 2, {ML_HOME: "-160", ML_AWAY: "+135"}),     # no edge
        move("draftkings", 10, ML_AWAY, "+150", "+155"),            # still above: quiet
        move("draftkings", 20, ML_AWAY, "+155", "+135"),            # below: re-armed
        move("pinnacle", 30, ML_HOME, "-150", "-130"),              # fair moves: two edges
        # the sharp price is now older than max_age: no fair odds, no edge
        move("draftkings", 700, ML_AWAY, "+135", "+160"),
    ])
    assert summary(got) == [
        ("rule.fair_odds_edge", "value", "draftkings", edge(
            ML_AWAY, "draftkings", "+150", 2.5, 0.420168, 2.38, "+138", 0.05042, 0.033613,
            "sharp", ["pinnacle"], 1.0)),
        ("rule.fair_odds_edge", "value", "draftkings", edge(
            ML_AWAY, "draftkings", "+135", 2.35, 0.434783, 2.3, "+130", 0.021739, 0.016103,
            "sharp", ["pinnacle"], 30.0)),
        ("rule.fair_odds_edge", "value", "fanduel", edge(
            ML_AWAY, "fanduel", "+135", 2.35, 0.434783, 2.3, "+130", 0.021739, 0.016103,
            "sharp", ["pinnacle"], 30.0)),
    ]


async def test_fair_odds_from_the_no_vig_consensus_of_every_book(tmp_path: Path) -> None:
    got = await derive(tmp_path, "  value: {type: fair_odds, min_edge: 0.02, min_books: 3}", [
        added("draftkings", 0, {ML_HOME: "-110", ML_AWAY: "-110"}),
        added("fanduel", 1, {ML_HOME: "-110", ML_AWAY: "-110"}),
        added("betmgm", 2, {ML_HOME: "+115", ML_AWAY: "-130"}),
        move("draftkings", 3, ML_HOME, "-110", "-105"),       # no edge against the consensus
    ])
    assert summary(got) == [
        ("rule.fair_odds_edge", "value", "betmgm", edge(
            ML_HOME, "betmgm", "+115", 2.15, 0.483808, 2.0669, "+107", 0.040186, 0.034945,
            "consensus", ["betmgm", "draftkings", "fanduel"], 2.0)),
    ]


def test_fair_odds_from_a_sharp_book_needs_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(config(tmp_path, "  value: {type: fair_odds, method: sharp}"))
    assert "rules.value.sharp_book" in str(info.value)
    assert "is required when method is 'sharp'" in str(info.value)


async def test_arbitrage_closes_when_a_book_behind_it_removes_the_game(tmp_path: Path) -> None:
    got = await derive(tmp_path, "  arbs: {type: arbitrage, max_age: 60s}", [
        added("draftkings", 0, {OVER_220: "+110", UNDER_220: "-110"}),
        added("betmgm", 5, {O_220: "-120", U_220: "+105"}),
        removed("betmgm", 8),
    ])
    assert [(e.type, e.data["status"] if e.type == "rule.arbitrage" else e.data["reason"])
            for e in got] == [("rule.arbitrage", "open"),
                              ("rule.arbitrage_closed", "betmgm removed the game")]


# --- bounded state -----------------------------------------------------------------------

ALL_RULES = """\
  moves: {type: line_move, min_prob_change: 0.04, window: 10m}
  best: {type: best_line}
  steam: {type: steam, min_books: 2, window: 5m}
  arbs: {type: arbitrage, max_age: 60s}
  value: {type: fair_odds, min_edge: 0.02}"""


def rule_state(app: App) -> dict[str, int]:
    """How much each rule holds: games and lines in the shared book, open arbs."""
    book: PriceBook = app.rules["moves"].book  # type: ignore[attr-defined]
    assert all(rule.book is book for rule in app.rules.values())  # type: ignore[attr-defined]
    return {"games": len(book.games), "lines": book.lines, "books": len(book.by_book),
            "ids": len(book.by_uid), "arbs": len(app.rules["arbs"].open)}  # type: ignore


async def settled(app: App, expected: dict[str, int]) -> None:
    """Wait until the rules judged what was published (they do once the loop is free)."""
    await wait_until(lambda: rule_state(app) == expected, what=f"rule state {expected}")


async def test_removed_and_finished_games_leave_no_state_behind(tmp_path: Path) -> None:
    other, other_uid = "Boston Celtics vs New York Knicks, 2025-12-07, 19", "bos-nyk-1207"
    app = await start_app(config(tmp_path, ALL_RULES))
    try:
        for book in ("draftkings", "fanduel", "betmgm"):
            await app.publish(added(book, 0, {ML_HOME: "-150", ML_AWAY: "+130",
                                              OVER_220: "-110", UNDER_220: "-110"}))
        await app.publish(added("draftkings", 0, {}, other, other_uid))
        await app.publish(move("draftkings", 1, ML_HOME, "-150", "-130", other, other_uid))
        await app.publish(move("draftkings", 10, OVER_220, "-110", "+110"))
        await app.publish(move("betmgm", 20, UNDER_220, "-110", "+105"))
        await settled(app, {"games": 2, "lines": 13, "books": 3, "ids": 2, "arbs": 1})

        for book in ("betmgm", "fanduel", "draftkings"):
            await app.publish(removed(book, 30))
        await settled(app, {"games": 1, "lines": 1, "books": 1, "ids": 1, "arbs": 0})

        # the scores feed spells the game its own way: it is found by universal_id
        await app.publish(Event("game.status_changed", {"status": "final", "prev_status": "live"},
                                time=at(40), feed="scores", sport="NBA", game="Celtics @ Knicks",
                                universal_id=other_uid))
        await settled(app, {"games": 0, "lines": 0, "books": 0, "ids": 0, "arbs": 0})
    finally:
        await app.stop()
    assert [e.type for e in app.sinks["mem"].seen].count("rule.arbitrage_closed") == 1  # type: ignore


async def test_a_cleared_book_closes_its_arbitrages_and_leaves_no_lines(tmp_path: Path) -> None:
    nfl, nfl_uid = "Buffalo Bills vs Cincinnati Bengals, 2025-12-07, 13", "buf-cin-1207"
    app = await start_app(config(tmp_path, ALL_RULES))
    try:
        await app.publish(added("draftkings", 0, {OVER_220: "+110", UNDER_220: "-110"}))
        await app.publish(added("betmgm", 1, {O_220: "-120", U_220: "+105"}))
        nfl_game = added("betmgm", 2, {ML_HOME: "-150"}, nfl, nfl_uid)
        nfl_game.sport = "NFL"
        await app.publish(nfl_game)
        await settled(app, {"games": 2, "lines": 5, "books": 2, "ids": 2, "arbs": 1})
        # betmgm clears its NBA lines: the arbitrage goes, its NFL game stays
        await app.publish(Event("odds.sport_cleared", {"sport": "NBA", "sportsbook": "betmgm"},
                                time=at(3), feed="odds", sport="NBA", sportsbook="betmgm"))
        await settled(app, {"games": 2, "lines": 3, "books": 2, "ids": 2, "arbs": 0})
        await app.publish(Event("odds.book_cleared", {"sportsbook": "betmgm"}, time=at(4),
                                feed="odds", sportsbook="betmgm"))
        await settled(app, {"games": 1, "lines": 2, "books": 1, "ids": 1, "arbs": 0})
    finally:
        await app.stop()
    closed = [e for e in app.sinks["mem"].seen  # type: ignore[attr-defined]
              if e.type == "rule.arbitrage_closed"]
    assert [e.data["reason"] for e in closed] == ["betmgm removed the game"]


async def test_windows_keep_only_the_prices_they_need(tmp_path: Path) -> None:
    app = await start_app(config(tmp_path, ALL_RULES))
    try:
        await app.publish(added("draftkings", 0, {ML_HOME: "-150", ML_AWAY: "+130"}))
        odds = "-150"
        for minute in range(1, 241):             # four hours of small moves, once a minute
            new = "-152" if odds == "-150" else "-150"
            await app.publish(move("draftkings", 60 * minute, ML_HOME, odds, new))
            odds = new
        game = app.rules["moves"].book.games[GAME]  # type: ignore[attr-defined]
        kept = {name: game.states[rule.slot] for name, rule in app.rules.items()  # type: ignore
                if rule.slot in game.states}  # type: ignore[attr-defined]
        # line_move: the ten minutes of its window (plus the price in effect when it began)
        assert [len(h.points) for h in kept["moves"].values()] == [11]
        # steam: five minutes
        assert [len(h.points) for s in kept["steam"].values() for h in s.books.values()] == [6]
    finally:
        await app.stop()


def test_the_least_recently_updated_games_go_first_when_the_book_is_full() -> None:
    book = PriceBook(max_games=3)
    for i in range(5):
        book.apply(added("draftkings", i, {ML_HOME: "-150"}, f"Home{i} vs Away{i}, 2025-12-07, 20",
                         f"uid{i}"))
    book.apply(move("draftkings", 9, ML_HOME, "-150", "-160", "Home2 vs Away2, 2025-12-07, 20",
                    "uid2"))
    book.apply(added("draftkings", 10, {ML_HOME: "-150"}, "Home5 vs Away5, 2025-12-07, 20",
                     "uid5"))
    assert [g.split(" vs")[0] for g in book.games] == ["Home4", "Home2", "Home5"]
    assert (book.lines, len(book.by_uid), len(book.by_book["draftkings"])) == (3, 3, 3)


# --- markets and messages ---------------------------------------------------------------

async def test_a_three_way_market_is_an_arbitrage_only_with_the_draw_covered(
        tmp_path: Path) -> None:
    game, uid = "Arsenal vs Chelsea, 2025-12-07, 12", "ars-che-1207"
    home = Outcome("Arsenal Moneyline", "Moneyline", "Arsenal")
    away = Outcome("Chelsea Moneyline", "Moneyline", "Chelsea")
    draw = Outcome("Draw Moneyline", "Moneyline", "Draw")
    got = await derive(tmp_path, "  arbs: {type: arbitrage}", [
        # home +150 and away +200 alone imply 73 %, but the draw must be covered too
        added("draftkings", 0, {home: "+150", away: "-120", draw: "+230"}, game, uid),
        added("fanduel", 1, {home: "-110", away: "+200", draw: "+220"}, game, uid),
        move("fanduel", 2, draw, "+220", "+400", game, uid),
    ])
    assert [(e.data["status"], [(leg["side"], leg["sportsbook"], leg["stake"])
                                for leg in e.data["legs"]]) for e in got] == [
        ("open", [("away", "fanduel", 35.71), ("draw", "fanduel", 21.43),
                  ("home", "draftkings", 42.86)]),
    ]


async def test_spread_sides_make_an_arbitrage_only_on_the_same_handicap(
        tmp_path: Path) -> None:
    home = Outcome(f"{HOME} -3.5 Spread", "Spread", HOME, "-3.5")
    away = Outcome(f"{AWAY} +3.5 Spread", "Spread", AWAY, "+3.5")
    away_wider = Outcome(f"{AWAY} +4.5 Spread", "Spread", AWAY, "+4.5")
    got = await derive(tmp_path, "  arbs: {type: arbitrage}", [
        added("draftkings", 0, {home: "+110", away: "-130"}),
        added("betmgm", 1, {away_wider: "+150"}),          # +4.5 is not the other side of -3.5
        added("fanduel", 2, {away: "+105"}),
    ])
    assert [(e.data["status"], e.data["line"], e.data["books"]) for e in got] == [
        ("open", -3.5, ["draftkings", "fanduel"])]


async def test_line_move_does_not_compare_prices_of_different_lines(tmp_path: Path) -> None:
    spread = Outcome(f"{HOME} Spread", "Spread", HOME, "-3.5")
    moved_line = Outcome(spread.key, "Spread", HOME, "-4.5")     # same key, new handicap
    got = await derive(tmp_path, "  moves: {type: line_move, min_prob_change: 0.04}", [
        added("draftkings", 0, {spread: "-110"}),
        move("draftkings", 10, moved_line, "-110", "+105"),
        move("draftkings", 20, moved_line, "+105", "+130"),
    ])
    assert [(e.data["line"], e.data["old_odds"], e.data["new_odds"]) for e in got] == [
        ("-4.5", "+105", "+130")]


@pytest.mark.parametrize(("rule", "message"), [
    ("{type: line_move, min_prob_chang: 0.04}", "did you mean 'min_prob_change'"),
    ("{type: line_move, min_prob_change: 0}", "must be greater than 0"),
    ("{type: steam, min_books: 1}", "rules.s.min_books"),
    ("{type: fair_odds, devig: additive}", "multiplicative"),
    ("{type: arbitrage, max_age: soon}", "rules.s.max_age"),
])
def test_bad_rule_options_are_config_errors_that_say_what_is_valid(
        tmp_path: Path, rule: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_config(config(tmp_path, f"  s: {rule}"))
    assert message in str(info.value)


async def test_a_message_that_reprices_both_sides_shows_no_phantom_arbitrage_or_edge(
        tmp_path: Path) -> None:
    """The events of one upstream message arrive one by one; halfway through, a book's
    new over price sits beside its old under price (and a sharp book's new home price
    beside its old away price). Rules that compare sides wait for the whole message."""
    got = await derive(tmp_path, "  arbs: {type: arbitrage}\n"
                                 "  value: {type: fair_odds, sharp_book: pinnacle, "
                                 "min_edge: 0.01}", [
        added("draftkings", 0, {OVER_220: "-110", UNDER_220: "-110", ML_HOME: "-135"}),
        added("fanduel", 0, {OVER_220: "-105", UNDER_220: "-120"}),
        added("pinnacle", 0, {ML_HOME: "-150", ML_AWAY: "+130"}),     # -135: +0.9 %
        # one draftkings message: +115 beside the old -110 would imply 98.9 %
        move("draftkings", 10, OVER_220, "-110", "+115"),
        move("draftkings", 10, UNDER_220, "-110", "-140"),
        # one pinnacle message: -160 beside the old +130 would make -135 worth +2 %
        move("pinnacle", 20, ML_HOME, "-150", "-160"),
        move("pinnacle", 20, ML_AWAY, "+130", "+110"),
        move("fanduel", 30, UNDER_220, "-120", "+110"),       # a real arbitrage
        # two books reprice at the same instant: closed, with no other best price between
        move("draftkings", 40, OVER_220, "+115", "-120"),
        move("fanduel", 40, UNDER_220, "+110", "-120"),
    ])
    assert [(e.type, e.data.get("status"), e.data.get("books"), e.time) for e in got] == [
        ("rule.arbitrage", "open", ["draftkings", "fanduel"], at(30)),
        ("rule.arbitrage_closed", None, ["draftkings", "fanduel"], at(40))]


# --- the daemon ----------------------------------------------------------------------------

async def test_the_rules_run_on_the_simulators_odds_feed(tmp_path: Path) -> None:
    """The whole path: simulator -> odds feed -> odds board -> rules -> routes -> sink."""
    path = config(tmp_path, ALL_RULES + "\n  small: {type: line_move, min_prob_change: 0.005}")
    path.write_text(path.read_text() + "state_dir: state\n"
                    "simulator: {seed: 7, games: 8, updates_per_second: 400}\n")
    app = App(load_config(path))
    await app.start()
    try:
        seen = app.sinks["mem"].seen  # type: ignore[attr-defined]
        await wait_until(lambda: {"rule.line_move", "rule.best_line_changed"}
                         <= {e.type for e in seen}, 60, "line moves and best prices")
    finally:
        await app.stop()
    for event in seen:
        data = event.data
        assert event.feed in app.rules and event.game and event.sport, event
        if event.type == "rule.line_move":
            assert abs(data["change"]) >= (0.04 if event.feed == "moves" else 0.005) - 1e-6
            assert data["old_odds"] != data["new_odds"] and data["link"], data
        elif event.type == "rule.best_line_changed":
            assert data["best_books"] and data["best_decimal"] > 1, data
        elif event.type == "rule.arbitrage":
            assert data["implied"] < 1 and len({leg["side"] for leg in data["legs"]}) >= 2
            assert abs(sum(leg["stake"] for leg in data["legs"]) - 100) < 0.05


# --- a rule plugin -----------------------------------------------------------------------

async def test_the_example_rule_plugin_loads_from_plugins_dir_and_its_events_are_routed(
        tmp_path: Path) -> None:
    recording = write_jsonl(tmp_path / "lines.jsonl", [
        added("draftkings", 0, {ML_HOME: "+105", ML_AWAY: "-125"}),
        move("draftkings", 10, ML_HOME, "+105", "+100"),       # still not the favourite
        move("draftkings", 20, ML_HOME, "+100", "-110"),       # now it is
        move("draftkings", 30, ML_AWAY, "-125", "-105"),       # a favourite still
        move("draftkings", 40, ML_AWAY, "-105", "+100"),       # even money: an underdog now
    ])
    cfg = write_config(tmp_path, """
sinks:
  archive: {type: sqlite, path: archive.db, flush_interval: 50ms}
rules:
  flips: {type: underdog_alert}
routes:
  - {name: flips, when: {type: rule.underdog_alert}, to: archive}
""")
    result = boltrouter("replay", "--config", str(cfg), str(recording))
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(tmp_path / "archive.db")
    try:
        rows = conn.execute("SELECT type, feed, sportsbook, game, data FROM events "
                            "ORDER BY time").fetchall()
    finally:
        conn.close()
    assert [(t, f, b, g, orjson.loads(d)) for t, f, b, g, d in rows] == [
        ("rule.underdog_alert", "flips", "draftkings", GAME, {
            **fields(ML_HOME), "old_odds": "+100", "new_odds": "-110", "old_prob": 0.5,
            "new_prob": 0.52381, "direction": "favourite", "link": link("draftkings", ML_HOME)}),
        ("rule.underdog_alert", "flips", "draftkings", GAME, {
            **fields(ML_AWAY), "old_odds": "-105", "new_odds": "+100", "old_prob": 0.512195,
            "new_prob": 0.5, "direction": "underdog", "link": link("draftkings", ML_AWAY)}),
    ]
    listed = boltrouter("plugins", "--config", str(cfg))
    assert "underdog_alert" in listed.stdout, listed.stdout + listed.stderr
