"""Reload: SIGHUP (and ``systemctl reload``) applies a new config in place."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from helpers_sinks import wait_blocking
from helpers_ws import wait_until
from prometheus_client.parser import text_string_to_metric_families

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event
from boltrouter.http import socket_path

BOLTROUTER = Path(sys.executable).parent / "boltrouter"

MEMORY_PLUGIN = '''
import boltrouter
from boltrouter.config import Field
from boltrouter.rule import Rule
from boltrouter.sink import Sink

class Memory(Sink):
    options_schema = {"label": Field(str, default="")}
    seen = []
    instances = []

    async def start(self):
        Memory.instances.append(self)

    async def write(self, batch):
        Memory.seen.extend((self.options["label"], d.route, d.event.id) for d in batch)

class Tally(Rule):
    options_schema = {"label": Field(str, default="")}

    def __init__(self, name, options, app):
        super().__init__(name, options, app)
        self.seen = 0

    def on_event(self, event):
        self.seen += 1

@boltrouter.hookimpl
def register_sink_types(register):
    register("memory", Memory)

@boltrouter.hookimpl
def register_rule_types(register):
    register("tally", Tally)
'''

ROUTES = """
routes:
  - name: first-score
    when: {type: score.changed}
    throttle: {key: [game], every: 1h}
    to: mem
  - {name: all, when: {type: "test.*"}, to: mem}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path



# --- in process ------------------------------------------------------------------------

