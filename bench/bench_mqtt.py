"""MQTT: events per second boltrouter publishes to a local Mosquitto.

Only the mqtt sink is configured, with one route sending every
``odds.line_changed`` to it (QoS 1, its default); the clock stops when a
subscriber has received every event message. The baseline is a plain script
that parses the same frames and publishes each line with paho (QoS 1 as well).
"""

from __future__ import annotations

from typing import Any

from . import _support as s
from .bench_throughput import BOOKS, GAMES, OUTCOMES, paho_script, through_app


def config(broker: s.Mosquitto) -> str:
    return (f"simulator: {{enabled: never}}\nstate_dir: {{tmp}}\n"
            "summary: {enabled: never}\nsinks:\n"
            f"  ha: {{type: mqtt, host: 127.0.0.1, port: {broker.port}}}\n"
            "routes:\n  - {name: lines, when: {type: odds.line_changed}, to: ha}\n")


async def _measure(quick: bool) -> list[dict[str, Any]]:
    lines = 20_000 if quick else 100_000
    server = s.FrameServer(s.ServerSpec(GAMES // 4, BOOKS, OUTCOMES, lines))
    broker = s.Mosquitto()
    subscriber = s.Collector(broker.port, "boltrouter/event/#")
    try:
        paho = await paho_script(server, broker)
        rate, dropped = await through_app(server, config(broker), subscriber)
    finally:
        subscriber.stop()
        server.stop()
        broker.stop()
    name = "events/s published to Mosquitto (mqtt sink only, QoS 1)"
    if dropped:
        name += f" ({dropped:,} dropped)"
    return [{"name": name, "value": rate,
             "unit": "/s", "baseline_name": "script: json.loads + paho publish",
             "baseline": paho}]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return s.run_async(_measure(quick))
