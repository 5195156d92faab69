"""The status page in headless Chromium: it loads, shows the simulator's games and
updates live without reloading."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from helpers_sinks import wait_blocking

from boltrouter.app import App
from boltrouter.config import load_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                "(pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs the Debian packages chromium and chromium-driver (make browser, as root)")

CONFIG = """
state_dir: state
http: {enabled: true, port: 0, token: page-token-123}
simulator: {seed: 21, games: 8, updates_per_second: 60}
boltodds:
  scores: {sports: [NBA, NFL, MLB, NHL, EPL]}
  rest: {poll: {games: 1h}}
sinks:
  archive: {type: sqlite, path: archive.db}
routes:
  - {name: all, when: {type: "*"}, to: archive}
"""


def start_browser(profile: str) -> Any:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)



def rows(driver: Any, table: str) -> list[str]:
    """The text of each row of a table, read in one go (the page re-renders every second)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), r => r.innerText"
        ".replace(/\\s+/g, ' ').trim());", f"#{table} tbody tr")


@pytest.mark.timeout(120)
async def test_the_status_page_shows_the_simulators_games_and_updates_live(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG)
    app = App(load_config(tmp_path / "config.yaml"))
    task = asyncio.create_task(app.run(summary=False))
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)
    driver = None
    try:
        deadline = time.monotonic() + 30
        while not (app.http is not None and app.http.port and app.simulator is not None):
            assert time.monotonic() < deadline, "the daemon did not start"
            await asyncio.sleep(0.05)
        driver = await asyncio.to_thread(start_browser, profile)
        url = f"http://127.0.0.1:{app.http.port}/?token=page-token-123"
        await asyncio.to_thread(driver.get, url)
        assert driver.title == "boltrouter status"

        def board_filled() -> bool:
            board = rows(driver, "board")
            return len(board) == len(app.scoreboard.games()) > 0 and any(
                re.search(r"[+-]\d{3}", r) for r in board)

        await asyncio.to_thread(wait_blocking, board_filled,
                                what="the board of games with their best odds")
        await asyncio.to_thread(wait_blocking, lambda: any(
            "odds" in r and "connected" in r for r in rows(driver, "feeds")),
            what="the odds feed shown connected")
        assert any(r.startswith("archive") for r in rows(driver, "sinks"))
        assert any(r.startswith("all ") for r in rows(driver, "routes"))
        assert rows(driver, "recent")
        board = "\n".join(rows(driver, "board"))
        for game in app.scoreboard.games()[:3]:
            assert game.home in board and game.away in board

        # a score changes upstream: the page shows it without being reloaded
        driver.execute_script("window.notReloaded = true;")
        tracked = {g.home for g in app.scoreboard.games()}
        game = next(g for g in app.simulator.world.games.values()
                    if g.status != "final" and g.home in tracked)
        home, away = game.score["home"] + 7, game.score["away"] + 3
        app.simulator.force_score(game.name, home, away)
        expected = f"{home} – {away}"
        await asyncio.to_thread(wait_blocking, lambda: any(
            game.home in r and expected in r for r in rows(driver, "board")),
            what=f"the new score {expected} of {game.name}")
        assert any(game.home in r and r.startswith("live") for r in rows(driver, "board"))
        assert driver.execute_script("return window.notReloaded === true;")
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        app.request_stop()
        await asyncio.wait_for(task, 30)
