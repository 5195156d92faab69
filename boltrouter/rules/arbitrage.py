"""``arbitrage``: the best prices across books for every side of a market imply < 100 %.

Only complete markets count: both sides of a total on the same line (``O 220.5``
with ``U 220.5``, never ``U 221.5``), both sides of a spread on the same
handicap (home -3.5 with away +3.5, never away +4.5), home and away of a
moneyline plus the draw wherever a draw is offered. Prices not updated within
``max_age`` are not used. ``rule.arbitrage`` announces an arb when it opens
(``status: open``) and when it changes materially (``status: changed``: other
books, or the profit moved by ``min_change``); ``rule.arbitrage_closed`` says
when and why it ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .. import hookimpl
from ..config import Field
from ..events import Event, short_hash
from ..odds import arbitrage
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

ARBITRAGE = "rule.arbitrage"
ARBITRAGE_CLOSED = "rule.arbitrage_closed"
MAX_OPEN = 10_000
SWEEP_EVERY = 1.0


@dataclass(slots=True)
class Open:
    """An arbitrage that was announced and has not closed yet."""

    arb_id: str
    game: GameBook
    market: Market
    name: str | None        # the market as upstream names it
    legs: list[tuple[str, Price]]
    profit_pct: float
    opened: float
    opened_time: str


class Arbitrage(MarketRule):
    options_schema: ClassVar[dict[str, Field]] = {
        "bankroll": Field(float, default=100.0, check=positive,
                          help="total stake the per-side stakes are computed for"),
        "max_age": Field("duration", default=60.0, check=positive,
                         help="prices not updated for this long are not used"),
        "min_profit": Field(float, default=0.0, min=0,
                            help="smallest profit to report, as a fraction (0.01 = 1 %)"),
        "min_change": Field(float, default=0.001, min=0,
                            help="profit change (fraction) that counts as a material change"),
        **FILTER_OPTIONS,
    }
    emits: ClassVar[dict[str, str]] = {
        ARBITRAGE: "Best prices across books for every side of a market imply less than "
                   "100 %: stakes per side for the bankroll and the profit.",
        ARBITRAGE_CLOSED: "An announced arbitrage is gone (prices moved, a price went "
                          "stale or was suspended, or the game was removed).",
    }

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.bankroll = float(options.get("bankroll", 100.0))
        self.max_age = float(options.get("max_age", 60.0))
        self.min_profit = float(options.get("min_profit", 0.0))
        self.min_change = float(options.get("min_change", 0.001))
        self.open: dict[tuple[str, tuple[Any, ...]], Open] = {}
        self.last_sweep = 0.0

    def handle(self, change: Change, event: Event, out: list[Event]) -> None:
        removed = None
        if change.kind == "removed":
            removed = "game removed" if change.gone else f"{change.book} removed the game"
        self.note(change, event, removed)

    def review(self, pending: list[Pending], out: list[Event]) -> None:
        for item in pending:
            self._evaluate(item.game, item.market, item.now, item.source, out, item.removed)
        if self.open and self.last is not None:
            event, now = self.last
            if now - self.last_sweep >= SWEEP_EVERY:
                self.last_sweep = now
                self._sweep(event, now, out)

    def _sweep(self, event: Event, now: float, out: list[Event]) -> None:
        """Re-check open arbs whose game is gone or whose legs are getting old."""
        for arb in list(self.open.values()):
            current = self.book.games.get(arb.game.game)
            if current is not arb.game:
                self._close(arb, "game removed", now, event, out)
            elif any(now - price.t > self.max_age for _, price in arb.legs):
                market = arb.game.markets.get(arb.market.key)
                if market is None:
                    self._close(arb, "line suspended or removed", now, event, out)
                else:
                    self._evaluate(arb.game, market, now, event, out)

    def _evaluate(self, gb: GameBook, market: Market, now: float, event: Event,
                  out: list[Event], removed: str | None = None) -> None:
        key = (gb.game, market.key)
        legs, reason = self._legs(gb, market, now)
        known = self.open.get(key)
        if legs is None:
            if known is not None:
                self._close(known, removed or reason, now, event, out)
            return
        result = arbitrage([p.decimal for _, p in legs], self.bankroll)
        if result.profit_pct <= 0.0 or result.profit_pct < self.min_profit:
            if known is not None:
                self._close(known, removed or ("prices moved: no longer an arbitrage"
                                               if result.profit_pct <= 0.0
                                               else "profit below min_profit"),
                            now, event, out)
            return
        if known is None:
            if len(self.open) >= MAX_OPEN:
                return
            known = self.open[key] = Open(short_hash(gb.game, market.key, event.time), gb, market,
                                          market.sides[legs[0][0]].market, legs,
                                          result.profit_pct, now, event.time)
            status = "open"
        else:
            same_books = [(s, p.book) for s, p in legs] == [(s, p.book) for s, p in known.legs]
            material = not same_books or abs(result.profit_pct - known.profit_pct) \
                >= self.min_change - 1e-12
            known.legs, known.market = legs, market
            if not material:
                return
            known.profit_pct = result.profit_pct
            status = "changed"
        out.append(self.emit(ARBITRAGE, event, gb, self._data(known, result, status, now)))

    def _legs(self, gb: GameBook, market: Market,
              now: float) -> tuple[list[tuple[str, Price]] | None, str]:
        """The best fresh price of every side, or None and why there is none."""
        if market.kind == "other" or not gb.complete(market) or not self.markets(market.name):
            return None, "line suspended or removed"
        legs = []
        for name in sorted(market.sides):
            best: Price | None = None
            stale = False
            for book, price in market.sides[name].prices.items():
                if price is None or not self.sportsbooks(book):
                    continue
                if now - price.t > self.max_age:
                    stale = True
                    continue
                if best is None or price.decimal > best.decimal + 1e-12 or (
                        abs(price.decimal - best.decimal) <= 1e-12 and book < best.book):
                    best = price
            if best is None:
                return None, "price too old" if stale else "line suspended or removed"
            legs.append((name, best))
        return legs, ""

    def _data(self, arb: Open, result: Any, status: str, now: float) -> dict[str, Any]:
        legs = []
        for (name, price), stake in zip(arb.legs, result.stakes):
            side = arb.market.sides[name]
            leg = side_fields(side, price.outcome)
            leg.update({
                "side": name, "sportsbook": price.book, "odds": price.odds,
                "decimal": rounded(price.decimal, 4), "prob": rounded(price.prob),
                "stake": round(stake, 2), "payout": round(stake * price.decimal, 2),
                "link": price.link, "age": age(now, price),
            })
            legs.append(leg)
        return {
            "arb_id": arb.arb_id, "status": status, "market": arb.name,
            "kind": arb.market.kind, "line": self._line(arb.market),
            "books": sorted({p.book for _, p in arb.legs}), "legs": legs,
            "implied": rounded(result.implied), "profit_pct": round(result.profit_pct * 100, 4),
            "profit": round(result.profit, 2), "bankroll": self.bankroll,
            "payout": round(result.payout, 2), "opened": arb.opened_time,
            "data_age": age(now, *(p for _, p in arb.legs)),
        }

    def _close(self, arb: Open, reason: str, now: float, event: Event,
               out: list[Event]) -> None:
        self.open.pop((arb.game.game, arb.market.key), None)
        data = {
            "arb_id": arb.arb_id, "market": arb.name, "kind": arb.market.kind,
            "line": self._line(arb.market), "reason": reason, "opened": arb.opened_time,
            "duration": round(max(0.0, now - arb.opened), 3),
            "last_profit_pct": round(arb.profit_pct * 100, 4),
            "books": sorted({p.book for _, p in arb.legs}),
        }
        out.append(self.emit(ARBITRAGE_CLOSED, event, arb.game, data))

    @staticmethod
    def _line(market: Market) -> Any:
        """The line of the market: the total, or the handicap as seen from the home team."""
        return market.key[-1] if market.kind in ("total", "spread") else None


@hookimpl
def register_rule_types(register: Any) -> None:
    register("arbitrage", Arbitrage)


@hookimpl
def register_event_types(register: Any) -> None:
    for etype, description in Arbitrage.emits.items():
        register(etype, description)
