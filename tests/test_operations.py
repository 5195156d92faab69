"""Operations: systemd unit, HTTP endpoint, metrics, tap, redaction."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from helpers_sinks import wait_until
from prometheus_client.parser import text_string_to_metric_families

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event
from boltrouter.http import HttpServer
from boltrouter.secrets import RedactingFilter, redact, register_secret
from boltrouter.tap import tap_events

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "boltrouter.service"



def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body)
    return path


PLUGIN = '''
import boltrouter
from boltrouter.sink import Sink

class Memory(Sink):
    seen = []
    async def write(self, batch):
        Memory.seen.extend(d.event for d in batch)

@boltrouter.hookimpl
def register_sink_types(register):
    register("memory", Memory)
'''


@pytest.fixture
def app_config(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "memory_sink.py").write_text(PLUGIN)
    return write_config(tmp_path, """
plugins_dir: plugins
state_dir: state
boltodds: {api_key: "k-secret-1234567890"}
sinks:
  mem: {type: memory}
routes:
  - {name: scores, when: {type: "score.*"}, to: mem}
  - {name: all, when: {type: "*"}, to: mem}
""")


# --- systemd ----------------------------------------------------------------------

@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "boltrouter"
    unit = tmp_path / "boltrouter.service"
    unit.write_text(UNIT.read_text().replace("/opt/boltrouter/.venv/bin/boltrouter", str(exe)))
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [ln for ln in verify.stderr.splitlines() if "boltrouter.service" in ln]
    assert verify.returncode == 0 and not problems, verify.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                         capture_output=True, text=True)
    m = re.search(r"Overall exposure level for boltrouter.service: ([0-9.]+)", sec.stdout)
    assert m, sec.stdout[-500:]
    assert float(m.group(1)) < 2.0
    text = UNIT.read_text()
    for directive in ("Type=notify", "WatchdogSec=", "DynamicUser=yes", "StateDirectory=boltrouter",
                      "ProtectSystem=strict", "EnvironmentFile=", "Restart=on-failure",
                      "ExecReload=/bin/kill -HUP $MAINPID"):
        assert directive in text


# --- HTTP endpoint ------------------------------------------------------------------

async def test_health_metrics_status_and_token(app_config: Path) -> None:
    app = App(load_config(app_config))
    await app.start(feeds=False)
    server = HttpServer(app, port=0, token="tok-abcdef")
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(base + "/healthz")).text == "ok\n"
            assert (await client.get(base + "/metrics")).status_code == 401
            auth = {"Authorization": "Bearer tok-abcdef"}
            for i in range(3):
                await app.publish(Event("score.changed", {"home_score": i}, game="A vs B, 2025-01-01, 01",
                                        feed="scores"))
            runner = app.bus.runners["mem"]
            await wait_until(lambda: runner.delivered >= 6, what="deliveries")
            text = (await client.get(base + "/metrics", headers=auth)).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            events_in = families["boltrouter_events_in"]
            assert sum(s.value for s in events_in.samples
                       if s.labels.get("type") == "score.changed" and s.name.endswith("_total")) == 3
            matched = {s.labels["route"]: s.value for s in families["boltrouter_route_matched"].samples
                       if s.name.endswith("_total")}
            assert matched == {"scores": 3, "all": 3}
            delivered = [s for s in families["boltrouter_sink_delivered"].samples
                         if s.name.endswith("_total")]
            assert delivered[0].value == 6
            assert "boltrouter_sink_latency_seconds" in families
            status = (await client.get(base + "/api/status?token=tok-abcdef")).json()
            assert status["sinks"]["mem"]["delivered"] == 6
            assert status["recent"][0]["type"] == "score.changed"
            page = await client.get(base + "/", headers=auth)
            assert page.status_code == 200 and "boltrouter status" in page.text
            ready = await client.get(base + "/readyz", headers=auth)
            assert ready.status_code == 200, ready.text
    finally:
        await server.stop()
        await app.stop()


async def test_tap_prints_what_the_route_sees(app_config: Path, capsys) -> None:
    app = App(load_config(app_config))
    await app.start(feeds=False)
    from boltrouter.http import socket_path
    server = HttpServer(app, tcp=False, unix_path=socket_path(app.state_dir))
    await server.start()
    try:
        task = asyncio.create_task(tap_events(app.state_dir, None, None,
                                              {"type": "score.*", "game": None, "route": "scores"},
                                              limit=2))
        await wait_until(lambda: app.taps, what="tap attached")
        await app.publish(Event("odds.line_changed", {"outcome": "x"}, game="G1"))
        await app.publish(Event("score.changed", {"home_score": 1}, game="Knicks vs Nets"))
        await app.publish(Event("score.changed", {"home_score": 2}, game="Knicks vs Nets"))
        shown = await asyncio.wait_for(task, 10)
        assert shown == 2
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 2
        assert all("score.changed" in line and "[scores,all]" in line.replace("all,scores", "scores,all")
                   for line in out)
        assert "odds.line_changed" not in "\n".join(out)
    finally:
        await server.stop()
        await app.stop()


# --- secrets ----------------------------------------------------------------------

def test_secrets_are_redacted_in_messages_urls_and_tracebacks(caplog) -> None:
    register_secret("whsec_topsecretvalue")
    logger = logging.getLogger("boltrouter.test")
    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record) + (record.exc_text or ""))

    cap = Capture()
    cap.addFilter(RedactingFilter())
    logger.addHandler(cap)
    try:
        try:
            raise ConnectionError("failed wss://spro.agency/api?key=abc123def456 with whsec_topsecretvalue")
        except ConnectionError:
            logger.exception("connect to %s failed", "wss://spro.agency/api?key=abc123def456")
    finally:
        logger.removeHandler(cap)
    text = "\n".join(records)
    assert "abc123def456" not in text and "whsec_topsecretvalue" not in text
    assert "key=***" in text
    assert redact("https://x/api/get_games?key=zzz999&x=1") == "https://x/api/get_games?key=***&x=1"


# --- readiness and metrics against the simulator -------------------------------------

STUCK_PLUGIN = '''
import asyncio
import boltrouter
from boltrouter.sink import Sink

class Stuck(Sink):
    """Never finishes a write: its queue fills up and the overflow policy drops."""
    async def write(self, batch):
        await asyncio.Event().wait()

class Parked(Sink):
    """A durable sink whose on-disk outbox only grows (nothing is ever sent)."""
    durable = True
    parked = []
    def accept(self, batch):
        Parked.parked.extend(batch)
    def stats(self):
        return {"outbox": len(Parked.parked)}

@boltrouter.hookimpl
def register_sink_types(register):
    register("stuck", Stuck)
    register("parked", Parked)
'''


async def run_app(config: Path) -> tuple[App, asyncio.Task[None], str]:
    """``App.run`` with the HTTP endpoint on a free port; returns the app, its task and URL."""
    app = App(load_config(config))
    task = asyncio.create_task(app.run(summary=False))
    await wait_until(lambda: app.http is not None and app.http.port, timeout=30,
                   what="the HTTP endpoint")
    return app, task, f"http://127.0.0.1:{app.http.port}"


async def stop_app(app: App, task: asyncio.Task[None]) -> None:
    app.request_stop()
    await asyncio.wait_for(task, 30)


async def poll(client: httpx.AsyncClient, url: str, cond, timeout: float = 30.0,
               what: str = "condition") -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(url)
        if cond(response):
            return response
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last answer "
                                 f"{response.status_code} {response.text[:300]}")
        await asyncio.sleep(0.05)


async def test_readiness_flips_when_the_upstream_goes_down_and_comes_back(tmp_path: Path) -> None:
    config = write_config(tmp_path, """
