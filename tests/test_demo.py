"""The demo as a user runs it: `boltrouter run` on config.example.yaml with the simulator,
Ctrl-C, `boltrouter simulate`, and `boltrouter record` + `boltrouter replay`."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
from helpers_sinks import wait_blocking
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent


def demo_dir(tmp_path: Path) -> Path:
    """A copy of config.example.yaml and the example plugins, as in a fresh clone."""
    shutil.copy(REPO / "config.example.yaml", tmp_path / "config.example.yaml")
    shutil.copytree(REPO / "plugins", tmp_path / "plugins",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k != "BOLTODDS_API_KEY"}
    out["PYTHONUNBUFFERED"] = "1"
    return out


def boltrouter(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boltrouter", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "boltrouter", *args], cwd=cwd, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def event_counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return dict(conn.execute("SELECT type, COUNT(*) FROM events GROUP BY type"))
    except sqlite3.OperationalError:
        return {}


def odds_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, type, time, received, sportsbook, game, universal_id, "
                            "data FROM events WHERE type LIKE 'odds.%'").fetchall()


def test_the_example_config_runs_on_the_simulator_and_fills_sqlite_and_csv(tmp_path):
    cwd = demo_dir(tmp_path)
    done = boltrouter("run", "--config", "config.example.yaml", "--for", "8s", cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "using the built-in simulator" in done.stderr
    assert "stopped: events" in done.stderr
    counts = event_counts(cwd / "boltrouter.db")
    assert counts.get("odds.game_added", 0) > 0 and counts.get("odds.line_changed", 0) > 0
    csv_files = list(cwd.glob("lines-*.csv"))
    assert csv_files and len(csv_files[0].read_text().splitlines()) > 1
    printed = [line for line in done.stdout.splitlines() if line.strip()]
    assert printed, "the console plugin printed nothing"
    assert any(kind in line for line in printed for kind in ("score.", "odds.", "rule.", "game."))


def test_ctrl_c_drains_the_sinks_and_exits_0(tmp_path):
    cwd = demo_dir(tmp_path)
    proc = start("run", "--config", "config.example.yaml", cwd=cwd)
    try:
        wait_blocking(lambda: event_counts(cwd / "boltrouter.db").get("odds.game_added", 0) > 0
                      or proc.poll() is not None, 60, "odds events in SQLite")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "stopping: draining sinks" in err and "stopped: events" in err
    assert "Traceback" not in err
    assert event_counts(cwd / "boltrouter.db").get("odds.game_added", 0) > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_boltrouter_simulate_serves_the_odds_protocol_on_the_given_port(tmp_path):
    port = free_port()
    proc = start("simulate", "--port", str(port), cwd=tmp_path)

    async def first_frames() -> list:
        async with connect(f"ws://127.0.0.1:{port}/api?key=demo", max_size=None) as ws:
            hello = orjson.loads(await ws.recv())
            await ws.send(orjson.dumps({"action": "subscribe",
                                        "filters": {"sportsbooks": ["draftkings"]}}).decode())
            return [hello, orjson.loads(await asyncio.wait_for(ws.recv(), 20))]

    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()
        assert f"ws://127.0.0.1:{port}/api" in banner
        hello, snapshot = asyncio.run(first_frames())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert hello["action"] == "socket_connected"
    messages = snapshot if isinstance(snapshot, list) else [snapshot]
    assert messages and all(m["action"] == "initial_state" for m in messages)
    assert all(m["data"]["sportsbook"] == "draftkings" for m in messages)
    assert proc.returncode == 0 and "simulator stopped" in err


RECORD_CONFIG = """
boltodds:
  odds: {subscribe: {sports: [NBA, NFL, NHL], markets: [Moneyline, Spread, Total]}}
simulator: {seed: 21, games: 12, updates_per_second: 300}
sinks:
  archive: {type: sqlite, path: %s}
routes:
  - {name: all, when: {type: "*"}, to: archive}
"""


def test_a_recording_replays_into_the_same_odds_events(tmp_path):
    (tmp_path / "live.yaml").write_text(RECORD_CONFIG % "live.db")
    (tmp_path / "replay.yaml").write_text(RECORD_CONFIG % "replay.db")
    done = boltrouter("record", "--config", "live.yaml", "--for", "5s", "frames.jsonl",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "recorded" in done.stderr
    lines = [orjson.loads(line) for line in (tmp_path / "frames.jsonl").read_bytes().splitlines()]
    assert {"odds", "catalogue"} <= {line["feed"] for line in lines}
    assert all("received" in line for line in lines)

    replayed = boltrouter("replay", "--config", "replay.yaml", "frames.jsonl", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr[-3000:]

    # the last frame may have been recorded while the live run was being stopped
    last = max(line["received"] for line in lines if line["feed"] == "odds")
    live = {row for row in odds_rows(tmp_path / "live.db") if row[3] < last}
    again = {row for row in odds_rows(tmp_path / "replay.db") if row[3] < last}
    assert len(live) > 100
    assert live == again
    assert any(row[6] for row in live), "odds events should carry universal_id from get_games"


def test_record_and_simulate_explain_what_is_wrong_when_they_cannot_start(tmp_path):
    (tmp_path / "config.yaml").write_text("simulator: {games: 3}\n")
    record = boltrouter("record", "--config", "config.yaml", str(tmp_path / "no" / "out.jsonl"),
                        cwd=tmp_path)
    assert record.returncode == 1
    assert "cannot write" in record.stderr and "No such file or directory" in record.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        simulate = boltrouter("simulate", "--port", str(port), cwd=tmp_path)
    assert simulate.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in simulate.stderr
    assert "Traceback" not in record.stderr + simulate.stderr
