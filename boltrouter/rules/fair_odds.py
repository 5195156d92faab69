"""``fair_odds``: the fair (no-vig) probability of each outcome and every book's edge.

The fair probabilities of a market come either from one ``sharp_book`` (its
prices with the margin removed) or from the consensus: the average of the no-vig
probabilities of every book pricing the whole market. The edge of a price is
its expected value per unit staked against the fair probability. The rule emits
``rule.fair_odds_edge`` when a book's edge rises to ``min_edge`` or above, once
per crossing: it re-arms when the edge falls back below.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hookimpl
from ..config import Field
from ..events import Event
from ..odds import NO_VIG_METHODS, expected_value, format_american, kelly, no_vig, prob_to_american
from .market import (
    FILTER_OPTIONS,
    Change,
    GameBook,
    Market,
    MarketRule,
    Pending,
    Price,
    age,
    positive,
    rounded,
    side_fields,
)

FAIR_ODDS_EDGE = "rule.fair_odds_edge"


class FairOdds(MarketRule):
    options_schema: ClassVar[dict[str, Field]] = {
        "method": Field(str, choices=("consensus", "sharp"),
                        help="where fair odds come from (default: sharp when sharp_book is set)"),
        "sharp_book": Field(str, help="the book whose no-vig prices are the fair odds"),
        "devig": Field(str, default="multiplicative", choices=NO_VIG_METHODS,
                       help="how the margin is removed"),
        "min_edge": Field(float, default=0.02, check=positive,
                          help="expected value per unit staked that is reported (0.02 = 2 %)"),
        "min_books": Field(int, default=2, min=1,
                           help="consensus: books that must price the whole market"),
        "max_age": Field("duration", default=600.0, check=positive,
                         help="prices not updated for this long are not used"),
        **FILTER_OPTIONS,
    }
    emits: ClassVar[dict[str, str]] = {
        FAIR_ODDS_EDGE: "A book's price has an edge of at least min_edge against the fair "
                        "(no-vig) probability.",
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
        if options.get("method") == "sharp" and not options.get("sharp_book"):
            return [(("sharp_book",), "is required when method is 'sharp' "
                                      "(name the book to trust, e.g. pinnacle)")]
        return []

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.sharp = options.get("sharp_book") or None
        method = options.get("method") or ("sharp" if self.sharp else "consensus")
        self.method = method
        if method == "consensus":
            self.sharp = None
        self.devig = options.get("devig") or "multiplicative"
        self.min_edge = float(options.get("min_edge", 0.02)) - 1e-12
        self.min_books = int(options.get("min_books", 2))
        self.max_age = float(options.get("max_age", 600.0))

    def handle(self, change: Change, event: Event, out: list[Event]) -> None:
        if change.kind == "removed":
            above: dict[tuple[Any, ...], bool] = change.game.state(self.slot, dict)
            for key in [k for k in above if k[2] == change.book]:
                del above[key]
        self.note(change, event)

    def review(self, pending: list[Pending], out: list[Event]) -> None:
        for item in pending:
            gb, market = item.game, item.market
            if market.kind == "other" or not gb.complete(market) \
                    or not self.markets(market.name):
                continue
            self._market(gb, market, item.now, gb.state(self.slot, dict), item.source, out)

    def _devig(self, probs: list[float]) -> list[float]:
        if self.devig == "multiplicative":
            total = sum(probs)
            return [p / total for p in probs]
        return no_vig(probs, self.devig)

    def _fair(self, market: Market, names: list[str],
              now: float) -> tuple[list[float], list[Price]] | None:
        """Fair probability per side and the prices it came from."""
        sides = [market.sides[n].prices for n in names]
        if self.sharp is not None:
            books, needed = [self.sharp], 1
        else:
            books = sorted({b for s in sides for b in s if self.sportsbooks(b)})
            needed = self.min_books
        totals = [0.0] * len(names)
        used: list[Price] = []
        count = 0
        for book in books:
            prices = [s.get(book) for s in sides]
            if any(p is None or now - p.t > self.max_age for p in prices):
                continue
            got = [p for p in prices if p is not None]
            for i, fair in enumerate(self._devig([p.prob for p in got])):
                totals[i] += fair
            used.extend(got)
            count += 1
        if count < needed:
            return None
        total = sum(totals)
        return [t / total for t in totals], used

    def _market(self, gb: GameBook, market: Market, now: float,
                above: dict[tuple[Any, ...], bool], event: Event, out: list[Event]) -> None:
        names = sorted(market.sides)
        found = self._fair(market, names, now)
        if found is None:
            return
        fair, used = found
        for name, fair_prob in zip(names, fair):
            side = market.sides[name]
            needed = (1.0 + self.min_edge) / fair_prob   # the lowest decimal price with an edge
            for book, price in side.prices.items():
                if price is None or book == self.sharp or now - price.t > self.max_age \
                        or not self.sportsbooks(book):
                    continue
                key = (market.key, name, book)
                if price.decimal < needed:
                    if above:
                        above.pop(key, None)
                    continue
                if above.get(key):
                    continue
                above[key] = True
                edge = expected_value(price.decimal, fair_prob)
                data = side_fields(side, price.outcome)
                data.update({
                    "odds": price.odds, "decimal": rounded(price.decimal, 4),
                    "prob": rounded(price.prob), "fair_prob": rounded(fair_prob),
                    "fair_decimal": rounded(1.0 / fair_prob, 4),
                    "fair_odds": format_american(prob_to_american(fair_prob)),
                    "edge": rounded(edge), "edge_pct": round(edge * 100, 4),
                    "kelly": rounded(kelly(price.decimal, fair_prob)),
                    "method": self.method, "devig": self.devig,
                    "sources": sorted({p.book for p in used}), "link": price.link,
                    "data_age": age(now, price, *used),
                })
                out.append(self.emit(FAIR_ODDS_EDGE, event, gb, data, sportsbook=book))


@hookimpl
def register_rule_types(register: Any) -> None:
    register("fair_odds", FairOdds)


@hookimpl
def register_event_types(register: Any) -> None:
    for etype, description in FairOdds.emits.items():
        register(etype, description)
