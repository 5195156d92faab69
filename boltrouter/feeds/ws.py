"""The websocket connection manager shared by every BoltOdds websocket feed.

``WebsocketFeed`` connects, waits for ``socket_connected``, sends the feed's
``subscribe_message()``, then reads frames until the socket drops, and
reconnects the way the upstream service wants to be treated:

- exponential backoff with full jitter, reset only after a connection that stayed
  up for ``stable_after`` seconds, with at least ``quick_drop_delay`` after a
  connection that dropped quickly (a server that accepts and closes at once
  must not make us loop fast);
- at most 12 connects per 60 s per upstream host, shared by every feed of the
  process (``ConnectLimiter``; loopback hosts such as the simulator are exempt);
- a socket that delivers nothing, not even an application ``ping``, for
  ``dead_after`` seconds is closed and reconnected;
- "too many concurrent connections" errors and HTTP 429/503 at the handshake
  back off for at least ``overload_delay`` seconds;
- HTTP 401/403, or an error message or close reason saying the key is invalid
  or the plan does not include the feed, stop the feed with one clear message
  (``FeedFatal``) instead of retrying forever; a close with code 1013 or a
  reason about too many connections backs off like an overload.

The API key travels in the URL's query string: every URL and every exception
text goes through ``redact`` before it reaches a log line, an event or an error.

Subclasses implement ``subscribe_message()`` and ``handle_message(msg, received)``
(return False for an action they do not know) and may override
``on_socket_connected``. ``handle_frame(raw, received)`` parses one raw frame and
dispatches its messages; ``boltrouter replay`` calls it for recorded frames.
"""

from __future__ import annotations

import ast
import asyncio
import collections
import io
import json
import logging
import random
import re
import time
import tokenize
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.frames import Close

from ..config import Field
from ..events import (
    FEED_CONNECTED,
    FEED_DISCONNECTED,
    FEED_ERROR,
    FEED_SUBSCRIBED,
    Event,
    now_iso,
)
from ..feed import Feed
from ..secrets import RedactingFilter, redact, register_secret

if TYPE_CHECKING:
    from ..app import App

KEY_REFUSED = "BoltOdds refused the API key: check BOLTODDS_API_KEY"
PLAN_REFUSED = ("BoltOdds does not serve the {0} feed on this API key's plan: upgrade the "
                "plan or turn the feed off with `boltodds.{0}: false`")
CONTROL_ACTIONS = frozenset({"socket_connected", "ping", "error", "subscription_updated"})


class FeedFatal(Exception):
    """The feed cannot work until the user changes something; no retry."""


class Clock:
    """Time as the reconnect logic sees it; tests substitute a virtual clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ConnectLimiter:
    """At most ``limit`` connects in any ``window`` seconds (a sliding window)."""

    def __init__(self, limit: int = 12, window: float = 60.0, clock: Clock | None = None) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock or Clock()
        self.stamps: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    def wait_time(self) -> float:
        """Seconds until one more connect is allowed (0 = now)."""
        now = self.clock.monotonic()
        while self.stamps and now - self.stamps[0] >= self.window:
            self.stamps.popleft()
        if len(self.stamps) < self.limit:
            return 0.0
        return self.stamps[0] + self.window - now

    async def acquire(self) -> float:
        """Wait for a free slot and take it; returns how long it waited."""
        waited = 0.0
        async with self._lock:
            while (delay := self.wait_time()) > 0:
                waited += delay
                await self.clock.sleep(delay)
            self.stamps.append(self.clock.monotonic())
        return waited


_LIMITERS: dict[str, ConnectLimiter] = {}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}


def limiter_for(url: str) -> ConnectLimiter | None:
    """The process-wide limiter of an upstream host; None for loopback (the simulator)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in _LOOPBACK or host.startswith("127."):
        return None
    limiter = _LIMITERS.get(host)
    if limiter is None:
        limiter = _LIMITERS[host] = ConnectLimiter()
    return limiter


def url_key(url: str) -> str:
    """The ``key=`` a URL already carries (users paste the docs' ``?key=YOUR_TOKEN``)."""
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name == "key":
            return value
    return ""


def with_key(url: str, key: str) -> str:
    """The URL with ``key=`` in its query string, percent-encoded and replacing a key
    already there (unchanged when key is empty)."""
    if not key:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "key"]
    query.append(("key", key))
    return urlunsplit(parts._replace(query=urlencode(query)))


