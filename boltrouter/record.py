"""``boltrouter record``: store every raw websocket frame with its receive time.

Each line of the JSONL output is ``{"received": iso, "feed": "odds", "frame": "<raw
text>"}``. ``boltrouter replay`` feeds such lines through the feed's own parser
and state (``Feed.handle_frame``), so a bug seen live can be reproduced exactly.

The game catalogue (``get_games``, which gives events their ``universal_id``,
``home`` and ``away``) is recorded too, whenever it changes, as ``{"received":
iso, "feed": "catalogue", "games": {...}}`` in the shape of a get_games answer, so
a replay joins games exactly as the live run did.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any

import click
import orjson

from .catalogue import EASTERN, Catalogue
from .config import Config
from .events import now_iso, parse_time


class FrameRecorder:
    """Appends raw frames to a JSONL file; ``app.recorder`` calls it for every frame."""

    flush_every = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self.frames = 0
        self.bytes = 0
        self._fh: IO[bytes] | None = path.open("ab")
        self._flushed = time.monotonic()

    def __call__(self, feed: str, raw: str, received: str) -> None:
        fh = self._fh
        if fh is None:
            return
        line = orjson.dumps({"received": received, "feed": feed, "frame": raw}) + b"\n"
        fh.write(line)
        self.frames += 1
        self.bytes += len(line)
        now = time.monotonic()
        if now - self._flushed >= self.flush_every:
            self._flushed = now
            fh.flush()

    def note_catalogue(self, catalogue: Catalogue) -> None:
        """Record the whole catalogue as a get_games answer (called when it changes)."""
        fh = self._fh
        if fh is None:
            return
        line = orjson.dumps({"received": now_iso(), "feed": "catalogue",
                             "games": catalogue_as_get_games(catalogue)}) + b"\n"
        fh.write(line)
        self.bytes += len(line)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def catalogue_as_get_games(catalogue: Catalogue) -> dict[str, Any]:
    """The catalogue in the shape ``Catalogue.update`` reads (a get_games answer)."""
    games: dict[str, Any] = {}
    for ref in catalogue.games.values():
        entry: dict[str, Any] = {"game": ref.name, "universal_id": ref.universal_id,
                                 "sport": ref.sport}
        if ref.home and ref.away:
            entry["orig_teams"] = f"{ref.home} vs {ref.away}"
        start = parse_time(ref.start)
        if start is not None:
            entry["when"] = start.astimezone(EASTERN).strftime("%Y-%m-%d, %I:%M %p")
        games[ref.name] = entry
    return games


async def record(config: Config, out: Path, duration: float | None,
                 summary: bool | None = None) -> FrameRecorder:
    """Run the daemon with a recorder attached; returns it (closed) when the run ends."""
    from .app import App

    app = App(config)
    recorder = FrameRecorder(out)
    app.recorder = recorder  # type: ignore[attr-defined]
    app.catalogue.add_listener(lambda added, removed: recorder.note_catalogue(app.catalogue))
    try:
        await app.run(duration, summary)
    finally:
        recorder.close()
    return recorder


@click.command("record")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="YAML config file (its feeds are recorded; no API key = the simulator).")
@click.option("--for", "duration", metavar="DURATION",
              help="Stop after this long (30s, 10m); otherwise run until Ctrl-C.")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
def record_command(config_path: str, duration: str | None, out: str) -> None:
    """Record every raw websocket frame to OUT (JSONL) for `boltrouter replay`."""
    from .cli import load_or_exit, run_async
    from .config import parse_duration

    seconds: Any = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None
    config = load_or_exit(config_path)
    try:
        recorder = run_async(record(config, Path(out), seconds))
    except OSError as exc:
        click.echo(f"cannot write {out}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    click.echo(f"recorded {recorder.frames} frame(s), {recorder.bytes:,} bytes, to {out}",
               err=True)
