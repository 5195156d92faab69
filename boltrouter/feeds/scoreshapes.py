"""Parsers: upstream score messages of every league -> ``ScoreUpdate``.

Live scores (``match_update``) carry a ``state`` whose keys depend on the
league; team values are keyed ``A``/``B`` (``{"A": 2, "B": 0}``, ``goalsA``,
``totalRunsForTeamA``) and ``designation`` says which of A and B is home.
Every ``A``/``B`` value is mapped to ``home``/``away`` in ``stats``, so shapes
this module does not know still arrive whole, never fatal.

Also here: the REST ``boxscores`` and ``match_info`` answers, which seed the
scoreboard, and a few helpers shared with the play-by-play parser.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..events import feed_time
from ..scoreboard import ScoreUpdate

_ORDINALS = {
    "FIRST": 1, "SECOND": 2, "THIRD": 3, "FOURTH": 4, "FIFTH": 5, "SIXTH": 6,
    "SEVENTH": 7, "EIGHTH": 8, "NINTH": 9, "TENTH": 10,
}
_ORDINAL_NUM = re.compile(r"(\d+)(?:ST|ND|RD|TH)\b")
_PAIR_KEY = re.compile(r"^(?P<stem>.*?)(?:ForTeam|Team)?(?P<side>[AB])$")

# state keys whose A/B value is the match score, per league shape (first found wins)
_SCORE_KEYS: dict[str, tuple[str, ...]] = {
    "tennis": ("sets",),
    "baseball": ("runs", "totalRuns"),
    "soccer": ("goals", "score"),
    "hockey": ("goals", "score"),
    "basketball": ("points", "score"),
    "football": ("points", "score"),
    "unknown": ("score", "goals", "runs", "points"),
}

_PERIOD_KEYS: dict[str, tuple[str, ...]] = {
    "tennis": ("currentSet", "currentSetNo", "setNo"),
    "baseball": ("inning",),
    "soccer": ("half", "period"),
    "hockey": ("period",),
    "basketball": ("quarter", "period"),
    "football": ("quarter", "period"),
    "unknown": ("period", "quarter", "half", "inning"),
}
"""state keys holding the current period number, per shape (first found wins)."""
_REGULATION = {"basketball": 4, "football": 4, "hockey": 3, "soccer": 2}
"""Regulation periods per shape: overtime periods count on from there."""


def as_int(value: Any) -> int | None:
    """An integer score from an int, a float or a numeric string; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        if text.lstrip("-").replace(".", "", 1).isdigit() and float(text).is_integer():
            return int(float(text))
    return None


def format_clock(value: Any) -> str | None:
    """Seconds (631 or ``"631"``) -> ``"10:31"``; other strings are kept as upstream
    wrote them."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, (int, float)):
        secs = max(int(value), 0)
        return f"{secs // 60}:{secs % 60:02d}"
    return str(value)


def side_map(designation: Any, home: Any = None, away: Any = None) -> dict[str, str]:
    """``designation`` ({'A': 'away', 'B': 'home'}) -> {A: side, B: side}; default A=home.

    A designation naming the teams instead ({'A': 'Georgia Panthers', ...}) is read
    against the message's ``home`` and ``away`` names.
    """
    mapping = {"A": "home", "B": "away"}
    if isinstance(designation, dict):
        names = {_fold(home): "home", _fold(away): "away"}
        names.pop("", None)
        a = str(designation.get("A", "")).lower()
        b = str(designation.get("B", "")).lower()
        a = names.get(_fold(designation.get("A")), a)
        b = names.get(_fold(designation.get("B")), b)
        if a in ("home", "away") and b in ("home", "away") and a != b:
            mapping = {"A": a, "B": b}
        elif a in ("home", "away"):
            mapping = {"A": a, "B": "away" if a == "home" else "home"}
        elif b in ("home", "away"):
            mapping = {"B": b, "A": "away" if b == "home" else "home"}
    return mapping


def _fold(value: Any) -> str:
    return " ".join(str(value).split()).casefold() if isinstance(value, str) else ""


def flag(value: Any) -> bool | None:
    """A boolean upstream may write as ``True``, ``"true"``, ``"False"``, 1 or 0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


def map_sides(value: Any, sides: dict[str, str]) -> Any:
    """Rewrite every ``{"A": .., "B": ..}`` (at any depth) as ``{"home": .., "away": ..}``."""
    if isinstance(value, dict):
        if value and set(value) <= {"A", "B"}:
            return {sides[k]: map_sides(v, sides) for k, v in value.items()}
        return _merge_pairs({k: map_sides(v, sides) for k, v in value.items()}, sides)
    if isinstance(value, list):
        return [map_sides(v, sides) for v in value]
    return value


