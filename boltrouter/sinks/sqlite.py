"""The ``sqlite`` sink: an event archive plus the present odds board and scoreboard.

Routed events land in the ``events`` table (``INSERT OR IGNORE``, so a replayed
id is stored once). ``odds_current`` and ``scores_current`` follow every event,
routed or not: ``observe`` only records the change in memory, coalesced, and the
next batch or the periodic flush writes it in the same transaction. The
database runs in WAL mode, so readers can query while the daemon writes, and
every statement runs on one dedicated thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import orjson

import boltrouter
from boltrouter import events as ev
from boltrouter.config import Field, did_you_mean
from boltrouter.events import Event
from boltrouter.sink import Delivery, Sink
from boltrouter.sinks import IOThread, SinkWriteError, make_folder, write_error

log = logging.getLogger("boltrouter.sink.sqlite")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ODDS_COLUMNS = ("sportsbook", "game", "outcome", "universal_id", "sport", "market", "target",
                "line", "over_under", "odds", "prob", "link", "updated")
SCORE_COLUMNS = ("universal_id", "game", "sport", "home", "away", "status", "home_score",
                 "away_score", "period", "clock", "updated")

_ODDS_UPSERT = (
    f"INSERT INTO odds_current ({', '.join(ODDS_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ODDS_COLUMNS))}) "
    "ON CONFLICT (sportsbook, game, outcome) DO UPDATE SET "
    + ", ".join(f"{c} = coalesce(excluded.{c}, {c})"
                for c in ("universal_id", "sport", "market", "target", "link"))
    + ", line = excluded.line, over_under = excluded.over_under, odds = excluded.odds, "
      "prob = excluded.prob, updated = excluded.updated"
)
_SCORES_UPSERT = (
    f"INSERT INTO scores_current ({', '.join(SCORE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SCORE_COLUMNS))}) "
    "ON CONFLICT (universal_id) DO UPDATE SET "
    + ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in SCORE_COLUMNS[1:])
)
_ODDS_DELETES = {
    "game": "DELETE FROM odds_current WHERE sportsbook = ? AND game = ?",
    "sport": "DELETE FROM odds_current WHERE sportsbook = ? AND sport = ?",
    "book": "DELETE FROM odds_current WHERE sportsbook = ?",
}
_SB, _GAME, _SPORT = 0, 1, 4          # positions in an odds_current row
_COALESCED = (3, 4, 5, 6, 11)          # universal_id, sport, market, target, link: null keeps
                                       # the known value; in the other columns null is a value

_LINE_TYPES = {ev.ODDS_LINE_CHANGED, ev.ODDS_LINE_SUSPENDED, ev.ODDS_LINE_RESTORED}
_SCORE_TYPES = {ev.SCORE_CHANGED, ev.GAME_STATUS_CHANGED, ev.GAME_PERIOD_CHANGED}
CURRENT_TYPES = _LINE_TYPES | _SCORE_TYPES | {
    ev.ODDS_GAME_ADDED, ev.ODDS_GAME_UPDATED, ev.ODDS_GAME_REMOVED,
    ev.ODDS_SPORT_CLEARED, ev.ODDS_BOOK_CLEARED}
"""Event types that change ``odds_current`` or ``scores_current``."""


_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _check_synchronous(value: str) -> str | None:
    if value.upper() in _SYNCHRONOUS:
        return None
    return (f"{value!r} is not allowed{did_you_mean(value.upper(), _SYNCHRONOUS)} "
            f"(valid: {', '.join(_SYNCHRONOUS)})")


def _scalar(value: Any) -> Any:
    """A value SQLite can store: lists and mappings become JSON text."""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value, default=str).decode()
    return value


def _line_field(line: Any, name: str) -> Any:
    return line.get(name) if isinstance(line, dict) else getattr(line, name, None)


class CurrentChanges:
    """Changes to ``odds_current`` and ``scores_current`` not written yet.

    Upserts are coalesced by primary key; a delete drops the pending upserts it
    covers, so writing every delete first and then every upsert gives the same
    table as applying the events one by one.
    """

    __slots__ = ("odds", "deletes", "scores", "_games")

    def __init__(self) -> None:
        self.odds: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self.deletes: dict[tuple[str, ...], None] = {}
        self.scores: dict[str, dict[str, Any]] = {}
        self._games: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        """The keys of ``odds`` per (sportsbook, game), so a delete touches only its rows."""

    def __bool__(self) -> bool:
        return bool(self.odds or self.deletes or self.scores)

    def __len__(self) -> int:
        return len(self.odds) + len(self.deletes) + len(self.scores)

    def upsert_line(self, row: tuple[Any, ...]) -> None:
        key = (row[0], row[1], row[2])
        old = self.odds.get(key)
        if old is None:
            self._games.setdefault((row[0], row[1]), set()).add(key)
        else:
            for i in _COALESCED:
                if row[i] is None and old[i] is not None:   # something to keep
                    merged = list(row)
                    for j in _COALESCED:
                        if merged[j] is None:
                            merged[j] = old[j]
                    row = tuple(merged)
                    break
        self.odds[key] = row

    def delete(self, op: tuple[str, ...]) -> None:
        if op[0] == "game":
            doomed: Iterable[tuple[str, str, str]] = self._games.pop((op[1], op[2]), ())
        else:
            doomed = []
            for game in [g for g in self._games if g[0] == op[1]]:
                keys = self._games[game]
                gone = [k for k in keys if _covers(op, self.odds[k])]
                keys.difference_update(gone)
                if not keys:
                    del self._games[game]
                doomed.extend(gone)
        for key in doomed:
            del self.odds[key]
        self.deletes[op] = None

    def merge_score(self, key: str, fields: dict[str, Any]) -> None:
        known = self.scores.get(key)
        if known is None:
            self.scores[key] = fields
        else:
            known.update(fields)

    def put_back(self, older: CurrentChanges) -> None:
        """Re-queue changes whose write failed, underneath the newer ones."""
        odds = {k: row for k, row in older.odds.items()
                if not any(_covers(op, row) for op in self.deletes)}
        odds.update(self.odds)
        self.odds = odds
        self._games = {}
        for key in odds:
            self._games.setdefault((key[0], key[1]), set()).add(key)
        self.deletes = {**older.deletes, **self.deletes}
        for key, fields in older.scores.items():
            self.scores[key] = {**fields, **self.scores.get(key, {})}


def _covers(op: tuple[str, ...], row: tuple[Any, ...]) -> bool:
    kind = op[0]
    if row[_SB] != op[1]:
        return False
    if kind == "game":
        return row[_GAME] == op[2]
    if kind == "sport":
        return row[_SPORT] == op[2]
    return True


class SqliteSink(Sink):
    """Archive events in SQLite and keep the present odds board and scoreboard."""

    linger: ClassVar[float] = 0.25
    """Up to this long the bus collects deliveries into one batch (one transaction)."""

    options_schema: ClassVar[dict[str, Field]] = {
        "path": Field(str, required=True,
                      help="database file, relative to the config file's folder"),
        "events_table": Field(str, default="events",
                              check=lambda v: None if _IDENTIFIER.match(v) else
                              f"{v!r} is not a table name (letters, digits and _)"),
        "synchronous": Field(str, default="NORMAL", check=_check_synchronous,
                             help="SQLite's durability setting; NORMAL is safe with WAL"),
        "flush_interval": Field("duration", default=1.0, min=0.01,
                                help="how often odds_current/scores_current are written"),
        "busy_timeout": Field("duration", default=5.0,
                              help="how long to wait for another writer's lock"),
    }

    def __init__(self, name: str, options: dict[str, Any], app: Any) -> None:
        super().__init__(name, options, app)
        self.path: Path = app.resolve_path(options["path"])
        table = options.get("events_table") or "events"
        self.table = table
        self._insert = (f"INSERT OR IGNORE INTO {table} (id, type, time, received, feed, sport, "
                        "sportsbook, game, universal_id, data) VALUES (?,?,?,?,?,?,?,?,?,?)")
        self._io = IOThread(f"sqlite-{name}")
        self._conn: sqlite3.Connection | None = None
        self._changes = CurrentChanges()
        self._timer: asyncio.Task[None] | None = None
        self.rows = 0
        self.duplicates = 0
        self.last_error: str | None = None
        self._logged_flush_error = 0.0

    # -- lifespan ----------------------------------------------------------------------

    async def start(self) -> None:
        self._timer = asyncio.create_task(self._flush_periodically(), name=f"sqlite:{self.name}")
        await self._io.run(self._connect)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
        try:
            if self._changes:
                await self._flush_current()
        except Exception as exc:
            log.error("sink %r: %d change(s) to odds_current/scores_current were not written: "
                      "%s", self.name, len(self._changes), exc)
        finally:
            await self._io.run(self._close)
            self._io.close()

    # -- the event loop side --------------------------------------------------------------

    def observe(self, event: Event) -> None:
        etype = event.type
        if etype not in CURRENT_TYPES:
            return
        if etype in _SCORE_TYPES:
            self._observe_score(event)
            return
        sb, game = event.sportsbook, event.game
        data = event.data
        if etype in _LINE_TYPES:
            if sb and game and data.get("outcome"):
                self._changes.upsert_line((
                    sb, game, data["outcome"], event.universal_id, event.sport,
                    data.get("market"), data.get("target"), data.get("line"),
                    data.get("over_under"), data.get("new_odds"), data.get("new_prob"),
                    data.get("link"), event.time))
        elif etype == ev.ODDS_GAME_ADDED:
            if sb and game:
                self._replace_game(event, data.get("outcomes"))
        elif etype == ev.ODDS_GAME_UPDATED:
            if sb and game:
                lines = self.app.board.game_lines(game).get(sb)
                if lines:
                    self._replace_game(event, lines)
        elif etype == ev.ODDS_GAME_REMOVED:
            if sb and game:
                self._changes.delete(("game", sb, game))
        elif etype == ev.ODDS_SPORT_CLEARED:
            sb = data.get("sportsbook") or sb
            sport = data.get("sport") or event.sport
            if sb and sport:
                self._changes.delete(("sport", sb, sport))
        elif etype == ev.ODDS_BOOK_CLEARED:
            sb = data.get("sportsbook") or sb
            if sb:
                self._changes.delete(("book", sb))

    def _replace_game(self, event: Event, outcomes: Any) -> None:
        sb, game = event.sportsbook or "", event.game or ""
        self._changes.delete(("game", sb, game))
        if not isinstance(outcomes, dict):
            return
        for key, line in outcomes.items():
            self._changes.upsert_line((
                sb, game, key, event.universal_id, event.sport,
                _line_field(line, "market"), _line_field(line, "target"),
                _line_field(line, "line"), _line_field(line, "over_under"),
                _line_field(line, "odds"), _line_field(line, "prob"),
                _line_field(line, "link"), event.time))

    def _observe_score(self, event: Event) -> None:
        key = event.universal_id or event.game
        if not key:
            return
        data = event.data
        fields: dict[str, Any] = {"updated": event.time}
        for name in ("game", "sport", "home", "away"):
            value = getattr(event, name)
            if value is not None:
                fields[name] = value
        for name in ("status", "home_score", "away_score", "period", "clock"):
            value = data.get(name)
            if value is not None:
                fields[name] = _scalar(value)
        self._changes.merge_score(key, fields)

    async def write(self, batch: list[Delivery]) -> None:
        changes = self._take_changes()
        try:
            await self._io.run(self._write_batch, [d.event for d in batch], changes)
        except Exception as exc:
            self._changes.put_back(changes)
            self.last_error = str(exc)
            raise
        self.last_error = None

    def _take_changes(self) -> CurrentChanges:
        changes, self._changes = self._changes, CurrentChanges()
        return changes

    async def _flush_current(self) -> None:
        changes = self._take_changes()
        try:
            await self._io.run(self._write_batch, [], changes)
        except Exception:
            self._changes.put_back(changes)
            raise

    async def _flush_periodically(self) -> None:
        every = self.options.get("flush_interval") or 1.0
        while True:
            await asyncio.sleep(every)
            if not self._changes:
                continue
            try:
                await self._flush_current()
            except Exception as exc:
                self.last_error = str(exc)
                self.app.metrics.inc("sink_flush_failed", sink=self.name)
                now = time.monotonic()
                if now - self._logged_flush_error > 60:
                    self._logged_flush_error = now
                    log.error("sink %r could not update odds_current/scores_current: %s "
                              "(kept in memory and retried)", self.name, exc)

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "rows": self.rows, "duplicates": self.duplicates,
                "pending_current": len(self._changes)}

    def healthy(self) -> bool:
        return self.last_error is None

    # -- the I/O thread side -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        make_folder(self.path.parent, self.name)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None,
                                   timeout=self.options.get("busy_timeout", 5.0))
        except sqlite3.Error as exc:
            raise write_error(self.path, exc) from None
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            level = (self.options.get("synchronous") or "NORMAL").upper()
            conn.execute(f"PRAGMA synchronous = {level}")
            self._create_tables(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise write_error(self.path, exc) from None
        self._conn = conn
        return conn

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        t = self.table
        conn.executescript(f"""
            CREATE TABLE IF NOT EXISTS {t} (
                id TEXT PRIMARY KEY, type TEXT NOT NULL, time TEXT, received TEXT, feed TEXT,
                sport TEXT, sportsbook TEXT, game TEXT, universal_id TEXT, data TEXT);
            CREATE INDEX IF NOT EXISTS {t}_type_time ON {t} (type, time);
            CREATE INDEX IF NOT EXISTS {t}_universal_id ON {t} (universal_id);
            CREATE TABLE IF NOT EXISTS odds_current (
                sportsbook TEXT NOT NULL, game TEXT NOT NULL, outcome TEXT NOT NULL,
                universal_id TEXT, sport TEXT, market TEXT, target TEXT, line TEXT,
                over_under TEXT, odds TEXT, prob REAL, link TEXT, updated TEXT,
                PRIMARY KEY (sportsbook, game, outcome));
            CREATE TABLE IF NOT EXISTS scores_current (
                universal_id TEXT PRIMARY KEY, game TEXT, sport TEXT, home TEXT, away TEXT,
                status TEXT, home_score INTEGER, away_score INTEGER, period, clock TEXT,
                updated TEXT);
        """)

    def _write_batch(self, events: list[Event], changes: CurrentChanges) -> None:
        conn = self._connect()
        dumps = orjson.dumps
        rows = [(e.id, e.type, e.time, e.received, e.feed, e.sport, e.sportsbook, e.game,
                 e.universal_id, dumps(e.data, default=str).decode()) for e in events]
        try:
            conn.execute("BEGIN IMMEDIATE")
            inserted = conn.executemany(self._insert, rows).rowcount if rows else 0
            if changes:
                for op in changes.deletes:
                    conn.execute(_ODDS_DELETES[op[0]], op[1:])
                conn.executemany(_ODDS_UPSERT, changes.odds.values())
                conn.executemany(_SCORES_UPSERT, (
                    (key, *(f.get(c) for c in SCORE_COLUMNS[1:]))
                    for key, f in changes.scores.items()))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise write_error(self.path, exc) from None
        self.rows += inserted
        self.duplicates += len(rows) - inserted

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@boltrouter.hookimpl
def register_sink_types(register: Any) -> None:
    register("sqlite", SqliteSink)


__all__ = ["SqliteSink", "SinkWriteError", "CURRENT_TYPES"]
