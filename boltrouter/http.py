"""The local HTTP endpoint: /healthz, /readyz, /metrics, the status page and tap.

Off by default on TCP (``http: {enabled: true}``, loopback unless told
otherwise, optional bearer token). The same endpoints are always served on a
unix socket in the state directory (mode 0600), which ``boltrouter tap`` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from .events import Event
from .secrets import redact

log = logging.getLogger("boltrouter.http")

SOCKET_NAME = "boltrouter.sock"


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


class HttpServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 8765,
                 token: str | None = None, tcp: bool = True, unix_path: Path | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.token = token or None
        self.tcp = tcp
        self.unix_path = unix_path
        self._servers: list[asyncio.base_events.Server] = []
        self._streams: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        if self.tcp:
            server = await asyncio.start_server(self._handle, self.host, self.port)
            self.port = server.sockets[0].getsockname()[1]
            self._servers.append(server)
            log.info("HTTP endpoint on http://%s:%d/ (status page, /metrics, /healthz, /readyz)",
                     self.host, self.port)
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.unix_path.unlink()
            try:
                old = os.umask(0o077)
                try:
                    server = await asyncio.start_unix_server(self._handle, str(self.unix_path))
                finally:
                    os.umask(old)
                self._servers.append(server)
            except OSError as exc:
                log.warning("control socket %s not available (%s); `boltrouter tap` needs the "
                            "HTTP endpoint then", self.unix_path, exc)
                self.unix_path = None

    async def stop(self) -> None:
        for task in list(self._streams):
            task.cancel()
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()
        if self.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.unix_path.unlink()

    # -- request handling ------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            async with asyncio.timeout(10):
                request = await reader.readuntil(b"\r\n\r\n")
            head = request.decode("latin-1").split("\r\n")
            method, target, _ = (head[0].split(" ", 2) + ["", ""])[:3]
            headers = {}
            for line in head[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            url = urlsplit(target)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            is_unix = writer.get_extra_info("peername") in (None, "", b"")
            if method not in ("GET", "HEAD"):
                await self._send(writer, 405, b"only GET is supported\n")
            elif url.path != "/healthz" and not is_unix and not self._authorized(headers, query):
                await self._send(writer, 401, b"missing or wrong bearer token\n",
                                 extra={"WWW-Authenticate": "Bearer"})
            else:
                await self._route(url.path, query, writer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception as exc:
            log.error("HTTP request failed: %s", redact(exc))
            with contextlib.suppress(Exception):
                await self._send(writer, 500, b"internal error\n")
        finally:
            if task is not None:
                self._streams.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    def _authorized(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        if not self.token:
            return True
        auth = headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else query.get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _route(self, path: str, query: dict[str, str], writer: asyncio.StreamWriter) -> None:
        app = self.app
        if path == "/healthz":
            await self._send(writer, 200, b"ok\n")
        elif path == "/readyz":
            ready, reasons = readiness(app)
            body = orjson.dumps({"ready": ready, "reasons": reasons})
            await self._send(writer, 200 if ready else 503, body, "application/json")
        elif path == "/metrics":
            update_gauges(app)
            await self._send(writer, 200, app.metrics.render().encode(),
                             "text/plain; version=0.0.4; charset=utf-8")
        elif path in ("/", "/status"):
            page = resources.files("boltrouter").joinpath("static/status.html").read_bytes()
            await self._send(writer, 200, page, "text/html; charset=utf-8")
        elif path == "/api/status":
            await self._send(writer, 200, orjson.dumps(status_document(app), default=str),
                             "application/json")
        elif path == "/api/tap":
            await self._tap(writer, query)
        else:
            await self._send(writer, 404, b"not found\n")

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes,
                    ctype: str = "text/plain; charset=utf-8",
                    extra: dict[str, str] | None = None) -> None:
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "")
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}",
                 f"Content-Length: {len(body)}", "Cache-Control: no-store", "Connection: close"]
        for k, v in (extra or {}).items():
            lines.append(f"{k}: {v}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    async def _tap(self, writer: asyncio.StreamWriter, query: dict[str, str]) -> None:
        """Stream matching events as JSON lines until the client goes away."""
        import fnmatch

        want_type = query.get("type")
        want_game = query.get("game")
        want_route = query.get("route")
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        dropped = 0

        def tap(event: Event, routes: list[str]) -> None:
            nonlocal dropped
            if want_type and not fnmatch.fnmatchcase(event.type, want_type):
                return
            if want_game and not fnmatch.fnmatchcase(event.game or "", want_game):
                return
            if want_route and not any(fnmatch.fnmatchcase(r, want_route) for r in routes):
                return
            doc = event.to_dict()
            doc["routes"] = routes
            try:
                queue.put_nowait(orjson.dumps(doc, default=str) + b"\n")
            except asyncio.QueueFull:
                dropped += 1

        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                     b"Cache-Control: no-store\r\nConnection: close\r\n\r\n")
        await writer.drain()
        self.app.taps.append(tap)
        try:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a stop's
                # cancellation that comes as a line does, and the stream would go on
                try:
                    async with asyncio.timeout(15):
                        line = await queue.get()
                except TimeoutError:
                    line = b"\n"  # keep-alive; also notices a client that left
                writer.write(line)
                await writer.drain()
        finally:
            with contextlib.suppress(ValueError):
                self.app.taps.remove(tap)


def readiness(app: Any) -> tuple[bool, list[str]]:
    reasons = []
    if not app.ready:
        reasons.append("starting")
    for name, feed in app.feeds.items():
        if getattr(feed, "required_for_ready", True) and not feed.connected:
            reasons.append(f"feed {name} is not connected")
    for name, runner in app.bus.runners.items():
        if not runner.sink.healthy():
            reasons.append(f"sink {name} is not healthy")
    return not reasons, reasons


def update_gauges(app: Any) -> None:
    m = app.metrics
    for route in app.routes.routes:
        m.inc("route_matched", 0, route=route.name)
    for name, runner in app.bus.runners.items():
        for counter in ("sink_delivered", "sink_failed", "sink_dropped"):
            m.inc(counter, 0, sink=name)
        st = runner.status()
        m.set("sink_queue_depth", len(runner.queue), sink=name)
        m.set("sink_healthy", 1 if st.get("healthy") else 0, sink=name)
        if "outbox" in st:
            m.set("outbox_size", st["outbox"], sink=name)
        if "dead_letters" in st:
            m.set("dead_letters", st["dead_letters"], sink=name)
    for name, feed in app.feeds.items():
        m.inc("feed_reconnects", 0, feed=name)
        st = feed.status()
        m.set("feed_connected", 1 if st.get("connected") else 0, feed=name)
        if st.get("last_message_age") is not None:
            m.set("feed_last_message_age_seconds", st["last_message_age"], feed=name)
    with contextlib.suppress(Exception):
        m.set("odds_board_lines", len(app.board))
    m.set("uptime_seconds", time.monotonic() - app.started)
    m.set("queue_depth", app.bus.queue_depth())


def board_rows(app: Any, limit: int = 60) -> list[dict[str, Any]]:
    """The live board: tracked games with score, status and best moneyline odds."""
    rows = [{"universal_id": gs.universal_id, "game": gs.name, "sport": gs.sport,
             "home": gs.home, "away": gs.away, "status": gs.status,
             "home_score": gs.home_score, "away_score": gs.away_score,
             "period": gs.period, "clock": gs.clock, "start": gs.start,
             "best": best_moneyline(app, gs)}
            for gs in app.scoreboard.games()]
    order = {"live": 0, "scheduled": 1, "final": 2}
    rows.sort(key=lambda r: (order.get(r["status"], 3), r.get("start") or ""))
    return rows[:limit]


def best_moneyline(app: Any, gs: Any) -> dict[str, dict[str, Any]]:
    """{team: {odds, decimal, book}}: the best moneyline price of each side across books."""
    from .odds import odds_to_decimal

    best: dict[str, dict[str, Any]] = {}
    names = {gs.name}
    ref = app.catalogue.games.get(gs.universal_id)
    if ref is not None:
        names.add(ref.name)
    for name in filter(None, names):
        for book, lines in app.board.game_lines(name).items():
            for line in lines.values():
                if line.get("market") != "Moneyline":
                    continue
                decimal = odds_to_decimal(line.get("odds"))
                target = line.get("target")
                if decimal and (target not in best or decimal > best[target]["decimal"]):
                    best[target] = {"odds": line["odds"], "decimal": round(decimal, 3),
                                    "book": book}
    return best


def status_document(app: Any) -> dict[str, Any]:
    st = app.status()
    st["recent"] = [e.to_dict() for e in list(app.recent)[-25:]][::-1]
    st["board"] = board_rows(app)
    st["summary"] = app.summary_line()
    st["ready"] = readiness(app)[0]
    return st
