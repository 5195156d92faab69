"""The play-by-play websocket (``/api/playbyplay``): streams 1 to 4 as the docs show them."""

from __future__ import annotations

from typing import Any

import orjson

from .session import Session
from .world import Game, World, iso_z, stable_int


def _base(game: Game, action: str, state: str) -> dict[str, Any]:
    stream = game.stream
    return {"stream": stream, "action": action,
            "event": game.short_name if stream == 1 else game.name,
            "universal_id": game.uid, "league": game.sport, "state": state}


def current_state(world: World, game: Game) -> dict[str, Any]:
    ex = game.extra
    msg = _base(game, "current_state", "current_state")
    del msg["state"]
    msg["game_info"] = {
        "period": game.period, "clock": world.clock_seconds(game),
        "game_start": iso_z(game.start),
        "score": {"home_team": game.home, "home_score": game.score["home"],
                  "away_team": game.away, "away_score": game.score["away"]}}
    msg["field_state"] = {"possession": ex["possession"], "down": ex["down"],
                          "yardline": ex["yardline"], "field_side": ex["field_side"],
                          "timeouts": dict(ex["timeouts"])}
    return msg


def _field(game: Game) -> dict[str, Any]:
    ex = game.extra
    return {"down": ex["down"], "side": ex["field_side"], "possession": ex["possession"],
            "yardline": ex["yardline"], "distance": ex["distance"]}


def stream1_play(game: Game, play: dict[str, Any], state: str) -> dict[str, Any]:
    msg = _base(game, play["type"], state)
    info = play.get("play_info") or {"goal_to_go": False, "drive_number": game.extra["drive"],
                                     "net_yards": 0, "play_number": game.extra["play_number"]}
    msg.update(play_info=info, play_start=play.get("play_start") or _field(game),
               play_end=play.get("play_end") or _field(game), action_id=play["action_id"])
    return msg


