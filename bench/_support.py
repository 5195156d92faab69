"""What the benchmarks share: realistic odds frames, a loopback frame server in its
own process, a Mosquitto broker, a collector process (MQTT subscriber and webhook
receiver), and an ``App`` built from a config text.

Every byte travels on 127.0.0.1, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from boltrouter.simulator.data import FIRST_NAMES, LAST_NAMES, LEAGUES
from boltrouter.simulator.session import frames_of
from boltrouter.simulator.world import american

BOOK_NAMES = ("draftkings", "fanduel", "betmgm", "caesars", "pinnacle", "ballybet",
              "betrivers", "espnbet", "fanatics", "hardrock")
STAMP = "2026-12-01T18:00:00.000000+00:00"
CTX = mp.get_context("spawn")


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on the loop ``boltrouter run`` uses (uvloop when installed)."""
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(cond: Callable[[], Any], timeout: float, what: str,
                   step: float = 0.002) -> Any:
    """Poll ``cond`` until it is truthy; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(step)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- a market of realistic lines ------------------------------------------------------

@dataclass(slots=True)
class BookGame:
    """The lines of one (sportsbook, game), as upstream's odds messages carry them."""

    sport: str
    book: str
    game: str
    home: str
    away: str
    info: dict[str, Any]
    outcomes: dict[str, dict[str, Any]]
    keys: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)

    def message(self, action: str, outcomes: dict[str, Any], stamp: str = STAMP) -> bytes:
        return orjson.dumps({"timestamp": stamp, "action": action, "data": {
            "sport": self.sport, "sportsbook": self.book, "game": self.game,
            "home_team": self.home, "away_team": self.away, "info": self.info,
            "outcomes": outcomes}})


def _fair_outcomes(rng: random.Random, home: str, away: str, league: Any,
                   n: int) -> list[tuple[str, dict[str, Any], float]]:
    """(key, outcome without odds/link, probability) of one game, in pairs."""
    p = rng.uniform(0.3, 0.7)
    spread = rng.choice((1.5, 2.5, 3.5, 4.5, 6.5))
    total = league.expected_total + rng.choice((-1.0, 0.0, 1.0))
    out = [
        (f"{home} Moneyline", {"outcome_name": "Moneyline", "outcome_line": None,
                               "outcome_over_under": None, "outcome_target": home}, p),
        (f"{away} Moneyline", {"outcome_name": "Moneyline", "outcome_line": None,
                               "outcome_over_under": None, "outcome_target": away}, 1 - p),
        (f"{home} -{spread:g} {league.spread_name}",
         {"outcome_name": league.spread_name, "outcome_line": f"-{spread:g}",
          "outcome_over_under": None, "outcome_target": home}, 0.5),
        (f"{away} +{spread:g} {league.spread_name}",
         {"outcome_name": league.spread_name, "outcome_line": f"+{spread:g}",
          "outcome_over_under": None, "outcome_target": away}, 0.5),
        (f"{home} vs {away} Over {total:g} Total",
         {"outcome_name": "Total", "outcome_line": f"{total:g}", "outcome_over_under": "Over",
          "outcome_target": f"{home} vs {away}"}, 0.5),
        (f"{home} vs {away} Under {total:g} Total",
         {"outcome_name": "Total", "outcome_line": f"{total:g}", "outcome_over_under": "Under",
          "outcome_target": f"{home} vs {away}"}, 0.5),
    ]
    props = league.props or (("Points", 10.5),)
    for i in itertools.count():
        if len(out) >= n:
            break
        player = f"{FIRST_NAMES[(i * 7 + len(home)) % len(FIRST_NAMES)]} " \
                 f"{LAST_NAMES[(i * 11 + len(away)) % len(LAST_NAMES)]}"
        market, typical = props[i % len(props)]
        line = f"{typical + (i // len(props)) % 3:g}"
        for ou in ("Over", "Under"):
            out.append((f"{player} {ou} {line} {market}",
                        {"outcome_name": market, "outcome_line": line, "outcome_over_under": ou,
                         "outcome_target": player}, 0.5))
    return out[:n]


