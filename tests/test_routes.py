"""Routes: what fires, what is suppressed, what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boltrouter.config import Validator, load_yaml
from boltrouter.events import Event
from boltrouter.metrics import Metrics
from boltrouter.routes import RouteTable, Window, compile_routes

SINKS = {"ha", "zapier", "archive"}
T0 = datetime(2025, 7, 23, 1, 0, tzinfo=UTC)


def compile_yaml(text: str) -> tuple[list[Any], list[str]]:
    raw, lines = load_yaml(text, "routes.yaml")
    v = Validator("routes.yaml", lines)
    routes = compile_routes(raw["routes"], SINKS, v, {"big-moves"})
    return routes, [str(e) for e in v.errors]


def table(text: str, metrics: Metrics | None = None) -> RouteTable:
    routes, errors = compile_yaml(text)
    assert not errors, errors
    return RouteTable(routes, metrics or Metrics())


def ev(type_: str = "odds.line_changed", at: float = 0.0, **kw: Any) -> Event:
    """An event received ``at`` seconds after T0."""
    kw.setdefault("game", "New York Knicks vs Boston Celtics, 2025-07-23, 01")
    kw.setdefault("sportsbook", "draftkings")
    kw.setdefault("sport", "NBA")
    received = (T0 + timedelta(seconds=at)).isoformat(timespec="milliseconds")
    return Event(type=type_, received=received, **kw)


def fired(t: RouteTable, event: Event) -> list[str]:
    """Names of the routes that fired (one entry per route, in order)."""
    out: list[str] = []
    for _, d in t.match(event):
        if d.route not in out:
            out.append(d.route)
    return out


# --- when ------------------------------------------------------------------------------

def test_exact_glob_list_and_data_paths_select_the_right_events() -> None:
    t = table("""
routes:
  - name: knicks-score
    when: {type: score.changed, game: "*Knicks*"}
    to: zapier
  - name: moneyline
    when: {type: odds.line_changed, sport: [NBA, NFL], market: Moneyline}
    to: ha
  - name: second-half
    when: {type: "score.*", data.period: [3, 4]}
    to: archive
  - name: everything
    when: {type: "*"}
    to: archive
""")
    assert fired(t, ev("score.changed", data={"period": 1})) == ["knicks-score", "everything"]
    assert fired(t, ev("score.changed", game="Lakers vs Suns", data={"period": 3})) == [
        "second-half", "everything"]
    # numbers compare by value: 4.0 from one feed is the same period as 4
    assert fired(t, ev("score.changed", game="x", data={"period": 4.0})) == [
        "second-half", "everything"]
    assert fired(t, ev(data={"market": "Moneyline"})) == ["moneyline", "everything"]
    assert fired(t, ev(sport="NFL", data={"market": "Moneyline"})) == ["moneyline", "everything"]
    assert fired(t, ev(sport="MLB", data={"market": "Moneyline"})) == ["everything"]
    assert fired(t, ev(data={"market": "Spread"})) == ["everything"]


def test_a_glob_never_matches_a_missing_field_but_null_does() -> None:
    t = table("""
routes:
  - {name: any-book, when: {type: "*", sportsbook: "*"}, to: ha}
  - {name: no-book, when: {type: "*", sportsbook: null}, to: ha}
""")
    assert fired(t, ev(sportsbook=None)) == ["no-book"]
    assert fired(t, ev(sportsbook="fanduel")) == ["any-book"]


def test_booleans_and_bracket_globs() -> None:
    t = table("""
routes:
  - {name: live, when: {type: "game.*", data.live: true}, to: ha}
  - {name: a-to-c, when: {type: "game.*", home: "[A-C]*"}, to: ha}
""")
    assert fired(t, ev("game.status_changed", home="Boston", data={"live": True})) == [
        "live", "a-to-c"]
    assert fired(t, ev("game.status_changed", home="Denver", data={"live": False})) == []


def test_disabled_route_never_fires() -> None:
    t = table("""
routes:
  - {name: paused, when: {type: "*"}, to: ha, enabled: false}
""")
    assert t.match(ev()) == []
    assert t.stats() == {"paused": {"fired": 0.0, "suppressed": 0.0}}


# --- transitions and thresholds ----------------------------------------------------------

def test_transition_fires_on_the_change_only_per_game() -> None:
    t = table("""