def _merge_pairs(d: dict[str, Any], sides: dict[str, str]) -> dict[str, Any]:
    """``goalsA``/``goalsB`` and ``totalRunsForTeamA``/``...B`` -> ``goals: {home, away}``."""
    out: dict[str, Any] = {}
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in d.items():
        m = _PAIR_KEY.match(key) if isinstance(key, str) and len(key) > 1 else None
        if m and m.group("stem"):
            other = key[:-1] + ("B" if m.group("side") == "A" else "A")
            if other in d:
                pairs.setdefault(m.group("stem"), {})[sides[m.group("side")]] = value
                continue
        out[key] = value
    for stem, pair in pairs.items():
        out.setdefault(stem, pair)
    return out


def period_from_enum(value: Any, regulation: int | None = None) -> tuple[str | None, Any, str | None]:
    """``['BaseballMatchPeriod', 'AT_TOP_5TH_INNING']`` -> (name, period, status).

    period is the number the name carries (5); an overtime or extra-time period
    counts on from ``regulation`` (the 1st overtime of a 4-quarter game is 5),
    or is ``"OT"`` when the regulation length is unknown; None when the name has
    no number (half time, pre-match). status is ``scheduled`` for pre-match,
    ``final`` for a completed match, else None.
    """
    name = value[-1] if isinstance(value, list) and value else value
    if not isinstance(name, str) or not name:
        return None, None, None
    upper = name.upper()
    if "PREMATCH" in upper or "PRE_MATCH" in upper or "NOT_STARTED" in upper:
        return name, None, "scheduled"
    if any(word in upper for word in ("COMPLETED", "FINISHED", "ENDED", "FULL_TIME")):
        return name, None, "final"
    number = None
    m = _ORDINAL_NUM.search(upper)
    if m:
        number = int(m.group(1))
    else:
        for word, n in _ORDINALS.items():
            if re.search(rf"(?:^|_){word}(?:_|$)", upper):
                number = n
                break
    if "EXTRA" in upper or "OVERTIME" in upper or "OT" in upper.split("_"):
        if regulation is None:
            return name, "OT", None
        return name, regulation + (number or 1), None
    return name, number, None


def _pair(state: dict[str, Any], key: str, sides: dict[str, str]) -> tuple[Any, Any] | None:
    """The (home, away) value of a team pair stored as ``key: {A, B}`` or ``keyA``/``keyB``."""
    value = state.get(key)
    if isinstance(value, dict) and ("A" in value or "B" in value):
        by_side = {sides[k]: v for k, v in value.items() if k in sides}
        return by_side.get("home"), by_side.get("away")
    for a_key, b_key in ((f"{key}A", f"{key}B"), (f"{key}ForTeamA", f"{key}ForTeamB")):
        if a_key in state and b_key in state:
            by_side = {sides["A"]: state[a_key], sides["B"]: state[b_key]}
            return by_side["home"], by_side["away"]
    return None


def detect_shape(state: dict[str, Any]) -> str:
    """The league shape of a live-scores ``state``: baseball, soccer, tennis, ... or unknown."""
    period = state.get("matchPeriod")
    family = period[0] if isinstance(period, list) and len(period) > 1 else ""
    family = str(family).lower()
    for word, shape in (("baseball", "baseball"), ("tennis", "tennis"),
                        ("basketball", "basketball"), ("americanfootball", "football"),
                        ("icehockey", "hockey"), ("hockey", "hockey"),
                        ("football", "soccer"), ("soccer", "soccer")):
        if word in family:
            return shape
    keys = set(state)
    if keys & {"inning", "runs", "topOfInning", "totalRunsForTeamA"}:
        return "baseball"
    if keys & {"sets", "setsA", "setScores", "onServeNow", "currentSet"}:
        return "tennis"
    if keys & {"corners", "cornersA", "yellowCards", "yellowCardsA", "redCards", "redCardsA"}:
        return "soccer"
    if keys & {"down", "yardline", "yardLine", "possession"}:
        return "football"
    if keys & {"goals", "goalsA"}:
        return "hockey"
    if keys & {"points", "pointsA"}:
        return "basketball"
    return "unknown"