_KEY_WORD = re.compile(r"\b(?:api[ _-]?key|key|token|auth\w*|credentials?)\b")
_KEY_PROBLEM = re.compile(r"invalid|unauthori|not authori|not valid|expired|denied|incorrect"
                          r"|wrong|refused|not found|missing|failed|not recogni|unknown"
                          r"|revoked|required|not provided|\bno\b")
_PLAN = re.compile(r"\b(?:plan|trial|custom users|subscription|account)\b")
_PLAN_PROBLEM = re.compile(r"not include|not available|only available|available to|upgrade"
                           r"|not allowed|no access|does not have|not part of|expired"
                           r"|inactive|not active|suspended|cancel")


def classify_error(message: str) -> str:
    """What an upstream ``error`` message means: key, plan, overload, resubscribe or other."""
    m = message.lower()
    if "subscri" in m and ("rate limit" in m or "wait" in m):
        return "resubscribe"
    if ("too many" in m or "concurrent" in m or "rate limit" in m
            or ("connection" in m and any(w in m for w in ("limit", "maximum", "exceeded")))):
        return "overload"
    if _KEY_WORD.search(m) and _KEY_PROBLEM.search(m):
        return "key"
    if "unauthori" in m or "forbidden" in m:
        return "key"
    if _PLAN.search(m) and _PLAN_PROBLEM.search(m):
        return "plan"
    return "other"


def describe(exc: BaseException) -> str:
    """A redacted one-line description of an exception."""
    text = str(exc).strip()
    name = type(exc).__name__
    return redact(f"{name}: {text}" if text else name)


def ws_options_schema(default_url: str) -> dict[str, Field]:
    """Options every websocket feed accepts; feeds add their own to a copy."""
    return {
        "url": Field(str, default=default_url, help="websocket URL, without the key"),
        "dead_after": Field("duration", default=45.0, min=1,
                            help="reconnect when nothing (not even a ping) arrives this long"),
        "backoff_base": Field("duration", default=1.0, min=0,
                              help="first reconnect delay; doubles per failed attempt"),
        "backoff_max": Field("duration", default=60.0, min=0, help="longest reconnect delay"),
        "connect_timeout": Field("duration", default=15.0, min=0.1,
                                 help="how long to wait for the handshake and socket_connected"),
    }


class _Drop:
    """Why a connection ended and how to treat the next attempt."""

    __slots__ = ("reason", "overloaded", "retry_after")

    def __init__(self, reason: str, overloaded: bool = False, retry_after: float = 0.0) -> None:
        self.reason = reason
        self.overloaded = overloaded
        self.retry_after = retry_after


