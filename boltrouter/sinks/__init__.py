"""Built-in sinks. Each module is a plugin registered exactly like a third-party one.

What the file-based sinks share lives here: a dedicated thread for blocking I/O,
so the event loop never waits on the disk, and errors that say which file could
not be written, why, and what to do about it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class SinkWriteError(Exception):
    """A sink could not write; the message names the file and the reason."""


_HINTS = {
    errno.ENOSPC: "free some disk space; the events of this batch are counted as failed",
    errno.EDQUOT: "the disk quota is exhausted; free some space",
    errno.EACCES: "check that this user may write the file and its folder",
    errno.EPERM: "check that this user may write the file and its folder",
    errno.EROFS: "the file system is mounted read-only; choose a writable path "
                 "(under systemd, the StateDirectory)",
}


def write_error(path: Path | str, exc: BaseException) -> SinkWriteError:
    """``cannot write to /x/y.db: <reason>; <what to do>`` for an OSError or sqlite error."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        hint = _HINTS.get(exc.errno or 0, "")
    else:
        reason = str(exc)
        code = getattr(exc, "sqlite_errorcode", None)
        hint = {
            sqlite3.SQLITE_FULL: _HINTS[errno.ENOSPC],
            sqlite3.SQLITE_READONLY: _HINTS[errno.EACCES],
            sqlite3.SQLITE_BUSY: "another program holds a write lock on the database; "
                                 "it is retried with the next batch",
            sqlite3.SQLITE_CANTOPEN: "check that the folder exists and is writable",
        }.get(code & 0xFF if isinstance(code, int) else -1, "")
        if code is not None and code & 0xFF in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
            hint = _folder_hint(Path(path).parent) or hint
    return SinkWriteError(f"cannot write to {path}: {reason}" + (f"; {hint}" if hint else ""))


def _folder_hint(folder: Path) -> str:
    """Why a folder cannot be written, when that is the reason; else ''."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only file system; {_HINTS[errno.EROFS]}"
        if not os.access(folder, os.W_OK):
            return f"this user may not write in {folder}; check its permissions"
    except OSError:
        return ""
    return ""


def make_folder(path: Path, sink: str) -> None:
    """Create the folder a sink writes into, or raise an error that says what to do."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SinkWriteError(f"sink {sink!r} cannot create the folder {path}: "
                             f"{exc.strerror or exc}; create it by hand or choose another "
                             f"path") from None


class IOThread:
    """One thread that runs a sink's blocking I/O in order, off the event loop."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Let the thread end once the work already submitted is done; never blocks."""
        self._executor.shutdown(wait=False)
