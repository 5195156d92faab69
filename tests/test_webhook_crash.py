"""The webhook outbox across a `kill -9` of a running `boltrouter run`: nothing accepted is lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from helpers_http import Receiver
from helpers_sinks import write_config

SIMULATED = """
simulator: {{seed: 11, games: 6, updates_per_second: 300}}
sinks:
  hook: {{type: webhook, url: "{url}/odds", concurrency: 2}}
routes:
  - {{name: odds-to-hook, when: {{type: "{types}"}}, to: hook}}
"""


def start(config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "BOLTODDS_API_KEY": ""}
    return subprocess.Popen([sys.executable, "-m", "boltrouter", "run", "--config", str(config)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def queued(outbox: Path) -> set[str]:
    if not outbox.exists():
        return set()
    conn = sqlite3.connect(outbox, timeout=10)
    try:
        return {r[0] for r in conn.execute("SELECT event_id FROM outbox")}
    finally:
        conn.close()


def test_kill_9_mid_delivery_then_a_restart_delivers_the_rest(tmp_path: Path) -> None:
    with Receiver(delay=0.02) as rx:
        routing = write_config(tmp_path, SIMULATED.format(url=rx.url, types="odds.*"))
        # the restart routes nothing new, so whatever arrives after it came from the outbox
        quiet = write_config(tmp_path, SIMULATED.format(url=rx.url, types="no.such.type"),
                             name="quiet.yaml")
        outbox = tmp_path / "webhook-hook.db"

        daemon = start(routing)
        try:
            rx.wait_for(lambda: len(rx.ok()) >= 20 and len(queued(outbox)) >= 20, timeout=60,
                        what="deliveries under way with a backlog")
        finally:
            daemon.send_signal(signal.SIGKILL)
            daemon.communicate()
        assert daemon.returncode == -signal.SIGKILL
        arrived = len(rx.requests)
        left = queued(outbox)
        assert left, "the kill left nothing undelivered; the test proves nothing"

        daemon = start(quiet)
        try:
            rx.wait_for(lambda: left <= rx.ids(), timeout=60, what="the rest delivered")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                _, err = daemon.communicate(timeout=60)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.communicate()
        assert daemon.returncode == 0, err
        assert "corrupt" not in err and "Traceback" not in err
        # the restart sent what the outbox still held, and only that
        assert {r.headers["webhook-id"] for r in rx.requests[arrived:]} <= left
        assert queued(outbox) == set()
