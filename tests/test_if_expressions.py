"""Route `if` expressions: the common shapes are computed without rendering a
template, and always give the answer the sandboxed template gives."""

from __future__ import annotations

from typing import Any

import pytest

from boltrouter import templates
from boltrouter.events import Event
from boltrouter.templates import compile_expression

EXPRESSIONS = [
    "(data.new_prob - data.old_prob) | abs >= 0.05",
    "data.new_prob > 0.8",
    "data.new_prob - data.old_prob > 0.01",
    "data['new_odds'] < -200 or data.new_prob < 0.1",
    "sportsbook in ['draftkings', 'fanduel'] and not data.suspended",
    "sportsbook not in ('draftkings',)",
    "0.2 < data.new_prob <= 0.8",
    "-data.new_prob < -0.5",
    "data.stats.home * 2 + 1 == 7",
    "data.new_prob / 2 != 0.25",
    "game == none",
    "data.outcome",
    "data.items",
    "data.missing > 1",
    "not data.missing",
    "data.missing or sport == 'NBA'",
    "data.new_prob > 'x'",
    "data.outcome.name == 'x'",
    "home",
]

EVENTS = [
    Event("odds.line_changed", {"new_prob": 0.9, "old_prob": 0.8, "new_odds": -900,
                                "outcome": "Knicks", "suspended": False, "stats": {"home": 3}},
          sportsbook="draftkings", sport="NBA", game="A vs B"),
    Event("odds.line_changed", {"new_prob": 0.5, "old_prob": 0.52, "new_odds": 100,
                                "outcome": "", "suspended": True, "stats": {"home": "3"}},
          sportsbook="pinnacle", sport="NFL", home="B"),
    Event("odds.line_changed", {"new_prob": None, "old_prob": 0.5, "items": 1},
          sportsbook=None),
    Event("odds.line_changed", {}),
]


def _outcome(fn: Any, event: Event) -> Any:
    try:
        return fn(event)
    except Exception as exc:
        return type(exc).__name__


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_an_if_expression_answers_as_the_sandboxed_template_does(
        expression: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = compile_expression(expression)
    monkeypatch.setattr(templates, "_fast", lambda node: None)
    sandboxed = compile_expression(expression)
    for event in EVENTS:
        assert _outcome(fast, event) == _outcome(sandboxed, event), (expression, event.data)


def test_common_conditions_skip_the_template_and_others_keep_it() -> None:
    parse = templates.Parser
    for source, fast in [("(data.new_prob - data.old_prob) | abs >= 0.05", True),
                         ("sportsbook in ['a', 'b'] and data.x['y'] != 1", True),
                         ("data.x is defined", False), ("now() > 1", False),
                         ("data.items", False), ("data.x | int > 3", False),
                         ("data.x ~ 'a' == 'ab'", False)]:
        expr = parse(templates.ENV, source, state="variable").parse_expression()
        assert (templates._fast(expr) is not None) is fast, source