routes:
  - name: went-final
    when: {type: game.status_changed, data.status: {from: live, to: final}}
    for: [game]
    to: zapier
  - name: any-change
    when: {type: game.status_changed, data.status: {to: ["live", "final"]}}
    for: [game]
    to: ha
""")
    a, b = "Knicks vs Celtics", "Lakers vs Suns"
    status = "game.status_changed"
    assert fired(t, ev(status, game=a, data={"status": "live"})) == []   # first sight
    assert fired(t, ev(status, game=b, data={"status": "scheduled"})) == []
    assert fired(t, ev(status, game=a, data={"status": "live"})) == []   # no change
    assert fired(t, ev(status, game=b, data={"status": "live"})) == ["any-change"]
    assert fired(t, ev(status, game=a, data={"status": "final"})) == ["went-final", "any-change"]
    assert fired(t, ev(status, game=a, data={"status": "final"})) == []
    # a game that goes final without being seen live does not match from: live
    c = "Mets vs Angels"
    fired(t, ev(status, game=c, data={"status": "scheduled"}))
    assert fired(t, ev(status, game=c, data={"status": "final"})) == ["any-change"]


def test_threshold_fires_once_per_crossing_per_outcome() -> None:
    t = table("""
routes:
  - name: favourite
    when: {type: odds.line_changed, data.new_prob: {above: 0.6}}
    to: ha
""")
    def line(prob: float, outcome: str = "Knicks ML") -> Event:
        return ev(data={"outcome": outcome, "new_prob": prob})

    assert fired(t, line(0.55)) == []
    assert fired(t, line(0.62)) == ["favourite"]    # crossed
    assert fired(t, line(0.65)) == []               # still above: not again
    assert fired(t, line(0.70)) == []
    assert fired(t, line(0.58)) == []               # left
    assert fired(t, line(0.61)) == ["favourite"]    # re-entered
    # first sight already inside counts as a crossing, per outcome
    assert fired(t, line(0.9, "Celtics ML")) == ["favourite"]
    assert fired(t, line(0.9, "Celtics ML")) == []
    # values that are not numbers are ignored, not errors
    assert fired(t, ev(data={"outcome": "Knicks ML", "new_prob": None})) == []


def test_threshold_range_with_above_and_below_and_american_odds_text() -> None:
    t = table("""
routes:
  - name: plus-money-window
    when: {type: odds.line_changed, data.new_odds: {above: 100, below: 200}}
    to: ha
""")
    odds = ["-110", "+150", "+180", "+250", "+120", "-105", "+101"]
    got = [fired(t, ev(data={"outcome": "x", "new_odds": o})) for o in odds]
    assert got == [[], ["plus-money-window"], [], [], ["plus-money-window"], [],
                   ["plus-money-window"]]


# --- if -----------------------------------------------------------------------------------

def test_if_expression_wrapped_or_bare() -> None:
    t = table("""
routes:
  - name: big-move
    when: {type: odds.line_changed}
    if: "{{ (data.new_prob - data.old_prob) | abs >= 0.05 }}"
    to: ha
  - name: long-shot
    when: {type: odds.line_changed}
    if: data.new_odds | int > 300 and sportsbook in ['draftkings', 'fanduel']
    to: ha
""")
    assert fired(t, ev(data={"old_prob": 0.50, "new_prob": 0.56, "new_odds": "-120"})) == [
        "big-move"]
    assert fired(t, ev(data={"old_prob": 0.50, "new_prob": 0.47, "new_odds": "-110"})) == []
    assert fired(t, ev(data={"old_prob": 0.20, "new_prob": 0.21, "new_odds": "+400"})) == [
        "long-shot"]
    assert fired(t, ev(sportsbook="pinnacle",
                       data={"old_prob": 0.2, "new_prob": 0.21, "new_odds": "+400"})) == []


@pytest.mark.parametrize("template", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ data|attr('__class__') }}",
    "{{ data['__class__'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ data.__class__ == 1 }}",
])
def test_templates_reaching_python_internals_are_refused_at_load(template: str) -> None:
    _, errors = compile_yaml(f"""
