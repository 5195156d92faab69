"""Throughput: line updates per second from a loopback websocket into the sinks.

boltrouter runs whole: the odds feed parses the frames, the odds board turns them
into ``odds.line_changed`` events, 20 routes pick sinks, and SQLite, CSV and MQTT
(a private Mosquitto) write them. The clock runs from the first update frame
until every sink wrote its last delivery. The sinks' queues are set to
``overflow: block``, so a burst faster than the sinks slows the socket down
instead of dropping deliveries. The same frames go, in the same run, to

- a bare client that only receives and parses them (orjson, then json): the
  ceiling of any Python consumer;
- a plain script that parses them and publishes each update to MQTT with paho.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect

from . import _support as s

GAMES, BOOKS, OUTCOMES = 200, 10, 20      # 40,000 lines: a busy full-market subscription
_MAX_UNACKED = 10_000
"""QoS 1 message ids are 16 bits: a script must not queue more than that unacknowledged."""
_TOPIC_SAFE = str.maketrans({"+": "_", "#": "_", "/": "_"})


def has_mqtt_sink() -> bool:
    return importlib.util.find_spec("boltrouter.sinks.mqtt") is not None


async def _open(url: str) -> Any:
    ws = await connect(url, max_size=None, ping_interval=None)
    await ws.recv()                                              # socket_connected
    await ws.send(orjson.dumps({"action": "subscribe", "filters": {}}).decode())
    return ws


async def bare_client(server: s.FrameServer, loads: Callable[[Any], Any]) -> float:
    """Lines per second of a client that only parses."""
    ws = await _open(server.url)
    try:
        for _ in range(server.info["snapshot_frames"]):
            loads(await ws.recv())
        t0 = time.perf_counter()
        server.go()
        for _ in range(server.info["frames"]):
            loads(await ws.recv())
        elapsed = time.perf_counter() - t0
    finally:
        await ws.close()
    server.sent()
    return server.info["updates"] / elapsed


async def paho_script(server: s.FrameServer, broker: s.Mosquitto) -> float:
    """Lines per second of a script that parses and publishes each line with paho."""
    import paho.mqtt.client as mqtt

    expected = server.info["updates"]
    published = queued = 0
    done = threading.Event()

    def on_publish(*_a: Any) -> None:
        nonlocal published
        published += 1
        if published >= expected:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    ws = await _open(server.url)
    try:
        for _ in range(server.info["snapshot_frames"]):
            json.loads(await ws.recv())
        t0 = time.perf_counter()
        server.go()
        for _ in range(server.info["frames"]):
            doc = json.loads(await ws.recv())
            for msg in doc if isinstance(doc, list) else [doc]:
                data = msg["data"]
                topic = f"odds/{data['sportsbook']}/{data['game'].translate(_TOPIC_SAFE)}"
                for key, line in data["outcomes"].items():
                    client.publish(f"{topic}/{key.translate(_TOPIC_SAFE)}",
                                   json.dumps(line), qos=1)
                    queued += 1
                while queued - published > _MAX_UNACKED:       # paho reuses message ids
                    await asyncio.sleep(0.0005)
        await asyncio.get_running_loop().run_in_executor(None, done.wait, 120)
        elapsed = time.perf_counter() - t0
    finally:
        await ws.close()
        client.loop_stop()
        client.disconnect()
    server.sent()
    if published < expected:
        raise RuntimeError(f"paho published {published} of {expected} updates")
    return expected / elapsed


def routes(games: list[str], sinks: list[str]) -> str:
    """20 routes as a user with an archive, a line history and Home Assistant writes them."""
    lines = [
        "  - {name: archive, when: {type: 'odds.*'}, to: archive}",
        "  - {name: history, when: {type: [odds.line_changed, odds.line_suspended, "
        "odds.line_restored]}, to: lines}",
    ]
    live = "ha" if "ha" in sinks else "lines"
    lines.append(f"  - {{name: ha-lines, when: {{type: odds.line_changed}}, to: {live}}}")
    for i, game in enumerate(games[:6]):
        lines.append(f"  - {{name: game-{i}, when: {{type: odds.line_changed, game: {json.dumps(game)}}}, "
                     f"to: {live}}}")
    for book in s.BOOK_NAMES[:4]:
        lines.append(f"  - {{name: moneyline-{book}, when: {{type: odds.line_changed, "
                     f"sportsbook: {book}, market: Moneyline}}, to: lines}}")
    lines += [
        "  - {name: favourites, when: {type: odds.line_changed, data.new_prob: {above: 0.8}}, "
        "to: lines}",
        "  - {name: longshots, when: {type: odds.line_changed, data.new_prob: {below: 0.1}}, "
        "to: lines}",
        "  - name: big-moves\n    when: {type: odds.line_changed}\n"
        "    if: '{{ (data.new_prob - data.old_prob) | abs >= 0.05 }}'\n    to: lines",
        "  - {name: nba-totals, when: {type: odds.line_changed, sport: NBA, market: Total}, "
        "throttle: {key: [game], every: 10s}, to: lines}",
        "  - {name: suspensions, when: {type: [odds.line_suspended, odds.line_restored]}, "
        "to: lines}",
        "  - {name: games, when: {type: [odds.game_added, odds.game_removed]}, to: lines}",
        "  - {name: clears, when: {type: [odds.sport_cleared, odds.book_cleared]}, to: lines}",
    ]
    assert len(lines) == 20, len(lines)
    return "routes:\n" + "\n".join(lines) + "\n"


def app_config(folder: Path, games: list[str], broker: s.Mosquitto | None,
               with_routes: str | None = None) -> str:
    sinks = ["archive", "lines"]
    text = (f"simulator: {{enabled: never}}\nstate_dir: {folder}\n"
            "summary: {enabled: never}\nsinks:\n"
            f"  archive: {{type: sqlite, path: {folder}/archive.db, overflow: block}}\n"
            f"  lines: {{type: csv, path: {folder}/lines.csv, overflow: block, fields: [time, "
            "sportsbook, game, data.outcome, data.old_odds, data.new_odds, data.new_prob, "
            "route]}\n")
    if broker is not None:
        sinks.append("ha")
        text += f"  ha: {{type: mqtt, host: 127.0.0.1, port: {broker.port}, overflow: block}}\n"
    return text + (with_routes if with_routes is not None else routes(games, sinks))


async def through_app(server: s.FrameServer, config: str,
                      subscriber: s.Collector | None = None) -> tuple[float, int]:
    """Lines per second through boltrouter until every sink wrote (and, with a
    ``subscriber``, until it received every MQTT event message); and how many
    deliveries the sinks' queues dropped on the way (0 when they kept up)."""
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        app, _feed = await s.start_app(Path(tmp), config.replace("{tmp}", tmp), server.url)
        try:
            await s.wait_for(lambda: len(app.board) >= server.info["lines"], 300,
                             "the snapshot to be applied")
            await s.wait_for(lambda: s.sinks_settled(app), 300, "the snapshot to be written")
            before = s.line_events(app)
            t0 = time.perf_counter()
            server.go()
            expected = before + server.info["updates"]
            await s.wait_for(lambda: s.line_events(app) >= expected, 600, "every line update",
                             step=0.005)
            await s.wait_for(lambda: s.sinks_settled(app), 600, "the sinks to write",
                             step=0.005)
            if subscriber is not None and "ha" in app.bus.runners:
                published = app.bus.runners["ha"].delivered
                await s.wait_for(lambda: subscriber.count() >= published, 600,
                                 "the MQTT subscriber to receive every event", step=0.005)
            elapsed = time.perf_counter() - t0
            dropped = sum(r.dropped for r in app.bus.runners.values())
        finally:
            await app.stop()
    server.sent()
    return server.info["updates"] / elapsed, dropped


