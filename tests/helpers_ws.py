"""A scriptable loopback websocket server that sends exact frames, for feed tests.

    server = await ScriptServer.start()
    conn = await server.next_connection()      # socket_connected was already sent
    await conn.send({"action": "ping"})        # an object, a list, or raw text
    sub = await conn.next_message()            # what the client sent, parsed
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

import orjson
from helpers_sinks import wait_until as wait_until  # re-exported for the feed tests
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


class Conn:
    """One accepted client connection."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.path = ws.request.path if ws.request else ""
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.received: list[Any] = []
        self.closed = asyncio.Event()

    async def send(self, frame: Any) -> None:
        """Send raw text as is, anything else as JSON."""
        if isinstance(frame, (str, bytes)):
            await self.ws.send(frame)
        else:
            await self.ws.send(orjson.dumps(frame).decode())

    async def next_message(self, timeout: float = 5.0) -> Any:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    def abort(self) -> None:
        self.ws.transport.abort()


class ScriptServer:
    """Accepts websocket connections on 127.0.0.1 and lets the test script them.

    ``greeting``: sent on every connection first (None = nothing).
    ``refuse``: an HTTP status to refuse handshakes with (None = accept), with the
    headers of ``refuse_headers``.
    ``http``: path -> JSON document served to plain HTTP GETs (the REST endpoints).
    """

    def __init__(self) -> None:
        self.greeting: Any = {"action": "socket_connected"}
        self.refuse: int | None = None
        self.refuse_headers: dict[str, str] = {}
        self.http: dict[str, Any] = {}
        self.http_requests: list[str] = []
        self.handshakes = 0
        self.connections: list[Conn] = []
        self._new: asyncio.Queue[Conn] = asyncio.Queue()
        self.server: Server | None = None
        self.port = 0

    @classmethod
    async def start(cls) -> ScriptServer:
        self = cls()
        self.server = await serve(self._handler, "127.0.0.1", 0, max_size=None,
                                  process_request=self._process_request, ping_interval=None,
                                  compression=None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            path = request.path.split("?", 1)[0]
            self.http_requests.append(request.path)
            if path in self.http:
                body = orjson.dumps(self.http[path])
                return Response(200, "OK", Headers({"Content-Type": "application/json",
                                                    "Content-Length": str(len(body))}), body)
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        self.handshakes += 1
        if self.refuse is not None:
            response = connection.respond(http.HTTPStatus(self.refuse), "refused\n")
            response.headers.update(self.refuse_headers)
            return response
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        conn = Conn(ws)
        self.connections.append(conn)
        if self.greeting is not None:
            await conn.send(self.greeting)
        self._new.put_nowait(conn)
        try:
            async for raw in ws:
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    msg = raw
                conn.received.append(msg)
                conn.messages.put_nowait(msg)
        except Exception:
            pass
        finally:
            conn.closed.set()

    async def next_connection(self, timeout: float = 5.0) -> Conn:
        return await asyncio.wait_for(self._new.get(), timeout)


class FakeClock:
    """A virtual clock for the reconnect logic: ``sleep`` advances time at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)
