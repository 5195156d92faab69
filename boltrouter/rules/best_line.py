"""``best_line``: the best price for an outcome across sportsbooks changed.

The best price is the highest decimal price (so -105 beats -110 and +120 beats
+110). The rule announces a new best price, or a new set of books offering it;
removals and clears do not announce anything by themselves: the next price of
that outcome is compared with the last best announced.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hookimpl
from ..config import Field
from ..events import Event
from .market import FILTER_OPTIONS, BookRule, Change, Price, Side, age, rounded, side_fields

BEST_LINE_CHANGED = "rule.best_line_changed"


class BestLine(BookRule):
    options_schema: ClassVar[dict[str, Field]] = {
        "initial": Field(bool, default=False,
                         help="also announce the first best price of an outcome"),
        "max_age": Field("duration", default=0.0,
                         help="ignore prices not updated for this long (0 = use every price)"),
        **FILTER_OPTIONS,
    }
    emits: ClassVar[dict[str, str]] = {
        BEST_LINE_CHANGED: "The best price for an outcome across sportsbooks changed "
                           "(price or books offering it).",
    }

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.initial = bool(options.get("initial", False))
        self.max_age = float(options.get("max_age") or 0.0)

    def handle(self, change: Change, event: Event, out: list[Event]) -> None:
        if change.kind == "removed":
            return
        announced: dict[tuple[Any, ...], tuple[float, tuple[str, ...], str]] = \
            change.game.state(self.slot, dict)
        seen = set()
        for touch in change.touched:
            side = touch.side
            key = (touch.market.key, side.name)
            if key in seen or not self.markets(side.market):
                continue
            seen.add(key)
            best = self._best(side, change.now)
            if not best:
                continue
            top = best[0]
            books = tuple(p.book for p in best)
            previous = announced.get(key)
            announced[key] = (top.decimal, books, top.odds)
            if previous is None:
                if not self.initial:
                    continue
            elif abs(previous[0] - top.decimal) < 1e-9 and previous[1] == books:
                continue
            data = side_fields(side, top.outcome)
            data.update({
                "best_books": list(books), "best_odds": top.odds,
                "best_decimal": rounded(top.decimal, 4), "best_prob": rounded(top.prob),
                "previous_books": list(previous[1]) if previous else [],
                "previous_odds": previous[2] if previous else None,
                "previous_decimal": rounded(previous[0], 4) if previous else None,
                "improved": previous is None or top.decimal > previous[0] + 1e-9,
                "books": sum(1 for b, p in side.prices.items()
                             if p is not None and self.sportsbooks(b)),
                "link": top.link, "links": {p.book: p.link for p in best},
                "data_age": age(change.now, *best),
            })
            out.append(self.emit(BEST_LINE_CHANGED, event, change.game, data))

    def _best(self, side: Side, now: float) -> list[Price]:
        """Every price tied for the best, by book name."""
        best: list[Price] = []
        top = 0.0
        for book, price in side.prices.items():
            if price is None or not self.sportsbooks(book):
                continue
            if self.max_age and now - price.t > self.max_age:
                continue
            if price.decimal > top + 1e-9:
                top, best = price.decimal, [price]
            elif price.decimal > top - 1e-9:
                best.append(price)
        best.sort(key=lambda p: p.book)
        return best


@hookimpl
def register_rule_types(register: Any) -> None:
    register("best_line", BestLine)


@hookimpl
def register_event_types(register: Any) -> None:
    for etype, description in BestLine.emits.items():
        register(etype, description)
