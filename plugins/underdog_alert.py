"""Example third-party plugin: an ``underdog_alert`` rule.

It emits ``rule.underdog_alert`` when a sportsbook moves an outcome across even
money: the underdog became the favourite (``direction: favourite``, now priced
shorter than even) or the favourite drifted out to even or longer
(``direction: underdog``). It only needs
the old and new price carried by each ``odds.line_changed`` event, so it keeps
no state at all. Nothing happens until a config names it::

    plugins_dir: ./plugins
    rules:
      flips: {type: underdog_alert, markets: [Moneyline]}
    routes:
      - {name: flips, when: {type: rule.underdog_alert}, to: phone}
"""

from __future__ import annotations

import fnmatch
from typing import Any, ClassVar

import boltrouter
from boltrouter.config import Field
from boltrouter.events import Event
from boltrouter.odds import odds_to_prob
from boltrouter.rule import Rule

__version__ = "1.0.0"

UNDERDOG_ALERT = "rule.underdog_alert"


class UnderdogAlert(Rule):
    """One book moved an outcome from underdog to favourite, or back."""

    options_schema: ClassVar[dict[str, Field]] = {
        "markets": Field(list, default=["Moneyline"], one_or_list=True, items=Field(str),
                         help="markets to watch, as upstream names them (globs)"),
        "sportsbooks": Field(list, default=[], one_or_list=True, items=Field(str),
                             help="books to watch (globs); empty = every book"),
    }
    emits: ClassVar[dict[str, str]] = {
        UNDERDOG_ALERT: "A sportsbook moved an outcome across even money (underdog <-> "
                        "favourite).",
    }
    consumes: ClassVar[tuple[str, ...] | None] = ("odds.line_changed",)

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.markets = [m.casefold() for m in options.get("markets") or ()]
        self.books = [b.casefold() for b in options.get("sportsbooks") or ()]

    @staticmethod
    def _matches(value: str | None, patterns: list[str]) -> bool:
        text = (value or "").casefold()
        return not patterns or any(fnmatch.fnmatchcase(text, p) for p in patterns)

    def on_event(self, event: Event) -> list[Event] | None:
        data = event.data
        if not self._matches(data.get("market"), self.markets) \
                or not self._matches(event.sportsbook, self.books):
            return None
        old, new = odds_to_prob(data.get("old_odds")), odds_to_prob(data.get("new_odds"))
        if old is None or new is None or (old > 0.5) == (new > 0.5):
            return None
        alert = {key: data.get(key) for key in ("outcome", "market", "target", "line",
                                                "over_under", "old_odds", "new_odds", "link")}
        alert.update(old_prob=round(old, 6), new_prob=round(new, 6),
                     direction="favourite" if new > 0.5 else "underdog")
        return [Event(UNDERDOG_ALERT, alert, time=event.time, feed=self.name,
                      sport=event.sport, sportsbook=event.sportsbook, game=event.game,
                      universal_id=event.universal_id, home=event.home, away=event.away,
                      mono=event.mono)]


@boltrouter.hookimpl
def register_rule_types(register: Any) -> None:
    register("underdog_alert", UnderdogAlert)


@boltrouter.hookimpl
def register_event_types(register: Any) -> None:
    register(UNDERDOG_ALERT, UnderdogAlert.emits[UNDERDOG_ALERT])
