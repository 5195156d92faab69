"""``steam``: several sportsbooks move the same outcome the same way at once.

For every outcome of a game the rule tracks, per book, the prices in effect
during the last ``window``. A book "moved" when its price now differs from its
price at the start of the window by at least ``min_move`` of implied
probability. When at least ``min_books`` books moved the same way, the rule
emits ``rule.steam``, at most once per ``window`` per outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import hookimpl
from ..config import Field
from ..events import Event
from .market import FILTER_OPTIONS, BookRule, Change, History, age, positive, rounded, side_fields

STEAM = "rule.steam"


@dataclass(slots=True)
class Outcome:
    books: dict[str, History] = field(default_factory=dict)
    fired: float | None = None


class Steam(BookRule):
    options_schema: ClassVar[dict[str, Field]] = {
        "min_books": Field(int, default=3, min=2, help="books that must move the same way"),
        "window": Field("duration", default=300.0, check=positive,
                        help="how close together the moves must be"),
        "min_move": Field(float, default=0.01, check=positive,
                          help="implied-probability move a book must make to count"),
        **FILTER_OPTIONS,
    }
    emits: ClassVar[dict[str, str]] = {
        STEAM: "At least min_books sportsbooks moved the same outcome the same way "
               "within the window.",
    }

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.min_books = int(options.get("min_books", 3))
        self.window = float(options.get("window", 300.0))
        self.min_move = float(options.get("min_move", 0.01)) - 1e-12

    def handle(self, change: Change, event: Event, out: list[Event]) -> None:
        book = change.book
        if change.kind == "removed":
            for state in (change.game.states.get(self.slot) or {}).values():
                state.books.pop(book, None)
            return
        if change.kind != "line" or not self.sportsbooks(book):
            return
        touch = change.touched[0]
        new = touch.new
        if new is None or not self.markets(touch.side.market):
            return
        outcomes: dict[tuple[Any, ...], Outcome] = change.game.state(self.slot, dict)
        key = (touch.market.key, touch.side.name)
        state = outcomes.get(key)
        if state is None:
            state = outcomes[key] = Outcome()
        history = state.books.get(book)
        if history is None:
            history = state.books[book] = History()
        history.push(new, self.window, touch.old)

        now = change.now
        start = now - self.window
        up: list[tuple[str, History]] = []
        down: list[tuple[str, History]] = []
        for name, hist in list(state.books.items()):
            if hist.last.t < start:
                del state.books[name]  # no price change within the window: not moving
                continue
            moved = hist.last.prob - hist.at(start).prob
            if moved >= self.min_move:
                up.append((name, hist))
            elif moved <= -self.min_move:
                down.append((name, hist))
        mine = new.prob - history.at(start).prob
        if abs(mine) < self.min_move:
            return  # this update did not make its book part of a move
        group, direction = (up, "up") if mine > 0 else (down, "down")
        if len(group) < self.min_books:
            return
        if state.fired is not None and now - state.fired < self.window:
            return
        state.fired = now
        moves = []
        for name, hist in sorted(group, key=lambda item: (item[1].last.t, item[0])):
            first, last = hist.at(start), hist.last
            moves.append({
                "sportsbook": name, "outcome": last.outcome,
                "old_odds": first.odds, "new_odds": last.odds,
                "old_prob": rounded(first.prob), "new_prob": rounded(last.prob),
                "move": rounded(last.prob - first.prob), "time": last.time, "link": last.link,
            })
        data = side_fields(touch.side, new.outcome)
        data.update({
            "direction": direction, "count": len(moves), "books": moves,
            "avg_move": rounded(sum(m["move"] for m in moves) / len(moves)),
            "window": self.window, "link": new.link,
            "data_age": age(now, *(hist.last for _, hist in group)),
        })
        out.append(self.emit(STEAM, event, change.game, data))


@hookimpl
def register_rule_types(register: Any) -> None:
    register("steam", Steam)


@hookimpl
def register_event_types(register: Any) -> None:
    for etype, description in Steam.emits.items():
        register(etype, description)
