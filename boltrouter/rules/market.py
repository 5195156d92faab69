"""What the odds rules share: a compact price book kept from the odds events.

The book holds, per game, its markets (outcomes grouped with
``boltrouter.odds.selection_of``), per market its sides, and per side the current
price of every sportsbook. One book is shared by all rules of an app and applied
once per event, whichever rule sees the event first. Every lookup is by game,
then market, then side, so the cost of an update does not grow with the number
of games tracked; the number of games and lines is capped (least recently
updated games go first) and games disappear when every book removed them,
when their book or sport is cleared, or when they end.

The events of one upstream message arrive one at a time, and in between a book's
market is half old, half new: a moved home price beside the away price the same
message replaces next. Rules that compare the sides of a market (``MarketRule``)
therefore judge a market only once every change of that game with the same
timestamp is applied (one message, or several books repricing at the same
instant): when an event of another game or time comes, or when the event loop
is idle again, whichever comes first.
"""

from __future__ import annotations

import fnmatch
import itertools
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from .. import events as ev
from ..config import Field
from ..events import Event
from ..odds import Selection, american_to_decimal, parse_american, selection_of, teams_of
from ..rule import Rule

MAX_GAMES = 20_000
MAX_LINES = 2_000_000

ODDS_EVENTS = (
    ev.ODDS_GAME_ADDED, ev.ODDS_LINE_CHANGED, ev.ODDS_LINE_SUSPENDED, ev.ODDS_LINE_RESTORED,
    ev.ODDS_GAME_REMOVED, ev.ODDS_SPORT_CLEARED, ev.ODDS_BOOK_CLEARED, ev.GAME_STATUS_CHANGED,
)
"""The event types a rule built on the price book consumes."""

_LINE_EVENTS = frozenset({ev.ODDS_LINE_CHANGED, ev.ODDS_LINE_SUSPENDED, ev.ODDS_LINE_RESTORED})


# --- time ----------------------------------------------------------------------------

_last_time: tuple[str, float] = ("", 0.0)


def event_seconds(event: Event) -> float:
    """The event's ``time`` as epoch seconds (the feed's clock, not the local one)."""
    global _last_time
    text = event.time
    if text == _last_time[0]:
        return _last_time[1]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        parsed = ev.parse_time(text)
        dt = parsed if parsed is not None else ev.utcnow()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    seconds = dt.timestamp()
    _last_time = (text, seconds)
    return seconds


# --- the book ------------------------------------------------------------------------

@dataclass(slots=True)
class Price:
    """The current price of one outcome at one sportsbook."""

    book: str
    odds: str              # American odds, exactly as upstream sent them
    decimal: float
    prob: float
    t: float               # epoch seconds of the event that set this price
    time: str              # the same instant as ISO 8601
    outcome: str           # upstream outcome key
    link: str | None


@dataclass(slots=True)
class Side:
    """One side of a market (home, over, draw, ...) with every book's price."""

    name: str
    market: str | None     # upstream outcome_name
    target: str | None
    line: Any
    over_under: str | None
    prices: dict[str, Price | None] = field(default_factory=dict)
    """book -> price; None while the book has the line suspended."""


@dataclass(slots=True)
class Market:
    key: tuple[Any, ...]
    kind: str
    name: str
    sides: dict[str, Side] = field(default_factory=dict)


@dataclass(slots=True)
class GameBook:
    """Everything known about one game's odds."""

    game: str
    sport: str | None
    home: str | None
    away: str | None
    universal_id: str | None
    markets: dict[tuple[Any, ...], Market] = field(default_factory=dict)
    books: dict[str, dict[str, tuple[Market, Side]]] = field(default_factory=dict)
    """book -> outcome key -> where that outcome lives."""
    three_way: set[str] = field(default_factory=set)
    """Market names in which a draw is offered: their home/away sides alone are not complete."""
    states: dict[int, Any] = field(default_factory=dict)
    """Rule-private state, by rule slot; dropped with the game."""

    def state(self, slot: int, factory: Any) -> Any:
        found = self.states.get(slot)
        if found is None:
            found = self.states[slot] = factory()
        return found

    def complete(self, market: Market) -> bool:
        """True when ``market`` holds every side a bettor must cover."""
        sides = market.sides
        if market.kind == "total":
            return len(sides) == 2 and "over" in sides and "under" in sides
        if market.kind == "moneyline":
            if "home" not in sides or "away" not in sides:
                return False
            return "draw" in sides or market.name not in self.three_way
        if market.kind == "spread":
            return len(sides) == 2 and market.name not in self.three_way
        return False


@dataclass(slots=True)
class Touch:
    """One side of one market whose price at ``Change.book`` changed."""

    market: Market
    side: Side
    old: Price | None
    new: Price | None


