"""The simulator's REST endpoints, answered from the simulated world.

``get_info``, ``get_games``, ``get_markets`` and ``get_parlays`` (GET) and
``boxscores``, ``match_stats`` and ``match_info`` (POST ``{"games": [...]}``)
under ``/api/``, with the key as ``?key=``. Scores, clocks and odds are read
from the same ``World`` the websockets stream, so a box score agrees with the
live-scores socket and a parlay's legs with the odds socket.

Like upstream: a refused key gets 401, more than ``rest_per_minute`` requests a
minute (or more than ``rest_burst`` back to back) get 429 with ``Retry-After``,
and ``SimulatorServer.fail_rest`` makes the next requests fail on purpose.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import h11
import orjson

from .data import BOOKS, PARLAY_BOOKS, League
from .world import PERIOD_NAMES, SUSPENDED_SPELLINGS, Game, World, ordinal, stable_int

if TYPE_CHECKING:
    from .server import SimulatorServer

log = logging.getLogger("boltrouter.simulator")

MAX_BODY = 1024 * 1024
PERIOD_LABELS = {"basketball": "Q", "football": "Q", "hockey": "P", "soccer": "H",
                 "baseball": "I", "tennis": "S"}
STATUS_IDS = {"basketball": 13, "football": 13, "hockey": 13, "soccer": 6, "baseball": 40,
              "tennis": 8}
PARLAYS_PER_BOOK = 4


class RateWindow:
    """Upstream's REST limit for one client address: ``per_minute`` in any 60 s,
    at most ``burst`` back to back (a bucket of ``burst`` refilled at ``per_minute``).

    ``slack`` seconds of network jitter are forgiven, so a client that paces its
    requests exactly to the limit is never refused."""

    def __init__(self, per_minute: int, burst: int, slack: float = 0.5) -> None:
        self.per_minute = max(1, per_minute)
        self.burst = max(1, burst)
        self.slack = slack
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()
        self.recent: collections.deque[float] = collections.deque()

    def admit(self) -> float:
        """0 when a request may pass now (and counts it), else seconds to wait."""
        now = time.monotonic()
        self.tokens = min(float(self.burst),
                          self.tokens + (now - self.stamp) * self.per_minute / 60.0)
        self.stamp = now
        while self.recent and now - self.recent[0] >= 60.0 - self.slack:
            self.recent.popleft()
        wait = max(0.0, (1.0 - self.tokens) * 60.0 / self.per_minute - self.slack)
        if len(self.recent) >= self.per_minute:
            wait = max(wait, self.recent[0] + 60.0 - self.slack - now)
        if wait > 0:
            return wait
        self.tokens = max(0.0, self.tokens - 1.0)
        self.recent.append(now)
        return 0.0


class Reply:
    """One HTTP answer: status, JSON-able body, extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}

    def encode(self) -> bytes:
        if isinstance(self.body, str):
            return self.body.encode()
        return orjson.dumps(self.body)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": message}, headers)


# -- documents ----------------------------------------------------------------------------

def league_markets(league: League, book: str) -> list[str]:
    """The markets a book offers for a league, as ``outcome_name`` spells them."""
    names = ["Moneyline", league.spread_name, "Total"]
    if BOOKS[book][3]:
        per_side = 1 if league.kind == "tennis" else 2
        names.extend(league.props[j % len(league.props)][0] for j in range(per_side))
    return list(dict.fromkeys(names))


def games_doc(world: World) -> dict[str, Any]:
    return {g.name: {"when": g.when, "game": g.name, "orig_teams": g.orig_teams,
                     "universal_id": g.uid, "sport": g.sport}
            for g in sorted(world.games.values(), key=lambda g: (g.start, g.name))}


def _period_scores(game: Game) -> dict[str, dict[str, int]]:
    label = PERIOD_LABELS[game.kind]
    if game.kind == "tennis":
        sets = list(game.extra["set_scores"])
        if game.status == "live":
            sets.append(game.extra["games"])
        return {f"{label}{i + 1}": {"home": s["home"], "away": s["away"]}
                for i, s in enumerate(sets)}
    return {f"{label}{i + 1}": dict(p) for i, p in enumerate(game.period_scores)}


def _period_name(game: Game) -> str:
    if game.kind == "baseball":
        half = "Top" if game.extra["top"] else "Bottom"
        return f"{half} {ordinal(game.extra['inning']).lower()} inning"
    if game.period > game.league.periods and game.kind != "tennis":
        return "Overtime"
    return f"{ordinal(game.period).lower()} {PERIOD_NAMES[game.kind].lower()}"