def make_market(games: int, books: int, outcomes: int, seed: int = 7) -> list[BookGame]:
    """``games`` x ``books`` x ``outcomes`` lines with upstream's names, links and odds."""
    rng = random.Random(seed)
    market: list[BookGame] = []
    for g in range(games):
        league = LEAGUES[g % len(LEAGUES)]
        home, away = rng.sample(league.teams, 2)
        day = 1 + g % 28
        name = f"{home} vs {away}, 2026-12-{day:02d}, {g}"
        fairs = _fair_outcomes(rng, home, away, league, outcomes)
        for b in range(books):
            book = BOOK_NAMES[b % len(BOOK_NAMES)]
            book_id = 1_000_000_000 + rng.randrange(10**9)
            event_link = f"https://sportsbook.{book}.example/event/{book_id}"
            bg = BookGame(league.name, book, name, home, away,
                          {"id": book_id, "game": name, "when": f"2026-12-{day:02d}, 7:30 PM",
                           "link": event_link}, {})
            for key, base, prob in fairs:
                p = min(0.97, max(0.03, prob + rng.uniform(-0.02, 0.02)))
                bg.outcomes[key] = {"odds": american(p, True),
                                    "link": f"{event_link}?coupon=pickType|"
                                            f"{rng.randrange(10**9, 10**10)}|wagerAmounts|replace",
                                    **base}
                bg.keys.append(key)
                bg.probs.append(p)
            market.append(bg)
    return market


def snapshot_messages(market: list[BookGame]) -> Iterator[bytes]:
    for bg in market:
        yield bg.message("initial_state", bg.outcomes)


def pack(messages: list[bytes], per_frame: int) -> list[bytes]:
    """``per_frame`` messages to a list frame (the last frame may hold fewer)."""
    return [b"[" + b",".join(messages[i:i + per_frame]) + b"]"
            for i in range(0, len(messages), per_frame)]


@dataclass(slots=True)
class Update:
    """One line_update message: its bytes and how many lines it changes."""

    raw: bytes
    lines: int