state_dir: state
http: {enabled: true, port: 0}
simulator: {seed: 3, games: 6, updates_per_second: 50}
boltodds:
  odds: {backoff_base: 0.1s, backoff_max: 0.3s}
  rest: {poll: {games: 1h}}
sinks:
  archive: {type: sqlite, path: archive.db}
routes:
  - {name: all, when: {type: "*"}, to: archive}
""")
    app, task, base = await run_app(config)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await poll(client, base + "/readyz", lambda r: r.status_code == 200, what="ready")
            app.simulator.refuse_connections(1_000_000)
            app.simulator.drop_connections()
            down = await poll(client, base + "/readyz", lambda r: r.status_code == 503,
                              what="not ready while the upstream refuses connections")
            assert "feed odds is not connected" in down.json()["reasons"]
            assert (await client.get(base + "/healthz")).status_code == 200
            app.simulator.refuse_connections(0)
            await poll(client, base + "/readyz", lambda r: r.status_code == 200,
                       what="ready again once the upstream accepts connections")
    finally:
        await stop_app(app, task)


async def test_metrics_parse_and_move_as_events_flow(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "stuck_sink.py").write_text(STUCK_PLUGIN)
    config = write_config(tmp_path, """
plugins_dir: plugins
state_dir: state
shutdown_grace: 1s
http: {enabled: true, port: 0, token: tok-metrics-1}
simulator: {seed: 4, games: 8, updates_per_second: 100}
boltodds:
  odds: {backoff_base: 0.1s, backoff_max: 0.3s}
  rest: {poll: {games: 1h}}
sinks:
  archive: {type: sqlite, path: archive.db}
  stuck: {type: stuck, queue_size: 5, overflow: drop_newest}
  parked: {type: parked}
routes:
  - {name: all, when: {type: "*"}, to: archive}
  - {name: odds, when: {type: "odds.*"}, to: stuck}
  - name: one-per-type
    when: {type: "odds.*"}
    throttle: {key: [type], every: 1h}
    to: parked