class WebsocketFeed(Feed):
    """A BoltOdds websocket feed: connection management, parsing and control messages."""

    options_schema: ClassVar[dict[str, Field]] = ws_options_schema("")
    resubscribe_interval: ClassVar[float] = 5.0
    """Upstream rejects re-subscribing faster than this (seconds)."""
    stable_after: ClassVar[float] = 10.0
    """A connection that lasted less than this counts as a quick drop."""
    quick_drop_delay: float = 5.0
    """Minimum delay before reconnecting after a quick drop."""
    overload_delay: float = 30.0
    """Minimum delay after "too many connections" or HTTP 429/503."""
    log_every: float = 5.0
    """Repeated warnings (bad frames, unknown actions) are logged at most this often."""

    def __init__(self, name: str, options: dict[str, Any], app: App) -> None:
        super().__init__(name, options, app)
        if not any(isinstance(f, RedactingFilter) for f in self.log.filters):
            self.log.addFilter(RedactingFilter())
        self._ws_log = logging.getLogger(f"boltrouter.feed.{name}.websocket")
        if not any(isinstance(f, RedactingFilter) for f in self._ws_log.filters):
            self._ws_log.addFilter(RedactingFilter())
        register_secret(url_key(str(options.get("url") or "")))
        self.clock = Clock()
        self.limiter: ConnectLimiter | None = limiter_for(str(options.get("url") or ""))
        self.ws: ClientConnection | None = None
        self.acked = False
        self.fatal: str | None = None
        self._attempt = 0
        self._overloaded = False
        self._close_reason: str | None = None
        self._last_subscribe = float("-inf")
        self.subscribes_sent = 0
        """``subscribe`` messages sent so far (on every connection)."""
        self._subscribe_task: asyncio.Task[None] | None = None
        self._pending_filters: Any = None
        self._warned: dict[str, tuple[float, int]] = {}
        self._random = random.Random()

    # -- what subclasses provide ----------------------------------------------------------

    def subscribe_message(self) -> dict[str, Any] | None:
        """The ``subscribe`` message to send after ``socket_connected`` (None = send none)."""
        return None

    async def handle_message(self, msg: dict[str, Any], received: str) -> bool:
        """Handle one data message; return False when its action is unknown."""
        return False

    async def on_socket_connected(self, msg: dict[str, Any], received: str) -> None:
        """Called for each ``socket_connected`` (live and in replays) after feed.connected."""

    async def on_control(self, action: str, msg: dict[str, Any], received: str) -> None:
        """Called after the base class handled a ``ping``, ``error`` or
        ``subscription_updated`` message."""

    # -- URLs and events ------------------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self.options.get("url") or "")

    def connect_url(self) -> str:
        key = self.app.api_key() or url_key(self.url)
        register_secret(key)
        return with_key(self.url, key)

    async def emit(self, etype: str, received: str | None = None, **data: Any) -> None:
        received = received or now_iso()
        await self.app.publish(Event(etype, {"feed": self.name, **data}, time=received,
                                     received=received, feed=self.name))

    # -- the reconnect loop ---------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                if self.limiter is not None:
                    waited = await self.limiter.acquire()
                    if waited > 1:
                        self.log.info("%s feed: waited %.0f s for the connect-rate limit "
                                      "(12 connects a minute)", self.name, waited)
                started = self.clock.monotonic()
                drop = await self._connect_once()
                lasted = self.clock.monotonic() - started
                delay = self.retry_delay(drop, lasted)
                self.reconnects += 1
                self.app.metrics.inc("feed_reconnects", feed=self.name)
                self.log.warning("%s feed disconnected: %s; reconnecting in %.1f s",
                                 self.name, drop.reason, delay)
                await self.emit(FEED_DISCONNECTED, reason=drop.reason, retry_in=round(delay, 3))
                await self.clock.sleep(delay)
        except FeedFatal as exc:
            self.fatal = str(exc)
            self.log.error("%s feed stopped: %s", self.name, exc)
            await self.emit(FEED_ERROR, message=str(exc))
            raise
        finally:
            self.connected = False
            if self._subscribe_task is not None:
                self._subscribe_task.cancel()
                self._subscribe_task = None

    def retry_delay(self, drop: _Drop, lasted: float) -> float:
        """Seconds to wait before the next attempt: full-jitter exponential backoff."""
        base = float(self.options.get("backoff_base", 1.0))
        cap = float(self.options.get("backoff_max", 60.0))
        if lasted >= self.stable_after and not drop.overloaded:
            self._attempt = 0
        delay = self._random.uniform(0, min(cap, base * (2 ** min(self._attempt, 30))))
        self._attempt += 1
        if lasted < self.stable_after:
            delay = max(delay, min(self.quick_drop_delay, cap) if cap else self.quick_drop_delay)
        if drop.overloaded:
            delay = max(delay, self.overload_delay * self._random.uniform(1.0, 1.5))
        return max(delay, drop.retry_after)

    async def _connect_once(self) -> _Drop:
        self.acked = False
        self._overloaded = False
        self._close_reason = None
        timeout = float(self.options.get("connect_timeout", 15.0))
        try:
            ws = await connect(self.connect_url(), max_size=None, ping_interval=None,
                               open_timeout=timeout, close_timeout=2, max_queue=64,
                               logger=self._ws_log)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise FeedFatal(f"{KEY_REFUSED} (HTTP {status} at {redact(self.url)})") from None
            if status in (429, 503):
                wait = _retry_after(exc.response.headers.get("Retry-After"))
                return _Drop(f"the server is refusing connections (HTTP {status})"
                             + (f"; it asked to retry after {wait:g} s" if wait else ""),
                             overloaded=True, retry_after=wait)
            return _Drop(f"the handshake failed with HTTP {status}")
        except (TimeoutError, OSError, WebSocketException) as exc:
            return _Drop(f"could not connect to {redact(self.url)}: {describe(exc)}")
        self.ws = ws
        try:
            return await self._session(ws)
        finally:
            self.ws = None
            self.connected = False
            self.acked = False
            if self._subscribe_task is not None:
                self._subscribe_task.cancel()
                self._subscribe_task = None
            if self._close_reason:
                ws.transport.abort()
            else:
                await _close_quietly(ws)

    async def _session(self, ws: ClientConnection) -> _Drop:
        timeout = float(self.options.get("connect_timeout", 15.0))
        deadline = time.monotonic() + timeout
        try:
            while not self.acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return _Drop(f"no socket_connected within {timeout:g} s")
                # not asyncio.wait_for: on Python 3.11 it swallows a cancellation that
                # arrives as the frame does, and the feed would run on after a stop
                async with asyncio.timeout(left):
                    raw = await ws.recv()
                await self._take_frame(raw)
                drop = self._check_flags()
                if drop is not None:
                    return drop
        except TimeoutError:
            return _Drop(f"no socket_connected within {timeout:g} s")
        except ConnectionClosed as exc:
            return self._closed_drop(exc.rcvd or exc.sent)
        self.connected = True
        self.log.info("%s feed connected to %s", self.name, redact(self.url))
        await self._send_subscribe()
        watchdog = asyncio.create_task(self._watch(ws), name=f"feed:{self.name}:watchdog")
        try:
            async for raw in ws:
                await self._take_frame(raw)
                # frames already buffered come back without suspending: let the sink
                # workers write what this one queued, or a burst starves them
                await asyncio.sleep(0)
                if self._close_reason is not None or self.fatal is not None or self._overloaded:
                    drop = self._check_flags()
                    if drop is not None:
                        return drop
            return _Drop(self._close_reason) if self._close_reason else self._closed_drop(
                ws.close_rcvd or ws.close_sent)
        except ConnectionClosed as exc:
            return _Drop(self._close_reason) if self._close_reason else self._closed_drop(
                exc.rcvd or exc.sent)
        finally:
            watchdog.cancel()

    def _closed_drop(self, frame: Close | None) -> _Drop:
        """The drop of a connection the server closed; a close reason refusing the key or
        the plan stops the feed, one about too many connections backs off longer."""
        if frame is None:
            return _Drop("the connection was lost without a close frame")
        reason = redact(frame.reason)
        text = f"closed with code {frame.code}" + (f" ({reason})" if reason else "")
        kind = classify_error(reason) if reason else "other"
        if kind == "key":
            raise FeedFatal(f"{KEY_REFUSED} (upstream {text})")
        if kind == "plan":
            raise FeedFatal(f"{PLAN_REFUSED.format(self.name)} (upstream {text})")
        return _Drop(text, overloaded=kind == "overload" or frame.code == 1013)

    def _check_flags(self) -> _Drop | None:
        if self.fatal is not None:
            raise FeedFatal(self.fatal)
        if self._overloaded:
            return _Drop(self._close_reason or "upstream: too many connections", overloaded=True)
        if self._close_reason is not None:
            return _Drop(self._close_reason)
        return None

    async def _take_frame(self, raw: str | bytes) -> None:
        received = now_iso()
        self.last_message = time.monotonic()
        recorder = getattr(self.app, "recorder", None)
        if recorder is not None:
            recorder(self.name, raw if isinstance(raw, str) else raw.decode("utf-8", "replace"),
                     received)
        with self.app.bus.grouped():   # durable sinks store a frame's events at once
            await self.handle_frame(raw, received)

    async def _watch(self, ws: ClientConnection) -> None:
        dead_after = float(self.options.get("dead_after", 45.0))
        step = max(0.05, min(dead_after / 4, 5.0))
        while True:
            await asyncio.sleep(step)
            last = self.last_message or 0.0
            silent = time.monotonic() - last
            if silent >= dead_after:
                self._close_reason = (f"nothing received for {silent:.1f} s (not even a ping): "
                                      "the connection looked dead")
                ws.transport.abort()
                return

    def restart(self, reason: str) -> None:
        """Drop the current connection (if any); the loop reconnects."""
        ws = self.ws
        if ws is not None:
            self._close_reason = reason
            ws.transport.abort()

    # -- subscriptions --------------------------------------------------------------------

    async def reconfigure(self, options: dict[str, Any]) -> None:
        """Apply new options; re-subscribe on the open socket when only the filters changed."""
        old_url, old_sub = self.url, self.subscribe_message()
        self.options = options
        if self.url != old_url:
            self.limiter = limiter_for(self.url)
            self.restart("the feed URL changed")
        elif self.subscribe_message() != old_sub:
            self.request_subscribe()

    def request_subscribe(self, delay: float | None = None) -> None:
        """Send the current filters when the re-subscribe window allows; requests coalesce."""
        if self.ws is None or not self.acked:
            return   # the next connection subscribes with the current filters
        if self._subscribe_task is not None and not self._subscribe_task.done():
            return   # already scheduled: it sends whatever the filters are by then
        if delay is None:
            delay = max(0.0, self._last_subscribe + self.resubscribe_interval
                        - self.clock.monotonic())
        self._subscribe_task = asyncio.create_task(self._subscribe_after(delay),
                                                   name=f"feed:{self.name}:subscribe")

    async def _subscribe_after(self, delay: float) -> None:
        if delay > 0:
            await self.clock.sleep(delay)
        self._subscribe_task = None
        try:
            await self._send_subscribe()
        except ConnectionClosed:
            pass   # the next connection subscribes with the current filters

    async def _send_subscribe(self) -> None:
        msg = self.subscribe_message()
        ws = self.ws
        if msg is None or ws is None:
            return
        await ws.send(orjson.dumps(msg).decode())
        self._last_subscribe = self.clock.monotonic()
        self.subscribes_sent += 1
        self._pending_filters = msg.get("filters", {})
        self.log.info("%s feed subscribed: %s", self.name, _filters_summary(self._pending_filters))

    async def confirm_subscribed(self, received: str) -> None:
        """Publish feed.subscribed once the filters last sent were acknowledged."""
        if self._pending_filters is not None:
            filters, self._pending_filters = self._pending_filters, None
            await self.emit(FEED_SUBSCRIBED, received, filters=filters)

    # -- frames ---------------------------------------------------------------------------

    async def handle_frame(self, raw: str | bytes, received: str | None = None) -> None:
        """Parse one raw frame (one message object or a list of them) and dispatch it."""
        received = received or now_iso()
        self.app.metrics.inc("feed_frames", feed=self.name)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                doc = json.loads(raw)
            except (ValueError, TypeError):
                doc = json_lines(raw)
                if doc is None:
                    doc = python_literal(raw)
                    if doc is None:
                        self.bad_frame("a frame that is not JSON", raw)
                        return
                    self.app.metrics.inc("feed_python_literal_frames", feed=self.name)
                    self.warn_throttled("python-literal", "%s feed: a frame was written as "
                                        "a Python literal (single quotes, None/True/False), "
                                        "not JSON; read it anyway", self.name)
        if isinstance(doc, str) and doc.lstrip()[:1] in ("{", "["):
            try:
                doc = orjson.loads(doc)     # JSON encoded twice: a string holding the message
            except orjson.JSONDecodeError:
                pass
        if isinstance(doc, dict):
            await self._dispatch(doc, received)
        elif isinstance(doc, list):
            for item in doc:
                if isinstance(item, dict):
                    await self._dispatch(item, received)
                else:
                    self.bad_frame("a list item that is not a message object", item)
        else:
            self.bad_frame("a frame that is neither a message object nor a list", doc)

    async def _dispatch(self, msg: dict[str, Any], received: str) -> None:
        action = msg.get("action")
        if action in CONTROL_ACTIONS:
            await self._control(action, msg, received)
            return
        try:
            handled = await self.handle_message(msg, received)
        except Exception as exc:
            self.bad_frame(f"a {action!r} message that could not be handled ({describe(exc)})",
                           msg)
            return
        if not handled:
            self.app.metrics.inc("feed_unknown_actions", feed=self.name)
            self.warn_throttled(f"unknown:{action}", "%s feed: ignoring unknown action %r",
                                self.name, str(action)[:80])
        elif self._pending_filters is not None:
            # upstream may answer a first subscribe with data and no subscription_updated
            await self.confirm_subscribed(received)

    async def _control(self, action: str, msg: dict[str, Any], received: str) -> None:
        if action == "socket_connected":
            self.acked = True
            info = {k: v for k, v in msg.items() if k != "action"}
            await self.emit(FEED_CONNECTED, received, info=info)
            await self.on_socket_connected(msg, received)
        elif action == "subscription_updated":
            await self.confirm_subscribed(received)
        elif action == "error":
            await self._upstream_error(msg, received)
        if action != "socket_connected":
            await self.on_control(action, msg, received)

    async def _upstream_error(self, msg: dict[str, Any], received: str) -> None:
        text = redact(str(msg.get("message") or msg.get("error") or msg.get("data") or msg))
        kind = classify_error(text)
        self.app.metrics.inc("feed_upstream_errors", feed=self.name, kind=kind)
        await self.emit(FEED_ERROR, received, message=text)
        if kind == "key":
            self.fatal = f"{KEY_REFUSED} (upstream said: {text})"
        elif kind == "plan":
            self.fatal = f"{PLAN_REFUSED.format(self.name)} (upstream said: {text})"
        elif kind == "overload":
            self._overloaded = True
            self._close_reason = f"upstream: {text}"
        elif kind == "resubscribe":
            self.log.warning("%s feed: upstream rejected a re-subscribe (%s); retrying in %g s",
                             self.name, text, self.resubscribe_interval)
            if self.ws is not None:
                self._last_subscribe = self.clock.monotonic()
                self.request_subscribe(self.resubscribe_interval)
        else:
            self.warn_throttled(f"error:{text[:60]}", "%s feed: upstream error: %s",
                                self.name, text)

    # -- counting and throttled logging ---------------------------------------------------

    def bad_frame(self, what: str, sample: Any) -> None:
        self.app.metrics.inc("feed_bad_frames", feed=self.name)
        text = sample if isinstance(sample, str) else repr(sample)
        self.warn_throttled(f"bad:{what[:40]}", "%s feed: skipped %s: %s", self.name, what,
                            redact(text[:120]))

    def warn_throttled(self, key: str, fmt: str, *args: Any) -> None:
        """Log a warning at most every ``log_every`` seconds per key, counting the rest."""
        now = time.monotonic()
        last, suppressed = self._warned.get(key, (float("-inf"), 0))
        if now - last < self.log_every:
            self._warned[key] = (last, suppressed + 1)
            return
        if len(self._warned) > 1000:
            self._warned.clear()
        self._warned[key] = (now, 0)
        if suppressed:
            fmt += " (and %d more like it since the last warning)"
            args = (*args, suppressed)
        self.log.warning(fmt, *args)

    def status(self) -> dict[str, Any]:
        st = super().status()
        st["fatal"] = self.fatal
        return st


