"""The REST endpoints: a rate-limited client, the pollers and the CLI commands.

``RestClient`` speaks get_info, get_games, get_markets, get_parlays,
boxscores, match_stats and match_info with the upstream limits built in: at
most 12 requests a minute with a burst of 3 (``RateLimiter``, one per upstream
host shared by every caller in the process, queueing callers rather than
failing them), and 429 (honouring ``Retry-After``), 5xx and connection errors
retried with backoff. The API key travels as ``?key=`` and never reaches a log
line or an error text.

The ``rest`` feed polls get_games into the catalogue (first at startup, then
every ``poll.games``) and runs the optional pollers (``parlays``, ``boxscores``,
``match_stats``, ``match_info``), each publishing an event only when a game's
(or a sportsbook's) answer changed. Box scores and match info also feed the
scoreboard, which is how the live-scores feed (no snapshot on subscribe) gets
its starting scores.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import httpx
import orjson

from .. import hookimpl
from ..catalogue import GameRef
from ..config import Field
from ..events import (
    BOXSCORE_UPDATED,
    FEED_ERROR,
    MATCH_INFO_UPDATED,
    MATCH_STATS_UPDATED,
    PARLAY_UPDATED,
    Event,
    make_id,
    now_iso,
    parse_time,
)
from ..feed import Feed
from ..scoreboard import ScoreUpdate
from ..secrets import RedactingFilter, redact, register_secret
from .scoreshapes import match_info_doc, parse_boxscore, parse_match_info
from .ws import Clock, classify_error, python_literal

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("boltrouter.rest")

DEFAULT_URL = "https://spro.agency/api"
KEY_REFUSED = "BoltOdds refused the API key: check BOLTODDS_API_KEY"
VOLATILE_KEYS = frozenset({"_dob", "_maxage", "_synced", "updated_uts"})
"""Keys that change on every answer without the content changing."""
GAMES_PER_REQUEST = 50
_UNSET = object()
HASHES_KEPT = 20_000
"""Answers remembered for change detection (games and sportsbooks polled)."""


class RestError(Exception):
    """A REST request failed for good; the message is safe to log (no key)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(redact(message))
        self.status = status


# -- rate limiting ------------------------------------------------------------------------

