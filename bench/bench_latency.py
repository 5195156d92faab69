"""Latency: a frame on the socket to the message at an MQTT subscriber and at a
webhook receiver, at a steady 1,000 and 10,000 line updates per second.

The frame server (its own process) notes when it sends each frame; the
subscriber and the HTTP receiver (another process) note when each message
arrives. Every changed line carries a sequence number in its link, so each
event is matched to its frame. boltrouter runs the odds feed, the board, one
route to the mqtt sink and one to the webhook sink (batches of up to 100 events
collected for at most 2 ms); at 10,000/s once more with the MQTT route alone.
The baseline is a plain script on the same frames: ``json.loads``, one paho
publish per line and one httpx POST per frame.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson

from . import _support as s
from .bench_throughput import _open

RATES = (1_000.0, 10_000.0)
TOPIC = "boltrouter/event/#"


def config(folder: Path, broker: s.Mosquitto, hook_url: str, webhook: bool = True) -> str:
    text = (f"simulator: {{enabled: never}}\nstate_dir: {folder}\n"
            "summary: {enabled: never}\nsinks:\n"
            f"  ha: {{type: mqtt, host: 127.0.0.1, port: {broker.port}}}\n"
            f"  hook: {{type: webhook, url: '{hook_url}', "
            "batch: {max_events: 100, max_wait: 0.002}}\n"
            "routes:\n"
            "  - {name: to-ha, when: {type: odds.line_changed}, to: ha}\n")
    if webhook:
        text += "  - {name: to-hook, when: {type: odds.line_changed}, to: hook}\n"
    return text


def _expected(server: s.FrameServer) -> int:
    return int(server.info["updates"])


async def _collect(collector: s.Collector, server: s.FrameServer, timeout: float,
                   kinds: tuple[str, ...] = ("mqtt", "http")) -> list[tuple[str, float, bytes]]:
    """Everything the collector receives until each kind saw every line (or timeout)."""
    want = _expected(server)
    got: list[tuple[str, float, bytes]] = []
    seen = dict.fromkeys(kinds, 0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while min(seen.values()) < want and loop.time() < deadline:
        await asyncio.sleep(0.05)
        for kind, t, payload in collector.take():
            got.append((kind, t, payload))
            if kind in seen:
                seen[kind] += len(s.event_seqs(payload))
    return got


def latencies(sent: list[tuple[int, int, float]],
              got: list[tuple[str, float, bytes]]) -> dict[str, list[float]]:
    """Milliseconds from frame sent to message received, per kind (mqtt, http)."""
    when: dict[int, float] = {}
    for first, last, t in sent:
        for seq in range(first, last + 1):
            when[seq] = t
    out: dict[str, list[float]] = {"mqtt": [], "http": []}
    for kind, t, payload in got:
        for seq in s.event_seqs(payload):
            if seq in when:
                out[kind].append((t - when[seq]) * 1000)
    return out


async def boltrouter(server: s.FrameServer, broker: s.Mosquitto, collector: s.Collector,
                     webhook: bool = True) -> dict[str, list[float]]:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        app, _feed = await s.start_app(Path(tmp), config(Path(tmp), broker, collector.url,
                                                         webhook), server.url)
        try:
            await s.wait_for(lambda: len(app.board) >= server.info["lines"], 120,
                             "the snapshot to be applied")
            await s.wait_for(lambda: s.sinks_settled(app), 120, "the snapshot to be written")
            collector.take()
            server.go()
            sent = await loop.run_in_executor(None, server.sent)
            got = await _collect(collector, server, 60, ("mqtt", "http") if webhook else ("mqtt",))
        finally:
            await app.stop()
    return latencies(sent, got)


async def script(server: s.FrameServer, broker: s.Mosquitto,
                 collector: s.Collector) -> dict[str, list[float]]:
    """What a user would write: parse, publish each line with paho, POST each frame."""
    import paho.mqtt.client as mqtt

    loop = asyncio.get_running_loop()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    slots = asyncio.Semaphore(4)
    tasks: set[asyncio.Task[Any]] = set()

    async def post(http: httpx.AsyncClient, body: bytes) -> None:
        async with slots:
            await http.post(collector.url, content=body,
                            headers={"content-type": "application/json"})

    ws = await _open(server.url)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(server.info["snapshot_frames"]):
                json.loads(await ws.recv())
            collector.take()
            server.go()
            sent_task = loop.run_in_executor(None, server.sent)
            received = 0
            while received < server.info["messages"]:
                doc = json.loads(await ws.recv())
                msgs = doc if isinstance(doc, list) else [doc]
                received += len(msgs)
                lines = []
                for msg in msgs:
                    data = msg["data"]
                    for key, line in data["outcomes"].items():
                        topic = f"boltrouter/event/{data['sportsbook']}/{len(key)}"
                        client.publish(topic, json.dumps(line), qos=1)
                        lines.append(line)
                task = asyncio.create_task(post(http, orjson.dumps(lines)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            sent = await sent_task
            got = await _collect(collector, server, 60)
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await ws.close()
        client.loop_stop()
        client.disconnect()
    return latencies(sent, got)


def _rows(rate: float, ours: dict[str, list[float]],
          base: dict[str, list[float]]) -> list[dict[str, Any]]:
    rows = []
    for kind, label in (("mqtt", "socket -> MQTT subscriber"), ("http", "socket -> webhook")):
        for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            rows.append({"name": f"{label} {name} at {rate:,.0f}/s", "value":
                         s.percentile(ours[kind], q), "unit": "ms",
                         "baseline_name": "script: json + paho + httpx",
                         "baseline": s.percentile(base[kind], q)})
    return rows


async def _measure(quick: bool) -> list[dict[str, Any]]:
    broker = s.Mosquitto()
    collector = s.Collector(broker.port, TOPIC)
    rows: list[dict[str, Any]] = []
    try:
        for rate in RATES:
            seconds = 1 if quick else (5 if rate <= 1000 else 3)
            server = s.FrameServer(s.ServerSpec(50, 10, 20, int(rate * seconds), rate=rate,
                                                seq=True))
            try:
                base = await script(server, broker, collector)
                ours = await boltrouter(server, broker, collector)
                alone = await boltrouter(server, broker, collector, webhook=False) \
                    if rate > 1000 else None
            finally:
                server.stop()
            rows += _rows(rate, ours, base)
            if alone is not None:
                rows += [row for row in _rows(rate, alone, base) if "MQTT" in row["name"]]
                for row in rows[-3:]:
                    row["name"] += ", no webhook route"
    finally:
        collector.stop()
        broker.stop()
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return s.run_async(_measure(quick))
