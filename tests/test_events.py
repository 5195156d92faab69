"""The event envelope: JSON round trip, ids stable per upstream change, the documented types."""

from __future__ import annotations

import json
import re

import pytest
from helpers_sinks import REPO, recording

from boltrouter import events
from boltrouter.events import ENVELOPE_FIELDS, EVENT_TYPES, Event

EXAMPLE = {
    "type": "score.changed", "time": "2025-12-07T18:41:07.123+00:00",
    "received": "2025-12-07T18:41:07.130+00:00", "feed": "scores", "sport": "NFL",
    "sportsbook": None, "game": "Buffalo Bills vs Cincinnati Bengals, 2025-12-07, 01",
    "universal_id": "26dbab0e7ade", "home": "Buffalo Bills", "away": "Cincinnati Bengals",
    "data": {"home_score": 14, "away_score": 21, "prev_home_score": 7, "prev_away_score": 21,
             "scoring_side": "home", "period": 3, "clock": "10:31"},
}


def test_the_envelope_is_plain_json_with_every_documented_field() -> None:
    event = Event.from_dict(EXAMPLE)
    doc = json.loads(event.to_json())
    assert list(doc) == ["id", "type", "time", "received", "feed", "sport", "sportsbook",
                         "game", "universal_id", "home", "away", "data"]
    assert {k: v for k, v in doc.items() if k != "id"} == EXAMPLE
    assert Event.from_json(event.to_json()) == event
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", event.id)  # ULID-shaped


def test_the_same_upstream_change_gets_the_same_id() -> None:
    first = Event.from_dict(EXAMPLE)
    # seen again later (a replay, a reconnect, another process): received differs, id does not
    again = Event.from_dict({**EXAMPLE, "received": "2025-12-07T19:00:00.000+00:00"})
    assert again.id == first.id
    assert [e.id for e in recording(changes=30)] == [e.id for e in recording(changes=30)]


@pytest.mark.parametrize("change", [
    {"time": "2025-12-07T18:41:08.123+00:00"},
    {"type": "game.period_changed"},
    {"feed": "playbyplay"},
    {"universal_id": "another-game"},
    {"data": {**EXAMPLE["data"], "home_score": 17}},
])
def test_a_different_change_gets_a_different_id(change: dict) -> None:
    assert Event.from_dict({**EXAMPLE, **change}).id != Event.from_dict(EXAMPLE).id


def test_ids_are_unique_across_a_stream_and_sort_by_time() -> None:
    stream = recording(changes=500, games=4)
    ids = [e.id for e in stream]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # the stream's times increase, and so do the ids


def test_an_id_given_upstream_is_kept() -> None:
    assert Event.from_dict({**EXAMPLE, "id": "01JXYZ"}).id == "01JXYZ"


def test_dotted_paths_read_the_envelope_and_nested_data() -> None:
    event = Event("stats.updated", {"stats": {"home": {"shots": 7}}, "plays": [{"a": 1}]},
                  game="G")
    assert event.get("game") == "G"
    assert event.get("data.stats.home.shots") == 7
    assert event.get("data.plays.0.a") == 1
    assert event.get("data.stats.away.shots") is None
    assert event.get("mono") is None  # internal attributes are not fields


def test_time_defaults_to_the_receive_time_in_utc_with_milliseconds() -> None:
    event = Event("feed.connected", {"feed": "odds"}, feed="odds")
    assert event.time == event.received
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", event.time)


@pytest.mark.parametrize("bad,message", [
    ({"data": {}}, "an event needs a string 'type'"),
    ({"type": 5}, "an event needs a string 'type'"),
    ({"type": "score.changed", "data": [1, 2]}, "an event's 'data' must be an object"),
])
def test_malformed_envelopes_are_refused_clearly(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Event.from_dict(bad)


def test_every_event_type_of_the_product_contract_exists_as_code() -> None:
    contract = (REPO.parent / "shared" / "PRODUCT.md")
    documented = {
        "feed.connected", "feed.disconnected", "feed.error", "feed.subscribed",
        "odds.game_added", "odds.game_updated", "odds.game_removed", "odds.line_changed",
        "odds.line_suspended", "odds.line_restored", "odds.sport_cleared", "odds.book_cleared",
        "score.changed", "game.status_changed", "game.period_changed", "play.new",
        "stats.updated", "boxscore.updated", "match.stats_updated", "match.info_updated",
        "parlay.updated",
    }
    if contract.exists():  # the contract's table, when it is at hand, lists the same types
        table = contract.read_text().split("## 4. Events", 1)[1].split("## 5.", 1)[0]
        found = set(re.findall(r"`([a-z]+\.[a-z_]+)`", table))
        assert documented <= found
    assert documented <= set(EVENT_TYPES)
    constants = {v for k, v in vars(events).items() if k.isupper() and isinstance(v, str)
                 and "." in v}
    assert documented <= constants
    assert all(EVENT_TYPES[t].endswith(".") for t in EVENT_TYPES)
    assert set(ENVELOPE_FIELDS) == set(EXAMPLE) - {"data"} | {"id"}


def test_every_event_type_a_user_can_route_on_is_documented() -> None:
    from boltrouter.plugins import collect_registrations, make_manager

    doc = (REPO / "docs" / "events.md").read_text()
    pm = make_manager(REPO / "plugins")
    types = dict(EVENT_TYPES)
    for cls in collect_registrations(pm, "register_rule_types").values():
        types.update(getattr(cls, "emits", {}))
    types.update(collect_registrations(pm, "register_event_types"))
    assert [t for t in types if f"`{t}`" not in doc] == []
