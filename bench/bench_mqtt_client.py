"""The MQTT client alone: QoS 1 messages per second and CPU per message.

The mqtt sink's own client publishes event-sized messages to a local Mosquitto
as fast as the broker acknowledges them; the baseline is paho-mqtt doing the
same on the same event loop (its socket callbacks driving ``loop_read`` and
``loop_write``), the cheapest way to run paho inside an asyncio daemon. CPU is
this process's time over the run, divided by the messages.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import _support as s

PAYLOAD = (b'{"id":"8f3a","type":"odds.line_changed","time":"2026-11-30T18:00:00.000Z",'
           b'"sportsbook":"draftkings","game":"Team A vs Team B, 2026-11-30, 20",'
           b'"data":{"outcome":"Team A","old_odds":"+140","new_odds":"+150","new_prob":0.4}}')


def _topic(i: int) -> str:
    return f"bench/event/{i % 64}"


async def ours(port: int, n: int) -> tuple[float, float]:
    from boltrouter.sinks.mqtt_client import MqttClient

    up = asyncio.Event()
    client = MqttClient("127.0.0.1", port, client_id="bench-ours",
                        on_connect=lambda _r, _f: up.set())
    client.start()
    try:
        await asyncio.wait_for(up.wait(), 10)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            client.publish(_topic(i), PAYLOAD, 1)
            if i % 100 == 99:
                await asyncio.sleep(0)
        await s.wait_for(lambda: client.pending == 0, 120, "every acknowledgement", step=0.001)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        await client.stop()
    return n / wall, cpu / n * 1e6


async def paho_on_the_loop(port: int, n: int) -> tuple[float, float]:
    import paho.mqtt.client as mqtt

    loop = asyncio.get_running_loop()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = 0
    up = asyncio.Event()

    def on_publish(*_a: Any) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.on_connect = lambda *_a: up.set()
    client.on_socket_open = lambda c, _u, sock: loop.add_reader(sock, c.loop_read)
    client.on_socket_close = lambda _c, _u, sock: loop.remove_reader(sock)
    client.on_socket_register_write = lambda c, _u, sock: loop.add_writer(sock, c.loop_write)
    client.on_socket_unregister_write = lambda _c, _u, sock: loop.remove_writer(sock)
    client.connect("127.0.0.1", port)
    try:
        await asyncio.wait_for(up.wait(), 10)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            client.publish(_topic(i), PAYLOAD, qos=1)
            if i % 100 == 99:
                await asyncio.sleep(0)
        await s.wait_for(lambda: acked >= n, 120, "every acknowledgement", step=0.001)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        client.disconnect()
    return n / wall, cpu / n * 1e6


async def _measure(quick: bool) -> list[dict[str, Any]]:
    n = 20_000 if quick else 100_000
    broker = s.Mosquitto()
    try:
        paho_rate, paho_cpu = await paho_on_the_loop(broker.port, n)
        rate, cpu = await ours(broker.port, n)
    finally:
        broker.stop()
    base = "paho-mqtt on the same event loop"
    return [
        {"name": "MQTT client alone: QoS 1 messages/s to Mosquitto", "value": rate,
         "unit": "/s", "baseline_name": base, "baseline": paho_rate},
        {"name": "MQTT client alone: CPU per QoS 1 message", "value": cpu, "unit": "us",
         "baseline_name": base, "baseline": paho_cpu},
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return s.run_async(_measure(quick))
