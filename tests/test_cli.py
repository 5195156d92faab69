"""The command line as a user runs it: check, replay, run, signals."""

from __future__ import annotations

import csv
import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_sinks import PLUGINS, REPO, boltrouter, recording, write_config, write_jsonl

EXAMPLE_ROUTES = """
sinks:
  archive: {type: sqlite, path: boltrouter.db}
  lines:
    type: csv
    path: "lines-{date}.csv"
    fields: [time, game, sportsbook, data.outcome, data.old_odds, data.new_odds]
  broken: {type: flaky, mode: fail}
routes:
  - name: archive-everything
    when: {type: "*"}
    to: [archive]
  - name: line-history
    when: {type: [odds.line_changed, odds.line_suspended, odds.line_restored]}
    to: [broken, lines]
  - name: moneyline-moves
    when: {type: odds.line_changed, market: Moneyline}
    if: "{{ (data.new_prob - data.old_prob) | abs >= 0.02 }}"
    to: broken
"""


def count(db: Path, sql: str = "SELECT count(*) FROM events") -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def test_check_accepts_the_example_config_and_summarizes_it() -> None:
    result = boltrouter("check", "--config", "config.example.yaml", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.example.yaml: OK.")
    for part in ("feeds: ", "sinks: 3 (archive, lines, console)", "rules: 3", "routes: 5"):
        assert part in result.stdout


def test_check_names_the_line_the_path_and_the_suggestion_and_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
boltodds: {api_key: "key-5up3r-s3cr3t"}
sinks:
  zapier: {type: webhook, url: "https://hooks.example/abc", secret: "hook-t0ps3cr3t"}
  archive: {type: sqlite, path: a.db}
routes:
  - {name: ok, when: {type: "*"}, to: archive}
  - name: knicks
    when: {type: score.changed, game: "*Knicks*"}
    to: [zappier]
  - name: typo
    when: {type: score.changd}
    to: archive
""")
    result = boltrouter("check", "--config", str(cfg))
    assert result.returncode == 2
    assert (f"{cfg}:12: routes[1].to[0]: unknown sink 'zappier'; did you mean 'zapier'? "
            "(valid: archive, zapier)") in result.stderr
    assert (f"{cfg}:14: routes[2].when.type: unknown event type 'score.changd'; "
            "did you mean 'score.changed'?") in result.stderr
    assert result.stderr.rstrip().endswith(f"2 errors in {cfg}")
    assert "s3cr3t" not in result.stdout + result.stderr


def test_check_does_not_echo_a_secret_even_when_it_is_the_mistake(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  zapier: {type: webhook, url: "https://hooks.example/abc", secret: "hook-t0ps3cr3t"}
routes:
  - {name: oops, when: {type: "*"}, to: "hook-t0ps3cr3t"}
""")
    result = boltrouter("check", "--config", str(cfg))
    assert result.returncode == 2
    assert "routes[0].to: unknown sink '***'" in result.stderr
    assert "t0ps3cr3t" not in result.stderr


def test_replay_lands_routed_events_in_sqlite_and_csv_despite_a_failing_sink(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path, EXAMPLE_ROUTES)
    events = recording(changes=120, games=3)
    rec = write_jsonl(tmp_path / "rec.jsonl", events, bad={5: b"{not json", 9: b"[1, 2]"})
    result = boltrouter("replay", "--config", str(cfg), str(rec))
    assert result.returncode == 0, result.stderr
    assert count(tmp_path / "boltrouter.db") == len(events)
    lines = [e for e in events if e.type.startswith("odds.line_")]
    [csv_file] = tmp_path.glob("lines-*.csv")
    with csv_file.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["time", "game", "sportsbook", "data.outcome", "data.old_odds",
                       "data.new_odds"]
    assert [r[0] for r in rows[1:]] == [e.time for e in lines]
    assert f"replayed {len(events) + 2} line(s): {len(events)} event(s), 2 bad line(s)" \
        in result.stderr
    assert "rec.jsonl:5: skipped" in result.stderr and "rec.jsonl:9: skipped" in result.stderr
    assert f"archive {len(events)} ok/0 failed" in result.stderr
    assert "broken 0 ok/" in result.stderr and "ConnectionError" in result.stderr
    assert "\r[" not in result.stderr  # no progress bar when stderr is not a terminal


