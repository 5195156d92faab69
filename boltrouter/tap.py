"""``boltrouter tap``: print the events a running daemon sees, live."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import click
import orjson

from .http import socket_path


async def tap_events(state_dir: Path | None, url: str | None, token: str | None,
                     filters: dict[str, str | None], limit: int = 0) -> int:
    query = urlencode({k: v for k, v in filters.items() if v})
    target = "/api/tap" + (f"?{query}" if query else "")
    if url:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise click.ClickException(f"cannot reach {url}: {exc.strerror or exc}") from None
    else:
        assert state_dir is not None
        path = socket_path(state_dir)
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
        except OSError:
            raise click.ClickException(
                f"no running boltrouter found (no control socket at {path}); is `boltrouter run` "
                "running with this config?") from None
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {target} HTTP/1.1\r\nHost: boltrouter\r\n{auth}\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise click.ClickException(f"the daemon refused the tap: {status.decode().strip()}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    shown = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        if not line.strip():
            continue
        ev = orjson.loads(line)
        routes = ",".join(ev.get("routes") or []) or "-"
        data = orjson.dumps(ev.get("data")).decode()
        if len(data) > 160:
            data = data[:157] + "..."
        sys.stdout.write(f"{ev['time'][11:23]} {ev['type']:<22} {ev.get('game') or '-'} "
                         f"[{routes}] {data}\n")
        sys.stdout.flush()
        shown += 1
        if limit and shown >= limit:
            break
    writer.close()
    return shown
