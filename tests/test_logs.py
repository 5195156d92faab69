"""Logs: human-readable or JSON lines, and no secret anywhere in what a run writes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from helpers_http import Receiver

from boltrouter.plugins import collect_registrations, make_manager

BOLTROUTER = Path(sys.executable).parent / "boltrouter"

SECRETS = {
    "BOLTODDS_API_KEY": "bk-live-7f3a9c2e5d1b4f60",
    "WEBHOOK_SECRET": "whsec_Zm9vYmFyYmF6cXV4cXV1eA",
    "MQTT_PASSWORD": "mqtt-pass-Qw8rT5yU",
    "HTTP_TOKEN": "http-token-Lk3mN7pQ",
}

TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(hook_url: str) -> str:
    text = f"""
state_dir: state
simulator: {{enabled: always, seed: 2, games: 6, updates_per_second: 100}}
boltodds:
  api_key: ${{BOLTODDS_API_KEY}}
  rest: {{poll: {{games: 1h}}}}
http: {{enabled: true, port: 0, token: "${{HTTP_TOKEN}}"}}
sinks:
  archive: {{type: sqlite, path: archive.db}}
  lines: {{type: csv, path: lines.csv}}
  hook:
    type: webhook
    url: "{hook_url}"
    secret: "${{WEBHOOK_SECRET}}"
    timeout: 1s
    backoff: {{base: 100ms, max: 200ms}}
"""
    routes = """
routes:
  - {name: all, when: {type: "*"}, to: [archive, lines]}
  - {name: some, when: {type: [feed.connected, odds.game_added]}, to: hook}
"""
    if "mqtt" in collect_registrations(make_manager(None), "register_sink_types"):
        # a broker that is not there: connection errors get logged, with their details
        text += f"""  ha:
    type: mqtt
    port: {closed_port()}
    username: boltrouter
    password: "${{MQTT_PASSWORD}}"
    reconnect_min_delay: 100ms
    reconnect_max_delay: 200ms
"""
        routes += "  - {name: ha, when: {type: score.changed}, to: ha}\n"
    return text + routes


def run_daemon(tmp_path: Path, log_format: str) -> str:
    """Everything a 4 s debug run with known secrets prints (stdout and stderr)."""
    with Receiver(default=500) as receiver:
        config = tmp_path / "config.yaml"
        config.write_text(config_text(receiver.url + "/hook"))
        env = dict(os.environ, **SECRETS)
        proc = subprocess.run(
            [str(BOLTROUTER), "--log-level", "debug", "--log-format", log_format, "run",
             "--config", str(config), "--for", "4s", "--summary"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def check_text_lines(output: str) -> None:
    lines = [ln for ln in output.splitlines() if TEXT_LINE.match(ln)]
    assert any("boltrouter: boltrouter " in ln for ln in lines)
    assert any("odds feed connected" in ln for ln in lines)
    assert any(" DEBUG " in ln for ln in lines)
    assert not any(ln.startswith("{") for ln in output.splitlines())


def check_json_lines(output: str) -> None:
    records = [orjson.loads(line) for line in output.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert {r["level"] for r in records} >= {"info", "debug"}
    assert any(r["message"].startswith("odds feed connected") for r in records)
    assert any(r["message"].startswith("stopped: ") for r in records)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_debug_run_writes_its_log_format_and_never_a_secret(tmp_path: Path,
                                                             log_format: str) -> None:
    output = run_daemon(tmp_path, log_format)
    (check_text_lines if log_format == "text" else check_json_lines)(output)
    assert "key=***" in output   # the websocket handshake was logged, without the key
    written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert (tmp_path / "archive.db").exists() and (tmp_path / "lines.csv").exists()
    for name, secret in SECRETS.items():
        assert secret not in output, f"{name} appears in the output"
        for path, content in written.items():
            assert secret.encode() not in content, f"{name} appears in {path.name}"