def updates(market: list[BookGame], n_lines: int, seed: int = 11,
            seq_start: int | None = None) -> list[Update]:
    """line_update messages changing ``n_lines`` lines in total, a pair of lines per
    message (one market of one game at one book re-priced), every price a real change.

    With ``seq_start`` each changed line's link carries a sequence number
    (``...|seq|N``) so that a receiver can tell which message it came from.
    """
    rng = random.Random(seed)
    out: list[Update] = []
    done = 0
    seq = seq_start
    while done < n_lines:
        bg = market[rng.randrange(len(market))]
        pair = rng.randrange(len(bg.keys) // 2) * 2
        moved: dict[str, Any] = {}
        delta = rng.choice((-1, 1)) * rng.uniform(0.01, 0.03)
        for i, sign in ((pair, 1), (pair + 1, -1)):
            key = bg.keys[i]
            line = bg.outcomes[key]
            p = min(0.95, max(0.05, bg.probs[i] + sign * delta))
            odds = american(p, False)
            if odds == line["odds"]:
                odds = american(p + 0.01 * sign, False)
            bg.probs[i] = p
            line = dict(line, odds=odds)
            if seq is not None:
                line["link"] = line["link"].rsplit("|seq|", 1)[0] + f"|seq|{seq}"
            bg.outcomes[key] = line
            moved[key] = line
        if seq is not None:
            seq += 1
        out.append(Update(bg.message("line_update", moved), len(moved)))
        done += len(moved)
    return out


def seq_of(link: Any) -> int | None:
    if isinstance(link, str) and "|seq|" in link:
        try:
            return int(link.rsplit("|seq|", 1)[1])
        except ValueError:
            return None
    return None


# --- the frame server (its own process) ---------------------------------------------------

@dataclass
class ServerSpec:
    games: int
    books: int
    outcomes: int
    lines: int                       # line changes to send after the snapshot
    rate: float = 0.0                # lines per second; 0 = as fast as the client reads
    seq: bool = False
    batch: int = 40


def _serve(conn: Any, spec: ServerSpec) -> None:
    run_async(_serve_async(conn, spec))


async def _serve_async(conn: Any, spec: ServerSpec) -> None:
    from websockets.asyncio.server import serve

    market = make_market(spec.games, spec.books, spec.outcomes)
    snapshot = pack(list(snapshot_messages(market)), 10)
    ups = updates(market, spec.lines, seq_start=0 if spec.seq else None)
    fast_frames = frames_of([u.raw for u in ups], random.Random(3), spec.batch)
    loop = asyncio.get_running_loop()
    go: asyncio.Queue[None] = asyncio.Queue()
    quit_ = asyncio.Event()

    def read_commands() -> None:
        while True:
            try:
                cmd = conn.recv()
            except (EOFError, OSError):
                cmd = "quit"
            if cmd == "quit":
                loop.call_soon_threadsafe(quit_.set)
                return
            loop.call_soon_threadsafe(go.put_nowait, None)

    threading.Thread(target=read_commands, daemon=True).start()

    async def handler(ws: Any) -> None:
        await ws.send(orjson.dumps({"action": "socket_connected"}).decode())
        await ws.recv()                                     # the subscribe message
        for frame in snapshot:
            await ws.send(frame.decode())
        await go.get()
        if spec.rate <= 0:
            for frame in fast_frames:
                await ws.send(frame.decode())
            conn.send(("sent", len(fast_frames)))
        else:
            conn.send(("sent", await _send_steady(ws, ups, spec.rate)))
        try:
            await ws.wait_closed()
        except Exception:
            pass

    async with serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        conn.send(("ready", port, {"lines": sum(len(b.outcomes) for b in market),
                                   "updates": sum(u.lines for u in ups),
                                   "messages": len(ups), "frames": len(fast_frames),
                                   "snapshot_frames": len(snapshot),
                                   "games": [b.game for b in market[::spec.books]]}))
        await quit_.wait()


async def _send_steady(ws: Any, ups: list[Update], rate: float) -> list[tuple[int, int, float]]:
    """Send the updates at ``rate`` lines per second, all that are due in one list frame;
    return (first, last message number of each frame, monotonic send time)."""
    sent: list[tuple[int, int, float]] = []
    start = time.monotonic()
    i = 0
    lines = 0
    while i < len(ups):
        due = (time.monotonic() - start) * rate
        j = i
        batch = []
        while j < len(ups) and lines < due + 1:
            batch.append(ups[j].raw)
            lines += ups[j].lines
            j += 1
        if batch:
            frame = b"[" + b",".join(batch) + b"]"
            now = time.monotonic()
            await ws.send(frame.decode())
            sent.append((i, j - 1, now))
            i = j
        next_due = start + (lines / rate)
        await asyncio.sleep(max(0.0, next_due - time.monotonic()))
    return sent


class _ChildProcess:
    """A helper process of the benchmarks behind a pipe; ``start`` returns its hello."""

    def _start(self, target: Any, args: tuple[Any, ...], what: str, timeout: float) -> Any:
        self._conn, child = CTX.Pipe()
        self._proc = CTX.Process(target=target, args=(child, *args), daemon=True)
        self._proc.start()
        if not self._conn.poll(timeout):
            self.stop()
            raise TimeoutError(f"{what} did not start within {timeout:g} s")
        return self._conn.recv()

    def stop(self) -> None:
        try:
            self._conn.send("quit")
        except OSError:
            pass
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)


class FrameServer(_ChildProcess):
    """The websocket server of the benchmarks, in a child process.

    Each connection gets ``socket_connected``, the snapshot (``initial_state`` for
    every line) after its ``subscribe``, then, once ``go()`` is called, the line
    updates: as fast as the client takes them, or at a steady rate.
    """

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        _, self.port, self.info = self._start(_serve, (spec,), "the frame server", 180)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api"

    def go(self) -> None:
        self._conn.send("go")

    def sent(self, timeout: float = 300.0) -> Any:
        """What the server reports once it sent every update (frames or send times)."""
        if not self._conn.poll(timeout):
            raise TimeoutError(f"the frame server did not finish within {timeout:g} s")
        return self._conn.recv()[1]


# --- Mosquitto ------------------------------------------------------------------------------

def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


