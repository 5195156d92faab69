"""What the three simulated websockets share: handshake ack, pings, framing, queues."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from .server import SimulatorServer

log = logging.getLogger("boltrouter.simulator")

PING = orjson.dumps({"action": "ping"})
MAX_QUEUED_FRAMES = 20_000


def frames_of(messages: list[bytes], rng: random.Random, batch: int) -> list[bytes]:
    """Pack serialized messages into frames as upstream does: mostly lists, some objects."""
    frames = []
    i = 0
    while i < len(messages):
        if rng.random() < 0.15:
            frames.append(messages[i])
            i += 1
            continue
        size = rng.randint(1, batch)
        chunk = messages[i:i + size]
        frames.append(b"[" + b",".join(chunk) + b"]")
        i += size
    return frames


class Session:
    """One client connection to a simulated websocket."""

    feed = ""

    def __init__(self, server: SimulatorServer, ws: ServerConnection, key: str,
                 number: int) -> None:
        self.server = server
        self.ws = ws
        self.key = key
        self.rng = random.Random(f"{server.options['seed']}:{self.feed}:{number}")
        self.subscribed = False
        self.filters: dict[str, Any] = {}
        self._queue: collections.deque[bytes] = collections.deque()
        self._wake = asyncio.Event()
        self.frames_sent = 0

    # -- sending -----------------------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        """Queue one frame (never blocks; a client too slow to keep up is dropped)."""
        if self.server.is_stalled(self.feed):
            return
        if len(self._queue) >= MAX_QUEUED_FRAMES:
            log.warning("simulator: %s client too slow, closing its connection", self.feed)
            self._queue.clear()
            asyncio.ensure_future(self.ws.close(1008, "client too slow"))
            return
        self._queue.append(frame)
        self._wake.set()

    def send_messages(self, messages: list[bytes], batch: int = 40) -> None:
        for frame in frames_of(messages, self.rng, batch):
            self.send_frame(frame)

    def send_obj(self, obj: Any) -> None:
        self.send_frame(orjson.dumps(obj))

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                frame = self._queue.popleft()
                await self.ws.send(frame, text=True)
                self.frames_sent += 1

    async def _pinger(self) -> None:
        interval = self.server.options["ping_interval"]
        while True:
            await asyncio.sleep(interval)
            self.send_frame(PING if self.rng.random() < 0.7 else b"[" + PING + b"]")

    # -- lifecycle -----------------------------------------------------------------------

    def connected_message(self) -> dict[str, Any]:
        return {"action": "socket_connected", "plan": "trial", "feed": self.feed}

    async def run(self) -> None:
        writer = asyncio.create_task(self._writer())
        pinger = asyncio.create_task(self._pinger())
        try:
            self.send_obj(self.connected_message())
            async for raw in self.ws:
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    self.send_obj({"action": "error", "message": "Invalid message format."})
                    continue
                if not isinstance(msg, dict):
                    self.send_obj({"action": "error", "message": "Invalid message format."})
                    continue
                await self.on_message(msg)
        except ConnectionClosed:
            pass
        finally:
            pinger.cancel()
            writer.cancel()
            await asyncio.gather(pinger, writer, return_exceptions=True)

    async def on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("action") != "subscribe":
            self.send_obj({"action": "error", "message": f"Unknown action: {msg.get('action')}"})
            return
        filters = msg.get("filters")
        if not isinstance(filters, dict):
            filters = {}
        clean: dict[str, Any] = {}
        for name, value in filters.items():
            if isinstance(value, str):
                value = [value]
            if isinstance(value, list):
                clean[name] = {v for v in value if isinstance(v, str)}
        first = not self.subscribed
        self.filters = clean
        self.subscribed = True
        self.on_subscribed(first)

    def on_subscribed(self, first: bool) -> None:
        if not first:
            self.send_obj({"action": "subscription_updated",
                           "message": "You have successfully updated your subscription filters."})

    def wants_game(self, name: str | None) -> bool:
        games = self.filters.get("games")
        return games is None or name in games
