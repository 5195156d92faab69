"""What a feed is: one upstream source (a websocket or the REST pollers)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from .config import Field

if TYPE_CHECKING:
    from .app import App


class Feed:
    """Base class of the upstream feeds.

    ``run`` connects and loops until cancelled, calling ``await app.publish(...)``
    for each normalized event. ``status`` reports connection state for the status
    page, metrics and readiness.
    """

    options_schema: ClassVar[dict[str, Field]] = {}
    enabled_by_default: ClassVar[bool] = False
    simulator_path: ClassVar[str] = ""
    """Path of this feed on the simulator (``/api``, ``/api/livescores``, ...)."""

    def __init__(self, name: str, options: dict[str, Any], app: App) -> None:
        self.name = name
        self.options = options
        self.app = app
        self.log = logging.getLogger(f"boltrouter.feed.{name}")
        self.connected = False
        self.last_message: float | None = None   # monotonic time of the last frame
        self.reconnects = 0

    async def run(self) -> None:
        raise NotImplementedError

    async def reconfigure(self, options: dict[str, Any]) -> None:
        """Apply new options (e.g. subscription filters) without reconnecting."""
        self.options = options

    def status(self) -> dict[str, Any]:
        import time
        age = None if self.last_message is None else time.monotonic() - self.last_message
        return {"connected": self.connected, "last_message_age": age,
                "reconnects": self.reconnects}

    @property
    def required_for_ready(self) -> bool:
        return True
