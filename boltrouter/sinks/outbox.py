"""The webhook sink's durable outbox and dead-letter table, in one SQLite file.

Each accepted delivery is a row of ``outbox`` until the receiver answers 2xx;
then the row is deleted. A delivery that fails for good moves, in the same
transaction, to ``dead_letters``, from where ``boltrouter deadletters retry``
moves it back.

Crash safety: the file is in WAL mode, so a commit is one append to the
write-ahead log and a torn last write is rolled back on the next open, never
half-applied. ``synchronous=NORMAL`` (the default) makes every commit survive
the death of the process (``kill -9``, OOM, a crash): the appended log frames
are in the operating system's cache before ``accept`` returns. Only a power
loss or kernel crash can forget the last commits (the file still opens
cleanly). ``synchronous=FULL`` also survives that, at the price of one fsync
per accepted event on the event loop; choose it with ``outbox.synchronous``.

A file that is not a database or is damaged is moved aside to
``<path>.corrupt-<timestamp>`` (its ``-wal``/``-shm`` companions with it) and a
fresh outbox is created, so a bad file costs its content but never makes the
daemon crash in a loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..secrets import redact

log = logging.getLogger("boltrouter.outbox")

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    event BLOB NOT NULL,
    payload TEXT,
    route TEXT,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt REAL,
    last_attempt REAL,
    last_status INTEGER,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event BLOB NOT NULL,
    payload TEXT,
    route TEXT,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL,
    first_attempt REAL,
    last_attempt REAL,
    last_status INTEGER,
    response TEXT,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL
);
"""
_CORRUPT_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_ROW = ("seq, event_id, event, payload, route, created, next_at, attempts, first_attempt, "
        "last_attempt, last_status, last_error")
_DEAD = ("id, sink, event_id, event, payload, route, created, attempts, first_attempt, "
         "last_attempt, last_status, response, reason, failed_at")
RESPONSE_EXCERPT = 500


@dataclass(slots=True)
class OutboxRow:
    """One delivery waiting for a 2xx."""

    seq: int
    event_id: str
    event: bytes
    payload: str | None
    route: str | None
    created: float
    next_at: float
    attempts: int
    first_attempt: float | None
    last_attempt: float | None
    last_status: int | None
    last_error: str | None


@dataclass(slots=True)
class DeadLetter:
    """One delivery that failed for good."""

    id: int
    sink: str
    event_id: str
    event: bytes
    payload: str | None
    route: str | None
    created: float
    attempts: int
    first_attempt: float | None
    last_attempt: float | None
    last_status: int | None
    response: str | None
    reason: str
    failed_at: float


class OutboxError(Exception):
    """The outbox cannot be used (disk full, no permission, ...)."""


def is_corruption(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) in _CORRUPT_CODES
        or "not a database" in str(exc) or "malformed" in str(exc))


