"""The simulated world: games, books, odds and scores, deterministic for a seed.

The world only moves when ``step(dt)`` is called; it never reads the wall clock
except for message timestamps. Two worlds built with the same options and
stepped the same way hold the same games, scores and odds.
"""

from __future__ import annotations

import base64
import math
import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .data import BOOKS, FIRST_NAMES, LAST_NAMES, LEAGUE_BY_NAME, LEAGUES, League

EASTERN = ZoneInfo("America/New_York")
SUSPENDED_SPELLINGS: tuple[Any, ...] = (None, "", "None")
SIGMA = {"basketball": 12.0, "football": 13.0, "baseball": 3.2, "hockey": 1.6,
         "soccer": 1.3, "tennis": 6.0}
EDGE = {"basketball": 6.0, "football": 6.0, "baseball": 0.8, "hockey": 0.5,
        "soccer": 0.5, "tennis": 4.0}
PLAYS_PER_GAME = {"basketball": 230, "football": 160, "baseball": 78, "hockey": 120,
                  "soccer": 160, "tennis": 150}
PERIOD_NAMES = {"basketball": "QUARTER", "football": "QUARTER", "hockey": "PERIOD",
                "soccer": "HALF", "baseball": "INNING", "tennis": "SET"}
MATCH_PERIOD_DOC = {"basketball": "BasketballMatchPeriod", "football": "AmericanFootballMatchPeriod",
                    "hockey": "IceHockeyMatchPeriod", "soccer": "SoccerMatchPeriod",
                    "baseball": "BaseballMatchPeriod", "tennis": "TennisMatchPeriod"}
TENNIS_POINTS = ("0", "15", "30", "40", "AD")


def ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}TH"
    return f"{n}{ {1: 'ST', 2: 'ND', 3: 'RD'}.get(n % 10, 'TH') }"


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def american(prob: float, round5: bool) -> str:
    """Implied probability -> American odds string with sign ("+105", "-120")."""
    prob = min(max(prob, 0.005), 0.995)
    if prob >= 0.5:
        value = round(100.0 * prob / (1.0 - prob))
        if round5 and value < 1000:
            value = 5 * round(value / 5)
        return f"-{max(value, 100)}"
    value = round(100.0 * (1.0 - prob) / prob)
    if round5:
        value = 5 * round(value / 5) if value < 1000 else 50 * round(value / 50)
    return f"+{max(value, 100)}"


def stable_int(*parts: Any) -> int:
    """A number derived from ``parts`` only (no RNG draw), for ids and book bias."""
    return zlib.crc32("|".join(map(str, parts)).encode())


def eastern_when(start: datetime) -> tuple[str, str]:
    """(``YYYY-MM-DD, HH`` as in game names, ``YYYY-MM-DD, HH:MM PM`` as in ``when``)."""
    local = start.astimezone(EASTERN)
    return local.strftime("%Y-%m-%d, %I"), local.strftime("%Y-%m-%d, %I:%M %p")


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class FairOutcome:
    group: str           # outcomes priced together: "ml", "spread", "total", "prop:<i>"
    market: str          # outcome_name
    target: str | None
    line: float | None
    over_under: str | None   # "Over"/"Under" (books may spell it "O"/"U")
    prob: float
    ident: str           # stable identity of the outcome for links and book bias


@dataclass(slots=True)
class OddsMsg:
    """One odds-socket message, with what the subscription filters need."""

    action: str
    sport: str
    book: str
    game: str | None
    data: dict[str, Any]


@dataclass
class Game:
    uid: str
    league: League
    home: str
    away: str
    start: datetime
    name: str
    when: str
    designation: dict[str, str]
    books: list[str]
    book_ids: dict[str, int]
    players: dict[str, list[tuple[str, str, str]]]   # side -> [(name, number, position)]
    status: str = "scheduled"          # scheduled, live, final
    odds_open: bool = True             # False once game_removed was sent
    edge: float = 0.0
    total_bias: float = 0.0
    noise: dict[str, float] = field(default_factory=dict)
    score: dict[str, int] = field(default_factory=lambda: {"home": 0, "away": 0})
    period: int = 0
    elapsed: float = 0.0               # game seconds played (clock sports)
    total_seconds: float = 0.0         # regulation (+ overtime) game seconds
    period_scores: list[dict[str, int]] = field(default_factory=list)
    play_acc: float = 0.0
    plays: list[dict[str, Any]] = field(default_factory=list)    # recent, newest last
    play_seq: int = 0
    stats: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"home": {}, "away": {}})
    extra: dict[str, Any] = field(default_factory=dict)    # per-sport state
    ended_at: datetime | None = None
    removed_at: datetime | None = None

    @property
    def sport(self) -> str:
        return self.league.name

    @property
    def kind(self) -> str:
        return self.league.kind

    @property
    def orig_teams(self) -> str:
        return f"{self.home} vs {self.away}"

    @property
    def short_name(self) -> str:
        """The name without the ``, HH`` hour suffix, as play-by-play stream 1 spells it."""
        return self.name.rsplit(", ", 1)[0]

    @property
    def stream(self) -> int:
        if self.kind == "basketball":
            return 2 if int(self.uid, 16) % 2 == 0 else 4
        return self.league.stream

    def side_of(self, letter: str) -> str:
        return self.designation[letter]

    def letters(self, values: dict[str, Any]) -> dict[str, Any]:
        """``{"home": x, "away": y}`` -> ``{"A": .., "B": ..}`` through the designation."""
        return {"A": values[self.designation["A"]], "B": values[self.designation["B"]]}

    def team(self, side: str) -> str:
        return self.home if side == "home" else self.away

    def remaining(self) -> float:
        """Fraction of the game still to play (1.0 before the start)."""
        if self.status == "scheduled":
            return 1.0
        if self.status == "final":
            return 0.0
        if self.kind == "baseball":
            half = (self.extra["inning"] - 1) * 2 + (0 if self.extra["top"] else 1)
            return max(0.04, 1.0 - (half + self.extra["outs"] / 3.0) / 18.0)
        if self.kind == "tennis":
            played = sum(self.extra["sets"].values()) * 10 + sum(self.extra["games"].values())
            return max(0.05, 1.0 - played / 24.0)
        return max(0.02, 1.0 - self.elapsed / max(self.total_seconds, 1.0))


