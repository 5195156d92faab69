"""Test helpers for the sinks, bus, plugins and replay tests: recordings, configs, waiting."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from boltrouter.app import App
from boltrouter.config import load_config
from boltrouter.events import Event, iso, make_id

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "plugins"
BASE = datetime(2025, 12, 7, 18, 0, tzinfo=UTC)

_TEAMS = [("Buffalo Bills", "Cincinnati Bengals"), ("New York Knicks", "Boston Celtics"),
          ("Los Angeles Lakers", "Denver Nuggets"), ("Dallas Cowboys", "Chicago Bears")]


def at(seconds: float) -> str:
    return iso(BASE + timedelta(seconds=seconds))


def american(prob: float) -> str:
    if prob >= 0.5:
        return f"-{round(100 * prob / (1 - prob))}"
    return f"+{round(100 * (1 - prob) / prob)}"


def recording(changes: int = 60, games: int = 2, books: Iterable[str] = ("draftkings", "fanduel"),
              start: float = 0.0, step: float = 1.0) -> list[Event]:
    """A plausible stream: each (book, game) is added, then lines move, get suspended and
    restored, and scores change. Ids are stable: the same call gives the same events."""
    books = list(books)
    out: list[Event] = []
    t = start
    prices: dict[tuple[str, str, str], float] = {}
    game_names = []
    for g in range(games):
        home, away = _TEAMS[g % len(_TEAMS)]
        sport = "NFL" if g % 2 == 0 else "NBA"
        name = f"{home} vs {away}, 2025-12-07, {13 + g:02d}"
        uid = f"uid{g:04d}"
        game_names.append((name, uid, sport, home, away))
        for book in books:
            outcomes = {}
            for team, p in ((home, 0.55), (away, 0.48)):
                key = f"{team} Moneyline"
                prices[(book, name, key)] = p
                outcomes[key] = {"odds": american(p), "prob": p, "market": "Moneyline",
                                 "target": team, "line": None, "over_under": None,
                                 "link": f"https://{book}.example/{uid}"}
            out.append(Event("odds.game_added", {"count": 2, "outcomes": outcomes},
                             time=at(t), feed="odds", sport=sport, sportsbook=book, game=name,
                             universal_id=uid, home=home, away=away))
            t += step
    keys = sorted(prices)
    for i in range(changes):
        book, name, key = keys[i % len(keys)]
        _, uid, sport, home, away = next(x for x in game_names if x[0] == name)
        old = prices[(book, name, key)]
        new = round(min(0.95, max(0.05, old + (0.03 if i % 3 else -0.05))), 4)
        prices[(book, name, key)] = new
        data = {"outcome": key, "market": "Moneyline", "target": key.rsplit(" ", 1)[0],
                "line": None, "over_under": None, "old_odds": american(old),
                "new_odds": american(new), "old_prob": old, "new_prob": new,
                "link": f"https://{book}.example/{uid}"}
        etype = "odds.line_changed"
        if i % 17 == 16:
            etype, data["new_odds"], data["new_prob"] = "odds.line_suspended", None, None
        out.append(Event(etype, data, time=at(t), feed="odds", sport=sport, sportsbook=book,
                         game=name, universal_id=uid, home=home, away=away))
        t += step
        if i % 10 == 9:
            g = game_names[(i // 10) % len(game_names)]
            out.append(Event("score.changed",
                             {"home_score": i // 10 + 1, "away_score": i // 20, "prev_home_score": i // 10,
                              "prev_away_score": i // 20, "scoring_side": "home", "period": 1 + i // 30,
                              "clock": "10:31"},
                             time=at(t), feed="scores", sport=g[2], game=g[0], universal_id=g[1],
                             home=g[3], away=g[4]))
            t += step
    return out


def score_event(uid: str, t: float, etype: str = "score.changed", **data: Any) -> Event:
    return Event(etype, data, time=at(t), feed="scores", sport="NFL",
                 game=f"Game {uid}", universal_id=uid, home="Home", away="Away")


def line_event(book: str, game: str, outcome: str, new_odds: str | None, t: float,
               etype: str = "odds.line_changed", sport: str = "NBA") -> Event:
    data = {"outcome": outcome, "market": "Moneyline", "target": outcome, "line": None,
            "over_under": None, "old_odds": "+100", "new_odds": new_odds, "old_prob": 0.5,
            "new_prob": None if new_odds is None else 0.6, "link": None}
    return Event(etype, data, time=at(t), feed="odds", sport=sport, sportsbook=book,
                 game=game, universal_id=make_id(None, game)[:12])


def write_jsonl(path: Path, events: list[Event], bad: dict[int, bytes] | None = None) -> Path:
    """Write envelopes one per line; ``bad`` puts the given raw lines at those 1-based lines."""
    lines = [e.to_json() for e in events]
    for lineno, raw in sorted((bad or {}).items()):
        lines.insert(lineno - 1, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def write_config(folder: Path, body: str, name: str = "config.yaml") -> Path:
    """A config with ``plugins_dir`` pointing at the repository's example plugins and no
    live summary, unless ``body`` sets them itself."""
    defaults = {"plugins_dir": str(PLUGINS), "summary": "{enabled: never}"}
    head = "".join(f"{key}: {value}\n" for key, value in defaults.items()
                   if not re.search(rf"^{key}:", body, re.M))
    path = folder / name
    path.write_text(head + body)
    return path


async def start_app(config_path: Path) -> App:
    app = App(load_config(config_path))
    await app.start(feeds=False)
    return app


async def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``cond`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.005)


def wait_blocking(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
                  step: float = 0.05) -> Any:
    """``wait_until`` for synchronous tests (a daemon in a subprocess, a browser)."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def boltrouter(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
               prefix: list[str] | None = None, timeout: float = 60,
               **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the ``boltrouter`` command line as a user would, in a subprocess."""
    full_env = {**os.environ, "BOLTODDS_API_KEY": "", **(env or {})}
    return subprocess.run([*(prefix or []), sys.executable, "-m", "boltrouter", *args],
                          capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout, **kw)


def private_mount_prefix(folder: Path, how: str) -> list[str] | None:
    """A command prefix that runs a program with ``folder`` replaced, in a private mount
    namespace only: ``how`` is ``readonly`` (bind-mounted read-only) or ``tiny`` (a
    256 KiB tmpfs, for a full disk). None when this machine does not allow it."""
    if shutil.which("unshare") is None:
        return None
    if how == "readonly":
        script = 'mount --bind "$D" "$D" && mount -o remount,bind,ro "$D" && exec "$@"'
    else:
        script = 'mount -t tmpfs -o size=256k boltrouter-test "$D" && exec "$@"'
    flags = ["-m"] if os.geteuid() == 0 else ["-r", "-m"]
    prefix = ["env", f"D={folder}", "unshare", *flags, "--propagation", "private",
              "sh", "-c", script, "sh"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    return prefix if probe.returncode == 0 else None