def parse_match_update(msg: dict[str, Any], feed: str = "scores") -> ScoreUpdate | None:
    """A live-scores ``match_update`` of any league -> ScoreUpdate (None if unusable)."""
    state = msg.get("state")
    game = msg.get("game")
    if not isinstance(state, dict) or not (game or msg.get("universal_id")):
        return None
    sides = side_map(msg.get("designation"), msg.get("home"), msg.get("away"))
    shape = detect_shape(state)
    score: tuple[Any, Any] | None = None
    for key in _SCORE_KEYS[shape]:
        score = _pair(state, key, sides)
        if score is not None:
            break
    home_score = as_int(score[0]) if score else None
    away_score = as_int(score[1]) if score else None

    period_name, period, status = period_from_enum(state.get("matchPeriod"),
                                                   _REGULATION.get(shape))
    for key in _PERIOD_KEYS[shape]:
        if as_int(state.get(key)):
            period = as_int(state[key])
            break
    completed, pre_match = flag(state.get("matchCompleted")), flag(state.get("preMatch"))
    if completed is True:
        status = "final"
    elif pre_match is True:
        status = status or "scheduled"
    elif pre_match is False:
        status = status if status == "final" else "live"

    clock = None
    for key in ("clock", "elapsedTimeSecs", "elapsedTimeSeconds", "elapsedTime"):
        if key in state and not isinstance(state[key], (dict, list)):
            clock = format_clock(state[key])
            break
    possession = None
    if shape == "baseball" and flag(state.get("topOfInning")) is not None:
        possession = "away" if flag(state["topOfInning"]) else "home"   # the batting side
    elif isinstance(state.get("possession"), str):
        raw = state["possession"]
        possession = sides.get(raw, raw.lower() if raw.lower() in ("home", "away") else None)
    else:
        server = state.get("onServeNow", state.get("server"))
        if isinstance(server, str):
            possession = sides.get(server)

    stats = map_sides(state, sides)
    extra: dict[str, Any] = {"shape": shape, "stats": stats}
    if period_name:
        extra["period_name"] = period_name
    return ScoreUpdate(
        feed=feed, game=str(game) if game else None,
        universal_id=msg.get("universal_id") or None,
        sport=msg.get("league") or msg.get("sport") or None,
        home=msg.get("home") or None, away=msg.get("away") or None,
        home_score=home_score, away_score=away_score, status=status, period=period,
        clock=clock, possession=possession, time=feed_time(msg.get("timestamp"), "") or None,
        extra=extra,
    )


# -- REST answers used as seeds -------------------------------------------------------

_FINAL_WORDS = ("final", "ended", "full time", "full-time", "ft", "finished", "complete")


def _is_final_text(text: Any) -> bool:
    t = str(text or "").strip().lower()
    return bool(t) and (t in _FINAL_WORDS or t.startswith("final") or t.startswith("ended"))


def parse_boxscore(name: str, doc: Any, feed: str = "rest") -> ScoreUpdate | None:
    """One game of a ``boxscores`` answer -> ScoreUpdate (scores, clock, possession)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("game"), dict):
        return None
    g = doc["game"]
    home, away = as_int(g.get("home")), as_int(g.get("away"))
    clock = g.get("clock")
    per_period = g.get("scorePerPeriod") if isinstance(g.get("scorePerPeriod"), dict) else {}
    possession = g.get("possession") if g.get("possession") in ("home", "away") else None
    status = "final" if _is_final_text(clock) else ("live" if home is not None else None)
    return ScoreUpdate(
        feed=feed, game=name, home_score=home, away_score=away, status=status,
        clock=format_clock(clock), possession=possession,
        extra={"period_scores": per_period} if per_period else None,
    )


def match_info_doc(doc: Any) -> dict[str, Any] | None:
    """The ``match`` object inside one game of a ``match_info`` answer."""
    if not isinstance(doc, dict):
        return None
    for item in doc.get("doc") or []:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and isinstance(data.get("match"), dict):
            return data["match"]
    return None


def parse_match_info(name: str, doc: Any, feed: str = "rest") -> ScoreUpdate | None:
    """One game of a ``match_info`` answer -> ScoreUpdate (result, period, status)."""
    match = match_info_doc(doc)
    if match is None:
        return None
    result = match.get("result") if isinstance(match.get("result"), dict) else {}
    home, away = as_int(result.get("home")), as_int(result.get("away"))
    status_doc = match.get("status") if isinstance(match.get("status"), dict) else {}
    status_id = as_int(status_doc.get("_id"))
    status_name = str(status_doc.get("name") or "")
    timeinfo = match.get("timeinfo") if isinstance(match.get("timeinfo"), dict) else {}
    if match.get("ended_uts") or status_id == 100 or _is_final_text(status_name):
        status = "final"
    elif status_id == 0 or status_name.lower() in ("not started", "scheduled"):
        status = "scheduled"
    elif timeinfo.get("started") or status_id is not None:
        status = "live"
    else:
        status = None
    teams = match.get("teams") if isinstance(match.get("teams"), dict) else {}
    period = as_int(match.get("p"))
    return ScoreUpdate(
        feed=feed, game=name,
        home=(teams.get("home") or {}).get("name") if isinstance(teams.get("home"), dict) else None,
        away=(teams.get("away") or {}).get("name") if isinstance(teams.get("away"), dict) else None,
        home_score=home if status != "scheduled" else None,
        away_score=away if status != "scheduled" else None,
        status=status, period=period if status == "live" else None,
        extra={"status_name": status_name} if status_name else None,
    )
