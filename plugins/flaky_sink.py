"""Example plugin used by the tests: a ``flaky`` sink that fails or hangs on purpose.

``mode: fail`` raises on every batch, ``mode: hang`` does not return from
``write`` until ``release`` is set (a sink whose remote end went silent),
``mode: ok`` accepts. Every delivered event id is remembered in ``seen``. It
shows how the bus isolates a bad sink from the others.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import boltrouter
from boltrouter.config import Field
from boltrouter.sink import Delivery, Sink

__version__ = "0.1.0"


class FlakySink(Sink):
    options_schema: ClassVar[dict[str, Field]] = {
        "mode": Field(str, default="fail", choices=("fail", "hang", "ok")),
    }

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.seen: list[str] = []
        self.writes = 0
        self.release = asyncio.Event()

    async def write(self, batch: list[Delivery]) -> None:
        self.writes += 1
        mode = self.options.get("mode")
        if mode == "fail":
            raise ConnectionError(f"flaky sink {self.name!r} refused {len(batch)} event(s)")
        if mode == "hang":
            await self.release.wait()
        self.seen.extend(d.event.id for d in batch)


@boltrouter.hookimpl
def register_sink_types(register: Any) -> None:
    register("flaky", FlakySink)