class RateLimiter:
    """At most ``per_minute`` requests in any 60 s, at most ``burst`` back to back.

    A token bucket (``burst`` tokens, refilled at ``per_minute`` a minute) plus a
    sliding window of the last ``per_minute`` request times. Callers queue in
    arrival order; nobody is rejected. ``clock`` (``monotonic()``, ``async
    sleep()``) can be a virtual clock in tests.
    """

    def __init__(self, per_minute: int = 12, burst: int = 3, clock: Clock | None = None) -> None:
        self.per_minute = max(1, int(per_minute))
        self.burst = max(1, int(burst))
        self.clock = clock or Clock()
        self.tokens = float(self.burst)
        self.stamp = self.clock.monotonic()
        self.sent: collections.deque[float] = collections.deque(maxlen=self.per_minute)
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.burst),
                          self.tokens + (now - self.stamp) * self.per_minute / 60.0)
        self.stamp = now

    def wait_time(self) -> float:
        """Seconds until one more request may leave (0 = now)."""
        now = self.clock.monotonic()
        self._refill(now)
        wait = 0.0 if self.tokens >= 1 else (1 - self.tokens) * 60.0 / self.per_minute
        if len(self.sent) >= self.per_minute:
            wait = max(wait, self.sent[0] + 60.0 - now)
        return max(wait, 0.0)

    async def acquire(self) -> float:
        """Wait for the right to send one request and take it; returns the wait."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        waited = 0.0
        async with self._lock:
            while (delay := self.wait_time()) > 1e-9:
                waited += delay
                await self.clock.sleep(delay)
            self._refill(self.clock.monotonic())
            self.tokens -= 1
            self.sent.append(self.clock.monotonic())
        return waited


_LIMITERS: dict[tuple[str, int, int], RateLimiter] = {}


def shared_limiter(url: str, per_minute: int = 12, burst: int = 3) -> RateLimiter:
    """The process-wide limiter of an upstream server (every caller shares it).

    Servers are told apart by host and port, so two local test servers (or the
    simulator and another one) each get their own budget.
    """
    key = ((urlsplit(url).netloc or "").lower(), per_minute, burst)
    limiter = _LIMITERS.get(key)
    if limiter is None:
        limiter = _LIMITERS[key] = RateLimiter(per_minute, burst)
    return limiter


# -- the client ---------------------------------------------------------------------------

def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RestClient:
    """The BoltOdds REST API. One ``httpx.AsyncClient`` for the client's life."""

    def __init__(self, base_url: str = DEFAULT_URL, api_key: str = "", *,
                 limiter: RateLimiter | None = None, clock: Clock | None = None,
                 retries: int = 4, timeout: float = 20.0, backoff_base: float = 1.0,
                 backoff_max: float = 60.0, metrics: Any = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        register_secret(api_key)
        self.clock = clock or Clock()
        self.limiter = limiter or shared_limiter(self.base_url)
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.metrics = metrics
        self._random = random.Random()
        self.http = httpx.AsyncClient(timeout=timeout, transport=transport,
                                      headers={"Accept": "application/json"})
        for name in ("httpx", "httpcore"):   # httpx logs each URL, key included
            logger = logging.getLogger(name)
            if not any(isinstance(f, RedactingFilter) for f in logger.filters):
                logger.addFilter(RedactingFilter())

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # -- endpoints --------------------------------------------------------------------

    async def get_info(self) -> dict[str, Any]:
        return _mapping(await self.request("GET", "get_info"), "get_info")

    async def get_games(self) -> dict[str, Any]:
        got = await self.request("GET", "get_games")
        if isinstance(got, list):     # entries without their name keys
            got = {str(e.get("game")): e for e in got if isinstance(e, dict) and e.get("game")}
        return _mapping(got, "get_games")

    async def get_markets(self, sportsbooks: Iterable[str] = (),
                          sports: Iterable[str] = ()) -> dict[str, Any]:
        params = {k: ",".join(v) for k, v in (("sportsbooks", list(sportsbooks)),
                                              ("sports", list(sports))) if v}
        return _mapping(await self.request("GET", "get_markets", params=params), "get_markets")

    async def get_parlays(self, sportsbook: str) -> list[Any]:
        got = await self.request("GET", "get_parlays", params={"sportsbooks": sportsbook})
        if isinstance(got, dict):
            got = got.get(sportsbook, got.get("parlays", []))
        return got if isinstance(got, list) else []

    async def boxscores(self, games: list[str]) -> dict[str, Any]:
        return await self._per_game("boxscores", games)

    async def match_stats(self, games: list[str]) -> dict[str, Any]:
        return await self._per_game("match_stats", games)

    async def match_info(self, games: list[str]) -> dict[str, Any]:
        return await self._per_game("match_info", games)

    async def _per_game(self, endpoint: str, games: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i in range(0, len(games), GAMES_PER_REQUEST):
            chunk = games[i:i + GAMES_PER_REQUEST]
            got = await self.request("POST", endpoint, json={"games": chunk})
            if isinstance(got, dict):
                out.update(got)
        return out

    # -- transport --------------------------------------------------------------------

    async def request(self, method: str, endpoint: str, *, params: dict[str, Any] | None = None,
                      json: Any = None) -> Any:
        """One call, rate-limited and retried; the decoded JSON (``{}`` for an empty body)."""
        url = f"{self.base_url}/{endpoint}"
        query = dict(params or {})
        if self.api_key:
            query["key"] = self.api_key
        problem = ""
        for attempt in range(self.retries + 1):
            await self.limiter.acquire()
            try:
                resp = await self.http.request(method, url, params=query, json=json)
            except httpx.HTTPError as exc:
                self._count(endpoint, "error")
                problem = f"could not reach {redact(self.base_url)}: {type(exc).__name__}" + (
                    f" ({redact(exc)})" if str(exc) else "")
                delay = self._backoff(attempt)
            else:
                status = resp.status_code
                self._count(endpoint, status)
                if status < 300:
                    answer = _decode(resp.content, endpoint)
                    refusal = _refusal(answer)
                    if refusal is None:
                        return answer
                    field, text = refusal
                    kind = classify_error(text)
                    if kind == "key":
                        raise RestError(f"{KEY_REFUSED} ({endpoint} said: {text})", status)
                    if kind == "plan":
                        raise RestError(f"the API key's plan does not include {endpoint} "
                                        f"({endpoint} said: {text})", status)
                    if kind != "overload":
                        if field != "error":
                            log.info("%s %s: upstream said %r; taken as no data",
                                     method, endpoint, text)
                            return {}
                        raise RestError(f"{method} {endpoint} answered with an error: {text}",
                                        status)
                    problem = f"rate limited by upstream ({text})"
                    delay = self._backoff(attempt)
                elif status in (401, 403):
                    raise RestError(f"{KEY_REFUSED} (HTTP {status} from {endpoint})", status)
                elif status == 429:
                    problem = "rate limited by upstream (HTTP 429)"
                    delay = max(retry_after(resp.headers.get("Retry-After"))
                                or 0.0, self._backoff(attempt))
                elif status >= 500:
                    problem = f"upstream error HTTP {status}"
                    delay = self._backoff(attempt)
                else:
                    body = redact(resp.text[:200].strip())
                    raise RestError(f"{method} {endpoint} was refused with HTTP {status}"
                                    + (f": {body}" if body else ""), status)
            if attempt < self.retries:
                log.info("%s %s: %s; retrying in %.1f s", method, endpoint, problem, delay)
                await self.clock.sleep(delay)
        raise RestError(f"{method} {endpoint} failed after {self.retries + 1} attempts: {problem}")

    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_max, self.backoff_base * 2 ** min(attempt, 20))
        return cap * self._random.uniform(0.5, 1.0)

    def _count(self, endpoint: str, status: Any) -> None:
        if self.metrics is not None:
            self.metrics.inc("rest_requests", endpoint=endpoint, status=status)


def _decode(content: bytes, endpoint: str) -> Any:
    if not content.strip():
        return {}
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        doc = python_literal(content)     # printed the way the docs print answers
        if doc is None:
            raise RestError(f"{endpoint} answered with something that is not JSON") from None
        return doc


def _refusal(answer: Any) -> tuple[str, str] | None:
    """(field, text) of an error upstream sent with a 2xx status (``{"error": "..."}``)."""
    if not isinstance(answer, dict) or not answer or len(answer) > 3 or not all(
            k in ("error", "message", "detail", "status", "code") for k in answer):
        return None
    for key in ("error", "message", "detail"):
        value = answer.get(key)
        if isinstance(value, str) and value:
            return key, redact(value[:300])
    return None


def _mapping(value: Any, endpoint: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RestError(f"{endpoint} answered with {type(value).__name__}, expected an object")
    return value


# -- change detection ---------------------------------------------------------------------

def stable(value: Any) -> Any:
    """The content without keys that change on every answer (``_dob``, ``updated_uts``...)."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def digest(value: Any) -> str:
    return hashlib.blake2b(orjson.dumps(stable(value), option=orjson.OPT_SORT_KEYS, default=str),
                           digest_size=12).hexdigest()


def match_stats_values(doc: Any) -> dict[str, Any]:
    """``{stat name: {home, away}}`` from one game of a match_stats answer."""
    out: dict[str, Any] = {}
    if not isinstance(doc, dict):
        return out
    for item in doc.get("doc") or []:
        data = item.get("data") if isinstance(item, dict) else None
        values = data.get("values") if isinstance(data, dict) else None
        if isinstance(values, dict):
            for key, entry in values.items():
                if isinstance(entry, dict):
                    out[str(entry.get("name") or key)] = entry.get("value")
    return out


# -- the feed -----------------------------------------------------------------------------

def _games_poll(every: float) -> Field:
    return Field(dict, schema={
        "games": Field(list, default=[], items=Field(str), one_or_list=True),
        "teams": Field(list, default=[], items=Field(str), one_or_list=True),
        "sports": Field(list, default=[], items=Field(str), one_or_list=True),
        "every": Field("duration", default=every, min=1),
    })


class RestFeed(Feed):
    """Polls the REST endpoints; get_games always, the others when configured."""

    options_schema: ClassVar[dict[str, Field]] = {
        "url": Field(str, default=DEFAULT_URL, help="base URL of the REST API, without the key"),
        "timeout": Field("duration", default=20.0, min=0.1),
        "retries": Field(int, default=4, min=0, help="retries of 429/5xx/connection errors"),
        "rate_limit": Field(dict, default={}, schema={
            "per_minute": Field(int, default=12, min=1),
            "burst": Field(int, default=3, min=1),
        }),
        "seed": Field(bool, default=True,
                      help="seed the scoreboard with match_info for the games the scores "
                           "and playbyplay feeds follow"),
        "poll": Field(dict, default={}, schema={
            "games": Field("duration", default=600.0, min=1, help="get_games interval"),
            "parlays": Field(dict, schema={
                "sportsbooks": Field(list, required=True, items=Field(str), one_or_list=True),
                "every": Field("duration", default=300.0, min=1),
            }),
            "boxscores": _games_poll(60.0),
            "match_stats": _games_poll(60.0),
            "match_info": _games_poll(60.0),
        }),
    }
    enabled_by_default: ClassVar[bool] = True
    simulator_path: ClassVar[str] = "/api"

    def __init__(self, name: str, options: dict[str, Any], app: App) -> None:
        super().__init__(name, options, app)
        self.client: RestClient | None = None
        self.clock = Clock()
        self._hashes: dict[tuple[str, str], str] = {}
        self._seeded: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._options_changed = asyncio.Event()

    def make_client(self) -> RestClient:
        limits = self.options.get("rate_limit") or {}
        url = str(self.options.get("url") or DEFAULT_URL)
        limiter = shared_limiter(url, int(limits.get("per_minute", 12)), int(limits.get("burst", 3)))
        return RestClient(url, self.app.api_key(), limiter=limiter, clock=self.clock,
                          retries=int(self.options.get("retries", 4)),
                          timeout=float(self.options.get("timeout", 20.0)),
                          metrics=self.app.metrics)

    def _pollers(self) -> dict[str, tuple[float, Callable[[], Awaitable[None]], Any]]:
        """The pollers the options ask for: name -> (interval, poll, its options)."""
        poll = self.options.get("poll") or {}
        every = float(poll.get("games", 600.0))
        wanted: dict[str, tuple[float, Callable[[], Awaitable[None]], Any]] = {
            "get_games": (every, self.poll_games, every)}
        for key, fn in (("parlays", self.poll_parlays), ("boxscores", self.poll_boxscores),
                        ("match_stats", self.poll_match_stats),
                        ("match_info", self.poll_match_info)):
            spec = poll.get(key)
            if spec:
                wanted[key] = (float(spec["every"]), fn, spec)
        return wanted

    def _client_settings(self) -> tuple[Any, ...]:
        return tuple(self.options.get(k) for k in ("url", "timeout", "retries", "rate_limit"))

    async def run(self) -> None:
        self.client = self.make_client()
        settings = self._client_settings()
        polled: dict[str, Any] = {}     # poller -> the options it last ran with
        try:
            await self._guard("get_games", self.poll_games)
            polled["get_games"] = self._pollers()["get_games"][2]
            while True:
                self._options_changed.clear()
                for name, (every, fn, spec) in self._pollers().items():
                    first = polled.get(name, _UNSET) != spec   # new or changed: poll now
                    polled[name] = spec
                    self._tasks.append(asyncio.create_task(self._loop(name, every, fn, first),
                                                           name=f"feed:rest:{name}"))
                await self._options_changed.wait()
                await self._stop_pollers()
                if self._client_settings() != settings:
                    settings = self._client_settings()
                    await self.client.aclose()
                    self.client = self.make_client()
        finally:
            await self._stop_pollers()
            self.connected = False
            await self.client.aclose()
            self.client = None

    async def _stop_pollers(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def reconfigure(self, options: dict[str, Any]) -> None:
        """New intervals, selections or endpoints apply at once; a poller that is new or
        whose options changed polls right away."""
        self.options = options
        self._options_changed.set()

    async def _loop(self, what: str, every: float, fn: Callable[[], Awaitable[None]],
                    first: bool) -> None:
        if first:
            await self._guard(what, fn)
        while True:
            await self.clock.sleep(every)
            await self._guard(what, fn)

    async def _guard(self, what: str, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except RestError as exc:
            self.connected = False
            self.log.warning("rest: %s failed: %s", what, exc)
            self.app.metrics.inc("rest_poll_failed", poller=what)
            received = now_iso()
            await self.app.publish(Event(FEED_ERROR, {"feed": self.name,
                                                      "message": f"{what}: {exc}"},
                                         time=received, received=received, feed=self.name))
        else:
            self.connected = True
            self.last_message = asyncio.get_running_loop().time()

    # -- pollers ----------------------------------------------------------------------

    async def poll_games(self) -> None:
        assert self.client is not None
        games = await self.client.get_games()
        if not games and len(self.app.catalogue):
            self.log.warning("rest: get_games answered with no game at all; keeping the %d "
                             "games it listed before", len(self.app.catalogue))
            return
        added, removed = self.app.catalogue.update(games)
        self.app.metrics.set("catalogue_games", len(self.app.catalogue))
        if added or removed:
            self.log.info("rest: get_games lists %d games (%d new, %d gone)",
                          len(self.app.catalogue), len(added), len(removed))
        if self.options.get("seed", True):
            await self.seed_scoreboard()

    async def seed_scoreboard(self) -> None:
        """Starting states of the followed games: ``scheduled`` for those still to
        start (so going live is an event), match_info for those that started and
        have no score yet (live scores send nothing until the next change)."""
        assert self.client is not None
        followed = self._followed_games()
        now = datetime.now(UTC)
        for ref in followed:
            start = parse_time(ref.start)
            if start is not None and start > now and self.app.scoreboard.get(
                    ref.universal_id) is None:
                self.app.scoreboard.apply(ScoreUpdate(feed=self.name, game=ref.name,
                                                      universal_id=ref.universal_id,
                                                      status="scheduled"))
        names = [ref.name for ref in followed if self._needs_seed(ref)]
        if not names:
            return
        self._seeded.update(names)
        answer = await self.client.match_info(names)
        for name, doc in answer.items():
            update = parse_match_info(name, doc, self.name)
            ref = self.app.catalogue.resolve(name)
            known = self.app.scoreboard.get(ref.universal_id) if ref else None
            if update is None or (known is not None and known.home_score is not None):
                continue   # a socket reported the game meanwhile: it is fresher
            await self.app.publish_many(self.app.scoreboard.apply(update))

    def _followed_games(self) -> list[GameRef]:
        refs: dict[str, GameRef] = {}
        for feed in self.app.feeds.values():
            selected = getattr(feed, "selected_games", None)
            if selected is None or getattr(feed, "selects_everything", True):
                continue
            for name in selected():
                ref = self.app.catalogue.resolve(name)
                if ref is not None:
                    refs[ref.universal_id] = ref
        return list(refs.values())

    def _needs_seed(self, ref: GameRef) -> bool:
        if ref.name in self._seeded:
            return False
        start = parse_time(ref.start)
        if start is None or start > datetime.now(UTC):
            return False
        state = self.app.scoreboard.get(ref.universal_id)
        return state is None or state.home_score is None

    def _poll_names(self, spec: dict[str, Any], started_only: bool) -> list[str]:
        catalogue = self.app.catalogue
        names = []
        for name in spec.get("games") or []:
            ref = catalogue.resolve(name)
            names.append(ref.name if ref else name)
        now = datetime.now(UTC)
        for ref in catalogue.select(teams=spec.get("teams") or (), sports=spec.get("sports") or ()):
            start = parse_time(ref.start)
            if started_only and (start is None or start > now):
                continue
            names.append(ref.name)
        return list(dict.fromkeys(names))

    async def poll_parlays(self) -> None:
        assert self.client is not None
        spec = (self.options.get("poll") or {}).get("parlays") or {}
        for book in spec.get("sportsbooks") or []:
            parlays = await self.client.get_parlays(book)
            if self._changed(PARLAY_UPDATED, book, parlays):
                received = now_iso()
                await self.app.publish(Event(
                    PARLAY_UPDATED, {"sportsbook": book, "count": len(parlays),
                                     "parlays": parlays},
                    id=stable_event_id(PARLAY_UPDATED, book, parlays), time=received,
                    received=received, feed=self.name, sportsbook=book))

    async def poll_boxscores(self) -> None:
        await self._poll_games_endpoint("boxscores", BOXSCORE_UPDATED)

    async def poll_match_stats(self) -> None:
        await self._poll_games_endpoint("match_stats", MATCH_STATS_UPDATED)

    async def poll_match_info(self) -> None:
        await self._poll_games_endpoint("match_info", MATCH_INFO_UPDATED)

    async def _poll_games_endpoint(self, endpoint: str, etype: str) -> None:
        assert self.client is not None
        spec = (self.options.get("poll") or {}).get(endpoint) or {}
        names = [n for n in self._poll_names(spec, started_only=True)
                 if not self._finished_and_reported(etype, n)]
        if not names:
            return
        answer = await getattr(self.client, endpoint)(names)
        received = now_iso()
        for name, doc in answer.items():
            if not self._changed(etype, name, doc):
                continue
            data, update = self._normalize(endpoint, name, doc)
            ref = self.app.catalogue.resolve(name)
            game_events = self.app.scoreboard.apply(update, received) if update else []
            await self.app.publish(Event(
                etype, data, id=stable_event_id(etype, name, doc, ref.start if ref else None),
                time=received, received=received, feed=self.name,
                sport=ref.sport if ref else None, game=ref.name if ref else name,
                universal_id=ref.universal_id if ref else None,
                home=ref.home if ref else None, away=ref.away if ref else None))
            await self.app.publish_many(game_events)

    def _normalize(self, endpoint: str, name: str, doc: Any) -> tuple[dict[str, Any], Any]:
        if endpoint == "boxscores":
            update = parse_boxscore(name, doc, self.name)
            summary = {} if update is None else {
                "home_score": update.home_score, "away_score": update.away_score,
                "clock": update.clock, "possession": update.possession, "status": update.status}
            return {**summary, "boxscore": doc}, update
        if endpoint == "match_info":
            update = parse_match_info(name, doc, self.name)
            summary = {} if update is None else {
                "home_score": update.home_score, "away_score": update.away_score,
                "period": update.period, "status": update.status}
            return {**summary, "info": match_info_doc(doc) or doc}, update
        return {"stats": match_stats_values(doc), "match_stats": doc}, None

    def _finished_and_reported(self, etype: str, name: str) -> bool:
        """A game that ended and whose answer was published already: no more polls."""
        ref = self.app.catalogue.resolve(name)
        state = self.app.scoreboard.get(ref.universal_id) if ref else None
        return state is not None and state.status == "final" and (etype, name) in self._hashes

    def _changed(self, etype: str, key: str, content: Any) -> bool:
        value = digest(content)
        if self._hashes.get((etype, key)) == value:
            return False
        self._hashes.pop((etype, key), None)
        self._hashes[(etype, key)] = value          # the most recent last
        while len(self._hashes) > HASHES_KEPT:
            del self._hashes[next(iter(self._hashes))]
        return True

    @property
    def required_for_ready(self) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        st = super().status()
        st["url"] = redact(str(self.options.get("url") or DEFAULT_URL))
        st["simulated"] = self.app.simulator is not None
        return st


def stable_event_id(etype: str, key: str, content: Any, start: str | None = None) -> str:
    """The same id for the same answer (volatile stamps aside), e.g. after a restart."""
    return make_id(start, etype, key, digest(content))


@hookimpl
def register_feed_types(register: Any) -> None:
    register("rest", RestFeed)


# -- CLI ------------------------------------------------------------------------------

@hookimpl
def register_commands(cli: Any) -> None:
    import click

    config_option = click.option(
        "--config", "config_path", type=click.Path(dir_okay=False),
        help="Take the API key and REST URL from this config (no key: the built-in simulator).")
    json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")

    @cli.command()
    @config_option
    @json_option
    def sports(config_path: str | None, as_json: bool) -> None:
        """List the sports upstream offers, spelled exactly as filters need them."""
        info = _cli_call(config_path, lambda c: c.get_info())
        _print_list(info.get("sports") or [], as_json)

    @cli.command()
    @config_option
    @json_option
    def books(config_path: str | None, as_json: bool) -> None:
        """List the sportsbooks upstream offers, spelled exactly as filters need them."""
        info = _cli_call(config_path, lambda c: c.get_info())
        _print_list(info.get("sportsbooks") or [], as_json)

    @cli.command()
    @config_option
    @json_option
    @click.option("--sport", help="Only games of this sport (as `boltrouter sports` lists it).")
    def games(config_path: str | None, as_json: bool, sport: str | None) -> None:
        """List the games upstream offers, by sport, soonest first."""
        from ..catalogue import Catalogue

        answer = _cli_call(config_path, lambda c: c.get_games())
        catalogue = Catalogue()
        catalogue.update(answer)
        refs = catalogue.games_for_sport(sport) if sport else sorted(
            catalogue.games.values(), key=lambda r: (r.sport or "", r.start or "", r.name))
        if as_json:
            click.echo(orjson.dumps([{"game": r.name, "sport": r.sport, "home": r.home,
                                      "away": r.away, "start": r.start,
                                      "universal_id": r.universal_id} for r in refs]).decode())
            return
        if not refs:
            click.echo(f"no games{f' for sport {sport!r}' if sport else ''}; "
                       "`boltrouter sports` lists the sports upstream offers", err=True)
            return
        current = None
        for ref in refs:
            if not sport and ref.sport != current:
                current = ref.sport
                click.echo(f"# {current}")
            click.echo(ref.name)

    @cli.command()
    @config_option
    @json_option
    @click.option("--book", help="Only this sportsbook (as `boltrouter books` lists it).")
    @click.option("--sport", help="Only this sport (as `boltrouter sports` lists it).")
    def markets(config_path: str | None, as_json: bool, book: str | None,
                sport: str | None) -> None:
        """List the markets upstream offers per sportsbook and sport."""
        answer = _cli_call(config_path, lambda c: c.get_markets(
            [book] if book else (), [sport] if sport else ()))
        if as_json:
            click.echo(orjson.dumps(answer).decode())
            return
        shown = 0
        for book_name, by_sport in answer.items():
            if book and book_name != book or not isinstance(by_sport, dict):
                continue
            for sport_name, names in by_sport.items():
                if sport and sport_name != sport or not isinstance(names, list):
                    continue
                click.echo(f"# {book_name} / {sport_name}")
                for market in names:
                    click.echo(str(market))
                shown += 1
        if not shown:
            click.echo("no markets for that sportsbook and sport; `boltrouter books` and "
                       "`boltrouter sports` list the exact names", err=True)


def _print_list(values: list[Any], as_json: bool) -> None:
    import click

    if as_json:
        click.echo(orjson.dumps(values).decode())
        return
    for value in values:
        click.echo(str(value))


def _cli_call(config_path: str | None, call: Callable[[RestClient], Awaitable[Any]]) -> Any:
    """Run one REST call for a CLI command: the real API when a key is configured; else
    the simulator of the daemon running with ``--config`` (so the names printed are
    the ones it plays), else a simulator started for this command."""
    import os
    import sys

    import click

    from ..app import App
    from ..cli import load_or_exit, run_async

    sim_options: dict[str, Any] = {}   # the simulator's defaults, as in a config without one
    state_dir = None
    if config_path:
        config = load_or_exit(config_path)
        key, use_simulator = config.api_key, config.use_simulator
        rest = config.data["boltodds"].get("rest") or {}
        url = rest.get("url") or DEFAULT_URL
        sim_options = config.data["simulator"]
        state_dir = App.state_dir_of(config)
    else:
        key = os.environ.get("BOLTODDS_API_KEY", "")
        use_simulator, url = not key, DEFAULT_URL

    async def go() -> Any:
        simulator = None
        base = url
        if use_simulator:
            running = await running_simulator_url(state_dir) if state_dir else None
            if running:
                base = running
                click.echo("no API key: answering from the simulator of the running daemon",
                           err=True)
            else:
                from ..simulator import start_simulator

                simulator = await start_simulator(sim_options)
                base = simulator.url_for("rest")
                click.echo("no API key: answering from the built-in simulator", err=True)
        try:
            async with RestClient(base, "" if use_simulator else key, retries=2) as client:
                return await call(client)
        finally:
            if simulator is not None:
                await simulator.stop()

    try:
        return run_async(go())
    except RestError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


async def running_simulator_url(state_dir: Path) -> str | None:
    """The REST URL of the simulator a daemon with this state directory is using, asked
    over its control socket; None when no daemon answers or it talks to BoltOdds."""
    from ..http import socket_path

    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(socket_path(state_dir))), 2.0)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(b"GET /api/status HTTP/1.1\r\nHost: boltrouter\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5.0)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        return None
    try:
        rest = orjson.loads(body)["feeds"]["rest"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    url = rest.get("url") if isinstance(rest, dict) else None
    host = urlsplit(url).hostname if isinstance(url, str) else None
    return url if rest.get("simulated") and host else None
