"""Operations: systemd unit, HTTP endpoint, metrics, tap, redaction."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event
from boltrouter.http import HttpServer
from boltrouter.secrets import RedactingFilter, redact, register_secret
from boltrouter.tap import tap_events

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "boltrouter.service"


async def wait_for(cond, timeout: float = 10.0, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


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
            await wait_for(lambda: runner.delivered >= 6, what="deliveries")
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
        await wait_for(lambda: app.taps, what="tap attached")
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