def test_replaying_the_same_recording_twice_archives_each_event_once(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, EXAMPLE_ROUTES)
    events = recording(changes=30)
    rec = write_jsonl(tmp_path / "rec.jsonl", events)
    for _ in range(2):
        assert boltrouter("replay", "--config", str(cfg), str(rec)).returncode == 0
    assert count(tmp_path / "boltrouter.db") == len(events)


def test_replay_of_a_file_with_only_bad_lines_fails(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, EXAMPLE_ROUTES)
    rec = tmp_path / "rec.jsonl"
    rec.write_text("nonsense\n{\"data\": {}}\n")
    result = boltrouter("replay", "--config", str(cfg), str(rec))
    assert result.returncode == 1
    assert "0 event(s), 2 bad line(s)" in result.stderr


def run_on_a_terminal(args: list[str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; returns (exit code, what it printed)."""
    main, child = pty.openpty()
    env = {**os.environ, "BOLTODDS_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "boltrouter", *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child)
    os.close(child)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed: the program ended
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    try:
        return proc.wait(timeout=timeout), out.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_replay_on_a_terminal_draws_a_progress_bar_and_honours_speed(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, EXAMPLE_ROUTES)
    events = recording(changes=20, games=1)  # one second apart
    rec = write_jsonl(tmp_path / "rec.jsonl", events)
    code, out = run_on_a_terminal(["replay", "--config", str(cfg), "--speed", "100",
                                   str(rec)], tmp_path)
    assert code == 0, out
    assert "\r[" in out and "100.0%" in out and f"{len(events)} events" in out
    assert count(tmp_path / "boltrouter.db") == len(events)


def test_run_for_a_while_on_the_simulator_archives_events_and_exits_0(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, """
boltodds:
  odds: {subscribe: {sports: [NBA, NFL]}}
  rest: false
simulator: {seed: 3, games: 6, updates_per_second: 100}
state_dir: state
sinks:
  archive: {type: sqlite, path: boltrouter.db}
routes:
  - {name: everything, when: {type: "*"}, to: archive}
""")
    result = boltrouter("run", "--config", str(cfg), "--for", "3s", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "using the built-in simulator" in result.stderr
    assert "stopping: draining sinks" in result.stderr and "stopped: events" in result.stderr
    assert count(tmp_path / "boltrouter.db",
                 "SELECT count(*) FROM events WHERE type = 'feed.connected'") >= 1


PUBLISHER = '''
"""At startup, publish a recording and say so in a file: the run has work to drain."""
import pathlib
import boltrouter
from boltrouter.events import Event

@boltrouter.hookimpl
async def startup(app):
    lines = pathlib.Path(app.resolve_path("rec.jsonl")).read_bytes().splitlines()
    await app.publish_many(Event.from_json(line) for line in lines)
    app.resolve_path("ready").write_text("published")
'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_the_sinks_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "publisher.py").write_text(PUBLISHER)
    (plugins / "flaky_sink.py").write_text((PLUGINS / "flaky_sink.py").read_text())
    events = recording(changes=300, games=4)
    write_jsonl(tmp_path / "rec.jsonl", events)
    cfg = write_config(tmp_path, """
plugins_dir: plugins
state_dir: state
boltodds: {odds: false, rest: false}
sinks:
  archive: {type: sqlite, path: archive.db, batch_size: 10}
  broken: {type: flaky, mode: fail}
routes:
  - {name: everything, when: {type: "*"}, to: [broken, archive]}
""")
    env = {**os.environ, "BOLTODDS_API_KEY": ""}
    proc = subprocess.Popen([sys.executable, "-m", "boltrouter", "run", "--config", str(cfg)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the daemon never published its events"
            time.sleep(0.05)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopping: draining sinks" in err
    assert f"archive {len(events)} ok/0 failed" in err
    assert count(tmp_path / "archive.db") == len(events)