class Outbox:
    """SQLite outbox of one webhook sink. Not thread-safe: use it from one thread."""

    def __init__(self, path: Path, sink: str, synchronous: str = "normal") -> None:
        self.path = Path(path)
        self.sink = sink
        self.synchronous = synchronous.upper()
        self.conn: sqlite3.Connection | None = None
        self.generation = 0
        """Bumped when a corrupt file was replaced: sequence numbers seen before are void."""
        self.moved_aside: list[Path] = []
        self._data_version = 0

    # -- opening ---------------------------------------------------------------------

    def open(self) -> None:
        """Open or create the file; a corrupt one is moved aside and replaced."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"cannot create the folder of the outbox {self.path}: "
                              f"{exc.strerror}; check outbox.path and state_dir") from None
        try:
            self._connect()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from None
            self._replace_corrupt(exc)

    def _connect(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=5.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.executescript(_SCHEMA)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise OutboxError(f"the outbox {self.path} was written by a newer boltrouter "
                                  f"(schema {version}); upgrade boltrouter or set another "
                                  f"outbox.path")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({check})")
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        self._data_version = self._read_data_version()

    def _replace_corrupt(self, exc: BaseException) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
            self.conn = None
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                dst = Path(f"{target}{suffix}")
                os.replace(src, dst)
                if not suffix:
                    self.moved_aside.append(dst)
        log.error("webhook sink %r: the outbox %s is unreadable (%s); moved it aside to %s and "
                  "started a fresh one. Events still queued in the old file were not delivered; "
                  "inspect or delete it.", self.sink, self.path, redact(exc), target)
        self.generation += 1
        self._connect()

    def _do(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn``; when the file turns out corrupt, replace it and run once more."""
        if self.conn is None:
            raise OutboxError(f"the outbox {self.path} is not open")
        try:
            return fn(self.conn)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            self._replace_corrupt(exc)
            return fn(self.conn)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the queue -------------------------------------------------------------------------

    def add(self, rows: Sequence[tuple[str, bytes, str | None, str | None]],
            now: float | None = None) -> list[int]:
        """Insert ``(event_id, event_json, payload, route)`` rows; returns their sequence numbers."""
        t = time.time() if now is None else now

        def run(conn: sqlite3.Connection) -> list[int]:
            if len(rows) == 1:
                eid, ev, payload, route = rows[0]
                cur = conn.execute(
                    "INSERT INTO outbox (event_id, event, payload, route, created, next_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (eid, ev, payload, route, t, t))
                return [int(cur.lastrowid or 0)]
            with _write_transaction(conn):
                first = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
                conn.executemany(
                    "INSERT INTO outbox (event_id, event, payload, route, created, next_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(eid, ev, payload, route, t, t) for eid, ev, payload, route in rows])
                seqs = [r[0] for r in conn.execute(
                    "SELECT seq FROM outbox WHERE seq > ? ORDER BY seq", (first,))]
            return seqs

        return self._do(run)

    def pending(self, after: int = 0) -> list[tuple[int, float]]:
        """``(seq, next_at)`` of every queued delivery with ``seq > after``, oldest first."""
        return self._do(lambda c: [(int(s), float(n)) for s, n in c.execute(
            "SELECT seq, next_at FROM outbox WHERE seq > ? ORDER BY seq", (after,))])

    def get(self, seqs: Iterable[int]) -> list[OutboxRow]:
        """The rows still queued among ``seqs``, in sequence order."""
        seqs = list(seqs)
        if not seqs:
            return []

        def run(conn: sqlite3.Connection) -> list[OutboxRow]:
            marks = ",".join("?" * len(seqs))
            return [OutboxRow(*r) for r in conn.execute(
                f"SELECT {_ROW} FROM outbox WHERE seq IN ({marks}) ORDER BY seq", seqs)]
        return self._do(run)

    def ack(self, seqs: Sequence[int]) -> int:
        """Delete delivered rows; returns how many were still there."""
        def run(conn: sqlite3.Connection) -> int:
            if len(seqs) == 1:
                return conn.execute("DELETE FROM outbox WHERE seq = ?", (seqs[0],)).rowcount
            marks = ",".join("?" * len(seqs))
            return conn.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", list(seqs)).rowcount
        return self._do(run)

    def retry_later(self, when: Sequence[tuple[int, float]], status: int | None, error: str,
                    now: float | None = None) -> None:
        """Record one failed attempt of each ``(seq, next_at)`` and when to try it again."""
        t = time.time() if now is None else now
        excerpt = error[:RESPONSE_EXCERPT]

        def run(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, next_at = ?, "
                    "first_attempt = COALESCE(first_attempt, ?), last_attempt = ?, "
                    "last_status = ?, last_error = ? WHERE seq = ?",
                    [(at, t, t, status, excerpt, s) for s, at in when])
        self._do(run)

    def bury(self, seqs: Sequence[int], status: int | None, response: str | None, reason: str,
             now: float | None = None) -> int:
        """Move rows to the dead letters, counting the attempt that just failed."""
        t = time.time() if now is None else now
        excerpt = None if response is None else response[:RESPONSE_EXCERPT]

        def run(conn: sqlite3.Connection) -> int:
            with _write_transaction(conn):
                moved = 0
                for s in seqs:
                    cur = conn.execute(
                        "INSERT INTO dead_letters (sink, event_id, event, payload, route, "
                        "created, attempts, first_attempt, last_attempt, last_status, "
                        "response, reason, failed_at) "
                        "SELECT ?, event_id, event, payload, route, created, attempts + 1, "
                        "COALESCE(first_attempt, ?), ?, ?, ?, ?, ? FROM outbox WHERE seq = ?",
                        (self.sink, t, t, status, excerpt, reason, t, s))
                    if cur.rowcount:
                        conn.execute("DELETE FROM outbox WHERE seq = ?", (s,))
                        moved += 1
            return moved
        return self._do(run)

    def drop_oldest(self, n: int) -> int:
        """Delete the ``n`` oldest queued rows (the ``drop_oldest`` policy of a full outbox)."""
        return self._do(lambda c: c.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
            (n,)).rowcount)

    def count(self) -> int:
        return self._do(lambda c: int(c.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]))

    # -- dead letters ----------------------------------------------------------------------

    def dead_count(self) -> int:
        return self._do(lambda c: int(c.execute(
            "SELECT COUNT(*) FROM dead_letters").fetchone()[0]))

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        sql = f"SELECT {_DEAD} FROM dead_letters ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._do(lambda c: [DeadLetter(*r) for r in c.execute(sql)])

    def dead_letter(self, dead_id: int) -> DeadLetter | None:
        row = self._do(lambda c: c.execute(
            f"SELECT {_DEAD} FROM dead_letters WHERE id = ?", (dead_id,)).fetchone())
        return None if row is None else DeadLetter(*row)

    def revive(self, ids: Sequence[int] | None) -> list[int]:
        """Move dead letters (all when ``ids`` is None) back to the outbox, with fresh attempts
        and age; returns their new sequence numbers."""
        now = time.time()

        def run(conn: sqlite3.Connection) -> list[int]:
            with _write_transaction(conn):
                first = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
                where, args = _ids_clause(ids)
                conn.execute(
                    "INSERT INTO outbox (event_id, event, payload, route, created, next_at) "
                    f"SELECT event_id, event, payload, route, ?, ? FROM dead_letters {where} "
                    "ORDER BY id", [now, now, *args])
                conn.execute(f"DELETE FROM dead_letters {where}", args)
                seqs = [r[0] for r in conn.execute(
                    "SELECT seq FROM outbox WHERE seq > ? ORDER BY seq", (first,))]
            return seqs
        return self._do(run)

    def purge(self, ids: Sequence[int] | None) -> int:
        """Delete dead letters for good (all when ``ids`` is None)."""
        where, args = _ids_clause(ids)
        return self._do(lambda c: c.execute(f"DELETE FROM dead_letters {where}", args).rowcount)

    # -- other processes -------------------------------------------------------------------

    def _read_data_version(self) -> int:
        assert self.conn is not None
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def changed_elsewhere(self) -> bool:
        """True when another connection (the ``deadletters`` CLI) committed since last asked."""
        version = self._do(lambda c: self._read_data_version())
        changed = version != self._data_version
        self._data_version = version
        return changed


def _ids_clause(ids: Sequence[int] | None) -> tuple[str, list[Any]]:
    if ids is None:
        return "", []
    ids = list(ids)
    if not ids:
        return "WHERE 0", []
    return f"WHERE id IN ({','.join('?' * len(ids))})", ids


@contextlib.contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back when anything in between fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
