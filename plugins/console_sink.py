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

import json
import sys
from typing import Any, ClassVar

import boltrouter
from boltrouter.config import Field
from boltrouter.sink import Delivery, Sink

__version__ = "1.0.0"


class ConsoleSink(Sink):
    """Print ``time type game [sportsbook] what`` for every routed event.

    ``what`` is the route's rendered ``payload`` when it has one, else the event's
    data as compact JSON, cut at ``width`` characters.
    """

    options_schema: ClassVar[dict[str, Field]] = {
        "stream": Field(str, default="stdout", choices=("stdout", "stderr")),
        "prefix": Field(str, default="", help="text put in front of every line"),
        "width": Field(int, default=240, min=40, help="longest data text printed per event"),
    }

    async def write(self, batch: list[Delivery]) -> None:
        out = sys.stdout if self.options.get("stream") == "stdout" else sys.stderr
        prefix = self.options.get("prefix") or ""
        width = int(self.options.get("width") or 240)
        # on a terminal, start each line afresh: the daemon's live summary may be there
        clear = "\r\x1b[2K" if out.isatty() else ""
        lines = []
        for d in batch:
            e = d.event
            where = " ".join(x for x in (e.game, e.sportsbook) if x)
            what = d.payload if d.payload is not None else json.dumps(e.data, default=str)
            if len(what) > width:
                what = what[:width - 3] + "..."
            lines.append(f"{clear}{prefix}{e.time} {e.type} {where or '-'} {what}\n")
        out.write("".join(lines))
        out.flush()


@boltrouter.hookimpl
def register_sink_types(register: Any) -> None:
    register("console", ConsoleSink)