routes:
  - name: evil
    when: {{type: "*"}}
    if: "{template}"
    to: ha
""")
    assert len(errors) == 1
    assert "routes.yaml:5: routes[0].if: refused" in errors[0]


def test_escape_built_at_render_time_is_refused_counted_and_does_not_fire() -> None:
    metrics = Metrics()
    t = table("""
routes:
  - name: sneaky
    when: {type: "*"}
    if: "{{ data[data.a ~ data.b] is defined }}"
    to: ha
  - name: sneaky-payload
    when: {type: "*"}
    to: [{sink: zapier, payload: "{{ data|attr(data.a ~ data.b) }}"}]
  - name: honest
    when: {type: "*"}
    to: archive
""", metrics)
    deliveries = t.match(ev(data={"a": "__cla", "b": "ss__"}))
    assert [(sink, d.route) for sink, d in deliveries] == [("archive", "honest")]
    assert metrics.get("route_errors", route="sneaky") == 1
    assert metrics.get("route_errors", route="sneaky-payload") == 1
    assert metrics.get("route_matched", route="sneaky") == 0


def test_a_template_failing_on_bad_data_counts_an_error() -> None:
    metrics = Metrics()
    t = table("""
routes:
  - name: moves
    when: {type: odds.line_changed}
    if: "{{ data.new_prob - data.old_prob > 0.01 }}"
    to: ha
""", metrics)
    assert t.match(ev(data={"new_prob": None, "old_prob": 0.5})) == []
    assert metrics.get("route_errors", route="moves") == 1
    assert fired(t, ev(data={"new_prob": 0.6, "old_prob": 0.5})) == ["moves"]


# --- payloads -------------------------------------------------------------------------------

def test_payload_and_topic_templates_are_rendered_into_the_delivery() -> None:
    t = table("""
routes:
  - name: moves
    when: {type: odds.line_changed}
    to:
      - ha
      - sink: zapier
        payload: >-
          {"text": "{{ game }}: {{ data.outcome }} {{ data.old_odds }} -> {{ data.new_odds }}",
          "raw": {{ data | tojson }}}
        topic: "odds/{{ sportsbook }}/{{ data.missing }}"
""")
    event = ev(game="Knicks vs Celtics",
               data={"outcome": "Knicks ML", "old_odds": "+105", "new_odds": "-110"})
    (s1, d1), (s2, d2) = t.match(event)
    assert (s1, d1.payload, d1.topic) == ("ha", None, None)
    assert s2 == "zapier" and d2.route == "moves" and d2.event is event
    assert d2.payload == ('{"text": "Knicks vs Celtics: Knicks ML +105 -> -110", "raw": '
                          '{"outcome":"Knicks ML","old_odds":"+105","new_odds":"-110"}}')
    assert d2.topic == "odds/draftkings/"   # missing values render empty


# --- throttle, cooldown, dedupe ------------------------------------------------------------------

def test_throttle_lets_one_through_per_key_per_period_and_counts_the_rest() -> None:
    metrics = Metrics()
    t = table("""
routes:
  - name: moves
    when: {type: odds.line_changed}
    throttle: {key: [game, data.outcome], every: 60s}
    to: ha
""", metrics)
    def line(at: float, outcome: str = "Knicks ML") -> Event:
        return ev(at=at, data={"outcome": outcome})

    assert fired(t, line(0)) == ["moves"]
    assert fired(t, line(10)) == []
    assert fired(t, line(20, "Celtics ML")) == ["moves"]   # other key
    assert fired(t, line(59.9)) == []
    assert fired(t, line(60)) == ["moves"]
    assert metrics.get("route_suppressed", route="moves", reason="throttle") == 2
    assert t.stats()["moves"] == {"fired": 3.0, "suppressed": 2.0}


def test_cooldown_suppresses_after_each_firing() -> None:
    metrics = Metrics()
    t = table("""
routes:
  - name: scores
    when: {type: score.changed}
    cooldown: {key: [game], for: 5m}
    to: ha
