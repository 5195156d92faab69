"""Webhook deliveries per second to a local receiver, with and without batching.

The receiver (tests/helpers_http.py, answering 200) runs in its own process on
127.0.0.1. Each figure is the time from the first ``publish`` of N events until
the sink's outbox is empty, i.e. until every event was written to the outbox,
sent, answered 2xx and acknowledged. In the same run:

- the sink without batching (one request per event): the baseline of batching;
- a plain ``httpx`` loop posting the same bodies with the same concurrency and no
  outbox: what durability costs on top of HTTP itself.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from . import _support as s

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 4


def _receiver() -> tuple[Any, str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers_http import serve_in_process

    ports = s.CTX.Queue()
    proc = s.CTX.Process(target=serve_in_process, args=(ports,), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{ports.get(timeout=60)}/hook"


def _events(n: int) -> list[Any]:
    from boltrouter.events import Event

    return [Event("score.changed", {"home_score": i, "away_score": i // 2, "period": 1},
                  feed="scores", sport="NFL", game=f"Game {i % 50}", universal_id=f"g{i % 50}",
                  home="Home", away="Away") for i in range(n)]


async def _through_sink(url: str, n: int, batch: str) -> float:
    from boltrouter.app import App
    from boltrouter.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(f"""
summary: {{enabled: never}}
sinks:
  hook: {{type: webhook, url: "{url}", secret: bench-secret, concurrency: {CONCURRENCY}{batch}}}
routes:
  - {{name: all, when: {{type: "*"}}, to: hook}}
""")
        app = App(load_config(config))
        await app.start(feeds=False)
        sink = app.sinks["hook"]
        events = _events(n)
        try:
            t0 = time.perf_counter()
            await app.publish_many(events)
            await s.wait_for(lambda: sink.stats()["outbox"] == 0, 300, "an empty outbox")
            elapsed = time.perf_counter() - t0
            assert sink.stats()["delivered_total"] == n
        finally:
            await app.stop()
    return n / elapsed


async def _plain_httpx(url: str, n: int) -> float:
    bodies = [e.to_json() for e in _events(n)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    async with httpx.AsyncClient() as client:
        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                r = await client.post(url, content=body,
                                      headers={"content-type": "application/json"})
                r.raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return n / (time.perf_counter() - t0)


def run(quick: bool) -> list[dict[str, Any]]:
    n = 400 if quick else 3000
    proc, url = _receiver()
    try:
        single = s.run_async(_through_sink(url, n, ""))
        batched = s.run_async(_through_sink(url, n, ", batch: {max_events: 100, max_wait: 20ms}"))
        plain = s.run_async(_plain_httpx(url, n))
    finally:
        proc.terminate()
        proc.join(10)
    return [
        {"name": "webhook deliveries/s, batches of 100", "value": batched, "unit": "events/s",
         "baseline_name": "one request per event", "baseline": single},
        {"name": "webhook deliveries/s, one request per event", "value": single,
         "unit": "events/s", "baseline_name": "plain httpx loop, no outbox", "baseline": plain},
    ]