def _clock(world: World, game: Game) -> str:
    if game.status == "final":
        return "Final"
    if game.kind == "baseball":
        name = _period_name(game)
        return name[:1].upper() + name[1:]
    if game.kind == "tennis":
        return f"Set {len(game.extra['set_scores']) + 1}"
    return world.clock_text(game)


def boxscore_doc(world: World, game: Game) -> dict[str, Any]:
    """One game of a ``boxscores`` answer (live or finished games only)."""
    ex = game.extra
    doc_game: dict[str, Any] = {
        "scorePerPeriod": _period_scores(game),
        "location": "",
        "clock": _clock(world, game),
        "home": game.score["home"],
        "away": game.score["away"],
    }
    if game.kind == "football":
        doc_game.update(timeoutsTotal=3, timeoutsRemaining=dict(ex["timeouts"]),
                        isRedZone=ex["field_side"] != ex["possession"] and ex["yardline"] <= 20,
                        possession=ex["possession"])
    elif game.kind == "baseball":
        doc_game.update(outs=ex["outs"], balls=ex["balls"], strikes=ex["strikes"],
                        bases=list(ex["bases"]), possession="away" if ex["top"] else "home")
    elif game.kind == "tennis":
        doc_game.update(sets=dict(ex["sets"]), games=dict(ex["games"]),
                        points=world.tennis_point_text(game), possession=ex["server"])
    players = []
    for side in ("home", "away"):
        roster = game.players[side]
        points = game.stats[side].get("points", game.score[side])
        weights = [1 + stable_int(game.uid, name) % 5 for name, _n, _p in roster]
        shares = _split(points, weights)
        for (name, number, position), share in zip(roster, shares, strict=True):
            players.append({
                "player": {"player_name": name, "player_number": number,
                           "player_position": position, "team": side},
                "stats": {"points": str(share)},
            })
    return {"game": doc_game, "players": players}


def _split(total: int, weights: list[int]) -> list[int]:
    """``total`` shared out in proportion to ``weights``, summing exactly to ``total``."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares


def _stat_label(name: str) -> str:
    """``shotsOnTarget`` or ``shots_on_target`` -> ``Shots On Target``."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join(w[:1].upper() + w[1:] for w in words)


def _stat_id(name: str) -> str:
    return str(100 + stable_int("stat", name) % 1900)


def match_stats_doc(world: World, game: Game) -> dict[str, Any]:
    """One game of a ``match_stats`` answer: every counted stat, home and away."""
    names = sorted(set(game.stats["home"]) | set(game.stats["away"]) | {"points"})
    values = {}
    types = {}
    for name in names:
        label = _stat_label(name)
        ident = _stat_id(name)
        types[ident] = label
        values[ident] = {"name": label,
                         "value": {side: game.stats[side].get(name, 0)
                                   for side in ("home", "away")}}
    return {
        "doc": [{
            "event": "match_detailsextended",
            "_dob": int(world.now.timestamp()),
            "_maxage": 10,
            "data": {"_doc": "details", "_matchid": _match_id(game),
                     "teams": {"home": game.home, "away": game.away},
                     "index": list(values), "values": values},
        }],
        "types": types,
    }


def _match_id(game: Game) -> int:
    return 10_000_000 + stable_int("match", game.uid) % 90_000_000


def match_info_doc(world: World, game: Game) -> dict[str, Any]:
    """One game of a ``match_info`` answer: teams, result, periods, status."""
    started = int(game.start.timestamp())
    now = int(world.now.timestamp())
    if game.status == "scheduled":
        status = {"_doc": "status", "_id": 0, "name": "Not started", "shortName": "NS"}
        result: dict[str, Any] = {"home": None, "away": None, "winner": None}
        timeinfo: dict[str, Any] = {"injurytime": None, "ended": None, "started": None,
                                    "played": "0", "remaining": None, "running": False}
    else:
        if game.status == "final":
            status = {"_doc": "status", "_id": 100, "name": "Ended", "shortName": "END"}
        else:
            status = {"_doc": "status", "_id": STATUS_IDS[game.kind] + game.period - 1,
                      "name": _period_name(game), "shortName": f"P{game.period}"}
        score = dict(game.extra["sets"]) if game.kind == "tennis" else dict(game.score)
        winner = None
        if game.status == "final" and score["home"] != score["away"]:
            winner = "home" if score["home"] > score["away"] else "away"
        result = {**score, "winner": winner}
        ended = int(game.ended_at.timestamp()) if game.ended_at else None
        timeinfo = {"injurytime": None, "ended": str(ended) if ended else None,
                    "started": str(started), "played": str(max(0, (ended or now) - started)),
                    "remaining": "0" if game.status == "final" else None,
                    "running": game.status == "live"}
    periods = {f"p{i + 1}": v for i, v in enumerate(_period_scores(game).values())}
    match = {
        "_doc": "match",
        "_doctype": game.kind,
        "_id": _match_id(game),
        "_dt": {"_doc": "time", "time": game.start.strftime("%H:%M"),
                "date": game.start.strftime("%d/%m/%y"), "uts": started},
        "result": result,
        "periods": periods if game.status != "scheduled" else {},
        "updated_uts": now,
        "ended_uts": int(game.ended_at.timestamp()) if game.ended_at else False,
        "p": str(game.period) if game.status == "live" else "0",
        "timeinfo": timeinfo,
        "teams": {side: {"_doc": "team", "_id": stable_int(game.team(side)) % 10**7,
                         "name": game.team(side), "mediumname": game.team(side),
                         "virtual": False}
                  for side in ("home", "away")},
        "status": status,
        "removed": False,
    }
    return {"doc": [{"event": "match_timelinedelta", "_synced": True, "_dob": now,
                     "_maxage": 3, "data": {"match": match, "events": []}}]}