""", metrics)
    assert fired(t, ev("score.changed", at=0)) == ["scores"]
    assert fired(t, ev("score.changed", at=120)) == []
    assert fired(t, ev("score.changed", at=299)) == []
    assert fired(t, ev("score.changed", at=300)) == ["scores"]
    assert fired(t, ev("score.changed", at=400)) == []
    assert metrics.get("route_suppressed", route="scores", reason="cooldown") == 3


def test_dedupe_drops_repeats_of_the_same_id_within_the_window() -> None:
    metrics = Metrics()
    t = table("""
routes:
  - name: plays
    when: {type: play.new}
    dedupe: {window: 10m}
    to: ha
""", metrics)
    play = {"text": "Brunson makes 3-pt jump shot"}
    first = ev("play.new", at=0, data=play)
    again = ev("play.new", at=30, data=play, time=first.time)   # same upstream change
    assert again.id == first.id
    assert fired(t, first) == ["plays"]
    assert fired(t, again) == []
    assert fired(t, ev("play.new", at=40, data={"text": "Tatum rebound"})) == ["plays"]
    assert fired(t, ev("play.new", at=30 + 601, data=play, time=first.time)) == ["plays"]
    assert metrics.get("route_suppressed", route="plays", reason="dedupe") == 1


def test_throttle_is_not_consumed_by_an_event_the_if_rejects() -> None:
    t = table("""
routes:
  - name: moves
    when: {type: odds.line_changed}
    if: data.big
    throttle: 60s
    to: ha
""")
    assert fired(t, ev(at=0, data={"big": False})) == []
    assert fired(t, ev(at=1, data={"big": True})) == ["moves"]
    assert fired(t, ev(at=2, data={"big": True})) == []


def test_remembered_keys_expire_and_are_capped() -> None:
    w = Window(10.0, cap=3)
    for i in range(5):
        w.record(("game", i), float(i))
    assert len(w) == 3 and not w.active(("game", 0), 5.0) and w.active(("game", 4), 5.0)
    w.record("late", 100.0)
    assert len(w) == 1   # everything older than the period is gone


# --- reload --------------------------------------------------------------------------------------

def test_reload_keeps_the_state_of_unchanged_routes_only() -> None:
    text = """
routes:
  - name: moves
    when: {type: odds.line_changed}
    throttle: {key: [game], every: 60s}
    to: ha
  - name: favourite
    when: {type: odds.line_changed, data.new_prob: {above: %s}}
    to: ha
"""
    metrics = Metrics()
    t = table(text % "0.6", metrics)
    assert fired(t, ev(at=0, data={"outcome": "x", "new_prob": 0.7})) == ["moves", "favourite"]

    same = t.updated(compile_yaml(text % "0.6")[0])
    assert fired(same, ev(at=1, data={"outcome": "x", "new_prob": 0.8})) == []

    changed = t.updated(compile_yaml(text.replace("to: ha", "to: zapier", 1) % "0.65")[0])
    # a new destination keeps the throttle; a new threshold starts afresh
    assert fired(changed, ev(at=2, data={"outcome": "x", "new_prob": 0.8})) == ["favourite"]
    assert metrics.get("route_suppressed", route="moves", reason="throttle") == 2


# --- the index --------------------------------------------------------------------------------------

def test_a_thousand_routes_on_different_games_each_reach_only_their_game() -> None:
    items = "\n".join(
        f"  - {{name: g{i}, when: {{type: odds.line_changed, game: 'Game {i}', "
        f"market: Moneyline}}, to: ha}}" for i in range(1000))
    t = table("routes:\n" + items + "\n  - {name: all, when: {type: 'odds.*'}, to: archive}\n")
    event = ev(game="Game 737", data={"market": "Moneyline"})
    assert [r.name for r in t.candidates(event)] == ["g737", "all"]
    assert fired(t, event) == ["g737", "all"]
    assert fired(t, ev(game="Game 737", data={"market": "Total"})) == ["all"]
    assert fired(t, ev("score.changed", game="Game 737")) == []


def test_routes_with_type_globs_are_indexed_on_their_most_selective_field() -> None:
    # every route names a book too, but the game is what tells them apart
    items = "\n".join(
        f"  - {{name: g{i}, when: {{type: 'odds.line_*', game: 'Game {i}', "
        f"sportsbook: [draftkings, fanduel]}}, to: ha}}" for i in range(1000))
    t = table("routes:\n" + items + "\n  - {name: nba, when: {type: 'odds.*', sport: NBA, "
              "sportsbook: fanduel}, to: archive}\n")
    event = ev(game="Game 12", sportsbook="fanduel")
    assert [r.name for r in t.candidates(event)] == ["g12", "nba"]
    assert fired(t, event) == ["g12", "nba"]
    assert fired(t, ev(game="Game 12", sportsbook="betmgm")) == []


def test_routes_on_several_games_and_a_glob_keep_config_order() -> None:
    t = table("""