@dataclass(slots=True)
class Change:
    """What one event did to one game at one book."""

    kind: str              # "line" (one outcome), "added" (a book's whole game), "removed"
    game: GameBook
    book: str
    now: float
    touched: list[Touch]
    gone: bool = False
    """The game is no longer in the book at all (every book removed it, or it ended)."""


class PriceBook:
    def __init__(self, max_games: int = MAX_GAMES, max_lines: int = MAX_LINES) -> None:
        self.games: dict[str, GameBook] = {}
        self.by_book: dict[str, set[str]] = {}
        self.by_uid: dict[str, str] = {}
        self.lines = 0
        self.max_games = max_games
        self.max_lines = max_lines
        self._last_event: Event | None = None
        self._last_changes: list[Change] = []
        self._message: tuple[str | None, str] | None = None
        self.settlers: weakref.WeakSet[MarketRule] = weakref.WeakSet()
        """Rules to settle before the first event of the next message is applied."""

    def __len__(self) -> int:
        return self.lines

    def apply(self, event: Event) -> list[Change]:
        """Apply an event once (later calls with the same event return the same changes)."""
        if event is self._last_event:
            return self._last_changes
        message = (event.game, event.time)
        if message != self._message:
            self._message = message
            for rule in list(self.settlers):
                rule.settle()
        changes = self._apply(event)
        self._last_event, self._last_changes = event, changes
        return changes

    def _apply(self, event: Event) -> list[Change]:
        etype = event.type
        book = event.sportsbook
        if etype in _LINE_EVENTS:
            if not book or not event.game:
                return []
            return self._line(event, book)
        if etype == ev.ODDS_GAME_ADDED:
            if not book or not event.game:
                return []
            return self._added(event, book)
        now = event_seconds(event)
        if etype == ev.ODDS_GAME_REMOVED:
            gb = self.games.get(event.game or "")
            if gb is None or not book:
                return []
            return [self._remove_book(gb, book, now)]
        if etype == ev.ODDS_BOOK_CLEARED:
            book = book or event.data.get("sportsbook")
            return [self._remove_book(self.games[g], book, now)
                    for g in sorted(self.by_book.get(book, ()))]
        if etype == ev.ODDS_SPORT_CLEARED:
            book = book or event.data.get("sportsbook")
            sport = event.sport or event.data.get("sport")
            return [self._remove_book(self.games[g], book, now)
                    for g in sorted(self.by_book.get(book, ()))
                    if self.games[g].sport == sport]
        if etype == ev.GAME_STATUS_CHANGED and event.data.get("status") == "final":
            name = self.by_uid.get(event.universal_id or "") or event.game or ""
            gb = self.games.get(name)
            if gb is None:
                return []
            return [self._remove_book(gb, b, now) for b in sorted(gb.books)]
        return []

    # -- updates ----------------------------------------------------------------------

    def _game(self, event: Event) -> GameBook:
        name = event.game or ""
        gb = self.games.pop(name, None)
        if gb is None:
            home, away = event.home, event.away
            if not home or not away:
                home, away = teams_of(name)
            gb = GameBook(name, event.sport, home, away, event.universal_id)
            if event.universal_id:
                self.by_uid[event.universal_id] = name
        self.games[name] = gb  # most recently updated last
        return gb

    def _price(self, event: Event, book: str, now: float, odds: Any, outcome: str,
               link: Any) -> Price | None:
        american = parse_american(odds)
        if american is None:
            return None
        decimal = american_to_decimal(american)
        return Price(book, str(odds), decimal, 1.0 / decimal, now, event.time, outcome,
                     link if isinstance(link, str) else None)

    def _place(self, gb: GameBook, book: str, outcome: str,
               data: dict[str, Any]) -> tuple[Market, Side]:
        entries = gb.books.get(book)
        if entries is None:
            entries = gb.books[book] = {}
            self.by_book.setdefault(book, set()).add(gb.game)
        found = entries.get(outcome)
        line = data.get("line")
        market_name = data.get("market")
        target = data.get("target")
        if found is not None:
            side = found[1]
            if side.line == line and side.target == target and side.market == market_name:
                return found
            self._drop_entry(gb, book, outcome)
        sel: Selection = selection_of(market_name, target, line, data.get("over_under"),
                                      gb.home, gb.away)
        market = gb.markets.get(sel.market_key)
        if market is None:
            market = gb.markets[sel.market_key] = Market(sel.market_key, sel.kind,
                                                          sel.market_key[0])
        side = market.sides.get(sel.side)
        if side is None:
            side = market.sides[sel.side] = Side(
                sel.side, market_name, target, line,
                "Over" if sel.side == "over" else "Under" if sel.side == "under"
                else data.get("over_under"))
        if sel.side == "draw":
            gb.three_way.add(market.name)
        entries[outcome] = (market, side)
        self.lines += 1
        return market, side

    def _drop_entry(self, gb: GameBook, book: str, outcome: str) -> tuple[Market, Side] | None:
        entries = gb.books.get(book)
        found = entries.pop(outcome, None) if entries else None
        if found is None:
            return None
        market, side = found
        side.prices.pop(book, None)
        self.lines -= 1
        if not side.prices:
            del market.sides[side.name]
            if not market.sides:
                del gb.markets[market.key]
        return found

    def _line(self, event: Event, book: str) -> list[Change]:
        now = event_seconds(event)
        data = event.data
        outcome = data.get("outcome")
        if not isinstance(outcome, str):
            return []
        gb = self._game(event)
        market, side = self._place(gb, book, outcome, data)
        old = side.prices.get(book)
        new = self._price(event, book, now, data.get("new_odds"), outcome, data.get("link"))
        side.prices[book] = new
        self._evict()
        return [Change("line", gb, book, now, [Touch(market, side, old, new)])]

    def _added(self, event: Event, book: str) -> list[Change]:
        now = event_seconds(event)
        gb = self._game(event)
        outcomes = event.data.get("outcomes")
        if not isinstance(outcomes, dict):
            outcomes = {}
        previous = gb.books.get(book, {})
        stale = [key for key in previous if key not in outcomes]
        touched = []
        for key in stale:
            found = previous.get(key)
            if found is not None:
                old = found[1].prices.get(book)
                self._drop_entry(gb, book, key)
                touched.append(Touch(found[0], found[1], old, None))
        for key, line in outcomes.items():
            if not isinstance(line, dict) or not isinstance(key, str):
                continue
            market, side = self._place(gb, book, key, line)
            old = side.prices.get(book)
            new = self._price(event, book, now, line.get("odds"), key, line.get("link"))
            side.prices[book] = new
            touched.append(Touch(market, side, old, new))
        self._evict()
        return [Change("added", gb, book, now, touched)]

    def _remove_book(self, gb: GameBook, book: str, now: float) -> Change:
        touched = []
        for key, (market, side) in list(gb.books.get(book, {}).items()):
            old = side.prices.get(book)
            self._drop_entry(gb, book, key)
            touched.append(Touch(market, side, old, None))
        gb.books.pop(book, None)
        games = self.by_book.get(book)
        if games is not None:
            games.discard(gb.game)
            if not games:
                del self.by_book[book]
        gone = not gb.books
        if gone:
            self._forget(gb)
        return Change("removed", gb, book, now, touched, gone)

    def _forget(self, gb: GameBook) -> None:
        self.games.pop(gb.game, None)
        if gb.universal_id and self.by_uid.get(gb.universal_id) == gb.game:
            del self.by_uid[gb.universal_id]
        for book in gb.books:
            games = self.by_book.get(book)
            if games is not None:
                games.discard(gb.game)
                if not games:
                    del self.by_book[book]
            self.lines -= len(gb.books[book])

    def _evict(self) -> None:
        while self.games and (len(self.games) > self.max_games or self.lines > self.max_lines):
            self._forget(next(iter(self.games.values())))


