"""The live-scores websocket (``/api/livescores``): ``match_update`` on change, no snapshot."""

from __future__ import annotations

from typing import Any

import orjson

from .session import Session
from .world import MATCH_PERIOD_DOC, PERIOD_NAMES, Game, World, ordinal


def match_period(world: World, game: Game) -> list[str]:
    doc = MATCH_PERIOD_DOC[game.kind]
    if game.status == "final":
        return [doc, "FINISHED"]
    if game.kind == "baseball":
        half = "TOP" if game.extra["top"] else "BOTTOM"
        return [doc, f"AT_{half}_{ordinal(game.extra['inning'])}_INNING"]
    if game.kind == "soccer":
        return [doc, "IN_FIRST_HALF" if game.period <= 1 else "IN_SECOND_HALF"]
    if game.period > game.league.periods and game.kind != "tennis":
        return [doc, f"IN_{ordinal(game.period - game.league.periods)}_OVERTIME"]
    return [doc, f"IN_{ordinal(game.period)}_{PERIOD_NAMES[game.kind]}"]


def period_map(game: Game) -> dict[str, dict[str, int]]:
    return {str(i + 1): game.letters(p) for i, p in enumerate(game.period_scores)}


def match_state(world: World, game: Game) -> dict[str, Any]:
    """The ``state`` of a ``match_update``, in the shape of the game's league."""
    live = game.status == "live"
    state: dict[str, Any] = {"preMatch": game.status == "scheduled",
                             "matchCompleted": game.status == "final"}
    kind = game.kind
    if kind == "baseball":
        ex = game.extra
        runs = game.letters(game.score)
        state.update({
            "out": ex["outs"], "inning": ex["inning"], "runs": runs,
            "strike": ex["strikes"], "ball": ex["balls"],
            "base1": ex["bases"][0], "base2": ex["bases"][1], "base3": ex["bases"][2],
            "topOfInning": ex["top"],
            "extraInningsRuns": game.letters(
                {s: sum(p[s] for p in game.period_scores[9:]) for s in ("home", "away")}),
            "inningScores": period_map(game),
            "matchPeriod": match_period(world, game),
            "matchNumberOfInnings": 0,
            "clockStatus": "SET_PERIOD_END" if ex["outs"] == 0 else "SET_PERIOD_START",
            "totalRunsForTeamA": runs["A"], "totalRunsForTeamB": runs["B"],
            "clockRunning": False,
        })
        return state
    if kind == "tennis":
        ex = game.extra
        state.update({
            "sets": game.letters(ex["sets"]), "games": game.letters(ex["games"]),
            "points": game.letters(world.tennis_point_text(game)),
            "setScores": {str(i + 1): game.letters(s) for i, s in enumerate(ex["set_scores"])},
            "server": next(k for k, v in game.designation.items() if v == ex["server"]),
            "currentSet": len(ex["set_scores"]) + (0 if game.status == "final" else 1),
            "matchPeriod": match_period(world, game),
            "clockRunning": False,
        })
        return state
    name = {"basketball": "points", "football": "points", "hockey": "goals",
            "soccer": "goals"}[kind]
    score = game.letters(game.score)
    period_key = {"basketball": "quarter", "football": "quarter", "hockey": "period",
                  "soccer": "half"}[kind]
    state.update({
        period_key: game.period, "clock": world.clock_text(game), name: score,
        f"{period_key}Scores": period_map(game),
        "matchPeriod": match_period(world, game),
        "clockStatus": "RUNNING" if live else "STOPPED",
        "clockRunning": live,
        f"total{name.title()}ForTeamA": score["A"], f"total{name.title()}ForTeamB": score["B"],
    })
    if kind == "football":
        ex = game.extra
        state.update({
            "possession": next(k for k, v in game.designation.items() if v == ex["possession"]),
            "down": ex["down"], "distance": ex["distance"], "yardline": ex["yardline"],
            "timeoutsRemaining": game.letters(ex["timeouts"]),
        })
    elif kind == "soccer":
        ex = game.extra
        state.update({"minute": int(game.elapsed // 60),
                      "yellowCards": game.letters(ex["yellow"]),
                      "redCards": game.letters(ex["red"]),
                      "corners": game.letters(ex["corners"])})
    return state


def match_update(world: World, game: Game) -> dict[str, Any]:
    return {"action": "match_update", "game": game.name, "universal_id": game.uid,
            "home": game.home, "away": game.away, "designation": dict(game.designation),
            "state": match_state(world, game)}


class ScoresSession(Session):
    feed = "scores"

    def deliver_changes(self, changed: list[Game], plays: dict[str, Any],
                        stats: list[Game]) -> None:
        if not self.subscribed:
            return
        world = self.server.world
        out = [orjson.dumps(match_update(world, g)) for g in changed
               if g.status != "scheduled" and self.wants_game(g.name)]
        for frame in out:
            self.send_frame(frame)
