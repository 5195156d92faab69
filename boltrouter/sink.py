"""What a sink is. Built-in sinks and third-party ones subclass ``Sink``.

The bus gives each sink its own bounded queue and worker, so a slow or failing
sink never blocks the others. A sink only implements ``write``; ``start``,
``stop``, ``observe`` and ``stats`` are optional.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .config import Field
from .events import Event

if TYPE_CHECKING:
    from .app import App


@dataclass(slots=True)
class Delivery:
    """One event sent to one sink by one route, with that route's rendered templates."""

    event: Event
    route: str | None = None
    payload: str | None = None   # the route's `payload` template, rendered
    topic: str | None = None     # the route's `topic` template, rendered (MQTT)


class Sink:
    """Base class of every sink.

    ``options`` holds the validated options of ``options_schema`` plus the bus's
    own (type, queue_size, overflow, batch_size). ``app`` gives access to the
    metrics, the odds board, the scoreboard and the state directory.
    """

    options_schema: ClassVar[dict[str, Field]] = {}
    durable: ClassVar[bool] = False
    """True when ``accept`` stores deliveries on disk itself (the bus then skips its
    in-memory queue and calls ``accept`` synchronously)."""

    def __init__(self, name: str, options: dict[str, Any], app: App) -> None:
        self.name = name
        self.options = options
        self.app = app
        self.log = logging.getLogger(f"boltrouter.sink.{name}")

    async def start(self) -> None:
        """Open connections or files. Raise to report a sink that cannot start."""

    async def write(self, batch: list[Delivery]) -> None:
        """Deliver a batch. Raise to count the whole batch as failed."""
        raise NotImplementedError

    def accept(self, batch: list[Delivery]) -> None:
        """Durable sinks only: persist the deliveries before they count as accepted."""
        raise NotImplementedError

    def observe(self, event: Event) -> None:
        """Optional: see every event, routed or not (cheap, synchronous)."""

    async def stop(self) -> None:
        """Flush and close; called after the queue drained."""

    def stats(self) -> dict[str, Any]:
        """Extra figures for status and metrics (e.g. outbox size)."""
        return {}

    def healthy(self) -> bool:
        return True

    async def reconfigure(self, options: dict[str, Any]) -> bool:
        """Apply changed options in place; return False to be restarted instead."""
        return False
