"""The ``webhook`` sink: HTTP delivery, at least once, through a durable outbox.

``accept`` writes each delivery to the SQLite outbox (``outbox.py``) before it
returns, so an event counts as accepted only once it is on disk. A delivery
loop per sink sends what is due over one ``httpx.AsyncClient`` (connection
reuse, HTTP/2 where the server offers it), at most ``concurrency`` requests at
a time and no faster than ``rate_limit``, and deletes a row only after a 2xx.

- 408, 429, 5xx, timeouts and connection errors are retried with exponential
  backoff and full jitter until ``max_attempts`` or ``max_age``; anything else is
  permanent. A ``Retry-After`` answer pauses the whole sink for that long. Permanent failures go to the
  dead letters (``boltrouter deadletters``).
- ``ordered: true`` sends one request at a time in acceptance order and a
  failing head waits; otherwise a failing event never holds back later ones.
- With a ``secret`` each request carries Standard Webhooks headers
  (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
- Only one process delivers from an outbox at a time (an advisory lock on
  ``<outbox>.lock``); another process sharing it only queues.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import hashlib
import heapq
import hmac
import importlib.util
import os
import random
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
import orjson

from .. import __version__, hookimpl
from ..config import Config, Field, did_you_mean, one_of, parse_duration
from ..events import Event
from ..secrets import redact, register_secret
from ..sink import Delivery, Sink
from ..templates import TemplateConfigError, compile_template
from .outbox import RESPONSE_EXCERPT, DeadLetter, Outbox, OutboxError, OutboxRow

if TYPE_CHECKING:
    from ..app import App

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$")
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
        "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_SECRET_HEADER = re.compile(r"(?i)auth|token|key|secret|signature|cookie|password")
_POLL = 0.5
"""How often the delivery loop looks for rows another process (the CLI) added."""
_DEAD_LOG_EVERY = 10.0
"""At most one log line per this many seconds about new dead letters (plus a count)."""


# --- option parsing -------------------------------------------------------------------------

def parse_rate(value: Any) -> tuple[int, float] | None:
    """``"30/min"``, ``"5/10s"``, ``{count: 30, per: 1m}`` -> ``(count, seconds)``; raises
    ValueError with a message for the user."""
    if value is None:
        return None
    hint = "a rate like '30/min', '5/s', '100/h' or {count: 30, per: 1m}"
    if isinstance(value, dict):
        if set(value) - {"count", "per"} or "count" not in value:
            raise ValueError(f"must be {hint}")
        count, per = value["count"], parse_duration(value.get("per", 1))
    elif isinstance(value, str):
        m = _RATE.match(value.lower())
        if not m:
            raise ValueError(f"{value!r} is not {hint}")
        count = int(m.group(1))
        if m.group(3) in _PER:
            per = float(m.group(2) or 1) * _PER[m.group(3)]
        else:
            per = parse_duration(f"{m.group(2) or 1}{m.group(3)}")
    else:
        raise ValueError(f"must be {hint}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1 or per <= 0:
        raise ValueError(f"must be {hint}, with a count of at least 1 and a positive period")
    return count, float(per)


def decode_secret(secret: str) -> bytes:
    """The signing key: ``whsec_<base64>`` as the Standard Webhooks spec says, else the
    secret's own UTF-8 bytes."""
    if secret.startswith("whsec_"):
        raw = secret[len("whsec_"):]
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a secret starting with 'whsec_' must continue with base64 "
                             "(as the Standard Webhooks spec says); remove the prefix to use "
                             "the text itself as the key") from None
        if not key:
            raise ValueError("the secret after 'whsec_' is empty")
        return key
    return secret.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def batch_id(event_ids: list[str]) -> str:
    """A stable ``webhook-id`` for a batch: the same events give the same id."""
    digest = hashlib.blake2b("\n".join(event_ids).encode(), digest_size=15).digest()
    return "batch_" + base64.b32encode(digest).decode().lower()


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def outbox_path(name: str, options: dict[str, Any], config: Config) -> Path:
    """Where the sink's outbox lives: ``outbox.path`` or ``<state_dir>/webhook-<name>.db``,
    relative paths resolved against the config file's folder."""
    base = Path(config.path).resolve().parent
    custom = (options.get("outbox") or {}).get("path")
    if custom:
        p = Path(custom)
        return p if p.is_absolute() else base / p
    state = Path(config.data.get("state_dir") or ".")
    if not state.is_absolute():
        state = base / state
    return state / f"webhook-{name}.db"


def _error_of(parse: Callable[[Any], Any],
              errors: type[Exception] | tuple[type[Exception], ...]) -> Callable[[Any], str | None]:
    """A config check: the message of the error ``parse`` raises for a value, or None."""
    def check(value: Any) -> str | None:
        try:
            parse(value)
        except errors as exc:
            return str(exc)
        return None
    return check


_check_rate = _error_of(parse_rate, ValueError)
_check_template = _error_of(compile_template, TemplateConfigError)