def _decimal(odds: str) -> float:
    value = float(odds)
    return 1.0 + (value / 100.0 if value > 0 else 100.0 / -value)


def _american(decimal: float) -> str:
    if decimal >= 2.0:
        return f"+{round((decimal - 1.0) * 100)}"
    return f"-{round(100.0 / (decimal - 1.0))}"


def parlays_doc(world: World, book: str) -> list[dict[str, Any]]:
    """A book's parlays: legs from its current lines (suspended legs leave the parlay out)."""
    if book not in PARLAY_BOOKS:
        return []
    games = sorted((g for g in world.games.values() if (book, g.name) in world.lines),
                   key=lambda g: g.name)
    if len(games) < 2:
        return []
    out = []
    for i in range(PARLAYS_PER_BOOK):
        rng = random.Random(f"{world.seed}:{book}:parlay:{i}")
        picks = rng.sample(games, min(len(games), rng.randint(2, 4)))
        legs: dict[str, Any] = {}
        decimal = 1.0
        for game in picks:
            table = world.lines[(book, game.name)]
            key = sorted(table)[rng.randrange(len(table))]
            outcome = table[key]
            if outcome["odds"] in SUSPENDED_SPELLINGS:
                legs = {}
                break
            decimal *= _decimal(str(outcome["odds"]))
            legs[key] = {"game": game.name, "sport": game.sport, "universal_id": game.uid,
                         "outcome_name": outcome["outcome_name"],
                         "outcome_line": outcome["outcome_line"],
                         "outcome_over_under": outcome["outcome_over_under"],
                         "outcome_target": outcome["outcome_target"]}
        if not legs:
            continue
        out.append({"odds": _american(decimal),
                    "total_bets": 100 + stable_int(book, i) % 3000 + world.ticks // 20,
                    "type": "SGP_PLUS" if len(legs) > 2 else "PARLAY",
                    "legs": legs})
    return out


# -- the server ---------------------------------------------------------------------------