class Mosquitto:
    """A private broker on a free loopback port, stopped with ``stop()``."""

    def __init__(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (make mosquitto, or "
                               "apt-get install mosquitto)")
        self.port = free_port()
        self._dir = tempfile.mkdtemp(prefix="bench-mosquitto-")
        conf = Path(self._dir) / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "persistence false\nmax_queued_messages 1000000\nset_tcp_nodelay true\n"
                        "log_dest none\n", encoding="utf-8")
        self._proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)


# --- the collector: MQTT subscriber and webhook receiver (its own process) -------------------

def _collect(conn: Any, mqtt_port: int | None, topic: str) -> None:
    received: list[tuple[str, float, bytes]] = []
    lock = threading.Lock()
    client = None
    if mqtt_port is not None:
        import paho.mqtt.client as mqtt

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            now = time.monotonic()
            with lock:
                received.append(("mqtt", now, msg.payload))

        subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = on_message
        client.on_subscribe = lambda *a: subscribed.set()
        client.on_connect = lambda c, *a: c.subscribe(topic, qos=0)
        client.connect("127.0.0.1", mqtt_port)
        client.loop_start()
        subscribed.wait(20)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            now = time.monotonic()
            with lock:
                received.append(("http", now, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    conn.send(("ready", httpd.server_address[1]))
    while True:
        cmd = conn.recv()
        if cmd == "take":
            with lock:
                taken = list(received)
                received.clear()
            conn.send(taken)
        elif cmd == "count":
            with lock:
                conn.send(len(received))
        else:
            break
    httpd.shutdown()
    if client is not None:
        client.loop_stop()
        client.disconnect()


class Collector(_ChildProcess):
    """Receives MQTT messages and webhook requests in a child process, with receive times."""

    def __init__(self, mqtt_port: int | None, topic: str = "#") -> None:
        self.http_port = self._start(_collect, (mqtt_port, topic), "the collector", 60)[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/hook"

    def count(self) -> int:
        self._conn.send("count")
        return int(self._conn.recv())

    def take(self) -> list[tuple[str, float, bytes]]:
        self._conn.send("take")
        return list(self._conn.recv())


def event_seqs(payload: bytes) -> list[int]:
    """Sequence numbers in the links of the event(s) one MQTT message or request carries."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return []
    docs = doc if isinstance(doc, list) else [doc]
    out = []
    for d in docs:
        if isinstance(d, dict):
            data = d.get("data") if isinstance(d.get("data"), dict) else d
            seq = seq_of(data.get("link"))
            if seq is not None:
                out.append(seq)
    return out


# --- boltrouter itself ----------------------------------------------------------------------

async def app_with_feed(folder: Path, config_text: str, feed_url: str = "") -> tuple[Any, Any]:
    """A started ``App`` from ``config_text`` and its odds feed, not connected: frames can
    be handed to ``feed.handle_frame`` directly."""
    from boltrouter.app import App
    from boltrouter.config import load_config

    path = folder / "config.yaml"
    path.write_text(config_text, encoding="utf-8")
    cfg = load_config(path)
    app = App(cfg)
    await app.start(feeds=False)
    cls, options = cfg.feeds["odds"]
    feed = cls("odds", dict(options, url=feed_url, check_filters=False), app)
    app.feeds["odds"] = feed
    return app, feed


async def start_app(folder: Path, config_text: str, feed_url: str) -> tuple[Any, Any]:
    """An ``App`` from ``config_text`` with only its odds feed running against ``feed_url``."""
    app, feed = await app_with_feed(folder, config_text, feed_url)
    app._tasks.append(asyncio.create_task(app._run_feed(feed), name="feed:odds"))
    return app, feed


def sinks_settled(app: Any) -> bool:
    """Every delivery queued so far was written (or failed, or dropped)."""
    for runner in app.bus.runners.values():
        if runner.sink.durable:
            continue
        if runner.queue or runner.delivered + runner.failed + runner.dropped < runner.accepted:
            return False
    return True


def line_events(app: Any) -> float:
    return app.metrics.get("events_in", type="odds.line_changed", feed="odds")


@functools.lru_cache(maxsize=1)
def snapshot_frames(games: int, books: int = 10, outcomes: int = 50) -> tuple[bytes, ...]:
    """The ``initial_state`` frames of a market, one game's books per frame."""
    return tuple(pack(list(snapshot_messages(make_market(games, books, outcomes))), books))
