"""The ``csv`` sink: one event per row, chosen columns, optional daily files.

``fields`` picks and orders the columns: envelope fields (``time``, ``game``,
...), ``data`` (the whole data object as JSON), dotted paths into it
(``data.outcome``) and ``route``. ``{date}`` in ``path`` is replaced by the
event's UTC date, so each day gets its own file with its own header. A file that
already exists is appended to without a second header. Every batch is written
and flushed on the sink's own thread, never on the event loop.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from datetime import UTC
from operator import attrgetter
from pathlib import Path
from typing import IO, Any, ClassVar

import orjson

import boltrouter
from boltrouter.config import Field, did_you_mean
from boltrouter.events import ENVELOPE_FIELDS, parse_time, utcnow
from boltrouter.sink import Delivery, Sink
from boltrouter.sinks import IOThread, make_folder, write_error

log = logging.getLogger("boltrouter.sink.csv")

DEFAULT_FIELDS = ["time", "type", "sport", "sportsbook", "game", "universal_id", "data"]
_COLUMNS = (*ENVELOPE_FIELDS, "data", "route")
_OPEN_FILES = 2   # today's and yesterday's, for events that arrive around midnight


def _check_fields(fields: list[Any]) -> str | None:
    for f in fields:
        if not isinstance(f, str) or not f:
            return f"every field must be a column name, not {f!r}"
        if f in _COLUMNS or (f.startswith("data.") and len(f) > 5):
            continue
        return (f"unknown field {f!r}{did_you_mean(f, _COLUMNS)} (valid: "
                f"{', '.join(_COLUMNS)}, or a dotted path into data such as data.outcome)")
    return None


_PLAIN = frozenset((str, float, int))
"""Types whose values the csv module writes as they are (``bool`` is not one)."""


def _cell(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return orjson.dumps(value, default=str).decode()
    return value


def _reader(field: str) -> Callable[[Delivery], Any]:
    """The cell of column ``field`` for a delivery: ``route``, or what ``Event.get`` reads
    as CSV text; the paths are split once, not on every row."""
    if field == "route":
        return lambda d: d.route or ""
    if field in ENVELOPE_FIELDS or field == "data":
        get = attrgetter(field)
        return lambda d: _cell(get(d.event))
    key = field[len("data."):]
    if "." in key:
        return lambda d: _cell(d.event.get(field))

    def read(d: Delivery) -> Any:
        data = d.event.data
        return _cell(data.get(key) if isinstance(data, dict) else None)
    return read


def utc_date(time: str) -> str:
    """``YYYY-MM-DD`` of an ISO timestamp in UTC (today when it cannot be read)."""
    if time.endswith(("+00:00", "Z")) and len(time) >= 10:
        return time[:10]
    dt = parse_time(time)
    return (dt or utcnow()).astimezone(UTC).strftime("%Y-%m-%d")


class _OpenFile:
    __slots__ = ("fh", "writer")

    def __init__(self, fh: IO[str], delimiter: str) -> None:
        self.fh = fh
        self.writer = csv.writer(fh, delimiter=delimiter)


class CsvSink(Sink):
    """Append routed events to CSV files."""

    linger: ClassVar[float] = 0.25
    """Up to this long the bus collects deliveries into one batch (one write and flush)."""

    options_schema: ClassVar[dict[str, Field]] = {
        "path": Field(str, required=True,
                      help="file path; {date} becomes the event's UTC date (daily files)"),
        "fields": Field(list, default=list(DEFAULT_FIELDS), items=Field(str), check=_check_fields,
                        help="columns in order: envelope fields, data, data.<path>, route"),
        "delimiter": Field(str, default=",",
                           check=lambda v: None if len(v) == 1 else
                           f"the delimiter must be one character, not {v!r}"),
    }

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.template = str(app.resolve_path(options["path"]))
        self.fields: list[str] = list(options.get("fields") or DEFAULT_FIELDS)
        self._readers = [_reader(f) for f in self.fields]
        self.delimiter: str = options.get("delimiter") or ","
        self._io = IOThread(f"csv-{name}")
        self._files: dict[str, _OpenFile] = {}
        self.rows = 0
        self.last_error: str | None = None
        self._header = self._render_header()

    def _render_header(self) -> str:
        buf = io.StringIO()
        csv.writer(buf, delimiter=self.delimiter).writerow(self.fields)
        return buf.getvalue()

    async def start(self) -> None:
        if "{date}" not in str(Path(self.template).parent):
            make_folder(Path(self.template).parent, self.name)

    async def write(self, batch: list[Delivery]) -> None:
        try:
            await self._io.run(self._write_batch, batch)
        except Exception as exc:
            self.last_error = str(exc)
            raise
        self.last_error = None

    async def stop(self) -> None:
        try:
            await self._io.run(self._close_all)
        finally:
            self._io.close()

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "files": sorted(self._files)}

    def healthy(self) -> bool:
        return self.last_error is None

    # -- the I/O thread side -------------------------------------------------------------------

    def _path_for(self, time: str) -> str:
        if "{date}" not in self.template:
            return self.template
        return self.template.replace("{date}", utc_date(time))

    def _write_batch(self, batch: list[Delivery]) -> None:
        readers = self._readers
        by_file: dict[str, list[list[Any]]]
        if "{date}" not in self.template:
            by_file = {self.template: [[r(d) for r in readers] for d in batch]}
        else:
            by_file = {}
            for d in batch:
                by_file.setdefault(self._path_for(d.event.time), []).append(
                    [r(d) for r in readers])
        for path, rows in by_file.items():
            try:
                f = self._open(path)
                f.writer.writerows(rows)
                f.fh.flush()
            except OSError as exc:
                self._discard(path)
                raise write_error(path, exc) from None
            self.rows += len(rows)

    def _open(self, path: str) -> _OpenFile:
        f = self._files.get(path)
        if f is not None:
            return f
        p = Path(path)
        make_folder(p.parent, self.name)
        fh = p.open("a", newline="", encoding="utf-8")
        try:
            if fh.tell() == 0:
                fh.write(self._header)
            else:
                self._warn_if_header_differs(p)
        except OSError:
            fh.close()
            raise
        f = self._files[path] = _OpenFile(fh, self.delimiter)
        while len(self._files) > _OPEN_FILES:
            self._discard(next(iter(self._files)))
        return f

    def _warn_if_header_differs(self, path: Path) -> None:
        try:
            with path.open(encoding="utf-8", newline="") as fh:
                first = fh.readline()
        except OSError:
            return
        if first.rstrip("\r\n") != self._header.rstrip("\r\n"):
            log.warning("sink %r appends to %s whose header differs from the configured fields "
                        "(%s); new rows follow the configured fields", self.name, path,
                        ", ".join(self.fields))

    def _discard(self, path: str) -> None:
        f = self._files.pop(path, None)
        if f is not None:
            try:
                f.fh.close()
            except OSError:
                pass

    def _close_all(self) -> None:
        for path in list(self._files):
            self._discard(path)


@boltrouter.hookimpl
def register_sink_types(register: Any) -> None:
    register("csv", CsvSink)


__all__ = ["CsvSink", "DEFAULT_FIELDS"]