class RestServer:
    """A small HTTP/1.1 server (asyncio + h11) answering the upstream REST endpoints."""

    def __init__(self, sim: SimulatorServer) -> None:
        self.sim = sim
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._windows: dict[str, RateWindow] = {}
        self._get: dict[str, Callable[[dict[str, list[str]]], Reply]] = {
            "get_info": self._get_info, "get_games": self._get_games,
            "get_markets": self._get_markets, "get_parlays": self._get_parlays,
        }
        self._post: dict[str, Callable[[World, Game], dict[str, Any] | None]] = {
            "boxscores": self._boxscore, "match_stats": self._match_stats,
            "match_info": lambda world, game: match_info_doc(world, game),
        }

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._connection, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    # -- HTTP -----------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else ""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    break
                reply = self._answer(request, body, ip)
                await self._send(conn, writer, request, reply)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(conn, writer, None, _error(400, f"bad request: {exc}"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader
                            ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body.extend(event.data)
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("request body larger than 1 MiB")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, (h11.ConnectionClosed, h11.PAUSED)):
                return None, b""

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                    request: h11.Request | None, reply: Reply) -> None:
        payload = reply.encode()
        content_type = "application/json" if not isinstance(reply.body, str) \
            else "text/plain; charset=utf-8"
        headers = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        headers.extend(reply.headers.items())
        if request is None:
            headers.append(("Connection", "close"))
        writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers)) or b"")
        if request is None or request.method != b"HEAD":
            writer.write(conn.send(h11.Data(data=payload)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    # -- routing ----------------------------------------------------------------------------

    def _answer(self, request: h11.Request, body: bytes, ip: str) -> Reply:
        from .server import INVALID_KEY_BODY

        parts = urlsplit(request.target.decode("latin-1"))
        query = parse_qs(parts.query)
        path = parts.path.rstrip("/")
        if not path.startswith("/api/"):
            return _error(404, f"no endpoint at {path or '/'}: the endpoints live under /api/")
        endpoint = path[len("/api/"):]
        method = request.method.decode("ascii", "replace").upper()
        if endpoint not in self._get and endpoint not in self._post:
            known = ", ".join(sorted([*self._get, *self._post]))
            return _error(404, f"unknown endpoint {endpoint!r}; known: {known}")
        key = query.get("key", [""])[0]
        if key in self.sim.rejected_keys:
            return Reply(401, INVALID_KEY_BODY)
        if self.sim.rest_fail_next > 0:
            self.sim.rest_fail_next -= 1
            status = self.sim.rest_fail_status
            headers = {"Retry-After": "1"} if status == 429 else {}
            return _error(status, "simulated failure", headers)
        wait = self._rate_wait(ip)
        if wait > 0:
            return _error(429, "Rate limit exceeded. Please slow down.",
                          {"Retry-After": str(max(1, math.ceil(wait)))})
        if endpoint in self._get:
            if method not in ("GET", "HEAD"):
                return _error(405, f"{endpoint} takes GET, not {method}", {"Allow": "GET"})
            return self._get[endpoint](query)
        if method != "POST":
            return _error(405, f"{endpoint} takes POST with a JSON body {{\"games\": [...]}}, "
                               f"not {method}", {"Allow": "POST"})
        return self._per_game(endpoint, body)

    def _rate_wait(self, ip: str) -> float:
        opts = self.sim.options
        if not opts.get("rest_rate_limit", True):
            return 0.0
        window = self._windows.get(ip)
        if window is None:
            window = self._windows[ip] = RateWindow(int(opts.get("rest_per_minute", 12)),
                                                    int(opts.get("rest_burst", 3)))
        return window.admit()

    # -- endpoints ----------------------------------------------------------------------------

    def _get_info(self, query: dict[str, list[str]]) -> Reply:
        world = self.sim.world
        return Reply(200, {"sports": [league.name for league in world.leagues],
                           "sportsbooks": list(BOOKS)})

    def _get_games(self, query: dict[str, list[str]]) -> Reply:
        return Reply(200, games_doc(self.sim.world))

    def _get_markets(self, query: dict[str, list[str]]) -> Reply:
        books = _csv(query.get("sportsbooks"))
        sports = _csv(query.get("sports"))
        out: dict[str, dict[str, list[str]]] = {}
        for book in BOOKS:
            if books is not None and book not in books:
                continue
            by_sport = {league.name: league_markets(league, book)
                        for league in self.sim.world.leagues
                        if sports is None or league.name in sports}
            if by_sport:
                out[book] = by_sport
        return Reply(200, out)

    def _get_parlays(self, query: dict[str, list[str]]) -> Reply:
        books = _csv(query.get("sportsbooks")) or []
        if len(books) != 1:
            return _error(400, "get_parlays needs exactly one sportsbook: "
                               "?sportsbooks=NAME (see get_info for the names)")
        return Reply(200, parlays_doc(self.sim.world, books[0]))

    def _per_game(self, endpoint: str, body: bytes) -> Reply:
        try:
            doc = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            doc = None
        names = doc.get("games") if isinstance(doc, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return _error(400, f"{endpoint} needs a JSON body {{\"games\": [\"<game>\", ...]}} "
                               "with game names as get_games spells them")
        world = self.sim.world
        build = self._post[endpoint]
        out = {}
        for name in names:
            game = world.games.get(name)
            if game is None:
                continue
            answer = build(world, game)
            if answer is not None:
                out[name] = answer
        return Reply(200, out)

    @staticmethod
    def _boxscore(world: World, game: Game) -> dict[str, Any] | None:
        return None if game.status == "scheduled" else boxscore_doc(world, game)

    @staticmethod
    def _match_stats(world: World, game: Game) -> dict[str, Any] | None:
        return None if game.status == "scheduled" else match_stats_doc(world, game)


def _csv(values: list[str] | None) -> list[str] | None:
    """``?x=a,b&x=c`` -> ``["a", "b", "c"]``; None when the parameter is absent."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]