@pytest.fixture
def memory_config(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    write(tmp_path / "plugins" / "memory_sink.py", MEMORY_PLUGIN)
    return write(tmp_path / "config.yaml", """
plugins_dir: plugins
state_dir: state
sinks:
  mem: {type: memory, label: before}
""" + ROUTES)


async def test_a_reload_keeps_the_throttle_of_an_unchanged_route_and_loses_no_event(
        memory_config: Path) -> None:
    app = App(load_config(memory_config))
    await app.start(feeds=False)
    memory = type(app.sinks["mem"])
    memory.seen.clear()
    game = "Knicks vs Nets, 2025-01-01, 01"
    try:
        await app.publish(Event("score.changed", {"home_score": 1}, game=game))
        await wait_until(lambda: len(memory.seen) == 1, what="the first score delivered")

        published: list[str] = []

        async def publish_while_reloading() -> None:
            for i in range(3000):
                event = Event("test.tick", {"i": i})
                published.append(event.id)
                await app.publish(event)
                if i % 50 == 0:
                    await asyncio.sleep(0)

        publisher = asyncio.create_task(publish_while_reloading())
        await wait_until(lambda: len(published) > 100, what="events flowing")
        # the sink's options change (it is replaced) and a route is added
        write(memory_config, memory_config.read_text().replace("label: before", "label: after")
              + "  - {name: added, when: {type: score.changed}, to: mem}\n")
        assert await app.reload() == []
        await publisher
        await wait_until(lambda: sum(1 for s in memory.seen if s[1] == "all") >= len(published),
                         what="every event published during the reload delivered")
        delivered = [s[2] for s in memory.seen if s[1] == "all"]
        assert sorted(delivered) == sorted(published)
        assert {s[0] for s in memory.seen if s[1] == "all"} == {"before", "after"}
        assert len(memory.instances) == 2

        # the throttle of the unchanged route remembers the game; the new route fires
        await app.publish(Event("score.changed", {"home_score": 2}, game=game))
        assert app.metrics.get("route_suppressed", route="first-score", reason="throttle") == 1
        assert app.metrics.get("route_matched", route="added") == 1
        assert app.metrics.get("reloads", result="applied") == 1
    finally:
        await app.stop()


async def test_a_reload_keeps_unchanged_rules_and_their_state(memory_config: Path) -> None:
    write(memory_config, memory_config.read_text() + """
rules:
  kept: {type: tally, label: same}
  changed: {type: tally, label: before}
""")
    app = App(load_config(memory_config))
    await app.start(feeds=False)
    try:
        for i in range(3):
            await app.publish(Event("test.tick", {"i": i}))
        kept = app.rules["kept"]
        write(memory_config, memory_config.read_text().replace("label: before", "label: after"))
        assert await app.reload() == []
        assert app.rules["kept"] is kept and kept.seen == 3
        assert app.rules["changed"].options["label"] == "after" and app.rules["changed"].seen == 0
        await app.publish(Event("test.tick", {"i": 3}))
        assert kept.seen == 4 and app.rules["changed"].seen == 1
    finally:
        await app.stop()


async def test_a_rejected_reload_keeps_the_running_routes(memory_config: Path) -> None:
    app = App(load_config(memory_config))
    await app.start(feeds=False)
    try:
        write(memory_config, memory_config.read_text().replace("to: mem}", "to: mme}"))
        errors = await app.reload()
        assert len(errors) == 1
        assert "routes[1].to" in errors[0] and "'mme'" in errors[0] and "'mem'" in errors[0]
        await app.publish(Event("test.still-routed", {}))
        assert app.metrics.get("route_matched", route="all") == 1
        assert app.metrics.get("reloads", result="rejected") == 1
    finally:
        await app.stop()


async def test_changed_filters_resubscribe_on_the_open_connection_and_feeds_come_and_go(
        tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", """
state_dir: state
simulator: {seed: 5, games: 6, updates_per_second: 50}
boltodds:
  odds: {subscribe: {sports: [NBA, NFL, MLB, NHL, EPL]}}
  rest: {poll: {games: 1h}}
""")
    app = App(load_config(config))
    seen: list[Event] = []
    app.taps.append(lambda event, routes: seen.append(event))
    await app.start()
    try:
        def subscribed() -> list[Event]:
            return [e for e in seen if e.type == "feed.subscribed" and e.feed == "odds"]

        await wait_until(subscribed, timeout=20, what="the first subscription")
        # upstream's 5 s between subscribes is covered by the odds feed tests; a short one
        # here keeps this test quick
        app.simulator.options["resubscribe_window"] = 0.2
        app.feeds["odds"].resubscribe_interval = 0.2
        connects = app.simulator.connects
        write(config, config.read_text().replace("[NBA, NFL, MLB, NHL, EPL]", "[NBA, NFL]"))
        assert await app.reload() == []
        await wait_until(lambda: any(e.data["filters"].get("sports") == ["NBA", "NFL"]
                                     for e in subscribed()),
                         timeout=20, what="the new filters acknowledged")
        assert app.simulator.connects == connects
        assert app.feeds["odds"].reconnects == 0
        assert app.feeds["odds"].connected

        # a feed added by a reload starts; removed again, it stops
        scores = config.read_text().replace("  rest:", "  scores: {sports: [NBA, NFL]}\n  rest:")
        write(config, scores)
        assert await app.reload() == []
        await wait_until(lambda: "scores" in app.feeds and app.feeds["scores"].connected,
                         timeout=20, what="the added scores feed connected")
        write(config, scores.replace("  scores: {sports: [NBA, NFL]}\n", ""))
        assert await app.reload() == []
        assert "scores" not in app.feeds
        await wait_until(lambda: app.simulator.connection_count("scores") == 0,
                         timeout=20, what="the scores connection closed")
        assert app.feeds["odds"].reconnects == 0
    finally:
        await app.stop()


# --- a running daemon and SIGHUP -----------------------------------------------------------

DAEMON_CONFIG = """
state_dir: state
simulator: {seed: 11, games: 8, updates_per_second: 100}
boltodds:
  odds: {backoff_max: 1s}
  rest: {poll: {games: 1h}}
sinks:
  lines: {type: csv, path: lines.csv, fields: [type, game]}
routes:
  - {name: moves, when: {type: odds.line_changed}, to: lines}
"""

ADDED = """
  added: {type: csv, path: added.csv, fields: [type, game]}
routes:
  - {name: moves, when: {type: odds.line_changed}, to: lines}
  - {name: new-route, when: {type: "odds.*"}, to: added}
"""


def metric_values(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.timeout(120)
def test_sighup_applies_a_changed_route_without_reconnecting_and_rejects_a_broken_one(
        tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", DAEMON_CONFIG)
    notify_path = tmp_path / "notify.sock"
    notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notifications.bind(str(notify_path))
    notifications.setblocking(False)
    received: list[str] = []

    def notified(prefix: str) -> bool:
        while True:
            try:
                received.append(notifications.recv(4096).decode())
            except BlockingIOError:
                break
        return any(m.startswith(prefix) for m in received)

    env = {k: v for k, v in os.environ.items() if k != "BOLTODDS_API_KEY"}
    env.update(NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="1000000")
    stderr = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen([str(BOLTROUTER), "run", "--config", str(config), "--no-summary"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    transport = httpx.HTTPTransport(uds=str(socket_path(tmp_path / "state")))
    try:
        with httpx.Client(transport=transport, base_url="http://boltrouter", timeout=10) as client:
            wait_blocking(lambda: notified("READY=1"), what="READY=1 from the daemon")
            assert client.get("/readyz").status_code == 200
            wait_blocking(lambda: notified("WATCHDOG=1"), what="a watchdog ping")
            wait_blocking(lambda: metric(metric_values(client), "boltrouter_route_matched_total",
                                         route="moves") > 0, what="the first route firing")

            write(config, DAEMON_CONFIG.replace("\nroutes:\n  - {name: moves, when: "
                                                "{type: odds.line_changed}, to: lines}\n", ADDED))
            received.clear()
            proc.send_signal(signal.SIGHUP)
            wait_blocking(lambda: metric(metric_values(client), "boltrouter_route_matched_total",
                                         route="new-route") > 0, what="the new route firing")
            assert notified("RELOADING=1") and notified("READY=1")
            values = metric_values(client)
            assert metric(values, "boltrouter_reloads_total", result="applied") == 1
            assert metric(values, "boltrouter_feed_reconnects_total", feed="odds") == 0
            assert metric(values, "boltrouter_events_in_total", type="feed.connected",
                          feed="odds") == 1
            wait_blocking(lambda: (tmp_path / "added.csv").exists()
                          and len((tmp_path / "added.csv").read_text().splitlines()) > 1,
                          what="rows in the new sink's file")

            write(config, config.read_text().replace("to: added}", "to: aded}"))
            proc.send_signal(signal.SIGHUP)
            wait_blocking(lambda: metric(metric_values(client), "boltrouter_reloads_total",
                                         result="rejected") == 1, what="the reload rejected")
            log = (tmp_path / "stderr.log").read_text()
            assert "reload rejected" in log and "unknown sink 'aded'" in log
            assert "did you mean 'added'?" in log
            before = metric(metric_values(client), "boltrouter_route_matched_total",
                            route="new-route")
            wait_blocking(lambda: metric(metric_values(client), "boltrouter_route_matched_total",
                                         route="new-route") > before,
                          what="the running routes still firing")
            assert metric(metric_values(client), "boltrouter_feed_reconnects_total",
                          feed="odds") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
            stderr.close()
            stopping = notified("STOPPING=1")
            notifications.close()
    assert code == 0, (tmp_path / "stderr.log").read_text()[-2000:]
    assert stopping