async def _measure(quick: bool) -> list[dict[str, Any]]:
    lines = 20_000 if quick else 150_000
    server = s.FrameServer(s.ServerSpec(GAMES // (4 if quick else 1), BOOKS, OUTCOMES, lines))
    broker = s.Mosquitto()
    mqtt = has_mqtt_sink()
    subscriber = s.Collector(broker.port, "boltrouter/event/#") if mqtt else None
    try:
        bare_orjson = await bare_client(server, orjson.loads)
        bare_json = await bare_client(server, json.loads)
        paho = await paho_script(server, broker)
        config = app_config(Path("{tmp}"), server.info["games"], broker if mqtt else None)
        rate, dropped = await through_app(server, config, subscriber)
        core, _ = await through_app(server, "simulator: {enabled: never}\nstate_dir: {tmp}\n"
                                    "summary: {enabled: never}\n")
    finally:
        if subscriber is not None:
            subscriber.stop()
        server.stop()
        broker.stop()
    sinks = "SQLite, CSV, MQTT" if mqtt else "SQLite, CSV (no MQTT sink installed)"
    name = f"line updates/s: board, 20 routes -> {sinks}"
    if dropped:
        name += f" ({dropped:,} deliveries dropped)"
    rows = [
        {"name": name, "value": rate, "unit": "/s",
         "baseline_name": "bare client, orjson.loads only", "baseline": bare_orjson},
        {"name": name, "value": rate, "unit": "/s",
         "baseline_name": "bare client, json.loads only", "baseline": bare_json},
        {"name": name, "value": rate, "unit": "/s",
         "baseline_name": "script: json.loads + paho publish", "baseline": paho},
    ]
    rows.append({"name": "line updates/s: feed, board and events only (no route, no sink)",
                 "value": core, "unit": "/s", "baseline_name": "bare client, orjson.loads only",
                 "baseline": bare_orjson})
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return s.run_async(_measure(quick))