routes:
  - {name: glob-first, when: {type: "odds.*", game: "Game*"}, to: ha}
  - {name: g1, when: {type: odds.line_changed, game: [Game 1, Game 2]}, to: ha}
  - {name: g2, when: {type: odds.line_changed, game: Game 2}, to: ha}
  - {name: books, when: {type: odds.line_changed, sportsbook: fanduel}, to: ha}
  - {name: g3, when: {type: odds.line_changed, game: Game 3}, to: ha}
  - {name: last, when: {type: "*"}, to: ha}
""")
    assert fired(t, ev(game="Game 2", sportsbook="fanduel")) == [
        "glob-first", "g1", "g2", "books", "last"]
    assert fired(t, ev(game="Game 3")) == ["glob-first", "g3", "last"]


# --- config errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(("route", "expected"), [
    ("{when: {type: '*'}, to: zappier}",
     "routes[0].to: unknown sink 'zappier'; did you mean 'zapier'?"),
    ("{when: {type: '*'}, to: [ha, {sink: archiv}]}",
     "routes[0].to[1]: unknown sink 'archiv'; did you mean 'archive'?"),
    ("{when: {type: '*'}, to: ha, throtle: 60s}",
     "routes[0].throtle: unknown key 'throtle'; did you mean 'throttle'?"),
    ("{when: {type: '*', sportbook: x}, to: ha}",
     "routes[0].when.sportbook: unknown field 'sportbook'; did you mean 'sportsbook'?"),
    ("{when: {type: '*', game: 'Knicks[1'}, to: ha}",
     "routes[0].when.game: glob 'Knicks[1' has an unclosed '['"),
    ("{when: {type: score.chnged}, to: ha}",
     "unknown event type 'score.chnged'; did you mean 'score.changed'?"),
    ("{when: {type: '*', data.p: {above: 0.7, below: 0.2}}, to: ha}",
     "above (0.7) must be lower than below (0.2)"),
    ("{when: {type: '*', data.s: {form: a}}, to: ha}",
     "routes[0].when.data.s.form: unknown condition 'form'; did you mean 'from'?"),
    ("{when: {type: '*'}, to: ha, throttle: {every: soon}}",
     "routes[0].throttle.every: 'soon' is not a duration"),
    ("{when: {type: '*'}, to: ha, if: '{{ data.x > }}'}",
     "routes[0].if: template does not compile"),
    ("{when: {type: '*'}, to: [{sink: ha, payload: '{% for %}'}]}",
     "routes[0].to[0].payload: template does not compile"),
    ("{when: {type: '*'}, to: ha, if: {data.x: null}}",
     "routes[0].if: must be a quoted string"),
    ("{when: {type: '*'}}", "routes[0].to: is required"),
    ("{to: ha}", "routes[0].when: is required"),
    ("{name: off, when: {type: '*'}, to: ha}", "quote the name"),
    ("{when: {type: '*', feed: big-move}, to: ha}",
     "unknown feed or rule 'big-move'; did you mean 'big-moves'?"),
])
def test_route_errors_name_the_line_the_path_and_the_fix(route: str, expected: str) -> None:
    _, errors = compile_yaml(f"routes:\n  - {route}\n")
    assert len(errors) == 1, errors
    assert errors[0].startswith("routes.yaml:2: ")
    assert expected in errors[0]


def test_duplicate_route_names_are_an_error() -> None:
    _, errors = compile_yaml("""
routes:
  - {name: moves, when: {type: "*"}, to: ha}
  - {name: moves, when: {type: "*"}, to: zapier}
""")
    assert errors == ["routes.yaml:4: routes[1].name: route name 'moves' is already used by "
                      "routes[0]; names must be unique"]