_shared: weakref.WeakKeyDictionary[Any, PriceBook] = weakref.WeakKeyDictionary()


def shared_book(app: Any) -> PriceBook:
    """The price book of ``app``, shared by its rules (a private one without an app)."""
    if app is None:
        return PriceBook()
    book = _shared.get(app)
    if book is None:
        book = _shared[app] = PriceBook()
    return book


# --- filters -------------------------------------------------------------------------

class Patterns:
    """Case-insensitive shell globs (``draftkings``, ``*Spread*``); empty matches all."""

    def __init__(self, patterns: Sequence[str] | None) -> None:
        self.patterns = [p.casefold() for p in patterns or ()]
        self._seen: dict[str | None, bool] = {}

    def __call__(self, value: str | None) -> bool:
        if not self.patterns:
            return True
        found = self._seen.get(value)
        if found is None:
            text = (value or "").casefold()
            found = any(fnmatch.fnmatchcase(text, p) for p in self.patterns)
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[value] = found
        return found


FILTER_OPTIONS: dict[str, Field] = {
    "sports": Field(list, default=[], one_or_list=True, items=Field(str),
                    help="only these sports (globs); empty = all"),
    "sportsbooks": Field(list, default=[], one_or_list=True, items=Field(str),
                         help="only prices of these sportsbooks (globs); empty = all"),
    "markets": Field(list, default=[], one_or_list=True, items=Field(str),
                     help="only these markets, as upstream names them (globs); empty = all"),
}


_slot_numbers = itertools.count(1)


