"""What a rule is: a plugin that derives new events from the stream."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from .config import Field
from .events import Event

if TYPE_CHECKING:
    from .app import App


class Rule:
    """Base class of every rule.

    ``on_event`` sees every event that is not itself a rule event and returns the
    events it derives (or None). It runs on the event loop: keep it cheap and
    keep state bounded. ``emits`` lists the event types the rule produces, with a
    one-line description each. A rule that must see a whole upstream message
    before it judges it can hand events over later with ``app.publish_soon``.
    """

    options_schema: ClassVar[dict[str, Field]] = {}
    emits: ClassVar[dict[str, str]] = {}
    consumes: ClassVar[tuple[str, ...] | None] = None
    """Event types this rule wants (None = all); lets the app skip the call."""

    def __init__(self, name: str, options: dict[str, Any], app: App) -> None:
        self.name = name
        self.options = options
        self.app = app
        self.log = logging.getLogger(f"boltrouter.rule.{name}")

    def on_event(self, event: Event) -> Iterable[Event] | None:
        raise NotImplementedError
