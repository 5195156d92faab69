"""The simulator server: one websocket port for odds, live scores and play-by-play,
one small HTTP port for the REST endpoints, a tick loop that moves the world, and
the fault controls tests use.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import logging
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from .odds_ws import OddsSession, timestamp
from .session import Session
from .world import Game, OddsMsg, World

log = logging.getLogger("boltrouter.simulator")

DEFAULTS: dict[str, Any] = {
    "seed": 7,
    "games": 30,
    "updates_per_second": 200.0,
    "host": "127.0.0.1",
    "port": 0,
    "rest_port": 0,               # 0: a free port
    "speed": 30.0,                # simulated seconds per real second (games last minutes)
    "tick": 0.05,                 # seconds between world steps
    "ping_interval": 15.0,
    "resubscribe_window": 5.0,
    "max_sockets": 3,             # concurrent sockets per key and feed
    "connects_per_minute": 12,    # per IP; 0 = no limit
    "reject_key": "invalid",
    "rest_rate_limit": True,
    "rest_per_minute": 12,
    "rest_burst": 3,
    "clear_every": 180.0,         # seconds between random sport/book clears; 0 = never
    "batch": 40,                  # most messages in one list frame
    "initial_batch": 100,
    "epoch": None,                # ISO start time of the world; None = now
    "sports": None,               # limit the world to these leagues
}
PATHS = {"/api": "odds", "/api/livescores": "scores", "/api/playbyplay": "playbyplay"}
INVALID_KEY_BODY = ("Invalid API key. The key was not recognised: check the key sent in "
                    "your account email and try again.\n")


def session_types() -> dict[str, type[Session]]:
    from .playbyplay_ws import PlayByPlaySession
    from .scores_ws import ScoresSession
    return {"odds": OddsSession, "scores": ScoresSession, "playbyplay": PlayByPlaySession}


class SimulatorServer:
    """A local BoltOdds look-alike. See docs/simulator.md for options and faults."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        opts = dict(DEFAULTS)
        opts.update({k: v for k, v in (options or {}).items() if v is not None})
        self.options = opts
        epoch = opts["epoch"]
        if isinstance(epoch, str):
            epoch = datetime.fromisoformat(epoch.replace("Z", "+00:00"))
        self.world = World(int(opts["seed"]), int(opts["games"]), epoch=epoch,
                           speed=float(opts["speed"]),
                           updates_per_second=float(opts["updates_per_second"]),
                           clear_every=float(opts["clear_every"]), sports=opts["sports"])
        self.sessions: dict[str, set[Session]] = {f: set() for f in PATHS.values()}
        self.rejected_keys: set[str] = {opts["reject_key"]} if opts["reject_key"] else set()
        self.refuse_next = 0
        self.refuse_status = 503
        self.rest_fail_next = 0
        self.rest_fail_status = 429
        self.connects = 0
        self.refused = 0
        self._stalled_until: dict[str | None, float] = {}
        self._connect_times: dict[str, collections.deque[float]] = {}
        self._session_number = 0
        self._ws: Server | None = None
        self._rest: Any = None
        self._tick_task: asyncio.Task[None] | None = None
        self._types = session_types()
        self.host = str(opts["host"])
        self.port = 0
        self.rest_port = 0

    # -- addresses -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"ws://{self.host}:{self.port}/api"

    def url_for(self, feed: str) -> str:
        """The URL a client of ``feed`` (odds, scores, playbyplay, rest) connects to."""
        if feed == "rest":
            return f"http://{self.host}:{self.rest_port}/api"
        path = {v: k for k, v in PATHS.items()}.get(feed, "/api")
        return f"ws://{self.host}:{self.port}{path}"

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> SimulatorServer:
        from .rest import RestServer

        self._ws = await serve(self._handle, self.host, int(self.options["port"]),
                               process_request=self._process_request, compression=None,
                               ping_interval=None, max_size=2**20)
        sock = next(iter(self._ws.sockets))
        self.port = sock.getsockname()[1]
        self._rest = RestServer(self)
        self.rest_port = await self._rest.start(self.host, int(self.options["rest_port"]))
        self._tick_task = asyncio.create_task(self._tick_loop(), name="simulator-ticks")
        return self

    async def stop(self) -> None:
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        if self._rest is not None:
            await self._rest.stop()
            self._rest = None
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
            self._ws = None

    async def __aenter__(self) -> SimulatorServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connections -----------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path not in PATHS:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found.\n")
        key = parse_qs(parts.query).get("key", [""])[0]
        if key in self.rejected_keys:
            self.refused += 1
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, INVALID_KEY_BODY)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            self.refused += 1
            return connection.respond(http.HTTPStatus(self.refuse_status),
                                      "Service temporarily unavailable.\n")
        limit = int(self.options["connects_per_minute"])
        if limit > 0:
            ip = str(connection.remote_address[0]) if connection.remote_address else ""
            times = self._connect_times.setdefault(ip, collections.deque())
            now = time.monotonic()
            while times and now - times[0] > 60.0:
                times.popleft()
            if len(times) >= limit:
                self.refused += 1
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE,
                                          "Too many connections: at most "
                                          f"{limit} per minute per IP address.\n")
            times.append(now)
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path if ws.request else "/api")
        feed = PATHS.get(parts.path, "odds")
        key = parse_qs(parts.query).get("key", [""])[0]
        self.connects += 1
        self._session_number += 1
        same_key = [s for s in self.sessions[feed] if s.key == key]
        if len(same_key) >= int(self.options["max_sockets"]):
            await ws.send(orjson.dumps({"action": "error",
                                        "message": "too many concurrent connections"}), text=True)
            await ws.close(1008, "too many concurrent connections")
            return
        session = self._types[feed](self, ws, key, self._session_number)
        self.sessions[feed].add(session)
        try:
            await session.run()
        finally:
            self.sessions[feed].discard(session)

    def connection_count(self, feed: str | None = None) -> int:
        if feed is None:
            return sum(len(s) for s in self.sessions.values())
        return len(self.sessions[feed])

    async def wait_for(self, condition: Any, timeout: float = 5.0) -> None:
        """Wait until ``condition()`` is true (for tests); raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("simulator condition not met in time")
            await asyncio.sleep(0.01)

    # -- the world's clock -------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        dt = float(self.options["tick"])
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += dt
            try:
                self._tick(dt)
            except Exception:
                log.exception("simulator tick failed")
            delay = next_at - loop.time()
            if delay < -1.0:
                next_at = loop.time()
            await asyncio.sleep(max(0.0, delay))

    def _tick(self, dt: float) -> None:
        self.broadcast_odds(self.world.step(dt))
        self.broadcast_changes()

    def broadcast_odds(self, msgs: list[OddsMsg]) -> None:
        if not msgs:
            return
        stamp = timestamp()
        cache: dict[int, bytes] = {}
        for session in list(self.sessions["odds"]):
            assert isinstance(session, OddsSession)
            session.deliver(msgs, stamp, cache)

    def broadcast_changes(self) -> None:
        changed, plays, stats = self.world.take_changes()
        if not (changed or plays or stats):
            return
        for session in list(self.sessions["scores"]) + list(self.sessions["playbyplay"]):
            session.deliver_changes(changed, plays, stats)  # type: ignore[attr-defined]

    # -- faults (for tests) ------------------------------------------------------------------

    def is_stalled(self, feed: str) -> bool:
        now = time.monotonic()
        return any(self._stalled_until.get(k, 0.0) > now for k in (None, feed))

    def stall(self, seconds: float, feed: str | None = None) -> None:
        """Keep sockets open but send nothing at all (not even pings) for ``seconds``."""
        self._stalled_until[feed] = time.monotonic() + seconds

    def drop_connections(self, feed: str | None = None) -> int:
        """Close every connection (of ``feed``) abruptly, without a close frame."""
        dropped = 0
        for name, sessions in self.sessions.items():
            if feed is None or name == feed:
                for session in list(sessions):
                    session.ws.transport.abort()
                    dropped += 1
        return dropped

    def refuse_connections(self, n: int, status: int = 503) -> None:
        """Refuse the next ``n`` websocket handshakes with HTTP ``status``."""
        self.refuse_next = n
        self.refuse_status = status

    def fail_rest(self, n: int, status: int = 429) -> None:
        """Answer the next ``n`` REST requests with ``status`` (429 carries Retry-After)."""
        self.rest_fail_next = n
        self.rest_fail_status = status

    def reject_key(self, key: str) -> None:
        """Refuse this key at the handshake (401) and on REST from now on."""
        self.rejected_keys.add(key)

    def send_garbage(self, kind: str = "invalid_json", feed: str = "odds",
                     size_mib: float = 20.0) -> int:
        """Send a bad frame to every connection of ``feed``; returns the frame size.

        ``invalid_json``: truncated JSON. ``junk_list``: a JSON list of non-messages.
        ``unknown_action``: a well-formed message with an action nobody knows.
        ``huge``: a valid list frame of about ``size_mib`` MiB that repeats current lines
        unchanged (applying it changes nothing).
        """
        if kind == "invalid_json":
            frame = b'{"action": "line_update", "data": {"sport": "NBA", '
        elif kind == "junk_list":
            frame = b'[1, "two", null, {"no_action": true}, [], {"action": 5}]'
        elif kind == "unknown_action":
            frame = orjson.dumps({"action": "odds_flux_capacitor", "timestamp": timestamp(),
                                  "data": {"note": "an action the docs never mention"}})
        elif kind == "huge":
            frame = self._huge_frame(int(size_mib * 1024 * 1024))
        else:
            raise ValueError(f"unknown garbage kind {kind!r}: use invalid_json, junk_list, "
                             "unknown_action or huge")
        for session in list(self.sessions[feed]):
            session.send_frame(frame)
        return len(frame)

    def _huge_frame(self, size: int) -> bytes:
        stamp = timestamp()
        parts = []
        for (book, name), outcomes in self.world.lines.items():
            game = self.world.games[name]
            msg = self.world.odds_msg("line_update", book, game, dict(outcomes))
            parts.append(orjson.dumps({"timestamp": stamp, "action": msg.action,
                                       "data": msg.data}))
        if not parts:
            parts = [orjson.dumps({"action": "ping"})]
        out = []
        total = 0
        while total < size:
            for part in parts:
                out.append(part)
                total += len(part) + 1
                if total >= size:
                    break
        return b"[" + b",".join(out) + b"]"

    # -- forcing events (for tests) ------------------------------------------------------------

    def pause(self) -> None:
        """Freeze the world: no random odds, scores or plays until ``resume``."""
        self.world.paused = True

    def resume(self) -> None:
        self.world.paused = False

    def game(self, name_or_uid: str) -> Game:
        world = self.world
        game = world.games.get(name_or_uid) or world.by_uid.get(name_or_uid)
        if game is None:
            raise KeyError(f"no simulated game {name_or_uid!r}")
        return game

    def force_line_update(self, book: str, game: str, outcome: str, odds: Any) -> None:
        """Set one outcome's odds (None/''/"None" suspends) and send a ``line_update``."""
        self.broadcast_odds([self.world.force_line(book, self.game(game), outcome, odds)])

    def force_game_update(self, book: str, game: str) -> None:
        self.broadcast_odds([self.world.game_update(book, self.game(game))])

    def force_clear(self, book: str, sport: str | None = None, readd_after: float = 1.0) -> None:
        """``sport_clear`` (with ``sport``) or ``book_clear``; lines come back after
        ``readd_after`` seconds via ``game_added`` (negative: never)."""
        ticks = -1 if readd_after < 0 else int(readd_after / float(self.options["tick"]))
        self.broadcast_odds(self.world.clear(book, sport, ticks))

    def force_remove_game(self, game: str) -> None:
        self.broadcast_odds(self.world.remove_game(self.game(game)))

    def force_add_game(self) -> Game:
        world = self.world
        game = world._create_game()
        self.broadcast_odds([world.odds_msg("game_added", b, game, dict(world.lines[(b, game.name)]))
                             for b in game.books])
        return game

    def force_score(self, game: str, home: int, away: int, reprice: bool = True) -> None:
        """Set a game's score (it goes live if scheduled): the live-scores and play-by-play
        sockets report it, and with ``reprice`` every book sends a ``game_update``."""
        target = self.game(game)
        scorer = "home" if home - target.score["home"] >= away - target.score["away"] else "away"
        points = max(home - target.score["home"], away - target.score["away"], 0)
        self.world.set_score(target, home, away)
        self.world.add_forced_play(target, scorer, points)
        self.broadcast_changes()
        if reprice and target.odds_open:
            self.broadcast_odds([self.world.game_update(b, target) for b in target.books
                                 if (b, target.name) in self.world.lines])


async def start_simulator(options: dict[str, Any]) -> SimulatorServer:
    """Start the simulator on loopback; ``options`` as in the ``simulator:`` config section."""
    return await SimulatorServer(options).start()