""")
    app, task, base = await run_app(config)
    auth = {"Authorization": "Bearer tok-metrics-1"}
    try:
        async with httpx.AsyncClient(timeout=10, headers=auth) as client:
            async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                text = (await client.get(base + "/metrics")).text
                return {(s.name, tuple(sorted(s.labels.items()))): s.value
                        for f in text_string_to_metric_families(text) for s in f.samples}

            def value(values: dict, name: str, **labels: str) -> float:
                return values.get(("boltrouter_" + name, tuple(sorted(labels.items()))), 0.0)

            await poll(client, base + "/readyz", lambda r: r.status_code == 200, what="ready")
            first = await scrape()
            line_changes = value(first, "events_in_total", type="odds.line_changed",
                                 feed="odds")
            acknowledged = value(first, "feed_to_sink_latency_seconds_count", sink="archive")
            await wait_until(lambda: app.metrics.get("events_in", type="odds.line_changed",
                                                   feed="odds") > line_changes + 10,
                           what="more line changes")
            await wait_until(lambda: app.metrics.total("sink_dropped", sink="stuck") > 0
                           and app.metrics.total("route_suppressed", route="one-per-type") > 0,
                           what="drops and suppressions")
            app.simulator.drop_connections("odds")
            await wait_until(lambda: app.feeds["odds"].reconnects >= 1 and
                           app.feeds["odds"].connected, what="a reconnect")
            second = await scrape()
            assert value(second, "events_in_total", type="odds.line_changed",
                         feed="odds") > line_changes
            assert value(second, "route_matched_total", route="all") > 0
            assert value(second, "route_suppressed_total", route="one-per-type",
                         reason="throttle") > 0
            assert value(second, "sink_delivered_total", sink="archive") > 0
            assert value(second, "sink_failed_total", sink="archive") == 0
            assert value(second, "sink_queue_depth", sink="stuck") == 5
            assert value(second, "sink_dropped_total", sink="stuck") > 0
            assert value(second, "sink_dropped_total", sink="archive") == 0
            assert value(second, "outbox_size", sink="parked") > 0
            assert value(second, "feed_reconnects_total", feed="odds") >= 1
            assert value(second, "feed_to_sink_latency_seconds_count",
                         sink="archive") > acknowledged
            assert value(second, "sink_latency_seconds_bucket", sink="archive",
                         le="+Inf") == value(second, "sink_latency_seconds_count",
                                             sink="archive")
    finally:
        await stop_app(app, task)


def test_the_tap_command_attaches_to_a_running_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path, """
state_dir: state
http: {enabled: true, port: 0, token: tap-token-42}
simulator: {seed: 9, games: 6, updates_per_second: 100}
boltodds:
  rest: {poll: {games: 1h}}
sinks:
  archive: {type: sqlite, path: archive.db}
routes:
  - {name: lines, when: {type: odds.line_changed}, to: archive}
  - {name: everything, when: {type: "*"}, to: archive}
""")
    exe = str(Path(sys.executable).parent / "boltrouter")
    env = {k: v for k, v in os.environ.items() if k != "BOLTODDS_API_KEY"}
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([exe, "run", "--config", str(config)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            found = re.search(r"HTTP endpoint on http://127\.0\.0\.1:(\d+)/",
                              (tmp_path / "daemon.log").read_text())
            port = found and int(found.group(1))
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
            time.sleep(0.05)

        tap = subprocess.run([exe, "tap", "--config", str(config), "--route", "lines",
                              "--limit", "3"], env=env, capture_output=True, text=True, timeout=60)
        assert tap.returncode == 0, tap.stderr
        lines = tap.stdout.splitlines()
        assert len(lines) == 3
        assert all(" odds.line_changed " in ln and "[everything,lines]" in ln for ln in lines), lines

        by_url = subprocess.run([exe, "tap", "--url", f"http://127.0.0.1:{port}", "--type",
                                 "odds.*", "--limit", "2"], capture_output=True, text=True,
                                env=dict(env, BOLTROUTER_HTTP_TOKEN="tap-token-42"), timeout=60)
        assert by_url.returncode == 0, by_url.stderr
        assert len(by_url.stdout.splitlines()) == 2
        assert all(" odds." in ln for ln in by_url.stdout.splitlines())
        wrong = subprocess.run([exe, "tap", "--url", f"http://127.0.0.1:{port}",
                                "--token", "nope"], env=env, capture_output=True, text=True,
                               timeout=60)
        assert wrong.returncode != 0 and "401" in wrong.stderr
        assert "tap-token-42" not in wrong.stderr
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
            log.close()


def test_metrics_keep_full_precision_past_a_million() -> None:
    from boltrouter.metrics import Metrics

    metrics = Metrics()
    metrics.inc("events_in", 1_234_567, type="odds.line_changed", feed="odds")
    metrics.observe("sink_latency_seconds", 0.0123456789, sink="archive")
    metrics.set("feed_last_message_age_seconds", float("nan"), feed="scores")
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics.render())
               for s in f.samples}
    assert samples["boltrouter_events_in_total"] == 1_234_567
    assert samples["boltrouter_sink_latency_seconds_sum"] == 0.0123456789
    assert samples["boltrouter_feed_last_message_age_seconds"] != samples[
        "boltrouter_feed_last_message_age_seconds"]   # NaN