class BookRule(Rule):
    """A rule that reads the shared price book: filters, per-game state, event building."""

    consumes: ClassVar[tuple[str, ...] | None] = ODDS_EVENTS

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.book = shared_book(app)
        self.slot = next(_slot_numbers)
        self.sports = Patterns(options.get("sports"))
        self.sportsbooks = Patterns(options.get("sportsbooks"))
        self.markets = Patterns(options.get("markets"))

    def on_event(self, event: Event) -> list[Event] | None:
        changes = self.book.apply(event)
        if not changes:
            return None
        out: list[Event] = []
        for change in changes:
            if self.sports(change.game.sport):
                self.handle(change, event, out)
        return out or None

    def handle(self, change: Change, event: Event, out: list[Event]) -> None:
        raise NotImplementedError

    def emit(self, etype: str, source: Event, gb: GameBook, data: dict[str, Any],
             sportsbook: str | None = None) -> Event:
        return Event(type=etype, data=data, time=source.time, feed=self.name, sport=gb.sport,
                     sportsbook=sportsbook, game=gb.game,
                     universal_id=source.universal_id or gb.universal_id,
                     home=source.home or gb.home, away=source.away or gb.away,
                     mono=source.mono)


@dataclass(slots=True)
class Pending:
    """A market changed by the current message, waiting to be judged."""

    game: GameBook
    market: Market
    source: Event          # the last event that changed it
    now: float
    removed: str | None    # why its prices went away, when a book removed the game


class MarketRule(BookRule):
    """A rule that compares the sides of a market (arbitrage, fair odds).

    ``handle`` only notes the markets a change touched (``note``); ``review`` judges
    them once the upstream message is complete (see the module docstring). What a
    review derives goes out with the next event's ``on_event`` or, when the stream
    pauses, through ``App.publish_soon``.
    """

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.pending: dict[tuple[str, tuple[Any, ...]], Pending] = {}
        self.settled: list[Event] = []
        self.last: tuple[Event, float] | None = None
        """The latest event that changed the book, and its time in seconds."""
        self._settle_soon = False
        self.book.settlers.add(self)

    def on_event(self, event: Event) -> list[Event] | None:
        changes = self.book.apply(event)  # settles the previous message first
        out, self.settled = self.settled, []
        for change in changes:
            self.last = (event, change.now)
            if self.sports(change.game.sport):
                self.handle(change, event, out)
        if self.pending and not self._settle_soon and self.app is not None:
            self._settle_soon = True
            self.app.publish_soon(self._settle_now, f"rule:{self.name}")
        return out or None

    def note(self, change: Change, event: Event, removed: str | None = None) -> None:
        for touch in change.touched:
            key = (change.game.game, touch.market.key)
            known = self.pending.get(key)
            self.pending[key] = Pending(change.game, touch.market, event, change.now,
                                        removed or (known.removed if known else None))

    def settle(self) -> None:
        """Judge the markets the last message changed; the events wait for ``on_event``."""
        pending = list(self.pending.values())
        self.pending.clear()
        if pending or self.last is not None:
            self.review(pending, self.settled)

    def _settle_now(self) -> list[Event]:
        self._settle_soon = False
        self.settle()
        out, self.settled = self.settled, []
        return out

    def review(self, pending: list[Pending], out: list[Event]) -> None:
        raise NotImplementedError


def side_fields(side: Side, outcome: str | None) -> dict[str, Any]:
    """The outcome fields every rule event carries, as the odds events spell them."""
    return {"outcome": outcome, "market": side.market, "target": side.target,
            "line": side.line, "over_under": side.over_under}


def age(now: float, *prices: Price) -> float:
    """Seconds between ``now`` and the oldest of ``prices`` (never negative)."""
    return round(max(0.0, now - min(p.t for p in prices)), 3) if prices else 0.0


class History:
    """The prices of one outcome at one book that were in effect during a window.

    The first point may be older than the window: it is the price that was in
    effect when the window began.
    """

    __slots__ = ("points",)

    def __init__(self) -> None:
        self.points: deque[Price] = deque(maxlen=64)

    def push(self, price: Price, window: float, previous: Price | None) -> None:
        points = self.points
        if not points and previous is not None:
            points.append(previous)
        points.append(price)
        cutoff = price.t - window
        while len(points) >= 2 and points[1].t <= cutoff:
            points.popleft()

    def at(self, t: float) -> Price:
        """The price that was in effect at time ``t`` (the oldest one known if earlier)."""
        found = self.points[0]
        for point in self.points:
            if point.t > t:
                break
            found = point
        return found

    def reset(self, price: Price) -> None:
        self.points.clear()
        self.points.append(price)

    @property
    def last(self) -> Price:
        return self.points[-1]


def rounded(value: float, digits: int = 6) -> float:
    return round(value, digits)


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"