def stats_message(world: World, game: Game) -> dict[str, Any]:
    msg = _base(game, "stats", "")
    stats = game.stats
    if game.stream == 1:
        info: dict[str, Any] = {"id": None}
        for side in ("away", "home"):
            for name in ("first_downs", "points", "pen", "punt", "third_down_conv"):
                info[f"{side}_team_stats_{name}"] = stats[side].get(name, 0)
        raw = stable_int(game.uid, game.play_seq).to_bytes(4, "big") * 4
        action_id = __import__("base64").b64encode(raw).decode()
    elif game.stream == 2:
        total = {k: stats["home"].get(k, 0) + stats["away"].get(k, 0)
                 for k in set(stats["home"]) | set(stats["away"])}
        info = {"game": total, "team": {"away": dict(stats["away"]), "home": dict(stats["home"])}}
        action_id = ""
    else:
        ex = game.extra
        attacks = {s: stats[s].get("attacks", 0) for s in ("home", "away")}
        all_attacks = max(1, attacks["home"] + attacks["away"])
        shots = {s: (stats[s].get("shotsOnTarget", 0), stats[s].get("shots", 0)
                     + stats[s].get("shotsOnTarget", 0)) for s in ("home", "away")}
        info = {"game": [
            {"name": "POSSESSIONS", "home": str(round(100 * attacks["home"] / all_attacks)),
             "away": str(100 - round(100 * attacks["home"] / all_attacks))},
            {"name": "ATTACKS", "home": str(attacks["home"]), "away": str(attacks["away"])},
            {"name": "DANGEROUS_ATTACK", "home": str(attacks["home"] // 2),
             "away": str(attacks["away"] // 2)},
            {"name": "SHOTS", "home": f"{shots['home'][0]}/{shots['home'][1]}",
             "homePercentage": round(100 * shots["home"][0] / max(1, shots["home"][1])),
             "away": f"{shots['away'][0]}/{shots['away'][1]}",
             "awayPercentage": round(100 * shots["away"][0] / max(1, shots["away"][1]))},
            {"name": "CORNERS", "home": str(ex["corners"]["home"]),
             "away": str(ex["corners"]["away"])},
            {"name": "YELLOW_CARDS", "home": str(ex["yellow"]["home"]),
             "away": str(ex["yellow"]["away"])},
        ]}
        action_id = ""
    msg.update(play_info=info, play_start="", play_end="", action_id=action_id)
    return msg


def _stream2_item(play: dict[str, Any]) -> dict[str, Any]:
    return {"clock": play["clock"], "description": play["description"],
            "isEndOfPeriod": play["kind"] == "period_end", "type": play["type"],
            "team": play["side"], "points": play["points"], "period": play["period"]}


def _stream3_item(game: Game, play: dict[str, Any]) -> dict[str, Any]:
    seconds = int(play["elapsed"])
    return {"id": str(play["seq"]), "type": play["type"], "subType": play.get("subType", ""),
            "actionDetails": play.get("actionDetails", {}),
            "gameTime": f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
            "team": game.team(play["side"]) if play["side"] else ""}


def _stream4_item(play: dict[str, Any]) -> dict[str, Any]:
    clock = play["clock"] or "00:00"
    minutes, seconds = clock.split(":")
    spot = stable_int(play["action_id"])
    return {"type": play["type"], "team": play["side"] or "", "points": play["points"],
            "seconds": int(minutes) * 60 + int(seconds),
            "name": play["type"].replace("_", " ").capitalize(),
            "X": spot % 100, "Y": spot // 100 % 100, "time": play["period"]}


def plays_message(game: Game, plays: list[dict[str, Any]]) -> dict[str, Any]:
    """A stream 2, 3 or 4 ``new_play`` carrying ``plays`` (newest first)."""
    newest = list(reversed(plays))
    msg = _base(game, "new_play", "new_play")
    if game.stream == 4:
        msg.update(home=game.home, away=game.away)
        msg = {k: msg[k] for k in ("stream", "action", "event", "universal_id", "home", "away",
                                   "league", "state")}
        msg["play_info"] = [_stream4_item(p) for p in newest]
    elif game.stream == 2:
        msg.update(play_info=[_stream2_item(p) for p in newest], play_start="", play_end="")
    else:
        msg.update(play_info=[_stream3_item(game, p) for p in newest], play_start="",
                   play_end="")
    msg["score"] = dict(plays[-1]["score"]) if plays else dict(game.score)
    return msg


class PlayByPlaySession(Session):
    feed = "playbyplay"

    def on_subscribed(self, first: bool) -> None:
        super().on_subscribed(first)
        world = self.server.world
        for game in world.games.values():
            if game.status != "live" or not self.wants_game(game.name) or not game.stream:
                continue
            if game.stream == 1:
                self.send_obj(current_state(world, game))
                self.send_obj(stats_message(world, game))
                if game.plays:
                    self.send_obj(stream1_play(game, game.plays[-1], "last_play"))
            elif game.stream in (2, 3):
                recent = game.plays[-(10 if game.stream == 2 else 5):]
                self.send_obj(plays_message(game, recent))
                self.send_obj(stats_message(world, game))

    def deliver_changes(self, changed: list[Game], plays: dict[str, list[dict[str, Any]]],
                        stats: list[Game]) -> None:
        if not self.subscribed:
            return
        world = self.server.world
        for name, new in plays.items():
            game = world.games.get(name)
            if game is None or not game.stream or not self.wants_game(name):
                continue
            if game.stream == 1:
                for play in new:
                    self.send_frame(orjson.dumps(stream1_play(game, play, "new_play")))
            elif game.stream == 4:
                for play in new:
                    self.send_frame(orjson.dumps(plays_message(game, [play])))
            else:
                self.send_frame(orjson.dumps(plays_message(game, new)))
        for game in stats:
            if game.stream in (1, 2, 3) and self.wants_game(game.name):
                self.send_frame(orjson.dumps(stats_message(world, game)))