class World:
    """Every game, book and line the simulator knows, advanced by ``step``."""

    def __init__(self, seed: int = 7, games: int = 30, *, epoch: datetime | None = None,
                 speed: float = 30.0, updates_per_second: float = 200.0,
                 clear_every: float = 180.0, sports: list[str] | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.target_games = max(1, games)
        self.speed = speed
        self.updates_per_second = updates_per_second
        self.clear_every = clear_every
        self.leagues = [LEAGUE_BY_NAME[s] for s in sports] if sports else list(LEAGUES)
        start = epoch or datetime.now(UTC)
        self.now = start.replace(second=0, microsecond=0)
        self.ticks = 0
        self.games: dict[str, Game] = {}            # by name
        self.by_uid: dict[str, Game] = {}
        self.lines: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}   # (book, name)
        self.groups: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.suspended: dict[tuple[str, str, str], int] = {}    # -> tick to restore at
        self.pending_updates: dict[tuple[str, str], int] = {}   # (book, name) -> tick
        self.pending_readd: list[tuple[int, str, str | None]] = []   # (tick, book, sport)
        self.update_acc = 0.0
        self.clear_acc = 0.0
        self.paused = False
        self.score_changed: set[str] = set()
        self.new_plays: dict[str, list[dict[str, Any]]] = {}
        self.stats_due: set[str] = set()
        self._used_names: set[str] = set()
        for i in range(self.target_games):
            self._create_game(initial_index=i)

    # -- building ----------------------------------------------------------------------

    def _create_game(self, initial_index: int | None = None) -> Game:
        rng = self.rng
        league = self.leagues[rng.randrange(len(self.leagues))]
        for _ in range(50):
            home, away = rng.sample(league.teams, 2)
            if f"{home} vs {away}" not in self._used_names:
                break
        duration = timedelta(minutes=league.duration_minutes)
        if initial_index is None:
            start = self.now + timedelta(minutes=rng.randrange(60, 480, 5))
            status = "scheduled"
        else:
            roll = rng.random()
            if roll < 0.35:
                start = self.now - duration * rng.uniform(0.05, 0.9)
                status = "live"
            elif roll < 0.45:
                start = self.now - duration * rng.uniform(1.2, 1.6)
                status = "final"
            else:
                start = self.now + timedelta(minutes=rng.randrange(5, 480, 5))
                status = "scheduled"
        start = start.replace(second=0, microsecond=0)
        minute = start.minute - start.minute % 5
        start = start.replace(minute=minute)
        name_hour, when = eastern_when(start)
        name = f"{home} vs {away}, {name_hour}"
        self._used_names.add(f"{home} vs {away}")
        uid = f"{rng.getrandbits(48):012x}"
        designation = {"A": "home", "B": "away"} if rng.random() < 0.8 \
            else {"A": "away", "B": "home"}
        books = [b for b in BOOKS if b == "draftkings" or rng.random() < 0.85]
        book_ids = {b: rng.randrange(10**9, 2 * 10**9) for b in books}
        if league.kind == "tennis":
            players = {"home": [(home, "", "Player")], "away": [(away, "", "Player")]}
        else:
            players = {side: [self._player(league, rng) for _ in range(4)]
                       for side in ("home", "away")}
        game = Game(uid=uid, league=league, home=home, away=away, start=start, name=name,
                    when=when, designation=designation, books=books, book_ids=book_ids,
                    players=players, edge=rng.gauss(0.3, 1.0) * EDGE[league.kind],
                    total_bias=rng.gauss(0, 0.05) * league.expected_total)
        game.total_seconds = league.periods * league.period_seconds
        self._init_sport_state(game)
        self.games[name] = game
        self.by_uid[uid] = game
        if status != "scheduled":
            self._go_live(game)
            target = self.now if status == "live" else start + duration * 1.5
            self._advance_game(game, (target - start).total_seconds(), record=False)
            if status == "final":
                self._finish(game)
        if game.status != "final":
            for book in books:
                self._publish_lines(book, game)
        else:
            game.odds_open = False
            game.removed_at = game.ended_at
        return game

    def _player(self, league: League, rng: random.Random) -> tuple[str, str, str]:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        positions = {"basketball": ("Guard", "Forward", "Center"),
                     "football": ("Quarterback", "Running Back", "Wide Receiver"),
                     "baseball": ("Pitcher", "Outfielder", "Shortstop", "Catcher"),
                     "hockey": ("Center", "Left Wing", "Defense"),
                     "soccer": ("Forward", "Midfielder", "Defender")}[league.kind]
        return name, str(rng.randrange(1, 99)), rng.choice(positions)

    def _init_sport_state(self, game: Game) -> None:
        kind = game.kind
        if kind == "baseball":
            game.extra.update(inning=1, top=True, outs=0, balls=0, strikes=0,
                              bases=[False, False, False])
        elif kind == "tennis":
            game.extra.update(sets={"home": 0, "away": 0}, games={"home": 0, "away": 0},
                              points={"home": 0, "away": 0}, server="home", set_scores=[])
        elif kind == "football":
            game.extra.update(possession="home", down=1, distance=10, yardline=25,
                              field_side="home", drive=1, play_number=0,
                              timeouts={"home": 3, "away": 3})
        elif kind == "soccer":
            game.extra.update(yellow={"home": 0, "away": 0}, red={"home": 0, "away": 0},
                              corners={"home": 0, "away": 0})

    # -- pricing -----------------------------------------------------------------------

    def fair_outcomes(self, game: Game) -> list[FairOutcome]:
        """Every outcome of a game with its fair probability, from state and noise."""
        league, kind = game.league, game.kind
        r = max(game.remaining(), 0.001)    # a finished game is priced as all but settled
        diff = game.score["home"] - game.score["away"]
        if kind == "tennis":
            ex = game.extra
            diff = (ex["sets"]["home"] - ex["sets"]["away"]) * 5 + \
                ex["games"]["home"] - ex["games"]["away"]
        mu = game.edge * r + diff
        sd = SIGMA[kind] * math.sqrt(r)
        noise = game.noise
        out: list[FairOutcome] = []
        p_home = phi(mu / sd) + noise.get("ml", 0.0)
        p_home = min(max(p_home, 0.01), 0.99)
        if kind == "soccer":
            p_draw = min(0.6, 0.3 * math.exp(-((mu / sd) ** 2) / 2) * (1.2 - 0.5 * r))
            if game.status == "live" and r < 0.1 and diff == 0:
                p_draw = 0.75
            out.append(FairOutcome("ml", "Moneyline", "Draw", None, None, p_draw, "draw"))
            p_h, p_a = (1 - p_draw) * p_home, (1 - p_draw) * (1 - p_home)
        else:
            p_h, p_a = p_home, 1 - p_home
        out.append(FairOutcome("ml", "Moneyline", game.home, None, None, p_h, "ml-home"))
        out.append(FairOutcome("ml", "Moneyline", game.away, None, None, p_a, "ml-away"))
        if kind in ("baseball", "hockey"):
            line = -1.5 if mu >= 0 else 1.5
        else:
            line = -(math.floor(mu) + 0.5) if kind != "soccer" else -(math.floor(mu * 2) / 2 + 0.25)
            line = round(line * 4) / 4
        p_cover = min(max(phi((mu + line) / sd) + noise.get("spread", 0.0), 0.03), 0.97)
        out.append(FairOutcome("spread", league.spread_name, game.home, line, None,
                               p_cover, "spread-home"))
        out.append(FairOutcome("spread", league.spread_name, game.away, -line, None,
                               1 - p_cover, "spread-away"))
        total_now = game.score["home"] + game.score["away"]
        if kind == "tennis":
            total_now = sum(game.extra["games"].values()) + 10 * sum(game.extra["sets"].values())
        expected = total_now + (league.expected_total + game.total_bias) * r
        total_line = math.floor(expected) + 0.5
        total_sd = max(SIGMA[kind] * 1.3 * math.sqrt(r), 0.3)
        p_over = min(max(phi((expected - total_line) / total_sd) + noise.get("total", 0.0),
                         0.03), 0.97)
        out.append(FairOutcome("total", "Total", game.orig_teams, total_line, "Over",
                               p_over, "total-over"))
        out.append(FairOutcome("total", "Total", game.orig_teams, total_line, "Under",
                               1 - p_over, "total-under"))
        for i, (_side, player, market, base) in enumerate(self._props(game)):
            group = f"prop:{i}"
            p = min(max(0.5 + noise.get(group, 0.0), 0.08), 0.92)
            line = base
            out.append(FairOutcome(group, market, player, line, "Over", p, f"{group}-o"))
            out.append(FairOutcome(group, market, player, line, "Under", 1 - p, f"{group}-u"))
        return out

    def _props(self, game: Game) -> list[tuple[str, str, str, float]]:
        props = []
        for side in ("home", "away"):
            for j, (player, _num, _pos) in enumerate(game.players[side][:2]):
                market, line = game.league.props[j % len(game.league.props)]
                props.append((side, player, market, line))
        return props

    def book_outcome(self, book: str, game: Game, fair: FairOutcome) -> tuple[str, dict[str, Any]]:
        link_tpl, round5, short_ou, _props, vig = BOOKS[book]
        bias = (stable_int(book, game.uid, fair.ident) % 2001 - 1000) / 1000.0 * 0.012
        prob = fair.prob * (1.0 + vig) + bias
        ou = fair.over_under
        if ou is not None and short_ou:
            ou = ou[0]
        if fair.line is None:
            line_text = None
        elif fair.group == "spread":
            line_text = f"{fair.line:+g}"
        else:
            line_text = f"{fair.line:g}"
        parts = [fair.target or ""]
        if ou is not None:
            parts.append(ou)
        if line_text is not None:
            parts.append(line_text)
        parts.append(fair.market)
        key = " ".join(p for p in parts if p)
        coupon = stable_int(book, game.uid, fair.ident, line_text) % 9_000_000_000 + 10**9
        event_link = link_tpl.format(id=game.book_ids[book])
        return key, {
            "odds": american(prob, round5),
            "link": f"{event_link}?coupon=pickType|{coupon}|wagerAmounts|replace",
            "outcome_name": fair.market,
            "outcome_line": line_text,
            "outcome_over_under": ou,
            "outcome_target": fair.target,
        }

    def book_lines(self, book: str, game: Game,
                   fairs: list[FairOutcome] | None = None
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        offers_props = BOOKS[book][3]
        outcomes: dict[str, dict[str, Any]] = {}
        groups: dict[str, list[str]] = {}
        for fair in fairs if fairs is not None else self.fair_outcomes(game):
            if fair.group.startswith("prop") and not offers_props:
                continue
            key, outcome = self.book_outcome(book, game, fair)
            if (book, game.name, key) in self.suspended:
                outcome["odds"] = self.lines.get((book, game.name), {}).get(key, outcome)["odds"]
            outcomes[key] = outcome
            groups.setdefault(fair.group, []).append(key)
        return outcomes, groups

    def _publish_lines(self, book: str, game: Game) -> dict[str, dict[str, Any]]:
        outcomes, groups = self.book_lines(book, game)
        self.lines[(book, game.name)] = outcomes
        self.groups[(book, game.name)] = groups
        return outcomes

    def info(self, book: str, game: Game) -> dict[str, Any]:
        return {"id": game.book_ids[book], "game": game.name, "when": game.when,
                "link": BOOKS[book][0].format(id=game.book_ids[book])}

    def odds_data(self, book: str, game: Game, outcomes: dict[str, Any]) -> dict[str, Any]:
        return {"sport": game.sport, "sportsbook": book, "game": game.name,
                "home_team": game.home, "away_team": game.away,
                "info": self.info(book, game), "outcomes": outcomes}

    def odds_msg(self, action: str, book: str, game: Game,
                 outcomes: dict[str, Any]) -> OddsMsg:
        return OddsMsg(action, game.sport, book, game.name,
                       self.odds_data(book, game, outcomes))

    def snapshot(self) -> list[OddsMsg]:
        """The current state as ``initial_state`` messages, one per (book, game)."""
        msgs = []
        for (book, name), outcomes in self.lines.items():
            game = self.games[name]
            msgs.append(self.odds_msg("initial_state", book, game, dict(outcomes)))
        return msgs

    # -- stepping ----------------------------------------------------------------------

    def step(self, dt: float) -> list[OddsMsg]:
        """Advance ``dt`` real seconds; returns the odds messages it produced.

        Score and play changes are collected in ``score_changed``, ``new_plays``
        and ``stats_due`` for the other sockets to pick up (see ``take_changes``).
        """
        self.ticks += 1
        msgs: list[OddsMsg] = []
        if self.paused:
            return msgs
        self.now += timedelta(seconds=dt * self.speed)
        sim_dt = dt * self.speed
        for game in list(self.games.values()):
            if game.status == "scheduled" and game.start <= self.now:
                self._go_live(game)
                self.score_changed.add(game.name)
            if game.status == "live":
                before = dict(game.score)
                self._advance_game(game, sim_dt, record=True)
                if game.score != before:
                    msgs.extend(self._react_to_score(game))
                if game.status == "final":
                    self.score_changed.add(game.name)
            if game.status == "final" and game.odds_open and game.ended_at is not None \
                    and self.now - game.ended_at >= timedelta(minutes=5):
                msgs.extend(self.remove_game(game))
            if game.removed_at is not None and self.now - game.removed_at > timedelta(hours=3):
                self._forget(game)
        open_games = sum(1 for g in self.games.values() if g.status != "final")
        while open_games < self.target_games * 0.9:
            game = self._create_game()
            open_games += 1
            msgs.extend(self.odds_msg("game_added", book, game, dict(self.lines[(book, game.name)]))
                        for book in game.books)
        msgs.extend(self._restores())
        msgs.extend(self._random_updates(dt))
        msgs.extend(self._maybe_clear(dt))
        return msgs

    def take_changes(self) -> tuple[list[Game], dict[str, list[dict[str, Any]]], list[Game]]:
        """(games whose score state changed, new plays by game, games due a stats message)."""
        changed = [self.games[n] for n in sorted(self.score_changed) if n in self.games]
        plays = self.new_plays
        stats = [self.games[n] for n in sorted(self.stats_due) if n in self.games]
        self.score_changed = set()
        self.new_plays = {}
        self.stats_due = set()
        return changed, plays, stats

    def _forget(self, game: Game) -> None:
        self.games.pop(game.name, None)
        self.by_uid.pop(game.uid, None)

    def remove_game(self, game: Game) -> list[OddsMsg]:
        msgs = []
        game.odds_open = False
        game.removed_at = self.now
        for book in game.books:
            if self.lines.pop((book, game.name), None) is not None:
                self.groups.pop((book, game.name), None)
                msgs.append(self.odds_msg("game_removed", book, game, {}))
        return msgs

    def _react_to_score(self, game: Game) -> list[OddsMsg]:
        """Books re-price after a score: some suspend the main lines for a moment."""
        msgs = []
        for book in game.books:
            if (book, game.name) not in self.lines:
                continue
            if self.rng.random() < 0.4:
                msgs.extend(self._suspend(book, game, ("ml", "spread", "total"),
                                          self.rng.randrange(10, 40)))
                self.pending_updates[(book, game.name)] = self.ticks + self.rng.randrange(12, 45)
            else:
                msgs.append(self.game_update(book, game))
        return msgs

    def game_update(self, book: str, game: Game) -> OddsMsg:
        outcomes = self._publish_lines(book, game)
        return self.odds_msg("game_update", book, game, dict(outcomes))

    def _suspend(self, book: str, game: Game, groups: tuple[str, ...],
                 ticks: int) -> list[OddsMsg]:
        table = self.lines.get((book, game.name))
        if table is None:
            return []
        delta = {}
        for group in groups:
            for key in self.groups[(book, game.name)].get(group, []):
                outcome = dict(table[key])
                outcome["odds"] = SUSPENDED_SPELLINGS[self.rng.randrange(3)]
                table[key] = outcome
                delta[key] = outcome
                self.suspended[(book, game.name, key)] = self.ticks + ticks
        return [self.odds_msg("line_update", book, game, delta)] if delta else []

    def _restores(self) -> list[OddsMsg]:
        msgs: list[OddsMsg] = []
        due = [k for k, t in self.suspended.items() if t <= self.ticks]
        by_game: dict[tuple[str, str], list[str]] = {}
        for book, name, key in due:
            del self.suspended[(book, name, key)]
            by_game.setdefault((book, name), []).append(key)
        for (book, name), pending in list(self.pending_updates.items()):
            if pending <= self.ticks:
                del self.pending_updates[(book, name)]
                game = self.games.get(name)
                if game is not None and game.odds_open and (book, name) in self.lines:
                    for key in [k for k in self.suspended if k[0] == book and k[1] == name]:
                        del self.suspended[key]
                    by_game.pop((book, name), None)
                    msgs.append(self.game_update(book, game))
        for (book, name), keys in by_game.items():
            game = self.games.get(name)
            table = self.lines.get((book, name))
            if game is None or table is None:
                continue
            fresh, groups = self.book_lines(book, game)
            if set(fresh) != set(table):
                self.lines[(book, name)] = fresh
                self.groups[(book, name)] = groups
                msgs.append(self.odds_msg("game_update", book, game, dict(fresh)))
                continue
            delta = {k: fresh[k] for k in keys if k in fresh}
            table.update(delta)
            if delta:
                msgs.append(self.odds_msg("line_update", book, game, delta))
        for tick, book, sport in [p for p in self.pending_readd if p[0] <= self.ticks]:
            self.pending_readd.remove((tick, book, sport))
            for game in self.games.values():
                if game.odds_open and book in game.books and (sport is None or game.sport == sport) \
                        and (book, game.name) not in self.lines:
                    outcomes = self._publish_lines(book, game)
                    msgs.append(self.odds_msg("game_added", book, game, dict(outcomes)))
        return msgs

    def _random_updates(self, dt: float) -> list[OddsMsg]:
        self.update_acc += self.updates_per_second * dt
        msgs: list[OddsMsg] = []
        candidates = [g for g in self.games.values() if g.odds_open and g.status != "final"]
        if not candidates:
            self.update_acc = 0.0
            return msgs
        weights = [3.0 if g.status == "live" else 1.0 for g in candidates]
        attempts = 0
        while self.update_acc >= 1.0 and attempts < 10_000:
            attempts += 1
            game = self.rng.choices(candidates, weights)[0]
            roll = self.rng.random()
            if roll < 0.01:
                book = self.rng.choice(game.books)
                if (book, game.name) in self.lines:
                    msgs.append(self.game_update(book, game))
                    self.update_acc -= 1
                continue
            group_count = 3 + 2 * len(self._props(game))
            pick = self.rng.randrange(group_count)
            group = ("ml", "spread", "total")[pick] if pick < 3 else f"prop:{(pick - 3) // 2}"
            if roll < 0.02 and group.startswith("prop"):
                book = self.rng.choice(game.books)
                sent = self._suspend(book, game, (group,), self.rng.randrange(20, 100))
                msgs.extend(sent)
                self.update_acc -= len(sent)
                continue
            game.noise[group] = max(-0.2, min(0.2, game.noise.get(group, 0.0)
                                              + self.rng.gauss(0, 0.012)))
            sent = self.reprice_group(game, group)
            msgs.extend(sent)
            self.update_acc -= max(1, len(sent))
        return msgs

    def reprice_group(self, game: Game, group: str) -> list[OddsMsg]:
        """Re-price one group of outcomes in every book; one message per book that moved."""
        msgs = []
        fairs = self.fair_outcomes(game)
        group_fairs = [f for f in fairs if f.group == group]
        for book in game.books:
            key_pair = (book, game.name)
            table = self.lines.get(key_pair)
            if table is None:
                continue
            old_keys = self.groups[key_pair].get(group)
            if old_keys is None:
                continue
            fresh = dict(self.book_outcome(book, game, f) for f in group_fairs)
            if set(fresh) != set(old_keys):
                msgs.append(self.game_update(book, game))
                continue
            delta = {k: v for k, v in fresh.items()
                     if (book, game.name, k) not in self.suspended and table[k] != v}
            if delta:
                table.update(delta)
                msgs.append(self.odds_msg("line_update", book, game, delta))
        return msgs

    def _maybe_clear(self, dt: float) -> list[OddsMsg]:
        if self.clear_every <= 0:
            return []
        self.clear_acc += dt
        if self.clear_acc < self.clear_every:
            return []
        self.clear_acc = 0.0
        book = self.rng.choice(list(BOOKS))
        if self.rng.random() < 0.6:
            sports = sorted({g.sport for g in self.games.values() if book in g.books})
            if not sports:
                return []
            return self.clear(book, self.rng.choice(sports))
        return self.clear(book, None)

    def clear(self, book: str, sport: str | None, readd_after_ticks: int = 20) -> list[OddsMsg]:
        """``sport_clear`` (one sport of one book) or ``book_clear``; lines return later."""
        for key in [k for k in self.lines if k[0] == book
                    and (sport is None or self.games[k[1]].sport == sport)]:
            del self.lines[key]
            self.groups.pop(key, None)
            self.pending_updates.pop(key, None)
        for key in [k for k in self.suspended if k[0] == book
                    and (sport is None or self.games[k[1]].sport == sport)]:
            del self.suspended[key]
        if readd_after_ticks >= 0:
            self.pending_readd.append((self.ticks + readd_after_ticks, book, sport))
        data = {"sport": sport if sport is not None else {}, "sportsbook": book, "game": {},
                "home_team": {}, "away_team": {}, "info": {}, "outcomes": {}}
        return [OddsMsg("sport_clear" if sport is not None else "book_clear",
                        sport or "", book, None, data)]

    # -- game progress -----------------------------------------------------------------

    def _go_live(self, game: Game) -> None:
        game.status = "live"
        game.period = 1
        game.period_scores = [{"home": 0, "away": 0}]

    def _finish(self, game: Game) -> None:
        game.status = "final"
        game.ended_at = game.ended_at or self.now
        self.stats_due.add(game.name)

    def _advance_game(self, game: Game, sim_seconds: float, record: bool) -> None:
        """Play ``sim_seconds`` of wall time of a live game (plays, scores, periods)."""
        duration = game.league.duration_minutes * 60.0
        game.play_acc += sim_seconds * PLAYS_PER_GAME[game.kind] / duration
        regulation_rate = game.total_seconds / duration if game.total_seconds else 0.0
        per_play_clock = regulation_rate * duration / PLAYS_PER_GAME[game.kind]
        while game.play_acc >= 1.0 and game.status == "live":
            game.play_acc -= 1.0
            if game.league.period_seconds:
                game.elapsed = min(game.elapsed + per_play_clock, game.total_seconds)
                self._clock_period(game, record)
                if game.status != "live":
                    break
            getattr(self, f"_play_{game.kind}")(game, record)
        if record and game.status == "live" and self.rng.random() < 0.05:
            self.stats_due.add(game.name)

    def _clock_period(self, game: Game, record: bool) -> None:
        seconds = game.league.period_seconds
        period = min(int(game.elapsed // seconds) + 1, game.league.periods + 10)
        if game.elapsed >= game.total_seconds:
            tie = game.score["home"] == game.score["away"]
            if tie and game.kind == "basketball":
                game.total_seconds += 300
            elif tie and game.kind in ("football", "hockey"):
                side = "home" if self.rng.random() < 0.5 else "away"
                self._score(game, side, 3 if game.kind == "football" else 1,
                            "field_goal" if game.kind == "football" else "goal", record)
                self._finish(game)
                return
            else:
                self._finish(game)
                return
        if game.kind == "basketball" and game.elapsed >= game.league.periods * seconds:
            period = game.league.periods + 1 + int((game.elapsed - game.league.periods * seconds)
                                                   // 300)
        if period != game.period:
            game.period = period
            game.period_scores.append({"home": 0, "away": 0})
            if record:
                self.score_changed.add(game.name)
                self._add_play(game, {"kind": "period_end", "side": None, "points": 0,
                                      "type": "end_of_period",
                                      "description": f"End of {ordinal(period - 1).lower()} "
                                                     f"{PERIOD_NAMES[game.kind].lower()}."})

    def clock_text(self, game: Game) -> str:
        seconds = game.league.period_seconds
        if not seconds:
            return ""
        if game.kind == "soccer":
            minute = int(game.elapsed // 60)
            return f"{minute:02d}:{int(game.elapsed % 60):02d}"
        length = 300 if game.period > game.league.periods else seconds
        start = (game.league.periods * seconds + (game.period - game.league.periods - 1) * 300
                 if game.period > game.league.periods else (game.period - 1) * seconds)
        left = max(0, int(length - (game.elapsed - start)))
        return f"{left // 60:02d}:{left % 60:02d}"

    def clock_seconds(self, game: Game) -> int:
        text = self.clock_text(game)
        if not text:
            return 0
        minutes, seconds = text.split(":")
        return int(minutes) * 60 + int(seconds)

    def _score(self, game: Game, side: str, points: int, kind: str, record: bool) -> None:
        game.score[side] += points
        if game.period_scores:
            game.period_scores[-1][side] += points
        self._stat(game, side, "points", points)
        if record:
            self.score_changed.add(game.name)

    def _stat(self, game: Game, side: str, name: str, n: int = 1) -> None:
        bucket = game.stats[side]
        bucket[name] = bucket.get(name, 0) + n

    def _add_play(self, game: Game, play: dict[str, Any]) -> None:
        game.play_seq += 1
        raw = self.rng.getrandbits(128).to_bytes(16, "big")
        play.update(seq=game.play_seq, clock=self.clock_text(game), period=game.period,
                    action_id=base64.b64encode(raw).decode(), score=dict(game.score),
                    elapsed=game.elapsed)
        game.plays.append(play)
        if len(game.plays) > 30:
            del game.plays[:-30]
        self.new_plays.setdefault(game.name, []).append(play)

    def _player_of(self, game: Game, side: str) -> str:
        return self.rng.choice(game.players[side])[0]

    def _play_basketball(self, game: Game, record: bool) -> None:
        side = "home" if self.rng.random() < 0.5 + game.edge / 100 else "away"
        roll = self.rng.random()
        who = self._player_of(game, side)
        if roll < 0.26:
            kind, pts, text = "two_pointer_made", 2, f"{who} makes two point shot"
            self._stat(game, side, "twoPointsAtt")
        elif roll < 0.38:
            kind, pts, text = "three_pointer_made", 3, f"{who} makes three point jump shot"
            self._stat(game, side, "threePointsAtt")
        elif roll < 0.46:
            kind, pts, text = "free_throw_made", 1, f"{who} makes free throw"
            self._stat(game, side, "freeThrowsAtt")
            self._stat(game, side, "freeThrowsMade")
        elif roll < 0.76:
            kind, pts, text = "attempt_missed", 0, f"{who} misses jump shot"
            self._stat(game, side, "twoPointsAtt")
        elif roll < 0.9:
            kind, pts, text = "rebound", 0, f"{who} defensive rebound"
            self._stat(game, side, "rebounds")
            self._stat(game, side, "defensiveRebounds")
        elif roll < 0.95:
            kind, pts, text = "turnover", 0, f"{who} bad pass turnover"
            self._stat(game, side, "turnovers")
        else:
            kind, pts, text = "foul", 0, f"{who} personal foul"
            self._stat(game, side, "personalFouls")
        if pts:
            self._score(game, side, pts, kind, record)
        if record:
            self._add_play(game, {"kind": kind, "side": side, "points": pts, "type": kind,
                                  "description": text, "player": who})

    def _play_hockey(self, game: Game, record: bool) -> None:
        side = "home" if self.rng.random() < 0.5 + game.edge / 20 else "away"
        roll = self.rng.random()
        who = self._player_of(game, side)
        kinds = ((0.05, "goal", 1), (0.4, "shot_on_goal", 0), (0.6, "hit", 0),
                 (0.85, "faceoff", 0), (0.93, "blocked_shot", 0), (1.0, "penalty", 0))
        kind, pts = next((k, p) for limit, k, p in kinds if roll < limit)
        self._stat(game, side, {"goal": "goals", "shot_on_goal": "shots"}.get(kind, kind))
        if kind == "goal":
            self._stat(game, side, "shots")
            self._score(game, side, 1, kind, record)
        if record:
            self._add_play(game, {"kind": kind, "side": side, "points": pts, "type": kind,
                                  "description": f"{kind.replace('_', ' ').title()} - {who}",
                                  "player": who})

    def _play_soccer(self, game: Game, record: bool) -> None:
        side = "home" if self.rng.random() < 0.5 + game.edge / 10 else "away"
        roll = self.rng.random()
        kinds = ((0.018, "Goal", ""), (0.1, "Shot", "OffTarget"), (0.16, "Shot", "OnTarget"),
                 (0.24, "Corner", ""), (0.28, "Foul", ""), (0.3, "YellowCard", ""),
                 (0.302, "RedCard", ""), (0.5, "ThrowIn", ""), (0.65, "GoalKick", ""),
                 (1.0, "DangerStateChanged", "Safe"))
        kind, sub = next((k, s) for limit, k, s in kinds if roll < limit)
        ex = game.extra
        if kind == "Goal":
            self._score(game, side, 1, kind, record)
            self._stat(game, side, "shotsOnTarget")
        elif kind == "Shot":
            self._stat(game, side, "shots")
            if sub == "OnTarget":
                self._stat(game, side, "shotsOnTarget")
        elif kind == "Corner":
            ex["corners"][side] += 1
            if record:
                self.score_changed.add(game.name)
        elif kind in ("YellowCard", "RedCard"):
            ex["yellow" if kind == "YellowCard" else "red"][side] += 1
            if record:
                self.score_changed.add(game.name)
        elif kind == "Foul":
            self._stat(game, side, "fouls")
        self._stat(game, side, "attacks")
        if record:
            details = {"state": sub} if kind == "DangerStateChanged" else {}
            self._add_play(game, {"kind": kind, "side": side, "points": int(kind == "Goal"),
                                  "type": kind, "subType": sub, "actionDetails": details,
                                  "description": f"{kind} {game.team(side)}"})

    def _play_football(self, game: Game, record: bool) -> None:
        ex = game.extra
        side = ex["possession"]
        other = "away" if side == "home" else "home"
        start = {"down": ex["down"], "side": ex["field_side"], "possession": side,
                 "yardline": ex["yardline"], "distance": ex["distance"]}
        roll = self.rng.random()
        qb = game.players[side][0][0]
        target = self._player_of(game, side)
        info: dict[str, Any] = {"goal_to_go": False, "drive_number": ex["drive"]}
        pts = 0
        if roll < 0.004:
            kind, gained, pts = "touchdown", 100, 7
        elif roll < 0.026:
            kind, gained, pts = "field_goal_made", 0, 3
        elif roll < 0.45:
            kind, gained = "rush_that_gains_yards", self.rng.randrange(-2, 12)
            info["rusher"] = {"full_name": target}
        elif roll < 0.75:
            kind, gained = "pass_that_gains_yards", self.rng.randrange(1, 25)
            info.update(passer={"full_name": qb}, receiver={"full_name": target})
        elif roll < 0.9:
            kind, gained = "incomplete_pass", 0
            info["passer"] = {"full_name": qb}
        elif roll < 0.95:
            kind, gained = "sack", -self.rng.randrange(3, 10)
            info["passer"] = {"full_name": qb}
        else:
            kind, gained = "punt", 0
        own_yards = ex["yardline"] if ex["field_side"] == side else 100 - ex["yardline"]
        own_yards += gained
        turnover = kind in ("punt", "touchdown", "field_goal_made")
        if own_yards >= 100 and not turnover:
            kind, pts, turnover = "touchdown", 7, True
        if pts:
            self._score(game, side, pts, kind, record)
        self._stat(game, side, "first_downs", int(gained >= ex["distance"]))
        ex["play_number"] += 1
        info.update(net_yards=gained, play_number=ex["play_number"])
        if turnover or (ex["down"] == 4 and gained < ex["distance"]):
            ex.update(possession=other, down=1, distance=10, yardline=25, field_side=other,
                      drive=ex["drive"] + 1, play_number=0)
        elif gained >= ex["distance"]:
            ex.update(down=1, distance=10)
            self._set_field(ex, side, own_yards)
        else:
            ex.update(down=ex["down"] + 1, distance=ex["distance"] - gained)
            self._set_field(ex, side, max(own_yards, 1))
        end = {"down": ex["down"], "side": ex["field_side"], "possession": ex["possession"],
               "yardline": ex["yardline"], "distance": ex["distance"]}
        if record:
            self._add_play(game, {"kind": kind, "side": side, "points": pts, "type": kind,
                                  "description": kind.replace("_", " "), "play_info": info,
                                  "play_start": start, "play_end": end})

    @staticmethod
    def _set_field(ex: dict[str, Any], side: str, own_yards: int) -> None:
        other = "away" if side == "home" else "home"
        if own_yards <= 50:
            ex.update(yardline=own_yards, field_side=side)
        else:
            ex.update(yardline=100 - own_yards, field_side=other)

    def _play_baseball(self, game: Game, record: bool) -> None:
        ex = game.extra
        side = "away" if ex["top"] else "home"
        roll = self.rng.random()
        who = self._player_of(game, side)
        runs = 0
        if roll < 0.66:
            kind, text = "out", f"{who} {self.rng.choice(('strikes out', 'grounds out', 'flies out'))}"
            ex["outs"] += 1
        elif roll < 0.75:
            kind, text = "walk", f"{who} walks"
            runs = self._advance_runners(ex, 1, forced=True)
        elif roll < 0.9:
            kind, text = "single", f"{who} singles"
            runs = self._advance_runners(ex, 1)
        elif roll < 0.96:
            kind, text = "double", f"{who} doubles"
            runs = self._advance_runners(ex, 2)
        else:
            kind, text = "home_run", f"{who} homers"
            runs = self._advance_runners(ex, 4)
        ex["balls"], ex["strikes"] = self.rng.randrange(4), self.rng.randrange(3)
        self._stat(game, side, "hits", int(kind in ("single", "double", "home_run")))
        if runs:
            self._score(game, side, runs, kind, record)
        if record:
            self.score_changed.add(game.name)
            self._add_play(game, {"kind": kind, "side": side, "points": runs, "type": kind,
                                  "description": text, "player": who})
        inning = ex["inning"]
        if not ex["top"] and inning >= 9 and game.score["home"] > game.score["away"]:
            self._finish(game)
            return
        if ex["outs"] >= 3:
            ex.update(outs=0, balls=0, strikes=0, bases=[False, False, False])
            if ex["top"]:
                if inning >= 9 and game.score["home"] > game.score["away"]:
                    self._finish(game)
                    return
                ex["top"] = False
            else:
                if inning >= 9 and game.score["home"] != game.score["away"]:
                    self._finish(game)
                    return
                ex["top"] = True
                ex["inning"] = inning + 1
                game.period = inning + 1
                game.period_scores.append({"home": 0, "away": 0})

    @staticmethod
    def _advance_runners(ex: dict[str, Any], bases: int, forced: bool = False) -> int:
        occupied = ex["bases"]
        if forced:
            runs = 0
            if occupied[0]:
                if occupied[1]:
                    if occupied[2]:
                        runs = 1
                    occupied[2] = True
                occupied[1] = True
            occupied[0] = True
            return runs
        runs = 0
        new = [False, False, False]
        for i in (2, 1, 0):
            if occupied[i]:
                target = i + bases
                if target >= 3:
                    runs += 1
                else:
                    new[target] = True
        if bases >= 4:
            runs += 1
        else:
            new[bases - 1] = True
        ex["bases"] = new
        return runs

    def _play_tennis(self, game: Game, record: bool) -> None:
        ex = game.extra
        server = ex["server"]
        receiver = "away" if server == "home" else "home"
        p_server = 0.63 + (0.03 if server == "home" else -0.03) * (1 if game.edge > 0 else -1)
        winner = server if self.rng.random() < p_server else receiver
        loser = "away" if winner == "home" else "home"
        pts = ex["points"]
        pts[winner] += 1
        self._stat(game, winner, "pointsWon")
        kind = "point"
        if self.rng.random() < 0.08 and winner == server:
            kind = "ace"
            self._stat(game, server, "aces")
        tiebreak = ex["games"]["home"] == 6 and ex["games"]["away"] == 6
        need = 7 if tiebreak else 4
        if pts[winner] >= need and pts[winner] - pts[loser] >= 2:
            ex["points"] = {"home": 0, "away": 0}
            ex["games"][winner] += 1
            ex["server"] = receiver
            kind = "game"
            games = ex["games"]
            if (games[winner] >= 6 and games[winner] - games[loser] >= 2) or games[winner] == 7:
                ex["set_scores"].append(dict(games))
                ex["sets"][winner] += 1
                ex["games"] = {"home": 0, "away": 0}
                kind = "set"
                if ex["sets"][winner] == 2:
                    game.score = dict(ex["sets"])
                    self._finish(game)
                else:
                    game.period += 1
                game.score = dict(ex["sets"])
        elif not tiebreak and pts["home"] >= 4 and pts["away"] >= 4 and pts["home"] == pts["away"]:
            ex["points"] = {"home": 3, "away": 3}
        if record:
            self.score_changed.add(game.name)
            self._add_play(game, {"kind": kind, "side": winner, "points": 0, "type": kind,
                                  "description": f"{kind.title()} {game.team(winner)}"})

    def tennis_point_text(self, game: Game) -> dict[str, str]:
        pts = game.extra["points"]
        if game.extra["games"]["home"] == 6 and game.extra["games"]["away"] == 6:
            return {s: str(pts[s]) for s in ("home", "away")}
        out = {}
        for side, other in (("home", "away"), ("away", "home")):
            if pts[side] >= 3 and pts[other] >= 3:
                out[side] = "AD" if pts[side] > pts[other] else "40"
            else:
                out[side] = TENNIS_POINTS[min(pts[side], 3)]
        return out

    # -- forcing (for tests) ---------------------------------------------------------------

    def set_score(self, game: Game, home: int, away: int) -> None:
        if game.status == "scheduled":
            self._go_live(game)
        for side, value in (("home", home), ("away", away)):
            delta = value - game.score[side]
            game.score[side] = value
            if game.period_scores:
                game.period_scores[-1][side] += delta
        if game.kind == "tennis":
            game.extra["sets"] = {"home": home, "away": away}
        self.score_changed.add(game.name)

    def force_line(self, book: str, game: Game, key: str, odds: Any) -> OddsMsg:
        table = self.lines[(book, game.name)]
        outcome = dict(table[key])
        outcome["odds"] = odds
        table[key] = outcome
        self.suspended.pop((book, game.name, key), None)
        return self.odds_msg("line_update", book, game, {key: outcome})

    def add_forced_play(self, game: Game, side: str, points: int) -> None:
        kind = {"basketball": "two_pointer_made" if points == 2 else "three_pointer_made",
                "football": "touchdown", "hockey": "goal", "soccer": "Goal",
                "baseball": "home_run", "tennis": "set"}[game.kind] if points else "score_set"
        self._add_play(game, {"kind": kind, "side": side, "points": points, "type": kind,
                              "description": f"{kind.replace('_', ' ')} {game.team(side)}",
                              "subType": "", "actionDetails": {}})
