"""Example third-party plugin: a ``console`` sink that prints one line per event.

Drop this file into the folder named by ``plugins_dir`` and use it like a
built-in sink::

    plugins_dir: ./plugins
    sinks:
      screen: {type: console, stream: stdout}
    routes:
      - {name: everything, when: {type: "*"}, to: screen}
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import boltrouter
from boltrouter.config import Field
from boltrouter.sink import Delivery, Sink

__version__ = "1.0.0"


class ConsoleSink(Sink):
    """Print ``time type game [sportsbook] data`` for every routed event."""

    options_schema: ClassVar[dict[str, Field]] = {
        "stream": Field(str, default="stdout", choices=("stdout", "stderr")),
        "prefix": Field(str, default="", help="text put in front of every line"),
    }

    async def write(self, batch: list[Delivery]) -> None:
        out = sys.stdout if self.options.get("stream") == "stdout" else sys.stderr
        prefix = self.options.get("prefix") or ""
        lines = []
        for d in batch:
            e = d.event
            where = " ".join(x for x in (e.game, e.sportsbook) if x)
            lines.append(f"{prefix}{e.time} {e.type} {where or '-'} {e.data}\n")
        out.write("".join(lines))
        out.flush()


@boltrouter.hookimpl
def register_sink_types(register: Any) -> None:
    register("console", ConsoleSink)
