"""``line_move``: one book moved one outcome's implied probability past a threshold.

For every (sportsbook, game, outcome) the rule remembers the prices in effect
during the last ``window``. When a new price differs from any of them by at
least ``min_prob_change`` it emits ``rule.line_move`` once, compared with the
price furthest away, and re-arms from the new level. An outcome whose line
changes under the same key (a spread from -3.5 to -4.5) starts afresh: prices
of different lines are not comparable.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hookimpl
from ..config import Field
from ..events import Event
from .market import FILTER_OPTIONS, BookRule, Change, History, age, positive, rounded, side_fields

LINE_MOVE = "rule.line_move"


class LineMove(BookRule):
    options_schema: ClassVar[dict[str, Field]] = {
        "min_prob_change": Field(float, default=0.03, check=positive,
                                 help="implied-probability change that counts (0.03 = 3 points)"),
        "window": Field("duration", default=600.0, check=positive,
                        help="how far back a price still counts as the starting level"),
        **FILTER_OPTIONS,
    }
    emits: ClassVar[dict[str, str]] = {
        LINE_MOVE: "One book moved an outcome's implied probability past min_prob_change "
                   "within the window.",
    }

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.threshold = float(options.get("min_prob_change", 0.03)) - 1e-12
        self.window = float(options.get("window", 600.0))

    def handle(self, change: Change, event: Event, out: list[Event]) -> None:
        book = change.book
        if change.kind == "removed":
            histories = change.game.states.get(self.slot)
            if histories:
                for key in [k for k in histories if k[0] == book]:
                    del histories[key]
            return
        if change.kind != "line" or not self.sportsbooks(book):
            return
        touch = change.touched[0]
        new = touch.new
        if new is None or not self.markets(touch.side.market):
            return
        histories: dict[tuple[Any, ...], History] = change.game.state(self.slot, dict)
        key = (book, new.outcome, touch.market.key)
        history = histories.get(key)
        if history is None:
            history = histories[key] = History()
        history.push(new, self.window, touch.old)
        reference = None
        biggest = 0.0
        for point in history.points:
            moved = abs(new.prob - point.prob)
            if moved > biggest:
                biggest, reference = moved, point
        if reference is None or biggest < self.threshold:
            return
        history.reset(new)
        moved = new.prob - reference.prob
        data = side_fields(touch.side, new.outcome)
        data.update({
            "old_odds": reference.odds, "new_odds": new.odds,
            "old_prob": rounded(reference.prob), "new_prob": rounded(new.prob),
            "old_decimal": rounded(reference.decimal, 4), "new_decimal": rounded(new.decimal, 4),
            "change": rounded(moved), "direction": "up" if moved > 0 else "down",
            "since": reference.time, "seconds": round(max(0.0, new.t - reference.t), 3),
            "window": self.window, "link": new.link, "data_age": age(change.now, new),
        })
        out.append(self.emit(LINE_MOVE, event, change.game, data, sportsbook=book))


@hookimpl
def register_rule_types(register: Any) -> None:
    register("line_move", LineMove)


@hookimpl
def register_event_types(register: Any) -> None:
    for etype, description in LineMove.emits.items():
        register(etype, description)
