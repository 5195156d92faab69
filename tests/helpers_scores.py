"""A daemon wired to loopback stand-ins of BoltOdds for the scores, play-by-play and
REST tests: a scriptable websocket server (exact frames) and a real HTTP server
answering the REST endpoints from a dict the test controls.

    rig = await Rig.start(tmp_path, games=GAMES, scores={"games": [...]})
    conn = await rig.connection()            # the feed connected and subscribed
    await conn.send({...match_update...})
    await rig.wait_for(lambda: rig.of_type("score.changed"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from helpers_http import Receiver, Reply, Request
from helpers_ws import Conn, ScriptServer, wait_until

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event

API_KEY = "k-scores-test-5f2a9c31d7"


def get_games_entry(name: str, uid: str, sport: str, when: str) -> dict[str, Any]:
    """One get_games entry as upstream writes it (``when`` in US Eastern time)."""
    return {name: {"when": when, "game": name, "orig_teams": name.split(",")[0],
                   "universal_id": uid, "sport": sport}}


class Rest:
    """The REST endpoints on a real local HTTP server; ``answers`` maps an endpoint to
    its JSON answer (or a callable taking the request); ``calls`` lists what arrived."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.receiver = Receiver(default=404)
        self.receiver.handler = self._answer

    def start(self) -> Rest:
        self.receiver.start()
        return self

    def stop(self) -> None:
        self.receiver.stop()

    @property
    def url(self) -> str:
        return f"{self.receiver.url}/api"

    def calls(self, endpoint: str) -> list[Request]:
        return [r for r in list(self.receiver.requests)
                if r.path.split("?")[0] == f"/api/{endpoint}"]

    def _answer(self, req: Request) -> Reply | None:
        endpoint = req.path.split("?")[0].removeprefix("/api/")
        if endpoint not in self.answers:
            return None
        answer = self.answers[endpoint]
        if callable(answer):
            answer = answer(req)
        if isinstance(answer, Reply):
            return answer
        return Reply(200, orjson.dumps(answer), {"content-type": "application/json"})


class Rig:
    def __init__(self, app: App, ws: ScriptServer, rest: Rest, doc: dict[str, Any]) -> None:
        self.app = app
        self.ws = ws
        self.rest = rest
        self.doc = doc
        """The config the daemon runs with; edit it and call ``reload``."""
        self.events: list[Event] = []
        app.taps.append(lambda event, routes: self.events.append(event))
        self._settles = 0

    @classmethod
    async def start(cls, folder: Path, *, games: dict[str, Any] | None = None,
                    scores: dict[str, Any] | None = None,
                    playbyplay: dict[str, Any] | None = None,
                    rest: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                    answers: dict[str, Any] | None = None) -> Rig:
        ws = await ScriptServer.start()
        server = Rest().start()
        server.answers["get_games"] = games or {}
        server.answers.update(answers or {})
        boltodds: dict[str, Any] = {"api_key": API_KEY,
                                    "rest": {"url": server.url, "seed": False, **(rest or {})}}
        base = f"ws://127.0.0.1:{ws.port}/api"
        if scores is not None:
            boltodds["scores"] = {"url": f"{base}/livescores", **scores}
        if playbyplay is not None:
            boltodds["playbyplay"] = {"url": f"{base}/playbyplay", **playbyplay}
        doc = {"boltodds": boltodds, "simulator": {"enabled": "never"},
               "summary": {"enabled": "never"}, "state_dir": str(folder), **(extra or {})}
        path = folder / "config.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        app = App(load_config(path))
        rig = cls(app, ws, server, doc)
        await app.start()
        return rig

    async def reload(self) -> None:
        """Write ``doc`` back and reload the daemon as SIGHUP does."""
        Path(self.app.config.path).write_text(yaml.safe_dump(self.doc, sort_keys=False))
        assert await self.app.reload() == []

    async def stop(self) -> None:
        await self.app.stop()
        await self.ws.stop()
        self.rest.stop()

    async def connection(self, timeout: float = 10.0) -> Conn:
        """The next websocket connection, once its client sent ``subscribe``."""
        conn = await self.ws.next_connection(timeout)
        msg = await conn.next_message(timeout)
        assert msg["action"] == "subscribe", msg
        return conn

    def of_type(self, etype: str) -> list[Event]:
        return [e for e in self.events if e.type == etype]

    async def wait_for(self, cond: Any, timeout: float = 10.0, what: str = "condition") -> Any:
        return await wait_until(cond, timeout, what)

    async def settle(self, conn: Conn) -> None:
        """Wait until every frame sent so far on ``conn`` was handled: frames are handled
        one after the other, so once the feed reads a ping sent last, the ones before it
        were handled. (Counting frames instead would race: the feed may be partway
        through the earlier ones when the count is taken.)"""
        name = _feed_of(conn)
        self._settles += 1
        ping = orjson.dumps({"action": "ping", "settle": self._settles}).decode()
        read: list[str] = []
        previous = getattr(self.app, "recorder", None)

        def recorder(feed: str, raw: str, received: str) -> None:
            if previous is not None:
                previous(feed, raw, received)
            if feed == name and raw == ping:
                read.append(raw)

        self.app.recorder = recorder
        try:
            await conn.send(ping)
            await wait_until(lambda: read, 10.0, f"the {name} feed to read a ping")
        finally:
            self.app.recorder = previous


def _feed_of(conn: Conn) -> str:
    path = conn.path.split("?")[0]
    return {"/api/livescores": "scores", "/api/playbyplay": "playbyplay"}.get(path, "odds")