def _check_url(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if "{" not in value and not value.lower().startswith(("http://", "https://")):
        return f"{value!r} is not an http:// or https:// URL"
    return _check_template(value)


# --- the pieces of the delivery loop --------------------------------------------------------

async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` seconds pass. Unlike ``asyncio.wait_for``
    on Python 3.11, a cancellation that arrives just as the event is set is never lost."""
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            await event.wait()
    except TimeoutError:
        pass


class RateLimiter:
    """A token bucket: ``count`` requests per ``per`` seconds, bursts up to ``count``.
    Callers wait for a token; nothing is dropped."""

    def __init__(self, count: int, per: float) -> None:
        self.capacity = float(count)
        self.rate = count / per
        self.tokens = float(count)
        self.stamp = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


@dataclass(slots=True)
class Outcome:
    """What one request came to."""

    kind: str                   # "ok", "retry" or "fail"
    status: int | None = None
    detail: str = ""
    wait: float | None = None   # Retry-After, seconds


class _Template:
    """A compiled option template; a constant string needs no event."""

    def __init__(self, source: str) -> None:
        self.constant = source if "{" not in source else None
        self.render: Callable[[Event], str] = compile_template(source)

    def __call__(self, event: Event | None) -> str:
        if self.constant is not None:
            return self.constant
        assert event is not None
        return self.render(event)


class WebhookSink(Sink):
    """POST events to an HTTP endpoint, at least once, signed when a secret is set."""

    durable = True
    options_schema = {
        "url": Field(str, required=True, check=_check_url,
                     help="receiver URL; a template, e.g. https://host/{{ sport }}"),
        "method": Field(str, default="POST", choices=("POST", "PUT", "PATCH")),
        "headers": Field(dict, default={}, values=Field(str, check=_check_template),
                         help="extra request headers; values are templates"),
        "body": Field(str, check=_check_template,
                      help="body template; a route's payload wins; default: the event as JSON"),
        "secret": Field(str, secret=True,
                        help="Standard Webhooks signing secret (whsec_<base64> or any text)"),
        "timeout": Field("duration", default=10.0, help="deadline of one request"),
        "concurrency": Field(int, default=4, min=1, help="requests in flight at once"),
        "batch": Field(dict, schema={
            "max_events": Field(int, default=100, min=1,
                                check=lambda v: "must be at most 1000" if v > 1000 else None),
            "max_wait": Field("duration", default=1.0),
        }, help="send JSON arrays of up to max_events bodies, waiting at most max_wait"),
        "max_attempts": Field(int, default=10, min=1),
        "max_age": Field("duration", default=86400.0,
                         help="stop retrying an event this long after it was accepted"),
        "backoff": Field(dict, default={}, schema={
            "base": Field("duration", default=1.0),
            "max": Field("duration", default=300.0),
        }),
        "ordered": Field(bool, default=False,
                         help="keep delivery order (one request at a time, a failing head waits)"),
        "rate_limit": Field("any", check=_check_rate, help="e.g. 30/min or {count: 30, per: 1m}"),
        "outbox": Field(dict, default={}, schema={
            "path": Field(str, help="default: <state_dir>/webhook-<sink name>.db"),
            "max_events": Field(int, default=100_000, min=1),
            "when_full": Field(str, default="reject_new", choices=("reject_new", "drop_oldest")),
            "synchronous": Field(str, default="normal", choices=("normal", "full"),
                                 help="full also survives power loss, at one fsync per event"),
        }),
        "http2": Field(bool, help="default: on when the h2 package is installed"),
        "tls": Field(dict, default={}, schema={
            "ca_file": Field(str, help="PEM CA certificate(s) to trust instead of the system "
                                       "ones, for a receiver with a private CA"),
        }),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
        problems: list[tuple[tuple[Any, ...], str]] = []
        secret = options.get("secret")
        if secret is not None:
            try:
                decode_secret(secret)
            except ValueError as exc:
                problems.append((("secret",), str(exc)))
        for name, value in (options.get("headers") or {}).items():
            if _SECRET_HEADER.search(str(name)):
                register_secret(value)
        url = options.get("url")
        if isinstance(url, str) and "{" not in url:
            parsed = httpx.URL(url) if _check_url(url) is None else None
            if parsed is not None and (parsed.query or parsed.path.strip("/")):
                register_secret(url)  # hook URLs (Zapier, Slack) are capabilities
        backoff = options.get("backoff") or {}
        if backoff.get("base", 1.0) > backoff.get("max", 300.0):
            problems.append((("backoff", "base"), "must not be larger than backoff.max"))
        return problems

    def __init__(self, name: str, options: dict[str, Any], app: App) -> None:
        super().__init__(name, options, app)
        o = options
        self._configure(o)
        self.concurrency = 1 if o.get("ordered") else int(o.get("concurrency") or 4)
        self.ordered = bool(o.get("ordered"))
        ob = o.get("outbox") or {}
        self.outbox = Outbox(outbox_path(name, o, app.config), name,
                             ob.get("synchronous") or "normal")
        http2 = o.get("http2")
        has_h2 = importlib.util.find_spec("h2") is not None
        if http2 and not has_h2:
            self.log.warning("webhook sink %r: http2 is on but the h2 package is missing; "
                             "using HTTP/1.1 (pip install 'httpx[http2]')", name)
        self.http2 = has_h2 if http2 is None else bool(http2) and has_h2
        self.client: httpx.AsyncClient | None = None
        self._open = False
        self._due: list[int] = []                      # heap of sequence numbers ready to go
        self._delayed: list[tuple[float, int]] = []    # heap of (next_at, seq) waiting to retry
        self._inflight: set[int] = set()
        self._known_max = 0
        self._generation = 0
        self._size = 0
        self._dead = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._closing = False
        self._slots = asyncio.Semaphore(self.concurrency)
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock_fd: int | None = None
        self._batch_since: float | None = None
        self._last_poll = 0.0
        self._warned_full = 0.0
        self._failures_in_a_row = 0
        self._pause_until = 0.0
        self._dead_logged_at = -_DEAD_LOG_EVERY
        self._unlogged_dead = 0
        self.delivered_total = 0
        self.dead_total = 0
        self.retries_total = 0
        self.rejected_total = 0
        self.dropped_total = 0

    _RESTART_OPTIONS = ("ordered", "concurrency", "http2", "tls")

    def _configure(self, o: dict[str, Any]) -> None:
        """Apply the options that can change while the sink runs."""
        self.url = _Template(o["url"])
        self.method = o.get("method") or "POST"
        self.header_templates = {k: _Template(str(v)) for k, v in (o.get("headers") or {}).items()}
        self.body = _Template(o["body"]) if o.get("body") else None
        self._templated = any(t is not None and t.constant is None for t in
                              (self.url, self.body, *self.header_templates.values()))
        self.key = decode_secret(o["secret"]) if o.get("secret") else None
        self.timeout = float(o.get("timeout") or 10.0)
        batch = o.get("batch")
        self.batch_max = int(batch["max_events"]) if batch else 1
        self.batch_wait = float(batch["max_wait"]) if batch else 0.0
        self.batching = batch is not None
        self.max_attempts = int(o.get("max_attempts") or 10)
        self.max_age = float(o.get("max_age") or 86400.0)
        backoff = o.get("backoff") or {}
        self.backoff_base = float(backoff.get("base", 1.0))
        self.backoff_max = float(backoff.get("max", 300.0))
        rate = parse_rate(o.get("rate_limit"))
        self.limiter = RateLimiter(*rate) if rate else None
        ob = o.get("outbox") or {}
        self.max_events = int(ob.get("max_events") or 100_000)
        self.when_full = ob.get("when_full") or "reject_new"

    async def reconfigure(self, options: dict[str, Any]) -> bool:
        """Take new URL, secret, templates, retries, limits and batching in place, so a
        reload never stops accepting; another outbox or concurrency needs a restart."""
        old, new = self.options, options
        if any(old.get(k) != new.get(k) for k in self._RESTART_OPTIONS) or (
                self.outbox.path != outbox_path(self.name, new, self.app.config)
                or (old.get("outbox") or {}).get("synchronous")
                != (new.get("outbox") or {}).get("synchronous")):
            return False
        self._configure(new)
        self.options = new
        if self.client is not None:
            self.client.timeout = httpx.Timeout(self.timeout)
        self._wake.set()
        self.log.info("webhook sink %r: new options applied", self.name)
        return True

    # -- lifespan -----------------------------------------------------------------------

    async def start(self) -> None:
        verify = self._tls_context()
        try:
            self.outbox.open()
        except (OutboxError, OSError) as exc:
            raise OutboxError(f"webhook sink {self.name!r}: {exc}") from None
        self._open = True
        self._generation = self.outbox.generation
        self._reload_schedule()
        self.client = httpx.AsyncClient(
            http2=self.http2, verify=verify, timeout=self.timeout, follow_redirects=False,
            limits=httpx.Limits(max_connections=self.concurrency,
                                max_keepalive_connections=self.concurrency),
            headers={"user-agent": f"boltrouter/{__version__}"})
        self._dispatcher = asyncio.create_task(self._run(), name=f"webhook:{self.name}")

    def _tls_context(self) -> ssl.SSLContext | bool:
        """The certificates to trust: ``tls.ca_file`` when given, else the system's."""
        ca_file = (self.options.get("tls") or {}).get("ca_file")
        if not ca_file:
            return True
        path = self.app.resolve_path(ca_file)
        if not path.is_file():
            raise ValueError(f"webhook sink {self.name!r}: tls.ca_file {path} does not exist or "
                             "is not a file; give a PEM file with the receiver's CA certificate")
        try:
            return ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"webhook sink {self.name!r}: tls.ca_file {path} holds no usable "
                             f"PEM CA certificate ({exc})") from None

    async def stop(self) -> None:
        await self.close(float(self.app.config.data.get("shutdown_grace", 10.0)))

    async def close(self, grace: float) -> None:
        """Deliver what is due for up to ``grace`` seconds, then stop; the rest stays queued."""
        self._closing = True
        self._wake.set()
        deadline = time.monotonic() + grace
        while self._lock_fd is not None and not self._drained(deadline):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._progress.clear()
            await wait_event(self._progress, min(left, _POLL))
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dispatcher = None
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        self._log_unlogged_dead()
        if self._open:
            left = self._size
            if left:
                who = ("the next start" if self._lock_fd is not None else
                       "the boltrouter process delivering from it")
                self.log.info("webhook sink %r: %d event(s) stay in the outbox %s and are "
                              "delivered by %s", self.name, left, self.outbox.path, who)
            self.outbox.close()
            self._open = False
        self._release_lock()

    def _drained(self, deadline: float) -> bool:
        if self._due or self._inflight:
            return False
        wall_deadline = time.time() + (deadline - time.monotonic())
        return not self._delayed or self._delayed[0][0] > wall_deadline

    # -- accepting ----------------------------------------------------------------------

    def accept(self, batch: list[Delivery]) -> None:
        """Write the deliveries to the outbox; they count as accepted once this returns."""
        if not self._open:
            raise OutboxError(f"webhook sink {self.name!r} has no open outbox (see the error "
                              "logged when it started); the event was not accepted")
        rows = [(d.event.id, d.event.to_json(), d.payload, d.route) for d in batch]
        over = self._size + len(rows) - self.max_events
        if over > 0:
            if self.when_full == "reject_new":
                keep = max(0, len(rows) - over)
                self._count("rejected", len(rows) - keep)
                self.rejected_total += len(rows) - keep
                rows = rows[:keep]
            else:
                dropped = self.outbox.drop_oldest(over)
                self._size -= dropped
                self._count("dropped", dropped)
                self.dropped_total += dropped
            self._warn_full()
        if not rows:
            return
        self._check_generation()
        seqs = self.outbox.add(rows)
        self._size += len(seqs)
        for seq in seqs:
            heapq.heappush(self._due, seq)
        self._known_max = max(self._known_max, seqs[-1])
        self.app.metrics.set("outbox_size", self._size, sink=self.name)
        self._wake.set()

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._warned_full < 10:
            return
        self._warned_full = now
        if self.when_full == "reject_new":
            self.log.warning("webhook sink %r: the outbox is full (%d events waiting); new events "
                             "are rejected (%d so far). Is the receiver down? Raise "
                             "outbox.max_events or set when_full: drop_oldest.",
                             self.name, self._size, self.rejected_total)
        else:
            self.log.warning("webhook sink %r: the outbox is full (%d events waiting); the oldest "
                             "are dropped to make room (%d so far). Is the receiver down?",
                             self.name, self._size, self.dropped_total)

    # -- scheduling ---------------------------------------------------------------------

    def _reload_schedule(self) -> None:
        self._due.clear()
        self._delayed.clear()
        self._known_max = 0
        self._add_pending(self.outbox.pending())
        self._size = self.outbox.count()
        self._dead = self.outbox.dead_count()
        self._publish_gauges()

    def _add_pending(self, rows: list[tuple[int, float]]) -> None:
        now = time.time()
        for seq, next_at in rows:
            if next_at <= now or self.ordered:
                heapq.heappush(self._due, seq)
            else:
                heapq.heappush(self._delayed, (next_at, seq))
            self._known_max = max(self._known_max, seq)
        if rows:
            self._wake.set()

    def _check_generation(self) -> None:
        if self.outbox.generation != self._generation:
            self._generation = self.outbox.generation
            self._reload_schedule()

    def _sync(self) -> None:
        """Pick up rows added by another process and promote retries that are due."""
        self._check_generation()
        mono = time.monotonic()
        if mono - self._last_poll >= _POLL:
            self._last_poll = mono
            if self.outbox.changed_elsewhere():
                self._add_pending(self.outbox.pending(self._known_max))
                self._size = self.outbox.count()
                self._dead = self.outbox.dead_count()
                self._publish_gauges()
        if self._unlogged_dead and mono - self._dead_logged_at >= _DEAD_LOG_EVERY:
            self._dead_logged_at = mono
            self._log_unlogged_dead()
        now = time.time()
        while self._delayed and self._delayed[0][0] <= now:
            heapq.heappush(self._due, heapq.heappop(self._delayed)[1])

    def _publish_gauges(self) -> None:
        self.app.metrics.set("outbox_size", self._size, sink=self.name)
        self.app.metrics.set("dead_letters", self._dead, sink=self.name)

    async def _idle(self, timeout: float) -> None:
        self._wake.clear()
        await wait_event(self._wake, timeout)

    def _try_lock(self) -> bool:
        if self._lock_fd is not None:
            return True
        fd = os.open(f"{self.outbox.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _run(self) -> None:
        warned = False
        while not self._try_lock():
            if not warned:
                warned = True
                self.log.warning("webhook sink %r: another boltrouter process is delivering from "
                                 "%s; this one only queues events until that one stops",
                                 self.name, self.outbox.path)
            await asyncio.sleep(2.0)
        self._last_poll = 0.0
        try:
            if self.ordered:
                await self._dispatch_ordered()
            else:
                await self._dispatch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.exception("webhook sink %r: the delivery loop stopped: %s; events stay "
                               "in the outbox and are delivered after a restart",
                               self.name, redact(exc))

    def _next_wait(self) -> float:
        wait = _POLL
        if self._delayed:
            wait = min(wait, self._delayed[0][0] - time.time())
        return wait

    def _batch_ready(self) -> float:
        """0 when a request should go now, else how long to keep collecting a batch."""
        if not self.batching or len(self._due) >= self.batch_max or self._closing:
            self._batch_since = None
            return 0.0
        mono = time.monotonic()
        if self._batch_since is None:
            self._batch_since = mono
        left = self._batch_since + self.batch_wait - mono
        if left <= 0:
            self._batch_since = None
            return 0.0
        return left

    def _take(self) -> list[int]:
        n = min(self.batch_max, len(self._due))
        return [heapq.heappop(self._due) for _ in range(n)]

    def _not_ready(self) -> float:
        """0 when a request may go now, else how long to wait (nothing due, a pause the
        receiver asked for, or a batch still collecting)."""
        self._sync()
        if not self._due:
            return max(self._next_wait(), 0.001)   # a retry falling due is promoted next pass
        pause = self._paused()
        if pause > 0:
            return min(pause, _POLL)
        collect = self._batch_ready()
        return min(collect, self._next_wait()) if collect else 0.0

    async def _dispatch(self) -> None:
        while True:
            wait = self._not_ready()
            if wait:
                await self._idle(wait)
                continue
            await self._slots.acquire()
            try:
                if self.limiter is not None:
                    await self.limiter.take()
            except BaseException:
                self._slots.release()
                raise
            if self._paused() > 0:      # a request that ended meanwhile asked for a pause
                self._slots.release()
                continue
            self._sync()
            seqs = self._take()
            if not seqs:
                self._slots.release()
                continue
            self._inflight.update(seqs)
            task = asyncio.create_task(self._deliver_and_release(seqs))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver_and_release(self, seqs: list[int]) -> None:
        try:
            await self._deliver_safely(seqs)
        finally:
            self._inflight.difference_update(seqs)
            self._slots.release()
            self._progress.set()
            self._wake.set()

    async def _dispatch_ordered(self) -> None:
        while True:
            wait = self._not_ready()
            if wait:
                await self._idle(wait)
                continue
            seqs = self._take()
            rows = self.outbox.get(seqs)
            hold = max((r.next_at for r in rows), default=0.0) - time.time()
            if hold > 0:
                for seq in seqs:
                    heapq.heappush(self._due, seq)
                await self._idle(min(hold, _POLL))
                continue
            if self.limiter is not None:
                await self.limiter.take()
            self._inflight.update(seqs)
            try:
                await self._deliver_safely(seqs, rows)
            finally:
                self._inflight.difference_update(seqs)
                self._progress.set()

    # -- one request --------------------------------------------------------------------

    async def _deliver_safely(self, seqs: list[int], rows: list[OutboxRow] | None = None) -> None:
        """Deliver; on an unexpected error (the outbox file, say) keep the events queued and
        try them again a little later instead of losing track of them."""
        try:
            await self._deliver(seqs, rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failures_in_a_row += 1
            at = time.time() + max(self.backoff_base, _POLL)
            for seq in seqs:
                if self.ordered:
                    heapq.heappush(self._due, seq)
                else:
                    heapq.heappush(self._delayed, (at, seq))
            self.log.error("webhook sink %r: delivering %d event(s) failed: %s; they stay in "
                           "the outbox and are tried again", self.name, len(seqs), redact(exc))
            if self.ordered:
                await self._idle(max(self.backoff_base, _POLL))

    def _paused(self) -> float:
        """Seconds left of a pause the receiver asked for with ``Retry-After``."""
        return self._pause_until - time.time()

    async def _deliver(self, seqs: list[int], rows: list[OutboxRow] | None = None) -> None:
        if rows is None:
            rows = self.outbox.get(seqs)
        if not rows:
            return
        events: list[Event | None] = []
        bodies: list[bytes] = []
        good: list[OutboxRow] = []
        for row in rows:
            try:
                event = Event.from_dict(orjson.loads(row.event)) if self._templated else None
                bodies.append(self._body(row, event))
            except Exception as exc:
                self._bury([row], None, None, f"the body could not be rendered: {redact(exc)}")
                continue
            events.append(event)
            good.append(row)
        if not good:
            return
        try:
            request = self._request(good, events, bodies)
        except Exception as exc:
            self._bury(good, None, None, f"the request could not be built: {redact(exc)}")
            return
        started = time.monotonic()
        outcome = await self._send(request)
        self.app.metrics.observe("webhook_request_seconds", time.monotonic() - started,
                                 sink=self.name)
        if outcome.kind == "ok":
            self._failures_in_a_row = 0
            gone = self.outbox.ack([r.seq for r in good])
            self.app.metrics.acknowledged(
                self.name, (ev if ev is not None else _stamps(r.event) for ev, r in zip(events, good)),
                from_disk=True)
            self._size -= gone
            self.delivered_total += len(good)
            self._count("delivered", len(good))
            self.app.metrics.set("outbox_size", self._size, sink=self.name)
            return
        self._failures_in_a_row += 1
        if outcome.wait is not None and outcome.wait > self._paused():
            self._pause_until = time.time() + outcome.wait
            self.log.warning("webhook sink %r: the receiver answered HTTP %s with Retry-After: "
                             "sending nothing for %.0fs", self.name, outcome.status, outcome.wait)
        if outcome.kind == "fail":
            self._bury(good, outcome.status, outcome.detail,
                       f"permanent failure: {_describe(outcome)}")
            return
        self._retry(good, outcome)

    def _body(self, row: OutboxRow, event: Event | None) -> bytes:
        if row.payload is not None:
            return row.payload.encode()
        if self.body is not None:
            return self.body(event).encode()
        return row.event

    def _request(self, rows: list[OutboxRow], events: list[Event | None],
                 bodies: list[bytes]) -> httpx.Request:
        first = events[0]
        url = self.url(first)
        headers = {"content-type": "application/json"}
        for name, tpl in self.header_templates.items():
            headers[name.lower()] = tpl(first)
        if self.batching:
            body = b"[" + b",".join(_json_item(b) for b in bodies) + b"]"
            msg_id = batch_id([r.event_id for r in rows])
        else:
            body = bodies[0]
            msg_id = rows[0].event_id
        timestamp = int(time.time())
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(timestamp)
        if self.key is not None:
            headers["webhook-signature"] = sign(self.key, msg_id, timestamp, body)
        assert self.client is not None
        return self.client.build_request(self.method, url, content=body, headers=headers)

    async def _send(self, request: httpx.Request) -> Outcome:
        assert self.client is not None
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.send(request, stream=True)
                try:
                    excerpt = b""
                    async for chunk in response.aiter_bytes():
                        if len(excerpt) < RESPONSE_EXCERPT * 4:
                            excerpt += chunk
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return Outcome("retry", None, f"no answer within {self.timeout:g}s")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            return Outcome("fail", None, redact(f"{type(exc).__name__}: {exc}"))
        except httpx.HTTPError as exc:
            return Outcome("retry", None, redact(f"{type(exc).__name__}: {exc}"
                                                 if str(exc) else type(exc).__name__))
        status = response.status_code
        text = redact(excerpt.decode("utf-8", "replace"))[:RESPONSE_EXCERPT]
        if 200 <= status < 300:
            return Outcome("ok", status)
        if status in (408, 429) or status >= 500:
            return Outcome("retry", status, text,
                           retry_after(response.headers.get("retry-after"), time.time()))
        if 300 <= status < 400:
            where = redact(response.headers.get("location", "?"))
            return Outcome("fail", status, f"redirected to {where}; configure the final URL")
        return Outcome("fail", status, text)

    def _retry(self, rows: list[OutboxRow], outcome: Outcome) -> None:
        now = time.time()
        later: list[tuple[int, float]] = []
        for row in rows:
            attempts = row.attempts + 1
            if outcome.wait is not None:
                delay = outcome.wait
            else:
                cap = min(self.backoff_max, self.backoff_base * 2 ** (attempts - 1))
                delay = random.uniform(0, cap)
            if attempts >= self.max_attempts:
                self._bury([row], outcome.status, outcome.detail,
                           f"gave up after {attempts} attempts: {_describe(outcome)}")
            elif now + delay > row.created + self.max_age:
                self._bury([row], outcome.status, outcome.detail,
                           f"expired: still failing after max_age ({self.max_age:g}s): "
                           f"{_describe(outcome)}")
            else:
                later.append((row.seq, now + delay))
        if not later:
            return
        self.outbox.retry_later(later, outcome.status, _describe(outcome), now)
        self.retries_total += len(later)
        self._count("retry", len(later))
        for seq, at in later:
            if self.ordered:
                heapq.heappush(self._due, seq)
            else:
                heapq.heappush(self._delayed, (at, seq))
        self.log.debug("webhook sink %r: %d event(s) will be retried: %s", self.name,
                       len(later), _describe(outcome))

    def _bury(self, rows: list[OutboxRow], status: int | None, response: str | None,
              reason: str) -> None:
        moved = self.outbox.bury([r.seq for r in rows], status,
                                 response if status is not None else None, reason)
        self._size -= moved
        self._dead += moved
        self.dead_total += moved
        self._count("dead_letter", moved)
        self._publish_gauges()
        self._unlogged_dead += moved
        now = time.monotonic()
        if now - self._dead_logged_at < _DEAD_LOG_EVERY:
            return
        self._dead_logged_at = now
        ids = ", ".join(r.event_id for r in rows[:3]) + (" ..." if len(rows) > 3 else "")
        self.log.error("webhook sink %r: %d event(s) moved to the dead letters (%s): %s. "
                       "See `boltrouter deadletters list --config %s --sink %s`.",
                       self.name, moved, ids, reason, self.app.config.path, self.name)
        self._unlogged_dead -= moved
        self._log_unlogged_dead()

    def _log_unlogged_dead(self) -> None:
        if self._unlogged_dead:
            self.log.error("webhook sink %r: %d more event(s) moved to the dead letters "
                           "(%d waiting there in all)", self.name, self._unlogged_dead,
                           self._dead)
            self._unlogged_dead = 0

    def _count(self, result: str, n: int) -> None:
        if n:
            self.app.metrics.inc("webhook_deliveries", n, sink=self.name, result=result)

    # -- status -------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"outbox": self._size, "dead_letters": self._dead,
                "delivered_total": self.delivered_total, "retrying": len(self._delayed),
                "in_flight": len(self._inflight), "dead_lettered_total": self.dead_total,
                "retries_total": self.retries_total, "rejected_total": self.rejected_total,
                "dropped_total": self.dropped_total}

    def healthy(self) -> bool:
        return self._open and self._failures_in_a_row < 3


class _Stamps:
    """The two times of an outboxed event that the latency histograms need."""

    __slots__ = ("time", "received")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.time = doc.get("time")
        self.received = doc.get("received")


def _stamps(raw: bytes) -> _Stamps:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = {}
    return _Stamps(doc if isinstance(doc, dict) else {})


def _describe(outcome: Outcome) -> str:
    if outcome.status is None:
        return outcome.detail
    return f"HTTP {outcome.status}" + (f": {outcome.detail[:200]}" if outcome.detail else "")


def _json_item(body: bytes) -> bytes:
    """A body as an element of the batch array: JSON as is, anything else as a string."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return orjson.dumps(body.decode("utf-8", "replace"))
    return body


@hookimpl
def register_sink_types(register: Callable[[str, type], None]) -> None:
    register("webhook", WebhookSink)


# --- `boltrouter deadletters` ---------------------------------------------------------------

@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(deadletters)


_CONFIG = click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                       help="The daemon's YAML config (finds each webhook sink's outbox).")
_SINK = click.option("--sink", "sink_name", metavar="NAME",
                     help="Only this webhook sink (needed with ids when there are several).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _chosen(command: Any) -> Any:
    """The dead letters a command acts on: ids, or ``--all``."""
    command = click.option("--all", "everything", is_flag=True,
                           help="Every dead letter (of --sink, or of all).")(command)
    return click.argument("ids", metavar="[ID]...", nargs=-1, type=int)(command)


@click.group()
def deadletters() -> None:
    """Inspect, replay and purge webhook deliveries that failed for good."""


@deadletters.command("list")
@_CONFIG
@_SINK
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many per sink.")
@_JSON
def list_dead_letters(config_path: str, sink_name: str | None, limit: int | None,
                      as_json: bool) -> None:
    """List dead letters, oldest first."""
    found: list[tuple[str, DeadLetter]] = []
    for name, outbox in _open_outboxes(config_path, sink_name):
        with outbox:
            found += [(name, d) for d in outbox.dead_letters(limit)]
    if as_json:
        _echo_json([_dead_letter_dict(name, d) for name, d in found])
        return
    if not found:
        click.echo("no dead letters")
        return
    rows = [("SINK", "ID", "FAILED (UTC)", "STATUS", "TRIES", "TYPE", "EVENT", "REASON")]
    for name, d in found:
        status = "-" if d.last_status is None else str(d.last_status)
        etype = _dead_letter_dict(name, d)["type"] or "-"
        rows.append((name, str(d.id), _utc(d.failed_at), status, str(d.attempts), etype,
                     d.event_id, _shorten(d.reason, 70)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo(redact("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]))
    click.echo(f"{len(found)} dead letter(s). Details: boltrouter deadletters show "
               f"--config {config_path} --sink SINK ID")


@deadletters.command("show")
@_CONFIG
@_SINK
@click.argument("dead_id", metavar="ID", type=int)
@_JSON
def show_dead_letter(config_path: str, sink_name: str | None, dead_id: int,
                     as_json: bool) -> None:
    """Show one dead letter: why it failed, what the receiver answered, the event."""
    name, outbox = _one_outbox(config_path, sink_name)
    with outbox:
        d = outbox.dead_letter(dead_id)
    if d is None:
        raise click.ClickException(f"sink {name!r} has no dead letter {dead_id}; "
                                   f"`boltrouter deadletters list --config {config_path}` "
                                   "shows the ids")
    doc = _dead_letter_dict(name, d)
    if as_json:
        _echo_json(doc)
        return
    lines = [f"sink:          {name}", f"id:            {d.id}", f"event id:      {d.event_id}",
             f"type:          {doc['type']}", f"route:         {d.route or '-'}",
             f"accepted:      {_utc(d.created)}", f"failed:        {_utc(d.failed_at)}",
             f"attempts:      {d.attempts}",
             f"last status:   {'-' if d.last_status is None else d.last_status}",
             f"reason:        {d.reason}", "response:", _indent(d.response or "(none)")]
    if d.payload is not None:
        lines += ["payload (from the route):", _indent(d.payload)]
    lines += ["event:", _indent(orjson.dumps(doc["event"], option=orjson.OPT_INDENT_2).decode()
                                if isinstance(doc["event"], dict) else str(doc["event"]))]
    click.echo(redact("\n".join(lines)))


@deadletters.command("retry")
@_CONFIG
@_SINK
@_chosen
@_JSON
def retry_dead_letters(config_path: str, sink_name: str | None, ids: tuple[int, ...],
                       everything: bool, as_json: bool) -> None:
    """Send dead letters again (moves them back to the outbox).

    A running boltrouter delivers them within a second, otherwise the next start
    does. Attempts and age start afresh."""
    result = _change(config_path, sink_name, ids, everything, "retry",
                     lambda outbox, chosen: len(outbox.revive(chosen)))
    if as_json:
        _echo_json(result)
        return
    for name, info in result.items():
        who = ("a running boltrouter delivers them now" if info["daemon"] else
               "no boltrouter is running with this outbox: the next `boltrouter run` "
               "delivers them")
        click.echo(f"{name}: moved {info['count']} dead letter(s) back to the outbox; {who}")


@deadletters.command("purge")
@_CONFIG
@_SINK
@_chosen
@_JSON
def purge_dead_letters(config_path: str, sink_name: str | None, ids: tuple[int, ...],
                       everything: bool, as_json: bool) -> None:
    """Delete dead letters for good."""
    result = _change(config_path, sink_name, ids, everything, "purge",
                     lambda outbox, chosen: outbox.purge(chosen))
    if as_json:
        _echo_json(result)
        return
    for name, info in result.items():
        click.echo(f"{name}: deleted {info['count']} dead letter(s)")


def _webhook_sinks(config_path: str, sink_name: str | None) -> list[tuple[str, Path]]:
    from ..cli import load_or_exit

    config = load_or_exit(config_path)
    sinks = {name: outbox_path(name, options, config)
             for name, (cls, options) in config.sinks.items() if issubclass(cls, WebhookSink)}
    if not sinks:
        raise click.ClickException(f"{config_path} has no sink of type webhook")
    if sink_name is None:
        return list(sinks.items())
    if sink_name not in sinks:
        raise click.ClickException(
            f"{config_path} has no webhook sink {sink_name!r}"
            f"{did_you_mean(sink_name, list(sinks))} ({one_of(list(sinks))})")
    return [(sink_name, sinks[sink_name])]


def _open_outboxes(config_path: str, sink_name: str | None) -> list[tuple[str, Outbox]]:
    """The outboxes that exist (a sink that never ran has none, hence no dead letters)."""
    out = []
    for name, path in _webhook_sinks(config_path, sink_name):
        if not path.exists():
            continue
        outbox = Outbox(path, name)
        try:
            outbox.open()
        except (OutboxError, OSError) as exc:
            raise click.ClickException(redact(f"sink {name!r}: {exc}")) from None
        out.append((name, outbox))
    return out


def _one_outbox(config_path: str, sink_name: str | None) -> tuple[str, Outbox]:
    sinks = _webhook_sinks(config_path, sink_name)
    if len(sinks) > 1:
        raise click.ClickException(
            f"dead-letter ids are numbered per sink and {config_path} has several webhook "
            f"sinks: add --sink ({one_of([n for n, _ in sinks])})")
    name, path = sinks[0]
    if not path.exists():
        raise click.ClickException(f"sink {name!r} has no outbox yet ({path}), so no dead "
                                   "letters")
    return next(iter(_open_outboxes(config_path, name)))


def _change(config_path: str, sink_name: str | None, ids: tuple[int, ...], everything: bool,
            verb: str, apply: Callable[[Outbox, list[int] | None], int]) -> dict[str, Any]:
    if bool(ids) == everything:
        raise click.UsageError(f"give the ids to {verb} or --all "
                               "(`boltrouter deadletters list` shows the ids)")
    if ids:
        targets = [_one_outbox(config_path, sink_name)]
    else:
        targets = _open_outboxes(config_path, sink_name)
    result: dict[str, Any] = {}
    for name, outbox in targets:
        with outbox:
            missing = sorted(set(ids) - {d.id for d in outbox.dead_letters()}) if ids else []
            if missing:
                raise click.ClickException(
                    f"sink {name!r} has no dead letter {', '.join(map(str, missing))}; nothing "
                    f"was changed. `boltrouter deadletters list --config {config_path}` shows "
                    "the ids")
            count = apply(outbox, list(ids) if ids else None)
        result[name] = {"count": count, "daemon": _delivering(outbox.path)}
    return result


def _delivering(path: Path) -> bool:
    """Whether a boltrouter process holds the delivery lock of this outbox."""
    lock = Path(f"{path}.lock")
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _dead_letter_dict(sink: str, d: DeadLetter) -> dict[str, Any]:
    try:
        event: Any = orjson.loads(d.event)
    except orjson.JSONDecodeError:
        event = d.event.decode("utf-8", "replace")
    return {"sink": sink, "id": d.id, "event_id": d.event_id,
            "type": event.get("type") if isinstance(event, dict) else None,
            "route": d.route, "accepted": _utc(d.created), "failed": _utc(d.failed_at),
            "attempts": d.attempts, "last_status": d.last_status, "reason": d.reason,
            "response": d.response, "payload": d.payload, "event": event}


def _echo_json(doc: Any) -> None:
    click.echo(redact(orjson.dumps(doc).decode()))


def _utc(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines() or [""])