_JSON_WORDS = {"null": "None", "true": "True", "false": "False"}
_PYTHON_WORDS = re.compile(r"\b(?:None|True|False)\b")
PYTHON_LITERAL_MAX = 16 * 1024 * 1024
"""Largest non-JSON frame tried as a Python literal (characters)."""


def json_lines(raw: str | bytes) -> list[Any] | None:
    """The messages of a frame holding one JSON document per line; None otherwise."""
    lines = [line for line in (raw if isinstance(raw, bytes) else raw.encode()).splitlines()
             if line.strip()]
    if len(lines) < 2:
        return None
    try:
        return [orjson.loads(line) for line in lines]
    except orjson.JSONDecodeError:
        return None


def python_literal(raw: str | bytes) -> dict[str, Any] | list[Any] | None:
    """A message object or list written the way the upstream docs print messages
    (``{'action': 'ping'}``, ``None``/``True``/``False``); None when it is not one."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(text) > PYTHON_LITERAL_MAX or text.lstrip()[:1] not in ("{", "["):
        return None
    if "'" not in text and "#" not in text and not _PYTHON_WORDS.search(text):
        return None     # broken JSON, nothing Python about it: not worth parsing again
    try:
        doc = ast.literal_eval(text.strip())
    except ValueError:
        # JSON's null/true/false among Python quoting (or # comments)
        try:
            tokens = [tok._replace(string=_JSON_WORDS.get(tok.string, tok.string))
                      if tok.type == tokenize.NAME else tok
                      for tok in tokenize.generate_tokens(io.StringIO(text.strip()).readline)]
            doc = ast.literal_eval(tokenize.untokenize(tokens))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError,
                tokenize.TokenError):
            return None
    except (TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return doc if isinstance(doc, (dict, list)) else None


def _retry_after(value: str | None) -> float:
    """A ``Retry-After`` header in seconds (capped at an hour); 0 when absent or a date."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return min(seconds, 3600.0) if seconds > 0 else 0.0


async def _close_quietly(ws: ClientConnection) -> None:
    try:
        await ws.close()
    except Exception:
        ws.transport.abort()


def _filters_summary(filters: Any) -> str:
    if not isinstance(filters, dict) or not filters:
        return "everything"
    parts = []
    for key, values in filters.items():
        if isinstance(values, list):
            shown = ", ".join(str(v) for v in values[:5]) + (" ..." if len(values) > 5 else "")
            parts.append(f"{key}=[{shown}]")
    return "; ".join(parts) or "everything"


Recorder = Callable[[str, str, str], None]
"""``app.recorder(feed_name, raw_text, received_iso)``: sees every raw frame."""
